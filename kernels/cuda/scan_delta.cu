// scan_delta.cu: CUDA gated delta rule scan, recurrent form, with the state on chip.
//
// Semantics, cache layout and accumulation are those of kernels/cpu/scan_delta.c
// (see ops.h): per (b,h), S_t = alpha_t (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T
// (or alpha_t S_{t-1} + k_t v_t^T when beta == NULL), o_t = scale S_t^T q_t, and
// `states` holds S_{min(c CKPT, T)} in slot c, c = 0 .. ceil(T / CKPT).
//
// Thread layout. A block of SD_THREADS threads holds a K x (TV RV) tile of one
// (b,h)'s state in registers: TV (a power of two, the smallest >= min(V, 32))
// threads along the columns, TK = SD_THREADS / TV along the rows; thread
// (ty, tx) owns rows ty + TK r (r < RK) and columns tx + TV s (s < RV).
// The columns of the state evolve independently (S[:,j] only meets k, q,
// v_j), so reductions over a column (k^T S, q^T S, k^T dS) run over ty:
// shuffles inside a warp, then the 8 warps through shared memory in a fixed
// order. Reductions over a row (the gradients of q and k) run over tx, all
// inside one warp. Every sum has a fixed order: results do not vary between
// runs.
//
// The forward needs no sum over columns, so it splits V over blocks (RV = 1,
// one block per (b,h) and TV columns). The backward sums over all columns
// for dq, dk, dbeta and dalpha, so one block holds all V columns (RV =
// ceil(V / TV)) and no sum crosses blocks.
//
// Backward, per chunk of CKPT tokens from the last: recompute the chunk's
// states from its checkpoint (writing S_{t-1} of each token to scratch,
// L K V reals per (b,h), L = min(T, CKPT): within the CPU's
// scan_delta_scratch_len) and add dq_t = scale S_t dout_t on the way, as it
// needs no later token; then reverse the chunk token by token with dS (dL/dS)
// in registers.
#include "cuda_common.h"
#include "ops_cuda.h"
#include "../cuda_limits.h"
#include "scan_delta_chunk.h"
#include "tile_reduce.cuh"

#include <type_traits>

static_assert(std::is_same<real, float>::value, "the CUDA backend is float only");

#define SD_THREADS 256
#define SD_WARPS (SD_THREADS / 32)
#define SD_MAX_KV 128
static_assert(SD_MAX_KV == CUDA_SCAN_DELTA_MAX_KV, "the harness checks runs against kernels/cuda_limits.h");
// widest column set of one reduction: 2 RV TV with RV <= 4, TV <= 32
#define SD_RED_STRIDE 256

template <int N>
__device__ __forceinline__ void sd_col_sum(float *x, float *red, int tv, int tx, int lane, int warp)
{
    tile_col_sum<N, SD_WARPS, SD_RED_STRIDE>(x, red, tv, tx, lane, warp);
}
#define sd_row_sum tile_row_sum

static __host__ __device__ int sd_num_chunks(int T) { return (T + SCAN_DELTA_CKPT - 1) / SCAN_DELTA_CKPT; }

// ---- forward ----------------------------------------------------------------

