/* safetensors.c — strict safetensors reader and atomic writer.
 *
 * The reader treats every byte of the file as hostile: lengths are checked against the file
 * size before anything is allocated, the header is scanned for encoding problems before cJSON
 * sees it, and every number is checked to be a plain integer that a double holds exactly.
 * All multi-byte values are decoded byte by byte, so the code does not depend on host
 * endianness or on the alignment of tensors inside the file.
 */
#include "safetensors.h"

#include <cJSON.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atomic_file.h"
#include "fp16.h"
#include "text.h"

/* Largest integer a double holds exactly together with all smaller ones; JSON numbers above
 * it may already have been rounded by the parser, so they are refused. */
#define MAX_EXACT_INT 9007199254740991.0 /* 2^53 - 1 */
#define MAX_EXACT_U64 UINT64_C(9007199254740991)

/* Whole-file limit for st_open: far above any minilora checkpoint, low enough that a stray
 * path to a huge file fails quickly instead of exhausting memory. */
#define ST_MAX_FILE ((size_t)1 << 32)

static const char *const dtype_names[] = {"F32", "F16", "I32", "I64", "U8", "I8"};

const char *st_dtype_name(st_dtype d) {
    return (unsigned)d < sizeof dtype_names / sizeof *dtype_names ? dtype_names[d] : "?";
}

size_t st_dtype_size(st_dtype d) {
    switch (d) {
    case ST_F32: return 4;
    case ST_F16: return 2;
    case ST_I32: return 4;
    case ST_I64: return 8;
    case ST_U8:
    case ST_I8: return 1;
    }
    return 0;
}

static int dtype_from_name(const char *s, st_dtype *d) {
    for (unsigned i = 0; i < sizeof dtype_names / sizeof *dtype_names; i++)
        if (strcmp(s, dtype_names[i]) == 0) {
            *d = (st_dtype)i;
            return 0;
        }
    return -1;
}

/* r = a * b; 0 when the product does not fit in a size_t. */
static int mul_ok(size_t a, size_t b, size_t *r) {
    if (a != 0 && b > SIZE_MAX / a) return 0;
    *r = a * b;
    return 1;
}

static uint64_t load_le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static uint32_t load_le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void store_le64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void store_le32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* "[64, 32]" into buf (cut if it does not fit). Returns buf for use in messages. */
static const char *fmt_shape(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t len = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%" PRId64, i ? ", " : "", shape[i]);
    if (len < cap) snprintf(buf + len, cap - len, "]");
    return buf;
}

/* ---- reader ---------------------------------------------------------------------------- */

/* Lexical checks cJSON does not make: the header is valid UTF-8, has no raw control bytes
 * (strings would otherwise carry them into messages) and no \u0000 escape (which would cut a
 * C string short, so two different names could compare equal). Also finds the first number
 * that is not a plain non-negative integer literal ("2.0", "1e3", "-0", "007"): cJSON turns
 * those into integral doubles, so only the text shows them. Its offset goes to *bad_num
 * (SIZE_MAX if none) and is reported after the more specific semantic checks. */
static int scan_header(const char *label, const uint8_t *h, size_t n, size_t *bad_num,
                       ml_error *e) {
    *bad_num = SIZE_MAX;
    int in_str = 0;
    for (size_t i = 0; i < n;) {
        uint8_t c = h[i];
        if (in_str) {
            if (c == '"') in_str = 0;
            else if (c == '\\') {
                if (i + 1 < n && h[i + 1] == 'u' && i + 6 <= n && memcmp(h + i + 2, "0000", 4) == 0)
                    return ml_fail(e, "%s: header string at byte %zu contains \\u0000", label,
                                   8 + i);
                i += 2; /* skip the escaped character (quote or backslash included) */
                continue;
            } else if (c < 0x20)
                return ml_fail(e, "%s: header has control byte 0x%02x inside a string at byte %zu",
                               label, c, 8 + i);
            else if (c >= 0x80) {
                size_t k = text_utf8_decode((const char *)h + i, n - i, NULL);
                if (!k)
                    return ml_fail(e, "%s: header is not valid UTF-8 at byte %zu", label, 8 + i);
                i += k;
                continue;
            }
            i++;
            continue;
        }
        if (c == '"') {
            in_str = 1;
            i++;
            continue;
        }
        if (c < 0x20 && c != ' ' && c != '\t' && c != '\n' && c != '\r')
            return ml_fail(e, "%s: header has control byte 0x%02x at byte %zu", label, c, 8 + i);
        if (c == '-' || (c >= '0' && c <= '9')) {
            size_t j = i;
            while (j < n && h[j] && strchr("0123456789+-.eE", h[j])) j++;
            int plain = 1;
            for (size_t k = i; k < j; k++)
                if (h[k] < '0' || h[k] > '9') plain = 0;
            if (j - i > 1 && h[i] == '0') plain = 0; /* leading zero is not JSON */
            if (j - i > 16) plain = 0;               /* > 2^53 - 1 has at least 16 digits */
            if (plain && j - i == 16) {
                uint64_t v = 0;
                for (size_t k = i; k < j; k++) v = v * 10 + (uint64_t)(h[k] - '0');
                if (v > MAX_EXACT_U64) plain = 0;
            }
            if (!plain && *bad_num == SIZE_MAX) *bad_num = i;
            i = j;
            continue;
        }
        i++;
    }
    return 0;
}

