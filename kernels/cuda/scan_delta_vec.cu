// scan_delta_vec.cu: CUDA non-delta scan with a decay per key dimension
// (gla), recurrent form with the state on chip, and the gates of the gated
// delta rule family (gla's sigmoid power, mLSTM's stabilised gates and
// denominator, row fills).
//
// The chunked form is scan_delta_vec_chunk.cu; the forward and backward
// below run it when cuda_scan_delta_vec_chunked_chosen says so.
//
// Semantics, cache layout and accumulation are those of
// kernels/cpu/scan_delta_vec.c and kernels/cpu/delta_gates.c (see ops.h): per
// (b,h), S_t = diag(alpha_t) S_{t-1} + k_t v_t^T, o_t = scale S_t^T q_t, and
// `states` holds S_{min(c CKPT, T)} in slot c, c = 0 .. ceil(T / CKPT)
// (scan_delta's cache: scan_delta_cache_len).
//
// Thread layout, as kernels/cuda/scan_delta.cu's: a block of VS_THREADS
// threads holds a K x (TV RV) tile of one (b,h)'s state in registers: TV (a
// power of two, the smallest >= min(V, 32)) adjacent lanes along the
// columns, TK = VS_THREADS / TV along the rows; thread (ty, tx) owns rows
// ty + TK r (r < RK) and columns tx + TV s (s < RV). Rows and columns of
// this state both evolve independently (S[i,j] meets only alpha_i, k_i and
// v_j), so the forward splits V over blocks (RV = 1) and sums o over the
// rows (shuffles over ty, then the warps through shared memory in a fixed
// order). The backward's row sums (dq, dk, dalpha) run over the TV lanes of
// one warp and its column sum (dv) over the rows, so one block holds all V
// columns (RV = ceil(V / TV)) and no sum crosses blocks. Every sum has a
// fixed order: results do not vary between runs.
//
// Backward, per chunk of CKPT tokens from the last: recompute the chunk's
// states from its checkpoint (writing S_{t-1} of each token to scratch, L K V
// reals per (b,h), L = min(T, CKPT): cuda_scan_delta_scratch_len, within the
// CPU's scan_delta_scratch_len) and add dq_t = scale S_t dout_t on the way;
// then reverse the chunk token by token with dS = dL/dS in registers.
#include "cuda_common.h"
#include "ops_cuda.h"
#include "../cuda_limits.h"
#include "scan_delta_vec_chunk.h"
#include "tile_reduce.cuh"

#include <type_traits>

static_assert(std::is_same<real, float>::value, "the CUDA backend is float only");

#define VS_THREADS 256
#define VS_WARPS (VS_THREADS / 32)
#define VS_MAX_KV 128
static_assert(VS_MAX_KV == CUDA_SCAN_VEC_MAX_KV, "the harness checks runs against kernels/cuda_limits.h");
// widest column set of one reduction: RV TV with RV <= 4, TV <= 32
#define VS_RED_STRIDE 128

template <int N>
__device__ __forceinline__ void vs_col_sum(float *x, float *red, int tv, int tx, int lane, int warp)
{
    tile_col_sum<N, VS_WARPS, VS_RED_STRIDE>(x, red, tv, tx, lane, warp);
}
#define vs_row_sum tile_row_sum

static __host__ __device__ int vs_num_chunks(int T) { return (T + SCAN_DELTA_CKPT - 1) / SCAN_DELTA_CKPT; }

// ---- scan_delta_vec forward ----------------------------------------------------

