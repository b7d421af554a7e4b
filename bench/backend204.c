/* backend204: the fast backend of the macro benchmark (bench/run.py).
 *
 * It answers every HTTP/1.x request with "204 No Content" on plain epoll,
 * one thread per -t, each with its own SO_REUSEPORT listener, so that the
 * backend is never what limits a benchmark: a request costs it one pass over
 * the bytes to find the end of the head and the body framing, and one write
 * per batch of pipelined requests.
 *
 * It understands exactly what a proxy sends it: a head ended by an empty
 * line, a body framed by Content-Length or chunked, keep-alive by default
 * in HTTP/1.1 and "Connection: close". A request it cannot frame gets a 400
 * and a close, and is counted as bad, so a proxy that sends garbage shows up
 * in the figures instead of hanging the run.
 *
 * Signals:
 *   SIGUSR1   write the next request received (head and body) to the -d file
 *             (written to FILE.tmp, then renamed, so a reader never sees half);
 *   SIGUSR2   write the counters "requests=N bad=N connections=N" to the -s
 *             file the same way;
 *   SIGTERM, SIGINT  print the counters on stderr and exit 0.
 *
 * usage: backend204 [-l ADDR:PORT] [-t THREADS] [-d DUMPFILE] [-s STATSFILE]
 * With port 0 the kernel chooses; the first line on stdout is always
 * "listening on ADDR:PORT".
 */
#include "anonproxy/common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_THREADS 64
/* Largest request head accepted; proxies send a few hundred bytes. */
#define INBUF_BYTES (64 * 1024)
#define OUTBUF_BYTES (16 * 1024)

static const char RESPONSE_KEEP[] = "HTTP/1.1 204 No Content\r\nServer: backend204\r\n\r\n";
static const char RESPONSE_CLOSE[] =
    "HTTP/1.1 204 No Content\r\nServer: backend204\r\nConnection: close\r\n\r\n";
static const char RESPONSE_BAD[] =
    "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

enum body_state {
    BODY_NONE,      /* waiting for a head */
    BODY_LENGTH,    /* skipping body_left bytes */
    BODY_CHUNK_SIZE, /* waiting for a chunk-size line */
    BODY_CHUNK_DATA, /* skipping body_left bytes of chunk data and its CRLF */
    BODY_TRAILER,   /* waiting for trailer lines up to the empty line */
};

struct conn {
    int fd;
    enum body_state state;
    uint64_t body_left;
    int close_after;   /* the current request asked for Connection: close */
    int closing;       /* close once out is flushed */
    int dumping;       /* the current request is being written to the dump */
    size_t in_len;
    size_t out_len;
    size_t out_off;
    char in[INBUF_BYTES];
    char out[OUTBUF_BYTES];
};

static atomic_ullong n_requests;
static atomic_ullong n_bad;
static atomic_ullong n_connections;
static atomic_int dump_wanted;
static const char *dump_path;
static const char *stats_path;
/* The dump file being written; only the thread that claimed dump_wanted
 * touches it, until it renames it. */
static FILE *dump_file;

