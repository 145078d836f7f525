/* gemm_tiled.c: gemm cut into tiles fixed by the shape alone, so a result is
 * bit-identical whatever the number of threads.
 *
 * Why: OpenBLAS splits one large gemm over its threads, and the split decides
 * which micro-kernel (and so which summation order) produces each element:
 * sgemm 2048x64x64 differs in the last bits between 1 and 2 threads
 * (OpenBLAS 0.3.21, Zen). Here C is cut into tiles; each tile is one BLAS
 * call made inside an active OpenMP region, where OpenBLAS's OpenMP build
 * always runs single-threaded, and the tiles are spread over our threads.
 * With one thread the region is inactive, but then OpenBLAS sees one OpenMP
 * thread and is single-threaded too. A product too small for OpenBLAS ever
 * to thread (M*N*K <= 65536 * GEMM_MULTITHREAD_THRESHOLD, which is >= 1) is
 * one direct call.
 *
 * How big the tiles are: every BLAS call packs its rows of op(A) and its
 * columns of op(B) afresh, so a product cut into tm x tn tiles packs op(B)
 * tm times and op(A) tn times. With fixed 64 x 256 tiles that repacking
 * was a large part of a training step: the weight gradients (K = B T rows,
 * M and N the layer widths) packed their 4 MB op(B) once per 64 rows. So
 * the tiles are as few and as large as keep the threads busy (at most
 * MAX_TILES, at least MIN_TILE_MACS multiply-adds each), cut where the
 * repacking (tm K N + tn K M) is least. The tiles depend on the shape
 * only, never on the thread count.
 *
 * Long products (K much larger than M and N: the weight gradients, K = B T)
 * are cut along K instead: any cut of C would repack the whole K x N (or
 * K x M) operand once per tile, so C (M,N) = the sum of S chunk products
 * over fixed ranges of K, each packed once. Chunk 0 goes straight into C
 * (with beta); the others into a scratch buffer, added to C in chunk order
 * afterwards, so the sums are the same whatever the thread count. */
#include "gemm_tiled.h"

#include <assert.h>
#include <stdlib.h>

#ifdef SB_DOUBLE
#define BLAS_GEMM cblas_dgemm
#else
#define BLAS_GEMM cblas_sgemm
#endif

#define SINGLE_CALL_MAX 65536.0 /* M*N*K */
#define MAX_TILES 8           /* enough for 2, 4 or 8 threads to share evenly */
#define MIN_TILE_MACS 524288.0 /* ~10 us of work: more than a region costs */
#define TILE_ALIGN 16          /* tile sides are multiples of the micro-kernels' */

#define KSPLIT_MIN_K 2048     /* long products: K at least this ... */
#define KSPLIT_RATIO 4        /* ... and this many times M and N */
#define KSPLIT_CHUNK 1024     /* K per chunk at least */

static int ceil_div(int a, int b) { return (a + b - 1) / b; }

static int round_up(int a, int b) { return ceil_div(a, b) * b; }

/* Tile sides (*tile_m, *tile_n) for C (M,N) with inner size K: the fewest
 * tiles that give every thread work, cut to pack the least (tm N + tn M). */
static void choose_tiles(int M, int N, int K, int *tile_m, int *tile_n)
{
    double macs = (double)M * N * K;
    int want = macs / MIN_TILE_MACS < MAX_TILES ? (int)(macs / MIN_TILE_MACS) : MAX_TILES;
    int max_m = ceil_div(M, TILE_ALIGN), max_n = ceil_div(N, TILE_ALIGN);
    if (want > max_m * max_n) want = max_m * max_n;
    if (want < 1) want = 1;
    int best_m = 1, best_n = 1;
    double best_cost = -1;
    for (int tm = 1; tm <= want && tm <= max_m; tm++) {
        int tn = ceil_div(want, tm);
        if (tn > max_n) continue;
        double cost = (double)tm * N + (double)tn * M;
        if (best_cost < 0 || cost < best_cost) best_cost = cost, best_m = tm, best_n = tn;
    }
    *tile_m = round_up(ceil_div(M, best_m), TILE_ALIGN);
    *tile_n = round_up(ceil_div(N, best_n), TILE_ALIGN);
}

/* The partial products of the K chunks after the first: grown as needed,
 * one buffer per calling thread (a gemm_tiled called inside a parallel
 * region uses its own), kept for the next call. */
static _Thread_local real *split_buf;
static _Thread_local size_t split_cap;