// grid (B*H, ceil(V / TV)); block VS_THREADS. RK >= ceil(K / TK).
template <int RK>
__global__ void __launch_bounds__(VS_THREADS)
    scan_vec_fwd_kernel(float *o, float *states, const float *q, const float *k, const float *v,
                        const float *alpha, int T, int H, int K, int V, float scale, int log_tv)
{
    // o,v (B,T,H,V), q,k,alpha (B,T,H,K), states (B,H,nck+1,K,V)
    __shared__ float red[2][VS_WARPS * VS_RED_STRIDE];
    const int tv = 1 << log_tv, tk = VS_THREADS >> log_tv;
    const int tid = threadIdx.x, tx = tid & (tv - 1), ty = tid >> log_tv;
    const int lane = tid & 31, warp = tid >> 5;
    const int bh = blockIdx.x, b = bh / H, h = bh % H;
    const int j = blockIdx.y * tv + tx;
    const bool jok = j < V;
    const size_t KV = (size_t)K * V;
    float *slots = states + (size_t)bh * (vs_num_chunks(T) + 1) * KV;

    float S[RK];
#pragma unroll
    for (int r = 0; r < RK; r++) {
        S[r] = 0;
        const int i = ty + tk * r;
        if (i < K && jok) slots[(size_t)i * V + j] = 0; // slot 0: S_0 = 0
    }
    int buf = 0;
    for (int t = 0; t < T; t++) {
        const size_t row = ((size_t)b * T + t) * H + h; // token row
        const float vj = jok ? v[row * V + j] : 0.0f;
        float ov[1] = {0};
#pragma unroll
        for (int r = 0; r < RK; r++) {
            const int i = ty + tk * r;
            if (i < K) {
                S[r] = alpha[row * K + i] * S[r] + k[row * K + i] * vj;
                ov[0] += q[row * K + i] * S[r];
            }
        }
        vs_col_sum<1>(ov, red[buf], tv, tx, lane, warp);
        buf ^= 1;
        if (ty == 0 && jok) o[row * V + j] = scale * ov[0];
        if ((t + 1) % SCAN_DELTA_CKPT == 0 || t == T - 1) {
            float *slot = slots + (size_t)(t / SCAN_DELTA_CKPT + 1) * KV;
#pragma unroll
            for (int r = 0; r < RK; r++) {
                const int i = ty + tk * r;
                if (i < K && jok) slot[(size_t)i * V + j] = S[r];
            }
        }
    }
}

// ---- scan_delta_vec backward ---------------------------------------------------

