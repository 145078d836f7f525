// selftest.cu: the emulator's own tests (make test-cuda-emu runs them before
// the cross-backend tests): CUDA semantics it must reproduce (indices,
// shared memory, barriers, shuffles, votes, atomics, cuBLAS) and the misuse
// it must stop with a message (Criterion: .signal = SIGABRT).
#include <criterion/criterion.h>
#include <signal.h>

#include <cuda_runtime.h>
#include <cublas_v2.h>

#include <vector>

#define CK(call) cr_assert_eq((call), cudaSuccess, "%s", #call)

template <class T> static T *dev(size_t n)
{
    T *p = nullptr;
    CK(cudaMalloc(&p, n * sizeof(T)));
    CK(cudaMemset(p, 0, n * sizeof(T)));
    return p;
}
template <class T> static std::vector<T> host(const T *d, size_t n)
{
    std::vector<T> h(n);
    CK(cudaMemcpy(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost));
    return h;
}

// ---- semantics -----------------------------------------------------------------

__global__ void index_kernel(int *out)
{
    const unsigned t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    const unsigned b = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    out[b * blockDim.x * blockDim.y * blockDim.z + t] = (int)(b * 1000 + t);
}

Test(cuda_emu, three_d_indices_cover_the_grid_once)
{
    const dim3 g(3, 2, 2), b(4, 3, 2);
    const size_t n = 12 * 24;
    int *d = dev<int>(n);
    index_kernel<<<g, b>>>(d);
    CK(cudaGetLastError());
    std::vector<int> h = host(d, n);
    for (size_t i = 0; i < n; i++) cr_expect_eq(h[i], (int)(i / 24 * 1000 + i % 24), "element %zu", i);
    CK(cudaFree(d));
}

// Reverses a block's values through shared memory: needs the barrier.
__global__ void reverse_kernel(float *x)
{
    __shared__ float s[256];
    const int t = threadIdx.x, n = blockDim.x;
    s[t] = x[blockIdx.x * n + t];
    __syncthreads();
    x[blockIdx.x * n + t] = s[n - 1 - t];
}

__global__ void reverse_dynamic_kernel(float *x)
{
    extern __shared__ float s[];
    const int t = threadIdx.x, n = blockDim.x;
    s[t] = x[blockIdx.x * n + t];
    __syncthreads();
    x[blockIdx.x * n + t] = s[n - 1 - t];
}

Test(cuda_emu, shared_memory_static_and_dynamic)
{
    const int blocks = 5, n = 96;
    std::vector<float> h(blocks * n);
    for (int i = 0; i < blocks * n; i++) h[i] = (float)i;
    float *d = dev<float>(h.size());
    CK(cudaMemcpy(d, h.data(), h.size() * sizeof(float), cudaMemcpyHostToDevice));
    reverse_kernel<<<blocks, n>>>(d);
    reverse_dynamic_kernel<<<blocks, n, n * sizeof(float)>>>(d); // twice reversed: unchanged
    CK(cudaGetLastError());
    std::vector<float> r = host(d, h.size());
    for (size_t i = 0; i < h.size(); i++) cr_expect_eq(r[i], h[i]);
    reverse_kernel<<<blocks, n>>>(d);
    r = host(d, h.size());
    cr_expect_eq(r[0], (float)(n - 1));
    cr_expect_eq(r[n], (float)(2 * n - 1));
    CK(cudaFree(d));
}

// Every shuffle form, with widths, and the votes.
__global__ void warp_kernel(int *out)
{
    const int l = threadIdx.x & 31;
    int *o = out + threadIdx.x * 8;
    o[0] = __shfl_xor_sync(0xffffffffu, l, 5);
    o[1] = __shfl_down_sync(0xffffffffu, l, 3);
    o[2] = __shfl_up_sync(0xffffffffu, l, 2, 8);
    o[3] = __shfl_sync(0xffffffffu, l * 10, 7);
    o[4] = __shfl_sync(0xffffffffu, l, l + 1, 4);
    o[5] = (int)__ballot_sync(0xffffffffu, l % 3 == 0);
    o[6] = __any_sync(0xffffffffu, l == 17) + 2 * __all_sync(0xffffffffu, l < 31);
    double v = __shfl_xor_sync(0xffffffffu, 0.5 + l, 16); // 8-byte values
    o[7] = (int)(v * 2);
}

