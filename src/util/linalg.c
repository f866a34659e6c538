/* linalg.c — thin SVD and QR through LAPACKE, in double precision (see linalg.h). */
#include "linalg.h"

#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A double copy of a (rows,cols), malloc'ed with room for extra more doubles after it (caller
 * frees); NULL with e filled on a bad size, a non-finite entry or no memory. */
static double *to_double(const float *a, int rows, int cols, size_t extra, const char *what,
                         ml_error *e) {
    if (rows <= 0 || cols <= 0) {
        ml_fail(e, "%s of a %dx%d matrix", what, rows, cols);
        return NULL;
    }
    const size_t n = (size_t)rows * cols;
    double *d = malloc(sizeof(double) * (n + extra));
    if (!d) {
        ml_fail(e, "out of memory for the %s of a %dx%d matrix", what, rows, cols);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i])) {
            free(d);
            ml_fail(e, "element %zu of the %dx%d matrix is not finite", i, rows, cols);
            return NULL;
        }
        d[i] = a[i];
    }
    return d;
}

int linalg_svd(const float *a, int rows, int cols, double *sigma, double *u, double *vt,
               ml_error *e) {
    const int k = rows < cols ? rows : cols;
    const size_t n = (size_t)rows * cols;
    // dgesdd overwrites its input, and double keeps the small σ accurate
    double *ad = to_double(a, rows, cols, (size_t)rows * k + (size_t)k * cols, "SVD", e);
    if (!ad) return -1;
    double *ut = ad + n, *vtd = ut + (size_t)rows * k;
    /* always 'S': the vectors cost nothing at these sizes and one code path is simpler */
    lapack_int info =
        LAPACKE_dgesdd(LAPACK_ROW_MAJOR, 'S', rows, cols, ad, cols, sigma, ut, k, vtd, cols);
    if (info != 0) {
        free(ad);
        return ml_fail(e, "LAPACKE_dgesdd failed on a %dx%d matrix (info %d)", rows, cols,
                       (int)info);
    }
    if (u) // ut is (rows,k): its column t is the t-th left singular vector
        for (int t = 0; t < k; t++)
            for (int i = 0; i < rows; i++) u[(size_t)t * rows + i] = ut[(size_t)i * k + t];
    if (vt) memcpy(vt, vtd, sizeof(double) * (size_t)k * cols);
    free(ad);
    return 0;
}

int linalg_qr(const float *a, int rows, int cols, double *q, double *r, ml_error *e) {
    const int k = rows < cols ? rows : cols;
    double *ad = to_double(a, rows, cols, (size_t)k, "QR", e);
    if (!ad) return -1;
    double *tau = ad + (size_t)rows * cols;
    lapack_int info = LAPACKE_dgeqrf(LAPACK_ROW_MAJOR, rows, cols, ad, cols, tau);
    if (info != 0) {
        free(ad);
        return ml_fail(e, "LAPACKE_dgeqrf failed on a %dx%d matrix (info %d)", rows, cols,
                       (int)info);
    }
    /* R: the upper triangle of the first k rows */
    for (int i = 0; i < k; i++)
        for (int j = 0; j < cols; j++)
            r[(size_t)i * cols + j] = j >= i ? ad[(size_t)i * cols + j] : 0;
    /* Q: the first k columns, formed from the reflectors below the diagonal */
    for (int i = 0; i < rows; i++)
        memcpy(q + (size_t)i * k, ad + (size_t)i * cols, sizeof(double) * k);
    info = LAPACKE_dorgqr(LAPACK_ROW_MAJOR, rows, k, k, q, k, tau);
    free(ad);
    if (info != 0)
        return ml_fail(e, "LAPACKE_dorgqr failed on a %dx%d matrix (info %d)", rows, cols,
                       (int)info);
    return 0;
}
