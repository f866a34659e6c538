/* cmd_generate.c — `lora-generate`: complete prompts with the base or an adapter, greedily or
 * by sampling; without a PROMPT, a line-by-line grammar tutor on stdin. With named adapters
 * (--adapter NAME=FILE, repeatable) a prompt "@NAME prompt" picks one, "@base prompt" the
 * base alone, without reloading anything (adapter_set.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "adapter_set.h"
#include "commands.h"
#include "common.h"
#include "generator.h"
#include "opts.h"

/* Completes one prompt and prints the completion on stdout. With named adapters (set non-NULL)
 * the prompt's "@NAME " prefix picks the adapter first. A completion that filled the context
 * gets a warning on stderr, `where` naming the prompt (it may be cut; the status stays 0). */
static int complete(generator *g, adapter_set *set, const char *text, const char *cmd,
                    const char *where, ml_error *e) {
    char *out;
    int full;
    if (set) {
        int idx, changed;
        if (adapter_set_route(set, text, &idx, &text, e) ||
            adapter_set_select(set, idx, &changed, e) || (changed && generator_rebuild(g, e)))
            return -1;
    }
    if (generator_complete(g, text, &out, &full, e)) return -1;
    printf("%s\n", out);
    fflush(stdout);
    if (full)
        fprintf(stderr,
                "%s: warning: %s: the completion fills the model's context of %d symbols and may "
                "be cut; a shorter prompt leaves it more room\n",
                cmd, where, g->m->cfg.context);
    free(out);
    return 0;
}

int cmd_generate(int argc, char **argv) {
    const char *cmd = argv[0];
    const char *base_path = default_path("data/minigpt-base.safetensors");
    opt_list adapters = {0};
    float temperature = 0.0f, strength = 1.0f;
    uint64_t seed = 1;
    int max_new = 32, raw = 0;
    opt_def defs[] = {
        {"adapter", OPT_LIST, &adapters, 0, 0, "[NAME=]FILE",
         "a LoRA adapter (or full checkpoint) to use; NAME=FILE, repeatable, loads named "
         "adapters that a prompt picks with \"@NAME prompt\" (\"@base prompt\": none; no "
         "prefix: the first)"},
        {"scale", OPT_FLOAT, &strength, 0, LORA_MAX_STRENGTH, "S",
         "adapter strength: multiply the adapter's update by S (0: the base; DoRA: m*W/||W||; a "
         "full checkpoint takes 1 only)"},
        {"base", OPT_STRING, &base_path, 0, 0, "FILE", "base checkpoint"},
        {"temperature", OPT_FLOAT, &temperature, 0, 100, "T",
         "sample at temperature T (0: greedy)"},
        {"seed", OPT_U64, &seed, 0, 1.8e19, "N", "random seed for sampling"},
        {"max-tokens", OPT_INT, &max_new, 1, 4096, "N", "longest completion"},
        {"raw", OPT_FLAG, &raw, 0, 0, NULL,
         "use prompts exactly as given (no trailing space added)"},
    };
    int pos;
    int r =
        opts_parse("[options] [PROMPT ...]",
                   "Completes each PROMPT (e.g. \"go: yesterday he \") and prints the completion.\n"
                   "Without PROMPT, reads one prompt per line from stdin: a grammar tutor.\n"
                   "A prompt without a trailing space gets one, as every training prompt has.\n"
                   "With --adapter NAME=FILE (repeatable) each prompt may start with \"@NAME \"\n"
                   "to use that adapter or \"@base \" for the base alone; the base is loaded once.",
                   NULL, defs, (int)(sizeof defs / sizeof defs[0]), argc, argv, &pos);
    if (r) return r > 0 ? EXIT_OK : EXIT_USAGE;
    ml_error e;
    size_t name_len;
    /* named: several adapters, or one written NAME=FILE; else one plain FILE as always */
    const int named =
        adapters.n > 1 || (adapters.n == 1 && adapter_set_is_named(adapters.v[0], &name_len));
    if (named && adapter_set_check_specs(adapters.v, adapters.n, &e)) return usage_fail(cmd, e.msg);
    loaded_model lm;
    adapter_set set = {0};
    int changed;
    if (loaded_model_init(&lm, base_path, named ? NULL : adapters.v[0], strength, &e)) {
        cli_error(cmd, e.msg);
        return EXIT_RUNTIME;
    }
    generator g = {0};
    int rc = EXIT_OK;
    if ((named &&
         (adapter_set_init(&set, &lm.base, lm.base_sha, adapters.v, adapters.n, strength, &e) ||
          adapter_set_select(&set, 0, &changed, &e))) ||
        generator_init(&g, lm.m, &lm.vocab, temperature, max_new, raw, seed, &e)) {
        cli_error(cmd, e.msg);
        adapter_set_free(&set);
        loaded_model_free(&lm);
        return EXIT_RUNTIME;
    }
    adapter_set *route = named ? &set : NULL;
    if (pos < argc) {
        for (int i = pos; i < argc; i++) {
            char shown[200], where[220];
            snprintf(where, sizeof where, "prompt \"%s\"",
                     ml_one_line(shown, sizeof shown, argv[i]));
            if (complete(&g, route, argv[i], cmd, where, &e)) {
                fprintf(stderr, "%s: error: %s: %s\n", cmd, where, e.msg);
                rc = EXIT_RUNTIME;
            }
        }
    } else {
        const int tty = isatty(0) && isatty(1);
        if (tty) fprintf(stderr, "Type a prompt such as \"go: yesterday he\" (Ctrl-D to quit).\n");
        enum { MAX_LINE = 1022 }; /* bytes of a prompt line, without its line break */
        char *line = NULL;
        size_t cap = 0;
        int lineno = 0;
        for (;;) {
            if (tty) fprintf(stderr, "> ");
            /* getline: the length read, so a NUL byte inside the line is seen (fgets hides it) */
            const ssize_t got = getline(&line, &cap, stdin);
            if (got < 0) break;
            lineno++;
            size_t len = (size_t)got;
            while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) len--;
            if (len > MAX_LINE) { /* one error per line */
                fprintf(stderr, "%s: error: stdin:%d: line is longer than %d bytes\n", cmd, lineno,
                        MAX_LINE);
                rc = EXIT_RUNTIME;
                continue;
            }
            if (memchr(line, '\0', len)) {
                fprintf(stderr, "%s: error: stdin:%d: the line holds a NUL byte\n", cmd, lineno);
                rc = EXIT_RUNTIME;
                continue;
            }
            line[len] = '\0';
            if (!line[0]) continue;
            char where[32];
            snprintf(where, sizeof where, "stdin:%d", lineno);
            if (complete(&g, route, line, cmd, where, &e)) {
                fprintf(stderr, "%s: error: %s: %s\n", cmd, where, e.msg);
                rc = EXIT_RUNTIME;
            }
        }
        free(line);
    }
    generator_free(&g);
    adapter_set_free(&set);
    loaded_model_free(&lm);
    return rc;
}