// grid (B*H); block VS_THREADS. RK >= ceil(K / TK), RV >= ceil(V / TV).
template <int RK, int RV>
__global__ void __launch_bounds__(VS_THREADS, 1)
    scan_vec_bwd_kernel(float *dq, float *dk, float *dv, float *dalpha, float *scratch,
                        const float *dout, const float *states, const float *q, const float *k,
                        const float *v, const float *alpha, int T, int H, int K, int V,
                        float scale, int log_tv)
{
    // dq,dk,dalpha,q,k,alpha (B,T,H,K), dv,dout,v (B,T,H,V),
    // states (B,H,nck+1,K,V), scratch (B,H,L,K,V)
    __shared__ float red[2][VS_WARPS * VS_RED_STRIDE];
    const int tv = 1 << log_tv, tk = VS_THREADS >> log_tv;
    const int tid = threadIdx.x, tx = tid & (tv - 1), ty = tid >> log_tv;
    const int lane = tid & 31, warp = tid >> 5;
    const int bh = blockIdx.x, b = bh / H, h = bh % H;
    const int nck = vs_num_chunks(T), L = T < SCAN_DELTA_CKPT ? T : SCAN_DELTA_CKPT;
    const size_t KV = (size_t)K * V;
    const float *slots = states + (size_t)bh * (nck + 1) * KV;
    float *chunk = scratch + (size_t)bh * L * KV; // (L,K,V): S before each token of the chunk

    int rows[RK], cols[RV]; // this thread's rows and columns; -1 past K or V
#pragma unroll
    for (int r = 0; r < RK; r++) rows[r] = ty + tk * r < K ? ty + tk * r : -1;
#pragma unroll
    for (int s = 0; s < RV; s++) cols[s] = tx + tv * s < V ? tx + tv * s : -1;

    float dS[RK][RV];
#pragma unroll
    for (int r = 0; r < RK; r++)
#pragma unroll
        for (int s = 0; s < RV; s++) dS[r][s] = 0;
    int buf = 0;

    for (int c = nck - 1; c >= 0; c--) {
        const int t0 = c * SCAN_DELTA_CKPT;
        const int n = T - t0 < SCAN_DELTA_CKPT ? T - t0 : SCAN_DELTA_CKPT;

        // Recompute the chunk from its checkpoint; dq_t = scale S_t dout_t.
        {
            float S[RK][RV];
            const float *slot = slots + (size_t)c * KV;
#pragma unroll
            for (int r = 0; r < RK; r++)
#pragma unroll
                for (int s = 0; s < RV; s++)
                    S[r][s] = rows[r] >= 0 && cols[s] >= 0
                                  ? slot[(size_t)rows[r] * V + cols[s]] : 0.0f;
            for (int jj = 0; jj < n; jj++) {
                const size_t row = ((size_t)b * T + t0 + jj) * H + h;
                float *saved = chunk + (size_t)jj * KV;
                float vj[RV], dj[RV];
#pragma unroll
                for (int s = 0; s < RV; s++) {
                    vj[s] = cols[s] >= 0 ? v[row * V + cols[s]] : 0.0f;
                    dj[s] = cols[s] >= 0 ? dout[row * V + cols[s]] : 0.0f;
                }
#pragma unroll
                for (int r = 0; r < RK; r++) {
                    const float ar = rows[r] >= 0 ? alpha[row * K + rows[r]] : 0.0f;
                    const float kr = rows[r] >= 0 ? k[row * K + rows[r]] : 0.0f;
                    float g = 0;
#pragma unroll
                    for (int s = 0; s < RV; s++) {
                        if (rows[r] >= 0 && cols[s] >= 0)
                            saved[(size_t)rows[r] * V + cols[s]] = S[r][s];
                        S[r][s] = ar * S[r][s] + kr * vj[s];
                        g += S[r][s] * dj[s];
                    }
                    g = vs_row_sum(g, tv);
                    if (tx == 0 && rows[r] >= 0) dq[row * K + rows[r]] += scale * g;
                }
            }
        }

        // Reverse the chunk. The scratch written above is read back by the
        // thread that wrote it (same rows and columns): no barrier needed.
        for (int jj = n - 1; jj >= 0; jj--) {
            const size_t row = ((size_t)b * T + t0 + jj) * H + h;
            const float *saved = chunk + (size_t)jj * KV;
            float vj[RV], dj[RV], dvs[RV];
#pragma unroll
            for (int s = 0; s < RV; s++) {
                vj[s] = cols[s] >= 0 ? v[row * V + cols[s]] : 0.0f;
                dj[s] = cols[s] >= 0 ? dout[row * V + cols[s]] : 0.0f;
                dvs[s] = 0;
            }
            // o_t = scale S_t^T q: dS_t += scale q dout^T. S_t = diag(a) S_{t-1} + k v^T:
            // dk_i = sum_j dS_t[i,j] v_j, dalpha_i = sum_j dS_t[i,j] S_{t-1}[i,j],
            // dv_j = sum_i k_i dS_t[i,j], dS_{t-1} = diag(a) dS_t.
#pragma unroll
            for (int r = 0; r < RK; r++) {
                const bool rok = rows[r] >= 0;
                const float qr = rok ? scale * q[row * K + rows[r]] : 0.0f;
                const float kr = rok ? k[row * K + rows[r]] : 0.0f;
                const float ar = rok ? alpha[row * K + rows[r]] : 0.0f;
                float gk = 0, ga = 0;
#pragma unroll
                for (int s = 0; s < RV; s++) {
                    const float sp = rok && cols[s] >= 0 ? saved[(size_t)rows[r] * V + cols[s]] : 0.0f;
                    const float d = dS[r][s] + qr * dj[s];
                    gk += d * vj[s];
                    ga += d * sp;
                    dvs[s] += kr * d;
                    dS[r][s] = ar * d;
                }
                gk = vs_row_sum(gk, tv);
                ga = vs_row_sum(ga, tv);
                if (tx == 0 && rok) {
                    dk[row * K + rows[r]] += gk;
                    dalpha[row * K + rows[r]] += ga;
                }
            }
            vs_col_sum<RV>(dvs, red[buf], tv, tx, lane, warp);
            buf ^= 1;
#pragma unroll
            for (int s = 0; s < RV; s++)
                if (ty == 0 && cols[s] >= 0) dv[row * V + cols[s]] += dvs[s];
        }
    }
}

// ---- scan_delta_vec host side ----------------------------------------------------

struct vs_shape {
    int log_tv; // threads along V: 1 << log_tv
    int rk;     // rows per thread, a power of two
    int rv;     // columns per thread in the backward
};

// Refuses (exit 1 through sb_cuda_fail) the sizes the kernels do not cover.
static vs_shape vs_plan(const char *op, int K, int V)
{
    sb_cuda_check_heads(op, K, V, VS_MAX_KV);
    vs_shape p;
    p.log_tv = 0;
    while ((1 << p.log_tv) < V && p.log_tv < 5) p.log_tv++;
    const int tv = 1 << p.log_tv, tk = VS_THREADS / tv;
    const int need = (K + tk - 1) / tk;
    p.rk = 1;
    while (p.rk < need) p.rk *= 2;
    p.rv = (V + tv - 1) / tv;
    return p;
}

