/* User-Agent reduction. A browser's User-Agent is replaced by a fixed
 * template that keeps only its family and major version, its platform family
 * and its device class, in the style of Chrome's reduced User-Agent; a known
 * crawler keeps its name and version; a known HTTP tool keeps its name and
 * major; everything else becomes "Other". The output is always built from
 * the templates below and from numbers, never copied from the input, so no
 * device model, build id, minor version or locale can pass through.
 *
 * Reduced forms (%M = browser major, %C = Chromium major of the Chrome/ token;
 * both 1..999). Combinations that are not listed become "Other".
 *
 * | family   | platform | device | reduced form                                                                                                                          |
 * |----------|----------|--------|---------------------------------------------------------------------------------------------------------------------------------------|
 * | Chrome   | Windows  | desk   | Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%M.0.0.0 Safari/537.36                        |
 * | Chrome   | macOS    | desk   | Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%M.0.0.0 Safari/537.36                  |
 * | Chrome   | Linux    | desk   | Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%M.0.0.0 Safari/537.36                                  |
 * | Chrome   | ChromeOS | desk   | Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%M.0.0.0 Safari/537.36                         |
 * | Chrome   | Android  | mobile | Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%M.0.0.0 Mobile Safari/537.36                        |
 * | Chrome   | Android  | tablet | Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%M.0.0.0 Safari/537.36                               |
 * | Chrome   | iOS      | mobile | Mozilla/5.0 (iPhone; CPU iPhone OS 18_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/%M.0.0.0 Mobile/15E148 Safari/604.1 |
 * | Chrome   | iOS      | tablet | Mozilla/5.0 (iPad; CPU OS 18_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/%M.0.0.0 Mobile/15E148 Safari/604.1      |
 * | Edge     | Windows  | desk   | Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%C.0.0.0 Safari/537.36 Edg/%M.0.0.0          |
 * | Edge     | macOS    | desk   | Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%C.0.0.0 Safari/537.36 Edg/%M.0.0.0    |
 * | Edge     | Linux    | desk   | Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%C.0.0.0 Safari/537.36 Edg/%M.0.0.0                    |
 * | Edge     | Android  | mobile | Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%C.0.0.0 Mobile Safari/537.36 EdgA/%M.0.0.0         |
 * | Edge     | Android  | tablet | Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%C.0.0.0 Safari/537.36 EdgA/%M.0.0.0                |
 * | Edge     | iOS      | mobile | Mozilla/5.0 (iPhone; CPU iPhone OS 18_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) EdgiOS/%M.0.0.0 Mobile/15E148 Safari/605.1.15 |
 * | Edge     | iOS      | tablet | Mozilla/5.0 (iPad; CPU OS 18_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) EdgiOS/%M.0.0.0 Mobile/15E148 Safari/605.1.15  |
 * | Firefox  | Windows  | desk   | Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:%M.0) Gecko/20100101 Firefox/%M.0                                                       |
 * | Firefox  | macOS    | desk   | Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:%M.0) Gecko/20100101 Firefox/%M.0                                                    |
 * | Firefox  | Linux    | desk   | Mozilla/5.0 (X11; Linux x86_64; rv:%M.0) Gecko/20100101 Firefox/%M.0                                                                  |
 * | Firefox  | Android  | mobile | Mozilla/5.0 (Android 10; Mobile; rv:%M.0) Gecko/%M.0 Firefox/%M.0                                                                     |
 * | Firefox  | Android  | tablet | Mozilla/5.0 (Android 10; Tablet; rv:%M.0) Gecko/%M.0 Firefox/%M.0                                                                     |
 * | Firefox  | iOS      | mobile | Mozilla/5.0 (iPhone; CPU iPhone OS 18_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/%M.0 Mobile/15E148 Safari/605.1.15 |
 * | Firefox  | iOS      | tablet | Mozilla/5.0 (iPad; CPU OS 18_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/%M.0 Mobile/15E148 Safari/605.1.15       |
 * | Safari   | macOS    | desk   | Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/%M.0 Safari/605.1.15                |
 * | Safari   | iOS      | mobile | Mozilla/5.0 (iPhone; CPU iPhone OS 18_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/%M.0 Mobile/15E148 Safari/604.1 |
 * | Safari   | iOS      | tablet | Mozilla/5.0 (iPad; CPU OS 18_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/%M.0 Mobile/15E148 Safari/604.1       |
 * | Opera    | Windows  | desk   | Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%C.0.0.0 Safari/537.36 OPR/%M.0.0.0          |
 * | Opera    | macOS    | desk   | Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%C.0.0.0 Safari/537.36 OPR/%M.0.0.0    |
 * | Opera    | Linux    | desk   | Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%C.0.0.0 Safari/537.36 OPR/%M.0.0.0                    |
 * | Opera    | Android  | mobile | Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%C.0.0.0 Mobile Safari/537.36 OPR/%M.0.0.0          |
 * | Opera    | Android  | tablet | Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%C.0.0.0 Safari/537.36 OPR/%M.0.0.0                 |
 * | Samsung  | Linux    | desk   | Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/%M.0 Chrome/%C.0.0.0 Safari/537.36              |
 * | Samsung  | Android  | mobile | Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/%M.0 Chrome/%C.0.0.0 Mobile Safari/537.36    |
 * | Samsung  | Android  | tablet | Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/%M.0 Chrome/%C.0.0.0 Safari/537.36           |
 * | bot      | -        | -      | NAME[/MAJOR[.MINOR]] with NAME from the bot table, e.g. Googlebot/2.1                                                                  |
 * | tool     | -        | -      | NAME[/MAJOR] with NAME from the tool table, e.g. curl/8                                                                                |
 * | other    | -        | -      | Other                                                                                                                                 |
 *
 * Recognition rules (see docs/anonymisation.md for the reasons):
 * - A browser User-Agent starts with "Mozilla/5.0 (platform)" and then holds
 *   only the product tokens AppleWebKit, Gecko, Safari, Version, Mobile,
 *   Chrome, CriOS, Firefox, FxiOS, Edg, EdgA, EdgiOS, OPR, SamsungBrowser and
 *   the comments "(KHTML, like Gecko)" and Opera's "(Edition ...)". Any other
 *   token (YaBrowser, GSA, DuckDuckGo, an in-app browser's tokens...) makes
 *   it "Other", because we would otherwise report a browser it is not.
 * - The platform comes from the first word of the platform comment: Windows
 *   (with "Windows NT"), Macintosh, iPhone/iPod (mobile), iPad (tablet), X11
 *   (ChromeOS with "CrOS", else Linux: other X11 Unixes are reported as
 *   Linux), Linux with an Android part, or Android (Firefox for Android).
 * - Android is mobile when Chromium sends the bare "Mobile" token or Firefox
 *   the "Mobile" part; otherwise tablet. Android WebViews ("; wv",
 *   "Version/4.0 Chrome/...") are reported as Chrome.
 * - A bot is recognised anywhere in the string, at a word boundary, case
 *   insensitively, unless the string is a clean browser User-Agent. A tool is
 *   recognised only as the first token. Both keep the table's spelling.
 */
