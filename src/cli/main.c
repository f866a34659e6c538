/* main.c — the multi-call binary: `lora-train ...` (a link named lora-train) and
 * `lora train ...` run the same command.
 *
 * Adding a command: write src/cli/cmd_<name>.c with `int cmd_<name>(int argc, char **argv)`
 * (declared in commands.h) and add one line to the table between the COMMANDS-BEGIN and
 * COMMANDS-END markers below, in the form {"name", cmd_name, "what it does"}. Nothing else
 * lists the commands: the Makefile reads the names from this table (for the bin/lora-<name>
 * links, make install and uninstall), and tests/test_cli.sh asks the binary
 * (`lora --list-commands`, one name per line). Then document it in man/lora.1 and README.md.
 */
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

/* COMMANDS-BEGIN: one command per line, read by the Makefile (keep the form) */
static const command commands[] = {
    {"train", cmd_train, "fine-tune a LoRA adapter on the base model"},
    {"eval", cmd_eval, "score the base and adapters on held-out data"},
    {"merge", cmd_merge, "fold adapters into a new base, or mix them into a new adapter"},
    {"info", cmd_info, "parameter inventory and LoRA sizes; describe an adapter"},
    {"generate", cmd_generate, "complete prompts with the base or an adapter"},
    {"pretrain", cmd_pretrain, "train the base model from scratch"},
    {"bench", cmd_bench, "measure training and inference throughput"},
    {"analyze", cmd_analyze, "singular values and subspaces of learned updates"},
    {"export", cmd_export, "write an adapter as a HuggingFace PEFT directory"},
    {"quantize", cmd_quantize, "store the base in 4-bit NF4 (QLoRA) or F16"},
};
/* COMMANDS-END */
#define N_COMMANDS (int)(sizeof commands / sizeof commands[0])

static void usage(FILE *f) {
    fprintf(f, "usage: lora COMMAND [options]   (or lora-COMMAND [options])\n\ncommands:\n");
    for (int i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].about);
    fprintf(f, "\n`lora COMMAND --help` describes each command; `lora --list-commands` prints the\n"
               "command names, one per line.\n");
}

static const command *lookup(const char *name) {
    for (int i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0) return &commands[i];
    return NULL;
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "--list-commands") == 0) { /* for scripts and tests */
        for (int i = 0; i < N_COMMANDS; i++) printf("%s\n", commands[i].name);
        return EXIT_OK;
    }
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
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
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
