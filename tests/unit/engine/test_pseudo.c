/* Unit tests of proxy/engine/pseudo.c: RFC 4231 HMAC-SHA256 and RFC 5869
 * HKDF vectors, the day info string, pseudonym format and truncation,
 * rotation at UTC midnight, agreement between keyrings and threads, and no
 * OpenSSL allocation on a prepared hot path. */
#include "anonproxy/common.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/crypto.h>
#include <openssl/hmac.h>

#include "anonproxy/pseudo.h"

/* Every OpenSSL allocation goes through these, installed before OpenSSL's
 * first allocation, so a test can prove the hot path makes none. */
static volatile long ossl_allocs;

static void *count_malloc(size_t n, const char *file, int line)
{
    (void)file;
    (void)line;
    ossl_allocs++;
    return malloc(n);
}

static void *count_realloc(void *p, size_t n, const char *file, int line)
{
    (void)file;
    (void)line;
    ossl_allocs++;
    return realloc(p, n);
}

static void count_free(void *p, const char *file, int line)
{
    (void)file;
    (void)line;
    free(p);
}

static void unhex(const char *hex, uint8_t *out, size_t *len)
{
    size_t n = strlen(hex) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
    *len = n;
}

static void test_rfc4231(void **state)
{
    (void)state;
    struct {
        const char *key_hex; /* NULL: 131 bytes of 0xaa */
        const char *data;    /* text, or hex when data_is_hex */
        int data_is_hex;
        const char *mac;
        size_t mac_len;
    } tc[] = {
        {"0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "Hi There", 0,
         "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7", 32},
        {"4a656665", "what do ya want for nothing?", 0,
         "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843", 32},
        {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
         "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd", 1,
         "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe", 32},
        {"0102030405060708090a0b0c0d0e0f10111213141516171819",
         "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd", 1,
         "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b", 32},
        {"0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c", "Test With Truncation", 0,
         "a3b6167473100ee06e0c796c2955552b", 16},
        {NULL, "Test Using Larger Than Block-Size Key - Hash Key First", 0,
         "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54", 32},
        {NULL,
         "This is a test using a larger than block-size key and a larger than block-size data. The key "
         "needs to be hashed before being used by the HMAC algorithm.",
         0, "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2", 32},
    };
    for (size_t i = 0; i < AP_ARRAY_SIZE(tc); i++) {
        uint8_t key[200], data[200], want[32], mac[32];
        size_t klen, dlen, wlen;
        if (tc[i].key_hex) {
            unhex(tc[i].key_hex, key, &klen);
        } else {
            klen = 131;
            memset(key, 0xaa, klen);
        }
        if (tc[i].data_is_hex) {
            unhex(tc[i].data, data, &dlen);
        } else {
            dlen = strlen(tc[i].data);
            memcpy(data, tc[i].data, dlen);
        }
        unhex(tc[i].mac, want, &wlen);
        assert_int_equal(wlen, tc[i].mac_len);

        struct ap_pseudo_hmac_key k;
        assert_int_equal(ap_pseudo_hmac_key_init(&k, key, klen), 0);
        ap_pseudo_hmac_sha256(&k, data, dlen, mac);
        assert_memory_equal(mac, want, wlen);
        /* The prepared key is reusable: same input, same MAC. */
        memset(mac, 0, sizeof(mac));
        ap_pseudo_hmac_sha256(&k, data, dlen, mac);
        assert_memory_equal(mac, want, wlen);
        ap_pseudo_hmac_key_wipe(&k);
        const struct ap_pseudo_hmac_key zero = {{0}, {0}};
        assert_memory_equal(&k, &zero, sizeof(k));
    }
}

