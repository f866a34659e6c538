/* test_kvcache.c — the key/value cache (kvcache.h) and the decoders and scorer built on it,
 * against the full recompute with minigpt_forward (the independent reference: the whole prefix
 * through the training forward, which test_grad and test_reference check).
 *
 * On the shipped base, and with a LoRA adapter of random non-zero B at strengths 1, 0.5 and 2:
 *   - a prefill (every pos 0) gives minigpt_forward's logits bit for bit;
 *   - incremental decoding, in steps of 1 and of several tokens, rows at different positions
 *     and mapped to other cache rows, gives every position's logits within 2e-5 of the full
 *     forward relative to the logit's size (BLAS may round the Linear products of one row
 *     differently from those of T rows), and bit for bit on the own kernels (portable, avx2);
 *   - eval_greedy and eval_sample (seeded) produce token for token what a decoder recomputing
 *     the whole prefix each step produces, on prompts of data/irreg_test.jsonl;
 *   - eval_dataset (batched scoring and batched greedy decoding) gives per-example log-probs
 *     within 1e-5 (relative) of one-example-at-a-time scoring with minigpt_forward, and the same
 *     predictions, hence the same accuracies;
 *   - engine_loss, now on forward-only buffers, gives minigpt_forward + minigpt_xent's sum bit
 *     for bit;
 *   - eval_max_logit_diff (adapter against its own base, batches shared out over threads) gives
 *     a serial recompute's figure bit for bit on 1, 2 and 3 threads, and NaN on each when only
 *     some examples' logits are NaN.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "eval.h"
#include "gemm.h"
#include "kvcache.h"
#include "lora.h"
#include "rng.h"

#define BASE "data/minigpt-base.safetensors"
/* BLAS rounds a product of one row differently from one of T rows; through two blocks and the
 * head that moves a logit by up to ~1e-5 of its size (measured: 6e-6 on the base, 1.0e-5 with
 * the adapter at strength 2). The own kernels (gemm.h) sum every row in the same order whatever
 * the row count: there decoding must be exact. */
#define TOL 2e-5
/* A sequence's log-prob batched (padded to the batch's longest) and alone: the same rounding
 * story, relative to its size (measured: 2.7e-5 at -59, 4.5e-7 of it). */
#define LP_TOL 1e-5

static minigpt model;
static tok_vocab vocab;
static dataset test_set;

static int setup(void **state) {
    ml_error e;
    if (checkpoint_load(BASE, &model, &vocab, NULL, &e) ||
        ds_load(&test_set, "data/irreg_test.jsonl", &vocab, model.cfg.context, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return -1;
    }
    return 0;
}

static int teardown(void **state) {
    ds_free(&test_set);
    minigpt_free(&model);
    return 0;
}

/* An adapter on every Linear with A from the init and B random, so that it changes outputs. */
static void adapter_on(lora *a, float strength) {
    ml_error e;
    assert_int_equal(lora_init(a, &model, 4, 8.0f, 0, LORA_ALL_TARGETS, &e), 0);
    lora_init_weights(a, 11);
    rng r;
    rng_seed(&r, 12);
    for (int i = 0; i < a->n_layers; i++) {
        const lora_layer *L = &a->layers[i];
        for (int j = 0; j < L->slot->out * a->rank; j++) L->B[j] = 0.05f * rng_normal(&r);
    }
    assert_int_equal(lora_set_strength(a, strength, &e), 0);
}

/* Random sequences (B,T) of non-end tokens. */
static void random_tokens(int *tok, int n, uint64_t seed) {
    rng r;
    rng_seed(&r, seed);
    for (int i = 0; i < n; i++) tok[i] = 1 + (int)rng_below(&r, (uint32_t)model.cfg.vocab_size - 1);
}

static double worst_ok(double want) { return TOL * fmax(1.0, fabs(want)); }

/* The largest |got − want| / max(1, |want|) over n logits. */
static double rel_diff(const float *got, const float *want, size_t n) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        const double d = fabs((double)got[i] - want[i]) / fmax(1.0, fabs((double)want[i]));
        if (!(d <= worst)) worst = d; /* NaN wins */
    }
    return worst;
}

