/* Unit tests of proxy/engine/ua.c: every reduced form, bots, tools, Other,
 * malformed and oversized input, and small output buffers. */
#include "anonproxy/common.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>

#include <cmocka.h>

#include "anonproxy/ua.h"

static const char *reduce(const char *ua)
{
    static char out[AP_UA_REDUCED_MAX];
    size_t n = 12345;
    assert_int_equal(ap_ua_reduce(ua, strlen(ua), out, sizeof(out), &n), 0);
    assert_int_equal(n, strlen(out));
    return out;
}

struct pair {
    const char *in;
    const char *out;
};

static const struct pair browsers[] = {
    /* Chrome */
    {"Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/109.0.5414.120 Safari/537.36",
     "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/109.0.0.0 Safari/537.36"},
    {"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2_1) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.86 Safari/537.36",
     "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"},
    {"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.224 Safari/537.36",
     "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"},
    {"Mozilla/5.0 (X11; FreeBSD amd64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/118.0.0.0 Safari/537.36",
     "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/118.0.0.0 Safari/537.36"},
    {"Mozilla/5.0 (X11; CrOS aarch64 15633.69.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.6045.212 Safari/537.36",
     "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36"},
    {"Mozilla/5.0 (Linux; Android 14; SM-S918B Build/UP1A.231005.007) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.81 Mobile Safari/537.36",
     "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36"},
    {"Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
     "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36"},
    {"Mozilla/5.0 (Linux; Android 14; moto g power (2022)) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
     "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36"},
    /* Android WebView is reported as Chrome. */
    {"Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/AP2A.240805.005; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/127.0.6533.103 Mobile Safari/537.36",
     "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/127.0.0.0 Mobile Safari/537.36"},
    {"Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1",
     "Mozilla/5.0 (iPhone; CPU iPhone OS 18_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.0.0 Mobile/15E148 Safari/604.1"},
    {"Mozilla/5.0 (iPad; CPU OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1",
     "Mozilla/5.0 (iPad; CPU OS 18_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.0.0 Mobile/15E148 Safari/604.1"},
    /* Edge */
    {"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.70",
     "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0"},
    {"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 Edg/130.0.2849.80",
     "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 Edg/130.0.0.0"},
    {"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0.0.0 Safari/537.36 Edg/129.0.2792.79",
     "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0.0.0 Safari/537.36 Edg/129.0.0.0"},
    {"Mozilla/5.0 (Linux; Android 10; HD1913) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.39 Mobile Safari/537.36 EdgA/131.0.2903.51",
     "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36 EdgA/131.0.0.0"},
    {"Mozilla/5.0 (Linux; Android 13; Tab) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.39 Safari/537.36 EdgA/131.0.2903.51",
     "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 EdgA/131.0.0.0"},
    {"Mozilla/5.0 (iPhone; CPU iPhone OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 EdgiOS/131.0.2903.56 Mobile/15E148 Safari/605.1.15",
     "Mozilla/5.0 (iPhone; CPU iPhone OS 18_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) EdgiOS/131.0.0.0 Mobile/15E148 Safari/605.1.15"},
    {"Mozilla/5.0 (iPad; CPU OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 EdgiOS/131.0.2903.56 Mobile/15E148 Safari/605.1.15",
     "Mozilla/5.0 (iPad; CPU OS 18_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) EdgiOS/131.0.0.0 Mobile/15E148 Safari/605.1.15"},
    /* Firefox */
    {"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
     "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"},
    {"Mozilla/5.0 (Windows NT 6.1; rv:115.0) Gecko/20100101 Firefox/115.0",
     "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:115.0) Gecko/20100101 Firefox/115.0"},
    {"Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:132.0) Gecko/20100101 Firefox/132.0",
     "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:132.0) Gecko/20100101 Firefox/132.0"},
    {"Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
     "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"},
    {"Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0",
     "Mozilla/5.0 (Android 10; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0"},
    {"Mozilla/5.0 (Android 13; Tablet; rv:128.0) Gecko/128.0 Firefox/128.0",
     "Mozilla/5.0 (Android 10; Tablet; rv:128.0) Gecko/128.0 Firefox/128.0"},
    {"Mozilla/5.0 (iPhone; CPU iPhone OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/133.1 Mobile/15E148 Safari/605.1.15",
     "Mozilla/5.0 (iPhone; CPU iPhone OS 18_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/133.0 Mobile/15E148 Safari/605.1.15"},
    {"Mozilla/5.0 (iPad; CPU OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/133.1 Mobile/15E148 Safari/605.1.15",
     "Mozilla/5.0 (iPad; CPU OS 18_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/133.0 Mobile/15E148 Safari/605.1.15"},
    /* Safari */
    {"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1.1 Safari/605.1.15",
     "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 Safari/605.1.15"},
    {"Mozilla/5.0 (iPhone; CPU iPhone OS 17_6_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
     "Mozilla/5.0 (iPhone; CPU iPhone OS 18_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"},
    {"Mozilla/5.0 (iPod touch; CPU iPhone OS 15_8 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/15.6.6 Mobile/15E148 Safari/604.1",
     "Mozilla/5.0 (iPhone; CPU iPhone OS 18_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/15.0 Mobile/15E148 Safari/604.1"},
    {"Mozilla/5.0 (iPad; CPU OS 16_7_10 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
     "Mozilla/5.0 (iPad; CPU OS 18_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.0 Mobile/15E148 Safari/604.1"},
    /* Opera */
    {"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 OPR/115.0.0.0 (Edition std-1)",
     "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 OPR/115.0.0.0"},
    {"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 OPR/115.0.5322.77",
     "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 OPR/115.0.0.0"},
    {"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 OPR/115.0.0.0",
     "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 OPR/115.0.0.0"},
    {"Mozilla/5.0 (Linux; Android 10; VOG-L29) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0.6668.100 Mobile Safari/537.36 OPR/85.0.4341.79444",
     "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0.0.0 Mobile Safari/537.36 OPR/85.0.0.0"},
    {"Mozilla/5.0 (Linux; Android 12; Tab) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0.6668.100 Safari/537.36 OPR/85.0.4341.79444",
     "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0.0.0 Safari/537.36 OPR/85.0.0.0"},
    /* Samsung Internet */
    {"Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/27.0 Chrome/125.0.0.0 Mobile Safari/537.36",
     "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/27.0 Chrome/125.0.0.0 Mobile Safari/537.36"},
    {"Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Safari/537.36",
     "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Safari/537.36"},
    {"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Safari/537.36",
     "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Safari/537.36"},
    /* Surrounding space is ignored. */
    {"  Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0\t",
     "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"},
};

