/* Keyed pseudonyms with a key per UTC day. The design (per-worker keyrings,
 * a shared source, no lock on the hot path) is explained in
 * include/anonproxy/pseudo.h. */
#include "anonproxy/common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdalign.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "anonproxy/pseudo.h"

#ifdef OPENSSL_NO_DEPRECATED_3_0
#error "pseudo.c needs OpenSSL's low-level SHA256_* functions (see the comment below)"
#endif

/* OpenSSL 3 deprecates SHA256_Init/Update/Final in favour of EVP_Digest*,
 * but every EVP path allocates: EVP_MAC/HMAC() create a context per call,
 * and EVP_MD_CTX_copy_ex duplicates provider state on the heap. The
 * low-level functions work on a caller-owned SHA256_CTX, which is what lets
 * the request path precompute the HMAC pads once per day and never
 * allocate. They remain in OpenSSL 3.x; the warning is silenced here only. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

_Static_assert(sizeof(SHA256_CTX) <= sizeof(((struct ap_pseudo_hmac_key *)0)->inner),
               "SHA256_CTX does not fit struct ap_pseudo_hmac_key");
_Static_assert(alignof(SHA256_CTX) <= alignof(uint64_t), "SHA256_CTX alignment");
_Static_assert(offsetof(SHA256_CTX, h) == 0, "SHA256_CTX does not start with its chaining value");

#define SHA256_BLOCK 64
#define SECONDS_PER_DAY 86400
/* 9999-12-31 is the last day a "YYYY-MM-DD" info string can name. */
#define MAX_DAY 2932896

static const char info_prefix[] = "anonproxy pseudonym ";

int ap_pseudo_hmac_key_init(struct ap_pseudo_hmac_key *k, const uint8_t *key, size_t len)
{
    uint8_t block[SHA256_BLOCK] = {0};
    uint8_t pad[SHA256_BLOCK];
    SHA256_CTX c;

    if (len > SHA256_BLOCK) {
        SHA256_Init(&c);
        SHA256_Update(&c, key, len);
        SHA256_Final(block, &c);
    } else if (len > 0) {
        memcpy(block, key, len);
    }

    /* memcpy in and out of the opaque storage keeps the accesses well
     * typed: the struct holds uint64_t, never a SHA256_CTX object. */
    for (size_t i = 0; i < SHA256_BLOCK; i++)
        pad[i] = block[i] ^ 0x36;
    SHA256_Init(&c);
    SHA256_Update(&c, pad, sizeof(pad));
    memset(k->inner, 0, sizeof(k->inner));
    memcpy(k->inner, &c, sizeof(c));

    for (size_t i = 0; i < SHA256_BLOCK; i++)
        pad[i] = block[i] ^ 0x5c;
    SHA256_Init(&c);
    SHA256_Update(&c, pad, sizeof(pad));
    memset(k->outer, 0, sizeof(k->outer));
    memcpy(k->outer, &c, sizeof(c));

    OPENSSL_cleanse(block, sizeof(block));
    OPENSSL_cleanse(pad, sizeof(pad));
    OPENSSL_cleanse(&c, sizeof(c));
    return 0;
}

/* HMAC over the concatenation of `n` byte ranges, without copying them. */
static void hmac_parts(const struct ap_pseudo_hmac_key *k, const struct ap_slice *parts, size_t n,
                       uint8_t mac[32])
{
    SHA256_CTX c;
    uint8_t ih[32];

    memcpy(&c, k->inner, sizeof(c));
    for (size_t i = 0; i < n; i++)
        if (parts[i].len > 0)
            SHA256_Update(&c, parts[i].p, parts[i].len);
    SHA256_Final(ih, &c);
    memcpy(&c, k->outer, sizeof(c));
    SHA256_Update(&c, ih, sizeof(ih));
    SHA256_Final(mac, &c);
}

/* Whole-word stores: the compression function reads the block 16 bytes at
 * a time, and byte stores would make those loads wait for each byte. */
