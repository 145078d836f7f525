/* test_tasks_dfa.c: the dfa task against definitions written here: the
 * Tomita languages and even_pairs as predicates on strings, random
 * languages re-drawn by the rejection rule of TASKS.md with minimality
 * checked by pairwise distinguishability (table filling, not the
 * generator's partition refinement); balance and its fallback; the
 * language fixed by dfa_seed whatever the run seed; validation. Seeds are
 * fixed and printed; statistical bounds fail a correct generator with
 * probability <= 1e-6 per check. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support_tasks.h"

/* ---- the named languages, straight from their definitions ---- */

static int tomita3(const int *s, int n)
{
    /* maximal blocks; reject an odd block of 1s followed by an odd block of 0s */
    int prev_symbol = -1, prev_len = 0;
    for (int i = 0; i < n;) {
        int j = i;
        while (j < n && s[j] == s[i]) j++;
        if (s[i] == 0 && prev_symbol == 1 && prev_len % 2 == 1 && (j - i) % 2 == 1) return 0;
        prev_symbol = s[i];
        prev_len = j - i;
        i = j;
    }
    return 1;
}

static int tomita7(const int *s, int n)
{
    /* 0*1*0*1*: phase k expects symbol k % 2; more than 4 phases rejects */
    int phase = 0;
    for (int i = 0; i < n; i++) {
        while (phase < 4 && s[i] != phase % 2) phase++;
        if (phase == 4) return 0;
    }
    return 1;
}

static int in_language(int language, const int *s, int n)
{
    int zeros = 0, ones = 0, changes = 0;
    for (int i = 0; i < n; i++) {
        zeros += s[i] == 0;
        ones += s[i] == 1;
        if (i) changes += s[i] != s[i - 1];
    }
    switch (language) {
    case LANG_TOMITA1: return zeros == 0;
    case LANG_TOMITA2:
        if (n % 2) return 0;
        for (int i = 0; i < n; i++)
            if (s[i] != (i % 2 == 0)) return 0;
        return 1;
    case LANG_TOMITA3: return tomita3(s, n);
    case LANG_TOMITA4:
        for (int i = 2; i < n; i++)
            if (!s[i] && !s[i - 1] && !s[i - 2]) return 0;
        return 1;
    case LANG_TOMITA5: return zeros % 2 == 0 && ones % 2 == 0;
    case LANG_TOMITA6: return ((zeros - ones) % 3 + 3) % 3 == 0;
    case LANG_TOMITA7: return tomita7(s, n);
    case LANG_EVEN_PAIRS: return changes % 2 == 0; /* #01 + #10 = the changes */
    }
    cr_assert_fail("no language %d", language);
    return 0;
}

static const char *const names[] = {"tomita1", "tomita2", "tomita3", "tomita4", "tomita5",
                                    "tomita6", "tomita7", "even_pairs"};

Test(tasks_dfa, named_languages_label_every_prefix)
{
    static const int lengths[] = {1, 2, 3, 5, 8, 13, 41};
    const task_def *t = tt_task("dfa");
    int x[41], y[41];
    for (int lang = LANG_TOMITA1; lang <= LANG_EVEN_PAIRS; lang++) {
        task_spec p = tt_defaults("dfa");
        p.language = lang;
        tt_expect_valid(t, &p);
        cr_assert_eq(t->vocab_in(&p), 2, "%s: V_in", names[lang]);
        long accepted = 0;
        for (int li = 0; li < 7; li++)
            for (uint64_t i = 0; i < 300; i++) {
                int n = lengths[li];
                t->generate(&p, 21, SPLIT_EVAL, n, i, x, y);
                for (int s = 0; s < n; s++) {
                    cr_assert(x[s] == 0 || x[s] == 1, "%s: x[%d] = %d", names[lang], s, x[s]);
                    int want = in_language(lang, x, s + 1);
                    accepted += want;
                    cr_assert_eq(y[s], want, "%s seed 21 n %d index %llu: y[%d] = %d, want %d", names[lang], n,
                                 (unsigned long long)i, s, y[s], want);
                }
            }
        cr_expect_gt(accepted, 0, "%s: no accepted prefix seen", names[lang]);
    }
}

