/* lora.c — LoRA adapters: the plug-in forward/backward, init, merge, and adapter files. */
#include "lora.h"

#include <cJSON.h>
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.h"
#include "rng.h"
#include "safetensors.h"
#include "text.h"

/* ---- targets ---------------------------------------------------------------------------- */

int lora_parse_targets(const char *spec, unsigned *mask, ml_error *e) {
    static const struct {
        const char *word;
        unsigned bits;
    } words[] = {{"q", 1u << MG_Q},        {"q_proj", 1u << MG_Q}, {"k", 1u << MG_K},
                 {"k_proj", 1u << MG_K},   {"v", 1u << MG_V},      {"v_proj", 1u << MG_V},
                 {"o", 1u << MG_O},        {"o_proj", 1u << MG_O}, {"fc1", 1u << MG_FC1},
                 {"fc2", 1u << MG_FC2},    {"attn", 0x0Fu},        {"ffn", 0x30u},
                 {"all", LORA_ALL_TARGETS}};
    unsigned m = 0;
    const char *p = spec;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        unsigned bits = 0;
        for (size_t i = 0; i < sizeof words / sizeof words[0] && !bits; i++)
            if (strlen(words[i].word) == len && strncmp(words[i].word, p, len) == 0)
                bits = words[i].bits;
        if (!bits)
            return ml_fail(e, "unknown target '%.*s' (use q,k,v,o,fc1,fc2,attn,ffn,all)", (int)len,
                           p);
        m |= bits;
        if (!end) break;
        p = end + 1;
    }
    if (!m) return ml_fail(e, "no targets given");
    *mask = m;
    return 0;
}

char *lora_targets_json(unsigned mask) {
    char buf[128] = "[";
    for (int r = 0; r < MINIGPT_LINEARS_PER_BLOCK; r++)
        if (mask & (1u << r)) {
            if (buf[1]) strcat(buf, ",");
            strcat(buf, "\"");
            strcat(buf, minigpt_role_name((minigpt_linear_role)r));
            strcat(buf, "\"");
        }
    strcat(buf, "]");
    return strdup(buf);
}

/* ---- layers (blocks) --------------------------------------------------------------------- */

int lora_parse_layers(const char *spec, int max_layers, unsigned *mask, ml_error *e) {
    if (!strcmp(spec, "all")) {
        *mask = LORA_ALL_LAYERS;
        return 0;
    }
    unsigned m = 0;
    const char *p = spec;
    for (;;) {
        const char *end = strchr(p, ',');
        const size_t len = end ? (size_t)(end - p) : strlen(p);
        char *stop;
        const long v = len ? strtol(p, &stop, 10) : -1;
        if (!len || p[0] < '0' || p[0] > '9' || stop != p + len || v >= max_layers ||
            v >= MINIGPT_MAX_LAYERS)
            return ml_fail(e,
                           "bad block index '%.*s' (use all, or indices 0..%d separated by commas)",
                           (int)(len > 16 ? 16 : len), p, max_layers - 1);
        m |= 1u << v;
        if (!end) break;
        p = end + 1;
    }
    *mask = m;
    return 0;
}

static unsigned all_layers(const minigpt *m) { return (1u << m->cfg.n_layers) - 1u; }

int lora_layers_restricted(const minigpt *m, unsigned mask) {
    return (mask & all_layers(m)) != all_layers(m);
}

char *lora_layers_json(const minigpt *m, unsigned mask) {
    char buf[128] = "[";
    for (int l = 0; l < m->cfg.n_layers; l++)
        if (mask & (1u << l))
            snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%d", buf[1] ? "," : "", l);
    strcat(buf, "]");
    return strdup(buf);
}

size_t lora_count(const minigpt *m, int rank, unsigned targets) {
    return lora_count_layers(m, rank, targets, LORA_ALL_LAYERS);
}

size_t lora_count_layers(const minigpt *m, int rank, unsigned targets, unsigned layers) {
    size_t n = 0;
    for (int i = 0; i < m->n_linears; i++)
        if ((targets & (1u << m->linears[i].role)) && (layers & (1u << m->linears[i].layer)))
            n += (size_t)rank * (size_t)(m->linears[i].in + m->linears[i].out);
    return n;
}

