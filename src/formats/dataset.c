/* dataset.c — reading JSONL examples with cJSON and the tokenizer. */
#include "dataset.h"

#include <cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atomic_file.h"
#include "checked.h"
#include "text.h"

#define DS_MAX_FILE ((size_t)1 << 30)

/* A string field: absent -> *out NULL (error when required); present but not a string -> error. */
static int field(const cJSON *o, const char *key, int required, const char **out, const char *where,
                 ml_error *e) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    *out = NULL;
    if (!it) return required ? ml_fail(e, "%s: missing \"%s\"", where, key) : 0;
    if (!cJSON_IsString(it)) return ml_fail(e, "%s: \"%s\" is not a string", where, key);
    *out = it->valuestring;
    return 0;
}

/* Copies s into the string pool and returns the copy (NULL stays NULL). */
static const char *keep(char **pool, const char *s) {
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *dst = *pool;
    memcpy(dst, s, n);
    *pool += n;
    return dst;
}

static int encode(const tok_vocab *v, const char *s, const char *what, int *ids, int max, int *n,
                  const char *where, ml_error *e) {
    if (tok_encode(v, s, ids, max, n, e)) return ml_wrap(e, "%s: %s", where, what);
    /* the end-of-text marker may only end a sequence, never sit inside one */
    for (int i = 0; i < *n; i++)
        if (ids[i] == TOK_END)
            return ml_fail(e, "%s: %s: a line break (the end-of-text marker) at character %d",
                           where, what, i + 1);
    return 0;
}

/* Parses one line into x, appending tokens to *tok and strings to *str. */
static int parse_line(dataset *d, ds_example *x, const char *line, size_t len, int lineno,
                      const tok_vocab *v, int context, int **tok, char **str, ml_error *e) {
    char where[TEXT_PATH_SHOWN + 16], path_s[TEXT_PATH_SHOWN];
    /* a long path keeps its head and tail, so the line number and the reason survive */
    snprintf(where, sizeof where, "%s:%d", text_short_path(path_s, sizeof path_s, d->path), lineno);
    if (memchr(line, '\0', len)) return ml_fail(e, "%s: line contains a NUL byte", where);
    /* cJSON decodes \u0000 and cuts the string there: "go\u0000###" would read as "go" */
    if (text_json_has_nul(line, len))
        return ml_fail(e, "%s: a string holds the NUL character \\u0000", where);
    const char *end = NULL;
    cJSON *o = cJSON_ParseWithLengthOpts(line, len, &end, 0);
    if (!o) return ml_fail(e, "%s: not valid JSON", where);
    int rc = 0;
    while (end && end < line + len && (*end == ' ' || *end == '\t' || *end == '\r')) end++;
    if (end && end < line + len) rc = ml_fail(e, "%s: text after the JSON object", where);
    else if (!cJSON_IsObject(o)) rc = ml_fail(e, "%s: not a JSON object", where);
    const char *prompt = NULL, *completion = NULL, *text = NULL, *verb = NULL, *form = NULL,
               *dis = NULL;
    if (!rc) rc = field(o, "text", 0, &text, where, e);
    if (!rc && !text) rc = field(o, "prompt", 1, &prompt, where, e);
    if (!rc && !text) rc = field(o, "completion", 1, &completion, where, e);
    if (!rc) rc = field(o, "verb", 0, &verb, where, e);
    if (!rc) rc = field(o, "form", 0, &form, where, e);
    if (!rc) rc = field(o, "distractor", 0, &dis, where, e);
    if (!rc && text && cJSON_GetObjectItemCaseSensitive(o, "prompt"))
        rc = ml_fail(e, "%s: has both \"text\" and \"prompt\"", where);
    if (!rc && !text && completion[0] == '\0')
        rc = ml_fail(e, "%s: \"completion\" is empty", where);
    if (!rc && text && text[0] == '\0') rc = ml_fail(e, "%s: \"text\" is empty", where);
    if (!rc && dis && dis[0] == '\0') rc = ml_fail(e, "%s: \"distractor\" is empty", where);
    /* a sequence may hold up to `context` tokens; encode with one spare to detect overflow */
    int np = 0, nc = 0, nd = 0;
    int *ids = *tok;
    if (!rc && prompt) rc = encode(v, prompt, "prompt", ids, context + 1, &np, where, e);
    if (!rc)
        rc = encode(v, text ? text : completion, text ? "text" : "completion", ids + np,
                    context + 1 - np > 0 ? context + 1 - np : 0, &nc, where, e);
    if (rc && strstr(e->msg, "longer than"))
        rc = ml_fail(e, "%s: sequence is longer than the context of %d tokens", where, context);
    if (!rc && np + nc + 1 > context)
        rc = ml_fail(e,
                     "%s: sequence is %d tokens with the end token, longer than the context of %d",
                     where, np + nc + 1, context);
    if (!rc) ids[np + nc] = TOK_END;
    int *dids = ids + np + nc + 1;
    if (!rc && dis) {
        rc = encode(v, dis, "distractor", dids, context + 1, &nd, where, e);
        if (!rc && np + nd + 1 > context)
            rc = ml_fail(e,
                         "%s: prompt + distractor is %d tokens with the end token, longer than "
                         "the context of %d",
                         where, np + nd + 1, context);
        if (!rc) dids[nd++] = TOK_END;
    }
    if (!rc) {
        x->line = lineno;
        x->n_prompt = np;
        x->n_completion = nc + 1;
        x->n_distractor = dis ? nd : 0;
        x->tokens = ids;
        x->distractor = dis ? dids : NULL;
        x->prompt = keep(str, prompt ? prompt : "");
        x->completion = keep(str, text ? text : completion);
        x->verb = keep(str, verb);
        x->form = keep(str, form);
        x->distractor_text = keep(str, dis);
        *tok = dids + (dis ? nd : 0);
        if (np + nc + 1 > d->max_len) d->max_len = np + nc + 1;
    }
    cJSON_Delete(o);
    return rc;
}

