/* lora.h — LoRA adapters on Mini-GPT's Linear layers: W_eff = W + s·B·A.
 *
 * For a target Linear of shape (out,in), A is (r,in), B is (out,r), s = α/r (or α/√r with
 * rsLoRA). A ~ U(−1/√in, 1/√in) (PyTorch's kaiming_uniform with a=√5) and B = 0, so at step 0
 * the adapted model equals the base exactly. The adapter installs itself in the model's Linear
 * slots (minigpt_linear_ext): forward adds s·(x·Aᵀ)·Bᵀ, backward produces dA and dB and passes
 * the input gradient through both paths. W and everything else stay frozen.
 *
 * Trainable parameters: Σ r·(in+out) over the targets, 2304·r for all 12 Linears of the
 * default model. Files: safetensors with PEFT names
 * base_model.model.<path>.lora_{A,B}.weight in F16 (see lora_save).
 *
 * Variants (lora_variant), as PEFT defines them:
 *   - DoRA (use_dora): W' = m ⊙ (W + s·B·A) / ‖W + s·B·A‖, the norm over the input dimension
 *     of each output row, m (out) trainable, initialized to the row norms of W (step 0 equals
 *     the base). As in PEFT (and the DoRA paper §4.3) the norm is a constant in the backward:
 *     the gradients are those of the forward with ‖W + s·B·A‖ held fixed. PEFT's forward:
 *     y = x·Wᵀ + b + (g − 1)⊙(x̃·Wᵀ) + g⊙s·(x̃·Aᵀ)·Bᵀ, g = m/‖W + s·B·A‖, x̃ the (dropped-out)
 *     input. The norms are cached: call lora_refresh after changing A, B or m. Σ out more
 *     parameters, saved as base_model.model.<path>.lora_magnitude_vector.weight (F32: fp16's
 *     rounding of m would scale whole rows and break the step-0 equality).
 *   - dropout p (lora_dropout): x̃ = x ⊙ mask/(1−p) on the adapter's input path only, in
 *     training steps only (minigpt_ext_call.step ≠ 0); the mask is a hash of (seed, step,
 *     layer, sequence in the batch, position, feature), so it does not depend on threads or
 *     micro-batches.
 *
 * Compute paths (lora_set_path; the same model, different graphs — equal up to float rounding):
 *   - thin (the default): forward x·Wᵀ then += s·(x·Aᵀ)·Bᵀ; backward dinp = dout·W + dxa·A.
 *   - merged (RunLoRA, Cherniuk et al. 2023): W' = W + s·B·A is formed once per optimizer step
 *     (lora_refresh) and the slot runs through it (minigpt_linear_ext.w_eff): forward x·W'ᵀ,
 *     backward dinp = dout·W' and xa = x·Aᵀ recomputed for dB and dA. It drops the two products
 *     of inner width r (xa·Bᵀ, dxa·A), the slowest on BLAS. Not with DoRA or dropout (they act
 *     on the adapter's input or output alone, which W' cannot keep apart).
 *   - auto: per layer, the one with fewer FLOPs (lora_step_flops) for the given rows.
 */
#ifndef LORA_H
#define LORA_H

#include <stddef.h>
#include <stdint.h>

#include "minigpt.h"
#include "ml_error.h"

#define LORA_MAX_RANK 64
#define LORA_MAX_STRENGTH 10.0f /* lora_set_strength */
#define LORA_ALL_TARGETS 0x3Fu  /* one bit per minigpt_linear_role */
#define LORA_ALL_LAYERS 0xFFFFu /* one bit per block index (MINIGPT_MAX_LAYERS) */

typedef struct lora lora;

