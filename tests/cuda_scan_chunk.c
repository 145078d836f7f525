/* cuda_scan_chunk.c: the chunked form of the CUDA gated delta rule scan
 * (kernels/cuda/scan_delta_chunk.cu) against the CPU backend, forward and
 * backward, with the kit of cuda_check.h: each op runs once per backend
 * (BOTH) on the same seeded inputs, the CUDA side in the form a test forces
 * with ops_set_scan_form, the CPU side in the recurrent (reference) form
 * unless a test says otherwise; device outputs start as NaN, so unwritten
 * elements show; gradients start from the same random values, so the
 * backward's += is checked too. Every test sets the form back to
 * OPS_SCAN_AUTO at its end.
 *
 * Tolerance: tol_sum(len) (cuda_check.h) with len = T (K + V + C), C =
 * SCAN_DELTA_CKPT. The recurrent form's outputs go through the K- and
 * V-long sums of every token, chained over T (tests/cuda_kernels.c's
 * budget, T (K + V)); the chunked form takes the same K- and V-long sums
 * per token and chunk (q . k, k . S0, dout . W, ...) and adds, per token,
 * sums over the up to C tokens of its chunk (the UT substitution, W = T Y,
 * P W, the decayed K^T W of the leaving state, and their transposes in the
 * backward): C more terms per token.
 *
 * Inputs as in tests/cuda_kernels.c: q, v, dout in [-1, 1), k in
 * [-1/sqrt(K), 1/sqrt(K)) (|k|^2 about 1/3, so beta |k|^2 < 2 keeps the
 * delta step a contraction), beta in (0, 1) or over the signed range (0, 2)
 * (eigenvalues 1 - beta |k|^2 of either sign), alpha in [0.8, 1) or over
 * [-1, 1) with every 41st one exactly 0 (a state wiped out: the chunked
 * form multiplies decays and never divides, so 0 is exact).
 * Sizes: T 1, 15, 16, 17, 64, 65, 127 (one partial chunk, whole chunks, a
 * whole chunk and a token, a partial last chunk), K and V from 1 to 128 with
 * K != V, the forward's 64-column tiles with a remainder (V 100), B and H
 * above 1 at the smaller heads (the emulator runs every CUDA thread on the
 * CPU). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/cuda/ops_cuda.h"
#include "../kernels/cuda/scan_delta_chunk.h"
#include "../kernels/cuda/scan_delta_vec_chunk.h"
#include "../kernels/ops.h"
#include "cuda_check.h"

typedef enum { SC_LINEAR, SC_DELTA_POS, SC_DELTA_SIGNED } sc_beta;  /* beta none, (0,1), (0,2) */
/* alpha none, in [0.8,1), in [-1,1) with zeros; or in [0.8,1) with no gradient asked (dalpha NULL: RetNet) */
typedef enum { SC_NO_ALPHA, SC_ALPHA, SC_ALPHA_SIGNED, SC_ALPHA_NO_GRAD } sc_alpha;

typedef struct {
    int B, T, H, K, V;
    sc_beta beta;
    sc_alpha alpha;
    ops_scan_form cpu, gpu_fwd, gpu_bwd; /* the form each side runs */
    uint64_t seed;
} sc_case;

static size_t max_len(size_t a, size_t b) { return a > b ? a : b; }

/* Sets every 41st element of t to 0 on both sides: about 40 % of the
 * chunks hold a zero decay, the others decay products of both signs. */
static void zero_every_41st(xt *t)
{
    xt_side = 0;
    xt_use_side();
    float *host = XF(*t);
    for (size_t i = 0; i < t->n; i += 41) host[i] = 0;
    xt_side = 1;
    xt_use_side();
    ops_upload(XF(*t), host, t->n * sizeof(float));
    xt_side = 0;
    xt_use_side();
}

