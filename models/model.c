/* model.c: the model: embedding (+ learned positions) -> blocks of pre-norm
 * residual mixer and MLP -> final RMSNorm -> head; its tensor table, arenas,
 * initialisation, forward (mean cross-entropy) and backward. */
#include "model_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/cuda_limits.h"
#include "../kernels/ops.h"
#include "mixer.h"
#include "rng.h"

/* Training-step graphs a model keeps: the first this many distinct (B,T)
 * of a run's training batches are captured; further shapes run
 * uncaptured. */
#define MODEL_GRAPHS 32
typedef struct {
    int B, T, precision;            // the shape and what the capture fixed
    double beta1, beta2, eps, weight_decay, clip;
    ops_graph *graph;
} step_graph;

/* One residual block's tensors. Parameter pointers index the params arena,
 * gradient pointers the grads arena; activations live in the acts arena at
 * the model's (max_batch, max_len) and are used as prefixes for smaller
 * (B,T) (row-major (B,T,...) with B*T rows). */
typedef struct {
    const mixer_impl *mixer;
    const real *w[MIXER_MAX_PARAMS];  // the mixer's tensors
    real *dw[MIXER_MAX_PARAMS];
    const real *norm1, *norm2;        // (d)
    real *dnorm1, *dnorm2;
    const real *mlp_in_w;             // swiglu W_up (2h,d) | gelu W_1 (h,d)
    const real *mlp_out_w;            // W_down | W_2 (d,h)
    real *d_mlp_in_w, *d_mlp_out_w;
    real *norm1_out, *rstd1;          // (B,T,d), (B,T)
    real *mixer_cache;                // mixer->cache_len
    real *res_mid;                    // (B,T,d) stream after the mixer
    real *norm2_out, *rstd2;          // (B,T,d), (B,T)
    real *mlp_pre;                    // (B,T,2h) [gate|up] | (B,T,h) before GELU
    real *mlp_act;                    // (B,T,h)
    real *res_out;                    // (B,T,d) stream after the block
} block;

struct model {
    model_config cfg;
    ops_backend_kind backend;       // the arenas' memory: the backend current at creation
    int d, hidden, layers;          // hidden = mlp_ratio * d (0 with mlp: none)
    size_t n_params;
    int n_tensors;
    model_tensor *tensors;          // (n_tensors)
    block *blocks;                  // (layers)
    real *params, *grads;           // (n_params) each
    real *adam_m, *adam_v;          // (n_params) each, one allocation
    real *acts, *work;              // activation and activation-gradient arenas
    int *tokens, *targets;          // (max_batch, max_len): the last forward's inputs
    int *host_targets;              // (max_batch, max_len) host staging of targets
    int *pred;                      // (max_batch, max_len) argmax per position (model_predictions)
    int *host_pred;                 // its host copy on the GPU (NULL on the CPU)
    step_guard *guard;              // (1) the optimiser step's scalars (model_step_read)
    int step_count;                 // scored positions of the last step's forward
    step_scalars *scalars;          // (1) the step's lr, bias corrections, dloss, step (ops.h)
    step_scalars host_scalars;      // what the host wrote there last

    /* Training steps captured as graphs (model_train_step), one per shape
     * and set of constant arguments (graph NULL: seen once, the warm-up,
     * not captured yet); graphs_off: not on this backend, not
     * wanted (STATEBENCH_CUDA_GRAPH=0), or a capture failed (graph_failure
     * says why; model_graph_failure hands it out once: graph_failure_told). */
    step_graph graphs[MODEL_GRAPHS];
    int n_graphs, graphs_off, graph_failure_told;
    char graph_failure[256];

    /* A model on the GPU hands out host copies (model_params, model_grads,
     * model_adam_m, model_adam_v): host_state holds params | grads | m | v,
     * downloaded on the first such call; host_view says the copies are the
     * newest (they may have been written), and the next forward, backward
     * or optimiser step uploads them first. host_out holds logits | probs,
     * downloaded on each call of model_logits / model_probs. Both NULL on
     * the CPU, where the arenas are host memory. */
    real *host_state, *host_out;
    int host_view;

    const real *embed, *pos, *norm_f, *head; // (V_in,d), (max_len,d) or NULL, (d), (V_out,d)
    real *d_embed, *d_pos, *d_norm_f, *d_head;

    real *embed_out;                // (B,T,d) the stream entering block 0
    real *norm_f_out, *rstd_f;      // (B,T,d), (B,T)
    real *logits, *probs;           // (B,T,V_out)
    real *losses;                   // (B,T)
    real *ones;                     // (max_batch * max_len) all 1: sums losses by a matmul
    real *loss_sum;                 // (1)

    real *dres;                     // (B,T,d) gradient of the residual stream
    real *dnorm;                    // (B,T,d) gradient of a norm's output
    real *dlogits;                  // (B,T,V_out)
    real *d_mlp_pre, *d_mlp_act;    // like mlp_pre, mlp_act
    real *mixer_work;               // max over layers of mixer->work_len

    int B, T, count;                // the last forward's shape and scored count
};

