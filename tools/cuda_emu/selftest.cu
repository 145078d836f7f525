// selftest.cu: the emulator's own tests (make test-cuda-emu runs them before
// the cross-backend tests): CUDA semantics it must reproduce (indices,
// shared memory, barriers, shuffles, votes, atomics, cuBLAS) and the misuse
// it must stop with a message (Criterion: .signal = SIGABRT).
#include <criterion/criterion.h>
#include <signal.h>

#include <cuda_runtime.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <string.h>

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

// A race on purpose: each thread writes its slot, then reads its neighbour's
// without a barrier. Which value it sees depends on the order the lanes run
// in, which CUDA_EMU_ORDER chooses: forward (thread 0 first) never sees the
// neighbour's write, reverse always does.
__global__ void racy_neighbour_kernel(int *out)
{
    __shared__ int s[64];
    const int t = threadIdx.x;
    s[t] = t + 1;
    out[t] = t + 1 < (int)blockDim.x ? s[t + 1] : -1;
}

Test(cuda_emu, lane_order_follows_cuda_emu_order)
{
    const char *order = getenv("CUDA_EMU_ORDER");
    const bool reverse = order && !strcmp(order, "reverse");
    int *d = dev<int>(64);
    racy_neighbour_kernel<<<1, 64>>>(d);
    CK(cudaGetLastError());
    std::vector<int> h = host(d, 64);
    for (int t = 0; t + 1 < 64; t++)
        if (reverse)
            cr_expect_eq(h[t], t + 2, "reverse order: thread %d read %d, want its neighbour's write %d", t, h[t], t + 2);
        else
            cr_expect_neq(h[t], t + 2, "forward order: thread %d saw its neighbour's later write", t);
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

// bf16 conversions: round to nearest, ties to even, canonical NaN; and
// cublasGemmEx / cublasGemmStridedBatchedEx on bf16 A and B: exactly the
// fp32 reference on the bf16 values (a bf16 is a float's top half); types
// it does not emulate are CUBLAS_STATUS_NOT_SUPPORTED.
static uint32_t bf16_bits_of(uint32_t f)
{
    float x;
    memcpy(&x, &f, 4);
    return (uint32_t)__float2bfloat16_rn(x).__x;
}

Test(cuda_emu, bf16_rounding_and_gemm_ex)
{
    cr_expect_eq(bf16_bits_of(0x3f808000u), 0x3f80u, "a tie to the even 1");
    cr_expect_eq(bf16_bits_of(0x3f818000u), 0x3f82u, "a tie to the even neighbour above");
    cr_expect_eq(bf16_bits_of(0x3f808001u), 0x3f81u, "above a tie: up");
    cr_expect_eq(bf16_bits_of(0xbf807fffu), 0xbf80u, "below a tie: down, by magnitude");
    cr_expect_eq(bf16_bits_of(0x7f7fffffu), 0x7f80u, "FLT_MAX overflows to infinity");
    cr_expect_eq(bf16_bits_of(0x00018000u), 0x0002u, "a subnormal tie: to even");
    cr_expect_eq(bf16_bits_of(0xffc00001u), 0x7fffu, "NaN: the canonical NaN");
    cr_expect_eq(bf16_bits_of(0xff800000u), 0xff80u, "-infinity stays");
    __nv_bfloat16 b;
    b.__x = 0x3fc1u;
    cr_expect_eq(__bfloat162float(b), 1.5078125f);

    cublasHandle_t h;
    cr_assert_eq(cublasCreate(&h), CUBLAS_STATUS_SUCCESS);
    const int m = 3, n = 2, k = 5, batch = 2;
    std::vector<__nv_bfloat16> A(m * k * batch), B(k * n * batch);
    std::vector<float> Af(A.size()), Bf(B.size());
    for (size_t i = 0; i < A.size(); i++) A[i] = __float2bfloat16_rn(0.1f * (float)i - 1.3f), Af[i] = __bfloat162float(A[i]);
    for (size_t i = 0; i < B.size(); i++) B[i] = __float2bfloat16_rn(0.37f * (float)i - 2), Bf[i] = __bfloat162float(B[i]);
    __nv_bfloat16 *dA = dev<__nv_bfloat16>(A.size()), *dB = dev<__nv_bfloat16>(B.size());
    float *dAf = dev<float>(Af.size()), *dBf = dev<float>(Bf.size());
    float *dC = dev<float>((size_t)m * n * batch), *dR = dev<float>((size_t)m * n * batch);
    CK(cudaMemcpy(dA, A.data(), A.size() * 2, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dB, B.data(), B.size() * 2, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dAf, Af.data(), Af.size() * 4, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dBf, Bf.data(), Bf.size() * 4, cudaMemcpyHostToDevice));
    const float one = 1, zero = 0;
    cr_assert_eq(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &one, dA, CUDA_R_16BF, m, dB, CUDA_R_16BF, k, &zero,
                              dC, CUDA_R_32F, m, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                 CUBLAS_STATUS_SUCCESS);
    cr_assert_eq(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &one, dAf, m, dBf, k, &zero, dR, m),
                 CUBLAS_STATUS_SUCCESS);
    std::vector<float> c = host(dC, (size_t)m * n), r = host(dR, (size_t)m * n);
    for (int i = 0; i < m * n; i++) cr_expect_eq(c[i], r[i], "GemmEx element %d", i);
    cr_assert_eq(cublasGemmStridedBatchedEx(h, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &one, dA, CUDA_R_16BF, k, m * k, dB,
                                            CUDA_R_16BF, k, k * n, &zero, dC, CUDA_R_32F, m, m * n, batch,
                                            CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                 CUBLAS_STATUS_SUCCESS);
    cr_assert_eq(cublasSgemmStridedBatched(h, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &one, dAf, k, m * k, dBf, k, k * n,
                                           &zero, dR, m, m * n, batch),
                 CUBLAS_STATUS_SUCCESS);
    c = host(dC, (size_t)m * n * batch);
    r = host(dR, (size_t)m * n * batch);
    for (int i = 0; i < m * n * batch; i++) cr_expect_eq(c[i], r[i], "GemmStridedBatchedEx element %d", i);
    cr_expect_eq(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &one, dA, CUDA_R_16BF, m, dBf, CUDA_R_32F, k, &zero,
                              dC, CUDA_R_32F, m, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                 CUBLAS_STATUS_NOT_SUPPORTED, "mixed A and B types");
    cr_expect_eq(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &one, dA, CUDA_R_16BF, m, dB, CUDA_R_16BF, k, &zero,
                              dC, CUDA_R_16BF, m, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                 CUBLAS_STATUS_NOT_SUPPORTED, "a bf16 C");
    cublasDestroy(h);
}

__global__ void write_kernel_for_capture(float *x)
{
    x[threadIdx.x] = 1;
}

// ---- stream capture and graph replay --------------------------------------------

__global__ void axpy_from_device_kernel(float *y, const float *x, const float *a, float b, int n)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    __syncwarp(); // the default mask (a macro with no argument)
    if (i < n) y[i] += *a * x[i] + b;
}

