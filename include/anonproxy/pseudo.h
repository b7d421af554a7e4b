/* Keyed pseudonyms: HMAC-SHA256(day key, scope || 0x00 || value), truncated
 * and written as lower-case hex. Equal inputs give equal pseudonyms within
 * one UTC day and unlinkable ones across days.
 *
 * Day keys. With a secret (bytes the caller read, e.g. with
 * ap_pseudo_secret_read_file), the key of day D is
 *   HKDF-SHA256(salt = none, IKM = secret, info = "anonproxy pseudonym D")
 * with D written "YYYY-MM-DD", 32 bytes, so every instance sharing the
 * secret agrees. Without a secret, each day gets a fresh RAND_bytes key
 * held only in memory; it is wiped (OPENSSL_cleanse) at rotation.
 *
 * Threads, and why no lock is on the hot path. The process has one
 * struct ap_pseudo_source and each worker thread its own struct
 * ap_pseudo_keyring. ap_pseudo_hex touches only the caller's keyring,
 * which no other thread reads or writes, so it needs no atomics or locks.
 * A keyring asks the source for a day's key only when it has not prepared
 * that day (once a day from ap_pseudo_keyring_prepare, or on a miss).
 * Secret mode derives from the PRK, which is written once before the
 * workers start and never again, so concurrent reads are safe. Random mode
 * creates each day's key once under the source's mutex and hands every
 * worker a copy of that same key; days older than the newest day requested
 * minus one are wiped and never issued again (-ESTALE), so no two workers
 * can ever hold different keys for one day.
 *
 * Allocation. ap_pseudo_hex allocates nothing once its keyring holds the
 * day: HMAC runs on precomputed inner/outer SHA-256 states with OpenSSL's
 * non-allocating low-level SHA-256 (EVP_MAC and HMAC() allocate a context
 * per call). Deriving a day (HKDF via EVP_KDF, RAND_bytes) may allocate, so
 * each worker calls ap_pseudo_keyring_prepare at start and from a timer
 * (e.g. hourly, and just after UTC midnight): it derives today and
 * tomorrow ahead of time and wipes earlier days.
 */
#ifndef ANONPROXY_PSEUDO_H
#define ANONPROXY_PSEUDO_H

#include <stddef.h>
#include <stdint.h>

#include "anonproxy/http-t.h"
#include "anonproxy/pseudo-t.h"

/* Build a source that derives day keys from `secret` (`len` bytes,
 * AP_PSEUDO_SECRET_MIN..AP_PSEUDO_SECRET_MAX, copied; the caller may wipe
 * its buffer afterwards). Returns 0, -EINVAL (length), -EIO (OpenSSL). */
int ap_pseudo_source_init_secret(struct ap_pseudo_source *src, const uint8_t *secret, size_t len);

/* Build a source that makes a random key per UTC day. Returns 0 or -EIO. */
int ap_pseudo_source_init_random(struct ap_pseudo_source *src);

/* Write the key of UTC day number `day` (days since 1970-01-01, 0..2932896)
 * to `key`. Thread-safe. May allocate (HKDF) and takes a mutex in random
 * mode: not for the request path, keyrings call it. Returns 0, -ERANGE
 * (day), -ESTALE (random mode: that day was already wiped), -EIO. */
int ap_pseudo_source_day_key(struct ap_pseudo_source *src, int64_t day, uint8_t key[AP_PSEUDO_KEY_LEN]);

/* Wipe every key and release the source. No keyring may use it afterwards. */
void ap_pseudo_source_free(struct ap_pseudo_source *src);

/* Read a secret file of AP_PSEUDO_SECRET_MIN..`cap` bytes (used as raw
 * bytes, a trailing newline included) into `buf`, setting *len. Does file
 * I/O: call it at configuration time, never from a worker loop. Returns 0,
 * -EINVAL (shorter than the minimum), -EFBIG (longer than `cap`), or the
 * negative errno of open/read. */
int ap_pseudo_secret_read_file(const char *path, uint8_t *buf, size_t cap, size_t *len);

/* Make an empty keyring for one worker thread using `src` (borrowed: it
 * must outlive the keyring). */
void ap_pseudo_keyring_init(struct ap_pseudo_keyring *kr, struct ap_pseudo_source *src);