static const mixer_impl *const mixer_impls[MIXER__COUNT] = {
    [MIXER_LSTM] = &mixer_lstm,
    [MIXER_DELTANET] = &mixer_deltanet,
    [MIXER_LINEAR_ATTN] = &mixer_linear_attn,
    [MIXER_ATTENTION] = &mixer_attention,
    [MIXER_ELMAN] = &mixer_elman,
    [MIXER_GRU] = &mixer_gru,
    [MIXER_SLSTM] = &mixer_slstm,
    [MIXER_MINGRU] = &mixer_mingru,
    [MIXER_MINLSTM] = &mixer_minlstm,
    [MIXER_HGRN] = &mixer_hgrn,
    [MIXER_LRU] = &mixer_lru,
    [MIXER_S4D] = &mixer_s4d,
    [MIXER_MAMBA] = &mixer_mamba,
    [MIXER_MAMBA2] = &mixer_mamba2,
    [MIXER_RETNET] = &mixer_retnet,
    [MIXER_GLA] = &mixer_gla,
    [MIXER_GATED_DELTANET] = &mixer_gated_deltanet,
    [MIXER_MLSTM] = &mixer_mlstm,
};

int mixer_available(int mixer)
{
    return mixer >= 0 && mixer < MIXER__COUNT && mixer_impls[mixer] != NULL;
}

/* The mixers whose every op has a CUDA version (kernels/cuda/ops_cuda.h):
 * on the CUDA backend, model creation refuses the others up front. */
static const unsigned char mixer_cuda_ready[MIXER__COUNT] = {
    [MIXER_LSTM] = 1, [MIXER_DELTANET] = 1, [MIXER_LINEAR_ATTN] = 1, [MIXER_ATTENTION] = 1,
    [MIXER_MAMBA] = 1, [MIXER_MAMBA2] = 1, [MIXER_GLA] = 1, [MIXER_GATED_DELTANET] = 1,
    [MIXER_RETNET] = 1, [MIXER_MLSTM] = 1,
    [MIXER_ELMAN] = 1, [MIXER_GRU] = 1, [MIXER_SLSTM] = 1, [MIXER_MINGRU] = 1,
    [MIXER_MINLSTM] = 1, [MIXER_HGRN] = 1, [MIXER_LRU] = 1, [MIXER_S4D] = 1,
};

int mixer_on_cuda(int mixer)
{
    return mixer_available(mixer) && mixer_cuda_ready[mixer];
}

int mixer_cuda_limit(char *err, size_t errlen, const char *what, int value, int max,
                     const char *fix)
{
    if (value <= max) return 0;
    snprintf(err, errlen, "%s = %d, but the CUDA kernels cover at most %d; %s", what, value, max,
             fix);
    return -1;
}

int mixer_cuda_fits_heads(const model_spec *spec, int d, int max_len, char *err, size_t errlen)
{
    (void)max_len;
    return mixer_cuda_limit(err, errlen, "the head size d_model/heads", d / spec->heads,
                            CUDA_SCAN_DELTA_MAX_KV, "use more heads (model.heads)");
}

static int validate(const model_config *c, char *err, size_t errlen);

/* model_cuda_fits for a config that has passed validate (model_create
 * asks this directly, having validated already). */
static int cuda_fits_valid(const model_config *cfg, char *err, size_t errlen)
{
    const model_spec *s = &cfg->spec;
    for (int i = 0; i < s->n_mixer; i++) {
        const int mx = s->mixer[i];
        if (!mixer_cuda_ready[mx]) {
            snprintf(err, errlen, "model.mixer: %s has no CUDA implementation; run it with --device cpu",
                     mixer_name(mx));
            return -1;
        }
        const mixer_impl *impl = mixer_impls[mx];
        char why[256];
        if (impl->cuda_fits && impl->cuda_fits(s, s->d_model, cfg->max_len, why, sizeof why) != 0) {
            snprintf(err, errlen, "model.mixer %s on the GPU: %s, or run it with --device cpu",
                     mixer_name(mx), why);
            return -1;
        }
    }
    return 0;
}

int model_cuda_fits(const model_config *cfg, char *err, size_t errlen)
{
    return validate(cfg, err, errlen) != 0 ? -1 : cuda_fits_valid(cfg, err, errlen);
}

static int layer_mixer(const model_spec *s, int layer)
{
    return s->mixer[layer % s->n_mixer];
}

double init_std_residual(const model_spec *spec)
{
    const int branches = spec->layers * (spec->mlp == MLP_NONE ? 1 : 2);
    return INIT_STD / sqrt((double)branches);
}

/* Checks what the model itself needs of the config; 0 or -1 + err. */
static int validate(const model_config *c, char *err, size_t errlen)
{
    const model_spec *s = &c->spec;
    if (s->n_mixer < 1 || s->n_mixer > SB_MAX_PATTERN) {
        snprintf(err, errlen, "model.mixer: %d mixers in the pattern, allowed 1..%d",
                 s->n_mixer, SB_MAX_PATTERN);
        return -1;
    }
    if (s->layers < 1 || s->d_model < 1) {
        snprintf(err, errlen, "model: layers %d and d_model %d must be >= 1", s->layers,
                 s->d_model);
        return -1;
    }
    if (c->vocab_in < 1 || c->vocab_out < 1 || c->max_batch < 1 || c->max_len < 1) {
        snprintf(err, errlen, "model: vocab_in %d, vocab_out %d, max_batch %d, max_len %d "
                 "must be >= 1", c->vocab_in, c->vocab_out, c->max_batch, c->max_len);
        return -1;
    }
    if (s->mlp != MLP_NONE && s->mlp_ratio < 1) {
        snprintf(err, errlen, "model.mlp_ratio: %d, allowed >= 1", s->mlp_ratio);
        return -1;
    }
    for (int i = 0; i < s->n_mixer; i++) {
        const int mx = s->mixer[i];
        if (mx < 0 || mx >= MIXER__COUNT) {
            snprintf(err, errlen, "model.mixer: unknown mixer id %d", mx);
            return -1;
        }
        if (!mixer_impls[mx]) {
            snprintf(err, errlen, "model.mixer: %s is not implemented in this build", mixer_name(mx));
            return -1;
        }
        if (mx == MIXER_LSTM || mx == MIXER_ELMAN || mx == MIXER_GRU || mx == MIXER_MINGRU ||
            mx == MIXER_MINLSTM || mx == MIXER_HGRN || mx == MIXER_LRU || mx == MIXER_S4D ||
            mx == MIXER_MAMBA)
            continue; // no heads
        if (s->heads < 1 || s->d_model % s->heads != 0) {
            snprintf(err, errlen, "model.heads: %d must divide d_model %d (mixer %s)",
                     s->heads, s->d_model, mixer_name(mx));
            return -1;
        }
        if (((mx == MIXER_ATTENTION && s->pos == POS_ROPE) || mx == MIXER_RETNET) &&
            (s->d_model / s->heads) % 2) {
            snprintf(err, errlen, "model: rope needs an even head size, d_model/heads = %d",
                     s->d_model / s->heads);
            return -1;
        }
    }
    return 0;
}

