/* cmd_merge.c: `statebench merge`: copies the runs of several result databases
 * (the shards of a SLURM array) into one, deduplicated by run hash, each input
 * in one transaction, conflicting duplicates reported, never silently dropped. */
#include "cmd_merge.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint.h"
#include "cli.h"
#include "db.h"

static const char merge_usage[] =
    "usage: statebench merge OUT.db IN.db...\n"
    "  Copies the runs of the IN databases (e.g. the shards of a SLURM array) into\n"
    "  OUT, creating it when missing or merging into what it holds. Runs are matched\n"
    "  by hash:\n"
    "    - a run OUT lacks is copied with its evals, eval_metrics and curves;\n"
    "    - a done run replaces an unfinished (failed, diverged, interrupted, running,\n"
    "      pending) one; an unfinished run never replaces anything; one that was\n"
    "      running in its shard arrives as interrupted, so a rerun finishes it;\n"
    "    - a run done in both with the same results (evals, eval_metrics, curves but\n"
    "      their timing, steps) is an identical duplicate: counted, nothing copied;\n"
    "    - a run done in both with different results is a CONFLICT: both sources are\n"
    "      reported, the run already in OUT is kept, and the exit code is 1.\n"
    "  A copied run brings its file from IN.weights/ (done) or IN.ckpt/ (unfinished:\n"
    "  its checkpoint, so a rerun on OUT resumes it). Bench rows are copied unless\n"
    "  OUT holds an identical row. Each input is merged in one transaction (all of\n"
    "  it or nothing); the inputs are only read. An input older than schema v3 has\n"
    "  no eval_metrics table: its runs arrive without metric rows.\n"
    "exit: 0 merged, 1 conflicts or a failure, 2 bad usage or an unusable input\n";

typedef struct {
    int added, replaced, identical, kept_done, unfinished, conflicts, bench, bench_dup, files;
} merge_counts;

/* The columns of runs in OUT, and which of them the input has (an input of
 * an older schema lacks the provenance columns). */
typedef struct {
    int count;
    char **names;
    int *in_input;
    int hash_col, status_col; /* indexes into names */
    int hash_sel, status_sel; /* their columns in the input's SELECT (after id) */
} run_columns;

static void columns_free(run_columns *c)
{
    for (int i = 0; i < c->count; i++) free(c->names[i]);
    free(c->names);
    free(c->in_input);
    memset(c, 0, sizeof *c);
}

static int has_run_column(sqlite3 *h, const char *name)
{
    sqlite3_stmt *st = NULL;
    int found = 0;
    if (sqlite3_prepare_v2(h, "SELECT 1 FROM pragma_table_info('runs') WHERE name = ?1", -1, &st, NULL) ==
        SQLITE_OK) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        found = sqlite3_step(st) == SQLITE_ROW;
    }
    sqlite3_finalize(st);
    return found;
}

static int load_columns(sqlite3 *out, sqlite3 *in, run_columns *c)
{
    memset(c, 0, sizeof *c);
    c->hash_col = c->status_col = -1;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(out, "SELECT name FROM pragma_table_info('runs') WHERE name <> 'id' ORDER BY cid", -1,
                           &st, NULL) != SQLITE_OK)
        return -1;
    int cap = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (c->count == cap) {
            cap = cap ? 2 * cap : 32;
            char **names = realloc(c->names, (size_t)cap * sizeof *names);
            int *in_input = realloc(c->in_input, (size_t)cap * sizeof *in_input);
            if (names) c->names = names;
            if (in_input) c->in_input = in_input;
            if (!names || !in_input) break;
        }
        const char *name = (const char *)sqlite3_column_text(st, 0);
        c->names[c->count] = strdup(name);
        c->in_input[c->count] = has_run_column(in, name);
        if (!strcmp(name, "hash")) c->hash_col = c->count;
        if (!strcmp(name, "status")) c->status_col = c->count;
        c->count++;
    }
    sqlite3_finalize(st);
    for (int i = 0; i < c->count; i++)
        if (!c->names[i]) return -1;
    return c->hash_col >= 0 && c->status_col >= 0 && c->in_input[c->hash_col] && c->in_input[c->status_col] ? 0 : -1;
}

