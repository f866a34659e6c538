/* lora.c — LoRA adapters: the plug-in forward/backward, init, merge, and adapter files. */
#include "lora.h"

#include <cJSON.h>
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "gemm.h"
#include "peft.h"
#include "lora_init.h"
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
                         int N, const minigpt_ext_call *call) {
    (void)call;
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
                          float *saved, const float *inp, int N, const minigpt_ext_call *call) {
    (void)call;
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

/* ---- the merged path (RunLoRA) ----------------------------------------------------------- */

/* The backward of a slot running through W' = W + s·B·A (the core's dout·W' is the whole input
 * gradient): xa = inp·Aᵀ again (the forward did not compute it); dB += s·doutᵀ·xa;
 * dxa = s·dout·B; dA += dxaᵀ·inp. saved: room for xa (N,r) and dxa (N,r). */
static void lora_backward_merged(const minigpt_linear_ext *x, float *dinp, float *grad,
                                 const float *dout, float *saved, const float *inp, int N,
                                 const minigpt_ext_call *call) {
    (void)call, (void)dinp;
    const lora_layer *L = x->ctx;
    const int r = L->owner->rank, in = L->slot->in, o = L->slot->out;
    const float s = L->owner->scale;
    float *xa = saved, *dxa = saved + (size_t)N * r; // (N,r) each
    float *dA = grad + L->a_off, *dB = grad + L->b_off;
    gemm_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, r, in, 1.0f, inp, in, L->A, in, 0.0f, xa,
               r);
    gemm_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, o, r, N, s, dout, o, xa, r, 1.0f, dB, r);
    gemm_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, r, o, s, dout, o, L->B, r, 0.0f, dxa,
               r);
    gemm_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, in, N, 1.0f, dxa, r, inp, in, 1.0f, dA,
               in);
}

static const char *const path_names[] = {"thin", "merged", "auto"};

const char *lora_path_name(int i) { return i >= 0 && i < LORA_PATH_COUNT ? path_names[i] : NULL; }

double lora_step_flops(int path, double N, int r, int in, int out, int dinp) {
    const double R = r, Din = in, Dout = out, base = 2 * N * Din * Dout * (dinp ? 2 : 1);
    if (r == 0) return base;
    const double thin = base + 2 * N * R * (Din + Dout) + 2 * N * R * (Din + 2 * Dout) +
                        (dinp ? 2 * N * R * Din : 0);
    const double merged = base + 2 * R * Din * Dout + 4 * N * R * (Din + Dout);
    if (path == LORA_PATH_AUTO) return merged < thin ? merged : thin;
    return path == LORA_PATH_MERGED ? merged : thin;
}

int lora_merged_layers(const lora *a) {
    int n = 0;
    for (int i = 0; i < a->n_layers; i++) n += a->layers[i].weff != NULL;
    return n;
}

int lora_set_path(lora *a, int path, double rows, ml_error *e) {
    if (!lora_path_name(path)) return ml_fail(e, "unknown LoRA compute path %d", path);
    const int variant = a->dora || a->dropout > 0.0f;
    if (path == LORA_PATH_MERGED && a->dora)
        return ml_fail(e, "--lora-path merged cannot fold DoRA's per-row normalization into W'; "
                          "use thin or auto with --dora");
    if (path == LORA_PATH_MERGED && a->dropout > 0.0f)
        return ml_fail(e,
                       "--lora-path merged cannot drop out the adapter's input alone (--dropout "
                       "%g); use thin or auto",
                       (double)a->dropout);
    if (!(rows >= 1.0)) return ml_fail(e, "LoRA compute path: %g rows per W'", rows);
    free(a->weff);
    a->weff = NULL;
    a->path = path;
    size_t total = 0;
    int merge[MINIGPT_MAX_LAYERS * MINIGPT_LINEARS_PER_BLOCK] = {0};
    for (int i = 0; i < a->n_layers && a->rank > 0 && !variant; i++) {
        const minigpt_linear *S = a->layers[i].slot;
        /* auto decides as if the input gradient were needed: the layer cannot know */
        merge[i] = path == LORA_PATH_MERGED ||
                   (path == LORA_PATH_AUTO &&
                    lora_step_flops(LORA_PATH_MERGED, rows, a->rank, S->in, S->out, 1) <
                        lora_step_flops(LORA_PATH_THIN, rows, a->rank, S->in, S->out, 1));
        if (merge[i]) total += (size_t)S->in * S->out;
    }
    if (total && !(a->weff = malloc(total * sizeof(float))))
        return ml_fail(e, "out of memory for the merged weights (%zu floats)", total);
    size_t off = 0;
    for (int i = 0; i < a->n_layers; i++) {
        lora_layer *L = &a->layers[i];
        L->weff = NULL;
        if (variant) continue; /* lora_forward_var / lora_backward_var stay */
        if (merge[i]) {
            L->weff = a->weff + off;
            off += (size_t)L->slot->in * L->slot->out;
            L->ext = (minigpt_linear_ext){NULL, lora_backward_merged, 2 * a->rank, L, L->weff};
        } else {
            L->ext = (minigpt_linear_ext){lora_forward, lora_backward, 2 * a->rank, L, NULL};
        }
    }
    lora_refresh(a);
    return 0;
}

