/* effattn on the GPU: the tracker's inference and exact attention, timed.
   Build (nvcc and a GPU): nvcc -x cu -O2 -arch=sm_90 -DEFFATTN_CUDA bench/bench_cuda.c -o build/bench_cuda -lcublas -lcublasLt
   Run: build/bench_cuda [--json | --profile] [--tracker] ; bench/peers/torch_cuda_peer.py puts PyTorch beside it.

   tracker rows: seed 000's tracker (random weights: speed does not depend on them)
     b1_ms         one frame pair from host memory to a host (x, y) by ea_vit_cuda_predict:
                   the fused forward kernel, reading and writing mapped pinned memory
     b1_graph_ms   the same replaying the captured graph instead (fused_max 0, blockwise 0)
     b1_copies_ms  the graph path's copies in and out and the wait alone, no forward
     b1_eager_ms   the same with the ~40 kernels launched one by one
     b1024_fps     frames a second at batch 1024, input and output in host memory (a block an image)
     b1024_dev_fps the same with the input already on the device (the kernel alone)
     b1024_graph_fps, b1024_graph_dev_fps  the same two through the layer-by-layer graph (blockwise 0)
     train32_ms    one AdamW training step at batch 32 (clip 1) from host arrays,
                   its loss read back (what track --device cuda does every step)
   attention rows: ea_attention_fwd_cuda / _bwd_cuda, fp32 (the forward in 3xTF32 on tensor cores), B 4, H 8, dh 64,
                   n 1024 and 4096;
   attention_tf32 rows: the forward on TF32 tensor cores from fp32 buffers, n 1024, 4096 and 16384;
   attention_bf16 rows: the tensor-core kernels (_bf16_cuda), n 1024, 4096 and 16384;
   pattern rows (--patterns, or with the others): the same shapes restricted to local (window 256) and bigbird
                   (block 64, block_window 1, 2 global tokens, 3 random blocks a query block), bf16 forward and
                   forward + backward and the fp32 forward (3xTF32), n 4096 and 16384: the tiles a pattern hides
                   are skipped, so the time falls with the pattern's work; the TFLOP/s figures count exact
                   attention's FLOPs (an effective rate, not the hardware's). */
#define EFFATTN_IMPLEMENTATION
#include "../effattn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* median seconds of `runs` calls of fn after `warm` */
#define MEDIAN(result, warm, runs, body)                          \
    do {                                                          \
        double t_[201];                                           \
        int r_;                                                   \
        for (r_ = 0; r_ < (warm); r_++) { body; }                 \
        for (r_ = 0; r_ < (runs); r_++) {                         \
            double t0_ = ea_time_sec();                           \
            body;                                                 \
            t_[r_] = ea_time_sec() - t0_;                         \
        }                                                         \
        qsort(t_, (size_t)(runs), sizeof(double), cmp_double);    \
        (result) = t_[(runs) / 2];                                \
    } while (0)

static void die(const char *what, const ea_error *err) {
    fprintf(stderr, "bench_cuda: %s: %s\n", what, err->msg);
    exit(1);
}

