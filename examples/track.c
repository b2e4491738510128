/* track.c — train and evaluate seed 000's two-frame ViT tracker.

   Build:  cc -O2 -march=native examples/track.c -o track -lm   (add -fopenmp for threads)
   Run:    ./track                 quick default run (< 2 minutes on 2 cores)
           ./track --full          the seed's protocol: 1000 videos, 20 epochs, batch 32
           ./track --attn mqa --json
   Several processes (data-parallel, MPI; see examples/dist.h):
           mpicc -O2 -march=native -fopenmp -DEA_USE_MPI examples/track.c -o track_mpi -lm
           mpirun -np 2 ./track_mpi --threads 1 --full
   On an NVIDIA GPU (section 13 of the header; rows mha, single, local, bigbird, mha-sep, mqa, gqa):
           nvcc -x cu -O2 -arch=sm_90 -DEFFATTN_CUDA examples/track.c -o track_cuda -lcublas -lcublasLt
           ./track_cuda --device cuda --full
   See ./track --help. */
#define _POSIX_C_SOURCE 200809L
#define EFFATTN_IMPLEMENTATION
#include "../effattn.h"

#include "cli.h"
#include "dist.h"

typedef struct options {
    const char *attn, *save, *load, *data, *resume, *mode, *loss_log, *device;
    long videos, frames, epochs, batch, seed, kv_heads, warmup, threads, latency_runs, stop_after;
    double lr, wd, noise, clip, aux;
    int json, full, distractor, causal, quiet, eval_only;
    const char *sched;
    ea_attn_opts opt;  /* the sparse and approximate rows' options */
} options;

static void usage(FILE *f) {
    char names[512];
    fprintf(f,
            "usage: track [options]\n"
            "Train seed 000's Vision Transformer tracker (two 32x32 frames -> position\n"
            "of the moving disc in the second) on generated videos, then report its\n"
            "error on held-out test videos and its inference speed.\n\n"
            "  --attn NAME      attention variant (default mha): %s\n"
            "  --kv-heads N     K/V heads for --attn gqa (default 2; must divide 4)\n"
            "  --causal         causal attention mask\n"
            "  --videos N       videos to generate (default 200; split 80/10/10 by video)\n"
            "  --frames N       frames per video (default 50)\n"
            "  --epochs N       training epochs (default 5)\n"
            "  --batch N        batch size (default 16; --full uses the seed's 32)\n"
            "  --lr X           peak learning rate (default 1e-3)\n"
            "  --wd X           AdamW weight decay (default 0.01)\n"
            "  --warmup N       linear warm-up steps before the cosine (default 0)\n"
            "  --sched S        cosine annealing per 'step' (default) or per 'epoch'\n"
            "  --seed N         seed for data, initialisation and shuffling (default 0)\n"
            "  --mode M         motion: bounce (seed 000) or projectile (gravity)\n"
            "  --noise X        Gaussian pixel noise, standard deviation (default 0)\n"
            "  --distractor     add a moving square that must be ignored\n"
            "  --threads N      OpenMP threads (default: all; needs -fopenmp)\n"
            "  --device D       cpu (default) or cuda: train and evaluate on the GPU (a build\n"
            "                   with nvcc -DEFFATTN_CUDA; rows mha, single, local, bigbird, mha-sep, mqa, gqa)\n"
            "  --latency-runs N timed batch-1 runs after 10 warm-ups (default 100; 0 skips)\n"
            "  --save PATH      after every epoch, write a checkpoint that --resume\n"
            "                   continues exactly (or, for a name ending in .safetensors,\n"
            "                   the weights only, with PyTorch names); written atomically,\n"
            "                   so a crash or a NaN keeps the last good file\n"
            "  --resume PATH    continue training from a checkpoint (same flags as the run\n"
            "                   that wrote it)\n"
            "  --stop-after N   stop after epoch N (train in chunks with --save/--resume)\n"
            "  --load PATH      start from these weights: a checkpoint, or safetensors\n"
            "                   (e.g. trained in PyTorch); with --epochs 0 it only evaluates\n"
            "  --data PATH      recorded videos instead of generated ones (safetensors:\n"
            "                   'videos' U8/F32 [V,T,32,32], 'positions' F32 [V,T,2])\n"
            "  --eval-only      no training: evaluate --load's (or --resume's) weights on\n"
            "                   every video\n"
            "  --clip X         clip the gradient norm to X (default 0: off)\n"
            "  --loss-log PATH  write every step's epoch, learning rate and loss (CSV)\n"
            "  --aux-weight X   weight of the MoE load-balancing loss (default 0.01)\n"
            "  --full           seed 000's protocol: 1000 videos, 20 epochs, batch 32,\n"
            "                   lr 1e-3, wd 0.01 (later flags still override)\n"
            "  --json           print one JSON object as the last line of stdout\n"
            "  --quiet          no progress bar or per-epoch lines\n"
            "  --help           this text\n",
            ea_attn_variant_names(names, sizeof names));
    cli_attn_flags_help(f);
}

