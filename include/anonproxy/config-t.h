/* Types of the parsed configuration. A struct ap_config is built once by
 * ap_config_load, never changed afterwards, and shared read-only by every
 * worker; a reload builds a whole new one and swaps it (refcount). */
#ifndef ANONPROXY_CONFIG_T_H
#define ANONPROXY_CONFIG_T_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "anonproxy/body-t.h"
#include "anonproxy/clientaddr-t.h"
#include "anonproxy/geo-t.h"
#include "anonproxy/ip-t.h"
#include "anonproxy/logscrub-t.h"
#include "anonproxy/policy-t.h"

/* Where a value came from, for error messages and --print-config. */
struct ap_config_pos {
    unsigned line; /* 1-based; 0 when the value is a default */
    unsigned col;  /* 1-based */
};

/* TLS protocol versions a listener offers (bits of protocols). */
#define AP_TLS_PROTO_TLS12 0x1u
#define AP_TLS_PROTO_TLS13 0x2u

/* One certificate/key pair of a TLS listener. */
struct ap_config_tls_cert {
    char *cert;                   /* PEM: the leaf, optionally followed by its chain */
    char *key;                    /* PEM private key matching cert (RSA or EC) */
    char *chain;                  /* optional PEM file of intermediates, or NULL */
    char **names;                 /* server names served (exact or "*.example.com",
                                     lower-case); empty = taken from the certificate */
    size_t nnames;
    struct ap_config_pos pos;
};

/* TLS termination of a listener. */
struct ap_config_tls_listener {
    struct ap_config_tls_cert *certs; /* at least one; certs[0] names the default */
    size_t ncerts;
    unsigned protocols;               /* AP_TLS_PROTO_* bits, default both */
    char *ciphers;                    /* TLS 1.2 cipher list (OpenSSL syntax) */
    char *ciphersuites;               /* TLS 1.3 cipher suites (OpenSSL syntax) */
    unsigned session_tickets : 1;     /* default on */
    uint64_t ticket_key_rotation_ms;  /* default 12h */
    uint32_t session_cache;           /* TLS 1.2 session cache entries, 0 = off; default 20000 */
    uint64_t handshake_timeout_ms;    /* default 10s */
    struct ap_config_pos pos;
};

/* TLS towards the https servers of an upstream. */
struct ap_config_upstream_tls {
    char *ca_file;                /* PEM CA bundle; NULL = the system's CAs */
    unsigned verify : 1;          /* verify chain and host name, default on */
    char *server_name;            /* SNI and name checked; NULL = the server's host */
    char *client_cert;            /* PEM client certificate (mTLS), or NULL */
    char *client_key;             /* its key; set exactly when client_cert is */
    unsigned set : 1;             /* a tls: section was written */
    struct ap_config_pos pos;
};

struct ap_config_listener {
    char *address;                /* as written: "127.0.0.1:8080", "[::1]:8080" */
    struct sockaddr_storage addr; /* resolved numeric address */
    socklen_t addrlen;
    unsigned proxy_protocol : 1;  /* expect a PROXY v1/v2 header first */
    int backlog;                  /* listen(2) backlog, default 511 */
    struct ap_config_pos pos;
    struct ap_config_tls_listener *tls; /* NULL: plain TCP */
};

enum ap_upstream_kind {
    AP_UPSTREAM_HTTP = 1, /* one or more http://host:port servers */
    AP_UPSTREAM_FILE = 2, /* file:PATH, the embedded NDJSON sink */
};

struct ap_config_server {
    char *url;                    /* as written: "http://127.0.0.1:9000" */
    char *host;                   /* host part, without brackets, lower-cased */
    uint16_t port;
    char *authority;              /* "host:port" or "host" (port 80, or 443 for https), for Host;
                                     IPv6 keeps its brackets: "[::1]:9001" */
    struct sockaddr_storage addr; /* resolved once at load time */
    socklen_t addrlen;
    unsigned tls : 1;             /* https:// (default port 443) */
};

struct ap_config_upstream {
    char *name;
    enum ap_upstream_kind kind;
    struct ap_config_server *servers; /* AP_UPSTREAM_HTTP */
    size_t nservers;
    char *file_path;                  /* AP_UPSTREAM_FILE, relative paths are
                                         resolved against the working directory */
    unsigned keepalive_max_idle;      /* idle pooled connections per server per worker, default 32 */
    uint64_t keepalive_idle_timeout_ms; /* default 60000 */
    unsigned max_fails;               /* failures before a server is marked down, default 1 */
    uint64_t fail_timeout_ms;         /* how long a failed server is skipped, default 10000 */
    unsigned preserve_host : 1;       /* forward the client's Host instead of the upstream's */
    struct ap_config_pos pos;
    struct ap_config_upstream_tls tls; /* used by its https servers */
};

