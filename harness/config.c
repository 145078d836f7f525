/* config.c: loads an experiment from YAML (libyaml document API, whose node
 * marks give FILE:LINE:COL errors) and expands its sweep into run specs. */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "options.h"
#include "../tasks/task.h"

#define MAX_RUNS 1000000                /* runs one config may expand to */
#define MAX_SEED 9007199254740991ULL    /* 2^53 - 1: exact in every JSON reader */

/* A key of task/model/train/eval and its value node. */
typedef struct {
    const sb_option *opt;
    yaml_node_t *key, *value;
} setting;

/* One key of a sweep axis: its values are the items of a sequence node. */
typedef struct {
    const sb_option *opt;
    yaml_node_t *key, *values;
} axis_key;

/* A grid axis: one key, or the keys of a zip group advancing together. */
typedef struct {
    axis_key *keys;
    int n_keys, len;
} axis_group;

/* Notices about one option, gathered over all runs. */
typedef struct {
    option_note kind;
    char *reasons;      /* distinct reasons, ", "-joined */
    long long count;    /* runs affected */
    yaml_mark_t mark;   /* where the config sets the option */
} note_acc;

typedef struct {
    const char *path;
    char *text;
    size_t text_len;
    yaml_document_t doc;
    int have_doc;
    char *err;
    size_t errlen;
    yaml_node_t *root, *task_key;
    char *name, *description;
    setting *base;
    int n_base;
    axis_group *groups;
    int n_groups;
    uint64_t *seeds;
    int n_seeds;
    note_acc *notes;    /* [sb_option_count] */
    /* per run being resolved: where each option was set (NULL: default) */
    yaml_node_t **set_key, **set_value;
    long long runs_per_point;
    const char *variant;      /* the variant asked for, or NULL */
    yaml_node_t *variants;    /* the `variants:` mapping, or NULL */
} loader;

static const char *const top_keys[] = {"name", "description", "seeds", "task",
                                       "model", "train", "eval", "sweep", "variants"};
#define N_TOP ((int)(sizeof top_keys / sizeof top_keys[0]))

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p) {
        fprintf(stderr, "statebench: out of memory (config, %zu x %zu bytes)\n", n, size);
        abort();
    }
    return p;
}

static char *xstrdup(const char *s)
{
    char *d = strdup(s);
    if (!d) {
        fprintf(stderr, "statebench: out of memory (config)\n");
        abort();
    }
    return d;
}

static void appendf(char *out, size_t outlen, const char *fmt, ...)
{
    size_t used = strlen(out);
    if (used + 1 >= outlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out + used, outlen - used, fmt, ap);
    va_end(ap);
}

static int fail_at(loader *L, size_t line, size_t col, const char *fmt, ...)
{
    snprintf(L->err, L->errlen, "%s:%zu:%zu: ", L->path, line, col);
    size_t used = strlen(L->err);
    if (used + 1 < L->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(L->err + used, L->errlen - used, fmt, ap);
        va_end(ap);
    }
    return -1;
}

#define fail(L, node, ...) fail_at((L), (node)->start_mark.line + 1, (node)->start_mark.column + 1, __VA_ARGS__)

static yaml_node_t *node_at(loader *L, int index)
{
    return yaml_document_get_node(&L->doc, index);
}

static const char *scalar(const yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static const char *node_kind(const yaml_node_t *n)
{
    return n->type == YAML_SEQUENCE_NODE ? "a list" : n->type == YAML_MAPPING_NODE ? "a mapping" : "a value";
}

/* Value of a node as text for messages: "lstm", "[deltanet, attention]". */
static void node_text(loader *L, const yaml_node_t *n, char *out, size_t outlen)
{
    out[0] = '\0';
    if (n->type == YAML_SCALAR_NODE) {
        appendf(out, outlen, "%s", scalar(n));
    } else if (n->type == YAML_SEQUENCE_NODE) {
        appendf(out, outlen, "[");
        for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
            char inner[128];
            node_text(L, node_at(L, *it), inner, sizeof inner);
            appendf(out, outlen, "%s%s", it == n->data.sequence.items.start ? "" : ", ", inner);
        }
        appendf(out, outlen, "]");
    } else {
        appendf(out, outlen, "{...}");
    }
}

static void section_keys(const char *section, char *out, size_t outlen)
{
    out[0] = '\0';
    size_t n = strlen(section);
    for (int i = 0; i < sb_option_count; i++)
        if (strncmp(sb_options[i].name, section, n) == 0 && sb_options[i].name[n] == '.')
            appendf(out, outlen, "%s%s", out[0] ? ", " : "", option_key(&sb_options[i]));
}

static void all_keys(char *out, size_t outlen)
{
    out[0] = '\0';
    for (int i = 0; i < sb_option_count; i++)
        appendf(out, outlen, "%s%s", i ? ", " : "", sb_options[i].name);
}

/* Keys of a mapping must be names, each once. */
static int check_mapping(loader *L, yaml_node_t *map, const char *where)
{
    yaml_node_pair_t *start = map->data.mapping.pairs.start;
    for (yaml_node_pair_t *p = start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node_at(L, p->key);
        if (!scalar(k))
            return fail(L, k, "%s: a key must be a name, not %s; allowed: plain names", where, node_kind(k));
        for (yaml_node_pair_t *q = start; q < p; q++) {
            yaml_node_t *prev = node_at(L, q->key);
            if (strcmp(scalar(prev), scalar(k)) == 0)
                return fail(L, k, "duplicate key '%s' in %s (first at line %zu); allowed: each key once",
                            scalar(k), where, prev->start_mark.line + 1);
        }
    }
    return 0;
}

