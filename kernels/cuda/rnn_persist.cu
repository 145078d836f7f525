// rnn_persist.cu: persistent recurrent kernels (FlashRNN's design): one launch runs all T steps of elman, gru, slstm (block-diagonal R) or lstm (full R), forward or backward, with R on chip.
//
// One thread block per (head hh, slice of at most BS batch rows): heads and
// batch rows are independent, so no grid-wide synchronisation is needed.
// The block copies its head's R block (G Dh x Dh floats) into shared memory
// once, then loops over the steps itself; h_{t-1} (forward) or the step's
// drh (backward) stays in shared memory, double-buffered, so each step costs
// one __syncthreads (two in the backward). A thread owns the same elements
// (row b, unit j) at every step, so the carried state (slstm's c, n, m,
// lstm's c; the backward's carries) lives in shared memory slots only their
// owner touches.
//
// Sums: each element of R h_{t-1} (forward) and of drh R (backward) is
// summed by one thread over k in order, fp32, no atomics: deterministic.
// The pointwise maths is rnn_cells.cuh's, shared with the per-step kernels
// of lstm.cu and rnn_cell.cu, and so are the caches written; the
// backward writes drh of every step to global memory so the caller's dR
// stays one gemm per head.
//
// Shared memory, floats: forward G Dh Dh (R^T, so lanes of a warp read
// consecutive units) + BS Dh (2 + S), S the carried states (slstm 3, lstm
// 1); backward G Dh Dh (R as is) + BS (2 G Dh + Dh (1 + S')), S' slstm's
// carries of c and n (2). The kernel runs when one batch row fits beside R
// in the device's opt-in shared memory (227 KiB on sm_90, 163 KiB on
// sm_80): slstm up to Dh 119, lstm 120, gru 138, elman 240 (forward; 239
// backward) on sm_90; otherwise the callers keep their per-step gemm +
// pointwise path.
#include "cuda_common.h"
#include "ops_cuda.h"
#include "rnn_cells.cuh"
#include "rnn_persist.h"

// elements (rows x units) a block aims at, and its most threads
#define RP_ROWS_TARGET 128
#define RP_THREADS 256
// the lstm backward's one block
#define RP_LSTM_THREADS 1024

__host__ __device__ constexpr int rp_gates(int k) { return k == RP_ELMAN ? 1 : k == RP_GRU ? 3 : 4; }
// carried states kept in shared memory: forward, backward besides carry_h
__host__ __device__ constexpr int rp_fwd_states(int k)
{
    return k == RP_SLSTM ? 3 : k == RP_LSTM ? 1 : 0;
}
__host__ __device__ constexpr int rp_bwd_states(int k) { return k == RP_SLSTM ? 2 : 0; }

