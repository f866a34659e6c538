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
#include "train.h"

int usage_fail(const char *cmd, const char *msg) {
    fprintf(stderr, "%s: %s (see %s --help)\n", cmd, msg, cmd);
    return EXIT_USAGE;
}

int check_writable(const char *path, ml_error *e) {
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return ml_fail(e, "%s: is a directory", path);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.probe.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) return ml_fail(e, "%s: cannot write here: %s", path, strerror(errno));
    close(fd);
    unlink(tmp);
    return 0;
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
