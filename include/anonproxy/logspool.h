/* On-disk spool of a log sink: append-only segment files with a checksum
 * per record, read back in order, acknowledged as the sink delivers.
 *
 * Format. A segment "<16 hex>.seg" is a run of records, each a 32-byte
 * little-endian header followed by its payload:
 *   magic "APR1" (4) | payload length (4) | sequence number (8) |
 *   time in microseconds (8) | syslog PRI (1) | zero (3) |
 *   CRC-32 (zlib) of the 28 bytes before it and of the payload (4).
 * A reader that meets a bad checksum or a length past the end skips ahead
 * to the next header that checks (counted in `corrupt`), so a torn write
 * at the end after a crash, or a damaged sector, costs only what it hit.
 * The file "ack" holds "<segment id> <offset>": records before that offset
 * of that segment were delivered; segments before it are deleted once
 * they are. "lock" is flock(2)ed while a process uses the directory.
 *
 * Every function does blocking file I/O: call them from the logger thread
 * or at start-up, never from a worker loop. Errors are negative errno
 * values; nothing here aborts on bad input or a full disk. */
#ifndef ANONPROXY_LOGSPOOL_H
#define ANONPROXY_LOGSPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "anonproxy/logspool-t.h"

/* Open (creating it with mode 0750 and its parents) the spool directory
 * `dir`, lock it, and load what an earlier run left: the segments, the
 * acknowledged position, the last sequence number. A torn record at the
 * end of the last segment is cut off. Returns 0, -EBUSY (another process
 * holds the lock), -ENOMEM, or the errno of a failed system call. */
int ap_logspool_open(struct ap_logspool *sp, const char *dir, const struct ap_logspool_opts *opts);

/* Flush, unlock and release. Records stay on disk for the next open. */
void ap_logspool_close(struct ap_logspool *sp);

/* Append one record at the end. `it->seq` must be greater than every
 * sequence number stored (-EINVAL otherwise). Returns 0, -EDQUOT (the
 * spool would pass opts.max_bytes), -EMSGSIZE (payload over
 * AP_LOGSPOOL_MAX_RECORD), -ENOSPC or another write error (the partial
 * record is cut off again, so the file stays readable). */
int ap_logspool_append(struct ap_logspool *sp, const struct ap_logspool_item *it);

/* Write `n` records, sorted by sequence number, into a new segment that
 * sorts before every segment present: for records older than anything
 * spooled (a memory queue saved at shutdown or when its sink went down).
 * The last sequence number must be lower than the first segment's id
 * (-EINVAL otherwise). The reader is rewound. Returns 0 or as
 * ap_logspool_append; on failure no new segment is left behind. */
int ap_logspool_prepend(struct ap_logspool *sp, const struct ap_logspool_item *items, size_t n);

/* fdatasync what was appended since the last call (and the ack file).
 * Returns 0 or the errno of fdatasync. */
int ap_logspool_sync(struct ap_logspool *sp);

/* Read the next record not yet read since the last rewind (or open) into
 * *it (its data points into the spool's buffer until the next call) and
 * its end position into *pos. Returns 1, 0 when every record has been
 * read, or a negative errno. */
int ap_logspool_read(struct ap_logspool *sp, struct ap_logspool_item *it, struct ap_logspool_pos *pos);

/* Make the next read start again at the first record not acknowledged. */
void ap_logspool_rewind(struct ap_logspool *sp);

/* Every record up to `pos` was delivered: persist that, and delete the
 * segments that are wholly delivered. Returns 0 or a negative errno (the
 * records then come again after a restart: duplicates, never losses). */
int ap_logspool_ack(struct ap_logspool *sp, const struct ap_logspool_pos *pos);

/* True when the spool holds no record that is not acknowledged. */
bool ap_logspool_is_empty(const struct ap_logspool *sp);

/* True when every stored record has been read since the last rewind. */
bool ap_logspool_is_drained(const struct ap_logspool *sp);

/* Encode a record header into `out` (AP_LOGSPOOL_HDR bytes), checksum
 * included. Exposed for the unit tests that forge damaged files. */
void ap_logspool_encode_header(unsigned char out[AP_LOGSPOOL_HDR], const struct ap_logspool_item *it);

#endif
