// dense.cu: the CUDA backend's dense ops: gemm (cuBLAS), embedding, norms,
// activations, swiglu, conv4 + SiLU, elementwise helpers and the gradient
// norm. Semantics are ops.h's, element for element those of
// kernels/cpu/dense.c; sums the CPU takes in double are taken here in float
// per thread and warp (row lengths are model widths: the rounding stays near
// float epsilon), except sum_squares, which stays double throughout.
#include <cuda_bf16.h>

#include "cuda_common.h"
#include "ops_cuda.h"

// ---- matmul (cuBLAS, column-major: a row-major (R,C) matrix is a
// column-major (C,R) one with leading dimension C) ---------------------------

// out (N,OC) rows = bias (OC)
__global__ void bias_rows_kernel(float *out, const float *bias, size_t n, int OC)
{
    for (size_t i = SB_GRID_START; i < n; i += SB_GRID_STRIDE) out[i] = bias[i % OC];
}

// Column sums of a row-major (R,C) matrix, added into out (C): blocks of 32
// columns, 32 row lanes per column, a fixed order (deterministic).
template <typename F>
__global__ void col_sum_kernel(float *out, int R, int C, F value)
{
    __shared__ float part[32][33];
    const int c = blockIdx.x * 32 + threadIdx.x;
    float acc = 0;
    if (c < C)
        for (int r = threadIdx.y; r < R; r += 32) acc += value(r, c);
    part[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && c < C) {
        float s = 0;
        for (int k = 0; k < 32; k++) s += part[k][threadIdx.x];
        out[c] += s;
    }
}

template <typename F>
static void col_sum(float *out, int R, int C, F value)
{
    if (R <= 0 || C <= 0) return;
    col_sum_kernel<<<sb_cdiv((size_t)C, 32), dim3(32, 32), 0, sb_cuda_stream()>>>(out, R, C, value);
    CUDA_CHECK_LAST();
}

struct plain_value {
    const float *x;
    int C;
    __device__ float operator()(int r, int c) const { return x[(size_t)r * C + c]; }
};

// ---- bf16 gemms (cuda_ops_bf16: train.precision bf16) ----
// Each operand is rounded to bf16 (round to nearest even) into a scratch
// slot of the backend (sb_cuda_bf16_scratch), and cublasGemmEx multiplies
// them with fp32 accumulation (CUBLAS_COMPUTE_32F) into the fp32 result,
// alpha and beta as in cublasSgemm. The operands are the ops' whole
// contiguous matrices, so a copy is a plain n-element conversion. Only
// these projections (almost all of a model's FLOPs) go to bf16: the
// recurrent cells' per-step gemms (lstm.cu, rnn_cell.cu) stay fp32 (small,
// latency-bound, and their rounding would compound over the T steps), as
// do the fused attention kernels, the scans and everything else.

__global__ void to_bf16_kernel(__nv_bfloat16 *out, const float *in, size_t n)
{
    for (size_t i = SB_GRID_START; i < n; i += SB_GRID_STRIDE) out[i] = __float2bfloat16_rn(in[i]);
}

static const __nv_bfloat16 *bf16_copy(int slot, const float *x, size_t n)
{
    __nv_bfloat16 *b = (__nv_bfloat16 *)sb_cuda_bf16_scratch(slot, n);
    to_bf16_kernel<<<sb_grid(n, SB_BLOCK), SB_BLOCK, 0, sb_cuda_stream()>>>(b, x, n);
    CUDA_CHECK_LAST();
    return b;
}

