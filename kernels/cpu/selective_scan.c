/* selective_scan.c: CPU Mamba-1 selective scan, forward and backward, without materialising the (B,T,Di,N) state. */
#include <string.h>
#include <tgmath.h>

#include "../ops.h"

/* Layout of the cache: A^T (N,Di) = -exp(A_log)^T, dt (B,T,Di) =
 * softplus(dt_pre) and its slope s(dt_pre) (B,T,Di), computed once per
 * forward (the backward reuses them); then per batch b nck + 1 states
 * (N,Di), nck = ceil(T / CKPT): slot j holds h after min(j CKPT, T) steps
 * (slot 0 = 0, the last slot the final state).
 * The forward advances chunk j in place in slot j + 1 after copying slot j
 * there, so the cache is its only workspace.
 *
 * Scratch of the backward, per batch b (never per thread, so its size
 * cannot depend on the thread count), L = min(T, CKPT):
 *   (L + 1) states (N,Di) of the chunk being reversed, recomputed from its
 *   checkpoint; L blocks (N,Di) of exp(dt A) from that recomputation;
 *   dh (N,Di), the gradient carried backwards through time; and partial sums
 *   of dA (N,Di) and dD (Di) over this batch row's tokens, added up over b in
 *   order at the end, so the result does not depend on the thread count;
 *   then per-token vectors (Di) of the token being reversed.
 *
 * States are stored state-major, (N,Di): every loop runs over the channels
 * innermost, Di wide (256 at d = 128), so it vectorises with no horizontal
 * reductions (with (Di,N) each channel's N = 16 states made a reduction per
 * channel and token, and the scan was a third of a mamba training step).
 * One batch row's state (Di N reals, 16 KiB at Di = 256, N = 16) stays in
 * cache. */

/* Below this many state updates in total the scan runs on one thread. */
#define SCAN_PARALLEL_MIN 65536

#ifdef SB_DOUBLE
/* The double build is the gradient-check and oracle build: libm. softplus
 * as PyTorch computes it (linear above 20); its slope is the sigmoid. */
static inline real scan_exp(real x) { return exp(x); }
static inline real softplus(real x) { return x > 20 ? x : log1p(exp(x)); }
static inline real sigmoid(real x) { return 1 / (1 + exp(-x)); }
#else
/* exp(x) for x <= 0 (dt A is never positive), vectorisable inside an omp
 * simd loop: x = k ln 2 + r with |r| <= ln 2 / 2 (Cody-Waite split of ln 2),
 * exp(r) by Cephes' degree-6 polynomial (relative error below 1e-7, as
 * expf), 2^k by the exponent bits. Below -87.3 (where expf leaves the normal
 * range) it returns exactly 0, as the state update then needs: a = 2 * 0 - 1
 * = -1 exactly in the signed map. The clamp is integer bit arithmetic, not
 * a float comparison: GCC will not if-convert a possibly trapping float
 * compare, and the loop would stay scalar. */
