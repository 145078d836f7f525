/* cmd_plot.c: `statebench plot`: exports data from a results database and renders it with gnuplot templates. */
#include "cmd_plot.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "db.h"
#include "groups.h"
#include "plot_gnuplot.h"
#include "plot_style.h"

typedef struct {
    const char *db_path, *out_dir, *format, *metric;
    const char *template_path, *style_path;
    int all_status;
    grp_selection sel;
    const char *x_field;          /* lengthgen --x: a numeric config field on the x axis, or NULL */
    char x_path[GRP_PATH_LEN];    /* its JSON path */
} plot_options;

/* One figure: its two files, the gnuplot variables and the .dat body. */
typedef struct {
    char datafile[PATH_MAX], figure[PATH_MAX];
    strbuf vars, data;
} figure;

/* Letters, digits, '-' and '.' stay; anything else in a file name becomes '_'. */
static void append_file_part(char *out, size_t len, const char *text)
{
    size_t used = strlen(out);
    for (const char *p = text ? text : "none"; *p && used + 1 < len; p++) {
        char c = *p;
        int keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
        out[used++] = keep ? c : '_';
    }
    out[used] = '\0';
}

/* Names the files OUT/[EXPERIMENT_][TASK_]KIND.{dat,FORMAT} and starts the
 * variables every template reads: style, datafile, outfile, term, plot_title. */
static int figure_open(figure *fig, const plot_options *o, const char *const *parts, int n_parts, const char *kind,
                       const char *title)
{
    memset(fig, 0, sizeof *fig);
    char name[256] = "";
    for (int i = 0; i < n_parts; i++) {
        append_file_part(name, sizeof name, parts[i]);
        append_file_part(name, sizeof name, "_");
    }
    append_file_part(name, sizeof name, kind);
    int long_path = snprintf(fig->datafile, sizeof fig->datafile, "%s/%s.dat", o->out_dir, name) >= PATH_MAX;
    long_path |= snprintf(fig->figure, sizeof fig->figure, "%s/%s.%s", o->out_dir, name, o->format) >= PATH_MAX;
    if (long_path) {
        fprintf(stderr, "statebench plot: --out: the path %s is too long\n", o->out_dir);
        return -1;
    }
    if (gp_mkdir_p(o->out_dir)) {
        fprintf(stderr, "statebench plot: --out: cannot create the folder %s: %s\n", o->out_dir, strerror(errno));
        return -1;
    }
    strbuf_appendf(&fig->vars, "style=");
    strbuf_append_gp_string(&fig->vars, o->style_path);
    strbuf_appendf(&fig->vars, "; datafile=");
    strbuf_append_gp_string(&fig->vars, fig->datafile);
    strbuf_appendf(&fig->vars, "; outfile=");
    strbuf_append_gp_string(&fig->vars, fig->figure);
    strbuf_appendf(&fig->vars, "; term='%s'; plot_title=", o->format);
    strbuf_append_gp_string(&fig->vars, title);
    return 0;
}

static void figure_free(figure *fig)
{
    free(fig->vars.text);
    free(fig->data.text);
}

/* text on one line of a .dat comment: control characters become spaces */
static void append_one_line(strbuf *b, const char *text)
{
    for (const char *p = text ? text : "(none)"; *p; p++) strbuf_appendf(b, "%c", (unsigned char)*p < 0x20 ? ' ' : *p);
}

/* How the runs were chosen, for the .dat header. */
static void describe_selection(strbuf *b, const plot_options *o, int bench)
{
    strbuf_appendf(b, "# selection: %s", bench ? "bench rows (newest per n)" : o->all_status ? "runs of any status" : "done runs");
    for (int i = 0; i < o->sel.n_where; i++) {
        strbuf_appendf(b, ", --where ");
        append_one_line(b, o->sel.where_text[i]);
    }
    for (int i = 0; i < o->sel.n_by; i++) strbuf_appendf(b, "%s%s", i ? "," : ", --by ", o->sel.by[i] + 2);
    if (o->sel.best_over[0]) strbuf_appendf(b, ", --best-over %s", o->sel.best_over + 2);
    if (o->sel.n_hi) strbuf_appendf(b, ", n in %d..%d", o->sel.n_lo, o->sel.n_hi);
    strbuf_appendf(b, "\n");
}

/* Writes the .dat (header, replot line, body), runs gnuplot on it and
 * prints the figure's path. Returns 1 when drawn, -1 on failure. */
static int figure_finish(figure *fig, const plot_options *o, const char *header)
{
    strbuf replot = {0};
    strbuf_appendf(&replot, "gnuplot -e ");
    strbuf_append_shell_word(&replot, fig->vars.text ? fig->vars.text : "");
    strbuf_appendf(&replot, " ");
    strbuf_append_shell_word(&replot, o->template_path);
    int rc = -1;
    FILE *f = NULL;
    if (fig->vars.failed || fig->data.failed || replot.failed) {
        fprintf(stderr, "statebench plot: out of memory\n");
    } else if (!(f = fopen(fig->datafile, "w"))) {
        fprintf(stderr, "statebench plot: cannot write %s: %s\n", fig->datafile, strerror(errno));
    } else {
        fprintf(f, "%s# replot: %s\n%s", header, replot.text, fig->data.text ? fig->data.text : "");
        if (fclose(f) != 0) fprintf(stderr, "statebench plot: cannot write %s: %s\n", fig->datafile, strerror(errno));
        else rc = gp_run(o->template_path, fig->vars.text, fig->figure);
    }
    if (rc == 0) printf("%s\n", fig->figure);
    free(replot.text);
    return rc == 0 ? 1 : -1;
}

