/* cuda_ops_ssm.c: the ops of the selective and gated scans on the GPU
 * against the CPU (kernels/cuda/{selective_scan,ssd,scan_delta_vec}.cu):
 * Mamba-1's selective_scan, mamba2's pointwise ops (ssd_decay, head_repeat,
 * head_scale, skip_add), gla's scan_delta_vec, and the gates of the delta
 * family (sigmoid_pow, mlstm_gates, mlstm_den, fill_rows), forward and
 * backward, with the kit of cuda_check.h: each op runs once per backend
 * (BOTH) on the same seeded inputs; outputs start as NaN, so unwritten
 * elements show; guards on both sides of every tensor; gradients start from
 * the same random values, so the backward's += (not =) is checked too. Each
 * backward runs from its own side's forward caches.
 *
 * Tolerances (cuda_check.h): pointwise maps TOL_POINTWISE; a sum of len
 * terms tol_sum(len), with len the terms that feed one output through every
 * sum on its way: the selective scan T (N + 2) per channel output (the
 * N-long readout of every step, chained over T steps; the CPU's float
 * exp / softplus are its own polynomials, within 1e-7 relative), and for
 * its gradients of B, C (sums over Di channels) and of A_log, D (sums over
 * B T tokens) that plus the summed length (the terms' own errors are
 * independent, so their sum's relative error does not grow with the count); gla's scan T (K + V) as scan_delta's
 * (tests/cuda_kernels.c); mLSTM's gates T (the max-stabiliser is a running
 * sum over T steps).
 * Sizes: 1, primes and remainders of every tile: the selective scan's lane
 * plans (N 1, 2, 3, 16, 64, 128, 256: 1 to 32 lanes per channel, 1 to 8
 * states per lane), channels past a block's 32 (Di 37, 100), T 17 and 65
 * against the 16-token checkpoints; gla's K and V 1 .. 128 as scan_delta's;
 * fill_rows past its 256-column launches. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>

#include "../kernels/cuda/ops_cuda.h"
#include "../kernels/ops.h"
#include "cuda_check.h"

static void setup(void)
{
    ops_set_threads(1);
    xt_require_gpu();
}

TestSuite(cuda_ops_ssm, .init = setup);

/* scratch for both backends: the larger of the two lengths */
static size_t max_len(size_t cpu, size_t gpu) { return cpu > gpu ? cpu : gpu; }

#define FREE_ALL(...)                                                                      \
    do {                                                                                   \
        xt *all_[] = {__VA_ARGS__};                                                        \
        for (size_t i_ = 0; i_ < sizeof all_ / sizeof *all_; i_++) xt_free(all_[i_]);     \
    } while (0)

/* ---- selective_scan ------------------------------------------------------- */

