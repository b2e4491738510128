/* bench.c — effattn's benchmarks.  Speed lives here, never in tests.

   Build:  cc -O2 -march=native -fopenmp bench/bench.c -o build/bench -lm
   Run:    build/bench                  all groups, a table for humans
           build/bench --peak           one core's FP32 FMA peak (GFLOP/s); with
                                        --threads N, also N threads' at once,
                                        memory bandwidth on 1 and N threads and
                                        the cost of a parallel region
           build/bench --gemm           ea_gemm at the tracker's shapes and a long
                                        sequence's projection
           build/bench --tracker        tracker: latency at batch 1, throughput at
                                        batch 32, a training step at batch 32
           build/bench --classify       the classifiers (seed 002's ViT, seed 001's
                                        CNN and MLP hosts) at Fashion-MNIST's size:
                                        batch 1, batch 32, a training step at 128
           build/bench --attn           attention forward and forward+backward
                                        against sequence length
           build/bench --rows           every attention row (one layer, heads 8 x
                                        dim 64) against sequence length
           build/bench --row NAME       one row (and mha, the exact reference)
           build/bench --decode         per-token decode latency and cache bytes per
                                        token, mha mqa gqa mla h2o, cache 1k .. 64k
           build/bench --moe            MoE feed-forward against the dense MLP at
                                        equal active parameters
           --max-n N (default 4096; the full sweep is 16384)
           --max-len N (decode: longest cache, default 65536)
           --threads N, --json (one JSON object per line)
   Every time is the median of repeated runs after a warm-up. */
#define _POSIX_C_SOURCE 200809L
#define EFFATTN_IMPLEMENTATION
#include "../effattn.h"
#include "../examples/cli.h"

/* Which compiler built this: the same header ran 3-4x slower from clang
   than from gcc until clang's unrolling was asked for in its own words
   (EA_UNROLL), so every run says. */
