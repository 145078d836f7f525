/* cuda_ops_rnn.c: the recurrent cells and diagonal recurrences on the GPU
 * against the CPU (kernels/cuda/{rnn_cell,gates,scan_diag}.cu): elman, gru
 * and slstm with block-diagonal R over heads; the gates of mingru, minlstm
 * and hgrn; the real and complex scan_diag; LRU's parameter map; S4D's
 * checkpointed scan; forward and backward, with the kit of cuda_check.h:
 * each op runs once per backend (BOTH) on the same seeded inputs; outputs
 * start as NaN, so unwritten elements show; guards on both sides of every
 * tensor; gradients start from the same random values, so the backward's +=
 * (not =) is checked too. Each backward runs from its own side's forward
 * caches.
 *
 * Tolerances (cuda_check.h): pointwise maps TOL_POINTWISE (the CPU's float
 * exp / tanh are its own polynomials, within 2^-21); a sum of len terms
 * tol_sum(len), with len the terms that feed one output through every sum
 * on its way: the cells T G d (the G Dh-long sums of R h every step, chained
 * over T steps; lstm's count in tests/cuda_kernels.c), their dR that plus
 * the B T rows it sums; the real scan T; the complex scan T, its da B T;
 * S4D T M per output, its parameters' gradients B T M; LRU's map 2 H (the
 * dgamma sum). With TF32 gemms (STATEBENCH_TF32=1) the cells get 1e-4.
 * Recurrent weights are scaled by Dh^-1/2 so the cells contract: an
 * expanding (chaotic) recurrence would amplify any rounding difference
 * exponentially in T, whatever the kernel.
 * Sizes: 1, primes and remainders: heads 1 to 4 with Dh 1 to 32, B d past
 * a 256-thread block, T 17 and 65 against S4D's 16-step checkpoints, the
 * real scan's 8 time chunks (T 1 and 9: empty chunks) and its one-chunk
 * form (B C >= 65536), the complex scan's 32-channel blocks and 8 batch
 * slices (C 40, B 9), S4D's lane plans (M 1, 8, 13, 40, 64, 100: 1 to 32
 * lanes per channel, 1 to 4 modes per lane) and its 16 batch slices (B 17). */
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

TestSuite(cuda_ops_rnn, .init = setup);

/* scratch for both backends: the larger of the two lengths */
static size_t max_len(size_t cpu, size_t gpu) { return cpu > gpu ? cpu : gpu; }

#define FREE_ALL(...)                                                                      \
    do {                                                                                   \
        xt *all_[] = {__VA_ARGS__};                                                        \
        for (size_t i_ = 0; i_ < sizeof all_ / sizeof *all_; i_++) xt_free(all_[i_]);     \
    } while (0)

static void announce(const char *what, uint64_t seed)
{
    cr_log_info("%s seed=%llu", what, (unsigned long long)seed);
    fprintf(stderr, "cuda_ops_rnn.%s: seed %llu\n", what, (unsigned long long)seed);
}

/* ---- rnn_cell: elman, gru, slstm ----------------------------------------- */

typedef enum { KC_ELMAN, KC_GRU, KC_SLSTM } kc_cell;

