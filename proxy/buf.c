#include "anonproxy/common.h"

#include <errno.h>
#include <stdarg.h>

#include "anonproxy/buf.h"

void ap_buf_init(struct ap_buf *b, size_t limit)
{
    b->data = NULL;
    b->len = b->cap = 0;
    b->limit = limit;
}

int ap_buf_reserve(struct ap_buf *b, size_t n)
{
    if (n > b->limit || b->len > b->limit - n)
        return -E2BIG;
    if (b->len + n <= b->cap)
        return 0;
    size_t nc = b->cap ? b->cap : 256;
    while (nc < b->len + n)
        nc *= 2;
    if (nc > b->limit)
        nc = b->limit;
    char *nd = realloc(b->data, nc);
    if (nd == NULL)
        return -ENOMEM;
    b->data = nd;
    b->cap = nc;
    return 0;
}

int ap_buf_append(struct ap_buf *b, const void *p, size_t n)
{
    int rc = ap_buf_reserve(b, n);
    if (rc != 0)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int ap_buf_appendf(struct ap_buf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(tmp))
        return -E2BIG;
    return ap_buf_append(b, tmp, (size_t)n);
}

void ap_buf_reset(struct ap_buf *b)
{
    b->len = 0;
}

void ap_buf_free(struct ap_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
