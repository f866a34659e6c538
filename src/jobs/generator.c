/* generator.c — prompt in, completion out, with every buffer sized by the model's context. */
#include "generator.h"

#include <stdlib.h>
#include <string.h>

#include "eval.h"

int generator_init(generator *g, const minigpt *m, const tok_vocab *v, float temperature,
                   int max_new, int raw, uint64_t seed, ml_error *e) {
    memset(g, 0, sizeof *g);
    *g = (generator){.m = m, .v = v, .temperature = temperature, .max_new = max_new, .raw = raw};
    rng_seed(&g->r, seed);
    return minigpt_kv_init(&g->kv, m, 1, e);
}

void generator_free(generator *g) {
    minigpt_kv_free(&g->kv);
    memset(g, 0, sizeof *g);
}

int generator_rebuild(generator *g, ml_error *e) {
    minigpt_kv_free(&g->kv); /* the plug-ins' scratch per row may have changed */
    return minigpt_kv_init(&g->kv, g->m, 1, e);
}

int generator_complete(generator *g, const char *text, char **out, int *full, ml_error *e) {
    const int ctx = g->m->cfg.context;
    *out = NULL;
    if (full) *full = 0;
    /* every training prompt ends with a space before the verb form */
    const size_t len = strlen(text);
    const int add_space = !g->raw && len && text[len - 1] != ' ';
    char *prompt = malloc(len + 2);
    int *ids = malloc(sizeof(int) * (size_t)ctx);  // (context)
    int *next = malloc(sizeof(int) * (size_t)ctx); // (context)
    int n, rc = -1;
    if (!prompt || !ids || !next) {
        ml_fail(e, "out of memory");
        goto done;
    }
    memcpy(prompt, text, len);
    strcpy(prompt + len, add_space ? " " : "");
    if (tok_encode(g->v, prompt, ids, ctx, &n, e)) goto done;
    if (n == 0) {
        ml_fail(e, "empty prompt");
        goto done;
    }
    for (int i = 0; i < n; i++) /* "\n" is token 0, the end-of-text marker: not prompt text */
        if (ids[i] == TOK_END) {
            ml_fail(e, "line break (the end-of-text marker) at token %d", i + 1);
            goto done;
        }
    if (n >= ctx) {
        ml_fail(e, "prompt is %d symbols; the context holds %d", n, ctx);
        goto done;
    }
    const int nout = g->temperature <= 0 ? eval_greedy(g->m, &g->kv, ids, n, next, g->max_new)
                                         : eval_sample(g->m, &g->kv, ids, n, next, g->max_new,
                                                       g->temperature, &g->r);
    if (nout == EVAL_NOT_FINITE) { /* not an empty completion: the model cannot answer */
        ml_fail(e, "the model's logits are not finite (the weights overflow)");
        goto done;
    }
    char *buf = nout >= 0 ? malloc(4 * (size_t)nout + 1) : NULL; /* a symbol: at most 4 bytes */
    if (!buf) {
        ml_fail(e, "out of memory");
        goto done;
    }
    tok_decode(g->v, next, nout, buf, 4 * nout + 1);
    *out = buf;
    /* the decoder stops at the end marker, at max_new, or with the context's last position
     * filled: only the last says nothing of whether the model was done */
    if (full) *full = n + nout >= ctx && nout < g->max_new;
    rc = 0;
done:
    free(prompt);
    free(ids);
    free(next);
    return rc;
}
