/* cli.h — what every example's command line shares: strict number parsing,
   the attention rows' option flags, a progress bar, and loading weights
   from a checkpoint or a safetensors file.  Included by each example after
   effattn.h (so every example still builds with one cc command); the
   example sets cli_prog to its name for messages. */
#ifndef EFFATTN_CLI_H
#define EFFATTN_CLI_H

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#define CLI_ISATTY(fd) isatty(fd)
#else
#define CLI_ISATTY(fd) 0
#endif

static const char *cli_prog = "effattn";

/* inline: an example that uses only some of these gets no unused-function warning */
#define CLI_FN static inline

/* Strict number parsing: the whole string, within [lo, hi]; integers only
   when `integer` is set.  Prints what was expected and returns 0 on bad
   input. */
CLI_FN int cli_parse_num(const char *flag, const char *s, double lo, double hi, int integer, double *out) {
    char *end;
    double v;
    errno = 0;
    v = s ? (integer ? (double)strtol(s, &end, 10) : strtod(s, &end)) : 0.0;
    if (!s || errno || end == s || *end || !(v >= lo && v <= hi)) {
        fprintf(stderr, "%s: %s needs %s in [%g, %g], got '%s'\n", cli_prog, flag, integer ? "an integer" : "a number", lo,
                hi, s ? s : "");
        return 0;
    }
    *out = v;
    return 1;
}

CLI_FN int cli_parse_long(const char *flag, const char *s, long lo, long hi, long *out) {
    double v;
    if (!cli_parse_num(flag, s, (double)lo, (double)hi, 1, &v)) return 0;
    *out = (long)v;
    return 1;
}

/* Flags that set one attention option (0 keeps the row's default). */
static const struct {
    const char *flag, *help;
    size_t off;
    long hi;
} cli_attn_flags[] = {
    {"--window", "local/localglobal half-width (8); dilated/hybrid keys each side (4)", offsetof(ea_attn_opts, window), 1 << 20},
    {"--stride", "strided: every s-th key (4)", offsetof(ea_attn_opts, stride), 1 << 20},
    {"--dilation", "dilated/hybrid: spacing of the window's keys (2)", offsetof(ea_attn_opts, dilation), 1 << 20},
    {"--topk", "topk: scores kept per query (n/4)", offsetof(ea_attn_opts, topk), 1 << 20},
    {"--features", "performer: random features (64)", offsetof(ea_attn_opts, features), 1 << 16},
    {"--relu", "linear/performer: ReLU features when 1 (0)", offsetof(ea_attn_opts, relu), 1},
    {"--redraw", "performer: redraw the features every N steps (0: never)", offsetof(ea_attn_opts, redraw), 1 << 30},
    {"--proj-len", "linformer: projected length k (16)", offsetof(ea_attn_opts, proj_len), 1 << 20},
    {"--landmarks", "nystrom: landmarks (8)", offsetof(ea_attn_opts, landmarks), 1 << 20},
    {"--pinv-iters", "nystrom: pseudo-inverse iterations (6)", offsetof(ea_attn_opts, pinv_iters), 1000},
    {"--conv-kernel", "nystrom: taps of the depthwise conv skip on V (0: none; odd)", offsetof(ea_attn_opts, conv_kernel), 999},
    {"--block", "bigbird: block size (8)", offsetof(ea_attn_opts, block), 1 << 20},
    {"--global", "bigbird: global blocks (1); localglobal: summary tokens (2)", offsetof(ea_attn_opts, global), 1 << 20},
    {"--random", "bigbird: random blocks per query block (1)", offsetof(ea_attn_opts, random), 1 << 20},
    {"--attn-seed", "seed of random features and random blocks (0)", offsetof(ea_attn_opts, seed), 2147483647L},
    {"--latent", "mla/deepseek: K/V latent width (dim/4)", offsetof(ea_attn_opts, latent), 65536},
    {"--q-latent", "mla/deepseek: query latent width (dim/2)", offsetof(ea_attn_opts, q_latent), 65536},
    {"--rope-dim", "mla/deepseek: rotary columns per head (head_dim/2, even)", offsetof(ea_attn_opts, rope_dim), 65536},
    {"--slots", "crossmem: learned memory tokens (8)", offsetof(ea_attn_opts, slots), 1 << 16},
    {"--fuse", "crossmem: fixed fusion ratio in percent (0: learned gate)", offsetof(ea_attn_opts, fuse), 100},
    {"--state", "mamba: state size N (16)", offsetof(ea_attn_opts, state), 1024},
    {"--expand", "mamba: inner width = expand x dim (2)", offsetof(ea_attn_opts, expand), 64},
    {"--dt-rank", "mamba: rank of the step-size projection (dim/16)", offsetof(ea_attn_opts, dt_rank), 65536},
    {"--experts", "MoE feed-forward in every block with N experts (0: dense; deepseek/kimi: 4)", offsetof(ea_attn_opts, experts), 64},
    {"--route-k", "MoE: experts per token (2)", offsetof(ea_attn_opts, route_k), 64},
    {"--shared", "MoE: shared experts (0; deepseek/kimi: 1)", offsetof(ea_attn_opts, shared), 16},
    {"--expert-hidden", "MoE: hidden width of an expert (mlp_hidden / (route-k + shared))", offsetof(ea_attn_opts, expert_hidden), 1 << 20},
    {"--capacity", "MoE: tokens per expert, percent of an even share (0: unlimited)", offsetof(ea_attn_opts, capacity), 100000},
    {"--sigmoid", "MoE: sigmoid gates when 1 (softmax)", offsetof(ea_attn_opts, sigmoid), 1},
};
#define CLI_N_ATTN_FLAGS (int)(sizeof cli_attn_flags / sizeof cli_attn_flags[0])

