/* The portable build of proxy/head.c (head_portable.c), for tests. */
#ifndef TESTS_HEAD_PORTABLE_H
#define TESTS_HEAD_PORTABLE_H

#include <stddef.h>

#include "anonproxy/arena-t.h"
#include "anonproxy/head-t.h"
#include "anonproxy/http-t.h"

int portable_head_scan(struct ap_head_scan *s, const char *buf, size_t len,
                       const struct ap_head_limits *lim, struct ap_head_error *err);
int portable_head_parse(const char *buf, size_t len, struct ap_request *req,
                        struct ap_arena *arena, struct ap_head_error *err);
size_t portable_token_span(const char *p, size_t len);
size_t portable_value_span(const char *p, size_t len);
size_t portable_target_span(const char *p, size_t len);

#endif
