/* Paths of body rules (proxy/engine/bodypath.c): a JSONPath subset with
 * layer steps.
 *
 *   $.device_id                 a member of the root object
 *   $.events[*].user_id         every element of an array (also .* : every member)
 *   $..distinct_id              at any depth below (within one layer)
 *   $.properties["$ip"]         a member named with any bytes ('...' works too)
 *   $.properties.$ip            the same: dotted names may hold '$'
 *   $.context.utm_*             a member whose name matches a glob ('*', '?')
 *   $.batch[0]                  one element
 *   $.data>base64json.token     the string holds base64(url) JSON
 *   $.payload>json.user.id      the string holds JSON text
 *   $.url>url.gclid             the string is a URL: steps name its query parameters
 *
 * In a form body (or after ">url") the parameters are the members of the
 * root, so "$.data>json[*].id" reads the JSON in the parameter data. */
#ifndef ANONPROXY_BODYPATH_H
#define ANONPROXY_BODYPATH_H

#include <stddef.h>

#include "anonproxy/body-t.h"

#define AP_BODYPATH_MAX_STEPS 64

/* Compile the NUL-terminated `text` into a malloc'd array of steps (*steps,
 * *nsteps; names are malloc'd too: free with ap_bodypath_free). A path
 * starts with '$', has at least one step, and does not end with a layer
 * step. Returns 0, -EINVAL with *err_off (when not NULL) at the offending
 * byte, or -ENOMEM. */
int ap_bodypath_parse(const char *text, struct ap_bodypath_step **steps, size_t *nsteps, size_t *err_off);

/* Release what ap_bodypath_parse returned. */
void ap_bodypath_free(struct ap_bodypath_step *steps, size_t nsteps);

/* Name of a layer ("json", "base64json", "url"). */
const char *ap_bodypath_layer_name(enum ap_body_layer l);

#endif
