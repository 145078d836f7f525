// cuda_emu.h: a CPU emulation of the part of CUDA (runtime, device code,
// cuBLAS) that statebench's kernels use, so kernels/cuda/*.cu compile with
// g++ and run on a machine without a GPU (tools/cuda_emu/README.md).
//
// Device code: every thread of a block is a fiber (its own stack) on one host
// thread; __syncthreads and the warp intrinsics (shuffles, votes, __syncwarp)
// switch fibers, so barriers and shuffles have CUDA's semantics and misuse
// (a barrier some threads never reach, a shuffle mask naming an exited lane)
// stops the program with a message instead of hanging. Blocks run one at a
// time per host worker; __shared__ is per worker (static thread_local).
// Launches: tools/cuda_emu/emu_launch rewrites kernel<<<cfg>>>(args) into
// ::emu::launch(::emu::cfg(cfg), ...)(args); that runs the grid before it
// returns (every stream is synchronous).
#ifndef SB_CUDA_EMU_H
#define SB_CUDA_EMU_H

#ifndef __cplusplus
#error "cuda_emu.h is C++ (kernels/cuda/*.cu compiled as C++20 by g++)"
#endif

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <atomic>
#include <cmath>
#include <functional>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>

#define SB_CUDA_EMU 1
#ifndef __CUDACC__
#define __CUDACC__ 1
#endif
#define CUDART_VERSION 12000
#define CUBLAS_VER_MAJOR 12

// ---- declaration specifiers ------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __launch_bounds__(...)
#define __restrict__ __restrict
#define __align__(n) alignas(n)
#define __constant__
#define __managed__
// Per host worker = per block (a worker runs one block at a time). `extern
// __shared__ T name[];` (dynamic shared memory) is rewritten by emu_launch.
#define __shared__ static thread_local

// ---- vector types and launch geometry ----------------------------------------
struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
typedef dim3 uint3;
struct float2 { float x, y; };
struct float4 { float x, y, z, w; };
struct int2 { int x, y; };
struct int4 { int x, y, z, w; };
struct double2 { double x, y; };
inline float2 make_float2(float x, float y) { return float2{x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }
inline int2 make_int2(int x, int y) { return int2{x, y}; }
inline double2 make_double2(double x, double y) { return double2{x, y}; }

inline constexpr int warpSize = 32;

// ---- runtime types -----------------------------------------------------------
typedef enum cudaError {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInitializationError = 3,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidDevicePointer = 17,
    cudaErrorInvalidMemcpyDirection = 21,
    cudaErrorInvalidResourceHandle = 400,
    cudaErrorIllegalState = 401,
    cudaErrorNotReady = 600,
    cudaErrorLaunchOutOfResources = 701,
    cudaErrorNoDevice = 100,
    cudaErrorInvalidDevice = 101,
    cudaErrorStreamCaptureUnsupported = 900,
    cudaErrorStreamCaptureInvalidated = 901,
    cudaErrorStreamCaptureUnmatched = 903,
    cudaErrorStreamCaptureImplicit = 906,
    cudaErrorStreamCaptureWrongThread = 908,
} cudaError_t;
typedef cudaError_t CUresult;

typedef enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4,
} cudaMemcpyKind;

typedef struct CUstream_st *cudaStream_t;
typedef struct CUevent_st *cudaEvent_t;
#define cudaStreamDefault 0x0
#define cudaStreamNonBlocking 0x1
#define cudaEventDefault 0x0
#define cudaEventBlockingSync 0x1
#define cudaEventDisableTiming 0x2
#define cudaStreamLegacy ((cudaStream_t)0x1)
#define cudaStreamPerThread ((cudaStream_t)0x2)

