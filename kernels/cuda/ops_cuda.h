// ops_cuda.h: the CUDA backend's ops: cuda_<op> has exactly the signature of
// <op> in ../ops.h (kernels/dispatch.c checks it at compile time), with every
// tensor pointer in device memory (the host-side arguments stay host values:
// sizes, scalars, act_kind). Float only: the double build never routes here.
// All work is queued on sb_cuda_stream(); an op returns before its kernels
// finish unless it returns a value computed on the device (sum_squares,
// crossentropy_forward's count), which waits for them; the training step
// uses the forms that keep such values on the device (loss.cu).
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
// The opt-in limit of dynamic shared memory per block on the backend's
// device, in bytes (cudaDevAttrMaxSharedMemoryPerBlockOptin), asked once
// (kernels/cuda/cuda_common.cu): what a kernel may request through
// cudaFuncSetAttribute, and what the scans' automatic form choice checks.
size_t sb_cuda_smem_optin(void);
// 1 when cuBLAS runs gemms in TF32 (cuda_ops_init read STATEBENCH_TF32=1,
// or cuda_ops_set_tf32(1) since: train.precision tf32).
int cuda_ops_tf32(void);
void cuda_ops_set_tf32(int on);
// 1 when matmul_forward / matmul_backward run as bf16 gemms with fp32
// accumulation (cuda_ops_set_bf16(1): train.precision bf16); off at start.
int cuda_ops_bf16(void);
void cuda_ops_set_bf16(int on);
void *cuda_ops_alloc(size_t bytes); // zeroed; NULL when out of memory
void cuda_ops_free(void *p);
void cuda_ops_upload(void *dst, const void *src, size_t bytes);
void cuda_ops_download(void *dst, const void *src, size_t bytes);
void cuda_ops_sync(void);
// Stream capture of the backend's stream and replay (graph.cu): ops.h's
// ops_capture_begin, ops_capture_end, ops_graph_launch, ops_graph_free.
int cuda_capture_begin(char *err, size_t errlen);
void *cuda_capture_end(char *err, size_t errlen);
void cuda_graph_launch(void *graph);
void cuda_graph_free(void *graph);
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
                             int B, int T, int C, int V);
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
// the training step's ops that keep their scalars on the device (loss.cu)
void cuda_crossentropy_rows_forward(real *losses, real *probs, const real *logits,
                                    const int *targets, int N, int V);
void cuda_argmax_rows(int *pred, const real *probs, int N, int V);
void cuda_sum_squares_into(double *out, const real *x, size_t n);
void cuda_crossentropy_backward_step(real *dlogits, const real *probs, const int *targets, int N,
                                     int V, const step_scalars *s);
void cuda_step_guard_update(step_guard *g, const real *loss_sum, double clip, const step_scalars *s);
void cuda_adamw_update_guarded(real *p, real *g, real *m, real *v, size_t n, real beta1, real beta2,
                               real eps, real weight_decay, const step_scalars *s,
                               const step_guard *guard);
void cuda_silu_gate_forward(real *out, const real *x, const real *g, size_t n);
void cuda_silu_gate_backward(real *dx, real *dg, const real *dout, const real *x,
                             const real *g, size_t n);

// ---- positions, attention, scan_delta, lstm (attention.cu, scan_delta.cu, lstm.cu)
void cuda_rope_forward(real *out, const real *inp, int B, int T, int H, int D, real theta);
void cuda_rope_backward(real *dinp, const real *dout, int B, int T, int H, int D, real theta);
size_t cuda_attention_cache_len(int B, int T, int H, int D);
void cuda_attention_forward(real *out, real *att, const real *q, const real *k, const real *v,
                            int B, int T, int H, int D);
size_t cuda_attention_scratch_len(int B, int T, int H);
void cuda_attention_backward(real *dq, real *dk, real *dv, real *scratch, const real *dout,
                             const real *att, const real *q, const real *k, const real *v, int B, int T, int H, int D);
size_t cuda_scan_delta_cache_len(int B, int T, int H, int K, int V);
void cuda_scan_delta_forward(real *o, real *states, const real *q, const real *k,
                             const real *v, const real *beta, const real *alpha, int B, int T, int H, int K, int V, real scale);
