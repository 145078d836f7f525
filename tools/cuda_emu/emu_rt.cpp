// emu_rt.cpp: the CPU emulator's runtime (tools/cuda_emu/README.md): fibers
// and their scheduler (one fiber per CUDA thread, a block at a time per host
// worker), the launch checks, device memory with red zones and pointer
// checks, streams and events (synchronous), device properties and a
// reference cuBLAS.
#include "cuda_emu.h"
#include "include/cublas_v2.h"

#include <stdarg.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

// A captured graph and its instance: the work recorded from a capturing
// stream, in order.
struct CUgraph_st {
    std::vector<std::function<void()>> ops;
};
struct CUgraphExec_st {
    std::vector<std::function<void()>> ops;
};

namespace emu {

thread_local lane_regs *cur_lane;
thread_local block_regs cur_block;

// ---- environment --------------------------------------------------------------

static long env_long(const char *name, long fallback, long lo, long hi)
{
    const char *s = getenv(name);
    if (!s || !*s) return fallback;
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || v < lo || v > hi) {
        fprintf(stderr, "cuda_emu: %s=%s: expected an integer in %ld..%ld\n", name, s, lo, hi);
        exit(2);
    }
    return v;
}

// The order in which the lanes released together run (CUDA_EMU_ORDER): forward
// (thread 0 first, the default) or reverse. A GPU runs them in any order, so a
// kernel whose result depends on it has a race between barriers (a thread
// reading shared memory that another writes before the next barrier); running
// the tests both ways shows most of them.
static bool reverse_order(void)
{
    static const int rev = [] {
        const char *s = getenv("CUDA_EMU_ORDER");
        if (!s || !*s || !strcmp(s, "forward")) return 0;
        if (!strcmp(s, "reverse")) return 1;
        fprintf(stderr, "cuda_emu: CUDA_EMU_ORDER=%s: expected forward or reverse\n", s);
        exit(2);
    }();
    return rev;
}

// ---- fibers ---------------------------------------------------------------------

#if defined(__x86_64__)
// emu_ctx_swap(save, to): saves the callee-saved registers on the current
// stack, stores its pointer in *save, switches to the stack `to` and restores
// what was saved there. The x87 control word and MXCSR are not switched: no
// kernel changes them.
extern "C" void emu_ctx_swap(void **save, void *to);
extern "C" void emu_ctx_entry(void);
asm(R"(
    .text
    .p2align 4
    .globl emu_ctx_swap
    .type emu_ctx_swap,@function
emu_ctx_swap:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size emu_ctx_swap,.-emu_ctx_swap

    .p2align 4
    .globl emu_ctx_entry
    .type emu_ctx_entry,@function
emu_ctx_entry:
    movq %r12, %rdi
    callq *%r13
    ud2
    .size emu_ctx_entry,.-emu_ctx_entry
)");

struct fiber {
    void *sp = nullptr;
};

// A fresh context on [lo, lo + size) that calls fn(arg) when first entered.
static void fiber_init(fiber &f, char *lo, size_t size, void (*fn)(void *), void *arg)
{
    uintptr_t top = ((uintptr_t)lo + size) & ~(uintptr_t)15;
    uint64_t *sp = (uint64_t *)(top - 72); // after the 56 bytes popped: 16-aligned
    memset(sp, 0, 72);
    sp[2] = (uint64_t)(uintptr_t)fn;  // r13
    sp[3] = (uint64_t)(uintptr_t)arg; // r12
    sp[6] = (uint64_t)(uintptr_t)emu_ctx_entry;
    f.sp = sp;
}
static inline void fiber_switch(fiber &from, fiber &to) { emu_ctx_swap(&from.sp, to.sp); }
#else
struct fiber {
    ucontext_t uc;
};
static thread_local void (*start_fn)(void *);
static thread_local void *start_arg;
static void fiber_start(void)
{
    start_fn(start_arg);
    abort();
}
static void fiber_init(fiber &f, char *lo, size_t size, void (*fn)(void *), void *arg)
{
    getcontext(&f.uc);
    f.uc.uc_stack.ss_sp = lo;
    f.uc.uc_stack.ss_size = size;
    f.uc.uc_link = nullptr;
    makecontext(&f.uc, fiber_start, 0);
    start_fn = fn; // every fiber of a worker starts the same function
    start_arg = arg;
}
static inline void fiber_switch(fiber &from, fiber &to) { swapcontext(&from.uc, &to.uc); }
#endif

// ---- blocks -------------------------------------------------------------------

enum lane_state { L_NEW, L_READY, L_BAR, L_WARP, L_DONE };

struct lane {
    lane_regs regs;
    fiber ctx;
    char *stack = nullptr; // from the worker's free stacks when it first runs
    unsigned linear = 0; // = regs.linear
    int state = L_READY;
    const char *file = nullptr; // where it waits
    int line = 0;
    int bar_kind = 0, pred = 0, bar_result = 0;
    int wkind = 0, src = 0;
    unsigned mask = 0;
    uint64_t val = 0, result = 0;
};

struct worker {
    std::vector<lane> lanes;
    // Stacks are taken when a lane first runs and given back when it ends, so
    // a kernel without barriers runs all its lanes on two stacks (hot in the
    // caches); one that blocks holds one per waiting lane.
    std::vector<char *> free_stacks;
    char *pending = nullptr; // the stack of the lane that just ended, still in use until the switch
    size_t stack_bytes = 0;
    fiber main;
    lane *running = nullptr;
    // the lanes to run in this round, in order; a lane that blocks switches
    // straight to the next one (to the scheduler after the last)
    std::vector<lane *> runq;
    size_t rq_pos = 0;
    unsigned nthreads = 0, nwarps = 0, done = 0, nbar = 0;
    std::vector<unsigned> wwait, wdone; // per warp: lanes at a warp operation, lanes exited
    void (*body)(void *) = nullptr;
    void *closure = nullptr;
    const launch_site *site = nullptr;
    std::vector<unsigned char> smem;
    size_t smem_bytes = 0;
    bool in_block = false;
};
static thread_local worker *cur_worker;

static const size_t SMEM_CANARY = 64;
static const unsigned char SMEM_CANARY_BYTE = 0xC7;

[[noreturn]] static void vfail(const char *fmt, va_list ap)
{
    fflush(stdout);
    char msg[2048];
    vsnprintf(msg, sizeof msg, fmt, ap);
    worker *w = cur_worker;
    if (w && w->in_block) {
        const block_regs &b = cur_block;
        fprintf(stderr, "cuda_emu: kernel %s (launched at %s:%d), block (%u,%u,%u) of (%u,%u,%u), block size (%u,%u,%u)",
                w->site->kernel, w->site->file, w->site->line, b.bid.x, b.bid.y, b.bid.z, b.gdim.x, b.gdim.y,
                b.gdim.z, b.bdim.x, b.bdim.y, b.bdim.z);
        if (w->running)
            fprintf(stderr, ", thread (%u,%u,%u)", w->running->regs.tid.x, w->running->regs.tid.y,
                    w->running->regs.tid.z);
        fprintf(stderr, ": %s\n", msg);
    } else {
        fprintf(stderr, "cuda_emu: %s\n", msg);
    }
    fflush(stderr);
    abort();
}

// -fsanitize=bounds (the device code's array indices) reports through
// UBSan: make that an abort like the emulator's own checks, and name the
// kernel, block and thread it happened in.
extern "C" const char *__ubsan_default_options(void) { return "abort_on_error=1:print_stacktrace=1"; }
extern "C" void __sanitizer_set_death_callback(void (*)(void)) __attribute__((weak));
static void on_sanitizer_death(void)
{
    worker *w = cur_worker;
    if (!w || !w->in_block) return;
    const block_regs &b = cur_block;
    fprintf(stderr, "cuda_emu: ^ in kernel %s (launched at %s:%d), block (%u,%u,%u), block size (%u,%u,%u)", w->site->kernel,
            w->site->file, w->site->line, b.bid.x, b.bid.y, b.bid.z, b.bdim.x, b.bdim.y, b.bdim.z);
    if (w->running)
        fprintf(stderr, ", thread (%u,%u,%u)", w->running->regs.tid.x, w->running->regs.tid.y, w->running->regs.tid.z);
    fprintf(stderr, "\n");
}

void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(fmt, ap);
}

