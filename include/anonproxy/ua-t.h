/* Types of the User-Agent reducer (proxy/engine/ua.c). */
#ifndef ANONPROXY_UA_T_H
#define ANONPROXY_UA_T_H

enum ap_ua_family {
    AP_UA_OTHER = 0, /* unknown or unsupported: reduced to "Other" */
    AP_UA_CHROME,
    AP_UA_EDGE,      /* Chromium Edge: Edg/, EdgA/, EdgiOS/ */
    AP_UA_FIREFOX,   /* Firefox/ and FxiOS/ */
    AP_UA_SAFARI,
    AP_UA_OPERA,     /* Chromium Opera: OPR/ */
    AP_UA_SAMSUNG,   /* Samsung Internet: SamsungBrowser/ */
    AP_UA_BOT,       /* a crawler of the bot table: name and version kept */
    AP_UA_TOOL,      /* an HTTP library or command-line tool: name and major kept */
    AP_UA_NFAMILIES
};

enum ap_ua_platform {
    AP_UA_PLATFORM_NONE = 0, /* bots, tools, Other */
    AP_UA_WINDOWS,
    AP_UA_MACOS,
    AP_UA_LINUX,
    AP_UA_CHROMEOS,
    AP_UA_ANDROID,
    AP_UA_IOS,
    AP_UA_NPLATFORMS
};

enum ap_ua_device {
    AP_UA_DEVICE_NONE = 0, /* bots, tools, Other */
    AP_UA_DESKTOP,
    AP_UA_MOBILE,
    AP_UA_TABLET,
    AP_UA_NDEVICES
};

/* What survives of a User-Agent. Every field is a small number or a pointer
 * to a static string, so a struct ap_ua_info can be kept, compared and
 * counted freely; it never points into the request. */
struct ap_ua_info {
    enum ap_ua_family family;
    enum ap_ua_platform platform;
    enum ap_ua_device device;
    unsigned major;        /* browser major (1..999); bot/tool major when nversion >= 1 */
    unsigned minor;        /* bots only, when nversion == 2 (Googlebot/2.1) */
    unsigned nversion;     /* bots and tools: version components kept, 0..2 (tools 0..1) */
    unsigned engine_major; /* Chromium major (Chrome/ token) of Edge, Opera, Samsung; 0 otherwise */
    const char *name;      /* bots and tools: canonical name from the static table; else NULL */
};

/* Longest reduced User-Agent plus its NUL: an output buffer of this size
 * never gets -ENOBUFS from ap_ua_reduce or ap_ua_format. */
#define AP_UA_REDUCED_MAX 192

#endif