#define STR_(x) #x
#define STR(x) STR_(x)
#if defined(__clang__)
#define COMPILER "clang " STR(__clang_major__) "." STR(__clang_minor__) "." STR(__clang_patchlevel__)
#elif defined(__GNUC__)
#define COMPILER "gcc " __VERSION__
#else
#define COMPILER "an unnamed compiler"
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int g_json = 0;
static float g_images[512 * 3 * 32 * 32]; /* a classifier's training batch */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The fastest run: on a shared machine, the least disturbed one (used for
   the rows' scaling, where a slow outlier at one n would distort a ratio). */
static double best(const double *t, int n) {
    double m = t[0];
    int i;
    for (i = 1; i < n; i++) m = t[i] < m ? t[i] : m;
    return m;
}

static double median(double *t, int n) {
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

/* --- one core's FMA peak: 12 independent accumulator chains hide the FMA
   latency; 2 FLOPs per lane per FMA. */
static double peak_gflops_n(long iters) {
    ea_vf acc[12], x = ea_vset1(1.0000001f), y = ea_vset1(0.9999999f);
    long it;
    int i, r;
    double best = 0.0;
    float sink = 0.0f;
    for (r = 0; r < 5; r++) {
        double t0;
        for (i = 0; i < 12; i++) acc[i] = ea_vset1((float)i);
        t0 = ea_time_sec();
        for (it = 0; it < iters; it++) {
            EA_UNROLL for (i = 0; i < 12; i++) acc[i] = ea_vfma(acc[i], x, y);
        }
        t0 = ea_time_sec() - t0;
        for (i = 0; i < 12; i++) {
            float tmp[EA_VW];
            ea_vstore(tmp, acc[i]);
            sink += tmp[0];
        }
        if (2.0 * EA_VW * 12.0 * iters / t0 / 1e9 > best) best = 2.0 * EA_VW * 12.0 * iters / t0 / 1e9;
    }
    if (sink == 1234.5f) printf("%g\n", (double)sink); /* keep the loop alive */
    return best;
}
static double peak_gflops(void) { return peak_gflops_n(20000000); }

/* The same loop on every thread at once: what the cores deliver together.
   Where two hardware threads share a core's FMA units (SMT), N threads
   give about N/2 times one core, and a speed-up from 1 to N threads is
   bounded by this ratio, not by N. */
static void peak_all_threads(double one) {
#ifdef _OPENMP
    int n = omp_get_max_threads(), r, i, slow = 0;
    double best = 0.0, lo = 0.0, hi = 0.0, *each = (double *)calloc((size_t)n, sizeof(double));
    if (!each) return;
    for (r = 0; r < 3; r++) {
        double sum = 0.0;
#pragma omp parallel reduction(+ : sum)
        {
            double g = peak_gflops_n(5000000);
            if (omp_get_thread_num() < n && g > each[omp_get_thread_num()]) each[omp_get_thread_num()] = g;
            sum += g;
        }
        if (sum > best) best = sum;
    }
    /* each thread's best of the three: a thread far below the others
       shares its core (SMT, or a host's two virtual CPUs on one core) */
    for (i = 0; i < n; i++) {
        lo = i == 0 || each[i] < lo ? each[i] : lo;
        hi = each[i] > hi ? each[i] : hi;
    }
    for (i = 0; i < n; i++) slow += each[i] < 0.6 * hi;
    if (g_json) printf("{\"group\":\"peak\",\"isa\":\"%s\",\"threads\":%d,\"gflops_all\":%.2f}\n", EA_ISA, n, best);
    else
        printf("all %d threads at once: %.1f GFLOP/s, %.2fx one core; each thread %.0f-%.0f (%d under 60%% of the "
               "fastest)\n", n, best, best / one, lo, hi, slow);
    free(each);
#else
    (void)one;
#endif
}

/* Memory: a[i] = b[i] + 0.5·c[i] over three arrays of 64 MiB (past any
   cache here), on 1 thread and on all.  Each pass allocates its own arrays
   and touches them first with the threads that then stream them, so on a
   machine of several memory nodes each thread reads its own node's memory.
   GB/s counts 16 bytes an element: b and c read, a written, and a read
   first too (a store to a line not in cache fetches it: write-allocate).
   That holds for the ordinary stores gcc -O2 emits for this loop; a build
   that emitted streaming (non-temporal) stores would skip the fetch, and
   the figure would read 4/3 too high.
   AdamW and the elementwise steps of training stream memory this way.  And what one parallel
   region with its closing barrier costs, empty: every op that forks pays
   it, and the tracker's forward forks for each of its ~100 ops. */
static void bench_memory(void) {
#ifdef _OPENMP
    const long n = 16L << 20;
    int nt = omp_get_max_threads(), pass, th, r;
    double gbs[2] = {0.0, 0.0}, fork_us = 1e30;
    volatile int sink = 0;
    for (pass = 0; pass < 2; pass++) {
        int use = pass ? nt : 1;
        long i;
        float *a = (float *)malloc((size_t)n * 4), *b = (float *)malloc((size_t)n * 4), *c = (float *)malloc((size_t)n * 4);
        if (!a || !b || !c) {
            free(a); free(b); free(c);
            return;
        }
#pragma omp parallel for schedule(static) num_threads(use)
        for (i = 0; i < n; i++) { a[i] = 0.0f; b[i] = (float)(i & 7); c[i] = 1.0f; }
        for (r = 0; r < 5; r++) {
            double t0 = ea_time_sec();
#pragma omp parallel for schedule(static) num_threads(use)
            for (i = 0; i < n; i++) a[i] = b[i] + 0.5f * c[i];
            t0 = ea_time_sec() - t0;
            if (16.0 * n / t0 / 1e9 > gbs[pass]) gbs[pass] = 16.0 * n / t0 / 1e9;
        }
        sink += a[n - 1] == 3.5f;
        free(a); free(b); free(c);
    }
    for (r = 0; r < 5; r++) {
        double t0 = ea_time_sec();
        for (th = 0; th < 1000; th++) {
#pragma omp parallel
            { if (sink == -1) sink = 0; }
        }
        t0 = (ea_time_sec() - t0) / 1000.0 * 1e6;
        if (t0 < fork_us) fork_us = t0;
    }
    if (g_json)
        printf("{\"group\":\"memory\",\"threads\":%d,\"gbs_1\":%.2f,\"gbs_all\":%.2f,\"fork_us\":%.3f}\n", nt, gbs[0],
               gbs[1], fork_us);
    else
        printf("memory a = b + s·c (64 MiB arrays): 1 thread %.1f GB/s, %d threads %.1f GB/s (%.2fx); "
               "an empty parallel region on %d threads: %.2f us\n",
               gbs[0], nt, gbs[1], gbs[1] / gbs[0], nt, fork_us);
#endif
}

/* C[M,N] = A[M,K]·B[K,N] with B row-major, ldb floats a row: the form of a
   weight gradient dW = dYᵀ·X (dYᵀ a transposed copy, X read in place).  At
   the widths of a 512-wide layer X's rows lie 2 or 4 KiB apart, which the
   GEMM packs instead of reading in place where the block's rows repay the
   copy (ea__gemm_direct); 1040 is the same product with rows that do not
   alias, for comparison. */
static void bench_gemm_rowmajor(double peak) {
    static const int shapes[][4] = {{512, 1024, 1024, 1024}, {1024, 512, 1024, 512}, {64, 1024, 1024, 1024},
                                    {512, 1024, 1024, 1040}};
    size_t s;
    if (!g_json) printf("GEMM A·B, B row-major (dW)          M      N      K    ldb       ms  GFLOP/s  %% of 1-core peak\n");
    for (s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2], ldb = shapes[s][3], r;
        /* on cache lines, as the arena's tensors are (B is read in place only so) */
        float *mem = (float *)malloc(((size_t)M * K + (size_t)K * ldb + (size_t)M * N + 48) * 4);
        float *A, *B, *C;
        double t[5], f = 2.0 * M * N * K, b;
        size_t i;
        if (mem) {
            A = mem + (64 - (uintptr_t)mem % 64) % 64 / 4;
            B = A + ((size_t)M * K + 15) / 16 * 16;
            C = B + ((size_t)K * ldb + 15) / 16 * 16;
            for (i = 0; i < (size_t)M * K; i++) A[i] = (float)(i % 7) * 0.1f;
            for (i = 0; i < (size_t)K * ldb; i++) B[i] = (float)(i % 5) * 0.1f;
            for (r = -1; r < 5; r++) {
                double t0 = ea_time_sec();
                ea_gemm(M, N, K, A, K, 1, B, ldb, 1, C, N, 0);
                if (r >= 0) t[r] = ea_time_sec() - t0;
            }
            b = best(t, 5);
            if (g_json)
                printf("{\"group\":\"gemm_rowmajor\",\"M\":%d,\"N\":%d,\"K\":%d,\"ldb\":%d,\"ms\":%.4f,\"gflops\":%.2f,"
                       "\"threads\":%d}\n", M, N, K, ldb, b * 1e3, f / b / 1e9, ea_num_threads());
            else
                printf("                                %6d %6d %6d %6d %8.3f %8.1f %6.1f%%\n", M, N, K, ldb, b * 1e3,
                       f / b / 1e9, 100.0 * f / b / 1e9 / peak);
        }
        free(mem);
    }
}

/* --- GEMM alone, at the tracker's shapes and at a long sequence's ---------
   C[M,N] = A[M,K]·B[N,K]ᵀ (x·Wᵀ, as ea_linear calls it); fastest of 5. */
static void bench_gemm(double peak) {
    static const int shapes[][3] = {{2048, 192, 64}, {2048, 256, 64}, {2048, 64, 256}, {4096, 1536, 512},
                                    {16384, 1536, 512}};
    size_t s;
    if (!g_json) printf("\nGEMM x·Wᵀ (%s, %d thread%s)      M      N      K       ms  GFLOP/s  %% of 1-core peak\n", EA_ISA,
                        ea_num_threads(), ea_num_threads() == 1 ? "" : "s");
    for (s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2], r;
        float *A = (float *)malloc((size_t)M * K * 4), *B = (float *)malloc((size_t)N * K * 4);
        float *C = (float *)malloc((size_t)M * N * 4);
        double t[5], f = 2.0 * M * N * K, b;
        size_t i;
        if (!A || !B || !C) return;
        for (i = 0; i < (size_t)M * K; i++) A[i] = (float)(i % 7) * 0.1f;
        for (i = 0; i < (size_t)N * K; i++) B[i] = (float)(i % 5) * 0.1f;
        for (r = -1; r < 5; r++) {
            double t0 = ea_time_sec();
            ea_gemm(M, N, K, A, K, 1, B, 1, K, C, N, 0);
            if (r >= 0) t[r] = ea_time_sec() - t0;
        }
        b = best(t, 5);
        if (g_json)
            printf("{\"group\":\"gemm\",\"M\":%d,\"N\":%d,\"K\":%d,\"ms\":%.4f,\"gflops\":%.2f,\"threads\":%d}\n", M, N, K,
                   b * 1e3, f / b / 1e9, ea_num_threads());
        else
            printf("                                %6d %6d %6d %8.3f %8.1f %6.1f%%\n", M, N, K, b * 1e3, f / b / 1e9,
                   100.0 * f / b / 1e9 / peak);
        free(A); free(B); free(C);
    }
    bench_gemm_rowmajor(peak);
}

