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

struct form {
    enum ap_ua_family family;
    enum ap_ua_platform platform;
    enum ap_ua_device device;
    const char *tpl; /* %M = major, %C = engine major */
};

#define CHROMIUM_WIN "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
#define CHROMIUM_MAC "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
#define CHROMIUM_LINUX "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
#define CHROMIUM_CROS "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) "
#define CHROMIUM_ANDROID "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
#define WEBKIT_IPHONE "Mozilla/5.0 (iPhone; CPU iPhone OS 18_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
#define WEBKIT_IPAD "Mozilla/5.0 (iPad; CPU OS 18_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "

static const struct form forms[] = {
    {AP_UA_CHROME, AP_UA_WINDOWS, AP_UA_DESKTOP, CHROMIUM_WIN "Chrome/%M.0.0.0 Safari/537.36"},
    {AP_UA_CHROME, AP_UA_MACOS, AP_UA_DESKTOP, CHROMIUM_MAC "Chrome/%M.0.0.0 Safari/537.36"},
    {AP_UA_CHROME, AP_UA_LINUX, AP_UA_DESKTOP, CHROMIUM_LINUX "Chrome/%M.0.0.0 Safari/537.36"},
    {AP_UA_CHROME, AP_UA_CHROMEOS, AP_UA_DESKTOP, CHROMIUM_CROS "Chrome/%M.0.0.0 Safari/537.36"},
    {AP_UA_CHROME, AP_UA_ANDROID, AP_UA_MOBILE, CHROMIUM_ANDROID "Chrome/%M.0.0.0 Mobile Safari/537.36"},
    {AP_UA_CHROME, AP_UA_ANDROID, AP_UA_TABLET, CHROMIUM_ANDROID "Chrome/%M.0.0.0 Safari/537.36"},
    {AP_UA_CHROME, AP_UA_IOS, AP_UA_MOBILE, WEBKIT_IPHONE "CriOS/%M.0.0.0 Mobile/15E148 Safari/604.1"},
    {AP_UA_CHROME, AP_UA_IOS, AP_UA_TABLET, WEBKIT_IPAD "CriOS/%M.0.0.0 Mobile/15E148 Safari/604.1"},

    {AP_UA_EDGE, AP_UA_WINDOWS, AP_UA_DESKTOP, CHROMIUM_WIN "Chrome/%C.0.0.0 Safari/537.36 Edg/%M.0.0.0"},
    {AP_UA_EDGE, AP_UA_MACOS, AP_UA_DESKTOP, CHROMIUM_MAC "Chrome/%C.0.0.0 Safari/537.36 Edg/%M.0.0.0"},
    {AP_UA_EDGE, AP_UA_LINUX, AP_UA_DESKTOP, CHROMIUM_LINUX "Chrome/%C.0.0.0 Safari/537.36 Edg/%M.0.0.0"},
    {AP_UA_EDGE, AP_UA_ANDROID, AP_UA_MOBILE, CHROMIUM_ANDROID "Chrome/%C.0.0.0 Mobile Safari/537.36 EdgA/%M.0.0.0"},
    {AP_UA_EDGE, AP_UA_ANDROID, AP_UA_TABLET, CHROMIUM_ANDROID "Chrome/%C.0.0.0 Safari/537.36 EdgA/%M.0.0.0"},
    {AP_UA_EDGE, AP_UA_IOS, AP_UA_MOBILE, WEBKIT_IPHONE "EdgiOS/%M.0.0.0 Mobile/15E148 Safari/605.1.15"},
    {AP_UA_EDGE, AP_UA_IOS, AP_UA_TABLET, WEBKIT_IPAD "EdgiOS/%M.0.0.0 Mobile/15E148 Safari/605.1.15"},

    {AP_UA_FIREFOX, AP_UA_WINDOWS, AP_UA_DESKTOP,
     "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:%M.0) Gecko/20100101 Firefox/%M.0"},
    {AP_UA_FIREFOX, AP_UA_MACOS, AP_UA_DESKTOP,
     "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:%M.0) Gecko/20100101 Firefox/%M.0"},
    {AP_UA_FIREFOX, AP_UA_LINUX, AP_UA_DESKTOP,
     "Mozilla/5.0 (X11; Linux x86_64; rv:%M.0) Gecko/20100101 Firefox/%M.0"},
    {AP_UA_FIREFOX, AP_UA_ANDROID, AP_UA_MOBILE,
     "Mozilla/5.0 (Android 10; Mobile; rv:%M.0) Gecko/%M.0 Firefox/%M.0"},
    {AP_UA_FIREFOX, AP_UA_ANDROID, AP_UA_TABLET,
     "Mozilla/5.0 (Android 10; Tablet; rv:%M.0) Gecko/%M.0 Firefox/%M.0"},
    {AP_UA_FIREFOX, AP_UA_IOS, AP_UA_MOBILE, WEBKIT_IPHONE "FxiOS/%M.0 Mobile/15E148 Safari/605.1.15"},
    {AP_UA_FIREFOX, AP_UA_IOS, AP_UA_TABLET, WEBKIT_IPAD "FxiOS/%M.0 Mobile/15E148 Safari/605.1.15"},

    {AP_UA_SAFARI, AP_UA_MACOS, AP_UA_DESKTOP,
     "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/%M.0 Safari/605.1.15"},
    {AP_UA_SAFARI, AP_UA_IOS, AP_UA_MOBILE, WEBKIT_IPHONE "Version/%M.0 Mobile/15E148 Safari/604.1"},
    {AP_UA_SAFARI, AP_UA_IOS, AP_UA_TABLET, WEBKIT_IPAD "Version/%M.0 Mobile/15E148 Safari/604.1"},

    {AP_UA_OPERA, AP_UA_WINDOWS, AP_UA_DESKTOP, CHROMIUM_WIN "Chrome/%C.0.0.0 Safari/537.36 OPR/%M.0.0.0"},
    {AP_UA_OPERA, AP_UA_MACOS, AP_UA_DESKTOP, CHROMIUM_MAC "Chrome/%C.0.0.0 Safari/537.36 OPR/%M.0.0.0"},
    {AP_UA_OPERA, AP_UA_LINUX, AP_UA_DESKTOP, CHROMIUM_LINUX "Chrome/%C.0.0.0 Safari/537.36 OPR/%M.0.0.0"},
    {AP_UA_OPERA, AP_UA_ANDROID, AP_UA_MOBILE, CHROMIUM_ANDROID "Chrome/%C.0.0.0 Mobile Safari/537.36 OPR/%M.0.0.0"},
    {AP_UA_OPERA, AP_UA_ANDROID, AP_UA_TABLET, CHROMIUM_ANDROID "Chrome/%C.0.0.0 Safari/537.36 OPR/%M.0.0.0"},

    {AP_UA_SAMSUNG, AP_UA_LINUX, AP_UA_DESKTOP, CHROMIUM_LINUX "SamsungBrowser/%M.0 Chrome/%C.0.0.0 Safari/537.36"},
    {AP_UA_SAMSUNG, AP_UA_ANDROID, AP_UA_MOBILE,
     CHROMIUM_ANDROID "SamsungBrowser/%M.0 Chrome/%C.0.0.0 Mobile Safari/537.36"},
    {AP_UA_SAMSUNG, AP_UA_ANDROID, AP_UA_TABLET, CHROMIUM_ANDROID "SamsungBrowser/%M.0 Chrome/%C.0.0.0 Safari/537.36"},
};

