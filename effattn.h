/* effattn.h — efficient attention, tensors with autograd and small Vision
   Transformers in one C99 / C++11 header.                     MIT license.

   ==========================================================================
   WHAT IT IS
   ==========================================================================
   A single-file library for robotics code and for students: a float32 tensor
   type with reverse-mode autograd, attention variants written out as their
   formula, a plain reference loop and a fast path, the small Vision
   Transformers that use them (the two-frame object tracker of source
   document 000), AdamW training and a synthetic video generator.  It needs
   nothing at run time but the C library and libm.

   QUICK START
       #define EFFATTN_IMPLEMENTATION      (in exactly one .c or .cpp file)
       #include "effattn.h"

       ea_error err;
       ea_vit_config cfg;
       ea_vit model;
       ea_ctx ctx;
       ea_tracker_config_default(&cfg, "mqa");          // 2x32x32 -> (x, y)
       if (ea_vit_init(&model, &cfg, 1234, &err) != EA_OK) puts(err.msg);
       ea_ctx_init(&ctx, 0);
       ea_tensor *x = ea_tensor_new(&ctx, 4, shape, 0);  // [B, 2, 32, 32]
       ... fill x->data ...
       ea_tensor *pos = ea_vit_forward(&ctx, &model, x); // [B, 2]
       ea_ctx_reset(&ctx);                               // frees activations

   Build any example with one command:
       cc -O2 -march=native examples/track.c -o track -lm      (-fopenmp: threads)

   CONFIGURATION MACROS (define before including)
       EFFATTN_IMPLEMENTATION   emit the implementation in this translation unit
       EFFATTN_STATIC           make every function static (single-TU use)
       EFFATTN_MALLOC(n)        allocator (default malloc); EFFATTN_FREE(p) free
       EFFATTN_ASSERT(c)        internal invariants only (default assert)
       EFFATTN_NO_SIMD          use the scalar reference path only
   The SIMD width is chosen from the compiler's own macros (__AVX512F__,
   __AVX2__ with __FMA__, __ARM_NEON); threads come from OpenMP when the file
   is compiled with -fopenmp, and the same code runs on one thread without it.

   CONVENTIONS
       Functions ea_*, types ea_*, constants EA_*.  Anything a user controls
       (shapes, configurations, names, files) is checked and answered with an
       ea_status and a message that says what was wrong and what was
       expected; the library never calls exit().  Tensors are row-major and
       contiguous.  Activations live in a per-context arena that is reset
       each step, so a steady-state training step or inference call performs
       no heap allocation once the arena has reached its high-water mark.

   ==========================================================================
   TABLE OF CONTENTS (search for the banner text, e.g. "== 7. CORE OPS")
   ==========================================================================
    1. DOCUMENTATION                 (this comment)
    2. PUBLIC DECLARATIONS
    3. IMPLEMENTATION                 (#ifdef EFFATTN_IMPLEMENTATION)
    4. PLATFORM: allocation, errors, RNG, threads
    5. SIMD LAYER and GEMM
    6. TENSORS, ARENA, AUTOGRAD TAPE, PARAMETERS
    7. CORE OPS: linear, matmul, add, layer norm, GELU, softmax,
       patch embedding, token mean, MSE, cross-entropy
    8. ATTENTION: scaled dot-product core (reference, fast, backward),
       then one section per variant and the variant table
    9. BLOCKS AND MODELS: pre-norm transformer block, ViT / tracker
   10. TRAINING: AdamW, learning-rate schedule, gradient clipping,
       weight import/export (safetensors), checkpoints
   11. DATA: moving-object video generator, recorded videos, IDX and
       CIFAR-10 loaders
   12. MEASUREMENT: timers, thread count (FLOP counts live with each
       variant and model, the arena peak with the arena)
*/
#ifndef EFFATTN_H
#define EFFATTN_H

/* ==========================================================================
   == 2. PUBLIC DECLARATIONS
   ========================================================================== */
#include <stddef.h>
#include <stdint.h>

#ifdef EFFATTN_STATIC
#define EA_API static
#else
#define EA_API extern
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define EA_VERSION "0.1.0"
#define EA_MAX_DIMS 4      /* tensors are up to 4-D */
#define EA_MAX_DEPTH 32    /* transformer blocks per model */
#define EA_NAME_LEN 64     /* parameter names, PyTorch state_dict style */
#define EA_MAX_ELEMS ((size_t)1 << 36)  /* elements in one tensor (256 GiB of floats) */

/* ---- status codes and errors ------------------------------------------ */
typedef enum ea_status {
    EA_OK = 0,
    EA_ERR_ARG,      /* a bad argument: NULL, a negative or zero size */
    EA_ERR_SHAPE,    /* tensor shapes that do not fit together */
    EA_ERR_CONFIG,   /* a model / attention configuration that cannot work */
    EA_ERR_NAME,     /* an unknown variant or parameter name */
    EA_ERR_NOMEM,    /* the allocator returned NULL */
    EA_ERR_IO,       /* a file could not be opened, read or written */
    EA_ERR_FORMAT,   /* a file's contents are not what was expected */
    EA_ERR_NUMERIC   /* NaN or Inf where a finite number was needed */
} ea_status;

/* An error sink: the status and a sentence saying what was wrong and what
   was expected.  Every function that can fail takes one (NULL is allowed). */
typedef struct ea_error {
    ea_status status;
    char msg[256];
} ea_error;

EA_API const char *ea_status_name(ea_status s);
EA_API ea_status ea_error_set(ea_error *err, ea_status s, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* ---- random numbers ----------------------------------------------------
   PCG32 (O'Neill 2014, "PCG: a family of simple fast space-efficient
   statistically good algorithms"): 64-bit LCG state, XSH-RR output.
   uniform() uses the top 24 bits; normal() is Box–Muller.  Same seed, same
   stream, on every platform. */
typedef struct ea_rng {
    uint64_t state, inc;
} ea_rng;

EA_API void ea_rng_seed(ea_rng *r, uint64_t seed, uint64_t stream);
EA_API uint32_t ea_rng_u32(ea_rng *r);
EA_API float ea_rng_uniform(ea_rng *r);                 /* [0, 1) */
EA_API float ea_rng_range(ea_rng *r, float lo, float hi); /* [lo, hi) */
EA_API float ea_rng_normal(ea_rng *r);                  /* N(0, 1) */
EA_API uint32_t ea_rng_below(ea_rng *r, uint32_t n);    /* [0, n), unbiased */

/* ---- arena ------------------------------------------------------------- */
typedef struct ea_arena_chunk ea_arena_chunk;
typedef struct ea_arena {
    ea_arena_chunk *head;  /* newest chunk first */
    size_t used;           /* bytes handed out since the last reset */
    size_t peak;           /* high-water mark of `used` */
    size_t limit;          /* 0: grow as needed; else fail beyond this */
    size_t n_mallocs;      /* chunk allocations so far (for diagnostics) */
} ea_arena;

/* ---- tensors and the tape ---------------------------------------------- */
typedef struct ea_tensor {
    float *data;
    float *grad;           /* NULL when no gradient is tracked */
    int ndim;
    int shape[EA_MAX_DIMS];
    size_t size;           /* product of shape */
    int requires_grad;
    const char *name;      /* parameters only */
} ea_tensor;

typedef struct ea_ctx ea_ctx;
typedef struct ea_node ea_node;
typedef void (*ea_backward_fn)(ea_ctx *ctx, ea_node *node);

/* One recorded op.  The backward function reads what the forward saved. */
struct ea_node {
    ea_backward_fn backward;
    ea_node *prev;
    ea_tensor *in[4];
    ea_tensor *out;
    float *save[4];
    int iarg[12];
    float farg[4];
};

/* A context: the activation arena, the tape and the last error.  Two
   contexts on two threads never interfere. */
struct ea_ctx {
    ea_arena arena;
    ea_node *tape;         /* last recorded node */
    int grad_enabled;      /* record the tape (training) or not (inference) */
    ea_error err;          /* first error since the last reset */
};

EA_API ea_status ea_ctx_init(ea_ctx *ctx, size_t initial_bytes);
EA_API void ea_ctx_free(ea_ctx *ctx);
EA_API void ea_ctx_reset(ea_ctx *ctx);   /* drop activations and the tape */
EA_API void *ea_ctx_alloc(ea_ctx *ctx, size_t bytes); /* arena, 64-aligned */
EA_API size_t ea_ctx_peak_bytes(const ea_ctx *ctx);

EA_API ea_tensor *ea_tensor_new(ea_ctx *ctx, int ndim, const int *shape, int requires_grad);
EA_API ea_tensor *ea_tensor_2d(ea_ctx *ctx, int d0, int d1, int requires_grad);
EA_API ea_tensor *ea_tensor_3d(ea_ctx *ctx, int d0, int d1, int d2, int requires_grad);
EA_API ea_tensor *ea_tensor_4d(ea_ctx *ctx, int d0, int d1, int d2, int d3, int requires_grad);
/* Reverse-mode pass from a scalar: d(loss)/d(every tensor on the tape). */
EA_API ea_status ea_backward(ea_ctx *ctx, ea_tensor *loss);

/* ---- parameters: one flat buffer per model ----------------------------- */
typedef enum ea_init {
    EA_INIT_ZEROS,
    EA_INIT_ONES,
    EA_INIT_FANIN,     /* U(-1/sqrt(arg), 1/sqrt(arg)): PyTorch's Linear/Conv default */
    EA_INIT_NORMAL     /* N(0, arg^2) */
} ea_init;

typedef struct ea_param_info {
    char name[EA_NAME_LEN];
    ea_init init;
    float init_arg;
    size_t offset;
} ea_param_info;

typedef struct ea_params {
    ea_tensor **tensors;
    ea_param_info *info;
    int count, cap;
    size_t n;              /* total scalars */
    float *data, *grad, *m, *v;  /* 4 x n floats, one allocation */
    ea_status status;      /* first registration failure */
} ea_params;

EA_API ea_tensor *ea_param(ea_params *ps, const char *name, int ndim, const int *shape,
                           ea_init init, float init_arg);
EA_API ea_status ea_params_alloc(ea_params *ps, ea_error *err);
EA_API void ea_params_init(ea_params *ps, uint64_t seed);
EA_API void ea_params_zero_grad(ea_params *ps);
EA_API void ea_params_free(ea_params *ps);
EA_API ea_tensor *ea_params_find(const ea_params *ps, const char *name);

/* ---- low-level kernels (plain float*, usable without a context) -------- */
/* C[M,N] (+)= A·B with A(i,k) = A[i*ars + k*acs], B(k,j) = B[k*brs + j*bcs]. */
EA_API void ea_gemm(int M, int N, int K, const float *A, ptrdiff_t ars, ptrdiff_t acs,
                    const float *B, ptrdiff_t brs, ptrdiff_t bcs, float *C, ptrdiff_t ldc,
                    int accumulate);
EA_API void ea_gemm_ref(int M, int N, int K, const float *A, ptrdiff_t ars, ptrdiff_t acs,
                        const float *B, ptrdiff_t brs, ptrdiff_t bcs, float *C, ptrdiff_t ldc,
                        int accumulate);
EA_API void ea_linear_fwd(float *out, const float *inp, const float *w, const float *b,
                          int M, int K, int N);
EA_API void ea_linear_bwd(float *dinp, float *dw, float *db, const float *dout,
                          const float *inp, const float *w, int M, int K, int N);
EA_API void ea_layernorm_fwd(float *out, float *mean, float *rstd, const float *x,
                             const float *w, const float *b, int N, int C, float eps);
EA_API void ea_layernorm_bwd(float *dx, float *dw, float *db, const float *dout,
                             const float *x, const float *mean, const float *rstd,
                             const float *w, int N, int C);
EA_API void ea_gelu_fwd(float *out, const float *x, size_t n);
EA_API void ea_gelu_bwd(float *dx, const float *dout, const float *x, size_t n);
EA_API void ea_softmax_fwd(float *out, const float *x, int rows, int cols);
EA_API void ea_softmax_bwd(float *dx, const float *dout, const float *y, int rows, int cols);

/* Scaled dot-product attention with grouped K/V heads, strided views.
   q: [B, nq, ldq] holding H heads of dh columns; k, v: [B, nk, ld] holding
   Hkv heads; query head h reads K/V head h / (H / Hkv).  o: [B, nq, ldo]. */
typedef struct ea_sdpa_shape {
    int B, nq, nk, H, Hkv, dh, causal;
    float scale;
    ptrdiff_t ldq, ldk, ldv, ldo;
} ea_sdpa_shape;
EA_API void ea_sdpa_ref_fwd(float *o, const float *q, const float *k, const float *v,
                            const ea_sdpa_shape *s);
EA_API void ea_sdpa_fwd(float *o, float *p, const float *q, const float *k, const float *v,
                        const ea_sdpa_shape *s);
EA_API void ea_sdpa_bwd(float *dq, float *dk, float *dv, float *scratch, const float *dout,
                        const float *p, const float *q, const float *k, const float *v,
                        const ea_sdpa_shape *s);

/* Flash-tiled exact attention: the same result without the nq x nk matrix.
   lse receives the log-sum-exp of each query row (B·H·nq floats) for the
   backward; scratch holds ea_sdpa_flash_scratch(s) floats per thread. */
EA_API size_t ea_sdpa_flash_scratch(const ea_sdpa_shape *s);
EA_API void ea_sdpa_flash_fwd(float *o, float *lse, float *scratch, const float *q, const float *k,
                              const float *v, const ea_sdpa_shape *s);
EA_API void ea_sdpa_flash_bwd(float *dq, float *dk, float *dv, float *scratch, const float *dout,
                              const float *o, const float *lse, const float *q, const float *k,
                              const float *v, const ea_sdpa_shape *s);

/* ---- tensor ops (record on the tape when gradients are on) ------------- */
EA_API ea_tensor *ea_linear(ea_ctx *ctx, ea_tensor *x, ea_tensor *w, ea_tensor *b);
EA_API ea_tensor *ea_matmul(ea_ctx *ctx, ea_tensor *a, ea_tensor *b);
EA_API ea_tensor *ea_add(ea_ctx *ctx, ea_tensor *a, ea_tensor *b);
EA_API ea_tensor *ea_layernorm(ea_ctx *ctx, ea_tensor *x, ea_tensor *w, ea_tensor *b, float eps);
EA_API ea_tensor *ea_gelu(ea_ctx *ctx, ea_tensor *x);
EA_API ea_tensor *ea_softmax(ea_ctx *ctx, ea_tensor *x);
EA_API ea_tensor *ea_patch_embed(ea_ctx *ctx, ea_tensor *x, ea_tensor *w, ea_tensor *b);
EA_API ea_tensor *ea_mean_tokens(ea_ctx *ctx, ea_tensor *x);
EA_API ea_tensor *ea_mse_loss(ea_ctx *ctx, ea_tensor *pred, ea_tensor *target);
EA_API ea_tensor *ea_cross_entropy(ea_ctx *ctx, ea_tensor *logits, const int *labels);
/* Attention core over column ranges of q, k, v (which may be one tensor). */
EA_API ea_tensor *ea_sdpa(ea_ctx *ctx, ea_tensor *q, int q_col, ea_tensor *k, int k_col,
                          ea_tensor *v, int v_col, int H, int Hkv, int dh, int causal);

/* ---- attention variants ------------------------------------------------ */
typedef struct ea_attn_config {
    int dim;          /* model width */
    int n_heads;      /* query heads; dim % n_heads == 0 */
    int n_kv_heads;   /* K/V heads for gqa (divides n_heads); 0: variant default */
    int causal;       /* 1: query i sees keys j <= i */
} ea_attn_config;

typedef struct ea_attn_variant ea_attn_variant;
typedef struct ea_attn {
    const ea_attn_variant *variant;
    ea_attn_config cfg;
    int head_dim, kv_heads;
    ea_tensor *w[8];  /* the variant's parameters; each section names its slots */
} ea_attn;

struct ea_attn_variant {
    const char *name;
    const char *about;
    /* check cfg, register parameters under `prefix` (e.g. "blocks.0.attn") */
    ea_status (*build)(ea_attn *a, ea_params *ps, const char *prefix, ea_error *err);
    /* x [B, n, dim] -> [B, n, dim] */
    ea_tensor *(*forward)(ea_ctx *ctx, const ea_attn *a, ea_tensor *x);
    /* forward FLOPs for one sequence of n tokens (multiply-add = 2) */
    double (*flops)(const ea_attn *a, int n);
};

EA_API int ea_attn_variant_count(void);
EA_API const ea_attn_variant *ea_attn_variant_at(int i);
EA_API const ea_attn_variant *ea_attn_variant_find(const char *name);
/* "mha, mha-sep, ..." for messages and --help */
EA_API const char *ea_attn_variant_names(char *buf, size_t n);
EA_API ea_status ea_attn_build(ea_attn *a, const char *name, const ea_attn_config *cfg,
                               ea_params *ps, const char *prefix, ea_error *err);
EA_API ea_tensor *ea_attn_forward(ea_ctx *ctx, const ea_attn *a, ea_tensor *x);

/* ---- models: Vision Transformer (the tracker is one configuration) ----- */
typedef struct ea_vit_config {
    int img_size, in_chans, patch;
    int dim, depth, n_heads, n_kv_heads, mlp_hidden;
    int head_hidden;   /* 0: a single Linear head; else Linear-GELU-Linear */
    int out_dim;
    int causal;
    float pos_std;     /* position-embedding init N(0, pos_std^2) */
    char attn[32];     /* variant name */
} ea_vit_config;

typedef struct ea_block {
    ea_tensor *ln1_w, *ln1_b, *ln2_w, *ln2_b;
    ea_tensor *fc1_w, *fc1_b, *fc2_w, *fc2_b;
    ea_attn attn;
} ea_block;

typedef struct ea_vit {
    ea_vit_config cfg;
    ea_params params;
    ea_tensor *patch_w, *patch_b, *pos;
    ea_block blocks[EA_MAX_DEPTH];
    ea_tensor *norm_w, *norm_b, *head1_w, *head1_b, *head2_w, *head2_b;
} ea_vit;

/* Seed 000's tracker: 2x32x32 -> (x, y), patch 4, dim 64, depth 4,
   4 heads, MLP 256, head 64-32-2. */
EA_API void ea_tracker_config_default(ea_vit_config *cfg, const char *attn);
EA_API ea_status ea_vit_init(ea_vit *m, const ea_vit_config *cfg, uint64_t seed, ea_error *err);
EA_API void ea_vit_free(ea_vit *m);
/* x [B, in_chans, img, img] -> [B, out_dim] */
EA_API ea_tensor *ea_vit_forward(ea_ctx *ctx, const ea_vit *m, ea_tensor *x);
EA_API double ea_vit_flops(const ea_vit *m);  /* forward FLOPs per image */

/* ---- training ---------------------------------------------------------- */
typedef struct ea_adamw {
    float lr, beta1, beta2, eps, weight_decay;
    long step;
} ea_adamw;
EA_API void ea_adamw_init(ea_adamw *opt, float lr, float weight_decay);
EA_API void ea_adamw_step(ea_adamw *opt, ea_params *ps);
/* lr at `step` of `total`: linear warm-up over `warmup` steps, then cosine
   from base to min_lr (PyTorch CosineAnnealingLR with T_max = total - warmup). */
EA_API float ea_lr_cosine(long step, long total, long warmup, float base, float min_lr);
EA_API float ea_grad_norm(const ea_params *ps);
EA_API float ea_grad_clip(ea_params *ps, float max_norm);  /* returns the norm before */
/* The first parameter whose value (grads = 0) or gradient (grads = 1) holds
   a NaN or Inf, or NULL when all are finite. */
EA_API const ea_tensor *ea_params_nonfinite(const ea_params *ps, int grads);

/* ---- weights in and out: safetensors ------------------------------------
   The format PyTorch users share weights in: an 8-byte little-endian header
   length, a JSON header {name: {dtype, shape, data_offsets}}, then raw
   little-endian data.  The reader checks every offset and size against the
   file before touching data, and reads F32 and U8 tensors as floats. */
typedef enum ea_dtype { EA_DT_F32 = 0, EA_DT_U8 = 1, EA_DT_I32 = 2, EA_DT_U64 = 3, EA_DT_OTHER = 4 } ea_dtype;

typedef struct ea_st_entry {
    char name[EA_NAME_LEN];
    ea_dtype dtype;
    int ndim;
    int64_t shape[EA_MAX_DIMS];
    size_t begin, end;     /* byte offsets into the data section */
} ea_st_entry;

typedef struct ea_safetensors {
    unsigned char *buf;    /* the whole file */
    size_t size, data_off;
    ea_st_entry *entries;
    int count;
    int owns_buf;          /* ea_st_open's buffer is freed by ea_st_close */
} ea_safetensors;

EA_API ea_status ea_st_open(ea_safetensors *st, const char *path, ea_error *err);
EA_API ea_status ea_st_parse(ea_safetensors *st, const unsigned char *buf, size_t size, ea_error *err);
EA_API const ea_st_entry *ea_st_find(const ea_safetensors *st, const char *name);
/* Copy tensor `name` as floats into dst, which holds `count` floats; the
   tensor must have exactly that many elements. */
EA_API ea_status ea_st_read(const ea_safetensors *st, const char *name, float *dst, size_t count,
                            ea_error *err);
EA_API void ea_st_close(ea_safetensors *st);
/* Every parameter by name, shapes checked; extra tensors in the file are an error. */
EA_API ea_status ea_params_load(ea_params *ps, const char *path, ea_error *err);
/* Written to PATH.tmp, then renamed over PATH: a crash never leaves half a file. */
EA_API ea_status ea_params_save(const ea_params *ps, const char *path, ea_error *err);

/* ---- checkpoints ---------------------------------------------------------
   Everything needed to resume training exactly: the model configuration,
   parameter values, AdamW moments and step, and any extra named arrays the
   caller keeps (loop counters, RNG state, data order).  Layout, all little
   endian:
       "EACKPT\0\0"                     8-byte magic
       u32 version (1)  u32 table_bytes  (the table that follows)
       config: 11 x i32, f32 pos_std, char attn[32]
       u32 n;  n x { u16 name_len, name, u8 dtype (ea_dtype: 0 f32, 2 i32,
                     3 u64), u64 count, u64 offset }   (offset into payload)
       payload
       u32 CRC-32 (IEEE) of everything after the magic
   Saving writes PATH.tmp, flushes it to disk, then renames it over PATH, so
   a crash at any moment leaves the previous checkpoint whole.  Loading
   checks magic, version, the configuration against the model's, every
   name, size and offset, and the CRC, and says which one failed; nothing is
   copied until everything has been checked. */
typedef struct ea_blob {
    const char *name;
    ea_dtype dtype;        /* EA_DT_F32, EA_DT_I32 or EA_DT_U64 */
    size_t count;          /* elements */
    void *data;
} ea_blob;

EA_API uint32_t ea_crc32(uint32_t crc, const void *data, size_t n);
EA_API ea_status ea_checkpoint_save(const char *path, const ea_vit *m, const ea_adamw *opt,
                                    const ea_blob *extra, int n_extra, ea_error *err);
/* m must already be built with the checkpoint's configuration (read it
   first with ea_checkpoint_config); opt and extra may be NULL. */
EA_API ea_status ea_checkpoint_load(const char *path, ea_vit *m, ea_adamw *opt, ea_blob *extra,
                                    int n_extra, ea_error *err);
EA_API ea_status ea_checkpoint_config(const char *path, ea_vit_config *cfg, ea_error *err);
/* Parse a checkpoint held in memory (what ea_checkpoint_load does after
   reading the file); exposed for fuzzing. */
EA_API ea_status ea_checkpoint_parse(const unsigned char *buf, size_t size, ea_vit_config *cfg,
                                     ea_vit *m, ea_adamw *opt, ea_blob *extra, int n_extra,
                                     ea_error *err);

/* ---- data: moving-object videos (seed 000) ----------------------------- */
typedef enum ea_motion { EA_MOTION_BOUNCE = 0, EA_MOTION_PROJECTILE = 1 } ea_motion;

typedef struct ea_video_config {
    int n_videos, n_frames, size;
    float radius, vmax;
    ea_motion motion;
    float gravity, restitution;  /* projectile mode */
    float noise;                 /* Gaussian pixel noise, standard deviation */
    int distractor;              /* 1: add a moving square that is not tracked */
    uint64_t seed;
} ea_video_config;

typedef struct ea_videos {
    int n_videos, n_frames, h, w;
    float *frames;     /* [V, T, H, W] */
    float *pos;        /* [V, T, 2]: (x, y) of the tracked disc, pixels */
} ea_videos;

EA_API void ea_video_config_default(ea_video_config *c);
EA_API ea_status ea_videos_generate(ea_videos *out, const ea_video_config *c, ea_error *err);
EA_API void ea_videos_free(ea_videos *v);
/* Recorded videos from safetensors: `videos` U8 or F32 [V, T, H, W] and
   `positions` F32 [V, T, 2] (x, y in pixels), as in seed 000's files. */
EA_API ea_status ea_videos_load(ea_videos *out, const char *path, ea_error *err);
/* Sample (v, t): channels (frame t, frame t+1) into x [2,H,W], target
   position at t + 1 into y[2].  EA_ERR_ARG when video or t is out of range. */
EA_API ea_status ea_videos_pair(const ea_videos *v, int video, int t, float *x, float *y);

/* ---- image datasets: IDX (MNIST, Fashion-MNIST) and CIFAR-10 binary ------
   IDX: magic 00 00 08 ndim (unsigned bytes), ndim big-endian u32 sizes,
   then the bytes.  Debian's dataset-fashion-mnist ships them gzipped under
   /usr/share/datasets/fashion-mnist: decompress once with `gunzip -k`.
   CIFAR-10: records of 1 label byte (0..9) + 3072 pixel bytes (R, G, B
   planes of 32x32).  Both loaders reject wrong magic, sizes that do not
   match the header, truncated and oversized files with a clear message. */
typedef struct ea_u8_array {
    int ndim;
    int dims[EA_MAX_DIMS];
    size_t size;
    unsigned char *data;
} ea_u8_array;

typedef struct ea_cifar {
    int n;
    unsigned char *labels;  /* [n] */
    unsigned char *images;  /* [n, 3, 32, 32] */
} ea_cifar;

EA_API ea_status ea_idx_parse(ea_u8_array *out, const unsigned char *buf, size_t size, ea_error *err);
EA_API ea_status ea_idx_load(ea_u8_array *out, const char *path, ea_error *err);
EA_API void ea_u8_array_free(ea_u8_array *a);
EA_API ea_status ea_cifar_parse(ea_cifar *out, const unsigned char *buf, size_t size, ea_error *err);
/* One or more batch files (data_batch_1.bin ...), concatenated in order. */
EA_API ea_status ea_cifar_load(ea_cifar *out, const char *const *paths, int n_paths, ea_error *err);
EA_API void ea_cifar_free(ea_cifar *c);

/* ---- measurement ------------------------------------------------------- */
EA_API double ea_time_sec(void);   /* monotonic wall clock */
EA_API int ea_num_threads(void);   /* OpenMP threads, 1 without OpenMP */

#ifdef __cplusplus
}
#endif
#endif /* EFFATTN_H */

/* ==========================================================================
   == 3. IMPLEMENTATION
   ========================================================================== */
#ifdef EFFATTN_IMPLEMENTATION
#ifndef EFFATTN_IMPLEMENTATION_DONE
#define EFFATTN_IMPLEMENTATION_DONE

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif
/* fsync makes a checkpoint durable before its rename; POSIX only. */
#if (defined(__unix__) || defined(__APPLE__)) && defined(_POSIX_C_SOURCE) && _POSIX_C_SOURCE >= 200112L
#include <unistd.h>
#define EA_HAVE_FSYNC 1
#endif
#ifndef EFFATTN_MALLOC
#define EFFATTN_MALLOC(n) malloc(n)
#define EFFATTN_FREE(p) free(p)
#endif
#ifndef EFFATTN_ASSERT
#include <assert.h>
#define EFFATTN_ASSERT(c) assert(c)
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ==========================================================================
   == 4. PLATFORM: allocation, errors, RNG, threads
   ========================================================================== */
#if defined(__GNUC__) || defined(__clang__)
#define EA_INLINE static inline __attribute__((always_inline))
#else
#define EA_INLINE static inline
#endif
#ifdef __cplusplus
#define EA_RESTRICT __restrict
#else
#define EA_RESTRICT restrict
#endif
/* OpenMP through _Pragma so that builds without -fopenmp see nothing. */
#define EA_PRAGMA_(x) _Pragma(#x)
#ifdef _OPENMP
#define EA_OMP_FOR_IF(cond) EA_PRAGMA_(omp parallel for schedule(static) if(cond))
#else
#define EA_OMP_FOR_IF(cond)
#endif
/* Full unrolling of the small fixed loops of a micro-kernel, so that its
   accumulator tile lives in registers (gcc -O2 would otherwise keep it in
   memory); gcc and clang both read this spelling. */
#if defined(__GNUC__) || defined(__clang__)
#define EA_UNROLL EA_PRAGMA_(GCC unroll 16)
#else
#define EA_UNROLL
#endif
/* Work (multiply-adds) below which threads cost more than they save. */
#define EA_PAR_MIN_WORK 65536.0

EA_API const char *ea_status_name(ea_status s) {
    switch (s) {
    case EA_OK: return "ok";
    case EA_ERR_ARG: return "bad argument";
    case EA_ERR_SHAPE: return "shape mismatch";
    case EA_ERR_CONFIG: return "bad configuration";
    case EA_ERR_NAME: return "unknown name";
    case EA_ERR_NOMEM: return "out of memory";
    case EA_ERR_IO: return "i/o error";
    case EA_ERR_FORMAT: return "bad file format";
    case EA_ERR_NUMERIC: return "non-finite number";
    }
    return "unknown status";
}

EA_API ea_status ea_error_set(ea_error *err, ea_status s, const char *fmt, ...) {
    if (err) {
        va_list ap;
        err->status = s;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return s;
}

/* Only the first error after a reset is kept: later ones are consequences. */
static ea_tensor *ea__fail(ea_ctx *ctx, ea_status s, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static ea_tensor *ea__fail(ea_ctx *ctx, ea_status s, const char *fmt, ...) {
    if (ctx->err.status == EA_OK) {
        va_list ap;
        ctx->err.status = s;
        va_start(ap, fmt);
        vsnprintf(ctx->err.msg, sizeof ctx->err.msg, fmt, ap);
        va_end(ap);
    }
    return NULL;
}

/* PCG32: state advances by an LCG, the output permutes it (XSH-RR). */
EA_API uint32_t ea_rng_u32(ea_rng *r) {
    uint64_t old = r->state;
    uint32_t xorshifted, rot;
    r->state = old * 6364136223846793005ULL + r->inc;
    xorshifted = (uint32_t)(((old >> 18u) ^ old) >> 27u);
    rot = (uint32_t)(old >> 59u);
    return (xorshifted >> rot) | (xorshifted << ((32u - rot) & 31u));
}

EA_API void ea_rng_seed(ea_rng *r, uint64_t seed, uint64_t stream) {
    r->state = 0u;
    r->inc = (stream << 1u) | 1u;
    ea_rng_u32(r);
    r->state += seed;
    ea_rng_u32(r);
}

EA_API float ea_rng_uniform(ea_rng *r) { return (float)(ea_rng_u32(r) >> 8) * (1.0f / 16777216.0f); }

EA_API float ea_rng_range(ea_rng *r, float lo, float hi) { return lo + (hi - lo) * ea_rng_uniform(r); }

EA_API float ea_rng_normal(ea_rng *r) {
    /* Box–Muller; u1 in (0, 1] so the log is finite */
    double u1 = ((double)(ea_rng_u32(r) >> 8) + 1.0) / 16777216.0;
    double u2 = (double)(ea_rng_u32(r) >> 8) / 16777216.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

EA_API uint32_t ea_rng_below(ea_rng *r, uint32_t n) {
    /* rejection of the short top range keeps every value equally likely */
    uint32_t threshold, x;
    if (n <= 1) return 0;
    threshold = (uint32_t)(0u - n) % n;
    do x = ea_rng_u32(r); while (x < threshold);
    return x % n;
}

/* ==========================================================================
   == 5. SIMD LAYER and GEMM
   ==========================================================================
   One family of helpers per instruction set, with the same names, so each
   kernel is written once:
       ea_vf          a vector of EA_VW floats
       ea_vload(p)    unaligned load          ea_vstore(p, a)
       ea_vset1(x)    broadcast               ea_vzero()
       ea_vfma(a,b,c) a*b + c                 ea_vadd / ea_vsub / ea_vmul / ea_vdiv
       ea_vmax, ea_vmin, ea_vabs              ea_vsel_pos(x, a, b): x > 0 ? a : b
       ea_vround, ea_vpow2i(n): 2^n           ea_vhsum / ea_vhmax: across lanes
       ea_vexp(x): exp, built on the above
   EFFATTN_NO_SIMD forces the scalar family (EA_VW = 1), which is also the
   reference the tests compare the vector paths against. */
#if !defined(EFFATTN_NO_SIMD) && defined(__AVX512F__)
#if defined(__GNUC__) && !defined(__clang__)
/* GCC 12 bug 105593: intrinsics built on _mm*_undefined_*() raise false
   -W(maybe-)uninitialized warnings in C++ once inlined; silence those here. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <immintrin.h>
#define EA_ISA "avx512"
#define EA_VW 16
typedef __m512 ea_vf;
EA_INLINE ea_vf ea_vload(const float *p) { return _mm512_loadu_ps(p); }
EA_INLINE void ea_vstore(float *p, ea_vf a) { _mm512_storeu_ps(p, a); }
EA_INLINE ea_vf ea_vset1(float x) { return _mm512_set1_ps(x); }
EA_INLINE ea_vf ea_vzero(void) { return _mm512_setzero_ps(); }
EA_INLINE ea_vf ea_vfma(ea_vf a, ea_vf b, ea_vf c) { return _mm512_fmadd_ps(a, b, c); }
EA_INLINE ea_vf ea_vadd(ea_vf a, ea_vf b) { return _mm512_add_ps(a, b); }
EA_INLINE ea_vf ea_vmul(ea_vf a, ea_vf b) { return _mm512_mul_ps(a, b); }
EA_INLINE ea_vf ea_vsub(ea_vf a, ea_vf b) { return _mm512_sub_ps(a, b); }
EA_INLINE ea_vf ea_vdiv(ea_vf a, ea_vf b) { return _mm512_div_ps(a, b); }
EA_INLINE ea_vf ea_vmax(ea_vf a, ea_vf b) { return _mm512_max_ps(a, b); }
EA_INLINE ea_vf ea_vmin(ea_vf a, ea_vf b) { return _mm512_min_ps(a, b); }
EA_INLINE ea_vf ea_vabs(ea_vf a) { return _mm512_abs_ps(a); }
EA_INLINE ea_vf ea_vsel_pos(ea_vf x, ea_vf a, ea_vf b) {
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GT_OQ), b, a);
}
EA_INLINE ea_vf ea_vround(ea_vf a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
EA_INLINE ea_vf ea_vpow2i(ea_vf n) { /* 2^n for integral n in [-127, 127] */
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23));
}
EA_INLINE float ea_vhsum(ea_vf a) { return _mm512_reduce_add_ps(a); }
EA_INLINE float ea_vhmax(ea_vf a) { return _mm512_reduce_max_ps(a); }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#elif !defined(EFFATTN_NO_SIMD) && defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define EA_ISA "avx2"
#define EA_VW 8
typedef __m256 ea_vf;
EA_INLINE ea_vf ea_vload(const float *p) { return _mm256_loadu_ps(p); }
EA_INLINE void ea_vstore(float *p, ea_vf a) { _mm256_storeu_ps(p, a); }
EA_INLINE ea_vf ea_vset1(float x) { return _mm256_set1_ps(x); }
EA_INLINE ea_vf ea_vzero(void) { return _mm256_setzero_ps(); }
EA_INLINE ea_vf ea_vfma(ea_vf a, ea_vf b, ea_vf c) { return _mm256_fmadd_ps(a, b, c); }
EA_INLINE ea_vf ea_vadd(ea_vf a, ea_vf b) { return _mm256_add_ps(a, b); }
EA_INLINE ea_vf ea_vmul(ea_vf a, ea_vf b) { return _mm256_mul_ps(a, b); }
EA_INLINE ea_vf ea_vsub(ea_vf a, ea_vf b) { return _mm256_sub_ps(a, b); }
EA_INLINE ea_vf ea_vdiv(ea_vf a, ea_vf b) { return _mm256_div_ps(a, b); }
EA_INLINE ea_vf ea_vmax(ea_vf a, ea_vf b) { return _mm256_max_ps(a, b); }
EA_INLINE ea_vf ea_vmin(ea_vf a, ea_vf b) { return _mm256_min_ps(a, b); }
EA_INLINE ea_vf ea_vabs(ea_vf a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
EA_INLINE ea_vf ea_vsel_pos(ea_vf x, ea_vf a, ea_vf b) {
    return _mm256_blendv_ps(b, a, _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_GT_OQ));
}
EA_INLINE ea_vf ea_vround(ea_vf a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
EA_INLINE ea_vf ea_vpow2i(ea_vf n) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23));
}
EA_INLINE float ea_vhsum(ea_vf a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)));
}
EA_INLINE float ea_vhmax(ea_vf a) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_max_ss(s, _mm_shuffle_ps(s, s, 1)));
}
#elif !defined(EFFATTN_NO_SIMD) && defined(__ARM_NEON) && defined(__aarch64__)
#include <arm_neon.h>
#define EA_ISA "neon"
#define EA_VW 4
typedef float32x4_t ea_vf;
EA_INLINE ea_vf ea_vload(const float *p) { return vld1q_f32(p); }
EA_INLINE void ea_vstore(float *p, ea_vf a) { vst1q_f32(p, a); }
EA_INLINE ea_vf ea_vset1(float x) { return vdupq_n_f32(x); }
EA_INLINE ea_vf ea_vzero(void) { return vdupq_n_f32(0.0f); }
EA_INLINE ea_vf ea_vfma(ea_vf a, ea_vf b, ea_vf c) { return vfmaq_f32(c, a, b); }
EA_INLINE ea_vf ea_vadd(ea_vf a, ea_vf b) { return vaddq_f32(a, b); }
EA_INLINE ea_vf ea_vmul(ea_vf a, ea_vf b) { return vmulq_f32(a, b); }
EA_INLINE ea_vf ea_vsub(ea_vf a, ea_vf b) { return vsubq_f32(a, b); }
EA_INLINE ea_vf ea_vdiv(ea_vf a, ea_vf b) { return vdivq_f32(a, b); }
EA_INLINE ea_vf ea_vmax(ea_vf a, ea_vf b) { return vmaxq_f32(a, b); }
EA_INLINE ea_vf ea_vmin(ea_vf a, ea_vf b) { return vminq_f32(a, b); }
EA_INLINE ea_vf ea_vabs(ea_vf a) { return vabsq_f32(a); }
EA_INLINE ea_vf ea_vsel_pos(ea_vf x, ea_vf a, ea_vf b) { return vbslq_f32(vcgtq_f32(x, vdupq_n_f32(0.0f)), a, b); }
EA_INLINE ea_vf ea_vround(ea_vf a) { return vrndnq_f32(a); }
EA_INLINE ea_vf ea_vpow2i(ea_vf n) {
    return vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23));
}
EA_INLINE float ea_vhsum(ea_vf a) { return vaddvq_f32(a); }
EA_INLINE float ea_vhmax(ea_vf a) { return vmaxvq_f32(a); }
#else
#define EA_ISA "scalar"
#define EA_VW 1
typedef float ea_vf;
EA_INLINE ea_vf ea_vload(const float *p) { return *p; }
EA_INLINE void ea_vstore(float *p, ea_vf a) { *p = a; }
EA_INLINE ea_vf ea_vset1(float x) { return x; }
EA_INLINE ea_vf ea_vzero(void) { return 0.0f; }
EA_INLINE ea_vf ea_vfma(ea_vf a, ea_vf b, ea_vf c) { return a * b + c; }
EA_INLINE ea_vf ea_vadd(ea_vf a, ea_vf b) { return a + b; }
EA_INLINE ea_vf ea_vmul(ea_vf a, ea_vf b) { return a * b; }
EA_INLINE ea_vf ea_vsub(ea_vf a, ea_vf b) { return a - b; }
EA_INLINE ea_vf ea_vdiv(ea_vf a, ea_vf b) { return a / b; }
EA_INLINE ea_vf ea_vmax(ea_vf a, ea_vf b) { return a > b ? a : b; }
EA_INLINE ea_vf ea_vmin(ea_vf a, ea_vf b) { return a < b ? a : b; }
EA_INLINE ea_vf ea_vabs(ea_vf a) { return fabsf(a); }
EA_INLINE ea_vf ea_vsel_pos(ea_vf x, ea_vf a, ea_vf b) { return x > 0.0f ? a : b; }
EA_INLINE ea_vf ea_vround(ea_vf a) { return nearbyintf(a); }
EA_INLINE ea_vf ea_vpow2i(ea_vf n) { return ldexpf(1.0f, (int)n); }
EA_INLINE float ea_vhsum(ea_vf a) { return a; }
EA_INLINE float ea_vhmax(ea_vf a) { return a; }
#endif