/* --- the tracker ----------------------------------------------------------- */
/* Median time of a forward (or a training step: forward, backward, AdamW)
   at batch B; the tracker regresses (MSE), a classifier classifies (label-
   smoothed cross-entropy, the model in training mode, its gradient in
   cache-sized chunks by ea_classifier_grad, as examples/classify.c trains). */
static double tracker_time(const ea_vit *m, ea_ctx *ctx, int B, int train, int runs) {
    double t[64];
    int r, labels[512];
    ea_adamw opt;
    const ea_vit_config *c = &m->cfg;
    int classify = c->host != EA_HOST_VIT || c->pool == EA_POOL_CLS;
    const float *filled = NULL;
    ea_adamw_init(&opt, 1e-3f, 0.01f);
    for (r = 0; r < B && r < 512; r++) labels[r] = r % c->out_dim;
    /* The clock starts once the inputs are in place, and they are written
       only in the untimed runs (and again if the arena moved them), as the
       PyTorch and ONNX Runtime peers build theirs once outside the timing:
       writing the tracker's batch of 32 inside it had added 20-30 us a
       step, and inputs written by this thread just before the call had to
       travel to the others' caches in it (bench --attn measured that at
       16 threads). */
    for (r = -3; r < runs; r++) {
        ea_tensor *x, *y, *pred;
        double t0;
        size_t i;
        if (train && classify) {
            float *xb = g_images;
            if ((size_t)B * c->in_chans * c->img_size * c->img_size > sizeof g_images / sizeof *xb) return -1.0;
            if (r < 0)
                for (i = 0; i < (size_t)B * c->in_chans * c->img_size * c->img_size; i++)
                    xb[i] = (float)((i * 2654435761u) % 7 == 0);
            t0 = ea_time_sec();
            if (ea_classifier_grad(ctx, m, xb, labels, B, 0, 0.1f, 0.0f, NULL, NULL) != EA_OK) return -1.0;
            ea_adamw_step(&opt, (ea_params *)&m->params);
            if (r >= 0) t[r] = ea_time_sec() - t0;
            continue;
        }
        t0 = ea_time_sec();
        ea_ctx_reset(ctx);
        ctx->grad_enabled = train;
        ctx->training = train;
        x = ea_tensor_4d(ctx, B, c->in_chans, c->img_size, c->img_size, 0);
        y = ea_tensor_2d(ctx, B, c->out_dim, 0);
        if (!x || !y) return -1.0;
        if (r < 0 || x->data != filled) {
            double tw = ea_time_sec();
            for (i = 0; i < x->size; i++) x->data[i] = (float)((i * 2654435761u) % 7 == 0);
            for (i = 0; i < y->size; i++) y->data[i] = 16.0f;
            t0 += ea_time_sec() - tw; /* not part of the step */
        }
        filled = x->data;
        pred = ea_vit_forward(ctx, m, x);
        if (train) {
            ea_tensor *loss = classify ? ea_cross_entropy_smooth(ctx, pred, labels, 0.1f) : ea_mse_loss(ctx, pred, y);
            ea_params_zero_grad((ea_params *)&m->params);
            if (!loss || ea_backward(ctx, loss) != EA_OK) return -1.0;
            ea_adamw_step(&opt, (ea_params *)&m->params);
        } else if (!pred) {
            return -1.0;
        }
        if (r >= 0) t[r] = ea_time_sec() - t0;
    }
    ctx->grad_enabled = 1;
    ctx->training = 0;
    return median(t, runs);
}

