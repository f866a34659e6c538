/* lora_mix.h — several adapters of one base mixed into one (PEFT's add_weighted_adapter).
 *
 * Source i has weight w_i, trained scale s_i (α/r or α/√r) and factors A_i (r_i,in),
 * B_i (out,r_i), so its update is ΔW_i = s_i·B_i·A_i. The mixed adapter always has
 * lora_alpha = r and no rsLoRA, i.e. scale 1 (as PEFT sets lora_alpha = r), and per adapted
 * Linear:
 *
 *   linear  A = Σ c_i·A_i, B = Σ c_i·B_i with c_i = √(w_i·s_i) (PEFT "linear", task_arithmetic
 *           on A and on B). Needs the same rank, targets and blocks, and w_i >= 0. Its update
 *           is (Σ c_i B_i)(Σ c_i A_i): the weighted sum Σ w_i ΔW_i plus cross terms c_i c_j B_i A_j,
 *           so it is NOT the weighted sum of the updates unless the sources share factors.
 *   cat     A = [w_1 s_1 A_1; w_2 s_2 A_2; ...] (rows), B = [B_1, B_2, ...] (columns): rank Σ r_i
 *           (at most LORA_MAX_RANK), update exactly Σ w_i ΔW_i (PEFT "cat").
 *   svd     ΔW = Σ w_i ΔW_i, truncated to rank R by its SVD U·diag(σ)·Vᵀ: B = U_R·diag(σ_R),
 *           A = V_Rᵀ (PEFT "svd"). The best rank-R approximation (Eckart–Young): the error
 *           ||ΔW − B·A||_F² is Σ_{k>R} σ_k². R = 0 takes the largest source rank, as PEFT.
 *           Each singular pair's sign is fixed so that the largest |entry| of its row of A is
 *           positive: the result does not depend on the sign LAPACK happens to return.
 *           (PEFT's svd path weights get_delta_weight, which already includes s_i, by w_i·s_i
 *           again; we follow its documented intent, Σ w_i·ΔW_i, as for cat.)
 *
 * The mixed adapter targets the union of the sources' targets and blocks; a Linear that a
 * source does not adapt gets nothing from it.
 */
#ifndef LORA_MIX_H
#define LORA_MIX_H

#include "lora.h"
#include "minigpt.h"
#include "ml_error.h"

#define LORA_MIX_MAX 16 /* sources in one mix */

typedef enum { LORA_MIX_LINEAR, LORA_MIX_CAT, LORA_MIX_SVD } lora_mix_mode;

/* The name of mode i ("linear", "cat", "svd"), NULL outside them: the --combine choices. */
const char *lora_mix_mode_name(int i);

/* Builds into *out (zeroed first) the mix of src[0..n) with weights w[0..n) (finite) and
 * installs it on m like lora_init. Every source must have been
 * loaded on m (lora_load) and uninstalled (lora_uninstall); they are only read. labels[i]
 * names source i in messages (its file). svd_rank: the rank for LORA_MIX_SVD (0: the largest
 * source rank), ignored by the other modes. Fails with one line naming the source or the
 * tensor at fault (different ranks for linear, a negative linear weight, a cat rank above
 * LORA_MAX_RANK, an update that is not finite). Free *out with lora_free. */
int lora_mix(lora *out, minigpt *m, const lora *const *src, const char *const *labels,
             const float *w, int n, lora_mix_mode mode, int svd_rank, ml_error *e);

#endif