/* exp on the vector layer (Cephes' expf scheme): x = n·ln2 + r with
   |r| <= ln2/2, exp(r) by a degree-6 polynomial, times 2^n built in the
   exponent bits.  Relative error about 2e-7; inputs below -88 (and -inf,
   the masked scores) give exactly 0. */
EA_INLINE ea_vf ea_vexp(ea_vf x) {
    ea_vf n, r, p;
    x = ea_vmin(ea_vmax(x, ea_vset1(-88.0f)), ea_vset1(88.0f));
    n = ea_vround(ea_vmul(x, ea_vset1(1.44269504088896341f)));
    r = ea_vsub(x, ea_vmul(n, ea_vset1(0.693359375f)));
    r = ea_vsub(r, ea_vmul(n, ea_vset1(-2.12194440e-4f)));
    p = ea_vset1(1.9875691500e-4f);
    p = ea_vfma(p, r, ea_vset1(1.3981999507e-3f));
    p = ea_vfma(p, r, ea_vset1(8.3334519073e-3f));
    p = ea_vfma(p, r, ea_vset1(4.1665795894e-2f));
    p = ea_vfma(p, r, ea_vset1(1.6666665459e-1f));
    p = ea_vfma(p, r, ea_vset1(5.0000001201e-1f));
    p = ea_vfma(ea_vmul(p, r), r, ea_vadd(r, ea_vset1(1.0f)));
    return ea_vmul(p, ea_vpow2i(n));
}

/* --- GEMM ---------------------------------------------------------------
   C[M,N] (+)= A[M,K] · B[K,N], any strides for A and B, so one routine
   serves x·Wᵀ, dy·W, dyᵀ·x and Q·Kᵀ without copies by the caller.
   Cost 2·M·N·K FLOPs.

   Reference: the three loops in ea_gemm_ref.  Fast path: B is packed, KC
   rows at a time, into a panel of NR = NV·EA_VW contiguous columns (zero
   padded), then a micro-kernel keeps an MR x NR tile of C in registers and
   streams the panel: per k, NV vector loads, MR broadcasts, MR·NV FMAs.
   Threads split the rows of C, so every element of C is summed in the same
   order whatever the thread count: results are bit-identical. */
#define EA_MR 4
#define EA_NV 4
#define EA_NR (EA_NV * EA_VW)
#define EA_KC 128

EA_API void ea_gemm_ref(int M, int N, int K, const float *A, ptrdiff_t ars, ptrdiff_t acs,
                        const float *B, ptrdiff_t brs, ptrdiff_t bcs, float *C, ptrdiff_t ldc,
                        int accumulate) {
    int i, j, k;
    for (i = 0; i < M; i++)
        for (j = 0; j < N; j++) {
            float s = accumulate ? C[i * ldc + j] : 0.0f;
            for (k = 0; k < K; k++) s += A[i * ars + k * acs] * B[k * brs + j * bcs];
            C[i * ldc + j] = s;
        }
}

/* One MR x (nv·EA_VW) tile over kc steps.  Rows past M reuse a valid row
   (a[r]) and are computed but not stored. */
EA_INLINE void ea__gemm_tile(int nv, int kc, const float *const a[EA_MR], ptrdiff_t acs,
                             const float *panel, float *c, ptrdiff_t ldc, int mr, int ncols,
                             int accumulate) {
    ea_vf acc[EA_MR][EA_NV];
    int r, v, k, nr = nv * EA_VW;
    EA_UNROLL for (r = 0; r < EA_MR; r++)
        EA_UNROLL for (v = 0; v < nv; v++) acc[r][v] = ea_vzero();
    for (k = 0; k < kc; k++) {
        ea_vf bv[EA_NV];
        const float *pk = panel + (ptrdiff_t)k * nr;
        EA_UNROLL for (v = 0; v < nv; v++) bv[v] = ea_vload(pk + v * EA_VW);
        EA_UNROLL for (r = 0; r < EA_MR; r++) {
            ea_vf ar = ea_vset1(a[r][k * acs]);
            EA_UNROLL for (v = 0; v < nv; v++) acc[r][v] = ea_vfma(ar, bv[v], acc[r][v]);
        }
    }
    if (mr == EA_MR && ncols == nr) {
        EA_UNROLL for (r = 0; r < EA_MR; r++)
            EA_UNROLL for (v = 0; v < nv; v++) {
                float *cp = c + r * ldc + v * EA_VW;
                ea_vstore(cp, accumulate ? ea_vadd(ea_vload(cp), acc[r][v]) : acc[r][v]);
            }
    } else {
        float tmp[EA_MR * EA_NR];
        int j;
        EA_UNROLL for (r = 0; r < EA_MR; r++)
            EA_UNROLL for (v = 0; v < nv; v++) ea_vstore(tmp + r * nr + v * EA_VW, acc[r][v]);
        for (r = 0; r < mr; r++)
            for (j = 0; j < ncols; j++)
                c[r * ldc + j] = accumulate ? c[r * ldc + j] + tmp[r * nr + j] : tmp[r * nr + j];
    }
}

static void ea__gemm_rows(int i0, int i1, int N, int K, const float *A, ptrdiff_t ars,
                          ptrdiff_t acs, const float *B, ptrdiff_t brs, ptrdiff_t bcs, float *C,
                          ptrdiff_t ldc, int accumulate, int nv) {
    float panel[EA_KC * EA_NR];
    int nr = nv * EA_VW, j0, k0, i, r, k, jj;
    for (j0 = 0; j0 < N; j0 += nr) {
        int ncols = N - j0 < nr ? N - j0 : nr;
        for (k0 = 0; k0 < K; k0 += EA_KC) {
            int kc = K - k0 < EA_KC ? K - k0 : EA_KC;
            /* pack along whichever of B's axes is contiguous in memory */
            if (bcs == 1 || brs != 1) {
                for (k = 0; k < kc; k++) {
                    const float *brow = B + (ptrdiff_t)(k0 + k) * brs + (ptrdiff_t)j0 * bcs;
                    float *prow = panel + k * nr;
                    for (jj = 0; jj < ncols; jj++) prow[jj] = brow[jj * bcs];
                    for (; jj < nr; jj++) prow[jj] = 0.0f;
                }
            } else {
                for (jj = 0; jj < nr; jj++) {
                    const float *bcol = B + (ptrdiff_t)k0 + (ptrdiff_t)(j0 + jj) * bcs;
                    if (jj < ncols)
                        for (k = 0; k < kc; k++) panel[k * nr + jj] = bcol[k];
                    else
                        for (k = 0; k < kc; k++) panel[k * nr + jj] = 0.0f;
                }
            }
            for (i = i0; i < i1; i += EA_MR) {
                const float *a[EA_MR];
                int mr = i1 - i < EA_MR ? i1 - i : EA_MR;
                int acc = accumulate || k0 > 0;
                for (r = 0; r < EA_MR; r++)
                    a[r] = A + (ptrdiff_t)(r < mr ? i + r : i) * ars + (ptrdiff_t)k0 * acs;
                /* literal nv lets the compiler keep the tile in registers */
                switch (nv) {
                case 1: ea__gemm_tile(1, kc, a, acs, panel, C + i * ldc + j0, ldc, mr, ncols, acc); break;
                case 2: ea__gemm_tile(2, kc, a, acs, panel, C + i * ldc + j0, ldc, mr, ncols, acc); break;
                case 3: ea__gemm_tile(3, kc, a, acs, panel, C + i * ldc + j0, ldc, mr, ncols, acc); break;
                default: ea__gemm_tile(EA_NV, kc, a, acs, panel, C + i * ldc + j0, ldc, mr, ncols, acc); break;
                }
            }
        }
    }
}