/* One model's rows: batch 1 and batch 32 inference, and a training step at
   batch bt.  The tracker's JSON keys stay as the peer script reads them. */
static void bench_model(const char *group, const char *name, const ea_vit_config *cfg, int bt, double peak) {
    const int tracker = strcmp(group, "tracker") == 0;
    const char *unit = tracker ? "frame" : "image";
    ea_vit m;
    ea_ctx ctx;
    ea_error err;
    double f, t1, t32, ttr, p1, p32;
    if (ea_vit_init(&m, cfg, 1, &err) != EA_OK || ea_ctx_init(&ctx, 0) != EA_OK) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return;
    }
    f = ea_vit_flops(&m);
    t1 = tracker_time(&m, &ctx, 1, 0, 51);
    t32 = tracker_time(&m, &ctx, 32, 0, 21);
    if (ea_params_pack(&m.params, &err) != EA_OK) { /* inference as a deployment runs it: weights packed once */
        fprintf(stderr, "bench: %s\n", err.msg);
        return;
    }
    p1 = tracker_time(&m, &ctx, 1, 0, 51);
    p32 = tracker_time(&m, &ctx, 32, 0, 21);
    ea_params_unpack(&m.params);
    ttr = tracker_time(&m, &ctx, bt, 1, 11);
    if (g_json) {
        printf("{\"group\":\"%s\",\"%s\":\"%s\",\"threads\":%d,\"isa\":\"%s\",\"mflop_per_%s\":%.3f,"
               "\"infer_b1_ms\":%.4f,\"infer_b32_ms\":%.4f,\"infer_b1_packed_ms\":%.4f,\"infer_b32_packed_ms\":%.4f,"
               "\"train_b%d_ms\":%.4f,\"peak_gflops\":%.2f}\n",
               group, tracker ? "attn" : "model", name, ea_num_threads(), EA_ISA, unit, f / 1e6, t1 * 1e3, t32 * 1e3, p1 * 1e3,
               p32 * 1e3, bt, ttr * 1e3, peak);
    } else {
        /* a training step costs about 3x the forward FLOPs */
        printf("  %s inference, batch 1    %8.3f %10.0f %8.1f %6.1f%%\n", name, t1 * 1e3, 1.0 / t1, f / t1 / 1e9,
               100.0 * f / t1 / 1e9 / peak);
        printf("  %s inference, batch 32   %8.3f %10.0f %8.1f %6.1f%%\n", name, t32 * 1e3, 32.0 / t32, 32.0 * f / t32 / 1e9,
               100.0 * 32.0 * f / t32 / 1e9 / peak);
        printf("  %s  ... weights packed, b1 %8.3f %10.0f %8.1f %6.1f%%\n", name, p1 * 1e3, 1.0 / p1, f / p1 / 1e9,
               100.0 * f / p1 / 1e9 / peak);
        printf("  %s  ... weights packed, b32%8.3f %10.0f %8.1f %6.1f%%\n", name, p32 * 1e3, 32.0 / p32, 32.0 * f / p32 / 1e9,
               100.0 * 32.0 * f / p32 / 1e9 / peak);
        printf("  %s train step, batch %-4d%8.3f %10.0f %8.1f %6.1f%%\n", name, bt, ttr * 1e3, bt / ttr,
               3.0 * bt * f / ttr / 1e9, 100.0 * 3.0 * bt * f / ttr / 1e9 / peak);
    }
    ea_ctx_free(&ctx);
    ea_vit_free(&m);
}

static void bench_tracker(double peak) {
    static const char *names[2] = {"mha", "mqa"};
    int v;
    if (!g_json)
        printf("\ntracker (%s, %d thread%s)         ms      frames/s  GFLOP/s  %% of 1-core peak\n", EA_ISA,
               ea_num_threads(), ea_num_threads() == 1 ? "" : "s");
    for (v = 0; v < 2; v++) {
        ea_vit_config cfg;
        ea_tracker_config_default(&cfg, names[v]);
        bench_model("tracker", names[v], &cfg, 32, peak);
    }
}

/* --- the classifiers at Fashion-MNIST's size (1x28x28, 10 classes) ---------
   An epoch of Fashion-MNIST is 469 training steps of batch 128. */
static void bench_classify(double peak) {
    static const char *names[3] = {"vit", "mlp", "cnn"};
    int v;
    if (!g_json)
        printf("\nclassifiers, 1x28x28 (%s, %d thread%s)  ms      images/s  GFLOP/s  %% of 1-core peak\n", EA_ISA,
               ea_num_threads(), ea_num_threads() == 1 ? "" : "s");
    for (v = 0; v < 3; v++) {
        ea_vit_config cfg;
        ea_classifier_config_default(&cfg, v, "mha", 1, 28, 10);
        bench_model("classify", names[v], &cfg, 128, peak);
    }
}

/* --- attention against sequence length ------------------------------------- */
/* One exact-attention layer of batch B, H heads of dh, n tokens: the
   median forward and forward + backward of `runs` after a warm-up. */
