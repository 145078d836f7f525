/* cuda_kernels.c: the sequence kernels of the CUDA backend (lstm, scan_delta,
 * rope, attention; kernels/cuda/{lstm,scan_delta,attention}.cu) against the
 * CPU backend, forward and backward, with the kit of cuda_check.h: each op
 * runs once per backend (BOTH) on the same seeded inputs; device outputs
 * start as NaN, so unwritten elements show; guards on both sides of every
 * tensor; gradients start from the same random values, so the backward's
 * += (not =) is checked too. Each backward runs from its own side's forward
 * caches.
 * Tolerances (cuda_check.h): tol_sum(len) with len the number of terms that
 * feed one output through every sum on its way: lstm T 4d (a sum over the
 * 4d gates' inputs per step, chained over T steps), attention T D, scan_delta
 * T (K + V) (the K- and V-long sums of every step, chained over T); rope is
 * one rotation per pair, TOL_POINTWISE. With TF32 gemms (STATEBENCH_TF32=1)
 * the gemm operands keep 10-bit mantissas (eps 2^-11 = 4.9e-4), so the ops
 * built on cuBLAS (lstm) get an nmse of 1e-4; attention is a fused fp32
 * kernel without gemms and keeps its fp32 bound.
 * Sizes: 1, primes and remainders of every tile (V 33 and 100 against
 * 32-column tiles, T 17 and 65 against 16-token checkpoints, K and V from 1
 * to 128, every register tile shape of the scan). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/cuda/ops_cuda.h"
#include "../kernels/ops.h"
#include "cuda_check.h"

#define TOL_TF32 1e-4

/* tolerance of an op built on cuBLAS gemms */
static double gemm_tol(double tol) { return cuda_ops_tf32() ? TOL_TF32 : tol; }

/* scratch for both backends: the larger of the two lengths */
static size_t max_len(size_t cpu, size_t gpu) { return cpu > gpu ? cpu : gpu; }

/* ---- lstm ---------------------------------------------------------------- */

static void kc_lstm(int B, int T, int d, uint64_t seed)
{
    xt_require_gpu();
    cr_log_info("lstm B=%d T=%d d=%d seed=%llu", B, T, d, (unsigned long long)seed);
    const size_t G = 4 * (size_t)d, nh = (size_t)B * T * d, ng = (size_t)B * T * G;
    const double tol = gemm_tol(tol_sum((double)T * G));
    xt gx = xt_rand(ng, -1, 1, seed), R = xt_rand(G * d, -0.5, 0.5, seed + 1);
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
    xt_expect("lstm dR", &dR, tol);
    xt *all[] = {&gx, &R, &h, &c, &gates, &dh, &dgx, &dR, &scratch};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) xt_free(all[i]);
}

Test(cuda_kernels, lstm_1x1x1) { kc_lstm(1, 1, 1, 701); }
Test(cuda_kernels, lstm_3x17x5) { kc_lstm(3, 17, 5, 702); }
Test(cuda_kernels, lstm_2x2x33) { kc_lstm(2, 2, 33, 703); }
Test(cuda_kernels, lstm_5x65x64) { kc_lstm(5, 65, 64, 704); }
Test(cuda_kernels, lstm_32x64x128) { kc_lstm(32, 64, 128, 705); }

/* ---- rope ------------------------------------------------------------------ */

static void kc_rope(int B, int T, int H, int D, uint64_t seed)
{
    xt_require_gpu();
    cr_log_info("rope B=%d T=%d H=%d D=%d seed=%llu", B, T, H, D, (unsigned long long)seed);
    const size_t n = (size_t)B * T * H * D;
    const real theta = 10000;
    xt x = xt_rand(n, -1, 1, seed), out = xt_poison(n);
    BOTH(rope_forward(XF(out), XF(x), B, T, H, D, theta));
    xt_expect("rope out", &out, TOL_POINTWISE);
    BOTH(rope_forward(XF(x), XF(x), B, T, H, D, theta)); /* in place */
    xt_expect("rope in place", &x, TOL_POINTWISE);
    xt dy = xt_rand(n, -1, 1, seed + 1), dx = xt_rand(n, -1, 1, seed + 2);
    BOTH(rope_backward(XF(dx), XF(dy), B, T, H, D, theta));
    xt_expect("rope dinp", &dx, TOL_POINTWISE);
    xt_free(&x), xt_free(&out), xt_free(&dy), xt_free(&dx);
}

Test(cuda_kernels, rope_1x1x1x2) { kc_rope(1, 1, 1, 2, 711); }
Test(cuda_kernels, rope_2x17x3x6) { kc_rope(2, 17, 3, 6, 712); }
Test(cuda_kernels, rope_3x65x2x16) { kc_rope(3, 65, 2, 16, 713); }
Test(cuda_kernels, rope_2x257x4x64) { kc_rope(2, 257, 4, 64, 714); }