typedef struct {
    lora *owner;
    minigpt_linear *slot;   /* the Linear this adapts */
    float *A;               // (r,in) view into owner->params
    float *B;               // (out,r)
    float *mag;             // (out) DoRA's magnitude, or NULL
    float *wnorm;           // (out) DoRA: ‖W + s·B·A‖ per row as of the last lora_refresh
    size_t a_off, b_off;    /* offsets of A and B in the parameter (and gradient) block */
    size_t m_off;           /* offset of mag (DoRA) */
    int index;              /* position among the adapter's layers (dropout streams) */
    float *weff;            // (out,in) the merged path's W + s·B·A; NULL: the thin path
    minigpt_linear_ext ext; /* installed in slot->ext */
} lora_layer;

struct lora {
    minigpt *m;
    int rank;
    float alpha;
    int rslora;
    float scale;         /* α/r, or α/√r with rsLoRA; 0 when r = 0 */
    unsigned targets;    /* bit (1 << role) for each targeted role */
    unsigned layer_mask; /* bit (1 << block) for each adapted block (all of m's by default) */
    int n_layers;
    lora_layer layers[MINIGPT_MAX_LAYERS * MINIGPT_LINEARS_PER_BLOCK];
    int dora;              /* DoRA (see above) */
    float dropout;         /* LoRA dropout probability; 0: off */
    uint64_t dropout_seed; /* the masks' stream */
    size_t n_params;       /* Σ r·(in+out), + Σ out with DoRA */
    float *params;         /* one block: A, B (and mag) of each layer in slot order; owned */
    float *wnorm;          /* DoRA's cached row norms of every layer; owned */
    int init;              /* lora_init_kind (lora_init.h) it was initialized with; 0: kaiming */
    float *init0;          /* pissa/olora: the initial A and B (params' layout), for the rank-2r
                            * conversion lora_save writes; NULL otherwise; owned */
    int path;              /* the lora_path asked of lora_set_path; LORA_PATH_THIN by default */
    float *weff;           /* the merged layers' W' blocks (Σ out·in of them); owned; or NULL */
};

/* The compute paths (see the top); the index of lora-train --lora-path. */
typedef enum { LORA_PATH_THIN = 0, LORA_PATH_MERGED, LORA_PATH_AUTO, LORA_PATH_COUNT } lora_path;

/* "thin", "merged", "auto"; NULL past the last (an opt_choice name function). */
const char *lora_path_name(int i);

/* FLOPs (multiply-add = 2) of one training step of one adapted Linear, in → out at rank r, over
 * N rows per W' (the rows the merged W' is formed for: a chunk, or a whole step), the frozen
 * base's own products included (bias adds and elementwise work not counted); dinp: whether the
 * input gradient is needed (not below block 0's q,k,v with a frozen base). The one place of
 * both formulas (auto, lora bench):
 *   thin    forward   2N·in·out + 2N·r·(in + out)          x·Wᵀ; xa = x·Aᵀ; += s·xa·Bᵀ
 *           backward  2N·r·(in + 2·out)                    dB, dxa = s·dout·B, dA
 *                     + dinp: 2N·in·out + 2N·r·in          dinp = dout·W + dxa·A
 *   merged  per W'    2·r·in·out                           W' = W + s·B·A
 *           forward   2N·in·out                            x·W'ᵀ
 *           backward  4N·r·(in + out)                      xa again, dB, dxa, dA
 *                     + dinp: 2N·in·out                    dinp = dout·W'
 * With the input gradient, merged saves 2N·r·(in+out) − 2·r·in·out: fewer FLOPs once
 * N > in·out/(in+out) (32 rows for 64 x 64, 52 for 64 x 256); without it once N > in.
 * r = 0: the base Linear alone. path LORA_PATH_AUTO: the smaller of the two. */
double lora_step_flops(int path, double N, int r, int in, int out, int dinp);

/* Sets the compute path of every layer (rows: the N of lora_step_flops that auto decides for,
 * e.g. micro-batch x context) and refreshes W'. merged with DoRA or dropout is an error naming
 * the flag; auto then keeps thin. Call before building workspaces, after A, B hold their initial
 * values (any later change of A, B, W or the scale needs lora_refresh). */
