// rnn_cell.cu: CUDA elman, gru and slstm over a sequence with block-diagonal R over heads: one persistent kernel with each head's R on chip when it fits (rnn_persist.cu), else per step one strided-batched cuBLAS gemm (a head per batch entry) for R h_{t-1}, then one fused pointwise kernel.
//
// Paths: when a head's R (G Dh Dh floats) and one batch row's state fit in
// the device's opt-in shared memory, forward and backward each run as one
// launch of rnn_persist.cu (a block per head and batch slice loops over all
// T steps with R in shared memory; with 227 KiB, sm_90: slstm Dh <= 119,
// gru <= 138, elman <= 240 forward and 239 backward). The persistent
// backward writes the same drh as the per-step one, so dR stays the one
// gemm per head at the end (rnn_dR). Otherwise the per-step path below runs
// (2 launches a step). Both write and read the same caches; the persistent
// kernels use no scratch of their own beyond drh.
//
// Semantics and caches are those of kernels/cpu/rnn_cell.c (see ops.h): gx
// (B,T,G d) gate-major (gate g of unit u at g d + u), R (H, G Dh, Dh), gru's
// gates cache (B,T,4d) z, r, n, R_n h_{t-1}; slstm's caches c, n (B,T,d)
// and gates (B,T,5d) i, f, tanh(z~), s(o~), s(-f~).
//
// Scratch (own length, *_scratch_len below: it grows with T, the CPU's does
// not). Forward: rh (B, G d), R h_{t-1} of the step, head-major (gate g of
// unit hh Dh + j at hh G Dh + g Dh + j), then slstm's stabiliser m (B,d).
// Backward: drh (B,T,G d) head-major, the gradient of every step's R
// h_{t-1} (0 at t = 0), then the carried gradients into h_t (slstm also
// c_t, n_t), (B,d) each. Keeping drh of all steps turns dR into one gemm
// over all B T rows per head at the end, instead of one small gemm per step.
//
// cuBLAS is column-major: a row-major (rows, cols) matrix with row stride ld
// is, to cuBLAS, its (cols, rows) transpose with leading dimension ld.
#include "cuda_common.h"
#include "ops_cuda.h"
#include "rnn_cells.cuh"
#include "rnn_persist.h"

#include <type_traits>

static_assert(std::is_same<real, float>::value, "the CUDA backend is float only");

typedef enum { RNN_ELMAN, RNN_GRU, RNN_SLSTM } rnn_kind;

static int rnn_gates(rnn_kind k) { return k == RNN_ELMAN ? 1 : k == RNN_GRU ? 3 : 4; }
static int rnn_carries(rnn_kind k) { return k == RNN_SLSTM ? 3 : 1; }

// ---- forward steps: one thread per (b, u), u = hh Dh + j ------------------

__global__ void rnn_elman_fwd_kernel(float *h, const float *rh, const float *gx, int B, int T,
                                     int d, int t)
{
    // h, gx (B,T,d); rh (B,d)
    const size_t n = (size_t)B * d;
    for (size_t idx = SB_GRID_START; idx < n; idx += SB_GRID_STRIDE) {
        const size_t b = idx / d, u = idx % d, r = (b * T + t) * d + u;
        h[r] = tanhf(gx[r] + (t > 0 ? rh[idx] : 0.0f));
    }
}

__global__ void rnn_gru_fwd_kernel(float *h, float *gates, const float *rh, const float *gx,
                                   int B, int T, int d, int Dh, int t)
{
    // h (B,T,d), gates (B,T,4d), gx (B,T,3d), rh (B,3d) head-major
    const size_t n = (size_t)B * d;
    for (size_t idx = SB_GRID_START; idx < n; idx += SB_GRID_STRIDE) {
        const size_t b = idx / d, u = idx % d, r = b * T + t;
        const int hh = (int)(u / Dh), j = (int)(u % Dh);
        const float *x = gx + r * 3 * d;
        const float *rr = rh + b * 3 * d + (size_t)hh * 3 * Dh;
        const float rz = t > 0 ? rr[j] : 0.0f, rg = t > 0 ? rr[Dh + j] : 0.0f;
        const float rn = t > 0 ? rr[2 * Dh + j] : 0.0f;
        const float hp = t > 0 ? h[(r - 1) * d + u] : 0.0f;
        const rnn_gru_out o = rnn_gru_cell(x[u], x[d + u], x[2 * d + u], rz, rg, rn, hp);
        h[r * d + u] = o.h;
        float *cache = gates + r * 4 * d;
        cache[u] = o.z;
        cache[d + u] = o.rs;
        cache[2 * d + u] = o.nn;
        cache[3 * d + u] = rn;
    }
}