/* ---- tensor table ------------------------------------------------------ */

static void add_tensor(model_tensor *t, param_decl *init, int *n, size_t *offset,
                       const param_decl *decl, const char *prefix)
{
    if (t) {
        model_tensor *e = &t[*n];
        snprintf(e->name, sizeof e->name, "%s%s", prefix, decl->name);
        e->offset = *offset;
        e->rows = decl->rows;
        e->cols = decl->cols;
        e->size = (size_t)decl->rows * decl->cols;
        e->decay = decl->decay;
        init[*n] = *decl;
    }
    *offset += (size_t)decl->rows * decl->cols;
    (*n)++;
}

/* Lists every parameter tensor in arena order into t and its init into
 * init (both may be NULL to count); returns the number of tensors and the
 * total reals in *n_params. Weight decay applies to the linear maps' weight
 * matrices only; not to embeddings and positions (a row is updated only
 * when its token or position occurs, but would decay at every step), nor to
 * conv filters, norm weights and biases (per-channel scales and offsets). */
static int build_table(const model_config *c, model_tensor *t, param_decl *init,
                       size_t *n_params)
{
    const model_spec *s = &c->spec;
    const int d = s->d_model, h = s->mlp_ratio * d;
    const double out_std = init_std_residual(s);
    const param_decl embed = {"embed.W", c->vocab_in, d, INIT_NORMAL, INIT_STD, 0};
    const param_decl pos = {"embed.pos", c->max_len, d, INIT_NORMAL, INIT_STD, 0};
    const param_decl norm1 = {"norm1.weight", d, 1, INIT_ONES, 0, 0};
    const param_decl norm2 = {"norm2.weight", d, 1, INIT_ONES, 0, 0};
    const param_decl mlp_swiglu[2] = {{"mlp.W_up", 2 * h, d, INIT_NORMAL, INIT_STD, 1},
                                      {"mlp.W_down", d, h, INIT_NORMAL, out_std, 1}};
    const param_decl mlp_gelu[2] = {{"mlp.W_1", h, d, INIT_NORMAL, INIT_STD, 1},
                                    {"mlp.W_2", d, h, INIT_NORMAL, out_std, 1}};
    const param_decl norm_f = {"norm_f.weight", d, 1, INIT_ONES, 0, 0};
    const param_decl head = {"head.W", c->vocab_out, d, INIT_NORMAL, INIT_STD, 1};
    int n = 0;
    size_t off = 0;
    add_tensor(t, init, &n, &off, &embed, "");
    if (s->pos == POS_LEARNED) add_tensor(t, init, &n, &off, &pos, "");
    for (int l = 0; l < s->layers; l++) {
        char block_prefix[32], mixer_prefix[40];
        snprintf(block_prefix, sizeof block_prefix, "blocks.%d.", l);
        snprintf(mixer_prefix, sizeof mixer_prefix, "blocks.%d.mixer.", l);
        add_tensor(t, init, &n, &off, &norm1, block_prefix);
        param_decl mix[MIXER_MAX_PARAMS];
        const int nm = mixer_impls[layer_mixer(s, l)]->params(mix, s, d);
        for (int i = 0; i < nm; i++) add_tensor(t, init, &n, &off, &mix[i], mixer_prefix);
        if (s->mlp == MLP_NONE) continue;
        const param_decl *mlp = s->mlp == MLP_SWIGLU ? mlp_swiglu : mlp_gelu;
        add_tensor(t, init, &n, &off, &norm2, block_prefix);
        add_tensor(t, init, &n, &off, &mlp[0], block_prefix);
        add_tensor(t, init, &n, &off, &mlp[1], block_prefix);
    }
    add_tensor(t, init, &n, &off, &norm_f, "");
    add_tensor(t, init, &n, &off, &head, "");
    *n_params = off;
    return n;
}

static void init_param(real *p, const param_decl *decl, uint64_t key)
{
    const size_t n = (size_t)decl->rows * decl->cols;
    for (size_t i = 0; i < n; i++) {
        double v = 0;
        switch (decl->init) {
        case INIT_NORMAL: v = decl->scale * rng_normal(key, i); break;
        case INIT_UNIFORM: v = decl->scale * (2 * rng_uniform(key, i) - 1); break;
        case INIT_ONES: v = 1; break;
        case INIT_FORGET_BIAS: v = i >= n / 4 && i < n / 2 ? 1 : 0; break;
        case INIT_CUSTOM: v = decl->init_value(decl, i, key); break;
        }
        p[i] = (real)v;
    }
}