// Stream capture and graphs: the work queued to a capturing stream is
// recorded, not run; cudaGraphLaunch replays it in order (tools/cuda_emu/README.md).
typedef struct CUgraph_st *cudaGraph_t;
typedef struct CUgraphExec_st *cudaGraphExec_t;
typedef enum cudaStreamCaptureMode {
    cudaStreamCaptureModeGlobal = 0,
    cudaStreamCaptureModeThreadLocal = 1,
    cudaStreamCaptureModeRelaxed = 2,
} cudaStreamCaptureMode;
typedef enum cudaStreamCaptureStatus {
    cudaStreamCaptureStatusNone = 0,
    cudaStreamCaptureStatusActive = 1,
    cudaStreamCaptureStatusInvalidated = 2,
} cudaStreamCaptureStatus;

typedef enum cudaFuncAttribute {
    cudaFuncAttributeMaxDynamicSharedMemorySize = 8,
    cudaFuncAttributePreferredSharedMemoryCarveout = 9,
} cudaFuncAttribute;

typedef enum cudaDeviceAttr {
    cudaDevAttrMaxThreadsPerBlock = 1,
    cudaDevAttrMaxSharedMemoryPerBlock = 8,
    cudaDevAttrWarpSize = 10,
    cudaDevAttrMultiProcessorCount = 16,
    cudaDevAttrComputeCapabilityMajor = 75,
    cudaDevAttrComputeCapabilityMinor = 76,
    cudaDevAttrMaxSharedMemoryPerBlockOptin = 97,
} cudaDeviceAttr;

struct cudaDeviceProp {
    char name[256];
    size_t totalGlobalMem, sharedMemPerBlock, sharedMemPerBlockOptin, sharedMemPerMultiprocessor;
    int regsPerBlock, warpSize, maxThreadsPerBlock, maxThreadsDim[3], maxGridSize[3];
    int major, minor, multiProcessorCount, maxThreadsPerMultiProcessor, clockRate;
    int memoryClockRate, memoryBusWidth, l2CacheSize, integrated, concurrentKernels;
    size_t totalConstMem;
};

// ---- runtime API (tools/cuda_emu/emu_rt.cpp) --------------------------------
const char *cudaGetErrorString(cudaError_t e);
const char *cudaGetErrorName(cudaError_t e);
cudaError_t cudaGetLastError(void);
cudaError_t cudaPeekAtLastError(void);
cudaError_t cudaGetDeviceCount(int *n);
cudaError_t cudaSetDevice(int d);
cudaError_t cudaGetDevice(int *d);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int d);
cudaError_t cudaDeviceGetAttribute(int *v, cudaDeviceAttr a, int d);
cudaError_t cudaDriverGetVersion(int *v);
cudaError_t cudaRuntimeGetVersion(int *v);
cudaError_t cudaDeviceSynchronize(void);
cudaError_t cudaDeviceReset(void);
cudaError_t cudaMalloc(void **p, size_t bytes);
template <class T> inline cudaError_t cudaMalloc(T **p, size_t bytes) { return cudaMalloc((void **)p, bytes); }
cudaError_t cudaMallocHost(void **p, size_t bytes);
template <class T> inline cudaError_t cudaMallocHost(T **p, size_t bytes) { return cudaMallocHost((void **)p, bytes); }
cudaError_t cudaFreeHost(void *p);
cudaError_t cudaFree(void *p);
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t s = 0);
cudaError_t cudaMemcpy2DAsync(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width,
                              size_t height, cudaMemcpyKind kind, cudaStream_t s = 0);
cudaError_t cudaMemset(void *p, int value, size_t bytes);
cudaError_t cudaMemsetAsync(void *p, int value, size_t bytes, cudaStream_t s = 0);
cudaError_t cudaStreamCreate(cudaStream_t *s);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaStreamQuery(cudaStream_t s);
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned flags = 0);
cudaError_t cudaEventCreate(cudaEvent_t *e);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned flags);
cudaError_t cudaEventDestroy(cudaEvent_t e);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s = 0);
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaEventQuery(cudaEvent_t e);
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end);
cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *graph);
cudaError_t cudaStreamIsCapturing(cudaStream_t s, cudaStreamCaptureStatus *status);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph, unsigned long long flags = 0);
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t s);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec);
cudaError_t cudaGraphDestroy(cudaGraph_t graph);
cudaError_t cudaFuncSetAttributeImpl(const void *fn, cudaFuncAttribute a, int value);
template <class F> inline cudaError_t cudaFuncSetAttribute(F *fn, cudaFuncAttribute a, int value)
{
    return cudaFuncSetAttributeImpl((const void *)fn, a, value);
}

