// attention.cu: CUDA rotary embedding and fused causal flash attention (online softmax, no T x T matrix in memory).
//
// Semantics are those of kernels/cpu/attention.c (see ops.h): per head (b,h),
// S = D^-1/2 Q K^T, P = softmax over the causal row, out = P V. The cache is
// not: the CPU keeps P (B,H,T,T); here att holds, per attention_cache_len,
//   lse (B,H,T)    the log-sum-exp of each causal row of S, and
//   o   (B,T,H,D)  a copy of out, for the backward's D_i = rowsum(dO * O)
//                  (attention_backward is not given out),
// so memory grows like T D, not T^2, and the backward recomputes P per tile
// as exp(S - lse). Everything is fp32 on the CUDA cores (no tensor cores).
//
// Forward (FlashAttention-2): a block takes FA_ROWS query rows of one head,
// FA_RW rows per warp; it walks the key tiles of FA_COLS keys (one per lane)
// from the first up to the one holding the diagonal, and never touches a
// tile above it. Per tile, lane c computes its key's score for each of the
// warp's rows; the row maximum (a warp reduction) rescales the running
// output o (lane d holds columns d, d + 32, ...) and the lane's partial sum
// of exponentials, then o += P V with P passed through shared memory.
//
// Backward, no atomics, every gradient element written by one thread in a
// fixed order, so results are deterministic:
//   1. dq pass, a block per FA_ROWS query rows (the forward's layout): first
//      D_i = dO_i . O_i for its rows (written to scratch, B H T reals), then
//      over the key tiles up to the diagonal: P = exp(S - lse),
//      dP = dO V^T, dS = scale P * (dP - D_i), dQ += dS K.
//   2. dk/dv pass, a block per FA_ROWS keys, FA_RW per warp, lanes along
//      the FA_COLS query rows of a tile; over the query tiles from the
//      diagonal to the end: dV += P^T dO, dK += dS^T Q.
// The gradients are accumulated (+=) into dq, dk, dv as on the CPU.
//
// Head sizes 1 <= D <= FA_MAX_D: lane d owns output columns d + 32 i,
// i < DCH = ceil(D / 32), a template parameter; lanes past D compute on a
// clamped column and store nothing. Shared-memory rows read by one lane
// each (keys in the forward and dq pass, queries in the dk/dv pass) have an
// odd stride (D | 1), free of bank conflicts.
#include "cuda_common.h"
#include "ops_cuda.h"
#include "../cuda_limits.h"

#include <type_traits>

static_assert(std::is_same<real, float>::value, "the CUDA backend is float only");

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

// ---- causal flash attention ---------------------------------------------------

#define FA_WARPS 4
#define FA_THREADS (FA_WARPS * 32)
#define FA_RW 4                    // rows per warp: query rows (forward, dq) or keys (dk/dv)
#define FA_ROWS (FA_WARPS * FA_RW) // rows per block
#define FA_COLS 32                 // the other side's tile: one key (or query) per lane
#define FA_MAX_D 128
#define FA_MAX_DCH (FA_MAX_D / 32)
#define FA_MAX_TILES 65535         // grid y: row blocks of one head
static_assert(FA_MAX_D == CUDA_ATTENTION_MAX_D && FA_MAX_TILES * FA_ROWS == CUDA_ATTENTION_MAX_T,
              "the harness checks runs against kernels/cuda_limits.h");

static_assert(FA_COLS == 32, "one column of a tile per lane");

// s (rows, stride) = rows t0 .. t0+rows-1 (columns 0..D-1) of one head of a
// (B,T,H,D) tensor, x pointing at the head's row 0, rows ld apart; rows past
// T are zero, so that masked terms are 0 * 0 (shared memory starts undefined).
__device__ __forceinline__ void fa_load_rows(float *s, int stride, const float *x, size_t ld,
                                             int t0, int rows, int T, int D)
{
    for (int i = threadIdx.x; i < rows * D; i += FA_THREADS) {
        const int r = i / D, d = i - r * D, t = t0 + r;
        s[r * stride + d] = t < T ? x[(size_t)t * ld + d] : 0.0f;
    }
}