Test(tasks_dfa, final_mode_balanced_and_uniform_within_each_class)
{
    /* tomita3 at n = 6: every string of each class equally likely. 12800
     * examples; the class is a fair coin: |accepted - 6400| <= 5.3 sd (sd
     * 56.6). Within a class with c strings, a chi-square with c - 1 dof. */
    const task_def *t = tt_task("dfa");
    task_spec p = tt_defaults("dfa");
    p.language = LANG_TOMITA3;
    p.mode = MODE_FINAL;
    cr_assert_eq(p.balance, 1, "balance defaults to true");
    const int n = 6, examples = 12800;
    long counts[64] = {0}, accepted = 0;
    int x[6], y[6];
    for (uint64_t i = 0; i < (uint64_t)examples; i++) {
        t->generate(&p, 30, SPLIT_TRAIN, n, i, x, y);
        int code = 0;
        for (int s = 0; s < n; s++) {
            code = code * 2 + x[s];
            if (s < n - 1) cr_assert_eq(y[s], -1);
        }
        cr_assert_eq(y[n - 1], in_language(LANG_TOMITA3, x, n));
        counts[code]++;
        accepted += y[n - 1];
    }
    cr_expect(labs(accepted - examples / 2) <= 5.3 * sqrt(examples / 4.0), "seed 30: %ld of %d accepted",
              accepted, examples);
    for (int cls = 0; cls <= 1; cls++) {
        long c[64];
        double e[64];
        int members = 0;
        long total = 0;
        for (int code = 0; code < 64; code++) {
            int s[6];
            for (int k = 0; k < n; k++) s[k] = (code >> (n - 1 - k)) & 1;
            if (in_language(LANG_TOMITA3, s, n) != cls) continue;
            c[members++] = counts[code];
            total += counts[code];
        }
        for (int k = 0; k < members; k++) e[k] = (double)total / members;
        double chi2 = tt_chi_square(c, e, members);
        cr_expect_lt(chi2, tt_chi2_bound(members - 1), "seed 30 class %d: chi-square %.2f over %d strings",
                     cls, chi2, members);
    }
}

Test(tasks_dfa, rare_and_empty_classes)
{
    /* tomita1 accepts one string of 2^40: balance still gives it half the
     * time, with no endless loop. tomita2 accepts no string of odd length:
     * uniform strings, all rejected. */
    const task_def *t = tt_task("dfa");
    task_spec p = tt_defaults("dfa");
    p.language = LANG_TOMITA1;
    p.mode = MODE_FINAL;
    int x[40], y[40];
    long accepted = 0;
    for (uint64_t i = 0; i < 4000; i++) {
        t->generate(&p, 31, SPLIT_EVAL, 40, i, x, y);
        int all_ones = 1;
        for (int s = 0; s < 40; s++) all_ones &= x[s] == 1;
        cr_assert_eq(y[39], all_ones, "seed 31 index %llu", (unsigned long long)i);
        accepted += all_ones;
    }
    cr_expect(labs(accepted - 2000) <= 168, "seed 31: %ld of 4000 accepted (sd 31.6)", accepted);

    p.language = LANG_TOMITA2;
    long counts[128] = {0};
    for (uint64_t i = 0; i < 12800; i++) {
        t->generate(&p, 32, SPLIT_EVAL, 7, i, x, y);
        cr_assert_eq(y[6], 0);
        int code = 0;
        for (int s = 0; s < 7; s++) code = code * 2 + x[s];
        counts[code]++;
    }
    double e[128];
    for (int k = 0; k < 128; k++) e[k] = 100;
    double chi2 = tt_chi_square(counts, e, 128);
    cr_expect_lt(chi2, tt_chi2_bound(127), "seed 32: fallback strings not uniform (chi-square %.2f)", chi2);
}

/* ---- random languages ---- */

typedef struct {
    int states, symbols;
    int next[64][32];
    int accept[64];
} test_dfa;

/* All states reachable from 0 and no two states equivalent: table
 * filling, marking pairs that a symbol leads to marked pairs. */
static int is_minimal(const test_dfa *d)
{
    int s = d->states, seen[64] = {1}, stack[64] = {0}, top = 1, reached = 1;
    while (top) {
        int q = stack[--top];
        for (int a = 0; a < d->symbols; a++)
            if (!seen[d->next[q][a]]) {
                seen[d->next[q][a]] = 1;
                stack[top++] = d->next[q][a];
                reached++;
            }
    }
    if (reached < s) return 0;
    static unsigned char marked[64][64];
    for (int i = 0; i < s; i++)
        for (int j = 0; j < s; j++) marked[i][j] = d->accept[i] != d->accept[j];
    for (int changed = 1; changed;) {
        changed = 0;
        for (int i = 0; i < s; i++)
            for (int j = 0; j < s; j++)
                for (int a = 0; a < d->symbols && !marked[i][j]; a++)
                    if (marked[d->next[i][a]][d->next[j][a]]) marked[i][j] = changed = 1;
    }
    for (int i = 0; i < s; i++)
        for (int j = i + 1; j < s; j++)
            if (!marked[i][j]) return 0;
    return 1;
}

