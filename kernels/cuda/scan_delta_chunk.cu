// scan_delta_chunk.cu: CUDA gated delta rule scan in chunked (WY / UT transform) form,
// forward and backward.
//
// Semantics and cache layout are those of scan_delta (ops.h) and of the
// recurrent kernels (scan_delta.cu): `states` slot c holds the state entering
// chunk c of C = SCAN_DELTA_CKPT tokens, slot nck the final state, so either
// backward may follow either forward. The algebra is the CPU's chunked form
// (kernels/cpu/scan_delta_chunk.c, whose header derives it): within a chunk
// of n <= C tokens with entering state S0, D[t][s] = alpha_{s+1} .. alpha_t
// over positions 0..n (D[t][t] = 1), g_t = D[t][0],
//   A[j][s] = beta_j D[j+1][s+1] (k_j . k_s) (s < j),  T = (I + A)^-1,
//   W = T diag(beta) (V - diag(g_{.+1}) K S0)       (W = V when beta == NULL)
//   o_j = scale (g_{j+1} S0^T q_j + sum_{s<=j} D[j+1][s+1] (q_j . k_s) w_s)
//   S_n = g_n S0 + sum_s D[n][s+1] k_s w_s^T,
// and the backward differentiates these formulas, collecting the gradient of
// every decay product in dD and then dalpha_r = sum_{s < r <= t} dD[t][s]
// D[r-1][s] D[t][r]. Decays are only multiplied, never divided: alpha = 0 is
// exact. T is built by forward substitution, T[j][c] = [j == c] - sum_{c <=
// r < j} A[j][r] T[r][c], one column per thread (columns are independent).
//
// Thread layout. One block of SDC_THREADS threads walks the chunks of one
// (b,h) in order (forward) or in reverse (backward); within a chunk the work
// is a handful of phases separated by __syncthreads (at most 5 per chunk
// forward, 9 backward, against 2-3 per token in the recurrent kernels). In each phase
// the threads share out the elements of the phase's small matrix products
// (n x V, K x V, n x K or n x n) with a stride of SDC_THREADS, consecutive
// threads on consecutive columns. The chunk's q, k, v, dout rows and every
// n x V, n x K and n x n intermediate live in dynamic shared memory; the
// K x V states do not fit there at K = V = 128, so the forward reads S0 from
// its slot and writes S_n into the next slot (global memory, visible to the
// block after the chunk's last barrier), and the backward keeps dS (the
// gradient of the state leaving the chunk) in the scratch. The forward
// splits V into tiles of SDC_FWD_VT columns over blocks (the columns of the
// state evolve independently; every block builds the same A and T from k,
// beta, alpha); the backward sums over all columns (dq, dk, dbeta, dalpha),
// so one block holds all of V.
//
// Scratch (backward): per (b,h), two K x V buffers, dS of the chunk being
// reversed and the dS0 it produces for the chunk before; they alternate with
// the parity of the chunk. cuda_scan_delta_scratch_len returns the larger of
// this and the recurrent backward's need.
//
// Summation order: every element is computed by one thread, which adds its
// terms in index order (ascending i over K, l over V, s or t over the
// chunk); <S0, dS> is summed per row of S0 by thread i, then over the rows
// by thread 0 in order. There are no atomics, so results are bit-identical
// from run to run; they differ from the recurrent form's and from the CPU's
// by rounding only.
#include "cuda_common.h"
#include "ops_cuda.h"
#include "../cuda_limits.h"
#include "scan_delta_chunk.h"

#include <type_traits>

static_assert(std::is_same<real, float>::value, "the CUDA backend is float only");

#define SDC_THREADS 256
#define SDC_CH SCAN_DELTA_CKPT   // tokens per chunk
#define SDC_NP (SDC_CH + 1)      // positions per chunk
#define SDC_MAX_KV 128
static_assert(SDC_MAX_KV == CUDA_SCAN_DELTA_MAX_KV, "the harness checks runs against kernels/cuda_limits.h");
#define SDC_FWD_VT 64            // columns of V per forward block
static_assert(SDC_NP <= SDC_THREADS, "one thread per column of D");