/* ---- activation and work layouts ----------------------------------------- */

/* Carves the acts arena (base NULL: counts) at (max_batch, max_len); blocks
 * may be NULL when only counting. Returns its length in reals. */
static size_t layout_acts(model *m, block *blocks, real *base)
{
    const model_config *c = &m->cfg;
    const size_t N = (size_t)c->max_batch * c->max_len, d = (size_t)m->d;
    const size_t h = (size_t)m->hidden;
    const int swiglu = c->spec.mlp == MLP_SWIGLU;
    carve_cursor cur = {base, 0};
    m->embed_out = carve(&cur, N * d);
    for (int l = 0; l < m->layers; l++) {
        block tmp, *b = blocks ? &blocks[l] : &tmp;
        const mixer_dims dims = {&c->spec, m->d, c->max_batch, c->max_len};
        b->norm1_out = carve(&cur, N * d);
        b->rstd1 = carve(&cur, N);
        b->mixer_cache = carve(&cur, mixer_impls[layer_mixer(&c->spec, l)]->cache_len(&dims));
        b->res_mid = carve(&cur, N * d);
        if (c->spec.mlp == MLP_NONE) {
            b->norm2_out = b->rstd2 = b->mlp_pre = b->mlp_act = NULL;
            b->res_out = b->res_mid;
            continue;
        }
        b->norm2_out = carve(&cur, N * d);
        b->rstd2 = carve(&cur, N);
        b->mlp_pre = carve(&cur, N * (swiglu ? 2 * h : h));
        b->mlp_act = carve(&cur, N * h);
        b->res_out = carve(&cur, N * d);
    }
    m->norm_f_out = carve(&cur, N * d);
    m->rstd_f = carve(&cur, N);
    m->logits = carve(&cur, N * c->vocab_out);
    m->probs = carve(&cur, N * c->vocab_out);
    m->losses = carve(&cur, N);
    m->ones = carve(&cur, N);
    m->loss_sum = carve(&cur, 1);
    return cur.used;
}

/* Carves the work (activation gradient) arena, shared by all layers. */
static size_t layout_work(model *m, real *base)
{
    const model_config *c = &m->cfg;
    const size_t N = (size_t)c->max_batch * c->max_len, d = (size_t)m->d;
    const size_t h = (size_t)m->hidden;
    const mixer_dims dims = {&c->spec, m->d, c->max_batch, c->max_len};
    size_t mixer_work = 0;
    for (int l = 0; l < m->layers; l++) {
        const size_t w = mixer_impls[layer_mixer(&c->spec, l)]->work_len(&dims);
        if (w > mixer_work) mixer_work = w;
    }
    carve_cursor cur = {base, 0};
    m->dres = carve(&cur, N * d);
    m->dnorm = carve(&cur, N * d);
    m->dlogits = carve(&cur, N * c->vocab_out);
    m->d_mlp_pre = carve(&cur, N * (c->spec.mlp == MLP_SWIGLU ? 2 * h : h));
    m->d_mlp_act = carve(&cur, N * h);
    m->mixer_work = carve(&cur, mixer_work);
    return cur.used;
}

/* Sizes of everything model_create allocates, from the config alone. */
typedef struct {
    size_t n_params, acts, work;   // reals
    int n_tensors;
} model_sizes;

static model_sizes sizes_of(const model_config *c)
{
    model shape = {.cfg = *c};
    shape.d = c->spec.d_model;
    shape.layers = c->spec.layers;
    shape.hidden = c->spec.mlp == MLP_NONE ? 0 : c->spec.mlp_ratio * c->spec.d_model;
    model_sizes z;
    z.n_tensors = build_table(c, NULL, NULL, &z.n_params);
    z.acts = layout_acts(&shape, NULL, NULL);
    z.work = layout_work(&shape, NULL);
    return z;
}

static size_t total_bytes(const model_config *c, const model_sizes *z)
{
    const size_t tokens = (size_t)c->max_batch * c->max_len;
    return sizeof(real) * (4 * z->n_params + z->acts + z->work) + 3 * tokens * sizeof(int) + sizeof(step_guard) +
           sizeof(step_scalars) +
           (size_t)z->n_tensors * sizeof(model_tensor) + (size_t)c->spec.layers * sizeof(block) +
           sizeof(model);
}

/* The bf16 gemms' operand scratch (kernels/cuda/dense.cu, cuda_common.cu):
 * 2 slots, each holding one operand at a time, at most the largest weight
 * or tokens x one of its sides (the embedding tables are looked up, never
 * multiplied). A slot grows by doubling and keeps the buffers it replaced
 * for the graphs captured with them, so it holds less than 4 times its
 * largest operand; 2 bytes a value. 0 when the table cannot be built. */
static size_t bf16_scratch_bytes(const model_config *c, const model_sizes *z)
{
    model_tensor *t = calloc((size_t)z->n_tensors, sizeof *t);
    param_decl *init = calloc((size_t)z->n_tensors, sizeof *init);
    size_t largest = 0, n_params = 0;
    const size_t tokens = (size_t)c->max_batch * c->max_len;
    if (t && init) {
        build_table(c, t, init, &n_params);
        for (int i = 0; i < z->n_tensors; i++) {
            if (t[i].cols < 2 || !strncmp(t[i].name, "embed.", 6)) continue;
            const size_t side = (size_t)(t[i].rows > t[i].cols ? t[i].rows : t[i].cols);
            const size_t most = t[i].size > tokens * side ? t[i].size : tokens * side;
            if (most > largest) largest = most;
        }
    }
    free(t);
    free(init);
    return 2 * 4 * largest * 2;
}