/* A JSON number that must be a non-negative integer below 2^53. On failure returns -1 and
 * sets *why to the reason for the message. */
static int json_uint(const cJSON *j, uint64_t *out, const char **why) {
    if (!cJSON_IsNumber(j)) {
        *why = "is not a number";
        return -1;
    }
    double d = j->valuedouble;
    if (!isfinite(d) || d > MAX_EXACT_INT) *why = "is too large (above 2^53 - 1)";
    else if (d < 0) *why = "is negative";
    else if (d != floor(d)) *why = "is not an integer";
    else {
        *out = (uint64_t)d;
        return 0;
    }
    return -1;
}

/* The number as text for a message (cJSON only keeps the double). */
static const char *num_text(const cJSON *j, char *buf, size_t cap) {
    if (cJSON_IsNumber(j)) snprintf(buf, cap, "%.17g", j->valuedouble);
    else snprintf(buf, cap, "(not a number)");
    return buf;
}

typedef struct {
    const char *label;
    size_t data_size;
    ml_error *e;
} parse_ctx;

static int check_name(const parse_ctx *c, const char *name, const char *what) {
    char pb[64];
    if (!*name) return ml_fail(c->e, "%s: %s name is empty", c->label, what);
    if (text_has_control(name))
        return ml_fail(c->e, "%s: %s name '%s' contains a control character", c->label, what,
                       ml_one_line(pb, sizeof pb, name));
    return 0;
}

static int parse_dtype(const parse_ctx *c, const char *name, const cJSON *j, st_dtype *d) {
    char pb[64];
    if (!cJSON_IsString(j))
        return ml_fail(c->e, "%s: tensor '%s' dtype is not a string", c->label, name);
    if (dtype_from_name(j->valuestring, d) != 0)
        return ml_fail(c->e,
                       "%s: tensor '%s' has unknown dtype '%s' (expected F32, F16, I32 or I64)",
                       c->label, name, ml_one_line(pb, sizeof pb, j->valuestring));
    return 0;
}

/* Fills ndim, shape, numel and returns the byte size in *nbytes. */
static int parse_shape(const parse_ctx *c, const char *name, const cJSON *j, st_tensor *t,
                       size_t *nbytes) {
    if (!cJSON_IsArray(j))
        return ml_fail(c->e, "%s: tensor '%s' shape is not an array", c->label, name);
    int nd = cJSON_GetArraySize(j);
    if (nd > ST_MAX_DIMS)
        return ml_fail(c->e, "%s: tensor '%s' has %d dimensions, more than %d", c->label, name, nd,
                       ST_MAX_DIMS);
    size_t numel = 1;
    int overflow = 0, i = 0;
    for (const cJSON *d = j->child; d; d = d->next, i++) {
        uint64_t v;
        const char *why;
        char nb[40];
        if (json_uint(d, &v, &why) != 0)
            return ml_fail(c->e, "%s: tensor '%s' shape[%d] = %s %s", c->label, name, i,
                           num_text(d, nb, sizeof nb), why);
        t->shape[i] = (int64_t)v;
        if (!mul_ok(numel, (size_t)v, &numel)) overflow = 1;
    }
    t->ndim = nd;
    char sb[128];
    if (overflow || !mul_ok(numel, st_dtype_size(t->dtype), nbytes))
        return ml_fail(c->e, "%s: tensor '%s' shape %s overflows the byte size", c->label, name,
                       fmt_shape(sb, sizeof sb, t->ndim, t->shape));
    t->numel = numel;
    return 0;
}

static int parse_offsets(const parse_ctx *c, const char *name, const cJSON *j, st_tensor *t) {
    if (!cJSON_IsArray(j) || cJSON_GetArraySize(j) != 2)
        return ml_fail(c->e, "%s: tensor '%s' data_offsets must be an array of 2 integers",
                       c->label, name);
    uint64_t v[2];
    int i = 0;
    for (const cJSON *d = j->child; d; d = d->next, i++) {
        const char *why;
        char nb[40];
        if (json_uint(d, &v[i], &why) != 0)
            return ml_fail(c->e, "%s: tensor '%s' data_offsets[%d] = %s %s", c->label, name, i,
                           num_text(d, nb, sizeof nb), why);
    }
    if (v[1] < v[0])
        return ml_fail(
            c->e, "%s: tensor '%s' data_offsets [%" PRIu64 ", %" PRIu64 "] have end before begin",
            c->label, name, v[0], v[1]);
    if (v[1] > c->data_size)
        return ml_fail(c->e,
                       "%s: tensor '%s' data_offsets [%" PRIu64 ", %" PRIu64
                       "] reach beyond the data section (%zu bytes)",
                       c->label, name, v[0], v[1], c->data_size);
    t->begin = (size_t)v[0];
    t->end = (size_t)v[1];
    return 0;
}

