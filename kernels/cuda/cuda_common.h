// cuda_common.h: what every CUDA kernel file of statebench shares: error
// checks that name the file and line, the one stream and cuBLAS handle the
// backend runs on, and launch-size helpers. Include from .cu files only.
#ifndef SB_CUDA_COMMON_H
#define SB_CUDA_COMMON_H

#include <cuda_runtime.h>
#include <cublas_v2.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "../real.h"

#ifdef __cplusplus
extern "C" {
#endif

// Print "statebench: CUDA error at FILE:LINE: WHAT: MESSAGE" and exit 1 (a runtime failure, not bad input).
// Defined in kernels/cuda/cuda_common.cu.
void sb_cuda_fail(const char *file, int line, const char *what, const char *msg);

// The stream every kernel and cuBLAS call of the backend is queued on, and
// the cuBLAS handle bound to it. Both are created on first use (on the
// device selected by ops_cuda_init) and live until the process exits.
cudaStream_t sb_cuda_stream(void);
cublasHandle_t sb_cublas(void);

// Device scratch for reductions that end on the host (sum_squares,
// crossentropy_forward's count): SB_CUDA_SCRATCH_BYTES, allocated once by
// the backend's initialisation, so no op allocates.
#define SB_CUDA_SCRATCH_BYTES 16384
void *sb_cuda_scratch(void);
// Device scratch for the fixed-order reductions whose partial sums are
// tensors (embedding_backward's per-segment rows): SB_CUDA_REDUCE_BYTES,
// allocated once by the initialisation; an op uses it between its own
// kernels only, and splits its work to fit.
#define SB_CUDA_REDUCE_BYTES ((size_t)16 << 20)
void *sb_cuda_reduce_scratch(void);

// Device scratch of at least elems bf16 values (2 bytes each) for gemm
// operands rounded to bf16 (dense.cu, train.precision bf16); slot 0 or 1,
// one buffer each. A slot grows on demand outside a stream capture: the
// buffer it replaces stays allocated (a captured graph may still read it)
// and growth at least doubles, so few are kept. Inside a capture it must
// already be large enough (the uncaptured warm-up step of the same shape
// sized it); otherwise the process stops with a message.
#define SB_CUDA_BF16_SLOTS 2
void *sb_cuda_bf16_scratch(int slot, size_t elems);

// Lets `kernel` launch with `bytes` of dynamic shared memory: above the
// default 48 KiB, cudaFuncSetAttribute, called again only when a kernel
// asks for more than it was last allowed (so the launches a CUDA graph
// captures, whose eager warm-up came first, make no such call). More than
// the device gives (sb_cuda_smem_optin) stops the process naming `what`.
void sb_cuda_allow_smem(const void *kernel, size_t bytes, const char *what);

// Refuses (sb_cuda_fail, naming op) head sizes K, V outside 1..max: what a
// scan's kernels hold (kernels/cuda_limits.h; the harness checks runs first).
void sb_cuda_check_heads(const char *op, int K, int V, int max);

// Name of a cuBLAS status, for messages.
const char *sb_cublas_status_name(cublasStatus_t s);

#ifdef __cplusplus
}
#endif

// Check a CUDA runtime call: CUDA_CHECK(cudaMemcpyAsync(...)).
#define CUDA_CHECK(call)                                                        \
    do {                                                                        \
        cudaError_t sb_cuda_err_ = (call);                                      \
        if (sb_cuda_err_ != cudaSuccess)                                        \
            sb_cuda_fail(__FILE__, __LINE__, #call, cudaGetErrorString(sb_cuda_err_)); \
    } while (0)

// Check the launch just made: kernel<<<...>>>(...); CUDA_CHECK_LAST();
// (catches bad launch configurations; asynchronous faults surface at the
// next synchronising call, which is checked too).
#define CUDA_CHECK_LAST()                                                       \
    do {                                                                        \
        cudaError_t sb_cuda_err_ = cudaGetLastError();                          \
        if (sb_cuda_err_ != cudaSuccess)                                        \
            sb_cuda_fail(__FILE__, __LINE__, "kernel launch", cudaGetErrorString(sb_cuda_err_)); \
    } while (0)

// Check a cuBLAS call.
#define CUBLAS_CHECK(call)                                                      \
    do {                                                                        \
        cublasStatus_t sb_cublas_st_ = (call);                                  \
        if (sb_cublas_st_ != CUBLAS_STATUS_SUCCESS)                             \
            sb_cuda_fail(__FILE__, __LINE__, #call, sb_cublas_status_name(sb_cublas_st_)); \
    } while (0)

// Launch helpers: threads per block for pointwise kernels and the grid that
// covers n elements with it (grid-stride loops cover what a capped grid
// leaves: SB_GRID never exceeds SB_MAX_BLOCKS).
#define SB_BLOCK 256
#define SB_MAX_BLOCKS 65535
static inline unsigned sb_grid(size_t n, unsigned block)
{
    size_t g = (n + block - 1) / block;
    if (g < 1) g = 1;
    if (g > SB_MAX_BLOCKS) g = SB_MAX_BLOCKS;
    return (unsigned)g;
}
static inline unsigned sb_cdiv(size_t a, size_t b) { return (unsigned)((a + b - 1) / b); }

#ifdef __CUDACC__
// for (size_t i = SB_GRID_START; i < n; i += SB_GRID_STRIDE): grid-stride loop.
#define SB_GRID_START ((size_t)blockIdx.x * blockDim.x + threadIdx.x)
#define SB_GRID_STRIDE ((size_t)gridDim.x * blockDim.x)

// Warp and block reductions (sum, max) over float; blockDim.x a multiple of 32,
// at most 1024. The block forms return the result to every thread.
__device__ __forceinline__ float sb_warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float sb_warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
__device__ __forceinline__ float sb_block_sum(float v)
{
    __shared__ float sb_red_sum_[32];
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    v = sb_warp_sum(v);
    __syncthreads(); // sb_red_sum_ may still be read by a previous call
    if (lane == 0) sb_red_sum_[w] = v;
    __syncthreads();
    v = lane < nw ? sb_red_sum_[lane] : 0.0f;
    return sb_warp_sum(v);
}
__device__ __forceinline__ float sb_block_max(float v)
{
    __shared__ float sb_red_max_[32];
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    v = sb_warp_max(v);
    __syncthreads();
    if (lane == 0) sb_red_max_[w] = v;
    __syncthreads();
    v = lane < nw ? sb_red_max_[lane] : -INFINITY;
    return sb_warp_max(v);
}
#endif

#endif