void cuda_scan_delta_vec_forward(real *o, real *states, const real *q, const real *k,
                                 const real *v, const real *alpha, int B, int T, int H, int K,
                                 int V, real scale)
{
    const vs_shape p = vs_plan("scan_delta_vec_forward", K, V);
    if (B < 1 || H < 1 || T < 1) return;
    if (cuda_scan_delta_vec_chunked_chosen(T, K, V)) {
        cuda_scan_delta_vec_chunked_forward(o, states, q, k, v, alpha, B, T, H, K, V, scale);
        return;
    }
    const dim3 grid((unsigned)(B * H), sb_cdiv((size_t)V, (size_t)1 << p.log_tv));
    cudaStream_t st = sb_cuda_stream();
#define VS_FWD(RK)                                                                          \
    scan_vec_fwd_kernel<RK><<<grid, VS_THREADS, 0, st>>>(o, states, q, k, v, alpha, T, H, K, V, \
                                                        scale, p.log_tv)
    switch (p.rk) {
    case 1: VS_FWD(1); break;
    case 2: VS_FWD(2); break;
    case 4: VS_FWD(4); break;
    case 8: VS_FWD(8); break;
    default: VS_FWD(16); break;
    }
#undef VS_FWD
    CUDA_CHECK_LAST();
}

template <int RK>
static void vs_bwd_launch(int rv, int blocks, cudaStream_t st, real *dq, real *dk, real *dv,
                          real *dalpha, real *scratch, const real *dout, const real *states,
                          const real *q, const real *k, const real *v, const real *alpha, int T,
                          int H, int K, int V, real scale, int log_tv)
{
#define VS_BWD(RV)                                                                             \
    scan_vec_bwd_kernel<RK, RV><<<blocks, VS_THREADS, 0, st>>>(dq, dk, dv, dalpha, scratch, dout, \
                                                               states, q, k, v, alpha, T, H, K, V, \
                                                               scale, log_tv)
    switch (rv) {
    case 1: VS_BWD(1); break;
    case 2: VS_BWD(2); break;
    case 3: VS_BWD(3); break;
    default: VS_BWD(4); break;
    }
#undef VS_BWD
}

void cuda_scan_delta_vec_backward(real *dq, real *dk, real *dv, real *dalpha, real *scratch,
                                  const real *dout, const real *states, const real *q,
                                  const real *k, const real *v, const real *alpha, int B, int T,
                                  int H, int K, int V, real scale)
{
    const vs_shape p = vs_plan("scan_delta_vec_backward", K, V);
    if (B < 1 || H < 1 || T < 1) return;
    if (cuda_scan_delta_vec_chunked_chosen(T, K, V)) { // needs no scratch
        cuda_scan_delta_vec_chunked_backward(dq, dk, dv, dalpha, dout, states, q, k, v, alpha, B,
                                             T, H, K, V, scale);
        return;
    }
    const int blocks = B * H;
    cudaStream_t st = sb_cuda_stream();
#define VS_ARGS p.rv, blocks, st, dq, dk, dv, dalpha, scratch, dout, states, q, k, v, alpha, T, H, K, V, scale, p.log_tv
    switch (p.rk) {
    case 1: vs_bwd_launch<1>(VS_ARGS); break;
    case 2: vs_bwd_launch<2>(VS_ARGS); break;
    case 4: vs_bwd_launch<4>(VS_ARGS); break;
    case 8: vs_bwd_launch<8>(VS_ARGS); break;
    default: vs_bwd_launch<16>(VS_ARGS); break;
    }
#undef VS_ARGS
    CUDA_CHECK_LAST();
}

// ---- gates (kernels/cpu/delta_gates.c) -------------------------------------------

__device__ __forceinline__ float dg_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

// log s(x) = -softplus(-x), without overflow for large |x|
__device__ __forceinline__ float dg_log_sigmoid(float x)
{
    return x >= 0.0f ? -log1pf(expf(-x)) : x - log1pf(expf(x));
}