static void kc_cell_run(kc_cell cell, int B, int T, int d, int H, uint64_t seed)
{
    xt_require_gpu();
    static const char *names[] = {"elman", "gru", "slstm"};
    char what[160];
    snprintf(what, sizeof what, "%s B=%d T=%d d=%d H=%d", names[cell], B, T, d, H);
    announce(what, seed);
    const size_t G = cell == KC_ELMAN ? 1 : cell == KC_GRU ? 3 : 4;
    const size_t Dh = (size_t)(d / H), nh = (size_t)B * T * d, nR = (size_t)H * G * Dh * Dh;
    const size_t ncache = cell == KC_GRU ? 4 * nh : cell == KC_SLSTM ? 5 * nh : 1;
    const double tol = xt_tol_gemm(tol_sum((double)T * G * d));
    const double tol_dR = xt_tol_gemm(tol_sum((double)T * G * d + (double)B * T));
    const double rs = 1 / sqrt((double)Dh);
    xt gx = xt_rand(G * nh, -1, 1, seed), R = xt_rand(nR, -rs, rs, seed + 1);
    xt h = xt_poison(nh), c = xt_poison(nh), n = xt_poison(nh), gates = xt_poison(ncache);
    size_t (*len_cpu)(int, int, int, int) = cell == KC_ELMAN ? elman_scratch_len
                                            : cell == KC_GRU ? gru_scratch_len : slstm_scratch_len;
    size_t (*len_gpu)(int, int, int, int) = cell == KC_ELMAN ? cuda_elman_scratch_len
                                            : cell == KC_GRU ? cuda_gru_scratch_len
                                                             : cuda_slstm_scratch_len;
    xt scratch = xt_poison(max_len(len_cpu(B, T, d, H), len_gpu(B, T, d, H)));
    switch (cell) {
    case KC_ELMAN: BOTH(elman_forward(XF(h), XF(scratch), XF(gx), XF(R), B, T, d, H)); break;
    case KC_GRU: BOTH(gru_forward(XF(h), XF(gates), XF(scratch), XF(gx), XF(R), B, T, d, H)); break;
    case KC_SLSTM:
        BOTH(slstm_forward(XF(h), XF(c), XF(n), XF(gates), XF(scratch), XF(gx), XF(R), B, T, d, H));
        break;
    }
    snprintf(what, sizeof what, "%s h", names[cell]);
    xt_expect(what, &h, tol);
    if (cell != KC_ELMAN) {
        snprintf(what, sizeof what, "%s gates cache", names[cell]);
        xt_expect(what, &gates, tol);
    }
    if (cell == KC_SLSTM) {
        xt_expect("slstm c", &c, tol);
        xt_expect("slstm n", &n, tol);
    }
    xt dh = xt_rand(nh, -1, 1, seed + 2), dgx = xt_rand(G * nh, -1, 1, seed + 3),
       dR = xt_rand(nR, -1, 1, seed + 4);
    switch (cell) {
    case KC_ELMAN:
        BOTH(elman_backward(XF(dgx), XF(dR), XF(scratch), XF(dh), XF(h), XF(R), B, T, d, H));
        break;
    case KC_GRU:
        BOTH(gru_backward(XF(dgx), XF(dR), XF(scratch), XF(dh), XF(h), XF(gates), XF(R), B, T, d, H));
        break;
    case KC_SLSTM:
        BOTH(slstm_backward(XF(dgx), XF(dR), XF(scratch), XF(dh), XF(h), XF(c), XF(n), XF(gates), XF(R),
                            B, T, d, H));
        break;
    }
    snprintf(what, sizeof what, "%s dgx", names[cell]);
    xt_expect(what, &dgx, tol);
    snprintf(what, sizeof what, "%s dR", names[cell]);
    xt_expect(what, &dR, tol_dR);
    FREE_ALL(&gx, &R, &h, &c, &n, &gates, &scratch, &dh, &dgx, &dR);
}

