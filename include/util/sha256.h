/* sha256.h — SHA-256 (FIPS 180-4), used for base_sha256 in adapters and data provenance. */
#ifndef SHA256_H
#define SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "ml_error.h"

typedef struct {
    uint32_t state[8];
    uint64_t nbytes;
    uint8_t block[64];
    size_t block_len;
} sha256_ctx;

void sha256_init(sha256_ctx *c);
void sha256_update(sha256_ctx *c, const void *data, size_t n);
void sha256_final(sha256_ctx *c, uint8_t digest[32]);

/* One-shot digest of a buffer as 64 lowercase hex characters plus NUL, written to hex. */
void sha256_hex(const void *data, size_t n, char hex[65]);

/* Digest of a whole file as lowercase hex. Returns 0, or -1 with "<path>: <reason>". */
int sha256_file_hex(const char *path, char hex[65], ml_error *e);

#endif
