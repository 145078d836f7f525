// graph.cu: capture of the work queued on the backend's stream as a CUDA
// graph, and its replay (ops.h: ops_capture_begin, ops_capture_end,
// ops_graph_launch, ops_graph_free). A captured training step replays
// with one launch instead of one per kernel and gemm.
#include "cuda_common.h"
#include "ops_cuda.h"

// Thread-local mode: an unsafe call (an allocation, a synchronisation) made
// by this thread while it captures fails and invalidates the capture;
// other threads (none in statebench) are not affected.
extern "C" int cuda_capture_begin(char *err, size_t errlen)
{
    const cudaError_t e = cudaStreamBeginCapture(sb_cuda_stream(), cudaStreamCaptureModeThreadLocal);
    if (e != cudaSuccess) {
        (void)cudaGetLastError(); // reported here, not left for the next check
        snprintf(err, errlen, "cudaStreamBeginCapture: %s", cudaGetErrorString(e));
        return -1;
    }
    return 0;
}

extern "C" void *cuda_capture_end(char *err, size_t errlen)
{
    cudaGraph_t graph = NULL;
    cudaError_t e = cudaStreamEndCapture(sb_cuda_stream(), &graph);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        snprintf(err, errlen, "cudaStreamEndCapture: %s", cudaGetErrorString(e));
        return NULL;
    }
    cudaGraphExec_t exec = NULL;
    e = cudaGraphInstantiate(&exec, graph, 0);
    CUDA_CHECK(cudaGraphDestroy(graph)); // the instance does not need it
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        snprintf(err, errlen, "cudaGraphInstantiate: %s", cudaGetErrorString(e));
        return NULL;
    }
    return exec;
}

extern "C" void cuda_graph_launch(void *graph)
{
    CUDA_CHECK(cudaGraphLaunch((cudaGraphExec_t)graph, sb_cuda_stream()));
}

extern "C" void cuda_graph_free(void *graph)
{
    if (graph) CUDA_CHECK(cudaGraphExecDestroy((cudaGraphExec_t)graph));
}
