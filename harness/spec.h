/* spec.h: the resolved run spec, one fully-defaulted, validated run.
 * Produced by the config loader (config.c) from YAML + sweep axes + seed;
 * consumed by the runner, the task generators and the model builder.
 * Every field is described, bounded and defaulted in the option table
 * (options.c); the canonical JSON of a spec (spec_to_json) holds only the
 * fields that apply to its task and mixers, so equal computations hash equal. */
#ifndef SB_SPEC_H
#define SB_SPEC_H

#include <stdint.h>
#include <stddef.h>

#define SB_MAX_EVAL 32     /* lengths in an eval grid */
#define SB_MAX_PATTERN 8   /* mixers in a per-layer pattern */

enum { MODE_FINAL = 0, MODE_RUNNING = 1, MODE_FIND = 2, MODE_DECIDE = 3 }; /* find, decide: set_disjoint */
/* task parameters of the full suite (TASKS.md): mod_arith ops, dfa language, set_disjoint order */
enum { OPS_AUTO = 0, OPS_ADD_SUB_MUL, OPS_ADD_SUB, OPS_ADD_MUL, OPS_SUB_MUL, OPS_ADD, OPS_SUB, OPS_MUL };
enum { LANG_TOMITA1 = 0, LANG_TOMITA2, LANG_TOMITA3, LANG_TOMITA4, LANG_TOMITA5, LANG_TOMITA6,
       LANG_TOMITA7, LANG_EVEN_PAIRS, LANG_RANDOM };
enum { ORDER_SHORT_FIRST = 0, ORDER_LONG_FIRST = 1 };
#define SB_GROUP_TEXT 32 /* bytes of task_spec.group, the NUL included */
enum { EIGEN_POSITIVE = 0, EIGEN_SIGNED = 1 };
enum { MLP_SWIGLU = 0, MLP_GELU = 1, MLP_NONE = 2 };
enum { POS_ROPE = 0, POS_LEARNED = 1, POS_NONE = 2 };
enum { FMAP_ELU1 = 0, FMAP_IDENTITY = 1, FMAP_RELU = 2 };
enum { PRECISION_FP32 = 0, PRECISION_TF32 = 1, PRECISION_BF16 = 2 }; /* train.precision */

/* mixer ids; names in models/model.h (mixer_name / mixer_find) */
enum {
    MIXER_LSTM = 0, MIXER_DELTANET, MIXER_LINEAR_ATTN, MIXER_ATTENTION,
    /* nonlinear RNNs */
    MIXER_ELMAN, MIXER_GRU, MIXER_SLSTM,
    /* diagonal linear recurrences */
    MIXER_MINGRU, MIXER_MINLSTM, MIXER_HGRN, MIXER_LRU, MIXER_S4D, MIXER_MAMBA,
    /* matrix-state recurrences (the gated delta rule family) */
    MIXER_MAMBA2, MIXER_RETNET, MIXER_GLA, MIXER_GATED_DELTANET, MIXER_MLSTM,
    MIXER__COUNT
};

typedef struct {
    int task;                 /* index into the task registry (tasks/task.h) */
    int train_min, train_max; /* train lengths, uniform in [min, max] */
    int eval_len[SB_MAX_EVAL];
    int n_eval;
    /* task parameters (TASKS.md); which apply to which task: options.c */
    int mode;          /* parity, mod_count, group_word, dfa: MODE_FINAL | MODE_RUNNING;
                          set_disjoint: MODE_FIND | MODE_DECIDE */
    int modulus;       /* mod_count m */
    int alphabet;      /* mod_count k */
    int vocab;         /* mqar V */
    int kv_pairs;      /* mqar N */
    double power_a;    /* mqar gap power law */
    int random_fill;   /* mqar: 0/1 */
    int num_passes;    /* mqar: the pairs repeated this many times before the queries (JRT) */
    /* the full task suite (tasks/cycle_nav.c ... set_disjoint.c); mode, modulus,
     * alphabet and vocab above are shared with these tasks */
    int brackets;      /* mod_arith: 0/1 */
    int ops;           /* mod_arith: OPS_*, the operators drawn */
    char group[SB_GROUP_TEXT]; /* group_word: "S5", "Z60", "A4xZ5" */
    int language;      /* dfa: LANG_* */
    int states;        /* dfa random: states of the minimal DFA */
    int dfa_seed;      /* dfa random: the language's seed (not the run's) */
    int balance;       /* dfa final: half accepted, half rejected (0/1) */
    int short_size;    /* set_disjoint: size of the short set (key `short`) */
    int order;         /* set_disjoint: ORDER_* */
} task_spec;