// cublasSgemm's C = alpha op(A) op(B) + beta C with A and B already bf16.
static void gemm_bf16(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const __nv_bfloat16 *A,
                      int lda, const __nv_bfloat16 *B, int ldb, float beta, float *C, int ldc)
{
    const float one = 1;
    CUBLAS_CHECK(cublasGemmEx(sb_cublas(), ta, tb, m, n, k, &one, A, CUDA_R_16BF, lda, B, CUDA_R_16BF, ldb, &beta, C,
                              CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

extern "C" void cuda_matmul_forward(float *out, const float *inp, const float *weight,
                                    const float *bias, int N, int C, int OC)
{
    if (N <= 0 || OC <= 0) return;
    const float one = 1, zero = 0;
    if (bias) {
        const size_t n = (size_t)N * OC;
        bias_rows_kernel<<<sb_grid(n, SB_BLOCK), SB_BLOCK, 0, sb_cuda_stream()>>>(out, bias, n, OC);
        CUDA_CHECK_LAST();
    } else if (C <= 0) {
        CUDA_CHECK(cudaMemsetAsync(out, 0, (size_t)N * OC * sizeof *out, sb_cuda_stream()));
    }
    if (C <= 0) return;
    // out^T (OC,N) = W (OC,C) . inp^T (C,N)
    if (cuda_ops_bf16()) {
        const __nv_bfloat16 *w16 = bf16_copy(0, weight, (size_t)OC * C), *x16 = bf16_copy(1, inp, (size_t)N * C);
        gemm_bf16(CUBLAS_OP_T, CUBLAS_OP_N, OC, N, C, w16, C, x16, C, bias ? one : zero, out, OC);
        return;
    }
    CUBLAS_CHECK(cublasSgemm(sb_cublas(), CUBLAS_OP_T, CUBLAS_OP_N, OC, N, C, &one, weight, C, inp, C,
                             bias ? &one : &zero, out, OC));
}

extern "C" void cuda_matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                                     const float *inp, const float *weight, int N, int C, int OC)
{
    if (N <= 0 || OC <= 0) return;
    const float one = 1;
    if (C > 0 && cuda_ops_bf16()) {
        // as below; dout rounded once (slot 1), W then inp in slot 0 (stream order)
        const __nv_bfloat16 *d16 = bf16_copy(1, dout, (size_t)N * OC);
        if (dinp) {
            const __nv_bfloat16 *w16 = bf16_copy(0, weight, (size_t)OC * C);
            gemm_bf16(CUBLAS_OP_N, CUBLAS_OP_N, C, N, OC, w16, C, d16, OC, one, dinp, C);
        }
        const __nv_bfloat16 *x16 = bf16_copy(0, inp, (size_t)N * C);
        gemm_bf16(CUBLAS_OP_N, CUBLAS_OP_T, C, OC, N, x16, C, d16, OC, one, dweight, C);
    } else if (C > 0) {
        // dinp^T (C,N) += W^T (C,OC) . dout^T (OC,N)
        if (dinp)
            CUBLAS_CHECK(cublasSgemm(sb_cublas(), CUBLAS_OP_N, CUBLAS_OP_N, C, N, OC, &one, weight, C, dout,
                                     OC, &one, dinp, C));
        // dweight^T (C,OC) += inp^T (C,N) . dout (N,OC)
        CUBLAS_CHECK(cublasSgemm(sb_cublas(), CUBLAS_OP_N, CUBLAS_OP_T, C, OC, N, &one, inp, C, dout, OC,
                                 &one, dweight, C));
    }
    if (dbias) col_sum(dbias, N, OC, plain_value{dout, OC});
}

// ---- embedding ---------------------------------------------------------

__global__ void embedding_forward_kernel(float *out, const int *tokens, const float *wte,
                                         const float *wpe, int T, int C, size_t n)
{
    for (size_t i = SB_GRID_START; i < n; i += SB_GRID_STRIDE) {
        const size_t bt = i / C;
        const int c = (int)(i % C);
        float v = wte[(size_t)tokens[bt] * C + c];
        if (wpe) v += wpe[(bt % T) * C + c];
        out[i] = v;
    }
}

extern "C" void cuda_embedding_forward(float *out, const int *tokens, const float *wte,
                                       const float *wpe, int B, int T, int C)
{
    const size_t n = (size_t)B * T * C;
    if (!n) return;
    embedding_forward_kernel<<<sb_grid(n, SB_BLOCK), SB_BLOCK, 0, sb_cuda_stream()>>>(out, tokens, wte, wpe,
                                                                                     T, C, n);
    CUDA_CHECK_LAST();
}

// Tokens repeat, so many positions add into one row of dwte. No atomics
// (their order, hence the last bits, would vary from run to run): one warp
// per (token v, segment of positions) lists the segment's positions holding
// v, EMB_CHUNK at a time in position order, and sums their rows of dout
// (lanes over channels) in that order. Segments of EMB_SEG positions keep
// the chain of adds short when few tokens fill a long batch; their sums go
// to part[s] and embedding_parts_sum_kernel adds them up in segment order.
// add: one segment, summed straight into dwte (out).
#define EMB_SEG 1024
#define EMB_CHUNK 256
__global__ void embedding_backward_kernel(float *out, const float *dout, const int *tokens, int C, int N, int V,
                                          int seg_len, bool add)
{
    __shared__ int list[EMB_CHUNK];
    const int v = blockIdx.x, seg = blockIdx.y, lane = threadIdx.x;
    const int start = seg * seg_len, end = min(N, start + seg_len);
    float *o = out + ((size_t)(add ? 0 : seg) * V + v) * C; // out (V,C) when add, else part (segments,V,C)
    if (!add && start >= end) { // an empty last segment still owns its rows of part
        for (int c = lane; c < C; c += 32) o[c] = 0;
        return;
    }
    bool first = !add;
    for (int c0 = start; c0 < end; c0 += EMB_CHUNK) {
        const int c1 = min(end, c0 + EMB_CHUNK);
        int n = 0;
        for (int base = c0; base < c1; base += 32) {
            const int i = base + lane;
            const bool hit = i < c1 && tokens[i] == v;
            const unsigned match = __ballot_sync(0xffffffffu, hit);
            if (hit) list[n + __popc(match & ((1u << lane) - 1))] = i;
            n += __popc(match);
        }
        __syncwarp();
        if (n || first)
            for (int c = lane; c < C; c += 32) {
                float acc = 0;
                for (int k = 0; k < n; k++) acc += dout[(size_t)list[k] * C + c];
                o[c] = first ? acc : o[c] + acc;
            }
        first = false;
        __syncwarp(); // the next chunk rewrites list
    }
}

// dwte (V,C) += the segments' sums part (segments,V,C), in segment order.
__global__ void embedding_parts_sum_kernel(float *dwte, const float *part, size_t n, int segments)
{
    for (size_t i = SB_GRID_START; i < n; i += SB_GRID_STRIDE) {
        float acc = 0;
        for (int s = 0; s < segments; s++) acc += part[(size_t)s * n + i];
        dwte[i] += acc;
    }
}

// dwpe (t,c) += sum_b dout (b,t,c)
__global__ void position_backward_kernel(float *dwpe, const float *dout, int B, int T, int C)
{
    const size_t n = (size_t)T * C;
    for (size_t i = SB_GRID_START; i < n; i += SB_GRID_STRIDE) {
        float acc = 0;
        for (int b = 0; b < B; b++) acc += dout[(size_t)b * n + i];
        dwpe[i] += acc;
    }
}

extern "C" void cuda_embedding_backward(float *dwte, float *dwpe, const float *dout, const int *tokens,
                                        int B, int T, int C, int V)
{
    const int N = B * T;
    if (!N || !C || V <= 0) return;
    // segments of EMB_SEG positions, as many as the reduction scratch holds
    const size_t table = (size_t)V * C, fit = SB_CUDA_REDUCE_BYTES / sizeof(float) / table;
    int segments = (int)sb_cdiv((size_t)N, EMB_SEG);
    if ((size_t)segments > fit) segments = fit ? (int)fit : 1;
    const int seg_len = (int)sb_cdiv((size_t)N, (size_t)segments);
    float *part = segments > 1 ? (float *)sb_cuda_reduce_scratch() : dwte;
    embedding_backward_kernel<<<dim3((unsigned)V, (unsigned)segments), 32, 0, sb_cuda_stream()>>>(
        part, dout, tokens, C, N, V, seg_len, segments == 1);
    CUDA_CHECK_LAST();
    if (segments > 1) {
        embedding_parts_sum_kernel<<<sb_grid(table, SB_BLOCK), SB_BLOCK, 0, sb_cuda_stream()>>>(dwte, part, table,
                                                                                               segments);
        CUDA_CHECK_LAST();
    }
    if (!dwpe) return;
    position_backward_kernel<<<sb_grid((size_t)T * C, SB_BLOCK), SB_BLOCK, 0, sb_cuda_stream()>>>(
        dwpe, dout, B, T, C);
    CUDA_CHECK_LAST();
}

// ---- rmsnorm and l2norm: one warp per row -------------------------------

#define ROWS_PER_BLOCK 8 // warps of a 256-thread block

static unsigned row_blocks(int N) { return sb_cdiv((size_t)N, ROWS_PER_BLOCK); }

// weight NULL: l2norm (no mean, no weight); else rmsnorm.
__global__ void norm_forward_kernel(float *out, float *rstd, const float *inp, const float *weight,
                                    int N, int C)
{
    const int row = blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= N) return;
    const float *x = inp + (size_t)row * C;
    float *o = out + (size_t)row * C;
    float ss = 0;
    for (int c = lane; c < C; c += 32) ss += x[c] * x[c];
    ss = sb_warp_sum(ss);
    const float r = weight ? (float)(1.0 / sqrt((double)ss / C + 1e-6)) : (float)(1.0 / sqrt((double)ss + 1e-6));
    if (lane == 0) rstd[row] = r;
    for (int c = lane; c < C; c += 32) o[c] = weight ? x[c] * r * weight[c] : x[c] * r;
}

// rms: dx += r w dy - r^3 x (sum_c dy w x) / C; l2 (weight NULL): dx += r dy - r^3 x (sum_c dy x)
__global__ void norm_backward_kernel(float *dinp, const float *dout, const float *inp,
                                     const float *weight, const float *rstd, int N, int C)
{
    const int row = blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= N) return;
    const float *x = inp + (size_t)row * C, *dy = dout + (size_t)row * C;
    float *dx = dinp + (size_t)row * C;
    float dot = 0;
    for (int c = lane; c < C; c += 32) dot += dy[c] * (weight ? weight[c] : 1.0f) * x[c];
    dot = sb_warp_sum(dot);
    const float r = rstd[row];
    const float k = (float)((double)r * r * r * dot / (weight ? C : 1));
    for (int c = lane; c < C; c += 32) dx[c] += r * (weight ? weight[c] : 1.0f) * dy[c] - k * x[c];
}

