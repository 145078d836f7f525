/* cuda_bf16.c: train.precision bf16 on the CUDA backend (kernels/cuda/dense.cu):
 * matmul_forward / matmul_backward with bf16 operands and fp32 accumulation
 * against the CPU's fp32 oracle, within XT_TOL_BF16 (cuda_check.h: the
 * derivation) and, at a large inner size, provably not within the fp32
 * budget (so bf16 did run); the rounding itself (nearest, ties to even)
 * checked bit for bit on the results of a one-term gemm; and `statebench run
 * --device cuda` with train.precision bf16 end to end. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../harness/commands.h"
#include "../kernels/cuda/ops_cuda.h"
#include "cuda_check.h"
#include "support.h"
#include "support_cmd.h"

static void setup(void)
{
    ops_set_threads(1);
    xt_require_gpu();
}

TestSuite(cuda_bf16, .init = setup);

/* bf16 for the CUDA backend's gemms (the CPU's setting changes nothing). */
static void use_bf16(void)
{
    xt_cuda_backend();
    ops_set_precision(OPS_BF16);
    cr_assert_eq(ops_get_precision(), OPS_BF16);
    cr_assert(cuda_ops_bf16());
    ops_set_backend(OPS_CPU);
}

/* Normalised MSE of t's GPU elements against its CPU elements. */
static double nmse(const xt *t)
{
    float *gpu = malloc(t->n * sizeof *gpu);
    cr_assert_not_null(gpu);
    xt_side = 1;
    xt_use_side();
    ops_download(gpu, xt_ptr(t), t->n * sizeof *gpu);
    xt_side = 0;
    xt_use_side();
    const float *cpu = xt_ptr(t);
    double num = 0, den = 0;
    for (size_t i = 0; i < t->n; i++) {
        num += ((double)gpu[i] - cpu[i]) * ((double)gpu[i] - cpu[i]);
        den += (double)cpu[i] * cpu[i];
    }
    free(gpu);
    return den > 0 ? num / den : num;
}

Test(cuda_bf16, matmul_within_the_bf16_bound)
{
    use_bf16();
    /* N C OC: 1, primes, remainders of the 256-thread conversion blocks */
    const int shapes[][3] = {{1, 1, 1}, {7, 13, 5}, {37, 64, 129}, {257, 96, 33}, {100, 31, 2}};
    uint64_t seed = 4101;
    fprintf(stderr, "cuda_bf16.matmul_within_the_bf16_bound: seed %llu\n", (unsigned long long)seed);
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (int with_bias = 0; with_bias < 2; with_bias++) {
            const int N = shapes[s][0], C = shapes[s][1], OC = shapes[s][2];
            xt inp = xt_rand((size_t)N * C, -1, 1, seed++), w = xt_rand((size_t)OC * C, -1, 1, seed++);
            xt bias = xt_rand((size_t)OC, -1, 1, seed++), out = xt_poison((size_t)N * OC);
            BOTH(matmul_forward(XF(out), XF(inp), XF(w), with_bias ? XF(bias) : NULL, N, C, OC));
            xt_expect("bf16 matmul_forward out", &out, XT_TOL_BF16);
            xt dout = xt_rand((size_t)N * OC, -1, 1, seed++);
            xt dinp = xt_rand((size_t)N * C, -1, 1, seed++), dw = xt_rand((size_t)OC * C, -1, 1, seed++);
            xt dbias = xt_rand((size_t)OC, -1, 1, seed++);
            BOTH(matmul_backward(with_bias ? XF(dinp) : NULL, XF(dw), with_bias ? XF(dbias) : NULL, XF(dout),
                                 XF(inp), XF(w), N, C, OC));
            xt_expect("bf16 matmul_backward dinp", &dinp, XT_TOL_BF16);
            xt_expect("bf16 matmul_backward dweight", &dw, XT_TOL_BF16);
            /* the bias gradient is a column sum in fp32, not a gemm */
            xt_expect("bf16 matmul_backward dbias", &dbias, tol_sum(N));
            xt *all[] = {&inp, &w, &bias, &out, &dout, &dinp, &dw, &dbias};
            for (size_t i = 0; i < sizeof all / sizeof *all; i++) xt_free(all[i]);
        }
}

/* Inner size 1031 (a prime, > 1024): the fp32 budget tol_sum(K) ~ 9.4e-9
 * and bf16's ~1e-5 are three orders apart; the GPU's forward and both
 * backward gemms must land in bf16's band, above the fp32 budget. The
 * same gemms in fp32 stay within it (the check is not vacuous). */
