/* See ua_corpus.h. */
#include "anonproxy/common.h"

#include <errno.h>
#include <stdbool.h>

#include "ua_corpus.h"

int ua_corpus_append(struct ua_corpus *c, const char *s, size_t n)
{
    if (c->len + n + 1 > c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 1 << 20;
        while (nc < c->len + n + 1)
            nc *= 2;
        char *nd = realloc(c->data, nc);
        if (nd == NULL)
            return -ENOMEM;
        c->data = nd;
        c->cap = nc;
    }
    if (c->count == c->caplens) {
        size_t nc = c->caplens ? c->caplens * 2 : 4096;
        size_t *nl = realloc(c->lens, nc * sizeof(*nl));
        if (nl == NULL)
            return -ENOMEM;
        c->lens = nl;
        c->caplens = nc;
    }
    memcpy(c->data + c->len, s, n);
    c->data[c->len + n] = '\0';
    c->len += n + 1;
    c->lens[c->count++] = n;
    return 0;
}

char *ua_corpus_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap);
    while (buf != NULL) {
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0)
            break;
        if (n + 1 == cap) {
            char *nb = realloc(buf, cap * 2);
            if (nb == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf != NULL)
        buf[n] = '\0';
    *len = n;
    return buf;
}

/* Decode the JSON string starting after the opening quote at *p (escapes
 * \uXXXX become UTF-8; surrogate pairs are combined). Advances *p past the
 * closing quote. */
static size_t json_string(const char **p, char *out, size_t outcap)
{
    const char *s = *p;
    size_t o = 0;
    while (*s && *s != '"') {
        unsigned cp;
        if (*s == '\\' && s[1]) {
            s++;
            switch (*s) {
            case 'n': cp = '\n'; break;
            case 't': cp = '\t'; break;
            case 'r': cp = '\r'; break;
            case 'b': cp = '\b'; break;
            case 'f': cp = '\f'; break;
            case 'u': {
                char hex[5] = {0};
                memcpy(hex, s + 1, 4);
                cp = (unsigned)strtoul(hex, NULL, 16);
                s += 4;
                if (cp >= 0xd800 && cp < 0xdc00 && s[1] == '\\' && s[2] == 'u') {
                    memcpy(hex, s + 3, 4);
                    unsigned lo = (unsigned)strtoul(hex, NULL, 16);
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                    s += 6;
                }
                break;
            }
            default: cp = (unsigned char)*s; break;
            }
            s++;
        } else {
            cp = (unsigned char)*s++;
            if (o < outcap)
                out[o++] = (char)cp;
            continue;
        }
        char u[4];
        size_t un;
        if (cp < 0x80) {
            u[0] = (char)cp;
            un = 1;
        } else if (cp < 0x800) {
            u[0] = (char)(0xc0 | (cp >> 6));
            u[1] = (char)(0x80 | (cp & 0x3f));
            un = 2;
        } else if (cp < 0x10000) {
            u[0] = (char)(0xe0 | (cp >> 12));
            u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
            u[2] = (char)(0x80 | (cp & 0x3f));
            un = 3;
        } else {
            u[0] = (char)(0xf0 | (cp >> 18));
            u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
            u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
            u[3] = (char)(0x80 | (cp & 0x3f));
            un = 4;
        }
        for (size_t k = 0; k < un && o < outcap; k++)
            out[o++] = u[k];
    }
    if (*s == '"')
        s++;
    *p = s;
    return o;
}

/* Collect the string values of `key` (or, with `array`, the strings of the
 * array that is its value) everywhere in a JSON text. */
static int collect(struct ua_corpus *c, const char *text, const char *key, bool array, size_t *count)
{
    static char buf[1 << 16];
    char pat[64];
    snprintf(pat, sizeof(pat), "\"%s\"", key);
    const char *p = text;
    while ((p = strstr(p, pat)) != NULL) {
        p += strlen(pat);
        while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t' || *p == ':')
            p++;
        if (!array) {
            if (*p != '"')
                continue;
            p++;
            size_t n = json_string(&p, buf, sizeof(buf));
            if (ua_corpus_append(c, buf, n) < 0)
                return -ENOMEM;
            (*count)++;
            continue;
        }
        if (*p != '[')
            continue;
        p++;
        for (;;) {
            while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t' || *p == ',')
                p++;
            if (*p != '"')
                break;
            p++;
            size_t n = json_string(&p, buf, sizeof(buf));
            if (ua_corpus_append(c, buf, n) < 0)
                return -ENOMEM;
            (*count)++;
        }
    }
    return 0;
}

const char *ua_corpus_load(struct ua_corpus *c, char *const paths[3])
{
    static const struct {
        const char *key;
        bool array;
    } how[3] = {{"userAgent", false}, {"instances", true}, {"userAgent", false}};
    for (int k = 0; k < 3; k++) {
        size_t len;
        char *text = paths[k] ? ua_corpus_read_file(paths[k], &len) : NULL;
        if (text == NULL)
            return paths[k] ? paths[k] : "(no path given)";
        int rc = collect(c, text, how[k].key, how[k].array, &c->per_file[k]);
        free(text);
        if (rc < 0)
            return "(out of memory)";
    }
    return NULL;
}

void ua_corpus_free(struct ua_corpus *c)
{
    free(c->data);
    free(c->lens);
    memset(c, 0, sizeof(*c));
}
