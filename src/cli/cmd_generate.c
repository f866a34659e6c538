/* cmd_generate.c — placeholder until the command lands. */
#include <stdio.h>

#include "commands.h"
#include "opts.h"

int cmd_generate(int argc, char **argv) {
    (void)argc;
    fprintf(stderr, "%s: not implemented yet\n", argv[0]);
    return EXIT_RUNTIME;
}