struct rms_weight_grad {
    const float *dout, *inp, *rstd;
    int C;
    __device__ float operator()(int r, int c) const
    {
        const size_t i = (size_t)r * C + c;
        return dout[i] * inp[i] * rstd[r];
    }
};

extern "C" void cuda_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight, int N,
                                     int C)
{
    if (N <= 0) return;
    norm_forward_kernel<<<row_blocks(N), 32 * ROWS_PER_BLOCK, 0, sb_cuda_stream()>>>(out, rstd, inp, weight,
                                                                                    N, C);
    CUDA_CHECK_LAST();
}

extern "C" void cuda_rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                                      const float *weight, const float *rstd, int N, int C)
{
    if (N <= 0) return;
    norm_backward_kernel<<<row_blocks(N), 32 * ROWS_PER_BLOCK, 0, sb_cuda_stream()>>>(dinp, dout, inp,
                                                                                     weight, rstd, N, C);
    CUDA_CHECK_LAST();
    col_sum(dweight, N, C, rms_weight_grad{dout, inp, rstd, C});
}

extern "C" void cuda_l2norm_forward(float *out, float *rnorm, const float *inp, int N, int C)
{
    if (N <= 0) return;
    norm_forward_kernel<<<row_blocks(N), 32 * ROWS_PER_BLOCK, 0, sb_cuda_stream()>>>(out, rnorm, inp, NULL,
                                                                                    N, C);
    CUDA_CHECK_LAST();
}

