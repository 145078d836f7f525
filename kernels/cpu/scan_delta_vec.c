/* scan_delta_vec.c: CPU non-delta scan with a decay per key dimension (gla), recurrent form, forward and backward. */
#include <string.h>

#include "../ops.h"

/* S_t = diag(alpha_t) S_{t-1} + k_t v_t^T row by row: row i of S (V reals)
 * becomes alpha_t[i] row_i + k_t[i] v_t, O(K V) per token. The cache is
 * scan_delta's: per (b,h), nck + 1 states, slot j = S_{min(j CKPT, T)}.
 * The backward recomputes a chunk's inner states from its checkpoint into
 * the scratch ((L + 1) states, L = min(T, CKPT)), then runs the reverse
 * steps with dS (K,V) and one V-vector; that fits in scan_delta_scratch_len.
 *
 * Speed: both directions walk S in blocks of up to SCAN_VEC_NV vectors of
 * columns, all K rows per block, so that the V-vectors a token reuses on
 * every row (v, o, dout, the dv sum) stay in registers. The backward's
 * three sums along a row (dq, dk, dalpha) are kept as one vector per row
 * and reduced LANES rows at a time by a transpose, not one by one. */

#define SCAN_PARALLEL_MIN 65536

/* 256-bit vectors written with GCC's vector extension, as in
 * scan_delta_chunk.c; vreal_u is for unaligned loads and stores. */
typedef real vreal __attribute__((vector_size(32)));
typedef real vreal_u __attribute__((vector_size(32), aligned(sizeof(real)), may_alias));
#define LANES ((int)(32 / sizeof(real)))
#define SCAN_VEC_NV 4 /* vectors of columns per block */

static int num_chunks(int T)
{
    return (T + SCAN_DELTA_CKPT - 1) / SCAN_DELTA_CKPT;
}

static int chunk_len(int T, int c)
{
    const int rest = T - c * SCAN_DELTA_CKPT;
    return rest < SCAN_DELTA_CKPT ? rest : SCAN_DELTA_CKPT;
}

static size_t max_chunk(int T)
{
    return (size_t)(T < SCAN_DELTA_CKPT ? T : SCAN_DELTA_CKPT);
}

static size_t scratch_per_head(int T, int K, int V)
{
    return (max_chunk(T) + 2) * (size_t)K * V + (size_t)V;
}

static inline vreal load(const real *p)
{
    return *(const vreal_u *)p;
}

static inline void store(real *p, vreal x)
{
    *(vreal_u *)p = x;
}

/* ---- forward ---------------------------------------------------------------- */

/* Columns j0 .. j0 + nv LANES of one token: dst = diag(a) src + k v^T (dst
 * may be src) and, when with_o, o = scale dst^T q on those columns. */
static inline __attribute__((always_inline)) void
step_forward_block(real *dst, const real *src, real *restrict o, const real *restrict q,
                   const real *restrict k, const real *restrict v, const real *restrict a, int K,
                   int V, int j0, real scale, const int nv, const int with_o)
{
    vreal vv[SCAN_VEC_NV], acc[SCAN_VEC_NV];
    for (int u = 0; u < nv; u++) {
        vv[u] = load(v + j0 + u * LANES);
        acc[u] = (vreal){0};
    }
    for (int i = 0; i < K; i++) {
        const size_t off = (size_t)i * V + j0;
        const real ai = a[i], ki = k[i];
        for (int u = 0; u < nv; u++) {
            const vreal s = ai * load(src + off + u * LANES) + ki * vv[u];
            store(dst + off + u * LANES, s);
            if (with_o)
                acc[u] += q[i] * s;
        }
    }
    if (with_o)
        for (int u = 0; u < nv; u++) store(o + j0 + u * LANES, scale * acc[u]);
}

/* One token: dst (K,V) = diag(a) src + k v^T (dst may be src); when
 * with_o, also o (V) = scale dst^T q. */
