/* `anonproxy explain`: run one request from a file through the engine, as
 * a route would, and print what the backend would receive and why. Ops tune
 * rules with it. Uses exactly the code the proxy uses (head.c, route.c,
 * the engine), so what it prints is what the proxy does. */
#include "anonproxy/common.h"

#include <errno.h>
#include <time.h>

#include "anonproxy/arena.h"
#include "anonproxy/body.h"
#include "anonproxy/buf.h"
#include "anonproxy/explain.h"
#include "anonproxy/head.h"
#include "anonproxy/ip.h"
#include "anonproxy/policy.h"
#include "anonproxy/pseudo.h"
#include "anonproxy/route.h"

#define MAX_INPUT (16u * 1024u * 1024u)

static int read_all(FILE *in, struct ap_buf *b)
{
    char tmp[65536];
    size_t n;
    while ((n = fread(tmp, 1, sizeof(tmp), in)) > 0)
        if (ap_buf_append(b, tmp, n) != 0)
            return -EFBIG;
    return ferror(in) ? -EIO : 0;
}

/* Files written by hand often end lines with LF alone: turn every bare LF
 * of the head into CRLF so they can be explained. The body is untouched. */
static int normalise_head(const struct ap_buf *in, struct ap_buf *out)
{
    size_t i = 0;
    int blank = 0;
    for (; i < in->len && !blank; i++) {
        char c = in->data[i];
        if (c == '\n' && (i == 0 || in->data[i - 1] != '\r')) {
            if (ap_buf_append(out, "\r\n", 2))
                return -ENOMEM;
        } else if (ap_buf_append(out, &c, 1)) {
            return -ENOMEM;
        }
        if (c == '\n' && out->len >= 4 && memcmp(out->data + out->len - 4, "\r\n\r\n", 4) == 0)
            blank = 1;
    }
    if (!blank && ap_buf_append(out, "\r\n", 2))
        return -ENOMEM;
    return ap_buf_append(out, in->data + i, in->len - i);
}

static const char *addr_source(enum ap_clientaddr_stop s)
{
    switch (s) {
    case AP_CLIENTADDR_STOP_PEER_UNTRUSTED: return "peer (not a trusted proxy)";
    case AP_CLIENTADDR_STOP_NO_HEADER: return "peer (trusted, sent no forwarding header)";
    case AP_CLIENTADDR_STOP_UNTRUSTED_HOP: return "first untrusted hop of the forwarding header";
    case AP_CLIENTADDR_STOP_ALL_TRUSTED: return "leftmost hop (every hop trusted)";
    default: return "nearest trusted hop (forwarding header unusable)";
    }
}