extern "C" void cuda_l2norm_backward(float *dinp, const float *dout, const float *inp, const float *rnorm,
                                     int N, int C)
{
    if (N <= 0) return;
    norm_backward_kernel<<<row_blocks(N), 32 * ROWS_PER_BLOCK, 0, sb_cuda_stream()>>>(dinp, dout, inp, NULL,
                                                                                     rnorm, N, C);
    CUDA_CHECK_LAST();
}

// ---- pointwise activations ---------------------------------------------

__device__ __forceinline__ float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }
__device__ __forceinline__ float silu_slope(float x)
{
    const float s = sigmoidf(x);
    return s * (1.0f + x * (1.0f - s));
}
#define GELU_K0 0.7978845608028654f
#define GELU_K1 0.044715f

__device__ __forceinline__ float act_value(float x, int kind)
{
    switch (kind) {
    case ACT_IDENTITY: return x;
    case ACT_SIGMOID: return sigmoidf(x);
    case ACT_SIGMOID2: return 2.0f * sigmoidf(x);
    case ACT_SILU: return x * sigmoidf(x);
    case ACT_GELU: return 0.5f * x * (1.0f + tanhf(GELU_K0 * (x + GELU_K1 * x * x * x)));
    case ACT_ELU1: return x > 0 ? x + 1.0f : expf(x);
    default: return x > 0 ? x : 0.0f; // ACT_RELU (checked on the host)
    }
}