static inline __attribute__((always_inline)) void
step_forward(real *dst, const real *src, real *restrict o, const real *restrict q,
             const real *restrict k, const real *restrict v, const real *restrict a, int K,
             int V, real scale, const int with_o)
{
    int j0 = 0;
    for (; j0 + SCAN_VEC_NV * LANES <= V; j0 += SCAN_VEC_NV * LANES)
        step_forward_block(dst, src, o, q, k, v, a, K, V, j0, scale, SCAN_VEC_NV, with_o);
    switch ((V - j0) / LANES) {
    case 3: step_forward_block(dst, src, o, q, k, v, a, K, V, j0, scale, 3, with_o); break;
    case 2: step_forward_block(dst, src, o, q, k, v, a, K, V, j0, scale, 2, with_o); break;
    case 1: step_forward_block(dst, src, o, q, k, v, a, K, V, j0, scale, 1, with_o); break;
    default: break;
    }
    for (int j = V - V % LANES; j < V; j++) { // columns past the last whole vector
        real s_o = 0;
        for (int i = 0; i < K; i++) {
            const size_t ij = (size_t)i * V + j;
            const real s = a[i] * src[ij] + k[i] * v[j];
            dst[ij] = s;
            if (with_o)
                s_o += q[i] * s;
        }
        if (with_o)
            o[j] = scale * s_o;
    }
}

void scan_delta_vec_forward(real *o, real *states, const real *q, const real *k,
                            const real *v, const real *alpha, int B, int T, int H,
                            int K, int V, real scale)
{
    // o,v (B,T,H,V), q,k,alpha (B,T,H,K), states (B,H,nck+1,K,V)
    const int nck = num_chunks(T);
    const size_t KV = (size_t)K * V;
    const size_t work = (size_t)B * H * T * KV;
#pragma omp parallel for schedule(static) if (work >= SCAN_PARALLEL_MIN)
    for (int bh = 0; bh < B * H; bh++) {
        const int b = bh / H, h = bh % H;
        real *slots = states + (size_t)bh * (size_t)(nck + 1) * KV;
        memset(slots, 0, KV * sizeof *slots);
        for (int c = 0; c < nck; c++) {
            real *S = slots + (size_t)(c + 1) * KV;
            const int t0 = c * SCAN_DELTA_CKPT, n = chunk_len(T, c);
            for (int t = t0; t < t0 + n; t++) {
                const size_t r = ((size_t)b * T + t) * H + h;
                step_forward(S, t == t0 ? S - KV : S, o + r * V, q + r * K, k + r * K,
                             v + r * V, alpha + r * K, K, V, scale, 1);
            }
        }
    }
}

/* ---- backward --------------------------------------------------------------- */

/* x[r] holds row r's terms in its lanes; returns the vector of the row sums
 * (lane r: the sum of x[r]), by pairwise transposes: LANES - 1 adds. */
static inline vreal row_sums(const vreal x[LANES])
{
    /* __builtin_shufflevector: GCC (12 on) and clang both have it */
#ifndef SB_DOUBLE /* 8 lanes */
#define EVEN(a, b) __builtin_shufflevector(a, b, 0, 2, 8, 10, 4, 6, 12, 14)
#define ODD(a, b) __builtin_shufflevector(a, b, 1, 3, 9, 11, 5, 7, 13, 15)
    vreal p[4], h[2];
    for (int m = 0; m < 4; m++) p[m] = EVEN(x[2 * m], x[2 * m + 1]) + ODD(x[2 * m], x[2 * m + 1]);
    for (int m = 0; m < 2; m++) h[m] = EVEN(p[2 * m], p[2 * m + 1]) + ODD(p[2 * m], p[2 * m + 1]);
    return __builtin_shufflevector(h[0], h[1], 0, 1, 2, 3, 8, 9, 10, 11) +
           __builtin_shufflevector(h[0], h[1], 4, 5, 6, 7, 12, 13, 14, 15);
#else /* 4 lanes */
#define EVEN(a, b) __builtin_shufflevector(a, b, 0, 4, 2, 6)
#define ODD(a, b) __builtin_shufflevector(a, b, 1, 5, 3, 7)
    const vreal p0 = EVEN(x[0], x[1]) + ODD(x[0], x[1]);
    const vreal p1 = EVEN(x[2], x[3]) + ODD(x[2], x[3]);
    return __builtin_shufflevector(p0, p1, 0, 1, 4, 5) + __builtin_shufflevector(p0, p1, 2, 3, 6, 7);
#endif
#undef EVEN
#undef ODD
}

