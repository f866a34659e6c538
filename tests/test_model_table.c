/* test_model_table.c — the model's tensor table, views and Linear slots, all derived from the
 * one per-block table in minigpt.c, against an expectation written out here independently:
 * checkpoint names and order, kinds, shapes, offsets, the view each tensor is carved into, the
 * Linear slots (path, role name, in/out, weight and bias), and the parameter count from the
 * model definition (SPEC §2): tied embedding (V,C); per block LayerNorm weight and bias twice
 * (4C), q,k,v,o (C,C) without bias (4C²), fc1 (F,C) + bias F, fc2 (C,F) + bias C; final
 * LayerNorm (2C). Checked for the default config and for a non-default shape, plus a
 * checkpoint save/load round trip of the non-default model through the formats layer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <unistd.h>

#include "checkpoint.h"
#include "model_config.h"
#include "test_util.h"

/* One expected per-block tensor: name after "blocks.<l>.", kind, shape in C/F ('C', 'F', or 0
 * for none), the minigpt_block_views field it is carved into. */
typedef struct {
    const char *suffix;
    minigpt_kind kind;
    char d0, d1;
    size_t view;
} want_row;

#define V_(f) offsetof(minigpt_block_views, f)
static const want_row want[] = {
    {"ln1.weight", MG_NORM, 'C', 0, V_(ln1_w)},
    {"ln1.bias", MG_NORM, 'C', 0, V_(ln1_b)},
    {"attn.q_proj.weight", MG_LINEAR_WEIGHT, 'C', 'C', V_(wq)},
    {"attn.k_proj.weight", MG_LINEAR_WEIGHT, 'C', 'C', V_(wk)},
    {"attn.v_proj.weight", MG_LINEAR_WEIGHT, 'C', 'C', V_(wv)},
    {"attn.o_proj.weight", MG_LINEAR_WEIGHT, 'C', 'C', V_(wo)},
    {"ln2.weight", MG_NORM, 'C', 0, V_(ln2_w)},
    {"ln2.bias", MG_NORM, 'C', 0, V_(ln2_b)},
    {"ffn.fc1.weight", MG_LINEAR_WEIGHT, 'F', 'C', V_(fc1_w)},
    {"ffn.fc1.bias", MG_LINEAR_BIAS, 'F', 0, V_(fc1_b)},
    {"ffn.fc2.weight", MG_LINEAR_WEIGHT, 'C', 'F', V_(fc2_w)},
    {"ffn.fc2.bias", MG_LINEAR_BIAS, 'C', 0, V_(fc2_b)},
};
enum { N_WANT = sizeof want / sizeof want[0] };

/* Expected Linear slots in role order: path after "blocks.<l>.", role name, in, out, and the
 * views of weight and bias (bias view (size_t)-1: no bias). */
typedef struct {
    minigpt_linear_role role;
    const char *path, *name;
    char in, out;
    size_t w_view, b_view;
} want_linear;

static const want_linear want_lin[] = {
    {MG_Q, "attn.q_proj", "q_proj", 'C', 'C', V_(wq), (size_t)-1},
    {MG_K, "attn.k_proj", "k_proj", 'C', 'C', V_(wk), (size_t)-1},
    {MG_V, "attn.v_proj", "v_proj", 'C', 'C', V_(wv), (size_t)-1},
    {MG_O, "attn.o_proj", "o_proj", 'C', 'C', V_(wo), (size_t)-1},
    {MG_FC1, "ffn.fc1", "fc1", 'C', 'F', V_(fc1_w), V_(fc1_b)},
    {MG_FC2, "ffn.fc2", "fc2", 'F', 'C', V_(fc2_w), V_(fc2_b)},
};
enum { N_WANT_LIN = sizeof want_lin / sizeof want_lin[0] };

static int dim(const minigpt_config *c, char d) {
    return d == 'C' ? c->d_model : d == 'F' ? c->d_ff : 0;
}

static float *view_at(minigpt_block_views *b, size_t off) { return *(float **)((char *)b + off); }