static inline float scan_exp(float x)
{
    int xi;
    memcpy(&xi, &x, sizeof xi);
    const int under = -((xi & 0x7fffffff) > 0x42ae999a); // all ones where x < -87.3
    const int xci = xi ^ ((xi ^ (int)0xc2ae999a) & under); // x, or -87.3 there
    float xc;
    memcpy(&xc, &xci, sizeof xc);
    const float k = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f; // round to nearest
    const float r = (xc - k * 0.693359375f) + k * 2.12194440e-4f;
    const float r2 = r * r;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r2 + r + 1.0f;
    const int bits = (((int)k + 127) << 23) & ~under; // 2^k, or 0 below -87.3
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline int bits_of(float x)
{
    int i;
    memcpy(&i, &x, sizeof i);
    return i;
}

static inline float float_of(int i)
{
    float x;
    memcpy(&x, &i, sizeof x);
    return x;
}

/* log(1 + t) for t in [0, 1] as 2 atanh(s), s = t / (2 + t) in [0, 1/3],
 * by its series up to s^15 (relative truncation error below 2e-9); unlike
 * log(1 + t) it keeps full relative accuracy for tiny t. */
static inline float log1p_unit(float t)
{
    const float s = t / (2 + t), s2 = s * s;
    float p = 1.0f / 15;
    p = p * s2 + 1.0f / 13;
    p = p * s2 + 1.0f / 11;
    p = p * s2 + 1.0f / 9;
    p = p * s2 + 1.0f / 7;
    p = p * s2 + 1.0f / 5;
    p = p * s2 + 1.0f / 3;
    p = p * s2 + 1;
    return 2 * s * p;
}

/* softplus(x) = max(x, 0) + log(1 + exp(-|x|)) and sigmoid(x), vectorisable
 * (the same integer-select style as scan_exp; relative errors ~1e-7). */
static inline float softplus(float x)
{
    const int xi = bits_of(x);
    const float t = scan_exp(float_of(xi | (int)0x80000000)); // exp(-|x|)
    return float_of(xi & ~(xi >> 31)) + log1p_unit(t);
}

static inline float sigmoid(float x)
{
    const int neg = bits_of(x) >> 31; // all ones where x < 0
    const float t = scan_exp(float_of(bits_of(x) | (int)0x80000000)), r = 1 / (1 + t);
    return float_of((bits_of(r) & ~neg) | (bits_of(t * r) & neg)); // 1/(1+t), or t/(1+t)
}
#endif

static int num_chunks(int T)
{
    return (T + SELECTIVE_SCAN_CKPT - 1) / SELECTIVE_SCAN_CKPT;
}

static int chunk_len(int T, int j)
{
    const int rest = T - j * SELECTIVE_SCAN_CKPT;
    return rest < SELECTIVE_SCAN_CKPT ? rest : SELECTIVE_SCAN_CKPT;
}

static size_t max_chunk(int T)
{
    return (size_t)(T < SELECTIVE_SCAN_CKPT ? T : SELECTIVE_SCAN_CKPT);
}

/* Per-token vectors (Di) of the backward: s(z), ypre, dL/dypre, gB, gA */
#define SCAN_TOKEN_VECTORS 5

/* reals of one batch row's scratch: states, exps, dh, dA partial, dD
 * partial, the per-token vectors */
static size_t scratch_per_row(int T, int Di, int N)
{
    const size_t DN = (size_t)Di * N;
    return (2 * max_chunk(T) + 3) * DN + (1 + SCAN_TOKEN_VECTORS) * (size_t)Di;
}

/* offset of the checkpoints in the cache, after A, dt and s(dt_pre) */
static size_t slots_offset(int B, int T, int Di, int N)
{
    return (size_t)Di * N + 2 * (size_t)B * T * Di;
}

size_t selective_scan_cache_len(int B, int T, int Di, int N)
{
    return slots_offset(B, T, Di, N) + (size_t)B * (size_t)(num_chunks(T) + 1) * Di * N;
}

size_t selective_scan_scratch_len(int B, int T, int Di, int N)
{
    return (size_t)B * scratch_per_row(T, Di, N);
}

/* The decay from e = exp(dt A): a = k e - off with (k, off) = (1, 0) for
 * eigen positive (exactly e) and (2, 1) for signed. */
typedef struct {
    real k, off;
} decay_map;

static decay_map decay_of(int eigen_signed)
{
    return eigen_signed ? (decay_map){2, 1} : (decay_map){1, 0};
}

/* The per-token inputs of one batch row at one step. */
typedef struct {
    const real *dt, *u, *z, *sdt; // (Di); sdt = s(dt_pre)
    const real *Bt, *Ct;           // (N)
} step_in;

static step_in step_at(const real *dt, const real *u, const real *z, const real *sdt,
                       const real *Bm, const real *Cm, size_t row, int Di, int N)
{
    return (step_in){dt + row * Di, u + row * Di, z + row * Di, sdt + row * Di,
                     Bm + row * N, Cm + row * N};
}

/* One token's state update h (N,Di) <- a h + dt u Bt, a = exp(dt A) mapped;
 * acc (Di) = sum_n Ct[n] h[n]. With E given, it also keeps E (N,Di) =
 * exp(dt A) for the reverse step: same arithmetic, same states. */
static void update_token(real *restrict h, real *restrict acc, real *restrict E,
                         const real *restrict AT, const step_in *in, decay_map m, int Di, int N)
{
    const real *restrict dt = in->dt, *restrict u = in->u;
    for (int n = 0; n < N; n++) {
        real *restrict hn = h + (size_t)n * Di;
        const real *restrict An = AT + (size_t)n * Di;
        const real Bn = in->Bt[n], Cn = in->Ct[n];
        if (E) {
            real *restrict En = E + (size_t)n * Di;
#pragma omp simd
            for (int c = 0; c < Di; c++) {
                const real e = scan_exp(dt[c] * An[c]);
                En[c] = e;
                hn[c] = (m.k * e - m.off) * hn[c] + dt[c] * u[c] * Bn;
            }
        } else {
#pragma omp simd
            for (int c = 0; c < Di; c++) {
                const real hv = (m.k * scan_exp(dt[c] * An[c]) - m.off) * hn[c] + dt[c] * u[c] * Bn;
                hn[c] = hv;
                acc[c] = (n ? acc[c] : 0) + Cn * hv;
            }
        }
    }
}

void selective_scan_forward(real *y, real *cache, const real *u, const real *dt_pre,
                            const real *A_log, const real *Bm, const real *Cm, const real *D,
                            const real *z, int eigen_signed, int B, int T, int Di, int N)
{
    // y, u, dt_pre, z (B,T,Di); Bm, Cm (B,T,N); A_log (Di,N); D (Di);
    // cache: A^T (N,Di), dt (B,T,Di), s(dt_pre) (B,T,Di), then (B, nck+1, N, Di)
    // checkpoints
    const size_t DN = (size_t)Di * N, BTD = (size_t)B * T * Di;
    const int nck = num_chunks(T);
    const decay_map m = decay_of(eigen_signed);
    real *AT = cache, *dt = cache + DN, *sdt = dt + BTD;
    real *all_slots = cache + slots_offset(B, T, Di, N);
    for (int c = 0; c < Di; c++)
        for (int n = 0; n < N; n++) AT[(size_t)n * Di + c] = -exp(A_log[(size_t)c * N + n]);
    const size_t work = (size_t)B * T * DN;
#pragma omp parallel for simd schedule(static) if (work >= SCAN_PARALLEL_MIN)
    for (size_t i = 0; i < BTD; i++) {
        dt[i] = softplus(dt_pre[i]);
        sdt[i] = sigmoid(dt_pre[i]);
    }
#pragma omp parallel for schedule(static) if (work >= SCAN_PARALLEL_MIN)
    for (int b = 0; b < B; b++) {
        real *slots = all_slots + (size_t)b * (size_t)(nck + 1) * DN; // (nck+1,N,Di)
        memset(slots, 0, DN * sizeof *slots);
        for (int j = 0; j < nck; j++) {
            real *h = slots + (size_t)(j + 1) * DN;
            memcpy(h, h - DN, DN * sizeof *h);
            const int t0 = j * SELECTIVE_SCAN_CKPT, n = chunk_len(T, j);
            for (int t = t0; t < t0 + n; t++) {
                const size_t row = (size_t)b * T + t;
                const step_in in = step_at(dt, u, z, sdt, Bm, Cm, row, Di, N);
                real *restrict yt = y + row * Di; // first sum_n Ct h, then y
                update_token(h, yt, NULL, AT, &in, m, Di, N);
                const real *restrict zt = in.z, *restrict ut = in.u;
#pragma omp simd
                for (int c = 0; c < Di; c++)
                    yt[c] = (yt[c] + D[c] * ut[c]) * (zt[c] * sigmoid(zt[c]));
            }
        }
    }
}

/* Gradient outputs of one token (rows of the (B,T,.) gradient tensors) and
 * this batch row's partial sums. */
typedef struct {
    real *du, *ddt_pre, *dz; // (Di)
    real *dBt, *dCt;         // (N)
    real *dA_part;           // (N,Di) sum over the row's tokens of dL/dA
    real *dD_part;           // (Di)
} step_grad;

/* Reverse of one token. dh (N,Di) enters as dL/dh_t from the later tokens
 * and leaves as dL/dh_{t-1}. h_prev = h_{t-1}, h_cur = h_t, E = exp(dt A)
 * (N,Di); dy (Di) = dL/dy_t; vec (SCAN_TOKEN_VECTORS, Di) is workspace. */
static void step_backward(real *restrict dh, real *restrict vec, const step_grad *g,
                          const real *restrict h_prev, const real *restrict h_cur,
                          const real *restrict E, const real *restrict dy, const step_in *in,
                          const real *restrict AT, const real *restrict D, decay_map m, int Di,
                          int N)
{
    real *restrict sz = vec, *restrict ypre = sz + Di, *restrict dyp = ypre + Di;
    real *restrict gB = dyp + Di, *restrict gA = gB + Di;
    const real *restrict dt = in->dt, *restrict u = in->u, *restrict z = in->z;
    real *restrict dz = g->dz, *restrict dD_part = g->dD_part;
    for (int n = 0; n < N; n++) {
        const real Cn = in->Ct[n];
        const real *restrict hc = h_cur + (size_t)n * Di;
#pragma omp simd
        for (int c = 0; c < Di; c++) ypre[c] = (n ? ypre[c] : D[c] * u[c]) + Cn * hc[c];
    }
#pragma omp simd
    for (int c = 0; c < Di; c++) {
        const real s = sigmoid(z[c]);
        sz[c] = s;
        dyp[c] = dy[c] * z[c] * s; // dL / d ypre
        dz[c] += dy[c] * ypre[c] * s * (1 + z[c] * (1 - s));
        dD_part[c] += dyp[c] * u[c];
        gB[c] = 0;
        gA[c] = 0;
    }
    // gB = sum_n g_n B_n, gA = sum_n dL/d(dt A_n) A_n, with g = dL/dh_t
    for (int n = 0; n < N; n++) {
        const real Bn = in->Bt[n], Cn = in->Ct[n];
        const real *restrict hc = h_cur + (size_t)n * Di, *restrict hp = h_prev + (size_t)n * Di;
        const real *restrict En = E + (size_t)n * Di, *restrict An = AT + (size_t)n * Di;
        real *restrict dhn = dh + (size_t)n * Di, *restrict dAn = g->dA_part + (size_t)n * Di;
        real dC = 0, dB = 0;
#pragma omp simd reduction(+ : dC, dB)
        for (int c = 0; c < Di; c++) {
            const real gn = dhn[c] + dyp[c] * Cn;
            const real e = En[c];
            const real dl = gn * hp[c] * m.k * e; // dL / d(dt A[c,n])
            dC += dyp[c] * hc[c];
            dB += gn * dt[c] * u[c];
            gB[c] += gn * Bn;
            gA[c] += dl * An[c];
            dAn[c] += dl * dt[c];
            dhn[c] = gn * (m.k * e - m.off);
        }
        g->dCt[n] += dC;
        g->dBt[n] += dB;
    }
    real *restrict du = g->du, *restrict ddt_pre = g->ddt_pre;
    const real *restrict sdt = in->sdt;
#pragma omp simd
    for (int c = 0; c < Di; c++) {
        du[c] += dyp[c] * D[c] + dt[c] * gB[c];
        ddt_pre[c] += (u[c] * gB[c] + gA[c]) * sdt[c];
    }
}

void selective_scan_backward(real *du, real *ddt_pre, real *dA_log, real *dBm, real *dCm,
                             real *dD, real *dz, real *scratch, const real *dy,
                             const real *cache, const real *u, const real *dt_pre,
                             const real *Bm, const real *Cm, const real *D, const real *z,
                             int eigen_signed, int B, int T, int Di, int N)
{
    // du, ddt_pre, dz, dy (B,T,Di); dBm, dCm (B,T,N); dA_log (Di,N); dD (Di);
    // scratch (B, scratch_per_row)
    const size_t DN = (size_t)Di * N, L = max_chunk(T);
    const size_t per_row = scratch_per_row(T, Di, N);
    const int nck = num_chunks(T);
    const decay_map m = decay_of(eigen_signed);
    const real *AT = cache, *dt = cache + DN, *sdt = dt + (size_t)B * T * Di;
    const real *all_slots = cache + slots_offset(B, T, Di, N);
    const size_t work = (size_t)B * T * DN;
#pragma omp parallel for schedule(static) if (work >= SCAN_PARALLEL_MIN)
    for (int b = 0; b < B; b++) {
        const real *slots = all_slots + (size_t)b * (size_t)(nck + 1) * DN;
        real *Hs = scratch + (size_t)b * per_row; // (L+1,N,Di)
        real *Es = Hs + (L + 1) * DN;             // (L,N,Di)
        real *dh = Es + L * DN;                   // (N,Di)
        real *dA_part = dh + DN;                  // (N,Di)
        real *dD_part = dA_part + DN;             // (Di)
        real *vec = dD_part + Di;                 // (SCAN_TOKEN_VECTORS,Di)
        memset(dh, 0, (2 * DN + (size_t)Di) * sizeof *dh);
        for (int j = nck - 1; j >= 0; j--) {
            const int t0 = j * SELECTIVE_SCAN_CKPT, n = chunk_len(T, j);
            memcpy(Hs, slots + (size_t)j * DN, DN * sizeof *Hs);
            for (int i = 0; i < n; i++) {
                const size_t row = (size_t)b * T + t0 + i;
                const step_in in = step_at(dt, u, z, sdt, Bm, Cm, row, Di, N);
                real *h = Hs + (size_t)(i + 1) * DN, *E = Es + (size_t)i * DN;
                memcpy(h, h - DN, DN * sizeof *h);
                update_token(h, NULL, E, AT, &in, m, Di, N);
            }
            for (int i = n - 1; i >= 0; i--) {
                const size_t row = (size_t)b * T + t0 + i;
                const step_in in = step_at(dt, u, z, sdt, Bm, Cm, row, Di, N);
                const step_grad g = {du + row * Di, ddt_pre + row * Di, dz + row * Di,
                                     dBm + row * N, dCm + row * N, dA_part, dD_part};
                step_backward(dh, vec, &g, Hs + (size_t)i * DN, Hs + (size_t)(i + 1) * DN,
                              Es + (size_t)i * DN, dy + row * Di, &in, AT, D, m, Di, N);
            }
        }
    }
    // dA_log = dA * dA/dA_log = dA * A; the batch rows' partials in order b = 0..B-1
#pragma omp parallel for schedule(static) if (work >= SCAN_PARALLEL_MIN)
    for (int c = 0; c < Di; c++) {
        for (int n = 0; n < N; n++) {
            real s = 0;
            for (int b = 0; b < B; b++)
                s += scratch[(size_t)b * per_row + (2 * L + 2) * DN + (size_t)n * Di + c];
            dA_log[(size_t)c * N + n] += s * AT[(size_t)n * Di + c];
        }
        real s = 0;
        for (int b = 0; b < B; b++) s += scratch[(size_t)b * per_row + (2 * L + 3) * DN + c];
        dD[c] += s;
    }
}
