/* options.c: the option table of the config and everything derived from it:
 * defaults, parsing and bounds checks, applicability, canonical form, help. */
#include "options.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "../models/model.h"
#include "../tasks/task.h"

#define MAX_LEN (1 << 20) /* longest task length n any option accepts */
#define M(id) (1u << (id))
#define F(field) offsetof(run_spec, field)

static const char *const mode_names[] = {"final", "running", "find", "decide", NULL};
static const char *const eigen_names[] = {"positive", "signed", NULL};
static const char *const mlp_names[] = {"swiglu", "gelu", "none", NULL};
static const char *const pos_names[] = {"rope", "learned", "none", NULL};
static const char *const fmap_names[] = {"elu1", "identity", "relu", NULL};
static const char *const precision_names[] = {"fp32", "tf32", "bf16", NULL};
/* Every kernel reduces in a fixed order, on both devices: there is no
 * faster non-deterministic path, so true is the one value (false is an
 * error that says so, not a setting that is silently ignored). */
static const char *const deterministic_names[] = {"true", NULL};
/* the full task suite (tasks/): orders as the OPS_*, LANG_*, ORDER_* enums of spec.h */
static const char *const ops_names[] = {"auto", "+-*", "+-", "+*", "-*", "+", "-", "*", NULL};
static const char *const language_names[] = {"tomita1", "tomita2", "tomita3", "tomita4", "tomita5",
                                             "tomita6", "tomita7", "even_pairs", "random", NULL};
static const char *const order_names[] = {"short_first", "long_first", NULL};

static const char *unless_mlp(const run_spec *s)
{
    return s->model.mlp == MLP_NONE ? "mlp none" : NULL;
}

static const char *unless_rope(const run_spec *s)
{
    return s->model.pos == POS_LEARNED ? "pos learned"
         : s->model.pos == POS_NONE    ? "pos none"
                                       : NULL;
}

/* mod_arith: ops spelled as the default it stands for (+-* without
 * brackets, +- with) is that default, so both spellings hash as auto. */
static const char *unless_ops_default(const run_spec *s)
{
    if (s->task.brackets) return s->task.ops == OPS_ADD_SUB ? "brackets, where auto is +-" : NULL;
    return s->task.ops == OPS_ADD_SUB_MUL ? "no brackets, where auto is +-*" : NULL;
}

/* dfa: the parameters of a random language mean nothing to a named one. */
static const char *unless_named_language(const run_spec *s)
{
    const task_def *t = task_get(s->task.task);
    if (!t || strcmp(t->name, "dfa") != 0 || s->task.language == LANG_RANDOM) return NULL;
    int l = s->task.language;
    return l >= 0 && l < LANG_RANDOM ? language_names[l] : "a named language";
}

static const char *unless_running(const run_spec *s)
{
    return s->task.mode == MODE_RUNNING ? "mode running" : NULL;
}

/* Defaults: the tasks' own (TASKS.md), the model of MODELS.md, and an
 * optimiser for small synthetic tasks: AdamW betas 0.9 / 0.999 (PyTorch's;
 * 0.95 is the large-LM choice for stability at scale, which these runs do
 * not need) and weight decay 0, because the answers are exact and decay
 * only slows fitting and blurs comparisons between mixers; Grazzi-style
 * configs that want decay say so. */