static void bench_tracker(ea_cuda *cu, const char *row, int json) {
    ea_vit_config cfg;
    ea_vit m;
    ea_vit_cuda d;
    ea_error err;
    ea_rng rng;
    const int big = 1024;
    float *x = (float *)malloc((size_t)big * 2048 * sizeof(float)), *y = (float *)malloc((size_t)big * 2 * sizeof(float));
    double b1, b1g, b1c, b1e, bb, bd, gb, gd, tr;
    int fused, blockwise;
    ea_adamw opt;
    float t[64], loss;
    size_t i;
    ea_rng_seed(&rng, 3, 1);
    for (i = 0; i < (size_t)big * 2048; i++) x[i] = ea_rng_uniform(&rng);
    ea_tracker_config_default(&cfg, row);
    if (ea_vit_init(&m, &cfg, 1, &err) != EA_OK) die("init", &err);
    if (ea_vit_cuda_init(&d, cu, &m, big, &err) != EA_OK) die("placing the model", &err);
    MEDIAN(b1, 200, 201, if (ea_vit_cuda_predict(&d, x, y, 1, &err) != EA_OK) die("predict", &err));
    fused = d.fused_max;
    blockwise = d.blockwise;
    d.fused_max = 0;
    d.blockwise = 0;
    MEDIAN(b1g, 200, 201, if (ea_vit_cuda_predict(&d, x, y, 1, &err) != EA_OK) die("predict", &err));
    d.fused_max = fused;
    MEDIAN(b1c, 200, 201, {
        ea_cuda_put(cu, ea_vit_cuda_input(&d), x, 2048, &err);
        ea_cuda_get(cu, y, ea_vit_cuda_output(&d), 2, &err);
        ea_cuda_sync(cu, &err);
    });
    MEDIAN(b1e, 50, 201, {
        ea_cuda_put(cu, ea_vit_cuda_input(&d), x, 2048, &err);
        if (ea_vit_cuda_forward(&d, 1, &err) != EA_OK) die("forward", &err);
        ea_cuda_get(cu, y, ea_vit_cuda_output(&d), 2, &err);
        ea_cuda_sync(cu, &err);
    });
    MEDIAN(gb, 5, 31, if (ea_vit_cuda_predict(&d, x, y, big, &err) != EA_OK) die("predict", &err));
    MEDIAN(gd, 5, 31, {
        cudaGraphLaunch((cudaGraphExec_t)d.graph, (cudaStream_t)cu->stream);
        ea_cuda_sync(cu, &err);
    });
    d.blockwise = blockwise;
    MEDIAN(bb, 5, 31, if (ea_vit_cuda_predict(&d, x, y, big, &err) != EA_OK) die("predict", &err));
    MEDIAN(bd, 5, 31, {
        if (ea_vit_cuda_forward(&d, big, &err) != EA_OK) die("forward", &err);
        ea_cuda_sync(cu, &err);
    });
    for (i = 0; i < 64; i++) t[i] = ea_rng_range(&rng, 4.0f, 28.0f);
    ea_adamw_init(&opt, 1e-4f, 0.01f);
    MEDIAN(tr, 20, 201, if (ea_vit_cuda_train_step(&d, x, t, 32, 0, &opt, 1.0f, &loss, &err) != EA_OK) die("train step", &err));
    if (json)
        printf("{\"group\": \"tracker\", \"attn\": \"%s\", \"b1_ms\": %.5f, \"b1_graph_ms\": %.5f, \"b1_copies_ms\": %.5f, "
               "\"b1_eager_ms\": %.5f, \"b1024_fps\": %.0f, \"b1024_dev_fps\": %.0f, \"b1024_graph_fps\": %.0f, "
               "\"b1024_graph_dev_fps\": %.0f, \"blockwise\": %d, \"train32_ms\": %.5f}\n", row, b1 * 1e3, b1g * 1e3, b1c * 1e3,
               b1e * 1e3, big / bb, big / bd, big / gb, big / gd, blockwise, tr * 1e3);
    else
        printf("tracker %-4s batch 1: %.4f ms (fused kernel), %.4f ms (graph), %.4f ms (eager), %.4f ms of it the copies; "
               "batch %d: %.0f frames/s (%.0f with the input on the device) %s, %.0f (%.0f) through the graph; "
               "training step at batch 32: %.4f ms\n", row, b1 * 1e3, b1g * 1e3, b1e * 1e3, b1c * 1e3, big, big / bb, big / bd,
               blockwise ? "a block an image" : "(blockwise off: the graph)", big / gb, big / gd, tr * 1e3);
    ea_vit_cuda_free(&d);
    ea_vit_free(&m);
    free(x);
    free(y);
}

/* Exact attention at B 4, H 8, dh 64: fp32 (ea_attention_*_cuda), bf16 on
   tensor cores (ea_attention_*_bf16_cuda) or the forward on TF32 tensor
   cores from fp32 buffers (ea_attention_fwd_tf32_cuda; its backward is the
   fp32 kernel's, not timed again); FLOPs as FlashAttention counts them:
   4·B·H·n²·dh forward, 2.5 times that backward. */