// grid (B*H, ceil(V / TV)); block SD_THREADS. RK >= ceil(K / TK).
template <int RK>
__global__ void __launch_bounds__(SD_THREADS)
    scan_delta_fwd_kernel(float *o, float *states, const float *q, const float *k,
                          const float *v, const float *beta, const float *alpha, int T, int H,
                          int K, int V, float scale, int log_tv)
{
    // o (B,T,H,V), states (B,H,nck+1,K,V), q,k (B,T,H,K), v (B,T,H,V), beta,alpha (B,T,H)
    __shared__ float red[2][SD_WARPS * SD_RED_STRIDE];
    const int tv = 1 << log_tv, tk = SD_THREADS >> log_tv;
    const int tid = threadIdx.x, tx = tid & (tv - 1), ty = tid >> log_tv;
    const int lane = tid & 31, warp = tid >> 5;
    const int bh = blockIdx.x, b = bh / H, h = bh % H;
    const int j = blockIdx.y * tv + tx;
    const bool jok = j < V;
    const size_t KV = (size_t)K * V;
    float *slots = states + (size_t)bh * (sd_num_chunks(T) + 1) * KV;

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
        float kr[RK], qr[RK];
#pragma unroll
        for (int r = 0; r < RK; r++) {
            const int i = ty + tk * r;
            kr[r] = i < K ? k[row * K + i] : 0.0f;
            qr[r] = i < K ? q[row * K + i] : 0.0f;
        }
        const float vj = jok ? v[row * V + j] : 0.0f;
        const float a = alpha ? alpha[row] : 1.0f;
        float w = vj;
        if (beta) {
            float u[1] = {0};
#pragma unroll
            for (int r = 0; r < RK; r++) u[0] += kr[r] * S[r];
            sd_col_sum<1>(u, red[buf], tv, tx, lane, warp);
            buf ^= 1;
            w = beta[row] * (vj - a * u[0]);
        }
        float ov[1] = {0};
#pragma unroll
        for (int r = 0; r < RK; r++) {
            S[r] = a * S[r] + kr[r] * w;
            ov[0] += qr[r] * S[r];
        }
        sd_col_sum<1>(ov, red[buf], tv, tx, lane, warp);
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

// ---- backward ---------------------------------------------------------------

// grid (B*H); block SD_THREADS. RK >= ceil(K / TK), RV >= ceil(V / TV).
template <int RK, int RV>
__global__ void __launch_bounds__(SD_THREADS, 1)
    scan_delta_bwd_kernel(float *dq, float *dk, float *dv, float *dbeta, float *dalpha,
                          float *scratch, const float *dout, const float *states,
                          const float *q, const float *k, const float *v, const float *beta,
                          const float *alpha, int T, int H, int K, int V, float scale,
                          int log_tv)
{
    // dq,dk,q,k (B,T,H,K), dv,dout,v (B,T,H,V), dbeta,dalpha,beta,alpha (B,T,H),
    // states (B,H,nck+1,K,V), scratch (B,H,L,K,V)
    __shared__ float red[2][SD_WARPS * SD_RED_STRIDE];
    __shared__ float da_part[SD_WARPS][SCAN_DELTA_CKPT]; // per warp and token of the chunk
    const int tv = 1 << log_tv, tk = SD_THREADS >> log_tv;
    const int tid = threadIdx.x, tx = tid & (tv - 1), ty = tid >> log_tv;
    const int lane = tid & 31, warp = tid >> 5;
    const int bh = blockIdx.x, b = bh / H, h = bh % H;
    const int nck = sd_num_chunks(T), L = T < SCAN_DELTA_CKPT ? T : SCAN_DELTA_CKPT;
    const size_t KV = (size_t)K * V;
    const float *slots = states + (size_t)bh * (nck + 1) * KV;
    float *chunk = scratch + (size_t)bh * L * KV; // (L,K,V): S before each token of the chunk
    const bool delta = beta != NULL;

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
                float kr[RK], vj[RV], dj[RV];
#pragma unroll
                for (int r = 0; r < RK; r++) {
                    kr[r] = rows[r] >= 0 ? k[row * K + rows[r]] : 0.0f;
#pragma unroll
                    for (int s = 0; s < RV; s++)
                        if (rows[r] >= 0 && cols[s] >= 0)
                            saved[(size_t)rows[r] * V + cols[s]] = S[r][s];
                }
#pragma unroll
                for (int s = 0; s < RV; s++) {
                    vj[s] = cols[s] >= 0 ? v[row * V + cols[s]] : 0.0f;
                    dj[s] = cols[s] >= 0 ? dout[row * V + cols[s]] : 0.0f;
                }
                const float a = alpha ? alpha[row] : 1.0f;
                float w[RV];
                if (delta) {
                    const float bt = beta[row];
#pragma unroll
                    for (int s = 0; s < RV; s++) {
                        w[s] = 0;
#pragma unroll
                        for (int r = 0; r < RK; r++) w[s] += kr[r] * S[r][s];
                    }
                    sd_col_sum<RV>(w, red[buf], tv, tx, lane, warp);
                    buf ^= 1;
#pragma unroll
                    for (int s = 0; s < RV; s++) w[s] = bt * (vj[s] - a * w[s]);
                } else {
#pragma unroll
                    for (int s = 0; s < RV; s++) w[s] = vj[s];
                }
#pragma unroll
                for (int r = 0; r < RK; r++) {
                    float g = 0;
#pragma unroll
                    for (int s = 0; s < RV; s++) {
                        S[r][s] = a * S[r][s] + kr[r] * w[s];
                        g += S[r][s] * dj[s];
                    }
                    g = sd_row_sum(g, tv);
                    if (tx == 0 && rows[r] >= 0) dq[row * K + rows[r]] += scale * g;
                }
            }
        }

        // Reverse the chunk.
        for (int jj = n - 1; jj >= 0; jj--) {
            const size_t row = ((size_t)b * T + t0 + jj) * H + h;
            const float *saved = chunk + (size_t)jj * KV;
            float kr[RK], qr[RK], vj[RV], dj[RV], Sp[RK][RV];
#pragma unroll
            for (int r = 0; r < RK; r++) {
                kr[r] = rows[r] >= 0 ? k[row * K + rows[r]] : 0.0f;
                qr[r] = rows[r] >= 0 ? scale * q[row * K + rows[r]] : 0.0f;
#pragma unroll
                for (int s = 0; s < RV; s++)
                    Sp[r][s] = rows[r] >= 0 && cols[s] >= 0
                                   ? saved[(size_t)rows[r] * V + cols[s]] : 0.0f;
            }
#pragma unroll
            for (int s = 0; s < RV; s++) {
                vj[s] = cols[s] >= 0 ? v[row * V + cols[s]] : 0.0f;
                dj[s] = cols[s] >= 0 ? dout[row * V + cols[s]] : 0.0f;
            }
            const float a = alpha ? alpha[row] : 1.0f;
            const float bt = delta ? beta[row] : 1.0f;

            // o_t = scale S_t^T q: dS_t += scale q dout^T. Then dw = dS_t^T k and,
            // in the delta form, u = S_{t-1}^T k: one column sum for both.
            float cs[2 * RV];
#pragma unroll
            for (int s = 0; s < RV; s++) {
                float dw = 0, u = 0;
#pragma unroll
                for (int r = 0; r < RK; r++) {
                    dS[r][s] += qr[r] * dj[s];
                    dw += kr[r] * dS[r][s];
                    u += kr[r] * Sp[r][s];
                }
                cs[s] = dw;
                cs[RV + s] = u;
            }
            if (delta)
                sd_col_sum<2 * RV>(cs, red[buf], tv, tx, lane, warp);
            else
                sd_col_sum<RV>(cs, red[buf], tv, tx, lane, warp);
            buf ^= 1;

            // S_t = alpha S_{t-1} + k w^T with w = beta (v - alpha u) (delta) or v.
            float w[RV], du[RV], db = 0, da_cols = 0;
#pragma unroll
            for (int s = 0; s < RV; s++) {
                const float dw = cs[s];
                if (delta) {
                    const float u = cs[RV + s], rr = vj[s] - a * u;
                    db += dw * rr;
                    da_cols -= bt * dw * u;
                    w[s] = bt * rr;
                    du[s] = -a * bt * dw;
                    if (ty == 0 && cols[s] >= 0) dv[row * V + cols[s]] += bt * dw;
                } else {
                    w[s] = vj[s];
                    du[s] = 0;
                    if (ty == 0 && cols[s] >= 0) dv[row * V + cols[s]] += dw;
                }
            }
            // dk = dS_t w + S_{t-1} du; dalpha += <dS_t, S_{t-1}>;
            // dS_{t-1} = alpha dS_t + k du^T
            float da_full = 0;
#pragma unroll
            for (int r = 0; r < RK; r++) {
                float g = 0;
#pragma unroll
                for (int s = 0; s < RV; s++) {
                    g += dS[r][s] * w[s] + Sp[r][s] * du[s];
                    da_full += dS[r][s] * Sp[r][s];
                    dS[r][s] = a * dS[r][s] + kr[r] * du[s];
                }
                g = sd_row_sum(g, tv);
                if (tx == 0 && rows[r] >= 0) dk[row * K + rows[r]] += g;
            }
            // db and da_cols are sums over columns: every row of threads holds them whole.
            if (dbeta) {
                db = sd_row_sum(db, tv);
                if (tid == 0) dbeta[row] += db;
            }
            if (dalpha) {
                da_full = sb_warp_sum(da_full);
                da_cols = sd_row_sum(da_cols, tv);
                if (lane == 0) da_part[warp][jj] = warp == 0 ? da_full + da_cols : da_full;
            }
        }
        if (dalpha) {
            __syncthreads();
            if (tid < n) {
                float s = 0;
#pragma unroll
                for (int w = 0; w < SD_WARPS; w++) s += da_part[w][tid];
                dalpha[((size_t)b * T + t0 + tid) * H + h] += s;
            }
            __syncthreads();
        }
    }
}