CLI_FN void cli_attn_flags_help(FILE *f) {
    int i;
    fprintf(f, "attention options (0 or absent: the row's default, shown in brackets):\n"
               "  --flex NAME      flex: none, alibi, softcap or causal (none)\n");
    for (i = 0; i < CLI_N_ATTN_FLAGS; i++) {
        char flag[32];
        snprintf(flag, sizeof flag, "%s N", cli_attn_flags[i].flag);
        fprintf(f, "  %-16s %s\n", flag, cli_attn_flags[i].help);
    }
}

/* An attention option flag `a` with value `v` into *opt: 1 taken, 0 not an
   attention flag, -1 a bad value (already reported). */
CLI_FN int cli_attn_option(const char *a, const char *v, ea_attn_opts *opt) {
    int k;
    long val;
    if (strcmp(a, "--flex") == 0) {
        static const char *const kinds[4] = {"none", "alibi", "softcap", "causal"};
        for (k = 0; k < 4 && v && strcmp(v, kinds[k]); k++) {}
        if (!v || k == 4) {
            fprintf(stderr, "%s: --flex must be none, alibi, softcap or causal, got '%s'\n", cli_prog, v ? v : "");
            return -1;
        }
        opt->flex = k;
        return 1;
    }
    for (k = 0; k < CLI_N_ATTN_FLAGS; k++)
        if (strcmp(a, cli_attn_flags[k].flag) == 0) {
            if (!cli_parse_long(a, v, 0, cli_attn_flags[k].hi, &val)) return -1;
            *(int *)(void *)((char *)opt + cli_attn_flags[k].off) = (int)val;
            return 1;
        }
    return 0;
}

/* "  epoch 3/20 [#####.....]  42%  loss 0.1234  57.1 steps/s  1:02 left" on stderr */
CLI_FN void cli_progress(int epoch, int epochs, long step, long steps_per_epoch, double loss, double t0) {
    int width = 30, filled = (int)(width * (double)step / (double)steps_per_epoch), i;
    double el = ea_time_sec() - t0, left = step > 0 ? el * (double)(steps_per_epoch - step) / (double)step : 0.0;
    fprintf(stderr, "\r  epoch %d/%d [", epoch + 1, epochs);
    for (i = 0; i < width; i++) fputc(i < filled ? '#' : '.', stderr);
    fprintf(stderr, "] %3d%%  loss %.4f  %.1f steps/s  %d:%02d left ", (int)(100.0 * step / steps_per_epoch), loss,
            el > 0 ? step / el : 0.0, (int)left / 60, (int)left % 60);
    fflush(stderr);
}

CLI_FN int cli_ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Weights from a checkpoint or a safetensors file, told apart by content. */
CLI_FN ea_status cli_load_weights(ea_vit *m, const char *path, ea_error *err) {
    char magic[8] = {0};
    FILE *f = fopen(path, "rb");
    if (f) {
        if (fread(magic, 1, 8, f) != 8) magic[0] = 0;
        fclose(f);
    }
    if (memcmp(magic, "EACKPT", 6) == 0) return ea_checkpoint_load(path, m, NULL, NULL, 0, err);
    return ea_params_load(&m->params, path, err);
}

