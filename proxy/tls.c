/* TLS termination and TLS to upstreams, with OpenSSL 3 (see tls.h).
 *
 * I/O. Every SSL object has one custom BIO as both its read and write BIO.
 * Reads come from the bytes the caller fed (the worker's libuv read buffer,
 * never copied); writes are gathered in a per-thread buffer and handed to
 * the connection's sender at the end of each call (or when the buffer
 * fills), so a handshake flight leaves in one write. Nothing per connection
 * is buffered between calls: with SSL_MODE_RELEASE_BUFFERS and
 * SSL_free_buffers on idle, an idle connection holds only its SSL state.
 *
 * Listeners. Certificate entries with the same name set form a group that
 * one SSL_CTX serves (an RSA and an ECDSA pair side by side: OpenSSL picks
 * by the client's signature algorithms). The group of the first entry is
 * the default; the servername callback switches to the group of an exact,
 * then a wildcard, match. A listener's contexts are refcounted (struct
 * lctx): a connection holds the set it was accepted with, so a reload
 * changes new handshakes only.
 *
 * Resumption. Session tickets (TLS 1.2 tickets and TLS 1.3 PSK) are
 * encrypted with keys that belong to the listener's slot (struct lslot),
 * shared by every worker and rotated lazily: the first ticket issued after
 * ticket_key_rotation has passed makes a new key; the previous one still
 * decrypts for one more period (such tickets are renewed). Tickets live as
 * long as one period. The TLS 1.2 session cache is the default context's,
 * also process-wide.
 */
#include "anonproxy/common.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "anonproxy/log.h"
#include "anonproxy/tls.h"

#define TLS_MAGIC 0x544c5331u      /* "TLS1" */
#define TLSCONN_MAGIC 0x544c4331u  /* "TLC1" */

/* Largest PEM file read; real ones are a few KiB, CA bundles ~200 KiB. */
#define MAX_PEM_BYTES (4u * 1024u * 1024u)
/* Largest TLS plaintext record. */
#define REC_MAX 16384
/* Certificates expiring within this many days get a warning. */
#define EXPIRY_WARN_DAYS 30
/* Number of ticket keys kept: the current one and the previous one. */
#define NKEYS 2

static const unsigned char alpn_http11[] = "\x08http/1.1";

/* ---- clock ---- */

static uint64_t real_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t (*now_ms)(void) = real_now_ms;

void ap_tls__set_clock(uint64_t (*fn)(void))
{
    now_ms = fn != NULL ? fn : real_now_ms;
}

/* ---- error text ---- */

/* Lines of error text, each "CONFIG:LINE:COL: WHAT: message". */
struct errs {
    char *buf;
    size_t len, cap;
    int oom;
};

__attribute__((format(printf, 3, 4)))
static void errs_add(struct errs *e, const char *where, const char *fmt, ...)
{
    char line[1024];
    int n = snprintf(line, sizeof(line), "%s: ", where);
    if (n < 0 || (size_t)n >= sizeof(line))
        n = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    size_t l = strlen(line);
    if (e->len + l + 2 > e->cap) {
        size_t cap = (e->cap ? e->cap * 2 : 512) + l + 2;
        char *nb = realloc(e->buf, cap);
        if (nb == NULL) {
            e->oom = 1;
            return;
        }
        e->buf = nb;
        e->cap = cap;
    }
    memcpy(e->buf + e->len, line, l);
    e->len += l;
    e->buf[e->len++] = '\n';
    e->buf[e->len] = '\0';
}

/* The most useful text of OpenSSL's error queue, which is then cleared. */
static const char *ssl_reason(void)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    ERR_clear_error();
    return r != NULL ? r : "unknown error";
}

/* ---- files ---- */

/* Reads a whole file of at most MAX_PEM_BYTES into a memory BIO. */
static BIO *read_file(struct errs *e, const char *where, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        errs_add(e, where, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        errs_add(e, where, "%s: not a regular file", path);
        close(fd);
        return NULL;
    }
    if ((uint64_t)st.st_size > MAX_PEM_BYTES) {
        errs_add(e, where, "%s: file too large (over 4 MiB)", path);
        close(fd);
        return NULL;
    }
    BIO *b = BIO_new(BIO_s_mem());
    if (b == NULL) {
        e->oom = 1;
        close(fd);
        return NULL;
    }
    char buf[8192];
    size_t total = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            errs_add(e, where, "%s: cannot read: %s", path, strerror(errno));
            BIO_free(b);
            b = NULL;
            break;
        }
        if (n == 0)
            break;
        /* st_size is 0 for /proc files of any length: count. */
        total += (size_t)n;
        if (total > MAX_PEM_BYTES) {
            errs_add(e, where, "%s: file too large (over 4 MiB)", path);
            BIO_free(b);
            b = NULL;
            break;
        }
        if (BIO_write(b, buf, (int)n) != (int)n) {
            e->oom = 1;
            BIO_free(b);
            b = NULL;
            break;
        }
    }
    close(fd);
    /* Keys pass through here: leave no copy on the stack. */
    OPENSSL_cleanse(buf, sizeof(buf));
    return b;
}

/* Reads every certificate of a PEM file: the first goes to *leaf (when
 * leaf is not NULL), the others are pushed on *chain. Returns the number
 * read (at least 1) or -1 after reporting. */
static int load_certs(struct errs *e, const char *where, const char *path, X509 **leaf,
                      STACK_OF(X509) **chain)
{
    BIO *b = read_file(e, where, path);
    if (b == NULL)
        return -1;
    int n = 0;
    ERR_clear_error();
    for (;;) {
        X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
        if (x == NULL) {
            unsigned long err = ERR_peek_last_error();
            if (ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE) {
                ERR_clear_error();
                if (n > 0)
                    break;
                errs_add(e, where, "%s: no PEM certificate found", path);
            } else {
                errs_add(e, where, "%s: malformed PEM certificate: %s", path, ssl_reason());
            }
            n = -1;
            break;
        }
        if (n == 0 && leaf != NULL) {
            *leaf = x;
        } else {
            if (*chain == NULL)
                *chain = sk_X509_new_null();
            if (*chain == NULL || !sk_X509_push(*chain, x)) {
                X509_free(x);
                e->oom = 1;
                n = -1;
                break;
            }
        }
        n++;
    }
    BIO_free(b);
    if (n < 0 && leaf != NULL && *leaf != NULL) {
        X509_free(*leaf);
        *leaf = NULL;
    }
    return n;
}

static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    return 0;
}

static EVP_PKEY *load_key(struct errs *e, const char *where, const char *path)
{
    BIO *b = read_file(e, where, path);
    if (b == NULL)
        return NULL;
    /* OpenSSL's decoders say "unsupported" for a file that holds only a
     * certificate; say what is wrong instead. */
    char *data = NULL;
    long dlen = BIO_get_mem_data(b, &data);
    if (dlen <= 0 || memmem(data, (size_t)dlen, "PRIVATE KEY-----", 16) == NULL) {
        errs_add(e, where, "%s: no PEM private key found", path);
        BIO_free(b);
        return NULL;
    }
    ERR_clear_error();
    EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, no_passphrase, NULL);
    BIO_free(b);
    if (k == NULL) {
        unsigned long err = ERR_peek_last_error();
        if (ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE) {
            ERR_clear_error();
            errs_add(e, where, "%s: no PEM private key found", path);
        } else if (ERR_GET_LIB(err) == ERR_LIB_PEM &&
                   ERR_GET_REASON(err) == PEM_R_BAD_PASSWORD_READ) {
            ERR_clear_error();
            errs_add(e, where, "%s: encrypted private keys are not supported", path);
        } else {
            errs_add(e, where, "%s: malformed PEM private key: %s", path, ssl_reason());
        }
    }
    return k;
}

/* Logs a warning for a certificate that is expired, not yet valid or
 * expires within EXPIRY_WARN_DAYS. */
