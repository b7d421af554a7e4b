/* Internal types and functions of the network layer (libuv). Nothing here
 * knows a privacy rule: the engine is called through one function,
 * ap_exchange_rewrite, and everything else is transport. */
#ifndef ANONPROXY_NET_H
#define ANONPROXY_NET_H

#include <llhttp.h>
#include <uv.h>

#include "anonproxy/arena-t.h"
#include "anonproxy/buf-t.h"
#include "anonproxy/body-t.h"
#include "anonproxy/config-t.h"
#include "anonproxy/geo-t.h"
#include "anonproxy/head-t.h"
#include "anonproxy/http-t.h"
#include "anonproxy/ip-t.h"
#include "anonproxy/policy-t.h"
#include "anonproxy/pseudo-t.h"
#include "anonproxy/tls-t.h"

/* Request bodies are held in memory up to this many bytes before the
 * upstream request starts: a malformed chunked body that arrives with its
 * head is refused before the backend sees a byte, and a fully buffered
 * request can be retried on a fresh upstream connection. */
#define AP_STREAM_THRESHOLD (64 * 1024)
/* Backpressure marks for bytes queued towards a peer. */
#define AP_HIGH_WATER (256 * 1024)
#define AP_LOW_WATER (64 * 1024)

/* Counters are written by one worker thread and read by the main thread
 * for /metrics: relaxed atomic load and store, no lock, no read-modify-write
 * instruction on the request path. */
#define AP_STAT_ADD(x, n) __atomic_store_n(&(x), __atomic_load_n(&(x), __ATOMIC_RELAXED) + (n), __ATOMIC_RELAXED)
#define AP_STAT_GET(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)

/* Duration histogram: upper bounds in seconds (the last bucket is +Inf). */
#define AP_HIST_BUCKETS 12
struct ap_hist {
    uint64_t bucket[AP_HIST_BUCKETS + 1]; /* not cumulative */
    uint64_t count;
    uint64_t sum_us;
};

/* Per route (by name, across reloads) and worker. */
struct ap_route_stats {
    uint64_t status[6]; /* [1..5]: 1xx..5xx */
    struct ap_hist request;
    struct ap_hist upstream;
};

/* Route names the server has seen; slot 0 counts requests with no route. */
#define AP_MAX_ROUTE_STATS 256

struct ap_server;
struct ap_worker;
struct ap_conn;
struct ap_upconn;
struct ap_exchange;

/* A singly linked list of copied byte chunks. */
struct ap_chunk {
    struct ap_chunk *next;
    size_t len;
    size_t cap;
    char data[];
};

struct ap_chunkq {
    struct ap_chunk *head, *tail;
    size_t bytes;
};

/* One pool per worker per upstream server. */
struct ap_pool {
    const struct ap_config_upstream *up;
    const struct ap_config_server *srv;
    struct ap_upconn *idle; /* idle keep-alive connections, most recent first */
    unsigned nidle;
    unsigned fails;
    uint64_t down_until; /* uv_now() ms; passive failure marking */
};

/* Per upstream: its pools and the round-robin cursor. */
struct ap_upstream_state {
    const struct ap_config_upstream *up;
    struct ap_pool *pools; /* one per server */
    unsigned rr;
    uv_file fd; /* AP_UPSTREAM_FILE: shared append descriptor, owned by the server */
};

/* Client connection timers: one uv_timer per worker and one FIFO list per
 * timeout class. Every entry of a class has the same timeout, so each list
 * is sorted by deadline and a connection costs two pointers and a deadline
 * instead of a uv_timer_t (which keeps idle connections small). */
enum ap_tclass {
    AP_T_NONE = 0,
    AP_T_HEAD,      /* request head, from its first byte */
    AP_T_BODY,      /* between two body reads */
    AP_T_KEEPALIVE, /* idle between requests */
    AP_T_LINGER,    /* lingering close after an error response */
    AP_T_KICK,      /* run pipelined bytes from the loop */
    AP_T_HANDSHAKE, /* TLS handshake of a new connection (per-listener timeout) */
    AP_T_NCLASSES,
};

struct ap_tlist {
    struct ap_conn *head, *tail;
};

/* One configuration generation as one worker sees it. A reload builds a
 * new one per worker (on the main thread) and hands it over; the worker
 * installs it and retires the old one, which lives on while connections
 * accepted under it or requests started under it still need it. */
