/* spec.c: canonical JSON, content hash and copies of resolved run specs. */
#include "spec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "json.h"
#include "options.h"
#include "../models/model.h"
#include "../tasks/task.h"

static int by_key(const void *a, const void *b)
{
    const sb_option *x = *(const sb_option *const *)a, *y = *(const sb_option *const *)b;
    return strcmp(option_key(x), option_key(y));
}

static void write_value(json_buf *j, const sb_option *o, const run_spec *s)
{
    const int *iv = (const int *)((const char *)s + o->offset);
    const int *iv2 = (const int *)((const char *)s + o->offset2);
    switch (o->type) {
    case OPT_INT: json_int(j, *iv); break;
    case OPT_FLOAT: json_double(j, *(const double *)((const char *)s + o->offset)); break;
    case OPT_BOOL: json_bool(j, *iv); break;
    case OPT_ENUM: json_string(j, o->names[*iv]); break;
    case OPT_TASK: {
        const task_def *t = task_get(*iv);
        json_string(j, t ? t->name : "?");
        break;
    }
    case OPT_INT_PAIR:
        json_array_begin(j);
        json_int(j, *iv);
        json_int(j, *iv2);
        json_array_end(j);
        break;
    case OPT_INT_LIST:
        json_array_begin(j);
        for (int i = 0; i < *iv2; i++) json_int(j, iv[i]);
        json_array_end(j);
        break;
    case OPT_STRING: json_string(j, (const char *)iv); break;
    case OPT_MIXERS:
        if (*iv2 == 1) {
            json_string(j, mixer_name(iv[0]));
            break;
        }
        json_array_begin(j);
        for (int i = 0; i < *iv2; i++) json_string(j, mixer_name(iv[i]));
        json_array_end(j);
        break;
    }
}

/* 1 when o is left out of the canonical JSON of s (options.h's flags). */
static int unhashed(const sb_option *o, const run_spec *s)
{
    if (o->flags & OPT_NOT_HASHED) return 1;
    if (!(o->flags & OPT_HASHED_UNLESS_DEFAULT) || !o->def) return 0;
    char value[256];
    option_format(o, s, value, sizeof value);
    return strcmp(value, o->def) == 0;
}

/* The applicable options of one section, sorted by key, as a JSON object. */
static void write_section(json_buf *j, const char *section, const run_spec *s)
{
    const sb_option *sel[64];
    int n = 0;
    size_t len = strlen(section);
    char why[128];
    for (int i = 0; i < sb_option_count && n < 64; i++) {
        const sb_option *o = &sb_options[i];
        if (strncmp(o->name, section, len) == 0 && o->name[len] == '.' && !unhashed(o, s) &&
            option_applies(o, s, why, sizeof why))
            sel[n++] = o;
    }
    qsort(sel, (size_t)n, sizeof sel[0], by_key);
    json_key(j, section);
    json_object_begin(j);
    for (int i = 0; i < n; i++) {
        json_key(j, option_key(sel[i]));
        write_value(j, sel[i], s);
    }
    json_object_end(j);
}

/* Canonical JSON of s; the experiment name only when with_experiment. */
static char *canonical_json(const run_spec *src, int with_experiment)
{
    run_spec s = *src; /* shallow: experiment is only read */
    options_canonicalize(&s, NULL, NULL);
    json_buf j;
    json_init(&j);
    json_object_begin(&j);
    write_section(&j, "eval", &s);
    if (with_experiment && s.experiment) {
        json_key(&j, "experiment");
        json_string(&j, s.experiment);
    }
    write_section(&j, "model", &s);
    json_key(&j, "seed");
    json_uint(&j, s.seed);
    write_section(&j, "task", &s);
    write_section(&j, "train", &s);
    json_object_end(&j);
    return json_finish(&j);
}

char *spec_to_json(const run_spec *s)
{
    return canonical_json(s, 1);
}

void spec_hash(const run_spec *s, char out[33])
{
    char *json = canonical_json(s, 0);
    const task_def *t = task_get(s->task.task);
    char gen[32];
    snprintf(gen, sizeof gen, "|gen=%d", t ? t->version : -1);
    size_t jl = strlen(json), gl = strlen(gen);
    char *buf = malloc(jl + gl + 1);
    if (!buf) {
        fprintf(stderr, "statebench: out of memory (spec_hash)\n");
        abort();
    }
    memcpy(buf, json, jl);
    memcpy(buf + jl, gen, gl + 1);
    XXH128_hash_t h = XXH3_128bits(buf, jl + gl);
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, h);
    for (int i = 0; i < 16; i++) snprintf(out + 2 * i, 3, "%02x", c.digest[i]);
    free(buf);
    free(json);
}

void spec_free(run_spec *s)
{
    free(s->experiment);
    s->experiment = NULL;
}

void spec_copy(run_spec *dst, const run_spec *src)
{
    *dst = *src;
    if (src->experiment) {
        dst->experiment = strdup(src->experiment);
        if (!dst->experiment) {
            fprintf(stderr, "statebench: out of memory (spec_copy)\n");
            abort();
        }
    }
}