/* ---- variants: DoRA and dropout --------------------------------------------------------- */

static uint64_t mix64(uint64_t z) { /* splitmix64's finalizer */
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Whether this call drops out: a training step of an adapter with dropout. */
static int dropping(const lora *a, const minigpt_ext_call *call) {
    return a->dropout > 0.0f && call && call->step != 0;
}

/* mk (N,in) = keep/(1−p) from the hash of (seed, step, layer, sequence, position, feature);
 * xd (N,in) = inp ⊙ mk. */
static void dropout_mask(const lora_layer *L, const minigpt_ext_call *call, float *xd, float *mk,
                         const float *inp, int N) {
    const lora *a = L->owner;
    const int in = L->slot->in, T = call->T > 0 ? call->T : 1;
    const float keep = 1.0f / (1.0f - a->dropout);
    const uint64_t base = mix64(mix64(mix64(a->dropout_seed) + call->step) + (uint64_t)L->index);
    for (int n = 0; n < N; n++) {
        const uint64_t seq = (uint64_t)(call->row0 + n / T), t = (uint64_t)(n % T);
        const uint64_t row = mix64(base ^ mix64((seq << 20) | t));
        for (int i = 0; i < in; i++) {
            const float u = (float)(mix64(row + (uint64_t)i) >> 40) * 0x1p-24f; /* [0,1) */
            const size_t k = (size_t)n * in + i;
            mk[k] = u >= a->dropout ? keep : 0.0f;
            xd[k] = inp[k] * mk[k];
        }
    }
}

/* DoRA's g = m/‖W + s·B·A‖ of row j (1 for a zero row: nothing to normalize). */
static float dora_g(const lora_layer *L, int j) {
    return L->wnorm[j] > 0.0f ? L->mag[j] / L->wnorm[j] : 1.0f;
}

/* The saved block of the variant path, in order: xa (N,r), dxa (N,r), with DoRA u (N,out)
 * and gd (N,out), with dropout xd (N,in) and mk (N,in). */
typedef struct {
    float *xa, *dxa, *u, *gd, *xd, *mk;
} var_saved;

static var_saved carve(const lora_layer *L, float *saved, int N) {
    const lora *a = L->owner;
    var_saved v = {0};
    float *p = saved;
    v.xa = p, p += (size_t)N * a->rank;
    v.dxa = p, p += (size_t)N * a->rank;
    if (a->dora) v.u = p, p += (size_t)N * L->slot->out, v.gd = p, p += (size_t)N * L->slot->out;
    if (a->dropout > 0.0f) v.xd = p, p += (size_t)N * L->slot->in, v.mk = p;
    return v;
}

/* x̃ = dropout(inp) (or inp), xa = x̃·Aᵀ; without DoRA out += s·xa·Bᵀ; with DoRA (PEFT)
 * out += (g−1)⊙(x̃·Wᵀ) + g⊙(s·xa·Bᵀ), keeping u = x̃·Wᵀ + s·xa·Bᵀ for dm. */
static void lora_forward_var(const minigpt_linear_ext *x, float *out, float *saved,
                             const float *inp, int N, const minigpt_ext_call *call) {
    const lora_layer *L = x->ctx;
    const lora *a = L->owner;
    const int r = a->rank, in = L->slot->in, o = L->slot->out;
    const var_saved v = carve(L, saved, N);
    const float *xin = inp; // (N,in) the adapter's input
    if (dropping(a, call)) {
        dropout_mask(L, call, v.xd, v.mk, inp, N);
        xin = v.xd;
    }
    gemm_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, r, in, 1.0f, xin, in, L->A, in, 0.0f,
               v.xa, r);
    if (!a->dora) {
        gemm_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, o, r, a->scale, v.xa, r, L->B, r,
                   1.0f, out, o);
        return;
    }
    float *xw = v.gd, *lo = v.u; /* gd is the backward's: scratch here */
    gemm_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, o, in, 1.0f, xin, in, L->slot->w, in,
               0.0f, xw, o);
    gemm_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, o, r, a->scale, v.xa, r, L->B, r, 0.0f,
               lo, o);
    for (int n = 0; n < N; n++)
        for (int j = 0; j < o; j++) {
            const size_t k = (size_t)n * o + j;
            const float g = dora_g(L, j);
            out[k] += (g - 1.0f) * xw[k] + g * lo[k];
            v.u[k] = xw[k] + lo[k];
        }
}

