/* dfa.c: membership in one fixed regular language (TASKS.md "dfa"): the
 * Tomita grammars, even_pairs, or a random minimal DFA fixed by dfa_seed,
 * labelled at every prefix (running) or at the end (final, balanced). */
#include "task.h"
#include "dfa_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Random DFAs drawn before a (states, alphabet, dfa_seed) is declared out
 * of reach. Measured acceptance rates: 2 symbols and 64 states 1 in 2e5
 * (so 2e6 draws miss for e^-10 of the dfa_seeds), 1 symbol and 8 states
 * 1 in 855, 1 symbol and 16 states none in 2e5. 2e6 draws take ~2 s. */
#define MAX_DRAWS 2000000

static const char *const language_names[] = {"tomita1", "tomita2", "tomita3", "tomita4", "tomita5",
                                             "tomita6", "tomita7", "even_pairs", "random"};
static const char *const language_rules[] = {
    "1*",
    "(10)*",
    "no odd-length block of 1s immediately followed by an odd-length block of 0s",
    "no 000",
    "even number of 0s and even number of 1s",
    "(#0 - #1) mod 3 == 0",
    "0*1*0*1*",
    "as many 01 as 10 substrings, mod 2 (first symbol == last symbol)",
};

/* The named languages as complete DFAs over {0, 1}: next[q][symbol]. */
typedef struct {
    int states;
    int next[5][2];
    unsigned char accept[5];
} named_dfa;

static const named_dfa named_languages[] = {
    /* tomita1: 0 all 1s so far, 1 dead */
    {2, {{1, 0}, {1, 1}}, {1, 0}},
    /* tomita2: 0 complete pairs, 1 after a 1, 2 dead */
    {3, {{2, 1}, {0, 2}, {2, 2}}, {1, 0, 0}},
    /* tomita3: 0 safe, 1 odd block of 1s, 2 odd 1s then odd 0s so far,
     * 3 odd 1s then even 0s so far, 4 dead */
    {5, {{0, 1}, {2, 0}, {3, 4}, {2, 1}, {4, 4}}, {1, 1, 0, 1, 0}},
    /* tomita4: trailing 0s 0, 1, 2, then dead */
    {4, {{1, 0}, {2, 0}, {3, 0}, {3, 3}}, {1, 1, 1, 0}},
    /* tomita5: state 2 * (#0 mod 2) + (#1 mod 2) */
    {4, {{2, 1}, {3, 0}, {0, 3}, {1, 2}}, {1, 0, 0, 0}},
    /* tomita6: state (#0 - #1) mod 3 */
    {3, {{1, 2}, {2, 0}, {0, 1}}, {1, 0, 0}},
    /* tomita7: in the 1st, 2nd, 3rd, 4th block of 0*1*0*1*, then dead */
    {5, {{0, 1}, {2, 1}, {2, 3}, {4, 3}, {4, 4}}, {1, 1, 1, 1, 0}},
    /* even_pairs: 0 empty, then (first, last) = 00, 01, 11, 10 */
    {5, {{1, 3}, {1, 2}, {1, 2}, {4, 3}, {4, 3}}, {1, 1, 0, 1, 0}},
};

/* Draws random DFAs (states 0..s-1, start 0, transitions uniform over the
 * states, each state accepting with probability 1/2) from the language's
 * own stream until one is minimal with exactly s states, i.e. every state
 * is reachable and no two are equivalent; a minimal DFA of s >= 2 states
 * has accepting and rejecting states, both reachable. Returns 0, or -1
 * after MAX_DRAWS draws. Reachability is checked first: it rejects most
 * draws at a fraction of the cost of minimising. */
static int draw_random_dfa(int dfa_seed, int s, int k, dfa_table *out)
{
    task_rng r;
    task_rng_init(&r, task_seed((uint64_t)dfa_seed, 0, s, (uint64_t)k, TASK_STREAM_LANGUAGE));
    dfa_table d;
    memset(&d, 0, sizeof d);
    d.states = s;
    d.symbols = k;
    for (long draw = 0; draw < MAX_DRAWS; draw++) {
        for (int q = 0; q < s; q++)
            for (int a = 0; a < k; a++) d.next[q][a] = (int)task_rng_below(&r, (uint64_t)s);
        for (int q = 0; q < s; q++) d.accept[q] = (unsigned char)task_rng_below(&r, 2);
        int seen[DFA_MAX_STATES] = {1}, queue[DFA_MAX_STATES] = {0}, reached = 1;
        for (int i = 0; i < reached; i++)
            for (int a = 0; a < k; a++) {
                int q2 = d.next[queue[i]][a];
                if (!seen[q2]) {
                    seen[q2] = 1;
                    queue[reached++] = q2;
                }
            }
        if (reached < s) continue;
        dfa_table m;
        dfa_minimize(&d, &m);
        int accepting = 0;
        for (int q = 0; q < m.states; q++) accepting += m.accept[q];
        if (m.states == s && accepting > 0 && accepting < s) {
            *out = d;
            return 0;
        }
    }
    return -1;
}