static real *split_scratch(size_t n)
{
    if (n > split_cap) {
        real *p = realloc(split_buf, n * sizeof *p);
        if (!p) return NULL;
        split_buf = p;
        split_cap = n;
    }
    return split_buf;
}

/* C = alpha op(A) op(B) + beta C as S products over consecutive ranges of
 * K; 0 when the scratch cannot be had (the caller then tiles C). */
static int gemm_split_k(CBLAS_ORDER order, CBLAS_TRANSPOSE trans_a, CBLAS_TRANSPOSE trans_b, int M,
                        int N, int K, real alpha, const real *A, int lda, const real *B, int ldb,
                        real beta, real *C, int ldc)
{
    int S = K / KSPLIT_CHUNK;
    const double macs = (double)M * N * K;
    if (S > MAX_TILES) S = MAX_TILES;
    if (S > macs / MIN_TILE_MACS) S = (int)(macs / MIN_TILE_MACS);
    if (S < 2) return 0;
    const int kc = round_up(ceil_div(K, S), TILE_ALIGN);
    S = ceil_div(K, kc);
    const size_t mn = (size_t)M * N;
    real *part = split_scratch((size_t)(S - 1) * mn);
    if (!part) return 0;
#pragma omp parallel for schedule(static)
    for (int s = 0; s < S; s++) {
        const int k0 = s * kc, len = K - k0 < kc ? K - k0 : kc;
        /* columns k0.. of op(A) (M,K), rows k0.. of op(B) (K,N) */
        const real *a = trans_a == CblasNoTrans ? A + k0 : A + (size_t)k0 * lda;
        const real *b = trans_b == CblasNoTrans ? B + (size_t)k0 * ldb : B + k0;
        if (s == 0)
            BLAS_GEMM(order, trans_a, trans_b, M, N, len, alpha, a, lda, b, ldb, beta, C, ldc);
        else
            BLAS_GEMM(order, trans_a, trans_b, M, N, len, alpha, a, lda, b, ldb, 0,
                      part + (size_t)(s - 1) * mn, N);
    }
#pragma omp parallel for schedule(static) if (mn >= 16384)
    for (int i = 0; i < M; i++) {
        real *c = C + (size_t)i * ldc;
        for (int s = 1; s < S; s++) {
            const real *p = part + (size_t)(s - 1) * mn + (size_t)i * N;
            for (int j = 0; j < N; j++) c[j] += p[j];
        }
    }
    return 1;
}

void gemm_tiled(CBLAS_ORDER order, CBLAS_TRANSPOSE trans_a, CBLAS_TRANSPOSE trans_b, int M, int N, int K,
                real alpha, const real *A, int lda, const real *B, int ldb, real beta, real *C, int ldc)
{
    /* C (M,N) with row stride ldc; op(A) (M,K), A (M,lda) or (K,lda) when transposed;
       op(B) (K,N), B (K,ldb) or (N,ldb) when transposed */
    assert(order == CblasRowMajor);
    if ((double)M * N * K <= SINGLE_CALL_MAX) {
        BLAS_GEMM(order, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    if (K >= KSPLIT_MIN_K && K >= KSPLIT_RATIO * M && K >= KSPLIT_RATIO * N &&
        gemm_split_k(order, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc))
        return;
    int tile_m, tile_n;
    choose_tiles(M, N, K, &tile_m, &tile_n);
    int tiles_m = ceil_div(M, tile_m), tiles_n = ceil_div(N, tile_n);
    /* even a single tile goes through the region: inside it OpenBLAS is
       single-threaded, as it is for every tile of a larger product */
#pragma omp parallel for schedule(static)
    for (int tile = 0; tile < tiles_m * tiles_n; tile++) {
        int i0 = tile / tiles_n * tile_m, j0 = tile % tiles_n * tile_n;
        int rows = M - i0 < tile_m ? M - i0 : tile_m, cols = N - j0 < tile_n ? N - j0 : tile_n;
        /* rows i0.. of op(A) and columns j0.. of op(B) */
        const real *a = trans_a == CblasNoTrans ? A + (size_t)i0 * lda : A + i0;
        const real *b = trans_b == CblasNoTrans ? B + j0 : B + (size_t)j0 * ldb;
        BLAS_GEMM(order, trans_a, trans_b, rows, cols, K, alpha, a, lda, b, ldb, beta,
                  C + (size_t)i0 * ldc + j0, ldc);
    }
}