Test(cuda_emu, warp_shuffles_and_votes)
{
    int *d = dev<int>(64 * 8);
    warp_kernel<<<1, 64>>>(d);
    CK(cudaGetLastError());
    std::vector<int> h = host(d, 64 * 8);
    unsigned ballot = 0;
    for (int l = 0; l < 32; l += 3) ballot |= 1u << l;
    for (int t = 0; t < 64; t++) {
        const int l = t & 31, *o = &h[t * 8];
        cr_expect_eq(o[0], l ^ 5, "xor, lane %d", l);
        cr_expect_eq(o[1], l + 3 < 32 ? l + 3 : l, "down, lane %d", l);
        cr_expect_eq(o[2], l % 8 >= 2 ? l - 2 : l, "up width 8, lane %d", l);
        cr_expect_eq(o[3], 70, "idx, lane %d", l);
        cr_expect_eq(o[4], (l & ~3) + ((l + 1) & 3), "idx width 4, lane %d", l);
        cr_expect_eq((unsigned)o[5], ballot, "ballot, lane %d", l);
        cr_expect_eq(o[6], 1, "any / all, lane %d", l);
        cr_expect_eq(o[7], 2 * (l ^ 16) + 1, "double xor, lane %d", l);
    }
    CK(cudaFree(d));
}

__global__ void count_kernel(int *out, float *fsum, double *dsum, unsigned long long *u)
{
    const int c = __syncthreads_count(threadIdx.x % 4 == 0);
    if (threadIdx.x == 0) out[blockIdx.x] = c;
    atomicAdd(fsum, 1.0f);
    atomicAdd(dsum, 0.25);
    atomicAdd(u, 1);
    atomicMax(out + 100, (int)(blockIdx.x * blockDim.x + threadIdx.x));
}

Test(cuda_emu, barrier_count_and_atomics_across_blocks)
{
    int *d = dev<int>(101);
    float *f = dev<float>(1);
    double *g = dev<double>(1);
    unsigned long long *u = dev<unsigned long long>(1);
    count_kernel<<<37, 160>>>(d, f, g, u);
    CK(cudaGetLastError());
    std::vector<int> h = host(d, 101);
    for (int b = 0; b < 37; b++) cr_expect_eq(h[b], 40);
    cr_expect_eq(h[100], 37 * 160 - 1);
    cr_expect_eq(host(f, 1)[0], 37.0f * 160);
    cr_expect_eq(host(g, 1)[0], 37 * 160 * 0.25);
    cr_expect_eq(host(u, 1)[0], 37ull * 160);
}

// A grid-stride kernel with a template functor, as dense.cu's col_sum.
template <typename F> __global__ void apply_kernel(float *x, size_t n, F f)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        x[i] = f(x[i]);
}
struct affine {
    float a, b;
    __device__ float operator()(float v) const { return a * v + b; }
};
__global__ void optional_kernel(float *x, const float *maybe)
{
    x[threadIdx.x] = maybe ? maybe[threadIdx.x] : -1.0f;
}

Test(cuda_emu, template_kernel_and_null_argument)
{
    const size_t n = 1000;
    float *d = dev<float>(n);
    apply_kernel<<<3, 64>>>(d, n, affine{2, 1});
    apply_kernel<<<3, 64>>>(d, n, affine{3, 0});
    std::vector<float> h = host(d, n);
    cr_expect_eq(h[1], 3.0f);
    cr_expect_eq(h[n - 1], 3.0f);
    optional_kernel<<<1, 4>>>(d, NULL); // NULL converts to the pointer parameter
    h = host(d, n);
    cr_expect_eq(h[3], -1.0f);
    cr_expect_eq(h[4], 3.0f);
    CK(cudaFree(d));
}