__global__ void sigmoid_pow_fwd_kernel(float *out, const float *inp, size_t n, float p,
                                       int signed_map)
{
    for (size_t i = SB_GRID_START; i < n; i += SB_GRID_STRIDE) {
        const float a = expf(p * dg_log_sigmoid(inp[i]));
        out[i] = signed_map ? 2.0f * a - 1.0f : a;
    }
}

// d s(x)^p / dx = p s(x)^p (1 - s(x))
__global__ void sigmoid_pow_bwd_kernel(float *dinp, const float *dout, const float *inp, size_t n,
                                       float p, float kmap)
{
    for (size_t i = SB_GRID_START; i < n; i += SB_GRID_STRIDE) {
        const float a = expf(p * dg_log_sigmoid(inp[i]));
        const float slope = p * a * (1.0f - dg_sigmoid(inp[i]));
        dinp[i] += kmap * slope * dout[i];
    }
}

void cuda_sigmoid_pow_forward(real *out, const real *inp, size_t n, real p, int eigen_signed)
{
    if (!n) return;
    sigmoid_pow_fwd_kernel<<<sb_grid(n, SB_BLOCK), SB_BLOCK, 0, sb_cuda_stream()>>>(out, inp, n, p,
                                                                                   eigen_signed != 0);
    CUDA_CHECK_LAST();
}

void cuda_sigmoid_pow_backward(real *dinp, const real *dout, const real *inp, size_t n, real p,
                               int eigen_signed)
{
    if (!n) return;
    sigmoid_pow_bwd_kernel<<<sb_grid(n, SB_BLOCK), SB_BLOCK, 0, sb_cuda_stream()>>>(
        dinp, dout, inp, n, p, eigen_signed ? 2.0f : 1.0f);
    CUDA_CHECK_LAST();
}

// One thread per (b,h), sequential over t (the max is a recurrence).
// m_0 = -inf: m_1 = i~_1 and the first forget gate is 0, as the CPU.
__global__ void mlstm_gates_fwd_kernel(float *fgate, float *igate, float *m, const float *f_pre,
                                       const float *i_pre, int T, int H, int BH)
{
    // all (B,T,H)
    for (size_t bh = SB_GRID_START; bh < (size_t)BH; bh += SB_GRID_STRIDE) {
        const size_t b = bh / H, h = bh % H;
        float m_prev = 0;
        for (int t = 0; t < T; t++) {
            const size_t r = (b * T + t) * H + h;
            float mt;
            if (t == 0) {
                mt = i_pre[r];
                fgate[r] = 0;
            } else {
                const float a = dg_log_sigmoid(f_pre[r]) + m_prev;
                mt = a >= i_pre[r] ? a : i_pre[r];
                fgate[r] = expf(a - mt);
            }
            igate[r] = expf(i_pre[r] - mt);
            m[r] = mt;
            m_prev = mt;
        }
    }
}

// The reverse of the above: carry = dL/dm_t through step t+1 (its forget
// gate and max); the branch of the max is recomputed from the cached m with
// the forward's arithmetic, so both passes take the same one.
__global__ void mlstm_gates_bwd_kernel(float *df_pre, float *di_pre, const float *dfgate,
                                       const float *digate, const float *dm, const float *fgate,
                                       const float *igate, const float *m, const float *f_pre,
                                       const float *i_pre, int T, int H, int BH)
{
    for (size_t bh = SB_GRID_START; bh < (size_t)BH; bh += SB_GRID_STRIDE) {
        const size_t b = bh / H, h = bh % H;
        float carry = 0;
        for (int t = T - 1; t >= 0; t--) {
            const size_t r = (b * T + t) * H + h;
            const float di_exp = digate[r] * igate[r]; // through exp(i~ - m_t)
            float gm = dm[r] + carry - di_exp;         // total dL/dm_t
            float di = di_exp;
            carry = 0;
            if (t == 0) {
                di += gm; // m_1 = i~_1
            } else {
                const size_t rp = r - H;                   // token t - 1
                const float df_exp = dfgate[r] * fgate[r]; // through exp(lsf + m_{t-1} - m_t)
                gm -= df_exp;
                float dlsf = df_exp;
                carry = df_exp;
                const float a = dg_log_sigmoid(f_pre[r]) + m[rp];
                if (a >= i_pre[r]) { // m_t = lsf + m_{t-1}
                    dlsf += gm;
                    carry += gm;
                } else {
                    di += gm;
                }
                df_pre[r] += dlsf * (1.0f - dg_sigmoid(f_pre[r]));
            }
            di_pre[r] += di;
        }
    }
}