int ds_parse(dataset *d, const char *label, const char *text, size_t n, const tok_vocab *v,
             int context, ml_error *e) {
    memset(d, 0, sizeof *d);
    const char *path = label ? label : "(memory)";
    const char *buf = n ? text : "", *end = buf + n;
    d->path = strdup(path);
    int lines = 0;
    for (size_t i = 0; i < n; i++) lines += buf[i] == '\n';
    lines++;
    /* every example needs at most 2·(context+1) tokens and its strings fit in the line */
    size_t n_tok, n_str;
    if (context < 1 ||
        !size_mul3_ok(&n_tok, (size_t)lines, 2 * ((size_t)context + 2), sizeof(int)) ||
        !size_mul_ok(&n_str, (size_t)lines, 6) || n_str > SIZE_MAX - n - 1) {
        ds_free(d);
        return ml_fail(e, "%s: %d lines at a context of %d do not fit in memory", path, lines,
                       context);
    }
    d->ex = calloc((size_t)lines, sizeof *d->ex);
    d->token_pool = malloc(n_tok);
    d->string_pool = malloc(n + n_str + 1);
    if (!d->path || !d->ex || !d->token_pool || !d->string_pool) {
        ds_free(d);
        return ml_fail(e, "%s: out of memory", path);
    }
    int *tok = d->token_pool;
    char *str = d->string_pool;
    const char *line = buf;
    int lineno = 0;
    while (line <= end) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        size_t len = nl ? (size_t)(nl - line) : (size_t)(end - line);
        lineno++;
        if (len > 0 && line[len - 1] == '\r') len--;
        if (len > 0 && parse_line(d, &d->ex[d->n], line, len, lineno, v, context, &tok, &str, e)) {
            ds_free(d);
            return -1;
        }
        if (len > 0) d->n++;
        if (!nl) break;
        line = nl + 1;
    }
    if (d->n == 0) {
        ml_fail(e, "%s: no examples", path);
        ds_free(d);
        return -1;
    }
    return 0;
}