/* A prefill bit-identical to minigpt_forward; then decoding in steps of sizes `chunks` (cycled)
 * equal to the prefill: bit for bit on the own kernels, within TOL on BLAS. */
static void check_incremental(void) {
    ml_error e;
    const int B = 3, T = model.cfg.context, V = model.cfg.vocab_size;
    int *tok = malloc(sizeof(int) * B * T), *step = malloc(sizeof(int) * B * T);
    float *pre = malloc(sizeof(float) * B * T * V);
    minigpt_ws ws;
    minigpt_kv kv;
    assert_int_equal(minigpt_ws_init(&ws, &model, B, T, &e), 0);
    assert_int_equal(minigpt_kv_init(&kv, &model, B + 2, &e), 0);
    random_tokens(tok, B * T, 5);
    minigpt_forward(&model, &ws, tok, B, T);
    int pos[3] = {0, 0, 0};
    minigpt_kv_forward(&model, &kv, tok, pos, NULL, B, T);
    assert_memory_equal(kv.logits, ws.logits, sizeof(float) * B * T * V); /* bit for bit */
    memcpy(pre, kv.logits, sizeof(float) * B * T * V);
    /* now again, decoding: rows b go to cache rows 4-b, in chunks of 1, 3, 2, 5, ... */
    static const int chunks[] = {1, 3, 1, 2, 5, 1, 1, 4};
    const int rows[3] = {4, 3, 2};
    double worst = 0;
    for (int at = 0, c = 0; at < T; c++) {
        int n = chunks[c % 8];
        if (at + n > T) n = T - at;
        for (int b = 0; b < B; b++) {
            pos[b] = at;
            memcpy(step + b * n, tok + b * T + at, sizeof(int) * n);
        }
        minigpt_kv_forward(&model, &kv, step, pos, rows, B, n);
        for (int b = 0; b < B; b++) {
            const double d = rel_diff(kv.logits + (size_t)b * n * V, pre + ((size_t)b * T + at) * V,
                                      (size_t)n * V);
            if (!(d <= worst)) worst = d;
        }
        at += n;
    }
    if (gemm_active() == GEMM_BLAS) assert_true(worst <= TOL);
    else assert_true(worst == 0.0);
    /* rows at different positions in one call: row b continues from position b */
    for (int b = 0; b < B; b++) {
        pos[b] = b + 1;
        step[b] = tok[b * T + b + 1];
    }
    minigpt_kv_forward(&model, &kv, step, pos, rows, B, 1);
    for (int b = 0; b < B; b++)
        for (int v = 0; v < V; v++)
            assert_true(fabs((double)kv.logits[(size_t)b * V + v] -
                             ws.logits[((size_t)b * T + b + 1) * V + v]) <=
                        2 * worst_ok(ws.logits[((size_t)b * T + b + 1) * V + v]));
    minigpt_kv_free(&kv);
    minigpt_ws_free(&ws);
    free(tok);
    free(step);
    free(pre);
}

static void test_incremental_base(void **state) {
    for (int p = 0; p < GEMM_N_PATHS; p++)
        if (gemm_set_path((gemm_path)p) == 0) check_incremental();
    gemm_set_path(GEMM_BLAS);
}

static void test_incremental_adapter(void **state) {
    static const float strengths[] = {1.0f, 0.5f, 2.0f};
    for (int s = 0; s < 3; s++) {
        lora a;
        adapter_on(&a, strengths[s]);
        for (int p = 0; p < GEMM_N_PATHS; p++)
            if (gemm_set_path((gemm_path)p) == 0) check_incremental();
        gemm_set_path(GEMM_BLAS);
        lora_free(&a);
    }
}

/* The reference decoder: the whole prefix through minigpt_forward at every step. t > 0
 * samples exactly as eval_sample documents (softmax(l/t) in double, one uniform per step). */
