/* scan_delta.c: CPU gated delta rule scan: the recurrent reference form, forward and backward, and the choice between it and the chunked form. */
#include <string.h>

#include "../ops.h"
#include "scan_delta_chunk.h"

/* Each token updates the K x V state with rank-1 operations, O(K V) per step:
 *   u = S^T k,  w = beta (v - alpha u)  (delta)  or  w = v  (non-delta),
 *   S <- alpha S + k w^T,
 * which is alpha (I - beta k k^T) S + beta k v^T (resp. alpha S + k v^T).
 * A missing alpha is 1 and goes through the same arithmetic: multiplying by 1
 * is exact, so the results equal the alpha-free formula bit for bit.
 *
 * Cache (states), per (b,h): nck + 1 states (K,V), nck = ceil(T / CKPT);
 * slot j holds S_{min(j CKPT, T)}: S_0 = 0, the state after steps CKPT,
 * 2 CKPT, ..., and the final state S_T. The forward advances chunk c in place
 * in slot c + 1 after copying slot c there, so the cache is its workspace
 * (besides one V-vector per thread on the stack).
 *
 * Scratch for the backward, per (b,h), L = min(T, CKPT):
 *   (L + 1) states (K,V) of the chunk being reversed, recomputed from its
 *   checkpoint; dS (K,V), the gradient carried backwards through time;
 *   two V-vectors (u then w, dw then du).
 * Per (b,h) rather than per thread so the size cannot depend on the thread
 * count, which may change between sizing and calling. */

/* Below this many multiply-adds in total the scan runs on one thread. */
#define SCAN_PARALLEL_MIN 65536

static int num_chunks(int T)
{
    return (T + SCAN_DELTA_CKPT - 1) / SCAN_DELTA_CKPT;
}

/* tokens in chunk c: CKPT, or what is left of T in the last one */
static int chunk_len(int T, int c)
{
    const int rest = T - c * SCAN_DELTA_CKPT;
    return rest < SCAN_DELTA_CKPT ? rest : SCAN_DELTA_CKPT;
}

/* the longest chunk: L = min(T, CKPT) */
static size_t max_chunk(int T)
{
    return (size_t)(T < SCAN_DELTA_CKPT ? T : SCAN_DELTA_CKPT);
}

static size_t scratch_per_head(int T, int K, int V)
{
    return (max_chunk(T) + 2) * (size_t)K * V + 2 * (size_t)V;
}

size_t scan_delta_cache_len(int B, int T, int H, int K, int V)
{
    return (size_t)B * H * (size_t)(num_chunks(T) + 1) * K * V;
}

size_t scan_delta_scratch_len(int B, int T, int H, int K, int V)
{
    const size_t recurrent = (size_t)B * H * scratch_per_head(T, K, V);
    const size_t chunked = scan_delta_chunked_scratch_len(B, T, H, K, V);
    return recurrent > chunked ? recurrent : chunked;
}

/* One token in place: S (K,V) becomes S_t. u (V) is workspace (it ends
 * holding w when delta). When o != NULL, also o (V) = scale S_t^T q (K).
 * k (K), v (V). The backward recomputes states with this same function. */
static void step_forward(real *S, real *u, real *o, const real *q, const real *k,
                         const real *v, int delta, real beta, real alpha, int K,
                         int V, real scale)
{
    const real *w = v;
    if (delta) {
        memset(u, 0, (size_t)V * sizeof *u);
        for (int i = 0; i < K; i++) {
            const real ki = k[i];
            const real *row = S + (size_t)i * V;
            for (int j = 0; j < V; j++)
                u[j] += ki * row[j];
        }
        for (int j = 0; j < V; j++)
            u[j] = beta * (v[j] - alpha * u[j]);
        w = u;
    }
    if (o)
        memset(o, 0, (size_t)V * sizeof *o);
    for (int i = 0; i < K; i++) {
        const real ki = k[i];
        real *row = S + (size_t)i * V;
        for (int j = 0; j < V; j++)
            row[j] = alpha * row[j] + ki * w[j];
        if (o) {
            const real qi = scale * q[i];
            for (int j = 0; j < V; j++)
                o[j] += qi * row[j];
        }
    }
}

void scan_delta_recurrent_forward(real *o, real *states, const real *q, const real *k,
                                  const real *v, const real *beta, const real *alpha,
                                  int B, int T, int H, int K, int V, real scale)
{
    // o (B,T,H,V), states (B,H,nck+1,K,V), q,k (B,T,H,K), v (B,T,H,V), beta,alpha (B,T,H)
    const int nck = num_chunks(T);
    const size_t KV = (size_t)K * V;
    const size_t work = (size_t)B * H * T * KV;
#pragma omp parallel for schedule(static) if (work >= SCAN_PARALLEL_MIN)
    for (int bh = 0; bh < B * H; bh++) {
        const int b = bh / H, h = bh % H;
        real *slots = states + (size_t)bh * (size_t)(nck + 1) * KV; // (nck+1,K,V)
        real u[V]; // w workspace, V reals on this thread's stack
        memset(slots, 0, KV * sizeof *slots);
        for (int c = 0; c < nck; c++) {
            real *S = slots + (size_t)(c + 1) * KV;
            memcpy(S, S - KV, KV * sizeof *S);
            const int t0 = c * SCAN_DELTA_CKPT, n = chunk_len(T, c);
            for (int t = t0; t < t0 + n; t++) {
                const size_t r = ((size_t)b * T + t) * H + h; // token row
                step_forward(S, u, o + r * V, q + r * K, k + r * K, v + r * V,
                             beta != NULL, beta ? beta[r] : 1, alpha ? alpha[r] : 1,
                             K, V, scale);
            }
        }
    }
}

