/* Vendor presets. Each table was read from the requests that the vendor's
 * own browser SDK sends (tests/fixtures/vendors/<vendor>/, captured by
 * tests/fixtures/capture/capture.sh) and from its documented wire format;
 * docs/presets.md explains every line.
 *
 * Conventions shared by all tables:
 *   - identifiers of a device, a user or a session: pseudonymised, so a
 *     vendor can still count and join within one UTC day;
 *   - page URLs: cleaned (query reduced to utm_*, fragment removed);
 *     referrers: origin only;
 *   - User-Agents: reduced; IP addresses: truncated;
 *   - e-mail addresses, names and phone numbers that SDKs put in "traits"
 *     or "$set": pseudonymised (e-mail, phone) or dropped (names);
 *   - screen sizes rounded to 100 pixels: they are a fingerprinting signal;
 *   - a layer rule on a field that holds free-form JSON (custom contexts,
 *     custom properties) makes the rewriter decode it so the detectors see
 *     inside.
 * Keys that a vendor needs to accept the request (project tokens, API keys,
 * event names, message ids) are not touched. */
#include "anonproxy/common.h"

#include <errno.h>

#include "anonproxy/body.h"
#include "anonproxy/bodypreset.h"

struct preset_rule {
    const char *path;
    enum ap_body_action action;
    const char *arg;
};

#define P AP_BODY_PSEUDO
#define D AP_BODY_DROP
#define T AP_BODY_TRUNCATE_IP
#define C AP_BODY_CLEAN_URL
#define O AP_BODY_ORIGIN_ONLY
#define U AP_BODY_REDUCE_UA
#define R AP_BODY_ROUND
#define K AP_BODY_KEEP

/* posthog-js: /e/, /i/v0/e/, /batch/, /s/ and /flags/ (/decide/) bodies:
 * an event, an array of events or {"batch": [...]}, JSON or gzip
 * (compression=gzip-js), or a form whose data= is base64 JSON
 * (compression=base64). */
static const struct preset_rule posthog[] = {
    {"$..distinct_id", P, NULL},
    {"$..$device_id", P, NULL},
    {"$..$user_id", P, NULL},
    {"$..$anon_distinct_id", P, NULL},
    {"$..$session_id", P, NULL},
    {"$..$window_id", P, NULL},
    {"$..$current_url", C, NULL},
    {"$..$initial_current_url", C, NULL},
    {"$..$referrer", O, NULL},
    {"$..$initial_referrer", O, NULL},
    {"$..$initial_person_info.u", C, NULL},
    {"$..$initial_person_info.r", O, NULL},
    {"$..$raw_user_agent", U, NULL},
    {"$..$ip", T, NULL},
    {"$..$screen_height", R, "100"},
    {"$..$screen_width", R, "100"},
    {"$..$viewport_height", R, "100"},
    {"$..$viewport_width", R, "100"},
    {"$..email", P, NULL},
    {"$..$email", P, NULL},
    {"$..$session_entry_url", C, NULL},
    {"$..$session_entry_referrer", O, NULL},
    /* Click ids of networks the click-id detector does not know by name. */
    {"$..*gclsrc", D, NULL},
    {"$..*rdt_cid", D, NULL},
    {"$..*epik", D, NULL},
    {"$..*qclid", D, NULL},
    {"$..*sccid", D, NULL},
    {"$..*irclid", D, NULL},
    {"$..*_kx", D, NULL},
    {"$..*bfcid", D, NULL},
    {"$.data>base64json..distinct_id", P, NULL},
    {"$.data>base64json..$device_id", P, NULL},
    {"$.data>base64json..$session_id", P, NULL},
    {"$.data>base64json..$window_id", P, NULL},
    {"$.data>base64json..$current_url", C, NULL},
    {"$.data>base64json..$referrer", O, NULL},
    {"$.data>base64json..$raw_user_agent", U, NULL},
    {"$.data>base64json..$ip", T, NULL},
    {"$.data>base64json..$anon_distinct_id", P, NULL},
    {"$.data>base64json..$user_id", P, NULL},
    {"$.data>base64json..$initial_current_url", C, NULL},
    {"$.data>base64json..$initial_referrer", O, NULL},
    {"$.data>base64json..$session_entry_url", C, NULL},
    {"$.data>base64json..$session_entry_referrer", O, NULL},
    {"$.data>base64json..email", P, NULL},
};

/* analytics.js (analytics-next): /v1/t, /v1/p, /v1/i, /v1/g, /v1/a,
 * /v1/batch: one message or {"batch": [...]} as text/plain JSON. */
