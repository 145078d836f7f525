// attention.cu: CUDA rotary embedding and causal softmax attention (cuBLAS strided-batched gemms + row softmax kernels).
//
// Semantics and the att cache are those of kernels/cpu/attention.c (see
// ops.h): att (B,H,T,T) holds the probabilities with the upper triangle 0,
// which the backward reads. Per head (b,h), S = D^-1/2 Q K^T, P = softmax
// over the causal row; backward dV = P^T dO, dP = dO V^T,
// dS = P * (dP - rowsum(P * dP)), dQ = scale dS K, dK = scale dS^T Q (scale
// folded into dS).
//
// Batching: for one head h the B matrices Q_bh lie a constant T H D apart and
// the att blocks H T T apart, so each gemm is one strided-batched call over b
// per head (H calls). The gemms run over whole T x T blocks; the softmax
// kernels write every element of a row (0 above the diagonal), so nothing
// above the diagonal leaks into P V or the gradients. A flash kernel that
// skips the masked half is the next step.
//
// cuBLAS is column-major: a row-major (rows, cols) matrix with row stride ld
// is, to cuBLAS, its (cols, rows) transpose with leading dimension ld.
#include "cuda_common.h"
#include "ops_cuda.h"

#include <type_traits>

static_assert(std::is_same<real, float>::value, "the CUDA backend is float only");

#define ATT_WARPS 8 // rows per block of the softmax kernels, one warp each

// ---- rotary embedding ---------------------------------------------------------

// out = R(sign * angle) inp (accumulate: out +=) for every pair (2i, 2i+1) of
// x (B,T,H,D) at position t, angle t theta^(-2i/D). The angle, its sine and
// cosine are computed in double like the CPU's, then rounded to float.
__global__ void rope_kernel(float *out, const float *inp, int B, int T, int H, int D,
                            double theta, double sign, int accumulate)
{
    const int half = D / 2;
    const size_t n = (size_t)B * T * H * half;
    for (size_t p = SB_GRID_START; p < n; p += SB_GRID_STRIDE) {
        const int i = (int)(p % half);
        const int t = (int)((p / half / H) % T);
        const double angle = sign * t * pow(theta, -2.0 * i / D);
        double sd, cd;
        sincos(angle, &sd, &cd);
        const float c = (float)cd, s = (float)sd;
        const size_t j = 2 * p; // pair p starts at element 2p of (B,T,H,D)
        const float x0 = inp[j], x1 = inp[j + 1];
        const float y0 = x0 * c - x1 * s, y1 = x0 * s + x1 * c;
        if (accumulate) {
            out[j] += y0;
            out[j + 1] += y1;
        } else {
            out[j] = y0;
            out[j + 1] = y1;
        }
    }
}

static void rope_launch(const char *op, float *out, const float *inp, int B, int T, int H,
                        int D, real theta, double sign, int accumulate)
{
    if (D % 2 != 0) {
        char msg[96];
        snprintf(msg, sizeof msg, "head size D = %d must be even for rotary embedding", D);
        sb_cuda_fail(__FILE__, __LINE__, op, msg);
    }
    const size_t n = (size_t)B * T * H * (D / 2);
    if (n == 0) return;
    rope_kernel<<<sb_grid(n, SB_BLOCK), SB_BLOCK, 0, sb_cuda_stream()>>>(
        out, inp, B, T, H, D, (double)theta, sign, accumulate);
    CUDA_CHECK_LAST();
}

void cuda_rope_forward(real *out, const real *inp, int B, int T, int H, int D,
                                  real theta)
{
    rope_launch("rope_forward", out, inp, B, T, H, D, theta, 1.0, 0);
}

void cuda_rope_backward(real *dinp, const real *dout, int B, int T, int H, int D,
                                   real theta)
{
    rope_launch("rope_backward", dinp, dout, B, T, H, D, theta, -1.0, 1);
}

// ---- causal softmax attention -------------------------------------------------

// In place on rows (nrows, T) of scaled scores, row r at query position r % T:
// the causal softmax over columns 0..r%T, zeros after. One warp per row.
__global__ void att_softmax_kernel(float *att, size_t nrows, int T)
{
    const int lane = threadIdx.x & 31;
    const size_t r = (size_t)blockIdx.x * ATT_WARPS + (threadIdx.x >> 5);
    if (r >= nrows) return; // whole warps leave together
    float *p = att + r * T;
    const int last = (int)(r % T); // keys 0..last are visible
    float mx = -INFINITY;
    for (int j = lane; j <= last; j += 32) mx = fmaxf(mx, p[j]);
    mx = sb_warp_max(mx);
    float sum = 0;
    for (int j = lane; j <= last; j += 32) {
        const float e = expf(p[j] - mx);
        p[j] = e;
        sum += e;
    }
    const float inv = 1.0f / sb_warp_sum(sum);
    for (int j = lane; j < T; j += 32) p[j] = j <= last ? p[j] * inv : 0.0f;
}