// The output columns of this lane, d = lane + 32 i, clamped to D - 1 so
// that lanes past D read a real column (and store nothing).
template <int DCH> __device__ __forceinline__ void fa_columns(int (&dd)[DCH], int lane, int D)
{
#pragma unroll
    for (int i = 0; i < DCH; i++) dd[i] = min(lane + 32 * i, D - 1);
}

// Shared memory of each kernel, in floats (the layouts are at the kernels).
static size_t fa_fwd_smem(int D)
{
    return (size_t)FA_ROWS * D + (size_t)FA_COLS * (D | 1) + (size_t)FA_COLS * D +
           (size_t)FA_ROWS * FA_COLS;
}
static size_t fa_dq_smem(int D)
{
    return 2 * (size_t)FA_ROWS * D + 2 * (size_t)FA_COLS * (D | 1) + (size_t)FA_ROWS * FA_COLS;
}
static size_t fa_dkdv_smem(int D)
{
    return 2 * (size_t)FA_ROWS * D + 2 * (size_t)FA_COLS * (D | 1) + 2 * (size_t)FA_COLS +
           2 * (size_t)FA_ROWS * FA_COLS;
}

// grid (B*H, ceil(T / FA_ROWS)), block FA_THREADS, fa_fwd_smem(D) floats.
// out, o_copy, q, k, v (B,T,H,D); lse (B,H,T).
template <int DCH>
__global__ void __launch_bounds__(FA_THREADS)
    flash_fwd_kernel(float *out, float *lse, float *o_copy, const float *q, const float *k,
                     const float *v, int T, int H, int D, float scale)
{
    extern __shared__ float fa_smem[];
    const int ks = D | 1;
    float *Qs = fa_smem;              // (FA_ROWS, D) the block's queries
    float *Ks = Qs + FA_ROWS * D;     // (FA_COLS, ks) a key tile
    float *Vs = Ks + FA_COLS * ks;    // (FA_COLS, D) its values
    float *Ps = Vs + FA_COLS * D;     // (FA_ROWS, FA_COLS) exp(S - running max)
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int bh = blockIdx.x, b = bh / H, h = bh % H;
    const int r0 = (gridDim.y - 1 - blockIdx.y) * FA_ROWS; // the longest rows start first
    const size_t ld = (size_t)H * D, head = (size_t)b * T * ld + (size_t)h * D;
    const float *qw = Qs + warp * FA_RW * D;
    float *pw = Ps + warp * FA_RW * FA_COLS;
    int dd[DCH];
    fa_columns(dd, lane, D);

    fa_load_rows(Qs, D, q + head, ld, r0, FA_ROWS, T, D);
    // per row: running max m (the same on every lane), this lane's share of
    // the sum of exponentials l, the unnormalised output o at the lane's columns
    float m[FA_RW], l[FA_RW], o[FA_RW][DCH];
#pragma unroll
    for (int r = 0; r < FA_RW; r++) {
        m[r] = -INFINITY;
        l[r] = 0.0f;
#pragma unroll
        for (int i = 0; i < DCH; i++) o[r][i] = 0.0f;
    }
    const int tiles = (min(T, r0 + FA_ROWS) - 1) / FA_COLS + 1; // up to the diagonal
    for (int kt = 0; kt < tiles; kt++) {
        const int c0 = kt * FA_COLS;
        __syncthreads(); // the previous tile is consumed (and Qs is written)
        fa_load_rows(Ks, ks, k + head, ld, c0, FA_COLS, T, D);
        fa_load_rows(Vs, D, v + head, ld, c0, FA_COLS, T, D);
        __syncthreads();
        float s[FA_RW];
#pragma unroll
        for (int r = 0; r < FA_RW; r++) s[r] = 0.0f;
        const float *kl = Ks + lane * ks;
        for (int d = 0; d < D; d++) {
            const float kd = kl[d];
#pragma unroll
            for (int r = 0; r < FA_RW; r++) s[r] += qw[r * D + d] * kd;
        }
        const int c = c0 + lane;
#pragma unroll
        for (int r = 0; r < FA_RW; r++) {
            // rows past T take row T-1's mask: finite values, never stored
            const int t = min(r0 + warp * FA_RW + r, T - 1);
            const float x = c <= t ? s[r] * scale : -INFINITY;
            // finite from the first tile on, which holds key 0
            const float mnew = fmaxf(m[r], sb_warp_max(x));
            const float corr = expf(m[r] - mnew), p = expf(x - mnew);
            l[r] = l[r] * corr + p;
#pragma unroll
            for (int i = 0; i < DCH; i++) o[r][i] *= corr;
            m[r] = mnew;
            pw[r * FA_COLS + lane] = p;
        }
        __syncwarp(0xffffffffu);
        for (int j = 0; j < FA_COLS; j++) {
            float vj[DCH];
#pragma unroll
            for (int i = 0; i < DCH; i++) vj[i] = Vs[j * D + dd[i]];
#pragma unroll
            for (int r = 0; r < FA_RW; r++) {
                const float p = pw[r * FA_COLS + j];
#pragma unroll
                for (int i = 0; i < DCH; i++) o[r][i] += p * vj[i];
            }
        }
        // pw is rewritten only after the next tile's first barrier
    }
#pragma unroll
    for (int r = 0; r < FA_RW; r++) {
        const float sum = sb_warp_sum(l[r]);
        const int t = r0 + warp * FA_RW + r;
        if (t >= T) continue;
        const float inv = 1.0f / sum;
        const size_t row = head + (size_t)t * ld;
#pragma unroll
        for (int i = 0; i < DCH; i++) {
            if (lane + 32 * i >= D) continue;
            const float y = o[r][i] * inv;
            out[row + dd[i]] = y;
            o_copy[row + dd[i]] = y;
        }
        if (lane == 0) lse[(size_t)bh * T + t] = m[r] + logf(sum);
    }
}

