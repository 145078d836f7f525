/* db.h: the results database (SQLite, schema in DESIGN.md, versioned with
 * PRAGMA user_version). WAL mode, busy timeout, prepared statements only,
 * rows written in one transaction per batch. Safe with several processes. */
#ifndef SB_DB_H
#define SB_DB_H

#include <stdint.h>
#include <stddef.h>

typedef struct sb_db sb_db;

#define DB_SCHEMA_VERSION 3 /* PRAGMA user_version this build writes and reads */

/* Opens (creating the file and schema if needed) the database at path.
 * Refuses a database whose user_version is newer than ours, and a file that
 * is not a statebench database (not SQLite, or another program's tables).
 * An older schema is upgraded in one transaction (v1 -> v2: the provenance
 * columns of runs; v2 -> v3: the eval_metrics table); a failed upgrade
 * leaves the file as it was.
 * Sets WAL, synchronous=NORMAL, a 30 s busy timeout and foreign keys.
 * On failure returns NULL and writes the reason into err. */
sb_db *db_open(const char *path, char *err, size_t errlen);
/* Opens an existing database for reading only (plot, report, status, the
 * inputs of merge): never creates the file or the schema, never changes the
 * journal mode, never upgrades (an older schema is read as it is: its runs
 * lack the provenance columns, and an empty temporary eval_metrics table
 * stands in for the missing one). Refuses what db_open refuses and an
 * empty file. Write calls fail. */
sb_db *db_open_readonly(const char *path, char *err, size_t errlen);
void db_close(sb_db *db);
const char *db_errmsg(sb_db *db); /* last error, for messages */
int db_schema_version(sb_db *db);  /* user_version of the file as opened */

/* Where and how a run was computed (schema v2 columns of runs). Strings may
 * be NULL (stored as NULL); the GPU fields are NULL for CPU runs. */
typedef struct {
    const char *cpu_model;     /* "AMD EPYC 7B13" (/proc/cpuinfo model name) */
    int threads;               /* threads of the worker (OpenMP and BLAS pool) */
    const char *gpu_name, *gpu_cc, *gpu_driver, *cuda_version; /* "H100", "9.0", "12.4", "12.4" */
    const char *compiler, *cflags; /* "gcc 12.2.0", the build's CFLAGS */
    const char *blas;          /* ops_blas_info() */
    const char *git_rev;       /* revision the binary was built from */
    int deterministic;         /* 1: bit-identical from run to run whatever the jobs and
                                  threads (on the GPU: on one GPU model and toolkit) */
} db_provenance;

typedef struct {
    const char *hash, *experiment, *task, *mixer, *config, *device, *host, *version;
    uint64_t seed;
    int64_t n_params;
    const db_provenance *provenance; /* NULL: provenance columns stay NULL */
} db_run_info;

enum { CLAIM_ERROR = -1, CLAIM_SKIP_DONE = 0, CLAIM_OK = 1, CLAIM_BUSY = 2 };
/* Claims the run with info->hash for this process, in one transaction:
 * absent -> inserted as running; done -> CLAIM_SKIP_DONE; failed /
 * interrupted / diverged / pending, or running but owned by a process of
 * this host that no longer exists -> its old evals and curves deleted,
 * marked running; running and owned by a live process -> CLAIM_BUSY.
 * *run_id receives the row id. */
int db_claim_run(sb_db *db, const db_run_info *info, int64_t *run_id);

typedef struct { int64_t step; double loss, acc, lr, grad_norm, tokens_per_s; } db_curve_row;
typedef struct { int64_t step; int n; double token_acc, seq_acc, scaled_acc, loss; int64_t count; } db_eval_row;
/* Appends rows in one transaction. Returns 0 or -1. */
int db_add_curves(sb_db *db, int64_t run_id, const db_curve_row *rows, int count);
int db_add_evals(sb_db *db, int64_t run_id, const db_eval_row *rows, int count);
/* A named metric of the eval row (run, step, n) beyond the evals columns,
 * in table eval_metrics (schema v3): plain_token_acc, the share of scored
 * positions where argmax == y, for every task (it differs from token_acc
 * where a task scores by its own rule, icll's dfa_acc). */
typedef struct { int64_t step; int n; const char *name; double value; } db_eval_metric;
/* Appends eval rows and their metrics in one transaction. Returns 0 or -1. */
int db_add_evals_metrics(sb_db *db, int64_t run_id, const db_eval_row *rows, int count,
                         const db_eval_metric *metrics, int n_metrics);
/* Deletes the run's eval_metrics rows that have no evals row of the same
 * step and n: after the claim of a rerun and the restore of a checkpoint
 * (which carries evals rows only), the metrics of the restored rows stay and
 * those of a killed attempt's later rows go. Returns 0 or -1. */
int db_prune_eval_metrics(sb_db *db, int64_t run_id);
/* Marks the run finished with status done|failed|diverged|interrupted
 * (anything else is an error, as is a run_id that does not exist). */
int db_finish_run(sb_db *db, int64_t run_id, const char *status,
                  const char *error, double train_seconds, int64_t steps_done);

typedef struct { const char *mixer, *config, *device, *direction; int n, batch; double tokens_per_s, ms; } db_bench_row;
int db_add_bench(sb_db *db, const db_bench_row *row);

/* Counts of runs per status for `status`/reports: out[0..5] in the order
 * pending, running, done, failed, diverged, interrupted. */
int db_status_counts(sb_db *db, int64_t out[6]);

void *db_handle(sb_db *db); /* the sqlite3* for queries (plot, report, status) and merge's copying */

#endif
