/* emu_launch.c: rewrites a .cu file into C++ for the CPU emulator
 * (tools/cuda_emu/README.md). Two rewrites, everything else is copied:
 *
 *   kernel<<<grid, block, smem, stream>>>(args)
 *     -> ::emu::launch(::emu::cfg(grid, block, smem, stream), "kernel", __FILE__,
 *                      __LINE__, [=](auto &...emu_a_) { kernel(emu_a_...); })(args)
 *        (NULL among the arguments becomes nullptr, which converts to any
 *        pointer parameter as NULL does at a real launch)
 *   extern __shared__ T name[];
 *     -> T *const name = (T *)::emu::dyn_smem();
 *
 * Comments, string and character literals are skipped, line numbers are
 * kept and the output starts with #line 1 "IN", so diagnostics and __FILE__
 * name the .cu file. Usage: emu_launch IN.cu OUT.cpp (exit 2 on a launch it
 * cannot parse, naming the line). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *p;
    size_t n, cap;
} buf;

static void put(buf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
        if (!b->p) {
            perror("emu_launch");
            exit(1);
        }
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}
static void puts_(buf *b, const char *s) { put(b, s, strlen(s)); }

static const char *in_name;
static const char *src;
static size_t len;

static int line_of(size_t at)
{
    int l = 1;
    for (size_t i = 0; i < at && i < len; i++) l += src[i] == '\n';
    return l;
}

static void die(size_t at, const char *msg)
{
    fprintf(stderr, "%s:%d: emu_launch: %s\n", in_name, line_of(at), msg);
    exit(2);
}

static int ident(char c) { return isalnum((unsigned char)c) || c == '_'; }

/* Index just past the literal or comment starting at i, or i if none starts there. */
static size_t skip_literal(size_t i)
{
    if (src[i] == '/' && i + 1 < len && src[i + 1] == '/') {
        while (i < len && src[i] != '\n') i++;
        return i;
    }
    if (src[i] == '/' && i + 1 < len && src[i + 1] == '*') {
        const char *e = strstr(src + i + 2, "*/");
        return e ? (size_t)(e - src) + 2 : len;
    }
    if (src[i] == '"' || (src[i] == '\'' && (i == 0 || !ident(src[i - 1])))) {
        const char q = src[i++];
        while (i < len && src[i] != q) {
            if (src[i] == '\\') i++;
            i++;
        }
        return i < len ? i + 1 : len;
    }
    return i;
}

static int word_at(size_t i, const char *w)
{
    const size_t n = strlen(w);
    return i + n <= len && !strncmp(src + i, w, n) && (i == 0 || !ident(src[i - 1])) &&
           (i + n == len || !ident(src[i + n]));
}

/* Copies s[0..n) with the identifier NULL replaced by nullptr. */
static void put_args(buf *o, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (n - i >= 4 && !strncmp(s + i, "NULL", 4) && (i == 0 || !ident(s[i - 1])) && (i + 4 == n || !ident(s[i + 4]))) {
            puts_(o, "nullptr");
            i += 3;
        } else {
            put(o, s + i, 1);
        }
    }
}

/* The kernel expression before `<<<`: an identifier, optionally qualified
 * (a::b) and with template arguments (k<RK, 2>). Returns its start in o. */
