/* test_mix.c — mixing adapters (lora_mix.h, merge_job.h) and switching them (adapter_set.h),
 * each against a reference computed here by loops in double from the sources' own A and B and
 * the scales α/r, α/√r written out by hand: cat is exactly Σ w_i·s_i·B_i·A_i, linear is PEFT's
 * (Σ c_i B_i)(Σ c_i A_i) with c_i = √(w_i·s_i), svd at full rank equals cat, a truncated svd
 * misses by exactly the discarded singular values (Eckart–Young, the σ from eigenvalues of
 * ΔWᵀΔW by dsyev), a merged base gives the logits of the base with every weighted ΔW added by
 * hand, an --out-adapter file carries its provenance, and a switched adapter gives the logits
 * of that adapter loaded alone, bit for bit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cJSON.h>
#include <lapacke.h>
#include <unistd.h>

#include "adapter_set.h"
#include "blas_runtime.h"
#include "checkpoint.h"
#include "dataset.h"
#include "eval.h"
#include "lora_mix.h"
#include "merge_job.h"
#include "sha256.h"
#include "test_util.h"

#define BASE_PATH "data/minigpt-base.safetensors"
#define DATA_PATH "data/irreg_val.jsonl"

/* The three source adapters, written once to files (F16) and read back by every test. */
enum { N_SRC = 3 };
static const struct {
    int rank;
    float alpha;
    int rslora;
    unsigned targets, layers;
    double scale; /* α/r or α/√r, by hand */
} SRC[N_SRC] = {
    {4, 8.0f, 0, LORA_ALL_TARGETS, LORA_ALL_LAYERS, 2.0}, /* a: everything */
    {6, 3.0f, 1, 0x0Fu, 1u << 1, 1.224744871391589},      /* b: attention of block 1 */
    {4, 2.0f, 0, LORA_ALL_TARGETS, LORA_ALL_LAYERS, 0.5}, /* c: like a, for linear */
};
static char dir[] = "/tmp/minilora-mix-XXXXXX";
static char paths[N_SRC][128], other_path[128];
static minigpt base;
static tok_vocab vocab;
static char base_sha[65];

static int setup(void **state) {
    ml_error e;
    if (!mkdtemp(dir) || checkpoint_load(BASE_PATH, &base, &vocab, base_sha, &e)) return -1;
    for (int i = 0; i < N_SRC; i++) {
        lora a;
        if (lora_init_layers(&a, &base, SRC[i].rank, SRC[i].alpha, SRC[i].rslora, SRC[i].targets,
                             SRC[i].layers, &e))
            return -1;
        rng r;
        rng_seed(&r, 100 + i);
        for (size_t k = 0; k < a.n_params; k++) a.params[k] = 0.08f * rng_normal(&r);
        snprintf(paths[i], sizeof paths[i], "%s/src%d.safetensors", dir, i);
        const int rc = lora_save(&a, paths[i], base_sha, 0, NULL, NULL, &e);
        if (!rc && i == 0) { /* the same adapter, said to be trained on another base */
            snprintf(other_path, sizeof other_path, "%s/other.safetensors", dir);
            if (lora_save(&a, other_path, "0123abcd", 0, NULL, NULL, &e)) return -1;
        }
        lora_free(&a);
        if (rc) return -1;
    }
    return 0;
}

static int teardown(void **state) {
    for (int i = 0; i < N_SRC; i++) unlink(paths[i]);
    unlink(other_path);
    rmdir(dir);
    minigpt_free(&base);
    return 0;
}

/* Loads the sources idx[0..n) onto base and sets them aside (lora_uninstall). */
static void load_sources(lora *src, const int *idx, int n) {
    ml_error e;
    for (int i = 0; i < n; i++) {
        if (lora_load(&src[i], &base, paths[idx[i]], base_sha, &e)) fail_msg("%s", e.msg);
        lora_uninstall(&src[i]);
    }
}

static const lora_layer *layer_of(const lora *a, const minigpt_linear *slot) {
    for (int i = 0; i < a->n_layers; i++)
        if (a->layers[i].slot == slot) return &a->layers[i];
    return NULL;
}