static __host__ __device__ int sdc_num_chunks(int T) { return (T + SDC_CH - 1) / SDC_CH; }

// Carves consecutive float buffers out of base (NULL: counts only).
struct sdc_cursor {
    float *base;
    size_t used;
    __host__ __device__ float *take(size_t n)
    {
        float *p = base ? base + used : NULL;
        used += n;
        return p;
    }
};

// ---- forward ----------------------------------------------------------------

// The forward's shared memory for K and vt columns of V.
struct sdc_fwd_smem {
    float *q, *k; // (C,K) the chunk's rows
    float *u;     // (C,vt) v, then diag(beta) (v - diag(g) K S0) (delta form)
    float *w;     // (C,vt) W = T u                                 (delta form)
    float *D;     // (NP,NP) decay products, 0 above the diagonal
    float *P;     // (C,C) scale D[j+1][s+1] q_j . k_s, 0 above the diagonal
    float *A;     // (C,C) beta_j D[j+1][s+1] k_j . k_s, strictly lower
    float *Tm;    // (C,C) (I + A)^-1, 0 above the diagonal
    float *beta;  // (C)
};

static __host__ __device__ size_t sdc_fwd_layout(sdc_fwd_smem *s, float *base, int K, int vt)
{
    sdc_cursor c = {base, 0};
    const size_t ck = (size_t)SDC_CH * K, cv = (size_t)SDC_CH * vt, cc = SDC_CH * SDC_CH;
    s->q = c.take(ck);
    s->k = c.take(ck);
    s->u = c.take(cv);
    s->w = c.take(cv);
    s->D = c.take(SDC_NP * SDC_NP);
    s->P = c.take(cc);
    s->A = c.take(cc);
    s->Tm = c.take(cc);
    s->beta = c.take(SDC_CH);
    return c.used;
}

// Column sc of D (positions t = 0..n), from the alphas of the chunk's tokens;
// the products are taken in the CPU's order, so D is the CPU's bit for bit.
static __device__ void sdc_decay_column(float *D, int sc, int n, const float *alpha, size_t row0,
                                        int H)
{
    for (int t = 0; t <= n; t++) {
        float d = t == sc ? 1.0f : 0.0f;
        if (t > sc) d = D[(t - 1) * SDC_NP + sc] * (alpha ? alpha[row0 + (size_t)(t - 1) * H] : 1.0f);
        D[t * SDC_NP + sc] = d;
    }
}

// T = (I + A)^-1 by forward substitution, column c (this thread's).
static __device__ void sdc_ut_column(float *Tm, const float *A, int c, int n)
{
    for (int j = 0; j < n; j++) {
        float x = j == c ? 1.0f : 0.0f;
        for (int r = c; r < j; r++) x -= A[j * SDC_CH + r] * Tm[r * SDC_CH + c];
        Tm[j * SDC_CH + c] = x;
    }
}