/* 0 for a config model_create would refuse (it says why). */
size_t model_memory_estimate(const model_config *cfg)
{
    char err[8];
    if (validate(cfg, err, sizeof err)) return 0;
    const model_sizes z = sizes_of(cfg);
    return total_bytes(cfg, &z) + (cfg->bf16 ? bf16_scratch_bytes(cfg, &z) : 0);
}

/* ---- create / free ------------------------------------------------------- */

/* Backend memory, 64-byte aligned, zeroed: buffers must start finite (see
 * zero_reals). */
static real *alloc_reals(size_t n)
{
    return ops_alloc(n * sizeof(real));
}

/* Host memory, zeroed, for a GPU model's host copies. */
static real *alloc_host_reals(size_t n)
{
    return calloc(n ? n : 1, sizeof(real));
}

/* The model's arenas are its backend's memory: using it on another backend
 * would hand device pointers to the CPU or the reverse. */
static void check_backend(const model *m, const char *what)
{
    if (ops_get_backend() != m->backend) {
        fprintf(stderr, "statebench: %s: the model was created on the %s backend, the current one is %s\n",
                what, m->backend == OPS_CUDA ? "CUDA" : "CPU", ops_get_backend() == OPS_CUDA ? "CUDA" : "CPU");
        exit(1);
    }
}

/* A GPU model's host copies of params | grads | m | v: coherent on return
 * and the newest copy until the next device_state call. */
static real *host_state(model *m)
{
    if (!m->host_state) return NULL;
    if (!m->host_view) {
        check_backend(m, "reading the parameters");
        const size_t n = m->n_params;
        ops_download(m->host_state, m->params, n * sizeof(real));
        ops_download(m->host_state + n, m->grads, n * sizeof(real));
        ops_download(m->host_state + 2 * n, m->adam_m, 2 * n * sizeof(real));
        m->host_view = 1;
    }
    return m->host_state;
}

/* Makes the device arenas the newest copy again (uploads what the host
 * copies may have changed); every computing entry point calls it. */
static void device_state(model *m)
{
    check_backend(m, "computing");
    if (!m->host_view) return;
    const size_t n = m->n_params;
    ops_upload(m->params, m->host_state, n * sizeof(real));
    ops_upload(m->grads, m->host_state + n, n * sizeof(real));
    ops_upload(m->adam_m, m->host_state + 2 * n, 2 * n * sizeof(real));
    m->host_view = 0;
}

/* Points p and g at tensor *i of the params and grads arenas; next tensor. */
static void bind_next(const model *m, int *i, const real **p, real **g)
{
    *p = m->params + m->tensors[*i].offset;
    *g = m->grads + m->tensors[*i].offset;
    (*i)++;
}

/* Points the blocks' and the model's parameter and gradient pointers into
 * the arenas, in build_table's order. */
static void bind_params(model *m)
{
    const model_spec *s = &m->cfg.spec;
    int i = 0;
    bind_next(m, &i, &m->embed, &m->d_embed);
    m->pos = m->d_pos = NULL;
    if (s->pos == POS_LEARNED) bind_next(m, &i, &m->pos, &m->d_pos);
    for (int l = 0; l < m->layers; l++) {
        block *b = &m->blocks[l];
        param_decl mix[MIXER_MAX_PARAMS];
        b->mixer = mixer_impls[layer_mixer(s, l)];
        bind_next(m, &i, &b->norm1, &b->dnorm1);
        const int nm = b->mixer->params(mix, s, m->d);
        for (int j = 0; j < nm; j++) bind_next(m, &i, &b->w[j], &b->dw[j]);
        if (s->mlp == MLP_NONE) continue;
        bind_next(m, &i, &b->norm2, &b->dnorm2);
        bind_next(m, &i, &b->mlp_in_w, &b->d_mlp_in_w);
        bind_next(m, &i, &b->mlp_out_w, &b->d_mlp_out_w);
    }
    bind_next(m, &i, &m->norm_f, &m->d_norm_f);
    bind_next(m, &i, &m->head, &m->d_head);
}