size_t cuda_scan_delta_scratch_len(int B, int T, int H, int K, int V);
// 1 when OPS_SCAN_AUTO runs scan_delta's chunked form (scan_delta_chunk.cu), 0 the recurrent one
int cuda_scan_delta_use_chunked(int T, int K, int V);
void cuda_scan_delta_backward(real *dq, real *dk, real *dv, real *dbeta, real *dalpha,
                              real *scratch, const real *dout, const real *states, const real *q, const real *k, const real *v, const real *beta, const real *alpha, int B, int T, int H, int K, int V, real scale);
void cuda_lstm_forward(real *h, real *c, real *gates, const real *gx, const real *R, int B,
                       int T, int d);
size_t cuda_lstm_scratch_len(int B, int d);
void cuda_lstm_backward(real *dgx, real *dR, real *scratch, const real *dh, const real *h,
                        const real *c, const real *gates, const real *R, int B, int T, int d);

// ---- rnn_cell: elman, gru, slstm (rnn_cell.cu); scratch grows with T ------
size_t cuda_elman_scratch_len(int B, int T, int d, int H);
void cuda_elman_forward(real *h, real *scratch, const real *gx, const real *R, int B, int T,
                        int d, int H);
void cuda_elman_backward(real *dgx, real *dR, real *scratch, const real *dh, const real *h,
                         const real *R, int B, int T, int d, int H);
size_t cuda_gru_scratch_len(int B, int T, int d, int H);
void cuda_gru_forward(real *h, real *gates, real *scratch, const real *gx, const real *R, int B,
                      int T, int d, int H);
void cuda_gru_backward(real *dgx, real *dR, real *scratch, const real *dh, const real *h,
                       const real *gates, const real *R, int B, int T, int d, int H);
size_t cuda_slstm_scratch_len(int B, int T, int d, int H);
void cuda_slstm_forward(real *h, real *c, real *n, real *gates, real *scratch, const real *gx,
                        const real *R, int B, int T, int d, int H);
void cuda_slstm_backward(real *dgx, real *dR, real *scratch, const real *dh, const real *h,
                         const real *c, const real *n, const real *gates, const real *R, int B,
                         int T, int d, int H);

// ---- diagonal recurrences' gates (gates.cu) -------------------------------
void cuda_mingru_gates_forward(real *a, real *b, const real *pz, const real *ph, size_t n,
                               int eigen_signed);
void cuda_mingru_gates_backward(real *dpz, real *dph, const real *da, const real *db,
                                const real *pz, const real *ph, size_t n, int eigen_signed);
void cuda_minlstm_gates_forward(real *a, real *b, const real *pf, const real *pi, const real *ph,
                                size_t n);
void cuda_minlstm_gates_backward(real *dpf, real *dpi, real *dph, const real *da, const real *db,
                                 const real *pf, const real *pi, const real *ph, size_t n);
void cuda_hgrn_gates_forward(real *a, real *b, const real *pf, const real *pi, size_t n,
                             int eigen_signed);
void cuda_hgrn_gates_backward(real *dpf, real *dpi, const real *da, const real *db,
                              const real *pf, const real *pi, size_t n, int eigen_signed);

// ---- scan_diag real and complex, lru, s4d (scan_diag.cu); s4d's cache is
// the CPU's layout, its scratch its own length -------------------------------
void cuda_scan_diag_forward(real *h, const real *a, const real *b, int B, int T, int C);
void cuda_scan_diag_backward(real *da, real *db, const real *dh, const real *h, const real *a,
                             int B, int T, int C);
void cuda_scan_diag_complex_forward(real *h, const real *a, const real *x, int B, int T, int C);
void cuda_scan_diag_complex_backward(real *dx, real *da, const real *dh, const real *h,
                                     const real *a, int B, int T, int C);
void cuda_lru_params_forward(real *lambda, real *B_norm, const real *nu_log,
                             const real *theta_log, const real *B, int N, int H);
void cuda_lru_params_backward(real *dnu_log, real *dtheta_log, real *dB, const real *dlambda,
                              const real *dB_norm, const real *nu_log, const real *theta_log,
                              const real *B, int N, int H);
size_t cuda_s4d_scan_cache_len(int B, int T, int C, int M);
void cuda_s4d_scan_forward(real *y, real *cache, const real *u, const real *log_dt,
                           const real *A_re_log, const real *A_im, const real *Cm, const real *D,
                           int B, int T, int C, int M);
