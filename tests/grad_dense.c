/* grad_dense.c: dense CPU ops against naive double loops, their backwards by finite differences. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/ops.h"
#include "support_pool.h"

/* ---- matmul ------------------------------------------------------------- */

typedef struct {
    real *out, *inp, *weight, *bias, *up;
    int N, C, OC;
} matmul_ctx;

static double matmul_objective(void *c)
{
    matmul_ctx *m = c;
    matmul_forward(m->out, m->inp, m->weight, m->bias, m->N, m->C, m->OC);
    return dot(m->out, m->up, (size_t)m->N * m->OC);
}

/* shapes with 1, primes, and one past both the column block and the OpenMP
 * threshold */
static const int MM_SHAPES[][3] = {{1, 1, 1}, {1, 5, 13}, {7, 1, 5}, {7, 13, 1},
                                   {7, 5, 13}, {2, 13, 7}, {701, 3, 37}};

Test(dense_cpu, matmul_forward_matches_loops)
{
    for (size_t s = 0; s < sizeof MM_SHAPES / sizeof MM_SHAPES[0]; s++) {
        for (int with_bias = 0; with_bias < 2; with_bias++) {
            int N = MM_SHAPES[s][0], C = MM_SHAPES[s][1], OC = MM_SHAPES[s][2];
            uint64_t seed = 100 + 10 * s + with_bias;
            pool p;
            pool_init(&p, "matmul N=%d C=%d OC=%d bias=%d seed=%llu", N, C, OC,
                      with_bias, (unsigned long long)seed);
            real *inp = uniform(&p, (size_t)N * C, -1, 1, seed);
            real *w = uniform(&p, (size_t)OC * C, -1, 1, seed + 1);
            real *b = with_bias ? uniform(&p, OC, -1, 1, seed + 2) : NULL;
            real *out = uniform(&p, (size_t)N * OC, -9, 9, seed + 3); /* overwritten */
            real *ref = zeros(&p, (size_t)N * OC);
            for (int n = 0; n < N; n++)
                for (int o = 0; o < OC; o++) {
                    double acc = b ? b[o] : 0;
                    for (int c = 0; c < C; c++)
                        acc += (double)inp[(size_t)n * C + c] * w[(size_t)o * C + c];
                    ref[(size_t)n * OC + o] = (real)acc;
                }
            matmul_forward(out, inp, w, b, N, C, OC);
            expect_close(&p, "out", out, ref, (size_t)N * OC, FWD_TOL);
            pool_free(&p);
        }
    }
}

Test(dense_cpu, matmul_gradients)
{
    for (size_t s = 0; s < sizeof MM_SHAPES / sizeof MM_SHAPES[0]; s++) {
        int N = MM_SHAPES[s][0], C = MM_SHAPES[s][1], OC = MM_SHAPES[s][2];
        size_t ni = (size_t)N * C, nw = (size_t)OC * C, no = (size_t)N * OC;
        uint64_t seed = 200 + 10 * s;
        pool p;
        pool_init(&p, "matmul N=%d C=%d OC=%d seed=%llu", N, C, OC,
                  (unsigned long long)seed);
        matmul_ctx m = {.inp = uniform(&p, ni, -1, 1, seed),
                        .weight = uniform(&p, nw, -1, 1, seed + 1),
                        .bias = uniform(&p, OC, -1, 1, seed + 2),
                        .up = uniform(&p, no, -1, 1, seed + 3),
                        .out = zeros(&p, no), .N = N, .C = C, .OC = OC};
        real *dinp = zeros(&p, ni), *dw = zeros(&p, nw), *db = zeros(&p, OC);
        matmul_backward(dinp, dw, db, m.up, m.inp, m.weight, N, C, OC);
        real *dinp1 = copy_of(&p, dinp, ni), *dw1 = copy_of(&p, dw, nw),
             *db1 = copy_of(&p, db, OC);
        matmul_backward(dinp, dw, db, m.up, m.inp, m.weight, N, C, OC);
        expect_doubled(&p, "dinp", dinp, dinp1, ni);
        expect_doubled(&p, "dweight", dw, dw1, nw);
        expect_doubled(&p, "dbias", db, db1, OC);

        /* dinp and dbias may be NULL; dweight is unchanged by leaving them out */
        real *dw_only = zeros(&p, nw);
        matmul_backward(NULL, dw_only, NULL, m.up, m.inp, m.weight, N, C, OC);
        expect_close(&p, "dweight without dinp, dbias", dw_only, dw1, nw, FWD_TOL);

        grad_check(&p, "inp", matmul_objective, &m, m.inp, dinp1, ni);
        grad_check(&p, "weight", matmul_objective, &m, m.weight, dw1, nw);
        grad_check(&p, "bias", matmul_objective, &m, m.bias, db1, OC);
        pool_free(&p);
    }
}

