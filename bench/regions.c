/* regions.c — where one tracker step's time goes, parallel region by region.

   A step that speeds up 5x on 16 threads where its FLOPs would allow 15x
   loses the rest somewhere: in regions that scale badly, in regions run on
   one thread, or between regions (work that never forks).  This program
   times every OpenMP parallel region of a tracker step (inference or
   training) and names the function it belongs to, so that the profile
   behind a thread-scaling figure can be read, not guessed.

   Build (gcc and libgomp only: it wraps GOMP_parallel, the call into which
   gcc compiles every `omp parallel`; -g lets addr2line name the regions):
       gcc -O2 -g -march=native -fopenmp bench/regions.c -o build/regions \
           -Wl,--wrap=GOMP_parallel -ldl -lm         (or: make build/regions)
   Run:
       build/regions [--batch B] [--train] [--pack] [--attn mha|mqa]
                     [--threads N] [--steps S]
       build/regions --layer N [--attn ROW] [--train] [--threads N] [--steps S]
   (--each with either: every region call of a step on its own line, in the
   order the step makes them, e.g. to tell a layer's 15 GEMMs apart;
   --spread with either: three more columns per region, microseconds a
   step: the mean thread's time in the body, the slowest thread's, and how
   long after the fork began its last thread started (the team's wake-up);
   --nodes with --train: a second table, the step's forward and its
   backward op by op, each node's time under its backward function's
   name, which shows where a one-thread step goes, where no GEMM forks)
   The second form times one attention layer of any row (heads 8 x 64, the
   options compare --scaling gives it for long sequences, batch 1) at
   sequence length N, as `compare --scaling` does, forward (+ backward with
   --train): its profile belongs to the scaling chart's point.
   Prints the median-free mean over S steps (after 5 warm-up steps): the
   step's time, then each region (function, team or one thread) with its
   calls and microseconds per step and its share of the step, and the time
   outside every region.  A region run with if(false) is "1 thread"; a GEMM
   that does not fork at all (one thread, or too small) is outside. */
#define _GNU_SOURCE
#define EFFATTN_IMPLEMENTATION
#include "../effattn.h"
#include "../examples/cli.h" /* cli_long_sequence_opts: the options of compare --scaling */

#include <dlfcn.h>
#include <elf.h>
#include <unistd.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Distinct regions kept; with --each every call of a step is one (the
   tracker's training step at batch 32 makes about 170).  Calls past it
   are counted and reported, never folded silently into "outside". */
#define MAX_REGIONS 1024

typedef struct {
    void (*fn)(void *); /* the outlined body gcc made of the region */
    int team;     /* forked a team (1) or ran with if(false) (0) */
    int seq;      /* with --each: its place among the step's regions, else -1 */
    long calls;
    double sec;
    double body_mean, body_max, start_last; /* --spread: sums over calls, seconds */
    double *thread_body;                     /* --spread: each thread's body time (MAX_TEAM), or NULL */
} region;

static region g_reg[MAX_REGIONS];
static int g_nreg, g_on, g_each, g_seq, g_spread;

/* --spread: each thread's start (after the fork began) and the time its
   share of the body took, so that a slow region tells whether its threads
   all ran slow, one did, or some started late (a team's wake-up). */
#define MAX_TEAM 256
typedef struct {
    void (*fn)(void *);
    void *data;
    double t0;
    int n;
    double start[MAX_TEAM], body[MAX_TEAM];
} spread_call;
static spread_call g_call;
static double g_thread_body[MAX_TEAM]; /* --spread: each thread's time in bodies of team regions */
static long g_thread_slowest[MAX_TEAM]; /* how often it was a team's slowest */
static int g_team_max;

static void spread_body(void *p) {
    spread_call *c = (spread_call *)p;
    int t = omp_get_thread_num();
    double s = omp_get_wtime(), e;
    c->fn(c->data);
    e = omp_get_wtime();
    if (t < MAX_TEAM) {
        c->start[t] = s - c->t0;
        c->body[t] = e - s;
    }
    if (t == 0) c->n = omp_get_num_threads() < MAX_TEAM ? omp_get_num_threads() : MAX_TEAM;
}
static long g_dropped;