// grid (H, slices); h (B,T,d), gx (B,T,G d), R (H, G Dh, Dh); c, nst, gates
// as rnn_persist.h.
template <int K>
__global__ void __launch_bounds__(RP_THREADS)
    rp_fwd_kernel(float *h, float *c, float *nst, float *gates, const float *gx, const float *R,
                  int B, int T, int d, int Dh, int BS)
{
    constexpr int G = rp_gates(K);
    extern __shared__ float rp_smem[];
    const int GDh = G * Dh, hh = blockIdx.x, b0 = blockIdx.y * BS;
    const int nb = min(BS, B - b0), ne = nb * Dh;
    float *Rt = rp_smem;               // (Dh, G Dh): Rt[k][gj] = R_hh[gj][k]
    float *hs = Rt + (size_t)GDh * Dh; // (2, BS, Dh): h of even, odd steps
    float *st = hs + 2 * BS * Dh;      // states (BS, Dh) each: slstm c, n, m; lstm c
    const float *Rh = R + (size_t)hh * GDh * Dh;
    for (int i = threadIdx.x; i < GDh * Dh; i += blockDim.x) Rt[(i % Dh) * GDh + i / Dh] = Rh[i];
    __syncthreads();
    for (int t = 0; t < T; t++) {
        const float *hp = hs + ((t + 1) & 1) * BS * Dh; // h_{t-1}
        float *hn = hs + (t & 1) * BS * Dh;             // h_t
        for (int e = threadIdx.x; e < ne; e += blockDim.x) {
            const int bl = e / Dh, j = e % Dh, u = hh * Dh + j;
            const size_t r = (size_t)(b0 + bl) * T + t;
            float a[G]; // R h_{t-1} of unit j, gate by gate (0 at t = 0)
#pragma unroll
            for (int g = 0; g < G; g++) a[g] = 0.0f;
            if (t > 0) {
                const float *hb = hp + bl * Dh;
                for (int k = 0; k < Dh; k++) {
                    const float hk = hb[k];
                    const float *rk = Rt + k * GDh + j;
#pragma unroll
                    for (int g = 0; g < G; g++) a[g] += rk[g * Dh] * hk;
                }
            }
            float ht;
            if constexpr (K == RP_ELMAN) {
                ht = tanhf(gx[r * d + u] + a[0]);
            } else if constexpr (K == RP_GRU) {
                const float *x = gx + r * 3 * d;
                const float hpj = t > 0 ? hp[e] : 0.0f;
                const rnn_gru_out o = rnn_gru_cell(x[u], x[d + u], x[2 * d + u], a[0], a[1], a[2], hpj);
                ht = o.h;
                float *cache = gates + r * 4 * d;
                cache[u] = o.z;
                cache[d + u] = o.rs;
                cache[2 * d + u] = o.nn;
                cache[3 * d + u] = a[2];
            } else if constexpr (K == RP_SLSTM) {
                float *cs = st, *ns = st + BS * Dh, *ms = st + 2 * BS * Dh;
                const float *x = gx + r * 4 * d;
                const bool live = t > 0;
                const float pi = x[u] + a[0], pf = x[d + u] + a[1];
                const float pz = x[2 * d + u] + a[2], po = x[3 * d + u] + a[3];
                const float mp = live ? ms[e] : RNN_SLSTM_M_START;
                const float cp = live ? cs[e] : 0.0f, np = live ? ns[e] : 0.0f;
                const rnn_slstm_out s = rnn_slstm_cell(pi, pf, pz, po, mp, cp, np);
                cs[e] = s.c;
                ns[e] = s.n;
                ms[e] = s.m;
                c[r * d + u] = s.c;
                nst[r * d + u] = s.n;
                ht = s.h;
                float *cache = gates + r * 5 * d;
                cache[u] = s.ig;
                cache[d + u] = s.fg;
                cache[2 * d + u] = s.g;
                cache[3 * d + u] = s.o;
                cache[4 * d + u] = s.sf;
            } else { // lstm: H = 1, u = j
                const float *x = gx + r * 4 * d;
                const float ig = rnn_sigmoid(x[u] + a[0]), fg = rnn_sigmoid(x[d + u] + a[1]);
                const float gg = tanhf(x[2 * d + u] + a[2]), og = rnn_sigmoid(x[3 * d + u] + a[3]);
                float *cache = gates + r * 4 * d;
                cache[u] = ig;
                cache[d + u] = fg;
                cache[2 * d + u] = gg;
                cache[3 * d + u] = og;
                const float ct = (t > 0 ? fg * st[e] : 0.0f) + ig * gg;
                st[e] = ct;
                c[r * d + u] = ct;
                ht = og * tanhf(ct);
            }
            h[r * d + u] = ht;
            hn[e] = ht;
        }
        __syncthreads(); // h_t complete before step t + 1 reads it
    }
}

