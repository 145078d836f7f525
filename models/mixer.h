/* mixer.h: the internal interface between the model and its sequence mixers
 * (one file each: mixer_lstm.c, mixer_deltanet.c, mixer_linear_attn.c,
 * mixer_attention.c). A mixer maps the normalised block input (B,T,d) to its
 * output (B,T,d) with ops from kernels/ops.h only. It declares its parameter
 * tensors as a table; the model owns every buffer and hands the mixer:
 *  - w / dw: its parameter tensors and their gradients, in declaration order;
 *  - cache: a per-layer region holding what the backward needs, written by the
 *    forward (cache_len reals at the run's maximum (B,T));
 *  - work: a region shared by all layers, free between calls, used for the
 *    forward's transient tensors and the backward's activation gradients
 *    (work_len reals at the maximum (B,T)).
 * Regions are carved with the cursor below; a mixer's layout function is the
 * single size table for both its length query (base NULL) and its pointers. */
#ifndef SB_MIXER_H
#define SB_MIXER_H

#include <stddef.h>
#include "../harness/spec.h"
#include "../kernels/ops.h"

#define MIXER_MAX_PARAMS 16

/* How a parameter tensor starts (see init_param in model.c). */
typedef enum {
    INIT_NORMAL,      /* normal(0, scale) */
    INIT_UNIFORM,     /* uniform(-scale, scale) */
    INIT_ONES,        /* norm weights */
    INIT_FORGET_BIAS, /* LSTM bias (4d): 0, except +1 on the forget slice [d, 2d) */
    /* element i = decl->init_value(decl, i, key): inits that depend on the
     * index or on a range [lo, hi] (lru, s4d, mamba, mamba2) */
    INIT_CUSTOM
} init_kind;

/* The INIT_CUSTOM fields come last and are set by name; the positional
 * initialisers of the other inits ({name, rows, cols, init, scale, decay})
 * leave them zero, as C specifies, so the warning about fields missing from
 * an initialiser is off wherever parameters are declared. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
typedef struct param_decl {
    const char *name;  /* name within its module, e.g. "W_q", "norm_o.weight" */
    int rows, cols;    /* cols = 1 for vectors */
    init_kind init;
    double scale;
    int decay;         /* 1: AdamW weight decay applies */
    /* INIT_CUSTOM: element i (row-major) from the tensor's stream key
     * (models/rng.h), with range arguments lo and hi */
    double (*init_value)(const struct param_decl *decl, size_t i, uint64_t key);
    double lo, hi;
} param_decl;

/* The shapes of one mixer call. */
typedef struct {
    const model_spec *spec;
    int d;             /* model width */
    int B, T;
} mixer_dims;

typedef struct {
    /* Writes the parameter declarations into out; returns how many. */
    int (*params)(param_decl out[MIXER_MAX_PARAMS], const model_spec *spec, int d);
    /* reals of the per-layer cache / of the shared work region at (B,T) */
    size_t (*cache_len)(const mixer_dims *m);
    size_t (*work_len)(const mixer_dims *m);
    /* out (B,T,d) = mixer(inp (B,T,d)); fills cache. out is not read again
     * by the backward (the model adds the residual into it in place). */
    void (*forward)(real *out, real *cache, real *work, const real *inp,
                    const real *const *w, const mixer_dims *m);
    /* dinp (B,T,d) += d out / d inp . dout; dw += parameter gradients. inp,
     * cache and w are those of the forward. */
    void (*backward)(real *dinp, real *const *dw, real *work, const real *dout,
                     const real *cache, const real *inp, const real *const *w,
                     const mixer_dims *m);
    /* Whether the CUDA kernels cover the mixer's sizes at width d and
     * sequences up to max_len (kernels/cuda_limits.h): 0, or -1 with err
     * saying which size, its limit and what to change. NULL: every size
     * (the spec has passed the model's own validation). */
    int (*cuda_fits)(const model_spec *spec, int d, int max_len, char *err, size_t errlen);
} mixer_impl;

/* For cuda_fits: 0 when value <= max, else -1 with err = "<what> = <value>,
 * but the CUDA kernels cover at most <max>; <fix>" (model_cuda_fits names
 * the mixer and the way out). */
int mixer_cuda_limit(char *err, size_t errlen, const char *what, int value, int max,
                     const char *fix);
/* The check of the mixers whose scan has head sizes K = V = d / heads
 * (deltanet, gated_deltanet, linear_attn, retnet, mlstm: scan_delta). */
int mixer_cuda_fits_heads(const model_spec *spec, int d, int max_len, char *err, size_t errlen);

extern const mixer_impl mixer_lstm;
extern const mixer_impl mixer_deltanet;
extern const mixer_impl mixer_linear_attn;
extern const mixer_impl mixer_attention;
extern const mixer_impl mixer_lru;
extern const mixer_impl mixer_s4d;
extern const mixer_impl mixer_mamba;
extern const mixer_impl mixer_mamba2;
extern const mixer_impl mixer_elman;
extern const mixer_impl mixer_gru;
extern const mixer_impl mixer_slstm;
extern const mixer_impl mixer_mingru;
extern const mixer_impl mixer_minlstm;
extern const mixer_impl mixer_hgrn;
extern const mixer_impl mixer_retnet;
extern const mixer_impl mixer_gla;
extern const mixer_impl mixer_gated_deltanet;
extern const mixer_impl mixer_mlstm;

/* Linear weights start at normal(0, INIT_STD) (GPT-2 / fla); projections
 * that write into the residual stream are further divided by the square
 * root of the number of residual branches (GPT-2's rescaling), so the
 * stream's variance at init does not grow with depth. */
#define INIT_STD 0.02
double init_std_residual(const model_spec *spec);

/* ---- region carving --------------------------------------------------- */
/* Every tensor starts on a 64-byte boundary (16 floats) for vector loads. */
#define CARVE_ALIGN 16

typedef struct {
    real *base;   /* NULL: only count */
    size_t used;  /* reals taken so far */
} carve_cursor;

static inline real *carve(carve_cursor *c, size_t n)
{
    real *p = c->base ? c->base + c->used : NULL;
    c->used += (n + CARVE_ALIGN - 1) / CARVE_ALIGN * CARVE_ALIGN;
    return p;
}

/* x (n) = 0. Gradient buffers must be zeroed before the *_backward ops add
 * into them; ops.h has no fill op, so this scales by 0 (buffers start
 * zeroed and only ever hold finite values in a healthy run). */
static inline void zero_reals(real *x, size_t n)
{
    scale_inplace(x, n, 0);
}

/* x (n) = 1, exactly: elu(0) + 1. */
static inline void fill_ones(real *x, size_t n)
{
    zero_reals(x, n);
    act_forward(x, x, n, ACT_ELU1);
}

#endif