/* Reverse of one token. dS (K,V) enters as dL/dS_t from the later tokens and
 * leaves as dL/dS_{t-1}. S_prev = S_{t-1}, S_cur = S_t (K,V); u, dw (V) are
 * workspace; dout (V) = dL/do_t. Gradients for this token are added into
 * dq, dk (K), dv (V), *dbeta and *dalpha (the last two may be NULL). */
static void step_backward(real *dS, real *u, real *dw, real *dq, real *dk, real *dv,
                          real *dbeta, real *dalpha, const real *S_prev,
                          const real *S_cur, const real *dout, const real *q,
                          const real *k, const real *v, int delta, real beta,
                          real alpha, int K, int V, real scale)
{
    // o_t = scale S_t^T q: dq = scale S_t dout, dS_t += scale q dout^T. Then
    // S_t = alpha S_{t-1} + k w^T: dw = dS_t^T k; the delta form also needs
    // u = S_{t-1}^T k. One pass over the rows does both.
    memset(dw, 0, (size_t)V * sizeof *dw);
    if (delta)
        memset(u, 0, (size_t)V * sizeof *u);
    for (int i = 0; i < K; i++) {
        const real *row = S_cur + (size_t)i * V;
        const real *prow = S_prev + (size_t)i * V;
        real *drow = dS + (size_t)i * V;
        const real qi = scale * q[i], ki = k[i];
        real s = 0;
        if (delta) {
#pragma omp simd reduction(+ : s)
            for (int j = 0; j < V; j++) {
                s += row[j] * dout[j];
                drow[j] += qi * dout[j];
                dw[j] += ki * drow[j];
                u[j] += ki * prow[j];
            }
        } else {
#pragma omp simd reduction(+ : s)
            for (int j = 0; j < V; j++) {
                s += row[j] * dout[j];
                drow[j] += qi * dout[j];
                dw[j] += ki * drow[j];
            }
        }
        dq[i] += scale * s;
    }
    real da = 0;
    if (delta) {
        // w = beta (v - alpha u): u becomes w, dw becomes du = -alpha beta dw
        real db = 0;
#pragma omp simd reduction(+ : db, da)
        for (int j = 0; j < V; j++) {
            const real r = v[j] - alpha * u[j];
            db += dw[j] * r;
            da -= beta * dw[j] * u[j];
            dv[j] += beta * dw[j];
            u[j] = beta * r;
            dw[j] = -alpha * beta * dw[j];
        }
        if (dbeta)
            *dbeta += db;
    } else {
        for (int j = 0; j < V; j++)
            dv[j] += dw[j];
    }
    // dk = dS_t w (+ S_{t-1} du), dalpha += <dS_t, S_{t-1}>, dS_{t-1} = alpha dS_t (+ k du^T);
    // w is u in the delta form, v otherwise
    for (int i = 0; i < K; i++) {
        real *drow = dS + (size_t)i * V;
        const real *prow = S_prev + (size_t)i * V;
        real g = 0;
        if (delta) {
            const real ki = k[i];
#pragma omp simd reduction(+ : g, da)
            for (int j = 0; j < V; j++) {
                const real dj = drow[j];
                g += dj * u[j] + prow[j] * dw[j];
                da += dj * prow[j];
                drow[j] = alpha * dj + ki * dw[j];
            }
        } else {
#pragma omp simd reduction(+ : g, da)
            for (int j = 0; j < V; j++) {
                const real dj = drow[j];
                g += dj * v[j];
                da += dj * prow[j];
                drow[j] = alpha * dj;
            }
        }
        dk[i] += g;
    }
    if (dalpha)
        *dalpha += da;
}