/* --nodes: the backward's time by node function, and the forward's */
#define MAX_NODE_FNS 64
typedef struct {
    ea_backward_fn fn;
    long calls;
    double sec;
} node_fn;
static node_fn g_nodes[MAX_NODE_FNS];
static int g_nnodes;
static double g_fwd;

void __real_GOMP_parallel(void (*fn)(void *), void *data, unsigned nt, unsigned flags);
void __wrap_GOMP_parallel(void (*fn)(void *), void *data, unsigned nt, unsigned flags);

void __wrap_GOMP_parallel(void (*fn)(void *), void *data, unsigned nt, unsigned flags) {
    double t0 = omp_get_wtime();
    int i, team = nt != 1, seq = g_each ? g_seq++ : -1, spread = g_spread && g_on && !omp_in_parallel();
    if (spread) {
        g_call.fn = fn;
        g_call.data = data;
        g_call.t0 = t0;
        g_call.n = 0;
        __real_GOMP_parallel(spread_body, &g_call, nt, flags);
    } else __real_GOMP_parallel(fn, data, nt, flags);
    if (!g_on) return;
    for (i = 0; i < g_nreg && (g_reg[i].fn != fn || g_reg[i].team != team || g_reg[i].seq != seq); i++) {}
    if (i == g_nreg) {
        if (g_nreg == MAX_REGIONS) {
            g_dropped++;
            return;
        }
        g_reg[g_nreg].fn = fn;
        g_reg[g_nreg].seq = seq;
        g_reg[g_nreg].thread_body = g_spread ? (double *)calloc(MAX_TEAM, sizeof(double)) : NULL;
        g_reg[g_nreg++].team = team;
    }
    g_reg[i].calls++;
    g_reg[i].sec += omp_get_wtime() - t0;
    if (spread && g_call.n > 0) {
        double sum = 0.0, mx = 0.0, last = 0.0;
        int k, slow = 0;
        for (k = 0; k < g_call.n; k++) {
            sum += g_call.body[k];
            if (g_call.body[k] > mx) mx = g_call.body[k], slow = k;
            if (g_call.start[k] > last) last = g_call.start[k];
            if (g_call.n > 1) g_thread_body[k] += g_call.body[k];
            if (g_reg[i].thread_body) g_reg[i].thread_body[k] += g_call.body[k];
        }
        if (g_call.n > 1) {
            g_thread_slowest[slow]++;
            if (g_call.n > g_team_max) g_team_max = g_call.n;
        }
        g_reg[i].body_mean += sum / g_call.n;
        g_reg[i].body_max += mx;
        g_reg[i].start_last += last;
    }
}

/* Whether this executable is position-independent (ELF type ET_DYN): then
   addr2line wants a body's offset from the load address, otherwise (a
   -no-pie build, ET_EXEC) its address as it is. */
static int exe_is_pie(void) {
    Elf64_Ehdr h;
    FILE *f = fopen("/proc/self/exe", "rb");
    int pie = 1; /* Debian's and Ubuntu's gcc default */
    if (f) {
        if (fread(&h, sizeof h, 1, f) == 1) pie = h.e_type == ET_DYN;
        fclose(f);
    }
    return pie;
}

/* The function a region's body came from: addr2line on this executable at
   the body's offset from the load address (PIE) or its address (not PIE);
   "fn._omp_fn.3" loses its suffix.  Without addr2line, the address. */
static void code_name(void *fn, char *out, size_t cap) {
    Dl_info info;
    char cmd[512];
    FILE *p;
    uintptr_t off = (uintptr_t)fn;
    snprintf(out, cap, "%p", fn);
    if (dladdr(fn, &info) && info.dli_fname) {
        char *dot;
        if (info.dli_fbase && strstr(info.dli_fname, ".so") == NULL && exe_is_pie()) off -= (uintptr_t)info.dli_fbase;
        snprintf(cmd, sizeof cmd, "addr2line -f -e /proc/%ld/exe 0x%lx 2>/dev/null", (long)getpid(),
                 (unsigned long)off);
        p = popen(cmd, "r");
        if (!p) return;
        if (fgets(out, (int)cap, p) && out[0] != '?') {
            out[strcspn(out, "\n")] = 0;
            if ((dot = strstr(out, "._omp_fn")) != NULL) *dot = 0;
        } else {
            snprintf(out, cap, "%p", fn);
        }
        pclose(p);
    }
}
static void region_name(void (*body)(void *), char *out, size_t cap) {
    void *fn;
    memcpy(&fn, &body, sizeof fn); /* ISO C has no cast from a function pointer to void * */
    code_name(fn, out, cap);
}

