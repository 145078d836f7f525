/* cuda_ops.c: every op with a CUDA version, GPU against CPU on fresh random
 * inputs (tests/cuda_check.h: tolerances, guards, poisoned outputs), at
 * sizes that include 1, primes and remainders of every block size. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>

#include "cuda_check.h"
#include "support.h"

static void setup(void)
{
    ops_set_threads(1);
    xt_require_gpu();
}

TestSuite(cuda_ops, .init = setup);

/* Fixed per test and printed, so a failure can be replayed. */
static uint64_t seed_for(const char *test, uint64_t seed)
{
    fprintf(stderr, "cuda_ops.%s: seed %llu\n", test, (unsigned long long)seed);
    return seed;
}

Test(cuda_ops, matmul)
{
    const int shapes[][3] = {{1, 1, 1}, {7, 13, 5}, {37, 64, 129}, {257, 96, 33}, {100, 31, 2}};
    uint64_t seed = seed_for("matmul", 101);
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (int with_bias = 0; with_bias < 2; with_bias++) {
            const int N = shapes[s][0], C = shapes[s][1], OC = shapes[s][2];
            xt inp = xt_rand((size_t)N * C, -1, 1, seed++), w = xt_rand((size_t)OC * C, -1, 1, seed++);
            xt bias = xt_rand((size_t)OC, -1, 1, seed++), out = xt_poison((size_t)N * OC);
            BOTH(matmul_forward(XF(out), XF(inp), XF(w), with_bias ? XF(bias) : NULL, N, C, OC));
            xt_expect("matmul_forward out", &out, xt_tol_gemm(tol_sum(C)));
            xt dout = xt_rand((size_t)N * OC, -1, 1, seed++);
            xt dinp = xt_rand((size_t)N * C, -1, 1, seed++), dw = xt_rand((size_t)OC * C, -1, 1, seed++);
            xt dbias = xt_rand((size_t)OC, -1, 1, seed++);
            BOTH(matmul_backward(with_bias ? XF(dinp) : NULL, XF(dw), with_bias ? XF(dbias) : NULL, XF(dout),
                                 XF(inp), XF(w), N, C, OC));
            xt_expect("matmul_backward dinp", &dinp, xt_tol_gemm(tol_sum(OC)));
            xt_expect("matmul_backward dweight", &dw, xt_tol_gemm(tol_sum(N)));
            xt_expect("matmul_backward dbias", &dbias, tol_sum(N));
            xt *all[] = {&inp, &w, &bias, &out, &dout, &dinp, &dw, &dbias};
            for (size_t i = 0; i < sizeof all / sizeof *all; i++) xt_free(all[i]);
        }
}

Test(cuda_ops, embedding)
{
    /* B T C V; 3 x 700 positions: three segments of the GPU's fixed-order sum (dense.cu) */
    const int shapes[][4] = {{1, 1, 1, 3}, {3, 7, 13, 11}, {5, 37, 64, 17}, {2, 129, 33, 2}, {3, 700, 40, 5}};
    uint64_t seed = seed_for("embedding", 202);
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (int learned = 0; learned < 2; learned++) {
            const int B = shapes[s][0], T = shapes[s][1], C = shapes[s][2], V = shapes[s][3];
            const size_t N = (size_t)B * T;
            int *tok = malloc(N * sizeof *tok);
            uint64_t st = seed++;
            for (size_t i = 0; i < N; i++) tok[i] = (int)(rand_uniform(&st) * V);
            xt tokens = xt_ints(tok, N);
            free(tok);
            xt wte = xt_rand((size_t)V * C, -1, 1, seed++), wpe = xt_rand((size_t)T * C, -1, 1, seed++);
            xt out = xt_poison(N * C), dout = xt_rand(N * C, -1, 1, seed++);
            BOTH(embedding_forward(XF(out), XI(tokens), XF(wte), learned ? XF(wpe) : NULL, B, T, C));
            xt_expect("embedding_forward out", &out, TOL_POINTWISE);
            xt dwte = xt_rand((size_t)V * C, -1, 1, seed++), dwpe = xt_rand((size_t)T * C, -1, 1, seed++);
            BOTH(embedding_backward(XF(dwte), learned ? XF(dwpe) : NULL, XF(dout), XI(tokens), B, T, C, V));
            xt_expect("embedding_backward dwte", &dwte, tol_sum((double)N));
            xt_expect("embedding_backward dwpe", &dwpe, tol_sum(B));
            xt *all[] = {&tokens, &wte, &wpe, &out, &dout, &dwte, &dwpe};
            for (size_t i = 0; i < sizeof all / sizeof *all; i++) xt_free(all[i]);
        }
}