/* The form for the side BOTH is running: the CPU's, or the GPU's (fwd or bwd). */
static void use_form(const sc_case *c, int backward)
{
    ops_set_scan_form(xt_side == 0 ? c->cpu : backward ? c->gpu_bwd : c->gpu_fwd);
}

static void sc_run(sc_case c)
{
    xt_require_gpu();
    const int B = c.B, T = c.T, H = c.H, K = c.K, V = c.V;
    cr_log_info("scan_delta chunked B=%d T=%d H=%d K=%d V=%d beta=%d alpha=%d forms cpu %d gpu %d/%d "
                "seed=%llu", B, T, H, K, V, (int)c.beta, (int)c.alpha, (int)c.cpu, (int)c.gpu_fwd,
                (int)c.gpu_bwd, (unsigned long long)c.seed);
    const size_t nk = (size_t)B * T * H * K, nv = (size_t)B * T * H * V, nt = (size_t)B * T * H;
    const double kr = 1 / sqrt((double)K);
    const double tol = tol_sum((double)T * (K + V + SCAN_DELTA_CKPT));
    const real scale = (real)0.7;
    const int with_beta = c.beta != SC_LINEAR, with_alpha = c.alpha != SC_NO_ALPHA;
    const int with_dalpha = with_alpha && c.alpha != SC_ALPHA_NO_GRAD;
    const uint64_t seed = c.seed;
    xt q = xt_rand(nk, -1, 1, seed), k = xt_rand(nk, -kr, kr, seed + 1), v = xt_rand(nv, -1, 1, seed + 2),
       beta = xt_rand(nt, 0, c.beta == SC_DELTA_SIGNED ? 2 : 1, seed + 3),
       alpha = c.alpha == SC_ALPHA_SIGNED ? xt_rand(nt, -1, 1, seed + 4) : xt_rand(nt, 0.8, 1, seed + 4);
    if (c.alpha == SC_ALPHA_SIGNED) zero_every_41st(&alpha);
#define BETA (with_beta ? XF(beta) : NULL)
#define ALPHA (with_alpha ? XF(alpha) : NULL)
    xt o = xt_poison(nv), states = xt_poison(scan_delta_cache_len(B, T, H, K, V));
    BOTH((use_form(&c, 0),
          scan_delta_forward(XF(o), XF(states), XF(q), XF(k), XF(v), BETA, ALPHA, B, T, H, K, V, scale)));
    xt_expect("scan_delta o", &o, tol);
    xt_expect("scan_delta states", &states, tol);
    xt dout = xt_rand(nv, -1, 1, seed + 5), dq = xt_rand(nk, -1, 1, seed + 6),
       dk = xt_rand(nk, -1, 1, seed + 7), dv = xt_rand(nv, -1, 1, seed + 8),
       dbeta = xt_rand(nt, -1, 1, seed + 9), dalpha = xt_rand(nt, -1, 1, seed + 10);
    xt scratch = xt_poison(max_len(scan_delta_scratch_len(B, T, H, K, V),
                                   cuda_scan_delta_scratch_len(B, T, H, K, V)));
    BOTH((use_form(&c, 1),
          scan_delta_backward(XF(dq), XF(dk), XF(dv), with_beta ? XF(dbeta) : NULL,
                              with_dalpha ? XF(dalpha) : NULL, XF(scratch), XF(dout), XF(states),
                              XF(q), XF(k), XF(v), BETA, ALPHA, B, T, H, K, V, scale)));
#undef BETA
#undef ALPHA
    ops_set_scan_form(OPS_SCAN_AUTO);
    xt_expect("scan_delta dq", &dq, tol);
    xt_expect("scan_delta dk", &dk, tol);
    xt_expect("scan_delta dv", &dv, tol);
    xt_expect("scan_delta dbeta", &dbeta, tol);   /* untouched when beta is NULL */
    xt_expect("scan_delta dalpha", &dalpha, tol); /* untouched when not asked for */
    xt *all[] = {&q, &k, &v, &beta, &alpha, &o, &states, &dout, &dq, &dk, &dv, &dbeta, &dalpha, &scratch};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) xt_free(all[i]);
}

