/* dense.c: CPU dense ops (OpenBLAS gemm, embedding, norms, activations, conv4, loss, AdamW). */
#include "../ops.h"

#include <assert.h>
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>
#include <tgmath.h>

#include "fast_math.h"
#include "gemm_tiled.h"
#define GEMM gemm_tiled /* bit-identical whatever the thread count */

/* Below this many elements an OpenMP region costs more than it saves. */
#define PAR_MIN 16384
/* Column block of the column-owned reductions (bias, norm weights, conv
 * weights, embedding rows): each output column is summed by exactly one
 * thread in row order, so results do not depend on the thread count. */
#define COL_BLOCK 16

static int min_int(int a, int b) { return a < b ? a : b; }

/* ---- threads ---------------------------------------------------------- */

/* threads < 1 means one per processor. OpenBLAS's OpenMP build runs its
 * gemms on the OpenMP pool, so both calls set the same pool's size. */
void ops_set_threads(int threads)
{
    if (threads < 1) threads = omp_get_num_procs();
    openblas_set_num_threads(threads);
    omp_set_num_threads(threads);
}

int ops_get_threads(void) { return omp_get_max_threads(); }

const char *ops_blas_info(void)
{
    static char info[160];
#pragma omp critical(ops_blas_info)
    if (!info[0]) {
        /* openblas_get_config() starts "OpenBLAS 0.3.21 ..." (the library
         * actually loaded, not the header compiled against) */
        const char *config = openblas_get_config();
        const char *end = strchr(config, ' ');
        end = end ? strchr(end + 1, ' ') : NULL;
        int len = end ? (int)(end - config) : (int)strlen(config);
        int parallel = openblas_get_parallel();
        snprintf(info, sizeof info, "%.*s (%s, %s)", len, config,
                 parallel == 2 ? "openmp" : parallel == 1 ? "pthreads" : "sequential",
                 openblas_get_corename());
    }
    return info;
}

/* ---- matmul ----------------------------------------------------------- */

void matmul_forward(real *out, const real *inp, const real *weight,
                    const real *bias, int N, int C, int OC)
{
    /* out (N,OC), inp (N,C), weight (OC,C), bias (OC) or NULL */
    if (N <= 0 || OC <= 0) return;
    real beta = 0;
    if (bias) {
#pragma omp parallel for if ((size_t)N * OC >= PAR_MIN)
        for (int n = 0; n < N; n++)
            memcpy(out + (size_t)n * OC, bias, (size_t)OC * sizeof *out);
        beta = 1;
    }
    GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1, inp, C, weight,
         C, beta, out, OC);
}

void matmul_backward(real *dinp, real *dweight, real *dbias, const real *dout,
                     const real *inp, const real *weight, int N, int C, int OC)
{
    /* dinp (N,C), dweight (OC,C), dbias (OC), dout (N,OC), inp (N,C), weight (OC,C) */
    if (N <= 0 || OC <= 0) return;
    if (C > 0) {
        if (dinp)
            GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1, dout,
                 OC, weight, C, 1, dinp, C);
        GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1, dout, OC,
             inp, C, 1, dweight, C);
    }
    if (!dbias) return;
#pragma omp parallel for if ((size_t)N * OC >= PAR_MIN)
    for (int o0 = 0; o0 < OC; o0 += COL_BLOCK) {
        int o1 = min_int(OC, o0 + COL_BLOCK);
        double acc[COL_BLOCK] = {0};
        for (int n = 0; n < N; n++) {
            const real *d = dout + (size_t)n * OC;
            for (int o = o0; o < o1; o++) acc[o - o0] += d[o];
        }
        for (int o = o0; o < o1; o++) dbias[o] += (real)acc[o - o0];
    }
}

/* ---- embedding -------------------------------------------------------- */

