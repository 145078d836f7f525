/* groups.h: selecting runs (or bench rows) from a results database with
 * --where / --by / --best-over / --range, labelling them by config fields,
 * reading their last-step eval metrics, and summarising over seeds; shared
 * by `plot` and `report`. */
#ifndef SB_GROUPS_H
#define SB_GROUPS_H

#include <stddef.h>
#include <stdint.h>

#include "db.h"

#define GRP_MAX_FIELDS 8 /* --by fields, --where clauses */
#define GRP_PATH_LEN 128 /* a JSON path "$.model.mixer" */

/* What the command line selected, parsed and validated (groups_add_*).
 * Config field names are only ever bound as JSON paths, values only ever
 * bound as values: nothing the user types becomes SQL text. */
typedef struct {
    char by[GRP_MAX_FIELDS][GRP_PATH_LEN]; /* group by these fields; none: automatic labels */
    int n_by;
    char where[GRP_MAX_FIELDS][GRP_PATH_LEN]; /* keep runs whose field equals where_value */
    const char *where_value[GRP_MAX_FIELDS];  /* borrowed from argv */
    const char *where_text[GRP_MAX_FIELDS];   /* "task.name=parity" as given, for messages */
    int n_where;
    char best_over[GRP_PATH_LEN]; /* "" or a field whose best value each summary takes */
    int n_lo, n_hi;               /* eval lengths kept; 0, 0: all */
} grp_selection;

/* Each parses one option's text into s; on bad input prints
 * "statebench CMD: OPTION: ... allowed: ..." to stderr and returns -1.
 * --by takes a comma-separated list and may repeat; --where FIELD=VALUE
 * may repeat (all must hold); --range LO:HI with 1 <= LO <= HI. */
int groups_add_by(const char *cmd, const char *text, grp_selection *s);
int groups_add_where(const char *cmd, const char *text, grp_selection *s);
int groups_set_best_over(const char *cmd, const char *text, grp_selection *s);
int groups_set_range(const char *cmd, const char *text, grp_selection *s);

enum { GRP_SOURCE_RUNS, GRP_SOURCE_BENCH };

#define GRP_MAX_EXCLUDE 10

typedef struct {
    int source; /* GRP_SOURCE_RUNS, or GRP_SOURCE_BENCH: the bench table (below) */
    const char *experiment; /* compared with IS, so NULL selects runs without one */
    int any_experiment;     /* 1: ignore experiment */
    const char *task;
    int any_task;
    int all_status;         /* 0: only runs with status done */
    const char *metric;     /* scaled_acc | token_acc | seq_acc | loss | plain_token_acc */
    const grp_selection *sel; /* NULL: no --where / --by / --best-over / --range */
    const char *exclude[GRP_MAX_EXCLUDE]; /* JSON paths never used in automatic labels (a report's axes, a
                                           bench row's measurements); NULL = none */
    const char *exclude_prefix; /* paths that start with it never used in automatic labels; NULL = none */
} grp_filter;

typedef struct {
    int n;        /* eval length (bench: sequence length) */
    double value; /* the metric at the run's last eval step (bench: tokens/s) */
} grp_point;

typedef struct {
    int64_t id, seed;
    char *experiment, *task, *mixer, *config; /* experiment / task may be NULL */
    char *label;            /* "deltanet eigen=signed": the group, see groups_load */
    char *best_key;         /* value of sel->best_over in config; NULL when none or absent */
    int train_lo, train_hi; /* task.train_len; 0, 0 when the config has none */
    grp_point *points;      /* n ascending; lengths whose metric is NULL or out of range left out */
    int n_points;
} grp_run;

typedef struct {
    grp_run *runs; /* ordered by run id */
    int count;
    char **fields; /* JSON paths ("$.model.eigen") the labels show, in label order */
    int n_fields;
} grp_set;

/* Loads the selected runs with their labels and last-step metric values.
 * A GROUP is the runs with one label. With sel->by, the label is the value
 * of each --by field that a run has (the mixer bare, others key=value).
 * Otherwise it is the mixer, then key=value (last path component) for each
 * config leaf whose value or presence varies among the runs of one mixer
 * (found with JSON1's json_tree; an array is one value), leaving out seed,
 * experiment, the best-over field and the excluded paths; fields that vary
 * only with the mixer (model.pos is rope for attention only) stay out.
 *
 * GRP_SOURCE_BENCH reads the bench table instead: a "run" is one distinct
 * (mixer, config) where config is the row's config JSON plus mixer, device,
 * batch and direction as top-level keys ({"d_model":64,...,"direction":"train"});
 * its points are (n, tokens_per_s) of the newest row for each n. */
