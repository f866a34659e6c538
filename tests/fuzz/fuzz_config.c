/* fuzz_config.c — libFuzzer target for the JSON configuration readers.
 *
 * One input is one JSON text, given to:
 *   1. model_config_parse (a checkpoint's "config" metadata, configs/minigpt.json). Accepted:
 *      the config passes minigpt_config_check and survives model_config_json and a re-parse
 *      unchanged.
 *   2. tok_from_json (a vocabulary array). Accepted: tok_to_json and a re-parse give the same
 *      symbols, and the text of all symbols encodes to 0..n-1 and decodes back.
 *   3. model_config_load on the same bytes (through an in-memory file): a whole
 *      configs/minigpt.json (config numbers plus "vocab").
 *   4. The --config file reader of the commands (src/cli/opts.c and the common.c it uses,
 *      compiled in here because the reader is static and the CLI is not in the library), through opts_parse("--config FILE") on a table with one option of
 *      each kind; its stderr is captured and must be empty on success and exactly one line
 *      on failure; numbers that were accepted must be stored exactly.
 * Refused inputs must come with a non-empty one-line message starting with the label.
 */
#include <cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "cli/common.c" /* default_path, used by opts.c for paths in config files */
#include "cli/opts.c"
#include "fuzz_common.h"
#include "minigpt.h"
#include "model_config.h"
#include "tokenizer.h"

#define FZ_CFG_LABEL "fuzz.json"

static void check_model_config(const char *s, ml_error *err, int *ok) {
    minigpt_config cfg, again;
    ml_error e = {{0}};
    if (model_config_parse(&cfg, s, FZ_CFG_LABEL, &e)) {
        fz_check_msg("model_config_parse", &e, FZ_CFG_LABEL);
        if (err) *err = e;
        return;
    }
    *ok = 1;
    if (minigpt_config_check(&cfg, &e)) fz_fail("accepted config fails the check: %s", e.msg);
    char *j = model_config_json(&cfg);
    if (!j) abort();
    if (model_config_parse(&again, j, "again", &e))
        fz_fail("config %s does not re-parse: %s", j, e.msg);
    else if (memcmp(&cfg, &again, sizeof cfg) != 0) fz_fail("config changes through %s", j);
    free(j);
}

static void check_vocab(const char *s, ml_error *err, int *ok) {
    static tok_vocab v, w; /* 1.3 KB each */
    ml_error e = {{0}};
    if (tok_from_json(&v, s, FZ_CFG_LABEL, &e)) {
        fz_check_msg("tok_from_json", &e, FZ_CFG_LABEL);
        if (err && !*ok) *err = e;
        return;
    }
    *ok = 1;
    if (v.n < 2 || v.n > TOK_MAX_VOCAB || strcmp(v.sym[TOK_END], "\n") != 0)
        fz_fail("vocab of %d", v.n);
    char *j = tok_to_json(&v);
    if (!j) abort();
    if (tok_from_json(&w, j, "again", &e)) fz_fail("vocab %s does not re-parse: %s", j, e.msg);
    else if (w.n != v.n || memcmp(w.sym, v.sym, sizeof v.sym) != 0 ||
             memcmp(w.ascii, v.ascii, sizeof v.ascii) != 0)
        fz_fail("vocab changes through %s", j);
    free(j);
    /* every symbol in order encodes to its own id and decodes back */
    char text[TOK_MAX_VOCAB * 4 + 1] = "", back[TOK_MAX_VOCAB * 4 + 1];
    for (int i = 0; i < v.n; i++) strcat(text, v.sym[i]);
    int ids[TOK_MAX_VOCAB], n = 0;
    if (tok_encode(&v, text, ids, TOK_MAX_VOCAB, &n, &e)) {
        fz_fail("the vocab's own symbols do not encode: %s", e.msg);
        return;
    }
    if (n != v.n) fz_fail("%d symbols encode to %d ids", v.n, n);
    for (int i = 0; i < n && i < v.n; i++)
        if (ids[i] != i) fz_fail("symbol %d encodes to %d", i, ids[i]);
    tok_decode(&v, ids, n, back, (int)sizeof back);
    if (strcmp(back, text) != 0) fz_fail("the vocab's symbols do not decode back");
    /* a short encode must fail cleanly */
    if (n > 1) {
        if (!tok_encode(&v, text, ids, n - 1, &n, &e)) fz_fail("tok_encode ignored max_ids");
        else fz_check_msg("tok_encode (max_ids)", &e, NULL);
    }
}

static void check_model_config_file(const uint8_t *data, size_t size) {
    const char *path = fz_memfile(data, size);
    if (!path) return;
    minigpt_config cfg;
    static tok_vocab v;
    ml_error e = {{0}};
    if (model_config_load(path, &cfg, &v, &e)) fz_check_msg("model_config_load", &e, path);
    else if (v.n != cfg.vocab_size)
        fz_fail("model_config_load: vocab of %d, vocab_size %d", v.n, cfg.vocab_size);
}

/* ---- --config files (opts.c) ----------------------------------------------------------- */

static int o_int, o_flag;
static float o_float;
static uint64_t o_u64;
static const char *o_str, *o_config;
static opt_list o_list;
static const char o_str_default[] = "default";