// grid (H, slices); dgx, drh (B,T,G d), dh, h (B,T,d); c, nst, gates as the
// forward wrote them.
template <int K>
__global__ void __launch_bounds__(RP_THREADS)
    rp_bwd_kernel(float *dgx, float *drh, const float *dh, const float *h, const float *c,
                  const float *nst, const float *gates, const float *R, int B, int T, int d,
                  int Dh, int BS)
{
    constexpr int G = rp_gates(K);
    extern __shared__ float rp_smem[];
    const int GDh = G * Dh, hh = blockIdx.x, b0 = blockIdx.y * BS;
    const int nb = min(BS, B - b0), ne = nb * Dh;
    float *Rs = rp_smem;                   // (G Dh, Dh): R_hh
    float *ds = Rs + (size_t)GDh * Dh;     // (2, BS, G Dh): drh of even, odd steps
    float *ch = ds + 2 * BS * GDh;         // (BS, Dh) gradient into h_t from step t + 1
    float *cc = ch + BS * Dh, *cn = cc + BS * Dh; // slstm: into c_t, n_t
    const float *Rh = R + (size_t)hh * GDh * Dh;
    for (int i = threadIdx.x; i < GDh * Dh; i += blockDim.x) Rs[i] = Rh[i];
    for (int e = threadIdx.x; e < ne; e += blockDim.x) {
        ch[e] = 0.0f;
        if constexpr (K == RP_SLSTM) cc[e] = cn[e] = 0.0f;
    }
    __syncthreads();
    for (int t = T - 1; t >= 0; t--) {
        float *dst = ds + (t & 1) * BS * GDh;
        const float live = t > 0 ? 1.0f : 0.0f;
        for (int e = threadIdx.x; e < ne; e += blockDim.x) {
            const int bl = e / Dh, j = e % Dh, u = hh * Dh + j;
            const size_t r = (size_t)(b0 + bl) * T + t;
            float dp[G];      // gradient of the step's R h_{t-1}, gate by gate
            float direct = 0; // gradient into h_{t-1} not through R (gru)
            if constexpr (K == RP_ELMAN) {
                const float hj = h[r * d + u];
                const float dpre = (dh[r * d + u] + ch[e]) * (1.0f - hj * hj);
                dgx[r * d + u] += dpre;
                dp[0] = dpre;
            } else if constexpr (K == RP_GRU) {
                const float *cache = gates + r * 4 * d;
                const float z = cache[u], rs = cache[d + u], nn = cache[2 * d + u];
                const float rn = cache[3 * d + u];
                const float hp = t > 0 ? h[(r - 1) * d + u] : 0.0f;
                const float dht = dh[r * d + u] + ch[e];
                const rnn_gru_grad q = rnn_gru_cell_back(dht, z, rs, nn, rn, hp);
                float *dg = dgx + r * 3 * d;
                dg[u] += q.dpz;
                dg[d + u] += q.dpr;
                dg[2 * d + u] += q.dpn;
                dp[0] = q.dpz;
                dp[1] = q.dpr;
                dp[2] = q.dpn * rs;
                direct = dht * z;
            } else { // slstm
                const float *cache = gates + r * 5 * d;
                const float ig = cache[u], fg = cache[d + u], g = cache[2 * d + u];
                const float o = cache[3 * d + u], sf = cache[4 * d + u];
                const float cj = c[r * d + u], nj = nst[r * d + u];
                const float cp = t > 0 ? c[(r - 1) * d + u] : 0.0f;
                const float np = t > 0 ? nst[(r - 1) * d + u] : 0.0f;
                const float dht = dh[r * d + u] + ch[e];
                const rnn_slstm_grad s = rnn_slstm_cell_back(dht, cc[e], cn[e], ig, fg, g, o, sf, cj, nj,
                                                             cp, np);
                float *dg = dgx + r * 4 * d;
                dg[u] += s.dpi;
                dg[d + u] += s.dpf;
                dg[2 * d + u] += s.dpz;
                dg[3 * d + u] += s.dpo;
                dp[0] = s.dpi;
                dp[1] = s.dpf;
                dp[2] = s.dpz;
                dp[3] = s.dpo;
                cc[e] = s.cc;
                cn[e] = s.cn;
            }
            float *dr = drh + r * G * d + (size_t)hh * GDh;
            float *dsr = dst + bl * GDh;
#pragma unroll
            for (int g = 0; g < G; g++) {
                dr[g * Dh + j] = dp[g] * live;
                dsr[g * Dh + j] = dp[g];
            }
            ch[e] = direct;
        }
        if (t == 0) break;
        __syncthreads(); // drh of step t complete
        // carry into h_{t-1}: ch (b, k) += sum over gj of drh_t (b, gj) R_hh (gj, k)
        for (int e = threadIdx.x; e < ne; e += blockDim.x) {
            const int bl = e / Dh, k = e % Dh;
            const float *dsr = dst + bl * GDh;
            float acc = 0.0f;
            for (int gj = 0; gj < GDh; gj++) acc += dsr[gj] * Rs[gj * Dh + k];
            ch[e] += acc;
        }
        // no barrier here: step t - 1 writes the other drh buffer, last read
        // by step t + 1's products, which step t's barrier ordered before it
    }
}

