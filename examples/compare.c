/* compare.c — every attention row on the same task, budget and seed, in one
   table and a few charts, as source documents 001-003 compare them.

       cc -O2 -march=native -fopenmp examples/compare.c -o compare -lm
       ./compare --task shapes --model cnn --attn all --epochs 3 --out cmp
       ./compare --scaling --max-n 4096 --out cmp

   Classification (--task shapes | fashion-mnist[:DIR] | cifar10:DIR):
   each listed row is built into the chosen host (ea_classifier_config_default),
   trained with AdamW + warm-up + cosine on the same images in the same
   order from the same initial seed, evaluated on the test images, and
   timed at batch 1 and 32.  A row the host cannot take is reported with
   its reason and the others still run.  Written to --out DIR:
       compare.md / .csv / .json   one row per attention row: parameters,
           FLOPs per image, arena peak in training, training time, latency
           at batch 1, images/s at batch 32, top-1 / top-5, and the change
           in top-1 against the `none` control and against `mha`
       accuracy_latency.svg        top-1 against batch-1 latency, labelled
       curves_loss.svg, curves_top1.svg   per-epoch training loss and test top-1

   The tracker (--task tracker): each row is built into seed 000's two-frame
   ViT (ea_tracker_config_default), trained as track trains it (MSE, AdamW,
   cosine over the steps) on generated videos split 80/10/10 by video, and
   scored by its mean error in px on the test videos and the share of frames
   within 2 px; the table, charts (accuracy_latency.svg, curves_error.svg)
   and the search (on the validation videos) are the same.

   --search: before that, each row's learning rate, weight decay, width,
   heads and own option are chosen by successive halving on a validation
   split carved from the training images (never the test set), written to
   search.md / .json, and the chosen configurations are what the table
   trains.

   --scaling: one layer of each row (heads x head-dim as flags, batch 1),
   forward and forward + backward time and arena peak against n = 64 ...
   --max-n, each the fastest of a few runs; the table gives the log-log
   slope between the last two lengths; charts scaling_time.svg (with O(n)
   and O(n²) reference lines) and scaling_memory.svg.

   Several processes (MPI; examples/dist.h): built with mpicc -DEA_USE_MPI,
   `mpirun -np N ./compare_mpi ...` trains row i (and its search) on rank
   i % N; rank 0 gathers the rows into the same table and charts.  A row's
   heatmap is written by the rank that trained it; --scaling runs on rank 0
   alone (its timings want the machine to themselves). */
#define EFFATTN_IMPLEMENTATION
#include "../effattn.h"
#include "cli.h"
#include "dist.h"
#include "svg.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_ROWS 40
#define MAX_EPOCHS 200
#define MAX_N 24

/* What a task's table measures.  Classification: test top-1 and top-5 (%),
   higher is better; the tracker: mean error (px) on the test videos and the
   share of frames within 2 px (%), lower error is better. */
typedef struct task_metric {
    const char *name, *name2, *key, *key2, *per, *curve;
    int lower_better;
} task_metric;
static const task_metric metric_classify = {"top-1 %", "top-5 %", "top1", "top5", "image", "top1", 0};
static const task_metric metric_tracker = {"error px", "within 2 px %", "error_px", "within2px", "frame pair", "error", 1};

/* A task's data: images (classification) or videos (seed 000's tracker,
   whose samples are (video, frame) pairs numbered video * (frames - 1) + t). */
typedef struct task_data {
    const ea_images *train, *eval;   /* classification */
    const float *mean, *sd;
    const ea_videos *vids;           /* the tracker (NULL for classification) */
    int n_train;                     /* training samples [0, n_train) */
    int e0, en;                      /* evaluation samples [e0, e0 + en) (of eval, or of the videos' pairs) */
    int c, h, w;                     /* one input */
} task_data;

typedef struct options {
    const char *task, *model, *attn, *out, *pool;
    long epochs, batch, seed, images, test_images, limit, threads, heads, head_dim, max_n, runs;
    long candidates, search_epochs, val, videos, frames;
    double lr, wd;
    int scaling, heatmaps, search, quiet, lr_given;
    const char *image_flag, *video_flag; /* the last flag given that only one kind of task reads */
    const char *shapes_flag;             /* the last flag given that only --task shapes reads */
    const task_metric *metric;
    int bars;         /* progress bars: not quiet, a terminal, rank 0 */
    cli_dist *dist;   /* rows are spread over its ranks */
} options;

typedef struct row_result {
    char name[32], error[320], heatmap[320], config[160];
    int ok;
    double params, flops, train_s, infer_b1_ms, ips_b32;
    double score, score2;   /* the task's metrics (task_metric): top-1 / top-5 %, or error px / within 2 px % */
    size_t arena_peak;
    int epochs;
    double loss[MAX_EPOCHS], test_score[MAX_EPOCHS], epoch_x[MAX_EPOCHS];
} row_result;


static void usage(FILE *f) {
    char names[512];
    fprintf(f,
            "usage: compare [options]\n"
            "Train every attention row on the same task and budget and write one table and\n"
            "charts of the results; or (--scaling) time one layer of each row against n.\n\n"
            "  --task T          shapes (default: generated 32x32 RGB shapes), fashion-mnist[:DIR]\n"
            "                    or cifar10:DIR (as classify's --data), or tracker: seed 000's\n"
            "                    two-frame ViT on generated videos, scored by error in px\n"
            "  --model M         cnn (default), vit or mlp: the host the rows sit in (classification)\n"
            "  --pool P          vit: mean (default: every row can pool so, while none and mamba never\n"
            "                    write to a class token) or cls (seed 002's class token); cnn: mean\n"
            "                    (stride-2 convs, default) or max (stride-1 convs and max-pools)\n"
            "  --attn LIST       all (default) or rows separated by commas; all is:\n"
            "                    %s\n"
            "  --epochs N        epochs per row (default 3)\n"
            "  --batch N         batch (default 128)\n"
            "  --lr X, --wd X    AdamW peak learning rate (3e-3; tracker 1e-3) and weight decay\n"
            "                    (0.05; tracker 0.01)\n"
            "  --images N        shapes: training images (default 5000)\n"
            "  --test-images N   shapes: test images (default 1000)\n"
            "  --limit N         train on the first N training images only\n"
            "  --videos N        tracker: videos (default 200; 80%% train, 10%% validation, 10%% test)\n"
            "  --frames N        tracker: frames per video (default 50)\n"
            "  --seed N          data order and initial weights (default 0)\n"
            "  --out DIR         where the files go (default compare-out; created)\n"
            "  --threads N       OpenMP threads (default: all)\n"
            "  --search          first pick each row's learning rate, weight decay, width, heads and\n"
            "                    own option (window, features, landmarks, ...) by successive halving\n"
            "                    on a validation split of the training images (never the test set);\n"
            "                    writes search.md/.json, then trains the chosen configurations\n"
            "  --candidates N    configurations per row to start the search with (default 8)\n"
            "  --search-epochs N epochs of the first round; each later round doubles them (default 1)\n"
            "  --val N           validation images held out of the training set (default: 10%%;\n"
            "                    the tracker validates on its validation videos)\n"
            "  --heatmaps        after training, heatmap_ROW.png: the attention weights of every layer\n"
            "                    (rows) and head (columns) for the first test image, beside it\n"
            "  --quiet           no progress\n"
            "scaling:\n"
            "  --scaling         time and memory of one layer of each row against n instead\n"
            "  --max-n N         longest sequence (default 4096; lengths 64, 128, ... N)\n"
            "  --heads N, --head-dim N   the layer's heads (8) and head width (64)\n"
            "  --runs N          timed runs per point, the fastest kept (default 3)\n",
            ea_attn_variant_names(names, sizeof names));
}

