/* lora_init.h — how A and B start (lora-train --init), PEFT's init_lora_weights choices:
 *
 *   kaiming   A ~ U(−1/√in, 1/√in) (PyTorch's kaiming_uniform, a=√5), B = 0 — SPEC §3, the
 *             default, bit for bit lora_init_weights.
 *   gaussian  A ~ N(0, σ = 1/r) (PEFT: nn.init.normal_(A, std=1/r)), B = 0.
 *   pissa     PiSSA (Meng et al. 2024): W = U·S·Vᵀ, S_r = S[:r]/s, A = diag(√S_r)·V_rᵀ,
 *             B = U_r·diag(√S_r), so that s·B·A is W's top-r part; the frozen base becomes the
 *             residual W_res = W − s·B·A.
 *   olora     OLoRA (Büyükakyüz 2024): W = Q·R, A = R[:r], B = Q[:, :r] (no rescaling, as in
 *             PEFT); W_res = W − s·B·A.
 *
 * For pissa and olora the step-0 model equals the base (W_res + s·B·A = W up to float
 * rounding) but the adapter alone is only valid on W_res. lora_init_apply therefore keeps the
 * initial factors A0, B0 (lora.init0), and lora_save writes PEFT's conversion
 * (path_initial_model_for_weight_conversion): ΔW = s·(B·A − B0·A0) as a plain LoRA of rank
 * 2r on the ORIGINAL base, with lora_alpha doubled (α·√2 with rsLoRA) so that the scale stays
 * s. PEFT stacks A' = [A; A0], B' = [B | −B0]; the same product is stored here as
 * A' = [A; A − A0], B' = [B − B0 | B0], whose fp16 rounding scales with the learned change
 * rather than with W's principal part (and is exactly zero at step 0). The file applies to the
 * shipped base like any adapter.
 */
#ifndef LORA_INIT_H
#define LORA_INIT_H

#include <stdint.h>

#include "lora.h"

typedef enum {
    LORA_INIT_KAIMING = 0,
    LORA_INIT_GAUSSIAN,
    LORA_INIT_PISSA,
    LORA_INIT_OLORA,
    LORA_INIT_COUNT
} lora_init_kind;

/* The i-th init name ("kaiming", "gaussian", "pissa", "olora"), NULL past the last (static). */
const char *lora_init_name(int i);

/* Whether the init takes A and B from the base weight (pissa, olora): the trained adapter is
 * saved converted to rank 2r. */
int lora_init_uses_base(int kind);

/* The settings check that needs no model: a base-derived init needs a rank of 1..
 * LORA_MAX_RANK/2 (the saved adapter has rank 2r). One line naming --init and --rank. */
int lora_init_check_rank(int kind, int rank, ml_error *e);

/* Initializes a's A and B (a is installed on its model, fresh from lora_init_layers) by kind
 * from seed (kaiming, gaussian; pissa and olora are deterministic). pissa and olora also
 * replace each target W of the model by W_res in place and keep a copy of the initial A and
 * B in a->init0 (owned by a). Fails (naming the layer) when the rank exceeds min(in,out) of a
 * target, or the factorization fails; a's model may then be partly changed. */
int lora_init_apply(lora *a, int kind, uint64_t seed, ml_error *e);

#endif