static void test_browsers(void **state)
{
    (void)state;
    for (size_t k = 0; k < AP_ARRAY_SIZE(browsers); k++) {
        const char *got = reduce(browsers[k].in);
        if (strcmp(got, browsers[k].out) != 0)
            print_error("case %zu: %s\n", k, browsers[k].in);
        assert_string_equal(got, browsers[k].out);
        /* A reduced form reduces to itself. */
        char again[AP_UA_REDUCED_MAX];
        snprintf(again, sizeof(again), "%s", got);
        assert_string_equal(reduce(again), again);
    }
}

static void test_classify_fields(void **state)
{
    (void)state;
    struct ap_ua_info info;
    const char *ua = "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
                     "SamsungBrowser/27.0 Chrome/125.0.6422.165 Mobile Safari/537.36";
    ap_ua_classify(ua, strlen(ua), &info);
    assert_int_equal(info.family, AP_UA_SAMSUNG);
    assert_int_equal(info.platform, AP_UA_ANDROID);
    assert_int_equal(info.device, AP_UA_MOBILE);
    assert_int_equal(info.major, 27);
    assert_int_equal(info.engine_major, 125);
    assert_null(info.name);
    assert_string_equal(ap_ua_family_name(info.family), "Samsung Internet");
    assert_string_equal(ap_ua_platform_name(info.platform), "Android");
    assert_string_equal(ap_ua_device_name(info.device), "mobile");
    assert_string_equal(ap_ua_family_name((enum ap_ua_family)99), "?");
    assert_string_equal(ap_ua_platform_name((enum ap_ua_platform)99), "?");
    assert_string_equal(ap_ua_device_name((enum ap_ua_device)99), "?");
}

/* Every entry of the bot table, in the documented spelling. The lookup
 * goes by the first letter, so an entry filed under the wrong one fails
 * here. */
