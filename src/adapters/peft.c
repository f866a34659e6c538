/* peft.c — PEFT adapter directories: adapter_config.json read against the tensors, and written. */
#include "peft.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "atomic_file.h"
#include "sha256.h"
#include "text.h"

#define PREFIX "base_model.model."
#define MAX_FIELDS 1000 /* a config with more fields is refused (the duplicate check is n²) */

/* What minilora reads from adapter_config.json. */
typedef struct {
    int rank;
    double alpha;
    int rslora, dora;
    unsigned targets; /* bit (1 << role) per module */
    int has_layers;   /* layers_to_transform given */
    unsigned layers;  /* bit (1 << block) */
    const char *sha;  /* minilora_base_sha256 (points into the cJSON tree), or NULL */
} peft_cfg;

int peft_is_dir(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) return 0;
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", path, PEFT_CONFIG_NAME);
    return strlen(path) < 4096 && stat(p, &st) == 0;
}

int peft_dir_files(const char *path, char *cfg, char *wts, size_t n) {
    cfg[0] = wts[0] = '\0';
    if (!peft_is_dir(path)) return 0;
    if (snprintf(cfg, n, "%s/%s", path, PEFT_CONFIG_NAME) >= (int)n ||
        snprintf(wts, n, "%s/%s", path, PEFT_WEIGHTS_NAME) >= (int)n)
        cfg[0] = wts[0] = '\0';
    return 1;
}

/* The role bit of a module name (q_proj .. fc2) of length len, 0 for anything else. */
static unsigned module_bit(const char *name, size_t len) {
    for (int r = 0; r < MINIGPT_LINEARS_PER_BLOCK; r++) {
        const char *n = minigpt_role_name((minigpt_linear_role)r);
        if (strlen(n) == len && strncmp(n, name, len) == 0) return 1u << r;
    }
    return 0;
}

/* A config value as shown in a message: one line, bounded. */
static const char *shown(char *buf, size_t n, const cJSON *v) {
    char tmp[64];
    if (!v) snprintf(buf, n, "missing");
    else if (cJSON_IsString(v))
        snprintf(buf, n, "\"%s\"", ml_one_line(tmp, sizeof tmp, v->valuestring));
    else if (cJSON_IsNumber(v)) snprintf(buf, n, "%.17g", v->valuedouble);
    else if (cJSON_IsBool(v)) snprintf(buf, n, "%s", cJSON_IsTrue(v) ? "true" : "false");
    else if (cJSON_IsNull(v)) snprintf(buf, n, "null");
    else snprintf(buf, n, "%s", cJSON_IsArray(v) ? "a list" : "an object");
    return buf;
}

static int absent(const cJSON *v) { return !v || cJSON_IsNull(v); }

/* An optional boolean (absent or null: false); -1 when it is something else. */
static int opt_bool(const cJSON *v) {
    if (absent(v)) return 0;
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) != 0 : -1;
}

/* Module names (a JSON list) as role bits; 0 when v is not a non-empty list of known names,
 * with the first bad entry in *bad (NULL when the list itself is wrong). */
static unsigned modules_mask(const cJSON *v, const cJSON **bad) {
    unsigned mask = 0;
    *bad = NULL;
    if (!cJSON_IsArray(v) || !v->child) return 0;
    for (const cJSON *it = v->child; it; it = it->next) {
        const unsigned bit =
            cJSON_IsString(it) ? module_bit(it->valuestring, strlen(it->valuestring)) : 0;
        if (!bit) {
            *bad = it;
            return 0;
        }
        mask |= bit;
    }
    return mask;
}

/* layers_to_transform: one block index or a non-empty list of them; 0 when not. */
static unsigned layers_mask(const cJSON *v) {
    unsigned mask = 0;
    if (cJSON_IsArray(v) && !v->child) return 0;
    for (const cJSON *it = cJSON_IsArray(v) ? v->child : v; it;
         it = cJSON_IsArray(v) ? it->next : NULL) {
        const double d = cJSON_IsNumber(it) ? it->valuedouble : -1;
        if (!(d >= 0 && d < MINIGPT_MAX_LAYERS && d == (int)d)) return 0;
        mask |= 1u << (int)d;
    }
    return mask;
}

