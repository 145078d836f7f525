/* mixer_mingru.c: the minGRU mixer: z = s(x W_z^T + b_z), h~ = g(x W_h^T + b_h), h_t = (1 - z) h_{t-1} + z h~ by scan_diag; output h W_o^T. */
#include "mixer_minrnn.h"

/* eigen applies (MODELS.md asks each diagonal recurrence to decide): the
 * decay 1 - z is an input-dependent eigenvalue in (0, 1), the setting of
 * Grazzi et al. (2024), so `signed` maps it to 2 (1 - z) - 1 = 1 - 2z in
 * (-1, 1) and a state can flip sign (parity); the input z h~ is unchanged. */

/* pre: z, h~ */
static void gates_forward(real *a, real *b, const real *const *pre, size_t n, int eigen_signed)
{
    mingru_gates_forward(a, b, pre[0], pre[1], n, eigen_signed);
}

static void gates_backward(real *const *dpre, const real *da, const real *db,
                           const real *const *pre, size_t n, int eigen_signed)
{
    mingru_gates_backward(dpre[0], dpre[1], da, db, pre[0], pre[1], n, eigen_signed);
}

static const minrnn_kind kind = {
    .maps = 2,
    .weight_names = {"W_z", "W_h"},
    .bias_names = {"b_z", "b_h"},
    .gates_forward = gates_forward,
    .gates_backward = gates_backward,
};

static int mingru_params(param_decl out[MIXER_MAX_PARAMS], const model_spec *spec, int d)
{
    return minrnn_params(out, spec, d, &kind);
}

static size_t mingru_cache_len(const mixer_dims *m) { return minrnn_cache_len(m, &kind); }
static size_t mingru_work_len(const mixer_dims *m) { return minrnn_work_len(m, &kind); }

static void mingru_forward(real *out, real *cache, real *work, const real *inp,
                           const real *const *w, const mixer_dims *m)
{
    minrnn_forward(out, cache, work, inp, w, m, &kind);
}

static void mingru_backward(real *dinp, real *const *dw, real *work, const real *dout,
                            const real *cache, const real *inp, const real *const *w,
                            const mixer_dims *m)
{
    minrnn_backward(dinp, dw, work, dout, cache, inp, w, m, &kind);
}

const mixer_impl mixer_mingru = {
    .params = mingru_params,
    .cache_len = mingru_cache_len,
    .work_len = mingru_work_len,
    .forward = mingru_forward,
    .backward = mingru_backward,
};