static void store_be32(uint8_t *o, uint32_t v)
{
    v = __builtin_bswap32(v);
    memcpy(o, &v, sizeof(v));
}

static void store_be64(uint8_t *o, uint64_t v)
{
    v = __builtin_bswap64(v);
    memcpy(o, &v, sizeof(v));
}

/* The largest message whose padding (0x80 and the 8-byte length) still
 * fits in one block. */
#define ONE_BLOCK_MAX (SHA256_BLOCK - 9)

/* Build the padded inner block of a message of `total` <= ONE_BLOCK_MAX
 * bytes made of `n` parts: FIPS 180-4 5.1.1 padding, with the pad's block
 * (the key XOR ipad, already absorbed) counted in the length. */
static void inner_block(uint8_t blk[SHA256_BLOCK], const struct ap_slice *parts, size_t n, size_t total)
{
    size_t o = 0;
    AP_BUG_ON(total > ONE_BLOCK_MAX);
    for (size_t i = 0; i < n; i++) {
        if (parts[i].len > 0)
            memcpy(blk + o, parts[i].p, parts[i].len);
        o += parts[i].len;
    }
    blk[o++] = 0x80;
    memset(blk + o, 0, SHA256_BLOCK - 8 - o);
    store_be64(blk + SHA256_BLOCK - 8, (uint64_t)(SHA256_BLOCK + total) * 8);
}

/* The outer block from the inner hash in c->h: 32 bytes, padded. */
static void outer_block(uint8_t blk[SHA256_BLOCK], const SHA256_CTX *c)
{
    for (size_t i = 0; i < 8; i++)
        store_be32(blk + 4 * i, c->h[i]);
    blk[32] = 0x80;
    memset(blk + 33, 0, SHA256_BLOCK - 8 - 33);
    store_be64(blk + SHA256_BLOCK - 8, (uint64_t)(SHA256_BLOCK + 32) * 8);
}

/* The HMAC of a job's message, whose inner block is built: one compression
 * for each hash. SHA256_Update/Final would buffer, pad and wipe the same
 * bytes with more copying. test_pseudo checks the result against OpenSSL's
 * HMAC() at every length around the one-block boundary. The block holds
 * the identifier and then H(K^ipad || m), from which no key can be learnt;
 * the identifier is in the request buffer anyway, so it is not wiped.
 * SHA256_Transform reads and writes the chaining value c.h alone, which is
 * the first member of the stored context. Writes only the words of the MAC
 * that nhex digits read. */
static void hmac_job(struct ap_pseudo_batch_job *j, uint8_t mac[32])
{
    SHA256_CTX c;
    memcpy(c.h, j->key->inner, sizeof(c.h));
    SHA256_Transform(&c, j->block);
    outer_block(j->block, &c);
    memcpy(c.h, j->key->outer, sizeof(c.h));
    SHA256_Transform(&c, j->block);
    for (size_t i = 0; i < (j->nhex + 7) / 8; i++)
        store_be32(mac + 4 * i, c.h[i]);
}

/* hmac_parts for a message of `total` <= ONE_BLOCK_MAX bytes, which is
 * most pseudonyms (scope, NUL, an id of up to ~40 bytes), at once. */
static void hmac_one_block(const struct ap_pseudo_hmac_key *k, const struct ap_slice *parts, size_t n,
                           size_t total, unsigned nhex, uint8_t mac[32])
{
    struct ap_pseudo_batch_job j = {.key = k, .nhex = nhex};
    inner_block(j.block, parts, n, total);
    hmac_job(&j, mac);
}

/* Two jobs side by side: each compression is issued right after the
 * other's, so the processor overlaps their rounds. */