#define AP_GEN_MAGIC 0x47454e31u

/* A geolocation service shared by the generations of every worker that use
 * it: closed by the last of them (atomic count). */
struct ap_geo_shared {
    struct ap_geo *geo;
    int refs;
};

struct ap_gen {
    unsigned magic;
    struct ap_geo_shared *geo;      /* NULL without `geo:` */
    struct ap_geo_worker *geo_worker; /* this worker's cache over geo */
    uint64_t geo_hits_seen, geo_misses_seen; /* cache counters already published */
    unsigned long id;               /* 1, 2, ... per reload */
    struct ap_config *cfg;          /* one reference */
    struct ap_upstream_state *ups;  /* indexed like cfg->upstreams */
    int *lfds;                      /* per cfg listener: this worker's socket */
    unsigned char *lnew;            /* per cfg listener: 1 when lfds[i] is new */
    unsigned refs;                  /* connections and requests using it, +1 while current */
};

/* The main thread's record of a worker's listening sockets, for reuse by
 * the next reload. Only the main thread reads or writes it. */
struct ap_lsock {
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int fd;
};

/* A listening socket of one worker. Survives reloads that keep its address. */
struct ap_listener {
    uv_tcp_t tcp;
    struct ap_worker *w;
    struct ap_listener *next;
    int fd;
    struct ap_gen *gen;                      /* generation of lcfg */
    const struct ap_config_listener *lcfg;
};

#define AP_WORKER_MAGIC 0x574b5231u

struct ap_worker {
    unsigned magic;
    unsigned id;
    struct ap_server *server;
    uv_loop_t loop;
    uv_thread_t thread;
    uv_async_t wakeup;
    struct ap_config *cfg;         /* gen->cfg, for short */
    struct ap_gen *gen;            /* current generation */
    struct ap_gen *pending_gen;    /* handed over by the main thread (atomic) */
    struct ap_lsock *lsocks;       /* main thread only: sockets of the last generation */
    size_t nlsocks;
    struct ap_listener *listeners;
    struct ap_conn *conns;         /* every client connection, for draining */
    unsigned nconns;
    unsigned nupconns;
    int draining;
    int stopping;
    uv_timer_t drain_timer;
    uv_timer_t conn_timer;          /* fires at the earliest deadline of tq */
    uint64_t conn_timer_due;        /* 0 when not armed */
    struct ap_tlist tq[AP_T_NCLASSES];
    struct ap_pseudo_keyring keyring; /* this worker's day keys */
    struct ap_engine_stats stats;      /* rule actions of this worker */
    struct ap_route_stats *rstats;     /* [AP_MAX_ROUTE_STATS] */
    uint64_t geo_results[4];           /* located, not found, private/reserved, error */
    uint64_t geo_cache_hits, geo_cache_misses;
    struct ap_body_stats body_stats;   /* body rules of this worker */
    int finished;                      /* its loop returned (atomic) */
    uv_timer_t key_timer;              /* prepares tomorrow's key ahead of midnight */
    char readbuf[64 * 1024]; /* every read of this loop lands here */
    int read_busy;           /* readbuf is in use by a read callback */
};

#define AP_SERVER_MAGIC 0x53525631u

struct ap_server {
    unsigned magic;
    struct ap_config *cfg;
    struct ap_worker *workers;
    unsigned nworkers;
    uv_file *file_fds; /* per upstream of cfg, -1 unless AP_UPSTREAM_FILE */
    char *cfg_path;
    unsigned long generation;
    uint64_t reloads_ok, reloads_failed;
    char last_reload[256];             /* result of the last reload, for STATUS= and /metrics */
    uv_signal_t sighup;
    uv_signal_t sigusr1;
    char *route_names[AP_MAX_ROUTE_STATS]; /* slot -> route name (main thread) */
    unsigned nroute_names;
    struct ap_admin *admin;
    uv_timer_t stop_timer;
    uv_timer_t geo_timer;              /* checks the geo databases for replacement */
    struct ap_geo_shared *geo;         /* of the current configuration */
    uv_timer_t watchdog_timer;
    uint64_t start_time;               /* seconds since the epoch */
    struct ap_pseudo_source pseudo;    /* day keys, shared by every worker */
    struct ap_tls *tls;                /* TLS contexts of listeners and upstreams, shared */
    uv_loop_t *main_loop;
    uv_signal_t sigterm, sigint, sigpipe_dummy;
    uv_timer_t exit_timer;
    int stopping;
    int exit_code;
};