// ---- the emulator's internals used by the inline code below -----------------
namespace emu {

// The fiber (CUDA thread) running now on this host worker, and its block.
struct lane_regs {
    dim3 tid;
    unsigned linear; // x + y bx + z bx by
};
struct block_regs {
    dim3 bid, bdim, gdim;
};
extern thread_local lane_regs *cur_lane;
extern thread_local block_regs cur_block;

// Stops the program: "cuda_emu: <where>: <message>" with the kernel, block
// and thread running now, then abort() (a test sees the message and a crash).
[[noreturn]] void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

// Barriers and warp operations, each switching to the other fibers of the
// block until its peers arrive (emu_rt.cpp).
enum bar_kind { BAR_SYNC, BAR_COUNT, BAR_AND, BAR_OR };
int block_barrier(bar_kind kind, int pred, const char *file, int line);
enum warp_kind { WARP_SHFL, WARP_SYNC, WARP_VOTE_ANY, WARP_VOTE_ALL, WARP_BALLOT, WARP_MATCH };
// Exchanges 8 bytes among the lanes of mask: returns the value of lane src
// (WARP_SHFL), or the vote of the lanes (ballot mask, any, all).
uint64_t warp_op(warp_kind kind, unsigned mask, uint64_t value, int src, const char *file, int line);
inline unsigned lane_id(void) { return cur_lane->linear & 31; }
unsigned active_mask(void);

// Dynamic shared memory of the running block (launch's third argument).
void *dyn_smem(void);

// Launch configuration: kernel<<<grid, block, smem, stream>>>.
struct cfg {
    dim3 grid, block;
    size_t smem;
    cudaStream_t stream;
    cfg(dim3 g, dim3 b, size_t s = 0, cudaStream_t st = 0) : grid(g), block(b), smem(s), stream(st) {}
};

// Runs body(closure) once per thread of the grid; returns when all are done.
struct launch_site {
    const char *kernel, *file;
    int line;
};
void run_grid(const cfg &c, const launch_site &site, void (*body)(void *), void *closure);
// Checks a pointer argument of a launch: NULL or inside device memory.
void check_kernel_pointer(const launch_site &site, int index, const void *p);

template <class T> inline void check_arg(const launch_site &site, int index, const T &v)
{
    if constexpr (std::is_pointer<T>::value) check_kernel_pointer(site, index, (const void *)v);
}

// Stream capture: whether s is capturing now; capture_op records op into
// its graph (run by cudaGraphLaunch) when it is and returns true, else
// returns false (and the caller runs the work itself).
bool capturing(cudaStream_t s);
bool capture_op(cudaStream_t s, std::function<void()> op);
// The launch configuration checks of run_grid, for a launch being captured:
// false (and cudaGetLastError's error set) when a GPU would refuse it.
bool launch_config_ok(const cfg &c, const launch_site &site);

template <class Fn> struct launcher {
    cfg c;
    launch_site site;
    Fn fn;
    template <class... A> void operator()(A &&...args)
    {
        // the arguments by value, as a GPU takes them at the launch (or the capture)
        auto stored = std::make_shared<std::tuple<std::decay_t<A>...>>(std::forward<A>(args)...);
        check_args(*stored);
        if (capturing(c.stream)) { // a refused launch is not recorded, as on a GPU
            const launcher self = *this;
            if (launch_config_ok(c, site)) capture_op(c.stream, [self, stored] { self.run(*stored); });
            return;
        }
        run(*stored);
    }
    template <class Tuple> void check_args(const Tuple &stored) const
    {
        std::apply([&](const auto &...a) {
            int i = 0;
            (check_arg(site, i++, a), ...);
        }, stored);
    }
    // pointers are checked again at a replay: the memory may be gone since the capture
    template <class Tuple> void run(Tuple &stored) const
    {
        check_args(stored);
        struct closure_t {
            const Fn *fn;
            Tuple *args;
        } cl{&fn, &stored};
        run_grid(c, site, [](void *p) {
            closure_t *k = (closure_t *)p;
            std::apply(*k->fn, *k->args);
        }, &cl);
    }
};
template <class Fn>
inline launcher<Fn> launch(const cfg &c, const char *kernel, const char *file, int line, Fn fn)
{
    return launcher<Fn>{c, launch_site{kernel, file, line}, fn};
}

template <class T> inline uint64_t to_bits(T v)
{
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "warp shuffles move at most 8 bytes");
    uint64_t u = 0;
    memcpy(&u, &v, sizeof v);
    return u;
}
template <class T> inline T from_bits(uint64_t u)
{
    T v;
    memcpy(&v, &u, sizeof v);
    return v;
}

} // namespace emu

