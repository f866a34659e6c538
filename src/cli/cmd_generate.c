/* cmd_generate.c — `lora-generate`: complete prompts with the base or an adapter, greedily or
 * by sampling; without a PROMPT, a line-by-line grammar tutor on stdin. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "common.h"
#include "generator.h"
#include "opts.h"

/* Completes one prompt and prints the completion on stdout. */
static int complete(generator *g, const char *text, ml_error *e) {
    char *out;
    if (generator_complete(g, text, &out, e)) return -1;
    printf("%s\n", out);
    fflush(stdout);
    free(out);
    return 0;
}

int cmd_generate(int argc, char **argv) {
    const char *cmd = argv[0];
    const char *base_path = default_path("data/minigpt-base.safetensors"), *adapter = NULL;
    float temperature = 0.0f;
    uint64_t seed = 1;
    int max_new = 32, raw = 0;
    opt_def defs[] = {
        {"adapter", OPT_STRING, &adapter, 0, 0, "FILE", "a LoRA adapter (or full checkpoint) to use"},
        {"base", OPT_STRING, &base_path, 0, 0, "FILE", "base checkpoint"},
        {"temperature", OPT_FLOAT, &temperature, 0, 100, "T", "sample at temperature T (0: greedy)"},
        {"seed", OPT_U64, &seed, 0, 1.8e19, "N", "random seed for sampling"},
        {"max-tokens", OPT_INT, &max_new, 1, 4096, "N", "longest completion"},
        {"raw", OPT_FLAG, &raw, 0, 0, NULL, "use prompts exactly as given (no trailing space added)"},
    };
    int pos;
    int r = opts_parse("[options] [PROMPT ...]",
                       "Completes each PROMPT (e.g. \"go: yesterday he \") and prints the completion.\n"
                       "Without PROMPT, reads one prompt per line from stdin: a grammar tutor.\n"
                       "A prompt without a trailing space gets one, as every training prompt has.",
                       NULL, defs, (int)(sizeof defs / sizeof defs[0]), argc, argv, &pos);
    if (r) return r > 0 ? EXIT_OK : EXIT_USAGE;
    ml_error e;
    loaded_model lm;
    if (loaded_model_init(&lm, base_path, adapter, &e)) {
        cli_error(cmd, e.msg);
        return EXIT_RUNTIME;
    }
    generator g;
    int rc = EXIT_OK;
    if (generator_init(&g, lm.m, &lm.vocab, temperature, max_new, raw, seed, &e)) {
        cli_error(cmd, e.msg);
        loaded_model_free(&lm);
        return EXIT_RUNTIME;
    }
    if (pos < argc) {
        for (int i = pos; i < argc; i++)
            if (complete(&g, argv[i], &e)) {
                char shown[200];
                fprintf(stderr, "%s: error: prompt \"%s\": %s\n", cmd, ml_one_line(shown, sizeof shown, argv[i]),
                        e.msg);
                rc = EXIT_RUNTIME;
            }
    } else {
        const int tty = isatty(0) && isatty(1);
        if (tty) fprintf(stderr, "Type a prompt such as \"go: yesterday he\" (Ctrl-D to quit).\n");
        char line[1024];
        int lineno = 0;
        for (;;) {
            if (tty) fprintf(stderr, "> ");
            if (!fgets(line, sizeof line, stdin)) break;
            lineno++;
            if (!strchr(line, '\n') && strlen(line) == sizeof line - 1) { /* one error per line */
                int c;
                while ((c = getchar()) != EOF && c != '\n') {}
                fprintf(stderr, "%s: error: stdin:%d: line is longer than %d bytes\n", cmd, lineno,
                        (int)sizeof line - 2);
                rc = EXIT_RUNTIME;
                continue;
            }
            line[strcspn(line, "\r\n")] = '\0';
            if (!line[0]) continue;
            if (complete(&g, line, &e)) {
                fprintf(stderr, "%s: error: stdin:%d: %s\n", cmd, lineno, e.msg);
                rc = EXIT_RUNTIME;
            }
        }
    }
    generator_free(&g);
    loaded_model_free(&lm);
    return rc;
}