__device__ __forceinline__ float act_slope(float x, int kind)
{
    switch (kind) {
    case ACT_IDENTITY: return 1.0f;
    case ACT_SIGMOID: { const float s = sigmoidf(x); return s * (1.0f - s); }
    case ACT_SIGMOID2: { const float s = sigmoidf(x); return 2.0f * s * (1.0f - s); }
    case ACT_SILU: return silu_slope(x);
    case ACT_GELU: {
        const float th = tanhf(GELU_K0 * (x + GELU_K1 * x * x * x));
        return 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * GELU_K0 * (1.0f + 3.0f * GELU_K1 * x * x);
    }
    case ACT_ELU1: return x > 0 ? 1.0f : expf(x);
    default: return x > 0 ? 1.0f : 0.0f;
    }
}

static void check_act(act_kind kind)
{
    if (kind < ACT_IDENTITY || kind > ACT_RELU) {
        fprintf(stderr, "statebench: act kind %d is not an act_kind\n", (int)kind);
        exit(1);
    }
}

__global__ void act_forward_kernel(float *out, const float *inp, size_t n, int kind)
{
    for (size_t i = SB_GRID_START; i < n; i += SB_GRID_STRIDE) out[i] = act_value(inp[i], kind);
}

__global__ void act_backward_kernel(float *dinp, const float *dout, const float *inp, size_t n, int kind)
{
    for (size_t i = SB_GRID_START; i < n; i += SB_GRID_STRIDE) dinp[i] += act_slope(inp[i], kind) * dout[i];
}

extern "C" void cuda_act_forward(float *out, const float *inp, size_t n, act_kind kind)
{
    check_act(kind);
    if (!n) return;
    act_forward_kernel<<<sb_grid(n, SB_BLOCK), SB_BLOCK, 0, sb_cuda_stream()>>>(out, inp, n, (int)kind);
    CUDA_CHECK_LAST();
}

extern "C" void cuda_act_backward(float *dinp, const float *dout, const float *inp, size_t n, act_kind kind)
{
    check_act(kind);
    if (!n) return;
    act_backward_kernel<<<sb_grid(n, SB_BLOCK), SB_BLOCK, 0, sb_cuda_stream()>>>(dinp, dout, inp, n,
                                                                                (int)kind);
    CUDA_CHECK_LAST();
}

__global__ void swiglu_forward_kernel(float *out, const float *inp, int H, size_t n)
{
    for (size_t i = SB_GRID_START; i < n; i += SB_GRID_STRIDE) {
        const size_t row = i / H, j = i % H;
        const float gate = inp[row * 2 * H + j], up = inp[row * 2 * H + H + j];
        out[i] = gate * sigmoidf(gate) * up;
    }
}