static void hmac_pair(struct ap_pseudo_batch_job *a, struct ap_pseudo_batch_job *b, uint8_t mac_a[32],
                      uint8_t mac_b[32])
{
    SHA256_CTX ca, cb;
    memcpy(ca.h, a->key->inner, sizeof(ca.h));
    memcpy(cb.h, b->key->inner, sizeof(cb.h));
    SHA256_Transform(&ca, a->block);
    SHA256_Transform(&cb, b->block);
    outer_block(a->block, &ca);
    outer_block(b->block, &cb);
    memcpy(ca.h, a->key->outer, sizeof(ca.h));
    memcpy(cb.h, b->key->outer, sizeof(cb.h));
    SHA256_Transform(&ca, a->block);
    SHA256_Transform(&cb, b->block);
    for (size_t i = 0; i < (a->nhex + 7) / 8; i++)
        store_be32(mac_a + 4 * i, ca.h[i]);
    for (size_t i = 0; i < (b->nhex + 7) / 8; i++)
        store_be32(mac_b + 4 * i, cb.h[i]);
}

#pragma GCC diagnostic pop

void ap_pseudo_hmac_sha256(const struct ap_pseudo_hmac_key *k, const uint8_t *msg, size_t len,
                           uint8_t mac[32])
{
    struct ap_slice part = {(const char *)msg, len};
    if (len <= ONE_BLOCK_MAX)
        hmac_one_block(k, &part, 1, len, 64, mac);
    else
        hmac_parts(k, &part, 1, mac);
}

void ap_pseudo_hmac_key_wipe(struct ap_pseudo_hmac_key *k)
{
    OPENSSL_cleanse(k, sizeof(*k));
}

static int hkdf(int mode, const uint8_t *salt, size_t salt_len, const uint8_t *key, size_t key_len,
                const uint8_t *info, size_t info_len, uint8_t *out, size_t out_len)
{
    OSSL_PARAM params[6], *p = params;
    int rc = -EIO;

    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    if (kdf == NULL)
        return -EIO;
    EVP_KDF_CTX *ctx = EVP_KDF_CTX_new(kdf);
    EVP_KDF_free(kdf);
    if (ctx == NULL)
        return -EIO;

    *p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
    *p++ = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode);
    *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)key, key_len);
    /* An absent salt is HashLen zero bytes (RFC 5869 2.2); an absent info
     * is the empty string. */
    if (salt_len > 0)
        *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, salt_len);
    if (info_len > 0)
        *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, info_len);
    *p = OSSL_PARAM_construct_end();

    if (EVP_KDF_derive(ctx, out, out_len, params) == 1)
        rc = 0;
    EVP_KDF_CTX_free(ctx); /* the provider clears its copy of the key */
    return rc;
}

int ap_pseudo_hkdf_extract(const uint8_t *salt, size_t salt_len, const uint8_t *ikm, size_t ikm_len,
                           uint8_t prk[32])
{
    if (ikm == NULL || ikm_len == 0 || (salt == NULL && salt_len > 0))
        return -EINVAL;
    return hkdf(EVP_KDF_HKDF_MODE_EXTRACT_ONLY, salt, salt_len, ikm, ikm_len, NULL, 0, prk, 32);
}

int ap_pseudo_hkdf_expand(const uint8_t *prk, size_t prk_len, const uint8_t *info, size_t info_len,
                          uint8_t *okm, size_t okm_len)
{
    if (prk == NULL || prk_len < 32 || (info == NULL && info_len > 0) || okm_len == 0 ||
        okm_len > 255 * 32)
        return -EINVAL;
    return hkdf(EVP_KDF_HKDF_MODE_EXPAND_ONLY, NULL, 0, prk, prk_len, info, info_len, okm, okm_len);
}

int64_t ap_pseudo_day(int64_t now)
{
    int64_t d = now / SECONDS_PER_DAY;
    if (now % SECONDS_PER_DAY < 0)
        d--;
    return d;
}

/* Proleptic Gregorian date of a day number (0 = 1970-01-01), counted in
 * 400-year eras that start on March 1st so the leap day ends each year. */