/* The backward of lora_forward_var with DoRA's norm a constant:
 * dm_j += Σ_n dout_nj·u_nj/‖·‖_j; gd = g⊙dout (DoRA) or dout; dB += s·gdᵀ·xa; dxa = s·gd·B;
 * dA += dxaᵀ·x̃; dx̃ = dxa·A (+ ((g−1)⊙dout)·W); dinp += mk⊙dx̃ (or dx̃). */
static void lora_backward_var(const minigpt_linear_ext *x, float *dinp, float *grad,
                              const float *dout, float *saved, const float *inp, int N,
                              const minigpt_ext_call *call) {
    const lora_layer *L = x->ctx;
    const lora *a = L->owner;
    const int r = a->rank, in = L->slot->in, o = L->slot->out;
    const float s = a->scale;
    const var_saved v = carve(L, saved, N);
    const int drop = dropping(a, call);
    const float *xin = drop ? v.xd : inp;
    float *dA = grad + L->a_off, *dB = grad + L->b_off;
    const float *gdo = dout; // (N,out) the gradient reaching the low-rank path
    if (a->dora) {
        float *dm = grad + L->m_off;
        for (int n = 0; n < N; n++)
            for (int j = 0; j < o; j++) {
                const size_t k = (size_t)n * o + j;
                const float g = dora_g(L, j);
                if (L->wnorm[j] > 0.0f) dm[j] += dout[k] * v.u[k] / L->wnorm[j];
                v.gd[k] = g * dout[k];
                v.u[k] = v.gd[k] - dout[k]; /* (g−1)⊙dout for the input gradient */
            }
        gdo = v.gd;
    }
    gemm_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, o, r, N, s, gdo, o, v.xa, r, 1.0f, dB, r);
    gemm_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, r, o, s, gdo, o, L->B, r, 0.0f, v.dxa,
               r);
    gemm_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, in, N, 1.0f, v.dxa, r, xin, in, 1.0f, dA,
               in);
    if (!dinp) return;              /* nothing below needs the input gradient */
    float *dx = drop ? v.xd : dinp; /* x̃ is used up: its room takes dx̃ */
    const float beta = drop ? 0.0f : 1.0f;
    gemm_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, in, r, 1.0f, v.dxa, r, L->A, in, beta,
               dx, in);
    if (a->dora)
        gemm_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, in, o, 1.0f, v.u, o, L->slot->w,
                   in, 1.0f, dx, in);
    if (drop)
        for (size_t k = 0; k < (size_t)N * in; k++) dinp[k] += v.mk[k] * dx[k];
}

/* ‖W_j + s·(B·A)_j‖ for every row j of a layer into wnorm (PEFT: W + scaling·(B@A)). */
static void row_norms(const lora_layer *L, float s, float *wnorm) {
    const int r = L->owner->rank, in = L->slot->in, o = L->slot->out;
    for (int j = 0; j < o; j++) {
        double sq = 0.0;
        for (int i = 0; i < in; i++) {
            float ba = 0.0f;
            for (int k = 0; k < r; k++) ba += L->B[(size_t)j * r + k] * L->A[(size_t)k * in + i];
            const float w = L->slot->w[(size_t)j * in + i] + s * ba;
            sq += (double)w * w;
        }
        wnorm[j] = (float)sqrt(sq);
    }
}