enum { ATT_FP32, ATT_BF16, ATT_TF32 };
static void bench_attention(ea_cuda *cu, int n, int kind, const char *pname, int json) {
    static const char *const group[] = {"attn", "attn_bf16", "attn_tf32"}, *const label[] = {"fp32", "bf16", "tf32"};
    const int bf16 = kind == ATT_BF16;
    const int B = 4, H = 8, dh = 64;
    size_t sz = (size_t)B * n * H * dh, el = bf16 ? 2 : 4, i;
    void *q, *k, *v, *o, *dq, *dk, *dv, *h = malloc(sz * el);
    float *l;
    double tf, tb, flops = 4.0 * B * H * (double)n * n * dh;
    ea_cuda_pattern pat, *pp = NULL;
    int *rnd = NULL;
    ea_error err;
    ea_rng rng;
    ea_rng_seed(&rng, 5, 1);
    memset(&pat, 0, sizeof pat);
    if (pname) { /* local: a band of 256 either side; bigbird: as the bigbird row, blocks of a tile */
        int nb = (n + 63) / 64, *hr = (int *)malloc((size_t)nb * 3 * sizeof(int));
        pp = &pat;
        pat.window = -1;
        if (!strcmp(pname, "local")) pat.window = 256;
        else {
            pat.block = 64; pat.block_window = 1; pat.n_global = 2; pat.n_random = 3;
            for (i = 0; i < (size_t)nb * 3; i++) hr[i] = (int)ea_rng_below(&rng, (uint32_t)nb);
            if (ea_cuda_alloc_bytes(cu, (void **)&rnd, (size_t)nb * 3 * sizeof(int), &err) ||
                ea_cuda_put_bytes(cu, rnd, hr, (size_t)nb * 3 * sizeof(int), &err))
                die("allocating", &err);
            pat.rand = rnd;
        }
        free(hr);
    }
    for (i = 0; i < sz; i++) {
        float x = ea_rng_range(&rng, -1.0f, 1.0f);
        if (bf16) ((uint16_t *)h)[i] = ea_bf16_from_float(x);
        else ((float *)h)[i] = x;
    }
    if (ea_cuda_alloc_bytes(cu, &q, sz * el, &err) || ea_cuda_alloc_bytes(cu, &k, sz * el, &err) ||
        ea_cuda_alloc_bytes(cu, &v, sz * el, &err) || ea_cuda_alloc_bytes(cu, &o, sz * el, &err) ||
        ea_cuda_alloc(cu, &l, (size_t)B * H * n, &err) || ea_cuda_alloc_bytes(cu, &dq, sz * el, &err) ||
        ea_cuda_alloc_bytes(cu, &dk, sz * el, &err) || ea_cuda_alloc_bytes(cu, &dv, sz * el, &err))
        die("allocating", &err);
    ea_cuda_put_bytes(cu, q, h, sz * el, &err);
    ea_cuda_put_bytes(cu, k, h, sz * el, &err);
    ea_cuda_put_bytes(cu, v, h, sz * el, &err);
#define EA_BENCH_FWD                                                                                                    \
    (bf16 && pp ? ea_attention_fwd_bf16_pattern_cuda(cu, (uint16_t *)o, l, (uint16_t *)q, (uint16_t *)k, (uint16_t *)v, B, n, H, \
                                                     H, dh, 0, pp, &err)                                               \
     : bf16 ? ea_attention_fwd_bf16_cuda(cu, (uint16_t *)o, l, (uint16_t *)q, (uint16_t *)k, (uint16_t *)v, B, n, H, H, dh, 0, \
                                         &err)                                                                         \
     : kind == ATT_TF32 ? ea_attention_fwd_tf32_cuda(cu, (float *)o, l, (float *)q, (float *)k, (float *)v, B, n, H, H, dh, 0, \
                                                     &err)                                                             \
     : pp ? ea_attention_fwd_pattern_cuda(cu, (float *)o, l, (float *)q, (float *)k, (float *)v, B, n, H, H, dh, 0, pp, &err) \
          : ea_attention_fwd_cuda(cu, (float *)o, l, (float *)q, (float *)k, (float *)v, B, n, H, H, dh, 0, &err))
#define EA_BENCH_BWD                                                                                                     \
    (bf16 && pp ? ea_attention_bwd_bf16_pattern_cuda(cu, (uint16_t *)dq, (uint16_t *)dk, (uint16_t *)dv, (uint16_t *)o,     \
                                                     (uint16_t *)o, l, (uint16_t *)q, (uint16_t *)k, (uint16_t *)v, B, n, \
                                                     H, H, dh, 0, pp, &err)                                            \
     : bf16 ? ea_attention_bwd_bf16_cuda(cu, (uint16_t *)dq, (uint16_t *)dk, (uint16_t *)dv, (uint16_t *)o, (uint16_t *)o, l, \
                                         (uint16_t *)q, (uint16_t *)k, (uint16_t *)v, B, n, H, H, dh, 0, &err)           \
            : ea_attention_bwd_cuda(cu, (float *)dq, (float *)dk, (float *)dv, (float *)o, (float *)o, l, (float *)q,     \
                                    (float *)k, (float *)v, B, n, H, H, dh, 0, &err))
    /* (the fp32 pattern rows time the forward alone: the fp32 backward tests every pair, as the dense rows show) */
    if (EA_BENCH_FWD != EA_OK || (!(pp && !bf16) && EA_BENCH_BWD != EA_OK) || ea_cuda_sync(cu, &err) != EA_OK)
        die("attention", &err);
    MEDIAN(tf, 2, 5, {
        EA_BENCH_FWD;
        ea_cuda_sync(cu, &err);
    });
    tb = 0.0;
    if (kind != ATT_TF32 && !(pp && !bf16))
        MEDIAN(tb, 1, 3, {
            EA_BENCH_FWD;
            EA_BENCH_BWD;
            if (ea_cuda_sync(cu, &err) != EA_OK) die("attention", &err);
        });
#undef EA_BENCH_FWD
#undef EA_BENCH_BWD
    if (json)
        printf("{\"group\": \"%s%s%s\", \"batch\": %d, \"heads\": %d, \"dim\": %d, \"n\": %d, \"fwd_ms\": %.4f, "
               "\"fwd_bwd_ms\": %.4f}\n", group[kind], pp ? "_" : "", pp ? pname : "", B, H, dh, n, tf * 1e3, tb * 1e3);
    else if (pp)
        printf("attention %s %-7s B %d H %d dh %d n %5d: forward %.3f ms (%.1f TFLOP/s effective)%s", label[kind], pname, B, H, dh,
               n, tf * 1e3, flops / tf * 1e-12, tb > 0.0 ? "" : "\n");
    else if (kind == ATT_TF32)
        printf("attention %s B %d H %d dh %d n %5d: forward %.3f ms (%.1f TFLOP/s)\n", label[kind], B, H, dh, n, tf * 1e3,
               flops / tf * 1e-12);
    else
        printf("attention %s B %d H %d dh %d n %5d: forward %.3f ms (%.1f TFLOP/s), forward + backward %.3f ms (%.1f TFLOP/s)\n",
               label[kind], B, H, dh, n, tf * 1e3, flops / tf * 1e-12, tb * 1e3, 3.5 * flops / tb * 1e-12);
    if (!json && pp && tb > 0.0) printf(", forward + backward %.3f ms (%.1f effective)\n", tb * 1e3, 3.5 * flops / tb * 1e-12);
    ea_cuda_release(q); ea_cuda_release(k); ea_cuda_release(v); ea_cuda_release(o); ea_cuda_release(l);
    ea_cuda_release(dq); ea_cuda_release(dk); ea_cuda_release(dv); ea_cuda_release(rnd);
    free(h);
}

