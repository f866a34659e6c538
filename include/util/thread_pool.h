/* thread_pool.h — a fixed set of worker threads that run one function on every thread at once.
 *
 * The training step and the evaluator split a batch across threads by sequence; each thread
 * works on its own rows with single-threaded BLAS. Which rows a thread gets is fixed by the
 * caller, so results do not depend on scheduling.
 */
#ifndef THREAD_POOL_H
#define THREAD_POOL_H

typedef struct pool pool;

/* A pool of n threads in all: the caller plus n-1 workers. NULL when threads cannot be made.
 * Free with pool_free. */
pool *pool_new(int n);
void pool_free(pool *p);

int pool_size(const pool *p);

/* Runs fn(ctx, tid, n) on every thread, tid = 0 (the caller) .. n-1, and returns when all
 * have finished. Not reentrant. */
void pool_run(pool *p, void (*fn)(void *ctx, int tid, int n), void *ctx);

#endif