static const struct preset_rule segment[] = {
    {"$..anonymousId", P, NULL},
    {"$..userId", P, NULL},
    {"$..previousId", P, NULL},
    {"$..groupId", P, NULL},
    {"$..context.ip", T, NULL},
    {"$..context.userAgent", U, NULL},
    {"$..context.page.url", C, NULL},
    {"$..context.page.search", C, NULL},
    {"$..context.page.referrer", O, NULL},
    {"$..properties.url", C, NULL},
    {"$..properties.search", C, NULL},
    {"$..properties.referrer", O, NULL},
    {"$..traits.email", P, NULL},
    {"$..traits.phone", P, NULL},
    {"$..traits.name", D, NULL},
    {"$..traits.firstName", D, NULL},
    {"$..traits.lastName", D, NULL},
    {"$..traits.address", D, NULL},
    {"$..traits.birthday", D, NULL},
    {"$..context.screen.width", R, "100"},
    {"$..context.screen.height", R, "100"},
};

/* rudder-sdk-js / @rudderstack/analytics-js: /v1/<type> and /v1/batch. */
static const struct preset_rule rudderstack[] = {
    {"$..anonymousId", P, NULL},
    {"$..userId", P, NULL},
    {"$..previousId", P, NULL},
    {"$..groupId", P, NULL},
    {"$..context.ip", T, NULL},
    {"$..request_ip", T, NULL},
    {"$..context.userAgent", U, NULL},
    {"$..context.page.url", C, NULL},
    {"$..context.page.tab_url", C, NULL},
    {"$..context.page.search", C, NULL},
    {"$..context.page.referrer", O, NULL},
    {"$..context.page.initial_referrer", O, NULL},
    {"$..properties.url", C, NULL},
    {"$..properties.tab_url", C, NULL},
    {"$..properties.search", C, NULL},
    {"$..properties.referrer", O, NULL},
    {"$..properties.initial_referrer", O, NULL},
    {"$..traits.email", P, NULL},
    {"$..traits.phone", P, NULL},
    {"$..traits.name", D, NULL},
    {"$..traits.firstName", D, NULL},
    {"$..traits.lastName", D, NULL},
    {"$..traits.firstname", D, NULL},
    {"$..traits.lastname", D, NULL},
    {"$..traits.address", D, NULL},
    {"$..traits.birthday", D, NULL},
    {"$..context.screen.width", R, "100"},
    {"$..context.screen.height", R, "100"},
    {"$..context.screen.innerWidth", R, "100"},
    {"$..context.screen.innerHeight", R, "100"},
};

/* @amplitude/analytics-browser: /2/httpapi and /batch JSON
 * {"api_key", "events": [...]}; amplitude-js (legacy): a form with e=<JSON
 * array> and a checksum of it, which a rewrite invalidates, so it goes. */
static const struct preset_rule amplitude[] = {
    {"$.events[*].device_id", P, NULL},
    {"$.events[*].user_id", P, NULL},
    {"$.events[*].ip", T, NULL},
    {"$.events[*].user_agent", U, NULL},
    {"$.events[*].adid", P, NULL},
    {"$.events[*].idfa", P, NULL},
    {"$.events[*].idfv", P, NULL},
    {"$.events[*].android_id", P, NULL},
    {"$.events[*].location_lat", D, NULL},
    {"$.events[*].location_lng", D, NULL},
    {"$..['[Amplitude] Page URL']", C, NULL},
    {"$..['[Amplitude] Page Location']", C, NULL},
    {"$..referrer", O, NULL},
    {"$..initial_referrer", O, NULL},
    {"$..*clid", D, NULL},
    {"$..*clkid", D, NULL},
    {"$..*braid", D, NULL},
    {"$..email", P, NULL},
    {"$.e>json[*].device_id", P, NULL},
    {"$.e>json[*].user_id", P, NULL},
    {"$.e>json[*].ip", T, NULL},
    {"$.e>json[*].user_agent", U, NULL},
    {"$.e>json..referrer", O, NULL},
    {"$.e>json..initial_referrer", O, NULL},
    {"$.checksum", D, NULL},
};

/* mixpanel-browser: /track/, /engage/, /groups/ and /record/ as a form whose
 * data= holds JSON (or base64 JSON with api_payload_format base64). */
