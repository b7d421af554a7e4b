/* Fuzz target of proxy/engine/logscrub.c. The first input byte picks the
 * address mode and whether pseudonym keys exist; the rest is one log
 * record. Checks, besides the sanitizers: an accepted record gives valid
 * JSON, scrubbing that output again is accepted too, a refused record
 * leaves the output buffer as it was, and free text never fails. */
#include "anonproxy/common.h"

#include <errno.h>
#include <time.h>

#include "anonproxy/buf.h"
#include "anonproxy/json.h"
#include "anonproxy/logscrub.h"
#include "anonproxy/policy.h"
#include "anonproxy/pseudo.h"

static struct ap_pseudo_source src;
static struct ap_pseudo_keyring kr;
static struct ap_policy pol;
static int ready;

static void setup(void)
{
    static const uint8_t secret[] = "fuzzing secret for logscrub 0123";
    if (ap_pseudo_source_init_secret(&src, secret, 32) != 0)
        abort();
    ap_pseudo_keyring_init(&kr, &src);
    if (ap_pseudo_keyring_prepare(&kr, 1714521600) != 0)
        abort();
    if (ap_policy_init(&pol, "fuzz", AP_PROFILE_BALANCED) != 0 || ap_policy_finish(&pol) != 0)
        abort();
    ready = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ready)
        setup();
    if (size < 1)
        return 0;
    pol.addr_mode = (enum ap_addr_mode)(data[0] & 3);
    static struct ap_logscrub_rule rules[] = {{"keep*", AP_LOGSCRUB_KEEP}, {"x", AP_LOGSCRUB_PSEUDO}};
    struct ap_logscrub_ctx ctx = {
        .policy = &pol,
        .rules = rules,
        .nrules = (data[0] & 4) ? 2 : 0,
        .keyring = (data[0] & 8) ? NULL : &kr,
        .now = 1714521600,
        .scope = "fuzz",
    };
    const char *in = (const char *)data + 1;
    size_t len = size - 1;
    struct ap_buf out;
    ap_buf_init(&out, 1u << 22);
    AP_BUG_ON(ap_buf_append(&out, "X", 1) != 0);
    int rc = ap_logscrub_json(&ctx, in, len, &out);
    if (rc != 0) {
        AP_BUG_ON(out.len != 1);
    } else {
        AP_BUG_ON(ap_json_validate(out.data + 1, out.len - 1, AP_LOGSCRUB_MAX_DEPTH + 1) != 0);
        struct ap_buf again;
        ap_buf_init(&again, 1u << 23);
        AP_BUG_ON(ap_logscrub_json(&ctx, out.data + 1, out.len - 1, &again) != 0);
        ap_buf_free(&again);
    }
    ap_buf_reset(&out);
    AP_BUG_ON(ap_logscrub_text(&ctx, in, len, &out) != 0);
    ap_buf_free(&out);
    return 0;
}