/* rmsnorm (weighted) and l2norm, forward and backward. */
Test(cuda_ops, norms)
{
    const int shapes[][2] = {{1, 1}, {7, 13}, {129, 64}, {33, 257}, {1000, 16}};
    uint64_t seed = seed_for("norms", 303);
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        const int N = shapes[s][0], C = shapes[s][1];
        const size_t n = (size_t)N * C;
        xt inp = xt_rand(n, -2, 2, seed++), w = xt_rand((size_t)C, 0.5, 1.5, seed++);
        xt out = xt_poison(n), r = xt_poison((size_t)N), dout = xt_rand(n, -1, 1, seed++);
        xt dinp = xt_rand(n, -1, 1, seed++), dw = xt_rand((size_t)C, -1, 1, seed++);
        BOTH(rmsnorm_forward(XF(out), XF(r), XF(inp), XF(w), N, C));
        xt_expect("rmsnorm_forward out", &out, tol_sum(C));
        xt_expect("rmsnorm_forward rstd", &r, tol_sum(C));
        BOTH(rmsnorm_backward(XF(dinp), XF(dw), XF(dout), XF(inp), XF(w), XF(r), N, C));
        xt_expect("rmsnorm_backward dinp", &dinp, tol_sum(C));
        xt_expect("rmsnorm_backward dweight", &dw, tol_sum(N));
        xt out2 = xt_poison(n), r2 = xt_poison((size_t)N), dinp2 = xt_rand(n, -1, 1, seed++);
        BOTH(l2norm_forward(XF(out2), XF(r2), XF(inp), N, C));
        xt_expect("l2norm_forward out", &out2, tol_sum(C));
        xt_expect("l2norm_forward rnorm", &r2, tol_sum(C));
        BOTH(l2norm_backward(XF(dinp2), XF(dout), XF(inp), XF(r2), N, C));
        xt_expect("l2norm_backward dinp", &dinp2, tol_sum(C));
        xt *all[] = {&inp, &w, &out, &r, &dout, &dinp, &dw, &out2, &r2, &dinp2};
        for (size_t i = 0; i < sizeof all / sizeof *all; i++) xt_free(all[i]);
    }
}

Test(cuda_ops, activations)
{
    static const char *const names[] = {"identity", "sigmoid", "sigmoid2", "silu", "gelu", "elu1", "relu"};
    const size_t sizes[] = {1, 7, 1000, 100003};
    uint64_t seed = seed_for("activations", 404);
    for (int kind = ACT_IDENTITY; kind <= ACT_RELU; kind++)
        for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
            const size_t n = sizes[s];
            char what[64];
            xt inp = xt_rand(n, -6, 6, seed++), out = xt_poison(n), dout = xt_rand(n, -1, 1, seed++);
            xt dinp = xt_rand(n, -1, 1, seed++);
            BOTH(act_forward(XF(out), XF(inp), n, (act_kind)kind));
            snprintf(what, sizeof what, "act_forward %s n=%zu", names[kind], n);
            xt_expect(what, &out, TOL_POINTWISE);
            BOTH(act_backward(XF(dinp), XF(dout), XF(inp), n, (act_kind)kind));
            snprintf(what, sizeof what, "act_backward %s n=%zu", names[kind], n);
            xt_expect(what, &dinp, TOL_POINTWISE);
            /* in place, as the lstm mixer and fill_ones use it */
            xt inplace = xt_rand(n, -6, 6, seed - 3);
            BOTH(act_forward(XF(inplace), XF(inplace), n, (act_kind)kind));
            snprintf(what, sizeof what, "act_forward in place %s n=%zu", names[kind], n);
            xt_expect(what, &inplace, TOL_POINTWISE);
            xt *all[] = {&inp, &out, &dout, &dinp, &inplace};
            for (size_t i = 0; i < sizeof all / sizeof *all; i++) xt_free(all[i]);
        }
}