static lane &self(const char *what)
{
    worker *w = cur_worker;
    if (!w || !w->running) fail("%s called outside a kernel", what);
    return *w->running;
}

static void lane_main(void *p);
static char *take_stack(worker &w);

// The stack a lane that just ended ran on can be reused once we are off it.
static inline void release_pending(worker *w)
{
    if (w->pending) {
        w->free_stacks.push_back(w->pending);
        w->pending = nullptr;
    }
}

// Makes l the running lane, giving it a stack if it has not run yet.
static inline fiber &enter(worker *w, lane *l)
{
    if (l->state == L_NEW) {
        l->stack = take_stack(*w);
        fiber_init(l->ctx, l->stack, w->stack_bytes, lane_main, l);
        l->state = L_READY;
    }
    w->running = l;
    cur_lane = &l->regs;
    return l->ctx;
}

// On to the next lane of the round (or the scheduler) until this lane is released.
static inline void switch_on(fiber &from)
{
    worker *w = cur_worker;
    if (w->rq_pos < w->runq.size()) {
        lane *next = w->runq[w->rq_pos++];
        fiber_switch(from, enter(w, next));
    } else {
        w->running = nullptr;
        fiber_switch(from, w->main);
    }
    release_pending(cur_worker);
}
static void yield_lane(lane &l) { switch_on(l.ctx); }

int block_barrier(bar_kind kind, int pred, const char *file, int line)
{
    lane &l = self("__syncthreads");
    cur_worker->nbar++;
    l.state = L_BAR;
    l.bar_kind = kind;
    l.pred = pred;
    l.file = file;
    l.line = line;
    yield_lane(l);
    return l.bar_result;
}

unsigned active_mask(void)
{
    // The lanes of this warp that have not exited (the emulator does not
    // model divergence: every live lane counts as active).
    lane &l = self("__activemask");
    worker *w = cur_worker;
    unsigned m = 0, base = l.linear & ~31u;
    for (unsigned j = 0; j < 32 && base + j < w->nthreads; j++)
        if (w->lanes[base + j].state != L_DONE) m |= 1u << j;
    return m;
}

static const char *warp_name(int kind)
{
    switch (kind) {
    case WARP_SHFL: return "__shfl*_sync";
    case WARP_SYNC: return "__syncwarp";
    case WARP_VOTE_ANY: return "__any_sync";
    case WARP_VOTE_ALL: return "__all_sync";
    case WARP_BALLOT: return "__ballot_sync";
    default: return "__match_sync";
    }
}

uint64_t warp_op(warp_kind kind, unsigned mask, uint64_t value, int src, const char *file, int line)
{
    lane &l = self(warp_name(kind));
    const unsigned me = l.linear & 31;
    if (!(mask >> me & 1u))
        fail("%s at %s:%d: the calling lane %u is not in its mask 0x%08x", warp_name(kind), file, line, me, mask);
    cur_worker->wwait[l.linear >> 5] |= 1u << me;
    l.state = L_WARP;
    l.wkind = kind;
    l.mask = mask;
    l.val = value;
    l.src = src;
    l.file = file;
    l.line = line;
    yield_lane(l);
    return l.result;
}

void *dyn_smem(void)
{
    worker *w = cur_worker;
    if (!w || !w->in_block) fail("dynamic shared memory used outside a kernel");
    if (!w->smem_bytes)
        fail("the kernel uses extern __shared__ memory but was launched with 0 bytes of it");
    return w->smem.data();
}

static void lane_main(void *p)
{
    lane *l = (lane *)p;
    worker *w = cur_worker;
    release_pending(w);
    w->body(w->closure);
    l->state = L_DONE;
    w->done++;
    w->wdone[l->linear >> 5] |= 1u << (l->linear & 31);
    w->pending = l->stack;
    l->stack = nullptr;
    switch_on(l->ctx);
    abort(); // a finished lane is never resumed
}

static size_t stack_size(void)
{
    static const size_t bytes = (size_t)env_long("CUDA_EMU_STACK_KB", 256, 16, 65536) * 1024;
    return bytes;
}

static char *take_stack(worker &w)
{
    if (!w.free_stacks.empty()) {
        char *s = w.free_stacks.back();
        w.free_stacks.pop_back();
        return s;
    }
    // a guard page below each stack: an overflow faults instead of corrupting
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    char *m = (char *)mmap(nullptr, w.stack_bytes + page, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) fail("cannot map %zu bytes for a thread's stack", w.stack_bytes + page);
    mprotect(m, page, PROT_NONE);
    return m + page;
}

static void ensure_lanes(worker &w, unsigned n)
{
    if (w.lanes.size() < n) w.lanes.resize(n);
    w.stack_bytes = stack_size();
}

static void describe_waits(worker &w, char *buf, size_t len)
{
    unsigned nbar = 0, nwarp = 0, ndone = 0;
    const lane *first_bar = nullptr, *first_warp = nullptr, *first_done = nullptr;
    for (unsigned i = 0; i < w.nthreads; i++) {
        const lane &l = w.lanes[i];
        if (l.state == L_BAR) nbar++, first_bar = first_bar ? first_bar : &l;
        if (l.state == L_WARP) nwarp++, first_warp = first_warp ? first_warp : &l;
        if (l.state == L_DONE) ndone++, first_done = first_done ? first_done : &l;
    }
    size_t o = 0;
    o += snprintf(buf + o, len - o, "%u threads wait at __syncthreads", nbar);
    if (first_bar && o < len) o += snprintf(buf + o, len - o, " (first: thread %u at %s:%d)", first_bar->linear, first_bar->file, first_bar->line);
    if (o < len) o += snprintf(buf + o, len - o, ", %u at warp operations", nwarp);
    if (first_warp && o < len)
        o += snprintf(buf + o, len - o, " (first: thread %u at %s %s:%d, mask 0x%08x)", first_warp->linear,
                      warp_name(first_warp->wkind), first_warp->file, first_warp->line, first_warp->mask);
    if (o < len) o += snprintf(buf + o, len - o, ", %u have exited", ndone);
    if (first_done && o < len) snprintf(buf + o, len - o, " (first: thread %u)", first_done->linear);
}

// Releases the warp groups and the block barrier whose members have all
// arrived; false when nothing could be released (a deadlock).
static bool resolve(worker &w)
{
    bool released = false;
    for (unsigned wp = 0; wp < w.nwarps; wp++) {
        unsigned waiting = w.wwait[wp];
        if (!waiting) continue;
        const unsigned base = wp * 32, n = std::min(32u, w.nthreads - base);
        const unsigned exist = n == 32 ? 0xffffffffu : (1u << n) - 1, done = w.wdone[wp];
        for (unsigned j = 0; j < n && waiting; j++) {
            if (!(waiting >> j & 1u)) continue;
            lane &l = w.lanes[base + j];
            const unsigned m = l.mask;
            w.running = &l;
            if (m & ~exist)
                fail("%s at %s:%d: mask 0x%08x names lanes this warp does not have (%u threads in it: the block has %u)",
                     warp_name(l.wkind), l.file, l.line, m, n, w.nthreads);
            if (m & done) {
                const unsigned gone = __builtin_ctz(m & done);
                fail("%s at %s:%d: mask 0x%08x names lane %u, which has exited (CUDA leaves this undefined)",
                     warp_name(l.wkind), l.file, l.line, m, gone);
            }
            w.running = nullptr;
            if ((m & waiting) != m) continue; // others still at another operation
            bool same = true;
            for (unsigned k = 0; k < n; k++)
                if (m >> k & 1u) {
                    const lane &o = w.lanes[base + k];
                    if (o.mask != m || o.wkind != l.wkind) same = false;
                }
            if (!same) continue;
            uint64_t vote = 0;
            bool any = false, all = true;
            for (unsigned k = 0; k < n; k++)
                if (m >> k & 1u) {
                    const lane &o = w.lanes[base + k];
                    if (o.val) vote |= 1ull << k, any = true;
                    else all = false;
                }
            for (unsigned k = 0; k < n; k++) {
                if (!(m >> k & 1u)) continue;
                lane &o = w.lanes[base + k];
                switch (o.wkind) {
                case WARP_SHFL:
                    if (o.src < 0 || o.src >= 32 || !(m >> o.src & 1u)) {
                        w.running = &o;
                        fail("__shfl*_sync at %s:%d: lane %u reads lane %d, which is not in the mask 0x%08x "
                             "(CUDA leaves the result undefined)", o.file, o.line, k, o.src, m);
                    }
                    o.result = w.lanes[base + o.src].val;
                    break;
                case WARP_BALLOT: o.result = vote; break;
                case WARP_VOTE_ANY: o.result = any; break;
                case WARP_VOTE_ALL: o.result = all; break;
                default: o.result = 0; break;
                }
                o.state = L_READY;
                w.runq.push_back(&o);
            }
            waiting &= ~m;
            w.wwait[wp] &= ~m;
            released = true;
        }
    }
    if (released) return true;
    const unsigned nbar = w.nbar, ndone = w.done;
    if (!nbar || nbar + ndone != w.nthreads) return false;
    const lane *first = nullptr;
    for (unsigned i = 0; i < w.nthreads && !first; i++)
        if (w.lanes[i].state == L_BAR) first = &w.lanes[i];
    if (ndone) {
        char d[512];
        describe_waits(w, d, sizeof d);
        fail("__syncthreads at %s:%d is not reached by every thread of the block: %s (CUDA leaves this "
             "undefined: it may hang or skip the barrier)", first->file, first->line, d);
    }
    int count = 0;
    for (unsigned i = 0; i < w.nthreads; i++) {
        const lane &l = w.lanes[i];
        if (l.file != first->file || l.line != first->line || l.bar_kind != first->bar_kind)
            fail("threads of one block wait at different barriers: thread %u at %s:%d, thread %u at %s:%d",
                 first->linear, first->file, first->line, l.linear, l.file, l.line);
        count += l.pred;
    }
    for (unsigned i = 0; i < w.nthreads; i++) {
        lane &l = w.lanes[i];
        switch (l.bar_kind) {
        case BAR_COUNT: l.bar_result = count; break;
        case BAR_AND: l.bar_result = count == (int)w.nthreads; break;
        case BAR_OR: l.bar_result = count > 0; break;
        default: l.bar_result = 0;
        }
        l.state = L_READY;
        w.runq.push_back(&l);
    }
    w.nbar = 0;
    return true;
}