static void warn_expiry(const char *where, const char *path, X509 *x)
{
    int days = 0, secs = 0;
    const ASN1_TIME *na = X509_get0_notAfter(x), *nb = X509_get0_notBefore(x);
    char when[64] = "?";
    BIO *m = BIO_new(BIO_s_mem());
    if (m != NULL && ASN1_TIME_print(m, na) > 0) {
        int l = BIO_read(m, when, (int)sizeof(when) - 1);
        when[l > 0 ? l : 0] = '\0';
    }
    BIO_free(m);
    if (ASN1_TIME_diff(&days, &secs, NULL, na)) {
        if (days < 0 || secs < 0)
            ap_log(AP_LOG_WARN, "%s: %s: certificate expired on %s", where, path, when);
        else if (days < EXPIRY_WARN_DAYS)
            ap_log(AP_LOG_WARN, "%s: %s: certificate expires in %d days (%s)", where, path,
                   days, when);
    }
    if (ASN1_TIME_diff(&days, &secs, NULL, nb) && (days > 0 || secs > 0))
        ap_log(AP_LOG_WARN, "%s: %s: certificate is not valid yet", where, path);
    ERR_clear_error();
}

/* ---- names ---- */

static int is_name_char(int c)
{
    return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '*';
}

/* Copies a DNS name from a certificate, lower-cased; NULL when it is not a
 * plausible name (the SNI lookup only ever compares whole names). */
static char *dup_cert_name(const unsigned char *p, int len)
{
    if (len <= 0 || len > 253)
        return NULL;
    char *s = malloc((size_t)len + 1);
    if (s == NULL)
        return NULL;
    for (int i = 0; i < len; i++) {
        if (!is_name_char(p[i])) {
            free(s);
            return NULL;
        }
        s[i] = (char)tolower(p[i]);
    }
    s[len] = '\0';
    return s;
}

static int push_name(char ***v, size_t *n, char *s)
{
    if (s == NULL)
        return 0;
    for (size_t i = 0; i < *n; i++) {
        if (strcmp((*v)[i], s) == 0) {
            free(s);
            return 0;
        }
    }
    char **nv = realloc(*v, (*n + 1) * sizeof(*nv));
    if (nv == NULL) {
        free(s);
        return -ENOMEM;
    }
    *v = nv;
    (*v)[(*n)++] = s;
    return 0;
}

/* The DNS names of a certificate: its subjectAltName DNS entries, or its
 * common name when it has none. */
static int cert_names(X509 *x, char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    int rc = 0;
    if (gens != NULL) {
        for (int i = 0; i < sk_GENERAL_NAME_num(gens) && rc == 0; i++) {
            const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
            if (g->type != GEN_DNS)
                continue;
            const ASN1_IA5STRING *s = g->d.dNSName;
            rc = push_name(out, n, dup_cert_name(ASN1_STRING_get0_data(s), ASN1_STRING_length(s)));
        }
        GENERAL_NAMES_free(gens);
    }
    if (rc == 0 && *n == 0) {
        X509_NAME *subj = X509_get_subject_name(x);
        int idx = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
        if (idx >= 0) {
            const ASN1_STRING *s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, idx));
            rc = push_name(out, n, dup_cert_name(ASN1_STRING_get0_data(s), ASN1_STRING_length(s)));
        }
    }
    ERR_clear_error();
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* ---- ticket keys ---- */

struct tkey {
    unsigned char name[16];
    unsigned char aes[32];
    unsigned char hmac[32];
    uint64_t made_ms;    /* when it became the current key */
    uint64_t retired_ms; /* when it stopped being current; 0 while current */
};

/* The ticket keys of one listener, shared by every worker. */
struct keyset {
    pthread_rwlock_t lock;
    struct tkey keys[NKEYS]; /* keys[0] is current when n > 0 */
    unsigned n;
    uint64_t rotation_ms;
};

static int tkey_make(struct tkey *k, uint64_t now)
{
    if (RAND_bytes(k->name, sizeof(k->name)) != 1 || RAND_bytes(k->aes, sizeof(k->aes)) != 1 ||
        RAND_bytes(k->hmac, sizeof(k->hmac)) != 1)
        return -EIO;
    k->made_ms = now;
    k->retired_ms = 0;
    return 0;
}

/* Copies the current key to *out, making a new one first when the current
 * one is older than the rotation period. */
static int keyset_current(struct keyset *ks, struct tkey *out)
{
    uint64_t now = now_ms();
    pthread_rwlock_rdlock(&ks->lock);
    if (ks->n > 0 && now - ks->keys[0].made_ms < ks->rotation_ms) {
        *out = ks->keys[0];
        pthread_rwlock_unlock(&ks->lock);
        return 0;
    }
    pthread_rwlock_unlock(&ks->lock);
    pthread_rwlock_wrlock(&ks->lock);
    int rc = 0;
    if (ks->n == 0 || now - ks->keys[0].made_ms >= ks->rotation_ms) {
        struct tkey k;
        rc = tkey_make(&k, now);
        if (rc == 0) {
            if (ks->n > 0) {
                for (unsigned i = NKEYS - 1; i > 0; i--)
                    ks->keys[i] = ks->keys[i - 1];
                ks->keys[1].retired_ms = now;
            }
            ks->keys[0] = k;
            if (ks->n < NKEYS)
                ks->n++;
            OPENSSL_cleanse(&k, sizeof(k));
        }
    }
    if (rc == 0)
        *out = ks->keys[0];
    pthread_rwlock_unlock(&ks->lock);
    return rc;
}

/* Finds the key named `name` that may still decrypt: the current one, or
 * a previous one retired less than one period ago. Returns 1 (current),
 * 2 (older: renew the ticket) or 0 (unknown or too old). */
static int keyset_find(struct keyset *ks, const unsigned char name[16], struct tkey *out)
{
    uint64_t now = now_ms();
    int found = 0;
    pthread_rwlock_rdlock(&ks->lock);
    for (unsigned i = 0; i < ks->n; i++) {
        const struct tkey *k = &ks->keys[i];
        if (memcmp(k->name, name, sizeof(k->name)) != 0)
            continue;
        if (i == 0 && now - k->made_ms < 2 * ks->rotation_ms)
            found = now - k->made_ms < ks->rotation_ms ? 1 : 2;
        else if (i > 0 && now - k->retired_ms < ks->rotation_ms)
            found = 2;
        if (found)
            *out = *k;
        break;
    }
    pthread_rwlock_unlock(&ks->lock);
    return found;
}

/* ---- listener contexts ---- */

struct sni_name {
    char *name;   /* lower-case; a wildcard is stored as "*.example.com" */
    size_t group; /* index into lctx.ctxs */
};

/* The contexts of one listener as one configuration built them. */
struct lctx {
    int refs;
    SSL_CTX **ctxs; /* one per certificate group; ctxs[0] is the default */
    size_t nctxs;
    struct sni_name *names; /* sorted by name */
    size_t nnames;
};

/* What survives reloads for one listener address. */
struct lslot {
    char *address;
    struct keyset keys;
    struct ap_tls_stats stats;
    struct lctx *cur; /* NULL when the listener is gone or plain */
};

/* ---- upstream contexts ---- */

struct uctx {
    int refs;
    SSL_CTX *ctx;
    unsigned verify : 1;
    pthread_mutex_t mu;       /* guards sessions */
    char **urls;              /* per server of the upstream, to match sessions */
    SSL_SESSION **sessions;   /* last session per server, for resumption */
    size_t nservers;
};

struct uslot {
    char *name;
    struct ap_tls_stats stats;
    struct uctx *cur;
};

struct ap_tls {
    unsigned magic;
    pthread_rwlock_t lock; /* readers: accept and connect; writer: reload */
    struct lslot **lslots;
    size_t nlslots;
    struct uslot **uslots;
    size_t nuslots;
};

