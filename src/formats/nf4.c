/* nf4.c — NF4 blockwise quantization and its safetensors parts (layout in nf4.h). */
#include "nf4.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* QLoRA Appendix E / bitsandbytes: the quantiles of N(0,1) normalized to [-1, 1], with an
 * exact zero and 7 negative / 8 positive values. */
const float nf4_code[16] = {
    -1.0f,
    -0.6961928009986877f,
    -0.5250730514526367f,
    -0.39491748809814453f,
    -0.28444138169288635f,
    -0.18477343022823334f,
    -0.09105003625154495f,
    0.0f,
    0.07958029955625534f,
    0.16093020141124725f,
    0.24611230194568634f,
    0.33791524171829224f,
    0.44070982933044434f,
    0.5626170039176941f,
    0.7229568362236023f,
    1.0f,
};

size_t nf4_n_blocks(size_t n) { return (n + NF4_BLOCK - 1) / NF4_BLOCK; }
size_t nf4_n_packed(size_t n) { return (n + 1) / 2; }
size_t nf4_n_dq_blocks(size_t nb) { return (nb + NF4_DQ_BLOCK - 1) / NF4_DQ_BLOCK; }

int nf4_encode(float x) {
    /* The midpoint of two floats is exact in double, so this is the exact nearest code. */
    int q = 0;
    for (int i = 0; i < 15; i++)
        if ((double)x > ((double)nf4_code[i] + (double)nf4_code[i + 1]) * 0.5) q = i + 1;
    return q;
}

void nf4_quantize(uint8_t *packed, float *absmax, const float *w, size_t n) {
    memset(packed, 0, nf4_n_packed(n));
    for (size_t b = 0; b * NF4_BLOCK < n; b++) {
        const size_t lo = b * NF4_BLOCK, hi = lo + NF4_BLOCK < n ? lo + NF4_BLOCK : n;
        float a = 0.0f;
        for (size_t i = lo; i < hi; i++)
            if (fabsf(w[i]) > a) a = fabsf(w[i]);
        absmax[b] = a;
        for (size_t i = lo; i < hi; i++) {
            const int q = a > 0.0f ? nf4_encode(w[i] / a) : 7;
            packed[i / 2] |= (uint8_t)(i % 2 ? q : q << 4);
        }
    }
}

void nf4_dequantize(float *w, const uint8_t *packed, const float *absmax, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const int q = i % 2 ? packed[i / 2] & 15 : packed[i / 2] >> 4;
        w[i] = nf4_code[q] * absmax[i / NF4_BLOCK];
    }
}

void nf4_dq_quantize(int8_t *q, float *scale, float *mean, const float *absmax, size_t nb) {
    double acc = 0.0; /* in order, so that an independent implementation gets the same bits */
    for (size_t i = 0; i < nb; i++) acc += absmax[i];
    const float mu = nb ? (float)(acc / (double)nb) : 0.0f;
    *mean = mu;
    for (size_t b = 0; b * NF4_DQ_BLOCK < nb; b++) {
        const size_t lo = b * NF4_DQ_BLOCK, hi = lo + NF4_DQ_BLOCK < nb ? lo + NF4_DQ_BLOCK : nb;
        float s = 0.0f;
        for (size_t i = lo; i < hi; i++)
            if (fabsf(absmax[i] - mu) > s) s = fabsf(absmax[i] - mu);
        scale[b] = s;
        for (size_t i = lo; i < hi; i++) {
            float t = 0.0f;
            if (s > 0.0f) {
                t = (absmax[i] - mu) / s;
                t = rintf(t * 127.0f); /* ties to even */
                if (t > 127.0f) t = 127.0f;
                if (t < -127.0f) t = -127.0f;
            }
            q[i] = (int8_t)t;
        }
    }
}

void nf4_dq_dequantize(float *absmax, const int8_t *q, const float *scale, float mean, size_t nb) {
    for (size_t i = 0; i < nb; i++) {
        /* separate statements: no fused multiply-add, the same bits as the reference */
        float t = (float)q[i] / 127.0f;
        t = t * scale[i / NF4_DQ_BLOCK];
        absmax[i] = t + mean;
    }
}