#define REC OPS_SCAN_RECURRENT
#define CHK OPS_SCAN_CHUNKED

/* the chunked CUDA form against the CPU's recurrent one */
static void chunked(int B, int T, int H, int K, int V, sc_beta b, sc_alpha a, uint64_t seed)
{
    sc_run((sc_case){B, T, H, K, V, b, a, REC, CHK, CHK, seed});
}

/* gated delta rule (gated_deltanet): every T and head shape, beta signed
 * (positive at 5 x 100: the forward's 64-column tiles and a remainder) */
Test(cuda_scan_chunk, gated_delta_t1_7x33) { chunked(1, 1, 1, 7, 33, SC_DELTA_SIGNED, SC_ALPHA, 801); }
Test(cuda_scan_chunk, gated_delta_t15_1x1) { chunked(2, 15, 2, 1, 1, SC_DELTA_SIGNED, SC_ALPHA, 802); }
Test(cuda_scan_chunk, gated_delta_t16_32x7) { chunked(2, 16, 3, 32, 7, SC_DELTA_SIGNED, SC_ALPHA, 803); }
Test(cuda_scan_chunk, gated_delta_t17_7x64) { chunked(2, 17, 2, 7, 64, SC_DELTA_SIGNED, SC_ALPHA, 804); }
Test(cuda_scan_chunk, gated_delta_t64_64x64) { chunked(1, 64, 2, 64, 64, SC_DELTA_SIGNED, SC_ALPHA, 805); }
Test(cuda_scan_chunk, gated_delta_t127_128x128) { chunked(1, 127, 1, 128, 128, SC_DELTA_SIGNED, SC_ALPHA, 806); }
Test(cuda_scan_chunk, gated_delta_t65_5x100) { chunked(1, 65, 2, 5, 100, SC_DELTA_POS, SC_ALPHA, 807); }
/* decays of both signs and exact zeros */
Test(cuda_scan_chunk, gated_delta_signed_alpha_t127_32x32) { chunked(2, 127, 1, 32, 32, SC_DELTA_SIGNED, SC_ALPHA_SIGNED, 808); }
/* decays without their gradient (dalpha NULL) */
Test(cuda_scan_chunk, gated_delta_no_dalpha_t33_16x16) { chunked(2, 33, 1, 16, 16, SC_DELTA_SIGNED, SC_ALPHA_NO_GRAD, 813); }
/* delta rule without decay (deltanet) */
Test(cuda_scan_chunk, delta_t65_64x32) { chunked(2, 65, 2, 64, 32, SC_DELTA_POS, SC_NO_ALPHA, 811); }
Test(cuda_scan_chunk, delta_t17_128x7) { chunked(1, 17, 2, 128, 7, SC_DELTA_SIGNED, SC_NO_ALPHA, 812); }
/* non-delta with decay (retnet, mamba2, mlstm) */
Test(cuda_scan_chunk, decayed_t127_32x64) { chunked(2, 127, 2, 32, 64, SC_LINEAR, SC_ALPHA, 821); }
Test(cuda_scan_chunk, decayed_t16_7x1) { chunked(2, 16, 2, 7, 1, SC_LINEAR, SC_ALPHA, 822); }
Test(cuda_scan_chunk, decayed_no_dalpha_t65_32x7) { chunked(1, 65, 3, 32, 7, SC_LINEAR, SC_ALPHA_NO_GRAD, 824); }
Test(cuda_scan_chunk, decayed_signed_alpha_t64_16x16) { chunked(2, 64, 2, 16, 16, SC_LINEAR, SC_ALPHA_SIGNED, 823); }
/* non-delta without decay (linear attention) */
Test(cuda_scan_chunk, linear_t127_64x128) { chunked(1, 127, 2, 64, 128, SC_LINEAR, SC_NO_ALPHA, 831); }
Test(cuda_scan_chunk, linear_t1_1x7) { chunked(3, 1, 2, 1, 7, SC_LINEAR, SC_NO_ALPHA, 832); }