int lora_rank_warnings(const minigpt *m, int rank, unsigned targets, char *buf, size_t n) {
    int half = 0, bigger = 0, beyond = 0, min_dim = 1 << 30;
    for (int i = 0; i < m->n_linears; i++) {
        const minigpt_linear *L = &m->linears[i];
        if (!(targets & (1u << L->role))) continue;
        const int mn = L->in < L->out ? L->in : L->out;
        if (mn < min_dim) min_dim = mn;
        half |= 2 * rank >= mn;
        bigger |= (long)rank * (L->in + L->out) > (long)L->in * L->out;
        beyond |= rank > mn;
    }
    int lines = 0;
    size_t used = 0;
    buf[0] = '\0';
#define LINE(...)                                                                                  \
    do {                                                                                           \
        int k = snprintf(buf + used, n > used ? n - used : 0, __VA_ARGS__);                        \
        if (k > 0) used += (size_t)k;                                                              \
        lines++;                                                                                   \
    } while (0)
    if (rank > 0 && half)
        LINE("rank %d is at least min(in,out)/2 = %d of a target layer: past this point LoRA is "
             "no longer parameter-efficient\n",
             rank, min_dim / 2);
    if (rank > 0 && bigger)
        LINE(
            "at rank %d, LoRA has more parameters than a target layer itself (r·(in+out) > in·out)\n",
            rank);
    if (beyond)
        LINE("rank %d exceeds min(in,out) = %d of a target layer: rank(BA) cannot exceed it\n",
             rank, min_dim);
#undef LINE
    return lines;
}

/* ---- the plug-in ------------------------------------------------------------------------ */

/* out (N,out) += s·(inp·Aᵀ)·Bᵀ; saved (N,r) keeps xa = inp·Aᵀ for the backward. */
static void lora_forward(const minigpt_linear_ext *x, float *out, float *saved, const float *inp,
                         int N) {
    const lora_layer *L = x->ctx;
    const int r = L->owner->rank, in = L->slot->in, o = L->slot->out;
    float *xa = saved; // (N,r)
    gemm_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, r, in, 1.0f, inp, in, L->A, in, 0.0f, xa,
               r);
    gemm_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, o, r, L->owner->scale, xa, r, L->B, r,
               1.0f, out, o);
}

/* dB += s·doutᵀ·xa; dxa = s·dout·B; dA += dxaᵀ·inp; dinp += dxa·A.
 * saved holds xa (N,r) followed by room for dxa (N,r). */
static void lora_backward(const minigpt_linear_ext *x, float *dinp, float *grad, const float *dout,
                          float *saved, const float *inp, int N) {
    const lora_layer *L = x->ctx;
    const int r = L->owner->rank, in = L->slot->in, o = L->slot->out;
    const float s = L->owner->scale;
    const float *xa = saved;            // (N,r)
    float *dxa = saved + (size_t)N * r; // (N,r)
    float *dA = grad + L->a_off, *dB = grad + L->b_off;
    gemm_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, o, r, N, s, dout, o, xa, r, 1.0f, dB, r);
    gemm_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, r, o, s, dout, o, L->B, r, 0.0f, dxa,
               r);
    gemm_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, in, N, 1.0f, dxa, r, inp, in, 1.0f, dA,
               in);
    if (dinp) /* NULL when nothing below needs the input gradient */
        gemm_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, in, r, 1.0f, dxa, r, L->A, in,
                   1.0f, dinp, in);
}

/* ---- lifecycle -------------------------------------------------------------------------- */

/* α/r, or α/√r with rsLoRA; 0 at rank 0 */
static float trained_scale(const lora *a) {
    if (a->rank == 0) return 0.0f;
    return a->rslora ? a->alpha / sqrtf((float)a->rank) : a->alpha / (float)a->rank;
}

int lora_set_strength(lora *a, float strength, ml_error *e) {
    if (!(strength >= 0.0f && strength <= LORA_MAX_STRENGTH))
        return ml_fail(e, "adapter strength %g is out of range (0..%g)", (double)strength,
                       (double)LORA_MAX_STRENGTH);
    a->scale = strength == 1.0f ? trained_scale(a) : strength * trained_scale(a);
    return 0;
}

int lora_init(lora *a, minigpt *m, int rank, float alpha, int rslora, unsigned targets,
              ml_error *e) {
    return lora_init_layers(a, m, rank, alpha, rslora, targets, LORA_ALL_LAYERS, e);
}

