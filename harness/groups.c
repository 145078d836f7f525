/* groups.c: run selection (--where/--by/--best-over/--range), group labels from config fields (JSON1), summaries. */
#include "groups.h"

#include <limits.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

/* Statement parameters, the same number in every statement that selects:
 * ?1 any_experiment, ?2 experiment, ?3 any_task, ?4 task, ?5 all_status,
 * ?6 excluded label paths (JSON array), ?7 excluded path prefix, ?8 the
 * --where clauses (JSON array), ?9 the mixer's path, ?10 a field to count. */

/* ?8 is a JSON array of [path, typed value, text as given]. A clause holds
 * when the field equals the typed value (numbers as numbers, true/false as
 * 1/0) or, for a text or array field, the text as given. An absent field
 * never holds (coalesce turns the NULL of a missing field into "no"). */
#define WHERE_HOLDS(cfg)                                                                                    \
    "NOT EXISTS (SELECT 1 FROM json_each(?8) AS w WHERE NOT coalesce("                                      \
    "json_extract(" cfg ", json_extract(w.value, '$[0]')) IS json_extract(w.value, '$[1]')"                 \
    " OR (json_type(" cfg ", json_extract(w.value, '$[0]')) IN ('text', 'array', 'object')"                 \
    " AND json_extract(" cfg ", json_extract(w.value, '$[0]')) = json_extract(w.value, '$[2]')), 0))"

/* The selected runs. A config that is not valid JSON reads as {} so one
 * damaged row cannot break every JSON1 call. */
#define SELECTED_RUNS                                                                                       \
    "sel AS (SELECT id, experiment, task, mixer, seed, config FROM (SELECT id, experiment, task, mixer, seed," \
    " status, CASE WHEN json_valid(config) THEN config ELSE '{}' END AS config FROM runs)"                   \
    " WHERE (?1 OR experiment IS ?2) AND (?3 OR task IS ?4) AND (?5 OR status = 'done') AND "                \
    WHERE_HOLDS("config") ")"

/* A bench row's config with its columns as top-level keys, so --where and
 * --by reach them as they reach a run's config fields. */
#define BENCH_CONFIG                                                                                        \
    "json_set(CASE WHEN json_valid(config) THEN config ELSE '{}' END, '$.mixer', mixer, '$.device', device," \
    " '$.batch', batch, '$.direction', direction)"

/* One "run" per distinct (mixer, bench config). */
#define SELECTED_BENCH                                                                                      \
    "sel AS (SELECT min(id) AS id, NULL AS experiment, NULL AS task, mixer, 0 AS seed, config FROM"          \
    " (SELECT id, mixer, " BENCH_CONFIG " AS config FROM bench) WHERE " WHERE_HOLDS("config")                \
    " GROUP BY mixer, config)"

/* Leaves of each config as (path, value); arrays are one leaf. json_tree may
 * quote keys in fullkey ($.task."train_len"); our keys are identifiers, so
 * dropping the quotes gives the plain path users type. */
#define CONFIG_LEAVES                                                                       \
    "leaves AS (SELECT sel.id, sel.mixer, replace(t.fullkey, '\"', '') AS path,"            \
    " t.type || ':' || ifnull(t.value, '') AS value FROM sel, json_tree(sel.config) AS t"   \
    " WHERE t.type <> 'object' AND typeof(t.key) = 'text' AND instr(t.path, '[') = 0)"

/* A field that varies only from mixer to mixer (model.pos: rope for
 * attention, none for the others) adds nothing to a label that starts with
 * the mixer, so fields are the paths whose value (or presence) varies
 * among the runs of one mixer. Runs in different groups then always get
 * different labels: same mixer means some path varies within it. */
#define DIFFERING_FIELDS                                                                                    \
    CONFIG_LEAVES ","                                                                                       \
    " used AS (SELECT * FROM leaves WHERE path NOT IN ('$.seed', '$.experiment', ?9)"                       \
    "  AND path NOT IN (SELECT value FROM json_each(?6)) AND (?7 IS NULL OR substr(path, 1, length(?7)) <> ?7)),"  \
    " per_mixer AS (SELECT mixer, count(*) AS runs FROM sel GROUP BY mixer)"                                \
    " SELECT DISTINCT path FROM (SELECT u.path AS path FROM used AS u JOIN per_mixer AS m ON u.mixer IS m.mixer" \
    "  GROUP BY u.mixer, u.path HAVING count(DISTINCT u.value) > 1 OR count(*) < max(m.runs))"               \
    " ORDER BY path"