__global__ void rnn_slstm_fwd_kernel(float *h, float *c, float *nst, float *gates, float *m,
                                     const float *rh, const float *gx, int B, int T, int d,
                                     int Dh, int t)
{
    // h, c, nst (B,T,d), gates (B,T,5d), m (B,d), gx (B,T,4d), rh (B,4d) head-major
    const size_t n = (size_t)B * d;
    for (size_t idx = SB_GRID_START; idx < n; idx += SB_GRID_STRIDE) {
        const size_t b = idx / d, u = idx % d, r = b * T + t;
        const int hh = (int)(u / Dh), j = (int)(u % Dh);
        const float *x = gx + r * 4 * d;
        const float *rr = rh + b * 4 * d + (size_t)hh * 4 * Dh;
        const bool live = t > 0;
        const float pi = x[u] + (live ? rr[j] : 0.0f);
        const float pf = x[d + u] + (live ? rr[Dh + j] : 0.0f);
        const float pz = x[2 * d + u] + (live ? rr[2 * Dh + j] : 0.0f);
        const float po = x[3 * d + u] + (live ? rr[3 * Dh + j] : 0.0f);
        const float mp = live ? m[idx] : RNN_SLSTM_M_START;
        const float cp = live ? c[(r - 1) * d + u] : 0.0f, np = live ? nst[(r - 1) * d + u] : 0.0f;
        const rnn_slstm_out s = rnn_slstm_cell(pi, pf, pz, po, mp, cp, np);
        c[r * d + u] = s.c;
        nst[r * d + u] = s.n;
        h[r * d + u] = s.h;
        m[idx] = s.m;
        float *cache = gates + r * 5 * d;
        cache[u] = s.ig;
        cache[d + u] = s.fg;
        cache[2 * d + u] = s.g;
        cache[3 * d + u] = s.o;
        cache[4 * d + u] = s.sf;
    }
}

// ---- backward steps: one thread per (b, u) ----------------------------------
// Each writes drh of step t (0 at t = 0, where there is no R h_{-1}) and
// adds into dgx; carry_h holds the gradient into h_t from step t + 1.

__global__ void rnn_elman_bwd_kernel(float *dgx, float *drh, const float *carry_h,
                                     const float *dh, const float *h, int B, int T, int d, int t)
{
    // dgx, dh, h (B,T,d), drh (B,T,d), carry_h (B,d)
    const size_t n = (size_t)B * d;
    for (size_t idx = SB_GRID_START; idx < n; idx += SB_GRID_STRIDE) {
        const size_t b = idx / d, u = idx % d, r = (b * T + t) * d + u;
        const float dpre = (dh[r] + carry_h[idx]) * (1.0f - h[r] * h[r]);
        dgx[r] += dpre;
        drh[r] = t > 0 ? dpre : 0.0f;
    }
}

// carry_h becomes z dh_t (the direct path into h_{t-1}); the gemm that
// follows adds drh R to it.
__global__ void rnn_gru_bwd_kernel(float *dgx, float *drh, float *carry_h, const float *dh,
                                   const float *h, const float *gates, int B, int T, int d,
                                   int Dh, int t)
{
    // dgx, drh (B,T,3d), dh, h (B,T,d), gates (B,T,4d), carry_h (B,d)
    const size_t n = (size_t)B * d;
    for (size_t idx = SB_GRID_START; idx < n; idx += SB_GRID_STRIDE) {
        const size_t b = idx / d, u = idx % d, r = b * T + t;
        const int hh = (int)(u / Dh), j = (int)(u % Dh);
        const float *cache = gates + r * 4 * d;
        const float z = cache[u], rs = cache[d + u], nn = cache[2 * d + u], rn = cache[3 * d + u];
        const float hp = t > 0 ? h[(r - 1) * d + u] : 0.0f;
        const float dht = dh[r * d + u] + carry_h[idx];
        const rnn_gru_grad q = rnn_gru_cell_back(dht, z, rs, nn, rn, hp);
        float *dg = dgx + r * 3 * d;
        dg[u] += q.dpz;
        dg[d + u] += q.dpr;
        dg[2 * d + u] += q.dpn;
        const float live = t > 0 ? 1.0f : 0.0f;
        float *dr = drh + r * 3 * d + (size_t)hh * 3 * Dh;
        dr[j] = q.dpz * live;
        dr[Dh + j] = q.dpr * live;
        dr[2 * Dh + j] = q.dpn * rs * live;
        carry_h[idx] = dht * z;
    }
}

