/* test_dense_float.c: float dense and attention ops against double formulas, and thread-count (in)dependence. */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/ops.h"
#include "support.h"

/* Every tolerance below is a multiple of the float unit roundoff
 * EPS = FLT_EPSILON = 2^-23 (twice the rounding error of one operation),
 * argued next to the check that uses it. */
#define EPS ((double)FLT_EPSILON)

static real *tensor(size_t n, double lo, double hi, uint64_t seed)
{
    real *x = malloc((n ? n : 1) * sizeof *x);
    cr_assert(x != NULL);
    fill_uniform(x, n, lo, hi, seed);
    return x;
}

static real *zeros(size_t n)
{
    real *x = calloc(n ? n : 1, sizeof *x);
    cr_assert(x != NULL);
    return x;
}

/* |got[i] - want[i]| <= bound[i] everywhere; prints the first mismatches */
static void expect_within(const char *what, const real *got, const double *want,
                          const double *bound, size_t n)
{
    int bad = 0;
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double err = fabs((double)got[i] - want[i]);
        if (!(err <= worst)) worst = err;
        if (!(err <= bound[i])) {
            if (bad < 5)
                fprintf(stderr, "%s: [%zu] got %.9g want %.9g (bound %.3g)\n", what, i,
                        (double)got[i], want[i], bound[i]);
            bad++;
        }
    }
    cr_expect(bad == 0, "%s: %d elements outside the bound, max abs error %.3g", what, bad,
              worst);
}

static void expect_identical(const char *what, const real *a, const real *b, size_t n)
{
    cr_expect(memcmp(a, b, n * sizeof *a) == 0,
              "%s: results differ between 1 and 2 threads (max diff %.3g)", what,
              max_abs_diff(a, b, n));
}

/* ---- float against double ---------------------------------------------- */

/* A dot product of K float terms (plus one bias) carries at most
 * gamma_{K+1} = (K+1) u / (1 - (K+1) u) relative error of sum |terms|
 * (Higham, Accuracy and Stability, 3.1), u = EPS/2; (K+1) EPS is above that
 * for any summation order or FMA use the BLAS picks. */
Test(dense_float, matmul_33x65x17_within_dot_product_bound)
{
    const int N = 33, C = 65, OC = 17;
    const uint64_t seed = 2000;
    real *inp = tensor((size_t)N * C, -1, 1, seed), *w = tensor((size_t)OC * C, -1, 1, seed + 1);
    real *b = tensor(OC, -1, 1, seed + 2), *dout = tensor((size_t)N * OC, -1, 1, seed + 3);
    real *out = zeros((size_t)N * OC);
    real *dinp = zeros((size_t)N * C), *dw = zeros((size_t)OC * C), *db = zeros(OC);
    size_t most = (size_t)OC * C > (size_t)N * C ? (size_t)OC * C : (size_t)N * C;
    double *want = malloc(most * sizeof *want), *bound = malloc(most * sizeof *bound);
    cr_assert(want && bound);

    matmul_forward(out, inp, w, b, N, C, OC);
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double acc = b[o], mag = fabs((double)b[o]);
            for (int c = 0; c < C; c++) {
                double term = (double)inp[(size_t)n * C + c] * w[(size_t)o * C + c];
                acc += term;
                mag += fabs(term);
            }
            want[(size_t)n * OC + o] = acc;
            bound[(size_t)n * OC + o] = (C + 1) * EPS * mag;
        }
    expect_within("matmul out (seed 2000)", out, want, bound, (size_t)N * OC);

    matmul_backward(dinp, dw, db, dout, inp, w, N, C, OC);
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            double acc = 0, mag = 0;
            for (int o = 0; o < OC; o++) {
                double term = (double)dout[(size_t)n * OC + o] * w[(size_t)o * C + c];
                acc += term;
                mag += fabs(term);
            }
            want[(size_t)n * C + c] = acc;
            bound[(size_t)n * C + c] = (OC + 1) * EPS * mag;
        }
    expect_within("matmul dinp (seed 2000)", dinp, want, bound, (size_t)N * C);
    for (int o = 0; o < OC; o++)
        for (int c = 0; c < C; c++) {
            double acc = 0, mag = 0;
            for (int n = 0; n < N; n++) {
                double term = (double)dout[(size_t)n * OC + o] * inp[(size_t)n * C + c];
                acc += term;
                mag += fabs(term);
            }
            want[(size_t)o * C + c] = acc;
            bound[(size_t)o * C + c] = (N + 1) * EPS * mag;
        }
    expect_within("matmul dweight (seed 2000)", dw, want, bound, (size_t)OC * C);
    for (int o = 0; o < OC; o++) {
        double acc = 0, mag = 0;
        for (int n = 0; n < N; n++) {
            acc += dout[(size_t)n * OC + o];
            mag += fabs((double)dout[(size_t)n * OC + o]);
        }
        want[o] = acc;
        bound[o] = (N + 1) * EPS * mag;
    }
    expect_within("matmul dbias (seed 2000)", db, want, bound, OC);
    free(inp), free(w), free(b), free(dout), free(out), free(dinp), free(dw), free(db);
    free(want), free(bound);
}

