/* test_peft.c — PEFT adapter directories: lora-export's job writes one, every loader reads it
 * back to the same logits, bit for bit, and a config that disagrees with the tensors or asks
 * for what minilora cannot run is refused naming the file and the field. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cJSON.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomic_file.h"
#include "blas_runtime.h"
#include "checkpoint.h"
#include "export_job.h"
#include "lora.h"
#include "peft.h"
#include "test_util.h"

#define BASE "data/minigpt-base.safetensors"
enum { B = 2, T = 12 };

static minigpt model;
static tok_vocab vocab;
static char sha[65], tmp[] = "/tmp/minilora-peft-XXXXXX";

static int setup(void **state) {
    ml_error e;
    if (!mkdtemp(tmp) || checkpoint_load(BASE, &model, &vocab, sha, &e)) return -1;
    return 0;
}

static int teardown(void **state) {
    minigpt_free(&model);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    return system(cmd) == 0 ? 0 : -1;
}

/* Saves a random adapter (B non-zero) of the given shape to tmp/name; returns its path. */
static const char *random_adapter(const char *name, int rank, float alpha, int rslora,
                                  unsigned targets, unsigned layers, uint64_t seed) {
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", tmp, name);
    ml_error e;
    lora a;
    if (lora_init_layers(&a, &model, rank, alpha, rslora, targets, layers, &e))
        fail_msg("%s", e.msg);
    rng r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < a.n_params; i++) a.params[i] = 0.2f * rng_normal(&r);
    const char *k[] = {"seed"}, *v[] = {"7"};
    if (lora_save(&a, path, sha, 1, k, v, &e)) fail_msg("%s", e.msg);
    lora_free(&a);
    return path;
}

/* Logits (B,T,V) of the model with the adapter at path installed; malloc'ed. */
static float *logits_with(const char *path) {
    ml_error e;
    lora a;
    if (lora_load(&a, &model, path, sha, &e)) fail_msg("%s", e.msg);
    int tok[B * T];
    rng r;
    rng_seed(&r, 5);
    for (int i = 0; i < B * T; i++) tok[i] = (int)rng_below(&r, 64);
    minigpt_ws ws;
    assert_int_equal(minigpt_ws_init(&ws, &model, B, T, &e), 0);
    minigpt_forward(&model, &ws, tok, B, T);
    const size_t n = (size_t)B * T * model.cfg.vocab_size;
    float *out = malloc(n * sizeof(float));
    assert_non_null(out);
    memcpy(out, ws.logits, n * sizeof(float));
    minigpt_ws_free(&ws);
    lora_free(&a);
    return out;
}

static void assert_same_logits(const char *a, const char *b) {
    float *x = logits_with(a), *y = logits_with(b);
    const size_t n = (size_t)B * T * model.cfg.vocab_size;
    for (size_t i = 0; i < n; i++)
        if (memcmp(&x[i], &y[i], sizeof(float)))
            fail_msg("logit %zu: %.9g (%s) vs %.9g (%s)", i, x[i], a, y[i], b);
    free(x);
    free(y);
}

static cJSON *read_json(const char *path) {
    char *text;
    size_t n;
    ml_error e;
    if (read_file(path, 1 << 20, &text, &n, &e)) fail_msg("%s", e.msg);
    cJSON *j = cJSON_Parse(text);
    free(text);
    assert_non_null(j);
    return j;
}

static void export_to(const char *adapter, const char *dir, export_dtype dt, int force) {
    export_spec s = {.adapter = adapter, .base = BASE, .dir = dir, .dtype = dt, .force = force};
    export_report r;
    ml_error e;
    if (export_job_run(&s, &r, &e)) fail_msg("%s", e.msg);
}

/* The default adapter (all targets, all blocks): the directory's config says what the file's
 * metadata says, the tensors keep their names and F16 bytes, and the logits are identical. */