/* The fields of cp's JSON object j that minilora reads, and a refusal of what it cannot run. */
static int parse_config(const cJSON *j, const char *cp, peft_cfg *c, ml_error *e) {
    char s[96];
    memset(c, 0, sizeof *c);
    if (!cJSON_IsObject(j)) return ml_fail(e, "%s: not a JSON object", cp);
    int n = 0;
    for (const cJSON *a = j->child; a; a = a->next)
        if (++n > MAX_FIELDS) return ml_fail(e, "%s: more than %d fields", cp, MAX_FIELDS);
    for (const cJSON *a = j->child; a; a = a->next)
        for (const cJSON *b = a->next; b; b = b->next)
            if (!strcmp(a->string, b->string))
                return ml_fail(e, "%s: field %s appears twice", cp,
                               ml_one_line(s, sizeof s, a->string));
#define GET(name) cJSON_GetObjectItemCaseSensitive(j, name)
    const cJSON *v = GET("peft_type");
    if (!cJSON_IsString(v) || strcmp(v->valuestring, "LORA"))
        return ml_fail(e, "%s: peft_type is %s, expected \"LORA\"", cp, shown(s, sizeof s, v));
    v = GET("r");
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble <= LORA_MAX_RANK) ||
        v->valuedouble != (int)v->valuedouble)
        return ml_fail(e, "%s: r is %s, expected an integer 0..%d", cp, shown(s, sizeof s, v),
                       LORA_MAX_RANK);
    c->rank = (int)v->valuedouble;
    v = GET("lora_alpha");
    if (!cJSON_IsNumber(v) || !(v->valuedouble > 0) || !isfinite((float)v->valuedouble) ||
        !((float)v->valuedouble > 0))
        return ml_fail(e, "%s: lora_alpha is %s, expected a positive number a float holds", cp,
                       shown(s, sizeof s, v));
    c->alpha = v->valuedouble;
    v = GET("target_modules");
    const cJSON *bad;
    if (cJSON_IsString(v) && !strcmp(v->valuestring, "all-linear")) c->targets = LORA_ALL_TARGETS;
    else if (cJSON_IsString(v))
        return ml_fail(e,
                       "%s: target_modules is the pattern %s: not supported, list the modules "
                       "(q_proj,k_proj,v_proj,o_proj,fc1,fc2)",
                       cp, shown(s, sizeof s, v));
    else if (!(c->targets = modules_mask(v, &bad)))
        return ml_fail(e,
                       bad ? "%s: target_modules has %s, not one of q_proj,k_proj,v_proj,o_proj,"
                             "fc1,fc2"
                           : "%s: target_modules is %s, expected a non-empty list of q_proj,"
                             "k_proj,v_proj,o_proj,fc1,fc2",
                       cp, shown(s, sizeof s, bad ? bad : v));
    static const char *const bools[] = {"use_rslora", "use_dora"};
    int *const dst[] = {&c->rslora, &c->dora};
    for (int i = 0; i < 2; i++)
        if ((*dst[i] = opt_bool(GET(bools[i]))) < 0)
            return ml_fail(e, "%s: %s is %s, expected true or false", cp, bools[i],
                           shown(s, sizeof s, GET(bools[i])));
    v = GET("layers_to_transform");
    if (!absent(v) && !(c->layers = layers_mask(v)))
        return ml_fail(e, "%s: layers_to_transform is %s, expected a block index 0..%d or a list",
                       cp, shown(s, sizeof s, v), MINIGPT_MAX_LAYERS - 1);
    c->has_layers = !absent(v);
    v = GET("layers_pattern");
    const cJSON *lp = cJSON_IsArray(v) && cJSON_GetArraySize(v) == 1 ? v->child : v;
    if (!absent(v) && !(cJSON_IsString(lp) && !strcmp(lp->valuestring, "blocks")))
        return ml_fail(e, "%s: layers_pattern is %s: only \"blocks\" (or null) names the blocks",
                       cp, shown(s, sizeof s, v));
    /* what minilora cannot run: refused rather than silently ignored */
    v = GET("bias");
    if (!absent(v) && !(cJSON_IsString(v) && !strcmp(v->valuestring, "none")))
        return ml_fail(e, "%s: bias is %s: only \"none\" is supported (biases stay frozen)", cp,
                       shown(s, sizeof s, v));
    static const char *const falses[] = {"fan_in_fan_out", "lora_bias"};
    for (int i = 0; i < 2; i++)
        if (opt_bool(GET(falses[i])) != 0)
            return ml_fail(e, "%s: %s is %s: only false is supported", cp, falses[i],
                           shown(s, sizeof s, GET(falses[i])));
    static const char *const empties[] = {"modules_to_save", "rank_pattern", "alpha_pattern",
                                          "layer_replication", "exclude_modules"};
    for (int i = 0; i < 5; i++) {
        v = GET(empties[i]);
        if (!absent(v) && !((cJSON_IsArray(v) || cJSON_IsObject(v)) && !v->child))
            return ml_fail(e, "%s: %s is %s: not supported (only null or empty)", cp, empties[i],
                           shown(s, sizeof s, v));
    }
    v = GET(PEFT_SHA_FIELD);
    int hex = cJSON_IsString(v) && strlen(v->valuestring) == 64;
    for (int i = 0; hex && i < 64; i++) hex = strchr("0123456789abcdef", v->valuestring[i]) != NULL;
    if (!absent(v) && !hex)
        return ml_fail(e, "%s: %s is %s, expected 64 lowercase hex digits", cp, PEFT_SHA_FIELD,
                       shown(s, sizeof s, v));
    c->sha = hex ? v->valuestring : NULL;