static const struct preset_rule mixpanel[] = {
    {"$.data>json..distinct_id", P, NULL},
    {"$.data>json..$distinct_id", P, NULL},
    {"$.data>json..$device_id", P, NULL},
    {"$.data>json..$user_id", P, NULL},
    {"$.data>json..$anon_id", P, NULL},
    {"$.data>json..$anon_distinct_id", P, NULL},
    {"$.data>json..$current_url", C, NULL},
    {"$.data>json..current_url_search", C, NULL},
    {"$.data>json..$initial_referrer", O, NULL},
    {"$.data>json..$referrer", O, NULL},
    {"$.data>json..$screen_height", R, "100"},
    {"$.data>json..$screen_width", R, "100"},
    {"$.data>json..$email", P, NULL},
    {"$.data>json..$phone", P, NULL},
    {"$.data>json..$name", D, NULL},
    {"$.data>json..$first_name", D, NULL},
    {"$.data>json..$last_name", D, NULL},
    {"$.data>json..ip", T, NULL},
    {"$.data>base64json..distinct_id", P, NULL},
    {"$.data>base64json..$distinct_id", P, NULL},
    {"$.data>base64json..$device_id", P, NULL},
    {"$.data>base64json..$user_id", P, NULL},
    {"$.data>base64json..$anon_id", P, NULL},
    {"$.data>base64json..$anon_distinct_id", P, NULL},
    {"$.data>base64json..$current_url", C, NULL},
    {"$.data>base64json..current_url_search", C, NULL},
    {"$.data>base64json..$initial_referrer", O, NULL},
    {"$.data>base64json..$referrer", O, NULL},
    {"$.data>base64json..$email", P, NULL},
    {"$.data>base64json..$name", D, NULL},
    {"$..distinct_id", P, NULL},
    {"$..$device_id", P, NULL},
    {"$..$user_id", P, NULL},
    {"$..$current_url", C, NULL},
    {"$..$initial_referrer", O, NULL},
};

/* @snowplow/browser-tracker: POST /com.snowplowanalytics.snowplow/tp2
 * {"schema": "...payload_data...", "data": [events]}; each event is the
 * tracker protocol's flat map, with contexts in co (JSON text) or cx
 * (base64url JSON) and self-describing events in ue_pr / ue_px. */
static const struct preset_rule snowplow[] = {
    {"$.data[*].duid", P, NULL},
    {"$.data[*].uid", P, NULL},
    {"$.data[*].sid", P, NULL},
    {"$.data[*].nuid", P, NULL},
    {"$.data[*].tnuid", P, NULL},
    {"$.data[*].ip", T, NULL},
    {"$.data[*].ua", U, NULL},
    {"$.data[*].url", C, NULL},
    {"$.data[*].refr", O, NULL},
    {"$.data[*].co>json.data[*].data.id", P, NULL},
    {"$.data[*].co>json.data[*].data.userId", P, NULL},
    {"$.data[*].co>json.data[*].data.sessionId", P, NULL},
    {"$.data[*].co>json.data[*].data.previousSessionId", P, NULL},
    {"$.data[*].co>json.data[*].data.firstEventId", P, NULL},
    {"$.data[*].co>json.data[*].data.domain_userid", P, NULL},
    {"$.data[*].co>json.data[*].data.userAgent", U, NULL},
    {"$.data[*].cx>base64json.data[*].data.id", P, NULL},
    {"$.data[*].cx>base64json.data[*].data.userId", P, NULL},
    {"$.data[*].cx>base64json.data[*].data.sessionId", P, NULL},
    {"$.data[*].cx>base64json.data[*].data.previousSessionId", P, NULL},
    {"$.data[*].cx>base64json.data[*].data.firstEventId", P, NULL},
    {"$.data[*].cx>base64json.data[*].data.domain_userid", P, NULL},
    {"$.data[*].cx>base64json.data[*].data.userAgent", U, NULL},
    {"$.data[*].ue_pr>json..email", P, NULL},
    {"$.data[*].ue_px>base64json..email", P, NULL},
    {"$.data[*].ue_pr>json..targetUrl", C, NULL},
    {"$.data[*].ue_px>base64json..targetUrl", C, NULL},
    /* GET requests and form posts carry the same names as parameters. */
    {"$.duid", P, NULL},
    {"$.uid", P, NULL},
    {"$.sid", P, NULL},
    {"$.nuid", P, NULL},
    {"$.url", C, NULL},
    {"$.refr", O, NULL},
    {"$.co>json.data[*].data.id", P, NULL},
    {"$.cx>base64json.data[*].data.id", P, NULL},
};

/* plausible-tracker / @plausible-analytics/tracker: POST /api/event
 * {"n", "u", "d", "r", "w", "h", "p", "i"} as text/plain or JSON. */
static const struct preset_rule plausible[] = {
    {"$.u", C, NULL},
    {"$.url", C, NULL},
    {"$.r", O, NULL},
    {"$.referrer", O, NULL},
    {"$.w", R, "100"},
    {"$.p>json.email", P, NULL},
};

/* Umami's tracker: POST /api/send {"type", "payload": {website, hostname,
 * screen, language, title, url, referrer, name, data, id, tag}}. */
