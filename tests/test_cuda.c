/* The CUDA kernels against their CPU twins (make test-cuda, on a machine
   with an NVIDIA GPU).  Build: nvcc -x cu -DEFFATTN_CUDA tests/test_cuda.c
   -lcublas -lcublasLt.  The last line is "N passed, N failed". */
#define EFFATTN_IMPLEMENTATION
#include "../effattn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int g_pass = 0, g_fail = 0;
#define CHECK(cond, ...)                                                \
    do {                                                                \
        if (cond) {                                                     \
            g_pass++;                                                   \
        } else {                                                        \
            g_fail++;                                                   \
            printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);      \
            printf(__VA_ARGS__);                                        \
            printf("\n");                                               \
        }                                                               \
    } while (0)

static ea_cuda g_cu;
static ea_rng g_rng;

/* Largest |a - b| over the largest |b| (1e-12 floor). */
static double rel(const float *a, const float *b, size_t n) {
    double num = 0.0, den = 1e-12;
    size_t i;
    for (i = 0; i < n; i++) {
        num = fabs((double)a[i] - b[i]) > num ? fabs((double)a[i] - b[i]) : num;
        den = fabs(b[i]) > den ? fabs(b[i]) : den;
    }
    return num / den;
}

static float *host_rand(size_t n) {
    float *p = (float *)malloc(n * sizeof(float));
    size_t i;
    for (i = 0; i < n; i++) p[i] = ea_rng_range(&g_rng, -1.0f, 1.0f);
    return p;
}

/* A device copy of n host floats (NULL host: zeros). */
static float *dev(const float *host, size_t n) {
    float *d = NULL;
    ea_error err;
    if (ea_cuda_alloc(&g_cu, &d, n, &err) != EA_OK) {
        printf("%s\n", err.msg);
        exit(1);
    }
    if (host) ea_cuda_put(&g_cu, d, host, n, &err);
    else cudaMemsetAsync(d, 0, n * sizeof(float), (cudaStream_t)g_cu.stream);
    return d;
}

static float *back(const float *d, size_t n) {
    float *h = (float *)malloc(n * sizeof(float));
    ea_error err;
    ea_cuda_get(&g_cu, h, d, n, &err);
    ea_cuda_sync(&g_cu, &err);
    return h;
}

static void test_linear(int M, int K, int N) {
    float *x = host_rand((size_t)M * K), *w = host_rand((size_t)N * K), *b = host_rand((size_t)N), *dy = host_rand((size_t)M * N);
    float *y = (float *)malloc((size_t)M * N * 4), *dx = (float *)calloc((size_t)M * K, 4), *dw = (float *)calloc((size_t)N * K, 4),
          *db = (float *)calloc((size_t)N, 4);
    float *Dx = dev(x, (size_t)M * K), *Dw = dev(w, (size_t)N * K), *Db = dev(b, N), *Dy = dev(NULL, (size_t)M * N),
          *Ddy = dev(dy, (size_t)M * N), *Ddx = dev(NULL, (size_t)M * K), *Ddw = dev(NULL, (size_t)N * K), *Ddb = dev(NULL, N);
    float *gy, *gdx, *gdw, *gdb;
    ea_error err;
    ea_linear_fwd(y, x, w, b, M, K, N);
    ea_linear_bwd(dx, dw, db, dy, x, w, M, K, N);
    CHECK(ea_linear_fwd_cuda(&g_cu, Dy, Dx, Dw, Db, M, K, N, &err) == EA_OK, "%s", err.msg);
    CHECK(ea_linear_bwd_cuda(&g_cu, Ddx, Ddw, Ddb, Ddy, Dx, Dw, M, K, N, &err) == EA_OK, "%s", err.msg);
    gy = back(Dy, (size_t)M * N);
    gdx = back(Ddx, (size_t)M * K);
    gdw = back(Ddw, (size_t)N * K);
    gdb = back(Ddb, N);
    CHECK(rel(gy, y, (size_t)M * N) < 1e-5 && rel(gdx, dx, (size_t)M * K) < 1e-5 && rel(gdw, dw, (size_t)N * K) < 1e-5 &&
              rel(gdb, db, N) < 1e-5,
          "linear %dx%dx%d: out %.2g, dx %.2g, dw %.2g, db %.2g", M, K, N, rel(gy, y, (size_t)M * N), rel(gdx, dx, (size_t)M * K),
          rel(gdw, dw, (size_t)N * K), rel(gdb, db, N));
    printf("  linear %dx%dx%d: rel. error out %.1e, dx %.1e, dw %.1e, db %.1e\n", M, K, N, rel(gy, y, (size_t)M * N),
           rel(gdx, dx, (size_t)M * K), rel(gdw, dw, (size_t)N * K), rel(gdb, db, N));
    free(x); free(w); free(b); free(dy); free(y); free(dx); free(dw); free(db); free(gy); free(gdx); free(gdw); free(gdb);
    ea_cuda_release(Dx); ea_cuda_release(Dw); ea_cuda_release(Db); ea_cuda_release(Dy); ea_cuda_release(Ddy);
    ea_cuda_release(Ddx); ea_cuda_release(Ddw); ea_cuda_release(Ddb);
}

static void test_layernorm(int N, int C) {
    size_t n = (size_t)N * C;
    float *x = host_rand(n), *w = host_rand(C), *b = host_rand(C), *dy = host_rand(n), *y = (float *)malloc(n * 4),
          *mu = (float *)malloc((size_t)N * 4), *rs = (float *)malloc((size_t)N * 4), *dx = (float *)calloc(n, 4),
          *dw = (float *)calloc(C, 4), *db = (float *)calloc(C, 4);
    float *Dx = dev(x, n), *Dw = dev(w, C), *Db = dev(b, C), *Dy = dev(NULL, n), *Dmu = dev(NULL, N), *Drs = dev(NULL, N),
          *Ddy = dev(dy, n), *Ddx = dev(NULL, n), *Ddw = dev(NULL, C), *Ddb = dev(NULL, C);
    float *gy, *gdx, *gdw, *gdb;
    ea_error err;
    ea_layernorm_fwd(y, mu, rs, x, w, b, N, C, 1e-5f);
    ea_layernorm_bwd(dx, dw, db, dy, x, mu, rs, w, N, C);
    CHECK(ea_layernorm_fwd_cuda(&g_cu, Dy, Dmu, Drs, Dx, Dw, Db, N, C, 1e-5f, &err) == EA_OK, "%s", err.msg);
    CHECK(ea_layernorm_bwd_cuda(&g_cu, Ddx, Ddw, Ddb, Ddy, Dx, Dmu, Drs, Dw, N, C, &err) == EA_OK, "%s", err.msg);
    gy = back(Dy, n);
    gdx = back(Ddx, n);
    gdw = back(Ddw, C);
    gdb = back(Ddb, C);
    CHECK(rel(gy, y, n) < 1e-5 && rel(gdx, dx, n) < 1e-4 && rel(gdw, dw, C) < 1e-5 && rel(gdb, db, C) < 1e-5,
          "layer norm %dx%d: out %.2g, dx %.2g, dw %.2g, db %.2g", N, C, rel(gy, y, n), rel(gdx, dx, n), rel(gdw, dw, C),
          rel(gdb, db, C));
    free(x); free(w); free(b); free(dy); free(y); free(mu); free(rs); free(dx); free(dw); free(db);
    free(gy); free(gdx); free(gdw); free(gdb);
    ea_cuda_release(Dx); ea_cuda_release(Dw); ea_cuda_release(Db); ea_cuda_release(Dy); ea_cuda_release(Dmu);
    ea_cuda_release(Drs); ea_cuda_release(Ddy); ea_cuda_release(Ddx); ea_cuda_release(Ddw); ea_cuda_release(Ddb);
}

static void test_pointwise(void) {
    const size_t n = 100003;
    const int rows = 301, cols = 77;
    float *x = host_rand(n), *dy = host_rand(n), *y = (float *)malloc(n * 4), *dx = (float *)calloc(n, 4);
    float *Dx = dev(x, n), *Dy = dev(NULL, n), *Ddy = dev(dy, n), *Ddx = dev(NULL, n), *gy, *gdx;
    ea_error err;
    size_t i;
    for (i = 0; i < n; i++) x[i] *= 4.0f; /* GELU's curve, not just its middle */
    ea_cuda_put(&g_cu, Dx, x, n, &err);
    ea_gelu_fwd(y, x, n);
    ea_gelu_bwd(dx, dy, x, n);
    CHECK(ea_gelu_fwd_cuda(&g_cu, Dy, Dx, n, &err) == EA_OK && ea_gelu_bwd_cuda(&g_cu, Ddx, Ddy, Dx, n, &err) == EA_OK, "%s",
          err.msg);
    gy = back(Dy, n);
    gdx = back(Ddx, n);
    CHECK(rel(gy, y, n) < 1e-5 && rel(gdx, dx, n) < 1e-5, "GELU: out %.2g, dx %.2g", rel(gy, y, n), rel(gdx, dx, n));
    free(gy);
    ea_softmax_fwd(y, x, rows, cols);
    CHECK(ea_softmax_fwd_cuda(&g_cu, Dy, Dx, rows, cols, &err) == EA_OK, "%s", err.msg);
    gy = back(Dy, (size_t)rows * cols);
    CHECK(rel(gy, y, (size_t)rows * cols) < 1e-5, "softmax: %.2g", rel(gy, y, (size_t)rows * cols));
    free(x); free(dy); free(y); free(dx); free(gy); free(gdx);
    ea_cuda_release(Dx); ea_cuda_release(Dy); ea_cuda_release(Ddy); ea_cuda_release(Ddx);
}

