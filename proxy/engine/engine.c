/* Glue between the request engine and the other rewriters: pseudonyms as
 * an ap_text_fn (body engine, log relay), and a body verdict applied to
 * the request's headers and target. Pure, like the rest of the engine. */
#include "anonproxy/common.h"

#include <errno.h>

#include "anonproxy/arena.h"
#include "anonproxy/body.h"
#include "anonproxy/head.h"
#include "anonproxy/policy.h"
#include "anonproxy/pseudo.h"

int ap_engine_pseudo_text(void *vctx, const char *val, size_t len, char *out, size_t outcap)
{
    const struct ap_engine_pseudo *p = vctx;
    char hex[AP_PSEUDO_HEX_MAX];
    if (p->ctx->keyring == NULL)
        return -ENOKEY; /* no keys: the rewriter drops the value */
    int n = ap_pseudo_hex(p->ctx->keyring, p->ctx->now, p->scope, (struct ap_slice){val, len},
                          p->pol->pseudo_bits, hex, sizeof(hex));
    if (n < 0)
        return n;
    if ((size_t)n > outcap)
        return -ENOBUFS;
    memcpy(out, hex, (size_t)n);
    return n;
}

static struct ap_header *find_header(struct ap_request *req, const char *name)
{
    for (size_t i = 0; i < req->nheaders; i++) {
        struct ap_header *h = &req->headers[i];
        if (!(h->flags & (AP_HEADER_DROPPED | AP_HEADER_CONNECTION_NAMED)) &&
            ap_slice_eq_ci(h->name, name))
            return h;
    }
    return NULL;
}

int ap_engine_body_input(struct ap_request *req, struct ap_slice *content_type,
                         struct ap_slice *content_encoding)
{
    struct ap_header *ct = find_header(req, "content-type");
    struct ap_header *ce = find_header(req, "content-encoding");
    *content_type = ct ? ct->value : (struct ap_slice){NULL, 0};
    *content_encoding = ce ? ce->value : (struct ap_slice){NULL, 0};
    return 0;
}

int ap_engine_apply_body(struct ap_request *req, struct ap_arena *arena, const struct ap_body_out *out)
{
    if (out->passthrough)
        return 0;
    /* Every Content-Encoding goes; the body's own one comes back once. */
    for (size_t i = 0; i < req->nheaders; i++)
        if (ap_slice_eq_ci(req->headers[i].name, "content-encoding"))
            req->headers[i].flags |= AP_HEADER_DROPPED;
    if (out->verdict == AP_BODY_FORWARD && out->content_encoding != NULL) {
        const char *v = out->content_encoding;
        if (ap_request_add_header(req, arena, "Content-Encoding", 16, v, strlen(v)) != 0)
            return -ENOMEM;
    }
    if (out->strip_param == NULL || req->query.p == NULL)
        return 0;
    const char *tend = req->target.p + req->target.len;
    struct ap_slice t = {req->path.p, (size_t)(tend - req->path.p)};
    char *buf = ap_arena_alloc(arena, t.len + 1);
    size_t n = 0;
    if (buf == NULL || ap_body_strip_param(t.p, t.len, out->strip_param, buf, t.len + 1, &n) != 0)
        return -ENOMEM;
    req->target = (struct ap_slice){buf, n};
    req->path = req->target;
    const char *q = memchr(buf, '?', n);
    if (q != NULL) {
        req->path.len = (size_t)(q - buf);
        req->query = (struct ap_slice){q + 1, (size_t)(buf + n - q - 1)};
    } else {
        req->query = (struct ap_slice){NULL, 0};
    }
    return 0;
}
