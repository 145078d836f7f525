// loss.cu: the CUDA backend's softmax cross-entropy over scored positions
// and its AdamW step, and the training step's forms of them that keep
// every scalar on the device (crossentropy_rows_forward, argmax_rows,
// sum_squares_into, crossentropy_backward_step, step_guard_update,
// adamw_update_guarded: these read the step's scalars from step_scalars in
// device memory when they run, so a captured step replays right); semantics of
// ops.h, as kernels/cpu/dense.c and kernels/cpu/train_step.c.
#include <limits.h>
#include <math.h>

#include "cuda_common.h"
#include "ops_cuda.h"

#define CE_ROWS_PER_BLOCK 8 // one warp per row, 256 threads

// probs at every row; losses = log-sum-exp - target logit at scored rows (0
// elsewhere), counting the scored rows into *count unless it is NULL.
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
        if (count) atomicAdd(count, 1);
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

extern "C" void cuda_crossentropy_rows_forward(float *losses, float *probs, const float *logits,
                                               const int *targets, int N, int V)
{
    if (N <= 0) return;
    crossentropy_forward_kernel<<<sb_cdiv((size_t)N, CE_ROWS_PER_BLOCK), 32 * CE_ROWS_PER_BLOCK, 0,
                                  sb_cuda_stream()>>>(losses, probs, logits, targets, N, V, NULL);
    CUDA_CHECK_LAST();
}

// One warp per row. The CPU scans p[v] > p[best] from best = 0: the first
// index of the largest value, NaN never chosen unless p[0] is NaN (then 0).
// Each lane keeps its first largest non-NaN value; the lanes' candidates
// merge by value, ties to the lower index.
__global__ void argmax_rows_kernel(int *pred, const float *probs, int N, int V)
{
    const int row = blockIdx.x * CE_ROWS_PER_BLOCK + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= N) return;
    const float *p = probs + (size_t)row * V;
    float best = 0;
    int at = INT_MAX;
    for (int i = lane; i < V; i += 32)
        if (!isnan(p[i]) && (at == INT_MAX || p[i] > best)) {
            best = p[i];
            at = i;
        }
    for (int o = 16; o > 0; o >>= 1) {
        const float other = __shfl_xor_sync(0xffffffffu, best, o);
        const int other_at = __shfl_xor_sync(0xffffffffu, at, o);
        if (other_at != INT_MAX && (at == INT_MAX || other > best || (other == best && other_at < at))) {
            best = other;
            at = other_at;
        }
    }
    if (lane == 0) pred[row] = at == INT_MAX || isnan(p[0]) ? 0 : at;
}

extern "C" void cuda_argmax_rows(int *pred, const float *probs, int N, int V)
{
    if (N <= 0) return;
    argmax_rows_kernel<<<sb_cdiv((size_t)N, CE_ROWS_PER_BLOCK), 32 * CE_ROWS_PER_BLOCK, 0, sb_cuda_stream()>>>(
        pred, probs, N, V);
    CUDA_CHECK_LAST();
}

// Sum of squares in double into device memory: each of SUMSQ_PARTS blocks
// sums a grid-stride share into part[block], one thread then adds the
// parts in a fixed order (deterministic, no atomics, no host sync).
#define SUMSQ_PARTS 256
__global__ void sum_squares_parts_kernel(double *part, const float *x, size_t n)
{
    __shared__ double warp_part[SB_BLOCK / 32];
    double acc = 0;
    for (size_t i = SB_GRID_START; i < n; i += SB_GRID_STRIDE) acc += (double)x[i] * x[i];
    for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
    if (threadIdx.x % 32 == 0) warp_part[threadIdx.x / 32] = acc;
    __syncthreads();
    if (threadIdx.x == 0) {
        double s = 0;
        for (int w = 0; w < SB_BLOCK / 32; w++) s += warp_part[w];
        part[blockIdx.x] = s;
    }
}

__global__ void sum_squares_total_kernel(double *out, const double *part, int parts)
{
    double s = 0;
    for (int i = 0; i < parts; i++) s += part[i];
    *out = s;
}

extern "C" void cuda_sum_squares_into(double *out, const float *x, size_t n)
{
    static_assert(SUMSQ_PARTS * sizeof(double) <= SB_CUDA_SCRATCH_BYTES, "scratch too small");
    double *part = (double *)sb_cuda_scratch();
    if (!n) {
        CUDA_CHECK(cudaMemsetAsync(out, 0, sizeof *out, sb_cuda_stream()));
        return;
    }
    sum_squares_parts_kernel<<<SUMSQ_PARTS, SB_BLOCK, 0, sb_cuda_stream()>>>(part, x, n);
    CUDA_CHECK_LAST();
    sum_squares_total_kernel<<<1, 1, 0, sb_cuda_stream()>>>(out, part, SUMSQ_PARTS);
    CUDA_CHECK_LAST();
}

