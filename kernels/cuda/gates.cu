// gates.cu: CUDA pointwise gates that turn projections into scan_diag's (a, b) for mingru, minlstm and hgrn.
//
// Semantics are those of kernels/cpu/diag_gates.c (see ops.h); one thread
// per element, grid-stride loops. The CPU's branch-free fast_math forms are
// replaced by CUDA's expf / log1pf, which compute the same functions to a
// few ulp. (silu_gate, the fourth op of diag_gates.c, is in dense.cu.)
#include "cuda_common.h"
#include "ops_cuda.h"

#include <type_traits>

static_assert(std::is_same<real, float>::value, "the CUDA backend is float only");

__device__ __forceinline__ float gates_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

// log s(x) = min(x, 0) - log(1 + e^-|x|): no overflow for any x
__device__ __forceinline__ float gates_log_sigmoid(float x)
{
    return fminf(x, 0.0f) - log1pf(expf(-fabsf(x)));
}

// minGRU's g(x) = x + 0.5 for x >= 0, else s(x), and its slope
__device__ __forceinline__ float gates_min_g(float x)
{
    return signbit(x) ? gates_sigmoid(x) : x + 0.5f;
}
__device__ __forceinline__ float gates_min_g_slope(float x)
{
    const float s = gates_sigmoid(x);
    return signbit(x) ? s * (1.0f - s) : 1.0f;
}

// ---- mingru: z = s(pz); a = 1 - z (or 1 - 2 z signed); b = z g(ph) -----------

__global__ void gates_mingru_fwd_kernel(float *a, float *b, const float *pz, const float *ph,
                                        size_t n, float scale, float shift)
{
    // a, b, pz, ph (n)
    for (size_t i = SB_GRID_START; i < n; i += SB_GRID_STRIDE) {
        const float z = gates_sigmoid(pz[i]);
        a[i] = (1.0f - z) * scale + shift;
        b[i] = z * gates_min_g(ph[i]);
    }
}

__global__ void gates_mingru_bwd_kernel(float *dpz, float *dph, const float *da, const float *db,
                                        const float *pz, const float *ph, size_t n, float da_dz)
{
    // dpz, dph, da, db, pz, ph (n)
    for (size_t i = SB_GRID_START; i < n; i += SB_GRID_STRIDE) {
        const float z = gates_sigmoid(pz[i]);
        dpz[i] += (da[i] * da_dz + db[i] * gates_min_g(ph[i])) * z * (1.0f - z);
        dph[i] += db[i] * z * gates_min_g_slope(ph[i]);
    }
}

void cuda_mingru_gates_forward(real *a, real *b, const real *pz, const real *ph, size_t n,
                               int eigen_signed)
{
    if (n == 0) return;
    gates_mingru_fwd_kernel<<<sb_grid(n, SB_BLOCK), SB_BLOCK, 0, sb_cuda_stream()>>>(
        a, b, pz, ph, n, eigen_signed ? 2.0f : 1.0f, eigen_signed ? -1.0f : 0.0f);
    CUDA_CHECK_LAST();
}

void cuda_mingru_gates_backward(real *dpz, real *dph, const real *da, const real *db,
                                const real *pz, const real *ph, size_t n, int eigen_signed)
{
    if (n == 0) return;
    gates_mingru_bwd_kernel<<<sb_grid(n, SB_BLOCK), SB_BLOCK, 0, sb_cuda_stream()>>>(
        dpz, dph, da, db, pz, ph, n, eigen_signed ? -2.0f : -1.0f);
    CUDA_CHECK_LAST();
}

// ---- minlstm: a = f / (f + i) = s(u), b = s(-u) g(ph), u = log f - log i -----

__global__ void gates_minlstm_fwd_kernel(float *a, float *b, const float *pf, const float *pi,
                                         const float *ph, size_t n)
{
    // a, b, pf, pi, ph (n)
    for (size_t i = SB_GRID_START; i < n; i += SB_GRID_STRIDE) {
        const float u = gates_log_sigmoid(pf[i]) - gates_log_sigmoid(pi[i]);
        a[i] = gates_sigmoid(u);
        b[i] = gates_sigmoid(-u) * gates_min_g(ph[i]);
    }
}

