/* optimizer.h — the optimizers (a table of kinds), gradient-norm clipping and the learning-rate
 * schedule.
 *
 * An optimizer kind is a name, the names of its state slots (each slot is one float per
 * trained parameter: "adam_m" and "adam_v" for AdamW, "momentum" for SGD) and a step function.
 * The state of a whole run lives in one block (llm.c style): slot s of the parameter at offset
 * i is mem[s·n + i], so each tensor's slots are carved from it at the tensor's offset, and the
 * training state file saves slot s as one tensor named by the slot.
 *
 * Kinds (weight decay is decoupled, as in AdamW: it is not part of the gradient nor of the
 * moments; lr is the scheduled rate times the tensor's multiplier, wd is 0 where decay does
 * not apply, t the 1-based step):
 *   adamw  m = β1·m + (1-β1)·g;  v = β2·v + (1-β2)·g²;
 *          p -= lr·( (m/(1-β1^t)) / (sqrt(v/(1-β2^t)) + ε) + wd·p )
 *   sgd    b = μ·b + g;  d = nesterov ? g + μ·b : b;
 *          p -= lr·( d + wd·p )                        (μ = 0: plain SGD, b is the gradient)
 *
 * Adding an optimizer: write its step function (optim_step_fn) in optimizer.c, add its row
 * (name, slot names, hyper-parameters it uses, step) at the end of the table there and its
 * OPTIM_* constant here; a new hyper-parameter also needs a field in optim_hparams, a bit in
 * OPTIM_HP_*, a line in optim_json and (to be a flag) a field of train_opts with its row in
 * TRAIN_OPT_DEFS (src/cli/common.h). Flags, state files, resume checks and provenance then
 * follow from the table.
 */
#ifndef OPTIMIZER_H
#define OPTIMIZER_H

#include <stddef.h>

#include "ml_error.h"

enum { OPTIM_ADAMW = 0, OPTIM_SGD = 1 }; /* rows of the table; 0 (the default) is AdamW */

#define OPTIM_MAX_SLOTS 4

/* Every optimizer's hyper-parameters besides the learning rate and weight decay. */
typedef struct {
    float beta1, beta2, eps; /* AdamW */
    float momentum;          /* SGD: μ (0: plain SGD) */
    int nesterov;            /* SGD: Nesterov momentum */
} optim_hparams;

/* Which hyper-parameters a kind uses (for provenance and messages). */
enum { OPTIM_HP_BETAS = 1, OPTIM_HP_EPS = 2, OPTIM_HP_MOMENTUM = 4 };

/* One step on n parameters p (n) with gradients g (n); slot[s] (n) is state slot s of these
 * parameters. t is the 1-based step number. */
typedef void (*optim_step_fn)(float *p, const float *g, float *const *slot, size_t n, float lr,
                              float wd, const optim_hparams *h, int t);

typedef struct {
    const char *name; /* "adamw": flags, state metadata, provenance */
    int n_slots;
    const char *slots[OPTIM_MAX_SLOTS]; /* tensor names in the training state file */
    unsigned hparams;                   /* OPTIM_HP_* bits */
    optim_step_fn step;
} optim_kind;

/* The kind at index i (OPTIM_*), or NULL past the last one. Static; never freed. */
const optim_kind *optim_kind_at(int i);

/* The name of kind i, or NULL past the last one (the shape of a choice list for opts.h). */
const char *optim_name_at(int i);

/* Index of the kind called name, or -1. */
int optim_find(const char *name);

/* The state of one optimizer for n trained floats: n_slots·n floats, zeroed at init. */
typedef struct {
    const optim_kind *kind;
    int kind_index;
    size_t n;
    float *mem; /* (n_slots·n) owned; slot s of float i at mem[s·n + i] */
} optim_state;

/* Allocates a zeroed state of kind for n floats. Free with optim_state_free. */
int optim_state_init(optim_state *s, int kind, size_t n, ml_error *e);
void optim_state_free(optim_state *s);

/* Slot s of the floats from offset off on (points into s->mem; not to be freed). */
float *optim_slot(const optim_state *s, int slot, size_t off);

/* One step of s's kind on p (n) with gradients g (n), the parameters at offset off of the
 * state (off + n <= s->n). */
void optim_step(const optim_state *s, size_t off, float *p, const float *g, size_t n, float lr,
                float wd, const optim_hparams *h, int t);

/* Writes the JSON members naming kind and its hyper-parameters into buf (n bytes), e.g.
 * "optimizer":"sgd","momentum":0.9,"nesterov":false — no braces, for provenance. */
void optim_json(char *buf, size_t n, int kind, const optim_hparams *h);

/* One AdamW step (Loshchilov & Hutter: decoupled weight decay, bias-corrected moments) on n
 * parameters p with gradients g and moments m, v. t is the 1-based step number. */
void adamw_step(float *p, const float *g, float *m, float *v, size_t n, float lr, float wd,
                float beta1, float beta2, float eps, int t);

/* One SGD step with momentum buffer b (formula above). */
void sgd_step(float *p, const float *g, float *b, size_t n, float lr, float wd, float momentum,
              int nesterov);

/* Sum of squares of g[0..n), accumulated in double. */
double sum_squares(const float *g, size_t n);

/* Learning rate at 0-based step: linear warmup over `warmup` steps to lr, then cosine decay
 * to lr·min_frac at the last step. */
float lr_at(int step, int steps, int warmup, float lr, float min_frac);

#endif
