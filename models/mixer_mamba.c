/* mixer_mamba.c: Mamba-1 (Gu and Dao 2023): x, z = in_proj; x -> conv4 + SiLU;
 * dt, B, C = x_proj(x) with dt rank ceil(d/16); dt = softplus(W_dt dt + b_dt);
 * the selective scan (A = -exp(A_log), D skip, gate silu(z); eigen: signed
 * maps exp(dt A) to 2 exp(dt A) - 1); out_proj. */
#include <math.h>

#include "../kernels/cuda_limits.h"
#include "mixer.h"
#include "ssm_init.h"

enum { P_WIN, P_CONV, P_WX, P_WDT, P_BDT, P_ALOG, P_D, P_WOUT, P_COUNT };

/* dt's range at init (MODELS.md, the reference's dt_min and dt_max) */
#define DT_MIN 1e-3
#define DT_MAX 0.1

typedef struct {
    int Di, R, N; // inner width, dt rank, state size
} mamba_shape;

static mamba_shape shape_of(const model_spec *spec, int d)
{
    return (mamba_shape){spec->expand * d, (d + 15) / 16, spec->d_state};
}

/* Tensors keep the reference layout (in_proj rows: x then z; x_proj rows:
 * dt, B, C), so a PyTorch Mamba loads them directly. The reference's conv
 * has a bias; MODELS.md's conv4 has none, which is the only difference in
 * the parameter count. Linear maps normal(0, 0.02) like the other mixers
 * (W_out rescaled for the residual stream); W_dt uniform(+-R^-1/2) as the
 * reference's dt_proj; conv as PyTorch's Conv1d, uniform(+-1/2). */
static int mamba_params(param_decl out[MIXER_MAX_PARAMS], const model_spec *spec, int d)
{
    const mamba_shape s = shape_of(spec, d);
    out[P_WIN] = (param_decl){"W_in", 2 * s.Di, d, INIT_NORMAL, INIT_STD, 1};
    out[P_CONV] = (param_decl){"conv", s.Di, 4, INIT_UNIFORM, 0.5, 0};
    out[P_WX] = (param_decl){"W_x", s.R + 2 * s.N, s.Di, INIT_NORMAL, INIT_STD, 1};
    out[P_WDT] = (param_decl){"W_dt", s.Di, s.R, INIT_UNIFORM, 1 / sqrt((double)s.R), 1};
    out[P_BDT] = (param_decl){.name = "b_dt", .rows = s.Di, .cols = 1, .init = INIT_CUSTOM,
                              .init_value = init_dt_bias, .lo = DT_MIN, .hi = DT_MAX};
    out[P_ALOG] = (param_decl){.name = "A_log", .rows = s.Di, .cols = s.N, .init = INIT_CUSTOM,
                               .init_value = init_log_arange};
    out[P_D] = (param_decl){"D", s.Di, 1, INIT_ONES, 0, 0};
    out[P_WOUT] = (param_decl){"W_out", d, s.Di, INIT_NORMAL, init_std_residual(spec), 1};
    return P_COUNT;
}

typedef struct {
    real *x, *z;        // (B,T,Di) in_proj halves
    real *conv_pre, *u; // (B,T,Di) conv before / after SiLU
    real *dt_low;       // (B,T,R)
    real *Bm, *Cm;      // (B,T,N)
    real *dt_pre;       // (B,T,Di) W_dt dt_low + b_dt
    real *scan;         // selective_scan_cache_len
    real *y;            // (B,T,Di) gated scan output
} mamba_cache;

typedef struct {
    real *dy, *du, *ddt_pre, *dz, *dx; // (B,T,Di)
    real *dBm, *dCm;                   // (B,T,N)
    real *ddt_low;                     // (B,T,R)
    real *scratch;                     // selective_scan_scratch_len
} mamba_work;

static size_t mamba_cache_layout(mamba_cache *c, real *base, const mixer_dims *m)
{
    const mamba_shape s = shape_of(m->spec, m->d);
    const size_t BT = (size_t)m->B * m->T;
    carve_cursor cur = {base, 0};
    c->x = carve(&cur, BT * s.Di);
    c->z = carve(&cur, BT * s.Di);
    c->conv_pre = carve(&cur, BT * s.Di);
    c->u = carve(&cur, BT * s.Di);
    c->dt_low = carve(&cur, BT * s.R);
    c->Bm = carve(&cur, BT * s.N);
    c->Cm = carve(&cur, BT * s.N);
    c->dt_pre = carve(&cur, BT * s.Di);
    c->scan = carve(&cur, selective_scan_cache_len(m->B, m->T, s.Di, s.N));
    c->y = carve(&cur, BT * s.Di);
    return cur.used;
}

static size_t mamba_work_layout(mamba_work *w, real *base, const mixer_dims *m)
{
    const mamba_shape s = shape_of(m->spec, m->d);
    const size_t BT = (size_t)m->B * m->T;
    carve_cursor cur = {base, 0};
    w->dy = carve(&cur, BT * s.Di);
    w->du = carve(&cur, BT * s.Di);
    w->ddt_pre = carve(&cur, BT * s.Di);
    w->dz = carve(&cur, BT * s.Di);
    w->dx = carve(&cur, BT * s.Di);
    w->dBm = carve(&cur, BT * s.N);
    w->dCm = carve(&cur, BT * s.N);
    w->ddt_low = carve(&cur, BT * s.R);
    w->scratch = carve(&cur, selective_scan_scratch_len(m->B, m->T, s.Di, s.N));
    return cur.used;
}

