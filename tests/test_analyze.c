/* test_analyze.c — the §7 analysis: singular values against independent computations,
 * effective rank and energy shares, the subspace similarity φ on subspaces whose answer is
 * known by hand, and updates read back from real adapter and checkpoint files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <lapacke.h>
#include <unistd.h>

#include "analyze.h"
#include "analyze_job.h"
#include "dataset.h"
#include "checkpoint.h"
#include "fp16.h"
#include "lora.h"
#include "sha256.h"
#include "test_util.h"

/* Random orthogonal n x n matrix (row-major; its columns are orthonormal) from the QR of a
 * Gaussian matrix; malloc'ed, caller frees. */
static double *random_orthogonal(int n, uint64_t seed) {
    rng r;
    rng_seed(&r, seed);
    double *q = malloc(sizeof(double) * n * n), *tau = malloc(sizeof(double) * n);
    assert_non_null(q);
    assert_non_null(tau);
    for (int i = 0; i < n * n; i++) q[i] = rng_normal(&r);
    assert_int_equal(LAPACKE_dgeqrf(LAPACK_ROW_MAJOR, n, n, q, n, tau), 0);
    assert_int_equal(LAPACKE_dorgqr(LAPACK_ROW_MAJOR, n, n, n, q, n, tau), 0);
    free(tau);
    return q;
}

/* ΔW = B·A with r = 3: exactly three non-zero singular values, and they are the square roots
 * of the eigenvalues of ΔWᵀΔW (dsyev, a different LAPACK algorithm on a different matrix). */
static void test_rank3_spectrum_matches_eigenvalues(void **state) {
    enum { OUT = 64, IN = 48, R = 3, N = IN }; /* out != in catches a transposed layout */
    rng g;
    rng_seed(&g, 11);
    double Bm[OUT * R], Am[R * IN];
    for (int i = 0; i < OUT * R; i++) Bm[i] = rng_normal(&g);
    for (int i = 0; i < R * IN; i++) Am[i] = 2.0 * rng_uniform(&g) - 1.0;
    static float dw[OUT * IN];
    for (int o = 0; o < OUT; o++)
        for (int i = 0; i < IN; i++) {
            double s = 0;
            for (int k = 0; k < R; k++) s += Bm[o * R + k] * Am[k * IN + i];
            dw[o * IN + i] = (float)s;
        }
    double sigma[N];
    ml_error e;
    assert_int_equal(analyze_spectrum(dw, OUT, IN, sigma, &e), 0);
    for (int i = 1; i < N; i++) assert_true(sigma[i] <= sigma[i - 1]);
    int above = 0;
    for (int i = 0; i < N; i++) above += sigma[i] > 1e-5 * sigma[0];
    assert_int_equal(above, R);
    assert_int_equal(analyze_effective_rank(sigma, N, 1e-5), R);
    for (int i = R; i < N; i++) assert_true(sigma[i] < 1e-6 * sigma[0]);

    /* G = ΔWᵀΔW (IN x IN) in double from the same float entries */
    static double G[IN * IN], lam[IN];
    for (int a = 0; a < IN; a++)
        for (int b = 0; b < IN; b++) {
            double s = 0;
            for (int o = 0; o < OUT; o++) s += (double)dw[o * IN + a] * dw[o * IN + b];
            G[a * IN + b] = s;
        }
    assert_int_equal(LAPACKE_dsyev(LAPACK_ROW_MAJOR, 'N', 'U', IN, G, IN, lam), 0);
    for (int k = 0; k < R; k++) { /* dsyev sorts ascending */
        const double ref = sqrt(lam[IN - 1 - k]);
        assert_true(fabs(sigma[k] - ref) <= 1e-9 * ref);
    }
}

/* diag(5,3,2,1,.5,.25) rotated by random orthogonal matrices: the σ come back, and the
 * singular vectors are the rotations' columns (up to sign). */
