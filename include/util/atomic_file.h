/* atomic_file.h — write a whole file so that a crash never leaves a half-written file.
 *
 * The bytes go to a temporary file in the destination's directory ("<path>.tmp.XXXXXX"),
 * which is fsync'ed and then renamed over <path>; the directory is fsync'ed after the rename.
 * On any failure the temporary file is removed and <path> is left exactly as it was (the one
 * exception: if only the final directory fsync fails, the new content is already in place and
 * the error says so). The new file keeps the permission bits of the file it replaces, or gets
 * 0644. The directory must exist; it is not created. An existing path that is not a regular
 * file (a device, FIFO, directory, dangling symbolic link, or a link to one of those) is never
 * replaced: checked before the temporary file is made and again right before the rename.
 */
#ifndef ATOMIC_FILE_H
#define ATOMIC_FILE_H

#include <stddef.h>
#include <stdio.h>

#include "ml_error.h"

/* Writes n bytes (from one buffer) to path atomically. Returns 0, or -1 with
 * "<path>: <what failed>: <strerror>" in e. */
int atomic_write(const char *path, const void *data, size_t n, ml_error *e);

/* Same, with the content given as a list of pieces written in order (header + payload). */
int atomic_writev(const char *path, const void *const *pieces, const size_t *sizes, int npieces,
                  ml_error *e);

/* A file written piece by piece (a learning curve, row by row) with the same guarantee: the
 * rows go to the temporary file, and path changes only at atomic_stream_commit. */
typedef struct {
    FILE *f; /* write the content here (stdio) */
    char *path, *tmp, *dir;
    int dfd;
} atomic_stream;

/* Creates the temporary file beside path. Returns 0, or -1 with e filled (s is then released).
 * The stream owns its memory until atomic_stream_commit or atomic_stream_abort. */
int atomic_stream_open(atomic_stream *s, const char *path, ml_error *e);

/* Flushes, fsyncs and closes the temporary file and renames it over path. Releases s in every
 * case; on failure path is left as it was and the temporary file is removed. */
int atomic_stream_commit(atomic_stream *s, ml_error *e);

/* Closes and removes the temporary file; path is untouched. A zeroed (never opened) or
 * already released stream is fine. */
void atomic_stream_abort(atomic_stream *s);

/* Reads a whole file into a malloc'ed buffer (caller frees) with a terminating NUL byte
 * after the data (not counted in *n), so text files can be parsed in place.
 * Returns 0, or -1 with "<path>: <reason>" (then *data is NULL). Refuses files larger than
 * max_bytes and anything that is not a regular file (directories, FIFOs, devices). */
int read_file(const char *path, size_t max_bytes, char **data, size_t *n, ml_error *e);

/* Opens path for reading, refusing anything but a regular file (a FIFO cannot hang the open).
 * On success *fd is the caller's to close and *size the file's size in bytes. */
int open_regular(const char *path, int *fd, long long *size, ml_error *e);

#endif