/* Rows i0 .. i0 + m - 1 (m <= LANES), columns j0 .. j0 + nv LANES of one
 * reverse token: with G = dS + scale q dout^T (dL/dS_t), adds row r's terms
 * of (S_t dout, G v, G . S_{t-1}) into part[0..2][r] and leaves dS =
 * diag(a) G. The rows' G^T k is summed over the row groups in dv_acc and
 * added into dv by the last group. */
static inline __attribute__((always_inline)) void
step_backward_block(vreal part[3][LANES], real *restrict dS, real *restrict dv_acc,
                    real *restrict dv, const real *restrict S_prev, const real *restrict S_cur,
                    const real *restrict dout, const real *restrict q, const real *restrict k,
                    const real *restrict v, const real *restrict a, int V, int i0, int m,
                    int last, int j0, real scale, const int nv)
{
    vreal g[SCAN_VEC_NV], vv[SCAN_VEC_NV], dva[SCAN_VEC_NV];
    for (int u = 0; u < nv; u++) {
        g[u] = load(dout + j0 + u * LANES);
        vv[u] = load(v + j0 + u * LANES);
        dva[u] = i0 == 0 ? (vreal){0} : load(dv_acc + j0 + u * LANES);
    }
    for (int r = 0; r < m; r++) {
        const int i = i0 + r;
        const size_t off = (size_t)i * V + j0;
        const real qi = scale * q[i], ki = k[i], ai = a[i];
        vreal sq = {0}, sk = {0}, sa = {0};
        for (int u = 0; u < nv; u++) {
            const size_t at = off + (size_t)u * LANES;
            const vreal G = load(dS + at) + qi * g[u];
            sq += load(S_cur + at) * g[u];
            sk += G * vv[u];
            sa += G * load(S_prev + at);
            dva[u] += ki * G;
            store(dS + at, ai * G);
        }
        part[0][r] += sq;
        part[1][r] += sk;
        part[2][r] += sa;
    }
    for (int u = 0; u < nv; u++) {
        if (last)
            store(dv + j0 + u * LANES, load(dv + j0 + u * LANES) + dva[u]);
        else
            store(dv_acc + j0 + u * LANES, dva[u]);
    }
}

/* Reverse of one token: dS (K,V) enters as dL/dS_t from later tokens and
 * leaves as dL/dS_{t-1}; dv_acc (V) is workspace. */