static void test_rfc5869(void **state)
{
    (void)state;
    struct {
        const char *ikm, *salt, *info, *prk, *okm;
    } tc[] = {
        {"0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "000102030405060708090a0b0c", "f0f1f2f3f4f5f6f7f8f9",
         "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
         "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"},
        {"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
         "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
         "404142434445464748494a4b4c4d4e4f",
         "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
         "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
         "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf",
         "b0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecf"
         "d0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeef"
         "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
         "06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244",
         "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
         "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
         "cc30c58179ec3e87c14c01d5c1f3434f1d87"},
        {"0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "", "",
         "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
         "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"},
    };
    for (size_t i = 0; i < AP_ARRAY_SIZE(tc); i++) {
        uint8_t ikm[100], salt[100], info[100], prk_want[32], okm_want[100], prk[32], okm[100];
        size_t ikm_len, salt_len, info_len, prk_len, okm_len;
        unhex(tc[i].ikm, ikm, &ikm_len);
        unhex(tc[i].salt, salt, &salt_len);
        unhex(tc[i].info, info, &info_len);
        unhex(tc[i].prk, prk_want, &prk_len);
        unhex(tc[i].okm, okm_want, &okm_len);
        assert_int_equal(ap_pseudo_hkdf_extract(salt, salt_len, ikm, ikm_len, prk), 0);
        assert_memory_equal(prk, prk_want, 32);
        assert_int_equal(ap_pseudo_hkdf_expand(prk, 32, info, info_len, okm, okm_len), 0);
        assert_memory_equal(okm, okm_want, okm_len);
    }

    uint8_t prk[32] = {0}, okm[32];
    assert_int_equal(ap_pseudo_hkdf_extract(NULL, 0, NULL, 0, prk), -EINVAL);
    assert_int_equal(ap_pseudo_hkdf_expand(prk, 16, NULL, 0, okm, 32), -EINVAL);
    assert_int_equal(ap_pseudo_hkdf_expand(prk, 32, NULL, 0, okm, 0), -EINVAL);
    assert_int_equal(ap_pseudo_hkdf_expand(prk, 32, NULL, 0, okm, 255 * 32 + 1), -EINVAL);
}

static void test_day_info(void **state)
{
    (void)state;
    char buf[48];
    assert_int_equal(ap_pseudo_day_info(0, buf, sizeof(buf)), 30);
    assert_string_equal(buf, "anonproxy pseudonym 1970-01-01");
    ap_pseudo_day_info(19792, buf, sizeof(buf));
    assert_string_equal(buf, "anonproxy pseudonym 2024-03-10");
    ap_pseudo_day_info(11016, buf, sizeof(buf));
    assert_string_equal(buf, "anonproxy pseudonym 2000-02-29");
    ap_pseudo_day_info(11017, buf, sizeof(buf));
    assert_string_equal(buf, "anonproxy pseudonym 2000-03-01");
    ap_pseudo_day_info(20088, buf, sizeof(buf));
    assert_string_equal(buf, "anonproxy pseudonym 2024-12-31");
    ap_pseudo_day_info(790, buf, sizeof(buf));
    assert_string_equal(buf, "anonproxy pseudonym 1972-03-01");
    ap_pseudo_day_info(47540, buf, sizeof(buf));
    assert_string_equal(buf, "anonproxy pseudonym 2100-02-28"); /* 2100 is not a leap year */
    ap_pseudo_day_info(2932896, buf, sizeof(buf));
    assert_string_equal(buf, "anonproxy pseudonym 9999-12-31");
    assert_int_equal(ap_pseudo_day_info(2932897, buf, sizeof(buf)), -ERANGE);
    assert_int_equal(ap_pseudo_day_info(-1, buf, sizeof(buf)), -ERANGE);
    assert_int_equal(ap_pseudo_day_info(0, buf, 30), -ENOSPC);

    assert_int_equal(ap_pseudo_day(0), 0);
    assert_int_equal(ap_pseudo_day(86399), 0);
    assert_int_equal(ap_pseudo_day(86400), 1);
    assert_int_equal(ap_pseudo_day(-1), -1);
    assert_int_equal(ap_pseudo_day(-86400), -1);
    assert_int_equal(ap_pseudo_day(-86401), -2);
}

static const uint8_t secret[] = "0123456789abcdef0123456789abcdef"; /* 32 bytes + NUL */
#define SECRET_LEN 32
#define T_2024_03_10 1710028800LL

static struct ap_slice sl(const char *s)
{
    return (struct ap_slice){s, strlen(s)};
}