static void attn_row(double peak, int B, int H, int dh, int n, int runs) {
    int r;
    double tf[64], tb[64], flops = 4.0 * B * n * n * dh * H, mf, mb;
    ea_ctx ctx;
    size_t peak_bytes = 0;
    const float *filled = NULL;
    ea_ctx_init(&ctx, 0);
    /* Every timed call reads the same q, k, v, as the PyTorch peer's
       sdpa(q, k, v) does: the inputs are filled in the two untimed runs
       (the first grows the arena; the reset before the second makes it one
       chunk, so from then on the tensors come back at the same addresses
       with their data) and again only if the arena moved them.  Filled
       before every call by this thread, they had to travel to the other
       threads' caches inside the timed call: on the device's Xeon, 16
       threads, 8 x 64 heads, n = 64, forward 0.030 against 0.018 ms
       (median of 201 calls; n = 128 0.071 against 0.050; one thread and
       n = 1,024 level: bench/results/peers-cpu/attn-inputs-reused-xeon16.txt). */
    for (r = -2; r < runs; r++) {
        ea_tensor *q, *k, *v, *o, *t, *loss;
        double t0;
        size_t i;
        ea_ctx_reset(&ctx);
        q = ea_tensor_3d(&ctx, B, n, H * dh, 1);
        k = ea_tensor_3d(&ctx, B, n, H * dh, 1);
        v = ea_tensor_3d(&ctx, B, n, H * dh, 1);
        t = ea_tensor_3d(&ctx, B, n, H * dh, 0);
        if (!q || !k || !v || !t) break;
        if (r < 0 || q->data != filled)
            for (i = 0; i < q->size; i++) {
                q->data[i] = (float)((i * 7) % 13) / 13.0f - 0.5f;
                k->data[i] = (float)((i * 5) % 11) / 11.0f - 0.5f;
                v->data[i] = (float)((i * 3) % 17) / 17.0f;
                t->data[i] = 0.0f;
            }
        filled = q->data;
        t0 = ea_time_sec();
        o = ea_sdpa(&ctx, q, 0, k, 0, v, 0, H, H, dh, 0);
        if (r >= 0) tf[r] = ea_time_sec() - t0;
        loss = ea_mse_loss(&ctx, o, t);
        if (!loss || ea_backward(&ctx, loss) != EA_OK) break;
        if (r >= 0) tb[r] = ea_time_sec() - t0;
        peak_bytes = ea_ctx_peak_bytes(&ctx);
    }
    ea_ctx_free(&ctx);
    if (r < runs) return;
    mf = median(tf, runs);
    mb = median(tb, runs);
    /* backward: 2.5x the forward's FLOPs (dV, dP, dQ, dK and the recomputed S) */
    if (g_json)
        printf("{\"group\":\"attn\",\"batch\":%d,\"heads\":%d,\"dim\":%d,\"n\":%d,\"fwd_ms\":%.4f,\"fwd_bwd_ms\":%.4f,"
               "\"fwd_gflops\":%.2f,\"fwd_bwd_gflops\":%.2f,\"arena_peak_bytes\":%zu,\"threads\":%d}\n",
               B, H, dh, n, mf * 1e3, mb * 1e3, flops / mf / 1e9, 3.5 * flops / mb / 1e9, peak_bytes, ea_num_threads());
    else
        printf("  %2d %d %3d %6d %8.3f %8.1f %5.1f%% %8.3f %8.1f %5.1f%% %10.2f\n", B, H, dh, n, mf * 1e3, flops / mf / 1e9,
               100.0 * flops / mf / 1e9 / peak, mb * 1e3, 3.5 * flops / mb / 1e9, 100.0 * 3.5 * flops / mb / 1e9 / peak,
               (double)peak_bytes / 1048576.0);
}

static void bench_attn(double peak, int max_n) {
    static const int shapes[2][2] = {{8, 64}, {4, 16}};
    int si, n;
    if (!g_json)
        printf("\nattention, exact (%s, %d thread%s): batch, heads x dim, n, forward and forward+backward\n"
               "   B  H  dh      n   fwd ms  GFLOP/s  %%peak   f+b ms  GFLOP/s  %%peak   arena MiB\n",
               EA_ISA, ea_num_threads(), ea_num_threads() == 1 ? "" : "s");
    for (si = 0; si < 2; si++)
        for (n = 64; n <= max_n; n *= 2) attn_row(peak, 1, shapes[si][0], shapes[si][1], n, n <= 1024 ? 7 : 3);
    /* the ViT classifier's layer as ea_classifier_grad runs it: a chunk of
       12 images of 50 tokens (49 patches and the class token), heads 4 x 12 */
    attn_row(peak, 12, 4, 12, 50, 51);
    /* the same at CIFAR-10's 32 x 32 (64 patches and the class token: a
       query past the last whole vector, ea__fa_row_tile), heads 4 x 16 */
    attn_row(peak, 32, 4, 16, 65, 21);
}

/* --- every attention row against sequence length ---------------------------
   One layer (heads 8, dim 64 each: width 512), forward only, batch 1, the
   fastest of 5 runs after a warm-up (1 run for a row that takes over 4 s),
   with long-sequence settings for each row (the
   tracker's defaults are for 64 tokens).  Reports the time, the arena's
   high-water mark, and for
   each row time(max n)/time(max n / 4) and its speed-up over exact (mha,
   flash-tiled) at the largest n. */