/* Flash attention on the GPU against the CPU's ea_sdpa (its own tape) on
   the same q, k, v and the same output gradient. */
static void *dev_bytes(const void *host, size_t bytes);

/* A sparse pattern (ea_cuda_pattern's rule) for the CPU's flex attention:
   the reference of the pattern kernels. */
typedef struct test_pattern { ea_cuda_pattern p; const int *rand; } test_pattern;
static int pattern_mask(int b, int h, int q, int k, void *user) {
    const test_pattern *t = (const test_pattern *)user;
    const ea_cuda_pattern *p = &t->p;
    int r;
    (void)b; (void)h;
    if (p->window >= 0 && abs(q - k) <= p->window) return 1;
    if (q < p->n_global || k < p->n_global) return 1;
    if (!p->block) return 0;
    if (abs(q / p->block - k / p->block) <= p->block_window) return 1;
    for (r = 0; r < p->n_random; r++)
        if (t->rand[(q / p->block) * p->n_random + r] == k / p->block) return 1;
    return 0;
}

/* A pattern of window / n_global / block (block_window 1) / n_random for
   n tokens, its random key blocks drawn here (every third -1: none); the
   table is returned (free it), tp->p.rand left for the device copy. */
static int *draw_pattern(test_pattern *tp, int n, int window, int n_global, int block, int n_random) {
    int nblk = block ? (n + block - 1) / block : 0, *rand = (int *)malloc(((size_t)nblk * n_random + 1) * sizeof(int));
    size_t i;
    for (i = 0; i < (size_t)nblk * n_random; i++) rand[i] = (int)ea_rng_below(&g_rng, (uint32_t)nblk) - (i % 3 == 2);
    memset(tp, 0, sizeof *tp);
    tp->p.window = window; tp->p.n_global = n_global; tp->p.block = block; tp->p.block_window = block ? 1 : 0;
    tp->p.n_random = n_random;
    tp->rand = rand;
    return rand;
}

/* The fp32 kernels (forward and backward) against the CPU's flash
   attention on the same inputs: plain (label NULL), or restricted to a
   pattern (window / n_global / block / n_random as ea_cuda_pattern, random
   blocks drawn here) against the CPU's flex attention with the same mask. */
static void check_attention(int B, int n, int H, int Hkv, int dh, int causal, int window, int n_global, int block, int n_random,
                            const char *label) {
    size_t nq = (size_t)B * n * H * dh, nk = (size_t)B * n * Hkv * dh, i;
    int nblk = block ? (n + block - 1) / block : 0, *rand, *Drand;
    test_pattern tp;
    ea_flex_mods mods;
    ea_ctx ctx;
    ea_tensor *q, *k, *v, *o, *t, *loss;
    ea_error err;
    float *dout = (float *)malloc(nq * 4), *Dq, *Dk, *Dv, *Do, *Dl, *Ddo, *Ddq, *Ddk, *Ddv, *go, *gdq, *gdk, *gdv;
    rand = draw_pattern(&tp, n, window, n_global, block, n_random);
    memset(&mods, 0, sizeof mods);
    mods.mask_mod = pattern_mask;
    mods.user = &tp;
    ea_ctx_init(&ctx, 0);
    q = ea_tensor_3d(&ctx, B, n, H * dh, 1);
    k = ea_tensor_3d(&ctx, B, n, Hkv * dh, 1);
    v = ea_tensor_3d(&ctx, B, n, Hkv * dh, 1);
    t = ea_tensor_3d(&ctx, B, n, H * dh, 0);
    for (i = 0; i < nq; i++) { q->data[i] = ea_rng_range(&g_rng, -2.0f, 2.0f); t->data[i] = ea_rng_range(&g_rng, -1.0f, 1.0f); }
    for (i = 0; i < nk; i++) { k->data[i] = ea_rng_range(&g_rng, -2.0f, 2.0f); v->data[i] = ea_rng_range(&g_rng, -1.0f, 1.0f); }
    o = label ? ea_flex_attention(&ctx, q, 0, k, 0, v, 0, H, Hkv, dh, causal, &mods) : ea_sdpa(&ctx, q, 0, k, 0, v, 0, H, Hkv, dh, causal);
    loss = ea_mse_loss(&ctx, o, t);
    CHECK(loss && ea_backward(&ctx, loss) == EA_OK, "CPU reference: %s", ctx.err.msg);
    if (!loss) { ea_ctx_free(&ctx); free(dout); free(rand); return; }
    for (i = 0; i < nq; i++) dout[i] = 2.0f * (o->data[i] - t->data[i]) / (float)nq; /* d mse / d out */
    Drand = (int *)dev_bytes(rand, ((size_t)nblk * n_random + 1) * sizeof(int));
    tp.p.rand = n_random ? Drand : NULL;
    Dq = dev(q->data, nq); Dk = dev(k->data, nk); Dv = dev(v->data, nk); Do = dev(NULL, nq); Dl = dev(NULL, (size_t)B * H * n);
    Ddo = dev(dout, nq); Ddq = dev(NULL, nq); Ddk = dev(NULL, nk); Ddv = dev(NULL, nk);
    CHECK((label ? ea_attention_fwd_pattern_cuda(&g_cu, Do, Dl, Dq, Dk, Dv, B, n, H, Hkv, dh, causal, &tp.p, &err)
                 : ea_attention_fwd_cuda(&g_cu, Do, Dl, Dq, Dk, Dv, B, n, H, Hkv, dh, causal, &err)) == EA_OK, "%s", err.msg);
    CHECK((label ? ea_attention_bwd_pattern_cuda(&g_cu, Ddq, Ddk, Ddv, Ddo, Do, Dl, Dq, Dk, Dv, B, n, H, Hkv, dh, causal, &tp.p, &err)
                 : ea_attention_bwd_cuda(&g_cu, Ddq, Ddk, Ddv, Ddo, Do, Dl, Dq, Dk, Dv, B, n, H, Hkv, dh, causal, &err)) == EA_OK,
          "%s", err.msg);
    go = back(Do, nq); gdq = back(Ddq, nq); gdk = back(Ddk, nk); gdv = back(Ddv, nk);
    CHECK(rel(go, o->data, nq) < 1e-5 && rel(gdq, q->grad, nq) < 1e-4 && rel(gdk, k->grad, nk) < 1e-4 && rel(gdv, v->grad, nk) < 1e-4,
          "attention %sB%d n%d H%d/%d dh%d%s: out %.2g, dq %.2g, dk %.2g, dv %.2g", label ? label : "", B, n, H, Hkv, dh, causal ? " causal" : "",
          rel(go, o->data, nq), rel(gdq, q->grad, nq), rel(gdk, k->grad, nk), rel(gdv, v->grad, nk));
    printf("  attention %sB%d n%d H%d/%d dh%d%s: rel. error out %.1e, dq %.1e, dk %.1e, dv %.1e\n", label ? label : "", B, n, H, Hkv, dh,
           causal ? " causal" : "", rel(go, o->data, nq), rel(gdq, q->grad, nq), rel(gdk, k->grad, nk), rel(gdv, v->grad, nk));
    tp.p.window = -1;
    tp.p.block = 0;
    tp.p.n_random = 0;
    CHECK(!label || (ea_attention_fwd_pattern_cuda(&g_cu, Do, Dl, Dq, Dk, Dv, B, n, H, Hkv, dh, causal, &tp.p, &err) == EA_ERR_ARG &&
                     strstr(err.msg, "own key")), "a pattern that hides the diagonal refused: %s", err.msg);
    CHECK(!label || ea_attention_fwd_pattern_cuda(&g_cu, Do, Dl, Dq, Dk, Dv, B, n, H, Hkv, dh, causal, NULL, &err) == EA_ERR_ARG,
          "a NULL pattern refused: %s", err.msg);
    free(dout); free(go); free(gdq); free(gdk); free(gdv); free(rand);
    ea_cuda_release(Dq); ea_cuda_release(Dk); ea_cuda_release(Dv); ea_cuda_release(Do); ea_cuda_release(Dl);
    ea_cuda_release(Ddo); ea_cuda_release(Ddq); ea_cuda_release(Ddk); ea_cuda_release(Ddv);
    ea_cuda_release(Drand);
    ea_ctx_free(&ctx);
}


static void test_attention(int B, int n, int H, int Hkv, int dh, int causal) {
    check_attention(B, n, H, Hkv, dh, causal, -1, 0, 0, 0, NULL);
}

/* The CPU flash kernels' description of q [B, n, H, dh], k and v [B, n, Hkv, dh] */
static ea_sdpa_shape sdpa_shape(int B, int n, int H, int Hkv, int dh, int causal) {
    ea_sdpa_shape sh;
    memset(&sh, 0, sizeof sh);
    sh.B = B; sh.nq = sh.nk = n; sh.H = H; sh.Hkv = Hkv; sh.dh = dh; sh.causal = causal;
    sh.scale = 1.0f / sqrtf((float)dh);
    sh.ldq = sh.ldo = (ptrdiff_t)H * dh;
    sh.ldk = sh.ldv = (ptrdiff_t)Hkv * dh;
    return sh;
}

/* bf16 values as the GPU sees them: h (raw bits) and f (their floats) */
static void bf16_rand(uint16_t *h, float *f, size_t n, float lo, float hi) {
    size_t i;
    for (i = 0; i < n; i++) {
        h[i] = ea_bf16_from_float(ea_rng_range(&g_rng, lo, hi));
        f[i] = ea_bf16_to_float(h[i]);
    }
}