void scan_delta_recurrent_backward(real *dq, real *dk, real *dv, real *dbeta,
                                   real *dalpha, real *scratch, const real *dout,
                                   const real *states, const real *q, const real *k,
                                   const real *v, const real *beta, const real *alpha,
                                   int B, int T, int H, int K, int V, real scale)
{
    // dq,dk (B,T,H,K), dv,dout (B,T,H,V), dbeta,dalpha (B,T,H), scratch (B*H, scratch_per_head)
    const int nck = num_chunks(T);
    const size_t KV = (size_t)K * V;
    const size_t per_head = scratch_per_head(T, K, V);
    const size_t work = (size_t)B * H * T * KV;
#pragma omp parallel for schedule(static) if (work >= SCAN_PARALLEL_MIN)
    for (int bh = 0; bh < B * H; bh++) {
        const int b = bh / H, h = bh % H;
        const real *slots = states + (size_t)bh * (size_t)(nck + 1) * KV; // (nck+1,K,V)
        real *Sc = scratch + (size_t)bh * per_head; // (L+1,K,V) chunk states
        real *dS = Sc + (max_chunk(T) + 1) * KV;    // (K,V)
        real *u = dS + KV;                          // (V)
        real *dw = u + V;                           // (V)
        memset(dS, 0, KV * sizeof *dS);
        for (int c = nck - 1; c >= 0; c--) {
            const int t0 = c * SCAN_DELTA_CKPT, n = chunk_len(T, c);
            memcpy(Sc, slots + (size_t)c * KV, KV * sizeof *Sc);
            for (int j = 0; j < n; j++) {
                const size_t r = ((size_t)b * T + t0 + j) * H + h;
                real *S = Sc + (size_t)(j + 1) * KV;
                memcpy(S, S - KV, KV * sizeof *S);
                step_forward(S, u, NULL, NULL, k + r * K, v + r * V, beta != NULL,
                             beta ? beta[r] : 1, alpha ? alpha[r] : 1, K, V, scale);
            }
            for (int j = n - 1; j >= 0; j--) {
                const size_t r = ((size_t)b * T + t0 + j) * H + h;
                step_backward(dS, u, dw, dq + r * K, dk + r * K, dv + r * V,
                              dbeta ? dbeta + r : NULL, dalpha ? dalpha + r : NULL,
                              Sc + (size_t)j * KV, Sc + (size_t)(j + 1) * KV,
                              dout + r * V, q + r * K, k + r * K, v + r * V,
                              beta != NULL, beta ? beta[r] : 1, alpha ? alpha[r] : 1,
                              K, V, scale);
            }
        }
    }
}

/* ---- form choice ----------------------------------------------------------- */

/* Measured on the 2-core EPYC (AVX2) build machine, one thread, B = 32,
 * H = 4, T = 256, forward / backward time of chunked over recurrent:
 * K = V = 8: 1.6 / 1.6 (slower), 16: 1.0 / 1.0, 32: 0.78 / 0.71,
 * 64: 0.60 / 0.60; at K = V = 32 the ratio is the same from T = 16 (one
 * whole chunk) to T = 256. So the chunked form runs from one whole chunk
 * on for heads of 32 and more; below that the per-token recurrence is as
 * fast or faster (a chunk's q.k and solve terms, O(C^2 (K + V)), then
 * outweigh the state's O(C K V)). */
#define SCAN_DELTA_CHUNK_MIN_T SCAN_DELTA_CKPT
#define SCAN_DELTA_CHUNK_MIN_KV 32

int scan_delta_use_chunked(int T, int K, int V)
{
    return T >= SCAN_DELTA_CHUNK_MIN_T && K >= SCAN_DELTA_CHUNK_MIN_KV &&
           V >= SCAN_DELTA_CHUNK_MIN_KV && K <= SCAN_DELTA_CHUNK_MAX_KV &&
           V <= SCAN_DELTA_CHUNK_MAX_KV;
}

/* The form scan_delta_forward / _backward run: ops_set_scan_form's, or by
 * size. The chunked form's stack buffers bound K and V in either case. */
static int use_chunked(int T, int K, int V)
{
    switch (ops_get_scan_form()) {
    case OPS_SCAN_RECURRENT: return 0;
    case OPS_SCAN_CHUNKED: return K <= SCAN_DELTA_CHUNK_MAX_KV && V <= SCAN_DELTA_CHUNK_MAX_KV;
    default: return scan_delta_use_chunked(T, K, V);
    }
}

void scan_delta_forward(real *o, real *states, const real *q, const real *k,
                        const real *v, const real *beta, const real *alpha,
                        int B, int T, int H, int K, int V, real scale)
{
    if (use_chunked(T, K, V))
        scan_delta_chunked_forward(o, states, q, k, v, beta, alpha, B, T, H, K, V, scale);
    else
        scan_delta_recurrent_forward(o, states, q, k, v, beta, alpha, B, T, H, K, V, scale);
}

void scan_delta_backward(real *dq, real *dk, real *dv, real *dbeta,
                         real *dalpha, real *scratch, const real *dout,
                         const real *states, const real *q, const real *k,
                         const real *v, const real *beta, const real *alpha,
                         int B, int T, int H, int K, int V, real scale)
{
    if (use_chunked(T, K, V))
        scan_delta_chunked_backward(dq, dk, dv, dbeta, dalpha, scratch, dout, states, q, k, v,
                                    beta, alpha, B, T, H, K, V, scale);
    else
        scan_delta_recurrent_backward(dq, dk, dv, dbeta, dalpha, scratch, dout, states, q, k,
                                      v, beta, alpha, B, T, H, K, V, scale);
}
