/* minigpt.c — Mini-GPT: the parameter table, the forward and backward pass, the loss.
 * Shapes follow the legend in minigpt.h.
 */
#include "minigpt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checked.h"
#include "fastmath.h"
#include "gemm.h"
#include "layers.h"
#include "rng.h"

/* ---- config ----------------------------------------------------------------------------- */

minigpt_config minigpt_default_config(void) {
    minigpt_config c = {.vocab_size = 64,
                        .d_model = 64,
                        .n_heads = 4,
                        .n_layers = 2,
                        .d_ff = 256,
                        .context = 32,
                        .ln_eps = 1e-5f,
                        .rope_base = 10000.0f};
    return c;
}

int minigpt_config_check(const minigpt_config *c, ml_error *e) {
    if (c->vocab_size < 2 || c->vocab_size > 256)
        return ml_fail(e, "vocab_size %d is outside 2..256", c->vocab_size);
    if (c->d_model < 2 || c->d_model > 4096)
        return ml_fail(e, "d_model %d is outside 2..4096", c->d_model);
    if (c->n_heads < 1 || c->d_model % c->n_heads != 0)
        return ml_fail(e, "n_heads %d does not divide d_model %d", c->n_heads, c->d_model);
    if ((c->d_model / c->n_heads) % 2 != 0)
        return ml_fail(e, "head size %d is odd; RoPE rotates pairs", c->d_model / c->n_heads);
    if (c->n_layers < 1 || c->n_layers > MINIGPT_MAX_LAYERS)
        return ml_fail(e, "n_layers %d is outside 1..%d", c->n_layers, MINIGPT_MAX_LAYERS);
    if (c->d_ff < 1 || c->d_ff > 65536) return ml_fail(e, "d_ff %d is outside 1..65536", c->d_ff);
    if (c->context < 1 || c->context > 4096)
        return ml_fail(e, "context %d is outside 1..4096", c->context);
    if (!(c->ln_eps > 0.0f && c->ln_eps < 1.0f))
        return ml_fail(e, "ln_eps %g is not in (0,1)", c->ln_eps);
    if (!(c->rope_base > 1.0f && isfinite(c->rope_base)))
        return ml_fail(e, "rope_base %g must be a finite number above 1", c->rope_base);
    return 0;
}

/* ---- the parameter table ---------------------------------------------------------------- */

/* The sizes a table row's shape is written in. */
typedef enum { DIM_NONE = 0, DIM_C, DIM_F } dim;

/* One tensor of every block. Its checkpoint name is "blocks.<l>.<module>.<param>"; for a
 * Linear, "blocks.<l>.<module>" is the slot's path and the module's last component its role
 * name (--targets, PEFT target_modules). */
typedef struct {
    const char *module; /* "ln1", "attn.q_proj", "ffn.fc1", ... */
    const char *param;  /* "weight" or "bias" */
    minigpt_kind kind;
    dim shape[2];  /* (out,in) for weights; shape[1] DIM_NONE for vectors */
    size_t view;   /* offsetof its float * in minigpt_block_views */
    int role;      /* the Linear slot (minigpt_linear_role) a weight or bias is of, or -1 */
    int resid_out; /* 1: a weight writing the residual stream (init scaled by 1/sqrt(2L)) */
} block_row;

#define VIEW(f) offsetof(minigpt_block_views, f)
#define NO_ROLE (-1)

/* Every block's tensors in checkpoint order. The parameter table (build_table), the views
 * (minigpt_carve) and the Linear slots (build_linears) are all derived from these rows. */