#undef GET
    return 0;
}

/* Whether name ends with suffix. */
static int ends_with(const char *name, const char *suffix) {
    const size_t n = strlen(name), k = strlen(suffix);
    return n >= k && !strcmp(name + n - k, suffix);
}

/* The tensors of f (the weights file wn) against the config of cp: one dtype (F16 or F32) into
 * *dtype, rank r in every A and B, modules among target_modules, blocks among
 * layers_to_transform, DoRA magnitudes exactly when use_dora. */
static int check_tensors(const st_file *f, const char *cp, const char *wn, const peft_cfg *c,
                         st_dtype *dtype, ml_error *e) {
    char s[96], s2[96];
    const char *dora_tensor = NULL;
    const st_tensor *first_ab = NULL; /* A and B share one dtype */
    *dtype = ST_F16;
    for (int i = 0; i < f->n_tensors; i++) {
        const st_tensor *t = &f->tensors[i];
        const char *name = ml_one_line(s, sizeof s, t->name);
        if (t->dtype != ST_F16 && t->dtype != ST_F32)
            return ml_fail(e, "%s: tensor '%s' has dtype %s, expected F16 or F32", wn, name,
                           st_dtype_name(t->dtype));
        if (strstr(t->name, "lora_magnitude_vector")) { /* F32 always: see lora_save */
            if (t->dtype != ST_F32)
                return ml_fail(e, "%s: DoRA magnitude '%s' has dtype %s, expected F32", wn, name,
                               st_dtype_name(t->dtype));
            dora_tensor = t->name;
            continue;
        }
        if (!first_ab) first_ab = t, *dtype = t->dtype;
        else if (t->dtype != *dtype)
            return ml_fail(e, "%s: tensor '%s' has dtype %s, '%s' %s: expected one dtype", wn, name,
                           st_dtype_name(t->dtype), ml_one_line(s2, sizeof s2, first_ab->name),
                           st_dtype_name(*dtype));
        const int is_a = ends_with(t->name, ".lora_A.weight");
        const int is_b = ends_with(t->name, ".lora_B.weight");
        if ((!is_a && !is_b) || strncmp(t->name, PREFIX, strlen(PREFIX)) != 0)
            continue; /* lora_load names a tensor that is not an adapter's */
        const char *end = t->name + strlen(t->name) - strlen(".lora_A.weight");
        const char *last = end;
        while (last > t->name && last[-1] != '.') last--;
        const unsigned bit = module_bit(last, (size_t)(end - last));
        if (!(bit & c->targets)) {
            char *tm = lora_targets_json(c->targets);
            ml_fail(e, "%s: target_modules %s does not include '%.*s', but %s has tensor '%s'", cp,
                    tm ? tm : "?", (int)(end - last > 16 ? 16 : end - last), last, wn, name);
            free(tm);
            return -1;
        }
        const int64_t r = t->ndim == 2 ? t->shape[is_a ? 0 : 1] : -1;
        if (r != c->rank)
            return ml_fail(e, "%s: r is %d, but tensor '%s' of %s has rank %lld", cp, c->rank, name,
                           wn, (long long)r);
        const char *blk = t->name + strlen(PREFIX);
        if (c->has_layers && !strncmp(blk, "blocks.", 7)) {
            const long b = strtol(blk + 7, NULL, 10);
            if (b < 0 || b >= MINIGPT_MAX_LAYERS || !(c->layers & (1u << b)))
                return ml_fail(e,
                               "%s: layers_to_transform leaves out block %ld, but %s has "
                               "tensor '%s'",
                               cp, b, wn, name);
        }
    }
    if (c->dora && !dora_tensor)
        return ml_fail(e, "%s: use_dora is true, but %s has no lora_magnitude_vector tensor", cp,
                       wn);
    if (!c->dora && dora_tensor)
        return ml_fail(e, "%s: use_dora is false, but %s has the DoRA tensor '%s'", cp, wn,
                       ml_one_line(s, sizeof s, dora_tensor));
    return 0;
}

