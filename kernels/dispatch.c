/* dispatch.c: the public names of the ops in ops.h, each routing to the
 * CPU backend (cpu_<op>, kernels/cpu/, renamed by cpu/cpu_names.h) or to the
 * CUDA backend (cuda_<op>, kernels/cuda/ops_cuda.h) by the process-wide
 * backend; and the backend's memory. The CUDA side exists only in the float
 * build with nvcc (SB_HAVE_CUDA); elsewhere every op goes straight to the CPU.
 * The cost is one well-predicted branch per op call.
 * A new op: declare it in ops.h, list it in cpu/cpu_names.h, route it here
 * (ROUTE to its CUDA version, or NO_CUDA until it has one). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"

#if defined(SB_HAVE_CUDA) && !defined(SB_DOUBLE)
#define SB_CUDA_OPS 1
#include "cuda/ops_cuda.h"
#else
#define SB_CUDA_OPS 0
#endif

/* The CPU backend's ops, with their public twins' types. */
#define CPU_OP(name) extern __typeof__(name) cpu_##name;

#define OPS_ALL(X) \
    X(matmul_forward) \
    X(matmul_backward) \
    X(embedding_forward) \
    X(embedding_backward) \
    X(rmsnorm_forward) \
    X(rmsnorm_backward) \
    X(l2norm_forward) \
    X(l2norm_backward) \
    X(act_forward) \
    X(act_backward) \
    X(swiglu_forward) \
    X(swiglu_backward) \
    X(conv4_silu_forward) \
    X(conv4_silu_backward) \
    X(residual_add) \
    X(scale_inplace) \
    X(sum_squares) \
    X(rowdiv_forward) \
    X(rowdiv_backward) \
    X(crossentropy_forward) \
    X(crossentropy_backward) \
    X(adamw_update) \
    X(crossentropy_rows_forward) \
    X(argmax_rows) \
    X(sum_squares_into) \
    X(step_guard_update) \
    X(crossentropy_backward_step) \
    X(adamw_update_guarded) \
    X(rope_forward) \
    X(rope_backward) \
    X(attention_cache_len) \
    X(attention_forward) \
    X(attention_scratch_len) \
    X(attention_backward) \
    X(scan_delta_cache_len) \
    X(scan_delta_forward) \
    X(scan_delta_scratch_len) \
    X(scan_delta_backward) \
    X(lstm_forward) \
    X(lstm_scratch_len) \
    X(lstm_backward) \
    X(elman_scratch_len) \
    X(elman_forward) \
    X(elman_backward) \
    X(gru_scratch_len) \
    X(gru_forward) \
    X(gru_backward) \
    X(slstm_scratch_len) \
    X(slstm_forward) \
    X(slstm_backward) \
    X(mingru_gates_forward) \
    X(mingru_gates_backward) \
    X(minlstm_gates_forward) \
    X(minlstm_gates_backward) \
    X(hgrn_gates_forward) \
    X(hgrn_gates_backward) \
    X(silu_gate_forward) \
    X(silu_gate_backward) \
    X(scan_diag_forward) \
    X(scan_diag_backward) \
    X(scan_diag_complex_forward) \
    X(scan_diag_complex_backward) \
    X(lru_params_forward) \
    X(lru_params_backward) \
    X(s4d_scan_cache_len) \
    X(s4d_scan_forward) \
    X(s4d_scan_scratch_len) \
    X(s4d_scan_backward) \
    X(selective_scan_cache_len) \
    X(selective_scan_forward) \
    X(selective_scan_scratch_len) \
    X(selective_scan_backward) \
    X(ssd_decay_forward) \
    X(ssd_decay_backward) \
    X(head_repeat_forward) \
    X(head_repeat_backward) \
    X(head_scale_forward) \
    X(head_scale_backward) \
    X(skip_add_forward) \
    X(skip_add_backward) \
    X(scan_delta_vec_forward) \
    X(scan_delta_vec_backward) \
    X(sigmoid_pow_forward) \
    X(sigmoid_pow_backward) \
    X(mlstm_gates_forward) \
    X(mlstm_gates_backward) \
    X(mlstm_den_forward) \
    X(mlstm_den_backward) \
    X(fill_rows)

OPS_ALL(CPU_OP)

