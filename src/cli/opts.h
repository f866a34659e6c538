/* opts.h — one table per command describes its flags; the same names work in a --config JSON
 * file (with '-' written as '_'), so every default can live in configs/ and every flag can
 * override it. Values are range-checked; a bad one is a usage error (exit status 2). */
#ifndef OPTS_H
#define OPTS_H

#include <stdint.h>
#include <stdio.h>

/* OPT_PATH is a file name and OPT_PATHS a comma-separated list of them: both are strings, but
 * a relative one in a config file is relative to that file's directory (opts_parse).
 * OPT_ALIAS is a second name for another option of the table: dst is that option's name (a
 * string), e.g. {"lr-ratio", OPT_ALIAS, "loraplus-ratio", ...}. Both names work as flags and
 * as config keys and set the same value; the help shows the alias with that value. Giving both
 * names different values in one place (the command line, or one config file) is a usage error;
 * across places the usual order decides (a flag overrides a config file). */
typedef enum {
    OPT_INT,
    OPT_FLOAT,
    OPT_STRING,
    OPT_FLAG,
    OPT_U64,
    OPT_LIST,
    OPT_CHOICE,
    OPT_PATH,
    OPT_PATHS,
    OPT_ALIAS
} opt_type;

typedef struct {
    const char *name; /* long flag without the dashes, e.g. "weight-decay" */
    opt_type type;
    void *dst;       /* int*, float*, const char** (also paths), int* (flag), uint64_t*,
                        * opt_list*, opt_choice*, const char* (alias: the option's name) */
    double min, max; /* inclusive range for numbers */
    const char *arg; /* metavar in the help, e.g. "N" */
    const char *help;
} opt_def;

/* One name from a fixed list (--optimizer adamw|sgd), stored as its index. */
typedef struct {
    int *index;                 /* where the index of the given name goes */
    const char *(*name)(int i); /* the i-th allowed name, NULL past the last */
} opt_choice;

/* A repeatable string option (--adapter A --adapter B). */
typedef struct {
    int n;
    const char *v[16];
} opt_list;

enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

/* Parses argv (argv[0] is the command name used in messages), in three layers:
 *   1. defaults (may be NULL): the command's defaults file, e.g. configs/lora-irreg.json. It
 *      must give every number and choice option a value: those have no default in C, so the file is the
 *      one place a default lives, and --help shows it.
 *   2. --config FILE (an OPT_STRING named "config"): settings over the defaults.
 *   3. the flags, in order.
 * A relative OPT_PATH (each item of an OPT_PATHS) in a config file, the defaults file included,
 * is resolved against the directory of that file; "" stays "" (none). Paths given as flags
 * stay relative to the working directory.
 * Sets *first_pos to the index of the first positional argument. Returns 0, 1 when --help was
 * shown (exit 0), or -1 after printing a one-line error (exit 2). Strings point into argv or
 * into a config file's text (kept alive for the process). */
int opts_parse(const char *synopsis, const char *about, const char *defaults, opt_def *defs, int n,
               int argc, char **argv, int *first_pos);

/* Whether the last opts_parse set the option named name (or an alias of it) from the --config
 * file or a flag (--no-FLAG too), rather than leaving the defaults file's value. */
int opts_given(const char *name);

/* Prints the usage text built from the table. */
void opts_usage(FILE *f, const char *cmd, const char *synopsis, const char *about,
                const opt_def *defs, int n);

/* Prints "cmd: error: message" to stderr. */
void cli_error(const char *cmd, const char *msg);

#endif