// ---- host side ----------------------------------------------------------------

// The CPU's layout: per (b,h), nck + 1 states (K,V).
size_t cuda_scan_delta_cache_len(int B, int T, int H, int K, int V)
{
    return (size_t)B * H * (size_t)(sd_num_chunks(T) + 1) * K * V;
}

// Per (b,h), the states before each token of one chunk: L (K,V), L = min(T,
// CKPT); or the chunked backward's need (scan_delta_chunk.cu), if larger.
size_t cuda_scan_delta_scratch_len(int B, int T, int H, int K, int V)
{
    const size_t L = (size_t)(T < SCAN_DELTA_CKPT ? T : SCAN_DELTA_CKPT);
    const size_t recurrent = (size_t)B * H * L * K * V;
    const size_t chunked = cuda_scan_delta_chunked_scratch_len(B, T, H, K, V);
    return recurrent > chunked ? recurrent : chunked;
}

// The chunked form (scan_delta_chunk.cu) where it is expected to be faster:
// at least 4 chunks, so its fewer barriers per token outweigh building the
// UT transform per chunk. Unmeasured (written without a GPU): the threshold
// is to be set from `statebench bench --kernels` on one.
// Where the device cannot give the chunked kernels their shared memory
// (K = V = 128 needs about 93 KiB: sm_86 cards have 99), the recurrent form.
int cuda_scan_delta_use_chunked(int T, int K, int V)
{
    return T >= 4 * SCAN_DELTA_CKPT && K <= SD_MAX_KV && V <= SD_MAX_KV &&
           cuda_scan_delta_chunked_smem(K, V) <= sb_cuda_smem_optin();
}