/* dw (out,in) = s · B · A of a's layer on slot (zero when a leaves it alone), in double. */
static void delta_of(double *dw, const lora *a, const minigpt_linear *slot, double s) {
    memset(dw, 0, sizeof(double) * (size_t)slot->out * slot->in);
    const lora_layer *L = layer_of(a, slot);
    for (int o = 0; L && o < slot->out; o++)
        for (int i = 0; i < slot->in; i++) {
            double v = 0;
            for (int k = 0; k < a->rank; k++)
                v += (double)L->B[(size_t)o * a->rank + k] * L->A[(size_t)k * slot->in + i];
            dw[(size_t)o * slot->in + i] = s * v;
        }
}

/* ref (out,in) = Σ w_i · SRC[idx_i].scale · B_i · A_i over the sources, in double. */
static void weighted_sum(double *ref, const lora *src, const int *idx, const double *w, int n,
                         const minigpt_linear *slot) {
    const size_t sz = (size_t)slot->out * slot->in;
    double *tmp = malloc(sizeof(double) * sz);
    assert_non_null(tmp);
    memset(ref, 0, sizeof(double) * sz);
    for (int i = 0; i < n; i++) {
        delta_of(tmp, &src[i], slot, SRC[idx[i]].scale);
        for (size_t k = 0; k < sz; k++) ref[k] += w[i] * tmp[k];
    }
    free(tmp);
}

/* Largest |a − b| over n doubles, relative to the largest |b|. */
static double rel_err(const double *a, const double *b, size_t n) {
    double d = 0, m = 0;
    for (size_t k = 0; k < n; k++) {
        d = fmax(d, fabs(a[k] - b[k]));
        m = fmax(m, fabs(b[k]));
    }
    return m > 0 ? d / m : d;
}

static void check_scale_one(const lora *mix, int rank) {
    assert_int_equal(mix->rank, rank);
    assert_true(mix->alpha == (float)rank);
    assert_int_equal(mix->rslora, 0);
    assert_true(mix->scale == 1.0f);
}

/* cat: rank r_a + r_b, union of targets and blocks, ΔW exactly the weighted sum (a negative
 * weight included: task arithmetic's subtraction). */
static void test_cat_exact(void **state) {
    const int idx[2] = {0, 1};
    const double wd[2] = {0.7, -0.4};
    const float w[2] = {0.7f, -0.4f};
    lora src[2], mix;
    load_sources(src, idx, 2);
    const lora *sp[2] = {&src[0], &src[1]};
    const char *labels[2] = {paths[0], paths[1]};
    ml_error e;
    if (lora_mix(&mix, &base, sp, labels, w, 2, LORA_MIX_CAT, 0, &e)) fail_msg("%s", e.msg);
    check_scale_one(&mix, 10);
    assert_int_equal(mix.n_layers, base.n_linears); /* a covers every Linear */
    double worst = 0;
    for (int l = 0; l < base.n_linears; l++) {
        const minigpt_linear *slot = &base.linears[l];
        const size_t sz = (size_t)slot->out * slot->in;
        double *ref = malloc(sizeof(double) * sz), *got = malloc(sizeof(double) * sz);
        assert_true(ref && got);
        weighted_sum(ref, src, idx, wd, 2, slot);
        delta_of(got, &mix, slot, 1.0);
        worst = fmax(worst, rel_err(got, ref, sz));
        free(ref);
        free(got);
    }
    printf("  cat: max |ΔW_mix − Σ w·s·B·A| / max|ΔW| = %.2e over %d Linears\n", worst,
           base.n_linears);
    assert_true(worst < 1e-6);
    lora_free(&mix);
    for (int i = 0; i < 2; i++) lora_free(&src[i]);
}

/* linear: PEFT's formula, which is not the weighted sum (its cross terms are not small), and
 * its refusals: another rank, other targets, a negative weight. */