static void run_block(worker &w, dim3 bid)
{
    cur_block.bid = bid;
    const dim3 bd = cur_block.bdim;
    for (unsigned i = 0; i < w.nthreads; i++) {
        lane &l = w.lanes[i];
        l.linear = l.regs.linear = i;
        l.regs.tid = dim3(i % bd.x, i / bd.x % bd.y, i / (bd.x * bd.y));
        l.state = L_NEW;
        l.stack = nullptr;
    }
    if (w.smem_bytes) {
        // arbitrary contents at the start (NaN as floats), a canary after
        memset(w.smem.data(), 0xFF, w.smem_bytes);
        memset(w.smem.data() + w.smem_bytes, SMEM_CANARY_BYTE, SMEM_CANARY);
    }
    w.done = w.nbar = 0;
    w.wwait.assign(w.nwarps, 0);
    w.wdone.assign(w.nwarps, 0);
    w.runq.clear();
    for (unsigned i = 0; i < w.nthreads; i++) w.runq.push_back(&w.lanes[i]);
    if (reverse_order()) std::reverse(w.runq.begin(), w.runq.end());
    for (;;) {
        w.rq_pos = 1;
        fiber_switch(w.main, enter(&w, w.runq[0])); // back when the round's last lane blocks or ends
        release_pending(&w);
        w.running = nullptr;
        if (w.done == w.nthreads) break;
        w.runq.clear();
        if (!resolve(w) || w.runq.empty()) {
            char d[512];
            describe_waits(w, d, sizeof d);
            fail("deadlock: %s", d);
        }
        if (reverse_order()) std::reverse(w.runq.begin(), w.runq.end());
    }
    if (w.smem_bytes)
        for (size_t i = 0; i < SMEM_CANARY; i++)
            if (w.smem[w.smem_bytes + i] != SMEM_CANARY_BYTE)
                fail("wrote past the end of its %zu bytes of dynamic shared memory (byte %zu after it)", w.smem_bytes, i);
    cur_lane = nullptr;
}

// ---- the grid: a pool of host workers taking blocks in turn -----------------

struct grid_job {
    const cfg *c = nullptr;
    const launch_site *site = nullptr;
    void (*body)(void *) = nullptr;
    void *closure = nullptr;
    unsigned long long nblocks = 0;
    std::atomic<unsigned long long> next{0};
};

static void run_blocks(grid_job &job)
{
    static thread_local worker w;
    worker *saved = cur_worker;
    cur_worker = &w;
    const cfg &c = *job.c;
    w.nthreads = c.block.x * c.block.y * c.block.z;
    w.nwarps = (w.nthreads + 31) / 32;
    w.body = job.body;
    w.closure = job.closure;
    w.site = job.site;
    w.smem_bytes = c.smem;
    if (w.smem.size() < c.smem + SMEM_CANARY) w.smem.resize(c.smem + SMEM_CANARY);
    ensure_lanes(w, w.nthreads);
    cur_block.bdim = c.block;
    cur_block.gdim = c.grid;
    w.in_block = true;
    const unsigned long long gx = c.grid.x, gxy = gx * c.grid.y;
    for (;;) {
        const unsigned long long b = job.next.fetch_add(1, std::memory_order_relaxed);
        if (b >= job.nblocks) break;
        run_block(w, dim3((unsigned)(b % gx), (unsigned)(b / gx % c.grid.y), (unsigned)(b / gxy)));
    }
    w.in_block = false;
    cur_worker = saved;
}

struct pool {
    std::mutex m;
    std::condition_variable wake, idle;
    unsigned threads = 0; // detached: they wait for work until the process exits
    grid_job *job = nullptr;
    unsigned long long generation = 0;
    unsigned finished = 0; // workers done with the current generation
};
static pool &the_pool = *new pool; // never destroyed: its threads wait on it at exit
static unsigned n_workers(void)
{
    static const unsigned n = [] {
        unsigned hw = std::thread::hardware_concurrency();
        hw = hw ? std::min(hw, 8u) : 1;
        return (unsigned)env_long("CUDA_EMU_WORKERS", hw, 1, 256);
    }();
    return n;
}

static void pool_thread(unsigned long long seen)
{
    for (;;) {
        grid_job *job;
        {
            std::unique_lock<std::mutex> lk(the_pool.m);
            the_pool.wake.wait(lk, [&] { return the_pool.generation != seen; });
            seen = the_pool.generation;
            job = the_pool.job;
        }
        run_blocks(*job);
        {
            std::lock_guard<std::mutex> lk(the_pool.m);
            if (++the_pool.finished == the_pool.threads) the_pool.idle.notify_all();
        }
    }
}

// The kernel running now and since when, for the watchdog.
static std::mutex watch_m;
static const launch_site *watch_site;
static std::chrono::steady_clock::time_point watch_since;
static unsigned long long watch_launch;

static void watchdog(long limit_s)
{
    unsigned long long seen = ~0ull;
    for (;;) {
        std::this_thread::sleep_for(std::chrono::seconds(1));
        std::lock_guard<std::mutex> lk(watch_m);
        if (!watch_site) continue;
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - watch_since).count();
        if (s > limit_s && seen != watch_launch) {
            seen = watch_launch;
            fprintf(stderr, "cuda_emu: kernel %s (launched at %s:%d) still runs after %ld s: an endless loop, or a wait for "
                            "another block (blocks run one after another here)? CUDA_EMU_TIMEOUT sets the limit\n",
                    watch_site->kernel, watch_site->file, watch_site->line, limit_s);
            abort();
        }
    }
}

static void watch(const launch_site *site)
{
    static const long limit = env_long("CUDA_EMU_TIMEOUT", 600, 0, 1000000);
    static std::once_flag started;
    if (!limit) return;
    std::call_once(started, [] { std::thread(watchdog, limit).detach(); });
    std::lock_guard<std::mutex> lk(watch_m);
    watch_site = site;
    if (site) {
        watch_since = std::chrono::steady_clock::now();
        watch_launch++;
    }
}