static const char *const fields_sql[2] = {
    "WITH " SELECTED_RUNS ", " DIFFERING_FIELDS,
    "WITH " SELECTED_BENCH ", " DIFFERING_FIELDS,
};

static const char *const runs_sql[2] = {
    "WITH " SELECTED_RUNS
    " SELECT id, experiment, task, mixer, seed, config,"
    "  json_type(config, '$.task.train_len'),"
    "  json_extract(config, '$.task.train_len[0]'), json_extract(config, '$.task.train_len[1]'),"
    "  json_extract(config, '$.task.train_len')"
    " FROM sel ORDER BY id",
    "WITH " SELECTED_BENCH " SELECT id, experiment, task, mixer, seed, config, NULL, NULL, NULL, NULL"
    " FROM sel ORDER BY id",
};

/* Points of one run: ?1 run id, ?2 metric, ?3 ?4 length range, ?5 mixer,
 * ?6 config. The metric is chosen by a bound name, so no column name is
 * ever pasted; a metric that is not a column of evals is the eval_metrics
 * row of the same step and n (db.h), NULL (no point) where there is none. */
static const char *const points_sql[2] = {
    "SELECT n, avg(CASE ?2 WHEN 'scaled_acc' THEN scaled_acc WHEN 'token_acc' THEN token_acc"
    "  WHEN 'seq_acc' THEN seq_acc WHEN 'loss' THEN loss ELSE (SELECT value FROM eval_metrics m"
    "  WHERE m.run_id = evals.run_id AND m.step = evals.step AND m.n = evals.n AND m.name = ?2) END) FROM evals"
    " WHERE run_id = ?1 AND step = (SELECT max(step) FROM evals WHERE run_id = ?1) AND n BETWEEN ?3 AND ?4"
    " GROUP BY n ORDER BY n",
    "SELECT n, tokens_per_s FROM bench WHERE id IN (SELECT max(id) FROM bench"
    " WHERE mixer IS ?5 AND " BENCH_CONFIG " = ?6 GROUP BY n) AND n BETWEEN ?3 AND ?4 ORDER BY n",
};

static const char *const count_sql[2] = {
    "WITH " SELECTED_RUNS " SELECT count(*), count(*) FILTER (WHERE json_type(config, ?10) IS NOT NULL) FROM sel",
    "WITH " SELECTED_BENCH " SELECT count(*), count(*) FILTER (WHERE json_type(config, ?10) IS NOT NULL) FROM sel",
};

static const char *const mixer_paths[2] = {"$.model.mixer", "$.mixer"};

static const char *const value_sql = "SELECT json_type(?1, ?2), json_extract(?1, ?2)";

static const char *const metrics[] = {"scaled_acc", "token_acc", "seq_acc", "loss", "plain_token_acc"};

int groups_metric_valid(const char *metric)
{
    for (size_t i = 0; i < sizeof metrics / sizeof metrics[0]; i++)
        if (metric && !strcmp(metric, metrics[i])) return 1;
    return 0;
}

int groups_lower_is_better(const char *metric)
{
    return metric && !strcmp(metric, "loss");
}

int groups_field_path(const char *field, char *path, size_t len)
{
    if (!field || !*field) return -1;
    int at_start = 1;
    for (const char *p = field; *p; p++) {
        if (*p == '.') {
            if (at_start) return -1;
            at_start = 1;
        } else if ((*p >= 'a' && *p <= 'z') || (!at_start && ((*p >= '0' && *p <= '9') || *p == '_'))) {
            at_start = 0;
        } else {
            return -1;
        }
    }
    if (at_start) return -1;
    int written = snprintf(path, len, "$.%s", field);
    return written > 0 && (size_t)written < len ? 0 : -1;
}

static const char field_rule[] = "allowed: a config field of lowercase names joined by dots (model.mixer, task.name)";

