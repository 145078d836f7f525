/* cuda_scan_vec_chunk.c: the chunked form of gla's scan on the GPU
 * (kernels/cuda/scan_delta_vec_chunk.cu), forced with
 * ops_set_scan_form(OPS_SCAN_CHUNKED), against the CPU's recurrent form:
 * o, the checkpointed states, dq, dk, dv, dalpha, with the kit of
 * cuda_check.h (outputs start as NaN, so unwritten elements show; guards on
 * both sides of every tensor; gradients start from random values, so the
 * backward's += is checked too). Each backward runs from its own side's
 * forward cache; the cross cases run the chunked forward then the recurrent
 * backward on the GPU and the other way round (one cache layout).
 *
 * alpha: positive in [0.8, 1) (long memory), signed in [-1, 1) (eigen
 * signed), and signed with about a quarter of the entries exactly 0 (the
 * chunked form must not divide by a cumulative product).
 * Sizes: T 1, 15, 16, 17 (around one chunk of 16), 64, 127 (a remainder);
 * K, V in {1, 7, 32, 64, 128}, K != V, so no index swap of the two goes
 * unseen; B, H > 1 in most cases. Head counts are small at large K, V to
 * keep the emulator's time short.
 *
 * Tolerance: tol_sum(T (K + V)), as the recurrent form's (tests/
 * cuda_ops_ssm.c): an output gathers K + V products per token over at most
 * T tokens through the state; the chunked form sums the same terms grouped
 * otherwise (K-long scores, then the chunk's tokens, then the carried
 * state), and every product of decays it forms is one the recurrence also
 * forms (running products, no division), so the rounding error does not
 * grow beyond a sum of that length. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/cuda/ops_cuda.h"
#include "../kernels/cuda/scan_delta_vec_chunk.h"
#include "../kernels/ops.h"
#include "cuda_check.h"

static void setup(void)
{
    ops_set_threads(1);
    xt_require_gpu();
}

static void teardown(void)
{
    ops_set_scan_form(OPS_SCAN_AUTO);
}

TestSuite(cuda_scan_vec_chunk, .init = setup, .fini = teardown);

#define FREE_ALL(...)                                                                      \
    do {                                                                                   \
        xt *all_[] = {__VA_ARGS__};                                                        \
        for (size_t i_ = 0; i_ < sizeof all_ / sizeof *all_; i_++) xt_free(all_[i_]);     \
    } while (0)

static size_t max_len(size_t cpu, size_t gpu) { return cpu > gpu ? cpu : gpu; }

typedef enum { ALPHA_POSITIVE, ALPHA_SIGNED, ALPHA_ZEROS } alpha_kind;
static const char *const alpha_names[] = {"positive", "signed", "zeros"};

/* splitmix64, for the inputs xt_rand cannot make (exact zeros) */
static uint64_t mix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Signed decays in [-1, 1) with about a quarter exactly 0. The kit copies
 * any elements byte for byte (xt_ints), so the floats travel as their bit
 * patterns. */
static xt alpha_with_zeros(size_t n, uint64_t seed)
{
    _Static_assert(sizeof(int) == sizeof(float), "floats passed as ints");
    float *a = malloc((n ? n : 1) * sizeof *a);
    int *bits = malloc((n ? n : 1) * sizeof *bits);
    cr_assert(a && bits);
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) {
        const uint64_t r = mix(&s);
        a[i] = (r & 3) == 0 ? 0.0f : (float)(2.0 * (double)(r >> 11) / 9007199254740992.0 - 1.0);
    }
    memcpy(bits, a, n * sizeof *a);
    xt t = xt_ints(bits, n);
    t.elem = sizeof(float);
    free(a);
    free(bits);
    return t;
}

static xt make_alpha(alpha_kind kind, size_t n, uint64_t seed)
{
    switch (kind) {
    case ALPHA_POSITIVE: return xt_rand(n, 0.8, 1, seed);
    case ALPHA_SIGNED: return xt_rand(n, -1, 1, seed);
    default: return alpha_with_zeros(n, seed);
    }
}

