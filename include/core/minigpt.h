/* minigpt.h — the Mini-GPT model: config, parameters, forward pass, backward pass, loss.
 *
 * The math is exactly SPEC.md §2: token embedding (no positions), n_layers pre-LN blocks of
 * RoPE causal self-attention and a GELU(tanh) MLP, a final LayerNorm and a head tied to the
 * embedding. All parameters live in one contiguous block carved into named views by a tensor
 * table whose names are the checkpoint's safetensors names.
 *
 * Shape legend (used in every `// (...)` comment in the model code)
 *   B   sequences in a micro-batch         T   positions per sequence (T <= context)
 *   C   d_model (64)                       NH  attention heads (4)
 *   HS  head size C/NH (16)                F   d_ff, MLP width (256)
 *   V   vocabulary size (64)               L   number of blocks (2)
 *   N   rows fed to a Linear, N = B*T
 *
 * Every Linear layer (q, k, v, o, fc1, fc2 of each block) is a slot, minigpt_linear, that
 * computes y = x·Wᵀ + b. A plug-in (the LoRA module) may extend a slot with its own forward
 * and backward; the core calls them without knowing what they compute.
 *
 * The core reads and writes no file: the config's JSON lives in model_config.h, checkpoints
 * (safetensors) in checkpoint.h.
 *
 * Adding a target layer (say a gate g_proj (F,C) beside fc1)
 *   1. one row in block_rows (minigpt.c): module "ffn.g_proj", param "weight", kind, symbolic
 *      shape {DIM_F, DIM_C}, its view VIEW(g_w), its role MG_G (a bias is a second row with
 *      the same module and role). The row's place in the table is its place in the checkpoint
 *      and in every block's views; the tensor table, minigpt_carve and the Linear slots
 *      (path "blocks.<l>.ffn.g_proj", role name "g_proj", in/out, bias) follow from it;
 *   2. its view field in minigpt_block_views and its role before MG_N_ROLES in
 *      minigpt_linear_role (MINIGPT_LINEARS_PER_BLOCK follows);
 *   3. the forward and backward code using it (linear_forward/linear_backward on lin[MG_G]),
 *      plus activations in minigpt_block_acts / minigpt_ws_init if it needs saved rows.
 * minigpt_init refuses a table that is inconsistent (a role without exactly one weight row).
 */
#ifndef MINIGPT_H
#define MINIGPT_H

#include <stddef.h>
#include <stdint.h>

#include "ml_error.h"

#define MINIGPT_MAX_LAYERS 16
#define MINIGPT_MAX_NAME 64

typedef struct {
    int vocab_size; /* V */
    int d_model;    /* C */
    int n_heads;    /* NH */
    int n_layers;   /* L */
    int d_ff;       /* F */
    int context;    /* maximum T */
    float ln_eps;
    float rope_base;
} minigpt_config;

/* The model of SPEC §2: V=64, C=64, NH=4, L=2, F=256, context 32, eps 1e-5, RoPE base 1e4. */
minigpt_config minigpt_default_config(void);

/* Checks that the numbers make a model this code can run (positive sizes, even head size,
 * C divisible by NH, L <= MINIGPT_MAX_LAYERS, V <= 256). Message names the bad field. */
int minigpt_config_check(const minigpt_config *cfg, ml_error *e);

/* What a parameter tensor is, for the inventory (the lesson's table groups by this). */
typedef enum { MG_EMBEDDING, MG_NORM, MG_LINEAR_WEIGHT, MG_LINEAR_BIAS } minigpt_kind;

typedef struct {
    char name[MINIGPT_MAX_NAME]; /* safetensors name, e.g. "blocks.0.attn.q_proj.weight" */
    minigpt_kind kind;
    int ndim;      /* 1 or 2 */
    int shape[2];  /* (out,in) for weights */
    size_t offset; /* in floats, from the start of the block */
    size_t numel;
} minigpt_tensor;

/* Views of one block's parameters (or of their gradients: the same layout), carved by the
 * per-block table in minigpt.c (one row per field). */
typedef struct {
    float *ln1_w, *ln1_b;     // (C)
    float *wq, *wk, *wv, *wo; // (C,C) each, (out,in)
    float *ln2_w, *ln2_b;     // (C)
    float *fc1_w;             // (F,C)
    float *fc1_b;             // (F)
    float *fc2_w;             // (C,F)
    float *fc2_b;             // (C)
} minigpt_block_views;

/* Named views into a parameter-shaped block (parameters or gradients). */
typedef struct {
    float *tok_emb; // (V,C)
    minigpt_block_views blocks[MINIGPT_MAX_LAYERS];
    float *lnf_w, *lnf_b; // (C)
} minigpt_views;

