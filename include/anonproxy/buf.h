#ifndef ANONPROXY_BUF_H
#define ANONPROXY_BUF_H

#include "anonproxy/buf-t.h"

void ap_buf_init(struct ap_buf *b, size_t limit);
/* Append; returns 0, -ENOMEM, or -E2BIG when the limit would be passed (the
 * buffer is then unchanged). */
int ap_buf_append(struct ap_buf *b, const void *p, size_t n);
int ap_buf_appendf(struct ap_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Make room for n more bytes without changing len. */
int ap_buf_reserve(struct ap_buf *b, size_t n);
void ap_buf_reset(struct ap_buf *b); /* len = 0, memory kept */
void ap_buf_free(struct ap_buf *b);  /* memory released */

#endif