static void test_known_spectrum_and_vectors(void **state) {
    enum { OUT = 40, IN = 24, K = 6 };
    const double d[K] = {5, 3, 2, 1, 0.5, 0.25};
    double *q1 = random_orthogonal(OUT, 21), *q2 = random_orthogonal(IN, 22);
    static float dw[OUT * IN];
    for (int o = 0; o < OUT; o++)
        for (int i = 0; i < IN; i++) {
            double s = 0;
            for (int k = 0; k < K; k++) s += q1[o * OUT + k] * d[k] * q2[i * IN + k];
            dw[o * IN + i] = (float)s;
        }
    double sigma[IN], u[IN * OUT], vt[IN * IN];
    ml_error e;
    assert_int_equal(analyze_svd(dw, OUT, IN, sigma, u, vt, &e), 0);
    for (int k = 0; k < K; k++) assert_true(fabs(sigma[k] - d[k]) < 1e-6 * d[0]);
    for (int k = K; k < IN; k++) assert_true(sigma[k] < 1e-6 * d[0]);
    /* rows of u/vt against columns of q1/q2 */
    double q1t[K * OUT], q2t[K * IN];
    for (int k = 0; k < K; k++) {
        for (int o = 0; o < OUT; o++) q1t[k * OUT + o] = q1[o * OUT + k];
        for (int i = 0; i < IN; i++) q2t[k * IN + i] = q2[i * IN + k];
        double cu = 0, cv = 0;
        for (int o = 0; o < OUT; o++) cu += u[k * OUT + o] * q1t[k * OUT + o];
        for (int i = 0; i < IN; i++) cv += vt[k * IN + i] * q2t[k * IN + i];
        assert_true(fabs(fabs(cu) - 1.0) < 1e-6);
        assert_true(fabs(fabs(cv) - 1.0) < 1e-6);
    }
    assert_true(fabs(analyze_subspace_similarity(u, K, q1t, K, OUT) - 1.0) < 1e-9);
    assert_true(fabs(analyze_subspace_similarity(vt, K, q2t, K, IN) - 1.0) < 1e-9);
    assert_true(fabs(analyze_frobenius(dw, OUT * IN) - sqrt(25 + 9 + 4 + 1 + 0.25 + 0.0625)) <
                1e-5);
    free(q1);
    free(q2);

    dw[7] = NAN; /* an always-on check, not an assert */
    assert_int_equal(analyze_svd(dw, OUT, IN, sigma, NULL, NULL, &e), -1);
    assert_non_null(strstr(e.msg, "element 7"));
}

static void test_energy_and_effective_rank(void **state) {
    const double s[8] = {4, 2, 1, 1, 0.5, 0.01, 0.001, 0};
    const double all = 16 + 4 + 1 + 1 + 0.25 + 1e-4 + 1e-6;
    assert_true(fabs(analyze_energy_share(s, 8, 1) - 16 / all) < 1e-15);
    assert_true(fabs(analyze_energy_share(s, 8, 4) - 22 / all) < 1e-15);
    assert_true(fabs(analyze_energy_share(s, 8, 8) - 1.0) < 1e-15);
    assert_true(fabs(analyze_energy_share(s, 3, 4) - 1.0) < 1e-15); /* k > n */
    assert_int_equal(analyze_effective_rank(s, 8, 0.01), 5);        /* σ > 0.04 */
    assert_int_equal(analyze_effective_rank(s, 8, 0.2), 4);         /* σ > 0.8 */
    assert_int_equal(analyze_effective_rank(s, 8, 0.25), 2);        /* σ > 1: strictly, 1 is out */
    assert_int_equal(analyze_effective_rank(s, 8, 0.3), 2);         /* σ > 1.2 */
    assert_int_equal(analyze_effective_rank(s, 8, 0.0), 7);         /* every non-zero σ */
    assert_int_equal(analyze_numerical_rank(s, 8), 7);
    const double z[4] = {0, 0, 0, 0};
    assert_int_equal(analyze_effective_rank(z, 4, 0.01), 0);
    assert_true(analyze_energy_share(z, 4, 1) == 0.0);

    /* an untrained adapter (B = 0): a zero ΔW reports rank 0 and zero shares, no NaN */
    float dw[8 * 4] = {0}, w[8 * 4], a[2 * 4] = {1, 0, 0, 0, 0, 1, 0, 0};
    for (int i = 0; i < 32; i++) w[i] = 0.5f;
    analyze_layer l = {.path = "x", .out = 8, .in = 4, .dw = dw, .a = a, .w = w};
    analyze_report rep;
    ml_error e;
    assert_int_equal(analyze_layer_report(&l, 2, 0.01, &rep, &e), 0);
    assert_int_equal(rep.n, 4);
    assert_int_equal(rep.eff_rank, 0);
    assert_true(rep.top1 == 0.0 && rep.fro == 0.0 && rep.rel == 0.0);
    assert_int_equal(rep.a_n, 2);
    assert_true(fabs(rep.a_sigma[0] - 1.0) < 1e-12 && fabs(rep.a_sigma[1] - 1.0) < 1e-12);
    analyze_report_free(&rep);
}