#define threadIdx (::emu::cur_lane->tid)
#define blockIdx (::emu::cur_block.bid)
#define blockDim (::emu::cur_block.bdim)
#define gridDim (::emu::cur_block.gdim)

// ---- barriers, warp intrinsics -----------------------------------------------
#define __syncthreads() ((void)::emu::block_barrier(::emu::BAR_SYNC, 1, __FILE__, __LINE__))
#define __syncthreads_count(p) ::emu::block_barrier(::emu::BAR_COUNT, (p) != 0, __FILE__, __LINE__)
#define __syncthreads_and(p) ::emu::block_barrier(::emu::BAR_AND, (p) != 0, __FILE__, __LINE__)
#define __syncthreads_or(p) ::emu::block_barrier(::emu::BAR_OR, (p) != 0, __FILE__, __LINE__)
#define __syncwarp(...) ::emu::syncwarp_at(__FILE__, __LINE__ __VA_OPT__(, ) __VA_ARGS__)
#define __shfl_sync(m, v, ...) ::emu::shfl_idx((m), (v), __FILE__, __LINE__, __VA_ARGS__)
#define __shfl_xor_sync(m, v, ...) ::emu::shfl_xor((m), (v), __FILE__, __LINE__, __VA_ARGS__)
#define __shfl_down_sync(m, v, ...) ::emu::shfl_down((m), (v), __FILE__, __LINE__, __VA_ARGS__)
#define __shfl_up_sync(m, v, ...) ::emu::shfl_up((m), (v), __FILE__, __LINE__, __VA_ARGS__)
#define __ballot_sync(m, p) ((unsigned)::emu::warp_op(::emu::WARP_BALLOT, (m), (p) != 0, 0, __FILE__, __LINE__))
#define __any_sync(m, p) ((int)::emu::warp_op(::emu::WARP_VOTE_ANY, (m), (p) != 0, 0, __FILE__, __LINE__))
#define __all_sync(m, p) ((int)::emu::warp_op(::emu::WARP_VOTE_ALL, (m), (p) != 0, 0, __FILE__, __LINE__))
#define __activemask() (::emu::active_mask())
#define __threadfence() std::atomic_thread_fence(std::memory_order_seq_cst)
#define __threadfence_block() std::atomic_thread_fence(std::memory_order_seq_cst)