/* Forward with fwd_form, backward with bwd_form (the CPU runs its recurrent
 * form whatever the setting), everything compared with the CPU. */
static void kc_forms(int B, int T, int H, int K, int V, alpha_kind kind, ops_scan_form fwd_form,
                     ops_scan_form bwd_form, uint64_t seed)
{
    xt_require_gpu();
    cr_log_info("scan_delta_vec chunked B=%d T=%d H=%d K=%d V=%d alpha=%s forms %d/%d seed=%llu", B, T, H, K,
                V, alpha_names[kind], (int)fwd_form, (int)bwd_form, (unsigned long long)seed);
    fprintf(stderr, "cuda_scan_vec_chunk B=%d T=%d H=%d K=%d V=%d alpha=%s forms %d/%d: seed %llu\n", B, T, H,
            K, V, alpha_names[kind], (int)fwd_form, (int)bwd_form, (unsigned long long)seed);
    const size_t nk = (size_t)B * T * H * K, nv = (size_t)B * T * H * V;
    const double kr = 1 / sqrt((double)K);
    const double tol = tol_sum((double)T * (K + V));
    const real scale = (real)0.7;
    xt q = xt_rand(nk, -1, 1, seed), k = xt_rand(nk, -kr, kr, seed + 1), v = xt_rand(nv, -1, 1, seed + 2),
       alpha = make_alpha(kind, nk, seed + 3);
    xt o = xt_poison(nv), states = xt_poison(scan_delta_cache_len(B, T, H, K, V));
    ops_set_scan_form(fwd_form);
    BOTH(scan_delta_vec_forward(XF(o), XF(states), XF(q), XF(k), XF(v), XF(alpha), B, T, H, K, V, scale));
    xt_expect("scan_delta_vec o", &o, tol);
    xt_expect("scan_delta_vec states", &states, tol);
    xt dout = xt_rand(nv, -1, 1, seed + 5), dq = xt_rand(nk, -1, 1, seed + 6),
       dk = xt_rand(nk, -1, 1, seed + 7), dv = xt_rand(nv, -1, 1, seed + 8),
       dalpha = xt_rand(nk, -1, 1, seed + 9);
    xt scratch = xt_poison(max_len(scan_delta_scratch_len(B, T, H, K, V),
                                   cuda_scan_delta_scratch_len(B, T, H, K, V)));
    ops_set_scan_form(bwd_form);
    BOTH(scan_delta_vec_backward(XF(dq), XF(dk), XF(dv), XF(dalpha), XF(scratch), XF(dout), XF(states),
                                 XF(q), XF(k), XF(v), XF(alpha), B, T, H, K, V, scale));
    ops_set_scan_form(OPS_SCAN_AUTO);
    xt_expect("scan_delta_vec dq", &dq, tol);
    xt_expect("scan_delta_vec dk", &dk, tol);
    xt_expect("scan_delta_vec dv", &dv, tol);
    xt_expect("scan_delta_vec dalpha", &dalpha, tol);
    FREE_ALL(&q, &k, &v, &alpha, &o, &states, &dout, &dq, &dk, &dv, &dalpha, &scratch);
}

static void kc_chunk(int B, int T, int H, int K, int V, alpha_kind kind, uint64_t seed)
{
    kc_forms(B, T, H, K, V, kind, OPS_SCAN_CHUNKED, OPS_SCAN_CHUNKED, seed);
}