/* A table name with its length, so that lookups never call strlen. */
struct name {
    const char *s;
    size_t len;
};

#define NAME(lit) {lit, sizeof(lit) - 1}

/* Well-known crawlers, sorted by their lower-cased spelling so that the
 * lookup can binary-search the first letter. A unit test walks every entry. */
static const struct name bots[] = {
    NAME("AdsBot-Google"),
    NAME("AdsBot-Google-Mobile"),
    NAME("AhrefsBot"),
    NAME("Amazonbot"),
    NAME("anthropic-ai"),
    NAME("APIs-Google"),
    NAME("Applebot"),
    NAME("archive.org_bot"),
    NAME("AspiegelBot"),
    NAME("Baiduspider"),
    NAME("Baiduspider-image"),
    NAME("Barkrowler"),
    NAME("bingbot"),
    NAME("BingPreview"),
    NAME("BLEXBot"),
    NAME("Bytespider"),
    NAME("CCBot"),
    NAME("ChatGPT-User"),
    NAME("Claude-Web"),
    NAME("ClaudeBot"),
    NAME("coccocbot"),
    NAME("DataForSeoBot"),
    NAME("Diffbot"),
    NAME("Discordbot"),
    NAME("DotBot"),
    NAME("DuckAssistBot"),
    NAME("DuckDuckBot"),
    NAME("DuckDuckBot-Https"),
    NAME("Exabot"),
    NAME("facebookcatalog"),
    NAME("facebookexternalhit"),
    NAME("FeedFetcher-Google"),
    NAME("Google-InspectionTool"),
    NAME("Google-Site-Verification"),
    NAME("Googlebot"),
    NAME("Googlebot-Image"),
    NAME("Googlebot-Mobile"),
    NAME("Googlebot-News"),
    NAME("Googlebot-Video"),
    NAME("GoogleOther"),
    NAME("GPTBot"),
    NAME("ia_archiver"),
    NAME("ImagesiftBot"),
    NAME("LinkedInBot"),
    NAME("Mail.RU_Bot"),
    NAME("Mediapartners-Google"),
    NAME("meta-externalagent"),
    NAME("meta-externalfetcher"),
    NAME("MJ12bot"),
    NAME("MojeekBot"),
    NAME("msnbot"),
    NAME("OAI-SearchBot"),
    NAME("Perplexity-User"),
    NAME("PerplexityBot"),
    NAME("PetalBot"),
    NAME("Pinterestbot"),
    NAME("Qwantbot"),
    NAME("Qwantify"),
    NAME("redditbot"),
    NAME("Screaming Frog SEO Spider"),
    NAME("SeekportBot"),
    NAME("SemrushBot"),
    NAME("serpstatbot"),
    NAME("SeznamBot"),
    NAME("SiteAuditBot"),
    NAME("SkypeUriPreview"),
    NAME("Slackbot"),
    NAME("Slackbot-LinkExpanding"),
    NAME("Slurp"),
    NAME("Sogou web spider"),
    NAME("Storebot-Google"),
    NAME("TelegramBot"),
    NAME("Timpibot"),
    NAME("Twitterbot"),
    NAME("UptimeRobot"),
    NAME("WhatsApp"),
    NAME("YandexBot"),
    NAME("YandexImages"),
    NAME("YandexMobileBot"),
    NAME("Yeti"),
    NAME("YisouSpider"),
    NAME("ZoominfoBot"),
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

static unsigned char lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static bool is_name_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '-' ||
           c == '_';
}