struct ap_tls_conn {
    unsigned magic;
    SSL *ssl;
    struct ap_tls_sender sender;
    struct lslot *lslot;      /* server side */
    struct lctx *lctx;        /* server side, a reference */
    struct uslot *uslot;      /* client side */
    struct uctx *uctx;        /* client side, a reference */
    size_t server;            /* client side: index of the server */
    const char *rx;           /* fed ciphertext not yet consumed */
    size_t rxlen;
    const char *why;          /* static text of the failure */
    int werr;                 /* first error of the sender */
    unsigned worker;
    unsigned established : 1;
    unsigned failed : 1;
    unsigned timed_out : 1;
    unsigned shut : 1;
};

/* ---- per-thread buffers and the BIO ---- */

/* Each worker thread has its own; a connection uses them only during a
 * call, so they are free between calls. */
static _Thread_local char tl_plain[REC_MAX];
static _Thread_local char tl_stage[REC_MAX];
static _Thread_local char tl_out[2 * REC_MAX + 2048];
static _Thread_local size_t tl_outlen;
static _Thread_local struct ap_tls_conn *tl_owner;

static void out_flush(void)
{
    struct ap_tls_conn *c = tl_owner;
    size_t n = tl_outlen;
    tl_outlen = 0;
    tl_owner = NULL;
    if (c == NULL || n == 0)
        return;
    if (c->werr == 0) {
        int r = c->sender.send(c->sender.ctx, tl_out, n);
        if (r < 0)
            c->werr = r;
    }
}

static void out_append(struct ap_tls_conn *c, const char *p, size_t n)
{
    if (tl_owner != c || tl_outlen + n > sizeof(tl_out))
        out_flush();
    if (n > sizeof(tl_out)) {
        if (c->werr == 0) {
            int r = c->sender.send(c->sender.ctx, p, n);
            if (r < 0)
                c->werr = r;
        }
        return;
    }
    memcpy(tl_out + tl_outlen, p, n);
    tl_outlen += n;
    tl_owner = c;
}

static int bio_write(BIO *b, const char *in, int inl)
{
    struct ap_tls_conn *c = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (inl <= 0)
        return 0;
    out_append(c, in, (size_t)inl);
    return inl;
}

static int bio_read(BIO *b, char *out, int outl)
{
    struct ap_tls_conn *c = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (outl <= 0)
        return 0;
    if (c->rxlen == 0) {
        BIO_set_retry_read(b);
        return -1;
    }
    size_t n = c->rxlen < (size_t)outl ? c->rxlen : (size_t)outl;
    memcpy(out, c->rx, n);
    c->rx += n;
    c->rxlen -= n;
    return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    /* Flushing happens at the end of each call; nothing else applies. */
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static BIO_METHOD *bio_meth;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static void bio_meth_init(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "anonproxy-uv");
    if (m == NULL)
        return;
    BIO_meth_set_write(m, bio_write);
    BIO_meth_set_read(m, bio_read);
    BIO_meth_set_ctrl(m, bio_ctrl);
    BIO_meth_set_create(m, bio_create);
    bio_meth = m;
}

/* ---- callbacks ---- */

static int alpn_select(SSL *s, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned inlen, void *arg)
{
    unsigned char *o = NULL;
    if (SSL_select_next_proto(&o, outlen, alpn_http11, sizeof(alpn_http11) - 1, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL; /* RFC 7301: no_application_protocol */
    *out = o;
    return SSL_TLSEXT_ERR_OK;
}

static int sni_cmp(const void *key, const void *elem)
{
    return strcmp(key, ((const struct sni_name *)elem)->name);
}

/* The group serving `name`: exact match, then "*.rest" for the name
 * without its first label; 0 (the default) otherwise. */
static size_t lctx_lookup(const struct lctx *l, const char *name)
{
    char lower[256];
    size_t len = strlen(name);
    if (len == 0 || len >= sizeof(lower) - 1)
        return 0;
    for (size_t i = 0; i <= len; i++)
        lower[i] = (char)tolower((unsigned char)name[i]);
    if (lower[len - 1] == '.')
        lower[--len] = '\0';
    const struct sni_name *hit = bsearch(lower, l->names, l->nnames, sizeof(*l->names), sni_cmp);
    if (hit != NULL)
        return hit->group;
    char *dot = strchr(lower, '.');
    if (dot == NULL || dot == lower)
        return 0;
    dot[-1] = '*';
    hit = bsearch(dot - 1, l->names, l->nnames, sizeof(*l->names), sni_cmp);
    return hit != NULL ? hit->group : 0;
}

static int on_servername(SSL *s, int *al, void *arg)
{
    struct ap_tls_conn *c = SSL_get_app_data(s);
    const char *name = SSL_get_servername(s, TLSEXT_NAMETYPE_host_name);
    if (c == NULL || c->lctx == NULL || name == NULL)
        return SSL_TLSEXT_ERR_NOACK;
    size_t g = lctx_lookup(c->lctx, name);
    if (g != 0 && SSL_set_SSL_CTX(s, c->lctx->ctxs[g]) == NULL)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    return SSL_TLSEXT_ERR_OK;
}

static int set_hmac_key(EVP_MAC_CTX *hctx, unsigned char *key, size_t len)
{
    OSSL_PARAM params[3];
    params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, key, len);
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
    params[2] = OSSL_PARAM_construct_end();
    return EVP_MAC_CTX_set_params(hctx, params);
}

static int on_ticket_key(SSL *s, unsigned char key_name[16], unsigned char *iv,
                         EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
    struct ap_tls_conn *c = SSL_get_app_data(s);
    if (c == NULL || c->lslot == NULL)
        return -1;
    struct keyset *ks = &c->lslot->keys;
    struct tkey k;
    int rc;
    if (enc) {
        if (keyset_current(ks, &k) != 0)
            return -1;
        rc = -1;
        if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(EVP_aes_256_cbc())) == 1 &&
            EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes, iv) == 1 &&
            set_hmac_key(hctx, k.hmac, sizeof(k.hmac)) == 1) {
            memcpy(key_name, k.name, sizeof(k.name));
            rc = 1;
        }
    } else {
        rc = keyset_find(ks, key_name, &k);
        if (rc != 0 && (set_hmac_key(hctx, k.hmac, sizeof(k.hmac)) != 1 ||
                        EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes, iv) != 1))
            rc = -1;
        /* TLS 1.3 clients use a ticket once (RFC 8446, C.4): without a new
         * one, a resumed connection would leave them nothing to resume the
         * next time. */
        if (rc == 1 && SSL_version(s) == TLS1_3_VERSION)
            rc = 2;
    }
    OPENSSL_cleanse(&k, sizeof(k));
    return rc;
}

static int on_client_session(SSL *s, SSL_SESSION *sess)
{
    struct ap_tls_conn *c = SSL_get_app_data(s);
    if (c == NULL || c->uctx == NULL || c->server >= c->uctx->nservers)
        return 0;
    struct uctx *u = c->uctx;
    pthread_mutex_lock(&u->mu);
    SSL_SESSION *old = u->sessions[c->server];
    u->sessions[c->server] = sess;
    pthread_mutex_unlock(&u->mu);
    SSL_SESSION_free(old);
    return 1; /* we keep the reference */
}

/* ---- building listener contexts ---- */

struct centry {
    X509 *leaf;
    STACK_OF(X509) *chain;
    EVP_PKEY *key;
    int type;      /* EVP_PKEY_RSA or EVP_PKEY_EC */
    char **names;  /* sorted */
    size_t nnames;
    size_t group;
    char where[320];
};

static void centry_free(struct centry *ce)
{
    X509_free(ce->leaf);
    sk_X509_pop_free(ce->chain, X509_free);
    EVP_PKEY_free(ce->key);
    for (size_t i = 0; i < ce->nnames; i++)
        free(ce->names[i]);
    free(ce->names);
}

static void lctx_unref(struct lctx *l)
{
    if (l == NULL || __atomic_sub_fetch(&l->refs, 1, __ATOMIC_ACQ_REL) > 0)
        return;
    for (size_t i = 0; i < l->nctxs; i++)
        SSL_CTX_free(l->ctxs[i]);
    free(l->ctxs);
    for (size_t i = 0; i < l->nnames; i++)
        free(l->names[i].name);
    free(l->names);
    free(l);
}