static double act_value_ref(double x, act_kind kind)
{
    double s = 1 / (1 + exp(-x));
    switch (kind) {
    case ACT_IDENTITY: return x;
    case ACT_SIGMOID: return s;
    case ACT_SIGMOID2: return 2 * s;
    case ACT_SILU: return x * s;
    case ACT_GELU: return 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
    case ACT_ELU1: return x > 0 ? x + 1 : exp(x);
    case ACT_RELU: return x > 0 ? x : 0;
    }
    cr_assert_fail("unknown act_kind %d", (int)kind);
    return 0;
}

static double act_slope_ref(double x, act_kind kind)
{
    double s = 1 / (1 + exp(-x));
    double k0 = sqrt(2 / M_PI), th = tanh(k0 * (x + 0.044715 * x * x * x));
    switch (kind) {
    case ACT_IDENTITY: return 1;
    case ACT_SIGMOID: return s * (1 - s);
    case ACT_SIGMOID2: return 2 * s * (1 - s);
    case ACT_SILU: return s * (1 + x * (1 - s));
    case ACT_GELU: return 0.5 * (1 + th) + 0.5 * x * (1 - th * th) * k0 * (1 + 3 * 0.044715 * x * x);
    case ACT_ELU1: return x > 0 ? 1 : exp(x);
    case ACT_RELU: return x > 0 ? 1 : 0;
    }
    cr_assert_fail("unknown act_kind %d", (int)kind);
    return 0;
}

/* Each formula is at most a dozen float roundings (EPS/2 each) and one libm
 * call (expf, tanhf: under 2 ulp); the GELU slope's 1 - tanh^2 cancels, which
 * turns a few EPS in tanh into an absolute error times |0.5 x k0 (1 + 3 k1 x^2)|
 * <= 5 on [-4,4]. 32 EPS (1 + |ref|) covers that with a margin of about 2. */
Test(dense_float, activations_within_32_eps)
{
    const size_t n = 4001;
    real *x = tensor(n, -4, 4, 2100), *out = zeros(n), *dinp = zeros(n), *ones = zeros(n);
    double *want = malloc(n * sizeof *want), *bound = malloc(n * sizeof *bound);
    cr_assert(want && bound);
    for (size_t i = 0; i < n; i++) ones[i] = 1;
    for (int kind = ACT_IDENTITY; kind <= ACT_RELU; kind++) {
        char what[64];
        act_forward(out, x, n, (act_kind)kind);
        for (size_t i = 0; i < n; i++) {
            want[i] = act_value_ref(x[i], (act_kind)kind);
            bound[i] = 32 * EPS * (1 + fabs(want[i]));
        }
        snprintf(what, sizeof what, "act %d forward (seed 2100)", kind);
        expect_within(what, out, want, bound, n);

        memset(dinp, 0, n * sizeof *dinp);
        act_backward(dinp, ones, x, n, (act_kind)kind);
        for (size_t i = 0; i < n; i++) {
            want[i] = act_slope_ref(x[i], (act_kind)kind);
            bound[i] = 32 * EPS * (1 + fabs(want[i]));
        }
        snprintf(what, sizeof what, "act %d slope (seed 2100)", kind);
        expect_within(what, dinp, want, bound, n);
    }
    free(x), free(out), free(dinp), free(ones), free(want), free(bound);
}

/* out = x * rstd * w: rstd is computed in double and rounded once to float,
 * then two float products: 3 roundings of EPS/2, so 1.5 EPS relative; 4 EPS
 * leaves a margin. */