model *model_create(const model_config *cfg, uint64_t seed, char *err, size_t errlen)
{
    if (validate(cfg, err, errlen)) return NULL;
    if (ops_get_backend() == OPS_CUDA && cuda_fits_valid(cfg, err, errlen)) return NULL;
    const model_sizes z = sizes_of(cfg);
    const size_t tokens = (size_t)cfg->max_batch * cfg->max_len;
    model *m = calloc(1, sizeof *m);
    param_decl *init = NULL;
    if (!m) goto oom;
    m->cfg = *cfg;
    m->backend = ops_get_backend();
    m->d = cfg->spec.d_model;
    m->layers = cfg->spec.layers;
    m->hidden = cfg->spec.mlp == MLP_NONE ? 0 : cfg->spec.mlp_ratio * m->d;
    m->n_params = z.n_params;
    m->n_tensors = z.n_tensors;
    m->tensors = calloc((size_t)z.n_tensors, sizeof *m->tensors);
    init = calloc((size_t)z.n_tensors, sizeof *init);
    m->blocks = calloc((size_t)m->layers, sizeof *m->blocks);
    m->params = alloc_reals(z.n_params);
    m->grads = alloc_reals(z.n_params);
    m->adam_m = alloc_reals(2 * z.n_params);
    m->acts = alloc_reals(z.acts);
    m->work = alloc_reals(z.work);
    m->tokens = ops_alloc(tokens * sizeof *m->tokens);
    m->targets = ops_alloc(tokens * sizeof *m->targets);
    m->host_targets = calloc(tokens, sizeof *m->host_targets);
    m->pred = ops_alloc(tokens * sizeof *m->pred);
    m->guard = ops_alloc(sizeof *m->guard);
    m->scalars = ops_alloc(sizeof *m->scalars);
    const char *graphs = getenv("STATEBENCH_CUDA_GRAPH");
    m->graphs_off = m->backend != OPS_CUDA || (graphs && !strcmp(graphs, "0"));
    if (m->backend == OPS_CUDA) {
        m->host_state = alloc_host_reals(4 * z.n_params);
        m->host_out = alloc_host_reals(2 * tokens * (size_t)cfg->vocab_out);
        m->host_pred = calloc(tokens, sizeof *m->host_pred);
    }
    if (!m->tensors || !init || !m->blocks || !m->params || !m->grads || !m->adam_m ||
        !m->acts || !m->work || !m->tokens || !m->targets || !m->host_targets || !m->pred || !m->guard ||
        !m->scalars || (m->backend == OPS_CUDA && (!m->host_state || !m->host_out || !m->host_pred)))
        goto oom;
    m->adam_v = m->adam_m + z.n_params;

    /* initialised on the host, the same on every backend, then uploaded */
    size_t n_params;
    build_table(cfg, m->tensors, init, &n_params);
    real *init_to = m->host_state ? m->host_state : m->params;
    for (int i = 0; i < m->n_tensors; i++)
        init_param(init_to + m->tensors[i].offset, &init[i], rng_key(seed, m->tensors[i].name));
    if (m->host_state) ops_upload(m->params, m->host_state, z.n_params * sizeof(real));
    free(init);
    bind_params(m);
    layout_acts(m, m->blocks, m->acts);
    layout_work(m, m->work);
    fill_ones(m->ones, tokens);
    return m;

oom:
    snprintf(err, errlen, "model: out of memory allocating %.1f MiB (params, grads, "
             "optimiser, activations)", (double)total_bytes(cfg, &z) / (1 << 20));
    free(init);
    model_free(m);
    return NULL;
}

void model_free(model *m)
{
    if (!m) return;
    check_backend(m, "model_free");
    free(m->tensors);
    free(m->blocks);
    ops_free(m->params);
    ops_free(m->grads);
    ops_free(m->adam_m);
    ops_free(m->acts);
    ops_free(m->work);
    ops_free(m->tokens);
    ops_free(m->targets);
    free(m->host_targets);
    ops_free(m->pred);
    free(m->host_pred);
    ops_free(m->guard);
    ops_free(m->scalars);
    for (int i = 0; i < m->n_graphs; i++) ops_graph_free(m->graphs[i].graph);
    free(m->host_state);
    free(m->host_out);
    free(m);
}

size_t model_num_params(const model *m) { return m->n_params; }
int model_num_tensors(const model *m) { return m->n_tensors; }

/* Host views: the arenas themselves on the CPU, coherent copies on the GPU. */
real *model_params(model *m) { return m->host_state ? host_state(m) : m->params; }
real *model_grads(model *m) { return m->host_state ? host_state(m) + m->n_params : m->grads; }
real *model_adam_m(model *m) { return m->host_state ? host_state(m) + 2 * m->n_params : m->adam_m; }
real *model_adam_v(model *m) { return m->host_state ? host_state(m) + 3 * m->n_params : m->adam_v; }

/* The arenas in backend memory, for the optimiser's ops. */
real *model_arena_params(model *m) { device_state(m); return m->params; }
real *model_arena_grads(model *m) { device_state(m); return m->grads; }
real *model_arena_adam_m(model *m) { device_state(m); return m->adam_m; }
real *model_arena_adam_v(model *m) { device_state(m); return m->adam_v; }

/* The last forward's (B,T,V_out) rows, downloaded on the GPU. */
static const real *host_rows(const model *m, const real *rows, real *copy)
{
    if (!m->host_out) return rows;
    check_backend(m, "reading the outputs");
    ops_download(copy, rows, (size_t)m->B * m->T * m->cfg.vocab_out * sizeof(real));
    return copy;
}
const real *model_logits(const model *m) { return host_rows(m, m->logits, m->host_out); }
const real *model_probs(const model *m)
{
    const size_t max_rows = (size_t)m->cfg.max_batch * m->cfg.max_len;
    return host_rows(m, m->probs, m->host_out ? m->host_out + max_rows * m->cfg.vocab_out : NULL);
}

const model_tensor *model_tensor_at(const model *m, int i)
{
    return i >= 0 && i < m->n_tensors ? &m->tensors[i] : NULL;
}

/* ---- forward / backward -------------------------------------------------- */

static void mlp_forward(model *m, block *b, int N)
{
    const int d = m->d, h = m->hidden;
    rmsnorm_forward(b->norm2_out, b->rstd2, b->res_mid, b->norm2, N, d);
    if (m->cfg.spec.mlp == MLP_SWIGLU) {
        matmul_forward(b->mlp_pre, b->norm2_out, b->mlp_in_w, NULL, N, d, 2 * h);
        swiglu_forward(b->mlp_act, b->mlp_pre, N, h);
    } else {
        matmul_forward(b->mlp_pre, b->norm2_out, b->mlp_in_w, NULL, N, d, h);
        act_forward(b->mlp_act, b->mlp_pre, (size_t)N * h, ACT_GELU);
    }
    matmul_forward(b->res_out, b->mlp_act, b->mlp_out_w, NULL, N, h, d);
    residual_add(b->res_out, b->res_mid, (size_t)N * d);
}

