// selective_scan.cu: CUDA Mamba-1 selective scan, forward and backward, with
// the state on chip: the (B,T,Di,N) state is never written to global memory.
//
// Semantics and cache are those of kernels/cpu/selective_scan.c (see ops.h):
//   dt = softplus(dt_pre), A = -exp(A_log), a = exp(dt A) (2 exp(dt A) - 1
//   when eigen_signed), h_t = a h_{t-1} + dt u B_t,
//   y = (sum_n C_t[n] h_t[n] + D u) silu(z),
// and the cache holds, as the CPU's: A^T (N,Di), dt (B,T,Di), s(dt_pre)
// (B,T,Di), then per batch row b nck + 1 states (N,Di), nck = ceil(T / CKPT):
// slot j = h after min(j CKPT, T) steps.
//
// Thread layout. A block of SS_THREADS threads covers CPB channels of one
// batch row: SL adjacent lanes (a power of two <= 32) per channel, each lane
// holding RN states n = lane + SL r (r < RN) in registers. Over time each
// thread runs its states' recurrence; the sums over a channel's states (y,
// and in the backward the gradients of u and dt) are shuffles over its SL
// lanes. Grid (ceil(Di / CPB), B).
//
// Backward, per chunk of CKPT tokens from the last: the chunk's states are
// recomputed from its checkpoint into registers (CKPT + 1 per state, fully
// unrolled), then reversed token by token with dh = dL/dh in registers. The
// gradients of B_t and C_t are sums over channels: each block sums its
// channels (shuffles, then the warps through shared memory, in a fixed
// order) into one partial per (b, t, channel block) in the scratch, and a
// second kernel adds the partials in order. dA_log and dD are summed over t
// per thread, kept per batch row in the scratch and added over b in order.
// No atomics: results do not vary between runs.
//
// Scratch (cuda_selective_scan_scratch_len; the partials make it another
// size than the CPU's): (B,T,nCB,2,N) partials of dB and dC, nCB =
// ceil(Di / CPB); (B,Di,N) partials of dA; (B,Di) partials of dD.
#include "cuda_common.h"
#include "ops_cuda.h"
#include "../cuda_limits.h"

#include <type_traits>

static_assert(std::is_same<real, float>::value, "the CUDA backend is float only");

#define SS_THREADS 256
#define SS_WARPS (SS_THREADS / 32)
#define SS_MAX_RN 8 // states per lane: N <= 32 SS_MAX_RN
static_assert(32 * SS_MAX_RN == CUDA_SELECTIVE_MAX_N, "the harness checks runs against kernels/cuda_limits.h");
#define SS_FULL_MASK 0xffffffffu

__device__ __forceinline__ float ss_softplus(float x) { return fmaxf(x, 0.0f) + log1pf(expf(-fabsf(x))); }
__device__ __forceinline__ float ss_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

// Sums x over the SL lanes of one channel; every one of them gets the sum.
__device__ __forceinline__ float ss_lane_sum(float x, int sl)
{
    for (int o = 1; o < sl; o <<= 1) x += __shfl_xor_sync(SS_FULL_MASK, x, o);
    return x;
}

static __host__ __device__ int ss_num_chunks(int T) { return (T + SELECTIVE_SCAN_CKPT - 1) / SELECTIVE_SCAN_CKPT; }

// ---- plan -----------------------------------------------------------------------

struct ss_plan {
    int log_sl; // lanes per channel: 1 << log_sl
    int rn;     // states per lane, a power of two
    int cpb;    // channels per block
    int ncb;    // channel blocks
};

// Lanes and states per lane: half the states' power of two as lanes (two
// states per lane, for the sums' sake), at most 32 lanes.
static ss_plan ss_plan_of(const char *op, int Di, int N)
{
    if (N < 1 || N > 32 * SS_MAX_RN || Di < 1) {
        char msg[160];
        snprintf(msg, sizeof msg, "state size N = %d, Di = %d: the CUDA selective scan supports 1 <= N <= %d",
                 N, Di, 32 * SS_MAX_RN);
        sb_cuda_fail(__FILE__, __LINE__, op, msg);
    }
    int np = 1;
    while (np < N) np *= 2;
    ss_plan p;
    int sl = np / 2 < 1 ? 1 : np / 2;
    if (sl > 32) sl = 32;
    p.log_sl = 0;
    while ((1 << p.log_sl) < sl) p.log_sl++;
    p.rn = np / sl;
    p.cpb = SS_THREADS / sl;
    p.ncb = (int)sb_cdiv((size_t)Di, (size_t)p.cpb);
    return p;
}

