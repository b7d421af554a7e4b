/* Geolocation: MMDB lookups (libmaxminddb, mmap), coarsening to a
 * precision level with a population floor, a per-worker cache keyed by
 * the network that answered, and hot reload of the database files.
 *
 * Threads. One struct ap_geo per process (ap_geo_open), one struct
 * ap_geo_worker per worker thread (ap_geo_worker_new). ap_geo_lookup
 * touches only the worker, an atomic generation number and the floor's
 * mutex; it never blocks on file I/O. ap_geo_reload opens and verifies the
 * new files (blocking I/O: call it from a thread that is not a request
 * loop) and swaps them in; each worker notices the new generation on its
 * next lookup, drops its cache and its reference to the old database,
 * which is closed when the last in-flight lookup releases it.
 *
 * Errors. Functions return 0 or a negative errno value; the ones that open
 * files also write a one-line message into the caller's `err` buffer
 * (AP_GEO_ERR_LEN is enough), naming the file and the cause.
 */
#ifndef ANONPROXY_GEO_H
#define ANONPROXY_GEO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "anonproxy/geo-t.h"
#include "anonproxy/ip-t.h"

/* Buffers that always suffice for ap_geo_format_json (every text byte
 * escaped to at most 6 characters, plus keys and numbers) and
 * ap_geo_format_header, NUL included. */
#define AP_GEO_JSON_MAX (6 * (2 * AP_GEO_CODE_LEN + 2 * AP_GEO_NAME_LEN + AP_GEO_TZ_LEN) + 256)
#define AP_GEO_HEADER_MAX (3 * AP_GEO_NAME_LEN + 1)

/* ---- options (geo/options.c): pure, for the configuration loader ---- */

/* Fill `o` with the defaults: schema geoip2, precision region,
 * coordinates dropped, no time zone, floors 10 (region) and 50 (city),
 * full-address lookup with /24 and /48 truncation prefixes, a cache of
 * 10000 entries, 65536 floor cells, the X-Geo-* header names. No database
 * is set. */
void ap_geo_options_init(struct ap_geo_options *o);

/* Parse "none", "continent", "country", "region" or "city". Returns 0 or
 * -EINVAL. */
int ap_geo_options_parse_level(enum ap_geo_level *out, const char *s);

/* Parse "geoip2" or "ip-location-db". Returns 0 or -EINVAL. */
int ap_geo_options_parse_schema(enum ap_geo_schema *out, const char *s);

/* Parse "full" or "truncated". Returns 0 or -EINVAL. */
int ap_geo_options_parse_addr(enum ap_geo_addr *out, const char *s);

/* Parse a `fields:` key ("continent", "country", "region", "city",
 * "latitude", "longitude", "timezone"). "postcode" and anything else are
 * -EINVAL: postal codes are never read. */
int ap_geo_options_parse_field(enum ap_geo_field *out, const char *s);

/* Parse a `coordinates:` value into o->coords and its parameter: "drop",
 * "round:N" (N 0..6 decimals), "grid:KM" (a decimal number of kilometres,
 * 0.1..20000). Returns 0, or -EINVAL with `o` unchanged. */
int ap_geo_options_parse_coords(struct ap_geo_options *o, const char *s);

/* True when `path` is a valid dotted field path: 1..AP_GEO_PATH_DEPTH
 * components of [A-Za-z0-9_-], separated by single dots, at most
 * AP_GEO_PATH_MAX bytes ("subdivisions.0.iso_code"). */
bool ap_geo_options_is_valid_path(const char *path);

/* The path a schema reads for `f` ("country.iso_code"), or NULL when the
 * schema has none (the ip-location-db schema has no continent; it is
 * derived from the country). */
const char *ap_geo_options_default_path(enum ap_geo_schema schema, enum ap_geo_field f);

/* Check every option for range and consistency. Returns 0, or -EINVAL
 * with a message naming the key in `err`. */
int ap_geo_options_validate(const struct ap_geo_options *o, char *err, size_t errlen);

/* ---- countries (geo/country.c) ---- */