/* A growing SQL string. */
typedef struct {
    char *text;
    size_t len, cap;
} sql_buf;

static void sql_add(sql_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int need = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (need < 0) return;
    if (b->len + (size_t)need + 1 > b->cap) {
        size_t cap = (b->len + (size_t)need + 1) * 2;
        char *text = realloc(b->text, cap);
        if (!text) return;
        b->text = text;
        b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->text + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)need;
}

/* Statements of one input's merge. */
typedef struct {
    sb_db *out_db, *in_db;
    sqlite3 *out, *in;
    sqlite3_stmt *in_runs, *in_evals, *in_metrics, *in_curves, *in_bench, *in_steps;
    sqlite3_stmt *out_find, *out_insert_run, *out_update_run, *out_unrunning;
    sqlite3_stmt *out_del_evals, *out_del_metrics, *out_del_curves;
    sqlite3_stmt *out_insert_eval, *out_insert_metric, *out_insert_curve;
    sqlite3_stmt *out_evals, *out_metrics, *out_curves, *out_steps, *out_bench_exists, *out_insert_bench;
    run_columns cols;
    char err[1024];
} merge_ctx;

#define EVAL_COLS "step, n, token_acc, seq_acc, scaled_acc, loss, count"
#define METRIC_COLS "step, n, name, value"
#define CURVE_COLS "step, loss, acc, lr, grad_norm, tokens_per_s"
#define BENCH_COLS "mixer, config, device, n, batch, direction, tokens_per_s, ms, created_at"

static int prepare(merge_ctx *m, sqlite3 *h, sqlite3_stmt **st, const char *sql)
{
    if (sqlite3_prepare_v2(h, sql, -1, st, NULL) == SQLITE_OK) return 0;
    snprintf(m->err, sizeof m->err, "cannot prepare \"%.200s\": %s", sql, sqlite3_errmsg(h));
    return -1;
}

/* The statements compare_results needs. An input older than schema v3 reads
 * the empty temporary eval_metrics table db_open_readonly stands in with. */
static int prepare_compare(merge_ctx *m)
{
    static const char steps[] = "SELECT steps_done, n_params FROM runs WHERE id = ?1",
                      evals[] = "SELECT " EVAL_COLS " FROM evals WHERE run_id = ?1 ORDER BY step, n, rowid",
                      metrics[] = "SELECT " METRIC_COLS " FROM eval_metrics WHERE run_id = ?1 ORDER BY step, n, name",
                      curves[] = "SELECT " CURVE_COLS " FROM curves WHERE run_id = ?1 ORDER BY step, rowid";
    return prepare(m, m->out, &m->out_steps, steps) || prepare(m, m->in, &m->in_steps, steps) ||
           prepare(m, m->out, &m->out_evals, evals) || prepare(m, m->in, &m->in_evals, evals) ||
           prepare(m, m->out, &m->out_metrics, metrics) || prepare(m, m->in, &m->in_metrics, metrics) ||
           prepare(m, m->out, &m->out_curves, curves) || prepare(m, m->in, &m->in_curves, curves)
               ? -1
               : 0;
}

