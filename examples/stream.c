/* stream.c — a streaming tracker: video frames arrive one at a time, and
   every layer attends over the current frame's tokens and its state of the
   frames before (a K/V cache, MLA's latent cache, an H2O cache under a
   budget, a memory bank, or Mamba's recurrent state).

   Build:  cc -O2 -march=native examples/stream.c -o stream -lm
   Run:    ./stream                          mha, 1000 frames
           ./stream --attn h2o --budget 256 --frames 10000 --json
           ./stream --attn gqa --time alibi --window-frames 7
           ./stream --help

   What it does: trains a small per-frame ViT (one 32x32 frame -> 64 patch
   tokens -> blocks -> the disc's position) on clips of --clip frames, with
   each layer seeing the clip's earlier frames exactly as it will when
   streaming, then feeds one long generated video frame by frame through
   ea_attn_step and reports per-frame latency, the memory held (layer states
   and the activation arena's peak) and the error against the true position
   at frames 100, 1000, 10000 and the last.

   Training and streaming compute the same function:
     - mha, mqa, gqa, mla, mamba: one causal pass over the clip's tokens
       (k cached calls equal one causal call; the scan runs on).  The K/V
       rows know how long ago each frame was (--time: rotary over the frame
       index by default) and keep a window of the last --window-frames
       frames, which the training pass masks alike, so frame 10,000 sees
       what a training frame saw;
     - h2o: trained as exact causal attention, streamed with eviction under
       --budget (heavy hitters within the window's horizon): the
       approximation H2O makes;
     - crossmem: frame by frame, each frame attending (full) to itself and to
       a memory of the --memory latest earlier tokens plus learned slots, in
       training and streaming alike. */
#define EFFATTN_IMPLEMENTATION
#include "../effattn.h"

#include "cli.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEPTH 2
#define DIM 32
#define TOK 64 /* (32 / 4)² patch tokens per frame */
/* The head predicts (position - 16) / 8: unit scale for a 32-pixel frame. */
#define POS_MID 16.0f
#define POS_SCALE 8.0f

typedef struct options {
    const char *attn;
    int time; /* EA_TIME_*; -1: the default (rope for the K/V rows) */
    long frames, steps, clip, batch, budget, ratio, memory, seed, threads;
    long recent; /* h2o: latest tokens always kept */
    long full_frames; /* h2o: frames streamed again with a cache that keeps everything (0: none) */
    long window; /* frames the K/V or latent cache keeps; -1: the default (clip - 1), 0: all */
    double lr;
    int json, quiet, average;
} options;

typedef struct smodel {
    ea_params params;
    ea_tensor *patch_w, *patch_b, *pos, *norm_w, *norm_b, *head_w, *head_b;
    ea_tensor *ln1_w[DEPTH], *ln1_b[DEPTH], *ln2_w[DEPTH], *ln2_b[DEPTH];
    ea_tensor *fc1_w[DEPTH], *fc1_b[DEPTH], *fc2_w[DEPTH], *fc2_b[DEPTH];
    ea_attn attn[DEPTH];
    int crossmem; /* frame-by-frame with a memory instead of one causal pass */
} smodel;

