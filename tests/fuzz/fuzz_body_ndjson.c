/* Fuzz target: NDJSON bodies (one JSON document per line). See
 * fuzz_body.h for the checks. */
#include "fuzz_body.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    fuzz_body(data[0], "application/x-ndjson", NULL, NULL, (const char *)data + 1, size - 1);
    return 0;
}
