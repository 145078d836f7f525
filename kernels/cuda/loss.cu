// loss.cu: the CUDA backend's softmax cross-entropy over scored positions
// and its AdamW step; semantics of ops.h, as kernels/cpu/dense.c.
#include <math.h>

#include "cuda_common.h"
#include "ops_cuda.h"

#define CE_ROWS_PER_BLOCK 8 // one warp per row, 256 threads

// probs at every row; losses = log-sum-exp - target logit at scored rows (0
// elsewhere), counting the scored rows into *count.
__global__ void crossentropy_forward_kernel(float *losses, float *probs, const float *logits,
                                            const int *targets, int N, int V, int *count)
{
    const int row = blockIdx.x * CE_ROWS_PER_BLOCK + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= N) return;
    const float *z = logits + (size_t)row * V;
    float *p = probs + (size_t)row * V;
    float mx = -INFINITY;
    for (int i = lane; i < V; i += 32) mx = fmaxf(mx, z[i]);
    mx = sb_warp_max(mx);
    float sum = 0;
    for (int i = lane; i < V; i += 32) sum += expf(z[i] - mx);
    sum = sb_warp_sum(sum);
    const float inv = 1.0f / sum;
    for (int i = lane; i < V; i += 32) p[i] = expf(z[i] - mx) * inv;
    if (lane) return;
    const int tgt = targets[row];
    if (tgt >= 0 && tgt < V) {
        losses[row] = logf(sum) - (z[tgt] - mx);
        atomicAdd(count, 1);
    } else {
        losses[row] = 0;
    }
}

extern "C" int cuda_crossentropy_forward(float *losses, float *probs, const float *logits,
                                         const int *targets, int N, int V)
{
    if (N <= 0) return 0;
    int *count = (int *)sb_cuda_scratch(), result = 0;
    CUDA_CHECK(cudaMemsetAsync(count, 0, sizeof *count, sb_cuda_stream()));
    crossentropy_forward_kernel<<<sb_cdiv((size_t)N, CE_ROWS_PER_BLOCK), 32 * CE_ROWS_PER_BLOCK, 0,
                                  sb_cuda_stream()>>>(losses, probs, logits, targets, N, V, count);
    CUDA_CHECK_LAST();
    // the one host sync of the forward: the count is the caller's to divide by
    CUDA_CHECK(cudaMemcpyAsync(&result, count, sizeof result, cudaMemcpyDeviceToHost, sb_cuda_stream()));
    CUDA_CHECK(cudaStreamSynchronize(sb_cuda_stream()));
    return result;
}

__global__ void crossentropy_backward_kernel(float *dlogits, const float *probs, const int *targets, int V,
                                             size_t n, float dloss)
{
    for (size_t i = SB_GRID_START; i < n; i += SB_GRID_STRIDE) {
        const int tgt = targets[i / V];
        if (tgt < 0) continue;
        dlogits[i] += (probs[i] - (float)((int)(i % V) == tgt)) * dloss;
    }
}

extern "C" void cuda_crossentropy_backward(float *dlogits, const float *probs, const int *targets, int N,
                                           int V, float dloss)
{
    const size_t n = (size_t)N * V;
    if (!n) return;
    crossentropy_backward_kernel<<<sb_grid(n, SB_BLOCK), SB_BLOCK, 0, sb_cuda_stream()>>>(dlogits, probs,
                                                                                         targets, V, n, dloss);
    CUDA_CHECK_LAST();
}

__global__ void adamw_kernel(float *p, const float *g, float *m, float *v, size_t n, float lr, float beta1,
                             float beta2, float eps, float weight_decay, float bc1, float bc2)
{
    for (size_t i = SB_GRID_START; i < n; i += SB_GRID_STRIDE) {
        const float gi = g[i];
        const float mi = beta1 * m[i] + (1.0f - beta1) * gi;
        const float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        const float mhat = mi / bc1, vhat = vi / bc2;
        p[i] -= lr * (mhat / (sqrtf(vhat) + eps) + weight_decay * p[i]);
    }
}

extern "C" void cuda_adamw_update(float *p, const float *g, float *m, float *v, size_t n, float lr,
                                  float beta1, float beta2, float eps, float weight_decay, int t)
{
    if (!n) return;
    // bias corrections in double on the host, rounded once, as on the CPU
    const float bc1 = (float)(1 - pow((double)beta1, t)), bc2 = (float)(1 - pow((double)beta2, t));
    adamw_kernel<<<sb_grid(n, SB_BLOCK), SB_BLOCK, 0, sb_cuda_stream()>>>(p, g, m, v, n, lr, beta1, beta2, eps,
                                                                         weight_decay, bc1, bc2);
    CUDA_CHECK_LAST();
}