/* ea_backward node by node (ea__backward_node), each node's time added to
   its function's entry. */
static ea_status timed_backward(ea_ctx *ctx, ea_tensor *loss) {
    ea_node *n;
    if (ea__backward_begin(ctx, loss) != EA_OK) return ctx->err.status;
    for (n = ctx->tape; n && ctx->err.status == EA_OK; n = n->prev) {
        double t0 = omp_get_wtime();
        int i;
        ea__backward_node(ctx, n);
        if (!g_on) continue;
        for (i = 0; i < g_nnodes && g_nodes[i].fn != n->backward; i++) {}
        if (i == MAX_NODE_FNS) continue; /* its time falls in "(rest of the step)" */
        if (i == g_nnodes) g_nodes[g_nnodes++].fn = n->backward;
        g_nodes[i].calls++;
        g_nodes[i].sec += omp_get_wtime() - t0;
    }
    return ea__backward_end(ctx);
}

static int node_by_time(const void *a, const void *b) {
    double x = ((const node_fn *)a)->sec, y = ((const node_fn *)b)->sec;
    return (x < y) - (x > y);
}

static void print_nodes(int steps, double total) {
    double named = 0.0;
    int i;
    qsort(g_nodes, (size_t)g_nnodes, sizeof *g_nodes, node_by_time);
    printf("\n  %-28s %10s %10s %7s\n", "forward and backward by op", "calls/step", "us/step", "share");
    printf("  %-28s %10s %10.1f %6.1f%%\n", "forward (and the loss)", "", g_fwd / steps * 1e6, 100.0 * g_fwd / total);
    for (i = 0; i < g_nnodes; i++) {
        char name[256];
        void *fn;
        memcpy(&fn, &g_nodes[i].fn, sizeof fn);
        code_name(fn, name, sizeof name);
        named += g_nodes[i].sec;
        printf("  %-28s %10.1f %10.1f %6.1f%%\n", name, (double)g_nodes[i].calls / steps, g_nodes[i].sec / steps * 1e6,
               100.0 * g_nodes[i].sec / total);
    }
    printf("  %-28s %10s %10.1f %6.1f%%\n", "(rest of the step)", "", (total - g_fwd - named) / steps * 1e6,
           100.0 * (total - g_fwd - named) / total);
}

static int by_time(const void *a, const void *b) {
    double x = ((const region *)a)->sec, y = ((const region *)b)->sec;
    int p = ((const region *)a)->seq, q = ((const region *)b)->seq;
    return p != q ? (p > q) - (p < q) : (x < y) - (x > y); /* --each: in the step's order */
}

static int usage(FILE *f, int rc) {
    fprintf(f, "usage: regions [--batch B] [--train] [--pack] [--attn mha|mqa] [--threads N] [--steps S]\n"
               "       regions --layer N [--attn ROW] [--train] [--threads N] [--steps S]\n"
               "  (either with --each: every region call of a step on its own line, in order;\n"
               "  with --train --nodes: also the forward's time and the backward's op by op;\n"
               "  with --spread: each region's mean and slowest thread's share of its body, and\n"
               "  when its last thread started, microseconds a step)\n"
               "  times each OpenMP parallel region of a tracker step (default: inference, batch 1,\n"
               "  mha, OMP_NUM_THREADS threads, 2000 steps; 200 when training); --pack packs the\n"
               "  weights first (ea_params_pack), as deployed inference runs.  --layer N: one layer of\n"
               "  attention row ROW (heads 8 x 64, batch 1) at sequence length N instead (20 steps)\n");
    return rc;
}