/* Sets o in s from a value node (scalar, or a list of scalars for list
 * options); errors point at the offending element. */
static int apply_node(loader *L, run_spec *s, const sb_option *o, yaml_node_t *v)
{
    char allowed[400], msg[768];
    option_allowed(o, allowed, sizeof allowed);
    if (v->type == YAML_MAPPING_NODE)
        return fail(L, v, "%s takes a value or a list, not a mapping; allowed: %s", o->name, allowed);
    int n = 1, as_list = v->type == YAML_SEQUENCE_NODE;
    const char *one[1];
    const char **items = one;
    yaml_node_t **nodes = NULL;
    if (as_list) {
        n = (int)(v->data.sequence.items.top - v->data.sequence.items.start);
        items = xcalloc((size_t)n, sizeof *items);
        nodes = xcalloc((size_t)n, sizeof *nodes);
        for (int i = 0; i < n; i++) {
            nodes[i] = node_at(L, v->data.sequence.items.start[i]);
            items[i] = scalar(nodes[i]);
            if (!items[i]) {
                int rc = fail(L, nodes[i], "%s: list elements must be plain values, not %s; allowed: %s",
                              o->name, node_kind(nodes[i]), allowed);
                free(items);
                free(nodes);
                return rc;
            }
        }
    } else {
        one[0] = scalar(v);
    }
    int bad = -1;
    int rc = option_set_items(s, o, items, n, as_list, &bad, msg, sizeof msg);
    if (rc != 0) fail(L, bad >= 0 ? nodes[bad] : v, "%s", msg);
    if (as_list) {
        free(items);
        free(nodes);
    }
    return rc;
}

/* Checks a value against its option, whatever the rest of the spec. */
static int validate_node(loader *L, const sb_option *o, yaml_node_t *v)
{
    run_spec scratch;
    spec_defaults(&scratch, 0);
    return apply_node(L, &scratch, o, v);
}

static int load_section(loader *L, yaml_node_t *key, yaml_node_t *map)
{
    const char *section = scalar(key);
    char keys[600];
    section_keys(section, keys, sizeof keys);
    if (map->type != YAML_MAPPING_NODE)
        return fail(L, map, "%s must be a mapping of keys (%s: {key: value, ...}), not %s; allowed keys: %s",
                    section, section, node_kind(map), keys);
    if (check_mapping(L, map, section) != 0) return -1;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node_at(L, p->key), *v = node_at(L, p->value);
        size_t len = strlen(section) + strlen(scalar(k)) + 2;
        char *dotted = xcalloc(len, 1);
        snprintf(dotted, len, "%s.%s", section, scalar(k));
        const sb_option *o = option_find(dotted);
        free(dotted);
        if (!o) {
            const sb_option *near = option_closest(scalar(k), section);
            char tmp[8], other[16];
            const sb_option *elsewhere = option_lookup(scalar(k), tmp, sizeof tmp);
            if (elsewhere) /* a key of another section */
                return fail(L, k, "unknown key '%s' in %s (did you mean %s: {%s: ...}?); allowed: %s", scalar(k),
                            section, option_section(elsewhere, other, sizeof other), scalar(k), keys);
            if (near)
                return fail(L, k, "unknown key '%s' in %s (did you mean '%s'?); allowed: %s", scalar(k),
                            section, option_key(near), keys);
            return fail(L, k, "unknown key '%s' in %s; allowed: %s", scalar(k), section, keys);
        }
        if (validate_node(L, o, v) != 0) return -1;
        L->base[L->n_base++] = (setting){o, k, v};
    }
    return 0;
}

static int parse_seed(const char *text, uint64_t *out)
{
    if (!*text || strspn(text, "0123456789") != strlen(text)) return -1;
    errno = 0;
    unsigned long long v = strtoull(text, NULL, 10);
    if (errno || v > MAX_SEED) return -1;
    *out = v;
    return 0;
}

static int load_seeds(loader *L, yaml_node_t *v)
{
    const char *allowed = "distinct integers in 0..9007199254740991, e.g. seeds: [0, 1, 2]";
    if (v->type == YAML_MAPPING_NODE) return fail(L, v, "seeds must be a list, not a mapping; allowed: %s", allowed);
    int n = v->type == YAML_SCALAR_NODE ? 1 : (int)(v->data.sequence.items.top - v->data.sequence.items.start);
    if (n == 0) return fail(L, v, "seeds: empty list; allowed: %s", allowed);
    L->seeds = xcalloc((size_t)n, sizeof *L->seeds);
    for (int i = 0; i < n; i++) {
        yaml_node_t *e = v->type == YAML_SCALAR_NODE ? v : node_at(L, v->data.sequence.items.start[i]);
        if (!scalar(e)) return fail(L, e, "seeds: an element is %s; allowed: %s", node_kind(e), allowed);
        if (parse_seed(scalar(e), &L->seeds[i]) != 0)
            return fail(L, e, "seeds: '%s' is not a seed; allowed: %s", scalar(e), allowed);
        for (int j = 0; j < i; j++)
            if (L->seeds[j] == L->seeds[i])
                return fail(L, e, "seeds: %s appears twice; allowed: %s", scalar(e), allowed);
        L->n_seeds = i + 1;
    }
    return 0;
}

