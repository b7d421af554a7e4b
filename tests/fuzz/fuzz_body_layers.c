/* Fuzz target: encoded layers. The input is the inner document; it is put
 * into a JSON string (>json), into base64 (>base64json, both alphabets), a
 * URL (>url) and a form value, so the fuzzer works on the layer's contents
 * rather than on getting the outer encoding right. See fuzz_body.h. */
#include "fuzz_body.h"

#include "anonproxy/base64.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536)
        return 0;
    const char *in = (const char *)data + 1;
    size_t len = size - 1;
    uint8_t flags = data[0];
    size_t cap = 8 * len + 256;
    char *body = malloc(cap), *tmp = malloc(cap);
    if (body == NULL || tmp == NULL)
        goto out;
    size_t n;
    switch (flags >> 6) {
    case 0: /* {"co": "<json-escaped input>"} */
        n = (size_t)snprintf(body, cap, "{\"co\":\"");
        n += ap_json_escape(in, len, body + n);
        n += (size_t)snprintf(body + n, cap - n, "\"}");
        fuzz_body(flags, "application/json", NULL, NULL, body, n);
        break;
    case 1: /* {"data": "<base64 of input>"} */
        n = (size_t)snprintf(body, cap, "{\"data\":\"");
        n += ap_base64_encode(in, len, flags & 3, body + n);
        n += (size_t)snprintf(body + n, cap - n, "\"}");
        fuzz_body(flags, "application/json", NULL, NULL, body, n);
        break;
    case 2: /* {"u": "https://x.example/p?<input>"} */
        n = (size_t)snprintf(body, cap, "{\"u\":\"https://x.example/p?");
        n += ap_json_escape(in, len, body + n);
        n += (size_t)snprintf(body + n, cap - n, "\"}");
        fuzz_body(flags, "application/json", NULL, NULL, body, n);
        break;
    default: { /* data=<percent-encoded base64 of input>&u=<input> */
        size_t bn = ap_base64_encode(in, len, 0, tmp);
        n = (size_t)snprintf(body, cap, "data=");
        for (size_t i = 0; i < bn; i++) {
            unsigned char c = (unsigned char)tmp[i];
            n += (size_t)(c == '+' || c == '/' || c == '='
                              ? snprintf(body + n, cap - n, "%%%02X", c)
                              : snprintf(body + n, cap - n, "%c", c));
        }
        n += (size_t)snprintf(body + n, cap - n, "&u=");
        memcpy(body + n, in, len < cap - n ? len : cap - n);
        n += len < cap - n ? len : cap - n;
        fuzz_body(flags, "application/x-www-form-urlencoded", NULL, NULL, body, n);
        break;
    }
    }
out:
    free(body);
    free(tmp);
    return 0;
}
