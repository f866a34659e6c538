/* gemm.h — the model's matrix products: OpenBLAS or minilora's own small-matrix kernels.
 *
 * gemm_sgemm has cblas_sgemm's row-major signature and meaning (C = α·op(A)·op(B) + β·C;
 * β = 0 never reads C). The model's products are thin (64-wide, or r-wide for LoRA), where
 * OpenBLAS spends much of its time packing; the own kernels read A in place, pack B in
 * panels of KC x 16 on the stack and keep a 6 x 16 tile of C in registers.
 *
 * The path is chosen once per process: MINILORA_KERNEL=blas|portable|avx2 in the environment,
 * else blas. blas is the default because it is the faster on the machines measured (AMD EPYC,
 * OpenBLAS 0.3.21 Zen kernel: the rank-8 training step took ~8% longer on avx2, see the report
 * of issue 16) and it keeps every result bit-identical to earlier versions. Each path sums in
 * one fixed order (k ascending within a K block of KC), so a given path, machine and thread
 * count give bit-identical results; paths differ from each other by rounding only. An unknown
 * MINILORA_KERNEL value, or avx2 on a CPU without it, is reported once on stderr and blas is
 * used.
 */
#ifndef GEMM_H
#define GEMM_H

#include <cblas.h>

typedef enum { GEMM_BLAS = 0, GEMM_PORTABLE, GEMM_AVX2, GEMM_N_PATHS } gemm_path;

/* The active path (settled on first use). */
gemm_path gemm_active(void);
/* "blas", "portable", "avx2". */
const char *gemm_path_name(gemm_path p);
/* Whether this CPU can run p. */
int gemm_path_supported(gemm_path p);
/* Switches the path (tests and benchmarks; not while products run on other threads).
 * Returns -1, changing nothing, when the CPU cannot run p. */
int gemm_set_path(gemm_path p);

/* What gemm_sgemm did while the tally was on, summed over every thread that called it, in
 * two classes: products with every dimension above GEMM_THIN, and thin ones (LoRA's r-wide
 * products, r <= GEMM_THIN). */
#define GEMM_THIN 32
/* The work outside the products that the tally also times (gemm_tally_op_begin/end around
 * each call of these kernels): where the rest of a training step or scoring pass goes. */
typedef enum {
    TALLY_ATTENTION,   /* attention_forward, _forward_cached, _backward */
    TALLY_GELU,        /* gelu_forward, gelu_backward */
    TALLY_LAYERNORM,   /* layernorm_forward, layernorm_backward */
    TALLY_LOSS,        /* softmax cross-entropy (and KL), log-softmax */
    TALLY_ELEMENTWISE, /* RoPE, residual adds, the embedding */
    TALLY_OPTIMIZER,   /* optim_step */
    TALLY_N_OPS
} tally_op;
typedef struct {
    double seconds[2]; /* [0] wide, [1] thin: wall time inside gemm_sgemm, per call, summed */
    double flops[2];   /* 2·M·N·K per call, summed */
    long calls[2];
    double op_seconds[TALLY_N_OPS]; /* wall time inside each kind of other work, summed */
} gemm_tally;

/* "attention", "GELU", "LayerNorm", "loss", "elementwise" (RoPE, residual adds, the
 * embedding), "optimizer"; NULL out of range. */
const char *gemm_tally_op_name(int op);
/* A clock reading to pass to gemm_tally_op_end, or 0 while the tally is off (then nothing is
 * read or counted: a kernel's cost without the tally is one relaxed load). */
long long gemm_tally_op_begin(void);
void gemm_tally_op_end(tally_op op, long long t0);

/* Zeroes the tally and switches it on (lora bench: the share of a step spent in matrix
 * products). Off, the default, gemm_sgemm reads no clock. Not while products run. */
void gemm_tally_start(void);
/* Switches the tally off and returns it. */
gemm_tally gemm_tally_stop(void);

/* cblas_sgemm, row-major only (order must be CblasRowMajor). */
void gemm_sgemm(enum CBLAS_ORDER order, enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb, int M,
                int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                float beta, float *C, int ldc);

#endif