static bool eq_lit(const char *s, size_t len, const char *lit)
{
    size_t n = strlen(lit);
    return len == n && memcmp(s, lit, n) == 0;
}

static bool starts_lit(const char *s, size_t len, const char *lit)
{
    size_t n = strlen(lit);
    return len >= n && memcmp(s, lit, n) == 0;
}

/* Parse up to `maxdigits` decimal digits at s[*i]; fails on none or more. */
static bool parse_num(const char *s, size_t len, size_t *i, unsigned maxdigits, unsigned *out)
{
    unsigned v = 0, nd = 0;
    while (*i < len && is_digit((unsigned char)s[*i])) {
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
    if (i < len && is_name_char((unsigned char)s[i]) && s[i] != '-' && s[i] != '_')
        return; /* "1a" is not a version number */
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
    if (i + n < len && is_name_char((unsigned char)s[i + n]))
        return false;
    *end = i + n;
    return true;
}

static bool find_bot(const char *s, size_t len, struct ap_ua_info *info)
{
    const size_t nbots = AP_ARRAY_SIZE(bots);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = lower((unsigned char)s[i]);
        if (!(c >= 'a' && c <= 'z'))
            continue;
        if (i > 0 && is_name_char((unsigned char)s[i - 1]))
            continue;
        /* First table entry whose first letter is >= c. */
        size_t lo = 0, hi = nbots;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (lower((unsigned char)bots[mid].s[0]) < c)
                lo = mid + 1;
            else
                hi = mid;
        }
        unsigned char c2 = i + 1 < len ? lower((unsigned char)s[i + 1]) : 0;
        for (size_t b = lo; b < nbots && lower((unsigned char)bots[b].s[0]) == c; b++) {
            size_t end;
            if (lower((unsigned char)bots[b].s[1]) == c2 && name_at(s, len, i, &bots[b], &end)) {
                info->family = AP_UA_BOT;
                info->name = bots[b].s;
                parse_bot_version(s, len, end, 2, info);
                return true;
            }
        }
    }
    return false;
}