int ds_load(dataset *d, const char *path, const tok_vocab *v, int context, ml_error *e) {
    memset(d, 0, sizeof *d);
    char *buf;
    size_t size;
    if (read_file(path, DS_MAX_FILE, &buf, &size, e)) return -1;
    int rc = ds_parse(d, path, buf, size, v, context, e);
    free(buf);
    return rc;
}

void ds_free(dataset *d) {
    free(d->path);
    free(d->ex);
    free(d->token_pool);
    free(d->string_pool);
    memset(d, 0, sizeof *d);
}

int ds_targets(const ds_example *x) {
    return x->n_prompt > 0 ? x->n_completion : x->n_completion - 1;
}

int ds_batch_T(const ds_example *const *ex, int B) {
    int T = 1;
    for (int b = 0; b < B; b++) {
        const ds_example *x = ex[b];
        if (x->n_prompt + x->n_completion - 1 > T) T = x->n_prompt + x->n_completion - 1;
    }
    return T;
}

int ds_batch(const ds_example *const *ex, int B, int T, int *tokens, int *targets) {
    int count = 0;
    for (int b = 0; b < B; b++) {
        const ds_example *x = ex[b];
        const int len = x->n_prompt + x->n_completion; /* sequence length */
        /* the target at t is token t+1; it bears loss when token t+1 is past the prompt */
        const int first = x->n_prompt > 0 ? x->n_prompt - 1 : 0;
        for (int t = 0; t < T; t++) {
            const int inside = t < len - 1;
            tokens[b * T + t] = inside ? x->tokens[t] : TOK_END;
            targets[b * T + t] = inside && t >= first ? x->tokens[t + 1] : -1;
            count += inside && t >= first;
        }
    }
    return count;
}

int ds_concat(dataset *out, const dataset *parts, int n, ml_error *e) {
    memset(out, 0, sizeof *out);
    size_t n_ex = 0, n_tok = 0, n_str = 0, n_path = 1;
    for (int i = 0; i < n; i++) {
        n_ex += (size_t)parts[i].n;
        n_path += strlen(parts[i].path) + 1;
        for (int j = 0; j < parts[i].n; j++) {
            const ds_example *x = &parts[i].ex[j];
            n_tok += (size_t)(x->n_prompt + x->n_completion + x->n_distractor);
            const char *strs[5] = {x->prompt, x->completion, x->verb, x->form, x->distractor_text};
            for (int k = 0; k < 5; k++) n_str += strs[k] ? strlen(strs[k]) + 1 : 0;
        }
    }
    out->path = malloc(n_path);
    out->ex = calloc(n_ex ? n_ex : 1, sizeof *out->ex);
    out->token_pool = malloc(sizeof(int) * (n_tok ? n_tok : 1));
    out->string_pool = malloc(n_str ? n_str : 1);
    if (!out->path || !out->ex || !out->token_pool || !out->string_pool) {
        ds_free(out);
        return ml_fail(e, "out of memory joining %d datasets", n);
    }
    out->path[0] = '\0';
    int *tok = out->token_pool;
    char *str = out->string_pool;
    for (int i = 0; i < n; i++) {
        if (i) strcat(out->path, "+");
        strcat(out->path, parts[i].path);
        for (int j = 0; j < parts[i].n; j++) {
            const ds_example *x = &parts[i].ex[j];
            ds_example *y = &out->ex[out->n++];
            *y = *x;
            const int len = x->n_prompt + x->n_completion;
            memcpy(tok, x->tokens, sizeof(int) * (size_t)len);
            y->tokens = tok;
            tok += len;
            if (x->distractor) {
                memcpy(tok, x->distractor, sizeof(int) * (size_t)x->n_distractor);
                y->distractor = tok;
                tok += x->n_distractor;
            }
            y->prompt = keep(&str, x->prompt);
            y->completion = keep(&str, x->completion);
            y->verb = keep(&str, x->verb);
            y->form = keep(&str, x->form);
            y->distractor_text = keep(&str, x->distractor_text);
        }
        if (parts[i].max_len > out->max_len) out->max_len = parts[i].max_len;
    }
    return 0;
}