#include "anonproxy/common.h"

#include <errno.h>
#include <stdbool.h>

#include "anonproxy/ua.h"

/* Speed. The reducer runs on every request (about 900 instructions for a
 * Chrome User-Agent), so it reads the string once and calls no library
 * function on short spans: delimiters are searched eight bytes at a time,
 * character classes come from one table, product names are compared with
 * constant-size memcmp (which the compiler turns into a few loads), bot
 * names are looked up by their first letter, the reduced form is found by
 * indexing a table instead of searching it, and the templates are kept
 * pre-split at their numbers so that writing one is a few copies. Any
 * change must keep tests/unit/engine/test_ua_golden.c passing: the outputs
 * are pinned byte for byte. */

/* A reduced form: literal segments, each followed by a number (%M the major,
 * %C the Chromium major) or, for the last one, by nothing. */
struct seg {
    const char *s;
    unsigned char len;
    char num; /* 'M', 'C' or 0 */
};

struct form {
    unsigned char nseg;  /* 0: no form for this combination ("Other") */
    bool engine;         /* holds %C, so engine_major must be valid */
    unsigned char bound; /* length of the segments plus 3 digits per number */
    struct seg seg[4];
};

#define SEG(lit, num) {lit, sizeof(lit) - 1, num}
/* The letters name the numbers between the segments, in order. */
#define FORM_M(a, b) {2, false, sizeof(a) + sizeof(b) - 2 + 3, {SEG(a, 'M'), SEG(b, 0)}}
#define FORM_CM(a, b, c) \
    {3, true, sizeof(a) + sizeof(b) + sizeof(c) - 3 + 6, {SEG(a, 'C'), SEG(b, 'M'), SEG(c, 0)}}
#define FORM_MC(a, b, c) \
    {3, true, sizeof(a) + sizeof(b) + sizeof(c) - 3 + 6, {SEG(a, 'M'), SEG(b, 'C'), SEG(c, 0)}}
#define FORM_MM(a, b, c) \
    {3, false, sizeof(a) + sizeof(b) + sizeof(c) - 3 + 6, {SEG(a, 'M'), SEG(b, 'M'), SEG(c, 0)}}
#define FORM_MMM(a, b, c, d)                                            \
    {4, false, sizeof(a) + sizeof(b) + sizeof(c) + sizeof(d) - 4 + 9, \
     {SEG(a, 'M'), SEG(b, 'M'), SEG(c, 'M'), SEG(d, 0)}}

#define CHROMIUM_WIN "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
#define CHROMIUM_MAC "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
#define CHROMIUM_LINUX "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
#define CHROMIUM_CROS "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) "
#define CHROMIUM_ANDROID "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
#define WEBKIT_IPHONE "Mozilla/5.0 (iPhone; CPU iPhone OS 18_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
#define WEBKIT_IPAD "Mozilla/5.0 (iPad; CPU OS 18_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "

/* Only browser families have forms, so the first index stops at Samsung. The
 * combinations that are not written here are zero: "Other". */
#define NFORMFAM (AP_UA_SAMSUNG + 1)