static __host__ __device__ size_t ss_slots_offset(int B, int T, int Di, int N)
{
    return (size_t)Di * N + 2 * (size_t)B * T * Di;
}

size_t cuda_selective_scan_cache_len(int B, int T, int Di, int N)
{
    return ss_slots_offset(B, T, Di, N) + (size_t)B * (size_t)(ss_num_chunks(T) + 1) * Di * N;
}

size_t cuda_selective_scan_scratch_len(int B, int T, int Di, int N)
{
    if (N < 1 || Di < 1 || N > 32 * SS_MAX_RN) return 0;
    const ss_plan p = ss_plan_of("selective_scan_scratch_len", Di, N);
    return (size_t)B * T * p.ncb * 2 * N + (size_t)B * Di * N + (size_t)B * Di;
}

// ---- forward ----------------------------------------------------------------------

// grid (ncb, B); block SS_THREADS.
template <int RN>
__global__ void __launch_bounds__(SS_THREADS)
    ss_fwd_kernel(float *y, float *cache, const float *u, const float *dt_pre, const float *A_log,
                  const float *Bm, const float *Cm, const float *D, const float *z, float kmap,
                  float off, int B, int T, int Di, int N, int log_sl)
{
    const int sl = 1 << log_sl, cpb = SS_THREADS >> log_sl;
    const int lane = threadIdx.x & (sl - 1);
    const int c = blockIdx.x * cpb + (threadIdx.x >> log_sl), b = blockIdx.y;
    const bool cok = c < Di;
    const size_t DN = (size_t)Di * N, BTD = (size_t)B * T * Di;
    float *AT = cache, *dt = cache + DN, *sdt = dt + BTD;
    float *slots = cache + ss_slots_offset(B, T, Di, N) + (size_t)b * (ss_num_chunks(T) + 1) * DN;

    float A[RN], h[RN];
    int ns[RN]; // this lane's states; -1 past N or on a channel past Di
#pragma unroll
    for (int r = 0; r < RN; r++) {
        const int n = lane + sl * r;
        ns[r] = cok && n < N ? n : -1;
        A[r] = ns[r] >= 0 ? -expf(A_log[(size_t)c * N + n]) : 0.0f;
        h[r] = 0;
        if (ns[r] >= 0) {
            if (b == 0) AT[(size_t)n * Di + c] = A[r];
            slots[(size_t)n * Di + c] = 0; // slot 0
        }
    }
    const float Dc = cok ? D[c] : 0.0f;
    for (int t = 0; t < T; t++) {
        const size_t row = (size_t)b * T + t;
        const float xp = cok ? dt_pre[row * Di + c] : 0.0f;
        const float dtv = ss_softplus(xp), uv = cok ? u[row * Di + c] : 0.0f;
        float acc = 0;
#pragma unroll
        for (int r = 0; r < RN; r++) {
            if (ns[r] < 0) continue;
            const float a = kmap * expf(dtv * A[r]) - off;
            h[r] = a * h[r] + dtv * uv * Bm[row * N + ns[r]];
            acc += Cm[row * N + ns[r]] * h[r];
        }
        acc = ss_lane_sum(acc, sl);
        if (cok && lane == 0) {
            const float zv = z[row * Di + c];
            y[row * Di + c] = (acc + Dc * uv) * (zv * ss_sigmoid(zv));
            dt[row * Di + c] = dtv;
            sdt[row * Di + c] = ss_sigmoid(xp);
        }
        if ((t + 1) % SELECTIVE_SCAN_CKPT == 0 || t == T - 1) {
            float *slot = slots + (size_t)(t / SELECTIVE_SCAN_CKPT + 1) * DN;
#pragma unroll
            for (int r = 0; r < RN; r++)
                if (ns[r] >= 0) slot[(size_t)ns[r] * Di + c] = h[r];
        }
    }
}