// kernels/cpu/train_step.c's step_guard_update, on one thread.
__global__ void step_guard_kernel(step_guard *g, const float *loss_sum, double clip, const step_scalars *s)
{
    const int step = s->step;
    const double norm = sqrt(g->grad_sumsq);
    const int bad = loss_sum && !isfinite(*loss_sum) ? STEP_BAD_LOSS : !isfinite(norm) ? STEP_BAD_GRAD : 0;
    g->loss_sum = loss_sum ? *loss_sum : 0.0f;
    g->grad_norm = norm;
    g->skip = bad != 0;
    if (bad && !g->first_bad_step) {
        g->first_bad_step = step;
        g->first_bad_what = bad;
        g->first_bad_value = bad == STEP_BAD_LOSS ? (double)*loss_sum : norm;
    }
    g->clip_scale = clip > 0 && norm > clip ? (float)(clip / norm) : 1.0f;
}

extern "C" void cuda_step_guard_update(step_guard *g, const float *loss_sum, double clip, const step_scalars *s)
{
    step_guard_kernel<<<1, 1, 0, sb_cuda_stream()>>>(g, loss_sum, clip, s);
    CUDA_CHECK_LAST();
}

// dloss_at (device memory) NULL: the value dloss; else *dloss_at, read when the kernel runs.
__global__ void crossentropy_backward_kernel(float *dlogits, const float *probs, const int *targets, int V,
                                             size_t n, float dloss, const float *dloss_at)
{
    if (dloss_at) dloss = *dloss_at;
    for (size_t i = SB_GRID_START; i < n; i += SB_GRID_STRIDE) {
        const int tgt = targets[i / V];
        if (tgt < 0) continue;
        dlogits[i] += (probs[i] - (float)((int)(i % V) == tgt)) * dloss;
    }
}

static void crossentropy_backward_launch(float *dlogits, const float *probs, const int *targets, int N, int V,
                                         float dloss, const float *dloss_at)
{
    const size_t n = (size_t)N * V;
    if (!n) return;
    crossentropy_backward_kernel<<<sb_grid(n, SB_BLOCK), SB_BLOCK, 0, sb_cuda_stream()>>>(
        dlogits, probs, targets, V, n, dloss, dloss_at);
    CUDA_CHECK_LAST();
}

extern "C" void cuda_crossentropy_backward(float *dlogits, const float *probs, const int *targets, int N,
                                           int V, float dloss)
{
    crossentropy_backward_launch(dlogits, probs, targets, N, V, dloss, NULL);
}

extern "C" void cuda_crossentropy_backward_step(float *dlogits, const float *probs, const int *targets, int N,
                                                int V, const step_scalars *s)
{
    crossentropy_backward_launch(dlogits, probs, targets, N, V, 0.0f, &s->dloss);
}

// guard NULL: adamw_update; else adamw_update_guarded (g scaled in place),
// whose lr and bias corrections come from s (device memory) when it runs.
__global__ void adamw_kernel(float *p, float *g, float *m, float *v, size_t n, float lr, float beta1,
                             float beta2, float eps, float weight_decay, float bc1, float bc2,
                             const step_guard *guard, const step_scalars *s)
{
    if (guard && guard->skip) return;
    if (s) {
        lr = s->lr;
        bc1 = s->bias1;
        bc2 = s->bias2;
    }
    const float scale = guard ? guard->clip_scale : 1.0f;
    for (size_t i = SB_GRID_START; i < n; i += SB_GRID_STRIDE) {
        float gi = g[i];
        if (scale != 1.0f) g[i] = gi = gi * scale;
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
    // without a guard the kernel only reads g
    adamw_kernel<<<sb_grid(n, SB_BLOCK), SB_BLOCK, 0, sb_cuda_stream()>>>(p, (float *)g, m, v, n, lr, beta1, beta2,
                                                                         eps, weight_decay, bc1, bc2, NULL, NULL);
    CUDA_CHECK_LAST();
}

extern "C" void cuda_adamw_update_guarded(float *p, float *g, float *m, float *v, size_t n, float beta1,
                                          float beta2, float eps, float weight_decay, const step_scalars *s,
                                          const step_guard *guard)
{
    if (!n) return;
    adamw_kernel<<<sb_grid(n, SB_BLOCK), SB_BLOCK, 0, sb_cuda_stream()>>>(p, g, m, v, n, 0.0f, beta1, beta2, eps,
                                                                         weight_decay, 1.0f, 1.0f, guard, s);
    CUDA_CHECK_LAST();
}