static const struct form forms[NFORMFAM][AP_UA_NPLATFORMS][AP_UA_NDEVICES] = {
    [AP_UA_CHROME][AP_UA_WINDOWS][AP_UA_DESKTOP] = FORM_M(CHROMIUM_WIN "Chrome/", ".0.0.0 Safari/537.36"),
    [AP_UA_CHROME][AP_UA_MACOS][AP_UA_DESKTOP] = FORM_M(CHROMIUM_MAC "Chrome/", ".0.0.0 Safari/537.36"),
    [AP_UA_CHROME][AP_UA_LINUX][AP_UA_DESKTOP] = FORM_M(CHROMIUM_LINUX "Chrome/", ".0.0.0 Safari/537.36"),
    [AP_UA_CHROME][AP_UA_CHROMEOS][AP_UA_DESKTOP] = FORM_M(CHROMIUM_CROS "Chrome/", ".0.0.0 Safari/537.36"),
    [AP_UA_CHROME][AP_UA_ANDROID][AP_UA_MOBILE] =
        FORM_M(CHROMIUM_ANDROID "Chrome/", ".0.0.0 Mobile Safari/537.36"),
    [AP_UA_CHROME][AP_UA_ANDROID][AP_UA_TABLET] = FORM_M(CHROMIUM_ANDROID "Chrome/", ".0.0.0 Safari/537.36"),
    [AP_UA_CHROME][AP_UA_IOS][AP_UA_MOBILE] =
        FORM_M(WEBKIT_IPHONE "CriOS/", ".0.0.0 Mobile/15E148 Safari/604.1"),
    [AP_UA_CHROME][AP_UA_IOS][AP_UA_TABLET] = FORM_M(WEBKIT_IPAD "CriOS/", ".0.0.0 Mobile/15E148 Safari/604.1"),

    [AP_UA_EDGE][AP_UA_WINDOWS][AP_UA_DESKTOP] =
        FORM_CM(CHROMIUM_WIN "Chrome/", ".0.0.0 Safari/537.36 Edg/", ".0.0.0"),
    [AP_UA_EDGE][AP_UA_MACOS][AP_UA_DESKTOP] =
        FORM_CM(CHROMIUM_MAC "Chrome/", ".0.0.0 Safari/537.36 Edg/", ".0.0.0"),
    [AP_UA_EDGE][AP_UA_LINUX][AP_UA_DESKTOP] =
        FORM_CM(CHROMIUM_LINUX "Chrome/", ".0.0.0 Safari/537.36 Edg/", ".0.0.0"),
    [AP_UA_EDGE][AP_UA_ANDROID][AP_UA_MOBILE] =
        FORM_CM(CHROMIUM_ANDROID "Chrome/", ".0.0.0 Mobile Safari/537.36 EdgA/", ".0.0.0"),
    [AP_UA_EDGE][AP_UA_ANDROID][AP_UA_TABLET] =
        FORM_CM(CHROMIUM_ANDROID "Chrome/", ".0.0.0 Safari/537.36 EdgA/", ".0.0.0"),
    [AP_UA_EDGE][AP_UA_IOS][AP_UA_MOBILE] =
        FORM_M(WEBKIT_IPHONE "EdgiOS/", ".0.0.0 Mobile/15E148 Safari/605.1.15"),
    [AP_UA_EDGE][AP_UA_IOS][AP_UA_TABLET] = FORM_M(WEBKIT_IPAD "EdgiOS/", ".0.0.0 Mobile/15E148 Safari/605.1.15"),

    [AP_UA_FIREFOX][AP_UA_WINDOWS][AP_UA_DESKTOP] =
        FORM_MM("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:", ".0) Gecko/20100101 Firefox/", ".0"),
    [AP_UA_FIREFOX][AP_UA_MACOS][AP_UA_DESKTOP] =
        FORM_MM("Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:", ".0) Gecko/20100101 Firefox/", ".0"),
    [AP_UA_FIREFOX][AP_UA_LINUX][AP_UA_DESKTOP] =
        FORM_MM("Mozilla/5.0 (X11; Linux x86_64; rv:", ".0) Gecko/20100101 Firefox/", ".0"),
    [AP_UA_FIREFOX][AP_UA_ANDROID][AP_UA_MOBILE] =
        FORM_MMM("Mozilla/5.0 (Android 10; Mobile; rv:", ".0) Gecko/", ".0 Firefox/", ".0"),
    [AP_UA_FIREFOX][AP_UA_ANDROID][AP_UA_TABLET] =
        FORM_MMM("Mozilla/5.0 (Android 10; Tablet; rv:", ".0) Gecko/", ".0 Firefox/", ".0"),
    [AP_UA_FIREFOX][AP_UA_IOS][AP_UA_MOBILE] = FORM_M(WEBKIT_IPHONE "FxiOS/", ".0 Mobile/15E148 Safari/605.1.15"),
    [AP_UA_FIREFOX][AP_UA_IOS][AP_UA_TABLET] = FORM_M(WEBKIT_IPAD "FxiOS/", ".0 Mobile/15E148 Safari/605.1.15"),

    [AP_UA_SAFARI][AP_UA_MACOS][AP_UA_DESKTOP] =
        FORM_M("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/",
               ".0 Safari/605.1.15"),
    [AP_UA_SAFARI][AP_UA_IOS][AP_UA_MOBILE] = FORM_M(WEBKIT_IPHONE "Version/", ".0 Mobile/15E148 Safari/604.1"),
    [AP_UA_SAFARI][AP_UA_IOS][AP_UA_TABLET] = FORM_M(WEBKIT_IPAD "Version/", ".0 Mobile/15E148 Safari/604.1"),

    [AP_UA_OPERA][AP_UA_WINDOWS][AP_UA_DESKTOP] =
        FORM_CM(CHROMIUM_WIN "Chrome/", ".0.0.0 Safari/537.36 OPR/", ".0.0.0"),
    [AP_UA_OPERA][AP_UA_MACOS][AP_UA_DESKTOP] =
        FORM_CM(CHROMIUM_MAC "Chrome/", ".0.0.0 Safari/537.36 OPR/", ".0.0.0"),
    [AP_UA_OPERA][AP_UA_LINUX][AP_UA_DESKTOP] =
        FORM_CM(CHROMIUM_LINUX "Chrome/", ".0.0.0 Safari/537.36 OPR/", ".0.0.0"),
    [AP_UA_OPERA][AP_UA_ANDROID][AP_UA_MOBILE] =
        FORM_CM(CHROMIUM_ANDROID "Chrome/", ".0.0.0 Mobile Safari/537.36 OPR/", ".0.0.0"),
    [AP_UA_OPERA][AP_UA_ANDROID][AP_UA_TABLET] =
        FORM_CM(CHROMIUM_ANDROID "Chrome/", ".0.0.0 Safari/537.36 OPR/", ".0.0.0"),

    [AP_UA_SAMSUNG][AP_UA_LINUX][AP_UA_DESKTOP] =
        FORM_MC(CHROMIUM_LINUX "SamsungBrowser/", ".0 Chrome/", ".0.0.0 Safari/537.36"),
    [AP_UA_SAMSUNG][AP_UA_ANDROID][AP_UA_MOBILE] =
        FORM_MC(CHROMIUM_ANDROID "SamsungBrowser/", ".0 Chrome/", ".0.0.0 Mobile Safari/537.36"),
    [AP_UA_SAMSUNG][AP_UA_ANDROID][AP_UA_TABLET] =
        FORM_MC(CHROMIUM_ANDROID "SamsungBrowser/", ".0 Chrome/", ".0.0.0 Safari/537.36"),
};

/* The form of a combination, or NULL. Out-of-range values (ap_ua_format
 * takes any struct) have none. */
static const struct form *form_of(enum ap_ua_family fam, enum ap_ua_platform plat, enum ap_ua_device dev)
{
    if ((unsigned)fam >= NFORMFAM || (unsigned)plat >= AP_UA_NPLATFORMS || (unsigned)dev >= AP_UA_NDEVICES)
        return NULL;
    const struct form *f = &forms[fam][plat][dev];
    return f->nseg ? f : NULL;
}

/* A table name with its length, so that lookups never call strlen. */
struct name {
    const char *s;
    size_t len;
};

#define NAME(lit) {lit, sizeof(lit) - 1}

/* Well-known crawlers, one array per first letter (case-insensitive), so
 * that the lookup at a word start goes straight to the few names that can
 * match. A unit test walks every entry. At most one name can match at a
 * position (a name that is a prefix of another is followed there by '-',
 * which is a name character, so the word-boundary check fails); the order
 * inside a letter is kept anyway. */