/* The role bits of a target_modules metadata value (a JSON list), 0 when it is not one. */
static unsigned meta_modules(const char *json) {
    cJSON *v = text_json_has_nul(json, strlen(json)) ? NULL : cJSON_Parse(json);
    const cJSON *bad;
    const unsigned m = modules_mask(v, &bad);
    cJSON_Delete(v);
    return m;
}

static unsigned meta_layers(const char *json) {
    cJSON *v = text_json_has_nul(json, strlen(json)) ? NULL : cJSON_Parse(json);
    const unsigned m = v ? layers_mask(v) : 0;
    cJSON_Delete(v);
    return m;
}

/* The safetensors metadata of wn (when it carries minilora's config copy) against the config
 * of cp: each field present in both must agree. */
static int check_meta(const st_file *f, const char *cp, const char *wn, const peft_cfg *c,
                      ml_error *e) {
    char s[96];
    const char *v;
    char *end;
#define DIFFERS(field, cfgval)                                                                     \
    ml_fail(e, "%s: %s is %s, but the metadata of %s says %s", cp, field, cfgval, wn,              \
            ml_one_line(s, sizeof s, v))
    char cv[80];
    if ((v = st_meta(f, "peft_type")) && strcmp(v, "LORA")) return DIFFERS("peft_type", "\"LORA\"");
    snprintf(cv, sizeof cv, "%d", c->rank);
    if ((v = st_meta(f, "r")) && (strtol(v, &end, 10) != c->rank || *end || !*v))
        return DIFFERS("r", cv);
    snprintf(cv, sizeof cv, "%.9g", c->alpha);
    if ((v = st_meta(f, "lora_alpha")) && ((float)strtod(v, &end) != (float)c->alpha || *end))
        return DIFFERS("lora_alpha", cv);
    if ((v = st_meta(f, "use_rslora")) && strcmp(v, c->rslora ? "true" : "false"))
        return DIFFERS("use_rslora", c->rslora ? "true" : "false");
    if ((v = st_meta(f, "use_dora")) && strcmp(v, c->dora ? "true" : "false"))
        return DIFFERS("use_dora", c->dora ? "true" : "false");
    if ((v = st_meta(f, "target_modules")) && meta_modules(v) != c->targets) {
        char *tm = lora_targets_json(c->targets);
        snprintf(cv, sizeof cv, "%s", tm ? tm : "?");
        free(tm);
        return DIFFERS("target_modules", cv);
    }
    if ((v = st_meta(f, "layers_to_transform")) && (!c->has_layers || meta_layers(v) != c->layers))
        return DIFFERS("layers_to_transform", c->has_layers ? "another list" : "null");
    if ((v = st_meta(f, "base_sha256")) && c->sha && strcmp(v, c->sha))
        return DIFFERS(PEFT_SHA_FIELD, c->sha);
#undef DIFFERS
    return 0;
}

/* Replaces f's metadata with the config's fields (as lora_load reads them) followed by the
 * file's other pairs. */