void embedding_forward(real *out, const int *tokens, const real *wte,
                       const real *wpe, int B, int T, int C)
{
    /* out (B,T,C), tokens (B,T), wte (V,C), wpe (maxT,C) or NULL */
#pragma omp parallel for if ((size_t)B * T * C >= PAR_MIN)
    for (int bt = 0; bt < B * T; bt++) {
        const real *e = wte + (size_t)tokens[bt] * C;
        real *o = out + (size_t)bt * C;
        if (wpe) {
            const real *p = wpe + (size_t)(bt % T) * C;
            for (int c = 0; c < C; c++) o[c] = e[c] + p[c];
        } else {
            memcpy(o, e, (size_t)C * sizeof *o);
        }
    }
}

void embedding_backward(real *dwte, real *dwpe, const real *dout,
                        const int *tokens, int B, int T, int C, int V)
{
    (void)V; /* the rows are the tokens' */
    /* dwte (V,C), dwpe (maxT,C) or NULL, dout (B,T,C), tokens (B,T).
     * Tokens repeat, so dwte is owned by column blocks, not by rows. */
#pragma omp parallel for if ((size_t)B * T * C >= PAR_MIN)
    for (int c0 = 0; c0 < C; c0 += COL_BLOCK) {
        int c1 = min_int(C, c0 + COL_BLOCK);
        for (int bt = 0; bt < B * T; bt++) {
            real *d = dwte + (size_t)tokens[bt] * C;
            const real *g = dout + (size_t)bt * C;
            for (int c = c0; c < c1; c++) d[c] += g[c];
        }
    }
    if (!dwpe) return;
#pragma omp parallel for if ((size_t)B * T * C >= PAR_MIN)
    for (int t = 0; t < T; t++) {
        real *d = dwpe + (size_t)t * C;
        for (int b = 0; b < B; b++) {
            const real *g = dout + ((size_t)b * T + t) * C;
            for (int c = 0; c < C; c++) d[c] += g[c];
        }
    }
}

/* ---- rmsnorm and l2norm ---------------------------------------------- */

void rmsnorm_forward(real *out, real *rstd, const real *inp, const real *weight,
                     int N, int C)
{
    /* out (N,C), rstd (N), inp (N,C), weight (C) */
#pragma omp parallel for if ((size_t)N * C >= PAR_MIN)
    for (int n = 0; n < N; n++) {
        const real *x = inp + (size_t)n * C;
        real *o = out + (size_t)n * C;
        double ss = 0;
        for (int c = 0; c < C; c++) ss += (double)x[c] * x[c];
        real r = (real)(1.0 / sqrt(ss / C + 1e-6));
        rstd[n] = r;
        for (int c = 0; c < C; c++) o[c] = x[c] * r * weight[c];
    }
}

void rmsnorm_backward(real *dinp, real *dweight, const real *dout,
                      const real *inp, const real *weight, const real *rstd,
                      int N, int C)
{
    /* dinp (N,C), dweight (C), dout (N,C), inp (N,C), weight (C), rstd (N).
     * dx = r w dy - r^3 x (sum_c dy w x) / C */
#pragma omp parallel for if ((size_t)N * C >= PAR_MIN)
    for (int n = 0; n < N; n++) {
        const real *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
        real *dx = dinp + (size_t)n * C;
        double dot = 0;
        for (int c = 0; c < C; c++) dot += (double)dy[c] * weight[c] * x[c];
        real r = rstd[n];
        real k = (real)((double)r * r * r * dot / C);
        for (int c = 0; c < C; c++) dx[c] += r * weight[c] * dy[c] - k * x[c];
    }
#pragma omp parallel for if ((size_t)N * C >= PAR_MIN)
    for (int c0 = 0; c0 < C; c0 += COL_BLOCK) {
        int c1 = min_int(C, c0 + COL_BLOCK);
        double acc[COL_BLOCK] = {0};
        for (int n = 0; n < N; n++) {
            const real *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
            for (int c = c0; c < c1; c++) acc[c - c0] += (double)dy[c] * x[c] * rstd[n];
        }
        for (int c = c0; c < c1; c++) dweight[c] += (real)acc[c - c0];
    }
}