// Copy, memset, kernel and gemm recorded on a capturing stream run only at
// cudaGraphLaunch, each time, with the arguments of the capture and the
// memory's contents of the replay (the scalar *a is uploaded before each).
Test(cuda_emu, captured_work_runs_at_each_replay_not_at_capture)
{
    cudaStream_t s;
    CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    cublasHandle_t h;
    cr_assert_eq(cublasCreate(&h), CUBLAS_STATUS_SUCCESS);
    cr_assert_eq(cublasSetStream(h, s), CUBLAS_STATUS_SUCCESS);
    const int n = 40;
    float *x = dev<float>(n), *y = dev<float>(n), *a = dev<float>(1), *g = dev<float>(4);
    float hx[n], staged[n];
    for (int i = 0; i < n; i++) hx[i] = (float)(i + 1);
    CK(cudaMemcpy(x, hx, sizeof hx, cudaMemcpyHostToDevice));
    cudaStreamCaptureStatus status;
    CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    CK(cudaStreamIsCapturing(s, &status));
    cr_assert_eq(status, cudaStreamCaptureStatusActive);
    for (int i = 0; i < n; i++) staged[i] = 0.5f;
    CK(cudaMemcpyAsync(y, staged, sizeof staged, cudaMemcpyHostToDevice, s)); // read at replay
    axpy_from_device_kernel<<<2, 32, 0, s>>>(y, x, a, 1.0f, n);
    CK(cudaGetLastError());
    CK(cudaMemsetAsync(g, 0, 4 * sizeof(float), s));
    const float one = 1, zero = 0;
    // g (1x1) = y (1xn) . x (n): column-major 1 x n times n x 1
    cr_assert_eq(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, n, &one, y, 1, x, n, &zero, g, 1),
                 CUBLAS_STATUS_SUCCESS);
    cudaGraph_t graph;
    CK(cudaStreamEndCapture(s, &graph));
    CK(cudaStreamIsCapturing(s, &status));
    cr_assert_eq(status, cudaStreamCaptureStatusNone);
    std::vector<float> before = host(y, n);
    cr_assert_eq(before[0], 0.0f, "the capture ran the copy (y[0] = %g)", before[0]);
    cudaGraphExec_t exec;
    CK(cudaGraphInstantiate(&exec, graph, 0));
    CK(cudaGraphDestroy(graph)); // the instance keeps its own copy
    for (int replay = 1; replay <= 3; replay++) {
        const float av = (float)replay;
        CK(cudaMemcpyAsync(a, &av, sizeof av, cudaMemcpyHostToDevice, s));
        for (int i = 0; i < n; i++) staged[i] = (float)replay; // the pinned source changes between replays
        CK(cudaGraphLaunch(exec, s));
        CK(cudaStreamSynchronize(s));
        std::vector<float> hy = host(y, n), hg = host(g, 1);
        double dot = 0;
        for (int i = 0; i < n; i++) {
            const float want = (float)replay + av * hx[i] + 1.0f;
            cr_expect_eq(hy[i], want, "replay %d: y[%d] = %g, want %g", replay, i, hy[i], want);
            dot += (double)want * hx[i];
        }
        cr_expect_eq(hg[0], (float)dot, "replay %d: gemm %g, want %g", replay, hg[0], (double)(float)dot);
    }
    CK(cudaGraphExecDestroy(exec));
    CK(cudaFree(x));
    CK(cudaFree(y));
    CK(cudaFree(a));
    CK(cudaFree(g));
    cublasDestroy(h);
    CK(cudaStreamDestroy(s));
}

