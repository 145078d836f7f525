/* test_tasks_suite.c: what every task of the suite owes (TASKS.md
 * conventions): determinism whatever the thread count, distinct train and
 * eval streams, valid defaults, `tasks show` in both formats exactly as
 * generated, impossible parameters refused with exit 2, the example
 * configs under configs/tasks, and the canonical form of the task options
 * (equal computations hash equal). */
#include <criterion/criterion.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../harness/config.h"
#include "../harness/options.h"
#include "support_tasks.h"

/* A length every task accepts with its defaults. */
enum { N = 64, COUNT = 48 };

Test(tasks_suite, same_examples_sequential_and_threaded)
{
    /* Examples are drawn in parallel (2 and 3 threads, interleaved
     * indices) and compared with a sequential pass: no generator may keep
     * state between examples (dfa's per-thread language cache included). */
    for (int k = 0; k < task_registry_count; k++) {
        const task_def *t = task_registry[k];
        task_spec p = tt_defaults(t->name);
        int L = t->seq_len(&p, N);
        int *xs = tt_ints((size_t)COUNT * L), *ys = tt_ints((size_t)COUNT * L);
        int *xp = tt_ints((size_t)COUNT * L), *yp = tt_ints((size_t)COUNT * L);
        for (int i = 0; i < COUNT; i++)
            t->generate(&p, 13, SPLIT_EVAL, N, (uint64_t)i, xs + (size_t)i * L, ys + (size_t)i * L);
        for (int threads = 2; threads <= 3; threads++) {
            memset(xp, 0xff, (size_t)COUNT * L * sizeof *xp);
#pragma omp parallel for num_threads(threads) schedule(static, 1)
            for (int i = COUNT - 1; i >= 0; i--)
                t->generate(&p, 13, SPLIT_EVAL, N, (uint64_t)i, xp + (size_t)i * L, yp + (size_t)i * L);
            cr_expect(!memcmp(xs, xp, (size_t)COUNT * L * sizeof *xs) &&
                          !memcmp(ys, yp, (size_t)COUNT * L * sizeof *ys),
                      "%s seed 13: %d threads give other examples", t->name, threads);
        }
        /* the two splits are different streams */
        int same = 0;
        for (int i = 0; i < COUNT; i++) {
            t->generate(&p, 13, SPLIT_TRAIN, N, (uint64_t)i, xp, yp);
            same += !memcmp(xp, xs + (size_t)i * L, (size_t)L * sizeof *xp);
        }
        cr_expect_eq(same, 0, "%s seed 13: %d train examples equal their eval twins", t->name, same);
        free(xs);
        free(ys);
        free(xp);
        free(yp);
    }
}

Test(tasks_suite, defaults_valid_and_labels_in_range)
{
    for (int k = 0; k < task_registry_count; k++) {
        const task_def *t = task_registry[k];
        task_spec p = tt_defaults(t->name);
        cr_expect(t->summary && *t->summary && t->version > 0, "%s: summary, version", t->name);
        tt_expect_valid(t, &p);
        double chance = t->chance(&p);
        cr_expect(chance > 0 && chance < 1, "%s: chance %g", t->name, chance);
        int L = t->seq_len(&p, N), Vin = t->vocab_in(&p), Vout = t->vocab_out(&p);
        int *x = tt_ints((size_t)L), *y = tt_ints((size_t)L);
        long scored = 0;
        for (uint64_t i = 0; i < 20; i++) {
            t->generate(&p, 1, SPLIT_TRAIN, N, i, x, y);
            for (int s = 0; s < L; s++) {
                cr_assert(x[s] >= 0 && x[s] < Vin, "%s: x[%d] = %d outside [0, %d)", t->name, s, x[s], Vin);
                cr_assert(y[s] >= -1 && y[s] < Vout, "%s: y[%d] = %d outside [-1, %d)", t->name, s, y[s], Vout);
                scored += y[s] >= 0;
            }
        }
        cr_expect_gt(scored, 0, "%s: nothing scored", t->name);
        free(x);
        free(y);
    }
}

/* Reads "[a, b, ...]" of n ints at *s; advances *s past the ']'. */
static void read_ints(const char **s, int *v, int n, const char *line)
{
    cr_assert_eq(**s, '[', "jsonl: %s", line);
    (*s)++;
    for (int i = 0; i < n; i++) {
        if (i) {
            cr_assert(!strncmp(*s, ", ", 2), "jsonl: %s", line);
            *s += 2;
        }
        char *end;
        v[i] = (int)strtol(*s, &end, 10);
        cr_assert_neq(end, *s, "jsonl: %s", line);
        *s = end;
    }
    cr_assert_eq(**s, ']', "jsonl: expected %d values in %s", n, line);
    (*s)++;
}