Test(cuda_ops_rnn, elman_1x1x1_h1) { kc_cell_run(KC_ELMAN, 1, 1, 1, 1, 801); }
Test(cuda_ops_rnn, elman_3x17x5_h1) { kc_cell_run(KC_ELMAN, 3, 17, 5, 1, 802); }
Test(cuda_ops_rnn, elman_2x9x12_h3) { kc_cell_run(KC_ELMAN, 2, 9, 12, 3, 803); }
Test(cuda_ops_rnn, elman_5x65x64_h1) { kc_cell_run(KC_ELMAN, 5, 65, 64, 1, 804); }
Test(cuda_ops_rnn, gru_1x1x1_h1) { kc_cell_run(KC_GRU, 1, 1, 1, 1, 811); }
Test(cuda_ops_rnn, gru_3x17x5_h1) { kc_cell_run(KC_GRU, 3, 17, 5, 1, 812); }
Test(cuda_ops_rnn, gru_2x9x12_h3) { kc_cell_run(KC_GRU, 2, 9, 12, 3, 813); }
Test(cuda_ops_rnn, gru_5x65x64_h2) { kc_cell_run(KC_GRU, 5, 65, 64, 2, 814); }
Test(cuda_ops_rnn, slstm_1x1x1_h1) { kc_cell_run(KC_SLSTM, 1, 1, 1, 1, 821); }
Test(cuda_ops_rnn, slstm_3x17x5_h1) { kc_cell_run(KC_SLSTM, 3, 17, 5, 1, 822); }
Test(cuda_ops_rnn, slstm_2x9x12_h4) { kc_cell_run(KC_SLSTM, 2, 9, 12, 4, 823); }
Test(cuda_ops_rnn, slstm_5x65x64_h4) { kc_cell_run(KC_SLSTM, 5, 65, 64, 4, 824); }
Test(cuda_ops_rnn, slstm_9x33x96_h3) { kc_cell_run(KC_SLSTM, 9, 33, 96, 3, 825); }
/* The persistent kernels (kernels/cuda/rnn_persist.cu) run when a head's R
 * (G Dh Dh floats) fits in shared memory (227 KiB here, as on sm_90), in
 * batch slices of 128 / Dh rows; past that the per-step gemm path runs.
 * The sizes above all take the persistent path; below: slices that leave a
 * remainder (B 9 in 4 + 4 + 1 rows, B 19 in 18 + 1), odd Dh with H > 1,
 * one row per block (Dh > 128), the largest R that fits and the smallest
 * that does not (the per-step path, H 1 and H > 1); elman's Dh 240 runs the
 * persistent forward and the per-step backward (whose rows need 3 Dh
 * floats beside R, the forward's 2 Dh). Each path was checked to be taken
 * by perturbing its output. */
Test(cuda_ops_rnn, gru_9x7x96_h3) { kc_cell_run(KC_GRU, 9, 7, 96, 3, 815); }
Test(cuda_ops_rnn, gru_19x11x21_h3) { kc_cell_run(KC_GRU, 19, 11, 21, 3, 816); }
Test(cuda_ops_rnn, elman_19x5x35_h5) { kc_cell_run(KC_ELMAN, 19, 5, 35, 5, 805); }
Test(cuda_ops_rnn, slstm_19x6x26_h2) { kc_cell_run(KC_SLSTM, 19, 6, 26, 2, 826); }
Test(cuda_ops_rnn, elman_3x6x240_h1) { kc_cell_run(KC_ELMAN, 3, 6, 240, 1, 806); }
Test(cuda_ops_rnn, elman_3x6x241_h1) { kc_cell_run(KC_ELMAN, 3, 6, 241, 1, 807); }
Test(cuda_ops_rnn, gru_2x5x138_h1) { kc_cell_run(KC_GRU, 2, 5, 138, 1, 817); }
Test(cuda_ops_rnn, gru_2x5x139_h1) { kc_cell_run(KC_GRU, 2, 5, 139, 1, 818); }
Test(cuda_ops_rnn, slstm_2x5x119_h1) { kc_cell_run(KC_SLSTM, 2, 5, 119, 1, 827); }
Test(cuda_ops_rnn, slstm_2x5x256_h2) { kc_cell_run(KC_SLSTM, 2, 5, 256, 2, 828); }
Test(cuda_ops_rnn, slstm_3x1x96_h3) { kc_cell_run(KC_SLSTM, 3, 1, 96, 3, 829); }

/* ---- lstm (H 1, R (4d, d)): the persistent forward up to d 120 ------------ */