// ---- backward ----------------------------------------------------------------------

// grid (ncb, B); block SS_THREADS. part_bc (B,T,ncb,2,N), part_a (B,Di,N), part_d (B,Di).
template <int RN>
__global__ void __launch_bounds__(SS_THREADS, 1)
    ss_bwd_kernel(float *du, float *ddt_pre, float *dz, float *part_bc, float *part_a,
                  float *part_d, const float *dy, const float *cache, const float *u,
                  const float *Bm, const float *Cm, const float *D, const float *z, float kmap,
                  float off, int B, int T, int Di, int N, int log_sl, int ncb)
{
    // per (warp, e = dB/dC, r, lane): this block's channel sums of one token, two buffers
    __shared__ float red[2][SS_WARPS * 2 * RN * 32];
    const int sl = 1 << log_sl, cpb = SS_THREADS >> log_sl;
    const int tid = threadIdx.x, lane = tid & (sl - 1), warp = tid >> 5;
    const int c = blockIdx.x * cpb + (tid >> log_sl), b = blockIdx.y;
    const bool cok = c < Di;
    const size_t DN = (size_t)Di * N, BTD = (size_t)B * T * Di;
    const float *AT = cache, *dt = cache + DN, *sdt = dt + BTD;
    const float *slots = cache + ss_slots_offset(B, T, Di, N) + (size_t)b * (ss_num_chunks(T) + 1) * DN;
    const int width = 2 * RN * sl; // values of one warp's slice of red

    float A[RN], dh[RN], dA_acc[RN];
    int ns[RN];
#pragma unroll
    for (int r = 0; r < RN; r++) {
        const int n = lane + sl * r;
        ns[r] = cok && n < N ? n : -1;
        A[r] = ns[r] >= 0 ? AT[(size_t)n * Di + c] : 0.0f;
        dh[r] = 0;
        dA_acc[r] = 0;
    }
    const float Dc = cok ? D[c] : 0.0f;
    float dD_acc = 0;
    int buf = 0;

    for (int j = ss_num_chunks(T) - 1; j >= 0; j--) {
        const int t0 = j * SELECTIVE_SCAN_CKPT;
        const int n = T - t0 < SELECTIVE_SCAN_CKPT ? T - t0 : SELECTIVE_SCAN_CKPT;
        // hs[i] = h after t0 + i steps, i = 0 .. n
        float hs[SELECTIVE_SCAN_CKPT + 1][RN];
#pragma unroll
        for (int r = 0; r < RN; r++)
            hs[0][r] = ns[r] >= 0 ? slots[(size_t)j * DN + (size_t)ns[r] * Di + c] : 0.0f;
#pragma unroll
        for (int i = 0; i < SELECTIVE_SCAN_CKPT; i++) {
            if (i < n) {
                const size_t row = (size_t)b * T + t0 + i;
                const float dtv = cok ? dt[row * Di + c] : 0.0f, uv = cok ? u[row * Di + c] : 0.0f;
#pragma unroll
                for (int r = 0; r < RN; r++) {
                    const float a = kmap * expf(dtv * A[r]) - off;
                    const float Bn = ns[r] >= 0 ? Bm[row * N + ns[r]] : 0.0f;
                    hs[i + 1][r] = a * hs[i][r] + dtv * uv * Bn;
                }
            }
        }
#pragma unroll
        for (int i = SELECTIVE_SCAN_CKPT - 1; i >= 0; i--) {
            if (i < n) {
                const size_t row = (size_t)b * T + t0 + i;
                const size_t rc = row * Di + c;
                const float dtv = cok ? dt[rc] : 0.0f, uv = cok ? u[rc] : 0.0f;
                const float zv = cok ? z[rc] : 0.0f, dyv = cok ? dy[rc] : 0.0f;
                float Bn[RN], Cn[RN];
                float ypre = 0;
#pragma unroll
                for (int r = 0; r < RN; r++) {
                    Bn[r] = ns[r] >= 0 ? Bm[row * N + ns[r]] : 0.0f;
                    Cn[r] = ns[r] >= 0 ? Cm[row * N + ns[r]] : 0.0f;
                    ypre += Cn[r] * hs[i + 1][r];
                }
                ypre = Dc * uv + ss_lane_sum(ypre, sl);
                const float s = ss_sigmoid(zv);
                const float dyp = dyv * zv * s; // dL / d ypre
                dD_acc += dyp * uv;
                float gB = 0, gA = 0, dBc[RN], dCc[RN];
#pragma unroll
                for (int r = 0; r < RN; r++) {
                    const float gn = dh[r] + dyp * Cn[r];
                    const float e = expf(dtv * A[r]);
                    const float dl = gn * hs[i][r] * kmap * e; // dL / d(dt A[c,n])
                    dCc[r] = dyp * hs[i + 1][r];
                    dBc[r] = gn * dtv * uv;
                    gB += gn * Bn[r];
                    gA += dl * A[r];
                    dA_acc[r] += dl * dtv;
                    dh[r] = gn * (kmap * e - off);
                }
                gB = ss_lane_sum(gB, sl);
                gA = ss_lane_sum(gA, sl);
                if (cok && lane == 0) {
                    dz[rc] += dyv * ypre * s * (1.0f + zv * (1.0f - s));
                    du[rc] += dyp * Dc + dtv * gB;
                    ddt_pre[rc] += (uv * gB + gA) * sdt[rc];
                }
                // dB_t[n], dC_t[n]: sums over this block's channels.
#pragma unroll
                for (int r = 0; r < RN; r++)
                    for (int o = sl; o < 32; o <<= 1) {
                        dBc[r] += __shfl_xor_sync(SS_FULL_MASK, dBc[r], o);
                        dCc[r] += __shfl_xor_sync(SS_FULL_MASK, dCc[r], o);
                    }
                float *rb = red[buf];
                if ((tid & 31) < sl) {
#pragma unroll
                    for (int r = 0; r < RN; r++) {
                        rb[warp * width + r * sl + lane] = dBc[r];
                        rb[warp * width + (RN + r) * sl + lane] = dCc[r];
                    }
                }
                __syncthreads();
                // the warps' slices in order; channels of a warp past Di added zeros
                float *out = part_bc + (row * ncb + blockIdx.x) * 2 * N;
                for (int idx = tid; idx < width; idx += SS_THREADS) {
                    const int e = idx / (RN * sl), r = idx / sl % RN, l = idx % sl;
                    const int nn = l + sl * r;
                    if (nn >= N) continue;
                    float sum = 0;
                    for (int w = 0; w < SS_WARPS; w++) sum += rb[w * width + idx];
                    out[e * N + nn] = sum;
                }
                buf ^= 1; // the next token writes the other buffer; the one after waits
                          // behind the next token's barrier
            }
        }
    }
#pragma unroll
    for (int r = 0; r < RN; r++)
        if (ns[r] >= 0) part_a[((size_t)b * Di + c) * N + ns[r]] = dA_acc[r];
    if (cok && lane == 0) part_d[(size_t)b * Di + c] = dD_acc;
}