static const struct name bots_a[] = {
    NAME("AdsBot-Google"), NAME("AdsBot-Google-Mobile"), NAME("AhrefsBot"), NAME("Amazonbot"),
    NAME("anthropic-ai"), NAME("APIs-Google"), NAME("Applebot"), NAME("archive.org_bot"),
    NAME("AspiegelBot"),
};
static const struct name bots_b[] = {
    NAME("Baiduspider"), NAME("Baiduspider-image"), NAME("Barkrowler"), NAME("bingbot"),
    NAME("BingPreview"), NAME("BLEXBot"), NAME("Bytespider"),
};
static const struct name bots_c[] = {
    NAME("CCBot"), NAME("ChatGPT-User"), NAME("Claude-Web"), NAME("ClaudeBot"), NAME("coccocbot"),
};
static const struct name bots_d[] = {
    NAME("DataForSeoBot"), NAME("Diffbot"), NAME("Discordbot"), NAME("DotBot"),
    NAME("DuckAssistBot"), NAME("DuckDuckBot"), NAME("DuckDuckBot-Https"),
};
static const struct name bots_e[] = {
    NAME("Exabot"),
};
static const struct name bots_f[] = {
    NAME("facebookcatalog"), NAME("facebookexternalhit"), NAME("FeedFetcher-Google"),
};
static const struct name bots_g[] = {
    NAME("Google-InspectionTool"), NAME("Google-Site-Verification"), NAME("Googlebot"),
    NAME("Googlebot-Image"), NAME("Googlebot-Mobile"), NAME("Googlebot-News"),
    NAME("Googlebot-Video"), NAME("GoogleOther"), NAME("GPTBot"),
};
static const struct name bots_i[] = {
    NAME("ia_archiver"), NAME("ImagesiftBot"),
};
static const struct name bots_l[] = {
    NAME("LinkedInBot"),
};
static const struct name bots_m[] = {
    NAME("Mail.RU_Bot"), NAME("Mediapartners-Google"), NAME("meta-externalagent"),
    NAME("meta-externalfetcher"), NAME("MJ12bot"), NAME("MojeekBot"), NAME("msnbot"),
};
static const struct name bots_o[] = {
    NAME("OAI-SearchBot"),
};
static const struct name bots_p[] = {
    NAME("Perplexity-User"), NAME("PerplexityBot"), NAME("PetalBot"), NAME("Pinterestbot"),
};
static const struct name bots_q[] = {
    NAME("Qwantbot"), NAME("Qwantify"),
};
static const struct name bots_r[] = {
    NAME("redditbot"),
};
static const struct name bots_s[] = {
    NAME("Screaming Frog SEO Spider"), NAME("SeekportBot"), NAME("SemrushBot"), NAME("serpstatbot"),
    NAME("SeznamBot"), NAME("SiteAuditBot"), NAME("SkypeUriPreview"), NAME("Slackbot"),
    NAME("Slackbot-LinkExpanding"), NAME("Slurp"), NAME("Sogou web spider"), NAME("Storebot-Google"),
};
static const struct name bots_t[] = {
    NAME("TelegramBot"), NAME("Timpibot"), NAME("Twitterbot"),
};
static const struct name bots_u[] = {
    NAME("UptimeRobot"),
};
static const struct name bots_w[] = {
    NAME("WhatsApp"),
};
static const struct name bots_y[] = {
    NAME("YandexBot"), NAME("YandexImages"), NAME("YandexMobileBot"), NAME("Yeti"), NAME("YisouSpider"),
};
static const struct name bots_z[] = {
    NAME("ZoominfoBot"),
};

static const struct {
    const struct name *v;
    size_t n;
} bots[26] = {
#define LETTER(c, arr) [(c) - 'a'] = {arr, AP_ARRAY_SIZE(arr)}
    LETTER('a', bots_a), LETTER('b', bots_b), LETTER('c', bots_c), LETTER('d', bots_d),
    LETTER('e', bots_e), LETTER('f', bots_f), LETTER('g', bots_g), LETTER('i', bots_i),
    LETTER('l', bots_l), LETTER('m', bots_m), LETTER('o', bots_o), LETTER('p', bots_p),
    LETTER('q', bots_q), LETTER('r', bots_r), LETTER('s', bots_s), LETTER('t', bots_t),
    LETTER('u', bots_u), LETTER('w', bots_w), LETTER('y', bots_y), LETTER('z', bots_z),
#undef LETTER
};

/* HTTP libraries and command-line clients, recognised as the first token. */
static const struct name tools[] = {
    NAME("Apache-HttpClient"),
    NAME("aria2"),
    NAME("axios"),
    NAME("Bun"),
    NAME("curl"),
    NAME("Dart"),
    NAME("Deno"),
    NAME("Faraday"),
    NAME("Go-http-client"),
    NAME("GuzzleHttp"),
    NAME("HTTPie"),
    NAME("insomnia"),
    NAME("Java"),
    NAME("libwww-perl"),
    NAME("lwp-request"),
    NAME("node"),
    NAME("node-fetch"),
    NAME("okhttp"),
    NAME("PHP"),
    NAME("PostmanRuntime"),
    NAME("python-httpx"),
    NAME("python-requests"),
    NAME("Python-urllib"),
    NAME("Python"),
    NAME("reqwest"),
    NAME("Ruby"),
    NAME("Scrapy"),
    NAME("undici"),
    NAME("Wget"),
    NAME("wget2"),
};

/* Character classes: one load per byte instead of chains of comparisons. */
enum {
    C_ALPHA = 1,    /* [A-Za-z] */
    C_NAME = 2,     /* [A-Za-z0-9_-]: part of a bot or tool name word */
    C_DIGIT = 4,    /* [0-9] */
    C_TOKEND = 8,   /* ' ', '(', ')': end a product token */
    C_NAMEEND = 16, /* ' ', '(', ')', '/': end the name of a product token */
    C_COMMENT = 32, /* '(', ')', ';': stop the platform comment scan */
};

#define CL_DIGIT(c) [c] = C_NAME | C_DIGIT
#define CL_ALPHA(c) [c] = C_ALPHA | C_NAME, [(c) + 32] = C_ALPHA | C_NAME
static const unsigned char cls[256] = {
    CL_DIGIT('0'), CL_DIGIT('1'), CL_DIGIT('2'), CL_DIGIT('3'), CL_DIGIT('4'),
    CL_DIGIT('5'), CL_DIGIT('6'), CL_DIGIT('7'), CL_DIGIT('8'), CL_DIGIT('9'),
    CL_ALPHA('A'), CL_ALPHA('B'), CL_ALPHA('C'), CL_ALPHA('D'), CL_ALPHA('E'), CL_ALPHA('F'),
    CL_ALPHA('G'), CL_ALPHA('H'), CL_ALPHA('I'), CL_ALPHA('J'), CL_ALPHA('K'), CL_ALPHA('L'),
    CL_ALPHA('M'), CL_ALPHA('N'), CL_ALPHA('O'), CL_ALPHA('P'), CL_ALPHA('Q'), CL_ALPHA('R'),
    CL_ALPHA('S'), CL_ALPHA('T'), CL_ALPHA('U'), CL_ALPHA('V'), CL_ALPHA('W'), CL_ALPHA('X'),
    CL_ALPHA('Y'), CL_ALPHA('Z'),
    ['-'] = C_NAME, ['_'] = C_NAME,
    [' '] = C_TOKEND | C_NAMEEND,
    ['('] = C_TOKEND | C_NAMEEND | C_COMMENT,
    [')'] = C_TOKEND | C_NAMEEND | C_COMMENT,
    ['/'] = C_NAMEEND,
    [';'] = C_COMMENT,
};
#undef CL_DIGIT
#undef CL_ALPHA