__global__ void swiglu_backward_kernel(float *dinp, const float *dout, const float *inp, int H, size_t n)
{
    for (size_t i = SB_GRID_START; i < n; i += SB_GRID_STRIDE) {
        const size_t row = i / H, j = i % H, g = row * 2 * H + j;
        const float gate = inp[g], up = inp[g + H], dy = dout[i];
        dinp[g] += dy * up * silu_slope(gate);
        dinp[g + H] += dy * gate * sigmoidf(gate);
    }
}

extern "C" void cuda_swiglu_forward(float *out, const float *inp, int N, int H)
{
    const size_t n = (size_t)N * H;
    if (!n) return;
    swiglu_forward_kernel<<<sb_grid(n, SB_BLOCK), SB_BLOCK, 0, sb_cuda_stream()>>>(out, inp, H, n);
    CUDA_CHECK_LAST();
}

extern "C" void cuda_swiglu_backward(float *dinp, const float *dout, const float *inp, int N, int H)
{
    const size_t n = (size_t)N * H;
    if (!n) return;
    swiglu_backward_kernel<<<sb_grid(n, SB_BLOCK), SB_BLOCK, 0, sb_cuda_stream()>>>(dinp, dout, inp, H, n);
    CUDA_CHECK_LAST();
}

__global__ void silu_gate_forward_kernel(float *out, const float *x, const float *g, size_t n)
{
    for (size_t i = SB_GRID_START; i < n; i += SB_GRID_STRIDE) out[i] = x[i] * g[i] * sigmoidf(g[i]);
}

__global__ void silu_gate_backward_kernel(float *dx, float *dg, const float *dout, const float *x,
                                          const float *g, size_t n)
{
    for (size_t i = SB_GRID_START; i < n; i += SB_GRID_STRIDE) {
        const float s = sigmoidf(g[i]);
        dx[i] += dout[i] * g[i] * s;
        dg[i] += dout[i] * x[i] * s * (1.0f + g[i] * (1.0f - s));
    }
}

extern "C" void cuda_silu_gate_forward(float *out, const float *x, const float *g, size_t n)
{
    if (!n) return;
    silu_gate_forward_kernel<<<sb_grid(n, SB_BLOCK), SB_BLOCK, 0, sb_cuda_stream()>>>(out, x, g, n);
    CUDA_CHECK_LAST();
}

extern "C" void cuda_silu_gate_backward(float *dx, float *dg, const float *dout, const float *x,
                                        const float *g, size_t n)
{
    if (!n) return;
    silu_gate_backward_kernel<<<sb_grid(n, SB_BLOCK), SB_BLOCK, 0, sb_cuda_stream()>>>(dx, dg, dout, x, g, n);
    CUDA_CHECK_LAST();
}

// ---- conv4 + silu -------------------------------------------------------

// pre[b,t,c] = sum_{j >= 3-t} w[c,j] inp[b,t-3+j,c]; out = silu(pre)
__global__ void conv4_forward_kernel(float *out, float *pre, const float *inp, const float *w, int T,
                                     int C, size_t n)
{
    for (size_t i = SB_GRID_START; i < n; i += SB_GRID_STRIDE) {
        const int c = (int)(i % C), t = (int)(i / C % T);
        float acc = 0;
        for (int j = t < 3 ? 3 - t : 0; j < 4; j++) acc += w[(size_t)c * 4 + j] * inp[i - (size_t)(3 - j) * C];
        pre[i] = acc;
        out[i] = acc * sigmoidf(acc);
    }
}

// dinp[b,s,c] += sum_j w[c,j] dpre[b,s+3-j,c] over s+3-j < T, with
// dpre = dout silu'(pre), recomputed per tap (a gather: no write conflicts).
__global__ void conv4_backward_input_kernel(float *dinp, const float *dout, const float *pre,
                                            const float *w, int T, int C, size_t n)
{
    for (size_t i = SB_GRID_START; i < n; i += SB_GRID_STRIDE) {
        const int c = (int)(i % C), s = (int)(i / C % T);
        float acc = 0;
        for (int j = 0; j < 4; j++) {
            const int t = s + 3 - j;
            if (t >= T) continue;
            const size_t o = i + (size_t)(3 - j) * C;
            acc += w[(size_t)c * 4 + j] * dout[o] * silu_slope(pre[o]);
        }
        dinp[i] += acc;
    }
}