EA_API void ea_gemm(int M, int N, int K, const float *A, ptrdiff_t ars, ptrdiff_t acs,
                    const float *B, ptrdiff_t brs, ptrdiff_t bcs, float *C, ptrdiff_t ldc,
                    int accumulate) {
    int nv;
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        int i, j;
        if (!accumulate)
            for (i = 0; i < M; i++)
                for (j = 0; j < N; j++) C[i * ldc + j] = 0.0f;
        return;
    }
    /* narrow outputs (a head of 16, a 2-D position) get a narrower tile */
    nv = N >= EA_NR ? EA_NV : (N + EA_VW - 1) / EA_VW;
#ifdef _OPENMP
    if ((double)M * N * K >= 4 * EA_PAR_MIN_WORK && M >= 2 * EA_MR && !omp_in_parallel()) {
        _Pragma("omp parallel")
        {
            int nt = omp_get_num_threads(), t = omp_get_thread_num();
            int tiles = (M + EA_MR - 1) / EA_MR;
            int t0 = (int)((long)tiles * t / nt), t1 = (int)((long)tiles * (t + 1) / nt);
            int i0 = t0 * EA_MR, i1 = t1 * EA_MR < M ? t1 * EA_MR : M;
            if (i0 < i1) ea__gemm_rows(i0, i1, N, K, A, ars, acs, B, brs, bcs, C, ldc, accumulate, nv);
        }
        return;
    }
#endif
    ea__gemm_rows(0, M, N, K, A, ars, acs, B, brs, bcs, C, ldc, accumulate, nv);
}

/* ==========================================================================
   == 6. TENSORS, ARENA, AUTOGRAD TAPE, PARAMETERS
   ==========================================================================
   Arena: a bump allocator over chunks.  When a step needs more than the
   current chunk holds, a new chunk is chained; the next reset replaces the
   chain by one chunk as large as the high-water mark.  So allocation
   happens only while the arena is still growing (the first steps), and a
   steady-state step performs none.  `limit` caps the total for embedded
   use: past it, the op fails with EA_ERR_NOMEM instead of growing.

   Tape: every op run with gradients on appends an ea_node (allocated from
   the same arena) holding its backward function and what it saved;
   ea_backward walks the list from the newest node to the oldest. */
struct ea_arena_chunk {
    ea_arena_chunk *next;
    size_t cap, used;
    unsigned char *data;
};

#define EA_ALIGN 64

static ea_arena_chunk *ea__chunk_new(ea_arena *a, size_t cap) {
    ea_arena_chunk *c = (ea_arena_chunk *)EFFATTN_MALLOC(sizeof(ea_arena_chunk) + cap + EA_ALIGN);
    if (!c) return NULL;
    c->next = NULL;
    c->cap = cap;
    c->used = 0;
    /* align the payload: the first byte after the header, rounded up */
    c->data = (unsigned char *)c + sizeof(ea_arena_chunk);
    c->data += (EA_ALIGN - ((uintptr_t)c->data % EA_ALIGN)) % EA_ALIGN;
    a->n_mallocs++;
    return c;
}

static void *ea__arena_alloc(ea_arena *a, size_t bytes) {
    ea_arena_chunk *c = a->head;
    size_t need = (bytes + EA_ALIGN - 1) / EA_ALIGN * EA_ALIGN;
    if (a->limit && a->used + need > a->limit) return NULL;
    if (!c || c->used + need > c->cap) {
        size_t cap = need > a->peak ? need : a->peak;
        if (cap < ((size_t)1 << 20)) cap = (size_t)1 << 20;
        c = ea__chunk_new(a, cap);
        if (!c) return NULL;
        c->next = a->head;
        a->head = c;
    }
    {
        void *p = c->data + c->used;
        c->used += need;
        a->used += need;
        if (a->used > a->peak) a->peak = a->used;
        return p;
    }
}

static void ea__arena_free_chunks(ea_arena *a) {
    while (a->head) {
        ea_arena_chunk *n = a->head->next;
        EFFATTN_FREE(a->head);
        a->head = n;
    }
}

static void ea__arena_reset(ea_arena *a) {
    if (a->head && a->head->next) {
        /* several chunks: replace them by one that holds the whole peak */
        ea__arena_free_chunks(a);
        a->head = ea__chunk_new(a, a->peak);
    }
    if (a->head) a->head->used = 0;
    a->used = 0;
}

EA_API ea_status ea_ctx_init(ea_ctx *ctx, size_t initial_bytes) {
    if (!ctx) return EA_ERR_ARG;
    memset(ctx, 0, sizeof *ctx);
    ctx->grad_enabled = 1;
    if (initial_bytes) {
        ctx->arena.head = ea__chunk_new(&ctx->arena, initial_bytes);
        if (!ctx->arena.head)
            return ea_error_set(&ctx->err, EA_ERR_NOMEM, "could not allocate an arena of %zu bytes",
                                initial_bytes);
    }
    return EA_OK;
}

EA_API void ea_ctx_free(ea_ctx *ctx) {
    if (!ctx) return;
    ea__arena_free_chunks(&ctx->arena);
    ctx->tape = NULL;
}

EA_API void ea_ctx_reset(ea_ctx *ctx) {
    ea__arena_reset(&ctx->arena);
    ctx->tape = NULL;
    ctx->err.status = EA_OK;
    ctx->err.msg[0] = 0;
}

EA_API void *ea_ctx_alloc(ea_ctx *ctx, size_t bytes) {
    void *p = ea__arena_alloc(&ctx->arena, bytes);
    if (!p)
        ea__fail(ctx, EA_ERR_NOMEM, "arena: could not get %zu more bytes (in use %zu, limit %zu)",
                 bytes, ctx->arena.used, ctx->arena.limit);
    return p;
}

EA_API size_t ea_ctx_peak_bytes(const ea_ctx *ctx) { return ctx->arena.peak; }

static float *ea__floats(ea_ctx *ctx, size_t n) { return (float *)ea_ctx_alloc(ctx, n * sizeof(float)); }

EA_API ea_tensor *ea_tensor_new(ea_ctx *ctx, int ndim, const int *shape, int requires_grad) {
    ea_tensor *t;
    size_t size = 1;
    int i;
    if (!ctx) return NULL;
    if (ndim < 1 || ndim > EA_MAX_DIMS || !shape)
        return ea__fail(ctx, EA_ERR_SHAPE, "tensor: %d dimensions given, expected 1 to %d", ndim,
                        EA_MAX_DIMS);
    for (i = 0; i < ndim; i++) {
        if (shape[i] <= 0)
            return ea__fail(ctx, EA_ERR_SHAPE, "tensor: dimension %d is %d, expected a positive size",
                            i, shape[i]);
        if ((size_t)shape[i] > EA_MAX_ELEMS / size)
            return ea__fail(ctx, EA_ERR_SHAPE, "tensor: more than %zu elements", EA_MAX_ELEMS);
        size *= (size_t)shape[i];
    }
    t = (ea_tensor *)ea_ctx_alloc(ctx, sizeof(ea_tensor));
    if (!t) return NULL;
    memset(t, 0, sizeof *t);
    t->ndim = ndim;
    for (i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->size = size;
    t->data = ea__floats(ctx, size);
    if (!t->data) return NULL;
    t->requires_grad = requires_grad && ctx->grad_enabled;
    if (t->requires_grad) {
        t->grad = ea__floats(ctx, size);
        if (!t->grad) return NULL;
        memset(t->grad, 0, size * sizeof(float));
    }
    return t;
}

EA_API ea_tensor *ea_tensor_2d(ea_ctx *ctx, int d0, int d1, int rg) {
    int s[2];
    s[0] = d0; s[1] = d1;
    return ea_tensor_new(ctx, 2, s, rg);
}
EA_API ea_tensor *ea_tensor_3d(ea_ctx *ctx, int d0, int d1, int d2, int rg) {
    int s[3];
    s[0] = d0; s[1] = d1; s[2] = d2;
    return ea_tensor_new(ctx, 3, s, rg);
}
EA_API ea_tensor *ea_tensor_4d(ea_ctx *ctx, int d0, int d1, int d2, int d3, int rg) {
    int s[4];
    s[0] = d0; s[1] = d1; s[2] = d2; s[3] = d3;
    return ea_tensor_new(ctx, 4, s, rg);
}

/* The output of an op: tracks a gradient when any input does. */
static ea_tensor *ea__out(ea_ctx *ctx, int ndim, const int *shape, ea_tensor *a, ea_tensor *b,
                          ea_tensor *c) {
    int rg = (a && a->requires_grad) || (b && b->requires_grad) || (c && c->requires_grad);
    return ea_tensor_new(ctx, ndim, shape, rg);
}

/* Record a node when the output needs a gradient; NULL means "no node". */
static ea_node *ea__record(ea_ctx *ctx, ea_backward_fn fn, ea_tensor *out, ea_tensor *a,
                           ea_tensor *b, ea_tensor *c) {
    ea_node *n;
    if (!out->requires_grad) return NULL;
    n = (ea_node *)ea_ctx_alloc(ctx, sizeof(ea_node));
    if (!n) return NULL;
    memset(n, 0, sizeof *n);
    n->backward = fn;
    n->out = out;
    n->in[0] = a;
    n->in[1] = b;
    n->in[2] = c;
    n->prev = ctx->tape;
    ctx->tape = n;
    return n;
}

EA_API ea_status ea_backward(ea_ctx *ctx, ea_tensor *loss) {
    ea_node *n;
    if (ctx->err.status != EA_OK) return ctx->err.status;
    if (!loss)
        return ea_error_set(&ctx->err, EA_ERR_ARG, "backward: loss is NULL (an earlier op failed?)");
    if (loss->size != 1 || !loss->grad)
        return ea_error_set(&ctx->err, EA_ERR_ARG,
                            "backward: expected a scalar that requires grad, got %zu elements%s",
                            loss->size, loss->grad ? "" : " without a gradient");
    loss->grad[0] += 1.0f;
    for (n = ctx->tape; n; n = n->prev) {
        n->backward(ctx, n);
        if (ctx->err.status != EA_OK) return ctx->err.status;
    }
    return EA_OK;
}

/* --- parameters ---------------------------------------------------------
   Registration records names, shapes and initialisers; ea_params_alloc
   then makes one buffer of 4·n floats (values, gradients, AdamW m and v)
   and points every tensor into it. */
EA_API ea_tensor *ea_param(ea_params *ps, const char *name, int ndim, const int *shape,
                           ea_init init, float init_arg) {
    ea_tensor *t;
    int i;
    if (ps->status != EA_OK) return NULL;
    if (ps->data || ndim < 1 || ndim > EA_MAX_DIMS) {
        ps->status = ps->data ? EA_ERR_ARG : EA_ERR_SHAPE;
        return NULL;
    }
    if (ps->count == ps->cap) {
        int cap = ps->cap ? 2 * ps->cap : 64;
        ea_tensor **nt = (ea_tensor **)EFFATTN_MALLOC((size_t)cap * sizeof(ea_tensor *));
        ea_param_info *ni = (ea_param_info *)EFFATTN_MALLOC((size_t)cap * sizeof(ea_param_info));
        if (!nt || !ni) {
            EFFATTN_FREE(nt);
            EFFATTN_FREE(ni);
            ps->status = EA_ERR_NOMEM;
            return NULL;
        }
        if (ps->count) {
            memcpy(nt, ps->tensors, (size_t)ps->count * sizeof(ea_tensor *));
            memcpy(ni, ps->info, (size_t)ps->count * sizeof(ea_param_info));
        }
        EFFATTN_FREE(ps->tensors);
        EFFATTN_FREE(ps->info);
        ps->tensors = nt;
        ps->info = ni;
        ps->cap = cap;
        for (i = 0; i < ps->count; i++) nt[i]->name = ni[i].name; /* names moved */
    }
    t = (ea_tensor *)EFFATTN_MALLOC(sizeof(ea_tensor));
    if (!t) {
        ps->status = EA_ERR_NOMEM;
        return NULL;
    }
    memset(t, 0, sizeof *t);
    t->ndim = ndim;
    t->size = 1;
    for (i = 0; i < ndim; i++) {
        if (shape[i] <= 0 || (size_t)shape[i] > EA_MAX_ELEMS / t->size) {
            EFFATTN_FREE(t);
            ps->status = EA_ERR_SHAPE;
            return NULL;
        }
        t->shape[i] = shape[i];
        t->size *= (size_t)shape[i];
    }
    t->requires_grad = 1;
    memset(&ps->info[ps->count], 0, sizeof(ea_param_info));
    snprintf(ps->info[ps->count].name, EA_NAME_LEN, "%s", name);
    ps->info[ps->count].init = init;
    ps->info[ps->count].init_arg = init_arg;
    ps->info[ps->count].offset = ps->n;
    t->name = ps->info[ps->count].name;
    ps->tensors[ps->count++] = t;
    /* keep every tensor 16-float aligned inside the flat buffer */
    ps->n += (t->size + 15) / 16 * 16;
    return t;
}

EA_API ea_status ea_params_alloc(ea_params *ps, ea_error *err) {
    int i;
    if (ps->status != EA_OK)
        return ea_error_set(err, ps->status, "parameters: registration failed (%s)",
                            ea_status_name(ps->status));
    ps->data = (float *)EFFATTN_MALLOC(4 * ps->n * sizeof(float) + 1);
    if (!ps->data)
        return ea_error_set(err, EA_ERR_NOMEM, "parameters: could not allocate %zu floats", 4 * ps->n);
    memset(ps->data, 0, 4 * ps->n * sizeof(float));
    ps->grad = ps->data + ps->n;
    ps->m = ps->grad + ps->n;
    ps->v = ps->m + ps->n;
    for (i = 0; i < ps->count; i++) {
        ps->tensors[i]->data = ps->data + ps->info[i].offset;
        ps->tensors[i]->grad = ps->grad + ps->info[i].offset;
    }
    return EA_OK;
}

EA_API void ea_params_init(ea_params *ps, uint64_t seed) {
    ea_rng rng;
    int i;
    size_t j;
    ea_rng_seed(&rng, seed, 1);
    for (i = 0; i < ps->count; i++) {
        ea_tensor *t = ps->tensors[i];
        float a = ps->info[i].init_arg;
        for (j = 0; j < t->size; j++) {
            switch (ps->info[i].init) {
            case EA_INIT_ZEROS: t->data[j] = 0.0f; break;
            case EA_INIT_ONES: t->data[j] = 1.0f; break;
            case EA_INIT_FANIN: {
                float bound = 1.0f / sqrtf(a);
                t->data[j] = ea_rng_range(&rng, -bound, bound);
                break;
            }
            case EA_INIT_NORMAL: t->data[j] = a * ea_rng_normal(&rng); break;
            }
        }
    }
}

EA_API void ea_params_zero_grad(ea_params *ps) {
    if (ps->grad) memset(ps->grad, 0, ps->n * sizeof(float));
}

EA_API void ea_params_free(ea_params *ps) {
    int i;
    for (i = 0; i < ps->count; i++) EFFATTN_FREE(ps->tensors[i]);
    EFFATTN_FREE(ps->tensors);
    EFFATTN_FREE(ps->info);
    EFFATTN_FREE(ps->data);
    memset(ps, 0, sizeof *ps);
}

EA_API ea_tensor *ea_params_find(const ea_params *ps, const char *name) {
    int i;
    for (i = 0; i < ps->count; i++)
        if (strcmp(ps->info[i].name, name) == 0) return ps->tensors[i];
    return NULL;
}

/* ==========================================================================
   == 7. CORE OPS: linear, matmul, add, layer norm, GELU, softmax,
   ==    patch embedding, token mean, MSE, cross-entropy
   ==========================================================================
   Each op is a pair of plain kernels over float* (forward, then backward)
   followed by its tape wrapper.  Backward kernels accumulate (+=) into
   gradients, because a tensor used twice receives the sum of both. */

/* An op's inputs are usable when they exist and no error is pending. */
static int ea__ok(ea_ctx *ctx, const ea_tensor *a, const ea_tensor *b) {
    return ctx && ctx->err.status == EA_OK && a && b;
}

static const char *ea__shape_str(const ea_tensor *t, char *buf, size_t n) {
    int i;
    size_t len = 0;
    buf[0] = 0;
    for (i = 0; i < t->ndim && len + 12 < n; i++)
        len += (size_t)snprintf(buf + len, n - len, "%s%d", i ? "x" : "[", t->shape[i]);
    if (len + 2 < n) snprintf(buf + len, n - len, "]");
    return buf;
}

/* --- linear: out[M,N] = inp[M,K] · w[N,K]ᵀ + b[N]   (2·M·N·K FLOPs) ----- */
EA_API void ea_linear_fwd(float *out, const float *inp, const float *w, const float *b, int M,
                          int K, int N) {
    int i, j;
    ea_gemm(M, N, K, inp, K, 1, w, 1, K, out, N, 0);
    if (b)
        for (i = 0; i < M; i++)
            for (j = 0; j < N; j++) out[(size_t)i * N + j] += b[j];
}

/* dinp += dout·w,  dw += doutᵀ·inp,  db += Σ_rows dout   (any may be NULL) */
EA_API void ea_linear_bwd(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                          const float *w, int M, int K, int N) {
    int i, j;
    if (dinp) ea_gemm(M, K, N, dout, N, 1, w, K, 1, dinp, K, 1);
    if (dw) ea_gemm(N, K, M, dout, 1, N, inp, K, 1, dw, K, 1);
    if (db)
        for (i = 0; i < M; i++)
            for (j = 0; j < N; j++) db[j] += dout[(size_t)i * N + j];
}

static void ea__linear_back(ea_ctx *ctx, ea_node *n) {
    ea_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2];
    (void)ctx;
    ea_linear_bwd(x->grad, w->grad, b ? b->grad : NULL, n->out->grad, x->data, w->data,
                  n->iarg[0], n->iarg[1], n->iarg[2]);
}

EA_API ea_tensor *ea_linear(ea_ctx *ctx, ea_tensor *x, ea_tensor *w, ea_tensor *b) {
    int shape[EA_MAX_DIMS], K, N, M, i;
    ea_tensor *out;
    ea_node *n;
    char s1[48], s2[48];
    if (!ea__ok(ctx, x, w)) return NULL;
    K = x->shape[x->ndim - 1];
    if (w->ndim != 2 || w->shape[1] != K)
        return ea__fail(ctx, EA_ERR_SHAPE, "linear: input %s needs a weight [out, %d], got %s",
                        ea__shape_str(x, s1, sizeof s1), K, ea__shape_str(w, s2, sizeof s2));
    N = w->shape[0];
    if (b && (b->ndim != 1 || b->shape[0] != N))
        return ea__fail(ctx, EA_ERR_SHAPE, "linear: bias must be [%d], got %s", N,
                        ea__shape_str(b, s1, sizeof s1));
    M = (int)(x->size / (size_t)K);
    for (i = 0; i < x->ndim; i++) shape[i] = x->shape[i];
    shape[x->ndim - 1] = N;
    out = ea__out(ctx, x->ndim, shape, x, w, b);
    if (!out) return NULL;
    ea_linear_fwd(out->data, x->data, w->data, b ? b->data : NULL, M, K, N);
    n = ea__record(ctx, ea__linear_back, out, x, w, b);
    if (n) {
        n->iarg[0] = M;
        n->iarg[1] = K;
        n->iarg[2] = N;
    }
    return out;
}

/* --- matmul: c[.., M, N] = a[.., M, K] · b[.., K, N]  (b may be shared) - */
static void ea__matmul_back(ea_ctx *ctx, ea_node *n) {
    ea_tensor *a = n->in[0], *b = n->in[1];
    int batch = n->iarg[0], M = n->iarg[1], K = n->iarg[2], N = n->iarg[3], bshared = n->iarg[4];
    int i;
    (void)ctx;
    for (i = 0; i < batch; i++) {
        const float *bi = b->data + (bshared ? 0 : (size_t)i * K * N);
        const float *dc = n->out->grad + (size_t)i * M * N;
        /* da = dc · bᵀ,  db = aᵀ · dc */
        if (a->grad) ea_gemm(M, K, N, dc, N, 1, bi, 1, N, a->grad + (size_t)i * M * K, K, 1);
        if (b->grad)
            ea_gemm(K, N, M, a->data + (size_t)i * M * K, 1, K, dc, N, 1,
                    b->grad + (bshared ? 0 : (size_t)i * K * N), N, 1);
    }
}

EA_API ea_tensor *ea_matmul(ea_ctx *ctx, ea_tensor *a, ea_tensor *b) {
    int M, K, N, batch, bshared, i, shape[EA_MAX_DIMS];
    ea_tensor *out;
    ea_node *n;
    char s1[48], s2[48];
    if (!ea__ok(ctx, a, b)) return NULL;
    if (a->ndim < 2 || b->ndim < 2) goto bad;
    M = a->shape[a->ndim - 2];
    K = a->shape[a->ndim - 1];
    N = b->shape[b->ndim - 1];
    if (b->shape[b->ndim - 2] != K) goto bad;
    batch = (int)(a->size / ((size_t)M * K));
    bshared = b->ndim == 2;
    if (!bshared && b->size / ((size_t)K * N) != (size_t)batch) goto bad;
    for (i = 0; i < a->ndim; i++) shape[i] = a->shape[i];
    shape[a->ndim - 1] = N;
    out = ea__out(ctx, a->ndim, shape, a, b, NULL);
    if (!out) return NULL;
    for (i = 0; i < batch; i++)
        ea_gemm(M, N, K, a->data + (size_t)i * M * K, K, 1,
                b->data + (bshared ? 0 : (size_t)i * K * N), N, 1, out->data + (size_t)i * M * N,
                N, 0);
    n = ea__record(ctx, ea__matmul_back, out, a, b, NULL);
    if (n) {
        n->iarg[0] = batch;
        n->iarg[1] = M;
        n->iarg[2] = K;
        n->iarg[3] = N;
        n->iarg[4] = bshared;
    }
    return out;
bad:
    return ea__fail(ctx, EA_ERR_SHAPE,
                    "matmul: expected a [.., M, K] and b [K, N] or [.., K, N] with the same batch, "
                    "got %s and %s",
                    ea__shape_str(a, s1, sizeof s1), ea__shape_str(b, s2, sizeof s2));
}

/* --- add: out = a + b; b has a's shape or a's trailing shape (broadcast) */
static void ea__add_back(ea_ctx *ctx, ea_node *n) {
    ea_tensor *a = n->in[0], *b = n->in[1];
    const float *d = n->out->grad;
    size_t i, nb = b->size;
    (void)ctx;
    if (a->grad)
        for (i = 0; i < a->size; i++) a->grad[i] += d[i];
    if (b->grad)
        for (i = 0; i < a->size; i++) b->grad[i % nb] += d[i];
}