static int prepare_all(merge_ctx *m)
{
    sql_buf sel = {0}, ins = {0}, upd = {0};
    sql_add(&sel, "SELECT id");
    sql_add(&ins, "INSERT INTO runs (");
    sql_add(&upd, "UPDATE runs SET ");
    int bound = 0;
    for (int i = 0; i < m->cols.count; i++) {
        const char *name = m->cols.names[i];
        if (m->cols.in_input[i]) {
            bound++;
            if (i == m->cols.hash_col) m->cols.hash_sel = bound;
            if (i == m->cols.status_col) m->cols.status_sel = bound;
            sql_add(&sel, ", \"%s\"", name);
            sql_add(&ins, "%s\"%s\"", bound > 1 ? ", " : "", name);
            sql_add(&upd, "%s\"%s\" = ?%d", i ? ", " : "", name, bound);
        } else {
            sql_add(&upd, "%s\"%s\" = NULL", i ? ", " : "", name);
        }
    }
    sql_add(&sel, " FROM runs ORDER BY id");
    sql_add(&ins, ") VALUES (");
    for (int i = 1; i <= bound; i++) sql_add(&ins, "%s?%d", i > 1 ? ", " : "", i);
    sql_add(&ins, ")");
    sql_add(&upd, " WHERE id = ?%d", bound + 1);
    int rc = !sel.text || !ins.text || !upd.text;
    if (rc) snprintf(m->err, sizeof m->err, "out of memory");
    rc = rc || prepare(m, m->in, &m->in_runs, sel.text) || prepare(m, m->out, &m->out_insert_run, ins.text) ||
         prepare(m, m->out, &m->out_update_run, upd.text) || prepare_compare(m) ||
         prepare(m, m->in, &m->in_bench, "SELECT " BENCH_COLS " FROM bench ORDER BY id") ||
         prepare(m, m->out, &m->out_find, "SELECT id, status FROM runs WHERE hash = ?1") ||
         prepare(m, m->out, &m->out_unrunning,
                 "UPDATE runs SET status = 'interrupted', pid = NULL, error = ?2 WHERE id = ?1") ||
         prepare(m, m->out, &m->out_del_evals, "DELETE FROM evals WHERE run_id = ?1") ||
         prepare(m, m->out, &m->out_del_metrics, "DELETE FROM eval_metrics WHERE run_id = ?1") ||
         prepare(m, m->out, &m->out_del_curves, "DELETE FROM curves WHERE run_id = ?1") ||
         prepare(m, m->out, &m->out_insert_eval,
                 "INSERT INTO evals (run_id, " EVAL_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)") ||
         prepare(m, m->out, &m->out_insert_metric,
                 "INSERT INTO eval_metrics (run_id, " METRIC_COLS ") VALUES (?1, ?2, ?3, ?4, ?5)") ||
         prepare(m, m->out, &m->out_insert_curve,
                 "INSERT INTO curves (run_id, " CURVE_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)") ||
         prepare(m, m->out, &m->out_bench_exists,
                 "SELECT 1 FROM bench WHERE mixer IS ?1 AND config IS ?2 AND device IS ?3 AND n IS ?4"
                 " AND batch IS ?5 AND direction IS ?6 AND tokens_per_s IS ?7 AND ms IS ?8 AND created_at IS ?9") ||
         prepare(m, m->out, &m->out_insert_bench,
                 "INSERT INTO bench (" BENCH_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
    free(sel.text);
    free(ins.text);
    free(upd.text);
    return rc ? -1 : 0;
}

static void finalize_all(merge_ctx *m)
{
    sqlite3_stmt **all[] = {&m->in_runs,          &m->in_evals,         &m->in_metrics,        &m->in_curves,
                            &m->in_bench,         &m->in_steps,         &m->out_find,          &m->out_insert_run,
                            &m->out_update_run,   &m->out_unrunning,    &m->out_del_evals,     &m->out_del_metrics,
                            &m->out_del_curves,   &m->out_insert_eval,  &m->out_insert_metric, &m->out_insert_curve,
                            &m->out_evals,        &m->out_metrics,      &m->out_curves,        &m->out_steps,
                            &m->out_bench_exists, &m->out_insert_bench};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        sqlite3_finalize(*all[i]);
        *all[i] = NULL;
    }
}

static int sql_fail(merge_ctx *m, sqlite3 *h, const char *what)
{
    snprintf(m->err, sizeof m->err, "%s: %s", what, sqlite3_errmsg(h));
    return -1;
}

/* Runs `write` once for every row of `read` (bound by the caller), binding
 * the row's columns after `first` leading parameters; resets both. */
static int copy_rows(merge_ctx *m, sqlite3_stmt *read, sqlite3_stmt *write, int first, const char *what)
{
    int rc;
    while ((rc = sqlite3_step(read)) == SQLITE_ROW) {
        for (int j = 0; j < sqlite3_column_count(read); j++)
            sqlite3_bind_value(write, first + j + 1, sqlite3_column_value(read, j));
        int w = sqlite3_step(write);
        sqlite3_reset(write);
        if (w != SQLITE_DONE) {
            sqlite3_reset(read);
            return sql_fail(m, m->out, what);
        }
    }
    sqlite3_reset(read);
    return rc == SQLITE_DONE ? 0 : sql_fail(m, m->in, what);
}