// grid (B*H, ceil(V / vt)); block SDC_THREADS; dynamic shared memory sdc_fwd_layout(K, vt).
__global__ void __launch_bounds__(SDC_THREADS)
    scan_delta_chunk_fwd_kernel(float *o, float *states, const float *q, const float *k,
                                const float *v, const float *beta, const float *alpha, int T,
                                int H, int K, int V, float scale, int vt)
{
    // o (B,T,H,V), states (B,H,nck+1,K,V), q,k (B,T,H,K), v (B,T,H,V), beta,alpha (B,T,H)
    extern __shared__ float sdc_smem[];
    sdc_fwd_smem s;
    sdc_fwd_layout(&s, sdc_smem, K, vt);
    const int tid = threadIdx.x;
    const int bh = blockIdx.x, b = bh / H, h = bh % H;
    const int v0 = blockIdx.y * vt, nv = V - v0 < vt ? V - v0 : vt; // this block's columns
    const int nck = sdc_num_chunks(T);
    const size_t KV = (size_t)K * V;
    const bool delta = beta != NULL;
    float *slots = states + (size_t)bh * (nck + 1) * KV + v0; // column v0 of slot 0

    for (int e = tid; e < K * nv; e += SDC_THREADS) slots[(size_t)(e / nv) * V + e % nv] = 0;
    __syncthreads();
    for (int c = 0; c < nck; c++) {
        const int n = T - c * SDC_CH < SDC_CH ? T - c * SDC_CH : SDC_CH;
        const size_t row0 = ((size_t)b * T + (size_t)c * SDC_CH) * H + h; // row j: row0 + j H
        const float *S0 = slots + (size_t)c * KV;                         // row stride V
        float *S1 = slots + (size_t)(c + 1) * KV;

        // 1: the chunk's rows, decays, betas
        for (int e = tid; e < n * K; e += SDC_THREADS) {
            const size_t at = (row0 + (size_t)(e / K) * H) * K + e % K;
            s.q[e] = q[at];
            s.k[e] = k[at];
        }
        for (int e = tid; e < n * nv; e += SDC_THREADS)
            s.u[e] = v[(row0 + (size_t)(e / nv) * H) * V + v0 + e % nv];
        if (tid <= n) sdc_decay_column(s.D, tid, n, alpha, row0, H);
        if (tid < n) s.beta[tid] = delta ? beta[row0 + (size_t)tid * H] : 1.0f;
        __syncthreads();

        // 2: P and A from the q.k and k.k products; u = diag(beta) (v - diag(g) K S0)
        for (int e = tid; e < n * n; e += SDC_THREADS) {
            const int j = e / n, sc = e % n;
            const float *qj = s.q + j * K, *kj = s.k + j * K, *ks = s.k + sc * K;
            const float d = s.D[(j + 1) * SDC_NP + sc + 1];
            float p = 0, a = 0;
            if (sc <= j) {
                float x = 0;
                for (int i = 0; i < K; i++) x += qj[i] * ks[i];
                p = scale * d * x;
            }
            if (delta && sc < j) {
                float x = 0;
                for (int i = 0; i < K; i++) x += kj[i] * ks[i];
                a = s.beta[j] * d * x;
            }
            s.P[j * SDC_CH + sc] = p;
            s.A[j * SDC_CH + sc] = a;
        }
        if (delta)
            for (int e = tid; e < n * nv; e += SDC_THREADS) {
                const int j = e / nv, l = e % nv;
                const float *kj = s.k + j * K;
                float x = 0;
                for (int i = 0; i < K; i++) x += kj[i] * S0[(size_t)i * V + l];
                s.u[e] = s.beta[j] * (s.u[e] - s.D[(j + 1) * SDC_NP] * x);
            }
        __syncthreads();

        // 3, 4: T = (I + A)^-1, then W = T u
        if (delta) {
            if (tid < n) sdc_ut_column(s.Tm, s.A, tid, n);
            __syncthreads();
            for (int e = tid; e < n * nv; e += SDC_THREADS) {
                const int j = e / nv, l = e % nv;
                float x = 0;
                for (int r = 0; r <= j; r++) x += s.Tm[j * SDC_CH + r] * s.u[r * nv + l];
                s.w[e] = x;
            }
            __syncthreads();
        }
        const float *w = delta ? s.w : s.u;

        // 5: o and the state leaving the chunk
        for (int e = tid; e < n * nv; e += SDC_THREADS) {
            const int j = e / nv, l = e % nv;
            const float *qj = s.q + j * K, *pj = s.P + j * SDC_CH;
            float x = 0;
            for (int i = 0; i < K; i++) x += qj[i] * S0[(size_t)i * V + l];
            x *= scale * s.D[(j + 1) * SDC_NP];
            for (int sc = 0; sc <= j; sc++) x += pj[sc] * w[sc * nv + l];
            o[(row0 + (size_t)j * H) * V + v0 + l] = x;
        }
        const float gn = s.D[n * SDC_NP], *dn = s.D + n * SDC_NP + 1;
        for (int e = tid; e < K * nv; e += SDC_THREADS) {
            const int i = e / nv, l = e % nv;
            float x = gn * S0[(size_t)i * V + l];
            for (int sc = 0; sc < n; sc++) x += dn[sc] * s.k[sc * K + i] * w[sc * nv + l];
            S1[(size_t)i * V + l] = x;
        }
        __syncthreads();
    }
}

