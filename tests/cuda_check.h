/* cuda_check.h: the kit of the cross-backend tests (tests/cuda_*.c, in the
 * style of ggml's test-backend-ops): every tensor exists twice, in host
 * memory for the CPU backend and in device memory for the CUDA backend,
 * each with guard elements on both sides; BOTH(call) runs an op once per
 * backend on the matching pointers; xt_expect compares the GPU's result with
 * the CPU's by normalised MSE, checks non-finite values separately and the
 * guards on both sides.
 *
 * Tolerances are on the normalised MSE, sum (gpu - cpu)^2 / sum cpu^2, of
 * float results (eps = 2^-23 per rounding):
 *  - TOL_POINTWISE: one pointwise function per element, computed by glibc
 *    on the CPU and by CUDA's expf / tanhf (each within 2 ulp) on the GPU,
 *    so results differ by a few ulp: (8 eps)^2 ~ 9e-13, with a 10x margin;
 *  - tol_sum(len): a sum of len terms taken in another order (blocked gemm,
 *    warp reductions, float instead of double partials); its rounding error
 *    grows like sqrt(len) ulp, so the squared error like len: (8 eps)^2 len,
 *    with the same 10x margin.
 * Each test prints its seed; a failure prints the first mismatches. */
#ifndef SB_CUDA_CHECK_H
#define SB_CUDA_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "../kernels/ops.h"

#define XT_EPS 1.1920928955078125e-07
#define TOL_POINTWISE (10 * (8 * XT_EPS) * (8 * XT_EPS))
static inline double tol_sum(double len)
{
    return TOL_POINTWISE * (len > 1 ? len : 1);
}

/* With STATEBENCH_TF32=1, cuBLAS rounds gemm operands to 10-bit mantissas
 * (eps 2^-11 ~ 4.9e-4): results built on gemms then differ by about 1e-4 in
 * normalised MSE, whatever the fp32 budget; xt_tol_gemm(tol) is the bound
 * to use for them (tol itself without TF32). */
#define XT_TOL_TF32 1e-4
double xt_tol_gemm(double tol);

/* With train.precision bf16 (ops_set_precision(OPS_BF16) on the CUDA
 * backend) matmul_forward / matmul_backward round both operands to bf16:
 * 8 bits of precision, unit roundoff u = 2^-8 ~ 3.9e-3. A product of two
 * rounded operands is a b (1 + d1)(1 + d2) = a b (1 + e) with |e| <=
 * 2u + u^2; fp32 accumulation adds only ~K eps. Output y = sum_l a_l b_l
 * (1 + e_l) errs by sum_l a_l b_l e_l; the e_l are independent with mean
 * zero, so its expected square is sum (a_l b_l)^2 E[e^2] <= sum (a_l
 * b_l)^2 (2u)^2, and for operands of mean zero (the tests' and, near
 * enough, a model's) E[y^2] = sum (a_l b_l)^2: the normalised MSE is at
 * most (2u)^2 = 6.1e-5, whatever K (it does not grow with K, unlike the
 * fp32 budget, because each product's error is relative to itself). Over
 * uniformly spread mantissas E[e^2] is about u^2 / 3 = 5e-6 (measured:
 * 4.4e-6 and 5.1e-6 at K = 1031, tests/cuda_bf16.c); the bound gets a
 * factor 2 for the scatter of a normalised MSE taken over few outputs:
 * XT_TOL_BF16 = 2 (2u)^2 = 1.2e-4. At K = 1031 the fp32 budget
 * tol_sum(K) is 9.4e-9, a five-hundredth of what bf16 gives: a test can
 * tell that bf16 ran. */
#define XT_BF16_U (1.0 / 256)
#define XT_TOL_BF16 (2 * (2 * XT_BF16_U) * (2 * XT_BF16_U))

/* A tensor on both backends: n elements of elem bytes. */
typedef struct {
    size_t n, elem;
    unsigned char *host;  /* CPU side, GUARD + n + GUARD elements */
    unsigned char *dev;   /* GPU side, the same layout in device memory */
} xt;

/* 0 while BOTH runs the CPU side, 1 the GPU side. */
extern int xt_side;

/* Fails the test, saying there is no GPU, unless the CUDA backend starts;
 * non-fatal, so suites may call it in their .init (a fatal assertion
 * there is reported as a crash): the test then ends at its first use of
 * the GPU, xt_cuda_backend. */
void xt_require_gpu(void);
/* Selects the CUDA backend, or ends the test: no CUDA device. */
void xt_cuda_backend(void);
/* 1 when the CUDA backend runs on the CPU emulator (tools/cuda_emu, `make
 * test-cuda-emu`; its device name says so). Emulated kernels run about a
 * thousand times slower than on a GPU, so a test may take a smaller size
 * for a shape that only matters for speed, keeping the code paths (the same
 * kernels and template instantiations): XT_EMU_OR(gpu size, emulated size). */
int xt_emulated(void);
#define XT_EMU_OR(gpu, emu) (xt_emulated() ? (emu) : (gpu))

xt xt_rand(size_t n, double lo, double hi, uint64_t seed); /* floats uniform in [lo, hi) */
xt xt_poison(size_t n);                                     /* floats, all NaN: outputs */
xt xt_fill(size_t n, float value);                          /* floats, all value */
xt xt_ints(const int *values, size_t n);                    /* ints, copied from values */
void xt_free(xt *t);

/* The current side's pointer to t's elements. */
void *xt_ptr(const xt *t);
#define XF(t) ((float *)xt_ptr(&(t)))
#define XI(t) ((int *)xt_ptr(&(t)))

/* Runs call on the CPU backend with CPU pointers, then on the CUDA backend
 * with device pointers (XF / XI pick the side). */
#define BOTH(call)                                                                 \
    do {                                                                           \
        for (xt_side = 0; xt_side < 2; xt_side++) {                                \
            xt_use_side();                                                         \
            call;                                                                  \
        }                                                                          \
        xt_side = 0;                                                               \
        xt_use_side();                                                             \
    } while (0)
void xt_use_side(void);

/* Compares t's GPU elements (floats) with its CPU elements: guards intact
 * on both sides, every element finite on both, normalised MSE <= tol.
 * Fails the test with the first mismatches otherwise. */
void xt_expect(const char *what, const xt *t, double tol);
/* The same for two host arrays (gpu against cpu). */
void xt_expect_close(const char *what, const float *gpu, const float *cpu, size_t n, double tol);

#endif
