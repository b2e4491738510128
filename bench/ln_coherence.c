/* ln_coherence.c — what a layer norm pass costs when other cores hold its lines.

   The tracker's training step on the device's 16 cores runs its block layer
   norms 1.7x faster than on one thread, its final norm 5x; the blocks' norm
   outputs are read again in the backward by the weight gradient's split-k
   items (512-token blocks on other threads than the rows' own), the final
   norm's only by its rows' own thread.  This harness asks whether that is
   the cause: it runs the header's own row loop (ea__layernorm_rows) over
   N x C values on every thread, each thread its static share of rows (the
   split `omp for schedule(static)` makes), after the input was written and
   the output read either by the rows' own thread or by others:

     local     input written and output read by the rows' own thread
     in-other  input written by the next thread (a residual add split otherwise)
     out-1     output read by the next thread
     out-3     output read by the next three threads (a split-k block's readers)
     local pfw, out-3 pfw   the same, each row's output lines asked for
               writing (prefetchw) D rows ahead, D = --ahead (default 4)

   Each pass is timed from one barrier to the next (the pass's wall time, as
   the step sees it); the modes take turns, pass by pass.  Prints each mode's
   mean and median in microseconds.

   Build: make build/ln_coherence
   Run:   OMP_NUM_THREADS=16 build/ln_coherence [--rows N] [--cols C] [--passes P] [--ahead D] [--sweep MiB]

   What it found (bench/results/peers-cpu/device-xeon16-ln-coherence-spread.txt): on the device's 16
   threads a pass takes 7-11 us with its lines local, 15-17 with three other readers, 12-19 with
   the lines swept out of the L2 first; the training step's block norms take 25-29 us of body a
   thread (regions --spread), its final norm 8: other readers explain part of the gap, not all. */
#define EFFATTN_IMPLEMENTATION
#include "../effattn.h"

#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { LOCAL, LOCAL_PFW, IN_OTHER, OUT_1, OUT_3, OUT_3_PFW, LOCAL_COLD, OUT_3_COLD, MODES };
static const char *mode_name[MODES] = {"local",    "local pfw",  "in-other",  "out-1",
                                       "out-3",    "out-3 pfw",  "local cold", "out-3 cold"};

/* thread t's rows under libgomp's static schedule: the first N % nt threads
   take one row more */
static void rows_of(int N, int nt, int t, int *r0, int *r1) {
    int q = N / nt, r = N % nt;
    *r0 = t < r ? t * (q + 1) : t * q + r;
    *r1 = *r0 + (t < r ? q + 1 : q);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    int N = 2080, C = 64, passes = 400, ahead = 4, sweep_mib = 4, i, p, m;
    float *xa, *ya, *x, *y, *mean, *rstd, *w, *b;
    double *times[MODES], sink = 0.0;
    float **sweep;
    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--rows") && i + 1 < argc) N = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--cols") && i + 1 < argc) C = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--passes") && i + 1 < argc) passes = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--ahead") && i + 1 < argc) ahead = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--sweep") && i + 1 < argc) sweep_mib = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--rows N] [--cols C] [--passes P] [--ahead D] [--sweep MiB]\n", argv[0]);
            return strcmp(argv[i], "--help") ? 2 : 0;
        }
    }
    if (N < 1 || C < 1 || passes < 1 || ahead < 0 || sweep_mib < 1) {
        fprintf(stderr, "ln_coherence: rows, cols, passes and sweep must be >= 1, ahead >= 0\n");
        return 2;
    }
    xa = (float *)malloc(((size_t)N * C + 16) * sizeof(float)); /* rows on 64-byte lines, as the arena's */
    ya = (float *)malloc(((size_t)N * C + 16) * sizeof(float));
    if (!xa || !ya) {
        fprintf(stderr, "ln_coherence: out of memory for %d x %d rows\n", N, C);
        return 1;
    }
    x = xa + (16 - (uintptr_t)xa / sizeof(float) % 16) % 16;
    y = ya + (16 - (uintptr_t)ya / sizeof(float) % 16) % 16;
    mean = (float *)malloc((size_t)N * sizeof(float));
    rstd = (float *)malloc((size_t)N * sizeof(float));
    w = (float *)malloc((size_t)C * sizeof(float));
    b = (float *)malloc((size_t)C * sizeof(float));
    for (m = 0; m < MODES; m++) times[m] = (double *)malloc((size_t)passes * sizeof(double));
    sweep = (float **)calloc((size_t)omp_get_max_threads(), sizeof(float *));
    if (!sweep) return 1;