/* Copies the field name text[0..len) into a JSON path; -1 when not allowed. */
static int field_to_path(const char *text, size_t len, char path[GRP_PATH_LEN])
{
    char field[GRP_PATH_LEN];
    if (len >= sizeof field) return -1;
    memcpy(field, text, len);
    field[len] = '\0';
    return groups_field_path(field, path, GRP_PATH_LEN);
}

int groups_add_by(const char *cmd, const char *text, grp_selection *s)
{
    const char *start = text;
    for (;;) {
        const char *comma = strchr(start, ',');
        int len = comma ? (int)(comma - start) : (int)strlen(start);
        char path[GRP_PATH_LEN];
        if (field_to_path(start, (size_t)len, path)) {
            fprintf(stderr, "statebench %s: --by: '%.*s' is not allowed; %s, comma-separated\n", cmd, len, start,
                    field_rule);
            return -1;
        }
        if (s->n_by == GRP_MAX_FIELDS) {
            fprintf(stderr, "statebench %s: --by: at most %d fields are allowed\n", cmd, GRP_MAX_FIELDS);
            return -1;
        }
        for (int i = 0; i < s->n_by; i++)
            if (!strcmp(s->by[i], path)) {
                fprintf(stderr, "statebench %s: --by: '%s' is given twice; allowed: each field once\n", cmd, path + 2);
                return -1;
            }
        memcpy(s->by[s->n_by++], path, sizeof path);
        if (!comma) return 0;
        start = comma + 1;
    }
}

int groups_add_where(const char *cmd, const char *text, grp_selection *s)
{
    const char *eq = strchr(text, '=');
    if (!eq) {
        fprintf(stderr, "statebench %s: --where: '%s' is not allowed; allowed: FIELD=VALUE, e.g. task.name=parity\n",
                cmd, text);
        return -1;
    }
    char path[GRP_PATH_LEN];
    if (field_to_path(text, (size_t)(eq - text), path)) {
        fprintf(stderr, "statebench %s: --where: the field '%.*s' is not allowed; %s\n", cmd, (int)(eq - text), text,
                field_rule);
        return -1;
    }
    if (s->n_where == GRP_MAX_FIELDS) {
        fprintf(stderr, "statebench %s: --where: at most %d clauses are allowed\n", cmd, GRP_MAX_FIELDS);
        return -1;
    }
    memcpy(s->where[s->n_where], path, sizeof path);
    s->where_value[s->n_where] = eq + 1;
    s->where_text[s->n_where] = text;
    s->n_where++;
    return 0;
}

int groups_set_best_over(const char *cmd, const char *text, grp_selection *s)
{
    if (groups_field_path(text, s->best_over, sizeof s->best_over) == 0) return 0;
    s->best_over[0] = '\0';
    fprintf(stderr, "statebench %s: --best-over: '%s' is not allowed; %s (train.lr)\n", cmd, text, field_rule);
    return -1;
}

int groups_set_range(const char *cmd, const char *text, grp_selection *s)
{
    char *end = NULL;
    long lo = strtol(text, &end, 10), hi = 0;
    int ok = end != text && *end == ':';
    if (ok) {
        const char *rest = end + 1;
        hi = strtol(rest, &end, 10);
        ok = end != rest && *end == '\0' && lo >= 1 && hi >= lo && hi <= INT_MAX;
    }
    if (!ok) {
        fprintf(stderr, "statebench %s: --range: '%s' is not allowed; allowed: LO:HI with 1 <= LO <= HI, e.g. 64:256\n",
                cmd, text);
        return -1;
    }
    s->n_lo = (int)lo;
    s->n_hi = (int)hi;
    return 0;
}

void groups_describe_where(const grp_selection *sel, char *out, size_t len)
{
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; sel && i < sel->n_where && used < len; i++) {
        int written = snprintf(out + used, len - used, "%s --where %s", i ? "" : " matching", sel->where_text[i]);
        if (written < 0) break;
        used += (size_t)written;
    }
}

static char *dup_or_null(const unsigned char *text)
{
    return text ? strdup((const char *)text) : NULL;
}

/* A value as given on the command line, as JSON: a plain decimal number as
 * a number, true/false as booleans, anything else as a string. */