// ---- backward ---------------------------------------------------------------

// The backward's shared memory for K and V.
struct sdc_bwd_smem {
    float *q, *k;   // (C,K) the chunk's rows
    float *dq, *dk; // (C,K) the chunk's gradients, added to dq, dk at its end
    float *tk;      // (C,K) S0 dout_t, then dS^T w_s, then -S0 dm_t
    float *m;       // (C,V) v, then v - diag(g) K S0 (delta form)
    float *w;       // (C,V) W = T diag(beta) m          (delta form)
    float *dout;    // (C,V)
    float *dw;      // (C,V) dL/dW
    float *dy;      // (C,V) T^T dW                      (delta form)
    float *D, *dD;  // (NP,NP) decay products and their gradients
    float *P;       // (C,C) as in the forward
    float *A, *Tm;  // (C,C) as in the forward           (delta form)
    // n x n with row stride n (P, A, Tm above: stride C):
    float *qk, *kk; // q_t . k_s (s <= t), k_t . k_s (s < t)
    float *dpq;     // the gradient of q_t . k_s, 0 above the diagonal
    float *E;       // dA[t][s] beta_t D[t+1][s+1] (s < t): the gradient of k_t . k_s
    float *dad;     // dA[t][s] D[t+1][s+1] k_t . k_s (s < t): dbeta's terms
    float *beta;    // (C)
    float *mdy;     // (C) m_t . dy_t
    float *rs;      // (K) row i of <S0, dS>
};

static __host__ __device__ size_t sdc_bwd_layout(sdc_bwd_smem *s, float *base, int K, int V)
{
    sdc_cursor c = {base, 0};
    const size_t ck = (size_t)SDC_CH * K, cv = (size_t)SDC_CH * V, cc = SDC_CH * SDC_CH;
    s->q = c.take(ck);
    s->k = c.take(ck);
    s->dq = c.take(ck);
    s->dk = c.take(ck);
    s->tk = c.take(ck);
    s->m = c.take(cv);
    s->w = c.take(cv);
    s->dout = c.take(cv);
    s->dw = c.take(cv);
    s->dy = c.take(cv);
    s->D = c.take(SDC_NP * SDC_NP);
    s->dD = c.take(SDC_NP * SDC_NP);
    s->P = c.take(cc);
    s->A = c.take(cc);
    s->Tm = c.take(cc);
    s->qk = c.take(cc);
    s->kk = c.take(cc);
    s->dpq = c.take(cc);
    s->E = c.take(cc);
    s->dad = c.take(cc);
    s->beta = c.take(SDC_CH);
    s->mdy = c.take(SDC_CH);
    s->rs = c.take((size_t)K);
    return c.used;
}

