/* mixer_s4d.c: S4D (Gu et al. 2022), one complex diagonal SSM per channel of
 * the block input with N/2 modes (N = d_state): A = -exp(A_re_log) + i A_im
 * (S4D-Lin init: A_re = -1/2, A_im = pi n), zero-order hold with a learned
 * dt, y = 2 Re(C x_t) + D u_t; the fused checkpointed scan (ops.h).
 * `eigen` does not apply, as for lru: exp(dt A) is complex with phase
 * dt A_im, so negative eigenvalues are reachable already, and 2 a - 1 would
 * leave the unit disk for complex a. Being time-invariant, S4D cannot make
 * its transition depend on the input anyway, which parity needs. */
#include <math.h>

#include "../kernels/cuda_limits.h"
#include "mixer.h"
#include "ssm_init.h"

enum { P_LOG_DT, P_A_RE_LOG, P_A_IM, P_C, P_D, P_COUNT };

/* dt's range at init (MODELS.md, the s4 repository's dt_min and dt_max) */
#define DT_MIN 1e-3
#define DT_MAX 0.1

/* As the s4 repository's standalone S4D: log_dt uniform in [log dt_min,
 * log dt_max]; C complex normal (real and imaginary parts normal(0,
 * 1/sqrt(2))), stored (d, N) per channel as N/2 real parts then N/2
 * imaginary parts; D normal(0, 1). B = 1 (C absorbs it). None of these
 * takes weight decay: they are per-channel dynamics, not linear maps across
 * channels. */
static int s4d_params(param_decl out[MIXER_MAX_PARAMS], const model_spec *spec, int d)
{
    const int M = spec->d_state / 2;
    out[P_LOG_DT] = (param_decl){.name = "log_dt", .rows = d, .cols = 1, .init = INIT_CUSTOM,
                                 .init_value = init_uniform_range, .lo = log(DT_MIN),
                                 .hi = log(DT_MAX)};
    out[P_A_RE_LOG] = (param_decl){.name = "A_re_log", .rows = d, .cols = M,
                                   .init = INIT_CUSTOM, .init_value = init_constant,
                                   .lo = log(0.5)};
    out[P_A_IM] = (param_decl){.name = "A_im", .rows = d, .cols = M, .init = INIT_CUSTOM,
                               .init_value = init_pi_arange};
    out[P_C] = (param_decl){"C", d, 2 * M, INIT_NORMAL, sqrt(0.5), 0};
    out[P_D] = (param_decl){"D", d, 1, INIT_NORMAL, 1, 0};
    return P_COUNT;
}

static size_t s4d_cache_len(const mixer_dims *m)
{
    return s4d_scan_cache_len(m->B, m->T, m->d, m->spec->d_state / 2);
}

static size_t s4d_work_len(const mixer_dims *m)
{
    return s4d_scan_scratch_len(m->B, m->T, m->d, m->spec->d_state / 2);
}

static void s4d_forward(real *out, real *cache, real *work, const real *inp,
                        const real *const *w, const mixer_dims *m)
{
    // inp, out (B,T,d); cache: s4d_scan_cache_len
    s4d_scan_forward(out, cache, inp, w[P_LOG_DT], w[P_A_RE_LOG], w[P_A_IM], w[P_C], w[P_D],
                     m->B, m->T, m->d, m->spec->d_state / 2);
}

static void s4d_backward(real *dinp, real *const *dw, real *work, const real *dout,
                         const real *cache, const real *inp, const real *const *w,
                         const mixer_dims *m)
{
    // work: s4d_scan_scratch_len
    s4d_scan_backward(dinp, dw[P_LOG_DT], dw[P_A_RE_LOG], dw[P_A_IM], dw[P_C], dw[P_D], work,
                      dout, cache, inp, w[P_LOG_DT], w[P_A_RE_LOG], w[P_A_IM], w[P_C], w[P_D],
                      m->B, m->T, m->d, m->spec->d_state / 2);
}

static int s4d_cuda_fits(const model_spec *spec, int d, int max_len, char *err, size_t errlen)
{
    (void)d;
    (void)max_len;
    return mixer_cuda_limit(err, errlen, "the complex modes model.d_state / 2", spec->d_state / 2,
                            CUDA_S4D_MAX_MODES, "use a smaller d_state");
}

const mixer_impl mixer_s4d = {
    .params = s4d_params,
    .cache_len = s4d_cache_len,
    .work_len = s4d_work_len,
    .forward = s4d_forward,
    .backward = s4d_backward,
    .cuda_fits = s4d_cuda_fits,
};