static void civil_date(int64_t day, int *year, unsigned *month, unsigned *mday)
{
    int64_t z = day + 719468; /* days from 0000-03-01 to 1970-01-01 */
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);                     /* 0..146096 */
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* 0..399 */
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);        /* from March 1st */
    unsigned mp = (5 * doy + 2) / 153;                              /* March = 0 */

    *mday = doy - (153 * mp + 2) / 5 + 1;
    *month = mp < 10 ? mp + 3 : mp - 9;
    *year = (int)(yoe + era * 400 + (*month <= 2));
}

int ap_pseudo_day_info(int64_t day, char *buf, size_t size)
{
    int y;
    unsigned m, d;

    if (day < 0 || day > MAX_DAY)
        return -ERANGE;
    civil_date(day, &y, &m, &d);
    int n = snprintf(buf, size, "%s%04d-%02u-%02u", info_prefix, y, m, d);
    if (n < 0 || (size_t)n >= size)
        return -ENOSPC;
    return n;
}

static int derive_day(const uint8_t prk[AP_PSEUDO_KEY_LEN], int64_t day, uint8_t key[AP_PSEUDO_KEY_LEN])
{
    char info[48];
    int n = ap_pseudo_day_info(day, info, sizeof(info));
    if (n < 0)
        return n;
    return ap_pseudo_hkdf_expand(prk, AP_PSEUDO_KEY_LEN, (const uint8_t *)info, (size_t)n, key,
                                 AP_PSEUDO_KEY_LEN);
}

static int source_init(struct ap_pseudo_source *src, int random)
{
    memset(src, 0, sizeof(*src));
    if (pthread_mutex_init(&src->lock, NULL) != 0)
        return -EIO;
    src->random = random;
    for (size_t i = 0; i < AP_PSEUDO_SOURCE_DAYS; i++)
        src->days[i].day = -1;
    src->magic = AP_PSEUDO_SOURCE_MAGIC;
    return 0;
}

int ap_pseudo_source_init_secret(struct ap_pseudo_source *src, const uint8_t *secret, size_t len)
{
    if (secret == NULL || len < AP_PSEUDO_SECRET_MIN || len > AP_PSEUDO_SECRET_MAX)
        return -EINVAL;
    int rc = source_init(src, 0);
    if (rc != 0)
        return rc;
    rc = ap_pseudo_hkdf_extract(NULL, 0, secret, len, src->prk);
    if (rc != 0)
        ap_pseudo_source_free(src);
    return rc;
}

int ap_pseudo_source_init_random(struct ap_pseudo_source *src)
{
    uint8_t probe[AP_PSEUDO_KEY_LEN];

    /* Fail at start-up, not on the first request, if the DRBG is broken. */
    if (RAND_bytes(probe, sizeof(probe)) != 1)
        return -EIO;
    OPENSSL_cleanse(probe, sizeof(probe));
    return source_init(src, 1);
}

static int random_day_key(struct ap_pseudo_source *src, int64_t day, uint8_t key[AP_PSEUDO_KEY_LEN])
{
    int rc = 0;

    pthread_mutex_lock(&src->lock);
    if (day < src->floor) {
        rc = -ESTALE;
        goto out;
    }
    if (day > src->floor + 1) {
        /* A new newest day: everything before the day preceding it is
         * wiped now and can never be issued again. */
        src->floor = day - 1;
        for (size_t i = 0; i < AP_PSEUDO_SOURCE_DAYS; i++) {
            if (src->days[i].day >= 0 && src->days[i].day < src->floor) {
                OPENSSL_cleanse(src->days[i].key, AP_PSEUDO_KEY_LEN);
                src->days[i].day = -1;
            }
        }
    }
    size_t free_slot = AP_PSEUDO_SOURCE_DAYS;
    for (size_t i = 0; i < AP_PSEUDO_SOURCE_DAYS; i++) {
        if (src->days[i].day == day) {
            memcpy(key, src->days[i].key, AP_PSEUDO_KEY_LEN);
            goto out;
        }
        if (src->days[i].day < 0 && free_slot == AP_PSEUDO_SOURCE_DAYS)
            free_slot = i;
    }
    /* Live days lie in [floor, floor + 1], so one of the two slots is free. */
    AP_BUG_ON(free_slot == AP_PSEUDO_SOURCE_DAYS);
    if (RAND_bytes(src->days[free_slot].key, AP_PSEUDO_KEY_LEN) != 1) {
        rc = -EIO;
        goto out;
    }
    src->days[free_slot].day = day;
    memcpy(key, src->days[free_slot].key, AP_PSEUDO_KEY_LEN);
out:
    pthread_mutex_unlock(&src->lock);
    return rc;
}