static int set_versions(SSL_CTX *ctx, unsigned protocols)
{
    int min = (protocols & AP_TLS_PROTO_TLS12) ? TLS1_2_VERSION : TLS1_3_VERSION;
    int max = (protocols & AP_TLS_PROTO_TLS13) ? TLS1_3_VERSION : TLS1_2_VERSION;
    return SSL_CTX_set_min_proto_version(ctx, min) == 1 &&
                   SSL_CTX_set_max_proto_version(ctx, max) == 1
               ? 0
               : -EINVAL;
}

/* Settings every context of a listener shares (the servername callback
 * may switch a connection to any of them mid-handshake). */
static int server_ctx_setup(SSL_CTX *ctx, const struct ap_config_tls_listener *lt,
                            struct errs *e, const char *where)
{
    uint64_t opts = SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION |
                    SSL_OP_NO_COMPRESSION | SSL_OP_PRIORITIZE_CHACHA;
    if (!lt->session_tickets)
        opts |= SSL_OP_NO_TICKET;
    SSL_CTX_set_options(ctx, opts);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (set_versions(ctx, lt->protocols) != 0) {
        errs_add(e, where, "cannot set protocol versions: %s", ssl_reason());
        return -EINVAL;
    }
    if (SSL_CTX_set_cipher_list(ctx, lt->ciphers) != 1) {
        errs_add(e, where, "ciphers '%s': %s", lt->ciphers, ssl_reason());
        return -EINVAL;
    }
    if (SSL_CTX_set_ciphersuites(ctx, lt->ciphersuites) != 1) {
        errs_add(e, where, "ciphersuites '%s': %s", lt->ciphersuites, ssl_reason());
        return -EINVAL;
    }
    if (SSL_CTX_set1_groups_list(ctx, "X25519:P-256") != 1) {
        errs_add(e, where, "cannot set groups X25519 and P-256: %s", ssl_reason());
        return -EINVAL;
    }
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
    SSL_CTX_set_tlsext_servername_callback(ctx, on_servername);
    static const unsigned char sid_ctx[] = "anonproxy";
    SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
    if (lt->session_cache > 0) {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
        SSL_CTX_sess_set_cache_size(ctx, (long)lt->session_cache);
    } else {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    }
    /* A session lives as long as the key that encrypts its ticket is
     * current: one rotation period. */
    long timeout = (long)(lt->ticket_key_rotation_ms / 1000);
    SSL_CTX_set_timeout(ctx, timeout > 0 ? timeout : 1);
    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, on_ticket_key);
    /* One TLS 1.3 ticket per handshake is what browsers use; without
     * tickets nor cache there is nothing to resume. */
    SSL_CTX_set_num_tickets(ctx, lt->session_tickets || lt->session_cache > 0 ? 1 : 0);
    return 0;
}

/* Loads one certificate entry: files, key match, names. */
static int centry_load(struct centry *ce, const struct ap_config_tls_cert *cc, struct errs *e)
{
    int bad = 0;
    if (load_certs(e, ce->where, cc->cert, &ce->leaf, &ce->chain) < 0)
        bad = 1;
    if (cc->chain != NULL && load_certs(e, ce->where, cc->chain, NULL, &ce->chain) < 0)
        bad = 1;
    ce->key = load_key(e, ce->where, cc->key);
    if (ce->key == NULL)
        bad = 1;
    if (bad)
        return -EINVAL;
    ce->type = EVP_PKEY_get_base_id(ce->key);
    if (ce->type != EVP_PKEY_RSA && ce->type != EVP_PKEY_EC) {
        errs_add(e, ce->where, "%s: unsupported key type (RSA or EC expected)", cc->key);
        return -EINVAL;
    }
    if (X509_check_private_key(ce->leaf, ce->key) != 1) {
        ERR_clear_error();
        errs_add(e, ce->where, "%s: key does not match certificate %s", cc->key, cc->cert);
        return -EINVAL;
    }
    warn_expiry(ce->where, cc->cert, ce->leaf);
    if (cc->nnames > 0) {
        for (size_t i = 0; i < cc->nnames; i++) {
            char *s = strdup(cc->names[i]);
            if (s == NULL || push_name(&ce->names, &ce->nnames, s) != 0) {
                e->oom = 1;
                return -ENOMEM;
            }
        }
    } else if (cert_names(ce->leaf, &ce->names, &ce->nnames) != 0) {
        e->oom = 1;
        return -ENOMEM;
    }
    /* qsort wants a non-NULL array even when it sorts nothing. */
    if (ce->nnames > 1)
        qsort(ce->names, ce->nnames, sizeof(*ce->names), cmp_str);
    return 0;
}

static int same_names(const struct centry *a, const struct centry *b)
{
    if (a->nnames != b->nnames)
        return 0;
    for (size_t i = 0; i < a->nnames; i++)
        if (strcmp(a->names[i], b->names[i]) != 0)
            return 0;
    return 1;
}

static int sni_name_cmp(const void *a, const void *b)
{
    return strcmp(((const struct sni_name *)a)->name, ((const struct sni_name *)b)->name);
}

/* Builds the contexts of listener `li` of cfg. */
static struct lctx *lctx_build(const struct ap_config *cfg, size_t li, struct errs *e)
{
    const struct ap_config_listener *l = &cfg->listeners[li];
    const struct ap_config_tls_listener *lt = l->tls;
    size_t n = lt->ncerts;
    struct centry *ce = calloc(n ? n : 1, sizeof(*ce));
    struct lctx *lc = calloc(1, sizeof(*lc));
    if (ce == NULL || lc == NULL) {
        free(ce);
        free(lc);
        e->oom = 1;
        return NULL;
    }
    lc->refs = 1;
    int bad = n == 0;
    for (size_t i = 0; i < n; i++) {
        const struct ap_config_tls_cert *cc = &lt->certs[i];
        snprintf(ce[i].where, sizeof(ce[i].where), "%s:%u:%u: listen[%zu].tls.certificates[%zu]",
                 cfg->path ? cfg->path : "config", cc->pos.line, cc->pos.col, li, i);
        if (centry_load(&ce[i], cc, e) != 0)
            bad = 1;
    }
    /* Group entries by name set; a group holds one key of each type. */
    size_t ngroups = 0;
    for (size_t i = 0; i < n && !bad; i++) {
        size_t g = ngroups;
        for (size_t j = 0; j < i; j++) {
            if (same_names(&ce[i], &ce[j])) {
                g = ce[j].group;
                if (ce[j].type == ce[i].type) {
                    errs_add(e, ce[i].where,
                             "%s: a second %s certificate for the same names as "
                             "certificates[%zu]",
                             lt->certs[i].cert, ce[i].type == EVP_PKEY_RSA ? "RSA" : "ECDSA", j);
                    bad = 1;
                }
                break;
            }
        }
        ce[i].group = g;
        if (g == ngroups)
            ngroups++;
        if (i > 0 && ce[i].nnames == 0) {
            errs_add(e, ce[i].where,
                     "%s: no server name (the certificate has no DNS name; set names)",
                     lt->certs[i].cert);
            bad = 1;
        }
    }
    if (!bad) {
        lc->ctxs = calloc(ngroups, sizeof(*lc->ctxs));
        size_t total = 0;
        for (size_t i = 0; i < n; i++)
            total += ce[i].nnames;
        lc->names = calloc(total ? total : 1, sizeof(*lc->names));
        if (lc->ctxs == NULL || lc->names == NULL) {
            e->oom = 1;
            bad = 1;
        }
    }
    for (size_t g = 0; g < ngroups && !bad; g++) {
        SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
        if (ctx == NULL) {
            e->oom = 1;
            bad = 1;
            break;
        }
        lc->ctxs[lc->nctxs++] = ctx;
        size_t first = 0;
        while (ce[first].group != g)
            first++;
        if (server_ctx_setup(ctx, lt, e, ce[first].where) != 0) {
            bad = 1;
            break;
        }
        for (size_t i = first; i < n && !bad; i++) {
            if (ce[i].group != g)
                continue;
            if (SSL_CTX_use_certificate(ctx, ce[i].leaf) != 1 ||
                SSL_CTX_use_PrivateKey(ctx, ce[i].key) != 1 ||
                SSL_CTX_set1_chain(ctx, ce[i].chain) != 1 ||
                SSL_CTX_check_private_key(ctx) != 1) {
                errs_add(e, ce[i].where, "%s: cannot use this certificate: %s",
                         lt->certs[i].cert, ssl_reason());
                bad = 1;
            }
        }
        if (bad)
            break;
        /* Names once, from the first entry of the group. */
        for (size_t k = 0; k < ce[first].nnames; k++) {
            char *s = strdup(ce[first].names[k]);
            if (s == NULL) {
                e->oom = 1;
                bad = 1;
                break;
            }
            lc->names[lc->nnames++] = (struct sni_name){s, g};
        }
    }
    if (!bad) {
        qsort(lc->names, lc->nnames, sizeof(*lc->names), sni_name_cmp);
        for (size_t i = 1; i < lc->nnames; i++) {
            if (strcmp(lc->names[i].name, lc->names[i - 1].name) != 0)
                continue;
            size_t a = 0, b = 0;
            while (ce[a].group != lc->names[i - 1].group)
                a++;
            while (ce[b].group != lc->names[i].group)
                b++;
            if (b < a) {
                size_t t = a;
                a = b;
                b = t;
            }
            errs_add(e, ce[b].where,
                     "%s: name '%s' is already served by certificates[%zu] (entries that "
                     "share a name must list the same names)",
                     lt->certs[b].cert, lc->names[i].name, a);
            bad = 1;
            break;
        }
    }
    for (size_t i = 0; i < n; i++)
        centry_free(&ce[i]);
    free(ce);
    if (bad) {
        lctx_unref(lc);
        return NULL;
    }
    return lc;
}

