// cuda_common.cu: the CUDA backend's process-wide state (device 0, one
// stream, one cuBLAS handle on it), its error reporting and its memory,
// with a pinned staging ring that keeps the step's uploads from waiting.
#include <string.h>

#include "cuda_common.h"
#include "ops_cuda.h"

static cudaStream_t stream;
static cublasHandle_t blas;
static void *scratch, *reduce_scratch, *blas_workspace;
#define BLAS_WORKSPACE_BYTES ((size_t)32 << 20)
static int initialised, tf32, bf16;

// bf16 operand scratch (sb_cuda_bf16_scratch): the current buffer of each
// slot and the ones it replaced, kept for graphs captured with them.
#define BF16_RETIRED 64
static struct {
    void *p;
    size_t elems;
    void *retired[BF16_RETIRED];
    int n_retired;
} bf16_slots[SB_CUDA_BF16_SLOTS];

// Uploads of up to UPLOAD_RING_BYTES / 2 (a batch's tokens and targets) are
// staged in pinned memory: a copy from pageable memory may synchronise with
// the stream, one from pinned memory never does. The ring hands out regions
// in order; a region is reused once the event recorded after its copy has
// passed (the copies of the previous steps: long done, so no wait).
#define UPLOAD_RING_BYTES ((size_t)8 << 20)
#define UPLOAD_SLOTS 64
static unsigned char *ring;
static size_t ring_head;
static struct {
    size_t start, end;
    cudaEvent_t done;
} slots[UPLOAD_SLOTS];
static int slot_first, slot_count;

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

extern "C" size_t sb_cuda_smem_optin(void)
{
    require_init("sb_cuda_smem_optin");
    static int bytes = -1;
    if (bytes < 0) {
        int dev = 0, v = 0;
        CUDA_CHECK(cudaGetDevice(&dev));
        CUDA_CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
        bytes = v;
    }
    return (size_t)bytes;
}

// The kernels allowed more than 48 KiB of dynamic shared memory, and how much.
#define SMEM_KERNELS 64
static struct {
    const void *kernel;
    size_t bytes;
} smem_allowed[SMEM_KERNELS];
static int n_smem_allowed;

extern "C" void sb_cuda_allow_smem(const void *kernel, size_t bytes, const char *what)
{
    if (bytes <= 48 * 1024) return;
    const size_t limit = sb_cuda_smem_optin();
    if (bytes > limit) {
        char msg[160];
        snprintf(msg, sizeof msg, "needs %zu bytes of shared memory per block; the device gives %zu", bytes,
                 limit);
        sb_cuda_fail(__FILE__, __LINE__, what, msg);
    }
    int i = 0;
    while (i < n_smem_allowed && smem_allowed[i].kernel != kernel) i++;
    if (i < n_smem_allowed && smem_allowed[i].bytes >= bytes) return;
    if (i == SMEM_KERNELS) sb_cuda_fail(__FILE__, __LINE__, what, "more kernels than SMEM_KERNELS ask for shared memory");
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
    if (i == n_smem_allowed) n_smem_allowed++;
    smem_allowed[i].kernel = kernel;
    smem_allowed[i].bytes = bytes;
}

extern "C" void sb_cuda_check_heads(const char *op, int K, int V, int max)
{
    if (K >= 1 && V >= 1 && K <= max && V <= max) return;
    char msg[160];
    snprintf(msg, sizeof msg, "head sizes K = %d, V = %d: the CUDA scan supports 1 <= K, V <= %d", K, V, max);
    sb_cuda_fail(__FILE__, __LINE__, op, msg);
}

extern "C" void *sb_cuda_reduce_scratch(void)
{
    require_init("sb_cuda_reduce_scratch");
    return reduce_scratch;
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
    CUDA_CHECK(cudaMalloc(&reduce_scratch, SB_CUDA_REDUCE_BYTES));
    // cuBLAS's workspace, ours: without it cuBLAS may allocate one inside a
    // captured step (ops_capture_begin), which a capture does not allow.
    // 32 MiB is NVIDIA's advice for Hopper (4 MiB before).
    CUDA_CHECK(cudaMalloc(&blas_workspace, BLAS_WORKSPACE_BYTES));
    CUBLAS_CHECK(cublasSetWorkspace(blas, blas_workspace, BLAS_WORKSPACE_BYTES));
    CUDA_CHECK(cudaMallocHost((void **)&ring, UPLOAD_RING_BYTES));
    for (int i = 0; i < UPLOAD_SLOTS; i++)
        CUDA_CHECK(cudaEventCreateWithFlags(&slots[i].done, cudaEventDisableTiming));
    initialised = 1;
    return 0;
}

