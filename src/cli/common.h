/* common.h — small helpers shared by the commands. */
#ifndef COMMON_H
#define COMMON_H

#include "ml_error.h"

/* Prints "cmd: msg (see cmd --help)" and returns the usage exit status (2). */
int usage_fail(const char *cmd, const char *msg);

/* Fails early, before hours of work, if path's directory is missing or not writable or path
 * is a directory: creates and removes a temporary file beside it. */
int check_writable(const char *path, ml_error *e);

/* SIGINT and SIGTERM set train_stop_signal so a training loop can stop cleanly. */
void install_stop_handlers(void);

#endif