static void *dev_bytes(const void *host, size_t bytes) {
    void *d = NULL;
    ea_error err;
    if (ea_cuda_alloc_bytes(&g_cu, &d, bytes, &err) != EA_OK) {
        printf("%s\n", err.msg);
        exit(1);
    }
    if (host) ea_cuda_put_bytes(&g_cu, d, host, bytes, &err);
    return d;
}

/* Largest |a - b| over the largest |b|, a in bf16. */
static double rel_bf16(const uint16_t *a, const float *b, size_t n) {
    float *f = (float *)malloc(n * sizeof(float));
    double r;
    size_t i;
    for (i = 0; i < n; i++) f[i] = ea_bf16_to_float(a[i]);
    r = rel(f, b, n);
    free(f);
    return r;
}

/* The tensor-core kernels against the CPU's flash kernels run in fp32 on
   the same bf16-rounded q, k, v and dout.  What separates them: P and dS
   rounded to bf16 before their products (2^-9 relative each, errors that
   mostly cancel over a row), out and the gradients rounded to bf16 at the
   end (2^-9 of each value), and Δ = dO·O taken from the bf16 out.  Bounds:
   5e-3 of the largest |out| and 1.5e-2 of each gradient's largest value;
   the lse, summed in fp32 from exact bf16 products, within 1e-4. */
static void check_attention_bf16(int B, int n, int H, int Hkv, int dh, int causal, int window, int n_global, int block,
                                 int n_random, const char *label) {
    size_t nq = (size_t)B * n * H * dh, nk = (size_t)B * n * Hkv * dh, nl = (size_t)B * H * n, i;
    int nblk = block ? (n + block - 1) / block : 0, *rand, *Drand;
    test_pattern tp;
    ea_flex_mods mods;
    uint16_t *hq = (uint16_t *)malloc(nq * 2), *hk = (uint16_t *)malloc(nk * 2), *hv = (uint16_t *)malloc(nk * 2);
    uint16_t *hdo = (uint16_t *)malloc(nq * 2), *go = (uint16_t *)malloc(nq * 2), *gdq = (uint16_t *)malloc(nq * 2);
    uint16_t *gdk = (uint16_t *)malloc(nk * 2), *gdv = (uint16_t *)malloc(nk * 2), *gdq2 = (uint16_t *)malloc(nq * 2);
    float *q = (float *)malloc(nq * 4), *k = (float *)malloc(nk * 4), *v = (float *)malloc(nk * 4), *dout = (float *)malloc(nq * 4);
    float *o = (float *)malloc(nq * 4), *lse = (float *)malloc(nl * 4), *glse = (float *)malloc(nl * 4);
    float *dq = (float *)calloc(nq, 4), *dk = (float *)calloc(nk, 4), *dv = (float *)calloc(nk, 4), *scratch, *Dl;
    uint16_t *Dq, *Dk, *Dv, *Do, *Ddo, *Ddq, *Ddk, *Ddv;
    ea_sdpa_shape sh;
    ea_error err;
    double e_lse = 0.0;
    sh = sdpa_shape(B, n, H, Hkv, dh, causal);
    bf16_rand(hq, q, nq, -2.0f, 2.0f);
    bf16_rand(hk, k, nk, -2.0f, 2.0f);
    bf16_rand(hv, v, nk, -1.0f, 1.0f);
    bf16_rand(hdo, dout, nq, -1.0f, 1.0f);
    rand = draw_pattern(&tp, n, window, n_global, block, n_random);
    memset(&mods, 0, sizeof mods);
    mods.mask_mod = pattern_mask;
    mods.user = &tp;
    scratch = (float *)malloc(ea_sdpa_flash_scratch(&sh) * ea_num_threads() * sizeof(float));
    ea_sdpa_flash_fwd(o, lse, scratch, q, k, v, &sh, NULL, label ? &mods : NULL);
    ea_sdpa_flash_bwd(dq, dk, dv, scratch, dout, o, lse, q, k, v, &sh, NULL, label ? &mods : NULL);
    Drand = (int *)dev_bytes(rand, ((size_t)nblk * n_random + 1) * sizeof(int));
    tp.p.rand = n_random ? Drand : NULL;
    Dq = (uint16_t *)dev_bytes(hq, nq * 2); Dk = (uint16_t *)dev_bytes(hk, nk * 2); Dv = (uint16_t *)dev_bytes(hv, nk * 2);
    Ddo = (uint16_t *)dev_bytes(hdo, nq * 2); Do = (uint16_t *)dev_bytes(NULL, nq * 2); Dl = (float *)dev_bytes(NULL, nl * 4);
    Ddq = (uint16_t *)dev_bytes(NULL, nq * 2); Ddk = (uint16_t *)dev_bytes(NULL, nk * 2); Ddv = (uint16_t *)dev_bytes(NULL, nk * 2);
#define BF16_FWD (label ? ea_attention_fwd_bf16_pattern_cuda(&g_cu, Do, Dl, Dq, Dk, Dv, B, n, H, Hkv, dh, causal, &tp.p, &err) \
                    : ea_attention_fwd_bf16_cuda(&g_cu, Do, Dl, Dq, Dk, Dv, B, n, H, Hkv, dh, causal, &err))
#define BF16_BWD (label ? ea_attention_bwd_bf16_pattern_cuda(&g_cu, Ddq, Ddk, Ddv, Ddo, Do, Dl, Dq, Dk, Dv, B, n, H, Hkv, dh, causal, \
                                                             &tp.p, &err) \
                    : ea_attention_bwd_bf16_cuda(&g_cu, Ddq, Ddk, Ddv, Ddo, Do, Dl, Dq, Dk, Dv, B, n, H, Hkv, dh, causal, &err))
    CHECK(BF16_FWD == EA_OK, "%s", err.msg);
    CHECK(BF16_BWD == EA_OK, "%s", err.msg);
    ea_cuda_get_bytes(&g_cu, go, Do, nq * 2, &err);
    ea_cuda_get_bytes(&g_cu, glse, Dl, nl * 4, &err);
    ea_cuda_get_bytes(&g_cu, gdq, Ddq, nq * 2, &err);
    ea_cuda_get_bytes(&g_cu, gdk, Ddk, nk * 2, &err);
    ea_cuda_get_bytes(&g_cu, gdv, Ddv, nk * 2, &err);
    /* again: the same bits (every sum has one owner and one order) */
    CHECK(BF16_BWD == EA_OK, "%s", err.msg);
#undef BF16_FWD
#undef BF16_BWD
    ea_cuda_get_bytes(&g_cu, gdq2, Ddq, nq * 2, &err);
    CHECK(ea_cuda_sync(&g_cu, &err) == EA_OK, "%s", err.msg);
    for (i = 0; i < nl; i++) e_lse = fabs((double)glse[i] - lse[i]) > e_lse ? fabs((double)glse[i] - lse[i]) : e_lse;
    CHECK(rel_bf16(go, o, nq) < 5e-3 && e_lse < 1e-4 && rel_bf16(gdq, dq, nq) < 1.5e-2 && rel_bf16(gdk, dk, nk) < 1.5e-2 &&
          rel_bf16(gdv, dv, nk) < 1.5e-2,
          "attention bf16 %sB%d n%d H%d/%d dh%d%s: out %.2g, lse %.2g, dq %.2g, dk %.2g, dv %.2g", label ? label : "", B, n, H, Hkv,
          dh, causal ? " causal" : "", rel_bf16(go, o, nq), e_lse, rel_bf16(gdq, dq, nq), rel_bf16(gdk, dk, nk), rel_bf16(gdv, dv, nk));
    CHECK(!memcmp(gdq, gdq2, nq * 2), "attention bf16: a second backward gave other dq bits");
    printf("  attention bf16 %sB%d n%d H%d/%d dh%d%s: rel. error out %.1e, lse %.1e (abs), dq %.1e, dk %.1e, dv %.1e\n",
           label ? label : "", B, n, H, Hkv, dh, causal ? " causal" : "", rel_bf16(go, o, nq), e_lse, rel_bf16(gdq, dq, nq),
           rel_bf16(gdk, dk, nk), rel_bf16(gdv, dv, nk));
    CHECK(!label || ea_attention_fwd_bf16_pattern_cuda(&g_cu, Do, Dl, Dq, Dk, Dv, B, n, H, Hkv, dh, causal, NULL, &err) == EA_ERR_ARG,
          "bf16: a NULL pattern refused: %s", err.msg);
    tp.p.window = -1;
    tp.p.block = 0;
    tp.p.n_random = 0;
    CHECK(!label || (ea_attention_bwd_bf16_pattern_cuda(&g_cu, Ddq, Ddk, Ddv, Ddo, Do, Dl, Dq, Dk, Dv, B, n, H, Hkv, dh, causal,
                                                        &tp.p, &err) == EA_ERR_ARG && strstr(err.msg, "own key")),
          "bf16: a pattern that hides the diagonal refused: %s", err.msg);
    free(rand);
    ea_cuda_release(Drand);
    free(hq); free(hk); free(hv); free(hdo); free(go); free(gdq); free(gdk); free(gdv); free(gdq2);
    free(q); free(k); free(v); free(dout); free(o); free(lse); free(glse); free(dq); free(dk); free(dv); free(scratch);
    ea_cuda_release(Dq); ea_cuda_release(Dk); ea_cuda_release(Dv); ea_cuda_release(Do); ea_cuda_release(Dl);
    ea_cuda_release(Ddo); ea_cuda_release(Ddq); ea_cuda_release(Ddk); ea_cuda_release(Ddv);
}