int main(int argc, char **argv) {
    ea_vit m;
    ea_attn layer;
    ea_params lps;
    ea_ctx ctx;
    ea_error err;
    ea_vit_config cfg;
    const char *attn = "mha";
    int B = 1, train = 0, pack = 0, nodes = 0, steps = -1, n = 0, r, i;
    double total = 0.0, inside = 0.0;
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--train") == 0) train = 1;
        else if (strcmp(argv[i], "--each") == 0) g_each = 1;
        else if (strcmp(argv[i], "--spread") == 0) g_spread = 1;
        else if (strcmp(argv[i], "--nodes") == 0) nodes = 1;
        else if (strcmp(argv[i], "--pack") == 0) pack = 1;
        else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc && atoi(argv[i + 1]) > 0) B = atoi(argv[++i]);
        else if (strcmp(argv[i], "--steps") == 0 && i + 1 < argc && atoi(argv[i + 1]) > 0) steps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc && atoi(argv[i + 1]) > 0)
            omp_set_num_threads(atoi(argv[++i]));
        else if (strcmp(argv[i], "--attn") == 0 && i + 1 < argc) attn = argv[++i];
        else if (strcmp(argv[i], "--layer") == 0 && i + 1 < argc && atoi(argv[i + 1]) > 0) n = atoi(argv[++i]);
        else if (strcmp(argv[i], "--help") == 0) return usage(stdout, 0);
        else {
            fprintf(stderr, "regions: unknown or incomplete option '%s'\n", argv[i]);
            return usage(stderr, 2);
        }
    }
    if (steps < 0) steps = n ? 20 : train ? 200 : 2000;
    if (nodes && !train) {
        fprintf(stderr, "regions: --nodes times the backward's ops: it needs --train\n");
        return 2;
    }
    if (train && pack) {
        fprintf(stderr, "regions: --pack is for inference (training updates the weights every step)\n");
        return 2;
    }
    if (n && (pack || B != 1)) {
        fprintf(stderr, "regions: --layer times one layer at batch 1, unpacked\n");
        return 2;
    }
    memset(&lps, 0, sizeof lps);
    if (n) {
        ea_attn_config ac;
        memset(&ac, 0, sizeof ac);
        ac.dim = 512;
        ac.n_heads = 8;
        ac.n_kv_heads = 4; /* gqa: two query heads a K/V head, as compare --scaling */
        cli_long_sequence_opts(attn, &ac.opt, n);
        if (ea_attn_build(&layer, attn, &ac, &lps, "a", &err) != EA_OK || ea_params_alloc(&lps, &err) != EA_OK ||
            ea_ctx_init(&ctx, 0) != EA_OK) {
            fprintf(stderr, "regions: %s\n", err.msg);
            return 1;
        }
        ea_params_init(&lps, 1);
    } else if (ea_tracker_config_default(&cfg, attn), ea_vit_init(&m, &cfg, 1, &err) != EA_OK || ea_ctx_init(&ctx, 0) != EA_OK ||
               (pack && ea_params_pack(&m.params, &err) != EA_OK)) {
        fprintf(stderr, "regions: %s\n", err.msg);
        return 1;
    }
    for (r = -5; r < steps; r++) {
        double t0;
        ea_tensor *x, *y, *pred;
        size_t k;
        g_on = r >= 0;
        g_seq = 0;
        ea_ctx_reset(&ctx);
        ctx.grad_enabled = train;
        ctx.training = train;
        x = n ? ea_tensor_3d(&ctx, 1, n, 512, train) : ea_tensor_4d(&ctx, B, cfg.in_chans, cfg.img_size, cfg.img_size, 0);
        y = n ? ea_tensor_3d(&ctx, 1, n, 512, 0) : ea_tensor_2d(&ctx, B, cfg.out_dim, 0);
        if (!x || !y) break;
        for (k = 0; k < x->size; k++) x->data[k] = (float)((k * 2654435761u) % 7 == 0);
        for (k = 0; k < y->size; k++) y->data[k] = n ? 0.0f : 16.0f;
        t0 = omp_get_wtime(); /* the inputs' fill is not the step's (512K values at n = 1024: ~1 ms) */
        pred = n ? ea_attn_forward(&ctx, &layer, x) : ea_vit_forward(&ctx, &m, x);
        if (pred && train) {
            ea_tensor *loss = ea_mse_loss(&ctx, pred, y);
            if (g_on) g_fwd += omp_get_wtime() - t0;
            ea_params_zero_grad(n ? &lps : &m.params);
            if ((nodes ? timed_backward(&ctx, loss) : ea_backward(&ctx, loss)) != EA_OK) pred = NULL;
        }
        if (!pred) {
            fprintf(stderr, "regions: the step failed: %s\n", ctx.err.msg);
            return 1;
        }
        if (g_on) total += omp_get_wtime() - t0;
    }
    qsort(g_reg, (size_t)g_nreg, sizeof *g_reg, by_time);
    if (n)
        printf("layer %s, heads 8 x 64, n = %d, %s, %d thread%s (%s): %.1f us a step, mean of %d\n", attn, n,
               train ? "forward + backward" : "forward", omp_get_max_threads(), omp_get_max_threads() == 1 ? "" : "s",
               EA_ISA, total / steps * 1e6, steps);
    else
        printf("tracker %s, %s, batch %d%s, %d thread%s (%s): %.1f us a step, mean of %d\n", attn,
               train ? "training step" : "inference", B, pack ? ", weights packed" : "", omp_get_max_threads(),
               omp_get_max_threads() == 1 ? "" : "s", EA_ISA, total / steps * 1e6, steps);
    printf("  %-28s %-8s %10s %10s %7s", "region", "threads", "calls/step", "us/step", "share");
    if (g_spread) printf(" %10s %10s %10s", "body mean", "body max", "last start");
    printf("\n");
    for (i = 0; i < g_nreg; i++) {
        char name[256];
        size_t len;
        region_name(g_reg[i].fn, name, sizeof name);
        len = strlen(name);
        if (g_reg[i].seq >= 0) snprintf(name + len, sizeof name - len, " #%d", g_reg[i].seq);
        inside += g_reg[i].sec;
        printf("  %-28s %-8s %10.1f %10.1f %6.1f%%", name, g_reg[i].team ? "team" : "1 thread",
               (double)g_reg[i].calls / steps, g_reg[i].sec / steps * 1e6, 100.0 * g_reg[i].sec / total);
        if (g_spread)
            printf(" %10.1f %10.1f %10.1f", g_reg[i].body_mean / steps * 1e6, g_reg[i].body_max / steps * 1e6,
                   g_reg[i].start_last / steps * 1e6);
        printf("\n");
    }
    printf("  %-28s %-8s %10s %10.1f %6.1f%%\n", "(outside every region)", "caller", "", (total - inside) / steps * 1e6,
           100.0 * (total - inside) / total);
    if (g_dropped)
        printf("  (%ld region calls past the first %d distinct ones were not recorded: their time is in \"outside\")\n",
               g_dropped, MAX_REGIONS);
    if (g_team_max > 1) {
        int k;
        for (k = 0; k < g_nreg && k < 3; k++) { /* the three costliest regions (the first three with --each) */
            char name[256];
            region_name(g_reg[k].fn, name, sizeof name);
            printf("  each thread in %s's bodies, us a step:\n", name);
            for (i = 0; i < g_team_max && g_reg[k].thread_body; i++)
                printf("    thread %3d %10.1f%s", i, g_reg[k].thread_body[i] / steps * 1e6,
                       i % 6 == 5 || i == g_team_max - 1 ? "\n" : "  ");
        }
        printf("  each thread in the teams' bodies (us a step, and the team calls a step in which it was the "
               "slowest):\n");
        for (i = 0; i < g_team_max; i++)
            printf("    thread %3d %10.1f %8.1f%s", i, g_thread_body[i] / steps * 1e6,
                   (double)g_thread_slowest[i] / steps, i % 4 == 3 || i == g_team_max - 1 ? "\n" : "  ");
    }
    if (nodes) print_nodes(steps, total);
    for (i = 0; i < g_nreg; i++) free(g_reg[i].thread_body);
    ea_ctx_free(&ctx);
    if (n) ea_params_free(&lps);
    else ea_vit_free(&m);
    return 0;
}