EA_API ea_tensor *ea_add(ea_ctx *ctx, ea_tensor *a, ea_tensor *b) {
    ea_tensor *out;
    size_t i, nb;
    int k, off, lead;
    char s1[48], s2[48];
    if (!ea__ok(ctx, a, b)) return NULL;
    /* leading 1s of b broadcast too: a [B, T, D] + pos [1, T, D] */
    for (lead = 0; lead < b->ndim - 1 && b->shape[lead] == 1; lead++) {}
    off = a->ndim - (b->ndim - lead);
    if (off < 0) goto bad;
    for (k = lead; k < b->ndim; k++)
        if (b->shape[k] != a->shape[off + k - lead]) goto bad;
    out = ea__out(ctx, a->ndim, a->shape, a, b, NULL);
    if (!out) return NULL;
    nb = b->size;
    for (i = 0; i < a->size; i++) out->data[i] = a->data[i] + b->data[i % nb];
    ea__record(ctx, ea__add_back, out, a, b, NULL);
    return out;
bad:
    return ea__fail(ctx, EA_ERR_SHAPE, "add: b must have a's shape or its trailing shape, got %s and %s",
                    ea__shape_str(a, s1, sizeof s1), ea__shape_str(b, s2, sizeof s2));
}

/* --- layer norm over the last dimension C ---------------------------------
   y = (x - μ) / sqrt(σ² + eps) · w + b,  μ, σ² over the row (biased).
   Backward with x̂ = (x - μ)·rstd and g = dy·w:
       dx = rstd · (g - mean(g) - x̂ · mean(g · x̂)),  dw += dy·x̂,  db += dy. */
EA_API void ea_layernorm_fwd(float *out, float *mean, float *rstd, const float *x, const float *w,
                             const float *b, int N, int C, float eps) {
    int i;
    EA_OMP_FOR_IF((double)N * C >= EA_PAR_MIN_WORK)
    for (i = 0; i < N; i++) {
        const float *xi = x + (size_t)i * C;
        float *oi = out + (size_t)i * C;
        float m = 0.0f, v = 0.0f, s;
        int j;
        for (j = 0; j < C; j++) m += xi[j];
        m /= (float)C;
        for (j = 0; j < C; j++) v += (xi[j] - m) * (xi[j] - m);
        v /= (float)C;
        s = 1.0f / sqrtf(v + eps);
        for (j = 0; j < C; j++) oi[j] = (xi[j] - m) * s * (w ? w[j] : 1.0f) + (b ? b[j] : 0.0f);
        if (mean) mean[i] = m;
        if (rstd) rstd[i] = s;
    }
}

EA_API void ea_layernorm_bwd(float *dx, float *dw, float *db, const float *dout, const float *x,
                             const float *mean, const float *rstd, const float *w, int N, int C) {
    int i, j;
    if (dx) {
        EA_OMP_FOR_IF((double)N * C >= EA_PAR_MIN_WORK)
        for (i = 0; i < N; i++) {
            const float *xi = x + (size_t)i * C, *di = dout + (size_t)i * C;
            float *dxi = dx + (size_t)i * C;
            float mg = 0.0f, mgx = 0.0f;
            int jj;
            for (jj = 0; jj < C; jj++) {
                float xh = (xi[jj] - mean[i]) * rstd[i], g = di[jj] * (w ? w[jj] : 1.0f);
                mg += g;
                mgx += g * xh;
            }
            mg /= (float)C;
            mgx /= (float)C;
            for (jj = 0; jj < C; jj++) {
                float xh = (xi[jj] - mean[i]) * rstd[i], g = di[jj] * (w ? w[jj] : 1.0f);
                dxi[jj] += rstd[i] * (g - mg - xh * mgx);
            }
        }
    }
    /* parameter gradients sum over rows: one thread, fixed order */
    for (i = 0; i < N && (dw || db); i++)
        for (j = 0; j < C; j++) {
            float d = dout[(size_t)i * C + j];
            if (dw) dw[j] += d * (x[(size_t)i * C + j] - mean[i]) * rstd[i];
            if (db) db[j] += d;
        }
}

static void ea__layernorm_back(ea_ctx *ctx, ea_node *n) {
    ea_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2];
    (void)ctx;
    ea_layernorm_bwd(x->grad, w ? w->grad : NULL, b ? b->grad : NULL, n->out->grad, x->data,
                     n->save[0], n->save[1], w ? w->data : NULL, n->iarg[0], n->iarg[1]);
}

EA_API ea_tensor *ea_layernorm(ea_ctx *ctx, ea_tensor *x, ea_tensor *w, ea_tensor *b, float eps) {
    int C, N;
    float *mean, *rstd;
    ea_tensor *out;
    ea_node *n;
    char s1[48];
    if (!ea__ok(ctx, x, x)) return NULL;
    C = x->shape[x->ndim - 1];
    N = (int)(x->size / (size_t)C);
    if ((w && (w->size != (size_t)C)) || (b && (b->size != (size_t)C)))
        return ea__fail(ctx, EA_ERR_SHAPE, "layernorm: input %s needs weight and bias of %d values",
                        ea__shape_str(x, s1, sizeof s1), C);
    if (!(eps > 0.0f)) return ea__fail(ctx, EA_ERR_ARG, "layernorm: eps must be > 0, got %g", (double)eps);
    out = ea__out(ctx, x->ndim, x->shape, x, w, b);
    mean = ea__floats(ctx, (size_t)N);
    rstd = ea__floats(ctx, (size_t)N);
    if (!out || !mean || !rstd) return NULL;
    ea_layernorm_fwd(out->data, mean, rstd, x->data, w ? w->data : NULL, b ? b->data : NULL, N, C, eps);
    n = ea__record(ctx, ea__layernorm_back, out, x, w, b);
    if (n) {
        n->save[0] = mean;
        n->save[1] = rstd;
        n->iarg[0] = N;
        n->iarg[1] = C;
    }
    return out;
}

/* --- GELU, exact form (PyTorch's default): x · Φ(x) ----------------------
   Φ(x) = (1 + erf(x/√2)) / 2;  d/dx = Φ(x) + x · exp(-x²/2) / √(2π).
   libm's erff is slow and does not vectorise, so the vector path takes
   erfc from Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7):
       erfc(a) = t·(a1 + t·(a2 + ... + t·a5)) · exp(-a²),  t = 1 / (1 + p·a), a >= 0
   with a = |x|/√2, Φ(x) = 1 - erfc(a)/2 for x > 0 and erfc(a)/2 otherwise.
   exp(-a²) = exp(-x²/2) is also the density's factor, so the backward
   reuses it.  Leftover elements use the libm formula (the reference). */
EA_INLINE void ea__gelu_parts(ea_vf x, ea_vf *cdf, ea_vf *pdf) {
    ea_vf a = ea_vmul(ea_vabs(x), ea_vset1(0.70710678118654752f));
    ea_vf t = ea_vdiv(ea_vset1(1.0f), ea_vfma(ea_vset1(0.3275911f), a, ea_vset1(1.0f)));
    ea_vf g = ea_vexp(ea_vmul(ea_vsub(ea_vzero(), a), a)), q, half;
    q = ea_vfma(ea_vset1(1.061405429f), t, ea_vset1(-1.453152027f));
    q = ea_vfma(q, t, ea_vset1(1.421413741f));
    q = ea_vfma(q, t, ea_vset1(-0.284496736f));
    q = ea_vfma(q, t, ea_vset1(0.254829592f));
    half = ea_vmul(ea_vmul(ea_vmul(q, t), g), ea_vset1(0.5f));
    *cdf = ea_vsel_pos(x, ea_vsub(ea_vset1(1.0f), half), half);
    *pdf = ea_vmul(g, ea_vset1(0.39894228040143268f));
}

EA_API void ea_gelu_fwd(float *out, const float *x, size_t n) {
    size_t i = 0;
#if EA_VW > 1
    for (; i + EA_VW <= n; i += EA_VW) {
        ea_vf xv = ea_vload(x + i), cdf, pdf;
        ea__gelu_parts(xv, &cdf, &pdf);
        ea_vstore(out + i, ea_vmul(xv, cdf));
    }
#endif
    for (; i < n; i++) out[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}

EA_API void ea_gelu_bwd(float *dx, const float *dout, const float *x, size_t n) {
    size_t i = 0;
#if EA_VW > 1
    for (; i + EA_VW <= n; i += EA_VW) {
        ea_vf xv = ea_vload(x + i), cdf, pdf;
        ea__gelu_parts(xv, &cdf, &pdf);
        ea_vstore(dx + i, ea_vfma(ea_vload(dout + i), ea_vfma(xv, pdf, cdf), ea_vload(dx + i)));
    }
#endif
    for (; i < n; i++) {
        float cdf = 0.5f * (1.0f + erff(x[i] * 0.70710678118654752f));
        float pdf = 0.39894228040143268f * expf(-0.5f * x[i] * x[i]);
        dx[i] += dout[i] * (cdf + x[i] * pdf);
    }
}

static void ea__gelu_back(ea_ctx *ctx, ea_node *n) {
    (void)ctx;
    if (n->in[0]->grad) ea_gelu_bwd(n->in[0]->grad, n->out->grad, n->in[0]->data, n->out->size);
}

EA_API ea_tensor *ea_gelu(ea_ctx *ctx, ea_tensor *x) {
    ea_tensor *out;
    if (!ea__ok(ctx, x, x)) return NULL;
    out = ea__out(ctx, x->ndim, x->shape, x, NULL, NULL);
    if (!out) return NULL;
    ea_gelu_fwd(out->data, x->data, x->size);
    ea__record(ctx, ea__gelu_back, out, x, NULL, NULL);
    return out;
}

/* --- softmax over the last dimension ---------------------------------------
   y_j = exp(x_j - max) / Σ exp(x - max);  dx = y ∘ (dy - Σ dy∘y).
   Entries of -inf (masked) give y = 0; a row of only -inf gives zeros. */
/* Row helpers on the SIMD layer (tails on libm): the max of a row, and
   y = exp(x - m) with the sum of y.  Softmax and flash attention use both. */
static float ea__row_max(const float *x, int n) {
    float mx = -INFINITY;
    int j = 0;
#if EA_VW > 1
    if (n >= EA_VW) {
        ea_vf m = ea_vload(x);
        for (j = EA_VW; j + EA_VW <= n; j += EA_VW) m = ea_vmax(m, ea_vload(x + j));
        mx = ea_vhmax(m);
    }
#endif
    for (; j < n; j++) mx = x[j] > mx ? x[j] : mx;
    return mx;
}

static float ea__row_exp(float *y, const float *x, int n, float m) {
    float s = 0.0f;
    int j = 0;
#if EA_VW > 1
    {
        ea_vf acc = ea_vzero(), mv = ea_vset1(m);
        for (; j + EA_VW <= n; j += EA_VW) {
            ea_vf e = ea_vexp(ea_vsub(ea_vload(x + j), mv));
            ea_vstore(y + j, e);
            acc = ea_vadd(acc, e);
        }
        s = ea_vhsum(acc);
    }
#endif
    for (; j < n; j++) s += (y[j] = expf(x[j] - m));
    return s;
}

/* One row: the max, exp(x - max) and its sum, then the scaling. */
static void ea__softmax_row(float *y, const float *x, int cols) {
    float mx = ea__row_max(x, cols), s;
    int j;
    if (mx == -INFINITY) { /* a fully masked row */
        for (j = 0; j < cols; j++) y[j] = 0.0f;
        return;
    }
    s = 1.0f / ea__row_exp(y, x, cols, mx);
    for (j = 0; j < cols; j++) y[j] *= s;
}

EA_API void ea_softmax_fwd(float *out, const float *x, int rows, int cols) {
    int i;
    for (i = 0; i < rows; i++) ea__softmax_row(out + (size_t)i * cols, x + (size_t)i * cols, cols);
}

EA_API void ea_softmax_bwd(float *dx, const float *dout, const float *y, int rows, int cols) {
    int i, j;
    for (i = 0; i < rows; i++) {
        const float *yi = y + (size_t)i * cols, *di = dout + (size_t)i * cols;
        float *dxi = dx + (size_t)i * cols, dot = 0.0f;
        for (j = 0; j < cols; j++) dot += di[j] * yi[j];
        for (j = 0; j < cols; j++) dxi[j] += yi[j] * (di[j] - dot);
    }
}

static void ea__softmax_back(ea_ctx *ctx, ea_node *n) {
    (void)ctx;
    if (n->in[0]->grad)
        ea_softmax_bwd(n->in[0]->grad, n->out->grad, n->out->data, n->iarg[0], n->iarg[1]);
}

EA_API ea_tensor *ea_softmax(ea_ctx *ctx, ea_tensor *x) {
    ea_tensor *out;
    ea_node *n;
    int cols;
    if (!ea__ok(ctx, x, x)) return NULL;
    cols = x->shape[x->ndim - 1];
    out = ea__out(ctx, x->ndim, x->shape, x, NULL, NULL);
    if (!out) return NULL;
    ea_softmax_fwd(out->data, x->data, (int)(x->size / (size_t)cols), cols);
    n = ea__record(ctx, ea__softmax_back, out, x, NULL, NULL);
    if (n) {
        n->iarg[0] = (int)(x->size / (size_t)cols);
        n->iarg[1] = cols;
    }
    return out;
}

/* --- patch embedding: conv2d with kernel = stride = p ----------------------
   x [B, C, H, W], w [D, C, p, p], b [D] -> tokens [B, T, D], T = (H/p)(W/p),
   token t = py·(W/p) + px (PyTorch's conv(x).flatten(2).transpose(1, 2)).
   Done as im2col (each patch a row of C·p·p values in w's order) and one
   linear: 2·B·T·D·C·p² FLOPs.  Backward: the linear's, then col2im. */
static void ea__im2col(float *cols, float *x, int B, int C, int H, int W, int p, int to_cols) {
    int Hp = H / p, Wp = W / p, K = C * p * p, bi, t, c, ky, kx;
    for (bi = 0; bi < B; bi++)
        for (t = 0; t < Hp * Wp; t++) {
            int py = t / Wp, px = t % Wp;
            float *row = cols + ((size_t)bi * Hp * Wp + t) * K;
            for (c = 0; c < C; c++)
                for (ky = 0; ky < p; ky++)
                    for (kx = 0; kx < p; kx++) {
                        size_t xi = (((size_t)bi * C + c) * H + py * p + ky) * W + px * p + kx;
                        float *r = row + (c * p + ky) * p + kx;
                        if (to_cols) *r = x[xi];
                        else x[xi] += *r; /* col2im: scatter gradients back */
                    }
        }
}

static void ea__patch_back(ea_ctx *ctx, ea_node *n) {
    ea_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2];
    int B = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3], p = n->iarg[0];
    int M = n->iarg[1], K = n->iarg[2], D = n->iarg[3];
    float *dcols = NULL;
    if (x->grad) {
        dcols = ea__floats(ctx, (size_t)M * K);
        if (!dcols) return;
        memset(dcols, 0, (size_t)M * K * sizeof(float));
    }
    ea_linear_bwd(dcols, w->grad, b ? b->grad : NULL, n->out->grad, n->save[0], w->data, M, K, D);
    if (dcols) ea__im2col(dcols, x->grad, B, C, H, W, p, 0);
}

EA_API ea_tensor *ea_patch_embed(ea_ctx *ctx, ea_tensor *x, ea_tensor *w, ea_tensor *b) {
    int B, C, H, W, D, p, T, K, shape[3];
    float *cols;
    ea_tensor *out;
    ea_node *n;
    char s1[48], s2[48];
    if (!ea__ok(ctx, x, w)) return NULL;
    if (x->ndim != 4 || w->ndim != 4 || w->shape[1] != x->shape[1] || w->shape[2] != w->shape[3] ||
        x->shape[2] % w->shape[2] || x->shape[3] % w->shape[2])
        return ea__fail(ctx, EA_ERR_SHAPE,
                        "patch_embed: expected x [B, C, H, W] and w [D, C, p, p] with p dividing H "
                        "and W, got %s and %s",
                        ea__shape_str(x, s1, sizeof s1), ea__shape_str(w, s2, sizeof s2));
    B = x->shape[0]; C = x->shape[1]; H = x->shape[2]; W = x->shape[3];
    D = w->shape[0]; p = w->shape[2];
    if (b && b->size != (size_t)D)
        return ea__fail(ctx, EA_ERR_SHAPE, "patch_embed: bias must have %d values", D);
    T = (H / p) * (W / p);
    K = C * p * p;
    cols = ea__floats(ctx, (size_t)B * T * K);
    shape[0] = B; shape[1] = T; shape[2] = D;
    out = ea__out(ctx, 3, shape, x, w, b);
    if (!cols || !out) return NULL;
    ea__im2col(cols, x->data, B, C, H, W, p, 1);
    ea_linear_fwd(out->data, cols, w->data, b ? b->data : NULL, B * T, K, D);
    n = ea__record(ctx, ea__patch_back, out, x, w, b);
    if (n) {
        n->save[0] = cols;
        n->iarg[0] = p;
        n->iarg[1] = B * T;
        n->iarg[2] = K;
        n->iarg[3] = D;
    }
    return out;
}

/* --- mean over tokens: [B, T, D] -> [B, D] ------------------------------- */
static void ea__mean_back(ea_ctx *ctx, ea_node *n) {
    ea_tensor *x = n->in[0];
    int B = x->shape[0], T = x->shape[1], D = x->shape[2], bi, t, d;
    (void)ctx;
    if (!x->grad) return;
    for (bi = 0; bi < B; bi++)
        for (t = 0; t < T; t++)
            for (d = 0; d < D; d++)
                x->grad[((size_t)bi * T + t) * D + d] += n->out->grad[(size_t)bi * D + d] / (float)T;
}

EA_API ea_tensor *ea_mean_tokens(ea_ctx *ctx, ea_tensor *x) {
    int B, T, D, bi, t, d;
    ea_tensor *out;
    char s1[48];
    if (!ea__ok(ctx, x, x)) return NULL;
    if (x->ndim != 3)
        return ea__fail(ctx, EA_ERR_SHAPE, "mean_tokens: expected [B, T, D], got %s",
                        ea__shape_str(x, s1, sizeof s1));
    B = x->shape[0]; T = x->shape[1]; D = x->shape[2];
    out = ea_tensor_2d(ctx, B, D, x->requires_grad);
    if (!out) return NULL;
    for (bi = 0; bi < B; bi++)
        for (d = 0; d < D; d++) {
            float s = 0.0f;
            for (t = 0; t < T; t++) s += x->data[((size_t)bi * T + t) * D + d];
            out->data[(size_t)bi * D + d] = s / (float)T;
        }
    ea__record(ctx, ea__mean_back, out, x, NULL, NULL);
    return out;
}

/* --- losses ---------------------------------------------------------------
   MSE: mean over all elements of (pred - target)²; d/dpred = 2(pred - target)/n.
   Cross-entropy: mean over rows of -log softmax(logits)[label];
   d/dlogits = (softmax - onehot) / rows. */
static void ea__mse_back(ea_ctx *ctx, ea_node *n) {
    ea_tensor *p = n->in[0], *t = n->in[1];
    float g = n->out->grad[0] * 2.0f / (float)p->size;
    size_t i;
    (void)ctx;
    for (i = 0; i < p->size; i++) {
        float d = g * (p->data[i] - t->data[i]);
        if (p->grad) p->grad[i] += d;
        if (t->grad) t->grad[i] -= d;
    }
}

EA_API ea_tensor *ea_mse_loss(ea_ctx *ctx, ea_tensor *pred, ea_tensor *target) {
    ea_tensor *out;
    double s = 0.0;
    size_t i;
    int one = 1;
    char s1[48], s2[48];
    if (!ea__ok(ctx, pred, target)) return NULL;
    if (pred->size != target->size)
        return ea__fail(ctx, EA_ERR_SHAPE, "mse_loss: prediction %s and target %s differ in size",
                        ea__shape_str(pred, s1, sizeof s1), ea__shape_str(target, s2, sizeof s2));
    out = ea__out(ctx, 1, &one, pred, target, NULL);
    if (!out) return NULL;
    for (i = 0; i < pred->size; i++) {
        double d = (double)pred->data[i] - (double)target->data[i];
        s += d * d;
    }
    out->data[0] = (float)(s / (double)pred->size);
    ea__record(ctx, ea__mse_back, out, pred, target, NULL);
    return out;
}

static void ea__ce_back(ea_ctx *ctx, ea_node *n) {
    ea_tensor *x = n->in[0];
    int rows = n->iarg[0], cols = n->iarg[1], i, j;
    const int *labels = (const int *)(const void *)n->save[1];
    float g = n->out->grad[0] / (float)rows;
    (void)ctx;
    if (!x->grad) return;
    for (i = 0; i < rows; i++)
        for (j = 0; j < cols; j++)
            x->grad[(size_t)i * cols + j] +=
                g * (n->save[0][(size_t)i * cols + j] - (j == labels[i] ? 1.0f : 0.0f));
}

EA_API ea_tensor *ea_cross_entropy(ea_ctx *ctx, ea_tensor *logits, const int *labels) {
    int rows, cols, i, one = 1;
    float *prob;
    int *lab;
    double s = 0.0;
    ea_tensor *out;
    ea_node *n;
    if (!ea__ok(ctx, logits, logits)) return NULL;
    if (!labels) return ea__fail(ctx, EA_ERR_ARG, "cross_entropy: labels are NULL");
    cols = logits->shape[logits->ndim - 1];
    rows = (int)(logits->size / (size_t)cols);
    for (i = 0; i < rows; i++)
        if (labels[i] < 0 || labels[i] >= cols)
            return ea__fail(ctx, EA_ERR_ARG, "cross_entropy: label %d of row %d is outside [0, %d)",
                            labels[i], i, cols);
    prob = ea__floats(ctx, logits->size);
    lab = (int *)ea_ctx_alloc(ctx, (size_t)rows * sizeof(int));
    out = ea__out(ctx, 1, &one, logits, NULL, NULL);
    if (!prob || !lab || !out) return NULL;
    memcpy(lab, labels, (size_t)rows * sizeof(int));
    ea_softmax_fwd(prob, logits->data, rows, cols);
    for (i = 0; i < rows; i++) {
        /* log-sum-exp form: finite even when a probability underflows */
        const float *xi = logits->data + (size_t)i * cols;
        float mx = xi[0];
        double z = 0.0;
        int j;
        for (j = 1; j < cols; j++) mx = xi[j] > mx ? xi[j] : mx;
        for (j = 0; j < cols; j++) z += exp((double)(xi[j] - mx));
        s += log(z) + (double)mx - (double)xi[labels[i]];
    }
    out->data[0] = (float)(s / rows);
    n = ea__record(ctx, ea__ce_back, out, logits, NULL, NULL);
    if (n) {
        n->save[0] = prob;
        n->save[1] = (float *)(void *)lab;
        n->iarg[0] = rows;
        n->iarg[1] = cols;
    }
    return out;
}

/* ==========================================================================
   == 8. ATTENTION
   ==========================================================================
   --- 8.1 Scaled dot-product core (Vaswani et al. 2017), grouped K/V heads
   (GQA, Ainslie et al. 2023; MQA, Shazeer 2019, is Hkv = 1; MHA is Hkv = H):

       for each batch b and query head h, with kv head g = h / (H / Hkv):
           S = scale · Q_h K_gᵀ            [nq, nk]   (scale = 1/√dh)
           S_ij = -inf where causal and j > i + (nk - nq)
           P = softmax_rows(S)             [nq, nk]
           O_h = P V_g                     [nq, dh]

   Cost: 4·B·H·nq·nk·dh FLOPs; memory: P is kept for the backward,
   B·H·nq·nk floats (the flash-tiled path avoids that for long sequences).
   Backward, with dO given:
       dV_g += Pᵀ dO_h,   dP = dO_h V_gᵀ,   dS = P ∘ (dP - rowsum(dP ∘ P)),
       dQ_h += scale · dS K_g,   dK_g += scale · dSᵀ Q_h.
   Q, K, V are strided views (row strides ldq, ldk, ldv), so a merged QKV
   projection's output is read in place. */