static int copy_results(merge_ctx *m, int64_t in_id, int64_t out_id)
{
    sqlite3_bind_int64(m->in_evals, 1, in_id);
    sqlite3_bind_int64(m->out_insert_eval, 1, out_id);
    sqlite3_bind_int64(m->in_metrics, 1, in_id);
    sqlite3_bind_int64(m->out_insert_metric, 1, out_id);
    sqlite3_bind_int64(m->in_curves, 1, in_id);
    sqlite3_bind_int64(m->out_insert_curve, 1, out_id);
    if (copy_rows(m, m->in_evals, m->out_insert_eval, 1, "copy evals")) return -1;
    if (copy_rows(m, m->in_metrics, m->out_insert_metric, 1, "copy eval_metrics")) return -1;
    return copy_rows(m, m->in_curves, m->out_insert_curve, 1, "copy curves");
}

static int values_equal(sqlite3_stmt *a, sqlite3_stmt *b, int j)
{
    int type = sqlite3_column_type(a, j);
    if (type != sqlite3_column_type(b, j)) return 0;
    switch (type) {
    case SQLITE_NULL: return 1;
    case SQLITE_INTEGER: return sqlite3_column_int64(a, j) == sqlite3_column_int64(b, j);
    case SQLITE_FLOAT: return sqlite3_column_double(a, j) == sqlite3_column_double(b, j);
    default: return !strcmp((const char *)sqlite3_column_text(a, j), (const char *)sqlite3_column_text(b, j));
    }
}

/* Steps two result sets of one shape in lockstep over columns [0, ncols).
 * Returns 0 when equal, 1 (diff describes the first difference) or -1. */
static int compare_rows(sqlite3_stmt *a, sqlite3_stmt *b, int ncols, const char *table, char *diff, size_t len)
{
    int result = 0;
    for (int row = 1; result == 0; row++) {
        int ra = sqlite3_step(a), rb = sqlite3_step(b);
        if ((ra != SQLITE_ROW && ra != SQLITE_DONE) || (rb != SQLITE_ROW && rb != SQLITE_DONE)) {
            result = -1;
            break;
        }
        if (ra == SQLITE_DONE && rb == SQLITE_DONE) break;
        if (ra != rb) {
            snprintf(diff, len, "%s: one has more rows than the other (from row %d on)", table, row);
            result = 1;
            break;
        }
        for (int j = 0; j < ncols; j++) {
            if (values_equal(a, b, j)) continue;
            const char *va = (const char *)sqlite3_column_text(a, j), *vb = (const char *)sqlite3_column_text(b, j);
            snprintf(diff, len, "%s row %d (%s %lld): %s %s vs %s", table, row, sqlite3_column_name(a, 0),
                     (long long)sqlite3_column_int64(a, 0), sqlite3_column_name(a, j), va ? va : "NULL",
                     vb ? vb : "NULL");
            result = 1;
            break;
        }
    }
    sqlite3_reset(a);
    sqlite3_reset(b);
    return result;
}

/* 1 when the bound statement yields a row, 0 when none, -1 on error; the
 * statement is reset (its bindings kept). */