/* Derive the keys of the UTC day of `now` (seconds since the epoch) and of
 * the next day, and wipe the keys of earlier days. Call from the keyring's
 * own thread. Returns 0 or the error of ap_pseudo_source_day_key. */
int ap_pseudo_keyring_prepare(struct ap_pseudo_keyring *kr, int64_t now);

/* Wipe every cached key. The keyring may be prepared again afterwards. */
void ap_pseudo_keyring_free(struct ap_pseudo_keyring *kr);

/* Write the pseudonym of `value` in `scope` for the UTC day of `now`
 * (seconds since the epoch, 1970..9999) as `bits`/4 lower-case hex
 * characters and a NUL to `out` of `out_size` bytes. `bits` is a multiple
 * of 4 in AP_PSEUDO_BITS_MIN..AP_PSEUDO_BITS_MAX; a scope must not contain
 * a NUL byte (it separates scope from value). Call only from the keyring's
 * own thread. Allocates nothing when the day is prepared. Returns the
 * number of hex characters, or -EINVAL (bits, scope, NULL pointer),
 * -ENOSPC (`out_size` < bits/4 + 1), -ERANGE (now), or an error of
 * deriving an unprepared day (-ESTALE, -EIO). On error `out` holds "" when
 * out_size > 0. */
int ap_pseudo_hex(struct ap_pseudo_keyring *kr, int64_t now, struct ap_slice scope, struct ap_slice value,
                  unsigned bits, char *out, size_t out_size);

/* ap_pseudo_hex, deferred: the arguments are checked and the same value is
 * returned at once, but `out` holds bits/4 '0' characters and a NUL until
 * the digits are written, at the latest by ap_pseudo_batch_flush. The
 * keyed hash of one pseudonym is two SHA-256 compressions, one waiting for
 * the other, and the rounds of a compression wait on each other's results,
 * not on the processor's units: two pseudonyms computed side by side take
 * little more time than one. So the batch computes them in pairs, as soon
 * as two are waiting. Until the digits are written the caller must not
 * read, move or copy them (it may write on after them: the length is
 * final). A value that does not fit in one block is computed at once. */
void ap_pseudo_batch_init(struct ap_pseudo_batch *b);
int ap_pseudo_hex_deferred(struct ap_pseudo_batch *b, struct ap_pseudo_keyring *kr, int64_t now,
                           struct ap_slice scope, struct ap_slice value, unsigned bits, char *out,
                           size_t out_size);
void ap_pseudo_batch_flush(struct ap_pseudo_batch *b);

/* UTC day number of `now`, rounding towards minus infinity. */
int64_t ap_pseudo_day(int64_t now);

/* Write the HKDF info of `day`, "anonproxy pseudonym YYYY-MM-DD", with a
 * NUL into `buf` (32 bytes suffice). Returns its length, -ERANGE, -ENOSPC. */
int ap_pseudo_day_info(int64_t day, char *buf, size_t size);

/* Building blocks, public so they can be tested against RFC vectors. */

/* Absorb an HMAC-SHA256 key of any length (longer than 64 bytes: hashed
 * first, as RFC 2104 says). Allocates nothing. Returns 0. */
int ap_pseudo_hmac_key_init(struct ap_pseudo_hmac_key *k, const uint8_t *key, size_t len);

/* HMAC-SHA256 of `len` bytes with a prepared key. Allocates nothing. */
void ap_pseudo_hmac_sha256(const struct ap_pseudo_hmac_key *k, const uint8_t *msg, size_t len,
                           uint8_t mac[32]);

/* Erase a prepared key. */
void ap_pseudo_hmac_key_wipe(struct ap_pseudo_hmac_key *k);

/* RFC 5869 HKDF-SHA256 Extract (an empty salt means 32 zero bytes) and
 * Expand (okm_len 1..8160) through OpenSSL's EVP_KDF. They allocate.
 * Return 0, -EINVAL, -EIO. */
int ap_pseudo_hkdf_extract(const uint8_t *salt, size_t salt_len, const uint8_t *ikm, size_t ikm_len,
                           uint8_t prk[32]);
int ap_pseudo_hkdf_expand(const uint8_t *prk, size_t prk_len, const uint8_t *info, size_t info_len,
                          uint8_t *okm, size_t okm_len);

#endif
