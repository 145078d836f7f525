/* mixer_minlstm.c: the minLSTM mixer: f, i = s(x W_f^T + b_f), s(x W_i^T + b_i) normalised to f / (f + i), i / (f + i), h~ = g(x W_h^T + b_h), h_t = f' h_{t-1} + i' h~ by scan_diag; output h W_o^T. */
#include "mixer_minrnn.h"

/* eigen does not apply: f' and i' are normalised to f' + i' = 1 (the point
 * of minLSTM's coefficient norm), which the 2a - 1 map would break, and
 * MODELS.md names only mingru and hgrn of this family; a sweep over eigen
 * drops it for minlstm with a notice. */

/* pre: f, i, h~ */
static void gates_forward(real *a, real *b, const real *const *pre, size_t n, int eigen_signed)
{
    (void)eigen_signed;
    minlstm_gates_forward(a, b, pre[0], pre[1], pre[2], n);
}

static void gates_backward(real *const *dpre, const real *da, const real *db,
                           const real *const *pre, size_t n, int eigen_signed)
{
    (void)eigen_signed;
    minlstm_gates_backward(dpre[0], dpre[1], dpre[2], da, db, pre[0], pre[1], pre[2], n);
}

/* with the coefficient norm (the minRNNs reference's minLSTM) */
static const minrnn_kind kind = {
    .maps = 3,
    .weight_names = {"W_f", "W_i", "W_h"},
    .bias_names = {"b_f", "b_i", "b_h"},
    .gates_forward = gates_forward,
    .gates_backward = gates_backward,
};

static int minlstm_params(param_decl out[MIXER_MAX_PARAMS], const model_spec *spec, int d)
{
    return minrnn_params(out, spec, d, &kind);
}

static size_t minlstm_cache_len(const mixer_dims *m) { return minrnn_cache_len(m, &kind); }
static size_t minlstm_work_len(const mixer_dims *m) { return minrnn_work_len(m, &kind); }

static void minlstm_forward(real *out, real *cache, real *work, const real *inp,
                            const real *const *w, const mixer_dims *m)
{
    minrnn_forward(out, cache, work, inp, w, m, &kind);
}

static void minlstm_backward(real *dinp, real *const *dw, real *work, const real *dout,
                             const real *cache, const real *inp, const real *const *w,
                             const mixer_dims *m)
{
    minrnn_backward(dinp, dw, work, dout, cache, inp, w, m, &kind);
}

const mixer_impl mixer_minlstm = {
    .params = minlstm_params,
    .cache_len = minlstm_cache_len,
    .work_len = minlstm_work_len,
    .forward = minlstm_forward,
    .backward = minlstm_backward,
};