static void test_attention_bf16(int B, int n, int H, int Hkv, int dh, int causal) {
    check_attention_bf16(B, n, H, Hkv, dh, causal, -1, 0, 0, 0, NULL);
}

/* The TF32 forward from fp32 buffers against the CPU's fp32 flash forward:
   TF32 keeps 10 of fp32's 23 mantissa bits, so ~1e-3 is rounding, not error. */
static void test_attention_tf32(int B, int n, int H, int Hkv, int dh, int causal) {
    size_t nq = (size_t)B * n * H * dh, nk = (size_t)B * n * Hkv * dh, nl = (size_t)B * H * n, i;
    float *q = host_rand(nq), *k = host_rand(nk), *v = host_rand(nk), *o = (float *)malloc(nq * 4), *lse = (float *)malloc(nl * 4);
    float *Dq, *Dk, *Dv, *Do, *Dl, *go, *gl, *scratch;
    ea_sdpa_shape sh;
    ea_error err;
    double e_lse = 0.0;
    sh = sdpa_shape(B, n, H, Hkv, dh, causal);
    for (i = 0; i < nq; i++) q[i] *= 2.0f;
    scratch = (float *)malloc(ea_sdpa_flash_scratch(&sh) * ea_num_threads() * sizeof(float));
    ea_sdpa_flash_fwd(o, lse, scratch, q, k, v, &sh, NULL, NULL);
    Dq = dev(q, nq); Dk = dev(k, nk); Dv = dev(v, nk); Do = dev(NULL, nq); Dl = dev(NULL, nl);
    CHECK(ea_attention_fwd_tf32_cuda(&g_cu, Do, Dl, Dq, Dk, Dv, B, n, H, Hkv, dh, causal, &err) == EA_OK, "%s", err.msg);
    go = back(Do, nq);
    gl = back(Dl, nl);
    for (i = 0; i < nl; i++) e_lse = fabs((double)gl[i] - lse[i]) > e_lse ? fabs((double)gl[i] - lse[i]) : e_lse;
    CHECK(rel(go, o, nq) < 5e-3 && e_lse < 2e-3, "attention tf32 B%d n%d H%d/%d dh%d%s: out %.2g, lse %.2g", B, n, H, Hkv, dh,
          causal ? " causal" : "", rel(go, o, nq), e_lse);
    printf("  attention tf32 B%d n%d H%d/%d dh%d%s: rel. error out %.1e, lse %.1e (abs)\n", B, n, H, Hkv, dh,
           causal ? " causal" : "", rel(go, o, nq), e_lse);
    free(q); free(k); free(v); free(o); free(lse); free(go); free(gl); free(scratch);
    ea_cuda_release(Dq); ea_cuda_release(Dk); ea_cuda_release(Dv); ea_cuda_release(Do); ea_cuda_release(Dl);
}

static void test_bf16_refusals(void) {
    ea_error err;
    void *p = dev_bytes(NULL, 4096);
    uint16_t *d = (uint16_t *)p;
    CHECK(ea_bf16_from_float(1.0f) == 0x3f80 && ea_bf16_from_float(1.00390625f) == 0x3f80 &&
              ea_bf16_from_float(1.01171875f) == 0x3f82 && ea_bf16_from_float(-2.0f) == 0xc000 &&
              ea_bf16_from_float(3.4028235e38f) == 0x7f80 && ea_bf16_to_float(0x3f81) == 1.0078125f &&
              ea_bf16_to_float(ea_bf16_from_float(NAN)) != ea_bf16_to_float(ea_bf16_from_float(NAN)),
          "bf16 rounding: to nearest, ties to even, overflow to infinity, NaN kept");
    CHECK(ea_attention_fwd_bf16_cuda(&g_cu, d, (float *)p, d, d, d, 1, 8, 2, 2, 48, 0, &err) == EA_ERR_SHAPE &&
              strstr(err.msg, "dh 32 or 64"),
          "dh 48 refused: %s", err.msg);
    CHECK(ea_attention_fwd_bf16_cuda(&g_cu, d, (float *)p, d + 1, d, d, 1, 8, 2, 2, 32, 0, &err) == EA_ERR_ARG &&
              strstr(err.msg, "misaligned"),
          "a misaligned q refused: %s", err.msg);
    CHECK(ea_attention_bwd_bf16_cuda(&g_cu, d, d, NULL, d, d, (float *)p, d, d, d, 1, 8, 2, 2, 32, 0, &err) == EA_ERR_ARG &&
              strstr(err.msg, "NULL"),
          "a NULL dv refused: %s", err.msg);
    CHECK(ea_attention_fwd_tf32_cuda(&g_cu, (float *)p, (float *)p, (float *)p, (float *)p, (float *)p, 1, 8, 2, 2, 16, 0, &err) ==
                  EA_ERR_SHAPE && strstr(err.msg, "attention tf32") && strstr(err.msg, "dh 32 or 64"),
          "tf32 dh 16 refused: %s", err.msg);
    CHECK(ea_attention_fwd_tf32_cuda(&g_cu, (float *)p, (float *)p, (float *)p + 1, (float *)p, (float *)p, 1, 8, 2, 2, 32, 0,
                                     &err) == EA_ERR_ARG && strstr(err.msg, "misaligned"),
          "tf32 misaligned q refused: %s", err.msg);
    ea_cuda_release(p);
}

static void test_adamw(void) {
    ea_params ps;
    ea_adamw opt;
    ea_error err;
    int shape[1] = {5000}, s;
    size_t i;
    float *Dp, *Dg, *Dm, *Dv, *gp;
    memset(&ps, 0, sizeof ps);
    ea_param(&ps, "w", 1, shape, EA_INIT_NORMAL, 1.0f);
    ea_params_alloc(&ps, &err);
    ea_params_init(&ps, 3);
    Dp = dev(ps.data, ps.n); Dg = dev(NULL, ps.n); Dm = dev(NULL, ps.n); Dv = dev(NULL, ps.n);
    ea_adamw_init(&opt, 1e-2f, 0.1f);
    for (s = 0; s < 5; s++) {
        for (i = 0; i < ps.n; i++) ps.grad[i] = ea_rng_range(&g_rng, -1.0f, 1.0f);
        ea_cuda_put(&g_cu, Dg, ps.grad, ps.n, &err);
        ea_adamw_step(&opt, &ps);
        CHECK(ea_adamw_cuda(&g_cu, Dp, Dg, Dm, Dv, ps.n, &opt, &err) == EA_OK, "%s", err.msg);
        ea_cuda_sync(&g_cu, &err);
    }
    gp = back(Dp, ps.n);
    CHECK(rel(gp, ps.data, ps.n) < 1e-6, "AdamW after 5 steps: %.2g", rel(gp, ps.data, ps.n));
    free(gp);
    ea_cuda_release(Dp); ea_cuda_release(Dg); ea_cuda_release(Dm); ea_cuda_release(Dv);
    ea_params_free(&ps);
}

/* The device ViT against ea_vit_forward on the CPU: random weights, a batch
   of 5 through the eager forward, then the graph at batch 1 and at 5 again
   (a new capture); the replayed graph must give the eager results exactly. */