/* A plug-in extending a Linear slot: y += ext(x). Installed by lora.c.
 * w_eff:    NULL, or the plug-in's own weight for the slot (out,in), e.g. LoRA's merged
 *           W + s·B·A: the core then runs the forward and the input gradient through w_eff in
 *           place of w, and forward/backward add only what w_eff leaves out (forward may be
 *           NULL: nothing to add). The base's own gradients (dW, db) are unchanged.
 * forward:  out (N,out) += ext(inp (N,in)); may keep save_per_row floats per row in saved.
 * backward: dinp (N,in) += ∂/∂inp (dinp NULL: not needed), call as in its forward; accumulates the plug-in's own parameter gradients into
 *           grad, the caller's gradient block for plug-ins (see minigpt_backward); may use
 *           its saved rows as scratch (the forward that wrote them is done with). */
typedef struct minigpt_linear_ext minigpt_linear_ext;

/* Where the rows of a forward come from, for plug-ins that draw randomness per row (LoRA
 * dropout): sequences row0, row0+1, ... of the batch, T positions each. step 0: not a training
 * step (evaluation, validation, generation), nothing random. */
typedef struct {
    uint64_t step; /* the training step + 1; 0 outside training */
    int row0, T;
} minigpt_ext_call;

struct minigpt_linear_ext {
    void (*forward)(const minigpt_linear_ext *x, float *out, float *saved, const float *inp, int N,
                    const minigpt_ext_call *call);
    void (*backward)(const minigpt_linear_ext *x, float *dinp, float *grad, const float *dout,
                     float *saved, const float *inp, int N, const minigpt_ext_call *call);
    int save_per_row;
    void *ctx;
    const float *w_eff; // (out,in) or NULL (see above); last, so initializers may leave it out
};

/* The Linear slots of a block; each has one weight row (and maybe a bias row) in the table. */
typedef enum { MG_Q = 0, MG_K, MG_V, MG_O, MG_FC1, MG_FC2, MG_N_ROLES } minigpt_linear_role;
#define MINIGPT_LINEARS_PER_BLOCK MG_N_ROLES

/* One Linear slot: y = x·Wᵀ + b (+ ext). Views point into the model's parameter block. */
typedef struct {
    char path[MINIGPT_MAX_NAME]; /* "blocks.0.attn.q_proj", "blocks.1.ffn.fc2", ... */
    int layer;
    minigpt_linear_role role;
    int in, out;
    float *w;                      // (out,in)
    float *b;                      // (out) or NULL
    int w_tensor, b_tensor;        /* indices in the tensor table (b_tensor -1 without bias) */
    const minigpt_linear_ext *ext; /* NULL: the plain Linear */
} minigpt_linear;

/* The weight a forward with plug-ins runs through: the plug-in's w_eff when it has one, else
 * the slot's own w. Borrowed. */
static inline const float *minigpt_linear_weight(const minigpt_linear *L) {
    return L->ext && L->ext->w_eff ? L->ext->w_eff : L->w;
}

typedef struct {
    minigpt_config cfg;
    int n_tensors;
    minigpt_tensor *tensors; /* the size table, in checkpoint order; owned */
    size_t n_params;         /* total floats in params */
    float *params;           /* the one parameter block; owned */
    minigpt_views p;         /* views into params */
    int n_linears;           /* L * 6 */
    minigpt_linear *linears; /* q,k,v,o,fc1,fc2 of block 0, then block 1, ...; owned */
    float *rope_cos;         // (context, HS/2)
    float *rope_sin;         // (context, HS/2)
} minigpt;

/* Builds the tensor table and allocates a zeroed parameter block. Free with minigpt_free. */
int minigpt_init(minigpt *m, const minigpt_config *cfg, ml_error *e);
void minigpt_free(minigpt *m);

/* Fills views for any block laid out like the parameters (e.g. a gradient block). */
void minigpt_carve(const minigpt *m, float *block, minigpt_views *v);

/* Index of a tensor by name, or -1. */
int minigpt_find_tensor(const minigpt *m, const char *name);

/* The Linear slot with this path ("blocks.0.attn.q_proj"), or NULL. */
minigpt_linear *minigpt_find_linear(minigpt *m, const char *path);

/* Short name of a role as used by --targets and PEFT target_modules ("q_proj", "fc1", ...). */
const char *minigpt_role_name(minigpt_linear_role r);

/* Pretraining init (GPT-2 style): weights N(0, 0.02²), the output projections o and fc2
 * scaled by 1/sqrt(2L), biases 0, LayerNorm weights 1 and biases 0, embedding N(0, 0.02²).
 * Deterministic in seed. */
void minigpt_init_random(minigpt *m, uint64_t seed);

/* ---- activations ------------------------------------------------------------------------ */

/* Saved activations of one block, for up to B*T rows. */
typedef struct {
    float *ln1;                                  // (B,T,C)
    float *ln1_mean, *ln1_rstd;                  // (B,T)
    float *q, *k, *v;                            // (B,T,C), q and k after RoPE
    float *att;                                  // (B,NH,T,T) attention probabilities
    float *atty;                                 // (B,T,C) attention output, input of o_proj
    float *res1;                                 // (B,T,C) residual stream after attention
    float *ln2;                                  // (B,T,C)
    float *ln2_mean, *ln2_rstd;                  // (B,T)
    float *fc1;                                  // (B,T,F) pre-activation
    float *gelu;                                 // (B,T,F) GELU(fc1), the input of fc2
    float *res2;                                 // (B,T,C) block output
    float *ext_saved[MINIGPT_LINEARS_PER_BLOCK]; // (B,T,save_per_row) per slot, or NULL
} minigpt_block_acts;

