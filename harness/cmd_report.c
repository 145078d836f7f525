/* cmd_report.c: `statebench report`: tables of a metric (rows x columns) from a results database. */
#include "cmd_report.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "db.h"
#include "groups.h"

enum { AXIS_GROUP, AXIS_N, AXIS_FIELD };
enum { FORMAT_MD, FORMAT_CSV, FORMAT_LATEX };

typedef struct {
    int kind;
    const char *name; /* as given: "group", "n", "model.mixer" */
    char path[128];   /* AXIS_FIELD: "$.model.mixer" */
} axis;

typedef struct {
    const char *db_path, *metric;
    axis rows, cols;
    int format, agg, all_status; /* agg: GRP_AGG_MEAN, _MAX or _MEDIAN */
    grp_selection sel;
} report_options;

/* One (row, column) value contributed by one run. */
typedef struct {
    char *row, *col;
    int run;
    double value;
} entry;

typedef struct {
    char *title;
    const char *experiment, *task; /* borrowed from the scope */
    char **rows, **cols;
    int n_rows, n_cols;
    int *row_runs;  /* runs contributing to each row */
    double *cells;  /* n_rows x n_cols, NAN where no run has a value */
} table;

static int compare_key_ptrs(const void *a, const void *b)
{
    return groups_compare_keys(*(char *const *)a, *(char *const *)b);
}

/* Sorted distinct keys; the strings stay owned by the caller. */
static char **distinct_keys(char **keys, int count, int *n_out)
{
    char **sorted = malloc((size_t)(count ? count : 1) * sizeof *sorted);
    if (!sorted) return NULL;
    memcpy(sorted, keys, (size_t)count * sizeof *keys);
    qsort(sorted, (size_t)count, sizeof *sorted, compare_key_ptrs);
    int unique = 0;
    for (int i = 0; i < count; i++)
        if (unique == 0 || groups_compare_keys(sorted[unique - 1], sorted[i])) sorted[unique++] = sorted[i];
    *n_out = unique;
    return sorted;
}

static int find_key(char *const *keys, int count, const char *key)
{
    for (int i = 0; i < count; i++)
        if (!groups_compare_keys(keys[i], key)) return i;
    return -1;
}

/* The run's key on an axis; for the n axis, the eval length n. */
static char *axis_value(sb_db *db, const axis *a, const grp_run *r, int n)
{
    char text[32];
    switch (a->kind) {
    case AXIS_GROUP: return strdup(r->label);
    case AXIS_N: snprintf(text, sizeof text, "%d", n); return strdup(text);
    default: {
        char *value = groups_config_value(db, r->config, a->path);
        return value ? value : strdup("-");
    }
    }
}

/* Each run gives one entry per eval length when n is an axis, else one entry
 * holding its mean over the eval lengths. Returns the count or -1. */
static int collect_entries(sb_db *db, const report_options *o, const grp_set *set, entry **out)
{
    int cap = 0, count = 0, ok = 1;
    for (int i = 0; i < set->count; i++) cap += set->runs[i].n_points;
    entry *entries = calloc((size_t)(cap ? cap : 1), sizeof *entries);
    if (!entries) return -1;
    int per_length = o->rows.kind == AXIS_N || o->cols.kind == AXIS_N;
    for (int i = 0; ok && i < set->count; i++) {
        const grp_run *r = &set->runs[i];
        if (r->n_points == 0) continue;
        int n_entries = per_length ? r->n_points : 1;
        double sum = 0;
        for (int j = 0; j < r->n_points; j++) sum += r->points[j].value;
        double mean = sum / r->n_points;
        for (int j = 0; j < n_entries; j++) {
            int n = r->points[j].n;
            entry *e = &entries[count++];
            *e = (entry){.row = axis_value(db, &o->rows, r, n), .col = axis_value(db, &o->cols, r, n), .run = i,
                         .value = per_length ? r->points[j].value : mean};
            ok = e->row && e->col;
        }
    }
    if (!ok) {
        for (int j = 0; j < count; j++) {
            free(entries[j].row);
            free(entries[j].col);
        }
        free(entries);
        return -1;
    }
    *out = entries;
    return count;
}

static void table_free(table *t)
{
    for (int i = 0; i < t->n_rows; i++) free(t->rows[i]);
    for (int i = 0; i < t->n_cols; i++) free(t->cols[i]);
    free(t->rows);
    free(t->cols);
    free(t->row_runs);
    free(t->cells);
    free(t->title);
}