/* "<name><suffix>" into buf; -1 when it does not fit. */
static int part_name(char *buf, size_t size, const char *name, const char *suffix, ml_error *e) {
    int k = snprintf(buf, size, "%s%s", name, suffix);
    if (k < 0 || (size_t)k >= size) return ml_fail(e, "tensor name '%s' is too long", name);
    return 0;
}

int nf4_write_tensor(st_writer *w, const char *name, const float *data, size_t n, int double_quant,
                     ml_error *e) {
    const size_t nb = nf4_n_blocks(n), np = nf4_n_packed(n), nd = nf4_n_dq_blocks(nb);
    uint8_t *packed = malloc(np ? np : 1);
    float *absmax = malloc((nb ? nb : 1) * sizeof *absmax);
    float *scale = malloc((nd ? nd : 1) * sizeof *scale);
    int8_t *q = malloc(nb ? nb : 1);
    char pn[256];
    int rc = (!packed || !absmax || !scale || !q) ? ml_fail(e, "%s: out of memory", name) : 0;
    if (!rc) {
        nf4_quantize(packed, absmax, data, n);
        const int64_t s_np[1] = {(int64_t)np};
        rc = part_name(pn, sizeof pn, name, ".nf4", e) ||
             st_writer_add_u8(w, pn, ST_U8, packed, 1, s_np, e);
    }
    if (!rc && !double_quant) {
        const int64_t s_nb[1] = {(int64_t)nb};
        rc = part_name(pn, sizeof pn, name, ".absmax", e) ||
             st_writer_add_f32(w, pn, ST_F32, absmax, 1, s_nb, e);
    } else if (!rc) {
        float mean;
        nf4_dq_quantize(q, scale, &mean, absmax, nb);
        const int64_t s_nb[1] = {(int64_t)nb}, s_nd[1] = {(int64_t)nd}, s_1[1] = {1};
        rc = part_name(pn, sizeof pn, name, ".absmax_q", e) ||
             st_writer_add_u8(w, pn, ST_I8, (const uint8_t *)q, 1, s_nb, e) ||
             part_name(pn, sizeof pn, name, ".absmax_scale", e) ||
             st_writer_add_f32(w, pn, ST_F32, scale, 1, s_nd, e) ||
             part_name(pn, sizeof pn, name, ".absmax_mean", e) ||
             st_writer_add_f32(w, pn, ST_F32, &mean, 1, s_1, e);
    }
    free(packed);
    free(absmax);
    free(scale);
    free(q);
    return rc ? -1 : 0;
}

/* Every value of x[0..n) (tensor `part` of f) must be >= 0 (finiteness: st_read_f32). */
static int check_nonneg(const st_file *f, const char *part, const float *x, size_t n, ml_error *e) {
    for (size_t i = 0; i < n; i++)
        if (x[i] < 0.0f)
            return ml_fail(e, "%s: tensor '%s' element %zu is negative (%g): a scale must be >= 0",
                           f->label, part, i, (double)x[i]);
    return 0;
}