/* First place an axis key appears in the sweep, or NULL. */
static const axis_key *find_axis(const loader *L, const sb_option *o)
{
    for (int g = 0; g < L->n_groups; g++)
        for (int k = 0; k < L->groups[g].n_keys; k++)
            if (L->groups[g].keys[k].opt == o) return &L->groups[g].keys[k];
    return NULL;
}

static int load_axis(loader *L, yaml_node_t *k, yaml_node_t *v, axis_key *out)
{
    const char *name = scalar(k);
    const sb_option *o = option_find(name);
    if (!o) {
        char keys[1000];
        all_keys(keys, sizeof keys);
        const sb_option *near = option_closest(name, NULL);
        if (!near && !strchr(name, '.')) {
            char tmp[8];
            near = option_lookup(name, tmp, sizeof tmp); /* a bare key naming one option */
        }
        if (near)
            return fail(L, k, "unknown sweep axis '%s' (did you mean '%s'?); allowed: %s", name, near->name, keys);
        return fail(L, k, "unknown sweep axis '%s'; allowed: %s", name, keys);
    }
    const axis_key *dup = find_axis(L, o);
    if (dup)
        return fail(L, k, "sweep axis %s appears twice (first at line %zu); allowed: each key in one axis",
                    name, dup->key->start_mark.line + 1);
    if (v->type != YAML_SEQUENCE_NODE)
        return fail(L, v, "sweep axis %s needs a list of values (%s: [a, b]), not %s; allowed: a list whose "
                    "elements are values of %s (lists themselves for list keys)", name, name, node_kind(v), name);
    int len = (int)(v->data.sequence.items.top - v->data.sequence.items.start);
    if (len == 0) return fail(L, v, "sweep axis %s: empty list; allowed: one or more values", name);
    for (int i = 0; i < len; i++)
        if (validate_node(L, o, node_at(L, v->data.sequence.items.start[i])) != 0) return -1;
    *out = (axis_key){o, k, v};
    return 0;
}

static int axis_len(const axis_key *a)
{
    return (int)(a->values->data.sequence.items.top - a->values->data.sequence.items.start);
}

static axis_group *new_group(loader *L, int n_keys)
{
    L->groups = realloc(L->groups, (size_t)(L->n_groups + 1) * sizeof *L->groups);
    if (!L->groups) {
        fprintf(stderr, "statebench: out of memory (config)\n");
        abort();
    }
    axis_group *g = &L->groups[L->n_groups++];
    g->keys = xcalloc((size_t)n_keys, sizeof *g->keys);
    g->n_keys = 0;
    g->len = 0;
    return g;
}

static int load_zip_group(loader *L, yaml_node_t *map)
{
    const char *allowed = "zip: [{axis: [values], axis: [values]}, ...] with the same number of values per group";
    if (map->type != YAML_MAPPING_NODE)
        return fail(L, map, "a zip group must be a mapping of axes, not %s; allowed: %s", node_kind(map), allowed);
    int n = (int)(map->data.mapping.pairs.top - map->data.mapping.pairs.start);
    if (n == 0) return fail(L, map, "empty zip group; allowed: %s", allowed);
    if (check_mapping(L, map, "zip group") != 0) return -1;
    axis_group *g = new_group(L, n);
    for (int i = 0; i < n; i++) {
        yaml_node_pair_t *p = &map->data.mapping.pairs.start[i];
        axis_key a;
        if (load_axis(L, node_at(L, p->key), node_at(L, p->value), &a) != 0) return -1;
        g->keys[g->n_keys++] = a;
        if (i == 0) {
            g->len = axis_len(&a);
        } else if (axis_len(&a) != g->len) {
            return fail(L, a.key, "zip group: %s has %d values but %s has %d; allowed: the same number of "
                        "values for every axis of a zip group", a.opt->name, axis_len(&a), g->keys[0].opt->name,
                        g->len);
        }
    }
    return 0;
}

static int load_sweep(loader *L, yaml_node_t *map)
{
    if (map->type != YAML_MAPPING_NODE)
        return fail(L, map, "sweep must be a mapping of axes (sweep: {model.mixer: [a, b]}), not %s; allowed: "
                    "dotted keys and zip", node_kind(map));
    if (check_mapping(L, map, "sweep") != 0) return -1;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node_at(L, p->key), *v = node_at(L, p->value);
        if (strcmp(scalar(k), "zip") == 0) {
            if (v->type == YAML_MAPPING_NODE) {
                if (load_zip_group(L, v) != 0) return -1;
                continue;
            }
            if (v->type != YAML_SEQUENCE_NODE || v->data.sequence.items.top == v->data.sequence.items.start)
                return fail(L, v, "zip needs a list of groups, not %s; allowed: zip: [{axis: [values], "
                            "axis: [values]}, ...]", v->type == YAML_SEQUENCE_NODE ? "an empty list" : node_kind(v));
            for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++)
                if (load_zip_group(L, node_at(L, *it)) != 0) return -1;
            continue;
        }
        axis_group *g = new_group(L, 1);
        if (load_axis(L, k, v, &g->keys[0]) != 0) return -1;
        g->n_keys = 1;
        g->len = axis_len(&g->keys[0]);
    }
    return 0;
}

static int valid_name(const char *s)
{
    if (!*s) return 0;
    for (const char *p = s; *p; p++)
        if (!(('a' <= *p && *p <= 'z') || ('A' <= *p && *p <= 'Z') || ('0' <= *p && *p <= '9') || *p == '-' ||
              *p == '_' || *p == '.'))
            return 0;
    return 1;
}

/* ---- variants ---- */

