/* mixer_qkv.h: the two ends that deltanet, gated_deltanet and retnet share
 * around their scan_delta call (fla's layers):
 *  - qkv_in: q, k, v = x W^T, each through conv4 + SiLU, q and k then
 *    L2-normalised per head (deltanet, gated_deltanet);
 *  - qkv_out: the scan output o through a per-head RMSNorm, optionally gated
 *    by silu(x W_g^T), then the output projection W_o (all three).
 * Each part declares its parameters as a run of consecutive entries of the
 * mixer's table and carves its buffers from the mixer's own cursors, so a
 * mixer keeps one size table per region (mixer.h). Backwards add into dinp
 * in the order the mixers always did (W_g's term first in qkv_out, then q,
 * k, v in qkv_in), so results do not change with the sharing. */
#ifndef SB_MIXER_QKV_H
#define SB_MIXER_QKV_H

#include "mixer.h"

/* ---- qkv_in ------------------------------------------------------------ */
/* Parameter entries, in this order from the first one the mixer gives. */
enum { QKV_IN_WQ, QKV_IN_WK, QKV_IN_WV, QKV_IN_CONV_Q, QKV_IN_CONV_K, QKV_IN_CONV_V,
       QKV_IN_PARAMS };

typedef struct {
    real *proj[3], *conv_pre[3], *conv_out[3]; // (B,T,d) each, index 0 q, 1 k, 2 v
    real *qn, *kn;                             // (B,T,H,K) L2-normalised q, k
    real *rnorm_q, *rnorm_k;                   // (B,T,H)
} qkv_in_cache;

typedef struct {
    real *d_conv_out; // (B,T,d), reused for q then k
    real *d_proj;     // (B,T,d), reused for q, k, v
} qkv_in_work;

/* Writes the QKV_IN_PARAMS declarations (W_q, W_k, W_v: d x d normal(0,
 * 0.02); conv_q, conv_k, conv_v: d x 4 as PyTorch's nn.Conv1d, fla's
 * ShortConvolution, uniform(+-1/sqrt(4))) into out; returns their count. */
int qkv_in_params(param_decl *out, int d);
void qkv_in_cache_layout(qkv_in_cache *c, carve_cursor *cur, const mixer_dims *m);
void qkv_in_work_layout(qkv_in_work *w, carve_cursor *cur, const mixer_dims *m);
/* inp (B,T,d); w: the part's first parameter. The scan's inputs are then
 * c->qn, c->kn and c->conv_out[2] (v). */
void qkv_in_forward(qkv_in_cache *c, const real *inp, const real *const *w, const mixer_dims *m);
/* dinp (B,T,d) += the gradient through q, k, v given the scan's input
 * gradients dqn, dkn, dv (B,T,d); dw: the part's first gradient. */
void qkv_in_backward(real *dinp, real *const *dw, const qkv_in_work *k, const real *dqn,
                     const real *dkn, const real *dv, const qkv_in_cache *c, const real *inp,
                     const real *const *w, const mixer_dims *m);

/* ---- qkv_out ----------------------------------------------------------- */
typedef struct {
    real *o;        // (B,T,H,V) the scan output, written by the mixer
    real *rstd_o;   // (B,T,H)
    real *o_normed; // (B,T,d)
    real *g;        // (B,T,d) W_g x (gated only)
    real *gated;    // (B,T,d) norm(o) * silu(g) (gated only)
} qkv_out_cache;

typedef struct {
    real *d_gated;  // (B,T,d) (gated only)
    real *d_normed; // (B,T,d)
    real *d_o;      // (B,T,H,V) the gradient of the scan output
    real *dg;       // (B,T,d) (gated only)
} qkv_out_work;

/* Writes [W_g (d x d, when gated)], norm_o.weight (V = d/H, ones) and W_o
 * (d x d, rescaled for the residual stream) into out; returns their count,
 * QKV_OUT_PARAMS(gated). */
#define QKV_OUT_PARAMS(gated) ((gated) ? 3 : 2)
int qkv_out_params(param_decl *out, const model_spec *spec, int d, int gated);
void qkv_out_cache_layout(qkv_out_cache *c, carve_cursor *cur, const mixer_dims *m, int gated);
void qkv_out_work_layout(qkv_out_work *w, carve_cursor *cur, const mixer_dims *m, int gated);
/* out (B,T,d) from c->o and the block input inp (B,T,d) for the gate. */
void qkv_out_forward(real *out, qkv_out_cache *c, const real *inp, const real *const *w,
                     const mixer_dims *m, int gated);
/* Fills k->d_o from dout (B,T,d); adds the gate's term into dinp. */
void qkv_out_backward(real *dinp, real *const *dw, const qkv_out_work *k, const real *dout,
                      const qkv_out_cache *c, const real *inp, const real *const *w,
                      const mixer_dims *m, int gated);

#endif