static void kc_lstm_run(int B, int T, int d, uint64_t seed)
{
    xt_require_gpu();
    char what[96];
    snprintf(what, sizeof what, "lstm B=%d T=%d d=%d", B, T, d);
    announce(what, seed);
    const size_t G = 4 * (size_t)d, nh = (size_t)B * T * d, ng = (size_t)B * T * G;
    const double tol = xt_tol_gemm(tol_sum((double)T * G));
    const double rs = 1 / sqrt((double)d);
    xt gx = xt_rand(ng, -1, 1, seed), R = xt_rand(G * d, -rs, rs, seed + 1);
    xt h = xt_poison(nh), c = xt_poison(nh), gates = xt_poison(ng);
    BOTH(lstm_forward(XF(h), XF(c), XF(gates), XF(gx), XF(R), B, T, d));
    xt_expect("lstm h", &h, tol);
    xt_expect("lstm c", &c, tol);
    xt_expect("lstm gates", &gates, tol);
    xt dh = xt_rand(nh, -1, 1, seed + 2), dgx = xt_rand(ng, -1, 1, seed + 3),
       dR = xt_rand(G * d, -1, 1, seed + 4);
    xt scratch = xt_poison(max_len(lstm_scratch_len(B, d), cuda_lstm_scratch_len(B, d)));
    BOTH(lstm_backward(XF(dgx), XF(dR), XF(scratch), XF(dh), XF(h), XF(c), XF(gates), XF(R), B, T, d));
    xt_expect("lstm dgx", &dgx, tol);
    xt_expect("lstm dR", &dR, xt_tol_gemm(tol_sum((double)T * G + (double)B * T)));
    FREE_ALL(&gx, &R, &h, &c, &gates, &dh, &dgx, &dR, &scratch);
}

Test(cuda_ops_rnn, lstm_1x1x1) { kc_lstm_run(1, 1, 1, 891); }
Test(cuda_ops_rnn, lstm_19x9x7) { kc_lstm_run(19, 9, 7, 892); }
Test(cuda_ops_rnn, lstm_3x7x120) { kc_lstm_run(3, 7, 120, 893); }
Test(cuda_ops_rnn, lstm_3x7x121) { kc_lstm_run(3, 7, 121, 894); }
/* the persistent backward (one block, R and dR on chip: 8 d^2 + 10 B d
 * floats) up to B 8 at d 80; B 9 takes the per-step backward */
Test(cuda_ops_rnn, lstm_8x5x80) { kc_lstm_run(8, 5, 80, 895); }
Test(cuda_ops_rnn, lstm_9x5x80) { kc_lstm_run(9, 5, 80, 896); }

/* ---- gates of the diagonal recurrences ------------------------------------ */