static int reference_decode(const int *prompt, int n, int *out, int max_new, float t, rng *r) {
    const int ctx = model.cfg.context, V = model.cfg.vocab_size;
    ml_error e;
    minigpt_ws ws;
    assert_int_equal(minigpt_ws_init(&ws, &model, 1, ctx, &e), 0);
    int seq[4096], cur = n, nout = 0;
    memcpy(seq, prompt, sizeof(int) * n);
    while (cur < ctx && nout < max_new) {
        minigpt_forward(&model, &ws, seq, 1, cur);
        const float *l = ws.logits + (size_t)(cur - 1) * V;
        int next = 0;
        if (t <= 0) {
            for (int v = 1; v < V; v++)
                if (l[v] > l[next]) next = v;
        } else {
            float maxv = l[0];
            for (int v = 1; v < V; v++) maxv = l[v] > maxv ? l[v] : maxv;
            double p[256], z = 0;
            for (int v = 0; v < V; v++) z += p[v] = exp((double)(l[v] - maxv) / t);
            double u = rng_uniform(r) * z;
            next = V - 1;
            for (int v = 0; v < V; v++)
                if ((u -= p[v]) < 0) {
                    next = v;
                    break;
                }
        }
        if (next == TOK_END) break;
        seq[cur++] = out[nout++] = next;
    }
    minigpt_ws_free(&ws);
    return nout;
}

/* Every 5th prompt of the test file, greedy and sampled at two temperatures. */
static void check_decoders(void) {
    ml_error e;
    const int ctx = model.cfg.context;
    minigpt_kv kv;
    assert_int_equal(minigpt_kv_init(&kv, &model, 1, &e), 0);
    int got[4096], want[4096], compared = 0;
    for (int i = 0; i < test_set.n; i += 5) {
        const ds_example *x = &test_set.ex[i];
        const int ng = eval_greedy(&model, &kv, x->tokens, x->n_prompt, got, ctx);
        const int nw = reference_decode(x->tokens, x->n_prompt, want, ctx, 0.0f, NULL);
        assert_int_equal(ng, nw);
        assert_memory_equal(got, want, sizeof(int) * nw);
        static const float temps[] = {0.7f, 1.5f};
        for (int k = 0; k < 2; k++) {
            rng r1, r2;
            rng_seed(&r1, 100 + i), rng_seed(&r2, 100 + i);
            const int ns = eval_sample(&model, &kv, x->tokens, x->n_prompt, got, 6, temps[k], &r1);
            const int nr = reference_decode(x->tokens, x->n_prompt, want, 6, temps[k], &r2);
            assert_int_equal(ns, nr);
            assert_memory_equal(got, want, sizeof(int) * nr);
            assert_true(rng_u64(&r1) == rng_u64(&r2)); /* the same number of draws */
        }
        compared++;
    }
    assert_true(compared >= 50);
    minigpt_kv_free(&kv);
}

static void test_decoders_base(void **state) { check_decoders(); }

static void test_decoders_adapter(void **state) {
    static const float strengths[] = {1.0f, 0.5f, 2.0f};
    for (int s = 0; s < 3; s++) {
        lora a;
        adapter_on(&a, strengths[s]);
        check_decoders();
        lora_free(&a);
    }
}

/* log P(completion | prompt) of one example by itself through minigpt_forward. */
static double reference_logp(const ds_example *x) {
    ml_error e;
    const int T = x->n_prompt + x->n_completion - 1, V = model.cfg.vocab_size;
    minigpt_ws ws;
    assert_int_equal(minigpt_ws_init(&ws, &model, 1, model.cfg.context, &e), 0);
    minigpt_forward(&model, &ws, x->tokens, 1, T);
    double lp = 0;
    for (int j = 0; j < x->n_completion; j++) {
        const float *l = ws.logits + (size_t)(x->n_prompt + j - 1) * V;
        double z = 0, maxv = l[0];
        for (int v = 1; v < V; v++) maxv = l[v] > maxv ? l[v] : maxv;
        for (int v = 0; v < V; v++) z += exp(l[v] - maxv);
        lp += l[x->tokens[x->n_prompt + j]] - maxv - log(z);
    }
    minigpt_ws_free(&ws);
    return lp;
}

/* eval_dataset on 2 threads against one example at a time: log-probs within LP_TOL, the
 * predictions those of the reference greedy decoder. */