void lora_refresh(lora *a) {
    for (int i = 0; i < a->n_layers; i++) {
        const lora_layer *L = &a->layers[i];
        if (a->dora) row_norms(L, a->scale, L->wnorm);
        if (!L->weff) continue;
        // W' (out,in) = W + s · B (out,r) · A (r,in)
        memcpy(L->weff, L->slot->w, sizeof(float) * (size_t)L->slot->out * L->slot->in);
        gemm_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, L->slot->out, L->slot->in, a->rank,
                   a->scale, L->B, a->rank, L->A, L->slot->in, 1.0f, L->weff, L->slot->in);
    }
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
    lora_refresh(a); /* DoRA's norm includes the scaled update */
    return 0;
}

int lora_init(lora *a, minigpt *m, int rank, float alpha, int rslora, unsigned targets,
              ml_error *e) {
    return lora_init_layers(a, m, rank, alpha, rslora, targets, LORA_ALL_LAYERS, e);
}

int lora_init_layers(lora *a, minigpt *m, int rank, float alpha, int rslora, unsigned targets,
                     unsigned layers, ml_error *e) {
    return lora_init_variant(a, m, rank, alpha, rslora, targets, layers, NULL, e);
}

int lora_init_variant(lora *a, minigpt *m, int rank, float alpha, int rslora, unsigned targets,
                      unsigned layers, const lora_variant *v, ml_error *e) {
    memset(a, 0, sizeof *a);
    const lora_variant plain = {0, 0.0f, 0};
    if (!v) v = &plain;
    if (!(v->dropout >= 0.0f && v->dropout < 1.0f))
        return ml_fail(e, "LoRA dropout %g is out of range (0 <= p < 1)", (double)v->dropout);
    if (v->dora && rank < 1) return ml_fail(e, "DoRA needs a rank of at least 1");
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
    a->dora = v->dora;
    a->dropout = v->dropout;
    a->dropout_seed = v->dropout_seed;
    a->n_params = lora_count_layers(m, rank, targets, layers);
    size_t rows = 0; /* Σ out: DoRA's magnitudes */
    for (int i = 0; i < m->n_linears; i++)
        if ((targets & (1u << m->linears[i].role)) && (layers & (1u << m->linears[i].layer)))
            rows += (size_t)m->linears[i].out;
    if (a->dora) a->n_params += rows;
    a->params = calloc(a->n_params ? a->n_params : 1, sizeof(float));
    a->wnorm = a->dora ? calloc(rows, sizeof(float)) : NULL;
    if (!a->params || (a->dora && !a->wnorm)) {
        lora_free(a);
        return ml_fail(e, "out of memory for %zu LoRA parameters", a->n_params);
    }
    size_t off = 0, norm_off = 0;
    const int variant = a->dora || a->dropout > 0.0f;
    int per_row = 2 * rank;
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
        if (a->dora) {
            L->m_off = off;
            off += (size_t)slot->out;
            L->mag = a->params + L->m_off;
            L->wnorm = a->wnorm + norm_off;
            norm_off += (size_t)slot->out;
        }
        L->index = a->n_layers - 1;
        L->A = a->params + L->a_off;
        L->B = a->params + L->b_off;
        per_row = 2 * rank + (a->dora ? 2 * slot->out : 0) + (a->dropout > 0.0f ? 2 * slot->in : 0);
        L->ext = variant
                     ? (minigpt_linear_ext){lora_forward_var, lora_backward_var, per_row, L, NULL}
                     : (minigpt_linear_ext){lora_forward, lora_backward, 2 * rank, L, NULL};
        if (rank > 0) slot->ext = &L->ext; /* rank 0: nothing to add, the base path alone */
    }
    return 0;
}

void lora_free(lora *a) {
    lora_uninstall(a);
    free(a->params);
    free(a->wnorm);
    free(a->init0);
    free(a->weff);
    memset(a, 0, sizeof *a);
}

void lora_uninstall(lora *a) {
    for (int i = 0; i < a->n_layers; i++)
        if (a->layers[i].slot && a->layers[i].slot->ext == &a->layers[i].ext)
            a->layers[i].slot->ext = NULL;
}