static void usage(FILE *f) {
    fprintf(f,
            "usage: stream [options]\n"
            "Train a per-frame tracker on clips, then stream one long video through it\n"
            "frame by frame, reporting latency, memory and error.\n\n"
            "  --attn NAME    mha, mqa, gqa, mla, h2o, crossmem or mamba (default mha)\n"
            "  --frames N     frames to stream (default 1000)\n"
            "  --time KIND    K/V rows and mla: how attention tells how long ago a frame\n"
            "                 was: rope (rotary over the frame index, the default), alibi\n"
            "                 (per-head recency slopes) or none (mla always has its rope)\n"
            "  --window-frames W  K/V rows and mla: the cache keeps the last W frames, so a\n"
            "                 frame sees itself and W before it, in training too (default 3,\n"
            "                 so that most training frames see a whole window; h2o: clip - 1,\n"
            "                 the horizon its budget picks from; 0: everything, the cache\n"
            "                 then grows with the stream)\n"
            "  --budget N     h2o: cache entries kept per head (default 256, 4 frames)\n"
            "  --ratio P      h2o: keep P%% of the tokens seen instead of a fixed budget\n"
            "                 (seed 001's compression_ratio; the cache then grows)\n"
            "  --recent N     h2o: latest tokens always kept (default 64, one frame)\n"
            "  --full-cache-frames N  h2o: stream the first N frames again with the same\n"
            "                 weights and a cache that keeps everything (what eviction\n"
            "                 costs or saves; quadratic in N; default 0: not run)\n"
            "  --h2o-average  h2o: rank by mean attention per later token (seed 001)\n"
            "                 instead of the accumulated sum (the H2O paper)\n"
            "  --memory N     crossmem: past tokens in its memory, whole frames of 64\n"
            "                 (default 256, 4 frames)\n"
            "  --steps N      training steps (default 3000; 0: stream untrained weights)\n"
            "  --clip N       frames per training clip (default 8)\n"
            "  --batch N      clips per step (default 4)\n"
            "  --lr X         AdamW learning rate (default 3e-3)\n"
            "  --seed N       data and initialisation seed (default 0)\n"
            "  --threads N    OpenMP threads (default: all; needs -fopenmp)\n"
            "  --json         print one JSON object as the last line of stdout\n"
            "  --quiet        no progress lines\n"
            "  --help         this text\n");
}

/* 0: run, 1: --help shown, -1: bad flags */
static int parse_args(int argc, char **argv, options *o) {
    static const char *rows[] = {"mha", "mqa", "gqa", "mla", "h2o", "crossmem", "mamba"};
    int i;
    memset(o, 0, sizeof *o);
    o->attn = "mha"; o->time = -1; o->window = -1; o->frames = 1000; o->budget = 256; o->memory = 256; o->steps = 3000; o->recent = TOK; o->clip = 8; o->batch = 4;
    o->lr = 3e-3;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        double d = 0.0;
        int ok = 1, takes = 1;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) { usage(stdout); return 1; }
        else if (strcmp(a, "--json") == 0) { o->json = 1; takes = 0; }
        else if (strcmp(a, "--quiet") == 0) { o->quiet = 1; takes = 0; }
        else if (strcmp(a, "--h2o-average") == 0) { o->average = 1; takes = 0; }
        else if (strcmp(a, "--attn") == 0) {
            size_t r;
            ok = 0;
            for (r = 0; v && r < sizeof rows / sizeof rows[0]; r++) ok |= strcmp(v, rows[r]) == 0;
            if (!ok) fprintf(stderr, "stream: --attn '%s'; expected mha, mqa, gqa, mla, h2o, crossmem or mamba\n", v ? v : "");
            o->attn = v;
        }
        else if (strcmp(a, "--time") == 0) {
            o->time = !v ? -2 : strcmp(v, "none") == 0 ? EA_TIME_NONE : strcmp(v, "rope") == 0 ? EA_TIME_ROPE
                              : strcmp(v, "alibi") == 0 ? EA_TIME_ALIBI : -2;
            if (o->time == -2) { fprintf(stderr, "stream: --time '%s'; expected rope, alibi or none\n", v ? v : ""); ok = 0; }
        }
        else if (strcmp(a, "--full-cache-frames") == 0) { ok = cli_parse_num(a, v, 0, 1e7, 1, &d); o->full_frames = (long)d; }
        else if (strcmp(a, "--recent") == 0) { ok = cli_parse_num(a, v, 1, 1 << 24, 1, &d); o->recent = (long)d; }
        else if (strcmp(a, "--window-frames") == 0) { ok = cli_parse_num(a, v, 0, 1e6, 1, &d); o->window = (long)d; }
        else if (strcmp(a, "--frames") == 0) { ok = cli_parse_num(a, v, 2, 1e7, 1, &d); o->frames = (long)d; }
        else if (strcmp(a, "--budget") == 0) { ok = cli_parse_num(a, v, 1, 1 << 24, 1, &d); o->budget = (long)d; }
        else if (strcmp(a, "--ratio") == 0) { ok = cli_parse_num(a, v, 1, 100, 1, &d); o->ratio = (long)d; o->budget = 0; }
        else if (strcmp(a, "--memory") == 0) {
            ok = cli_parse_num(a, v, TOK, 1 << 20, 1, &d);
            o->memory = (long)d;
            if (ok && o->memory % TOK) {
                fprintf(stderr, "stream: --memory %ld: expected whole frames, a multiple of %d tokens\n", o->memory, TOK);
                ok = 0;
            }
        }
        else if (strcmp(a, "--steps") == 0) { ok = cli_parse_num(a, v, 0, 1e7, 1, &d); o->steps = (long)d; }
        else if (strcmp(a, "--clip") == 0) { ok = cli_parse_num(a, v, 1, 64, 1, &d); o->clip = (long)d; }
        else if (strcmp(a, "--batch") == 0) { ok = cli_parse_num(a, v, 1, 256, 1, &d); o->batch = (long)d; }
        else if (strcmp(a, "--lr") == 0) ok = cli_parse_num(a, v, 0.0, 10.0, 0, &o->lr);
        else if (strcmp(a, "--seed") == 0) { ok = cli_parse_num(a, v, 0, 2147483647.0, 1, &d); o->seed = (long)d; }
        else if (strcmp(a, "--threads") == 0) { ok = cli_parse_num(a, v, 1, 1024, 1, &d); o->threads = (long)d; }
        else {
            fprintf(stderr, "stream: unknown flag '%s' (see --help)\n", a);
            return -1;
        }
        if (!ok) return -1;
        i += takes;
    }
    {   /* time and windows belong to the rows with a K/V or latent cache */
        int cache_row = strcmp(o->attn, "crossmem") != 0 && strcmp(o->attn, "mamba") != 0;
        if (!cache_row && (o->time >= 0 || o->window >= 0)) {
            fprintf(stderr, "stream: --time and --window-frames are for mha, mqa, gqa, mla and h2o; %s keeps its own state\n",
                    o->attn);
            return -1;
        }
        if (strcmp(o->attn, "mla") == 0 && o->time == EA_TIME_ALIBI) {
            fprintf(stderr, "stream: mla carries time in its rotary columns; expected --time rope or none\n");
            return -1;
        }
        if (cache_row && o->time < 0) o->time = EA_TIME_ROPE;
        /* default: 3 earlier frames, so most training frames see the whole
           window, as every streamed frame does; h2o: the clip's horizon,
           inside which its budget picks */
        if (cache_row && o->window < 0) o->window = strcmp(o->attn, "h2o") == 0 || o->clip < 4 ? o->clip - 1 : 3;
        if (o->window < 0) o->window = 0;
        if (o->time < 0) o->time = EA_TIME_NONE;
        if ((double)o->window * TOK > 1 << 26) {
            fprintf(stderr, "stream: --window-frames %ld: expected at most %d frames\n", o->window, (1 << 26) / TOK);
            return -1;
        }
    }
    return 0;
}