/* Returns 0 to go on, or the exit code (0 after --help, 2 on bad input). */
static int parse_args(int argc, char **argv, options *o, int *stop) {
    int i;
    memset(o, 0, sizeof *o);
    o->attn = "mha";
    o->mode = "bounce";
    o->sched = "step";
    o->device = "cpu";
    o->videos = 200;
    o->frames = 50;
    o->epochs = 5;
    o->batch = 16; /* the short default run needs updates more than batch size */
    o->kv_heads = 2;
    o->latency_runs = 100;
    o->lr = 1e-3;
    o->wd = 0.01;
    o->aux = 0.01;
    *stop = 0;
    /* --full first, so that flags after it can still override; the seed's
       lr 1e-3 and wd 0.01 are already the defaults */
    for (i = 1; i < argc; i++)
        if (strcmp(argv[i], "--full") == 0) {
            o->full = 1;
            o->videos = 1000;
            o->epochs = 20;
            o->batch = 32;
        }
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1, takes = 1;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            *stop = 1;
            return 0;
        } else if (strcmp(a, "--full") == 0) takes = 0;
        else if (strcmp(a, "--json") == 0) { o->json = 1; takes = 0; }
        else if (strcmp(a, "--quiet") == 0) { o->quiet = 1; takes = 0; }
        else if (strcmp(a, "--distractor") == 0) { o->distractor = 1; takes = 0; }
        else if (strcmp(a, "--causal") == 0) { o->causal = 1; takes = 0; }
        else if (strcmp(a, "--eval-only") == 0) { o->eval_only = 1; takes = 0; }
        else if (strcmp(a, "--data") == 0) o->data = v;
        else if (strcmp(a, "--attn") == 0) o->attn = v;
        else if (strcmp(a, "--save") == 0) o->save = v;
        else if (strcmp(a, "--load") == 0) o->load = v;
        else if (strcmp(a, "--resume") == 0) o->resume = v;
        else if (strcmp(a, "--mode") == 0) o->mode = v;
        else if (strcmp(a, "--loss-log") == 0) o->loss_log = v;
        else if (strcmp(a, "--sched") == 0) o->sched = v;
        else if (strcmp(a, "--device") == 0) o->device = v;
        else if (strcmp(a, "--videos") == 0) ok = cli_parse_long(a, v, 3, 1000000, &o->videos);
        else if (strcmp(a, "--frames") == 0) ok = cli_parse_long(a, v, 2, 100000, &o->frames);
        else if (strcmp(a, "--epochs") == 0) ok = cli_parse_long(a, v, 0, 100000, &o->epochs);
        else if (strcmp(a, "--batch") == 0) ok = cli_parse_long(a, v, 1, 65536, &o->batch);
        else if (strcmp(a, "--seed") == 0) ok = cli_parse_long(a, v, 0, 2147483647L, &o->seed);
        else if (strcmp(a, "--kv-heads") == 0) ok = cli_parse_long(a, v, 1, 4096, &o->kv_heads);
        else if (strcmp(a, "--warmup") == 0) ok = cli_parse_long(a, v, 0, 100000000L, &o->warmup);
        else if (strcmp(a, "--threads") == 0) ok = cli_parse_long(a, v, 1, 1024, &o->threads);
        else if (strcmp(a, "--latency-runs") == 0) ok = cli_parse_long(a, v, 0, 1000000, &o->latency_runs);
        else if (strcmp(a, "--stop-after") == 0) ok = cli_parse_long(a, v, 1, 100000, &o->stop_after);
        else if (strcmp(a, "--lr") == 0) ok = cli_parse_num(a, v, 0.0, 10.0, 0, &o->lr);
        else if (strcmp(a, "--wd") == 0) ok = cli_parse_num(a, v, 0.0, 10.0, 0, &o->wd);
        else if (strcmp(a, "--noise") == 0) ok = cli_parse_num(a, v, 0.0, 10.0, 0, &o->noise);
        else if (strcmp(a, "--clip") == 0) ok = cli_parse_num(a, v, 0.0, 1e9, 0, &o->clip);
        else if (strcmp(a, "--aux-weight") == 0) ok = cli_parse_num(a, v, 0.0, 1e3, 0, &o->aux);
        else if ((ok = cli_attn_option(a, v, &o->opt)) != 0) ok = ok > 0;
        else {
            fprintf(stderr, "track: unknown option '%s'\n"
                            "accepted: --attn --kv-heads --causal --videos --frames --epochs --batch --lr --wd\n"
                            "          --warmup --sched --seed --mode --noise --distractor --threads --save\n"
                            "          --load --resume --stop-after --latency-runs --data --eval-only --clip --loss-log --device\n"
                            "          --full --json --quiet --help, and the attention options\n"
                            "          --flex --window --stride --dilation --topk --features --relu --redraw\n"
                            "          --proj-len --landmarks --pinv-iters --conv-kernel --block --global --random --attn-seed\n", a);
            return 2;
        }
        if (takes && !v) {
            fprintf(stderr, "track: %s needs a value (see --help)\n", a);
            return 2;
        }
        if (!ok) return 2;
        i += takes;
    }
    if (!ea_attn_variant_find(o->attn)) {
        char names[512];
        fprintf(stderr, "track: unknown attention '%s'; accepted: %s\n", o->attn, ea_attn_variant_names(names, sizeof names));
        return 2;
    }
    if (strcmp(o->mode, "bounce") && strcmp(o->mode, "projectile")) {
        fprintf(stderr, "track: --mode must be 'bounce' or 'projectile', got '%s'\n", o->mode);
        return 2;
    }
    if (o->eval_only && !o->load && o->resume) { /* evaluate a checkpoint's weights */
        o->load = o->resume;
        o->resume = NULL;
    }
    if (o->eval_only && !o->load) {
        fprintf(stderr, "track: --eval-only needs --load PATH or --resume PATH (the weights to evaluate)\n");
        return 2;
    }
    if (strcmp(o->sched, "step") && strcmp(o->sched, "epoch")) {
        fprintf(stderr, "track: --sched must be 'step' or 'epoch', got '%s'\n", o->sched);
        return 2;
    }
    if (!cli_device_check(o->device, "examples/track.c")) return 2;
    return 0;
}

