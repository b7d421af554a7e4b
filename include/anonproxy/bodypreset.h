/* Vendor presets of body rules (proxy/engine/bodypreset.c): which fields of
 * each analytics vendor's wire format carry identifiers, addresses, URLs and
 * User-Agents, and what happens to them. docs/presets.md lists every rule
 * and the fixture it was read from. */
#ifndef ANONPROXY_BODYPRESET_H
#define ANONPROXY_BODYPRESET_H

#include <stddef.h>

#include "anonproxy/body-t.h"

/* Append the rules (and query flags) of the preset `vendor` to `pol`, after
 * the rules already there (a route's own rules therefore win). Names:
 * posthog, segment, rudderstack, amplitude, mixpanel, snowplow, plausible,
 * umami, matomo, ga4. Returns 0, -ENOENT (no such preset), or an error of
 * ap_body_policy_add_rule. Configuration time: it mallocs. */
int ap_bodypreset_add(struct ap_body_policy *pol, const char *vendor);

/* The preset names, NULL-terminated, for help texts and tests. */
const char *const *ap_bodypreset_names(void);

#endif