static void test_linear(void **state) {
    const int idx[2] = {0, 2};
    const double wd[2] = {0.6, 0.3};
    const float w[2] = {0.6f, 0.3f};
    lora src[2], mix;
    load_sources(src, idx, 2);
    const lora *sp[2] = {&src[0], &src[1]};
    const char *labels[2] = {paths[0], paths[2]};
    ml_error e;
    if (lora_mix(&mix, &base, sp, labels, w, 2, LORA_MIX_LINEAR, 0, &e)) fail_msg("%s", e.msg);
    check_scale_one(&mix, 4);
    double worst = 0, cross = 0;
    for (int l = 0; l < base.n_linears; l++) {
        const minigpt_linear *slot = &base.linears[l];
        const int in = slot->in, out = slot->out, r = 4;
        const size_t sz = (size_t)out * in;
        double *ref = malloc(sizeof(double) * sz), *got = malloc(sizeof(double) * sz);
        double *sum = malloc(sizeof(double) * sz);
        assert_true(ref && got && sum);
        const lora_layer *L0 = layer_of(&src[0], slot), *L1 = layer_of(&src[1], slot);
        const double c0 = sqrt(wd[0] * SRC[0].scale), c1 = sqrt(wd[1] * SRC[2].scale);
        for (int o = 0; o < out; o++)
            for (int i = 0; i < in; i++) {
                double v = 0;
                for (int k = 0; k < r; k++)
                    v += (c0 * L0->B[o * r + k] + c1 * L1->B[o * r + k]) *
                         (c0 * L0->A[k * in + i] + c1 * L1->A[k * in + i]);
                ref[(size_t)o * in + i] = v;
            }
        delta_of(got, &mix, slot, 1.0);
        weighted_sum(sum, src, idx, wd, 2, slot);
        worst = fmax(worst, rel_err(got, ref, sz));
        cross = fmax(cross, rel_err(got, sum, sz));
        free(ref);
        free(got);
        free(sum);
    }
    printf("  linear: vs PEFT's formula %.2e; vs the weighted sum %.2f (the cross terms)\n", worst,
           cross);
    assert_true(worst < 1e-6);
    assert_true(cross > 0.05);
    lora_free(&mix);
    lora_free(&src[1]);
    /* a rank-6 adapter of other targets cannot join linearly; it is named */
    load_sources(&src[1], (const int[]){1}, 1);
    labels[1] = paths[1];
    assert_int_equal(lora_mix(&mix, &base, sp, labels, w, 2, LORA_MIX_LINEAR, 0, &e), -1);
    assert_non_null(strstr(e.msg, paths[1]));
    assert_non_null(strstr(e.msg, "rank 6"));
    lora_free(&src[1]);
    load_sources(&src[1], (const int[]){2}, 1);
    labels[1] = paths[2];
    const float neg[2] = {0.5f, -0.5f};
    assert_int_equal(lora_mix(&mix, &base, sp, labels, neg, 2, LORA_MIX_LINEAR, 0, &e), -1);
    assert_non_null(strstr(e.msg, paths[2]));
    assert_non_null(strstr(e.msg, ">= 0"));
    for (int i = 0; i < 2; i++) lora_free(&src[i]);
}

/* σ of m (rows,cols) in descending order from the eigenvalues of mᵀm (dsyev): not the SVD
 * routine the mix uses. */
static void singular_values(const double *m, int rows, int cols, double *sigma) {
    double *g = calloc((size_t)cols * cols, sizeof(double)), *ev = malloc(sizeof(double) * cols);
    assert_true(g && ev);
    for (int a = 0; a < cols; a++)
        for (int b = 0; b < cols; b++) {
            double v = 0;
            for (int k = 0; k < rows; k++) v += m[(size_t)k * cols + a] * m[(size_t)k * cols + b];
            g[(size_t)a * cols + b] = v;
        }
    assert_int_equal(LAPACKE_dsyev(LAPACK_ROW_MAJOR, 'N', 'U', cols, g, cols, ev), 0);
    for (int i = 0; i < cols; i++) sigma[i] = sqrt(fmax(ev[cols - 1 - i], 0.0)); /* ascending */
    free(g);
    free(ev);
}

/* svd at full rank (r_a + r_b) equals cat; at rank 3 the squared error is the sum of the
 * discarded σ² (Eckart–Young), each A row's largest |entry| is positive, and a second run is
 * bit-identical. */