// grid (B*H); block SDC_THREADS; dynamic shared memory sdc_bwd_layout(K, V).
__global__ void __launch_bounds__(SDC_THREADS)
    scan_delta_chunk_bwd_kernel(float *dq, float *dk, float *dv, float *dbeta, float *dalpha,
                                float *scratch, const float *dout, const float *states,
                                const float *q, const float *k, const float *v,
                                const float *beta, const float *alpha, int T, int H, int K,
                                int V, float scale)
{
    // dq,dk,q,k (B,T,H,K), dv,dout,v (B,T,H,V), dbeta,dalpha,beta,alpha (B,T,H),
    // states (B,H,nck+1,K,V), scratch (B,H,2,K,V)
    extern __shared__ float sdc_smem[];
    sdc_bwd_smem s;
    sdc_bwd_layout(&s, sdc_smem, K, V);
    const int tid = threadIdx.x;
    const int bh = blockIdx.x, b = bh / H, h = bh % H;
    const int nck = sdc_num_chunks(T);
    const size_t KV = (size_t)K * V;
    const bool delta = beta != NULL;
    const float *slots = states + (size_t)bh * (nck + 1) * KV;
    float *grads = scratch + (size_t)bh * 2 * KV; // dS of chunk c in buffer c & 1

    for (int e = tid; e < (int)KV; e += SDC_THREADS) grads[((nck - 1) & 1) * KV + e] = 0;
    __syncthreads();
    for (int c = nck - 1; c >= 0; c--) {
        const int n = T - c * SDC_CH < SDC_CH ? T - c * SDC_CH : SDC_CH;
        const size_t row0 = ((size_t)b * T + (size_t)c * SDC_CH) * H + h; // row j: row0 + j H
        const float *S0 = slots + (size_t)c * KV;
        const float *dS = grads + (size_t)(c & 1) * KV;   // dL/dS_n
        float *dS0 = grads + (size_t)((c + 1) & 1) * KV;  // dL/dS0
        const float *D = s.D, *dn = s.D + n * SDC_NP + 1; // dn[s] = D[n][s+1], from phase 1 on

        // 1: the chunk's rows, decays, betas; zero the chunk's gradients
        for (int e = tid; e < n * K; e += SDC_THREADS) {
            const size_t at = (row0 + (size_t)(e / K) * H) * K + e % K;
            s.q[e] = q[at];
            s.k[e] = k[at];
            s.dq[e] = 0;
            s.dk[e] = 0;
        }
        for (int e = tid; e < n * V; e += SDC_THREADS) {
            const size_t at = (row0 + (size_t)(e / V) * H) * V + e % V;
            s.m[e] = v[at];
            s.dout[e] = dout[at];
        }
        for (int e = tid; e < SDC_NP * SDC_NP; e += SDC_THREADS) s.dD[e] = 0;
        if (tid <= n) sdc_decay_column(s.D, tid, n, alpha, row0, H);
        if (tid < n) s.beta[tid] = delta ? beta[row0 + (size_t)tid * H] : 1.0f;
        __syncthreads();

        // 2: the q.k and k.k products, P and A; m = v - diag(g) K S0;
        // tk = dout S0^T; rows of <S0, dS>
        for (int e = tid; e < n * n; e += SDC_THREADS) {
            const int t = e / n, sc = e % n;
            const float *qt = s.q + t * K, *kt = s.k + t * K, *ks = s.k + sc * K;
            const float d = D[(t + 1) * SDC_NP + sc + 1];
            float xq = 0, xk = 0;
            if (sc <= t)
                for (int i = 0; i < K; i++) xq += qt[i] * ks[i];
            if (delta && sc < t)
                for (int i = 0; i < K; i++) xk += kt[i] * ks[i];
            s.qk[e] = xq;
            s.kk[e] = xk;
            s.P[t * SDC_CH + sc] = scale * d * xq;
            s.A[t * SDC_CH + sc] = s.beta[t] * d * xk;
        }
        if (delta)
            for (int e = tid; e < n * V; e += SDC_THREADS) {
                const int j = e / V, l = e % V;
                const float *kj = s.k + j * K;
                float x = 0;
                for (int i = 0; i < K; i++) x += kj[i] * S0[(size_t)i * V + l];
                s.m[e] -= D[(j + 1) * SDC_NP] * x;
            }
        for (int e = tid; e < n * K; e += SDC_THREADS) {
            const int t = e / K, i = e % K;
            const float *dot = s.dout + t * V, *si = S0 + (size_t)i * V;
            float x = 0;
            for (int l = 0; l < V; l++) x += dot[l] * si[l];
            s.tk[e] = x;
        }
        for (int i = tid; i < K; i += SDC_THREADS) {
            const float *si = S0 + (size_t)i * V, *dsi = dS + (size_t)i * V;
            float x = 0;
            for (int l = 0; l < V; l++) x += si[l] * dsi[l];
            s.rs[i] = x;
        }
        __syncthreads();

        // 3: T = (I + A)^-1; the S0^T q term of o: dq_t += scale g_{t+1} S0 dout_t,
        // dD[t+1][0] += scale q_t . S0 dout_t
        if (delta && tid < n) sdc_ut_column(s.Tm, s.A, tid, n);
        for (int e = tid; e < n * K; e += SDC_THREADS)
            s.dq[e] += scale * D[(e / K + 1) * SDC_NP] * s.tk[e];
        if (tid < n) {
            const float *qt = s.q + tid * K, *tkt = s.tk + tid * K;
            float x = 0;
            for (int i = 0; i < K; i++) x += qt[i] * tkt[i];
            s.dD[(tid + 1) * SDC_NP] += scale * x;
        }
        __syncthreads();

        // 4: W = T diag(beta) m; S_n = g_n S0 + ...: dD[n][0] += <S0, dS>
        if (delta)
            for (int e = tid; e < n * V; e += SDC_THREADS) {
                const int j = e / V, l = e % V;
                float x = 0;
                for (int r = 0; r <= j; r++) x += s.Tm[j * SDC_CH + r] * (s.beta[r] * s.m[r * V + l]);
                s.w[e] = x;
            }
        if (tid == 0) {
            float x = 0;
            for (int i = 0; i < K; i++) x += s.rs[i];
            s.dD[n * SDC_NP] += x;
        }
        __syncthreads();
        const float *w = delta ? s.w : s.m;

        // 5: dW = diag(D[n][.+1]) K dS + P^T dout; dP = dout W^T gives the
        // gradient of q_t . k_s and dD; tk = W dS^T
        for (int e = tid; e < n * V; e += SDC_THREADS) {
            const int j = e / V, l = e % V;
            const float *kj = s.k + j * K;
            float x = 0;
            for (int i = 0; i < K; i++) x += kj[i] * dS[(size_t)i * V + l];
            x *= dn[j];
            for (int t = j; t < n; t++) x += s.P[t * SDC_CH + j] * s.dout[t * V + l];
            s.dw[e] = x;
        }
        for (int e = tid; e < n * n; e += SDC_THREADS) {
            const int t = e / n, sc = e % n;
            float g = 0;
            if (sc <= t) {
                const float *dot = s.dout + t * V, *ws = w + sc * V;
                float x = 0;
                for (int l = 0; l < V; l++) x += dot[l] * ws[l];
                s.dD[(t + 1) * SDC_NP + sc + 1] += x * scale * s.qk[e];
                g = x * scale * D[(t + 1) * SDC_NP + sc + 1];
            }
            s.dpq[e] = g;
        }
        for (int e = tid; e < n * K; e += SDC_THREADS) {
            const int sc = e / K, i = e % K;
            const float *ws = w + sc * V, *dsi = dS + (size_t)i * V;
            float x = 0;
            for (int l = 0; l < V; l++) x += ws[l] * dsi[l];
            s.tk[e] = x;
        }
        __syncthreads();

        // 6: dq_t += sum_s dP'[t][s] k_s; dk_s += sum_t dP'[t][s] q_t + D[n][s+1] dS w_s;
        // dD[n][s+1] += k_s . dS w_s; dY = T^T dW (delta) or dv += dW
        for (int e = tid; e < n * K; e += SDC_THREADS) {
            const int r = e / K, i = e % K; // token r: a query row for dq, a key row for dk
            float x = 0;
            for (int sc = 0; sc <= r; sc++) x += s.dpq[r * n + sc] * s.k[sc * K + i];
            s.dq[e] += x;
            float y = 0;
            for (int t = r; t < n; t++) y += s.dpq[t * n + r] * s.q[t * K + i];
            s.dk[e] += y + dn[r] * s.tk[e];
        }
        if (tid < n) {
            const float *ks = s.k + tid * K, *tks = s.tk + tid * K;
            float x = 0;
            for (int i = 0; i < K; i++) x += ks[i] * tks[i];
            s.dD[n * SDC_NP + tid + 1] += x;
        }
        if (delta)
            for (int e = tid; e < n * V; e += SDC_THREADS) {
                const int r = e / V, l = e % V;
                float x = 0;
                for (int j = r; j < n; j++) x += s.Tm[j * SDC_CH + r] * s.dw[j * V + l];
                s.dy[e] = x;
            }
        else
            for (int e = tid; e < n * V; e += SDC_THREADS)
                dv[(row0 + (size_t)(e / V) * H) * V + e % V] += s.dw[e];
        __syncthreads();

        if (delta) {
            // 7: dA = -dY W^T: dD, E (the gradient of k_t . k_s) and dbeta's
            // terms; tk = -S0 dm_t with dm_t = beta_t dy_t; m_t . dy_t
            for (int e = tid; e < n * n; e += SDC_THREADS) {
                const int t = e / n, sc = e % n;
                float eg = 0, bg = 0;
                if (sc < t) {
                    const float *dyt = s.dy + t * V, *ws = w + sc * V;
                    float x = 0;
                    for (int l = 0; l < V; l++) x += dyt[l] * ws[l];
                    const float da = -x, d = D[(t + 1) * SDC_NP + sc + 1];
                    s.dD[(t + 1) * SDC_NP + sc + 1] += da * s.beta[t] * s.kk[e];
                    eg = da * s.beta[t] * d;
                    bg = da * d * s.kk[e];
                }
                s.E[e] = eg;
                s.dad[e] = bg;
            }
            for (int e = tid; e < n * K; e += SDC_THREADS) {
                const int t = e / K, i = e % K;
                const float *dyt = s.dy + t * V, *si = S0 + (size_t)i * V;
                float x = 0;
                for (int l = 0; l < V; l++) x += dyt[l] * si[l];
                s.tk[e] = -(s.beta[t] * x);
            }
            if (tid < n) {
                const float *mt = s.m + tid * V, *dyt = s.dy + tid * V;
                float x = 0;
                for (int l = 0; l < V; l++) x += mt[l] * dyt[l];
                s.mdy[tid] = x;
            }
            __syncthreads();

            // 8: dk_t += sum_s E_sym[t][s] k_s + g_{t+1} tk_t, dD[t+1][0] += k_t . tk_t;
            // dbeta; dv += dm
            for (int e = tid; e < n * K; e += SDC_THREADS) {
                const int t = e / K, i = e % K;
                float x = 0;
                for (int sc = 0; sc < t; sc++) x += s.E[t * n + sc] * s.k[sc * K + i];
                for (int sc = t + 1; sc < n; sc++) x += s.E[sc * n + t] * s.k[sc * K + i];
                s.dk[e] += x + D[(t + 1) * SDC_NP] * s.tk[e];
            }
            if (tid < n) {
                const float *kt = s.k + tid * K, *tkt = s.tk + tid * K;
                float x = 0;
                for (int i = 0; i < K; i++) x += kt[i] * tkt[i];
                s.dD[(tid + 1) * SDC_NP] += x;
                float db = s.mdy[tid];
                for (int sc = 0; sc < tid; sc++) db += s.dad[tid * n + sc];
                dbeta[row0 + (size_t)tid * H] += db;
            }
            for (int e = tid; e < n * V; e += SDC_THREADS)
                dv[(row0 + (size_t)(e / V) * H) * V + e % V] += s.beta[e / V] * s.dy[e];
        }

        // dS0 = g_n dS + sum_t scale g_{t+1} q_t dout_t^T - sum_t g_{t+1} k_t dm_t^T
        for (int e = tid; e < (int)KV; e += SDC_THREADS) {
            const int i = e / V, l = e % V;
            float x = D[n * SDC_NP] * dS[e];
            for (int t = 0; t < n; t++)
                x += scale * D[(t + 1) * SDC_NP] * s.q[t * K + i] * s.dout[t * V + l];
            if (delta)
                for (int t = 0; t < n; t++)
                    x -= D[(t + 1) * SDC_NP] * s.k[t * K + i] * (s.beta[t] * s.dy[t * V + l]);
            dS0[e] = x;
        }
        __syncthreads();

        // 9: dalpha_r = sum_{s < r <= t} dD[t][s] D[r-1][s] D[t][r]; the chunk's dq, dk
        if (dalpha && tid >= 1 && tid <= n) {
            const int r = tid;
            float x = 0;
            for (int t = r; t <= n; t++) {
                float inner = 0;
                for (int sc = 0; sc < r; sc++)
                    inner += s.dD[t * SDC_NP + sc] * D[(r - 1) * SDC_NP + sc];
                x += inner * D[t * SDC_NP + r];
            }
            dalpha[row0 + (size_t)(r - 1) * H] += x;
        }
        for (int e = tid; e < n * K; e += SDC_THREADS) {
            const size_t at = (row0 + (size_t)(e / K) * H) * K + e % K;
            dq[at] += s.dq[e];
            dk[at] += s.dk[e];
        }
        __syncthreads();
    }
}

