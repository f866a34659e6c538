/* atomic_file.c — crash-safe whole-file writes (temp file + fsync + rename) and bounded reads. */
#include "atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Writes all n bytes, retrying on EINTR and continuing after short writes. */
static int write_all(int fd, const uint8_t *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return -1;
        if (w == 0) { /* should not happen for a regular file; avoid spinning */
            errno = EIO;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The directory part of path as a malloc'ed string (caller frees): "." when there is no
 * slash, "/" for a file in the root. NULL when out of memory. */
static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    size_t len = slash == path ? 1 : (size_t)(slash - path);
    char *d = malloc(len + 1);
    if (!d) return NULL;
    memcpy(d, path, len);
    d[len] = '\0';
    return d;
}

/* Permission bits for the new file: those of the file being replaced, else 0644 (mkstemp
 * would leave 0600, which surprises users sharing checkpoints). */
static mode_t target_mode(const char *path) {
    struct stat st;
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) return st.st_mode & 07777;
    return 0644;
}

/* Refuses to replace anything but a regular file or a link to one (checked right before the
 * rename, whatever the callers checked earlier): 0, or -1 with what is there in *what. */
static int replaceable(const char *path, const char **what) {
    struct stat lst, st;
    if (lstat(path, &lst) != 0) return 0; /* a new file */
    if (stat(path, &st) != 0) {
        *what = "a dangling symbolic link";
        return -1;
    }
    if (S_ISREG(st.st_mode)) return 0;
    *what = S_ISDIR(st.st_mode)    ? "a directory"
            : S_ISCHR(st.st_mode)  ? "a character device"
            : S_ISBLK(st.st_mode)  ? "a block device"
            : S_ISFIFO(st.st_mode) ? "a FIFO"
                                   : "not a regular file";
    return -1;
}

/* Opens path's directory (*dfd) and creates the temporary file beside path (*fd, named *tmp,
 * mode of the file it will replace). *dir and *tmp are malloc'ed; on success the caller passes
 * them on to tmp_install or frees them; on failure everything is released and -1 returned. */
static int tmp_create(const char *path, char **dir_out, char **tmp_out, int *dfd_out, int *fd_out,
                      ml_error *e) {
    if (!path || !*path) return ml_fail(e, "atomic_write: empty path");
    char *dir = dir_of(path);
    size_t plen = strlen(path);
    char *tmp = malloc(plen + sizeof ".tmp.XXXXXX");
    if (!dir || !tmp) {
        free(dir);
        free(tmp);
        return ml_fail(e, "%s: out of memory", path);
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp.XXXXXX", sizeof ".tmp.XXXXXX");

    /* Open the directory first so that nothing is created when it is missing, and so that
     * the only step after the rename (its fsync) cannot fail for lack of a handle. */
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        int err = errno;
        ml_fail(e, "%s: cannot open directory '%s': %s", path, dir, strerror(err));
        free(dir);
        free(tmp);
        return -1;
    }
    const char *what = NULL;
    if (replaceable(path, &what)) {
        ml_fail(e, "%s: is %s; refusing to replace it", path, what);
        goto fail;
    }
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int err = errno;
        ml_fail(e, "%s: cannot create temporary file in '%s': %s", path, dir, strerror(err));
        goto fail;
    }
    if (fchmod(fd, target_mode(path)) != 0) {
        int err = errno;
        close(fd);
        unlink(tmp);
        ml_fail(e, "%s: chmod of temporary file failed: %s", path, strerror(err));
        goto fail;
    }
    *dir_out = dir;
    *tmp_out = tmp;
    *dfd_out = dfd;
    *fd_out = fd;
    return 0;
fail:
    close(dfd);
    free(dir);
    free(tmp);
    return -1;
}

/* Renames the complete, fsync'ed and closed temporary file over path (after checking once
 * more that path is absent or a regular file) and fsyncs the directory. Releases dir, tmp and
 * dfd in every case and removes tmp when path was not replaced. */
static int tmp_install(const char *path, char *dir, char *tmp, int dfd, ml_error *e) {
    int rc = 0;
    const char *what = NULL;
    if (replaceable(path, &what)) {
        unlink(tmp);
        rc = ml_fail(e, "%s: is %s; refusing to replace it", path, what);
    } else if (rename(tmp, path) != 0) {
        int err = errno;
        unlink(tmp);
        rc = ml_fail(e, "%s: rename of temporary file failed: %s", path, strerror(err));
    } else if (fsync(dfd) != 0 && errno != EINVAL) {
        /* The new content is in place; the directory fsync makes the rename durable. Some
         * file systems cannot fsync a directory (EINVAL), which is no reason to fail. */
        int err = errno;
        rc = ml_fail(e, "%s: written, but fsync of directory '%s' failed: %s", path, dir,
                     strerror(err));
    }
    close(dfd);
    free(dir);
    free(tmp);
    return rc;
}