static void json_typed_value(json_buf *j, const char *text)
{
    char *end = NULL;
    double v = strtod(text, &end);
    int numeric = *text && strspn(text, "0123456789+-.eE") == strlen(text) && end && *end == '\0' && isfinite(v);
    if (numeric) json_double(j, v);
    else if (!strcmp(text, "true") || !strcmp(text, "false")) json_bool(j, !strcmp(text, "true"));
    else json_string(j, text);
}

/* The JSON arrays bound to ?6 (exclusions) and ?8 (--where); malloc'd. */
static char *where_json(const grp_selection *sel)
{
    json_buf j;
    json_init(&j);
    json_array_begin(&j);
    for (int i = 0; sel && i < sel->n_where; i++) {
        json_array_begin(&j);
        json_string(&j, sel->where[i]);
        json_typed_value(&j, sel->where_value[i]);
        json_string(&j, sel->where_value[i]);
        json_array_end(&j);
    }
    json_array_end(&j);
    return json_finish(&j);
}

static char *exclude_json(const grp_filter *f)
{
    json_buf j;
    json_init(&j);
    json_array_begin(&j);
    for (int i = 0; i < GRP_MAX_EXCLUDE; i++)
        if (f->exclude[i]) json_string(&j, f->exclude[i]);
    if (f->sel && f->sel->best_over[0]) json_string(&j, f->sel->best_over);
    json_array_end(&j);
    return json_finish(&j);
}

/* Binds ?1..?9 of a selecting statement (those it does not use are
 * ignored by SQLite's numbering: every statement uses ?8 or above). */
static void bind_selection(sqlite3_stmt *st, const grp_filter *f, const char *where, const char *exclude)
{
    sqlite3_bind_int(st, 1, f->any_experiment);
    if (f->experiment) sqlite3_bind_text(st, 2, f->experiment, -1, SQLITE_TRANSIENT);
    else sqlite3_bind_null(st, 2);
    sqlite3_bind_int(st, 3, f->any_task);
    if (f->task) sqlite3_bind_text(st, 4, f->task, -1, SQLITE_TRANSIENT);
    else sqlite3_bind_null(st, 4);
    sqlite3_bind_int(st, 5, f->all_status);
    if (exclude) sqlite3_bind_text(st, 6, exclude, -1, SQLITE_TRANSIENT);
    if (f->exclude_prefix) sqlite3_bind_text(st, 7, f->exclude_prefix, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 8, where, -1, SQLITE_TRANSIENT);
    if (sqlite3_bind_parameter_count(st) >= 9) sqlite3_bind_text(st, 9, mixer_paths[f->source], -1, SQLITE_STATIC);
}

static int sql_error(sqlite3 *h, const char *what, char *err, size_t errlen)
{
    snprintf(err, errlen, "%s: %s", what, sqlite3_errmsg(h));
    return -1;
}

const char *groups_field_key(const char *path)
{
    const char *dot = strrchr(path, '.');
    return dot ? dot + 1 : path;
}

/* Reads the value of path in config with an already prepared value_sql. */
static char *config_value(sqlite3_stmt *st, const char *config, const char *path)
{
    sqlite3_bind_text(st, 1, config, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, path, -1, SQLITE_TRANSIENT);
    char *value = NULL;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
        const char *type = (const char *)sqlite3_column_text(st, 0);
        if (!strcmp(type, "true") || !strcmp(type, "false") || !strcmp(type, "null")) value = strdup(type);
        else value = dup_or_null(sqlite3_column_text(st, 1));
    }
    sqlite3_reset(st);
    return value;
}

char *groups_config_value(sb_db *db, const char *config, const char *path)
{
    sqlite3 *h = db_handle(db);
    sqlite3_stmt *st = NULL;
    char *value = NULL;
    if (sqlite3_prepare_v2(h, value_sql, -1, &st, NULL) == SQLITE_OK) value = config_value(st, config, path);
    sqlite3_finalize(st);
    return value;
}

static int add_field(grp_set *out, const char *path)
{
    char **grown = realloc(out->fields, (size_t)(out->n_fields + 1) * sizeof *grown);
    if (!grown) return -1;
    out->fields = grown;
    return (out->fields[out->n_fields++] = strdup(path)) ? 0 : -1;
}

