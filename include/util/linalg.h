/* linalg.h — the two factorizations minilora needs, in double precision through LAPACKE:
 * the thin SVD (dgesdd: lora-analyze's spectra, PiSSA's init) and the thin QR (dgeqrf +
 * dorgqr: OLoRA's init). Inputs are row-major float matrices (the model's weights); the
 * outputs are double, row-major, in caller's buffers. Deterministic: the same input and
 * BLAS thread count give the same bits.
 */
#ifndef LINALG_H
#define LINALG_H

#include "ml_error.h"

/* SVD of a row-major (rows,cols) float matrix, k = min(rows,cols). Writes the k singular
 * values in descending order to sigma; when u is non-NULL the left singular vectors as the
 * rows of u (k,rows); when vt is non-NULL the right singular vectors as the rows of vt
 * (k,cols). All three buffers belong to the caller. Fails on a non-finite entry, a bad size,
 * or a LAPACK failure (message names what). */
int linalg_svd(const float *a, int rows, int cols, double *sigma, double *u, double *vt,
               ml_error *e);

/* Thin QR of a row-major (rows,cols) float matrix, k = min(rows,cols): a = q·r with q (rows,k)
 * having orthonormal columns and r (k,cols) upper triangular (row-major, caller's buffers).
 * LAPACK's Householder convention fixes the signs (the same factors numpy.linalg.qr and
 * torch.linalg.qr give). Same errors as linalg_svd. */
int linalg_qr(const float *a, int rows, int cols, double *q, double *r, ml_error *e);

#endif