static axis_group *clone_groups(const axis_group *groups, int n)
{
    axis_group *copy = xcalloc((size_t)n, sizeof *copy);
    for (int g = 0; g < n; g++) {
        copy[g] = groups[g];
        copy[g].keys = xcalloc((size_t)groups[g].n_keys, sizeof *copy[g].keys);
        memcpy(copy[g].keys, groups[g].keys, (size_t)groups[g].n_keys * sizeof *copy[g].keys);
    }
    return copy;
}

static void free_groups(axis_group *groups, int n)
{
    for (int g = 0; g < n; g++) free(groups[g].keys);
    free(groups);
}

static void axis_names(const loader *L, char *out, size_t outlen)
{
    out[0] = '\0';
    for (int g = 0; g < L->n_groups; g++)
        for (int k = 0; k < L->groups[g].n_keys; k++)
            appendf(out, outlen, "%ssweep.%s", out[0] ? ", " : "", L->groups[g].keys[k].opt->name);
    if (!out[0]) appendf(out, outlen, "(the sweep has no axes)");
}

/* `sweep.AXIS: [values]`: new values for an axis the sweep already has. */
static int override_axis(loader *L, const char *variant, yaml_node_t *k, yaml_node_t *v)
{
    const char *name = scalar(k) + strlen("sweep.");
    const sb_option *o = option_find(name);
    char axes[1000];
    axis_names(L, axes, sizeof axes);
    axis_key *a = NULL;
    axis_group *group = NULL;
    for (int g = 0; o && g < L->n_groups && !a; g++)
        for (int i = 0; i < L->groups[g].n_keys; i++)
            if (L->groups[g].keys[i].opt == o) {
                a = &L->groups[g].keys[i];
                group = &L->groups[g];
            }
    if (!a)
        return fail(L, k, "variant %s: %s is not an axis of the sweep (a variant replaces the values of an axis, "
                    "or the whole sweep with sweep: {...}); allowed: %s", variant, scalar(k), axes);
    if (v->type != YAML_SEQUENCE_NODE || v->data.sequence.items.top == v->data.sequence.items.start)
        return fail(L, v, "variant %s: %s needs a non-empty list of values, not %s; allowed: %s: [a, b]", variant,
                    scalar(k), v->type == YAML_SEQUENCE_NODE ? "an empty list" : node_kind(v), scalar(k));
    int len = (int)(v->data.sequence.items.top - v->data.sequence.items.start);
    for (int i = 0; i < len; i++)
        if (validate_node(L, o, node_at(L, v->data.sequence.items.start[i])) != 0) return -1;
    a->key = k;
    a->values = v;
    if (group->n_keys == 1) group->len = len;
    return 0;
}

/* `section.key: value`: replaces (or adds) the base setting of that option. */
static int override_option(loader *L, const char *variant, yaml_node_t *k, yaml_node_t *v)
{
    const char *key = scalar(k);
    const sb_option *o = strchr(key, '.') ? option_find(key) : NULL;
    if (!o) {
        char keys[1000];
        all_keys(keys, sizeof keys);
        const sb_option *near = strchr(key, '.') ? option_closest(key, NULL) : NULL;
        if (!near && !strchr(key, '.')) {
            char tmp[8];
            near = option_lookup(key, tmp, sizeof tmp);
        }
        if (near)
            return fail(L, k, "variant %s: unknown key '%s' (did you mean '%s'?); allowed: seeds, sweep, "
                        "sweep.AXIS and the dotted keys %s", variant, key, near->name, keys);
        return fail(L, k, "variant %s: unknown key '%s'; allowed: seeds, sweep, sweep.AXIS and the dotted keys %s",
                    variant, key, keys);
    }
    if (find_axis(L, o))
        return fail(L, k, "variant %s: %s is a sweep axis; allowed: sweep.%s: [values] to change its values",
                    variant, key, key);
    if (validate_node(L, o, v) != 0) return -1;
    for (int i = 0; i < L->n_base; i++)
        if (L->base[i].opt == o) {
            L->base[i] = (setting){o, k, v};
            return 0;
        }
    L->base[L->n_base++] = (setting){o, k, v};
    return 0;
}

/* Applies one variant's keys, in the order written, to the loaded base. */
static int apply_variant(loader *L, const char *variant, yaml_node_t *map)
{
    char where[160];
    snprintf(where, sizeof where, "variant %s", variant);
    if (map->type != YAML_MAPPING_NODE)
        return fail(L, map, "variant %s must be a mapping of overrides, not %s; allowed: {train.steps: 500, "
                    "seeds: [0, 1], sweep.model.d_model: [32, 64], ...}", variant, node_kind(map));
    if (check_mapping(L, map, where) != 0) return -1;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node_at(L, p->key), *v = node_at(L, p->value);
        const char *key = scalar(k);
        int rc;
        if (!strcmp(key, "seeds")) {
            free(L->seeds);
            L->seeds = NULL;
            L->n_seeds = 0;
            rc = load_seeds(L, v);
        } else if (!strcmp(key, "sweep")) {
            free_groups(L->groups, L->n_groups);
            L->groups = NULL;
            L->n_groups = 0;
            rc = load_sweep(L, v);
        } else if (!strncmp(key, "sweep.", 6)) {
            rc = override_axis(L, variant, k, v);
        } else if (!strcmp(key, "name") || !strcmp(key, "description") || !strcmp(key, "variants")) {
            rc = fail(L, k, "variant %s: %s cannot be changed by a variant (the experiment is named NAME/%s); "
                      "allowed: seeds, sweep, sweep.AXIS and dotted keys such as train.steps", variant, key, variant);
        } else {
            rc = override_option(L, variant, k, v);
        }
        if (rc != 0) return -1;
    }
    for (int g = 0; g < L->n_groups; g++)
        for (int i = 1; i < L->groups[g].n_keys; i++) {
            const axis_key *a = &L->groups[g].keys[i], *first = &L->groups[g].keys[0];
            if (axis_len(a) != axis_len(first))
                return fail(L, axis_len(a) > 0 ? a->key : first->key, "variant %s: zip group: %s has %d values "
                            "but %s has %d; allowed: the same number of values for every axis of a zip group "
                            "(override each of its axes)", variant, a->opt->name, axis_len(a), first->opt->name,
                            axis_len(first));
        }
    for (int g = 0; g < L->n_groups; g++) L->groups[g].len = axis_len(&L->groups[g].keys[0]);
    return 0;
}