/* TASKS.md's rule, re-drawn: from the language's stream, transitions row
 * by row then the accepting bits, until the DFA is minimal with both kinds
 * of states (reachable, as every state is). Returns the draws used. */
static long redraw(int dfa_seed, int s, int k, test_dfa *d)
{
    task_rng r;
    task_rng_init(&r, task_seed((uint64_t)dfa_seed, 0, s, (uint64_t)k, TASK_STREAM_LANGUAGE));
    d->states = s;
    d->symbols = k;
    for (long draw = 1; draw <= 2000000; draw++) {
        int accepting = 0;
        for (int q = 0; q < s; q++)
            for (int a = 0; a < k; a++) d->next[q][a] = (int)task_rng_below(&r, (uint64_t)s);
        for (int q = 0; q < s; q++) accepting += d->accept[q] = (int)task_rng_below(&r, 2);
        if (accepting > 0 && accepting < s && is_minimal(d)) return draw;
    }
    cr_assert_fail("no DFA for dfa_seed %d, %d states, %d symbols", dfa_seed, s, k);
    return 0;
}

Test(tasks_dfa, random_languages_are_minimal_of_the_requested_size)
{
    /* (states, alphabet) over 3 dfa_seeds: the generator's labels follow the
     * re-drawn DFA on every prefix, under two run seeds (the language is
     * the dfa_seed's, not the run's), so its DFA has exactly `states`
     * states; the draws needed vary from one setting to the next. */
    static const int cases[][2] = {{2, 1}, {2, 2}, {3, 2}, {5, 1}, {6, 2}, {8, 3}, {12, 2}, {20, 4}, {32, 2}};
    const task_def *t = tt_task("dfa");
    int x[30], y[30];
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (int dfa_seed = 0; dfa_seed < 3; dfa_seed++) {
            static test_dfa d;
            redraw(dfa_seed, cases[c][0], cases[c][1], &d);
            task_spec p = tt_defaults("dfa");
            cr_assert_eq(p.language, LANG_RANDOM);
            p.states = cases[c][0];
            p.alphabet = cases[c][1];
            p.dfa_seed = dfa_seed;
            tt_expect_valid(t, &p);
            cr_assert_eq(t->vocab_in(&p), p.alphabet);
            for (uint64_t run_seed = 1; run_seed <= 2; run_seed++)
                for (uint64_t i = 0; i < 40; i++) {
                    t->generate(&p, run_seed, SPLIT_TRAIN, 30, i, x, y);
                    int q = 0;
                    for (int s = 0; s < 30; s++) {
                        cr_assert(x[s] >= 0 && x[s] < p.alphabet);
                        q = d.next[q][x[s]];
                        cr_assert_eq(y[s], d.accept[q], "states %d alphabet %d dfa_seed %d run seed %llu "
                                     "index %llu: y[%d] = %d, the re-drawn DFA says %d", p.states, p.alphabet,
                                     dfa_seed, (unsigned long long)run_seed, (unsigned long long)i, s, y[s],
                                     d.accept[q]);
                    }
                }
        }
}

Test(tasks_dfa, validation_names_what_is_allowed)
{
    const task_def *t = tt_task("dfa");
    task_spec p = tt_defaults("dfa");
    cr_expect(p.language == LANG_RANDOM && p.states == 6 && p.alphabet == 2 && p.dfa_seed == 0);
    cr_expect(p.mode == MODE_RUNNING, "dfa defaults to mode running");
    cr_expect(p.train_min == 1 && p.train_max == 50 && p.n_eval == 3 && p.eval_len[2] == 150);
    cr_expect(t->vocab_out(&p) == 2 && t->chance(&p) == 0.5);
    p.alphabet = 33;
    tt_expect_invalid(t, &p, "alphabet = 33", "1..32");
    p = tt_defaults("dfa");
    p.states = 1;
    tt_expect_invalid(t, &p, "states = 1", "2..64");
    p = tt_defaults("dfa");
    p.states = 24;
    p.alphabet = 1; /* a random unary DFA reaches all 24 states w.p. 23!/24^23 = 5e-10 */
    tt_expect_invalid(t, &p, "no random DFA over alphabet = 1", "fewer states or a larger alphabet");
    p = tt_defaults("dfa");
    p.language = 12;
    tt_expect_invalid(t, &p, "language 12", "tomita1..tomita7, even_pairs, random");
    p = tt_defaults("dfa");
    p.mode = MODE_DECIDE;
    tt_expect_invalid(t, &p, "mode decide does not apply", "final, running");
}