size_t cuda_s4d_scan_scratch_len(int B, int T, int C, int M);
void cuda_s4d_scan_backward(real *du, real *dlog_dt, real *dA_re_log, real *dA_im, real *dCm,
                            real *dD, real *scratch, const real *dy, const real *cache,
                            const real *u, const real *log_dt, const real *A_re_log,
                            const real *A_im, const real *Cm, const real *D, int B, int T, int C,
                            int M);

// ---- selective_scan (selective_scan.cu): the CPU's cache layout; own scratch
size_t cuda_selective_scan_cache_len(int B, int T, int Di, int N);
void cuda_selective_scan_forward(real *y, real *cache, const real *u, const real *dt_pre,
                                 const real *A_log, const real *Bm, const real *Cm,
                                 const real *D, const real *z, int eigen_signed, int B, int T,
                                 int Di, int N);
size_t cuda_selective_scan_scratch_len(int B, int T, int Di, int N);
void cuda_selective_scan_backward(real *du, real *ddt_pre, real *dA_log, real *dBm, real *dCm,
                                  real *dD, real *dz, real *scratch, const real *dy,
                                  const real *cache, const real *u, const real *dt_pre,
                                  const real *Bm, const real *Cm, const real *D, const real *z,
                                  int eigen_signed, int B, int T, int Di, int N);

// ---- mamba2's pointwise ops (ssd.cu) ----------------------------------------
void cuda_ssd_decay_forward(real *dt, real *alpha, const real *dt_pre, const real *A_log,
                            int eigen_signed, int R, int H);
void cuda_ssd_decay_backward(real *ddt_pre, real *dA_log, const real *ddt, const real *dalpha,
                             const real *dt_pre, const real *A_log, int eigen_signed, int R,
                             int H);
void cuda_head_repeat_forward(real *out, const real *inp, int R, int H, int K);
void cuda_head_repeat_backward(real *dinp, const real *dout, int R, int H, int K);
void cuda_head_scale_forward(real *out, const real *inp, const real *s, int R, int H, int P);
void cuda_head_scale_backward(real *dinp, real *ds, const real *dout, const real *inp,
                              const real *s, int R, int H, int P);
void cuda_skip_add_forward(real *y, const real *x, const real *D, int R, int G, int P);
void cuda_skip_add_backward(real *dx, real *dD, const real *dy, const real *x, const real *D,
                            int R, int G, int P);

// ---- gla's scan and the delta family's gates (scan_delta_vec.cu); the scan
// uses scan_delta's cache and scratch lengths
void cuda_scan_delta_vec_forward(real *o, real *states, const real *q, const real *k,
                                 const real *v, const real *alpha, int B, int T, int H, int K,
                                 int V, real scale);
void cuda_scan_delta_vec_backward(real *dq, real *dk, real *dv, real *dalpha, real *scratch,
                                  const real *dout, const real *states, const real *q,
                                  const real *k, const real *v, const real *alpha, int B, int T,
                                  int H, int K, int V, real scale);
// Under OPS_SCAN_AUTO, 1 when the scan above runs its chunked form
// (scan_delta_vec_chunk.cu; unmeasured threshold, see there).
int cuda_scan_delta_vec_use_chunked(int T, int K, int V);
void cuda_sigmoid_pow_forward(real *out, const real *inp, size_t n, real p, int eigen_signed);
void cuda_sigmoid_pow_backward(real *dinp, const real *dout, const real *inp, size_t n, real p,
                               int eigen_signed);
void cuda_mlstm_gates_forward(real *fgate, real *igate, real *m, const real *f_pre,
                              const real *i_pre, int B, int T, int H);
void cuda_mlstm_gates_backward(real *df_pre, real *di_pre, const real *dfgate,
                               const real *digate, const real *dm, const real *fgate,
                               const real *igate, const real *m, const real *f_pre,
                               const real *i_pre, int B, int T, int H);
void cuda_mlstm_den_forward(real *den, const real *nq, const real *m, size_t n);
void cuda_mlstm_den_backward(real *dnq, real *dm, const real *dden, const real *nq, const real *m,
                             size_t n);
// row is host memory, as fill_rows's (its values travel as kernel arguments)
void cuda_fill_rows(real *out, const double *row, int N, int C);

#ifdef __cplusplus
}
#endif

#endif