/* Checks every variant against the base (so a bad key fails whichever
 * variant runs) and applies the one asked for; the experiment of a variant
 * is named NAME/VARIANT. */
static int load_variants(loader *L)
{
    if (L->variants && L->variants->type != YAML_MAPPING_NODE)
        return fail(L, L->variants, "variants must be a mapping of names to overrides, not %s; allowed: "
                    "variants: {quick: {train.steps: 500, seeds: [0]}}", node_kind(L->variants));
    if (L->variants && check_mapping(L, L->variants, "variants") != 0) return -1;
    char names[600] = "";
    yaml_node_pair_t *chosen_pair = NULL;
    int n_pairs = L->variants ? (int)(L->variants->data.mapping.pairs.top - L->variants->data.mapping.pairs.start) : 0;
    for (int i = 0; i < n_pairs; i++) {
        yaml_node_t *k = node_at(L, L->variants->data.mapping.pairs.start[i].key);
        if (!valid_name(scalar(k)))
            return fail(L, k, "variant name '%s' is not a word; allowed: letters, digits, '-', '_', '.'", scalar(k));
        appendf(names, sizeof names, "%s%s", names[0] ? ", " : "", scalar(k));
        if (L->variant && !strcmp(scalar(k), L->variant)) chosen_pair = &L->variants->data.mapping.pairs.start[i];
    }
    /* each variant against the base: the others first, the chosen one (kept) last */
    for (int pass = 0; pass < n_pairs + 1; pass++) {
        yaml_node_pair_t *p = pass < n_pairs ? &L->variants->data.mapping.pairs.start[pass] : chosen_pair;
        if (!p || (pass < n_pairs && p == chosen_pair)) continue;
        const char *name = scalar(node_at(L, p->key));
        int chosen = p == chosen_pair;
        /* the base, restored after checking a variant that is not chosen */
        setting *base = xcalloc((size_t)sb_option_count, sizeof *base);
        memcpy(base, L->base, (size_t)L->n_base * sizeof *base);
        int n_base = L->n_base, n_seeds = L->n_seeds, n_groups = L->n_groups;
        uint64_t *seeds = L->seeds;
        axis_group *groups = L->groups;
        L->seeds = xcalloc((size_t)n_seeds, sizeof *L->seeds);
        memcpy(L->seeds, seeds, (size_t)n_seeds * sizeof *seeds);
        L->groups = clone_groups(groups, n_groups);
        int rc = apply_variant(L, name, node_at(L, p->value));
        if (rc == 0 && chosen) {
            free(seeds);
            free_groups(groups, n_groups);
        } else {
            free(L->seeds);
            free_groups(L->groups, L->n_groups);
            L->seeds = seeds;
            L->n_seeds = n_seeds;
            L->groups = groups;
            L->n_groups = n_groups;
            memcpy(L->base, base, (size_t)n_base * sizeof *base);
            L->n_base = n_base;
        }
        free(base);
        if (rc != 0) return -1;
    }
    if (L->variant && !chosen_pair) {
        if (names[0])
            snprintf(L->err, L->errlen, "%s: --variant %s: the config has no such variant; allowed: %s", L->path,
                     L->variant, names);
        else
            snprintf(L->err, L->errlen, "%s: --variant %s: the config has no variants (no `variants:` key); "
                     "allowed: leave out --variant", L->path, L->variant);
        return -1;
    }
    if (L->variant) {
        size_t len = strlen(L->name) + strlen(L->variant) + 2;
        char *full = xcalloc(len, 1);
        snprintf(full, len, "%s/%s", L->name, L->variant);
        free(L->name);
        L->name = full;
    }
    return 0;
}