// dw[c,j] += sum_{b,t >= 3-j} dpre[b,t,c] inp[b,t-3+j,c]: blocks of 32
// channels, 32 row lanes, the four taps at once.
__global__ void conv4_backward_weight_kernel(float *dw, const float *dout, const float *inp,
                                             const float *pre, int R, int T, int C)
{
    __shared__ float part[4][32][33];
    const int c = blockIdx.x * 32 + threadIdx.x;
    float acc[4] = {0, 0, 0, 0};
    if (c < C)
        for (int r = threadIdx.y; r < R; r += 32) {
            const size_t i = (size_t)r * C + c;
            const int t = r % T;
            const float dpre = dout[i] * silu_slope(pre[i]);
            for (int j = t < 3 ? 3 - t : 0; j < 4; j++) acc[j] += dpre * inp[i - (size_t)(3 - j) * C];
        }
    for (int j = 0; j < 4; j++) part[j][threadIdx.y][threadIdx.x] = acc[j];
    __syncthreads();
    if (threadIdx.y < 4 && c < C) {
        const int j = threadIdx.y;
        float s = 0;
        for (int k = 0; k < 32; k++) s += part[j][k][threadIdx.x];
        dw[(size_t)c * 4 + j] += s;
    }
}

extern "C" void cuda_conv4_silu_forward(float *out, float *pre, const float *inp, const float *w, int B,
                                        int T, int C)
{
    const size_t n = (size_t)B * T * C;
    if (!n) return;
    conv4_forward_kernel<<<sb_grid(n, SB_BLOCK), SB_BLOCK, 0, sb_cuda_stream()>>>(out, pre, inp, w, T, C, n);
    CUDA_CHECK_LAST();
}

extern "C" void cuda_conv4_silu_backward(float *dinp, float *dw, const float *dout, const float *inp,
                                         const float *pre, const float *w, int B, int T, int C)
{
    const size_t n = (size_t)B * T * C;
    if (!n) return;
    conv4_backward_input_kernel<<<sb_grid(n, SB_BLOCK), SB_BLOCK, 0, sb_cuda_stream()>>>(dinp, dout, pre, w,
                                                                                        T, C, n);
    CUDA_CHECK_LAST();
    conv4_backward_weight_kernel<<<sb_cdiv((size_t)C, 32), dim3(32, 32), 0, sb_cuda_stream()>>>(
        dw, dout, inp, pre, B * T, T, C);
    CUDA_CHECK_LAST();
}

// ---- elementwise helpers -----------------------------------------------

__global__ void residual_add_kernel(float *h, const float *x, size_t n)
{
    for (size_t i = SB_GRID_START; i < n; i += SB_GRID_STRIDE) h[i] += x[i];
}

__global__ void scale_kernel(float *x, size_t n, float s)
{
    for (size_t i = SB_GRID_START; i < n; i += SB_GRID_STRIDE) x[i] *= s;
}

extern "C" void cuda_residual_add(float *h, const float *x, size_t n)
{
    if (!n) return;
    residual_add_kernel<<<sb_grid(n, SB_BLOCK), SB_BLOCK, 0, sb_cuda_stream()>>>(h, x, n);
    CUDA_CHECK_LAST();
}

extern "C" void cuda_scale_inplace(float *x, size_t n, float s)
{
    if (!n) return;
    if (s == 0) { // exact zeros, NaN and inf included, as on the CPU
        CUDA_CHECK(cudaMemsetAsync(x, 0, n * sizeof *x, sb_cuda_stream()));
        return;
    }
    scale_kernel<<<sb_grid(n, SB_BLOCK), SB_BLOCK, 0, sb_cuda_stream()>>>(x, n, s);
    CUDA_CHECK_LAST();
}