// dBm, dCm (B,T,N) += the partials' sums over the channel blocks, in order
__global__ void ss_bc_reduce_kernel(float *dBm, float *dCm, const float *part_bc, int N, int ncb,
                                    size_t rows)
{
    const size_t n = rows * N;
    for (size_t i = SB_GRID_START; i < n; i += SB_GRID_STRIDE) {
        const size_t row = i / N, k = i % N;
        const float *p = part_bc + row * ncb * 2 * N;
        float sb = 0, sc = 0;
        for (int cb = 0; cb < ncb; cb++) {
            sb += p[(size_t)cb * 2 * N + k];
            sc += p[(size_t)cb * 2 * N + N + k];
        }
        dBm[i] += sb;
        dCm[i] += sc;
    }
}

// dA_log[c,n] += (sum_b dA partial) A[c,n] (dA/dA_log = A); dD[c] += sum_b dD partial
__global__ void ss_param_reduce_kernel(float *dA_log, float *dD, const float *part_a,
                                       const float *part_d, const float *AT, int B, int Di, int N)
{
    const size_t DN = (size_t)Di * N;
    for (size_t i = SB_GRID_START; i < DN + Di; i += SB_GRID_STRIDE) {
        if (i < DN) {
            const size_t c = i / N, k = i % N;
            float s = 0;
            for (int b = 0; b < B; b++) s += part_a[(size_t)b * DN + i];
            dA_log[i] += s * AT[k * Di + c];
        } else {
            const size_t c = i - DN;
            float s = 0;
            for (int b = 0; b < B; b++) s += part_d[(size_t)b * Di + c];
            dD[c] += s;
        }
    }
}

