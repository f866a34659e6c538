/* train_loop.h — the training loop shared by pretraining, LoRA and full fine-tuning.
 *
 * What is trained is a list of tensors (wherever their memory lives: the model's parameter
 * block or a plug-in's) with the offset of each one's gradient in the engine's gradient
 * block. One step: sample a batch (a fixed share from the replay set, if any), forward and
 * backward on all threads (grad_engine.h), clip the global gradient norm, one step of the
 * chosen optimizer (optimizer.h: AdamW by default) with a warmup + cosine schedule times each
 * tensor's learning-rate multiplier. Every eval_every steps the validation loss is measured and
 * the parameters with the best one are kept; at the end they are put back in place.
 */
#ifndef TRAIN_LOOP_H
#define TRAIN_LOOP_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "dataset.h"
#include "grad_engine.h"
#include "optimizer.h"
#include "rng.h"

/* The most optimizer steps a run may take (--steps, and the steps --epochs works out to). */
#define TRAIN_MAX_STEPS 100000000

typedef struct {
    float *p; /* the parameters */
    size_t n;
    size_t grad_off;  /* offset of their gradient in engine.grad */
    int decay;        /* weight decay applies to them */
    const char *name; /* for messages */
    float lr_mult;    /* its learning rate is the scheduled one times this (> 0; 1 for most,
                        * LoRA+ gives B the ratio); checked by train_run */
} train_tensor;

typedef struct {
    int steps;  /* optimizer steps */
    int batch;  /* sequences per step */
    int micro;  /* sequences per chunk (see grad_engine.h) */
    int warmup; /* linear warmup steps */
    float lr, min_lr_frac, weight_decay, clip, beta1, beta2, eps;
    int optimizer;  /* OPTIM_* (optimizer.h); 0 is AdamW */
    float momentum; /* SGD: μ (0: plain SGD) */
    int nesterov;   /* SGD: Nesterov momentum */
    int eval_every; /* validation every N steps (0: only at the end) */
    int log_every;  /* a log line every N steps when stderr is not a terminal (0: auto) */
    uint64_t seed;
    float replay_frac; /* share of each batch drawn from the replay set */
    float
        preserve_kl; /* λ of the preservation term on the replay sequences (grad_engine.h); 0: off */
    int threads;
    int quiet; /* no progress output */
} train_opts;

/* Where the loop is; everything a resumed run needs besides the parameters themselves. */
typedef struct {
    int step;        /* steps completed */
    rng data_rng;    /* shuffles of the training set */
    int *order, pos; /* current epoch order over the training set, next index */
    rng replay_rng;
    int *replay_order, replay_pos;
    optim_state opt; /* the optimizer's state slots over every trained float */
    float *best;     /* trained floats at the best validation loss */
    float *prev;     /* trained floats before the current update, to undo a bad one */
    double best_val; /* mean validation loss per target at best_step (INFINITY: none yet) */
    int best_step;
    size_t n_floats; /* total trained floats */
} train_state;

typedef struct {
    engine *g;
    const dataset *train, *replay, *val; /* replay and val may be NULL */
    const train_tensor *tensors;
    int n_tensors;
    const char *label; /* progress prefix, e.g. "lora-train" */
    /* called after each validation (may be NULL): learning curves, extra metrics */
    void (*on_eval)(void *ctx, int step, double train_loss, double val_loss);
    void *on_eval_ctx;
    /* called whenever the loop changed the trained parameters (may be NULL): a plug-in that
     * caches something derived from them (DoRA's weight norms) refreshes it */
    void (*on_params)(void *ctx);
    void *on_params_ctx;
} train_job;

typedef struct {
    int steps;       /* steps completed */
    double loss;     /* mean training loss over the last eval interval */
    double best_val; /* best validation loss (NAN without a validation set) */
    int best_step;
    double seconds;  /* wall time of the loop */
    long positions;  /* B·T positions processed */
    int interrupted; /* the signal that stopped the run, or 0 */
} train_result;

/* Set by a signal handler (SIGINT, SIGTERM) to stop the loop after the current step. */
extern volatile sig_atomic_t train_stop_signal;

/* Allocates state for job and options: fresh data order from o->seed, a zero state of
 * o->optimizer. */
int train_state_init(train_state *s, const train_job *job, const train_opts *o, ml_error *e);
void train_state_free(train_state *s);

/* The optimizer hyper-parameters of o. */
optim_hparams train_hparams(const train_opts *o);

/* Runs from s->step to o->steps, leaving the last parameters in place (the state keeps the
 * best validated ones; see train_use_best). A non-finite loss or gradient stops the run with
 * an error naming the step and tensor, before that step's update. A stop signal ends the run
 * early with r->interrupted set (still returning 0). Refuses a state of another optimizer than
 * o->optimizer and a tensor whose lr_mult is not a positive number. */
int train_run(const train_job *job, const train_opts *o, train_state *s, train_result *r,
              ml_error *e);

/* Puts the parameters of the best validation loss in place. Returns 1 if it did, 0 when
 * there is no validation set or no validation happened yet. */
int train_use_best(const train_job *job, const train_state *s);

/* Writes the state and the current values of the trained tensors atomically to path (a
 * safetensors file). fingerprint: JSON of every setting a resumed run must share (options,
 * data and base digests); it is stored and checked by train_state_load. The optimizer's slots are
 * saved as tensors named by the slot ("adam_m", "adam_v"; "momentum") and its name as metadata
 * "optimizer". */
int train_state_save(const char *path, const train_job *job, const train_state *s,
                     const char *fingerprint, ml_error *e);

/* Restores a state written by train_state_save into s (initialized for the same job) and the
 * trained tensors. Refuses a file of another optimizer (a file without the "optimizer" metadata
 * is AdamW's), a file whose fingerprint differs, naming the first setting that differs, or one
 * whose sizes do not fit the job. */
int train_state_load(const char *path, const train_job *job, train_state *s,
                     const char *fingerprint, ml_error *e);

/* Mean validation loss per target of the current parameters. */
double train_val_loss(const train_job *job);

#endif
