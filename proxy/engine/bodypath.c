/* The path compiler. Paths are written by people in configuration files,
 * so every error names the byte where the path stopped making sense. */
#include "anonproxy/common.h"

#include <errno.h>

#include "anonproxy/bodypath.h"

static const char *const layer_names[AP_BODY_NLAYERS] = {"", "json", "base64json", "url"};

const char *ap_bodypath_layer_name(enum ap_body_layer l)
{
    return (unsigned)l < AP_BODY_NLAYERS ? layer_names[l] : "?";
}

void ap_bodypath_free(struct ap_bodypath_step *steps, size_t nsteps)
{
    if (steps == NULL)
        return;
    for (size_t i = 0; i < nsteps; i++)
        free((char *)steps[i].name);
    free(steps);
}

/* Bytes that end a dotted name. */
static int ends_name(char c)
{
    return c == '\0' || c == '.' || c == '[' || c == ']' || c == '>' || c == '\'' || c == '"' ||
           c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static char *dup_n(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p != NULL) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

/* Parse a quoted name at text[*i] (the quote), with \" \' \\ escapes. */
static int quoted(const char *text, size_t *i, char **name, size_t *len)
{
    char q = text[*i];
    size_t j = *i + 1, n = 0;
    /* First pass: length and end. */
    while (text[j] != q) {
        if (text[j] == '\0')
            return -EINVAL;
        if (text[j] == '\\') {
            j++;
            if (text[j] != '\\' && text[j] != '"' && text[j] != '\'')
                return -EINVAL;
        }
        j++;
        n++;
    }
    char *p = malloc(n + 1);
    if (p == NULL)
        return -ENOMEM;
    size_t k = *i + 1, o = 0;
    while (text[k] != q) {
        if (text[k] == '\\')
            k++;
        p[o++] = text[k++];
    }
    p[o] = '\0';
    *name = p;
    *len = n;
    *i = j + 1;
    return 0;
}

int ap_bodypath_parse(const char *text, struct ap_bodypath_step **steps_out, size_t *nsteps_out,
                      size_t *err_off)
{
    struct ap_bodypath_step *steps = NULL;
    size_t n = 0;
    size_t i = 0;
    int rc = 0;
    *steps_out = NULL;
    *nsteps_out = 0;
    if (text == NULL) {
        if (err_off)
            *err_off = 0;
        return -EINVAL;
    }
    if (text[0] != '$') {
        rc = -EINVAL;
        goto fail;
    }
    steps = calloc(AP_BODYPATH_MAX_STEPS, sizeof(*steps));
    if (steps == NULL)
        return -ENOMEM;
    i = 1;
    while (text[i] != '\0') {
        if (n == AP_BODYPATH_MAX_STEPS) {
            rc = -EINVAL;
            goto fail;
        }
        struct ap_bodypath_step *st = &steps[n];
        memset(st, 0, sizeof(*st));
        if (text[i] == '>') {
            size_t j = i + 1;
            while ((text[j] >= 'a' && text[j] <= 'z') || (text[j] >= '0' && text[j] <= '9'))
                j++;
            for (unsigned l = 1; l < AP_BODY_NLAYERS; l++) {
                if (strlen(layer_names[l]) == j - i - 1 && memcmp(text + i + 1, layer_names[l], j - i - 1) == 0) {
                    st->op = AP_BODYPATH_LAYER;
                    st->layer = (enum ap_body_layer)l;
                }
            }
            if (st->op != AP_BODYPATH_LAYER) {
                i++;
                rc = -EINVAL;
                goto fail;
            }
            if (!(text[j] == '\0' || text[j] == '.' || text[j] == '[')) {
                /* A layer holds a document: a step into it must follow. */
                i = j;
                rc = -EINVAL;
                goto fail;
            }
            i = j;
            n++;
            continue;
        }
        if (text[i] == '.') {
            i++;
            if (text[i] == '.') {
                st->recursive = 1;
                i++;
                if (text[i] == '[')
                    goto bracket;
            }
            if (text[i] == '*' && ends_name(text[i + 1])) {
                st->op = AP_BODYPATH_ANY;
                i++;
                n++;
                continue;
            }
            size_t s = i;
            while (!ends_name(text[i]))
                i++;
            if (i == s) {
                rc = -EINVAL;
                goto fail;
            }
            char *name = dup_n(text + s, i - s);
            if (name == NULL) {
                rc = -ENOMEM;
                goto fail;
            }
            st->name = name;
            st->name_len = i - s;
            st->op = strpbrk(name, "*?") ? AP_BODYPATH_GLOB : AP_BODYPATH_KEY;
            n++;
            continue;
        }
        if (text[i] == '[') {
bracket:
            i++;
            if (text[i] == '*' && text[i + 1] == ']') {
                st->op = AP_BODYPATH_ANY;
                i += 2;
            } else if (text[i] == '"' || text[i] == '\'') {
                char *name;
                size_t len;
                size_t q = i;
                rc = quoted(text, &i, &name, &len);
                if (rc != 0) {
                    i = q;
                    goto fail;
                }
                st->op = AP_BODYPATH_KEY;
                st->name = name;
                st->name_len = len;
                if (text[i] != ']') {
                    n++; /* the name is freed with the others */
                    rc = -EINVAL;
                    goto fail;
                }
                i++;
            } else if (text[i] >= '0' && text[i] <= '9') {
                uint64_t v = 0;
                size_t s = i;
                while (text[i] >= '0' && text[i] <= '9' && i - s < 10)
                    v = v * 10 + (uint64_t)(text[i++] - '0');
                if (text[i] != ']' || v > UINT32_MAX || (text[s] == '0' && i - s > 1)) {
                    i = s;
                    rc = -EINVAL;
                    goto fail;
                }
                st->op = AP_BODYPATH_INDEX;
                st->index = (uint32_t)v;
                i++;
            } else {
                rc = -EINVAL;
                goto fail;
            }
            n++;
            continue;
        }
        rc = -EINVAL;
        goto fail;
    }
    if (n == 0 || steps[n - 1].op == AP_BODYPATH_LAYER) {
        rc = -EINVAL;
        goto fail;
    }
    struct ap_bodypath_step *shrunk = realloc(steps, n * sizeof(*steps));
    *steps_out = shrunk != NULL ? shrunk : steps;
    *nsteps_out = n;
    return 0;
fail:
    if (err_off)
        *err_off = i;
    ap_bodypath_free(steps, n);
    return rc;
}