static int overlay_meta(st_file *f, const peft_cfg *c, ml_error *e) {
    static const char *const ours[] = {"peft_type",           "r",          "lora_alpha",
                                       "target_modules",      "use_rslora", "use_dora",
                                       "layers_to_transform", "base_sha256"};
    const int n_ours = (int)(sizeof ours / sizeof ours[0]);
    char r_s[16], alpha_s[40], layers_s[8 * MINIGPT_MAX_LAYERS] = "[";
    snprintf(r_s, sizeof r_s, "%d", c->rank);
    snprintf(alpha_s, sizeof alpha_s, "%.17g", c->alpha);
    for (int l = 0; l < MINIGPT_MAX_LAYERS; l++)
        if (c->layers & (1u << l))
            snprintf(layers_s + strlen(layers_s), sizeof layers_s - strlen(layers_s), "%s%d",
                     layers_s[1] ? "," : "", l);
    strcat(layers_s, "]");
    const char *sha = c->sha ? c->sha : st_meta(f, "base_sha256");
    char *tm = lora_targets_json(c->targets);
    const char *vals[] = {"LORA", r_s,      alpha_s, tm, c->rslora ? "true" : "false",
                          "true", layers_s, sha};
    const int keep[] = {1, 1, 1, 1, 1, c->dora, c->has_layers, sha != NULL};
    const size_t cap = (size_t)n_ours + (size_t)f->n_meta;
    char **k = calloc(cap, sizeof *k), **v = calloc(cap, sizeof *v);
    int n = 0, rc = (!k || !v || !tm) ? -1 : 0;
    for (int i = 0; !rc && i < n_ours; i++)
        if (keep[i]) {
            k[n] = strdup(ours[i]), v[n] = strdup(vals[i]);
            n++;
            rc = (!k[n - 1] || !v[n - 1]) ? -1 : 0;
        }
    for (int i = 0; !rc && i < f->n_meta; i++) {
        int mine = 0;
        for (int j = 0; j < n_ours && !mine; j++) mine = !strcmp(f->meta_keys[i], ours[j]);
        if (mine) continue;
        k[n] = strdup(f->meta_keys[i]), v[n] = strdup(f->meta_values[i]);
        n++;
        rc = (!k[n - 1] || !v[n - 1]) ? -1 : 0;
    }
    free(tm);
    char **old_k = rc ? k : f->meta_keys, **old_v = rc ? v : f->meta_values;
    const int old_n = rc ? n : f->n_meta;
    if (!rc) f->meta_keys = k, f->meta_values = v, f->n_meta = n;
    for (int i = 0; i < old_n; i++) free(old_k[i]), free(old_v[i]);
    free(old_k);
    free(old_v);
    return rc ? ml_fail(e, "%s: out of memory", f->label) : 0;
}

/* adapter_open for a PEFT directory. */
static int open_dir(st_file *f, const char *dir, st_dtype *dtype, ml_error *e) {
    char cp[4200], wn[4200];
    snprintf(cp, sizeof cp, "%s%s%s", dir, ends_with(dir, "/") ? "" : "/", PEFT_CONFIG_NAME);
    snprintf(wn, sizeof wn, "%s%s%s", dir, ends_with(dir, "/") ? "" : "/", PEFT_WEIGHTS_NAME);
    char *text;
    size_t n;
    if (read_file(cp, PEFT_MAX_CONFIG, &text, &n, e)) return -1;
    cJSON *j = text_json_has_nul(text, n) ? NULL : cJSON_ParseWithLength(text, n);
    free(text);
    peft_cfg c;
    int rc = j ? parse_config(j, cp, &c, e) : ml_fail(e, "%s: not valid JSON", cp);
    if (!rc) rc = st_open(f, wn, e);
    if (!rc) rc = check_tensors(f, cp, wn, &c, dtype, e);
    if (!rc) rc = check_meta(f, cp, wn, &c, e);
    if (!rc) rc = overlay_meta(f, &c, e); /* c.sha points into j: delete j after */
    cJSON_Delete(j);
    if (rc) st_close(f);
    return rc;
}

int adapter_open(st_file *f, const char *path, st_dtype *dtype, ml_error *e) {
    memset(f, 0, sizeof *f);
    *dtype = ST_F16;
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        if (!peft_is_dir(path))
            return ml_fail(e, "%s: a directory without %s, not a PEFT adapter directory", path,
                           PEFT_CONFIG_NAME);
        return open_dir(f, path, dtype, e);
    }
    return st_open(f, path, e);
}

int adapter_sha256(const char *path, char hex[65], ml_error *e) {
    if (!peft_is_dir(path)) return sha256_file_hex(path, hex, e);
    sha256_ctx c;
    sha256_init(&c);
    const char *names[] = {PEFT_CONFIG_NAME, PEFT_WEIGHTS_NAME};
    for (int i = 0; i < 2; i++) {
        char p[4200], *data;
        size_t n;
        snprintf(p, sizeof p, "%s/%s", path, names[i]);
        if (read_file(p, (size_t)4 << 30, &data, &n, e)) return -1;
        sha256_update(&c, data, n);
        free(data);
    }
    uint8_t d[32];
    sha256_final(&c, d);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
    return 0;
}