/* Checks tensor i against name/kind/shape and the running offset; advances *off. */
static void check_tensor(const minigpt *m, int i, const char *name, minigpt_kind kind, int d0,
                         int d1, size_t *off) {
    const minigpt_tensor *t = &m->tensors[i];
    assert_string_equal(t->name, name);
    assert_int_equal(t->kind, kind);
    assert_int_equal(t->ndim, d1 > 0 ? 2 : 1);
    assert_int_equal(t->shape[0], d0);
    assert_int_equal(t->shape[1], d1 > 0 ? d1 : 0);
    const size_t numel = (size_t)d0 * (size_t)(d1 > 0 ? d1 : 1);
    assert_int_equal(t->numel, numel);
    assert_int_equal(t->offset, *off);
    assert_int_equal(minigpt_find_tensor(m, name), i);
    *off += numel;
}

static void check_model(const minigpt_config *cfg) {
    minigpt m;
    ml_error e;
    if (minigpt_init(&m, cfg, &e)) fail_msg("minigpt_init: %s", e.msg);
    const size_t V = cfg->vocab_size, C = cfg->d_model, F = cfg->d_ff, L = cfg->n_layers;
    /* a gradient-shaped block: carved with the same layout */
    float *g = calloc(m.n_params, sizeof(float));
    assert_non_null(g);
    minigpt_views gv;
    minigpt_carve(&m, g, &gv);

    /* the tensor table, in checkpoint order, and the views */
    assert_int_equal(m.n_tensors, 3 + N_WANT * (int)L);
    size_t off = 0;
    char name[MINIGPT_MAX_NAME + 8];
    check_tensor(&m, 0, "tok_emb.weight", MG_EMBEDDING, (int)V, (int)C, &off);
    assert_ptr_equal(m.p.tok_emb, m.params);
    assert_ptr_equal(gv.tok_emb, g);
    int i = 1;
    for (int l = 0; l < (int)L; l++)
        for (int j = 0; j < N_WANT; j++, i++) {
            snprintf(name, sizeof name, "blocks.%d.%s", l, want[j].suffix);
            const size_t at = off;
            check_tensor(&m, i, name, want[j].kind, dim(cfg, want[j].d0), dim(cfg, want[j].d1),
                         &off);
            assert_ptr_equal(view_at(&m.p.blocks[l], want[j].view), m.params + at);
            assert_ptr_equal(view_at(&gv.blocks[l], want[j].view), g + at);
        }
    const size_t lnf = off;
    check_tensor(&m, i++, "ln_f.weight", MG_NORM, (int)C, 0, &off);
    check_tensor(&m, i++, "ln_f.bias", MG_NORM, (int)C, 0, &off);
    assert_ptr_equal(m.p.lnf_w, m.params + lnf);
    assert_ptr_equal(m.p.lnf_b, m.params + lnf + C);
    assert_ptr_equal(gv.lnf_w, g + lnf);

    /* the count from the model definition, independent of the table */
    const size_t per_block = 4 * C + 4 * C * C + (F * C + F) + (C * F + C);
    const size_t total = V * C + L * per_block + 2 * C;
    assert_int_equal(off, total);
    assert_int_equal(m.n_params, total);
    minigpt_counts n = minigpt_count(&m);
    assert_int_equal(n.total, total);
    assert_int_equal(n.embedding, V * C);
    assert_int_equal(n.norms, L * 4 * C + 2 * C);
    assert_int_equal(n.linear_weights, L * (4 * C * C + 2 * C * F));
    assert_int_equal(n.linear_biases, L * (F + C));

    /* the Linear slots: block by block, in role order */
    assert_int_equal(MINIGPT_LINEARS_PER_BLOCK, N_WANT_LIN);
    assert_int_equal(m.n_linears, (int)L * N_WANT_LIN);
    for (int l = 0; l < (int)L; l++)
        for (int r = 0; r < N_WANT_LIN; r++) {
            const want_linear *w = &want_lin[r];
            minigpt_linear *s = &m.linears[l * N_WANT_LIN + r];
            char path[MINIGPT_MAX_NAME];
            snprintf(path, sizeof path, "blocks.%d.%s", l, w->path);
            assert_string_equal(s->path, path);
            assert_ptr_equal(minigpt_find_linear(&m, path), s);
            assert_int_equal(s->layer, l);
            assert_int_equal(s->role, w->role);
            assert_string_equal(minigpt_role_name(w->role), w->name);
            assert_int_equal(s->in, dim(cfg, w->in));
            assert_int_equal(s->out, dim(cfg, w->out));
            assert_ptr_equal(s->w, view_at(&m.p.blocks[l], w->w_view));
            snprintf(name, sizeof name, "%s.weight", path);
            assert_int_equal(s->w_tensor, minigpt_find_tensor(&m, name));
            snprintf(name, sizeof name, "%s.bias", path);
            if (w->b_view == (size_t)-1) {
                assert_null(s->b);
                assert_int_equal(s->b_tensor, -1);
            } else {
                assert_ptr_equal(s->b, view_at(&m.p.blocks[l], w->b_view));
                assert_int_equal(s->b_tensor, minigpt_find_tensor(&m, name));
            }
            assert_null(s->ext);
        }
    free(g);
    minigpt_free(&m);
}