static void test_known_pseudonym(void **state)
{
    (void)state;
    struct ap_pseudo_source src;
    struct ap_pseudo_keyring kr;
    char out[AP_PSEUDO_HEX_MAX];

    assert_int_equal(ap_pseudo_source_init_secret(&src, secret, SECRET_LEN), 0);
    ap_pseudo_keyring_init(&kr, &src);

    /* Computed independently (Python hmac/hashlib HKDF and HMAC). */
    assert_int_equal(ap_pseudo_hex(&kr, T_2024_03_10 + 12345, sl("ip"), sl("192.0.2.1"), 256, out, sizeof(out)), 64);
    assert_string_equal(out, "c8b27942309e3083e8ccf972e03a41f0bd53c0dc4733ee0741d254e76dc87035");
    assert_int_equal(ap_pseudo_hex(&kr, T_2024_03_10 + 86400, sl("ip"), sl("192.0.2.1"), 256, out, sizeof(out)), 64);
    assert_string_equal(out, "16cc46523728f42241c049557e7d1ee322c8e11ae01eb7e55878f7a11b69c79a");

    /* The day key is HKDF(secret, info) as documented. */
    uint8_t key[32], want[32];
    size_t wlen;
    assert_int_equal(ap_pseudo_source_day_key(&src, 19792, key), 0);
    unhex("63ebea9f3567e1c62f9dc68fdd20b66cffec25a752c0f2b20a04f6d7f95985a0", want, &wlen);
    assert_memory_equal(key, want, 32);

    /* Cross-check the pseudonym with OpenSSL's own HMAC(). */
    uint8_t mac[32];
    unsigned mlen = 0;
    const unsigned char msg[] = "ip\0" "192.0.2.1"; /* split: "\0192" would be an octal escape */
    assert_non_null(HMAC(EVP_sha256(), key, 32, msg, sizeof(msg) - 1, mac, &mlen));
    assert_int_equal(mlen, 32);
    assert_int_equal(ap_pseudo_hex(&kr, T_2024_03_10, sl("ip"), sl("192.0.2.1"), 64, out, sizeof(out)), 16);
    char hex[17];
    for (int i = 0; i < 8; i++)
        snprintf(hex + 2 * i, 3, "%02x", mac[i]);
    assert_string_equal(out, hex);

    ap_pseudo_keyring_free(&kr);
    ap_pseudo_source_free(&src);
}

/* Every message length from 0 to 130 bytes, so both sides of the one-block
 * fast path (at most 55 bytes) and the two-block and longer messages are
 * checked against OpenSSL's HMAC(), for the raw MAC and for pseudonyms
 * whose scope and value split the message in every way. */
static void test_lengths_match_openssl(void **state)
{
    (void)state;
    uint8_t key[32];
    for (size_t i = 0; i < sizeof(key); i++)
        key[i] = (uint8_t)(i * 7 + 3);
    struct ap_pseudo_hmac_key hk;
    assert_int_equal(ap_pseudo_hmac_key_init(&hk, key, sizeof(key)), 0);
    uint8_t msg[131];
    for (size_t i = 0; i < sizeof(msg); i++)
        msg[i] = (uint8_t)(i * 31 + 1);
    for (size_t len = 0; len < sizeof(msg); len++) {
        uint8_t got[32], want[32];
        unsigned wl = 0;
        ap_pseudo_hmac_sha256(&hk, msg, len, got);
        assert_non_null(HMAC(EVP_sha256(), key, sizeof(key), msg, len, want, &wl));
        assert_memory_equal(got, want, 32);
    }
    ap_pseudo_hmac_key_wipe(&hk);

    static const uint8_t len_secret[32] = "lengths-secret-lengths-secret-x";
    struct ap_pseudo_source src;
    struct ap_pseudo_keyring kr;
    uint8_t day_key[32];
    assert_int_equal(ap_pseudo_source_init_secret(&src, len_secret, sizeof(len_secret)), 0);
    ap_pseudo_keyring_init(&kr, &src);
    assert_int_equal(ap_pseudo_source_day_key(&src, T_2024_03_10 / 86400, day_key), 0);
    char text[140];
    for (size_t i = 0; i < sizeof(text); i++)
        text[i] = (char)('a' + i % 26);
    for (size_t scope = 0; scope < 40; scope += 13) {
        for (size_t vlen = 0; vlen + scope < 90; vlen++) {
            uint8_t m[160], want[32];
            unsigned wl = 0;
            memcpy(m, text, scope);
            m[scope] = 0;
            memcpy(m + scope + 1, text + 40, vlen);
            assert_non_null(HMAC(EVP_sha256(), day_key, 32, m, scope + 1 + vlen, want, &wl));
            char out[AP_PSEUDO_HEX_MAX], hex[65];
            struct ap_slice sc = {text, scope}, v = {text + 40, vlen};
            assert_int_equal(ap_pseudo_hex(&kr, T_2024_03_10, sc, v, 256, out, sizeof(out)), 64);
            for (int i = 0; i < 32; i++)
                snprintf(hex + 2 * i, 3, "%02x", want[i]);
            assert_string_equal(out, hex);
        }
    }
    ap_pseudo_keyring_free(&kr);
    ap_pseudo_source_free(&src);
}

