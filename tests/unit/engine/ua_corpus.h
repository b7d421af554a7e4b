/* The User-Agent corpus of the UA tests: the strings of the three npm lists
 * that tests/fetch-test-data.sh installs (user-agents, crawler-user-agents,
 * random-useragent), decoded from their JSON in file order. Shared by
 * test_ua_corpus and test_ua_golden, which must see the same strings. */
#ifndef ANONPROXY_TEST_UA_CORPUS_H
#define ANONPROXY_TEST_UA_CORPUS_H

#include <stddef.h>

/* Every string, NUL-terminated, in one growing buffer; lens[k] is the byte
 * length of string k (an inline input may hold a NUL). */
struct ua_corpus {
    char *data;
    size_t len, cap;
    size_t *lens;
    size_t count, caplens;
    size_t per_file[3]; /* strings taken from each list file */
};

/* Append a string of `n` bytes. 0 or -ENOMEM. */
int ua_corpus_append(struct ua_corpus *c, const char *s, size_t n);

/* A whole file, NUL-terminated; NULL when it cannot be read. */
char *ua_corpus_read_file(const char *path, size_t *len);

/* Load the three lists, in this order: user-agents.json,
 * crawler-user-agents.json, useragent-data.json. Returns NULL, or the path
 * that could not be read, or "(out of memory)". */
const char *ua_corpus_load(struct ua_corpus *c, char *const paths[3]);

void ua_corpus_free(struct ua_corpus *c);

#endif