static int parse(int argc, char **argv, options *o) {
    int i;
    memset(o, 0, sizeof *o);
    o->task = "shapes"; o->model = "cnn"; o->attn = "all"; o->out = "compare-out";
    o->epochs = 3; o->batch = 128; o->images = 5000; o->test_images = 1000;
    o->heads = 8; o->head_dim = 64; o->max_n = 4096; o->runs = 3;
    o->candidates = 8; o->search_epochs = 1;
    o->lr = 3e-3; o->wd = 0.05; o->videos = 200; o->frames = 50;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1, takes = 1;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 2;
        } else if (!strcmp(a, "--scaling")) o->scaling = 1, takes = 0;
        else if (!strcmp(a, "--quiet")) o->quiet = 1, takes = 0;
        else if (!strcmp(a, "--heatmaps")) o->heatmaps = 1, takes = 0;
        else if (!strcmp(a, "--search")) o->search = 1, takes = 0;
        else if (!v) ok = 0;
        else if (!strcmp(a, "--task")) o->task = v;
        else if (!strcmp(a, "--model")) o->model = v, o->image_flag = a;
        else if (!strcmp(a, "--pool")) o->pool = v, o->image_flag = a;
        else if (!strcmp(a, "--attn")) o->attn = v;
        else if (!strcmp(a, "--out")) o->out = v;
        else if (!strcmp(a, "--epochs")) ok = cli_parse_long(a, v, 1, MAX_EPOCHS, &o->epochs);
        else if (!strcmp(a, "--batch")) ok = cli_parse_long(a, v, 1, 4096, &o->batch);
        else if (!strcmp(a, "--images")) ok = cli_parse_long(a, v, 10, 10000000, &o->images), o->image_flag = o->shapes_flag = a;
        else if (!strcmp(a, "--test-images")) ok = cli_parse_long(a, v, 10, 10000000, &o->test_images), o->image_flag = o->shapes_flag = a;
        else if (!strcmp(a, "--limit")) ok = cli_parse_long(a, v, 1, 100000000, &o->limit), o->image_flag = a;
        else if (!strcmp(a, "--seed")) ok = cli_parse_long(a, v, 0, 2147483647L, &o->seed);
        else if (!strcmp(a, "--threads")) ok = cli_parse_long(a, v, 1, 1024, &o->threads);
        else if (!strcmp(a, "--heads")) ok = cli_parse_long(a, v, 1, 64, &o->heads);
        else if (!strcmp(a, "--head-dim")) ok = cli_parse_long(a, v, 1, 256, &o->head_dim);
        else if (!strcmp(a, "--max-n")) ok = cli_parse_long(a, v, 64, 1 << 20, &o->max_n);
        else if (!strcmp(a, "--runs")) ok = cli_parse_long(a, v, 1, 50, &o->runs);
        else if (!strcmp(a, "--candidates")) ok = cli_parse_long(a, v, 2, 64, &o->candidates);
        else if (!strcmp(a, "--search-epochs")) ok = cli_parse_long(a, v, 1, 50, &o->search_epochs);
        else if (!strcmp(a, "--val")) ok = cli_parse_long(a, v, 10, 10000000, &o->val);
        else if (!strcmp(a, "--lr")) ok = cli_parse_num(a, v, 1e-7, 10.0, 0, &o->lr), o->lr_given |= 1;
        else if (!strcmp(a, "--wd")) ok = cli_parse_num(a, v, 0.0, 10.0, 0, &o->wd), o->lr_given |= 2;
        else if (!strcmp(a, "--videos")) ok = cli_parse_long(a, v, 10, 1000000, &o->videos), o->video_flag = a;
        else if (!strcmp(a, "--frames")) ok = cli_parse_long(a, v, 2, 100000, &o->frames), o->video_flag = a;
        else {
            fprintf(stderr, "compare: unknown flag '%s' (see --help)\n", a);
            return 0;
        }
        if (!ok) {
            if (!v && takes) fprintf(stderr, "compare: %s needs a value (see --help)\n", a);
            return 0;
        }
        i += takes;
    }
    if (strcmp(o->model, "vit") && strcmp(o->model, "mlp") && strcmp(o->model, "cnn")) {
        fprintf(stderr, "compare: --model must be vit, mlp or cnn, got '%s'\n", o->model);
        return 0;
    }
    if (o->pool && !(!strcmp(o->pool, "mean") && strcmp(o->model, "mlp")) && !(!strcmp(o->pool, "cls") && !strcmp(o->model, "vit")) &&
        !(!strcmp(o->pool, "max") && !strcmp(o->model, "cnn"))) {
        fprintf(stderr, "compare: --pool %s does not apply to --model %s (vit: mean or cls; cnn: mean or max; mlp: none)\n",
                o->pool, o->model);
        return 0;
    }
    o->metric = &metric_classify;
    /* a flag the task would not read is a mistake to report, not to ignore */
    if (!strcmp(o->task, "tracker") ? o->image_flag != NULL : o->video_flag != NULL) {
        fprintf(stderr, "compare: %s is for %s; --task %s does not read it\n", !strcmp(o->task, "tracker") ? o->image_flag : o->video_flag,
                !strcmp(o->task, "tracker") ? "the image tasks" : "--task tracker", o->task);
        return 0;
    }
    if (o->shapes_flag && strcmp(o->task, "tracker") && strcmp(o->task, "shapes")) { /* a real dataset has its own size */
        fprintf(stderr, "compare: %s is for --task shapes; --task %s has a fixed test set (--limit N trains on fewer images)\n", o->shapes_flag, o->task);
        return 0;
    }
    if (!strcmp(o->task, "tracker")) { /* track's defaults: seed 000's lr and wd */
        o->metric = &metric_tracker;
        if (!(o->lr_given & 1)) o->lr = 1e-3;
        if (!(o->lr_given & 2)) o->wd = 0.01;
    }
    return 1;
}

/* The image hosts' pooling: --pool, or the mean (compare's vit default too) */
static int pool_of(const options *o) {
    if (o->pool && !strcmp(o->pool, "cls")) return EA_POOL_CLS;
    return o->pool && !strcmp(o->pool, "max") ? EA_POOL_MAX : EA_POOL_MEAN;
}

/* The rows named by --attn ("all": every row of the table), checked. */
static int row_list(const char *spec, char rows[MAX_ROWS][32]) {
    int n = 0, i;
    if (!strcmp(spec, "all")) {
        for (i = 0; i < ea_attn_variant_count() && n < MAX_ROWS; i++) snprintf(rows[n++], 32, "%s", ea_attn_variant_at(i)->name);
        return n;
    }
    while (*spec) {
        size_t len = strcspn(spec, ",");
        if (len == 0 || len >= 32 || n == MAX_ROWS) {
            fprintf(stderr, "compare: --attn: expected up to %d row names separated by commas, got '%s'\n", MAX_ROWS, spec);
            return 0;
        }
        memcpy(rows[n], spec, len);
        rows[n][len] = 0;
        if (!ea_attn_variant_find(rows[n])) {
            char names[512];
            fprintf(stderr, "compare: --attn: no row '%s'; rows: %s\n", rows[n], ea_attn_variant_names(names, sizeof names));
            return 0;
        }
        n++;
        spec += len + (spec[len] == ',');
    }
    return n;
}

static int make_dir(const char *d) {
    struct stat st;
    if (stat(d, &st) == 0) return S_ISDIR(st.st_mode);
    if (mkdir(d, 0777) == 0) return 1;
    return stat(d, &st) == 0 && S_ISDIR(st.st_mode); /* another process made it first */
}

static FILE *out_file(const options *o, const char *name, char *path, size_t n) {
    FILE *f;
    snprintf(path, n, "%s/%s", o->out, name);
    f = fopen(path, "w");
    if (!f) fprintf(stderr, "compare: cannot write %s\n", path);
    return f;
}

/* --- classification -------------------------------------------------------- */

/* Mean forward time at batch b over `runs` runs after 3 warm-ups, in s. */
static double forward_time(ea_ctx *ctx, const ea_vit *m, const task_data *d, const float *xb, int b, int runs) {
    int r;
    double t0 = 0.0;
    ctx->grad_enabled = 0;
    for (r = -3; r < runs; r++) {
        ea_tensor *x;
        if (r == 0) t0 = ea_time_sec();
        ea_ctx_reset(ctx);
        x = ea_tensor_4d(ctx, b, d->c, d->h, d->w, 0);
        if (!x) return -1.0;
        memcpy(x->data, xb, x->size * sizeof(float));
        if (!ea_vit_forward(ctx, m, x)) return -1.0;
    }
    ctx->grad_enabled = 1;
    return (ea_time_sec() - t0) / runs;
}

/* One configuration of a row: the learning rate and weight decay, the
   attention's width and heads (0: the host's), and the row's own option
   (opt NULL: none). */
typedef struct trial {
    double lr, wd;
    int dim, heads;
    char opt[16];     /* the row's own option ("" for none): bytes, not a pointer, */
    size_t opt_off;   /* so that a trial can travel between processes */
    int opt_value;
} trial;

/* The option each row is searched over, with three values (seed 001
   searched each mechanism's own knob beside the learning rate). */