/* Deferred pseudonyms: placeholders of the right length at once, the same
 * digits as ap_pseudo_hex once flushed (computed in pairs), nothing written
 * past the digits by the flush, the same errors, long values at once. */
static void test_deferred_batch(void **state)
{
    (void)state;
    static const uint8_t bsecret[32] = "batch-secret-batch-secret-batch";
    struct ap_pseudo_source src;
    struct ap_pseudo_keyring kr;
    assert_int_equal(ap_pseudo_source_init_secret(&src, bsecret, sizeof(bsecret)), 0);
    ap_pseudo_keyring_init(&kr, &src);
    assert_int_equal(ap_pseudo_keyring_prepare(&kr, T_2024_03_10), 0);
    struct ap_slice scope = sl("shop.example");
    for (unsigned bits = 32; bits <= 256; bits += 36) {
        for (size_t count = 1; count <= 7; count++) {
            struct ap_pseudo_batch b;
            ap_pseudo_batch_init(&b);
            char out[7][80], want[7][AP_PSEUDO_HEX_MAX], val[7][70];
            size_t vlen[7];
            for (size_t i = 0; i < count; i++) {
                /* Values of 5 to 64 bytes: the longest do not fit a block. */
                vlen[i] = 5 + (i * 11 + bits) % 60;
                for (size_t k = 0; k < vlen[i]; k++)
                    val[i][k] = (char)('a' + (k * 7 + i + bits) % 26);
                assert_int_equal(ap_pseudo_hex(&kr, T_2024_03_10, scope, (struct ap_slice){val[i], vlen[i]},
                                               bits, want[i], sizeof(want[i])), (int)(bits / 4));
                memset(out[i], '#', sizeof(out[i]));
                int n = ap_pseudo_hex_deferred(&b, &kr, T_2024_03_10, scope, (struct ap_slice){val[i], vlen[i]},
                                               bits, out[i], sizeof(out[i]));
                assert_int_equal(n, (int)(bits / 4));
                /* The caller writes on after the digits at once. */
                out[i][n] = '&';
            }
            ap_pseudo_batch_flush(&b);
            for (size_t i = 0; i < count; i++) {
                assert_memory_equal(out[i], want[i], bits / 4);
                assert_int_equal(out[i][bits / 4], '&');
                assert_int_equal(out[i][bits / 4 + 1], '#');
            }
        }
    }
    /* Errors as ap_pseudo_hex, and no job is left behind. */
    struct ap_pseudo_batch b;
    ap_pseudo_batch_init(&b);
    char out[80];
    assert_int_equal(ap_pseudo_hex_deferred(&b, &kr, T_2024_03_10, scope, sl("v"), 30, out, sizeof(out)), -EINVAL);
    assert_int_equal(ap_pseudo_hex_deferred(&b, &kr, T_2024_03_10, (struct ap_slice){"a\0b", 3}, sl("v"), 64, out,
                                            sizeof(out)), -EINVAL);
    assert_int_equal(ap_pseudo_hex_deferred(&b, &kr, T_2024_03_10, scope, sl("v"), 64, out, 16), -ENOSPC);
    assert_int_equal(b.n, 0);
    ap_pseudo_batch_flush(&b);
    ap_pseudo_keyring_free(&kr);
    ap_pseudo_source_free(&src);
}