/* T around one chunk, each alpha kind, K and V over 1 .. 128 */
Test(cuda_scan_vec_chunk, t1_pos_7x32) { kc_chunk(1, 1, 1, 7, 32, ALPHA_POSITIVE, 1501); }
Test(cuda_scan_vec_chunk, t1_zeros_1x7) { kc_chunk(2, 1, 2, 1, 7, ALPHA_ZEROS, 1502); }
Test(cuda_scan_vec_chunk, t15_signed_1x7) { kc_chunk(2, 15, 2, 1, 7, ALPHA_SIGNED, 1503); }
Test(cuda_scan_vec_chunk, t15_zeros_32x1) { kc_chunk(2, 15, 3, 32, 1, ALPHA_ZEROS, 1504); }
Test(cuda_scan_vec_chunk, t16_zeros_32x64) { kc_chunk(2, 16, 2, 32, 64, ALPHA_ZEROS, 1505); }
Test(cuda_scan_vec_chunk, t16_pos_64x7) { kc_chunk(3, 16, 2, 64, 7, ALPHA_POSITIVE, 1506); }
Test(cuda_scan_vec_chunk, t17_pos_128x64) { kc_chunk(2, 17, 2, 128, 64, ALPHA_POSITIVE, 1507); }
Test(cuda_scan_vec_chunk, t17_signed_7x128) { kc_chunk(2, 17, 2, 7, 128, ALPHA_SIGNED, 1508); }
/* several chunks: the carried state and its gradient */
Test(cuda_scan_vec_chunk, t64_signed_64x128) { kc_chunk(2, 64, 2, 64, 128, ALPHA_SIGNED, 1509); }
Test(cuda_scan_vec_chunk, t64_pos_32x7) { kc_chunk(2, 64, 3, 32, 7, ALPHA_POSITIVE, 1510); }
Test(cuda_scan_vec_chunk, t64_zeros_7x1) { kc_chunk(3, 64, 2, 7, 1, ALPHA_ZEROS, 1511); }
Test(cuda_scan_vec_chunk, t127_zeros_128x7) { kc_chunk(2, 127, 1, 128, 7, ALPHA_ZEROS, 1512); }
Test(cuda_scan_vec_chunk, t127_pos_1x128) { kc_chunk(1, 127, 2, 1, 128, ALPHA_POSITIVE, 1513); }
Test(cuda_scan_vec_chunk, t127_signed_64x32) { kc_chunk(2, 127, 2, 64, 32, ALPHA_SIGNED, 1514); }
Test(cuda_scan_vec_chunk, t127_pos_128x64) { kc_chunk(1, 127, 2, 128, 64, ALPHA_POSITIVE, 1515); }
/* the largest tile: the backward's most shared memory (122.5 KiB) */
Test(cuda_scan_vec_chunk, t64_signed_128x128) { kc_chunk(1, 64, 1, 128, 128, ALPHA_SIGNED, 1516); }

/* one cache layout: either backward after either forward */
Test(cuda_scan_vec_chunk, chunked_fwd_recurrent_bwd)
{
    kc_forms(2, 41, 2, 32, 7, ALPHA_SIGNED, OPS_SCAN_CHUNKED, OPS_SCAN_RECURRENT, 1521);
    kc_forms(1, 33, 2, 7, 64, ALPHA_ZEROS, OPS_SCAN_CHUNKED, OPS_SCAN_RECURRENT, 1522);
}
Test(cuda_scan_vec_chunk, recurrent_fwd_chunked_bwd)
{
    kc_forms(2, 41, 2, 32, 7, ALPHA_SIGNED, OPS_SCAN_RECURRENT, OPS_SCAN_CHUNKED, 1523);
    kc_forms(1, 33, 2, 7, 64, ALPHA_POSITIVE, OPS_SCAN_RECURRENT, OPS_SCAN_CHUNKED, 1524);
}

/* The AUTO rule, and the form each setting picks. */
Test(cuda_scan_vec_chunk, auto_rule)
{
    cr_assert(cuda_scan_delta_vec_use_chunked(64, 128, 128));
    cr_assert(cuda_scan_delta_vec_use_chunked(64, 1, 1));
    cr_assert(cuda_scan_delta_vec_use_chunked(4096, 32, 7));
    cr_assert(!cuda_scan_delta_vec_use_chunked(63, 32, 32));
    cr_assert(!cuda_scan_delta_vec_use_chunked(1, 32, 32));
    cr_assert(!cuda_scan_delta_vec_use_chunked(64, 129, 32));
    cr_assert(!cuda_scan_delta_vec_use_chunked(64, 32, 129));
    ops_set_scan_form(OPS_SCAN_AUTO);
    cr_assert(cuda_scan_delta_vec_chunked_chosen(64, 32, 7));
    cr_assert(!cuda_scan_delta_vec_chunked_chosen(63, 32, 7));
    ops_set_scan_form(OPS_SCAN_CHUNKED);
    cr_assert(cuda_scan_delta_vec_chunked_chosen(1, 32, 7));
    ops_set_scan_form(OPS_SCAN_RECURRENT);
    cr_assert(!cuda_scan_delta_vec_chunked_chosen(4096, 32, 7));
    ops_set_scan_form(OPS_SCAN_AUTO);
}