Test(cuda_emu, bad_configurations_fail_the_launch)
{
    int *d = dev<int>(1);
    index_kernel<<<1, 1025>>>(d);
    cr_expect_eq(cudaGetLastError(), cudaErrorInvalidConfiguration);
    cr_expect_eq(cudaGetLastError(), cudaSuccess, "the error is not sticky");
    index_kernel<<<dim3(1, 65536), 32>>>(d);
    cr_expect_eq(cudaGetLastError(), cudaErrorInvalidConfiguration);
    index_kernel<<<0, 32>>>(d);
    cr_expect_eq(cudaGetLastError(), cudaErrorInvalidConfiguration);
    index_kernel<<<1, 32, 64 * 1024>>>(d);
    cr_expect_eq(cudaGetLastError(), cudaErrorInvalidValue, "over 48 KiB of dynamic shared memory");
    CK(cudaFree(d));
}

Test(cuda_emu, device_properties_say_emulated)
{
    int n = 0;
    CK(cudaGetDeviceCount(&n));
    cr_expect_eq(n, 1);
    cudaDeviceProp p;
    CK(cudaGetDeviceProperties(&p, 0));
    cr_expect(strstr(p.name, "emulat") != NULL, "%s", p.name);
}

// Column-major C (m,n) = op(A) op(B) against a loop, every transpose pair,
// with leading dimensions larger than the rows and beta != 0.
Test(cuda_emu, cublas_sgemm_reference)
{
    cublasHandle_t h;
    cr_assert_eq(cublasCreate(&h), CUBLAS_STATUS_SUCCESS);
    const int m = 5, n = 4, k = 3, ld = 7;
    std::vector<float> A(ld * 7), B(ld * 7), C(ld * n);
    for (size_t i = 0; i < A.size(); i++) A[i] = (float)((i * 7) % 11) - 5, B[i] = (float)((i * 5) % 13) - 6;
    for (size_t i = 0; i < C.size(); i++) C[i] = (float)(i % 3);
    float *dA = dev<float>(A.size()), *dB = dev<float>(B.size()), *dC = dev<float>(C.size());
    CK(cudaMemcpy(dA, A.data(), A.size() * 4, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dB, B.data(), B.size() * 4, cudaMemcpyHostToDevice));
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            CK(cudaMemcpy(dC, C.data(), C.size() * 4, cudaMemcpyHostToDevice));
            const float alpha = 2, beta = 0.5f;
            cr_assert_eq(cublasSgemm(h, ta ? CUBLAS_OP_T : CUBLAS_OP_N, tb ? CUBLAS_OP_T : CUBLAS_OP_N, m, n, k, &alpha,
                                     dA, ld, dB, ld, &beta, dC, ld),
                         CUBLAS_STATUS_SUCCESS);
            std::vector<float> r = host(dC, C.size());
            for (int j = 0; j < n; j++)
                for (int i = 0; i < m; i++) {
                    double s = 0;
                    for (int l = 0; l < k; l++)
                        s += (double)(ta ? A[l + i * ld] : A[i + l * ld]) * (tb ? B[j + l * ld] : B[l + j * ld]);
                    cr_expect_eq(r[i + j * ld], (float)(2 * s + 0.5 * C[i + j * ld]), "ta %d tb %d (%d,%d)", ta, tb, i, j);
                }
        }
    const float one = 1;
    cr_expect_eq(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &one, dA, m - 1, dB, ld, &one, dC, ld),
                 CUBLAS_STATUS_INVALID_VALUE, "lda < m");
    cublasDestroy(h);
}

// ---- misuse: each stops the program with a message ---------------------------------

__global__ void divergent_barrier_kernel(float *x)
{
    if (threadIdx.x < 16) return;
    __syncthreads();
    x[threadIdx.x] = 1;
}
Test(cuda_emu_misuse, barrier_after_some_threads_exited, .signal = SIGABRT)
{
    float *d = dev<float>(64);
    divergent_barrier_kernel<<<1, 64>>>(d);
}

__global__ void two_barriers_kernel(float *x)
{
    if (threadIdx.x % 2) {
        __syncthreads();
    } else {
        __syncthreads();
    }
    x[threadIdx.x] = 1;
}
Test(cuda_emu_misuse, threads_at_different_barriers, .signal = SIGABRT)
{
    float *d = dev<float>(64);
    two_barriers_kernel<<<1, 64>>>(d);
}