static cudaError_t last_error = cudaSuccess;
static size_t max_dyn_smem = 48 * 1024; // raised by cudaFuncSetAttribute
// The opt-in limit of shared memory per block: an H100's 227 KiB, or
// CUDA_EMU_SMEM_OPTIN bytes (to play a smaller device: an A100 has 163 KiB,
// an sm_86 card 99 KiB).
static size_t smem_optin(void)
{
    static const size_t bytes = (size_t)env_long("CUDA_EMU_SMEM_OPTIN", 227 * 1024, 48 * 1024, 227 * 1024);
    return bytes;
}
static void check_stream(cudaStream_t s, const char *what);
static void check_redzones(const char *after);

bool launch_config_ok(const cfg &c, const launch_site &site)
{
    check_stream(c.stream, site.kernel);
    const dim3 g = c.grid, b = c.block;
    const unsigned long long threads = (unsigned long long)b.x * b.y * b.z;
    if (!g.x || !g.y || !g.z || !b.x || !b.y || !b.z || b.x > 1024 || b.y > 1024 || b.z > 64 || threads > 1024 ||
        g.x > 2147483647u || g.y > 65535 || g.z > 65535) {
        if (getenv("CUDA_EMU_VERBOSE"))
            fprintf(stderr, "cuda_emu: %s at %s:%d: invalid configuration grid (%u,%u,%u) block (%u,%u,%u)\n",
                    site.kernel, site.file, site.line, g.x, g.y, g.z, b.x, b.y, b.z);
        last_error = cudaErrorInvalidConfiguration;
        return false;
    }
    if (c.smem > max_dyn_smem) {
        if (getenv("CUDA_EMU_VERBOSE"))
            fprintf(stderr, "cuda_emu: %s at %s:%d: %zu bytes of dynamic shared memory (limit %zu)\n", site.kernel,
                    site.file, site.line, c.smem, max_dyn_smem);
        last_error = cudaErrorInvalidValue;
        return false;
    }
    return true;
}

void run_grid(const cfg &c, const launch_site &site, void (*body)(void *), void *closure)
{
    if (cur_worker && cur_worker->in_block)
        fail("kernel %s launched from device code (dynamic parallelism is not emulated)", site.kernel);
    if (!launch_config_ok(c, site)) return;
    static std::once_flag hooked;
    std::call_once(hooked, [] {
        if (__sanitizer_set_death_callback) __sanitizer_set_death_callback(on_sanitizer_death);
    });
    grid_job job;
    job.c = &c;
    job.site = &site;
    job.body = body;
    job.closure = closure;
    job.nblocks = (unsigned long long)c.grid.x * c.grid.y * c.grid.z;
    watch(&site);
    const unsigned nw = n_workers();
    if (nw > 1 && job.nblocks > 1) {
        std::unique_lock<std::mutex> lk(the_pool.m);
        for (; the_pool.threads < nw - 1; the_pool.threads++) std::thread(pool_thread, the_pool.generation).detach();
        the_pool.job = &job;
        the_pool.finished = 0;
        the_pool.generation++;
        lk.unlock();
        the_pool.wake.notify_all();
        run_blocks(job);
        lk.lock();
        // every worker takes part in every generation (or finds no block
        // left): the job lives on this stack until all are done with it
        the_pool.idle.wait(lk, [] { return the_pool.finished == the_pool.threads; });
    } else {
        run_blocks(job);
    }
    watch(nullptr);
    check_redzones(site.kernel);
}

// ---- device memory ---------------------------------------------------------------

static const size_t RED = 256; // red zone on each side, and cudaMalloc's alignment
static const unsigned char RED_BYTE = 0xCB;

struct allocation {
    size_t bytes;
    unsigned char *raw;
};
static std::mutex mem_m;
static std::map<uintptr_t, allocation> allocs; // by first byte
static size_t allocated;

static size_t device_capacity(void)
{
    static const size_t cap = [] {
        const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
        size_t phys = pages > 0 && page > 0 ? (size_t)pages * (size_t)page : (size_t)8 << 30;
        size_t def = std::min(phys / 2, (size_t)80 << 30);
        return (size_t)env_long("CUDA_EMU_MEMORY_MB", (long)(def >> 20), 1, 1L << 30) << 20;
    }();
    return cap;
}

// The allocation holding [p, p + bytes), or null. Caller holds mem_m.
static const allocation *find_alloc(const void *p, size_t bytes, uintptr_t *base)
{
    const uintptr_t a = (uintptr_t)p;
    auto it = allocs.upper_bound(a);
    if (it == allocs.begin()) return nullptr;
    --it;
    if (a < it->first || a - it->first > it->second.bytes || bytes > it->second.bytes - (a - it->first)) return nullptr;
    if (base) *base = it->first;
    return &it->second;
}

static bool is_device(const void *p)
{
    std::lock_guard<std::mutex> lk(mem_m);
    return find_alloc(p, 0, nullptr) != nullptr;
}

// Fails unless [p, p + bytes) lies inside one device allocation.
static void require_device(const void *p, size_t bytes, const char *what)
{
    std::lock_guard<std::mutex> lk(mem_m);
    if (find_alloc(p, bytes, nullptr)) return;
    uintptr_t base;
    const allocation *a = find_alloc(p, 0, &base);
    if (a)
        fail("%s: %zu bytes from %p run past the end of its device allocation (%zu bytes at 0x%lx; %zu bytes past it)",
             what, bytes, p, a->bytes, (unsigned long)base, (size_t)((uintptr_t)p + bytes - base - a->bytes));
    fail("%s: %p is not device memory (a host pointer, or memory already freed)", what, p);
}

void check_kernel_pointer(const launch_site &site, int index, const void *p)
{
    if (!p || is_device(p)) return;
    fail("kernel %s launched at %s:%d: argument %d (%p) is not device memory (a host pointer, or memory already freed)",
         site.kernel, site.file, site.line, index + 1, p);
}

static void check_redzones(const char *after)
{
    std::lock_guard<std::mutex> lk(mem_m);
    for (auto &kv : allocs) {
        const allocation &a = kv.second;
        const unsigned char *lo = a.raw, *hi = a.raw + RED + a.bytes;
        const size_t tail = RED + ((RED - a.bytes % RED) % RED);
        for (size_t i = 0; i < RED; i++)
            if (lo[i] != RED_BYTE)
                fail("%s wrote %zu bytes before the device allocation of %zu bytes at 0x%lx", after, RED - i, a.bytes,
                     (unsigned long)kv.first);
        for (size_t i = 0; i < tail; i++)
            if (hi[i] != RED_BYTE)
                fail("%s wrote %zu bytes past the end of the device allocation of %zu bytes at 0x%lx", after, i + 1,
                     a.bytes, (unsigned long)kv.first);
    }
}

static void copy_checked(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, const char *what)
{
    if (!bytes) return;
    char w[96];
    switch (kind) {
    case cudaMemcpyHostToDevice:
        snprintf(w, sizeof w, "%s (host to device) destination", what);
        require_device(dst, bytes, w);
        if (is_device(src)) fail("%s (host to device): the source %p is device memory", what, src);
        break;
    case cudaMemcpyDeviceToHost:
        snprintf(w, sizeof w, "%s (device to host) source", what);
        require_device(src, bytes, w);
        if (is_device(dst)) fail("%s (device to host): the destination %p is device memory", what, dst);
        break;
    case cudaMemcpyDeviceToDevice:
        snprintf(w, sizeof w, "%s (device to device) source", what);
        require_device(src, bytes, w);
        snprintf(w, sizeof w, "%s (device to device) destination", what);
        require_device(dst, bytes, w);
        break;
    case cudaMemcpyHostToHost:
        if (is_device(src) || is_device(dst)) fail("%s (host to host) given device memory", what);
        break;
    case cudaMemcpyDefault: break;
    default: fail("%s: memcpy kind %d is not a cudaMemcpyKind", what, (int)kind);
    }
    memmove(dst, src, bytes);
    check_redzones(what);
}

// ---- streams and events -------------------------------------------------------------

// A capturing stream records its work in `recorded` instead of running it;
// a call that would wait for the device (or allocate) while a capture is
// active invalidates the capture, as on a GPU.
struct CUstream_st_ {
    unsigned flags;
    cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
    cudaStreamCaptureMode mode = cudaStreamCaptureModeGlobal;
    std::thread::id owner; // the thread that began the capture
    std::vector<std::function<void()>> recorded;
};
static std::set<cudaStream_t> streams;
static std::set<cudaGraph_t> graphs;
static std::set<cudaGraphExec_t> graph_execs;
struct event_rec {
    bool recorded;
    std::chrono::steady_clock::time_point t;
};
static std::map<cudaEvent_t, event_rec> events;

