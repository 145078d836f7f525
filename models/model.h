/* model.h: a model = embedding (+ learned positions) -> layers residual
 * blocks (norm -> mixer, norm -> mlp) -> final norm -> linear head.
 * Built only from ops in kernels/ops.h. Memory: one arena per category
 * (params, grads, AdamW m and v, activations + activation grads), sized when
 * the model is created for a maximum batch and length; the training step
 * allocates nothing. */
#ifndef SB_MODEL_H
#define SB_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include "../kernels/real.h"
#include "../harness/spec.h"

const char *mixer_name(int mixer);
int mixer_find(const char *name); /* -1 if unknown */
/* 1 when this build implements the mixer (configs may only name these). */
int mixer_available(int mixer);
/* 1 when the mixer also runs on the CUDA backend (every op it uses has a
 * CUDA version); model_create refuses the others while OPS_CUDA is current.
 * A model lives on the backend current when it is created. */
int mixer_on_cuda(int mixer);

typedef struct {
    model_spec spec;
    int vocab_in, vocab_out;
    int max_batch, max_len;   /* largest (B, T) forward will see */
    int bf16;                 /* train.precision bf16: model_memory_estimate counts
                                 the bf16 gemms' operand scratch on the GPU */
} model_config;

/* Whether the CUDA kernels cover every size of this config (head sizes,
 * state sizes, sequence length: kernels/cuda_limits.h): 0, or -1 with err
 * naming the mixer, the size, the limit and what to change. The harness
 * asks before a run starts, so that --device cuda refuses a config with
 * exit 2 instead of failing halfway; model_create asks too while OPS_CUDA
 * is current. A config that fails the model's own checks fails here too. */
int model_cuda_fits(const model_config *cfg, char *err, size_t errlen);

/* A named parameter tensor (names follow MODELS.md's equations, e.g.
 * "blocks.0.mixer.W_q"); for export and the tests. */
typedef struct {
    char name[64];
    size_t offset, size;   /* in reals, into the params arena */
    int rows, cols;        /* cols = 1 for vectors */
    int decay;             /* 1: AdamW weight decay applies */
} model_tensor;

typedef struct model model;

/* Bytes the model will allocate for this config (params, grads, optimiser,
 * activations): the runner refuses runs that do not fit. */
size_t model_memory_estimate(const model_config *cfg);
/* Creates the model, initialising parameters from seed. NULL + err on failure. */
model *model_create(const model_config *cfg, uint64_t seed, char *err, size_t errlen);
void model_free(model *m);

size_t model_num_params(const model *m);
real *model_params(model *m);       /* (num_params) */
real *model_grads(model *m);        /* (num_params) */
int model_num_tensors(const model *m);
const model_tensor *model_tensor_at(const model *m, int i);

/* Forward on tokens x (B,T) with targets y (B,T) (-1 = unscored; y may be
 * NULL for inference). Returns the mean cross-entropy over scored positions
 * (0 if none) and the number scored in *count. B <= max_batch, T <= max_len. */
double model_forward(model *m, const int *x, const int *y, int B, int T, int *count);
/* logits (B,T,vocab_out) and probabilities of the last forward */
const real *model_logits(const model *m);
const real *model_probs(const model *m);
/* The argmax over the vocabulary at each of the last forward's (B,T)
 * positions (the first largest probability), in host memory: computed on
 * the backend, so a GPU model downloads B*T ints, not the probabilities. */
const int *model_predictions(model *m);
/* Backward of the last forward's mean loss; zeroes and fills the grads. */
void model_backward(model *m);

/* AdamW over all tensors (weight decay only where tensor.decay), with the
 * gradient clipped to global norm clip (0 = off) first. Returns the
 * gradient norm before clipping. step is 1-based. */
double model_adamw_step(model *m, double lr, double beta1, double beta2,
                        double eps, double weight_decay, double clip, int step);

/* The training step without host syncs. On the GPU the three calls
 * below only queue work, and the host waits for the device only in
 * model_step_read (and model_predictions), i.e. on the steps whose metrics
 * are logged; on the CPU they compute exactly model_forward's and
 * model_adamw_step's results. model_forward_queued returns the number of
 * scored positions (counted on the host from y), model_adamw_step_queued
 * skips the update of a step whose loss or gradient norm is not finite
 * and remembers the first such step. */
int model_forward_queued(model *m, const int *x, const int *y, int B, int T);
void model_adamw_step_queued(model *m, double lr, double beta1, double beta2,
                             double eps, double weight_decay, double clip, int step);
typedef struct {
    double loss;          /* mean loss of the last step's forward (0 if none scored) */
    double grad_norm;     /* the last step's gradient norm before clipping */
    int first_bad_step;   /* first step (since the model was created) whose loss
                             (first_bad_what 1) or gradient norm (2) was not
                             finite: its update was skipped; 0 when none */
    int first_bad_what;
    double first_bad_value; /* that step's loss sum or norm (nan or inf) */
} model_step_stats;
/* Waits for the backend and reads the last queued step's scalars. */
void model_step_read(model *m, model_step_stats *out);

/* model_forward_queued, model_backward and model_adamw_step_queued in one
 * call, with the same results bit for bit; returns the scored count. On
 * the CUDA backend the step's ops are captured as a graph on the second
 * step of each batch shape (the first is a warm-up; up to 32 shapes) and
 * replayed by one launch on the later ones: the batch goes to fixed buffers and the step's scalars
 * (lr, AdamW's bias corrections, 1/count, the step) to the model's
 * step_scalars first. Uncaptured on the CPU, with STATEBENCH_CUDA_GRAPH=0,
 * for a batch that scores nothing, and after a capture failed. */
int model_train_step(model *m, const int *x, const int *y, int B, int T, double lr, double beta1,
                     double beta2, double eps, double weight_decay, double clip, int step);
/* Why capturing a step failed (graphs are then off for the model): a
 * message, returned once, NULL otherwise. */
const char *model_graph_failure(model *m);
/* The graphs the model holds (the distinct step shapes captured). */
int model_graphs_captured(const model *m);

/* Learning rate at 1-based step: linear warmup, then cosine to lr*min_ratio. */
double lr_schedule(double lr, int warmup, int steps, double min_ratio, int step);

#endif