// ---- host side ------------------------------------------------------------------------

void cuda_selective_scan_forward(real *y, real *cache, const real *u, const real *dt_pre,
                                 const real *A_log, const real *Bm, const real *Cm,
                                 const real *D, const real *z, int eigen_signed, int B, int T,
                                 int Di, int N)
{
    const ss_plan p = ss_plan_of("selective_scan_forward", Di, N);
    if (B < 1 || T < 1) return;
    const dim3 grid((unsigned)p.ncb, (unsigned)B);
    const float kmap = eigen_signed ? 2.0f : 1.0f, off = eigen_signed ? 1.0f : 0.0f;
    cudaStream_t st = sb_cuda_stream();
#define SS_FWD(RN)                                                                              \
    ss_fwd_kernel<RN><<<grid, SS_THREADS, 0, st>>>(y, cache, u, dt_pre, A_log, Bm, Cm, D, z, kmap, \
                                                   off, B, T, Di, N, p.log_sl)
    switch (p.rn) {
    case 1: SS_FWD(1); break;
    case 2: SS_FWD(2); break;
    case 4: SS_FWD(4); break;
    default: SS_FWD(8); break;
    }
#undef SS_FWD
    CUDA_CHECK_LAST();
}

void cuda_selective_scan_backward(real *du, real *ddt_pre, real *dA_log, real *dBm, real *dCm,
                                  real *dD, real *dz, real *scratch, const real *dy,
                                  const real *cache, const real *u, const real *dt_pre,
                                  const real *Bm, const real *Cm, const real *D, const real *z,
                                  int eigen_signed, int B, int T, int Di, int N)
{
    (void)dt_pre; // softplus and its slope come from the cache
    const ss_plan p = ss_plan_of("selective_scan_backward", Di, N);
    if (B < 1 || T < 1) return;
    const size_t rows = (size_t)B * T;
    float *part_bc = scratch, *part_a = part_bc + rows * p.ncb * 2 * N;
    float *part_d = part_a + (size_t)B * Di * N;
    const dim3 grid((unsigned)p.ncb, (unsigned)B);
    const float kmap = eigen_signed ? 2.0f : 1.0f, off = eigen_signed ? 1.0f : 0.0f;
    cudaStream_t st = sb_cuda_stream();
#define SS_BWD(RN)                                                                               \
    ss_bwd_kernel<RN><<<grid, SS_THREADS, 0, st>>>(du, ddt_pre, dz, part_bc, part_a, part_d, dy,  \
                                                   cache, u, Bm, Cm, D, z, kmap, off, B, T, Di, N, \
                                                   p.log_sl, p.ncb)
    switch (p.rn) {
    case 1: SS_BWD(1); break;
    case 2: SS_BWD(2); break;
    case 4: SS_BWD(4); break;
    default: SS_BWD(8); break;
    }
#undef SS_BWD
    CUDA_CHECK_LAST();
    ss_bc_reduce_kernel<<<sb_grid(rows * N, SB_BLOCK), SB_BLOCK, 0, st>>>(dBm, dCm, part_bc, N, p.ncb,
                                                                         rows);
    CUDA_CHECK_LAST();
    const size_t np = (size_t)Di * N + Di;
    ss_param_reduce_kernel<<<sb_grid(np, SB_BLOCK), SB_BLOCK, 0, st>>>(dA_log, dD, part_a, part_d,
                                                                      cache, B, Di, N);
    CUDA_CHECK_LAST();
}