/* ---- building upstream contexts ---- */

static void uctx_unref(struct uctx *u)
{
    if (u == NULL || __atomic_sub_fetch(&u->refs, 1, __ATOMIC_ACQ_REL) > 0)
        return;
    SSL_CTX_free(u->ctx);
    for (size_t i = 0; i < u->nservers; i++) {
        SSL_SESSION_free(u->sessions[i]);
        free(u->urls[i]);
    }
    free(u->sessions);
    free(u->urls);
    pthread_mutex_destroy(&u->mu);
    free(u);
}

static struct uctx *uctx_build(const struct ap_config *cfg, const struct ap_config_upstream *up,
                               struct errs *e)
{
    const struct ap_config_upstream_tls *ut = &up->tls;
    char where[320];
    const struct ap_config_pos *pos = ut->set ? &ut->pos : &up->pos;
    snprintf(where, sizeof(where), "%s:%u:%u: upstreams.%s%s", cfg->path ? cfg->path : "config",
             pos->line, pos->col, up->name, ut->set ? ".tls" : "");
    struct uctx *u = calloc(1, sizeof(*u));
    if (u == NULL) {
        e->oom = 1;
        return NULL;
    }
    u->refs = 1;
    pthread_mutex_init(&u->mu, NULL);
    u->verify = ut->verify;
    u->nservers = up->nservers;
    u->urls = calloc(up->nservers ? up->nservers : 1, sizeof(*u->urls));
    u->sessions = calloc(up->nservers ? up->nservers : 1, sizeof(*u->sessions));
    u->ctx = SSL_CTX_new(TLS_client_method());
    if (u->urls == NULL || u->sessions == NULL || u->ctx == NULL) {
        if (u->urls == NULL || u->sessions == NULL)
            u->nservers = 0;
        uctx_unref(u);
        e->oom = 1;
        return NULL;
    }
    for (size_t i = 0; i < up->nservers; i++) {
        u->urls[i] = strdup(up->servers[i].url);
        if (u->urls[i] == NULL) {
            uctx_unref(u);
            e->oom = 1;
            return NULL;
        }
    }
    SSL_CTX *ctx = u->ctx;
    int bad = 0;
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, on_client_session);
    SSL_CTX_set_alpn_protos(ctx, alpn_http11, sizeof(alpn_http11) - 1);
    if (ut->verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        if (ut->ca_file != NULL) {
            /* Loaded by hand first, for an error that names the file. */
            STACK_OF(X509) *cas = NULL;
            if (load_certs(e, where, ut->ca_file, NULL, &cas) < 0) {
                bad = 1;
            } else {
                X509_STORE *st = SSL_CTX_get_cert_store(ctx);
                for (int i = 0; i < sk_X509_num(cas); i++)
                    if (X509_STORE_add_cert(st, sk_X509_value(cas, i)) != 1)
                        ERR_clear_error(); /* a duplicate CA is harmless */
            }
            sk_X509_pop_free(cas, X509_free);
        } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
            errs_add(e, where, "cannot load the system CA certificates: %s", ssl_reason());
            bad = 1;
        }
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        ap_log(AP_LOG_WARN, "%s: verify is off: the servers' certificates are not checked",
               where);
    }
    if (ut->client_cert != NULL) {
        X509 *leaf = NULL;
        STACK_OF(X509) *chain = NULL;
        EVP_PKEY *key = NULL;
        if (load_certs(e, where, ut->client_cert, &leaf, &chain) < 0)
            bad = 1;
        if (ut->client_key != NULL && (key = load_key(e, where, ut->client_key)) == NULL)
            bad = 1;
        if (leaf != NULL && key != NULL) {
            if (X509_check_private_key(leaf, key) != 1) {
                ERR_clear_error();
                errs_add(e, where, "%s: key does not match certificate %s", ut->client_key,
                         ut->client_cert);
                bad = 1;
            } else if (SSL_CTX_use_certificate(ctx, leaf) != 1 ||
                       SSL_CTX_use_PrivateKey(ctx, key) != 1 ||
                       SSL_CTX_set1_chain(ctx, chain) != 1) {
                errs_add(e, where, "%s: cannot use this certificate: %s", ut->client_cert,
                         ssl_reason());
                bad = 1;
            } else {
                warn_expiry(where, ut->client_cert, leaf);
            }
        }
        X509_free(leaf);
        sk_X509_pop_free(chain, X509_free);
        EVP_PKEY_free(key);
    }
    if (bad) {
        uctx_unref(u);
        return NULL;
    }
    return u;
}

/* ---- the process-wide state ---- */

static int upstream_has_tls(const struct ap_config_upstream *up)
{
    if (up->kind != AP_UPSTREAM_HTTP)
        return 0;
    for (size_t i = 0; i < up->nservers; i++)
        if (up->servers[i].tls)
            return 1;
    return 0;
}

/* Contexts built from one config, before they are swapped in. */
struct built {
    struct lctx **l; /* per cfg listener, NULL for plain ones */
    struct uctx **u; /* per cfg upstream, NULL without https servers */
    size_t nl, nu;
};

static void built_free(struct built *b)
{
    for (size_t i = 0; i < b->nl; i++)
        lctx_unref(b->l[i]);
    for (size_t i = 0; i < b->nu; i++)
        uctx_unref(b->u[i]);
    free(b->l);
    free(b->u);
}