// h_t = s(o) c_t / n_t with n_t >= 1 and m treated as a constant (see
// kernels/cpu/rnn_cell.c); carry_c, carry_n become the gradients into
// c_{t-1}, n_{t-1}.
__global__ void rnn_slstm_bwd_kernel(float *dgx, float *drh, const float *carry_h,
                                     float *carry_c, float *carry_n, const float *dh,
                                     const float *c, const float *nst, const float *gates, int B,
                                     int T, int d, int Dh, int t)
{
    // dgx, drh (B,T,4d), dh, c, nst (B,T,d), gates (B,T,5d), carry_* (B,d)
    const size_t n = (size_t)B * d;
    for (size_t idx = SB_GRID_START; idx < n; idx += SB_GRID_STRIDE) {
        const size_t b = idx / d, u = idx % d, r = b * T + t;
        const int hh = (int)(u / Dh), j = (int)(u % Dh);
        const float *cache = gates + r * 5 * d;
        const float ig = cache[u], fg = cache[d + u], g = cache[2 * d + u];
        const float o = cache[3 * d + u], sf = cache[4 * d + u];
        const float cj = c[r * d + u], nj = nst[r * d + u];
        const float cp = t > 0 ? c[(r - 1) * d + u] : 0.0f;
        const float np = t > 0 ? nst[(r - 1) * d + u] : 0.0f;
        const float dht = dh[r * d + u] + carry_h[idx];
        const rnn_slstm_grad s = rnn_slstm_cell_back(dht, carry_c[idx], carry_n[idx], ig, fg, g, o, sf,
                                                     cj, nj, cp, np);
        float *dg = dgx + r * 4 * d;
        dg[u] += s.dpi;
        dg[d + u] += s.dpf;
        dg[2 * d + u] += s.dpz;
        dg[3 * d + u] += s.dpo;
        const float live = t > 0 ? 1.0f : 0.0f;
        float *dr = drh + r * 4 * d + (size_t)hh * 4 * Dh;
        dr[j] = s.dpi * live;
        dr[Dh + j] = s.dpf * live;
        dr[2 * Dh + j] = s.dpz * live;
        dr[3 * Dh + j] = s.dpo * live;
        carry_c[idx] = s.cc;
        carry_n[idx] = s.cn;
    }
}

// ---- recurrent products, one gemm per head (strided batched over heads) -----

// rh (B, G d; row stride Gd) head-major = h_{t-1} (B,d; row stride T d) R_hh^T per head
static void rnn_recur_forward(float *rh, const float *h_prev, const float *R, int B, int T,
                              int d, int G, int H)
{
    const int Dh = d / H, GDh = G * Dh;
    const float one = 1.0f, zero = 0.0f;
    CUBLAS_CHECK(cublasSgemmStridedBatched(sb_cublas(), CUBLAS_OP_T, CUBLAS_OP_N, GDh, B, Dh, &one,
                                           R, Dh, (long long)GDh * Dh, h_prev, T * d, Dh, &zero,
                                           rh, G * d, GDh, H));
}

// carry (B,d) = beta carry + drh_t (B, G d; row stride T G d) R_hh per head
static void rnn_recur_backward(float *carry, const float *drh_t, const float *R, float beta,
                               int B, int T, int d, int G, int H)
{
    const int Dh = d / H, GDh = G * Dh;
    const float one = 1.0f;
    CUBLAS_CHECK(cublasSgemmStridedBatched(sb_cublas(), CUBLAS_OP_N, CUBLAS_OP_N, Dh, B, GDh, &one,
                                           R, Dh, (long long)GDh * Dh, drh_t, T * G * d, GDh,
                                           &beta, carry, d, Dh, H));
}

// dR_hh (G Dh, Dh) += sum over rows i >= 1 of drh[i]_hh^T h[i-1]_hh, the
// rows (b, t) of all steps: drh of t = 0 is 0, so the pairs that cross from
// one sequence to the next (h[b-1, T-1] with drh[b, 0]) add nothing.
static void rnn_dR(float *dR, const float *drh, const float *h, int B, int T, int d, int G, int H)
{
    const int rows = B * T - 1;
    if (rows < 1) return;
    const int Dh = d / H, GDh = G * Dh;
    const float one = 1.0f;
    CUBLAS_CHECK(cublasSgemmStridedBatched(sb_cublas(), CUBLAS_OP_N, CUBLAS_OP_T, Dh, GDh, rows,
                                           &one, h, d, Dh, drh + (size_t)G * d, G * d, GDh, &one,
                                           dR, Dh, (long long)GDh * Dh, H));
}