int lora_set_path(lora *a, int path, double rows, ml_error *e);

/* How many layers run the merged path. */
int lora_merged_layers(const lora *a);

/* The PEFT variants of lora_init_variant; all zero: plain LoRA. */
typedef struct {
    int dora;              /* use_dora */
    float dropout;         /* lora_dropout, 0 <= p < 1 */
    uint64_t dropout_seed; /* the masks' stream (training only) */
} lora_variant;

/* Parses a --targets list: comma-separated q,k,v,o (or q_proj..o_proj), fc1, fc2, and the
 * groups attn, ffn, all. Error names the unknown word. */
int lora_parse_targets(const char *spec, unsigned *mask, ml_error *e);

/* The targets as a PEFT target_modules JSON list, e.g. ["q_proj","k_proj"]; malloc'ed,
 * caller frees. */
char *lora_targets_json(unsigned mask);

/* Parses a --layers list: "all", or comma-separated block indices 0..max_layers-1 (PEFT's
 * layers_to_transform). Error names the bad entry. */
int lora_parse_layers(const char *spec, int max_layers, unsigned *mask, ml_error *e);

/* The blocks of mask that m has, as a PEFT layers_to_transform JSON list, e.g. [1];
 * malloc'ed, caller frees. */
char *lora_layers_json(const minigpt *m, unsigned mask);

/* Whether mask leaves out a block of m (then the adapter file records layers_to_transform). */
int lora_layers_restricted(const minigpt *m, unsigned mask);

/* Σ r·(in+out) over the targeted Linears of m, without allocating anything. */
size_t lora_count(const minigpt *m, int rank, unsigned targets);
/* The same over the targeted Linears of the blocks in layers only. */
size_t lora_count_layers(const minigpt *m, int rank, unsigned targets, unsigned layers);

/* Builds an adapter of rank r (0..LORA_MAX_RANK) on the targets of m with A and B zero,
 * and installs it in m's slots (r = 0 installs nothing: outputs equal the base). Build
 * workspaces after this. Free with lora_free, which uninstalls it. */
int lora_init(lora *a, minigpt *m, int rank, float alpha, int rslora, unsigned targets,
              ml_error *e);
/* lora_init on the blocks in layers only (LORA_ALL_LAYERS: every block); a mask naming a
 * block m does not have is an error. */
int lora_init_layers(lora *a, minigpt *m, int rank, float alpha, int rslora, unsigned targets,
                     unsigned layers, ml_error *e);
/* lora_init_layers with a variant (NULL: plain LoRA). DoRA needs rank >= 1; a dropout
 * outside 0 <= p < 1 is an error. */
int lora_init_variant(lora *a, minigpt *m, int rank, float alpha, int rslora, unsigned targets,
                      unsigned layers, const lora_variant *v, ml_error *e);
void lora_free(lora *a);

/* Once per optimizer step: DoRA recomputes the cached ‖W + s·B·A‖ of every row from the current
 * A, B, W and scale (the forward uses the cache, the backward treats it as a constant); the
 * merged path forms W' = W + s·B·A of its layers. No-op for thin plain LoRA. */
void lora_refresh(lora *a);

/* Takes a's plug-ins out of m's slots (outputs equal the base again) and keeps its weights,
 * so that another adapter can be loaded onto the same base; lora_install puts them back.
 * Rebuild workspaces after either. lora_install fails naming the first slot that holds
 * another plug-in. */
void lora_uninstall(lora *a);
int lora_install(lora *a, ml_error *e);

/* Adapter strength at inference (llama.cpp's --lora-scaled): sets the scale to S times the
 * trained one (α/r, or α/√r with rsLoRA), so forward adds S·s·B·A. S = 1 leaves the scale
 * bit for bit as trained; S = 0 makes the outputs equal the base's exactly. S must be finite
 * and in 0..LORA_MAX_STRENGTH. DoRA (PEFT's scaling): S scales the low-rank part inside,
 * W' = m ⊙ (W + S·s·B·A)/‖W + S·s·B·A‖; the learned magnitude stays, so S = 0 gives
 * m ⊙ W/‖W‖, not the base. */
