/* mixer_qkv.c: the q/k/v input path (projections, conv4 + SiLU, L2 norm) and the per-head norm / gate / output projection shared by deltanet, gated_deltanet and retnet (see mixer_qkv.h). */
#include "mixer_qkv.h"

int qkv_in_params(param_decl *out, int d)
{
    out[QKV_IN_WQ] = (param_decl){"W_q", d, d, INIT_NORMAL, INIT_STD, 1};
    out[QKV_IN_WK] = (param_decl){"W_k", d, d, INIT_NORMAL, INIT_STD, 1};
    out[QKV_IN_WV] = (param_decl){"W_v", d, d, INIT_NORMAL, INIT_STD, 1};
    out[QKV_IN_CONV_Q] = (param_decl){"conv_q", d, 4, INIT_UNIFORM, 0.5, 0};
    out[QKV_IN_CONV_K] = (param_decl){"conv_k", d, 4, INIT_UNIFORM, 0.5, 0};
    out[QKV_IN_CONV_V] = (param_decl){"conv_v", d, 4, INIT_UNIFORM, 0.5, 0};
    return QKV_IN_PARAMS;
}

void qkv_in_cache_layout(qkv_in_cache *c, carve_cursor *cur, const mixer_dims *m)
{
    const size_t n = (size_t)m->B * m->T * m->d, nh = (size_t)m->B * m->T * m->spec->heads;
    for (int i = 0; i < 3; i++) {
        c->proj[i] = carve(cur, n);
        c->conv_pre[i] = carve(cur, n);
        c->conv_out[i] = carve(cur, n);
    }
    c->qn = carve(cur, n);
    c->kn = carve(cur, n);
    c->rnorm_q = carve(cur, nh);
    c->rnorm_k = carve(cur, nh);
}

void qkv_in_work_layout(qkv_in_work *w, carve_cursor *cur, const mixer_dims *m)
{
    const size_t n = (size_t)m->B * m->T * m->d;
    w->d_conv_out = carve(cur, n);
    w->d_proj = carve(cur, n);
}

void qkv_in_forward(qkv_in_cache *c, const real *inp, const real *const *w, const mixer_dims *m)
{
    // inp (B,T,d); per head K = d/H
    const int B = m->B, T = m->T, d = m->d, H = m->spec->heads, K = d / H;
    const int N = B * T;
    for (int i = 0; i < 3; i++) {
        matmul_forward(c->proj[i], inp, w[QKV_IN_WQ + i], NULL, N, d, d);
        conv4_silu_forward(c->conv_out[i], c->conv_pre[i], c->proj[i], w[QKV_IN_CONV_Q + i], B,
                           T, d);
    }
    l2norm_forward(c->qn, c->rnorm_q, c->conv_out[0], N * H, K);
    l2norm_forward(c->kn, c->rnorm_k, c->conv_out[1], N * H, K);
}

void qkv_in_backward(real *dinp, real *const *dw, const qkv_in_work *k, const real *dqn,
                     const real *dkn, const real *dv, const qkv_in_cache *c, const real *inp,
                     const real *const *w, const mixer_dims *m)
{
    const int B = m->B, T = m->T, d = m->d, H = m->spec->heads, K = d / H;
    const int N = B * T;
    const size_t n = (size_t)N * d;
    const real *d_normed_in[2] = {dqn, dkn};
    const real *rnorm[2] = {c->rnorm_q, c->rnorm_k};
    for (int i = 0; i < 3; i++) {
        const real *d_conv_out = dv;
        if (i < 2) {
            zero_reals(k->d_conv_out, n);
            l2norm_backward(k->d_conv_out, d_normed_in[i], c->conv_out[i], rnorm[i], N * H, K);
            d_conv_out = k->d_conv_out;
        }
        zero_reals(k->d_proj, n);
        conv4_silu_backward(k->d_proj, dw[QKV_IN_CONV_Q + i], d_conv_out, c->proj[i],
                            c->conv_pre[i], w[QKV_IN_CONV_Q + i], B, T, d);
        matmul_backward(dinp, dw[QKV_IN_WQ + i], NULL, k->d_proj, inp, w[QKV_IN_WQ + i], N, d, d);
    }
}

