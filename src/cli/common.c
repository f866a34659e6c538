/* common.c — helpers shared by the commands. */
#include "common.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "opts.h"
#include "train_loop.h"

const char *default_path(const char *rel) {
    static char found[32][4096];
    static int used = 0;
    struct stat st;
    if (!rel || !rel[0] || rel[0] == '/' || stat(rel, &st) == 0) return rel;
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0 || used >= 32) return rel;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash) return rel;
    *slash = '\0'; /* the directory holding the binary */
    const char *const layouts[] = {"%s/../share/minilora/%s", "%s/../%s"};
    for (int i = 0; i < 2; i++) {
        char candidate[8400];
        snprintf(candidate, sizeof candidate, layouts[i], exe, rel);
        if (stat(candidate, &st) == 0 && realpath(candidate, found[used])) return found[used++];
    }
    return rel;
}

int usage_fail(const char *cmd, const char *msg) {
    fprintf(stderr, "%s: %s (see %s --help)\n", cmd, msg, cmd);
    return EXIT_USAGE;
}

static void on_signal(int sig) { train_stop_signal = sig; }

void install_stop_handlers(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* The held-out files scored by default: seen and new frames, the change and its side effects. */
static const char *const eval_files[] = {
    "data/irreg_test.jsonl",      "data/irreg_test_new.jsonl", /* what was taught */
    "data/control_regular.jsonl", "data/control_new.jsonl",    /* the rule, kept */
    "data/regular_heldout.jsonl", "data/regular_heldout_new.jsonl",
    "data/irreg_nonpast.jsonl",   "data/irreg_nonpast_new.jsonl", /* collateral damage */
    "data/irreg_unseen.jsonl",                                    /* verbs never taught */
};

int default_eval_files(const char **files, int max) {
    int n = 0;
    for (; n < (int)(sizeof eval_files / sizeof eval_files[0]) && n < max; n++)
        files[n] = default_path(eval_files[n]);
    return n;
}