static void kc_selective(int B, int T, int Di, int N, int eigen_signed, uint64_t seed)
{
    xt_require_gpu();
    cr_log_info("selective_scan B=%d T=%d Di=%d N=%d signed=%d seed=%llu", B, T, Di, N, eigen_signed,
                (unsigned long long)seed);
    fprintf(stderr, "cuda_ops_ssm.selective_scan B=%d T=%d Di=%d N=%d signed=%d: seed %llu\n", B, T, Di, N,
            eigen_signed, (unsigned long long)seed);
    const size_t nd = (size_t)B * T * Di, nn = (size_t)B * T * N, dn = (size_t)Di * N;
    const double tol = tol_sum((double)T * (N + 2));
    const double tol_bc = tol_sum((double)T * (N + 2) + Di);
    const double tol_par = tol_sum((double)T * (N + 2) + (double)B * T);
    xt u = xt_rand(nd, -1, 1, seed), dt_pre = xt_rand(nd, -3, 0.5, seed + 1),
       A_log = xt_rand(dn, -1, 1, seed + 2), Bm = xt_rand(nn, -1, 1, seed + 3),
       Cm = xt_rand(nn, -1, 1, seed + 4), D = xt_rand((size_t)Di, 0.5, 1.5, seed + 5),
       z = xt_rand(nd, -2, 2, seed + 6);
    cr_assert_eq(cuda_selective_scan_cache_len(B, T, Di, N), selective_scan_cache_len(B, T, Di, N),
                 "the GPU keeps the CPU's cache layout");
    xt y = xt_poison(nd), cache = xt_poison(selective_scan_cache_len(B, T, Di, N));
    BOTH(selective_scan_forward(XF(y), XF(cache), XF(u), XF(dt_pre), XF(A_log), XF(Bm), XF(Cm), XF(D),
                                XF(z), eigen_signed, B, T, Di, N));
    xt_expect("selective_scan y", &y, tol);
    xt_expect("selective_scan cache (A, dt, s(dt_pre), checkpoints)", &cache, tol);
    xt dy = xt_rand(nd, -1, 1, seed + 7), du = xt_rand(nd, -1, 1, seed + 8),
       ddt = xt_rand(nd, -1, 1, seed + 9), dA = xt_rand(dn, -1, 1, seed + 10),
       dB = xt_rand(nn, -1, 1, seed + 11), dC = xt_rand(nn, -1, 1, seed + 12),
       dD = xt_rand((size_t)Di, -1, 1, seed + 13), dz = xt_rand(nd, -1, 1, seed + 14);
    xt scratch = xt_poison(max_len(selective_scan_scratch_len(B, T, Di, N),
                                   cuda_selective_scan_scratch_len(B, T, Di, N)));
    BOTH(selective_scan_backward(XF(du), XF(ddt), XF(dA), XF(dB), XF(dC), XF(dD), XF(dz), XF(scratch),
                                 XF(dy), XF(cache), XF(u), XF(dt_pre), XF(Bm), XF(Cm), XF(D), XF(z),
                                 eigen_signed, B, T, Di, N));
    xt_expect("selective_scan du", &du, tol);
    xt_expect("selective_scan ddt_pre", &ddt, tol);
    xt_expect("selective_scan dz", &dz, tol);
    xt_expect("selective_scan dBm", &dB, tol_bc);
    xt_expect("selective_scan dCm", &dC, tol_bc);
    xt_expect("selective_scan dA_log", &dA, tol_par);
    xt_expect("selective_scan dD", &dD, tol_par);
    FREE_ALL(&u, &dt_pre, &A_log, &Bm, &Cm, &D, &z, &y, &cache, &dy, &du, &ddt, &dA, &dB, &dC, &dD, &dz,
             &scratch);
}

/* every lane plan: N 1 .. 256 (1 .. 32 lanes per channel, 1 .. 8 states per lane) */
Test(cuda_ops_ssm, selective_scan_1x1x1x1) { kc_selective(1, 1, 1, 1, 0, 1101); }
Test(cuda_ops_ssm, selective_scan_n2_signed) { kc_selective(2, 17, 5, 2, 1, 1102); }
Test(cuda_ops_ssm, selective_scan_n3) { kc_selective(2, 17, 7, 3, 0, 1103); }
Test(cuda_ops_ssm, selective_scan_n16_di37) { kc_selective(2, 33, 37, 16, 0, 1104); }
Test(cuda_ops_ssm, selective_scan_n16_signed_t65) { kc_selective(3, 65, 64, 16, 1, 1105); }
Test(cuda_ops_ssm, selective_scan_n64_di100) { kc_selective(2, 20, 100, 64, 0, 1106); }
Test(cuda_ops_ssm, selective_scan_n128_signed) { kc_selective(1, 17, 9, 128, 1, 1107); }
Test(cuda_ops_ssm, selective_scan_n256) { kc_selective(1, 5, 3, 256, 0, 1108); }
Test(cuda_ops_ssm, selective_scan_t2) { kc_selective(3, 2, 11, 16, 1, 1109); }
/* mamba's width at d = 128 (Di 256, N 16: 8 channel blocks), 130 tokens
 * (B kept small: the emulator, tools/cuda_emu, runs this too) */