void l2norm_forward(real *out, real *rnorm, const real *inp, int N, int C)
{
    /* out (N,C), rnorm (N), inp (N,C) */
#pragma omp parallel for if ((size_t)N * C >= PAR_MIN)
    for (int n = 0; n < N; n++) {
        const real *x = inp + (size_t)n * C;
        real *o = out + (size_t)n * C;
        double ss = 0;
        for (int c = 0; c < C; c++) ss += (double)x[c] * x[c];
        real r = (real)(1.0 / sqrt(ss + 1e-6));
        rnorm[n] = r;
        for (int c = 0; c < C; c++) o[c] = x[c] * r;
    }
}

void l2norm_backward(real *dinp, const real *dout, const real *inp,
                     const real *rnorm, int N, int C)
{
    /* dinp (N,C), dout (N,C), inp (N,C), rnorm (N).
     * dx = r dy - r^3 x (sum_c dy x) */
#pragma omp parallel for if ((size_t)N * C >= PAR_MIN)
    for (int n = 0; n < N; n++) {
        const real *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
        real *dx = dinp + (size_t)n * C;
        double dot = 0;
        for (int c = 0; c < C; c++) dot += (double)dy[c] * x[c];
        real r = rnorm[n];
        real k = (real)((double)r * r * r * dot);
        for (int c = 0; c < C; c++) dx[c] += r * dy[c] - k * x[c];
    }
}

/* ---- pointwise activations ------------------------------------------- */

/* fast_math's sigmoid: vectorisable in the float build (libm's expf is a
 * scalar call, and was 5-10% of a training step), libm's in the double one. */
static inline real sigmoid(real x) { return fm_sigmoid(x); }

/* derivative of silu(x) = x s(x) */
static inline real silu_slope(real x)
{
    real s = sigmoid(x);
    return s * (1 + x * (1 - s));
}

/* GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
static const real GELU_K0 = (real)0.7978845608028654, GELU_K1 = (real)0.044715;

static inline real act_value(real x, act_kind kind)
{
    switch (kind) {
    case ACT_IDENTITY: return x;
    case ACT_SIGMOID: return sigmoid(x);
    case ACT_SIGMOID2: return 2 * sigmoid(x);
    case ACT_SILU: return x * sigmoid(x);
    case ACT_GELU: return (real)0.5 * x * (1 + fm_tanh(GELU_K0 * (x + GELU_K1 * x * x * x)));
    case ACT_ELU1: return x > 0 ? x + 1 : fm_exp(x);
    case ACT_RELU:
    default: assert(kind == ACT_RELU); return x > 0 ? x : 0;
    }
}

static inline real act_slope(real x, act_kind kind)
{
    switch (kind) {
    case ACT_IDENTITY: return 1;
    case ACT_SIGMOID: { real s = sigmoid(x); return s * (1 - s); }
    case ACT_SIGMOID2: { real s = sigmoid(x); return 2 * s * (1 - s); }
    case ACT_SILU: return silu_slope(x);
    case ACT_GELU: {
        real th = fm_tanh(GELU_K0 * (x + GELU_K1 * x * x * x));
        return (real)0.5 * (1 + th) +
               (real)0.5 * x * (1 - th * th) * GELU_K0 * (1 + 3 * GELU_K1 * x * x);
    }
    case ACT_ELU1: return x > 0 ? 1 : fm_exp(x);
    case ACT_RELU:
    default: assert(kind == ACT_RELU); return x > 0 ? 1 : 0;
    }
}

/* a parallel loop over n elements, vectorised in the float build (see FM_SIMD) */
#define PRAGMA(x) _Pragma(#x)
#ifdef SB_DOUBLE
#define PAR_SIMD_N PRAGMA(omp parallel for if (n >= PAR_MIN))
#else
#define PAR_SIMD_N PRAGMA(omp parallel for simd if (n >= PAR_MIN))
#endif

/* The loops are instantiated per kind (the switch hoisted out of them) so
 * that each vectorises. */
