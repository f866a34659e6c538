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

int atomic_writev(const char *path, const void *const *pieces, const size_t *sizes, int npieces,
                  ml_error *e) {
    if (!path || !*path) return ml_fail(e, "atomic_write: empty path");
    if (npieces < 0 || (npieces > 0 && (!pieces || !sizes)))
        return ml_fail(e, "%s: invalid piece list", path);

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
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int err = errno;
        ml_fail(e, "%s: cannot create temporary file in '%s': %s", path, dir, strerror(err));
        goto fail_dir;
    }
    const char *step = "chmod";
    if (fchmod(fd, target_mode(path)) != 0) goto fail_fd;
    step = "write";
    for (int i = 0; i < npieces; i++)
        if (sizes[i] && write_all(fd, pieces[i], sizes[i]) != 0) goto fail_fd;
    step = "fsync";
    if (fsync(fd) != 0) goto fail_fd;
    step = "close";
    if (close(fd) != 0) { /* e.g. a deferred NFS write error */
        fd = -1;
        goto fail_fd;
    }
    fd = -1;
    step = "rename";
    if (rename(tmp, path) != 0) goto fail_fd;

    /* The new content is in place; the directory fsync makes the rename durable. Some file
     * systems cannot fsync a directory (EINVAL), which is no reason to fail. */
    if (fsync(dfd) != 0 && errno != EINVAL) {
        int err = errno;
        ml_fail(e, "%s: written, but fsync of directory '%s' failed: %s", path, dir,
                strerror(err));
        close(dfd);
        free(dir);
        free(tmp);
        return -1;
    }
    close(dfd);
    free(dir);
    free(tmp);
    return 0;

fail_fd: {
    int err = errno;
    if (fd >= 0) close(fd);
    unlink(tmp);
    ml_fail(e, "%s: %s of temporary file failed: %s", path, step, strerror(err));
}
fail_dir:
    close(dfd);
    free(dir);
    free(tmp);
    return -1;
}

int atomic_write(const char *path, const void *data, size_t n, ml_error *e) {
    const void *pieces[1] = {data};
    size_t sizes[1] = {n};
    return atomic_writev(path, pieces, sizes, 1, e);
}

int read_file(const char *path, size_t max_bytes, char **data, size_t *n, ml_error *e) {
    *data = NULL;
    *n = 0;
    /* O_NONBLOCK so that opening a FIFO cannot hang; non-regular files are refused below. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return ml_fail(e, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int err = errno;
        close(fd);
        return ml_fail(e, "%s: cannot stat: %s", path, strerror(err));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return ml_fail(e, "%s: not a regular file", path);
    }
    if (st.st_size < 0 || (uintmax_t)st.st_size > max_bytes ||
        (uintmax_t)st.st_size >= SIZE_MAX) {
        close(fd);
        return ml_fail(e, "%s: file is %jd bytes, more than the limit of %zu", path,
                       (intmax_t)st.st_size, max_bytes);
    }
    size_t size = (size_t)st.st_size;
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