/* dres (the gradient of res_out on entry) becomes that of res_mid. */
static void mlp_backward(model *m, block *b, int N)
{
    const int d = m->d, h = m->hidden;
    const int swiglu = m->cfg.spec.mlp == MLP_SWIGLU;
    const int width = swiglu ? 2 * h : h;
    zero_reals(m->d_mlp_act, (size_t)N * h);
    matmul_backward(m->d_mlp_act, b->d_mlp_out_w, NULL, m->dres, b->mlp_act, b->mlp_out_w, N, h, d);
    zero_reals(m->d_mlp_pre, (size_t)N * width);
    if (swiglu)
        swiglu_backward(m->d_mlp_pre, m->d_mlp_act, b->mlp_pre, N, h);
    else
        act_backward(m->d_mlp_pre, m->d_mlp_act, b->mlp_pre, (size_t)N * h, ACT_GELU);
    zero_reals(m->dnorm, (size_t)N * d);
    matmul_backward(m->dnorm, b->d_mlp_in_w, NULL, m->d_mlp_pre, b->norm2_out, b->mlp_in_w, N,
                    d, width);
    rmsnorm_backward(m->dres, b->dnorm2, m->dnorm, b->res_mid, b->norm2, b->rstd2, N, d);
}

/* Uploads the batch into the model's fixed token and target buffers and
 * counts its scored positions into m->count. */
static void stage_batch(model *m, const int *x, const int *y, int B, int T)
{
    const int N = B * T;
    m->B = B;
    m->T = T;
    ops_upload(m->tokens, x, (size_t)N * sizeof *x);
    if (!y) { // inference: nothing scored (the probabilities still fill every row)
        for (int i = 0; i < N; i++) m->host_targets[i] = -1;
        y = m->host_targets;
    }
    ops_upload(m->targets, y, (size_t)N * sizeof *y);
    // counted here, as crossentropy_forward counts, so the device never reports it
    m->count = 0;
    for (int i = 0; i < N; i++) m->count += y[i] >= 0;
}

/* The forward's ops on the staged batch; nothing here waits for the
 * backend or uploads (a training step's ops may be captured). */
static void forward_ops(model *m)
{
    const int B = m->B, T = m->T, N = B * T, d = m->d, V = m->cfg.vocab_out;
    const mixer_dims dims = {&m->cfg.spec, d, B, T};
    embedding_forward(m->embed_out, m->tokens, m->embed, m->pos, B, T, d);
    const real *res = m->embed_out;
    for (int l = 0; l < m->layers; l++) {
        block *b = &m->blocks[l];
        rmsnorm_forward(b->norm1_out, b->rstd1, res, b->norm1, N, d);
        b->mixer->forward(b->res_mid, b->mixer_cache, m->mixer_work, b->norm1_out, b->w, &dims);
        residual_add(b->res_mid, res, (size_t)N * d);
        if (m->cfg.spec.mlp != MLP_NONE) mlp_forward(m, b, N);
        res = b->res_out;
    }
    rmsnorm_forward(m->norm_f_out, m->rstd_f, res, m->norm_f, N, d);
    matmul_forward(m->logits, m->norm_f_out, m->head, NULL, N, d, V);
    crossentropy_rows_forward(m->losses, m->probs, m->logits, m->targets, N, V);
    // sum of the losses = losses (1,N) . ones (N)
    if (m->count) matmul_forward(m->loss_sum, m->losses, m->ones, NULL, 1, N, 1);
}

int model_forward_queued(model *m, const int *x, const int *y, int B, int T)
{
    device_state(m);
    stage_batch(m, x, y, B, T);
    m->host_scalars.dloss = m->count ? (real)(1.0 / m->count) : 0; // as step_scalars_set
    ops_upload(&m->scalars->dloss, &m->host_scalars.dloss, sizeof m->host_scalars.dloss);
    forward_ops(m);
    return m->count;
}

double model_forward(model *m, const int *x, const int *y, int B, int T, int *count)
{
    const int scored = model_forward_queued(m, x, y, B, T);
    if (count) *count = scored;
    if (scored == 0) return 0;
    real loss_sum;
    ops_download(&loss_sum, m->loss_sum, sizeof loss_sum);
    return (double)loss_sum / scored;
}

step_guard *model_arena_guard(model *m)
{
    device_state(m);
    return m->guard;
}

const step_scalars *model_arena_scalars(model *m, double lr, double beta1, double beta2, int step)
{
    device_state(m);
    step_scalars_set(&m->host_scalars, lr, beta1, beta2, step, m->count);
    ops_upload(m->scalars, &m->host_scalars, sizeof *m->scalars);
    return m->scalars;
}

const step_scalars *model_step_scalars(model *m)
{
    device_state(m);
    return m->scalars;
}

const real *model_take_step_loss(model *m)
{
    m->step_count = m->count;
    return m->count ? m->loss_sum : NULL;
}

void model_step_read(model *m, model_step_stats *out)
{
    step_guard g;
    check_backend(m, "reading the step");
    ops_download(&g, m->guard, sizeof g);
    out->loss = m->step_count ? (double)g.loss_sum / m->step_count : 0;
    out->grad_norm = g.grad_norm;
    out->first_bad_step = g.first_bad_step;
    out->first_bad_what = g.first_bad_what;
    out->first_bad_value = g.first_bad_value;
}

