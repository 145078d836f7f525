/* test_gemm_tiles.c: gemm_tiled on products it cuts into several large
 * tiles with a short last one (in M, in N), every transpose: close to a
 * double loop and bit-identical on 1, 2 and 3 threads. */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/cpu/gemm_tiled.h"
#include "../kernels/ops.h"
#include "support.h"

/* 1000 x 77 x 700 is cut across M (8 tiles of 128 rows, the last 104),
 * 77 x 1000 x 700 across N; 300 x 260 x 900 both ways. The long products
 * are cut along K: 100 x 37 x 5000 into 4 chunks of 1264 (the last 1208),
 * 300 x 260 x 2100 into 2 (1056 and 1044). */
static const int shapes[][3] = {{1000, 77, 700}, {77, 1000, 700}, {300, 260, 900},
                                {100, 37, 5000}, {300, 260, 2100}};

Test(gemm_tiles, large_tiles_with_remainders)
{
    const uint64_t seed = 77001;
    cr_log_info("seed %llu", (unsigned long long)seed);
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        const int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        for (int t = 0; t < 4; t++) {
            CBLAS_TRANSPOSE ta = t & 1 ? CblasTrans : CblasNoTrans, tb = t & 2 ? CblasTrans : CblasNoTrans;
            const int lda = ta == CblasNoTrans ? K : M, ldb = tb == CblasNoTrans ? N : K;
            real *A = malloc((size_t)M * K * sizeof *A), *B = malloc((size_t)K * N * sizeof *B);
            real *C[3];
            fill_uniform(A, (size_t)M * K, -1, 1, seed + 10 * s + t);
            fill_uniform(B, (size_t)K * N, -1, 1, seed + 10 * s + t + 5);
            for (int th = 0; th < 3; th++) {
                C[th] = malloc((size_t)M * N * sizeof *C[th]);
                fill_uniform(C[th], (size_t)M * N, -1, 1, seed + 99);
                ops_set_threads(th + 1);
                gemm_tiled(CblasRowMajor, ta, tb, M, N, K, 0.5, A, lda, B, ldb, 1, C[th], N);
            }
            ops_set_threads(1);
            cr_expect(memcmp(C[0], C[1], (size_t)M * N * sizeof *C[0]) == 0,
                      "%dx%dx%d trans %d: 1 and 2 threads differ", M, N, K, t);
            cr_expect(memcmp(C[0], C[2], (size_t)M * N * sizeof *C[0]) == 0,
                      "%dx%dx%d trans %d: 1 and 3 threads differ", M, N, K, t);
            /* a sample of elements against a double loop: each is a sum of K
             * products of magnitude <= 1, rounded K times at most */
            real *C0 = malloc((size_t)M * N * sizeof *C0);
            fill_uniform(C0, (size_t)M * N, -1, 1, seed + 99);
            for (int i = 0; i < M; i += 7)
                for (int j = 0; j < N; j += 5) {
                    double sum = 0, mag = 0;
                    for (int k = 0; k < K; k++) {
                        double a = ta == CblasNoTrans ? A[(size_t)i * lda + k] : A[(size_t)k * lda + i];
                        double b = tb == CblasNoTrans ? B[(size_t)k * ldb + j] : B[(size_t)j * ldb + k];
                        sum += a * b;
                        mag += fabs(a * b);
                    }
                    double want = 0.5 * sum + C0[(size_t)i * N + j];
                    double tol = 2 * K * FLT_EPSILON * (0.5 * mag + 1);
                    double got = C[0][(size_t)i * N + j];
                    if (!(fabs(got - want) <= tol)) {
                        cr_expect(0, "%dx%dx%d trans %d: C[%d,%d] = %.9g, want %.9g (tol %.3g)", M, N, K, t, i, j,
                                  got, want, tol);
                        i = M;
                        break;
                    }
                }
            free(C0);
            for (int th = 0; th < 3; th++) free(C[th]);
            free(A);
            free(B);
        }
    }
}

/* beta = 0 ignores what C held (NaN here), on the K-cut path as on the
 * tiled one: the same bits as beta = 1 on a zeroed C, on 1 and 2 threads. */
Test(gemm_tiles, beta_zero_ignores_nan_in_c)
{
    static const int cases[][3] = {{100, 37, 5000}, {1000, 77, 700}};
    for (size_t s = 0; s < sizeof cases / sizeof *cases; s++) {
        const int M = cases[s][0], N = cases[s][1], K = cases[s][2];
        real *A = malloc((size_t)K * M * sizeof *A), *B = malloc((size_t)K * N * sizeof *B);
        real *C = malloc((size_t)M * N * sizeof *C), *Z = calloc((size_t)M * N, sizeof *Z);
        fill_uniform(A, (size_t)K * M, -1, 1, 4242 + s);
        fill_uniform(B, (size_t)K * N, -1, 1, 4343 + s);
        ops_set_threads(1);
        gemm_tiled(CblasRowMajor, CblasTrans, CblasNoTrans, M, N, K, 1, A, M, B, N, 1, Z, N);
        for (int th = 1; th <= 2; th++) {
            for (size_t i = 0; i < (size_t)M * N; i++) C[i] = NAN;
            ops_set_threads(th);
            gemm_tiled(CblasRowMajor, CblasTrans, CblasNoTrans, M, N, K, 1, A, M, B, N, 0, C, N);
            size_t bad = 0;
            for (size_t i = 0; i < (size_t)M * N; i++) bad += !isfinite(C[i]);
            cr_expect(bad == 0, "%dx%dx%d, %d threads: %zu elements not finite", M, N, K, th, bad);
            cr_expect(memcmp(C, Z, (size_t)M * N * sizeof *C) == 0,
                      "%dx%dx%d, %d threads: beta 0 differs from beta 1 on zeros", M, N, K, th);
        }
        ops_set_threads(1);
        free(A);
        free(B);
        free(C);
        free(Z);
    }
}