static const struct {
    const char *row, *opt;
    size_t off;
    int v[3];
} row_opts[] = {
    {"local", "window", offsetof(ea_attn_opts, window), {2, 4, 8}},
    {"localglobal", "window", offsetof(ea_attn_opts, window), {2, 4, 8}},
    {"dilated", "window", offsetof(ea_attn_opts, window), {1, 2, 4}},
    {"hybrid", "window", offsetof(ea_attn_opts, window), {1, 2, 4}},
    {"strided", "stride", offsetof(ea_attn_opts, stride), {2, 4, 8}},
    {"topk", "topk", offsetof(ea_attn_opts, topk), {4, 8, 16}},
    {"bigbird", "block", offsetof(ea_attn_opts, block), {4, 8, 16}},
    {"performer", "features", offsetof(ea_attn_opts, features), {32, 64, 128}},
    {"linformer", "proj_len", offsetof(ea_attn_opts, proj_len), {4, 8, 16}},
    {"nystrom", "landmarks", offsetof(ea_attn_opts, landmarks), {4, 8, 16}},
    {"mla", "latent", offsetof(ea_attn_opts, latent), {8, 16, 32}},
    {"crossmem", "slots", offsetof(ea_attn_opts, slots), {4, 8, 16}},
    {"mamba", "state", offsetof(ea_attn_opts, state), {8, 16, 32}},
    {"deepseek", "experts", offsetof(ea_attn_opts, experts), {2, 4, 8}},
    {"kimi", "experts", offsetof(ea_attn_opts, experts), {2, 4, 8}},
};

static void trial_text(const trial *t, char *buf, size_t n) {
    int k = snprintf(buf, n, "lr %g, wd %g", t->lr, t->wd);
    if (t->dim && k > 0 && (size_t)k < n) k += snprintf(buf + k, n - (size_t)k, ", width %d", t->dim);
    if (t->heads && k > 0 && (size_t)k < n) k += snprintf(buf + k, n - (size_t)k, ", heads %d", t->heads);
    if (t->opt[0] && k > 0 && (size_t)k < n) snprintf(buf + k, n - (size_t)k, ", %s %d", t->opt, t->opt_value);
}

/* --- heatmaps -----------------------------------------------------------------
   One PNG per row: the input image on the left (4x), then a grid of the
   attention weights of batch entry 0, one map per layer (rows) and head
   (columns), each map scaled to its own largest weight and coloured from
   dark blue (0) through green to yellow (its maximum); maps of rows that
   mix two paths or attend to memory are what ea_attn_probe documents. */