static void check_stream(cudaStream_t s, const char *what)
{
    if (s == 0 || s == cudaStreamLegacy || s == cudaStreamPerThread) return;
    std::lock_guard<std::mutex> lk(mem_m);
    if (!streams.count(s)) fail("%s: stream %p was not created by cudaStreamCreate (or is destroyed)", what, (void *)s);
}

static CUstream_st_ *capture_state(cudaStream_t s)
{
    if (s == 0 || s == cudaStreamLegacy || s == cudaStreamPerThread) return nullptr;
    std::lock_guard<std::mutex> lk(mem_m);
    return streams.count(s) ? (CUstream_st_ *)s : nullptr;
}

bool capturing(cudaStream_t s)
{
    const CUstream_st_ *st = capture_state(s);
    return st && st->capture != cudaStreamCaptureStatusNone;
}

bool capture_op(cudaStream_t s, std::function<void()> op)
{
    CUstream_st_ *st = capture_state(s);
    if (!st || st->capture == cudaStreamCaptureStatusNone) return false;
    if (st->capture == cudaStreamCaptureStatusActive) st->recorded.push_back(std::move(op));
    return true;
}

// A call that is not allowed while a capture in global or thread-local
// mode is active (in this thread, for thread-local): invalidates those
// captures; true when the call must then fail with
// cudaErrorStreamCaptureUnsupported. `only` limits it to one stream
// (synchronising a capturing stream), NULL: every capture.
static bool unsafe_during_capture(cudaStream_t only)
{
    std::lock_guard<std::mutex> lk(mem_m);
    bool hit = false;
    for (cudaStream_t s : streams) {
        CUstream_st_ *st = (CUstream_st_ *)s;
        if (st->capture != cudaStreamCaptureStatusActive || (only && s != only)) continue;
        if (!only && (st->mode == cudaStreamCaptureModeRelaxed ||
                      (st->mode == cudaStreamCaptureModeThreadLocal && st->owner != std::this_thread::get_id())))
            continue;
        st->capture = cudaStreamCaptureStatusInvalidated;
        st->recorded.clear();
        hit = true;
    }
    if (hit) last_error = cudaErrorStreamCaptureUnsupported;
    return hit;
}

} // namespace emu

using namespace emu;

// ---- runtime API ------------------------------------------------------------------

const char *cudaGetErrorName(cudaError_t e)
{
    switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInitializationError: return "cudaErrorInitializationError";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevicePointer: return "cudaErrorInvalidDevicePointer";
    case cudaErrorInvalidMemcpyDirection: return "cudaErrorInvalidMemcpyDirection";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    case cudaErrorLaunchOutOfResources: return "cudaErrorLaunchOutOfResources";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorIllegalState: return "cudaErrorIllegalState";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
    case cudaErrorStreamCaptureUnmatched: return "cudaErrorStreamCaptureUnmatched";
    case cudaErrorStreamCaptureImplicit: return "cudaErrorStreamCaptureImplicit";
    case cudaErrorStreamCaptureWrongThread: return "cudaErrorStreamCaptureWrongThread";
    }
    return "unknown CUDA error";
}

const char *cudaGetErrorString(cudaError_t e)
{
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInitializationError: return "initialization error";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevicePointer: return "invalid device pointer";
    case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorNotReady: return "device not ready";
    case cudaErrorLaunchOutOfResources: return "too many resources requested for launch";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected (CUDA_EMU_NO_DEVICE is set)";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorIllegalState: return "the operation cannot be performed in the present state";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
    case cudaErrorStreamCaptureUnmatched: return "capture was not initiated in this stream";
    case cudaErrorStreamCaptureImplicit:
        return "operation would make the legacy stream depend on a capturing blocking stream";
    case cudaErrorStreamCaptureWrongThread:
        return "attempt to terminate a thread-local capture sequence from another thread";
    }
    return "unknown error";
}

cudaError_t cudaGetLastError(void)
{
    cudaError_t e = last_error;
    last_error = cudaSuccess;
    return e;
}
cudaError_t cudaPeekAtLastError(void) { return last_error; }

static bool no_device(void) { return getenv("CUDA_EMU_NO_DEVICE") && strcmp(getenv("CUDA_EMU_NO_DEVICE"), "0"); }

cudaError_t cudaGetDeviceCount(int *n)
{
    if (no_device()) {
        *n = 0;
        return cudaErrorNoDevice;
    }
    *n = 1;
    return cudaSuccess;
}
cudaError_t cudaSetDevice(int d) { return no_device() ? cudaErrorNoDevice : d == 0 ? cudaSuccess : cudaErrorInvalidDevice; }
cudaError_t cudaGetDevice(int *d)
{
    *d = 0;
    return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int d)
{
    if (no_device()) return cudaErrorNoDevice;
    if (d != 0) return cudaErrorInvalidDevice;
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "CUDA emulator on the CPU (tools/cuda_emu, emulated sm_90)");
    p->totalGlobalMem = device_capacity();
    p->sharedMemPerBlock = 48 * 1024;
    p->sharedMemPerBlockOptin = smem_optin();
    p->sharedMemPerMultiprocessor = 228 * 1024;
    p->regsPerBlock = 65536;
    p->warpSize = 32;
    p->maxThreadsPerBlock = 1024;
    p->maxThreadsDim[0] = 1024, p->maxThreadsDim[1] = 1024, p->maxThreadsDim[2] = 64;
    p->maxGridSize[0] = 2147483647, p->maxGridSize[1] = 65535, p->maxGridSize[2] = 65535;
    p->major = 9;
    p->minor = 0;
    p->multiProcessorCount = 132;
    p->maxThreadsPerMultiProcessor = 2048;
    p->totalConstMem = 65536;
    p->concurrentKernels = 0;
    return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int *v, cudaDeviceAttr a, int d)
{
    cudaDeviceProp p;
    cudaError_t e = cudaGetDeviceProperties(&p, d);
    if (e != cudaSuccess) return e;
    switch (a) {
    case cudaDevAttrMaxThreadsPerBlock: *v = p.maxThreadsPerBlock; break;
    case cudaDevAttrMaxSharedMemoryPerBlock: *v = (int)p.sharedMemPerBlock; break;
    case cudaDevAttrWarpSize: *v = 32; break;
    case cudaDevAttrMultiProcessorCount: *v = p.multiProcessorCount; break;
    case cudaDevAttrComputeCapabilityMajor: *v = p.major; break;
    case cudaDevAttrComputeCapabilityMinor: *v = p.minor; break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *v = (int)p.sharedMemPerBlockOptin; break;
    default: return cudaErrorInvalidValue;
    }
    return cudaSuccess;
}