Test(cuda_ops, swiglu_and_silu_gate)
{
    const int shapes[][2] = {{1, 1}, {7, 13}, {65, 96}, {3, 1025}};
    uint64_t seed = seed_for("swiglu_and_silu_gate", 505);
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        const int N = shapes[s][0], H = shapes[s][1];
        const size_t n = (size_t)N * H;
        xt inp = xt_rand(2 * n, -4, 4, seed++), out = xt_poison(n), dout = xt_rand(n, -1, 1, seed++);
        xt dinp = xt_rand(2 * n, -1, 1, seed++);
        BOTH(swiglu_forward(XF(out), XF(inp), N, H));
        xt_expect("swiglu_forward out", &out, TOL_POINTWISE);
        BOTH(swiglu_backward(XF(dinp), XF(dout), XF(inp), N, H));
        xt_expect("swiglu_backward dinp", &dinp, TOL_POINTWISE);
        xt x = xt_rand(n, -4, 4, seed++), g = xt_rand(n, -4, 4, seed++), gated = xt_poison(n);
        xt dx = xt_rand(n, -1, 1, seed++), dg = xt_rand(n, -1, 1, seed++);
        BOTH(silu_gate_forward(XF(gated), XF(x), XF(g), n));
        xt_expect("silu_gate_forward out", &gated, TOL_POINTWISE);
        BOTH(silu_gate_backward(XF(dx), XF(dg), XF(dout), XF(x), XF(g), n));
        xt_expect("silu_gate_backward dx", &dx, TOL_POINTWISE);
        xt_expect("silu_gate_backward dg", &dg, TOL_POINTWISE);
        xt *all[] = {&inp, &out, &dout, &dinp, &x, &g, &gated, &dx, &dg};
        for (size_t i = 0; i < sizeof all / sizeof *all; i++) xt_free(all[i]);
    }
}

Test(cuda_ops, conv4_silu)
{
    const int shapes[][3] = {{1, 1, 1}, {2, 3, 5}, {3, 37, 64}, {2, 129, 33}, {1, 4, 31}}; /* B T C */
    uint64_t seed = seed_for("conv4_silu", 606);
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        const int B = shapes[s][0], T = shapes[s][1], C = shapes[s][2];
        const size_t n = (size_t)B * T * C;
        xt inp = xt_rand(n, -2, 2, seed++), w = xt_rand((size_t)C * 4, -0.5, 0.5, seed++);
        xt out = xt_poison(n), pre = xt_poison(n), dout = xt_rand(n, -1, 1, seed++);
        xt dinp = xt_rand(n, -1, 1, seed++), dw = xt_rand((size_t)C * 4, -1, 1, seed++);
        BOTH(conv4_silu_forward(XF(out), XF(pre), XF(inp), XF(w), B, T, C));
        xt_expect("conv4_silu_forward pre", &pre, tol_sum(4));
        xt_expect("conv4_silu_forward out", &out, tol_sum(4));
        BOTH(conv4_silu_backward(XF(dinp), XF(dw), XF(dout), XF(inp), XF(pre), XF(w), B, T, C));
        xt_expect("conv4_silu_backward dinp", &dinp, tol_sum(4));
        xt_expect("conv4_silu_backward dw", &dw, tol_sum((double)B * T));
        xt *all[] = {&inp, &w, &out, &pre, &dout, &dinp, &dw};
        for (size_t i = 0; i < sizeof all / sizeof *all; i++) xt_free(all[i]);
    }
}

/* residual_add, scale_inplace (0 included: zero_reals), sum_squares. */
Test(cuda_ops, elementwise_and_sum_squares)
{
    const size_t sizes[] = {1, 17, 4099, 1000003};
    uint64_t seed = seed_for("elementwise_and_sum_squares", 707);
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        const size_t n = sizes[s];
        xt h = xt_rand(n, -1, 1, seed++), x = xt_rand(n, -1, 1, seed++);
        BOTH(residual_add(XF(h), XF(x), n));
        xt_expect("residual_add h", &h, TOL_POINTWISE);
        BOTH(scale_inplace(XF(h), n, 0.37f));
        xt_expect("scale_inplace 0.37", &h, TOL_POINTWISE);
        double ss[2];
        BOTH(ss[xt_side] = sum_squares(XF(h), n));
        cr_expect(fabs(ss[1] - ss[0]) <= 1e-12 * ss[0] + 1e-300,
                  "sum_squares n=%zu: GPU %.17g CPU %.17g (both sum in double: 1e-12 relative)", n, ss[1], ss[0]);
        BOTH(scale_inplace(XF(h), n, 0));
        xt_expect("scale_inplace 0", &h, 0);
        BOTH(ss[xt_side] = sum_squares(XF(h), n));
        cr_expect(ss[0] == 0 && ss[1] == 0, "sum_squares of zeros: GPU %g CPU %g", ss[1], ss[0]);
        xt_free(&h);
        xt_free(&x);
    }
}