// d a / d u = a (1 - a), d b / d u = -a (1 - a) g; du/dpf = s(-pf), du/dpi = -s(-pi)
__global__ void gates_minlstm_bwd_kernel(float *dpf, float *dpi, float *dph, const float *da,
                                         const float *db, const float *pf, const float *pi,
                                         const float *ph, size_t n)
{
    // dpf, dpi, dph, da, db, pf, pi, ph (n)
    for (size_t i = SB_GRID_START; i < n; i += SB_GRID_STRIDE) {
        const float u = gates_log_sigmoid(pf[i]) - gates_log_sigmoid(pi[i]);
        const float fn = gates_sigmoid(u), in = gates_sigmoid(-u), g = gates_min_g(ph[i]);
        const float du = (da[i] - db[i] * g) * fn * in;
        dpf[i] += du * gates_sigmoid(-pf[i]);
        dpi[i] -= du * gates_sigmoid(-pi[i]);
        dph[i] += db[i] * in * gates_min_g_slope(ph[i]);
    }
}

void cuda_minlstm_gates_forward(real *a, real *b, const real *pf, const real *pi, const real *ph,
                                size_t n)
{
    if (n == 0) return;
    gates_minlstm_fwd_kernel<<<sb_grid(n, SB_BLOCK), SB_BLOCK, 0, sb_cuda_stream()>>>(a, b, pf, pi,
                                                                                       ph, n);
    CUDA_CHECK_LAST();
}

void cuda_minlstm_gates_backward(real *dpf, real *dpi, real *dph, const real *da, const real *db,
                                 const real *pf, const real *pi, const real *ph, size_t n)
{
    if (n == 0) return;
    gates_minlstm_bwd_kernel<<<sb_grid(n, SB_BLOCK), SB_BLOCK, 0, sb_cuda_stream()>>>(
        dpf, dpi, dph, da, db, pf, pi, ph, n);
    CUDA_CHECK_LAST();
}

// ---- hgrn: f = s(pf); a = f (or 2 f - 1 signed); b = silu(pi) (1 - f) ---------

__global__ void gates_hgrn_fwd_kernel(float *a, float *b, const float *pf, const float *pi,
                                      size_t n, float scale, float shift)
{
    // a, b, pf, pi (n)
    for (size_t i = SB_GRID_START; i < n; i += SB_GRID_STRIDE) {
        const float f = gates_sigmoid(pf[i]);
        a[i] = f * scale + shift;
        b[i] = pi[i] * gates_sigmoid(pi[i]) * (1.0f - f);
    }
}

__global__ void gates_hgrn_bwd_kernel(float *dpf, float *dpi, const float *da, const float *db,
                                      const float *pf, const float *pi, size_t n, float da_df)
{
    // dpf, dpi, da, db, pf, pi (n)
    for (size_t i = SB_GRID_START; i < n; i += SB_GRID_STRIDE) {
        const float f = gates_sigmoid(pf[i]), s = gates_sigmoid(pi[i]);
        dpf[i] += (da[i] * da_df - db[i] * pi[i] * s) * f * (1.0f - f);
        dpi[i] += db[i] * (1.0f - f) * s * (1.0f + pi[i] * (1.0f - s));
    }
}

void cuda_hgrn_gates_forward(real *a, real *b, const real *pf, const real *pi, size_t n,
                             int eigen_signed)
{
    if (n == 0) return;
    gates_hgrn_fwd_kernel<<<sb_grid(n, SB_BLOCK), SB_BLOCK, 0, sb_cuda_stream()>>>(
        a, b, pf, pi, n, eigen_signed ? 2.0f : 1.0f, eigen_signed ? -1.0f : 0.0f);
    CUDA_CHECK_LAST();
}

void cuda_hgrn_gates_backward(real *dpf, real *dpi, const real *da, const real *db,
                              const real *pf, const real *pi, size_t n, int eigen_signed)
{
    if (n == 0) return;
    gates_hgrn_bwd_kernel<<<sb_grid(n, SB_BLOCK), SB_BLOCK, 0, sb_cuda_stream()>>>(
        dpf, dpi, da, db, pf, pi, n, eigen_signed ? 2.0f : 1.0f);
    CUDA_CHECK_LAST();
}
