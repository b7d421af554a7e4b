/* holdconns: the connection client of the macro benchmark (bench/run.py).
 *
 * Hold mode (the default) measures memory per idle connection: it opens N
 * keep-alive connections to a server, plain or TLS, sends one request on
 * each and reads its response, with at most -p connections between connect
 * and response at any time (so the server's upstream pool stays small and
 * its accept queue never overflows). When every connection is idle or has
 * failed it prints one line
 *     READY opened=N idle=N failed=N status_other=N seconds=S
 * and holds the connections until standard input closes, SIGTERM arrives or
 * --hold seconds pass; then it prints
 *     DONE idle=N closed_by_peer=N
 * The caller reads the server's RSS between the two lines.
 *
 * Cycle mode (--cycle SECONDS) measures the connection or handshake rate: N
 * connections in parallel each connect, handshake (TLS), send the request,
 * read the response and close, again and again; with --resume each slot
 * offers the session of its previous connection. At the end it prints one
 * JSON object with the counts and the rate.
 *
 * usage: holdconns -a ADDR:PORT -n N [-r REQUESTFILE] [--tls] [--sni NAME]
 *                  [-p INFLIGHT] [--hold SECONDS] [--timeout SECONDS]
 *                  [--cycle SECONDS [--resume]]
 * The request file holds one raw HTTP/1.1 request (bench/analytics.lua can
 * write one); without it a small GET is sent.
 */
#include "anonproxy/common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RESP_BYTES 4096

enum state {
    ST_FREE,       /* no socket */
    ST_CONNECTING, /* TCP connect in progress */
    ST_HANDSHAKE,  /* TLS handshake in progress */
    ST_SENDING,    /* request partly written */
    ST_READING,    /* waiting for the whole response */
    ST_IDLE,       /* response read; held open */
};

struct conn {
    int fd;
    enum state state;
    SSL *ssl;
    SSL_SESSION *session; /* cycle --resume: session of the previous connection */
    size_t sent;
    size_t got;
    char *resp;
};

struct opts {
    struct sockaddr_storage addr;
    socklen_t addrlen;
    unsigned long n;
    unsigned long inflight;
    double hold;
    double timeout;
    double cycle;
    int tls;
    int resume;
    const char *sni;
    char *request;
    size_t request_len;
};

static volatile sig_atomic_t stop_flag;
static int ep = -1;
static SSL_CTX *ctx;
static struct opts o;

/* Counters. */
static unsigned long n_active;   /* between connect and response */
static unsigned long n_idle;
static unsigned long n_failed;
static unsigned long n_status_other;
static unsigned long n_closed_by_peer;
static unsigned long n_done;     /* cycle: complete request/response cycles */
static unsigned long n_resumed;  /* cycle: of them on a resumed session */
static unsigned long n_errors;   /* cycle: connections that failed */

static void on_stop(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: holdconns -a ADDR:PORT -n N [-r REQUESTFILE] [--tls] [--sni NAME]\n"
            "                 [-p INFLIGHT] [--hold SECONDS] [--timeout SECONDS]\n"
            "                 [--cycle SECONDS [--resume]]\n");
    exit(2);
}

static int parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *sl)
{
    char host[128];
    const char *colon = strrchr(s, ':');
    if (colon == NULL || (size_t)(colon - s) >= sizeof host)
        return -EINVAL;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    char *end = NULL;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (end == colon + 1 || *end != '\0' || port == 0 || port > 65535)
        return -EINVAL;
    memset(ss, 0, sizeof *ss);
    size_t hl = strlen(host);
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        host[hl - 1] = '\0';
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host + 1, &a6->sin6_addr) != 1)
            return -EINVAL;
        *sl = sizeof *a6;
        return 0;
    }
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &a4->sin_addr) != 1)
        return -EINVAL;
    *sl = sizeof *a4;
    return 0;
}

