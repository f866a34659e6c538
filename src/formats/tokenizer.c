/* tokenizer.c — character-level encoding over a vocabulary of UTF-8 symbols. */
#include "tokenizer.h"

#include <cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text.h"

/* Length of the UTF-8 character at s (1..4; 0: not valid UTF-8); its code point in *cp. */
static int utf8_len(const unsigned char *s, uint32_t *cp) {
    return (int)text_utf8_decode((const char *)s, strnlen((const char *)s, 4), cp);
}

int tok_from_json(tok_vocab *v, const char *json_array, const char *label, ml_error *e) {
    memset(v, 0, sizeof *v);
    for (int i = 0; i < 128; i++) v->ascii[i] = -1;
    if (text_json_has_nul(json_array, strlen(json_array))) /* cJSON would cut a symbol there */
        return ml_fail(e, "%s: vocab holds the NUL character \\u0000", label);
    cJSON *a = cJSON_ParseWithOpts(json_array, NULL, 1); /* nothing may follow the array */
    if (!a || !cJSON_IsArray(a)) {
        cJSON_Delete(a);
        return ml_fail(e, "%s: vocab is not a JSON array", label);
    }
    int n = cJSON_GetArraySize(a), rc = 0;
    if (n < 2 || n > TOK_MAX_VOCAB)
        rc = ml_fail(e, "%s: vocab has %d symbols (2..%d allowed)", label, n, TOK_MAX_VOCAB);
    for (int i = 0; !rc && i < n; i++) {
        const cJSON *it = cJSON_GetArrayItem(a, i);
        const unsigned char *s = (const unsigned char *)cJSON_GetStringValue(it);
        int len = s && s[0] ? utf8_len(s, NULL) : 0;
        if (!len || s[len] != '\0') {
            rc = ml_fail(e, "%s: vocab entry %d is not a single UTF-8 character", label, i);
            break;
        }
        for (int j = 0; j < i; j++)
            if (strcmp(v->sym[j], (const char *)s) == 0)
                rc = ml_fail(e, "%s: vocab entry %d repeats entry %d", label, i, j);
        memcpy(v->sym[i], s, (size_t)len + 1);
        if (len == 1) v->ascii[s[0]] = i;
    }
    cJSON_Delete(a);
    if (rc) return rc;
    if (strcmp(v->sym[TOK_END], "\n") != 0)
        return ml_fail(e, "%s: vocab entry 0 must be the end-of-text marker \"\\n\"", label);
    v->n = n;
    return 0;
}

char *tok_to_json(const tok_vocab *v) {
    cJSON *a = cJSON_CreateArray();
    if (!a) return NULL;
    for (int i = 0; i < v->n; i++) cJSON_AddItemToArray(a, cJSON_CreateString(v->sym[i]));
    char *s = cJSON_PrintUnformatted(a);
    cJSON_Delete(a);
    return s;
}

int tok_encode(const tok_vocab *v, const char *text, int *ids, int max_ids, int *n, ml_error *e) {
    const unsigned char *s = (const unsigned char *)text;
    int count = 0;
    for (int pos = 1; *s; pos++) {
        uint32_t cp = 0;
        int len = utf8_len(s, &cp);
        if (!len) return ml_fail(e, "invalid UTF-8 byte 0x%02x at character %d", s[0], pos);
        int id = -1;
        if (len == 1) id = v->ascii[s[0]];
        else
            for (int i = 0; i < v->n && id < 0; i++)
                if (strncmp(v->sym[i], (const char *)s, (size_t)len) == 0 && v->sym[i][len] == '\0')
                    id = i;
        if (id < 0) {
            if (cp < 0x20 || cp == 0x7F)
                return ml_fail(e, "unknown symbol U+%04X (a control character) at character %d",
                               (unsigned)cp, pos);
            return ml_fail(e, "unknown symbol '%.*s' (U+%04X) at character %d", len,
                           (const char *)s, (unsigned)cp, pos);
        }
        if (count >= max_ids) return ml_fail(e, "longer than %d symbols", max_ids);
        ids[count++] = id;
        s += len;
    }
    *n = count;
    return 0;
}

char *tok_decode(const tok_vocab *v, const int *ids, int n, char *out, int cap) {
    int len = 0;
    if (cap <= 0) return out;
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        const char *sym = ids[i] >= 0 && ids[i] < v->n ? v->sym[ids[i]] : "?";
        int sl = (int)strlen(sym);
        if (len + sl >= cap) break;
        memcpy(out + len, sym, (size_t)sl);
        len += sl;
        out[len] = '\0';
    }
    return out;
}