Test(cuda_ops_ssm, selective_scan_wide) { kc_selective(2, 130, 256, 16, 0, 1110); }

/* ---- mamba2's pointwise ops ---------------------------------------------------- */

Test(cuda_ops_ssm, ssd_decay)
{
    const int shapes[][2] = {{1, 1}, {7, 3}, {37, 4}, {1000, 5}}; /* R H */
    uint64_t seed = 1201;
    fprintf(stderr, "cuda_ops_ssm.ssd_decay: seed %llu\n", (unsigned long long)seed);
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (int sgn = 0; sgn < 2; sgn++)
            for (int which = 0; which < 3; which++) { /* ddt and dalpha / ddt NULL / dalpha NULL */
                const int R = shapes[s][0], H = shapes[s][1];
                const size_t n = (size_t)R * H;
                char what[96];
                xt dt_pre = xt_rand(n, -4, 3, seed++), A_log = xt_rand((size_t)H, -1, 1.5, seed++);
                xt dt = xt_poison(n), alpha = xt_poison(n);
                BOTH(ssd_decay_forward(XF(dt), XF(alpha), XF(dt_pre), XF(A_log), sgn, R, H));
                snprintf(what, sizeof what, "ssd_decay dt R=%d H=%d signed=%d", R, H, sgn);
                xt_expect(what, &dt, TOL_POINTWISE);
                snprintf(what, sizeof what, "ssd_decay alpha R=%d H=%d signed=%d", R, H, sgn);
                xt_expect(what, &alpha, TOL_POINTWISE);
                xt ddt = xt_rand(n, -1, 1, seed++), dalpha = xt_rand(n, -1, 1, seed++);
                xt ddt_pre = xt_rand(n, -1, 1, seed++), dA_log = xt_rand((size_t)H, -1, 1, seed++);
                BOTH(ssd_decay_backward(XF(ddt_pre), XF(dA_log), which == 1 ? NULL : XF(ddt),
                                        which == 2 ? NULL : XF(dalpha), XF(dt_pre), XF(A_log), sgn, R, H));
                snprintf(what, sizeof what, "ssd_decay ddt_pre R=%d H=%d signed=%d case=%d", R, H, sgn, which);
                xt_expect(what, &ddt_pre, TOL_POINTWISE);
                snprintf(what, sizeof what, "ssd_decay dA_log R=%d H=%d signed=%d case=%d", R, H, sgn, which);
                xt_expect(what, &dA_log, tol_sum(R));
                FREE_ALL(&dt_pre, &A_log, &dt, &alpha, &ddt, &dalpha, &ddt_pre, &dA_log);
            }
}

