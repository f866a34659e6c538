/* analyze_job.h — lora-analyze without the command line: the LoRA paper's §7 analysis (Hu et
 * al. 2021) of one or two learned updates against their base (the math is in analyze.h).
 *
 * Each file is read as an update of the base (an adapter: ΔW = s·B·A; a full checkpoint:
 * ΔW = W_file − W_base) and every layer gets its spectrum report. With two files, every layer
 * they both adapt gets two grids of the subspace similarity φ(i,j) at i, j = 1, 2, 4, ... and
 * the number of directions compared: A's row spaces (both adapters only) and ΔW's column
 * spaces (the directions above the threshold, never more than r for an adapter: beyond r the
 * singular vectors are rounding noise).
 *
 * With data, the update is also measured where it acts: ‖ΔW·x‖ on the inputs x the base model
 * feeds each layer on that data (the magnitude the lesson's scaling invariant is about), beside
 * ‖W·x‖ for scale.
 */
#ifndef ANALYZE_JOB_H
#define ANALYZE_JOB_H

#include "analyze.h"
#include "minigpt.h"
#include "ml_error.h"

#define ANALYZE_MAX_DIMS 16 /* 1,2,4,...,64 plus an odd rank fits easily */

typedef struct {
    const char *base;         /* base checkpoint the files were trained from */
    const char *const *files; /* (n_files) adapters or full checkpoints */
    int n_files;              /* 1 or 2 */
    double threshold;         /* effective rank counts σ_i > threshold·σ_max */
    const char *data;         /* JSONL whose activations measure ‖ΔW·x‖; NULL for none */
} analyze_spec;

/* One file's update and the report of each of its layers (rep[i] for up.layers[i]). */
typedef struct {
    const char *path; /* borrowed from the spec */
    analyze_update up;
    analyze_report rep[ANALYZE_MAX_LAYERS];
    /* with spec.data: over every real position of the data, the input x of each layer as the
     * base model computes it, the mean ‖ΔW·x‖ and the mean ‖W·x‖ (per layer) */
    int has_data;
    double dwx[ANALYZE_MAX_LAYERS], wx[ANALYZE_MAX_LAYERS];
    long positions;
} analyze_file;

/* φ(di[a], dj[b]) for rows from file 1 (k1 directions) and columns from file 2 (k2), vectors
 * of length dim. When k1 or k2 is 0 there is nothing to compare: ni = nj = 0. */
typedef struct {
    int k1, k2, dim;
    int ni, nj;
    int di[ANALYZE_MAX_DIMS], dj[ANALYZE_MAX_DIMS];
    double phi[ANALYZE_MAX_DIMS][ANALYZE_MAX_DIMS];
    double top1; /* top-1 overlap |cos| = sqrt(φ(1,1)) */
} analyze_grid;

/* A layer both files adapt, in file 1's order. */
typedef struct {
    int layer1, layer2;   /* its index in file 1's and file 2's update */
    int has_a_rows;       /* both files are adapters: a_rows is set */
    analyze_grid a_rows;  /* A's row spaces (dim = in) */
    analyze_grid dw_cols; /* ΔW's column spaces (dim = out) */
} analyze_pair;

/* All owned: free with analyze_results_free. */
typedef struct {
    minigpt base; /* the updates borrow its weights */
    char base_sha[65];
    int n_files;
    analyze_file *files; // (n_files)
    int n_pairs;         /* 0 with one file */
    analyze_pair *pairs; // (n_pairs)
} analyze_results;

/* Loads the base and each file, reports every layer and, with two files, every common layer's
 * grids into r (zeroed first). Two files without an adapted layer in common are refused. On
 * failure r holds nothing. */
int analyze_job_run(const analyze_spec *s, analyze_results *r, ml_error *e);
void analyze_results_free(analyze_results *r);

#endif