static void bench_variants(int max_n, const char *only) {
    int v, n, nn = 0, ns[16];
    double times[32][16];
    int nv = 0;
    for (n = 256; n <= max_n && nn < 16; n *= 2) ns[nn++] = n;
    if (!g_json)
        printf("\nattention rows, one layer forward (%s, %d thread%s): heads 8 x dim 64, batch 1; best ms (arena MiB)\n%-12s",
               EA_ISA, ea_num_threads(), ea_num_threads() == 1 ? "" : "s", "row");
    for (n = 0; n < nn && !g_json; n++) printf(" %15d", ns[n]);
    if (!g_json) printf("   t(n)/t(n/4)  vs mha\n");
    for (v = 0; v < ea_attn_variant_count(); v++) {
        const char *name = ea_attn_variant_at(v)->name;
        if (!strcmp(name, "none") || !strcmp(name, "single") || !strcmp(name, "mha-sep") || !strcmp(name, "mqa") ||
            !strcmp(name, "gqa") || !strcmp(name, "h2o") || !strcmp(name, "kimi") || !strcmp(name, "deepseek"))
            continue; /* the same attention as mha (h2o, kimi) or mla (deepseek), or none */
        if (only && strcmp(name, only) && strcmp(name, "mha")) continue;
        if (!g_json) printf("%-12s", name);
        for (n = 0; n < nn; n++) {
            ea_attn_config cfg;
            ea_attn a;
            ea_params ps;
            ea_error err;
            ea_ctx ctx;
            double t[5];
            int r, runs = 5; /* (slow rows: 1, decided after the warm-up) */
            size_t peak_bytes = 0;
            memset(&cfg, 0, sizeof cfg);
            memset(&ps, 0, sizeof ps);
            cfg.dim = 512; cfg.n_heads = 8;
            cli_long_sequence_opts(name, &cfg.opt, ns[n]);
            times[nv][n] = -1.0;
            if (ea_attn_build(&a, name, &cfg, &ps, "a", &err) != EA_OK || ea_params_alloc(&ps, &err) != EA_OK) {
                fprintf(stderr, "bench: %s: %s\n", name, err.msg);
                ea_params_free(&ps);
                continue;
            }
            ea_params_init(&ps, 1);
            ea_ctx_init(&ctx, 0);
            ctx.grad_enabled = 0;
            for (r = -1; r < runs; r++) { /* one warm-up: the arena grows to its high-water mark */
                ea_tensor *x, *y;
                double t0;
                size_t i;
                ea_ctx_reset(&ctx);
                ctx.grad_enabled = 0;
                x = ea_tensor_3d(&ctx, 1, ns[n], 512, 0);
                if (!x) break;
                for (i = 0; i < x->size; i++) x->data[i] = (float)((i * 7) % 13) / 13.0f - 0.5f;
                t0 = ea_time_sec();
                y = ea_attn_forward(&ctx, &a, x);
                if (!y) {
                    fprintf(stderr, "bench: %s at n = %d: %s\n", name, ns[n], ctx.err.msg);
                    break;
                }
                if (r >= 0) t[r] = ea_time_sec() - t0;
                else if (ea_time_sec() - t0 > 4.0) runs = 1; /* an O(n²) row at large n */
                peak_bytes = ea_ctx_peak_bytes(&ctx);
                if (r == runs - 1) times[nv][n] = best(t, runs);
            }
            if (g_json)
                printf("{\"group\":\"rows\",\"attn\":\"%s\",\"n\":%d,\"heads\":8,\"dim\":64,\"fwd_ms\":%.4f,"
                       "\"arena_peak_bytes\":%zu,\"threads\":%d}\n",
                       name, ns[n], times[nv][n] * 1e3, peak_bytes, ea_num_threads());
            else
                printf(" %8.2f (%4.0f)", times[nv][n] * 1e3, (double)peak_bytes / 1048576.0);
            fflush(stdout);
            ea_ctx_free(&ctx);
            ea_params_free(&ps);
        }
        if (!g_json) {
            double ratio = nn >= 3 ? times[nv][nn - 1] / times[nv][nn - 3] : 0.0;
            printf("   %8.2f", ratio);
            if (strcmp(name, "mha") && times[0][nn - 1] > 0.0) printf("   %7.1fx", times[0][nn - 1] / times[nv][nn - 1]);
            printf("\n");
        }
        nv++;
    }
}

/* --- decode: one new token against a cache of L tokens -------------------
   One layer, dim 512, 8 heads of 64 (gqa: 2 K/V heads; mla: latent 128,
   rope 32), batch 1.  The cache is filled with stand-in entries (their
   values do not change the cost), then one token at a time is decoded:
   the time per token and the cache's bytes per token. */
