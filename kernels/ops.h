/* ops.h: the backend-neutral op API. models/ are written only in terms of
 * these functions and never touch tensor elements themselves.
 *
 * Conventions (llm.c style):
 *  - argument order: outputs, caches, inputs, parameters, dimensions;
 *  - every pointer carries its shape in a comment, row-major, last index fastest;
 *  - *_backward ADDS (+=) into every gradient it produces, activation
 *    gradients included; callers zero gradient buffers before the backward;
 *  - ops never allocate: any scratch memory is passed in, sized by a *_len()
 *    helper, so a training step allocates nothing;
 *  - sizes are int for dimensions and size_t for element counts.
 * The CPU backend lives in kernels/cpu/ (OpenBLAS + loops + OpenMP). */
#ifndef SB_OPS_H
#define SB_OPS_H

#include <stddef.h>
#include "real.h"

#ifdef __cplusplus
extern "C" { /* the CUDA backend (C++) calls ops_get_scan_form and the like */
#endif

/* ---- threads ---------------------------------------------------------- */
/* Sets the threads used by OpenMP loops and by OpenBLAS (one pool). */
void ops_set_threads(int threads);
int ops_get_threads(void);
/* "OpenBLAS 0.3.21 (openmp)" or similar; static string. */
const char *ops_blas_info(void);

/* ---- backends and their memory (kernels/dispatch.c) -------------------- */
/* Every op below runs on one process-wide backend (jobs are processes):
 * OPS_CPU, the default (kernels/cpu/), or OPS_CUDA (kernels/cuda/; float
 * builds with nvcc only), and takes that backend's memory. An op with no
 * CUDA version, called on OPS_CUDA, exits naming itself. */
typedef enum { OPS_CPU, OPS_CUDA } ops_backend_kind;
/* Returns 0, or -1 leaving the backend unchanged when b is not available
 * here (CUDA not built in, no driver or no device: cuda_device_count in
 * device.h says which). OPS_CUDA uses device 0. */
int ops_set_backend(ops_backend_kind b);
ops_backend_kind ops_get_backend(void);
/* Backend memory: zeroed, 64-byte aligned; NULL when out of memory. */
void *ops_alloc(size_t bytes);
void ops_free(void *p);
/* Copies host -> backend memory (the host buffer is free again on return)
 * and backend -> host memory (waits for the ops queued before it). */
void ops_upload(void *dst, const void *src, size_t bytes);
void ops_download(void *dst, const void *src, size_t bytes);
/* Waits until every op queued on the backend has finished (for timing). */
void ops_sync(void);
/* Precision of the gemms (train.precision): OPS_FP32, OPS_TF32 (the
 * CUDA backend lets cuBLAS round operands to TF32 on tensor cores), or
 * OPS_BF16 (CUDA only: matmul_forward / matmul_backward round both
 * operands to bf16 and accumulate in fp32 into fp32 results; weights,
 * gradients, moments, activations and every other op stay fp32). The
 * CPU always computes fp32; there the setting is kept but changes nothing
 * (the harness refuses bf16 runs on the CPU). Process-wide, like the
 * backend; OPS_FP32 at start. */
typedef enum { OPS_FP32, OPS_TF32, OPS_BF16 } ops_precision;
void ops_set_precision(ops_precision p);
ops_precision ops_get_precision(void);
/* Which form the scans run (for timing one form against the other, and
 * for tests): OPS_SCAN_AUTO lets each backend pick by size (the CPU by
 * scan_delta_use_chunked; CUDA by cuda_scan_*_use_chunked); RECURRENT and
 * CHUNKED force a form wherever the op has it (scan_delta on both backends,
 * scan_delta_vec chunked on CUDA only; elsewhere the recurrent form runs).
 * Every form keeps one cache layout, so results agree up to rounding and
 * either backward may follow either forward. Process-wide; AUTO at start. */
typedef enum { OPS_SCAN_AUTO, OPS_SCAN_RECURRENT, OPS_SCAN_CHUNKED } ops_scan_form;
void ops_set_scan_form(ops_scan_form f);
ops_scan_form ops_get_scan_form(void);
/* Free and total memory of the current backend's device in bytes (0 and
 * -1 on the CPU, whose limit is the runner's: harness/train.c). */
int ops_memory_info(size_t *free_bytes, size_t *total_bytes);
/* Captured work (CUDA graphs): between ops_capture_begin and
 * ops_capture_end the ops are recorded, not run, and ops_graph_launch
 * replays the record, each time, with the arguments of the capture:
 * pointers and by-value scalars as they were then, memory as it is at the
 * replay. So what changes from one replay to the next must be read from
 * backend memory (step_scalars below), and nothing recorded may wait for
 * the backend or allocate. Only the CUDA backend captures: elsewhere
 * ops_capture_begin returns -1 with the reason in err, as does
 * ops_capture_end when the capture failed (nothing is left recorded). */
typedef struct ops_graph ops_graph;
int ops_capture_begin(char *err, size_t errlen);
ops_graph *ops_capture_end(char *err, size_t errlen);
void ops_graph_launch(ops_graph *g);
void ops_graph_free(ops_graph *g); /* g may be NULL */

/* ---- dense ------------------------------------------------------------ */
/* out (N,OC) = inp (N,C) @ weight(OC,C)^T + bias(OC); bias may be NULL. */
void matmul_forward(real *out, const real *inp, const real *weight,
                    const real *bias, int N, int C, int OC);
/* dinp (N,C), dweight (OC,C), dbias (OC); dinp and dbias may be NULL. */
void matmul_backward(real *dinp, real *dweight, real *dbias, const real *dout,
                     const real *inp, const real *weight, int N, int C, int OC);

/* out (B,T,C) = wte[tokens] (+ wpe[t] when wpe != NULL); tokens (B,T), wte (V,C), wpe (maxT,C) */
void embedding_forward(real *out, const int *tokens, const real *wte,
                       const real *wpe, int B, int T, int C);
/* dwte (V,C), dwpe may be NULL (no learned positions); every token < V.
 * Each row of dwte sums its positions in a fixed order (no atomics on the
 * GPU), so the result is the same from run to run. */
void embedding_backward(real *dwte, real *dwpe, const real *dout,
                        const int *tokens, int B, int T, int C, int V);

/* RMSNorm over the last dim: out = inp * rstd * weight, rstd (N) cached.
 * inp/out (N,C), weight (C). eps = 1e-6. */
void rmsnorm_forward(real *out, real *rstd, const real *inp, const real *weight,
                     int N, int C);
void rmsnorm_backward(real *dinp, real *dweight, const real *dout,
                      const real *inp, const real *weight, const real *rstd,
                      int N, int C);

/* L2 normalisation over the last dim: out = inp / sqrt(sum inp^2 + 1e-6);
 * rnorm (N) caches 1/sqrt(...). inp/out (N,C). */
void l2norm_forward(real *out, real *rnorm, const real *inp, int N, int C);
void l2norm_backward(real *dinp, const real *dout, const real *inp,
                     const real *rnorm, int N, int C);

/* Pointwise activations, out[i] = f(inp[i]); out may equal inp in forward. */
typedef enum {
    ACT_IDENTITY,
    ACT_SIGMOID,
    ACT_SIGMOID2, /* 2 * sigmoid(x): deltanet's beta with eigen: signed */
    ACT_SILU,
    ACT_GELU,     /* tanh approximation */
    ACT_ELU1,     /* elu(x) + 1: linear attention feature map */
    ACT_RELU
} act_kind;
void act_forward(real *out, const real *inp, size_t n, act_kind kind);
/* dinp += f'(inp) * dout */
void act_backward(real *dinp, const real *dout, const real *inp, size_t n,
                  act_kind kind);

/* SwiGLU: inp (N,2H) holds [gate | up] per row; out (N,H) = silu(gate) * up. */
void swiglu_forward(real *out, const real *inp, int N, int H);
void swiglu_backward(real *dinp, const real *dout, const real *inp, int N, int H);

/* Causal depthwise convolution of width 4 (no bias) followed by SiLU:
 * pre[b,t,c] = sum_{j=0..3} w[c,j] * inp[b,t-3+j,c] (zero before t=0),
 * out = silu(pre). inp/pre/out (B,T,C), w (C,4). */
void conv4_silu_forward(real *out, real *pre, const real *inp, const real *w,
                        int B, int T, int C);
void conv4_silu_backward(real *dinp, real *dw, const real *dout,
                         const real *inp, const real *pre, const real *w,
                         int B, int T, int C);

/* h (n) += x (n): residual add. */
void residual_add(real *h, const real *x, size_t n);
/* x (n) *= s; s == 0 writes exact zeros (clearing NaN and inf). */
void scale_inplace(real *x, size_t n, real s);
/* sum of squares, accumulated in double (gradient norm). */
double sum_squares(const real *x, size_t n);

/* out (N,C) = num (N,C) / (den (N) + eps): the linear-attention normaliser. */
void rowdiv_forward(real *out, const real *num, const real *den, int N, int C,
                    real eps);
void rowdiv_backward(real *dnum, real *dden, const real *dout, const real *num,
                     const real *den, int N, int C, real eps);

/* ---- loss and optimiser ---------------------------------------------- */
/* Softmax cross-entropy at scored positions (targets[i] >= 0; -1 = unscored).
 * logits/probs (N,V), losses (N) (0 at unscored positions).
 * Returns the number of scored positions. */
int crossentropy_forward(real *losses, real *probs, const real *logits,
                         const int *targets, int N, int V);
/* dlogits (N,V) += (probs - onehot(target)) * dloss at scored positions
 * (dloss is usually 1/count for a mean loss); unscored rows get nothing. */
void crossentropy_backward(real *dlogits, const real *probs, const int *targets,
                           int N, int V, real dloss);

/* One AdamW step on a tensor of n elements; t is the 1-based step count.
 * Decoupled weight decay: p -= lr * (mhat / (sqrt(vhat) + eps) + wd * p). */
void adamw_update(real *p, const real *g, real *m, real *v, size_t n, real lr,
                  real beta1, real beta2, real eps, real weight_decay, int t);

/* ---- the training step without host syncs (kernels/cpu/train_step.c) -- */
/* A GPU step must not wait for the device except where a metric is read,
 * so the step's scalars stay in backend memory: a step_guard, written by
 * the ops below and read by the host (ops_download) only on the steps
 * that log. On the CPU the same ops compute what the host-side code did,
 * bit for bit. */
enum { STEP_BAD_LOSS = 1, STEP_BAD_GRAD = 2 };
typedef struct {
    double grad_sumsq;   /* sum of squares of this step's gradient (sum_squares_into) */
    double grad_norm;    /* sqrt(grad_sumsq) */
    double first_bad_value; /* the loss sum or norm of first_bad_step */
    real loss_sum;       /* this step's sum of scored losses (step_guard_update copies it) */
    real clip_scale;     /* factor the update applies to the gradient first (1: none) */
    int skip;            /* 1: this step's loss or gradient norm is not finite: no update */
    int first_bad_step;  /* the first such step since step_guard was zeroed; 0: none */
    int first_bad_what;  /* STEP_BAD_LOSS or STEP_BAD_GRAD, of first_bad_step */
} step_guard;
/* The scalars of a training step that change from step to step, in backend
 * memory: the host writes them (ops_upload) before the step's ops run, and
 * the ops below read them when they run, not when they are queued, so a
 * step captured once replays with each step's values. */
typedef struct {
    real lr;             /* this step's learning rate */
    real bias1, bias2;   /* AdamW's bias corrections 1 - beta1^t and 1 - beta2^t,
                            computed in double and rounded once, as adamw_update does */
    real dloss;          /* gradient of the mean loss per scored position: 1 / count */
    int step;            /* t, 1-based */
} step_scalars;
/* Fills s (host memory) for step (1-based) with count scored positions
 * (dloss 0 when none); the bias corrections of beta1 and beta2 rounded to
 * real, as adamw_update_guarded gets them. */
void step_scalars_set(step_scalars *s, double lr, double beta1, double beta2, int step, int count);
/* crossentropy_forward without the count (the caller counts targets >= 0
 * on the host), so it never waits for the backend. */
void crossentropy_rows_forward(real *losses, real *probs, const real *logits,
                               const int *targets, int N, int V);
/* pred (N) = the first index of the largest of each row of probs (N,V). */
void argmax_rows(int *pred, const real *probs, int N, int V);
/* *out = sum_squares(x, n), out in backend memory. */
void sum_squares_into(double *out, const real *x, size_t n);
/* crossentropy_backward with dloss = s->dloss. */
void crossentropy_backward_step(real *dlogits, const real *probs, const int *targets,
                                int N, int V, const step_scalars *s);
/* After sum_squares_into(&g->grad_sumsq, ...): copies *loss_sum (backend
 * memory; NULL when nothing was scored: 0) into g->loss_sum, sets
 * grad_norm, and skip when the loss sum or the norm is not finite,
 * recording the first such step (s->step); clip_scale = clip / norm when
 * clip > 0 and norm > clip (rounded to real once), else 1. */
void step_guard_update(step_guard *g, const real *loss_sum, double clip, const step_scalars *s);
/* adamw_update with lr = s->lr and its bias corrections s->bias1,
 * s->bias2, after scaling g (n) in place by guard->clip_scale; nothing at
 * all when guard->skip. */
void adamw_update_guarded(real *p, real *g, real *m, real *v, size_t n, real beta1,
                          real beta2, real eps, real weight_decay, const step_scalars *s,
                          const step_guard *guard);

/* ---- positions and attention ----------------------------------------- */
/* Rotary embedding on x (B,T,H,D), D even, pairs (2i, 2i+1), angle
 * t * theta^(-2i/D). out may equal inp. */
void rope_forward(real *out, const real *inp, int B, int T, int H, int D,
                  real theta);
/* dinp += R(-angle) dout */
void rope_backward(real *dinp, const real *dout, int B, int T, int H, int D,
                   real theta);

/* Causal softmax attention, scale D^-1/2.
 * q,k,v,out (B,T,H,D); att caches what the backward needs, in a layout of
 * the backend's own: attention_cache_len(B,T,H,D) reals (the CPU keeps the
 * probabilities (B,H,T,T), upper triangle 0; CUDA the row log-sum-exp
 * (B,H,T) and a copy of out). */
size_t attention_cache_len(int B, int T, int H, int D);
void attention_forward(real *out, real *att, const real *q, const real *k,
                       const real *v, int B, int T, int H, int D);
/* scratch: attention_scratch_len(B,T,H) reals. */
size_t attention_scratch_len(int B, int T, int H);
void attention_backward(real *dq, real *dk, real *dv, real *scratch,
                        const real *dout, const real *att, const real *q,
                        const real *k, const real *v, int B, int T, int H, int D);

/* ---- scan_delta: the gated delta rule family -------------------------- */
/* Per batch b and head h, state S (K x V), S_0 = 0:
 *   S_t = alpha_t (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T
 *   o_t = scale * S_t^T q_t
 * beta == NULL: the non-delta form, S_t = alpha_t S_{t-1} + k_t v_t^T
 * (linear attention, retnet); alpha == NULL: alpha = 1.
 * q,k (B,T,H,K); v,o (B,T,H,V); beta, alpha (B,T,H).
 * states caches S at every SCAN_DELTA_CKPT-th step for the backward:
 * scan_delta_cache_len(B,T,H,K,V) reals. Recurrent (reference) form. */
#define SCAN_DELTA_CKPT 16
size_t scan_delta_cache_len(int B, int T, int H, int K, int V);
void scan_delta_forward(real *o, real *states, const real *q, const real *k,
                        const real *v, const real *beta, const real *alpha,
                        int B, int T, int H, int K, int V, real scale);
/* scratch: scan_delta_scratch_len(B,T,H,K,V) reals. dbeta is NULL exactly
 * when beta is; dalpha may be NULL whenever no gradient of alpha is wanted
 * (it must be when alpha is NULL; RetNet's decays are constants). */
size_t scan_delta_scratch_len(int B, int T, int H, int K, int V);
void scan_delta_backward(real *dq, real *dk, real *dv, real *dbeta,
                         real *dalpha, real *scratch, const real *dout,
                         const real *states, const real *q, const real *k,
                         const real *v, const real *beta, const real *alpha,
                         int B, int T, int H, int K, int V, real scale);

/* ---- rnn_cell: LSTM ---------------------------------------------------- */
/* gx (B,T,4d) = W x_t + b precomputed by one gemm, gate order i, f, g, o.
 * Per step: pre = gx_t + R h_{t-1} with R (4d,d);
 *   c_t = s(f) c_{t-1} + s(i) tanh(g); h_t = s(o) tanh(c_t); h_0 = c_0 = 0.
 * Outputs h (B,T,d); caches c (B,T,d) and gates (B,T,4d) holding the
 * activated s(i), s(f), tanh(g), s(o). */
void lstm_forward(real *h, real *c, real *gates, const real *gx, const real *R,
                  int B, int T, int d);
size_t lstm_scratch_len(int B, int d);
void lstm_backward(real *dgx, real *dR, real *scratch, const real *dh,
                   const real *h, const real *c, const real *gates,
                   const real *R, int B, int T, int d);

/* ---- rnn_cell: elman, gru, slstm (kernels/cpu/rnn_cell.c) -------------- */
/* gx (B,T,G d) = W x_t + b precomputed by one gemm, gate-major: gate g of
 * unit u at g d + u. R is block-diagonal over H heads of Dh = d/H units,
 * stored (H, G Dh, Dh): row g Dh + j of head hh's block maps h_{t-1}'s
 * units hh Dh .. hh Dh + Dh - 1 to gate g of unit hh Dh + j (H = 1: an
 * ordinary (G d, d) matrix). h_0 = c_0 = n_0 = 0. Each takes scratch of
 * *_scratch_len(B,T,d,H) reals, forward and backward alike; backwards add
 * into dgx and dR. Results do not depend on the thread count.
 * elman (G = 1): h_t = tanh(gx_t + R h_{t-1}). Output h (B,T,d).
 * gru (G = 3; z, r, n): z = s(gx_z + R_z h), r = s(gx_r + R_r h),
 *   n = tanh(gx_n + r * (R_n h)), h_t = (1 - z) n + z h_{t-1}.
 *   Output h; cache gates (B,T,4d) holding z, r, n and R_n h_{t-1}.
 * slstm (G = 4; i, f, z, o): pre = gx_t + R h_{t-1};
 *   m_t = max(logsigmoid(f~) + m_{t-1}, i~) (m_1 = i~), i = exp(i~ - m_t),
 *   f = exp(logsigmoid(f~) + m_{t-1} - m_t), c_t = f c_{t-1} + i tanh(z~),
 *   n_t = f n_{t-1} + i, h_t = s(o~) c_t / n_t. Outputs h; caches c, n
 *   (B,T,d) and gates (B,T,5d) holding i, f, tanh(z~), s(o~), s(-f~). */
size_t elman_scratch_len(int B, int T, int d, int H);
void elman_forward(real *h, real *scratch, const real *gx, const real *R,
                   int B, int T, int d, int H);
void elman_backward(real *dgx, real *dR, real *scratch, const real *dh,
                    const real *h, const real *R, int B, int T, int d, int H);
size_t gru_scratch_len(int B, int T, int d, int H);
void gru_forward(real *h, real *gates, real *scratch, const real *gx,
                 const real *R, int B, int T, int d, int H);
void gru_backward(real *dgx, real *dR, real *scratch, const real *dh,
                  const real *h, const real *gates, const real *R, int B,
                  int T, int d, int H);
size_t slstm_scratch_len(int B, int T, int d, int H);
void slstm_forward(real *h, real *c, real *n, real *gates, real *scratch,
                   const real *gx, const real *R, int B, int T, int d, int H);
void slstm_backward(real *dgx, real *dR, real *scratch, const real *dh,
                    const real *h, const real *c, const real *n,
                    const real *gates, const real *R, int B, int T, int d,
                    int H);

/* ---- diagonal recurrences' gates (kernels/cpu/diag_gates.c) ------------ */
/* Pointwise maps from projections to scan_diag's decay a and input b, all
 * tensors (n). eigen_signed maps the decay v in (0,1) to 2 v - 1 in (-1,1).
 * g(x) = x + 0.5 (x >= 0) else s(x) (minGRU's positive activation).
 * mingru: z = s(pz); a = 1 - z; b = z g(ph).
 * minlstm: f = s(pf), i = s(pi); a = f / (f + i); b = i / (f + i) g(ph).
 * hgrn: f = s(pf); a = f; b = silu(pi) (1 - f).
 * Backwards add into the projections' gradients. */
void mingru_gates_forward(real *a, real *b, const real *pz, const real *ph,
                          size_t n, int eigen_signed);
void mingru_gates_backward(real *dpz, real *dph, const real *da,
                           const real *db, const real *pz, const real *ph,
                           size_t n, int eigen_signed);
void minlstm_gates_forward(real *a, real *b, const real *pf, const real *pi,
                           const real *ph, size_t n);
void minlstm_gates_backward(real *dpf, real *dpi, real *dph, const real *da,
                            const real *db, const real *pf, const real *pi,
                            const real *ph, size_t n);
void hgrn_gates_forward(real *a, real *b, const real *pf, const real *pi,
                        size_t n, int eigen_signed);
void hgrn_gates_backward(real *dpf, real *dpi, const real *da, const real *db,
                         const real *pf, const real *pi, size_t n,
                         int eigen_signed);
/* out (n) = x * silu(g): an output gate (hgrn's norm(h) * silu(W_g x)). */
void silu_gate_forward(real *out, const real *x, const real *g, size_t n);
void silu_gate_backward(real *dx, real *dg, const real *dout, const real *x,
                        const real *g, size_t n);

/* ---- scan_diag --------------------------------------------------------- */
/* Real (kernels/cpu/scan_diag.c): per channel, h_t = a_t * h_{t-1} + b_t,
 * h_{-1} = 0; a, b, h (B,T,C). The backward adds into da and db:
 * with g_t = dh_t + a_{t+1} g_{t+1}, db_t += g_t, da_t += g_t h_{t-1}. */
void scan_diag_forward(real *h, const real *a, const real *b, int B, int T,
                       int C);
void scan_diag_backward(real *da, real *db, const real *dh, const real *h,
                        const real *a, int B, int T, int C);
/* Complex (kernels/cpu/scan_diag_complex.c), lru's scan. A complex vector
 * of n entries is stored planar: n real parts, then n imaginary parts.
 * Per channel, h_t = a * h_{t-1} + x_t, h_{-1} = 0, with a constant in
 * time; a (2C); x, h (B,T,2C). The backward adds into dx and da: with
 * g_t = dh_t + conj(a) g_{t+1}, dx_t += g_t, da += sum_t g_t conj(h_{t-1})
 * (the gradient of a complex z is dL/dRe z + i dL/dIm z). */
void scan_diag_complex_forward(real *h, const real *a, const real *x, int B,
                               int T, int C);
void scan_diag_complex_backward(real *dx, real *da, const real *dh,
                                const real *h, const real *a, int B, int T,
                                int C);

/* ---- complex diagonal SSMs: lru, s4d (kernels/cpu/scan_diag_complex.c) - */
/* LRU (Orvieto et al. 2023): its transition and normalised input map from
 * the parameters, per state n of N:
 *   lambda_n = exp(-exp(nu_log_n) + i exp(theta_log_n)),
 *   gamma_n = sqrt(1 - |lambda_n|^2),
 *   B_norm rows n and N + n = gamma_n * B rows n and N + n.
 * lambda (2N) planar; nu_log, theta_log (N); B, B_norm (2N,H): row n maps
 * the input to Re of state n, row N + n to its Im. The backward adds into
 * dnu_log, dtheta_log and dB. */
void lru_params_forward(real *lambda, real *B_norm, const real *nu_log,
                        const real *theta_log, const real *B, int N, int H);
void lru_params_backward(real *dnu_log, real *dtheta_log, real *dB,
                         const real *dlambda, const real *dB_norm,
                         const real *nu_log, const real *theta_log,
                         const real *B, int N, int H);

/* S4D (Gu et al. 2022), per channel c of C and complex mode m of M, with
 * zero-order-hold discretisation and B = 1 (C absorbs it, as in the s4
 * repository's standalone S4D):
 *   dt = exp(log_dt[c]), A = -exp(A_re_log[c,m]) + i A_im[c,m],
 *   x_t[c,m] = exp(dt A) x_{t-1}[c,m] + (exp(dt A) - 1) / A u_t[c], x_{-1} = 0,
 *   y_t[c] = 2 Re(sum_m Cm[c,m] x_t[c,m]) + D[c] u_t[c].
 * u, y (B,T,C); log_dt, D (C); A_re_log, A_im (C,M); Cm (C,2M) planar per
 * channel. The state is never materialised: cache (s4d_scan_cache_len
 * reals) keeps the discretised transition and the state at every
 * S4D_SCAN_CKPT-th step, and the backward recomputes the steps between.
 * The backward adds into du, dlog_dt, dA_re_log, dA_im, dCm and dD. */
#define S4D_SCAN_CKPT 16
size_t s4d_scan_cache_len(int B, int T, int C, int M);
void s4d_scan_forward(real *y, real *cache, const real *u, const real *log_dt,
                      const real *A_re_log, const real *A_im, const real *Cm,
                      const real *D, int B, int T, int C, int M);
size_t s4d_scan_scratch_len(int B, int T, int C, int M);
void s4d_scan_backward(real *du, real *dlog_dt, real *dA_re_log, real *dA_im,
                       real *dCm, real *dD, real *scratch, const real *dy,
                       const real *cache, const real *u, const real *log_dt,
                       const real *A_re_log, const real *A_im, const real *Cm,
                       const real *D, int B, int T, int C, int M);

/* ---- selective_scan: Mamba-1 (kernels/cpu/selective_scan.c) ------------ */
/* Per batch b, channel c of Di and state n of N, h_0 = 0:
 *   dt = softplus(dt_pre[b,t,c]), A[c,n] = -exp(A_log[c,n]),
 *   a = exp(dt A[c,n]), or 2 exp(dt A[c,n]) - 1 when eigen_signed,
 *   h_t[c,n] = a h_{t-1}[c,n] + dt Bm[b,t,n] u[b,t,c],
 *   y[b,t,c] = (sum_n Cm[b,t,n] h_t[c,n] + D[c] u[b,t,c]) silu(z[b,t,c]).
 * u, dt_pre, z, y (B,T,Di); Bm, Cm (B,T,N); A_log (Di,N); D (Di).
 * The (B,T,Di,N) state is never materialised: cache
 * (selective_scan_cache_len reals) keeps A, dt, s(dt_pre) and the state at
 * every SELECTIVE_SCAN_CKPT-th step, and the backward recomputes the steps
 * between. The backward adds into du, ddt_pre, dA_log, dBm, dCm, dD, dz. */
#define SELECTIVE_SCAN_CKPT 16
size_t selective_scan_cache_len(int B, int T, int Di, int N);
void selective_scan_forward(real *y, real *cache, const real *u,
                            const real *dt_pre, const real *A_log,
                            const real *Bm, const real *Cm, const real *D,
                            const real *z, int eigen_signed, int B, int T,
                            int Di, int N);
size_t selective_scan_scratch_len(int B, int T, int Di, int N);
void selective_scan_backward(real *du, real *ddt_pre, real *dA_log, real *dBm,
                             real *dCm, real *dD, real *dz, real *scratch,
                             const real *dy, const real *cache, const real *u,
                             const real *dt_pre, const real *Bm,
                             const real *Cm, const real *D, const real *z,
                             int eigen_signed, int B, int T, int Di, int N);

/* ---- mamba2's pointwise ops (kernels/cpu/ssd_ops.c) -------------------- */
/* Per token row r of R and head h of H: dt = softplus(dt_pre[r,h]) and the
 * decay alpha = exp(-dt exp(A_log[h])), or 2 exp(.) - 1 when eigen_signed.
 * dt_pre, dt, alpha (R,H); A_log (H). The backward adds into ddt_pre and
 * dA_log; ddt or dalpha may be NULL (no gradient reaches that output). */
void ssd_decay_forward(real *dt, real *alpha, const real *dt_pre,
                       const real *A_log, int eigen_signed, int R, int H);
void ssd_decay_backward(real *ddt_pre, real *dA_log, const real *ddt,
                        const real *dalpha, const real *dt_pre,
                        const real *A_log, int eigen_signed, int R, int H);
/* out (R,H,K) = inp (R,K) repeated over H heads (B and C shared by all
 * heads); the backward adds the heads' sum into dinp. */
void head_repeat_forward(real *out, const real *inp, int R, int H, int K);
void head_repeat_backward(real *dinp, const real *dout, int R, int H, int K);
/* out (R,H,P) = s (R,H) * inp (R,H,P): one scalar per row and head
 * (mamba2's v = dt x). The backward adds into dinp and ds. */
void head_scale_forward(real *out, const real *inp, const real *s, int R,
                        int H, int P);
void head_scale_backward(real *dinp, real *ds, const real *dout,
                         const real *inp, const real *s, int R, int H, int P);
/* y (R,G,P) += D (G) * x (R,G,P): the skip term D x with one D per group
 * of P channels (mamba2: per head; lru: P = 1). The backward adds into dx
 * and dD. */
void skip_add_forward(real *y, const real *x, const real *D, int R, int G,
                      int P);
void skip_add_backward(real *dx, real *dD, const real *dy, const real *x,
                       const real *D, int R, int G, int P);

/* ---- scan_delta: its two forms, per-key-dimension decay ---------------- */
/* scan_delta_forward / scan_delta_backward above run one of two forms with
 * one cache layout and equal results up to rounding, chosen by
 * scan_delta_use_chunked(T, K, V) (where measured faster: at least one
 * whole chunk, 32 <= K, V <= SCAN_DELTA_CHUNK_MAX_KV; kernels/cpu/scan_delta.c):
 *  - recurrent (kernels/cpu/scan_delta.c): the per-token reference;
 *  - chunked (kernels/cpu/scan_delta_chunk.c): chunks of SCAN_DELTA_CKPT
 *    tokens in WY / UT-transform form, the work as small matrix products.
 * Both are callable directly with scan_delta_*'s arguments; either
 * backward may follow either forward; scan_delta_scratch_len covers both. */
#define SCAN_DELTA_CHUNK_MAX_KV 128
int scan_delta_use_chunked(int T, int K, int V);
void scan_delta_recurrent_forward(real *o, real *states, const real *q, const real *k,
                                  const real *v, const real *beta, const real *alpha,
                                  int B, int T, int H, int K, int V, real scale);
void scan_delta_recurrent_backward(real *dq, real *dk, real *dv, real *dbeta,
                                   real *dalpha, real *scratch, const real *dout,
                                   const real *states, const real *q, const real *k,
                                   const real *v, const real *beta, const real *alpha,
                                   int B, int T, int H, int K, int V, real scale);
void scan_delta_chunked_forward(real *o, real *states, const real *q, const real *k,
                                const real *v, const real *beta, const real *alpha,
                                int B, int T, int H, int K, int V, real scale);
void scan_delta_chunked_backward(real *dq, real *dk, real *dv, real *dbeta,
                                 real *dalpha, real *scratch, const real *dout,
                                 const real *states, const real *q, const real *k,
                                 const real *v, const real *beta, const real *alpha,
                                 int B, int T, int H, int K, int V, real scale);

/* Non-delta scan with a decay per key dimension (gla), recurrent form:
 *   S_t = diag(alpha_t) S_{t-1} + k_t v_t^T,  o_t = scale S_t^T q_t,
 * q, k, alpha (B,T,H,K) (alpha of any sign); v, o (B,T,H,V). Cache and
 * scratch as scan_delta's: scan_delta_cache_len, scan_delta_scratch_len. */
void scan_delta_vec_forward(real *o, real *states, const real *q, const real *k,
                            const real *v, const real *alpha, int B, int T, int H,
                            int K, int V, real scale);
void scan_delta_vec_backward(real *dq, real *dk, real *dv, real *dalpha, real *scratch,
                             const real *dout, const real *states, const real *q,
                             const real *k, const real *v, const real *alpha, int B,
                             int T, int H, int K, int V, real scale);

/* ---- gates of the gated delta rule family (kernels/cpu/delta_gates.c) -- */
/* gla's decay: out (n) = sigmoid(inp)^p = exp(p logsigmoid(inp)), mapped
 * to 2 out - 1 when eigen_signed. The backward adds into dinp. */
void sigmoid_pow_forward(real *out, const real *inp, size_t n, real p, int eigen_signed);
void sigmoid_pow_backward(real *dinp, const real *dout, const real *inp, size_t n, real p,
                          int eigen_signed);
/* mLSTM's stabilised gates, per batch b and head h, m_0 = 0:
 *   m_t = max(logsigmoid(f_pre_t) + m_{t-1}, i_pre_t),
 *   fgate_t = exp(logsigmoid(f_pre_t) + m_{t-1} - m_t), igate_t = exp(i_pre_t - m_t).
 * All (B,T,H). The backward adds into df_pre and di_pre, given the
 * gradients reaching fgate, igate and m (dm: m's direct uses). */
void mlstm_gates_forward(real *fgate, real *igate, real *m, const real *f_pre,
                         const real *i_pre, int B, int T, int H);
void mlstm_gates_backward(real *df_pre, real *di_pre, const real *dfgate,
                          const real *digate, const real *dm, const real *fgate,
                          const real *igate, const real *m, const real *f_pre,
                          const real *i_pre, int B, int T, int H);
/* mLSTM's readout denominator: den (n) = max(|nq|, exp(-m)). The backward
 * adds into dnq and dm. */
void mlstm_den_forward(real *den, const real *nq, const real *m, size_t n);
void mlstm_den_backward(real *dnq, real *dm, const real *dden, const real *nq,
                        const real *m, size_t n);
/* out (N,C) = row (C) in every row. row is host memory: constants a mixer
 * computes itself (RetNet's per-head decays). */
void fill_rows(real *out, const double *row, int N, int C);

#ifdef __cplusplus
}
#endif

#endif
