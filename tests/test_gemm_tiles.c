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
 * 77 x 1000 x 700 across N; 300 x 260 x 900 both ways. */
static const int shapes[][3] = {{1000, 77, 700}, {77, 1000, 700}, {300, 260, 900}};

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