// Sum of squares in double: each of SUMSQ_BLOCKS blocks sums a grid-stride
// share into part[block]; one block then adds the parts in a fixed order.
#define SUMSQ_BLOCKS 256
__global__ void sum_squares_kernel(double *part, const float *x, size_t n)
{
    __shared__ double warp_part[SB_BLOCK / 32];
    double acc = 0;
    for (size_t i = SB_GRID_START; i < n; i += SB_GRID_STRIDE) acc += (double)x[i] * x[i];
    for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
    if (threadIdx.x % 32 == 0) warp_part[threadIdx.x / 32] = acc;
    __syncthreads();
    if (threadIdx.x == 0) {
        double s = 0;
        for (int w = 0; w < SB_BLOCK / 32; w++) s += warp_part[w];
        part[blockIdx.x] = s;
    }
}

__global__ void sum_parts_kernel(double *total, const double *part, int parts)
{
    double s = 0;
    for (int i = 0; i < parts; i++) s += part[i];
    *total = s;
}

extern "C" double cuda_sum_squares(const float *x, size_t n)
{
    if (!n) return 0;
    static_assert((SUMSQ_BLOCKS + 1) * sizeof(double) <= SB_CUDA_SCRATCH_BYTES, "scratch too small");
    double *part = (double *)sb_cuda_scratch(), *total = part + SUMSQ_BLOCKS;
    sum_squares_kernel<<<SUMSQ_BLOCKS, SB_BLOCK, 0, sb_cuda_stream()>>>(part, x, n);
    CUDA_CHECK_LAST();
    sum_parts_kernel<<<1, 1, 0, sb_cuda_stream()>>>(total, part, SUMSQ_BLOCKS);
    CUDA_CHECK_LAST();
    double result = 0;
    CUDA_CHECK(cudaMemcpyAsync(&result, total, sizeof result, cudaMemcpyDeviceToHost, sb_cuda_stream()));
    CUDA_CHECK(cudaStreamSynchronize(sb_cuda_stream()));
    return result;
}

// ---- rowdiv ------------------------------------------------------------

__global__ void rowdiv_forward_kernel(float *out, const float *num, const float *den, int C, size_t n,
                                      float eps)
{
    for (size_t i = SB_GRID_START; i < n; i += SB_GRID_STRIDE) out[i] = num[i] * (1.0f / (den[i / C] + eps));
}

// one warp per row: dnum += dout / (den + eps); dden -= (dout . num) / (den + eps)^2
__global__ void rowdiv_backward_kernel(float *dnum, float *dden, const float *dout, const float *num,
                                       const float *den, int N, int C, float eps)
{
    const int row = blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= N) return;
    const float inv = 1.0f / (den[row] + eps);
    float dot = 0;
    for (int c = lane; c < C; c += 32) {
        const size_t i = (size_t)row * C + c;
        dnum[i] += dout[i] * inv;
        dot += dout[i] * num[i];
    }
    dot = sb_warp_sum(dot);
    if (lane == 0) dden[row] -= (float)((double)dot * inv * inv);
}

extern "C" void cuda_rowdiv_forward(float *out, const float *num, const float *den, int N, int C, float eps)
{
    const size_t n = (size_t)N * C;
    if (!n) return;
    rowdiv_forward_kernel<<<sb_grid(n, SB_BLOCK), SB_BLOCK, 0, sb_cuda_stream()>>>(out, num, den, C, n, eps);
    CUDA_CHECK_LAST();
}

extern "C" void cuda_rowdiv_backward(float *dnum, float *dden, const float *dout, const float *num,
                                     const float *den, int N, int C, float eps)
{
    if (N <= 0) return;
    rowdiv_backward_kernel<<<row_blocks(N), 32 * ROWS_PER_BLOCK, 0, sb_cuda_stream()>>>(dnum, dden, dout, num,
                                                                                       den, N, C, eps);
    CUDA_CHECK_LAST();
}