/* Log sinks, the access log and the syslog listener (issue 8: proxy/logger.c,
 * docs/logging.md). */
enum ap_log_sink_type {
    AP_LOG_SINK_FILE = 1,  /* append to a file; reopened on SIGUSR1 and after logrotate */
    AP_LOG_SINK_STDOUT,
    AP_LOG_SINK_SYSLOG,    /* RFC 5424/3164 over UDP, TCP (octet counting) or a unix socket */
    AP_LOG_SINK_HTTP,      /* NDJSON batches POSTed to a URL */
};

enum ap_log_transport {
    AP_LOG_UDP = 1,
    AP_LOG_TCP,
    AP_LOG_UNIX,           /* a unix datagram socket such as /dev/log */
};

enum ap_log_when_full {
    AP_LOG_WHEN_FULL_SPOOL = 0, /* spill to the on-disk spool (default) */
    AP_LOG_WHEN_FULL_BLOCK,     /* hold records in the workers' queues; drop only when those are full */
    AP_LOG_WHEN_FULL_DROP_NEWEST,
};

enum ap_log_format {
    AP_LOG_FORMAT_JSON = 0,
    AP_LOG_FORMAT_TEXT,
};

struct ap_config_log_spool {
    char *dir;                     /* default /var/spool/anonproxy/<sink name> */
    uint64_t max_bytes;            /* default 1 GiB */
    uint64_t segment_bytes;        /* default 16 MiB */
    unsigned fsync;                /* enum ap_logspool_fsync: batch (default), always, never */
};

struct ap_config_log_sink {
    char *name;
    enum ap_log_sink_type type;
    char *path;                    /* file */
    char *address;                 /* syslog: as written, "udp://h:p", "tcp://h:p", "unix:/path" */
    enum ap_log_transport transport;
    struct sockaddr_storage addr;  /* syslog udp/tcp, http: resolved at load time */
    socklen_t addrlen;
    unsigned syslog_format;        /* enum ap_syslogmsg_format: rfc5424 (default) or rfc3164 */
    unsigned facility;             /* 0..23, default 16 (local0) */
    char *app_name;                /* default "anonproxy" */
    uint32_t max_message_bytes;    /* syslog: longer messages are cut; default 8192 (UDP), 64 KiB */
    char *url;                     /* http: as written */
    unsigned url_tls : 1;          /* http: an https:// URL (default port 443) */
    struct ap_config_upstream_tls tls; /* http: how an https:// URL's server is checked */
    char *url_host;                /* http: host, for Host */
    char *url_authority;           /* http: "host:port" or "host" */
    char *url_path;                /* http: path and query, default "/" */
    uint16_t url_port;
    char **headers;                /* http: extra "Name: value" lines */
    size_t nheaders;
    unsigned gzip : 1;             /* http: Content-Encoding: gzip */
    uint64_t timeout_ms;           /* connect and request timeout, default 10s */
    uint32_t queue;                /* records held in memory, default 10000 */
    enum ap_log_when_full when_full;
    struct ap_config_log_spool spool;
    uint32_t batch_max_events;     /* http: default 1000 */
    uint64_t batch_max_bytes;      /* http: default 1 MiB */
    uint64_t batch_max_age_ms;     /* http: default 1s */
    uint64_t retry_initial_ms;     /* first back-off cap, default 500ms */
    uint64_t retry_max_ms;         /* back-off cap, default 30s */
    struct ap_config_pos pos;
};

struct ap_config_access_log {
    unsigned set : 1;              /* an access_log: section was written */
    enum ap_log_format format;     /* json (default) or text */
    char *template;                /* text format; default the combined-like AP_ACCESSLOG_DEFAULT_TEMPLATE */
    struct ap_config_log_sink **sinks; /* into ap_config.log_sinks */
    size_t nsinks;
    uint64_t worker_queue_bytes;   /* per-worker queue towards the logger thread, default 4 MiB */
    struct ap_config_pos pos;
};

struct ap_config_route;

struct ap_config_syslog_listen {
    char *address;                 /* "udp://h:p" or "tcp://h:p" as written */
    enum ap_log_transport transport;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char *route_name;
    const struct ap_config_route *route; /* a `type: logs` route: its policy and sinks */
    uint32_t max_message_bytes;    /* default 64 KiB */
    struct ap_config_pos pos;
};

enum ap_route_type {
    AP_ROUTE_HTTP = 0,             /* forwarded to its upstream (default) */
    AP_ROUTE_LOGS,                 /* NDJSON log batches, anonymised, to log sinks */
};