cudaError_t cudaDriverGetVersion(int *v)
{
    *v = CUDART_VERSION;
    return cudaSuccess;
}
cudaError_t cudaRuntimeGetVersion(int *v)
{
    *v = CUDART_VERSION;
    return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize(void)
{
    return unsafe_during_capture(nullptr) ? cudaErrorStreamCaptureUnsupported : cudaSuccess;
}
cudaError_t cudaDeviceReset(void) { return cudaSuccess; }

cudaError_t cudaMalloc(void **p, size_t bytes)
{
    *p = nullptr;
    if (unsafe_during_capture(nullptr)) return cudaErrorStreamCaptureUnsupported;
    const size_t body = (bytes + RED - 1) / RED * RED;
    {
        std::lock_guard<std::mutex> lk(mem_m);
        if (bytes > device_capacity() || allocated + body > device_capacity()) {
            last_error = cudaErrorMemoryAllocation;
            return cudaErrorMemoryAllocation;
        }
    }
    unsigned char *raw = (unsigned char *)aligned_alloc(RED, body + 2 * RED);
    if (!raw) {
        last_error = cudaErrorMemoryAllocation;
        return cudaErrorMemoryAllocation;
    }
    memset(raw, RED_BYTE, RED);
    memset(raw + RED, 0xFF, bytes); // arbitrary contents (NaN as floats): cudaMalloc does not clear
    memset(raw + RED + bytes, RED_BYTE, body - bytes + RED);
    std::lock_guard<std::mutex> lk(mem_m);
    allocs[(uintptr_t)(raw + RED)] = allocation{bytes, raw};
    allocated += body;
    *p = raw + RED;
    return cudaSuccess;
}

cudaError_t cudaFree(void *p)
{
    if (unsafe_during_capture(nullptr)) return cudaErrorStreamCaptureUnsupported;
    if (!p) return cudaSuccess;
    check_redzones("cudaFree");
    std::lock_guard<std::mutex> lk(mem_m);
    auto it = allocs.find((uintptr_t)p);
    if (it == allocs.end()) {
        uintptr_t base;
        const allocation *a = find_alloc(p, 0, &base);
        if (a) fail("cudaFree(%p): inside the allocation at 0x%lx, not its start", p, (unsigned long)base);
        fail("cudaFree(%p): not memory from cudaMalloc (or freed twice)", p);
    }
    allocated -= (it->second.bytes + RED - 1) / RED * RED;
    memset(it->second.raw, 0xEE, it->second.bytes + 2 * RED); // use after free reads garbage
    free(it->second.raw);
    allocs.erase(it);
    return cudaSuccess;
}

cudaError_t cudaMallocHost(void **p, size_t bytes)
{
    *p = malloc(bytes ? bytes : 1);
    return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}
cudaError_t cudaFreeHost(void *p)
{
    free(p);
    return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes)
{
    std::lock_guard<std::mutex> lk(mem_m);
    *total_bytes = device_capacity();
    *free_bytes = device_capacity() - allocated;
    return cudaSuccess;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind)
{
    if (unsafe_during_capture(nullptr)) return cudaErrorStreamCaptureUnsupported;
    copy_checked(dst, src, bytes, kind, "cudaMemcpy");
    return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s)
{
    check_stream(s, "cudaMemcpyAsync");
    // captured: copied (and checked) at each replay, from the same addresses
    if (capture_op(s, [=] { copy_checked(dst, src, bytes, kind, "cudaMemcpyAsync (graph replay)"); }))
        return cudaSuccess;
    copy_checked(dst, src, bytes, kind, "cudaMemcpyAsync");
    return cudaSuccess;
}
cudaError_t cudaMemcpy2DAsync(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind kind, cudaStream_t s)
{
    check_stream(s, "cudaMemcpy2DAsync");
    if (width > dpitch || width > spitch) return cudaErrorInvalidValue;
    if (capture_op(s, [=] { cudaMemcpy2DAsync(dst, dpitch, src, spitch, width, height, kind, nullptr); }))
        return cudaSuccess;
    for (size_t r = 0; r < height; r++)
        copy_checked((char *)dst + r * dpitch, (const char *)src + r * spitch, width, kind, "cudaMemcpy2DAsync");
    return cudaSuccess;
}
cudaError_t cudaMemset(void *p, int value, size_t bytes)
{
    if (unsafe_during_capture(nullptr)) return cudaErrorStreamCaptureUnsupported;
    if (!bytes) return cudaSuccess;
    require_device(p, bytes, "cudaMemset");
    memset(p, value, bytes);
    return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void *p, int value, size_t bytes, cudaStream_t s)
{
    check_stream(s, "cudaMemsetAsync");
    if (!bytes) return cudaSuccess;
    if (capture_op(s, [=] {
            require_device(p, bytes, "cudaMemsetAsync (graph replay)");
            memset(p, value, bytes);
        }))
        return cudaSuccess;
    require_device(p, bytes, "cudaMemsetAsync");
    memset(p, value, bytes);
    return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags)
{
    CUstream_st_ *st = new CUstream_st_{flags};
    std::lock_guard<std::mutex> lk(mem_m);
    *s = (cudaStream_t)st;
    streams.insert(*s);
    return cudaSuccess;
}
cudaError_t cudaStreamCreate(cudaStream_t *s) { return cudaStreamCreateWithFlags(s, cudaStreamDefault); }
cudaError_t cudaStreamDestroy(cudaStream_t s)
{
    std::lock_guard<std::mutex> lk(mem_m);
    if (!streams.erase(s)) return cudaErrorInvalidResourceHandle;
    delete (CUstream_st_ *)s;
    return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t s)
{
    check_stream(s, "cudaStreamSynchronize");
    if (capturing(s)) {
        unsafe_during_capture(s);
        return cudaErrorStreamCaptureUnsupported;
    }
    return cudaSuccess;
}
cudaError_t cudaStreamQuery(cudaStream_t s)
{
    check_stream(s, "cudaStreamQuery");
    return cudaSuccess;
}
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t, unsigned)
{
    check_stream(s, "cudaStreamWaitEvent");
    return cudaSuccess;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned)
{
    std::lock_guard<std::mutex> lk(mem_m);
    *e = (cudaEvent_t) new char;
    events[*e] = event_rec{false, {}};
    return cudaSuccess;
}
cudaError_t cudaEventCreate(cudaEvent_t *e) { return cudaEventCreateWithFlags(e, 0); }
cudaError_t cudaEventDestroy(cudaEvent_t e)
{
    std::lock_guard<std::mutex> lk(mem_m);
    if (!events.erase(e)) return cudaErrorInvalidResourceHandle;
    delete (char *)e;
    return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s)
{
    check_stream(s, "cudaEventRecord");
    {
        std::lock_guard<std::mutex> lk(mem_m);
        if (!events.count(e)) return cudaErrorInvalidResourceHandle;
    }
    if (capture_op(s, [=] { cudaEventRecord(e, nullptr); })) return cudaSuccess;
    std::lock_guard<std::mutex> lk(mem_m);
    auto it = events.find(e);
    if (it == events.end()) return cudaErrorInvalidResourceHandle;
    it->second = event_rec{true, std::chrono::steady_clock::now()};
    return cudaSuccess;
}

cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode)
{
    check_stream(s, "cudaStreamBeginCapture");
    CUstream_st_ *st = capture_state(s);
    if (!st) return cudaErrorStreamCaptureUnsupported; // the legacy stream cannot capture
    if (st->capture != cudaStreamCaptureStatusNone) return cudaErrorIllegalState;
    st->capture = cudaStreamCaptureStatusActive;
    st->mode = mode;
    st->owner = std::this_thread::get_id();
    st->recorded.clear();
    return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *graph)
{
    check_stream(s, "cudaStreamEndCapture");
    CUstream_st_ *st = capture_state(s);
    *graph = nullptr;
    if (!st || st->capture == cudaStreamCaptureStatusNone) return cudaErrorIllegalState;
    if (st->mode == cudaStreamCaptureModeThreadLocal && st->owner != std::this_thread::get_id())
        return cudaErrorStreamCaptureWrongThread;
    const bool invalidated = st->capture == cudaStreamCaptureStatusInvalidated;
    st->capture = cudaStreamCaptureStatusNone;
    if (invalidated) {
        st->recorded.clear();
        return cudaErrorStreamCaptureInvalidated;
    }
    CUgraph_st *g = new CUgraph_st{std::move(st->recorded)};
    st->recorded.clear();
    std::lock_guard<std::mutex> lk(mem_m);
    graphs.insert(g);
    *graph = g;
    return cudaSuccess;
}
cudaError_t cudaStreamIsCapturing(cudaStream_t s, cudaStreamCaptureStatus *status)
{
    check_stream(s, "cudaStreamIsCapturing");
    const CUstream_st_ *st = capture_state(s);
    *status = st ? st->capture : cudaStreamCaptureStatusNone;
    return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph, unsigned long long)
{
    std::lock_guard<std::mutex> lk(mem_m);
    if (!graphs.count(graph))
        fail("cudaGraphInstantiate: graph %p was not made by cudaStreamEndCapture (or is destroyed)", (void *)graph);
    *exec = new CUgraphExec_st{graph->ops};
    graph_execs.insert(*exec);
    return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t s)
{
    check_stream(s, "cudaGraphLaunch");
    {
        std::lock_guard<std::mutex> lk(mem_m);
        if (!graph_execs.count(exec))
            fail("cudaGraphLaunch: %p is not an instantiated graph (cudaGraphInstantiate), or it was destroyed",
                 (void *)exec);
    }
    if (capturing(s)) return cudaErrorStreamCaptureUnsupported; // graphs in graphs are not emulated
    for (const std::function<void()> &op : exec->ops) op();
    return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec)
{
    std::lock_guard<std::mutex> lk(mem_m);
    if (!graph_execs.erase(exec))
        fail("cudaGraphExecDestroy(%p): not an instantiated graph, or destroyed twice", (void *)exec);
    delete exec;
    return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t graph)
{
    std::lock_guard<std::mutex> lk(mem_m);
    if (!graphs.erase(graph)) fail("cudaGraphDestroy(%p): not a captured graph, or destroyed twice", (void *)graph);
    delete graph;
    return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t e)
{
    std::lock_guard<std::mutex> lk(mem_m);
    return events.count(e) ? cudaSuccess : cudaErrorInvalidResourceHandle;
}
cudaError_t cudaEventQuery(cudaEvent_t e) { return cudaEventSynchronize(e); }
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b)
{
    std::lock_guard<std::mutex> lk(mem_m);
    auto ia = events.find(a), ib = events.find(b);
    if (ia == events.end() || ib == events.end()) return cudaErrorInvalidResourceHandle;
    if (!ia->second.recorded || !ib->second.recorded) return cudaErrorInvalidValue;
    *ms = std::chrono::duration<float, std::milli>(ib->second.t - ia->second.t).count();
    return cudaSuccess;
}