// ---- drivers ------------------------------------------------------------------

static size_t rnn_scratch_len(rnn_kind k, int B, int T, int d)
{
    const size_t Bd = (size_t)B * d, G = (size_t)rnn_gates(k);
    const size_t fwd = G * Bd + (k == RNN_SLSTM ? Bd : 0);
    const size_t bwd = G * Bd * (size_t)T + (size_t)rnn_carries(k) * Bd;
    return fwd > bwd ? fwd : bwd;
}

size_t cuda_elman_scratch_len(int B, int T, int d, int H)
{
    (void)H;
    return rnn_scratch_len(RNN_ELMAN, B, T, d);
}

size_t cuda_gru_scratch_len(int B, int T, int d, int H)
{
    (void)H;
    return rnn_scratch_len(RNN_GRU, B, T, d);
}

size_t cuda_slstm_scratch_len(int B, int T, int d, int H)
{
    (void)H;
    return rnn_scratch_len(RNN_SLSTM, B, T, d);
}

static bool rnn_empty(int B, int T, int d, int H)
{
    if (H < 1 || d % H != 0)
        sb_cuda_fail(__FILE__, __LINE__, "rnn_cell", "the heads H must divide d");
    return B < 1 || T < 1 || d < 1;
}

void cuda_elman_forward(real *h, real *scratch, const real *gx, const real *R, int B, int T,
                        int d, int H)
{
    // h, gx (B,T,d), R (H,Dh,Dh)
    if (rnn_empty(B, T, d, H)) return;
    if (rnn_persist_forward(RP_ELMAN, h, nullptr, nullptr, nullptr, gx, R, B, T, d, H)) return;
    cudaStream_t st = sb_cuda_stream();
    const unsigned grid = sb_grid((size_t)B * d, SB_BLOCK);
    float *rh = scratch; // (B,d)
    for (int t = 0; t < T; t++) {
        if (t > 0) rnn_recur_forward(rh, h + (size_t)(t - 1) * d, R, B, T, d, 1, H);
        rnn_elman_fwd_kernel<<<grid, SB_BLOCK, 0, st>>>(h, rh, gx, B, T, d, t);
        CUDA_CHECK_LAST();
    }
}

void cuda_elman_backward(real *dgx, real *dR, real *scratch, const real *dh, const real *h,
                         const real *R, int B, int T, int d, int H)
{
    // dgx, dh, h (B,T,d), dR, R (H,Dh,Dh)
    if (rnn_empty(B, T, d, H)) return;
    cudaStream_t st = sb_cuda_stream();
    const unsigned grid = sb_grid((size_t)B * d, SB_BLOCK);
    float *drh = scratch;                        // (B,T,d)
    if (rnn_persist_backward(RP_ELMAN, dgx, drh, dh, h, nullptr, nullptr, nullptr, R, B, T, d, H)) {
        rnn_dR(dR, drh, h, B, T, d, 1, H);
        return;
    }
    float *carry_h = drh + (size_t)B * T * d;    // (B,d)
    CUDA_CHECK(cudaMemsetAsync(carry_h, 0, (size_t)B * d * sizeof(float), st));
    for (int t = T - 1; t >= 0; t--) {
        rnn_elman_bwd_kernel<<<grid, SB_BLOCK, 0, st>>>(dgx, drh, carry_h, dh, h, B, T, d, t);
        CUDA_CHECK_LAST();
        if (t > 0) rnn_recur_backward(carry_h, drh + (size_t)t * d, R, 0.0f, B, T, d, 1, H);
    }
    rnn_dR(dR, drh, h, B, T, d, 1, H);
}

void cuda_gru_forward(real *h, real *gates, real *scratch, const real *gx, const real *R, int B,
                      int T, int d, int H)
{
    // h (B,T,d), gates (B,T,4d), gx (B,T,3d), R (H,3Dh,Dh)
    if (rnn_empty(B, T, d, H)) return;
    if (rnn_persist_forward(RP_GRU, h, nullptr, nullptr, gates, gx, R, B, T, d, H)) return;
    cudaStream_t st = sb_cuda_stream();
    const unsigned grid = sb_grid((size_t)B * d, SB_BLOCK);
    float *rh = scratch; // (B,3d)
    for (int t = 0; t < T; t++) {
        if (t > 0) rnn_recur_forward(rh, h + (size_t)(t - 1) * d, R, B, T, d, 3, H);
        rnn_gru_fwd_kernel<<<grid, SB_BLOCK, 0, st>>>(h, gates, rh, gx, B, T, d, d / H, t);
        CUDA_CHECK_LAST();
    }
}