struct ap_config_route {
    char *name;
    char **hosts;          /* exact "a.example" or wildcard "*.example.com"; empty = any;
                              lower-cased, no port, no trailing dot; IPv6 as "[::1]" */
    size_t nhosts;
    char *path_prefix;     /* default "/"; printable ASCII, starts with "/" */
    char **methods;        /* upper-case method names; empty = any */
    size_t nmethods;
    struct ap_config_upstream *upstream; /* points into ap_config.upstreams */
    uint64_t max_body_bytes;             /* default: limits.body_bytes */
    /* The route's privacy policy (key `privacy:`), always built: a route
     * without the key gets the strict profile. Owned by the config. */
    struct ap_policy *policy;
    /* The route's body rules (key `body:`), or NULL: bodies pass unread.
     * Owned by the config; read-only, shared by every worker. */
    struct ap_body_policy *body;
    /* `type: logs` routes (issue 8): where their records go and the
     * route's own field rules (`log_fields:`), before the built-in ones. */
    enum ap_route_type type;
    struct ap_config_log_sink **log_sinks;
    size_t nlog_sinks;
    struct ap_logscrub_rule *log_fields;
    size_t nlog_fields;
    unsigned stats_id;              /* metrics slot, set by the server (0: none) */
    struct ap_config_pos pos;
};

struct ap_config_limits {
    uint32_t header_line_bytes;     /* one request or header line, default 8192 */
    uint32_t header_bytes;          /* whole request head, default 32768 */
    uint32_t header_count;          /* default 100 */
    uint32_t target_bytes;          /* request target, default 8192 */
    uint64_t body_bytes;            /* default max_body_bytes of routes, default 1 MiB */
    uint32_t connections_per_worker;/* default 10000; over it new connections get 503 */
};

struct ap_config_timeouts {         /* all in milliseconds */
    uint64_t request_head;          /* whole head, from its first byte, default 10000 */
    uint64_t body_idle;             /* between two body reads, default 30000 */
    uint64_t keepalive;             /* idle client connection, default 60000 */
    uint64_t upstream_connect;      /* default 5000 */
    uint64_t upstream_head;         /* request sent -> response head, default 60000 */
    uint64_t upstream_body_idle;    /* between two response body reads, default 60000 */
    uint64_t drain;                 /* graceful stop, default 30000 */
};

/* The admin listener (`admin:`): metrics, health, reload, effective
 * config. Off unless the section is present; loopback by default. */
struct ap_config_admin {
    unsigned enabled : 1;
    char *address;                /* default "127.0.0.1:9901" */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char *token_file;             /* optional: requests need "Authorization: Bearer <token>" */
    struct ap_config_pos pos;
};

#define AP_CONFIG_MAGIC 0x43464731u /* "CFG1" */

struct ap_config {
    unsigned magic;
    char *path;                     /* file it was loaded from */
    unsigned workers;               /* resolved: "auto" becomes the core count */
    unsigned workers_auto : 1;
    char *log_level;                /* "debug", "info", "warn", "error"; default "info" */
    struct ap_config_listener *listeners;
    size_t nlisteners;
    struct ap_config_upstream *upstreams;
    size_t nupstreams;
    struct ap_config_route *routes; /* in file order; first match wins */
    size_t nroutes;
    struct ap_config_limits limits;
    struct ap_config_timeouts timeouts;
    /* Client address: proxies whose forwarding headers are believed
     * (`trusted_proxies:`, empty by default: only the peer counts), and which
     * headers they set (`client_address_headers:`, default x-forwarded-for).
     * Every route's policy points at `clientaddr`. */
    struct ap_cidr_list trusted_proxies;
    struct ap_clientaddr_config clientaddr;
    /* Pseudonyms (`pseudonyms:`): a secret file shared by every instance, so
     * they agree; NULL: a random key per UTC day, in memory only. */
    char *pseudonym_secret_file;
    unsigned pseudonym_bits;        /* default 64; a route's privacy.pseudonym_bits overrides */
    /* Geolocation (`geo:`): when enabled, every route's requests get the
     * coarse location headers (see docs/geo.md). The strings of `opts`
     * point to copies owned by the config; `hosting_asns` too. */
    struct {
        unsigned enabled : 1;
        struct ap_geo_options opts;
        uint64_t check_interval_ms; /* how often the files are checked for replacement, default 60 s */
        struct ap_config_pos pos;
    } geo;
    struct ap_config_admin admin;
    /* Privileges: after binding and opening files, switch to this user and
     * group. Running as root without `user:` needs `run_as_root: true`. */
    char *user;
    char *group;
    unsigned run_as_root : 1;
    /* Logging (issue 8): named sinks, the access log, syslog listeners. */
    struct ap_config_log_sink *log_sinks;
    size_t nlog_sinks;
    struct ap_config_access_log access_log;
    struct ap_config_syslog_listen *syslog_listen;
    size_t nsyslog_listen;
    int refcount;                   /* atomic; see ap_config_ref/unref */
};

#endif