int lora_init_layers(lora *a, minigpt *m, int rank, float alpha, int rslora, unsigned targets,
                     unsigned layers, ml_error *e) {
    memset(a, 0, sizeof *a);
    if (layers != LORA_ALL_LAYERS && (layers & ~all_layers(m)))
        return ml_fail(e, "--layers names a block the model does not have (blocks 0..%d)",
                       m->cfg.n_layers - 1);
    layers &= all_layers(m);
    if (!layers) return ml_fail(e, "--layers names no block");
    if (rank < 0 || rank > LORA_MAX_RANK)
        return ml_fail(e, "rank %d is out of range (0..%d)", rank, LORA_MAX_RANK);
    if (!(alpha > 0.0f) || !isfinite(alpha))
        return ml_fail(e, "alpha %g must be a positive number", alpha);
    if (!targets || (targets & ~LORA_ALL_TARGETS)) return ml_fail(e, "no valid targets");
    for (int i = 0; i < m->n_linears; i++)
        if (m->linears[i].ext)
            return ml_fail(e, "%s already has a plug-in installed", m->linears[i].path);
    a->m = m;
    a->rank = rank;
    a->alpha = alpha;
    a->rslora = rslora;
    a->targets = targets;
    a->layer_mask = layers;
    a->scale = trained_scale(a);
    if (rank > 0 && !(a->scale > 0.0f && isfinite(a->scale)))
        return ml_fail(e, "alpha %g at rank %d gives the scale %g, not a positive finite number",
                       (double)alpha, rank, (double)a->scale);
    a->n_params = lora_count_layers(m, rank, targets, layers);
    a->params = calloc(a->n_params ? a->n_params : 1, sizeof(float));
    if (!a->params) return ml_fail(e, "out of memory for %zu LoRA parameters", a->n_params);
    size_t off = 0;
    for (int i = 0; i < m->n_linears; i++) {
        minigpt_linear *slot = &m->linears[i];
        if (!(targets & (1u << slot->role)) || !(layers & (1u << slot->layer))) continue;
        lora_layer *L = &a->layers[a->n_layers++];
        L->owner = a;
        L->slot = slot;
        L->a_off = off;
        off += (size_t)rank * slot->in;
        L->b_off = off;
        off += (size_t)slot->out * rank;
        L->A = a->params + L->a_off;
        L->B = a->params + L->b_off;
        L->ext = (minigpt_linear_ext){lora_forward, lora_backward, 2 * rank, L};
        if (rank > 0) slot->ext = &L->ext; /* rank 0: nothing to add, the base path alone */
    }
    return 0;
}

void lora_free(lora *a) {
    for (int i = 0; i < a->n_layers; i++)
        if (a->layers[i].slot && a->layers[i].slot->ext == &a->layers[i].ext)
            a->layers[i].slot->ext = NULL;
    free(a->params);
    memset(a, 0, sizeof *a);
}

void lora_init_weights(lora *a, uint64_t seed) {
    rng r;
    rng_seed(&r, seed);
    for (int i = 0; i < a->n_layers; i++) {
        lora_layer *L = &a->layers[i];
        const float bound = 1.0f / sqrtf((float)L->slot->in);
        for (size_t j = 0; j < (size_t)a->rank * L->slot->in; j++)
            L->A[j] = bound * (2.0f * rng_uniform(&r) - 1.0f);
        memset(L->B, 0, sizeof(float) * (size_t)L->slot->out * a->rank);
    }
}

int lora_merge_into(const lora *a, ml_error *e) {
    if (a->rank == 0) return 0;
    for (int i = 0; i < a->n_layers; i++) {
        const lora_layer *L = &a->layers[i];
        // W (out,in) += s · B (out,r) · A (r,in)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, L->slot->out, L->slot->in, a->rank,
                    a->scale, L->B, a->rank, L->A, L->slot->in, 1.0f, L->slot->w, L->slot->in);
        const size_t n = (size_t)L->slot->out * (size_t)L->slot->in;
        for (size_t j = 0; j < n; j++)
            if (!isfinite(L->slot->w[j]))
                return ml_fail(e,
                               "%s.weight: the merged weight at %zu is not finite (scale %g "
                               "times B·A overflows a float)",
                               L->slot->path, j, (double)a->scale);
    }
    return 0;
}

/* ---- files ------------------------------------------------------------------------------ */

static void tensor_name(char *buf, size_t n, const lora_layer *L, char which) {
    snprintf(buf, n, "base_model.model.%s.lora_%c.weight", L->slot->path, which);
}