/* The continent code ("EU", "NA", "AS", "AF", "OC", "SA", "AN") of an ISO
 * 3166-1 alpha-2 country code, upper case, or NULL when unknown. Used when
 * a schema has no continent field. */
const char *ap_geo_country_continent(const char *iso2);

/* ---- database handle (geo/db.c) ---- */

/* Open and verify the files of `o` (database, database_v6, asn_database)
 * with MMDB_MODE_MMAP: metadata sanity, a bounded walk of the search tree
 * that decodes the data records it reaches, and a check that some record
 * carries the country field of the schema (a wrong schema or a wrong file
 * fails here, not at lookup time). Blocking file I/O. On success *out
 * holds one reference and carries `generation`. Returns 0, -ENOENT (a file
 * is missing), -EACCES, -EINVAL (corrupt file or wrong schema), -EAGAIN (a
 * file was replaced while it was being opened; try again), -ENOMEM, -EIO;
 * on error *out is NULL and `err` says which file and why. */
int ap_geo_db_open(struct ap_geo_db **out, const struct ap_geo_options *o, uint64_t generation,
                   char *err, size_t errlen);

/* Take another reference; returns `db`. Thread-safe. */
struct ap_geo_db *ap_geo_db_ref(struct ap_geo_db *db);

/* Drop a reference; the last one closes the files. NULL is ignored.
 * Thread-safe. */
void ap_geo_db_unref(struct ap_geo_db *db);

uint64_t ap_geo_db_generation(const struct ap_geo_db *db);

/* True when one of the files `db` was opened from has been replaced,
 * changed or removed since (device, inode, size, mtime). Does a stat(2)
 * per file: not for the request path. */
bool ap_geo_db_is_stale(const struct ap_geo_db *db);

/* Look `ip` up without cache or coarsening. IPv4-mapped addresses are
 * looked up as the IPv4 address they carry. *prefix receives the length of
 * the network that answered (for IPv4, counted in IPv4 bits), also when
 * nothing was found, so a negative answer can be cached; when the ASN
 * database answered too, it is the longer of the two prefixes. Returns 0
 * with *out filled, -ENOENT (not in the database; *out zeroed),
 * -EADDRNOTAVAIL (private or reserved address, see ap_geo_is_reserved; not
 * looked up), -EIO (a corrupt record; *out zeroed), -EINVAL (bad address).
 * Thread-safe; allocates nothing. */
int ap_geo_db_lookup(const struct ap_geo_db *db, const struct ap_ip *ip, struct ap_geo_record *out,
                     unsigned *prefix);

/* ---- per-worker cache (geo/cache.c) ---- */

/* Make a cache of at least `max_entries` entries (rounded up to whole sets
 * of AP_GEO_CACHE_WAYS); 0 makes a disabled cache that always misses.
 * Returns 0 or -ENOMEM. */
int ap_geo_cache_init(struct ap_geo_cache *c, size_t max_entries);

void ap_geo_cache_free(struct ap_geo_cache *c);

/* Find the cached network containing `ip` (IPv4-mapped addresses count as
 * IPv4). Entries of another `generation` never answer: the first call
 * with a new generation clears the cache. Returns 0 on a hit, with *status
 * the cached lookup status (0 or -ENOENT) and *out the record; -EAGAIN on
 * a miss. Counts hits and misses. */
int ap_geo_cache_get(struct ap_geo_cache *c, uint64_t generation, const struct ap_ip *ip,
                     struct ap_geo_record *out, int *status);

/* Remember that the network of `prefix` bits containing `ip` answered
 * `status` (0 or -ENOENT; other statuses are not cached) with `rec`,
 * evicting the least recently used entry of its set when it is full. */
void ap_geo_cache_put(struct ap_geo_cache *c, uint64_t generation, const struct ap_ip *ip,
                      unsigned prefix, int status, const struct ap_geo_record *rec);

/* Drop every entry (the counters stay). */
void ap_geo_cache_clear(struct ap_geo_cache *c);

void ap_geo_cache_get_stats(const struct ap_geo_cache *c, struct ap_geo_cache_stats *out);

/* ---- coarsening (geo/coarsen.c): pure ---- */

/* The finest level `rec` can support: city needs a country and a city,
 * region a country and a region, country a country, continent a
 * continent. */
