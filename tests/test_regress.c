/* test_regress.c — replays the fuzz corpora and the crash inputs found by fuzzing through the
 * same entry points as the fuzz targets (tests/fuzz/fuzz_*.c, compiled here with
 * -DFUZZ_REPLAY, without libFuzzer).
 *
 * For each target T in {safetensors, jsonl, config}, every file in tests/fuzz/corpus/T/ and
 * tests/regress/T/ is fed to fuzz_T_one: no crash (under `make test-asan`, no sanitizer
 * report either), no broken invariant of the target, and a refused input must come with a
 * non-empty, bounded, one-line message (fz_msg_problem in fuzz_common.h). Seeds whose name starts
 * with "ok-" must be accepted; files in tests/regress/ whose name starts with "bad-" must be
 * refused; "ok-base*" seeds must load as a model and "ok-adapter*" seeds as an adapter on the
 * fuzz target's tiny base; "bad-adapter*" files (safetensors) parse but must be refused by
 * lora_load on that base, with a one-line message.
 * Run from the repository root (as `make test` does).
 */
#define _GNU_SOURCE
#define FUZZ_REPLAY 1

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "atomic_file.h"
#include "checkpoint.h"

#include "fuzz/fuzz_config.c"
#include "fuzz/fuzz_jsonl.c"
#include "fuzz/fuzz_safetensors.c"

typedef int (*fuzz_one_fn)(const uint8_t *, size_t, ml_error *);

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Feeds every regular file of dir to fn; returns how many. */
static int replay_dir(const char *dir, fuzz_one_fn fn, int must_exist) {
    DIR *d = opendir(dir);
    if (!d) {
        if (must_exist) fail_msg("%s: cannot open (run from the repository root)", dir);
        return 0;
    }
    char *names[4096];
    int n = 0;
    for (struct dirent *de; (de = readdir(d)) && n < 4096;)
        if (de->d_name[0] != '.') names[n++] = strdup(de->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_names);
    int files = 0;
    for (int i = 0; i < n; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        char *data;
        size_t size;
        ml_error e = {{0}};
        if (read_file(path, (size_t)1 << 24, &data, &size, &e)) {
            if (strstr(e.msg, "not a regular file")) { /* a subdirectory */
                free(names[i]);
                continue;
            }
            fail_msg("%s", e.msg);
        }
        const int before = fz_violations, models = fz_st_models_loaded,
                  adapters = fz_st_adapters_loaded, refused = fz_st_adapters_refused;
        ml_error err = {{0}};
        const int ok = fn((const uint8_t *)data, size, &err);
        free(data);
        if (fz_violations != before)
            fail_msg("%s: %d fuzz invariant(s) broken (see above)", path, fz_violations - before);
        if (!ok) {
            const char *why = fz_msg_problem(err.msg);
            if (why) fail_msg("%s: %s: %s", path, why, err.msg);
        }
        const int bad_adapter = strncmp(names[i], "bad-adapter", 11) == 0;
        if (strncmp(names[i], "ok-", 3) == 0 && !ok)
            fail_msg("%s: valid seed refused: %s", path, err.msg);
        if (strncmp(names[i], "bad-", 4) == 0 && !bad_adapter && ok)
            fail_msg("%s: invalid input accepted", path);
        if (bad_adapter && (!ok || fz_st_adapters_refused == refused))
            fail_msg("%s: must parse, then be refused as an adapter", path);
        if (strncmp(names[i], "ok-base", 7) == 0 && fz_st_models_loaded == models)
            fail_msg("%s: the base-checkpoint seed does not load as a model", path);
        if (strncmp(names[i], "ok-adapter", 10) == 0 && fz_st_adapters_loaded == adapters)
            fail_msg("%s: the adapter seed does not load onto the tiny base", path);
        files++;
        free(names[i]);
    }
    return files;
}

static void replay(const char *target, fuzz_one_fn fn) {
    char dir[256];
    snprintf(dir, sizeof dir, "tests/fuzz/corpus/%s", target);
    const int seeds = replay_dir(dir, fn, 1);
    snprintf(dir, sizeof dir, "tests/regress/%s", target);
    const int crashes = replay_dir(dir, fn, 0);
    assert_true(seeds > 0);
    printf("  %s: %d seeds, %d regression inputs replayed\n", target, seeds, crashes);
}

static void test_replay_safetensors(void **state) { replay("safetensors", fuzz_safetensors_one); }
static void test_replay_jsonl(void **state) { replay("jsonl", fuzz_jsonl_one); }
static void test_replay_config(void **state) { replay("config", fuzz_config_one); }

/* The vocabulary embedded in fuzz_jsonl.c is the one of configs/minigpt.json. */
static void test_embedded_vocab_is_current(void **state) {
    minigpt_config cfg;
    static tok_vocab v;
    ml_error e;
    if (model_config_load("configs/minigpt.json", &cfg, &v, &e)) fail_msg("%s", e.msg);
    const tok_vocab *w = fz_vocab();
    assert_int_equal(v.n, w->n);
    assert_memory_equal(v.sym, w->sym, sizeof v.sym);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replay_safetensors),
        cmocka_unit_test(test_replay_jsonl),
        cmocka_unit_test(test_replay_config),
        cmocka_unit_test(test_embedded_vocab_is_current),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