/* One header entry: {"dtype": ..., "shape": [...], "data_offsets": [b, e]}, nothing else. */
static int parse_tensor(const parse_ctx *c, const cJSON *j, st_tensor *t) {
    const char *name = j->string;
    if (check_name(c, name, "tensor") != 0) return -1;
    if (!cJSON_IsObject(j))
        return ml_fail(c->e, "%s: tensor '%s' entry is not an object", c->label, name);
    const cJSON *fields[3] = {NULL, NULL, NULL};
    static const char *const keys[3] = {"dtype", "shape", "data_offsets"};
    for (const cJSON *k = j->child; k; k = k->next) {
        int idx = -1;
        for (int i = 0; i < 3; i++)
            if (strcmp(k->string, keys[i]) == 0) idx = i;
        char pb[64];
        if (idx < 0)
            return ml_fail(c->e, "%s: tensor '%s' has unknown field '%s'", c->label, name,
                           ml_one_line(pb, sizeof pb, k->string));
        if (fields[idx])
            return ml_fail(c->e, "%s: tensor '%s' has duplicate field '%s'", c->label, name,
                           keys[idx]);
        fields[idx] = k;
    }
    for (int i = 0; i < 3; i++)
        if (!fields[i]) return ml_fail(c->e, "%s: tensor '%s' has no %s", c->label, name, keys[i]);

    size_t nbytes = 0;
    if (parse_dtype(c, name, fields[0], &t->dtype) != 0) return -1;
    if (parse_shape(c, name, fields[1], t, &nbytes) != 0) return -1;
    if (parse_offsets(c, name, fields[2], t) != 0) return -1;
    if (t->end - t->begin != nbytes) {
        char sb[128];
        return ml_fail(c->e,
                       "%s: tensor '%s' data_offsets [%zu, %zu] hold %zu bytes but %s %s "
                       "needs %zu (size mismatch)",
                       c->label, name, t->begin, t->end, t->end - t->begin, st_dtype_name(t->dtype),
                       fmt_shape(sb, sizeof sb, t->ndim, t->shape), nbytes);
    }
    t->name = strdup(name);
    if (!t->name) return ml_fail(c->e, "%s: out of memory", c->label);
    return 0;
}

static int cmp_str_ptr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A name that occurs twice (a pointer into names, not a copy), or NULL. Sorting keeps this
 * O(n log n) for fuzzed headers with millions of entries. *oom is set when the scratch array
 * cannot be made. */
static const char *find_duplicate(char *const *names, int n, int *oom) {
    *oom = 0;
    if (n < 2) return NULL;
    const char **s = malloc((size_t)n * sizeof *s);
    if (!s) {
        *oom = 1;
        return NULL;
    }
    memcpy(s, names, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_str_ptr);
    const char *dup = NULL;
    for (int i = 1; i < n && !dup; i++)
        if (strcmp(s[i - 1], s[i]) == 0) dup = s[i];
    free(s);
    return dup;
}

static int parse_meta(const parse_ctx *c, const cJSON *j, st_file *f) {
    if (!cJSON_IsObject(j))
        return ml_fail(c->e, "%s: __metadata__ is not an object of strings", c->label);
    int n = cJSON_GetArraySize(j);
    if (n == 0) return 0;
    f->meta_keys = calloc((size_t)n, sizeof *f->meta_keys);
    f->meta_values = calloc((size_t)n, sizeof *f->meta_values);
    if (!f->meta_keys || !f->meta_values) return ml_fail(c->e, "%s: out of memory", c->label);
    f->n_meta = n;
    int i = 0;
    for (const cJSON *k = j->child; k; k = k->next, i++) {
        if (check_name(c, k->string, "__metadata__ key") != 0) return -1;
        if (!cJSON_IsString(k))
            return ml_fail(c->e, "%s: __metadata__ value of '%s' is not a string", c->label,
                           k->string);
        f->meta_keys[i] = strdup(k->string);
        f->meta_values[i] = strdup(k->valuestring);
        if (!f->meta_keys[i] || !f->meta_values[i])
            return ml_fail(c->e, "%s: out of memory", c->label);
    }
    int oom;
    const char *dup = find_duplicate(f->meta_keys, n, &oom);
    if (oom) return ml_fail(c->e, "%s: out of memory", c->label);
    if (dup) return ml_fail(c->e, "%s: __metadata__ has duplicate key '%s'", c->label, dup);
    return 0;
}