/* the CPU's chunked form as the other side */
Test(cuda_scan_chunk, against_cpu_chunked_t64_32x32)
{
    sc_run((sc_case){2, 64, 2, 32, 32, SC_DELTA_SIGNED, SC_ALPHA_SIGNED, CHK, CHK, CHK, 841});
}
/* one cache layout: either CUDA backward follows either CUDA forward */
Test(cuda_scan_chunk, chunked_forward_recurrent_backward)
{
    sc_run((sc_case){2, 127, 1, 32, 16, SC_DELTA_SIGNED, SC_ALPHA_SIGNED, REC, CHK, REC, 851});
}
Test(cuda_scan_chunk, recurrent_forward_chunked_backward)
{
    sc_run((sc_case){2, 127, 1, 16, 32, SC_DELTA_SIGNED, SC_ALPHA_SIGNED, REC, REC, CHK, 852});
}
Test(cuda_scan_chunk, recurrent_forward_chunked_backward_linear)
{
    sc_run((sc_case){1, 33, 2, 7, 9, SC_LINEAR, SC_ALPHA, REC, REC, CHK, 853});
}

/* ---- the AUTO rule ---------------------------------------------------------- */

/* The rule as documented (kernels/cuda/scan_delta.cu): chunked from T = 64
 * (4 chunks) with K, V <= 128. */
Test(cuda_scan_chunk, auto_rule)
{
    xt_require_gpu(); /* the rule asks the device for its shared memory */
    cr_expect_eq(cuda_scan_delta_use_chunked(63, 64, 64), 0);
    cr_expect_eq(cuda_scan_delta_use_chunked(64, 64, 64), 1);
    cr_expect_eq(cuda_scan_delta_use_chunked(64, 1, 1), 1);
    cr_expect_eq(cuda_scan_delta_use_chunked(4096, 128, 128), 1);
    cr_expect_eq(cuda_scan_delta_use_chunked(4096, 129, 128), 0);
    cr_expect_eq(cuda_scan_delta_use_chunked(4096, 128, 129), 0);
    cr_expect_eq(cuda_scan_delta_use_chunked(1, 32, 32), 0);
}

/* CUDA o and states of one forward in the given form, downloaded. */
static float *gpu_forward(ops_scan_form form, int T, const xt *q, const xt *k, const xt *v,
                          const xt *beta, const xt *alpha, size_t *len)
{
    const int B = 1, H = 2, K = 16, V = 16;
    const size_t nv = (size_t)B * T * H * V, ns = scan_delta_cache_len(B, T, H, K, V);
    xt o = xt_poison(nv), states = xt_poison(ns);
    xt_side = 1;
    xt_use_side();
    ops_set_scan_form(form);
    scan_delta_forward(XF(o), XF(states), XF(*q), XF(*k), XF(*v), XF(*beta), XF(*alpha), B, T, H,
                       K, V, (real)0.7);
    ops_set_scan_form(OPS_SCAN_AUTO);
    float *out = malloc((nv + ns) * sizeof *out);
    cr_assert_not_null(out);
    ops_download(out, XF(o), nv * sizeof *out);
    ops_download(out + nv, XF(states), ns * sizeof *out);
    xt_side = 0;
    xt_use_side();
    xt_free(&o);
    xt_free(&states);
    *len = nv + ns;
    return out;
}

/* AUTO runs what cuda_scan_delta_use_chunked says: its results are those of
 * the form it names, bit for bit, and the two forms' results differ in
 * their last bits (they sum in other orders), so the test can tell. */