/* ---- embedding ---------------------------------------------------------- */

typedef struct {
    real *out, *wte, *wpe, *up;
    const int *tokens;
    int B, T, C;
} embed_ctx;

static double embed_objective(void *c)
{
    embed_ctx *e = c;
    embedding_forward(e->out, e->tokens, e->wte, e->wpe, e->B, e->T, e->C);
    return dot(e->out, e->up, (size_t)e->B * e->T * e->C);
}

static const int EMB_SHAPES[][3] = {{1, 1, 1}, {1, 7, 5}, {3, 2, 13}, {3, 7, 1},
                                    {5, 131, 37}};

Test(dense_cpu, embedding_forward_and_gradients)
{
    const int V = 5;
    for (size_t s = 0; s < sizeof EMB_SHAPES / sizeof EMB_SHAPES[0]; s++) {
        for (int learned = 0; learned < 2; learned++) {
            int B = EMB_SHAPES[s][0], T = EMB_SHAPES[s][1], C = EMB_SHAPES[s][2];
            int maxT = T + 2; /* rows past T must get no gradient */
            size_t no = (size_t)B * T * C, nte = (size_t)V * C, npe = (size_t)maxT * C;
            uint64_t seed = 300 + 10 * s + learned;
            pool p;
            pool_init(&p, "embedding B=%d T=%d C=%d wpe=%d seed=%llu", B, T, C, learned,
                      (unsigned long long)seed);
            int *tokens = malloc((size_t)B * T * sizeof *tokens);
            cr_assert(tokens != NULL);
            uint64_t st = seed;
            for (int i = 0; i < B * T; i++) tokens[i] = (int)(rand_uniform(&st) * V);
            embed_ctx e = {.wte = uniform(&p, nte, -1, 1, seed + 1),
                           .wpe = learned ? uniform(&p, npe, -1, 1, seed + 2) : NULL,
                           .up = uniform(&p, no, -1, 1, seed + 3),
                           .out = zeros(&p, no), .tokens = tokens, .B = B, .T = T, .C = C};

            embed_objective(&e);
            real *ref = zeros(&p, no);
            for (int b = 0; b < B; b++)
                for (int t = 0; t < T; t++)
                    for (int c = 0; c < C; c++)
                        ref[((size_t)b * T + t) * C + c] =
                            e.wte[(size_t)tokens[b * T + t] * C + c] +
                            (learned ? e.wpe[(size_t)t * C + c] : 0);
            expect_close(&p, "out", e.out, ref, no, FWD_TOL);

            real *dte = zeros(&p, nte), *dpe = learned ? zeros(&p, npe) : NULL;
            embedding_backward(dte, dpe, e.up, tokens, B, T, C, V);
            real *dte1 = copy_of(&p, dte, nte);
            real *dpe1 = learned ? copy_of(&p, dpe, npe) : NULL;
            embedding_backward(dte, dpe, e.up, tokens, B, T, C, V);
            expect_doubled(&p, "dwte", dte, dte1, nte);
            if (learned) expect_doubled(&p, "dwpe", dpe, dpe1, npe);

            grad_check(&p, "wte", embed_objective, &e, e.wte, dte1, nte);
            if (learned) grad_check(&p, "wpe", embed_objective, &e, e.wpe, dpe1, npe);
            free(tokens);
            pool_free(&p);
        }
    }
}

/* ---- rmsnorm and l2norm ------------------------------------------------- */

typedef struct {
    real *out, *cache, *inp, *weight, *up; /* weight NULL: l2norm */
    int N, C;
} norm_ctx;