static const block_row block_rows[] = {
    /* module       param     kind              shape (out,in)     view          role     resid */
    {"ln1", "weight", MG_NORM, {DIM_C, DIM_NONE}, VIEW(ln1_w), NO_ROLE, 0},
    {"ln1", "bias", MG_NORM, {DIM_C, DIM_NONE}, VIEW(ln1_b), NO_ROLE, 0},
    {"attn.q_proj", "weight", MG_LINEAR_WEIGHT, {DIM_C, DIM_C}, VIEW(wq), MG_Q, 0},
    {"attn.k_proj", "weight", MG_LINEAR_WEIGHT, {DIM_C, DIM_C}, VIEW(wk), MG_K, 0},
    {"attn.v_proj", "weight", MG_LINEAR_WEIGHT, {DIM_C, DIM_C}, VIEW(wv), MG_V, 0},
    {"attn.o_proj", "weight", MG_LINEAR_WEIGHT, {DIM_C, DIM_C}, VIEW(wo), MG_O, 1},
    {"ln2", "weight", MG_NORM, {DIM_C, DIM_NONE}, VIEW(ln2_w), NO_ROLE, 0},
    {"ln2", "bias", MG_NORM, {DIM_C, DIM_NONE}, VIEW(ln2_b), NO_ROLE, 0},
    {"ffn.fc1", "weight", MG_LINEAR_WEIGHT, {DIM_F, DIM_C}, VIEW(fc1_w), MG_FC1, 0},
    {"ffn.fc1", "bias", MG_LINEAR_BIAS, {DIM_F, DIM_NONE}, VIEW(fc1_b), MG_FC1, 0},
    {"ffn.fc2", "weight", MG_LINEAR_WEIGHT, {DIM_C, DIM_F}, VIEW(fc2_w), MG_FC2, 1},
    {"ffn.fc2", "bias", MG_LINEAR_BIAS, {DIM_C, DIM_NONE}, VIEW(fc2_b), MG_FC2, 0},
};
enum { N_ROWS = sizeof block_rows / sizeof block_rows[0] };

static int dim_size(const minigpt_config *c, dim d) {
    return d == DIM_C ? c->d_model : d == DIM_F ? c->d_ff : 0;
}

/* Index in the tensor table of row j of block l: tok_emb first, then N_ROWS per block. */
static int block_tensor(int l, int j) { return 1 + l * N_ROWS + j; }

/* The table row of tensor i, or -1 for the embedding and ln_f. */
static int tensor_row(const minigpt *m, int i) {
    return i >= 1 && i < block_tensor(m->cfg.n_layers, 0) ? (i - 1) % N_ROWS : -1;
}

/* The row of role r's weight (kind MG_LINEAR_WEIGHT) or bias (MG_LINEAR_BIAS), or -1. */
static int role_row(int r, minigpt_kind kind) {
    for (int j = 0; j < N_ROWS; j++)
        if (block_rows[j].role == r && block_rows[j].kind == kind) return j;
    return -1;
}

/* Always-on check of the table: one weight row per role, at most one bias row of the weight's
 * out size, roles within MINIGPT_LINEARS_PER_BLOCK, views within minigpt_block_views. */
static int check_rows(ml_error *e) {
    for (int j = 0; j < N_ROWS; j++) {
        const block_row *b = &block_rows[j];
        const int linear = b->kind == MG_LINEAR_WEIGHT || b->kind == MG_LINEAR_BIAS;
        if (linear != (b->role >= 0) || b->role >= MINIGPT_LINEARS_PER_BLOCK ||
            b->view > sizeof(minigpt_block_views) - sizeof(float *))
            return ml_fail(e, "internal: block table row %s.%s is inconsistent", b->module,
                           b->param);
    }
    for (int r = 0; r < MINIGPT_LINEARS_PER_BLOCK; r++) {
        int nw = 0, nb = 0;
        for (int j = 0; j < N_ROWS; j++) {
            nw += block_rows[j].role == r && block_rows[j].kind == MG_LINEAR_WEIGHT;
            nb += block_rows[j].role == r && block_rows[j].kind == MG_LINEAR_BIAS;
        }
        const int jw = role_row(r, MG_LINEAR_WEIGHT), jb = role_row(r, MG_LINEAR_BIAS);
        if (nw != 1 || nb > 1 ||
            (jb >= 0 && (block_rows[jb].shape[0] != block_rows[jw].shape[0] ||
                         strcmp(block_rows[jb].module, block_rows[jw].module) != 0)))
            return ml_fail(e,
                           "internal: block table has %d weight and %d bias rows for Linear "
                           "role %d",
                           nw, nb, r);
    }
    return 0;
}