__global__ void partial_warp_shuffle_kernel(float *x)
{
    x[threadIdx.x] = __shfl_xor_sync(0xffffffffu, x[threadIdx.x], 1);
}
Test(cuda_emu_misuse, full_mask_in_a_partial_warp, .signal = SIGABRT)
{
    float *d = dev<float>(48);
    partial_warp_shuffle_kernel<<<1, 48>>>(d); // the second warp has 16 lanes
}

__global__ void exited_lane_shuffle_kernel(float *x)
{
    if (threadIdx.x == 3) return;
    x[threadIdx.x] = __shfl_down_sync(0xffffffffu, x[threadIdx.x], 1);
}
Test(cuda_emu_misuse, mask_names_an_exited_lane, .signal = SIGABRT)
{
    float *d = dev<float>(32);
    exited_lane_shuffle_kernel<<<1, 32>>>(d);
}

__global__ void out_of_mask_kernel(float *x)
{
    if (threadIdx.x < 16) x[threadIdx.x] = __shfl_xor_sync(0x0000ffffu, x[threadIdx.x], 16);
}
Test(cuda_emu_misuse, shuffle_reads_outside_its_mask, .signal = SIGABRT)
{
    float *d = dev<float>(32);
    out_of_mask_kernel<<<1, 32>>>(d);
}

__global__ void shared_overflow_kernel(float *x, int n)
{
    __shared__ float s[32];
    s[threadIdx.x + n] = 1; // n = 1: thread 31 writes s[32]
    __syncthreads();
    x[threadIdx.x] = s[threadIdx.x];
}
Test(cuda_emu_misuse, static_shared_memory_out_of_bounds, .signal = SIGABRT)
{
    float *d = dev<float>(32);
    shared_overflow_kernel<<<1, 32>>>(d, 1);
}

__global__ void dynamic_overflow_kernel(float *x)
{
    extern __shared__ float s[];
    s[threadIdx.x + 1] = x[threadIdx.x];
}
Test(cuda_emu_misuse, dynamic_shared_memory_out_of_bounds, .signal = SIGABRT)
{
    float *d = dev<float>(32);
    dynamic_overflow_kernel<<<1, 32, 32 * sizeof(float)>>>(d);
}

__global__ void write_kernel(float *x, int n)
{
    x[threadIdx.x + n] = 1;
}
Test(cuda_emu_misuse, kernel_writes_past_its_allocation, .signal = SIGABRT)
{
    float *d = dev<float>(32);
    write_kernel<<<1, 32>>>(d, 1);
}

Test(cuda_emu_misuse, host_pointer_as_a_kernel_argument, .signal = SIGABRT)
{
    static float h[32];
    write_kernel<<<1, 32>>>(h, 0);
}

Test(cuda_emu_misuse, freed_pointer_as_a_kernel_argument, .signal = SIGABRT)
{
    float *d = dev<float>(32);
    CK(cudaFree(d));
    write_kernel<<<1, 32>>>(d, 0);
}

Test(cuda_emu_misuse, copy_in_the_wrong_direction, .signal = SIGABRT)
{
    float *d = dev<float>(32), h[32] = {0};
    cudaMemcpy(d, h, sizeof h, cudaMemcpyDeviceToHost);
}

Test(cuda_emu_misuse, copy_past_the_allocation, .signal = SIGABRT)
{
    float *d = dev<float>(32), h[33] = {0};
    cudaMemcpy(d, h, sizeof h, cudaMemcpyHostToDevice);
}

Test(cuda_emu_misuse, gemm_matrix_past_its_allocation, .signal = SIGABRT)
{
    cublasHandle_t h;
    cublasCreate(&h);
    float *a = dev<float>(12), *b = dev<float>(12), *c = dev<float>(11);
    const float one = 1, zero = 0;
    cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 3, 4, 4, &one, a, 3, b, 4, &zero, c, 3); // C needs 12
}

Test(cuda_emu_misuse, free_of_an_interior_pointer, .signal = SIGABRT)
{
    float *d = dev<float>(32);
    cudaFree(d + 1);
}