/* Fill a batch with samples idx[0..n) of (video, t) pairs. */
static void make_batch(const ea_videos *vids, const int *pairs, const int *idx, int n, float *x, float *y) {
    int i, hw2 = 2 * vids->h * vids->w;
    for (i = 0; i < n; i++) {
        int p = pairs[idx[i]];
        ea_videos_pair(vids, p / (vids->n_frames - 1), p % (vids->n_frames - 1), x + (size_t)i * hw2, y + 2 * i);
    }
}

typedef struct eval_result {
    double mean_err, within2;
} eval_result;

/* Mean Euclidean error (pixels) and share of predictions within 2 px over
   all pairs of videos [v0, v1). */
static int evaluate(ea_ctx *ctx, const ea_vit *m, cli_device *dev, const ea_videos *vids, int v0, int v1, float *xb,
                    float *yb, int bmax, eval_result *r) {
    int T = vids->n_frames - 1, n = (v1 - v0) * T, i, done = 0, within = 0;
    double err = 0.0;
    int *pairs = (int *)malloc((size_t)n * sizeof(int)), *idx = (int *)malloc((size_t)bmax * sizeof(int));
    float *out = (float *)malloc((size_t)bmax * 2 * sizeof(float));
    if (!pairs || !idx || !out) { free(pairs); free(idx); free(out); return 0; }
    for (i = 0; i < n; i++) pairs[i] = v0 * T + i;
    ctx->grad_enabled = 0;
    while (done < n) {
        int b = n - done < bmax ? n - done : bmax;
        const float *pred;
        for (i = 0; i < b; i++) idx[i] = done + i;
        make_batch(vids, pairs, idx, b, xb, yb);
        if (!(pred = cli_predict(ctx, m, dev, xb, b, out))) break;
        for (i = 0; i < b; i++) {
            double dx = pred[2 * i] - yb[2 * i], dy = pred[2 * i + 1] - yb[2 * i + 1];
            double e = sqrt(dx * dx + dy * dy);
            err += e;
            within += e < 2.0;
        }
        done += b;
    }
    ctx->grad_enabled = 1;
    free(pairs);
    free(idx);
    free(out);
    if (done < n) return 0;
    r->mean_err = err / n;
    r->within2 = (double)within / n;
    return 1;
}

/* What a resumed run must share with the run that saved: every flag that
   changes the data, the schedule or the model's training. */
