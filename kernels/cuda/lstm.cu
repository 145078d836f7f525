// lstm.cu: CUDA LSTM over a sequence: one persistent kernel with R on chip when it fits (rnn_persist.cu), else per step one cuBLAS gemm for R h_{t-1}, then one fused pointwise kernel.
//
// Paths: the forward runs as one launch of rnn_persist.cu's kernel (R, 4 d^2
// floats, in shared memory, blocks over batch slices, all T steps inside)
// when R and a row's state fit in the device's opt-in shared memory (d <=
// 120 with 227 KiB, sm_90; d <= 101 with 163 KiB, sm_80); the backward as
// one single-block launch with R and dR in shared memory when 8 d^2 + 10 B d
// floats fit (d = 64: B <= 39 on sm_90). Otherwise, and for larger d, the
// per-step path below (2 launches a step forward, 3 backward). Both paths
// write and read the same caches.
//
// Semantics and caches are those of kernels/cpu/lstm.c (see ops.h): gx (B,T,4d)
// precomputed, gate order i, f, g, o; gates caches the activated s(i), s(f),
// tanh(g), s(o). The forward lets the gemm write R h_{t-1} into the step's
// slot of gates and the pointwise kernel adds gx there, so the step needs no
// scratch. The backward uses the CPU's scratch (lstm_scratch_len = 6 B d):
// dpre (B,4d), dh_carry and dc_carry (B,d).
//
// cuBLAS is column-major: a row-major (rows, cols) matrix with row stride ld
// is, to cuBLAS, its (cols, rows) transpose with leading dimension ld.
#include "cuda_common.h"
#include "ops_cuda.h"
#include "rnn_cells.cuh"
#include "rnn_persist.h"

#include <type_traits>

static_assert(std::is_same<real, float>::value, "the CUDA backend is float only");

// Step t, one thread per (b, j): gates_t = activations of gx_t (+ R h_{t-1},
// already in gates_t when t > 0), then c_t and h_t.
__global__ void lstm_fwd_step_kernel(float *h, float *c, float *gates, const float *gx, int B,
                                     int T, int d, int t)
{
    // h,c (B,T,d), gates,gx (B,T,4d)
    const size_t n = (size_t)B * d;
    for (size_t idx = SB_GRID_START; idx < n; idx += SB_GRID_STRIDE) {
        const int b = (int)(idx / d), j = (int)(idx % d);
        const size_t g0 = ((size_t)b * T + t) * 4 * d, h0 = ((size_t)b * T + t) * d;
        const float *x = gx + g0;
        float *a = gates + g0;
        float pi = x[j], pf = x[d + j], pg = x[2 * d + j], po = x[3 * d + j];
        if (t > 0) {
            pi += a[j];
            pf += a[d + j];
            pg += a[2 * d + j];
            po += a[3 * d + j];
        }
        const float ig = rnn_sigmoid(pi), fg = rnn_sigmoid(pf), gg = tanhf(pg),
                    og = rnn_sigmoid(po);
        a[j] = ig;
        a[d + j] = fg;
        a[2 * d + j] = gg;
        a[3 * d + j] = og;
        const float ct = (t > 0 ? fg * c[h0 - d + j] : 0.0f) + ig * gg;
        c[h0 + j] = ct;
        h[h0 + j] = og * tanhf(ct);
    }
}

void cuda_lstm_forward(real *h, real *c, real *gates, const real *gx, const real *R,
                                  int B, int T, int d)
{
    // h,c (B,T,d), gates,gx (B,T,4d), R (4d,d)
    if (B < 1 || T < 1 || d < 1) return;
    if (rnn_persist_forward(RP_LSTM, h, c, nullptr, gates, gx, R, B, T, d, 1)) return;
    const int G = 4 * d;
    const float one = 1.0f, zero = 0.0f;
    cudaStream_t st = sb_cuda_stream();
    cublasHandle_t hb = sb_cublas();
    const unsigned grid = sb_grid((size_t)B * d, SB_BLOCK);
    for (int t = 0; t < T; t++) {
        if (t > 0) // gates_t (B,4d; row stride T 4d) = h_{t-1} (B,d; row stride T d) R^T
            CUBLAS_CHECK(cublasSgemm(hb, CUBLAS_OP_T, CUBLAS_OP_N, G, B, d, &one, R, d,
                                     h + (size_t)(t - 1) * d, T * d, &zero,
                                     gates + (size_t)t * G, T * G));
        lstm_fwd_step_kernel<<<grid, SB_BLOCK, 0, st>>>(h, c, gates, gx, B, T, d, t);
        CUDA_CHECK_LAST();
    }
}