static void die(const char *what)
{
    fprintf(stderr, "backend204: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* Case-insensitive search for a header name at the start of a line. Returns
 * the start of its value (after ':' and spaces) or NULL. */
static const char *find_header(const char *head, size_t len, const char *name, size_t *vlen)
{
    size_t nlen = strlen(name);
    const char *p = memchr(head, '\n', len);
    const char *end = head + len;
    while (p != NULL && p + 1 < end) {
        const char *line = p + 1;
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (eol == NULL)
            return NULL;
        if ((size_t)(eol - line) > nlen && line[nlen] == ':' && strncasecmp(line, name, nlen) == 0) {
            const char *v = line + nlen + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            const char *ve = eol;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            *vlen = (size_t)(ve - v);
            return v;
        }
        p = eol;
    }
    return NULL;
}

static int value_has_token(const char *v, size_t vlen, const char *tok)
{
    size_t tlen = strlen(tok);
    for (size_t i = 0; i + tlen <= vlen; i++)
        if (strncasecmp(v + i, tok, tlen) == 0)
            return 1;
    return 0;
}

static void dump_write(struct conn *c, const char *p, size_t n)
{
    if (c->dumping && dump_file != NULL)
        fwrite(p, 1, n, dump_file);
}

static void dump_finish(struct conn *c)
{
    if (!c->dumping)
        return;
    c->dumping = 0;
    if (dump_file == NULL)
        return;
    fclose(dump_file);
    dump_file = NULL;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", dump_path);
    if (rename(tmp, dump_path) != 0)
        fprintf(stderr, "backend204: rename %s: %s\n", tmp, strerror(errno));
}

static void write_stats(FILE *f)
{
    fprintf(f, "requests=%llu bad=%llu connections=%llu\n",
            (unsigned long long)atomic_load(&n_requests), (unsigned long long)atomic_load(&n_bad),
            (unsigned long long)atomic_load(&n_connections));
}

static int queue_out(struct conn *c, const char *s, size_t n)
{
    if (c->out_len + n > sizeof c->out)
        return -ENOBUFS;
    memcpy(c->out + c->out_len, s, n);
    c->out_len += n;
    return 0;
}

/* A request is complete: queue its answer. parse() stops before the output
 * buffer can overflow, so the answer always fits. */
static void request_done(struct conn *c)
{
    atomic_fetch_add_explicit(&n_requests, 1, memory_order_relaxed);
    dump_finish(c);
    if (c->close_after) {
        (void)queue_out(c, RESPONSE_CLOSE, sizeof RESPONSE_CLOSE - 1);
        c->closing = 1;
    } else {
        (void)queue_out(c, RESPONSE_KEEP, sizeof RESPONSE_KEEP - 1);
    }
    c->state = BODY_NONE;
}

static void bad_request(struct conn *c)
{
    atomic_fetch_add_explicit(&n_bad, 1, memory_order_relaxed);
    dump_finish(c);
    (void)queue_out(c, RESPONSE_BAD, sizeof RESPONSE_BAD - 1);
    c->closing = 1;
}

/* Parses a head that ends at head+len (the empty line included) and sets the
 * body framing. Returns 0 or -EPROTO. */
static int start_request(struct conn *c, const char *head, size_t len)
{
    const char *sp = memchr(head, ' ', len);
    if (sp == NULL)
        return -EPROTO;
    const char *eol = memchr(head, '\n', len);
    int http10 = eol != NULL && eol - head >= 9 && memcmp(eol - 9, "HTTP/1.0", 8) == 0;
    size_t vlen = 0;
    const char *v = find_header(head, len, "connection", &vlen);
    c->close_after = http10 ? !(v != NULL && value_has_token(v, vlen, "keep-alive"))
                            : (v != NULL && value_has_token(v, vlen, "close"));
    if (atomic_load_explicit(&dump_wanted, memory_order_relaxed) &&
        atomic_exchange(&dump_wanted, 0)) {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp", dump_path);
        dump_file = fopen(tmp, "w");
        if (dump_file == NULL)
            fprintf(stderr, "backend204: %s: %s\n", tmp, strerror(errno));
        c->dumping = 1;
        dump_write(c, head, len);
    }
    v = find_header(head, len, "transfer-encoding", &vlen);
    if (v != NULL) {
        if (!value_has_token(v, vlen, "chunked"))
            return -EPROTO;
        c->state = BODY_CHUNK_SIZE;
        return 0;
    }
    v = find_header(head, len, "content-length", &vlen);
    if (v != NULL) {
        uint64_t n = 0;
        if (vlen == 0 || vlen > 18)
            return -EPROTO;
        for (size_t i = 0; i < vlen; i++) {
            if (v[i] < '0' || v[i] > '9')
                return -EPROTO;
            n = n * 10 + (uint64_t)(v[i] - '0');
        }
        c->body_left = n;
        c->state = n > 0 ? BODY_LENGTH : BODY_NONE;
        if (n == 0)
            request_done(c);
        return 0;
    }
    request_done(c);
    return 0;
}

/* Consumes as much of c->in as forms complete protocol elements; keeps the
 * rest for the next read. */
static void parse(struct conn *c)
{
    size_t off = 0;
    while (off < c->in_len && !c->closing && c->out_len + sizeof RESPONSE_CLOSE < sizeof c->out) {
        char *p = c->in + off;
        size_t avail = c->in_len - off;
        if (c->state == BODY_NONE) {
            char *end = memmem(p, avail, "\r\n\r\n", 4);
            if (end == NULL) {
                if (avail >= sizeof c->in)
                    bad_request(c);
                break;
            }
            size_t hl = (size_t)(end - p) + 4;
            if (start_request(c, p, hl) != 0) {
                bad_request(c);
                break;
            }
            off += hl;
        } else if (c->state == BODY_LENGTH || c->state == BODY_CHUNK_DATA) {
            size_t n = avail < c->body_left ? avail : (size_t)c->body_left;
            dump_write(c, p, n);
            c->body_left -= n;
            off += n;
            if (c->body_left == 0) {
                if (c->state == BODY_LENGTH)
                    request_done(c);
                else
                    c->state = BODY_CHUNK_SIZE;
            }
        } else {
            char *eol = memmem(p, avail, "\r\n", 2);
            if (eol == NULL) {
                if (avail >= sizeof c->in)
                    bad_request(c);
                break;
            }
            size_t ll = (size_t)(eol - p) + 2;
            dump_write(c, p, ll);
            off += ll;
            if (c->state == BODY_TRAILER) {
                if (ll == 2)
                    request_done(c);
                continue;
            }
            uint64_t n = 0;
            size_t digits = 0;
            for (char *q = p; q < eol && digits < 16; q++, digits++) {
                int d = (*q >= '0' && *q <= '9') ? *q - '0'
                        : (*q >= 'a' && *q <= 'f') ? *q - 'a' + 10
                        : (*q >= 'A' && *q <= 'F') ? *q - 'A' + 10
                                                   : -1;
                if (d < 0)
                    break;
                n = n * 16 + (uint64_t)d;
            }
            if (digits == 0) {
                bad_request(c);
                break;
            }
            if (n == 0) {
                c->state = BODY_TRAILER;
            } else {
                c->state = BODY_CHUNK_DATA;
                c->body_left = n + 2; /* the data and its CRLF */
            }
        }
    }
    if (off > 0) {
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
    }
}

static void conn_close(int ep, struct conn *c)
{
    if (c->dumping) {
        /* A request cut short still leaves a readable dump. */
        dump_finish(c);
    }
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c);
}

/* Writes what is queued. Returns 1 when everything went out, 0 when the
 * socket is full, -1 when the connection is dead. */
static int flush_out(struct conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return 0;
            return -1;
        }
        c->out_off += (size_t)n;
    }
    c->out_len = 0;
    c->out_off = 0;
    return 1;
}

