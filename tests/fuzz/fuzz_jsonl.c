/* fuzz_jsonl.c — libFuzzer target for the JSONL example loader (ds_parse) with the real
 * tokenizer.
 *
 * The vocabulary is the 64-symbol one of configs/minigpt.json, embedded below
 * (tests/test_regress.c checks that it still equals the file's). One input is one JSONL file;
 * it is parsed with the model's context of 32 and again with a context of 5, so the
 * "longer than the context" paths are reached by short lines too.
 *
 * Refused: one non-empty line starting with the label. Accepted: every example's tokens are
 * valid ids, end with the end token and hold no other, fit the context, and decode back to
 * its prompt and completion (and distractor); ds_batch over the examples gives targets that
 * match.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "fuzz_common.h"
#include "tokenizer.h"

#define FZ_DS_LABEL "fuzz.jsonl"
#define FZ_DS_CONTEXT 32

/* configs/minigpt.json "vocab", compact. */
static const char fz_vocab_json[] =
    "[\"\\n\",\" \",\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\",\"j\",\"k\",\"l\",\"m\","
    "\"n\",\"o\",\"p\",\"q\",\"r\",\"s\",\"t\",\"u\",\"v\",\"w\",\"x\",\"y\",\"z\",\"A\",\"B\","
    "\"C\",\"D\",\"E\",\"F\",\"G\",\"H\",\"I\",\"J\",\"K\",\"L\",\"M\",\"N\",\"O\",\"P\",\"Q\","
    "\"R\",\"S\",\"T\",\"U\",\"V\",\"W\",\"X\",\"Y\",\"Z\",\".\",\",\",\":\",\";\",\"'\",\"!\","
    "\"?\",\"-\",\"(\",\")\"]";

static const tok_vocab *fz_vocab(void) {
    static tok_vocab v;
    static int ready;
    if (!ready) {
        ml_error e;
        if (tok_from_json(&v, fz_vocab_json, "embedded vocab", &e)) {
            fprintf(stderr, "fuzz_jsonl: %s\n", e.msg);
            abort();
        }
        ready = 1;
    }
    return &v;
}

/* decode(ids[0..n)) must equal s */
static void check_decodes(const tok_vocab *v, const int *ids, int n, const char *s,
                          const char *what, int line) {
    char buf[4 * 4096 + 8];
    if (n > 4096) {
        fz_fail("line %d: %s has %d tokens", line, what, n);
        return;
    }
    tok_decode(v, ids, n, buf, (int)sizeof buf);
    if (strcmp(buf, s) != 0)
        fz_fail("line %d: %s decodes to \"%s\", not \"%s\"", line, what, buf, s);
}

static void check_dataset(const dataset *d, const tok_vocab *v, int context) {
    if (d->n < 1) fz_fail("accepted dataset has %d examples", d->n);
    if (strcmp(d->path, FZ_DS_LABEL) != 0) fz_fail("dataset path is '%s'", d->path);
    int max_len = 0, prev_line = 0;
    for (int i = 0; i < d->n; i++) {
        const ds_example *x = &d->ex[i];
        const int len = x->n_prompt + x->n_completion;
        if (x->line <= prev_line)
            fz_fail("example %d: line %d after line %d", i, x->line, prev_line);
        prev_line = x->line;
        if (x->n_prompt < 0 || x->n_completion < 2 || len > context) {
            fz_fail("line %d: %d prompt + %d completion tokens (context %d)", x->line, x->n_prompt,
                    x->n_completion, context);
            continue;
        }
        if (len > max_len) max_len = len;
        for (int t = 0; t < len; t++)
            if (x->tokens[t] < 0 || x->tokens[t] >= v->n)
                fz_fail("line %d: token %d is %d", x->line, t, x->tokens[t]);
        if (x->tokens[len - 1] != TOK_END) fz_fail("line %d: no end token", x->line);
        for (int t = 0; t < len - 1; t++) /* a line break inside a field is refused */
            if (x->tokens[t] == TOK_END) fz_fail("line %d: end token inside the sequence", x->line);
        if (!x->prompt || !x->completion) {
            fz_fail("line %d: NULL prompt or completion", x->line);
            continue;
        }
        check_decodes(v, x->tokens, x->n_prompt, x->prompt, "prompt", x->line);
        check_decodes(v, x->tokens + x->n_prompt, x->n_completion - 1, x->completion, "completion",
                      x->line);
        if (!!x->distractor != !!x->distractor_text || (x->distractor && x->n_distractor < 1) ||
            (!x->distractor && x->n_distractor != 0)) {
            fz_fail("line %d: distractor fields disagree", x->line);
        } else if (x->distractor) {
            if (x->n_prompt + x->n_distractor > context)
                fz_fail("line %d: distractor does not fit", x->line);
            if (x->distractor[x->n_distractor - 1] != TOK_END)
                fz_fail("line %d: distractor has no end token", x->line);
            check_decodes(v, x->distractor, x->n_distractor - 1, x->distractor_text, "distractor",
                          x->line);
        }
        if (ds_targets(x) < 1) fz_fail("line %d: %d targets", x->line, ds_targets(x));
    }
    if (max_len != d->max_len) fz_fail("max_len %d, longest sequence %d", d->max_len, max_len);

    /* one batch of (up to 64) examples */
    const int B = d->n < 64 ? d->n : 64;
    const ds_example *ex[64];
    int want = 0;
    for (int b = 0; b < B; b++) {
        ex[b] = &d->ex[b];
        want += ds_targets(ex[b]);
    }
    const int T = ds_batch_T(ex, B);
    if (T < 1 || T > context) {
        fz_fail("ds_batch_T = %d (context %d)", T, context);
        return;
    }
    int *tokens = malloc((size_t)B * (size_t)T * 2 * sizeof(int));
    if (!tokens) abort();
    int *targets = tokens + (size_t)B * (size_t)T;
    const int count = ds_batch(ex, B, T, tokens, targets);
    if (count != want) fz_fail("ds_batch counts %d targets, the examples %d", count, want);
    for (int i = 0; i < B * T; i++)
        if (tokens[i] < 0 || tokens[i] >= v->n || targets[i] < -1 || targets[i] >= v->n)
            fz_fail("ds_batch wrote token %d target %d at %d", tokens[i], targets[i], i);
    free(tokens);
}

static int parse_once(const uint8_t *data, size_t size, int context, ml_error *err) {
    const tok_vocab *v = fz_vocab();
    dataset d;
    ml_error e = {{0}};
    if (ds_parse(&d, FZ_DS_LABEL, (const char *)data, size, v, context, &e)) {
        fz_check_msg("ds_parse", &e, FZ_DS_LABEL);
        if (d.ex || d.token_pool || d.string_pool || d.path || d.n)
            fz_fail("ds_parse left d filled on failure");
        if (err) *err = e;
        return 0;
    }
    check_dataset(&d, v, context);
    ds_free(&d);
    return 1;
}

int fuzz_jsonl_one(const uint8_t *data, size_t size, ml_error *err) {
    /* exact-size heap copy: ASan sees any read past the end of the buffer */
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) abort();
    if (size) memcpy(copy, data, size);
    const int ok = parse_once(copy, size, FZ_DS_CONTEXT, err);
    parse_once(copy, size, 5, NULL);
    free(copy);
    return ok;
}

#ifndef FUZZ_REPLAY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_jsonl_one(data, size, NULL);
    return 0;
}
#endif