enum ap_conn_state {
    AP_CS_PROXY = 0, /* reading a PROXY protocol header */
    AP_CS_IDLE,      /* between requests */
    AP_CS_HEAD,     /* reading a request head */
    AP_CS_BODY,     /* reading a request body */
    AP_CS_WAIT,     /* request read, response not finished */
    AP_CS_CLOSING,
};

#define AP_CONN_MAGIC 0x434f4e31u

struct ap_conn {
    unsigned magic;
    uv_tcp_t tcp;
    struct ap_worker *w;
    struct ap_conn *prev, *next;   /* all connections of the worker */
    struct ap_conn *tprev, *tnext; /* timer list of its class */
    uint64_t deadline;
    unsigned char tclass;          /* enum ap_tclass */
    enum ap_conn_state state;
    struct ap_buf head;       /* raw head bytes of the request being read */
    struct ap_head_scan scan;
    struct ap_buf pending;    /* bytes read past the current request */
    struct ap_exchange *ex;   /* request in progress, or NULL */
    struct ap_gen *gen;       /* generation it was accepted under (a reference) */
    const struct ap_config_listener *listener; /* in gen->cfg */
    struct ap_ip peer;        /* TCP peer, or the PROXY protocol source */
    unsigned reading : 1;     /* uv_read_start active */
    unsigned read_paused : 1; /* stopped for upstream backpressure */
    unsigned close_after : 1; /* close once the response is written */
    unsigned handles_open : 2;
    unsigned nrequests;
    struct ap_tls_conn *tls;  /* TLS listener: the session; NULL on plain TCP */
};

enum ap_resp_framing {
    AP_RESP_NONE = 0,  /* no body (HEAD, 204, 304) */
    AP_RESP_LENGTH,    /* Content-Length */
    AP_RESP_CHUNKED,   /* chunked to the client */
    AP_RESP_CLOSE,     /* close-delimited (HTTP/1.0 client, unknown length) */
};

#define AP_EXCHANGE_MAGIC 0x45584331u

/* One request and its response. Owned by the client connection; the
 * upstream connection points at it while it carries it. */
struct ap_exchange {
    unsigned magic;
    struct ap_conn *c;
    struct ap_worker *w;
    struct ap_gen *gen;       /* generation the request started under (a reference) */
    struct ap_arena arena;
    struct ap_request req;
    struct ap_engine_result res; /* client address decided by the engine, audit */
    struct ap_geo_result geo;    /* coarse location (level none without geo) */
    llhttp_t parser;          /* request framing (body, chunked) */
    const char *feed_start, *feed_end; /* bytes of the current llhttp_execute */
    const char *tv_end;       /* end of the last header-value span (trailers) */
    unsigned tv_at_feed_end : 1;
    const struct ap_config_route *route;
    struct ap_upstream_state *ups;
    struct ap_pool *pool;     /* server chosen */
    unsigned tried_servers;
    struct ap_upconn *uc;
    struct ap_buf out_head;   /* upstream request head */
    struct ap_chunkq body;    /* decoded request body not yet sent */
    struct ap_chunkq sent;    /* body already sent, kept while retryable */
    uint64_t body_bytes;      /* decoded request body bytes received */
    uint64_t max_body;
    unsigned body_done : 1;
    unsigned head_sent : 1;   /* upstream request head written */
    unsigned chunked_out : 1; /* body goes upstream chunked */
    unsigned retryable : 1;   /* whole request held in memory */
    unsigned retried : 1;
    unsigned resp_started : 1;/* a response byte reached the client */
    unsigned resp_done : 1;
    unsigned is_head : 1;
    unsigned sink_busy : 1;
    unsigned got_final : 1;   /* a final (non-1xx) response head arrived */
    unsigned too_large : 1;
    unsigned last_chunk_sent : 1;
    unsigned counted : 1;
    unsigned client_gone : 1; /* a write to the client failed */
    unsigned body_rewritten : 1;
    enum ap_resp_framing framing;
    int status;
    uint64_t start_ms;
    uint64_t start_ns;        /* uv_hrtime() at the request head, for metrics */
    uint64_t up_start_ns;     /* uv_hrtime() when the upstream request head was written */
    uint64_t up_ns;           /* upstream duration, 0 until the response completed */
    uint64_t resp_bytes;      /* bytes queued to the client for it (access log, issue 8) */
};