static double norm_objective(void *c)
{
    norm_ctx *m = c;
    if (m->weight)
        rmsnorm_forward(m->out, m->cache, m->inp, m->weight, m->N, m->C);
    else
        l2norm_forward(m->out, m->cache, m->inp, m->N, m->C);
    return dot(m->out, m->up, (size_t)m->N * m->C);
}

static void norm_backward(const norm_ctx *m, real *dinp, real *dweight)
{
    if (m->weight)
        rmsnorm_backward(dinp, dweight, m->up, m->inp, m->weight, m->cache, m->N, m->C);
    else
        l2norm_backward(dinp, m->up, m->inp, m->cache, m->N, m->C);
}

static const int ROW_SHAPES[][2] = {{1, 1}, {1, 13}, {7, 1}, {7, 5}, {2, 13}, {443, 37}};

static void norm_case(int rms, size_t s)
{
    int N = ROW_SHAPES[s][0], C = ROW_SHAPES[s][1];
    size_t n = (size_t)N * C;
    uint64_t seed = 400 + 10 * s + rms;
    pool p;
    pool_init(&p, "%s N=%d C=%d seed=%llu", rms ? "rmsnorm" : "l2norm", N, C,
              (unsigned long long)seed);
    norm_ctx m = {.inp = uniform(&p, n, -2, 2, seed),
                  .weight = rms ? uniform(&p, C, 0.5, 1.5, seed + 1) : NULL,
                  .up = uniform(&p, n, -1, 1, seed + 2),
                  .out = zeros(&p, n), .cache = zeros(&p, N), .N = N, .C = C};
    norm_objective(&m);

    real *ref = zeros(&p, n), *ref_cache = zeros(&p, N);
    for (int r = 0; r < N; r++) {
        double ss = 0;
        for (int c = 0; c < C; c++) ss += m.inp[(size_t)r * C + c] * m.inp[(size_t)r * C + c];
        double scale = rms ? 1 / sqrt(ss / C + 1e-6) : 1 / sqrt(ss + 1e-6);
        ref_cache[r] = (real)scale;
        for (int c = 0; c < C; c++)
            ref[(size_t)r * C + c] =
                (real)(m.inp[(size_t)r * C + c] * scale * (rms ? m.weight[c] : 1));
    }
    expect_close(&p, "out", m.out, ref, n, FWD_TOL);
    expect_close(&p, "cached 1/norm", m.cache, ref_cache, N, FWD_TOL);

    real *dinp = zeros(&p, n), *dw = zeros(&p, C);
    norm_backward(&m, dinp, dw);
    real *dinp1 = copy_of(&p, dinp, n), *dw1 = copy_of(&p, dw, C);
    norm_backward(&m, dinp, dw);
    expect_doubled(&p, "dinp", dinp, dinp1, n);
    if (rms) expect_doubled(&p, "dweight", dw, dw1, C);

    grad_check(&p, "inp", norm_objective, &m, m.inp, dinp1, n);
    if (rms) grad_check(&p, "weight", norm_objective, &m, m.weight, dw1, C);
    pool_free(&p);
}

Test(dense_cpu, rmsnorm_forward_and_gradients)
{
    for (size_t s = 0; s < sizeof ROW_SHAPES / sizeof ROW_SHAPES[0]; s++) norm_case(1, s);
}

Test(dense_cpu, l2norm_forward_and_gradients)
{
    for (size_t s = 0; s < sizeof ROW_SHAPES / sizeof ROW_SHAPES[0]; s++) norm_case(0, s);
}

/* ---- pointwise activations --------------------------------------------- */

static const char *const ACT_NAMES[] = {"identity", "sigmoid", "sigmoid2", "silu",
                                        "gelu", "elu1", "relu"};

/* the formulas of ops.h, written independently in double */
static double act_reference(double x, act_kind kind)
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

typedef struct {
    real *out, *inp, *up;
    size_t n;
    act_kind kind;
} act_ctx;

static double act_objective(void *c)
{
    act_ctx *a = c;
    act_forward(a->out, a->inp, a->n, a->kind);
    return dot(a->out, a->up, a->n);
}