static int build_all(const struct ap_config *cfg, struct built *b, char **errors)
{
    struct errs e = {0};
    memset(b, 0, sizeof(*b));
    *errors = NULL;
    pthread_once(&bio_once, bio_meth_init);
    if (bio_meth == NULL)
        e.oom = 1;
    b->l = calloc(cfg->nlisteners ? cfg->nlisteners : 1, sizeof(*b->l));
    b->u = calloc(cfg->nupstreams ? cfg->nupstreams : 1, sizeof(*b->u));
    if (b->l == NULL || b->u == NULL)
        e.oom = 1;
    int bad = 0;
    for (size_t i = 0; i < cfg->nlisteners && !e.oom; i++) {
        b->nl = i + 1;
        if (cfg->listeners[i].tls != NULL && (b->l[i] = lctx_build(cfg, i, &e)) == NULL)
            bad = 1;
    }
    for (size_t i = 0; i < cfg->nupstreams && !e.oom; i++) {
        b->nu = i + 1;
        if (upstream_has_tls(&cfg->upstreams[i]) &&
            (b->u[i] = uctx_build(cfg, &cfg->upstreams[i], &e)) == NULL)
            bad = 1;
    }
    if (e.oom) {
        free(e.buf);
        built_free(b);
        *errors = strdup("TLS: out of memory\n");
        return -ENOMEM;
    }
    if (bad) {
        built_free(b);
        *errors = e.buf != NULL ? e.buf : strdup("TLS: configuration failed\n");
        return -EINVAL;
    }
    free(e.buf);
    return 0;
}

static struct lslot *find_lslot(struct ap_tls *t, const char *address)
{
    for (size_t i = 0; i < t->nlslots; i++)
        if (strcmp(t->lslots[i]->address, address) == 0)
            return t->lslots[i];
    return NULL;
}

static struct uslot *find_uslot(struct ap_tls *t, const char *name)
{
    for (size_t i = 0; i < t->nuslots; i++)
        if (strcmp(t->uslots[i]->name, name) == 0)
            return t->uslots[i];
    return NULL;
}

/* Makes sure every TLS listener and upstream of cfg has a slot; called
 * with the write lock held (or before the state is shared). */
static int ensure_slots(struct ap_tls *t, const struct ap_config *cfg)
{
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        const struct ap_config_listener *l = &cfg->listeners[i];
        if (l->tls == NULL || find_lslot(t, l->address) != NULL)
            continue;
        struct lslot **nv = realloc(t->lslots, (t->nlslots + 1) * sizeof(*nv));
        if (nv == NULL)
            return -ENOMEM;
        t->lslots = nv;
        struct lslot *s = calloc(1, sizeof(*s));
        if (s == NULL || (s->address = strdup(l->address)) == NULL) {
            free(s);
            return -ENOMEM;
        }
        pthread_rwlock_init(&s->keys.lock, NULL);
        t->lslots[t->nlslots++] = s;
    }
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        const struct ap_config_upstream *up = &cfg->upstreams[i];
        if (!upstream_has_tls(up) || find_uslot(t, up->name) != NULL)
            continue;
        struct uslot **nv = realloc(t->uslots, (t->nuslots + 1) * sizeof(*nv));
        if (nv == NULL)
            return -ENOMEM;
        t->uslots = nv;
        struct uslot *s = calloc(1, sizeof(*s));
        if (s == NULL || (s->name = strdup(up->name)) == NULL) {
            free(s);
            return -ENOMEM;
        }
        t->uslots[t->nuslots++] = s;
    }
    return 0;
}

/* Installs built contexts; the replaced ones are unreferenced (open
 * connections keep them alive). Write lock held. */
static void install(struct ap_tls *t, const struct ap_config *cfg, struct built *b)
{
    for (size_t i = 0; i < t->nlslots; i++) {
        struct lslot *s = t->lslots[i];
        struct lctx *nl = NULL;
        for (size_t j = 0; j < cfg->nlisteners; j++) {
            if (cfg->listeners[j].tls != NULL && strcmp(cfg->listeners[j].address, s->address) == 0) {
                nl = b->l[j];
                b->l[j] = NULL;
                pthread_rwlock_wrlock(&s->keys.lock);
                s->keys.rotation_ms = cfg->listeners[j].tls->ticket_key_rotation_ms;
                pthread_rwlock_unlock(&s->keys.lock);
                break;
            }
        }
        lctx_unref(s->cur);
        s->cur = nl;
    }
    for (size_t i = 0; i < t->nuslots; i++) {
        struct uslot *s = t->uslots[i];
        struct uctx *nu = NULL;
        for (size_t j = 0; j < cfg->nupstreams; j++) {
            if (b->u[j] != NULL && strcmp(cfg->upstreams[j].name, s->name) == 0) {
                nu = b->u[j];
                b->u[j] = NULL;
                break;
            }
        }
        uctx_unref(s->cur);
        s->cur = nu;
    }
}

int ap_tls_new(const struct ap_config *cfg, struct ap_tls **out, char **errors)
{
    *out = NULL;
    struct built b;
    int rc = build_all(cfg, &b, errors);
    if (rc != 0)
        return rc;
    struct ap_tls *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        built_free(&b);
        *errors = strdup("TLS: out of memory\n");
        return -ENOMEM;
    }
    t->magic = TLS_MAGIC;
    pthread_rwlock_init(&t->lock, NULL);
    if (ensure_slots(t, cfg) != 0) {
        built_free(&b);
        ap_tls_free(t);
        *errors = strdup("TLS: out of memory\n");
        return -ENOMEM;
    }
    install(t, cfg, &b);
    built_free(&b);
    *out = t;
    return 0;
}

int ap_tls_reload(struct ap_tls *t, const struct ap_config *cfg, char **errors)
{
    AP_CHECK_OBJ(t, TLS_MAGIC);
    struct built b;
    int rc = build_all(cfg, &b, errors);
    if (rc != 0)
        return rc;
    pthread_rwlock_wrlock(&t->lock);
    rc = ensure_slots(t, cfg);
    if (rc == 0)
        install(t, cfg, &b);
    pthread_rwlock_unlock(&t->lock);
    built_free(&b);
    if (rc != 0)
        *errors = strdup("TLS: out of memory\n");
    return rc;
}

void ap_tls_free(struct ap_tls *t)
{
    if (t == NULL)
        return;
    AP_CHECK_OBJ(t, TLS_MAGIC);
    for (size_t i = 0; i < t->nlslots; i++) {
        struct lslot *s = t->lslots[i];
        lctx_unref(s->cur);
        OPENSSL_cleanse(s->keys.keys, sizeof(s->keys.keys));
        pthread_rwlock_destroy(&s->keys.lock);
        free(s->address);
        free(s);
    }
    for (size_t i = 0; i < t->nuslots; i++) {
        uctx_unref(t->uslots[i]->cur);
        free(t->uslots[i]->name);
        free(t->uslots[i]);
    }
    free(t->lslots);
    free(t->uslots);
    pthread_rwlock_destroy(&t->lock);
    t->magic = 0;
    free(t);
}

static const char *const fail_names[AP_TLS_FAIL_NREASONS] = {
    "protocol", "cipher", "not_tls", "alpn", "alert", "verify", "timeout", "eof", "other",
};

static void stats_copy(const struct ap_tls_stats *src, struct ap_tls_stats *dst)
{
    dst->handshakes = __atomic_load_n(&src->handshakes, __ATOMIC_RELAXED);
    dst->resumed = __atomic_load_n(&src->resumed, __ATOMIC_RELAXED);
    for (int i = 0; i < AP_TLS_FAIL_NREASONS; i++)
        dst->failures[i] = __atomic_load_n(&src->failures[i], __ATOMIC_RELAXED);
}

static void log_stats(const char *what, const char *name, const struct ap_tls_stats *st)
{
    struct ap_tls_stats s;
    stats_copy(st, &s);
    char fails[512];
    size_t off = 0;
    uint64_t nfail = 0;
    for (int i = 0; i < AP_TLS_FAIL_NREASONS; i++) {
        nfail += s.failures[i];
        if (s.failures[i] == 0)
            continue;
        int n = snprintf(fails + off, sizeof(fails) - off, " %s=%llu", fail_names[i],
                         (unsigned long long)s.failures[i]);
        if (n > 0 && (size_t)n < sizeof(fails) - off)
            off += (size_t)n;
    }
    fails[off] = '\0';
    if (s.handshakes == 0 && nfail == 0)
        return;
    ap_log(AP_LOG_INFO, "tls %s %s: %llu handshakes (%llu resumed), %llu failed%s%s", what, name,
           (unsigned long long)s.handshakes, (unsigned long long)s.resumed,
           (unsigned long long)nfail, off ? ":" : "", fails);
}