void act_forward(real *out, const real *inp, size_t n, act_kind kind)
{
    /* out (n), inp (n); out may equal inp */
    switch (kind) {
#define ACT_FORWARD_CASE(K)                                               \
    case K:                                                               \
        PAR_SIMD_N                \
        for (size_t i = 0; i < n; i++) out[i] = act_value(inp[i], K);     \
        break;
    ACT_FORWARD_CASE(ACT_SIGMOID)
    ACT_FORWARD_CASE(ACT_SIGMOID2)
    ACT_FORWARD_CASE(ACT_SILU)
    ACT_FORWARD_CASE(ACT_GELU)
    ACT_FORWARD_CASE(ACT_ELU1)
    ACT_FORWARD_CASE(ACT_RELU)
#undef ACT_FORWARD_CASE
    case ACT_IDENTITY:
    default:
        assert(kind == ACT_IDENTITY);
        if (out != inp) {
#pragma omp parallel for if (n >= PAR_MIN)
            for (size_t i0 = 0; i0 < n; i0 += PAR_MIN)
                memcpy(out + i0, inp + i0, (n - i0 < PAR_MIN ? n - i0 : PAR_MIN) * sizeof *out);
        }
        break;
    }
}

void act_backward(real *dinp, const real *dout, const real *inp, size_t n,
                  act_kind kind)
{
    /* dinp (n), dout (n), inp (n) */
    switch (kind) {
#define ACT_BACKWARD_CASE(K)                                                        \
    case K:                                                                         \
        PAR_SIMD_N                          \
        for (size_t i = 0; i < n; i++) dinp[i] += act_slope(inp[i], K) * dout[i];   \
        break;
    ACT_BACKWARD_CASE(ACT_IDENTITY)
    ACT_BACKWARD_CASE(ACT_SIGMOID)
    ACT_BACKWARD_CASE(ACT_SIGMOID2)
    ACT_BACKWARD_CASE(ACT_SILU)
    ACT_BACKWARD_CASE(ACT_GELU)
    ACT_BACKWARD_CASE(ACT_ELU1)
    ACT_BACKWARD_CASE(ACT_RELU)
#undef ACT_BACKWARD_CASE
    default: assert(0);
    }
}

void swiglu_forward(real *out, const real *inp, int N, int H)
{
    /* out (N,H), inp (N,2H) = [gate | up] per row */
#pragma omp parallel for if ((size_t)N * H >= PAR_MIN)
    for (int n = 0; n < N; n++) {
        const real *restrict gate = inp + (size_t)n * 2 * H, *restrict up = gate + H;
        real *restrict o = out + (size_t)n * H;
        FM_SIMD
        for (int j = 0; j < H; j++) o[j] = gate[j] * sigmoid(gate[j]) * up[j];
    }
}

void swiglu_backward(real *dinp, const real *dout, const real *inp, int N, int H)
{
    /* dinp (N,2H), dout (N,H), inp (N,2H) */
#pragma omp parallel for if ((size_t)N * H >= PAR_MIN)
    for (int n = 0; n < N; n++) {
        const real *restrict gate = inp + (size_t)n * 2 * H, *restrict up = gate + H;
        const real *restrict dy = dout + (size_t)n * H;
        real *restrict dgate = dinp + (size_t)n * 2 * H, *restrict dup = dgate + H;
        FM_SIMD
        for (int j = 0; j < H; j++) {
            const real s = sigmoid(gate[j]);
            dgate[j] += dy[j] * up[j] * s * (1 + gate[j] * (1 - s));
            dup[j] += dy[j] * gate[j] * s;
        }
    }
}

/* ---- conv4 + silu ----------------------------------------------------- */

/* Channel block of conv4: the taps of a block are transposed into a
 * (4, CONV_BLOCK) array on the stack so that the loops over channels
 * vectorise (w itself is (C,4)). */
#define CONV_BLOCK 64

