/* model_internal.h: what optim.c needs of the model beyond model.h. */
#ifndef SB_MODEL_INTERNAL_H
#define SB_MODEL_INTERNAL_H

#include "model.h"
#include "../kernels/ops.h"

/* AdamW moments, (num_params) each, same offsets as the params arena.
 * Host views, like model_params (model.c: a GPU model's are copies). */
real *model_adam_m(model *m);
real *model_adam_v(model *m);

/* A model's arenas live in the memory of the backend current when it was
 * created (ops_set_backend): device memory on OPS_CUDA. These give the
 * arenas themselves (params, grads, moments), for ops; calling them makes
 * the arenas the newest copy again after writes through the host views. */
real *model_arena_params(model *m);
real *model_arena_grads(model *m);
real *model_arena_adam_m(model *m);
real *model_arena_adam_v(model *m);

/* The optimiser step's scalars in backend memory (ops.h's step_guard). */
step_guard *model_arena_guard(model *m);
/* Writes the step's scalars (step_scalars_set, with the last forward's
 * count) into the model's step_scalars in backend memory (an upload: not
 * inside a capture) and returns it; model_step_scalars returns it as is. */
const step_scalars *model_arena_scalars(model *m, double lr, double beta1, double beta2, int step);
const step_scalars *model_step_scalars(model *m);
/* The optimiser's ops (norm, guard, clip, AdamW) on the step's scalars as
 * they are in backend memory when the ops run: model_adamw_step_queued
 * without the upload, so a captured step replays with each step's. */
void model_adamw_ops(model *m, double beta1, double beta2, double eps, double weight_decay, double clip);
/* The last forward's loss sum in backend memory, for the step being
 * queued (NULL when it scored nothing); model_step_read divides the
 * guard's copy by that forward's count. */
const real *model_take_step_loss(model *m);

#endif
