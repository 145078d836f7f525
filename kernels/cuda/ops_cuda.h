// ops_cuda.h: the CUDA backend's ops: cuda_<op> has exactly the signature of
// <op> in ../ops.h (kernels/dispatch.c checks it at compile time), with every
// tensor pointer in device memory (the host-side arguments stay host values:
// sizes, scalars, act_kind). Float only: the double build never routes here.
// All work is queued on sb_cuda_stream(); an op returns before its kernels
// finish unless it returns a value computed on the device (sum_squares,
// crossentropy_forward's count), which waits for them.
// Plain C declarations, so C (dispatch.c, the tests) and CUDA C++ share them.
#ifndef SB_OPS_CUDA_H
#define SB_OPS_CUDA_H

#include <stddef.h>
#include "../ops.h"

#ifdef __cplusplus
extern "C" {
#endif

// ---- backend (kernels/cuda/cuda_common.cu) --------------------------------
// Selects device 0 and creates the stream and cuBLAS handle; 0, or -1 with
// the reason in err (no driver, no device). Idempotent. TF32 tensor-core
// gemms only when the environment sets STATEBENCH_TF32=1 (see README).
int cuda_ops_init(char *err, size_t errlen);
// 1 when cuBLAS runs gemms in TF32 (cuda_ops_init read STATEBENCH_TF32=1).
int cuda_ops_tf32(void);
void *cuda_ops_alloc(size_t bytes); // zeroed; NULL when out of memory
void cuda_ops_free(void *p);
void cuda_ops_upload(void *dst, const void *src, size_t bytes);
void cuda_ops_download(void *dst, const void *src, size_t bytes);
void cuda_ops_sync(void);
// Free and total device memory in bytes (the runner's fit check).
void cuda_ops_memory(size_t *free_bytes, size_t *total_bytes);

// ---- dense, loss and optimiser (kernels/cuda/dense.cu, loss.cu) ------------
void cuda_matmul_forward(real *out, const real *inp, const real *weight, const real *bias,
                         int N, int C, int OC);
void cuda_matmul_backward(real *dinp, real *dweight, real *dbias, const real *dout,
                          const real *inp, const real *weight, int N, int C, int OC);
void cuda_embedding_forward(real *out, const int *tokens, const real *wte, const real *wpe,
                            int B, int T, int C);
void cuda_embedding_backward(real *dwte, real *dwpe, const real *dout, const int *tokens,
                             int B, int T, int C);
void cuda_rmsnorm_forward(real *out, real *rstd, const real *inp, const real *weight, int N, int C);
void cuda_rmsnorm_backward(real *dinp, real *dweight, const real *dout, const real *inp,
                           const real *weight, const real *rstd, int N, int C);
void cuda_l2norm_forward(real *out, real *rnorm, const real *inp, int N, int C);
void cuda_l2norm_backward(real *dinp, const real *dout, const real *inp, const real *rnorm,
                          int N, int C);
void cuda_act_forward(real *out, const real *inp, size_t n, act_kind kind);
void cuda_act_backward(real *dinp, const real *dout, const real *inp, size_t n, act_kind kind);
void cuda_swiglu_forward(real *out, const real *inp, int N, int H);
void cuda_swiglu_backward(real *dinp, const real *dout, const real *inp, int N, int H);
void cuda_conv4_silu_forward(real *out, real *pre, const real *inp, const real *w, int B,
                             int T, int C);
void cuda_conv4_silu_backward(real *dinp, real *dw, const real *dout, const real *inp,
                              const real *pre, const real *w, int B, int T, int C);
void cuda_residual_add(real *h, const real *x, size_t n);
void cuda_scale_inplace(real *x, size_t n, real s);
double cuda_sum_squares(const real *x, size_t n);
void cuda_rowdiv_forward(real *out, const real *num, const real *den, int N, int C, real eps);
void cuda_rowdiv_backward(real *dnum, real *dden, const real *dout, const real *num,
                          const real *den, int N, int C, real eps);
int cuda_crossentropy_forward(real *losses, real *probs, const real *logits,
                              const int *targets, int N, int V);
void cuda_crossentropy_backward(real *dlogits, const real *probs, const int *targets, int N,
                                int V, real dloss);
void cuda_adamw_update(real *p, const real *g, real *m, real *v, size_t n, real lr, real beta1,
                       real beta2, real eps, real weight_decay, int t);
void cuda_silu_gate_forward(real *out, const real *x, const real *g, size_t n);
void cuda_silu_gate_backward(real *dx, real *dg, const real *dout, const real *x,
                             const real *g, size_t n);

// ---- positions, attention, scan_delta, lstm (attention.cu, scan_delta.cu, lstm.cu)
void cuda_rope_forward(real *out, const real *inp, int B, int T, int H, int D, real theta);
void cuda_rope_backward(real *dinp, const real *dout, int B, int T, int H, int D, real theta);
void cuda_attention_forward(real *out, real *att, const real *q, const real *k, const real *v,
                            int B, int T, int H, int D);
size_t cuda_attention_scratch_len(int B, int T, int H);
void cuda_attention_backward(real *dq, real *dk, real *dv, real *scratch, const real *dout,
                             const real *att, const real *q, const real *k, const real *v, int B, int T, int H, int D);
size_t cuda_scan_delta_cache_len(int B, int T, int H, int K, int V);
void cuda_scan_delta_forward(real *o, real *states, const real *q, const real *k,
                             const real *v, const real *beta, const real *alpha, int B, int T, int H, int K, int V, real scale);
size_t cuda_scan_delta_scratch_len(int B, int T, int H, int K, int V);
void cuda_scan_delta_backward(real *dq, real *dk, real *dv, real *dbeta, real *dalpha,
                              real *scratch, const real *dout, const real *states, const real *q, const real *k, const real *v, const real *beta, const real *alpha, int B, int T, int H, int K, int V, real scale);
void cuda_lstm_forward(real *h, real *c, real *gates, const real *gx, const real *R, int B,
                       int T, int d);
size_t cuda_lstm_scratch_len(int B, int d);
void cuda_lstm_backward(real *dgx, real *dR, real *scratch, const real *dh, const real *h,
                        const real *c, const real *gates, const real *R, int B, int T, int d);

#ifdef __cplusplus
}
#endif

#endif