Test(tasks_suite, show_jsonl_and_text_for_every_task)
{
    for (int k = 0; k < task_registry_count; k++) {
        const task_def *t = task_registry[k];
        char *name = (char *)t->name;
        char *argv[] = {"tasks", "show", name, "--n", "33", "--count", "3", "--seed", "5", "--split", "train",
                        "--format", "jsonl"};
        tt_captured c = tt_run_tasks(13, argv);
        cr_assert_eq(c.rc, 0, "%s: stderr %s", name, c.err);
        task_spec p = tt_defaults(name);
        int L = t->seq_len(&p, 33);
        int x[33], y[33], gx[33], gy[33];
        const char *line = c.out;
        for (int i = 0; i < 3; i++) {
            char prefix[96];
            snprintf(prefix, sizeof prefix, "{\"task\": \"%s\", \"n\": 33, \"x\": ", name);
            cr_assert(!strncmp(line, prefix, strlen(prefix)), "%s line %d: %s", name, i, line);
            const char *s = line + strlen(prefix);
            read_ints(&s, x, L, line);
            cr_assert(!strncmp(s, ", \"y\": ", 7), "%s: %s", name, line);
            s += 7;
            read_ints(&s, y, L, line);
            t->generate(&p, 5, SPLIT_TRAIN, 33, (uint64_t)i, gx, gy);
            cr_expect(!memcmp(x, gx, (size_t)L * sizeof *x) && !memcmp(y, gy, (size_t)L * sizeof *y),
                      "%s: line %d is not example %d (seed 5, train, n 33)", name, i, i);
            const char *end = strchr(s, '\n');
            cr_assert(end && end[-1] == '}', "%s: line %d does not end with }", name, i);
            cr_expect(t->print_extra || end == s + 1, "%s: unexpected fields '%.*s'", name, (int)(end - s), s);
            line = end + 1;
        }
        cr_expect_eq(*line, '\0', "%s: more than 3 lines", name);
        tt_captured_free(&c);

        char *argv2[] = {"tasks", "show", name, "--n", "33", "--count", "2"};
        c = tt_run_tasks(7, argv2);
        cr_expect_eq(c.rc, 0, "%s text: stderr %s", name, c.err);
        cr_expect(strstr(c.out, "example 1\n") != NULL, "%s text:\n%s", name, c.out);
        tt_captured_free(&c);
    }
    char *argv[] = {"tasks"};
    tt_captured c = tt_run_tasks(1, argv);
    cr_assert_eq(c.rc, 0);
    for (int k = 0; k < task_registry_count; k++) {
        char want[64];
        snprintf(want, sizeof want, "\n%s ", task_registry[k]->name);
        cr_expect(strstr(c.out, want) && strstr(c.out, task_registry[k]->summary), "list lacks %s:\n%s",
                  task_registry[k]->name, c.out);
    }
    cr_expect(strstr(c.out, "task.group") && strstr(c.out, "task.language") && strstr(c.out, "task.short"),
              "the list shows the suite's options:\n%s", c.out);
    tt_captured_free(&c);
}

Test(tasks_suite, list_shows_each_tasks_own_default)
{
    /* TASKS.md: mode is final for parity and mod_count, running for
     * group_word and dfa, find for set_disjoint; modulus 3, but 5 for
     * mod_arith; vocab 8192, but 2048 for set_disjoint. */
    char *argv[] = {"tasks"};
    tt_captured c = tt_run_tasks(1, argv);
    cr_assert_eq(c.rc, 0);
    static const char *const rows[][2] = {
        {"task.mode ", " final (running: group_word dfa; find: set_disjoint) "},
        {"task.modulus ", " 3 (5: mod_arith) "},
        {"task.vocab ", " 8192 (2048: set_disjoint) "},
        {"task.num_passes ", " 1 "},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const char *line = strstr(c.out, rows[i][0]);
        cr_assert_not_null(line, "no row %s:\n%s", rows[i][0], c.out);
        const char *end = strchr(line, '\n');
        const char *def = strstr(line, rows[i][1]);
        cr_expect(def && (!end || def < end), "row %s lacks '%s':\n%.*s", rows[i][0], rows[i][1],
                  end ? (int)(end - line) : 200, line);
    }
    tt_captured_free(&c);
}

