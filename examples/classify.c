/* classify.c — train and evaluate an image classifier: seed 002's Vision
   Transformer, or seed 001's MLP and CNN hosts, with any attention row.

   Build:  cc -O2 -march=native examples/classify.c -o classify -lm   (add -fopenmp for threads)
   Run:    ./classify                         seed 001's CNN host on generated shapes (about a minute on 2 cores)
           ./classify --model vit --data fashion-mnist --epochs 30 --augment
           ./classify --attn performer --json
   Several processes (data-parallel, MPI; see examples/dist.h):
           mpicc -O2 -march=native -fopenmp -DEA_USE_MPI examples/classify.c -o classify_mpi -lm
           mpirun -np 2 ./classify_mpi --threads 1 --model vit --data fashion-mnist
   On a GPU (the ViT with mha, single, local, bigbird, mha-sep, mqa or gqa; see README's CUDA section):
           nvcc -x cu -O2 -arch=sm_90 -DEFFATTN_CUDA examples/classify.c -o classify_cuda -lcublas -lcublasLt
           ./classify_cuda --device cuda --model vit --data fashion-mnist --epochs 30 --augment
   See ./classify --help. */
#define _POSIX_C_SOURCE 200809L
#define EFFATTN_IMPLEMENTATION
#include "../effattn.h"
#include "cli.h"
#include "dist.h"

#include <math.h>

typedef struct options {
    const char *model, *attn, *data, *save, *load, *resume, *pool, *loss_log, *device;
    long epochs, batch, chunk, seed, warmup, threads, latency_runs, stop_after, images, test_images, limit, val;
    long dim, depth, heads, kv_heads, mlp, patch, tokens, width;
    double lr, wd, smoothing, dropout, clip, aux;
    int augment, json, quiet, causal, eval_only, residual;
    ea_attn_opts opt;
} options;

static void usage(FILE *f) {
    char names[512];
    fprintf(f,
            "usage: classify [options]\n"
            "Train an image classifier with an attention layer of your choice, then report\n"
            "its test top-1 / top-5 accuracy, size, cost and speed.\n\n"
            "  --model M         cnn (seed 001's CNN host, default), vit (seed 002's ViT) or mlp\n"
            "                    (seed 001's MLP host)\n"
            "  --attn NAME       attention row (default mha): %s\n"
            "  --data D          shapes (default: generated 32x32 RGB shapes, 10 classes),\n"
            "                    fashion-mnist[:DIR] (default DIR /usr/share/datasets/fashion-mnist,\n"
            "                    Debian's dataset-fashion-mnist), or cifar10:DIR (the binary version:\n"
            "                    DIR/data_batch_1..5.bin, DIR/test_batch.bin)\n"
            "  --images N        shapes: training images to generate (default 10000)\n"
            "  --test-images N   shapes: test images (default 2000)\n"
            "  --limit N         train on the first N training images only (default: all)\n"
            "  --val N           hold out the last N training images for validation (default 0:\n"
            "                    the per-epoch line shows test accuracy, which picks nothing)\n"
            "  --epochs N        training epochs (default 15)\n"
            "  --batch N         batch size (default 128)\n"
            "  --chunk N         images per forward/backward pass inside a batch; their gradients\n"
            "                    add up to the batch's (default: about 16 MiB of tape a pass, 12\n"
            "                    images for the vit, the whole batch for mlp; cnn and the MoE rows\n"
            "                    always take the whole batch: batch norm and routing see all of it)\n"
            "  --lr X            peak learning rate (default 3e-3)\n"
            "  --wd X            AdamW weight decay (default 0.05)\n"
            "  --warmup N        linear warm-up steps, then cosine to 0 (default: one epoch, at\n"
            "                    most 10%% of the steps)\n"
            "  --label-smoothing X  cross-entropy label smoothing (default 0.1)\n"
            "  --dropout X       dropout after the embedding, attention and MLPs (default 0)\n"
            "  --augment         random crop (padding 4; 2 for 28x28) and horizontal flip\n"
            "  --clip X          clip the gradient norm to X (default 1; 0: off)\n"
            "  --aux-weight X    weight of the MoE load-balancing loss (default 0.01)\n"
            "  --seed N          seed for data, initialisation, order and augmentation (default 0)\n"
            "  --threads N       OpenMP threads (default: all; needs -fopenmp)\n"
            "  --device D        cpu (default) or cuda: train and evaluate on the GPU (a build with\n"
            "                    nvcc -DEFFATTN_CUDA; --model vit with mha, single, local, bigbird, mha-sep, mqa or gqa,\n"
            "                    no dropout)\n"
            "model shape (0 or absent: the model's default):\n"
            "  --dim N           vit: width (48); mlp: token width (32); cnn: channels of conv 2 (64)\n"
            "  --depth N         vit: blocks (4)\n"
            "  --heads N         attention heads (4)\n"
            "  --kv-heads N      K/V heads for --attn gqa (2)\n"
            "  --mlp N           vit: MLP hidden width (192); mlp: width after attention (256);\n"
            "                    MoE rows: the expert width basis (256)\n"
            "  --patch N         vit: patch size (4)\n"
            "  --pool P          vit: cls (default; mean for none, mamba and --causal, which never\n"
            "                    write to a class token at position 0) or mean; cnn: mean (stride-2 convs, default)\n"
            "                    or max (stride-1 convs, each followed by a 2x2 max-pool)\n"
            "  --tokens N        mlp: tokens the hidden vector splits into (16; 1 = seed 001's form)\n"
            "  --width N         cnn: channels of conv 1 (32)\n"
            "  --residual        mlp, cnn: the attention layer adds its input back, x + attn(x)\n"
            "                    (default: attn(x), as seed 001's code)\n"
            "  --causal          causal attention mask\n"
            "running:\n",
            ea_attn_variant_names(names, sizeof names)); /* two calls: C99 promises literals of 4,095 characters */
    fprintf(f,
            "  --save PATH       after every epoch, a checkpoint that --resume continues exactly\n"
            "                    (a name ending in .safetensors: the weights only, PyTorch names);\n"
            "                    written atomically\n"
            "  --resume PATH     continue training from a checkpoint (same flags as its run)\n"
            "  --stop-after N    stop after epoch N (train in chunks with --save/--resume)\n"
            "  --load PATH       start from these weights (checkpoint or safetensors)\n"
            "  --eval-only       evaluate --load's weights on the test set, no training\n"
            "  --latency-runs N  timed batch-1 runs after 10 warm-ups (default 100; 0 skips)\n"
            "  --loss-log PATH   write every step's epoch, learning rate, loss and top-1 (CSV)\n"
            "  --json            print one JSON object as the last line of stdout\n"
            "  --quiet           no progress bar or per-epoch lines\n"
            "  --help            this text\n");
    cli_attn_flags_help(f);
}