void conv4_silu_forward(real *out, real *pre, const real *inp, const real *w,
                        int B, int T, int C)
{
    /* out, pre, inp (B,T,C), w (C,4); taps j read inp at t-3+j. One task
     * per (sequence, channel block) runs through all steps; each pre is
     * summed over j = 0..3 in order, as the reference does. */
    const int blocks = (C + CONV_BLOCK - 1) / CONV_BLOCK;
#pragma omp parallel for if ((size_t)B * T * C >= PAR_MIN)
    for (int task = 0; task < B * blocks; task++) {
        const int b = task / blocks, c0 = task % blocks * CONV_BLOCK;
        const int nc = min_int(CONV_BLOCK, C - c0);
        real wt[4][CONV_BLOCK];
        for (int c = 0; c < nc; c++)
            for (int j = 0; j < 4; j++) wt[j][c] = w[(size_t)(c0 + c) * 4 + j];
        for (int t = 0; t < T; t++) {
            const size_t row = ((size_t)b * T + t) * C + c0;
            real acc[CONV_BLOCK] = {0};
            for (int j = t < 3 ? 3 - t : 0; j < 4; j++) {
                const real *restrict x = inp + row - (size_t)(3 - j) * C;
                FM_SIMD
                for (int c = 0; c < nc; c++) acc[c] += wt[j][c] * x[c];
            }
            real *restrict p = pre + row, *restrict o = out + row;
            FM_SIMD
            for (int c = 0; c < nc; c++) {
                p[c] = acc[c];
                o[c] = acc[c] * sigmoid(acc[c]);
            }
        }
    }
}

void conv4_silu_backward(real *dinp, real *dw, const real *dout,
                         const real *inp, const real *pre, const real *w,
                         int B, int T, int C)
{
    /* dinp (B,T,C), dw (C,4), dout, inp, pre (B,T,C), w (C,4).
     * Column blocks own both dinp and dw of their channels: one pass, no
     * conflicts, and a summation order independent of the thread count. */
#pragma omp parallel for if ((size_t)B * T * C >= PAR_MIN)
    for (int c0 = 0; c0 < C; c0 += COL_BLOCK) {
        const int nc = min_int(COL_BLOCK, C - c0);
        double acc[4][COL_BLOCK] = {{0}};
        real wt[4][COL_BLOCK];
        for (int c = 0; c < nc; c++)
            for (int j = 0; j < 4; j++) wt[j][c] = w[(size_t)(c0 + c) * 4 + j];
        for (int b = 0; b < B; b++) {
            for (int t = 0; t < T; t++) {
                const size_t row = ((size_t)b * T + t) * C + c0;
                real dpre[COL_BLOCK];
                FM_SIMD
                for (int c = 0; c < nc; c++) dpre[c] = dout[row + c] * silu_slope(pre[row + c]);
                for (int j = t < 3 ? 3 - t : 0; j < 4; j++) {
                    const size_t src = row - (size_t)(3 - j) * C;
                    real *restrict dx = dinp + src;
                    const real *restrict x = inp + src;
                    FM_SIMD
                    for (int c = 0; c < nc; c++) {
                        dx[c] += wt[j][c] * dpre[c];
                        acc[j][c] += (double)dpre[c] * x[c];
                    }
                }
            }
        }
        for (int c = 0; c < nc; c++)
            for (int j = 0; j < 4; j++) dw[(size_t)(c0 + c) * 4 + j] += (real)acc[j][c];
    }
}

/* ---- elementwise helpers ---------------------------------------------- */

void residual_add(real *h, const real *x, size_t n)
{
    /* h (n), x (n) */
#pragma omp parallel for if (n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) h[i] += x[i];
}

void scale_inplace(real *x, size_t n, real s)
{
    /* x (n); s == 0 writes exact zeros, so a buffer holding NaN or inf
     * (a skipped non-finite step) is cleared too */
    if (s == 0) {
        memset(x, 0, n * sizeof *x);
        return;
    }
#pragma omp parallel for if (n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) x[i] *= s;
}

double sum_squares(const real *x, size_t n)
{
    /* x (n). A fixed number of fixed-size chunks (not one per thread) keeps
     * the summation order, hence the result, independent of the threads. */
    enum { CHUNKS = 64 };
    double part[CHUNKS];
    size_t chunk = (n + CHUNKS - 1) / CHUNKS;
#pragma omp parallel for if (n >= PAR_MIN)
    for (int i = 0; i < CHUNKS; i++) {
        size_t lo = (size_t)i * chunk, hi = lo + chunk;
        if (lo > n) lo = n;
        if (hi > n) hi = n;
        double s = 0;
        for (size_t j = lo; j < hi; j++) s += (double)x[j] * x[j];
        part[i] = s;
    }
    double total = 0;
    for (int i = 0; i < CHUNKS; i++) total += part[i];
    return total;
}

