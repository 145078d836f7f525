/* attention.c: CPU rotary embedding and causal softmax attention (gemm per head, OpenMP over heads). */
#include "../ops.h"

#include <assert.h>
#include <cblas.h>
#include <tgmath.h>

#include "fast_math.h"

#ifdef SB_DOUBLE
#define GEMM cblas_dgemm
#else
#define GEMM cblas_sgemm
#endif

/* Below this many elements an OpenMP region costs more than it saves. */
#define PAR_MIN 16384

/* Query rows per gemm. Row block [r0, r0+rows) only needs keys [0, r0+rows),
 * so blocking skips all but a sliver of the masked upper triangle. */
#define ATT_ROWS 64

static int min_int(int a, int b) { return a < b ? a : b; }

/* ---- rotary embedding -------------------------------------------------- */

/* out = R(sign * angle) inp for pair i at position t, angle t * theta^(-2i/D).
 * accumulate: out += instead of out =. The angle and its sine and cosine are
 * computed in double once per (t, i), ROPE_PAIRS pairs at a time into a
 * table on the stack, and shared by every batch and head; the rotation then
 * runs over contiguous pairs (it vectorises). */
#define ROPE_PAIRS 64
static void rope_rotate(real *out, const real *inp, int B, int T, int H, int D,
                        real theta, double sign, int accumulate)
{
    /* out, inp (B,T,H,D) */
    assert(D % 2 == 0);
    const size_t row = (size_t)H * D;
#pragma omp parallel for if ((size_t)B * T * row >= PAR_MIN)
    for (int t = 0; t < T; t++) {
        for (int i0 = 0; i0 < D / 2; i0 += ROPE_PAIRS) {
            const int pairs = D / 2 - i0 < ROPE_PAIRS ? D / 2 - i0 : ROPE_PAIRS;
            real c[ROPE_PAIRS], s[ROPE_PAIRS];
            for (int i = 0; i < pairs; i++) {
                double angle = sign * t * pow((double)theta, -2.0 * (i0 + i) / D);
                c[i] = (real)cos(angle);
                s[i] = (real)sin(angle);
            }
            for (int b = 0; b < B; b++)
                for (int h = 0; h < H; h++) {
                    const size_t base = ((size_t)b * T + t) * row + (size_t)h * D + 2 * (size_t)i0;
                    const real *x = inp + base; // may be y: pair i touches only its own
                    real *y = out + base;
                    if (accumulate) {
                        FM_SIMD
                        for (int i = 0; i < pairs; i++) {
                            const real x0 = x[2 * i], x1 = x[2 * i + 1];
                            y[2 * i] += x0 * c[i] - x1 * s[i];
                            y[2 * i + 1] += x0 * s[i] + x1 * c[i];
                        }
                    } else {
                        FM_SIMD
                        for (int i = 0; i < pairs; i++) {
                            const real x0 = x[2 * i], x1 = x[2 * i + 1];
                            y[2 * i] = x0 * c[i] - x1 * s[i];
                            y[2 * i + 1] = x0 * s[i] + x1 * c[i];
                        }
                    }
                }
        }
    }
}

void rope_forward(real *out, const real *inp, int B, int T, int H, int D,
                  real theta)
{
    rope_rotate(out, inp, B, T, H, D, theta, 1.0, 0);
}

void rope_backward(real *dinp, const real *dout, int B, int T, int H, int D,
                   real theta)
{
    rope_rotate(dinp, dout, B, T, H, D, theta, -1.0, 1);
}

/* ---- causal softmax attention ----------------------------------------- */

/* Each (b,h) head is computed by one thread, and gemms called inside the
 * active OpenMP region run single-threaded (OpenBLAS's OpenMP build), so the
 * results do not depend on the thread count. Below ATT_PAR_MIN multiply-adds
 * the heads run serially without a region; every gemm is then smaller than
 * OpenBLAS's own threshold for threading (65536 * 4 = M*N*K), so it is still
 * single-threaded. */
#define ATT_PAR_MIN 65536

static size_t att_work(int B, int T, int H, int D) { return (size_t)B * H * T * T * D; }

size_t attention_cache_len(int B, int T, int H, int D)
{
    /* the probabilities P (B,H,T,T) */
    (void)D;
    return (size_t)B * H * T * T;
}