/* φ on R^8 with bases known by hand (rows are basis vectors, most important first). */
static void test_subspace_similarity(void **state) {
    enum { D = 8 };
    const double h = sqrt(0.5);
    double e14[4 * D] = {0}, e58[4 * D] = {0}, half[4 * D] = {0}, rot[4 * D] = {0};
    for (int k = 0; k < 4; k++) {
        e14[k * D + k] = 1;     /* e1..e4 */
        e58[k * D + 4 + k] = 1; /* e5..e8 */
    }
    /* e1, (e2+e5)/√2, e6, e7: shares e1 fully and half of e2 with e1..e4 */
    half[0 * D + 0] = 1;
    half[1 * D + 1] = h;
    half[1 * D + 4] = h;
    half[2 * D + 5] = 1;
    half[3 * D + 6] = 1;
    /* the span of e1..e4 in another orthonormal basis */
    const double c = cos(0.3), s = sin(0.3);
    rot[0 * D + 0] = c, rot[0 * D + 1] = s;
    rot[1 * D + 0] = -s, rot[1 * D + 1] = c;
    rot[2 * D + 2] = c, rot[2 * D + 3] = -s;
    rot[3 * D + 2] = s, rot[3 * D + 3] = c;

    for (int i = 1; i <= 4; i++)
        for (int j = 1; j <= 4; j++) {
            assert_true(fabs(analyze_subspace_similarity(e14, i, e14, j, D) - 1.0) < 1e-15);
            assert_true(fabs(analyze_subspace_similarity(e14, i, e58, j, D)) < 1e-15);
        }
    assert_true(fabs(analyze_subspace_similarity(e14, 4, rot, 4, D) - 1.0) < 1e-14);
    assert_true(fabs(analyze_subspace_similarity(e14, 1, rot, 1, D) - c * c) < 1e-14);
    /* by hand: U1ᵀU2 over the top 4 has entries 1 (e1·e1) and 1/√2 (e2·(e2+e5)/√2) */
    assert_true(fabs(analyze_subspace_similarity(e14, 4, half, 4, D) - 1.5 / 4) < 1e-15);
    assert_true(fabs(analyze_subspace_similarity(e14, 2, half, 2, D) - 1.5 / 2) < 1e-15);
    assert_true(fabs(analyze_subspace_similarity(e14, 1, half, 4, D) - 1.0) < 1e-15);
    assert_true(fabs(analyze_subspace_similarity(e14, 4, half, 1, D) - 1.0) < 1e-15);
    assert_true(fabs(analyze_subspace_similarity(e14, 3, half, 2, D) - 1.5 / 2) < 1e-15);
    assert_true(fabs(analyze_subspace_similarity(e58, 4, half, 4, D) - 2.5 / 4) < 1e-15);
    assert_true(isnan(analyze_subspace_similarity(e14, 0, half, 1, D)));

    /* the same through the SVD: A1, A2 (4 x 8) whose rows are those bases scaled 4,3,2,1,
     * so A's right singular vectors are the rows in that order (up to sign) */
    float a1[4 * D], a2[4 * D];
    for (int k = 0; k < 4; k++)
        for (int i = 0; i < D; i++) {
            a1[k * D + i] = (float)((4 - k) * e14[k * D + i]);
            a2[k * D + i] = (float)((4 - k) * half[k * D + i]);
        }
    double s1[4], s2[4], v1[4 * D], v2[4 * D];
    ml_error e;
    assert_int_equal(analyze_svd(a1, 4, D, s1, NULL, v1, &e), 0);
    assert_int_equal(analyze_svd(a2, 4, D, s2, NULL, v2, &e), 0);
    assert_true(fabs(analyze_subspace_similarity(v1, 4, v2, 4, D) - 0.375) < 1e-7);
    assert_true(fabs(analyze_subspace_similarity(v1, 2, v2, 2, D) - 0.75) < 1e-7);
    assert_true(fabs(analyze_subspace_similarity(v1, 1, v2, 1, D) - 1.0) < 1e-7);
}