Test(dense_cpu, activations_forward_and_gradients)
{
    const size_t sizes[] = {1, 37, 20011};
    for (int kind = ACT_IDENTITY; kind <= ACT_RELU; kind++) {
        for (size_t s = 0; s < 3; s++) {
            size_t n = sizes[s];
            uint64_t seed = 500 + 10 * (uint64_t)kind + s;
            pool p;
            pool_init(&p, "act %s n=%zu seed=%llu", ACT_NAMES[kind], n,
                      (unsigned long long)seed);
            /* [-4,4] reaches the saturated tails; the kinks of relu and elu1
             * at 0 are further than the probe step from every sample */
            act_ctx a = {.inp = uniform(&p, n, -4, 4, seed), .up = uniform(&p, n, -1, 1, seed + 1),
                         .out = zeros(&p, n), .n = n, .kind = (act_kind)kind};
            act_objective(&a);
            real *ref = zeros(&p, n);
            for (size_t i = 0; i < n; i++) ref[i] = (real)act_reference(a.inp[i], a.kind);
            expect_close(&p, "out", a.out, ref, n, FWD_TOL);

            real *inplace = copy_of(&p, a.inp, n);
            act_forward(inplace, inplace, n, a.kind);
            expect_close(&p, "out in place", inplace, ref, n, 0);

            real *dinp = zeros(&p, n);
            act_backward(dinp, a.up, a.inp, n, a.kind);
            real *dinp1 = copy_of(&p, dinp, n);
            act_backward(dinp, a.up, a.inp, n, a.kind);
            expect_doubled(&p, "dinp", dinp, dinp1, n);
            grad_check(&p, "inp", act_objective, &a, a.inp, dinp1, n);
            pool_free(&p);
        }
    }
}

/* ---- swiglu ------------------------------------------------------------- */

typedef struct {
    real *out, *inp, *up;
    int N, H;
} swiglu_ctx;

static double swiglu_objective(void *c)
{
    swiglu_ctx *g = c;
    swiglu_forward(g->out, g->inp, g->N, g->H);
    return dot(g->out, g->up, (size_t)g->N * g->H);
}

Test(dense_cpu, swiglu_forward_and_gradients)
{
    for (size_t s = 0; s < sizeof ROW_SHAPES / sizeof ROW_SHAPES[0]; s++) {
        int N = ROW_SHAPES[s][0], H = ROW_SHAPES[s][1];
        size_t ni = (size_t)N * 2 * H, no = (size_t)N * H;
        uint64_t seed = 600 + 10 * s;
        pool p;
        pool_init(&p, "swiglu N=%d H=%d seed=%llu", N, H, (unsigned long long)seed);
        swiglu_ctx g = {.inp = uniform(&p, ni, -3, 3, seed), .up = uniform(&p, no, -1, 1, seed + 1),
                        .out = zeros(&p, no), .N = N, .H = H};
        swiglu_objective(&g);
        real *ref = zeros(&p, no);
        for (int n = 0; n < N; n++)
            for (int j = 0; j < H; j++) {
                double gate = g.inp[(size_t)n * 2 * H + j], up = g.inp[(size_t)n * 2 * H + H + j];
                ref[(size_t)n * H + j] = (real)(gate / (1 + exp(-gate)) * up);
            }
        expect_close(&p, "out", g.out, ref, no, FWD_TOL);

        real *dinp = zeros(&p, ni);
        swiglu_backward(dinp, g.up, g.inp, N, H);
        real *dinp1 = copy_of(&p, dinp, ni);
        swiglu_backward(dinp, g.up, g.inp, N, H);
        expect_doubled(&p, "dinp", dinp, dinp1, ni);
        grad_check(&p, "inp", swiglu_objective, &g, g.inp, dinp1, ni);
        pool_free(&p);
    }
}

/* ---- conv4 + silu ------------------------------------------------------- */

typedef struct {
    real *out, *pre, *inp, *w, *up;
    int B, T, C;
} conv_ctx;

static double conv_objective(void *c)
{
    conv_ctx *k = c;
    conv4_silu_forward(k->out, k->pre, k->inp, k->w, k->B, k->T, k->C);
    return dot(k->out, k->up, (size_t)k->B * k->T * k->C);
}

static const int CONV_SHAPES[][3] = {{1, 1, 1}, {1, 2, 5}, {2, 3, 1}, {2, 7, 13},
                                     {1, 4, 5}, {3, 211, 37}};