static unsigned cl(char c)
{
    return cls[(unsigned char)c];
}

/* Index of the first byte at or after `i` that is in the stop set `which`,
 * or `len`. On little-endian machines the bytes are tested eight at a time
 * (SWAR): for each byte value b looked for, x ^ (b * ONES) has a zero byte
 * where x holds b, and haszero() sets the top bit of such bytes. It can also
 * set it in a byte above (more significant than) a real zero byte, because
 * of the borrow, but never below the first one, so the lowest set bit -
 * the first byte in memory order - is exact; OR-ing the tests keeps that.
 * Only whole words inside [i, len) are loaded (memcpy: no alignment
 * assumption); the tail is scanned bytewise. */
#define ONES 0x0101010101010101u
#define HIGHS 0x8080808080808080u

static uint64_t haszero(uint64_t v)
{
    return (v - ONES) & ~v & HIGHS;
}

/* The three stop sets. '(' and ')' differ only in bit 0, so one test with
 * that bit masked off finds both. */
enum stops {
    STOP_COMMENT, /* ( ) ; */
    STOP_TOKEN,   /* ( ) space */
    STOP_NAME,    /* ( ) space / */
};

static size_t scan(const char *s, size_t i, size_t len, enum stops which)
{
    static const unsigned char masks[] = {C_COMMENT, C_TOKEND, C_NAMEEND};
    const unsigned mask = masks[which];
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    for (; len - i >= 8; i += 8) {
        uint64_t x, m;
        memcpy(&x, s + i, 8);
        m = haszero((x ^ (ONES * '(')) & (ONES * 0xfe));
        if (which == STOP_COMMENT)
            m |= haszero(x ^ (ONES * ';'));
        else
            m |= haszero(x ^ (ONES * ' '));
        if (which == STOP_NAME)
            m |= haszero(x ^ (ONES * '/'));
        if (m != 0)
            return i + (size_t)__builtin_ctzll(m) / 8;
    }
#endif
    while (i < len && !(cls[(unsigned char)s[i]] & mask))
        i++;
    return i;
}

static unsigned char lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

/* Equality with and prefix of a literal. sizeof gives a constant length, so
 * the compiler expands memcmp into a few loads instead of calling it; the
 * length test comes first, so no byte past `n` is read. */
#define EQ(p, n, lit) ((n) == sizeof(lit) - 1 && memcmp(p, lit, sizeof(lit) - 1) == 0)
#define STARTS(p, n, lit) ((n) >= sizeof(lit) - 1 && memcmp(p, lit, sizeof(lit) - 1) == 0)

/* Parse up to `maxdigits` decimal digits at s[*i]; fails on none or more. */
static bool parse_num(const char *s, size_t len, size_t *i, unsigned maxdigits, unsigned *out)
{
    unsigned v = 0, nd = 0;
    while (*i < len && (cl(s[*i]) & C_DIGIT)) {
        if (++nd > maxdigits)
            return false;
        v = v * 10 + (unsigned)(s[*i] - '0');
        (*i)++;
    }
    if (nd == 0)
        return false;
    *out = v;
    return true;
}

/* Major of a browser version ("131.0.6778.85" -> 131): 1..999, and what
 * follows the digits must end the number ('.', end). */
static bool browser_major(const char *v, size_t len, unsigned *out)
{
    size_t i = 0;
    unsigned m;
    if (!parse_num(v, len, &i, 3, &m) || m == 0)
        return false;
    if (i < len && v[i] != '.')
        return false;
    *out = m;
    return true;
}

/* Read "/MAJOR[.MINOR]" after a bot or tool name at s[i]. Components with
 * more than four digits are not kept: they are not versions we know. */
static void parse_bot_version(const char *s, size_t len, size_t i, unsigned maxparts,
                              struct ap_ua_info *info)
{
    info->nversion = 0;
    if (i >= len || s[i] != '/')
        return;
    i++;
    unsigned v;
    if (!parse_num(s, len, &i, 4, &v))
        return;
    if (i < len && (cl(s[i]) & (C_ALPHA | C_DIGIT)))
        return; /* "1a" is not a version number ('-' and '_' may follow) */
    info->major = v;
    info->nversion = 1;
    if (maxparts < 2 || i + 1 >= len || s[i] != '.')
        return;
    i++;
    if (!parse_num(s, len, &i, 4, &v))
        return;
    info->minor = v;
    info->nversion = 2;
}

/* Does the table name occur case-insensitively at s[i], ending at a word
 * boundary? */
static bool name_at(const char *s, size_t len, size_t i, const struct name *name, size_t *end)
{
    size_t n = name->len;
    if (len - i < n)
        return false;
    for (size_t k = 0; k < n; k++)
        if (lower((unsigned char)s[i + k]) != lower((unsigned char)name->s[k]))
            return false;
    if (i + n < len && (cl(s[i + n]) & C_NAME))
        return false;
    *end = i + n;
    return true;
}

/* A bot name at a word start: a letter not preceded by a name character.
 * Walking whole runs of name characters visits exactly those positions:
 * inside a run every byte follows a name character, and a run that starts
 * with a digit, '-' or '_' holds no word start at all. */
static bool find_bot(const char *s, size_t len, struct ap_ua_info *info)
{
    size_t i = 0;
    for (;;) {
        while (i < len && !(cl(s[i]) & C_NAME))
            i++;
        if (i >= len)
            return false;
        if (cl(s[i]) & C_ALPHA) {
            unsigned char c = lower((unsigned char)s[i]);
            unsigned char c2 = i + 1 < len ? lower((unsigned char)s[i + 1]) : 0;
            const struct name *v = bots[c - 'a'].v;
            for (size_t b = 0, n = bots[c - 'a'].n; b < n; b++) {
                size_t end;
                if (lower((unsigned char)v[b].s[1]) == c2 && name_at(s, len, i, &v[b], &end)) {
                    info->family = AP_UA_BOT;
                    info->name = v[b].s;
                    parse_bot_version(s, len, end, 2, info);
                    return true;
                }
            }
        }
        while (i < len && (cl(s[i]) & C_NAME))
            i++;
    }
}