// Backward pass 1. grid (B*H, ceil(T / FA_ROWS)), block FA_THREADS,
// fa_dq_smem(D) floats. dq, dout, o, q, k, v (B,T,H,D); lse, delta (B,H,T).
// Writes delta = rowsum(dout * o) for pass 2 and adds dq.
template <int DCH>
__global__ void __launch_bounds__(FA_THREADS)
    flash_bwd_dq_kernel(float *dq, float *delta, const float *dout, const float *lse,
                        const float *o, const float *q, const float *k, const float *v, int T,
                        int H, int D, float scale)
{
    extern __shared__ float fa_smem[];
    const int ks = D | 1;
    float *Qs = fa_smem;              // (FA_ROWS, D) the block's queries
    float *dOs = Qs + FA_ROWS * D;    // (FA_ROWS, D) their output gradients
    float *Ks = dOs + FA_ROWS * D;    // (FA_COLS, ks) a key tile
    float *Vs = Ks + FA_COLS * ks;    // (FA_COLS, ks) its values
    float *dSs = Vs + FA_COLS * ks;   // (FA_ROWS, FA_COLS) dS of the tile
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int bh = blockIdx.x, b = bh / H, h = bh % H;
    const int r0 = (gridDim.y - 1 - blockIdx.y) * FA_ROWS;
    const size_t ld = (size_t)H * D, head = (size_t)b * T * ld + (size_t)h * D;
    const float *qw = Qs + warp * FA_RW * D, *dow = dOs + warp * FA_RW * D;
    float *dsw = dSs + warp * FA_RW * FA_COLS;
    int dd[DCH];
    fa_columns(dd, lane, D);

    fa_load_rows(Qs, D, q + head, ld, r0, FA_ROWS, T, D);
    fa_load_rows(dOs, D, dout + head, ld, r0, FA_ROWS, T, D);
    __syncthreads();
    // D_i = dO_i . O_i (= rowsum(P * dP)) and lse_i of the warp's rows
    float di[FA_RW], li[FA_RW], acc[FA_RW][DCH];
#pragma unroll
    for (int r = 0; r < FA_RW; r++) {
        const int t = r0 + warp * FA_RW + r;
        float part = 0.0f;
        if (t < T)
            for (int d = lane; d < D; d += 32) part += dow[r * D + d] * o[head + (size_t)t * ld + d];
        di[r] = sb_warp_sum(part);
        li[r] = t < T ? lse[(size_t)bh * T + t] : 0.0f;
        if (t < T && lane == 0) delta[(size_t)bh * T + t] = di[r];
#pragma unroll
        for (int i = 0; i < DCH; i++) acc[r][i] = 0.0f;
    }
    const int tiles = (min(T, r0 + FA_ROWS) - 1) / FA_COLS + 1;
    for (int kt = 0; kt < tiles; kt++) {
        const int c0 = kt * FA_COLS;
        __syncthreads();
        fa_load_rows(Ks, ks, k + head, ld, c0, FA_COLS, T, D);
        fa_load_rows(Vs, ks, v + head, ld, c0, FA_COLS, T, D);
        __syncthreads();
        float s[FA_RW], dp[FA_RW];
#pragma unroll
        for (int r = 0; r < FA_RW; r++) s[r] = dp[r] = 0.0f;
        const float *kl = Ks + lane * ks, *vl = Vs + lane * ks;
        for (int d = 0; d < D; d++) {
            const float kd = kl[d], vd = vl[d];
#pragma unroll
            for (int r = 0; r < FA_RW; r++) {
                s[r] += qw[r * D + d] * kd;
                dp[r] += dow[r * D + d] * vd;
            }
        }
        const int c = c0 + lane;
#pragma unroll
        for (int r = 0; r < FA_RW; r++) {
            const int t = r0 + warp * FA_RW + r;
            const float p = c <= t && t < T ? expf(s[r] * scale - li[r]) : 0.0f;
            dsw[r * FA_COLS + lane] = scale * p * (dp[r] - di[r]);
        }
        __syncwarp(0xffffffffu);
        for (int j = 0; j < FA_COLS; j++) {
            float kj[DCH];
#pragma unroll
            for (int i = 0; i < DCH; i++) kj[i] = Ks[j * ks + dd[i]];
#pragma unroll
            for (int r = 0; r < FA_RW; r++) {
                const float ds = dsw[r * FA_COLS + j];
#pragma unroll
                for (int i = 0; i < DCH; i++) acc[r][i] += ds * kj[i];
            }
        }
    }
#pragma unroll
    for (int r = 0; r < FA_RW; r++) {
        const int t = r0 + warp * FA_RW + r;
        if (t >= T) continue;
        const size_t row = head + (size_t)t * ld;
#pragma unroll
        for (int i = 0; i < DCH; i++)
            if (lane + 32 * i < D) dq[row + dd[i]] += acc[r][i];
    }
}