static void colour(double t, unsigned char *rgb) {
    static const unsigned char stops[6][3] = {{68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {190, 223, 38}, {253, 231, 37}};
    double x = (t < 0 ? 0 : t > 1 ? 1 : t) * 5.0;
    int i = x >= 5.0 ? 4 : (int)x, c;
    double f = x - i;
    for (c = 0; c < 3; c++) rgb[c] = (unsigned char)(stops[i][c] + f * (stops[i + 1][c] - stops[i][c]) + 0.5);
}

/* The maps of pr beside the input img [c, h, w] (RGB when c is 3, else the
   mean of its channels, e.g. the tracker's two frames; scaled to its range). */
static int write_heatmap(const char *path, const ea_attn_probe *pr, const float *img, int ic, int ih, int iw, char *why,
                         size_t whyn) {
    int L = pr->count, maxh = 0, maxn = 0, l, cell, gap = 6, W, Hh, img_scale = 4, x0, y, x;
    float lo = img[0], hi = img[0];
    size_t k;
    unsigned char *px;
    ea_error err;
    ea_status st;
    for (l = 0; l < L; l++) {
        maxh = pr->layer[l].H > maxh ? pr->layer[l].H : maxh;
        maxn = pr->layer[l].nq > maxn ? pr->layer[l].nq : maxn;
        maxn = pr->layer[l].nk > maxn ? pr->layer[l].nk : maxn;
    }
    if (!L) {
        snprintf(why, whyn, "no attention weights (this row does not weight values by query-key scores)");
        return 0;
    }
    cell = maxn >= 160 ? 1 : 160 / maxn;
    for (k = 0; k < (size_t)ic * ih * iw; k++) {
        lo = img[k] < lo ? img[k] : lo;
        hi = img[k] > hi ? img[k] : hi;
    }
    x0 = iw * img_scale + 2 * gap;
    W = x0 + maxh * (maxn * cell + gap);
    Hh = L * (maxn * cell + gap) + gap + 18; /* + the colour bar */
    if (Hh < ih * img_scale + 2 * gap) Hh = ih * img_scale + 2 * gap;
    px = (unsigned char *)malloc((size_t)W * Hh * 3);
    if (!px) {
        snprintf(why, whyn, "out of memory");
        return 0;
    }
    memset(px, 255, (size_t)W * Hh * 3);
    for (y = 0; y < ih * img_scale; y++) /* the input, grey or RGB */
        for (x = 0; x < iw * img_scale; x++) {
            int c, cc;
            for (c = 0; c < 3; c++) {
                float v = 0.0f;
                if (ic == 3) v = img[((size_t)c * ih + y / img_scale) * iw + x / img_scale];
                else {
                    for (cc = 0; cc < ic; cc++) v += img[((size_t)cc * ih + y / img_scale) * iw + x / img_scale];
                    v /= (float)ic;
                }
                px[((size_t)(y + gap) * W + x + gap) * 3 + c] = (unsigned char)(hi > lo ? 255.0f * (v - lo) / (hi - lo) + 0.5f : 0);
            }
        }
    for (l = 0; l < L; l++) {
        int h, H = pr->layer[l].H, nq = pr->layer[l].nq, nk = pr->layer[l].nk;
        for (h = 0; h < H; h++) {
            const float *w = pr->buf + pr->layer[l].off + (size_t)h * nq * nk;
            float mx = 0.0f;
            int i, j, ox = x0 + h * (maxn * cell + gap), oy = gap + l * (maxn * cell + gap);
            for (i = 0; i < nq * nk; i++) mx = w[i] > mx ? w[i] : mx;
            for (i = 0; i < nq * cell; i++)
                for (j = 0; j < nk * cell; j++) {
                    float v = w[(size_t)(i / cell) * nk + j / cell];
                    colour(mx > 0.0f ? v / mx : 0.0, px + ((size_t)(oy + i) * W + ox + j) * 3);
                }
        }
    }
    for (x = 0; x < W - x0 - gap; x++) /* colour bar: 0 on the left, each map's maximum on the right */
        for (y = Hh - 14; y < Hh - 4; y++) colour((double)x / (W - x0 - gap - 1), px + ((size_t)y * W + x0 + x) * 3);
    st = ea_png_write(path, W, Hh, 3, px, &err);
    free(px);
    if (st != EA_OK) snprintf(why, whyn, "%s", err.msg);
    return st == EA_OK;
}

/* The maps of the first evaluation sample (x: its input, as the model sees it). */
static void heatmap_row(const options *o, const ea_vit *m, const task_data *d, const float *input, row_result *res) {
    static float buf[1 << 22]; /* 16 MiB of weights: 4 layers of 8 heads at n = 362 */
    ea_attn_probe pr;
    ea_ctx ctx;
    ea_tensor *x;
    char path[1024];
    memset(&pr, 0, sizeof pr);
    pr.buf = buf;
    pr.cap = sizeof buf / sizeof *buf;
    ea_ctx_init(&ctx, 0);
    ctx.grad_enabled = 0;
    ctx.probe = &pr;
    x = ea_tensor_4d(&ctx, 1, d->c, d->h, d->w, 0);
    if (x) memcpy(x->data, input, x->size * sizeof(float));
    if (!x || !ea_vit_forward(&ctx, m, x)) {
        snprintf(res->heatmap, sizeof res->heatmap, "failed: %s", ctx.err.msg);
    } else {
        snprintf(path, sizeof path, "%s/heatmap_%s.png", o->out, res->name);
        if (write_heatmap(path, &pr, input, d->c, d->h, d->w, res->heatmap, sizeof res->heatmap))
            snprintf(res->heatmap, sizeof res->heatmap, "heatmap_%s.png", res->name);
    }
    ea_ctx_free(&ctx);
}

/* Samples idx[0..n) of the task into x (and labels, or positions y). */
static void task_batch(const task_data *d, const ea_images *im, const int *idx, int n, float *x, int *labels, float *y) {
    int i;
    if (!d->vids) {
        ea_images_batch(im, idx, n, d->mean, d->sd, 0, 0, NULL, x, labels);
        return;
    }
    for (i = 0; i < n; i++) {
        int T = d->vids->n_frames - 1;
        ea_videos_pair(d->vids, idx[i] / T, idx[i] % T, x + (size_t)i * d->c * d->h * d->w, y + 2 * i);
    }
}

/* The tracker's score on pairs [e0, e0 + en): mean error (px) and the
   share within 2 px; 0 on failure (the reason in ctx->err). */
static int tracker_evaluate(ea_ctx *ctx, const ea_vit *m, const task_data *d, float *xb, float *yb, int *idx, int bmax,
                            double *err_px, double *within2) {
    int done = 0, i, within = 0;
    double sum = 0.0;
    ctx->grad_enabled = 0;
    while (done < d->en) {
        int b = d->en - done < bmax ? d->en - done : bmax;
        ea_tensor *x, *pred;
        for (i = 0; i < b; i++) idx[i] = d->e0 + done + i;
        task_batch(d, NULL, idx, b, xb, NULL, yb);
        ea_ctx_reset(ctx);
        x = ea_tensor_4d(ctx, b, d->c, d->h, d->w, 0);
        if (!x) break;
        memcpy(x->data, xb, x->size * sizeof(float));
        if (!(pred = ea_vit_forward(ctx, m, x))) break;
        for (i = 0; i < b; i++) {
            double dx = pred->data[2 * i] - yb[2 * i], dy = pred->data[2 * i + 1] - yb[2 * i + 1], e = sqrt(dx * dx + dy * dy);
            sum += e;
            within += e < 2.0;
        }
        done += b;
    }
    ctx->grad_enabled = 1;
    if (done < d->en) return 0;
    *err_px = sum / d->en;
    *within2 = 100.0 * within / d->en;
    return 1;
}

/* Trains row `name` configured by t on the task's training samples for
   `epochs`, scoring after each epoch on its evaluation samples; with
   `full`, then times it and draws its heatmap. */
static void train_row(const options *o, const char *name, const trial *t, long epochs, const task_data *d, int full,
                      row_result *res, int row_i, int n_rows) {
    ea_vit_config cfg;
    ea_vit m;
    ea_ctx ctx, ectx; /* training; evaluation and timing (so the arena peak is training's) */
    ea_error err;
    ea_adamw opt;
    ea_rng rng;
    int host = !strcmp(o->model, "vit") ? EA_HOST_VIT : !strcmp(o->model, "mlp") ? EA_HOST_MLP : EA_HOST_CNN;
    int bmax = o->batch > 256 ? (int)o->batch : 256, n_train = d->n_train;
    int *order = (int *)malloc((size_t)n_train * sizeof(int)), *yb = (int *)malloc((size_t)bmax * sizeof(int));
    int *idx = (int *)malloc((size_t)bmax * sizeof(int)), i, ep;
    float *xb = (float *)malloc((size_t)bmax * d->c * d->h * d->w * sizeof(float));
    float *pos = (float *)malloc((size_t)bmax * 2 * sizeof(float));
    long steps = (n_train + o->batch - 1) / o->batch, s, step = 0;
    double t0;
    if (epochs > MAX_EPOCHS) epochs = MAX_EPOCHS;
    memset(res, 0, sizeof *res);
    snprintf(res->name, sizeof res->name, "%s", name);
    if (!order || !yb || !idx || !xb || !pos) {
        snprintf(res->error, sizeof res->error, "out of memory");
        free(order); free(yb); free(idx); free(xb); free(pos);
        return;
    }
    if (d->vids) ea_tracker_config_default(&cfg, name);
    else ea_classifier_config_default(&cfg, host, name, d->c, d->h, d->train->classes);
    if (!d->vids && host != EA_HOST_MLP) cfg.pool = pool_of(o);
    if (t->dim) cfg.dim = t->dim;
    if (t->heads) cfg.n_heads = t->heads;
    if (cfg.n_kv_heads > cfg.n_heads) cfg.n_kv_heads = cfg.n_heads;
    if (t->opt[0]) memcpy((char *)&cfg.opt + t->opt_off, &t->opt_value, sizeof(int));
    if (ea_vit_init(&m, &cfg, (uint64_t)o->seed + 1, &err) != EA_OK) {
        snprintf(res->error, sizeof res->error, "%s", err.msg);
        free(order); free(yb); free(idx); free(xb); free(pos);
        return;
    }
    for (i = 0; i < m.params.count; i++)
        if (!m.params.info[i].buffer) res->params += (double)m.params.tensors[i]->size;
    res->flops = ea_vit_flops(&m);
    ea_ctx_init(&ctx, 0);
    ea_ctx_init(&ectx, 0);
    ea_rng_seed(&ctx.rng, (uint64_t)o->seed, 77);
    ea_rng_seed(&rng, (uint64_t)o->seed, 5);
    ea_adamw_init(&opt, (float)t->lr, (float)t->wd);
    for (i = 0; i < n_train; i++) order[i] = i;
    t0 = ea_time_sec();
    for (ep = 0; ep < epochs; ep++) {
        double loss_sum = 0.0, te = ea_time_sec();
        for (i = n_train - 1; i > 0; i--) { /* the same order for every row */
            int j = (int)ea_rng_below(&rng, (uint32_t)i + 1), tmp = order[i];
            order[i] = order[j];
            order[j] = tmp;
        }
        for (s = 0; s < steps; s++, step++) {
            int b = (int)(n_train - s * o->batch < o->batch ? n_train - s * o->batch : o->batch);
            float loss;
            task_batch(d, d->train, order + s * o->batch, b, xb, yb, pos);
            if (d->vids) { /* seed 000's schedule: cosine over the steps, no warm-up, no clipping */
                ea_tensor *x, *y, *l, *aux = NULL;
                opt.lr = ea_lr_cosine(step, steps * epochs, 0, (float)t->lr, 0.0f);
                ea_ctx_reset(&ctx);
                ctx.training = 1;
                x = ea_tensor_4d(&ctx, b, d->c, d->h, d->w, 0);
                y = ea_tensor_2d(&ctx, b, 2, 0);
                if (x && y) {
                    memcpy(x->data, xb, x->size * sizeof(float));
                    memcpy(y->data, pos, y->size * sizeof(float));
                }
                ea_params_zero_grad(&m.params);
                l = x && y ? ea_mse_loss(&ctx, ea_vit_forward_aux(&ctx, &m, x, 0.01f, &aux), y) : NULL;
                if (l && aux) l = ea_add(&ctx, l, aux);
                if (!l || ea_backward(&ctx, l) != EA_OK) {
                    snprintf(res->error, sizeof res->error, "%s", ctx.err.msg);
                    goto done;
                }
                loss = l->data[0];
            } else {
                opt.lr = ea_lr_cosine(step, steps * epochs, steps < 10 ? 1 : steps / 2, (float)t->lr, 0.0f);
                if (ea_classifier_grad(&ctx, &m, xb, yb, b, 0, 0.1f, 0.01f, &loss, NULL) != EA_OK) {
                    snprintf(res->error, sizeof res->error, "%s", ctx.err.msg);
                    goto done;
                }
            }
            if (!isfinite(loss) || ea_params_nonfinite(&m.params, 1)) {
                snprintf(res->error, sizeof res->error, "the loss became NaN or Inf in epoch %d", ep + 1);
                goto done;
            }
            if (!d->vids) ea_grad_clip(&m.params, 1.0f);
            ea_adamw_step(&opt, &m.params);
            loss_sum += loss;
            if (o->bars && (s % 4 == 0 || s == steps - 1)) {
                double el = ea_time_sec() - te, left = el / (s + 1) * (steps - s - 1);
                fprintf(stderr, "\r  [%2d/%d] %-12s epoch %d/%ld  step %ld/%ld  loss %.3f  %.0f s left in the epoch   ", row_i + 1,
                        n_rows, name, ep + 1, epochs, s + 1, steps, loss, left);
            }
        }
        res->train_s = ea_time_sec() - t0;
        res->loss[ep] = loss_sum / steps;
        res->epoch_x[ep] = ep + 1;
        if (d->vids) {
            if (!tracker_evaluate(&ectx, &m, d, xb, pos, idx, bmax, &res->test_score[ep], &res->score2)) {
                snprintf(res->error, sizeof res->error, "evaluation: %s", ectx.err.msg);
                goto done;
            }
        } else {
            cli_eval_result ev;
            if (!cli_evaluate(&ectx, &m, NULL, d->eval, d->e0, d->e0 + d->en, d->mean, d->sd, xb, yb, idx, bmax, &ev)) {
                snprintf(res->error, sizeof res->error, "evaluation: %s", ectx.err.msg);
                goto done;
            }
            res->test_score[ep] = 100.0 * ev.top1;
            res->score2 = 100.0 * ev.top5;
        }
        res->epochs = ep + 1;
        t0 = ea_time_sec() - res->train_s; /* evaluation is not training time */
    }
    res->score = res->test_score[epochs - 1];
    res->arena_peak = ea_ctx_peak_bytes(&ctx);
    res->ok = 1;
    if (!full) goto done;
    for (i = 0; i < 32; i++) idx[i] = d->e0 + i % d->en;
    task_batch(d, d->eval, idx, 32, xb, yb, pos);
    res->infer_b1_ms = forward_time(&ectx, &m, d, xb, 1, 100) * 1e3;
    res->ips_b32 = 32.0 / forward_time(&ectx, &m, d, xb, 32, 10);
    res->ok = res->infer_b1_ms > 0.0;
    if (!res->ok) snprintf(res->error, sizeof res->error, "timing: %s", ectx.err.msg);
    if (res->ok && o->heatmaps) heatmap_row(o, &m, d, xb, res);
done:
    if (o->bars) fprintf(stderr, "\r%100s\r", "");
    ea_ctx_free(&ctx);
    ea_ctx_free(&ectx);
    ea_vit_free(&m);
    free(order); free(yb); free(idx); free(xb); free(pos);
}
/* --- successive halving (seed 001's search) ----------------------------------
   A row's candidates: its defaults, then draws from a grid (learning rate
   a third of, equal to or 3x --lr; weight decay 0.01, 0.05 or 0.1; the
   host's width or half of it; 2 or 4 heads; the row's own option at three
   values).  Round r trains every candidate still in from the start for
   search_epochs·2^r epochs on the training images outside the validation
   split and keeps the better half by validation top-1 (a candidate that
   fails to build or diverges scores -1), until one is left. */
typedef struct search_result {
    trial best;
    double val_score, seconds;
    long epochs_trained;
    int tried;
} search_result;

static void search_row(const options *o, const char *name, int row_i, int n_rows, const task_data *val, search_result *sr) {
#define MAXC 64 /* --candidates' limit */
    static trial cand[MAXC];
    static row_result res;
    double score[MAXC], t0 = ea_time_sec();
    int alive[MAXC] = {0}, na = (int)(o->candidates < MAXC ? o->candidates : MAXC), c, k, round, r_opt = -1, base_dim, host;
#undef MAXC
    ea_vit_config def;
    ea_rng rng;
    host = !strcmp(o->model, "vit") ? EA_HOST_VIT : !strcmp(o->model, "mlp") ? EA_HOST_MLP : EA_HOST_CNN;
    if (val->vids) ea_tracker_config_default(&def, name);
    else ea_classifier_config_default(&def, host, name, val->c, val->h, val->train->classes);
    base_dim = def.dim;
    for (k = 0; k < (int)(sizeof row_opts / sizeof row_opts[0]); k++)
        if (!strcmp(row_opts[k].row, name)) r_opt = k;
    ea_rng_seed(&rng, (uint64_t)o->seed, 1000 + (uint64_t)row_i);
    for (c = 0; c < na; c++) {
        trial *t = &cand[c];
        memset(t, 0, sizeof *t);
        t->lr = o->lr;
        t->wd = o->wd;
        if (c > 0) { /* candidate 0 keeps every default */
            static const double wds[3] = {0.01, 0.05, 0.1}, lr_mult[3] = {1.0 / 3.0, 1.0, 3.0};
            t->lr = o->lr * lr_mult[ea_rng_below(&rng, 3)];
            t->wd = wds[ea_rng_below(&rng, 3)];
            t->dim = ea_rng_below(&rng, 2) ? base_dim / 2 : 0;
            t->heads = ea_rng_below(&rng, 2) ? 2 : 0;
            if (r_opt >= 0) {
                snprintf(t->opt, sizeof t->opt, "%s", row_opts[r_opt].opt);
                t->opt_off = row_opts[r_opt].off;
                t->opt_value = row_opts[r_opt].v[ea_rng_below(&rng, 3)];
            }
        }
        alive[c] = c;
        score[c] = -1.0;
    }
    sr->tried = na;
    sr->epochs_trained = 0;
    for (round = 0; na > 1; round++) {
        long ep = o->search_epochs << round;
        for (k = 0; k < na; k++) {
            c = alive[k];
            train_row(o, name, &cand[c], ep, val, 0, &res, row_i, n_rows);
            /* higher is better: top-1, or minus the tracker's error */
            score[c] = !res.ok || res.error[0] ? -1e30 : o->metric->lower_better ? -res.score : res.score;
            sr->epochs_trained += ep;
        }
        for (k = 1; k < na; k++) { /* best first (insertion sort; ties keep the earlier candidate) */
            int x = alive[k], j = k;
            while (j > 0 && score[alive[j - 1]] < score[x]) {
                alive[j] = alive[j - 1];
                j--;
            }
            alive[j] = x;
        }
        if (!o->quiet) {
            char txt[160];
            trial_text(&cand[alive[0]], txt, sizeof txt);
            fprintf(stderr, "  [%2d/%d] %-12s search round %d: %d candidates x %ld epochs, best validation %s %.2f (%s)\n",
                    row_i + 1, n_rows, name, round + 1, na, ep, o->metric->name,
                    o->metric->lower_better ? -score[alive[0]] : score[alive[0]], txt);
        }
        na = (na + 1) / 2;
    }
    sr->best = cand[alive[0]];
    sr->val_score = o->metric->lower_better ? -score[alive[0]] : score[alive[0]];
    sr->seconds = ea_time_sec() - t0;
}

static void write_search(const options *o, char rows[][32], const search_result *sr, int n, int n_val) {
    char path[1024], txt[160];
    FILE *md = out_file(o, "search.md", path, sizeof path), *js;
    int i;
    if (md) {
        fprintf(md, "# Successive halving: the configuration chosen for each row\n\n%s, %s, %ld candidates a row, "
                    "first round %ld epoch(s), doubling; validation: %d %s%s.\n\n"
                    "| row | chosen | validation %s | candidates | epochs trained | seconds |\n|---|---|---|---|---|---|\n",
                o->metric->lower_better ? "the tracker" : o->model, o->task, o->candidates, o->search_epochs, n_val,
                o->metric->lower_better ? "frame pairs of the validation videos" : "training images held out",
                o->metric->lower_better ? "" : " (the last ones)", o->metric->name);
        for (i = 0; i < n; i++) {
            trial_text(&sr[i].best, txt, sizeof txt);
            fprintf(md, "| %s | %s | %.2f | %d | %ld | %.0f |\n", rows[i], txt, sr[i].val_score, sr[i].tried, sr[i].epochs_trained,
                    sr[i].seconds);
        }
        fclose(md);
    }
    js = out_file(o, "search.json", path, sizeof path);
    if (js) {
        fprintf(js, "{\"model\":\"%s\",\"task\":\"%s\",\"validation_images\":%d,\"rows\":[\n", o->model, o->task, n_val);
        for (i = 0; i < n; i++) {
            const trial *t = &sr[i].best;
            fprintf(js, "  {\"row\":\"%s\",\"lr\":%g,\"wd\":%g,\"width\":%d,\"heads\":%d,\"option\":\"%s\",\"option_value\":%d,"
                        "\"val_%s\":%.3f,\"candidates\":%d,\"epochs_trained\":%ld,\"seconds\":%.1f}%s\n",
                    rows[i], t->lr, t->wd, t->dim, t->heads, t->opt, t->opt[0] ? t->opt_value : 0, o->metric->key, sr[i].val_score,
                    sr[i].tried, sr[i].epochs_trained, sr[i].seconds, i + 1 < n ? "," : "");
        }
        fprintf(js, "]}\n");
        fclose(js);
    }
}

static const row_result *find_row(const row_result *r, int n, const char *name) {
    int i;
    for (i = 0; i < n; i++)
        if (r[i].ok && !strcmp(r[i].name, name)) return &r[i];
    return NULL;
}

static void write_classification(const options *o, const row_result *r, int n, const char *data_desc) {
    const row_result *none = find_row(r, n, "none"), *mha = find_row(r, n, "mha");
    const task_metric *mt = o->metric;
    char path[1024], where[96];
    FILE *md = out_file(o, "compare.md", path, sizeof path), *csv, *js;
    int i;
    where[0] = '\0'; /* the tracker has one model */
    if (!mt->lower_better)
        snprintf(where, sizeof where, "%s host%s, ", o->model,
                 !strcmp(o->model, "mlp") ? "" : pool_of(o) == EA_POOL_CLS ? " (class token)" : pool_of(o) == EA_POOL_MAX ? " (max-pools)" : " (mean pooling)");
    if (md) {
        fprintf(md, "# Attention rows compared: %s%s\n\n%ld epochs, batch %ld, AdamW lr %g wd %g, seed %ld, %s, %d thread%s.\n"
                    "Δ: change in test %s against the `none` control and against `mha`%s.\n\n",
                where, data_desc, o->epochs, o->batch, o->lr, o->wd, o->seed, EA_ISA, ea_num_threads(),
                ea_num_threads() == 1 ? "" : "s", mt->name, mt->lower_better ? " (negative: a smaller error)" : " (points)");
        fprintf(md, "| row | params | MFLOP/%s | train arena MiB | train s | batch 1 ms | batch 32 %ss/s | %s | %s | Δ none | Δ mha |%s\n"
                    "|---|---|---|---|---|---|---|---|---|---|---|%s\n", mt->per, mt->per, mt->name, mt->name2,
                o->search ? " configuration (search.md) |" : "", o->search ? "---|" : "");
        for (i = 0; i < n; i++) {
            if (!r[i].ok) {
                fprintf(md, "| %s | failed: %s |||||||||| \n", r[i].name, r[i].error);
                continue;
            }
            fprintf(md, "| %s | %.0f | %.2f | %.1f | %.1f | %.3f | %.0f | %.2f | %.2f | ", r[i].name, r[i].params, r[i].flops / 1e6,
                    r[i].arena_peak / 1048576.0, r[i].train_s, r[i].infer_b1_ms, r[i].ips_b32, r[i].score, r[i].score2);
            if (none) fprintf(md, "%+.2f", r[i].score - none->score);
            fprintf(md, " | ");
            if (mha) fprintf(md, "%+.2f", r[i].score - mha->score);
            fprintf(md, " |");
            if (o->search) fprintf(md, " %s |", r[i].config);
            fprintf(md, "\n");
        }
        if (o->heatmaps) {
            fprintf(md, "\n## Attention weights\n\nThe first test %s%s, then one map per layer (rows) and head (columns): "
                        "weight of key (column) for query (row), each map scaled to its own maximum (dark blue 0, yellow the "
                        "maximum).\n\n", mt->per, mt->lower_better ? " (its two frames averaged)" : "");
            for (i = 0; i < n; i++)
                if (r[i].ok && !strncmp(r[i].heatmap, "heatmap_", 8))
                    fprintf(md, "**%s**\n\n![%s](%s)\n\n", r[i].name, r[i].name, r[i].heatmap);
                else if (r[i].ok)
                    fprintf(md, "**%s**: %s\n\n", r[i].name, r[i].heatmap);
        }
        fclose(md);
    }
    csv = out_file(o, "compare.csv", path, sizeof path);
    if (csv) {
        /* columns named for images keep their names for the tracker's frame pairs */
        fprintf(csv, "row,ok,error,params,flops_per_image,train_arena_bytes,train_seconds,infer_ms_b1,images_per_s_b32,%s,%s,"
                     "delta_%s_none,delta_%s_mha\n", mt->key, mt->key2, mt->key, mt->key);
        for (i = 0; i < n; i++) {
            char err[320];
            size_t k;
            snprintf(err, sizeof err, "%s", r[i].error);
            for (k = 0; err[k]; k++)
                if (err[k] == '"' || err[k] == ',') err[k] = ' ';
            fprintf(csv, "%s,%d,\"%s\",%.0f,%.0f,%zu,%.3f,%.4f,%.1f,%.3f,%.3f,", r[i].name, r[i].ok, err, r[i].params, r[i].flops,
                    r[i].arena_peak, r[i].train_s, r[i].infer_b1_ms, r[i].ips_b32, r[i].score, r[i].score2);
            if (r[i].ok && none) fprintf(csv, "%.3f", r[i].score - none->score);
            fprintf(csv, ",");
            if (r[i].ok && mha) fprintf(csv, "%.3f", r[i].score - mha->score);
            fprintf(csv, "\n");
        }
        fclose(csv);
    }
    js = out_file(o, "compare.json", path, sizeof path);
    if (js) {
        fprintf(js, "{\"task\":\"%s\",\"model\":\"%s\",\"epochs\":%ld,\"batch\":%ld,\"threads\":%d,\"isa\":\"%s\",\"rows\":[\n",
                o->task, o->model, o->epochs, o->batch, ea_num_threads(), EA_ISA);
        for (i = 0; i < n; i++) {
            int e;
            fprintf(js, "  {\"row\":\"%s\",\"ok\":%s", r[i].name, r[i].ok ? "true" : "false");
            if (!r[i].ok) {
                fprintf(js, ",\"error\":\"");
                svg_text_escaped(js, r[i].error); /* no quotes or angle brackets left */
                fprintf(js, "\"}%s\n", i + 1 < n ? "," : "");
                continue;
            }
            fprintf(js, ",\"params\":%.0f,\"flops_per_image\":%.0f,\"train_arena_bytes\":%zu,\"train_seconds\":%.3f,"
                        "\"infer_ms_b1\":%.4f,\"images_per_s_b32\":%.1f,\"%s\":%.3f,\"%s\":%.3f,\"loss\":[",
                    r[i].params, r[i].flops, r[i].arena_peak, r[i].train_s, r[i].infer_b1_ms, r[i].ips_b32, mt->key, r[i].score,
                    mt->key2, r[i].score2);
            for (e = 0; e < r[i].epochs; e++) fprintf(js, "%s%.5f", e ? "," : "", r[i].loss[e]);
            fprintf(js, "],\"test_%s\":[", mt->key);
            for (e = 0; e < r[i].epochs; e++) fprintf(js, "%s%.3f", e ? "," : "", r[i].test_score[e]);
            fprintf(js, "]}%s\n", i + 1 < n ? "," : "");
        }
        fprintf(js, "]}\n");
        fclose(js);
    }
    { /* charts */
        static svg_chart c;
        static double lat[MAX_ROWS], acc[MAX_ROWS];
        int k = 0;
        memset(&c, 0, sizeof c);
        c.title = mt->lower_better ? "Test error against latency at batch 1" : "Test top-1 against latency at batch 1";
        c.xlabel = mt->lower_better ? "ms per frame pair at batch 1" : "ms per image at batch 1";
        c.ylabel = mt->lower_better ? "test error (px)" : "test top-1 (%)";
        c.scatter = 1;
        for (i = 0; i < n && k < SVG_MAX_SERIES; i++) {
            if (!r[i].ok) continue;
            lat[k] = r[i].infer_b1_ms;
            acc[k] = r[i].score;
            c.series[k].name = r[i].name;
            c.series[k].x = &lat[k];
            c.series[k].y = &acc[k];
            c.series[k].n = 1;
            k++;
        }
        c.n_series = k;
        snprintf(path, sizeof path, "%s/accuracy_latency.svg", o->out);
        if (k && !svg_chart_write(path, &c)) fprintf(stderr, "compare: cannot write %s\n", path);
        memset(&c, 0, sizeof c);
        c.xlabel = "epoch";
        for (i = 0, k = 0; i < n && k < SVG_MAX_SERIES; i++) {
            if (!r[i].ok) continue;
            c.series[k].name = r[i].name;
            c.series[k].x = r[i].epoch_x;
            c.series[k].y = r[i].loss;
            c.series[k].n = r[i].epochs;
            k++;
        }
        c.n_series = k;
        c.title = "Training loss per epoch";
        c.ylabel = "mean training loss";
        snprintf(path, sizeof path, "%s/curves_loss.svg", o->out);
        if (k && !svg_chart_write(path, &c)) fprintf(stderr, "compare: cannot write %s\n", path);
        for (i = 0, k = 0; i < n && k < SVG_MAX_SERIES; i++)
            if (r[i].ok) c.series[k++].y = r[i].test_score;
        c.title = mt->lower_better ? "Test error per epoch" : "Test top-1 per epoch";
        c.ylabel = mt->lower_better ? "test error (px)" : "test top-1 (%)";
        snprintf(path, sizeof path, "%s/curves_%s.svg", o->out, mt->curve);
        if (k && !svg_chart_write(path, &c)) fprintf(stderr, "compare: cannot write %s\n", path);
    }
}

static int classification(const options *o) {
    static row_result res[MAX_ROWS];
    static trial chosen[MAX_ROWS];
    char rows[MAX_ROWS][32], desc[160];
    ea_images train, test;
    ea_videos vids;
    ea_error err;
    float mean[3], sd[3];
    task_data td, vd; /* the table's training and test data; the search's training and validation data */
    int n_rows = row_list(o->attn, rows), i, n_train = 0, n_val = 0;
    double t0 = ea_time_sec();
    if (!n_rows) return 2;
    memset(&train, 0, sizeof train);
    memset(&test, 0, sizeof test);
    memset(&vids, 0, sizeof vids);
    memset(&td, 0, sizeof td);
    if (!strcmp(o->task, "tracker")) {
        /* seed 000's videos, split by video as track does: 80% train, 10% validation, 10% test */
        ea_video_config vc;
        int nv, n_train_v, n_val_v, T;
        ea_video_config_default(&vc);
        vc.n_videos = (int)o->videos;
        vc.n_frames = (int)o->frames;
        vc.seed = (uint64_t)o->seed * 2654435761u + 1u;
        if (ea_videos_generate(&vids, &vc, &err) != EA_OK) {
            fprintf(stderr, "compare: %s\n", err.msg);
            return 2;
        }
        nv = vids.n_videos;
        T = vids.n_frames - 1;
        n_train_v = nv * 8 / 10;
        n_val_v = nv / 10 > 0 ? nv / 10 : 1;
        td.vids = &vids;
        td.c = 2;
        td.h = vids.h;
        td.w = vids.w;
        td.n_train = n_train_v * T;
        td.e0 = (n_train_v + n_val_v) * T;
        td.en = (nv - n_train_v - n_val_v) * T;
        vd = td;
        vd.e0 = n_train_v * T;
        vd.en = n_val_v * T;
        n_train = td.n_train;
        n_val = vd.en;
        snprintf(desc, sizeof desc, "seed 000's tracker on %d generated videos of %d frames (%d/%d/%d train/validation/test)",
                 nv, vids.n_frames, n_train_v, n_val_v, nv - n_train_v - n_val_v);
    } else if (!strcmp(o->task, "shapes")) {
        if (ea_images_shapes(&train, (int)o->images, (uint64_t)o->seed * 2 + 1, &err) != EA_OK ||
            ea_images_shapes(&test, (int)o->test_images, (uint64_t)o->seed * 2 + 2, &err) != EA_OK) {
            fprintf(stderr, "compare: %s\n", err.msg);
            return 2;
        }
    } else if (!strncmp(o->task, "fashion-mnist", 13) && (o->task[13] == 0 || o->task[13] == ':')) {
        if (ea_images_fashion_mnist(&train, &test, o->task[13] ? o->task + 14 : "/usr/share/datasets/fashion-mnist", &err) != EA_OK) {
            fprintf(stderr, "compare: %s\n", err.msg);
            return 2;
        }
    } else if (!strncmp(o->task, "cifar10:", 8)) {
        if (ea_images_cifar10(&train, &test, o->task + 8, &err) != EA_OK) {
            fprintf(stderr, "compare: %s\n", err.msg);
            return 2;
        }
    } else {
        fprintf(stderr, "compare: --task must be shapes, fashion-mnist[:DIR], cifar10:DIR or tracker, got '%s'\n", o->task);
        return 2;
    }
    if (!td.vids) {
        n_train = o->limit && o->limit < train.n ? (int)o->limit : train.n;
        ea_images_stats(&train, mean, sd);
        td.train = &train;
        td.eval = &test;
        td.mean = mean;
        td.sd = sd;
        td.c = train.c;
        td.h = train.h;
        td.w = train.w;
        td.n_train = n_train;
        td.e0 = 0;
        td.en = test.n;
        /* the search: the last n_val training images validate */
        n_val = o->val ? (int)o->val : n_train / 10;
        vd = td;
        vd.eval = &train;
        vd.n_train = n_train - n_val;
        vd.e0 = n_train - n_val;
        vd.en = n_val;
        snprintf(desc, sizeof desc, "%s (%d training, %d test images of %dx%dx%d)", o->task, n_train, test.n, train.c, train.h,
                 train.w);
    }
    for (i = 0; i < n_rows; i++) { /* without --search: every row at --lr, --wd and its defaults */
        memset(&chosen[i], 0, sizeof chosen[i]);
        chosen[i].lr = o->lr;
        chosen[i].wd = o->wd;
    }
    if (!o->quiet && o->dist->d.rank == 0)
        fprintf(stderr, "compare: %d rows%s%s%s on %s, %ld epochs each, %d thread%s\n", n_rows, td.vids ? "" : " in the ",
                td.vids ? "" : o->model, td.vids ? "" : " host", desc, o->epochs, ea_num_threads(), ea_num_threads() == 1 ? "" : "s");
    if (!o->quiet && o->dist->d.size > 1 && o->dist->d.rank == 0)
        fprintf(stderr, "compare: %d processes; row i is trained by process i %% %d\n", o->dist->d.size, o->dist->d.size);
    if (o->search) {
        static search_result sr[MAX_ROWS];
        if (!td.vids && n_val >= n_train - o->batch) {
            fprintf(stderr, "compare: --val %d leaves too few of the %d training images to train on\n", n_val, n_train);
            return 2;
        }
        for (i = 0; i < n_rows; i++)
            if (cli_dist_owns(o->dist, i)) search_row(o, rows[i], i, n_rows, &vd, &sr[i]);
        if (cli_dist_share(o->dist, sr, sizeof sr[0], n_rows, &err) != EA_OK) {
            fprintf(stderr, "compare: %s\n", err.msg);
            return 1;
        }
        if (o->dist->d.rank == 0) write_search(o, rows, sr, n_rows, n_val);
        for (i = 0; i < n_rows; i++) chosen[i] = sr[i].best;
    }
    for (i = 0; i < n_rows; i++) {
        if (!cli_dist_owns(o->dist, i)) continue;
        train_row(o, rows[i], &chosen[i], o->epochs, &td, 1, &res[i], i, n_rows);
        if (o->search) trial_text(&chosen[i], res[i].config, sizeof res[i].config);
        res[i].ok = res[i].ok && !res[i].error[0];
        if (!o->quiet) {
            if (res[i].ok)
                fprintf(stderr, "  [%2d/%d] %-12s %s %6.2f  %s %6.2f  %7.1f s  %.3f ms at batch 1\n", i + 1, n_rows, rows[i],
                        o->metric->name, res[i].score, o->metric->name2, res[i].score2, res[i].train_s, res[i].infer_b1_ms);
            else
                fprintf(stderr, "  [%2d/%d] %-12s failed: %s\n", i + 1, n_rows, rows[i], res[i].error);
        }
    }
    if (cli_dist_share(o->dist, res, sizeof res[0], n_rows, &err) != EA_OK) {
        fprintf(stderr, "compare: %s\n", err.msg);
        return 1;
    }
    if (o->dist->d.rank > 0) goto out; /* rank 0 writes the table */
    write_classification(o, res, n_rows, desc);
    if (!o->quiet)
        fprintf(stderr, "compare: %.0f s; wrote %s/compare.md, compare.csv, compare.json, accuracy_latency.svg, curves_*.svg\n",
                ea_time_sec() - t0, o->out);
out:
    ea_images_free(&train);
    ea_images_free(&test);
    ea_videos_free(&vids);
    return 0;
}

/* --- scaling ---------------------------------------------------------------- */

/* Fastest forward and forward + backward of one layer at length n, and the
   arena's peak; 0 on success, else the error in err. */
static int time_layer(const options *o, const char *name, int n, double *tf, double *tb, double *mib, char *err, size_t errn) {
    ea_attn_config cfg;
    ea_attn a;
    ea_params ps;
    ea_error e;
    ea_ctx ctx;
    int r, dim = (int)(o->heads * o->head_dim);
    memset(&cfg, 0, sizeof cfg);
    memset(&ps, 0, sizeof ps);
    cfg.dim = dim;
    cfg.n_heads = (int)o->heads;
    cfg.n_kv_heads = o->heads >= 2 ? (int)o->heads / 2 : 1; /* gqa: two query heads a K/V head */
    cli_long_sequence_opts(name, &cfg.opt, n);
    if (ea_attn_build(&a, name, &cfg, &ps, "a", &e) != EA_OK || ea_params_alloc(&ps, &e) != EA_OK) {
        snprintf(err, errn, "%s", e.msg);
        ea_params_free(&ps);
        return 1;
    }
    ea_params_init(&ps, 1);
    ea_ctx_init(&ctx, 0);
    *tf = *tb = INFINITY;
    for (r = -1; r < o->runs; r++) {
        int pass;
        for (pass = 0; pass < 2; pass++) {
            ea_tensor *x, *y, *zero, *loss;
            double t0;
            size_t i;
            ea_ctx_reset(&ctx);
            ctx.grad_enabled = pass;
            ctx.training = pass;
            x = ea_tensor_3d(&ctx, 1, n, dim, pass);
            zero = ea_tensor_3d(&ctx, 1, n, dim, 0);
            if (!x || !zero) break;
            memset(zero->data, 0, zero->size * sizeof(float));
            for (i = 0; i < x->size; i++) x->data[i] = (float)((i * 7) % 13) / 13.0f - 0.5f;
            ea_params_zero_grad(&ps);
            t0 = ea_time_sec();
            y = ea_attn_forward(&ctx, &a, x);
            if (y && pass) {
                loss = ea_mse_loss(&ctx, y, zero);
                if (loss) ea_backward(&ctx, loss);
            }
            if (ctx.err.status != EA_OK || !y) {
                snprintf(err, errn, "%s", ctx.err.msg);
                ea_ctx_free(&ctx);
                ea_params_free(&ps);
                return 1;
            }
            t0 = ea_time_sec() - t0;
            if (r >= 0) {
                if (pass) *tb = t0 < *tb ? t0 : *tb;
                else *tf = t0 < *tf ? t0 : *tf;
            }
        }
    }
    *mib = ea_ctx_peak_bytes(&ctx) / 1048576.0;
    ea_ctx_free(&ctx);
    ea_params_free(&ps);
    return 0;
}

static int scaling(const options *o) {
    static double tf[MAX_ROWS][MAX_N], tb[MAX_ROWS][MAX_N], mem[MAX_ROWS][MAX_N], xs[MAX_N];
    static char errs[MAX_ROWS][320];
    static int got[MAX_ROWS][MAX_N];
    char rows[MAX_ROWS][32], path[1024];
    int n_rows = row_list(o->attn, rows), nn = 0, n, i, k;
    FILE *md, *csv;
    double t_start = ea_time_sec();
    if (!n_rows) return 2;
    for (n = 64; n <= o->max_n && nn < MAX_N; n *= 2) xs[nn++] = n;
    if (!o->quiet)
        fprintf(stderr, "compare --scaling: %d rows, heads %ld x %ld, n = 64 ... %d, %d thread%s\n", n_rows, o->heads, o->head_dim,
                (int)xs[nn - 1], ea_num_threads(), ea_num_threads() == 1 ? "" : "s");
    for (i = 0; i < n_rows; i++) {
        for (k = 0; k < nn; k++) {
            double f, b, mb;
            got[i][k] = 0;
            tf[i][k] = tb[i][k] = mem[i][k] = NAN;
            if (o->bars) fprintf(stderr, "\r  %-12s n = %-6d   ", rows[i], (int)xs[k]);
            if (time_layer(o, rows[i], (int)xs[k], &f, &b, &mb, errs[i], sizeof errs[i])) break;
            tf[i][k] = f * 1e3;
            tb[i][k] = b * 1e3;
            mem[i][k] = mb;
            got[i][k] = 1;
            if (b > 20.0) break; /* this row is done: longer ones would take minutes */
        }
        if (!o->quiet) {
            if (CLI_ISATTY(2)) fprintf(stderr, "\r%60s\r", "");
            if (got[i][0]) fprintf(stderr, "  %-12s done (up to n = %d)%s%s\n", rows[i], (int)xs[k < nn ? (got[i][k] ? k : k - 1) : nn - 1],
                                   errs[i][0] ? ": stopped: " : "", errs[i]);
            else fprintf(stderr, "  %-12s failed: %s\n", rows[i], errs[i]);
        }
    }
    md = out_file(o, "scaling.md", path, sizeof path);
    csv = out_file(o, "scaling.csv", path, sizeof path);
    if (md) {
        fprintf(md, "# One attention layer against sequence length\n\nheads %ld x %ld, batch 1, %s, %d thread%s; "
                    "forward + backward ms (forward ms) [arena MiB]; slope: log-log slope of forward + backward between the "
                    "last two lengths measured.\n\n| row |",
                o->heads, o->head_dim, EA_ISA, ea_num_threads(), ea_num_threads() == 1 ? "" : "s");
        for (k = 0; k < nn; k++) fprintf(md, " %d |", (int)xs[k]);
        fprintf(md, " slope |\n|---|");
        for (k = 0; k <= nn; k++) fprintf(md, "---|");
        fprintf(md, "\n");
    }
    if (csv) fprintf(csv, "row,n,fwd_ms,fwd_bwd_ms,arena_mib\n");
    for (i = 0; i < n_rows; i++) {
        int last = -1;
        if (md) fprintf(md, "| %s |", rows[i]);
        for (k = 0; k < nn; k++) {
            if (got[i][k]) {
                last = k;
                if (md) fprintf(md, " %.3g (%.3g) [%.1f] |", tb[i][k], tf[i][k], mem[i][k]);
                if (csv) fprintf(csv, "%s,%d,%.5f,%.5f,%.3f\n", rows[i], (int)xs[k], tf[i][k], tb[i][k], mem[i][k]);
            } else if (md) {
                fprintf(md, " |");
            }
        }
        if (md) {
            if (last >= 1) fprintf(md, " %.2f |\n", log(tb[i][last] / tb[i][last - 1]) / log(xs[last] / xs[last - 1]));
            else fprintf(md, " %s |\n", errs[i][0] ? errs[i] : "");
        }
    }
    if (md) fclose(md);
    if (csv) fclose(csv);
    { /* charts: time and memory, log-log, one line per row */
        static svg_chart c;
        int which;
        for (which = 0; which < 2; which++) {
            int s = 0;
            double ref_x = xs[0], ref_y = NAN;
            memset(&c, 0, sizeof c);
            c.logx = c.logy = 1;
            c.xlabel = "sequence length n";
            for (i = 0; i < n_rows && s < SVG_MAX_SERIES; i++) {
                if (!got[i][0] || !strcmp(rows[i], "none")) continue; /* none does no work: it would squash the rest */
                c.series[s].name = rows[i];
                c.series[s].x = xs;
                c.series[s].y = which ? mem[i] : tb[i];
                c.series[s].n = nn;
                /* the reference slopes start where exact attention (mha) starts */
                if (!strcmp(rows[i], "mha") || isnan(ref_y)) ref_y = c.series[s].y[0];
                s++;
            }
            c.n_series = s;
            c.title = which ? "Arena peak of one layer, forward + backward" : "One layer, forward + backward";
            c.ylabel = which ? "MiB" : "ms";
            c.n_refs = 2;
            c.refs[0].name = "O(n)";
            c.refs[0].x0 = ref_x; c.refs[0].y0 = ref_y; c.refs[0].slope = 1.0;
            c.refs[1].name = "O(n²)";
            c.refs[1].x0 = ref_x; c.refs[1].y0 = ref_y; c.refs[1].slope = 2.0;
            snprintf(path, sizeof path, "%s/%s", o->out, which ? "scaling_memory.svg" : "scaling_time.svg");
            if (s && !svg_chart_write(path, &c)) fprintf(stderr, "compare: cannot write %s\n", path);
        }
    }
    if (!o->quiet)
        fprintf(stderr, "compare: %.0f s; wrote %s/scaling.md, scaling.csv, scaling_time.svg, scaling_memory.svg\n",
                ea_time_sec() - t_start, o->out);
    return 0;
}

static int run(int argc, char **argv, cli_dist *dist) {
    options o;
    cli_prog = "compare";
    switch (parse(argc, argv, &o)) {
    case 0: return 2;  /* bad flags, said why */
    case 2: return 0;  /* --help */
    }
    o.dist = dist;
    o.bars = !o.quiet && CLI_ISATTY(2) && dist->d.rank == 0;
#ifdef _OPENMP
    if (o.threads) omp_set_num_threads((int)o.threads);
#endif
    if (!make_dir(o.out)) {
        fprintf(stderr, "compare: cannot create the directory '%s'\n", o.out);
        return 2;
    }
    /* every rank must run the same command (rows are trained on one rank each) */
    if (!cli_dist_ready(dist, "compare", cli_dist_command_hash(argc, argv), 0, 0)) return 2;
    if (o.scaling) return dist->d.rank == 0 ? scaling(&o) : 0;
    return classification(&o);
}

int main(int argc, char **argv) {
    cli_dist dist;
    cli_dist_init(&dist, &argc, &argv);
    return cli_dist_end(&dist, run(argc, argv, &dist));
}