Test(cuda_bf16, large_inner_size_shows_bf16_rounding)
{
    const int N = 41, C = 1031, OC = 23, K_back = 1031;
    uint64_t seed = 4202;
    fprintf(stderr, "cuda_bf16.large_inner_size_shows_bf16_rounding: seed %llu\n", (unsigned long long)seed);
    for (int bf = 0; bf < 2; bf++) {
        if (bf) use_bf16();
        xt inp = xt_rand((size_t)N * C, -1, 1, seed), w = xt_rand((size_t)OC * C, -1, 1, seed + 1);
        xt out = xt_poison((size_t)N * OC);
        BOTH(matmul_forward(XF(out), XF(inp), XF(w), NULL, N, C, OC));
        const double e_out = nmse(&out);
        /* the weight gradient sums over N: a batch of K_back rows */
        xt inp2 = xt_rand((size_t)K_back * 17, -1, 1, seed + 2), dout2 = xt_rand((size_t)K_back * 19, -1, 1, seed + 3);
        xt w2 = xt_rand((size_t)19 * 17, -1, 1, seed + 4), dw2 = xt_fill((size_t)19 * 17, 0);
        BOTH(matmul_backward(NULL, XF(dw2), NULL, XF(dout2), XF(inp2), XF(w2), K_back, 17, 19));
        const double e_dw = nmse(&dw2);
        fprintf(stderr, "  %s: forward %.3g, dweight %.3g (fp32 budget %.3g, bf16 bound %.3g)\n",
                bf ? "bf16" : "fp32", e_out, e_dw, tol_sum(C), XT_TOL_BF16);
        if (bf) {
            cr_expect(e_out > tol_sum(C) && e_out <= XT_TOL_BF16, "bf16 forward: normalised MSE %.3g", e_out);
            cr_expect(e_dw > tol_sum(K_back) && e_dw <= XT_TOL_BF16, "bf16 dweight: normalised MSE %.3g", e_dw);
        } else {
            cr_expect(e_out <= tol_sum(C), "fp32 forward: normalised MSE %.3g", e_out);
            cr_expect(e_dw <= tol_sum(K_back), "fp32 dweight: normalised MSE %.3g", e_dw);
        }
        xt *all[] = {&inp, &w, &out, &inp2, &dout2, &w2, &dw2};
        for (size_t i = 0; i < sizeof all / sizeof *all; i++) xt_free(all[i]);
    }
}

/* A one-term gemm (N = C = OC = 1, weight 1) returns its input rounded to
 * bf16: nearest, ties to even, overflow to infinity (normal numbers only:
 * whether tensor cores keep bf16 subnormals is the GPU's business). */
Test(cuda_bf16, operands_round_to_nearest_even)
{
    use_bf16();
    /* float bits -> expected bf16 bits (as a float's top half) */
    const uint32_t cases[][2] = {
        {0x3f800000u, 0x3f800000u}, /* 1: exact */
        {0x3f808000u, 0x3f800000u}, /* 1 + 2^-8: a tie, to the even 1 */
        {0x3f818000u, 0x3f820000u}, /* 1 + 3 2^-8: a tie, to the even 1 + 2^-6 */
        {0x3f808001u, 0x3f810000u}, /* just above the tie: up */
        {0x3f807fffu, 0x3f800000u}, /* just below: down */
        {0xbf808001u, 0xbf810000u}, /* negative: by magnitude */
        {0x7f7fffffu, 0x7f800000u}, /* FLT_MAX: overflows to infinity */
        {0x3f7fffffu, 0x3f800000u}, /* 1 - 2^-24: up across the binade */
    };
    const size_t n = sizeof cases / sizeof *cases;
    for (size_t i = 0; i < n; i++) {
        float x, want, got, one = 1;
        memcpy(&x, &cases[i][0], 4);
        memcpy(&want, &cases[i][1], 4);
        xt in = xt_fill(1, x), w = xt_fill(1, one), out = xt_poison(1);
        xt_side = 1;
        xt_use_side();
        matmul_forward(XF(out), XF(in), XF(w), NULL, 1, 1, 1);
        ops_download(&got, XF(out), sizeof got);
        xt_side = 0;
        xt_use_side();
        uint32_t bits;
        memcpy(&bits, &got, 4);
        cr_expect_eq(bits, cases[i][1], "bf16 of 0x%08x: got 0x%08x, want 0x%08x (%g)", cases[i][0], bits, cases[i][1],
                     (double)want);
        xt_free(&in);
        xt_free(&w);
        xt_free(&out);
    }
}

/* No suite .init here: cmd_run probes the device in a child process,
 * which a CUDA context made in this process before the fork would break. */
static void one_thread(void)
{
    ops_set_threads(1);
}

TestSuite(cuda_bf16_run, .init = one_thread);

Test(cuda_bf16_run, a_bf16_run_trains_on_the_gpu_and_is_recorded, .timeout = 600)
{
    char dir[256], cfg[300], db[300], log[300];
    make_temp_dir(dir, sizeof dir, "sb_cuda_bf16");
    snprintf(cfg, sizeof cfg, "%s/b.yaml", dir);
    snprintf(db, sizeof db, "%s/b.db", dir);
    snprintf(log, sizeof log, "%s/log.txt", dir);
    write_text(cfg, "name: b\n"
                    "task: {name: parity, mode: running, train_len: [3, 9], eval_len: [9]}\n"
                    "model: {mixer: deltanet, layers: 1, d_model: 16, heads: 2, mlp: none}\n"
                    "train: {steps: 6, batch: 4, precision: bf16, log_every: 3}\n"
                    "eval: {count: 8, batch: 4}\n");
    const char *args[] = {"run", cfg, "--db", db, "--threads", "1", "--device", "cuda", NULL};
    const int rc = run_command(log, cmd_run, args);
    char *text = read_text(log);
    if (rc == 2 && strstr(text, "no CUDA device")) cr_assert_fail("no CUDA device: %s", text);
    cr_assert_eq(rc, 0, "bf16 on the GPU runs: %s", text);
    free(text);
    cr_expect_eq(sql_int(db, "SELECT count(*) FROM runs WHERE status = 'done' AND device != 'cpu' AND "
                             "json_extract(config, '$.train.precision') = 'bf16'"),
                 1, "the runs table records a finished GPU run in bf16");
    const long long rows = sql_int(db, "SELECT count(*) FROM curves");
    cr_expect_geq(rows, 2, "curve rows at steps 3 and 6 at least");
    cr_expect_eq(sql_int(db, "SELECT count(*) FROM curves WHERE loss > 0 AND loss < 10"), rows,
                 "every curve row has a finite, plausible loss");
    remove_temp_dir(dir);
}
