#ifndef ANONPROXY_SERVER_H
#define ANONPROXY_SERVER_H

#include "anonproxy/config-t.h"

/* Bind every listener in every worker, run until SIGTERM or SIGINT, drain,
 * and return the process exit code (0 after a clean stop, 1 when start-up
 * failed, with the reason logged). SIGHUP reloads `cfg_path`. The caller
 * keeps its reference on cfg. */
int ap_server_run(struct ap_config *cfg, const char *cfg_path);

#endif
