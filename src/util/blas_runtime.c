/* blas_runtime.c — choose the fastest OpenBLAS kernel the CPU supports; settle thread counts. */
#define _GNU_SOURCE
#include "blas_runtime.h"

#include <cblas.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

char *openblas_get_corename(void);
void openblas_set_num_threads(int);

/* How capable each OpenBLAS x86 kernel is, to tell whether the detected one is a fallback. */
static int kernel_level(const char *name) {
    static const struct {
        const char *name;
        int level;
    } levels[] = {{"prescott", 1}, {"core2", 1},    {"penryn", 1},      {"dunnington", 1},
                  {"atom", 1},     {"nehalem", 2},  {"sandybridge", 3}, {"haswell", 4},
                  {"zen", 4},      {"skylakex", 5}, {"cooperlake", 5},  {"sapphirerapids", 5}};
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++)
        if (strcasecmp(name, levels[i].name) == 0) return levels[i].level;
    return -1; /* unknown (another architecture or a newer OpenBLAS): leave it alone */
}

/* The best kernel this CPU can run, by what OpenBLAS's kernels require. */
static const char *best_kernel(int *level) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")) {
        *level = 5;
        return "SkylakeX";
    }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        *level = 4;
        return "Haswell";
    }
    *level = 0;
    return NULL;
}

static char note[256];

void runtime_init(char **argv) {
    const char *env = getenv("OPENBLAS_CORETYPE");
    const char *active = openblas_get_corename();
    const char *fallback = getenv("MINILORA_BLAS_DETECTED");
    if (env && fallback) {
        snprintf(note, sizeof note, "%s (OPENBLAS_CORETYPE set by minilora; OpenBLAS detected %s)",
                 active, fallback);
    } else if (env) {
        snprintf(note, sizeof note, "%s (OPENBLAS_CORETYPE=%s from the environment)", active, env);
    } else {
        int best_level, cur = kernel_level(active);
        const char *best = best_kernel(&best_level);
        if (best && cur >= 0 && cur < best_level && !getenv("MINILORA_BLAS_REEXEC")) {
            /* re-execute with the variable set; the library reads it when it loads */
            setenv("OPENBLAS_CORETYPE", best, 1);
            setenv("MINILORA_BLAS_DETECTED", active, 1);
            setenv("MINILORA_BLAS_REEXEC", "1", 1);
            fflush(NULL);
            execv("/proc/self/exe", argv);
            fprintf(stderr,
                    "minilora: warning: could not re-execute to select the %s BLAS kernel; "
                    "running on the slower %s kernel (set OPENBLAS_CORETYPE=%s)\n",
                    best, active, best);
            unsetenv("OPENBLAS_CORETYPE");
        }
        snprintf(note, sizeof note, "%s (detected by OpenBLAS)", active);
    }
    openblas_set_num_threads(1);
}

const char *runtime_blas_kernel(void) { return openblas_get_corename(); }

const char *runtime_blas_note(void) {
    if (!note[0]) snprintf(note, sizeof note, "%s", openblas_get_corename());
    return note;
}

static int positive_env(const char *name) {
    const char *s = getenv(name);
    if (!s || !*s) return 0;
    char *end;
    long v = strtol(s, &end, 10);
    return (*end == '\0' && v > 0 && v <= 1024) ? (int)v : 0;
}

int runtime_threads(int requested) {
    if (requested > 0) return requested;
    int n = positive_env("OMP_NUM_THREADS");
    if (!n) n = positive_env("OPENBLAS_NUM_THREADS");
    if (n) return n;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
    long c = sysconf(_SC_NPROCESSORS_ONLN);
    return c > 0 ? (int)c : 1;
}