// Softmax backward for head h, in place on dS (B,T,T) holding dP:
// dS = scale P * (dP - rowsum(P * dP)) on and below the diagonal, 0 above.
// att (B,H,T,T). One warp per row.
__global__ void att_softmax_bwd_kernel(float *dS, const float *att, int B, int T, int H, int h,
                                       float scale)
{
    const int lane = threadIdx.x & 31;
    const size_t r = (size_t)blockIdx.x * ATT_WARPS + (threadIdx.x >> 5);
    if (r >= (size_t)B * T) return;
    const int b = (int)(r / T), i = (int)(r % T);
    float *ds = dS + r * T;
    const float *p = att + (((size_t)b * H + h) * T + i) * T;
    float dot = 0;
    for (int j = lane; j <= i; j += 32) dot += p[j] * ds[j];
    dot = sb_warp_sum(dot);
    for (int j = lane; j < T; j += 32) ds[j] = j <= i ? scale * p[j] * (ds[j] - dot) : 0.0f;
}

void cuda_attention_forward(real *out, real *att, const real *q, const real *k,
                                       const real *v, int B, int T, int H, int D)
{
    // out, q, k, v (B,T,H,D); att (B,H,T,T)
    if (B < 1 || T < 1 || H < 1 || D < 1) return;
    const int ld = H * D;                                  // row stride of q, k, v, out
    const long long s_x = (long long)T * ld, s_att = (long long)H * T * T; // batch strides over b
    const float scale = (float)(1.0 / sqrt((double)D)), one = 1.0f, zero = 0.0f;
    cublasHandle_t hb = sb_cublas();
    for (int h = 0; h < H; h++) // att_bh (T,T) = scale Q_bh K_bh^T
        CUBLAS_CHECK(cublasSgemmStridedBatched(hb, CUBLAS_OP_T, CUBLAS_OP_N, T, T, D, &scale,
                                               k + (size_t)h * D, ld, s_x, q + (size_t)h * D, ld,
                                               s_x, &zero, att + (size_t)h * T * T, T, s_att, B));
    const size_t rows = (size_t)B * H * T;
    att_softmax_kernel<<<sb_cdiv(rows, ATT_WARPS), ATT_WARPS * 32, 0, sb_cuda_stream()>>>(
        att, rows, T);
    CUDA_CHECK_LAST();
    for (int h = 0; h < H; h++) // out_bh (T,D) = P_bh V_bh
        CUBLAS_CHECK(cublasSgemmStridedBatched(hb, CUBLAS_OP_N, CUBLAS_OP_N, D, T, T, &one,
                                               v + (size_t)h * D, ld, s_x,
                                               att + (size_t)h * T * T, T, s_att, &zero,
                                               out + (size_t)h * D, ld, s_x, B));
}

// One head's dP / dS for every batch: (B,T,T). The CPU needs B H min(T,64) T.
size_t cuda_attention_scratch_len(int B, int T, int H)
{
    return (size_t)B * T * T;
}

void cuda_attention_backward(real *dq, real *dk, real *dv, real *scratch,
                                        const real *dout, const real *att, const real *q,
                                        const real *k, const real *v, int B, int T, int H,
                                        int D)
{
    // dq, dk, dv, dout, q, k, v (B,T,H,D); att (B,H,T,T); scratch (B,T,T)
    if (B < 1 || T < 1 || H < 1 || D < 1) return;
    const int ld = H * D;
    const long long s_x = (long long)T * ld, s_att = (long long)H * T * T, s_ds = (long long)T * T;
    const float scale = (float)(1.0 / sqrt((double)D)), one = 1.0f, zero = 0.0f;
    cublasHandle_t hb = sb_cublas();
    float *dS = scratch;
    for (int h = 0; h < H; h++) {
        const size_t xo = (size_t)h * D;
        const float *P = att + (size_t)h * T * T;
        // dV_bh (T,D) += P^T dO
        CUBLAS_CHECK(cublasSgemmStridedBatched(hb, CUBLAS_OP_N, CUBLAS_OP_T, D, T, T, &one,
                                               dout + xo, ld, s_x, P, T, s_att, &one, dv + xo,
                                               ld, s_x, B));
        // dP_b (T,T) = dO V^T
        CUBLAS_CHECK(cublasSgemmStridedBatched(hb, CUBLAS_OP_T, CUBLAS_OP_N, T, T, D, &one,
                                               v + xo, ld, s_x, dout + xo, ld, s_x, &zero, dS, T,
                                               s_ds, B));
        att_softmax_bwd_kernel<<<sb_cdiv((size_t)B * T, ATT_WARPS), ATT_WARPS * 32, 0,
                                 sb_cuda_stream()>>>(dS, att, B, T, H, h, scale);
        CUDA_CHECK_LAST();
        // dQ_bh (T,D) += dS K
        CUBLAS_CHECK(cublasSgemmStridedBatched(hb, CUBLAS_OP_N, CUBLAS_OP_N, D, T, T, &one,
                                               k + xo, ld, s_x, dS, T, s_ds, &one, dq + xo, ld,
                                               s_x, B));
        // dK_bh (T,D) += dS^T Q
        CUBLAS_CHECK(cublasSgemmStridedBatched(hb, CUBLAS_OP_N, CUBLAS_OP_T, D, T, T, &one,
                                               q + xo, ld, s_x, dS, T, s_ds, &one, dk + xo, ld,
                                               s_x, B));
    }
}
