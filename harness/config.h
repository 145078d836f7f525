/* config.h: loading an experiment from YAML (libyaml) and expanding its
 * sweep into resolved run specs. */
#ifndef SB_CONFIG_H
#define SB_CONFIG_H

#include <stdio.h>
#include "spec.h"

typedef struct {
    char *name;       /* experiment name */
    run_spec *runs;   /* resolved, validated, deduplicated by hash */
    int count;
    char *description; /* free text, NULL when the config has none */
} experiment;

/* Config format (DESIGN.md "Config"):
 *   name: NAME                 required; letters, digits, '-', '_', '.'
 *   description: TEXT          optional
 *   seeds: [0, 1, 2]           default [0]; distinct, 0..2^53-1
 *   task: {name: parity, ...}  model: {...}  train: {...}  eval: {...}
 *   variants: {quick: {...}}    optional; see config_load_variant
 *   sweep:
 *     model.mixer: [deltanet, [deltanet, attention]]   one grid axis per key
 *     zip:                                             optional list of groups;
 *       - {train.lr: [1.0e-3, 3.0e-3], train.warmup: [100, 200]}
 *                        each group is one axis whose keys advance together
 * Keys of the sections and axes are those of the option table (options.h);
 * a value of a list option may be a scalar (a one-element list, or [n, n]
 * for train_len), and a sweep value of a list option may be a list.
 * task.name may be given in `task:` or as an axis.
 * Runs: grid product in the order the axes are written (the first axis
 * outermost, a zip group at the place of `zip:`), seeds innermost. Each run
 * is: defaults of its task -> task/model/train/eval -> axis values -> the
 * task's length protocol for train_len / eval_len when not given ->
 * options_canonicalize -> options_check -> the task's validate().
 * Runs equal after that (same hash) are merged, the first one kept. */

/* Loads path. On error returns -1 and writes "FILE:LINE:COL: what; allowed: ..."
 * into err (for a sweep point, followed by the axis values of that point).
 * Notices go to `notices` (may be NULL), one line each: one per option the
 * config sets that was dropped from some runs because it does not apply
 * ("FILE:LINE:COL: note: model.eigen does not apply to lstm: dropped (3
 * runs)"), and one for runs merged as duplicates. */
int config_load(const char *path, experiment *out, FILE *notices, char *err,
                size_t errlen);

/* Variants: a top-level mapping of named overrides of the base,
 *   variants:
 *     quick: {train.steps: 2000, seeds: [0, 1], sweep.model.d_model: [32, 64]}
 * whose keys are `seeds`, `sweep` (a whole new sweep), `sweep.AXIS` (new
 * values for an axis the sweep has; the axes of a zip group keep equal
 * lengths) and dotted option keys (`train.steps`; not a sweep axis), applied
 * in the order written. Every variant is checked whichever one is asked
 * for. config_load_variant(path, "quick", ...) loads the base with that
 * variant applied and names the experiment NAME/quick; variant NULL is
 * config_load. An unknown variant is an error listing the config's variants. */
int config_load_variant(const char *path, const char *variant, experiment *out, FILE *notices, char *err,
                        size_t errlen);

/* The experiment's name as one file name: NAME, or NAME.VARIANT for NAME/VARIANT. */
void experiment_file_stem(const experiment *e, char *out, size_t outlen);
void experiment_free(experiment *e);

#endif
