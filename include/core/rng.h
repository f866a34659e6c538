/* rng.h — a small deterministic random number generator (xoshiro256**, seeded by splitmix64).
 *
 * Everything random in minilora (initialization, data order, sampling) draws from an rng
 * whose whole state is these four words, so a training state file can save and restore it.
 */
#ifndef RNG_H
#define RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} rng;

/* Seeds the generator; any seed (including 0) gives a valid, distinct stream. */
void rng_seed(rng *r, uint64_t seed);

/* Next 64 random bits. */
uint64_t rng_u64(rng *r);

/* Uniform float in [0, 1) with 24 random bits. */
float rng_uniform(rng *r);

/* Uniform integer in [0, n), n > 0, without modulo bias. */
uint32_t rng_below(rng *r, uint32_t n);

/* Standard normal (Box-Muller, double precision inside). */
float rng_normal(rng *r);

/* Shuffles idx[0..n) in place (Fisher-Yates). */
void rng_shuffle(rng *r, int *idx, int n);

#endif