Test(dense_cpu, conv4_silu_forward_and_gradients)
{
    for (size_t s = 0; s < sizeof CONV_SHAPES / sizeof CONV_SHAPES[0]; s++) {
        int B = CONV_SHAPES[s][0], T = CONV_SHAPES[s][1], C = CONV_SHAPES[s][2];
        size_t n = (size_t)B * T * C, nw = (size_t)C * 4;
        uint64_t seed = 700 + 10 * s;
        pool p;
        pool_init(&p, "conv4_silu B=%d T=%d C=%d seed=%llu", B, T, C,
                  (unsigned long long)seed);
        conv_ctx k = {.inp = uniform(&p, n, -1, 1, seed), .w = uniform(&p, nw, -1, 1, seed + 1),
                      .up = uniform(&p, n, -1, 1, seed + 2), .out = zeros(&p, n),
                      .pre = zeros(&p, n), .B = B, .T = T, .C = C};
        conv_objective(&k);
        /* the direct sum; taps before t = 0 read zeros */
        real *ref_pre = zeros(&p, n), *ref = zeros(&p, n);
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++)
                for (int c = 0; c < C; c++) {
                    double acc = 0;
                    for (int j = 0; j < 4; j++) {
                        int src = t - 3 + j;
                        if (src >= 0)
                            acc += k.w[(size_t)c * 4 + j] * k.inp[((size_t)b * T + src) * C + c];
                    }
                    size_t i = ((size_t)b * T + t) * C + c;
                    ref_pre[i] = (real)acc;
                    ref[i] = (real)(acc / (1 + exp(-acc)));
                }
        expect_close(&p, "pre", k.pre, ref_pre, n, FWD_TOL);
        expect_close(&p, "out", k.out, ref, n, FWD_TOL);

        real *dinp = zeros(&p, n), *dw = zeros(&p, nw);
        conv4_silu_backward(dinp, dw, k.up, k.inp, k.pre, k.w, B, T, C);
        real *dinp1 = copy_of(&p, dinp, n), *dw1 = copy_of(&p, dw, nw);
        conv4_silu_backward(dinp, dw, k.up, k.inp, k.pre, k.w, B, T, C);
        expect_doubled(&p, "dinp", dinp, dinp1, n);
        expect_doubled(&p, "dw", dw, dw1, nw);
        grad_check(&p, "inp", conv_objective, &k, k.inp, dinp1, n);
        grad_check(&p, "w", conv_objective, &k, k.w, dw1, nw);
        pool_free(&p);
    }
}

/* ---- residual_add, scale_inplace, sum_squares (no backward) ------------- */

