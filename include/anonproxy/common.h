/* Common macros: assertions that stay on in every build, magic checks, and
 * the banned-function poison list. Every .c file of the project includes it
 * first. */
#ifndef ANONPROXY_COMMON_H
#define ANONPROXY_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define AP_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* AP_BUG_ON stays on in release builds (HAProxy BUG_ON, Varnish assert). A
 * broken invariant is a bug: abort loudly instead of forwarding garbage. */
#define AP_BUG_ON(cond)                                                      \
    do {                                                                     \
        if (__builtin_expect(!!(cond), 0)) {                                 \
            fprintf(stderr, "BUG at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                         \
        }                                                                    \
    } while (0)

/* Long-lived structs carry a magic number that API entry points check. */
#define AP_CHECK_OBJ(ptr, m) AP_BUG_ON((ptr) == NULL || (ptr)->magic != (m))

/* Banned functions (curl checksrc): unbounded or locale-surprising. */
#ifndef AP_ALLOW_BANNED
#pragma GCC poison strcpy strcat sprintf vsprintf gets strtok atoi atol
#endif

#endif