void cuda_mlstm_gates_forward(real *fgate, real *igate, real *m, const real *f_pre,
                              const real *i_pre, int B, int T, int H)
{
    const int BH = B * H;
    if (B < 1 || T < 1 || H < 1) return;
    mlstm_gates_fwd_kernel<<<sb_grid((size_t)BH, 128), 128, 0, sb_cuda_stream()>>>(
        fgate, igate, m, f_pre, i_pre, T, H, BH);
    CUDA_CHECK_LAST();
}

void cuda_mlstm_gates_backward(real *df_pre, real *di_pre, const real *dfgate,
                               const real *digate, const real *dm, const real *fgate,
                               const real *igate, const real *m, const real *f_pre,
                               const real *i_pre, int B, int T, int H)
{
    const int BH = B * H;
    if (B < 1 || T < 1 || H < 1) return;
    mlstm_gates_bwd_kernel<<<sb_grid((size_t)BH, 128), 128, 0, sb_cuda_stream()>>>(
        df_pre, di_pre, dfgate, digate, dm, fgate, igate, m, f_pre, i_pre, T, H, BH);
    CUDA_CHECK_LAST();
}

__global__ void mlstm_den_fwd_kernel(float *den, const float *nq, const float *m, size_t n)
{
    for (size_t i = SB_GRID_START; i < n; i += SB_GRID_STRIDE) {
        const float a = fabsf(nq[i]), e = expf(-m[i]);
        den[i] = a >= e ? a : e;
    }
}

__global__ void mlstm_den_bwd_kernel(float *dnq, float *dm, const float *dden, const float *nq,
                                     const float *m, size_t n)
{
    for (size_t i = SB_GRID_START; i < n; i += SB_GRID_STRIDE) {
        const float a = fabsf(nq[i]), e = expf(-m[i]);
        if (a >= e)
            dnq[i] += nq[i] >= 0.0f ? dden[i] : -dden[i];
        else
            dm[i] -= e * dden[i];
    }
}

void cuda_mlstm_den_forward(real *den, const real *nq, const real *m, size_t n)
{
    if (!n) return;
    mlstm_den_fwd_kernel<<<sb_grid(n, SB_BLOCK), SB_BLOCK, 0, sb_cuda_stream()>>>(den, nq, m, n);
    CUDA_CHECK_LAST();
}

void cuda_mlstm_den_backward(real *dnq, real *dm, const real *dden, const real *nq, const real *m,
                             size_t n)
{
    if (!n) return;
    mlstm_den_bwd_kernel<<<sb_grid(n, SB_BLOCK), SB_BLOCK, 0, sb_cuda_stream()>>>(dnq, dm, dden, nq,
                                                                                 m, n);
    CUDA_CHECK_LAST();
}

// fill_rows: the row is host memory, so its values travel as kernel
// arguments, FILL_COLS columns per launch (1 KiB of parameters): no copy, no
// host sync, nothing for the caller to keep alive.
#define FILL_COLS 256
struct fill_vals {
    float v[FILL_COLS];
};

// out (N,C): columns c0 .. c0 + w - 1 of every row = vals
__global__ void fill_rows_kernel(float *out, fill_vals vals, int C, int c0, int w, size_t n)
{
    for (size_t i = SB_GRID_START; i < n; i += SB_GRID_STRIDE) {
        const size_t r = i / w;
        const int j = (int)(i % w);
        out[r * C + c0 + j] = vals.v[j];
    }
}

void cuda_fill_rows(real *out, const double *row, int N, int C)
{
    if (N < 1 || C < 1) return;
    for (int c0 = 0; c0 < C; c0 += FILL_COLS) {
        const int w = C - c0 < FILL_COLS ? C - c0 : FILL_COLS;
        fill_vals vals;
        for (int j = 0; j < FILL_COLS; j++) vals.v[j] = j < w ? (float)row[c0 + j] : 0.0f;
        const size_t n = (size_t)N * w;
        fill_rows_kernel<<<sb_grid(n, SB_BLOCK), SB_BLOCK, 0, sb_cuda_stream()>>>(out, vals, C, c0,
                                                                                 w, n);
        CUDA_CHECK_LAST();
    }
}