Test(cuda_ops_rnn, diag_gates)
{
    const size_t sizes[] = {1, 7, 1000, 70001};
    uint64_t seed = 830;
    announce("diag_gates", seed);
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++)
        for (int sg = 0; sg < 2; sg++) {
            const size_t n = sizes[s];
            /* both branches of minGRU's g, saturated and tiny gates */
            xt p1 = xt_rand(n, -8, 8, seed++), p2 = xt_rand(n, -8, 8, seed++),
               p3 = xt_rand(n, -4, 4, seed++);
            xt a = xt_poison(n), b = xt_poison(n);
            xt da = xt_rand(n, -1, 1, seed++), db = xt_rand(n, -1, 1, seed++);
            xt d1 = xt_rand(n, -1, 1, seed++), d2 = xt_rand(n, -1, 1, seed++),
               d3 = xt_rand(n, -1, 1, seed++);

            BOTH(mingru_gates_forward(XF(a), XF(b), XF(p1), XF(p2), n, sg));
            xt_expect("mingru a", &a, TOL_POINTWISE);
            xt_expect("mingru b", &b, TOL_POINTWISE);
            BOTH(mingru_gates_backward(XF(d1), XF(d2), XF(da), XF(db), XF(p1), XF(p2), n, sg));
            xt_expect("mingru dpz", &d1, TOL_POINTWISE);
            xt_expect("mingru dph", &d2, TOL_POINTWISE);

            BOTH(hgrn_gates_forward(XF(a), XF(b), XF(p1), XF(p2), n, sg));
            xt_expect("hgrn a", &a, TOL_POINTWISE);
            xt_expect("hgrn b", &b, TOL_POINTWISE);
            BOTH(hgrn_gates_backward(XF(d1), XF(d2), XF(da), XF(db), XF(p1), XF(p2), n, sg));
            xt_expect("hgrn dpf", &d1, TOL_POINTWISE);
            xt_expect("hgrn dpi", &d2, TOL_POINTWISE);

            BOTH(minlstm_gates_forward(XF(a), XF(b), XF(p1), XF(p2), XF(p3), n));
            xt_expect("minlstm a", &a, TOL_POINTWISE);
            xt_expect("minlstm b", &b, TOL_POINTWISE);
            BOTH(minlstm_gates_backward(XF(d1), XF(d2), XF(d3), XF(da), XF(db), XF(p1), XF(p2), XF(p3), n));
            xt_expect("minlstm dpf", &d1, TOL_POINTWISE);
            xt_expect("minlstm dpi", &d2, TOL_POINTWISE);
            xt_expect("minlstm dph", &d3, TOL_POINTWISE);
            FREE_ALL(&p1, &p2, &p3, &a, &b, &da, &db, &d1, &d2, &d3);
        }
}

/* ---- scan_diag, real ------------------------------------------------------ */

static void kc_scan_diag(int B, int T, int C, uint64_t seed)
{
    xt_require_gpu();
    char what[96];
    snprintf(what, sizeof what, "scan_diag B=%d T=%d C=%d", B, T, C);
    announce(what, seed);
    const size_t n = (size_t)B * T * C;
    const double tol = tol_sum(T);
    /* decays of both signs (eigen: signed), up to 0.99 in magnitude */
    xt a = xt_rand(n, -0.99, 0.99, seed), b = xt_rand(n, -1, 1, seed + 1), h = xt_poison(n);
    BOTH(scan_diag_forward(XF(h), XF(a), XF(b), B, T, C));
    xt_expect("scan_diag h", &h, tol);
    xt dh = xt_rand(n, -1, 1, seed + 2), da = xt_rand(n, -1, 1, seed + 3), db = xt_rand(n, -1, 1, seed + 4);
    BOTH(scan_diag_backward(XF(da), XF(db), XF(dh), XF(h), XF(a), B, T, C));
    xt_expect("scan_diag da", &da, tol);
    xt_expect("scan_diag db", &db, tol);
    FREE_ALL(&a, &b, &h, &dh, &da, &db);
}

Test(cuda_ops_rnn, scan_diag_1x1x1) { kc_scan_diag(1, 1, 1, 841); }
Test(cuda_ops_rnn, scan_diag_2x17x5) { kc_scan_diag(2, 17, 5, 842); }
Test(cuda_ops_rnn, scan_diag_3x65x33) { kc_scan_diag(3, 65, 33, 843); }
Test(cuda_ops_rnn, scan_diag_4x257x100) { kc_scan_diag(4, 257, 100, 844); }
/* T 9 in 8 time chunks of 2: the last chunks are empty */
Test(cuda_ops_rnn, scan_diag_3x9x7) { kc_scan_diag(3, 9, 7, 845); }
/* B C past SDIAG_SPLIT_BELOW: one chunk, the plain sequential scan */
Test(cuda_ops_rnn, scan_diag_2x5x40000) { kc_scan_diag(2, 5, 40000, 846); }

/* ---- scan_diag, complex ---------------------------------------------------- */