static int load_fields(sqlite3 *h, const grp_filter *f, const char *where, grp_set *out, char *err, size_t errlen)
{
    if (f->sel && f->sel->n_by > 0) {
        for (int i = 0; i < f->sel->n_by; i++)
            if (add_field(out, f->sel->by[i])) {
                snprintf(err, errlen, "read the runs: out of memory");
                return -1;
            }
        return 0;
    }
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(h, fields_sql[f->source], -1, &st, NULL) != SQLITE_OK)
        return sql_error(h, "find the fields that differ between runs", err, errlen);
    char *exclude = exclude_json(f);
    bind_selection(st, f, where, exclude);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        if (add_field(out, (const char *)sqlite3_column_text(st, 0))) break;
    if (rc != SQLITE_DONE) sql_error(h, "find the fields that differ between runs", err, errlen);
    sqlite3_finalize(st);
    free(exclude);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* Label names use the last path component unless two label fields share
 * it (train.batch and eval.batch), then the whole dotted path. */
static const char *label_key(const grp_set *s, int field)
{
    const char *key = groups_field_key(s->fields[field]);
    for (int j = 0; j < s->n_fields; j++)
        if (j != field && !strcmp(groups_field_key(s->fields[j]), key)) return s->fields[field] + 2;
    return key;
}

static int append(char **label, size_t *len, size_t *cap, const char *part)
{
    size_t need = *len + strlen(part) + 1;
    if (need > *cap) {
        while (*cap < need) *cap *= 2;
        char *grown = realloc(*label, *cap);
        if (!grown) return -1;
        *label = grown;
    }
    memcpy(*label + *len, part, strlen(part) + 1);
    *len += strlen(part);
    return 0;
}

/* The label of r: see groups_load. */
static char *make_label(sqlite3_stmt *value_st, const grp_filter *f, const grp_set *s, const grp_run *r)
{
    size_t cap = 64, len = 0;
    char *label = malloc(cap);
    if (!label) return NULL;
    label[0] = '\0';
    int by = f->sel && f->sel->n_by > 0, ok = 1;
    if (!by) ok = append(&label, &len, &cap, r->mixer ? r->mixer : "?") == 0;
    for (int i = 0; ok && i < s->n_fields; i++) {
        char *value = config_value(value_st, r->config, s->fields[i]);
        if (!value) continue;
        char part[512];
        if (!strcmp(s->fields[i], mixer_paths[f->source]))
            snprintf(part, sizeof part, "%s%s", len ? " " : "", value);
        else
            snprintf(part, sizeof part, "%s%s=%s", len ? " " : "", label_key(s, i), value);
        free(value);
        ok = append(&label, &len, &cap, part) == 0;
    }
    for (int i = 0; ok && len == 0 && i < s->n_fields; i++) { /* no --by field present: say so */
        char part[256];
        snprintf(part, sizeof part, "%s%s=-", i ? " " : "", label_key(s, i));
        ok = append(&label, &len, &cap, part) == 0;
    }
    if (!ok) {
        free(label);
        return NULL;
    }
    for (char *p = label; *p; p++) /* one line in tables, legends and data files */
        if ((unsigned char)*p < 0x20) *p = ' ';
    return label;
}

