/* model_config.c — the model config as JSON (cJSON): parse, print, and the config file. */
#include "model_config.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atomic_file.h"
#include "text.h"

static int json_int(const cJSON *o, const char *key, int *out, const char *label, ml_error *e) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!it) return ml_fail(e, "%s: config has no \"%s\"", label, key);
    /* range first: converting 1e999 or NaN to int would be undefined */
    const double d = cJSON_IsNumber(it) ? it->valuedouble : NAN;
    if (!(d >= -1e9 && d <= 1e9) || d != floor(d))
        return ml_fail(e, "%s: config \"%s\" is not an integer of a sensible size", label, key);
    *out = (int)d;
    return 0;
}

static int json_float(const cJSON *o, const char *key, float *out, const char *label, ml_error *e) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!it) return ml_fail(e, "%s: config has no \"%s\"", label, key);
    if (!cJSON_IsNumber(it)) return ml_fail(e, "%s: config \"%s\" is not a number", label, key);
    *out = (float)it->valuedouble;
    return 0;
}

int model_config_parse(minigpt_config *cfg, const char *json, const char *label, ml_error *e) {
    cJSON *o = cJSON_ParseWithOpts(json, NULL, 1); /* 1: nothing may follow the object */
    if (!o || !cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return ml_fail(e, "%s: config is not a JSON object", label);
    }
    minigpt_config c;
    int rc = json_int(o, "vocab_size", &c.vocab_size, label, e);
    if (!rc) rc = json_int(o, "d_model", &c.d_model, label, e);
    if (!rc) rc = json_int(o, "n_heads", &c.n_heads, label, e);
    if (!rc) rc = json_int(o, "n_layers", &c.n_layers, label, e);
    if (!rc) rc = json_int(o, "d_ff", &c.d_ff, label, e);
    if (!rc) rc = json_int(o, "context", &c.context, label, e);
    if (!rc) rc = json_float(o, "ln_eps", &c.ln_eps, label, e);
    if (!rc) rc = json_float(o, "rope_base", &c.rope_base, label, e);
    cJSON_Delete(o);
    if (rc) return rc;
    if (minigpt_config_check(&c, e)) return ml_wrap(e, "%s: config", label);
    *cfg = c;
    return 0;
}

char *model_config_json(const minigpt_config *c) {
    char buf[512];
    snprintf(buf, sizeof buf,
             "{\"vocab_size\":%d,\"d_model\":%d,\"n_heads\":%d,\"n_layers\":%d,\"d_ff\":%d,"
             "\"context\":%d,\"ln_eps\":%.9g,\"rope_base\":%.9g}",
             c->vocab_size, c->d_model, c->n_heads, c->n_layers, c->d_ff, c->context,
             (double)c->ln_eps, (double)c->rope_base);
    return strdup(buf);
}

int model_config_load(const char *path, minigpt_config *cfg, tok_vocab *v, ml_error *e) {
    char *text;
    size_t n;
    if (read_file(path, 1 << 20, &text, &n, e)) return -1;
    int rc = text_json_has_nul(text, n) /* cJSON would cut a key or a symbol at the NUL */
                 ? ml_fail(e, "%s: holds the NUL character (a raw byte or \\u0000)", path)
                 : model_config_parse(cfg, text, path, e);
    cJSON *o = rc ? NULL : cJSON_ParseWithOpts(text, NULL, 1);
    const cJSON *arr = o ? cJSON_GetObjectItemCaseSensitive(o, "vocab") : NULL;
    if (!rc && !arr) rc = ml_fail(e, "%s: no \"vocab\" array", path);
    char *vj = rc ? NULL : cJSON_PrintUnformatted(arr);
    if (!rc) rc = vj ? tok_from_json(v, vj, path, e) : ml_fail(e, "out of memory");
    if (!rc && v->n != cfg->vocab_size)
        rc = ml_fail(e, "%s: vocab has %d symbols but vocab_size is %d", path, v->n,
                     cfg->vocab_size);
    free(vj);
    cJSON_Delete(o);
    free(text);
    return rc;
}