/* Everything one forward+backward of a micro-batch of up to B sequences of T positions needs.
 * One allocation carved by a size table; one workspace per thread. */
typedef struct {
    int B, T; /* capacity */
    size_t n_floats;
    float *block;      /* owned */
    const int *tokens; // (B,T) of the last forward (borrowed from the caller)
    int fwd_B, fwd_T;  /* shape of the last forward */
    float *x0;         // (B,T,C) embeddings
    minigpt_block_acts layers[MINIGPT_MAX_LAYERS];
    float *lnf;                 // (B,T,C)
    float *lnf_mean, *lnf_rstd; // (B,T)
    float *logits;              // (B,T,V); after minigpt_xent with grads: dlogits
    /* backward scratch, reused by every block */
    float *dres;           // (B,T,C) gradient of the residual stream
    float *dtmp;           // (B,T,C)
    float *dq, *dk, *dv;   // (B,T,C)
    float *datty;          // (B,T,C)
    float *dfc;            // (B,T,F) gradient of the GELU output, then of fc1's
    float *tmp;            // (B,T,C) forward scratch: o_proj and fc2 outputs
    float *datt;           // (T,T) one head's attention gradient
    minigpt_ext_call call; /* handed to plug-ins by the next forward; zero: not training */
} minigpt_ws;

/* Allocates a workspace for micro-batches of up to B x T. Plug-ins installed in m's slots at
 * this moment get room for their saved rows. Free with minigpt_ws_free. */
int minigpt_ws_init(minigpt_ws *ws, const minigpt *m, int B, int T, ml_error *e);
void minigpt_ws_free(minigpt_ws *ws);

/* Forward pass over tokens (B,T) (borrowed until the backward); fills ws->logits (B,T,V).
 * B and T must be within the workspace's capacity and T <= context. */
void minigpt_forward(const minigpt *m, minigpt_ws *ws, const int *tokens, int B, int T);

/* Cross-entropy of the last forward against targets (B,T) (a target < 0 is masked).
 * Returns the sum of -log p(target) over unmasked positions, in double. When grad_scale is
 * non-zero, replaces ws->logits with dloss/dlogits = grad_scale · (softmax − onehot) on
 * unmasked positions and 0 on masked ones (pass 1/count for a mean loss). */
double minigpt_xent(const minigpt *m, minigpt_ws *ws, const int *targets, float grad_scale);

/* Σ −log p(target) over N rows of logits (N,V) with targets (N) (a target < 0 is masked), in
 * double: minigpt_xent's sum, bit for bit, for logits that come from elsewhere (kvcache.h). */
double minigpt_xent_rows(const minigpt *m, const float *logits, const int *targets, int N);

/* The frozen base's forward: as minigpt_forward with every plug-in skipped (the reference a
 * preservation term compares the adapted model with). Overwrites the workspace's activations;
 * no backward may follow it. */
void minigpt_forward_frozen(const minigpt *m, minigpt_ws *ws, const int *tokens, int B, int T);

/* Log-probabilities of the last forward's first `rows` sequences into out (rows,T,V)
 * (caller-owned); the logits are left as they are. */
void minigpt_log_softmax(const minigpt *m, const minigpt_ws *ws, float *out, int rows);

/* minigpt_xent plus a preservation term: at the first kl_len[b] positions of each row b
 * (kl_len NULL: none), KL(p_ref ‖ p) with p_ref = exp(ref_logp) (B,T,V) (rows without the
 * term need no values there). Returns the cross-entropy sum exactly as minigpt_xent does and
 * puts Σ KL into *kl_sum (may be NULL). When ce_scale or kl_scale is non-zero, ws->logits
 * becomes ce_scale·(softmax − onehot) [on unmasked targets] + kl_scale·(softmax − p_ref) [on
 * the term's positions], 0 elsewhere. With kl_len NULL the result equals minigpt_xent's bit
 * for bit. */
double minigpt_xent_kl(const minigpt *m, minigpt_ws *ws, const int *targets, float ce_scale,
                       const float *ref_logp, const int *kl_len, float kl_scale, double *kl_sum);

/* Backward pass of the last forward, after minigpt_xent with a non-zero grad_scale.
 * grad: a parameter-shaped block to accumulate into (+=), or NULL when the base is frozen
 * (then only input gradients flow, as plug-ins need). ext_grad: the gradient block handed to
 * plug-ins' backward (may be NULL when no plug-in is installed). */
void minigpt_backward(const minigpt *m, minigpt_ws *ws, float *grad, float *ext_grad);

/* ---- inventory -------------------------------------------------------------------------- */

typedef struct {
    size_t total;          /* all parameters (103,680 for the default config) */
    size_t linear_weights; /* 98,304 */
    size_t linear_biases;  /* 640 */
    size_t embedding;      /* 4,096 (tied head) */
    size_t norms;          /* 640 */
} minigpt_counts;

minigpt_counts minigpt_count(const minigpt *m);

#endif