static int has_rows(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* Compares the results of run out_id in OUT with run in_id of the input:
 * steps done, parameters, evals (all columns), eval_metrics (all columns,
 * when both copies have metric rows), curves (all but tokens_per_s, which is timing). Returns 0 identical, 1
 * different (diff says how), -1 error. */
static int compare_results(merge_ctx *m, int64_t out_id, int64_t in_id, char *diff, size_t len)
{
    sqlite3_bind_int64(m->out_steps, 1, out_id);
    sqlite3_bind_int64(m->in_steps, 1, in_id);
    int rc = compare_rows(m->out_steps, m->in_steps, 2, "runs (steps_done, n_params)", diff, len);
    if (rc == 0) {
        sqlite3_bind_int64(m->out_evals, 1, out_id);
        sqlite3_bind_int64(m->in_evals, 1, in_id);
        rc = compare_rows(m->out_evals, m->in_evals, 7, "evals", diff, len);
    }
    if (rc == 0) {
        /* A copy with no metric rows at all was made by a version before
         * eval_metrics (schema v3): it has nothing to compare, not different
         * results. */
        sqlite3_bind_int64(m->out_metrics, 1, out_id);
        sqlite3_bind_int64(m->in_metrics, 1, in_id);
        int out_has = has_rows(m->out_metrics), in_has = has_rows(m->in_metrics);
        if (out_has < 0 || in_has < 0)
            rc = -1;
        else if (out_has && in_has)
            rc = compare_rows(m->out_metrics, m->in_metrics, 4, "eval_metrics", diff, len);
    }
    if (rc == 0) {
        sqlite3_bind_int64(m->out_curves, 1, out_id);
        sqlite3_bind_int64(m->in_curves, 1, in_id);
        rc = compare_rows(m->out_curves, m->in_curves, 5, "curves", diff, len);
    }
    if (rc < 0) snprintf(m->err, sizeof m->err, "compare results: %s", sqlite3_errmsg(m->out));
    return rc;
}

/* Copies src to dst through dst.tmp, fsync and rename, creating dst's
 * folder: dst is always absent or whole. Returns 0, or -1 with err set. */
static int copy_file_atomic(const char *src, const char *dst, char *err, size_t len)
{
    char *tmp = NULL, *folder = strdup(dst);
    if (!folder || asprintf(&tmp, "%s.tmp", dst) < 0) {
        free(folder);
        snprintf(err, len, "out of memory");
        return -1;
    }
    char *slash = strrchr(folder, '/');
    if (slash) *slash = '\0';
    int in = open(src, O_RDONLY), out = -1, rc = -1;
    if (in >= 0 && (!slash || mkdir(folder, 0777) == 0 || errno == EEXIST))
        out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (in >= 0 && out >= 0) {
        static char buf[1 << 16];
        ssize_t n;
        rc = 0;
        while (rc == 0 && (n = read(in, buf, sizeof buf)) != 0)
            if (n < 0 || write(out, buf, (size_t)n) != n) rc = -1;
        if (fsync(out) != 0) rc = -1;
    }
    if (rc != 0) snprintf(err, len, "cannot copy %s to %s: %s", src, dst, strerror(errno));
    if (out >= 0 && close(out) != 0 && rc == 0) rc = -1;
    if (in >= 0) close(in);
    if (rc == 0 && rename(tmp, dst) != 0) {
        snprintf(err, len, "cannot rename %s to %s: %s", tmp, dst, strerror(errno));
        rc = -1;
    }
    if (rc != 0) unlink(tmp);
    free(tmp);
    free(folder);
    return rc;
}

/* Brings the file that goes with run `hash` from the input's folders: the
 * final weights of a done run, the checkpoint of an unfinished one. Only
 * when the input has one and, with only_missing, OUT has none. */
static int carry_run_file(merge_ctx *m, const char *hash, int done, int only_missing, merge_counts *n)
{
    char *src = done ? weights_path(m->in_db, hash) : checkpoint_path(m->in_db, hash);
    char *dst = done ? weights_path(m->out_db, hash) : checkpoint_path(m->out_db, hash);
    int rc = 0;
    if (src && dst && access(src, F_OK) == 0 && !(only_missing && access(dst, F_OK) == 0)) {
        rc = copy_file_atomic(src, dst, m->err, sizeof m->err);
        n->files += rc == 0;
    }
    free(src);
    free(dst);
    return rc;
}

/* Inserts (out_id == 0) or overwrites run out_id with the input's current
 * row of in_runs, then its evals, eval_metrics and curves. A run that was
 * running in the input arrives as interrupted. Sets *new_id. */
static int put_run(merge_ctx *m, const char *in_path, int64_t out_id, int64_t *new_id, merge_counts *n)
{
    int64_t in_id = sqlite3_column_int64(m->in_runs, 0);
    sqlite3_stmt *st = out_id ? m->out_update_run : m->out_insert_run;
    int bound = 0;
    for (int i = 0; i < m->cols.count; i++)
        if (m->cols.in_input[i]) {
            bound++;
            sqlite3_bind_value(st, bound, sqlite3_column_value(m->in_runs, bound));
        }
    if (out_id) sqlite3_bind_int64(st, bound + 1, out_id);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) return sql_fail(m, m->out, out_id ? "replace a run" : "insert a run");
    *new_id = out_id ? out_id : sqlite3_last_insert_rowid(m->out);
    if (out_id) {
        sqlite3_bind_int64(m->out_del_evals, 1, out_id);
        sqlite3_bind_int64(m->out_del_metrics, 1, out_id);
        sqlite3_bind_int64(m->out_del_curves, 1, out_id);
        int a = sqlite3_step(m->out_del_evals), b = sqlite3_step(m->out_del_metrics),
            c = sqlite3_step(m->out_del_curves);
        sqlite3_reset(m->out_del_evals);
        sqlite3_reset(m->out_del_metrics);
        sqlite3_reset(m->out_del_curves);
        if (a != SQLITE_DONE || b != SQLITE_DONE || c != SQLITE_DONE)
            return sql_fail(m, m->out, "delete replaced rows");
    }
    const char *status = (const char *)sqlite3_column_text(m->in_runs, m->cols.status_sel);
    const char *hash = (const char *)sqlite3_column_text(m->in_runs, m->cols.hash_sel);
    int done = status && !strcmp(status, "done");
    if (carry_run_file(m, hash, done, 0, n)) return -1;
    /* a done run's checkpoint here is stale: it never resumes */
    if (done && checkpoint_discard(m->out_db, hash) != 0) {
        snprintf(m->err, sizeof m->err, "cannot remove the stale checkpoint of run %s: %s", hash, strerror(errno));
        return -1;
    }
    if (status && !strcmp(status, "running")) {
        char why[600];
        snprintf(why, sizeof why, "was running in %s when merged; a rerun finishes it", in_path);
        sqlite3_bind_int64(m->out_unrunning, 1, *new_id);
        sqlite3_bind_text(m->out_unrunning, 2, why, -1, SQLITE_TRANSIENT);
        rc = sqlite3_step(m->out_unrunning);
        sqlite3_reset(m->out_unrunning);
        if (rc != SQLITE_DONE) return sql_fail(m, m->out, "mark a running run interrupted");
    }
    return copy_results(m, in_id, *new_id);
}