static int load_root(loader *L)
{
    yaml_node_t *root = L->root;
    char top[200] = "";
    for (int i = 0; i < N_TOP; i++) appendf(top, sizeof top, "%s%s", i ? ", " : "", top_keys[i]);
    if (root->type != YAML_MAPPING_NODE)
        return fail(L, root, "a config is a mapping of keys, not %s; allowed: %s", node_kind(root), top);
    if (check_mapping(L, root, "the config") != 0) return -1;
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node_at(L, p->key), *v = node_at(L, p->value);
        const char *key = scalar(k);
        int rc = 0;
        if (strcmp(key, "name") == 0) {
            if (!scalar(v) || !valid_name(scalar(v)))
                return fail(L, v, "name must be a non-empty word; allowed: letters, digits, '-', '_', '.' "
                            "(it names the results file)");
            L->name = xstrdup(scalar(v));
        } else if (strcmp(key, "description") == 0) {
            if (!scalar(v)) return fail(L, v, "description must be text, not %s; allowed: a string", node_kind(v));
            L->description = xstrdup(scalar(v));
        } else if (strcmp(key, "seeds") == 0) {
            rc = load_seeds(L, v);
        } else if (strcmp(key, "sweep") == 0) {
            rc = load_sweep(L, v);
        } else if (strcmp(key, "variants") == 0) {
            L->variants = v; /* applied once the base is loaded, whatever the order of the keys */
        } else if (!strcmp(key, "task") || !strcmp(key, "model") || !strcmp(key, "train") || !strcmp(key, "eval")) {
            if (strcmp(key, "task") == 0) L->task_key = k;
            rc = load_section(L, k, v);
        } else {
            const char *near = options_closest_word(key, top_keys, N_TOP);
            char tmp[8];
            const sb_option *o = strchr(key, '.') ? option_find(key) : option_lookup(key, tmp, sizeof tmp);
            if (o) { /* an option written outside its section */
                char section[16];
                option_section(o, section, sizeof section);
                return fail(L, k, "unknown key '%s' (did you mean %s: {%s: ...}?); allowed: %s", key, section,
                            option_key(o), top);
            }
            if (near) return fail(L, k, "unknown key '%s' (did you mean '%s'?); allowed: %s", key, near, top);
            return fail(L, k, "unknown key '%s'; allowed: %s", key, top);
        }
        if (rc != 0) return -1;
    }
    if (!L->name)
        return fail(L, root, "missing required key 'name'; allowed: name: WORD (letters, digits, '-', '_', '.')");
    if (!L->seeds) {
        L->seeds = xcalloc(1, sizeof *L->seeds);
        L->n_seeds = 1;
    }
    if (load_variants(L) != 0) return -1;
    int has_task = find_axis(L, option_find("task.name")) != NULL;
    for (int i = 0; i < L->n_base; i++) has_task |= L->base[i].opt->type == OPT_TASK;
    if (!has_task) {
        char names[400];
        option_allowed(option_find("task.name"), names, sizeof names);
        return fail(L, L->task_key ? L->task_key : root, "task.name is required (task: {name: ...}); allowed: %s",
                    names);
    }
    return 0;
}

/* ---- expansion ---- */

static void note_cb(void *ctx, const sb_option *o, option_note kind, const char *why)
{
    loader *L = ctx;
    int i = (int)(o - sb_options);
    if (!L->set_key[i]) return; /* a default the config did not ask for */
    note_acc *n = &L->notes[i];
    if (n->count == 0) {
        n->kind = kind;
        n->mark = L->set_key[i]->start_mark;
    }
    n->count += L->runs_per_point;
    /* add why unless already listed */
    size_t wl = strlen(why);
    for (const char *p = n->reasons; p && (p = strstr(p, why)) != NULL; p += wl)
        if ((p == n->reasons || p[-1] == ' ') && (p[wl] == ',' || p[wl] == '\0')) return;
    size_t old = n->reasons ? strlen(n->reasons) : 0;
    char *r = realloc(n->reasons, old + wl + 3);
    if (!r) {
        fprintf(stderr, "statebench: out of memory (config)\n");
        abort();
    }
    snprintf(r + old, wl + 3, "%s%s", old ? ", " : "", why);
    n->reasons = r;
}

static void print_notes(loader *L, FILE *out)
{
    for (int i = 0; i < sb_option_count; i++) {
        note_acc *n = &L->notes[i];
        if (!out || n->count == 0) continue;
        const char *name = sb_options[i].name;
        fprintf(out, "%s:%zu:%zu: note: ", L->path, n->mark.line + 1, n->mark.column + 1);
        if (n->kind == NOTE_DROPPED)
            fprintf(out, "%s does not apply to %s: dropped", name, n->reasons);
        else if (n->kind == NOTE_ROPE_UNUSED)
            fprintf(out, "%s rope does not apply to %s (no attention layer): using none", name, n->reasons);
        else
            fprintf(out, "%s has more entries than model.layers (%s): the extra entries are unused", name,
                    n->reasons);
        fprintf(out, " (%lld run%s)\n", n->count, n->count == 1 ? "" : "s");
    }
}

/* Appends " (sweep point: key=value, ...)" for the axis values at ix. */
static void describe_point(loader *L, const int *ix)
{
    if (L->n_groups == 0) return;
    appendf(L->err, L->errlen, " (sweep point:");
    for (int g = 0; g < L->n_groups; g++)
        for (int k = 0; k < L->groups[g].n_keys; k++) {
            const axis_key *a = &L->groups[g].keys[k];
            char v[200];
            node_text(L, node_at(L, a->values->data.sequence.items.start[ix[g]]), v, sizeof v);
            appendf(L->err, L->errlen, "%s %s=%s", g || k ? "," : "", a->opt->name, v);
        }
    appendf(L->err, L->errlen, ")");
}

/* The node to point at for a cross-option error: the blamed option where
 * the config sets it, else a set option named in the message, else the
 * section, else the top. */
static yaml_node_t *blame_node(loader *L, const sb_option *blame, const char *msg)
{
    if (blame && L->set_value[blame - sb_options]) return L->set_value[blame - sb_options];
    for (int i = 0; i < sb_option_count; i++)
        if (L->set_value[i] && strstr(msg, sb_options[i].name)) return L->set_value[i];
    char section[16] = "";
    if (blame) option_section(blame, section, sizeof section);
    for (yaml_node_pair_t *p = L->root->data.mapping.pairs.start; p < L->root->data.mapping.pairs.top; p++)
        if (strcmp(scalar(node_at(L, p->key)), section) == 0) return node_at(L, p->key);
    return L->root;
}