extern "C" int cuda_ops_tf32(void) { return tf32; }

extern "C" int cuda_ops_bf16(void) { return bf16; }

extern "C" void cuda_ops_set_bf16(int on)
{
    require_init("cuda_ops_set_bf16");
    bf16 = on != 0;
}

extern "C" void *sb_cuda_bf16_scratch(int slot, size_t elems)
{
    require_init("sb_cuda_bf16_scratch");
    if (slot < 0 || slot >= SB_CUDA_BF16_SLOTS) {
        fprintf(stderr, "statebench: sb_cuda_bf16_scratch: slot %d is not 0..%d\n", slot, SB_CUDA_BF16_SLOTS - 1);
        exit(1);
    }
    auto *s = &bf16_slots[slot];
    if (elems <= s->elems) return s->p;
    cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
    CUDA_CHECK(cudaStreamIsCapturing(stream, &capturing));
    if (capturing != cudaStreamCaptureStatusNone) {
        fprintf(stderr,
                "statebench: bf16 gemm scratch %d holds %zu values but a captured step needs %zu; the step's "
                "uncaptured warm-up should have sized it (a bug of the caller)\n",
                slot, s->elems, elems);
        exit(1);
    }
    if (s->n_retired == BF16_RETIRED) { // unreachable while growth doubles (64 doublings)
        fprintf(stderr, "statebench: bf16 gemm scratch %d grew %d times\n", slot, BF16_RETIRED);
        exit(1);
    }
    size_t want = s->elems * 2 > elems ? s->elems * 2 : elems;
    void *p = NULL;
    CUDA_CHECK(cudaMalloc(&p, want * 2));
    if (s->p) s->retired[s->n_retired++] = s->p;
    s->p = p;
    s->elems = want;
    return p;
}

extern "C" void cuda_ops_set_tf32(int on)
{
    require_init("cuda_ops_set_tf32");
    tf32 = on != 0;
    CUBLAS_CHECK(cublasSetMathMode(blas, tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
}

// A region of `bytes` of the ring that no copy in flight still reads.
static unsigned char *ring_take(size_t bytes)
{
    bytes = (bytes + 255) / 256 * 256;
    for (;;) {
        const size_t start = ring_head + bytes <= UPLOAD_RING_BYTES ? ring_head : 0;
        int busy = slot_count == UPLOAD_SLOTS;
        for (int k = 0; k < slot_count && !busy; k++) {
            const int i = (slot_first + k) % UPLOAD_SLOTS;
            busy = start < slots[i].end && slots[i].start < start + bytes;
        }
        if (!busy) {
            ring_head = start + bytes;
            return ring + start;
        }
        CUDA_CHECK(cudaEventSynchronize(slots[slot_first].done));
        slot_first = (slot_first + 1) % UPLOAD_SLOTS;
        slot_count--;
    }
}

static void ring_copied(const unsigned char *staged, size_t bytes)
{
    const int i = (slot_first + slot_count) % UPLOAD_SLOTS;
    slots[i].start = (size_t)(staged - ring);
    slots[i].end = slots[i].start + bytes;
    CUDA_CHECK(cudaEventRecord(slots[i].done, stream));
    slot_count++;
}

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

// Either way the host buffer may be reused at once: the ring holds a copy,
// and from pageable memory the runtime stages the source before returning.
extern "C" void cuda_ops_upload(void *dst, const void *src, size_t bytes)
{
    require_init("cuda_ops_upload");
    if (!bytes) return;
    if (bytes > UPLOAD_RING_BYTES / 2) { // parameters and checkpoints, outside the step
        CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream));
        return;
    }
    unsigned char *staged = ring_take(bytes);
    memcpy(staged, src, bytes);
    CUDA_CHECK(cudaMemcpyAsync(dst, staged, bytes, cudaMemcpyHostToDevice, stream));
    ring_copied(staged, bytes);
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