static void test_bits_and_errors(void **state)
{
    (void)state;
    struct ap_pseudo_source src;
    struct ap_pseudo_keyring kr;
    char full[AP_PSEUDO_HEX_MAX], out[AP_PSEUDO_HEX_MAX];

    assert_int_equal(ap_pseudo_source_init_secret(&src, secret, SECRET_LEN), 0);
    ap_pseudo_keyring_init(&kr, &src);
    assert_int_equal(ap_pseudo_hex(&kr, T_2024_03_10, sl("s"), sl("v"), 256, full, sizeof(full)), 64);
    assert_int_equal(strlen(full), 64);

    static const unsigned ok_bits[] = {32, 36, 64, 100, 128, 252, 256};
    for (size_t i = 0; i < AP_ARRAY_SIZE(ok_bits); i++) {
        unsigned b = ok_bits[i];
        assert_int_equal(ap_pseudo_hex(&kr, T_2024_03_10, sl("s"), sl("v"), b, out, b / 4 + 1), (int)(b / 4));
        assert_int_equal(strlen(out), b / 4);
        assert_memory_equal(out, full, b / 4); /* truncation keeps the prefix */
        for (size_t j = 0; j < b / 4; j++)
            assert_true((out[j] >= '0' && out[j] <= '9') || (out[j] >= 'a' && out[j] <= 'f'));
    }
    assert_int_equal(ap_pseudo_hex(&kr, T_2024_03_10, sl("s"), sl("v"), AP_PSEUDO_BITS_DEFAULT, out, 17), 16);

    static const unsigned bad_bits[] = {0, 4, 28, 31, 33, 65, 257, 260, 512};
    for (size_t i = 0; i < AP_ARRAY_SIZE(bad_bits); i++) {
        out[0] = 'x';
        assert_int_equal(ap_pseudo_hex(&kr, T_2024_03_10, sl("s"), sl("v"), bad_bits[i], out, sizeof(out)), -EINVAL);
        assert_string_equal(out, "");
    }
    assert_int_equal(ap_pseudo_hex(&kr, T_2024_03_10, sl("s"), sl("v"), 64, out, 16), -ENOSPC);
    assert_int_equal(ap_pseudo_hex(&kr, T_2024_03_10, sl("s"), sl("v"), 64, out, 0), -ENOSPC);
    assert_int_equal(ap_pseudo_hex(&kr, T_2024_03_10, sl("s"), sl("v"), 64, NULL, 17), -EINVAL);

    /* A NUL in the scope would make (scope, value) pairs collide. */
    struct ap_slice nul_scope = {"a\0b", 3};
    assert_int_equal(ap_pseudo_hex(&kr, T_2024_03_10, nul_scope, sl("v"), 64, out, sizeof(out)), -EINVAL);
    struct ap_slice null_value = {NULL, 3};
    assert_int_equal(ap_pseudo_hex(&kr, T_2024_03_10, sl("s"), null_value, 64, out, sizeof(out)), -EINVAL);
    /* ... but NULs in the value are data, and empty inputs are fine. */
    struct ap_slice nul_value = {"a\0b", 3};
    assert_int_equal(ap_pseudo_hex(&kr, T_2024_03_10, sl("s"), nul_value, 64, out, sizeof(out)), 16);
    struct ap_slice empty = {NULL, 0};
    assert_int_equal(ap_pseudo_hex(&kr, T_2024_03_10, empty, empty, 64, out, sizeof(out)), 16);

    /* Time range: 1970-01-01 .. 9999-12-31T23:59:59Z. */
    assert_int_equal(ap_pseudo_hex(&kr, -1, sl("s"), sl("v"), 64, out, sizeof(out)), -ERANGE);
    assert_int_equal(ap_pseudo_hex(&kr, 0, sl("s"), sl("v"), 64, out, sizeof(out)), 16);
    assert_int_equal(ap_pseudo_hex(&kr, 253402300799LL, sl("s"), sl("v"), 64, out, sizeof(out)), 16);
    assert_int_equal(ap_pseudo_hex(&kr, 253402300800LL, sl("s"), sl("v"), 64, out, sizeof(out)), -ERANGE);
    assert_int_equal(ap_pseudo_keyring_prepare(&kr, 253402300799LL), 0);
    assert_int_equal(ap_pseudo_keyring_prepare(&kr, -5), -ERANGE);

    ap_pseudo_keyring_free(&kr);
    ap_pseudo_source_free(&src);
}

/* Different scopes, values or separators must not collide. */
static void test_domain_separation(void **state)
{
    (void)state;
    struct ap_pseudo_source src;
    struct ap_pseudo_keyring kr;
    char a[AP_PSEUDO_HEX_MAX], b[AP_PSEUDO_HEX_MAX];

    assert_int_equal(ap_pseudo_source_init_secret(&src, secret, SECRET_LEN), 0);
    ap_pseudo_keyring_init(&kr, &src);
    ap_pseudo_hex(&kr, T_2024_03_10, sl("ab"), sl("c"), 128, a, sizeof(a));
    ap_pseudo_hex(&kr, T_2024_03_10, sl("a"), sl("bc"), 128, b, sizeof(b));
    assert_string_not_equal(a, b);
    ap_pseudo_hex(&kr, T_2024_03_10, sl("ip"), sl("1.2.3.4"), 128, a, sizeof(a));
    ap_pseudo_hex(&kr, T_2024_03_10, sl("ua"), sl("1.2.3.4"), 128, b, sizeof(b));
    assert_string_not_equal(a, b);
    ap_pseudo_hex(&kr, T_2024_03_10, sl("ip"), sl("1.2.3.5"), 128, b, sizeof(b));
    assert_string_not_equal(a, b);
    ap_pseudo_keyring_free(&kr);
    ap_pseudo_source_free(&src);
}