/* Returns 0 to go on, or the exit code (0 after --help, 2 on bad input). */
static int parse_args(int argc, char **argv, options *o, int *stop) {
    int i;
    memset(o, 0, sizeof *o);
    o->model = "cnn";
    o->attn = "mha";
    o->data = "shapes";
    o->device = "cpu";
    o->epochs = 15;
    o->batch = 128;
    o->warmup = -1;
    o->images = 10000;
    o->test_images = 2000;
    o->latency_runs = 100;
    o->lr = 3e-3;
    o->wd = 0.05;
    o->smoothing = 0.1;
    o->clip = 1.0;
    o->aux = 0.01;
    *stop = 0;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1, takes = 1;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            *stop = 1;
            return 0;
        } else if (strcmp(a, "--json") == 0) { o->json = 1; takes = 0; }
        else if (strcmp(a, "--quiet") == 0) { o->quiet = 1; takes = 0; }
        else if (strcmp(a, "--augment") == 0) { o->augment = 1; takes = 0; }
        else if (strcmp(a, "--causal") == 0) { o->causal = 1; takes = 0; }
        else if (strcmp(a, "--residual") == 0) { o->residual = 1; takes = 0; }
        else if (strcmp(a, "--eval-only") == 0) { o->eval_only = 1; takes = 0; }
        else if (strcmp(a, "--model") == 0) o->model = v;
        else if (strcmp(a, "--attn") == 0) o->attn = v;
        else if (strcmp(a, "--data") == 0) o->data = v;
        else if (strcmp(a, "--save") == 0) o->save = v;
        else if (strcmp(a, "--load") == 0) o->load = v;
        else if (strcmp(a, "--resume") == 0) o->resume = v;
        else if (strcmp(a, "--pool") == 0) o->pool = v;
        else if (strcmp(a, "--loss-log") == 0) o->loss_log = v;
        else if (strcmp(a, "--device") == 0) o->device = v;
        else if (strcmp(a, "--epochs") == 0) ok = cli_parse_long(a, v, 0, 100000, &o->epochs);
        else if (strcmp(a, "--batch") == 0) ok = cli_parse_long(a, v, 1, 65536, &o->batch);
        else if (strcmp(a, "--chunk") == 0) ok = cli_parse_long(a, v, 1, 65536, &o->chunk);
        else if (strcmp(a, "--seed") == 0) ok = cli_parse_long(a, v, 0, 2147483647L, &o->seed);
        else if (strcmp(a, "--warmup") == 0) ok = cli_parse_long(a, v, 0, 100000000L, &o->warmup);
        else if (strcmp(a, "--threads") == 0) ok = cli_parse_long(a, v, 1, 1024, &o->threads);
        else if (strcmp(a, "--latency-runs") == 0) ok = cli_parse_long(a, v, 0, 1000000, &o->latency_runs);
        else if (strcmp(a, "--stop-after") == 0) ok = cli_parse_long(a, v, 1, 100000, &o->stop_after);
        else if (strcmp(a, "--images") == 0) ok = cli_parse_long(a, v, 20, 1 << 24, &o->images);
        else if (strcmp(a, "--test-images") == 0) ok = cli_parse_long(a, v, 1, 1 << 24, &o->test_images);
        else if (strcmp(a, "--limit") == 0) ok = cli_parse_long(a, v, 1, 1 << 30, &o->limit);
        else if (strcmp(a, "--val") == 0) ok = cli_parse_long(a, v, 0, 1 << 30, &o->val);
        else if (strcmp(a, "--dim") == 0) ok = cli_parse_long(a, v, 0, 65536, &o->dim);
        else if (strcmp(a, "--depth") == 0) ok = cli_parse_long(a, v, 0, EA_MAX_DEPTH, &o->depth);
        else if (strcmp(a, "--heads") == 0) ok = cli_parse_long(a, v, 0, 4096, &o->heads);
        else if (strcmp(a, "--kv-heads") == 0) ok = cli_parse_long(a, v, 0, 4096, &o->kv_heads);
        else if (strcmp(a, "--mlp") == 0) ok = cli_parse_long(a, v, 0, 1 << 20, &o->mlp);
        else if (strcmp(a, "--patch") == 0) ok = cli_parse_long(a, v, 0, 8192, &o->patch);
        else if (strcmp(a, "--tokens") == 0) ok = cli_parse_long(a, v, 0, 65536, &o->tokens);
        else if (strcmp(a, "--width") == 0) ok = cli_parse_long(a, v, 0, 65536, &o->width);
        else if (strcmp(a, "--lr") == 0) ok = cli_parse_num(a, v, 0.0, 10.0, 0, &o->lr);
        else if (strcmp(a, "--wd") == 0) ok = cli_parse_num(a, v, 0.0, 10.0, 0, &o->wd);
        else if (strcmp(a, "--label-smoothing") == 0) ok = cli_parse_num(a, v, 0.0, 1.0, 0, &o->smoothing);
        else if (strcmp(a, "--dropout") == 0) ok = cli_parse_num(a, v, 0.0, 0.99, 0, &o->dropout);
        else if (strcmp(a, "--clip") == 0) ok = cli_parse_num(a, v, 0.0, 1e9, 0, &o->clip);
        else if (strcmp(a, "--aux-weight") == 0) ok = cli_parse_num(a, v, 0.0, 1e3, 0, &o->aux);
        else if ((ok = cli_attn_option(a, v, &o->opt)) != 0) ok = ok > 0;
        else {
            fprintf(stderr, "classify: unknown option '%s' (see --help)\n", a);
            return 2;
        }
        if (takes && !v) {
            fprintf(stderr, "classify: %s needs a value (see --help)\n", a);
            return 2;
        }
        if (!ok) return 2;
        i += takes;
    }
    if (strcmp(o->model, "vit") && strcmp(o->model, "mlp") && strcmp(o->model, "cnn")) {
        fprintf(stderr, "classify: --model must be vit, mlp or cnn, got '%s'\n", o->model);
        return 2;
    }
    if (!ea_attn_variant_find(o->attn)) {
        char names[512];
        fprintf(stderr, "classify: unknown attention '%s'; accepted: %s\n", o->attn, ea_attn_variant_names(names, sizeof names));
        return 2;
    }
    if (strcmp(o->data, "shapes") && strcmp(o->data, "fashion-mnist") && strncmp(o->data, "fashion-mnist:", 14) &&
        strncmp(o->data, "cifar10:", 8)) {
        fprintf(stderr, "classify: --data must be shapes, fashion-mnist[:DIR] or cifar10:DIR, got '%s'\n", o->data);
        return 2;
    }
    if (o->pool && strcmp(o->pool, "mean") && strcmp(o->pool, "cls") && strcmp(o->pool, "max")) {
        fprintf(stderr, "classify: --pool must be cls, mean or max, got '%s'\n", o->pool);
        return 2;
    }
    if (o->pool && ((strcmp(o->pool, "cls") == 0 && strcmp(o->model, "vit")) ||
                    (strcmp(o->pool, "max") == 0 && strcmp(o->model, "cnn")) || strcmp(o->model, "mlp") == 0)) {
        fprintf(stderr, "classify: --pool %s does not apply to --model %s (vit: cls or mean; cnn: mean or max)\n", o->pool,
                o->model);
        return 2;
    }
    if (o->device && !cli_device_check(o->device, "examples/classify.c")) return 2;
    if (o->eval_only && !o->load && o->resume) {
        o->load = o->resume;
        o->resume = NULL;
    }
    if (o->eval_only && !o->load) {
        fprintf(stderr, "classify: --eval-only needs --load PATH (the weights to evaluate)\n");
        return 2;
    }
    return 0;
}