static bool find_tool(const char *s, size_t len, struct ap_ua_info *info)
{
    for (size_t t = 0; t < AP_ARRAY_SIZE(tools); t++) {
        size_t end;
        if (name_at(s, len, 0, &tools[t], &end) && (end == len || s[end] == '/' || s[end] == ' ')) {
            info->family = AP_UA_TOOL;
            info->name = tools[t].s;
            parse_bot_version(s, len, end, 1, info);
            return true;
        }
    }
    return false;
}

/* The parts of the platform comment, split at ';' and trimmed. */
struct parts {
    struct {
        const char *p;
        size_t len;
    } v[12];
    size_t n;
};

static void split_parts(const char *s, size_t len, struct parts *pt)
{
    pt->n = 0;
    size_t i = 0;
    while (i <= len && pt->n < AP_ARRAY_SIZE(pt->v)) {
        const char *semi = i < len ? memchr(s + i, ';', len - i) : NULL;
        size_t j = semi ? (size_t)(semi - s) : len;
        size_t a = i, b = j;
        while (a < b && s[a] == ' ')
            a++;
        while (b > a && s[b - 1] == ' ')
            b--;
        pt->v[pt->n].p = s + a;
        pt->v[pt->n].len = b - a;
        pt->n++;
        i = j + 1;
    }
}

static bool any_part_starts(const struct parts *pt, const char *lit)
{
    for (size_t k = 0; k < pt->n; k++)
        if (starts_lit(pt->v[k].p, pt->v[k].len, lit))
            return true;
    return false;
}

static bool any_part_is(const struct parts *pt, const char *lit)
{
    for (size_t k = 0; k < pt->n; k++)
        if (eq_lit(pt->v[k].p, pt->v[k].len, lit))
            return true;
    return false;
}

/* Platform and, for Apple devices, device class from the platform comment. */
static enum ap_ua_platform platform_of(const struct parts *pt, enum ap_ua_device *dev)
{
    const char *p0 = pt->v[0].p;
    size_t l0 = pt->v[0].len;
    *dev = AP_UA_DESKTOP;
    if (starts_lit(p0, l0, "Windows NT ") ||
        (eq_lit(p0, l0, "Windows") && any_part_starts(pt, "Windows NT ")))
        return AP_UA_WINDOWS;
    if (eq_lit(p0, l0, "Macintosh"))
        return AP_UA_MACOS;
    if (eq_lit(p0, l0, "iPhone") || eq_lit(p0, l0, "iPod") || eq_lit(p0, l0, "iPod touch")) {
        *dev = AP_UA_MOBILE;
        return AP_UA_IOS;
    }
    if (eq_lit(p0, l0, "iPad")) {
        *dev = AP_UA_TABLET;
        return AP_UA_IOS;
    }
    if (eq_lit(p0, l0, "X11"))
        return any_part_starts(pt, "CrOS ") ? AP_UA_CHROMEOS : AP_UA_LINUX;
    if ((eq_lit(p0, l0, "Linux") && any_part_starts(pt, "Android")) || starts_lit(p0, l0, "Android"))
        return AP_UA_ANDROID;
    return AP_UA_PLATFORM_NONE;
}

/* Product tokens that a browser User-Agent may hold; anything else makes it
 * "Other". Slots record the version of the family-defining ones. */
enum tok {
    T_CHROME, T_CRIOS, T_FIREFOX, T_FXIOS, T_EDG, T_EDGA, T_EDGIOS, T_OPR, T_SAMSUNG,
    T_VERSION, T_NSLOTS
};

struct scan {
    const char *ver[T_NSLOTS];
    size_t verlen[T_NSLOTS];
    bool seen[T_NSLOTS];
    bool safari, mobile_bare;
};