static void check_eval_dataset(void) {
    ml_error e;
    engine g;
    assert_int_equal(engine_init(&g, &model, 2, 256, 32, 0, 0, &e), 0);
    eval_item *items = calloc((size_t)test_set.n, sizeof *items);
    assert_non_null(items);
    eval_dataset(&g, &vocab, &test_set, items);
    int correct = 0, ref_correct = 0;
    for (int i = 0; i < test_set.n; i++) {
        const ds_example *x = &test_set.ex[i];
        const double ref = reference_logp(x);
        assert_true(fabs(items[i].logp_target - ref) <= LP_TOL * fmax(1.0, fabs(ref)));
        if (i % 4 == 0) { /* the greedy reference is slow: every 4th example */
            int want[4096];
            const int nw =
                reference_decode(x->tokens, x->n_prompt, want, model.cfg.context, 0.0f, NULL);
            char text[EVAL_MAX_PRED];
            tok_decode(&vocab, want, nw, text, sizeof text);
            assert_string_equal(items[i].prediction, text);
            ref_correct += nw == x->n_completion - 1 &&
                           memcmp(want, x->tokens + x->n_prompt, sizeof(int) * nw) == 0;
            correct += items[i].correct;
        }
    }
    assert_int_equal(correct, ref_correct);
    free(items);
    engine_free(&g);
}

static void test_eval_dataset_base(void **state) { check_eval_dataset(); }

static void test_eval_dataset_adapter(void **state) {
    lora a;
    adapter_on(&a, 1.0f);
    check_eval_dataset();
    lora_free(&a);
}

/* engine_loss (forward-only buffers carved out of the workspaces) against minigpt_forward +
 * minigpt_xent over the same chunks: the same sum, bit for bit, on 1 and 2 threads, so a
 * validation loss (which picks the best step of a training run) is what it was. */
static void check_engine_loss(size_t n_ext) {
    ml_error e;
    const int micro = 16, ctx = model.cfg.context;
    const ds_example **ex = malloc(sizeof *ex * (size_t)test_set.n);
    int *tok = malloc(sizeof(int) * micro * ctx), *tgt = malloc(sizeof(int) * micro * ctx);
    assert_true(ex && tok && tgt);
    for (int i = 0; i < test_set.n; i++) ex[i] = &test_set.ex[i];
    minigpt_ws ws;
    assert_int_equal(minigpt_ws_init(&ws, &model, micro, ctx, &e), 0);
    double want = 0;
    long want_n = 0;
    for (int start = 0; start < test_set.n; start += micro) {
        const int B = test_set.n - start < micro ? test_set.n - start : micro;
        const int T = ds_batch_T(ex + start, B);
        want_n += ds_batch(ex + start, B, T, tok, tgt);
        minigpt_forward(&model, &ws, tok, B, T);
        want += minigpt_xent(&model, &ws, tgt, 0.0f);
    }
    for (int threads = 1; threads <= 2; threads++) {
        engine g;
        assert_int_equal(engine_init(&g, &model, threads, 64, micro, 0, n_ext, &e), 0);
        long got_n = 0;
        const double got = engine_loss(&g, ex, test_set.n, &got_n);
        assert_int_equal(got_n, want_n);
        assert_memory_equal(&got, &want, sizeof got);
        engine_free(&g);
    }
    minigpt_ws_free(&ws);
    free((void *)ex);
    free(tok);
    free(tgt);
}

static void test_engine_loss_base(void **state) { check_engine_loss(0); }

static void test_engine_loss_adapter(void **state) {
    lora a;
    adapter_on(&a, 1.0f);
    check_engine_loss(a.n_params); /* a training engine, as lora-train's validation uses */
    lora_free(&a);
}

/* The serial recompute: batches of 32 padded to the context (eval_max_logit_diff's shapes), the
 * largest |logit − base logit| over real positions; NaN as soon as one difference is NaN. */