static void test_rotation_at_midnight(void **state)
{
    (void)state;
    struct ap_pseudo_source src;
    struct ap_pseudo_keyring kr;
    char before[AP_PSEUDO_HEX_MAX], after[AP_PSEUDO_HEX_MAX], again[AP_PSEUDO_HEX_MAX];
    const int64_t midnight = T_2024_03_10 + 86400;

    assert_int_equal(ap_pseudo_source_init_secret(&src, secret, SECRET_LEN), 0);
    ap_pseudo_keyring_init(&kr, &src);
    assert_int_equal(ap_pseudo_keyring_prepare(&kr, midnight - 10), 0);
    assert_int_equal(kr.slots[19792 % 3].day, 19792);
    assert_int_equal(kr.slots[19793 % 3].day, 19793); /* tomorrow prepared */

    ap_pseudo_hex(&kr, midnight - 1, sl("ip"), sl("x"), 64, before, sizeof(before));
    ap_pseudo_hex(&kr, T_2024_03_10, sl("ip"), sl("x"), 64, again, sizeof(again));
    assert_string_equal(before, again); /* same UTC day */
    ap_pseudo_hex(&kr, midnight, sl("ip"), sl("x"), 64, after, sizeof(after));
    assert_string_not_equal(before, after);
    ap_pseudo_hex(&kr, midnight + 86399, sl("ip"), sl("x"), 64, again, sizeof(again));
    assert_string_equal(after, again);

    /* Preparing the new day wipes yesterday's slot. */
    assert_int_equal(ap_pseudo_keyring_prepare(&kr, midnight + 5), 0);
    assert_int_equal(kr.slots[19792 % 3].day, -1);
    const struct ap_pseudo_hmac_key zero = {{0}, {0}};
    assert_memory_equal(&kr.slots[19792 % 3].hmac, &zero, sizeof(zero));
    assert_int_equal(kr.slots[19794 % 3].day, 19794);

    /* Secret mode can still answer for yesterday, identically. */
    ap_pseudo_hex(&kr, midnight - 1, sl("ip"), sl("x"), 64, again, sizeof(again));
    assert_string_equal(before, again);

    ap_pseudo_keyring_free(&kr);
    for (int i = 0; i < AP_PSEUDO_KEYRING_SLOTS; i++)
        assert_int_equal(kr.slots[i].day, -1);
    ap_pseudo_source_free(&src);
}

static void test_instances_agree(void **state)
{
    (void)state;
    struct ap_pseudo_source s1, s2, s3;
    struct ap_pseudo_keyring k1, k2, k3;
    char a[AP_PSEUDO_HEX_MAX], b[AP_PSEUDO_HEX_MAX], c[AP_PSEUDO_HEX_MAX];
    uint8_t other[SECRET_LEN];

    memcpy(other, secret, SECRET_LEN);
    other[0] ^= 1;
    assert_int_equal(ap_pseudo_source_init_secret(&s1, secret, SECRET_LEN), 0);
    assert_int_equal(ap_pseudo_source_init_secret(&s2, secret, SECRET_LEN), 0);
    assert_int_equal(ap_pseudo_source_init_secret(&s3, other, SECRET_LEN), 0);
    ap_pseudo_keyring_init(&k1, &s1);
    ap_pseudo_keyring_init(&k2, &s2);
    ap_pseudo_keyring_init(&k3, &s3);
    ap_pseudo_hex(&k1, T_2024_03_10, sl("ip"), sl("x"), 64, a, sizeof(a));
    ap_pseudo_hex(&k2, T_2024_03_10 + 7, sl("ip"), sl("x"), 64, b, sizeof(b));
    ap_pseudo_hex(&k3, T_2024_03_10, sl("ip"), sl("x"), 64, c, sizeof(c));
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    ap_pseudo_keyring_free(&k1);
    ap_pseudo_keyring_free(&k2);
    ap_pseudo_keyring_free(&k3);
    ap_pseudo_source_free(&s1);
    ap_pseudo_source_free(&s2);
    ap_pseudo_source_free(&s3);

    assert_int_equal(ap_pseudo_source_init_secret(&s1, secret, AP_PSEUDO_SECRET_MIN - 1), -EINVAL);
    assert_int_equal(ap_pseudo_source_init_secret(&s1, NULL, 32), -EINVAL);
    static uint8_t huge[AP_PSEUDO_SECRET_MAX + 1];
    assert_int_equal(ap_pseudo_source_init_secret(&s1, huge, sizeof(huge)), -EINVAL);
}