// Backward pass 2. grid (B*H, ceil(T / FA_ROWS)), block FA_THREADS,
// fa_dkdv_smem(D) floats; block y holds keys y FA_ROWS .. (the first keys
// meet the most queries and start first). dk, dv, dout, q, k, v (B,T,H,D);
// lse, delta (B,H,T).
template <int DCH>
__global__ void __launch_bounds__(FA_THREADS)
    flash_bwd_dkdv_kernel(float *dk, float *dv, const float *dout, const float *lse,
                          const float *delta, const float *q, const float *k, const float *v,
                          int T, int H, int D, float scale)
{
    extern __shared__ float fa_smem[];
    const int qs = D | 1;
    float *Ks = fa_smem;                // (FA_ROWS, D) the block's keys
    float *Vs = Ks + FA_ROWS * D;       // (FA_ROWS, D) their values
    float *Qs = Vs + FA_ROWS * D;       // (FA_COLS, qs) a query tile
    float *dOs = Qs + FA_COLS * qs;     // (FA_COLS, qs) its output gradients
    float *Ls = dOs + FA_COLS * qs;     // (FA_COLS) its lse
    float *Ds = Ls + FA_COLS;           // (FA_COLS) its delta
    float *Ps = Ds + FA_COLS;           // (FA_ROWS, FA_COLS) P^T of the tile
    float *dSs = Ps + FA_ROWS * FA_COLS; // (FA_ROWS, FA_COLS) dS^T of the tile
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int bh = blockIdx.x, b = bh / H, h = bh % H;
    const int c0 = blockIdx.y * FA_ROWS;
    const size_t ld = (size_t)H * D, head = (size_t)b * T * ld + (size_t)h * D;
    const float *kw = Ks + warp * FA_RW * D, *vw = Vs + warp * FA_RW * D;
    float *pw = Ps + warp * FA_RW * FA_COLS, *dsw = dSs + warp * FA_RW * FA_COLS;
    int dd[DCH];
    fa_columns(dd, lane, D);

    fa_load_rows(Ks, D, k + head, ld, c0, FA_ROWS, T, D);
    fa_load_rows(Vs, D, v + head, ld, c0, FA_ROWS, T, D);
    float gk[FA_RW][DCH], gv[FA_RW][DCH];
#pragma unroll
    for (int r = 0; r < FA_RW; r++)
#pragma unroll
        for (int i = 0; i < DCH; i++) gk[r][i] = gv[r][i] = 0.0f;
    const int tiles = (T - 1) / FA_COLS + 1;
    for (int qt = c0 / FA_COLS; qt < tiles; qt++) { // from the tile holding the diagonal
        const int t0 = qt * FA_COLS;
        __syncthreads();
        fa_load_rows(Qs, qs, q + head, ld, t0, FA_COLS, T, D);
        fa_load_rows(dOs, qs, dout + head, ld, t0, FA_COLS, T, D);
        for (int i = threadIdx.x; i < FA_COLS; i += FA_THREADS) {
            const int t = t0 + i;
            Ls[i] = t < T ? lse[(size_t)bh * T + t] : 0.0f;
            Ds[i] = t < T ? delta[(size_t)bh * T + t] : 0.0f;
        }
        __syncthreads();
        float s[FA_RW], dp[FA_RW];
#pragma unroll
        for (int r = 0; r < FA_RW; r++) s[r] = dp[r] = 0.0f;
        const float *ql = Qs + lane * qs, *dol = dOs + lane * qs;
        for (int d = 0; d < D; d++) {
            const float qd = ql[d], dod = dol[d];
#pragma unroll
            for (int r = 0; r < FA_RW; r++) {
                s[r] += qd * kw[r * D + d];
                dp[r] += dod * vw[r * D + d];
            }
        }
        const int t = t0 + lane;
#pragma unroll
        for (int r = 0; r < FA_RW; r++) {
            const int c = c0 + warp * FA_RW + r;
            const float p = c <= t && t < T ? expf(s[r] * scale - Ls[lane]) : 0.0f;
            pw[r * FA_COLS + lane] = p;
            dsw[r * FA_COLS + lane] = scale * p * (dp[r] - Ds[lane]);
        }
        __syncwarp(0xffffffffu);
        for (int j = 0; j < FA_COLS; j++) {
            float qj[DCH], doj[DCH];
#pragma unroll
            for (int i = 0; i < DCH; i++) {
                qj[i] = Qs[j * qs + dd[i]];
                doj[i] = dOs[j * qs + dd[i]];
            }
#pragma unroll
            for (int r = 0; r < FA_RW; r++) {
                const float p = pw[r * FA_COLS + j], ds = dsw[r * FA_COLS + j];
#pragma unroll
                for (int i = 0; i < DCH; i++) {
                    gv[r][i] += p * doj[i];
                    gk[r][i] += ds * qj[i];
                }
            }
        }
    }
#pragma unroll
    for (int r = 0; r < FA_RW; r++) {
        const int c = c0 + warp * FA_RW + r;
        if (c >= T) continue;
        const size_t row = head + (size_t)c * ld;
#pragma unroll
        for (int i = 0; i < DCH; i++) {
            if (lane + 32 * i >= D) continue;
            dk[row + dd[i]] += gk[r][i];
            dv[row + dd[i]] += gv[r][i];
        }
    }
}