static void test_round_trip_f16(void **state) {
    char src[256], dir[256], p[300];
    snprintf(src, sizeof src, "%s",
             random_adapter("a.st", 8, 16.0f, 1, LORA_ALL_TARGETS, LORA_ALL_LAYERS, 11));
    snprintf(dir, sizeof dir, "%s/peft", tmp);
    export_to(src, dir, EXPORT_DTYPE_SOURCE, 0);
    snprintf(p, sizeof p, "%s/%s", dir, PEFT_CONFIG_NAME);
    cJSON *j = read_json(p);
    assert_string_equal(cJSON_GetObjectItem(j, "peft_type")->valuestring, "LORA");
    assert_int_equal(cJSON_GetObjectItem(j, "r")->valueint, 8);
    assert_true(cJSON_GetObjectItem(j, "lora_alpha")->valuedouble == 16.0);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "use_rslora")));
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(j, "fan_in_fan_out")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "layers_to_transform")));
    assert_string_equal(cJSON_GetObjectItem(j, "bias")->valuestring, "none");
    assert_string_equal(cJSON_GetObjectItem(j, PEFT_SHA_FIELD)->valuestring, sha);
    assert_string_equal(cJSON_GetObjectItem(j, "base_model_name_or_path")->valuestring,
                        "minigpt-base.safetensors");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "target_modules")), 6);
    cJSON_Delete(j);
    st_file a, b;
    ml_error e;
    snprintf(p, sizeof p, "%s/%s", dir, PEFT_WEIGHTS_NAME);
    assert_int_equal(st_open(&a, src, &e), 0);
    assert_int_equal(st_open(&b, p, &e), 0);
    assert_int_equal(a.n_tensors, b.n_tensors);
    for (int i = 0; i < a.n_tensors; i++) {
        assert_string_equal(a.tensors[i].name, b.tensors[i].name);
        assert_int_equal(b.tensors[i].dtype, ST_F16);
        assert_memory_equal(a.bytes + a.data_start + a.tensors[i].begin,
                            b.bytes + b.data_start + b.tensors[i].begin,
                            a.tensors[i].end - a.tensors[i].begin);
    }
    assert_string_equal(st_meta(&b, "base_sha256"), sha);
    assert_string_equal(st_meta(&b, "seed"), "7");
    st_close(&a);
    st_close(&b);
    assert_same_logits(src, dir);
    int is_adapter = 0;
    assert_int_equal(lora_probe(dir, &is_adapter, &e), 0);
    assert_int_equal(is_adapter, 1);
    /* exporting again over an earlier export is allowed; the directory holds the two files */
    export_to(src, dir, EXPORT_DTYPE_SOURCE, 0);
    assert_same_logits(src, dir);
}

/* A subset of targets and blocks, rank 4, alpha/r, exported in F32 (F16 values widen exactly):
 * layers_to_transform and target_modules travel, the logits are identical; a directory given
 * as the source exports again (F16) to the same logits. */
static void test_round_trip_f32_subset(void **state) {
    char src[256], dir[256], dir2[256], p[300];
    snprintf(src, sizeof src, "%s",
             random_adapter("s.st", 4, 6.0f, 0, (1u << MG_Q) | (1u << MG_V) | (1u << MG_FC2),
                            1u << 1, 12));
    snprintf(dir, sizeof dir, "%s/peft32", tmp);
    snprintf(dir2, sizeof dir2, "%s/peft16", tmp);
    export_to(src, dir, EXPORT_DTYPE_F32, 0);
    snprintf(p, sizeof p, "%s/%s", dir, PEFT_CONFIG_NAME);
    cJSON *j = read_json(p);
    const cJSON *lt = cJSON_GetObjectItem(j, "layers_to_transform");
    assert_int_equal(cJSON_GetArraySize(lt), 1);
    assert_int_equal(cJSON_GetArrayItem(lt, 0)->valueint, 1);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "target_modules")), 3);
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(j, "use_rslora")));
    cJSON_Delete(j);
    st_file f;
    ml_error e;
    st_dtype dt;
    assert_int_equal(adapter_open(&f, dir, &dt, &e), 0);
    assert_int_equal(dt, ST_F32);
    assert_int_equal(f.n_tensors, 6); /* 3 modules × 1 block × (A, B) */
    st_close(&f);
    assert_same_logits(src, dir);
    export_to(dir, dir2, EXPORT_DTYPE_F16, 0);
    assert_same_logits(src, dir2);
}

/* Each edit of an exported config must be refused by lora_load with one line naming the
 * config file and the words given. */