enum ap_geo_level ap_geo_coarsen_level_of(const struct ap_geo_record *rec);

/* Fill `out` from `rec` at `level` (already capped by the precision and
 * the floor; capped again by what `rec` has): fields finer than the level
 * are left empty; coordinates only at city level and only as the options
 * say (rounded or snapped, never raw); the time zone only when enabled and
 * at region level or finer (in large countries it tells the region); the
 * AS number only with keep_asn; flags always. Never a postal code. */
void ap_geo_coarsen_apply(const struct ap_geo_options *o, const struct ap_geo_record *rec,
                          enum ap_geo_level level, struct ap_geo_result *out);

/* Coarsen a coordinate pair as o->coords says: round to o->coord_decimals
 * decimals, or move it to the centre of its grid cell (cells
 * o->coord_grid_km high, and as wide at the cell's central latitude).
 * Returns 0, -EINVAL for a pair out of range or not finite, -ENOENT when
 * the options drop coordinates. */
int ap_geo_coarsen_coords(const struct ap_geo_options *o, double lat, double lon, double *out_lat,
                          double *out_lon);

/* ---- population floor (geo/floor.c) ---- */

/* Make a floor: a region is admitted once `min_region` distinct visitors
 * were seen in it today (UTC), a city once `min_city` were; 0 disables
 * that floor. At most `max_cells` cells are tracked per day; a cell that
 * does not fit is never admitted. Returns 0, -ENOMEM, -EINVAL. */
int ap_geo_floor_init(struct ap_geo_floor *f, unsigned min_region, unsigned min_city,
                      size_t max_cells);

void ap_geo_floor_free(struct ap_geo_floor *f);

/* A keyed 64-bit hash of a visitor key (a pseudonym, or the bytes of a
 * truncated address), for ap_geo_floor_admit. The key is not kept. */
uint64_t ap_geo_floor_visitor_hash(const struct ap_geo_floor *f, const void *key, size_t len);

/* Count `visitor` in the cells of `rec` up to `want` (its region and, when
 * `want` is city, its city) for the UTC day of `now` (seconds since the
 * epoch), and return the finest level not finer than `want` whose floor
 * is met, falling back one level at a time (city, region, country).
 * Counts are exact up to 64 distinct visitors per cell and a HyperLogLog
 * estimate (256 registers) beyond. Thread-safe. */
enum ap_geo_level ap_geo_floor_admit(struct ap_geo_floor *f, const struct ap_geo_record *rec,
                                     enum ap_geo_level want, uint64_t visitor, int64_t now);

/* Distinct visitors counted today in the cell of `rec` at `level` (region
 * or city); 0 for an unknown cell or a past day. Thread-safe. */
unsigned ap_geo_floor_count(struct ap_geo_floor *f, const struct ap_geo_record *rec,
                            enum ap_geo_level level, int64_t now);

void ap_geo_floor_get_stats(struct ap_geo_floor *f, struct ap_geo_floor_stats *out);

/* ---- output (geo/format.c): pure ---- */

/* "none", "continent", "country", "region", "city". */
const char *ap_geo_format_level(enum ap_geo_level level);

/* Write `r` as one JSON object into `buf` of `size` bytes,
 * NUL-terminated: {"level":"city","continent":"EU","country":"FR",
 * "region":"IDF","city":"Paris","timezone":"Europe/Paris",
 * "latitude":48.86,"longitude":2.35} with absent fields left out ("asn"
 * only when the result carries one). AP_GEO_JSON_MAX always suffices.
 * Returns the length without the NUL, or -ENOSPC (buf then holds "" when
 * size > 0). */
int ap_geo_format_json(const struct ap_geo_result *r, char *buf, size_t size);

/* Write the header value of field `f` of `r` into `buf`: the text with
 * every byte outside visible ASCII, and '%', percent-encoded ("New York"
 * becomes "New%20York", "Zürich" "Z%C3%BCrich"), so a value is always a
 * valid header token sequence. AP_GEO_HEADER_MAX always suffices. Returns
 * the length, 0 when `r` has no such value (emit no header), -ENOSPC,
 * -EINVAL for an unknown field. */