static int build_table(const report_options *o, const grp_set *set, const entry *entries, int count, table *t)
{
    char **keys = malloc((size_t)(count ? count : 1) * sizeof *keys);
    double *values = malloc((size_t)(count ? count : 1) * sizeof *values);
    const char **best = malloc((size_t)(count ? count : 1) * sizeof *best);
    char *seen = calloc((size_t)(set->count ? set->count : 1), 1);
    int ok = keys && values && best && seen;
    char **rows = NULL, **cols = NULL;
    if (ok) {
        for (int i = 0; i < count; i++) keys[i] = entries[i].row;
        rows = distinct_keys(keys, count, &t->n_rows);
        for (int i = 0; i < count; i++) keys[i] = entries[i].col;
        cols = distinct_keys(keys, count, &t->n_cols);
        ok = rows && cols;
    }
    if (ok) {
        t->rows = calloc((size_t)(t->n_rows ? t->n_rows : 1), sizeof *t->rows);
        t->cols = calloc((size_t)(t->n_cols ? t->n_cols : 1), sizeof *t->cols);
        t->row_runs = calloc((size_t)(t->n_rows ? t->n_rows : 1), sizeof *t->row_runs);
        size_t n_cells = (size_t)t->n_rows * (size_t)t->n_cols;
        t->cells = malloc((n_cells ? n_cells : 1) * sizeof *t->cells);
        ok = t->rows && t->cols && t->row_runs && t->cells;
    }
    for (int r = 0; ok && r < t->n_rows; r++) ok = (t->rows[r] = strdup(rows[r])) != NULL;
    for (int c = 0; ok && c < t->n_cols; c++) ok = (t->cols[c] = strdup(cols[c])) != NULL;
    for (int r = 0; ok && r < t->n_rows; r++) {
        memset(seen, 0, (size_t)set->count);
        for (int i = 0; i < count; i++)
            if (!groups_compare_keys(entries[i].row, t->rows[r]) && !seen[entries[i].run]) {
                seen[entries[i].run] = 1;
                t->row_runs[r]++;
            }
        for (int c = 0; ok && c < t->n_cols; c++) {
            int k = 0;
            for (int i = 0; i < count; i++)
                if (!groups_compare_keys(entries[i].row, t->rows[r]) &&
                    !groups_compare_keys(entries[i].col, t->cols[c])) {
                    best[k] = set->runs[entries[i].run].best_key;
                    values[k++] = entries[i].value;
                }
            grp_stats st = {.value = NAN};
            if (k > 0)
                ok = groups_summarise(values, o->sel.best_over[0] ? best : NULL, k, o->agg,
                                      groups_lower_is_better(o->metric), &st) == 0;
            t->cells[r * t->n_cols + c] = st.value;
        }
    }
    free(keys);
    free(values);
    free(best);
    free(seen);
    free(rows);
    free(cols);
    return ok ? 0 : -1;
}

/* A group row over eval lengths counts its seeds, unless --by or --best-over
 * puts several configs in it; other rows span configs (tasks, widths). */
static const char *count_header(const report_options *o)
{
    return o->rows.kind == AXIS_GROUP && o->cols.kind == AXIS_N && !o->sel.best_over[0] && !o->sel.n_by ? "seeds"
                                                                                                          : "runs";
}

/* Column headings name their axis: n=64, eigen=signed; groups and tasks
 * are their name ("name=parity" would read oddly). */
static void col_heading(const report_options *o, const char *key, char *out, size_t len)
{
    int bare = o->cols.kind == AXIS_GROUP || (o->cols.kind == AXIS_FIELD && !strcmp(o->cols.path, "$.task.name"));
    if (o->cols.kind == AXIS_N) snprintf(out, len, "n=%s", key);
    else if (bare) snprintf(out, len, "%s", key);
    else snprintf(out, len, "%s=%s", groups_field_key(o->cols.path), key);
}

static const char *agg_name(int agg)
{
    return agg == GRP_AGG_MAX ? "max" : agg == GRP_AGG_MEDIAN ? "median" : "mean";
}