static size_t mamba_cache_len(const mixer_dims *m)
{
    mamba_cache c;
    return mamba_cache_layout(&c, NULL, m);
}

static size_t mamba_work_len(const mixer_dims *m)
{
    mamba_work w;
    return mamba_work_layout(&w, NULL, m);
}

static void mamba_forward(real *out, real *cache, real *work, const real *inp,
                          const real *const *w, const mixer_dims *m)
{
    // inp, out (B,T,d)
    const mamba_shape s = shape_of(m->spec, m->d);
    const int B = m->B, T = m->T, d = m->d, BT = B * T;
    mamba_cache c;
    mamba_cache_layout(&c, cache, m);
    matmul_forward(c.x, inp, w[P_WIN], NULL, BT, d, s.Di);
    matmul_forward(c.z, inp, w[P_WIN] + (size_t)s.Di * d, NULL, BT, d, s.Di);
    conv4_silu_forward(c.u, c.conv_pre, c.x, w[P_CONV], B, T, s.Di);
    matmul_forward(c.dt_low, c.u, w[P_WX], NULL, BT, s.Di, s.R);
    matmul_forward(c.Bm, c.u, w[P_WX] + (size_t)s.R * s.Di, NULL, BT, s.Di, s.N);
    matmul_forward(c.Cm, c.u, w[P_WX] + (size_t)(s.R + s.N) * s.Di, NULL, BT, s.Di, s.N);
    matmul_forward(c.dt_pre, c.dt_low, w[P_WDT], w[P_BDT], BT, s.R, s.Di);
    selective_scan_forward(c.y, c.scan, c.u, c.dt_pre, w[P_ALOG], c.Bm, c.Cm, w[P_D], c.z,
                           m->spec->eigen == EIGEN_SIGNED, B, T, s.Di, s.N);
    matmul_forward(out, c.y, w[P_WOUT], NULL, BT, s.Di, d);
}

static void mamba_backward(real *dinp, real *const *dw, real *work, const real *dout,
                           const real *cache, const real *inp, const real *const *w,
                           const mixer_dims *m)
{
    const mamba_shape s = shape_of(m->spec, m->d);
    const int B = m->B, T = m->T, d = m->d, BT = B * T;
    const size_t nDi = (size_t)BT * s.Di, nN = (size_t)BT * s.N;
    const size_t x_rows_B = (size_t)s.R * s.Di, x_rows_C = (size_t)(s.R + s.N) * s.Di;
    mamba_cache c;
    mamba_work k;
    mamba_cache_layout(&c, (real *)cache, m);
    mamba_work_layout(&k, work, m);

    zero_reals(k.dy, nDi);
    matmul_backward(k.dy, dw[P_WOUT], NULL, dout, c.y, w[P_WOUT], BT, s.Di, d);

    zero_reals(k.du, nDi);
    zero_reals(k.ddt_pre, nDi);
    zero_reals(k.dz, nDi);
    zero_reals(k.dBm, nN);
    zero_reals(k.dCm, nN);
    selective_scan_backward(k.du, k.ddt_pre, dw[P_ALOG], k.dBm, k.dCm, dw[P_D], k.dz, k.scratch,
                            k.dy, c.scan, c.u, c.dt_pre, c.Bm, c.Cm, w[P_D], c.z,
                            m->spec->eigen == EIGEN_SIGNED, B, T, s.Di, s.N);

    zero_reals(k.ddt_low, (size_t)BT * s.R);
    matmul_backward(k.ddt_low, dw[P_WDT], dw[P_BDT], k.ddt_pre, c.dt_low, w[P_WDT], BT, s.R,
                    s.Di);
    matmul_backward(k.du, dw[P_WX], NULL, k.ddt_low, c.u, w[P_WX], BT, s.Di, s.R);
    matmul_backward(k.du, dw[P_WX] + x_rows_B, NULL, k.dBm, c.u, w[P_WX] + x_rows_B, BT, s.Di,
                    s.N);
    matmul_backward(k.du, dw[P_WX] + x_rows_C, NULL, k.dCm, c.u, w[P_WX] + x_rows_C, BT, s.Di,
                    s.N);

    zero_reals(k.dx, nDi);
    conv4_silu_backward(k.dx, dw[P_CONV], k.du, c.x, c.conv_pre, w[P_CONV], B, T, s.Di);
    matmul_backward(dinp, dw[P_WIN], NULL, k.dx, inp, w[P_WIN], BT, d, s.Di);
    matmul_backward(dinp, dw[P_WIN] + (size_t)s.Di * d, NULL, k.dz, inp,
                    w[P_WIN] + (size_t)s.Di * d, BT, d, s.Di);
}

static int mamba_cuda_fits(const model_spec *spec, int d, int max_len, char *err, size_t errlen)
{
    (void)max_len;
    return mixer_cuda_limit(err, errlen, "the state size model.d_state", shape_of(spec, d).N,
                            CUDA_SELECTIVE_MAX_N, "use a smaller d_state");
}

const mixer_impl mixer_mamba = {
    .params = mamba_params,
    .cache_len = mamba_cache_len,
    .work_len = mamba_work_len,
    .forward = mamba_forward,
    .backward = mamba_backward,
    .cuda_fits = mamba_cuda_fits,
};