/* Highest key index query i may see (inclusive). */
EA_INLINE int ea__last_key(const ea_sdpa_shape *s, int i) {
    return s->causal ? i + (s->nk - s->nq) : s->nk - 1;
}

/* Reference: the formula as plain loops, one query at a time. */
EA_API void ea_sdpa_ref_fwd(float *o, const float *q, const float *k, const float *v,
                            const ea_sdpa_shape *s) {
    int b, h, i, j, d, group = s->H / s->Hkv;
    float *row = (float *)EFFATTN_MALLOC((size_t)s->nk * sizeof(float));
    if (!row) return;
    for (b = 0; b < s->B; b++)
        for (h = 0; h < s->H; h++)
            for (i = 0; i < s->nq; i++) {
                const float *qi = q + ((size_t)b * s->nq + i) * s->ldq + h * s->dh;
                float *oi = o + ((size_t)b * s->nq + i) * s->ldo + h * s->dh;
                int last = ea__last_key(s, i);
                float mx = -INFINITY, sum = 0.0f;
                for (j = 0; j < s->nk; j++) {
                    const float *kj = k + ((size_t)b * s->nk + j) * s->ldk + (h / group) * s->dh;
                    float dot = 0.0f;
                    for (d = 0; d < s->dh; d++) dot += qi[d] * kj[d];
                    row[j] = j <= last ? dot * s->scale : -INFINITY;
                    mx = row[j] > mx ? row[j] : mx;
                }
                for (j = 0; j < s->nk; j++) sum += (row[j] = j <= last ? expf(row[j] - mx) : 0.0f);
                for (d = 0; d < s->dh; d++) oi[d] = 0.0f;
                for (j = 0; j < s->nk && sum > 0.0f; j++) {
                    const float *vj = v + ((size_t)b * s->nk + j) * s->ldv + (h / group) * s->dh;
                    for (d = 0; d < s->dh; d++) oi[d] += row[j] / sum * vj[d];
                }
            }
    EFFATTN_FREE(row);
}

/* Fast forward: two GEMMs per (batch, head) slice around a row softmax.
   p receives P (B·H·nq·nk floats) for the backward. */
EA_API void ea_sdpa_fwd(float *o, float *p, const float *q, const float *k, const float *v,
                        const ea_sdpa_shape *s) {
    int slice, group = s->H / s->Hkv, nslice = s->B * s->H;
    EA_OMP_FOR_IF(nslice > 1 && 4.0 * s->nq * s->nk * s->dh * nslice >= EA_PAR_MIN_WORK)
    for (slice = 0; slice < nslice; slice++) {
        int b = slice / s->H, h = slice % s->H, g = h / group, i, j;
        const float *qh = q + (size_t)b * s->nq * s->ldq + h * s->dh;
        const float *kh = k + (size_t)b * s->nk * s->ldk + g * s->dh;
        const float *vh = v + (size_t)b * s->nk * s->ldv + g * s->dh;
        float *P = p + (size_t)slice * s->nq * s->nk;
        ea_gemm(s->nq, s->nk, s->dh, qh, s->ldq, 1, kh, 1, s->ldk, P, s->nk, 0);
        for (i = 0; i < s->nq; i++) {
            float *Pi = P + (size_t)i * s->nk;
            int last = ea__last_key(s, i);
            for (j = 0; j < s->nk; j++) Pi[j] = j <= last ? Pi[j] * s->scale : -INFINITY;
        }
        ea_softmax_fwd(P, P, s->nq, s->nk);
        ea_gemm(s->nq, s->dh, s->nk, P, s->nk, 1, vh, s->ldv, 1, o + (size_t)b * s->nq * s->ldo + h * s->dh,
                s->ldo, 0);
    }
}

/* Backward.  Heads that share a K/V head add into the same dK, dV rows, so
   threads split the batch, and heads run in order inside it.  scratch:
   B·nq·nk floats.  dq, dk, dv may be NULL (no gradient wanted). */
EA_API void ea_sdpa_bwd(float *dq, float *dk, float *dv, float *scratch, const float *dout,
                        const float *p, const float *q, const float *k, const float *v,
                        const ea_sdpa_shape *s) {
    int b, group = s->H / s->Hkv;
    EA_OMP_FOR_IF(s->B > 1 && 8.0 * s->nq * s->nk * s->dh * s->B * s->H >= EA_PAR_MIN_WORK)
    for (b = 0; b < s->B; b++) {
        float *dS = scratch + (size_t)b * s->nq * s->nk;
        int h, i, j;
        for (h = 0; h < s->H; h++) {
            int g = h / group;
            size_t qo = (size_t)b * s->nq * s->ldq + h * s->dh, ko = (size_t)b * s->nk * s->ldk + g * s->dh;
            size_t vo = (size_t)b * s->nk * s->ldv + g * s->dh;
            const float *P = p + ((size_t)b * s->H + h) * s->nq * s->nk;
            const float *dO = dout + (size_t)b * s->nq * s->ldo + h * s->dh;
            if (dv) ea_gemm(s->nk, s->dh, s->nq, P, 1, s->nk, dO, s->ldo, 1, dv + vo, s->ldv, 1);
            if (!dq && !dk) continue;
            ea_gemm(s->nq, s->nk, s->dh, dO, s->ldo, 1, v + vo, 1, s->ldv, dS, s->nk, 0);
            for (i = 0; i < s->nq; i++) {
                const float *Pi = P + (size_t)i * s->nk;
                float *di = dS + (size_t)i * s->nk, dot = 0.0f;
                for (j = 0; j < s->nk; j++) dot += Pi[j] * di[j];
                for (j = 0; j < s->nk; j++) di[j] = s->scale * Pi[j] * (di[j] - dot);
            }
            if (dq) ea_gemm(s->nq, s->dh, s->nk, dS, s->nk, 1, k + ko, s->ldk, 1, dq + qo, s->ldq, 1);
            if (dk) ea_gemm(s->nk, s->dh, s->nq, dS, 1, s->nk, q + qo, s->ldq, 1, dk + ko, s->ldk, 1);
        }
    }
}


/* --- 8.1b Flash-tiled exact attention (Dao et al. 2022, FlashAttention;
   Dao 2023, FlashAttention-2) ----------------------------------------------
   The same O = softmax(scale·QKᵀ)V, computed one query block (EA_FA_BR
   rows) against one key tile (EA_FA_BC keys) at a time with an online
   softmax: per row keep the running max m and sum l; for each tile
       S = scale·Q_blk K_tileᵀ,  m' = max(m, rowmax S),  P = exp(S - m'),
       l = l·exp(m - m') + rowsum P,  O_acc = O_acc·exp(m - m') + P V_tile,
   and finally O = O_acc / l, lse = m + log l.  Extra memory is one tile
   per thread plus nq floats of lse: O(n), never nq x nk.  Under a causal
   mask, key tiles that lie wholly in a block's future are skipped, so the
   work halves.  Backward recomputes P = exp(S - lse) tile by tile:
       D_i = rowsum(dO_i ∘ O_i),  dV += Pᵀ dO,  dP = dO Vᵀ,
       dS = P ∘ (dP - D),  dQ += scale·dS K,  dK += scale·dSᵀ Q.
   Cost: the same 4·nq·nk·dh FLOPs per head forward (2x that backward, plus
   the recomputation), at O(n) memory. */
#define EA_FA_BR 64
#define EA_FA_BC 64

EA_API size_t ea_sdpa_flash_scratch(const ea_sdpa_shape *s) {
    /* S/P tile, dP tile, O accumulator, and m, l, D per row */
    return (size_t)EA_FA_BR * EA_FA_BC * 2 + (size_t)EA_FA_BR * s->dh + 3 * EA_FA_BR;
}

static int ea__thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* Scores of query rows [i0, i0+br) against keys [j0, j0+bc), masked. */
static void ea__fa_scores(float *S, const float *qh, const float *kh, int i0, int br, int j0, int bc,
                          const ea_sdpa_shape *s) {
    int r, c;
    ea_gemm(br, bc, s->dh, qh + (size_t)i0 * s->ldq, s->ldq, 1, kh + (size_t)j0 * s->ldk, 1, s->ldk, S, EA_FA_BC, 0);
    for (r = 0; r < br; r++) {
        int last = ea__last_key(s, i0 + r);
        float *Sr = S + (size_t)r * EA_FA_BC;
        for (c = 0; c < bc; c++) Sr[c] = j0 + c <= last ? Sr[c] * s->scale : -INFINITY;
    }
}

EA_API void ea_sdpa_flash_fwd(float *o, float *lse, float *scratch, const float *q, const float *k,
                              const float *v, const ea_sdpa_shape *s) {
    int nblk = (s->nq + EA_FA_BR - 1) / EA_FA_BR, work = s->B * s->H * nblk, w, group = s->H / s->Hkv;
    size_t per = ea_sdpa_flash_scratch(s);
    EA_OMP_FOR_IF(work > 1 && 4.0 * s->nq * s->nk * s->dh * s->B * s->H >= EA_PAR_MIN_WORK)
    for (w = 0; w < work; w++) {
        int b = w / (s->H * nblk), h = (w / nblk) % s->H, i0 = (w % nblk) * EA_FA_BR, g = h / group;
        int br = s->nq - i0 < EA_FA_BR ? s->nq - i0 : EA_FA_BR, r, c, d, j0;
        int last_row_key = ea__last_key(s, i0 + br - 1);
        float *S = scratch + per * (size_t)ea__thread_id(), *acc = S + 2 * EA_FA_BR * EA_FA_BC;
        float *m = acc + (size_t)EA_FA_BR * s->dh, *l = m + EA_FA_BR;
        const float *qh = q + (size_t)b * s->nq * s->ldq + h * s->dh;
        const float *kh = k + (size_t)b * s->nk * s->ldk + g * s->dh;
        const float *vh = v + (size_t)b * s->nk * s->ldv + g * s->dh;
        for (r = 0; r < br; r++) {
            m[r] = -INFINITY;
            l[r] = 0.0f;
        }
        memset(acc, 0, (size_t)br * s->dh * sizeof(float));
        for (j0 = 0; j0 < s->nk && j0 <= last_row_key; j0 += EA_FA_BC) { /* later tiles are all masked */
            int bc = s->nk - j0 < EA_FA_BC ? s->nk - j0 : EA_FA_BC;
            ea__fa_scores(S, qh, kh, i0, br, j0, bc, s);
            for (r = 0; r < br; r++) {
                float *Sr = S + (size_t)r * EA_FA_BC, mx = ea__row_max(Sr, bc), corr;
                mx = m[r] > mx ? m[r] : mx;
                if (mx == -INFINITY) { /* nothing visible yet in this row */
                    for (c = 0; c < bc; c++) Sr[c] = 0.0f;
                    continue;
                }
                corr = expf(m[r] - mx); /* exp(-inf) = 0 on the first visible tile */
                l[r] = l[r] * corr + ea__row_exp(Sr, Sr, bc, mx);
                m[r] = mx;
                for (d = 0; d < s->dh; d++) acc[(size_t)r * s->dh + d] *= corr;
            }
            ea_gemm(br, s->dh, bc, S, EA_FA_BC, 1, vh + (size_t)j0 * s->ldv, s->ldv, 1, acc, s->dh, 1);
        }
        for (r = 0; r < br; r++) {
            float *orow = o + ((size_t)b * s->nq + i0 + r) * s->ldo + h * s->dh;
            float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
            for (d = 0; d < s->dh; d++) orow[d] = acc[(size_t)r * s->dh + d] * inv;
            lse[((size_t)b * s->H + h) * s->nq + i0 + r] = l[r] > 0.0f ? m[r] + logf(l[r]) : INFINITY;
        }
    }
}

EA_API void ea_sdpa_flash_bwd(float *dq, float *dk, float *dv, float *scratch, const float *dout,
                              const float *o, const float *lse, const float *q, const float *k,
                              const float *v, const ea_sdpa_shape *s) {
    int b, group = s->H / s->Hkv;
    size_t per = ea_sdpa_flash_scratch(s);
    /* heads sharing a K/V head add into the same dK, dV: threads split the batch */
    EA_OMP_FOR_IF(s->B > 1 && 8.0 * s->nq * s->nk * s->dh * s->B * s->H >= EA_PAR_MIN_WORK)
    for (b = 0; b < s->B; b++) {
        float *P = scratch + per * (size_t)ea__thread_id(), *dP = P + EA_FA_BR * EA_FA_BC;
        float *D = dP + EA_FA_BR * EA_FA_BC + (size_t)EA_FA_BR * s->dh;
        int h, i0, j0, r, c, d;
        for (h = 0; h < s->H; h++) {
            int g = h / group;
            size_t qo = (size_t)b * s->nq * s->ldq + h * s->dh, ko = (size_t)b * s->nk * s->ldk + g * s->dh;
            size_t vo = (size_t)b * s->nk * s->ldv + g * s->dh, oo = (size_t)b * s->nq * s->ldo + h * s->dh;
            const float *L = lse + ((size_t)b * s->H + h) * s->nq;
            for (i0 = 0; i0 < s->nq; i0 += EA_FA_BR) {
                int br = s->nq - i0 < EA_FA_BR ? s->nq - i0 : EA_FA_BR;
                int last_row_key = ea__last_key(s, i0 + br - 1);
                for (r = 0; r < br; r++) {
                    const float *dor = dout + oo + (size_t)(i0 + r) * s->ldo, *orow = o + oo + (size_t)(i0 + r) * s->ldo;
                    float acc = 0.0f;
                    for (d = 0; d < s->dh; d++) acc += dor[d] * orow[d];
                    D[r] = acc;
                }
                for (j0 = 0; j0 < s->nk && j0 <= last_row_key; j0 += EA_FA_BC) {
                    int bc = s->nk - j0 < EA_FA_BC ? s->nk - j0 : EA_FA_BC;
                    ea__fa_scores(P, q + qo, k + ko, i0, br, j0, bc, s);
                    for (r = 0; r < br; r++) {
                        float *Pr = P + (size_t)r * EA_FA_BC;
                        if (L[i0 + r] == INFINITY) /* a row that sees no key */
                            for (c = 0; c < bc; c++) Pr[c] = 0.0f;
                        else
                            ea__row_exp(Pr, Pr, bc, L[i0 + r]);
                    }
                    if (dv) ea_gemm(bc, s->dh, br, P, 1, EA_FA_BC, dout + oo + (size_t)i0 * s->ldo, s->ldo, 1,
                                    dv + vo + (size_t)j0 * s->ldv, s->ldv, 1);
                    if (!dq && !dk) continue;
                    ea_gemm(br, bc, s->dh, dout + oo + (size_t)i0 * s->ldo, s->ldo, 1, v + vo + (size_t)j0 * s->ldv, 1,
                            s->ldv, dP, EA_FA_BC, 0);
                    for (r = 0; r < br; r++)
                        for (c = 0; c < bc; c++) {
                            size_t t = (size_t)r * EA_FA_BC + c;
                            dP[t] = s->scale * P[t] * (dP[t] - D[r]);
                        }
                    if (dq) ea_gemm(br, s->dh, bc, dP, EA_FA_BC, 1, k + ko + (size_t)j0 * s->ldk, s->ldk, 1,
                                    dq + qo + (size_t)i0 * s->ldq, s->ldq, 1);
                    if (dk) ea_gemm(bc, s->dh, br, dP, 1, EA_FA_BC, q + qo + (size_t)i0 * s->ldq, s->ldq, 1,
                                    dk + ko + (size_t)j0 * s->ldk, s->ldk, 1);
                }
            }
        }
    }
}

static void ea__sdpa_shape(ea_sdpa_shape *s, const ea_node *n) {
    s->B = n->iarg[0]; s->nq = n->iarg[1]; s->nk = n->iarg[2];
    s->H = n->iarg[3]; s->Hkv = n->iarg[4]; s->dh = n->iarg[5]; s->causal = n->iarg[6];
    s->scale = n->farg[0];
    s->ldq = n->in[0]->shape[2]; s->ldk = n->in[1]->shape[2]; s->ldv = n->in[2]->shape[2];
    s->ldo = (ptrdiff_t)s->H * s->dh;
}

static void ea__sdpa_back(ea_ctx *ctx, ea_node *n) {
    ea_tensor *q = n->in[0], *k = n->in[1], *v = n->in[2];
    int qc = n->iarg[7], kc = n->iarg[8], vc = n->iarg[9], flash = n->iarg[10];
    ea_sdpa_shape s;
    float *scratch;
    ea__sdpa_shape(&s, n);
    scratch = ea__floats(ctx, flash ? ea_sdpa_flash_scratch(&s) * (size_t)ea_num_threads() : (size_t)s.B * s.nq * s.nk);
    if (!scratch) return;
    if (flash)
        ea_sdpa_flash_bwd(q->grad ? q->grad + qc : NULL, k->grad ? k->grad + kc : NULL,
                          v->grad ? v->grad + vc : NULL, scratch, n->out->grad, n->out->data, n->save[0],
                          q->data + qc, k->data + kc, v->data + vc, &s);
    else
        ea_sdpa_bwd(q->grad ? q->grad + qc : NULL, k->grad ? k->grad + kc : NULL,
                    v->grad ? v->grad + vc : NULL, scratch, n->out->grad, n->save[0], q->data + qc,
                    k->data + kc, v->data + vc, &s);
}

/* Scores per head above which the flash path runs: below it one n x n
   tile costs less than the tiling (the tracker's 64 x 64 stays here). */
#define EA_FLASH_MIN_SCORES (128 * 128)

EA_API ea_tensor *ea_sdpa(ea_ctx *ctx, ea_tensor *q, int q_col, ea_tensor *k, int k_col,
                          ea_tensor *v, int v_col, int H, int Hkv, int dh, int causal) {
    ea_sdpa_shape s;
    ea_tensor *out;
    ea_node *n;
    float *p;
    int flash;
    char s1[48], s2[48], s3[48];
    if (!ea__ok(ctx, q, k) || !v) return NULL;
    if (H <= 0 || Hkv <= 0 || dh <= 0 || H % Hkv)
        return ea__fail(ctx, EA_ERR_CONFIG,
                        "sdpa: %d query heads, %d kv heads, head dim %d: expected positive sizes with "
                        "kv heads dividing query heads",
                        H, Hkv, dh);
    if (q->ndim != 3 || k->ndim != 3 || v->ndim != 3 || k->shape[0] != q->shape[0] ||
        v->shape[0] != q->shape[0] || v->shape[1] != k->shape[1] || q_col < 0 || k_col < 0 ||
        v_col < 0 || q_col + H * dh > q->shape[2] || k_col + Hkv * dh > k->shape[2] ||
        v_col + Hkv * dh > v->shape[2])
        return ea__fail(ctx, EA_ERR_SHAPE,
                        "sdpa: q %s (columns %d..%d), k %s, v %s (columns from %d, %d; %d each): "
                        "expected [B, n, C] tensors holding those columns",
                        ea__shape_str(q, s1, sizeof s1), q_col, q_col + H * dh,
                        ea__shape_str(k, s2, sizeof s2), ea__shape_str(v, s3, sizeof s3), k_col,
                        v_col, Hkv * dh);
    s.B = q->shape[0]; s.nq = q->shape[1]; s.nk = k->shape[1];
    s.H = H; s.Hkv = Hkv; s.dh = dh; s.causal = causal ? 1 : 0;
    s.scale = 1.0f / sqrtf((float)dh);
    s.ldq = q->shape[2]; s.ldk = k->shape[2]; s.ldv = v->shape[2]; s.ldo = (ptrdiff_t)H * dh;
    {
        int shape[3];
        shape[0] = s.B; shape[1] = s.nq; shape[2] = H * dh;
        out = ea__out(ctx, 3, shape, q, k, v);
    }
    if (!out) return NULL;
    flash = (size_t)s.nq * s.nk > EA_FLASH_MIN_SCORES;
    if (flash) { /* saves only the log-sum-exp of each row: O(n) memory */
        float *scratch = ea__floats(ctx, ea_sdpa_flash_scratch(&s) * (size_t)ea_num_threads());
        p = ea__floats(ctx, (size_t)s.B * H * s.nq);
        if (!p || !scratch) return NULL;
        ea_sdpa_flash_fwd(out->data, p, scratch, q->data + q_col, k->data + k_col, v->data + v_col, &s);
    } else {
        p = ea__floats(ctx, (size_t)s.B * H * s.nq * s.nk);
        if (!p) return NULL;
        ea_sdpa_fwd(out->data, p, q->data + q_col, k->data + k_col, v->data + v_col, &s);
    }
    n = ea__record(ctx, ea__sdpa_back, out, q, k, v);
    if (n) {
        n->save[0] = p;
        n->iarg[0] = s.B; n->iarg[1] = s.nq; n->iarg[2] = s.nk;
        n->iarg[3] = H; n->iarg[4] = Hkv; n->iarg[5] = dh; n->iarg[6] = s.causal;
        n->iarg[7] = q_col; n->iarg[8] = k_col; n->iarg[9] = v_col; n->iarg[10] = flash;
        n->farg[0] = s.scale;
    }
    return out;
}

/* --- 8.2 Shared pieces of the variants ------------------------------------ */
static ea_status ea__check_heads(const ea_attn *a, ea_error *err) {
    const ea_attn_config *c = &a->cfg;
    if (c->dim <= 0 || c->n_heads <= 0 || c->dim > 65536)
        return ea_error_set(err, EA_ERR_CONFIG,
                            "attention '%s': dim = %d and n_heads = %d must be positive (dim at most 65536)",
                            a->variant->name, c->dim, c->n_heads);
    if (c->dim % c->n_heads)
        return ea_error_set(err, EA_ERR_CONFIG,
                            "attention '%s': n_heads = %d must divide dim = %d (head dim = dim / n_heads)",
                            a->variant->name, c->n_heads, c->dim);
    return EA_OK;
}

/* Register "prefix.name.weight" [out, in] and ".bias" [out], PyTorch-default
   initialised: U(-1/√in, 1/√in) for both. */
static void ea__linear_params(ea_params *ps, const char *prefix, const char *name, int out, int in,
                              ea_tensor **w, ea_tensor **b) {
    char buf[EA_NAME_LEN];
    int shape[2];
    shape[0] = out;
    shape[1] = in;
    snprintf(buf, sizeof buf, "%s.%s.weight", prefix, name);
    *w = ea_param(ps, buf, 2, shape, EA_INIT_FANIN, (float)in);
    snprintf(buf, sizeof buf, "%s.%s.bias", prefix, name);
    *b = ea_param(ps, buf, 1, shape, EA_INIT_FANIN, (float)in);
}

/* --- 8.3 none: the identity (control row) ---------------------------------
   y = x.  No parameters, no cost: a block with it keeps only its MLP (seed
   001's "control" row). */
static ea_status ea__none_build(ea_attn *a, ea_params *ps, const char *prefix, ea_error *err) {
    (void)a; (void)ps; (void)prefix; (void)err;
    return EA_OK;
}
static ea_tensor *ea__none_forward(ea_ctx *ctx, const ea_attn *a, ea_tensor *x) {
    (void)ctx; (void)a;
    return x;
}
static double ea__none_flops(const ea_attn *a, int n) {
    (void)a; (void)n;
    return 0.0;
}

/* --- 8.4 mha and single: multi-head attention, merged QKV projection --------
   [Q K V] = x W_qkvᵀ + b_qkv   (W_qkv [3·dim, dim], columns [3][heads][dh])
   O = concat_h softmax(Q_h K_hᵀ/√dh) V_h,   y = O W_oᵀ + b_o.
   Slots: w[0..1] qkv weight/bias, w[2..3] proj weight/bias.
   Parameters 4·dim² + 4·dim; FLOPs per sequence 8·n·dim² + 4·n²·dim.
   `single` is the same with one head of width dim. */