/* Real files written with the project's API: a base, a rank-3 adapter on it, and the merged
 * checkpoint. The adapter's ΔW must be s·B·A, the merged file's W_file − W_base the same
 * update (up to float rounding), and both must show rank 3. */
static void test_files(void **state) {
    enum { R = 3 };
    char dir[] = "/tmp/test_analyze.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char base_path[64], adapter_path[64], merged_path[64];
    snprintf(base_path, sizeof base_path, "%s/base.safetensors", dir);
    snprintf(adapter_path, sizeof adapter_path, "%s/r3.safetensors", dir);
    snprintf(merged_path, sizeof merged_path, "%s/merged.safetensors", dir);
    ml_error e;
    minigpt_config cfg;
    tok_vocab v;
    minigpt m;
    assert_int_equal(model_config_load("configs/minigpt.json", &cfg, &v, &e), 0);
    assert_int_equal(minigpt_init(&m, &cfg, &e), 0);
    minigpt_init_random(&m, 5);
    assert_int_equal(checkpoint_save(base_path, &m, &v, 0, NULL, NULL, &e), 0);
    char sha[65];
    assert_int_equal(sha256_file_hex(base_path, sha, &e), 0);

    lora a;
    assert_int_equal(lora_init(&a, &m, R, 8.0f, 0, LORA_ALL_TARGETS, &e), 0);
    lora_init_weights(&a, 7);
    rng g;
    rng_seed(&g, 8);
    for (int i = 0; i < a.n_layers; i++)
        for (int k = 0; k < a.layers[i].slot->out * R; k++)
            a.layers[i].B[k] = 0.05f * rng_normal(&g);
    /* store what the fp16 file will hold, so the expected ΔW below is exact in its inputs */
    for (size_t k = 0; k < a.n_params; k++) {
        uint16_t hv;
        assert_int_equal(fp16_from_f32(a.params[k], &hv), 0);
        a.params[k] = fp16_to_f32(hv);
    }
    assert_int_equal(lora_save(&a, adapter_path, sha, 0, NULL, NULL, &e), 0);
    /* expected ΔW = s·B·A per layer, in double */
    static double want[ANALYZE_MAX_LAYERS][256 * 64];
    const double scale = 8.0 / R;
    for (int i = 0; i < a.n_layers; i++) {
        const lora_layer *L = &a.layers[i];
        for (int o = 0; o < L->slot->out; o++)
            for (int c = 0; c < L->slot->in; c++) {
                double s = 0;
                for (int k = 0; k < R; k++)
                    s += (double)L->B[o * R + k] * L->A[k * L->slot->in + c];
                want[i][o * L->slot->in + c] = scale * s;
            }
    }
    assert_int_equal(lora_merge_into(&a, &e), 0);
    lora_free(&a);
    assert_int_equal(checkpoint_save(merged_path, &m, &v, 0, NULL, NULL, &e), 0);
    minigpt_free(&m);

    minigpt base;
    tok_vocab bv;
    char bsha[65];
    assert_int_equal(checkpoint_load(base_path, &base, &bv, bsha, &e), 0);
    assert_string_equal(bsha, sha);

    analyze_update ua, uf;
    assert_int_equal(analyze_update_load(&ua, &base, sha, adapter_path, &e), 0);
    for (int i = 0; i < base.n_linears; i++) assert_null(base.linears[i].ext); /* uninstalled */
    assert_int_equal(ua.is_adapter, 1);
    assert_int_equal(ua.rank, R);
    assert_int_equal(ua.n_layers, 12);
    assert_true(fabs(ua.scale - scale) < 1e-6);
    assert_int_equal(analyze_update_load(&uf, &base, sha, merged_path, &e), 0);
    assert_int_equal(uf.is_adapter, 0);
    assert_int_equal(uf.n_layers, 12);

    for (int i = 0; i < ua.n_layers; i++) {
        const analyze_layer *la = &ua.layers[i], *lf = analyze_update_find(&uf, la->path);
        assert_non_null(lf);
        assert_string_equal(la->path, base.linears[i].path);
        const int n = la->out * la->in;
        double err = 0, big = 0, ferr = 0;
        for (int k = 0; k < n; k++) {
            err = fmax(err, fabs(la->dw[k] - want[i][k]));
            ferr = fmax(ferr, fabs(lf->dw[k] - want[i][k]));
            big = fmax(big, fabs(want[i][k]));
        }
        assert_true(big > 1e-3);
        assert_true(err <= 1e-6 * big);
        assert_true(ferr <= 1e-3 * big); /* W + ΔW − W in float loses ~eps·|W| */

        analyze_report ra, rf;
        assert_int_equal(analyze_layer_report(la, ua.rank, 1e-4, &ra, &e), 0);
        assert_int_equal(analyze_layer_report(lf, 0, 0.01, &rf, &e), 0);
        assert_int_equal(ra.eff_rank, R);
        assert_true(ra.sigma[R] < 1e-5 * ra.sigma[0]);
        assert_int_equal(rf.eff_rank, R); /* the merged update is still rank 3 */
        assert_int_equal(ra.a_n, R);
        assert_null(rf.a_v);
        double e2 = 0, wn = 0;
        for (int k = 0; k < ra.n; k++) e2 += ra.sigma[k] * ra.sigma[k];
        for (int k = 0; k < n; k++) wn += (double)la->w[k] * la->w[k];
        assert_true(fabs(ra.fro - sqrt(e2)) < 1e-9 * ra.fro);
        assert_true(fabs(ra.rel - ra.fro / sqrt(wn)) < 1e-12);
        /* the same column space, read from two different files */
        assert_true(analyze_subspace_similarity(ra.u, R, rf.u, R, la->out) > 0.9999);
        /* A's row space against itself is trivially 1; against ΔW's row space too, since
         * ΔW = s·B·A with B of full column rank */
        assert_true(fabs(analyze_subspace_similarity(ra.a_v, R, ra.a_v, R, la->in) - 1.0) < 1e-12);
        analyze_report_free(&ra);
        analyze_report_free(&rf);
    }
    analyze_update_free(&ua);
    analyze_update_free(&uf);

    /* refusals name the file */
    char other[65];
    memset(other, '0', 64);
    other[64] = '\0';
    assert_int_equal(analyze_update_load(&ua, &base, other, adapter_path, &e), -1);
    assert_non_null(strstr(e.msg, adapter_path));
    assert_non_null(strstr(e.msg, "another base"));
    for (int i = 0; i < base.n_linears; i++) assert_null(base.linears[i].ext);
    char missing[80];
    snprintf(missing, sizeof missing, "%s/nope.safetensors", dir);
    assert_int_equal(analyze_update_load(&ua, &base, sha, missing, &e), -1);
    assert_non_null(strstr(e.msg, missing));

    minigpt_free(&base);
    unlink(base_path);
    unlink(adapter_path);
    unlink(merged_path);
    rmdir(dir);
}

