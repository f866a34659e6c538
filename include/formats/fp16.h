/* fp16.h — IEEE 754 binary16 <-> binary32 conversion.
 *
 * float -> half rounds to nearest, ties to even. A finite float whose rounded value would
 * exceed the largest finite half (65504) is an overflow, and NaN or inf cannot be stored in
 * an adapter either: both are reported as errors rather than silently becoming inf.
 * Subnormal halves are produced and read exactly.
 */
#ifndef FP16_H
#define FP16_H

#include <stddef.h>
#include <stdint.h>

#include "ml_error.h"

#define FP16_MAX 65504.0f

/* Converts one float. Returns 0 and stores the half in *out, or -1 if f is NaN, inf, or
 * rounds to a magnitude above FP16_MAX (then *out is left unchanged). */
int fp16_from_f32(float f, uint16_t *out);

/* Converts one half to float exactly (every half is representable as a float). */
float fp16_to_f32(uint16_t h);

/* Converts n floats into dst. On the first value that cannot be stored, returns -1 and fills
 * e with "<what>[<index>] = <value> does not fit in fp16 (max 65504)" (or "is not finite");
 * dst is then partially written. `what` names the tensor for the message. */
int fp16_from_f32_array(uint16_t *dst, const float *src, size_t n, const char *what, ml_error *e);

/* Converts n halves into floats. Never fails. */
void fp16_to_f32_array(float *dst, const uint16_t *src, size_t n);

#endif