static double max_diff_serial(const dataset *d) {
    ml_error e;
    const int BATCH = 32, ctx = model.cfg.context, V = model.cfg.vocab_size;
    minigpt_ws wa, wb;
    int *tok = malloc(sizeof(int) * BATCH * ctx), *tgt = malloc(sizeof(int) * BATCH * ctx);
    assert_true(tok && tgt);
    assert_int_equal(minigpt_ws_init(&wa, &model, BATCH, ctx, &e), 0);
    assert_int_equal(minigpt_ws_init(&wb, &model, BATCH, ctx, &e), 0);
    double worst = 0;
    for (int start = 0; start < d->n; start += BATCH) {
        const int B = d->n - start < BATCH ? d->n - start : BATCH;
        const ds_example *ex[32];
        for (int b = 0; b < B; b++) ex[b] = &d->ex[start + b];
        ds_batch(ex, B, ctx, tok, tgt);
        minigpt_forward_frozen(&model, &wa, tok, B, ctx);
        minigpt_forward(&model, &wb, tok, B, ctx);
        for (int b = 0; b < B; b++) {
            const int real = ex[b]->n_prompt + ex[b]->n_completion - 1;
            for (int i = 0; i < real * V; i++) {
                const size_t at = (size_t)b * ctx * V + (size_t)i;
                const double diff = fabs((double)wb.logits[at] - wa.logits[at]);
                if (isnan(diff)) worst = NAN;
                if (!isnan(worst) && diff > worst) worst = diff;
            }
        }
    }
    minigpt_ws_free(&wa);
    minigpt_ws_free(&wb);
    free(tok);
    free(tgt);
    return worst;
}

static void test_max_logit_diff(void **state) {
    lora a;
    adapter_on(&a, 1.0f);
    ml_error e;
    /* the whole file, then every suffix from a batch boundary on (so that the batch holding
     * the largest difference is, in turn, the first, and each thread's share changes) */
    for (int from = 0; from < test_set.n; from += 32) {
        dataset tail = test_set;
        tail.ex += from, tail.n -= from;
        const dataset *one[] = {&tail};
        const double want = max_diff_serial(&tail);
        assert_true(want > 0 && isfinite(want));
        for (int threads = from ? 2 : 1; threads <= 3; threads++) {
            double got = -1;
            assert_int_equal(eval_max_logit_diff(&model, 1, &model, one, 1, threads, &got, &e), 0);
            assert_memory_equal(&got, &want, sizeof got);
        }
    }
    double two = -1; /* two sets: the batches of both are counted */
    const dataset *pair[] = {&test_set, &test_set};
    assert_int_equal(eval_max_logit_diff(&model, 1, &model, pair, 2, 2, &two, &e), 0);
    const double whole = max_diff_serial(&test_set);
    assert_memory_equal(&two, &whole, sizeof two);
    /* a NaN in the rotary table at position p: the logits of positions >= p are NaN, so only
     * the examples longer than p have a NaN difference; it must win on every thread count */
    int lo = model.cfg.context, hi = 0;
    for (int i = 0; i < test_set.n; i++) {
        const int real = test_set.ex[i].n_prompt + test_set.ex[i].n_completion - 1;
        lo = real < lo ? real : lo, hi = real > hi ? real : hi;
    }
    assert_true(lo < hi); /* some examples are shorter than others */
    float *cell = &model.rope_cos[(size_t)(hi - 1) * (model.cfg.d_model / model.cfg.n_heads / 2)];
    const float keep = *cell;
    *cell = NAN;
    assert_true(isnan(max_diff_serial(&test_set)));
    /* the file ends with a longest example: reversed, finite differences follow every NaN */
    dataset rev = test_set;
    assert_non_null(rev.ex = malloc(sizeof *rev.ex * (size_t)test_set.n));
    for (int i = 0; i < test_set.n; i++) rev.ex[i] = test_set.ex[test_set.n - 1 - i];
    const dataset *both[] = {&test_set, &rev};
    for (int threads = 1; threads <= 3; threads++)
        for (int k = 0; k < 2; k++) {
            double got = 0;
            assert_int_equal(eval_max_logit_diff(&model, 1, &model, &both[k], 1, threads, &got, &e),
                             0);
            assert_true(isnan(got));
        }
    free(rev.ex);
    *cell = keep;
    lora_free(&a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_incremental_base),  cmocka_unit_test(test_incremental_adapter),
        cmocka_unit_test(test_decoders_base),     cmocka_unit_test(test_decoders_adapter),
        cmocka_unit_test(test_eval_dataset_base), cmocka_unit_test(test_eval_dataset_adapter),
        cmocka_unit_test(test_engine_loss_base),  cmocka_unit_test(test_engine_loss_adapter),
        cmocka_unit_test(test_max_logit_diff),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