const sb_option sb_options[] = {
    {.name = "task.name", .type = OPT_TASK, .offset = F(task.task),
     .help = "task family (statebench tasks lists them)"},
    {.name = "task.train_len", .type = OPT_INT_PAIR, .min = 1, .max = MAX_LEN,
     .offset = F(task.train_min), .offset2 = F(task.train_max),
     .help = "train lengths [min, max], drawn uniformly per batch; one n means [n, n]"},
    {.name = "task.eval_len", .type = OPT_INT_LIST, .min = 1, .max = MAX_LEN,
     .max_count = SB_MAX_EVAL, .offset = F(task.eval_len), .offset2 = F(task.n_eval),
     .help = "eval length grid (sorted; each length evaluated separately)"},
    {.name = "task.mode", .type = OPT_ENUM, .names = mode_names, .def = "final",
     .offset = F(task.mode), .tasks = "parity mod_count group_word dfa set_disjoint",
     .help = "label the last position only (final) or every prefix (running; the default of "
             "group_word and dfa); set_disjoint: find (default) or decide"},
    {.name = "task.modulus", .type = OPT_INT, .min = 2, .max = 1000, .def = "3",
     .offset = F(task.modulus), .tasks = "mod_count mod_arith",
     .help = "count or compute modulo m (V_out = m); mod_arith's default is 5"},
    {.name = "task.alphabet", .type = OPT_INT, .min = 1, .max = 1000, .def = "2",
     .offset = F(task.alphabet), .tasks = "mod_count dfa", .unless = unless_named_language,
     .help = "input symbols 0..k-1 (V_in = k); dfa: random languages only, k <= 32"},
    {.name = "task.vocab", .type = OPT_INT, .min = 4, .max = MAX_LEN, .flags = OPT_EVEN,
     .def = "8192", .offset = F(task.vocab), .tasks = "mqar set_disjoint",
     .help = "vocabulary V; mqar: keys from [1, V/2), values from [V/2, V); "
             "set_disjoint: ids 4..V-1, default 2048"},
    {.name = "task.kv_pairs", .type = OPT_INT, .min = 1, .max = MAX_LEN / 2, .def = "8",
     .offset = F(task.kv_pairs), .tasks = "mqar",
     .help = "key-value pairs N per example (needs 2N (num_passes + 1) <= n)"},
    {.name = "task.power_a", .type = OPT_FLOAT, .min = 0, .max = 10, .flags = OPT_MIN_OPEN,
     .def = "0.01", .offset = F(task.power_a), .tasks = "mqar",
     .help = "query gap g drawn with probability ~ (g+1)^(power_a-1)"},
    {.name = "task.random_fill", .type = OPT_BOOL, .def = "false",
     .offset = F(task.random_fill), .tasks = "mqar",
     .help = "fill the gaps with random ids instead of 0"},
    {.name = "task.num_passes", .type = OPT_INT, .min = 1, .max = 256, .def = "1",
     .offset = F(task.num_passes), .tasks = "mqar",
     .help = "the pairs written this many times before the queries (JRT, Arora et al. 2024)"},
    {.name = "task.brackets", .type = OPT_BOOL, .def = "false",
     .offset = F(task.brackets), .tasks = "mod_arith",
     .help = "nested bracketed expressions (Deletang et al.) instead of a flat one"},
    {.name = "task.ops", .type = OPT_ENUM, .names = ops_names, .def = "auto",
     .offset = F(task.ops), .tasks = "mod_arith", .unless = unless_ops_default,
     .help = "operators drawn; auto: +-* without brackets, +- with (Grazzi et al. 2024)"},
    {.name = "task.group", .type = OPT_STRING, .max_count = SB_GROUP_TEXT, .def = "S5",
     .offset = F(task.group), .tasks = "group_word",
     .help = "Z<m> (m >= 2), S3, S4, S5, A4, A5 or a direct product such as A4xZ5"},
    {.name = "task.language", .type = OPT_ENUM, .names = language_names, .def = "random",
     .offset = F(task.language), .tasks = "dfa",
     .help = "the regular language: a Tomita grammar, even_pairs, or a random minimal DFA"},
    {.name = "task.states", .type = OPT_INT, .min = 2, .max = 64, .def = "6",
     .offset = F(task.states), .tasks = "dfa", .unless = unless_named_language,
     .help = "states of the random language's minimal DFA"},
    {.name = "task.dfa_seed", .type = OPT_INT, .min = 0, .max = 2147483647, .def = "0",
     .offset = F(task.dfa_seed), .tasks = "dfa", .unless = unless_named_language,
     .help = "seed of the random language (not the run seed: a sweep learns one language)"},
    {.name = "task.balance", .type = OPT_BOOL, .def = "true",
     .offset = F(task.balance), .tasks = "dfa", .unless = unless_running,
     .help = "mode final: half the examples accepted, half rejected"},
    {.name = "task.short", .type = OPT_INT, .min = 1, .max = MAX_LEN, .def = "4",
     .offset = F(task.short_size), .tasks = "set_disjoint",
     .help = "size of the short set (chance 1/short in mode find)"},
    {.name = "task.order", .type = OPT_ENUM, .names = order_names, .def = "short_first",
     .offset = F(task.order), .tasks = "set_disjoint",
     .help = "which set comes first"},

    {.name = "model.mixer", .type = OPT_MIXERS, .max_count = SB_MAX_PATTERN,
     .def = "deltanet", .offset = F(model.mixer), .offset2 = F(model.n_mixer),
     .help = "sequence mixer, or a list repeated over the layers (hybrids)"},
    {.name = "model.layers", .type = OPT_INT, .min = 1, .max = 64, .def = "2",
     .offset = F(model.layers), .help = "residual blocks"},
    {.name = "model.d_model", .type = OPT_INT, .min = 1, .max = 8192, .def = "64",
     .offset = F(model.d_model), .help = "model width d"},
    {.name = "model.heads", .type = OPT_INT, .min = 1, .max = 256, .def = "4",
     .offset = F(model.heads),
     .mixers = M(MIXER_DELTANET) | M(MIXER_LINEAR_ATTN) | M(MIXER_ATTENTION) | M(MIXER_SLSTM) |
               M(MIXER_MAMBA2) | M(MIXER_RETNET) | M(MIXER_GLA) | M(MIXER_GATED_DELTANET) |
               M(MIXER_MLSTM),
     .help = "heads; must divide d_model (even head size for rope attention)"},
    {.name = "model.eigen", .type = OPT_ENUM, .names = eigen_names, .def = "positive",
     .offset = F(model.eigen), .mixers = M(MIXER_DELTANET) | M(MIXER_MINGRU) | M(MIXER_HGRN) |
                                         M(MIXER_MAMBA) | M(MIXER_MAMBA2) |
                                         M(MIXER_GATED_DELTANET) | M(MIXER_GLA),
     .help = "transition eigenvalues in (0,1) or (-1,1) (Grazzi et al. 2024)"},
    {.name = "model.mlp", .type = OPT_ENUM, .names = mlp_names, .def = "swiglu",
     .offset = F(model.mlp), .help = "MLP after each mixer"},
    {.name = "model.mlp_ratio", .type = OPT_INT, .min = 1, .max = 16, .def = "4",
     .offset = F(model.mlp_ratio), .unless = unless_mlp,
     .help = "MLP hidden width = mlp_ratio * d_model (not with mlp none)"},
    {.name = "model.pos", .type = OPT_ENUM, .names = pos_names, .def = "rope",
     .offset = F(model.pos),
     .help = "positions: rope (attention layers only), learned absolute, none"},
    {.name = "model.rope_theta", .type = OPT_FLOAT, .min = 1, .max = 1e9, .def = "10000",
     .offset = F(model.rope_theta), .mixers = M(MIXER_ATTENTION), .unless = unless_rope,
     .help = "RoPE base (with pos rope)"},
    {.name = "model.feature_map", .type = OPT_ENUM, .names = fmap_names, .def = "elu1",
     .offset = F(model.feature_map), .mixers = M(MIXER_LINEAR_ATTN),
     .help = "feature map on q and k"},
    {.name = "model.normalize", .type = OPT_BOOL, .def = "true",
     .offset = F(model.normalize), .mixers = M(MIXER_LINEAR_ATTN),
     .help = "divide by q^T sum k"},
    {.name = "model.d_state", .type = OPT_INT, .min = 2, .max = 1024, .flags = OPT_EVEN,
     .def = "16", .offset = F(model.d_state),
     .mixers = M(MIXER_MAMBA) | M(MIXER_MAMBA2) | M(MIXER_S4D),
     .help = "state size N per channel (mamba) or head (mamba2); s4d: N/2 complex modes"},
    {.name = "model.expand", .type = OPT_INT, .min = 1, .max = 16, .def = "2",
     .offset = F(model.expand), .mixers = M(MIXER_MAMBA) | M(MIXER_MAMBA2),
     .help = "inner width = expand * d_model"},
    {.name = "model.r_min", .type = OPT_FLOAT, .min = 0, .max = 1, .flags = OPT_MAX_OPEN,
     .def = "0", .offset = F(model.r_min), .mixers = M(MIXER_LRU),
     .help = "eigenvalue moduli start uniform on the ring r_min <= |lambda| <= r_max"},
    {.name = "model.r_max", .type = OPT_FLOAT, .min = 0, .max = 1, .flags = OPT_MIN_OPEN,
     .def = "1", .offset = F(model.r_max), .mixers = M(MIXER_LRU),
     .help = "outer radius of the ring init (at most 1)"},
    {.name = "model.max_phase", .type = OPT_FLOAT, .min = 0, .max = 6.283185307179586,
     .flags = OPT_MIN_OPEN, .def = "6.283185307179586", .offset = F(model.max_phase),
     .mixers = M(MIXER_LRU), .help = "eigenvalue phases start uniform in [0, max_phase]"},

    {.name = "train.steps", .type = OPT_INT, .min = 1, .max = 1e8, .def = "1000",
     .offset = F(train.steps), .help = "optimizer steps"},
    {.name = "train.batch", .type = OPT_INT, .min = 1, .max = 65536, .def = "64",
     .offset = F(train.batch), .help = "examples per step"},
    {.name = "train.lr", .type = OPT_FLOAT, .min = 0, .max = 10, .flags = OPT_MIN_OPEN,
     .def = "0.001", .offset = F(train.lr), .help = "peak learning rate"},
    {.name = "train.min_lr_ratio", .type = OPT_FLOAT, .min = 0, .max = 1, .def = "0.1",
     .offset = F(train.min_lr_ratio), .help = "cosine decay ends at lr * min_lr_ratio"},
    {.name = "train.warmup", .type = OPT_INT, .min = 0, .max = 1e8, .def = "0",
     .offset = F(train.warmup), .help = "linear warmup steps (at most steps)"},
    {.name = "train.weight_decay", .type = OPT_FLOAT, .min = 0, .max = 10, .def = "0",
     .offset = F(train.weight_decay), .help = "AdamW decoupled weight decay (matrices only)"},
    {.name = "train.beta1", .type = OPT_FLOAT, .min = 0, .max = 1, .flags = OPT_MAX_OPEN,
     .def = "0.9", .offset = F(train.beta1), .help = "AdamW first-moment decay"},
    {.name = "train.beta2", .type = OPT_FLOAT, .min = 0, .max = 1, .flags = OPT_MAX_OPEN,
     .def = "0.999", .offset = F(train.beta2), .help = "AdamW second-moment decay"},
    {.name = "train.eps", .type = OPT_FLOAT, .min = 0, .max = 1, .flags = OPT_MIN_OPEN,
     .def = "1e-8", .offset = F(train.eps), .help = "AdamW epsilon"},
    {.name = "train.grad_clip", .type = OPT_FLOAT, .min = 0, .max = 1e6, .def = "1",
     .offset = F(train.grad_clip), .help = "clip the global gradient norm (0 = off)"},
    {.name = "train.log_every", .type = OPT_INT, .min = 1, .max = 1e8, .def = "10",
     .offset = F(train.log_every), .help = "training-curve row every k steps"},
    {.name = "train.checkpoint_every", .type = OPT_INT, .min = 0, .max = 1e8, .def = "500",
     .flags = OPT_NOT_HASHED, .offset = F(train.checkpoint_every),
     .help = "checkpoint every k steps so a killed run resumes (0 = only on SIGINT/SIGTERM); "
             "not part of the run hash"},
    {.name = "train.precision", .type = OPT_ENUM, .names = precision_names, .def = "fp32",
     .flags = OPT_HASHED_UNLESS_DEFAULT, .offset = F(train.precision),
     .help = "GPU gemms: fp32, tf32 (tensor cores, ~1e-3 relative per product; the CPU computes fp32), "
             "or bf16 (GPU only, refused on the CPU: the dense projections' operands rounded to bf16, up "
             "to 4e-3 relative each, with fp32 accumulation; weights, gradients, AdamW and the other ops "
             "stay fp32); in the hash unless fp32"},
    {.name = "train.deterministic", .type = OPT_ENUM, .names = deterministic_names, .def = "true",
     .flags = OPT_HASHED_UNLESS_DEFAULT, .offset = F(train.deterministic),
     .help = "bit-reproducible runs: every reduction in a fixed order, no float atomics, on the CPU "
             "and the GPU (docs/SCALE.md); the only mode the kernels have, so true is the only value "
             "(runs.deterministic records it)"},

    {.name = "eval.every", .type = OPT_INT, .min = 0, .max = 1e8, .def = "0",
     .offset = F(eval.every), .help = "evaluate every k steps (0 = at the end only)"},
    {.name = "eval.count", .type = OPT_INT, .min = 1, .max = 1e7, .def = "512",
     .offset = F(eval.count), .help = "examples per eval length"},
    {.name = "eval.batch", .type = OPT_INT, .min = 1, .max = 65536, .def = "128",
     .offset = F(eval.batch), .help = "eval batch size"},
    {.name = "eval.target", .type = OPT_FLOAT, .min = 0, .max = 1, .def = "0",
     .offset = F(eval.target),
     .help = "stop early once scaled_acc >= target at every eval length (0 = off)"},
};
const int sb_option_count = (int)(sizeof sb_options / sizeof sb_options[0]);