static void linear_params(ea_params *ps, const char *name, int out, int in, ea_tensor **w, ea_tensor **b) {
    char buf[EA_NAME_LEN];
    int shape[2];
    shape[0] = out; shape[1] = in;
    snprintf(buf, sizeof buf, "%s.weight", name);
    *w = ea_param(ps, buf, 2, shape, EA_INIT_FANIN, (float)in);
    snprintf(buf, sizeof buf, "%s.bias", name);
    *b = ea_param(ps, buf, 1, shape, EA_INIT_FANIN, (float)in);
}

static void norm_params(ea_params *ps, const char *name, ea_tensor **w, ea_tensor **b) {
    char buf[EA_NAME_LEN];
    int d = DIM;
    snprintf(buf, sizeof buf, "%s.weight", name);
    *w = ea_param(ps, buf, 1, &d, EA_INIT_ONES, 0.0f);
    snprintf(buf, sizeof buf, "%s.bias", name);
    *b = ea_param(ps, buf, 1, &d, EA_INIT_ZEROS, 0.0f);
}

static ea_status model_init(smodel *m, const options *o, ea_error *err) {
    ea_attn_config ac;
    char name[EA_NAME_LEN];
    int shape[4], l;
    ea_status st;
    memset(m, 0, sizeof *m);
    m->crossmem = strcmp(o->attn, "crossmem") == 0;
    shape[0] = DIM; shape[1] = 1; shape[2] = 4; shape[3] = 4;
    m->patch_w = ea_param(&m->params, "patch.weight", 4, shape, EA_INIT_FANIN, 16.0f);
    m->patch_b = ea_param(&m->params, "patch.bias", 1, shape, EA_INIT_FANIN, 16.0f);
    shape[0] = 1; shape[1] = TOK; shape[2] = DIM;
    m->pos = ea_param(&m->params, "pos", 3, shape, EA_INIT_NORMAL, 0.02f);
    memset(&ac, 0, sizeof ac);
    ac.dim = DIM; ac.n_heads = 4; ac.n_kv_heads = 2;
    ac.causal = !m->crossmem; /* crossmem: each frame sees itself whole, the past through its memory */
    ac.opt.budget = (int)o->budget;
    ac.opt.ratio = (int)o->ratio;
    ac.opt.memory = (int)o->memory;
    ac.opt.average = o->average;
    ac.opt.recent = o->recent;
    ac.opt.time = strcmp(o->attn, "mla") == 0 ? EA_TIME_NONE : o->time; /* mla: its own rope, always */
    ac.opt.frame = m->crossmem || strcmp(o->attn, "mamba") == 0 ? 0 : TOK; /* time steps are frames */
    ac.opt.cache_window = (int)(o->window * TOK);
    for (l = 0; l < DEPTH; l++) {
        snprintf(name, sizeof name, "blocks.%d.norm1", l);
        norm_params(&m->params, name, &m->ln1_w[l], &m->ln1_b[l]);
        snprintf(name, sizeof name, "blocks.%d.attn", l);
        if ((st = ea_attn_build(&m->attn[l], o->attn, &ac, &m->params, name, err)) != EA_OK) return st;
        snprintf(name, sizeof name, "blocks.%d.norm2", l);
        norm_params(&m->params, name, &m->ln2_w[l], &m->ln2_b[l]);
        snprintf(name, sizeof name, "blocks.%d.fc1", l);
        linear_params(&m->params, name, 2 * DIM, DIM, &m->fc1_w[l], &m->fc1_b[l]);
        snprintf(name, sizeof name, "blocks.%d.fc2", l);
        linear_params(&m->params, name, DIM, 2 * DIM, &m->fc2_w[l], &m->fc2_b[l]);
    }
    norm_params(&m->params, "norm", &m->norm_w, &m->norm_b);
    linear_params(&m->params, "head", 2, DIM, &m->head_w, &m->head_b);
    if ((st = ea_params_alloc(&m->params, err)) != EA_OK) return st;
    ea_params_init(&m->params, (uint64_t)o->seed + 1);
    return EA_OK;
}