static ea_status ea__mha_build(ea_attn *a, ea_params *ps, const char *prefix, ea_error *err) {
    ea_status st;
    int D;
    if (strcmp(a->variant->name, "single") == 0) a->cfg.n_heads = 1;
    if ((st = ea__check_heads(a, err)) != EA_OK) return st;
    D = a->cfg.dim;
    a->head_dim = D / a->cfg.n_heads;
    a->kv_heads = a->cfg.n_heads;
    ea__linear_params(ps, prefix, "qkv", 3 * D, D, &a->w[0], &a->w[1]);
    ea__linear_params(ps, prefix, "proj", D, D, &a->w[2], &a->w[3]);
    return EA_OK;
}

static ea_tensor *ea__mha_forward(ea_ctx *ctx, const ea_attn *a, ea_tensor *x) {
    int D = a->cfg.dim, H = a->cfg.n_heads;
    ea_tensor *qkv = ea_linear(ctx, x, a->w[0], a->w[1]);
    ea_tensor *o = ea_sdpa(ctx, qkv, 0, qkv, D, qkv, 2 * D, H, H, a->head_dim, a->cfg.causal);
    return ea_linear(ctx, o, a->w[2], a->w[3]);
}

/* --- 8.5 gqa, mqa, mha-sep: separate Q, K, V projections -------------------
   Q = x W_qᵀ [n, H·dh],  K = x W_kᵀ, V = x W_vᵀ [n, Hkv·dh];
   query head h attends with K/V head h / (H/Hkv);  y = O W_oᵀ + b_o.
   gqa takes n_kv_heads from the config (Ainslie et al. 2023, "GQA"),
   mqa fixes it to 1 (Shazeer 2019, "Fast Transformer Decoding"), mha-sep
   to n_heads (Vaswani et al. 2017): one implementation, three end points.
   Slots: w[0..1] q_proj, w[2..3] proj, w[4..5] k_proj, w[6..7] v_proj.
   Parameters 2·dim² + 2·dim·Hkv·dh + 2·dim + 2·Hkv·dh; the K/V cache per
   token is 2·Hkv·dh floats instead of mha's 2·dim. */
static ea_status ea__gqa_build(ea_attn *a, ea_params *ps, const char *prefix, ea_error *err) {
    ea_status st;
    int D, H, kv;
    const char *name = a->variant->name;
    if ((st = ea__check_heads(a, err)) != EA_OK) return st;
    D = a->cfg.dim;
    H = a->cfg.n_heads;
    kv = strcmp(name, "mqa") == 0 ? 1 : strcmp(name, "mha-sep") == 0 ? H : a->cfg.n_kv_heads;
    if (kv <= 0 || kv > H || H % kv)
        return ea_error_set(err, EA_ERR_CONFIG,
                            "attention '%s': n_kv_heads = %d must be between 1 and n_heads = %d and "
                            "divide it",
                            name, kv, H);
    a->head_dim = D / H;
    a->kv_heads = kv;
    ea__linear_params(ps, prefix, "q_proj", D, D, &a->w[0], &a->w[1]);
    ea__linear_params(ps, prefix, "k_proj", kv * a->head_dim, D, &a->w[4], &a->w[5]);
    ea__linear_params(ps, prefix, "v_proj", kv * a->head_dim, D, &a->w[6], &a->w[7]);
    ea__linear_params(ps, prefix, "proj", D, D, &a->w[2], &a->w[3]);
    return EA_OK;
}

static ea_tensor *ea__gqa_forward(ea_ctx *ctx, const ea_attn *a, ea_tensor *x) {
    ea_tensor *q = ea_linear(ctx, x, a->w[0], a->w[1]);
    ea_tensor *k = ea_linear(ctx, x, a->w[4], a->w[5]);
    ea_tensor *v = ea_linear(ctx, x, a->w[6], a->w[7]);
    ea_tensor *o = ea_sdpa(ctx, q, 0, k, 0, v, 0, a->cfg.n_heads, a->kv_heads, a->head_dim, a->cfg.causal);
    return ea_linear(ctx, o, a->w[2], a->w[3]);
}

/* FLOPs of both projection families: Q and output projections, K and V
   projections of kv_heads·dh columns, and the two n x n products. */
static double ea__sdpa_family_flops(const ea_attn *a, int n) {
    double D = a->cfg.dim, kvw = (double)a->kv_heads * a->head_dim;
    return 2.0 * n * D * (2.0 * D + 2.0 * kvw) + 4.0 * (double)n * n * D;
}

/* --- 8.6 The variant table ----------------------------------------------
   One row per variant; models, examples, tests and benchmarks iterate over
   it, and `--attn NAME` picks a row. */
static const ea_attn_variant ea__variants[] = {
    {"none", "identity control: no attention, no parameters", ea__none_build, ea__none_forward,
     ea__none_flops},
    {"single", "single-head self-attention, merged QKV", ea__mha_build, ea__mha_forward,
     ea__sdpa_family_flops},
    {"mha", "multi-head attention, one merged QKV projection", ea__mha_build, ea__mha_forward,
     ea__sdpa_family_flops},
    {"mha-sep", "multi-head attention, separate Q, K, V projections", ea__gqa_build,
     ea__gqa_forward, ea__sdpa_family_flops},
    {"mqa", "multi-query attention: one shared K/V head", ea__gqa_build, ea__gqa_forward,
     ea__sdpa_family_flops},
    {"gqa", "grouped-query attention: n_kv_heads K/V heads", ea__gqa_build, ea__gqa_forward,
     ea__sdpa_family_flops},
};

EA_API int ea_attn_variant_count(void) { return (int)(sizeof ea__variants / sizeof ea__variants[0]); }

EA_API const ea_attn_variant *ea_attn_variant_at(int i) {
    return i >= 0 && i < ea_attn_variant_count() ? &ea__variants[i] : NULL;
}

EA_API const ea_attn_variant *ea_attn_variant_find(const char *name) {
    int i;
    for (i = 0; name && i < ea_attn_variant_count(); i++)
        if (strcmp(ea__variants[i].name, name) == 0) return &ea__variants[i];
    return NULL;
}

EA_API const char *ea_attn_variant_names(char *buf, size_t n) {
    size_t len = 0;
    int i;
    if (!buf || !n) return "";
    buf[0] = 0;
    for (i = 0; i < ea_attn_variant_count() && len < n; i++)
        len += (size_t)snprintf(buf + len, n - len, "%s%s", i ? ", " : "", ea__variants[i].name);
    return buf;
}

EA_API ea_status ea_attn_build(ea_attn *a, const char *name, const ea_attn_config *cfg,
                               ea_params *ps, const char *prefix, ea_error *err) {
    char names[256];
    if (!a || !cfg || !ps || !prefix) return ea_error_set(err, EA_ERR_ARG, "attn_build: NULL argument");
    memset(a, 0, sizeof *a);
    a->variant = ea_attn_variant_find(name);
    if (!a->variant)
        return ea_error_set(err, EA_ERR_NAME, "unknown attention variant '%s'; expected one of: %s",
                            name ? name : "(null)", ea_attn_variant_names(names, sizeof names));
    a->cfg = *cfg;
    return a->variant->build(a, ps, prefix, err);
}

EA_API ea_tensor *ea_attn_forward(ea_ctx *ctx, const ea_attn *a, ea_tensor *x) {
    char s1[48];
    if (!ea__ok(ctx, x, x)) return NULL;
    if (x->ndim != 3 || x->shape[2] != a->cfg.dim)
        return ea__fail(ctx, EA_ERR_SHAPE, "attention '%s': expected x [B, n, %d], got %s",
                        a->variant->name, a->cfg.dim, ea__shape_str(x, s1, sizeof s1));
    return a->variant->forward(ctx, a, x);
}

/* ==========================================================================
   == 9. BLOCKS AND MODELS
   ==========================================================================
   Pre-norm transformer block (as in ViT, Dosovitskiy et al. 2021):
       x = x + Attn(LN1(x));   x = x + W2 · GELU(W1 · LN2(x) + b1) + b2
   ViT: patch embedding (conv, kernel = stride = patch) -> + learned position
   embedding -> blocks -> LN -> mean over tokens -> head (Linear, or
   Linear-GELU-Linear).  Seed 000's tracker is the configuration below;
   parameter names follow the PyTorch state_dict of the same module layout
   (blocks.i.attn.qkv.weight, blocks.i.mlp.0.weight, head.2.bias, ...). */
EA_API void ea_tracker_config_default(ea_vit_config *c, const char *attn) {
    memset(c, 0, sizeof *c);
    c->img_size = 32;
    c->in_chans = 2;
    c->patch = 4;
    c->dim = 64;
    c->depth = 4;
    c->n_heads = 4;
    c->n_kv_heads = 2;
    c->mlp_hidden = 256;
    c->head_hidden = 32;
    c->out_dim = 2;
    c->pos_std = 0.02f;
    snprintf(c->attn, sizeof c->attn, "%s", attn ? attn : "mha");
}

static ea_status ea__vit_check(const ea_vit_config *c, ea_error *err) {
    if (c->img_size <= 0 || c->in_chans <= 0 || c->patch <= 0 || c->dim <= 0 || c->mlp_hidden <= 0 ||
        c->out_dim <= 0 || c->head_hidden < 0)
        return ea_error_set(err, EA_ERR_CONFIG,
                            "vit: img_size %d, in_chans %d, patch %d, dim %d, mlp_hidden %d, out_dim "
                            "%d must be positive (head_hidden %d >= 0)",
                            c->img_size, c->in_chans, c->patch, c->dim, c->mlp_hidden, c->out_dim,
                            c->head_hidden);
    if (c->img_size > 8192 || c->in_chans > 4096 || c->dim > 65536 || c->mlp_hidden > (1 << 20) ||
        c->head_hidden > (1 << 20) || c->out_dim > (1 << 20))
        return ea_error_set(err, EA_ERR_CONFIG,
                            "vit: sizes beyond the supported range (img_size <= 8192, in_chans <= 4096, dim <= "
                            "65536, hidden and output sizes <= 2^20)");
    if (c->img_size % c->patch)
        return ea_error_set(err, EA_ERR_CONFIG, "vit: patch %d must divide img_size %d", c->patch,
                            c->img_size);
    if (c->depth < 1 || c->depth > EA_MAX_DEPTH)
        return ea_error_set(err, EA_ERR_CONFIG, "vit: depth %d must be between 1 and %d", c->depth,
                            EA_MAX_DEPTH);
    return EA_OK;
}

EA_API ea_status ea_vit_init(ea_vit *m, const ea_vit_config *cfg, uint64_t seed, ea_error *err) {
    char name[EA_NAME_LEN];
    int shape[4], i, T, D;
    ea_status st;
    if (!m || !cfg) return ea_error_set(err, EA_ERR_ARG, "vit_init: NULL argument");
    memset(m, 0, sizeof *m);
    if ((st = ea__vit_check(cfg, err)) != EA_OK) return st;
    m->cfg = *cfg;
    D = cfg->dim;
    T = (cfg->img_size / cfg->patch) * (cfg->img_size / cfg->patch);
    shape[0] = 1; shape[1] = T; shape[2] = D;
    m->pos = ea_param(&m->params, "pos_embed", 3, shape, EA_INIT_NORMAL, cfg->pos_std);
    shape[0] = D; shape[1] = cfg->in_chans; shape[2] = cfg->patch; shape[3] = cfg->patch;
    m->patch_w = ea_param(&m->params, "patch_embed.proj.weight", 4, shape, EA_INIT_FANIN,
                          (float)(cfg->in_chans * cfg->patch * cfg->patch));
    m->patch_b = ea_param(&m->params, "patch_embed.proj.bias", 1, shape, EA_INIT_FANIN,
                          (float)(cfg->in_chans * cfg->patch * cfg->patch));
    for (i = 0; i < cfg->depth; i++) {
        ea_block *bl = &m->blocks[i];
        ea_attn_config ac;
        shape[0] = D;
        snprintf(name, sizeof name, "blocks.%d.norm1.weight", i);
        bl->ln1_w = ea_param(&m->params, name, 1, shape, EA_INIT_ONES, 0.0f);
        snprintf(name, sizeof name, "blocks.%d.norm1.bias", i);
        bl->ln1_b = ea_param(&m->params, name, 1, shape, EA_INIT_ZEROS, 0.0f);
        ac.dim = D;
        ac.n_heads = cfg->n_heads;
        ac.n_kv_heads = cfg->n_kv_heads;
        ac.causal = cfg->causal;
        snprintf(name, sizeof name, "blocks.%d.attn", i);
        if ((st = ea_attn_build(&bl->attn, cfg->attn, &ac, &m->params, name, err)) != EA_OK) {
            ea_vit_free(m);
            return st;
        }
        snprintf(name, sizeof name, "blocks.%d.norm2.weight", i);
        bl->ln2_w = ea_param(&m->params, name, 1, shape, EA_INIT_ONES, 0.0f);
        snprintf(name, sizeof name, "blocks.%d.norm2.bias", i);
        bl->ln2_b = ea_param(&m->params, name, 1, shape, EA_INIT_ZEROS, 0.0f);
        snprintf(name, sizeof name, "blocks.%d.mlp", i);
        ea__linear_params(&m->params, name, "0", cfg->mlp_hidden, D, &bl->fc1_w, &bl->fc1_b);
        ea__linear_params(&m->params, name, "3", D, cfg->mlp_hidden, &bl->fc2_w, &bl->fc2_b);
    }
    shape[0] = D;
    m->norm_w = ea_param(&m->params, "norm.weight", 1, shape, EA_INIT_ONES, 0.0f);
    m->norm_b = ea_param(&m->params, "norm.bias", 1, shape, EA_INIT_ZEROS, 0.0f);
    if (cfg->head_hidden) {
        ea__linear_params(&m->params, "head", "0", cfg->head_hidden, D, &m->head1_w, &m->head1_b);
        ea__linear_params(&m->params, "head", "2", cfg->out_dim, cfg->head_hidden, &m->head2_w,
                          &m->head2_b);
    } else {
        ea__linear_params(&m->params, "model", "head", cfg->out_dim, D, &m->head1_w, &m->head1_b);
    }
    if ((st = ea_params_alloc(&m->params, err)) != EA_OK) {
        ea_vit_free(m);
        return st;
    }
    ea_params_init(&m->params, seed);
    return EA_OK;
}

EA_API void ea_vit_free(ea_vit *m) {
    if (m) ea_params_free(&m->params);
}

EA_API ea_tensor *ea_vit_forward(ea_ctx *ctx, const ea_vit *m, ea_tensor *x) {
    const ea_vit_config *c = &m->cfg;
    ea_tensor *h;
    int i;
    char s1[48];
    if (!ea__ok(ctx, x, x)) return NULL;
    if (x->ndim != 4 || x->shape[1] != c->in_chans || x->shape[2] != c->img_size ||
        x->shape[3] != c->img_size)
        return ea__fail(ctx, EA_ERR_SHAPE, "vit: expected input [B, %d, %d, %d], got %s", c->in_chans,
                        c->img_size, c->img_size, ea__shape_str(x, s1, sizeof s1));
    h = ea_patch_embed(ctx, x, m->patch_w, m->patch_b);
    h = ea_add(ctx, h, m->pos);
    for (i = 0; i < c->depth; i++) {
        const ea_block *bl = &m->blocks[i];
        ea_tensor *a = ea_layernorm(ctx, h, bl->ln1_w, bl->ln1_b, 1e-5f);
        a = ea_attn_forward(ctx, &bl->attn, a);
        h = ea_add(ctx, h, a);
        a = ea_layernorm(ctx, h, bl->ln2_w, bl->ln2_b, 1e-5f);
        a = ea_gelu(ctx, ea_linear(ctx, a, bl->fc1_w, bl->fc1_b));
        h = ea_add(ctx, h, ea_linear(ctx, a, bl->fc2_w, bl->fc2_b));
    }
    h = ea_mean_tokens(ctx, ea_layernorm(ctx, h, m->norm_w, m->norm_b, 1e-5f));
    h = ea_linear(ctx, h, m->head1_w, m->head1_b);
    if (c->head_hidden) h = ea_linear(ctx, ea_gelu(ctx, h), m->head2_w, m->head2_b);
    return h;
}

/* Matrix-multiply FLOPs of one forward pass on one image (layer norms,
   GELU and softmax add well under 1%). */
EA_API double ea_vit_flops(const ea_vit *m) {
    const ea_vit_config *c = &m->cfg;
    double T = (double)(c->img_size / c->patch) * (c->img_size / c->patch), D = c->dim, f;
    int i;
    f = 2.0 * T * D * c->in_chans * c->patch * c->patch;
    for (i = 0; i < c->depth; i++)
        f += m->blocks[i].attn.variant->flops(&m->blocks[i].attn, (int)T) + 4.0 * T * D * c->mlp_hidden;
    if (c->head_hidden) f += 2.0 * D * c->head_hidden + 2.0 * c->head_hidden * c->out_dim;
    else f += 2.0 * D * c->out_dim;
    return f;
}

/* ==========================================================================
   == 10. TRAINING: AdamW, learning-rate schedule, gradient clipping,
   ==     weight import/export (safetensors), checkpoints
   ==========================================================================
   AdamW (Loshchilov & Hutter 2019), PyTorch's semantics, step t from 1:
       p ← p - lr·wd·p                        (decoupled weight decay)
       m ← β1·m + (1-β1)·g,   v ← β2·v + (1-β2)·g²
       p ← p - lr · (m / (1-β1ᵗ)) / (√(v / (1-β2ᵗ)) + ε)
   Like torch.optim.AdamW(model.parameters()), decay applies to every
   parameter. */
EA_API void ea_adamw_init(ea_adamw *o, float lr, float weight_decay) {
    o->lr = lr;
    o->beta1 = 0.9f;
    o->beta2 = 0.999f;
    o->eps = 1e-8f;
    o->weight_decay = weight_decay;
    o->step = 0;
}

EA_API void ea_adamw_step(ea_adamw *o, ea_params *ps) {
    size_t i;
    float bc1, bc2, decay;
    o->step++;
    bc1 = 1.0f - powf(o->beta1, (float)o->step);
    bc2 = 1.0f - powf(o->beta2, (float)o->step);
    decay = 1.0f - o->lr * o->weight_decay;
    for (i = 0; i < ps->n; i++) {
        float g = ps->grad[i];
        float m = ps->m[i] = o->beta1 * ps->m[i] + (1.0f - o->beta1) * g;
        float v = ps->v[i] = o->beta2 * ps->v[i] + (1.0f - o->beta2) * g * g;
        ps->data[i] = ps->data[i] * decay - o->lr * (m / bc1) / (sqrtf(v / bc2) + o->eps);
    }
}

EA_API float ea_lr_cosine(long step, long total, long warmup, float base, float min_lr) {
    double t;
    if (warmup > 0 && step < warmup) return base * (float)(step + 1) / (float)warmup;
    if (total <= warmup) return base;
    t = (double)(step - warmup) / (double)(total - warmup);
    if (t > 1.0) t = 1.0;
    return min_lr + (base - min_lr) * (float)(0.5 * (1.0 + cos(3.141592653589793 * t)));
}

EA_API float ea_grad_norm(const ea_params *ps) {
    double s = 0.0;
    size_t i;
    for (i = 0; i < ps->n; i++) s += (double)ps->grad[i] * ps->grad[i];
    return (float)sqrt(s);
}

EA_API float ea_grad_clip(ea_params *ps, float max_norm) {
    float norm = ea_grad_norm(ps);
    size_t i;
    if (max_norm > 0.0f && norm > max_norm) {
        float s = max_norm / (norm + 1e-6f);
        for (i = 0; i < ps->n; i++) ps->grad[i] *= s;
    }
    return norm;
}


EA_API const ea_tensor *ea_params_nonfinite(const ea_params *ps, int grads) {
    int i;
    size_t j;
    for (i = 0; i < ps->count; i++) {
        const float *p = grads ? ps->tensors[i]->grad : ps->tensors[i]->data;
        for (j = 0; j < ps->tensors[i]->size; j++)
            if (!isfinite(p[j])) return ps->tensors[i];
    }
    return NULL;
}

/* --- weight import/export: safetensors ------------------------------------ */
#define EA_ST_MAX_HEADER ((size_t)100 << 20)

/* A bounded cursor over the JSON header: every read checks the end. */
typedef struct ea__json {
    const char *p, *end;
    ea_error *err;
} ea__json;

static void ea__json_ws(ea__json *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
}

static int ea__json_eat(ea__json *j, char c) {
    ea__json_ws(j);
    if (j->p < j->end && *j->p == c) {
        j->p++;
        return 1;
    }
    return 0;
}

/* A string into out (truncation is an error: names are bounded). */
static int ea__json_string(ea__json *j, char *out, size_t n) {
    size_t len = 0;
    if (!ea__json_eat(j, '"')) return 0;
    while (j->p < j->end && *j->p != '"') {
        char c = *j->p++;
        if (c == '\\') {
            if (j->p >= j->end) return 0;
            c = *j->p++;
            switch (c) {
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case 'r': c = '\r'; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'u':
                if (j->end - j->p < 4) return 0;
                j->p += 4;
                c = '?';
                break;
            case '"': case '\\': case '/': break;
            default: return 0;
            }
        }
        if (len + 1 >= n) return 0;
        out[len++] = c;
    }
    if (j->p >= j->end) return 0;
    j->p++;
    out[len] = 0;
    return 1;
}

static int ea__json_uint(ea__json *j, uint64_t *out) {
    uint64_t v = 0;
    int digits = 0;
    ea__json_ws(j);
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
        if (v > (UINT64_MAX - 9) / 10) return 0;
        v = v * 10 + (uint64_t)(*j->p++ - '0');
        digits++;
    }
    *out = v;
    return digits > 0;
}

/* Skip any value (for __metadata__ and unknown keys), depth-bounded. */
static int ea__json_skip(ea__json *j, int depth) {
    char tmp[1024];
    ea__json_ws(j);
    if (depth > 16 || j->p >= j->end) return 0;
    if (*j->p == '"') return ea__json_string(j, tmp, sizeof tmp);
    if (*j->p == '{' || *j->p == '[') {
        char close = *j->p == '{' ? '}' : ']';
        int obj = *j->p == '{';
        j->p++;
        if (ea__json_eat(j, close)) return 1;
        do {
            if (obj && (!ea__json_string(j, tmp, sizeof tmp) || !ea__json_eat(j, ':'))) return 0;
            if (!ea__json_skip(j, depth + 1)) return 0;
        } while (ea__json_eat(j, ','));
        return ea__json_eat(j, close);
    }
    while (j->p < j->end && *j->p != ',' && *j->p != '}' && *j->p != ']') j->p++;
    return 1;
}

static int ea__st_entry(ea__json *j, ea_st_entry *e) {
    char key[32], dtype[16] = "";
    int have_shape = 0, have_off = 0;
    if (!ea__json_eat(j, '{')) return 0;
    if (ea__json_eat(j, '}')) return 0;
    do {
        if (!ea__json_string(j, key, sizeof key) || !ea__json_eat(j, ':')) return 0;
        if (strcmp(key, "dtype") == 0) {
            if (!ea__json_string(j, dtype, sizeof dtype)) return 0;
        } else if (strcmp(key, "shape") == 0) {
            if (!ea__json_eat(j, '[')) return 0;
            e->ndim = 0;
            if (!ea__json_eat(j, ']')) {
                do {
                    uint64_t v;
                    if (e->ndim >= EA_MAX_DIMS || !ea__json_uint(j, &v) || v > (uint64_t)1 << 40) return 0;
                    e->shape[e->ndim++] = (int64_t)v;
                } while (ea__json_eat(j, ','));
                if (!ea__json_eat(j, ']')) return 0;
            }
            have_shape = 1;
        } else if (strcmp(key, "data_offsets") == 0) {
            uint64_t b, en;
            if (!ea__json_eat(j, '[') || !ea__json_uint(j, &b) || !ea__json_eat(j, ',') ||
                !ea__json_uint(j, &en) || !ea__json_eat(j, ']'))
                return 0;
            if (b > en || en > (uint64_t)SIZE_MAX) return 0;
            e->begin = (size_t)b;
            e->end = (size_t)en;
            have_off = 1;
        } else if (!ea__json_skip(j, 1)) {
            return 0;
        }
    } while (ea__json_eat(j, ','));
    e->dtype = strcmp(dtype, "F32") == 0 ? EA_DT_F32 : strcmp(dtype, "U8") == 0 ? EA_DT_U8 : EA_DT_OTHER;
    return ea__json_eat(j, '}') && have_shape && have_off && dtype[0];
}