static void describe(FILE *out, const report_options *o)
{
    int per_length = o->rows.kind == AXIS_N || o->cols.kind == AXIS_N;
    char range[64] = "";
    if (o->sel.n_hi) snprintf(range, sizeof range, "n in %d..%d", o->sel.n_lo, o->sel.n_hi);
    fprintf(out, "%s at each run's last eval step", o->metric);
    if (!per_length) fprintf(out, " (mean over its eval lengths%s%s)", range[0] ? ", " : "", range);
    else if (range[0]) fprintf(out, ", %s", range);
    fprintf(out, ", %s over %s", agg_name(o->agg),
            o->rows.kind == AXIS_GROUP && o->cols.kind == AXIS_N && !o->sel.n_by ? "seeds" : "runs");
    if (o->sel.best_over[0])
        fprintf(out, " for the %s whose %s is best in each cell", o->sel.best_over + 2, agg_name(o->agg));
    for (int i = 0; i < o->sel.n_where; i++) { /* on one line: it may sit in a LaTeX comment */
        fputs(i ? ", " : "; where ", out);
        for (const char *p = o->sel.where_text[i]; *p; p++) fputc((unsigned char)*p < 0x20 ? ' ' : *p, out);
    }
}

static void md_cell(FILE *out, const char *text)
{
    fputs("| ", out);
    for (const char *p = text; *p; p++) {
        if (*p == '|') fputc('\\', out);
        fputc(*p, out);
    }
    fputc(' ', out);
}

static void print_md(FILE *out, const report_options *o, const table *t)
{
    fprintf(out, "## %s\n\n", t->title);
    describe(out, o);
    fprintf(out, ".\n\n");
    md_cell(out, o->rows.name);
    md_cell(out, count_header(o));
    char heading[512], value[32];
    for (int c = 0; c < t->n_cols; c++) {
        col_heading(o, t->cols[c], heading, sizeof heading);
        md_cell(out, heading);
    }
    fprintf(out, "|\n|:---|---:|");
    for (int c = 0; c < t->n_cols; c++) fprintf(out, "---:|");
    fprintf(out, "\n");
    for (int r = 0; r < t->n_rows; r++) {
        md_cell(out, t->rows[r]);
        snprintf(value, sizeof value, "%d", t->row_runs[r]);
        md_cell(out, value);
        for (int c = 0; c < t->n_cols; c++) {
            double v = t->cells[r * t->n_cols + c];
            if (isnan(v)) snprintf(value, sizeof value, "-");
            else snprintf(value, sizeof value, "%.3f", v);
            md_cell(out, value);
        }
        fprintf(out, "|\n");
    }
}

static void latex_text(FILE *out, const char *text)
{
    for (const char *p = text; *p; p++) {
        switch (*p) {
        case '\\': fputs("\\textbackslash{}", out); break;
        case '~': fputs("\\textasciitilde{}", out); break;
        case '^': fputs("\\textasciicircum{}", out); break;
        case '&': case '%': case '$': case '#': case '_': case '{': case '}':
            fputc('\\', out);
            fputc(*p, out);
            break;
        default: fputc(*p, out);
        }
    }
}

static void print_latex(FILE *out, const report_options *o, const table *t)
{
    fprintf(out, "%% %s: ", t->title);
    describe(out, o);
    fprintf(out, "\n\\begin{tabular}{lr");
    for (int c = 0; c < t->n_cols; c++) fputc('r', out);
    fprintf(out, "}\n\\toprule\n");
    latex_text(out, o->rows.name);
    fprintf(out, " & %s", count_header(o));
    char heading[512];
    for (int c = 0; c < t->n_cols; c++) {
        col_heading(o, t->cols[c], heading, sizeof heading);
        fputs(" & ", out);
        latex_text(out, heading);
    }
    fprintf(out, " \\\\\n\\midrule\n");
    for (int r = 0; r < t->n_rows; r++) {
        latex_text(out, t->rows[r]);
        fprintf(out, " & %d", t->row_runs[r]);
        for (int c = 0; c < t->n_cols; c++) {
            double v = t->cells[r * t->n_cols + c];
            if (isnan(v)) fprintf(out, " & --");
            else fprintf(out, " & %.3f", v);
        }
        fprintf(out, " \\\\\n");
    }
    fprintf(out, "\\bottomrule\n\\end{tabular}\n");
}

static void csv_field(FILE *out, const char *text, int first)
{
    if (!first) fputc(',', out);
    if (!strpbrk(text, ",\"\n\r")) {
        fputs(text, out);
        return;
    }
    fputc('"', out);
    for (const char *p = text; *p; p++) {
        if (*p == '"') fputc('"', out);
        fputc(*p, out);
    }
    fputc('"', out);
}