static const char *const bot_names[] = {
    "AdsBot-Google", "AdsBot-Google-Mobile", "AhrefsBot", "Amazonbot", "anthropic-ai",
    "APIs-Google", "Applebot", "archive.org_bot", "AspiegelBot", "Baiduspider",
    "Baiduspider-image", "Barkrowler", "bingbot", "BingPreview", "BLEXBot", "Bytespider",
    "CCBot", "ChatGPT-User", "Claude-Web", "ClaudeBot", "coccocbot", "DataForSeoBot",
    "Diffbot", "Discordbot", "DotBot", "DuckAssistBot", "DuckDuckBot", "DuckDuckBot-Https",
    "Exabot", "facebookcatalog", "facebookexternalhit", "FeedFetcher-Google",
    "Google-InspectionTool", "Google-Site-Verification", "Googlebot", "Googlebot-Image", "Googlebot-Mobile",
    "Googlebot-News", "Googlebot-Video", "GoogleOther", "GPTBot", "ia_archiver",
    "ImagesiftBot", "LinkedInBot", "Mail.RU_Bot", "Mediapartners-Google",
    "meta-externalagent", "meta-externalfetcher", "MJ12bot", "MojeekBot", "msnbot",
    "OAI-SearchBot", "Perplexity-User", "PerplexityBot", "PetalBot", "Pinterestbot",
    "Qwantbot", "Qwantify", "redditbot", "Screaming Frog SEO Spider", "SeekportBot", "SemrushBot",
    "serpstatbot", "SeznamBot", "SiteAuditBot", "SkypeUriPreview", "Slackbot",
    "Slackbot-LinkExpanding", "Slurp", "Sogou web spider", "Storebot-Google", "TelegramBot",
    "Timpibot", "Twitterbot", "UptimeRobot", "WhatsApp", "YandexBot", "YandexImages",
    "YandexMobileBot", "Yeti", "YisouSpider", "ZoominfoBot",
};

static void test_every_bot(void **state)
{
    (void)state;
    for (size_t k = 0; k < AP_ARRAY_SIZE(bot_names); k++) {
        char in[256], want[128];
        snprintf(in, sizeof(in), "Mozilla/5.0 (compatible; %s/3.14.159; +http://example.com/bot)",
                 bot_names[k]);
        snprintf(want, sizeof(want), "%s/3.14", bot_names[k]);
        assert_string_equal(reduce(in), want);
        /* Alone and without a version. */
        assert_string_equal(reduce(bot_names[k]), bot_names[k]);
    }
}

static void test_bots(void **state)
{
    (void)state;
    assert_string_equal(reduce("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"),
                        "Googlebot/2.1");
    assert_string_equal(reduce("Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 "
                               "(KHTML, like Gecko) Chrome/131.0.6778.69 Mobile Safari/537.36 "
                               "(compatible; Googlebot/2.1; +http://www.google.com/bot.html)"),
                        "Googlebot/2.1");
    assert_string_equal(reduce("Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; "
                               "bingbot/2.0; +http://www.bing.com/bingbot.htm) Chrome/116.0.1938.76 Safari/537.36"),
                        "bingbot/2.0");
    assert_string_equal(reduce("Googlebot-Image/1.0"), "Googlebot-Image/1.0");
    assert_string_equal(reduce("facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)"),
                        "facebookexternalhit/1.1");
    assert_string_equal(reduce("Mozilla/5.0 (compatible; Yahoo! Slurp; http://help.yahoo.com/help/us/ysearch/slurp)"),
                        "Slurp");
    assert_string_equal(reduce("Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"),
                        "Slackbot-LinkExpanding");
    assert_string_equal(reduce("mozilla/5.0 (compatible; GOOGLEBOT/2.1)"), "Googlebot/2.1");
    /* Only a whole word is a bot name. */
    assert_string_equal(reduce("XGooglebot/2.1"), "Other");
    assert_string_equal(reduce("Googlebotty/2.1"), "Other");
    /* Version components past four digits are not versions. */
    assert_string_equal(reduce("Googlebot/123456.1"), "Googlebot");
    assert_string_equal(reduce("Googlebot/2.123456"), "Googlebot/2");
    assert_string_equal(reduce("Googlebot/2a"), "Googlebot");
    assert_string_equal(reduce("Googlebot/"), "Googlebot");
}