static void bench_decode(int max_len) {
    static const char *rows[] = {"mha", "mqa", "gqa", "mla", "h2o"};
    int r, L;
    if (!g_json)
        printf("\ndecode, one layer (%s, %d thread%s): dim 512, 8 heads x 64, batch 1; ms per token (cache bytes per token)\n%-6s",
               EA_ISA, ea_num_threads(), ea_num_threads() == 1 ? "" : "s", "row");
    for (L = 1024; L <= max_len && !g_json; L *= 4) printf(" %16d", L);
    if (!g_json) printf("\n");
    for (r = 0; r < (int)(sizeof rows / sizeof rows[0]); r++) {
        if (!g_json) printf("%-6s", rows[r]);
        for (L = 1024; L <= max_len; L *= 4) {
            ea_attn_config cfg;
            ea_attn a;
            ea_params ps;
            ea_error err;
            ea_ctx ctx;
            ea_attn_state st;
            double t[9], per_token;
            int i, steps = 9, cells;
            size_t j, kept;
            memset(&cfg, 0, sizeof cfg);
            memset(&ps, 0, sizeof ps);
            cfg.dim = 512; cfg.n_heads = 8; cfg.n_kv_heads = 2; cfg.causal = 1;
            cfg.opt.latent = 128; cfg.opt.rope_dim = 32;
            cfg.opt.budget = L / 4; /* h2o keeps a quarter of the stream */
            if (ea_attn_build(&a, rows[r], &cfg, &ps, "a", &err) != EA_OK || ea_params_alloc(&ps, &err) != EA_OK ||
                ea_attn_state_init(&st, &a, 1, L + steps + 1, 1, &err) != EA_OK) {
                fprintf(stderr, "bench: %s: %s\n", rows[r], err.msg);
                ea_params_free(&ps);
                continue;
            }
            ea_params_init(&ps, 1);
            kept = st.budget ? (size_t)st.budget : (size_t)L; /* entries held after L tokens */
            cells = st.B * st.heads;
            for (i = 0; i < cells; i++)
                for (j = 0; j < kept; j++) {
                    size_t e = (size_t)i * st.cap + j, c;
                    for (c = 0; c < (size_t)st.kdim; c++) st.k[e * st.kdim + c] = (float)((e * 31 + c * 7) % 17) / 17.0f - 0.5f;
                    for (c = 0; c < (size_t)st.vdim; c++) st.v[e * st.vdim + c] = (float)((e * 13 + c * 5) % 11) / 11.0f - 0.5f;
                    st.pos[e] = (int)j;
                    if (st.score) st.score[e] = (float)((e * 7) % 5);
                }
            st.len = (int)kept;
            st.seen = L;
            ea_ctx_init(&ctx, 0);
            ctx.grad_enabled = 0;
            for (i = -1; i < steps; i++) { /* one warm-up, then the fastest of 9 */
                ea_tensor *x, *y;
                double t0;
                ea_ctx_reset(&ctx);
                x = ea_tensor_3d(&ctx, 1, 1, 512, 0);
                for (j = 0; x && j < 512; j++) x->data[j] = (float)((j * 3) % 7) / 7.0f - 0.5f;
                t0 = ea_time_sec();
                y = x ? ea_attn_step(&ctx, &a, &st, x) : NULL;
                if (!y) { fprintf(stderr, "bench: %s: %s\n", rows[r], ctx.err.msg); break; }
                if (i >= 0) t[i] = ea_time_sec() - t0;
            }
            per_token = best(t, steps);
            if (g_json)
                printf("{\"group\":\"decode\",\"attn\":\"%s\",\"cache_len\":%d,\"entries\":%zu,\"ms_per_token\":%.5f,"
                       "\"cache_bytes_per_token\":%.0f,\"state_bytes\":%zu,\"threads\":%d}\n",
                       rows[r], L, kept, per_token * 1e3, 4.0 * ea_attn_cache_floats(&a), st.bytes, ea_num_threads());
            else
                printf(" %8.3f (%5.0f)", per_token * 1e3, 4.0 * ea_attn_cache_floats(&a));
            fflush(stdout);
            ea_ctx_free(&ctx);
            ea_attn_state_free(&st);
            ea_params_free(&ps);
        }
        if (!g_json) printf("%s\n", strcmp(rows[r], "h2o") == 0 ? "   (budget L/4)" : "");
    }
}

/* --- MoE feed-forward against the dense MLP at equal active parameters ---
   4096 tokens of dim 256; dense hidden 1024; MoE experts of hidden
   1024 / (k + shared), so a token meets as many weights either way. */
static void bench_moe(void) {
    static const int cfgs[][3] = {{0, 0, 0}, {8, 2, 0}, {8, 1, 1}, {16, 2, 0}}; /* experts, k, shared */
    int c;
    if (!g_json)
        printf("\nMoE feed-forward vs dense MLP (%s, %d thread%s): 4096 tokens x 256, equal active parameters; best ms\n",
               EA_ISA, ea_num_threads(), ea_num_threads() == 1 ? "" : "s");
    for (c = 0; c < (int)(sizeof cfgs / sizeof cfgs[0]); c++) {
        ea_params ps;
        ea_moe m;
        ea_attn_opts o;
        ea_error err;
        ea_ctx ctx;
        ea_tensor *w1 = NULL, *b1 = NULL, *w2 = NULL, *b2 = NULL;
        double tf[5], tb[5];
        int i, pass;
        size_t j;
        memset(&ps, 0, sizeof ps);
        memset(&o, 0, sizeof o);
        o.experts = cfgs[c][0]; o.route_k = cfgs[c][1]; o.shared = cfgs[c][2];
        if (o.experts) {
            if (ea_moe_build(&m, &o, 256, 1024, &ps, "moe", &err) != EA_OK) { fprintf(stderr, "bench: %s\n", err.msg); continue; }
        } else {
            int s1[2] = {1024, 256}, s2[2] = {256, 1024};
            w1 = ea_param(&ps, "fc1.weight", 2, s1, EA_INIT_FANIN, 256.0f);
            b1 = ea_param(&ps, "fc1.bias", 1, s1, EA_INIT_FANIN, 256.0f);
            w2 = ea_param(&ps, "fc2.weight", 2, s2, EA_INIT_FANIN, 1024.0f);
            b2 = ea_param(&ps, "fc2.bias", 1, s2, EA_INIT_FANIN, 1024.0f);
        }
        if (ea_params_alloc(&ps, &err) != EA_OK) { fprintf(stderr, "bench: %s\n", err.msg); continue; }
        ea_params_init(&ps, 1);
        ea_ctx_init(&ctx, 0);
        for (pass = 0; pass < 2; pass++) /* forward, then forward + backward */
            for (i = -1; i < 5; i++) {
                ea_tensor *x, *y, *aux = NULL, *loss;
                double t0;
                ea_ctx_reset(&ctx);
                ctx.grad_enabled = pass;
                x = ea_tensor_3d(&ctx, 8, 512, 256, 0);
                for (j = 0; x && j < x->size; j++) x->data[j] = (float)((j * 7) % 13) / 13.0f - 0.5f;
                t0 = ea_time_sec();
                y = o.experts ? ea_moe_forward(&ctx, &m, x, 0.01f, &aux, NULL)
                              : ea_linear(&ctx, ea_linear_gelu(&ctx, x, w1, b1), w2, b2);
                if (pass && y) {
                    ea_tensor *tg = ea_tensor_3d(&ctx, 8, 512, 256, 0);
                    memset(tg->data, 0, tg->size * sizeof(float));
                    loss = ea_mse_loss(&ctx, y, tg);
                    if (aux) loss = ea_add(&ctx, loss, aux);
                    ea_params_zero_grad(&ps);
                    ea_backward(&ctx, loss);
                }
                if (!y) { fprintf(stderr, "bench: moe: %s\n", ctx.err.msg); break; }
                if (i >= 0) (pass ? tb : tf)[i] = ea_time_sec() - t0;
            }
        if (g_json)
            printf("{\"group\":\"moe\",\"experts\":%d,\"k\":%d,\"shared\":%d,\"expert_hidden\":%d,\"fwd_ms\":%.3f,"
                   "\"fwd_bwd_ms\":%.3f,\"threads\":%d}\n",
                   o.experts, o.experts ? m.k : 0, o.shared, o.experts ? m.hidden : 1024, best(tf, 5) * 1e3, best(tb, 5) * 1e3,
                   ea_num_threads());
        else if (o.experts)
            printf("  MoE %2d experts, top-%d, %d shared, hidden %4d: forward %8.2f ms, forward+backward %8.2f ms\n", o.experts,
                   m.k, o.shared, m.hidden, best(tf, 5) * 1e3, best(tb, 5) * 1e3);
        else
            printf("  dense MLP, hidden 1024:                     forward %8.2f ms, forward+backward %8.2f ms\n", best(tf, 5) * 1e3,
                   best(tb, 5) * 1e3);
        fflush(stdout);
        ea_ctx_free(&ctx);
        ea_params_free(&ps);
    }
}