namespace emu {
inline void syncwarp_at(const char *file, int line, unsigned mask = 0xffffffffu)
{
    (void)warp_op(WARP_SYNC, mask, 0, 0, file, line);
}
// Source lane of a shuffle within segments of `width` lanes (a power of two <= 32).
inline int shfl_width_check(int width)
{
    if (width < 1 || width > 32 || (width & (width - 1))) fail("shuffle width %d is not a power of two in 1..32", width);
    return width;
}
template <class T> inline T shfl_idx(unsigned mask, T v, const char *file, int line, int src, int width = 32)
{
    shfl_width_check(width);
    const int l = (int)lane_id(), base = l & ~(width - 1);
    return from_bits<T>(warp_op(WARP_SHFL, mask, to_bits(v), base + (src & (width - 1)), file, line));
}
template <class T> inline T shfl_xor(unsigned mask, T v, const char *file, int line, int lm, int width = 32)
{
    shfl_width_check(width);
    const int l = (int)lane_id(), base = l & ~(width - 1);
    int s = l ^ lm;
    if (s < base || s >= base + width) s = l; // outside the segment: own value
    return from_bits<T>(warp_op(WARP_SHFL, mask, to_bits(v), s, file, line));
}
template <class T> inline T shfl_down(unsigned mask, T v, const char *file, int line, unsigned d, int width = 32)
{
    shfl_width_check(width);
    const int l = (int)lane_id(), base = l & ~(width - 1);
    const int s = (l - base) + (int)d < width ? l + (int)d : l;
    return from_bits<T>(warp_op(WARP_SHFL, mask, to_bits(v), s, file, line));
}
template <class T> inline T shfl_up(unsigned mask, T v, const char *file, int line, unsigned d, int width = 32)
{
    shfl_width_check(width);
    const int l = (int)lane_id(), base = l & ~(width - 1);
    const int s = (l - base) >= (int)d ? l - (int)d : l;
    return from_bits<T>(warp_op(WARP_SHFL, mask, to_bits(v), s, file, line));
}
} // namespace emu

// ---- atomics (real host atomics: blocks may run on several host workers) -----
namespace emu {
template <class T, class F> inline T atomic_update(T *p, F f)
{
    std::atomic_ref<T> a(*p);
    T old = a.load(std::memory_order_relaxed);
    while (!a.compare_exchange_weak(old, f(old), std::memory_order_relaxed)) {
    }
    return old;
}
} // namespace emu
// CUDA's overloads (not templates), so arguments convert as they do there.
#define EMU_ATOMIC_RMW(name, T, expr)                                                   \
    inline T name(T *p, T v) { return emu::atomic_update(p, [v](T o) { return (T)(expr); }); }
EMU_ATOMIC_RMW(atomicAdd, int, o + v)
EMU_ATOMIC_RMW(atomicAdd, unsigned, o + v)
EMU_ATOMIC_RMW(atomicAdd, unsigned long long, o + v)
EMU_ATOMIC_RMW(atomicAdd, float, o + v)
EMU_ATOMIC_RMW(atomicAdd, double, o + v)
EMU_ATOMIC_RMW(atomicSub, int, o - v)
EMU_ATOMIC_RMW(atomicSub, unsigned, o - v)
EMU_ATOMIC_RMW(atomicMax, int, o > v ? o : v)
EMU_ATOMIC_RMW(atomicMax, unsigned, o > v ? o : v)
EMU_ATOMIC_RMW(atomicMax, long long, o > v ? o : v)
EMU_ATOMIC_RMW(atomicMax, unsigned long long, o > v ? o : v)
EMU_ATOMIC_RMW(atomicMin, int, o < v ? o : v)
EMU_ATOMIC_RMW(atomicMin, unsigned, o < v ? o : v)
EMU_ATOMIC_RMW(atomicMin, long long, o < v ? o : v)
EMU_ATOMIC_RMW(atomicMin, unsigned long long, o < v ? o : v)
EMU_ATOMIC_RMW(atomicExch, int, ((void)o, v))
EMU_ATOMIC_RMW(atomicExch, unsigned, ((void)o, v))
EMU_ATOMIC_RMW(atomicExch, unsigned long long, ((void)o, v))
EMU_ATOMIC_RMW(atomicExch, float, ((void)o, v))
EMU_ATOMIC_RMW(atomicAnd, int, o & v)
EMU_ATOMIC_RMW(atomicAnd, unsigned, o & v)
EMU_ATOMIC_RMW(atomicAnd, unsigned long long, o & v)
EMU_ATOMIC_RMW(atomicOr, int, o | v)
EMU_ATOMIC_RMW(atomicOr, unsigned, o | v)
EMU_ATOMIC_RMW(atomicOr, unsigned long long, o | v)
EMU_ATOMIC_RMW(atomicXor, int, o ^ v)
EMU_ATOMIC_RMW(atomicXor, unsigned, o ^ v)
#undef EMU_ATOMIC_RMW
#define EMU_ATOMIC_CAS(T)                                                               \
    inline T atomicCAS(T *p, T cmp, T v)                                                \
    {                                                                                   \
        std::atomic_ref<T>(*p).compare_exchange_strong(cmp, v, std::memory_order_relaxed); \
        return cmp;                                                                     \
    }