/* frames [N, 1, 32, 32] -> tokens [N, 64, DIM] */
static ea_tensor *embed(ea_ctx *ctx, const smodel *m, ea_tensor *frames) {
    return ea_add(ctx, ea_patch_embed(ctx, frames, m->patch_w, m->patch_b), m->pos);
}

static ea_tensor *mlp_half(ea_ctx *ctx, const smodel *m, int l, ea_tensor *h) {
    ea_tensor *a = ea_layernorm(ctx, h, m->ln2_w[l], m->ln2_b[l], 1e-5f);
    return ea_add(ctx, h, ea_linear(ctx, ea_linear_gelu(ctx, a, m->fc1_w[l], m->fc1_b[l]), m->fc2_w[l], m->fc2_b[l]));
}

/* tokens [N, 64, DIM] -> positions [N, 2] */
static ea_tensor *readout(ea_ctx *ctx, const smodel *m, ea_tensor *h) {
    return ea_linear(ctx, ea_mean_tokens(ctx, ea_layernorm(ctx, h, m->norm_w, m->norm_b, 1e-5f)), m->head_w, m->head_b);
}

/* A clip batch xb [B, F, 32, 32] -> positions [B·F, 2], every frame seeing
   the earlier ones as streaming will. */
static ea_tensor *clip_forward(ea_ctx *ctx, const smodel *m, const float *xb, int B, int F, int memory) {
    int l, f, b, shape[4];
    ea_tensor *h, *out = NULL, *mem[DEPTH];
    if (!m->crossmem) { /* one causal pass over the clip's F·64 tokens */
        ea_tensor *x = ea_tensor_4d(ctx, B * F, 1, 32, 32, 0);
        if (!x) return NULL;
        memcpy(x->data, xb, x->size * sizeof(float));
        shape[0] = B; shape[1] = F * TOK; shape[2] = DIM;
        h = ea_reshape(ctx, embed(ctx, m, x), 3, shape);
        for (l = 0; l < DEPTH; l++) {
            h = ea_add(ctx, h, ea_attn_forward(ctx, &m->attn[l], ea_layernorm(ctx, h, m->ln1_w[l], m->ln1_b[l], 1e-5f)));
            h = mlp_half(ctx, m, l, h);
        }
        shape[0] = B * F; shape[1] = TOK;
        return readout(ctx, m, ea_reshape(ctx, h, 3, shape));
    }
    /* crossmem: frame by frame; each layer's inputs of the last memory/64
       frames are its memory, as the FIFO holds them when streaming */
    for (l = 0; l < DEPTH; l++) mem[l] = NULL;
    for (f = 0; f < F; f++) {
        ea_tensor *x = ea_tensor_4d(ctx, B, 1, 32, 32, 0);
        if (!x) return NULL;
        for (b = 0; b < B; b++) memcpy(x->data + (size_t)b * 1024, xb + ((size_t)b * F + f) * 1024, 1024 * sizeof(float));
        h = embed(ctx, m, x);
        for (l = 0; l < DEPTH; l++) {
            ea_tensor *a = ea_layernorm(ctx, h, m->ln1_w[l], m->ln1_b[l], 1e-5f);
            h = mlp_half(ctx, m, l, ea_add(ctx, h, ea_crossmem_forward(ctx, &m->attn[l], a, mem[l])));
            if (memory >= TOK) {
                mem[l] = mem[l] ? ea_concat_tokens(ctx, mem[l], a) : a;
                if (mem[l] && mem[l]->shape[1] > memory / TOK * TOK) mem[l] = ea_drop_tokens(ctx, mem[l], TOK);
            }
        }
        shape[0] = B; shape[1] = 1; shape[2] = 2;
        h = ea_reshape(ctx, readout(ctx, m, h), 3, shape); /* [B, 1, 2] */
        out = out ? ea_concat_tokens(ctx, out, h) : h;
    }
    shape[0] = B * F; shape[1] = 2;
    return out ? ea_reshape(ctx, out, 2, shape) : NULL;
}