int main(int argc, char **argv) {
    int i, do_classify = 0, do_peak = 0, do_tracker = 0, do_attn = 0, do_rows = 0, do_gemm = 0, do_decode = 0, do_moe = 0, max_n = 4096;
    int max_len = 65536;
    const char *only = NULL;
    double peak;
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--peak") == 0) do_peak = 1;
        else if (strcmp(argv[i], "--tracker") == 0) do_tracker = 1;
        else if (strcmp(argv[i], "--classify") == 0) do_classify = 1;
        else if (strcmp(argv[i], "--attn") == 0) do_attn = 1;
        else if (strcmp(argv[i], "--rows") == 0) do_rows = 1;
        else if (strcmp(argv[i], "--gemm") == 0) do_gemm = 1;
        else if (strcmp(argv[i], "--decode") == 0) do_decode = 1;
        else if (strcmp(argv[i], "--moe") == 0) do_moe = 1;
        else if (strcmp(argv[i], "--max-len") == 0 && i + 1 < argc) {
            max_len = atoi(argv[++i]);
            if (max_len < 1024 || max_len > (1 << 22)) {
                fprintf(stderr, "bench: --max-len must be in [1024, 4194304]\n");
                return 2;
            }
        }
        else if (strcmp(argv[i], "--row") == 0 && i + 1 < argc) {
            do_rows = 1;
            only = argv[++i];
        }
        else if (strcmp(argv[i], "--json") == 0) g_json = 1;
        else if (strcmp(argv[i], "--max-n") == 0 && i + 1 < argc) {
            max_n = atoi(argv[++i]);
            if (max_n < 64 || max_n > 65536) {
                fprintf(stderr, "bench: --max-n must be in [64, 65536]\n");
                return 2;
            }
        }
#ifdef _OPENMP
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) omp_set_num_threads(atoi(argv[++i]) > 0 ? atoi(argv[i]) : 1);
#endif
        else {
            fprintf(stderr, "usage: bench [--peak] [--gemm] [--tracker] [--classify] [--attn] [--rows] [--row NAME] [--decode] [--moe] [--max-n N] "
                            "[--max-len N] [--threads N] [--json]\n");
            return strcmp(argv[i], "--help") == 0 ? 0 : 2;
        }
    }
    if (!do_peak && !do_tracker && !do_attn && !do_rows && !do_gemm && !do_decode && !do_moe && !do_classify)
        do_peak = do_tracker = do_attn = do_rows = do_gemm = do_decode = do_moe = do_classify = 1;
    peak = peak_gflops();
    if (g_json) printf("{\"group\":\"peak\",\"isa\":\"%s\",\"compiler\":\"%s\",\"gflops_1core\":%.2f}\n", EA_ISA, COMPILER, peak);
    else printf("one core's FP32 FMA peak (%s, 12 accumulators): %.1f GFLOP/s; built by %s\n", EA_ISA, peak, COMPILER);
    if (do_peak && ea_num_threads() > 1) {
        peak_all_threads(peak);
        bench_memory();
    }
    if (do_gemm) bench_gemm(peak);
    if (do_tracker) bench_tracker(peak);
    if (do_classify) bench_classify(peak);
    if (do_attn) bench_attn(peak, max_n);
    if (do_rows) bench_variants(max_n, only);
    if (do_decode) bench_decode(max_len);
    if (do_moe) bench_moe();
    return 0;
}
