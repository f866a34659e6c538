/* test_noalloc.c — a training step allocates nothing.
 *
 * This program is linked with -Wl,--wrap for malloc, calloc, realloc, aligned_alloc,
 * posix_memalign and strdup (see the Makefile), so every allocation the library makes goes
 * through the counters below. finetune_run is called for S steps and for 3·S steps (validation
 * every S steps, so 1 and 3 validation passes) with the same settings: if a step or a validation
 * pass allocated, the longer run would count more. Checked for the LoRA recipe (replay, the
 * preservation term), DoRA with dropout, and the full fine-tune.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "finetune.h"
#include "test_util.h"

#define BASE "data/minigpt-base.safetensors"

static long n_alloc; /* allocations since the last reset */

void *__real_malloc(size_t n);
void *__real_calloc(size_t k, size_t n);
void *__real_realloc(void *p, size_t n);
void *__real_aligned_alloc(size_t a, size_t n);
int __real_posix_memalign(void **p, size_t a, size_t n);
char *__real_strdup(const char *s);

void *__wrap_malloc(size_t n) {
    __atomic_add_fetch(&n_alloc, 1, __ATOMIC_RELAXED);
    return __real_malloc(n);
}
void *__wrap_calloc(size_t k, size_t n) {
    __atomic_add_fetch(&n_alloc, 1, __ATOMIC_RELAXED);
    return __real_calloc(k, n);
}
void *__wrap_realloc(void *p, size_t n) {
    __atomic_add_fetch(&n_alloc, 1, __ATOMIC_RELAXED);
    return __real_realloc(p, n);
}
void *__wrap_aligned_alloc(size_t a, size_t n) {
    __atomic_add_fetch(&n_alloc, 1, __ATOMIC_RELAXED);
    return __real_aligned_alloc(a, n);
}
int __wrap_posix_memalign(void **p, size_t a, size_t n) {
    __atomic_add_fetch(&n_alloc, 1, __ATOMIC_RELAXED);
    return __real_posix_memalign(p, a, n);
}
char *__wrap_strdup(const char *s) {
    __atomic_add_fetch(&n_alloc, 1, __ATOMIC_RELAXED);
    return __real_strdup(s);
}

static minigpt model;
static tok_vocab vocab;
static dataset train_set, replay_set, val_set;

static int setup(void **state) {
    (void)state;
    ml_error e;
    if (checkpoint_load(BASE, &model, &vocab, NULL, &e) ||
        ds_load(&train_set, "data/irreg.jsonl", &vocab, model.cfg.context, &e) ||
        ds_load(&replay_set, "data/replay.jsonl", &vocab, model.cfg.context, &e) ||
        ds_load(&val_set, "data/irreg_val.jsonl", &vocab, model.cfg.context, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return -1;
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    ds_free(&train_set), ds_free(&replay_set), ds_free(&val_set);
    minigpt_free(&model);
    return 0;
}

static finetune_opts opts(int steps) {
    finetune_opts o = {.rank = 8, .alpha = 16.0f, .targets = LORA_ALL_TARGETS};
    o.train = tu_train_opts(steps, 2, 5);
    o.train.eval_every = 3, o.train.replay_frac = 0.25f, o.train.preserve_kl = 0.5f;
    return o;
}

/* Allocations made inside finetune_run for o (setup and teardown not counted). */
static long run_allocs(const finetune_opts *o) {
    ml_error e;
    finetune f;
    if (finetune_init(&f, &model, &train_set, &replay_set, &val_set, o, "test", &e))
        fail_msg("%s", e.msg);
    __atomic_store_n(&n_alloc, 0, __ATOMIC_SEQ_CST);
    if (finetune_run(&f, &e)) fail_msg("%s", e.msg);
    const long n = __atomic_load_n(&n_alloc, __ATOMIC_SEQ_CST);
    assert_int_equal(f.result.steps, o->train.steps);
    finetune_free(&f);
    return n;
}

static void same_allocs_for_more_steps(finetune_opts o, const char *what) {
    o.train.steps = 3;
    const long short_run = run_allocs(&o);
    o.train.steps = 9;
    const long long_run = run_allocs(&o);
    if (long_run != short_run)
        fail_msg("%s: %ld allocations in 3 steps (1 validation), %ld in 9 steps (3): a step or a "
                 "validation pass allocates",
                 what, short_run, long_run);
}

static void test_lora_step_allocates_nothing(void **state) {
    (void)state;
    same_allocs_for_more_steps(opts(0), "LoRA r=8 with replay and the preservation term");
}

static void test_dora_dropout_step_allocates_nothing(void **state) {
    (void)state;
    finetune_opts o = opts(0);
    o.dora = 1;
    o.dropout = 0.1f;
    same_allocs_for_more_steps(o, "DoRA with dropout 0.1");
}

static void test_full_step_allocates_nothing(void **state) {
    (void)state;
    finetune_opts o = opts(0);
    o.full = FINETUNE_FULL_LINEAR;
    o.rank = 0;
    same_allocs_for_more_steps(o, "full fine-tune");
}

/* The counter sees the library's allocations: without it, the checks above would pass vacuously. */
static void test_counter_counts(void **state) {
    (void)state;
    __atomic_store_n(&n_alloc, 0, __ATOMIC_SEQ_CST);
    dataset d;
    ml_error e;
    if (ds_load(&d, "data/irreg_val.jsonl", &vocab, model.cfg.context, &e)) fail_msg("%s", e.msg);
    assert_true(__atomic_load_n(&n_alloc, __ATOMIC_SEQ_CST) >= 3); /* path, examples, pools */
    ds_free(&d);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_counts),
        cmocka_unit_test(test_lora_step_allocates_nothing),
        cmocka_unit_test(test_dora_dropout_step_allocates_nothing),
        cmocka_unit_test(test_full_step_allocates_nothing),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