Test(cuda_ops_ssm, head_repeat_scale_skip)
{
    const int shapes[][3] = {{1, 1, 1}, {7, 3, 5}, {37, 4, 33}, {300, 2, 16}, {5, 1, 100}}; /* R H K|P */
    uint64_t seed = 1301;
    fprintf(stderr, "cuda_ops_ssm.head_repeat_scale_skip: seed %llu\n", (unsigned long long)seed);
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        const int R = shapes[s][0], H = shapes[s][1], K = shapes[s][2];
        const size_t nrk = (size_t)R * K, n = (size_t)R * H * K, nrh = (size_t)R * H;
        xt inp = xt_rand(nrk, -1, 1, seed++), out = xt_poison(n);
        BOTH(head_repeat_forward(XF(out), XF(inp), R, H, K));
        xt_expect("head_repeat out", &out, TOL_POINTWISE);
        xt dout = xt_rand(n, -1, 1, seed++), dinp = xt_rand(nrk, -1, 1, seed++);
        BOTH(head_repeat_backward(XF(dinp), XF(dout), R, H, K));
        xt_expect("head_repeat dinp", &dinp, tol_sum(H));

        xt x = xt_rand(n, -1, 1, seed++), sc = xt_rand(nrh, -2, 2, seed++), scaled = xt_poison(n);
        BOTH(head_scale_forward(XF(scaled), XF(x), XF(sc), R, H, K));
        xt_expect("head_scale out", &scaled, TOL_POINTWISE);
        xt dx = xt_rand(n, -1, 1, seed++), ds = xt_rand(nrh, -1, 1, seed++);
        BOTH(head_scale_backward(XF(dx), XF(ds), XF(dout), XF(x), XF(sc), R, H, K));
        xt_expect("head_scale dinp", &dx, TOL_POINTWISE);
        xt_expect("head_scale ds", &ds, tol_sum(K));

        /* skip_add with G = H groups of P = K channels */
        xt Dg = xt_rand((size_t)H, 0.5, 1.5, seed++), yv = xt_rand(n, -1, 1, seed++);
        BOTH(skip_add_forward(XF(yv), XF(x), XF(Dg), R, H, K));
        xt_expect("skip_add y", &yv, TOL_POINTWISE);
        xt dx2 = xt_rand(n, -1, 1, seed++), dD = xt_rand((size_t)H, -1, 1, seed++);
        BOTH(skip_add_backward(XF(dx2), XF(dD), XF(dout), XF(x), XF(Dg), R, H, K));
        xt_expect("skip_add dx", &dx2, TOL_POINTWISE);
        xt_expect("skip_add dD", &dD, tol_sum((double)R * K));
        FREE_ALL(&inp, &out, &dout, &dinp, &x, &sc, &scaled, &dx, &ds, &Dg, &yv, &dx2, &dD);
    }
}

/* ---- scan_delta_vec (gla) ------------------------------------------------------- */

static void kc_vec(int B, int T, int H, int K, int V, int signed_alpha, uint64_t seed)
{
    xt_require_gpu();
    cr_log_info("scan_delta_vec B=%d T=%d H=%d K=%d V=%d signed=%d seed=%llu", B, T, H, K, V, signed_alpha,
                (unsigned long long)seed);
    fprintf(stderr, "cuda_ops_ssm.scan_delta_vec B=%d T=%d H=%d K=%d V=%d signed=%d: seed %llu\n", B, T, H, K,
            V, signed_alpha, (unsigned long long)seed);
    const size_t nk = (size_t)B * T * H * K, nv = (size_t)B * T * H * V;
    const double kr = 1 / sqrt((double)K);
    const double tol = tol_sum((double)T * (K + V));
    const real scale = (real)0.7;
    xt q = xt_rand(nk, -1, 1, seed), k = xt_rand(nk, -kr, kr, seed + 1), v = xt_rand(nv, -1, 1, seed + 2),
       alpha = signed_alpha ? xt_rand(nk, -1, 1, seed + 3) : xt_rand(nk, 0.8, 1, seed + 3);
    xt o = xt_poison(nv), states = xt_poison(scan_delta_cache_len(B, T, H, K, V));
    BOTH(scan_delta_vec_forward(XF(o), XF(states), XF(q), XF(k), XF(v), XF(alpha), B, T, H, K, V, scale));
    xt_expect("scan_delta_vec o", &o, tol);
    xt_expect("scan_delta_vec states", &states, tol);
    xt dout = xt_rand(nv, -1, 1, seed + 5), dq = xt_rand(nk, -1, 1, seed + 6),
       dk = xt_rand(nk, -1, 1, seed + 7), dv = xt_rand(nv, -1, 1, seed + 8),
       dalpha = xt_rand(nk, -1, 1, seed + 9);
    xt scratch = xt_poison(max_len(scan_delta_scratch_len(B, T, H, K, V),
                                   cuda_scan_delta_scratch_len(B, T, H, K, V)));
    BOTH(scan_delta_vec_backward(XF(dq), XF(dk), XF(dv), XF(dalpha), XF(scratch), XF(dout), XF(states),
                                 XF(q), XF(k), XF(v), XF(alpha), B, T, H, K, V, scale));
    xt_expect("scan_delta_vec dq", &dq, tol);
    xt_expect("scan_delta_vec dk", &dk, tol);
    xt_expect("scan_delta_vec dv", &dv, tol);
    xt_expect("scan_delta_vec dalpha", &dalpha, tol);
    FREE_ALL(&q, &k, &v, &alpha, &o, &states, &dout, &dq, &dk, &dv, &dalpha, &scratch);
}