int ap_pseudo_source_day_key(struct ap_pseudo_source *src, int64_t day, uint8_t key[AP_PSEUDO_KEY_LEN])
{
    AP_CHECK_OBJ(src, AP_PSEUDO_SOURCE_MAGIC);
    if (day < 0 || day > MAX_DAY)
        return -ERANGE;
    if (src->random)
        return random_day_key(src, day, key);
    return derive_day(src->prk, day, key);
}

void ap_pseudo_source_free(struct ap_pseudo_source *src)
{
    AP_CHECK_OBJ(src, AP_PSEUDO_SOURCE_MAGIC);
    pthread_mutex_destroy(&src->lock);
    OPENSSL_cleanse(src, sizeof(*src));
}

int ap_pseudo_secret_read_file(const char *path, uint8_t *buf, size_t cap, size_t *len)
{
    struct stat st;
    size_t n = 0;
    int rc = 0;

    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) != 0) {
        rc = -errno;
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = -EINVAL;
        goto out;
    }
    for (;;) {
        uint8_t extra;
        /* Read one byte past `cap` to tell "exactly cap" from "too long". */
        ssize_t r = n < cap ? read(fd, buf + n, cap - n) : read(fd, &extra, 1);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            goto out;
        }
        if (r == 0)
            break;
        if (n == cap) {
            rc = -EFBIG;
            goto out;
        }
        n += (size_t)r;
    }
    if (n < AP_PSEUDO_SECRET_MIN)
        rc = -EINVAL;
out:
    close(fd);
    if (rc != 0)
        OPENSSL_cleanse(buf, cap);
    else
        *len = n;
    return rc;
}

void ap_pseudo_keyring_init(struct ap_pseudo_keyring *kr, struct ap_pseudo_source *src)
{
    AP_CHECK_OBJ(src, AP_PSEUDO_SOURCE_MAGIC);
    memset(kr, 0, sizeof(*kr));
    kr->magic = AP_PSEUDO_KEYRING_MAGIC;
    kr->src = src;
    for (size_t i = 0; i < AP_PSEUDO_KEYRING_SLOTS; i++)
        kr->slots[i].day = -1;
}

/* The prepared key of `day`, deriving it into its slot on a miss (the
 * slot's previous day is wiped first). */
static int keyring_get(struct ap_pseudo_keyring *kr, int64_t day, const struct ap_pseudo_hmac_key **k)
{
    struct ap_pseudo_keyring_slot *slot = &kr->slots[day % AP_PSEUDO_KEYRING_SLOTS];
    uint8_t key[AP_PSEUDO_KEY_LEN];

    if (slot->day == day) {
        *k = &slot->hmac;
        return 0;
    }
    int rc = ap_pseudo_source_day_key(kr->src, day, key);
    if (rc != 0)
        return rc;
    ap_pseudo_hmac_key_wipe(&slot->hmac);
    ap_pseudo_hmac_key_init(&slot->hmac, key, sizeof(key));
    OPENSSL_cleanse(key, sizeof(key));
    slot->day = day;
    *k = &slot->hmac;
    return 0;
}