EMU_ATOMIC_CAS(int)
EMU_ATOMIC_CAS(unsigned)
EMU_ATOMIC_CAS(unsigned long long)
#undef EMU_ATOMIC_CAS
inline unsigned atomicInc(unsigned *p, unsigned limit)
{
    return emu::atomic_update(p, [limit](unsigned o) { return o >= limit ? 0u : o + 1; });
}

// ---- loads, math and conversion intrinsics -----------------------------------
// The fast intrinsics (__expf, __fdividef, ...) are the exact functions here:
// the emulator does not reproduce the GPU's reduced precision.
template <class T> inline T __ldg(const T *p) { return *p; }
template <class T> inline T __ldcs(const T *p) { return *p; }
template <class T> inline T __ldcg(const T *p) { return *p; }
template <class T> inline void __stcs(T *p, T v) { *p = v; }
template <class T> inline void __stcg(T *p, T v) { *p = v; }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __log2f(float x) { return log2f(x); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __tanf(float x) { return tanf(x); }
inline float __powf(float x, float y) { return powf(x, y); }
inline void __sincosf(float x, float *s, float *c) { sincosf(x, s, c); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline float __frsqrt_rn(float x) { return 1.0f / sqrtf(x); }
inline float __saturatef(float x) { return x < 0 ? 0.0f : x > 1 ? 1.0f : x; }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __fma_rn(double a, double b, double c) { return fma(a, b, c); }
inline int __float2int_rn(float x) { return (int)nearbyintf(x); }
inline int __float2int_rz(float x) { return (int)x; }
inline int __float2int_rd(float x) { return (int)floorf(x); }
inline int __float2int_ru(float x) { return (int)ceilf(x); }
inline float __int2float_rn(int x) { return (float)x; }
inline float __double2float_rn(double x) { return (float)x; }
inline int __float_as_int(float x) { return emu::from_bits<int>(emu::to_bits(x)); }
inline unsigned __float_as_uint(float x) { return emu::from_bits<unsigned>(emu::to_bits(x)); }
inline float __int_as_float(int x) { return emu::from_bits<float>(emu::to_bits(x)); }
inline float __uint_as_float(unsigned x) { return emu::from_bits<float>(emu::to_bits(x)); }
inline long long __double_as_longlong(double x) { return emu::from_bits<long long>(emu::to_bits(x)); }
inline double __longlong_as_double(long long x) { return emu::from_bits<double>(emu::to_bits(x)); }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x ? __builtin_clz((unsigned)x) : 32; }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline unsigned __brev(unsigned x)
{
    unsigned r = 0;
    for (int i = 0; i < 32; i++) r |= ((x >> i) & 1u) << (31 - i);
    return r;
}
inline int __mul24(int a, int b) { return a * b; }
inline int __umul24(unsigned a, unsigned b) { return (int)(a * b); }
inline int __mulhi(int a, int b) { return (int)(((long long)a * b) >> 32); }

// CUDA's min / max for device code (std::min would need equal types).
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }
inline unsigned long min(unsigned long a, unsigned long b) { return a < b ? a : b; }
inline unsigned long max(unsigned long a, unsigned long b) { return a > b ? a : b; }
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline double max(double a, double b) { return fmax(a, b); }

#endif