void ap_tls_log_stats(struct ap_tls *t)
{
    AP_CHECK_OBJ(t, TLS_MAGIC);
    pthread_rwlock_rdlock(&t->lock);
    for (size_t i = 0; i < t->nlslots; i++)
        log_stats("listener", t->lslots[i]->address, &t->lslots[i]->stats);
    for (size_t i = 0; i < t->nuslots; i++)
        log_stats("upstream", t->uslots[i]->name, &t->uslots[i]->stats);
    pthread_rwlock_unlock(&t->lock);
}

int ap_tls_listener_stats(struct ap_tls *t, const char *address, struct ap_tls_stats *out)
{
    AP_CHECK_OBJ(t, TLS_MAGIC);
    pthread_rwlock_rdlock(&t->lock);
    struct lslot *s = find_lslot(t, address);
    if (s != NULL)
        stats_copy(&s->stats, out);
    pthread_rwlock_unlock(&t->lock);
    return s != NULL ? 0 : -ENOENT;
}

/* ---- connections ---- */

static struct ap_tls_conn *conn_new(SSL_CTX *ctx, struct ap_tls_sender sender)
{
    struct ap_tls_conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->magic = TLSCONN_MAGIC;
    c->sender = sender;
    c->ssl = SSL_new(ctx);
    BIO *bio = c->ssl != NULL ? BIO_new(bio_meth) : NULL;
    if (bio == NULL) {
        SSL_free(c->ssl);
        free(c);
        ERR_clear_error();
        return NULL;
    }
    BIO_set_data(bio, c);
    SSL_set_bio(c->ssl, bio, bio); /* one reference, owned by the SSL */
    SSL_set_app_data(c->ssl, c);
    return c;
}

struct ap_tls_conn *ap_tls_accept(struct ap_tls *t, const struct ap_config_listener *l,
                                  unsigned worker, struct ap_tls_sender sender)
{
    AP_CHECK_OBJ(t, TLS_MAGIC);
    pthread_rwlock_rdlock(&t->lock);
    struct lslot *s = find_lslot(t, l->address);
    struct lctx *lc = s != NULL ? s->cur : NULL;
    if (lc != NULL)
        __atomic_add_fetch(&lc->refs, 1, __ATOMIC_RELAXED);
    pthread_rwlock_unlock(&t->lock);
    if (lc == NULL)
        return NULL;
    struct ap_tls_conn *c = conn_new(lc->ctxs[0], sender);
    if (c == NULL) {
        lctx_unref(lc);
        return NULL;
    }
    c->lslot = s;
    c->lctx = lc;
    c->worker = worker;
    SSL_set_accept_state(c->ssl);
    return c;
}

/* Whether `host` is a numeric IP address (no SNI is sent for those). */
static int is_ip_literal(const char *host)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

struct ap_tls_conn *ap_tls_connect(struct ap_tls *t, const struct ap_config_upstream *up,
                                   size_t server, struct ap_tls_sender sender)
{
    AP_CHECK_OBJ(t, TLS_MAGIC);
    AP_BUG_ON(server >= up->nservers);
    pthread_rwlock_rdlock(&t->lock);
    struct uslot *s = find_uslot(t, up->name);
    struct uctx *u = s != NULL ? s->cur : NULL;
    if (u != NULL)
        __atomic_add_fetch(&u->refs, 1, __ATOMIC_RELAXED);
    pthread_rwlock_unlock(&t->lock);
    if (u == NULL)
        return NULL;
    struct ap_tls_conn *c = conn_new(u->ctx, sender);
    if (c == NULL) {
        uctx_unref(u);
        return NULL;
    }
    c->uslot = s;
    c->uctx = u;
    /* Sessions are kept per server URL: a reload that reorders servers
     * never offers one server's session to another. */
    c->server = SIZE_MAX;
    for (size_t i = 0; i < u->nservers; i++)
        if (strcmp(u->urls[i], up->servers[server].url) == 0)
            c->server = i;
    SSL_set_connect_state(c->ssl);
    const char *host = up->servers[server].host;
    const char *name = up->tls.server_name != NULL ? up->tls.server_name : host;
    int ok = 1;
    if (!is_ip_literal(name))
        ok = SSL_set_tlsext_host_name(c->ssl, name) == 1;
    if (ok && u->verify) {
        if (is_ip_literal(name))
            ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), name) == 1;
        else
            ok = SSL_set1_host(c->ssl, name) == 1;
    }
    if (ok && c->server != SIZE_MAX) {
        pthread_mutex_lock(&u->mu);
        SSL_SESSION *sess = u->sessions[c->server];
        if (sess != NULL)
            SSL_set_session(c->ssl, sess);
        pthread_mutex_unlock(&u->mu);
    }
    if (!ok) {
        ERR_clear_error();
        c->failed = 1; /* not a handshake failure: nothing was sent */
        ap_tls_conn_free(c);
        return NULL;
    }
    return c;
}

void ap_tls_feed(struct ap_tls_conn *c, const char *p, size_t n)
{
    AP_CHECK_OBJ(c, TLSCONN_MAGIC);
    c->rx = p;
    c->rxlen = n;
}

static struct ap_tls_stats *conn_stats(struct ap_tls_conn *c)
{
    return c->lslot != NULL ? &c->lslot->stats : c->uslot != NULL ? &c->uslot->stats : NULL;
}

static void count_failure(struct ap_tls_conn *c, enum ap_tls_failure why, const char *text)
{
    struct ap_tls_stats *st = conn_stats(c);
    if (st != NULL)
        __atomic_add_fetch(&st->failures[why], 1, __ATOMIC_RELAXED);
    /* Never the peer's address: this log is not anonymised. */
    if (ap_log_is_enabled(AP_LOG_DEBUG))
        ap_log(AP_LOG_DEBUG, "tls %s %s: handshake failed (%s): %s",
               c->lslot ? "listener" : "upstream",
               c->lslot ? c->lslot->address : c->uslot ? c->uslot->name : "?", fail_names[why],
               text);
}

static enum ap_tls_failure classify(int sslerr, unsigned long e)
{
    if (sslerr != SSL_ERROR_SSL)
        return AP_TLS_FAIL_OTHER;
    int r = ERR_GET_REASON(e);
    if (ERR_GET_LIB(e) != ERR_LIB_SSL)
        return AP_TLS_FAIL_OTHER;
    switch (r) {
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_VERSION_TOO_LOW:
    case SSL_R_VERSION_TOO_HIGH:
    case SSL_R_UNKNOWN_PROTOCOL:
    case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
        return AP_TLS_FAIL_PROTOCOL;
    case SSL_R_NO_SHARED_CIPHER:
    case SSL_R_NO_SHARED_GROUPS:
    case SSL_R_NO_SUITABLE_KEY_SHARE:
    case SSL_R_NO_SHARED_SIGNATURE_ALGORITHMS:
    case SSL_R_NO_SUITABLE_SIGNATURE_ALGORITHM:
    case SSL_R_NO_CIPHERS_AVAILABLE:
    case SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE:
        return AP_TLS_FAIL_CIPHER;
    case SSL_R_HTTP_REQUEST:
    case SSL_R_HTTPS_PROXY_REQUEST:
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_PACKET_LENGTH_TOO_LONG:
    case SSL_R_RECORD_LENGTH_MISMATCH:
    case SSL_R_LENGTH_TOO_SHORT:
        return AP_TLS_FAIL_NOT_TLS;
    case SSL_R_NO_APPLICATION_PROTOCOL:
    case SSL_R_TLSV1_ALERT_NO_APPLICATION_PROTOCOL:
        return AP_TLS_FAIL_ALPN;
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
        return AP_TLS_FAIL_VERIFY;
    default:
        /* Alerts received from the peer are reason codes from 1000 on. */
        if (r >= SSL_AD_REASON_OFFSET && r < SSL_AD_REASON_OFFSET + 256)
            return AP_TLS_FAIL_ALERT;
        return AP_TLS_FAIL_OTHER;
    }
}