static void test_vit_cuda(const char *row, int causal, int B) {
    ea_vit_config cfg;
    ea_vit m;
    ea_vit_cuda d;
    ea_ctx ctx;
    ea_error err;
    ea_tensor *x, *y;
    float *ge, *e1, *gy = (float *)malloc((size_t)B * 2 * sizeof(float)), g1[2];
    size_t i;
    int fused, blockwise, dh;
    ea_tracker_config_default(&cfg, row);
    cfg.causal = causal;
    if (ea_vit_init(&m, &cfg, 7, &err) != EA_OK) { CHECK(0, "%s: %s", row, err.msg); free(gy); return; }
    for (i = 0; i < m.params.n; i++) m.params.data[i] += 0.05f * ea_rng_range(&g_rng, -1.0f, 1.0f); /* no zero biases */
    ea_ctx_init(&ctx, 0);
    ctx.grad_enabled = 0;
    x = ea_tensor_4d(&ctx, B, 2, 32, 32, 0);
    for (i = 0; i < x->size; i++) x->data[i] = ea_rng_uniform(&g_rng);
    y = ea_vit_forward(&ctx, &m, x);
    if (ea_vit_cuda_init(&d, &g_cu, &m, B + 3, &err) != EA_OK) { CHECK(0, "%s: %s", row, err.msg); ea_ctx_free(&ctx); free(gy); ea_vit_free(&m); return; }
    dh = m.blocks[0].attn.head_dim; /* up to 32: a block an image */
    ea_vit_free(&m); /* the device model keeps nothing of the host's */
    fused = d.fused_max;
    blockwise = d.blockwise;
    d.fused_max = 0; /* the layer-by-layer kernels and the graph first */
    d.blockwise = 0;
    ea_cuda_put(&g_cu, ea_vit_cuda_input(&d), x->data, x->size, &err);
    CHECK(ea_vit_cuda_forward(&d, B, &err) == EA_OK, "%s", err.msg);
    ge = back(ea_vit_cuda_output(&d), (size_t)B * 2);
    CHECK(y && rel(ge, y->data, (size_t)B * 2) < 1e-4, "vit %s%s on the GPU: rel. error %.2g", row, causal ? " causal" : "",
          rel(ge, y->data, (size_t)B * 2));
    /* batch 1: cuBLAS may pick another algorithm for 64 rows than for 320,
       so the graph is held to the eager forward at the same batch */
    CHECK(ea_vit_cuda_forward(&d, 1, &err) == EA_OK, "%s", err.msg);
    e1 = back(ea_vit_cuda_output(&d), 2);
    CHECK(ea_vit_cuda_predict(&d, x->data, g1, 1, &err) == EA_OK && d.graph_batch == 1, "%s", err.msg);
    CHECK(g1[0] == e1[0] && g1[1] == e1[1], "%s: batch 1 through the graph (%g, %g), eager (%g, %g)", row, (double)g1[0],
          (double)g1[1], (double)e1[0], (double)e1[1]);
    CHECK(fabsf(e1[0] - y->data[0]) < 1e-4f && fabsf(e1[1] - y->data[1]) < 1e-4f, "%s: batch 1 against the CPU", row);
    free(e1);
    CHECK(ea_vit_cuda_predict(&d, x->data, gy, B, &err) == EA_OK && d.graph_batch == B, "%s", err.msg);
    CHECK(!memcmp(gy, ge, (size_t)B * 2 * sizeof(float)), "%s: the graph at batch %d differs from the eager forward", row, B);
    CHECK(ea_vit_cuda_predict(&d, x->data, gy, B + 4, &err) == EA_ERR_SHAPE && strstr(err.msg, "1 .. "), "batch %d of %d: %s", B + 4, B + 3, err.msg);
    CHECK(ea_vit_cuda_forward(&d, 0, &err) == EA_ERR_SHAPE, "batch 0: %s", err.msg);
    printf("  vit %s%s, batch %d: GPU against CPU rel. error %.1e\n", row, causal ? " causal" : "", B, rel(ge, y->data, (size_t)B * 2));
    /* the fused kernel, at the largest batch it takes (the tracker: 64 tasks an image, 132 blocks at once on an H200) */
    d.fused_max = fused;
    CHECK(fused >= 1, "%s: fused_max %d", row, fused);
    if (fused >= 1) {
        int bf = B < fused ? B : fused;
        size_t n = (size_t)bf * 2;
        float *gf = (float *)malloc(n * sizeof(float));
        CHECK(ea_vit_cuda_predict(&d, x->data, gf, bf, &err) == EA_OK, "%s", err.msg);
        CHECK(rel(gf, y->data, n) < 1e-4 && rel(gf, ge, n) < 1e-5, "%s: the fused forward at batch %d against the CPU %.2g, the graph %.2g",
              row, bf, rel(gf, y->data, n), rel(gf, ge, n));
        printf("  vit %s%s, batch %d, fused kernel: rel. error against the CPU %.1e, against the graph %.1e\n", row,
               causal ? " causal" : "", bf, rel(gf, y->data, n), rel(gf, ge, n));
        CHECK(ea_vit_cuda_predict(&d, x->data, gy, bf, &err) == EA_OK && !memcmp(gy, gf, n * sizeof(float)),
              "%s: the fused forward differs between two calls", row);
        free(gf);
    }
    d.fused_max = 1000; /* above what init made room for: batches past that still take the graph */
    CHECK(ea_vit_cuda_predict(&d, x->data, gy, B, &err) == EA_OK && rel(gy, ge, (size_t)B * 2) < 1e-5,
          "%s: fused_max raised past init's: %s", row, err.msg);
    d.fused_max = fused;
    /* a block an image: predict past fused_max (0 here, so at any batch) and forward, the same bits each way */
    d.blockwise = blockwise;
    d.fused_max = 0;
    CHECK(blockwise == (dh <= 32), "%s: blockwise %d with heads %d wide", row, blockwise, dh);
    if (blockwise) {
        size_t n = (size_t)B * 2;
        float *gb = (float *)malloc(n * sizeof(float)), *gf;
        CHECK(ea_vit_cuda_predict(&d, x->data, gb, B, &err) == EA_OK, "%s", err.msg);
        CHECK(rel(gb, y->data, n) < 1e-4 && rel(gb, ge, n) < 1e-5, "%s: a block an image at batch %d against the CPU %.2g, the graph %.2g",
              row, B, rel(gb, y->data, n), rel(gb, ge, n));
        printf("  vit %s%s, batch %d, a block an image: rel. error against the CPU %.1e, against the graph %.1e\n", row,
               causal ? " causal" : "", B, rel(gb, y->data, n), rel(gb, ge, n));
        ea_cuda_put(&g_cu, ea_vit_cuda_input(&d), x->data, x->size, &err);
        CHECK(ea_vit_cuda_forward(&d, B, &err) == EA_OK, "%s", err.msg);
        gf = back(ea_vit_cuda_output(&d), n);
        CHECK(!memcmp(gf, gb, n * sizeof(float)), "%s: forward and predict a block an image differ", row);
        free(gf);
        free(gb);
    }
    d.fused_max = fused;
    free(ge); free(gy);
    ea_vit_cuda_free(&d);
    ea_ctx_free(&ctx);
}

/* Seed 000's PyTorch-trained trackers on the GPU: the same 100 videos and
   mean errors as test_main's seed000 group (PyTorch's figures). */
/* mode 0: the graph at batch 49; 1: the fused kernel a pair at a time; 2: a block an image at batch 49 */
static void test_seed000_cuda(const char *row, double expect, int mode) {
    char path[256];
    ea_vit_config cfg;
    ea_vit m;
    ea_vit_cuda d;
    ea_error err;
    ea_safetensors st;
    const int V = 100, T = 50;
    float *frames = (float *)malloc((size_t)V * T * 1024 * 4), *pos = (float *)malloc((size_t)V * T * 2 * 4);
    float *x = (float *)malloc((size_t)(T - 1) * 2048 * 4), y[2 * 49];
    double sum = 0.0;
    int v, t, n = 0, within = 0;
    ea_tracker_config_default(&cfg, row);
    snprintf(path, sizeof path, "tests/data/seed000/%s.safetensors", row);
    if (ea_vit_init(&m, &cfg, 1, &err) != EA_OK || ea_params_load(&m.params, path, &err) != EA_OK ||
        ea_st_open(&st, "tests/data/seed000/videos.safetensors", &err) != EA_OK) {
        CHECK(0, "%s: %s", row, err.msg);
        free(frames); free(pos); free(x);
        return;
    }
    CHECK(ea_st_read(&st, "videos", frames, (size_t)V * T * 1024, &err) == EA_OK, "%s", err.msg);
    CHECK(ea_st_read(&st, "positions", pos, (size_t)V * T * 2, &err) == EA_OK, "%s", err.msg);
    ea_st_close(&st);
    CHECK(ea_vit_cuda_init(&d, &g_cu, &m, T - 1, &err) == EA_OK && (mode != 1 || d.fused_max >= 1) && (mode != 2 || d.blockwise),
          "%s", err.msg);
    if (mode == 0) d.blockwise = 0;
    for (v = 0; v < V && d.plan; v++) {
        for (t = 0; t < T - 1; t++) memcpy(x + (size_t)t * 2048, frames + ((size_t)v * T + t) * 1024, 2048 * 4);
        if (mode != 1 && ea_vit_cuda_predict(&d, x, y, T - 1, &err) != EA_OK) break;
        for (t = 0; mode == 1 && t < T - 1; t++) /* a pair at a time, as a robot would */
            if (ea_vit_cuda_predict(&d, x + (size_t)t * 2048, y + 2 * t, 1, &err) != EA_OK) break;
        if (mode == 1 && t < T - 1) break;
        for (t = 0; t < T - 1; t++) {
            const float *g = pos + ((size_t)v * T + t + 1) * 2;
            double dx = y[2 * t] - g[0], dy = y[2 * t + 1] - g[1], e = sqrt(dx * dx + dy * dy);
            sum += e;
            within += e < 2.0;
            n++;
        }
    }
    CHECK(n == V * 49, "%s: evaluated %d pairs: %s", row, n, err.msg);
    CHECK(n && fabs(sum / n - expect) < 1e-4 && within == n, "%s on the GPU: mean error %.6f px, PyTorch %.6f; %d of %d within 2 px",
          row, n ? sum / n : 0.0, expect, within, n);
    printf("  seed 000 %s on the GPU (%s): mean error %.6f px (PyTorch %.6f), %d of %d within 2 px\n", row,
           mode == 1 ? "fused kernel, batch 1" : mode == 2 ? "a block an image, batch 49" : "graph, batch 49", n ? sum / n : 0.0,
           expect, within, n);
    ea_vit_cuda_free(&d);
    ea_vit_free(&m);
    free(frames); free(pos); free(x);
}

/* Training on the GPU against the CPU's tape: the first step's gradient of
   every parameter tensor, then 20 AdamW steps (lr 1e-3, clip 0.5, so the
   clipping acts) on the same batches: the loss curve and the weights. */
/* Largest |a - b| over the largest |b| across the parameters, leaving out
   the key biases: they shift every score of a query alike, so softmax
   ignores them and their exact gradient is 0.  What the two devices compute
   for them is rounding noise, which AdamW (dividing by √v + 1e-8) turns
   into full-size steps of either sign: their values wander apart without
   changing a single output.  Any other entry whose gradient is near its
   rounding noise does the same on a smaller scale, so the bound on the
   weights after 20 steps is 3e-4 while the loss curve's stays 1e-4 (the
   same recipe on the CPU, built with and without SIMD, differs by 0.7-1.9e-5;
   GPU against CPU measured 2.3e-6 to 5.7e-5 across rows and batch draws,
   and 1.4e-4 for the bigbird classifier on one draw whose loss curve still
   agreed within 2.1e-6). */