/* ---- attention ------------------------------------------------------------- */

/* The attention cache (ops.h) is each backend's own: the CPU keeps P
 * (B,H,T,T), CUDA the row log-sum-exp (B,H,T) then a copy of out, so the
 * two are not compared; each side runs its backward from its own cache.
 * The CUDA cache is checked against what it must hold (guards included):
 * lse from a double-precision loop over the causal row, and the CPU's out. */
static float *att_side(xt *cpu, xt *gpu) { return xt_side ? XF(*gpu) : XF(*cpu); }

static void att_expected_cache(float *lse_out, const float *q, const float *k, const float *out,
                               int B, int T, int H, int D)
{
    const size_t ld = (size_t)H * D, n = (size_t)B * T * ld;
    const double scale = 1 / sqrt((double)D);
    double *s = malloc((size_t)T * sizeof *s);
    cr_assert_not_null(s);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < T; t++) {
                const float *qt = q + ((size_t)b * T + t) * ld + (size_t)h * D;
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j <= t; j++) {
                    const float *kj = k + ((size_t)b * T + j) * ld + (size_t)h * D;
                    double dot = 0;
                    for (int d = 0; d < D; d++) dot += (double)qt[d] * kj[d];
                    s[j] = scale * dot;
                    mx = s[j] > mx ? s[j] : mx;
                }
                for (int j = 0; j <= t; j++) sum += exp(s[j] - mx);
                lse_out[((size_t)b * H + h) * T + t] = (float)(mx + log(sum));
            }
    for (size_t i = 0; i < n; i++) lse_out[(size_t)B * H * T + i] = out[i];
    free(s);
}

static void kc_attention(int B, int T, int H, int D, uint64_t seed)
{
    xt_require_gpu();
    cr_log_info("attention B=%d T=%d H=%d D=%d seed=%llu", B, T, H, D, (unsigned long long)seed);
    const size_t n = (size_t)B * T * H * D;
    /* no gemm on the CUDA side (a fused kernel in fp32): TF32 changes nothing */
    const double tol = tol_sum((double)T * D);
    xt q = xt_rand(n, -2, 2, seed), k = xt_rand(n, -2, 2, seed + 1), v = xt_rand(n, -1, 1, seed + 2);
    xt out = xt_poison(n), att_cpu = xt_poison(attention_cache_len(B, T, H, D)),
       att_gpu = xt_poison(cuda_attention_cache_len(B, T, H, D));
    BOTH(attention_forward(XF(out), att_side(&att_cpu, &att_gpu), XF(q), XF(k), XF(v), B, T, H, D));
    xt_expect("attention out", &out, tol);
    att_expected_cache(XF(att_gpu), XF(q), XF(k), XF(out), B, T, H, D); /* host side */
    xt_expect("attention cuda cache (lse, out)", &att_gpu, tol);
    xt dout = xt_rand(n, -1, 1, seed + 3), dq = xt_rand(n, -1, 1, seed + 4),
       dk = xt_rand(n, -1, 1, seed + 5), dv = xt_rand(n, -1, 1, seed + 6);
    xt scratch = xt_poison(max_len(attention_scratch_len(B, T, H), cuda_attention_scratch_len(B, T, H)));
    BOTH(attention_backward(XF(dq), XF(dk), XF(dv), XF(scratch), XF(dout), att_side(&att_cpu, &att_gpu),
                            XF(q), XF(k), XF(v), B, T, H, D));
    xt_expect("attention dq", &dq, tol);
    xt_expect("attention dk", &dk, tol);
    xt_expect("attention dv", &dv, tol);
    xt *all[] = {&q, &k, &v, &out, &att_cpu, &att_gpu, &dout, &dq, &dk, &dv, &scratch};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) xt_free(all[i]);
}

/* Sizes against the kernels' tiles (16 rows per block, 32-wide tiles of
 * the other side, head columns in chunks of 32 up to 128): T = 1, 2, primes
 * and 130, 257, 300 crossing several tiles; D from 1 to 128 through every
 * chunk count, odd and even; B H odd and even. */
Test(cuda_kernels, attention_1x1x1x1) { kc_attention(1, 1, 1, 1, 721); }
Test(cuda_kernels, attention_1x1x3x64) { kc_attention(1, 1, 3, 64, 726); }
Test(cuda_kernels, attention_2x2x1x33) { kc_attention(2, 2, 1, 33, 722); }
Test(cuda_kernels, attention_2x17x3x7) { kc_attention(2, 17, 3, 7, 723); }
Test(cuda_kernels, attention_3x37x1x8) { kc_attention(3, 37, 1, 8, 727); }
Test(cuda_kernels, attention_1x61x3x6) { kc_attention(1, 61, 3, 6, 728); }
Test(cuda_kernels, attention_1x61x1x128) { kc_attention(1, 61, 1, 128, 729); }
Test(cuda_kernels, attention_3x65x2x16) { kc_attention(3, 65, 2, 16, 724); }
Test(cuda_kernels, attention_1x37x1x96) { kc_attention(1, 37, 1, 96, 730); }
Test(cuda_kernels, attention_1x130x3x64) { kc_attention(1, 130, 3, 64, 731); }
Test(cuda_kernels, attention_4x257x4x32) { kc_attention(4, 257, 4, 32, 725); }
Test(cuda_kernels, attention_1x300x3x32) { kc_attention(1, 300, 3, 32, 732); }