// Refuses (sb_cuda_fail: the message, exit 1) the sizes the kernels do not cover;
// returns the grid of every kernel.
static dim3 fa_grid(const char *op, int B, int T, int H, int D)
{
    char msg[160];
    if (D > FA_MAX_D) {
        snprintf(msg, sizeof msg,
                 "head size D = %d: the CUDA flash attention supports 1 <= D <= %d", D, FA_MAX_D);
        sb_cuda_fail(__FILE__, __LINE__, op, msg);
    }
    const unsigned tiles = sb_cdiv((size_t)T, FA_ROWS);
    if (tiles > FA_MAX_TILES) {
        snprintf(msg, sizeof msg, "sequence length T = %d: the CUDA flash attention supports T <= %d",
                 T, FA_MAX_TILES * FA_ROWS);
        sb_cuda_fail(__FILE__, __LINE__, op, msg);
    }
    return dim3((unsigned)(B * H), tiles);
}

// att: lse (B,H,T), then the copy of out (B,T,H,D).
size_t cuda_attention_cache_len(int B, int T, int H, int D)
{
    return (size_t)B * H * T + (size_t)B * T * H * D;
}

template <int DCH>
static void fa_forward(dim3 grid, real *out, real *att, const real *q, const real *k,
                       const real *v, int B, int T, int H, int D, float scale)
{
    const size_t smem = fa_fwd_smem(D) * sizeof(float);
    sb_cuda_allow_smem((const void *)flash_fwd_kernel<DCH>, smem, "attention_forward");
    float *lse = att, *o_copy = att + (size_t)B * H * T;
    flash_fwd_kernel<DCH><<<grid, FA_THREADS, smem, sb_cuda_stream()>>>(out, lse, o_copy, q, k,
                                                                         v, T, H, D, scale);
    CUDA_CHECK_LAST();
}