const int *model_predictions(model *m)
{
    const int N = m->B * m->T;
    check_backend(m, "reading the predictions");
    argmax_rows(m->pred, m->probs, N, m->cfg.vocab_out);
    if (!m->host_pred) return m->pred;
    ops_download(m->host_pred, m->pred, (size_t)N * sizeof *m->host_pred);
    return m->host_pred;
}

void model_backward(model *m)
{
    const int B = m->B, T = m->T, N = B * T, d = m->d, V = m->cfg.vocab_out;
    const mixer_dims dims = {&m->cfg.spec, d, B, T};
    device_state(m);
    zero_reals(m->grads, m->n_params);
    if (m->count == 0) return;

    zero_reals(m->dlogits, (size_t)N * V);
    crossentropy_backward_step(m->dlogits, m->probs, m->targets, N, V, m->scalars);
    zero_reals(m->dnorm, (size_t)N * d);
    matmul_backward(m->dnorm, m->d_head, NULL, m->dlogits, m->norm_f_out, m->head, N, d, V);
    zero_reals(m->dres, (size_t)N * d);
    rmsnorm_backward(m->dres, m->d_norm_f, m->dnorm, m->blocks[m->layers - 1].res_out,
                     m->norm_f, m->rstd_f, N, d);
    for (int l = m->layers - 1; l >= 0; l--) {
        block *b = &m->blocks[l];
        const real *res_in = l > 0 ? m->blocks[l - 1].res_out : m->embed_out;
        if (m->cfg.spec.mlp != MLP_NONE) mlp_backward(m, b, N);
        zero_reals(m->dnorm, (size_t)N * d);
        b->mixer->backward(m->dnorm, b->dw, m->mixer_work, m->dres, b->mixer_cache,
                           b->norm1_out, b->w, &dims);
        rmsnorm_backward(m->dres, b->dnorm1, m->dnorm, res_in, b->norm1, b->rstd1, N, d);
    }
    embedding_backward(m->d_embed, m->d_pos, m->dres, m->tokens, B, T, d, m->cfg.vocab_in);
}

/* ---- the training step, captured ----------------------------------------- */

/* The graph of this step's shape and constants (NULL: run the ops
 * uncaptured). A shape's first step runs uncaptured, as a warm-up: what
 * the backend initialises on first use (cuBLAS's kernels, function
 * attributes) is done before a capture; its second step is captured,
 * then replayed, and so are the later ones. The capture records forward,
 * backward and AdamW as queued on the staged batch with m->scalars
 * uploaded: replays read the batch buffers and the scalars as they are
 * then, everything else (shapes, betas, eps, weight decay, clip, the gemm
 * precision) is fixed in the graph, hence in its key. */
static ops_graph *graph_for_step(model *m, double beta1, double beta2, double eps, double weight_decay, double clip)
{
    const int precision = (int)ops_get_precision();
    step_graph *g = NULL;
    for (int i = 0; i < m->n_graphs && !g; i++) {
        step_graph *e = &m->graphs[i];
        if (e->B == m->B && e->T == m->T && e->precision == precision && e->beta1 == beta1 && e->beta2 == beta2 &&
            e->eps == eps && e->weight_decay == weight_decay && e->clip == clip)
            g = e;
    }
    if (g && g->graph) return g->graph;
    if (m->graphs_off) return NULL;
    if (!g) { // the shape's first step: the warm-up
        if (m->n_graphs < MODEL_GRAPHS)
            m->graphs[m->n_graphs++] =
                (step_graph){m->B, m->T, precision, beta1, beta2, eps, weight_decay, clip, NULL};
        return NULL;
    }
    char err[200];
    ops_graph *graph = NULL;
    if (ops_capture_begin(err, sizeof err) == 0) {
        forward_ops(m);
        model_backward(m);
        model_adamw_ops(m, beta1, beta2, eps, weight_decay, clip);
        graph = ops_capture_end(err, sizeof err);
    }
    if (!graph) {
        m->graphs_off = 1;
        snprintf(m->graph_failure, sizeof m->graph_failure, "%s", err);
        return NULL;
    }
    g->graph = graph;
    return graph;
}

int model_train_step(model *m, const int *x, const int *y, int B, int T, double lr, double beta1, double beta2,
                     double eps, double weight_decay, double clip, int step)
{
    device_state(m);
    stage_batch(m, x, y, B, T);
    model_arena_scalars(m, lr, beta1, beta2, step);
    // a batch with nothing scored has no backward: not worth a graph
    ops_graph *graph = m->count ? graph_for_step(m, beta1, beta2, eps, weight_decay, clip) : NULL;
    if (graph) {
        m->step_count = m->count; // what model_adamw_ops' model_take_step_loss set at the capture
        ops_graph_launch(graph);
    } else {
        forward_ops(m);
        model_backward(m);
        model_adamw_ops(m, beta1, beta2, eps, weight_decay, clip);
    }
    return m->count;
}

const char *model_graph_failure(model *m)
{
    if (!m->graph_failure[0] || m->graph_failure_told) return NULL;
    m->graph_failure_told = 1;
    return m->graph_failure;
}

int model_graphs_captured(const model *m)
{
    int n = 0;
    for (int i = 0; i < m->n_graphs; i++) n += m->graphs[i].graph != NULL;
    return n;
}