typedef struct {
    int mixer[SB_MAX_PATTERN]; /* per-layer pattern, repeated over layers */
    int n_mixer;
    int layers, d_model, heads;
    int eigen;       /* deltanet */
    int mlp;         /* MLP_* */
    int mlp_ratio;
    int pos;         /* POS_*: rope applies to attention; learned to all */
    double rope_theta;
    int feature_map; /* linear_attn FMAP_* */
    int normalize;   /* linear_attn normaliser 0/1 */
    /* state-space models (models/mixer_lru.c, mixer_s4d.c, mixer_mamba.c,
     * mixer_mamba2.c) */
    int d_state;     /* mamba, mamba2, s4d: state size N (s4d: N/2 complex modes) */
    int expand;      /* mamba, mamba2: inner width expand * d_model */
    double r_min, r_max, max_phase; /* lru: ring init of the eigenvalues */
} model_spec;

typedef struct {
    int steps, batch;
    double lr, min_lr_ratio; /* cosine decays lr to lr * min_lr_ratio */
    int warmup;
    double weight_decay, beta1, beta2, eps, grad_clip; /* grad_clip 0 = off */
    int log_every;           /* curve rows every k steps */
    int checkpoint_every;    /* checkpoints (harness/checkpoint.c): every k steps, 0 = only on a signal */
    int precision;           /* PRECISION_*: the GPU's gemms; the CPU computes fp32 */
    int deterministic;       /* train.deterministic: index into its names, whose only
                                value is "true" (every kernel reduces in a fixed order) */
} train_spec;

typedef struct {
    int every;          /* eval every k steps (0 = only at the end) */
    int count;          /* examples per eval length */
    int batch;          /* eval batch size */
    double target;      /* early stop when scaled_acc >= target at every eval length; 0 = off */
} eval_spec;

typedef struct {
    char *experiment;   /* owned */
    uint64_t seed;
    task_spec task;
    model_spec model;
    train_spec train;
    eval_spec eval;
} run_spec;

/* Canonical JSON of the resolved spec (the `config` column of the DB):
 * {"eval":{..},"experiment":NAME,"model":{..},"seed":S,"task":{..},"train":{..}}
 * with keys sorted at every level, no whitespace, only the options that
 * apply to the spec's task and mixers (options.h), enums as their names,
 * a single mixer as a string and a pattern as a list, numbers in the
 * shortest form that reads back exactly. The spec is canonicalised first
 * (options_canonicalize), so equal computations give equal text.
 * "experiment" is left out when s->experiment is NULL. Returns a malloc'd
 * string. */
char *spec_to_json(const run_spec *s);
/* Content hash: XXH3-128 of the canonical JSON without the experiment name
 * followed by "|gen=<task generator version>", as 32 lowercase hex digits
 * (XXH128 canonical byte order) into out[33]. The seed is part of the hash;
 * the experiment name is not, so the same computation in two experiments
 * is recognised as one run. */
void spec_hash(const run_spec *s, char out[33]);
void spec_free(run_spec *s);
/* Deep copy (experiment string duplicated). */
void spec_copy(run_spec *dst, const run_spec *src);

#endif
