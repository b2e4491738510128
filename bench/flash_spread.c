/* flash_spread.c — the flash forward's time against the spread of its scores.

   bench --attn fills q, k and v with small patterned values: every score lies
   within a few units, so the online softmax's running max hardly moves from
   one key tile to the next.  A trained model's attention is peakier.  This
   program draws q and k from N(0, sigma^2) (v from N(0, 1)), heads 8 x 64,
   scale 1/8, batch 1, so that a score's standard deviation is sigma^2
   natural units, and times ea_sdpa_flash_fwd on one thread (built without
   OpenMP):
   the fastest of five rounds, each the mean of at least three calls and
   about 4 GFLOP.  It shows what ea__fa_lazy's margins cost where maxima
   rise far (8.2).  Compare two builds of the header by running both in turn.

   Build: make build/flash_spread
   Run:   build/flash_spread [--sigma S[,S...]] [--n N[,N...]]
          (defaults: sigma 1,2,3 and n 256,512,1024) */
#define EFFATTN_IMPLEMENTATION
#include "../effattn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Up to 8 comma-separated values of arg into v; how many, or 0 if any is bad. */
static int parse_list(const char *arg, double *v, double lo, double hi) {
    int count = 0;
    const char *p = arg;
    while (count < 8) {
        char *end;
        double x = strtod(p, &end);
        if (end == p || x < lo || x > hi) return 0;
        v[count++] = x;
        if (*end == '\0') return count;
        if (*end != ',') return 0;
        p = end + 1;
    }
    return 0;
}

static int usage(FILE *f, int rc) {
    fprintf(f, "usage: flash_spread [--sigma S[,S...]] [--n N[,N...]]\n"
               "  times the flash forward (heads 8 x 64, one thread) with q, k ~ N(0, S^2);\n"
               "  defaults: --sigma 1,2,3 --n 256,512,1024 (S in (0, 8], N in [16, 8192], up to 8 of each)\n");
    return rc;
}

int main(int argc, char **argv) {
    double sigmas[8] = {1.0, 2.0, 3.0}, ns[8] = {256, 512, 1024};
    int nsig = 3, nn = 3, a, si, ni;
    const int H = 8, dh = 64;
    for (a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "--help") || !strcmp(argv[a], "-h")) return usage(stdout, 0);
        if (!strcmp(argv[a], "--sigma") && a + 1 < argc) {
            if (!(nsig = parse_list(argv[++a], sigmas, 1e-3, 8.0))) {
                fprintf(stderr, "flash_spread: --sigma takes up to 8 values in (0, 8], got '%s'\n", argv[a]);
                return 2;
            }
        } else if (!strcmp(argv[a], "--n") && a + 1 < argc) {
            if (!(nn = parse_list(argv[++a], ns, 16, 8192))) {
                fprintf(stderr, "flash_spread: --n takes up to 8 lengths in [16, 8192], got '%s'\n", argv[a]);
                return 2;
            }
        } else {
            fprintf(stderr, "flash_spread: unknown or incomplete option '%s'\n", argv[a]);
            return usage(stderr, 2);
        }
    }
    printf("flash forward (%s, 1 thread), heads %d x %d, q and k ~ N(0, sigma^2): fastest of 5 rounds, ms\n", EA_ISA, H,
           dh);
    for (si = 0; si < nsig; si++)
        for (ni = 0; ni < nn; ni++) {
            int n = (int)ns[ni], reps, r, round;
            size_t N = (size_t)n * H * dh, i;
            float *q = (float *)malloc(4 * N * sizeof(float)), *k = q + N, *v = k + N, *o = v + N, *scr;
            ea_sdpa_shape s;
            ea_rng rng;
            double best = 1e30;
            memset(&s, 0, sizeof s);
            s.B = 1; s.nq = s.nk = n; s.H = s.Hkv = H; s.dh = dh; s.scale = 0.125f;
            s.ldq = s.ldk = s.ldv = s.ldo = H * dh;
            scr = (float *)malloc(ea_sdpa_flash_scratch(&s) * sizeof(float));
            if (!q || !scr) {
                fprintf(stderr, "flash_spread: out of memory at n = %d\n", n);
                free(q);
                free(scr);
                return 1;
            }
            ea_rng_seed(&rng, 1, 0);
            for (i = 0; i < N; i++) {
                q[i] = (float)sigmas[si] * ea_rng_normal(&rng);
                k[i] = (float)sigmas[si] * ea_rng_normal(&rng);
                v[i] = ea_rng_normal(&rng);
            }
            reps = (int)(4e9 / (4.0 * n * (double)n * dh * H)) + 3; /* about 4 GFLOP a round */
            for (round = 0; round < 5; round++) {
                double t0 = ea_time_sec(), t;
                for (r = 0; r < reps; r++) ea_sdpa_flash_fwd(o, NULL, scr, q, k, v, &s, NULL, NULL);
                t = (ea_time_sec() - t0) / reps;
                best = t < best ? t : best;
            }
            printf("  sigma %.2f  n %5d  %9.3f ms\n", sigmas[si], n, best * 1e3);
            free(q);
            free(scr);
        }
    return 0;
}