void cuda_gru_backward(real *dgx, real *dR, real *scratch, const real *dh, const real *h,
                       const real *gates, const real *R, int B, int T, int d, int H)
{
    // dgx (B,T,3d), dh, h (B,T,d), gates (B,T,4d), dR, R (H,3Dh,Dh)
    if (rnn_empty(B, T, d, H)) return;
    cudaStream_t st = sb_cuda_stream();
    const unsigned grid = sb_grid((size_t)B * d, SB_BLOCK);
    float *drh = scratch;                         // (B,T,3d)
    if (rnn_persist_backward(RP_GRU, dgx, drh, dh, h, nullptr, nullptr, gates, R, B, T, d, H)) {
        rnn_dR(dR, drh, h, B, T, d, 3, H);
        return;
    }
    float *carry_h = drh + (size_t)B * T * 3 * d; // (B,d)
    CUDA_CHECK(cudaMemsetAsync(carry_h, 0, (size_t)B * d * sizeof(float), st));
    for (int t = T - 1; t >= 0; t--) {
        rnn_gru_bwd_kernel<<<grid, SB_BLOCK, 0, st>>>(dgx, drh, carry_h, dh, h, gates, B, T, d,
                                                      d / H, t);
        CUDA_CHECK_LAST();
        if (t > 0) rnn_recur_backward(carry_h, drh + (size_t)t * 3 * d, R, 1.0f, B, T, d, 3, H);
    }
    rnn_dR(dR, drh, h, B, T, d, 3, H);
}

void cuda_slstm_forward(real *h, real *c, real *n, real *gates, real *scratch, const real *gx,
                        const real *R, int B, int T, int d, int H)
{
    // h, c, n (B,T,d), gates (B,T,5d), gx (B,T,4d), R (H,4Dh,Dh)
    if (rnn_empty(B, T, d, H)) return;
    if (rnn_persist_forward(RP_SLSTM, h, c, n, gates, gx, R, B, T, d, H)) return;
    cudaStream_t st = sb_cuda_stream();
    const unsigned grid = sb_grid((size_t)B * d, SB_BLOCK);
    float *rh = scratch;                 // (B,4d)
    float *m = rh + (size_t)B * 4 * d;   // (B,d)
    for (int t = 0; t < T; t++) {
        if (t > 0) rnn_recur_forward(rh, h + (size_t)(t - 1) * d, R, B, T, d, 4, H);
        rnn_slstm_fwd_kernel<<<grid, SB_BLOCK, 0, st>>>(h, c, n, gates, m, rh, gx, B, T, d, d / H,
                                                        t);
        CUDA_CHECK_LAST();
    }
}

void cuda_slstm_backward(real *dgx, real *dR, real *scratch, const real *dh, const real *h,
                         const real *c, const real *n, const real *gates, const real *R, int B,
                         int T, int d, int H)
{
    // dgx (B,T,4d), dh, h, c, n (B,T,d), gates (B,T,5d), dR, R (H,4Dh,Dh)
    if (rnn_empty(B, T, d, H)) return;
    cudaStream_t st = sb_cuda_stream();
    const unsigned grid = sb_grid((size_t)B * d, SB_BLOCK);
    const size_t Bd = (size_t)B * d;
    float *drh = scratch;                       // (B,T,4d)
    if (rnn_persist_backward(RP_SLSTM, dgx, drh, dh, h, c, n, gates, R, B, T, d, H)) {
        rnn_dR(dR, drh, h, B, T, d, 4, H);
        return;
    }
    float *carry_h = drh + (size_t)T * 4 * Bd;  // (B,d) x3: h, c, n
    float *carry_c = carry_h + Bd, *carry_n = carry_c + Bd;
    CUDA_CHECK(cudaMemsetAsync(carry_h, 0, 3 * Bd * sizeof(float), st));
    for (int t = T - 1; t >= 0; t--) {
        rnn_slstm_bwd_kernel<<<grid, SB_BLOCK, 0, st>>>(dgx, drh, carry_h, carry_c, carry_n, dh, c,
                                                        n, gates, B, T, d, d / H, t);
        CUDA_CHECK_LAST();
        if (t > 0) rnn_recur_backward(carry_h, drh + (size_t)t * 4 * d, R, 0.0f, B, T, d, 4, H);
    }
    rnn_dR(dR, drh, h, B, T, d, 4, H);
}