/* Head sizes past the kernels' 128 columns are refused, naming the op and
 * the limit (sb_cuda_fail: exit 1), before any memory is touched. */
Test(cuda_kernels, attention_head_size_129_refused, .exit_code = 1)
{
    xt_require_gpu();
    xt_cuda_backend();
    attention_forward(NULL, NULL, NULL, NULL, NULL, 1, 4, 1, 129);
}

/* The CUDA backward sums in a fixed order (no atomics): two runs from the
 * same inputs give the same bits. */
Test(cuda_kernels, attention_backward_deterministic)
{
    xt_require_gpu();
    const int B = 2, T = 70, H = 3, D = 40;
    const size_t n = (size_t)B * T * H * D;
    xt q = xt_rand(n, -2, 2, 741), k = xt_rand(n, -2, 2, 742), v = xt_rand(n, -1, 1, 743),
       dout = xt_rand(n, -1, 1, 744);
    xt out = xt_poison(n), att = xt_poison(cuda_attention_cache_len(B, T, H, D)),
       scratch = xt_poison(cuda_attention_scratch_len(B, T, H));
    xt grads[2][3];
    float *host[2][3];
    xt_side = 1;
    xt_use_side();
    attention_forward(XF(out), XF(att), XF(q), XF(k), XF(v), B, T, H, D);
    for (int run = 0; run < 2; run++) {
        for (int g = 0; g < 3; g++) grads[run][g] = xt_fill(n, 0);
        attention_backward(XF(grads[run][0]), XF(grads[run][1]), XF(grads[run][2]), XF(scratch),
                           XF(dout), XF(att), XF(q), XF(k), XF(v), B, T, H, D);
        for (int g = 0; g < 3; g++) {
            host[run][g] = malloc(n * sizeof(float));
            cr_assert_not_null(host[run][g]);
            ops_download(host[run][g], XF(grads[run][g]), n * sizeof(float));
        }
    }
    xt_side = 0;
    xt_use_side();
    const char *names[3] = {"dq", "dk", "dv"};
    for (int g = 0; g < 3; g++) {
        cr_expect(memcmp(host[0][g], host[1][g], n * sizeof(float)) == 0,
                  "attention %s differs between two CUDA runs", names[g]);
        for (int run = 0; run < 2; run++) free(host[run][g]), xt_free(&grads[run][g]);
    }
    xt *all[] = {&q, &k, &v, &dout, &out, &att, &scratch};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) xt_free(all[i]);
}

/* ---- scan_delta ------------------------------------------------------------ */

typedef enum { KC_LINEAR, KC_DELTA_POS, KC_DELTA_SIGNED } kc_form; /* beta none, (0,1), (0,2) */