static void test_svd(void **state) {
    const int idx[2] = {0, 1};
    const double wd[2] = {0.7, -0.4};
    const float w[2] = {0.7f, -0.4f};
    lora src[2], full, low, again;
    load_sources(src, idx, 2);
    const lora *sp[2] = {&src[0], &src[1]};
    const char *labels[2] = {paths[0], paths[1]};
    ml_error e;
    if (lora_mix(&full, &base, sp, labels, w, 2, LORA_MIX_SVD, 10, &e)) fail_msg("%s", e.msg);
    check_scale_one(&full, 10);
    lora_uninstall(&full);
    if (lora_mix(&low, &base, sp, labels, w, 2, LORA_MIX_SVD, 3, &e)) fail_msg("%s", e.msg);
    check_scale_one(&low, 3);
    lora_uninstall(&low);
    if (lora_mix(&again, &base, sp, labels, w, 2, LORA_MIX_SVD, 3, &e)) fail_msg("%s", e.msg);
    assert_memory_equal(again.params, low.params, low.n_params * sizeof(float));
    lora_free(&again);
    if (lora_mix(&again, &base, sp, labels, w, 2, LORA_MIX_SVD, 0, &e)) fail_msg("%s", e.msg);
    assert_int_equal(again.rank, 6); /* no --rank: the largest source rank, as PEFT */
    lora_free(&again);
    double worst_full = 0, worst_ey = 0;
    for (int l = 0; l < base.n_linears; l++) {
        const minigpt_linear *slot = &base.linears[l];
        const int in = slot->in, out = slot->out, k = in < out ? in : out;
        const size_t sz = (size_t)out * in;
        double *ref = malloc(sizeof(double) * sz), *got = malloc(sizeof(double) * sz);
        double *sigma = malloc(sizeof(double) * in);
        assert_true(ref && got && sigma);
        weighted_sum(ref, src, idx, wd, 2, slot);
        delta_of(got, &full, slot, 1.0);
        worst_full = fmax(worst_full, rel_err(got, ref, sz));
        delta_of(got, &low, slot, 1.0);
        double err2 = 0, norm2 = 0, tail2 = 0;
        for (size_t q = 0; q < sz; q++) {
            err2 += (got[q] - ref[q]) * (got[q] - ref[q]);
            norm2 += ref[q] * ref[q];
        }
        singular_values(ref, out, in, sigma);
        for (int t = 3; t < k; t++) tail2 += sigma[t] * sigma[t];
        worst_ey = fmax(worst_ey, fabs(err2 - tail2) / norm2);
        if (tail2 < 1e-3 * norm2) fail_msg("%s: nothing discarded at rank 3", slot->path);
        const lora_layer *L = layer_of(&low, slot);
        for (int t = 0; t < 3; t++) {
            int big = 0;
            for (int j = 1; j < in; j++)
                if (fabsf(L->A[t * in + j]) > fabsf(L->A[t * in + big])) big = j;
            assert_true(L->A[t * in + big] > 0);
        }
        free(ref);
        free(got);
        free(sigma);
    }
    printf("  svd: full rank vs cat's sum %.2e; rank 3: | ||ΔW − BA||² − Σ_{k>3} σ_k² | / ||ΔW||² "
           "= %.2e\n",
           worst_full, worst_ey);
    assert_true(worst_full < 1e-5);
    assert_true(worst_ey < 1e-5);
    lora_free(&full);
    lora_free(&low);
    for (int i = 0; i < 2; i++) lora_free(&src[i]);
}

/* Logits of m on DATA_PATH; malloc'ed. */
static float *logits(const minigpt *m, size_t *n) {
    dataset d;
    ml_error e;
    if (ds_load(&d, DATA_PATH, &vocab, m->cfg.context, &e)) fail_msg("%s", e.msg);
    const dataset *sets[1] = {&d};
    float *out = eval_logits(m, sets, 1, n, &e);
    if (!out) fail_msg("%s", e.msg);
    ds_free(&d);
    return out;
}

/* merge_job_run's merged base (cat and full-rank svd) against the base with Σ w_i·s_i·B_i·A_i
 * added by hand in double to every W. */
