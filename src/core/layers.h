/* layers.h — the model's operations as forward/backward pairs (internal to the core).
 *
 * Argument order, as in llm.c: outputs, saved activations, inputs, weights, dimensions.
 * Backward functions accumulate (+=) into parameter gradients. Input gradients are accumulated
 * where a buffer has two sources (the residual stream, q/k/v into one LayerNorm) and written
 * (=) where the caller asks or the function is the buffer's only writer — that saves clearing
 * buffers before every use. Gradient pointers for frozen weights may be NULL and are skipped.
 * Shapes use the legend of minigpt.h; N is the number of rows (B*T).
 */
#ifndef LAYERS_H
#define LAYERS_H

/* out[n] = wte[tokens[n]] */
void encoder_forward(float *out, const int *tokens, const float *wte, int N, int C);
// out (N,C), tokens (N), wte (V,C)
void encoder_backward(float *dwte, const float *dout, const int *tokens, int N, int C);

/* LayerNorm over C with weight and bias; mean and rstd saved for the backward. */
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                       const float *b, int N, int C, float eps);
/* dinp += (or, with overwrite, =) the input gradient; dw, db +=. */
void layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                        const float *w, const float *mean, const float *rstd, int N, int C,
                        int overwrite);

/* out (N,Out) = inp (N,In) · Wᵀ + b, W (Out,In), b (Out) or NULL. */
void matmul_forward(float *out, const float *inp, const float *w, const float *b, int N, int In,
                    int Out);
/* dinp (N,In) += dout·W (= with overwrite);  dw (Out,In) += doutᵀ·inp;  db (Out) += Σ_n dout.
 * dinp, dw, db may be NULL. */
void matmul_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                     const float *w, int N, int In, int Out, int overwrite);

/* Rotary embedding in place on x (B,T,C): within each head, pair (2i, 2i+1) at position t is
 * rotated by angle t·θ_i. cos, sin are (context, HS/2) tables. */
void rope_forward(float *x, const float *cos, const float *sin, int B, int T, int C, int NH);
/* rope_forward on n rows per sequence whose first sits at position pos[b] (incremental
 * decoding): x (B,n,C), row (b,i) rotated for position pos[b]+i. With every pos 0 and n = T it
 * is rope_forward, bit for bit. */
void rope_forward_at(float *x, const float *cos, const float *sin, const int *pos, int B, int n,
                     int C, int NH);
/* The inverse rotation (the transpose of the forward) applied to a gradient in place. */
void rope_backward(float *dx, const float *cos, const float *sin, int B, int T, int C, int NH);

/* Causal self-attention: out (B,T,C) = softmax(q·kᵀ/√HS + causal mask)·v per head;
 * att (B,NH,T,T) keeps the probabilities. */
void attention_forward(float *out, float *att, const float *q, const float *k, const float *v,
                       int B, int T, int C, int NH);
/* attention_forward against a key/value cache (incremental decoding, no probabilities kept):
 * out (B,n,C) for queries q (B,n,C) at positions pos[b]..pos[b]+n-1 of row b, against keys and
 * values kc, vc (B,ctx,C) that hold positions 0..pos[b]+n-1 (the new ones included). Each
 * output row goes through the same operations in the same order as attention_forward's row at
 * that position: with every pos 0 and n = T the outputs are attention_forward's, bit for bit. */
void attention_forward_cached(float *out, const float *q, const float *kc, const float *vc,
                              const int *pos, int B, int n, int ctx, int C, int NH);
/* dq, dk, dv (B,T,C) = the gradients (written, not accumulated); datt (T,T) is scratch. */
void attention_backward(float *dq, float *dk, float *dv, float *datt, const float *dout,
                        const float *att, const float *q, const float *k, const float *v, int B,
                        int T, int C, int NH);

/* GELU with the tanh approximation: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). */
void gelu_forward(float *out, const float *inp, int n);
/* dinp = dout · GELU'(inp) (written; dinp may be dout itself) */
void gelu_backward(float *dinp, const float *inp, const float *dout, int n);

/* out = a + b, elementwise over n. */
void residual_forward(float *out, const float *a, const float *b, int n);

#endif
