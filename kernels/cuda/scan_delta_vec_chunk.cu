// scan_delta_vec_chunk.cu: CUDA non-delta scan with a decay per key
// dimension (gla), chunked form, forward and backward. Semantics and cache
// as the recurrent form (scan_delta_vec.cu, kernels/cpu/scan_delta_vec.c):
// per (b,h), S_t = diag(alpha_t) S_{t-1} + k_t v_t^T, o_t = scale S_t^T q_t,
// `states` slot c holds the state entering chunk c of C = SCAN_DELTA_CKPT
// tokens and slot nck the final state; so either backward may follow either
// forward. alpha has any sign and may be exactly 0: nothing here divides.
//
// Algebra. In a chunk with entering state S0 and tokens j = 0 .. n-1 (n <= C)
// let, per key dimension k (the rows of S never mix, so every product below
// is elementwise in k),
//   P_j = prod_{r <= j} alpha_r,   D_{t,s} = prod_{r = s+1 .. t} alpha_r (D_{t,t} = 1).
// Unrolling the recurrence, row k of S_t is
//   S_t = diag(P_t) S0 + sum_{s <= t} diag(D_{t,s}) k_s v_s^T, so
//   o_t = scale ( (q_t o P_t)^T S0 + sum_{s <= t} A_{t,s} v_s ),
//   A_{t,s} = sum_k q_t[k] k_s[k] D_{t,s}[k]      (the intra-chunk scores),
//   S_n = diag(P_{n-1}) S0 + sum_s (k_s o D_{n-1,s}) v_s^T.
// D is never a ratio of cumulative products: for each t the scores walk
// s = t, t-1, .. 0 multiplying D by alpha_s after using it (C^2 / 2 K
// multiplies per chunk), exact when some alpha is 0.
//
// Backward. With g_t = scale dout_t and dS the gradient of S_n (from the
// later chunks; 0 after the last), the V-long contractions
//   G_t[k] = <S0[k,:], g_t>,  W_s[k] = <dS[k,:], v_s>,  E[k] = <dS[k,:], S0[k,:]>,
//   dA_{t,s} = <g_t, v_s>
// reduce everything else to scalars per key dimension k. Write R_j = row k
// of S_j (R_{-1} = row k of S0) and X_r(t) = <R_{r-1}, g_t>, Y_r = <R_{r-1},
// dS[k,:]>. The recurrence gives X_0(t) = G_t, X_{r+1}(t) = alpha_r X_r(t) +
// k_r dA_{t,r} and Y_0 = E, Y_{r+1} = alpha_r Y_r + k_r W_r; the gradient of
// R_r is sum_{t >= r} D_{t,r} q_t g_t + D_{n-1,r} dS[k,:]. Hence
//   dq_t     = X_{t+1}(t)                                   (= <R_t, g_t>),
//   dk_s     = sum_{t >= s} D_{t,s} q_t dA_{t,s} + D_{n-1,s} W_s,
//   dalpha_r = sum_{t >= r} D_{t,r} q_t X_r(t) + D_{n-1,r} Y_r
//            (= <dR_r, R_{r-1}>: every product that contains alpha_r),
//   dv_s     = sum_{t >= s} A_{t,s} g_t + dS^T (k_s o D_{n-1,s}),
//   dS0      = diag(P_{n-1}) dS + sum_t (q_t o P_t) g_t^T   (carried to chunk c-1).
// The D_{t,r} again come from running products along r = t .. 0, so the
// per-k work is C^2 per chunk and divides by nothing. The entering states
// S0 are the forward's cache: the backward needs no scratch.
//
// Layout. Forward: grid (B*H, ceil(V / VC_VT)); a block holds a K x VC_VT
// column tile of one (b,h)'s state in shared memory (the columns of S evolve
// independently) and recomputes the chunk's scores. Backward: one block per
// (b,h), since dq, dk and dalpha sum over all of V; dS (K x V) and the
// chunk's tiles live in dynamic shared memory (vc_bwd_smem_floats, up to
// 122.5 KiB at K = V = 128, allowed through cudaFuncSetAttribute). Scores
// A_{t,s}: thread (t, kg) of the 16 x 16 block sums the keys k = kg mod 16,
// then a butterfly over the 16 lanes finishes the sum. Every sum runs in a
// fixed order and no float atomics are used: results do not vary between
// runs.
#include "cuda_common.h"
#include "ops_cuda.h"
#include "../cuda_limits.h"
#include "scan_delta_vec_chunk.h"