int groups_load(sb_db *db, const grp_filter *f, grp_set *out, char *err, size_t errlen);
void groups_free(grp_set *s);

typedef struct {
    char *experiment, *task; /* task NULL when scopes are per experiment only */
} grp_scope;

/* The distinct (experiment, task) pairs, or experiments when by_task is 0,
 * of the runs f selects (f's experiment and task are ignored), sorted. */
int groups_scopes(sb_db *db, const grp_filter *f, int by_task, grp_scope **out, int *count, char *err,
                  size_t errlen);
void groups_scopes_free(grp_scope *scopes, int count);

/* How many runs f selects in total (f's experiment and task are ignored),
 * and how many of them have the JSON path field (NULL: not counted). */
int groups_count_selected(sb_db *db, const grp_filter *f, const char *field, int64_t *selected,
                          int64_t *with_field, char *err, size_t errlen);

/* Runs in the database in total and with status done. */
int groups_count_runs(sb_db *db, int64_t *total, int64_t *done, char *err, size_t errlen);

/* Checks that each --by and --best-over field exists in at least one
 * selected run; prints "statebench CMD: --by: no selected run has the
 * config field 'x'" and returns -1 when not (also on a database error). */
int groups_check_fields(sb_db *db, const grp_filter *f, const char *cmd);

/* " matching --where a=b --where c=d" (empty without --where), for the
 * message about an empty selection. */
void groups_describe_where(const grp_selection *sel, char *out, size_t len);

/* The metrics --metric selects: the evals columns, and plain_token_acc
 * (argmax == y; token_acc of tasks with their own scorer is theirs) from
 * eval_metrics. */
#define GROUPS_METRICS "scaled_acc, token_acc, seq_acc, loss, plain_token_acc"
/* 1 when metric is one of GROUPS_METRICS. */
int groups_metric_valid(const char *metric);
/* 1 when smaller values of metric are better (loss). */
int groups_lower_is_better(const char *metric);

/* Turns a config field name from the command line ("model.mixer") into a
 * JSON path ("$.model.mixer"). Only [a-z][a-z0-9_]* components joined by dots
 * are accepted; returns -1 for anything else. */
int groups_field_path(const char *field, char *path, size_t len);

/* The value at a JSON path of a config as label text (strings bare, numbers
 * as SQLite prints them, arrays as JSON); malloc'd, NULL when absent. */
char *groups_config_value(sb_db *db, const char *config, const char *path);

/* The name a label uses for a JSON path: its last component. */
const char *groups_field_key(const char *path);

/* Orders keys as numbers when both are (64 before 128, 1e-3 before 0.01),
 * numbers before text, text by strcmp. */
int groups_compare_keys(const char *a, const char *b);

enum { GRP_AGG_MEAN, GRP_AGG_MAX, GRP_AGG_MEDIAN };

typedef struct {
    double value;          /* the aggregate (mean, max or median) of the chosen values */
    double mean, min, max; /* of the chosen values */
    int count;             /* how many values were chosen */
    const char *best;      /* the chosen key (borrowed from keys), NULL without keys */
} grp_stats;

/* Summarises values[0..count) (one per run; count >= 1). keys NULL: all of
 * them. Otherwise values with equal keys[i] (a run's best-over value) form
 * a partition and the one whose aggregate is best (the largest, or the
 * smallest when lower_is_better) is chosen; ties go to the first in
 * groups_compare_keys order, a NULL key counting as "-". values is
 * reordered. Returns 0, or -1 when out of memory. */
int groups_summarise(double *values, const char **keys, int count, int agg, int lower_is_better, grp_stats *out);

typedef struct {
    int64_t step;
    double loss, acc; /* NAN where the row has NULL */
} grp_curve_point;

/* The curves rows of one run, step ascending; *out is malloc'd (NULL, 0 when none). */
int groups_load_curves(sb_db *db, int64_t run_id, grp_curve_point **out, int *count, char *err, size_t errlen);

#endif