static void test_tools(void **state)
{
    (void)state;
    assert_string_equal(reduce("curl/8.4.0"), "curl/8");
    assert_string_equal(reduce("Wget/1.21.3"), "Wget/1");
    assert_string_equal(reduce("Wget"), "Wget");
    assert_string_equal(reduce("python-requests/2.31.0"), "python-requests/2");
    assert_string_equal(reduce("Python-urllib/3.11"), "Python-urllib/3");
    assert_string_equal(reduce("Go-http-client/1.1"), "Go-http-client/1");
    assert_string_equal(reduce("okhttp/4.12.0"), "okhttp/4");
    assert_string_equal(reduce("Java/1.8.0_392"), "Java/1");
    assert_string_equal(reduce("PostmanRuntime/7.39.0"), "PostmanRuntime/7");
    assert_string_equal(reduce("Python/3.11 aiohttp/3.9.1"), "Python/3");
    assert_string_equal(reduce("CURL/7.88.1"), "curl/7");
    /* A tool is recognised as the first token only. */
    assert_string_equal(reduce("MyApp/1.0 curl/8.4.0"), "Other");
    assert_string_equal(reduce("curly/1.0"), "Other");
}

static void test_other(void **state)
{
    (void)state;
    static const char *const others[] = {
        "",
        "   ",
        "Mozilla/5.0",
        "Mozilla/5.0 (",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64)",
        "Mozilla/5.0 (Windows NT 10.0; WOW64; Trident/7.0; rv:11.0) like Gecko",
        "Opera/9.80 (J2ME/MIDP; Opera Mini/9.80 (S60; SymbOS; Opera Mobi/23.348; U; en) Presto/2.5.25 Version/10.54",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) GSA/379.0.790925000 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 YaBrowser/24.1.0.0 Safari/537.36",
        "Mozilla/5.0 (Linux; Android 14; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36 (Ecosia android@131)",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/0.1.2.3 Safari/537.36",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/1000.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/abc Safari/537.36",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/ Safari/537.36",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131x Safari/537.36",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/1.0 Chrome/2.0 Safari/537.36",
        /* Edge and Opera tokens together, Opera without Chrome, CriOS off iOS. */
        "Mozilla/5.0 (Windows NT 10.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Edg/131.0 OPR/115.0",
        "Mozilla/5.0 (Windows NT 10.0) AppleWebKit/537.36 (KHTML, like Gecko) Safari/537.36 OPR/115.0",
        "Mozilla/5.0 (Windows NT 10.0) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0 Safari/604.1",
        /* Unlisted combinations: Safari on Windows, Samsung on Windows, Firefox on ChromeOS. */
        "Mozilla/5.0 (Windows NT 10.0) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/5.1 Safari/605.1.15",
        "Mozilla/5.0 (Windows NT 10.0) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/20.0 Chrome/110.0 Safari/537.36",
        "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0; rv:120.0) Gecko/20100101 Firefox/120.0",
        /* Platforms we do not reduce. */
        "Mozilla/5.0 (PlayStation; PlayStation 5/2.26) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.0 Safari/605.1.15",
        "Mozilla/5.0 (Windows Phone 10.0; Android 6.0.1; Microsoft; Lumia 950) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/52.0.2743.116 Mobile Safari/537.36 Edge/15.15063",
        "Mozilla/5.0 (Linux; Tizen 6.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/76.0.3809.146 Safari/537.36",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 (unclosed",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36)",
        "MyCompanyApp/5.2 (iPhone; iOS 17.1; Scale/3.00)",
        "\x01\x02\xff\xfe",
    };
    for (size_t k = 0; k < AP_ARRAY_SIZE(others); k++) {
        const char *got = reduce(others[k]);
        if (strcmp(got, "Other") != 0)
            print_error("case %zu: %s\n", k, others[k]);
        assert_string_equal(got, "Other");
    }
}

