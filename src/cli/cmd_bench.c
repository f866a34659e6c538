/* cmd_bench.c — placeholder until the command lands. */
#include <stdio.h>

#include "commands.h"
#include "opts.h"

int cmd_bench(int argc, char **argv) {
    (void)argc;
    fprintf(stderr, "%s: not implemented yet\n", argv[0]);
    return EXIT_RUNTIME;
}