static void test_merged_base_logits(void **state) {
    const int idx[2] = {0, 1};
    const double wd[2] = {0.7, -0.4};
    lora src[2];
    load_sources(src, idx, 2);
    minigpt ref;
    tok_vocab v;
    ml_error e;
    assert_int_equal(checkpoint_load(BASE_PATH, &ref, &v, NULL, &e), 0);
    for (int l = 0; l < base.n_linears; l++) {
        const minigpt_linear *slot = &base.linears[l];
        const size_t sz = (size_t)slot->out * slot->in;
        double *dw = malloc(sizeof(double) * sz);
        assert_non_null(dw);
        weighted_sum(dw, src, idx, wd, 2, slot);
        for (size_t q = 0; q < sz; q++) ref.linears[l].w[q] = (float)(slot->w[q] + dw[q]);
        free(dw);
    }
    for (int i = 0; i < 2; i++) lora_free(&src[i]);
    size_t n_ref, n_base, n;
    float *want = logits(&ref, &n_ref), *plain = logits(&base, &n_base);
    minigpt_free(&ref);
    const char *files[1] = {DATA_PATH};
    for (int mode = LORA_MIX_CAT; mode <= LORA_MIX_SVD; mode++) {
        char out[160];
        snprintf(out, sizeof out, "%s/merged-%s.safetensors", dir, lora_mix_mode_name(mode));
        merge_spec s = {.base = BASE_PATH,
                        .out = out,
                        .adapters = {paths[0], paths[1]},
                        .weights = {0.7f, -0.4f},
                        .n_adapters = 2,
                        .mix = 1,
                        .combine = mode,
                        .svd_rank = 10,
                        .files = files,
                        .n_files = 1,
                        .strength = 1.0f};
        merge_report rep;
        if (merge_job_run(&s, &rep, &e)) fail_msg("%s", e.msg);
        minigpt merged;
        assert_int_equal(checkpoint_load(out, &merged, &v, NULL, &e), 0);
        float *got = logits(&merged, &n);
        assert_int_equal(n, n_ref);
        double err, mag, moved, mag2;
        tu_max_err(got, want, n, &err, &mag);
        tu_max_err(plain, want, n, &moved, &mag2);
        printf("  merged base (%s): max |Δlogit| vs by-hand %.2e (logits up to %.1f; the mix "
               "moves them by %.2f)\n",
               lora_mix_mode_name(mode), err, mag, moved);
        assert_true(err < 1e-4 * mag);
        assert_true(moved > 1000 * err); /* the check is not vacuous */
        assert_true(rep.max_diff < 1e-3);
        free(got);
        minigpt_free(&merged);
        unlink(out);
    }
    free(want);
    free(plain);
}

/* --out-adapter: metadata (mode, rank, alpha, sources with sha256 and weights) and weights
 * within F16 rounding of the mix; a source of another base is refused naming it and nothing
 * is written. */
static void test_out_adapter(void **state) {
    char out[160], sha[2][65];
    snprintf(out, sizeof out, "%s/mix.safetensors", dir);
    const char *files[1] = {DATA_PATH};
    merge_spec s = {.base = BASE_PATH,
                    .out_adapter = out,
                    .adapters = {paths[0], paths[1]},
                    .weights = {0.7f, -0.4f},
                    .n_adapters = 2,
                    .mix = 1,
                    .combine = LORA_MIX_SVD,
                    .svd_rank = 5,
                    .files = files,
                    .n_files = 1,
                    .strength = 1.0f};
    merge_report rep;
    ml_error e;
    if (merge_job_run(&s, &rep, &e)) fail_msg("%s", e.msg);
    printf("  --out-adapter: max |logit(file) − logit(mix)| %.2e (F16)\n", rep.max_diff);
    assert_true(rep.max_diff < 0.05);
    st_file f;
    assert_int_equal(st_open(&f, out, &e), 0);
    assert_string_equal(st_meta(&f, "r"), "5");
    assert_string_equal(st_meta(&f, "lora_alpha"), "5");
    assert_string_equal(st_meta(&f, "use_rslora"), "false");
    assert_string_equal(st_meta(&f, "base_sha256"), base_sha);
    assert_string_equal(st_meta(&f, "mix_combine"), "svd");
    cJSON *list = cJSON_Parse(st_meta(&f, "mix_sources"));
    assert_true(cJSON_IsArray(list) && cJSON_GetArraySize(list) == 2);
    for (int i = 0; i < 2; i++) {
        const cJSON *o = cJSON_GetArrayItem(list, i);
        assert_int_equal(sha256_file_hex(paths[i], sha[i], &e), 0);
        assert_string_equal(cJSON_GetObjectItem(o, "adapter")->valuestring, paths[i]);
        assert_string_equal(cJSON_GetObjectItem(o, "sha256")->valuestring, sha[i]);
        assert_true(cJSON_GetObjectItem(o, "weight")->valuedouble == (i ? -0.4 : 0.7));
        assert_int_equal(cJSON_GetObjectItem(o, "r")->valueint, SRC[i].rank);
    }
    cJSON_Delete(list);
    st_close(&f);
    /* the file's weights are the mix's, F16-rounded */
    lora src[2], mix, file;
    load_sources(src, (const int[]){0, 1}, 2);
    const lora *sp[2] = {&src[0], &src[1]};
    const float w[2] = {0.7f, -0.4f};
    if (lora_mix(&mix, &base, sp, s.adapters, w, 2, LORA_MIX_SVD, 5, &e)) fail_msg("%s", e.msg);
    lora_uninstall(&mix);
    if (lora_load(&file, &base, out, base_sha, &e)) fail_msg("%s", e.msg);
    assert_int_equal(file.n_params, mix.n_params);
    for (size_t k = 0; k < mix.n_params; k++) {
        const float x = mix.params[k], y = file.params[k];
        const float ulp = ldexpf(1.0f, (fabsf(x) < 6.103515625e-05f ? -14 : ilogbf(x)) - 10);
        if (fabsf(x - y) > 0.5f * ulp) fail_msg("param %zu: %g written as %g", k, x, y);
    }
    lora_free(&file);
    lora_free(&mix);
    for (int i = 0; i < 2; i++) lora_free(&src[i]);
    unlink(out);
    /* a source trained on another base: refused, named, nothing written */
    s.adapters[1] = other_path;
    assert_int_equal(merge_job_run(&s, &rep, &e), -1);
    assert_non_null(strstr(e.msg, other_path));
    assert_non_null(strstr(e.msg, "another base"));
    assert_int_equal(access(out, F_OK), -1);
}