/* The setting reaches the GPU: with the chunked form forced, the backward
 * leaves its scratch untouched (the recurrent one stores the chunk's states
 * there), and the two forward forms round differently, so their outputs
 * (both within tolerance of the CPU's) are not bit for bit the same. */
Test(cuda_scan_vec_chunk, form_setting_takes_effect)
{
    const int B = 1, T = 40, H = 2, K = 32, V = 32;
    const uint64_t seed = 1531;
    fprintf(stderr, "cuda_scan_vec_chunk form_setting_takes_effect: seed %llu\n", (unsigned long long)seed);
    const size_t nk = (size_t)B * T * H * K, nv = (size_t)B * T * H * V;
    const double tol = tol_sum((double)T * (K + V));
    const real scale = (real)0.7;
    xt q = xt_rand(nk, -1, 1, seed), k = xt_rand(nk, -0.2, 0.2, seed + 1), v = xt_rand(nv, -1, 1, seed + 2),
       alpha = xt_rand(nk, 0.8, 1, seed + 3);
    xt o_rec = xt_poison(nv), o_chk = xt_poison(nv), states = xt_poison(scan_delta_cache_len(B, T, H, K, V));
    ops_set_scan_form(OPS_SCAN_RECURRENT);
    BOTH(scan_delta_vec_forward(XF(o_rec), XF(states), XF(q), XF(k), XF(v), XF(alpha), B, T, H, K, V, scale));
    ops_set_scan_form(OPS_SCAN_CHUNKED);
    BOTH(scan_delta_vec_forward(XF(o_chk), XF(states), XF(q), XF(k), XF(v), XF(alpha), B, T, H, K, V, scale));
    xt_expect("recurrent o", &o_rec, tol);
    xt_expect("chunked o", &o_chk, tol);
    float *a = malloc(nv * sizeof *a), *b = malloc(nv * sizeof *b);
    cr_assert(a && b);
    xt_side = 1;
    xt_use_side();
    ops_download(a, XF(o_rec), nv * sizeof *a);
    ops_download(b, XF(o_chk), nv * sizeof *b);
    xt_side = 0;
    xt_use_side();
    cr_expect(memcmp(a, b, nv * sizeof *a) != 0,
              "the forced recurrent and chunked forwards gave the same bits: the setting did not reach the GPU");

    const size_t ns = max_len(scan_delta_scratch_len(B, T, H, K, V), cuda_scan_delta_scratch_len(B, T, H, K, V));
    xt dout = xt_rand(nv, -1, 1, seed + 5), dq = xt_fill(nk, 0), dk = xt_fill(nk, 0), dv = xt_fill(nv, 0),
       dalpha = xt_fill(nk, 0), scratch = xt_fill(ns, 12345.0f);
    xt_side = 1;
    xt_use_side();
    scan_delta_vec_backward(XF(dq), XF(dk), XF(dv), XF(dalpha), XF(scratch), XF(dout), XF(states), XF(q), XF(k),
                            XF(v), XF(alpha), B, T, H, K, V, scale);
    float *s = malloc(ns * sizeof *s);
    cr_assert(s);
    ops_download(s, XF(scratch), ns * sizeof *s);
    xt_side = 0;
    xt_use_side();
    ops_set_scan_form(OPS_SCAN_AUTO);
    for (size_t i = 0; i < ns; i++)
        cr_assert_eq(s[i], 12345.0f, "the chunked backward wrote scratch[%zu] = %g", i, (double)s[i]);
    free(a);
    free(b);
    free(s);
    FREE_ALL(&q, &k, &v, &alpha, &o_rec, &o_chk, &states, &dout, &dq, &dk, &dv, &dalpha, &scratch);
}