/* The last random language drawn in this thread: validate and every
 * example of a run need the same one. */
static _Thread_local struct {
    int valid, found, dfa_seed, states, alphabet;
    dfa_table d;
} last_random;

/* The spec's language as a DFA. Returns 0, or -1 with "what, what is
 * allowed" in err. */
static int language_dfa(const task_spec *p, dfa_table *out, char *err, size_t errlen)
{
    if (p->language != LANG_RANDOM) {
        const named_dfa *nd = &named_languages[p->language];
        memset(out, 0, sizeof *out);
        out->states = nd->states;
        out->symbols = 2;
        for (int q = 0; q < nd->states; q++) {
            out->next[q][0] = nd->next[q][0];
            out->next[q][1] = nd->next[q][1];
            out->accept[q] = nd->accept[q];
        }
        return 0;
    }
    if (!last_random.valid || last_random.dfa_seed != p->dfa_seed ||
        last_random.states != p->states || last_random.alphabet != p->alphabet) {
        last_random.found = draw_random_dfa(p->dfa_seed, p->states, p->alphabet, &last_random.d) == 0;
        last_random.dfa_seed = p->dfa_seed;
        last_random.states = p->states;
        last_random.alphabet = p->alphabet;
        last_random.valid = 1;
    }
    if (!last_random.found) {
        snprintf(err, errlen, "dfa: no random DFA over alphabet = %d has a minimal DFA of exactly "
                 "states = %d in %d draws from dfa_seed %d; allowed: fewer states or a larger "
                 "alphabet (or another dfa_seed)", p->alphabet, p->states, MAX_DRAWS, p->dfa_seed);
        return -1;
    }
    *out = last_random.d;
    return 0;
}

static int dfa_validate(const task_spec *p, char *err, size_t errlen)
{
    if (p->language < 0 || p->language > LANG_RANDOM) {
        snprintf(err, errlen, "dfa: language %d is unknown; allowed: tomita1..tomita7, even_pairs, "
                 "random", p->language);
        return -1;
    }
    if (p->mode != MODE_FINAL && p->mode != MODE_RUNNING) {
        static const char *const modes[] = {"final", "running", "find", "decide"};
        if (p->mode >= MODE_FINAL && p->mode <= MODE_DECIDE)
            snprintf(err, errlen, "dfa: mode %s does not apply; allowed: final, running", modes[p->mode]);
        else
            snprintf(err, errlen, "dfa: mode %d is unknown; allowed: final, running", p->mode);
        return -1;
    }
    if (p->balance != 0 && p->balance != 1) {
        snprintf(err, errlen, "dfa: balance = %d; allowed: false, true", p->balance);
        return -1;
    }
    if (p->language == LANG_RANDOM) {
        if (p->states < 2 || p->states > DFA_MAX_STATES) {
            snprintf(err, errlen, "dfa: states = %d; allowed: 2..%d (a minimal DFA with accepting "
                     "and rejecting states has at least 2)", p->states, DFA_MAX_STATES);
            return -1;
        }
        if (p->alphabet < 1 || p->alphabet > DFA_MAX_SYMBOLS) {
            snprintf(err, errlen, "dfa: alphabet = %d; allowed for a random language: 1..%d",
                     p->alphabet, DFA_MAX_SYMBOLS);
            return -1;
        }
        dfa_table d;
        if (language_dfa(p, &d, err, errlen) != 0) return -1;
    }
    return task_validate_lengths("dfa", p, NULL, err, errlen);
}

static int dfa_vocab_in(const task_spec *p) { return p->language == LANG_RANDOM ? p->alphabet : 2; }
static int dfa_vocab_out(const task_spec *p) { return 2; }
static double dfa_chance(const task_spec *p) { return 0.5; }
static int dfa_seq_len(const task_spec *p, int n) { return n; }

static double log_add(double a, double b)
{
    if (a == -INFINITY) return b;
    if (b == -INFINITY) return a;
    return a > b ? a + log1p(exp(b - a)) : b + log1p(exp(a - b));
}

/* lw[l * s + q] = log of the number of strings of length l that lead from
 * state q to a state of class c (1 accepting, 0 rejecting), l = 0..n;
 * -inf where there is none. Logs, because the counts reach k^n. */
static void class_counts(const dfa_table *d, int c, int n, double *lw)
{
    int s = d->states;
    for (int q = 0; q < s; q++) lw[q] = d->accept[q] == c ? 0 : -INFINITY;
    for (int l = 1; l <= n; l++)
        for (int q = 0; q < s; q++) {
            double v = -INFINITY;
            for (int a = 0; a < d->symbols; a++) v = log_add(v, lw[(size_t)(l - 1) * s + d->next[q][a]]);
            lw[(size_t)l * s + q] = v;
        }
}