static double parse_seconds(const char *s)
{
    char *end = NULL;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || !(v > 0) || v > 86400)
        usage();
    return v;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "holdconns: %s: %s\n", path, strerror(errno));
        exit(2);
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (buf == NULL) {
            fprintf(stderr, "holdconns: out of memory\n");
            exit(2);
        }
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        cap *= 2;
        buf = realloc(buf, cap);
    }
    fclose(f);
    if (n == 0) {
        fprintf(stderr, "holdconns: %s is empty\n", path);
        exit(2);
    }
    *len = n;
    return buf;
}

static void set_events(struct conn *c, uint32_t events, int add)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(ep, add ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, c->fd, &ev) != 0) {
        fprintf(stderr, "holdconns: epoll_ctl: %s\n", strerror(errno));
        exit(1);
    }
}

/* Closes the socket and frees the TLS state; the slot can be reused. */
static void conn_reset(struct conn *c)
{
    if (c->ssl != NULL) {
        /* Without a shutdown OpenSSL marks the session not resumable when
         * the SSL is freed, and --resume would resume nothing. One call
         * sends our close_notify; we do not wait for the server's. */
        if (SSL_is_init_finished(c->ssl))
            SSL_shutdown(c->ssl);
        ERR_clear_error();
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0) {
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
    if (c->state != ST_FREE && c->state != ST_IDLE)
        n_active--;
    if (c->state == ST_IDLE)
        n_idle--;
    c->state = ST_FREE;
    c->sent = c->got = 0;
}

static void conn_fail(struct conn *c)
{
    if (o.cycle > 0)
        n_errors++;
    else
        n_failed++;
    conn_reset(c);
}

static int conn_start(struct conn *c)
{
    c->fd = socket(o.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        fprintf(stderr, "holdconns: socket: %s\n", strerror(errno));
        return -errno;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->state = ST_CONNECTING;
    n_active++;
    c->sent = c->got = 0;
    if (c->resp == NULL) {
        c->resp = malloc(RESP_BYTES);
        if (c->resp == NULL) {
            fprintf(stderr, "holdconns: out of memory\n");
            exit(1);
        }
    }
    if (connect(c->fd, (struct sockaddr *)&o.addr, o.addrlen) != 0 && errno != EINPROGRESS) {
        conn_fail(c);
        return 0;
    }
    set_events(c, EPOLLOUT, 1);
    return 0;
}

/* The first few TLS failures go to stderr, so a broken setup says why
 * instead of only counting errors. */
static void report_ssl_error(int err)
{
    static int reported;
    if (reported >= 3)
        return;
    reported++;
    unsigned long e = ERR_get_error();
    char buf[256] = "";
    if (e != 0)
        ERR_error_string_n(e, buf, sizeof buf);
    fprintf(stderr, "holdconns: TLS error %d%s%s%s\n", err, e ? " (" : "", buf, e ? ")" : "");
    ERR_clear_error();
}

/* Maps an SSL error to the events to wait for; -1 for a real failure. */
static int ssl_wait(struct conn *c, int rc)
{
    int err = SSL_get_error(c->ssl, rc);
    if (err == SSL_ERROR_WANT_READ) {
        set_events(c, EPOLLIN, 0);
        return 0;
    }
    if (err == SSL_ERROR_WANT_WRITE) {
        set_events(c, EPOLLOUT, 0);
        return 0;
    }
    report_ssl_error(err);
    return -1;
}

/* Whole response read? 1 yes, 0 not yet, -1 malformed. Counts the status. */
static int response_complete(struct conn *c)
{
    char *end = memmem(c->resp, c->got, "\r\n\r\n", 4);
    if (end == NULL)
        return c->got >= RESP_BYTES ? -1 : 0;
    size_t head = (size_t)(end - c->resp) + 4;
    if (c->got < 12 || memcmp(c->resp, "HTTP/1.", 7) != 0)
        return -1;
    int status = (c->resp[9] - '0') * 100 + (c->resp[10] - '0') * 10 + (c->resp[11] - '0');
    uint64_t body = 0;
    if (status != 204 && status != 304 && !(status >= 100 && status < 200)) {
        /* Find Content-Length; a response framed otherwise is not expected. */
        const char *p = c->resp;
        while ((p = memchr(p, '\n', head - (size_t)(p - c->resp))) != NULL) {
            p++;
            if ((size_t)(p - c->resp) + 15 < head && strncasecmp(p, "content-length:", 15) == 0) {
                body = strtoull(p + 15, NULL, 10);
                break;
            }
        }
    }
    if (status >= 100 && status < 200) {
        /* An interim response: drop it and wait for the final one. */
        memmove(c->resp, c->resp + head, c->got - head);
        c->got -= head;
        return response_complete(c);
    }
    if (c->got < head + body)
        return head + body > RESP_BYTES ? -1 : 0;
    if (status < 200 || status > 299)
        n_status_other++;
    return 1;
}

static void conn_event(struct conn *c, uint32_t events);

static void cycle_next(struct conn *c)
{
    /* A cycle ends: keep the session for the next connection of this slot. */
    n_done++;
    if (c->ssl != NULL) {
        if (SSL_session_reused(c->ssl))
            n_resumed++;
        if (o.resume) {
            SSL_SESSION *s = SSL_get1_session(c->ssl);
            if (s != NULL) {
                if (c->session != NULL)
                    SSL_SESSION_free(c->session);
                c->session = s;
            }
        }
    }
    conn_reset(c);
    if (!stop_flag)
        conn_start(c);
}

static void conn_event(struct conn *c, uint32_t events)
{
    for (;;) {
        switch (c->state) {
        case ST_FREE:
            return;
        case ST_CONNECTING: {
            int err = 0;
            socklen_t el = sizeof err;
            if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 || err != 0) {
                conn_fail(c);
                return;
            }
            if (o.tls) {
                c->ssl = SSL_new(ctx);
                if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
                    conn_fail(c);
                    return;
                }
                SSL_set_connect_state(c->ssl);
                SSL_set_tlsext_host_name(c->ssl, o.sni);
                if (o.resume && c->session != NULL)
                    SSL_set_session(c->ssl, c->session);
                c->state = ST_HANDSHAKE;
            } else {
                c->state = ST_SENDING;
            }
            continue;
        }
        case ST_HANDSHAKE: {
            int rc = SSL_do_handshake(c->ssl);
            if (rc == 1) {
                c->state = ST_SENDING;
                continue;
            }
            if (ssl_wait(c, rc) != 0)
                conn_fail(c);
            return;
        }
        case ST_SENDING:
            while (c->sent < o.request_len) {
                ssize_t n;
                if (c->ssl != NULL) {
                    int rc = SSL_write(c->ssl, o.request + c->sent, (int)(o.request_len - c->sent));
                    if (rc <= 0) {
                        if (ssl_wait(c, rc) != 0)
                            conn_fail(c);
                        return;
                    }
                    n = rc;
                } else {
                    n = write(c->fd, o.request + c->sent, o.request_len - c->sent);
                    if (n < 0) {
                        if (errno == EAGAIN) {
                            set_events(c, EPOLLOUT, 0);
                            return;
                        }
                        if (errno == EINTR)
                            continue;
                        conn_fail(c);
                        return;
                    }
                }
                c->sent += (size_t)n;
            }
            c->state = ST_READING;
            set_events(c, EPOLLIN, 0);
            continue;
        case ST_READING:
            for (;;) {
                ssize_t n;
                if (c->got >= RESP_BYTES) {
                    conn_fail(c);
                    return;
                }
                if (c->ssl != NULL) {
                    int rc = SSL_read(c->ssl, c->resp + c->got, (int)(RESP_BYTES - c->got));
                    if (rc <= 0) {
                        if (ssl_wait(c, rc) != 0)
                            conn_fail(c);
                        return;
                    }
                    n = rc;
                } else {
                    n = read(c->fd, c->resp + c->got, RESP_BYTES - c->got);
                    if (n < 0 && errno == EAGAIN)
                        return;
                    if (n < 0 && errno == EINTR)
                        continue;
                    if (n <= 0) {
                        conn_fail(c);
                        return;
                    }
                }
                c->got += (size_t)n;
                int rc = response_complete(c);
                if (rc < 0) {
                    conn_fail(c);
                    return;
                }
                if (rc == 1)
                    break;
            }
            if (o.cycle > 0) {
                cycle_next(c);
                return;
            }
            c->state = ST_IDLE;
            n_active--;
            n_idle++;
            /* The response buffer is not needed while idle: hold as little
             * as we can so our own memory stays small. */
            free(c->resp);
            c->resp = NULL;
            set_events(c, EPOLLIN | EPOLLRDHUP, 0);
            return;
        case ST_IDLE:
            if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR | EPOLLIN)) {
                /* Anything on an idle connection is the server closing it
                 * (a timeout or a close_notify). */
                n_closed_by_peer++;
                conn_reset(c);
            }
            return;
        }
    }
}