void cuda_attention_forward(real *out, real *att, const real *q, const real *k,
                                       const real *v, int B, int T, int H, int D)
{
    // out, q, k, v (B,T,H,D); att cuda_attention_cache_len(B,T,H,D)
    const dim3 grid = fa_grid("attention_forward", B, T, H, D);
    if (B < 1 || T < 1 || H < 1 || D < 1) return;
    const float scale = (float)(1.0 / sqrt((double)D));
    switch ((D + 31) / 32) {
    case 1: fa_forward<1>(grid, out, att, q, k, v, B, T, H, D, scale); break;
    case 2: fa_forward<2>(grid, out, att, q, k, v, B, T, H, D, scale); break;
    case 3: fa_forward<3>(grid, out, att, q, k, v, B, T, H, D, scale); break;
    default: fa_forward<FA_MAX_DCH>(grid, out, att, q, k, v, B, T, H, D, scale); break;
    }
}

// delta (B,H,T), written by the dq pass and read by the dk/dv pass.
size_t cuda_attention_scratch_len(int B, int T, int H)
{
    return (size_t)B * H * T;
}

template <int DCH>
static void fa_backward(dim3 grid, real *dq, real *dk, real *dv, real *delta, const real *dout,
                        const real *att, const real *q, const real *k, const real *v, int B,
                        int T, int H, int D, float scale)
{
    const float *lse = att, *o = att + (size_t)B * H * T;
    cudaStream_t st = sb_cuda_stream();
    const size_t smem_dq = fa_dq_smem(D) * sizeof(float), smem_kv = fa_dkdv_smem(D) * sizeof(float);
    sb_cuda_allow_smem((const void *)flash_bwd_dq_kernel<DCH>, smem_dq, "attention_backward");
    sb_cuda_allow_smem((const void *)flash_bwd_dkdv_kernel<DCH>, smem_kv, "attention_backward");
    flash_bwd_dq_kernel<DCH><<<grid, FA_THREADS, smem_dq, st>>>(dq, delta, dout, lse, o, q, k, v,
                                                                 T, H, D, scale);
    CUDA_CHECK_LAST();
    flash_bwd_dkdv_kernel<DCH><<<grid, FA_THREADS, smem_kv, st>>>(dk, dv, dout, lse, delta, q, k,
                                                                   v, T, H, D, scale);
    CUDA_CHECK_LAST();
}

void cuda_attention_backward(real *dq, real *dk, real *dv, real *scratch,
                                        const real *dout, const real *att, const real *q,
                                        const real *k, const real *v, int B, int T, int H,
                                        int D)
{
    // dq, dk, dv, dout, q, k, v (B,T,H,D); att from cuda_attention_forward;
    // scratch cuda_attention_scratch_len(B,T,H)
    const dim3 grid = fa_grid("attention_backward", B, T, H, D);
    if (B < 1 || T < 1 || H < 1 || D < 1) return;
    const float scale = (float)(1.0 / sqrt((double)D));
    switch ((D + 31) / 32) {
    case 1: fa_backward<1>(grid, dq, dk, dv, scratch, dout, att, q, k, v, B, T, H, D, scale); break;
    case 2: fa_backward<2>(grid, dq, dk, dv, scratch, dout, att, q, k, v, B, T, H, D, scale); break;
    case 3: fa_backward<3>(grid, dq, dk, dv, scratch, dout, att, q, k, v, B, T, H, D, scale); break;
    default:
        fa_backward<FA_MAX_DCH>(grid, dq, dk, dv, scratch, dout, att, q, k, v, B, T, H, D, scale);
        break;
    }
}
