/* proxy/head.c built a second time with its portable word-at-a-time path
 * (AP_HEAD_PORTABLE) and every exported name prefixed with portable_, so
 * that test_head_diff.c can hold it against the SSE2 path in one binary.
 * HEAD_C_PATH lets a developer hold another version (say, the head.c of
 * an earlier commit) against the current one the same way. */
#define AP_HEAD_PORTABLE 1
#define ap_head_scan portable_head_scan
#define ap_head_parse portable_head_parse
#define ap_head_serialize portable_head_serialize
#define ap_request_add_header portable_request_add_header
#define ap_head_is_tchar portable_head_is_tchar
#define ap_slice_eq_ci portable_slice_eq_ci
#define ap_head_is_hop_by_hop portable_head_is_hop_by_hop
#ifndef HEAD_C_PATH
#define HEAD_C_PATH "../../../proxy/head.c"
#endif
#include HEAD_C_PATH

#include "head_portable.h"

size_t portable_token_span(const char *p, size_t len)
{
    return token_span(p, len);
}

size_t portable_value_span(const char *p, size_t len)
{
    return value_span(p, len);
}

size_t portable_target_span(const char *p, size_t len)
{
    return target_span(p, len);
}