/* What a resumed run must share with the run that saved it. */
#define N_ARGS 12
static void run_args(const options *o, const ea_images *train, uint64_t a[N_ARGS]) {
    double d[5];
    int i;
    d[0] = o->lr; d[1] = o->wd; d[2] = o->smoothing; d[3] = o->clip; d[4] = o->aux;
    a[0] = (uint64_t)o->epochs; a[1] = (uint64_t)o->batch; a[2] = (uint64_t)o->seed; a[3] = (uint64_t)o->warmup;
    a[4] = (uint64_t)o->augment; a[5] = (uint64_t)train->n; a[6] = (uint64_t)o->val;
    for (i = 0; i < 5; i++) memcpy(&a[7 + i], &d[i], 8);
}

static int load_data(const options *o, ea_images *train, ea_images *test, ea_error *err) {
    if (strcmp(o->data, "shapes") == 0) {
        if (ea_images_shapes(train, (int)o->images, (uint64_t)o->seed * 2 + 1, err) != EA_OK) return 0;
        if (ea_images_shapes(test, (int)o->test_images, (uint64_t)o->seed * 2 + 2, err) != EA_OK) {
            ea_images_free(train);
            return 0;
        }
        return 1;
    }
    if (strncmp(o->data, "cifar10:", 8) == 0) return ea_images_cifar10(train, test, o->data + 8, err) == EA_OK;
    return ea_images_fashion_mnist(train, test, o->data[13] == ':' ? o->data + 14 : NULL, err) == EA_OK;
}

