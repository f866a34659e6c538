/* file_checks.c — output-path checks: the one output rule of file_checks.h. */
#include "file_checks.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Creates and removes a temporary file beside path; the message names flag when given. */
static int writable_probe(const char *flag, const char *path, ml_error *e) {
    struct stat st;
    const char *sep = flag ? " " : "";
    if (!flag) flag = "";
    if (!path[0]) return ml_fail(e, "%s%sthe output path is empty", flag, flag[0] ? ": " : "");
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return ml_fail(e, "%s%s%s: is a directory", flag, sep, path);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.probe.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0)
        return ml_fail(e, "%s%s%s: cannot write here: %s", flag, sep, path, strerror(errno));
    close(fd);
    unlink(tmp);
    return 0;
}

int check_writable(const char *path, ml_error *e) { return writable_probe(NULL, path, e); }

/* What a path names: an existing file by device and inode (links followed), or a name that
 * does not exist yet by its directory's device and inode and the last component. */
typedef struct {
    int exists, known; /* known: 0 when neither the file nor its directory could be found */
    dev_t dev;
    ino_t ino;
    const char *name; /* absent files: the last component of the path (points into it) */
} file_id;

static file_id identify(const char *path) {
    file_id id = {0};
    struct stat st;
    if (stat(path, &st) == 0) {
        id.exists = id.known = 1;
        id.dev = st.st_dev;
        id.ino = st.st_ino;
        return id;
    }
    const char *slash = strrchr(path, '/');
    id.name = slash ? slash + 1 : path;
    char dir[4096];
    if (!slash) snprintf(dir, sizeof dir, ".");
    else snprintf(dir, sizeof dir, "%.*s", slash == path ? 1 : (int)(slash - path), path);
    if (stat(dir, &st) == 0) {
        id.known = 1;
        id.dev = st.st_dev;
        id.ino = st.st_ino;
    }
    return id;
}

static int same_file(const file_id *a, const file_id *b) {
    if (!a->known || !b->known || a->exists != b->exists) return 0;
    if (a->dev != b->dev || a->ino != b->ino) return 0;
    return a->exists || strcmp(a->name, b->name) == 0;
}

/* What kind of non-regular file mode describes, for messages. */
static const char *kind_of(mode_t mode) {
    if (S_ISDIR(mode)) return "directory";
    if (S_ISCHR(mode)) return "character device";
    if (S_ISBLK(mode)) return "block device";
    if (S_ISFIFO(mode)) return "FIFO";
    if (S_ISSOCK(mode)) return "socket";
    return "not a regular file";
}

/* An output may be absent or a regular file, or a link to one. */
static int check_kind(const io_path *o, ml_error *e) {
    struct stat lst, st;
    if (lstat(o->path, &lst) != 0) return 0; /* absent: a new file */
    const int link = S_ISLNK(lst.st_mode);
    if (link && stat(o->path, &st) != 0)
        return ml_fail(e, "%s %s: a dangling symbolic link; refusing to write through it", o->flag,
                       o->path);
    if (!link) st = lst;
    if (S_ISREG(st.st_mode)) return 0;
    if (S_ISDIR(st.st_mode))
        return ml_fail(e, "%s %s: is a directory%s; refusing to replace it", o->flag, o->path,
                       link ? " (through a symbolic link)" : "");
    return ml_fail(e, "%s %s: not a regular file (%s%s); refusing to replace it", o->flag, o->path,
                   link ? "a symbolic link to a " : "", kind_of(st.st_mode));
}

int io_check(const io_path *paths, int n, ml_error *e) {
    for (int i = 0; i < n; i++) {
        const io_path *o = &paths[i];
        if (!o->is_output) continue;
        if (!o->path || !o->path[0]) return writable_probe(o->flag, "", e);
        if (check_kind(o, e)) return -1;
        const file_id out = identify(o->path);
        for (int j = 0; j < n; j++) {
            const io_path *p = &paths[j];
            if (j == i || !p->path || !p->path[0]) continue;
            if (p->is_output && j > i) continue; /* a pair of outputs is reported once */
            if (!p->is_output && o->replaces && strcmp(o->replaces, p->flag) == 0) continue;
            const file_id other = identify(p->path);
            if (!same_file(&out, &other)) continue;
            if (p->is_output)
                return ml_fail(e,
                               "%s %s: is also the output %s (%s); two outputs cannot share a "
                               "file",
                               o->flag, o->path, p->flag, p->path);
            return ml_fail(e, "%s %s: is also the input %s (%s); refusing to overwrite it", o->flag,
                           o->path, p->flag, p->path);
        }
        if (writable_probe(o->flag, o->path, e)) return -1;
    }
    return 0;
}
