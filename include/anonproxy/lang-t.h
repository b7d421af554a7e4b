/* Types of the Accept-Language reducer (proxy/engine/lang.c). */
#ifndef ANONPROXY_LANG_T_H
#define ANONPROXY_LANG_T_H

/* Longest reduced Accept-Language plus its NUL: a primary language subtag is
 * two or three letters. */
#define AP_LANG_REDUCED_MAX 4

#endif