/* ---- field access ---- */

static int *int_at(run_spec *s, size_t off) { return (int *)((char *)s + off); }
static const int *cint_at(const run_spec *s, size_t off)
{
    return (const int *)((const char *)s + off);
}
static double *dbl_at(run_spec *s, size_t off) { return (double *)((char *)s + off); }
static double cdbl_at(const run_spec *s, size_t off)
{
    return *(const double *)((const char *)s + off);
}

/* ---- names ---- */

const char *option_key(const sb_option *o)
{
    const char *dot = strchr(o->name, '.');
    return dot ? dot + 1 : o->name;
}

const char *option_section(const sb_option *o, char *out, size_t outlen)
{
    snprintf(out, outlen, "%.*s", (int)(option_key(o) - 1 - o->name), o->name);
    return out;
}

const sb_option *option_find(const char *dotted)
{
    for (int i = 0; i < sb_option_count; i++)
        if (strcmp(sb_options[i].name, dotted) == 0) return &sb_options[i];
    return NULL;
}

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t *row = malloc((lb + 1) * sizeof *row);
    if (!row) return (size_t)-1;
    for (size_t j = 0; j <= lb; j++) row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    size_t d = row[lb];
    free(row);
    return d;
}

static int in_section(const sb_option *o, const char *section)
{
    size_t n = strlen(section);
    return strncmp(o->name, section, n) == 0 && o->name[n] == '.';
}