static void on_readable(int ep, struct conn *c)
{
    for (;;) {
        if (c->in_len == sizeof c->in) {
            parse(c);
            if (c->in_len == sizeof c->in) {
                /* parse() could not make room: the output is full. */
                break;
            }
        }
        ssize_t n = read(c->fd, c->in + c->in_len, sizeof c->in - c->in_len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                break;
            conn_close(ep, c);
            return;
        }
        if (n == 0) {
            conn_close(ep, c);
            return;
        }
        c->in_len += (size_t)n;
        parse(c);
        if (c->closing || (size_t)n < sizeof c->in / 2)
            break;
    }
    int rc = flush_out(c);
    if (rc < 0 || (rc == 1 && c->closing)) {
        conn_close(ep, c);
        return;
    }
    struct epoll_event ev = {.events = EPOLLIN | (rc == 0 ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void on_writable(int ep, struct conn *c)
{
    int rc = flush_out(c);
    if (rc < 0 || (rc == 1 && c->closing)) {
        conn_close(ep, c);
        return;
    }
    if (rc == 1) {
        /* The output drained: parse what waited behind it. */
        parse(c);
        on_readable(ep, c);
    }
}

static int listen_socket(const struct sockaddr_storage *ss, socklen_t sl)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket");
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (bind(fd, (const struct sockaddr *)ss, sl) != 0)
        die("bind");
    if (listen(fd, 4096) != 0)
        die("listen");
    return fd;
}

static void *worker(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1");
    /* The listener's data.ptr is NULL; connections carry their struct. */
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev) != 0)
        die("epoll_ctl");
    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, (int)AP_ARRAY_SIZE(evs), -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c == NULL) {
                for (;;) {
                    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (fd < 0)
                        break;
                    int one = 1;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct conn *nc = malloc(sizeof *nc);
                    if (nc == NULL) {
                        close(fd);
                        continue;
                    }
                    nc->fd = fd;
                    nc->state = BODY_NONE;
                    nc->body_left = 0;
                    nc->close_after = nc->closing = nc->dumping = 0;
                    nc->in_len = nc->out_len = nc->out_off = 0;
                    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = nc};
                    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
                        close(fd);
                        free(nc);
                        continue;
                    }
                    atomic_fetch_add_explicit(&n_connections, 1, memory_order_relaxed);
                }
                continue;
            }
            if (evs[i].events & EPOLLOUT)
                on_writable(ep, c);
            else if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                on_readable(ep, c);
        }
    }
    return NULL;
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
    if (end == colon + 1 || *end != '\0' || port > 65535)
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