EA_API ea_status ea_st_parse(ea_safetensors *st, const unsigned char *buf, size_t size, ea_error *err) {
    uint64_t hlen = 0;
    ea__json j;
    int i, cap = 0;
    char name[EA_NAME_LEN];
    memset(st, 0, sizeof *st);
    if (size < 10) return ea_error_set(err, EA_ERR_FORMAT, "safetensors: %zu bytes is too short for a header", size);
    for (i = 7; i >= 0; i--) hlen = (hlen << 8) | buf[i];
    if (hlen < 2 || hlen > EA_ST_MAX_HEADER || hlen > size - 8)
        return ea_error_set(err, EA_ERR_FORMAT,
                            "safetensors: header length %llu does not fit the file (%zu bytes); not a "
                            "safetensors file?",
                            (unsigned long long)hlen, size);
    st->data_off = 8 + (size_t)hlen;
    j.p = (const char *)buf + 8;
    j.end = j.p + hlen;
    j.err = err;
    if (!ea__json_eat(&j, '{')) return ea_error_set(err, EA_ERR_FORMAT, "safetensors: the header is not a JSON object");
    if (!ea__json_eat(&j, '}')) {
        do {
            ea_st_entry e;
            if (!ea__json_string(&j, name, sizeof name) || !ea__json_eat(&j, ':')) {
                ea_st_close(st);
                return ea_error_set(err, EA_ERR_FORMAT, "safetensors: bad or over-long tensor name near byte %ld",
                                    (long)(j.p - (const char *)buf));
            }
            if (strcmp(name, "__metadata__") == 0) {
                if (!ea__json_skip(&j, 1)) break;
                continue;
            }
            memset(&e, 0, sizeof e);
            if (!ea__st_entry(&j, &e)) {
                ea_st_close(st);
                return ea_error_set(err, EA_ERR_FORMAT,
                                    "safetensors: entry '%s' needs dtype, shape (<= %d dims) and data_offsets",
                                    name, EA_MAX_DIMS);
            }
            snprintf(e.name, sizeof e.name, "%s", name);
            {
                /* the byte range must match the shape and lie inside the file */
                uint64_t n = 1, esz = e.dtype == EA_DT_U8 ? 1 : 4;
                int d;
                for (d = 0; d < e.ndim; d++) n *= (uint64_t)e.shape[d];
                if (e.dtype != EA_DT_OTHER && (e.end - e.begin) != n * esz) {
                    ea_st_close(st);
                    return ea_error_set(err, EA_ERR_FORMAT, "safetensors: '%s' has %zu bytes for %llu elements",
                                        name, e.end - e.begin, (unsigned long long)n);
                }
                if (e.end > size - st->data_off) {
                    ea_st_close(st);
                    return ea_error_set(err, EA_ERR_FORMAT,
                                        "safetensors: '%s' ends at byte %zu past the end of the data (%zu bytes); "
                                        "truncated file?",
                                        name, e.end, size - st->data_off);
                }
            }
            if (st->count == cap) {
                int ncap = cap ? 2 * cap : 64;
                ea_st_entry *ne = (ea_st_entry *)EFFATTN_MALLOC((size_t)ncap * sizeof(ea_st_entry));
                if (!ne) {
                    ea_st_close(st);
                    return ea_error_set(err, EA_ERR_NOMEM, "safetensors: out of memory");
                }
                if (st->count) memcpy(ne, st->entries, (size_t)st->count * sizeof(ea_st_entry));
                EFFATTN_FREE(st->entries);
                st->entries = ne;
                cap = ncap;
            }
            st->entries[st->count++] = e;
        } while (ea__json_eat(&j, ','));
        if (!ea__json_eat(&j, '}')) {
            ea_st_close(st);
            return ea_error_set(err, EA_ERR_FORMAT, "safetensors: malformed JSON header");
        }
    }
    st->buf = (unsigned char *)(uintptr_t)buf;
    st->size = size;
    return EA_OK;
}

/* Put "'path': " in front of the message a parser left in err. */
static void ea__error_in_file(ea_error *err, ea_status s, const char *path) {
    char tmp[sizeof err->msg];
    if (!err) return;
    snprintf(tmp, sizeof tmp, "%s", err->msg);
    ea_error_set(err, s, "'%s': %s", path, tmp);
}

/* Read a whole file into memory (the caller frees *out). */
static ea_status ea__read_file(const char *path, unsigned char **out, size_t *size, ea_error *err) {
    FILE *f;
    long len;
    *out = NULL;
    if (!path) return ea_error_set(err, EA_ERR_ARG, "no path given");
    f = fopen(path, "rb");
    if (!f) return ea_error_set(err, EA_ERR_IO, "cannot open '%s'", path);
    if (fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return ea_error_set(err, EA_ERR_IO, "cannot read the size of '%s'", path);
    }
    *out = (unsigned char *)EFFATTN_MALLOC((size_t)len + 1);
    if (!*out) {
        fclose(f);
        return ea_error_set(err, EA_ERR_NOMEM, "'%s': cannot hold %ld bytes", path, len);
    }
    if (fread(*out, 1, (size_t)len, f) != (size_t)len) {
        fclose(f);
        EFFATTN_FREE(*out);
        *out = NULL;
        return ea_error_set(err, EA_ERR_IO, "'%s': short read", path);
    }
    fclose(f);
    *size = (size_t)len;
    return EA_OK;
}

EA_API ea_status ea_st_open(ea_safetensors *st, const char *path, ea_error *err) {
    unsigned char *buf;
    size_t len = 0;
    ea_status s;
    memset(st, 0, sizeof *st);
    if ((s = ea__read_file(path, &buf, &len, err)) != EA_OK) return s;
    s = ea_st_parse(st, buf, len, err);
    st->owns_buf = s == EA_OK;
    if (s != EA_OK) {
        EFFATTN_FREE(buf);
        ea__error_in_file(err, s, path);
    }
    return s;
}

EA_API const ea_st_entry *ea_st_find(const ea_safetensors *st, const char *name) {
    int i;
    for (i = 0; i < st->count; i++)
        if (strcmp(st->entries[i].name, name) == 0) return &st->entries[i];
    return NULL;
}

EA_API ea_status ea_st_read(const ea_safetensors *st, const char *name, float *dst, size_t count, ea_error *err) {
    const ea_st_entry *e = ea_st_find(st, name);
    const unsigned char *src;
    size_t i, n;
    if (!e) return ea_error_set(err, EA_ERR_NAME, "safetensors: no tensor named '%s'", name);
    if (e->dtype == EA_DT_OTHER)
        return ea_error_set(err, EA_ERR_FORMAT, "safetensors: '%s' has a dtype other than F32 or U8", name);
    n = (e->end - e->begin) / (e->dtype == EA_DT_U8 ? 1 : 4);
    if (n != count)
        return ea_error_set(err, EA_ERR_SHAPE, "safetensors: '%s' has %zu elements, expected %zu", name, n, count);
    src = st->buf + st->data_off + e->begin;
    for (i = 0; i < n; i++) {
        if (e->dtype == EA_DT_U8) {
            dst[i] = (float)src[i];
        } else {
            /* little-endian bytes to a float, whatever the host's order */
            uint32_t u = (uint32_t)src[4 * i] | (uint32_t)src[4 * i + 1] << 8 | (uint32_t)src[4 * i + 2] << 16 |
                         (uint32_t)src[4 * i + 3] << 24;
            memcpy(&dst[i], &u, 4);
        }
    }
    return EA_OK;
}

EA_API void ea_st_close(ea_safetensors *st) {
    if (st->owns_buf) EFFATTN_FREE(st->buf);
    EFFATTN_FREE(st->entries);
    memset(st, 0, sizeof *st);
}

EA_API ea_status ea_params_load(ea_params *ps, const char *path, ea_error *err) {
    ea_safetensors st;
    ea_status s;
    int i, d;
    if ((s = ea_st_open(&st, path, err)) != EA_OK) return s;
    for (i = 0; i < ps->count && s == EA_OK; i++) {
        const ea_tensor *t = ps->tensors[i];
        const ea_st_entry *e = ea_st_find(&st, t->name);
        int same = e && e->ndim == t->ndim;
        for (d = 0; same && d < t->ndim; d++) same = e->shape[d] == t->shape[d];
        if (!e) s = ea_error_set(err, EA_ERR_NAME, "'%s': the model's parameter '%s' is missing", path, t->name);
        else if (!same || e->dtype != EA_DT_F32)
            s = ea_error_set(err, EA_ERR_SHAPE, "'%s': '%s' has another shape or dtype than the model's (F32, %d dims)",
                             path, t->name, t->ndim);
        else s = ea_st_read(&st, t->name, t->data, t->size, err);
    }
    if (s == EA_OK && st.count != ps->count)
        for (i = 0; i < st.count; i++)
            if (!ea_params_find(ps, st.entries[i].name)) {
                s = ea_error_set(err, EA_ERR_NAME,
                                 "'%s': tensor '%s' is not a parameter of this model (another attention variant?)",
                                 path, st.entries[i].name);
                break;
            }
    ea_st_close(&st);
    return s;
}

EA_API ea_status ea_params_save(const ea_params *ps, const char *path, ea_error *err) {
    char tmp_path[1024];
    FILE *f;
    size_t hlen = 0, off = 0, cap = 256;
    char *h;
    int i, d, ok;
    unsigned char len8[8];
    if (!path || strlen(path) + 5 > sizeof tmp_path) return ea_error_set(err, EA_ERR_ARG, "save: bad path");
    for (i = 0; i < ps->count; i++) cap += strlen(ps->info[i].name) + 128;
    h = (char *)EFFATTN_MALLOC(cap);
    if (!h) return ea_error_set(err, EA_ERR_NOMEM, "save: out of memory");
    hlen += (size_t)snprintf(h + hlen, cap - hlen, "{\"__metadata__\":{\"format\":\"pt\",\"writer\":\"effattn %s\"}", EA_VERSION);
    for (i = 0; i < ps->count; i++) {
        const ea_tensor *t = ps->tensors[i];
        hlen += (size_t)snprintf(h + hlen, cap - hlen, ",\"%s\":{\"dtype\":\"F32\",\"shape\":[", ps->info[i].name);
        for (d = 0; d < t->ndim; d++) hlen += (size_t)snprintf(h + hlen, cap - hlen, "%s%d", d ? "," : "", t->shape[d]);
        hlen += (size_t)snprintf(h + hlen, cap - hlen, "],\"data_offsets\":[%zu,%zu]}", off, off + 4 * t->size);
        off += 4 * t->size;
    }
    hlen += (size_t)snprintf(h + hlen, cap - hlen, "}");
    while (hlen % 8) h[hlen++] = ' '; /* pad so the data is 8-byte aligned */
    for (i = 0; i < 8; i++) len8[i] = (unsigned char)(((uint64_t)hlen >> (8 * i)) & 0xff);
    snprintf(tmp_path, sizeof tmp_path, "%s.tmp", path);
    f = fopen(tmp_path, "wb");
    if (!f) {
        EFFATTN_FREE(h);
        return ea_error_set(err, EA_ERR_IO, "save: cannot create '%s'", tmp_path);
    }
    ok = fwrite(len8, 1, 8, f) == 8 && fwrite(h, 1, hlen, f) == hlen;
    for (i = 0; ok && i < ps->count; i++) {
        const ea_tensor *t = ps->tensors[i];
        size_t k;
        for (k = 0; ok && k < t->size; k++) {
            uint32_t u;
            unsigned char b[4];
            memcpy(&u, &t->data[k], 4);
            b[0] = (unsigned char)u; b[1] = (unsigned char)(u >> 8); b[2] = (unsigned char)(u >> 16); b[3] = (unsigned char)(u >> 24);
            ok = fwrite(b, 1, 4, f) == 4;
        }
    }
    EFFATTN_FREE(h);
    ok = fflush(f) == 0 && ok;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp_path, path) != 0) {
        remove(tmp_path);
        return ea_error_set(err, EA_ERR_IO, "save: could not write '%s'", path);
    }
    return EA_OK;
}

/* --- checkpoints ------------------------------------------------------------
   Format in the declarations (section 2).  The file is built in memory,
   checksummed, written to PATH.tmp, flushed to the disk and renamed. */