/* every register tile (rows 1..16 per thread, columns 1..4) at T = 17 */
Test(cuda_ops_ssm, scan_delta_vec_kv_1x1) { kc_vec(2, 17, 2, 1, 1, 0, 1401); }
Test(cuda_ops_ssm, scan_delta_vec_kv_7x7) { kc_vec(2, 17, 2, 7, 7, 1, 1402); }
Test(cuda_ops_ssm, scan_delta_vec_kv_33x7) { kc_vec(2, 17, 2, 33, 7, 0, 1403); }
Test(cuda_ops_ssm, scan_delta_vec_kv_7x33) { kc_vec(2, 17, 2, 7, 33, 1, 1404); }
Test(cuda_ops_ssm, scan_delta_vec_kv_64x64) { kc_vec(2, 17, 2, 64, 64, 0, 1405); }
Test(cuda_ops_ssm, scan_delta_vec_kv_5x100) { kc_vec(2, 17, 2, 5, 100, 1, 1406); }
Test(cuda_ops_ssm, scan_delta_vec_kv_128x128) { kc_vec(2, 17, 2, 128, 128, 0, 1407); }
/* T 1, 2, 65; gla's heads at d = 128 (4 of 32) over 130 tokens */
Test(cuda_ops_ssm, scan_delta_vec_t1) { kc_vec(1, 1, 1, 7, 33, 0, 1411); }
Test(cuda_ops_ssm, scan_delta_vec_t2) { kc_vec(2, 2, 3, 33, 1, 1, 1412); }
Test(cuda_ops_ssm, scan_delta_vec_t65) { kc_vec(3, 65, 2, 16, 32, 0, 1413); }
Test(cuda_ops_ssm, scan_delta_vec_heads_d128) { kc_vec(2, 130, 4, 32, 32, 0, 1414); }

/* ---- gates of the delta family ---------------------------------------------------- */

Test(cuda_ops_ssm, sigmoid_pow)
{
    const size_t sizes[] = {1, 7, 1000, 100003};
    const real powers[] = {1, (real)0.0625, 3};
    uint64_t seed = 1501;
    fprintf(stderr, "cuda_ops_ssm.sigmoid_pow: seed %llu\n", (unsigned long long)seed);
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++)
        for (size_t pi = 0; pi < sizeof powers / sizeof *powers; pi++)
            for (int sgn = 0; sgn < 2; sgn++) {
                const size_t n = sizes[s];
                char what[96];
                xt inp = xt_rand(n, -8, 8, seed++), out = xt_poison(n);
                xt dout = xt_rand(n, -1, 1, seed++), dinp = xt_rand(n, -1, 1, seed++);
                BOTH(sigmoid_pow_forward(XF(out), XF(inp), n, powers[pi], sgn));
                snprintf(what, sizeof what, "sigmoid_pow out n=%zu p=%g signed=%d", n, (double)powers[pi], sgn);
                xt_expect(what, &out, TOL_POINTWISE);
                BOTH(sigmoid_pow_backward(XF(dinp), XF(dout), XF(inp), n, powers[pi], sgn));
                snprintf(what, sizeof what, "sigmoid_pow dinp n=%zu p=%g signed=%d", n, (double)powers[pi], sgn);
                xt_expect(what, &dinp, TOL_POINTWISE);
                FREE_ALL(&inp, &out, &dout, &dinp);
            }
}