static void add_tensor(minigpt *m, const char *name, minigpt_kind kind, int d0, int d1) {
    minigpt_tensor *t = &m->tensors[m->n_tensors++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->kind = kind;
    t->ndim = d1 > 0 ? 2 : 1;
    t->shape[0] = d0;
    t->shape[1] = d1 > 0 ? d1 : 0;
    t->numel = (size_t)d0 * (size_t)(d1 > 0 ? d1 : 1);
    t->offset = m->n_params;
    m->n_params += t->numel;
}

/* The checkpoint's tensors, in file order: the size table every view is carved from. */
static void build_table(minigpt *m) {
    const minigpt_config *c = &m->cfg;
    const int C = c->d_model;
    char n[MINIGPT_MAX_NAME];
    add_tensor(m, "tok_emb.weight", MG_EMBEDDING, c->vocab_size, C);
    for (int l = 0; l < c->n_layers; l++)
        for (int j = 0; j < N_ROWS; j++) {
            const block_row *b = &block_rows[j];
            snprintf(n, sizeof n, "blocks.%d.%s.%s", l, b->module, b->param);
            add_tensor(m, n, b->kind, dim_size(c, b->shape[0]), dim_size(c, b->shape[1]));
        }
    add_tensor(m, "ln_f.weight", MG_NORM, C, 0);
    add_tensor(m, "ln_f.bias", MG_NORM, C, 0);
}

void minigpt_carve(const minigpt *m, float *block, minigpt_views *v) {
    /* the table order is fixed by build_table: embedding, N_ROWS tensors per block, ln_f */
    const minigpt_tensor *t = m->tensors;
    memset(v, 0, sizeof *v);
    v->tok_emb = block + t[0].offset;
    for (int l = 0; l < m->cfg.n_layers; l++)
        for (int j = 0; j < N_ROWS; j++) {
            float **slot = (float **)((char *)&v->blocks[l] + block_rows[j].view);
            *slot = block + t[block_tensor(l, j)].offset;
        }
    const int i = block_tensor(m->cfg.n_layers, 0);
    v->lnf_w = block + t[i].offset;
    v->lnf_b = block + t[i + 1].offset;
}

int minigpt_find_tensor(const minigpt *m, const char *name) {
    for (int i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0) return i;
    return -1;
}

const char *minigpt_role_name(minigpt_linear_role r) {
    const int j = role_row((int)r, MG_LINEAR_WEIGHT);
    if (j < 0) return "?";
    const char *dot = strrchr(block_rows[j].module, '.');
    return dot ? dot + 1 : block_rows[j].module;
}

static void build_linears(minigpt *m) {
    const minigpt_config *c = &m->cfg;
    for (int l = 0; l < c->n_layers; l++)
        for (int r = 0; r < MINIGPT_LINEARS_PER_BLOCK; r++) {
            minigpt_linear *L = &m->linears[l * MINIGPT_LINEARS_PER_BLOCK + r];
            const int jw = role_row(r, MG_LINEAR_WEIGHT), jb = role_row(r, MG_LINEAR_BIAS);
            const block_row *w = &block_rows[jw];
            snprintf(L->path, sizeof L->path, "blocks.%d.%s", l, w->module);
            L->layer = l;
            L->role = (minigpt_linear_role)r;
            L->out = dim_size(c, w->shape[0]);
            L->in = dim_size(c, w->shape[1]);
            L->w_tensor = block_tensor(l, jw);
            L->b_tensor = jb >= 0 ? block_tensor(l, jb) : -1;
            L->w = m->params + m->tensors[L->w_tensor].offset;
            L->b = L->b_tensor >= 0 ? m->params + m->tensors[L->b_tensor].offset : NULL;
            L->ext = NULL;
        }
}

minigpt_linear *minigpt_find_linear(minigpt *m, const char *path) {
    for (int i = 0; i < m->n_linears; i++)
        if (strcmp(m->linears[i].path, path) == 0) return &m->linears[i];
    return NULL;
}

int minigpt_init(minigpt *m, const minigpt_config *cfg, ml_error *e) {
    memset(m, 0, sizeof *m);
    if (check_rows(e) || minigpt_config_check(cfg, e)) return -1;
    m->cfg = *cfg;
    const int L = cfg->n_layers, P = cfg->d_model / cfg->n_heads / 2;
    m->tensors = calloc((size_t)(3 + N_ROWS * L), sizeof *m->tensors);
    m->n_linears = L * MINIGPT_LINEARS_PER_BLOCK;
    m->linears = calloc((size_t)m->n_linears, sizeof *m->linears);
    m->rope_cos = malloc((size_t)cfg->context * P * sizeof(float));
    m->rope_sin = malloc((size_t)cfg->context * P * sizeof(float));
    if (m->tensors && m->linears && m->rope_cos && m->rope_sin) {
        build_table(m);
        m->params = calloc(m->n_params, sizeof(float));
    }
    if (!m->params) {
        minigpt_free(m);
        return ml_fail(e, "out of memory allocating the model");
    }
    minigpt_carve(m, m->params, &m->p);
    build_linears(m);
    /* θ_i = base^(−2i/HS), i < HS/2; the angle at position t is t·θ_i */
    for (int t = 0; t < cfg->context; t++)
        for (int i = 0; i < P; i++) {
            double theta = pow((double)cfg->rope_base, -2.0 * i / (2.0 * P));
            m->rope_cos[t * P + i] = (float)cos(t * theta);
            m->rope_sin[t * P + i] = (float)sin(t * theta);
        }
    return 0;
}

void minigpt_free(minigpt *m) {
    free(m->tensors);
    free(m->params);
    free(m->linears);
    free(m->rope_cos);
    free(m->rope_sin);
    memset(m, 0, sizeof *m);
}

void minigpt_init_random(minigpt *m, uint64_t seed) {
    rng r;
    rng_seed(&r, seed);
    const float proj_scale = 1.0f / sqrtf(2.0f * (float)m->cfg.n_layers);
    for (int i = 0; i < m->n_tensors; i++) {
        const minigpt_tensor *t = &m->tensors[i];
        float *p = m->params + t->offset;
        const int is_weight = strstr(t->name, ".weight") != NULL;
        for (size_t j = 0; j < t->numel; j++) {
            switch (t->kind) {
            case MG_EMBEDDING: p[j] = 0.02f * rng_normal(&r); break;
            case MG_NORM: p[j] = is_weight ? 1.0f : 0.0f; break;
            case MG_LINEAR_BIAS: p[j] = 0.0f; break;
            case MG_LINEAR_WEIGHT: {
                /* residual-stream outputs start smaller so the stream grows slowly with depth */
                const int row = tensor_row(m, i);
                const int out_proj = row >= 0 && block_rows[row].resid_out;
                p[j] = 0.02f * rng_normal(&r) * (out_proj ? proj_scale : 1.0f);
                break;
            }
            }
        }
    }
}

minigpt_counts minigpt_count(const minigpt *m) {
    minigpt_counts c = {0};
    for (int i = 0; i < m->n_tensors; i++) {
        const minigpt_tensor *t = &m->tensors[i];
        c.total += t->numel;
        switch (t->kind) {
        case MG_EMBEDDING: c.embedding += t->numel; break;
        case MG_NORM: c.norms += t->numel; break;
        case MG_LINEAR_WEIGHT: c.linear_weights += t->numel; break;
        case MG_LINEAR_BIAS: c.linear_biases += t->numel; break;
        }
    }
    return c;
}

/* ---- workspace -------------------------------------------------------------------------- */

typedef struct {
    float **ptr;
    size_t n;
} carve_entry;

/* 16 floats = 64 bytes: every view starts on a cache line */
static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

int minigpt_ws_init(minigpt_ws *ws, const minigpt *m, int B, int T, ml_error *e) {
    memset(ws, 0, sizeof *ws);
    const minigpt_config *c = &m->cfg;
    if (B < 1 || T < 1 || T > c->context)
        return ml_fail(e, "workspace of %d x %d does not fit context %d", B, T, c->context);
    const size_t BT = (size_t)B * T, C = c->d_model, F = c->d_ff, V = c->vocab_size;
    const size_t NH = c->n_heads;
    carve_entry tab[64 + MINIGPT_MAX_LAYERS * 24];
    int n = 0;
#define ADD(p, count) tab[n++] = (carve_entry){&(p), (count)}
    ADD(ws->x0, BT * C);
    for (int l = 0; l < c->n_layers; l++) {
        minigpt_block_acts *a = &ws->layers[l];
        ADD(a->ln1, BT * C);
        ADD(a->ln1_mean, BT);
        ADD(a->ln1_rstd, BT);
        ADD(a->q, BT * C);
        ADD(a->k, BT * C);
        ADD(a->v, BT * C);
        ADD(a->att, (size_t)B * NH * T * T);
        ADD(a->atty, BT * C);
        ADD(a->res1, BT * C);
        ADD(a->ln2, BT * C);
        ADD(a->ln2_mean, BT);
        ADD(a->ln2_rstd, BT);
        ADD(a->fc1, BT * F);
        ADD(a->gelu, BT * F);
        ADD(a->res2, BT * C);
        for (int r = 0; r < MINIGPT_LINEARS_PER_BLOCK; r++) {
            const minigpt_linear_ext *x = m->linears[l * MINIGPT_LINEARS_PER_BLOCK + r].ext;
            if (x && x->save_per_row > 0) ADD(a->ext_saved[r], BT * (size_t)x->save_per_row);
        }
    }
    ADD(ws->lnf, BT * C);
    ADD(ws->lnf_mean, BT);
    ADD(ws->lnf_rstd, BT);
    ADD(ws->logits, BT * V);
    ADD(ws->dres, BT * C);
    ADD(ws->dtmp, BT * C);
    ADD(ws->dq, BT * C);
    ADD(ws->dk, BT * C);
    ADD(ws->dv, BT * C);
    ADD(ws->datty, BT * C);
    ADD(ws->dfc, BT * F);
    ADD(ws->tmp, BT * C);
    ADD(ws->datt, (size_t)T * T);
#undef ADD
    size_t total = 0;
    for (int i = 0; i < n; i++) total += round16(tab[i].n);
    size_t bytes;
    if (!size_mul_ok(&bytes, total, sizeof(float)))
        return ml_fail(e, "workspace of %zu floats does not fit in memory", total);
    ws->block = aligned_alloc(64, bytes);
    if (!ws->block) return ml_fail(e, "out of memory: workspace of %zu floats", total);
    memset(ws->block, 0, bytes);
    float *p = ws->block;
    for (int i = 0; i < n; i++) {
        *tab[i].ptr = p;
        p += round16(tab[i].n);
    }
    ws->n_floats = total;
    ws->B = B;
    ws->T = T;
    return 0;
}

void minigpt_ws_free(minigpt_ws *ws) {
    free(ws->block);
    memset(ws, 0, sizeof *ws);
}

/* ---- forward ---------------------------------------------------------------------------- */

/* use_ext NULL: the frozen base's Linear alone, whatever plug-in the slot holds */
static void linear_forward(const minigpt_linear *L, float *out, float *saved, const float *inp,
                           int N, const minigpt_ext_call *use_ext) {
    // out (N,out), inp (N,in)
    matmul_forward(out, inp, use_ext ? minigpt_linear_weight(L) : L->w, L->b, N, L->in, L->out);
    if (L->ext && use_ext && L->ext->forward) L->ext->forward(L->ext, out, saved, inp, N, use_ext);
}

static void forward(const minigpt *m, minigpt_ws *ws, const int *tokens, int B, int T,
                    int use_ext_flag) {
    const minigpt_config *c = &m->cfg;
    const int C = c->d_model, F = c->d_ff, V = c->vocab_size, NH = c->n_heads, N = B * T;
    const minigpt_ext_call *use_ext = use_ext_flag ? &ws->call : NULL;
    ws->tokens = tokens;
    ws->fwd_B = B;
    ws->fwd_T = T;
    encoder_forward(ws->x0, tokens, m->p.tok_emb, N, C);
    const float *x = ws->x0; // (B,T,C) the residual stream entering each block
    for (int l = 0; l < c->n_layers; l++) {
        minigpt_block_acts *a = &ws->layers[l];
        const minigpt_block_views *p = &m->p.blocks[l];
        const minigpt_linear *lin = m->linears + l * MINIGPT_LINEARS_PER_BLOCK;
        /* attention: res1 = x + o(attn(rope(q), rope(k), v)), q,k,v of LN1(x) */
        layernorm_forward(a->ln1, a->ln1_mean, a->ln1_rstd, x, p->ln1_w, p->ln1_b, N, C, c->ln_eps);
        linear_forward(&lin[MG_Q], a->q, a->ext_saved[MG_Q], a->ln1, N, use_ext);
        linear_forward(&lin[MG_K], a->k, a->ext_saved[MG_K], a->ln1, N, use_ext);
        linear_forward(&lin[MG_V], a->v, a->ext_saved[MG_V], a->ln1, N, use_ext);
        rope_forward(a->q, m->rope_cos, m->rope_sin, B, T, C, NH);
        rope_forward(a->k, m->rope_cos, m->rope_sin, B, T, C, NH);
        attention_forward(a->atty, a->att, a->q, a->k, a->v, B, T, C, NH);
        linear_forward(&lin[MG_O], ws->tmp, a->ext_saved[MG_O], a->atty, N, use_ext);
        residual_forward(a->res1, x, ws->tmp, N * C);
        /* MLP: res2 = res1 + fc2(GELU(fc1(LN2(res1)))) */
        layernorm_forward(a->ln2, a->ln2_mean, a->ln2_rstd, a->res1, p->ln2_w, p->ln2_b, N, C,
                          c->ln_eps);
        linear_forward(&lin[MG_FC1], a->fc1, a->ext_saved[MG_FC1], a->ln2, N, use_ext);
        gelu_forward(a->gelu, a->fc1, N * F);
        linear_forward(&lin[MG_FC2], ws->tmp, a->ext_saved[MG_FC2], a->gelu, N, use_ext);
        residual_forward(a->res2, a->res1, ws->tmp, N * C);
        x = a->res2;
    }
    layernorm_forward(ws->lnf, ws->lnf_mean, ws->lnf_rstd, x, m->p.lnf_w, m->p.lnf_b, N, C,
                      c->ln_eps);
    matmul_forward(ws->logits, ws->lnf, m->p.tok_emb, NULL, N, C, V); /* tied head */
}

void minigpt_forward(const minigpt *m, minigpt_ws *ws, const int *tokens, int B, int T) {
    forward(m, ws, tokens, B, T, 1);
}

void minigpt_forward_frozen(const minigpt *m, minigpt_ws *ws, const int *tokens, int B, int T) {
    forward(m, ws, tokens, B, T, 0);
}

void minigpt_log_softmax(const minigpt *m, const minigpt_ws *ws, float *out, int rows) {
    const long long tally_t0 = gemm_tally_op_begin();
    const int V = m->cfg.vocab_size, N = rows * ws->fwd_T;
    for (int n = 0; n < N; n++) {
        const float *l = ws->logits + (size_t)n * V; // (V)
        float *o = out + (size_t)n * V;              // (V)
        float maxv = l[0];
        for (int v = 1; v < V; v++)
            if (l[v] > maxv) maxv = l[v];
        double z = 0.0;
        for (int v = 0; v < V; v++) z += fast_expf(l[v] - maxv);
        const float lz = (float)log(z);
        for (int v = 0; v < V; v++) o[v] = l[v] - maxv - lz;
    }
    gemm_tally_op_end(TALLY_LOSS, tally_t0);
}

double minigpt_xent(const minigpt *m, minigpt_ws *ws, const int *targets, float grad_scale) {
    return minigpt_xent_kl(m, ws, targets, grad_scale, NULL, NULL, 0.0f, NULL);
}

double minigpt_xent_rows(const minigpt *m, const float *logits, const int *targets, int N) {
    const long long tally_t0 = gemm_tally_op_begin();
    const int V = m->cfg.vocab_size;
    double sum = 0.0;
    for (int n = 0; n < N; n++) { /* minigpt_xent_kl's operations without the gradient */
        const float *l = logits + (size_t)n * V; // (V)
        const int y = targets[n];
        if (y < 0) continue;
        float maxv = l[0];
        for (int v = 1; v < V; v++)
            if (l[v] > maxv) maxv = l[v];
        float ex[256]; /* V <= 256 (minigpt_config_check) */
        double z = 0.0;
        for (int v = 0; v < V; v++) ex[v] = fast_expf(l[v] - maxv);
        for (int v = 0; v < V; v++) z += ex[v];
        sum += log(z) - (double)(l[y] - maxv);
    }
    gemm_tally_op_end(TALLY_LOSS, tally_t0);
    return sum;
}

double minigpt_xent_kl(const minigpt *m, minigpt_ws *ws, const int *targets, float ce_scale,
                       const float *ref_logp, const int *kl_len, float kl_scale, double *kl_sum) {
    const long long tally_t0 = gemm_tally_op_begin();
    const int V = m->cfg.vocab_size, B = ws->fwd_B, T = ws->fwd_T;
    const int grads = ce_scale != 0.0f || kl_scale != 0.0f;
    double sum = 0.0, kl = 0.0;
    for (int n = 0; n < B * T; n++) {
        float *l = ws->logits + (size_t)n * V; // (V)
        const int y = targets[n];
        const int in_kl = kl_len && n % T < kl_len[n / T];
        const float *r = in_kl ? ref_logp + (size_t)n * V : NULL; // (V)
        if (y < 0 && !in_kl) {
            if (grads) memset(l, 0, (size_t)V * sizeof(float));
            continue;
        }
        float maxv = l[0];
        for (int v = 1; v < V; v++)
            if (l[v] > maxv) maxv = l[v];
        float ex[256]; /* V <= 256 (minigpt_config_check) */
        double z = 0.0;
        for (int v = 0; v < V; v++) ex[v] = fast_expf(l[v] - maxv);
        for (int v = 0; v < V; v++) z += ex[v];
        const double lz = log(z);
        if (y >= 0) sum += lz - (double)(l[y] - maxv);
        if (r) /* KL(p_ref ‖ p) = Σ p_ref·(log p_ref − log p) */
            for (int v = 0; v < V; v++)
                kl += (double)fast_expf(r[v]) * ((double)r[v] - ((double)(l[v] - maxv) - lz));
        if (!grads) continue;
        /* d/dz of ce·CE + kl·KL = ce·(p − onehot) + kl·(p − p_ref) */
        const float cs = y >= 0 ? ce_scale : 0.0f;
        const float inv = (float)(cs / z);
        for (int v = 0; v < V; v++) l[v] = ex[v] * inv;
        if (y >= 0) l[y] -= cs;
        if (r) {
            const float kinv = (float)(kl_scale / z);
            for (int v = 0; v < V; v++) l[v] += ex[v] * kinv - kl_scale * fast_expf(r[v]);
        }
    }
    if (kl_sum) *kl_sum = kl;
    gemm_tally_op_end(TALLY_LOSS, tally_t0);
    return sum;
}

/* ---- backward --------------------------------------------------------------------------- */

/* overwrite: dinp = (not +=) the base path's input gradient; the plug-in then adds to it */
static void linear_backward(const minigpt *m, const minigpt_ws *ws, const minigpt_linear *L,
                            float *dinp, int overwrite, float *grad, float *ext_grad,
                            const float *dout, float *saved, const float *inp, int N) {
    // dinp (N,in), dout (N,out), inp (N,in)
    float *dw = grad ? grad + m->tensors[L->w_tensor].offset : NULL;
    float *db = grad && L->b_tensor >= 0 ? grad + m->tensors[L->b_tensor].offset : NULL;
    matmul_backward(dinp, dw, db, dout, inp, minigpt_linear_weight(L), N, L->in, L->out, overwrite);
    if (L->ext) L->ext->backward(L->ext, dinp, ext_grad, dout, saved, inp, N, &ws->call);
}

void minigpt_backward(const minigpt *m, minigpt_ws *ws, float *grad, float *ext_grad) {
    const minigpt_config *c = &m->cfg;
    const int B = ws->fwd_B, T = ws->fwd_T;
    const int C = c->d_model, F = c->d_ff, V = c->vocab_size, NH = c->n_heads, N = B * T;
    minigpt_views g;
    if (grad) minigpt_carve(m, grad, &g);
    const int Lc = c->n_layers;
    /* head and final LayerNorm; ws->logits holds dlogits (B,T,V). Each gradient buffer's
     * first writer overwrites it, so nothing needs clearing. */
    const float *xL = ws->layers[Lc - 1].res2;
    matmul_backward(ws->dtmp, grad ? g.tok_emb : NULL, NULL, ws->logits, ws->lnf, m->p.tok_emb, N,
                    C, V, 1);
    layernorm_backward(ws->dres, grad ? g.lnf_w : NULL, grad ? g.lnf_b : NULL, ws->dtmp, xL,
                       m->p.lnf_w, ws->lnf_mean, ws->lnf_rstd, N, C, 1);
    for (int l = Lc - 1; l >= 0; l--) {
        minigpt_block_acts *a = &ws->layers[l];
        const minigpt_block_views *p = &m->p.blocks[l];
        minigpt_block_views *gb = grad ? &g.blocks[l] : NULL;
        const minigpt_linear *lin = m->linears + l * MINIGPT_LINEARS_PER_BLOCK;
        const float *x = l > 0 ? ws->layers[l - 1].res2 : ws->x0; // (B,T,C) block input
        /* MLP; ws->dres is d(res2) and becomes d(res1) by accumulation */
        linear_backward(m, ws, &lin[MG_FC2], ws->dfc, 1, grad, ext_grad, ws->dres,
                        a->ext_saved[MG_FC2], a->gelu, N);
        gelu_backward(ws->dfc, a->fc1, ws->dfc, N * F); /* in place: now d(fc1 pre-activation) */
        linear_backward(m, ws, &lin[MG_FC1], ws->dtmp, 1, grad, ext_grad, ws->dfc,
                        a->ext_saved[MG_FC1], a->ln2, N);
        layernorm_backward(ws->dres, gb ? gb->ln2_w : NULL, gb ? gb->ln2_b : NULL, ws->dtmp,
                           a->res1, p->ln2_w, a->ln2_mean, a->ln2_rstd, N, C, 0);
        /* attention; ws->dres is d(res1) and becomes d(x) */
        linear_backward(m, ws, &lin[MG_O], ws->datty, 1, grad, ext_grad, ws->dres,
                        a->ext_saved[MG_O], a->atty, N);
        attention_backward(ws->dq, ws->dk, ws->dv, ws->datt, ws->datty, a->att, a->q, a->k, a->v, B,
                           T, C, NH);
        rope_backward(ws->dq, m->rope_cos, m->rope_sin, B, T, C, NH);
        rope_backward(ws->dk, m->rope_cos, m->rope_sin, B, T, C, NH);
        /* below block 0's q,k,v lies only the embedding: with a frozen base nothing needs
         * their input gradient, so only the plug-ins' own gradients are computed there */
        const int need_dinp = grad || l > 0;
        float *dln1 = need_dinp ? ws->dtmp : NULL;
        linear_backward(m, ws, &lin[MG_Q], dln1, 1, grad, ext_grad, ws->dq, a->ext_saved[MG_Q],
                        a->ln1, N);
        linear_backward(m, ws, &lin[MG_K], dln1, 0, grad, ext_grad, ws->dk, a->ext_saved[MG_K],
                        a->ln1, N);
        linear_backward(m, ws, &lin[MG_V], dln1, 0, grad, ext_grad, ws->dv, a->ext_saved[MG_V],
                        a->ln1, N);
        if (need_dinp)
            layernorm_backward(ws->dres, gb ? gb->ln1_w : NULL, gb ? gb->ln1_b : NULL, ws->dtmp, x,
                               p->ln1_w, a->ln1_mean, a->ln1_rstd, N, C, 0);
    }
    if (grad) encoder_backward(g.tok_emb, ws->dres, ws->tokens, N, C);
}