static bool find_tool(const char *s, size_t len, struct ap_ua_info *info)
{
    unsigned char c = lower((unsigned char)s[0]); /* len > 0 here */
    for (size_t t = 0; t < AP_ARRAY_SIZE(tools); t++) {
        size_t end;
        if (lower((unsigned char)tools[t].s[0]) != c)
            continue; /* name_at would fail at the first byte */
        if (name_at(s, len, 0, &tools[t], &end) && (end == len || s[end] == '/' || s[end] == ' ')) {
            info->family = AP_UA_TOOL;
            info->name = tools[t].s;
            parse_bot_version(s, len, end, 1, info);
            return true;
        }
    }
    return false;
}

/* The platform comment, split at ';': only the first MAXPARTS parts count,
 * the last of them ending at the next ';' or at the end of the comment. */
enum { MAXPARTS = 12 };

struct parts {
    const char *s; /* the comment */
    size_t end;    /* its length */
    size_t semi[MAXPARTS]; /* offsets of its first semicolons */
    size_t nsemi;
};

/* Part k, trimmed of spaces. */
static const char *part(const struct parts *pt, size_t k, size_t *n)
{
    size_t a = k == 0 ? 0 : pt->semi[k - 1] + 1;
    size_t b = k < pt->nsemi ? pt->semi[k] : pt->end;
    while (a < b && pt->s[a] == ' ')
        a++;
    while (b > a && pt->s[b - 1] == ' ')
        b--;
    *n = b - a;
    return pt->s + a;
}

static size_t nparts(const struct parts *pt)
{
    return pt->nsemi + 1 < MAXPARTS ? pt->nsemi + 1 : MAXPARTS;
}

/* Does any part start with (or equal) the `n` bytes of `lit`? Only the
 * Windows, X11, Linux and Firefox-on-Android cases ask. */
static bool any_part_starts(const struct parts *pt, const char *lit, size_t n)
{
    for (size_t k = 0, np = nparts(pt); k < np; k++) {
        size_t l;
        const char *p = part(pt, k, &l);
        if (l >= n && memcmp(p, lit, n) == 0)
            return true;
    }
    return false;
}

static bool any_part_is(const struct parts *pt, const char *lit, size_t n)
{
    for (size_t k = 0, np = nparts(pt); k < np; k++) {
        size_t l;
        const char *p = part(pt, k, &l);
        if (l == n && memcmp(p, lit, n) == 0)
            return true;
    }
    return false;
}

#define ANY_STARTS(pt, lit) any_part_starts(pt, lit, sizeof(lit) - 1)
#define ANY_IS(pt, lit) any_part_is(pt, lit, sizeof(lit) - 1)

/* Platform and, for Apple devices, device class from the platform comment. */
static enum ap_ua_platform platform_of(const struct parts *pt, enum ap_ua_device *dev)
{
    size_t l0;
    const char *p0 = part(pt, 0, &l0);
    *dev = AP_UA_DESKTOP;
    if (STARTS(p0, l0, "Windows NT ") || (EQ(p0, l0, "Windows") && ANY_STARTS(pt, "Windows NT ")))
        return AP_UA_WINDOWS;
    if (EQ(p0, l0, "Macintosh"))
        return AP_UA_MACOS;
    if (EQ(p0, l0, "iPhone") || EQ(p0, l0, "iPod") || EQ(p0, l0, "iPod touch")) {
        *dev = AP_UA_MOBILE;
        return AP_UA_IOS;
    }
    if (EQ(p0, l0, "iPad")) {
        *dev = AP_UA_TABLET;
        return AP_UA_IOS;
    }
    if (EQ(p0, l0, "X11"))
        return ANY_STARTS(pt, "CrOS ") ? AP_UA_CHROMEOS : AP_UA_LINUX;
    if ((EQ(p0, l0, "Linux") && ANY_STARTS(pt, "Android")) || STARTS(p0, l0, "Android"))
        return AP_UA_ANDROID;
    return AP_UA_PLATFORM_NONE;
}

/* Product tokens that a browser User-Agent may hold; anything else makes it
 * "Other". Slots record the version of the family-defining ones. */
enum tok {
    T_CHROME, T_CRIOS, T_FIREFOX, T_FXIOS, T_EDG, T_EDGA, T_EDGIOS, T_OPR, T_SAMSUNG,
    T_VERSION, T_NSLOTS,
    K_ALLOWED = T_NSLOTS, /* AppleWebKit, Gecko: any version or none */
    K_SAFARI,
    K_MOBILE,
    K_UNKNOWN
};

#define BIT(t) (1u << (t))

/* The kind of a product name: its length picks the few candidates, which
 * are compared with constant-size memcmp (a load or two each). */
static enum tok token_kind(const char *p, size_t n)
{
    switch (n) {
    case 3:
        if (memcmp(p, "Edg", 3) == 0)
            return T_EDG;
        if (memcmp(p, "OPR", 3) == 0)
            return T_OPR;
        break;
    case 4:
        if (memcmp(p, "EdgA", 4) == 0)
            return T_EDGA;
        break;
    case 5:
        if (memcmp(p, "Gecko", 5) == 0)
            return K_ALLOWED;
        if (memcmp(p, "CriOS", 5) == 0)
            return T_CRIOS;
        if (memcmp(p, "FxiOS", 5) == 0)
            return T_FXIOS;
        break;
    case 6:
        if (memcmp(p, "Safari", 6) == 0)
            return K_SAFARI;
        if (memcmp(p, "Chrome", 6) == 0)
            return T_CHROME;
        if (memcmp(p, "Mobile", 6) == 0)
            return K_MOBILE;
        if (memcmp(p, "EdgiOS", 6) == 0)
            return T_EDGIOS;
        break;
    case 7:
        if (memcmp(p, "Version", 7) == 0)
            return T_VERSION;
        if (memcmp(p, "Firefox", 7) == 0)
            return T_FIREFOX;
        break;
    case 11:
        if (memcmp(p, "AppleWebKit", 11) == 0)
            return K_ALLOWED;
        break;
    case 14:
        if (memcmp(p, "SamsungBrowser", 14) == 0)
            return T_SAMSUNG;
        break;
    default:
        break;
    }
    return K_UNKNOWN;
}

/* The usual case of a product token, a known name directly followed by
 * '/': picked by the first byte and checked with one constant-size memcmp,
 * without scanning for the end of the name. It gives what the scan and
 * token_kind() give, because no known name holds a byte that ends a name
 * (' ', '(', ')', '/'), so the name found by the scan is exactly the literal.
 * Returns K_UNKNOWN when it does not apply; the caller then scans. */