// Refused during a capture, like an allocation: perhaps stricter than a GPU,
// but statebench's kernels are to set their attributes in the eager warm-up
// (sb_cuda_allow_smem), never in the captured step.
cudaError_t cudaFuncSetAttributeImpl(const void *, cudaFuncAttribute a, int value)
{
    if (unsafe_during_capture(nullptr)) return cudaErrorStreamCaptureUnsupported;
    if (a == cudaFuncAttributeMaxDynamicSharedMemorySize) {
        if (value < 0 || (size_t)value > smem_optin()) return cudaErrorInvalidValue;
        // per function on a GPU; the emulator keeps the largest asked for
        max_dyn_smem = std::max(max_dyn_smem, (size_t)value);
    }
    return cudaSuccess;
}

// ---- cuBLAS -----------------------------------------------------------------------

struct cublasContext {
    cudaStream_t stream;
    cublasMath_t math;
    cublasPointerMode_t pointer_mode;
};
static std::set<cublasHandle_t> handles;

const char *cublasGetStatusString(cublasStatus_t s)
{
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    default: return "CUBLAS_STATUS_<other>";
    }
}

cublasStatus_t cublasCreate(cublasHandle_t *h)
{
    if (no_device()) return CUBLAS_STATUS_NOT_INITIALIZED;
    *h = new cublasContext{0, CUBLAS_DEFAULT_MATH, CUBLAS_POINTER_MODE_HOST};
    std::lock_guard<std::mutex> lk(mem_m);
    handles.insert(*h);
    return CUBLAS_STATUS_SUCCESS;
}
static bool live(cublasHandle_t h)
{
    std::lock_guard<std::mutex> lk(mem_m);
    return handles.count(h) != 0;
}
cublasStatus_t cublasDestroy(cublasHandle_t h)
{
    {
        std::lock_guard<std::mutex> lk(mem_m);
        if (!handles.erase(h)) return CUBLAS_STATUS_NOT_INITIALIZED;
    }
    delete h;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s)
{
    if (!live(h)) return CUBLAS_STATUS_NOT_INITIALIZED;
    check_stream(s, "cublasSetStream");
    h->stream = s;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasGetStream(cublasHandle_t h, cudaStream_t *s)
{
    if (!live(h)) return CUBLAS_STATUS_NOT_INITIALIZED;
    *s = h->stream;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetPointerMode(cublasHandle_t h, cublasPointerMode_t m)
{
    if (!live(h)) return CUBLAS_STATUS_NOT_INITIALIZED;
    h->pointer_mode = m;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t m)
{
    if (!live(h)) return CUBLAS_STATUS_NOT_INITIALIZED;
    h->math = m;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasGetMathMode(cublasHandle_t h, cublasMath_t *m)
{
    if (!live(h)) return CUBLAS_STATUS_NOT_INITIALIZED;
    *m = h->math;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetWorkspace(cublasHandle_t h, void *, size_t)
{
    return live(h) ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_NOT_INITIALIZED;
}

// TF32: the 10-bit mantissa tensor cores read (round to nearest, ties away).
static inline float tf32(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & 0xffffe000u;
    memcpy(&x, &u, 4);
    return x;
}

static float scalar(cublasHandle_t h, const float *p, const char *what)
{
    if (h->pointer_mode == CUBLAS_POINTER_MODE_DEVICE) require_device(p, sizeof *p, what);
    else if (is_device(p)) fail("%s: a device pointer for a scalar in CUBLAS_POINTER_MODE_HOST", what);
    return *p;
}

// Elements a column-major (rows, cols) matrix with leading dimension ld spans.
static size_t span(int rows, int cols, int ld) { return rows && cols ? (size_t)(cols - 1) * ld + rows : 0; }

static thread_local std::vector<double> opa, opb;

// Element i of a gemm operand: float, or bf16 (esz 2: a float's top half).
static inline float operand(const void *p, size_t i, size_t esz)
{
    if (esz == sizeof(float)) return ((const float *)p)[i];
    const uint32_t u = (uint32_t)((const uint16_t *)p)[i] << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

// C = alpha op(A) op(B) + beta C (column-major; C is not read when beta = 0);
// A and B hold elements of esz bytes (operand).
static void gemm_ref(const cublasContext *h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, float alpha,
                     const void *A, int lda, const void *B, int ldb, size_t esz, float beta, float *C, int ldc)
{
    const bool t32 = h->math == CUBLAS_TF32_TENSOR_OP_MATH;
    opa.resize((size_t)m * k);
    opb.resize((size_t)n * k);
    for (int i = 0; i < m; i++)
        for (int l = 0; l < k; l++) {
            float a = operand(A, ta == CUBLAS_OP_N ? i + (size_t)l * lda : l + (size_t)i * lda, esz);
            opa[(size_t)i * k + l] = t32 ? tf32(a) : a;
        }
    for (int j = 0; j < n; j++)
        for (int l = 0; l < k; l++) {
            float b = operand(B, tb == CUBLAS_OP_N ? l + (size_t)j * ldb : j + (size_t)l * ldb, esz);
            opb[(size_t)j * k + l] = t32 ? tf32(b) : b;
        }
    for (int j = 0; j < n; j++) {
        const double *bj = &opb[(size_t)j * k];
        for (int i = 0; i < m; i++) {
            const double *ai = &opa[(size_t)i * k];
            double s = 0;
            for (int l = 0; l < k; l++) s += ai[l] * bj[l];
            float *c = C + i + (size_t)j * ldc;
            *c = (float)((double)alpha * s + (beta == 0 ? 0.0 : (double)beta * *c));
        }
    }
}

static cublasStatus_t gemm_checked(const char *what, cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb,
                                   int m, int n, int k, const float *alpha, const void *A, int lda, const void *B,
                                   int ldb, const float *beta, float *C, int ldc, int batch,
                                   const float *const *Ap, const float *const *Bp, float *const *Cp, long long sa,
                                   long long sb, long long sc, size_t esz = sizeof(float))
{
    if (!live(h)) return CUBLAS_STATUS_NOT_INITIALIZED;
    if ((ta != CUBLAS_OP_N && ta != CUBLAS_OP_T) || (tb != CUBLAS_OP_N && tb != CUBLAS_OP_T) || m < 0 || n < 0 ||
        k < 0 || batch < 0 || lda < std::max(1, ta == CUBLAS_OP_N ? m : k) ||
        ldb < std::max(1, tb == CUBLAS_OP_N ? k : n) || ldc < std::max(1, m))
        return CUBLAS_STATUS_INVALID_VALUE;
    check_stream(h->stream, what);
    if (!m || !n || !batch) return CUBLAS_STATUS_SUCCESS;
    const float al = scalar(h, alpha, what), be = scalar(h, beta, what);
    const size_t ea = ta == CUBLAS_OP_N ? span(m, k, lda) : span(k, m, lda);
    const size_t eb = tb == CUBLAS_OP_N ? span(k, n, ldb) : span(n, k, ldb);
    const size_t ec = span(m, n, ldc);
    // captured: alpha, beta (host pointer mode) and the math mode as they are
    // now, the matrices (and pointer arrays) read at each replay, as on a GPU
    const cublasContext now = *h;
    auto exec = [=] {
        char w[160];
        for (int b = 0; b < batch; b++) {
            const void *a = Ap ? (const void *)Ap[b] : (const unsigned char *)A + b * sa * (long long)esz;
            const void *bb = Bp ? (const void *)Bp[b] : (const unsigned char *)B + b * sb * (long long)esz;
            float *c = Cp ? Cp[b] : C + b * sc;
            if (k) {
                snprintf(w, sizeof w, "%s: matrix A of batch %d (%zu elements)", what, b, ea);
                require_device(a, ea * esz, w);
                snprintf(w, sizeof w, "%s: matrix B of batch %d (%zu elements)", what, b, eb);
                require_device(bb, eb * esz, w);
            }
            snprintf(w, sizeof w, "%s: matrix C of batch %d (%zu elements)", what, b, ec);
            require_device(c, ec * sizeof(float), w);
            gemm_ref(&now, ta, tb, m, n, k, al, a, lda, bb, ldb, esz, be, c, ldc);
        }
        check_redzones(what);
    };
    if (!capture_op(h->stream, exec)) exec();
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                           const float *alpha, const float *A, int lda, const float *B, int ldb, const float *beta,
                           float *C, int ldc)
{
    return gemm_checked("cublasSgemm", h, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc, 1, nullptr, nullptr,
                        nullptr, 0, 0, 0);
}

cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                         int k, const float *alpha, const float *A, int lda, long long sa,
                                         const float *B, int ldb, long long sb, const float *beta, float *C, int ldc,
                                         long long sc, int batch)
{
    return gemm_checked("cublasSgemmStridedBatched", h, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc, batch,
                        nullptr, nullptr, nullptr, sa, sb, sc);
}

cublasStatus_t cublasSgemmBatched(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                  const float *alpha, const float *const A[], int lda, const float *const B[], int ldb,
                                  const float *beta, float *const C[], int ldc, int batch)
{
    // the pointer arrays themselves live in device memory
    if (batch > 0) {
        require_device(A, (size_t)batch * sizeof *A, "cublasSgemmBatched: the array of A pointers");
        require_device(B, (size_t)batch * sizeof *B, "cublasSgemmBatched: the array of B pointers");
        require_device(C, (size_t)batch * sizeof *C, "cublasSgemmBatched: the array of C pointers");
    }
    return gemm_checked("cublasSgemmBatched", h, ta, tb, m, n, k, alpha, nullptr, lda, nullptr, ldb, beta, nullptr,
                        ldc, batch, A, B, C, 0, 0, 0);
}

// The types GemmEx emulates: A and B both CUDA_R_32F or both CUDA_R_16BF
// (esz: their element size), C CUDA_R_32F, CUBLAS_COMPUTE_32F; 0 else.
static size_t gemm_ex_esz(cudaDataType_t at, cudaDataType_t bt, cudaDataType_t ct, cublasComputeType_t compute)
{
    if (at != bt || ct != CUDA_R_32F || compute != CUBLAS_COMPUTE_32F) return 0;
    return at == CUDA_R_32F ? 4 : at == CUDA_R_16BF ? 2 : 0;
}

cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                            const void *alpha, const void *A, cudaDataType_t Atype, int lda, const void *B,
                            cudaDataType_t Btype, int ldb, const void *beta, void *C, cudaDataType_t Ctype, int ldc,
                            cublasComputeType_t compute, cublasGemmAlgo_t)
{
    const size_t esz = gemm_ex_esz(Atype, Btype, Ctype, compute);
    if (!esz) return CUBLAS_STATUS_NOT_SUPPORTED;
    return gemm_checked("cublasGemmEx", h, ta, tb, m, n, k, (const float *)alpha, A, lda, B, ldb,
                        (const float *)beta, (float *)C, ldc, 1, nullptr, nullptr, nullptr, 0, 0, 0, esz);
}

cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                          int k, const void *alpha, const void *A, cudaDataType_t Atype, int lda,
                                          long long sa, const void *B, cudaDataType_t Btype, int ldb, long long sb,
                                          const void *beta, void *C, cudaDataType_t Ctype, int ldc, long long sc,
                                          int batch, cublasComputeType_t compute, cublasGemmAlgo_t)
{
    const size_t esz = gemm_ex_esz(Atype, Btype, Ctype, compute);
    if (!esz) return CUBLAS_STATUS_NOT_SUPPORTED;
    return gemm_checked("cublasGemmStridedBatchedEx", h, ta, tb, m, n, k, (const float *)alpha, A, lda, B, ldb,
                        (const float *)beta, (float *)C, ldc, batch, nullptr, nullptr, nullptr, sa, sb, sc, esz);
}

cublasStatus_t cublasSgemv(cublasHandle_t h, cublasOperation_t ta, int m, int n, const float *alpha, const float *A,
                           int lda, const float *x, int incx, const float *beta, float *y, int incy)
{
    if (!live(h)) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (capturing(h->stream)) return CUBLAS_STATUS_NOT_SUPPORTED; // not emulated in a capture
    if (m < 0 || n < 0 || lda < std::max(1, m) || !incx || !incy) return CUBLAS_STATUS_INVALID_VALUE;
    if (!m || !n) return CUBLAS_STATUS_SUCCESS;
    if (incx < 0 || incy < 0) return CUBLAS_STATUS_NOT_SUPPORTED; // not emulated
    const float al = scalar(h, alpha, "cublasSgemv"), be = scalar(h, beta, "cublasSgemv");
    const int lx = ta == CUBLAS_OP_N ? n : m, ly = ta == CUBLAS_OP_N ? m : n;
    require_device(A, span(m, n, lda) * sizeof(float), "cublasSgemv: matrix A");
    require_device(x, ((size_t)(lx - 1) * incx + 1) * sizeof(float), "cublasSgemv: vector x");
    require_device(y, ((size_t)(ly - 1) * incy + 1) * sizeof(float), "cublasSgemv: vector y");
    const bool t32 = h->math == CUBLAS_TF32_TENSOR_OP_MATH;
    for (int i = 0; i < ly; i++) {
        double s = 0;
        for (int l = 0; l < lx; l++) {
            float a = ta == CUBLAS_OP_N ? A[i + (size_t)l * lda] : A[l + (size_t)i * lda], xv = x[(size_t)l * incx];
            s += (double)(t32 ? tf32(a) : a) * (t32 ? tf32(xv) : xv);
        }
        float *yi = y + (size_t)i * incy;
        *yi = (float)((double)al * s + (be == 0 ? 0.0 : (double)be * *yi));
    }
    check_redzones("cublasSgemv");
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSaxpy(cublasHandle_t h, int n, const float *alpha, const float *x, int incx, float *y, int incy)
{
    if (!live(h)) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (capturing(h->stream)) return CUBLAS_STATUS_NOT_SUPPORTED; // not emulated in a capture
    if (n <= 0) return CUBLAS_STATUS_SUCCESS;
    if (incx <= 0 || incy <= 0) return CUBLAS_STATUS_NOT_SUPPORTED;
    const float al = scalar(h, alpha, "cublasSaxpy");
    require_device(x, ((size_t)(n - 1) * incx + 1) * sizeof(float), "cublasSaxpy: vector x");
    require_device(y, ((size_t)(n - 1) * incy + 1) * sizeof(float), "cublasSaxpy: vector y");
    for (int i = 0; i < n; i++) y[(size_t)i * incy] += al * x[(size_t)i * incx];
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSscal(cublasHandle_t h, int n, const float *alpha, float *x, int incx)
{
    if (!live(h)) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (capturing(h->stream)) return CUBLAS_STATUS_NOT_SUPPORTED; // not emulated in a capture
    if (n <= 0) return CUBLAS_STATUS_SUCCESS;
    if (incx <= 0) return CUBLAS_STATUS_NOT_SUPPORTED;
    const float al = scalar(h, alpha, "cublasSscal");
    require_device(x, ((size_t)(n - 1) * incx + 1) * sizeof(float), "cublasSscal: vector x");
    for (int i = 0; i < n; i++) x[(size_t)i * incx] *= al;
    return CUBLAS_STATUS_SUCCESS;
}
