/* blas_runtime.h — BLAS kernel selection and thread counts, settled once at program start.
 *
 * Debian's OpenBLAS 0.3.21 does not recognise recent Intel CPUs (Sapphire Rapids) and falls
 * back to its slowest kernel, "Prescott": sgemm runs about 5x slower than with the SkylakeX
 * kernel the CPU can run. OpenBLAS picks its kernel when the library is loaded, from the
 * OPENBLAS_CORETYPE environment variable or its own CPU detection, so the only fix from
 * inside the program is to set the variable and re-execute itself before doing any work.
 */
#ifndef BLAS_RUNTIME_H
#define BLAS_RUNTIME_H

/* Call first in main(). When OPENBLAS_CORETYPE is unset and the kernel OpenBLAS chose is
 * weaker than what this CPU supports (AVX-512 -> SkylakeX, AVX2+FMA -> Haswell), sets
 * OPENBLAS_CORETYPE and re-executes the program with the same arguments (once). A value the
 * environment already sets is always respected. Then pins OpenBLAS to one thread: minilora
 * parallelizes across sequences itself. Returns normally when no re-exec happens. */
void runtime_init(char **argv);

/* The active OpenBLAS kernel, e.g. "SkylakeX" (static string owned by OpenBLAS). */
const char *runtime_blas_kernel(void);

/* One line on how the kernel was chosen, e.g. "SkylakeX (OPENBLAS_CORETYPE set by minilora;
 * OpenBLAS detected Prescott)" or "Haswell (OPENBLAS_CORETYPE=Haswell from the environment)".
 * Static buffer owned by the runtime. */
const char *runtime_blas_note(void);

/* The thread count to use: `requested` when > 0, else OMP_NUM_THREADS or
 * OPENBLAS_NUM_THREADS when set to a positive integer, else the CPUs this process may run on. */
int runtime_threads(int requested);

#endif