#include <type_traits>

static_assert(std::is_same<real, float>::value, "the CUDA backend is float only");

#define VC_C SCAN_DELTA_CKPT // tokens per chunk
#define VC_KG 16             // lanes sharing one token's scores
#define VC_THREADS (VC_C * VC_KG)
#define VC_MAX_KV 128
static_assert(VC_MAX_KV == CUDA_SCAN_VEC_MAX_KV, "the harness checks runs against kernels/cuda_limits.h");
#define VC_VT 32 // forward: state columns per block
#define VC_FULL_MASK 0xffffffffu

static_assert(VC_THREADS == 256 && VC_KG <= 32 && 32 % VC_KG == 0,
              "vc_scores: a token's lanes must lie in one warp");

static __host__ __device__ int vc_num_chunks(int T) { return (T + VC_C - 1) / VC_C; }

// A[t][s] (s <= t < n; row stride VC_C) = sum_k q[t][k] k[s][k] D_{t,s}[k]
// for the chunk's rows q, k, a (row stride K, rows < n). When qt is not
// NULL it receives q[t][k] P_t[k] (qt may be q: each element is read and
// written by one thread only). Every thread of the block calls it.
__device__ void vc_scores(float *A, float *qt, const float *q, const float *k, const float *a,
                          int n, int K)
{
    const int t = threadIdx.x / VC_KG, kg = threadIdx.x % VC_KG;
    float acc[VC_C];
#pragma unroll
    for (int s = 0; s < VC_C; s++) acc[s] = 0;
    if (t < n) {
        for (int i = kg; i < K; i += VC_KG) {
            const float qi = q[t * K + i];
            float D = 1; // D_{t,s}
#pragma unroll
            for (int s = VC_C - 1; s >= 0; s--) {
                if (s <= t) {
                    acc[s] += qi * k[s * K + i] * D;
                    D *= a[s * K + i];
                }
            }
            if (qt) qt[t * K + i] = qi * D; // D = P_t now
        }
    }
#pragma unroll
    for (int s = 0; s < VC_C; s++)
        for (int o = VC_KG / 2; o > 0; o >>= 1) acc[s] += __shfl_xor_sync(VC_FULL_MASK, acc[s], o);
    if (kg == 0 && t < n) {
#pragma unroll
        for (int s = 0; s < VC_C; s++)
            if (s <= t) A[t * VC_C + s] = acc[s];
    }
}

// rows t < n of the chunk starting at t0: dst (n, W) = scale * src (B,T,H,W)
__device__ void vc_load_rows(float *dst, const float *src, int b, int h, int t0, int n, int T,
                             int H, int W, float scale)
{
    for (int e = threadIdx.x; e < n * W; e += VC_THREADS) {
        const int t = e / W, i = e % W;
        dst[e] = scale * src[(((size_t)b * T + t0 + t) * H + h) * W + i];
    }
}

// ---- forward ------------------------------------------------------------------------