/* One CSV for all tables: experiment and task columns, then the union of
 * the tables' columns (empty where a table has none). */
static int print_csv(FILE *out, const report_options *o, const table *tables, int n_tables)
{
    int total = 0;
    for (int i = 0; i < n_tables; i++) total += tables[i].n_cols;
    char **all = malloc((size_t)(total ? total : 1) * sizeof *all);
    if (!all) return -1;
    int k = 0;
    for (int i = 0; i < n_tables; i++)
        for (int c = 0; c < tables[i].n_cols; c++) all[k++] = tables[i].cols[c];
    int n_cols = 0;
    char **cols = distinct_keys(all, k, &n_cols);
    free(all);
    if (!cols) return -1;
    char heading[512], value[32];
    csv_field(out, "experiment", 1);
    csv_field(out, "task", 0);
    csv_field(out, o->rows.name, 0);
    csv_field(out, count_header(o), 0);
    for (int c = 0; c < n_cols; c++) {
        col_heading(o, cols[c], heading, sizeof heading);
        csv_field(out, heading, 0);
    }
    fputc('\n', out);
    for (int i = 0; i < n_tables; i++) {
        const table *t = &tables[i];
        for (int r = 0; r < t->n_rows; r++) {
            csv_field(out, t->experiment ? t->experiment : "", 1);
            csv_field(out, t->task ? t->task : "", 0);
            csv_field(out, t->rows[r], 0);
            snprintf(value, sizeof value, "%d", t->row_runs[r]);
            csv_field(out, value, 0);
            for (int c = 0; c < n_cols; c++) {
                int at = find_key(t->cols, t->n_cols, cols[c]);
                double v = at < 0 ? NAN : t->cells[r * t->n_cols + at];
                if (isnan(v)) value[0] = '\0';
                else snprintf(value, sizeof value, "%.3f", v);
                csv_field(out, value, 0);
            }
            fputc('\n', out);
        }
    }
    free(cols);
    return 0;
}

/* Builds the table of one scope; 1 when built, 0 when its runs have no evals. */
static int scope_table(sb_db *db, const report_options *o, const grp_scope *scope, int by_task, table *t,
                       char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    /* a table that spans tasks compares architectures: task fields (modulus,
     * train_len) differ between tasks and must not split them */
    grp_filter filter = {.experiment = scope->experiment, .task = scope->task, .any_task = !by_task,
                         .all_status = o->all_status, .metric = o->metric, .sel = &o->sel,
                         .exclude_prefix = by_task ? NULL : "$.task."};
    int n_exclude = 0;
    if (o->rows.kind == AXIS_FIELD) filter.exclude[n_exclude++] = o->rows.path;
    if (o->cols.kind == AXIS_FIELD) filter.exclude[n_exclude++] = o->cols.path;
    grp_set set;
    if (groups_load(db, &filter, &set, err, errlen)) return -1;
    entry *entries = NULL;
    int count = collect_entries(db, o, &set, &entries);
    int rc = count > 0 ? 1 : count;
    if (count < 0) snprintf(err, errlen, "out of memory");
    if (count > 0 && build_table(o, &set, entries, count, t)) {
        snprintf(err, errlen, "out of memory");
        rc = -1;
    }
    for (int i = 0; i < count; i++) {
        free(entries[i].row);
        free(entries[i].col);
    }
    free(entries);
    groups_free(&set);
    if (rc == 1) {
        const char *exp = scope->experiment ? scope->experiment : "(no experiment)";
        size_t len = strlen(exp) + (scope->task ? strlen(scope->task) : 0) + 4;
        t->title = malloc(len);
        if (t->title) snprintf(t->title, len, by_task ? "%s / %s" : "%s", exp, scope->task ? scope->task : "");
        t->experiment = scope->experiment;
        t->task = scope->task;
        if (!t->title) rc = -1;
    }
    return rc;
}

