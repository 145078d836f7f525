/* train_step.c: the CPU backend's ops of the training step that keep their
 * scalars in backend memory (ops.h, "the training step without host
 * syncs"). Each computes exactly what the host-side step computed before
 * them: the cross-entropy's rows, the gradient norm in double, the clip
 * factor rounded once, the clip as scale_inplace, then adamw_update. */
#include "../ops.h"

#include <math.h>

void crossentropy_rows_forward(real *losses, real *probs, const real *logits, const int *targets, int N,
                               int V)
{
    (void)crossentropy_forward(losses, probs, logits, targets, N, V);
}

void argmax_rows(int *pred, const real *probs, int N, int V)
{
    /* probs (N,V), pred (N); ties and NaN keep the earlier index */
    for (int r = 0; r < N; r++) {
        const real *p = probs + (size_t)r * V;
        int best = 0;
        for (int v = 1; v < V; v++)
            if (p[v] > p[best]) best = v;
        pred[r] = best;
    }
}

void sum_squares_into(double *out, const real *x, size_t n)
{
    *out = sum_squares(x, n);
}

void crossentropy_backward_step(real *dlogits, const real *probs, const int *targets, int N, int V,
                                const step_scalars *s)
{
    crossentropy_backward(dlogits, probs, targets, N, V, s->dloss);
}

void step_guard_update(step_guard *g, const real *loss_sum, double clip, const step_scalars *s)
{
    const int step = s->step;
    const double norm = sqrt(g->grad_sumsq);
    const int bad = loss_sum && !isfinite(*loss_sum) ? STEP_BAD_LOSS : !isfinite(norm) ? STEP_BAD_GRAD : 0;
    g->loss_sum = loss_sum ? *loss_sum : 0;
    g->grad_norm = norm;
    g->skip = bad != 0;
    if (bad && !g->first_bad_step) {
        g->first_bad_step = step;
        g->first_bad_what = bad;
        g->first_bad_value = bad == STEP_BAD_LOSS ? (double)*loss_sum : norm;
    }
    g->clip_scale = clip > 0 && norm > clip ? (real)(clip / norm) : 1;
}

void adamw_update_guarded(real *p, real *g, real *m, real *v, size_t n, real beta1, real beta2, real eps,
                          real weight_decay, const step_scalars *s, const step_guard *guard)
{
    if (guard->skip) return;
    if (guard->clip_scale != 1) scale_inplace(g, n, guard->clip_scale);
    /* adamw_update computes s->bias1 and s->bias2 from the step itself */
    adamw_update(p, g, m, v, n, s->lr, beta1, beta2, eps, weight_decay, s->step);
}

void step_scalars_set(step_scalars *s, double lr, double beta1, double beta2, int step, int count)
{
    s->lr = (real)lr;
    /* the betas as adamw_update_guarded gets them (real), as adamw_update */
    s->bias1 = (real)(1 - pow((double)(real)beta1, step));
    s->bias2 = (real)(1 - pow((double)(real)beta2, step));
    s->dloss = count ? (real)(1.0 / count) : 0;
    s->step = step;
}