/* Options that suit long sequences, for timing one layer at n tokens (the
   rows' defaults are for the small models' 16 to 64 tokens): used by
   bench --rows and compare --scaling.  flex gets ALiBi, a score_mod on
   every pair. */
CLI_FN void cli_long_sequence_opts(const char *name, ea_attn_opts *o, int n) {
    memset(o, 0, sizeof *o);
    if (!strcmp(name, "local")) o->window = 64;
    if (!strcmp(name, "dilated") || !strcmp(name, "hybrid")) { o->window = 32; o->dilation = 2; }
    if (!strcmp(name, "strided")) o->stride = 16;
    if (!strcmp(name, "topk")) o->topk = 64;
    if (!strcmp(name, "bigbird")) { o->block = 64; o->global = 1; o->random = 1; }
    if (!strcmp(name, "localglobal")) { o->window = 64; o->global = 16; }
    if (!strcmp(name, "performer")) o->features = 256;
    if (!strcmp(name, "linformer")) { o->proj_len = 256; o->max_len = n; }
    if (!strcmp(name, "nystrom")) o->landmarks = 64;
    if (!strcmp(name, "flex")) o->flex = 1;
}

/* --device cuda: the model placed on the GPU (section 13) trains and
   predicts there; the host copy is refreshed before a checkpoint is
   written.  `src` names the example's file in the build hint. */
typedef struct cli_device {
    int on;
#ifdef EFFATTN_CUDA
    ea_cuda cu;
    ea_vit_cuda m;
#endif
} cli_device;

/* --device's value: 1 if this build can run it, else prints why, 0 */
CLI_FN int cli_device_check(const char *device, const char *src) {
    if (strcmp(device, "cpu") && strcmp(device, "cuda")) {
        fprintf(stderr, "%s: --device must be 'cpu' or 'cuda', got '%s'\n", cli_prog, device);
        return 0;
    }
#ifndef EFFATTN_CUDA
    if (!strcmp(device, "cuda")) {
        fprintf(stderr, "%s: this build has no CUDA path; build it with\n"
                        "  nvcc -x cu -O2 -arch=sm_90 -DEFFATTN_CUDA %s -o %s_cuda -lcublas -lcublasLt\n", cli_prog, src, cli_prog);
        return 0;
    }
#else
    (void)src;
#endif
    return 1;
}

/* Places m for batches of up to bmax on the GPU that process `rank` of
   `processes` drives (rank modulo the GPUs seen); 0 and a message when it
   cannot.  Several processes need the NCCL build (examples/dist.h), whose
   cli_dist_gpu then joins the GPUs. */
CLI_FN int cli_device_open(cli_device *dev, const ea_vit *m, int bmax, int rank, int processes) {
    memset(dev, 0, sizeof *dev);
#ifdef EFFATTN_CUDA
    {
        ea_error err;
        int gpus = 0;
        (void)processes;
#ifndef EA_USE_NCCL
        if (processes > 1) {
            fprintf(stderr, "%s: --device cuda on %d processes needs NCCL; build with\n"
                            "  nvcc -x cu -O2 -arch=sm_90 -DEFFATTN_CUDA -DEA_USE_MPI -DEA_USE_NCCL $(mpicc --showme:compile) "
                            "examples/%s.c -o %s_nccl -lcublas -lcublasLt -lnccl $(mpicc --showme:link)\n",
                            cli_prog, processes, cli_prog, cli_prog);
            return 0;
        }
#endif
        if (cudaGetDeviceCount(&gpus) != cudaSuccess || gpus < 1) gpus = 1; /* ea_cuda_init then says what is wrong */
        if (ea_cuda_init(&dev->cu, rank % gpus, &err) != EA_OK) {
            fprintf(stderr, "%s: --device cuda: %s\n", cli_prog, err.msg);
            return 0;
        }
        if (ea_vit_cuda_init(&dev->m, &dev->cu, m, bmax, &err) != EA_OK) {
            fprintf(stderr, "%s: --device cuda: %s\n", cli_prog, err.msg);
            ea_cuda_free(&dev->cu);
            return 0;
        }
        dev->on = 1;
    }
#else
    (void)m; (void)bmax; (void)rank; (void)processes;
#endif
    return dev->on;
}

CLI_FN void cli_device_close(cli_device *dev) {
#ifdef EFFATTN_CUDA
    if (dev->on) {
        ea_vit_cuda_free(&dev->m);
        ea_cuda_free(&dev->cu);
    }
#endif
    dev->on = 0;
}