static int report(sb_db *db, const report_options *o)
{
    char err[512];
    int64_t total = 0, done = 0;
    if (groups_count_runs(db, &total, &done, err, sizeof err)) {
        fprintf(stderr, "statebench report: %s: %s\n", o->db_path, err);
        return EXIT_RUNTIME;
    }
    if ((o->all_status ? total : done) == 0) {
        fprintf(stderr, "statebench report: %s holds no %sruns (%lld in total%s); nothing to report\n", o->db_path,
                o->all_status ? "" : "done ", (long long)total, total ? "; --all includes the others" : "");
        return EXIT_OK;
    }
    grp_filter selection = {.any_experiment = 1, .any_task = 1, .all_status = o->all_status, .sel = &o->sel};
    int64_t selected = 0;
    if (groups_count_selected(db, &selection, NULL, &selected, NULL, err, sizeof err)) {
        fprintf(stderr, "statebench report: %s: %s\n", o->db_path, err);
        return EXIT_RUNTIME;
    }
    if (selected == 0) {
        char where[1024];
        groups_describe_where(&o->sel, where, sizeof where);
        fprintf(stderr, "statebench report: %s: no %sruns%s; nothing to report\n", o->db_path,
                o->all_status ? "" : "done ", where);
        return EXIT_OK;
    }
    if (groups_check_fields(db, &selection, "report")) return EXIT_USAGE;
    /* task.name on an axis puts every task of an experiment in one table */
    int by_task = !((o->rows.kind == AXIS_FIELD && !strcmp(o->rows.path, "$.task.name")) ||
                    (o->cols.kind == AXIS_FIELD && !strcmp(o->cols.path, "$.task.name")));
    grp_scope *scopes = NULL;
    int n_scopes = 0;
    if (groups_scopes(db, &selection, by_task, &scopes, &n_scopes, err, sizeof err)) {
        fprintf(stderr, "statebench report: %s: %s\n", o->db_path, err);
        return EXIT_RUNTIME;
    }
    table *tables = calloc((size_t)(n_scopes ? n_scopes : 1), sizeof *tables);
    int rc = tables ? EXIT_OK : EXIT_RUNTIME, n_tables = 0;
    for (int s = 0; rc == EXIT_OK && s < n_scopes; s++) {
        int built = scope_table(db, o, &scopes[s], by_task, &tables[n_tables], err, sizeof err);
        if (built < 0) {
            fprintf(stderr, "statebench report: %s: %s\n", o->db_path, err);
            rc = EXIT_RUNTIME;
        }
        n_tables += built > 0;
    }
    if (rc == EXIT_OK && n_tables == 0)
        fprintf(stderr, "statebench report: %s: the selected runs have no eval rows%s; nothing to report\n",
                o->db_path, o->sel.n_hi ? " in --range" : "");
    if (rc == EXIT_OK && n_tables > 0) {
        if (o->format == FORMAT_CSV) {
            if (print_csv(stdout, o, tables, n_tables)) rc = EXIT_RUNTIME;
        } else {
            for (int i = 0; i < n_tables; i++) {
                if (i) fputc('\n', stdout);
                if (o->format == FORMAT_MD) print_md(stdout, o, &tables[i]);
                else print_latex(stdout, o, &tables[i]);
            }
        }
    }
    for (int i = 0; i < n_tables; i++) table_free(&tables[i]);
    free(tables);
    groups_scopes_free(scopes, n_scopes);
    if (fflush(stdout) != 0) rc = EXIT_RUNTIME;
    return rc;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: statebench report DB [--rows FIELD] [--cols FIELD] [--metric M] [--format md|csv|latex]\n"
            "                            [--agg mean|max|median] [--by FIELDS] [--where FIELD=VALUE]...\n"
            "                            [--best-over FIELD] [--range LO:HI] [--all]\n"
            "  --rows FIELD        group (default), n, or a config field such as model.mixer or task.name\n"
            "  --cols FIELD        n (default), group, or a config field\n"
            "  --metric M          scaled_acc (default), token_acc, seq_acc, loss or plain_token_acc (argmax == y,\n"
            "                      where token_acc is a task's own scorer: icll's dfa_acc), at each run's last eval step\n"
            "  --format F          md (default), csv or latex (booktabs)\n"
            "  --agg A             how the runs in a cell combine: mean (default), max or median\n"
            "  --by FIELDS         groups by these config fields (comma-separated, e.g. model.mixer,model.eigen);\n"
            "                      default: the mixer and the config fields that differ between its runs\n"
            "  --where FIELD=VALUE keep only runs whose config has FIELD = VALUE (repeatable; all must hold)\n"
            "  --best-over FIELD   in each cell, the value of FIELD (e.g. train.lr) whose aggregate is best\n"
            "  --range LO:HI       only eval lengths in LO..HI (without n on an axis, each run's mean over them)\n"
            "  --all               include runs that are not done (failed, running, ...)\n"
            "One table per experiment and task (per experiment when task.name is an axis).\n");
}