/* adapter_set: each selection gives the logits of that adapter loaded alone (or the base),
 * bit for bit, in any order of switching. */
static void test_switching(void **state) {
    size_t n;
    float *alone[2];
    ml_error e;
    for (int i = 0; i < 2; i++) {
        lora a;
        if (lora_load(&a, &base, paths[i], base_sha, &e)) fail_msg("%s", e.msg);
        alone[i] = logits(&base, &n);
        lora_free(&a);
    }
    float *plain = logits(&base, &n);
    char specs[2][160];
    snprintf(specs[0], sizeof specs[0], "a=%s", paths[0]);
    snprintf(specs[1], sizeof specs[1], "b_2=%s", paths[1]);
    const char *sp[2] = {specs[0], specs[1]};
    adapter_set set;
    if (adapter_set_init(&set, &base, base_sha, sp, 2, 1.0f, &e)) fail_msg("%s", e.msg);
    const int order[] = {1, ADAPTER_SET_BASE, 0, 1, 0, ADAPTER_SET_BASE};
    for (size_t k = 0; k < sizeof order / sizeof order[0]; k++) {
        int changed;
        assert_int_equal(adapter_set_select(&set, order[k], &changed, &e), 0);
        float *got = logits(&base, &n);
        const float *want = order[k] == ADAPTER_SET_BASE ? plain : alone[order[k]];
        assert_memory_equal(got, want, n * sizeof(float));
        free(got);
    }
    int idx;
    const char *rest;
    assert_int_equal(adapter_set_route(&set, "@b_2 go: he ", &idx, &rest, &e), 0);
    assert_int_equal(idx, 1);
    assert_string_equal(rest, "go: he ");
    assert_int_equal(adapter_set_route(&set, "@base go", &idx, &rest, &e), 0);
    assert_int_equal(idx, ADAPTER_SET_BASE);
    assert_int_equal(adapter_set_route(&set, "go: he", &idx, &rest, &e), 0);
    assert_int_equal(idx, 0);
    assert_int_equal(adapter_set_route(&set, "@zz go", &idx, &rest, &e), -1);
    assert_non_null(strstr(e.msg, "'@zz'"));
    adapter_set_free(&set);
    const char *dup[2] = {specs[0], specs[0]};
    assert_int_equal(adapter_set_check_specs(dup, 2, &e), -1);
    assert_non_null(strstr(e.msg, "twice"));
    const char *reserved[1] = {"base=x.safetensors"};
    assert_int_equal(adapter_set_check_specs(reserved, 1, &e), -1);
    free(alone[0]);
    free(alone[1]);
    free(plain);
}

int main(int argc, char **argv) {
    (void)argc;
    runtime_init(argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cat_exact),   cmocka_unit_test(test_linear),
        cmocka_unit_test(test_svd),         cmocka_unit_test(test_merged_base_logits),
        cmocka_unit_test(test_out_adapter), cmocka_unit_test(test_switching),
    };
    return cmocka_run_group_tests_name("mix", tests, setup, teardown);
}