/* Looks for the earlier input OUT's copy of `hash` came from: the first
 * of paths[0..count) holding it done with the same results. */
static void find_source(const char *const *paths, int count, sqlite3 *out, int64_t out_id, const char *hash,
                        char *source, size_t len)
{
    for (int i = 0; i < count; i++) {
        char err[512];
        sb_db *db = db_open_readonly(paths[i], err, sizeof err);
        if (!db) continue;
        merge_ctx probe = {.out = out, .in = db_handle(db)};
        sqlite3_stmt *find = NULL;
        int found = 0;
        if (prepare(&probe, probe.in, &find, "SELECT id FROM runs WHERE hash = ?1 AND status = 'done'") == 0 &&
            prepare_compare(&probe) == 0) {
            sqlite3_bind_text(find, 1, hash, -1, SQLITE_STATIC);
            char diff[256];
            if (sqlite3_step(find) == SQLITE_ROW &&
                compare_results(&probe, out_id, sqlite3_column_int64(find, 0), diff, sizeof diff) == 0)
                found = 1;
        }
        sqlite3_finalize(find);
        finalize_all(&probe);
        db_close(db);
        if (found) {
            snprintf(source, len, "%s", paths[i]);
            return;
        }
    }
}

static int merge_bench(merge_ctx *m, merge_counts *n)
{
    int rc;
    while ((rc = sqlite3_step(m->in_bench)) == SQLITE_ROW) {
        for (int j = 0; j < 9; j++)
            sqlite3_bind_value(m->out_bench_exists, j + 1, sqlite3_column_value(m->in_bench, j));
        int exists = sqlite3_step(m->out_bench_exists);
        sqlite3_reset(m->out_bench_exists);
        if (exists == SQLITE_ROW) {
            n->bench_dup++;
            continue;
        }
        if (exists != SQLITE_DONE) break;
        for (int j = 0; j < 9; j++)
            sqlite3_bind_value(m->out_insert_bench, j + 1, sqlite3_column_value(m->in_bench, j));
        int w = sqlite3_step(m->out_insert_bench);
        sqlite3_reset(m->out_insert_bench);
        if (w != SQLITE_DONE) break;
        n->bench++;
    }
    sqlite3_reset(m->in_bench);
    return rc == SQLITE_DONE ? 0 : sql_fail(m, rc == SQLITE_ROW ? m->out : m->in, "copy bench rows");
}