/* Edits a typo may hold: 2 for short names, a third of the length for long. */
static size_t typo_limit(const char *name)
{
    size_t len = strlen(name);
    return len < 6 ? 2 : len / 3;
}

const sb_option *option_closest(const char *name, const char *section)
{
    const sb_option *best = NULL;
    size_t best_d = (size_t)-1;
    for (int i = 0; i < sb_option_count; i++) {
        const sb_option *o = &sb_options[i];
        if (section && !in_section(o, section)) continue;
        size_t d = edit_distance(name, section ? option_key(o) : o->name);
        if (d < best_d) {
            best_d = d;
            best = o;
        }
    }
    return best && best_d <= typo_limit(name) ? best : NULL;
}

const char *options_closest_word(const char *name, const char *const *words, int n)
{
    const char *best = NULL;
    size_t best_d = (size_t)-1;
    for (int i = 0; i < n; i++) {
        size_t d = edit_distance(name, words[i]);
        if (d < best_d) {
            best_d = d;
            best = words[i];
        }
    }
    return best && best_d <= typo_limit(name) ? best : NULL;
}

/* Appends text to out (bounded; truncates). */
static void append(char *out, size_t outlen, const char *text)
{
    size_t used = strlen(out);
    if (used + 1 < outlen) snprintf(out + used, outlen - used, "%s", text);
}

static void list_section(char *out, size_t outlen, const char *section)
{
    int first = 1;
    for (int i = 0; i < sb_option_count; i++) {
        if (section && !in_section(&sb_options[i], section)) continue;
        if (!first) append(out, outlen, ", ");
        append(out, outlen, sb_options[i].name);
        first = 0;
    }
}

const sb_option *option_lookup(const char *key, char *err, size_t errlen)
{
    const sb_option *o = option_find(key);
    if (o) return o;
    if (!strchr(key, '.')) {
        const sb_option *match = NULL;
        int count = 0;
        for (int i = 0; i < sb_option_count; i++)
            if (strcmp(option_key(&sb_options[i]), key) == 0) {
                match = &sb_options[i];
                count++;
            }
        if (count == 1) return match;
        if (count > 1) {
            snprintf(err, errlen, "ambiguous key '%s'; allowed: ", key);
            int first = 1;
            for (int i = 0; i < sb_option_count; i++)
                if (strcmp(option_key(&sb_options[i]), key) == 0) {
                    if (!first) append(err, errlen, ", ");
                    append(err, errlen, sb_options[i].name);
                    first = 0;
                }
            return NULL;
        }
    }
    const sb_option *near = option_closest(key, NULL);
    if (!near && !strchr(key, '.')) {
        /* a bare key: compare it with the keys without their sections */
        static const char *const sections[] = {"task", "model", "train", "eval"};
        for (size_t i = 0; i < 4 && !near; i++) near = option_closest(key, sections[i]);
    }
    if (near)
        snprintf(err, errlen, "unknown key '%s' (did you mean '%s'?); allowed: ", key, near->name);
    else
        snprintf(err, errlen, "unknown key '%s'; allowed: ", key);
    list_section(err, errlen, NULL);
    return NULL;
}

/* ---- allowed values and formatting ---- */

/* Bounds of integer options print as integers (1e8 as 100000000). */
static void format_bound(const sb_option *o, double v, char out[32])
{
    if (o->type == OPT_FLOAT)
        json_format_double(v, out);
    else
        snprintf(out, 32, "%.0f", v);
}

void option_allowed(const sb_option *o, char *out, size_t outlen)
{
    char lo[32], hi[32];
    format_bound(o, o->min, lo);
    format_bound(o, o->max, hi);
    out[0] = '\0';
    switch (o->type) {
    case OPT_INT:
        snprintf(out, outlen, "%s%s..%s", o->flags & OPT_EVEN ? "even integers in " : "", lo, hi);
        break;
    case OPT_FLOAT:
        snprintf(out, outlen, "%c%s, %s%c", o->flags & OPT_MIN_OPEN ? '(' : '[', lo, hi,
                 o->flags & OPT_MAX_OPEN ? ')' : ']');
        break;
    case OPT_BOOL:
        snprintf(out, outlen, "true|false");
        break;
    case OPT_ENUM:
        for (int i = 0; o->names[i]; i++) {
            if (i) append(out, outlen, "|");
            append(out, outlen, o->names[i]);
        }
        break;
    case OPT_INT_LIST:
        snprintf(out, outlen, "a list of 1..%d distinct integers in %s..%s", o->max_count, lo, hi);
        break;
    case OPT_INT_PAIR:
        snprintf(out, outlen, "[min, max] with %s <= min <= max <= %s", lo, hi);
        break;
    case OPT_MIXERS:
        snprintf(out, outlen, "a mixer or a list of 1..%d mixers (per-layer pattern) from ",
                 o->max_count);
        for (int i = 0, first = 1; i < MIXER__COUNT; i++) {
            if (!mixer_available(i)) continue;
            if (!first) append(out, outlen, ", ");
            append(out, outlen, mixer_name(i));
            first = 0;
        }
        break;
    case OPT_TASK:
        for (int i = 0; i < task_registry_count; i++) {
            if (i) append(out, outlen, ", ");
            append(out, outlen, task_get(i)->name);
        }
        break;
    case OPT_STRING:
        snprintf(out, outlen, "a word of 1..%d letters and digits", o->max_count - 1);
        break;
    }
}