static void write_file_atomically(const char *path, void (*fill)(FILE *))
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL) {
        fprintf(stderr, "backend204: %s: %s\n", tmp, strerror(errno));
        return;
    }
    fill(f);
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        fprintf(stderr, "backend204: %s: %s\n", path, strerror(errno));
}

static void usage(void)
{
    fprintf(stderr, "usage: backend204 [-l ADDR:PORT] [-t THREADS] [-d DUMPFILE] [-s STATSFILE]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *addr = "127.0.0.1:0";
    unsigned long threads = 1;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            usage();
        char *end = NULL;
        if (strcmp(argv[i], "-l") == 0) {
            addr = argv[++i];
        } else if (strcmp(argv[i], "-t") == 0) {
            threads = strtoul(argv[++i], &end, 10);
            if (*end != '\0' || threads < 1 || threads > MAX_THREADS)
                usage();
        } else if (strcmp(argv[i], "-d") == 0) {
            dump_path = argv[++i];
        } else if (strcmp(argv[i], "-s") == 0) {
            stats_path = argv[++i];
        } else {
            usage();
        }
    }
    struct sockaddr_storage ss;
    socklen_t sl = 0;
    if (parse_addr(addr, &ss, &sl) != 0) {
        fprintf(stderr, "backend204: bad address '%s' (want 127.0.0.1:PORT or [::1]:PORT)\n", addr);
        return 2;
    }

    /* Every thread but this one blocks the signals; this one waits for them. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    int fds[MAX_THREADS];
    fds[0] = listen_socket(&ss, sl);
    /* With port 0 the other threads must bind the port the first one got. */
    if (getsockname(fds[0], (struct sockaddr *)&ss, &sl) != 0)
        die("getsockname");
    for (unsigned long t = 1; t < threads; t++)
        fds[t] = listen_socket(&ss, sl);
    char host[INET6_ADDRSTRLEN];
    unsigned port;
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &a6->sin6_addr, host, sizeof host);
        port = ntohs(a6->sin6_port);
        printf("listening on [%s]:%u\n", host, port);
    } else {
        struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &a4->sin_addr, host, sizeof host);
        port = ntohs(a4->sin_port);
        printf("listening on %s:%u\n", host, port);
    }
    fflush(stdout);

    for (unsigned long t = 0; t < threads; t++) {
        pthread_t th;
        if (pthread_create(&th, NULL, worker, (void *)(intptr_t)fds[t]) != 0)
            die("pthread_create");
        pthread_detach(th);
    }
    for (;;) {
        int sig = 0;
        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig == SIGUSR1) {
            if (dump_path != NULL)
                atomic_store(&dump_wanted, 1);
        } else if (sig == SIGUSR2) {
            if (stats_path != NULL)
                write_file_atomically(stats_path, write_stats);
        } else if (sig == SIGTERM || sig == SIGINT) {
            fputs("backend204: ", stderr);
            write_stats(stderr);
            return 0;
        }
    }
}
