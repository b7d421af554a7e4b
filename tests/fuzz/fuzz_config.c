/* Fuzz target for the configuration loader (proxy/config.c).
 *
 * Host names never reach DNS: the fuzzer installs a fake resolver through
 * the internal ap_config__parse (see proxy/config-int.h) that maps every
 * name to 127.0.0.1 except names under ".invalid", which fail. That keeps
 * runs fast and deterministic while still covering both outcomes.
 *
 * Beyond "no crash, no leak", it checks a property: whatever parses must
 * print (ap_config_print) as YAML that parses again and prints identically. */
#include "anonproxy/common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>

#include "anonproxy/config.h"
#include "config-int.h"

static int fake_resolve(void *ctx, const char *host, struct sockaddr_storage *ss,
                        socklen_t *len, const char **why)
{
    (void)ctx;
    size_t n = strlen(host);
    if (n >= 8 && strcmp(host + n - 8, ".invalid") == 0) {
        *why = "no such host (fuzz resolver)";
        return -ENOENT;
    }
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    memset(ss, 0, sizeof(*ss));
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    *len = sizeof(*sin);
    return 0;
}

static char *print_config(const struct ap_config *cfg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (f == NULL)
        abort();
    if (ap_config_print(cfg, f) != 0)
        abort();
    fclose(f);
    return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct ap_config__opts opts = { .resolve = fake_resolve, .ncpus = 2 };
    char *errors = NULL;
    struct ap_config *cfg =
        ap_config__parse((const char *)data, size, "fuzz.yaml", &opts, &errors);
    if (cfg == NULL) {
        /* Failure always explains itself. */
        if (errors == NULL || errors[0] == '\0')
            abort();
        free(errors);
        return 0;
    }
    if (errors != NULL)
        abort();

    char *first = print_config(cfg);
    struct ap_config *again = ap_config__parse(first, strlen(first), "fuzz.yaml", &opts, &errors);
    if (again == NULL) {
        fprintf(stderr, "printed config does not parse:\n%s\n--- errors:\n%s", first, errors);
        abort();
    }
    char *second = print_config(again);
    if (strcmp(first, second) != 0) {
        fprintf(stderr, "print is not stable:\n%s\n--- vs:\n%s", first, second);
        abort();
    }
    free(first);
    free(second);
    ap_config_ref(cfg);
    ap_config_unref(cfg);
    ap_config_unref(cfg);
    ap_config_unref(again);
    return 0;
}