EA_API uint32_t ea_crc32(uint32_t crc, const void *data, size_t n) {
    const unsigned char *p = (const unsigned char *)data;
    size_t i;
    int k;
    crc = ~crc;
    for (i = 0; i < n; i++) {
        crc ^= p[i];
        for (k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

typedef struct ea__wbuf {
    unsigned char *p;
    size_t n, cap;
    int failed;
} ea__wbuf;

static void ea__put(ea__wbuf *b, const void *src, size_t n) {
    if (b->failed) return;
    if (b->n + n > b->cap) {
        size_t cap = 2 * (b->n + n) + 4096;
        unsigned char *np = (unsigned char *)EFFATTN_MALLOC(cap);
        if (!np) {
            b->failed = 1;
            return;
        }
        if (b->n) memcpy(np, b->p, b->n);
        EFFATTN_FREE(b->p);
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void ea__put_le(ea__wbuf *b, uint64_t v, int bytes) {
    unsigned char t[8];
    int i;
    for (i = 0; i < bytes; i++) t[i] = (unsigned char)(v >> (8 * i));
    ea__put(b, t, (size_t)bytes);
}

static uint64_t ea__get_le(const unsigned char *p, int bytes) {
    uint64_t v = 0;
    int i;
    for (i = bytes - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static size_t ea__dtype_size(ea_dtype d) { return d == EA_DT_U64 ? 8 : d == EA_DT_U8 ? 1 : 4; }

#define EA_CK_MAGIC "EACKPT\0\0"
#define EA_CK_VERSION 1u
#define EA_CK_MAX_ENTRIES 100000u
#define EA_CK_CONFIG_BYTES (12 * 4 + 32)
#define EA_CK_ENTRY_FIXED 19 /* u16 name length, u8 dtype, u64 count, u64 offset */

/* One entry of the table; `src` is where its data comes from on save. */
typedef struct ea__ck_item {
    char name[EA_NAME_LEN + 8];
    ea_dtype dtype;
    uint64_t count;
    const void *src;
} ea__ck_item;

static void ea__put_config(ea__wbuf *b, const ea_vit_config *c) {
    int v[11], i;
    uint32_t u;
    char attn[32];
    v[0] = c->img_size; v[1] = c->in_chans; v[2] = c->patch; v[3] = c->dim; v[4] = c->depth;
    v[5] = c->n_heads; v[6] = c->n_kv_heads; v[7] = c->mlp_hidden; v[8] = c->head_hidden;
    v[9] = c->out_dim; v[10] = c->causal;
    for (i = 0; i < 11; i++) ea__put_le(b, (uint32_t)v[i], 4);
    memcpy(&u, &c->pos_std, 4);
    ea__put_le(b, u, 4);
    memset(attn, 0, sizeof attn);
    snprintf(attn, sizeof attn, "%s", c->attn);
    ea__put(b, attn, sizeof attn);
}

static void ea__get_config(const unsigned char *p, ea_vit_config *c) {
    int v[11], i;
    uint32_t u;
    for (i = 0; i < 11; i++) v[i] = (int)(int32_t)(uint32_t)ea__get_le(p + 4 * i, 4);
    memset(c, 0, sizeof *c);
    c->img_size = v[0]; c->in_chans = v[1]; c->patch = v[2]; c->dim = v[3]; c->depth = v[4];
    c->n_heads = v[5]; c->n_kv_heads = v[6]; c->mlp_hidden = v[7]; c->head_hidden = v[8];
    c->out_dim = v[9]; c->causal = v[10];
    u = (uint32_t)ea__get_le(p + 44, 4);
    memcpy(&c->pos_std, &u, 4);
    memcpy(c->attn, p + 48, 31);
    c->attn[31] = 0;
}

EA_API ea_status ea_checkpoint_save(const char *path, const ea_vit *m, const ea_adamw *opt,
                                    const ea_blob *extra, int n_extra, ea_error *err) {
    static const char *const kind[3] = {"param.", "adam_m.", "adam_v."};
    const ea_params *ps;
    int n_items, i, k = 0, ok;
    ea__ck_item *it;
    ea__wbuf b;
    uint64_t off = 0, step;
    float hyper[5];
    char tmp_path[1024];
    FILE *f;
    if (!path || !m || strlen(path) + 5 > sizeof tmp_path) return ea_error_set(err, EA_ERR_ARG, "checkpoint: bad path or model");
    if (n_extra < 0 || (n_extra && !extra)) return ea_error_set(err, EA_ERR_ARG, "checkpoint: bad extra arrays");
    ps = &m->params;
    n_items = 3 * ps->count + (opt ? 2 : 0) + n_extra;
    step = opt ? (uint64_t)opt->step : 0;
    it = (ea__ck_item *)EFFATTN_MALLOC((size_t)(n_items ? n_items : 1) * sizeof(ea__ck_item));
    if (!it) return ea_error_set(err, EA_ERR_NOMEM, "checkpoint: out of memory");
    for (i = 0; i < ps->count; i++) {
        const float *src[3];
        int j;
        src[0] = ps->tensors[i]->data;
        src[1] = ps->m + ps->info[i].offset;
        src[2] = ps->v + ps->info[i].offset;
        for (j = 0; j < 3; j++, k++) {
            snprintf(it[k].name, sizeof it[k].name, "%s%s", kind[j], ps->info[i].name);
            it[k].dtype = EA_DT_F32;
            it[k].count = ps->tensors[i]->size;
            it[k].src = src[j];
        }
    }
    if (opt) {
        hyper[0] = opt->lr; hyper[1] = opt->beta1; hyper[2] = opt->beta2; hyper[3] = opt->eps; hyper[4] = opt->weight_decay;
        snprintf(it[k].name, sizeof it[k].name, "adamw.step");
        it[k].dtype = EA_DT_U64; it[k].count = 1; it[k].src = &step; k++;
        snprintf(it[k].name, sizeof it[k].name, "adamw.hyper");
        it[k].dtype = EA_DT_F32; it[k].count = 5; it[k].src = hyper; k++;
    }
    for (i = 0; i < n_extra; i++, k++) {
        if (!extra[i].name || !extra[i].name[0] || strlen(extra[i].name) >= EA_NAME_LEN || !extra[i].data ||
            (extra[i].dtype != EA_DT_F32 && extra[i].dtype != EA_DT_I32 && extra[i].dtype != EA_DT_U64)) {
            EFFATTN_FREE(it);
            return ea_error_set(err, EA_ERR_ARG, "checkpoint: extra array %d needs a name, data and an F32/I32/U64 type", i);
        }
        snprintf(it[k].name, sizeof it[k].name, "%s", extra[i].name);
        it[k].dtype = extra[i].dtype;
        it[k].count = extra[i].count;
        it[k].src = extra[i].data;
    }
    memset(&b, 0, sizeof b);
    ea__put(&b, EA_CK_MAGIC, 8);
    ea__put_le(&b, EA_CK_VERSION, 4);
    ea__put_le(&b, 0, 4); /* table bytes, patched below */
    ea__put_config(&b, &m->cfg);
    ea__put_le(&b, (uint64_t)n_items, 4);
    for (i = 0; i < n_items; i++) {
        size_t len = strlen(it[i].name);
        ea__put_le(&b, len, 2);
        ea__put(&b, it[i].name, len);
        ea__put_le(&b, (uint64_t)it[i].dtype, 1);
        ea__put_le(&b, it[i].count, 8);
        ea__put_le(&b, off, 8);
        off += it[i].count * ea__dtype_size(it[i].dtype);
    }
    if (!b.failed) {
        uint64_t tb = b.n - 16;
        for (i = 0; i < 4; i++) b.p[12 + i] = (unsigned char)(tb >> (8 * i));
    }
    for (i = 0; i < n_items; i++) {
        /* little-endian element by element, whatever the host's order */
        size_t e, es = ea__dtype_size(it[i].dtype);
        const unsigned char *src = (const unsigned char *)it[i].src;
        for (e = 0; e < it[i].count && !b.failed; e++) {
            uint64_t v;
            if (es == 8) {
                memcpy(&v, src + 8 * e, 8);
            } else {
                uint32_t t;
                memcpy(&t, src + 4 * e, 4);
                v = t;
            }
            ea__put_le(&b, v, (int)es);
        }
    }
    EFFATTN_FREE(it);
    if (!b.failed) ea__put_le(&b, ea_crc32(0, b.p + 8, b.n - 8), 4);
    if (b.failed) {
        EFFATTN_FREE(b.p);
        return ea_error_set(err, EA_ERR_NOMEM, "checkpoint: out of memory");
    }
    snprintf(tmp_path, sizeof tmp_path, "%s.tmp", path);
    f = fopen(tmp_path, "wb");
    if (!f) {
        EFFATTN_FREE(b.p);
        return ea_error_set(err, EA_ERR_IO, "checkpoint: cannot create '%s'", tmp_path);
    }
    ok = fwrite(b.p, 1, b.n, f) == b.n;
    ok = fflush(f) == 0 && ok;
#ifdef EA_HAVE_FSYNC
    ok = fsync(fileno(f)) == 0 && ok; /* on the disk before the rename */
#endif
    ok = fclose(f) == 0 && ok;
    EFFATTN_FREE(b.p);
    if (!ok || rename(tmp_path, path) != 0) {
        remove(tmp_path);
        return ea_error_set(err, EA_ERR_IO, "checkpoint: could not write '%s' (the previous file, if any, is intact)", path);
    }
    return EA_OK;
}

/* The parsed table: entries are validated once, then looked up by name. */
typedef struct ea__ck_view {
    const unsigned char *table, *table_end, *payload;
    uint64_t payload_bytes;
    uint32_t n;
} ea__ck_view;

static const unsigned char *ea__ck_find(const ea__ck_view *v, const char *name, ea_dtype *dt, uint64_t *count) {
    const unsigned char *p = v->table;
    size_t want = strlen(name);
    uint32_t i;
    for (i = 0; i < v->n; i++) {
        size_t len = (size_t)ea__get_le(p, 2);
        if (len == want && memcmp(p + 2, name, len) == 0) {
            *dt = (ea_dtype)p[2 + len];
            *count = ea__get_le(p + 3 + len, 8);
            return v->payload + ea__get_le(p + 11 + len, 8);
        }
        p += EA_CK_ENTRY_FIXED + len;
    }
    return NULL;
}

static void ea__ck_copy(void *dst, const unsigned char *src, uint64_t count, ea_dtype dt) {
    uint64_t e;
    size_t es = ea__dtype_size(dt);
    for (e = 0; e < count; e++) {
        uint64_t v = ea__get_le(src + es * e, (int)es);
        if (es == 8) {
            memcpy((unsigned char *)dst + 8 * e, &v, 8);
        } else {
            uint32_t t = (uint32_t)v;
            memcpy((unsigned char *)dst + 4 * e, &t, 4);
        }
    }
}

EA_API ea_status ea_checkpoint_parse(const unsigned char *buf, size_t size, ea_vit_config *cfg_out,
                                     ea_vit *m, ea_adamw *opt, ea_blob *extra, int n_extra, ea_error *err) {
    static const char *const kind[3] = {"param.", "adam_m.", "adam_v."};
    ea__ck_view v;
    ea_vit_config cfg;
    uint64_t table_bytes;
    const unsigned char *p;
    uint32_t i, version;
    int pass, k;
    if (!buf || size < 16 + EA_CK_CONFIG_BYTES + 8 || memcmp(buf, EA_CK_MAGIC, 8) != 0)
        return ea_error_set(err, EA_ERR_FORMAT, "not an effattn checkpoint (bad magic or too short)");
    version = (uint32_t)ea__get_le(buf + 8, 4);
    if (version != EA_CK_VERSION)
        return ea_error_set(err, EA_ERR_FORMAT, "checkpoint version %u; this build reads version %u", version, EA_CK_VERSION);
    if (ea_crc32(0, buf + 8, size - 12) != (uint32_t)ea__get_le(buf + size - 4, 4))
        return ea_error_set(err, EA_ERR_FORMAT, "checkpoint checksum mismatch: the file is damaged or truncated");
    table_bytes = ea__get_le(buf + 12, 4);
    if (table_bytes < EA_CK_CONFIG_BYTES + 4 || table_bytes > size - 20)
        return ea_error_set(err, EA_ERR_FORMAT, "checkpoint table of %llu bytes does not fit the file",
                            (unsigned long long)table_bytes);
    ea__get_config(buf + 16, &cfg);
    if (cfg_out) *cfg_out = cfg;
    v.n = (uint32_t)ea__get_le(buf + 16 + EA_CK_CONFIG_BYTES, 4);
    v.table = buf + 16 + EA_CK_CONFIG_BYTES + 4;
    v.table_end = buf + 16 + table_bytes;
    v.payload = v.table_end;
    v.payload_bytes = (uint64_t)(size - 4 - (size_t)(v.payload - buf));
    if (v.n > EA_CK_MAX_ENTRIES) return ea_error_set(err, EA_ERR_FORMAT, "checkpoint lists %u entries", v.n);
    /* every entry must lie inside the table, its data inside the payload */
    for (p = v.table, i = 0; i < v.n; i++) {
        size_t len;
        uint64_t count, off, es;
        if (v.table_end - p < EA_CK_ENTRY_FIXED) return ea_error_set(err, EA_ERR_FORMAT, "checkpoint entry %u runs past the table", i);
        len = (size_t)ea__get_le(p, 2);
        if ((size_t)(v.table_end - p) < EA_CK_ENTRY_FIXED + len || len == 0 || len >= EA_NAME_LEN + 8)
            return ea_error_set(err, EA_ERR_FORMAT, "checkpoint entry %u has a bad name length", i);
        if (p[2 + len] != EA_DT_F32 && p[2 + len] != EA_DT_I32 && p[2 + len] != EA_DT_U64)
            return ea_error_set(err, EA_ERR_FORMAT, "checkpoint entry %u has an unknown dtype %u", i, p[2 + len]);
        es = ea__dtype_size((ea_dtype)p[2 + len]);
        count = ea__get_le(p + 3 + len, 8);
        off = ea__get_le(p + 11 + len, 8);
        if (count > v.payload_bytes / es || off > v.payload_bytes || count * es > v.payload_bytes - off)
            return ea_error_set(err, EA_ERR_FORMAT, "checkpoint entry %u points past the end of the data", i);
        p += EA_CK_ENTRY_FIXED + len;
    }
    if (p != v.table_end) return ea_error_set(err, EA_ERR_FORMAT, "checkpoint table size does not match its entries");
    if (m) {
        const ea_vit_config *c = &m->cfg;
        if (cfg.img_size != c->img_size || cfg.in_chans != c->in_chans || cfg.patch != c->patch || cfg.dim != c->dim ||
            cfg.depth != c->depth || cfg.n_heads != c->n_heads || cfg.mlp_hidden != c->mlp_hidden ||
            cfg.head_hidden != c->head_hidden || cfg.out_dim != c->out_dim || cfg.causal != c->causal ||
            strcmp(cfg.attn, c->attn) != 0 || (strcmp(cfg.attn, "gqa") == 0 && cfg.n_kv_heads != c->n_kv_heads))
            return ea_error_set(err, EA_ERR_CONFIG,
                                "checkpoint holds another model: attention '%s', dim %d, depth %d, heads %d, image %d "
                                "(this model: '%s', %d, %d, %d, %d)",
                                cfg.attn, cfg.dim, cfg.depth, cfg.n_heads, cfg.img_size, c->attn, c->dim, c->depth,
                                c->n_heads, c->img_size);
    }
    /* pass 0 checks every name and size, pass 1 copies: a failed load
       leaves the model, the optimizer and the arrays untouched */
    for (pass = 0; pass < 2; pass++) {
        char name[EA_NAME_LEN + 8];
        ea_dtype dt;
        uint64_t count;
        const unsigned char *src;
        for (k = 0; m && k < m->params.count; k++) {
            int j;
            for (j = 0; j < (opt ? 3 : 1); j++) {
                float *dst = j == 0 ? m->params.tensors[k]->data
                                    : (j == 1 ? m->params.m : m->params.v) + m->params.info[k].offset;
                snprintf(name, sizeof name, "%s%s", kind[j], m->params.info[k].name);
                src = ea__ck_find(&v, name, &dt, &count);
                if (!src || dt != EA_DT_F32 || count != m->params.tensors[k]->size)
                    return ea_error_set(err, EA_ERR_FORMAT, "checkpoint: '%s' is %s", name,
                                        src ? "of another size or type" : "missing");
                if (pass) ea__ck_copy(dst, src, count, dt);
            }
        }
        if (opt) {
            ea_dtype hdt;
            uint64_t hcount;
            const unsigned char *hs = ea__ck_find(&v, "adamw.hyper", &hdt, &hcount);
            src = ea__ck_find(&v, "adamw.step", &dt, &count);
            if (!src || dt != EA_DT_U64 || count != 1 || !hs || hdt != EA_DT_F32 || hcount != 5)
                return ea_error_set(err, EA_ERR_FORMAT, "checkpoint: the optimizer state is missing");
            if (pass) {
                uint64_t st;
                float hyper[5];
                ea__ck_copy(&st, src, 1, EA_DT_U64);
                ea__ck_copy(hyper, hs, 5, EA_DT_F32);
                opt->step = (long)st;
                opt->lr = hyper[0]; opt->beta1 = hyper[1]; opt->beta2 = hyper[2]; opt->eps = hyper[3];
                opt->weight_decay = hyper[4];
            }
        }
        for (k = 0; k < n_extra; k++) {
            src = ea__ck_find(&v, extra[k].name, &dt, &count);
            if (!src || dt != extra[k].dtype || count != extra[k].count)
                return ea_error_set(err, EA_ERR_FORMAT, "checkpoint: array '%s' is %s", extra[k].name,
                                    src ? "of another size or type" : "missing");
            if (pass) ea__ck_copy(extra[k].data, src, count, dt);
        }
    }
    return EA_OK;
}

static ea_status ea__checkpoint_file(const char *path, ea_vit_config *cfg, ea_vit *m, ea_adamw *opt, ea_blob *extra,
                                     int n_extra, ea_error *err) {
    unsigned char *buf;
    size_t size = 0;
    ea_status s = ea__read_file(path, &buf, &size, err);
    if (s != EA_OK) return s;
    s = ea_checkpoint_parse(buf, size, cfg, m, opt, extra, n_extra, err);
    EFFATTN_FREE(buf);
    if (s != EA_OK) ea__error_in_file(err, s, path);
    return s;
}

EA_API ea_status ea_checkpoint_load(const char *path, ea_vit *m, ea_adamw *opt, ea_blob *extra, int n_extra,
                                    ea_error *err) {
    if (!m) return ea_error_set(err, EA_ERR_ARG, "checkpoint_load: NULL model");
    return ea__checkpoint_file(path, NULL, m, opt, extra, n_extra, err);
}

EA_API ea_status ea_checkpoint_config(const char *path, ea_vit_config *cfg, ea_error *err) {
    return ea__checkpoint_file(path, cfg, NULL, NULL, NULL, 0, err);
}

/* ==========================================================================
   == 11. DATA: moving-object video generator, recorded videos, IDX and
   ==     CIFAR-10 loaders
   ==========================================================================
   Seed 000's physics: a disc of radius r on a size x size frame (pixel
   (row i, column j) is 1 where (j - x)² + (i - y)² <= r², else 0); start
   uniform in [r + 5, size - r - 5] per axis, velocity uniform in
   [-vmax, vmax]; each frame records the position, then moves it by the
   velocity; when the disc touches a wall (x - r <= 0 or x + r >= size) that
   velocity component flips sign and the position is clamped to
   [r, size - r].  Projectile mode adds gravity to vy every frame and
   scales a bounced component by the restitution.  Options: Gaussian pixel
   noise; a distractor square (side 2·r) that moves the same way but is
   not tracked. */
EA_API void ea_video_config_default(ea_video_config *c) {
    memset(c, 0, sizeof *c);
    c->n_videos = 1000;
    c->n_frames = 50;
    c->size = 32;
    c->radius = 3.0f;
    c->vmax = 1.5f;
    c->motion = EA_MOTION_BOUNCE;
    c->gravity = 0.25f;
    c->restitution = 0.8f;
    c->seed = 42;
}

/* One axis of motion: move, then bounce off the walls. */
static void ea__move_axis(float *p, float *v, float r, float size, float restitution) {
    *p += *v;
    if (*p - r <= 0.0f || *p + r >= size) {
        *v = -*v * restitution;
        *p = *p < r ? r : (*p > size - r ? size - r : *p);
    }
}

EA_API ea_status ea_videos_generate(ea_videos *out, const ea_video_config *c, ea_error *err) {
    ea_rng rng;
    int vi, t, i, j, S;
    size_t frame_px;
    if (!out || !c) return ea_error_set(err, EA_ERR_ARG, "videos_generate: NULL argument");
    memset(out, 0, sizeof *out);
    if (c->n_videos <= 0 || c->n_frames < 2 || c->size <= 0 || c->size > 4096 ||
        (double)c->n_videos * c->n_frames * c->size * c->size > (double)EA_MAX_ELEMS)
        return ea_error_set(err, EA_ERR_CONFIG,
                            "videos: %d videos of %d frames of %d pixels: expected >= 1 video, >= 2 "
                            "frames, size 1..4096, and at most %zu pixels in all",
                            c->n_videos, c->n_frames, c->size, EA_MAX_ELEMS);
    if (!(c->radius > 0.0f) || c->radius + 5.0f > c->size - c->radius - 5.0f)
        return ea_error_set(err, EA_ERR_CONFIG,
                            "videos: radius %g does not fit: the start range [r+5, size-r-5] is empty "
                            "for size %d",
                            (double)c->radius, c->size);
    if (!(c->vmax >= 0.0f) || !(c->noise >= 0.0f) || !(c->restitution >= 0.0f) ||
        !(c->restitution <= 1.0f) || c->gravity != c->gravity)
        return ea_error_set(err, EA_ERR_CONFIG,
                            "videos: vmax %g and noise %g must be >= 0, restitution %g in [0, 1]",
                            (double)c->vmax, (double)c->noise, (double)c->restitution);
    S = c->size;
    frame_px = (size_t)S * S;
    out->frames = (float *)EFFATTN_MALLOC((size_t)c->n_videos * c->n_frames * frame_px * sizeof(float));
    out->pos = (float *)EFFATTN_MALLOC((size_t)c->n_videos * c->n_frames * 2 * sizeof(float));
    if (!out->frames || !out->pos) {
        ea_videos_free(out);
        return ea_error_set(err, EA_ERR_NOMEM, "videos: could not allocate %d x %d frames",
                            c->n_videos, c->n_frames);
    }
    out->n_videos = c->n_videos;
    out->n_frames = c->n_frames;
    out->h = out->w = S;
    ea_rng_seed(&rng, c->seed, 2);
    for (vi = 0; vi < c->n_videos; vi++) {
        float r = c->radius, lo = r + 5.0f, hi = (float)S - r - 5.0f;
        float x = ea_rng_range(&rng, lo, hi), y = ea_rng_range(&rng, lo, hi);
        float vx = ea_rng_range(&rng, -c->vmax, c->vmax), vy = ea_rng_range(&rng, -c->vmax, c->vmax);
        float dx = 0, dy = 0, dvx = 0, dvy = 0, e = c->motion == EA_MOTION_PROJECTILE ? c->restitution : 1.0f;
        if (c->distractor) {
            dx = ea_rng_range(&rng, lo, hi);
            dy = ea_rng_range(&rng, lo, hi);
            dvx = ea_rng_range(&rng, -c->vmax, c->vmax);
            dvy = ea_rng_range(&rng, -c->vmax, c->vmax);
        }
        for (t = 0; t < c->n_frames; t++) {
            float *f = out->frames + ((size_t)vi * c->n_frames + t) * frame_px;
            for (i = 0; i < S; i++)
                for (j = 0; j < S; j++) {
                    float ddx = (float)j - x, ddy = (float)i - y, px = ddx * ddx + ddy * ddy <= r * r ? 1.0f : 0.0f;
                    if (c->distractor && fabsf((float)j - dx) <= r && fabsf((float)i - dy) <= r) px = 1.0f;
                    if (c->noise > 0.0f) px += c->noise * ea_rng_normal(&rng);
                    f[i * S + j] = px;
                }
            out->pos[((size_t)vi * c->n_frames + t) * 2 + 0] = x;
            out->pos[((size_t)vi * c->n_frames + t) * 2 + 1] = y;
            if (c->motion == EA_MOTION_PROJECTILE) vy += c->gravity;
            ea__move_axis(&x, &vx, r, (float)S, e);
            ea__move_axis(&y, &vy, r, (float)S, e);
            if (c->distractor) {
                ea__move_axis(&dx, &dvx, r, (float)S, 1.0f);
                ea__move_axis(&dy, &dvy, r, (float)S, 1.0f);
            }
        }
    }
    return EA_OK;
}

EA_API void ea_videos_free(ea_videos *v) {
    if (!v) return;
    EFFATTN_FREE(v->frames);
    EFFATTN_FREE(v->pos);
    memset(v, 0, sizeof *v);
}

EA_API ea_status ea_videos_load(ea_videos *out, const char *path, ea_error *err) {
    ea_safetensors st;
    const ea_st_entry *ev, *ep;
    ea_status s;
    size_t n;
    if (!out) return ea_error_set(err, EA_ERR_ARG, "videos_load: NULL argument");
    memset(out, 0, sizeof *out);
    if ((s = ea_st_open(&st, path, err)) != EA_OK) return s;
    ev = ea_st_find(&st, "videos");
    ep = ea_st_find(&st, "positions");
    if (!ev || !ep || ev->ndim != 4 || ep->ndim != 3 || ev->dtype == EA_DT_OTHER || ep->dtype != EA_DT_F32 ||
        ep->shape[0] != ev->shape[0] || ep->shape[1] != ev->shape[1] || ep->shape[2] != 2 || ev->shape[1] < 2 ||
        ev->shape[0] < 1 || ev->shape[2] < 1 || ev->shape[3] < 1 || ev->shape[0] > 1000000 || ev->shape[1] > 1000000 ||
        ev->shape[2] > 4096 || ev->shape[3] > 4096) {
        ea_st_close(&st);
        return ea_error_set(err, EA_ERR_FORMAT,
                            "'%s': expected 'videos' (U8 or F32) [V, T, H, W] with T >= 2 and 'positions' F32 "
                            "[V, T, 2] of the same V and T",
                            path);
    }
    out->n_videos = (int)ev->shape[0];
    out->n_frames = (int)ev->shape[1];
    out->h = (int)ev->shape[2];
    out->w = (int)ev->shape[3];
    n = (size_t)out->n_videos * out->n_frames;
    out->frames = (float *)EFFATTN_MALLOC(n * out->h * out->w * sizeof(float));
    out->pos = (float *)EFFATTN_MALLOC(n * 2 * sizeof(float));
    if (!out->frames || !out->pos) {
        ea_st_close(&st);
        ea_videos_free(out);
        return ea_error_set(err, EA_ERR_NOMEM, "'%s': cannot hold %zu frames", path, n);
    }
    s = ea_st_read(&st, "videos", out->frames, n * out->h * out->w, err);
    if (s == EA_OK) s = ea_st_read(&st, "positions", out->pos, n * 2, err);
    ea_st_close(&st);
    if (s != EA_OK) ea_videos_free(out);
    return s;
}

EA_API ea_status ea_videos_pair(const ea_videos *v, int video, int t, float *x, float *y) {
    size_t px;
    const float *f;
    if (!v || !v->frames || !x || !y || video < 0 || video >= v->n_videos || t < 0 || t + 1 >= v->n_frames)
        return EA_ERR_ARG;
    px = (size_t)v->h * v->w;
    f = v->frames + ((size_t)video * v->n_frames + t) * px;
    memcpy(x, f, 2 * px * sizeof(float));
    y[0] = v->pos[((size_t)video * v->n_frames + t + 1) * 2 + 0];
    y[1] = v->pos[((size_t)video * v->n_frames + t + 1) * 2 + 1];
    return EA_OK;
}


/* --- image datasets: IDX and CIFAR-10 -------------------------------------- */
EA_API ea_status ea_idx_parse(ea_u8_array *out, const unsigned char *buf, size_t size, ea_error *err) {
    size_t need = 1, i, header;
    int nd;
    memset(out, 0, sizeof *out);
    if (!buf || size < 4 || buf[0] != 0 || buf[1] != 0)
        return ea_error_set(err, EA_ERR_FORMAT, "IDX: bad magic (expected 00 00 type ndim)");
    if (buf[2] != 0x08)
        return ea_error_set(err, EA_ERR_FORMAT, "IDX: element type 0x%02x; only unsigned bytes (0x08) are supported", buf[2]);
    nd = buf[3];
    if (nd < 1 || nd > EA_MAX_DIMS) return ea_error_set(err, EA_ERR_FORMAT, "IDX: %d dimensions, expected 1 to %d", nd, EA_MAX_DIMS);
    header = 4 + 4 * (size_t)nd;
    if (size < header) return ea_error_set(err, EA_ERR_FORMAT, "IDX: file ends inside its header (%zu bytes)", size);
    for (i = 0; i < (size_t)nd; i++) {
        uint32_t d = (uint32_t)buf[4 + 4 * i] << 24 | (uint32_t)buf[5 + 4 * i] << 16 | (uint32_t)buf[6 + 4 * i] << 8 |
                     buf[7 + 4 * i];
        if (d == 0 || d > 0x7fffffffu || need > ((size_t)1 << 40) / d)
            return ea_error_set(err, EA_ERR_FORMAT, "IDX: dimension %zu is %u", i, d);
        out->dims[i] = (int)d;
        need *= d;
    }
    if (size - header != need)
        return ea_error_set(err, EA_ERR_FORMAT, "IDX: the header promises %zu bytes of data, the file has %zu (%s)", need,
                            size - header, size - header < need ? "truncated" : "oversized");
    out->data = (unsigned char *)EFFATTN_MALLOC(need + 1);
    if (!out->data) return ea_error_set(err, EA_ERR_NOMEM, "IDX: cannot hold %zu bytes", need);
    memcpy(out->data, buf + header, need);
    out->ndim = nd;
    out->size = need;
    return EA_OK;
}

EA_API void ea_u8_array_free(ea_u8_array *a) {
    if (!a) return;
    EFFATTN_FREE(a->data);
    memset(a, 0, sizeof *a);
}

EA_API ea_status ea_idx_load(ea_u8_array *out, const char *path, ea_error *err) {
    unsigned char *buf;
    size_t size = 0;
    ea_status s;
    memset(out, 0, sizeof *out);
    if ((s = ea__read_file(path, &buf, &size, err)) != EA_OK) return s;
    s = ea_idx_parse(out, buf, size, err);
    EFFATTN_FREE(buf);
    if (s != EA_OK) ea__error_in_file(err, s, path);
    return s;
}

#define EA_CIFAR_RECORD 3073

EA_API ea_status ea_cifar_parse(ea_cifar *out, const unsigned char *buf, size_t size, ea_error *err) {
    size_t n, i;
    memset(out, 0, sizeof *out);
    if (!buf || size == 0 || size % EA_CIFAR_RECORD)
        return ea_error_set(err, EA_ERR_FORMAT,
                            "CIFAR-10: %zu bytes is not a whole number of %d-byte records (label + 3x32x32)", size,
                            EA_CIFAR_RECORD);
    n = size / EA_CIFAR_RECORD;
    if (n > 1000000) return ea_error_set(err, EA_ERR_FORMAT, "CIFAR-10: %zu records is more than any batch file holds", n);
    for (i = 0; i < n; i++)
        if (buf[i * EA_CIFAR_RECORD] > 9)
            return ea_error_set(err, EA_ERR_FORMAT, "CIFAR-10: record %zu has label %u, expected 0..9", i,
                                buf[i * EA_CIFAR_RECORD]);
    out->labels = (unsigned char *)EFFATTN_MALLOC(n);
    out->images = (unsigned char *)EFFATTN_MALLOC(n * 3072);
    if (!out->labels || !out->images) {
        ea_cifar_free(out);
        return ea_error_set(err, EA_ERR_NOMEM, "CIFAR-10: cannot hold %zu images", n);
    }
    for (i = 0; i < n; i++) {
        out->labels[i] = buf[i * EA_CIFAR_RECORD];
        memcpy(out->images + i * 3072, buf + i * EA_CIFAR_RECORD + 1, 3072);
    }
    out->n = (int)n;
    return EA_OK;
}

EA_API void ea_cifar_free(ea_cifar *c) {
    if (!c) return;
    EFFATTN_FREE(c->labels);
    EFFATTN_FREE(c->images);
    memset(c, 0, sizeof *c);
}

EA_API ea_status ea_cifar_load(ea_cifar *out, const char *const *paths, int n_paths, ea_error *err) {
    int f;
    memset(out, 0, sizeof *out);
    if (!paths || n_paths < 1) return ea_error_set(err, EA_ERR_ARG, "CIFAR-10: no files given");
    for (f = 0; f < n_paths; f++) {
        unsigned char *buf;
        size_t size = 0;
        ea_cifar part;
        ea_status s = ea__read_file(paths[f], &buf, &size, err);
        if (s == EA_OK) {
            s = ea_cifar_parse(&part, buf, size, err);
            EFFATTN_FREE(buf);
            if (s != EA_OK) ea__error_in_file(err, s, paths[f]);
        }
        if (s == EA_OK) {
            /* append part to out */
            size_t n = (size_t)out->n + (size_t)part.n;
            unsigned char *l = (unsigned char *)EFFATTN_MALLOC(n), *im = (unsigned char *)EFFATTN_MALLOC(n * 3072);
            if (!l || !im) {
                EFFATTN_FREE(l);
                EFFATTN_FREE(im);
                s = ea_error_set(err, EA_ERR_NOMEM, "CIFAR-10: cannot hold %zu images", n);
            } else {
                if (out->n) {
                    memcpy(l, out->labels, (size_t)out->n);
                    memcpy(im, out->images, (size_t)out->n * 3072);
                }
                memcpy(l + out->n, part.labels, (size_t)part.n);
                memcpy(im + (size_t)out->n * 3072, part.images, (size_t)part.n * 3072);
                ea_cifar_free(out);
                out->labels = l;
                out->images = im;
                out->n = (int)n;
            }
            ea_cifar_free(&part);
        }
        if (s != EA_OK) {
            ea_cifar_free(out);
            return s;
        }
    }
    return EA_OK;
}

/* ==========================================================================
   == 12. MEASUREMENT: timers, thread count
   ==========================================================================
   Wall clock from OpenMP when threads are on, else the POSIX monotonic
   clock where the compiler exposes it (-std=gnu*, or _POSIX_C_SOURCE
   defined before the include); strict ISO C falls back to clock(). */
EA_API double ea_time_sec(void) {
#ifdef _OPENMP
    return omp_get_wtime();
#elif defined(CLOCK_MONOTONIC)
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
#else
    /* strict ISO C without POSIX: processor time, exact on one thread */
    return (double)clock() / (double)CLOCKS_PER_SEC;
#endif
}

EA_API int ea_num_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

#ifdef __cplusplus
}
#endif
#endif /* EFFATTN_IMPLEMENTATION_DONE */
#endif /* EFFATTN_IMPLEMENTATION */