static int load_points(sqlite3_stmt *st, const grp_filter *f, grp_run *r)
{
    const grp_selection *sel = f->sel;
    sqlite3_bind_int64(st, 1, r->id);
    sqlite3_bind_int(st, 3, sel && sel->n_hi ? sel->n_lo : INT_MIN);
    sqlite3_bind_int(st, 4, sel && sel->n_hi ? sel->n_hi : INT_MAX);
    if (f->source == GRP_SOURCE_BENCH) {
        sqlite3_bind_text(st, 5, r->mixer, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 6, r->config, -1, SQLITE_TRANSIENT);
    } else {
        sqlite3_bind_text(st, 2, f->metric ? f->metric : "scaled_acc", -1, SQLITE_TRANSIENT);
    }
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (sqlite3_column_type(st, 1) == SQLITE_NULL) continue;
        grp_point *grown = realloc(r->points, (size_t)(r->n_points + 1) * sizeof *grown);
        if (!grown) break;
        r->points = grown;
        r->points[r->n_points].n = sqlite3_column_int(st, 0);
        r->points[r->n_points].value = sqlite3_column_double(st, 1);
        r->n_points++;
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

static void read_train_len(sqlite3_stmt *st, grp_run *r)
{
    const char *type = (const char *)sqlite3_column_text(st, 6);
    if (type && !strcmp(type, "array")) {
        r->train_lo = sqlite3_column_int(st, 7);
        r->train_hi = sqlite3_column_int(st, 8);
    } else if (type && !strcmp(type, "integer")) {
        r->train_lo = r->train_hi = sqlite3_column_int(st, 9);
    }
}

int groups_load(sb_db *db, const grp_filter *f, grp_set *out, char *err, size_t errlen)
{
    sqlite3 *h = db_handle(db);
    sqlite3_stmt *runs_st = NULL, *points_st = NULL, *value_st = NULL;
    int rc = SQLITE_ERROR;
    memset(out, 0, sizeof *out);
    const char *metric = f->metric ? f->metric : "scaled_acc";
    if (!groups_metric_valid(metric)) {
        snprintf(err, errlen, "metric '%s' is not known; allowed: " GROUPS_METRICS, metric);
        return -1;
    }
    char *where = where_json(f->sel);
    if (load_fields(h, f, where, out, err, errlen)) goto done;
    if (sqlite3_prepare_v2(h, runs_sql[f->source], -1, &runs_st, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(h, points_sql[f->source], -1, &points_st, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(h, value_sql, -1, &value_st, NULL) != SQLITE_OK) {
        sql_error(h, "read the runs", err, errlen);
        goto done;
    }
    bind_selection(runs_st, f, where, NULL);
    while ((rc = sqlite3_step(runs_st)) == SQLITE_ROW) {
        grp_run *grown = realloc(out->runs, (size_t)(out->count + 1) * sizeof *grown);
        if (!grown) {
            snprintf(err, errlen, "read the runs: out of memory");
            goto done;
        }
        out->runs = grown;
        grp_run *r = &out->runs[out->count++];
        memset(r, 0, sizeof *r);
        r->id = sqlite3_column_int64(runs_st, 0);
        r->experiment = dup_or_null(sqlite3_column_text(runs_st, 1));
        r->task = dup_or_null(sqlite3_column_text(runs_st, 2));
        r->mixer = dup_or_null(sqlite3_column_text(runs_st, 3));
        r->seed = sqlite3_column_int64(runs_st, 4);
        r->config = dup_or_null(sqlite3_column_text(runs_st, 5));
        read_train_len(runs_st, r);
        r->label = r->config ? make_label(value_st, f, out, r) : NULL;
        if (f->sel && f->sel->best_over[0] && r->config) r->best_key = config_value(value_st, r->config, f->sel->best_over);
        if (!r->config || !r->label) {
            snprintf(err, errlen, "read the runs: out of memory");
            rc = SQLITE_NOMEM;
            goto done;
        }
        if (load_points(points_st, f, r)) {
            sql_error(h, f->source == GRP_SOURCE_BENCH ? "read the bench rows" : "read the evals", err, errlen);
            rc = SQLITE_ERROR;
            goto done;
        }
    }
    if (rc != SQLITE_DONE) sql_error(h, "read the runs", err, errlen);
done:
    sqlite3_finalize(runs_st);
    sqlite3_finalize(points_st);
    sqlite3_finalize(value_st);
    free(where);
    if (rc == SQLITE_DONE) return 0;
    groups_free(out);
    return -1;
}

void groups_free(grp_set *s)
{
    for (int i = 0; i < s->count; i++) {
        grp_run *r = &s->runs[i];
        free(r->experiment);
        free(r->task);
        free(r->mixer);
        free(r->config);
        free(r->label);
        free(r->best_key);
        free(r->points);
    }
    for (int i = 0; i < s->n_fields; i++) free(s->fields[i]);
    free(s->runs);
    free(s->fields);
    memset(s, 0, sizeof *s);
}

int groups_scopes(sb_db *db, const grp_filter *f, int by_task, grp_scope **out, int *count, char *err,
                  size_t errlen)
{
    static const char *const sql[2] = {
        "WITH " SELECTED_RUNS " SELECT DISTINCT experiment, NULL FROM sel ORDER BY 1",
        "WITH " SELECTED_RUNS " SELECT DISTINCT experiment, task FROM sel ORDER BY 1, 2",
    };
    sqlite3 *h = db_handle(db);
    *out = NULL;
    *count = 0;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(h, sql[by_task ? 1 : 0], -1, &st, NULL) != SQLITE_OK)
        return sql_error(h, "list experiments and tasks", err, errlen);
    grp_filter any = *f;
    any.any_experiment = any.any_task = 1;
    char *where = where_json(f->sel);
    bind_selection(st, &any, where, NULL);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        grp_scope *grown = realloc(*out, (size_t)(*count + 1) * sizeof *grown);
        if (!grown) break;
        *out = grown;
        grown[*count].experiment = dup_or_null(sqlite3_column_text(st, 0));
        grown[*count].task = dup_or_null(sqlite3_column_text(st, 1));
        (*count)++;
    }
    if (rc != SQLITE_DONE) sql_error(h, "list experiments and tasks", err, errlen);
    sqlite3_finalize(st);
    free(where);
    if (rc == SQLITE_DONE) return 0;
    groups_scopes_free(*out, *count);
    *out = NULL;
    *count = 0;
    return -1;
}

void groups_scopes_free(grp_scope *scopes, int count)
{
    for (int i = 0; i < count; i++) {
        free(scopes[i].experiment);
        free(scopes[i].task);
    }
    free(scopes);
}

int groups_count_selected(sb_db *db, const grp_filter *f, const char *field, int64_t *selected,
                          int64_t *with_field, char *err, size_t errlen)
{
    sqlite3 *h = db_handle(db);
    sqlite3_stmt *st = NULL;
    grp_filter any = *f;
    any.any_experiment = any.any_task = 1;
    char *where = where_json(f->sel);
    int ok = sqlite3_prepare_v2(h, count_sql[f->source], -1, &st, NULL) == SQLITE_OK;
    if (ok) {
        bind_selection(st, &any, where, NULL);
        if (field) sqlite3_bind_text(st, 10, field, -1, SQLITE_TRANSIENT);
        ok = sqlite3_step(st) == SQLITE_ROW;
    }
    if (ok) {
        *selected = sqlite3_column_int64(st, 0);
        if (with_field) *with_field = sqlite3_column_int64(st, 1);
    } else {
        sql_error(h, "count the selected runs", err, errlen);
    }
    sqlite3_finalize(st);
    free(where);
    return ok ? 0 : -1;
}

int groups_check_fields(sb_db *db, const grp_filter *f, const char *cmd)
{
    const grp_selection *sel = f->sel;
    char err[512];
    for (int i = 0; sel && i <= sel->n_by; i++) {
        const char *path = i < sel->n_by ? sel->by[i] : sel->best_over;
        if (!path[0]) continue;
        int64_t selected = 0, with_field = 0;
        if (groups_count_selected(db, f, path, &selected, &with_field, err, sizeof err)) {
            fprintf(stderr, "statebench %s: %s\n", cmd, err);
            return -1;
        }
        if (selected > 0 && with_field == 0) {
            fprintf(stderr, "statebench %s: %s: no selected %s has the config field '%s'; allowed: a field of the "
                            "resolved configs (see `statebench models` and `statebench tasks`)\n",
                    cmd, i < sel->n_by ? "--by" : "--best-over",
                    f->source == GRP_SOURCE_BENCH ? "bench row" : "run", path + 2);
            return -1;
        }
    }
    return 0;
}

int groups_count_runs(sb_db *db, int64_t *total, int64_t *done, char *err, size_t errlen)
{
    sqlite3 *h = db_handle(db);
    sqlite3_stmt *st = NULL;
    int ok = sqlite3_prepare_v2(h, "SELECT count(*), count(*) FILTER (WHERE status = 'done') FROM runs", -1,
                                &st, NULL) == SQLITE_OK &&
             sqlite3_step(st) == SQLITE_ROW;
    if (ok) {
        *total = sqlite3_column_int64(st, 0);
        *done = sqlite3_column_int64(st, 1);
    } else {
        sql_error(h, "count the runs", err, errlen);
    }
    sqlite3_finalize(st);
    return ok ? 0 : -1;
}

int groups_compare_keys(const char *a, const char *b)
{
    char *end_a, *end_b;
    double x = strtod(a, &end_a), y = strtod(b, &end_b);
    int num_a = *a && !*end_a, num_b = *b && !*end_b;
    if (num_a && num_b && x != y) return x < y ? -1 : 1;
    if (num_a != num_b) return num_a ? -1 : 1;
    return strcmp(a, b);
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Stats of values[0..count), count >= 1; sorts values. */
static void stats_of(double *values, int count, int agg, grp_stats *out)
{
    qsort(values, (size_t)count, sizeof *values, compare_doubles);
    double sum = 0;
    for (int i = 0; i < count; i++) sum += values[i];
    out->mean = sum / count;
    out->min = values[0];
    out->max = values[count - 1];
    out->count = count;
    double median = count % 2 ? values[count / 2] : 0.5 * (values[count / 2 - 1] + values[count / 2]);
    out->value = agg == GRP_AGG_MAX ? out->max : agg == GRP_AGG_MEDIAN ? median : out->mean;
}

typedef struct {
    const char *key;
    double value;
    int index;
} keyed_value;

static int compare_keyed(const void *a, const void *b)
{
    const keyed_value *x = a, *y = b;
    int c = groups_compare_keys(x->key ? x->key : "-", y->key ? y->key : "-");
    return c ? c : (x->index > y->index) - (x->index < y->index);
}

static int same_key(const char *a, const char *b)
{
    return !groups_compare_keys(a ? a : "-", b ? b : "-");
}

int groups_summarise(double *values, const char **keys, int count, int agg, int lower_is_better, grp_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!keys) {
        stats_of(values, count, agg, out);
        return 0;
    }
    keyed_value *sorted = malloc((size_t)count * sizeof *sorted);
    double *part = malloc((size_t)count * sizeof *part);
    if (!sorted || !part) {
        free(sorted);
        free(part);
        return -1;
    }
    for (int i = 0; i < count; i++) sorted[i] = (keyed_value){keys[i], values[i], i};
    qsort(sorted, (size_t)count, sizeof *sorted, compare_keyed);
    int have = 0;
    for (int start = 0; start < count;) {
        int end = start;
        while (end < count && same_key(sorted[start].key, sorted[end].key)) end++;
        for (int i = start; i < end; i++) part[i - start] = sorted[i].value;
        grp_stats s;
        stats_of(part, end - start, agg, &s);
        s.best = sorted[start].key;
        int better = lower_is_better ? s.value < out->value : s.value > out->value;
        if (!have || better) *out = s;
        have = 1;
        start = end;
    }
    for (int i = 0; i < count; i++) values[i] = sorted[i].value;
    free(sorted);
    free(part);
    return 0;
}

int groups_load_curves(sb_db *db, int64_t run_id, grp_curve_point **out, int *count, char *err, size_t errlen)
{
    sqlite3 *h = db_handle(db);
    sqlite3_stmt *st = NULL;
    *out = NULL;
    *count = 0;
    if (sqlite3_prepare_v2(h, "SELECT step, loss, acc FROM curves WHERE run_id = ?1 ORDER BY step", -1, &st, NULL) !=
        SQLITE_OK)
        return sql_error(h, "read the curves", err, errlen);
    sqlite3_bind_int64(st, 1, run_id);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        grp_curve_point *grown = realloc(*out, (size_t)(*count + 1) * sizeof *grown);
        if (!grown) break;
        *out = grown;
        grown[*count] = (grp_curve_point){
            .step = sqlite3_column_int64(st, 0),
            .loss = sqlite3_column_type(st, 1) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 1),
            .acc = sqlite3_column_type(st, 2) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 2)};
        (*count)++;
    }
    if (rc != SQLITE_DONE) sql_error(h, "read the curves", err, errlen);
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE) return 0;
    free(*out);
    *out = NULL;
    *count = 0;
    return -1;
}