static void test_random_mode(void **state)
{
    (void)state;
    struct ap_pseudo_source src, other;
    struct ap_pseudo_keyring k1, k2, k3;
    char a[AP_PSEUDO_HEX_MAX], b[AP_PSEUDO_HEX_MAX], c[AP_PSEUDO_HEX_MAX];
    const int64_t d = 19792;

    assert_int_equal(ap_pseudo_source_init_random(&src), 0);
    assert_int_equal(ap_pseudo_source_init_random(&other), 0);
    ap_pseudo_keyring_init(&k1, &src);
    ap_pseudo_keyring_init(&k2, &src);
    ap_pseudo_keyring_init(&k3, &other);

    /* Workers sharing a source agree; another process does not. */
    ap_pseudo_hex(&k1, T_2024_03_10, sl("ip"), sl("x"), 128, a, sizeof(a));
    ap_pseudo_hex(&k2, T_2024_03_10 + 60, sl("ip"), sl("x"), 128, b, sizeof(b));
    ap_pseudo_hex(&k3, T_2024_03_10, sl("ip"), sl("x"), 128, c, sizeof(c));
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);

    /* Next day: a new random key. */
    ap_pseudo_hex(&k1, T_2024_03_10 + 86400, sl("ip"), sl("x"), 128, c, sizeof(c));
    assert_string_not_equal(a, c);
    ap_pseudo_hex(&k2, T_2024_03_10 + 86400, sl("ip"), sl("x"), 128, b, sizeof(b));
    assert_string_equal(b, c);

    /* Preparing day d+1 makes d+2 the newest: day d is wiped in the source
     * and can never be issued again, not even to a keyring that never
     * had it. */
    assert_int_equal(ap_pseudo_keyring_prepare(&k1, T_2024_03_10 + 86400), 0);
    for (int i = 0; i < AP_PSEUDO_SOURCE_DAYS; i++)
        assert_true(src.days[i].day == d + 1 || src.days[i].day == d + 2);
    assert_int_equal(src.floor, d + 1);
    struct ap_pseudo_keyring k4;
    ap_pseudo_keyring_init(&k4, &src);
    assert_int_equal(ap_pseudo_hex(&k4, T_2024_03_10, sl("ip"), sl("x"), 128, c, sizeof(c)), -ESTALE);
    assert_string_equal(c, "");
    uint8_t key[32];
    assert_int_equal(ap_pseudo_source_day_key(&src, d, key), -ESTALE);
    /* k2 still holds day d in its own cache until it is prepared. */
    assert_int_equal(ap_pseudo_hex(&k2, T_2024_03_10, sl("ip"), sl("x"), 128, b, sizeof(b)), 32);
    assert_string_equal(a, b);
    assert_int_equal(ap_pseudo_keyring_prepare(&k2, T_2024_03_10 + 86400), 0);
    assert_int_equal(ap_pseudo_hex(&k2, T_2024_03_10, sl("ip"), sl("x"), 128, b, sizeof(b)), -ESTALE);

    /* A jump forward wipes everything older than the day before it. */
    assert_int_equal(ap_pseudo_source_day_key(&src, d + 100, key), 0);
    for (int i = 0; i < AP_PSEUDO_SOURCE_DAYS; i++)
        assert_true(src.days[i].day == -1 || src.days[i].day == d + 100);
    assert_int_equal(ap_pseudo_source_day_key(&src, d + 99, key), 0);
    assert_int_equal(ap_pseudo_source_day_key(&src, d + 98, key), -ESTALE);
    assert_int_equal(ap_pseudo_source_day_key(&src, 2932897, key), -ERANGE);

    ap_pseudo_keyring_free(&k1);
    ap_pseudo_keyring_free(&k2);
    ap_pseudo_keyring_free(&k3);
    ap_pseudo_keyring_free(&k4);
    ap_pseudo_source_free(&src);
    ap_pseudo_source_free(&other);
}

#define NTHREADS 8

struct worker {
    struct ap_pseudo_source *src;
    int64_t now;
    char out[AP_PSEUDO_HEX_MAX];
    int rc;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct ap_pseudo_keyring kr;
    char tmp[AP_PSEUDO_HEX_MAX];