Test(dense_float, rmsnorm_within_4_eps)
{
    const int N = 7, C = 133;
    const size_t n = (size_t)N * C;
    real *x = tensor(n, -2, 2, 2200), *w = tensor(C, 0.5, 1.5, 2201);
    real *out = zeros(n), *rstd = zeros(N);
    double *want = malloc(n * sizeof *want), *bound = malloc(n * sizeof *bound);
    cr_assert(want && bound);
    rmsnorm_forward(out, rstd, x, w, N, C);
    for (int r = 0; r < N; r++) {
        double ss = 0;
        for (int c = 0; c < C; c++) ss += (double)x[(size_t)r * C + c] * x[(size_t)r * C + c];
        double scale = 1 / sqrt(ss / C + 1e-6);
        for (int c = 0; c < C; c++) {
            size_t i = (size_t)r * C + c;
            want[i] = x[i] * scale * w[c];
            bound[i] = 4 * EPS * fabs(want[i]);
        }
    }
    expect_within("rmsnorm out (seed 2200)", out, want, bound, n);
    free(x), free(w), free(out), free(rstd), free(want), free(bound);
}

/* Logits in [-3,3]: z - max rounds with absolute error <= EPS/2 |z - max|
 * <= 3 EPS, which exp turns into 3 EPS relative; expf (1 ulp), the rounded
 * reciprocal of the double sum and the product add <= 2 EPS: probs within
 * 5 EPS relative. The loss, log(sum) (taken in double) minus z_t - max,
 * collects <= 4 EPS from the sum and 3 EPS from z_t - max. Bounds: 8 EPS. */
Test(dense_float, crossentropy_within_8_eps)
{
    const int N = 11, V = 29;
    const size_t n = (size_t)N * V;
    real *z = tensor(n, -3, 3, 2300), *probs = zeros(n), *losses = zeros(N);
    int targets[11];
    for (int i = 0; i < N; i++) targets[i] = i == 5 ? -1 : (i * 7) % V;
    double want_loss[11], bound_loss[11];
    double *want = malloc(n * sizeof *want), *bound = malloc(n * sizeof *bound);
    cr_assert(want && bound);
    int count = crossentropy_forward(losses, probs, z, targets, N, V);
    cr_expect(count == N - 1, "count %d, want %d", count, N - 1);
    for (int r = 0; r < N; r++) {
        const real *zr = z + (size_t)r * V;
        double mx = zr[0], se = 0;
        for (int v = 1; v < V; v++) mx = fmax(mx, zr[v]);
        for (int v = 0; v < V; v++) se += exp(zr[v] - mx);
        for (int v = 0; v < V; v++) {
            want[(size_t)r * V + v] = exp(zr[v] - mx) / se;
            bound[(size_t)r * V + v] = 8 * EPS * want[(size_t)r * V + v];
        }
        want_loss[r] = targets[r] < 0 ? 0 : log(se) + mx - zr[targets[r]];
        bound_loss[r] = 8 * EPS * (1 + fabs(want_loss[r]));
    }
    expect_within("crossentropy probs (seed 2300)", probs, want, bound, n);
    expect_within("crossentropy losses (seed 2300)", losses, want_loss, bound_loss, N);
    free(z), free(probs), free(losses), free(want), free(bound);
}

/* q, k in [-2,2], D = 8: a score is 8 products of size <= 4 scaled by
 * 8^-1/2, so its float error is <= (D+1) EPS/2 * 32 / sqrt(8) ~ 6e-6. Score
 * errors move each p_j by at most twice that, relatively, so out = sum_j p_j
 * v_j (|v| <= 1) moves by <= 1.2e-5, and its own summation adds
 * T EPS/2 ~ 2e-6. Bound: 4e-5 absolute, the worst case with a margin. */
Test(dense_float, attention_within_score_bound)
{
    const int B = 2, T = 37, H = 2, D = 8;
    const size_t n = (size_t)B * T * H * D;
    real *q = tensor(n, -2, 2, 2400), *k = tensor(n, -2, 2, 2401), *v = tensor(n, -1, 1, 2402);
    real *out = zeros(n), *att = zeros((size_t)B * H * T * T);
    double *want = calloc(n, sizeof *want), *bound = malloc(n * sizeof *bound);
    double score[37];
    cr_assert(want && bound);
    attention_forward(out, att, q, k, v, B, T, H, D);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < T; t++) {
                size_t qi = (((size_t)b * T + t) * H + h) * D;
                double mx = -INFINITY, se = 0;
                for (int j = 0; j <= t; j++) {
                    size_t kj = (((size_t)b * T + j) * H + h) * D;
                    double s = 0;
                    for (int d = 0; d < D; d++) s += (double)q[qi + d] * k[kj + d];
                    score[j] = s / sqrt((double)D);
                    mx = fmax(mx, score[j]);
                }
                for (int j = 0; j <= t; j++) se += exp(score[j] - mx);
                for (int j = 0; j <= t; j++) {
                    size_t vj = (((size_t)b * T + j) * H + h) * D;
                    for (int d = 0; d < D; d++) want[qi + d] += exp(score[j] - mx) / se * v[vj + d];
                }
            }
    for (size_t i = 0; i < n; i++) bound[i] = 4e-5;
    expect_within("attention out (seed 2400)", out, want, bound, n);
    free(q), free(k), free(v), free(out), free(att), free(want), free(bound);
}