static void step_backward(real *restrict dS, real *restrict dv_acc, real *dq, real *dk,
                          real *dv, real *dalpha, const real *restrict S_prev,
                          const real *restrict S_cur, const real *restrict dout,
                          const real *q, const real *k, const real *restrict v,
                          const real *a, int K, int V, real scale)
{
    const int Vv = V - V % LANES; // columns in whole vectors
    for (int j = Vv; j < V; j++)
        dv_acc[j] = 0;
    for (int i0 = 0; i0 < K; i0 += LANES) {
        const int m = K - i0 < LANES ? K - i0 : LANES, last = i0 + m == K;
        vreal part[3][LANES];
        for (int r = 0; r < LANES; r++)
            part[0][r] = part[1][r] = part[2][r] = (vreal){0};
        int j0 = 0;
        for (; j0 + SCAN_VEC_NV * LANES <= Vv; j0 += SCAN_VEC_NV * LANES)
            step_backward_block(part, dS, dv_acc, dv, S_prev, S_cur, dout, q, k, v, a, V, i0,
                                m, last, j0, scale, SCAN_VEC_NV);
        switch ((Vv - j0) / LANES) {
        case 3:
            step_backward_block(part, dS, dv_acc, dv, S_prev, S_cur, dout, q, k, v, a, V, i0,
                                m, last, j0, scale, 3);
            break;
        case 2:
            step_backward_block(part, dS, dv_acc, dv, S_prev, S_cur, dout, q, k, v, a, V, i0,
                                m, last, j0, scale, 2);
            break;
        case 1:
            step_backward_block(part, dS, dv_acc, dv, S_prev, S_cur, dout, q, k, v, a, V, i0,
                                m, last, j0, scale, 1);
            break;
        default: break;
        }
        for (int r = 0; r < m && Vv < V; r++) { // columns past the last whole vector
            const int i = i0 + r;
            const real qi = scale * q[i], ki = k[i], ai = a[i];
            real sq = 0, sk = 0, sa = 0;
            for (int j = Vv; j < V; j++) {
                const size_t ij = (size_t)i * V + j;
                const real G = dS[ij] + qi * dout[j];
                sq += S_cur[ij] * dout[j];
                sk += G * v[j];
                sa += G * S_prev[ij];
                dv_acc[j] += ki * G;
                dS[ij] = ai * G;
            }
            part[0][r][0] += sq;
            part[1][r][0] += sk;
            part[2][r][0] += sa;
        }
        const vreal sq = row_sums(part[0]), sk = row_sums(part[1]), sa = row_sums(part[2]);
        for (int r = 0; r < m; r++) {
            dq[i0 + r] += scale * sq[r];
            dk[i0 + r] += sk[r];
            dalpha[i0 + r] += sa[r];
        }
    }
    for (int j = Vv; j < V; j++)
        dv[j] += dv_acc[j];
}

void scan_delta_vec_backward(real *dq, real *dk, real *dv, real *dalpha, real *scratch,
                             const real *dout, const real *states, const real *q,
                             const real *k, const real *v, const real *alpha, int B,
                             int T, int H, int K, int V, real scale)
{
    // dq,dk,dalpha (B,T,H,K), dv,dout (B,T,H,V), scratch (B*H, scratch_per_head)
    const int nck = num_chunks(T);
    const size_t KV = (size_t)K * V;
    const size_t per_head = scratch_per_head(T, K, V);
    const size_t work = (size_t)B * H * T * KV;
#pragma omp parallel for schedule(static) if (work >= SCAN_PARALLEL_MIN)
    for (int bh = 0; bh < B * H; bh++) {
        const int b = bh / H, h = bh % H;
        const real *slots = states + (size_t)bh * (size_t)(nck + 1) * KV;
        real *Sc = scratch + (size_t)bh * per_head;   // (L+1,K,V): slot j holds S_{t0+j}
        real *dS = Sc + (max_chunk(T) + 1) * KV;      // (K,V)
        real *dv_acc = dS + KV;                       // (V)
        memset(dS, 0, KV * sizeof *dS);
        for (int c = nck - 1; c >= 0; c--) {
            const int t0 = c * SCAN_DELTA_CKPT, n = chunk_len(T, c);
            // S_{t0} and S_{t0+n} come from the cache; the states between are recomputed
            for (int j = 1; j < n; j++) {
                const size_t r = ((size_t)b * T + t0 + j - 1) * H + h;
                step_forward(Sc + (size_t)j * KV, j == 1 ? slots + (size_t)c * KV
                                                         : Sc + (size_t)(j - 1) * KV,
                             NULL, NULL, k + r * K, v + r * V, alpha + r * K, K, V, scale, 0);
            }
            for (int j = n - 1; j >= 0; j--) {
                const size_t r = ((size_t)b * T + t0 + j) * H + h;
                const real *S_prev = j == 0 ? slots + (size_t)c * KV : Sc + (size_t)j * KV;
                const real *S_cur = j == n - 1 ? slots + (size_t)(c + 1) * KV
                                               : Sc + (size_t)(j + 1) * KV;
                step_backward(dS, dv_acc, dq + r * K, dk + r * K, dv + r * V, dalpha + r * K,
                              S_prev, S_cur, dout + r * V, q + r * K, k + r * K, v + r * V,
                              alpha + r * K, K, V, scale);
            }
        }
    }
}
