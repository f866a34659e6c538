/* optimizer.c — AdamW and the warmup + cosine schedule. */
#include "optimizer.h"

#include <math.h>

void adamw_step(float *p, const float *g, float *m, float *v, size_t n, float lr, float wd,
                float beta1, float beta2, float eps, int t) {
    const float c1 = 1.0f / (1.0f - powf(beta1, (float)t));
    const float c2 = 1.0f / (1.0f - powf(beta2, (float)t));
    for (size_t i = 0; i < n; i++) {
        m[i] = beta1 * m[i] + (1.0f - beta1) * g[i];
        v[i] = beta2 * v[i] + (1.0f - beta2) * g[i] * g[i];
        const float mhat = m[i] * c1, vhat = v[i] * c2;
        p[i] -= lr * (mhat / (sqrtf(vhat) + eps) + wd * p[i]);
    }
}

double sum_squares(const float *g, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)g[i] * g[i];
    return s;
}

float lr_at(int step, int steps, int warmup, float lr, float min_frac) {
    if (warmup > 0 && step < warmup) return lr * (float)(step + 1) / (float)warmup;
    const int decay = steps - warmup;
    if (decay <= 1) return lr;
    const double progress = (double)(step - warmup) / (double)(decay - 1);
    const double cosine = 0.5 * (1.0 + cos(3.141592653589793 * (progress > 1.0 ? 1.0 : progress)));
    return (float)(lr * (min_frac + (1.0 - min_frac) * cosine));
}