/* One step from m = v = 0: mhat = g and vhat = g^2 up to ~3 roundings each
 * (the float beta enters numerator and bias correction alike), so the ratio
 * mhat / (sqrt(vhat) + eps) is within ~6 EPS of the double one; times lr and
 * subtracted from p, plus the final rounding: EPS (|p| + lr) + 8 lr EPS. */
Test(dense_float, adamw_step_within_bound)
{
    const size_t n = 101;
    real *p = tensor(n, -1, 1, 2500), *g = tensor(n, -1, 1, 2501);
    real *m = zeros(n), *v = zeros(n);
    double *want = malloc(n * sizeof *want), *bound = malloc(n * sizeof *bound);
    cr_assert(want && bound);
    const double lr = 1e-2, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.01;
    for (size_t i = 0; i < n; i++) {
        double mhat = (1 - b1) * g[i] / (1 - b1), vhat = (1 - b2) * g[i] * g[i] / (1 - b2);
        want[i] = p[i] - lr * (mhat / (sqrt(vhat) + eps) + wd * p[i]);
        bound[i] = EPS * (fabs(want[i]) + lr) + lr * 8 * EPS;
    }
    adamw_update(p, g, m, v, n, (real)lr, (real)b1, (real)b2, (real)eps, (real)wd, 1);
    expect_within("adamw p (seed 2500)", p, want, bound, n);
    free(p), free(g), free(m), free(v), free(want), free(bound);
}

/* ---- threads ------------------------------------------------------------ */

Test(dense_float, thread_count_is_set_and_blas_is_named)
{
    ops_set_threads(1);
    cr_expect(ops_get_threads() == 1, "ops_get_threads() %d after ops_set_threads(1)",
              ops_get_threads());
    ops_set_threads(2);
    cr_expect(ops_get_threads() == 2, "ops_get_threads() %d after ops_set_threads(2)",
              ops_get_threads());
    const char *info = ops_blas_info();
    cr_expect(strncmp(info, "OpenBLAS ", 9) == 0, "ops_blas_info() is \"%s\"", info);
}

/* Attention: each (b,h) head is computed by one thread in a fixed order and
 * the per-head gemms run single-threaded inside the OpenMP region, so 1 and 2
 * threads must agree bit for bit. */
Test(dense_float, attention_identical_for_1_and_2_threads)
{
    const int B = 2, T = 97, H = 3, D = 16;
    const size_t n = (size_t)B * T * H * D, na = (size_t)B * H * T * T;
    const size_t ns = attention_scratch_len(B, T, H);
    real *q = tensor(n, -2, 2, 2600), *k = tensor(n, -2, 2, 2601), *v = tensor(n, -1, 1, 2602);
    real *dout = tensor(n, -1, 1, 2603), *scratch = zeros(ns);
    real *out[2], *att[2], *dq[2], *dk[2], *dv[2];
    for (int r = 0; r < 2; r++) {
        out[r] = zeros(n), att[r] = zeros(na), dq[r] = zeros(n), dk[r] = zeros(n), dv[r] = zeros(n);
        ops_set_threads(r + 1);
        attention_forward(out[r], att[r], q, k, v, B, T, H, D);
        attention_backward(dq[r], dk[r], dv[r], scratch, dout, att[r], q, k, v, B, T, H, D);
    }
    expect_identical("attention out", out[0], out[1], n);
    expect_identical("attention att", att[0], att[1], na);
    expect_identical("attention dq", dq[0], dq[1], n);
    expect_identical("attention dk", dk[0], dk[1], n);
    expect_identical("attention dv", dv[0], dv[1], n);
    for (int r = 0; r < 2; r++) free(out[r]), free(att[r]), free(dq[r]), free(dk[r]), free(dv[r]);
    free(q), free(k), free(v), free(dout), free(scratch);
}

/* The loop ops give every output element to one thread (rows, or column
 * blocks for the reductions over rows; sum_squares sums fixed chunks), so
 * they too agree bit for bit. Sizes pass the OpenMP threshold. */