static void test_nul_and_long_input(void **state)
{
    (void)state;
    char out[AP_UA_REDUCED_MAX];
    size_t n;
    const char with_nul[] = "curl/8.1\0Googlebot/2.1";
    assert_int_equal(ap_ua_reduce(with_nul, sizeof(with_nul) - 1, out, sizeof(out), &n), 0);
    assert_string_equal(out, "Googlebot/2.1");

    size_t len = 1 << 20;
    char *big = malloc(len);
    if (big == NULL) {
        fail_msg("out of memory");
        return;
    }
    memset(big, 'A', len);
    assert_int_equal(ap_ua_reduce(big, len, out, sizeof(out), &n), 0);
    assert_string_equal(out, "Other");
    /* A browser User-Agent with an enormous platform comment. */
    const char *head = "Mozilla/5.0 (Linux; Android 14; ";
    const char *tail = ") AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36";
    memcpy(big, head, strlen(head));
    memset(big + strlen(head), ';', len / 2);
    size_t used = strlen(head) + len / 2;
    memcpy(big + used, tail, strlen(tail));
    used += strlen(tail);
    assert_int_equal(ap_ua_reduce(big, used, out, sizeof(out), &n), 0);
    assert_string_equal(out, "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
                             "Chrome/131.0.0.0 Mobile Safari/537.36");
    /* Deeply nested parentheses. */
    memset(big, '(', len);
    assert_int_equal(ap_ua_reduce(big, len, out, sizeof(out), &n), 0);
    assert_string_equal(out, "Other");
    free(big);
}

static void test_small_buffer(void **state)
{
    (void)state;
    const char *ua = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                     "Chrome/131.0.6778.86 Safari/537.36";
    const char *want = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                       "Chrome/131.0.0.0 Safari/537.36";
    size_t need = strlen(want) + 1;
    char buf[AP_UA_REDUCED_MAX + 8];
    for (size_t cap = 0; cap <= need; cap++) {
        memset(buf, 'Z', sizeof(buf));
        size_t n = 99;
        int rc = ap_ua_reduce(ua, strlen(ua), cap ? buf : NULL, cap, &n);
        if (cap < need) {
            assert_int_equal(rc, -ENOBUFS);
            assert_int_equal(n, 0);
            if (cap > 0)
                assert_int_equal(buf[0], '\0');
        } else {
            assert_int_equal(rc, 0);
            assert_string_equal(buf, want);
        }
        for (size_t k = cap; k < sizeof(buf); k++)
            assert_int_equal(buf[k], 'Z');
    }
    /* "Other" and bot forms too. */
    size_t n;
    assert_int_equal(ap_ua_reduce("x", 1, buf, 5, &n), -ENOBUFS);
    assert_int_equal(ap_ua_reduce("x", 1, buf, 6, &n), 0);
    assert_int_equal(ap_ua_reduce("Googlebot/2.1", 13, buf, 13, &n), -ENOBUFS);
    assert_int_equal(ap_ua_reduce("Googlebot/2.1", 13, buf, 14, &n), 0);
}

static void test_format_bad_info(void **state)
{
    (void)state;
    char out[AP_UA_REDUCED_MAX];
    size_t n;
    struct ap_ua_info info;
    memset(&info, 0, sizeof(info));
    info.family = AP_UA_SAFARI;
    info.platform = AP_UA_WINDOWS;
    info.device = AP_UA_DESKTOP;
    info.major = 5;
    assert_int_equal(ap_ua_format(&info, out, sizeof(out), &n), 0);
    assert_string_equal(out, "Other");
    info.family = AP_UA_EDGE;
    info.major = 131;
    info.engine_major = 0; /* Edge on Windows needs the Chromium major */
    assert_int_equal(ap_ua_format(&info, out, sizeof(out), &n), 0);
    assert_string_equal(out, "Other");
    info.engine_major = 131;
    info.major = 1000;
    assert_int_equal(ap_ua_format(&info, out, sizeof(out), &n), 0);
    assert_string_equal(out, "Other");
    memset(&info, 0, sizeof(info));
    info.family = AP_UA_BOT; /* no name */
    assert_int_equal(ap_ua_format(&info, out, sizeof(out), &n), 0);
    assert_string_equal(out, "Other");
    info.family = AP_UA_TOOL;
    info.name = "curl";
    info.nversion = 2; /* tools never show a minor */
    info.major = 8;
    info.minor = 4;
    assert_int_equal(ap_ua_format(&info, out, sizeof(out), &n), 0);
    assert_string_equal(out, "curl/8");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_browsers),
        cmocka_unit_test(test_classify_fields),
        cmocka_unit_test(test_every_bot),
        cmocka_unit_test(test_bots),
        cmocka_unit_test(test_tools),
        cmocka_unit_test(test_other),
        cmocka_unit_test(test_nul_and_long_input),
        cmocka_unit_test(test_small_buffer),
        cmocka_unit_test(test_format_bad_info),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