// A wait for the device, or an allocation, inside a capture fails the call
// and invalidates the capture, as on a GPU; so does setting a kernel
// attribute (the emulator's rule); the stream captures again after.
Test(cuda_emu, a_sync_or_allocation_in_a_capture_invalidates_it)
{
    cudaStream_t s;
    CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    float *y = dev<float>(32);
    cudaGraph_t graph;
    CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    write_kernel_for_capture<<<1, 32, 0, s>>>(y);
    cr_expect_eq(cudaStreamSynchronize(s), cudaErrorStreamCaptureUnsupported);
    cr_expect_eq(cudaStreamEndCapture(s, &graph), cudaErrorStreamCaptureInvalidated);
    cr_expect_eq(graph, nullptr);
    CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
    void *p = nullptr;
    cr_expect_eq(cudaMalloc(&p, 64), cudaErrorStreamCaptureUnsupported);
    cr_expect_eq(cudaStreamEndCapture(s, &graph), cudaErrorStreamCaptureInvalidated);
    (void)cudaGetLastError();
    /* a kernel attribute too (the emulator's rule: set them before capturing) */
    CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
    cr_expect_eq(cudaFuncSetAttribute(write_kernel_for_capture, cudaFuncAttributeMaxDynamicSharedMemorySize, 65536),
                 cudaErrorStreamCaptureUnsupported);
    cr_expect_eq(cudaStreamEndCapture(s, &graph), cudaErrorStreamCaptureInvalidated);
    (void)cudaGetLastError();
    CK(cudaFuncSetAttribute(write_kernel_for_capture, cudaFuncAttributeMaxDynamicSharedMemorySize, 65536));
    std::vector<float> hy = host(y, 32);
    cr_expect_eq(hy[0], 0.0f, "an invalidated capture ran its kernel");
    CK(cudaFree(y));
    CK(cudaStreamDestroy(s));
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

// Pointers of a captured launch are checked again at each replay.
Test(cuda_emu_misuse, graph_replay_after_its_memory_was_freed, .signal = SIGABRT)
{
    cudaStream_t s;
    CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    float *d = dev<float>(32);
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    write_kernel_for_capture<<<1, 32, 0, s>>>(d);
    CK(cudaStreamEndCapture(s, &graph));
    CK(cudaGraphInstantiate(&exec, graph, 0));
    CK(cudaFree(d));
    cudaGraphLaunch(exec, s);
}

Test(cuda_emu_misuse, free_of_an_interior_pointer, .signal = SIGABRT)
{
    float *d = dev<float>(32);
    cudaFree(d + 1);
}