/* The model's outputs for b images xb: on the GPU when it is there (into
   out), else on ctx's tape (the result then points into ctx's arena).
   NULL on failure, ctx->err saying why. */
CLI_FN const float *cli_predict(ea_ctx *ctx, const ea_vit *m, cli_device *dev, const float *xb, int b, float *out) {
    ea_tensor *x, *pred;
#ifdef EFFATTN_CUDA
    if (dev && dev->on) return ea_vit_cuda_predict(&dev->m, xb, out, b, &ctx->err) == EA_OK ? out : NULL;
#else
    (void)dev;
    (void)out;
#endif
    ea_ctx_reset(ctx);
    x = ea_tensor_4d(ctx, b, m->cfg.in_chans, m->cfg.img_size, m->cfg.img_size, 0);
    if (!x) return NULL;
    memcpy(x->data, xb, x->size * sizeof(float));
    pred = ea_vit_forward(ctx, m, x);
    return pred ? pred->data : NULL;
}

typedef struct cli_eval_result {
    double top1, top5, loss;
} cli_eval_result;

/* Mean cross-entropy of b rows of C logits against labels (log-sum-exp
   form, in double). */
CLI_FN double cli_ce_sum(const float *logits, const int *labels, int b, int C) {
    double s = 0.0;
    int i, j;
    for (i = 0; i < b; i++) {
        const float *x = logits + (size_t)i * C;
        double mx = x[0], z = 0.0;
        for (j = 1; j < C; j++) mx = x[j] > mx ? x[j] : mx;
        for (j = 0; j < C; j++) z += exp((double)x[j] - mx);
        s += log(z) + mx - x[labels[i]];
    }
    return s;
}

/* A classifier's top-1 / top-5 accuracy and mean cross-entropy over images
   [i0, i1) of im, in batches of bmax (xb, yb and idx hold a batch), on the
   GPU when dev is there (NULL: the CPU); 0 when a forward failed
   (ctx->err says why).  Used by classify and compare. */
CLI_FN int cli_evaluate(ea_ctx *ctx, const ea_vit *m, cli_device *dev, const ea_images *im, int i0, int i1, const float *mean,
                        const float *sd, float *xb, int *yb, int *idx, int bmax, cli_eval_result *r) {
    int done = 0, n = i1 - i0, h1 = 0, h5 = 0, i;
    double loss = 0.0;
    float *out = (float *)malloc((size_t)bmax * im->classes * sizeof(float));
    if (!out) {
        ea_error_set(&ctx->err, EA_ERR_NOMEM, "evaluation: out of memory");
        return 0;
    }
    ctx->grad_enabled = 0;
    ctx->training = 0;
    while (done < n) {
        int b = n - done < bmax ? n - done : bmax;
        const float *logits;
        for (i = 0; i < b; i++) idx[i] = i0 + done + i;
        ea_images_batch(im, idx, b, mean, sd, 0, 0, NULL, xb, yb);
        if (!(logits = cli_predict(ctx, m, dev, xb, b, out))) break;
        h1 += ea_topk_hits(logits, yb, b, im->classes, 1);
        h5 += ea_topk_hits(logits, yb, b, im->classes, im->classes < 5 ? im->classes : 5);
        loss += cli_ce_sum(logits, yb, b, im->classes);
        done += b;
    }
    ctx->grad_enabled = 1;
    free(out);
    if (done < n) return 0;
    r->top1 = n ? (double)h1 / n : 0.0;
    r->top5 = n ? (double)h5 / n : 0.0;
    r->loss = n ? loss / n : 0.0;
    return 1;
}

/* --loss-log PATH: a CSV of every training step, started with `header`
   (a resumed run appends).  NULL path: NULL, no file.  On failure, prints
   why and sets *failed.  Line-buffered: a run that stops on an error, or
   an MPI job that aborts (no stdio flush at MPI_Abort), still leaves every
   step it finished in the file. */
CLI_FN FILE *cli_loss_log_open(const char *path, int resuming, const char *header, int *failed) {
    FILE *f;
    *failed = 0;
    if (!path) return NULL;
    if (!(f = fopen(path, resuming ? "a" : "w"))) {
        fprintf(stderr, "%s: cannot write the loss log '%s'\n", cli_prog, path);
        *failed = 1;
        return NULL;
    }
    setvbuf(f, NULL, _IOLBF, 1024);
    if (!resuming) fprintf(f, "%s\n", header);
    return f;
}

#endif /* EFFATTN_CLI_H */