// ---- host side ----------------------------------------------------------------

size_t cuda_scan_delta_chunked_scratch_len(int B, int T, int H, int K, int V)
{
    (void)T;
    return (size_t)B * H * 2 * K * V;
}

size_t cuda_scan_delta_chunked_smem(int K, int V)
{
    const int vt = V < SDC_FWD_VT ? V : SDC_FWD_VT;
    sdc_fwd_smem f;
    sdc_bwd_smem b;
    const size_t fwd = sdc_fwd_layout(&f, NULL, K, vt), bwd = sdc_bwd_layout(&b, NULL, K, V);
    return (fwd > bwd ? fwd : bwd) * sizeof(float);
}

void cuda_scan_delta_chunked_forward(real *o, real *states, const real *q, const real *k,
                                     const real *v, const real *beta, const real *alpha, int B,
                                     int T, int H, int K, int V, real scale)
{
    sb_cuda_check_heads("scan_delta_forward (chunked)", K, V, SDC_MAX_KV);
    if (B < 1 || H < 1 || T < 1) return;
    const int vt = V < SDC_FWD_VT ? V : SDC_FWD_VT;
    sdc_fwd_smem s;
    const size_t bytes = sdc_fwd_layout(&s, NULL, K, vt) * sizeof(float);
    sb_cuda_allow_smem((const void *)scan_delta_chunk_fwd_kernel, bytes, "scan_delta_forward (chunked)");
    const dim3 grid((unsigned)(B * H), sb_cdiv((size_t)V, (size_t)vt));
    scan_delta_chunk_fwd_kernel<<<grid, SDC_THREADS, bytes, sb_cuda_stream()>>>(
        o, states, q, k, v, beta, alpha, T, H, K, V, scale, vt);
    CUDA_CHECK_LAST();
}