int lora_save(const lora *a, const char *path, const char *base_sha256, int n_meta,
              const char *const *keys, const char *const *values, ml_error *e) {
    st_writer *w = st_writer_new();
    char *targets = lora_targets_json(a->targets);
    int rc = (!w || !targets) ? ml_fail(e, "out of memory") : 0;
    char r_s[16], alpha_s[32];
    snprintf(r_s, sizeof r_s, "%d", a->rank);
    snprintf(alpha_s, sizeof alpha_s, "%.9g", (double)a->alpha);
    const char *mk[] = {"format",         "peft_type",  "r",          "lora_alpha",
                        "target_modules", "use_rslora", "base_sha256"};
    const char *mv[] = {"pt",       "LORA", r_s, alpha_s, targets, a->rslora ? "true" : "false",
                        base_sha256};
    for (int i = 0; !rc && i < 7; i++) rc = st_writer_meta(w, mk[i], mv[i], e);
    if (!rc && lora_layers_restricted(a->m, a->layer_mask)) { /* PEFT: absent means every block */
        char *lt = lora_layers_json(a->m, a->layer_mask);
        rc = lt ? st_writer_meta(w, "layers_to_transform", lt, e) : ml_fail(e, "out of memory");
        free(lt);
    }
    for (int i = 0; !rc && i < n_meta; i++) rc = st_writer_meta(w, keys[i], values[i], e);
    for (int i = 0; !rc && a->rank > 0 && i < a->n_layers; i++) {
        const lora_layer *L = &a->layers[i];
        char name[160];
        int64_t sa[2] = {a->rank, L->slot->in}, sb[2] = {L->slot->out, a->rank};
        tensor_name(name, sizeof name, L, 'A');
        rc = st_writer_add_f32(w, name, ST_F16, L->A, 2, sa, e);
        tensor_name(name, sizeof name, L, 'B');
        if (!rc) rc = st_writer_add_f32(w, name, ST_F16, L->B, 2, sb, e);
    }
    if (!rc) rc = st_writer_save(w, path, e);
    st_writer_free(w);
    free(targets);
    return rc;
}

/* Parses the PEFT metadata of an adapter file. */
static int read_config(const st_file *f, int *rank, float *alpha, int *rslora, unsigned *targets,
                       ml_error *e) {
    const char *pt = st_meta(f, "peft_type"), *r = st_meta(f, "r"), *al = st_meta(f, "lora_alpha");
    const char *tm = st_meta(f, "target_modules"), *rs = st_meta(f, "use_rslora");
    char shown[64]; /* metadata values quoted in messages: one line, bounded */
    if (!pt || strcmp(pt, "LORA") != 0)
        return ml_fail(e, "%s: not a LoRA adapter (metadata peft_type is %s%s%s)", f->label,
                       pt ? "\"" : "missing", pt ? ml_one_line(shown, sizeof shown, pt) : "",
                       pt ? "\"" : "");
    char *end;
    long rv = r ? strtol(r, &end, 10) : -1;
    if (!r || *end || rv < 0 || rv > LORA_MAX_RANK)
        return ml_fail(e, "%s: metadata r is %s, expected an integer 0..%d", f->label,
                       r ? ml_one_line(shown, sizeof shown, r) : "missing", LORA_MAX_RANK);
    double av = al ? strtod(al, &end) : -1;
    if (!al || *end || !(av > 0) || !isfinite((float)av) || !((float)av > 0))
        return ml_fail(e, "%s: metadata lora_alpha is %s, expected a positive number a float holds",
                       f->label, al ? ml_one_line(shown, sizeof shown, al) : "missing");
    if (!rs || (strcmp(rs, "true") && strcmp(rs, "false")))
        return ml_fail(e, "%s: metadata use_rslora must be \"true\" or \"false\"", f->label);
    if (!tm) return ml_fail(e, "%s: metadata target_modules is missing", f->label);
    /* a list of JSON inside the metadata: "q_proj\u0000junk" must not read as "q_proj" */
    cJSON *list = text_json_has_nul(tm, strlen(tm)) ? NULL : cJSON_Parse(tm);
    unsigned mask = 0;
    int bad = !cJSON_IsArray(list) || cJSON_GetArraySize(list) == 0;
    for (const cJSON *it = list ? list->child : NULL; it && !bad; it = it->next) {
        unsigned bit = 0;
        bad = !cJSON_IsString(it) || lora_parse_targets(it->valuestring, &bit, NULL) != 0 ||
              (bit & (bit - 1)) != 0; /* one module per entry */
        mask |= bit;
    }
    cJSON_Delete(list);
    if (bad)
        return ml_fail(
            e, "%s: metadata target_modules is not a list of q_proj,k_proj,v_proj,o_proj,fc1,fc2",
            f->label);
    *rank = (int)rv;
    *alpha = (float)av;
    *rslora = strcmp(rs, "true") == 0;
    *targets = mask;
    return 0;
}

