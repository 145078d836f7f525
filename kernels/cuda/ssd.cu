// ssd.cu: CUDA versions of mamba2's pointwise ops around its scan (the decay
// from dt and A, head broadcast and scaling, the D skip).
//
// Semantics are those of kernels/cpu/ssd_ops.c (see ops.h), element for
// element. The CPU sums each head's dA_log and each group's dD over the rows
// in double; here one block per head (group) sums in float per thread, then
// in a fixed order over the block (sb_block_sum): no atomics, results do not
// vary between runs. Every other output element is written by one thread.
#include "cuda_common.h"
#include "ops_cuda.h"

#include <type_traits>

static_assert(std::is_same<real, float>::value, "the CUDA backend is float only");

// softplus as the CPU computes it (linear above 20), and the sigmoid
__device__ __forceinline__ float ssd_softplus(float x) { return x > 20.0f ? x : log1pf(expf(x)); }
__device__ __forceinline__ float ssd_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

// threads of the reduction blocks (a multiple of 32, as sb_block_sum needs)
#define SSD_RED_THREADS 256

// ---- ssd_decay ---------------------------------------------------------------

__global__ void ssd_decay_fwd_kernel(float *dt, float *alpha, const float *dt_pre,
                                     const float *A_log, int signed_map, int H, size_t n)
{
    // dt, alpha, dt_pre (R,H); A_log (H)
    for (size_t i = SB_GRID_START; i < n; i += SB_GRID_STRIDE) {
        const float d = ssd_softplus(dt_pre[i]), e = expf(-d * expf(A_log[i % H]));
        dt[i] = d;
        alpha[i] = signed_map ? 2.0f * e - 1.0f : e;
    }
}

// grid (H); block SSD_RED_THREADS: threads stride over the rows of head h.
__global__ void ssd_decay_bwd_kernel(float *ddt_pre, float *dA_log, const float *ddt,
                                     const float *dalpha, const float *dt_pre,
                                     const float *A_log, float kmap, int R, int H)
{
    const int h = blockIdx.x;
    const float a = expf(A_log[h]);
    float acc = 0;
    for (int r = threadIdx.x; r < R; r += blockDim.x) {
        const size_t i = (size_t)r * H + h;
        const float d = ssd_softplus(dt_pre[i]), x = -d * a;
        const float dx = dalpha ? dalpha[i] * kmap * expf(x) : 0.0f; // dL/dx
        const float dd = (ddt ? ddt[i] : 0.0f) - dx * a;             // dL/d dt
        ddt_pre[i] += dd * ssd_sigmoid(dt_pre[i]);
        acc += dx * x;
    }
    acc = sb_block_sum(acc);
    if (threadIdx.x == 0) dA_log[h] += acc;
}

void cuda_ssd_decay_forward(real *dt, real *alpha, const real *dt_pre, const real *A_log,
                            int eigen_signed, int R, int H)
{
    const size_t n = (size_t)R * H;
    if (R < 1 || H < 1) return;
    ssd_decay_fwd_kernel<<<sb_grid(n, SB_BLOCK), SB_BLOCK, 0, sb_cuda_stream()>>>(
        dt, alpha, dt_pre, A_log, eigen_signed != 0, H, n);
    CUDA_CHECK_LAST();
}

void cuda_ssd_decay_backward(real *ddt_pre, real *dA_log, const real *ddt, const real *dalpha,
                             const real *dt_pre, const real *A_log, int eigen_signed, int R,
                             int H)
{
    if (R < 1 || H < 1) return;
    ssd_decay_bwd_kernel<<<H, SSD_RED_THREADS, 0, sb_cuda_stream()>>>(
        ddt_pre, dA_log, ddt, dalpha, dt_pre, A_log, eigen_signed ? 2.0f : 1.0f, R, H);
    CUDA_CHECK_LAST();
}

// ---- head_repeat ---------------------------------------------------------------

__global__ void head_repeat_fwd_kernel(float *out, const float *inp, int H, int K, size_t n)
{
    // out (R,H,K), inp (R,K)
    for (size_t i = SB_GRID_START; i < n; i += SB_GRID_STRIDE) {
        const size_t r = i / ((size_t)H * K);
        out[i] = inp[r * K + i % K];
    }
}

// one thread per element of dinp (R,K), summing the heads in order
__global__ void head_repeat_bwd_kernel(float *dinp, const float *dout, int H, int K, size_t n)
{
    for (size_t i = SB_GRID_START; i < n; i += SB_GRID_STRIDE) {
        const size_t r = i / K, k = i % K;
        float s = 0;
        for (int h = 0; h < H; h++) s += dout[(r * H + h) * K + k];
        dinp[i] += s;
    }
}

void cuda_head_repeat_forward(real *out, const real *inp, int R, int H, int K)
{
    const size_t n = (size_t)R * H * K;
    if (R < 1 || H < 1 || K < 1) return;
    head_repeat_fwd_kernel<<<sb_grid(n, SB_BLOCK), SB_BLOCK, 0, sb_cuda_stream()>>>(out, inp, H, K, n);
    CUDA_CHECK_LAST();
}