/* A string of length n drawn uniformly among those of class c, symbol by
 * symbol with probability proportional to the completions each symbol
 * leaves: the distribution rejection sampling would give, without its
 * endless loop on rare classes (tomita1 accepts 1 string of 2^n). Returns
 * -1 (x untouched) when class c has no string of length n. */
static int sample_in_class(const dfa_table *d, int c, int n, task_rng *r, int *x)
{
    int s = d->states, k = d->symbols;
    double *lw = calloc((size_t)(n + 1) * (size_t)s, sizeof *lw); /* calloc: GCC cannot see class_counts fill it */
    if (!lw) {
        fprintf(stderr, "statebench: out of memory generating dfa (n = %d)\n", n);
        exit(EXIT_FAILURE);
    }
    class_counts(d, c, n, lw);
    if (lw[(size_t)n * s] == -INFINITY) {
        free(lw);
        return -1;
    }
    int q = 0;
    for (int t = 0; t < n; t++) {
        const double *rest = lw + (size_t)(n - t - 1) * s;
        double top = -INFINITY, total = 0;
        for (int a = 0; a < k; a++)
            if (rest[d->next[q][a]] > top) top = rest[d->next[q][a]];
        for (int a = 0; a < k; a++) total += exp(rest[d->next[q][a]] - top);
        double u = task_rng_uniform(r) * total;
        int pick = -1;
        for (int a = 0; a < k; a++) {
            double w = exp(rest[d->next[q][a]] - top);
            if (w == 0) continue;
            pick = a; /* the last symbol with weight when rounding leaves u >= the sum */
            if (u < w) break;
            u -= w;
        }
        x[t] = pick;
        q = d->next[q][pick];
    }
    free(lw);
    return 0;
}

/* running: x uniform, y[t] = 1 if x[0..t] is in the language. final: y at
 * n-1 only; with balance the class is a fair coin and x uniform within it
 * (uniform strings when that class has no string of length n). */
static void dfa_generate(const task_spec *p, uint64_t seed, int split, int n, uint64_t index,
                         int *x, int *y)
{
    dfa_table d;
    char err[512];
    if (language_dfa(p, &d, err, sizeof err) != 0) {
        fprintf(stderr, "statebench: %s\n", err); /* validate refuses such specs */
        abort();
    }
    task_rng r;
    task_rng_init(&r, task_seed(seed, split, n, index, TASK_STREAM_EXAMPLE));
    int balanced = p->mode == MODE_FINAL && p->balance;
    if (!balanced || sample_in_class(&d, (int)task_rng_below(&r, 2), n, &r, x) != 0)
        for (int t = 0; t < n; t++) x[t] = (int)task_rng_below(&r, (uint64_t)d.symbols);
    int q = 0;
    for (int t = 0; t < n; t++) {
        q = d.next[q][x[t]];
        y[t] = p->mode == MODE_RUNNING || t == n - 1 ? d.accept[q] : -1;
    }
}

/* Bhattamishra et al. 2020 (Tomita grammars): train on lengths 1..50,
 * test on 51..100 and 101..150; we test at 50, 100, 150. Mode running. */
static void dfa_default_protocol(task_spec *p)
{
    static const int eval[] = {50, 100, 150};
    p->mode = MODE_RUNNING;
    p->train_min = 1;
    p->train_max = 50;
    p->n_eval = (int)(sizeof eval / sizeof eval[0]);
    for (int i = 0; i < p->n_eval; i++) p->eval_len[i] = eval[i];
}

/* 1 when some string of length n leads from the start to a state of
 * class c (1 accepting, 0 rejecting). */
static int class_has_string(const dfa_table *d, int c, int n)
{
    unsigned char reach[DFA_MAX_STATES] = {1}, next[DFA_MAX_STATES];
    for (int t = 0; t < n; t++) {
        memset(next, 0, sizeof next);
        for (int q = 0; q < d->states; q++)
            if (reach[q])
                for (int a = 0; a < d->symbols; a++) next[d->next[q][a]] = 1;
        memcpy(reach, next, sizeof reach);
    }
    for (int q = 0; q < d->states; q++)
        if (reach[q] && d->accept[q] == c) return 1;
    return 0;
}

/* The lengths of the run (train range and eval grid) at which class c has
 * no string, as "N lengths (a, b, ...)" into out; returns how many. One
 * pass of reachability over the lengths 0..max: O(max * states * symbols). */
