/* options.h: the one option table of the config (redis style): every key's
 * name, type, bounds, default, the tasks / mixers it applies to, and help.
 * Validation, defaults, `statebench models`, `tasks` and the config error
 * messages all come from this table. */
#ifndef SB_OPTIONS_H
#define SB_OPTIONS_H

#include <stdio.h>
#include "spec.h"

/* Fills every field of s with its default for the given task index
 * (including the task's default length protocol; none for an index the
 * registry does not hold); experiment = NULL, seed 0. */
void spec_defaults(run_spec *s, int task);

/* Sets one option from text, e.g. ("task.kv_pairs", "16") or
 * ("model.mixer", "deltanet"). The key may be bare when it names one
 * option ("kv_pairs"); lists are "a,b" or "[a, b]". The value is checked
 * against the option alone (bounds, names); rules between options are
 * options_check's, and setting task.name does not reset the task's
 * defaults (spec_defaults does). On error writes "what; allowed: ..."
 * into err, leaves s unchanged and returns -1. */
int options_set(run_spec *s, const char *dotted_key, const char *value,
                char *err, size_t errlen);

/* Prints the options of one section ("task", "model", "train", "eval";
 * NULL: all) that apply to the named task or mixer (NULL: all), one row
 * each: name, allowed values, default (that task's, when a task is named),
 * help, and with applies_to NULL the tasks or mixers a key is limited to
 * in brackets. Rows only: the caller prints any heading. */
void options_print(FILE *out, const char *section, const char *applies_to);

/* ---- the table itself, for the config loader and spec.c ---- */

typedef enum {
    OPT_INT,      /* int field */
    OPT_FLOAT,    /* double field */
    OPT_BOOL,     /* int field, 0/1 */
    OPT_ENUM,     /* int field, index into names */
    OPT_INT_LIST, /* int array at offset, count (int) at offset2; sorted, distinct */
    OPT_INT_PAIR, /* two ints [min, max] at offset and offset2; min <= max */
    OPT_MIXERS,   /* mixer ids at offset, count at offset2: one name or a pattern */
    OPT_TASK,     /* task registry index */
    OPT_STRING,   /* char array of max_count bytes at offset: a word of letters and
                     digits (group_word's group); the task's validate checks its meaning */
} option_type;

enum {
    OPT_MIN_OPEN = 1, /* lower bound excluded: (min, ... */
    OPT_MAX_OPEN = 2, /* upper bound excluded: ..., max) */
    OPT_EVEN = 4,     /* integer must be even */
    OPT_NOT_HASHED = 8, /* how a run is carried out, not what it computes
                           (train.checkpoint_every): left out of the
                           canonical JSON and the hash */
    OPT_HASHED_UNLESS_DEFAULT = 16, /* left out of the canonical JSON and the
                           hash while at its default: an option added
                           later (train.precision) keeps the hashes of
                           the runs recorded before it */
};

typedef struct sb_option {
    const char *name;          /* dotted: "section.key" */
    option_type type;
    const char *const *names;  /* OPT_ENUM: value names, NULL-terminated */
    double min, max;           /* bounds of the value (of each element for lists) */
    unsigned flags;            /* OPT_MIN_OPEN | OPT_MAX_OPEN | OPT_EVEN */
    int max_count;             /* lists: at most this many elements */
    const char *def;           /* default as text; NULL: set by the task (protocol) */
    size_t offset, offset2;    /* into run_spec (offset2: see option_type) */
    const char *tasks;         /* space-separated task names it applies to; NULL: all */
    unsigned mixers;           /* bit (1u << MIXER_*) per mixer it applies to; 0: all */
    /* Extra condition on other fields: returns why the option does not
     * apply to s (e.g. "mlp none"), or NULL when it applies. NULL: none. */
    const char *(*unless)(const run_spec *s);
    const char *help;
} sb_option;

extern const sb_option sb_options[];
extern const int sb_option_count;

/* The option with this exact dotted name, or NULL. */
const sb_option *option_find(const char *dotted);
/* Finds a dotted name, or a bare key that names exactly one option
 * ("kv_pairs" -> task.kv_pairs). On failure writes "unknown key 'K' (did
 * you mean 'X'?); allowed: ..." or "ambiguous key" into err, returns NULL. */
const sb_option *option_lookup(const char *key, char *err, size_t errlen);
/* The known key closest in edit distance to name among the options of
 * section (NULL: all sections; names compared without the section when
 * section is given), or NULL when none is close. */
const sb_option *option_closest(const char *name, const char *section);
/* The word in words[0..n-1] closest to name in edit distance, or NULL
 * when none is close enough to be a typo of it. */
const char *options_closest_word(const char *name, const char *const *words, int n);
/* Section of o ("model") into out; returns out. */
const char *option_section(const sb_option *o, char *out, size_t outlen);
/* Key of o without its section ("heads"). */
const char *option_key(const sb_option *o);

/* Sets o in s from items[0..n-1], the elements of a list when as_list (a
 * YAML sequence) or a single scalar (n = 1). A scalar for a list option is
 * a one-element list; for a pair, [v, v]. On error writes "what; allowed:
 * ..." into err, sets *bad_item to the offending element (-1: the value as
 * a whole) and returns -1; s is then unchanged. */
int option_set_items(run_spec *s, const sb_option *o, const char *const *items,
                     int n, int as_list, int *bad_item, char *err,
                     size_t errlen);
/* Sets o to its default (task-protocol options: the task's protocol). */
void option_reset(run_spec *s, const sb_option *o);
/* 1 when o applies to s; else 0 with the reason ("lstm", "parity",
 * "mlp none") in why. */
int option_applies(const sb_option *o, const run_spec *s, char *why,
                   size_t whylen);
/* The value of o in s as text ("[3, 40]", "deltanet", "0.001"). */
void option_format(const sb_option *o, const run_spec *s, char *out,
                   size_t outlen);
/* Allowed values of o as text ("1..256", "(0, 10]", "positive|signed"). */
void option_allowed(const sb_option *o, char *out, size_t outlen);
/* Settings that canonicalisation changes (options_canonicalize). */
typedef enum {
    NOTE_DROPPED,      /* the option does not apply: reset to its default */
    NOTE_ROPE_UNUSED,  /* pos rope without an attention layer: now none */
    NOTE_PATTERN_CUT,  /* mixer pattern longer than layers: tail unused */
} option_note;
typedef void (*option_note_fn)(void *ctx, const sb_option *o, option_note kind,
                               const char *why);
/* Brings s into canonical form, so equal computations are equal specs:
 * the mixer pattern becomes the shortest period of the per-layer sequence
 * actually used (pattern entries beyond `layers` are cut), pos rope without
 * any attention layer becomes none, and every option that does not apply
 * is reset to its default. For each change that loses a setting it calls
 * note(ctx, option, kind, why) with why the reason ("lstm", "mlp none",
 * "layers 1"); note may be NULL. */
void options_canonicalize(run_spec *s, option_note_fn note, void *ctx);
/* Checks the rules that tie options together (heads divides d_model, even
 * head size for rope attention, warmup <= steps). On error writes "what;
 * allowed: ..." into err, sets *blame to the option to point at and
 * returns -1. */
int options_check(const run_spec *s, const sb_option **blame, char *err,
                  size_t errlen);

#endif