void cuda_head_repeat_backward(real *dinp, const real *dout, int R, int H, int K)
{
    const size_t n = (size_t)R * K;
    if (R < 1 || H < 1 || K < 1) return;
    head_repeat_bwd_kernel<<<sb_grid(n, SB_BLOCK), SB_BLOCK, 0, sb_cuda_stream()>>>(dinp, dout, H, K, n);
    CUDA_CHECK_LAST();
}

// ---- head_scale ----------------------------------------------------------------

__global__ void head_scale_fwd_kernel(float *out, const float *inp, const float *s, int P, size_t n)
{
    // out, inp (R,H,P); s (R,H)
    for (size_t i = SB_GRID_START; i < n; i += SB_GRID_STRIDE) out[i] = s[i / P] * inp[i];
}

// one warp per (r,h): dinp elementwise, ds the warp's sum over p
__global__ void head_scale_bwd_kernel(float *dinp, float *ds, const float *dout, const float *inp,
                                      const float *s, int P, size_t rows)
{
    const size_t warps = SB_GRID_STRIDE / 32;
    const int lane = threadIdx.x & 31;
    for (size_t rh = SB_GRID_START / 32; rh < rows; rh += warps) {
        const float sv = s[rh];
        float acc = 0;
        for (int p = lane; p < P; p += 32) {
            const size_t i = rh * P + p;
            dinp[i] += dout[i] * sv;
            acc += dout[i] * inp[i];
        }
        acc = sb_warp_sum(acc);
        if (lane == 0) ds[rh] += acc;
    }
}

void cuda_head_scale_forward(real *out, const real *inp, const real *s, int R, int H, int P)
{
    const size_t n = (size_t)R * H * P;
    if (R < 1 || H < 1 || P < 1) return;
    head_scale_fwd_kernel<<<sb_grid(n, SB_BLOCK), SB_BLOCK, 0, sb_cuda_stream()>>>(out, inp, s, P, n);
    CUDA_CHECK_LAST();
}

void cuda_head_scale_backward(real *dinp, real *ds, const real *dout, const real *inp,
                              const real *s, int R, int H, int P)
{
    const size_t rows = (size_t)R * H;
    if (R < 1 || H < 1 || P < 1) return;
    head_scale_bwd_kernel<<<sb_grid(rows * 32, SB_BLOCK), SB_BLOCK, 0, sb_cuda_stream()>>>(
        dinp, ds, dout, inp, s, P, rows);
    CUDA_CHECK_LAST();
}

// ---- skip_add ------------------------------------------------------------------

__global__ void skip_add_fwd_kernel(float *y, const float *x, const float *D, int G, int P, size_t n)
{
    // y, x (R,G,P); D (G)
    for (size_t i = SB_GRID_START; i < n; i += SB_GRID_STRIDE) y[i] += D[i / P % G] * x[i];
}

__global__ void skip_add_bwd_dx_kernel(float *dx, const float *dy, const float *D, int G, int P,
                                       size_t n)
{
    for (size_t i = SB_GRID_START; i < n; i += SB_GRID_STRIDE) dx[i] += dy[i] * D[i / P % G];
}

// grid (G); block SSD_RED_THREADS: threads stride over the (r,p) of group g.
__global__ void skip_add_bwd_dD_kernel(float *dD, const float *dy, const float *x, int R, int G,
                                       int P)
{
    const int g = blockIdx.x;
    const size_t m = (size_t)R * P;
    float acc = 0;
    for (size_t j = threadIdx.x; j < m; j += blockDim.x) {
        const size_t i = ((j / P) * G + g) * P + j % P;
        acc += dy[i] * x[i];
    }
    acc = sb_block_sum(acc);
    if (threadIdx.x == 0) dD[g] += acc;
}

void cuda_skip_add_forward(real *y, const real *x, const real *D, int R, int G, int P)
{
    const size_t n = (size_t)R * G * P;
    if (R < 1 || G < 1 || P < 1) return;
    skip_add_fwd_kernel<<<sb_grid(n, SB_BLOCK), SB_BLOCK, 0, sb_cuda_stream()>>>(y, x, D, G, P, n);
    CUDA_CHECK_LAST();
}

void cuda_skip_add_backward(real *dx, real *dD, const real *dy, const real *x, const real *D,
                            int R, int G, int P)
{
    const size_t n = (size_t)R * G * P;
    if (R < 1 || G < 1 || P < 1) return;
    cudaStream_t st = sb_cuda_stream();
    skip_add_bwd_dx_kernel<<<sb_grid(n, SB_BLOCK), SB_BLOCK, 0, st>>>(dx, dy, D, G, P, n);
    CUDA_CHECK_LAST();
    skip_add_bwd_dD_kernel<<<G, SSD_RED_THREADS, 0, st>>>(dD, dy, x, R, G, P);
    CUDA_CHECK_LAST();
}