// The form to run: ops_set_scan_form's, or by size under OPS_SCAN_AUTO.
static bool sd_chunked(int T, int K, int V)
{
    switch (ops_get_scan_form()) {
    case OPS_SCAN_RECURRENT: return false;
    case OPS_SCAN_CHUNKED: return true;
    default: return cuda_scan_delta_use_chunked(T, K, V) != 0;
    }
}

struct sd_shape {
    int log_tv; // threads along V: 1 << log_tv
    int rk;     // rows per thread, a power of two
    int rv;     // columns per thread in the backward
};

// Refuses (exit 1 through sb_cuda_fail) the sizes the kernels do not cover.
static sd_shape sd_plan(const char *op, int K, int V)
{
    sb_cuda_check_heads(op, K, V, SD_MAX_KV);
    sd_shape p;
    p.log_tv = 0;
    while ((1 << p.log_tv) < V && p.log_tv < 5) p.log_tv++;
    const int tv = 1 << p.log_tv, tk = SD_THREADS / tv;
    const int need = (K + tk - 1) / tk;
    p.rk = 1;
    while (p.rk < need) p.rk *= 2;
    p.rv = (V + tv - 1) / tv;
    return p;
}

void cuda_scan_delta_forward(real *o, real *states, const real *q, const real *k,
                                        const real *v, const real *beta, const real *alpha,
                                        int B, int T, int H, int K, int V, real scale)
{
    const sd_shape p = sd_plan("scan_delta_forward", K, V);
    if (B < 1 || H < 1 || T < 1) return;
    if (sd_chunked(T, K, V)) {
        cuda_scan_delta_chunked_forward(o, states, q, k, v, beta, alpha, B, T, H, K, V, scale);
        return;
    }
    const dim3 grid((unsigned)(B * H), sb_cdiv((size_t)V, (size_t)1 << p.log_tv));
    cudaStream_t st = sb_cuda_stream();
#define SD_FWD(RK)                                                                           \
    scan_delta_fwd_kernel<RK><<<grid, SD_THREADS, 0, st>>>(o, states, q, k, v, beta, alpha, T, \
                                                          H, K, V, scale, p.log_tv)
    switch (p.rk) {
    case 1: SD_FWD(1); break;
    case 2: SD_FWD(2); break;
    case 4: SD_FWD(4); break;
    case 8: SD_FWD(8); break;
    default: SD_FWD(16); break;
    }
#undef SD_FWD
    CUDA_CHECK_LAST();
}