/* Merges input paths[index] into out in one transaction. Returns 0, or -1
 * with m->err set and nothing of this input written. */
static int merge_input(sb_db *out_db, const char *out_path, const char *const *paths, int index, merge_counts *n)
{
    sqlite3 *out = db_handle(out_db);
    const char *in_path = paths[index];
    char err[512];
    sb_db *in_db = db_open_readonly(in_path, err, sizeof err);
    if (!in_db) {
        fprintf(stderr, "statebench merge: %s\n", err);
        return -1;
    }
    merge_ctx m = {.out_db = out_db, .in_db = in_db, .out = out, .in = db_handle(in_db)};
    int rc = -1;
    if (load_columns(out, m.in, &m.cols)) {
        snprintf(m.err, sizeof m.err, "cannot read the columns of runs");
        goto done;
    }
    if (prepare_all(&m)) goto done;
    if (sqlite3_exec(m.in, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
        sql_fail(&m, m.in, "begin reading");
        goto done;
    }
    if (sqlite3_exec(out, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        sql_fail(&m, out, "lock the output");
        sqlite3_exec(m.in, "COMMIT", NULL, NULL, NULL);
        goto done;
    }
    int step;
    while ((step = sqlite3_step(m.in_runs)) == SQLITE_ROW) {
        const char *hash = (const char *)sqlite3_column_text(m.in_runs, m.cols.hash_sel);
        const char *status = (const char *)sqlite3_column_text(m.in_runs, m.cols.status_sel);
        int in_done = status && !strcmp(status, "done");
        sqlite3_bind_text(m.out_find, 1, hash, -1, SQLITE_TRANSIENT);
        int found = sqlite3_step(m.out_find);
        int64_t out_id = found == SQLITE_ROW ? sqlite3_column_int64(m.out_find, 0) : 0;
        int out_done = found == SQLITE_ROW && !strcmp((const char *)sqlite3_column_text(m.out_find, 1), "done");
        sqlite3_reset(m.out_find);
        if (found != SQLITE_ROW && found != SQLITE_DONE) {
            sql_fail(&m, out, "look up a run");
            break;
        }
        int64_t new_id = 0;
        if (!out_id) {
            if (put_run(&m, in_path, 0, &new_id, n)) break;
            n->added++;
        } else if (!out_done && in_done) {
            if (put_run(&m, in_path, out_id, &new_id, n)) break;
            n->replaced++;
        } else if (!in_done) {
            if (out_done) n->kept_done++;
            else n->unfinished++;
        } else {
            char diff[512] = "";
            int same = compare_results(&m, out_id, sqlite3_column_int64(m.in_runs, 0), diff, sizeof diff);
            if (same < 0) break;
            if (same == 0) {
                if (carry_run_file(&m, hash, 1, 1, n)) break;
                n->identical++;
            } else {
                char source[512];
                snprintf(source, sizeof source, "%s as it was before this merge", out_path);
                find_source(paths, index, out, out_id, hash, source, sizeof source);
                fprintf(stderr,
                        "statebench merge: CONFLICT: run %s is done in %s and in %s (run id %lld there) with "
                        "different results: %s; kept the first (run id %lld of %s), %s's copy is NOT in it\n",
                        hash, source, in_path, (long long)sqlite3_column_int64(m.in_runs, 0), diff,
                        (long long)out_id, out_path, in_path);
                n->conflicts++;
            }
        }
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE) sql_fail(&m, m.in, "read runs");
    sqlite3_reset(m.in_runs);
    if (step == SQLITE_DONE && merge_bench(&m, n) == 0) {
        if (sqlite3_exec(out, "COMMIT", NULL, NULL, NULL) == SQLITE_OK) rc = 0;
        else sql_fail(&m, out, "commit");
    }
    if (rc != 0) sqlite3_exec(out, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_exec(m.in, "COMMIT", NULL, NULL, NULL);
done:
    if (rc != 0)
        fprintf(stderr, "statebench merge: %s: %s; nothing of %s was merged into %s\n", in_path, m.err, in_path,
                out_path);
    finalize_all(&m);
    columns_free(&m.cols);
    db_close(in_db);
    return rc;
}

/* Same file (device and inode), for refusing to merge a file into itself. */
static int same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

int cmd_merge(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(merge_usage, stdout);
            return EXIT_OK;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "statebench merge: unknown option '%s'\n%s", argv[i], merge_usage);
            return EXIT_USAGE;
        }
    if (argc < 3) {
        fprintf(stderr, "statebench merge: expected OUT.db and at least one IN.db\n%s", merge_usage);
        return EXIT_USAGE;
    }
    const char *out_path = argv[1];
    const char *const *inputs = (const char *const *)argv + 2;
    int n_inputs = argc - 2;
    /* Check every input before writing anything, so a typo merges nothing. */
    for (int i = 0; i < n_inputs; i++) {
        if (same_file(inputs[i], out_path)) {
            fprintf(stderr, "statebench merge: %s is the output %s; an input cannot be merged into itself\n",
                    inputs[i], out_path);
            return EXIT_USAGE;
        }
        for (int j = 0; j < i; j++)
            if (same_file(inputs[i], inputs[j])) {
                fprintf(stderr, "statebench merge: %s is given twice (also as %s)\n", inputs[i], inputs[j]);
                return EXIT_USAGE;
            }
        char err[512];
        sb_db *db = db_open_readonly(inputs[i], err, sizeof err);
        if (!db) {
            fprintf(stderr, "statebench merge: input %d: %s\n", i + 1, err);
            return EXIT_USAGE;
        }
        db_close(db);
    }
    char err[512];
    sb_db *out = db_open(out_path, err, sizeof err);
    if (!out) {
        fprintf(stderr, "statebench merge: %s\n", err);
        return EXIT_RUNTIME;
    }
    merge_counts total = {0};
    int failed = 0;
    for (int i = 0; i < n_inputs; i++) {
        merge_counts n = {0};
        if (merge_input(out, out_path, inputs, i, &n)) {
            failed++;
            continue;
        }
        printf("%s: %d added, %d replaced (done beats unfinished), %d identical duplicates, %d conflicts, "
               "%d unfinished kept out (done here), %d unfinished in both, %d bench rows (%d already here), "
               "%d weights/checkpoint files\n",
               inputs[i], n.added, n.replaced, n.identical, n.conflicts, n.kept_done, n.unfinished, n.bench,
               n.bench_dup, n.files);
        total.added += n.added;
        total.replaced += n.replaced;
        total.identical += n.identical;
        total.conflicts += n.conflicts;
    }
    int64_t counts[6] = {0};
    db_status_counts(out, counts);
    db_close(out);
    printf("%s: %d inputs merged%s: %d runs added, %d replaced, %d identical duplicates, %d conflicts; now %lld "
           "done, %lld unfinished\n",
           out_path, n_inputs - failed, failed ? " (some FAILED, see above)" : "", total.added, total.replaced,
           total.identical, total.conflicts, (long long)counts[2],
           (long long)(counts[0] + counts[1] + counts[3] + counts[4] + counts[5]));
    if (total.conflicts)
        fprintf(stderr, "statebench merge: %d conflicting duplicates (see CONFLICT above): the inputs disagree on "
                        "results of the same run; check determinism, versions and hosts\n",
                total.conflicts);
    return failed || total.conflicts ? EXIT_RUNTIME : EXIT_OK;
}