static size_t callee_start(const buf *o, size_t end, size_t at)
{
    size_t i = end;
    if (i > 0 && o->p[i - 1] == '>') {
        int depth = 0;
        while (i > 0) {
            const char c = o->p[--i];
            if (c == '>') depth++;
            else if (c == '<' && --depth == 0) break;
        }
        if (depth) die(at, "unbalanced template arguments before <<<");
        while (i > 0 && isspace((unsigned char)o->p[i - 1])) i--;
    }
    for (;;) {
        while (i > 0 && ident(o->p[i - 1])) i--;
        if (i >= 2 && o->p[i - 1] == ':' && o->p[i - 2] == ':') {
            i -= 2;
            continue;
        }
        break;
    }
    if (i == end || !(isalpha((unsigned char)o->p[i]) || o->p[i] == '_' || o->p[i] == ':'))
        die(at, "cannot find the kernel's name before <<<");
    return i;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: emu_launch IN.cu OUT.cpp\n");
        return 2;
    }
    in_name = argv[1];
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
        perror(argv[1]);
        return 2;
    }
    buf in = {0};
    char chunk[65536];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) put(&in, chunk, got);
    fclose(f);
    src = in.p ? in.p : "";
    len = in.n;

    buf o = {0};
    puts_(&o, "#line 1 \"");
    puts_(&o, argv[1]);
    puts_(&o, "\"\n");
    const size_t header = o.n;
    int depth = 0, launches = 0;
    size_t i = 0;
    while (i < len) {
        const size_t lit = skip_literal(i);
        if (lit != i) {
            put(&o, src + i, lit - i);
            i = lit;
            continue;
        }
        const char c = src[i];
        if (c == '{') depth++;
        if (c == '}') depth--;
        if (c == '<' && i + 2 < len && src[i + 1] == '<' && src[i + 2] == '<') {
            /* the kernel name: already copied, take it back */
            size_t end = o.n;
            while (end > header && isspace((unsigned char)o.p[end - 1])) end--;
            const size_t start = callee_start(&o, end, i);
            char *callee = strndup(o.p + start, end - start), *gap = strndup(o.p + end, o.n - end);
            int callee_lines = 0;
            for (char *q = callee; *q; q++)
                if (*q == '\n' || *q == '\\') callee_lines += *q == '\n', *q = ' ';
            o.n = start;
            /* the configuration, up to >>> outside parentheses */
            size_t j = i + 3;
            int d = 0;
            while (j < len) {
                const size_t l2 = skip_literal(j);
                if (l2 != j) {
                    j = l2;
                    continue;
                }
                if (src[j] == '(' || src[j] == '[' || src[j] == '{') d++;
                else if (src[j] == ')' || src[j] == ']' || src[j] == '}') d--;
                else if (d == 0 && j + 2 < len && !strncmp(src + j, ">>>", 3)) break;
                j++;
            }
            if (j >= len) die(i, "no >>> closes this <<<");
            const size_t cfg0 = i + 3, cfg1 = j;
            size_t k = j + 3;
            while (k < len && (isspace((unsigned char)src[k]) || (src[k] == '\\' && k + 1 < len && src[k + 1] == '\n'))) k++;
            if (k >= len || src[k] != '(') die(j, "expected ( after >>>");
            const size_t ws0 = j + 3, ws1 = k;
            size_t e = k + 1;
            d = 1;
            while (e < len) {
                const size_t l2 = skip_literal(e);
                if (l2 != e) {
                    e = l2;
                    continue;
                }
                if (src[e] == '(') d++;
                else if (src[e] == ')' && --d == 0) break;
                e++;
            }
            if (e >= len) die(k, "unbalanced parentheses in the kernel's arguments");
            puts_(&o, "::emu::launch(::emu::cfg(");
            put(&o, src + cfg0, cfg1 - cfg0);
            puts_(&o, "), \"");
            puts_(&o, callee);
            puts_(&o, "\", __FILE__, __LINE__, [=](auto &...emu_a_) { ");
            puts_(&o, callee);
            puts_(&o, "(emu_a_...); })");
            puts_(&o, gap);
            put(&o, src + ws0, ws1 - ws0);
            puts_(&o, "(");
            put_args(&o, src + k + 1, e - (k + 1));
            puts_(&o, ")");
            for (int n = 0; n < callee_lines; n++) puts_(&o, "\n");
            free(callee);
            free(gap);
            launches++;
            i = e + 1;
            continue;
        }
        if (word_at(i, "extern")) {
            size_t j = i + 6;
            while (j < len && isspace((unsigned char)src[j])) j++;
            if (word_at(j, "__shared__")) {
                const size_t d0 = j + 10;
                const char *semi = memchr(src + d0, ';', len - d0);
                if (!semi) die(i, "no ; ends this extern __shared__ declaration");
                const size_t d1 = (size_t)(semi - src);
                if (depth <= 0)
                    die(i, "extern __shared__ at file scope: declare it inside the kernel for the emulator");
                /* the declaration without __align__(...) / alignas(...) */
                buf decl = {0};
                int lines = 0;
                for (size_t q = d0; q < d1; q++) {
                    if (src[q] == '\n') lines++;
                    if (word_at(q, "__align__") || word_at(q, "alignas")) {
                        while (q < d1 && src[q] != '(') q++;
                        int pd = 0;
                        for (; q < d1; q++) {
                            if (src[q] == '(') pd++;
                            if (src[q] == ')' && --pd == 0) break;
                        }
                        continue;
                    }
                    put(&decl, isspace((unsigned char)src[q]) ? " " : src + q, 1);
                }
                size_t n = decl.n;
                while (n > 0 && isspace((unsigned char)decl.p[n - 1])) n--;
                if (n == 0 || decl.p[n - 1] != ']') die(i, "expected extern __shared__ TYPE NAME[];");
                while (n > 0 && decl.p[n - 1] != '[') n--;
                n = n ? n - 1 : 0;
                while (n > 0 && isspace((unsigned char)decl.p[n - 1])) n--;
                size_t ns = n;
                while (ns > 0 && ident(decl.p[ns - 1])) ns--;
                if (ns == n) die(i, "expected extern __shared__ TYPE NAME[];");
                char *name = strndup(decl.p + ns, n - ns), *type = strndup(decl.p, ns);
                puts_(&o, type);
                puts_(&o, " *const ");
                puts_(&o, name);
                puts_(&o, " = (");
                puts_(&o, type);
                puts_(&o, " *)::emu::dyn_smem();");
                for (int q = 0; q < lines; q++) puts_(&o, "\n");
                free(name);
                free(type);
                free(decl.p);
                i = d1 + 1;
                continue;
            }
        }
        put(&o, src + i, 1);
        i++;
    }
    FILE *out = fopen(argv[2], "wb");
    if (!out || fwrite(o.p, 1, o.n, out) != o.n || fclose(out) != 0) {
        perror(argv[2]);
        return 1;
    }
    (void)launches;
    free(o.p);
    free(in.p);
    return 0;
}