static opt_def fz_defs[] = {
    {"config", OPT_STRING, &o_config, 0, 0, "FILE", "config"},
    {"rank", OPT_INT, &o_int, 0, 64, "R", "int"},
    {"steps", OPT_INT, &o_int, 1, 1e8, "N", "int, wide range"},
    {"lr", OPT_FLOAT, &o_float, 0, 10, "X", "float"},
    {"replay", OPT_STRING, &o_str, 0, 0, "FILE", "string"},
    {"rslora", OPT_FLAG, &o_flag, 0, 0, NULL, "flag"},
    {"seed", OPT_U64, &o_u64, 0, 1.8e19, "N", "u64"},
    {"adapter", OPT_LIST, &o_list, 0, 0, "FILE", "list"},
};

/* The value JSON sets for key (the last occurrence wins, as in apply_config), or NULL. */
static const cJSON *last_item(const cJSON *o, const char *key) {
    const cJSON *found = NULL;
    for (const cJSON *it = o->child; it; it = it->next)
        if (it->string && strcmp(it->string, key) == 0) found = it;
    return found;
}

static void check_opts_config(const uint8_t *data, size_t size) {
    const char *path = fz_memfile(data, size);
    if (!path) return;
    char cpath[64];
    snprintf(cpath, sizeof cpath, "%s", path);
    o_int = 7, o_flag = 0, o_float = 0.5f, o_u64 = 3, o_str = o_str_default, o_config = NULL;
    memset(&o_list, 0, sizeof o_list);
    char a0[] = "lora-fuzz", a1[] = "--config", a3[] = "positional";
    char *argv[] = {a0, a1, cpath, a3, NULL};
    int pos = 0;

    /* opts.c prints through the stderr stream: point it at memory for the call (the
     * sanitizers write to file descriptor 2 directly, so their reports still show) */
    char *out = NULL;
    size_t n = 0;
    FILE *mem = open_memstream(&out, &n), *saved = stderr;
    if (!mem) return;
    stderr = mem;
    int rc = opts_parse("[options] X", "fuzz", NULL, fz_defs,
                        (int)(sizeof fz_defs / sizeof fz_defs[0]), 4, argv, &pos);
    stderr = saved;
    fclose(mem);
    const char *nl = strchr(out, '\n');
    if (rc == 0) {
        if (n) fz_fail("opts_parse succeeded but printed: %s", out);
        if (pos != 3 || strcmp(argv[3], "positional") != 0)
            fz_fail("opts_parse lost the positional");
        /* numbers that were accepted are stored exactly */
        char *s = fz_cstr(data, size);
        cJSON *o = cJSON_Parse(s);
        free(s);
        const cJSON *it;
        if (o && (it = last_item(o, "seed")) && cJSON_IsNumber(it) && it->valuedouble >= 0 &&
            it->valuedouble <= 1.8e19 && o_u64 != (uint64_t)it->valuedouble)
            fz_fail("seed %.17g from the config file is stored as %llu", it->valuedouble,
                    (unsigned long long)o_u64);
        if (o && (it = last_item(o, "lr")) && cJSON_IsNumber(it) &&
            o_float != (float)it->valuedouble)
            fz_fail("lr %.17g from the config file is stored as %.9g", it->valuedouble,
                    (double)o_float);
        /* "rank" and "steps" both set o_int: the last of either wins */
        const cJSON *last_int = NULL;
        for (const cJSON *c = o ? o->child : NULL; c; c = c->next)
            if (c->string && (!strcmp(c->string, "rank") || !strcmp(c->string, "steps")))
                last_int = c;
        if ((it = last_int) && cJSON_IsNumber(it) && (double)o_int != it->valuedouble)
            fz_fail("%s %.17g from the config file is stored as %d", it->string, it->valuedouble,
                    o_int);
        cJSON_Delete(o);
    } else if (rc < 0) {
        if (!n || !nl || nl[1] != '\0' || strchr(out, '\r'))
            fz_fail("opts_parse failed without exactly one line of message: \"%s\"", out);
        else if (strncmp(out, "lora-fuzz: error: ", 18) != 0)
            fz_fail("opts_parse message does not start with the command: \"%s\"", out);
        else {
            out[n - 1] = '\0'; /* the line without its '\n' obeys the message contract too */
            const char *why =
                n > sizeof(ml_error) ? "the message is too long" : fz_msg_problem(out);
            if (why) fz_fail("opts_parse: %s: \"%s\"", why, out);
        }
    } else {
        fz_fail("opts_parse returned %d", rc);
    }
    /* strings from the file are kept by opts.c for the life of the process: release them */
    while (kept_strings) {
        kept_string *k = kept_strings;
        kept_strings = k->next;
        free(k);
    }
    free(out);
}

int fuzz_config_one(const uint8_t *data, size_t size, ml_error *err) {
    char *s = fz_cstr(data, size);
    int ok = 0;
    check_model_config(s, err, &ok);
    check_vocab(s, err, &ok);
    free(s);
    check_model_config_file(data, size);
    check_opts_config(data, size);
    return ok;
}

#ifndef FUZZ_REPLAY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_config_one(data, size, NULL);
    return 0;
}
#endif