int lora_install(lora *a, ml_error *e) {
    for (int i = 0; i < a->n_layers; i++) {
        const minigpt_linear *slot = a->layers[i].slot;
        if (slot->ext && slot->ext != &a->layers[i].ext)
            return ml_fail(e, "%s already has another plug-in installed", slot->path);
    }
    for (int i = 0; a->rank > 0 && i < a->n_layers; i++) a->layers[i].slot->ext = &a->layers[i].ext;
    return 0;
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
        if (a->dora) row_norms(L, a->scale, L->mag); /* B = 0: m = ‖W‖, so g = 1 exactly */
    }
    lora_refresh(a);
}

void lora_dora_reset(lora *a) {
    if (!a->dora) return;
    for (int i = 0; i < a->n_layers; i++) row_norms(&a->layers[i], a->scale, a->layers[i].mag);
    lora_refresh(a);
}

void lora_dora_scale_rows(const lora_layer *L, float *w) {
    for (int j = 0; j < L->slot->out; j++) {
        float *row = w + (size_t)j * L->slot->in;
        double sq = 0.0;
        for (int c = 0; c < L->slot->in; c++) sq += (double)row[c] * row[c];
        const float norm = (float)sqrt(sq), g = norm > 0.0f ? L->mag[j] / norm : 1.0f;
        for (int c = 0; c < L->slot->in; c++) row[c] *= g;
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
        if (a->dora) lora_dora_scale_rows(L, L->slot->w); /* DoRA: m ⊙ (W + s·B·A)/‖·‖ */
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

/* which: 'A', 'B', or 'm' for DoRA's magnitude (PEFT: lora_magnitude_vector.weight) */
static void tensor_name(char *buf, size_t n, const lora_layer *L, char which) {
    if (which == 'm')
        snprintf(buf, n, "base_model.model.%s.lora_magnitude_vector.weight", L->slot->path);
    else snprintf(buf, n, "base_model.model.%s.lora_%c.weight", L->slot->path, which);
}

size_t lora_saved_params(const lora *a) { return a->init0 ? 2 * a->n_params : a->n_params; }

/* The rank-2r conversion of a base-derived init (lora_init.h) for one layer into ca (2r,in)
 * and cb (out,2r), caller's buffers. ΔW = B·A − B0·A0 as PEFT's conversion has it
 * ([A; A0], [B | −B0]), factored as A' = [A; A − A0], B' = [B − B0 | B0]:
 * (B − B0)·A + B0·(A − A0) = B·A − B0·A0. The factors that are large (A, B0) multiply the small
 * learned changes, so the fp16 rounding of the file scales with the update, as for any LoRA,
 * not with W's principal part; at step 0 the update is exactly zero. */
static void convert_layer(const lora *a, const lora_layer *L, float *ca, float *cb) {
    const int r = a->rank, in = L->slot->in, out = L->slot->out;
    const float *a0 = a->init0 + L->a_off, *b0 = a->init0 + L->b_off;
    const size_t na = (size_t)r * in;
    memcpy(ca, L->A, sizeof(float) * na);
    for (size_t j = 0; j < na; j++) ca[na + j] = L->A[j] - a0[j];
    for (int i = 0; i < out; i++)
        for (int t = 0; t < r; t++) {
            cb[(size_t)i * 2 * r + t] = L->B[(size_t)i * r + t] - b0[(size_t)i * r + t];
            cb[(size_t)i * 2 * r + r + t] = b0[(size_t)i * r + t];
        }
}

int lora_save(const lora *a, const char *path, const char *base_sha256, int n_meta,
              const char *const *keys, const char *const *values, ml_error *e) {
    st_writer *w = st_writer_new();
    char *targets = lora_targets_json(a->targets);
    int rc = (!w || !targets) ? ml_fail(e, "out of memory") : 0;
    /* the rank-2r conversion keeps the scale: 2α/2r = α/r, and α·√2/√(2r) = α/√r */
    const int conv = a->init0 != NULL && a->rank > 0, rank = conv ? 2 * a->rank : a->rank;
    const float alpha = !conv ? a->alpha : a->rslora ? a->alpha * sqrtf(2.0f) : 2.0f * a->alpha;
    char r_s[16], alpha_s[32], r0_s[16], alpha0_s[32];
    snprintf(r_s, sizeof r_s, "%d", rank);
    snprintf(alpha_s, sizeof alpha_s, "%.9g", (double)alpha);
    snprintf(r0_s, sizeof r0_s, "%d", a->rank);
    snprintf(alpha0_s, sizeof alpha0_s, "%.9g", (double)a->alpha);
    const char *init = lora_init_name(a->init);
    const char *mk[] = {
        "format",     "peft_type",   "r",    "lora_alpha",       "target_modules",
        "use_rslora", "base_sha256", "init", "converted_from_r", "converted_from_lora_alpha"};
    const char *mv[] = {"pt",        "LORA",
                        r_s,         alpha_s,
                        targets,     a->rslora ? "true" : "false",
                        base_sha256, init ? init : "?",
                        r0_s,        alpha0_s};
    for (int i = 0; !rc && i < (conv ? 10 : 8); i++) rc = st_writer_meta(w, mk[i], mv[i], e);
    if (!rc && lora_layers_restricted(a->m, a->layer_mask)) { /* PEFT: absent means every block */
        char *lt = lora_layers_json(a->m, a->layer_mask);
        rc = lt ? st_writer_meta(w, "layers_to_transform", lt, e) : ml_fail(e, "out of memory");
        free(lt);
    }
    char drop_s[32]; /* the variants: written only when in use, PEFT's defaults otherwise */
    for (int digits = 6; digits <= 9; digits++) { /* the shortest that reads back: 0.1 */
        snprintf(drop_s, sizeof drop_s, "%.*g", digits, (double)a->dropout);
        if (strtof(drop_s, NULL) == a->dropout) break;
    }
    if (!rc && a->dora) rc = st_writer_meta(w, "use_dora", "true", e);
    if (!rc && a->dropout > 0.0f) rc = st_writer_meta(w, "lora_dropout", drop_s, e);
    for (int i = 0; !rc && i < n_meta; i++) rc = st_writer_meta(w, keys[i], values[i], e);
    float *conv_buf = NULL; /* A' and B' of the widest layer */
    if (!rc && conv) {
        size_t most = 0;
        for (int i = 0; i < a->n_layers; i++) {
            const size_t n = (size_t)rank * (a->layers[i].slot->in + a->layers[i].slot->out);
            if (n > most) most = n;
        }
        if (!(conv_buf = malloc(sizeof(float) * most))) rc = ml_fail(e, "out of memory");
    }
    for (int i = 0; !rc && rank > 0 && i < a->n_layers; i++) {
        const lora_layer *L = &a->layers[i];
        char name[160];
        int64_t sa[2] = {rank, L->slot->in}, sb[2] = {L->slot->out, rank};
        const float *A = L->A, *B = L->B;
        if (conv) {
            float *ca = conv_buf, *cb = conv_buf + (size_t)rank * L->slot->in;
            convert_layer(a, L, ca, cb);
            A = ca, B = cb;
        }
        tensor_name(name, sizeof name, L, 'A');
        rc = st_writer_add_f32(w, name, ST_F16, A, 2, sa, e);
        tensor_name(name, sizeof name, L, 'B');
        if (!rc) rc = st_writer_add_f32(w, name, ST_F16, B, 2, sb, e);
        const int64_t sm[1] = {L->slot->out};
        tensor_name(name, sizeof name, L, 'm');
        if (!rc && a->dora) rc = st_writer_add_f32(w, name, ST_F32, L->mag, 1, sm, e);
    }
    if (!rc) rc = st_writer_save(w, path, e);
    free(conv_buf);
    st_writer_free(w);
    free(targets);
    return rc;
}

/* The variant metadata (PEFT's use_dora, lora_dropout); absent: plain LoRA, no dropout. */
static int read_variant(const st_file *f, lora_variant *v, ml_error *e) {
    const char *ud = st_meta(f, "use_dora"), *ld = st_meta(f, "lora_dropout");
    char shown[64];
    memset(v, 0, sizeof *v);
    if (ud && strcmp(ud, "true") && strcmp(ud, "false"))
        return ml_fail(e, "%s: metadata use_dora is \"%s\", expected \"true\" or \"false\"",
                       f->label, ml_one_line(shown, sizeof shown, ud));
    v->dora = ud && !strcmp(ud, "true");
    if (ld) {
        char *end;
        const double p = strtod(ld, &end);
        if (!*ld || *end || !(p >= 0.0 && p < 1.0))
            return ml_fail(e, "%s: metadata lora_dropout is \"%s\", expected a number 0 <= p < 1",
                           f->label, ml_one_line(shown, sizeof shown, ld));
        v->dropout = (float)p;
        if (!(v->dropout < 1.0f)) v->dropout = 0.0f; /* 0.99999999 rounds to 1 in float */
    }
    return 0;
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
    st_dtype dt; /* F16; a PEFT directory's may be F32 */
    if (adapter_open(&f, path, &dt, e)) return -1;
    int rank = 0, rslora = 0, rc;
    float alpha = 0.0f;
    unsigned targets = 0, layers = LORA_ALL_LAYERS;
    lora_variant var;
    rc = read_config(&f, &rank, &alpha, &rslora, &targets, e);
    if (!rc) rc = read_layers(&f, m, &layers, e);
    if (!rc) rc = read_variant(&f, &var, e);
    const char *sha = st_meta(&f, "base_sha256");
    char shown_sha[16];
    struct stat st;
    const int is_dir = stat(path, &st) == 0 && S_ISDIR(st.st_mode);
    if (!rc && base_sha256 && !sha) /* e.g. a directory written by Python's PEFT */
        rc = ml_fail(e,
                     "%s records no base model digest, so minilora cannot check that it was "
                     "trained on this base; if it was, add %s \"%s\": \"%s\" to %s",
                     path, is_dir ? "the field" : "the metadata",
                     is_dir ? PEFT_SHA_FIELD : "base_sha256", base_sha256,
                     is_dir ? "its adapter_config.json" : "the file's __metadata__");
    else if (!rc && base_sha256 && strcmp(sha, base_sha256) != 0)
        rc = ml_fail(
            e, "%s was trained on another base model (base_sha256 %.12s…, this base is %.12s…)",
            path, ml_one_line(shown_sha, sizeof shown_sha, sha), base_sha256);
    if (!rc && lora_init_variant(a, m, rank, alpha, rslora, targets, layers, &var, e))
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
        rc = st_read_f32(&f, name, dt, L->A, 2, sa, e);
        tensor_name(name, sizeof name, L, 'B');
        if (!rc) rc = st_read_f32(&f, name, dt, L->B, 2, sb, e);
        expected += 2;
        const int64_t sm[1] = {L->slot->out};
        tensor_name(name, sizeof name, L, 'm');
        if (!rc && a->dora) rc = st_read_f32(&f, name, ST_F32, L->mag, 1, sm, e), expected++;
    }
    if (!rc && f.n_tensors != expected) {
        /* name one tensor that is not ours */
        for (int i = 0; i < f.n_tensors && !rc; i++) {
            int ours = 0;
            for (int j = 0; j < a->n_layers && !ours && rank > 0; j++) {
                char na[160], nb[160], nm[160];
                tensor_name(na, sizeof na, &a->layers[j], 'A');
                tensor_name(nb, sizeof nb, &a->layers[j], 'B');
                tensor_name(nm, sizeof nm, &a->layers[j], 'm');
                ours = !strcmp(f.tensors[i].name, na) || !strcmp(f.tensors[i].name, nb) ||
                       (a->dora && !strcmp(f.tensors[i].name, nm));
            }
            char shown_name[96], shown_tm[96]; /* untrusted: one line, bounded */
            if (!ours && !a->dora && strstr(f.tensors[i].name, ".lora_magnitude_vector"))
                rc = ml_fail(e,
                             "%s: unexpected tensor '%s': a DoRA magnitude, but the metadata "
                             "does not set use_dora to \"true\"",
                             path, ml_one_line(shown_name, sizeof shown_name, f.tensors[i].name));
            else if (!ours)
                rc = ml_fail(e, "%s: unexpected tensor '%s' (not among the targets %s of rank %d)",
                             path, ml_one_line(shown_name, sizeof shown_name, f.tensors[i].name),
                             ml_one_line(shown_tm, sizeof shown_tm, st_meta(&f, "target_modules")),
                             rank);
        }
    }
    st_close(&f);
    if (rc) lora_free(a);
    else lora_refresh(a);
    return rc;
}

int lora_probe(const char *path, int *is_adapter, ml_error *e) {
    st_file f;
    st_dtype dt;
    *is_adapter = 0;
    if (adapter_open(&f, path, &dt, e)) return -1;
    *is_adapter = st_meta(&f, "peft_type") != NULL;
    st_close(&f);
    return 0;
}