#pragma omp parallel
    { /* each thread's sweep, first touched by it (its own pages) */
        float *own = (float *)calloc((size_t)sweep_mib << 18, sizeof(float));
        sweep[omp_get_thread_num()] = own;
    }
    for (i = 0; i < omp_get_max_threads(); i++)
        if (!sweep[i]) { /* else the cold modes would measure warm lines without a word */
            fprintf(stderr, "ln_coherence: could not allocate %d MiB to sweep for thread %d (try a smaller --sweep)\n",
                    sweep_mib, i);
            return 1;
        }
    if (!x || !y || !mean || !rstd || !w || !b) {
        fprintf(stderr, "ln_coherence: out of memory for %d x %d rows\n", N, C);
        return 1;
    }
    for (i = 0; i < C; i++) {
        w[i] = 1.0f + 0.01f * (float)i;
        b[i] = 0.001f * (float)i;
    }
    memset(y, 0, (size_t)N * C * sizeof(float));
    for (p = 0; p < passes + 5; p++)
        for (m = 0; m < MODES; m++) {
            double t0 = 0.0, t1 = 0.0, s = 0.0;
#pragma omp parallel reduction(+ : s)
            {
                int nt = omp_get_num_threads(), t = omp_get_thread_num(), r0, r1, r, j, k, readers;
                /* the input: the rows' own thread writes them, or the next one */
                rows_of(N, nt, m == IN_OTHER ? (t + nt - 1) % nt : t, &r0, &r1);
                for (r = r0; r < r1; r++)
                    for (j = 0; j < C; j++) x[(size_t)r * C + j] = (float)((r * 31 + j * 7 + p) % 97) * 0.01f;
                /* the last pass's output: read by its own thread, or by others */
                readers = m == OUT_1 ? 1 : m == OUT_3 || m == OUT_3_PFW || m == OUT_3_COLD ? 3 : 0;
                for (k = readers ? 1 : 0; k <= readers; k++) {
                    rows_of(N, nt, (t + nt - k) % nt, &r0, &r1);
                    for (r = r0; r < r1; r++)
                        for (j = 0; j < C; j += 16) s += y[(size_t)r * C + j];
                }
                if (m == LOCAL_COLD || m == OUT_3_COLD) {
                    float *own = sweep[t];
                    size_t n = (size_t)sweep_mib << 18, q;
                    if (own)
                        for (q = 0; q < n; q += 16) own[q] += 1.0f;
                }
#pragma omp barrier
#pragma omp master
                t0 = omp_get_wtime();
#pragma omp barrier
                rows_of(N, nt, t, &r0, &r1);
                if (m == OUT_3_PFW || m == LOCAL_PFW)
                    for (r = r0; r < r1; r++) {
                        if (r + ahead < r1)
                            for (j = 0; j < C; j += 16) __builtin_prefetch(y + (size_t)(r + ahead) * C + j, 1, 3);
                        ea__layernorm_rows(y, mean, rstd, x, w, b, r, r + 1, C, 1e-5f);
                    }
                else ea__layernorm_rows(y, mean, rstd, x, w, b, r0, r1, C, 1e-5f);
#pragma omp barrier
#pragma omp master
                t1 = omp_get_wtime();
            }
            sink += s;
            if (p >= 5) times[m][p - 5] = (t1 - t0) * 1e6;
        }
    printf("layer norm over %d x %d on %d threads, %d passes a mode (prefetchw %d rows ahead), us a pass:\n", N, C,
           omp_get_max_threads(), passes, ahead);
    for (m = 0; m < MODES; m++) {
        double sum = 0.0;
        for (p = 0; p < passes; p++) sum += times[m][p];
        qsort(times[m], (size_t)passes, sizeof(double), cmp_double);
        printf("  %-10s mean %8.2f  median %8.2f\n", mode_name[m], sum / passes, times[m][passes / 2]);
    }
    if (sink == 42.0) printf("(sink)\n"); /* keeps the reads */
    free(xa);
    free(ya);
    free(mean);
    free(rstd);
    free(w);
    free(b);
    for (m = 0; m < MODES; m++) free(times[m]);
    for (i = 0; i < omp_get_max_threads(); i++) free(sweep[i]);
    free(sweep);
    return 0;
}
