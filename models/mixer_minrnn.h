/* mixer_minrnn.h: the body that minGRU and minLSTM (Feng et al. 2024,
 * "Were RNNs All We Needed?") share: G gate maps and the candidate map, each
 * x W^T + b, turned by the mixer's gate op into scan_diag's (a, b), the scan
 * h_t = a_t h_{t-1} + b_t, and the output map h W_o^T. A mixer describes its
 * gates with a minrnn_kind; mixer_mingru.c and mixer_minlstm.c are thin
 * wrappers around the functions below. */
#ifndef SB_MIXER_MINRNN_H
#define SB_MIXER_MINRNN_H

#include "mixer.h"

/* gate maps plus the candidate's */
#define MINRNN_MAX_MAPS 3

typedef struct {
    int maps; /* input maps, the candidate's last (mingru 2: z, h~; minlstm 3: f, i, h~) */
    /* parameter names: W and b of each map in order */
    const char *weight_names[MINRNN_MAX_MAPS], *bias_names[MINRNN_MAX_MAPS];
    /* a, b (n) from the maps' pre-activations pre[0..maps) (n each) */
    void (*gates_forward)(real *a, real *b, const real *const *pre, size_t n, int eigen_signed);
    /* dpre[j] (n) += the gradients of the maps' pre-activations given da, db */
    void (*gates_backward)(real *const *dpre, const real *da, const real *db,
                           const real *const *pre, size_t n, int eigen_signed);
} minrnn_kind;

/* W and b of each map (nn.Linear's init, uniform(+-1/sqrt(d)), as the
 * minRNNs reference at expansion 1), then W_o (normal(0, 0.02) rescaled for
 * the residual stream, as every mixer's output projection here). */
int minrnn_params(param_decl out[MIXER_MAX_PARAMS], const model_spec *spec, int d,
                  const minrnn_kind *kind);
size_t minrnn_cache_len(const mixer_dims *m, const minrnn_kind *kind);
size_t minrnn_work_len(const mixer_dims *m, const minrnn_kind *kind);
void minrnn_forward(real *out, real *cache, real *work, const real *inp, const real *const *w,
                    const mixer_dims *m, const minrnn_kind *kind);
void minrnn_backward(real *dinp, real *const *dw, real *work, const real *dout,
                     const real *cache, const real *inp, const real *const *w,
                     const mixer_dims *m, const minrnn_kind *kind);

#endif