static bool note_token(struct scan *sc, const char *name, size_t nlen, const char *ver,
                       size_t vlen, bool has_ver)
{
    static const struct {
        struct name name;
        int slot; /* >= 0: recorded; -1: allowed; -2: Safari; -3: Mobile */
    } known[] = {
        {NAME("AppleWebKit"), -1}, {NAME("Safari"), -2}, {NAME("Chrome"), T_CHROME},
        {NAME("Mobile"), -3}, {NAME("Gecko"), -1}, {NAME("Version"), T_VERSION},
        {NAME("Firefox"), T_FIREFOX}, {NAME("CriOS"), T_CRIOS}, {NAME("Edg"), T_EDG},
        {NAME("EdgA"), T_EDGA}, {NAME("EdgiOS"), T_EDGIOS}, {NAME("OPR"), T_OPR},
        {NAME("FxiOS"), T_FXIOS}, {NAME("SamsungBrowser"), T_SAMSUNG},
    };
    for (size_t k = 0; k < AP_ARRAY_SIZE(known); k++) {
        if (known[k].name.len != nlen || memcmp(known[k].name.s, name, nlen) != 0)
            continue;
        int slot = known[k].slot;
        if (slot == -2)
            sc->safari = true;
        else if (slot == -3)
            sc->mobile_bare |= !has_ver;
        else if (slot >= 0) {
            if (!has_ver || sc->seen[slot])
                return false;
            sc->seen[slot] = true;
            sc->ver[slot] = ver;
            sc->verlen[slot] = vlen;
        }
        return true;
    }
    return false;
}

/* Try to read a clean browser User-Agent. Returns false when the string is
 * not one (unknown token, unknown platform, bad version, unlisted combo). */
static bool parse_browser(const char *s, size_t len, struct ap_ua_info *info)
{
    static const char head[] = "Mozilla/5.0 (";
    if (!starts_lit(s, len, head))
        return false;
    size_t i = sizeof(head) - 1;
    size_t cstart = i;
    /* Device names may hold parentheses: "moto g power (2022)". */
    unsigned depth = 1;
    for (; i < len; i++) {
        if (s[i] == '(')
            depth++;
        else if (s[i] == ')' && --depth == 0)
            break;
    }
    if (i >= len)
        return false;
    struct parts pt;
    split_parts(s + cstart, i - cstart, &pt);
    i++;

    struct scan sc;
    memset(&sc, 0, sizeof(sc));
    while (i < len) {
        if (s[i] == ' ') {
            i++;
            continue;
        }
        if (s[i] == '(') {
            size_t a = ++i;
            while (i < len && s[i] != ')' && s[i] != '(')
                i++;
            if (i >= len || s[i] != ')')
                return false;
            const char *c = s + a;
            size_t clen = i - a;
            i++;
            if (eq_lit(c, clen, "KHTML, like Gecko") || (starts_lit(c, clen, "Edition ") && sc.seen[T_OPR]))
                continue;
            return false;
        }
        size_t a = i;
        static const bool ends_token[256] = {[' '] = 1, ['('] = 1, [')'] = 1};
        while (i < len && !ends_token[(unsigned char)s[i]])
            i++;
        const char *tok = s + a;
        size_t tlen = i - a;
        const char *slash = memchr(tok, '/', tlen);
        size_t nlen = slash ? (size_t)(slash - tok) : tlen;
        const char *ver = slash ? slash + 1 : NULL;
        size_t vlen = slash ? tlen - nlen - 1 : 0;
        if (!note_token(&sc, tok, nlen, ver, vlen, slash != NULL))
            return false;
    }

    enum ap_ua_device dev;
    enum ap_ua_platform plat = platform_of(&pt, &dev);
    if (plat == AP_UA_PLATFORM_NONE)
        return false;

    int nfam = sc.seen[T_EDG] + sc.seen[T_EDGA] + sc.seen[T_EDGIOS] + sc.seen[T_OPR] +
               sc.seen[T_SAMSUNG] + sc.seen[T_CRIOS] + sc.seen[T_FXIOS] + sc.seen[T_FIREFOX];
    if (nfam > 1)
        return false;

    enum ap_ua_family fam;
    int slot;
    bool needs_engine = false;
    if (sc.seen[T_EDG] || sc.seen[T_EDGA] || sc.seen[T_EDGIOS]) {
        fam = AP_UA_EDGE;
        slot = sc.seen[T_EDG] ? T_EDG : sc.seen[T_EDGA] ? T_EDGA : T_EDGIOS;
        needs_engine = plat != AP_UA_IOS;
    } else if (sc.seen[T_OPR]) {
        fam = AP_UA_OPERA;
        slot = T_OPR;
        needs_engine = true;
    } else if (sc.seen[T_SAMSUNG]) {
        fam = AP_UA_SAMSUNG;
        slot = T_SAMSUNG;
        needs_engine = true;
    } else if (sc.seen[T_CRIOS]) {
        fam = AP_UA_CHROME;
        slot = T_CRIOS;
    } else if (sc.seen[T_FXIOS]) {
        fam = AP_UA_FIREFOX;
        slot = T_FXIOS;
    } else if (sc.seen[T_FIREFOX]) {
        fam = AP_UA_FIREFOX;
        slot = T_FIREFOX;
    } else if (sc.seen[T_CHROME]) {
        fam = AP_UA_CHROME;
        slot = T_CHROME;
    } else if (sc.seen[T_VERSION] && sc.safari) {
        fam = AP_UA_SAFARI;
        slot = T_VERSION;
    } else {
        return false;
    }
    /* The iOS-only tokens on another platform are a forgery or an emulator. */
    if ((slot == T_CRIOS || slot == T_FXIOS || slot == T_EDGIOS) && plat != AP_UA_IOS)
        return false;

    unsigned major, engine = 0;
    if (!browser_major(sc.ver[slot], sc.verlen[slot], &major))
        return false;
    if (needs_engine) {
        if (!sc.seen[T_CHROME] || !browser_major(sc.ver[T_CHROME], sc.verlen[T_CHROME], &engine))
            return false;
    }

    if (plat == AP_UA_ANDROID) {
        if (fam == AP_UA_FIREFOX)
            dev = any_part_is(&pt, "Mobile") ? AP_UA_MOBILE : AP_UA_TABLET;
        else
            dev = sc.mobile_bare ? AP_UA_MOBILE : AP_UA_TABLET;
    }

    bool listed = false;
    for (size_t k = 0; k < AP_ARRAY_SIZE(forms) && !listed; k++)
        listed = forms[k].family == fam && forms[k].platform == plat && forms[k].device == dev;
    if (!listed)
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
    if (parse_browser(ua, len, info))
        return;
    memset(info, 0, sizeof(*info));
    if (find_bot(ua, len, info))
        return;
    memset(info, 0, sizeof(*info));
    if (find_tool(ua, len, info))
        return;
    memset(info, 0, sizeof(*info));
}