// lstm backward: one block for all B rows (H = 1), so dR accumulates in
// shared memory without a reduction across blocks: thread i owns dR
// elements i, i + blockDim, ... and adds sum over b of dpre_t (b, gj)
// h_{t-1} (b, k) to each, t from T - 1 down to 1, b in order. dgx, gates
// (B,T,4d); dh, h, c (B,T,d); dR, R (4d,d).
__global__ void __launch_bounds__(RP_LSTM_THREADS)
    rp_lstm_bwd_kernel(float *dgx, float *dR, const float *dh, const float *h, const float *c,
                       const float *gates, const float *R, int B, int T, int d)
{
    extern __shared__ float rp_smem[];
    const int G = 4 * d, ne = B * d, nr = G * d;
    float *Rs = rp_smem;           // (4d, d): R
    float *dRs = Rs + (size_t)nr;  // (4d, d): dR
    float *ds = dRs + (size_t)nr;  // (2, B, 4d): dpre of even, odd steps
    float *ch = ds + 2 * (size_t)B * G; // (B, d) gradient into h_t from step t + 1
    float *cc = ch + (size_t)ne;        // (B, d) into c_t
    for (int i = threadIdx.x; i < nr; i += blockDim.x) {
        Rs[i] = R[i];
        dRs[i] = dR[i];
    }
    for (int e = threadIdx.x; e < ne; e += blockDim.x) ch[e] = cc[e] = 0.0f;
    __syncthreads();
    for (int t = T - 1; t >= 0; t--) {
        float *dst = ds + (size_t)(t & 1) * B * G;
        for (int e = threadIdx.x; e < ne; e += blockDim.x) {
            const int b = e / d, j = e % d;
            const size_t g0 = ((size_t)b * T + t) * G, h0 = ((size_t)b * T + t) * d;
            const float *a = gates + g0;
            const rnn_lstm_grad l = rnn_lstm_cell_back(dh[h0 + j] + ch[e], cc[e], a[j], a[d + j], a[2 * d + j],
                                                       a[3 * d + j], c[h0 + j], t > 0 ? c[h0 - d + j] : 0.0f,
                                                       t > 0);
            float *dp = dst + (size_t)b * G;
            dp[j] = l.di;
            dp[d + j] = l.df;
            dp[2 * d + j] = l.dg;
            dp[3 * d + j] = l.dout;
            float *dg_t = dgx + g0;
            dg_t[j] += l.di;
            dg_t[d + j] += l.df;
            dg_t[2 * d + j] += l.dg;
            dg_t[3 * d + j] += l.dout;
            cc[e] = l.cc;
        }
        if (t == 0) break;
        __syncthreads(); // dpre of step t complete
        for (int e = threadIdx.x; e < ne; e += blockDim.x) { // dh_carry = dpre R
            const int b = e / d, k = e % d;
            const float *dp = dst + (size_t)b * G;
            float acc = 0.0f;
            for (int gj = 0; gj < G; gj++) acc += dp[gj] * Rs[gj * d + k];
            ch[e] = acc;
        }
        for (int i = threadIdx.x; i < nr; i += blockDim.x) { // dR += dpre^T h_{t-1}
            const int gj = i / d, k = i % d;
            const float *hp = h + (size_t)(t - 1) * d + k;
            float acc = 0.0f;
            for (int b = 0; b < B; b++) acc += dst[(size_t)b * G + gj] * hp[(size_t)b * T * d];
            dRs[i] += acc;
        }
        // no barrier here: as rp_bwd_kernel (double-buffered dpre; ch, cc,
        // dRs touched by their owners only)
    }
    for (int i = threadIdx.x; i < nr; i += blockDim.x) dR[i] = dRs[i];
}

// The batch slice for fixed floats plus per_row floats a row in shared
// memory; 0 when one row does not fit.
static int rp_slice(int B, int Dh, size_t fixed, size_t per_row, size_t *smem)
{
    const size_t limit = sb_cuda_smem_optin() / sizeof(float);
    if (fixed + per_row > limit) return 0;
    size_t bs = (size_t)(RP_ROWS_TARGET / Dh > 1 ? RP_ROWS_TARGET / Dh : 1);
    if (bs > (size_t)B) bs = (size_t)B;
    if (bs > (limit - fixed) / per_row) bs = (limit - fixed) / per_row;
    *smem = (fixed + bs * per_row) * sizeof(float);
    return (int)bs;
}

static unsigned rp_threads(int BS, int Dh)
{
    const int n = (BS * Dh + 31) / 32 * 32;
    return (unsigned)(n < RP_THREADS ? n : RP_THREADS);
}

template <int K>
static bool rp_forward(float *h, float *c, float *nst, float *gates, const float *gx,
                       const float *R, int B, int T, int d, int H)
{
    const int Dh = d / H, G = rp_gates(K);
    size_t smem = 0;
    const int BS = rp_slice(B, Dh, (size_t)G * Dh * Dh, (size_t)Dh * (2 + rp_fwd_states(K)), &smem);
    if (BS < 1) return false;
    sb_cuda_allow_smem((const void *)rp_fwd_kernel<K>, smem, "rnn_persist_forward");
    const dim3 grid((unsigned)H, sb_cdiv((size_t)B, (size_t)BS));
    rp_fwd_kernel<K><<<grid, rp_threads(BS, Dh), smem, sb_cuda_stream()>>>(h, c, nst, gates, gx, R,
                                                                          B, T, d, Dh, BS);
    CUDA_CHECK_LAST();
    return true;
}

