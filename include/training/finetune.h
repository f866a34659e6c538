/* finetune.h — fine-tuning a base model: a LoRA adapter, or (full = 1) every Linear weight.
 *
 * This is lora-train without the command line: it builds the adapter (init per SPEC §3 from
 * the seed), the engine and the trainable-tensor list, runs the training loop and leaves the
 * parameters with the best validation loss in place. Tests call it directly.
 */
#ifndef FINETUNE_H
#define FINETUNE_H

#include "dataset.h"
#include "lora.h"
#include "train_loop.h"

enum { FINETUNE_LORA = 0, FINETUNE_FULL_LINEAR = 1, FINETUNE_FULL_ALL = 2 };

typedef struct {
    int rank;
    float alpha;
    int rslora;
    unsigned targets;
    unsigned layers; /* bit (1 << block) per adapted block; 0 or LORA_ALL_LAYERS: every block */
    int full;        /* 0: LoRA; FINETUNE_FULL_LINEAR: the target Linear weights themselves (the
                        * full fine-tune baseline); FINETUNE_FULL_ALL: every parameter of the base */
    float loraplus_ratio; /* LoRA+: B's learning rate is ratio × A's (0 or 1: off; not full) */
    int dora;             /* DoRA: a trained magnitude per output row (lora.h; not full) */
    float dropout;        /* LoRA dropout on the adapter's input path, 0 <= p < 1 (not full) */
    int init;             /* lora_init_kind (lora_init.h); 0: kaiming, SPEC §3 (not full) */
    int lora_path;        /* lora_path (lora.h): thin, merged or auto (merged: not full, DoRA
                           * or dropout); auto decides for micro-batch x context rows */
    train_opts train;     /* steps, batch, lr, ..., seed, threads */

    /* NULL, or the parameters to start from (n_init_params floats; borrowed): an adapter
     * loaded with these settings, A, B and DoRA's m in lora's layout; kaiming init, not full */
    const float *init_params;
    size_t n_init_params;
    /* NULL, or the sha256 (hex) of the adapter file the run started from (lora-train
     * --init-from; borrowed): part of the fingerprint, so a resume must start from it too */
    const char *init_from_sha;
} finetune_opts;

typedef struct {
    minigpt *m;        /* the base; with full = 1 its Linear weights are trained in place; with a
                     * pissa/olora init its target weights become the residual W − s·B0·A0 */
    minigpt frozen;    /* the preservation term with full = 1 or a pissa/olora init: the untouched
                     * base; owned */
    lora adapter;      /* the trained adapter (rank 0 and unused when full = 1); owned */
    engine g;          /* owned */
    train_state state; /* owned */
    train_tensor *tensors;
    int n_tensors;
    train_job job;
    train_opts opts;
    train_result result;
} finetune;

/* Sets up everything for o on m; the datasets are borrowed (replay and val may be NULL).
 * The adapter starts as o->init says (lora_init.h), or with o->init_params as given;
 * pissa and olora change m's target weights to the residual (lora_save then writes the
 * adapter for the original base).
 * Free with finetune_free (which uninstalls the adapter). */
int finetune_init(finetune *f, minigpt *m, const dataset *train, const dataset *replay,
                  const dataset *val, const finetune_opts *o, const char *label, ml_error *e);

/* Trains to o->train.steps and puts the best validated parameters in place. A stop signal
 * ends early (f->result.interrupted) with the CURRENT parameters in place, so the caller can
 * save the training state first; finetune_use_best then puts the best so far in place. */
int finetune_run(finetune *f, ml_error *e);

/* Puts the best validated parameters in place (no-op without validation). */
void finetune_use_best(finetune *f);

/* The settings a resumed run must share, as compact JSON; malloc'ed, caller frees. The thread
 * count is not among them: results do not depend on it. The optimizer's settings other than
 * AdamW's, a LoRA+ ratio other than 1, an init other than kaiming, a LoRA compute path other
 * than thin and the adapter started from (init_from_sha256) are appended only when in use, so
 * that the fingerprint of a default run is the one written before they existed. */
char *finetune_fingerprint(const finetune_opts *o, const char *base_sha, const char *data_sha,
                           const char *val_sha, const char *replay_sha);

void finetune_free(finetune *f);

#endif