static double rel_weights(const ea_vit *m, const float *a, const float *b) {
    double num = 0.0, den = 1e-12;
    int k;
    for (k = 0; k < m->params.count; k++) {
        const ea_tensor *t = m->params.tensors[k];
        const char *nm = m->params.tensors[k]->name;
        size_t i, off = (size_t)(t->data - m->params.data), klo = 0, khi = 0, L = strlen(nm);
        if (L > 11 && !strcmp(nm + L - 11, "k_proj.bias")) khi = t->size;
        if (L > 8 && !strcmp(nm + L - 8, "qkv.bias")) { klo = t->size / 3; khi = 2 * t->size / 3; } /* q, k, v of one width */
        for (i = 0; i < t->size; i++) {
            double e = fabs((double)a[off + i] - b[off + i]);
            if (i >= klo && i < khi) continue;
            num = e > num ? e : num;
            den = fabs(b[off + i]) > den ? fabs(b[off + i]) : den;
        }
    }
    return num / den;
}

/* classify: seed 002's classifier (a class token, 1x28x28 images, 10
   classes) trained by cross-entropy with label smoothing 0.1; else the
   tracker by MSE. */
static void test_vit_cuda_train(const char *row, int classify) {
    ea_vit_config cfg;
    ea_vit cpu, gpu;
    ea_vit_cuda d;
    ea_ctx ctx;
    ea_error err;
    ea_adamw oc, og;
    const int B = 8, steps = 20, px = classify ? 784 : 2048;
    float *x = (float *)malloc((size_t)B * 2048 * 4), t[16], *g = NULL, gl, worst_loss = 0.0f;
    int lab[8];
    double worst_grad = 0.0;
    const char *worst_name = "";
    int s, k;
    size_t i;
    if (classify) ea_classifier_config_default(&cfg, EA_HOST_VIT, row, 1, 28, 10);
    else ea_tracker_config_default(&cfg, row);
    if (ea_vit_init(&cpu, &cfg, 11, &err) != EA_OK || ea_vit_init(&gpu, &cfg, 11, &err) != EA_OK) {
        CHECK(0, "%s: %s", row, err.msg);
        free(x);
        return;
    }
    if (ea_vit_cuda_init(&d, &g_cu, &gpu, B, &err) != EA_OK) { CHECK(0, "%s: %s", row, err.msg); free(x); return; }
    ea_ctx_init(&ctx, 0);
    ea_adamw_init(&oc, 1e-3f, 0.01f);
    ea_adamw_init(&og, 1e-3f, 0.01f);
    for (s = 0; s < steps; s++) {
        ea_tensor *xt, *yt, *loss;
        for (i = 0; i < (size_t)B * px; i++) x[i] = ea_rng_uniform(&g_rng) < 0.1f ? 1.0f : 0.0f;
        for (k = 0; k < 2 * B; k++) t[k] = ea_rng_range(&g_rng, 4.0f, 28.0f);
        for (k = 0; k < B; k++) lab[k] = (int)ea_rng_below(&g_rng, 10);
        ea_ctx_reset(&ctx);
        ea_params_zero_grad(&cpu.params);
        xt = classify ? ea_tensor_4d(&ctx, B, 1, 28, 28, 0) : ea_tensor_4d(&ctx, B, 2, 32, 32, 0);
        yt = ea_tensor_2d(&ctx, B, 2, 0);
        memcpy(xt->data, x, xt->size * 4);
        memcpy(yt->data, t, yt->size * 4);
        loss = classify ? ea_cross_entropy_smooth(&ctx, ea_vit_forward(&ctx, &cpu, xt), lab, 0.1f)
                        : ea_mse_loss(&ctx, ea_vit_forward(&ctx, &cpu, xt), yt);
        if (!loss || ea_backward(&ctx, loss) != EA_OK) { CHECK(0, "CPU step: %s", ctx.err.msg); break; }
        if ((classify ? ea_vit_cuda_train_step_ce(&d, x, lab, B, 0, &og, 0.5f, 0.1f, &gl, &err)
                      : ea_vit_cuda_train_step(&d, x, t, B, 0, &og, 0.5f, &gl, &err)) != EA_OK) {
            CHECK(0, "GPU step: %s", err.msg);
            break;
        }
        if (s == 0) { /* the gradients, tensor by tensor (before clipping: d.grad is not scaled in place) */
            double top = 0.0;
            g = back(d.grad, d.n);
            for (i = 0; i < cpu.params.n; i++) top = fabs(cpu.params.grad[i]) > top ? fabs(cpu.params.grad[i]) : top;
            for (k = 0; k < cpu.params.count; k++) {
                /* against the tensor's largest gradient, or 1e-3 of the model's: a key bias has
                   none in exact arithmetic (it shifts every score of a query alike), only rounding */
                const ea_tensor *pt = cpu.params.tensors[k];
                const float *gg = g + (pt->data - cpu.params.data);
                double num = 0.0, den = 1e-3 * top, e;
                for (i = 0; i < pt->size; i++) {
                    num = fabs((double)gg[i] - pt->grad[i]) > num ? fabs((double)gg[i] - pt->grad[i]) : num;
                    den = fabs(pt->grad[i]) > den ? fabs(pt->grad[i]) : den;
                }
                e = num / den;
                if (e > worst_grad) { worst_grad = e; worst_name = pt->name; }
            }
            free(g);
        }
        if (fabsf(gl - loss->data[0]) / loss->data[0] > worst_loss) worst_loss = fabsf(gl - loss->data[0]) / loss->data[0];
        ea_grad_clip(&cpu.params, 0.5f);
        ea_adamw_step(&oc, &cpu.params);
    }
    CHECK(worst_grad < 1e-4, "%s: gradient of %s on the GPU off by %.2g (relative)", row, worst_name, worst_grad);
    CHECK(worst_loss < 1e-4f && og.step == steps, "%s: loss curve on the GPU off by %.2g over %d steps", row, (double)worst_loss,
          steps);
    CHECK(ea_vit_cuda_pull(&d, &gpu, &err) == EA_OK, "%s", err.msg);
    CHECK(rel_weights(&cpu, gpu.params.data, cpu.params.data) < 3e-4 && rel(gpu.params.v, cpu.params.v, cpu.params.n) < 1e-3,
          "%s: weights after %d steps off by %.2g (all of them: %.2g), v by %.2g", row, steps,
          rel_weights(&cpu, gpu.params.data, cpu.params.data), rel(gpu.params.data, cpu.params.data, cpu.params.n),
          rel(gpu.params.v, cpu.params.v, cpu.params.n));
    printf("  train %s%s: first gradient rel. error %.1e (worst: %s), loss curve %.1e, weights after %d steps %.1e "
           "(%.1e with the key biases)\n", row, classify ? " classifier (class token, cross-entropy)" : "", worst_grad, worst_name,
           (double)worst_loss, steps, rel_weights(&cpu, gpu.params.data, cpu.params.data),
           rel(gpu.params.data, cpu.params.data, cpu.params.n));
    if (classify) { /* the trained weights' logits through the predict graph, against the CPU's */
        float gy[80];
        ea_tensor *xt, *yc;
        ea_ctx_reset(&ctx);
        ctx.grad_enabled = 0;
        xt = ea_tensor_4d(&ctx, B, 1, 28, 28, 0);
        memcpy(xt->data, x, xt->size * 4);
        yc = ea_vit_forward(&ctx, &gpu, xt);
        k = d.fused_max < B ? d.fused_max : B; /* the fused kernel packs the trained weights again */
        CHECK(k >= 1 && ea_vit_cuda_predict(&d, x, gy, k, &err) == EA_OK && yc && rel(gy, yc->data, (size_t)k * 10) < 1e-4,
              "classifier logits on the GPU (fused, batch %d): %s %.2g", k, err.msg, yc ? rel(gy, yc->data, (size_t)k * 10) : 1.0);
        k = d.fused_max;
        d.fused_max = 0;
        CHECK(d.blockwise && ea_vit_cuda_predict(&d, x, gy, B, &err) == EA_OK && yc && rel(gy, yc->data, (size_t)B * 10) < 1e-4,
              "classifier logits on the GPU (a block an image): %s %.2g", err.msg, yc ? rel(gy, yc->data, (size_t)B * 10) : 1.0);
        d.blockwise = 0;
        CHECK(ea_vit_cuda_predict(&d, x, gy, B, &err) == EA_OK && yc && rel(gy, yc->data, (size_t)B * 10) < 1e-4,
              "classifier logits on the GPU (graph): %s %.2g", err.msg, yc ? rel(gy, yc->data, (size_t)B * 10) : 1.0);
        d.fused_max = k;
        d.blockwise = 1;
        lab[3] = 10;
        CHECK(ea_vit_cuda_train_step_ce(&d, x, lab, B, 0, &og, 0.5f, 0.1f, NULL, &err) == EA_ERR_ARG && strstr(err.msg, "label 10"),
              "label 10 of 10 classes: %s", err.msg);
        lab[3] = 0;
        CHECK(ea_vit_cuda_train_step_ce(&d, x, lab, B, 0, &og, 0.5f, 1.5f, NULL, &err) == EA_ERR_ARG, "smoothing 1.5: %s", err.msg);
    }
    CHECK(ea_vit_cuda_train_step(&d, x, t, B + 1, 0, &og, 0.5f, NULL, &err) == EA_ERR_SHAPE, "batch 9 of 8: %s", err.msg);
    CHECK(ea_vit_cuda_train_step(&d, x, t, B, 0, &og, -1.0f, NULL, &err) == EA_ERR_ARG, "clip -1: %s", err.msg);
    ea_vit_cuda_free(&d);
    ea_ctx_free(&ctx);
    ea_vit_free(&cpu);
    ea_vit_free(&gpu);
    free(x);
}

