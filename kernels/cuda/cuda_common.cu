// cuda_common.cu: the CUDA backend's process-wide state (device 0, one
// stream, one cuBLAS handle on it), its error reporting and its memory.
#include <string.h>

#include "cuda_common.h"
#include "ops_cuda.h"

static cudaStream_t stream;
static cublasHandle_t blas;
static void *scratch;
static int initialised, tf32;

extern "C" void sb_cuda_fail(const char *file, int line, const char *what, const char *msg)
{
    fprintf(stderr, "statebench: CUDA error at %s:%d: %s: %s\n", file, line, what, msg);
    exit(1);
}

extern "C" const char *sb_cublas_status_name(cublasStatus_t s)
{
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
    default: return "unknown cuBLAS status";
    }
}

// Ops called before cuda_ops_init succeeded are a bug of the caller.
static void require_init(const char *what)
{
    if (!initialised) {
        fprintf(stderr, "statebench: %s called before the CUDA backend was initialised\n", what);
        exit(1);
    }
}

extern "C" cudaStream_t sb_cuda_stream(void)
{
    require_init("sb_cuda_stream");
    return stream;
}

extern "C" cublasHandle_t sb_cublas(void)
{
    require_init("sb_cublas");
    return blas;
}

extern "C" void *sb_cuda_scratch(void)
{
    require_init("sb_cuda_scratch");
    return scratch;
}

extern "C" int cuda_ops_init(char *err, size_t errlen)
{
    if (initialised) return 0;
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        snprintf(err, errlen, "no CUDA device (%s)",
                 e != cudaSuccess ? cudaGetErrorString(e) : "none present");
        return -1;
    }
    if ((e = cudaSetDevice(0)) != cudaSuccess) {
        snprintf(err, errlen, "cannot use CUDA device 0: %s", cudaGetErrorString(e));
        return -1;
    }
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    cublasStatus_t st = cublasCreate(&blas);
    if (st != CUBLAS_STATUS_SUCCESS) {
        snprintf(err, errlen, "cuBLAS did not start: %s", sb_cublas_status_name(st));
        return -1;
    }
    CUBLAS_CHECK(cublasSetStream(blas, stream));
    // Pointer-mode host: alpha and beta are host scalars (the default,
    // stated because the gemms rely on it).
    CUBLAS_CHECK(cublasSetPointerMode(blas, CUBLAS_POINTER_MODE_HOST));
    const char *want = getenv("STATEBENCH_TF32");
    tf32 = want && !strcmp(want, "1");
    CUBLAS_CHECK(cublasSetMathMode(blas, tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    CUDA_CHECK(cudaMalloc(&scratch, SB_CUDA_SCRATCH_BYTES));
    initialised = 1;
    return 0;
}

extern "C" int cuda_ops_tf32(void) { return tf32; }

extern "C" void *cuda_ops_alloc(size_t bytes)
{
    require_init("cuda_ops_alloc");
    void *p = NULL;
    // cudaMalloc aligns to at least 256 bytes; a zero-byte request still gets
    // a distinct pointer, as aligned_alloc's callers expect.
    if (cudaMalloc(&p, bytes ? bytes : 64) != cudaSuccess) {
        (void)cudaGetLastError(); // out of memory is reported by the NULL, not left sticky
        return NULL;
    }
    CUDA_CHECK(cudaMemsetAsync(p, 0, bytes ? bytes : 64, stream));
    CUDA_CHECK(cudaStreamSynchronize(stream));
    return p;
}

extern "C" void cuda_ops_free(void *p)
{
    if (p) CUDA_CHECK(cudaFree(p));
}

// From pageable host memory the runtime stages the source before
// returning, so the host buffer may be reused at once.
extern "C" void cuda_ops_upload(void *dst, const void *src, size_t bytes)
{
    require_init("cuda_ops_upload");
    if (bytes) CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream));
}

extern "C" void cuda_ops_download(void *dst, const void *src, size_t bytes)
{
    require_init("cuda_ops_download");
    if (!bytes) return;
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream));
    CUDA_CHECK(cudaStreamSynchronize(stream));
}

extern "C" void cuda_ops_sync(void)
{
    require_init("cuda_ops_sync");
    CUDA_CHECK(cudaStreamSynchronize(stream));
}

extern "C" void cuda_ops_memory(size_t *free_bytes, size_t *total_bytes)
{
    require_init("cuda_ops_memory");
    CUDA_CHECK(cudaMemGetInfo(free_bytes, total_bytes));
}