// grid (B*H, ceil(V / VC_VT)); block VC_THREADS.
__global__ void __launch_bounds__(VC_THREADS)
    scan_vec_chunk_fwd_kernel(float *o, float *states, const float *q, const float *k,
                              const float *v, const float *alpha, int T, int H, int K, int V,
                              float scale)
{
    // o,v (B,T,H,V), q,k,alpha (B,T,H,K), states (B,H,nck+1,K,V)
    __shared__ float S[VC_MAX_KV * VC_VT];                       // (K, VC_VT): columns j0 ..
    __shared__ float qs[VC_C * VC_MAX_KV], ks[VC_C * VC_MAX_KV]; // (n, K)
    __shared__ float as[VC_C * VC_MAX_KV];                       // (n, K)
    __shared__ float vs[VC_C * VC_VT];                           // (n, VC_VT)
    __shared__ float A[VC_C * VC_C];
    __shared__ float pend[VC_MAX_KV]; // P_{n-1}
    const int tid = threadIdx.x;
    const int bh = blockIdx.x, b = bh / H, h = bh % H;
    const int j0 = blockIdx.y * VC_VT, vt = V - j0 < VC_VT ? V - j0 : VC_VT;
    const int nck = vc_num_chunks(T);
    const size_t KV = (size_t)K * V;
    float *slots = states + (size_t)bh * (nck + 1) * KV;

    for (int e = tid; e < K * vt; e += VC_THREADS) {
        const int i = e / vt, j = e % vt;
        S[i * VC_VT + j] = 0;
        slots[(size_t)i * V + j0 + j] = 0; // slot 0: S_0 = 0
    }
    for (int c = 0; c < nck; c++) {
        const int t0 = c * VC_C, n = T - t0 < VC_C ? T - t0 : VC_C;
        vc_load_rows(qs, q, b, h, t0, n, T, H, K, 1.0f);
        vc_load_rows(ks, k, b, h, t0, n, T, H, K, 1.0f);
        vc_load_rows(as, alpha, b, h, t0, n, T, H, K, 1.0f);
        for (int e = tid; e < n * vt; e += VC_THREADS) {
            const int t = e / vt, j = e % vt;
            vs[t * VC_VT + j] = v[(((size_t)b * T + t0 + t) * H + h) * V + j0 + j];
        }
        __syncthreads();
        vc_scores(A, qs, qs, ks, as, n, K); // qs becomes q o P
        __syncthreads();
        // o_t = scale ((q_t o P_t)^T S0 + sum_{s <= t} A_{t,s} v_s)
        for (int e = tid; e < n * vt; e += VC_THREADS) {
            const int t = e / vt, j = e % vt;
            float acc = 0;
            for (int i = 0; i < K; i++) acc += qs[t * K + i] * S[i * VC_VT + j];
            for (int s = 0; s <= t; s++) acc += A[t * VC_C + s] * vs[s * VC_VT + j];
            o[(((size_t)b * T + t0 + t) * H + h) * V + j0 + j] = scale * acc;
        }
        // ks becomes k_s o D_{n-1,s}, pend P_{n-1} (one thread per key: no reader of
        // ks or as in this phase but itself)
        for (int i = tid; i < K; i += VC_THREADS) {
            float D = 1;
            for (int s = n - 1; s >= 0; s--) {
                ks[s * K + i] *= D;
                D *= as[s * K + i];
            }
            pend[i] = D;
        }
        __syncthreads();
        // S_n = diag(P_{n-1}) S0 + sum_s (k_s o D_{n-1,s}) v_s^T
        float *slot = slots + (size_t)(c + 1) * KV;
        for (int e = tid; e < K * vt; e += VC_THREADS) {
            const int i = e / vt, j = e % vt;
            float acc = pend[i] * S[i * VC_VT + j];
            for (int s = 0; s < n; s++) acc += ks[s * K + i] * vs[s * VC_VT + j];
            S[i * VC_VT + j] = acc;
            slot[(size_t)i * V + j0 + j] = acc;
        }
        __syncthreads(); // the next chunk's loads overwrite ks, vs
    }
}

// ---- backward -----------------------------------------------------------------------

// Dynamic shared memory of the backward, in floats: dS (K,V); q, k, alpha,
// G, W (C,K) each; v, g (C,V); A, dA (C,C); E (K).
static size_t vc_bwd_smem_floats(int K, int V)
{
    return (size_t)K * V + (size_t)5 * VC_C * K + (size_t)2 * VC_C * V + 2 * VC_C * VC_C + K;
}

