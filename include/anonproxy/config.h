#ifndef ANONPROXY_CONFIG_H
#define ANONPROXY_CONFIG_H

#include <stdio.h>

#include "anonproxy/config-t.h"

/* Parse and validate the YAML file at `path`. On success returns a config
 * with refcount 1 and sets *errors to NULL. On failure returns NULL and sets
 * *errors to a malloc'd string holding every error found, one per line, each
 * "FILE:LINE:COL: message" (the caller frees it). Never exits, never prints.
 * Blocking (reads the file, resolves upstream host names): call it off the
 * worker loops. */
struct ap_config *ap_config_load(const char *path, char **errors);

/* Same, from a memory buffer; `name` stands for FILE in messages. */
struct ap_config *ap_config_parse(const char *yaml, size_t len, const char *name,
                                  char **errors);

/* Take and drop a reference; the last unref frees everything. Thread-safe. */
struct ap_config *ap_config_ref(struct ap_config *cfg);
void ap_config_unref(struct ap_config *cfg);

/* Write the effective config, every default filled in, as YAML that
 * ap_config_parse accepts. Returns 0 or a negative errno. */
int ap_config_print(const struct ap_config *cfg, FILE *out);

#endif