/* Append helpers: `*o` counts what would be written, writes stop at cap. */
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

/* Does the template hold "%C"? */
static bool uses_engine_major(const char *tpl)
{
    for (const char *p = strchr(tpl, '%'); p != NULL; p = strchr(p + 1, '%'))
        if (p[1] == 'C')
            return true;
    return false;
}

int ap_ua_format(const struct ap_ua_info *info, char *out, size_t outcap, size_t *outlen)
{
    AP_BUG_ON(info == NULL || outlen == NULL);
    AP_BUG_ON(out == NULL && outcap > 0);
    size_t o = 0;
    const struct form *f = NULL;

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
        /* The last listed form of the combination, as ever (they are unique). */
        for (size_t k = AP_ARRAY_SIZE(forms); k-- > 0 && f == NULL;)
            if (forms[k].family == info->family && forms[k].platform == info->platform &&
                forms[k].device == info->device)
                f = &forms[k];
        bool ok = f != NULL && info->major >= 1 && info->major <= 999;
        if (ok && uses_engine_major(f->tpl))
            ok = info->engine_major >= 1 && info->engine_major <= 999;
        if (!ok) {
            put(out, outcap, &o, "Other", 5);
        } else {
            for (const char *t = f->tpl; *t;) {
                const char *pct = strchr(t, '%');
                if (pct == NULL) {
                    put(out, outcap, &o, t, strlen(t));
                    break;
                }
                put(out, outcap, &o, t, (size_t)(pct - t));
                put_num(out, outcap, &o, pct[1] == 'C' ? info->engine_major : info->major);
                t = pct + 2;
            }
        }
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
