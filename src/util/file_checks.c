/* file_checks.c — output-path checks. */
#include "file_checks.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int check_writable(const char *path, ml_error *e) {
    struct stat st;
    if (!path[0]) return ml_fail(e, "the output path is empty"); /* would fail only when saving */
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return ml_fail(e, "%s: is a directory", path);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.probe.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) return ml_fail(e, "%s: cannot write here: %s", path, strerror(errno));
    close(fd);
    unlink(tmp);
    return 0;
}

int check_not_input(const char *path, const char *const *inputs, int n, ml_error *e) {
    struct stat out, in;
    if (stat(path, &out) != 0) return 0; /* a new file is no input */
    for (int i = 0; i < n; i++)
        if (inputs[i] && inputs[i][0] && stat(inputs[i], &in) == 0 && in.st_dev == out.st_dev &&
            in.st_ino == out.st_ino)
            return ml_fail(e, "%s: is also an input (%s); refusing to overwrite it", path, inputs[i]);
    return 0;
}