static enum tok known_slash(const char *s, size_t a, size_t len, size_t *nlen)
{
#define TRY(lit, kind)                                                                 \
    do {                                                                               \
        if (len - a > sizeof(lit) - 1 && s[a + sizeof(lit) - 1] == '/' &&              \
            memcmp(s + a, lit, sizeof(lit) - 1) == 0) {                                \
            *nlen = sizeof(lit) - 1;                                                   \
            return kind;                                                               \
        }                                                                              \
    } while (0)
    switch (s[a]) {
    case 'A':
        TRY("AppleWebKit", K_ALLOWED);
        break;
    case 'C':
        TRY("Chrome", T_CHROME);
        TRY("CriOS", T_CRIOS);
        break;
    case 'E':
        TRY("Edg", T_EDG);
        TRY("EdgA", T_EDGA);
        TRY("EdgiOS", T_EDGIOS);
        break;
    case 'F':
        TRY("Firefox", T_FIREFOX);
        TRY("FxiOS", T_FXIOS);
        break;
    case 'G':
        TRY("Gecko", K_ALLOWED);
        break;
    case 'M':
        TRY("Mobile", K_MOBILE);
        break;
    case 'O':
        TRY("OPR", T_OPR);
        break;
    case 'S':
        TRY("Safari", K_SAFARI);
        TRY("SamsungBrowser", T_SAMSUNG);
        break;
    case 'V':
        TRY("Version", T_VERSION);
        break;
    default:
        break;
    }
#undef TRY
    return K_UNKNOWN;
}

/* Try to read a clean browser User-Agent. Returns false when the string is
 * not one (unknown token, unknown platform, bad version, unlisted combo);
 * `info` is written only on success. */
static bool parse_browser(const char *s, size_t len, struct ap_ua_info *info)
{
    static const char head[] = "Mozilla/5.0 (";
    const size_t cstart = sizeof(head) - 1;
    if (!STARTS(s, len, "Mozilla/5.0 ("))
        return false;

    /* The platform comment up to its matching ')' (device names may hold
     * parentheses: "moto g power (2022)"), noting its first semicolons. The
     * inner loop skips the bytes that are none of "();". */
    struct parts pt;
    pt.s = s + cstart;
    pt.nsemi = 0;
    size_t i = cstart;
    unsigned depth = 1;
    for (;; i++) {
        i = scan(s, i, len, STOP_COMMENT);
        if (i >= len)
            return false;
        if (s[i] == ';') {
            if (pt.nsemi < MAXPARTS)
                pt.semi[pt.nsemi++] = i - cstart;
        } else if (s[i] == '(') {
            depth++;
        } else if (--depth == 0) {
            break;
        }
    }
    pt.end = i - cstart;
    i++;

    unsigned seen = 0;
    const char *ver[T_NSLOTS] = {0};
    size_t verlen[T_NSLOTS] = {0};
    bool safari = false, mobile_bare = false;
    while (i < len) {
        if (s[i] == ' ') {
            i++;
            continue;
        }
        if (s[i] == '(') {
            /* Nearly every browser sends exactly this comment; its bytes
             * hold no parenthesis, so matching them whole is the same as
             * scanning to the ')' and comparing the content. */
            if (STARTS(s + i, len - i, "(KHTML, like Gecko)")) {
                i += sizeof("(KHTML, like Gecko)") - 1;
                continue;
            }
            size_t a = ++i;
            while (i < len && s[i] != ')' && s[i] != '(')
                i++;
            if (i >= len || s[i] != ')')
                return false;
            size_t clen = i - a;
            i++;
            if (STARTS(s + a, clen, "Edition ") && (seen & BIT(T_OPR)))
                continue;
            return false;
        }
        /* A product token NAME[/VERSION] ends at ' ', '(' or ')'; its name
         * ends at the first '/'. */
        size_t a = i, nlen;
        bool has_ver = true;
        enum tok kind = known_slash(s, a, len, &nlen);
        if (kind == K_UNKNOWN) {
            i = scan(s, i, len, STOP_NAME);
            nlen = i - a;
            has_ver = i < len && s[i] == '/';
            kind = token_kind(s + a, nlen);
        }
        size_t v = a + nlen + 1;
        if (has_ver)
            i = scan(s, v, len, STOP_TOKEN);
        else
            i = a + nlen;
        if (kind < T_NSLOTS) {
            if (!has_ver || (seen & BIT(kind)))
                return false;
            seen |= BIT(kind);
            ver[kind] = s + v;
            verlen[kind] = i - v;
        } else if (kind == K_SAFARI) {
            safari = true;
        } else if (kind == K_MOBILE) {
            mobile_bare |= !has_ver;
        } else if (kind == K_UNKNOWN) {
            return false;
        }
    }

    enum ap_ua_device dev;
    enum ap_ua_platform plat = platform_of(&pt, &dev);
    if (plat == AP_UA_PLATFORM_NONE)
        return false;

    unsigned fams = seen & (BIT(T_EDG) | BIT(T_EDGA) | BIT(T_EDGIOS) | BIT(T_OPR) | BIT(T_SAMSUNG) |
                            BIT(T_CRIOS) | BIT(T_FXIOS) | BIT(T_FIREFOX));
    if ((fams & (fams - 1)) != 0)
        return false; /* more than one family token */

    enum ap_ua_family fam;
    enum tok slot;
    bool needs_engine = false;
    if (seen & (BIT(T_EDG) | BIT(T_EDGA) | BIT(T_EDGIOS))) {
        fam = AP_UA_EDGE;
        slot = (seen & BIT(T_EDG)) ? T_EDG : (seen & BIT(T_EDGA)) ? T_EDGA : T_EDGIOS;
        needs_engine = plat != AP_UA_IOS;
    } else if (seen & BIT(T_OPR)) {
        fam = AP_UA_OPERA;
        slot = T_OPR;
        needs_engine = true;
    } else if (seen & BIT(T_SAMSUNG)) {
        fam = AP_UA_SAMSUNG;
        slot = T_SAMSUNG;
        needs_engine = true;
    } else if (seen & BIT(T_CRIOS)) {
        fam = AP_UA_CHROME;
        slot = T_CRIOS;
    } else if (seen & BIT(T_FXIOS)) {
        fam = AP_UA_FIREFOX;
        slot = T_FXIOS;
    } else if (seen & BIT(T_FIREFOX)) {
        fam = AP_UA_FIREFOX;
        slot = T_FIREFOX;
    } else if (seen & BIT(T_CHROME)) {
        fam = AP_UA_CHROME;
        slot = T_CHROME;
    } else if ((seen & BIT(T_VERSION)) && safari) {
        fam = AP_UA_SAFARI;
        slot = T_VERSION;
    } else {
        return false;
    }
    /* The iOS-only tokens on another platform are a forgery or an emulator. */
    if ((slot == T_CRIOS || slot == T_FXIOS || slot == T_EDGIOS) && plat != AP_UA_IOS)
        return false;

    unsigned major, engine = 0;
    if (!browser_major(ver[slot], verlen[slot], &major))
        return false;
    if (needs_engine) {
        if (!(seen & BIT(T_CHROME)) || !browser_major(ver[T_CHROME], verlen[T_CHROME], &engine))
            return false;
    }

    if (plat == AP_UA_ANDROID) {
        if (fam == AP_UA_FIREFOX)
            dev = ANY_IS(&pt, "Mobile") ? AP_UA_MOBILE : AP_UA_TABLET;
        else
            dev = mobile_bare ? AP_UA_MOBILE : AP_UA_TABLET;
    }

    if (form_of(fam, plat, dev) == NULL)
        return false;

    info->family = fam;
    info->platform = plat;
    info->device = dev;
    info->major = major;
    info->engine_major = engine;
    return true;
}

