/* Types of keyed pseudonyms: a shared key source (one per process) and a
 * keyring per worker thread that caches each UTC day's HMAC key. */
#ifndef ANONPROXY_PSEUDO_T_H
#define ANONPROXY_PSEUDO_T_H

#include <pthread.h>
#include <stdint.h>

#define AP_PSEUDO_KEY_LEN 32       /* bytes of a day key (HKDF-SHA256 output) */
#define AP_PSEUDO_SECRET_MIN 16    /* shortest secret accepted: 128 bits */
#define AP_PSEUDO_SECRET_MAX 4096  /* longest secret file read */
#define AP_PSEUDO_BITS_MIN 32
#define AP_PSEUDO_BITS_MAX 256
#define AP_PSEUDO_BITS_DEFAULT 64
#define AP_PSEUDO_HEX_MAX (AP_PSEUDO_BITS_MAX / 4 + 1) /* output buffer that always suffices */

/* HMAC-SHA256 with its key already absorbed: the SHA-256 states after the
 * (key ^ ipad) and (key ^ opad) blocks. Opaque storage for OpenSSL's
 * SHA256_CTX (pseudo.c checks that it fits), so this header does not
 * depend on OpenSSL's deprecated low-level API. These states are as secret
 * as the key: wipe them with ap_pseudo_hmac_key_wipe. */
struct ap_pseudo_hmac_key {
    uint64_t inner[16];
    uint64_t outer[16];
};

#define AP_PSEUDO_SOURCE_MAGIC 0x50534f55u /* "PSOU" */
#define AP_PSEUDO_SOURCE_DAYS 2

/* Where day keys come from; one per process, shared by every worker.
 * Secret mode keeps only the HKDF pseudo-random key (PRK) of the secret and
 * is immutable after init, so workers read it without locking. Random mode
 * keeps at most two random day keys (the newest day asked for and the one
 * before) under `lock`, which only the once-a-day derivation path takes. */
struct ap_pseudo_source {
    unsigned magic;
    int random;                      /* 1: RAND_bytes per day; 0: HKDF of a secret */
    uint8_t prk[AP_PSEUDO_KEY_LEN];  /* secret mode: HKDF-Extract(secret) */
    pthread_mutex_t lock;            /* random mode: guards floor and days */
    int64_t floor;                   /* random mode: days before this were wiped */
    struct {
        int64_t day;                 /* -1: empty */
        uint8_t key[AP_PSEUDO_KEY_LEN];
    } days[AP_PSEUDO_SOURCE_DAYS];
};

#define AP_PSEUDO_KEYRING_MAGIC 0x504b4559u /* "PKEY" */
#define AP_PSEUDO_KEYRING_SLOTS 3

/* One prepared day of a keyring. */
struct ap_pseudo_keyring_slot {
    int64_t day; /* -1: empty */
    struct ap_pseudo_hmac_key hmac;
};

/* One worker's cache of prepared day keys (yesterday, today, tomorrow,
 * indexed by day modulo 3). Owned and used by a single thread: the hot
 * path reads it without any synchronisation. */
struct ap_pseudo_keyring {
    unsigned magic;
    struct ap_pseudo_source *src; /* borrowed, shared */
    struct ap_pseudo_keyring_slot slots[AP_PSEUDO_KEYRING_SLOTS];
};

#define AP_PSEUDO_BATCH_MAX 8

/* One pseudonym waiting in a batch: its inner block, already padded, the
 * day's key and where its digits go. */
struct ap_pseudo_batch_job {
    uint8_t block[64];
    const struct ap_pseudo_hmac_key *key;
    char *out;
    unsigned nhex;
};

/* Pseudonyms of one request, computed two at a time
 * (ap_pseudo_hex_deferred): on the caller's stack, for one thread. */
struct ap_pseudo_batch {
    size_t n;
    struct ap_pseudo_batch_job jobs[AP_PSEUDO_BATCH_MAX];
};

#endif