void cuda_scan_delta_chunked_backward(real *dq, real *dk, real *dv, real *dbeta, real *dalpha,
                                      real *scratch, const real *dout, const real *states,
                                      const real *q, const real *k, const real *v,
                                      const real *beta, const real *alpha, int B, int T, int H,
                                      int K, int V, real scale)
{
    sb_cuda_check_heads("scan_delta_backward (chunked)", K, V, SDC_MAX_KV);
    if ((dbeta == NULL) != (beta == NULL) || (dalpha != NULL && alpha == NULL))
        sb_cuda_fail(__FILE__, __LINE__, "scan_delta_backward (chunked)",
                     "dbeta must be given exactly when beta is, dalpha only with alpha");
    if (B < 1 || H < 1 || T < 1) return;
    sdc_bwd_smem s;
    const size_t bytes = sdc_bwd_layout(&s, NULL, K, V) * sizeof(float);
    sb_cuda_allow_smem((const void *)scan_delta_chunk_bwd_kernel, bytes, "scan_delta_backward (chunked)");
    scan_delta_chunk_bwd_kernel<<<B * H, SDC_THREADS, bytes, sb_cuda_stream()>>>(
        dq, dk, dv, dbeta, dalpha, scratch, dout, states, q, k, v, beta, alpha, T, H, K, V,
        scale);
    CUDA_CHECK_LAST();
}