template <int RK>
static void sd_bwd_launch(int rv, int blocks, cudaStream_t st, real *dq, real *dk, real *dv,
                          real *dbeta, real *dalpha, real *scratch, const real *dout,
                          const real *states, const real *q, const real *k, const real *v,
                          const real *beta, const real *alpha, int T, int H, int K, int V,
                          real scale, int log_tv)
{
#define SD_BWD(RV)                                                                            \
    scan_delta_bwd_kernel<RK, RV><<<blocks, SD_THREADS, 0, st>>>(                              \
        dq, dk, dv, dbeta, dalpha, scratch, dout, states, q, k, v, beta, alpha, T, H, K, V, scale, \
        log_tv)
    switch (rv) {
    case 1: SD_BWD(1); break;
    case 2: SD_BWD(2); break;
    case 3: SD_BWD(3); break;
    default: SD_BWD(4); break;
    }
#undef SD_BWD
}

void cuda_scan_delta_backward(real *dq, real *dk, real *dv, real *dbeta,
                                         real *dalpha, real *scratch, const real *dout,
                                         const real *states, const real *q, const real *k,
                                         const real *v, const real *beta, const real *alpha,
                                         int B, int T, int H, int K, int V, real scale)
{
    const sd_shape p = sd_plan("scan_delta_backward", K, V);
    if ((dbeta == NULL) != (beta == NULL) || (dalpha != NULL && alpha == NULL))
        sb_cuda_fail(__FILE__, __LINE__, "scan_delta_backward",
                     "dbeta must be given exactly when beta is, dalpha only with alpha");
    if (B < 1 || H < 1 || T < 1) return;
    if (sd_chunked(T, K, V)) {
        cuda_scan_delta_chunked_backward(dq, dk, dv, dbeta, dalpha, scratch, dout, states, q, k,
                                         v, beta, alpha, B, T, H, K, V, scale);
        return;
    }
    const int blocks = B * H;
    cudaStream_t st = sb_cuda_stream();
    switch (p.rk) {
    case 1: sd_bwd_launch<1>(p.rv, blocks, st, dq, dk, dv, dbeta, dalpha, scratch, dout, states, q, k, v, beta, alpha, T, H, K, V, scale, p.log_tv); break;
    case 2: sd_bwd_launch<2>(p.rv, blocks, st, dq, dk, dv, dbeta, dalpha, scratch, dout, states, q, k, v, beta, alpha, T, H, K, V, scale, p.log_tv); break;
    case 4: sd_bwd_launch<4>(p.rv, blocks, st, dq, dk, dv, dbeta, dalpha, scratch, dout, states, q, k, v, beta, alpha, T, H, K, V, scale, p.log_tv); break;
    case 8: sd_bwd_launch<8>(p.rv, blocks, st, dq, dk, dv, dbeta, dalpha, scratch, dout, states, q, k, v, beta, alpha, T, H, K, V, scale, p.log_tv); break;
    default: sd_bwd_launch<16>(p.rv, blocks, st, dq, dk, dv, dbeta, dalpha, scratch, dout, states, q, k, v, beta, alpha, T, H, K, V, scale, p.log_tv); break;
    }
    CUDA_CHECK_LAST();
}