    ap_pseudo_keyring_init(&kr, w->src);
    w->rc = ap_pseudo_keyring_prepare(&kr, w->now);
    for (int i = 0; i < 2000 && w->rc == 0; i++) {
        int rc = ap_pseudo_hex(&kr, w->now, sl("ip"), sl("198.51.100.1"), 256, tmp, sizeof(tmp));
        if (rc != 64)
            w->rc = rc;
        else if (i == 0)
            memcpy(w->out, tmp, sizeof(tmp));
        else if (strcmp(tmp, w->out) != 0)
            w->rc = -EPROTO;
    }
    ap_pseudo_keyring_free(&kr);
    return NULL;
}

/* Workers racing to create a random day's key all get the same key. */
static void test_random_mode_threads(void **state)
{
    (void)state;
    for (int round = 0; round < 20; round++) {
        struct ap_pseudo_source src;
        pthread_t th[NTHREADS];
        struct worker w[NTHREADS];

        assert_int_equal(ap_pseudo_source_init_random(&src), 0);
        for (int i = 0; i < NTHREADS; i++) {
            w[i] = (struct worker){.src = &src, .now = T_2024_03_10 + 1000 * i};
            assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
        }
        for (int i = 0; i < NTHREADS; i++) {
            assert_int_equal(pthread_join(th[i], NULL), 0);
            assert_int_equal(w[i].rc, 0);
            assert_string_equal(w[i].out, w[0].out);
        }
        ap_pseudo_source_free(&src);
    }
}

static void test_hot_path_allocates_nothing(void **state)
{
    (void)state;
    struct ap_pseudo_source src;
    struct ap_pseudo_keyring kr;
    char out[AP_PSEUDO_HEX_MAX];

    assert_int_equal(ap_pseudo_source_init_secret(&src, secret, SECRET_LEN), 0);
    ap_pseudo_keyring_init(&kr, &src);
    long before = ossl_allocs;
    assert_int_equal(ap_pseudo_keyring_prepare(&kr, T_2024_03_10), 0);
    /* The counter is live: deriving the days did allocate. */
    assert_true(ossl_allocs > before);

    before = ossl_allocs;
    for (int i = 0; i < 10000; i++)
        assert_int_equal(ap_pseudo_hex(&kr, T_2024_03_10 + i, sl("ip"), sl("203.0.113.9"), 64, out, sizeof(out)), 16);
    assert_int_equal(ossl_allocs - before, 0);

    ap_pseudo_keyring_free(&kr);
    ap_pseudo_source_free(&src);
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void test_secret_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_pseudo.XXXXXX";
    char path[64];
    uint8_t buf[64];
    size_t len = 99;

    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/secret", dir);

    write_file(path, secret, SECRET_LEN);
    assert_int_equal(ap_pseudo_secret_read_file(path, buf, sizeof(buf), &len), 0);
    assert_int_equal(len, SECRET_LEN);
    assert_memory_equal(buf, secret, SECRET_LEN);
    /* Exactly `cap` bytes is fine; one more is too long. */
    assert_int_equal(ap_pseudo_secret_read_file(path, buf, SECRET_LEN, &len), 0);
    assert_int_equal(ap_pseudo_secret_read_file(path, buf, SECRET_LEN - 1, &len), -EFBIG);
    assert_int_equal(len, 0);

    write_file(path, secret, AP_PSEUDO_SECRET_MIN - 1);
    assert_int_equal(ap_pseudo_secret_read_file(path, buf, sizeof(buf), &len), -EINVAL);

    assert_int_equal(ap_pseudo_secret_read_file(dir, buf, sizeof(buf), &len), -EINVAL);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(ap_pseudo_secret_read_file(path, buf, sizeof(buf), &len), -ENOENT);
    assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
    /* Must precede OpenSSL's first allocation. */
    if (!CRYPTO_set_mem_functions(count_malloc, count_realloc, count_free)) {
        fprintf(stderr, "CRYPTO_set_mem_functions failed\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc4231),
        cmocka_unit_test(test_rfc5869),
        cmocka_unit_test(test_day_info),
        cmocka_unit_test(test_known_pseudonym),
        cmocka_unit_test(test_lengths_match_openssl),
        cmocka_unit_test(test_deferred_batch),
        cmocka_unit_test(test_bits_and_errors),
        cmocka_unit_test(test_domain_separation),
        cmocka_unit_test(test_rotation_at_midnight),
        cmocka_unit_test(test_instances_agree),
        cmocka_unit_test(test_random_mode),
        cmocka_unit_test(test_random_mode_threads),
        cmocka_unit_test(test_hot_path_allocates_nothing),
        cmocka_unit_test(test_secret_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