int main(int argc, char **argv) {
    ea_cuda cu;
    ea_error err;
    int json = 0, i, n, tracker_only = 0, patterns_only = 0;
    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) json = 1;
        else if (!strcmp(argv[i], "--profile")) json = -1;
        else if (!strcmp(argv[i], "--tracker")) tracker_only = 1;
        else if (!strcmp(argv[i], "--patterns")) patterns_only = 1;
        else {
            fprintf(stderr, "usage: bench_cuda [--json | --profile] [--tracker | --patterns]\n"
                            "  --profile: two training steps of the mha tracker at batch 32 and nothing else,\n"
                            "             to run under ncu (its per-kernel times show where a step goes)\n"
                            "  --tracker: the tracker rows only\n"
                            "  --patterns: the dense bf16 rows at n 4096 and 16384 and the pattern rows only\n");
            return 2;
        }
    }
    if (ea_cuda_init(&cu, 0, &err) != EA_OK) die("CUDA", &err);
    if (json < 0) {
        ea_vit_config cfg;
        ea_vit m;
        ea_vit_cuda d;
        ea_adamw opt;
        float *x = (float *)calloc(32 * 2048, sizeof(float)), t[64] = {0}, loss;
        ea_tracker_config_default(&cfg, "mha");
        if (ea_vit_init(&m, &cfg, 1, &err) != EA_OK || ea_vit_cuda_init(&d, &cu, &m, 32, &err) != EA_OK) die("init", &err);
        ea_adamw_init(&opt, 1e-4f, 0.01f);
        for (i = 0; i < 2; i++)
            if (ea_vit_cuda_train_step(&d, x, t, 32, 0, &opt, 1.0f, &loss, &err) != EA_OK) die("train step", &err);
        ea_vit_cuda_free(&d);
        ea_vit_free(&m);
        free(x);
        ea_cuda_free(&cu);
        return 0;
    }
    if (!patterns_only) {
        bench_tracker(&cu, "mha", json);
        bench_tracker(&cu, "mqa", json);
    }
    if (tracker_only) {
        ea_cuda_free(&cu);
        return 0;
    }
    if (!patterns_only) {
        for (n = 1024; n <= 4096; n *= 4) bench_attention(&cu, n, ATT_FP32, NULL, json);
        for (n = 1024; n <= 16384; n *= 4) bench_attention(&cu, n, ATT_TF32, NULL, json);
    }
    for (n = patterns_only ? 4096 : 1024; n <= 16384; n *= 4) bench_attention(&cu, n, ATT_BF16, NULL, json);
    for (n = 4096; n <= 16384; n *= 4) {
        bench_attention(&cu, n, ATT_BF16, "local", json);
        bench_attention(&cu, n, ATT_BF16, "bigbird", json);
        bench_attention(&cu, n, ATT_FP32, "local", json);
        bench_attention(&cu, n, ATT_FP32, "bigbird", json);
    }
    ea_cuda_free(&cu);
    return 0;
}
