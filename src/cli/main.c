/* main.c — the multi-call binary: `lora-train ...` (a link named lora-train) and
 * `lora train ...` run the same command. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "opts.h"
#include "blas_runtime.h"

typedef struct {
    const char *name;
    int (*run)(int, char **);
    const char *about;
} command;

static const command commands[] = {
    {"train", cmd_train, "fine-tune a LoRA adapter on the base model"},
    {"eval", cmd_eval, "score the base and adapters on held-out data"},
    {"merge", cmd_merge, "fold an adapter into a new base checkpoint"},
    {"info", cmd_info, "parameter inventory and LoRA sizes; describe an adapter"},
    {"generate", cmd_generate, "complete prompts with the base or an adapter"},
    {"pretrain", cmd_pretrain, "train the base model from scratch"},
    {"bench", cmd_bench, "measure training and inference throughput"},
    {"analyze", cmd_analyze, "singular values and subspaces of learned updates"},
};
#define N_COMMANDS (int)(sizeof commands / sizeof commands[0])

static void usage(FILE *f) {
    fprintf(f, "usage: lora COMMAND [options]   (or lora-COMMAND [options])\n\ncommands:\n");
    for (int i = 0; i < N_COMMANDS; i++) fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].about);
    fprintf(f, "\n`lora COMMAND --help` describes each command.\n");
}

static const command *lookup(const char *name) {
    for (int i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0) return &commands[i];
    return NULL;
}

int main(int argc, char **argv) {
    runtime_init(argv);
    const char *base = strrchr(argv[0], '/');
    base = base ? base + 1 : argv[0];
    char display[64];
    /* lora-train → train */
    if (strncmp(base, "lora-", 5) == 0) {
        const command *c = lookup(base + 5);
        if (!c) {
            fprintf(stderr, "%s: error: unknown command name (see lora --help)\n", base);
            return EXIT_USAGE;
        }
        snprintf(display, sizeof display, "lora-%s", c->name);
        argv[0] = display;
        return c->run(argc, argv);
    }
    if (argc < 2) { /* a usage error is one line; --help shows the commands */
        fprintf(stderr, "lora: missing COMMAND (see lora --help)\n");
        return EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return EXIT_OK;
    }
    const command *c = lookup(argv[1]);
    if (!c) {
        fprintf(stderr, "lora: unknown command '%s' (see lora --help)\n", argv[1]);
        return EXIT_USAGE;
    }
    snprintf(display, sizeof display, "lora-%s", c->name);
    argv[1] = display;
    return c->run(argc - 1, argv + 1);
}