#if SB_CUDA_OPS
/* ops_cuda.h must declare exactly the types of ops.h. */
#define SAME_TYPE(name)                                                             \
    _Static_assert(__builtin_types_compatible_p(__typeof__(name), __typeof__(cuda_##name)), \
                   "cuda_" #name " differs from " #name " in ops.h");
#define OPS_CUDA(X) \
    X(matmul_forward) \
    X(matmul_backward) \
    X(embedding_forward) \
    X(embedding_backward) \
    X(rmsnorm_forward) \
    X(rmsnorm_backward) \
    X(l2norm_forward) \
    X(l2norm_backward) \
    X(act_forward) \
    X(act_backward) \
    X(swiglu_forward) \
    X(swiglu_backward) \
    X(conv4_silu_forward) \
    X(conv4_silu_backward) \
    X(residual_add) \
    X(scale_inplace) \
    X(sum_squares) \
    X(rowdiv_forward) \
    X(rowdiv_backward) \
    X(crossentropy_forward) \
    X(crossentropy_backward) \
    X(adamw_update) \
    X(crossentropy_rows_forward) \
    X(argmax_rows) \
    X(sum_squares_into) \
    X(step_guard_update) \
    X(crossentropy_backward_step) \
    X(adamw_update_guarded) \
    X(rope_forward) \
    X(rope_backward) \
    X(attention_cache_len) \
    X(attention_forward) \
    X(attention_scratch_len) \
    X(attention_backward) \
    X(scan_delta_cache_len) \
    X(scan_delta_forward) \
    X(scan_delta_scratch_len) \
    X(scan_delta_backward) \
    X(lstm_forward) \
    X(lstm_scratch_len) \
    X(lstm_backward) \
    X(silu_gate_forward) \
    X(silu_gate_backward) \
    X(elman_scratch_len) \
    X(elman_forward) \
    X(elman_backward) \
    X(gru_scratch_len) \
    X(gru_forward) \
    X(gru_backward) \
    X(slstm_scratch_len) \
    X(slstm_forward) \
    X(slstm_backward) \
    X(mingru_gates_forward) \
    X(mingru_gates_backward) \
    X(minlstm_gates_forward) \
    X(minlstm_gates_backward) \
    X(hgrn_gates_forward) \
    X(hgrn_gates_backward) \
    X(scan_diag_forward) \
    X(scan_diag_backward) \
    X(scan_diag_complex_forward) \
    X(scan_diag_complex_backward) \
    X(lru_params_forward) \
    X(lru_params_backward) \
    X(s4d_scan_cache_len) \
    X(s4d_scan_forward) \
    X(s4d_scan_scratch_len) \
    X(s4d_scan_backward) \
    X(selective_scan_cache_len) \
    X(selective_scan_forward) \
    X(selective_scan_scratch_len) \
    X(selective_scan_backward) \
    X(ssd_decay_forward) \
    X(ssd_decay_backward) \
    X(head_repeat_forward) \
    X(head_repeat_backward) \
    X(head_scale_forward) \
    X(head_scale_backward) \
    X(skip_add_forward) \
    X(skip_add_backward) \
    X(scan_delta_vec_forward) \
    X(scan_delta_vec_backward) \
    X(sigmoid_pow_forward) \
    X(sigmoid_pow_backward) \
    X(mlstm_gates_forward) \
    X(mlstm_gates_backward) \
    X(mlstm_den_forward) \
    X(mlstm_den_backward) \
    X(fill_rows)
OPS_CUDA(SAME_TYPE)
#endif

static ops_backend_kind backend = OPS_CPU;

/* An op without a CUDA version was called on the CUDA backend: model
 * creation refuses mixers that need one, so this is a bug; say which op. */
/* Unused while every op has a CUDA version; kept for the next new op. */
__attribute__((unused)) static _Noreturn void no_cuda(const char *op)
{
    fprintf(stderr, "statebench: op %s has no CUDA implementation yet; run this model with --device cpu\n", op);
    exit(1);
}

#if SB_CUDA_OPS
#define ON_CUDA (backend == OPS_CUDA)
#define ROUTE(name, args)                                                            \
    do {                                                                             \
        if (ON_CUDA) {                                                               \
            cuda_##name args;                                                        \
            return;                                                                  \
        }                                                                            \
    } while (0)
#define ROUTE_VALUE(name, args)                                                      \
    do {                                                                             \
        if (ON_CUDA) return cuda_##name args;                                        \
    } while (0)
#else
#define ON_CUDA 0
#define ROUTE(name, args) ((void)0)
#define ROUTE_VALUE(name, args) ((void)0)
#endif
#define NO_CUDA(name)                                                                \
    do {                                                                             \
        if (ON_CUDA) no_cuda(#name);                                                 \
    } while (0)

int ops_set_backend(ops_backend_kind b)
{
    if (b == OPS_CPU) {
        backend = OPS_CPU;
        return 0;
    }
#if SB_CUDA_OPS
    char err[256];
    if (b == OPS_CUDA && cuda_ops_init(err, sizeof err) == 0) {
        backend = OPS_CUDA;
        return 0;
    }
#endif
    return -1;
}

ops_backend_kind ops_get_backend(void) { return backend; }

void *ops_alloc(size_t bytes)
{
#if SB_CUDA_OPS
    if (ON_CUDA) return cuda_ops_alloc(bytes);
#endif
    const size_t rounded = (bytes + 63) / 64 * 64;
    void *p = aligned_alloc(64, rounded ? rounded : 64);
    if (p) memset(p, 0, rounded ? rounded : 64);
    return p;
}

void ops_free(void *p)
{
#if SB_CUDA_OPS
    if (ON_CUDA) {
        cuda_ops_free(p);
        return;
    }
#endif
    free(p);
}

void ops_upload(void *dst, const void *src, size_t bytes)
{
#if SB_CUDA_OPS
    if (ON_CUDA) {
        cuda_ops_upload(dst, src, bytes);
        return;
    }
#endif
    if (bytes) memcpy(dst, src, bytes);
}

void ops_download(void *dst, const void *src, size_t bytes)
{
#if SB_CUDA_OPS
    if (ON_CUDA) {
        cuda_ops_download(dst, src, bytes);
        return;
    }
#endif
    if (bytes) memcpy(dst, src, bytes);
}

void ops_sync(void)
{
#if SB_CUDA_OPS
    if (ON_CUDA) cuda_ops_sync();
#endif
}

int ops_capture_begin(char *err, size_t errlen)
{
#if SB_CUDA_OPS
    if (ON_CUDA) return cuda_capture_begin(err, errlen);
#endif
    snprintf(err, errlen, "the CPU backend runs each op when it is called (only the CUDA backend captures)");
    return -1;
}

ops_graph *ops_capture_end(char *err, size_t errlen)
{
#if SB_CUDA_OPS
    if (ON_CUDA) return (ops_graph *)cuda_capture_end(err, errlen);
#endif
    snprintf(err, errlen, "no capture was begun (only the CUDA backend captures)");
    return NULL;
}

void ops_graph_launch(ops_graph *g)
{
#if SB_CUDA_OPS
    if (ON_CUDA) {
        cuda_graph_launch(g);
        return;
    }
#endif
    (void)g;
    fprintf(stderr, "statebench: ops_graph_launch: only the CUDA backend has graphs\n");
    exit(1);
}

void ops_graph_free(ops_graph *g)
{
#if SB_CUDA_OPS
    if (ON_CUDA) cuda_graph_free(g);
#endif
    (void)g;
}

static ops_scan_form scan_form = OPS_SCAN_AUTO;

void ops_set_scan_form(ops_scan_form f)
{
    scan_form = f;
}

ops_scan_form ops_get_scan_form(void)
{
    return scan_form;
}

static ops_precision precision = OPS_FP32;

void ops_set_precision(ops_precision p)
{
    precision = p;
#if SB_CUDA_OPS
    if (ON_CUDA) {
        cuda_ops_set_tf32(p == OPS_TF32);
        cuda_ops_set_bf16(p == OPS_BF16);
    }
#endif
}

/* On the GPU, what cuBLAS was told last (cuda_ops_init starts from
 * STATEBENCH_TF32 in the environment, for the op tests and bench). */
ops_precision ops_get_precision(void)
{
#if SB_CUDA_OPS
    if (ON_CUDA) return cuda_ops_bf16() ? OPS_BF16 : cuda_ops_tf32() ? OPS_TF32 : OPS_FP32;
#endif
    return precision;
}

int ops_memory_info(size_t *free_bytes, size_t *total_bytes)
{
#if SB_CUDA_OPS
    if (ON_CUDA) {
        cuda_ops_memory(free_bytes, total_bytes);
        return 0;
    }
#endif
    *free_bytes = *total_bytes = 0;
    return -1;
}

/* ---- the ops, in ops.h's order ---------------------------------------- */

void matmul_forward(real *out, const real *inp, const real *weight, const real *bias, int N, int C,
                    int OC)
{
    ROUTE(matmul_forward, (out, inp, weight, bias, N, C, OC));
    cpu_matmul_forward(out, inp, weight, bias, N, C, OC);
}

void matmul_backward(real *dinp, real *dweight, real *dbias, const real *dout, const real *inp,
                     const real *weight, int N, int C, int OC)
{
    ROUTE(matmul_backward, (dinp, dweight, dbias, dout, inp, weight, N, C, OC));
    cpu_matmul_backward(dinp, dweight, dbias, dout, inp, weight, N, C, OC);
}

void embedding_forward(real *out, const int *tokens, const real *wte, const real *wpe, int B, int T,
                       int C)
{
    ROUTE(embedding_forward, (out, tokens, wte, wpe, B, T, C));
    cpu_embedding_forward(out, tokens, wte, wpe, B, T, C);
}

void embedding_backward(real *dwte, real *dwpe, const real *dout, const int *tokens, int B, int T,
                        int C, int V)
{
    ROUTE(embedding_backward, (dwte, dwpe, dout, tokens, B, T, C, V));
    cpu_embedding_backward(dwte, dwpe, dout, tokens, B, T, C, V);
}

void rmsnorm_forward(real *out, real *rstd, const real *inp, const real *weight, int N, int C)
{
    ROUTE(rmsnorm_forward, (out, rstd, inp, weight, N, C));
    cpu_rmsnorm_forward(out, rstd, inp, weight, N, C);
}

void rmsnorm_backward(real *dinp, real *dweight, const real *dout, const real *inp, const real
                      *weight, const real *rstd, int N, int C)
{
    ROUTE(rmsnorm_backward, (dinp, dweight, dout, inp, weight, rstd, N, C));
    cpu_rmsnorm_backward(dinp, dweight, dout, inp, weight, rstd, N, C);
}

void l2norm_forward(real *out, real *rnorm, const real *inp, int N, int C)
{
    ROUTE(l2norm_forward, (out, rnorm, inp, N, C));
    cpu_l2norm_forward(out, rnorm, inp, N, C);
}

void l2norm_backward(real *dinp, const real *dout, const real *inp, const real *rnorm, int N, int C)
{
    ROUTE(l2norm_backward, (dinp, dout, inp, rnorm, N, C));
    cpu_l2norm_backward(dinp, dout, inp, rnorm, N, C);
}

void act_forward(real *out, const real *inp, size_t n, act_kind kind)
{
    ROUTE(act_forward, (out, inp, n, kind));
    cpu_act_forward(out, inp, n, kind);
}

void act_backward(real *dinp, const real *dout, const real *inp, size_t n, act_kind kind)
{
    ROUTE(act_backward, (dinp, dout, inp, n, kind));
    cpu_act_backward(dinp, dout, inp, n, kind);
}

void swiglu_forward(real *out, const real *inp, int N, int H)
{
    ROUTE(swiglu_forward, (out, inp, N, H));
    cpu_swiglu_forward(out, inp, N, H);
}

void swiglu_backward(real *dinp, const real *dout, const real *inp, int N, int H)
{
    ROUTE(swiglu_backward, (dinp, dout, inp, N, H));
    cpu_swiglu_backward(dinp, dout, inp, N, H);
}

void conv4_silu_forward(real *out, real *pre, const real *inp, const real *w, int B, int T, int C)
{
    ROUTE(conv4_silu_forward, (out, pre, inp, w, B, T, C));
    cpu_conv4_silu_forward(out, pre, inp, w, B, T, C);
}

void conv4_silu_backward(real *dinp, real *dw, const real *dout, const real *inp, const real *pre,
                         const real *w, int B, int T, int C)
{
    ROUTE(conv4_silu_backward, (dinp, dw, dout, inp, pre, w, B, T, C));
    cpu_conv4_silu_backward(dinp, dw, dout, inp, pre, w, B, T, C);
}

void residual_add(real *h, const real *x, size_t n)
{
    ROUTE(residual_add, (h, x, n));
    cpu_residual_add(h, x, n);
}

void scale_inplace(real *x, size_t n, real s)
{
    ROUTE(scale_inplace, (x, n, s));
    cpu_scale_inplace(x, n, s);
}

double sum_squares(const real *x, size_t n)
{
    ROUTE_VALUE(sum_squares, (x, n));
    return cpu_sum_squares(x, n);
}

void rowdiv_forward(real *out, const real *num, const real *den, int N, int C, real eps)
{
    ROUTE(rowdiv_forward, (out, num, den, N, C, eps));
    cpu_rowdiv_forward(out, num, den, N, C, eps);
}

void rowdiv_backward(real *dnum, real *dden, const real *dout, const real *num, const real *den, int
                     N, int C, real eps)
{
    ROUTE(rowdiv_backward, (dnum, dden, dout, num, den, N, C, eps));
    cpu_rowdiv_backward(dnum, dden, dout, num, den, N, C, eps);
}

int crossentropy_forward(real *losses, real *probs, const real *logits, const int *targets, int N,
                         int V)
{
    ROUTE_VALUE(crossentropy_forward, (losses, probs, logits, targets, N, V));
    return cpu_crossentropy_forward(losses, probs, logits, targets, N, V);
}

void crossentropy_backward(real *dlogits, const real *probs, const int *targets, int N, int V, real
                           dloss)
{
    ROUTE(crossentropy_backward, (dlogits, probs, targets, N, V, dloss));
    cpu_crossentropy_backward(dlogits, probs, targets, N, V, dloss);
}

void adamw_update(real *p, const real *g, real *m, real *v, size_t n, real lr, real beta1, real
                  beta2, real eps, real weight_decay, int t)
{
    ROUTE(adamw_update, (p, g, m, v, n, lr, beta1, beta2, eps, weight_decay, t));
    cpu_adamw_update(p, g, m, v, n, lr, beta1, beta2, eps, weight_decay, t);
}

void crossentropy_rows_forward(real *losses, real *probs, const real *logits, const int *targets, int N,
                               int V)
{
    ROUTE(crossentropy_rows_forward, (losses, probs, logits, targets, N, V));
    cpu_crossentropy_rows_forward(losses, probs, logits, targets, N, V);
}

void argmax_rows(int *pred, const real *probs, int N, int V)
{
    ROUTE(argmax_rows, (pred, probs, N, V));
    cpu_argmax_rows(pred, probs, N, V);
}

void sum_squares_into(double *out, const real *x, size_t n)
{
    ROUTE(sum_squares_into, (out, x, n));
    cpu_sum_squares_into(out, x, n);
}

void crossentropy_backward_step(real *dlogits, const real *probs, const int *targets, int N, int V,
                                const step_scalars *s)
{
    ROUTE(crossentropy_backward_step, (dlogits, probs, targets, N, V, s));
    cpu_crossentropy_backward_step(dlogits, probs, targets, N, V, s);
}

void step_guard_update(step_guard *g, const real *loss_sum, double clip, const step_scalars *s)
{
    ROUTE(step_guard_update, (g, loss_sum, clip, s));
    cpu_step_guard_update(g, loss_sum, clip, s);
}

void adamw_update_guarded(real *p, real *g, real *m, real *v, size_t n, real beta1, real beta2, real eps,
                          real weight_decay, const step_scalars *s, const step_guard *guard)
{
    ROUTE(adamw_update_guarded, (p, g, m, v, n, beta1, beta2, eps, weight_decay, s, guard));
    cpu_adamw_update_guarded(p, g, m, v, n, beta1, beta2, eps, weight_decay, s, guard);
}

void rope_forward(real *out, const real *inp, int B, int T, int H, int D, real theta)
{
    ROUTE(rope_forward, (out, inp, B, T, H, D, theta));
    cpu_rope_forward(out, inp, B, T, H, D, theta);
}

void rope_backward(real *dinp, const real *dout, int B, int T, int H, int D, real theta)
{
    ROUTE(rope_backward, (dinp, dout, B, T, H, D, theta));
    cpu_rope_backward(dinp, dout, B, T, H, D, theta);
}

size_t attention_cache_len(int B, int T, int H, int D)
{
    ROUTE_VALUE(attention_cache_len, (B, T, H, D));
    return cpu_attention_cache_len(B, T, H, D);
}

void attention_forward(real *out, real *att, const real *q, const real *k, const real *v, int B, int
                       T, int H, int D)
{
    ROUTE(attention_forward, (out, att, q, k, v, B, T, H, D));
    cpu_attention_forward(out, att, q, k, v, B, T, H, D);
}

size_t attention_scratch_len(int B, int T, int H)
{
    ROUTE_VALUE(attention_scratch_len, (B, T, H));
    return cpu_attention_scratch_len(B, T, H);
}

void attention_backward(real *dq, real *dk, real *dv, real *scratch, const real *dout, const real
                        *att, const real *q, const real *k, const real *v, int B, int T, int H, int
                        D)
{
    ROUTE(attention_backward, (dq, dk, dv, scratch, dout, att, q, k, v, B, T, H, D));
    cpu_attention_backward(dq, dk, dv, scratch, dout, att, q, k, v, B, T, H, D);
}

size_t scan_delta_cache_len(int B, int T, int H, int K, int V)
{
    ROUTE_VALUE(scan_delta_cache_len, (B, T, H, K, V));
    return cpu_scan_delta_cache_len(B, T, H, K, V);
}

void scan_delta_forward(real *o, real *states, const real *q, const real *k, const real *v, const
                        real *beta, const real *alpha, int B, int T, int H, int K, int V, real
                        scale)
{
    ROUTE(scan_delta_forward, (o, states, q, k, v, beta, alpha, B, T, H, K, V, scale));
    cpu_scan_delta_forward(o, states, q, k, v, beta, alpha, B, T, H, K, V, scale);
}

size_t scan_delta_scratch_len(int B, int T, int H, int K, int V)
{
    ROUTE_VALUE(scan_delta_scratch_len, (B, T, H, K, V));
    return cpu_scan_delta_scratch_len(B, T, H, K, V);
}

void scan_delta_backward(real *dq, real *dk, real *dv, real *dbeta, real *dalpha, real *scratch,
                         const real *dout, const real *states, const real *q, const real *k, const
                         real *v, const real *beta, const real *alpha, int B, int T, int H, int K,
                         int V, real scale)
{
    ROUTE(scan_delta_backward, (dq, dk, dv, dbeta, dalpha, scratch, dout, states, q, k, v, beta, alpha, B, T, H, K, V, scale));
    cpu_scan_delta_backward(dq, dk, dv, dbeta, dalpha, scratch, dout, states, q, k, v, beta, alpha, B, T, H, K, V, scale);
}

void lstm_forward(real *h, real *c, real *gates, const real *gx, const real *R, int B, int T, int d)
{
    ROUTE(lstm_forward, (h, c, gates, gx, R, B, T, d));
    cpu_lstm_forward(h, c, gates, gx, R, B, T, d);
}

size_t lstm_scratch_len(int B, int d)
{
    ROUTE_VALUE(lstm_scratch_len, (B, d));
    return cpu_lstm_scratch_len(B, d);
}

void lstm_backward(real *dgx, real *dR, real *scratch, const real *dh, const real *h, const real *c,
                   const real *gates, const real *R, int B, int T, int d)
{
    ROUTE(lstm_backward, (dgx, dR, scratch, dh, h, c, gates, R, B, T, d));
    cpu_lstm_backward(dgx, dR, scratch, dh, h, c, gates, R, B, T, d);
}

size_t elman_scratch_len(int B, int T, int d, int H)
{
    ROUTE_VALUE(elman_scratch_len, (B, T, d, H));
    return cpu_elman_scratch_len(B, T, d, H);
}

void elman_forward(real *h, real *scratch, const real *gx, const real *R, int B, int T, int d, int
                   H)
{
    ROUTE(elman_forward, (h, scratch, gx, R, B, T, d, H));
    cpu_elman_forward(h, scratch, gx, R, B, T, d, H);
}

void elman_backward(real *dgx, real *dR, real *scratch, const real *dh, const real *h, const real
                    *R, int B, int T, int d, int H)
{
    ROUTE(elman_backward, (dgx, dR, scratch, dh, h, R, B, T, d, H));
    cpu_elman_backward(dgx, dR, scratch, dh, h, R, B, T, d, H);
}

size_t gru_scratch_len(int B, int T, int d, int H)
{
    ROUTE_VALUE(gru_scratch_len, (B, T, d, H));
    return cpu_gru_scratch_len(B, T, d, H);
}

void gru_forward(real *h, real *gates, real *scratch, const real *gx, const real *R, int B, int T,
                 int d, int H)
{
    ROUTE(gru_forward, (h, gates, scratch, gx, R, B, T, d, H));
    cpu_gru_forward(h, gates, scratch, gx, R, B, T, d, H);
}

void gru_backward(real *dgx, real *dR, real *scratch, const real *dh, const real *h, const real
                  *gates, const real *R, int B, int T, int d, int H)
{
    ROUTE(gru_backward, (dgx, dR, scratch, dh, h, gates, R, B, T, d, H));
    cpu_gru_backward(dgx, dR, scratch, dh, h, gates, R, B, T, d, H);
}

size_t slstm_scratch_len(int B, int T, int d, int H)
{
    ROUTE_VALUE(slstm_scratch_len, (B, T, d, H));
    return cpu_slstm_scratch_len(B, T, d, H);
}

void slstm_forward(real *h, real *c, real *n, real *gates, real *scratch, const real *gx, const real
                   *R, int B, int T, int d, int H)
{
    ROUTE(slstm_forward, (h, c, n, gates, scratch, gx, R, B, T, d, H));
    cpu_slstm_forward(h, c, n, gates, scratch, gx, R, B, T, d, H);
}

void slstm_backward(real *dgx, real *dR, real *scratch, const real *dh, const real *h, const real
                    *c, const real *n, const real *gates, const real *R, int B, int T, int d, int H)
{
    ROUTE(slstm_backward, (dgx, dR, scratch, dh, h, c, n, gates, R, B, T, d, H));
    cpu_slstm_backward(dgx, dR, scratch, dh, h, c, n, gates, R, B, T, d, H);
}

void mingru_gates_forward(real *a, real *b, const real *pz, const real *ph, size_t n, int
                          eigen_signed)
{
    ROUTE(mingru_gates_forward, (a, b, pz, ph, n, eigen_signed));
    cpu_mingru_gates_forward(a, b, pz, ph, n, eigen_signed);
}

void mingru_gates_backward(real *dpz, real *dph, const real *da, const real *db, const real *pz,
                           const real *ph, size_t n, int eigen_signed)
{
    ROUTE(mingru_gates_backward, (dpz, dph, da, db, pz, ph, n, eigen_signed));
    cpu_mingru_gates_backward(dpz, dph, da, db, pz, ph, n, eigen_signed);
}

void minlstm_gates_forward(real *a, real *b, const real *pf, const real *pi, const real *ph, size_t
                           n)
{
    ROUTE(minlstm_gates_forward, (a, b, pf, pi, ph, n));
    cpu_minlstm_gates_forward(a, b, pf, pi, ph, n);
}

void minlstm_gates_backward(real *dpf, real *dpi, real *dph, const real *da, const real *db, const
                            real *pf, const real *pi, const real *ph, size_t n)
{
    ROUTE(minlstm_gates_backward, (dpf, dpi, dph, da, db, pf, pi, ph, n));
    cpu_minlstm_gates_backward(dpf, dpi, dph, da, db, pf, pi, ph, n);
}

void hgrn_gates_forward(real *a, real *b, const real *pf, const real *pi, size_t n, int
                        eigen_signed)
{
    ROUTE(hgrn_gates_forward, (a, b, pf, pi, n, eigen_signed));
    cpu_hgrn_gates_forward(a, b, pf, pi, n, eigen_signed);
}

void hgrn_gates_backward(real *dpf, real *dpi, const real *da, const real *db, const real *pf, const
                         real *pi, size_t n, int eigen_signed)
{
    ROUTE(hgrn_gates_backward, (dpf, dpi, da, db, pf, pi, n, eigen_signed));
    cpu_hgrn_gates_backward(dpf, dpi, da, db, pf, pi, n, eigen_signed);
}

void silu_gate_forward(real *out, const real *x, const real *g, size_t n)
{
    ROUTE(silu_gate_forward, (out, x, g, n));
    cpu_silu_gate_forward(out, x, g, n);
}

void silu_gate_backward(real *dx, real *dg, const real *dout, const real *x, const real *g, size_t
                        n)
{
    ROUTE(silu_gate_backward, (dx, dg, dout, x, g, n));
    cpu_silu_gate_backward(dx, dg, dout, x, g, n);
}

void scan_diag_forward(real *h, const real *a, const real *b, int B, int T, int C)
{
    ROUTE(scan_diag_forward, (h, a, b, B, T, C));
    cpu_scan_diag_forward(h, a, b, B, T, C);
}

void scan_diag_backward(real *da, real *db, const real *dh, const real *h, const real *a, int B, int
                        T, int C)
{
    ROUTE(scan_diag_backward, (da, db, dh, h, a, B, T, C));
    cpu_scan_diag_backward(da, db, dh, h, a, B, T, C);
}

void scan_diag_complex_forward(real *h, const real *a, const real *x, int B, int T, int C)
{
    ROUTE(scan_diag_complex_forward, (h, a, x, B, T, C));
    cpu_scan_diag_complex_forward(h, a, x, B, T, C);
}

void scan_diag_complex_backward(real *dx, real *da, const real *dh, const real *h, const real *a,
                                int B, int T, int C)
{
    ROUTE(scan_diag_complex_backward, (dx, da, dh, h, a, B, T, C));
    cpu_scan_diag_complex_backward(dx, da, dh, h, a, B, T, C);
}

void lru_params_forward(real *lambda, real *B_norm, const real *nu_log, const real *theta_log, const
                        real *B, int N, int H)
{
    ROUTE(lru_params_forward, (lambda, B_norm, nu_log, theta_log, B, N, H));
    cpu_lru_params_forward(lambda, B_norm, nu_log, theta_log, B, N, H);
}

void lru_params_backward(real *dnu_log, real *dtheta_log, real *dB, const real *dlambda, const real
                         *dB_norm, const real *nu_log, const real *theta_log, const real *B, int N,
                         int H)
{
    ROUTE(lru_params_backward, (dnu_log, dtheta_log, dB, dlambda, dB_norm, nu_log, theta_log, B, N, H));
    cpu_lru_params_backward(dnu_log, dtheta_log, dB, dlambda, dB_norm, nu_log, theta_log, B, N, H);
}

size_t s4d_scan_cache_len(int B, int T, int C, int M)
{
    ROUTE_VALUE(s4d_scan_cache_len, (B, T, C, M));
    return cpu_s4d_scan_cache_len(B, T, C, M);
}

void s4d_scan_forward(real *y, real *cache, const real *u, const real *log_dt, const real *A_re_log,
                      const real *A_im, const real *Cm, const real *D, int B, int T, int C, int M)
{
    ROUTE(s4d_scan_forward, (y, cache, u, log_dt, A_re_log, A_im, Cm, D, B, T, C, M));
    cpu_s4d_scan_forward(y, cache, u, log_dt, A_re_log, A_im, Cm, D, B, T, C, M);
}

size_t s4d_scan_scratch_len(int B, int T, int C, int M)
{
    ROUTE_VALUE(s4d_scan_scratch_len, (B, T, C, M));
    return cpu_s4d_scan_scratch_len(B, T, C, M);
}

void s4d_scan_backward(real *du, real *dlog_dt, real *dA_re_log, real *dA_im, real *dCm, real *dD,
                       real *scratch, const real *dy, const real *cache, const real *u, const real
                       *log_dt, const real *A_re_log, const real *A_im, const real *Cm, const real
                       *D, int B, int T, int C, int M)
{
    ROUTE(s4d_scan_backward, (du, dlog_dt, dA_re_log, dA_im, dCm, dD, scratch, dy, cache, u, log_dt, A_re_log, A_im, Cm, D, B, T, C, M));
    cpu_s4d_scan_backward(du, dlog_dt, dA_re_log, dA_im, dCm, dD, scratch, dy, cache, u, log_dt, A_re_log, A_im, Cm, D, B, T, C, M);
}

size_t selective_scan_cache_len(int B, int T, int Di, int N)
{
    ROUTE_VALUE(selective_scan_cache_len, (B, T, Di, N));
    return cpu_selective_scan_cache_len(B, T, Di, N);
}

void selective_scan_forward(real *y, real *cache, const real *u, const real *dt_pre, const real
                            *A_log, const real *Bm, const real *Cm, const real *D, const real *z,
                            int eigen_signed, int B, int T, int Di, int N)
{
    ROUTE(selective_scan_forward, (y, cache, u, dt_pre, A_log, Bm, Cm, D, z, eigen_signed, B, T, Di, N));
    cpu_selective_scan_forward(y, cache, u, dt_pre, A_log, Bm, Cm, D, z, eigen_signed, B, T, Di, N);
}

size_t selective_scan_scratch_len(int B, int T, int Di, int N)
{
    ROUTE_VALUE(selective_scan_scratch_len, (B, T, Di, N));
    return cpu_selective_scan_scratch_len(B, T, Di, N);
}

void selective_scan_backward(real *du, real *ddt_pre, real *dA_log, real *dBm, real *dCm, real *dD,
                             real *dz, real *scratch, const real *dy, const real *cache, const real
                             *u, const real *dt_pre, const real *Bm, const real *Cm, const real *D,
                             const real *z, int eigen_signed, int B, int T, int Di, int N)
{
    ROUTE(selective_scan_backward, (du, ddt_pre, dA_log, dBm, dCm, dD, dz, scratch, dy, cache, u, dt_pre, Bm, Cm, D, z, eigen_signed, B, T, Di, N));
    cpu_selective_scan_backward(du, ddt_pre, dA_log, dBm, dCm, dD, dz, scratch, dy, cache, u, dt_pre, Bm, Cm, D, z, eigen_signed, B, T, Di, N);
}

void ssd_decay_forward(real *dt, real *alpha, const real *dt_pre, const real *A_log, int
                       eigen_signed, int R, int H)
{
    ROUTE(ssd_decay_forward, (dt, alpha, dt_pre, A_log, eigen_signed, R, H));
    cpu_ssd_decay_forward(dt, alpha, dt_pre, A_log, eigen_signed, R, H);
}

void ssd_decay_backward(real *ddt_pre, real *dA_log, const real *ddt, const real *dalpha, const real
                        *dt_pre, const real *A_log, int eigen_signed, int R, int H)
{
    ROUTE(ssd_decay_backward, (ddt_pre, dA_log, ddt, dalpha, dt_pre, A_log, eigen_signed, R, H));
    cpu_ssd_decay_backward(ddt_pre, dA_log, ddt, dalpha, dt_pre, A_log, eigen_signed, R, H);
}

void head_repeat_forward(real *out, const real *inp, int R, int H, int K)
{
    ROUTE(head_repeat_forward, (out, inp, R, H, K));
    cpu_head_repeat_forward(out, inp, R, H, K);
}

void head_repeat_backward(real *dinp, const real *dout, int R, int H, int K)
{
    ROUTE(head_repeat_backward, (dinp, dout, R, H, K));
    cpu_head_repeat_backward(dinp, dout, R, H, K);
}

void head_scale_forward(real *out, const real *inp, const real *s, int R, int H, int P)
{
    ROUTE(head_scale_forward, (out, inp, s, R, H, P));
    cpu_head_scale_forward(out, inp, s, R, H, P);
}

void head_scale_backward(real *dinp, real *ds, const real *dout, const real *inp, const real *s, int
                         R, int H, int P)
{
    ROUTE(head_scale_backward, (dinp, ds, dout, inp, s, R, H, P));
    cpu_head_scale_backward(dinp, ds, dout, inp, s, R, H, P);
}

void skip_add_forward(real *y, const real *x, const real *D, int R, int G, int P)
{
    ROUTE(skip_add_forward, (y, x, D, R, G, P));
    cpu_skip_add_forward(y, x, D, R, G, P);
}

void skip_add_backward(real *dx, real *dD, const real *dy, const real *x, const real *D, int R, int
                       G, int P)
{
    ROUTE(skip_add_backward, (dx, dD, dy, x, D, R, G, P));
    cpu_skip_add_backward(dx, dD, dy, x, D, R, G, P);
}

void scan_delta_vec_forward(real *o, real *states, const real *q, const real *k, const real *v,
                            const real *alpha, int B, int T, int H, int K, int V, real scale)
{
    ROUTE(scan_delta_vec_forward, (o, states, q, k, v, alpha, B, T, H, K, V, scale));
    cpu_scan_delta_vec_forward(o, states, q, k, v, alpha, B, T, H, K, V, scale);
}

void scan_delta_vec_backward(real *dq, real *dk, real *dv, real *dalpha, real *scratch, const real
                             *dout, const real *states, const real *q, const real *k, const real *v,
                             const real *alpha, int B, int T, int H, int K, int V, real scale)
{
    ROUTE(scan_delta_vec_backward, (dq, dk, dv, dalpha, scratch, dout, states, q, k, v, alpha, B, T, H, K, V, scale));
    cpu_scan_delta_vec_backward(dq, dk, dv, dalpha, scratch, dout, states, q, k, v, alpha, B, T, H, K, V, scale);
}

void sigmoid_pow_forward(real *out, const real *inp, size_t n, real p, int eigen_signed)
{
    ROUTE(sigmoid_pow_forward, (out, inp, n, p, eigen_signed));
    cpu_sigmoid_pow_forward(out, inp, n, p, eigen_signed);
}

void sigmoid_pow_backward(real *dinp, const real *dout, const real *inp, size_t n, real p, int
                          eigen_signed)
{
    ROUTE(sigmoid_pow_backward, (dinp, dout, inp, n, p, eigen_signed));
    cpu_sigmoid_pow_backward(dinp, dout, inp, n, p, eigen_signed);
}

void mlstm_gates_forward(real *fgate, real *igate, real *m, const real *f_pre, const real *i_pre,
                         int B, int T, int H)
{
    ROUTE(mlstm_gates_forward, (fgate, igate, m, f_pre, i_pre, B, T, H));
    cpu_mlstm_gates_forward(fgate, igate, m, f_pre, i_pre, B, T, H);
}

void mlstm_gates_backward(real *df_pre, real *di_pre, const real *dfgate, const real *digate, const
                          real *dm, const real *fgate, const real *igate, const real *m, const real
                          *f_pre, const real *i_pre, int B, int T, int H)
{
    ROUTE(mlstm_gates_backward, (df_pre, di_pre, dfgate, digate, dm, fgate, igate, m, f_pre, i_pre, B, T, H));
    cpu_mlstm_gates_backward(df_pre, di_pre, dfgate, digate, dm, fgate, igate, m, f_pre, i_pre, B, T, H);
}

void mlstm_den_forward(real *den, const real *nq, const real *m, size_t n)
{
    ROUTE(mlstm_den_forward, (den, nq, m, n));
    cpu_mlstm_den_forward(den, nq, m, n);
}

void mlstm_den_backward(real *dnq, real *dm, const real *dden, const real *nq, const real *m, size_t
                        n)
{
    ROUTE(mlstm_den_backward, (dnq, dm, dden, nq, m, n));
    cpu_mlstm_den_backward(dnq, dm, dden, nq, m, n);
}

void fill_rows(real *out, const double *row, int N, int C)
{
    ROUTE(fill_rows, (out, row, N, C));
    cpu_fill_rows(out, row, N, C);
}