/* Reads and checks the absmax of quantized tensor `name` (nb blocks) into absmax. */
static int read_absmax(const st_file *f, const char *name, float *absmax, size_t nb,
                       int double_quant, ml_error *e) {
    char pn[256];
    const int64_t s_nb[1] = {(int64_t)nb};
    if (!double_quant)
        return part_name(pn, sizeof pn, name, ".absmax", e) ||
                       st_read_f32(f, pn, ST_F32, absmax, 1, s_nb, e) ||
                       check_nonneg(f, pn, absmax, nb, e)
                   ? -1
                   : 0;
    const size_t nd = nf4_n_dq_blocks(nb);
    int8_t *q = malloc(nb ? nb : 1);
    float *scale = malloc((nd ? nd : 1) * sizeof *scale), mean;
    const int64_t s_nd[1] = {(int64_t)nd}, s_1[1] = {1};
    int rc = (!q || !scale) ? ml_fail(e, "%s: out of memory", name) : 0;
    if (!rc)
        rc = part_name(pn, sizeof pn, name, ".absmax_q", e) ||
             st_read_u8(f, pn, ST_I8, (uint8_t *)q, 1, s_nb, e);
    for (size_t i = 0; !rc && i < nb; i++)
        if (q[i] == -128)
            rc = ml_fail(e, "%s: tensor '%s' element %zu is -128, outside [-127, 127]", f->label,
                         pn, i);
    if (!rc)
        rc = part_name(pn, sizeof pn, name, ".absmax_scale", e) ||
             st_read_f32(f, pn, ST_F32, scale, 1, s_nd, e) || check_nonneg(f, pn, scale, nd, e) ||
             part_name(pn, sizeof pn, name, ".absmax_mean", e) ||
             st_read_f32(f, pn, ST_F32, &mean, 1, s_1, e);
    if (!rc) {
        nf4_dq_dequantize(absmax, q, scale, mean, nb);
        for (size_t i = 0; !rc && i < nb; i++)
            if (!isfinite(absmax[i]))
                rc =
                    ml_fail(e, "%s: tensor '%s': the dequantized absmax of block %zu is not finite",
                            f->label, name, i);
    }
    free(q);
    free(scale);
    return rc ? -1 : 0;
}

int nf4_read_tensor(const st_file *f, const char *name, float *dst, size_t n, int double_quant,
                    ml_error *e) {
    const size_t nb = nf4_n_blocks(n), np = nf4_n_packed(n);
    uint8_t *packed = malloc(np ? np : 1);
    float *absmax = malloc((nb ? nb : 1) * sizeof *absmax);
    char pn[256];
    const int64_t s_np[1] = {(int64_t)np};
    int rc = (!packed || !absmax) ? ml_fail(e, "%s: out of memory", name) : 0;
    if (!rc)
        rc = part_name(pn, sizeof pn, name, ".nf4", e) ||
             st_read_u8(f, pn, ST_U8, packed, 1, s_np, e);
    if (!rc && n % 2 && (packed[np - 1] & 15))
        rc = ml_fail(e, "%s: tensor '%s': the padding nibble of the last byte is %d, expected 0",
                     f->label, pn, packed[np - 1] & 15);
    if (!rc) rc = read_absmax(f, name, absmax, nb, double_quant, e);
    if (!rc) nf4_dequantize(dst, packed, absmax, n);
    free(packed);
    free(absmax);
    return rc ? -1 : 0;
}

int nf4_is_part(const char *part, const char *name, int double_quant) {
    const size_t k = strlen(name);
    if (strncmp(part, name, k) != 0) return 0;
    const char *s = part + k;
    if (!strcmp(s, ".nf4")) return 1;
    if (!double_quant) return !strcmp(s, ".absmax");
    return !strcmp(s, ".absmax_q") || !strcmp(s, ".absmax_scale") || !strcmp(s, ".absmax_mean");
}

char *nf4_code_json(void) {
    char *s = malloc(16 * 32 + 4);
    if (!s) return NULL;
    size_t k = 0;
    s[k++] = '[';
    for (int i = 0; i < 16; i++) /* %.9g reads back to the same float */
        k += (size_t)snprintf(s + k, 32, "%s%.9g", i ? "," : "", (double)nf4_code[i]);
    s[k++] = ']';
    s[k] = '\0';
    return s;
}

int nf4_check_code_json(const char *json, const char *label, ml_error *e) {
    cJSON *a = cJSON_Parse(json);
    int rc = 0;
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != 16)
        rc = ml_fail(e, "%s: metadata \"nf4_code\" is not an array of 16 numbers", label);
    for (int i = 0; !rc && i < 16; i++) {
        const cJSON *x = cJSON_GetArrayItem(a, i);
        if (!cJSON_IsNumber(x) || (float)x->valuedouble != nf4_code[i])
            rc = ml_fail(e,
                         "%s: metadata \"nf4_code\" entry %d is not %.9g: not the NF4 code table "
                         "of QLoRA",
                         label, i, (double)nf4_code[i]);
    }
    cJSON_Delete(a);
    return rc;
}