static void auto_picks(int T, uint64_t seed)
{
    xt_require_gpu();
    const int B = 1, H = 2, K = 16, V = 16;
    const size_t nk = (size_t)B * T * H * K, nt = (size_t)B * T * H;
    xt q = xt_rand(nk, -1, 1, seed), k = xt_rand(nk, -0.25, 0.25, seed + 1),
       v = xt_rand((size_t)B * T * H * V, -1, 1, seed + 2), beta = xt_rand(nt, 0, 2, seed + 3),
       alpha = xt_rand(nt, 0.8, 1, seed + 4);
    size_t len = 0;
    float *autom = gpu_forward(OPS_SCAN_AUTO, T, &q, &k, &v, &beta, &alpha, &len);
    float *rec = gpu_forward(OPS_SCAN_RECURRENT, T, &q, &k, &v, &beta, &alpha, &len);
    float *chk = gpu_forward(OPS_SCAN_CHUNKED, T, &q, &k, &v, &beta, &alpha, &len);
    const int want = cuda_scan_delta_use_chunked(T, K, V);
    cr_expect(memcmp(rec, chk, len * sizeof *rec) != 0,
              "T = %d: the recurrent and chunked forms agree bit for bit; the test cannot tell them apart", T);
    cr_expect(memcmp(autom, want ? chk : rec, len * sizeof *rec) == 0,
              "T = %d: OPS_SCAN_AUTO did not run the %s form", T, want ? "chunked" : "recurrent");
    free(autom);
    free(rec);
    free(chk);
    xt *all[] = {&q, &k, &v, &beta, &alpha};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) xt_free(all[i]);
}

Test(cuda_scan_chunk, auto_recurrent_at_t63) { auto_picks(63, 861); }
Test(cuda_scan_chunk, auto_chunked_at_t64) { auto_picks(64, 862); }

/* ---- a device with less shared memory ----------------------------------------- */

/* On the emulator, a device that gives a block at most 64 KiB of shared
 * memory (CUDA_EMU_SMEM_OPTIN; a GPU keeps its own limit). Set before the
 * test's first CUDA call, which reads it. */
static void small_device(void)
{
    setenv("CUDA_EMU_SMEM_OPTIN", "65536", 1);
    ops_set_threads(1);
}

/* AUTO picks the chunked forms only where the device gives their blocks
 * the shared memory they need (both scans need more than 64 KiB at K = V =
 * 128, far less at 32), and there runs the recurrent form, which needs none
 * of it, instead of failing. */
Test(cuda_scan_smem, auto_runs_recurrent_where_the_device_lacks_shared_memory, .init = small_device)
{
    xt_require_gpu();
    const size_t optin = sb_cuda_smem_optin();
    if (xt_emulated()) cr_assert_eq(optin, 65536, "CUDA_EMU_SMEM_OPTIN plays a 64 KiB device");
    const int sizes[][2] = {{128, 128}, {128, 7}, {64, 64}, {32, 32}, {7, 100}};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        const int K = sizes[i][0], V = sizes[i][1];
        cr_expect_eq(cuda_scan_delta_use_chunked(64, K, V), cuda_scan_delta_chunked_smem(K, V) <= optin,
                     "scan_delta K %d V %d: %zu bytes, the device gives %zu", K, V,
                     cuda_scan_delta_chunked_smem(K, V), optin);
        cr_expect_eq(cuda_scan_delta_vec_use_chunked(64, K, V), cuda_scan_delta_vec_chunked_smem(K, V) <= optin,
                     "scan_delta_vec K %d V %d: %zu bytes, the device gives %zu", K, V,
                     cuda_scan_delta_vec_chunked_smem(K, V), optin);
    }
    if (xt_emulated()) {
        cr_expect(!cuda_scan_delta_use_chunked(64, 128, 128) && cuda_scan_delta_use_chunked(64, 32, 32));
        cr_expect(!cuda_scan_delta_vec_use_chunked(64, 128, 128) && cuda_scan_delta_vec_use_chunked(64, 32, 32));
    }
    sc_run((sc_case){1, 64, 1, 128, 128, SC_DELTA_SIGNED, SC_ALPHA, REC, OPS_SCAN_AUTO, OPS_SCAN_AUTO, 871});
}
