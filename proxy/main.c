/* anonproxy command line. */
#include "anonproxy/common.h"

#include "anonproxy/config.h"
#include "anonproxy/explain.h"
#include "anonproxy/log.h"
#include "anonproxy/server.h"

#ifndef ANONPROXY_VERSION
#define ANONPROXY_VERSION "0.1.0"
#endif

#define DEFAULT_CONFIG "/etc/anonproxy/anonproxy.yaml"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: anonproxy [-t] [-c FILE]\n"
            "       anonproxy --print-config -c FILE\n"
            "       anonproxy explain -c FILE [--route NAME] [--peer ADDR] < request.http\n"
            "\n"
            "  -c, --config FILE   configuration file (default " DEFAULT_CONFIG ")\n"
            "  -t, --test          check the configuration and exit: 0 when valid, 1 otherwise;\n"
            "                      every error is printed as FILE:LINE:COL: message\n"
            "      --print-config  print the effective configuration, defaults filled in\n"
            "  explain             read one request on standard input and print it as the\n"
            "                      backend would receive it, with every rule's decision;\n"
            "                      --route NAME forces a route, --peer ADDR sets the\n"
            "                      connection's address (default 203.0.113.10)\n"
            "  -v, --version       print the version and exit\n"
            "  -h, --help          print this help and exit\n"
            "\n"
            "Signals: SIGTERM or SIGINT stop accepting, finish requests in flight\n"
            "(timeouts.drain) and exit 0. SIGHUP reloads the configuration: an invalid\n"
            "one is logged (FILE:LINE:COL) and the running one keeps serving.\n");
}

int main(int argc, char **argv)
{
    const char *path = DEFAULT_CONFIG;
    int test = 0, print = 0, explain = 0;
    const char *route = NULL, *peer = "203.0.113.10";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i == 1 && strcmp(a, "explain") == 0) {
            explain = 1;
        } else if (explain && (strcmp(a, "--route") == 0 || strcmp(a, "--peer") == 0)) {
            if (++i == argc) {
                fprintf(stderr, "anonproxy: %s needs a value\n", a);
                return 2;
            }
            if (a[2] == 'r')
                route = argv[i];
            else
                peer = argv[i];
        } else if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
            if (++i == argc) {
                fprintf(stderr, "anonproxy: %s needs a file name\n", a);
                return 2;
            }
            path = argv[i];
        } else if (strncmp(a, "--config=", 9) == 0) {
            path = a + 9;
        } else if (strcmp(a, "-t") == 0 || strcmp(a, "--test") == 0) {
            test = 1;
        } else if (strcmp(a, "--print-config") == 0) {
            print = 1;
        } else if (strcmp(a, "-v") == 0 || strcmp(a, "--version") == 0) {
            printf("anonproxy %s\n", ANONPROXY_VERSION);
            return 0;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "anonproxy: unknown argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }

    char *errors = NULL;
    struct ap_config *cfg = ap_config_load(path, &errors);
    if (cfg == NULL) {
        fputs(errors ? errors : "configuration failed to load\n", stderr);
        if (errors && errors[0] && errors[strlen(errors) - 1] != '\n')
            fputc('\n', stderr);
        free(errors);
        if (test)
            fprintf(stderr, "%s: configuration is invalid\n", path);
        return 1;
    }
    if (test) {
        printf("%s: configuration is valid\n", path);
        ap_config_unref(cfg);
        return 0;
    }
    if (explain) {
        int rc = ap_explain_run(cfg, route, peer, stdin, stdout, stderr);
        ap_config_unref(cfg);
        return rc;
    }
    if (print) {
        int rc = ap_config_print(cfg, stdout);
        ap_config_unref(cfg);
        return rc == 0 ? 0 : 1;
    }
    if (cfg->log_level != NULL)
        ap_log_set_level(cfg->log_level);
    int rc = ap_server_run(cfg, path);
    ap_config_unref(cfg);
    return rc;
}