static void test_hostile_configs(void **state) {
    char src[256], dir[256], cp[300];
    snprintf(src, sizeof src, "%s",
             random_adapter("h.st", 8, 16.0f, 1, LORA_ALL_TARGETS, LORA_ALL_LAYERS, 13));
    snprintf(dir, sizeof dir, "%s/hostile", tmp);
    export_to(src, dir, EXPORT_DTYPE_SOURCE, 0);
    snprintf(cp, sizeof cp, "%s/%s", dir, PEFT_CONFIG_NAME);
    char *good;
    size_t n;
    ml_error e;
    assert_int_equal(read_file(cp, 1 << 20, &good, &n, &e), 0);
    static const struct {
        const char *from, *to, *words;
    } cases[] = {
        {"\"r\":\t8", "\"r\":\t4", "r is 4"},
        {"\"r\":\t8", "\"r\":\t8.5", "r is 8.5"},
        {"\"lora_alpha\":\t16", "\"lora_alpha\":\t8", "lora_alpha"},
        {"\"lora_alpha\":\t16", "\"lora_alpha\":\t-1", "lora_alpha"},
        {"\"use_rslora\":\ttrue", "\"use_rslora\":\tfalse", "use_rslora"},
        {"\"use_rslora\":\ttrue", "\"use_rslora\":\t\"yes\"", "use_rslora"},
        {"\"use_dora\":\tfalse", "\"use_dora\":\ttrue", "use_dora"},
        {"\"bias\":\t\"none\"", "\"bias\":\t\"all\"", "bias"},
        {"\"fan_in_fan_out\":\tfalse", "\"fan_in_fan_out\":\ttrue", "fan_in_fan_out"},
        {"\"modules_to_save\":\tnull", "\"modules_to_save\":\t[\"lm_head\"]", "modules_to_save"},
        {"\"rank_pattern\":\t{", "\"rank_pattern\":\t{\"q_proj\": 4", "rank_pattern"},
        {"\"peft_type\":\t\"LORA\"", "\"peft_type\":\t\"IA3\"", "peft_type"},
        {"\"q_proj\", ", "\"gate_proj\", ", "gate_proj"},
        {"\"q_proj\", ", "", "does not include 'q_proj'"},
        {"[\"q_proj\", \"k_proj\", \"v_proj\", \"o_proj\", \"fc1\", \"fc2\"]", "\"q_proj|v_proj\"",
         "pattern"},
        {"\"layers_to_transform\":\tnull", "\"layers_to_transform\":\t[0]", "block 1"},
        {"\"layers_to_transform\":\tnull", "\"layers_to_transform\":\t[-1]", "layers_to_transform"},
        {"\"layers_pattern\":\tnull", "\"layers_pattern\":\t\"layers\"", "layers_pattern"},
        {"\"minilora_base_sha256\":\t\"", "\"minilora_base_sha256\":\t\"0", PEFT_SHA_FIELD},
        {"{", "{\"r\": 8,", "appears twice"},
        {"\"r\":\t8,", "\"r\":\t8,,", "not valid JSON"},
        {"{", "[", "not valid JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *at = strstr(good, cases[i].from);
        if (!at) fail_msg("case %zu: '%s' not in the exported config", i, cases[i].from);
        char *bad = malloc(n + strlen(cases[i].to) + 1);
        assert_non_null(bad);
        sprintf(bad, "%.*s%s%s", (int)(at - good), good, cases[i].to, at + strlen(cases[i].from));
        assert_int_equal(atomic_write(cp, bad, strlen(bad), &e), 0);
        free(bad);
        lora a;
        if (lora_load(&a, &model, dir, sha, &e) == 0)
            fail_msg("case %zu (%s -> %s): loaded", i, cases[i].from, cases[i].to);
        if (!strstr(e.msg, cases[i].words) || !strstr(e.msg, PEFT_CONFIG_NAME) ||
            strchr(e.msg, '\n'))
            fail_msg("case %zu: message '%s' does not name %s and '%s'", i, e.msg, PEFT_CONFIG_NAME,
                     cases[i].words);
    }
    assert_int_equal(atomic_write(cp, good, n, &e), 0);
    free(good);
    assert_same_logits(src, dir); /* the good config loads again */
}

int main(int argc, char **argv) {
    (void)argc;
    runtime_init(argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_f16),
        cmocka_unit_test(test_round_trip_f32_subset),
        cmocka_unit_test(test_hostile_configs),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