void ap_ua_classify(const char *ua, size_t len, struct ap_ua_info *info)
{
    AP_BUG_ON(info == NULL);
    AP_BUG_ON(ua == NULL && len > 0);
    memset(info, 0, sizeof(*info));
    while (len > 0 && (ua[0] == ' ' || ua[0] == '\t')) {
        ua++;
        len--;
    }
    while (len > 0 && (ua[len - 1] == ' ' || ua[len - 1] == '\t'))
        len--;
    if (len == 0)
        return;
    /* Each finder writes `info` only when it succeeds, so a failed one
     * leaves it zeroed for the next. */
    if (parse_browser(ua, len, info) || find_bot(ua, len, info))
        return;
    find_tool(ua, len, info);
}

/* Append helpers of the bot and tool forms, whose name comes from the
 * caller's struct and so has no length bound: `*o` counts what would be
 * written, writes stop at cap. */
static void put(char *out, size_t cap, size_t *o, const char *s, size_t n)
{
    if (*o < cap)
        memcpy(out + *o, s, (cap - *o < n) ? cap - *o : n);
    *o += n;
}

static void put_num(char *out, size_t cap, size_t *o, unsigned v)
{
    char tmp[12];
    size_t n = sizeof(tmp);
    do {
        tmp[--n] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    put(out, cap, o, tmp + n, sizeof(tmp) - n);
}

/* A browser major, 1..999 (checked by the caller), in decimal. */
static char *put_major(char *p, unsigned v)
{
    if (v >= 100) {
        *p++ = (char)('0' + v / 100);
        v %= 100;
        *p++ = (char)('0' + v / 10);
    } else if (v >= 10) {
        *p++ = (char)('0' + v / 10);
    }
    *p++ = (char)('0' + v % 10);
    return p;
}

/* Write a browser form. Its length is below f->bound < AP_UA_REDUCED_MAX,
 * so an `out` of at least AP_UA_REDUCED_MAX bytes (the usual case) is
 * written directly; a smaller one gets, through a local buffer, exactly
 * what the bounded appends would have left there. */
static int write_form(const struct form *f, const struct ap_ua_info *info, char *out, size_t outcap,
                      size_t *outlen)
{
    char tmp[AP_UA_REDUCED_MAX];
    char *dst = outcap >= AP_UA_REDUCED_MAX ? out : tmp;
    char *p = dst;
    AP_BUG_ON(f->bound >= AP_UA_REDUCED_MAX);
    for (unsigned k = 0; k < f->nseg; k++) {
        memcpy(p, f->seg[k].s, f->seg[k].len);
        p += f->seg[k].len;
        if (f->seg[k].num != 0)
            p = put_major(p, f->seg[k].num == 'C' ? info->engine_major : info->major);
    }
    size_t o = (size_t)(p - dst);
    if (dst == tmp) {
        if (outcap > 0)
            memcpy(out, tmp, o < outcap ? o : outcap);
        if (o + 1 > outcap) {
            if (outcap > 0)
                out[0] = '\0';
            *outlen = 0;
            return -ENOBUFS;
        }
    }
    out[o] = '\0';
    *outlen = o;
    return 0;
}

int ap_ua_format(const struct ap_ua_info *info, char *out, size_t outcap, size_t *outlen)
{
    AP_BUG_ON(info == NULL || outlen == NULL);
    AP_BUG_ON(out == NULL && outcap > 0);
    size_t o = 0;

    if (info->family == AP_UA_BOT || info->family == AP_UA_TOOL) {
        if (info->name == NULL) {
            put(out, outcap, &o, "Other", 5);
        } else {
            put(out, outcap, &o, info->name, strlen(info->name));
            if (info->nversion >= 1) {
                put(out, outcap, &o, "/", 1);
                put_num(out, outcap, &o, info->major);
            }
            if (info->nversion >= 2 && info->family == AP_UA_BOT) {
                put(out, outcap, &o, ".", 1);
                put_num(out, outcap, &o, info->minor);
            }
        }
    } else {
        const struct form *f = form_of(info->family, info->platform, info->device);
        if (f != NULL && info->major >= 1 && info->major <= 999 &&
            (!f->engine || (info->engine_major >= 1 && info->engine_major <= 999)))
            return write_form(f, info, out, outcap, outlen);
        put(out, outcap, &o, "Other", 5);
    }
    if (o + 1 > outcap) {
        if (outcap > 0)
            out[0] = '\0';
        *outlen = 0;
        return -ENOBUFS;
    }
    out[o] = '\0';
    *outlen = o;
    return 0;
}

int ap_ua_reduce(const char *ua, size_t len, char *out, size_t outcap, size_t *outlen)
{
    struct ap_ua_info info;
    ap_ua_classify(ua, len, &info);
    return ap_ua_format(&info, out, outcap, outlen);
}

const char *ap_ua_family_name(enum ap_ua_family family)
{
    static const char *const names[] = {"Other", "Chrome", "Edge", "Firefox", "Safari",
                                        "Opera", "Samsung Internet", "bot", "tool"};
    return (unsigned)family < AP_ARRAY_SIZE(names) ? names[family] : "?";
}

const char *ap_ua_platform_name(enum ap_ua_platform platform)
{
    static const char *const names[] = {"-", "Windows", "macOS", "Linux", "ChromeOS",
                                        "Android", "iOS"};
    return (unsigned)platform < AP_ARRAY_SIZE(names) ? names[platform] : "?";
}

const char *ap_ua_device_name(enum ap_ua_device device)
{
    static const char *const names[] = {"-", "desktop", "mobile", "tablet"};
    return (unsigned)device < AP_ARRAY_SIZE(names) ? names[device] : "?";
}