/* Resolves the grid point ix into s (one run, seed not set). */
static int resolve_point(loader *L, const int *ix, run_spec *s)
{
    memset(L->set_key, 0, (size_t)sb_option_count * sizeof *L->set_key);
    memset(L->set_value, 0, (size_t)sb_option_count * sizeof *L->set_value);
    /* the task first: its defaults underlie everything else */
    const sb_option *task_opt = option_find("task.name");
    yaml_node_t *task_value = NULL;
    for (int i = 0; i < L->n_base; i++)
        if (L->base[i].opt == task_opt) task_value = L->base[i].value;
    for (int g = 0; g < L->n_groups; g++)
        for (int k = 0; k < L->groups[g].n_keys; k++)
            if (L->groups[g].keys[k].opt == task_opt)
                task_value = node_at(L, L->groups[g].keys[k].values->data.sequence.items.start[ix[g]]);
    int task = task_index(scalar(task_value));
    spec_defaults(s, task);
    for (int i = 0; i < L->n_base; i++) {
        const setting *b = &L->base[i];
        int at = (int)(b->opt - sb_options);
        L->set_key[at] = b->key;
        L->set_value[at] = b->value;
        if (apply_node(L, s, b->opt, b->value) != 0) return -1;
    }
    for (int g = 0; g < L->n_groups; g++)
        for (int k = 0; k < L->groups[g].n_keys; k++) {
            const axis_key *a = &L->groups[g].keys[k];
            yaml_node_t *v = node_at(L, a->values->data.sequence.items.start[ix[g]]);
            int at = (int)(a->opt - sb_options);
            L->set_key[at] = a->key;
            L->set_value[at] = v;
            if (apply_node(L, s, a->opt, v) != 0) {
                describe_point(L, ix);
                return -1;
            }
        }
    /* the task's protocol for the lengths not given, from the final params */
    const task_def *t = task_get(task);
    int train_set = L->set_key[option_find("task.train_len") - sb_options] != NULL;
    int eval_set = L->set_key[option_find("task.eval_len") - sb_options] != NULL;
    if (!train_set) option_reset(s, option_find("task.train_len"));
    if (!eval_set) option_reset(s, option_find("task.eval_len"));
    options_canonicalize(s, note_cb, L);
    char msg[768];
    const sb_option *blame = NULL;
    if (options_check(s, &blame, msg, sizeof msg) != 0) {
        fail(L, blame_node(L, blame, msg), "%s", msg);
        describe_point(L, ix);
        return -1;
    }
    if (t->validate(&s->task, msg, sizeof msg) != 0) {
        yaml_node_t *at = L->task_key;
        if (!at) at = find_axis(L, task_opt)->key;
        fail(L, at, "%s", msg);
        describe_point(L, ix);
        return -1;
    }
    return 0;
}

static uint64_t hash_prefix(const char *hex)
{
    char b[17];
    memcpy(b, hex, 16);
    b[16] = '\0';
    return strtoull(b, NULL, 16);
}

/* Merges runs with equal hashes, keeping the first; returns the new count. */
static int dedupe(run_spec *runs, int count)
{
    size_t cap = 16;
    while (cap < 2 * (size_t)count) cap *= 2;
    int *slot = xcalloc(cap, sizeof *slot);
    char (*hashes)[33] = xcalloc((size_t)count, sizeof *hashes);
    for (size_t i = 0; i < cap; i++) slot[i] = -1;
    int kept = 0;
    for (int i = 0; i < count; i++) {
        char h[33];
        spec_hash(&runs[i], h);
        size_t at = hash_prefix(h) & (cap - 1);
        int dup = 0;
        while (slot[at] >= 0) {
            if (strcmp(hashes[slot[at]], h) == 0) {
                dup = 1;
                break;
            }
            at = (at + 1) & (cap - 1);
        }
        if (dup) {
            spec_free(&runs[i]);
            continue;
        }
        memcpy(hashes[kept], h, sizeof h);
        slot[at] = kept;
        runs[kept++] = runs[i];
    }
    free(slot);
    free(hashes);
    return kept;
}

static int expand(loader *L, experiment *out, FILE *notices)
{
    long long points = 1;
    for (int g = 0; g < L->n_groups; g++) {
        points *= L->groups[g].len;
        if (points * L->n_seeds > MAX_RUNS) {
            yaml_node_t *at = L->groups[g].keys[0].key;
            return fail(L, at, "the sweep expands to more than %d runs; allowed: at most %d runs per config "
                        "(split the sweep)", MAX_RUNS, MAX_RUNS);
        }
    }
    if (points * L->n_seeds > MAX_RUNS)
        return fail(L, L->root, "%lld seeds x %lld sweep points is more than %d runs; allowed: at most %d runs "
                    "per config", (long long)L->n_seeds, points, MAX_RUNS, MAX_RUNS);
    int total = (int)(points * L->n_seeds);
    run_spec *runs = xcalloc((size_t)total, sizeof *runs);
    int *ix = xcalloc((size_t)L->n_groups + 1, sizeof *ix);
    L->runs_per_point = L->n_seeds;
    int made = 0, rc = 0;
    for (long long p = 0; p < points; p++) {
        long long rest = p;
        for (int g = L->n_groups - 1; g >= 0; g--) {
            ix[g] = (int)(rest % L->groups[g].len);
            rest /= L->groups[g].len;
        }
        run_spec s;
        if (resolve_point(L, ix, &s) != 0) {
            rc = -1;
            break;
        }
        for (int k = 0; k < L->n_seeds; k++) {
            runs[made] = s;
            runs[made].seed = L->seeds[k];
            runs[made].experiment = xstrdup(L->name);
            made++;
        }
    }
    free(ix);
    if (rc != 0) {
        for (int i = 0; i < made; i++) spec_free(&runs[i]);
        free(runs);
        return -1;
    }
    int kept = dedupe(runs, made);
    print_notes(L, notices);
    if (notices && kept < made)
        fprintf(notices, "%s: note: %d of %d runs resolve to the same spec as an earlier run (options that do "
                "not apply dropped): merged, %d runs remain\n", L->path, made - kept, made, kept);
    out->name = L->name;
    out->description = L->description;
    L->name = L->description = NULL;
    out->runs = runs;
    out->count = kept;
    return 0;
}