void rowdiv_forward(real *out, const real *num, const real *den, int N, int C,
                    real eps)
{
    /* out (N,C), num (N,C), den (N) */
#pragma omp parallel for if ((size_t)N * C >= PAR_MIN)
    for (int n = 0; n < N; n++) {
        real inv = 1 / (den[n] + eps);
        for (int c = 0; c < C; c++) out[(size_t)n * C + c] = num[(size_t)n * C + c] * inv;
    }
}

void rowdiv_backward(real *dnum, real *dden, const real *dout, const real *num,
                     const real *den, int N, int C, real eps)
{
    /* dnum (N,C), dden (N), dout (N,C), num (N,C), den (N) */
#pragma omp parallel for if ((size_t)N * C >= PAR_MIN)
    for (int n = 0; n < N; n++) {
        real inv = 1 / (den[n] + eps);
        double dot = 0;
        for (int c = 0; c < C; c++) {
            size_t i = (size_t)n * C + c;
            dnum[i] += dout[i] * inv;
            dot += (double)dout[i] * num[i];
        }
        dden[n] -= (real)(dot * inv * inv);
    }
}

/* ---- loss and optimiser ---------------------------------------------- */

int crossentropy_forward(real *losses, real *probs, const real *logits,
                         const int *targets, int N, int V)
{
    /* losses (N), probs (N,V), logits (N,V), targets (N). probs are filled
     * at every row (predictions need them); losses only at scored rows. */
    int count = 0;
#pragma omp parallel for reduction(+ : count) if ((size_t)N * V >= PAR_MIN)
    for (int n = 0; n < N; n++) {
        const real *z = logits + (size_t)n * V;
        real *p = probs + (size_t)n * V;
        real mx = z[0];
        for (int i = 1; i < V; i++) mx = z[i] > mx ? z[i] : mx;
        double sum = 0;
        for (int i = 0; i < V; i++) {
            p[i] = exp(z[i] - mx);
            sum += p[i];
        }
        real inv = (real)(1 / sum);
        for (int i = 0; i < V; i++) p[i] *= inv;
        int tgt = targets[n];
        assert(tgt < V);
        if (tgt >= 0) {
            /* log-sum-exp minus the target logit, not -log(p): exact for p -> 0 */
            losses[n] = (real)(log(sum) - (double)(z[tgt] - mx));
            count++;
        } else {
            losses[n] = 0;
        }
    }
    return count;
}

void crossentropy_backward(real *dlogits, const real *probs, const int *targets,
                           int N, int V, real dloss)
{
    /* dlogits (N,V), probs (N,V), targets (N) */
#pragma omp parallel for if ((size_t)N * V >= PAR_MIN)
    for (int n = 0; n < N; n++) {
        int tgt = targets[n];
        if (tgt < 0) continue;
        const real *p = probs + (size_t)n * V;
        real *d = dlogits + (size_t)n * V;
        for (int i = 0; i < V; i++) d[i] += (p[i] - (i == tgt)) * dloss;
    }
}

void adamw_update(real *p, const real *g, real *m, real *v, size_t n, real lr,
                  real beta1, real beta2, real eps, real weight_decay, int t)
{
    /* p, g, m, v (n) */
    real bc1 = (real)(1 - pow((double)beta1, t));
    real bc2 = (real)(1 - pow((double)beta2, t));
#pragma omp parallel for if (n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        m[i] = beta1 * m[i] + (1 - beta1) * g[i];
        v[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i];
        real mhat = m[i] / bc1, vhat = v[i] / bc2;
        p[i] -= lr * (mhat / (sqrt(vhat) + eps) + weight_decay * p[i]);
    }
}
