/* file_checks.h — what a job checks about its output paths before hours of work. */
#ifndef FILE_CHECKS_H
#define FILE_CHECKS_H

#include <stddef.h>

#include "ml_error.h"

/* Fails early if path's directory is missing or not writable or path is a directory:
 * creates and removes a temporary file beside it. */
int check_writable(const char *path, ml_error *e);

/* Fails when path is one of the n input files (the same file, by device and inode; NULL and
 * "" entries are skipped): an output must never overwrite what the command reads. */
int check_not_input(const char *path, const char *const *inputs, int n, ml_error *e);

#endif