/* lora-analyze --data: the mean ‖W·x‖ of every v_proj equals the mean norm of the v rows the
 * forward itself computes (v_proj has no bias and v is not rotated), and the mean ‖ΔW·x‖
 * equals ‖s·B·(A·x)‖ computed through the factors instead of the dense ΔW. */
static void test_data_norms(void **state) {
    enum { R = 2, BATCH = 8 };
    char dir[] = "/tmp/test_analyze_data.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char adapter_path[64];
    snprintf(adapter_path, sizeof adapter_path, "%s/r2.safetensors", dir);
    const char *base_path = "data/minigpt-base.safetensors", *data_path = "data/irreg_val.jsonl";
    ml_error e;
    minigpt m;
    tok_vocab v;
    char sha[65];
    assert_int_equal(checkpoint_load(base_path, &m, &v, sha, &e), 0);
    lora a;
    assert_int_equal(lora_init(&a, &m, R, 4.0f, 0, LORA_ALL_TARGETS, &e), 0);
    lora_init_weights(&a, 3);
    rng g;
    rng_seed(&g, 4);
    for (int i = 0; i < a.n_layers; i++)
        for (int k = 0; k < a.layers[i].slot->out * R; k++)
            a.layers[i].B[k] = 0.1f * rng_normal(&g);
    for (size_t k = 0; k < a.n_params; k++) { /* what the fp16 file will hold */
        uint16_t hv;
        assert_int_equal(fp16_from_f32(a.params[k], &hv), 0);
        a.params[k] = fp16_to_f32(hv);
    }
    assert_int_equal(lora_save(&a, adapter_path, sha, 0, NULL, NULL, &e), 0);
    const char *files[] = {adapter_path};
    analyze_spec spec = {
        .base = base_path, .files = files, .n_files = 1, .threshold = 0.01, .data = data_path};
    analyze_results res;
    assert_int_equal(analyze_job_run(&spec, &res, &e), 0);
    const analyze_file *f = &res.files[0];
    assert_true(f->has_data);
    assert_true(f->positions > 100);

    /* the reference: the adapter uninstalled, the base's own forward, factor by factor */
    lora_free(&a); /* uninstall; keep a copy of the factors through a fresh load */
    lora a2;
    assert_int_equal(lora_load(&a2, &m, adapter_path, sha, &e), 0);
    dataset d;
    const int C = m.cfg.d_model, T = m.cfg.context;
    assert_int_equal(ds_load(&d, data_path, &v, T, &e), 0);
    static float saved_B[8][64 * R], saved_A[8][R * 64];
    int vlayer[8], nv = 0; /* the v_proj slots: block index, path, factors */
    char vpath[8][MINIGPT_MAX_NAME];
    for (int i = 0; i < a2.n_layers && nv < 8; i++)
        if (a2.layers[i].slot->role == MG_V) {
            memcpy(saved_B[nv], a2.layers[i].B, sizeof(float) * C * R);
            memcpy(saved_A[nv], a2.layers[i].A, sizeof(float) * R * C);
            vlayer[nv] = a2.layers[i].slot->layer;
            snprintf(vpath[nv++], MINIGPT_MAX_NAME, "%s", a2.layers[i].slot->path);
        }
    const float s = a2.scale;
    lora_free(&a2);
    minigpt_ws ws;
    assert_int_equal(minigpt_ws_init(&ws, &m, BATCH, T, &e), 0);
    int *tok = malloc(sizeof(int) * BATCH * T), *tgt = malloc(sizeof(int) * BATCH * T);
    assert_non_null(tok);
    assert_non_null(tgt);
    double wx[8] = {0}, dwx[8] = {0};
    long npos = 0;
    for (int start = 0; start < d.n; start += BATCH) {
        const int B = d.n - start < BATCH ? d.n - start : BATCH;
        const ds_example *ex[BATCH];
        for (int b = 0; b < B; b++) ex[b] = &d.ex[start + b];
        ds_batch(ex, B, T, tok, tgt);
        minigpt_forward(&m, &ws, tok, B, T);
        for (int b = 0; b < B; b++) {
            const int n = ex[b]->n_prompt + ex[b]->n_completion - 1;
            for (int t = 0; t < n; t++) {
                for (int j = 0; j < nv; j++) {
                    const int layer = vlayer[j];
                    const float *vrow = ws.layers[layer].v + ((size_t)b * T + t) * C;
                    const float *x = ws.layers[layer].ln1 + ((size_t)b * T + t) * C;
                    double vv = 0, ax[R] = {0}, out2 = 0;
                    for (int c = 0; c < C; c++) vv += (double)vrow[c] * vrow[c];
                    for (int k = 0; k < R; k++)
                        for (int c = 0; c < C; c++) ax[k] += (double)saved_A[j][k * C + c] * x[c];
                    for (int o = 0; o < C; o++) {
                        double y = 0;
                        for (int k = 0; k < R; k++) y += (double)saved_B[j][o * R + k] * ax[k];
                        out2 += s * s * y * y;
                    }
                    wx[j] += sqrt(vv);
                    dwx[j] += sqrt(out2);
                }
            }
            npos += n;
        }
    }
    assert_int_equal(npos, f->positions);
    assert_int_equal(nv, m.cfg.n_layers);
    for (int j = 0; j < nv; j++) {
        const analyze_layer *l = analyze_update_find(&f->up, vpath[j]);
        assert_non_null(l);
        const int i = (int)(l - f->up.layers);
        assert_true(fabs(f->wx[i] - wx[j] / npos) <= 1e-4 * (wx[j] / npos));
        assert_true(fabs(f->dwx[i] - dwx[j] / npos) <= 1e-4 * (dwx[j] / npos));
    }
    free(tok);
    free(tgt);
    minigpt_ws_free(&ws);
    ds_free(&d);
    analyze_results_free(&res);
    minigpt_free(&m);
    unlink(adapter_path);
    rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rank3_spectrum_matches_eigenvalues),
        cmocka_unit_test(test_known_spectrum_and_vectors),
        cmocka_unit_test(test_energy_and_effective_rank),
        cmocka_unit_test(test_subspace_similarity),
        cmocka_unit_test(test_files),
        cmocka_unit_test(test_data_norms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