Test(tasks_suite, impossible_parameters_exit_2_saying_what_is_allowed)
{
    struct {
        int argc;
        char *argv[10];
        const char *want;
    } cases[] = {
        {5, {"tasks", "show", "cycle_nav", "--set", "modulus=4"}, "does not apply to cycle_nav"},
        {5, {"tasks", "show", "mod_arith", "--n", "1"}, "need n >= 2"},
        {5, {"tasks", "show", "mod_arith", "--set", "ops=/"}, "auto|+-*|+-|+*|-*|+|-|*"},
        {5, {"tasks", "show", "group_word", "--set", "group=S7"}, "S3, S4, S5, A4, A5"},
        {5, {"tasks", "show", "group_word", "--set", "group=S5xS5xS5"}, "|G| <= 1048576"},
        {5, {"tasks", "show", "group_word", "--set", "group=A4-Z5"}, "a word of 1..31 letters and digits"},
        {5, {"tasks", "show", "group_word", "--set", "mode=find"}, "final, running"},
        {5, {"tasks", "show", "dfa", "--set", "language=tomita8"}, "tomita1|tomita2"},
        {5, {"tasks", "show", "dfa", "--set", "states=65"}, "2..64"},
        {7, {"tasks", "show", "dfa", "--set", "states=24", "--set", "alphabet=1"}, "fewer states or a larger alphabet"},
        {5, {"tasks", "show", "icll", "--n", "1"}, "need n >= 2"},
        {5, {"tasks", "show", "set_disjoint", "--n", "7"}, "need n >= 8"},
        {7, {"tasks", "show", "set_disjoint", "--n", "40", "--set", "vocab=40"}, "vocab >= 70"},
        {5, {"tasks", "show", "set_disjoint", "--set", "mode=final"}, "find, decide"},
        {5, {"tasks", "show", "parity", "--set", "mode=decide"}, "mode decide is set_disjoint's"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tt_captured c = tt_run_tasks(cases[i].argc, cases[i].argv);
        int want_rc = i == 0 ? 0 : 2; /* an option of another task is a note, not an error */
        cr_expect_eq(c.rc, want_rc, "case %zu (%s): exit %d, stderr %s", i, cases[i].argv[2], c.rc, c.err);
        cr_expect(strstr(c.err, cases[i].want), "case %zu: stderr '%s' lacks '%s'", i, c.err, cases[i].want);
        tt_captured_free(&c);
    }
}

Test(tasks_suite, example_configs_load)
{
    static const char *const names[] = {"parity", "mod_count", "mqar", "cycle_nav", "mod_arith",
                                        "group_word", "dfa", "icll", "set_disjoint"};
    cr_assert_eq(task_registry_count, 9, "a task without an example config");
    for (int i = 0; i < 9; i++) {
        char path[128], err[1024] = "";
        snprintf(path, sizeof path, "configs/tasks/%s.yaml", names[i]);
        experiment e;
        cr_assert_eq(config_load(path, &e, NULL, err, sizeof err), 0, "%s: %s", path, err);
        cr_expect_gt(e.count, 0, "%s: no runs", path);
        for (int r = 0; r < e.count; r++)
            cr_expect_eq(e.runs[r].task.task, task_index(names[i]), "%s: run %d is another task", path, r);
        experiment_free(&e);
    }
}

/* Canonical JSON of the defaults of task `name` after the settings. */
static char *json_with(const char *name, int n, const char *const *settings)
{
    run_spec s;
    spec_defaults(&s, task_index(name));
    char err[512];
    for (int i = 0; i < n; i += 2)
        cr_assert_eq(options_set(&s, settings[i], settings[i + 1], err, sizeof err), 0, "%s", err);
    return spec_to_json(&s);
}

static void expect_same_json(const char *name, int n1, const char *const *a, int n2, const char *const *b,
                             int same)
{
    char *ja = json_with(name, n1, a), *jb = json_with(name, n2, b);
    if (same) cr_expect_str_eq(ja, jb, "%s: equal computations, different specs", name);
    else cr_expect_str_neq(ja, jb, "%s: different computations, one spec", name);
    free(ja);
    free(jb);
}

Test(tasks_suite, equal_computations_have_equal_specs)
{
    /* ops spelled as the default it stands for */
    expect_same_json("mod_arith", 2, (const char *const[]){"task.ops", "+-*"}, 0, NULL, 1);
    expect_same_json("mod_arith", 4, (const char *const[]){"task.brackets", "true", "task.ops", "+-"}, 2,
                     (const char *const[]){"task.brackets", "true"}, 1);
    expect_same_json("mod_arith", 2, (const char *const[]){"task.ops", "+-"}, 0, NULL, 0);
    expect_same_json("mod_arith", 4, (const char *const[]){"task.brackets", "true", "task.ops", "+-*"}, 2,
                     (const char *const[]){"task.brackets", "true"}, 0);
    /* a named language ignores the random language's parameters */
    expect_same_json("dfa", 8, (const char *const[]){"task.language", "tomita3", "task.states", "9",
                                                     "task.dfa_seed", "4", "task.alphabet", "3"},
                     2, (const char *const[]){"task.language", "tomita3"}, 1);
    expect_same_json("dfa", 2, (const char *const[]){"task.dfa_seed", "4"}, 0, NULL, 0);
    /* balance is a final-mode option */
    expect_same_json("dfa", 2, (const char *const[]){"task.balance", "false"}, 0, NULL, 1);
    expect_same_json("dfa", 4, (const char *const[]){"task.mode", "final", "task.balance", "false"}, 2,
                     (const char *const[]){"task.mode", "final"}, 0);
    /* the suite's keys stay out of the other tasks' specs */
    expect_same_json("parity", 4, (const char *const[]){"task.group", "A5", "task.short", "7"}, 0, NULL, 1);
    char *j = json_with("group_word", 2, (const char *const[]){"task.group", "A4xZ5"});
    cr_expect(strstr(j, "\"group\":\"A4xZ5\"") && strstr(j, "\"mode\":\"running\""), "json: %s", j);
    free(j);
}