static int run(int argc, char **argv, cli_dist *dist) {
    options o;
    ea_images train, test;
    ea_vit_config cfg;
    ea_vit model;
    ea_adamw opt;
    ea_ctx ctx;
    ea_error err;
    ea_rng rng;
    int stop, rc, tty, host, n_train, n_val, epoch, i, bmax, first_epoch = 0;
    long step = 0, steps_per_epoch, total_steps;
    int *order = NULL, *idx = NULL, *yb = NULL;
    float *xb = NULL, mean[4], sd[4];
    double t_train0, train_seconds = 0.0, comm_seconds = 0.0, infer_ms = 0.0, ips32 = 0.0, last_loss = 0.0;
    cli_eval_result val = {0, 0, 0}, res = {0, 0, 0};
    size_t nparams = 0;
    uint64_t args[N_ARGS], loop[2] = {0, 0}, rng_state[4] = {0, 0, 0, 0};
    ea_blob extra[4];
    FILE *say, *loss_log = NULL;
    float *tmp = NULL, *logits = NULL;
    int lead = dist->d.rank == 0;
    cli_device dev;

    cli_prog = "classify";
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
    if (o.threads > 1) fprintf(stderr, "classify: built without -fopenmp, running on 1 thread\n");
#endif
    tty = CLI_ISATTY(2) && !o.quiet;
    say = o.json ? stderr : stdout;

    if (!load_data(&o, &train, &test, &err)) {
        fprintf(stderr, "classify: %s\n", err.msg);
        if (strncmp(o.data, "fashion-mnist", 13) == 0)
            fprintf(stderr, "classify: install Debian's dataset-fashion-mnist, or give fashion-mnist:DIR with "
                            "{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]\n");
        return 2;
    }
    n_train = o.limit && o.limit < train.n ? (int)o.limit : train.n;
    n_val = (int)o.val;
    if (!o.eval_only && (n_val >= n_train || n_train - n_val < 2)) {
        fprintf(stderr, "classify: --val %d leaves %d of %d training images; at least 2 must remain\n", n_val, n_train - n_val,
                n_train);
        return 2;
    }
    n_train -= n_val;
    host = strcmp(o.model, "mlp") == 0 ? EA_HOST_MLP : strcmp(o.model, "cnn") == 0 ? EA_HOST_CNN : EA_HOST_VIT;
    ea_classifier_config_default(&cfg, host, o.attn, train.c, train.h, train.classes);
    if (train.h != train.w) {
        fprintf(stderr, "classify: images of %dx%d; the models take square images\n", train.h, train.w);
        return 2;
    }
    if (o.dim) cfg.dim = (int)o.dim;
    if (o.depth) cfg.depth = (int)o.depth;
    if (o.heads) cfg.n_heads = (int)o.heads;
    if (o.kv_heads) cfg.n_kv_heads = (int)o.kv_heads;
    if (o.mlp) cfg.mlp_hidden = (int)o.mlp;
    if (o.patch) cfg.patch = (int)o.patch;
    if (o.tokens) cfg.tokens = (int)o.tokens;
    if (o.width) cfg.width = (int)o.width;
    if (o.pool) cfg.pool = strcmp(o.pool, "cls") == 0 ? EA_POOL_CLS : strcmp(o.pool, "max") == 0 ? EA_POOL_MAX : EA_POOL_MEAN;
    if (o.residual && host == EA_HOST_VIT) {
        fprintf(stderr, "classify: --residual applies to the mlp and cnn hosts (the ViT's blocks always have residuals)\n");
        return 2;
    }
    cfg.causal = o.causal;
    if (o.causal && !o.pool && host == EA_HOST_VIT) cfg.pool = EA_POOL_MEAN; /* position 0 would see only itself */
    cfg.residual = o.residual;
    cfg.dropout = (float)o.dropout;
    cfg.opt = o.opt;
    if (ea_vit_init(&model, &cfg, (uint64_t)o.seed, &err) != EA_OK) {
        fprintf(stderr, "classify: %s\n", err.msg);
        return 2;
    }
    for (i = 0; i < model.params.count; i++)
        if (!model.params.info[i].buffer) nparams += model.params.tensors[i]->size;
    if (o.load && cli_load_weights(&model, o.load, &err) != EA_OK) {
        fprintf(stderr, "classify: %s\n", err.msg);
        return 2;
    }
    if (o.eval_only) o.epochs = 0;
    ea_images_stats(&train, mean, sd); /* normalise by the training set's statistics */
    bmax = (int)o.batch > 256 ? (int)o.batch : 256;
    order = (int *)malloc((size_t)(n_train > bmax ? n_train : bmax) * sizeof(int));
    idx = (int *)malloc((size_t)bmax * sizeof(int));
    yb = (int *)malloc((size_t)bmax * sizeof(int));
    xb = (float *)malloc((size_t)bmax * train.c * train.h * train.w * sizeof(float));
    tmp = (float *)malloc(model.params.n * sizeof(float)); /* ea_dist_buffers' scratch */
    logits = (float *)malloc((size_t)bmax * train.classes * sizeof(float));
    if (!order || !idx || !yb || !xb || !tmp || !logits || ea_ctx_init(&ctx, 0) != EA_OK) {
        fprintf(stderr, "classify: out of memory\n");
        return 1;
    }
    for (i = 0; i < n_train; i++) order[i] = i;
    steps_per_epoch = (n_train + o.batch - 1) / o.batch;
    total_steps = steps_per_epoch * o.epochs;
    if (o.warmup < 0) o.warmup = steps_per_epoch < total_steps / 10 ? steps_per_epoch : total_steps / 10;
    ea_adamw_init(&opt, (float)o.lr, (float)o.wd);
    ea_rng_seed(&rng, (uint64_t)o.seed, 7);
    ea_rng_seed(&ctx.rng, (uint64_t)o.seed, 8);
    run_args(&o, &train, args);
    extra[0].name = "classify.args"; extra[0].dtype = EA_DT_U64; extra[0].count = N_ARGS; extra[0].data = args;
    extra[1].name = "classify.loop"; extra[1].dtype = EA_DT_U64; extra[1].count = 2; extra[1].data = loop;
    extra[2].name = "classify.rng"; extra[2].dtype = EA_DT_U64; extra[2].count = 4; extra[2].data = rng_state;
    extra[3].name = "classify.order"; extra[3].dtype = EA_DT_I32; extra[3].count = (size_t)n_train; extra[3].data = order;
    if (o.resume) {
        uint64_t saved[N_ARGS];
        extra[0].data = saved;
        if (ea_checkpoint_load(o.resume, &model, &opt, extra, 4, &err) != EA_OK) {
            fprintf(stderr, "classify: %s\n", err.msg);
            return 2;
        }
        extra[0].data = args;
        if (memcmp(saved, args, sizeof args) != 0) {
            fprintf(stderr, "classify: '%s' was written by a run with other flags or data; resume with the same --data, "
                            "--epochs, --batch, --seed, --lr, --wd, --warmup, --label-smoothing, --clip, --augment, "
                            "--limit and --val\n", o.resume);
            return 2;
        }
        rng.state = rng_state[0]; rng.inc = rng_state[1];
        ctx.rng.state = rng_state[2]; ctx.rng.inc = rng_state[3];
        first_epoch = (int)loop[0];
        step = (long)loop[1];
    }
    /* the weights (and a resumed run's AdamW state) move to the GPU */
    if (!strcmp(o.device, "cuda") && !cli_device_open(&dev, &model, bmax, dist->d.rank, dist->d.size)) return 2;

    {   /* every rank must run the same flags on the same data from the same weights */
        uint64_t h = cli_dist_command_hash(argc, argv);
        int failed;
        h = cli_hash(h, args, sizeof args);
        h = cli_hash(h, train.pixels, (size_t)train.n * train.c * train.h * train.w);
        h = cli_hash(h, train.labels, (size_t)train.n);
        h = cli_hash(h, model.params.data, model.params.n * sizeof(float));
        h = cli_hash(h, &step, sizeof step);
        if (!cli_dist_ready(dist, "classify", h, o.batch, o.epochs > first_epoch) ||
            !cli_dist_device(dist, &dev, n_train, o.batch, "classify"))
            return 2;
        loss_log = cli_loss_log_open(o.loss_log, first_epoch > 0, "step,epoch,lr,loss,top1", &failed);
        if (failed) return 2;
    }
    if (!o.json || tty)
        fprintf(say, "classify: %s host, attention %s, %zu parameters, %.2f MFLOP/image; %s: %d train, %d val, %d test "
                     "images of %dx%dx%d; %ld epochs of %ld steps, batch %ld; %s, %d thread%s%s\n",
                o.model, o.attn, nparams, ea_vit_flops(&model) / 1e6, o.data, n_train, n_val, test.n, train.c, train.h,
                train.w, o.epochs, steps_per_epoch, o.batch, dev.on ? "on the GPU (CUDA)" : EA_ISA, ea_num_threads(),
                ea_num_threads() == 1 ? "" : "s",
                dist->d.size > 1 ? " per process" : "");
    if (dist->d.size > 1 && (!o.json || tty))
        fprintf(say, "classify: %d processes, each taking %ld or %ld images of every batch of %ld%s\n", dist->d.size,
                o.batch / dist->d.size, (o.batch + dist->d.size - 1) / dist->d.size, o.batch,
                host == EA_HOST_CNN ? " (batch norm over each process's images)" : "");
    if (o.resume && !o.quiet) fprintf(say, "resumed from %s at epoch %d, step %ld\n", o.resume, first_epoch + 1, step);

    t_train0 = ea_time_sec();
    for (epoch = first_epoch; epoch < o.epochs && !(o.stop_after && epoch >= o.stop_after); epoch++) {
        double epoch_loss = 0.0, te = ea_time_sec();
        long s, hits = 0;
        if (model.moe_stats) memset(model.moe_stats, 0, (size_t)cfg.depth * sizeof(ea_moe_stats));
        /* dropout's draws: a stream per epoch and process, so that a run
           resumed at an epoch, on any number of processes, continues exactly */
        ea_rng_seed(&ctx.rng, (uint64_t)o.seed * 1000003u + (uint64_t)epoch, 8 + 2 * (uint64_t)dist->d.rank);
        for (i = n_train - 1; i > 0; i--) { /* Fisher–Yates */
            int j = (int)ea_rng_below(&rng, (uint32_t)i + 1), t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        for (s = 0; s < steps_per_epoch; s++, step++) {
            int b = (int)(n_train - s * o.batch < o.batch ? n_train - s * o.batch : o.batch), lo, hi;
            size_t per = (size_t)train.c * train.h * train.w;
            float loss = 0.0f;
            int step_hits = 0;
            /* every process builds the whole batch (augmentation draws stay
               those of one process) and trains on its slice */
            ea_images_batch(&train, order + s * o.batch, b, mean, sd, o.augment ? (train.h >= 32 ? 4 : 2) : 0, o.augment,
                            o.augment ? &rng : NULL, xb, yb);
            ea_shard(b, dist->d.rank, dist->d.size, &lo, &hi);
            opt.lr = ea_lr_cosine(step, total_steps, o.warmup, (float)o.lr, 0.0f);
            if (o.opt.redraw) ea_vit_redraw(&model, (int)(step / o.opt.redraw));
            if (dev.on) {
#ifdef EFFATTN_CUDA
                /* forward, backward, clipping and AdamW on the GPU (this rank's
                   slice; NCCL sums the gradient over several); the loss and the
                   logits (before the update) come back for the statistics */
                if (ea_vit_cuda_train_step_ce(&dev.m, xb + lo * per, yb + lo, hi - lo, b, &opt, (float)o.clip, (float)o.smoothing,
                                              &loss, &ctx.err) != EA_OK ||
                    ea_cuda_get(&dev.cu, logits, ea_vit_cuda_output(&dev.m), (size_t)(hi - lo) * train.classes, &ctx.err) !=
                        EA_OK ||
                    ea_cuda_sync(&dev.cu, &ctx.err) != EA_OK)
                    break;
                step_hits = ea_topk_hits(logits, yb + lo, hi - lo, train.classes, 1);
#endif
            } else if (hi == lo) ea_params_zero_grad(&model.params);
            else if (ea_classifier_grad(&ctx, &model, xb + lo * per, yb + lo, hi - lo, (int)o.chunk, (float)o.smoothing,
                                        (float)o.aux, &loss, &step_hits) != EA_OK)
                break;
            if (dist->d.size > 1) { /* the global batch's gradient, loss and hits on every rank */
                double tc = ea_time_sec();
                double sums[2];
                sums[0] = (double)loss * (hi - lo);
                sums[1] = step_hits;
                if ((!dev.on && ea_dist_grads(&dist->d, &model.params, hi - lo, b, &ctx.err) != EA_OK) ||
                    cli_dist_sum(dist, sums, 2, &ctx.err) != EA_OK)
                    break;
                loss = (float)(sums[0] / b);
                step_hits = (int)sums[1];
                comm_seconds += ea_time_sec() - tc;
            }
            if (!isfinite(loss) || (!dev.on && ea_params_nonfinite(&model.params, 1))) {
                fprintf(stderr, "\nclassify: the loss or a gradient became NaN or Inf at step %ld (epoch %d); stopping%s "
                                "(try a lower --lr)\n", step, epoch + 1, o.save ? "; the last good weights stay in --save's file" : "");
                ctx.err.status = EA_ERR_NUMERIC;
                break;
            }
            if (!dev.on) { /* the CPU's update */
                if (o.clip > 0.0) ea_grad_clip(&model.params, (float)o.clip);
                ea_adamw_step(&opt, &model.params);
            }
            hits += step_hits;
            epoch_loss += loss;
            last_loss = loss;
            if (loss_log)
                fprintf(loss_log, "%ld,%d,%.9g,%.9g,%.6f\n", step, epoch + 1, (double)opt.lr, (double)loss, (double)step_hits / b);
            if (tty && (s % 5 == 0 || s == steps_per_epoch - 1))
                cli_progress(epoch, (int)o.epochs, s + 1, steps_per_epoch, last_loss, te);
        }
        ctx.training = 0;
        if (ctx.err.status != EA_OK) {
            if (ctx.err.status != EA_ERR_NUMERIC) fprintf(stderr, "\nclassify: %s\n", ctx.err.msg);
            return 1;
        }
        train_seconds = ea_time_sec() - t_train0;
        if (loss_log) fflush(loss_log);
        /* batch norm's running statistics: the mean over the processes */
        if (ea_dist_buffers(&dist->d, &model.params, tmp, &err) != EA_OK) {
            fprintf(stderr, "\nclassify: %s\n", err.msg);
            return 1;
        }
        if (lead && !cli_evaluate(&ctx, &model, &dev, n_val ? &train : &test, n_val ? n_train : 0,
                                  n_val ? n_train + n_val : test.n, mean, sd, xb, yb, idx, bmax, &val)) {
            fprintf(stderr, "\nclassify: evaluation failed: %s\n", ctx.err.msg);
            return 1;
        }
        t_train0 = ea_time_sec() - train_seconds; /* evaluation is not training time */
        if (o.save) {
            ea_status st;
#ifdef EFFATTN_CUDA
            if (dev.on && ea_vit_cuda_pull(&dev.m, &model, &err) != EA_OK) { /* the GPU's weights and moments */
                fprintf(stderr, "\nclassify: %s\n", err.msg);
                return 1;
            }
#endif
            loop[0] = (uint64_t)epoch + 1;
            loop[1] = (uint64_t)step;
            rng_state[0] = rng.state; rng_state[1] = rng.inc;
            rng_state[2] = ctx.rng.state; rng_state[3] = ctx.rng.inc;
            st = cli_ends_with(o.save, ".safetensors") ? ea_params_save(&model.params, o.save, &err)
                                                       : ea_checkpoint_save(o.save, &model, &opt, extra, 4, &err);
            if (st != EA_OK) {
                fprintf(stderr, "\nclassify: %s\n", err.msg);
                return 1;
            }
        }
        if (tty) fprintf(stderr, "\r%90s\r", "");
        if (!o.quiet)
            fprintf(say, "  epoch %2d/%ld  train loss %.4f  train top-1 %.2f%%  %s top-1 %.2f%%  top-5 %.2f%%  (%.1f s)\n",
                    epoch + 1, o.epochs, epoch_loss / steps_per_epoch, 100.0 * hits / n_train, n_val ? "val" : "test",
                    100.0 * val.top1, 100.0 * val.top5, train_seconds);
    }
    if (loss_log && fclose(loss_log) != 0) {
        fprintf(stderr, "classify: writing the loss log '%s' failed\n", o.loss_log);
        return 1;
    }
    /* training is over: inference reads transposed copies of the weights (the same bits, no transpose a call) */
    if (!dev.on && ea_params_pack(&model.params, &err) != EA_OK) {
        fprintf(stderr, "classify: %s\n", err.msg);
        return 1;
    }
    if (lead && !cli_evaluate(&ctx, &model, &dev, &test, 0, test.n, mean, sd, xb, yb, idx, bmax, &res)) {
        fprintf(stderr, "classify: evaluation failed: %s\n", ctx.err.msg);
        return 1;
    }

    /* speed: batch 1 (10 warm-ups, then the mean of latency-runs) and
       batch 32 (images per second over as many runs) */
    if (o.latency_runs > 0) {
        int bs;
        ctx.grad_enabled = 0;
        for (i = 0; i < 32; i++) idx[i] = i % test.n;
        ea_images_batch(&test, idx, 32, mean, sd, 0, 0, NULL, xb, yb);
        for (bs = 1; bs <= 32; bs += 31) {
            long r, runs = bs == 1 ? o.latency_runs : (o.latency_runs + 9) / 10;
            double t0 = 0.0;
            for (r = 0; r < 10 + runs; r++) { /* host images in, host logits out */
                if (r == 10) t0 = ea_time_sec();
                if (!cli_predict(&ctx, &model, &dev, xb, bs, logits)) break;
            }
            if (bs == 1) infer_ms = (ea_time_sec() - t0) * 1000.0 / (double)runs;
            else ips32 = 32.0 * (double)runs / (ea_time_sec() - t0);
        }
    }
#ifdef EFFATTN_CUDA
    if (dev.on && o.save && o.epochs == 0 && ea_vit_cuda_pull(&dev.m, &model, &err) != EA_OK) {
        fprintf(stderr, "classify: %s\n", err.msg);
        return 1;
    }
#endif
    if (o.save && o.epochs == 0) {
        if ((cli_ends_with(o.save, ".safetensors") ? ea_params_save(&model.params, o.save, &err)
                                                   : ea_checkpoint_save(o.save, &model, &opt, extra, 4, &err)) != EA_OK) {
            fprintf(stderr, "classify: %s\n", err.msg);
            return 1;
        }
    }
    if (!o.json || tty)
        fprintf(say, "result: %s/%s, %zu parameters: test top-1 %.2f%%, top-5 %.2f%% (%d images); training %.1f s; "
                     "inference %.3f ms at batch 1, %.0f images/s at batch 32\n",
                o.model, o.attn, nparams, 100.0 * res.top1, 100.0 * res.top5, test.n, train_seconds, infer_ms, ips32);
    if (o.json)
        printf("{\"model\":\"%s\",\"attn\":\"%s\",\"data\":\"%s\",\"params\":%zu,\"flops_per_image\":%.0f,\"top1\":%.6f,"
               "\"top5\":%.6f,\"test_loss\":%.6f,\"train_seconds\":%.3f,\"infer_ms_b1\":%.4f,\"images_per_s_b32\":%.1f,"
               "\"arena_peak_bytes\":%zu,\"final_loss\":%.6f,\"epochs\":%ld,\"batch\":%ld,\"train_images\":%d,"
               "\"test_images\":%d,\"threads\":%d,\"processes\":%d,\"comm_seconds\":%.3f,\"isa\":\"%s\","
               "\"device\":\"%s\"}\n",
               o.model, o.attn, o.data, nparams, ea_vit_flops(&model), res.top1, res.top5, res.loss, train_seconds, infer_ms,
               ips32, ea_ctx_peak_bytes(&ctx), last_loss, o.epochs, o.batch, n_train, test.n, ea_num_threads(), dist->d.size,
               comm_seconds, EA_ISA, o.device);
    cli_device_close(&dev);
    ea_ctx_free(&ctx);
    ea_vit_free(&model);
    ea_images_free(&train);
    ea_images_free(&test);
    free(order);
    free(idx);
    free(yb);
    free(xb);
    free(tmp);
    free(logits);
    return 0;
}

int main(int argc, char **argv) {
    cli_dist dist;
    cli_dist_init(&dist, &argc, &argv);
    return cli_dist_end(&dist, run(argc, argv, &dist));
}