Test(dense_float, loop_ops_identical_for_1_and_2_threads)
{
    const int B = 4, T = 129, C = 67;
    const size_t n = (size_t)B * T * C, nw = (size_t)C * 4;
    real *x = tensor(n, -2, 2, 2700), *dout = tensor(n, -1, 1, 2701);
    real *w = tensor(nw, -1, 1, 2702), *wn = tensor(C, 0.5, 1.5, 2703);
    real *norm[2], *rstd[2], *dnorm[2], *dwn[2], *conv[2], *pre[2], *dconv[2], *dw[2];
    double ss[2];
    for (int r = 0; r < 2; r++) {
        norm[r] = zeros(n), rstd[r] = zeros((size_t)B * T), dnorm[r] = zeros(n), dwn[r] = zeros(C);
        conv[r] = zeros(n), pre[r] = zeros(n), dconv[r] = zeros(n), dw[r] = zeros(nw);
        ops_set_threads(r + 1);
        rmsnorm_forward(norm[r], rstd[r], x, wn, B * T, C);
        rmsnorm_backward(dnorm[r], dwn[r], dout, x, wn, rstd[r], B * T, C);
        conv4_silu_forward(conv[r], pre[r], x, w, B, T, C);
        conv4_silu_backward(dconv[r], dw[r], dout, x, pre[r], w, B, T, C);
        ss[r] = sum_squares(x, n);
    }
    expect_identical("rmsnorm out", norm[0], norm[1], n);
    expect_identical("rmsnorm dinp", dnorm[0], dnorm[1], n);
    expect_identical("rmsnorm dweight", dwn[0], dwn[1], C);
    expect_identical("conv4_silu out", conv[0], conv[1], n);
    expect_identical("conv4_silu dinp", dconv[0], dconv[1], n);
    expect_identical("conv4_silu dw", dw[0], dw[1], nw);
    cr_expect(ss[0] == ss[1], "sum_squares %.17g vs %.17g", ss[0], ss[1]);
    for (int r = 0; r < 2; r++) {
        free(norm[r]), free(rstd[r]), free(dnorm[r]), free(dwn[r]);
        free(conv[r]), free(pre[r]), free(dconv[r]), free(dw[r]);
    }
    free(x), free(dout), free(w), free(wn);
}

/* OpenBLAS does not promise that a gemm's result is independent of its
 * thread count, so matmul is only held to the dot-product bound of its
 * reduced dimension: both results are within (K+1) EPS sum |terms| of the exact
 * one, and sum |terms| <= K = C for entries in [-1,1]. */
Test(dense_float, matmul_close_for_1_and_2_threads)
{
    const int N = 301, C = 300, OC = 129;
    real *inp = tensor((size_t)N * C, -1, 1, 2800), *w = tensor((size_t)OC * C, -1, 1, 2801);
    real *out[2] = {zeros((size_t)N * OC), zeros((size_t)N * OC)};
    for (int r = 0; r < 2; r++) {
        ops_set_threads(r + 1);
        matmul_forward(out[r], inp, w, NULL, N, C, OC);
    }
    double diff = max_abs_diff(out[0], out[1], (size_t)N * OC);
    cr_expect(diff <= 2 * (C + 1) * EPS * C, "matmul 1 vs 2 threads differ by %.3g", diff);
    free(inp), free(w), free(out[0]), free(out[1]);
}

/* Scaling by 0 is how buffers are cleared (zero_reals): it must clear NaN
 * and inf left by a non-finite step, which x * 0 would keep. Other factors
 * multiply exactly. n crosses the parallel threshold. */
Test(dense_float, scale_by_zero_clears_nan_and_inf)
{
    const size_t n = 100003;
    real *x = malloc(n * sizeof *x);
    cr_assert(x);
    for (size_t i = 0; i < n; i++) x[i] = (i % 3 == 0) ? (real)NAN : (i % 3 == 1) ? (real)INFINITY : (real)i;
    scale_inplace(x, n, 0);
    size_t nonzero = 0;
    for (size_t i = 0; i < n; i++) nonzero += !(x[i] == 0 && !signbit(x[i]));
    cr_expect_eq(nonzero, 0, "%zu elements not +0 after scaling by 0", nonzero);
    for (size_t i = 0; i < n; i++) x[i] = (real)i;
    scale_inplace(x, n, (real)0.5);
    for (size_t i = 0; i < n; i++)
        if (x[i] != (real)i * (real)0.5) cr_assert_fail("x[%zu] = %g, want %g", i, (double)x[i], (double)i * 0.5);
    free(x);
}