static ssize_t conn_fail(struct ap_tls_conn *c, int sslerr)
{
    unsigned long e = ERR_peek_last_error();
    int during_handshake = !c->established;
    c->failed = 1;
    enum ap_tls_failure why = classify(sslerr, e);
    const char *text = e ? ERR_reason_error_string(e) : NULL;
    if (why == AP_TLS_FAIL_VERIFY) {
        long v = SSL_get_verify_result(c->ssl);
        text = X509_verify_cert_error_string(v);
    }
    c->why = text != NULL ? text : sslerr == SSL_ERROR_SYSCALL ? "connection error" : "TLS error";
    ERR_clear_error();
    if (during_handshake)
        count_failure(c, why, c->why);
    else if (ap_log_is_enabled(AP_LOG_DEBUG))
        ap_log(AP_LOG_DEBUG, "tls: connection failed: %s", c->why);
    return -EPROTO;
}

static void handshake_done(struct ap_tls_conn *c)
{
    c->established = 1;
    struct ap_tls_stats *st = conn_stats(c);
    int resumed = SSL_session_reused(c->ssl);
    if (st != NULL) {
        __atomic_add_fetch(&st->handshakes, 1, __ATOMIC_RELAXED);
        if (resumed)
            __atomic_add_fetch(&st->resumed, 1, __ATOMIC_RELAXED);
    }
    if (ap_log_is_enabled(AP_LOG_DEBUG)) {
        if (c->lslot != NULL)
            ap_log(AP_LOG_DEBUG, "tls listener %s: worker %u: handshake done: %s %s%s",
                   c->lslot->address, c->worker, SSL_get_version(c->ssl),
                   SSL_get_cipher_name(c->ssl), resumed ? " (resumed)" : "");
        else
            ap_log(AP_LOG_DEBUG, "tls upstream %s: handshake done: %s %s%s",
                   c->uslot ? c->uslot->name : "?", SSL_get_version(c->ssl),
                   SSL_get_cipher_name(c->ssl), resumed ? " (resumed)" : "");
    }
}

ssize_t ap_tls_read(struct ap_tls_conn *c, char **out)
{
    AP_CHECK_OBJ(c, TLSCONN_MAGIC);
    AP_BUG_ON(tl_outlen != 0);
    if (c->failed)
        return -EPROTO;
    if (c->werr != 0)
        return c->werr;
    ERR_clear_error();
    if (!c->established) {
        int r = SSL_do_handshake(c->ssl);
        int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, r);
        out_flush();
        if (c->werr != 0)
            return c->werr;
        if (r != 1) {
            if (e == SSL_ERROR_WANT_READ && c->rxlen == 0)
                return 0;
            return conn_fail(c, e);
        }
        handshake_done(c);
    }
    /* SSL_read consumes records until it has application data or needs
     * bytes the BIO does not have. */
    for (int tries = 0; tries < 64; tries++) {
        int n = SSL_read(c->ssl, tl_plain, (int)sizeof(tl_plain));
        int e = n > 0 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, n);
        out_flush();
        if (c->werr != 0)
            return c->werr;
        if (n > 0) {
            *out = tl_plain;
            return n;
        }
        if (e == SSL_ERROR_ZERO_RETURN)
            return AP_TLS_EOF;
        if (e != SSL_ERROR_WANT_READ)
            return conn_fail(c, e);
        if (c->rxlen == 0)
            return 0;
    }
    return conn_fail(c, SSL_ERROR_SSL);
}

/* Encrypts one record's worth of plaintext. */
static int write_record(struct ap_tls_conn *c, const char *p, size_t n)
{
    int r = SSL_write(c->ssl, p, (int)n);
    if (r <= 0 || (size_t)r != n) {
        int e = SSL_get_error(c->ssl, r);
        conn_fail(c, e);
        return -EPROTO;
    }
    return c->werr;
}

int ap_tls_writev(struct ap_tls_conn *c, const uv_buf_t *bufs, unsigned nbufs)
{
    AP_CHECK_OBJ(c, TLSCONN_MAGIC);
    AP_BUG_ON(tl_outlen != 0);
    if (!c->established || c->shut)
        return -ENOTCONN;
    if (c->failed)
        return -EPROTO;
    if (c->werr != 0)
        return c->werr;
    ERR_clear_error();
    size_t staged = 0;
    int rc = 0;
    for (unsigned i = 0; i < nbufs && rc == 0; i++) {
        const char *p = bufs[i].base;
        size_t len = bufs[i].len;
        while (len > 0 && rc == 0) {
            if (staged == 0 && len >= REC_MAX) {
                rc = write_record(c, p, REC_MAX);
                p += REC_MAX;
                len -= REC_MAX;
                continue;
            }
            size_t k = REC_MAX - staged < len ? REC_MAX - staged : len;
            memcpy(tl_stage + staged, p, k);
            staged += k;
            p += k;
            len -= k;
            if (staged == REC_MAX) {
                rc = write_record(c, tl_stage, staged);
                staged = 0;
            }
        }
    }
    if (rc == 0 && staged > 0)
        rc = write_record(c, tl_stage, staged);
    out_flush();
    if (rc == 0)
        rc = c->werr;
    return rc;
}

void ap_tls_shutdown(struct ap_tls_conn *c)
{
    AP_CHECK_OBJ(c, TLSCONN_MAGIC);
    if (!c->established || c->shut || c->failed || c->werr != 0)
        return;
    c->shut = 1;
    ERR_clear_error();
    SSL_shutdown(c->ssl);
    out_flush();
    ERR_clear_error();
}

void ap_tls_idle(struct ap_tls_conn *c)
{
    AP_CHECK_OBJ(c, TLSCONN_MAGIC);
    SSL_free_buffers(c->ssl);
}

void ap_tls_note_timeout(struct ap_tls_conn *c)
{
    AP_CHECK_OBJ(c, TLSCONN_MAGIC);
    c->timed_out = 1;
}

int ap_tls_is_established(const struct ap_tls_conn *c)
{
    AP_CHECK_OBJ(c, TLSCONN_MAGIC);
    return c->established;
}

int ap_tls_is_resumed(const struct ap_tls_conn *c)
{
    AP_CHECK_OBJ(c, TLSCONN_MAGIC);
    return c->established && SSL_session_reused(c->ssl);
}

const char *ap_tls_version(const struct ap_tls_conn *c)
{
    AP_CHECK_OBJ(c, TLSCONN_MAGIC);
    /* SSL_get_version returns a static string: "TLSv1.3", "TLSv1.2". */
    return c->established ? SSL_get_version(c->ssl) : "TLS";
}

const char *ap_tls_strerror(const struct ap_tls_conn *c)
{
    AP_CHECK_OBJ(c, TLSCONN_MAGIC);
    if (c->why != NULL)
        return c->why;
    if (c->timed_out)
        return "handshake timed out";
    return "";
}

void ap_tls_conn_free(struct ap_tls_conn *c)
{
    if (c == NULL)
        return;
    AP_CHECK_OBJ(c, TLSCONN_MAGIC);
    if (!c->established && !c->failed)
        count_failure(c, c->timed_out ? AP_TLS_FAIL_TIMEOUT : AP_TLS_FAIL_EOF,
                      c->timed_out ? "handshake timed out" : "closed during the handshake");
    if (tl_owner == c) {
        tl_owner = NULL;
        tl_outlen = 0;
    }
    /* Closing without close_notify is how HTTP connections end (idle
     * timeouts, the peer leaving); OpenSSL would take it for a truncation
     * attack and make the session unusable for resumption. */
    if (c->established && !c->failed)
        SSL_set_shutdown(c->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    SSL_free(c->ssl);
    lctx_unref(c->lctx);
    uctx_unref(c->uctx);
    c->magic = 0;
    free(c);
}