/* Two ranks that hold the same gradient (their batches alike): the sum
   is twice it, through the host (a stand-in for NCCL's all-reduce). */
typedef struct twin_ranks {
    ea_cuda *cu;
    float *host;
    size_t n;
    int calls;
} twin_ranks;
static ea_status twin_allreduce(void *user, float *buf, size_t n, ea_error *err) {
    twin_ranks *t = (twin_ranks *)user;
    ea_status st;
    size_t i;
    t->calls++;
    if (n != t->n) return ea_error_set(err, EA_ERR_ARG, "twin all-reduce: %zu floats; expected %zu", n, t->n);
    if ((st = ea_cuda_get(t->cu, t->host, buf, n, err)) != EA_OK || (st = ea_cuda_sync(t->cu, err)) != EA_OK) return st;
    for (i = 0; i < n; i++) t->host[i] *= 2.0f;
    return ea_cuda_put(t->cu, buf, t->host, n, err); /* stream-ordered before the update */
}

/* Data-parallel steps (ea_vit_cuda_dist): as rank 0 of 2 whose twin has
   the same batch, a step weights the gradient by 1/2, the all-reduce
   doubles it, and the gradient and the update are the single process's to
   the bit (both factors exact); the hook is called once a step with the
   whole flat gradient; going back to one rank restores the one-graph step;
   bad distributions and global batches are refused.  The gradient is
   compared itself: a step that skipped the weighting still gave the same
   weights and moments on the H200 (clipping to a norm, then AdamW's
   m / sqrt(v), undo a factor of 2), and only that check caught it. */
static void test_vit_cuda_dist(void) {
    ea_vit_config cfg;
    ea_vit m1, m2;
    ea_vit_cuda d1, d2;
    ea_error err;
    ea_adamw o1, o2;
    ea_dist dist;
    twin_ranks tw;
    const int B = 4, steps = 3;
    float *x = (float *)malloc((size_t)B * 2048 * 4), t[8], l1 = 0.0f, l2 = 0.0f;
    int s, k, ok = 1, failed = g_fail, made;
    size_t i;
    ea_tracker_config_default(&cfg, "mha");
    memset(&tw, 0, sizeof tw);
    /* what was made before a failure is freed: made counts the four */
    made = !x ? 0 : ea_vit_init(&m1, &cfg, 5, &err) != EA_OK ? 0 : ea_vit_init(&m2, &cfg, 5, &err) != EA_OK ? 1
             : ea_vit_cuda_init(&d1, &g_cu, &m1, B, &err) != EA_OK ? 2 : ea_vit_cuda_init(&d2, &g_cu, &m2, B, &err) != EA_OK ? 3 : 4;
    if (made < 4) {
        CHECK(0, "dist: %s", x ? err.msg : "out of memory");
        if (made > 2) ea_vit_cuda_free(&d1);
        if (made > 1) ea_vit_free(&m2);
        if (made > 0) ea_vit_free(&m1);
        free(x);
        return;
    }
    tw.cu = &g_cu;
    tw.n = d2.n;
    tw.host = (float *)malloc(d2.n * sizeof(float));
    dist.rank = 0;
    dist.size = 2;
    dist.allreduce = twin_allreduce;
    dist.user = &tw;
    CHECK(tw.host && ea_vit_cuda_dist(&d2, &dist, &err) == EA_OK, "dist: %s", err.msg);
    ea_adamw_init(&o1, 1e-3f, 0.01f);
    ea_adamw_init(&o2, 1e-3f, 0.01f);
    for (s = 0; s < steps && ok && tw.host; s++) {
        for (i = 0; i < (size_t)B * 2048; i++) x[i] = ea_rng_uniform(&g_rng) < 0.1f ? 1.0f : 0.0f;
        for (k = 0; k < 2 * B; k++) t[k] = ea_rng_range(&g_rng, 4.0f, 28.0f);
        ok = ea_vit_cuda_train_step(&d1, x, t, B, 0, &o1, 0.5f, &l1, &err) == EA_OK &&
             ea_vit_cuda_train_step(&d2, x, t, B, 0, &o2, 0.5f, &l2, &err) == EA_OK;
        CHECK(ok, "dist step %d: %s", s, err.msg);
    }
    CHECK(ok && tw.calls == steps && l1 == l2, "dist: %d all-reduce calls in %d steps; losses %.9g and %.9g", tw.calls, steps,
          (double)l1, (double)l2);
    if (ok) { /* the last step's gradient, weighted by 1/2 and summed (clipping leaves d.grad as it is) */
        float *g1 = back(d1.grad, d1.n), *g2 = back(d2.grad, d2.n);
        CHECK(g1 && g2 && !memcmp(g1, g2, d1.n * sizeof(float)), "dist: the summed gradient differs from one process's (rel. %.2g)",
              g1 && g2 ? rel(g2, g1, d1.n) : 1.0);
        free(g1);
        free(g2);
    }
    if (ok && ea_vit_cuda_pull(&d1, &m1, &err) == EA_OK && ea_vit_cuda_pull(&d2, &m2, &err) == EA_OK)
        CHECK(!memcmp(m1.params.data, m2.params.data, m1.params.n * sizeof(float)) &&
              !memcmp(m1.params.m, m2.params.m, m1.params.n * sizeof(float)),
              "dist: 2 ranks' weights after %d steps differ from one process's (rel. %.2g)", steps,
              rel(m2.params.data, m1.params.data, m1.params.n));
    else
        CHECK(0, "dist: %s", err.msg);
    /* an uneven split: this rank's 4 of 10 images */
    CHECK(ea_vit_cuda_train_step(&d2, x, t, B, 10, &o2, 0.5f, NULL, &err) == EA_OK && tw.calls == steps + 1, "dist, 4 of 10: %s",
          err.msg);
    CHECK(ea_vit_cuda_train_step(&d2, x, t, B, 3, &o2, 0.5f, NULL, &err) == EA_ERR_ARG && strstr(err.msg, "global batch of 3"),
          "global batch 3 under a batch of 4: %s", err.msg);
    CHECK(ea_vit_cuda_train_step(&d2, x, t, B, -1, &o2, 0.5f, NULL, &err) == EA_ERR_ARG && strstr(err.msg, "global batch -1"),
          "global batch -1: %s", err.msg);
    ea_dist_single(&dist);
    k = tw.calls;
    CHECK(ea_vit_cuda_dist(&d2, &dist, &err) == EA_OK && ea_vit_cuda_train_step(&d2, x, t, B, 0, &o2, 0.5f, NULL, &err) == EA_OK &&
          tw.calls == k, "dist back to one rank: %s (%d calls)", err.msg, tw.calls - k);
    CHECK(ea_vit_cuda_train_step(&d2, x, t, B, 8, &o2, 0.5f, NULL, &err) == EA_ERR_ARG, "one rank, global batch 8: %s", err.msg);
    dist.size = 2;
    dist.allreduce = NULL;
    CHECK(ea_vit_cuda_dist(&d2, &dist, &err) == EA_ERR_ARG && strstr(err.msg, "no allreduce"), "2 ranks, no function: %s", err.msg);
    dist.allreduce = twin_allreduce;
    dist.rank = 2;
    CHECK(ea_vit_cuda_dist(&d2, &dist, &err) == EA_ERR_ARG, "rank 2 of 2: %s", err.msg);
    CHECK(ea_vit_cuda_dist(NULL, &dist, &err) == EA_ERR_ARG, "no model: %s", err.msg);
    if (g_fail == failed)
        printf("  data-parallel steps (2 ranks through a host all-reduce): %d steps, gradient, weights and moments equal to one "
               "process's\n", steps);
    ea_vit_cuda_free(&d1);
    ea_vit_cuda_free(&d2);
    ea_vit_free(&m1);
    ea_vit_free(&m2);
    free(tw.host);
    free(x);
}

/* Seed 002's classifier on 32x32 colour images: 65 tokens with the class
   token, so the block-an-image forward takes its six-tile shape (rows 65
   .. 95 padding), against the CPU and the layer-by-layer graph. */
static void test_vit_cuda_blockwise_65(void) {
    ea_vit_config cfg;
    ea_vit m;
    ea_vit_cuda d;
    ea_ctx ctx;
    ea_error err;
    ea_tensor *x, *y;
    const int B = 7;
    float gb[70], gg[70];
    size_t i;
    ea_classifier_config_default(&cfg, EA_HOST_VIT, "mha", 3, 32, 10);
    if (ea_vit_init(&m, &cfg, 5, &err) != EA_OK) { CHECK(0, "%s", err.msg); return; }
    for (i = 0; i < m.params.n; i++) m.params.data[i] += 0.05f * ea_rng_range(&g_rng, -1.0f, 1.0f);
    ea_ctx_init(&ctx, 0);
    ctx.grad_enabled = 0;
    x = ea_tensor_4d(&ctx, B, 3, 32, 32, 0);
    for (i = 0; i < x->size; i++) x->data[i] = ea_rng_uniform(&g_rng);
    y = ea_vit_forward(&ctx, &m, x);
    if (ea_vit_cuda_init(&d, &g_cu, &m, B, &err) != EA_OK) { CHECK(0, "%s", err.msg); ea_ctx_free(&ctx); ea_vit_free(&m); return; }
    d.fused_max = 0;
    CHECK(d.blockwise == 1 && ea_vit_cuda_predict(&d, x->data, gb, B, &err) == EA_OK, "blockwise %d: %s", d.blockwise, err.msg);
    d.blockwise = 0;
    CHECK(ea_vit_cuda_predict(&d, x->data, gg, B, &err) == EA_OK, "%s", err.msg);
    CHECK(y && rel(gb, y->data, (size_t)B * 10) < 1e-4 && rel(gb, gg, (size_t)B * 10) < 1e-5,
          "classifier 3x32x32 (65 tokens), a block an image: against the CPU %.2g, the graph %.2g", y ? rel(gb, y->data, (size_t)B * 10) : 1.0,
          rel(gb, gg, (size_t)B * 10));
    printf("  vit classifier 3x32x32 (65 tokens), batch %d, a block an image: rel. error against the CPU %.1e, against the graph %.1e\n",
           B, y ? rel(gb, y->data, (size_t)B * 10) : 1.0, rel(gb, gg, (size_t)B * 10));
    ea_vit_cuda_free(&d);
    ea_ctx_free(&ctx);
    ea_vit_free(&m);
}

