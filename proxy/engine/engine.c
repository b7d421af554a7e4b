/* Helpers that hand the engine's pseudonyms to other rewriters (the body
 * engine, log relay) as an ap_text_fn. */
#include "anonproxy/common.h"

#include <errno.h>

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
