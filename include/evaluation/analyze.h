/* analyze.h — what a learned update looks like: the singular values of ΔW and how two
 * updates' subspaces overlap (Hu et al. 2021, "LoRA", §7).
 *
 * For a LoRA adapter ΔW = s·B·A (out,in), so rank(ΔW) <= r by construction; the effective
 * rank (σ_i > threshold·σ_max) shows how much of that budget training actually used. For a
 * full checkpoint (a full fine-tune or a merged model) ΔW = W_file − W_base, and the same
 * spectrum shows the rank the unconstrained update really has.
 *
 * Subspaces are passed as orthonormal basis vectors stored as rows, ordered by singular value
 * (the layout analyze_svd returns), so "the top-i directions" are simply the first i rows.
 * Everything is computed in double precision (LAPACKE dgesdd, linalg.h) from the float weights.
 */
#ifndef ANALYZE_H
#define ANALYZE_H

#include <stddef.h>

#include "minigpt.h"
#include "ml_error.h"

/* ---- linear algebra -------------------------------------------------------------------- */

/* SVD of a row-major (rows,cols) float matrix, k = min(rows,cols). Writes the k singular
 * values in descending order to sigma; when u is non-NULL the left singular vectors as the
 * rows of u (k,rows); when vt is non-NULL the right singular vectors as the rows of vt
 * (k,cols). All three buffers belong to the caller. Fails on a non-finite entry, a bad size,
 * or a LAPACK failure (message names what). */
int analyze_svd(const float *a, int rows, int cols, double *sigma, double *u, double *vt,
                ml_error *e);

/* Singular values only of a ΔW (out,in): sigma receives min(out,in) values, descending
 * (caller's buffer). Same errors as analyze_svd. */
int analyze_spectrum(const float *dw, int out, int in, double *sigma, ml_error *e);

/* Number of σ_i > threshold·σ_max among the n values (descending); 0 when all are zero. */
int analyze_effective_rank(const double *sigma, int n, double threshold);

/* Share of the energy Σσ² held by the top k values (descending): Σ_{i<k} σ_i² / Σ σ_i².
 * k >= n gives 1; an all-zero spectrum gives 0. */
double analyze_energy_share(const double *sigma, int n, int k);

/* Frobenius norm of n floats, accumulated in double. */
double analyze_frobenius(const float *a, size_t n);

/* Normalized subspace similarity of Hu et al. §7:
 *   φ(i,j) = ||U1[:i] · U2[:j]ᵀ||_F² / min(i,j)  ∈ [0,1],
 * with u1 and u2 orthonormal basis vectors of length dim stored as rows (at least i and j
 * rows, in order of importance). 1: one span contains the other; 0: orthogonal. Borrows
 * both buffers; returns NAN when i or j is not positive. */
double analyze_subspace_similarity(const double *u1, int i, const double *u2, int j, int dim);

/* Number of leading singular values above 1e-9·σ_max: the dimensions whose singular vectors
 * are determined by the matrix rather than by rounding (0 for a zero matrix). */
int analyze_numerical_rank(const double *sigma, int n);

/* ---- updates read from files ----------------------------------------------------------- */

#define ANALYZE_MAX_LAYERS (MINIGPT_MAX_LAYERS * MINIGPT_LINEARS_PER_BLOCK)

typedef struct {
    char path[MINIGPT_MAX_NAME]; /* "blocks.0.attn.q_proj" */
    int out, in;
    float *dw;      // (out,in) the update; owned by the analyze_update
    float *a;       // (r,in) the adapter's A; NULL for a full checkpoint; owned
    const float *w; // (out,in) the frozen base weight; borrowed from the base
} analyze_layer;

typedef struct {
    int is_adapter;     /* 1: LoRA adapter (ΔW = s·B·A); 0: full checkpoint */
    int rank;           /* r of an adapter; 0 for a full checkpoint */
    float alpha, scale; /* adapter only */
    int rslora;
    int dora; /* DoRA adapter: ΔW = m ⊙ (W + s·B·A)/‖W + s·B·A‖ − W, not bounded by r */
    int n_layers; /* adapted Linears (adapter) or every Linear (full) */
    analyze_layer layers[ANALYZE_MAX_LAYERS];
} analyze_update;

/* Reads path as an update of base (a loaded base checkpoint whose file digest is base_sha256,
 * may be NULL to skip the check). A file with "peft_type" metadata is an adapter (refused
 * when trained on another base, see lora_load); anything else must be a minigpt F32
 * checkpoint of the same config, and ΔW = W_file − W_base for every Linear. base is left as
 * it was (an adapter is installed only while it is read). u borrows base's weights, so base
 * must outlive it; free with analyze_update_free. */
int analyze_update_load(analyze_update *u, minigpt *base, const char *base_sha256, const char *path,
                        ml_error *e);
void analyze_update_free(analyze_update *u);

/* The layer of u with this path, or NULL. Pointer owned by u. */
const analyze_layer *analyze_update_find(const analyze_update *u, const char *path);

/* ---- per-layer report ------------------------------------------------------------------ */

typedef struct {
    int n;             /* min(out,in) */
    double *sigma;     // (n) singular values of ΔW, descending; owned
    double *u;         // (n,out) left singular vectors of ΔW as rows (ΔW's column space); owned
    int eff_rank;      /* σ_i > threshold·σ_max */
    double top1, top4; /* energy shares of the top 1 and top 4 σ */
    double fro;        /* ||ΔW||_F */
    double rel;        /* ||ΔW||_F / ||W||_F; NAN when W = 0 */
    int a_n;           /* rows of a_v: numerical rank of A (0 for a full checkpoint) */
    double *a_sigma;   // (min(r,in)) singular values of A; owned (NULL for a full checkpoint)
    double *a_v;       // (min(r,in),in) right singular vectors of A as rows (A's row space); owned
} analyze_report;

/* Spectrum, effective rank, energy shares and norms of one layer's update, plus A's row
 * space when it is an adapter. r is the adapter's rank (0 for a full checkpoint). Fills a
 * zeroed *rep; free with analyze_report_free (also after a failure). */
int analyze_layer_report(const analyze_layer *l, int r, double threshold, analyze_report *rep,
                         ml_error *e);
void analyze_report_free(analyze_report *rep);

#endif
