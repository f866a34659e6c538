/* safetensors.h — strict reader and atomic writer for the safetensors format.
 *
 * Layout of a file: 8-byte little-endian header length N, N bytes of JSON header, then the
 * data section. The header maps tensor names to {"dtype", "shape", "data_offsets": [begin,
 * end]} (offsets relative to the data section) and may hold "__metadata__", a string->string
 * map. Tensors are row-major, little-endian.
 *
 * The reader trusts nothing in the file: the header length must fit in the file, the header
 * must be a JSON object, every tensor needs a known dtype, a shape of non-negative sizes whose
 * byte count does not overflow and equals end - begin, and offsets that lie inside the data
 * section, do not overlap, and leave no unindexed bytes (as the reference implementation
 * demands). Duplicate names are refused. Every failure is one line naming the file and, where
 * there is one, the tensor.
 */
#ifndef SAFETENSORS_H
#define SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "ml_error.h"

typedef enum { ST_F32 = 0, ST_F16 = 1, ST_I32 = 2, ST_I64 = 3, ST_U8 = 4, ST_I8 = 5 } st_dtype;

#define ST_MAX_DIMS 4
#define ST_MAX_HEADER (100u << 20) /* refuse headers above 100 MiB, as the reference does */

typedef struct {
    char *name; /* owned by the st_file */
    st_dtype dtype;
    int ndim; /* 0 (a scalar) .. ST_MAX_DIMS */
    int64_t shape[ST_MAX_DIMS];
    size_t numel;      /* product of shape (1 for a scalar) */
    size_t begin, end; /* byte offsets inside the data section */
} st_tensor;

typedef struct {
    char *label;    /* path (or label) used in messages; owned */
    uint8_t *bytes; /* the whole file; owned */
    size_t size;
    size_t data_start; /* 8 + header length */
    int n_tensors;
    st_tensor *tensors; /* in data order (ascending offsets); owned */
    int n_meta;
    char **meta_keys, **meta_values; /* the __metadata__ map; owned */
} st_file;

/* Name of a dtype as written in headers ("F32", ...). Static string. */
const char *st_dtype_name(st_dtype d);

/* Size in bytes of one element. */
size_t st_dtype_size(st_dtype d);

/* Reads and validates a file (at most 4 GiB, read whole into memory). On success fills *f
 * (release with st_close). On failure returns -1, fills e, and leaves *f zeroed (st_close on
 * it is harmless). Numbers in the header must be plain integer literals below 2^53. */
int st_open(st_file *f, const char *path, ml_error *e);

/* Validates a file already in memory. Takes ownership of bytes (a malloc'ed buffer of size
 * bytes) whether it succeeds or not; label names the source in messages. Used by st_open and
 * by the fuzz target. */
int st_parse(st_file *f, const char *label, uint8_t *bytes, size_t size, ml_error *e);

/* Frees everything owned by f and zeroes it. */
void st_close(st_file *f);

/* The tensor with this name, or NULL. Pointer owned by f. */
const st_tensor *st_find(const st_file *f, const char *name);

/* The __metadata__ value for key, or NULL. Pointer owned by f. */
const char *st_meta(const st_file *f, const char *key);

/* Copies tensor `name` into dst as floats. The tensor must exist, have dtype `want` (ST_F32
 * or ST_F16, converted exactly), exactly the given shape, and only finite values.
 * Errors: "<file>: tensor 'x' not found" / "has dtype F16, expected F32" /
 * "has shape [64, 32], expected [64, 64]" / "element 17 is NaN". */
int st_read_f32(const st_file *f, const char *name, st_dtype want, float *dst, int ndim,
                const int64_t *shape, ml_error *e);

/* Copies an I32 tensor with exactly the given shape into dst. */
int st_read_i32(const st_file *f, const char *name, int32_t *dst, int ndim, const int64_t *shape,
                ml_error *e);

/* Copies a one-byte tensor (want: ST_U8 or ST_I8) with exactly the given shape into dst, byte
 * for byte (an I8 element is its two's complement byte). */
int st_read_u8(const st_file *f, const char *name, st_dtype want, uint8_t *dst, int ndim,
               const int64_t *shape, ml_error *e);

/* ---- writer ---------------------------------------------------------------------------- */

typedef struct st_writer st_writer;

/* A new, empty writer (caller frees with st_writer_free), or NULL when out of memory. */
st_writer *st_writer_new(void);
void st_writer_free(st_writer *w);

/* Adds a tensor, copying the data now. dtype ST_F32 stores the floats bit-exactly; ST_F16
 * rounds to nearest even and fails (naming the tensor and element) on a value that is not
 * finite or does not fit in fp16. A duplicate name is an error. Tensors are laid out in the
 * order they are added. */
int st_writer_add_f32(st_writer *w, const char *name, st_dtype dtype, const float *data, int ndim,
                      const int64_t *shape, ml_error *e);

/* Adds an I32 tensor (copied now). */
int st_writer_add_i32(st_writer *w, const char *name, const int32_t *data, int ndim,
                      const int64_t *shape, ml_error *e);

/* Adds a one-byte tensor (dtype ST_U8 or ST_I8; I8 elements as two's complement bytes),
 * copied now. */
int st_writer_add_u8(st_writer *w, const char *name, st_dtype dtype, const uint8_t *data, int ndim,
                     const int64_t *shape, ml_error *e);

/* Sets a __metadata__ entry (copied; a key set twice keeps the last value). */
int st_writer_meta(st_writer *w, const char *key, const char *value, ml_error *e);

/* Serializes to a malloc'ed buffer (caller frees): header padded with spaces to a multiple of
 * 8 bytes, then the payload. */
int st_writer_serialize(const st_writer *w, uint8_t **out, size_t *n, ml_error *e);

/* Serializes and writes the file atomically (see atomic_file.h). */
int st_writer_save(const st_writer *w, const char *path, ml_error *e);

#endif