static int now_to_day(int64_t now, int64_t *day)
{
    if (now < 0 || now / SECONDS_PER_DAY > MAX_DAY)
        return -ERANGE;
    *day = now / SECONDS_PER_DAY;
    return 0;
}

int ap_pseudo_keyring_prepare(struct ap_pseudo_keyring *kr, int64_t now)
{
    AP_CHECK_OBJ(kr, AP_PSEUDO_KEYRING_MAGIC);
    const struct ap_pseudo_hmac_key *k;
    int64_t day;
    int rc = now_to_day(now, &day);
    if (rc != 0)
        return rc;

    for (size_t i = 0; i < AP_PSEUDO_KEYRING_SLOTS; i++) {
        if (kr->slots[i].day >= 0 && kr->slots[i].day < day) {
            ap_pseudo_hmac_key_wipe(&kr->slots[i].hmac);
            kr->slots[i].day = -1;
        }
    }
    rc = keyring_get(kr, day, &k);
    if (rc == 0 && day < MAX_DAY)
        rc = keyring_get(kr, day + 1, &k);
    return rc;
}

void ap_pseudo_keyring_free(struct ap_pseudo_keyring *kr)
{
    AP_CHECK_OBJ(kr, AP_PSEUDO_KEYRING_MAGIC);
    for (size_t i = 0; i < AP_PSEUDO_KEYRING_SLOTS; i++) {
        ap_pseudo_hmac_key_wipe(&kr->slots[i].hmac);
        kr->slots[i].day = -1;
    }
}

#define HEX_PAIR(b) {"0123456789abcdef"[(b) >> 4], "0123456789abcdef"[(b) & 15]}
#define HEX_ROW(r)                                                                               \
    HEX_PAIR(r + 0), HEX_PAIR(r + 1), HEX_PAIR(r + 2), HEX_PAIR(r + 3), HEX_PAIR(r + 4),         \
        HEX_PAIR(r + 5), HEX_PAIR(r + 6), HEX_PAIR(r + 7), HEX_PAIR(r + 8), HEX_PAIR(r + 9),    \
        HEX_PAIR(r + 10), HEX_PAIR(r + 11), HEX_PAIR(r + 12), HEX_PAIR(r + 13),                 \
        HEX_PAIR(r + 14), HEX_PAIR(r + 15)
/* The lower-case hex digits of every byte value. */
static const char hex_pairs[256][2] = {
    HEX_ROW(0x00), HEX_ROW(0x10), HEX_ROW(0x20), HEX_ROW(0x30), HEX_ROW(0x40), HEX_ROW(0x50),
    HEX_ROW(0x60), HEX_ROW(0x70), HEX_ROW(0x80), HEX_ROW(0x90), HEX_ROW(0xa0), HEX_ROW(0xb0),
    HEX_ROW(0xc0), HEX_ROW(0xd0), HEX_ROW(0xe0), HEX_ROW(0xf0),
};
#undef HEX_ROW
#undef HEX_PAIR

/* The checks of ap_pseudo_hex, and the day's key: 0, or its error. */
static int check_args(struct ap_pseudo_keyring *kr, int64_t now, struct ap_slice scope, struct ap_slice value,
                      unsigned bits, char *out, size_t out_size, const struct ap_pseudo_hmac_key **k)
{
    int64_t day;
    int rc;

    AP_CHECK_OBJ(kr, AP_PSEUDO_KEYRING_MAGIC);
    if (out == NULL)
        return -EINVAL;
    if (out_size > 0)
        out[0] = '\0';
    if (bits < AP_PSEUDO_BITS_MIN || bits > AP_PSEUDO_BITS_MAX || bits % 4 != 0)
        return -EINVAL;
    if ((scope.p == NULL && scope.len > 0) || (value.p == NULL && value.len > 0))
        return -EINVAL;
    if (scope.len > 0 && memchr(scope.p, '\0', scope.len) != NULL)
        return -EINVAL;
    if (out_size < bits / 4 + 1)
        return -ENOSPC;
    if ((rc = now_to_day(now, &day)) != 0 || (rc = keyring_get(kr, day, k)) != 0)
        return rc;
    return 0;
}

