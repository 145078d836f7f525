/* optim.c: the training step's optimiser (AdamW with global-norm clipping)
 * and the learning-rate schedule (linear warmup, cosine decay). */
#include <math.h>

#include "../kernels/ops.h"
#include "model_internal.h"

/* Queues norm, clip and update on the backend; the guard skips the update
 * when the loss or the gradient norm is not finite, so the parameters stay
 * the last finite ones and the caller, reading the guard, marks the run
 * diverged. */
void model_adamw_step_queued(model *m, double lr, double beta1, double beta2, double eps,
                             double weight_decay, double clip, int step)
{
    model_arena_scalars(m, lr, beta1, beta2, step);
    model_adamw_ops(m, beta1, beta2, eps, weight_decay, clip);
}

void model_adamw_ops(model *m, double beta1, double beta2, double eps, double weight_decay, double clip)
{
    const step_scalars *scalars = model_step_scalars(m);
    real *p = model_arena_params(m), *g = model_arena_grads(m);
    real *mom = model_arena_adam_m(m), *var = model_arena_adam_v(m);
    step_guard *guard = model_arena_guard(m);
    const size_t n = model_num_params(m);
    sum_squares_into(&guard->grad_sumsq, g, n);
    step_guard_update(guard, model_take_step_loss(m), clip, scalars);
    // tensors are contiguous in the arena: one update per run of equal decay
    const int count = model_num_tensors(m);
    for (int i = 0; i < count;) {
        const model_tensor *first = model_tensor_at(m, i);
        size_t len = 0;
        for (; i < count && model_tensor_at(m, i)->decay == first->decay; i++)
            len += model_tensor_at(m, i)->size;
        const size_t o = first->offset;
        adamw_update_guarded(p + o, g + o, mom + o, var + o, len, (real)beta1, (real)beta2, (real)eps,
                             first->decay ? (real)weight_decay : 0, scalars, guard);
    }
}

double model_adamw_step(model *m, double lr, double beta1, double beta2,
                        double eps, double weight_decay, double clip, int step)
{
    model_adamw_step_queued(m, lr, beta1, beta2, eps, weight_decay, clip, step);
    model_step_stats st;
    model_step_read(m, &st);
    return st.grad_norm;
}

double lr_schedule(double lr, int warmup, int steps, double min_ratio, int step)
{
    if (step <= warmup) return lr * step / warmup;
    if (step >= steps) return lr * min_ratio;
    const double progress = (double)(step - warmup) / (steps - warmup);
    const double lr_min = lr * min_ratio;
    return lr_min + (lr - lr_min) * 0.5 * (1 + cos(M_PI * progress));
}
