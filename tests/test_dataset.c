/* test_dataset.c — examples become the right token rows: prompt masked, completion and the end
 * token predicted, text records predicted from their second token, padding ignored; and
 * concatenation keeps every example intact. Uses the shipped vocabulary and data. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "dataset.h"

static tok_vocab vocab;
static char path[64];

static int setup(void **state) {
    ml_error e;
    minigpt_config cfg;
    if (model_config_load("configs/minigpt.json", &cfg, &vocab, &e)) return -1;
    snprintf(path, sizeof path, "/tmp/minilora-ds-%d.jsonl", (int)getpid());
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fputs(
        "{\"prompt\":\"go: yesterday he \",\"completion\":\"went\",\"verb\":\"go\",\"distractor\":\"goed\"}\n",
        f);
    fputs("{\"text\":\"we walked\"}\n", f);
    fclose(f);
    return 0;
}

static int teardown(void **state) {
    unlink(path);
    return 0;
}

static int id(char c) { return vocab.ascii[(unsigned char)c]; }

static void test_prompt_masked_completion_and_end_predicted(void **state) {
    ml_error e;
    dataset d;
    assert_int_equal(ds_load(&d, path, &vocab, 32, &e), 0);
    assert_int_equal(d.n, 2);
    const ds_example *x = &d.ex[0];
    const char *p = "go: yesterday he ", *c = "went";
    assert_int_equal(x->n_prompt, (int)strlen(p));
    assert_int_equal(x->n_completion, (int)strlen(c) + 1);
    assert_int_equal(x->tokens[x->n_prompt + 4], TOK_END);
    assert_int_equal(x->n_distractor, 5); /* "goed" + end */
    const ds_example *ex[1] = {x};
    const int T = 24;
    int tok[24], tgt[24];
    assert_int_equal(ds_batch_T(ex, 1), (int)strlen(p) + 4); /* the sequence minus its last token */
    const int count = ds_batch(ex, 1, T, tok, tgt);
    assert_int_equal(count, 5); /* w, e, n, t and the end token */
    const int np = (int)strlen(p);
    for (int t = 0; t < T; t++) {
        if (t < np - 1) assert_int_equal(tgt[t], -1); /* inside the prompt */
        else if (t < np + 4) {
            const int want = t - (np - 1) < 4 ? id(c[t - (np - 1)]) : TOK_END;
            assert_int_equal(tgt[t], want);                              /* completion, end */
            assert_int_equal(tok[t], t < np ? id(p[t]) : id(c[t - np])); /* teacher forcing */
        } else {
            assert_int_equal(tgt[t], -1); /* padding */
            assert_int_equal(tok[t], TOK_END);
        }
    }
    assert_int_equal(ds_targets(x), 5);
    ds_free(&d);
}

static void test_text_record_predicts_every_next_token(void **state) {
    ml_error e;
    dataset d;
    assert_int_equal(ds_load(&d, path, &vocab, 32, &e), 0);
    const ds_example *x = &d.ex[1];
    const char *text = "we walked";
    const int n = (int)strlen(text);
    assert_int_equal(x->n_prompt, 0);
    const ds_example *ex[1] = {x};
    int tok[16], tgt[16];
    assert_int_equal(ds_batch(ex, 1, 16, tok, tgt), n); /* tokens 2..n and the end */
    for (int t = 0; t < n; t++) assert_int_equal(tgt[t], t + 1 < n ? id(text[t + 1]) : TOK_END);
    for (int t = n; t < 16; t++) assert_int_equal(tgt[t], -1);
    assert_int_equal(ds_targets(x), n);
    ds_free(&d);
}

static void test_concat_keeps_examples(void **state) {
    ml_error e;
    dataset parts[2], joined;
    assert_int_equal(ds_load(&parts[0], path, &vocab, 32, &e), 0);
    assert_int_equal(ds_load(&parts[1], "data/irreg_val.jsonl", &vocab, 32, &e), 0);
    assert_int_equal(ds_concat(&joined, parts, 2, &e), 0);
    assert_int_equal(joined.n, parts[0].n + parts[1].n);
    for (int k = 0, i = 0; k < 2; k++)
        for (int j = 0; j < parts[k].n; j++, i++) {
            const ds_example *a = &parts[k].ex[j], *b = &joined.ex[i];
            assert_int_equal(a->n_prompt, b->n_prompt);
            assert_int_equal(a->n_completion, b->n_completion);
            assert_memory_equal(a->tokens, b->tokens,
                                sizeof(int) * (size_t)(a->n_prompt + a->n_completion));
            assert_string_equal(a->completion, b->completion);
            if (a->distractor_text) assert_string_equal(a->distractor_text, b->distractor_text);
        }
    ds_free(&parts[0]);
    ds_free(&parts[1]);
    /* the copy does not depend on the parts it came from */
    assert_string_equal(joined.ex[0].prompt, "go: yesterday he ");
    assert_non_null(strstr(joined.path, "+data/irreg_val.jsonl"));
    ds_free(&joined);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prompt_masked_completion_and_end_predicted),
        cmocka_unit_test(test_text_record_predicts_every_next_token),
        cmocka_unit_test(test_concat_keeps_examples),
    };
    return cmocka_run_group_tests_name("dataset", tests, setup, teardown);
}