/* ---- file and YAML ---- */

static int read_file(loader *L)
{
    FILE *f = fopen(L->path, "rb");
    if (!f) {
        snprintf(L->err, L->errlen, "%s: cannot open: %s", L->path, strerror(errno));
        return -1;
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (len < cap) break;
        cap *= 2;
        char *nb = realloc(buf, cap);
        if (!nb) free(buf);
        buf = nb;
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf || bad) {
        free(buf);
        snprintf(L->err, L->errlen, "%s: cannot read: %s", L->path, bad ? strerror(errno) : "out of memory");
        return -1;
    }
    L->text = buf;
    L->text_len = len;
    return 0;
}

static int syntax_error(loader *L, yaml_parser_t *p)
{
    size_t line = p->problem_mark.line + 1, col = p->problem_mark.column + 1;
    if (p->error == YAML_READER_ERROR) { /* only an offset is known */
        line = 1;
        col = 1;
        for (size_t i = 0; i < p->problem_offset && i < L->text_len; i++) {
            if (L->text[i] == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
    }
    if (p->error == YAML_MEMORY_ERROR) return fail_at(L, line, col, "out of memory reading YAML");
    fail_at(L, line, col, "YAML syntax error: %s", p->problem ? p->problem : "unknown problem");
    if (p->context)
        appendf(L->err, L->errlen, " (%s at line %zu, column %zu)", p->context, p->context_mark.line + 1,
                p->context_mark.column + 1);
    return -1;
}

static int parse_yaml(loader *L)
{
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) {
        snprintf(L->err, L->errlen, "%s: cannot start the YAML parser", L->path);
        return -1;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)L->text, L->text_len);
    int rc = 0;
    if (!yaml_parser_load(&p, &L->doc)) {
        rc = syntax_error(L, &p);
    } else {
        L->have_doc = 1;
        L->root = yaml_document_get_root_node(&L->doc);
        yaml_document_t next;
        if (!L->root) {
            rc = fail_at(L, 1, 1, "empty config; allowed: a mapping with name, task, model, train, eval, "
                         "seeds, sweep");
        } else if (!yaml_parser_load(&p, &next)) {
            rc = syntax_error(L, &p);
        } else {
            yaml_node_t *r2 = yaml_document_get_root_node(&next);
            if (r2)
                rc = fail(L, r2, "a second YAML document; allowed: one document per config (no second '---')");
            yaml_document_delete(&next);
        }
    }
    yaml_parser_delete(&p);
    return rc;
}

static void loader_free(loader *L)
{
    if (L->have_doc) yaml_document_delete(&L->doc);
    free(L->text);
    free(L->name);
    free(L->description);
    free(L->base);
    for (int g = 0; g < L->n_groups; g++) free(L->groups[g].keys);
    free(L->groups);
    free(L->seeds);
    if (L->notes)
        for (int i = 0; i < sb_option_count; i++) free(L->notes[i].reasons);
    free(L->notes);
    free(L->set_key);
    free(L->set_value);
}

int config_load(const char *path, experiment *out, FILE *notices, char *err, size_t errlen)
{
    return config_load_variant(path, NULL, out, notices, err, errlen);
}

void experiment_file_stem(const experiment *e, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s", e->name ? e->name : "");
    for (char *p = out; *p; p++)
        if (*p == '/') *p = '.';
}

int config_load_variant(const char *path, const char *variant, experiment *out, FILE *notices, char *err,
                        size_t errlen)
{
    memset(out, 0, sizeof *out);
    loader L = {.path = path, .err = err, .errlen = errlen, .variant = variant};
    if (errlen) err[0] = '\0';
    L.base = xcalloc((size_t)sb_option_count, sizeof *L.base);
    L.notes = xcalloc((size_t)sb_option_count, sizeof *L.notes);
    L.set_key = xcalloc((size_t)sb_option_count, sizeof *L.set_key);
    L.set_value = xcalloc((size_t)sb_option_count, sizeof *L.set_value);
    int rc = read_file(&L);
    if (rc == 0) rc = parse_yaml(&L);
    if (rc == 0) rc = load_root(&L);
    if (rc == 0) rc = expand(&L, out, notices);
    loader_free(&L);
    return rc;
}

void experiment_free(experiment *e)
{
    for (int i = 0; i < e->count; i++) spec_free(&e->runs[i]);
    free(e->runs);
    free(e->name);
    free(e->description);
    memset(e, 0, sizeof *e);
}