static void format_ints(const int *v, int n, char *out, size_t outlen)
{
    out[0] = '\0';
    append(out, outlen, "[");
    for (int i = 0; i < n; i++) {
        char b[24];
        snprintf(b, sizeof b, "%s%d", i ? ", " : "", v[i]);
        append(out, outlen, b);
    }
    append(out, outlen, "]");
}

void option_format(const sb_option *o, const run_spec *s, char *out, size_t outlen)
{
    const int *iv = cint_at(s, o->offset);
    char b[32];
    out[0] = '\0';
    switch (o->type) {
    case OPT_INT:
        snprintf(out, outlen, "%d", *iv);
        break;
    case OPT_FLOAT:
        json_format_double(cdbl_at(s, o->offset), b);
        snprintf(out, outlen, "%s", b);
        break;
    case OPT_BOOL:
        snprintf(out, outlen, "%s", *iv ? "true" : "false");
        break;
    case OPT_ENUM:
        snprintf(out, outlen, "%s", *iv >= 0 && o->names[*iv] ? o->names[*iv] : "?");
        break;
    case OPT_INT_LIST:
        format_ints(iv, *cint_at(s, o->offset2), out, outlen);
        break;
    case OPT_INT_PAIR: {
        int pair[2] = {*iv, *cint_at(s, o->offset2)};
        format_ints(pair, 2, out, outlen);
        break;
    }
    case OPT_MIXERS: {
        int n = *cint_at(s, o->offset2);
        if (n == 1) {
            snprintf(out, outlen, "%s", mixer_name(iv[0]));
            break;
        }
        append(out, outlen, "[");
        for (int i = 0; i < n; i++) {
            if (i) append(out, outlen, ", ");
            append(out, outlen, mixer_name(iv[i]));
        }
        append(out, outlen, "]");
        break;
    }
    case OPT_TASK: {
        const task_def *t = task_get(*iv);
        snprintf(out, outlen, "%s", t ? t->name : "?");
        break;
    }
    case OPT_STRING:
        snprintf(out, outlen, "%s", (const char *)iv);
        break;
    }
}

/* ---- parsing ---- */

static int parse_long(const char *text, long long *out)
{
    if (!*text || isspace((unsigned char)*text)) return -1;
    errno = 0;
    char *end;
    long long v = strtoll(text, &end, 10);
    if (errno == 0 && *end == '\0') {
        *out = v;
        return 0;
    }
    /* "1e5" and "20000.0" are integers too; "3.5" is not */
    errno = 0;
    double d = strtod(text, &end);
    if (errno || *end || !isfinite(d) || d != floor(d) || fabs(d) > 9e15) return -1;
    *out = (long long)d;
    return 0;
}

static int parse_double(const char *text, double *out)
{
    if (!*text || isspace((unsigned char)*text)) return -1;
    errno = 0;
    char *end;
    double v = strtod(text, &end);
    if (errno == ERANGE && fabs(v) > 1) return -1; /* overflow; underflow is fine */
    if (*end || !isfinite(v)) return -1;
    *out = v == 0 ? 0 : v; /* no -0 */
    return 0;
}

static int parse_bool(const char *text, int *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(text, yes[i]) == 0) { *out = 1; return 0; }
        if (strcasecmp(text, no[i]) == 0) { *out = 0; return 0; }
    }
    return -1;
}

static int in_bounds(const sb_option *o, double v)
{
    if (o->flags & OPT_MIN_OPEN ? !(v > o->min) : !(v >= o->min)) return 0;
    if (o->flags & OPT_MAX_OPEN ? !(v < o->max) : !(v <= o->max)) return 0;
    return 1;
}