static void test_default_config(void **state) {
    (void)state;
    minigpt_config c = minigpt_default_config();
    check_model(&c);
    /* the figures minigpt.h and the README quote */
    minigpt m;
    ml_error e;
    assert_int_equal(minigpt_init(&m, &c, &e), 0);
    assert_int_equal(m.n_params, 103680);
    minigpt_free(&m);
}

static minigpt_config wide_config(void) {
    minigpt_config c = minigpt_default_config();
    c.vocab_size = 50;
    c.d_model = 96;
    c.n_heads = 3;
    c.n_layers = 3;
    c.d_ff = 200;
    c.context = 16;
    return c;
}

static void test_wide_config(void **state) {
    (void)state;
    minigpt_config c = wide_config();
    check_model(&c);
}

/* The non-default model through the formats layer: config JSON round trip, then a checkpoint
 * written and read back gives the same config and the same parameter bytes. */
static void test_checkpoint_roundtrip(void **state) {
    (void)state;
    minigpt_config c = wide_config(), again;
    ml_error e;
    char *j = model_config_json(&c);
    assert_non_null(j);
    if (model_config_parse(&again, j, "wide", &e)) fail_msg("%s", e.msg);
    free(j);
    assert_memory_equal(&c, &again, sizeof c);

    minigpt m, r;
    assert_int_equal(minigpt_init(&m, &c, &e), 0);
    minigpt_init_random(&m, 5);
    char vj[512] = "[\"\\n\"";
    for (int i = 1; i < c.vocab_size; i++) {
        char s[8];
        snprintf(s, sizeof s, ",\"%c\"", i <= 26 ? 'a' + i - 1 : 'A' + i - 27);
        strcat(vj, s);
    }
    strcat(vj, "]");
    tok_vocab v, v2;
    if (tok_from_json(&v, vj, "vocab", &e)) fail_msg("%s", e.msg);
    char path[] = "/tmp/test_model_table_XXXXXX";
    const int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    if (checkpoint_save(path, &m, &v, 0, NULL, NULL, &e)) fail_msg("save: %s", e.msg);
    const int rc = checkpoint_load(path, &r, &v2, NULL, &e);
    unlink(path);
    if (rc) fail_msg("load: %s", e.msg);
    assert_memory_equal(&r.cfg, &c, sizeof c);
    assert_int_equal(r.n_params, m.n_params);
    assert_memory_equal(r.params, m.params, m.n_params * sizeof(float));
    assert_int_equal(v2.n, c.vocab_size);
    minigpt_free(&m);
    minigpt_free(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_config),
        cmocka_unit_test(test_wide_config),
        cmocka_unit_test(test_checkpoint_roundtrip),
    };
    return cmocka_run_group_tests_name("model_table", tests, NULL, NULL);
}
