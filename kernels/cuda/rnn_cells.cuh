// rnn_cells.cuh: the recurrent cells' pointwise maths on one unit, forward and backward, shared by the per-step kernels (lstm.cu, rnn_cell.cu) and the persistent ones (rnn_persist.cu), so both paths compute the same thing the same way. Semantics: kernels/cpu/rnn_cell.c.
#pragma once

// The stabiliser before slstm's first step: so negative that m_1 = i~ and
// the first forget gate is exactly 0.
#define RNN_SLSTM_M_START (-1e30f)

__device__ __forceinline__ float rnn_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }
__device__ __forceinline__ float rnn_log_sigmoid(float x)
{
    return fminf(x, 0.0f) - log1pf(expf(-fabsf(x)));
}

// gru: pre-activations x (z, r, n) and R h_{t-1} (z, r, n) -> gates, h_t.
struct rnn_gru_out {
    float z, rs, nn, h;
};
__device__ __forceinline__ rnn_gru_out rnn_gru_cell(float xz, float xr, float xn, float rz,
                                                    float rr, float rn, float hp)
{
    rnn_gru_out o;
    o.z = rnn_sigmoid(xz + rz);
    o.rs = rnn_sigmoid(xr + rr);
    o.nn = tanhf(xn + o.rs * rn);
    o.h = (1.0f - o.z) * o.nn + o.z * hp;
    return o;
}

// gru backward from dht (into h_t) and the gates cache (z, rs, nn, R_n h_{t-1}):
// the gradients of the pre-activations z, r, n.
struct rnn_gru_grad {
    float dpz, dpr, dpn;
};
__device__ __forceinline__ rnn_gru_grad rnn_gru_cell_back(float dht, float z, float rs, float nn,
                                                          float rn, float hp)
{
    rnn_gru_grad g;
    g.dpz = dht * (hp - nn) * z * (1.0f - z);
    g.dpn = dht * (1.0f - z) * (1.0f - nn * nn);
    g.dpr = g.dpn * rn * rs * (1.0f - rs);
    return g;
}

// slstm: pre-activations (i, f, z, o, R h_{t-1} included), the previous
// stabiliser m and states c, n -> gates cache (i, f, tanh z, s(o), s(-f)),
// the new m, c, n and h_t.
struct rnn_slstm_out {
    float ig, fg, g, o, sf, m, c, n, h;
};
__device__ __forceinline__ rnn_slstm_out rnn_slstm_cell(float pi, float pf, float pz, float po,
                                                        float mp, float cp, float np)
{
    rnn_slstm_out s;
    const float lf = rnn_log_sigmoid(pf);
    s.m = fmaxf(lf + mp, pi);
    s.ig = expf(pi - s.m);
    s.fg = expf(lf + mp - s.m);
    s.g = tanhf(pz);
    s.o = rnn_sigmoid(po);
    s.c = s.ig * s.g + s.fg * cp;
    s.n = s.ig + s.fg * np;
    s.h = s.o * s.c / s.n;
    s.sf = rnn_sigmoid(-pf);
    return s;
}

// slstm backward: dht into h_t, dc, dn the carries into c_t, n_t; the gates
// cache, c_t, n_t and c_{t-1}, n_{t-1} -> the pre-activations' gradients and
// the carries into c_{t-1}, n_{t-1}.
struct rnn_slstm_grad {
    float dpi, dpf, dpz, dpo, cc, cn;
};
__device__ __forceinline__ rnn_slstm_grad rnn_slstm_cell_back(float dht, float cc, float cn,
                                                              float ig, float fg, float g, float o,
                                                              float sf, float cj, float nj,
                                                              float cp, float np)
{
    rnn_slstm_grad s;
    const float dc = cc + dht * o / nj;
    const float dn = cn - dht * o * cj / (nj * nj);
    const float df = dc * cp + dn * np;
    s.dpi = (dc * g + dn) * ig;
    s.dpf = df * fg * sf;
    s.dpz = dc * ig * (1.0f - g * g);
    s.dpo = dht * cj / nj * o * (1.0f - o);
    s.cc = dc * fg;
    s.cn = dn * fg;
    return s;
}

// lstm backward: dhj into h_t, dcc the carry into c_t, the gates cache, c_t
// and c_{t-1} (live: t > 0) -> the pre-activations' gradients and the carry
// into c_{t-1}.
struct rnn_lstm_grad {
    float di, df, dg, dout, cc;
};
__device__ __forceinline__ rnn_lstm_grad rnn_lstm_cell_back(float dhj, float dcc, float ig, float fg,
                                                            float gg, float og, float ct, float cp,
                                                            bool live)
{
    rnn_lstm_grad l;
    const float tc = tanhf(ct);
    const float dc = dcc + dhj * og * (1 - tc * tc);
    l.di = dc * gg * ig * (1 - ig);
    l.df = live ? dc * cp * fg * (1 - fg) : 0.0f;
    l.dg = dc * ig * (1 - gg * gg);
    l.dout = dhj * tc * og * (1 - og);
    l.cc = dc * fg;
    return l;
}