Test(cuda_ops, rowdiv)
{
    const int shapes[][2] = {{1, 1}, {7, 13}, {129, 64}, {33, 1}};
    uint64_t seed = seed_for("rowdiv", 808);
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        const int N = shapes[s][0], C = shapes[s][1];
        const size_t n = (size_t)N * C;
        xt num = xt_rand(n, -1, 1, seed++), den = xt_rand((size_t)N, 0.5, 3, seed++), out = xt_poison(n);
        xt dout = xt_rand(n, -1, 1, seed++), dnum = xt_rand(n, -1, 1, seed++);
        xt dden = xt_rand((size_t)N, -1, 1, seed++);
        BOTH(rowdiv_forward(XF(out), XF(num), XF(den), N, C, 1e-6f));
        xt_expect("rowdiv_forward out", &out, TOL_POINTWISE);
        BOTH(rowdiv_backward(XF(dnum), XF(dden), XF(dout), XF(num), XF(den), N, C, 1e-6f));
        xt_expect("rowdiv_backward dnum", &dnum, TOL_POINTWISE);
        xt_expect("rowdiv_backward dden", &dden, tol_sum(C));
        xt *all[] = {&num, &den, &out, &dout, &dnum, &dden};
        for (size_t i = 0; i < sizeof all / sizeof *all; i++) xt_free(all[i]);
    }
}

/* Every third position unscored (-1); the count must agree exactly. */
Test(cuda_ops, crossentropy)
{
    const int shapes[][2] = {{1, 1}, {1, 2}, {7, 13}, {129, 64}, {1000, 2}, {5, 1031}}; /* N V */
    uint64_t seed = seed_for("crossentropy", 909);
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        const int N = shapes[s][0], V = shapes[s][1];
        const size_t n = (size_t)N * V;
        int *tgt = malloc((size_t)N * sizeof *tgt);
        uint64_t st = seed++;
        for (int i = 0; i < N; i++) tgt[i] = i % 3 == 2 ? -1 : (int)(rand_uniform(&st) * V);
        xt targets = xt_ints(tgt, (size_t)N);
        free(tgt);
        xt logits = xt_rand(n, -5, 5, seed++), probs = xt_poison(n), losses = xt_poison((size_t)N);
        xt dlogits = xt_rand(n, -1, 1, seed++);
        int count[2];
        BOTH(count[xt_side] = crossentropy_forward(XF(losses), XF(probs), XF(logits), XI(targets), N, V));
        cr_expect_eq(count[1], count[0], "crossentropy_forward count: GPU %d CPU %d", count[1], count[0]);
        xt_expect("crossentropy_forward probs", &probs, tol_sum(V));
        xt_expect("crossentropy_forward losses", &losses, tol_sum(V));
        BOTH(crossentropy_backward(XF(dlogits), XF(probs), XI(targets), N, V, 1.0f / (count[0] ? count[0] : 1)));
        xt_expect("crossentropy_backward dlogits", &dlogits, tol_sum(V));
        xt *all[] = {&targets, &logits, &probs, &losses, &dlogits};
        for (size_t i = 0; i < sizeof all / sizeof *all; i++) xt_free(all[i]);
    }
}

/* Three steps (bias corrections at t = 1, 2, 3), with and without decay. */
Test(cuda_ops, adamw)
{
    const size_t sizes[] = {1, 7, 100003};
    uint64_t seed = seed_for("adamw", 1010);
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++)
        for (int decay = 0; decay < 2; decay++) {
            const size_t n = sizes[s];
            xt p = xt_rand(n, -1, 1, seed++), m = xt_fill(n, 0), v = xt_fill(n, 0);
            for (int t = 1; t <= 3; t++) {
                xt g = xt_rand(n, -1e-2, 1e-2, seed++);
                BOTH(adamw_update(XF(p), XF(g), XF(m), XF(v), n, 1e-3f, 0.9f, 0.999f, 1e-8f,
                                  decay ? 0.1f : 0.0f, t));
                xt_free(&g);
            }
            /* m/(sqrt(v)+eps) divides two roundings: a few ulp of the step */
            xt_expect("adamw_update p", &p, TOL_POINTWISE);
            xt_expect("adamw_update m", &m, TOL_POINTWISE);
            xt_expect("adamw_update v", &v, TOL_POINTWISE);
            xt_free(&p);
            xt_free(&m);
            xt_free(&v);
        }
}