static int parse_axis(const char *option, const char *text, axis *a)
{
    a->name = text;
    if (!strcmp(text, "group")) a->kind = AXIS_GROUP;
    else if (!strcmp(text, "n")) a->kind = AXIS_N;
    else if (groups_field_path(text, a->path, sizeof a->path) == 0) a->kind = AXIS_FIELD;
    else {
        fprintf(stderr,
                "statebench report: %s: '%s' is not allowed; allowed: group, n, or a config field "
                "of lowercase names joined by dots (model.mixer, task.name)\n",
                option, text);
        return -1;
    }
    return 0;
}

static int parse_choice(const char *option, const char *text, const char *const *choices, int count,
                        const char *allowed, int *out)
{
    for (int i = 0; i < count; i++)
        if (!strcmp(text, choices[i])) {
            *out = i;
            return 0;
        }
    fprintf(stderr, "statebench report: %s: '%s' is not known; allowed: %s\n", option, text, allowed);
    return -1;
}

int cmd_report(int argc, char **argv)
{
    static const struct option long_options[] = {
        {"rows", required_argument, NULL, 'r'},   {"cols", required_argument, NULL, 'c'},
        {"metric", required_argument, NULL, 'm'}, {"format", required_argument, NULL, 'f'},
        {"agg", required_argument, NULL, 'g'},    {"all", no_argument, NULL, 'a'},
        {"by", required_argument, NULL, 'b'},     {"where", required_argument, NULL, 'w'},
        {"best-over", required_argument, NULL, 'B'}, {"range", required_argument, NULL, 'R'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    static const char *const formats[] = {"md", "csv", "latex"};
    static const char *const aggs[] = {"mean", "max", "median"};
    report_options o = {.metric = "scaled_acc", .rows = {.kind = AXIS_GROUP, .name = "group"},
                        .cols = {.kind = AXIS_N, .name = "n"}};
    optind = 0; /* GNU getopt: full reset, cmd_report may run more than once per process */
    int c;
    while ((c = getopt_long(argc, argv, "h", long_options, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'r': bad = parse_axis("--rows", optarg, &o.rows); break;
        case 'c': bad = parse_axis("--cols", optarg, &o.cols); break;
        case 'm': o.metric = optarg; break;
        case 'f': bad = parse_choice("--format", optarg, formats, 3, "md, csv, latex", &o.format); break;
        case 'g': bad = parse_choice("--agg", optarg, aggs, 3, "mean, max, median", &o.agg); break;
        case 'a': o.all_status = 1; break;
        case 'b': bad = groups_add_by("report", optarg, &o.sel); break;
        case 'w': bad = groups_add_where("report", optarg, &o.sel); break;
        case 'B': bad = groups_set_best_over("report", optarg, &o.sel); break;
        case 'R': bad = groups_set_range("report", optarg, &o.sel); break;
        case 'h': usage(stdout); return EXIT_OK;
        default: usage(stderr); return EXIT_USAGE;
        }
        if (bad) return EXIT_USAGE;
    }
    if (optind != argc - 1) {
        fprintf(stderr, "statebench report: expected one database path, got %d arguments\n", argc - optind);
        usage(stderr);
        return EXIT_USAGE;
    }
    o.db_path = argv[optind];
    if (!groups_metric_valid(o.metric)) {
        fprintf(stderr, "statebench report: --metric: '%s' is not known; allowed: " GROUPS_METRICS "\n",
                o.metric);
        return EXIT_USAGE;
    }
    if (!strcmp(o.rows.name, o.cols.name) || (o.rows.kind != AXIS_FIELD && o.rows.kind == o.cols.kind)) {
        fprintf(stderr, "statebench report: --rows and --cols are both '%s'; they must differ\n", o.rows.name);
        return EXIT_USAGE;
    }
    for (int i = 0; i < 2 && o.sel.best_over[0]; i++) {
        const axis *a = i ? &o.cols : &o.rows;
        if (a->kind == AXIS_FIELD && !strcmp(a->path, o.sel.best_over)) {
            fprintf(stderr, "statebench report: --best-over %s is also %s; they must differ\n", a->name,
                    i ? "--cols" : "--rows");
            return EXIT_USAGE;
        }
    }
    char err[512];
    sb_db *db = db_open_readonly(o.db_path, err, sizeof err);
    if (!db) {
        fprintf(stderr, "statebench report: %s\n", err);
        return EXIT_RUNTIME;
    }
    int rc = report(db, &o);
    db_close(db);
    return rc;
}