static int lengths_without_class(const task_spec *p, const dfa_table *d, int c, char *out, size_t outlen)
{
    int max = p->train_max;
    for (int i = 0; i < p->n_eval; i++)
        if (p->eval_len[i] > max) max = p->eval_len[i];
    unsigned char reach[DFA_MAX_STATES] = {1}, next[DFA_MAX_STATES];
    int missing = 0, shown = 0;
    size_t used = 0;
    out[0] = '\0';
    for (int n = 1; n <= max; n++) {
        memset(next, 0, sizeof next);
        for (int q = 0; q < d->states; q++)
            if (reach[q])
                for (int a = 0; a < d->symbols; a++) next[d->next[q][a]] = 1;
        memcpy(reach, next, sizeof reach);
        int used_here = n >= p->train_min && n <= p->train_max;
        for (int i = 0; i < p->n_eval && !used_here; i++) used_here = p->eval_len[i] == n;
        if (!used_here) continue;
        int has = 0;
        for (int q = 0; q < d->states && !has; q++) has = reach[q] && d->accept[q] == c;
        if (has) continue;
        missing++;
        if (shown < 8 && used < outlen) {
            used += (size_t)snprintf(out + used, outlen - used, "%s%d", shown ? ", " : "", n);
            shown++;
        }
    }
    if (missing > shown && used < outlen) snprintf(out + used, outlen - used, ", ...");
    return missing;
}

/* mode final with balance: names the lengths where one class has no
 * string, at which the examples are uniform strings (all of the other
 * class) instead of balanced. */
static int dfa_run_note(const task_spec *p, char *out, size_t outlen)
{
    dfa_table d;
    char err[512];
    if (p->mode != MODE_FINAL || !p->balance || language_dfa(p, &d, err, sizeof err) != 0) return 0;
    size_t used = 0;
    out[0] = '\0';
    for (int c = 1; c >= 0; c--) {
        char lengths[128];
        int missing = lengths_without_class(p, &d, c, lengths, sizeof lengths);
        if (!missing || used >= outlen) continue;
        used += (size_t)snprintf(out + used, outlen - used,
                                 "%sdfa: no string is %s at %d of the run's lengths (n = %s), so balance falls "
                                 "back to uniform strings there (all %s)",
                                 used ? "; " : "", c ? "accepted" : "rejected", missing, lengths,
                                 c ? "rejected" : "accepted");
    }
    return used > 0;
}

/* Writes symbols (or labels) as digits, space-separated when a symbol can
 * take two characters. */
static void print_symbols(FILE *out, const int *v, int n, int spaced)
{
    for (int t = 0; t < n; t++) fprintf(out, spaced && t ? " %d" : "%d", v[t]);
}

/* The language, its transition table for a random one, then x and the
 * labels: "x: 0110  ->  accepted (1)" or the prefix labels under x. */
static void dfa_print_text(FILE *out, const task_spec *p, int n, const int *x, const int *y)
{
    dfa_table d;
    char err[512];
    if (language_dfa(p, &d, err, sizeof err) != 0) {
        fprintf(out, "%s\n", err);
        return;
    }
    if (p->language == LANG_RANDOM) {
        fprintf(out, "language random (dfa_seed %d): %d states, start 0; state: next on 0..%d | accepting\n",
                p->dfa_seed, d.states, d.symbols - 1);
        for (int q = 0; q < d.states; q++) {
            fprintf(out, "  %2d:", q);
            for (int a = 0; a < d.symbols; a++) fprintf(out, " %2d", d.next[q][a]);
            fprintf(out, " | %d\n", d.accept[q]);
        }
    } else {
        fprintf(out, "language %s: %s\n", language_names[p->language], language_rules[p->language]);
    }
    int spaced = d.symbols > 10;
    if (p->mode == MODE_RUNNING) {
        fputs("x:        ", out);
        print_symbols(out, x, n, spaced);
        fputs("\naccepted: ", out);
        print_symbols(out, y, n, spaced);
        fputc('\n', out);
        return;
    }
    for (int c = 0; c <= 1 && p->balance; c++)
        if (!class_has_string(&d, c, n))
            fprintf(out, "note: no string of length %d is %s, so balance falls back to uniform strings\n", n,
                    c ? "accepted" : "rejected");
    fputs("x: ", out);
    print_symbols(out, x, n, spaced);
    fprintf(out, "  ->  %s (%d)\n", y[n - 1] ? "accepted" : "rejected", y[n - 1]);
}

const task_def task_dfa = {
    .name = "dfa",
    .summary = "membership of each prefix (or the string) in a Tomita, even_pairs or random language",
    .version = 1,
    .validate = dfa_validate,
    .vocab_in = dfa_vocab_in,
    .vocab_out = dfa_vocab_out,
    .chance = dfa_chance,
    .seq_len = dfa_seq_len,
    .generate = dfa_generate,
    .default_protocol = dfa_default_protocol,
    .print_text = dfa_print_text,
    .run_note = dfa_run_note,
};