/* One frame through the layers' states -> its position. */
static ea_tensor *frame_step(ea_ctx *ctx, const smodel *m, ea_attn_state *st, const float *frame) {
    ea_tensor *x = ea_tensor_4d(ctx, 1, 1, 32, 32, 0), *h;
    int l;
    if (!x) return NULL;
    memcpy(x->data, frame, 1024 * sizeof(float));
    h = embed(ctx, m, x);
    for (l = 0; l < DEPTH; l++) {
        h = ea_add(ctx, h, ea_attn_step(ctx, &m->attn[l], &st[l], ea_layernorm(ctx, h, m->ln1_w[l], m->ln1_b[l], 1e-5f)));
        h = mlp_half(ctx, m, l, h);
    }
    return readout(ctx, m, h);
}

typedef struct report {
    long frame;
    double latency_ms, err_px, within2;
    size_t state_bytes, used_bytes, arena_peak;
} report;

/* Bytes of a layer's state that hold something: the cached entries (keys,
   values, positions, scores) or, for mamba, the whole state. */
static size_t state_used(const ea_attn_state *st) {
    size_t per_entry;
    if (!st->k) return st->bytes;
    per_entry = ((size_t)st->kdim + (size_t)st->vdim) * sizeof(float) + sizeof(int) + (st->score ? sizeof(float) : 0);
    return (size_t)st->B * st->heads * st->len * per_entry;
}