/* A response header as offsets into ap_upconn.hbuf (which may move). */
struct ap_resp_hdr {
    size_t name_off, name_len, value_off, value_len;
};

#define AP_UPCONN_MAGIC 0x55504331u

struct ap_upconn {
    unsigned magic;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_connect_t creq;
    struct ap_worker *w;
    struct ap_pool *pool;
    struct ap_upconn *next_idle, *prev_idle;
    struct ap_exchange *ex;
    llhttp_t parser;
    struct ap_buf hbuf;       /* response header names and values */
    struct ap_resp_hdr *hdrs; /* offsets into hbuf */
    size_t nhdrs, caphdrs;
    int in_value;
    unsigned writes_pending;
    unsigned connected : 1;
    unsigned reused : 1;
    unsigned got_bytes : 1;
    unsigned idle : 1;
    unsigned closing : 1;
    unsigned reading : 1;
    unsigned read_paused : 1;
    unsigned keep : 1;        /* may return to the pool */
    unsigned handles_open : 2;
    struct ap_tls_conn *tls;  /* https server: the session (connected = handshake done) */
};

/* server.c */
/* Count one finished request (ex may be NULL: refused before it had one). */
void ap_server_count_request(struct ap_worker *w, const struct ap_exchange *ex, int status);
void ap_hist_add(struct ap_hist *h, uint64_t us);
extern const double ap_hist_bounds[AP_HIST_BUCKETS];

/* admin.c */
struct ap_admin;
int ap_admin_start(struct ap_server *s, const struct ap_config_admin *cfg, char *err, size_t errlen);
void ap_admin_stop(struct ap_server *s);
/* systemd notification (NOTIFY_SOCKET), no-op when unset. */
void ap_notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void ap_gen_ref(struct ap_gen *g);
/* Main thread: load the configuration file again and hand it to every
 * worker. Returns 0, or -1 with the old configuration still serving. */
int ap_server_reload(struct ap_server *s);
void ap_gen_unref(struct ap_worker *w, struct ap_gen *g);

/* conn.c */
void ap_conn_on_accept(uv_stream_t *listener, int status);
/* Queue bytes to the client; copies what the socket does not take at once.
 * Returns 0 or a negative libuv error. */
int ap_conn_write(struct ap_conn *c, const char *p, size_t n);
int ap_conn_writev(struct ap_conn *c, const uv_buf_t *bufs, unsigned nbufs);
void ap_exchange_free(struct ap_exchange *ex);
/* Run the route's body rules over the complete body (ex->route->body set,
 * ex->body_done). Returns 0 to go on, or -1 when the client was answered
 * (400, 413, 415, 500) and the exchange is gone. */
int ap_exchange_rewrite_body(struct ap_exchange *ex);
/* The response of the current exchange is complete and queued. */
void ap_conn_response_done(struct ap_conn *c);
/* Answer with a proxy-generated error and close after it. */
void ap_conn_send_error(struct ap_conn *c, int status, const char *reason);
/* Tear the client connection down at once (truncating any response). */
void ap_conn_abort(struct ap_conn *c);
/* The upstream drained its write queue: resume reading the client body. */
void ap_conn_upstream_writable(struct ap_conn *c);
void ap_conn_close_idle(struct ap_worker *w);
void ap_conn_timer_stop(struct ap_conn *c);
/* The worker's connection timer fired. */
void ap_conn_on_timers(uv_timer_t *t);
const char *ap_status_reason(int status);

/* upstream.c */
/* Start the exchange towards its upstream once its head is parsed. */
void ap_upstream_start(struct ap_exchange *ex);
/* More body was queued, or the body is complete: send what can be sent. */
void ap_upstream_pump(struct ap_exchange *ex);
/* Client went away or the exchange is being abandoned. */
void ap_upstream_detach(struct ap_exchange *ex);
/* The client's write queue drained below the low mark. */
void ap_upstream_client_writable(struct ap_exchange *ex);
void ap_upstream_worker_close(struct ap_worker *w);
/* Close the idle pooled connections of a generation's upstreams. */
void ap_upstream_gen_close_idle(struct ap_gen *g);
void ap_chunkq_free(struct ap_chunkq *q);
int ap_chunkq_append(struct ap_chunkq *q, const char *p, size_t n);

/* filesink.c */
void ap_filesink_deliver(struct ap_exchange *ex);

#endif
