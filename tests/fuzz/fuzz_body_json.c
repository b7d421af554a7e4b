/* Fuzz target: JSON bodies (application/json, and text/plain that the
 * rewriter sniffs). See fuzz_body.h for the checks. */
#include "fuzz_body.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *ct = (data[0] & 0x80) ? "text/plain" : "application/json";
    fuzz_body(data[0], ct, NULL, NULL, (const char *)data + 1, size - 1);
    return 0;
}
