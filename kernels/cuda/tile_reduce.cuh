// tile_reduce.cuh: the reductions of the tiled scans (scan_delta.cu,
// scan_delta_vec.cu). A block of WARPS warps holds a tile whose rows are
// spread over groups of TV adjacent lanes (TV a power of two <= 32).
#ifndef SB_TILE_REDUCE_CUH
#define SB_TILE_REDUCE_CUH

#define TILE_FULL_MASK 0xffffffffu

// Sums x over the TV adjacent lanes sharing a row; every one of them gets the sum.
__device__ __forceinline__ float tile_row_sum(float x, int tv)
{
    for (int o = 1; o < tv; o <<= 1) x += __shfl_xor_sync(TILE_FULL_MASK, x, o);
    return x;
}

// Sums x[e] (column tx + TV e of this thread) over all rows of the block;
// every thread gets its columns' sums, added in a fixed order. red: WARPS *
// STRIDE floats of shared memory that no thread may still be reading
// (callers alternate two); N TV <= STRIDE.
template <int N, int WARPS, int STRIDE>
__device__ __forceinline__ void tile_col_sum(float *x, float *red, int tv, int tx, int lane, int warp)
{
#pragma unroll
    for (int e = 0; e < N; e++)
        for (int o = tv; o < 32; o <<= 1) x[e] += __shfl_xor_sync(TILE_FULL_MASK, x[e], o);
    if (lane < tv) {
#pragma unroll
        for (int e = 0; e < N; e++) red[warp * STRIDE + e * tv + tx] = x[e];
    }
    __syncthreads();
#pragma unroll
    for (int e = 0; e < N; e++) {
        float s = 0;
#pragma unroll
        for (int w = 0; w < WARPS; w++) s += red[w * STRIDE + e * tv + tx];
        x[e] = s;
    }
}

#endif