// Step t backward, one thread per (b, j): dpre_t from dh_t + dh_carry and
// dc_carry; adds it into dgx_t; dc_carry becomes the gradient into c_{t-1}.
__global__ void lstm_bwd_step_kernel(float *dgx, float *dpre, const float *dh_carry,
                                     float *dc_carry, const float *dh, const float *c,
                                     const float *gates, int B, int T, int d, int t)
{
    // dgx,gates (B,T,4d), dpre (B,4d), dh_carry,dc_carry (B,d), dh,c (B,T,d)
    const size_t n = (size_t)B * d;
    for (size_t idx = SB_GRID_START; idx < n; idx += SB_GRID_STRIDE) {
        const int b = (int)(idx / d), j = (int)(idx % d);
        const size_t g0 = ((size_t)b * T + t) * 4 * d, h0 = ((size_t)b * T + t) * d;
        const float *a = gates + g0;
        const rnn_lstm_grad l = rnn_lstm_cell_back(dh[h0 + j] + dh_carry[idx], dc_carry[idx], a[j], a[d + j],
                                                   a[2 * d + j], a[3 * d + j], c[h0 + j],
                                                   t > 0 ? c[h0 - d + j] : 0.0f, t > 0);
        float *dp = dpre + (size_t)b * 4 * d;
        dp[j] = l.di;
        dp[d + j] = l.df;
        dp[2 * d + j] = l.dg;
        dp[3 * d + j] = l.dout;
        float *dg_t = dgx + g0;
        dg_t[j] += l.di;
        dg_t[d + j] += l.df;
        dg_t[2 * d + j] += l.dg;
        dg_t[3 * d + j] += l.dout;
        dc_carry[idx] = l.cc;
    }
}

size_t cuda_lstm_scratch_len(int B, int d) { return (size_t)6 * B * d; }

void cuda_lstm_backward(real *dgx, real *dR, real *scratch, const real *dh,
                                   const real *h, const real *c, const real *gates,
                                   const real *R, int B, int T, int d)
{
    // dgx,gates (B,T,4d), dR,R (4d,d), dh,h,c (B,T,d), scratch (6 B d)
    if (B < 1 || T < 1 || d < 1) return;
    if (rnn_persist_lstm_backward(dgx, dR, dh, h, c, gates, R, B, T, d)) return;
    const int G = 4 * d;
    const float one = 1.0f, zero = 0.0f;
    cudaStream_t st = sb_cuda_stream();
    cublasHandle_t hb = sb_cublas();
    float *dpre = scratch;                      // (B,4d)
    float *dh_carry = dpre + (size_t)B * G;     // (B,d)
    float *dc_carry = dh_carry + (size_t)B * d; // (B,d)
    CUDA_CHECK(cudaMemsetAsync(dh_carry, 0, (size_t)2 * B * d * sizeof(float), st));
    const unsigned grid = sb_grid((size_t)B * d, SB_BLOCK);
    for (int t = T - 1; t >= 0; t--) {
        lstm_bwd_step_kernel<<<grid, SB_BLOCK, 0, st>>>(dgx, dpre, dh_carry, dc_carry, dh, c,
                                                        gates, B, T, d, t);
        CUDA_CHECK_LAST();
        if (t > 0) {
            // dR (4d,d) += dpre^T (4d,B) h_{t-1} (B,d; row stride T d)
            CUBLAS_CHECK(cublasSgemm(hb, CUBLAS_OP_N, CUBLAS_OP_T, d, G, B, &one,
                                     h + (size_t)(t - 1) * d, T * d, dpre, G, &one, dR, d));
            // dh_carry (B,d) = dpre (B,4d) R (4d,d)
            CUBLAS_CHECK(cublasSgemm(hb, CUBLAS_OP_N, CUBLAS_OP_N, d, B, G, &one, R, d, dpre, G,
                                     &zero, dh_carry, d));
        }
    }
}