int ap_explain_run(const struct ap_config *cfg, const char *route_name, const char *peer_text,
                   FILE *in, FILE *out, FILE *errout)
{
    int rc = 1;
    struct ap_buf raw, buf, ser;
    struct ap_arena arena;
    struct ap_pseudo_source src;
    struct ap_pseudo_keyring kr;
    ap_buf_init(&raw, MAX_INPUT);
    ap_buf_init(&buf, MAX_INPUT * 2);
    ap_buf_init(&ser, MAX_INPUT);
    ap_arena_init(&arena, 65536, 0);
    memset(&src, 0, sizeof(src));
    memset(&kr, 0, sizeof(kr));

    struct ap_ip peer;
    if (ap_ip_parse(&peer, peer_text, strlen(peer_text)) != 0) {
        fprintf(errout, "explain: --peer %s is not an IP address\n", peer_text);
        goto out;
    }
    if (read_all(in, &raw) != 0 || normalise_head(&raw, &buf) != 0) {
        fprintf(errout, "explain: cannot read the request (over %u bytes?)\n", MAX_INPUT);
        goto out;
    }
    const struct ap_head_limits lim = {
        .line_bytes = cfg->limits.header_line_bytes,
        .head_bytes = cfg->limits.header_bytes,
        .header_count = cfg->limits.header_count,
        .target_bytes = cfg->limits.target_bytes,
    };
    struct ap_head_scan scan;
    struct ap_head_error herr;
    memset(&scan, 0, sizeof(scan));
    int hl = ap_head_scan(&scan, buf.data, buf.len, &lim, &herr);
    if (hl <= 0) {
        fprintf(errout, "explain: the proxy would answer %d: %s\n", hl < 0 ? herr.status : 400,
                hl < 0 ? herr.reason : "incomplete request head");
        goto out;
    }
    struct ap_request req;
    if (ap_head_parse(buf.data, (size_t)hl, &req, &arena, &herr) != 0) {
        fprintf(errout, "explain: the proxy would answer %d: %s\n", herr.status, herr.reason);
        goto out;
    }
    const struct ap_config_route *route = NULL;
    if (route_name != NULL) {
        for (size_t i = 0; i < cfg->nroutes && route == NULL; i++)
            if (strcmp(cfg->routes[i].name, route_name) == 0)
                route = &cfg->routes[i];
        if (route == NULL) {
            fprintf(errout, "explain: no route named '%s'\n", route_name);
            goto out;
        }
    } else {
        route = ap_route_match(cfg, req.host, req.method, req.path);
        if (route == NULL) {
            fprintf(errout, "explain: no route matches (the proxy would answer 404)\n");
            goto out;
        }
    }
    if (route->upstream == NULL) {
        fprintf(errout, "explain: route '%s' is of type logs: its records go to log sinks\n",
                route->name);
        goto out;
    }
    if (route->policy == NULL) {
        fprintf(errout, "explain: route '%s' has no privacy policy\n", route->name);
        goto out;
    }

    /* Pseudonyms as the proxy makes them: from the secret file when one is
     * configured (same output), else from a key made for this run. */
    int prc;
    if (cfg->pseudonym_secret_file != NULL) {
        uint8_t secret[AP_PSEUDO_SECRET_MAX];
        size_t slen = 0;
        prc = ap_pseudo_secret_read_file(cfg->pseudonym_secret_file, secret, sizeof(secret), &slen);
        if (prc == 0)
            prc = ap_pseudo_source_init_secret(&src, secret, slen);
        memset(secret, 0, sizeof(secret));
    } else {
        prc = ap_pseudo_source_init_random(&src);
    }
    int64_t now = (int64_t)time(NULL);
    if (prc == 0) {
        ap_pseudo_keyring_init(&kr, &src);
        prc = ap_pseudo_keyring_prepare(&kr, now);
    }
    if (prc != 0) {
        fprintf(errout, "explain: cannot set up pseudonym keys (%d)\n", prc);
        goto out;
    }

    struct ap_engine_ctx ctx = {.keyring = &kr, .now = now, .arena = &arena, .audit = 1};
    struct ap_engine_result res;
    if (ap_engine_rewrite(route->policy, &ctx, &peer, &req, &res) != 0) {
        fprintf(errout, "explain: the engine refused the request (the proxy would answer 503)\n");
        goto out;
    }

    const char *body = buf.data + hl;
    size_t body_len = buf.len - (size_t)hl;
    if (req.content_length >= 0 && (uint64_t)req.content_length < body_len)
        body_len = (size_t)req.content_length;
    struct ap_body_out bout;
    memset(&bout, 0, sizeof(bout));
    int have_body_rules = route->body != NULL && !req.chunked;
    if (have_body_rules) {
        /* The body rules, as the proxy runs them once the body is complete. */
        struct ap_engine_pseudo ep = {route->policy, &ctx, res.scope};
        struct ap_body_ctx bctx = {
            .arena = &arena,
            .pseudo = {ap_engine_pseudo_text, &ep},
            .url_policy = &route->policy->query,
            .query = req.query.p,
            .query_len = req.query.len,
            .audit = 1,
        };
        struct ap_slice ct, ce;
        ap_engine_body_input(&req, &ct, &ce);
        ap_body_rewrite(route->body, &bctx, ct.p, ct.len, ce.p, ce.len, body, body_len, &bout);
        if (bout.verdict == AP_BODY_REJECT) {
            fprintf(errout, "explain: the proxy would answer %d: %s\n", bout.status,
                    bout.reason ? bout.reason : "body refused");
            goto out;
        }
        if (!bout.passthrough) {
            if (ap_engine_apply_body(&req, &arena, &bout) != 0) {
                fprintf(errout, "explain: out of memory\n");
                goto out;
            }
            body = bout.verdict == AP_BODY_FORWARD ? bout.body : "";
            body_len = bout.verdict == AP_BODY_FORWARD ? bout.len : 0;
        }
    }
    struct ap_slice host = req.host;
    const struct ap_config_upstream *up = route->upstream;
    if (up->kind == AP_UPSTREAM_HTTP && !up->preserve_host && up->nservers > 0)
        host = (struct ap_slice){up->servers[0].authority, strlen(up->servers[0].authority)};
    enum ap_head_framing framing =
        (req.content_length >= 0 || req.chunked) ? AP_FRAME_LENGTH : AP_FRAME_NONE;
    if (req.chunked)
        fprintf(errout, "explain: chunked bodies are shown as received, without body rules\n");
    if (ap_head_serialize(&req, host, framing, body_len, &ser) != 0) {
        fprintf(errout, "explain: request too large to print\n");
        goto out;
    }

    char ipbuf[AP_IP_STRLEN], tbuf[AP_IP_STRLEN];
    ap_ip_format(&res.client, ipbuf, sizeof(ipbuf));
    ap_ip_format(&res.client_trunc, tbuf, sizeof(tbuf));
    fprintf(out, "# route: %s (profile %s), upstream: %s\n", route->name,
            ap_policy_profile_name(route->policy->profile), up->name);
    fprintf(out, "# client address: %s, from the %s; truncated: %s; sent as: %s\n", ipbuf,
            addr_source(res.stop), tbuf, ap_policy_addr_mode_name(route->policy->addr_mode));
    fprintf(out, "# what the backend receives:\n");
    fwrite(ser.data, 1, ser.len, out);
    fwrite(body, 1, body_len, out);
    if (body_len > 0 && body[body_len - 1] != '\n')
        fputc('\n', out);
    fprintf(out, "# decisions:\n");
    fprintf(out, "# %-8s %-32s %-13s %s\n", "kind", "name", "action", "rule");
    for (size_t i = 0; i < res.naudit; i++) {
        const struct ap_audit_entry *e = &res.audit[i];
        int nl = e->name.len > 200 ? 200 : (int)e->name.len;
        fprintf(out, "  %-8s %-32.*s %-13s %s\n", ap_audit_kind_name(e->kind), nl ? nl : 1,
                nl ? e->name.p : "-", ap_audit_action_name(e->action), e->rule ? e->rule : "");
    }
    for (size_t i = 0; have_body_rules && i < bout.naudit; i++) {
        const struct ap_body_audit *e = &bout.audit[i];
        fprintf(out, "  %-8s %-32s %-13s %s%s%s\n", "body", e->path ? e->path : "-",
                ap_body_action_name(e->action), e->origin ? e->origin : "",
                e->rule ? ": " : "", e->rule ? e->rule : "");
    }
    rc = 0;
out:
    if (kr.magic != 0)
        ap_pseudo_keyring_free(&kr);
    if (src.magic != 0)
        ap_pseudo_source_free(&src);
    ap_arena_free(&arena);
    ap_buf_free(&raw);
    ap_buf_free(&buf);
    ap_buf_free(&ser);
    return rc;
}