int lora_set_strength(lora *a, float strength, ml_error *e);

/* The initialization of SPEC §3: A ~ U(−1/√in, 1/√in) from seed, B = 0 (DoRA: m = the row
 * norms of W, then lora_refresh). */
void lora_init_weights(lora *a, uint64_t seed);

/* DoRA: sets each magnitude to the row norms of W + s·B·A (so that the adapted model equals
 * the base while B·A = 0 or whatever A and B hold), and refreshes the norm cache; no-op
 * without DoRA. lora_init_weights does this itself; call it after another init. */
void lora_dora_reset(lora *a);

/* DoRA's merged rows: w (out,in), caller's, holds W + s·B·A of layer L; row j becomes
 * m_j · row / ‖row‖ (a zero row stays as it is). lora_merge_into and lora-analyze share it. */
void lora_dora_scale_rows(const lora_layer *L, float *w);

/* Adds s·B·A to each target's W in the model (DoRA: W = m ⊙ (W + s·B·A)/‖W + s·B·A‖) (then
 * uninstall the adapter with lora_free, or the update would count twice). Fails naming the first tensor whose merged weights are not
 * all finite (s·B·A overflows a float); the model's weights are then partly merged and must
 * not be saved. */
int lora_merge_into(const lora *a, ml_error *e);

/* Warnings of SPEC §3 for a rank on m's targets (r ≥ min(in,out)/2: efficiency gone;
 * r > min(in,out): more parameters than the layer), one line each into buf; returns how
 * many lines. */
int lora_rank_warnings(const minigpt *m, int rank, unsigned targets, char *buf, size_t n);

/* Writes the adapter: F16 tensors with PEFT names, in slot order, A before B; metadata
 * peft_type "LORA", r, lora_alpha, target_modules, use_rslora, base_sha256 (and
 * layers_to_transform when the adapter leaves out a block; use_dora "true" and the DoRA
 * magnitudes in F32 with DoRA; lora_dropout when it is not 0), init (the lora_init name), and
 * the n_meta extra pairs (provenance). With init0 (pissa, olora) it writes the conversion to
 * the original base instead (lora_init.h): rank 2r, A' = [A; A − A0], B' = [B − B0 | B0], lora_alpha
 * 2α (α·√2 with rsLoRA), and converted_from_r / converted_from_lora_alpha. A value that does
 * not fit in fp16 is an error naming the tensor; the file is written atomically. */
int lora_save(const lora *a, const char *path, const char *base_sha256, int n_meta,
              const char *const *keys, const char *const *values, ml_error *e);

/* Loads an adapter file, or a PEFT adapter directory (peft.h: adapter_open), onto m (zeroed
 * *a, installed like lora_init). Refuses a file whose
 * base_sha256 differs from base_sha256 (when that is non-NULL), whose tensors are missing,
 * extra, of another dtype or shape, or whose metadata is inconsistent; each message names
 * the file and what differs. A layers_to_transform list (or one integer) restricts the
 * adapter to those blocks; absent, it covers every block. */
int lora_load(lora *a, minigpt *m, const char *path, const char *base_sha256, ml_error *e);

/* Parameters lora_save writes: n_params, or 2·n_params for the rank-2r conversion. */
size_t lora_saved_params(const lora *a);

/* Whether the safetensors file at path is a LoRA adapter (it has "peft_type" metadata) rather
 * than a full checkpoint: *is_adapter gets 1 or 0 (1 for a PEFT adapter directory). Fails when
 * the file or directory cannot be opened or parsed. Nothing to free. */
int lora_probe(const char *path, int *is_adapter, ml_error *e);

#endif