/* PEFT's layers_to_transform: a list of block indices of m, or one index; absent: all. */
static int read_layers(const st_file *f, const minigpt *m, unsigned *layers, ml_error *e) {
    const char *lt = st_meta(f, "layers_to_transform");
    *layers = LORA_ALL_LAYERS;
    if (!lt) return 0;
    cJSON *v = cJSON_Parse(lt);
    unsigned mask = 0;
    int bad = !v || (cJSON_IsArray(v) && cJSON_GetArraySize(v) == 0);
    for (const cJSON *it = cJSON_IsArray(v) ? v->child : v; it && !bad;
         it = cJSON_IsArray(v) ? it->next : NULL) {
        const double d = cJSON_IsNumber(it) ? it->valuedouble : -1;
        bad = !(d >= 0 && d < m->cfg.n_layers && d == (int)d);
        if (!bad) mask |= 1u << (int)d;
    }
    cJSON_Delete(v);
    if (bad)
        return ml_fail(e, "%s: metadata layers_to_transform is not a list of block indices 0..%d",
                       f->label, m->cfg.n_layers - 1);
    *layers = mask;
    return 0;
}

int lora_load(lora *a, minigpt *m, const char *path, const char *base_sha256, ml_error *e) {
    memset(a, 0, sizeof *a);
    st_file f;
    if (st_open(&f, path, e)) return -1;
    int rank = 0, rslora = 0, rc;
    float alpha = 0.0f;
    unsigned targets = 0, layers = LORA_ALL_LAYERS;
    rc = read_config(&f, &rank, &alpha, &rslora, &targets, e);
    if (!rc) rc = read_layers(&f, m, &layers, e);
    const char *sha = st_meta(&f, "base_sha256");
    char shown_sha[16];
    if (!rc && base_sha256 && (!sha || strcmp(sha, base_sha256) != 0))
        rc = ml_fail(
            e, "%s was trained on another base model (base_sha256 %.12s…, this base is %.12s…)",
            path, sha ? ml_one_line(shown_sha, sizeof shown_sha, sha) : "missing", base_sha256);
    if (!rc && lora_init_layers(a, m, rank, alpha, rslora, targets, layers, e))
        rc = ml_wrap(e, "%s", path);
    if (rc) {
        st_close(&f);
        memset(a, 0, sizeof *a);
        return -1;
    }
    int expected = 0;
    for (int i = 0; !rc && rank > 0 && i < a->n_layers; i++) {
        const lora_layer *L = &a->layers[i];
        char name[160];
        int64_t sa[2] = {rank, L->slot->in}, sb[2] = {L->slot->out, rank};
        tensor_name(name, sizeof name, L, 'A');
        rc = st_read_f32(&f, name, ST_F16, L->A, 2, sa, e);
        tensor_name(name, sizeof name, L, 'B');
        if (!rc) rc = st_read_f32(&f, name, ST_F16, L->B, 2, sb, e);
        expected += 2;
    }
    if (!rc && f.n_tensors != expected) {
        /* name one tensor that is not ours */
        for (int i = 0; i < f.n_tensors && !rc; i++) {
            int ours = 0;
            for (int j = 0; j < a->n_layers && !ours && rank > 0; j++) {
                char na[160], nb[160];
                tensor_name(na, sizeof na, &a->layers[j], 'A');
                tensor_name(nb, sizeof nb, &a->layers[j], 'B');
                ours = !strcmp(f.tensors[i].name, na) || !strcmp(f.tensors[i].name, nb);
            }
            char shown_name[96], shown_tm[96]; /* untrusted: one line, bounded */
            if (!ours)
                rc = ml_fail(e, "%s: unexpected tensor '%s' (not among the targets %s of rank %d)",
                             path, ml_one_line(shown_name, sizeof shown_name, f.tensors[i].name),
                             ml_one_line(shown_tm, sizeof shown_tm, st_meta(&f, "target_modules")),
                             rank);
        }
    }
    st_close(&f);
    if (rc) lora_free(a);
    return rc;
}

int lora_probe(const char *path, int *is_adapter, ml_error *e) {
    st_file f;
    *is_adapter = 0;
    if (st_open(&f, path, e)) return -1;
    *is_adapter = st_meta(&f, "peft_type") != NULL;
    st_close(&f);
    return 0;
}