void attention_forward(real *out, real *att, const real *q, const real *k,
                       const real *v, int B, int T, int H, int D)
{
    /* out, q, k, v (B,T,H,D); att (B,H,T,T) */
    const int ld = H * D; /* row stride of q, k, v, out */
    const real scale = (real)(1.0 / sqrt((double)D));
#pragma omp parallel for schedule(dynamic) if (att_work(B, T, H, D) >= ATT_PAR_MIN)
    for (int bh = 0; bh < B * H; bh++) {
        size_t off = (size_t)(bh / H) * T * ld + (size_t)(bh % H) * D;
        const real *qh = q + off, *kh = k + off, *vh = v + off;
        real *oh = out + off;
        real *P = att + (size_t)bh * T * T; /* (T,T) */
        for (int r0 = 0; r0 < T; r0 += ATT_ROWS) {
            int rows = min_int(ATT_ROWS, T - r0), cols = r0 + rows;
            real *Pr = P + (size_t)r0 * T;
            GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, rows, cols, D, scale,
                 qh + (size_t)r0 * ld, ld, kh, ld, 0, Pr, T);
            for (int r = 0; r < rows; r++) {
                real *restrict p = Pr + (size_t)r * T;
                int t = r0 + r;
                real mx = p[0];
                for (int j = 1; j <= t; j++) mx = p[j] > mx ? p[j] : mx;
                /* the exponentials in a loop of their own, which vectorises
                   (fast_math's exp in the float build) */
                FM_SIMD
                for (int j = 0; j <= t; j++) p[j] = fm_exp(p[j] - mx);
                double sum = 0;
                for (int j = 0; j <= t; j++) sum += p[j];
                real inv = (real)(1 / sum);
                for (int j = 0; j <= t; j++) p[j] *= inv;
                for (int j = t + 1; j < T; j++) p[j] = 0;
            }
            GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, D, cols, 1, Pr,
                 T, vh, ld, 0, oh + (size_t)r0 * ld, ld);
        }
    }
}

size_t attention_scratch_len(int B, int T, int H)
{
    /* one row block of dP / dS per head */
    return (size_t)B * H * min_int(T, ATT_ROWS) * T;
}

void attention_backward(real *dq, real *dk, real *dv, real *scratch,
                        const real *dout, const real *att, const real *q,
                        const real *k, const real *v, int B, int T, int H, int D)
{
    /* dq, dk, dv, dout, q, k, v (B,T,H,D); att (B,H,T,T);
     * scratch (B,H,min(T,ATT_ROWS),T).
     * Per head, with S = scale Q K^T and P = softmax(S):
     *   dV = P^T dO, dP = dO V^T, dS = P * (dP - rowsum(P * dP)),
     *   dQ = scale dS K, dK = scale dS^T Q (scale is folded into dS). */
    const int ld = H * D;
    const real scale = (real)(1.0 / sqrt((double)D));
    const size_t block = (size_t)min_int(T, ATT_ROWS) * T;
#pragma omp parallel for schedule(dynamic) if (att_work(B, T, H, D) >= ATT_PAR_MIN)
    for (int bh = 0; bh < B * H; bh++) {
        size_t off = (size_t)(bh / H) * T * ld + (size_t)(bh % H) * D;
        const real *qh = q + off, *kh = k + off, *vh = v + off, *doh = dout + off;
        real *dqh = dq + off, *dkh = dk + off, *dvh = dv + off;
        const real *P = att + (size_t)bh * T * T; /* (T,T) */
        real *dS = scratch + (size_t)bh * block;   /* (rows,T) */
        for (int r0 = 0; r0 < T; r0 += ATT_ROWS) {
            int rows = min_int(ATT_ROWS, T - r0), cols = r0 + rows;
            const real *Pr = P + (size_t)r0 * T;
            const real *dOr = doh + (size_t)r0 * ld;
            GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, cols, D, rows, 1, Pr, T,
                 dOr, ld, 1, dvh, ld);
            GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, rows, cols, D, 1, dOr, ld,
                 vh, ld, 0, dS, T);
            for (int r = 0; r < rows; r++) {
                const real *p = Pr + (size_t)r * T;
                real *ds = dS + (size_t)r * T;
                int t = r0 + r;
                double dot = 0;
                for (int j = 0; j <= t; j++) dot += (double)p[j] * ds[j];
                for (int j = 0; j <= t; j++) ds[j] = scale * p[j] * (ds[j] - (real)dot);
                for (int j = t + 1; j < cols; j++) ds[j] = 0;
            }
            GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, D, cols, 1, dS, T,
                 kh, ld, 1, dqh + (size_t)r0 * ld, ld);
            GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, cols, D, rows, 1, dS, T,
                 qh + (size_t)r0 * ld, ld, 1, dkh, ld);
        }
    }
}