/* Parses one integer element of o, bounds included. */
static int parse_int_item(const sb_option *o, const char *text, int *out, char *err,
                          size_t errlen)
{
    long long v;
    const char *problem = NULL;
    if (parse_long(text, &v) != 0) problem = "is not an integer";
    else if (!in_bounds(o, (double)v)) problem = "is out of range";
    else if ((o->flags & OPT_EVEN) && v % 2) problem = "is odd";
    if (!problem) {
        *out = (int)v;
        return 0;
    }
    char allowed[160];
    option_allowed(o, allowed, sizeof allowed);
    if (o->type == OPT_INT_LIST || o->type == OPT_INT_PAIR) {
        char lo[32], hi[32];
        format_bound(o, o->min, lo);
        format_bound(o, o->max, hi);
        snprintf(allowed, sizeof allowed, "integers in %s..%s", lo, hi);
    }
    if (parse_long(text, &v) != 0)
        snprintf(err, errlen, "%s: '%s' %s; allowed: %s", o->name, text, problem, allowed);
    else
        snprintf(err, errlen, "%s: %lld %s; allowed: %s", o->name, v, problem, allowed);
    return -1;
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* Writes "WHAT; allowed: ..." for o into err and returns -1. The allowed
 * text is built only here: formatting it on every set would cost more
 * than the parse itself. */
static int value_error(const sb_option *o, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int value_error(const sb_option *o, char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    char allowed[320];
    option_allowed(o, allowed, sizeof allowed);
    append(err, errlen, "; allowed: ");
    append(err, errlen, allowed);
    return -1;
}

int option_set_items(run_spec *s, const sb_option *o, const char *const *items, int n,
                     int as_list, int *bad_item, char *err, size_t errlen)
{
    *bad_item = -1;
    int is_list_type = o->type == OPT_INT_LIST || o->type == OPT_INT_PAIR || o->type == OPT_MIXERS;
    if (as_list && !is_list_type)
        return value_error(o, err, errlen, "%s takes a single value, not a list", o->name);
    if (n < 1)
        return value_error(o, err, errlen, "%s: empty list", o->name);
    if (is_list_type && n > (o->type == OPT_INT_PAIR ? 2 : o->max_count))
        return value_error(o, err, errlen, "%s: %d values are too many", o->name, n);
    const char *text = items[0];
    switch (o->type) {
    case OPT_INT: {
        int v;
        if (parse_int_item(o, text, &v, err, errlen) != 0) return -1;
        *int_at(s, o->offset) = v;
        return 0;
    }
    case OPT_FLOAT: {
        double v;
        if (parse_double(text, &v) != 0)
            return value_error(o, err, errlen, "%s: '%s' is not a number", o->name, text);
        if (!in_bounds(o, v)) {
            char b[32];
            json_format_double(v, b);
            return value_error(o, err, errlen, "%s: %s is out of range", o->name, b);
        }
        *dbl_at(s, o->offset) = v;
        return 0;
    }
    case OPT_BOOL: {
        int v;
        if (parse_bool(text, &v) != 0)
            return value_error(o, err, errlen, "%s: '%s' is not a boolean", o->name, text);
        *int_at(s, o->offset) = v;
        return 0;
    }
    case OPT_ENUM:
        for (int i = 0; o->names[i]; i++)
            if (strcmp(o->names[i], text) == 0) {
                *int_at(s, o->offset) = i;
                return 0;
            }
        return value_error(o, err, errlen, "%s: '%s' is not a valid value", o->name, text);
    case OPT_TASK: {
        int t = task_index(text);
        if (t < 0)
            return value_error(o, err, errlen, "%s: unknown task '%s'", o->name, text);
        *int_at(s, o->offset) = t;
        return 0;
    }
    case OPT_STRING: {
        size_t len = strlen(text);
        int word = len >= 1 && len < (size_t)o->max_count;
        for (size_t i = 0; i < len && word; i++) word = isalnum((unsigned char)text[i]) != 0;
        if (!word) return value_error(o, err, errlen, "%s: '%s' is not a word", o->name, text);
        memcpy((char *)s + o->offset, text, len + 1);
        return 0;
    }
    case OPT_INT_LIST:
    case OPT_INT_PAIR:
    case OPT_MIXERS:
        break;
    }

    int v[SB_MAX_EVAL > SB_MAX_PATTERN ? SB_MAX_EVAL : SB_MAX_PATTERN];
    for (int i = 0; i < n; i++) {
        if (o->type == OPT_MIXERS) {
            v[i] = mixer_find(items[i]);
            if (!mixer_available(v[i])) {
                *bad_item = as_list ? i : -1;
                char names[400] = "";
                for (int m = 0, first = 1; m < MIXER__COUNT; m++) {
                    if (!mixer_available(m)) continue;
                    if (!first) append(names, sizeof names, ", ");
                    append(names, sizeof names, mixer_name(m));
                    first = 0;
                }
                snprintf(err, errlen, "%s: unknown mixer '%s'; allowed: %s", o->name, items[i], names);
                return -1;
            }
        } else if (parse_int_item(o, items[i], &v[i], err, errlen) != 0) {
            *bad_item = as_list ? i : -1;
            return -1;
        }
    }
    if (o->type == OPT_INT_PAIR) {
        int lo = v[0], hi = n == 2 ? v[1] : v[0];
        if (lo > hi)
            return value_error(o, err, errlen, "%s: min %d is greater than max %d", o->name, lo, hi);
        *int_at(s, o->offset) = lo;
        *int_at(s, o->offset2) = hi;
        return 0;
    }
    if (o->type == OPT_INT_LIST) {
        qsort(v, (size_t)n, sizeof v[0], cmp_int);
        for (int i = 1; i < n; i++)
            if (v[i] == v[i - 1])
                return value_error(o, err, errlen, "%s: %d appears twice", o->name, v[i]);
    }
    memcpy(int_at(s, o->offset), v, (size_t)n * sizeof v[0]);
    *int_at(s, o->offset2) = n;
    return 0;
}

/* Splits "a,b", "[a, b]" or "a" into trimmed items (pointers into buf). */
static int split_text(char *buf, const char **items, int cap, int *as_list)
{
    char *p = buf;
    while (isspace((unsigned char)*p)) p++;
    char *end = p + strlen(p);
    while (end > p && isspace((unsigned char)end[-1])) *--end = '\0';
    *as_list = 0;
    if (*p == '[' && end > p && end[-1] == ']') {
        *as_list = 1;
        p++;
        *--end = '\0';
    }
    if (strchr(p, ',')) *as_list = 1;
    int n = 0;
    while (1) {
        char *comma = strchr(p, ',');
        if (comma) *comma = '\0';
        char *a = p, *b = p + strlen(p);
        while (isspace((unsigned char)*a)) a++;
        while (b > a && isspace((unsigned char)b[-1])) *--b = '\0';
        if (*a || comma || *as_list == 0) {
            if (n == cap) return cap + 1;
            items[n++] = a;
        }
        if (!comma) break;
        p = comma + 1;
    }
    return n;
}

int options_set(run_spec *s, const char *dotted_key, const char *value, char *err,
                size_t errlen)
{
    const sb_option *o = option_lookup(dotted_key, err, errlen);
    if (!o) return -1;
    char *buf = strdup(value ? value : "");
    const char *items[SB_MAX_EVAL + 2];
    if (!buf) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int as_list, bad;
    int n = split_text(buf, items, SB_MAX_EVAL + 1, &as_list);
    int rc;
    if (n > SB_MAX_EVAL) {
        char allowed[320];
        option_allowed(o, allowed, sizeof allowed);
        snprintf(err, errlen, "%s: too many values; allowed: %s", o->name, allowed);
        rc = -1;
    } else {
        rc = option_set_items(s, o, items, n, as_list, &bad, err, errlen);
    }
    free(buf);
    return rc;
}

/* ---- defaults ---- */

static void set_default(run_spec *s, const sb_option *o)
{
    char err[400];
    if (options_set(s, o->name, o->def, err, sizeof err) != 0) {
        fprintf(stderr, "statebench: bad default in the option table: %s\n", err);
        abort();
    }
}

void option_reset(run_spec *s, const sb_option *o)
{
    if (o->def) {
        set_default(s, o);
        return;
    }
    const task_def *t = task_get(s->task.task);
    if (o->type == OPT_TASK || !t) return;
    task_spec p = s->task;
    t->default_protocol(&p);
    if (o->offset == F(task.train_min)) {
        s->task.train_min = p.train_min;
        s->task.train_max = p.train_max;
    } else if (o->offset == F(task.eval_len)) {
        memcpy(s->task.eval_len, p.eval_len, sizeof p.eval_len);
        s->task.n_eval = p.n_eval;
    }
}

void spec_defaults(run_spec *s, int task)
{
    memset(s, 0, sizeof *s);
    for (int i = 0; i < sb_option_count; i++)
        if (sb_options[i].def) set_default(s, &sb_options[i]);
    s->task.task = task;
    const task_def *t = task_get(task);
    if (t) t->default_protocol(&s->task);
}

/* ---- applicability and canonical form ---- */

/* Mixers of the layers actually built: the first min(layers, n_mixer)
 * pattern entries. */
static int used_mixers(const run_spec *s)
{
    int n = s->model.n_mixer;
    return s->model.layers < n ? s->model.layers : n;
}

static void mixer_label(const run_spec *s, char *out, size_t outlen)
{
    out[0] = '\0';
    for (int i = 0; i < used_mixers(s); i++) {
        if (i) append(out, outlen, "+");
        append(out, outlen, mixer_name(s->model.mixer[i]));
    }
}

static int has_word(const char *list, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = list; (p = strstr(p, word)) != NULL; p += n)
        if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0')) return 1;
    return 0;
}

int option_applies(const sb_option *o, const run_spec *s, char *why, size_t whylen)
{
    if (o->tasks) {
        const task_def *t = task_get(s->task.task);
        if (!t || !has_word(o->tasks, t->name)) {
            snprintf(why, whylen, "%s", t ? t->name : "?");
            return 0;
        }
    }
    if (o->mixers) {
        int hit = 0;
        for (int i = 0; i < used_mixers(s); i++)
            if (o->mixers & M(s->model.mixer[i])) hit = 1;
        if (!hit) {
            mixer_label(s, why, whylen);
            return 0;
        }
    }
    if (o->unless) {
        const char *reason = o->unless(s);
        if (reason) {
            snprintf(why, whylen, "%s", reason);
            return 0;
        }
    }
    return 1;
}

static int has_attention(const run_spec *s)
{
    for (int i = 0; i < used_mixers(s); i++)
        if (s->model.mixer[i] == MIXER_ATTENTION) return 1;
    return 0;
}

void options_canonicalize(run_spec *s, option_note_fn note, void *ctx)
{
    model_spec *m = &s->model;
    char why[128];
    if (m->n_mixer < 1 || m->n_mixer > SB_MAX_PATTERN || m->layers < 1)
        return; /* not a spec this module built: nothing is canonical about it */
    if (m->n_mixer > m->layers) {
        snprintf(why, sizeof why, "layers %d", m->layers);
        if (note) note(ctx, option_find("model.mixer"), NOTE_PATTERN_CUT, why);
    }
    /* shortest period p of the layer sequence seq[i] = mixer[i % n_mixer] */
    int seq[64];
    int layers = m->layers < 64 ? m->layers : 64;
    for (int i = 0; i < layers; i++) seq[i] = m->mixer[i % m->n_mixer];
    int period = layers;
    for (int p = 1; p < layers; p++) {
        int ok = 1;
        for (int i = p; i < layers && ok; i++) ok = seq[i] == seq[i % p];
        if (ok) {
            period = p;
            break;
        }
    }
    if (period < m->n_mixer) {
        memcpy(m->mixer, seq, (size_t)period * sizeof seq[0]);
        m->n_mixer = period;
    }
    if (m->pos == POS_ROPE && !has_attention(s)) {
        mixer_label(s, why, sizeof why);
        m->pos = POS_NONE;
        if (note) note(ctx, option_find("model.pos"), NOTE_ROPE_UNUSED, why);
    }
    for (int i = 0; i < sb_option_count; i++) {
        const sb_option *o = &sb_options[i];
        if (option_applies(o, s, why, sizeof why)) continue;
        option_reset(s, o);
        if (note) note(ctx, o, NOTE_DROPPED, why);
    }
}

int options_check(const run_spec *s, const sb_option **blame, char *err, size_t errlen)
{
    const sb_option *heads = option_find("model.heads");
    char why[128];
    *blame = NULL;
    if (option_applies(heads, s, why, sizeof why)) {
        if (s->model.d_model % s->model.heads) {
            *blame = heads;
            snprintf(err, errlen,
                     "model.heads %d does not divide model.d_model %d; allowed: a divisor of model.d_model",
                     s->model.heads, s->model.d_model);
            return -1;
        }
        int head_size = s->model.d_model / s->model.heads;
        if (has_attention(s) && s->model.pos == POS_ROPE && head_size % 2) {
            *blame = heads;
            snprintf(err, errlen,
                     "model.d_model %d / model.heads %d = %d is odd, but rope attention rotates pairs of "
                     "dimensions; allowed: an even head size (or model.pos learned|none)",
                     s->model.d_model, s->model.heads, head_size);
            return -1;
        }
        for (int i = 0; i < used_mixers(s); i++)
            if (s->model.mixer[i] == MIXER_RETNET && head_size % 2) {
                *blame = heads;
                snprintf(err, errlen,
                         "model.d_model %d / model.heads %d = %d is odd, but retnet rotates pairs "
                         "of q and k dimensions (RoPE); allowed: an even head size",
                         s->model.d_model, s->model.heads, head_size);
                return -1;
            }
    }
    if (s->train.warmup > s->train.steps) {
        *blame = option_find("train.warmup");
        snprintf(err, errlen, "train.warmup %d is more than train.steps %d; allowed: 0..train.steps",
                 s->train.warmup, s->train.steps);
        return -1;
    }
    return 0;
}

/* ---- help ---- */

/* The three text columns of o's help row. */
/* The default of a task option over every task it applies to: one value
 * when they agree, else the most common one (the first on a tie) and the
 * others with their tasks, e.g. "final (running: group_word dfa; find:
 * set_disjoint)". */
/* append without a format: copies what fits of text after out. */
static void append_cut(char *out, size_t outlen, const char *text)
{
    size_t used = strlen(out), n = strlen(text);
    if (used + 1 >= outlen) return;
    if (n > outlen - used - 1) n = outlen - used - 1;
    memcpy(out + used, text, n);
    out[used + n] = '\0';
}

static void per_task_default(const sb_option *o, char *def, size_t dlen)
{
    enum { MAX_VALUES = 16 };
    char values[MAX_VALUES][64], tasks[MAX_VALUES][160];
    int counts[MAX_VALUES], n_values = 0;
    for (int i = 0; i < task_registry_count; i++) {
        const char *name = task_get(i)->name;
        if (!has_word(o->tasks, name)) continue;
        run_spec d;
        spec_defaults(&d, i);
        char v[64];
        option_format(o, &d, v, sizeof v);
        int k = 0;
        while (k < n_values && strcmp(values[k], v) != 0) k++;
        if (k == n_values) {
            if (n_values == MAX_VALUES) continue;
            snprintf(values[k], sizeof values[k], "%s", v);
            tasks[k][0] = '\0';
            counts[k] = 0;
            n_values++;
        }
        if (counts[k]++) append_cut(tasks[k], sizeof tasks[k], " ");
        append_cut(tasks[k], sizeof tasks[k], name);
    }
    int main_value = 0;
    for (int k = 1; k < n_values; k++)
        if (counts[k] > counts[main_value]) main_value = k;
    snprintf(def, dlen, "%s", n_values ? values[main_value] : "-");
    for (int k = 0, first = 1; k < n_values; k++) {
        if (k == main_value) continue;
        append_cut(def, dlen, first ? " (" : "; ");
        append_cut(def, dlen, values[k]);
        append_cut(def, dlen, ": ");
        append_cut(def, dlen, tasks[k]);
        first = 0;
    }
    if (n_values > 1) append_cut(def, dlen, ")");
}

static void help_row(const sb_option *o, const run_spec *d, int task, char *allowed, size_t alen,
                     char *def, size_t dlen)
{
    if (o->type == OPT_MIXERS)
        snprintf(allowed, alen, "mixer or [mixers]");
    else if (o->type == OPT_TASK)
        snprintf(allowed, alen, "task name");
    else if (o->type == OPT_INT_LIST)
        snprintf(allowed, alen, "[n, ...] (<= %d)", o->max_count);
    else if (o->type == OPT_INT_PAIR)
        snprintf(allowed, alen, "[min, max]");
    else
        option_allowed(o, allowed, alen);
    if (o->type == OPT_TASK)
        snprintf(def, dlen, "-");
    else if (!o->def && task < 0)
        snprintf(def, dlen, "per task");
    else if (o->tasks && task < 0)
        per_task_default(o, def, dlen);
    else
        option_format(o, d, def, dlen);
}

void options_print(FILE *out, const char *section, const char *applies_to)
{
    int task = applies_to ? task_index(applies_to) : -1;
    int mixer = applies_to ? mixer_find(applies_to) : -1;
    run_spec d;
    spec_defaults(&d, task >= 0 ? task : 0);
    int name_w = 0, allowed_w = 0, def_w = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < sb_option_count; i++) {
            const sb_option *o = &sb_options[i];
            if (section && !in_section(o, section)) continue;
            if (task >= 0 && o->tasks && !has_word(o->tasks, applies_to)) continue;
            if (mixer >= 0 && o->mixers && !(o->mixers & M(mixer))) continue;
            char allowed[320], def[160], scope[160] = "";
            help_row(o, &d, task, allowed, sizeof allowed, def, sizeof def);
            if (pass == 0) {
                int w = (int)strlen(o->name);
                name_w = w > name_w ? w : name_w;
                w = (int)strlen(allowed);
                allowed_w = w > allowed_w ? w : allowed_w;
                w = (int)strlen(def);
                def_w = w > def_w ? w : def_w;
                continue;
            }
            if (!applies_to && o->tasks) {
                snprintf(scope, sizeof scope, " [%s]", o->tasks);
            } else if (!applies_to && o->mixers) {
                append(scope, sizeof scope, " [");
                for (int m = 0, first = 1; m < MIXER__COUNT; m++)
                    if (o->mixers & M(m)) {
                        if (!first) append(scope, sizeof scope, " ");
                        append(scope, sizeof scope, mixer_name(m));
                        first = 0;
                    }
                append(scope, sizeof scope, "]");
            }
            fprintf(out, "  %-*s  %-*s  %-*s  %s%s\n", name_w, o->name, allowed_w, allowed, def_w, def,
                    o->help, scope);
        }
}