static const struct preset_rule umami[] = {
    {"$.payload.url", C, NULL},
    {"$.payload.referrer", O, NULL},
    {"$.payload.id", P, NULL},
    {"$.payload.distinct_id", P, NULL},
    {"$.payload.ip", T, NULL},
    {"$.payload.userAgent", U, NULL},
    {"$.payload.data.email", P, NULL},
};

/* matomo.js: /matomo.php as a form (or GET), and bulk requests
 * {"requests": ["?idsite=1&...", ...]}. _id and cid must stay 16 hex
 * digits: the default 64-bit pseudonym is exactly that. */
static const struct preset_rule matomo[] = {
    {"$._id", P, NULL},
    {"$.cid", P, NULL},
    {"$.uid", P, NULL},
    {"$._idn", D, NULL},
    {"$.cip", T, NULL},
    {"$.ua", U, NULL},
    {"$.uadata", D, NULL},
    {"$.url", C, NULL},
    {"$.urlref", O, NULL},
    {"$._ref", O, NULL},
    {"$.link", C, NULL},
    {"$.download", C, NULL},
    {"$.lat", D, NULL},
    {"$.long", D, NULL},
    {"$.requests[*]>url._id", P, NULL},
    {"$.requests[*]>url.cid", P, NULL},
    {"$.requests[*]>url.uid", P, NULL},
    {"$.requests[*]>url._idn", D, NULL},
    {"$.requests[*]>url.cip", T, NULL},
    {"$.requests[*]>url.ua", U, NULL},
    {"$.requests[*]>url.uadata", D, NULL},
    {"$.requests[*]>url.url", C, NULL},
    {"$.requests[*]>url.urlref", O, NULL},
    {"$.requests[*]>url._ref", O, NULL},
    {"$.requests[*]>url.link", C, NULL},
    {"$.requests[*]>url.download", C, NULL},
};

/* gtag.js (GA4): POST /g/collect; most parameters are in the query (the
 * route's query rules), the body holds one line of parameters per batched
 * event. */
static const struct preset_rule ga4[] = {
    {"$.cid", P, NULL},
    {"$.uid", P, NULL},
    {"$._uip", T, NULL},
    {"$.uip", T, NULL},
    {"$.dl", C, NULL},
    {"$.dr", O, NULL},
    {"$.ua", U, NULL},
    {"$['ep.page_location']", C, NULL},
    {"$['ep.page_referrer']", O, NULL},
    {"$['ep.link_url']", C, NULL},
    {"$['ep.user_id']", P, NULL},
    {"$['up.email']", P, NULL},
    {"$['ep.email']", P, NULL},
    {"$.user_id", P, NULL},
    {"$.client_id", P, NULL},
    {"$.app_instance_id", P, NULL},
    {"$.ip_override", T, NULL},
    {"$.user_agent", U, NULL},
    {"$.events[*].params.page_location", C, NULL},
    {"$.events[*].params.page_referrer", O, NULL},
};

#undef P
#undef D
#undef T
#undef C
#undef O
#undef U
#undef R
#undef K

struct preset {
    const char *name;
    const char *origin;
    const struct preset_rule *rules;
    size_t nrules;
};

#define PRESET(n) {#n, "preset " #n, n, AP_ARRAY_SIZE(n)}
static const struct preset presets[] = {
    PRESET(posthog), PRESET(segment), PRESET(rudderstack), PRESET(amplitude), PRESET(mixpanel),
    PRESET(snowplow), PRESET(plausible), PRESET(umami),    PRESET(matomo),    PRESET(ga4),
};
#undef PRESET

static const char *const names[] = {
    "posthog", "segment", "rudderstack", "amplitude", "mixpanel", "snowplow", "plausible", "umami",
    "matomo", "ga4", NULL,
};

const char *const *ap_bodypreset_names(void)
{
    return names;
}

int ap_bodypreset_add(struct ap_body_policy *pol, const char *vendor)
{
    const struct preset *p = NULL;
    for (size_t i = 0; i < AP_ARRAY_SIZE(presets); i++)
        if (vendor != NULL && strcmp(vendor, presets[i].name) == 0)
            p = &presets[i];
    if (p == NULL)
        return -ENOENT;
    for (size_t i = 0; i < p->nrules; i++) {
        int rc = ap_body_policy_add_rule_from(pol, p->origin, p->rules[i].path, p->rules[i].action,
                                              p->rules[i].arg, NULL);
        /* The tables are ours: a rule that does not compile is a bug. */
        AP_BUG_ON(rc == -EINVAL);
        if (rc != 0)
            return rc;
    }
    if (strcmp(p->name, "posthog") == 0)
        return ap_body_policy_add_query_flag(pol, "compression", "gzip-js", AP_BODY_ENC_GZIP);
    return 0;
}