int main(int argc, char **argv) {
    options o;
    smodel m;
    ea_error err;
    ea_ctx ctx;
    ea_video_config vc;
    ea_videos train, run;
    ea_adamw opt;
    ea_attn_state st[DEPTH];
    report rep[4];
    int n_rep = 0, l, rc = (cli_prog = "stream", parse_args(argc, argv, &o));
    long step, f, within = 0, full_frames = 0;
    double full_err = 0.0;
    double t0, train_seconds = 0.0, last_loss = 0.0, err_sum = 0.0, lat_sum = 0.0, win_lat = 0.0, clip_diff = 0.0, clip_err = 0.0;
    float *xb, *yb;
    size_t max_tokens;
    if (rc) return rc < 0 ? 2 : 0;
#ifdef _OPENMP
    if (o.threads) omp_set_num_threads((int)o.threads);
#endif
    if (model_init(&m, &o, &err) != EA_OK) {
        fprintf(stderr, "stream: %s\n", err.msg);
        return 1;
    }
    if (ea_ctx_init(&ctx, 0) != EA_OK) return 1;
    /* training clips: 1024 videos of 2·clip frames, clips drawn at random offsets */
    ea_video_config_default(&vc);
    vc.n_videos = 1024;
    vc.n_frames = (int)(2 * o.clip);
    vc.seed = (uint64_t)o.seed;
    if (ea_videos_generate(&train, &vc, &err) != EA_OK) {
        fprintf(stderr, "stream: %s\n", err.msg);
        return 1;
    }
    xb = (float *)malloc((size_t)o.batch * o.clip * 1024 * sizeof(float));
    yb = (float *)malloc((size_t)o.batch * o.clip * 2 * sizeof(float));
    if (!xb || !yb) { fprintf(stderr, "stream: out of memory\n"); return 1; }
    ea_adamw_init(&opt, (float)o.lr, 0.01f);
    {
        ea_rng rng;
        ea_rng_seed(&rng, (uint64_t)o.seed, 7);
        t0 = ea_time_sec();
        for (step = 0; step < o.steps; step++) {
            ea_tensor *pred, *y, *loss;
            long b;
            for (b = 0; b < o.batch; b++) {
                int v = (int)ea_rng_below(&rng, (uint32_t)train.n_videos);
                int s0 = (int)ea_rng_below(&rng, (uint32_t)(train.n_frames - o.clip + 1));
                memcpy(xb + (size_t)b * o.clip * 1024, train.frames + ((size_t)v * train.n_frames + s0) * 1024,
                       (size_t)o.clip * 1024 * sizeof(float));
                for (f = 0; f < 2 * o.clip; f++)
                    yb[(size_t)b * o.clip * 2 + f] = (train.pos[((size_t)v * train.n_frames + s0) * 2 + f] - POS_MID) / POS_SCALE;
            }
            ea_ctx_reset(&ctx);
            opt.lr = ea_lr_cosine(step, o.steps, 10, (float)o.lr, 0.0f);
            pred = clip_forward(&ctx, &m, xb, (int)o.batch, (int)o.clip, (int)o.memory);
            y = ea_tensor_2d(&ctx, (int)(o.batch * o.clip), 2, 0);
            if (!y) break;
            memcpy(y->data, yb, y->size * sizeof(float));
            loss = ea_mse_loss(&ctx, pred, y);
            ea_params_zero_grad(&m.params);
            if (!loss || ea_backward(&ctx, loss) != EA_OK) break;
            if (!isfinite(loss->data[0])) {
                fprintf(stderr, "stream: the loss became %g at step %ld; try a lower --lr\n", (double)loss->data[0], step);
                return 1;
            }
            ea_adamw_step(&opt, &m.params);
            last_loss = loss->data[0];
            if (!o.quiet && (step % 25 == 0 || step == o.steps - 1))
                fprintf(o.json ? stderr : stdout, "  train step %4ld/%ld  loss %.4f (positions / 8 px)  (%.1f s)\n", step + 1, o.steps, last_loss,
                        ea_time_sec() - t0);
        }
        if (ctx.err.status != EA_OK) {
            fprintf(stderr, "stream: %s\n", ctx.err.msg);
            return 1;
        }
        train_seconds = ea_time_sec() - t0;
    }
    ea_videos_free(&train);
    /* the stream: one video of --frames frames */
    vc.n_videos = 1;
    vc.n_frames = (int)o.frames;
    vc.seed = (uint64_t)o.seed + 1000003u;
    if (ea_videos_generate(&run, &vc, &err) != EA_OK) {
        fprintf(stderr, "stream: %s\n", err.msg);
        return 1;
    }
    max_tokens = (size_t)o.frames * TOK;
    if (max_tokens > ((size_t)1 << 26)) max_tokens = (size_t)1 << 26;
    for (l = 0; l < DEPTH; l++)
        if (ea_attn_state_init(&st[l], &m.attn[l], 1, (int)max_tokens, TOK, &err) != EA_OK) {
            fprintf(stderr, "stream: %s\n", err.msg);
            return 1;
        }
    {   /* the first clip of the stream through the training forward: streaming must agree */
        int F = (int)(o.clip < o.frames ? o.clip : o.frames);
        ea_tensor *p;
        ea_ctx_reset(&ctx);
        ctx.grad_enabled = 0;
        p = clip_forward(&ctx, &m, run.frames, 1, F, (int)o.memory);
        if (!p) {
            fprintf(stderr, "stream: %s\n", ctx.err.msg);
            return 1;
        }
        memcpy(yb, p->data, (size_t)F * 2 * sizeof(float));
    }
    ea_ctx_free(&ctx); /* a fresh arena: its peak below is the streaming one */
    ea_ctx_init(&ctx, 0);
    ctx.grad_enabled = 0;
    for (f = 0; f < o.frames; f++) {
        ea_tensor *p;
        double t1 = ea_time_sec(), ms, dx, dy, e;
        ea_ctx_reset(&ctx);
        p = frame_step(&ctx, &m, st, run.frames + (size_t)f * 1024);
        if (!p) {
            fprintf(stderr, "stream: frame %ld: %s\n", f, ctx.err.msg);
            return 1;
        }
        ms = 1000.0 * (ea_time_sec() - t1);
        if (f < o.clip) { /* against the training forward of the first clip */
            double d = POS_SCALE * fmax(fabs(p->data[0] - yb[2 * f]), fabs(p->data[1] - yb[2 * f + 1]));
            clip_diff = d > clip_diff ? d : clip_diff;
            clip_err += sqrt(pow(POS_MID + POS_SCALE * p->data[0] - run.pos[(size_t)f * 2], 2) +
                             pow(POS_MID + POS_SCALE * p->data[1] - run.pos[(size_t)f * 2 + 1], 2));
        }
        lat_sum += ms;
        win_lat += ms;
        dx = POS_MID + POS_SCALE * p->data[0] - run.pos[(size_t)f * 2];
        dy = POS_MID + POS_SCALE * p->data[1] - run.pos[(size_t)f * 2 + 1];
        e = sqrt(dx * dx + dy * dy);
        err_sum += e;
        within += e < 2.0;
        if (f + 1 == 100 || f + 1 == 1000 || f + 1 == 10000 || f + 1 == o.frames) {
            report *r = &rep[n_rep < 4 ? n_rep : 3];
            static long last = 0;
            r->frame = f + 1;
            r->latency_ms = win_lat / (double)(f + 1 - last);
            r->err_px = err_sum / (double)(f + 1);
            r->within2 = (double)within / (double)(f + 1);
            r->state_bytes = r->used_bytes = 0;
            for (l = 0; l < DEPTH; l++) {
                r->state_bytes += st[l].bytes;
                r->used_bytes += state_used(&st[l]);
            }
            r->arena_peak = ea_ctx_peak_bytes(&ctx);
            if (!o.quiet)
                fprintf(o.json ? stderr : stdout,
                        "  frame %6ld: %.3f ms/frame (frames %ld..%ld), state in use %.3f MiB (allocated %.2f), arena "
                        "peak %.2f MiB, error %.3f px, %.1f%% within 2 px\n",
                        r->frame, r->latency_ms, last + 1, f + 1, r->used_bytes / 1048576.0, r->state_bytes / 1048576.0,
                        r->arena_peak / 1048576.0, r->err_px, 100.0 * r->within2);
            last = f + 1;
            win_lat = 0.0;
            if (n_rep < 4 && (n_rep == 0 || rep[n_rep - 1].frame != r->frame)) n_rep++;
        }
    }
    if (!o.quiet || !o.json)
        fprintf(o.json ? stderr : stdout,
                "  first %ld frames (a training clip's length): error %.3f px; streaming and the training forward differ "
                "by at most %.2g px%s\n",
                o.clip < o.frames ? o.clip : o.frames, clip_err / (double)(o.clip < o.frames ? o.clip : o.frames), clip_diff,
                strcmp(o.attn, "h2o") == 0 ? " (h2o evicts)" : "");
    if (strcmp(o.attn, "h2o") == 0 && o.full_frames > 0) {
        /* the same weights with a cache that keeps everything, over the
           first frames: what the eviction rule costs (or saves) */
        long n = o.frames < o.full_frames ? o.frames : o.full_frames;
        double sum = 0.0;
        for (l = 0; l < DEPTH; l++) {
            ea_attn_state_free(&st[l]);
            m.attn[l].cfg.opt.budget = 0;
            m.attn[l].cfg.opt.ratio = 100;
            m.attn[l].cfg.opt.cache_window = 0;
            if (ea_attn_state_init(&st[l], &m.attn[l], 1, (int)(n * TOK), TOK, &err) != EA_OK) {
                fprintf(stderr, "stream: %s\n", err.msg);
                return 1;
            }
        }
        for (f = 0; f < n; f++) {
            ea_tensor *p;
            ea_ctx_reset(&ctx);
            p = frame_step(&ctx, &m, st, run.frames + (size_t)f * 1024);
            if (!p) {
                fprintf(stderr, "stream: frame %ld (full cache): %s\n", f, ctx.err.msg);
                return 1;
            }
            sum += sqrt(pow(POS_MID + POS_SCALE * p->data[0] - run.pos[(size_t)f * 2], 2) +
                        pow(POS_MID + POS_SCALE * p->data[1] - run.pos[(size_t)f * 2 + 1], 2));
        }
        full_err = sum / (double)n;
        full_frames = n;
        if (!o.quiet || !o.json)
            fprintf(o.json ? stderr : stdout,
                    "  the same weights with a full cache, first %ld frames: error %.3f px (the budget: %.3f px)\n", n,
                    full_err, n == rep[0].frame ? rep[0].err_px : n_rep > 1 && n == rep[1].frame ? rep[1].err_px : -1.0);
    }
    if (!o.json || !o.quiet)
        fprintf(o.json ? stderr : stdout,
                "result: %s, %ld frames: error %.3f px, %.1f%% within 2 px, %.3f ms/frame, training %.1f s (loss %.4f)\n",
                o.attn, o.frames, err_sum / (double)o.frames, 100.0 * (double)within / (double)o.frames,
                lat_sum / (double)o.frames, train_seconds, last_loss);
    if (o.json) {
        int i;
        printf("{\"attn\":\"%s\",\"frames\":%ld,\"mean_err_px\":%.6f,\"within2px\":%.6f,\"latency_ms\":%.4f,"
               "\"train_seconds\":%.3f,\"train_loss\":%.6f,\"cache_floats_per_token\":%g,\"isa\":\"%s\",\"threads\":%d,"
               "\"clip_check_px\":%.3g,\"time\":\"%s\",\"window_frames\":%ld,",
               o.attn, o.frames, err_sum / (double)o.frames, (double)within / (double)o.frames, lat_sum / (double)o.frames,
               train_seconds, last_loss, ea_attn_cache_floats(&m.attn[0]) * DEPTH, EA_ISA, ea_num_threads(), clip_diff,
               strcmp(o.attn, "mla") == 0 || o.time == EA_TIME_ROPE ? "rope" : o.time == EA_TIME_ALIBI ? "alibi" : "none",
               o.window);
        if (full_frames) printf("\"full_cache_frames\":%ld,\"full_cache_err_px\":%.6f,", full_frames, full_err);
        printf("\"reports\":[");
        for (i = 0; i < n_rep; i++)
            printf("%s{\"frame\":%ld,\"latency_ms\":%.4f,\"state_used_bytes\":%zu,\"state_bytes\":%zu,"
                   "\"arena_peak_bytes\":%zu,\"mean_err_px\":%.6f,\"within2px\":%.6f}",
                   i ? "," : "", rep[i].frame, rep[i].latency_ms, rep[i].used_bytes, rep[i].state_bytes, rep[i].arena_peak,
                   rep[i].err_px, rep[i].within2);
        printf("]}\n");
    }
    for (l = 0; l < DEPTH; l++) ea_attn_state_free(&st[l]);
    ea_videos_free(&run);
    ea_ctx_free(&ctx);
    ea_params_free(&m.params);
    free(xb);
    free(yb);
    return 0;
}