Test(tasks_dfa, text_shows_the_language)
{
    char *argv[] = {"tasks", "show", "dfa", "--n", "6", "--count", "1", "--set", "language=tomita4",
                    "--set", "mode=final"};
    tt_captured c = tt_run_tasks(11, argv);
    cr_assert_eq(c.rc, 0, "stderr: %s", c.err);
    cr_expect(strstr(c.out, "language tomita4: no 000") && strstr(c.out, "  ->  "), "text:\n%s", c.out);
    tt_captured_free(&c);
    char *argv2[] = {"tasks", "show", "dfa", "--n", "4", "--count", "1"};
    c = tt_run_tasks(7, argv2);
    cr_assert_eq(c.rc, 0, "stderr: %s", c.err);
    cr_expect(strstr(c.out, "language random (dfa_seed 0): 6 states") && strstr(c.out, "accepted: "),
              "text:\n%s", c.out);
    tt_captured_free(&c);
    char *argv3[] = {"tasks", "show", "dfa", "--n", "7", "--count", "1", "--set", "language=tomita2",
                     "--set", "mode=final"};
    c = tt_run_tasks(11, argv3);
    cr_assert_eq(c.rc, 0, "stderr: %s", c.err);
    cr_expect(strstr(c.out, "note: no string of length 7 is accepted, so balance falls back"), "text:\n%s",
              c.out);
    tt_captured_free(&c);
}

/* ---- the run's note on the balance fallback ---- */

/* The note dfa's run_note should give, built here by enumerating every
 * string of every length of the run with in_language. */
static void expected_note(int language, const task_spec *p, char *out, size_t outlen)
{
    int max = p->train_max;
    for (int i = 0; i < p->n_eval; i++) max = p->eval_len[i] > max ? p->eval_len[i] : max;
    char lists[2][128] = {"", ""};
    int missing[2] = {0, 0};
    int s[20];
    for (int n = 1; n <= max; n++) {
        int used = n >= p->train_min && n <= p->train_max;
        for (int i = 0; i < p->n_eval; i++) used |= p->eval_len[i] == n;
        if (!used) continue;
        int has[2] = {0, 0};
        for (long code = 0; code < (1L << n); code++) {
            for (int k = 0; k < n; k++) s[k] = (int)(code >> (n - 1 - k)) & 1;
            has[in_language(language, s, n)] = 1;
        }
        for (int c = 0; c < 2; c++) {
            if (has[c]) continue;
            if (missing[c] < 8) {
                size_t len = strlen(lists[c]);
                snprintf(lists[c] + len, sizeof lists[c] - len, "%s%d", missing[c] ? ", " : "", n);
            } else if (missing[c] == 8) {
                strcat(lists[c], ", ...");
            }
            missing[c]++;
        }
    }
    out[0] = '\0';
    for (int c = 1; c >= 0; c--) {
        if (!missing[c]) continue;
        size_t len = strlen(out);
        snprintf(out + len, outlen - len,
                 "%sdfa: no string is %s at %d of the run's lengths (n = %s), so balance falls back to uniform "
                 "strings there (all %s)",
                 len ? "; " : "", c ? "accepted" : "rejected", missing[c], lists[c], c ? "rejected" : "accepted");
    }
}

Test(tasks_dfa, run_note_names_the_lengths_without_a_class)
{
    /* train 1..12 and eval {13, 16}: tomita2 accepts no odd length,
     * tomita5 no odd length, tomita3 rejects nothing of length 1; the
     * note says so once per run and nothing in running mode or without
     * balance. */
    const task_def *t = tt_task("dfa");
    cr_assert_not_null(t->run_note, "dfa has no run_note hook");
    int noted = 0;
    for (int language = LANG_TOMITA1; language <= LANG_EVEN_PAIRS; language++) {
        task_spec p = tt_defaults("dfa");
        p.language = language;
        p.mode = MODE_FINAL;
        p.balance = 1;
        p.train_min = 1;
        p.train_max = 12;
        p.n_eval = 2;
        p.eval_len[0] = 13;
        p.eval_len[1] = 16;
        char want[600], got[1024] = "";
        expected_note(language, &p, want, sizeof want);
        int said = t->run_note(&p, got, sizeof got);
        cr_expect_eq(said, want[0] != '\0', "%s: run_note returned %d for '%s'", names[language], said, want);
        if (said) cr_expect_str_eq(got, want, "%s", names[language]);
        noted += said;
        p.balance = 0;
        cr_expect_eq(t->run_note(&p, got, sizeof got), 0, "%s: a note without balance", names[language]);
        p.balance = 1;
        p.mode = MODE_RUNNING;
        cr_expect_eq(t->run_note(&p, got, sizeof got), 0, "%s: a note in running mode", names[language]);
    }
    cr_expect_geq(noted, 3, "tomita2, tomita3 and tomita5 lack a class at some length");
}