static void kc_scan(int B, int T, int H, int K, int V, kc_form form, int with_alpha, uint64_t seed)
{
    xt_require_gpu();
    cr_log_info("scan_delta B=%d T=%d H=%d K=%d V=%d form=%d alpha=%d seed=%llu", B, T, H, K, V,
                (int)form, with_alpha, (unsigned long long)seed);
    const size_t nk = (size_t)B * T * H * K, nv = (size_t)B * T * H * V, nt = (size_t)B * T * H;
    const double kr = 1 / sqrt((double)K); /* |k| about 1/sqrt(3): a contraction for beta < 2 */
    const double tol = tol_sum((double)T * (K + V));
    const real scale = (real)0.7;
    const int with_beta = form != KC_LINEAR;
    xt q = xt_rand(nk, -1, 1, seed), k = xt_rand(nk, -kr, kr, seed + 1), v = xt_rand(nv, -1, 1, seed + 2),
       beta = xt_rand(nt, 0, form == KC_DELTA_SIGNED ? 2 : 1, seed + 3),
       alpha = xt_rand(nt, 0.8, 1, seed + 4);
#define BETA (with_beta ? XF(beta) : NULL)
#define ALPHA (with_alpha ? XF(alpha) : NULL)
    cr_assert_eq(cuda_scan_delta_cache_len(B, T, H, K, V), scan_delta_cache_len(B, T, H, K, V),
                 "the GPU keeps the CPU's cache layout");
    xt o = xt_poison(nv), states = xt_poison(scan_delta_cache_len(B, T, H, K, V));
    BOTH(scan_delta_forward(XF(o), XF(states), XF(q), XF(k), XF(v), BETA, ALPHA, B, T, H, K, V, scale));
    xt_expect("scan_delta o", &o, tol);
    xt_expect("scan_delta states", &states, tol);
    xt dout = xt_rand(nv, -1, 1, seed + 5), dq = xt_rand(nk, -1, 1, seed + 6),
       dk = xt_rand(nk, -1, 1, seed + 7), dv = xt_rand(nv, -1, 1, seed + 8),
       dbeta = xt_rand(nt, -1, 1, seed + 9), dalpha = xt_rand(nt, -1, 1, seed + 10);
    xt scratch = xt_poison(max_len(scan_delta_scratch_len(B, T, H, K, V),
                                   cuda_scan_delta_scratch_len(B, T, H, K, V)));
    BOTH(scan_delta_backward(XF(dq), XF(dk), XF(dv), with_beta ? XF(dbeta) : NULL,
                             with_alpha ? XF(dalpha) : NULL, XF(scratch), XF(dout), XF(states),
                             XF(q), XF(k), XF(v), BETA, ALPHA, B, T, H, K, V, scale));
#undef BETA
#undef ALPHA
    xt_expect("scan_delta dq", &dq, tol);
    xt_expect("scan_delta dk", &dk, tol);
    xt_expect("scan_delta dv", &dv, tol);
    xt_expect("scan_delta dbeta", &dbeta, tol);   /* untouched when beta is NULL */
    xt_expect("scan_delta dalpha", &dalpha, tol); /* untouched when alpha is NULL */
    xt *all[] = {&q, &k, &v, &beta, &alpha, &o, &states, &dout, &dq, &dk, &dv, &dbeta, &dalpha, &scratch};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) xt_free(all[i]);
}

/* every register tile of the scan (rows 1..16 per thread, columns 1..4) in
 * the gated delta form with signed eigenvalues, at T = 17 (one whole
 * checkpoint chunk and one token) */
Test(cuda_kernels, scan_delta_kv_1x1) { kc_scan(2, 17, 2, 1, 1, KC_DELTA_SIGNED, 1, 731); }
Test(cuda_kernels, scan_delta_kv_7x7) { kc_scan(2, 17, 2, 7, 7, KC_DELTA_SIGNED, 1, 732); }
Test(cuda_kernels, scan_delta_kv_16x16) { kc_scan(2, 17, 2, 16, 16, KC_DELTA_SIGNED, 1, 733); }
Test(cuda_kernels, scan_delta_kv_33x7) { kc_scan(2, 17, 2, 33, 7, KC_DELTA_SIGNED, 1, 734); }
Test(cuda_kernels, scan_delta_kv_7x33) { kc_scan(2, 17, 2, 7, 33, KC_DELTA_SIGNED, 1, 735); }
Test(cuda_kernels, scan_delta_kv_64x64) { kc_scan(2, 17, 2, 64, 64, KC_DELTA_SIGNED, 1, 736); }
Test(cuda_kernels, scan_delta_kv_5x100) { kc_scan(2, 17, 2, 5, 100, KC_DELTA_SIGNED, 1, 737); }
Test(cuda_kernels, scan_delta_kv_128x128) { kc_scan(2, 17, 2, 128, 128, KC_DELTA_SIGNED, 1, 738); }
/* the forms: beta none (linear attention) / (0,1) / (0,2), alpha or not, T 1, 2, 32, 65 */
Test(cuda_kernels, scan_delta_t1_delta) { kc_scan(1, 1, 1, 7, 33, KC_DELTA_POS, 0, 741); }
Test(cuda_kernels, scan_delta_t2_linear) { kc_scan(2, 2, 3, 33, 1, KC_LINEAR, 0, 742); }
Test(cuda_kernels, scan_delta_t65_linear_gated) { kc_scan(2, 65, 2, 16, 16, KC_LINEAR, 1, 743); }
Test(cuda_kernels, scan_delta_t65_signed) { kc_scan(1, 65, 2, 64, 33, KC_DELTA_SIGNED, 0, 744); }
Test(cuda_kernels, scan_delta_t65_positive_gated) { kc_scan(3, 65, 1, 32, 32, KC_DELTA_POS, 1, 745); }
Test(cuda_kernels, scan_delta_t32_linear_128) { kc_scan(1, 32, 1, 128, 128, KC_LINEAR, 0, 746); }
/* deltanet's bench shape at d = 128 (4 heads of 32); 8 sequences instead of
 * 32 on the emulator (the same kernels; it would take minutes there) */
Test(cuda_kernels, scan_delta_bench_shape) { kc_scan(XT_EMU_OR(32, 8), 256, 4, 32, 32, KC_DELTA_SIGNED, 0, 747); }