// grid (B*H); block VC_THREADS; dynamic shared memory vc_bwd_smem_floats(K, V).
__global__ void __launch_bounds__(VC_THREADS)
    scan_vec_chunk_bwd_kernel(float *dq, float *dk, float *dv, float *dalpha, const float *dout,
                              const float *states, const float *q, const float *k,
                              const float *v, const float *alpha, int T, int H, int K, int V,
                              float scale)
{
    // dq,dk,dalpha,q,k,alpha (B,T,H,K), dv,dout,v (B,T,H,V), states (B,H,nck+1,K,V)
    extern __shared__ float smem[];
    float *dS = smem;                          // (K,V): gradient of the state leaving the chunk
    float *qs = dS + (size_t)K * V;            // (n,K): q, then q o P
    float *ks = qs + VC_C * K;                 // (n,K): k, then k o D_{n-1,.}
    float *as = ks + VC_C * K;                 // (n,K)
    float *G = as + VC_C * K;                  // (n,K): G_t = S0 g_t
    float *W = G + VC_C * K;                   // (n,K): W_s = dS v_s
    float *vs = W + VC_C * K;                  // (n,V)
    float *gs = vs + VC_C * V;                 // (n,V): scale dout
    float *A = gs + VC_C * V;                  // (C,C)
    float *dA = A + VC_C * VC_C;               // (C,C)
    float *E = dA + VC_C * VC_C;               // (K): <dS, S0> per row, then P_{n-1}
    const int tid = threadIdx.x;
    const int bh = blockIdx.x, b = bh / H, h = bh % H;
    const int nck = vc_num_chunks(T);
    const size_t KV = (size_t)K * V;

    for (int e = tid; e < K * V; e += VC_THREADS) dS[e] = 0;
    for (int c = nck - 1; c >= 0; c--) {
        const int t0 = c * VC_C, n = T - t0 < VC_C ? T - t0 : VC_C;
        const float *S0 = states + ((size_t)bh * (nck + 1) + c) * KV;
        vc_load_rows(qs, q, b, h, t0, n, T, H, K, 1.0f);
        vc_load_rows(ks, k, b, h, t0, n, T, H, K, 1.0f);
        vc_load_rows(as, alpha, b, h, t0, n, T, H, K, 1.0f);
        vc_load_rows(vs, v, b, h, t0, n, T, H, V, 1.0f);
        vc_load_rows(gs, dout, b, h, t0, n, T, H, V, scale);
        __syncthreads();

        // The scores and the V-long contractions.
        vc_scores(A, NULL, qs, ks, as, n, K);
        for (int e = tid; e < n * K; e += VC_THREADS) {
            const int t = e / K, i = e % K;
            float gsum = 0, wsum = 0;
            for (int j = 0; j < V; j++) {
                gsum += S0[(size_t)i * V + j] * gs[t * V + j];
                wsum += dS[i * V + j] * vs[t * V + j];
            }
            G[e] = gsum;
            W[e] = wsum;
        }
        for (int i = tid; i < K; i += VC_THREADS) {
            float esum = 0;
            for (int j = 0; j < V; j++) esum += dS[i * V + j] * S0[(size_t)i * V + j];
            E[i] = esum;
        }
        for (int e = tid; e < n * n; e += VC_THREADS) {
            const int t = e / n, s = e % n;
            if (s > t) continue;
            float sum = 0;
            for (int j = 0; j < V; j++) sum += gs[t * V + j] * vs[s * V + j];
            dA[t * VC_C + s] = sum;
        }
        __syncthreads();

        // Per key dimension i: dq, dk, dalpha of the chunk's tokens; then qs, ks, E
        // become q o P, k o D_{n-1,.} and P_{n-1} (column i is this thread's only).
        for (int i = tid; i < K; i += VC_THREADS) {
            float a[VC_C], qi[VC_C], ki[VC_C], gq[VC_C], gk[VC_C], ga[VC_C];
#pragma unroll
            for (int r = 0; r < VC_C; r++) {
                a[r] = r < n ? as[r * K + i] : 0.0f;
                qi[r] = r < n ? qs[r * K + i] : 0.0f;
                ki[r] = r < n ? ks[r * K + i] : 0.0f;
                gq[r] = gk[r] = ga[r] = 0;
            }
            // through o_t, t = 0 .. n-1
#pragma unroll
            for (int t = 0; t < VC_C; t++) {
                if (t >= n) continue;
                float X = G[t * K + i], Xr[VC_C]; // Xr[r] = X_r(t)
#pragma unroll
                for (int r = 0; r < VC_C; r++) {
                    if (r <= t) {
                        Xr[r] = X;
                        X = a[r] * X + ki[r] * dA[t * VC_C + r];
                    }
                }
                gq[t] = X;
                float D = 1; // D_{t,r}
#pragma unroll
                for (int r = VC_C - 1; r >= 0; r--) {
                    if (r <= t) {
                        ga[r] += D * qi[t] * Xr[r];
                        gk[r] += D * qi[t] * dA[t * VC_C + r];
                        D *= a[r];
                    }
                }
            }
            // through S_n
            float Y = E[i], Yr[VC_C]; // Yr[r] = Y_r
#pragma unroll
            for (int r = 0; r < VC_C; r++) {
                if (r < n) {
                    Yr[r] = Y;
                    Y = a[r] * Y + ki[r] * W[r * K + i];
                }
            }
            float D = 1; // D_{n-1,r}
#pragma unroll
            for (int r = VC_C - 1; r >= 0; r--) {
                if (r < n) {
                    ga[r] += D * Yr[r];
                    gk[r] += D * W[r * K + i];
                    ks[r * K + i] = D * ki[r];
                    D *= a[r];
                }
            }
            E[i] = D;
            float P = 1;
#pragma unroll
            for (int t = 0; t < VC_C; t++) {
                if (t < n) {
                    P *= a[t];
                    qs[t * K + i] = P * qi[t];
                    const size_t row = ((size_t)b * T + t0 + t) * H + h;
                    dq[row * K + i] += gq[t];
                    dk[row * K + i] += gk[t];
                    dalpha[row * K + i] += ga[t];
                }
            }
        }
        __syncthreads();

        // dv_s = sum_{t >= s} A_{t,s} g_t + dS^T (k_s o D_{n-1,s})
        for (int e = tid; e < n * V; e += VC_THREADS) {
            const int s = e / V, j = e % V;
            float acc = 0;
            for (int t = s; t < n; t++) acc += A[t * VC_C + s] * gs[t * V + j];
            for (int i = 0; i < K; i++) acc += ks[s * K + i] * dS[i * V + j];
            dv[(((size_t)b * T + t0 + s) * H + h) * V + j] += acc;
        }
        __syncthreads();
        // dS0 = diag(P_{n-1}) dS + sum_t (q_t o P_t) g_t^T
        for (int e = tid; e < K * V; e += VC_THREADS) {
            const int i = e / V, j = e % V;
            float acc = E[i] * dS[e];
            for (int t = 0; t < n; t++) acc += qs[t * K + i] * gs[t * V + j];
            dS[e] = acc;
        }
        __syncthreads(); // the next chunk's loads overwrite the tiles
    }
}