int atomic_writev(const char *path, const void *const *pieces, const size_t *sizes, int npieces,
                  ml_error *e) {
    if (!path || !*path) return ml_fail(e, "atomic_write: empty path");
    if (npieces < 0 || (npieces > 0 && (!pieces || !sizes)))
        return ml_fail(e, "%s: invalid piece list", path);
    char *dir, *tmp;
    int dfd, fd;
    if (tmp_create(path, &dir, &tmp, &dfd, &fd, e)) return -1;
    const char *step = "write";
    for (int i = 0; i < npieces; i++)
        if (sizes[i] && write_all(fd, pieces[i], sizes[i]) != 0) goto fail_fd;
    step = "fsync";
    if (fsync(fd) != 0) goto fail_fd;
    step = "close";
    if (close(fd) != 0) { /* e.g. a deferred NFS write error */
        fd = -1;
        goto fail_fd;
    }
    return tmp_install(path, dir, tmp, dfd, e);

fail_fd : {
    int err = errno;
    if (fd >= 0) close(fd);
    unlink(tmp);
    ml_fail(e, "%s: %s of temporary file failed: %s", path, step, strerror(err));
}
    close(dfd);
    free(dir);
    free(tmp);
    return -1;
}

int atomic_stream_open(atomic_stream *s, const char *path, ml_error *e) {
    memset(s, 0, sizeof *s);
    s->dfd = -1;
    int fd;
    if (tmp_create(path, &s->dir, &s->tmp, &s->dfd, &fd, e)) return -1;
    if (!(s->f = fdopen(fd, "w"))) {
        int err = errno;
        close(fd);
        atomic_stream_abort(s);
        return ml_fail(e, "%s: cannot open temporary file: %s", path, strerror(err));
    }
    if (!(s->path = strdup(path))) {
        atomic_stream_abort(s);
        return ml_fail(e, "%s: out of memory", path);
    }
    return 0;
}

int atomic_stream_commit(atomic_stream *s, ml_error *e) {
    if (!s->f) return ml_fail(e, "atomic_stream_commit: no open stream");
    const char *step = "write";
    int err = 0;
    if (fflush(s->f) != 0 || ferror(s->f)) err = errno ? errno : EIO;
    else if (step = "fsync", fsync(fileno(s->f)) != 0) err = errno;
    if (fclose(s->f) != 0 && !err) {
        step = "close";
        err = errno;
    }
    s->f = NULL;
    char *path = s->path;
    s->path = NULL;
    if (err) {
        ml_fail(e, "%s: %s of temporary file failed: %s", path, step, strerror(err));
        atomic_stream_abort(s);
        free(path);
        return -1;
    }
    const int rc = tmp_install(path, s->dir, s->tmp, s->dfd, e);
    s->dir = s->tmp = NULL;
    s->dfd = -1;
    free(path);
    return rc;
}

void atomic_stream_abort(atomic_stream *s) {
    if (s->f) fclose(s->f);
    if (s->tmp) unlink(s->tmp);
    if (s->dir && s->dfd >= 0) close(s->dfd); /* a zeroed, never opened stream has dfd 0 */
    free(s->dir);
    free(s->tmp);
    free(s->path);
    memset(s, 0, sizeof *s);
    s->dfd = -1;
}

int atomic_write(const char *path, const void *data, size_t n, ml_error *e) {
    const void *pieces[1] = {data};
    size_t sizes[1] = {n};
    return atomic_writev(path, pieces, sizes, 1, e);
}

int open_regular(const char *path, int *fd, long long *size, ml_error *e) {
    /* O_NONBLOCK so that opening a FIFO cannot hang; non-regular files are refused below. */
    *fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (*fd < 0) return ml_fail(e, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(*fd, &st) != 0) {
        int err = errno;
        close(*fd);
        return ml_fail(e, "%s: cannot stat: %s", path, strerror(err));
    }
    if (!S_ISREG(st.st_mode)) {
        close(*fd);
        return ml_fail(e, "%s: not a regular file", path);
    }
    *size = (long long)st.st_size;
    return 0;
}

int read_file(const char *path, size_t max_bytes, char **data, size_t *n, ml_error *e) {
    *data = NULL;
    *n = 0;
    int fd;
    long long st_size;
    if (open_regular(path, &fd, &st_size, e)) return -1;
    if (st_size < 0 || (uintmax_t)st_size > max_bytes || (uintmax_t)st_size >= SIZE_MAX) {
        close(fd);
        return ml_fail(e, "%s: file is %lld bytes, more than the limit of %zu", path, st_size,
                       max_bytes);
    }
    size_t size = (size_t)st_size;
    char *buf = malloc(size + 1);
    if (!buf) {
        close(fd);
        return ml_fail(e, "%s: out of memory reading %zu bytes", path, size);
    }
    /* Read one byte past the expected size to notice a file that grows under us. */
    size_t got = 0;
    for (;;) {
        size_t want = got < size ? size - got : 1;
        char extra;
        ssize_t r = read(fd, got < size ? buf + got : &extra, want);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int err = errno;
            free(buf);
            close(fd);
            return ml_fail(e, "%s: read failed: %s", path, strerror(err));
        }
        if (r == 0) break;
        if (got >= size) {
            free(buf);
            close(fd);
            return ml_fail(e, "%s: file grew while being read", path);
        }
        got += (size_t)r;
    }
    close(fd);
    if (got != size) {
        free(buf);
        return ml_fail(e, "%s: file shrank while being read (%zu of %zu bytes)", path, got, size);
    }
    buf[size] = '\0';
    *data = buf;
    *n = size;
    return 0;
}