template <int K>
static bool rp_backward(float *dgx, float *drh, const float *dh, const float *h, const float *c,
                        const float *nst, const float *gates, const float *R, int B, int T, int d,
                        int H)
{
    const int Dh = d / H, G = rp_gates(K);
    size_t smem = 0;
    const int BS = rp_slice(B, Dh, (size_t)G * Dh * Dh,
                            (size_t)2 * G * Dh + (size_t)Dh * (1 + rp_bwd_states(K)), &smem);
    if (BS < 1) return false;
    sb_cuda_allow_smem((const void *)rp_bwd_kernel<K>, smem, "rnn_persist_backward");
    const dim3 grid((unsigned)H, sb_cdiv((size_t)B, (size_t)BS));
    rp_bwd_kernel<K><<<grid, rp_threads(BS, Dh), smem, sb_cuda_stream()>>>(
        dgx, drh, dh, h, c, nst, gates, R, B, T, d, Dh, BS);
    CUDA_CHECK_LAST();
    return true;
}

bool rnn_persist_forward(rp_kind k, float *h, float *c, float *nst, float *gates,
                         const float *gx, const float *R, int B, int T, int d, int H)
{
    if (B < 1 || T < 1 || d < 1) return true;
    if (H < 1 || d % H != 0 || (k == RP_LSTM && H != 1))
        sb_cuda_fail(__FILE__, __LINE__, "rnn_persist_forward", "the heads H must divide d (lstm: H = 1)");
    switch (k) {
    case RP_ELMAN: return rp_forward<RP_ELMAN>(h, c, nst, gates, gx, R, B, T, d, H);
    case RP_GRU: return rp_forward<RP_GRU>(h, c, nst, gates, gx, R, B, T, d, H);
    case RP_SLSTM: return rp_forward<RP_SLSTM>(h, c, nst, gates, gx, R, B, T, d, H);
    case RP_LSTM: return rp_forward<RP_LSTM>(h, c, nst, gates, gx, R, B, T, d, H);
    }
    return false;
}

bool rnn_persist_lstm_backward(float *dgx, float *dR, const float *dh, const float *h,
                               const float *c, const float *gates, const float *R, int B, int T,
                               int d)
{
    if (B < 1 || T < 1 || d < 1) return true;
    const size_t floats = (size_t)8 * d * d + (size_t)10 * B * d;
    const size_t smem = floats * sizeof(float);
    if (smem > sb_cuda_smem_optin()) return false;
    sb_cuda_allow_smem((const void *)rp_lstm_bwd_kernel, smem, "rnn_persist_lstm_backward");
    const size_t n = (size_t)B * d > (size_t)4 * d * d ? (size_t)B * d : (size_t)4 * d * d;
    const unsigned threads = n < RP_LSTM_THREADS ? (unsigned)(n + 31) / 32 * 32 : RP_LSTM_THREADS;
    rp_lstm_bwd_kernel<<<1, threads, smem, sb_cuda_stream()>>>(dgx, dR, dh, h, c, gates, R, B, T,
                                                              d);
    CUDA_CHECK_LAST();
    return true;
}

bool rnn_persist_backward(rp_kind k, float *dgx, float *drh, const float *dh, const float *h,
                          const float *c, const float *nst, const float *gates, const float *R,
                          int B, int T, int d, int H)
{
    if (B < 1 || T < 1 || d < 1) return true;
    if (H < 1 || d % H != 0)
        sb_cuda_fail(__FILE__, __LINE__, "rnn_persist_backward", "the heads H must divide d");
    switch (k) {
    case RP_ELMAN: return rp_backward<RP_ELMAN>(dgx, drh, dh, h, c, nst, gates, R, B, T, d, H);
    case RP_GRU: return rp_backward<RP_GRU>(dgx, drh, dh, h, c, nst, gates, R, B, T, d, H);
    case RP_SLSTM: return rp_backward<RP_SLSTM>(dgx, drh, dh, h, c, nst, gates, R, B, T, d, H);
    case RP_LSTM: break; // rnn_persist_lstm_backward
    }
    return false;
}
