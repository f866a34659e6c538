/* optimizer.h — AdamW, gradient-norm clipping and the learning-rate schedule. */
#ifndef OPTIMIZER_H
#define OPTIMIZER_H

#include <stddef.h>

/* One AdamW step (Loshchilov & Hutter: decoupled weight decay, bias-corrected moments) on n
 * parameters p with gradients g and moments m, v. t is the 1-based step number. */
void adamw_step(float *p, const float *g, float *m, float *v, size_t n, float lr, float wd,
                float beta1, float beta2, float eps, int t);

/* Sum of squares of g[0..n), accumulated in double. */
double sum_squares(const float *g, size_t n);

/* Learning rate at 0-based step: linear warmup over `warmup` steps to lr, then cosine decay
 * to lr·min_frac at the last step. */
float lr_at(int step, int steps, int warmup, float lr, float min_frac);

#endif