static int cmp_tensor_ptr(const void *a, const void *b) {
    const st_tensor *x = *(const st_tensor *const *)a, *y = *(const st_tensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return x < y ? -1 : x > y; /* header order among equals keeps the result deterministic */
}

/* Reorders f->tensors by data offset and checks they tile [0, data_size) exactly: no
 * overlap, no gap, nothing after the last tensor (the reference refuses unindexed bytes). */
static int sort_and_tile(const parse_ctx *c, st_file *f) {
    int n = f->n_tensors;
    if (n == 0) {
        if (c->data_size)
            return ml_fail(c->e, "%s: gap: %zu unindexed bytes in a data section with no tensors",
                           c->label, c->data_size);
        return 0;
    }
    st_tensor **order = malloc((size_t)n * sizeof *order);
    st_tensor *sorted = malloc((size_t)n * sizeof *sorted);
    if (!order || !sorted) {
        free(order);
        free(sorted);
        return ml_fail(c->e, "%s: out of memory", c->label);
    }
    for (int i = 0; i < n; i++) order[i] = &f->tensors[i];
    qsort(order, (size_t)n, sizeof *order, cmp_tensor_ptr);
    for (int i = 0; i < n; i++) sorted[i] = *order[i];
    free(order);
    free(f->tensors); /* the names moved to `sorted` */
    f->tensors = sorted;

    size_t pos = 0;
    for (int i = 0; i < n; i++) {
        const st_tensor *t = &f->tensors[i];
        if (t->begin < pos)
            return ml_fail(c->e,
                           "%s: tensor '%s' data_offsets [%zu, %zu] overlap tensor '%s' "
                           "(which ends at %zu)",
                           c->label, t->name, t->begin, t->end, f->tensors[i - 1].name, pos);
        if (t->begin > pos)
            return ml_fail(c->e,
                           "%s: gap: bytes [%zu, %zu) of the data section before tensor "
                           "'%s' are not indexed by any tensor",
                           c->label, pos, t->begin, t->name);
        pos = t->end;
    }
    if (pos != c->data_size)
        return ml_fail(c->e,
                       "%s: gap: bytes [%zu, %zu) at the end of the data section are not "
                       "indexed by any tensor",
                       c->label, pos, c->data_size);
    return 0;
}

/* Parses the JSON root into f's tensors and metadata. */
static int parse_root(const parse_ctx *c, const cJSON *root, st_file *f) {
    int n = 0, seen_meta = 0;
    for (const cJSON *k = root->child; k; k = k->next) n += strcmp(k->string, "__metadata__") != 0;
    if (n > 0) {
        f->tensors = calloc((size_t)n, sizeof *f->tensors);
        if (!f->tensors) return ml_fail(c->e, "%s: out of memory", c->label);
        f->n_tensors = n;
    }
    int i = 0;
    for (const cJSON *k = root->child; k; k = k->next) {
        if (strcmp(k->string, "__metadata__") == 0) {
            if (seen_meta++) return ml_fail(c->e, "%s: duplicate __metadata__", c->label);
            if (parse_meta(c, k, f) != 0) return -1;
        } else if (parse_tensor(c, k, &f->tensors[i++]) != 0) return -1;
    }
    char **names = malloc((size_t)(n ? n : 1) * sizeof *names);
    if (!names) return ml_fail(c->e, "%s: out of memory", c->label);
    for (i = 0; i < n; i++) names[i] = f->tensors[i].name;
    int oom;
    const char *dup = find_duplicate(names, n, &oom);
    int rc = 0;
    if (oom) rc = ml_fail(c->e, "%s: out of memory", c->label);
    else if (dup) rc = ml_fail(c->e, "%s: duplicate tensor name '%s'", c->label, dup);
    free(names);
    return rc ? rc : sort_and_tile(c, f);
}

/* Checks the length prefix and framing; on success *hlen is the header length. */
static int check_framing(const char *label, const uint8_t *bytes, size_t size, size_t *hlen,
                         ml_error *e) {
    if (size < 8)
        return ml_fail(e, "%s: file is %zu bytes, too small for the 8-byte header length", label,
                       size);
    uint64_t n = load_le64(bytes);
    if (n > size - 8)
        return ml_fail(e, "%s: header length %" PRIu64 " exceeds file size %zu", label, n, size);
    if (n > ST_MAX_HEADER)
        return ml_fail(e, "%s: header length %" PRIu64 " exceeds the limit of %u bytes", label, n,
                       ST_MAX_HEADER);
    if (n == 0 || bytes[8] != '{')
        return ml_fail(e, "%s: header must be a JSON object starting with '{'", label);
    *hlen = (size_t)n;
    return 0;
}

/* Parses the header text; returns the root (caller deletes) or NULL with e filled. */
static cJSON *parse_json(const char *label, const uint8_t *h, size_t n, ml_error *e) {
    /* cJSON gets a NUL-terminated copy: the header inside the file is not terminated. */
    char *text = malloc(n + 1);
    if (!text) {
        ml_fail(e, "%s: out of memory for a %zu-byte header", label, n);
        return NULL;
    }
    memcpy(text, h, n);
    text[n] = '\0';
    if (text_json_has_nul(text, n)) { /* cJSON would cut the name or value at the NUL */
        ml_fail(e, "%s: header holds the NUL character (a raw byte or \\u0000)", label);
        free(text);
        return NULL;
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, n, &end, 0);
    if (!root) {
        size_t at = end && end >= text && end <= text + n ? (size_t)(end - text) : 0;
        ml_fail(e, "%s: header is not valid JSON (near byte %zu)", label, 8 + at);
        free(text);
        return NULL;
    }
    for (const char *p = end; p < text + n; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            ml_fail(e, "%s: header has bytes after the JSON object (at byte %zu), not valid JSON",
                    label, 8 + (size_t)(p - text));
            cJSON_Delete(root);
            free(text);
            return NULL;
        }
    free(text);
    if (!cJSON_IsObject(root)) {
        ml_fail(e, "%s: header must be a JSON object", label);
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

int st_parse(st_file *f, const char *label, uint8_t *bytes, size_t size, ml_error *e) {
    st_file t;
    memset(&t, 0, sizeof t);
    memset(f, 0, sizeof *f);
    t.bytes = bytes; /* owned from here on, freed by st_close on failure */
    t.size = size;
    t.label = strdup(label ? label : "(memory)");
    if (!t.label) {
        st_close(&t);
        return ml_fail(e, "%s: out of memory", label ? label : "(memory)");
    }
    label = t.label;

    size_t hlen = 0, bad_num = SIZE_MAX;
    if (check_framing(label, bytes, size, &hlen, e) != 0 ||
        scan_header(label, bytes + 8, hlen, &bad_num, e) != 0) {
        st_close(&t);
        return -1;
    }
    cJSON *root = parse_json(label, bytes + 8, hlen, e);
    if (!root) {
        st_close(&t);
        return -1;
    }
    t.data_start = 8 + hlen;
    parse_ctx c = {label, size - t.data_start, e};
    int rc = parse_root(&c, root, &t);
    cJSON_Delete(root);
    if (rc == 0 && bad_num != SIZE_MAX) {
        size_t len = 0;
        while (len < 24 && bad_num + len < hlen && bytes[8 + bad_num + len] &&
               strchr("0123456789+-.eE", bytes[8 + bad_num + len]))
            len++;
        rc = ml_fail(e,
                     "%s: header number '%.*s' at byte %zu is not a plain non-negative "
                     "integer",
                     label, (int)len, (const char *)bytes + 8 + bad_num, 8 + bad_num);
    }
    if (rc != 0) {
        st_close(&t);
        return -1;
    }
    *f = t;
    return 0;
}

int st_open(st_file *f, const char *path, ml_error *e) {
    char *data;
    size_t n;
    memset(f, 0, sizeof *f);
    if (read_file(path, ST_MAX_FILE, &data, &n, e) != 0) return -1;
    return st_parse(f, path, (uint8_t *)data, n, e);
}

void st_close(st_file *f) {
    if (!f) return;
    for (int i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
    for (int i = 0; i < f->n_meta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_values[i]);
    }
    free(f->tensors);
    free(f->meta_keys);
    free(f->meta_values);
    free(f->bytes);
    free(f->label);
    memset(f, 0, sizeof *f);
}

const st_tensor *st_find(const st_file *f, const char *name) {
    for (int i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

const char *st_meta(const st_file *f, const char *key) {
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta_keys[i], key) == 0) return f->meta_values[i];
    return NULL;
}

/* Finds the tensor and checks its dtype and shape against what the caller expects. */
static const st_tensor *find_checked(const st_file *f, const char *name, st_dtype want, int ndim,
                                     const int64_t *shape, ml_error *e) {
    const st_tensor *t = st_find(f, name);
    if (!t) {
        ml_fail(e, "%s: tensor '%s' not found", f->label, name);
        return NULL;
    }
    if (t->dtype != want) {
        ml_fail(e, "%s: tensor '%s' has dtype %s, expected %s", f->label, name,
                st_dtype_name(t->dtype), st_dtype_name(want));
        return NULL;
    }
    int same = ndim == t->ndim;
    for (int i = 0; same && i < ndim; i++) same = shape[i] == t->shape[i];
    if (!same) {
        char got[128], exp[128];
        if (ndim < 0 || ndim > ST_MAX_DIMS) snprintf(exp, sizeof exp, "(%d dimensions)", ndim);
        else fmt_shape(exp, sizeof exp, ndim, shape);
        ml_fail(e, "%s: tensor '%s' has shape %s, expected %s", f->label, name,
                fmt_shape(got, sizeof got, t->ndim, t->shape), exp);
        return NULL;
    }
    return t;
}

int st_read_f32(const st_file *f, const char *name, st_dtype want, float *dst, int ndim,
                const int64_t *shape, ml_error *e) {
    if (want != ST_F32 && want != ST_F16)
        return ml_fail(e, "%s: tensor '%s': st_read_f32 cannot read dtype %s", f->label, name,
                       st_dtype_name(want));
    const st_tensor *t = find_checked(f, name, want, ndim, shape, e);
    if (!t) return -1;
    const uint8_t *p = f->bytes + f->data_start + t->begin;
    for (size_t i = 0; i < t->numel; i++) {
        float v;
        if (want == ST_F32) {
            uint32_t u = load_le32(p + 4 * i);
            memcpy(&v, &u, sizeof v);
        } else {
            v = fp16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        }
        if (!isfinite(v))
            return ml_fail(e, "%s: tensor '%s' element %zu is %s", f->label, name, i,
                           isnan(v) ? "NaN"
                           : v > 0  ? "inf"
                                    : "-inf");
        dst[i] = v;
    }
    return 0;
}

int st_read_i32(const st_file *f, const char *name, int32_t *dst, int ndim, const int64_t *shape,
                ml_error *e) {
    const st_tensor *t = find_checked(f, name, ST_I32, ndim, shape, e);
    if (!t) return -1;
    const uint8_t *p = f->bytes + f->data_start + t->begin;
    for (size_t i = 0; i < t->numel; i++) {
        uint32_t u = load_le32(p + 4 * i);
        memcpy(&dst[i], &u, sizeof u); /* two's complement bit pattern, no UB conversion */
    }
    return 0;
}

int st_read_u8(const st_file *f, const char *name, st_dtype want, uint8_t *dst, int ndim,
               const int64_t *shape, ml_error *e) {
    if (want != ST_U8 && want != ST_I8)
        return ml_fail(e, "%s: tensor '%s': st_read_u8 cannot read dtype %s", f->label, name,
                       st_dtype_name(want));
    const st_tensor *t = find_checked(f, name, want, ndim, shape, e);
    if (!t) return -1;
    if (t->numel) memcpy(dst, f->bytes + f->data_start + t->begin, t->numel);
    return 0;
}

/* ---- writer ---------------------------------------------------------------------------- */

typedef struct {
    char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    uint8_t *data; /* little-endian payload, nbytes long */
    size_t nbytes;
} w_tensor;

struct st_writer {
    w_tensor *t;
    int n, cap;
    char **mk, **mv;
    int nm, mcap;
    size_t payload; /* sum of nbytes so far */
};

st_writer *st_writer_new(void) { return calloc(1, sizeof(st_writer)); }

void st_writer_free(st_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) {
        free(w->t[i].name);
        free(w->t[i].data);
    }
    for (int i = 0; i < w->nm; i++) {
        free(w->mk[i]);
        free(w->mv[i]);
    }
    free(w->t);
    free(w->mk);
    free(w->mv);
    free(w);
}

/* Validates a new tensor (name, shape, size) and returns its byte size in *nbytes. */
static int check_new(const st_writer *w, const char *name, st_dtype dtype, const void *data,
                     int ndim, const int64_t *shape, size_t *numel, size_t *nbytes, ml_error *e) {
    char pb[64];
    if (!name || !*name) return ml_fail(e, "tensor name is empty");
    if (!text_utf8_valid(name) || text_has_control(name))
        return ml_fail(e, "tensor name '%s' is not valid UTF-8 text without control characters",
                       ml_one_line(pb, sizeof pb, name));
    if (strcmp(name, "__metadata__") == 0)
        return ml_fail(e, "tensor name '__metadata__' is reserved");
    for (int i = 0; i < w->n; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return ml_fail(e, "tensor '%s' added twice (duplicate name)", name);
    if (ndim < 0 || ndim > ST_MAX_DIMS)
        return ml_fail(e, "tensor '%s' has %d dimensions, expected 0 to %d", name, ndim,
                       ST_MAX_DIMS);
    size_t ne = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return ml_fail(e, "tensor '%s' shape[%d] = %" PRId64 " is negative", name, i, shape[i]);
        if ((uint64_t)shape[i] > MAX_EXACT_U64 || !mul_ok(ne, (size_t)shape[i], &ne))
            return ml_fail(e, "tensor '%s' shape overflows the byte size", name);
    }
    if (!mul_ok(ne, st_dtype_size(dtype), nbytes) || *nbytes > MAX_EXACT_U64 - w->payload)
        return ml_fail(e, "tensor '%s' shape overflows the byte size", name);
    if (!data && *nbytes) return ml_fail(e, "tensor '%s' has no data", name);
    if (w->n >= INT_MAX / 2 - 1) return ml_fail(e, "tensor '%s': too many tensors", name);
    *numel = ne;
    return 0;
}

/* Appends a tensor whose payload (already little-endian, malloc'ed) moves into w. */
static int push_tensor(st_writer *w, const char *name, st_dtype dtype, int ndim,
                       const int64_t *shape, uint8_t *data, size_t nbytes, ml_error *e) {
    if (w->n == w->cap) {
        int cap = w->cap ? 2 * w->cap : 16;
        w_tensor *t = realloc(w->t, (size_t)cap * sizeof *t);
        if (!t) goto oom;
        w->t = t;
        w->cap = cap;
    }
    w_tensor *t = &w->t[w->n];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    if (!t->name) goto oom;
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->data = data;
    t->nbytes = nbytes;
    w->payload += nbytes;
    w->n++;
    return 0;
oom:
    free(data);
    return ml_fail(e, "tensor '%s': out of memory", name);
}

int st_writer_add_f32(st_writer *w, const char *name, st_dtype dtype, const float *data, int ndim,
                      const int64_t *shape, ml_error *e) {
    if (dtype != ST_F32 && dtype != ST_F16)
        return ml_fail(e, "tensor '%s': cannot store floats as %s", name ? name : "",
                       st_dtype_name(dtype));
    size_t numel, nbytes;
    if (check_new(w, name, dtype, data, ndim, shape, &numel, &nbytes, e) != 0) return -1;
    uint8_t *buf = malloc(nbytes ? nbytes : 1);
    if (!buf) return ml_fail(e, "tensor '%s': out of memory", name);
    if (dtype == ST_F16) {
        /* Convert into the buffer as halves, then rewrite each in place as little-endian. */
        uint16_t *h = (uint16_t *)(void *)buf;
        if (fp16_from_f32_array(h, data, numel, name, e) != 0) {
            free(buf);
            return -1;
        }
        for (size_t i = 0; i < numel; i++) {
            uint16_t v = h[i];
            buf[2 * i] = (uint8_t)v;
            buf[2 * i + 1] = (uint8_t)(v >> 8);
        }
    } else {
        for (size_t i = 0; i < numel; i++) {
            uint32_t u;
            memcpy(&u, &data[i], sizeof u);
            store_le32(buf + 4 * i, u);
        }
    }
    return push_tensor(w, name, dtype, ndim, shape, buf, nbytes, e);
}

int st_writer_add_i32(st_writer *w, const char *name, const int32_t *data, int ndim,
                      const int64_t *shape, ml_error *e) {
    size_t numel, nbytes;
    if (check_new(w, name, ST_I32, data, ndim, shape, &numel, &nbytes, e) != 0) return -1;
    uint8_t *buf = malloc(nbytes ? nbytes : 1);
    if (!buf) return ml_fail(e, "tensor '%s': out of memory", name);
    for (size_t i = 0; i < numel; i++) {
        uint32_t u;
        memcpy(&u, &data[i], sizeof u);
        store_le32(buf + 4 * i, u);
    }
    return push_tensor(w, name, ST_I32, ndim, shape, buf, nbytes, e);
}

int st_writer_add_u8(st_writer *w, const char *name, st_dtype dtype, const uint8_t *data, int ndim,
                     const int64_t *shape, ml_error *e) {
    if (dtype != ST_U8 && dtype != ST_I8)
        return ml_fail(e, "tensor '%s': cannot store bytes as %s", name ? name : "",
                       st_dtype_name(dtype));
    size_t numel, nbytes;
    if (check_new(w, name, dtype, data, ndim, shape, &numel, &nbytes, e) != 0) return -1;
    uint8_t *buf = malloc(nbytes ? nbytes : 1);
    if (!buf) return ml_fail(e, "tensor '%s': out of memory", name);
    if (nbytes) memcpy(buf, data, nbytes);
    return push_tensor(w, name, dtype, ndim, shape, buf, nbytes, e);
}

int st_writer_meta(st_writer *w, const char *key, const char *value, ml_error *e) {
    char pb[64];
    if (!key || !*key || !value) return ml_fail(e, "__metadata__: empty key or missing value");
    if (!text_utf8_valid(key) || text_has_control(key))
        return ml_fail(e,
                       "__metadata__ key '%s' is not valid UTF-8 text without control "
                       "characters",
                       ml_one_line(pb, sizeof pb, key));
    if (!text_utf8_valid(value))
        return ml_fail(e, "__metadata__ value of '%s' is not valid UTF-8", key);
    char *v = strdup(value);
    if (!v) return ml_fail(e, "__metadata__ '%s': out of memory", key);
    for (int i = 0; i < w->nm; i++)
        if (strcmp(w->mk[i], key) == 0) { /* last value wins, first position kept */
            free(w->mv[i]);
            w->mv[i] = v;
            return 0;
        }
    if (w->nm == w->mcap) {
        int cap = w->mcap ? 2 * w->mcap : 8;
        char **mk = realloc(w->mk, (size_t)cap * sizeof *mk);
        if (mk) w->mk = mk;
        char **mv = mk ? realloc(w->mv, (size_t)cap * sizeof *mv) : NULL;
        if (mv) w->mv = mv;
        if (!mk || !mv) {
            free(v);
            return ml_fail(e, "__metadata__ '%s': out of memory", key);
        }
        w->mcap = cap;
    }
    char *k = strdup(key);
    if (!k) {
        free(v);
        return ml_fail(e, "__metadata__ '%s': out of memory", key);
    }
    w->mk[w->nm] = k;
    w->mv[w->nm] = v;
    w->nm++;
    return 0;
}

/* Adds item under key (or to the array when key is NULL); deletes item if that fails. */
static int add_item(cJSON *parent, const char *key, cJSON *item) {
    if (!item) return 0;
    cJSON_bool ok =
        key ? cJSON_AddItemToObject(parent, key, item) : cJSON_AddItemToArray(parent, item);
    if (!ok) cJSON_Delete(item);
    return ok;
}

/* Integers are written as raw text: cJSON would print large values like 1e+15, which the
 * strict reader refuses. */
static int add_uint(cJSON *arr, uint64_t v) {
    char buf[24];
    snprintf(buf, sizeof buf, "%" PRIu64, v);
    return add_item(arr, NULL, cJSON_CreateRaw(buf));
}

static cJSON *tensor_json(const w_tensor *t, size_t begin) {
    cJSON *o = cJSON_CreateObject();
    cJSON *shape = cJSON_CreateArray(), *offs = cJSON_CreateArray();
    int ok = add_item(o, "dtype", cJSON_CreateString(st_dtype_name(t->dtype)));
    ok = add_item(o, "shape", shape) && ok;
    ok = add_item(o, "data_offsets", offs) && ok;
    for (int i = 0; ok && i < t->ndim; i++) ok = add_uint(shape, (uint64_t)t->shape[i]);
    ok = ok && add_uint(offs, begin) && add_uint(offs, begin + t->nbytes);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* The 8-byte length plus the compact JSON header padded with spaces to a multiple of 8, as
 * one malloc'ed buffer (caller frees). */
static int build_header(const st_writer *w, uint8_t **out, size_t *n, ml_error *e) {
    cJSON *root = cJSON_CreateObject();
    int ok = root != NULL;
    if (ok && w->nm > 0) {
        cJSON *meta = cJSON_CreateObject();
        ok = add_item(root, "__metadata__", meta);
        for (int i = 0; ok && i < w->nm; i++)
            ok = add_item(meta, w->mk[i], cJSON_CreateString(w->mv[i]));
    }
    size_t off = 0;
    for (int i = 0; ok && i < w->n; i++) {
        ok = add_item(root, w->t[i].name, tensor_json(&w->t[i], off));
        off += w->t[i].nbytes;
    }
    char *text = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!text) return ml_fail(e, "safetensors header: out of memory");
    size_t len = strlen(text), padded = (len + 7) & ~(size_t)7;
    uint8_t *buf = malloc(8 + padded);
    if (!buf) {
        cJSON_free(text);
        return ml_fail(e, "safetensors header: out of memory");
    }
    store_le64(buf, padded);
    memcpy(buf + 8, text, len);
    memset(buf + 8 + len, ' ', padded - len);
    cJSON_free(text);
    *out = buf;
    *n = 8 + padded;
    return 0;
}

int st_writer_serialize(const st_writer *w, uint8_t **out, size_t *n, ml_error *e) {
    uint8_t *hdr;
    size_t hn;
    *out = NULL;
    *n = 0;
    if (build_header(w, &hdr, &hn, e) != 0) return -1;
    uint8_t *buf = hn <= SIZE_MAX - w->payload ? realloc(hdr, hn + w->payload) : NULL;
    if (!buf) {
        free(hdr);
        return ml_fail(e, "safetensors: out of memory for %zu payload bytes", w->payload);
    }
    size_t pos = hn;
    for (int i = 0; i < w->n; i++) {
        if (w->t[i].nbytes) memcpy(buf + pos, w->t[i].data, w->t[i].nbytes);
        pos += w->t[i].nbytes;
    }
    *out = buf;
    *n = pos;
    return 0;
}

int st_writer_save(const st_writer *w, const char *path, ml_error *e) {
    uint8_t *hdr;
    size_t hn;
    if (build_header(w, &hdr, &hn, e) != 0) return ml_wrap(e, "%s", path);
    /* Header and each payload are written as separate pieces: no second copy of the data. */
    const void **pieces = malloc(((size_t)w->n + 1) * sizeof *pieces);
    size_t *sizes = malloc(((size_t)w->n + 1) * sizeof *sizes);
    int rc;
    if (!pieces || !sizes) {
        rc = ml_fail(e, "%s: out of memory", path);
    } else {
        pieces[0] = hdr;
        sizes[0] = hn;
        for (int i = 0; i < w->n; i++) {
            pieces[i + 1] = w->t[i].data;
            sizes[i + 1] = w->t[i].nbytes;
        }
        rc = atomic_writev(path, (const void *const *)pieces, sizes, w->n + 1, e);
    }
    free(pieces);
    free(sizes);
    free(hdr);
    return rc;
}
