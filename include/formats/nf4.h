/* nf4.h — 4-bit NormalFloat (NF4) blockwise quantization, the storage format of QLoRA's frozen
 * base (Dettmers et al. 2023, "QLoRA: Efficient Finetuning of Quantized LLMs"; the same code
 * table as bitsandbytes).
 *
 * Quantization of n floats: blocks of NF4_BLOCK = 64 consecutive values (the last block may be
 * shorter); each block's absmax a = max |w| (F32) is kept, every value becomes the index q of
 * the code nearest to w / a (exact midpoint comparison; a value exactly on a midpoint takes the
 * lower code; an all-zero block, a = 0, takes code 7 = 0.0). Dequantized: nf4_code[q] · a.
 * Codes are packed two per byte, element 2j in the high nibble and 2j+1 in the low nibble (as
 * bitsandbytes packs them); an odd n leaves the last low nibble 0.
 *
 * Double quantization (QLoRA §3, "quantizing the quantization constants"): the n_blocks absmax
 * values of one tensor lose their mean (F32, the double sum of the values divided by n_blocks),
 * then in blocks of NF4_DQ_BLOCK = 256 are quantized to int8 symmetrically: with s = the
 * block's max |a - mean|, q = rint((a - mean) / s · 127) in [-127, 127] (s = 0: q = 0), and
 * dequantized as q / 127 · s + mean. QLoRA's paper uses 8-bit floats and bitsandbytes its
 * dynamic 8-bit map for this second step; minilora uses the linear int8 code (error at most
 * s / 254 per scale), which is simpler to check by hand.
 *
 * The 4-bit codes are always computed from the exact F32 absmax; double quantization only
 * changes which absmax the dequantization multiplies by.
 *
 * The file layout of quantized tensors (a tensor <name> of n floats, B = nf4_n_blocks(n)):
 *   <name>.nf4            U8  [ceil(n/2)]    the packed codes
 *   <name>.absmax         F32 [B]            without double quantization
 *   <name>.absmax_q       I8  [B]            with double quantization: the int8 codes,
 *   <name>.absmax_scale   F32 [ceil(B/256)]  one scale s per 256 absmax values,
 *   <name>.absmax_mean    F32 [1]            the mean subtracted before.
 */
#ifndef NF4_H
#define NF4_H

#include <stddef.h>
#include <stdint.h>

#include "ml_error.h"
#include "safetensors.h"

#define NF4_BLOCK 64
#define NF4_DQ_BLOCK 256

/* The 16 NF4 code values, ascending, from -1 to 1 with nf4_code[7] = 0 (QLoRA, Appendix E). */
extern const float nf4_code[16];

/* Blocks of NF4_BLOCK for n values; bytes of packed codes for n values. */
size_t nf4_n_blocks(size_t n);
size_t nf4_n_packed(size_t n);
/* Blocks of NF4_DQ_BLOCK for nb absmax values. */
size_t nf4_n_dq_blocks(size_t nb);

/* Index (0..15) of the code nearest to x (ties: the lower code). x must not be NaN. */
int nf4_encode(float x);

/* Quantizes w[0..n) (finite values) into packed[nf4_n_packed(n)] and absmax[nf4_n_blocks(n)]. */
void nf4_quantize(uint8_t *packed, float *absmax, const float *w, size_t n);

/* w[0..n) = nf4_code[q] · absmax of its block. */
void nf4_dequantize(float *w, const uint8_t *packed, const float *absmax, size_t n);

/* Double quantization of absmax[0..nb): q[nb], scale[nf4_n_dq_blocks(nb)], *mean. */
void nf4_dq_quantize(int8_t *q, float *scale, float *mean, const float *absmax, size_t nb);

/* absmax[0..nb) = q / 127 · scale of its 256-block + mean. */
void nf4_dq_dequantize(float *absmax, const int8_t *q, const float *scale, float mean, size_t nb);

/* Adds the quantized tensors of w[0..n) under the names of the layout above. */
int nf4_write_tensor(st_writer *w, const char *name, const float *data, size_t n, int double_quant,
                     ml_error *e);

/* Reads quantized tensor <name> of n values from f into dst[0..n) (dequantized), checking every
 * part: dtype and length, the padding nibble, absmax and scales finite and not negative, the
 * mean finite, int8 codes in [-127, 127], the dequantized absmax finite. */
int nf4_read_tensor(const st_file *f, const char *name, float *dst, size_t n, int double_quant,
                    ml_error *e);

/* 1 if tensor name `part` is one of the stored parts of quantized tensor `name`. */
int nf4_is_part(const char *part, const char *name, int double_quant);

/* The code table as a JSON array of 16 numbers that read back to exactly nf4_code (the
 * "nf4_code" metadata). Caller frees; NULL when out of memory. */
char *nf4_code_json(void);

/* Checks a "nf4_code" metadata value: 16 numbers equal to nf4_code. label names the file. */
int nf4_check_code_json(const char *json, const char *label, ml_error *e);

#endif