char *peft_config_text(const lora *a, const st_file *f, const char *base_name,
                       const char *base_sha256, ml_error *e) {
    int dora = 0;
    for (int i = 0; i < f->n_tensors; i++)
        dora |= strstr(f->tensors[i].name, "lora_magnitude") != 0;
    const char *al = st_meta(f, "lora_alpha");
    char *endp;
    double alpha = al ? strtod(al, &endp) : 0;
    if (!al || *endp || !((float)alpha == a->alpha)) alpha = a->alpha; /* as loaded */
    char *tm = lora_targets_json(a->targets);
    char *lt =
        lora_layers_restricted(a->m, a->layer_mask) ? lora_layers_json(a->m, a->layer_mask) : NULL;
    cJSON *o = cJSON_CreateObject();
    /* PEFT's LoraConfig fields, sorted by name as save_pretrained writes them */
    cJSON_AddItemToObject(o, "alpha_pattern", cJSON_CreateObject());
    cJSON_AddNullToObject(o, "auto_mapping");
    cJSON_AddStringToObject(o, "base_model_name_or_path", base_name);
    cJSON_AddStringToObject(o, "bias", "none");
    cJSON_AddFalseToObject(o, "fan_in_fan_out");
    cJSON_AddTrueToObject(o, "inference_mode");
    /* PEFT's init_lora_weights: true for kaiming, and for pissa/olora files, which are stored
     * converted to a plain LoRA of the original base (the metadata keeps init and
     * converted_from_r); "gaussian" as PEFT names it */
    const char *init = st_meta(f, "init");
    if (init && !strcmp(init, "gaussian")) cJSON_AddStringToObject(o, "init_lora_weights", init);
    else cJSON_AddTrueToObject(o, "init_lora_weights");
    cJSON_AddNullToObject(o, "layer_replication");
    cJSON_AddNullToObject(o, "layers_pattern");
    cJSON_AddItemToObject(o, "layers_to_transform", lt ? cJSON_Parse(lt) : cJSON_CreateNull());
    cJSON_AddNumberToObject(o, "lora_alpha", alpha);
    const char *ld = st_meta(f, "lora_dropout"); /* as trained; lora_load checked 0 <= p < 1 */
    cJSON_AddNumberToObject(o, "lora_dropout", ld && a->dropout > 0.0f ? strtod(ld, NULL) : 0.0);
    cJSON_AddNullToObject(o, "megatron_config");
    if (base_sha256) cJSON_AddStringToObject(o, PEFT_SHA_FIELD, base_sha256);
    cJSON_AddNullToObject(o, "modules_to_save");
    cJSON_AddStringToObject(o, "peft_type", "LORA");
    cJSON_AddNumberToObject(o, "r", a->rank);
    cJSON_AddItemToObject(o, "rank_pattern", cJSON_CreateObject());
    cJSON_AddNullToObject(o, "revision");
    cJSON_AddItemToObject(o, "target_modules", tm ? cJSON_Parse(tm) : NULL);
    cJSON_AddStringToObject(o, "task_type", "CAUSAL_LM");
    cJSON_AddBoolToObject(o, "use_dora", dora);
    cJSON_AddBoolToObject(o, "use_rslora", a->rslora);
    char *printed = cJSON_Print(o);
    char *text = printed ? malloc(strlen(printed) + 2) : NULL; /* a text file ends with \n */
    if (text) strcat(strcpy(text, printed), "\n");
    free(printed);
    /* every piece must be there: a missing one (out of memory) leaves fewer fields */
    const int complete = text && tm && (lt || !lora_layers_restricted(a->m, a->layer_mask)) &&
                         cJSON_GetArraySize(o) == 22 + (base_sha256 != NULL) &&
                         cJSON_IsArray(cJSON_GetObjectItem(o, "target_modules"));
    cJSON_Delete(o);
    free(tm);
    free(lt);
    if (!complete) {
        free(text);
        ml_fail(e, "out of memory writing %s", PEFT_CONFIG_NAME);
        return NULL;
    }
    return text;
}
