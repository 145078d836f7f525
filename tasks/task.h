/* task.h: the task interface. One generator per task family (TASKS.md),
 * registered in task_registry (registry.c). Generation is counter-based:
 * example i of split s for run seed S at length n is a pure function of
 * (task parameters, S, s, n, i), whatever the batch order or thread count. */
#ifndef SB_TASK_H
#define SB_TASK_H

#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
#include "../harness/spec.h"

enum { SPLIT_TRAIN = 0, SPLIT_EVAL = 1 };

/* Stream ids of task_seed: a generator draws example `index` from
 * TASK_STREAM_EXAMPLE; task_train_batch draws the length of train batch
 * `batch_index` from TASK_STREAM_TRAIN_LEN (with n = 0); dfa draws its
 * random language from TASK_STREAM_LANGUAGE (seeded by the language's own
 * parameters, not the run's); icll draws the DFA of example `index` from
 * TASK_STREAM_EXAMPLE_DFA (with n = 0: its scorer does not know n). */
enum { TASK_STREAM_EXAMPLE = 0, TASK_STREAM_TRAIN_LEN = 1, TASK_STREAM_LANGUAGE = 2,
       TASK_STREAM_EXAMPLE_DFA = 3 };

/* Every field is required except the optional hooks at the end. */
typedef struct task_def {
    const char *name;
    const char *summary;   /* one line for `statebench tasks` */
    int version;           /* generator version: part of the run hash */
    /* Checks the parameters and every length the spec will use (train range
     * and eval grid). On error writes "what, what is allowed" into err and
     * returns -1. */
    int (*validate)(const task_spec *p, char *err, size_t errlen);
    int (*vocab_in)(const task_spec *p);
    int (*vocab_out)(const task_spec *p);
    double (*chance)(const task_spec *p);
    /* sequence length L for task length n (L = n for the slice's tasks) */
    int (*seq_len)(const task_spec *p, int n);
    /* Fills x[0..L-1], y[0..L-1] (y = -1 unscored) for example `index`. */
    void (*generate)(const task_spec *p, uint64_t seed, int split, int n,
                     uint64_t index, int *x, int *y);
    /* Sets the task's default length protocol (train range, eval grid) and
     * its defaults of shared options that differ from the option table's
     * (group_word's mode running, mod_arith's modulus 5, ...): spec_defaults
     * calls it after the table's defaults. */
    void (*default_protocol)(task_spec *p);
    /* Writes one example (x, y of length seq_len(n)) for a human reader,
     * ending with a newline (`tasks show --format text`). */
    void (*print_text)(FILE *out, const task_spec *p, int n, const int *x,
                       const int *y);

    /* Optional: the task's own scorer (TASKS.md icll's dfa_acc), NULL for
     * the default "argmax equals y". Sets correct[t] to 1 or 0 at every
     * scored position t (y[t] >= 0) of example `index` of `split` for run
     * seed `seed`, whose x and y (length L) it is given with the model's
     * argmax pred[0..L-1]. Depends on these arguments only, not on n: a
     * train batch does not know its n. */
    void (*score)(const task_spec *p, uint64_t seed, int split, uint64_t index, int L,
                  const int *x, const int *y, const int *pred, unsigned char *correct);
    /* Optional: what a reader needs of example `index` beyond x and y
     * (icll: its DFA). jsonl: fields, each written as `, "key": value`;
     * text: lines ending with a newline. NULL: nothing. */
    void (*print_extra)(FILE *out, const task_spec *p, uint64_t seed, int split, int n,
                        uint64_t index, int jsonl);
    /* Optional: what a run's log should say once about the spec (dfa: the
     * lengths where balance falls back to uniform strings). Writes one line
     * without a newline into out and returns 1, or returns 0 when there is
     * nothing to say. */
    int (*run_note)(const task_spec *p, char *out, size_t outlen);
} task_def;

extern const task_def *const task_registry[];
extern const int task_registry_count;
const task_def *task_find(const char *name); /* NULL if unknown */
int task_index(const char *name);            /* -1 if unknown */
const task_def *task_get(int index); /* NULL if out of range */

/* Checks a length against the task's own rule (e.g. mqar: n >= 4 N); on
 * error writes "what, what is allowed" into err and returns -1. */
typedef int (*task_length_rule)(const task_spec *p, int n, char *err,
                                size_t errlen);
/* Checks the length protocol every task shares (1 <= train_min <= train_max,
 * 1..SB_MAX_EVAL eval lengths, each >= 1), then `rule` (NULL: none) on every
 * eval length and every train length. On error writes "NAME: what, what is
 * allowed (where)" into err and returns -1. */
int task_validate_lengths(const char *name, const task_spec *p,
                          task_length_rule rule, char *err, size_t errlen);

/* Counter-based randomness shared by the generators. */
uint64_t task_seed(uint64_t run_seed, int split, int n, uint64_t index,
                   uint64_t stream);
typedef struct { uint64_t s[4]; } task_rng;  /* xoshiro256** */
void task_rng_init(task_rng *r, uint64_t seed);
uint64_t task_rng_next(task_rng *r);
/* uniform integer in [0, bound), unbiased */
uint64_t task_rng_below(task_rng *r, uint64_t bound);
double task_rng_uniform(task_rng *r); /* [0,1) */

/* Train batch number `batch_index`: one length drawn uniformly from
 * [train_min, train_max] for the batch (equal lengths grouped), examples
 * batch_index*B .. +B-1 at that length. Returns L; x, y are (B, L). */
int task_train_batch(const task_def *t, const task_spec *p, uint64_t seed,
                     uint64_t batch_index, int B, int *x, int *y);
/* Eval examples first..first+B-1 at length n; returns L. */
int task_eval_batch(const task_def *t, const task_spec *p, uint64_t seed,
                    int n, uint64_t first, int B, int *x, int *y);

#endif
