/* delta_gates.c: CPU pointwise gates of the gated delta rule family: gla's decay, mLSTM's stabilised gates and denominator, row fills. */
#include <math.h>
#include <string.h>
#include <tgmath.h>

#include "../ops.h"
#include "fast_math.h"

/* Below this many elements an OpenMP region costs more than it saves. */
#define GATES_PARALLEL_MIN 16384

/* a parallel loop over n elements, vectorised in the float build (FM_SIMD) */
#define PRAGMA(x) _Pragma(#x)
#ifdef SB_DOUBLE
#define PAR_SIMD_GATES PRAGMA(omp parallel for if (n >= GATES_PARALLEL_MIN))
#else
#define PAR_SIMD_GATES PRAGMA(omp parallel for simd if (n >= GATES_PARALLEL_MIN))
#endif

/* The gates' exponentials and logarithms are fast_math's (vectorisable,
 * inlined; libm's scalar log1pf and expf were 13% of a gla training step);
 * the double build gets libm's through the same names. */
static inline real sigmoid(real x) { return fm_sigmoid(x); }

/* log s(x), without overflow for large |x| */
static inline real log_sigmoid(real x) { return fm_log_sigmoid(x); }

void sigmoid_pow_forward(real *out, const real *inp, size_t n, real p, int eigen_signed)
{
    // out, inp (n); signed: 2 a - 1, else a (1 a - 0, exact), branch-free
    const real scale = eigen_signed ? 2 : 1, shift = eigen_signed ? 1 : 0;
PAR_SIMD_GATES
    for (size_t i = 0; i < n; i++) out[i] = scale * fm_exp(p * log_sigmoid(inp[i])) - shift;
}

void sigmoid_pow_backward(real *dinp, const real *dout, const real *inp, size_t n, real p,
                          int eigen_signed)
{
    // d s(x)^p / dx = p s(x)^p (1 - s(x))
PAR_SIMD_GATES
    for (size_t i = 0; i < n; i++) {
        const real a = fm_exp(p * log_sigmoid(inp[i]));
        const real slope = p * a * (1 - sigmoid(inp[i]));
        dinp[i] += (eigen_signed ? 2 : 1) * slope * dout[i];
    }
}

/* m_0 = -inf, as in xLSTM's parallel (training) form: m_1 = i~_1, and the
 * first forget gate is 0 (it multiplies the zero initial state, so nothing
 * depends on f~_1). The branch of the max is recomputed in the backward
 * with the same arithmetic, so both passes take the same one. */
void mlstm_gates_forward(real *fgate, real *igate, real *m, const real *f_pre,
                         const real *i_pre, int B, int T, int H)
{
    // all (B,T,H)
#pragma omp parallel for if ((size_t)B * T * H >= GATES_PARALLEL_MIN)
    for (int bh = 0; bh < B * H; bh++) {
        const int b = bh / H, h = bh % H;
        real m_prev = 0;
        for (int t = 0; t < T; t++) {
            const size_t r = ((size_t)b * T + t) * H + h;
            real mt;
            if (t == 0) {
                mt = i_pre[r];
                fgate[r] = 0;
            } else {
                const real a = log_sigmoid(f_pre[r]) + m_prev;
                mt = a >= i_pre[r] ? a : i_pre[r];
                fgate[r] = fm_exp(a - mt);
            }
            igate[r] = fm_exp(i_pre[r] - mt);
            m[r] = mt;
            m_prev = mt;
        }
    }
}

void mlstm_gates_backward(real *df_pre, real *di_pre, const real *dfgate,
                          const real *digate, const real *dm, const real *fgate,
                          const real *igate, const real *m, const real *f_pre,
                          const real *i_pre, int B, int T, int H)
{
    // all (B,T,H). carry = dL/dm_t through step t+1 (its forget gate and max).
#pragma omp parallel for if ((size_t)B * T * H >= GATES_PARALLEL_MIN)
    for (int bh = 0; bh < B * H; bh++) {
        const int b = bh / H, h = bh % H;
        real carry = 0;
        for (int t = T - 1; t >= 0; t--) {
            const size_t r = ((size_t)b * T + t) * H + h;
            const real di_exp = digate[r] * igate[r];  // through exp(i~ - m_t)
            real gm = dm[r] + carry - di_exp;           // total dL/dm_t
            real di = di_exp;
            carry = 0;
            if (t == 0) {
                di += gm; // m_1 = i~_1
            } else {
                const size_t rp = r - H; // token t - 1
                const real df_exp = dfgate[r] * fgate[r]; // through exp(lsf + m_{t-1} - m_t)
                gm -= df_exp;
                real dlsf = df_exp;
                carry = df_exp;
                const real a = log_sigmoid(f_pre[r]) + m[rp];
                if (a >= i_pre[r]) { // m_t = lsf + m_{t-1}
                    dlsf += gm;
                    carry += gm;
                } else {
                    di += gm;
                }
                df_pre[r] += dlsf * (1 - sigmoid(f_pre[r]));
            }
            di_pre[r] += di;
        }
    }
}

void mlstm_den_forward(real *den, const real *nq, const real *m, size_t n)
{
    // den, nq, m (n)
#pragma omp parallel for if (n >= GATES_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++) {
        const real a = fabs(nq[i]), e = exp(-m[i]);
        den[i] = a >= e ? a : e;
    }
}

void mlstm_den_backward(real *dnq, real *dm, const real *dden, const real *nq,
                        const real *m, size_t n)
{
#pragma omp parallel for if (n >= GATES_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++) {
        const real a = fabs(nq[i]), e = exp(-m[i]);
        if (a >= e)
            dnq[i] += nq[i] >= 0 ? dden[i] : -dden[i];
        else
            dm[i] -= e * dden[i];
    }
}

void fill_rows(real *out, const double *row, int N, int C)
{
    // out (N,C), row (C)
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            out[(size_t)n * C + c] = (real)row[c];
}
