/* file_checks.h — what a job checks about its output paths before hours of work.
 *
 * The output rule, the same for every command: an output path is written only if it is absent
 * or a regular file (a symbolic link is followed: one to a regular file is fine, a dangling one
 * or one to anything else is refused); it may not be the same file (device and inode, after
 * resolving links; for paths that do not exist yet, the same name in the same directory) as
 * any input of the command or as another of its outputs; and its directory must be writable.
 * Every job that writes calls io_check on all of its paths before any work.
 */
#ifndef FILE_CHECKS_H
#define FILE_CHECKS_H

#include <stddef.h>

#include "ml_error.h"

/* One path a command reads or writes, with the flag that names it in messages. */
typedef struct {
    const char *flag;     /* "--out", "--val", "DATA", "--config", ... */
    const char *path;     /* NULL or "": not given, skipped (an output "" is an error) */
    int is_output;        /* 1: written by the command; 0: read */
    const char *replaces; /* outputs only: the flag of the one input this output may be, NULL
                           * for none; for an input read whole before the work starts and meant
                           * to be updated in place (lora-train's --state over its --resume) */
} io_path;

/* Fails early if path's directory is missing or not writable or path is a directory:
 * creates and removes a temporary file beside it. */
int check_writable(const char *path, ml_error *e);

/* Applies the output rule (above) to every output among paths[0..n). Returns 0, or -1 with one
 * line naming the output's flag and path and, for a clash, the other flag and path, e.g.
 * "--curve v.jsonl: is also the input --val (v.jsonl); refusing to overwrite it". */
int io_check(const io_path *paths, int n, ml_error *e);

#endif