static void raise_nofile(unsigned long need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur >= need)
        return;
    if (rl.rlim_max < need)
        rl.rlim_max = need; /* works as root */
    rl.rlim_cur = need;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
        getrlimit(RLIMIT_NOFILE, &rl);
        fprintf(stderr, "holdconns: RLIMIT_NOFILE is %lu, %lu wanted (raise it with ulimit -n)\n",
                (unsigned long)rl.rlim_cur, need);
    }
}

/* Closes every connection and frees everything, so that a sanitizer build
 * reports real leaks only. */
static void cleanup(struct conn *conns, int request_allocated)
{
    for (unsigned long i = 0; i < o.n; i++) {
        conn_reset(&conns[i]);
        free(conns[i].resp);
        if (conns[i].session != NULL)
            SSL_SESSION_free(conns[i].session);
    }
    free(conns);
    if (ctx != NULL)
        SSL_CTX_free(ctx);
    if (request_allocated)
        free(o.request);
    close(ep);
}

static unsigned long parse_count(const char *s, unsigned long max)
{
    char *end = NULL;
    unsigned long v = strtoul(s, &end, 10);
    if (end == s || *end != '\0' || v == 0 || v > max)
        usage();
    return v;
}

int main(int argc, char **argv)
{
    const char *addr = NULL, *reqfile = NULL;
    o.n = 0;
    o.inflight = 64;
    o.hold = 600;
    o.timeout = 120;
    o.sni = "localhost";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--tls") == 0) {
            o.tls = 1;
            continue;
        }
        if (strcmp(a, "--resume") == 0) {
            o.resume = 1;
            continue;
        }
        if (i + 1 >= argc)
            usage();
        const char *v = argv[++i];
        if (strcmp(a, "-a") == 0)
            addr = v;
        else if (strcmp(a, "-n") == 0)
            o.n = parse_count(v, 1000000);
        else if (strcmp(a, "-r") == 0)
            reqfile = v;
        else if (strcmp(a, "-p") == 0)
            o.inflight = parse_count(v, 100000);
        else if (strcmp(a, "--sni") == 0)
            o.sni = v;
        else if (strcmp(a, "--hold") == 0)
            o.hold = parse_seconds(v);
        else if (strcmp(a, "--timeout") == 0)
            o.timeout = parse_seconds(v);
        else if (strcmp(a, "--cycle") == 0)
            o.cycle = parse_seconds(v);
        else
            usage();
    }
    if (addr == NULL || o.n == 0)
        usage();
    if (o.resume && !(o.tls && o.cycle > 0)) {
        fprintf(stderr, "holdconns: --resume needs --tls and --cycle\n");
        return 2;
    }
    if (parse_addr(addr, &o.addr, &o.addrlen) != 0) {
        fprintf(stderr, "holdconns: bad address '%s' (want 127.0.0.1:PORT or [::1]:PORT)\n", addr);
        return 2;
    }
    if (reqfile != NULL) {
        o.request = read_file(reqfile, &o.request_len);
    } else {
        static char def[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
        o.request = def;
        o.request_len = sizeof def - 1;
    }
    raise_nofile(o.n + 64);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_stop);
    signal(SIGINT, on_stop);
    if (o.tls) {
        ctx = SSL_CTX_new(TLS_client_method());
        if (ctx == NULL) {
            fprintf(stderr, "holdconns: SSL_CTX_new failed\n");
            return 1;
        }
        /* A benchmark against our own self-signed certificate: no check. */
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    }
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) {
        fprintf(stderr, "holdconns: epoll_create1: %s\n", strerror(errno));
        return 1;
    }
    struct conn *conns = calloc(o.n, sizeof *conns);
    if (conns == NULL) {
        fprintf(stderr, "holdconns: out of memory\n");
        return 1;
    }
    for (unsigned long i = 0; i < o.n; i++)
        conns[i].fd = -1;

    struct epoll_event evs[512];
    double t0 = now();
    if (o.cycle > 0) {
        for (unsigned long i = 0; i < o.n; i++)
            if (conn_start(&conns[i]) != 0)
                return 1;
        double deadline = t0 + o.cycle;
        while (!stop_flag) {
            double left = deadline - now();
            if (left <= 0)
                break;
            int n = epoll_wait(ep, evs, (int)AP_ARRAY_SIZE(evs), (int)(left * 1000) + 1);
            for (int i = 0; i < n; i++)
                conn_event(evs[i].data.ptr, evs[i].events);
            /* A slot whose connection failed starts again. */
            for (unsigned long i = 0; i < o.n && !stop_flag; i++)
                if (conns[i].state == ST_FREE && now() < deadline)
                    conn_start(&conns[i]);
        }
        double secs = now() - t0;
        /* Our own CPU time tells whether the client, not the server, was
         * the limit (near 1.0 on one core). */
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                     (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
        printf("{\"mode\":\"cycle\",\"tls\":%d,\"resume\":%d,\"concurrency\":%lu,\"seconds\":%.3f,"
               "\"cycles\":%lu,\"resumed\":%lu,\"errors\":%lu,\"status_other\":%lu,\"rate\":%.1f,"
               "\"client_cpu\":%.2f}\n",
               o.tls, o.resume, o.n, secs, n_done, n_resumed, n_errors, n_status_other,
               (double)n_done / secs, cpu / secs);
        cleanup(conns, reqfile != NULL);
        return 0;
    }

    /* Hold mode: open N connections, at most o.inflight at a time. */
    unsigned long next = 0;
    double deadline = t0 + o.timeout;
    while (!stop_flag && (next < o.n || n_active > 0) && now() < deadline) {
        while (next < o.n && n_active < o.inflight) {
            if (conn_start(&conns[next++]) != 0)
                return 1;
        }
        int n = epoll_wait(ep, evs, (int)AP_ARRAY_SIZE(evs), 100);
        for (int i = 0; i < n; i++)
            conn_event(evs[i].data.ptr, evs[i].events);
    }
    unsigned long unfinished = n_active + (o.n - next);
    printf("READY opened=%lu idle=%lu failed=%lu status_other=%lu seconds=%.3f\n", next, n_idle,
           n_failed + unfinished, n_status_other, now() - t0);
    fflush(stdout);

    /* Hold until stdin closes, a signal, or --hold seconds. */
    double hold_end = now() + o.hold;
    struct epoll_event sev = {.events = EPOLLIN, .data.ptr = NULL};
    int watch_stdin = epoll_ctl(ep, EPOLL_CTL_ADD, 0, &sev) == 0;
    while (!stop_flag) {
        double left = hold_end - now();
        if (left <= 0)
            break;
        int n = epoll_wait(ep, evs, (int)AP_ARRAY_SIZE(evs), (int)(left * 1000) + 1);
        int eof = 0;
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == NULL) {
                char b[256];
                if (read(0, b, sizeof b) <= 0)
                    eof = 1;
                continue;
            }
            conn_event(evs[i].data.ptr, evs[i].events);
        }
        if (eof || (!watch_stdin && n < 0 && errno != EINTR))
            break;
    }
    printf("DONE idle=%lu closed_by_peer=%lu\n", n_idle, n_closed_by_peer);
    fflush(stdout);
    cleanup(conns, reqfile != NULL);
    return 0;
}