Test(cuda_ops_ssm, mlstm_gates)
{
    const int shapes[][3] = {{1, 1, 1}, {2, 17, 3}, {3, 65, 4}, {5, 256, 2}}; /* B T H */
    uint64_t seed = 1601;
    fprintf(stderr, "cuda_ops_ssm.mlstm_gates: seed %llu\n", (unsigned long long)seed);
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        const int B = shapes[s][0], T = shapes[s][1], H = shapes[s][2];
        const size_t n = (size_t)B * T * H;
        const double tol = tol_sum(T);
        /* f~ mostly open (xLSTM's forget bias), i~ around it: both branches of the max */
        xt f_pre = xt_rand(n, -2, 6, seed++), i_pre = xt_rand(n, -3, 3, seed++);
        xt fgate = xt_poison(n), igate = xt_poison(n), m = xt_poison(n);
        BOTH(mlstm_gates_forward(XF(fgate), XF(igate), XF(m), XF(f_pre), XF(i_pre), B, T, H));
        xt_expect("mlstm_gates fgate", &fgate, tol);
        xt_expect("mlstm_gates igate", &igate, tol);
        xt_expect("mlstm_gates m", &m, tol);
        xt dfg = xt_rand(n, -1, 1, seed++), dig = xt_rand(n, -1, 1, seed++), dm = xt_rand(n, -1, 1, seed++);
        xt df = xt_rand(n, -1, 1, seed++), di = xt_rand(n, -1, 1, seed++);
        BOTH(mlstm_gates_backward(XF(df), XF(di), XF(dfg), XF(dig), XF(dm), XF(fgate), XF(igate), XF(m),
                                  XF(f_pre), XF(i_pre), B, T, H));
        xt_expect("mlstm_gates df_pre", &df, tol);
        xt_expect("mlstm_gates di_pre", &di, tol);
        FREE_ALL(&f_pre, &i_pre, &fgate, &igate, &m, &dfg, &dig, &dm, &df, &di);
    }
}

Test(cuda_ops_ssm, mlstm_den)
{
    const size_t sizes[] = {1, 7, 1000, 100003};
    uint64_t seed = 1701;
    fprintf(stderr, "cuda_ops_ssm.mlstm_den: seed %llu\n", (unsigned long long)seed);
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        const size_t n = sizes[s];
        /* |nq| and exp(-m) both in about [0, 2]: both branches of the max */
        xt nq = xt_rand(n, -2, 2, seed++), m = xt_rand(n, -0.7, 3, seed++), den = xt_poison(n);
        BOTH(mlstm_den_forward(XF(den), XF(nq), XF(m), n));
        xt_expect("mlstm_den den", &den, TOL_POINTWISE);
        xt dden = xt_rand(n, -1, 1, seed++), dnq = xt_rand(n, -1, 1, seed++), dm = xt_rand(n, -1, 1, seed++);
        BOTH(mlstm_den_backward(XF(dnq), XF(dm), XF(dden), XF(nq), XF(m), n));
        xt_expect("mlstm_den dnq", &dnq, TOL_POINTWISE);
        xt_expect("mlstm_den dm", &dm, TOL_POINTWISE);
        FREE_ALL(&nq, &m, &den, &dden, &dnq, &dm);
    }
}

Test(cuda_ops_ssm, fill_rows)
{
    const int shapes[][2] = {{1, 1}, {7, 3}, {37, 256}, {5, 300}, {3, 513}}; /* N C */
    fprintf(stderr, "cuda_ops_ssm.fill_rows: values 1 - 2^-(5+c)\n");
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        const int N = shapes[s][0], C = shapes[s][1];
        double row[513];
        for (int c = 0; c < C; c++) row[c] = 1 - ldexp(1.0, -5 - c % 20) + c; /* distinct per column */
        xt out = xt_poison((size_t)N * C);
        BOTH(fill_rows(XF(out), row, N, C));
        xt_expect("fill_rows out", &out, 0); /* one rounding to float on both: exact */
        xt_free(&out);
    }
}