/* What the device path does not run is refused by name. */
static void test_vit_cuda_refusals(void) {
    ea_vit_config cfg;
    ea_vit m;
    ea_vit_cuda d;
    ea_error err;
    ea_tracker_config_default(&cfg, "performer");
    if (ea_vit_init(&m, &cfg, 1, &err) == EA_OK) {
        CHECK(ea_vit_cuda_init(&d, &g_cu, &m, 4, &err) == EA_ERR_CONFIG && strstr(err.msg, "'performer'") && d.plan == NULL,
              "performer on the GPU: %s", err.msg);
        ea_vit_free(&m);
    }
    ea_classifier_config_default(&cfg, EA_HOST_CNN, "mha", 3, 32, 10);
    if (ea_vit_init(&m, &cfg, 1, &err) == EA_OK) {
        CHECK(ea_vit_cuda_init(&d, &g_cu, &m, 4, &err) == EA_ERR_CONFIG && strstr(err.msg, "cnn host"), "cnn host: %s", err.msg);
        ea_vit_free(&m);
    }
    ea_tracker_config_default(&cfg, "mha");
    if (ea_vit_init(&m, &cfg, 1, &err) == EA_OK) {
        CHECK(ea_vit_cuda_init(&d, &g_cu, &m, 0, &err) == EA_ERR_ARG && strstr(err.msg, "max_batch 0"), "max_batch 0: %s", err.msg);
        ea_vit_free(&m);
    }
}

/* --kernels: the kernel tests only (what racecheck reads: the models'
   tests add nothing to its shared-memory checks and take minutes under it) */
int main(int argc, char **argv) {
    ea_error err;
    ea_cuda bad;
    float *huge = NULL;
    int kernels_only = argc > 1 && !strcmp(argv[1], "--kernels"), fused_only = argc > 1 && !strcmp(argv[1], "--fused");
    ea_rng_seed(&g_rng, 1, 1);
    if (ea_cuda_init(&g_cu, 0, &err) != EA_OK) {
        printf("test_cuda: no usable GPU: %s\n0 passed, 1 failed\n", err.msg);
        return 1;
    }
    {
        struct cudaDeviceProp p;
        cudaGetDeviceProperties(&p, 0);
        printf("effattn CUDA tests on %s (sm_%d%d)\n", p.name, p.major, p.minor);
    }
    CHECK(ea_cuda_init(&bad, 99, &err) == EA_ERR_ARG && strstr(err.msg, "device 99"), "a missing device: %s", err.msg);
    CHECK(ea_cuda_alloc(&g_cu, &huge, (size_t)1 << 42, &err) == EA_ERR_NOMEM && huge == NULL, "16 TiB refused: %s", err.msg);
    CHECK(ea_attention_fwd_cuda(&g_cu, NULL, NULL, NULL, NULL, NULL, 1, 4, 2, 2, 300, 0, &err) == EA_ERR_SHAPE,
          "dh 300 refused: %s", err.msg);
    test_linear(64, 48, 144);
    test_linear(257, 192, 48);
    test_layernorm(257, 48);
    test_layernorm(31, 300);
    test_pointwise();
    if (fused_only) { /* racecheck's share of the models: the fused forward (and the graph beside it) */
        test_vit_cuda("mha", 0, 2);
        test_vit_cuda("gqa", 1, 3);
        goto done;
    }
    test_attention(2, 65, 4, 4, 12, 0);   /* the classifier's heads */
    test_attention(1, 130, 8, 2, 64, 1);  /* GQA, causal */
    test_attention(2, 33, 2, 1, 80, 0);   /* MQA, dh over two lanes' worth */
    test_attention(3, 64, 4, 2, 16, 1);   /* the tracker's sequence: the short kernel, causal */
    test_attention(2, 64, 2, 2, 64, 0);   /* wide heads: the rows forward (the short backward's staging is too big) */
    test_attention(2, 32, 2, 2, 64, 1);   /* the rows forward and the short backward at dh 64, causal */
    test_attention(2, 50, 4, 1, 16, 0);   /* the short backward with 4 query heads a K/V head */
    test_attention(1, 500, 4, 2, 32, 1);  /* the 3xTF32 backward (too long for the short one), dh 32, causal */
    test_attention(2, 400, 2, 1, 12, 0);  /* ... dh 12, padded to 16 */
    /* patterns through every fp32 kernel: the 3xTF32 forward, skipping tiles, with the warp-a-row backward
       (n 300 dh 16, n 1100 dh 64), the short kernels both ways (dh 18: not for tensor cores), the rows
       forward (n 64, dh 80), the warp-a-row forward (n 200, dh 80) */
    check_attention(2, 300, 4, 2, 16, 0, 5, 0, 0, 0, "local w 5 ");
    check_attention(1, 1100, 2, 1, 64, 1, -1, 16, 16, 2, "bigbird block 16, 2 random ");
    check_attention(2, 100, 4, 2, 18, 1, 7, 2, 0, 0, "localglobal w 7, 2 global ");
    check_attention(2, 64, 2, 2, 80, 0, 4, 3, 0, 0, "localglobal w 4, 3 global ");
    check_attention(1, 200, 2, 1, 80, 0, -1, 2, 32, 2, "bigbird block 32, 2 random ");
    /* bf16 with patterns: bands far narrower than a tile and wider (tiles skipped, wholly and partly shown), random
       blocks aligned to tiles (dK/dV's bits) and not, global tokens */
    check_attention_bf16(1, 1000, 2, 1, 64, 1, 100, 0, 0, 0, "local w 100 ");
    check_attention_bf16(2, 700, 4, 2, 32, 0, 3, 0, 0, 0, "local w 3 ");
    check_attention_bf16(2, 1024, 4, 2, 64, 0, -1, 2, 64, 3, "bigbird block 64, 3 random ");
    check_attention_bf16(1, 900, 2, 2, 32, 1, -1, 5, 16, 2, "bigbird block 16, 2 random ");
    check_attention_bf16(1, 500, 2, 1, 64, 0, 40, 3, 0, 0, "localglobal w 40, 3 global ");
    test_attention_bf16(2, 200, 4, 4, 64, 0);  /* a partial last tile */
    test_attention_bf16(1, 130, 8, 2, 64, 1);  /* GQA, causal */
    test_attention_bf16(2, 96, 2, 1, 32, 1);   /* MQA, dh 32 */
    test_attention_bf16(1, 1024, 2, 2, 64, 0); /* 16 tiles */
    test_attention_bf16(1, 1000, 2, 1, 64, 1);
    test_attention_tf32(2, 200, 4, 4, 64, 0);
    test_attention_tf32(1, 130, 8, 2, 64, 1);
    test_attention_tf32(2, 96, 2, 1, 32, 1);
    test_attention_tf32(1, 1000, 2, 1, 64, 1);
    test_bf16_refusals();
    test_adamw();
    if (kernels_only) goto done;
    test_vit_cuda("mha", 0, 5);
    test_vit_cuda("mha", 0, 70); /* 4,480 token rows: other cuBLAS kernels, many attention blocks */
    test_vit_cuda("single", 0, 5);
    test_vit_cuda("mha-sep", 0, 5);
    test_vit_cuda("mqa", 0, 5);
    test_vit_cuda("gqa", 1, 5);
    test_vit_cuda("local", 0, 5);   /* a band of half-width 8 over 64 tokens */
    test_vit_cuda("local", 1, 5);
    test_vit_cuda("bigbird", 0, 5); /* block band, a global block, a random block a query block */
    test_vit_cuda_train("mha", 0);
    test_vit_cuda_train("gqa", 0);
    test_vit_cuda_train("mha", 1);
    test_vit_cuda_train("gqa", 1);
    test_vit_cuda_train("local", 0);
    test_vit_cuda_train("bigbird", 1);
    test_vit_cuda_dist();
    test_vit_cuda_refusals();
    test_vit_cuda_blockwise_65();
    test_seed000_cuda("mha", 0.131222, 0);
    test_seed000_cuda("mqa", 0.236205, 0);
    test_seed000_cuda("mha", 0.131222, 1);
    test_seed000_cuda("mha", 0.131222, 2);
    test_seed000_cuda("mqa", 0.236205, 2);
done:
    CHECK(ea_cuda_sync(&g_cu, &err) == EA_OK, "%s", err.msg);
    ea_cuda_free(&g_cu);
    printf("%d passed, %d failed\n", g_pass, g_fail);
    return g_fail ? 1 : 0;
}
