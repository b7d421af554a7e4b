/* Internal interface of proxy/config.c for unit tests and the fuzzer. Not
 * part of the public API: production code calls ap_config_load or
 * ap_config_parse from anonproxy/config.h. */
#ifndef ANONPROXY_CONFIG_INT_H
#define ANONPROXY_CONFIG_INT_H

#include <stddef.h>
#include <sys/socket.h>

#include "anonproxy/config-t.h"

/* Options of ap_config__parse. A zeroed struct gives the behaviour of
 * ap_config_parse. */
struct ap_config__opts {
    /* Resolves the upstream host name `host` (never a numeric literal: those
     * are parsed without it) to one address; the port is filled in by the
     * caller. Returns 0, or a negative value and a static message in *why.
     * NULL means getaddrinfo(3). Tests and the fuzzer install a fake one so
     * that no input can make them wait on DNS. The loader calls it at most
     * once per distinct host name. */
    int (*resolve)(void *ctx, const char *host, struct sockaddr_storage *addr,
                   socklen_t *addrlen, const char **why);
    void *ctx;
    /* Number of CPUs that "workers: auto" stands for; 0 asks sysconf(3). */
    unsigned ncpus;
};

/* ap_config_parse with options; `opts` may be NULL. Same contract otherwise. */
struct ap_config *ap_config__parse(const char *yaml, size_t len, const char *name,
                                   const struct ap_config__opts *opts, char **errors);

/* At most this many errors are reported; one more line says the rest were
 * dropped. It bounds the output of hostile inputs (alias fan-out). */
#define AP_CONFIG__MAX_ERRORS 100

#endif