static void kc_scan_complex(int B, int T, int C, uint64_t seed)
{
    xt_require_gpu();
    char what[96];
    snprintf(what, sizeof what, "scan_diag_complex B=%d T=%d C=%d", B, T, C);
    announce(what, seed);
    const size_t n = (size_t)B * T * 2 * C;
    /* |a| <= 0.7 sqrt(2) < 0.99 */
    xt a = xt_rand(2 * (size_t)C, -0.7, 0.7, seed), x = xt_rand(n, -1, 1, seed + 1), h = xt_poison(n);
    BOTH(scan_diag_complex_forward(XF(h), XF(a), XF(x), B, T, C));
    xt_expect("scan_diag_complex h", &h, tol_sum(T));
    xt dh = xt_rand(n, -1, 1, seed + 2), dx = xt_rand(n, -1, 1, seed + 3),
       da = xt_rand(2 * (size_t)C, -1, 1, seed + 4);
    BOTH(scan_diag_complex_backward(XF(dx), XF(da), XF(dh), XF(h), XF(a), B, T, C));
    xt_expect("scan_diag_complex dx", &dx, tol_sum(T));
    xt_expect("scan_diag_complex da", &da, tol_sum((double)B * T));
    FREE_ALL(&a, &x, &h, &dh, &dx, &da);
}

Test(cuda_ops_rnn, scan_complex_1x1x1) { kc_scan_complex(1, 1, 1, 851); }
Test(cuda_ops_rnn, scan_complex_3x17x5) { kc_scan_complex(3, 17, 5, 852); }
Test(cuda_ops_rnn, scan_complex_9x33x40) { kc_scan_complex(9, 33, 40, 853); }
Test(cuda_ops_rnn, scan_complex_2x129x64) { kc_scan_complex(2, 129, 64, 854); }

/* ---- LRU's parameters ------------------------------------------------------ */

static void kc_lru_params(int N, int H, uint64_t seed)
{
    xt_require_gpu();
    char what[96];
    snprintf(what, sizeof what, "lru_params N=%d H=%d", N, H);
    announce(what, seed);
    const size_t nB = 2 * (size_t)N * H;
    /* the init's ranges: |lambda| in [0.01, 0.99] (nu_log = log(-log r)), phases up to 2 pi */
    xt nu = xt_rand((size_t)N, -4.6, 1.5, seed), th = xt_rand((size_t)N, -3, 1.8, seed + 1),
       Bm = xt_rand(nB, -1, 1, seed + 2);
    xt lambda = xt_poison(2 * (size_t)N), Bn = xt_poison(nB);
    BOTH(lru_params_forward(XF(lambda), XF(Bn), XF(nu), XF(th), XF(Bm), N, H));
    xt_expect("lru lambda", &lambda, TOL_POINTWISE);
    xt_expect("lru B_norm", &Bn, TOL_POINTWISE);
    xt dl = xt_rand(2 * (size_t)N, -1, 1, seed + 3), dBn = xt_rand(nB, -1, 1, seed + 4),
       dnu = xt_rand((size_t)N, -1, 1, seed + 5), dth = xt_rand((size_t)N, -1, 1, seed + 6),
       dB = xt_rand(nB, -1, 1, seed + 7);
    BOTH(lru_params_backward(XF(dnu), XF(dth), XF(dB), XF(dl), XF(dBn), XF(nu), XF(th), XF(Bm), N, H));
    xt_expect("lru dnu_log", &dnu, tol_sum(2.0 * H));
    xt_expect("lru dtheta_log", &dth, TOL_POINTWISE);
    xt_expect("lru dB", &dB, TOL_POINTWISE);
    FREE_ALL(&nu, &th, &Bm, &lambda, &Bn, &dl, &dBn, &dnu, &dth, &dB);
}

Test(cuda_ops_rnn, lru_params_1x1) { kc_lru_params(1, 1, 861); }
Test(cuda_ops_rnn, lru_params_5x3) { kc_lru_params(5, 3, 862); }
Test(cuda_ops_rnn, lru_params_33x200) { kc_lru_params(33, 200, 863); }

/* ---- S4D ------------------------------------------------------------------- */