/* Write the first `nhex` digits of `mac`, and no NUL. */
static void write_digits(const uint8_t *mac, size_t nhex, char *out)
{
    /* Two hex digits per byte with one 16-bit store. */
    for (size_t i = 0; i < nhex / 2; i++)
        memcpy(out + 2 * i, hex_pairs[mac[i]], 2);
    if (nhex % 2)
        out[nhex - 1] = "0123456789abcdef"[mac[nhex / 2] >> 4];
}

int ap_pseudo_hex(struct ap_pseudo_keyring *kr, int64_t now, struct ap_slice scope, struct ap_slice value,
                  unsigned bits, char *out, size_t out_size)
{
    static const char zero = '\0';
    const struct ap_pseudo_hmac_key *k;
    uint8_t mac[32];
    int rc = check_args(kr, now, scope, value, bits, out, out_size, &k);
    if (rc != 0)
        return rc;
    size_t nhex = bits / 4;
    const struct ap_slice parts[3] = {scope, {&zero, 1}, value};
    if (scope.len + 1 + value.len <= ONE_BLOCK_MAX)
        hmac_one_block(k, parts, 3, scope.len + 1 + value.len, (unsigned)nhex, mac);
    else
        hmac_parts(k, parts, 3, mac);
    write_digits(mac, nhex, out);
    out[nhex] = '\0';
    return (int)nhex;
}

void ap_pseudo_batch_init(struct ap_pseudo_batch *b)
{
    AP_BUG_ON(b == NULL);
    b->n = 0;
}

int ap_pseudo_hex_deferred(struct ap_pseudo_batch *b, struct ap_pseudo_keyring *kr, int64_t now,
                           struct ap_slice scope, struct ap_slice value, unsigned bits, char *out,
                           size_t out_size)
{
    static const char zero = '\0';
    const struct ap_pseudo_hmac_key *k;
    AP_BUG_ON(b == NULL || b->n >= AP_PSEUDO_BATCH_MAX);
    if (scope.len + 1 + value.len > ONE_BLOCK_MAX)
        return ap_pseudo_hex(kr, now, scope, value, bits, out, out_size);
    int rc = check_args(kr, now, scope, value, bits, out, out_size, &k);
    if (rc != 0)
        return rc;
    struct ap_pseudo_batch_job *j = &b->jobs[b->n++];
    const struct ap_slice parts[3] = {scope, {&zero, 1}, value};
    inner_block(j->block, parts, 3, scope.len + 1 + value.len);
    j->key = k;
    j->out = out;
    j->nhex = bits / 4;
    memset(out, '0', j->nhex);
    out[j->nhex] = '\0';
    if (b->n == 2)
        ap_pseudo_batch_flush(b);
    return (int)j->nhex;
}

void ap_pseudo_batch_flush(struct ap_pseudo_batch *b)
{
    AP_BUG_ON(b == NULL || b->n > AP_PSEUDO_BATCH_MAX);
    uint8_t mac_a[32], mac_b[32];
    size_t i = 0;
    /* No NUL now: the caller has written on after the digits. */
    for (; i + 2 <= b->n; i += 2) {
        hmac_pair(&b->jobs[i], &b->jobs[i + 1], mac_a, mac_b);
        write_digits(mac_a, b->jobs[i].nhex, b->jobs[i].out);
        write_digits(mac_b, b->jobs[i + 1].nhex, b->jobs[i + 1].out);
    }
    if (i < b->n) {
        hmac_job(&b->jobs[i], mac_a);
        write_digits(mac_a, b->jobs[i].nhex, b->jobs[i].out);
    }
    b->n = 0;
}