/* An allocation count: malloc(0) may return NULL, which reads as a failure. */
static size_t at_least_one(int n)
{
    return n > 0 ? (size_t)n : 1;
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int compare_ints(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* The groups of one figure, sorted by label, with their line styles. */
typedef struct {
    char **labels;       /* borrowed from the runs */
    const char **mixers; /* the mixer all runs of the group share, or NULL */
    plot_line *lines;
    int count;
} group_list;

static void group_list_free(group_list *g)
{
    free(g->labels);
    free(g->mixers);
    free(g->lines);
    memset(g, 0, sizeof *g);
}

/* The groups of the runs for which keep[i] is set. Returns 0 or -1. */
static int group_list_build(const grp_set *set, const char *keep, group_list *g)
{
    memset(g, 0, sizeof *g);
    size_t n = at_least_one(set->count);
    g->labels = malloc(n * sizeof *g->labels);
    g->mixers = calloc(n, sizeof *g->mixers);
    g->lines = calloc(n, sizeof *g->lines);
    if (!g->labels || !g->mixers || !g->lines) {
        group_list_free(g);
        return -1;
    }
    int k = 0;
    for (int i = 0; i < set->count; i++)
        if (keep[i]) g->labels[k++] = set->runs[i].label;
    qsort(g->labels, (size_t)k, sizeof *g->labels, compare_strings);
    for (int i = 0; i < k; i++)
        if (g->count == 0 || strcmp(g->labels[g->count - 1], g->labels[i])) g->labels[g->count++] = g->labels[i];
    for (int gi = 0; gi < g->count; gi++) {
        int first = 1, mixed = 0;
        for (int i = 0; i < set->count; i++) {
            const grp_run *r = &set->runs[i];
            if (!keep[i] || strcmp(r->label, g->labels[gi])) continue;
            if (first) g->mixers[gi] = r->mixer;
            else if (!g->mixers[gi] || !r->mixer || strcmp(g->mixers[gi], r->mixer)) mixed = 1;
            first = 0;
        }
        if (mixed) g->mixers[gi] = NULL;
    }
    plot_styles((const char *const *)g->labels, g->mixers, g->count, g->lines);
    return 0;
}

/* ngroups, maxlabel (the longest label's length) and the arrays labels, colors, dashes, points[1..ngroups]. */
static void append_group_vars(strbuf *vars, const group_list *g)
{
    int n = g->count, longest = 0;
    for (int i = 0; i < n; i++) longest = (int)strlen(g->labels[i]) > longest ? (int)strlen(g->labels[i]) : longest;
    strbuf_appendf(vars, "; ngroups=%d; maxlabel=%d; array labels[%d]; array colors[%d]; array dashes[%d]; array points[%d]",
                   n, longest, n, n, n, n);
    for (int i = 0; i < n; i++) {
        strbuf_appendf(vars, "; labels[%d]=", i + 1);
        strbuf_append_gp_string(vars, g->labels[i]);
        strbuf_appendf(vars, "; colors[%d]='%s'; dashes[%d]=%d; points[%d]=%d", i + 1, g->lines[i].color, i + 1,
                       g->lines[i].dash, i + 1, g->lines[i].point);
    }
}

static void append_group_comment(strbuf *data, const group_list *g, int i)
{
    strbuf_appendf(data, "# group: %s\n# style: color=%s point=%d dash=%d\n", g->labels[i], g->lines[i].color,
                   g->lines[i].point, g->lines[i].dash);
}

/* A best-over value as one whitespace-free .dat column. */
static void append_key_column(strbuf *data, const char *key)
{
    strbuf_appendf(data, " ");
    for (const char *p = key ? key : "-"; *p; p++) strbuf_appendf(data, "%c", (unsigned char)*p <= ' ' ? '_' : *p);
}

static int run_has_points(const grp_run *r)
{
    return r->n_points > 0;
}

static double run_mean(const grp_run *r)
{
    double sum = 0;
    for (int j = 0; j < r->n_points; j++) sum += r->points[j].value;
    return sum / r->n_points;
}

/* Values with their best-over keys, gathered for one summary. */
typedef struct {
    double *values;
    const char **keys;
    int count, cap;
} sample;

static int sample_add(sample *s, double value, const char *key)
{
    if (s->count == s->cap) {
        int cap = s->cap ? 2 * s->cap : 16;
        double *values = realloc(s->values, (size_t)cap * sizeof *values);
        if (values) s->values = values;
        const char **keys = realloc(s->keys, (size_t)cap * sizeof *keys);
        if (keys) s->keys = keys;
        if (!values || !keys) return -1;
        s->cap = cap;
    }
    s->values[s->count] = value;
    s->keys[s->count] = key;
    s->count++;
    return 0;
}

static void sample_free(sample *s)
{
    free(s->values);
    free(s->keys);
}

static int summarise_sample(const plot_options *o, sample *s, int lower_is_better, grp_stats *out)
{
    return groups_summarise(s->values, o->sel.best_over[0] ? s->keys : NULL, s->count, GRP_AGG_MEAN, lower_is_better,
                            out);
}

static const char *metric_label(const char *metric)
{
    if (!strcmp(metric, "token_acc")) return "token accuracy";
    if (!strcmp(metric, "seq_acc")) return "sequence accuracy";
    if (!strcmp(metric, "loss")) return "eval loss";
    if (!strcmp(metric, "plain_token_acc")) return "token accuracy (argmax = target)";
    return "scaled accuracy";
}

/* Reads the selected runs' data, or says why there is nothing; 0 ok, 1 nothing to plot, -1 error. */
static int check_runs(const plot_options *o, sb_db *db)
{
    char err[512];
    int64_t total = 0, done = 0, selected = 0;
    grp_filter any = {.any_experiment = 1, .any_task = 1, .all_status = o->all_status, .sel = &o->sel};
    if (groups_count_runs(db, &total, &done, err, sizeof err) ||
        groups_count_selected(db, &any, NULL, &selected, NULL, err, sizeof err)) {
        fprintf(stderr, "statebench plot: %s: %s\n", o->db_path, err);
        return -1;
    }
    if ((o->all_status ? total : done) == 0) {
        fprintf(stderr, "statebench plot: %s holds no %sruns (%lld in total%s); nothing to plot\n", o->db_path,
                o->all_status ? "" : "done ", (long long)total, total ? "; --all includes the others" : "");
        return 1;
    }
    if (selected == 0) {
        char where[1024];
        groups_describe_where(&o->sel, where, sizeof where);
        fprintf(stderr, "statebench plot: %s: no %sruns%s; nothing to plot\n", o->db_path, o->all_status ? "" : "done ",
                where);
        return 1;
    }
    return 0;
}

/* ---- lengthgen: the metric vs eval length, one line per group ---- */

/* One index block: n mean min max seeds [best] for the runs labelled label. */
static int lengthgen_block(const plot_options *o, const grp_set *set, const char *label, strbuf *data)
{
    int n_values = 0;
    for (int i = 0; i < set->count; i++)
        if (!strcmp(set->runs[i].label, label)) n_values += set->runs[i].n_points;
    int *lengths = malloc(at_least_one(n_values) * sizeof *lengths);
    if (!lengths) return -1;
    int k = 0;
    for (int i = 0; i < set->count; i++)
        if (!strcmp(set->runs[i].label, label))
            for (int j = 0; j < set->runs[i].n_points; j++) lengths[k++] = set->runs[i].points[j].n;
    qsort(lengths, (size_t)k, sizeof *lengths, compare_ints);
    int rc = 0;
    sample s = {0};
    for (int a = 0; rc == 0 && a < k; a++) {
        if (a > 0 && lengths[a] == lengths[a - 1]) continue;
        s.count = 0;
        for (int i = 0; rc == 0 && i < set->count; i++) {
            const grp_run *r = &set->runs[i];
            if (strcmp(r->label, label)) continue;
            for (int j = 0; rc == 0 && j < r->n_points; j++)
                if (r->points[j].n == lengths[a]) rc = sample_add(&s, r->points[j].value, r->best_key);
        }
        grp_stats st;
        if (rc == 0) rc = summarise_sample(o, &s, groups_lower_is_better(o->metric), &st);
        if (rc) break;
        strbuf_appendf(data, "%d %.6g %.6g %.6g %d", lengths[a], st.mean, st.min, st.max, st.count);
        if (o->sel.best_over[0]) append_key_column(data, st.best);
        strbuf_appendf(data, "\n");
    }
    strbuf_appendf(data, "\n\n"); /* two blank lines end a gnuplot index block */
    sample_free(&s);
    free(lengths);
    return rc;
}

/* One figure for the runs of one (experiment, task). Returns 1 drawn, 0 nothing to draw, -1 failure. */
static int lengthgen_figure(const plot_options *o, const grp_set *set)
{
    char *keep = calloc(at_least_one(set->count), 1);
    if (!keep) return -1;
    int train_lo = 0, train_hi = 0, xmin = INT_MAX, xmax = 1, any = 0;
    double lowest = 0; /* below-chance accuracies widen the y range instead of leaving it */
    for (int i = 0; i < set->count; i++) {
        const grp_run *r = &set->runs[i];
        keep[i] = (char)run_has_points(r);
        any |= keep[i];
        for (int j = 0; j < r->n_points; j++) {
            if (r->points[j].n < xmin) xmin = r->points[j].n;
            if (r->points[j].n > xmax) xmax = r->points[j].n;
            if (r->points[j].value < lowest) lowest = r->points[j].value;
        }
        if (r->train_hi <= 0 || r->n_points == 0) continue;
        if (train_hi == 0 || r->train_lo < train_lo) train_lo = r->train_lo;
        if (r->train_hi > train_hi) train_hi = r->train_hi;
    }
    group_list g;
    if (!any || group_list_build(set, keep, &g)) {
        free(keep);
        return any ? -1 : 0;
    }
    free(keep);
    if (train_lo < 1) train_lo = 1;
    /* Show the training range, but at most two octaves of it below the
     * shortest eval length: the figure is about what lies beyond it. */
    if (train_hi > 0) {
        int shown_lo = train_lo > xmin / 4 ? train_lo : xmin / 4;
        if (shown_lo < xmin) xmin = shown_lo;
    }
    if (train_hi > xmax) xmax = train_hi;
    if (xmin < 1) xmin = 1;
    const grp_run *first = &set->runs[0];
    char title[512];
    if (first->experiment) snprintf(title, sizeof title, "%s: %s", first->experiment, first->task ? first->task : "");
    else snprintf(title, sizeof title, "%s", first->task ? first->task : "");
    const char *parts[] = {first->experiment, first->task};
    char kind[GRP_PATH_LEN + 8] = "lengthgen";
    if (o->x_field) snprintf(kind, sizeof kind, "vs_%s", groups_field_key(o->x_path));
    figure fig;
    if (figure_open(&fig, o, parts, 2, kind, title)) {
        group_list_free(&g);
        return -1;
    }
    int rc = 0;
    {
        int accuracy = !groups_lower_is_better(o->metric);
        double ymin = lowest < -0.04 ? floor((lowest - 0.01) * 20) / 20 - 0.05 : -0.05;
        strbuf_appendf(&fig.vars, "; ylabel_text='%s'; chance=%d; ymin=%g; ymax=%g", metric_label(o->metric),
                       !strcmp(o->metric, "scaled_acc"), accuracy ? ymin : 0.0, accuracy ? 1.05 : 0.0);
        strbuf_appendf(&fig.vars, "; train_lo=%d; train_hi=%d; xmin=%d; xmax=%d", train_lo, train_hi, xmin, xmax);
        if (o->x_field) { /* a config field: log scale only when it spans a factor of 4 or more */
            strbuf_appendf(&fig.vars, "; xlog=%d; xlabel_text=", xmax >= 4 * xmin);
            strbuf_append_gp_string(&fig.vars, o->x_field);
        }
        append_group_vars(&fig.vars, &g);
        for (int i = 0; rc == 0 && i < g.count; i++) {
            append_group_comment(&fig.data, &g, i);
            rc = lengthgen_block(o, set, g.labels[i], &fig.data);
        }
    }
    if (rc == 0) {
        strbuf header = {0};
        strbuf_appendf(&header, "# statebench plot --kind lengthgen: %s at each run's last eval step\n", o->metric);
        describe_selection(&header, o, 0);
        strbuf_appendf(&header, "# columns: n mean min max runs%s; one index block per group, mean/min/max over its "
                                "runs (its seeds, unless --by pools configs)\n",
                       o->sel.best_over[0] ? " best (the best-over value chosen at this n)" : "");
        rc = header.failed ? -1 : figure_finish(&fig, o, header.text);
        free(header.text);
    } else {
        fprintf(stderr, "statebench plot: out of memory\n");
        rc = -1;
    }
    figure_free(&fig);
    group_list_free(&g);
    return rc;
}

/* Loads the runs of each scope (experiment and task, or experiment) and
 * draws one figure per scope with draw. */
static int plot_scopes(const plot_options *o, sb_db *db, int by_task, const char *exclude_prefix,
                       int (*draw)(const plot_options *, sb_db *, const grp_set *))
{
    char err[512];
    int ready = check_runs(o, db);
    if (ready) return ready < 0 ? EXIT_RUNTIME : EXIT_OK;
    grp_filter filter = {.all_status = o->all_status, .metric = o->metric, .sel = &o->sel,
                         .any_task = !by_task, .exclude_prefix = exclude_prefix,
                         .exclude = {o->x_field ? o->x_path : NULL}};
    grp_scope *scopes = NULL;
    int n_scopes = 0;
    if (groups_check_fields(db, &(grp_filter){.any_experiment = 1, .any_task = 1, .all_status = o->all_status,
                                              .sel = &o->sel},
                            "plot"))
        return EXIT_USAGE;
    if (groups_scopes(db, &filter, by_task, &scopes, &n_scopes, err, sizeof err)) {
        fprintf(stderr, "statebench plot: %s: %s\n", o->db_path, err);
        return EXIT_RUNTIME;
    }
    int rc = EXIT_OK, drawn = 0;
    for (int s = 0; rc == EXIT_OK && s < n_scopes; s++) {
        filter.experiment = scopes[s].experiment;
        filter.task = scopes[s].task;
        grp_set set;
        if (groups_load(db, &filter, &set, err, sizeof err)) {
            fprintf(stderr, "statebench plot: %s: %s\n", o->db_path, err);
            rc = EXIT_RUNTIME;
            break;
        }
        int result = draw(o, db, &set);
        if (result < 0) rc = EXIT_RUNTIME;
        if (result == 0)
            fprintf(stderr, "statebench plot: %s%s%s: no rows to draw (no evals%s); no figure\n",
                    scopes[s].experiment ? scopes[s].experiment : "(no experiment)", by_task ? " / " : "",
                    by_task ? (scopes[s].task ? scopes[s].task : "(no task)") : "",
                    o->sel.n_hi ? " in --range" : "");
        drawn += result > 0;
        groups_free(&set);
    }
    if (rc == EXIT_OK && drawn == 0) fprintf(stderr, "statebench plot: %s: nothing to plot\n", o->db_path);
    groups_scopes_free(scopes, n_scopes);
    return rc;
}

/* --x FIELD: each run becomes one point, (its value of FIELD, its mean over
 * the eval lengths in --range); runs without a positive integer there are
 * left out. The training range is not drawn (x is not a length). */
static int draw_lengthgen(const plot_options *o, sb_db *db, const grp_set *set)
{
    if (!o->x_field) return lengthgen_figure(o, set);
    for (int i = 0; i < set->count; i++) {
        grp_run *r = &set->runs[i];
        char *text = groups_config_value(db, r->config, o->x_path);
        char *end = NULL;
        long x = text ? strtol(text, &end, 10) : 0;
        int ok = text && end != text && *end == '\0' && x > 0 && x <= INT_MAX && r->n_points > 0;
        free(text);
        if (ok) {
            double mean = run_mean(r);
            r->points[0] = (grp_point){.n = (int)x, .value = mean};
        }
        r->n_points = ok ? 1 : 0;
        r->train_lo = r->train_hi = 0;
    }
    return lengthgen_figure(o, set);
}

static int plot_lengthgen(const plot_options *o, sb_db *db)
{
    if (o->x_field) {
        char err[512];
        int64_t selected = 0, with_field = 0;
        grp_filter any = {.any_experiment = 1, .any_task = 1, .all_status = o->all_status, .sel = &o->sel};
        if (groups_count_selected(db, &any, o->x_path, &selected, &with_field, err, sizeof err)) {
            fprintf(stderr, "statebench plot: %s: %s\n", o->db_path, err);
            return EXIT_RUNTIME;
        }
        if (selected > 0 && with_field == 0) {
            fprintf(stderr, "statebench plot: --x: no selected run has the config field '%s'; allowed: a numeric "
                            "config field such as model.d_model or model.layers\n", o->x_field);
            return EXIT_USAGE;
        }
    }
    return plot_scopes(o, db, 1, NULL, draw_lengthgen);
}

/* ---- heatmap: task x group of the metric averaged over the eval lengths ---- */

static int draw_heatmap(const plot_options *o, sb_db *db, const grp_set *set)
{
    char *keep = calloc(at_least_one(set->count), 1);
    const char **tasks = malloc(at_least_one(set->count) * sizeof *tasks);
    int n_tasks = 0, any = 0;
    if (!keep || !tasks) {
        free(keep);
        free(tasks);
        return -1;
    }
    for (int i = 0; i < set->count; i++) {
        keep[i] = (char)run_has_points(&set->runs[i]);
        any |= keep[i];
        if (keep[i]) tasks[n_tasks++] = set->runs[i].task ? set->runs[i].task : "(no task)";
    }
    qsort(tasks, (size_t)n_tasks, sizeof *tasks, compare_strings);
    int unique = 0;
    for (int i = 0; i < n_tasks; i++)
        if (unique == 0 || strcmp(tasks[unique - 1], tasks[i])) tasks[unique++] = tasks[i];
    n_tasks = unique;
    group_list g;
    int rc = any ? group_list_build(set, keep, &g) : 0;
    if (!any || rc) {
        free(keep);
        free(tasks);
        return any ? -1 : 0;
    }
    const char *experiment = set->runs[0].experiment;
    char title[512], range[64];
    if (o->sel.n_hi) snprintf(range, sizeof range, "n in %d..%d", o->sel.n_lo, o->sel.n_hi);
    else snprintf(range, sizeof range, "all eval lengths");
    snprintf(title, sizeof title, "%s: %s, mean over %s", experiment ? experiment : "(no experiment)",
             metric_label(o->metric), range);
    const char *parts[] = {experiment};
    figure fig;
    if (figure_open(&fig, o, parts, 1, "heatmap", title)) {
        group_list_free(&g);
        free(keep);
        free(tasks);
        return -1;
    }
    int lower = groups_lower_is_better(o->metric), n_missing = 0;
    double lo = INFINITY, hi = -INFINITY;
    strbuf missing = {0};
    sample s = {0};
    for (int t = 0; rc == 0 && t < n_tasks; t++)
        for (int c = 0; rc == 0 && c < g.count; c++) {
            s.count = 0;
            for (int i = 0; rc == 0 && i < set->count; i++) {
                const grp_run *r = &set->runs[i];
                if (keep[i] && !strcmp(r->label, g.labels[c]) && !strcmp(r->task ? r->task : "(no task)", tasks[t]))
                    rc = sample_add(&s, run_mean(r), r->best_key);
            }
            if (rc == 0 && s.count == 0) {
                strbuf_appendf(&missing, "%d %d\n", c, t);
                n_missing++;
                continue;
            }
            grp_stats st;
            if (rc == 0) rc = summarise_sample(o, &s, lower, &st);
            if (rc) break;
            lo = st.mean < lo ? st.mean : lo;
            hi = st.mean > hi ? st.mean : hi;
            strbuf_appendf(&fig.data, "%d %d %.6g %d", c, t, st.mean, st.count);
            if (o->sel.best_over[0]) append_key_column(&fig.data, st.best);
            strbuf_appendf(&fig.data, "\n");
        }
    strbuf_appendf(&fig.data, "\n\n# missing cells: col row\n%s\n\n", missing.text ? missing.text : "");
    if (rc == 0) {
        /* accuracies on their whole scale [0, 1], so colours compare across figures */
        double cb_lo = lower ? lo : 0, cb_hi = lower ? (hi > lo ? hi : lo + 1) : 1;
        strbuf_appendf(&fig.vars, "; cbmin=%.6g; cbmax=%.6g; nmissing=%d", cb_lo, cb_hi, n_missing);
        strbuf_appendf(&fig.vars, "; nrows=%d; array rowlabels[%d]", n_tasks, n_tasks);
        for (int t = 0; t < n_tasks; t++) {
            strbuf_appendf(&fig.vars, "; rowlabels[%d]=", t + 1);
            strbuf_append_gp_string(&fig.vars, tasks[t]);
        }
        /* column labels are drawn one word per line: the longest word sets the column width */
        int maxword = 1, maxlines = 1;
        strbuf_appendf(&fig.vars, "; ncols=%d; array collabels[%d]", g.count, g.count);
        for (int c = 0; c < g.count; c++) {
            strbuf_appendf(&fig.vars, "; collabels[%d]=", c + 1);
            strbuf_append_gp_string(&fig.vars, g.labels[c]);
            int lines = 1, word = 0;
            for (const char *p = g.labels[c];; p++) {
                if (*p == ' ' || !*p) {
                    maxword = word > maxword ? word : maxword;
                    word = 0;
                    if (!*p) break;
                    lines++;
                } else {
                    word++;
                }
            }
            maxlines = lines > maxlines ? lines : maxlines;
        }
        strbuf_appendf(&fig.vars, "; maxword=%d; maxlines=%d", maxword, maxlines);
        strbuf header = {0};
        strbuf_appendf(&header, "# statebench plot --kind heatmap: %s at each run's last eval step, mean over %s\n",
                       o->metric, range);
        describe_selection(&header, o, 0);
        strbuf_appendf(&header, "# rows (tasks):");
        for (int t = 0; t < n_tasks; t++) {
            strbuf_appendf(&header, " %d=", t);
            append_one_line(&header, tasks[t]);
        }
        strbuf_appendf(&header, "\n# columns (groups):");
        for (int c = 0; c < g.count; c++) strbuf_appendf(&header, " %d=%s;", c, g.labels[c]);
        strbuf_appendf(&header, "\n# columns: col row mean runs%s; mean over runs (seeds) of each run's mean over lengths\n",
                       o->sel.best_over[0] ? " best (the best-over value chosen for the cell)" : "");
        rc = header.failed || missing.failed ? -1 : figure_finish(&fig, o, header.text);
        free(header.text);
    } else {
        fprintf(stderr, "statebench plot: out of memory\n");
        rc = -1;
    }
    sample_free(&s);
    free(missing.text);
    figure_free(&fig);
    group_list_free(&g);
    free(keep);
    free(tasks);
    return rc;
}

static int plot_heatmap(const plot_options *o, sb_db *db)
{
    /* columns are architectures: task fields (modulus, train_len) differ
     * between tasks and must not split them */
    return plot_scopes(o, db, 0, "$.task.", draw_heatmap);
}

/* ---- curves: training loss and accuracy vs step, mean over seeds ---- */

typedef struct {
    grp_curve_point *points;
    int count;
} run_curves;

/* The runs of group label whose curves are drawn: all of them, or with
 * --best-over those with the best value, judged by each run's mean of the
 * metric over its eval lengths (runs without evals cannot be judged). */
static int curves_choose(const plot_options *o, const grp_set *set, const run_curves *curves, const char *label,
                         char *chosen)
{
    memset(chosen, 0, (size_t)set->count);
    if (!o->sel.best_over[0]) {
        for (int i = 0; i < set->count; i++)
            chosen[i] = (char)(curves[i].count > 0 && !strcmp(set->runs[i].label, label));
        return 0;
    }
    sample s = {0};
    int rc = 0;
    for (int i = 0; rc == 0 && i < set->count; i++)
        if (curves[i].count > 0 && run_has_points(&set->runs[i]) && !strcmp(set->runs[i].label, label))
            rc = sample_add(&s, run_mean(&set->runs[i]), set->runs[i].best_key);
    grp_stats st;
    if (rc == 0 && s.count > 0 && (rc = summarise_sample(o, &s, groups_lower_is_better(o->metric), &st)) == 0)
        for (int i = 0; i < set->count; i++) {
            const grp_run *r = &set->runs[i];
            chosen[i] = (char)(curves[i].count > 0 && run_has_points(r) && !strcmp(r->label, label) &&
                               !groups_compare_keys(r->best_key ? r->best_key : "-", st.best ? st.best : "-"));
        }
    sample_free(&s);
    return rc;
}

static int compare_steps(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* One index block: step loss acc runs, the means over the chosen runs at each step. */
static int curves_block(const grp_set *set, const run_curves *curves, const char *chosen, strbuf *data)
{
    int total = 0;
    for (int i = 0; i < set->count; i++)
        if (chosen[i]) total += curves[i].count;
    int64_t *steps = malloc(at_least_one(total) * sizeof *steps);
    int *cursor = calloc(at_least_one(set->count), sizeof *cursor);
    if (!steps || !cursor) {
        free(steps);
        free(cursor);
        return -1;
    }
    int k = 0;
    for (int i = 0; i < set->count; i++)
        for (int j = 0; chosen[i] && j < curves[i].count; j++) steps[k++] = curves[i].points[j].step;
    qsort(steps, (size_t)k, sizeof *steps, compare_steps);
    for (int a = 0; a < k; a++) {
        if (a > 0 && steps[a] == steps[a - 1]) continue;
        double loss = 0, acc = 0;
        int n_loss = 0, n_acc = 0, runs = 0;
        for (int i = 0; i < set->count; i++) {
            if (!chosen[i]) continue;
            const run_curves *c = &curves[i];
            while (cursor[i] < c->count && c->points[cursor[i]].step < steps[a]) cursor[i]++;
            int had = 0;
            for (int j = cursor[i]; j < c->count && c->points[j].step == steps[a]; j++) {
                if (!isnan(c->points[j].loss)) {
                    loss += c->points[j].loss;
                    n_loss++;
                }
                if (!isnan(c->points[j].acc)) {
                    acc += c->points[j].acc;
                    n_acc++;
                }
                had = 1;
            }
            runs += had;
        }
        strbuf_appendf(data, "%lld ", (long long)steps[a]);
        if (n_loss) strbuf_appendf(data, "%.6g ", loss / n_loss);
        else strbuf_appendf(data, "NaN ");
        if (n_acc) strbuf_appendf(data, "%.6g %d\n", acc / n_acc, runs);
        else strbuf_appendf(data, "NaN %d\n", runs);
    }
    strbuf_appendf(data, "\n\n");
    free(steps);
    free(cursor);
    return 0;
}

static int draw_curves(const plot_options *o, sb_db *db, const grp_set *set)
{
    size_t n = at_least_one(set->count);
    run_curves *curves = calloc(n, sizeof *curves);
    char *keep = calloc(n, 1), *chosen = calloc(n, 1);
    int rc = curves && keep && chosen ? 0 : -1, any = 0;
    if (rc) fprintf(stderr, "statebench plot: out of memory\n");
    for (int i = 0; rc == 0 && i < set->count; i++) {
        char err[512];
        rc = groups_load_curves(db, set->runs[i].id, &curves[i].points, &curves[i].count, err, sizeof err);
        if (rc) fprintf(stderr, "statebench plot: %s: %s\n", o->db_path, err);
    }
    /* a group shows when one of the runs that could be chosen has curves */
    for (int i = 0; rc == 0 && i < set->count; i++) {
        keep[i] = (char)(curves[i].count > 0 && (!o->sel.best_over[0] || run_has_points(&set->runs[i])));
        any |= keep[i];
    }
    group_list g = {0};
    figure fig = {0};
    if (rc == 0 && any && group_list_build(set, keep, &g)) {
        fprintf(stderr, "statebench plot: out of memory\n");
        rc = -1;
    }
    if (rc == 0 && any) {
        const grp_run *first = &set->runs[0];
        char title[512];
        if (first->experiment) snprintf(title, sizeof title, "%s: %s", first->experiment, first->task ? first->task : "");
        else snprintf(title, sizeof title, "%s", first->task ? first->task : "");
        const char *parts[] = {first->experiment, first->task};
        rc = figure_open(&fig, o, parts, 2, "curves", title);
        int64_t max_step = 1;
        for (int i = 0; i < set->count; i++)
            if (keep[i] && curves[i].points[curves[i].count - 1].step > max_step)
                max_step = curves[i].points[curves[i].count - 1].step;
        if (rc == 0) {
            append_group_vars(&fig.vars, &g);
            strbuf_appendf(&fig.vars, "; max_step=%lld", (long long)max_step);
        }
        int failed = rc;
        for (int i = 0; !failed && i < g.count; i++) {
            append_group_comment(&fig.data, &g, i);
            failed = curves_choose(o, set, curves, g.labels[i], chosen);
            for (int r = 0; !failed && o->sel.best_over[0] && r < set->count; r++)
                if (chosen[r]) {
                    strbuf_appendf(&fig.data, "# best %s: %s\n", o->sel.best_over + 2,
                                   set->runs[r].best_key ? set->runs[r].best_key : "-");
                    break;
                }
            if (!failed) failed = curves_block(set, curves, chosen, &fig.data);
        }
        if (failed && rc == 0) fprintf(stderr, "statebench plot: out of memory\n");
        rc = failed ? -1 : 0;
        if (rc == 0) {
            strbuf header = {0};
            strbuf_appendf(&header, "# statebench plot --kind curves: training loss and accuracy (curves table)\n");
            describe_selection(&header, o, 0);
            if (o->sel.best_over[0])
                strbuf_appendf(&header, "# best over %s: by the mean over seeds of each run's mean %s over its eval lengths\n",
                               o->sel.best_over + 2, o->metric);
            strbuf_appendf(&header, "# columns: step loss acc runs; one index block per group, means over its runs\n");
            rc = header.failed ? -1 : figure_finish(&fig, o, header.text);
            if (header.failed) fprintf(stderr, "statebench plot: out of memory\n");
            free(header.text);
        }
    }
    figure_free(&fig);
    group_list_free(&g);
    for (int i = 0; curves && i < set->count; i++) free(curves[i].points);
    free(curves);
    free(keep);
    free(chosen);
    return rc < 0 ? -1 : any ? rc : 0;
}

static int plot_curves(const plot_options *o, sb_db *db)
{
    return plot_scopes(o, db, 1, NULL, draw_curves);
}

/* ---- throughput: tokens/s vs n from the bench table ---- */

static const char *const directions[2] = {"train", "infer"};

static int plot_throughput(const plot_options *o, sb_db *db)
{
    char err[512];
    grp_filter filter = {.source = GRP_SOURCE_BENCH, .any_experiment = 1, .any_task = 1, .sel = &o->sel,
                         /* the bench's measurements, not its configuration: rows
                            that differ only in them are the same config measured again */
                         .exclude = {"$.direction", "$.params", "$.gemm_gflops", "$.mfu", "$.mfu_peak", "$.load",
                                     "$.graphs", "$.kind"}};
    int64_t selected = 0, total = 0;
    grp_filter everything = {.source = GRP_SOURCE_BENCH};
    if (groups_count_selected(db, &everything, NULL, &total, NULL, err, sizeof err) ||
        groups_count_selected(db, &filter, NULL, &selected, NULL, err, sizeof err)) {
        fprintf(stderr, "statebench plot: %s: %s\n", o->db_path, err);
        return EXIT_RUNTIME;
    }
    if (selected == 0) {
        char where[1024];
        groups_describe_where(&o->sel, where, sizeof where);
        fprintf(stderr, "statebench plot: %s: no bench rows%s (`statebench bench --db %s` writes them); nothing to plot\n",
                o->db_path, total ? where : "", o->db_path);
        return EXIT_OK;
    }
    if (groups_check_fields(db, &filter, "plot")) return EXIT_USAGE;
    grp_set set;
    if (groups_load(db, &filter, &set, err, sizeof err)) {
        fprintf(stderr, "statebench plot: %s: %s\n", o->db_path, err);
        return EXIT_RUNTIME;
    }
    char *keep = calloc(at_least_one(set.count), 1);
    int *direction = calloc(at_least_one(set.count), sizeof *direction);
    int rc = keep && direction ? 0 : -1, any = 0, has[2] = {0, 0};
    for (int i = 0; rc == 0 && i < set.count; i++) {
        char *dir = groups_config_value(db, set.runs[i].config, "$.direction");
        direction[i] = dir && !strcmp(dir, "infer") ? 1 : dir && !strcmp(dir, "train") ? 0 : -1;
        free(dir);
        keep[i] = (char)(direction[i] >= 0 && run_has_points(&set.runs[i]));
        if (keep[i]) has[direction[i]] = 1;
        any |= keep[i];
    }
    group_list g = {0};
    figure fig = {0};
    if (rc == 0 && any) rc = group_list_build(&set, keep, &g);
    if (rc == 0 && any) rc = figure_open(&fig, o, NULL, 0, "throughput", "throughput");
    sample s = {0};
    for (int d = 0; rc == 0 && any && d < 2; d++)
        for (int gi = 0; rc == 0 && gi < g.count; gi++) {
            strbuf_appendf(&fig.data, "# %s\n", directions[d]);
            append_group_comment(&fig.data, &g, gi);
            for (int n = INT_MIN;;) { /* the next larger n of this group and direction */
                int next = INT_MAX;
                for (int i = 0; i < set.count; i++)
                    if (keep[i] && direction[i] == d && !strcmp(set.runs[i].label, g.labels[gi]))
                        for (int j = 0; j < set.runs[i].n_points; j++)
                            if (set.runs[i].points[j].n > n && set.runs[i].points[j].n < next)
                                next = set.runs[i].points[j].n;
                if (next == INT_MAX) break;
                n = next;
                s.count = 0;
                for (int i = 0; rc == 0 && i < set.count; i++)
                    if (keep[i] && direction[i] == d && !strcmp(set.runs[i].label, g.labels[gi]))
                        for (int j = 0; rc == 0 && j < set.runs[i].n_points; j++)
                            if (set.runs[i].points[j].n == n)
                                rc = sample_add(&s, set.runs[i].points[j].value, set.runs[i].best_key);
                grp_stats st;
                if (rc == 0) rc = summarise_sample(o, &s, 0, &st);
                if (rc) break;
                strbuf_appendf(&fig.data, "%d %.6g %d", n, st.mean, st.count);
                if (o->sel.best_over[0]) append_key_column(&fig.data, st.best);
                strbuf_appendf(&fig.data, "\n");
            }
            strbuf_appendf(&fig.data, "\n\n");
        }
    if (rc == 0 && any) {
        double lo = INFINITY, hi = 0;
        for (int i = 0; i < set.count; i++)
            for (int j = 0; keep[i] && j < set.runs[i].n_points; j++) {
                double v = set.runs[i].points[j].value;
                lo = v > 0 && v < lo ? v : lo;
                hi = v > hi ? v : hi;
            }
        append_group_vars(&fig.vars, &g);
        /* both panels on one scale, so training and inference compare */
        strbuf_appendf(&fig.vars, "; has_train=%d; has_infer=%d; ymin=%.6g; ymax=%.6g", has[0], has[1],
                       isfinite(lo) ? lo : 1.0, hi > 0 ? hi : 10.0);
        strbuf header = {0};
        strbuf_appendf(&header, "# statebench plot --kind throughput: tokens/s vs n (bench table)\n");
        describe_selection(&header, o, 1);
        strbuf_appendf(&header, "# columns: n tokens_per_s configs%s; index blocks: the groups' train rows, then "
                                "their infer rows; mean over the configs of a group\n",
                       o->sel.best_over[0] ? " best" : "");
        rc = header.failed ? -1 : figure_finish(&fig, o, header.text);
        free(header.text);
    } else if (rc == 0) {
        fprintf(stderr, "statebench plot: %s: the selected bench rows have no train or infer rows%s; nothing to plot\n",
                o->db_path, o->sel.n_hi ? " in --range" : "");
    } else {
        fprintf(stderr, "statebench plot: out of memory\n");
    }
    sample_free(&s);
    figure_free(&fig);
    group_list_free(&g);
    free(keep);
    free(direction);
    groups_free(&set);
    return rc < 0 ? EXIT_RUNTIME : EXIT_OK;
}

typedef struct {
    const char *name, *template_name, *help;
    int (*plot)(const plot_options *o, sb_db *db);
} plot_kind;

static const plot_kind kinds[] = {
    {"lengthgen", "lengthgen.gp", "metric vs eval length per group, one figure per experiment and task", plot_lengthgen},
    {"heatmap", "heatmap.gp", "task x group of the metric averaged over --range, one figure per experiment",
     plot_heatmap},
    {"curves", "curves.gp", "training loss and accuracy vs step per group, one figure per experiment and task",
     plot_curves},
    {"throughput", "throughput.gp", "tokens/s vs n from the bench table, train and inference", plot_throughput},
};
#define N_KINDS (int)(sizeof kinds / sizeof kinds[0])

static void usage(FILE *out)
{
    fprintf(out,
            "usage: statebench plot DB [--kind KIND] [--out DIR] [--format png|pdf|svg] [--metric M]\n"
            "                          [--by FIELDS] [--where FIELD=VALUE]... [--best-over FIELD] [--range LO:HI] [--all]\n"
            "  --kind KIND         figure kind (default lengthgen):\n");
    for (int i = 0; i < N_KINDS; i++) fprintf(out, "                        %-10s %s\n", kinds[i].name, kinds[i].help);
    fprintf(out,
            "  --out DIR           where figures and their .dat files go (default plots/<DB name without .db>/)\n"
            "  --format FMT        png (default), pdf or svg\n"
            "  --metric M          scaled_acc (default), token_acc, seq_acc, loss or plain_token_acc (argmax == y,\n"
            "                      where token_acc is a task's own scorer: icll's dfa_acc), at each run's last eval step\n"
            "  --by FIELDS         group by these config fields (comma-separated, e.g. model.mixer,model.eigen);\n"
            "                      default: the mixer and the fields that differ between its runs\n"
            "  --where FIELD=VALUE keep only runs whose config has FIELD = VALUE (repeatable; all must hold)\n"
            "  --best-over FIELD   per group and length, the value of FIELD (e.g. train.lr) whose mean over seeds\n"
            "                      is best, as Zoology reports (heatmap: per cell; curves: per group, judged by\n"
            "                      the runs' mean over the eval lengths in --range)\n"
            "  --range LO:HI       only eval lengths (bench: n) in LO..HI\n"
            "  --x FIELD           lengthgen: a numeric config field (e.g. model.d_model) on the x axis instead of\n"
            "                      n, each run's metric averaged over its eval lengths in --range (Zoology's\n"
            "                      accuracy vs width); FIELD stays out of the automatic labels\n"
            "  --all               include runs that are not done (failed, running, ...)\n"
            "Throughput reads the bench table, whose fields are mixer, d_model, heads, layers, threads, device,\n"
            "batch and direction. Templates come from plots/ (beside the executable's folder, then ./plots/;\n"
            "STATEBENCH_PLOTS overrides). Prints the path of each figure written.\n");
}

static void default_out_dir(const char *db_path, char *out, size_t len)
{
    const char *slash = strrchr(db_path, '/');
    const char *base = slash ? slash + 1 : db_path;
    size_t n = strlen(base);
    if (n > 3 && !strcmp(base + n - 3, ".db")) n -= 3;
    snprintf(out, len, "plots/%.*s", (int)n, base);
}

int cmd_plot(int argc, char **argv)
{
    static const struct option long_options[] = {
        {"kind", required_argument, NULL, 'k'},      {"out", required_argument, NULL, 'o'},
        {"format", required_argument, NULL, 'f'},    {"all", no_argument, NULL, 'a'},
        {"metric", required_argument, NULL, 'm'},    {"by", required_argument, NULL, 'b'},
        {"where", required_argument, NULL, 'w'},     {"best-over", required_argument, NULL, 'B'},
        {"range", required_argument, NULL, 'r'},     {"help", no_argument, NULL, 'h'},
        {"x", required_argument, NULL, 'x'},
        {NULL, 0, NULL, 0},
    };
    plot_options o = {.format = "png", .metric = "scaled_acc"};
    const char *kind_name = "lengthgen";
    int metric_given = 0;
    optind = 0; /* GNU getopt: full reset, cmd_plot may run more than once per process */
    int c;
    while ((c = getopt_long(argc, argv, "h", long_options, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'k': kind_name = optarg; break;
        case 'o': o.out_dir = optarg; break;
        case 'f': o.format = optarg; break;
        case 'a': o.all_status = 1; break;
        case 'm': o.metric = optarg; metric_given = 1; break;
        case 'b': bad = groups_add_by("plot", optarg, &o.sel); break;
        case 'w': bad = groups_add_where("plot", optarg, &o.sel); break;
        case 'B': bad = groups_set_best_over("plot", optarg, &o.sel); break;
        case 'r': bad = groups_set_range("plot", optarg, &o.sel); break;
        case 'x':
            o.x_field = optarg;
            if (groups_field_path(optarg, o.x_path, sizeof o.x_path)) {
                fprintf(stderr, "statebench plot: --x: '%s' is not a config field name; allowed: dotted names "
                                "such as model.d_model\n", optarg);
                bad = 1;
            }
            break;
        case 'h': usage(stdout); return EXIT_OK;
        default: usage(stderr); return EXIT_USAGE;
        }
        if (bad) return EXIT_USAGE;
    }
    if (optind != argc - 1) {
        fprintf(stderr, "statebench plot: expected one database path, got %d arguments\n", argc - optind);
        usage(stderr);
        return EXIT_USAGE;
    }
    o.db_path = argv[optind];
    const plot_kind *kind = NULL;
    for (int i = 0; i < N_KINDS; i++)
        if (!strcmp(kind_name, kinds[i].name)) kind = &kinds[i];
    if (!kind) {
        fprintf(stderr, "statebench plot: --kind: '%s' is not known; allowed:", kind_name);
        for (int i = 0; i < N_KINDS; i++) fprintf(stderr, "%s %s", i ? "," : "", kinds[i].name);
        fprintf(stderr, "\n");
        return EXIT_USAGE;
    }
    if (strcmp(o.format, "png") && strcmp(o.format, "pdf") && strcmp(o.format, "svg")) {
        fprintf(stderr, "statebench plot: --format: '%s' is not known; allowed: png, pdf, svg\n", o.format);
        return EXIT_USAGE;
    }
    if (!groups_metric_valid(o.metric)) {
        fprintf(stderr, "statebench plot: --metric: '%s' is not known; allowed: " GROUPS_METRICS "\n",
                o.metric);
        return EXIT_USAGE;
    }
    if (o.x_field && kind->plot != plot_lengthgen) {
        fprintf(stderr, "statebench plot: --x: applies to --kind lengthgen only\n");
        return EXIT_USAGE;
    }
    if (metric_given && kind->plot == plot_throughput) {
        fprintf(stderr, "statebench plot: --metric: does not apply to --kind throughput (it draws tokens/s); "
                        "allowed with lengthgen, heatmap, curves\n");
        return EXIT_USAGE;
    }
    char template_path[PATH_MAX], style_path[PATH_MAX], out_dir[PATH_MAX];
    if (gp_find_template(kind->template_name, template_path, sizeof template_path) ||
        gp_find_template("style.gp", style_path, sizeof style_path))
        return EXIT_RUNTIME;
    o.template_path = template_path;
    o.style_path = style_path;
    if (!o.out_dir) {
        default_out_dir(o.db_path, out_dir, sizeof out_dir);
        o.out_dir = out_dir;
    }
    char err[512];
    sb_db *db = db_open_readonly(o.db_path, err, sizeof err);
    if (!db) {
        fprintf(stderr, "statebench plot: %s\n", err);
        return EXIT_RUNTIME;
    }
    int rc = kind->plot(&o, db);
    db_close(db);
    return rc;
}