Test(dense_cpu, elementwise_helpers_match_loops)
{
    const size_t sizes[] = {1, 7, 100003};
    for (size_t s = 0; s < 3; s++) {
        size_t n = sizes[s];
        uint64_t seed = 800 + s;
        pool p;
        pool_init(&p, "elementwise n=%zu seed=%llu", n, (unsigned long long)seed);
        real *h = uniform(&p, n, -1, 1, seed), *x = uniform(&p, n, -1, 1, seed + 1);
        real *ref = zeros(&p, n);

        for (size_t i = 0; i < n; i++) ref[i] = h[i] + x[i];
        residual_add(h, x, n);
        expect_close(&p, "residual_add", h, ref, n, 0);

        for (size_t i = 0; i < n; i++) ref[i] = h[i] * (real)-0.37;
        scale_inplace(h, n, (real)-0.37);
        expect_close(&p, "scale_inplace", h, ref, n, 0);

        double ss = 0;
        for (size_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
        double got = sum_squares(x, n);
        cr_expect(fabs(got - ss) <= 1e-12 * ss, "%s sum_squares: got %.17g want %.17g",
                  p.name, got, ss);
        pool_free(&p);
    }
    cr_expect(sum_squares(NULL, 0) == 0, "sum_squares of nothing is 0");
}

/* ---- rowdiv ------------------------------------------------------------- */

typedef struct {
    real *out, *num, *den, *up;
    int N, C;
    real eps;
} rowdiv_ctx;

static double rowdiv_objective(void *c)
{
    rowdiv_ctx *r = c;
    rowdiv_forward(r->out, r->num, r->den, r->N, r->C, r->eps);
    return dot(r->out, r->up, (size_t)r->N * r->C);
}

Test(dense_cpu, rowdiv_forward_and_gradients)
{
    for (size_t s = 0; s < sizeof ROW_SHAPES / sizeof ROW_SHAPES[0]; s++) {
        int N = ROW_SHAPES[s][0], C = ROW_SHAPES[s][1];
        size_t n = (size_t)N * C;
        uint64_t seed = 900 + 10 * s;
        pool p;
        pool_init(&p, "rowdiv N=%d C=%d seed=%llu", N, C, (unsigned long long)seed);
        /* den in [0.5, 2]: the normaliser is positive in linear attention */
        rowdiv_ctx r = {.num = uniform(&p, n, -1, 1, seed), .den = uniform(&p, N, 0.5, 2, seed + 1),
                        .up = uniform(&p, n, -1, 1, seed + 2), .out = zeros(&p, n),
                        .N = N, .C = C, .eps = (real)1e-3};
        rowdiv_objective(&r);
        real *ref = zeros(&p, n);
        for (int i = 0; i < N; i++)
            for (int c = 0; c < C; c++)
                ref[(size_t)i * C + c] = (real)(r.num[(size_t)i * C + c] / (r.den[i] + 1e-3));
        expect_close(&p, "out", r.out, ref, n, FWD_TOL);

        real *dnum = zeros(&p, n), *dden = zeros(&p, N);
        rowdiv_backward(dnum, dden, r.up, r.num, r.den, N, C, r.eps);
        real *dnum1 = copy_of(&p, dnum, n), *dden1 = copy_of(&p, dden, N);
        rowdiv_backward(dnum, dden, r.up, r.num, r.den, N, C, r.eps);
        expect_doubled(&p, "dnum", dnum, dnum1, n);
        expect_doubled(&p, "dden", dden, dden1, N);
        grad_check(&p, "num", rowdiv_objective, &r, r.num, dnum1, n);
        grad_check(&p, "den", rowdiv_objective, &r, r.den, dden1, N);
        pool_free(&p);
    }
}

/* ---- softmax cross-entropy ---------------------------------------------- */

typedef struct {
    real *losses, *probs, *logits;
    const int *targets;
    int N, V;
    real dloss;
} xent_ctx;

/* the mean-style objective the trainer uses: dloss * sum of the row losses */
static double xent_objective(void *c)
{
    xent_ctx *x = c;
    crossentropy_forward(x->losses, x->probs, x->logits, x->targets, x->N, x->V);
    double s = 0;
    for (int n = 0; n < x->N; n++) s += x->losses[n];
    return x->dloss * s;
}

Test(dense_cpu, crossentropy_forward_and_gradients)
{
    const int Vs[] = {1, 5, 13, 37};
    const int N = 7;
    for (size_t s = 0; s < 4; s++) {
        for (int shifted = 0; shifted < 2; shifted++) {
            int V = Vs[s];
            size_t n = (size_t)N * V;
            uint64_t seed = 1000 + 10 * s + shifted;
            pool p;
            pool_init(&p, "crossentropy N=%d V=%d shift=%d seed=%llu", N, V,
                      shifted ? 1000 : 0, (unsigned long long)seed);
            /* rows 1 and 4 unscored; targets cover first and last class */
            int targets[7];
            for (int i = 0; i < N; i++) targets[i] = (i * 3) % V;
            targets[1] = targets[4] = -1;
            targets[N - 1] = V - 1;
            /* a shift of 1000 overflows exp() unless the max is subtracted */
            xent_ctx x = {.logits = uniform(&p, n, -3 + 1000 * shifted, 3 + 1000 * shifted, seed),
                          .losses = uniform(&p, N, -9, 9, seed + 1), /* overwritten */
                          .probs = zeros(&p, n), .targets = targets, .N = N, .V = V,
                          .dloss = (real)0.37};
            int count = crossentropy_forward(x.losses, x.probs, x.logits, targets, N, V);
            cr_expect(count == N - 2, "%s: count %d, want %d", p.name, count, N - 2);

            real *ref = zeros(&p, N);
            for (int i = 0; i < N; i++) {
                const real *z = x.logits + (size_t)i * V;
                double mx = z[0], se = 0;
                for (int v = 1; v < V; v++) mx = fmax(mx, z[v]);
                for (int v = 0; v < V; v++) se += exp(z[v] - mx);
                ref[i] = targets[i] < 0 ? 0 : (real)(mx + log(se) - z[targets[i]]);
                double psum = 0;
                for (int v = 0; v < V; v++) psum += x.probs[(size_t)i * V + v];
                cr_expect(fabs(psum - 1) < 1e-12, "%s: probs of row %d sum to %.17g", p.name,
                          i, psum);
            }
            expect_close(&p, "losses", x.losses, ref, N, FWD_TOL);
            for (int i = 0; i < N; i++)
                cr_expect(targets[i] >= 0 || x.losses[i] == 0, "%s: unscored row %d has loss %g",
                          p.name, i, (double)x.losses[i]);

            /* dlogits starts random: unscored rows must keep it exactly */
            real *start = uniform(&p, n, -1, 1, seed + 2);
            real *dz = copy_of(&p, start, n);
            crossentropy_backward(dz, x.probs, targets, N, V, x.dloss);
            real *dz1 = zeros(&p, n);
            for (size_t i = 0; i < n; i++) dz1[i] = dz[i] - start[i];
            crossentropy_backward(dz, x.probs, targets, N, V, x.dloss);
            for (size_t i = 0; i < n; i++) dz[i] -= start[i];
            expect_doubled(&p, "dlogits", dz, dz1, n);
            for (int i = 0; i < N; i++)
                for (int v = 0; v < V && targets[i] < 0; v++)
                    cr_expect(dz1[(size_t)i * V + v] == 0, "%s: unscored row %d got gradient",
                              p.name, i);
            grad_check(&p, "logits", xent_objective, &x, x.logits, dz1, n);
            pool_free(&p);
        }
    }
}

/* ---- AdamW -------------------------------------------------------------- */

Test(dense_cpu, adamw_one_and_two_steps_match_formula)
{
    const size_t n = 37;
    const double lr = 1e-2, b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1;
    pool p;
    pool_init(&p, "adamw n=%zu seed=1100", n);
    real *param = uniform(&p, n, -1, 1, 1100);
    real *g1 = uniform(&p, n, -1, 1, 1101), *g2 = uniform(&p, n, -1, 1, 1102);
    real *m = zeros(&p, n), *v = zeros(&p, n);
    real *p0 = copy_of(&p, param, n);
    real *want_p = zeros(&p, n), *want_m = zeros(&p, n), *want_v = zeros(&p, n);

    /* by hand: m, v from zero; bias corrections 1 - beta^t; decay on the old p */
    for (size_t i = 0; i < n; i++) {
        double m1 = (1 - b1) * g1[i], v1 = (1 - b2) * g1[i] * g1[i];
        double p1 = p0[i] - lr * ((m1 / (1 - b1)) / (sqrt(v1 / (1 - b2)) + eps) + wd * p0[i]);
        want_p[i] = (real)p1;
        want_m[i] = (real)m1;
        want_v[i] = (real)v1;
    }
    adamw_update(param, g1, m, v, n, (real)lr, (real)b1, (real)b2, (real)eps, (real)wd, 1);
    expect_close(&p, "p after step 1", param, want_p, n, FWD_TOL);
    expect_close(&p, "m after step 1", m, want_m, n, FWD_TOL);
    expect_close(&p, "v after step 1", v, want_v, n, FWD_TOL);

    for (size_t i = 0; i < n; i++) {
        double m2 = b1 * want_m[i] + (1 - b1) * g2[i];
        double v2 = b2 * want_v[i] + (1 - b2) * g2[i] * g2[i];
        double mhat = m2 / (1 - b1 * b1), vhat = v2 / (1 - b2 * b2);
        want_p[i] = (real)(want_p[i] - lr * (mhat / (sqrt(vhat) + eps) + wd * want_p[i]));
        want_m[i] = (real)m2;
        want_v[i] = (real)v2;
    }
    adamw_update(param, g2, m, v, n, (real)lr, (real)b1, (real)b2, (real)eps, (real)wd, 2);
    expect_close(&p, "p after step 2", param, want_p, n, FWD_TOL);
    expect_close(&p, "m after step 2", m, want_m, n, FWD_TOL);
    expect_close(&p, "v after step 2", v, want_v, n, FWD_TOL);
    pool_free(&p);
}