/* The entries of qkv_out's part, from its first: W_g only when gated. */
static int out_norm(int gated) { return gated ? 1 : 0; }
static int out_wo(int gated) { return gated ? 2 : 1; }

int qkv_out_params(param_decl *out, const model_spec *spec, int d, int gated)
{
    const int V = d / spec->heads;
    if (gated) out[0] = (param_decl){"W_g", d, d, INIT_NORMAL, INIT_STD, 1};
    out[out_norm(gated)] = (param_decl){"norm_o.weight", V, 1, INIT_ONES, 0, 0};
    out[out_wo(gated)] = (param_decl){"W_o", d, d, INIT_NORMAL, init_std_residual(spec), 1};
    return QKV_OUT_PARAMS(gated);
}

void qkv_out_cache_layout(qkv_out_cache *c, carve_cursor *cur, const mixer_dims *m, int gated)
{
    const size_t n = (size_t)m->B * m->T * m->d, nh = (size_t)m->B * m->T * m->spec->heads;
    c->o = carve(cur, n);
    c->rstd_o = carve(cur, nh);
    c->o_normed = carve(cur, n);
    c->g = gated ? carve(cur, n) : NULL;
    c->gated = gated ? carve(cur, n) : NULL;
}

void qkv_out_work_layout(qkv_out_work *w, carve_cursor *cur, const mixer_dims *m, int gated)
{
    const size_t n = (size_t)m->B * m->T * m->d;
    w->d_gated = gated ? carve(cur, n) : NULL;
    w->d_normed = carve(cur, n);
    w->d_o = carve(cur, n);
    w->dg = gated ? carve(cur, n) : NULL;
}

void qkv_out_forward(real *out, qkv_out_cache *c, const real *inp, const real *const *w,
                     const mixer_dims *m, int gated)
{
    // out, inp (B,T,d); c->o (B,T,H,V) with V = d/H
    const int d = m->d, H = m->spec->heads, V = d / H, N = m->B * m->T;
    rmsnorm_forward(c->o_normed, c->rstd_o, c->o, w[out_norm(gated)], N * H, V);
    const real *to_out = c->o_normed;
    if (gated) {
        matmul_forward(c->g, inp, w[0], NULL, N, d, d);
        silu_gate_forward(c->gated, c->o_normed, c->g, (size_t)N * d);
        to_out = c->gated;
    }
    matmul_forward(out, to_out, w[out_wo(gated)], NULL, N, d, d);
}

void qkv_out_backward(real *dinp, real *const *dw, const qkv_out_work *k, const real *dout,
                      const qkv_out_cache *c, const real *inp, const real *const *w,
                      const mixer_dims *m, int gated)
{
    const int d = m->d, H = m->spec->heads, V = d / H, N = m->B * m->T;
    const size_t n = (size_t)N * d;
    const int wo = out_wo(gated);
    if (gated) {
        zero_reals(k->d_gated, n);
        matmul_backward(k->d_gated, dw[wo], NULL, dout, c->gated, w[wo], N, d, d);
        zero_reals(k->d_normed, n);
        zero_reals(k->dg, n);
        silu_gate_backward(k->d_normed, k->dg, k->d_gated, c->o_normed, c->g, n);
        matmul_backward(dinp, dw[0], NULL, k->dg, inp, w[0], N, d, d);
    } else {
        zero_reals(k->d_normed, n);
        matmul_backward(k->d_normed, dw[wo], NULL, dout, c->o_normed, w[wo], N, d, d);
    }
    zero_reals(k->d_o, n);
    rmsnorm_backward(k->d_o, dw[out_norm(gated)], k->d_normed, c->o, w[out_norm(gated)], c->rstd_o,
                     N * H, V);
}