// ---- host side ------------------------------------------------------------------------

// The AUTO rule. UNMEASURED: no GPU was at hand when this was written, so
// the threshold (chunked from 64 tokens on) is a guess, to be set from
// `statebench bench --kernels` on a GPU.
size_t cuda_scan_delta_vec_chunked_smem(int K, int V)
{
    return vc_bwd_smem_floats(K, V) * sizeof(float);
}

int cuda_scan_delta_vec_use_chunked(int T, int K, int V)
{
    return T >= 64 && K >= 1 && V >= 1 && K <= VC_MAX_KV && V <= VC_MAX_KV &&
           cuda_scan_delta_vec_chunked_smem(K, V) <= sb_cuda_smem_optin();
}

int cuda_scan_delta_vec_chunked_chosen(int T, int K, int V)
{
    switch (ops_get_scan_form()) {
    case OPS_SCAN_RECURRENT: return 0;
    case OPS_SCAN_CHUNKED: return 1;
    default: return cuda_scan_delta_vec_use_chunked(T, K, V);
    }
}

void cuda_scan_delta_vec_chunked_forward(real *o, real *states, const real *q, const real *k,
                                         const real *v, const real *alpha, int B, int T, int H,
                                         int K, int V, real scale)
{
    sb_cuda_check_heads("scan_delta_vec_forward (chunked)", K, V, VC_MAX_KV);
    if (B < 1 || H < 1 || T < 1) return;
    const dim3 grid((unsigned)(B * H), sb_cdiv((size_t)V, VC_VT));
    scan_vec_chunk_fwd_kernel<<<grid, VC_THREADS, 0, sb_cuda_stream()>>>(o, states, q, k, v, alpha,
                                                                         T, H, K, V, scale);
    CUDA_CHECK_LAST();
}

void cuda_scan_delta_vec_chunked_backward(real *dq, real *dk, real *dv, real *dalpha,
                                          const real *dout, const real *states, const real *q,
                                          const real *k, const real *v, const real *alpha, int B,
                                          int T, int H, int K, int V, real scale)
{
    sb_cuda_check_heads("scan_delta_vec_backward (chunked)", K, V, VC_MAX_KV);
    if (B < 1 || H < 1 || T < 1) return;
    const size_t smem = vc_bwd_smem_floats(K, V) * sizeof(float);
    sb_cuda_allow_smem((const void *)scan_vec_chunk_bwd_kernel, smem, "scan_delta_vec_backward (chunked)");
    scan_vec_chunk_bwd_kernel<<<(unsigned)(B * H), VC_THREADS, smem, sb_cuda_stream()>>>(
        dq, dk, dv, dalpha, dout, states, q, k, v, alpha, T, H, K, V, scale);
    CUDA_CHECK_LAST();
}