static void kc_s4d(int B, int T, int C, int M, uint64_t seed)
{
    xt_require_gpu();
    char what[96];
    snprintf(what, sizeof what, "s4d_scan B=%d T=%d C=%d M=%d", B, T, C, M);
    announce(what, seed);
    const size_t nu = (size_t)B * T * C, CM = (size_t)C * M;
    const double tol = tol_sum((double)T * M), tol_par = tol_sum((double)B * T * M);
    /* dt in [1e-3, 1e-1] as the init; A's real part -exp([-1, 0.7]); S4D-Lin's
     * imaginary parts up to pi M */
    xt u = xt_rand(nu, -1, 1, seed), log_dt = xt_rand((size_t)C, -6.9, -2.3, seed + 1),
       Are = xt_rand(CM, -1, 0.7, seed + 2), Aim = xt_rand(CM, 0, 3.14159 * M, seed + 3),
       Cm = xt_rand(2 * CM, -1, 1, seed + 4), D = xt_rand((size_t)C, -1, 1, seed + 5);
    cr_assert_eq(cuda_s4d_scan_cache_len(B, T, C, M), s4d_scan_cache_len(B, T, C, M),
                 "the GPU keeps the CPU's cache layout");
    xt y = xt_poison(nu), cache = xt_poison(s4d_scan_cache_len(B, T, C, M));
    BOTH(s4d_scan_forward(XF(y), XF(cache), XF(u), XF(log_dt), XF(Are), XF(Aim), XF(Cm), XF(D), B, T, C, M));
    xt_expect("s4d y", &y, tol);
    xt_expect("s4d cache (abar, bbar, checkpoints)", &cache, tol);
    xt dy = xt_rand(nu, -1, 1, seed + 6), du = xt_rand(nu, -1, 1, seed + 7),
       dldt = xt_rand((size_t)C, -1, 1, seed + 8), dAre = xt_rand(CM, -1, 1, seed + 9),
       dAim = xt_rand(CM, -1, 1, seed + 10), dCm = xt_rand(2 * CM, -1, 1, seed + 11),
       dD = xt_rand((size_t)C, -1, 1, seed + 12);
    xt scratch = xt_poison(max_len(s4d_scan_scratch_len(B, T, C, M), cuda_s4d_scan_scratch_len(B, T, C, M)));
    BOTH(s4d_scan_backward(XF(du), XF(dldt), XF(dAre), XF(dAim), XF(dCm), XF(dD), XF(scratch), XF(dy),
                           XF(cache), XF(u), XF(log_dt), XF(Are), XF(Aim), XF(Cm), XF(D), B, T, C, M));
    xt_expect("s4d du", &du, tol);
    xt_expect("s4d dlog_dt", &dldt, tol_par);
    xt_expect("s4d dA_re_log", &dAre, tol_par);
    xt_expect("s4d dA_im", &dAim, tol_par);
    xt_expect("s4d dCm", &dCm, tol_par);
    xt_expect("s4d dD", &dD, tol_par);
    FREE_ALL(&u, &log_dt, &Are, &Aim, &Cm, &D, &y, &cache, &dy, &du, &dldt, &dAre, &dAim, &dCm, &dD,
             &scratch);
}

Test(cuda_ops_rnn, s4d_1x1x1x1) { kc_s4d(1, 1, 1, 1, 871); }
Test(cuda_ops_rnn, s4d_2x17x3x8) { kc_s4d(2, 17, 3, 8, 872); }
Test(cuda_ops_rnn, s4d_3x33x5x13) { kc_s4d(3, 33, 5, 13, 873); }
Test(cuda_ops_rnn, s4d_17x20x3x40) { kc_s4d(17, 20, 3, 40, 874); }
Test(cuda_ops_rnn, s4d_2x65x4x64) { kc_s4d(2, 65, 4, 64, 875); }
Test(cuda_ops_rnn, s4d_1x5x2x100) { kc_s4d(1, 5, 2, 100, 876); }