#define N_ARGS 14
static void run_args(const options *o, uint64_t a[N_ARGS]) {
    double d[4];
    int i;
    d[0] = o->lr; d[1] = o->wd; d[2] = o->noise; d[3] = o->clip;
    a[0] = (uint64_t)o->videos; a[1] = (uint64_t)o->frames; a[2] = (uint64_t)o->batch; a[3] = (uint64_t)o->seed;
    a[4] = (uint64_t)o->epochs; a[5] = (uint64_t)o->warmup; a[6] = strcmp(o->sched, "epoch") == 0;
    a[7] = strcmp(o->mode, "projectile") == 0; a[8] = (uint64_t)o->distractor;
    {   /* the MoE loss weight, where a block has experts (0 otherwise, as before) */
        float aw = (float)o->aux;
        uint32_t u = 0;
        if (o->opt.experts || strcmp(o->attn, "deepseek") == 0 || strcmp(o->attn, "kimi") == 0) memcpy(&u, &aw, 4);
        a[9] = u;
    }
    for (i = 0; i < 4; i++) memcpy(&a[10 + i], &d[i], 8);
}

static int run(int argc, char **argv, cli_dist *dist) {
    options o;
    int stop, rc, tty, hw;
    ea_video_config vc;
    ea_videos vids;
    ea_vit_config cfg;
    ea_vit model;
    ea_adamw opt;
    ea_ctx ctx;
    ea_error err;
    ea_rng rng;
    int n_train_v, n_val_v, n_test_v, T, n_train, epoch, i, bmax;
    long step = 0, steps_per_epoch, total_steps;
    int *pairs = NULL, *order = NULL;
    float *xb = NULL, *yb = NULL;
    double t_train0, train_seconds = 0.0, comm_seconds = 0.0, infer_ms = 0.0, last_loss = 0.0;
    eval_result val = {0, 0}, test = {0, 0};
    size_t nparams = 0;
    uint64_t args[N_ARGS], loop[2] = {0, 0}, rng_state[2] = {0, 0}, data_crc[1] = {0};
    ea_blob extra[5];
    int first_epoch = 0, t_resumed = 0, lead = dist->d.rank == 0;
    FILE *loss_log = NULL;
    cli_device dev;

    cli_prog = "track";
    memset(&dev, 0, sizeof dev);
    rc = parse_args(argc, argv, &o, &stop);
    if (rc || stop) return rc;
    if (!lead) { /* rank 0 alone prints progress, measures and writes files */
        o.save = o.loss_log = NULL;
        o.quiet = 1;
        o.latency_runs = 0;
    }
#ifdef _OPENMP
    if (o.threads) omp_set_num_threads((int)o.threads);
#else
    if (o.threads > 1) fprintf(stderr, "track: built without -fopenmp, running on 1 thread\n");
#endif
    tty = CLI_ISATTY(2) && !o.quiet;

    ea_video_config_default(&vc);
    vc.n_videos = (int)o.videos;
    vc.n_frames = (int)o.frames;
    vc.motion = strcmp(o.mode, "projectile") == 0 ? EA_MOTION_PROJECTILE : EA_MOTION_BOUNCE;
    vc.noise = (float)o.noise;
    vc.distractor = o.distractor;
    vc.seed = (uint64_t)o.seed * 2654435761u + 1u;
    if ((o.data ? ea_videos_load(&vids, o.data, &err) : ea_videos_generate(&vids, &vc, &err)) != EA_OK) {
        fprintf(stderr, "track: %s\n", err.msg);
        return 2;
    }
    if (o.data) {
        if (vids.h != 32 || vids.w != 32 || (!o.eval_only && vids.n_videos < 3)) {
            fprintf(stderr, "track: '%s' holds %d videos of %dx%d frames; the tracker needs 32x32 frames (and 3 or more "
                            "videos to train)\n", o.data, vids.n_videos, vids.h, vids.w);
            ea_videos_free(&vids);
            return 2;
        }
        o.videos = vids.n_videos;
        o.frames = vids.n_frames;
    }
    ea_tracker_config_default(&cfg, o.attn);
    cfg.n_kv_heads = (int)o.kv_heads;
    cfg.causal = o.causal;
    cfg.opt = o.opt;
    if (ea_vit_init(&model, &cfg, (uint64_t)o.seed, &err) != EA_OK) {
        fprintf(stderr, "track: %s\n", err.msg);
        ea_videos_free(&vids);
        return 2;
    }
    for (i = 0; i < model.params.count; i++) nparams += model.params.tensors[i]->size;
    if (o.load && cli_load_weights(&model, o.load, &err) != EA_OK) {
        fprintf(stderr, "track: %s\n", err.msg);
        ea_vit_free(&model);
        ea_videos_free(&vids);
        return 2;
    }

    /* split by video, never by frame: 80% train, 10% validation, 10% test */
    n_train_v = (int)(o.videos * 8 / 10);
    n_val_v = (int)(o.videos / 10) > 0 ? (int)(o.videos / 10) : 1;
    n_test_v = (int)o.videos - n_train_v - n_val_v;
    if (n_test_v < 1) { n_train_v--; n_test_v = 1; }
    if (o.eval_only) { /* every video is a test video */
        n_train_v = n_val_v = 0;
        n_test_v = (int)o.videos;
        o.epochs = 0;
    }
    T = vids.n_frames - 1;
    n_train = n_train_v * T;
    hw = vids.h * vids.w;
    bmax = (int)o.batch > 256 ? (int)o.batch : 256;
    pairs = (int *)malloc((size_t)(n_train > 0 ? n_train : 1) * sizeof(int));
    order = (int *)malloc((size_t)(n_train > bmax ? n_train : bmax) * sizeof(int));
    xb = (float *)malloc((size_t)bmax * 2 * hw * sizeof(float));
    yb = (float *)malloc((size_t)bmax * 2 * sizeof(float));
    if (!pairs || !order || !xb || !yb || ea_ctx_init(&ctx, 0) != EA_OK) {
        fprintf(stderr, "track: out of memory\n");
        return 1;
    }
    for (i = 0; i < n_train; i++) pairs[i] = i;
    steps_per_epoch = (n_train + o.batch - 1) / o.batch;
    total_steps = steps_per_epoch * o.epochs;
    ea_adamw_init(&opt, (float)o.lr, (float)o.wd);
    ea_rng_seed(&rng, (uint64_t)o.seed, 7);
    run_args(&o, args);
    data_crc[0] = ea_crc32(ea_crc32(0, vids.frames, (size_t)vids.n_videos * vids.n_frames * hw * sizeof(float)), vids.pos,
                           (size_t)vids.n_videos * vids.n_frames * 2 * sizeof(float));
    /* the state a checkpoint carries besides the model and the optimizer */
    extra[0].name = "track.args"; extra[0].dtype = EA_DT_U64; extra[0].count = N_ARGS; extra[0].data = args;
    extra[1].name = "track.loop"; extra[1].dtype = EA_DT_U64; extra[1].count = 2; extra[1].data = loop;
    extra[2].name = "track.rng"; extra[2].dtype = EA_DT_U64; extra[2].count = 2; extra[2].data = rng_state;
    extra[3].name = "track.order"; extra[3].dtype = EA_DT_I32; extra[3].count = (size_t)n_train; extra[3].data = pairs;
    extra[4].name = "track.data_crc"; extra[4].dtype = EA_DT_U64; extra[4].count = 1; extra[4].data = data_crc;
    if (o.resume) {
        uint64_t saved_args[N_ARGS], saved_crc = 0;
        extra[0].data = saved_args;
        extra[4].data = &saved_crc;
        if (ea_checkpoint_load(o.resume, &model, &opt, extra, 5, &err) != EA_OK) {
            fprintf(stderr, "track: %s\n", err.msg);
            return 2;
        }
        extra[0].data = args;
        extra[4].data = data_crc;
        if (memcmp(saved_args, args, sizeof args) != 0 || saved_crc != data_crc[0]) {
            fprintf(stderr, "track: '%s' was written by a run with other flags or data; resume with the same --videos, "
                            "--frames, --batch, --seed, --epochs, --lr, --wd, --warmup, --sched, --mode, --noise, "
                            "--distractor, --clip and --data (saved: %llu videos x %llu frames, batch %llu, seed %llu, "
                            "%llu epochs)\n",
                    o.resume, (unsigned long long)saved_args[0], (unsigned long long)saved_args[1],
                    (unsigned long long)saved_args[2], (unsigned long long)saved_args[3], (unsigned long long)saved_args[4]);
            return 2;
        }
        rng.state = rng_state[0];
        rng.inc = rng_state[1];
        first_epoch = (int)loop[0];
        step = (long)loop[1];
        t_resumed = 1;
    }
    /* the weights (and a resumed run's AdamW state) move to the GPU */
    if (!strcmp(o.device, "cuda") && !cli_device_open(&dev, &model, bmax, dist->d.rank, dist->d.size)) return 2;

    {   /* every rank must run the same flags on the same data from the same weights */
        uint64_t h = cli_dist_command_hash(argc, argv);
        int failed;
        h = cli_hash(h, data_crc, sizeof data_crc);
        h = cli_hash(h, model.params.data, model.params.n * sizeof(float));
        h = cli_hash(h, &step, sizeof step);
        if (!cli_dist_ready(dist, "track", h, o.batch, o.epochs > first_epoch) ||
            !cli_dist_device(dist, &dev, n_train, o.batch, "track"))
            return 2;
        loss_log = cli_loss_log_open(o.loss_log, first_epoch > 0, "step,epoch,lr,loss", &failed);
        if (failed) return 2;
    }

    if (!o.json || tty)
        fprintf(o.json ? stderr : stdout,
                "track: attention %s, %zu parameters, %.1f MFLOP/frame; %d/%d/%d videos (train/val/test) x %d "
                "frames; %ld epochs of %ld steps, batch %ld; %s, %d thread%s%s\n",
                o.attn, nparams, ea_vit_flops(&model) / 1e6, n_train_v, n_val_v, n_test_v, vids.n_frames, o.epochs,
                steps_per_epoch, o.batch, dev.on ? "on the GPU (CUDA)" : EA_ISA, ea_num_threads(), ea_num_threads() == 1 ? "" : "s",
                dist->d.size > 1 ? " per process" : "");
    if (dist->d.size > 1 && (!o.json || tty))
        fprintf(o.json ? stderr : stdout, "track: %d processes, each taking %ld or %ld samples of every batch of %ld\n",
                dist->d.size, o.batch / dist->d.size, (o.batch + dist->d.size - 1) / dist->d.size, o.batch);

    if (t_resumed && !o.quiet)
        fprintf(o.json ? stderr : stdout, "resumed from %s at epoch %d, step %ld\n", o.resume, first_epoch + 1, step);
    t_train0 = ea_time_sec();
    for (epoch = first_epoch; epoch < o.epochs && !(o.stop_after && epoch >= o.stop_after); epoch++) {
        double epoch_loss = 0.0, te = ea_time_sec();
        if (model.moe_stats) memset(model.moe_stats, 0, (size_t)cfg.depth * sizeof(ea_moe_stats)); /* this epoch's routing */
        long s;
        /* Fisher–Yates shuffle of the training pairs */
        for (i = n_train - 1; i > 0; i--) {
            int j = (int)ea_rng_below(&rng, (uint32_t)i + 1), t = pairs[i];
            pairs[i] = pairs[j];
            pairs[j] = t;
        }
        for (s = 0; s < steps_per_epoch; s++, step++) {
            int b = (int)(n_train - s * o.batch < o.batch ? n_train - s * o.batch : o.batch), lo, hi;
            ea_tensor *x, *y, *loss;
            float step_loss = 0.0f;
            /* this process's slice of the global batch (all of it for one process) */
            ea_shard(b, dist->d.rank, dist->d.size, &lo, &hi);
            for (i = 0; i < hi - lo; i++) order[i] = (int)(s * o.batch) + lo + i;
            make_batch(&vids, pairs, order, hi - lo, xb, yb);
            opt.lr = strcmp(o.sched, "epoch") == 0
                         ? ea_lr_cosine(epoch, o.epochs, 0, (float)o.lr, 0.0f)
                         : ea_lr_cosine(step, total_steps, o.warmup, (float)o.lr, 0.0f);
            if (o.opt.redraw) ea_vit_redraw(&model, (int)(step / o.opt.redraw)); /* performer */
            ea_ctx_reset(&ctx);
            if (!dev.on) ea_params_zero_grad(&model.params);
            if (dev.on) {
#ifdef EFFATTN_CUDA
                /* forward, backward, clipping and AdamW on the GPU, the loss
                   coming back (so a NaN step has already updated the GPU's copy) */
                /* this rank's slice of b; NCCL sums the gradient */
                if (ea_vit_cuda_train_step(&dev.m, xb, yb, hi - lo, b, &opt, (float)o.clip, &step_loss, &ctx.err) != EA_OK) break;
#endif
            } else if (hi > lo) {
                ea_tensor *aux = NULL;
                x = ea_tensor_4d(&ctx, hi - lo, 2, vids.h, vids.w, 0);
                y = ea_tensor_2d(&ctx, hi - lo, 2, 0);
                if (!x || !y) break;
                memcpy(x->data, xb, x->size * sizeof(float));
                memcpy(y->data, yb, y->size * sizeof(float));
                loss = ea_mse_loss(&ctx, ea_vit_forward_aux(&ctx, &model, x, (float)o.aux, &aux), y);
                if (aux) loss = ea_add(&ctx, loss, aux); /* MoE blocks: their load-balancing loss */
                if (!loss || ea_backward(&ctx, loss) != EA_OK) break;
                step_loss = loss->data[0];
            }
            if (dist->d.size > 1) { /* the global batch's gradient and mean loss on every rank */
                double tc = ea_time_sec();
                double sum = (double)step_loss * (hi - lo);
                if ((!dev.on && ea_dist_grads(&dist->d, &model.params, hi - lo, b, &ctx.err) != EA_OK) ||
                    cli_dist_sum(dist, &sum, 1, &ctx.err) != EA_OK)
                    break;
                step_loss = (float)(sum / b);
                comm_seconds += ea_time_sec() - tc;
            }
            if (!isfinite(step_loss)) {
                fprintf(stderr, "\ntrack: the loss became %g at step %ld (epoch %d); stopping%s (try a lower --lr or --clip)\n",
                        (double)step_loss, step, epoch + 1, o.save ? "; the last good weights stay in --save's file" : "");
                ctx.err.status = EA_ERR_NUMERIC;
                break;
            }
            if (!dev.on) { /* the CPU's update */
                const ea_tensor *bad = ea_params_nonfinite(&model.params, 1);
                if (bad) {
                    fprintf(stderr, "\ntrack: the gradient of '%s' holds NaN or Inf at step %ld (epoch %d); stopping%s\n",
                            bad->name, step, epoch + 1, o.save ? "; the last good weights stay in --save's file" : "");
                    ctx.err.status = EA_ERR_NUMERIC;
                    break;
                }
                if (o.clip > 0.0) ea_grad_clip(&model.params, (float)o.clip);
                ea_adamw_step(&opt, &model.params);
            }
            epoch_loss += step_loss;
            last_loss = step_loss;
            if (loss_log) fprintf(loss_log, "%ld,%d,%.9g,%.9g\n", step, epoch + 1, (double)opt.lr, (double)step_loss);
            if (tty && (s % 10 == 0 || s == steps_per_epoch - 1)) cli_progress(epoch, (int)o.epochs, s + 1, steps_per_epoch, last_loss, te);
        }
        if (ctx.err.status != EA_OK) {
            if (ctx.err.status != EA_ERR_NUMERIC) fprintf(stderr, "\ntrack: %s\n", ctx.err.msg);
            return 1;
        }
        train_seconds = ea_time_sec() - t_train0;
        if (loss_log) fflush(loss_log);
        if (lead && !evaluate(&ctx, &model, &dev, &vids, n_train_v, n_train_v + n_val_v, xb, yb, bmax, &val)) {
            fprintf(stderr, "\ntrack: evaluation failed: %s\n", ctx.err.msg);
            return 1;
        }
        t_train0 = ea_time_sec() - train_seconds; /* evaluation time is not training time */
        if (o.save) {
            ea_status st;
            loop[0] = (uint64_t)epoch + 1;
            loop[1] = (uint64_t)step;
            rng_state[0] = rng.state;
            rng_state[1] = rng.inc;
#ifdef EFFATTN_CUDA
            if (dev.on && ea_vit_cuda_pull(&dev.m, &model, &err) != EA_OK) {
                fprintf(stderr, "\ntrack: %s\n", err.msg);
                return 1;
            }
#endif
            st = cli_ends_with(o.save, ".safetensors") ? ea_params_save(&model.params, o.save, &err)
                                                   : ea_checkpoint_save(o.save, &model, &opt, extra, 5, &err);
            if (st != EA_OK) {
                fprintf(stderr, "\ntrack: %s\n", err.msg);
                return 1;
            }
        }
        if (tty) fprintf(stderr, "\r%78s\r", "");
        if (!o.quiet)
            fprintf(o.json ? stderr : stdout, "  epoch %2d/%ld  train loss %.4f  val error %.3f px  within 2 px %.1f%%  (%.1f s)\n",
                    epoch + 1, o.epochs, epoch_loss / steps_per_epoch, val.mean_err, 100.0 * val.within2, train_seconds);
    }
    if (loss_log && fclose(loss_log) != 0) {
        fprintf(stderr, "track: writing the loss log '%s' failed\n", o.loss_log);
        return 1;
    }
    /* training is over: inference reads transposed copies of the weights (the same bits, no transpose a call) */
    if (!dev.on && ea_params_pack(&model.params, &err) != EA_OK) {
        fprintf(stderr, "track: %s\n", err.msg);
        return 1;
    }
    if (lead && !evaluate(&ctx, &model, &dev, &vids, n_train_v + n_val_v, (int)o.videos, xb, yb, bmax, &test)) {
        fprintf(stderr, "track: evaluation failed: %s\n", ctx.err.msg);
        return 1;
    }

    /* inference latency at batch 1, the seed's protocol: 10 warm-up runs,
       then the mean wall time of 100 */
    if (o.latency_runs > 0) {
        long r;
        double t0 = 0.0;
        float out[2];
        ctx.grad_enabled = 0;
        for (r = 0; r < 10 + o.latency_runs; r++) {
            if (r == 10) t0 = ea_time_sec();
            if (!cli_predict(&ctx, &model, &dev, vids.frames, 1, out)) break;
        }
        infer_ms = (ea_time_sec() - t0) * 1000.0 / (double)o.latency_runs;
    }

    if (o.save && o.epochs == 0) {
        if ((cli_ends_with(o.save, ".safetensors") ? ea_params_save(&model.params, o.save, &err)
                                               : ea_checkpoint_save(o.save, &model, &opt, extra, 5, &err)) != EA_OK) {
            fprintf(stderr, "track: %s\n", err.msg);
            return 1;
        }
        if (!o.quiet) fprintf(o.json ? stderr : stdout, "saved %s\n", o.save);
    }

    if (!o.json || tty) {
        FILE *f = o.json ? stderr : stdout;
        fprintf(f, "result: %s, %zu parameters: test error %.3f px, %.1f%% within 2 px (%d videos); training %.1f s; ", o.attn,
                nparams, test.mean_err, 100.0 * test.within2, n_test_v, train_seconds);
        if (o.latency_runs > 0)
            fprintf(f, "inference %.3f ms/frame at batch 1 (%.0f frames/s)\n", infer_ms, infer_ms > 0.0 ? 1000.0 / infer_ms : 0.0);
        else
            fprintf(f, "inference not timed (--latency-runs 0)\n");
    }
    if (model.moe_stats && !o.quiet) { /* tokens each expert was chosen for, all blocks, last training epoch */
        long tot = 0, e_;
        int b_;
        FILE *f = o.json ? stderr : stdout;
        for (b_ = 0; b_ < cfg.depth; b_++)
            for (e_ = 0; e_ < model.blocks[b_].moe.experts; e_++) tot += model.moe_stats[b_].wanted[e_];
        for (b_ = 0; b_ < cfg.depth; b_++) {
            fprintf(f, "  block %d routing (share of choices, last epoch, incl. evaluation):", b_);
            for (e_ = 0; e_ < model.blocks[b_].moe.experts; e_++)
                fprintf(f, " %.1f%%", 100.0 * cfg.depth * (double)model.moe_stats[b_].wanted[e_] / (tot ? (double)tot : 1.0));
            fprintf(f, "\n");
        }
    }
    if (o.json)
        printf("{\"attn\":\"%s\",\"params\":%zu,\"mean_err_px\":%.6f,\"within2px\":%.6f,\"val_err_px\":%.6f,"
               "\"train_seconds\":%.3f,\"infer_ms_b1\":%.4f,\"fps_b1\":%.1f,\"final_loss\":%.6f,\"epochs\":%ld,"
               "\"videos\":%ld,\"frames\":%ld,\"batch\":%ld,\"test_videos\":%d,\"mflop_per_frame\":%.3f,"
               "\"threads\":%d,\"processes\":%d,\"comm_seconds\":%.3f,\"isa\":\"%s\",\"arena_peak_bytes\":%zu,"
               "\"device\":\"%s\"}\n",
               o.attn, nparams, test.mean_err, test.within2, val.mean_err, train_seconds, infer_ms,
               infer_ms > 0.0 ? 1000.0 / infer_ms : 0.0,
               last_loss, o.epochs, o.videos, o.frames, o.batch, n_test_v, ea_vit_flops(&model) / 1e6, ea_num_threads(),
               dist->d.size, comm_seconds, EA_ISA, ea_ctx_peak_bytes(&ctx), o.device);
    cli_device_close(&dev);
    ea_ctx_free(&ctx);
    ea_vit_free(&model);
    ea_videos_free(&vids);
    free(pairs);
    free(order);
    free(xb);
    free(yb);
    return 0;
}

int main(int argc, char **argv) {
    cli_dist dist;
    cli_dist_init(&dist, &argc, &argv);
    return cli_dist_end(&dist, run(argc, argv, &dist));
}