int ap_geo_format_header(const struct ap_geo_result *r, enum ap_geo_out f, char *buf, size_t size);

/* ---- the service (geo/lookup.c) ---- */

/* True for addresses that never have a location and are not looked up:
 * unspecified, loopback, RFC 1918, CGNAT 100.64.0.0/10, link-local,
 * 192.0.0.0/24, benchmarking 198.18.0.0/15, multicast, 240.0.0.0/4 and
 * broadcast; the IPv4-compatible ::/96 (with :: and ::1), ULA fc00::/7,
 * link- and site-local fe80::/9, multicast ff00::/8, discard 100::/64,
 * local-use NAT64 64:ff9b:1::/48. IPv4-mapped addresses are
 * judged as IPv4. The documentation ranges are not reserved here: the
 * demo database uses them. */
bool ap_geo_is_reserved(const struct ap_ip *ip);

/* Validate `o`, open and verify its databases (generation 1) and make the
 * floor. Blocking. The options are copied. Returns 0 with *out set, or an
 * error of ap_geo_options_validate / ap_geo_db_open with `err` set. */
int ap_geo_open(struct ap_geo **out, const struct ap_geo_options *o, char *err, size_t errlen);

/* Free everything. Every worker must have been freed first. NULL is
 * ignored. */
void ap_geo_close(struct ap_geo *g);

/* Open and verify the configured files again and swap them in under the
 * next generation. Blocking: call it off the request loops. Lookups in
 * flight finish on the old database; workers drop their cached answers
 * before their next lookup. When a new file is missing or corrupt the old
 * database keeps serving, the failure is counted and its message kept in
 * the stats, and the error of ap_geo_db_open is returned. Concurrent calls
 * are serialised. */
int ap_geo_reload(struct ap_geo *g, char *err, size_t errlen);

/* True when a database file was replaced (renamed over, rewritten or
 * removed) since the last reload attempt, successful or not, so a poller
 * calls ap_geo_reload once per new file, not once per tick. stat(2) per
 * file: off the request loops. */
bool ap_geo_is_changed(struct ap_geo *g);

void ap_geo_get_stats(struct ap_geo *g, struct ap_geo_stats *out);

/* The configured header name of `f` (copied from the options), or NULL
 * when that value is not emitted. */
const char *ap_geo_header_name(const struct ap_geo *g, enum ap_geo_out f);

/* A new reference to the database serving now; release it with
 * ap_geo_db_unref. For tools and tests; workers keep their own. */
struct ap_geo_db *ap_geo_acquire(struct ap_geo *g);

/* Make a worker handle with its own cache (o->cache_size entries). To be
 * used by one thread at a time. Returns 0, -ENOMEM. */
int ap_geo_worker_new(struct ap_geo_worker **out, struct ap_geo *g);

/* Drop the worker's database reference and cache. NULL is ignored. */
void ap_geo_worker_free(struct ap_geo_worker *w);

/* Locate `client` (the full address: with `lookup: truncated` it is
 * truncated here first), coarsen to the configured precision and apply
 * the floor, counting `visitor` (`visitor_len` bytes, e.g. a pseudonym) in
 * the cells; a NULL visitor counts the client's truncated address (/24,
 * /48 by default) instead. `now` is seconds since the epoch (UTC day of
 * the floor). The address is not kept anywhere. Returns 0 with `out`
 * filled (out->level may be below the precision: floor, or a record
 * without region or city); -ENOENT, -EADDRNOTAVAIL, -EIO, -EINVAL as
 * ap_geo_db_lookup, with `out` zeroed (level none). Allocates nothing
 * except the floor's first sight of a cell. */
int ap_geo_lookup(struct ap_geo_worker *w, const struct ap_ip *client, const void *visitor,
                  size_t visitor_len, int64_t now, struct ap_geo_result *out);

/* The generation of the database the worker used last (0 before its first
 * lookup). */
uint64_t ap_geo_worker_generation(const struct ap_geo_worker *w);

void ap_geo_worker_get_cache_stats(const struct ap_geo_worker *w, struct ap_geo_cache_stats *out);

#endif
