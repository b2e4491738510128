/* effattn.h — efficient attention, tensors with autograd and small Vision
   Transformers in one C99 / C++11 header.                     MIT license.

   ==========================================================================
   WHAT IT IS
   ==========================================================================
   A single-file library for robotics code and for students: a float32 tensor
   type with reverse-mode autograd, attention variants written out as their
   formula, a plain reference loop and a fast path, the small Vision
   Transformers that use them (the two-frame object tracker of source
   document 000, the image classifier of document 002) and the MLP and CNN
   classifier hosts of document 001, AdamW training, a synthetic video and
   shape generator and loaders for Fashion-MNIST (gzipped) and CIFAR-10.  It
   needs nothing at run time but the C library and libm.

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
       EFFATTN_CUDA             add section 13's CUDA kernels (compile the
                                implementation with nvcc -x cu, link -lcublas -lcublasLt)
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
    7. CORE OPS: linear (and linear + GELU as one op), matmul, add,
       layer norm, GELU, softmax,
       convolution (patch embedding, conv2d), batch norm, max-pool,
       dropout, token mean, MSE, cross-entropy, and the small ops
       the variants are written with (heads, segment means, rope, SiLU,
       causal conv, ...)
    8. ATTENTION: the kernels (exact scaled dot-product, flash-tiled with
       block masks and FlexAttention-style mods, key-list sparse, kernel
       attention), then one section per variant (none, mha, gqa/mqa,
       local, bigbird, localglobal, flex, strided, dilated, topk, linear,
       performer, linformer, nystrom, hybrid), time in attention (rope,
       alibi), streaming state (K/V cache, windows, ea_attn_step), mla,
       h2o, crossmem, mamba, and the variant
       table; the weights probe (ea_attn_probe) lives with the kernels
    9. BLOCKS AND MODELS: mixture-of-experts feed-forward, pre-norm
       transformer block, ViT (the tracker, seed 002's classifier), seed
       001's MLP and CNN classifier hosts
   10. TRAINING: AdamW, learning-rate schedule, gradient clipping,
       gradients in cache-sized chunks, data-parallel training (a
       caller-supplied all-reduce), weight import/export
       (safetensors), checkpoints
   11. DATA: moving-object video generator, recorded videos, gzip
       (inflate), DEFLATE and PNG out, IDX and CIFAR-10 loaders,
       Fashion-MNIST, synthetic shapes, image batches with augmentation
   12. MEASUREMENT: timers, thread count (FLOP counts live with each
       variant and model, the arena peak with the arena)
   13. CUDA (EFFATTN_CUDA, nvcc -x cu): device memory, kernels that
       twin CPU ones (linear, layer norm, GELU, softmax, flash attention
       forward and backward, AdamW), exact attention on tensor cores
       (bf16 forward and backward, and a TF32 forward from fp32
       buffers; mma.sync), and the ViT on the device (mean or
       class-token pooling): small batches' forward as one fused
       cooperative kernel, larger ones as a captured graph, and training
       steps (MSE or cross-entropy) with the weight gradients on a
       second stream
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
/* An activation's gradient buffer, zeroed on first touch by ea_backward
   (not when the forward makes it): the list is the context's. */
typedef struct ea_grad_buf {
    float *grad;
    size_t size;
    int ready;             /* zeroed (or accumulated into) */
    struct ea_grad_buf *next;
} ea_grad_buf;

typedef struct ea_tensor {
    float *data;
    float *grad;           /* NULL when no gradient is tracked; an activation's holds
                              its gradient after ea_backward (not before: it is
                              zeroed there, on first use) */
    int ndim;
    int shape[EA_MAX_DIMS];
    size_t size;           /* product of shape */
    int requires_grad;
    const char *name;      /* parameters only */
    const float *packed;   /* parameters only: wᵀ [K, N] from ea_params_pack, or NULL */
    ea_grad_buf *gbuf;     /* activations: their gradient's zeroing state, shared by views */
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
    const void *aux[2];    /* non-float state (index lists, block masks) */
    int iarg[12];
    float farg[4];
    int assigns;           /* bit k: the backward writes in[k]'s gradient itself
                              when ea_backward has not zeroed it yet (ea__grad_fresh) */
};

/* Attention weights for pictures (compare --heatmaps).  While ctx->probe
   is set, every attention layer that runs writes the weights its output
   applies to the values, for batch entry 0, as one more layer of the
   probe: [H, nq, nk] floats at buf + layer[i].off.  Exact and sparse rows
   write their softmax (masked pairs exactly 0); approximate rows the
   weights they imply (linear, performer: φ(q)·φ(k) over the row's
   normaliser; linformer: P times the value projection, over the tokens;
   nystrom: F·A⁺·B; hybrid: the two paths mixed by each head's mean gate).
   A layer without weights (mamba, none) writes nothing.  Layers past
   EA_PROBE_MAX or past cap floats are not written.  It costs nothing
   when ctx->probe is NULL, the default. */
#define EA_PROBE_MAX 32
typedef struct ea_attn_probe {
    float *buf;            /* the caller's buffer of cap floats */
    size_t cap, used;
    int count;             /* layers written */
    struct {
        size_t off;
        int H, nq, nk;
    } layer[EA_PROBE_MAX];
} ea_attn_probe;

/* A context: the activation arena, the tape and the last error.  Two
   contexts on two threads never interfere. */
struct ea_ctx {
    ea_arena arena;
    ea_node *tape;         /* last recorded node */
    int grad_enabled;      /* record the tape (training) or not (inference) */
    int training;          /* 1: dropout drops and batch norm uses (and updates) batch
                              statistics, like PyTorch's model.train(); 0: eval() */
    ea_rng rng;            /* dropout's masks (seeded by ea_ctx_init; reseed freely) */
    ea_error err;          /* first error since the last reset */
    ea_attn_probe *probe;  /* NULL, or where attention layers write their weights */
    ea_grad_buf *grads;    /* this pass's activation gradients, newest first */
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
    EA_INIT_NORMAL,    /* N(0, arg^2) */
    EA_INIT_SSM_A,     /* log(1 + j mod arg) along a row: Mamba's A_log (S4D-real) */
    EA_INIT_SSM_DT     /* softplus⁻¹ of a step log-uniform in [0.001, 0.1]: Mamba's Δ bias */
} ea_init;

typedef struct ea_param_info {
    char name[EA_NAME_LEN];
    ea_init init;
    float init_arg;
    size_t offset;
    int buffer;            /* 1: state, not trained (batch norm's running statistics) */
} ea_param_info;

typedef struct ea_params {
    ea_tensor **tensors;
    ea_param_info *info;
    int count, cap;
    size_t n;              /* total scalars */
    float *data, *grad, *m, *v;  /* 4 x n floats, one allocation */
    ea_status status;      /* first registration failure */
    float *packed;         /* ea_params_pack's copies (one allocation), or NULL */
} ea_params;

EA_API ea_tensor *ea_param(ea_params *ps, const char *name, int ndim, const int *shape,
                           ea_init init, float init_arg);
/* A buffer: saved and loaded with the parameters (PyTorch's register_buffer),
   but without a gradient, and AdamW leaves it alone. */
EA_API ea_tensor *ea_buffer(ea_params *ps, const char *name, int ndim, const int *shape, ea_init init);
EA_API ea_status ea_params_alloc(ea_params *ps, ea_error *err);
EA_API void ea_params_init(ea_params *ps, uint64_t seed);
EA_API void ea_params_zero_grad(ea_params *ps);
EA_API void ea_params_free(ea_params *ps);
/* Inference: every 2-D parameter [N, K] with N a multiple of 16 gets a
   transposed copy wᵀ [K, N], 64-byte aligned, that ea_linear then reads
   as the GEMM's panel in place instead of transposing w into one on every
   call (the same products in the same order: bit-identical outputs).  The
   copies describe the weights as they are now: ea_adamw_step,
   ea_params_init, ea_params_load, ea_checkpoint_load, ea_vit_cuda_pull and
   ea_params_free drop them; after writing weights any other way call ea_params_pack
   again, or ea_params_unpack. */
EA_API ea_status ea_params_pack(ea_params *ps, ea_error *err);
EA_API void ea_params_unpack(ea_params *ps);
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
/* batch norm over N rows of C channels (see ea_batchnorm): the batch's mean
   and biased variance; y = (x - mean)·rstd·w + b; the backward (+=) with
   batch_stats set when mean and rstd came from the batch, 2·C floats of
   scratch in sums; w, b, dw, db, dx may be NULL */
EA_API void ea_batchnorm_stats(float *mean, float *var, const float *x, int N, int C);
EA_API void ea_batchnorm_fwd(float *out, const float *x, const float *mean, const float *rstd, const float *w,
                             const float *b, int N, int C);
EA_API void ea_batchnorm_bwd(float *dx, float *dw, float *db, const float *dout, const float *x, const float *mean,
                             const float *rstd, const float *w, int N, int C, int batch_stats, float *sums);
EA_API void ea_gelu_fwd(float *out, const float *x, size_t n);
EA_API void ea_gelu_bwd(float *dx, const float *dout, const float *x, size_t n);
EA_API void ea_softmax_fwd(float *out, const float *x, int rows, int cols);
EA_API void ea_softmax_bwd(float *dx, const float *dout, const float *y, int rows, int cols);

/* ---- masks and score modifiers (FlexAttention-style, Dong et al. 2024) --
   score_mod(score, b, h, q, k, user) rewrites a scaled score before the
   softmax; mask_mod(b, h, q, k, user) returns 0 to hide key k from query q.
   dscore_mod, when given, is d score_mod / d score at the same arguments;
   without it the backward takes a central finite difference (step
   1e-3·max(1, |score|)), good to about 1e-4 relative for smooth mods. */
typedef float (*ea_score_mod_fn)(float score, int b, int h, int q, int k, void *user);
typedef int (*ea_mask_mod_fn)(int b, int h, int q, int k, void *user);
#define EA_FLEX_BY_BATCH 1  /* mask_mod reads b: one block mask per batch entry */
#define EA_FLEX_BY_HEAD 2   /* mask_mod reads h: one block mask per head */
typedef struct ea_flex_mods {
    ea_score_mod_fn score_mod, dscore_mod;  /* NULL: score unchanged */
    ea_mask_mod_fn mask_mod;                /* NULL: every key visible */
    void *user;
    int mask_varies;  /* EA_FLEX_BY_BATCH | EA_FLEX_BY_HEAD; 0: one mask for all */
} ea_flex_mods;

/* Which key tiles (EA_FA_BC keys) each query tile (EA_FA_BR queries)
   visits (a last tile or block of at most EA_FA_TAIL rows joins the one
   before: see 8.2).  Built once per call, so the kernel skips hidden tiles whole and
   calls mask_mod only inside tiles that are partly visible.  tile[] holds
   key tile index·2 + 1 when every pair in the tile is visible. */
typedef struct ea_block_mask {
    int nb, nh, nqt, nkt;   /* batch and head extents (1: shared), query and key tiles */
    const int *row;         /* [nb·nh·nqt + 1] start of each query tile's list */
    const int *tile;
} ea_block_mask;
/* Evaluates mask_mod on every (q, k) pair once per distinct b / h
   (nq·nk calls each): the cost of a general mask; the built-in sparse
   rows build theirs from the pattern's shape in O(n) instead. */
EA_API ea_status ea_block_mask_build(ea_ctx *ctx, ea_block_mask *bm, const ea_flex_mods *mods, int B,
                                     int H, int nq, int nk, int causal);

/* Examples (see 8.3): ALiBi, tanh soft-capping, relative bias, causal and
   document masks. */
EA_API float ea_flex_alibi(float s, int b, int h, int q, int k, void *user);   /* user: float slopes[H] */
EA_API float ea_flex_bias_grad(float s, int b, int h, int q, int k, void *user); /* 1: d/ds of any added bias */
EA_API void ea_flex_alibi_slopes(float *slopes, int H);                        /* m_h = 2^(-8(h+1)/H) */
EA_API float ea_flex_softcap(float s, int b, int h, int q, int k, void *user); /* user: float *cap */
EA_API float ea_flex_softcap_grad(float s, int b, int h, int q, int k, void *user);
typedef struct ea_flex_relbias { const float *bias; int max_dist; } ea_flex_relbias;
EA_API float ea_flex_relative(float s, int b, int h, int q, int k, void *user); /* ea_flex_relbias * */
EA_API int ea_flex_causal(int b, int h, int q, int k, void *user);
typedef struct ea_flex_docs { const int *doc; int n; } ea_flex_docs; /* doc[b·n + t] */
EA_API int ea_flex_document(int b, int h, int q, int k, void *user);  /* ea_flex_docs * */

/* Scaled dot-product attention with grouped K/V heads, strided views.
   q: [B, nq, ldq] holding H heads of dh columns; k, v: [B, nk, ld] holding
   Hkv heads; query head h reads K/V head h / (H / Hkv).  o: [B, nq, ldo]. */
typedef struct ea_sdpa_shape {
    int B, nq, nk, H, Hkv, dh, causal;
    float scale;
    ptrdiff_t ldq, ldk, ldv, ldo;
} ea_sdpa_shape;
/* The reference loops (one query at a time); EA_ERR_NOMEM if the row
   buffer cannot be had.  The flex form applies mods' mask and score_mod to
   every pair: the reference for every masked or modified row. */
EA_API ea_status ea_sdpa_ref_fwd(float *o, const float *q, const float *k, const float *v,
                                 const ea_sdpa_shape *s);
EA_API ea_status ea_flex_ref_fwd(float *o, const float *q, const float *k, const float *v,
                                 const ea_sdpa_shape *s, const ea_flex_mods *mods);
EA_API void ea_sdpa_fwd(float *o, float *p, const float *q, const float *k, const float *v,
                        const ea_sdpa_shape *s);
EA_API void ea_sdpa_bwd(float *dq, float *dk, float *dv, float *scratch, const float *dout,
                        const float *p, const float *q, const float *k, const float *v,
                        const ea_sdpa_shape *s);

/* Flash-tiled exact attention: the same result without the nq x nk matrix.
   lse receives the log-sum-exp of each query row (B·H·nq floats) for the
   backward (NULL: none wanted, as at inference); scratch holds
   ea_sdpa_flash_scratch(s) floats per thread, from any address (each
   thread's share starts on a cache line of it).  bm and mods (both may be
   NULL) restrict and modify the scores (8.3). */
EA_API size_t ea_sdpa_flash_scratch(const ea_sdpa_shape *s);
EA_API void ea_sdpa_flash_fwd(float *o, float *lse, float *scratch, const float *q, const float *k,
                              const float *v, const ea_sdpa_shape *s, const ea_block_mask *bm,
                              const ea_flex_mods *mods);
EA_API void ea_sdpa_flash_bwd(float *dq, float *dk, float *dv, float *scratch, const float *dout,
                              const float *o, const float *lse, const float *q, const float *k,
                              const float *v, const ea_sdpa_shape *s, const ea_block_mask *bm,
                              const ea_flex_mods *mods);

/* Sparse attention over explicit key lists: query i of (b, h) attends to
   keys idx[.., i, 0..K) (-1: empty slot); idx is [nq, K] shared by every
   batch and head, or [B, H, nq, K] when per_head.  p receives the K
   weights per query (B·H·nq·K floats); scratch: K floats per thread. */
EA_API void ea_gather_attn_fwd(float *o, float *p, const float *q, const float *k, const float *v,
                               const int *idx, int K, int per_head, const ea_sdpa_shape *s);
EA_API void ea_gather_attn_bwd(float *dq, float *dk, float *dv, float *scratch, const float *dout,
                               const float *p, const float *q, const float *k, const float *v,
                               const int *idx, int K, int per_head, const ea_sdpa_shape *s);
/* The kk largest scores of every query row (ties: lower key first), as an
   index list [B, H, nq, kk] for the gather kernel; scratch: EA_FA_BR·nk
   floats per thread. */
EA_API void ea_topk_select(int *idx, float *scratch, const float *q, const float *k, int kk,
                           const ea_sdpa_shape *s);

/* Kernel (linear) attention, normalised: per head, with φ(Q), φ(K) given
       O_i = φ(Q_i)ᵀ A / (φ(Q_i)·z + eps),  A = Σ_j φ(K_j) V_jᵀ,  z = Σ_j φ(K_j).
   fq, fk: [B, n, ldf] with H heads of F columns; v: [B, n, ldv] with H heads
   of dv columns; o: [B, n, H·dv].  kv [B·H, F, dv], z [B·H, F] and den
   [B·H·n] are kept for the backward; scratch: n·dv + n + F·dv + F floats
   per thread. */
typedef struct ea_kattn_shape {
    int B, n, H, F, dv;
    ptrdiff_t ldf, ldv;
    float eps;
} ea_kattn_shape;
EA_API void ea_kernel_attn_ref_fwd(float *o, const float *fq, const float *fk, const float *v,
                                   const ea_kattn_shape *s);  /* the O(n²) definition */
EA_API void ea_kernel_attn_fwd(float *o, float *kv, float *z, float *den, const float *fq,
                               const float *fk, const float *v, const ea_kattn_shape *s);
EA_API void ea_kernel_attn_bwd(float *dfq, float *dfk, float *dv, float *scratch, const float *dout,
                               const float *o, const float *kv, const float *z, const float *den,
                               const float *fq, const float *fk, const float *v, const ea_kattn_shape *s);

/* ---- tensor ops (record on the tape when gradients are on) ------------- */
EA_API ea_tensor *ea_linear(ea_ctx *ctx, ea_tensor *x, ea_tensor *w, ea_tensor *b);
EA_API ea_tensor *ea_linear_gelu(ea_ctx *ctx, ea_tensor *x, ea_tensor *w, ea_tensor *b); /* GELU(x·wᵀ + b) */
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
/* c[.., M, N] = op(a) · op(b), op(x) = x, or xᵀ of the last two dims when
   ta / tb; b may be 2-D (shared by the batch).  ea_matmul is ta = tb = 0. */
EA_API ea_tensor *ea_matmul_t(ea_ctx *ctx, ea_tensor *a, int ta, ea_tensor *b, int tb);
EA_API ea_tensor *ea_eye_affine(ea_ctx *ctx, ea_tensor *x, float alpha, float c); /* alpha·x + c·I */
EA_API ea_tensor *ea_feature_map(ea_ctx *ctx, ea_tensor *x, int relu);  /* elu(x)+1, or relu(x) */
/* [B, n, C] columns col + h·dh .. -> [B·H, n, dh], times scale; and back */
EA_API ea_tensor *ea_heads_split(ea_ctx *ctx, ea_tensor *x, int col, int H, int dh, float scale);
EA_API ea_tensor *ea_heads_merge(ea_ctx *ctx, ea_tensor *x, int H);
/* [Bt, n, d] -> [Bt, m, d]: means of m contiguous segments (sizes differ by at most 1) */
EA_API ea_tensor *ea_segment_mean(ea_ctx *ctx, ea_tensor *x, int m);
/* a [Bt, m, m] -> aᵀ / (max row sum · max column sum of |a|): the start of
   the iterative pseudo-inverse (Razavi et al. 2014) */
EA_API ea_tensor *ea_pinv_init(ea_ctx *ctx, ea_tensor *a);
/* out[b] = e[:, :n] · x[b][:, col .. col+width)  for e [k, max_len] and
   x [B, n, C] with n <= max_len: projection along the sequence (Linformer) */
EA_API ea_tensor *ea_seq_project(ea_ctx *ctx, ea_tensor *e, ea_tensor *x, int col, int width);
/* x [B·H, n, d], w [H, k] (k odd): out[bh, i] = Σ_t w[h, t] x[bh, i + t - k/2]
   (zero padded): a depthwise convolution along the sequence, one kernel per head */
EA_API ea_tensor *ea_seq_conv(ea_ctx *ctx, ea_tensor *x, ea_tensor *w);
/* [g, C] tokens in front of every sequence of x [B, n, C]; and dropping
   the first g tokens again */
EA_API ea_tensor *ea_prepend_tokens(ea_ctx *ctx, ea_tensor *tokens, ea_tensor *x);
EA_API ea_tensor *ea_drop_tokens(ea_ctx *ctx, ea_tensor *x, int g);
/* σ(alpha) ∘ a + (1 - σ(alpha)) ∘ b, alpha [C] broadcast over a, b [.., C] */
EA_API ea_tensor *ea_gate_mix(ea_ctx *ctx, ea_tensor *a, ea_tensor *b, ea_tensor *alpha);
/* ---- ops of the memory, expert and state-space rows (8.24-8.28, 9) ---- */
/* a ∘ b for equal sizes, or b [C] broadcast over a [.., C] */
EA_API ea_tensor *ea_mul(ea_ctx *ctx, ea_tensor *a, ea_tensor *b);
typedef enum ea_act_kind { EA_ACT_SILU = 0, EA_ACT_SOFTPLUS = 1, EA_ACT_SIGMOID = 2, EA_ACT_RELU = 3 } ea_act_kind;
/* elementwise x·σ(x), log(1 + eˣ), σ(x) or max(x, 0) */
EA_API ea_tensor *ea_act(ea_ctx *ctx, ea_tensor *x, ea_act_kind kind);
/* Rotary position embedding (Su et al. 2021, RoFormer) on columns
   [off, off + rot) of each of the H heads of x [B, n, H·d]; token i sits
   at position pos0 + i.  rot even. */
EA_API ea_tensor *ea_rope(ea_ctx *ctx, ea_tensor *x, int H, int off, int rot, int pos0);
/* The general form: columns col + h·d .. col + h·d + rot - 1 of x [B, n, C]
   turn for each head h < H (other columns pass through);
   token i sits at time (pos0 + i) / group, so with group = tokens per frame
   every token of a frame turns by its frame's angle.  ea_rope is
   col = off, d = C / H, group = 1. */
EA_API ea_tensor *ea_rope_at(ea_ctx *ctx, ea_tensor *x, int col, int H, int d, int rot, int pos0, int group);
/* [B, n, H·(da + db)]: head h is da columns of a (from a_col + h·da) then
   db columns of b (from b_col + (h / (H / Hb))·db); Hb divides H, and
   Hb = 1 shares one b head with every head (MLA's rotary key). */
EA_API ea_tensor *ea_concat_heads(ea_ctx *ctx, ea_tensor *a, int a_col, int da, ea_tensor *b, int b_col, int db,
                                  int H, int Hb);
/* x [B, n, C], w [C, k], bias [C]: a causal depthwise convolution along the
   sequence, y[b, t, c] = bias[c] + Σ_j w[c, j]·x[b, t - k + 1 + j, c]
   (zero before the first token) */
EA_API ea_tensor *ea_causal_conv(ea_ctx *ctx, ea_tensor *x, ea_tensor *w, ea_tensor *bias);
/* [B, n1, C] and [B, n2, C] -> [B, n1 + n2, C] */
EA_API ea_tensor *ea_concat_tokens(ea_ctx *ctx, ea_tensor *a, ea_tensor *b);
/* The same elements under another shape of the same size (data and
   gradient shared with x: no copy, nothing on the tape). */
EA_API ea_tensor *ea_reshape(ea_ctx *ctx, ea_tensor *x, int ndim, const int *shape);
/* Flash attention with a block mask and score modifiers built from mods
   (which must stay valid until the backward has run). */
EA_API ea_tensor *ea_flex_attention(ea_ctx *ctx, ea_tensor *q, int q_col, ea_tensor *k, int k_col,
                                    ea_tensor *v, int v_col, int H, int Hkv, int dh, int causal,
                                    const ea_flex_mods *mods);

/* ---- ops of the image classifiers (7, 9) ----------------------------------
   Feature maps are channels-last, [B, H, W, C], so that a map is already a
   token sequence [B, H·W, C] for attention and batch norm runs over the
   last dimension like layer norm.  Weights keep PyTorch's layouts. */
/* 2-D convolution: x [B, H, W, C], w [D, C, k, k], b [D] or NULL ->
   [B, Ho, Wo, D], Ho = (H + 2·pad - k) / stride + 1 (zero padding) */
EA_API ea_tensor *ea_conv2d(ea_ctx *ctx, ea_tensor *x, ea_tensor *w, ea_tensor *b, int stride, int pad);
/* [B, C, H, W] (an image batch) -> [B, H, W, C] */
EA_API ea_tensor *ea_channels_last(ea_ctx *ctx, ea_tensor *x);
/* Batch norm over the last dimension C of x [.., C] (Ioffe & Szegedy 2015).
   ctx->training: normalise by the batch's mean and (biased) variance and
   move running_mean / running_var towards them by `momentum` (the variance
   unbiased, as PyTorch does), num_batches_tracked += 1; otherwise
   normalise by the running statistics.  The three state tensors may be
   NULL (training statistics only). */
EA_API ea_tensor *ea_batchnorm(ea_ctx *ctx, ea_tensor *x, ea_tensor *w, ea_tensor *b, ea_tensor *running_mean,
                               ea_tensor *running_var, ea_tensor *num_batches_tracked, float momentum, float eps);
/* Max over k x k windows, `stride` apart, of x [B, H, W, C] -> [B, Ho, Wo, C] */
EA_API ea_tensor *ea_maxpool2d(ea_ctx *ctx, ea_tensor *x, int k, int stride);
/* Inverted dropout: with ctx->training, each element is zeroed with
   probability p and the rest scaled by 1 / (1 - p) (masks from ctx->rng);
   otherwise (or p = 0) x itself. */
EA_API ea_tensor *ea_dropout(ea_ctx *ctx, ea_tensor *x, float p);
/* Tokens [start, start + count) of x [B, n, C] -> [B, count, C] */
EA_API ea_tensor *ea_slice_tokens(ea_ctx *ctx, ea_tensor *x, int start, int count);
/* Cross-entropy against (1 - s)·onehot + s / classes (label smoothing, as
   torch.nn.CrossEntropyLoss(label_smoothing = s)); s = 0 is ea_cross_entropy. */
EA_API ea_tensor *ea_cross_entropy_smooth(ea_ctx *ctx, ea_tensor *logits, const int *labels, float smoothing);
/* Rows whose label is among the k highest logits (classes scoring strictly
   higher than the label are counted; a NaN logit is a miss). */
EA_API int ea_topk_hits(const float *logits, const int *labels, int rows, int classes, int k);

/* ---- attention variants ------------------------------------------------ */
/* Options of the approximate and sparse rows; 0 picks the row's default. */
typedef struct ea_attn_opts {
    int window;      /* local, localglobal: half-width w (default 8); dilated, hybrid: keys each side (4) */
    int stride;      /* strided: every s-th key (default 4) */
    int dilation;    /* dilated, hybrid: spacing of the window's keys (default 2) */
    int topk;        /* topk: scores kept per query (default n/4, at least 1) */
    int features;    /* performer: random features m (default 64) */
    int relu;        /* linear: ReLU instead of elu+1; performer: ReLU random features */
    int redraw;      /* performer: training redraws the features every N steps (ea_attn_redraw) */
    int proj_len;    /* linformer: projected length k (default 16) */
    int max_len;     /* linformer: longest sequence (default 256; the ViT passes its token count) */
    int landmarks;   /* nystrom: landmarks m (default min(8, n)) */
    int pinv_iters;  /* nystrom: pseudo-inverse iterations (default 6) */
    int conv_kernel; /* nystrom: depthwise convolution skip on V of this (odd) length; 0: none */
    int block;       /* bigbird: block size (default 8) */
    int global;      /* bigbird: global blocks (default 1); localglobal: summary tokens (default 2) */
    int random;      /* bigbird: random key blocks per query block (default 1) */
    int flex;        /* flex without mods: 0 none, 1 ALiBi, 2 soft-cap 5, 3 causal mask */
    int seed;        /* random features and random blocks */
    /* memory, experts and state space (8.24-8.28, 9) */
    int latent;      /* mla: width of the compressed K/V latent c (default dim/4) */
    int q_latent;    /* mla: width of the compressed query latent (default dim/2) */
    int rope_dim;    /* mla: rotary columns of each head (default head_dim/2, even) */
    int budget;      /* h2o: cache entries kept per head (0: a share of the tokens seen, below) */
    int ratio;       /* h2o: percent of the tokens seen that the cache keeps (default 75) */
    int sinks;       /* h2o: first tokens always kept (default min(4, budget/4)) */
    int recent;      /* h2o: latest tokens always kept (default min(32, budget/4)) */
    int slots;       /* crossmem: learned memory tokens (default 8) */
    int memory;      /* crossmem: past tokens the streaming FIFO holds (default 256) */
    int fuse;        /* crossmem: fixed fusion ratio in percent; 0: a learned per-channel gate */
    int state;       /* mamba: state size N per channel (default 16) */
    int expand;      /* mamba: inner width = expand·dim (default 2) */
    int dt_rank;     /* mamba: rank of the step-size projection (default ceil(dim/16)) */
    int experts;     /* MoE feed-forward: routed experts (0: the dense MLP; deepseek, kimi: 4) */
    int route_k;     /* MoE: experts per token (default 2, at most experts) */
    int shared;      /* MoE: always-on shared experts (default 0; deepseek, kimi: 1) */
    int expert_hidden; /* MoE: hidden width of one expert (default mlp_hidden / (route_k + shared)) */
    int capacity;    /* MoE: tokens per expert, percent of an even share T·k/E; 0: unlimited */
    int sigmoid;     /* MoE: sigmoid gates (DeepSeek-V3) instead of softmax (V2) when 1 */
    int average;     /* h2o: rank by mean attention per later token (seed 001) instead of the sum (H2O) when 1 */
    /* time in attention and bounded caches (8.24): the K/V rows and mla */
    int time;        /* EA_TIME_NONE, EA_TIME_ROPE or EA_TIME_ALIBI (mla always turns its rotary columns) */
    int frame;       /* tokens per time step: token p sits at time p / frame (default 1; a tracker: its patches) */
    int cache_window; /* streaming: the K/V or latent cache keeps the latest N tokens after each call (0: all) */
} ea_attn_opts;
#define EA_ATTN_OPTS 40  /* ints in ea_attn_opts (checkpoints store them in this order) */
/* How a K/V row tells "how long ago" (opt.time); distances are relative,
   so time step 10,000 looks like time step 10 to the model:
   EA_TIME_ROPE turns every query and key column pair by its time step
   (rotary embedding, RoFormer), EA_TIME_ALIBI subtracts m_h·(t_q - t_k)
   from head h's scores, m_h = 2^(-8(h+1)/H) per time step (Press et al.). */
typedef enum ea_time_kind { EA_TIME_NONE = 0, EA_TIME_ROPE = 1, EA_TIME_ALIBI = 2 } ea_time_kind;

typedef struct ea_attn_config {
    int dim;          /* model width */
    int n_heads;      /* query heads; dim % n_heads == 0 */
    int n_kv_heads;   /* K/V heads for gqa (divides n_heads); 0: variant default */
    int causal;       /* 1: query i sees keys j <= i */
    ea_attn_opts opt; /* the sparse and approximate rows' options */
    const ea_flex_mods *mods;  /* flex: the caller's mods (kept alive by the caller), or NULL */
} ea_attn_config;

typedef struct ea_attn_variant ea_attn_variant;
struct ea_attn_state;
typedef struct ea_attn {
    const ea_attn_variant *variant;
    ea_attn_config cfg;
    int head_dim, kv_heads;
    ea_tensor *w[12]; /* the variant's parameters; each section names its slots */
    int rope_dim;     /* mla: rotary columns of each head */
    uint64_t seed;    /* random features and blocks: from opt.seed and the layer's name */
    int draw;         /* performer: which draw of random features (ea_attn_redraw) */
    float softcap;    /* flex example 2 */
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
    /* streaming (8.24): the next tokens against the layer's state; NULL: none */
    ea_tensor *(*step)(ea_ctx *ctx, const ea_attn *a, struct ea_attn_state *st, ea_tensor *x);
    double (*cache_floats)(const ea_attn *a);  /* per token; NULL: the state does not grow */
    int moe;  /* 1: blocks default to the MoE feed-forward (deepseek, kimi) */
};

EA_API int ea_attn_variant_count(void);
EA_API const ea_attn_variant *ea_attn_variant_at(int i);
EA_API const ea_attn_variant *ea_attn_variant_find(const char *name);
/* "mha, mha-sep, ..." for messages and --help */
EA_API const char *ea_attn_variant_names(char *buf, size_t n);
EA_API ea_status ea_attn_build(ea_attn *a, const char *name, const ea_attn_config *cfg,
                               ea_params *ps, const char *prefix, ea_error *err);
EA_API ea_tensor *ea_attn_forward(ea_ctx *ctx, const ea_attn *a, ea_tensor *x);
/* Performer: use draw number `draw` of the random features from now on
   (a pure function of the layer's seed and draw; other rows ignore it). */
EA_API void ea_attn_redraw(ea_attn *a, int draw);

/* ---- streaming: a layer's state across calls (8.24) ----------------------
   The K/V cache of mha / mha-sep / mqa / gqa / single / h2o, MLA's latent
   cache, crossmem's FIFO of past tokens and Mamba's recurrent state.
   ea_attn_step feeds the next t tokens of B sequences: token i of the call
   sits at position seen + i and attends to every cached token before it
   and to the call's own tokens (all of them, or those up to itself when
   the layer is causal: then k calls equal one causal call).  With
   opt.cache_window = W the cache keeps the W latest tokens (flat memory;
   the causal forward masks the same, so a time step per call equals it);
   with opt.time the rows know how long ago each entry was (8.7b). */
typedef struct ea_attn_state {
    int B;             /* sequences */
    int cap;           /* entries each (sequence, head) can hold */
    int max_chunk;     /* most tokens one call may feed */
    int len;           /* entries held now */
    int seen;          /* tokens fed so far: the next token's position */
    int budget;        /* h2o: entries kept after each call (0: no eviction) */
    int heads, kdim, vdim;  /* per entry and head: kdim key floats, vdim value floats */
    float *k, *v;      /* [B, heads, cap, kdim] and [B, heads, cap, vdim] */
    float *score;      /* h2o: attention each entry has received, [B, heads, cap] */
    int *pos;          /* position of each entry, [B, heads, cap] */
    float *ssm, *conv; /* mamba: state [B, N, inner] and the last k-1 conv inputs [B, k-1, inner] */
    size_t bytes;      /* heap bytes its buffers hold (each on a cache line, up to 64 bytes more for that) */
} ea_attn_state;
/* Size the state of layer a for B sequences: max_tokens bounds the tokens
   a cache holds (the whole stream for the K/V rows; h2o with a budget and
   crossmem need only budget + max_chunk and their FIFO), max_chunk the
   tokens of one call.  EA_ERR_CONFIG for a row without a streaming form. */
EA_API ea_status ea_attn_state_init(ea_attn_state *st, const ea_attn *a, int B, int max_tokens, int max_chunk,
                                    ea_error *err);
EA_API void ea_attn_state_reset(ea_attn_state *st);  /* empty it, keep the memory */
EA_API void ea_attn_state_free(ea_attn_state *st);
/* x [B, t, dim] -> [B, t, dim], advancing st; inference only (no gradient). */
EA_API ea_tensor *ea_attn_step(ea_ctx *ctx, const ea_attn *a, ea_attn_state *st, ea_tensor *x);
/* Floats a layer caches per token (all heads): 2·Hkv·dh for the K/V rows,
   latent + rope_dim for mla; 0 for rows whose state does not grow. */
EA_API double ea_attn_cache_floats(const ea_attn *a);
/* crossmem with an explicit memory: x [B, n, dim] attends to its learned
   slots and to mem [B, M, dim] (the layer's inputs at earlier tokens, or
   NULL); what ea_attn_step computes from its FIFO, with gradients. */
EA_API ea_tensor *ea_crossmem_forward(ea_ctx *ctx, const ea_attn *a, ea_tensor *x, ea_tensor *mem);

/* ---- mixture-of-experts feed-forward (9) -------------------------------- */
#define EA_MOE_MAX_EXPERTS 64
typedef struct ea_moe {
    int experts, k, shared, hidden, capacity, sigmoid, dim;
    ea_tensor *router;    /* [experts, dim], no bias */
    ea_tensor *fc1_w[EA_MOE_MAX_EXPERTS], *fc1_b[EA_MOE_MAX_EXPERTS];
    ea_tensor *fc2_w[EA_MOE_MAX_EXPERTS], *fc2_b[EA_MOE_MAX_EXPERTS];
    ea_tensor *sh1_w, *sh1_b, *sh2_w, *sh2_b; /* the shared experts, as one MLP of shared·hidden */
} ea_moe;
/* Routing statistics, accumulated by every forward until the caller clears them. */
typedef struct ea_moe_stats {
    long wanted[EA_MOE_MAX_EXPERTS]; /* token choices per expert, before the capacity limit */
    long kept[EA_MOE_MAX_EXPERTS];   /* ... and after it */
    long tokens;                     /* tokens routed */
} ea_moe_stats;
/* Experts, route_k, shared, expert_hidden, capacity and sigmoid from o
   (0: defaults, see ea_attn_opts); mlp_hidden sizes the default expert. */
EA_API ea_status ea_moe_build(ea_moe *m, const ea_attn_opts *o, int dim, int mlp_hidden, ea_params *ps,
                              const char *prefix, ea_error *err);
/* x [B, n, dim] -> [B, n, dim].  aux (may be NULL) receives aux_weight
   times the load-balancing loss; stats (may be NULL) accumulates routing. */
EA_API ea_tensor *ea_moe_forward(ea_ctx *ctx, const ea_moe *m, ea_tensor *x, float aux_weight, ea_tensor **aux,
                                 ea_moe_stats *stats);

/* ---- models: Vision Transformer (the tracker is one configuration) ----- */
typedef struct ea_vit_config {
    int img_size, in_chans, patch;
    int dim, depth, n_heads, n_kv_heads, mlp_hidden;
    int head_hidden;   /* 0: a single Linear head; else Linear-GELU-Linear */
    int out_dim;
    int causal;
    float pos_std;     /* position-embedding init N(0, pos_std^2) */
    char attn[32];     /* variant name */
    ea_attn_opts opt;  /* options of the attention rows (linformer's max_len defaults to the token count) */
    /* image classification (9): the ViT classifier and seed 001's hosts */
    int host;          /* EA_HOST_VIT (0), EA_HOST_MLP or EA_HOST_CNN */
    int pool;          /* vit: EA_POOL_MEAN (0) or EA_POOL_CLS (a class token);
                          cnn: EA_POOL_MEAN (stride-2 convs) or EA_POOL_MAX
                          (stride-1 convs, each followed by a 2x2 max-pool) */
    int tokens;        /* mlp: the hidden vector of tokens·dim splits into this many
                          tokens (1: seed 001's length-1 sequence) */
    int width;         /* cnn: channels of the first conv (the second has dim) */
    int residual;      /* mlp, cnn: the attention layer adds its input back,
                          x + attn(x) (0: attn(x), as seed 001's code) */
    float dropout;     /* inverted dropout after the embedding, each attention and
                          each MLP (training only; 0: none) */
} ea_vit_config;

typedef enum ea_host { EA_HOST_VIT = 0, EA_HOST_MLP = 1, EA_HOST_CNN = 2 } ea_host;
typedef enum ea_pool { EA_POOL_MEAN = 0, EA_POOL_CLS = 1, EA_POOL_MAX = 2 } ea_pool;

typedef struct ea_block {
    ea_tensor *ln1_w, *ln1_b, *ln2_w, *ln2_b;
    ea_tensor *fc1_w, *fc1_b, *fc2_w, *fc2_b;  /* the dense MLP (NULL with MoE) */
    ea_attn attn;
    ea_moe moe;       /* moe.experts > 0: the feed-forward is a mixture of experts */
} ea_block;

typedef struct ea_vit {
    ea_vit_config cfg;
    ea_params params;
    ea_tensor *patch_w, *patch_b, *pos;
    ea_tensor *cls;                       /* vit with EA_POOL_CLS: [1, 1, dim] */
    ea_tensor *conv_w[2], *bn[2][5];      /* cnn: convs; bn: weight, bias, running mean, var, count */
    ea_tensor *fc1_w, *fc1_b, *fc2_w, *fc2_b; /* mlp: the layers before and after attention */
    ea_block blocks[EA_MAX_DEPTH];
    ea_tensor *norm_w, *norm_b, *head1_w, *head1_b, *head2_w, *head2_b;
    ea_moe_stats *moe_stats;  /* [depth] routing counts when the blocks use MoE (else NULL) */
} ea_vit;

/* Seed 000's tracker: 2x32x32 -> (x, y), patch 4, dim 64, depth 4,
   4 heads, MLP 256, head 64-32-2. */
EA_API void ea_tracker_config_default(ea_vit_config *cfg, const char *attn);
/* Image classifiers for in_chans x img x img images and `classes` classes:
   EA_HOST_VIT: seed 002's ViT (patch 4, dim 48, depth 4, 4 heads, MLP 192,
   QKV bias, class token); EA_HOST_MLP: seed 001's MLP host with the hidden
   vector as 16 tokens of 32; EA_HOST_CNN: seed 001's CNN host (convs of 32
   and 64 channels, attention over the map's tokens, 4 heads). */
EA_API void ea_classifier_config_default(ea_vit_config *cfg, int host, const char *attn, int in_chans, int img_size,
                                         int classes);
EA_API ea_status ea_vit_init(ea_vit *m, const ea_vit_config *cfg, uint64_t seed, ea_error *err);
EA_API void ea_vit_free(ea_vit *m);
/* x [B, in_chans, img, img] -> [B, out_dim] (any host) */
EA_API ea_tensor *ea_vit_forward(ea_ctx *ctx, const ea_vit *m, ea_tensor *x);
/* The same; with MoE blocks, aux receives aux_weight times the sum of their
   load-balancing losses (NULL without) and m->moe_stats the routing. */
EA_API ea_tensor *ea_vit_forward_aux(ea_ctx *ctx, const ea_vit *m, ea_tensor *x, float aux_weight, ea_tensor **aux);
EA_API double ea_vit_flops(const ea_vit *m);  /* forward FLOPs per image */
EA_API void ea_vit_redraw(ea_vit *m, int draw);  /* ea_attn_redraw on every block */

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
/* A classifier's training gradient on a batch, in chunks (gradient
   accumulation): zeroes m's gradients, then for each chunk of up to `chunk`
   images (0: about EA_CHUNK_BYTES of tape each) resets ctx, runs the forward in training
   mode and backpropagates the chunk's label-smoothed cross-entropy (plus
   aux_weight times the MoE balance loss) weighted by its share of the
   batch, so the gradients add up to the batch mean's.  x holds B images
   [B, in_chans, img, img]; loss (may be NULL) receives the batch's mean
   loss, hits (may be NULL) its top-1 hits.  Models whose forward depends on
   the whole batch (batch norm, MoE routing) take it in one chunk. */
EA_API ea_status ea_classifier_grad(ea_ctx *ctx, const ea_vit *m, const float *x, const int *labels, int B,
                                    int chunk, float smoothing, float aux_weight, float *loss, int *hits);
/* The chunk ea_classifier_grad uses for `want` (0: the default). */
EA_API int ea_classifier_chunk(const ea_vit *m, int B, int want);

/* ---- data-parallel training ----------------------------------------------
   Several processes (ranks) train one model: each holds the same weights and
   optimizer state, takes its own slice of every global batch, builds the
   gradient of its slice's mean loss, and then all of them combine their
   gradients into the global batch's before the (identical) AdamW step.  The
   header knows no MPI or NCCL: the caller supplies the sum across ranks as a
   function (examples/dist.h has one for MPI).  The contract of `allreduce`:
   called by every rank with the same n, in the same order, it replaces buf
   by the element-wise sum over ranks, bit-identical on every rank (sum in a
   fixed rank order, not in arrival order, or training drifts apart), and
   returns EA_OK or a status with err filled.  size 1 needs no function. */
typedef ea_status (*ea_allreduce_fn)(void *user, float *buf, size_t n, ea_error *err);
typedef struct ea_dist {
    int rank, size;             /* this process, and how many there are */
    ea_allreduce_fn allreduce;  /* the sum over ranks (NULL when size is 1) */
    void *user;                 /* passed to allreduce */
} ea_dist;
/* One process: rank 0 of 1. */
EA_API void ea_dist_single(ea_dist *d);
/* The slice [*lo, *hi) of a global batch of n samples that `rank` of
   `size` takes: contiguous, in rank order, sizes differing by at most one,
   together covering 0..n-1 exactly once (a rank may get none when n < size). */
EA_API void ea_shard(int n, int rank, int size, int *lo, int *hi);
/* After each rank's backward: weight its gradient (that of the mean loss
   over its local_n samples) by local_n / global_n, then call d->allreduce
   once on the whole flat gradient buffer ps->grad (ps->n floats, parameters
   in registration order, buffers' slots zero), so every rank holds the
   gradient of the global batch's mean loss.  A rank with local_n = 0 must
   still call it (with zeroed gradients).  One rank: nothing changes. */
EA_API ea_status ea_dist_grads(const ea_dist *d, ea_params *ps, int local_n, int global_n, ea_error *err);
/* Average the buffers (batch norm's running statistics) over the ranks, so
   every rank evaluates and saves the same model; the forward normalises
   over each rank's slice (no synchronised batch norm).  tmp holds ps->n
   floats. */
EA_API ea_status ea_dist_buffers(const ea_dist *d, ea_params *ps, float *tmp, ea_error *err);

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
       u32 version (4)  u32 table_bytes  (the table that follows)
       config: 11 x i32, f32 pos_std, char attn[32], u32 n_opts, n_opts x i32
               (ea_attn_opts in declaration order; version 2 held 17 without
               the count, version 1 none), then (version 4) u32 n_host,
               n_host x i32: host, pool, tokens, width, residual, dropout
               (f32 bits)
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
   /usr/share/datasets/fashion-mnist; ea_idx_load reads either form.
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

/* gzip (RFC 1952) around DEFLATE (RFC 1951): the whole of in -> *out
   (EFFATTN_MALLOC'd, *out_n bytes), its CRC-32 and length checked.  So
   ea_idx_load reads Debian's .gz files as they are shipped. */
EA_API ea_status ea_gunzip(const unsigned char *in, size_t n, unsigned char **out, size_t *out_n, ea_error *err);
/* A PNG file of w x h pixels, `channels` 1 (grey) or 3 (RGB), 8 bits each,
   rows top to bottom: compressed by this header's DEFLATE encoder (fixed
   codes, LZ77), no library.  For pictures of attention weights. */
EA_API ea_status ea_png_write(const char *path, int w, int h, int channels, const unsigned char *pixels, ea_error *err);

/* A labelled image set for the classifiers, pixels as bytes. */
typedef struct ea_images {
    int n, c, h, w, classes;
    unsigned char *pixels;  /* [n, c, h, w] */
    unsigned char *labels;  /* [n] */
} ea_images;
/* Fashion-MNIST from DIR (default /usr/share/datasets/fashion-mnist):
   {train,t10k}-{images-idx3,labels-idx1}-ubyte, gzipped or not. */
EA_API ea_status ea_images_fashion_mnist(ea_images *train, ea_images *test, const char *dir, ea_error *err);
/* CIFAR-10 binary version from DIR: data_batch_1..5.bin and test_batch.bin */
EA_API ea_status ea_images_cifar10(ea_images *train, ea_images *test, const char *dir, ea_error *err);
/* n synthetic 32x32 RGB images of 10 shapes (disc, ring, square, frame,
   triangle, plus, star, half-disc, L, two dots) of random size, position,
   rotation and colour, lighter than their noisy background of another
   random colour; a pure function of seed. */
EA_API ea_status ea_images_shapes(ea_images *out, int n, uint64_t seed, ea_error *err);
EA_API void ea_images_free(ea_images *im);
/* Per-channel mean and standard deviation of pixel / 255 over the set */
EA_API void ea_images_stats(const ea_images *im, float *mean, float *std);
/* Images idx[0..n) -> x [n, c, h, w] as (pixel / 255 - mean) / std and
   their labels.  With rng: a random crop of the image zero-padded by
   crop_pad pixels, and a horizontal flip with probability 1/2 when flip.
   EA_ERR_ARG (nothing written past the first bad one) for an index outside
   [0, im->n) or a padding outside [0, image size). */
EA_API ea_status ea_images_batch(const ea_images *im, const int *idx, int n, const float *mean, const float *std,
                                 int crop_pad, int flip, ea_rng *rng, float *x, int *labels);

/* ---- CUDA (section 13; compiled only with EFFATTN_CUDA and nvcc -x cu) ---
   Device memory, kernels named after their CPU twins (ea_layernorm_fwd /
   ea_layernorm_fwd_cuda) over device pointers, queued on the handle's
   stream, and the tracker-family ViT placed on the device (ea_vit_cuda:
   inference and training; track --device cuda).  Every call returns a
   status; a CUDA or cuBLAS error becomes EA_ERR_NOMEM (allocation) or
   EA_ERR_ARG / EA_ERR_CONFIG with the library's own message in err.  The
   general tape does not run on the device. */
#ifdef EFFATTN_CUDA
typedef struct ea_cuda {
    int device;
    void *stream;  /* cudaStream_t */
    void *blas;    /* cublasHandle_t, bound to the stream */
    void *blas_ws; /* cuBLAS's workspace, fixed, so that captured graphs never allocate */
    float *scratch;/* the column sums' partial rows (stream-ordered reuse) */
    unsigned *tickets; /* the column sums' per-launch counters, zero between launches */
} ea_cuda;
EA_API ea_status ea_cuda_init(ea_cuda *cu, int device, ea_error *err);
EA_API void ea_cuda_free(ea_cuda *cu);
EA_API ea_status ea_cuda_alloc(ea_cuda *cu, float **dev, size_t n, ea_error *err);
EA_API ea_status ea_cuda_alloc_bytes(ea_cuda *cu, void **dev, size_t bytes, ea_error *err);
EA_API void ea_cuda_release(void *dev);
/* host <-> device copies of n floats (or bytes), asynchronous on the stream
   (the host buffer must stay valid until ea_cuda_sync) */
EA_API ea_status ea_cuda_put(ea_cuda *cu, float *dev, const float *host, size_t n, ea_error *err);
EA_API ea_status ea_cuda_get(ea_cuda *cu, float *host, const float *dev, size_t n, ea_error *err);
EA_API ea_status ea_cuda_put_bytes(ea_cuda *cu, void *dev, const void *host, size_t bytes, ea_error *err);
EA_API ea_status ea_cuda_get_bytes(ea_cuda *cu, void *host, const void *dev, size_t bytes, ea_error *err);
EA_API ea_status ea_cuda_sync(ea_cuda *cu, ea_error *err);
EA_API ea_status ea_linear_fwd_cuda(ea_cuda *cu, float *out, const float *inp, const float *w, const float *b, int M, int K,
                                    int N, ea_error *err);
EA_API ea_status ea_linear_bwd_cuda(ea_cuda *cu, float *dinp, float *dw, float *db, const float *dout, const float *inp,
                                    const float *w, int M, int K, int N, ea_error *err);
EA_API ea_status ea_layernorm_fwd_cuda(ea_cuda *cu, float *out, float *mean, float *rstd, const float *x, const float *w,
                                       const float *b, int N, int C, float eps, ea_error *err);
EA_API ea_status ea_layernorm_bwd_cuda(ea_cuda *cu, float *dx, float *dw, float *db, const float *dout, const float *x,
                                       const float *mean, const float *rstd, const float *w, int N, int C, ea_error *err);
EA_API ea_status ea_gelu_fwd_cuda(ea_cuda *cu, float *out, const float *x, size_t n, ea_error *err);
EA_API ea_status ea_gelu_bwd_cuda(ea_cuda *cu, float *dx, const float *dout, const float *x, size_t n, ea_error *err);
EA_API ea_status ea_softmax_fwd_cuda(ea_cuda *cu, float *out, const float *x, int rows, int cols, ea_error *err);
/* Exact attention, flash style (online softmax, nothing n x n stored):
   q [B, n, H, dh], k and v [B, n, Hkv, dh] (Hkv divides H), out [B, n, H, dh],
   lse [B, H, n] the log-sum-exp of each query's scaled scores (the
   backward's input); dh <= 256.  The backward accumulates (+=) dq, dk, dv.
   On sm_80 or newer the forward of heads up to 64 wide (a multiple of 4)
   runs on tensor cores in 3xTF32 (~21 of fp32's 24 bits a product; ~1e-6
   relative on the output), and so does the backward of sequences too long
   for the short kernels' shared memory (~2e-5 relative on gradients that
   sum a thousand queries, where the fp32 cores reach ~3e-6); otherwise
   the fp32 cores. */
EA_API ea_status ea_attention_fwd_cuda(ea_cuda *cu, float *out, float *lse, const float *q, const float *k, const float *v,
                                       int B, int n, int H, int Hkv, int dh, int causal, ea_error *err);
EA_API ea_status ea_attention_bwd_cuda(ea_cuda *cu, float *dq, float *dk, float *dv, const float *dout, const float *out,
                                       const float *lse, const float *q, const float *k, const float *v, int B, int n,
                                       int H, int Hkv, int dh, int causal, ea_error *err);
/* The same fp32 attention restricted to a sparse pattern (8.3's built-in
   masks): key k is visible to query q when |q - k| <= window (window >= 0),
   when q < n_global or k < n_global, or, with block > 0, when the blocks
   q / block and k / block are at most block_window apart or k's block is
   one of rand[(q / block)·n_random + r], r < n_random (device memory,
   ceil(n / block)·n_random ints; -1: none).  local is window w; localglobal
   window w and n_global g; bigbird block, block_window 1, n_global and the
   random blocks 8.12 draws.  Causal masking applies on top.  Every query
   must see its own key (window >= 0, or block > 0): no row is empty.  The
   forward on tensor cores (3xTF32, as ea_attention_fwd_cuda) visits only
   the 64 x 64 tiles of (queries, keys) that the pattern shows, so it costs
   the pattern's work (a band of half-width w: O(n·w)), and so does the
   3xTF32 backward of sequences too long for the short kernels; the
   fp32-core kernels (the short kernels' backward, heads wider than 64 or
   not a multiple of 4) test every pair at exact attention's cost.  The backward adds into dq, dk, dv like
   ea_attention_bwd_cuda. */
typedef struct ea_cuda_pattern {
    int window, n_global, block, block_window, n_random;
    const int *rand;
} ea_cuda_pattern;
EA_API ea_status ea_attention_fwd_pattern_cuda(ea_cuda *cu, float *out, float *lse, const float *q, const float *k,
                                               const float *v, int B, int n, int H, int Hkv, int dh, int causal,
                                               const ea_cuda_pattern *pat, ea_error *err);
EA_API ea_status ea_attention_bwd_pattern_cuda(ea_cuda *cu, float *dq, float *dk, float *dv, const float *dout, const float *out,
                                               const float *lse, const float *q, const float *k, const float *v, int B, int n,
                                               int H, int Hkv, int dh, int causal, const ea_cuda_pattern *pat, ea_error *err);
/* The same attention on tensor cores (sm_80 or newer): q, k, v, out, dout
   and the gradients in bfloat16 (raw bits; ea_bf16_from_float rounds a
   float to nearest even), lse in float; dh 32 or 64, device buffers
   aligned to 16 bytes.  Products take bf16 operands (P and dS are rounded
   to bf16 too) and accumulate in fp32; the softmax is fp32.  The backward
   writes (=, not +=) dq, dk, dv, in a fixed order (no atomics); B·H·n must
   fit the handle's scratch (4M floats). */
EA_API ea_status ea_attention_fwd_bf16_cuda(ea_cuda *cu, uint16_t *out, float *lse, const uint16_t *q, const uint16_t *k,
                                            const uint16_t *v, int B, int n, int H, int Hkv, int dh, int causal, ea_error *err);
EA_API ea_status ea_attention_bwd_bf16_cuda(ea_cuda *cu, uint16_t *dq, uint16_t *dk, uint16_t *dv, const uint16_t *dout,
                                            const uint16_t *out, const float *lse, const uint16_t *q, const uint16_t *k,
                                            const uint16_t *v, int B, int n, int H, int Hkv, int dh, int causal, ea_error *err);
/* The bf16 attention restricted to a pattern (ea_cuda_pattern's rule), all
   three kernels visiting only the tiles it shows: forward, dQ and dK/dV
   cost the pattern's work, not exact attention's. */
EA_API ea_status ea_attention_fwd_bf16_pattern_cuda(ea_cuda *cu, uint16_t *out, float *lse, const uint16_t *q, const uint16_t *k,
                                                    const uint16_t *v, int B, int n, int H, int Hkv, int dh, int causal,
                                                    const ea_cuda_pattern *pat, ea_error *err);
EA_API ea_status ea_attention_bwd_bf16_pattern_cuda(ea_cuda *cu, uint16_t *dq, uint16_t *dk, uint16_t *dv, const uint16_t *dout,
                                                    const uint16_t *out, const float *lse, const uint16_t *q, const uint16_t *k,
                                                    const uint16_t *v, int B, int n, int H, int Hkv, int dh, int causal,
                                                    const ea_cuda_pattern *pat, ea_error *err);
/* The forward on TF32 tensor cores from fp32 buffers (sm_80 or newer): q,
   k, v and P are rounded to TF32 (8 exponent bits, 10 mantissa bits) as
   they enter a product; accumulation and softmax are fp32 (relative error
   ~1e-3 against fp32).  dh 32 or 64, buffers aligned to 16 bytes; the same
   layout and lse as ea_attention_fwd_cuda, whose backward takes them. */
EA_API ea_status ea_attention_fwd_tf32_cuda(ea_cuda *cu, float *out, float *lse, const float *q, const float *k, const float *v,
                                            int B, int n, int H, int Hkv, int dh, int causal, ea_error *err);
EA_API uint16_t ea_bf16_from_float(float x);
EA_API float ea_bf16_to_float(uint16_t h);
/* AdamW on n values (ea_adamw_step's update), at step t >= 1 */
EA_API ea_status ea_adamw_cuda(ea_cuda *cu, float *p, const float *g, float *m, float *v, size_t n, const ea_adamw *opt,
                               ea_error *err);
/* A ViT placed on the device (9, 13): the vit host, pooled by the mean or
   a class token, with attention mha, single, local, bigbird, mha-sep, mqa
   or gqa (the tracker's models and seed 002's classifier; local's and
   bigbird's patterns as the CPU rows draw them); other rows, hosts, time
   options and experts are refused with EA_ERR_CONFIG.  Init copies m's parameters to the device (m may be freed
   afterwards) and allocates every activation for up to max_batch images;
   later calls allocate nothing.  ea_vit_cuda_forward queues the forward
   (inference: dropout off) of the B images in ea_vit_cuda_input() [B, C,
   S, S], writing ea_vit_cuda_output() [B, out_dim], both device memory.
   ea_vit_cuda_predict takes host arrays and returns when y is written;
   it runs batches of up to fused_max images as one kernel (the whole
   forward in one cooperative launch that reads the images from, and writes
   y to, pinned host memory mapped into the GPU: the least latency).
   Larger batches, and every ea_vit_cuda_forward, run as one kernel a block
   an image (blockwise: the whole forward in the block's shared memory,
   linear layers and attention on tensor cores in 3xTF32, ~1e-6 from the
   fp32 kernels) where the model fits it (sm_80+, up to 96 tokens, dim up
   to 128, heads up to 32 wide, widths multiples of 8: the tracker and seed
   002's classifiers), else by the layer-by-layer kernels, which predict
   replays as a CUDA graph captured once per batch size. */
struct ea__vcu;
typedef struct ea_vit_cuda {
    ea_cuda *cu;
    ea_vit_config cfg;
    int max_batch;
    size_t n;               /* parameters */
    float *params, *grad, *m, *v; /* device: ea_params' flat layout, 4 x n floats */
    float *act;             /* device: the activations of max_batch images */
    size_t act_n;
    struct ea__vcu *plan;   /* host: where each parameter and activation lives */
    void *graph;            /* cudaGraphExec_t of the forward at graph_batch images */
    int graph_batch;
    int fused_max;          /* predict runs up to this many images as one fused kernel (set by init from
                               what the GPU holds at once; lower it to use the graph, 0: always;
                               raising it above init's value changes nothing) */
    int blockwise;          /* 1 (init's choice where the model fits): forward, and predict past fused_max,
                               run as one kernel a block an image; 0: the layer-by-layer kernels */
} ea_vit_cuda;
EA_API ea_status ea_vit_cuda_init(ea_vit_cuda *d, ea_cuda *cu, const ea_vit *m, int max_batch, ea_error *err);
EA_API void ea_vit_cuda_free(ea_vit_cuda *d);
EA_API float *ea_vit_cuda_input(const ea_vit_cuda *d);
EA_API const float *ea_vit_cuda_output(const ea_vit_cuda *d);
EA_API ea_status ea_vit_cuda_forward(ea_vit_cuda *d, int B, ea_error *err);
EA_API ea_status ea_vit_cuda_predict(ea_vit_cuda *d, const float *x, float *y, int B, ea_error *err);
/* One training step on B images x [B, C, S, S] and targets t [B, out_dim]
   (host memory), with several ranks (ea_vit_cuda_dist) this rank's slice
   of a global batch of global_B images (0: B times the ranks, equal
   slices; one rank: 0 or B): forward, MSE loss, backward into d->grad,
   the gradient clipped to norm `clip` (0: off) and AdamW with opt, whose
   step count it advances (as ea_adamw_step).  The first call allocates the
   gradients' device memory, later ones nothing.  *loss (NULL: not
   wanted) receives the batch's loss before the update, which waits for the
   step to finish; without it the call returns once the work is queued.
   Init copies the host model's AdamW moments too, so a resumed checkpoint
   carries on. */
EA_API ea_status ea_vit_cuda_train_step(ea_vit_cuda *d, const float *x, const float *t, int B, int global_B, ea_adamw *opt,
                                        float clip, float *loss, ea_error *err);
/* The same step for a classifier: softmax cross-entropy against labels[B]
   (0 .. out_dim - 1) with label smoothing s in [0, 1], the loss of
   ea_cross_entropy_smooth. */
EA_API ea_status ea_vit_cuda_train_step_ce(ea_vit_cuda *d, const float *x, const int *labels, int B, int global_B,
                                           ea_adamw *opt, float clip, float smoothing, float *loss, ea_error *err);
/* The parameters and AdamW moments back into m, the host model that d was
   made from (or one of the same configuration), e.g. to save a checkpoint. */
EA_API ea_status ea_vit_cuda_pull(ea_vit_cuda *d, ea_vit *m, ea_error *err);
/* Data-parallel training on several GPUs (one rank a GPU; ea_dist above):
   from now on each training step weights d->grad by B / global_B after
   the backward, calls dist->allreduce(user, d->grad, d->n, err) with
   d->grad in device memory, then clips and updates.  The sum must be in
   place before work queued later on d->cu's stream runs: NCCL's
   ncclAllReduce on that stream (examples/dist.h) is.  The step is then two
   CUDA graphs (forward and backward; clip and AdamW) with the call
   between them.  A distribution of one rank restores the single graph. */
EA_API ea_status ea_vit_cuda_dist(ea_vit_cuda *d, const ea_dist *dist, ea_error *err);
#endif

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

#include <float.h>
#include <limits.h>
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
#define EA_OMP_FOR_DYNAMIC_IF(cond) EA_PRAGMA_(omp parallel for schedule(dynamic) if(cond))
#else
#define EA_OMP_FOR_IF(cond)
#define EA_OMP_FOR_DYNAMIC_IF(cond)
#endif
/* Full unrolling of the small fixed loops of a micro-kernel, so that its
   accumulator tile lives in registers (gcc -O2 would otherwise keep it in
   memory).  The trip counts are literals only once the kernel is inlined
   (ea__gemm_tile's mt and nv).  Clang unrolls a callee's loops before
   inlining it: told "GCC unroll 16" (it reads that spelling too), it
   unrolled them for a run-time count there, and every inlined copy kept
   that form, the tile in memory (GEMMs at 17-19% of one core's peak, the
   flash forward 4x gcc's time).  Its "unroll(full)" waits for a count it
   knows: inlined, the tile is registers again.  One thread of this
   project's Xeon VM (model 167), rounds in turn, old -> new: clang 14,
   bench --gemm 37-47 -> 124-161 GFLOP/s, the tracker's batch 32 24.3-27.3
   -> 8.8-9.9 ms, its training step 100-103 -> 40.0, the flash forward at
   heads 8 x 64, n = 1,024 57-61 -> 16.2-16.8 (gcc 12: 14-15); clang 16
   the GEMMs 3.3-3.6x, the tracker 2.4-2.9x faster.  nvcc's front end
   reads neither (and warns), so a CUDA build leaves the unrolling to the
   compiler. */
#if defined(__clang__) && !defined(__CUDACC__)
#define EA_UNROLL EA_PRAGMA_(clang loop unroll(full))
#elif defined(__GNUC__) && !defined(__CUDACC__)
#define EA_UNROLL EA_PRAGMA_(GCC unroll 16)
#else
#define EA_UNROLL
#endif
/* Two steps of a micro-kernel's k loop a pass (ea__gemm_tile); gcc and
   clang both read this spelling as a count for any trip count. */
#if (defined(__GNUC__) || defined(__clang__)) && !defined(__CUDACC__)
#define EA_UNROLL_2 EA_PRAGMA_(GCC unroll 2)
#else
#define EA_UNROLL_2
#endif
/* Work (multiply-adds) below which threads cost more than they save. */
#define EA_PAR_MIN_WORK 65536.0

/* The spans that split n values, at `cost` FLOPs each, over the team:
   one a thread, in whole 64-byte lines (whole vectors of every build, so
   each value takes the vector or scalar path it takes on one thread: the
   same bits) and of at least EA_SPAN values; n itself, one span, where a
   team does not pay or one is running already.  Spans of a fixed 4,096
   values had left threads uneven: the tracker's GELU at batch 32 is 130
   of them, 9 for some of 16 threads and 8 for others; at batch 1 (16,640
   values) 5 over 4 threads, one thread doing two. */
#define EA_SPAN 4096
static size_t ea__span_len(size_t n, double cost) {
#ifdef _OPENMP
    if (n > EA_SPAN && (double)n * cost >= EA_PAR_MIN_WORK && !omp_in_parallel() && omp_get_max_threads() > 1) {
        size_t nt = (size_t)omp_get_max_threads(), len = (n + nt - 1) / nt;
        return ((len > EA_SPAN ? len : EA_SPAN) + 15) / 16 * 16;
    }
#else
    (void)cost;
#endif
    return n > 0 ? n : 1;
}

/* fn(arg, o, len) for the spans [o, o + len) that ea__span_len cuts [0, n)
   into, over threads when there are two or more: the one copy of the
   split, so that every elementwise loop (GELU, the residual adds, the
   zeroing of gradients, AdamW) cuts its values the same way.  They ran on
   one thread while the GEMMs around them ran on all: at batch 32 and 16
   threads they held the step back (Amdahl). */
typedef void (*ea__chunk_fn)(const void *arg, size_t o, size_t len);
static void ea__par_chunks(ea__chunk_fn fn, const void *arg, size_t n, double cost) {
    size_t len = ea__span_len(n, cost);
    long c, nc = (long)((n + len - 1) / len);
    if (nc <= 1) { /* no region at all (an inactive one still costs its entry) */
        if (n) fn(arg, 0, n);
        return;
    }
    EA_OMP_FOR_IF(1)
    for (c = 0; c < nc; c++) {
        size_t o = (size_t)c * len;
        fn(arg, o, n - o < len ? n - o : len);
    }
}

/* The common case: fn(y, a, b, n) on the spans, each array offset alike. */
typedef void (*ea__span_fn)(float *y, const float *a, const float *b, size_t n);
typedef struct {
    ea__span_fn fn;
    float *y;
    const float *a, *b;
} ea__span_job;
static void ea__span_chunk(const void *arg, size_t o, size_t len) {
    const ea__span_job *j = (const ea__span_job *)arg;
    j->fn(j->y + o, j->a ? j->a + o : NULL, j->b ? j->b + o : NULL, len);
}
static void ea__par_span(ea__span_fn fn, float *y, const float *a, const float *b, size_t n, double cost) {
    ea__span_job j;
    j.fn = fn;
    j.y = y;
    j.a = a;
    j.b = b;
    ea__par_chunks(ea__span_chunk, &j, n, cost);
}

/* fn(arg, i) for i in [0, n): over threads when par, else on the calling
   thread.  Not `omp parallel for if(par)`: a region whose `if` is false
   still counts as a (one-thread, inactive) region, so a GEMM inside it
   forks a nested team, and libgomp starts the threads of a nested team
   afresh each time (36 µs a fork against 0.6 at top level, 2 threads,
   Zen 3; nystrom's training step at 16 threads took 250 ms that way
   against 30).  For items that may fork teams of their own.  Inside a
   team already, the items run on the calling thread. */
typedef void (*ea__item_fn)(const void *arg, int i);
static void ea__par_items(ea__item_fn fn, const void *arg, int n, int par) {
    int i;
#ifdef _OPENMP
    if (par && n > 1 && !omp_in_parallel()) {
        _Pragma("omp parallel for schedule(static)")
        for (i = 0; i < n; i++) fn(arg, i);
        return;
    }
#endif
    (void)par;
    for (i = 0; i < n; i++) fn(arg, i);
}

/* fn(arg, i0, i1) over items [0, n) in static shares that a slow core does
   not hold up; over a team when par (and not inside one already), else on
   the calling thread.  A static split gives each thread the same work and,
   call after call, the same items: those whose rows its cache holds from the
   op before (the flash kernels' queries, from a product split the same way;
   ea__gemm_steal does the same for a product's row tiles).  But a team runs
   at the pace of its slowest member, and a core is not always a whole core:
   on the device's 16-core VM an FMA loop on every thread at once ran 2-6 of
   them at about half the others' rate (81-107 GFLOP/s against 110-180; two
   virtual CPUs on one physical core, it seems, which ones changing from
   minute to minute: bench --peak prints each thread's rate), and a laptop's
   efficiency cores do the same to a static split.  So each thread's static
   share is taken an item at a time from its own counter, front first; a
   thread done with its share takes the next items of the others' shares
   through their counters (an atomic fetch-and-add: every item runs exactly
   once).  Most items still run on their owner; only the tail moves, to the
   cores that are free.  An item is computed alike whoever runs it: the same
   bits as the static split.  Where all items were handed out dynamically
   instead (schedule dynamic), the tracker's attention at batch 32 on 16
   threads had lost its locality and taken 1573-1654 us a step against
   1175-1451. */
typedef void (*ea__range_fn)(const void *arg, int i0, int i1);
typedef struct {
    int next;    /* the share's next item */
    int pad[15]; /* one counter a 64-byte line */
} ea__steal_slot;
static int ea__steal_forced = 0; /* tests: 1 starts every thread on the next thread's share */
#define EA_STEAL_MAX 256         /* larger teams keep the plain static split */
static void ea__par_steal(ea__range_fn fn, const void *arg, int n, int par) {
#ifdef _OPENMP
    ea__steal_slot slots[EA_STEAL_MAX];
    if (par && n > 1 && !omp_in_parallel() && omp_get_max_threads() > 1) {
        if (omp_get_max_threads() > EA_STEAL_MAX) {
            EA_OMP_FOR_IF(1)
            for (int i = 0; i < n; i++) fn(arg, i, i + 1);
            return;
        }
        memset(slots, 0, (size_t)omp_get_max_threads() * sizeof slots[0]);
        _Pragma("omp parallel")
        {
            int nt = omp_get_num_threads(), t = omp_get_thread_num(), v, c, u;
            for (v = 0; v < nt; v++) { /* its own share first, then the next threads' */
                int s0, s1;
                u = (t + v + ea__steal_forced) % nt;
                s0 = (int)((long)n * u / nt);
                s1 = (int)((long)n * (u + 1) / nt);
                for (;;) {
                    _Pragma("omp atomic capture")
                    c = slots[u].next++;
                    if (s0 + c >= s1) break;
                    fn(arg, s0 + c, s0 + c + 1);
                }
            }
        }
        return;
    }
#endif
    (void)par;
    (void)ea__steal_forced; /* read by the team alone */
    fn(arg, 0, n);
}

static void ea__zero_n(float *y, const float *a, const float *b, size_t n) { /* a span of ea__par_span */
    (void)a; (void)b;
    memset(y, 0, n * sizeof(float));
}

static void ea__copy_n(float *y, const float *a, const float *b, size_t n) { /* y = a */
    (void)b;
    memcpy(y, a, n * sizeof(float));
}

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
       ea_vexp(x): exp, built on the above   ea_vexp2(t): 2^t, for softmax in base 2
       ea_vload_n(p, n), ea_vstore_n(p, a, n): the first n lanes only
           (0 <= n <= EA_VW; loads give 0 past n, nothing past n is touched)
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
EA_INLINE ea_vf ea_vload_n(const float *p, int n) { return _mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1u), p); }
EA_INLINE void ea_vstore_n(float *p, ea_vf a, int n) { _mm512_mask_storeu_ps(p, (__mmask16)((1u << n) - 1u), a); }
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
/* lane i is on when i < n: a signed compare of (0..7) against n */
EA_INLINE __m256i ea__vmask_n(int n) { return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)); }
EA_INLINE ea_vf ea_vload_n(const float *p, int n) { return _mm256_maskload_ps(p, ea__vmask_n(n)); }
EA_INLINE void ea_vstore_n(float *p, ea_vf a, int n) { _mm256_maskstore_ps(p, ea__vmask_n(n), a); }
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
EA_INLINE ea_vf ea_vload_n(const float *p, int n) {
    float t[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    memcpy(t, p, (size_t)n * sizeof(float));
    return vld1q_f32(t);
}
EA_INLINE void ea_vstore_n(float *p, ea_vf a, int n) {
    float t[4];
    vst1q_f32(t, a);
    memcpy(p, t, (size_t)n * sizeof(float));
}
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
EA_INLINE ea_vf ea_vpow2i(ea_vf n) { /* as the vector forms: 2^-127 has exponent bits 0, i.e. 0 */
    return n <= -127.0f ? 0.0f : ldexpf(1.0f, (int)n);
}
EA_INLINE float ea_vhsum(ea_vf a) { return a; }
EA_INLINE float ea_vhmax(ea_vf a) { return a; }
EA_INLINE ea_vf ea_vload_n(const float *p, int n) { return n > 0 ? *p : 0.0f; }
EA_INLINE void ea_vstore_n(float *p, ea_vf a, int n) {
    if (n > 0) *p = a;
}
#endif

#define EA_LOG2E 1.44269504088896341f
#define EA_LN2 0.693147180559945309f

/* 2^n · 2^f for integral n in [-127, 127] and |f| <= 1/2: 2^f by a
   degree-6 polynomial (fitted for the least maximal relative error, 1e-7
   evaluated in float), 2^n built in the exponent bits (n = -127 gives 0). */
EA_INLINE ea_vf ea__exp2_parts(ea_vf n, ea_vf f) {
    ea_vf p = ea_vset1(1.5353361960e-04f);
    p = ea_vfma(p, f, ea_vset1(1.3398873853e-03f));
    p = ea_vfma(p, f, ea_vset1(9.6184369177e-03f));
    p = ea_vfma(p, f, ea_vset1(5.5503323674e-02f));
    p = ea_vfma(p, f, ea_vset1(2.4022647738e-01f));
    p = ea_vfma(p, f, ea_vset1(6.9314718246e-01f));
    p = ea_vfma(p, f, ea_vset1(1.0f));
    return ea_vmul(p, ea_vpow2i(n));
}

/* exp on the vector layer (Cephes' expf reduction): x = n·ln2 + r with
   |r| <= ln2/2 (ln2 in two parts, so n·ln2's high part is exact), then
   2^n · 2^(r·log2(e)), the polynomial ea_vexp2 takes too.  Relative error
   below 2e-7 (simd-math); inputs below -88 (and -inf, the masked scores)
   give exactly 0.  Against its own polynomial for exp(r) (Cephes'), one
   Zen 4 thread, 4,096 values in cache: 0.279 -> 0.274 ns a value, the
   largest error 1.18e-7 -> 1.04e-7. */
EA_INLINE ea_vf ea_vexp(ea_vf x) {
    ea_vf n, r;
    x = ea_vmin(ea_vmax(x, ea_vset1(-88.0f)), ea_vset1(88.0f));
    n = ea_vround(ea_vmul(x, ea_vset1(EA_LOG2E)));
    r = ea_vsub(x, ea_vmul(n, ea_vset1(0.693359375f)));
    r = ea_vsub(r, ea_vmul(n, ea_vset1(-2.12194440e-4f)));
    return ea__exp2_parts(n, ea_vmul(r, ea_vset1(EA_LOG2E)));
}

/* 2^t for t <= 127, for softmax in base 2 (flash attention takes its
   scores times log2(e), folded into the scale of its packed Q, so each
   entry costs one exp2 and no range reduction): t below about -126, and
   -inf (the masked scores), give exactly 0; t = 0 gives exactly 1.
   Relative error below 2e-7 (tests: simd-math, against exp2 in double).
   AVX-512 splits t at the nearest sixteenth k: 2^t = 2^floor(k) ·
   2^(k - floor(k)) · 2^(t - k), the middle factor from a table of 16
   (one permute across the register), the last a cubic in |t - k| <= 1/32,
   and 2^floor(k) applied by one scalef (exact: the result is a normal
   float): 10 operations, 4 of them multiplies (the FMA pipes, which the
   tile products keep busy), where the polynomial form below takes 7 of 14
   and ea_vexp 10 of 19.  y = t + 1.5·2^19 rounds t to k (a float's last
   bit there is 1/16) and holds 16k in its low mantissa bits, bits 0-3 of
   which index the table; y - 1.5·2^19 is k exactly.  A roundscale to
   sixteenths had found k (the bits of the two adds for every float t
   below 2^25, NaN and -inf included), and an add then made y: two
   micro-ops, where the add has one (llvm-mca's models of Intel's Ice Lake
   and Sapphire Rapids cores).  The flash harness, one thread of this
   project's Xeon VM, eight rounds in turn: n = 1,024 faster in 5 rounds
   of 8 (medians 14.45 -> 14.13 ms), n = 2,048 in 7 (56.7 -> 56.1).  (The
   exponent added into the bits by a shift pair and an integer add, 12
   operations, gave the same bits for every float t up to 127.9, and inf
   above, where k rounds to 128; flash forward at heads 4 x 16, n = 1,024,
   one Zen 4 thread 0.5-1% slower.)  Measured in flash attention: see
   ea__fa_online. */
#if EA_VW == 16
EA_INLINE ea_vf ea_vexp2(ea_vf t) {
    /* 2^(j/16), j = 0..15, rounded to float */
    const __m512 tab = _mm512_setr_ps(1.000000000e+00f, 1.044273734e+00f, 1.090507746e+00f, 1.138788581e+00f,
                                      1.189207077e+00f, 1.241857767e+00f, 1.296839595e+00f, 1.354255557e+00f,
                                      1.414213538e+00f, 1.476826191e+00f, 1.542210817e+00f, 1.610490322e+00f,
                                      1.681792855e+00f, 1.756252170e+00f, 1.834008098e+00f, 1.915206552e+00f);
    __mmask16 live = _mm512_cmp_ps_mask(t, _mm512_set1_ps(-126.0f), _CMP_GE_OQ);
    __m512 y = _mm512_add_ps(t, _mm512_set1_ps(786432.0f)), k = _mm512_sub_ps(y, _mm512_set1_ps(786432.0f));
    __m512 r = _mm512_sub_ps(t, k), p;
    __m512i bits = _mm512_castps_si512(y);
    p = _mm512_fmadd_ps(_mm512_set1_ps(5.5504109710e-02f), r, _mm512_set1_ps(2.4022650719e-01f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(6.9314718246e-01f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_maskz_scalef_ps(live, _mm512_mul_ps(p, _mm512_permutexvar_ps(bits, tab)), k);
}
#else /* t = n + f, |f| <= 1/2 */
EA_INLINE ea_vf ea_vexp2(ea_vf t) {
    ea_vf n;
    t = ea_vmin(ea_vmax(t, ea_vset1(-127.0f)), ea_vset1(127.0f));
    n = ea_vround(t);
    return ea__exp2_parts(n, ea_vsub(t, n));
}
#endif

/* m <= EA_VW lanes from p: whole vectors the plain way, a row's last
   partial one masked (its other lanes 0), so the tail takes the same
   arithmetic as the rest: no scalar copy of a vector kernel. */
EA_INLINE ea_vf ea__ld(const float *p, int m) { return m == EA_VW ? ea_vload(p) : ea_vload_n(p, m); }
EA_INLINE void ea__st(float *p, ea_vf v, int m) {
    if (m == EA_VW) ea_vstore(p, v);
    else ea_vstore_n(p, v, m);
}

/* Ask the cache for n floats from p, a line (16 floats) at a time, where
   a kernel knows its next rows before the hardware's prefetchers can: rows
   on other pages, or a few lines at a stride (the mamba scan, 8.28; flash
   attention's backward, 8.2).  A hint: no effect on any result.  far:
   into the L2 only, for rows wanted after more than an L1's worth of
   other work (the next flash block's queries, 8.2), which would
   otherwise evict what that work reads. */
EA_INLINE void ea__prefetch(const float *p, int n, int far) {
#if defined(__GNUC__) || defined(__clang__)
    int i;
    for (i = 0; i < n; i += 16)
        if (far) __builtin_prefetch(p + i, 0, 2);
        else __builtin_prefetch(p + i);
#else
    (void)p; (void)n; (void)far;
#endif
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
/* The tile is sized to the register file.  Measured on one Zen 4 core
   (bench --gemm, tracker shapes 2048 x 192/256 x 64 and 2048 x 64 x 256):
   AVX-512 (32 registers): 4 x 64 gave 81-83% of peak, 6 x 48 94-98%
   (18 accumulators; 6 x 64 and 8 x 48 reached 89-92%; with the kernel of
   today 6 x 64 is ahead, see ea__gemm_nv); AVX2 (16
   registers): 4 x 32 spilled, 44% of peak, 4 x 24 63-66% (12
   accumulators; 6 x 24, 6 x 16 and 8 x 16 below that; with B held in
   registers, below, 4 x 24 reaches 92% on Zen 3).  NEON (32
   registers of 4) keeps 4 x 16: no Arm core here to measure on. */
#if EA_VW == 16
#define EA_MR 6
#define EA_NV 4 /* 6 x 64 (see ea__gemm_nv) */
#elif EA_VW == 8
#define EA_MR 4
#define EA_NV 3
#else
#define EA_MR 4
#define EA_NV 4
#endif
#define EA_NR (EA_NV * EA_VW)
/* KC = 512 covers the whole K of most layers in one block, so each C tile
   is written once rather than re-read from memory per block; the panel
   (512 x 64 floats, 128 KiB) stays in L2.  Measured against KC = 128 on a
   16384 x 1536 x 512 product, one Zen 4 core: 50 -> 77 GFLOP/s. */
#define EA_KC 512

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

/* The tile's width in vectors: EA_NV (6 x 64 with AVX-512) on every CPU.
   The tracker's widths (64, 192, 256) and flash attention's 64-wide
   tiles divide into 64-column panels with none left over, where 48-column
   ones leave a one-vector panel of 6 accumulators (latency- and
   load-bound).  Measured on the 2-core Xeon (bench --gemm, one thread,
   builds alternating four times): 6 x 64 took 2048 x 64 x 256 from
   143-152 to 167-181 GFLOP/s, 2048 x 256 x 64 from 150-164 to 161-176,
   4096 x 1536 x 512 from 149-156 to 162-166.  Zen 5 had kept 6 x 48,
   picked by CPU vendor, from an earlier form of the kernel; with this one,
   on a Zen 5 core (ea_gemm alone, best of 5, 2-3 rounds, 48 against 64
   columns): 2080 x 64 x 256 200-209 -> 230-236 GFLOP/s, 2080 x 256 x 64
   201-217 -> 215-229, 2080 x 192 x 64 220-233 -> 222-235, 4096 x 1536 x
   512 199-220 -> 216, 512 x 1024 x 1024 198-210 -> 207-226, and the flash
   forward at 8 x 64, n = 1,024 15.0 -> 13.6 ms.  Tests force the 48-column
   width too: the bits are the same either way (each element of C sums
   over k in the same order whatever the panel). */
static int ea__gemm_nv_forced = 0; /* tests set it to run both widths on one CPU */
static int ea__gemm_nv(void) { return ea__gemm_nv_forced ? ea__gemm_nv_forced : EA_NV; }

/* One mt x (nv·EA_VW) tile over kc steps (mt <= MR rows, a literal like
   nv); panel row k starts at panel + k·lp.  Rows past M reuse a valid row
   (a[r]) and are computed but not stored.  With bias (the last k block of
   a linear layer's product), the tile's columns of it are added as the
   tile is stored: the sum a separate pass over the output would make, in
   the same order (same bits), without reading the output back (that pass
   was 4-5% of the tracker's forward).  accumulate: 0 stores the sum,
   EA__GEMM_RESIDUAL adds C last, C + (A·B + bias): a residual
   connection's add, in the bits of adding the layer's output afterwards
   where K is one k block (ea__linear_add); any other value adds the sum
   to C, then the bias.  With cols, each column's largest
   stored value is taken into cols->max[j] (whole vectors; lanes past
   ncols see zeros): flash attention's running max, without a pass over
   the scores to find it (ea__fa_scores); and with cols->sub, each stored
   value x becomes 2^(x - sub[j]), added into cols->sum[j] row by row:
   that attention's exponentials, taken while the rows are in the L1
   (ea__fa_lazy). */
#define EA__GEMM_RESIDUAL 2
typedef struct ea__gemm_colred {
    float *max;       /* each column's largest value, raised by the store */
    float *sub;       /* or NULL; else 2^(C - sub[j]) stored in C's place */
    float *sum;       /* with sub: those powers summed down each column */
    int fresh;        /* with sub: no sub yet; each panel's first strip of
                         rows sets it to its own largest values */
} ea__gemm_colred;

/* The reductions over mr rows of a tile just stored, read back from the L1:
   taken from the tile's registers, the extra live vectors made the
   compiler spill the tile.  Inlined into the tile: called out of line
   (a call inside every tile's code), top-k's score products (ea_gemm,
   bench --row topk, one thread of this project's Xeon VM, three rounds in
   turn) took 16.6-17.7 ms against 15.1-15.4 at n = 256, 43.9-50.6
   against 40.0-41.4 at 512, where flash attention's forward at heads
   4 x 16, n = 1,024 gained 2-5%. */
EA_INLINE void ea__gemm_colred_rows(const ea__gemm_colred *cols, float *c, ptrdiff_t ldc, int mr, int nv, int ncols) {
    int r, v;
    for (v = 0; v < nv; v++) {
        int lanes = ncols - v * EA_VW < EA_VW ? ncols - v * EA_VW : EA_VW;
        ea_vf top = ea_vload(cols->max + v * EA_VW);
        if (cols->sub && lanes > 0) {
            ea_vf sub = ea_vload(cols->sub + v * EA_VW), sum = ea_vload(cols->sum + v * EA_VW);
            if (cols->fresh) { /* the strip's own max becomes sub (lanes past ncols: 0) */
                for (r = 0; r < mr; r++) sub = ea_vmax(sub, ea__ld(c + r * ldc + v * EA_VW, lanes));
                ea_vstore(cols->sub + v * EA_VW, sub);
            }
            for (r = 0; r < mr; r++) {
                float *cp = c + r * ldc + v * EA_VW;
                ea_vf x = ea__ld(cp, lanes), e = ea_vexp2(ea_vsub(x, sub));
                top = ea_vmax(top, x);
                ea__st(cp, e, lanes);
                sum = ea_vadd(sum, e);
            }
            ea_vstore(cols->sum + v * EA_VW, sum);
        } else
            for (r = 0; r < mr && lanes > 0; r++) top = ea_vmax(top, ea__ld(c + r * ldc + v * EA_VW, lanes));
        ea_vstore(cols->max + v * EA_VW, top);
    }
}

EA_INLINE void ea__gemm_tile(int mt, int nv, int kc, const float *const a[EA_MR], ptrdiff_t acs,
                             const float *panel, ptrdiff_t lp, float *c, ptrdiff_t ldc, int mr,
                             int ncols, int accumulate, const float *bias, const ea__gemm_colred *cols) {
    ea_vf acc[EA_MR][EA_NV];
    int r, v, k, nr = nv * EA_VW, add_last = accumulate == EA__GEMM_RESIDUAL, add_first = accumulate && !add_last;
    EA_UNROLL for (r = 0; r < mt; r++)
        EA_UNROLL for (v = 0; v < nv; v++) acc[r][v] = ea_vzero();
    /* Two k steps a pass: the loop's count, compare and branch (against
       a count on the stack) once per 48 FMAs instead of 24; the six row
       pointers still step each k.  One thread of this project's Xeon VM
       (model 167), rounds in turn, medians: gcc 12, eight rounds, the
       flash forward at heads 8 x 64, n = 1,024 14.63 -> 13.81 ms, n = 512
       3.67 -> 3.62, 4 x 16 at 1,024 2.40 -> 2.28; bench --gemm 0.96-1.04x
       the time, the tracker 0.98-1.03x (within the rounds' spread);
       clang 14, five rounds: GEMMs 0.79-0.91x, the tracker 0.82-1.01x;
       built for AVX2 by gcc, the flash forward 26.5-28.1 -> 26.0-26.4.
       The device's Xeon (model 207, gcc 13, five rounds on a quiet host):
       every row 0.97-1.04x, level
       (bench/results/peers-cpu/clang-unroll-ab.txt). */
    EA_UNROLL_2 for (k = 0; k < kc; k++) {
        const float *pk = panel + (ptrdiff_t)k * lp;
#if EA_VW == 8
        /* AVX2: 12 accumulators leave 4 of the 16 registers.  Holding the
           row's 3 vectors of B in 3 of them and broadcasting A into the
           last gives 7 loads per 12 FMAs; left to itself, the compiler
           folds a load of B into every FMA (16 loads per 12 FMAs: the load
           ports, not the FMAs, set the pace).  The empty asm keeps B in
           registers.  bench --gemm, one thread, builds alternating four
           times, best round: a Zen 3 core 63-64 -> 90 GFLOP/s on the
           tracker's shapes (92% of its peak), 40 -> 78 on 4096 x 1536 x 512;
           the device's Xeon built for AVX2 (-march=haswell) 53-56 -> 76-82
           and 50 -> 77. */
        ea_vf bv[EA_NV];
        EA_UNROLL for (v = 0; v < nv; v++) {
            bv[v] = ea_vload(pk + v * EA_VW);
#if defined(__GNUC__) || defined(__clang__)
            __asm__("" : "+x"(bv[v]));
#endif
        }
        EA_UNROLL for (r = 0; r < mt; r++) {
            ea_vf ar = ea_vset1(a[r][k * acs]);
            EA_UNROLL for (v = 0; v < nv; v++) acc[r][v] = ea_vfma(ar, bv[v], acc[r][v]);
        }
#else
        /* AVX-512 and NEON hold the whole tile, A's broadcasts and a vector
           of B in registers either way; there the order above measured
           slower on the Xeon in 3 of 4 rounds (4096 x 1536 x 512: 104-109
           against 135-144 GFLOP/s), so they keep this one */
        ea_vf ar[EA_MR];
        EA_UNROLL for (r = 0; r < mt; r++) ar[r] = ea_vset1(a[r][k * acs]);
        EA_UNROLL for (v = 0; v < nv; v++) {
            ea_vf bv = ea_vload(pk + v * EA_VW);
            EA_UNROLL for (r = 0; r < mt; r++) acc[r][v] = ea_vfma(ar[r], bv, acc[r][v]);
        }
#endif
    }
    if (mr == mt && ncols == nr) {
        EA_UNROLL for (r = 0; r < mt; r++)
            EA_UNROLL for (v = 0; v < nv; v++) {
                float *cp = c + r * ldc + v * EA_VW;
                ea_vf t = add_first ? ea_vadd(ea_vload(cp), acc[r][v]) : acc[r][v];
                if (bias) t = ea_vadd(t, ea_vload(bias + v * EA_VW));
                ea_vstore(cp, add_last ? ea_vadd(ea_vload(cp), t) : t);
            }
    } else { /* an edge tile: mr rows, the last vector cut to the columns
                left by masked stores (a head width of 12 makes every P·V
                and gradient tile of flash attention one; through a
                scratch tile and scalar copies as before, its backward at
                heads 4 x 12, n = 50, batch 16 took 0.49 ms, now 0.45) */
        EA_UNROLL for (r = 0; r < mt; r++)
            EA_UNROLL for (v = 0; v < nv; v++) {
                float *cp = c + r * ldc + v * EA_VW;
                int lanes = ncols - v * EA_VW < EA_VW ? ncols - v * EA_VW : EA_VW;
                if (r < mr && lanes > 0) {
                    ea_vf t = add_first ? ea_vadd(ea_vload_n(cp, lanes), acc[r][v]) : acc[r][v];
                    if (bias) t = ea_vadd(t, ea_vload_n(bias + v * EA_VW, lanes));
                    ea_vstore_n(cp, add_last ? ea_vadd(ea_vload_n(cp, lanes), t) : t, lanes);
                }
            }
    }
    if (cols) ea__gemm_colred_rows(cols, c, ldc, mr, nv, ncols);
}

/* The last rows of C, fewer than MR, take a tile of 2 or 4 rows: M = 64
   (the tracker's tokens at batch 1, a flash block of queries) leaves 4
   rows after ten 6-row tiles, which a 6-row tile computed at the cost of
   6.  Same bits (each element's sum is unchanged).  One Zen 4 core
   (regions --pack, one thread, builds alternating): the tracker at batch 1
   365.6-384.9 -> 352.0-387.3 us a step (eight rounds; medians 375 -> 367),
   batch 32 12.8-14.9 -> 12.2-12.6 ms, the training step 40.9-49.1 ->
   39.9-46.4 ms (seven rounds: a flash tile's query rows are 64 too). */
#define EA__GEMM_TILE(NV)                                                                                         \
    do {                                                                                                          \
        if (mr > EA_MR - 2) ea__gemm_tile(EA_MR, NV, kc, a, acs, panel, lp, c, ldc, mr, ncols, accumulate, bias, cols); \
        else if (mr > 2) ea__gemm_tile(4, NV, kc, a, acs, panel, lp, c, ldc, mr, ncols, accumulate, bias, cols);        \
        else ea__gemm_tile(2, NV, kc, a, acs, panel, lp, c, ldc, mr, ncols, accumulate, bias, cols);                    \
    } while (0)

/* Rows [i0, i1) of C against one panel: ncols <= EA_NR columns whose row k
   starts at panel + k·lp and holds whole vectors (zero padded if packed);
   cols as ea__gemm_tile's (fresh for the first strip, i0, only). */
static void ea__gemm_panel(int i0, int i1, int ncols, int kc, const float *A, ptrdiff_t ars,
                           ptrdiff_t acs, const float *panel, ptrdiff_t lp, float *C, ptrdiff_t ldc,
                           int accumulate, const float *bias, const ea__gemm_colred *cols0) {
    int nv = (ncols + EA_VW - 1) / EA_VW, i, r;
    ea__gemm_colred later; /* cols0 past the first strip: sub set */
    if (cols0) {
        later = *cols0;
        later.fresh = 0;
    }
    for (i = i0; i < i1; i += EA_MR) {
        const float *a[EA_MR];
        const ea__gemm_colred *cols = !cols0 ? NULL : i == i0 ? cols0 : &later;
        float *c = C + i * ldc;
        int mr = i1 - i < EA_MR ? i1 - i : EA_MR;
        for (r = 0; r < EA_MR; r++) a[r] = A + (ptrdiff_t)(r < mr ? i + r : i) * ars;
        /* literal nv and mt let the compiler keep the tile in registers */
        switch (nv) {
        case 1: EA__GEMM_TILE(1); break;
        case 2: EA__GEMM_TILE(2); break;
#if EA_NV > 3
        case 3: EA__GEMM_TILE(3); break;
#endif
        default: EA__GEMM_TILE(EA_NV); break;
        }
    }
}
#undef EA__GEMM_TILE

#if EA_VW >= 8
/* dst row d, columns 0..3 = mul · src rows 0..3, column d (d < 4): a 4 x 4
   block transposed through SSE registers (every x86 vector build has
   them): four loads, eight shuffles and four stores where a scalar copy
   takes 32 moves.  Packing B's panel from x·Wᵀ and flash attention's
   Q blocks use it. */
EA_INLINE void ea__t4x4(float *dst, ptrdiff_t ldd, const float *src, ptrdiff_t lds, float mul) {
    __m128 r0 = _mm_loadu_ps(src), r1 = _mm_loadu_ps(src + lds), r2 = _mm_loadu_ps(src + 2 * lds),
           r3 = _mm_loadu_ps(src + 3 * lds), m = _mm_set1_ps(mul);
    _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
    _mm_storeu_ps(dst, _mm_mul_ps(r0, m));
    _mm_storeu_ps(dst + ldd, _mm_mul_ps(r1, m));
    _mm_storeu_ps(dst + 2 * ldd, _mm_mul_ps(r2, m));
    _mm_storeu_ps(dst + 3 * ldd, _mm_mul_ps(r3, m));
}
#endif

/* dst[c, r] = src[r, c] (src rows x cols, leading dimensions lds, ldd),
   by 16 x 16 blocks, with 4 x 4 SSE transposes inside where the build has
   them; over threads by columns (rows of dst) when large.  Block sizes
   measured on one Zen 3 core, 1024 x 2048 floats (both strides powers of
   two, whose lines share cache sets): 16 x 16 2.4 ms, 32 rows x 64
   columns 3.0-3.2, 16 columns by whole height 3.8-4.5.  A weight gradient
   dW = dYᵀ·X reads dYᵀ from a copy made with it (ea__linear_bwd), and
   ea_params_pack makes the weights' transposed copies with it. */
static void ea__transpose_cols(float *dst, ptrdiff_t ldd, const float *src, ptrdiff_t lds, int rows, int c0, int c1) {
    int rb, cb, r, c, d;
    for (cb = c0; cb < c1; cb += 16)
        for (rb = 0; rb < rows; rb += 16) {
            int ce = cb + 16 < c1 ? cb + 16 : c1, re = rb + 16 < rows ? rb + 16 : rows;
            c = cb;
#if EA_VW >= 8
            for (; c + 4 <= ce; c += 4) {
                for (r = rb; r + 4 <= re; r += 4) ea__t4x4(dst + c * ldd + r, ldd, src + r * lds + c, lds, 1.0f);
                for (; r < re; r++)
                    for (d = 0; d < 4; d++) dst[(c + d) * ldd + r] = src[r * lds + c + d];
            }
#endif
            for (; c < ce; c++)
                for (r = rb; r < re; r++) dst[c * ldd + r] = src[r * lds + c];
        }
    (void)d;
}

static void ea__transpose(float *dst, ptrdiff_t ldd, const float *src, ptrdiff_t lds, int rows, int cols) {
    long b, nb = (cols + 63) / 64;
    EA_OMP_FOR_IF(nb > 1 && (double)rows * cols >= EA_PAR_MIN_WORK)
    for (b = 0; b < nb; b++)
        ea__transpose_cols(dst, ldd, src, lds, rows, (int)b * 64, (int)b * 64 + 64 < cols ? (int)b * 64 + 64 : cols);
}

/* Whether B can serve as its own panel, read in place (rows at stride
   brs): row-major, whole vectors wide, rows on cache lines; and, for K >
   EA_ALIAS_K, rows not a multiple of 2 KiB apart, unless the block is too
   short to repay a copy.  Such rows (a 512-, 1024- or 1536-wide activation:
   a weight gradient dW = dYᵀ·X reads X so) fall on few of the L1's and
   L2's sets, so a panel of hundreds of them evicts itself and every row
   tile reads it again from L3.  Each thread packs its columns of B for its
   own rows, so the copy pays only from some rows a block on: 16 where the
   rows lie a multiple of 4 KiB apart, 128 where 2 KiB (the milder
   conflict).
   bench --gemm's dW rows (one thread, direct -> packed): 512 x 1024 x 1024
   with B 4 KiB apart 60 -> 93 GFLOP/s on a Zen 3 core and 96-104 -> 154-156
   on the device's Xeon, 64 x 1024 x 1024 60 -> 83 and 95-98 -> 129-134;
   2 KiB apart (1024 x 512 x 1024) 72-73 -> 93-94 on Zen 3, level on the
   Xeon.  On 16 Xeon threads, split by rows alone (before ea__gemm_cols's
   grid): 4 KiB, 32 rows a thread, 784-828 -> 919
   GFLOP/s; 2 KiB, 64 rows a thread, 1183-1519 -> 1109-1114 (hence 128);
   4 rows a thread (64 rows over 16) 0.6x; a flash tile (64 x 64 x 64,
   K <= EA_ALIAS_K) 8-9% slower packed on one thread. */
#define EA_ALIAS_K 128
#define EA_ALIAS_ROWS 16
EA_INLINE int ea__gemm_direct(int rows, int N, int K, const float *B, ptrdiff_t brs, ptrdiff_t bcs) {
    int repay = brs % 1024 == 0 ? EA_ALIAS_ROWS : brs % 512 == 0 ? 8 * EA_ALIAS_ROWS : 0; /* 4 KiB, 2 KiB */
    return bcs == 1 && N % EA_VW == 0 && brs % 16 == 0 && (uintptr_t)B % 64 == 0 &&
           !(repay && K > EA_ALIAS_K && rows >= repay);
}

/* Columns [j0, j0 + ncols) of B's rows [k0, k0 + kc) as a kc x nr panel
   (nr: ncols rounded up to whole vectors, the rest zero), packed along
   whichever of B's axes is contiguous in memory. */
static void ea__gemm_pack(float *panel, const float *B, ptrdiff_t brs, ptrdiff_t bcs, int j0, int k0, int ncols, int nr,
                          int kc) {
    int k, jj;
    if (bcs == 1 || brs != 1) {
        for (k = 0; k < kc; k++) {
            const float *brow = B + (ptrdiff_t)(k0 + k) * brs + (ptrdiff_t)j0 * bcs;
            float *prow = panel + k * nr;
            if (bcs == 1) /* rows narrower than a vector or off a cache
                             line: masked loads leave the padding 0 (the
                             flash tiles' V, K, Q, dO rows at a head width
                             of 12: that backward 0.42 -> 0.35 ms against
                             the scalar copy) */
                for (jj = 0; jj < nr; jj += EA_VW) {
                    int lanes = ncols - jj < EA_VW ? ncols - jj : EA_VW;
                    ea_vstore(prow + jj, ea_vload_n(brow + jj, lanes > 0 ? lanes : 0));
                }
            else {
                for (jj = 0; jj < ncols; jj++) prow[jj] = brow[jj * bcs];
                for (; jj < nr; jj++) prow[jj] = 0.0f;
            }
        }
    } else { /* B's columns run along k (x·Wᵀ reads rows of W): a transpose */
        jj = 0;
#if EA_VW >= 8
        /* 4 x 4 blocks (ea__t4x4); measured on the tracker at batch 1,
           one thread (2-core Xeon): the scalar packing was 22% of the
           time in perf.  They go 64 k at a time across all the panel's
           columns: 16 KiB of an AVX-512 panel (64 columns) and of B at a
           time.  Four columns down all of k had written a panel 256 deep
           (64 KiB, more than L1) in 16-byte pieces a row apart, sixteen
           passes over it: the tracker's fc2 (its 64 x 256 weight) packed
           in about 8 us where fc1's 256 x 64, the same floats, took 2.6.
           One pinned thread of this machine's Xeon, rounds in turn: fc2's
           product at 24 rows 13.1-13.5 -> 7.5 us, at 2,048 0.412-0.443 ->
           0.404-0.408 ms (bench --gemm); the tracker at batch 1, weights
           not packed, 0.300-0.309 -> 0.279-0.281 ms. */
        {
            const float *b0 = B + (ptrdiff_t)k0 + (ptrdiff_t)j0 * bcs;
            const int jq = ncols / 4 * 4, k4 = kc / 4 * 4;
            int kb, ke;
            for (kb = 0; kb < k4; kb = ke) {
                ke = k4 - kb < 64 ? k4 : kb + 64;
                for (jj = 0; jj < jq; jj += 4)
                    for (k = kb; k < ke; k += 4)
                        ea__t4x4(panel + k * nr + jj, nr, b0 + (ptrdiff_t)jj * bcs + k, bcs, 1.0f);
            }
            for (k = k4; k < kc; k++)
                for (jj = 0; jj < jq; jj++) panel[k * nr + jj] = b0[(ptrdiff_t)jj * bcs + k];
            jj = jq;
        }
#endif
        for (; jj < nr; jj++) {
            const float *bcol = B + (ptrdiff_t)k0 + (ptrdiff_t)(j0 + jj) * bcs;
            if (jj < ncols)
                for (k = 0; k < kc; k++) panel[k * nr + jj] = bcol[k];
            else
                for (k = 0; k < kc; k++) panel[k * nr + jj] = 0.0f;
        }
    }
}

/* Rows [i0, i1) of C, one block of ea__gemm_rows: B read in place where
   ea__gemm_direct says so, otherwise packed KC rows at a time.  cols (its
   arrays N floats rounded up to whole vectors; or NULL) takes each
   column's largest value of these rows, and with sub their powers and
   sums, as the last k block stores them (ea__gemm_tile). */
static void ea__gemm_block(int i0, int i1, int N, int K, const float *A, ptrdiff_t ars,
                           ptrdiff_t acs, const float *B, ptrdiff_t brs, ptrdiff_t bcs, float *C,
                           ptrdiff_t ldc, int accumulate, const float *bias, const ea__gemm_colred *cols) {
    /* the panel starts on a cache line: a vector load that straddles two
       lines costs two (measured: 33% slower GEMMs when the stack put it off) */
    float buf[EA_KC * EA_NR + 16], *panel = buf + (64 - (uintptr_t)buf % 64) % 64 / sizeof(float);
    int j0, k0, direct = ea__gemm_direct(i1 - i0, N, K, B, brs, bcs);
    const int NR = ea__gemm_nv() * EA_VW; /* this CPU's panel width (<= EA_NR) */
    for (j0 = 0; j0 < N; j0 += NR) {
        int ncols = N - j0 < NR ? N - j0 : NR, nr = (ncols + EA_VW - 1) / EA_VW * EA_VW;
        for (k0 = 0; k0 < K; k0 += EA_KC) {
            int kc = K - k0 < EA_KC ? K - k0 : EA_KC, acc = k0 > 0 ? 1 : accumulate;
            const float *Ak = A + (ptrdiff_t)k0 * acs, *bk = bias && k0 + kc == K ? bias + j0 : NULL;
            ea__gemm_colred part, *mk = NULL;
            if (cols && k0 + kc == K) { /* this panel's columns of them */
                part.max = cols->max + j0;
                part.sub = cols->sub ? cols->sub + j0 : NULL;
                part.sum = cols->sum ? cols->sum + j0 : NULL;
                part.fresh = cols->fresh;
                mk = &part;
            }
            if (direct) {
                ea__gemm_panel(i0, i1, ncols, kc, Ak, ars, acs, B + (ptrdiff_t)k0 * brs + j0, brs, C + j0, ldc, acc, bk, mk);
                continue;
            }
            ea__gemm_pack(panel, B, brs, bcs, j0, k0, ncols, nr, kc);
            ea__gemm_panel(i0, i1, ncols, kc, Ak, ars, acs, panel, nr, C + j0, ldc, acc, bk, mk);
        }
    }
}

/* Rows [i0, i1) of C in blocks whose share of A (rows x min(K, KC)
   floats) is about EA_MC_FLOATS, each block against every panel before the
   next.  Every panel reads its rows of A again: without blocks, all of A
   (32 MiB at 16384 x 512) came from memory once per panel.  A panel that
   has to be packed is packed once per block, one move per 2 x (block rows)
   FLOPs.  Each element of C still adds its k blocks in order: the same
   bits.  bench --gemm, one thread, builds in rotating order (64K, 128K and
   256K floats against none): 16384 x 1536 x 512 went from 39-50 to 70-77
   GFLOP/s on a Zen 3 core (L2 512 KiB) and from 102-109 to 135-142 on the
   device's Xeon (L2 2 MiB), 4096 x 1536 x 512 from 39-59 to 63-79 on Zen 3
   (on the Xeon 111-141 against 134-142, inside its noise).  Then 1M
   floats (4 MiB) beat 256K on Zen 5 and level on the Xeon: a B that has
   to be packed is packed once per block (at 4096 x 1536 x 512, 3 MiB of
   panels 8 times, not twice), which had left that product 3-8% slower
   on Zen 5 than before blocks (bench/results/peers-cpu/
   gemm-row-block-size-ab.txt: one thread, rounds alternating, Zen 5
   23.98-24.37 -> 23.35-23.38 ms, 16384 x 1536 x 512 97.6 -> 93.9-94.5;
   the device's Xeon 45.5-64.3 -> 44.7-45.8 and 182-186 -> 180-184). */
#define EA_MC_FLOATS 1048576
static void ea__gemm_rows(int i0, int i1, int N, int K, const float *A, ptrdiff_t ars,
                          ptrdiff_t acs, const float *B, ptrdiff_t brs, ptrdiff_t bcs, float *C,
                          ptrdiff_t ldc, int accumulate, const float *bias) {
    const int kc = K < EA_KC ? (K > 0 ? K : 1) : EA_KC, mc = (EA_MC_FLOATS / kc + EA_MR - 1) / EA_MR * EA_MR;
    int ib;
    for (ib = i0; ib < i1; ib += mc)
        ea__gemm_block(ib, i1 - ib < mc ? i1 : ib + mc, N, K, A, ars, acs, B, brs, bcs, C, ldc, accumulate, bias, NULL);
}

/* A row of A against a column of B, both contiguous along k (a linear
   layer's weights are wᵀ: each column of B is a row of w). */
static float ea__gemv_dot(const float *a, const float *b, int K) {
    float s = 0.0f;
    int k = 0;
#if EA_VW > 1
    {
        ea_vf acc0 = ea_vzero(), acc1 = ea_vzero();
        for (; k + 2 * EA_VW <= K; k += 2 * EA_VW) {
            acc0 = ea_vfma(ea_vload(a + k), ea_vload(b + k), acc0); /* a·b + acc */
            acc1 = ea_vfma(ea_vload(a + k + EA_VW), ea_vload(b + k + EA_VW), acc1);
        }
        for (; k + EA_VW <= K; k += EA_VW) acc0 = ea_vfma(ea_vload(a + k), ea_vload(b + k), acc0);
        s = ea_vhsum(ea_vadd(acc0, acc1));
    }
#endif
    for (; k < K; k++) s += a[k] * b[k];
    return s;
}

#define EA_GEMV_ROWS 2 /* up to this many rows, dot products beat packing a panel of B */

/* A team splits C into a grid: nt / pc groups of row tiles by pc groups of
   whole panels.  Every thread reads (or packs) all of B's columns in its
   group and all of A's rows in its group, so a thread's share of the data
   that comes from L3 or memory is M·K/pr + K·N/pc; the grid that makes
   pc·M + pr·N least wins (pc = 1, rows only, where M dominates: long
   sequences, the tracker's batches).  With rows only, 16 threads over a
   1024 x 512 product each read all of B for 64 rows; a weight gradient
   (512 x 1024) each packed all of B for 32.  Column groups get whole
   panels, np / pc of them or at least 4 where that does not divide.  Each
   element of C is the same dot product in the same order whatever the
   grid: the same bits.  bench --gemm on the device's Xeon, rows only ->
   grid, two rounds: 16 threads, 64 x 1024 x 1024 472-561 -> 823-831
   GFLOP/s, 512 x 1024 x 1024 864-927 -> 1027-1094; 4 threads 313-322 ->
   472-509 and 589-596 -> 617-630; a mamba or mha layer's step and the
   tracker's at 16 threads moved less than that host's noise.
   A B of at most EA_GRID_MIN_B floats (256 KiB: the tracker's weights)
   stays in each core's L2 from call to call, so reading all of it costs a
   thread nothing from L3; column groups would instead make every thread
   read all of A, rows that other cores have just written (a layer norm's,
   the attention's output): rows only.  regions --pack on the device's Xeon,
   three alternating rounds against the grid: batch 1 on 4 threads 257-266
   against 277-280 us a step, batch 32 on 16 threads 1621-1743 against
   1676-1900, its training step 7102-7709 against 7652-7799, batch 32 on 4
   threads level (3902-4077 against 3911-4295). */
#define EA_GRID_MIN_B 65536.0
EA_INLINE int ea__gemm_cols(int M, int N, int K, int nt) {
    int NR = ea__gemm_nv() * EA_VW, np = (N + NR - 1) / NR, tiles = (M + EA_MR - 1) / EA_MR, pc, best = 1;
    double cost = -1.0;
    if ((double)K * N <= EA_GRID_MIN_B) return 1;
    for (pc = 1; pc <= nt && pc <= np; pc++) {
        double c = (double)pc * M + (double)(nt / pc) * N;
        if (nt % pc || nt / pc > tiles || (np % pc && np / pc < 4)) continue;
        if (cost < 0.0 || c < cost) {
            cost = c;
            best = pc;
        }
    }
    return best;
}

/* Rows [i0, i1), columns [j0, j1) of C done: post(pout + i·ldc + j0,
   C + i·ldc + j0, NULL, j1 - j0) on each row, an elementwise function (an
   activation) applied by the thread that made the rows while they are in
   its cache.  Row by row, from a column that starts a vector, so that each
   element takes the same (vector or scalar) path however C is split. */
static void ea__gemm_post(ea__span_fn post, float *pout, const float *C, ptrdiff_t ldc, int i0, int i1, int j0, int j1) {
    int i;
    if (post)
        for (i = i0; i < i1; i++) post(pout + i * ldc + j0, C + i * ldc + j0, NULL, (size_t)(j1 - j0));
}

/* A team's product split by rows alone, K within one k block, with
   ea__par_steal's shares: each thread's row tiles in `per` chunks, taken
   from its share's counter as (panel, chunk) items, panel by panel, so
   that the owner packs each panel of B once, as the static split does, and
   runs it over its chunks; a thread done with its share takes the others'
   remaining items, packing the panel it needs.  Each element of C is the
   same one-block dot product whoever makes it: the same bits.  (With
   several k blocks an item would need every block's panel in turn, and its
   owner would pack each again for every chunk: those products keep the
   static split.)  Slots zeroed for the team before the region.  An item is
   about EA_STEAL_WORK multiply-adds (a few microseconds), at most 8 a
   panel and share: smaller ones (4 row tiles at the tracker's K = 64) had
   made the 16-thread training step's fc1 products even but a third
   slower.  A share of less than two items' work (the tracker at batch 1 on
   4 threads) could only give away whole panels of a share: it keeps the
   static split.  The device's Xeon, whose threads run at uneven speeds
   (ea__par_steal), the tracker's training step at batch 32 on 16 threads,
   14 rounds in turn against the static split: 6515-8829 -> 5975-7481 us,
   medians 6839 -> 6334; its forward products' slowest thread had taken up
   to 2.1x the mean thread's time (fc2: 132 against 62 us), now 1.1x
   (regions --each --spread); inference and one thread level. */
#define EA_STEAL_WORK 262144.0
#ifdef _OPENMP
static void ea__gemm_steal(int M, int N, int K, const float *A, ptrdiff_t ars, ptrdiff_t acs, const float *B,
                           ptrdiff_t brs, ptrdiff_t bcs, float *C, ptrdiff_t ldc, int accumulate, const float *bias,
                           ea__span_fn post, float *pout, ea__steal_slot *slots) {
    float buf[EA_KC * EA_NR + 16], *panel = buf + (64 - (uintptr_t)buf % 64) % 64 / sizeof(float);
    const int NR = ea__gemm_nv() * EA_VW, np = (N + NR - 1) / NR, tiles = (M + EA_MR - 1) / EA_MR;
    const int nt = omp_get_num_threads(), t = omp_get_thread_num();
    const int direct = ea__gemm_direct((tiles / nt + 1) * EA_MR, N, K, B, brs, bcs); /* as a static share's */
    double share = (double)tiles / nt * EA_MR * NR * K; /* a panel's multiply-adds in a share */
    int per = share / EA_STEAL_WORK < 1.0 ? 1 : share / EA_STEAL_WORK > 8.0 ? 8 : (int)(share / EA_STEAL_WORK), v, x;
    int held = -1;
    for (v = 0; v < nt; v++) { /* its own share first, then the next threads' */
        int u = (t + v + ea__steal_forced) % nt;
        int s0 = (int)((long)tiles * u / nt), s1 = (int)((long)tiles * (u + 1) / nt);
        for (;;) {
            int p, c, i0, i1, j0, ncols, nr;
            _Pragma("omp atomic capture")
            x = slots[u].next++;
            if (x >= np * per) break;
            p = x / per;
            c = x % per;
            i0 = (s0 + (s1 - s0) * c / per) * EA_MR;
            i1 = (s0 + (s1 - s0) * (c + 1) / per) * EA_MR;
            i1 = i1 < M ? i1 : M;
            if (i0 >= i1) continue;
            j0 = p * NR;
            ncols = N - j0 < NR ? N - j0 : NR;
            nr = (ncols + EA_VW - 1) / EA_VW * EA_VW;
            if (!direct && held != p) {
                ea__gemm_pack(panel, B, brs, bcs, j0, 0, ncols, nr, K);
                held = p;
            }
            ea__gemm_panel(i0, i1, ncols, K, A, ars, acs, direct ? B + j0 : panel, direct ? brs : nr, C + j0, ldc,
                           accumulate, bias ? bias + j0 : NULL, NULL);
            ea__gemm_post(post, pout, C, ldc, i0, i1, j0, j0 + ncols);
        }
    }
}
#endif

/* C (+)= A·B, then + bias[j] on every row when bias is given (a linear
   layer), then post when given (ea__gemm_post).  With fork, a large
   product is split over a team of threads (a grid of row and column groups:
   ea__gemm_cols; rows alone, K in one block, through ea__gemm_steal's
   shares); without, it runs on the calling thread alone: for kernels that
   split their own work, whose many small products would each pay for a
   fork (the flash tiles: at 2 threads a heads 8 x 64 backward ran 7-27x
   slower than on one before this). */
static void ea__gemm_run(int M, int N, int K, const float *A, ptrdiff_t ars, ptrdiff_t acs, const float *B,
                         ptrdiff_t brs, ptrdiff_t bcs, float *C, ptrdiff_t ldc, int accumulate, const float *bias,
                         int fork, ea__span_fn post, float *pout) {
    int i, j;
    if (M <= 0 || N <= 0) return;
#ifdef _OPENMP
    /* not inside a team already, nor with one thread (forking a team of one
       per call cost small products about a tenth) */
    if (fork && (double)M * N * K >= 4 * EA_PAR_MIN_WORK && M >= 2 * EA_MR && K > 0 && !omp_in_parallel() &&
        omp_get_max_threads() > 1) {
        int cols = ea__gemm_cols(M, N, K, omp_get_max_threads());
        ea__steal_slot slots[EA_STEAL_MAX];
        int steal = K <= EA_KC && omp_get_max_threads() <= EA_STEAL_MAX;
        if (steal) memset(slots, 0, (size_t)omp_get_max_threads() * sizeof slots[0]);
        _Pragma("omp parallel")
        {
            int nt = omp_get_num_threads(), t = omp_get_thread_num(), pc = nt % cols ? 1 : cols, pr = nt / pc;
            int tiles = (M + EA_MR - 1) / EA_MR, NR = ea__gemm_nv() * EA_VW, np = (N + NR - 1) / NR;
            int r = t / pc, c = t % pc;
            int t0 = (int)((long)tiles * r / pr), t1 = (int)((long)tiles * (r + 1) / pr);
            int i0 = t0 * EA_MR, i1 = t1 * EA_MR < M ? t1 * EA_MR : M;
            int j0 = np * c / pc * NR, j1 = np * (c + 1) / pc * NR < N ? np * (c + 1) / pc * NR : N;
            if (steal && pc == 1 && (double)tiles / nt * EA_MR * NR * K >= 2.0 * EA_STEAL_WORK)
                ea__gemm_steal(M, N, K, A, ars, acs, B, brs, bcs, C, ldc, accumulate, bias, post, pout, slots);
            else if (i0 < i1 && j0 < j1) {
                ea__gemm_rows(i0, i1, j1 - j0, K, A, ars, acs, B + (ptrdiff_t)j0 * bcs, brs, bcs, C + j0, ldc, accumulate,
                              bias ? bias + j0 : NULL);
                ea__gemm_post(post, pout, C, ldc, i0, i1, j0, j1);
            }
        }
        return;
    }
#else
    (void)fork;
#endif
    if (K > 0 && !(M <= EA_GEMV_ROWS && acs == 1 && brs == 1)) {
        ea__gemm_rows(0, M, N, K, A, ars, acs, B, brs, bcs, C, ldc, accumulate, bias);
        ea__gemm_post(post, pout, C, ldc, 0, M, 0, N);
        return;
    }
    /* One or two rows (a decoding step): dot products; or K = 0.  Each
       element is summed in a register and stored once: written, read back
       and written again for the bias (the compiler must assume C may
       alias the bias), mha's decode step at 1,024 cached tokens had gone
       from 0.127-0.128 to 0.132-0.133 ms (bench --decode, one Zen 4
       thread, four rounds alternating with 503b9a9); 0.129-0.130 now. */
    for (i = 0; i < M; i++)
        for (j = 0; j < N; j++) {
            float *c = C + i * ldc + j, v = accumulate ? *c : 0.0f;
            if (K > 0) {
                float d = ea__gemv_dot(A + i * ars, B + j * bcs, K);
                v = accumulate ? v + d : d;
            }
            *c = bias ? v + bias[j] : v;
        }
    ea__gemm_post(post, pout, C, ldc, 0, M, 0, N);
}

static void ea__gemm_serial(int M, int N, int K, const float *A, ptrdiff_t ars, ptrdiff_t acs,
                            const float *B, ptrdiff_t brs, ptrdiff_t bcs, float *C, ptrdiff_t ldc,
                            int accumulate) {
    ea__gemm_run(M, N, K, A, ars, acs, B, brs, bcs, C, ldc, accumulate, NULL, 0, NULL, NULL);
}

EA_API void ea_gemm(int M, int N, int K, const float *A, ptrdiff_t ars, ptrdiff_t acs,
                    const float *B, ptrdiff_t brs, ptrdiff_t bcs, float *C, ptrdiff_t ldc,
                    int accumulate) {
    ea__gemm_run(M, N, K, A, ars, acs, B, brs, bcs, C, ldc, accumulate, NULL, 1, NULL, NULL);
}

/* ==========================================================================
   == 6. TENSORS, ARENA, AUTOGRAD TAPE, PARAMETERS
   ==========================================================================
   Arena: a bump allocator over chunks.  When a step needs more than the
   current chunk holds, a new chunk is chained; the next reset replaces the
   chain by one chunk as large as the high-water mark, plus 1/16: a graph
   whose shapes follow the data (a mixture of experts routes a different
   number of tokens to each expert every step, and the split-k scratch of
   each expert's weight gradient rounds its rows up to whole blocks) needs
   a few percent more on some steps than on others, and without headroom
   each new high-water mark would cost a malloc and a free of the whole
   arena.  So allocation happens only while the arena is still growing
   (the first steps), and a steady-state step performs none.  `limit` caps
   the total for embedded use: past it, the op fails with EA_ERR_NOMEM
   instead of growing (the headroom never goes past it).

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

/* Scratch that lives through one call (a backward's transposed copy):
   take a mark before, go back to it after.  Only within the chunk the mark
   was taken in; scratch that needed a new chunk stays until the reset,
   which sizes the next arena to the peak anyway. */
typedef struct ea__arena_mark {
    ea_arena_chunk *head;
    size_t chunk_used, used;
} ea__arena_mark;

static ea__arena_mark ea__arena_mark_get(const ea_arena *a) {
    ea__arena_mark m;
    m.head = a->head;
    m.chunk_used = a->head ? a->head->used : 0;
    m.used = a->used;
    return m;
}

static void ea__arena_mark_back(ea_arena *a, ea__arena_mark m) {
    if (a->head && a->head == m.head) {
        a->head->used = m.chunk_used;
        a->used = m.used;
    }
}

static void ea__arena_reset(ea_arena *a) {
    if (a->head && a->head->next) {
        /* several chunks: replace them by one that holds the whole peak
           and 1/16 more (see above) */
        size_t cap = a->peak + a->peak / 16;
        if (a->limit && cap > a->limit) cap = a->limit > a->peak ? a->limit : a->peak;
        ea__arena_free_chunks(a);
        a->head = ea__chunk_new(a, cap);
    }
    if (a->head) a->head->used = 0;
    a->used = 0;
}

EA_API ea_status ea_ctx_init(ea_ctx *ctx, size_t initial_bytes) {
    if (!ctx) return EA_ERR_ARG;
    memset(ctx, 0, sizeof *ctx);
    ctx->grad_enabled = 1;
    ea_rng_seed(&ctx->rng, 0, 11);
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
    ctx->grads = NULL;
}

EA_API void ea_ctx_reset(ea_ctx *ctx) {
    ea__arena_reset(&ctx->arena);
    ctx->tape = NULL;
    ctx->grads = NULL;
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
        t->gbuf = (ea_grad_buf *)ea_ctx_alloc(ctx, sizeof(ea_grad_buf));
        if (!t->grad || !t->gbuf) return NULL;
        t->gbuf->grad = t->grad; /* zeroed when ea_backward first needs it */
        t->gbuf->size = size;
        t->gbuf->ready = 0;
        t->gbuf->next = ctx->grads;
        ctx->grads = t->gbuf;
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

/* Activation gradients are zeroed on first touch: when a node is about to
   read its output's gradient or add into an input's, and, after the tape,
   every one no node reached (they read 0, as when the forward zeroed
   them).  Zeroing them in the forward wrote the whole gradient memory
   (40 MB for the tracker at batch 32) long before the backward used it:
   on the device's Xeon, one thread, the training forward took 18.9-23.7 ms
   against 11.8-13.8 without that memset; now the zeros go into lines the
   node is about to use. */
static void ea__grad_ready(ea_grad_buf *g) {
    if (g && !g->ready) {
        ea__par_span(ea__zero_n, g->grad, NULL, NULL, g->size, 1.0);
        g->ready = 1;
    }
}

/* For a backward that writes an input's gradient itself (its node's
   `assigns` bit): 1 when nothing has been added into it yet, so the first
   write may assign (a GEMM with accumulate 0, a copy) instead of adding into
   zeros; the buffer counts as written from then on.  Assigning x gives the
   bits of 0 + x. */
static int ea__grad_fresh(ea_tensor *t) {
    int fresh = t && t->gbuf && !t->gbuf->ready;
    if (fresh) t->gbuf->ready = 1;
    return fresh;
}

/* One node of the backward: its output's gradient and those of the inputs
   it adds into made ready (zeroed on first touch), then its function.
   (bench/regions.c --nodes times ea_backward node by node with it.) */
static void ea__backward_node(ea_ctx *ctx, ea_node *n) {
    int k;
    ea__grad_ready(n->out->gbuf);
    for (k = 0; k < 4; k++)
        if (n->in[k] && !(n->assigns >> k & 1)) ea__grad_ready(n->in[k]->gbuf);
    n->backward(ctx, n);
}

/* ea_backward before its nodes: the loss checked and seeded. */
static ea_status ea__backward_begin(ea_ctx *ctx, ea_tensor *loss) {
    if (ctx->err.status != EA_OK) return ctx->err.status;
    if (!loss)
        return ea_error_set(&ctx->err, EA_ERR_ARG, "backward: loss is NULL (an earlier op failed?)");
    if (loss->size != 1 || !loss->grad)
        return ea_error_set(&ctx->err, EA_ERR_ARG,
                            "backward: expected a scalar that requires grad, got %zu elements%s",
                            loss->size, loss->grad ? "" : " without a gradient");
    ea__grad_ready(loss->gbuf);
    loss->grad[0] += 1.0f;
    return EA_OK;
}

/* ea_backward after its nodes: gradients no node reached read 0. */
static ea_status ea__backward_end(ea_ctx *ctx) {
    ea_grad_buf *g;
    for (g = ctx->grads; g; g = g->next) ea__grad_ready(g);
    return ctx->err.status;
}

EA_API ea_status ea_backward(ea_ctx *ctx, ea_tensor *loss) {
    ea_node *n;
    if (ea__backward_begin(ctx, loss) != EA_OK) return ctx->err.status;
    for (n = ctx->tape; n && ctx->err.status == EA_OK; n = n->prev) ea__backward_node(ctx, n);
    return ea__backward_end(ctx);
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

EA_API ea_tensor *ea_buffer(ea_params *ps, const char *name, int ndim, const int *shape, ea_init init) {
    ea_tensor *t = ea_param(ps, name, ndim, shape, init, 0.0f);
    if (t) {
        t->requires_grad = 0;
        ps->info[ps->count - 1].buffer = 1;
    }
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
    ea_params_unpack(ps);
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
            case EA_INIT_SSM_A: t->data[j] = logf(1.0f + (float)(j % (size_t)(a >= 1.0f ? a : 1.0f))); break;
            case EA_INIT_SSM_DT: {
                float dt = expf(ea_rng_range(&rng, logf(1e-3f), logf(1e-1f)));
                t->data[j] = dt + logf(-expm1f(-dt));
                break;
            }
            }
        }
    }
}

EA_API void ea_params_zero_grad(ea_params *ps) { /* over threads: 4 MB for one layer of 512 channels */
    if (ps->grad) ea__par_span(ea__zero_n, ps->grad, NULL, NULL, ps->n, 1.0);
}

EA_API void ea_params_unpack(ea_params *ps) {
    int i;
    if (!ps) return;
    for (i = 0; i < ps->count; i++) ps->tensors[i]->packed = NULL;
    EFFATTN_FREE(ps->packed);
    ps->packed = NULL;
}

/* A 2-D parameter worth a transposed copy: its rows a whole number of
   AVX-512 vectors when transposed (what the GEMM reads in place) */
static int ea__packable(const ea_tensor *t) { return t->ndim == 2 && t->shape[0] % 16 == 0 && t->shape[1] > 0; }

EA_API ea_status ea_params_pack(ea_params *ps, ea_error *err) {
    size_t need = 16, at;
    int i, n, k;
    float *base;
    if (!ps || !ps->data) return ea_error_set(err, EA_ERR_ARG, "params_pack: no allocated parameters");
    ea_params_unpack(ps);
    for (i = 0; i < ps->count; i++)
        if (ea__packable(ps->tensors[i])) need += (ps->tensors[i]->size + 15) / 16 * 16;
    ps->packed = (float *)EFFATTN_MALLOC(need * sizeof(float));
    if (!ps->packed) return ea_error_set(err, EA_ERR_NOMEM, "params_pack: could not allocate %zu floats", need);
    base = ps->packed + (64 - (uintptr_t)ps->packed % 64) % 64 / sizeof(float); /* EFFATTN_MALLOC aligns to 4 at least */
    for (i = 0, at = 0; i < ps->count; i++) {
        ea_tensor *t = ps->tensors[i];
        float *wt = base + at;
        if (!ea__packable(t)) continue;
        n = t->shape[0];
        k = t->shape[1];
        ea__transpose(wt, n, t->data, k, n, k); /* wt[r, c] = w[c, r] */
        t->packed = wt;
        at += (t->size + 15) / 16 * 16;
    }
    return EA_OK;
}

EA_API void ea_params_free(ea_params *ps) {
    int i;
    ea_params_unpack(ps);
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

/* Row helpers on the SIMD layer (tails in scalar).  The compiler does not
   vectorise these loops itself: float sums may not be reordered, and y may
   alias x.  Measured in the tracker's forward (batch 32, one thread): the
   scalar bias adds took 8.5% of the time, the layer norms 12.8%. */
static void ea__add_n(float *y, const float *a, const float *b, size_t n) { /* y = a + b; y may be a */
    size_t j = 0;
    for (; j + EA_VW <= n; j += EA_VW) ea_vstore(y + j, ea_vadd(ea_vload(a + j), ea_vload(b + j)));
    for (; j < n; j++) y[j] = a[j] + b[j];
}

static void ea__mul_n(float *y, const float *a, const float *b, size_t n) { /* y = a ∘ b */
    size_t j = 0;
    for (; j + EA_VW <= n; j += EA_VW) ea_vstore(y + j, ea_vmul(ea_vload(a + j), ea_vload(b + j)));
    for (; j < n; j++) y[j] = a[j] * b[j];
}

static void ea__fma_n(float *y, const float *a, const float *b, size_t n) { /* y += a ∘ b */
    size_t j = 0;
    for (; j + EA_VW <= n; j += EA_VW) ea_vstore(y + j, ea_vfma(ea_vload(a + j), ea_vload(b + j), ea_vload(y + j)));
    for (; j < n; j++) y[j] += a[j] * b[j];
}

/* Parameter gradients sum over rows: db += Σ_i d_i, and dw += Σ_i d_i·x̂_i
   with x̂_i = (x_i - mean_i)·rstd_i when x is given (layer norm's weight).
   d and x are [M, N].  One thread per range of whole vectors of columns
   (the last one takes the scalar tail); a column adds its rows in order,
   as on one thread, so the bits do not depend on the thread count (a
   narrow sum goes by blocks of rows instead: ea__param_sums).  The
   sums stay in registers down the rows, up to four vectors at a time
   (four independent add chains), and are stored once: storing every row
   made two threads whose ranges met inside a cache line fight over it
   (perf over bench --tracker: 4.5% of the time on two threads, 1% on one).
   On one thread at 16 threads these sums were the training step's serial
   part (a linear's bias: M·N adds while its GEMMs ran on every core). */
EA_INLINE void ea__param_sum_block(float *db, float *dw, const float *d, const float *x, const float *mean,
                                    const float *rstd, size_t M, size_t N, size_t j, int nv) {
    ea_vf sb[4], sw[4];
    size_t i;
    int v;
    EA_UNROLL
    for (v = 0; v < nv; v++) {
        sb[v] = db ? ea_vload(db + j + v * EA_VW) : ea_vzero();
        sw[v] = x ? ea_vload(dw + j + v * EA_VW) : ea_vzero();
    }
    for (i = 0; i < M; i++) {
        const float *di = d + (size_t)i * N + j;
        if (db) {
            EA_UNROLL
            for (v = 0; v < nv; v++) sb[v] = ea_vadd(sb[v], ea_vload(di + v * EA_VW));
        }
        if (x) {
            const float *xi = x + (size_t)i * N + j;
            ea_vf mv = ea_vset1(mean[i]), rv = ea_vset1(rstd[i]);
            EA_UNROLL
            for (v = 0; v < nv; v++)
                sw[v] = ea_vfma(ea_vload(di + v * EA_VW), ea_vmul(ea_vsub(ea_vload(xi + v * EA_VW), mv), rv), sw[v]);
        }
    }
    EA_UNROLL
    for (v = 0; v < nv; v++) {
        if (db) ea_vstore(db + j + v * EA_VW, sb[v]);
        if (x) ea_vstore(dw + j + v * EA_VW, sw[v]);
    }
}

static void ea__param_sum_range(float *db, float *dw, const float *d, const float *x, const float *mean,
                                const float *rstd, size_t M, size_t N, size_t j0, size_t j1) {
    size_t i, j = j0;
    for (; j + 4 * EA_VW <= j1; j += 4 * EA_VW) ea__param_sum_block(db, dw, d, x, mean, rstd, M, N, j, 4);
    for (; j + EA_VW <= j1; j += EA_VW) ea__param_sum_block(db, dw, d, x, mean, rstd, M, N, j, 1);
    for (; j < j1; j++)
        for (i = 0; i < M; i++) {
            const float *di = d + (size_t)i * N, *xi = x ? x + (size_t)i * N : NULL;
            if (db) db[j] += di[j];
            if (xi) dw[j] += di[j] * (xi[j] - mean[i]) * rstd[i];
        }
}

/* A narrow sum (N <= EA_PS_COLS: a layer norm's weight and bias, a 64-wide
   linear's bias) has too few column vectors to keep many threads busy, and
   each of those few threads would read every row, rows that all the other
   threads have just written (at 16 threads the tracker's layer-norm sums
   took 49 us each, on 4 threads).  Its rows go in EA_PS_BLOCKS blocks
   instead (a count fixed by M alone): each block sums its rows from zero
   into a partial, one block per thread, and the partials are added into
   db and dw in block order, so the bits depend on the shape, not on the
   thread count.  The device's Xeon, training step at batch 32, 4 rounds
   alternating: these sums 620-701 -> 216-257 us a step at 16 threads, the
   step 6965-7524 -> 6680-7031 us; at 4 threads 589-634 -> 267-290 us. */
#define EA_PS_COLS 64
#define EA_PS_BLOCKS 16
static void ea__param_sums(float *db, float *dw, const float *d, const float *x, const float *mean, const float *rstd,
                           size_t M, size_t N) {
    if (!db && !(dw && x)) return;
    if (!(dw && x)) x = NULL;
    if (N <= EA_PS_COLS && M >= 4 * EA_PS_BLOCKS) {
        float part[EA_PS_BLOCKS][2][EA_PS_COLS];
        size_t rb = (M + EA_PS_BLOCKS - 1) / EA_PS_BLOCKS, j;
        int nb = (int)((M + rb - 1) / rb), k;
        EA_OMP_FOR_IF((double)M * N >= EA_PAR_MIN_WORK)
        for (k = 0; k < nb; k++) {
            size_t i0 = (size_t)k * rb, rows = M - i0 < rb ? M - i0 : rb;
            memset(part[k], 0, sizeof part[k]);
            ea__param_sum_range(db ? part[k][0] : NULL, part[k][1], d + i0 * N, x ? x + i0 * N : NULL,
                                x ? mean + i0 : NULL, x ? rstd + i0 : NULL, rows, N, 0, N);
        }
        for (k = 0; k < nb; k++)
            for (j = 0; j < N; j++) {
                if (db) db[j] += part[k][0][j];
                if (x) dw[j] += part[k][1][j];
            }
        return;
    }
#ifdef _OPENMP
    if (N / EA_VW > 1 && !omp_in_parallel() && omp_get_max_threads() > 1 && (double)M * N >= EA_PAR_MIN_WORK) {
        _Pragma("omp parallel")
        {
            size_t nv = N / EA_VW, nt = (size_t)omp_get_num_threads() < nv ? (size_t)omp_get_num_threads() : nv,
                   t = (size_t)omp_get_thread_num();
            if (t < nt)
                ea__param_sum_range(db, dw, d, x, mean, rstd, M, N, nv * t / nt * EA_VW,
                                    t == nt - 1 ? N : nv * (t + 1) / nt * EA_VW);
        }
        return;
    }
#endif
    ea__param_sum_range(db, dw, d, x, mean, rstd, M, N, 0, N);
}

static float ea__row_sum(const float *x, int n) {
    ea_vf acc = ea_vzero();
    float s;
    int j = 0;
    for (; j + EA_VW <= n; j += EA_VW) acc = ea_vadd(acc, ea_vload(x + j));
    s = ea_vhsum(acc);
    for (; j < n; j++) s += x[j];
    return s;
}

/* --- linear: out[M,N] = inp[M,K] · w[N,K]ᵀ + b[N]   (2·M·N·K FLOPs) ----- */
/* out = inp·wᵀ + b with wᵀ read through strides (brs, bcs) */
static void ea__linear_gemm(float *out, const float *inp, const float *wt, ptrdiff_t brs, ptrdiff_t bcs, const float *b, int M,
                            int K, int N, ea__span_fn post, float *pout) {
    ea__gemm_run(M, N, K, inp, K, 1, wt, brs, bcs, out, N, 0, b, 1, post, pout); /* the bias rides in the GEMM's store */
}

EA_API void ea_linear_fwd(float *out, const float *inp, const float *w, const float *b, int M,
                          int K, int N) {
    ea__linear_gemm(out, inp, w, 1, K, b, M, K, N, NULL, NULL);
}

/* The same from a weight tensor: its transposed copy when ea_params_pack
   made one (read in place by the GEMM), except for one or two rows, which
   take dot products along w's rows either way.  Rows r0 .. r0 + N - 1 of w
   (and of b) only: a layer whose one projection feeds two paths (mamba's
   in_proj: x and the gate z) takes each half as its own product, where
   splitting one output would copy both halves out of it. */
static void ea__linear_fwd_rows(float *out, const float *inp, const ea_tensor *w, const float *b, int r0, int M, int K,
                                int N, ea__span_fn post, float *pout) {
    if (b) b += r0;
    if (w->packed && M > EA_GEMV_ROWS) ea__linear_gemm(out, inp, w->packed + r0, w->shape[0], 1, b, M, K, N, post, pout);
    else ea__linear_gemm(out, inp, w->data + (size_t)r0 * K, 1, K, b, M, K, N, post, pout);
}

/* A weight gradient dW = dYᵀ·X has few rows (a layer's outputs) and a long
   k (every token of the batch): split by rows of C alone, a 64-row dW
   keeps 11-16 threads busy however many there are.  Its k blocks (EA_KC
   long) are independent until they are added into C, so they run in
   parallel too, each into its own slice of scratch (k_blocks·M·N floats,
   ea__gemm_split_floats), and are then added into C block by block:
   ((C + p0) + p1) + ..., the order in which the sequential product adds
   its blocks' sums, so the bits are the same.  It runs only where it pays
   (more than one thread, k past one block, under two row tiles a thread);
   ea__gemm_split_floats is 0 elsewhere, and ea__gemm_split_k returns 0
   there (or without scratch), doing nothing. */
static size_t ea__gemm_split_floats(int M, int N, int K) {
#ifdef _OPENMP
    if (K > EA_KC && M > 0 && N > 0 && !omp_in_parallel() && omp_get_max_threads() > 1 &&
        (M + EA_MR - 1) / EA_MR < 2 * omp_get_max_threads() && (double)M * N * K >= 4 * EA_PAR_MIN_WORK)
        return (size_t)((K + EA_KC - 1) / EA_KC) * (size_t)M * (size_t)N;
#else
    (void)M; (void)N; (void)K;
#endif
    return 0;
}

static int ea__gemm_split_k(int M, int N, int K, const float *A, ptrdiff_t ars, ptrdiff_t acs, const float *B,
                            ptrdiff_t brs, ptrdiff_t bcs, float *C, ptrdiff_t ldc, int accumulate, float *scratch) {
#ifdef _OPENMP
    int nkb = (K + EA_KC - 1) / EA_KC, tiles = (M + EA_MR - 1) / EA_MR;
    if (!scratch || !ea__gemm_split_floats(M, N, K)) return 0;
    _Pragma("omp parallel")
    {
        int nt = omp_get_num_threads(), t = omp_get_thread_num(), items = nkb * tiles, it, i, b;
        int t0 = (int)((long)items * t / nt), t1 = (int)((long)items * (t + 1) / nt);
        for (it = t0; it < t1; it++) { /* item = (k block, row tile) */
            int kb = it / tiles, i0 = it % tiles * EA_MR, i1 = i0 + EA_MR < M ? i0 + EA_MR : M;
            int k0 = kb * EA_KC, kc = K - k0 < EA_KC ? K - k0 : EA_KC;
            ea__gemm_rows(i0, i1, N, kc, A + (ptrdiff_t)k0 * acs, ars, acs, B + (ptrdiff_t)k0 * brs, brs, bcs,
                          scratch + (size_t)kb * M * N, N, 0, NULL);
        }
        _Pragma("omp barrier")
        t0 = (int)((long)M * t / nt);
        t1 = (int)((long)M * (t + 1) / nt);
        for (i = t0; i < t1; i++) {
            float *c = C + (ptrdiff_t)i * ldc;
            for (b = 0; b < nkb; b++) {
                const float *p = scratch + ((size_t)b * M + (size_t)i) * N;
                if (b == 0 && !accumulate) memcpy(c, p, (size_t)N * sizeof(float));
                else ea__add_n(c, c, p, (size_t)N);
            }
        }
    }
    return 1;
#else
    (void)M; (void)N; (void)K; (void)A; (void)ars; (void)acs; (void)B; (void)brs; (void)bcs; (void)C; (void)ldc;
    (void)accumulate; (void)scratch;
    return 0;
#endif
}

/* dinp += dout·w,  dw += doutᵀ·inp,  db += Σ_rows dout   (any may be NULL);
   split: NULL, or ea__gemm_split_floats(N, K, M) floats for dw's k blocks;
   doutT: NULL, or M·N floats for doutᵀ.  Read in place, doutᵀ's k steps
   (tokens) lie N floats apart: a tile's kc = 512 steps are 512 lines 2-8
   KiB apart, which share a few cache sets and evict each other, so every
   broadcast of A waits on L2 or L3.  One core of the device's Xeon, a
   mamba layer's dW products at n = 1024 (bench/results/
   scaling-mamba/dw-transposed-ab.txt): in_proj's 2048 x 512 x 1024 ran at
   74 GFLOP/s in place, 148 from a transposed copy (the forward's rate),
   out_proj's 121 against 151; one Zen 3 core 42-56 against 70-76.  The
   copy costs M·N moves, memory-bound: it pays where each moved float
   serves 2·K >= 2·EA_KC FLOPs (ea__linear_back's rule; at the tracker's
   K = 64 and 256 the copies cost more than they saved: its training step
   at batch 32 went from 37-39 to 44-48 ms on one Xeon core).  Packing A
   inside the GEMM measured slower on Zen 3: per tile the strided reads
   remain, once per panel; per block of 32 rows (what a stack buffer
   holds) each panel of B serves 8 tiles where it served 128.  A tile
   reads the same values in the same order either way: the same bits. */
static void ea__linear_bwd(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                           int M, int K, int N, float *split, float *doutT, int dinp_acc) {
    const float *a = dout;
    ptrdiff_t ars = 1, acs = N;
    if (dinp) ea_gemm(M, K, N, dout, N, 1, w, K, 1, dinp, K, dinp_acc);
    if (dw && doutT) {
        ea__transpose(doutT, M, dout, N, M, N);
        a = doutT;
        ars = M;
        acs = 1;
    }
    if (dw && !ea__gemm_split_k(N, K, M, a, ars, acs, inp, K, 1, dw, K, 1, split))
        ea_gemm(N, K, M, a, ars, acs, inp, K, 1, dw, K, 1);
    if (db) ea__param_sums(db, NULL, dout, NULL, NULL, NULL, M, N);
}

EA_API void ea_linear_bwd(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                          const float *w, int M, int K, int N) {
    ea__linear_bwd(dinp, dw, db, dout, inp, w, M, K, N, NULL, NULL, 1);
}

/* The split's and the transposed copy's scratch live only through this
   call: the arena is wound back after it (a training step's peak would
   otherwise hold every layer's).  The copy is made for K >= EA_KC and at
   least 128 rows (fewer tokens' lines fit in L1 in place). */
static void ea__linear_back(ea_ctx *ctx, ea_node *n) {
    ea_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2];
    int M = n->iarg[0], K = n->iarg[1], N = n->iarg[2], r0 = n->iarg[3];
    size_t ns = w->grad ? ea__gemm_split_floats(N, K, M) : 0; /* 0 where the split does not run */
    size_t nt = w->grad && K >= EA_KC && M >= 128 ? (size_t)M * N : 0;
    ea__arena_mark mk = ea__arena_mark_get(&ctx->arena);
    ea__linear_bwd(x->grad, w->grad ? w->grad + (size_t)r0 * K : NULL, b && b->grad ? b->grad + r0 : NULL, n->out->grad,
                   x->data, w->data + (size_t)r0 * K, M, K, N, ns ? ea__floats(ctx, ns) : NULL,
                   nt ? ea__floats(ctx, nt) : NULL, !ea__grad_fresh(x));
    ea__arena_mark_back(&ctx->arena, mk);
}

static void ea__gelu_fwd_span(float *out, const float *x, const float *unused, size_t n);
static void ea__gelu_back(ea_ctx *ctx, ea_node *n);

/* out = x·w[r0 .. r0 + N)ᵀ + b[r0 .. r0 + N): rows of w as their own linear
   (ea__linear_fwd_rows); ea_linear takes them all.  With gelu, GELU(out)
   (ea_linear_gelu). */
static ea_tensor *ea__linear_rows(ea_ctx *ctx, ea_tensor *x, ea_tensor *w, ea_tensor *b, int r0, int N, int gelu) {
    int shape[EA_MAX_DIMS], K, M, i;
    ea_tensor *out, *g = NULL;
    ea_node *n;
    char s1[48], s2[48];
    if (!ea__ok(ctx, x, w)) return NULL;
    K = x->shape[x->ndim - 1];
    if (w->ndim != 2 || w->shape[1] != K)
        return ea__fail(ctx, EA_ERR_SHAPE, "linear: input %s needs a weight [out, %d], got %s",
                        ea__shape_str(x, s1, sizeof s1), K, ea__shape_str(w, s2, sizeof s2));
    if (r0 < 0 || N < 0 || r0 > w->shape[0] - N)
        return ea__fail(ctx, EA_ERR_SHAPE, "linear: rows %d .. %d of a weight of %d", r0, r0 + N - 1, w->shape[0]);
    if (b && (b->ndim != 1 || b->shape[0] != w->shape[0]))
        return ea__fail(ctx, EA_ERR_SHAPE, "linear: bias must be [%d], got %s", w->shape[0],
                        ea__shape_str(b, s1, sizeof s1));
    M = (int)(x->size / (size_t)K);
    for (i = 0; i < x->ndim; i++) shape[i] = x->shape[i];
    shape[x->ndim - 1] = N;
    out = ea__out(ctx, x->ndim, shape, x, w, b);
    if (!out) return NULL;
    /* GELU in place where no backward needs the product itself */
    if (gelu && out->requires_grad && !(g = ea__out(ctx, x->ndim, shape, out, NULL, NULL))) return NULL;
    ea__linear_fwd_rows(out->data, x->data, w, b ? b->data : NULL, r0, M, K, N, gelu ? ea__gelu_fwd_span : NULL,
                        g ? g->data : out->data);
    n = ea__record(ctx, ea__linear_back, out, x, w, b);
    if (n) {
        n->iarg[0] = M;
        n->iarg[1] = K;
        n->iarg[2] = N;
        n->iarg[3] = r0;
        n->assigns = 1; /* dX: a GEMM that assigns when x's gradient is fresh */
    }
    if (!g) return out;
    n = ea__record(ctx, ea__gelu_back, g, out, NULL, NULL);
    if (n) n->assigns = 1;
    return g;
}

EA_API ea_tensor *ea_linear(ea_ctx *ctx, ea_tensor *x, ea_tensor *w, ea_tensor *b) {
    return ea__linear_rows(ctx, x, w, b, 0, w && w->ndim == 2 ? w->shape[0] : 0, 0);
}

/* GELU(x·wᵀ + b), the hidden layer of every MLP here, as one op: each
   thread applies GELU to the rows of the product it has just made, while
   they are in its cache, where ea_gelu(ea_linear(...)) read the product
   back in a pass of its own, split differently over the threads, so
   mostly from other cores (regions on the device's Xeon, the tracker at
   batch 32 on 16 threads: that pass took 92-107 us, four times a
   training step of 8.1 ms, for 33,280 values a thread).  On the tape it
   is the linear's node and GELU's: the backward of the two ops.  The same
   bits as the two ops where a row is a whole number of vectors (elsewhere
   each row's last values take the scalar GELU, not only the tensor's). */
EA_API ea_tensor *ea_linear_gelu(ea_ctx *ctx, ea_tensor *x, ea_tensor *w, ea_tensor *b) {
    return ea__linear_rows(ctx, x, w, b, 0, w && w->ndim == 2 ? w->shape[0] : 0, 1);
}

/* --- matmul: c[.., M, N] = op(a)[.., M, K] · op(b)[.., K, N] ---------------
   op(x) is x or its transpose (last two dims); b may be 2-D and shared.
   As strided views: op(a)(i, k) = a[i·ars + k·acs], op(b)(k, j) likewise.
   Backward: d op(a) = dc · op(b)ᵀ, d op(b) = op(a)ᵀ · dc, each written
   through the same strides (a transposed operand receives a transposed
   gradient). */
typedef struct ea__mm {
    int batch, M, K, N, bshared;
    ptrdiff_t ars, acs, brs, bcs;
    int ta, tb;
} ea__mm;

static void ea__mm_shape(ea__mm *m, const ea_node *n) {
    m->batch = n->iarg[0]; m->M = n->iarg[1]; m->K = n->iarg[2]; m->N = n->iarg[3]; m->bshared = n->iarg[4];
    m->ta = n->iarg[5]; m->tb = n->iarg[6];
    m->ars = m->ta ? 1 : m->K; m->acs = m->ta ? m->M : 1;
    m->brs = m->tb ? 1 : m->N; m->bcs = m->tb ? m->K : 1;
}

/* A batch of products goes over threads one product a thread when there
   are at least as many products as threads, or when each is too small to
   give every thread of a team its share: nystrom's pseudo-inverse iterates
   on 8 heads' 64 x 64 products, 726 GEMMs a training step at n = 1,024,
   each of which forked a team of its own (at 16 threads nystrom took
   30-33 ms there against mha's 21.5).  A product computed on one thread has
   the bits of one split over a team (ea__gemm_run splits by rows of C), so
   the results do not change.  Not where products add into one shared
   gradient (b 2-D). */
static int ea__mm_par(const ea__mm *m) {
#ifdef _OPENMP
    int nt = omp_in_parallel() ? 1 : omp_get_max_threads();
    return nt > 1 && m->batch > 1 &&
           (m->batch >= nt || (double)m->M * m->N * m->K < EA_PAR_MIN_WORK * nt);
#else
    (void)m;
    return 0;
#endif
}

/* Product i of the batch: c = op(a)·op(b) in the forward (io->c), the
   gradients da, db (either may be NULL) in the backward. */
typedef struct ea__mm_io {
    const float *a, *b, *dc;
    float *c, *da, *db;
} ea__mm_io;

static void ea__mm_one(const ea__mm *m, const ea__mm_io *io, int i) {
    size_t sa = (size_t)m->M * m->K, sb = m->bshared ? 0 : (size_t)m->K * m->N, sc = (size_t)m->M * m->N;
    const float *ai = io->a + i * sa, *bi = io->b + i * sb, *dc;
    float *da, *db;
    if (io->c) {
        ea_gemm(m->M, m->N, m->K, ai, m->ars, m->acs, bi, m->brs, m->bcs, io->c + i * sc, m->N, 0);
        return;
    }
    dc = io->dc + i * sc;
    da = io->da ? io->da + i * sa : NULL;
    db = io->db ? io->db + i * sb : NULL;
    if (da && !m->ta) ea_gemm(m->M, m->K, m->N, dc, m->N, 1, bi, m->bcs, m->brs, da, m->K, 1);
    if (da && m->ta) ea_gemm(m->K, m->M, m->N, bi, m->brs, m->bcs, dc, 1, m->N, da, m->M, 1);
    if (db && !m->tb) ea_gemm(m->K, m->N, m->M, ai, m->acs, m->ars, dc, m->N, 1, db, m->N, 1);
    if (db && m->tb) ea_gemm(m->N, m->K, m->M, dc, 1, m->N, ai, m->ars, m->acs, db, m->K, 1);
}

/* The batch, over threads when par (ea__par_items: each product may fork
   a team of its own when it runs alone). */
typedef struct ea__mm_job {
    const ea__mm *m;
    const ea__mm_io *io;
} ea__mm_job;

static void ea__mm_item(const void *arg, int i) {
    const ea__mm_job *j = (const ea__mm_job *)arg;
    ea__mm_one(j->m, j->io, i);
}

static void ea__mm_batch(const ea__mm *m, const ea__mm_io *io, int par) {
    ea__mm_job j;
    j.m = m;
    j.io = io;
    ea__par_items(ea__mm_item, &j, m->batch, par);
}

static void ea__matmul_back(ea_ctx *ctx, ea_node *n) {
    ea_tensor *a = n->in[0], *b = n->in[1];
    ea__mm m;
    ea__mm_io io;
    (void)ctx;
    ea__mm_shape(&m, n);
    memset(&io, 0, sizeof io);
    io.a = a->data; io.b = b->data; io.dc = n->out->grad; io.da = a->grad; io.db = b->grad;
    ea__mm_batch(&m, &io, ea__mm_par(&m) && !(m.bshared && b->grad));
}

EA_API ea_tensor *ea_matmul_t(ea_ctx *ctx, ea_tensor *a, int ta, ea_tensor *b, int tb) {
    int Ra, Ca, Rb, Cb, i, shape[EA_MAX_DIMS];
    ea__mm m;
    ea__mm_io io;
    ea_tensor *out;
    ea_node *n;
    char s1[48], s2[48];
    if (!ea__ok(ctx, a, b)) return NULL;
    if (a->ndim < 2 || b->ndim < 2) goto bad;
    Ra = a->shape[a->ndim - 2]; Ca = a->shape[a->ndim - 1];
    Rb = b->shape[b->ndim - 2]; Cb = b->shape[b->ndim - 1];
    m.ta = ta ? 1 : 0; m.tb = tb ? 1 : 0;
    m.M = ta ? Ca : Ra; m.K = ta ? Ra : Ca; m.N = tb ? Rb : Cb;
    if ((tb ? Cb : Rb) != m.K) goto bad;
    m.batch = (int)(a->size / ((size_t)Ra * Ca));
    m.bshared = b->ndim == 2;
    if (!m.bshared && b->size / ((size_t)Rb * Cb) != (size_t)m.batch) goto bad;
    m.ars = ta ? 1 : Ca; m.acs = ta ? Ca : 1;
    m.brs = tb ? 1 : Cb; m.bcs = tb ? Cb : 1;
    for (i = 0; i < a->ndim; i++) shape[i] = a->shape[i];
    shape[a->ndim - 2] = m.M;
    shape[a->ndim - 1] = m.N;
    out = ea__out(ctx, a->ndim, shape, a, b, NULL);
    if (!out) return NULL;
    memset(&io, 0, sizeof io);
    io.a = a->data; io.b = b->data; io.c = out->data;
    ea__mm_batch(&m, &io, ea__mm_par(&m));
    n = ea__record(ctx, ea__matmul_back, out, a, b, NULL);
    if (n) {
        n->iarg[0] = m.batch; n->iarg[1] = m.M; n->iarg[2] = m.K; n->iarg[3] = m.N; n->iarg[4] = m.bshared;
        n->iarg[5] = m.ta; n->iarg[6] = m.tb;
    }
    return out;
bad:
    return ea__fail(ctx, EA_ERR_SHAPE,
                    "matmul: expected a [.., M, K] and b [K, N] or [.., K, N] with the same batch "
                    "(after the requested transposes %d, %d), got %s and %s",
                    ta, tb, ea__shape_str(a, s1, sizeof s1), ea__shape_str(b, s2, sizeof s2));
}

EA_API ea_tensor *ea_matmul(ea_ctx *ctx, ea_tensor *a, ea_tensor *b) { return ea_matmul_t(ctx, a, 0, b, 0); }

/* --- add: out = a + b; b has a's shape or a's trailing shape (broadcast) */
static void ea__add_back(ea_ctx *ctx, ea_node *n) {
    ea_tensor *a = n->in[0], *b = n->in[1];
    const float *d = n->out->grad;
    size_t nb = b->size;
    (void)ctx;
    if (a->grad) ea__par_span(ea__grad_fresh(a) ? ea__copy_n : ea__add_n, a->grad, d, a->grad, a->size, 1.0);
    if (b->grad && nb == a->size) ea__par_span(ea__grad_fresh(b) ? ea__copy_n : ea__add_n, b->grad, d, b->grad, nb, 1.0);
    else if (b->grad) ea__param_sums(b->grad, NULL, d, NULL, NULL, NULL, a->size / nb, nb);
}

EA_API ea_tensor *ea_add(ea_ctx *ctx, ea_tensor *a, ea_tensor *b) {
    ea_tensor *out;
    ea_node *n;
    size_t nb;
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
    if (nb == a->size) ea__par_span(ea__add_n, out->data, a->data, b->data, nb, 1.0);
    else {
        /* block by block (no division per element), blocks over threads:
           the tracker's position embedding, run on one thread, was a serial
           piece of its batch-32 step */
        long blk, nblk = nb ? (long)(a->size / nb) : 0;
        EA_OMP_FOR_IF(nblk > 1 && (double)a->size >= EA_PAR_MIN_WORK)
        for (blk = 0; blk < nblk; blk++) ea__add_n(out->data + (size_t)blk * nb, a->data + (size_t)blk * nb, b->data, nb);
    }
    n = ea__record(ctx, ea__add_back, out, a, b, NULL);
    if (n) n->assigns = nb == a->size ? 3 : 1; /* a's gradient, and b's unless broadcast: a copy when fresh */
    return out;
bad:
    return ea__fail(ctx, EA_ERR_SHAPE, "add: b must have a's shape or its trailing shape, got %s and %s",
                    ea__shape_str(a, s1, sizeof s1), ea__shape_str(b, s2, sizeof s2));
}

/* --- layer norm over the last dimension C ---------------------------------
   y = (x - μ) / sqrt(σ² + eps) · w + b,  μ, σ² over the row (biased).
   Backward with x̂ = (x - μ)·rstd and g = dy·w:
       dx = rstd · (g - mean(g) - x̂ · mean(g · x̂)),  dw += dy·x̂,  db += dy. */
/* Rows [i0, i1) (section 9's one-region inference runs a thread's own
   rows); inlined, so the loop below runs each row without a call. */
EA_INLINE void ea__layernorm_rows(float *out, float *mean, float *rstd, const float *x, const float *w, const float *b,
                                  int i0, int i1, int C, float eps) {
    int i;
    for (i = i0; i < i1; i++) {
        const float *xi = x + (size_t)i * C;
        float *oi = out + (size_t)i * C;
        float m = ea__row_sum(xi, C) / (float)C, v, s;
        ea_vf acc = ea_vzero(), mv = ea_vset1(m), sv, one = ea_vset1(1.0f);
        int j = 0;
        for (; j + EA_VW <= C; j += EA_VW) {
            ea_vf d = ea_vsub(ea_vload(xi + j), mv);
            acc = ea_vfma(d, d, acc);
        }
        v = ea_vhsum(acc);
        for (; j < C; j++) v += (xi[j] - m) * (xi[j] - m);
        s = 1.0f / sqrtf(v / (float)C + eps);
        sv = ea_vset1(s);
        for (j = 0; j + EA_VW <= C; j += EA_VW) {
            ea_vf y = ea_vmul(ea_vmul(ea_vsub(ea_vload(xi + j), mv), sv), w ? ea_vload(w + j) : one);
            ea_vstore(oi + j, b ? ea_vadd(y, ea_vload(b + j)) : y);
        }
        for (; j < C; j++) oi[j] = (xi[j] - m) * s * (w ? w[j] : 1.0f) + (b ? b[j] : 0.0f);
        if (mean) mean[i] = m;
        if (rstd) rstd[i] = s;
    }
}

EA_API void ea_layernorm_fwd(float *out, float *mean, float *rstd, const float *x, const float *w,
                             const float *b, int N, int C, float eps) {
    int i;
    EA_OMP_FOR_IF((double)N * C >= EA_PAR_MIN_WORK)
    for (i = 0; i < N; i++) ea__layernorm_rows(out, mean, rstd, x, w, b, i, i + 1, C, eps);
}

EA_API void ea_layernorm_bwd(float *dx, float *dw, float *db, const float *dout, const float *x,
                             const float *mean, const float *rstd, const float *w, int N, int C) {
    int i;
    if (dx) {
        EA_OMP_FOR_IF((double)N * C >= EA_PAR_MIN_WORK)
        for (i = 0; i < N; i++) {
            const float *xi = x + (size_t)i * C, *di = dout + (size_t)i * C;
            float *dxi = dx + (size_t)i * C;
            ea_vf mv = ea_vset1(mean[i]), rv = ea_vset1(rstd[i]), one = ea_vset1(1.0f);
            ea_vf ag = ea_vzero(), agx = ea_vzero(), mgv, mgxv;
            float mg, mgx;
            int jj = 0;
            for (; jj + EA_VW <= C; jj += EA_VW) {
                ea_vf xh = ea_vmul(ea_vsub(ea_vload(xi + jj), mv), rv);
                ea_vf g = ea_vmul(ea_vload(di + jj), w ? ea_vload(w + jj) : one);
                ag = ea_vadd(ag, g);
                agx = ea_vfma(g, xh, agx);
            }
            mg = ea_vhsum(ag);
            mgx = ea_vhsum(agx);
            for (; jj < C; jj++) {
                float xh = (xi[jj] - mean[i]) * rstd[i], g = di[jj] * (w ? w[jj] : 1.0f);
                mg += g;
                mgx += g * xh;
            }
            mg /= (float)C;
            mgx /= (float)C;
            mgv = ea_vset1(mg);
            mgxv = ea_vset1(mgx);
            for (jj = 0; jj + EA_VW <= C; jj += EA_VW) {
                ea_vf xh = ea_vmul(ea_vsub(ea_vload(xi + jj), mv), rv);
                ea_vf g = ea_vmul(ea_vload(di + jj), w ? ea_vload(w + jj) : one);
                ea_vf t = ea_vsub(ea_vsub(g, mgv), ea_vmul(xh, mgxv));
                ea_vstore(dxi + jj, ea_vfma(rv, t, ea_vload(dxi + jj)));
            }
            for (; jj < C; jj++) {
                float xh = (xi[jj] - mean[i]) * rstd[i], g = di[jj] * (w ? w[jj] : 1.0f);
                dxi[jj] += rstd[i] * (g - mg - xh * mgx);
            }
        }
    }
    ea__param_sums(db, dw, dout, x, mean, rstd, N, C);
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
   Φ(x) = (1 + erf(x/√2)) / 2;  d/dx = Φ(x) + x · φ(x),  φ(x) = exp(-x²/2) / √(2π).
   libm's erff is slow and does not vectorise, so the vector path takes
   erf from a rational function, odd in z = |x| (clamped to 5.6, where
   erf(z/√2) is 1 within 2e-8), in s = (z / 5.6)²:
       erf(z/√2) ≈ z · P(s) / Q(s),   P, Q of degree 5, Q(0) = 1,
       P(s) = 0.797884496 + 2.15201962 s + 9.25007092 s² + 10.6752873 s³
              + 12.2630326 s⁴ + 1.34266244 s⁵,
       Q(s) = 1 + 7.92380206 s + 28.4234765 s² + 58.8718119 s³
              + 72.3279153 s⁴ + 35.7463563 s⁵,
   fitted for this header (weighted least squares on 6,000 points of
   [0, 5.6], reweighted toward the minimax, Lawson's iteration): |error|
   2.3e-8 in exact arithmetic; in float, a few ulp of 1 (the test holds
   GELU within 1e-6 of the double formula).  Every coefficient is
   positive, so the two Horner sums add no cancellation.
   No exp: GELU's forward took 8.4% of the tracker's batch-1 inference with
   Abramowitz & Stegun's erfc (a division and an exp), 5.5% now (a bare
   loop over 65,536 values: 0.12 -> 0.07 s for 2,000 passes, Zen 3).  The
   loop is bound by the vector units' two ports (about 19 operations a
   vector; the division is not the limit: a reciprocal estimate and a
   Newton step ran no faster), so it saves operations where it can:
   - the sums run on z² itself, each coefficient of s^k divided by 5.6^2k
     (in double, rounded once): the scaling multiply goes;
   - P carries the final halving, h = erf/2 = z · (P/2) / Q;
   - the forward takes GELU(x) = x/2 + |x|·h, which is x·(1/2 + h) for
     x > 0 and x·(1/2 - h) below: one FMA where the sign select, an add
     and a multiply had been.
   65,536 values on one core of this project's Xeon VM: 22.4-22.8 ->
   19.3-19.6 us (best of five runs of 2,000 passes, three times each);
   the largest error over [-12, 12] against the double formula 8.5e-7 ->
   8.1e-7 (the ulp of x near 12).  The tracker's inference, weights
   packed, one thread pinned, ten rounds in turn (regions --batch 32
   --pack; the device's H100 host, a Xeon of model 143): batch 32
   10.41-10.51 -> 10.24-10.35 ms, batch 1 325-331 -> 322-326 us.  The
   backward takes φ's exp as well.  Leftover elements use the libm
   formula (the reference). */
EA_INLINE ea_vf ea__gelu_half_erf(ea_vf ax) { /* erf(|x|/√2) / 2 from |x| */
    ea_vf z = ea_vmin(ax, ea_vset1(5.6f)), s = ea_vmul(z, z);
    ea_vf p = ea_vset1(2.21338308e-08f), q = ea_vset1(1.1785595e-06f);
    p = ea_vfma(p, s, ea_vset1(6.33962645e-06f));
    q = ea_vfma(q, s, ea_vset1(7.47828017e-05f));
    p = ea_vfma(p, s, ea_vset1(0.000173069842f));
    q = ea_vfma(q, s, ea_vset1(0.00190888264f));
    p = ea_vfma(p, s, ea_vset1(0.0047028698f));
    q = ea_vfma(q, s, ea_vset1(0.0289018136f));
    p = ea_vfma(p, s, ea_vset1(0.0343115367f));
    q = ea_vfma(q, s, ea_vset1(0.252672255f));
    p = ea_vfma(p, s, ea_vset1(0.398942262f));
    q = ea_vfma(q, s, ea_vset1(1.0f));
    return ea_vmin(ea_vdiv(ea_vmul(z, p), q), ea_vset1(0.5f));
}
EA_INLINE ea_vf ea__gelu_cdf(ea_vf x) { /* Φ(x) = 1/2 ± h */
    ea_vf h = ea__gelu_half_erf(ea_vabs(x));
    return ea_vsel_pos(x, ea_vadd(ea_vset1(0.5f), h), ea_vsub(ea_vset1(0.5f), h));
}

static void ea__gelu_fwd_span(float *out, const float *x, const float *unused, size_t n) {
    size_t i = 0;
    (void)unused;
#if EA_VW > 1
    for (; i + EA_VW <= n; i += EA_VW) {
        ea_vf xv = ea_vload(x + i), ax = ea_vabs(xv);
        ea_vstore(out + i, ea_vfma(ax, ea__gelu_half_erf(ax), ea_vmul(xv, ea_vset1(0.5f))));
    }
#endif
    for (; i < n; i++) out[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}

EA_API void ea_gelu_fwd(float *out, const float *x, size_t n) { ea__par_span(ea__gelu_fwd_span, out, x, NULL, n, 20.0); }

/* dx += dout·GELU'(x), or dx = dout·GELU'(x) (acc 0: the same bits as
   adding into zeros).  With the forward's output y = x·Φ(x) at hand (the
   tape's GELU nodes), Φ(x) = y / x, one division where the rational
   function takes 10 FMAs, 3 multiplies and a division; x = 0 takes
   Φ(0) = 1/2.  y / x is Φ within an ulp or two of the forward's own
   (y is its product rounded once): over 2 M values of [-4, 4] the two
   backwards differ by 1.2e-7 at most, and lie within 2.1e-7 and 2.7e-7
   of the double formula.  One Zen 4 core: 65,536 values in cache 40 ->
   25 us; 2 M from memory (the tracker's four fc1 outputs at batch 32)
   1.31 -> 0.99-1.04 ms; its training step (regions --train, eight rounds
   alternating) 38.6-42.7 -> 38.2-40.7 ms.
   Taken along by the next layer's backward instead, as the post of its dx
   product (each group of 48 rows as it is stored, the GELU node skipped),
   the tracker's training step at batch 32 on this project's Xeon VM was
   level on one thread (the pass's 1.5-1.7 ms a step gone, the products
   1.5-2.0 ms slower: the post still reads x and y from memory) and 3-6%
   slower on two (16.5-17.2 -> 17.3-17.9 ms, nine rounds in turn): not
   kept. */
EA_INLINE void ea__gelu_bwd_n(float *dx, const float *dout, const float *x, const float *y, size_t n, int acc) {
    size_t i = 0;
#if EA_VW > 1
    for (; i + EA_VW <= n; i += EA_VW) {
        ea_vf xv = ea_vload(x + i);
        ea_vf pdf = ea_vmul(ea_vexp(ea_vmul(ea_vmul(xv, xv), ea_vset1(-0.5f))), ea_vset1(0.39894228040143268f));
        ea_vf cdf = y ? ea_vsel_pos(ea_vabs(xv), ea_vdiv(ea_vload(y + i), xv), ea_vset1(0.5f)) : ea__gelu_cdf(xv);
        ea_vstore(dx + i, ea_vfma(ea_vload(dout + i), ea_vfma(xv, pdf, cdf), acc ? ea_vload(dx + i) : ea_vzero()));
    }
#endif
    for (; i < n; i++) {
        float cdf = y ? (x[i] != 0.0f ? y[i] / x[i] : 0.5f) : 0.5f * (1.0f + erff(x[i] * 0.70710678118654752f));
        float pdf = 0.39894228040143268f * expf(-0.5f * x[i] * x[i]);
        dx[i] = (acc ? dx[i] : 0.0f) + dout[i] * (cdf + x[i] * pdf);
    }
}
static void ea__gelu_bwd_span(float *dx, const float *dout, const float *x, size_t n) {
    ea__gelu_bwd_n(dx, dout, x, NULL, n, 1);
}

EA_API void ea_gelu_bwd(float *dx, const float *dout, const float *x, size_t n) {
    ea__par_span(ea__gelu_bwd_span, dx, dout, x, n, 30.0);
}

/* The node's input x, its output y: four arrays, on ea__par_chunks' spans.
   Whether dx is fresh is asked once, before the spans (asking marks it). */
typedef struct {
    const ea_node *n;
    int acc;
} ea__gelu_job;
static void ea__gelu_back_chunk(const void *arg, size_t o, size_t len) {
    const ea__gelu_job *j = (const ea__gelu_job *)arg;
    const ea_tensor *x = j->n->in[0], *y = j->n->out;
    ea__gelu_bwd_n(x->grad + o, y->grad + o, x->data + o, y->data + o, len, j->acc);
}
static void ea__gelu_back(ea_ctx *ctx, ea_node *n) {
    ea__gelu_job j;
    (void)ctx;
    if (!n->in[0]->grad) return;
    j.n = n;
    j.acc = !ea__grad_fresh(n->in[0]);
    ea__par_chunks(ea__gelu_back_chunk, &j, n->out->size, 30.0);
}

EA_API ea_tensor *ea_gelu(ea_ctx *ctx, ea_tensor *x) {
    ea_tensor *out;
    ea_node *n;
    if (!ea__ok(ctx, x, x)) return NULL;
    out = ea__out(ctx, x->ndim, x->shape, x, NULL, NULL);
    if (!out) return NULL;
    ea_gelu_fwd(out->data, x->data, x->size);
    n = ea__record(ctx, ea__gelu_back, out, x, NULL, NULL);
    if (n) n->assigns = 1;
    return out;
}

/* Dot product and y += a·x on the SIMD layer. */
EA_INLINE float ea__dot(const float *a, const float *b, int n) {
    ea_vf acc = ea_vzero();
    float s;
    int i = 0;
    for (; i + EA_VW <= n; i += EA_VW) acc = ea_vfma(ea_vload(a + i), ea_vload(b + i), acc);
    s = ea_vhsum(acc);
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

EA_INLINE void ea__axpy(float *y, float a, const float *x, int n) {
    ea_vf va = ea_vset1(a);
    int i = 0;
    for (; i + EA_VW <= n; i += EA_VW) ea_vstore(y + i, ea_vfma(va, ea_vload(x + i), ea_vload(y + i)));
    for (; i < n; i++) y[i] += a * x[i];
}

/* y = a·x (y may be x): a row rescaled or normalised.  gcc -O2 leaves the
   plain loop scalar (its cheap cost model skips loops of unknown length):
   in the flash forward at heads 4 x 16, n = 65, the scalar rescale and
   normalisation of the accumulator rows were a third of the kernel outside
   its GEMMs (perf, one Zen 3 core). */
EA_INLINE void ea__scal(float *y, float a, const float *x, int n) {
    ea_vf va = ea_vset1(a);
    int i = 0;
    for (; i + EA_VW <= n; i += EA_VW) ea_vstore(y + i, ea_vmul(va, ea_vload(x + i)));
    for (; i < n; i++) y[i] = a * x[i];
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
    ea__scal(y, s, y, cols);
}

/* The public row loops run on the calling thread: ea_sdpa_fwd calls the
   forward inside its own loop over heads.  The tape's op below spreads
   blocks of rows over threads. */
EA_API void ea_softmax_fwd(float *out, const float *x, int rows, int cols) {
    int i;
    for (i = 0; i < rows; i++) ea__softmax_row(out + (size_t)i * cols, x + (size_t)i * cols, cols);
}

/* dx += y ∘ (dy - dot), dot = Σ dy∘y, a row at a time on the SIMD layer. */
EA_API void ea_softmax_bwd(float *dx, const float *dout, const float *y, int rows, int cols) {
    int i;
    for (i = 0; i < rows; i++) {
        const float *yi = y + (size_t)i * cols, *di = dout + (size_t)i * cols;
        float *dxi = dx + (size_t)i * cols, dot = ea__dot(di, yi, cols);
        int j = 0;
        ea_vf vdot = ea_vset1(dot);
        for (; j + EA_VW <= cols; j += EA_VW)
            ea_vstore(dxi + j, ea_vfma(ea_vload(yi + j), ea_vsub(ea_vload(di + j), vdot), ea_vload(dxi + j)));
        for (; j < cols; j++) dxi[j] += yi[j] * (di[j] - dot);
    }
}

/* Blocks of whole rows over threads (a row's bits do not depend on the
   block it falls in).  nystrom's F [H, n, m] and B [H, m, n] at n = 1,024
   are half a million values each: on one thread, their softmax forward and
   backward were a quarter of the 10 ms its training step spent outside any
   parallel region (perf, 2 threads, Zen 3).  With the two ops below, that
   time fell to 2.1 ms there, and from 13.1 to 2.3 ms of a 26 ms step at 16
   threads on a Xeon (bench/regions.c). */
static void ea__softmax_par(float *y, const float *x, const float *gy, int rows, int cols) {
    long b, rb = (EA_SPAN + cols - 1) / cols, nb = (rows + rb - 1) / rb;
    EA_OMP_FOR_IF(nb > 1 && 10.0 * rows * cols >= EA_PAR_MIN_WORK)
    for (b = 0; b < nb; b++) {
        int r0 = (int)(b * rb), nr = rows - r0 < rb ? rows - r0 : (int)rb;
        size_t o = (size_t)r0 * cols;
        if (gy)
            ea_softmax_bwd(y + o, gy + o, x + o, nr, cols);
        else
            ea_softmax_fwd(y + o, x + o, nr, cols);
    }
}

static void ea__softmax_back(ea_ctx *ctx, ea_node *n) {
    (void)ctx;
    if (n->in[0]->grad)
        ea__softmax_par(n->in[0]->grad, n->out->data, n->out->grad, n->iarg[0], n->iarg[1]);
}

EA_API ea_tensor *ea_softmax(ea_ctx *ctx, ea_tensor *x) {
    ea_tensor *out;
    ea_node *n;
    int cols;
    if (!ea__ok(ctx, x, x)) return NULL;
    cols = x->shape[x->ndim - 1];
    out = ea__out(ctx, x->ndim, x->shape, x, NULL, NULL);
    if (!out) return NULL;
    ea__softmax_par(out->data, x->data, NULL, (int)(x->size / (size_t)cols), cols);
    n = ea__record(ctx, ea__softmax_back, out, x, NULL, NULL);
    if (n) {
        n->iarg[0] = (int)(x->size / (size_t)cols);
        n->iarg[1] = cols;
    }
    return out;
}

/* --- convolution: im2col on the GEMM ---------------------------------------
   A k x k convolution is a linear map of each window: row (b, oy, ox) of
   cols [B·Ho·Wo, C·k·k] holds the window of every channel in the weight's
   order (c, ky, kx), so out = cols · wᵀ + b is [B·Ho·Wo, D], the output
   channels-last: 2·B·Ho·Wo·D·C·k² FLOPs.  Backward: the linear's, then
   col2im adds each row's gradient back where it was read from.  The input
   is read through strides, so one routine serves image batches [B, C, H, W]
   (sc = H·W, sh = W, sw = 1) and channels-last maps (sc = 1, sh = W·C,
   sw = C); a window reaching past the border reads zeros (padding). */
typedef struct ea__conv_geom {
    int B, C, H, W, k, stride, pad, Ho, Wo, chlast;
} ea__conv_geom;

static void ea__im2col(float *cols, float *x, const ea__conv_geom *g, int to_cols) {
    const int K = g->C * g->k * g->k;
    const ptrdiff_t sc = g->chlast ? 1 : (ptrdiff_t)g->H * g->W, sh = g->chlast ? (ptrdiff_t)g->W * g->C : g->W,
                    sw = g->chlast ? g->C : 1;
    int bi;
    /* images are independent: col2im's scatter never crosses them */
    EA_OMP_FOR_IF(g->B > 1 && (double)g->B * g->Ho * g->Wo * K >= EA_PAR_MIN_WORK)
    for (bi = 0; bi < g->B; bi++) {
        float *xb = x + (size_t)bi * g->C * g->H * g->W;
        int oy, ox, c, ky, kx;
        for (oy = 0; oy < g->Ho; oy++)
            for (ox = 0; ox < g->Wo; ox++) {
                float *row = cols + (((size_t)bi * g->Ho + oy) * g->Wo + ox) * K;
                for (c = 0; c < g->C; c++)
                    for (ky = 0; ky < g->k; ky++) {
                        int iy = oy * g->stride - g->pad + ky;
                        for (kx = 0; kx < g->k; kx++, row++) {
                            int ix = ox * g->stride - g->pad + kx;
                            float *px;
                            if (iy < 0 || iy >= g->H || ix < 0 || ix >= g->W) {
                                if (to_cols) *row = 0.0f;
                                continue;
                            }
                            px = xb + c * sc + iy * sh + ix * sw;
                            if (to_cols) *row = *px;
                            else *px += *row;
                        }
                    }
            }
    }
}

static void ea__conv_back(ea_ctx *ctx, ea_node *n) {
    ea_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2];
    ea__conv_geom g;
    int M, K, D = w->shape[0];
    float *dcols = NULL;
    memcpy(&g, n->aux[0], sizeof g);
    M = g.B * g.Ho * g.Wo;
    K = g.C * g.k * g.k;
    if (x->grad) {
        dcols = ea__floats(ctx, (size_t)M * K);
        if (!dcols) return;
        memset(dcols, 0, (size_t)M * K * sizeof(float));
    }
    ea_linear_bwd(dcols, w->grad, b ? b->grad : NULL, n->out->grad, n->save[0], w->data, M, K, D);
    if (dcols) ea__im2col(dcols, x->grad, &g, 0);
}

/* Shapes checked by the callers; out has B·Ho·Wo·D elements. */
static ea_tensor *ea__conv(ea_ctx *ctx, ea_tensor *x, ea_tensor *w, ea_tensor *b, const ea__conv_geom *g, int ndim,
                           const int *shape) {
    int M = g->B * g->Ho * g->Wo, K = g->C * g->k * g->k, D = w->shape[0];
    float *cols = ea__floats(ctx, (size_t)M * K);
    ea__conv_geom *gs = (ea__conv_geom *)ea_ctx_alloc(ctx, sizeof *gs);
    ea_tensor *out = ea__out(ctx, ndim, shape, x, w, b);
    ea_node *n;
    if (!cols || !gs || !out) return NULL;
    *gs = *g;
    ea__im2col(cols, x->data, g, 1);
    ea__linear_fwd_rows(out->data, cols, w, b ? b->data : NULL, 0, M, K, D, NULL, NULL);
    n = ea__record(ctx, ea__conv_back, out, x, w, b);
    if (n) {
        n->save[0] = cols;
        n->aux[0] = gs;
    }
    return out;
}

/* Patch embedding (ViT): the convolution with kernel = stride = p over an
   image batch x [B, C, H, W], w [D, C, p, p], b [D] -> tokens [B, T, D],
   T = (H/p)(W/p), token t = py·(W/p) + px (PyTorch's
   conv(x).flatten(2).transpose(1, 2)). */
EA_API ea_tensor *ea_patch_embed(ea_ctx *ctx, ea_tensor *x, ea_tensor *w, ea_tensor *b) {
    ea__conv_geom g;
    int shape[3];
    char s1[48], s2[48];
    if (!ea__ok(ctx, x, w)) return NULL;
    if (x->ndim != 4 || w->ndim != 4 || w->shape[1] != x->shape[1] || w->shape[2] != w->shape[3] ||
        x->shape[2] % w->shape[2] || x->shape[3] % w->shape[2])
        return ea__fail(ctx, EA_ERR_SHAPE,
                        "patch_embed: expected x [B, C, H, W] and w [D, C, p, p] with p dividing H "
                        "and W, got %s and %s",
                        ea__shape_str(x, s1, sizeof s1), ea__shape_str(w, s2, sizeof s2));
    if (b && b->size != (size_t)w->shape[0])
        return ea__fail(ctx, EA_ERR_SHAPE, "patch_embed: bias must have %d values", w->shape[0]);
    g.B = x->shape[0]; g.C = x->shape[1]; g.H = x->shape[2]; g.W = x->shape[3];
    g.k = g.stride = w->shape[2];
    g.pad = 0;
    g.Ho = g.H / g.k;
    g.Wo = g.W / g.k;
    g.chlast = 0;
    shape[0] = g.B; shape[1] = g.Ho * g.Wo; shape[2] = w->shape[0];
    return ea__conv(ctx, x, w, b, &g, 3, shape);
}

EA_API ea_tensor *ea_conv2d(ea_ctx *ctx, ea_tensor *x, ea_tensor *w, ea_tensor *b, int stride, int pad) {
    ea__conv_geom g;
    int shape[4];
    char s1[48], s2[48];
    if (!ea__ok(ctx, x, w)) return NULL;
    if (x->ndim != 4 || w->ndim != 4 || w->shape[1] != x->shape[3] || w->shape[2] != w->shape[3])
        return ea__fail(ctx, EA_ERR_SHAPE, "conv2d: expected x [B, H, W, C] and w [D, C, k, k], got %s and %s",
                        ea__shape_str(x, s1, sizeof s1), ea__shape_str(w, s2, sizeof s2));
    if (b && (b->ndim != 1 || b->shape[0] != w->shape[0]))
        return ea__fail(ctx, EA_ERR_SHAPE, "conv2d: bias must be [%d], got %s", w->shape[0],
                        ea__shape_str(b, s1, sizeof s1));
    g.B = x->shape[0]; g.H = x->shape[1]; g.W = x->shape[2]; g.C = x->shape[3];
    g.k = w->shape[2];
    g.stride = stride;
    g.pad = pad;
    g.chlast = 1;
    if (stride < 1 || pad < 0 || pad >= g.k || g.H + 2 * pad < g.k || g.W + 2 * pad < g.k)
        return ea__fail(ctx, EA_ERR_ARG,
                        "conv2d: stride %d, padding %d and kernel %d do not fit a %dx%d map (stride >= 1, "
                        "0 <= padding < kernel <= size + 2 padding)",
                        stride, pad, g.k, g.H, g.W);
    g.Ho = (g.H + 2 * pad - g.k) / stride + 1;
    g.Wo = (g.W + 2 * pad - g.k) / stride + 1;
    shape[0] = g.B; shape[1] = g.Ho; shape[2] = g.Wo; shape[3] = w->shape[0];
    return ea__conv(ctx, x, w, b, &g, 4, shape);
}

/* --- channels_last: [B, C, H, W] -> [B, H, W, C] (a transpose per image) -- */
static void ea__chlast_back(ea_ctx *ctx, ea_node *n) {
    ea_tensor *x = n->in[0];
    int B = x->shape[0], C = x->shape[1], HW = x->shape[2] * x->shape[3], bi, c, p;
    (void)ctx;
    if (!x->grad) return;
    for (bi = 0; bi < B; bi++)
        for (c = 0; c < C; c++)
            for (p = 0; p < HW; p++)
                x->grad[((size_t)bi * C + c) * HW + p] += n->out->grad[((size_t)bi * HW + p) * C + c];
}

EA_API ea_tensor *ea_channels_last(ea_ctx *ctx, ea_tensor *x) {
    int shape[4], B, C, HW, bi, c, p;
    ea_tensor *out;
    char s1[48];
    if (!ea__ok(ctx, x, x)) return NULL;
    if (x->ndim != 4)
        return ea__fail(ctx, EA_ERR_SHAPE, "channels_last: expected [B, C, H, W], got %s", ea__shape_str(x, s1, sizeof s1));
    B = x->shape[0]; C = x->shape[1]; HW = x->shape[2] * x->shape[3];
    shape[0] = B; shape[1] = x->shape[2]; shape[2] = x->shape[3]; shape[3] = C;
    out = ea__out(ctx, 4, shape, x, NULL, NULL);
    if (!out) return NULL;
    for (bi = 0; bi < B; bi++)
        for (c = 0; c < C; c++)
            for (p = 0; p < HW; p++)
                out->data[((size_t)bi * HW + p) * C + c] = x->data[((size_t)bi * C + c) * HW + p];
    ea__record(ctx, ea__chlast_back, out, x, NULL, NULL);
    return out;
}

/* --- batch norm over the last dimension: x [N, C] ------------------------------
   y = (x - μ_c) · r_c · w_c + b_c with r_c = 1/√(σ²_c + ε), μ and σ² the
   batch's (training) or the running statistics (evaluation).  Backward,
   x̂ = (x - μ)·r and g = dy·w:
     batch statistics:   dx = r · (g - mean_rows(g) - x̂ · mean_rows(g x̂))
     running statistics: dx = r · g
   dw = Σ_rows dy x̂, db = Σ_rows dy.  Rows are summed in order, channels in
   parallel lanes (the loops below vectorise across c). */
EA_API void ea_batchnorm_stats(float *mean, float *var, const float *x, int N, int C) {
    int i, c;
    for (c = 0; c < C; c++) mean[c] = var[c] = 0.0f;
    for (i = 0; i < N; i++) ea__add_n(mean, mean, x + (size_t)i * C, (size_t)C);
    for (c = 0; c < C; c++) mean[c] /= (float)N;
    for (i = 0; i < N; i++) {
        const float *xi = x + (size_t)i * C;
        for (c = 0; c < C; c++) var[c] += (xi[c] - mean[c]) * (xi[c] - mean[c]);
    }
    for (c = 0; c < C; c++) var[c] /= (float)N;
}

EA_API void ea_batchnorm_fwd(float *out, const float *x, const float *mean, const float *rstd, const float *w,
                             const float *b, int N, int C) {
    int i, c;
    for (i = 0; i < N; i++) {
        const float *xi = x + (size_t)i * C;
        float *oi = out + (size_t)i * C;
        for (c = 0; c < C; c++) oi[c] = (xi[c] - mean[c]) * rstd[c] * (w ? w[c] : 1.0f) + (b ? b[c] : 0.0f);
    }
}

/* sums: 2·C floats of scratch */
EA_API void ea_batchnorm_bwd(float *dx, float *dw, float *db, const float *dout, const float *x, const float *mean,
                             const float *rstd, const float *w, int N, int C, int batch_stats, float *sums) {
    float *sg = sums, *sgx = sums + C;
    int i, c;
    for (c = 0; c < C; c++) sg[c] = sgx[c] = 0.0f;
    for (i = 0; i < N; i++) {
        const float *dy = dout + (size_t)i * C, *xi = x + (size_t)i * C;
        for (c = 0; c < C; c++) {
            float xh = (xi[c] - mean[c]) * rstd[c];
            sg[c] += dy[c];
            sgx[c] += dy[c] * xh;
        }
    }
    if (dw) ea__add_n(dw, dw, sgx, (size_t)C);
    if (db) ea__add_n(db, db, sg, (size_t)C);
    if (!dx) return;
    for (i = 0; i < N; i++) {
        const float *dy = dout + (size_t)i * C, *xi = x + (size_t)i * C;
        float *di = dx + (size_t)i * C;
        for (c = 0; c < C; c++) {
            float wc = w ? w[c] : 1.0f, g = dy[c] * wc;
            if (batch_stats) {
                float xh = (xi[c] - mean[c]) * rstd[c];
                g -= wc * (sg[c] + xh * sgx[c]) / (float)N;
            }
            di[c] += rstd[c] * g;
        }
    }
}

static void ea__bn_back(ea_ctx *ctx, ea_node *n) {
    ea_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2];
    int C = n->iarg[0], N = (int)(x->size / (size_t)C);
    float *sums = ea__floats(ctx, 2 * (size_t)C);
    if (!sums) return;
    ea_batchnorm_bwd(x->grad, w ? w->grad : NULL, b ? b->grad : NULL, n->out->grad, x->data, n->save[0], n->save[1],
                     w ? w->data : NULL, N, C, n->iarg[1], sums);
}

EA_API ea_tensor *ea_batchnorm(ea_ctx *ctx, ea_tensor *x, ea_tensor *w, ea_tensor *b, ea_tensor *rm, ea_tensor *rv,
                               ea_tensor *nbt, float momentum, float eps) {
    int C, N, c, batch;
    float *mean, *rstd;
    ea_tensor *out;
    ea_node *n;
    char s1[48];
    if (!ea__ok(ctx, x, x)) return NULL;
    C = x->shape[x->ndim - 1];
    N = (int)(x->size / (size_t)C);
    if ((w && w->size != (size_t)C) || (b && b->size != (size_t)C) || (rm && rm->size != (size_t)C) ||
        (rv && rv->size != (size_t)C) || (nbt && nbt->size != 1) || (!rm) != (!rv))
        return ea__fail(ctx, EA_ERR_SHAPE,
                        "batchnorm: x %s needs weight, bias, running_mean and running_var of %d values "
                        "(running statistics both or neither) and a one-value count",
                        ea__shape_str(x, s1, sizeof s1), C);
    if (!(eps > 0.0f) || !(momentum >= 0.0f && momentum <= 1.0f))
        return ea__fail(ctx, EA_ERR_ARG, "batchnorm: eps %g must be > 0 and momentum %g in [0, 1]", (double)eps,
                        (double)momentum);
    batch = ctx->training || !rm;
    if (batch && N < 2)
        return ea__fail(ctx, EA_ERR_SHAPE, "batchnorm: batch statistics need more than one value per channel, got %s",
                        ea__shape_str(x, s1, sizeof s1));
    mean = ea__floats(ctx, (size_t)C);
    rstd = ea__floats(ctx, (size_t)C);
    out = ea__out(ctx, x->ndim, x->shape, x, w, b);
    if (!mean || !rstd || !out) return NULL;
    if (batch) {
        ea_batchnorm_stats(mean, rstd, x->data, N, C);
        for (c = 0; c < C && rm && ctx->training; c++) {
            rm->data[c] += momentum * (mean[c] - rm->data[c]);
            rv->data[c] += momentum * (rstd[c] * (float)N / (float)(N - 1) - rv->data[c]);
        }
        if (nbt && ctx->training) nbt->data[0] += 1.0f;
        for (c = 0; c < C; c++) rstd[c] = 1.0f / sqrtf(rstd[c] + eps);
    } else {
        for (c = 0; c < C; c++) {
            mean[c] = rm->data[c];
            rstd[c] = 1.0f / sqrtf(rv->data[c] + eps);
        }
    }
    ea_batchnorm_fwd(out->data, x->data, mean, rstd, w ? w->data : NULL, b ? b->data : NULL, N, C);
    n = ea__record(ctx, ea__bn_back, out, x, w, b);
    if (n) {
        n->save[0] = mean;
        n->save[1] = rstd;
        n->iarg[0] = C;
        n->iarg[1] = batch;
    }
    return out;
}

/* --- max-pool: k x k windows, stride s, of x [B, H, W, C] -------------------
   The backward sends each output's gradient to the input that won (the
   first maximum, as PyTorch). */
static void ea__maxpool_back(ea_ctx *ctx, ea_node *n) {
    ea_tensor *x = n->in[0];
    const int *arg = (const int *)n->aux[0];
    size_t i;
    (void)ctx;
    if (!x->grad) return;
    for (i = 0; i < n->out->size; i++) x->grad[arg[i]] += n->out->grad[i];
}

EA_API ea_tensor *ea_maxpool2d(ea_ctx *ctx, ea_tensor *x, int k, int stride) {
    int shape[4], B, H, W, C, Ho, Wo, bi, oy, ox, c, ky, kx;
    int *arg;
    ea_tensor *out;
    ea_node *n;
    char s1[48];
    if (!ea__ok(ctx, x, x)) return NULL;
    if (x->ndim != 4 || k < 1 || stride < 1 || x->shape[1] < k || x->shape[2] < k)
        return ea__fail(ctx, EA_ERR_SHAPE, "maxpool2d: expected x [B, H, W, C] with H, W >= k = %d >= 1, stride %d >= 1, got %s",
                        k, stride, ea__shape_str(x, s1, sizeof s1));
    if (x->size > (size_t)2147483647)
        return ea__fail(ctx, EA_ERR_SHAPE, "maxpool2d: %s has more than 2^31 elements", ea__shape_str(x, s1, sizeof s1));
    B = x->shape[0]; H = x->shape[1]; W = x->shape[2]; C = x->shape[3];
    Ho = (H - k) / stride + 1;
    Wo = (W - k) / stride + 1;
    shape[0] = B; shape[1] = Ho; shape[2] = Wo; shape[3] = C;
    out = ea__out(ctx, 4, shape, x, NULL, NULL);
    arg = (int *)ea_ctx_alloc(ctx, (out ? out->size : 1) * sizeof(int));
    if (!out || !arg) return NULL;
    for (bi = 0; bi < B; bi++)
        for (oy = 0; oy < Ho; oy++)
            for (ox = 0; ox < Wo; ox++)
                for (c = 0; c < C; c++) {
                    size_t o = (((size_t)bi * Ho + oy) * Wo + ox) * C + c;
                    int best = -1;
                    for (ky = 0; ky < k; ky++)
                        for (kx = 0; kx < k; kx++) {
                            int i = (int)((((size_t)bi * H + oy * stride + ky) * W + ox * stride + kx) * C + c);
                            if (best < 0 || x->data[i] > x->data[best]) best = i;
                        }
                    out->data[o] = x->data[best];
                    arg[o] = best;
                }
    n = ea__record(ctx, ea__maxpool_back, out, x, NULL, NULL);
    if (n) n->aux[0] = arg;
    return out;
}

/* --- dropout (Srivastava et al. 2014), inverted: y = x·m, m ∈ {0, 1/(1-p)} -- */
static void ea__dropout_back(ea_ctx *ctx, ea_node *n) {
    ea_tensor *x = n->in[0];
    size_t i;
    (void)ctx;
    if (!x->grad) return;
    for (i = 0; i < x->size; i++) x->grad[i] += n->save[0][i] * n->out->grad[i];
}

EA_API ea_tensor *ea_dropout(ea_ctx *ctx, ea_tensor *x, float p) {
    ea_tensor *out;
    float *mask, keep;
    size_t i;
    ea_node *n;
    if (!ea__ok(ctx, x, x)) return NULL;
    if (!(p >= 0.0f && p < 1.0f)) return ea__fail(ctx, EA_ERR_ARG, "dropout: p = %g must be in [0, 1)", (double)p);
    if (!ctx->training || p == 0.0f) return x;
    keep = 1.0f / (1.0f - p);
    mask = ea__floats(ctx, x->size);
    out = ea__out(ctx, x->ndim, x->shape, x, NULL, NULL);
    if (!mask || !out) return NULL;
    for (i = 0; i < x->size; i++) {
        mask[i] = ea_rng_uniform(&ctx->rng) < p ? 0.0f : keep;
        out->data[i] = x->data[i] * mask[i];
    }
    n = ea__record(ctx, ea__dropout_back, out, x, NULL, NULL);
    if (n) n->save[0] = mask;
    return out;
}

/* --- mean over tokens: [B, T, D] -> [B, D] -------------------------------
   Vectors across D, each element summing its T tokens in order from 0 as
   the scalar loop did (the same bits), one batch entry per thread: the
   scalar loop, reading down columns at a stride of D, was the largest
   serial piece of the tracker's batch-32 step (0.5% of one thread's time,
   all of it on one thread of 16). */
static void ea__mean_back(ea_ctx *ctx, ea_node *n) {
    ea_tensor *x = n->in[0];
    int B = x->shape[0], T = x->shape[1], D = x->shape[2], bi;
    (void)ctx;
    if (!x->grad) return;
    EA_OMP_FOR_IF(B > 1 && (double)x->size >= EA_PAR_MIN_WORK)
    for (bi = 0; bi < B; bi++) {
        int t, d;
        for (d = 0; d < D; d += EA_VW) {
            int m = D - d < EA_VW ? D - d : EA_VW;
            ea_vf g = ea_vdiv(ea__ld(n->out->grad + (size_t)bi * D + d, m), ea_vset1((float)T));
            for (t = 0; t < T; t++) {
                float *p = x->grad + ((size_t)bi * T + t) * D + d;
                ea__st(p, ea_vadd(ea__ld(p, m), g), m);
            }
        }
    }
}

EA_API ea_tensor *ea_mean_tokens(ea_ctx *ctx, ea_tensor *x) {
    int B, T, D, bi;
    ea_tensor *out;
    char s1[48];
    if (!ea__ok(ctx, x, x)) return NULL;
    if (x->ndim != 3)
        return ea__fail(ctx, EA_ERR_SHAPE, "mean_tokens: expected [B, T, D], got %s",
                        ea__shape_str(x, s1, sizeof s1));
    B = x->shape[0]; T = x->shape[1]; D = x->shape[2];
    out = ea_tensor_2d(ctx, B, D, x->requires_grad);
    if (!out) return NULL;
    EA_OMP_FOR_IF(B > 1 && (double)x->size >= EA_PAR_MIN_WORK)
    for (bi = 0; bi < B; bi++) {
        int t, d;
        for (d = 0; d < D; d += EA_VW) {
            int m = D - d < EA_VW ? D - d : EA_VW;
            ea_vf s = ea_vzero();
            for (t = 0; t < T; t++) s = ea_vadd(s, ea__ld(x->data + ((size_t)bi * T + t) * D + d, m));
            ea__st(out->data + (size_t)bi * D + d, ea_vdiv(s, ea_vset1((float)T)), m);
        }
    }
    ea__record(ctx, ea__mean_back, out, x, NULL, NULL);
    return out;
}

/* --- losses ---------------------------------------------------------------
   MSE: mean over all elements of (pred - target)²; d/dpred = 2(pred - target)/n.
   Cross-entropy against the target t = (1 - s)·onehot(label) + s/C (label
   smoothing s, Szegedy et al. 2016; s = 0 is the plain loss): mean over
   rows of -Σ_j t_j log softmax(logits)_j = lse - (1 - s)·x_label - (s/C)·Σ_j x_j;
   d/dlogits = (softmax - t) / rows.
   MSE runs over threads (the layer harness of compare --scaling: 524,288
   values, 0.5 ms a step on one thread beside 16 running the layer): the
   gradient by ea__span_len's spans; the sum by spans of EA_SPAN values,
   whatever the thread count, added in order (the same bits on any).  Both
   had run at scalar speed, the sum one dependent addition after another:
   3% of bench --attn's forward + backward at 8 x 64, n = 512, and 16% at
   4 x 16 heads, batch 32, n = 65, where PyTorch's peer runs a vectorised
   square().mean().  Vectorised (one pinned thread of this project's Xeon
   VM, three rounds in turn): 8 x 64 n = 256 4.02-4.12 -> 3.72-3.77 ms,
   n = 512 14.91-15.00 -> 14.41-14.62; 4 x 16 at batch 32, n = 65
   2.27-2.30 -> 1.92-1.93. */
typedef struct {
    const ea_tensor *p, *t;
    float g;
} ea__mse_job;
static void ea__mse_back_chunk(const void *arg, size_t o, size_t len) {
    const ea__mse_job *j = (const ea__mse_job *)arg;
    const float *p = j->p->data + o, *t = j->t->data + o, g = j->g;
    float *pg = j->p->grad ? j->p->grad + o : NULL, *tg = j->t->grad ? j->t->grad + o : NULL;
    size_t i = 0;
#if EA_VW > 1
    /* in vectors: read through the tensors, as it was, the compiler could
       not rule out that a gradient aliases the data and kept it scalar */
    for (; i + EA_VW <= len; i += EA_VW) {
        ea_vf d = ea_vmul(ea_vset1(g), ea_vsub(ea_vload(p + i), ea_vload(t + i)));
        if (pg) ea_vstore(pg + i, ea_vadd(ea_vload(pg + i), d));
        if (tg) ea_vstore(tg + i, ea_vsub(ea_vload(tg + i), d));
    }
#endif
    for (; i < len; i++) {
        float d = g * (p[i] - t[i]);
        if (pg) pg[i] += d;
        if (tg) tg[i] -= d;
    }
}
static void ea__mse_back(ea_ctx *ctx, ea_node *n) {
    ea__mse_job j;
    (void)ctx;
    j.p = n->in[0];
    j.t = n->in[1];
    j.g = n->out->grad[0] * 2.0f / (float)j.p->size;
    ea__par_chunks(ea__mse_back_chunk, &j, j.p->size, 3.0);
}

/* Σ (p - t)² in double over span c of EA_SPAN values (of n), in 8
   running sums (one sum had been a chain of dependent additions, 4 cycles
   a value), added pairwise at the end. */
static double ea__sq_diff_span(const float *p, const float *t, size_t n, long c) {
    size_t i = (size_t)c * EA_SPAN, i1 = n - i < EA_SPAN ? n : i + EA_SPAN;
    double s[8] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
    int k;
    for (; i + 8 <= i1; i += 8)
        for (k = 0; k < 8; k++) {
            double d = (double)p[i + k] - (double)t[i + k];
            s[k] += d * d;
        }
    for (k = 0; i < i1; i++, k++) {
        double d = (double)p[i] - (double)t[i];
        s[k] += d * d;
    }
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

EA_API ea_tensor *ea_mse_loss(ea_ctx *ctx, ea_tensor *pred, ea_tensor *target) {
    ea_tensor *out;
    double s = 0.0, *part;
    long c, nc;
    int one = 1;
    char s1[48], s2[48];
    if (!ea__ok(ctx, pred, target)) return NULL;
    if (pred->size != target->size)
        return ea__fail(ctx, EA_ERR_SHAPE, "mse_loss: prediction %s and target %s differ in size",
                        ea__shape_str(pred, s1, sizeof s1), ea__shape_str(target, s2, sizeof s2));
    out = ea__out(ctx, 1, &one, pred, target, NULL);
    if (!out) return NULL;
    nc = (long)((pred->size + EA_SPAN - 1) / EA_SPAN);
    part = nc > 1 && ea__span_len(pred->size, 3.0) < pred->size ? (double *)ea_ctx_alloc(ctx, (size_t)nc * sizeof(double))
                                                                 : NULL;
    if (part) {
        EA_OMP_FOR_IF(1)
        for (c = 0; c < nc; c++) part[c] = ea__sq_diff_span(pred->data, target->data, pred->size, c);
    }
    for (c = 0; c < nc; c++) s += part ? part[c] : ea__sq_diff_span(pred->data, target->data, pred->size, c); /* in order */
    out->data[0] = (float)(s / (double)pred->size);
    ea__record(ctx, ea__mse_back, out, pred, target, NULL);
    return out;
}

static void ea__ce_back(ea_ctx *ctx, ea_node *n) {
    ea_tensor *x = n->in[0];
    int rows = n->iarg[0], cols = n->iarg[1], i, j;
    const int *labels = (const int *)(const void *)n->save[1];
    float g = n->out->grad[0] / (float)rows, s = n->farg[0], u = s / (float)cols;
    (void)ctx;
    if (!x->grad) return;
    for (i = 0; i < rows; i++)
        for (j = 0; j < cols; j++)
            x->grad[(size_t)i * cols + j] +=
                g * (n->save[0][(size_t)i * cols + j] - u - (j == labels[i] ? 1.0f - s : 0.0f));
}

EA_API ea_tensor *ea_cross_entropy(ea_ctx *ctx, ea_tensor *logits, const int *labels) {
    return ea_cross_entropy_smooth(ctx, logits, labels, 0.0f);
}

EA_API ea_tensor *ea_cross_entropy_smooth(ea_ctx *ctx, ea_tensor *logits, const int *labels, float smoothing) {
    int rows, cols, i, one = 1;
    float *prob;
    int *lab;
    double s = 0.0;
    ea_tensor *out;
    ea_node *n;
    if (!ea__ok(ctx, logits, logits)) return NULL;
    if (!labels) return ea__fail(ctx, EA_ERR_ARG, "cross_entropy: labels are NULL");
    if (!(smoothing >= 0.0f && smoothing <= 1.0f))
        return ea__fail(ctx, EA_ERR_ARG, "cross_entropy: label smoothing %g must be in [0, 1]", (double)smoothing);
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
        double z = 0.0, sum = 0.0;
        int j;
        for (j = 1; j < cols; j++) mx = xi[j] > mx ? xi[j] : mx;
        for (j = 0; j < cols; j++) {
            z += exp((double)(xi[j] - mx));
            sum += xi[j];
        }
        s += log(z) + (double)mx - (1.0 - smoothing) * (double)xi[labels[i]] - smoothing * sum / cols;
    }
    out->data[0] = (float)(s / rows);
    n = ea__record(ctx, ea__ce_back, out, logits, NULL, NULL);
    if (n) {
        n->save[0] = prob;
        n->save[1] = (float *)(void *)lab;
        n->iarg[0] = rows;
        n->iarg[1] = cols;
        n->farg[0] = smoothing;
    }
    return out;
}

EA_API int ea_topk_hits(const float *logits, const int *labels, int rows, int classes, int k) {
    int i, j, hits = 0;
    for (i = 0; i < rows; i++) {
        const float *x = logits + (size_t)i * classes;
        int above = 0;
        if (labels[i] < 0 || labels[i] >= classes || x[labels[i]] != x[labels[i]]) continue;
        for (j = 0; j < classes; j++) above += !(x[j] <= x[labels[i]]); /* higher, or NaN */
        hits += above < k;
    }
    return hits;
}

/* --- small ops for the attention variants ---------------------------------
   Each is one loop forward and one loop back; they let Nyströmformer,
   Linformer and the gated and token-adding rows be written as formulas on
   tensors, with autograd doing the chain rule. */

/* eye_affine: out = alpha·x + c·I on every [m, m] matrix of x, a row at a
   time on the SIMD layer, then c on the diagonal (nystrom calls it four
   times per pseudo-inverse iteration; two integer divisions per element had
   made it the largest of the one-thread pieces of its step). */
static void ea__eye_back(ea_ctx *ctx, ea_node *n) {
    int m = n->out->shape[n->out->ndim - 1];
    size_t r;
    (void)ctx;
    if (n->in[0]->grad)
        for (r = 0; r < n->out->size / (size_t)m; r++)
            ea__axpy(n->in[0]->grad + r * m, n->farg[0], n->out->grad + r * m, m);
}

EA_API ea_tensor *ea_eye_affine(ea_ctx *ctx, ea_tensor *x, float alpha, float c) {
    ea_tensor *out;
    int m;
    size_t r;
    char s1[48];
    if (!ea__ok(ctx, x, x)) return NULL;
    m = x->shape[x->ndim - 1];
    if (x->ndim < 2 || x->shape[x->ndim - 2] != m)
        return ea__fail(ctx, EA_ERR_SHAPE, "eye_affine: expected square matrices [.., m, m], got %s",
                        ea__shape_str(x, s1, sizeof s1));
    out = ea__out(ctx, x->ndim, x->shape, x, NULL, NULL);
    if (!out) return NULL;
    for (r = 0; r < x->size / (size_t)m; r++) { /* row r is row r % m of its matrix */
        ea__scal(out->data + r * m, alpha, x->data + r * m, m);
        out->data[r * m + r % (size_t)m] += c;
    }
    if (ea__record(ctx, ea__eye_back, out, x, NULL, NULL)) ctx->tape->farg[0] = alpha;
    return out;
}

/* feature_map: φ(x) = elu(x) + 1 (x > 0: x + 1, else eˣ), or relu(x);
   φ' = 1 for x > 0, else eˣ = φ(x) (or 0).  On the vector layer, a row's
   last partial vector masked, so every element takes the same exp whatever
   its column.  ea__feature_map_cols maps a row's first `cols` columns only:
   linear attention needs φ of Q and K, not of V (a third of qkv; with the
   scalar expf this map had been 6% of the hybrid row's step, by perf). */
static void ea__fmap_rows(float *y, float *gx, const float *gy, const float *x, const float *phi, size_t rows,
                          int ldx, int cols, int relu) {
    long r;
    /* rows over threads: a pass over memory, serial it had been 2% of the
       hybrid row's step at 2 threads and more at 16 */
    EA_OMP_FOR_IF(rows > 1 && (double)rows * cols * 8.0 >= EA_PAR_MIN_WORK)
    for (r = 0; r < (long)rows; r++) {
        ea_vf one = ea_vset1(1.0f), zero = ea_vzero();
        int j, m;
        for (j = 0; j < cols; j += EA_VW) {
            size_t xo = (size_t)r * (size_t)ldx + (size_t)j, o = (size_t)r * (size_t)cols + (size_t)j;
            ea_vf v;
            m = cols - j < EA_VW ? cols - j : EA_VW;
            v = ea__ld(x + xo, m);
            if (gy) { /* gx (x's layout) += φ'(x) ∘ gy (φ's layout) */
                ea_vf d = ea_vsel_pos(v, one, relu ? zero : ea__ld(phi + o, m));
                ea__st(gx + xo, ea_vfma(d, ea__ld(gy + o, m), ea__ld(gx + xo, m)), m);
            } else {
                ea__st(y + o, relu ? ea_vmax(v, zero) : ea_vsel_pos(v, ea_vadd(v, one), ea_vexp(ea_vmin(v, zero))), m);
            }
        }
    }
}

static void ea__fmap_back(ea_ctx *ctx, ea_node *n) {
    ea_tensor *x = n->in[0];
    int C = x->shape[x->ndim - 1];
    (void)ctx;
    if (x->grad)
        ea__fmap_rows(NULL, x->grad, n->out->grad, x->data, n->out->data, x->size / (size_t)C, C, n->iarg[1], n->iarg[0]);
}

static ea_tensor *ea__feature_map_cols(ea_ctx *ctx, ea_tensor *x, int cols, int relu) {
    ea_tensor *out;
    int shape[EA_MAX_DIMS], C, i;
    ea_node *n;
    if (!ea__ok(ctx, x, x)) return NULL;
    C = x->shape[x->ndim - 1];
    for (i = 0; i < x->ndim; i++) shape[i] = x->shape[i];
    shape[x->ndim - 1] = cols;
    out = ea__out(ctx, x->ndim, shape, x, NULL, NULL);
    if (!out) return NULL;
    ea__fmap_rows(out->data, NULL, NULL, x->data, NULL, x->size / (size_t)C, C, cols, relu);
    n = ea__record(ctx, ea__fmap_back, out, x, NULL, NULL);
    if (n) {
        n->iarg[0] = relu ? 1 : 0;
        n->iarg[1] = cols;
    }
    return out;
}

EA_API ea_tensor *ea_feature_map(ea_ctx *ctx, ea_tensor *x, int relu) {
    return ea__ok(ctx, x, x) ? ea__feature_map_cols(ctx, x, x->shape[x->ndim - 1], relu) : NULL;
}

/* heads_split / heads_merge: [B, n, C] <-> [B·H, n, dh].  to_heads: 0 adds
   the heads into x, 1 writes them from x, 2 adds x into them. */
static void ea__heads_copy(float *bh, float *x, int B, int n, int C, int col, int H, int dh, float scale,
                           int to_heads) {
    long r, rows = (long)B * H * n; /* row r = (b·H + h)·n + i of the heads; rows are independent */
    int d;
    EA_OMP_FOR_IF(rows > 1 && (double)rows * dh >= EA_PAR_MIN_WORK)
    for (r = 0; r < rows; r++) {
        long i = r % n, h = r / n % H, b = r / n / H;
        float *xr = x + ((size_t)b * n + (size_t)i) * C + col + (size_t)h * dh, *hr = bh + (size_t)r * dh;
        if (to_heads)
            for (d = 0; d < dh; d++) hr[d] = (to_heads == 2 ? hr[d] : 0.0f) + scale * xr[d];
        else
            for (d = 0; d < dh; d++) xr[d] += scale * hr[d];
    }
}

static void ea__split_back(ea_ctx *ctx, ea_node *n) {
    ea_tensor *x = n->in[0];
    (void)ctx;
    if (x->grad)
        ea__heads_copy(n->out->grad, x->grad, x->shape[0], x->shape[1], x->shape[2], n->iarg[0], n->iarg[1],
                       n->iarg[2], n->farg[0], 0);
}

EA_API ea_tensor *ea_heads_split(ea_ctx *ctx, ea_tensor *x, int col, int H, int dh, float scale) {
    ea_tensor *out;
    ea_node *n;
    int shape[3];
    char s1[48];
    if (!ea__ok(ctx, x, x)) return NULL;
    if (x->ndim != 3 || H <= 0 || dh <= 0 || col < 0 || col + H * dh > x->shape[2])
        return ea__fail(ctx, EA_ERR_SHAPE, "heads_split: %d heads of %d columns from %d do not fit %s", H, dh, col,
                        ea__shape_str(x, s1, sizeof s1));
    shape[0] = x->shape[0] * H; shape[1] = x->shape[1]; shape[2] = dh;
    out = ea__out(ctx, 3, shape, x, NULL, NULL);
    if (!out) return NULL;
    ea__heads_copy(out->data, x->data, x->shape[0], x->shape[1], x->shape[2], col, H, dh, scale, 1);
    n = ea__record(ctx, ea__split_back, out, x, NULL, NULL);
    if (n) {
        n->iarg[0] = col; n->iarg[1] = H; n->iarg[2] = dh;
        n->farg[0] = scale;
    }
    return out;
}

static void ea__merge_back(ea_ctx *ctx, ea_node *n) {
    ea_tensor *x = n->in[0];
    int H = n->iarg[0];
    (void)ctx;
    if (x->grad)
        ea__heads_copy(x->grad, n->out->grad, x->shape[0] / H, x->shape[1], H * x->shape[2], 0, H, x->shape[2],
                       1.0f, 2);
}

EA_API ea_tensor *ea_heads_merge(ea_ctx *ctx, ea_tensor *x, int H) {
    ea_tensor *out;
    int shape[3];
    char s1[48];
    if (!ea__ok(ctx, x, x)) return NULL;
    if (x->ndim != 3 || H <= 0 || x->shape[0] % H)
        return ea__fail(ctx, EA_ERR_SHAPE, "heads_merge: expected [B·%d, n, dh], got %s", H,
                        ea__shape_str(x, s1, sizeof s1));
    shape[0] = x->shape[0] / H; shape[1] = x->shape[1]; shape[2] = H * x->shape[2];
    out = ea__out(ctx, 3, shape, x, NULL, NULL);
    if (!out) return NULL;
    memset(out->data, 0, out->size * sizeof(float));
    ea__heads_copy(x->data, out->data, shape[0], shape[1], shape[2], 0, H, x->shape[2], 1.0f, 0);
    if (ea__record(ctx, ea__merge_back, out, x, NULL, NULL)) ctx->tape->iarg[0] = H;
    return out;
}

/* segment_mean: segment s of m covers rows [s·n/m, (s+1)·n/m).
   Forward: o = (1/|s|) Σ x_i;  backward: dx_i += do / |s|.  Segments own
   disjoint rows of x and of the output, so they go over threads. */
static void ea__segmean_rows(float *o, float *dx, const float *x, const float *go, int Bt, int T, int d, int m) {
    long bs;
    EA_OMP_FOR_IF((long)Bt * m > 1 && 2.0 * Bt * T * d >= EA_PAR_MIN_WORK)
    for (bs = 0; bs < (long)Bt * m; bs++) { /* segment bs % m of batch entry bs / m */
        int sgm = (int)(bs % m), lo = (int)((long)sgm * T / m), hi = (int)((long)(sgm + 1) * T / m), i;
        size_t row0 = (size_t)(bs / m) * T;
        float inv = 1.0f / (float)(hi - lo);
        if (go) {
            for (i = lo; i < hi; i++) ea__axpy(dx + (row0 + i) * d, inv, go + (size_t)bs * d, d);
        } else {
            memset(o + (size_t)bs * d, 0, (size_t)d * sizeof(float));
            for (i = lo; i < hi; i++) ea__axpy(o + (size_t)bs * d, 1.0f, x + (row0 + i) * d, d);
            ea__scal(o + (size_t)bs * d, inv, o + (size_t)bs * d, d);
        }
    }
}

static void ea__segmean_back(ea_ctx *ctx, ea_node *n) {
    ea_tensor *x = n->in[0];
    (void)ctx;
    if (x->grad)
        ea__segmean_rows(NULL, x->grad, NULL, n->out->grad, x->shape[0], x->shape[1], x->shape[2], n->iarg[0]);
}

EA_API ea_tensor *ea_segment_mean(ea_ctx *ctx, ea_tensor *x, int m) {
    ea_tensor *out;
    int shape[3];
    char s1[48];
    if (!ea__ok(ctx, x, x)) return NULL;
    if (x->ndim != 3 || m <= 0 || m > x->shape[1])
        return ea__fail(ctx, EA_ERR_SHAPE, "segment_mean: %d segments of %s: expected [Bt, n, d] with 1 <= m <= n",
                        m, ea__shape_str(x, s1, sizeof s1));
    shape[0] = x->shape[0]; shape[1] = m; shape[2] = x->shape[2];
    out = ea__out(ctx, 3, shape, x, NULL, NULL);
    if (!out) return NULL;
    ea__segmean_rows(out->data, NULL, x->data, NULL, x->shape[0], x->shape[1], x->shape[2], m);
    if (ea__record(ctx, ea__segmean_back, out, x, NULL, NULL)) ctx->tape->iarg[0] = m;
    return out;
}

/* pinv_init: Z0 = aᵀ / (r·c), r = max_i Σ_j |a_ij|, c = max_j Σ_i |a_ij|.
   Backward through the scale too (at the maximising row and column):
   ds = Σ dZ0 ∘ aᵀ,  s = 1/(r c),  ∂s/∂r = -s/r,  ∂s/∂c = -s/c. */
static void ea__pinv_norms(const float *a, int m, float *r, float *c, int *ri, int *ci) {
    int i, j;
    *r = *c = -1.0f;
    *ri = *ci = 0;
    for (i = 0; i < m; i++) {
        float rs = 0.0f, cs = 0.0f;
        for (j = 0; j < m; j++) {
            rs += fabsf(a[(size_t)i * m + j]);
            cs += fabsf(a[(size_t)j * m + i]);
        }
        if (rs > *r) { *r = rs; *ri = i; }
        if (cs > *c) { *c = cs; *ci = i; }
    }
}

static void ea__pinv_back(ea_ctx *ctx, ea_node *n) {
    ea_tensor *a = n->in[0];
    int m = a->shape[a->ndim - 1], batch = (int)(a->size / ((size_t)m * m)), b, i, j, ri, ci;
    (void)ctx;
    if (!a->grad) return;
    for (b = 0; b < batch; b++) {
        const float *A = a->data + (size_t)b * m * m, *dZ = n->out->grad + (size_t)b * m * m;
        float *dA = a->grad + (size_t)b * m * m, r, c, s, ds = 0.0f;
        ea__pinv_norms(A, m, &r, &c, &ri, &ci);
        s = r > 0.0f && c > 0.0f ? 1.0f / (r * c) : 0.0f;
        for (i = 0; i < m; i++)
            for (j = 0; j < m; j++) {
                dA[(size_t)j * m + i] += s * dZ[(size_t)i * m + j];
                ds += dZ[(size_t)i * m + j] * A[(size_t)j * m + i];
            }
        if (s == 0.0f) continue;
        for (j = 0; j < m; j++) {
            float ar = A[(size_t)ri * m + j], ac = A[(size_t)j * m + ci];
            dA[(size_t)ri * m + j] += ds * (-s / r) * (ar > 0.0f ? 1.0f : ar < 0.0f ? -1.0f : 0.0f);
            dA[(size_t)j * m + ci] += ds * (-s / c) * (ac > 0.0f ? 1.0f : ac < 0.0f ? -1.0f : 0.0f);
        }
    }
}

EA_API ea_tensor *ea_pinv_init(ea_ctx *ctx, ea_tensor *a) {
    ea_tensor *out;
    int m, batch, b, i, j, ri, ci;
    char s1[48];
    if (!ea__ok(ctx, a, a)) return NULL;
    m = a->shape[a->ndim - 1];
    if (a->ndim < 2 || a->shape[a->ndim - 2] != m)
        return ea__fail(ctx, EA_ERR_SHAPE, "pinv_init: expected square matrices, got %s",
                        ea__shape_str(a, s1, sizeof s1));
    out = ea__out(ctx, a->ndim, a->shape, a, NULL, NULL);
    if (!out) return NULL;
    batch = (int)(a->size / ((size_t)m * m));
    for (b = 0; b < batch; b++) {
        const float *A = a->data + (size_t)b * m * m;
        float r, c, s;
        ea__pinv_norms(A, m, &r, &c, &ri, &ci);
        s = r > 0.0f && c > 0.0f ? 1.0f / (r * c) : 0.0f;
        for (i = 0; i < m; i++)
            for (j = 0; j < m; j++) out->data[(size_t)b * m * m + (size_t)i * m + j] = s * A[(size_t)j * m + i];
    }
    ea__record(ctx, ea__pinv_back, out, a, NULL, NULL);
    return out;
}

/* seq_project: out[b] = e[:, :n] · x[b][:, col .. col+width) */
static void ea__seqproj_back(ea_ctx *ctx, ea_node *n) {
    ea_tensor *e = n->in[0], *x = n->in[1];
    int B = x->shape[0], T = x->shape[1], C = x->shape[2], k = e->shape[0], L = e->shape[1];
    int col = n->iarg[0], width = n->iarg[1], b;
    (void)ctx;
    for (b = 0; b < B; b++) {
        const float *dy = n->out->grad + (size_t)b * k * width, *xb = x->data + (size_t)b * T * C + col;
        if (e->grad) ea_gemm(k, T, width, dy, width, 1, xb, 1, C, e->grad, L, 1);
        if (x->grad) ea_gemm(T, width, k, e->data, 1, L, dy, width, 1, x->grad + (size_t)b * T * C + col, C, 1);
    }
}

EA_API ea_tensor *ea_seq_project(ea_ctx *ctx, ea_tensor *e, ea_tensor *x, int col, int width) {
    ea_tensor *out;
    ea_node *n;
    int shape[3], b, T;
    char s1[48], s2[48];
    if (!ea__ok(ctx, e, x)) return NULL;
    if (e->ndim != 2 || x->ndim != 3 || col < 0 || width <= 0 || col + width > x->shape[2])
        return ea__fail(ctx, EA_ERR_SHAPE, "seq_project: expected e [k, max_len] and x [B, n, C] with columns %d..%d, got %s and %s",
                        col, col + width, ea__shape_str(e, s1, sizeof s1), ea__shape_str(x, s2, sizeof s2));
    T = x->shape[1];
    if (T > e->shape[1])
        return ea__fail(ctx, EA_ERR_SHAPE,
                        "linformer: sequence of %d tokens is longer than the projection's max_len %d "
                        "(build with a larger max_len)",
                        T, e->shape[1]);
    shape[0] = x->shape[0]; shape[1] = e->shape[0]; shape[2] = width;
    out = ea__out(ctx, 3, shape, e, x, NULL);
    if (!out) return NULL;
    for (b = 0; b < x->shape[0]; b++)
        ea_gemm(e->shape[0], width, T, e->data, e->shape[1], 1, x->data + (size_t)b * T * x->shape[2] + col,
                x->shape[2], 1, out->data + (size_t)b * e->shape[0] * width, width, 0);
    n = ea__record(ctx, ea__seqproj_back, out, e, x, NULL);
    if (n) {
        n->iarg[0] = col;
        n->iarg[1] = width;
    }
    return out;
}

/* seq_conv: out[bh, i, :] = Σ_t w[h, t] x[bh, i + t - k/2, :];
   dx[bh, i + t - k/2] += w[h, t] dout[bh, i],  dw[h, t] += Σ dout[bh, i]·x[bh, i + t - k/2] */
static void ea__seqconv_back(ea_ctx *ctx, ea_node *n) {
    ea_tensor *x = n->in[0], *w = n->in[1];
    int BH = x->shape[0], T = x->shape[1], d = x->shape[2], H = w->shape[0], k = w->shape[1], bh, i, t;
    (void)ctx;
    for (bh = 0; bh < BH; bh++)
        for (i = 0; i < T; i++)
            for (t = 0; t < k; t++) {
                int j = i + t - k / 2;
                const float *g = n->out->grad + ((size_t)bh * T + i) * d;
                if (j < 0 || j >= T) continue;
                if (x->grad) ea__axpy(x->grad + ((size_t)bh * T + j) * d, w->data[(size_t)(bh % H) * k + t], g, d);
                if (w->grad) w->grad[(size_t)(bh % H) * k + t] += ea__dot(g, x->data + ((size_t)bh * T + j) * d, d);
            }
}

EA_API ea_tensor *ea_seq_conv(ea_ctx *ctx, ea_tensor *x, ea_tensor *w) {
    ea_tensor *out;
    int BH, T, d, H, k, bh, i, t;
    char s1[48], s2[48];
    if (!ea__ok(ctx, x, w)) return NULL;
    if (x->ndim != 3 || w->ndim != 2 || x->shape[0] % w->shape[0] || w->shape[1] % 2 == 0)
        return ea__fail(ctx, EA_ERR_SHAPE, "seq_conv: expected x [B·H, n, d] and w [H, k] with k odd, got %s and %s",
                        ea__shape_str(x, s1, sizeof s1), ea__shape_str(w, s2, sizeof s2));
    BH = x->shape[0]; T = x->shape[1]; d = x->shape[2]; H = w->shape[0]; k = w->shape[1];
    out = ea__out(ctx, 3, x->shape, x, w, NULL);
    if (!out) return NULL;
    memset(out->data, 0, out->size * sizeof(float));
    for (bh = 0; bh < BH; bh++)
        for (i = 0; i < T; i++)
            for (t = 0; t < k; t++) {
                int j = i + t - k / 2;
                if (j >= 0 && j < T)
                    ea__axpy(out->data + ((size_t)bh * T + i) * d, w->data[(size_t)(bh % H) * k + t],
                             x->data + ((size_t)bh * T + j) * d, d);
            }
    ea__record(ctx, ea__seqconv_back, out, x, w, NULL);
    return out;
}

/* prepend_tokens / drop_tokens: [g, C] + [B, n, C] -> [B, g+n, C], and back */
static void ea__prepend_back(ea_ctx *ctx, ea_node *n) {
    ea_tensor *t = n->in[0], *x = n->in[1];
    int B = x->shape[0], T = x->shape[1], C = x->shape[2], g = t->shape[0], b;
    size_t i;
    (void)ctx;
    for (b = 0; b < B; b++) {
        const float *d = n->out->grad + (size_t)b * (g + T) * C;
        if (t->grad)
            for (i = 0; i < (size_t)g * C; i++) t->grad[i] += d[i];
        if (x->grad)
            for (i = 0; i < (size_t)T * C; i++) x->grad[(size_t)b * T * C + i] += d[(size_t)g * C + i];
    }
}

EA_API ea_tensor *ea_prepend_tokens(ea_ctx *ctx, ea_tensor *tokens, ea_tensor *x) {
    ea_tensor *out;
    int shape[3], b, g, T, C;
    char s1[48], s2[48];
    if (!ea__ok(ctx, tokens, x)) return NULL;
    if (tokens->ndim != 2 || x->ndim != 3 || tokens->shape[1] != x->shape[2])
        return ea__fail(ctx, EA_ERR_SHAPE, "prepend_tokens: expected tokens [g, C] and x [B, n, C], got %s and %s",
                        ea__shape_str(tokens, s1, sizeof s1), ea__shape_str(x, s2, sizeof s2));
    g = tokens->shape[0]; T = x->shape[1]; C = x->shape[2];
    shape[0] = x->shape[0]; shape[1] = g + T; shape[2] = C;
    out = ea__out(ctx, 3, shape, tokens, x, NULL);
    if (!out) return NULL;
    for (b = 0; b < x->shape[0]; b++) {
        memcpy(out->data + (size_t)b * (g + T) * C, tokens->data, (size_t)g * C * sizeof(float));
        memcpy(out->data + ((size_t)b * (g + T) + g) * C, x->data + (size_t)b * T * C, (size_t)T * C * sizeof(float));
    }
    ea__record(ctx, ea__prepend_back, out, tokens, x, NULL);
    return out;
}

static void ea__slice_back(ea_ctx *ctx, ea_node *n) {
    ea_tensor *x = n->in[0];
    int s = n->iarg[0], cnt = n->out->shape[1], T = x->shape[1], C = x->shape[2], b;
    (void)ctx;
    if (!x->grad) return;
    for (b = 0; b < x->shape[0]; b++)
        ea__add_n(x->grad + ((size_t)b * T + s) * C, x->grad + ((size_t)b * T + s) * C,
                  n->out->grad + (size_t)b * cnt * C, (size_t)cnt * C);
}

EA_API ea_tensor *ea_slice_tokens(ea_ctx *ctx, ea_tensor *x, int start, int count) {
    ea_tensor *out;
    int shape[3], b, T, C;
    char s1[48];
    if (!ea__ok(ctx, x, x)) return NULL;
    if (x->ndim != 3 || start < 0 || count < 1 || start > x->shape[1] - count)
        return ea__fail(ctx, EA_ERR_SHAPE, "slice_tokens: tokens [%d, %d + %d) are not inside %s", start, start, count,
                        ea__shape_str(x, s1, sizeof s1));
    T = x->shape[1]; C = x->shape[2];
    shape[0] = x->shape[0]; shape[1] = count; shape[2] = C;
    out = ea__out(ctx, 3, shape, x, NULL, NULL);
    if (!out) return NULL;
    for (b = 0; b < x->shape[0]; b++)
        memcpy(out->data + (size_t)b * count * C, x->data + ((size_t)b * T + start) * C, (size_t)count * C * sizeof(float));
    if (ea__record(ctx, ea__slice_back, out, x, NULL, NULL)) ctx->tape->iarg[0] = start;
    return out;
}

EA_API ea_tensor *ea_drop_tokens(ea_ctx *ctx, ea_tensor *x, int g) {
    char s1[48];
    if (!ea__ok(ctx, x, x)) return NULL;
    if (x->ndim != 3 || g < 0 || g >= x->shape[1])
        return ea__fail(ctx, EA_ERR_SHAPE, "drop_tokens: cannot drop %d of the tokens of %s", g,
                        ea__shape_str(x, s1, sizeof s1));
    return ea_slice_tokens(ctx, x, g, x->shape[1] - g);
}

/* gate_mix: y = σ(α) a + (1 - σ(α)) b;  da = σ dy, db = (1 - σ) dy,
   dα = Σ dy (a - b) σ (1 - σ).  σ(α) is taken once per channel and kept
   for the backward; rows run on the vector layer.  (Per element, the
   sigmoid and the channel's index had been 5% of the hybrid row's step.)
   Over threads: the forward by rows; the backward by blocks of whole
   cache lines of channels, each block down every row in order, so that dα's
   sum over rows is the one-thread sum whatever the block (serial, the two
   passes had been 1% of the hybrid row's step at 2 threads). */
typedef struct {
    ea_tensor *a, *b, *al;
    const float *sg, *dy;
    int C, block; /* channels a block (whole 16-float lines) */
} ea__gate_job;

static void ea__gate_back_cols(const void *arg, int i) {
    const ea__gate_job *g = (const ea__gate_job *)arg;
    ea_tensor *a = g->a, *b = g->b, *al = g->al;
    const float *sg = g->sg, *dy = g->dy;
    int C = g->C, j0 = i * g->block, j1 = j0 + g->block < C ? j0 + g->block : C, j, m;
    size_t o;
    for (o = 0; o < a->size; o += (size_t)C)
        for (j = j0; j < j1; j += EA_VW) {
            ea_vf s, d;
            m = j1 - j < EA_VW ? j1 - j : EA_VW;
            s = ea__ld(sg + j, m);
            d = ea__ld(dy + o + j, m);
            if (a->grad) ea__st(a->grad + o + j, ea_vfma(s, d, ea__ld(a->grad + o + j, m)), m);
            if (b->grad) ea__st(b->grad + o + j, ea_vfma(ea_vsub(ea_vset1(1.0f), s), d, ea__ld(b->grad + o + j, m)), m);
            if (al->grad) {
                ea_vf ds = ea_vmul(ea_vmul(d, ea_vsub(ea__ld(a->data + o + j, m), ea__ld(b->data + o + j, m))), s);
                ea__st(al->grad + j, ea_vfma(ds, ea_vsub(ea_vset1(1.0f), s), ea__ld(al->grad + j, m)), m);
            }
        }
}

static void ea__gate_back(ea_ctx *ctx, ea_node *n) {
    ea__gate_job g;
    int lines, nb;
    (void)ctx;
    g.a = n->in[0]; g.b = n->in[1]; g.al = n->in[2];
    g.sg = n->save[0]; g.dy = n->out->grad;
    g.C = (int)g.al->size;
    lines = (g.C + 15) / 16; /* blocks of whole 64-byte lines: no line written by two threads */
    nb = ea_num_threads() < lines ? ea_num_threads() : lines;
    g.block = (lines + nb - 1) / nb * 16;
    nb = (g.C + g.block - 1) / g.block;
    ea__par_items(ea__gate_back_cols, &g, nb, (double)g.a->size * 8.0 >= EA_PAR_MIN_WORK);
}

EA_API ea_tensor *ea_gate_mix(ea_ctx *ctx, ea_tensor *a, ea_tensor *b, ea_tensor *alpha) {
    ea_tensor *out;
    ea_node *n;
    float *sg;
    int C, j;
    long r;
    char s1[48], s2[48], s3[48];
    if (!ea__ok(ctx, a, b) || !alpha) return NULL;
    C = (int)alpha->size;
    if (a->size != b->size || alpha->ndim != 1 || a->shape[a->ndim - 1] != C)
        return ea__fail(ctx, EA_ERR_SHAPE, "gate_mix: a %s, b %s, alpha %s: expected equal a, b [.., C], alpha [C]",
                        ea__shape_str(a, s1, sizeof s1), ea__shape_str(b, s2, sizeof s2),
                        ea__shape_str(alpha, s3, sizeof s3));
    out = ea__out(ctx, a->ndim, a->shape, a, b, alpha);
    sg = ea__floats(ctx, (size_t)C);
    if (!out || !sg) return NULL;
    for (j = 0; j < C; j++) sg[j] = 1.0f / (1.0f + expf(-alpha->data[j]));
    EA_OMP_FOR_IF(a->size > (size_t)C && (double)a->size * 4.0 >= EA_PAR_MIN_WORK)
    for (r = 0; r < (long)(a->size / (size_t)C); r++) {
        size_t o = (size_t)r * (size_t)C;
        int jj, m;
        for (jj = 0; jj < C; jj += EA_VW) {
            ea_vf s;
            m = C - jj < EA_VW ? C - jj : EA_VW;
            s = ea__ld(sg + jj, m);
            ea__st(out->data + o + jj,
                   ea_vfma(s, ea__ld(a->data + o + jj, m), ea_vmul(ea_vsub(ea_vset1(1.0f), s), ea__ld(b->data + o + jj, m))),
                   m);
        }
    }
    n = ea__record(ctx, ea__gate_back, out, a, b, alpha);
    if (n) n->save[0] = sg;
    return out;
}

/* --- mul: y = a ∘ b (b may be [C], broadcast); da = b dy, db = a dy ------
   Elementwise over threads (ea__par_span) when the sizes match; with a
   broadcast b, a's rows go over threads and db sums the rows in order on
   one (a channel's sum must not depend on the thread count).  A fresh
   gradient (ea__grad_fresh) is assigned, not zeroed and added into. */
static void ea__mul_back(ea_ctx *ctx, ea_node *n) {
    ea_tensor *a = n->in[0], *b = n->in[1];
    const float *dy = n->out->grad;
    size_t C = b->size;
    long r, rows = (long)(a->size / C);
    (void)ctx;
    if (C == a->size) {
        if (a->grad) ea__par_span(ea__grad_fresh(a) ? ea__mul_n : ea__fma_n, a->grad, dy, b->data, C, 2.0);
        if (b->grad) ea__par_span(ea__grad_fresh(b) ? ea__mul_n : ea__fma_n, b->grad, dy, a->data, C, 2.0);
        return;
    }
    if (a->grad) {
        ea__span_fn f = ea__grad_fresh(a) ? ea__mul_n : ea__fma_n;
        EA_OMP_FOR_IF(rows > 1 && (double)a->size * 2.0 >= EA_PAR_MIN_WORK)
        for (r = 0; r < rows; r++) f(a->grad + (size_t)r * C, dy + (size_t)r * C, b->data, C);
    }
    if (b->grad)
        for (r = 0; r < rows; r++) ea__fma_n(b->grad, dy + (size_t)r * C, a->data + (size_t)r * C, C);
}

EA_API ea_tensor *ea_mul(ea_ctx *ctx, ea_tensor *a, ea_tensor *b) {
    ea_tensor *out;
    size_t C;
    long r, rows;
    char s1[48], s2[48];
    if (!ea__ok(ctx, a, b)) return NULL;
    C = b->size;
    if (b->size != a->size && !(b->ndim == 1 && (int)C == a->shape[a->ndim - 1]))
        return ea__fail(ctx, EA_ERR_SHAPE, "mul: a %s, b %s: expected equal sizes, or b [C] with a [.., C]",
                        ea__shape_str(a, s1, sizeof s1), ea__shape_str(b, s2, sizeof s2));
    out = ea__out(ctx, a->ndim, a->shape, a, b, NULL);
    if (!out) return NULL;
    rows = (long)(a->size / C);
    if (C == a->size) {
        ea__par_span(ea__mul_n, out->data, a->data, b->data, C, 1.0);
    } else {
        EA_OMP_FOR_IF(rows > 1 && (double)a->size >= EA_PAR_MIN_WORK)
        for (r = 0; r < rows; r++) ea__mul_n(out->data + (size_t)r * C, a->data + (size_t)r * C, b->data, C);
    }
    /* da always assigned when fresh; db too unless broadcast (its rows add up) */
    if (ea__record(ctx, ea__mul_back, out, a, b, NULL)) ctx->tape->assigns = C == a->size ? 3 : 1;
    return out;
}

/* --- act: the gates of the MoE and Mamba rows ------------------------------
   SiLU      y = x σ(x),        y' = σ(x) (1 + x (1 - σ(x)))
   softplus  y = log(1 + eˣ),   y' = σ(x)      (y = x above 20: no overflow)
   sigmoid   y = σ(x),          y' = σ(x) (1 - σ(x))
   ReLU      y = max(x, 0),     y' = [x > 0]   (the classifier hosts) */
static float ea__act_value(int kind, float x) {
    float s;
    if (kind == EA_ACT_RELU) return x > 0.0f ? x : 0.0f;
    s = 1.0f / (1.0f + expf(-x));
    if (kind == EA_ACT_SILU) return x * s;
    if (kind == EA_ACT_SOFTPLUS) return x > 20.0f ? x : log1pf(expf(x));
    return s;
}

static float ea__act_slope(int kind, float x) {
    float s;
    if (kind == EA_ACT_RELU) return x > 0.0f ? 1.0f : 0.0f;
    s = 1.0f / (1.0f + expf(-x));
    if (kind == EA_ACT_SILU) return s * (1.0f + x * (1.0f - s));
    if (kind == EA_ACT_SOFTPLUS) return s;
    return s * (1.0f - s);
}

/* Fast path: the same on the vector layer, σ from the vector exp, softplus
   as max(x, 0) + log1p(t), t = e^-|x|, with log1p(t) = 2 atanh(z),
   z = t / (2 + t) <= 1/3, whose odd series z (1 + z²/3 + z⁴/5 + ...)
   reaches float precision in 8 terms (the next is below 2e-9 of the sum):
   no vector log needed.  Scalar libm calls for these were 12% of a mamba
   layer's training step (perf, n = 1024, dim 512). */
#if EA_VW > 1
EA_INLINE ea_vf ea__vsigmoid(ea_vf x) {
    ea_vf one = ea_vset1(1.0f);
    return ea_vdiv(one, ea_vadd(one, ea_vexp(ea_vsub(ea_vzero(), x))));
}

EA_INLINE ea_vf ea__vsoftplus(ea_vf x) {
    ea_vf t = ea_vexp(ea_vsub(ea_vzero(), ea_vabs(x))), z = ea_vdiv(t, ea_vadd(ea_vset1(2.0f), t)), z2 = ea_vmul(z, z);
    ea_vf p = ea_vset1(1.0f / 15.0f);
    p = ea_vfma(p, z2, ea_vset1(1.0f / 13.0f));
    p = ea_vfma(p, z2, ea_vset1(1.0f / 11.0f));
    p = ea_vfma(p, z2, ea_vset1(1.0f / 9.0f));
    p = ea_vfma(p, z2, ea_vset1(1.0f / 7.0f));
    p = ea_vfma(p, z2, ea_vset1(1.0f / 5.0f));
    p = ea_vfma(p, z2, ea_vset1(1.0f / 3.0f));
    p = ea_vfma(p, z2, ea_vset1(1.0f));
    return ea_vadd(ea_vmax(x, ea_vzero()), ea_vmul(ea_vadd(z, z), p));
}
#endif

/* y = act(x) over n values (the scalar form finishes what the vectors
   leave); with gy, x's gradient gx += act'(x) ∘ gy instead (gx = when
   acc is 0: a fresh gradient, ea__grad_fresh). */
static void ea__act_rows(int kind, float *y, float *gx, const float *gy, const float *x, size_t n, int acc) {
    size_t i = 0;
#if EA_VW > 1
    if (kind != EA_ACT_RELU)
        for (; i + EA_VW <= n; i += EA_VW) {
            ea_vf v = ea_vload(x + i), s, one = ea_vset1(1.0f);
            if (!gy && kind == EA_ACT_SOFTPLUS) {
                ea_vstore(y + i, ea__vsoftplus(v));
                continue;
            }
            s = ea__vsigmoid(v);
            if (!gy) {
                ea_vstore(y + i, kind == EA_ACT_SILU ? ea_vmul(v, s) : s);
                continue;
            }
            s = kind == EA_ACT_SILU       ? ea_vmul(s, ea_vfma(v, ea_vsub(one, s), one))
                : kind == EA_ACT_SOFTPLUS ? s
                                          : ea_vmul(s, ea_vsub(one, s));
            ea_vstore(gx + i, acc ? ea_vfma(s, ea_vload(gy + i), ea_vload(gx + i)) : ea_vmul(s, ea_vload(gy + i)));
        }
#endif
    for (; i < n; i++)
        if (gy) gx[i] = acc ? gx[i] + ea__act_slope(kind, x[i]) * gy[i] : ea__act_slope(kind, x[i]) * gy[i];
        else y[i] = ea__act_value(kind, x[i]);
}

/* ea__act_rows over threads, on ea__par_chunks' spans (whole vectors:
   each value takes the path it takes on one thread). */
typedef struct {
    int kind, acc;
    float *y, *gx;
    const float *gy, *x;
} ea__act_job;
static void ea__act_chunk(const void *arg, size_t o, size_t len) {
    const ea__act_job *j = (const ea__act_job *)arg;
    ea__act_rows(j->kind, j->y ? j->y + o : NULL, j->gx ? j->gx + o : NULL, j->gy ? j->gy + o : NULL, j->x + o, len, j->acc);
}
static void ea__act_par(int kind, float *y, float *gx, const float *gy, const float *x, size_t n, int acc) {
    ea__act_job j;
    j.kind = kind;
    j.acc = acc;
    j.y = y;
    j.gx = gx;
    j.gy = gy;
    j.x = x;
    ea__par_chunks(ea__act_chunk, &j, n, 20.0);
}

static void ea__act_back(ea_ctx *ctx, ea_node *n) {
    ea_tensor *x = n->in[0];
    (void)ctx;
    if (x->grad) ea__act_par(n->iarg[0], NULL, x->grad, n->out->grad, x->data, x->size, !ea__grad_fresh(x));
}

EA_API ea_tensor *ea_act(ea_ctx *ctx, ea_tensor *x, ea_act_kind kind) {
    ea_tensor *out;
    if (!ea__ok(ctx, x, x)) return NULL;
    if ((int)kind < EA_ACT_SILU || (int)kind > EA_ACT_RELU)
        return ea__fail(ctx, EA_ERR_ARG, "act: kind %d; expected EA_ACT_SILU, EA_ACT_SOFTPLUS, EA_ACT_SIGMOID or EA_ACT_RELU",
                        (int)kind);
    out = ea__out(ctx, x->ndim, x->shape, x, NULL, NULL);
    if (!out) return NULL;
    ea__act_par((int)kind, out->data, NULL, NULL, x->data, x->size, 0);
    if (ea__record(ctx, ea__act_back, out, x, NULL, NULL)) {
        ctx->tape->iarg[0] = (int)kind;
        ctx->tape->assigns = 1; /* dx: assigned when fresh (no zeroing pass first) */
    }
    return out;
}

/* --- rope: rotary position embedding (Su et al. 2021, RoFormer) -----------
   Column pairs (2i, 2i+1), i < rot/2, of every head turn by the angle
   p·θ_i, θ_i = 10000^(-2i/rot), at position p:
       y_2i = x_2i cos - x_2i+1 sin,   y_2i+1 = x_2i sin + x_2i+1 cos,
   so q·k after rotation depends on the positions only through p_q - p_k.
   The backward turns dy by -p·θ_i (a rotation's inverse is its transpose).
   One kernel for the op, its backward and the cached decode step (8.24):
   rows r of y (ld floats apart) hold the token at position
   p = (pos0 + r % n) / group (group tokens share a time step: a frame);
   head h's pairs start at column col + h·d.  The angle is formed in double,
   so position 10^6 still turns to within 1e-10 rad. */
static void ea__rope_rows(float *y, size_t rows, int n, ptrdiff_t ld, int col, int H, int d, int rot, int pos0,
                          int group, double sign) {
    size_t r;
    int h, i;
    for (r = 0; r < rows; r++) {
        double p = (double)(((long long)pos0 + (long long)(r % (size_t)n)) / group);
        for (i = 0; i < rot / 2; i++) {
            double th = sign * p * pow(10000.0, -2.0 * i / rot);
            float c = (float)cos(th), s = (float)sin(th);
            for (h = 0; h < H; h++) {
                float *v = y + r * (size_t)ld + col + (size_t)h * d + 2 * i, x0 = v[0], x1 = v[1];
                v[0] = x0 * c - x1 * s;
                v[1] = x0 * s + x1 * c;
            }
        }
    }
}

static void ea__rope_back(ea_ctx *ctx, ea_node *n) {
    ea_tensor *x = n->in[0];
    float *g = ea__floats(ctx, x->size);
    size_t i;
    if (!x->grad || !g) return;
    memcpy(g, n->out->grad, x->size * sizeof(float));
    ea__rope_rows(g, x->size / (size_t)x->shape[2], x->shape[1], x->shape[2], n->iarg[0], n->iarg[1], n->iarg[2],
                  n->iarg[3], n->iarg[4], n->iarg[5], -1.0);
    for (i = 0; i < x->size; i++) x->grad[i] += g[i];
}

EA_API ea_tensor *ea_rope_at(ea_ctx *ctx, ea_tensor *x, int col, int H, int d, int rot, int pos0, int group) {
    ea_tensor *out;
    ea_node *n;
    char s1[48];
    if (!ea__ok(ctx, x, x)) return NULL;
    if (x->ndim != 3 || H <= 0 || d <= 0 || rot < 0 || rot % 2 || rot > d || col < 0 ||
        (long long)col + (long long)(H - 1) * d + rot > x->shape[2] || pos0 < 0 || group < 1)
        return ea__fail(ctx, EA_ERR_SHAPE,
                        "rope: x %s, %d heads of %d columns from column %d, %d turned, position %d, %d tokens a step: "
                        "expected x [B, n, C] holding the heads, an even rotated width inside a head, a position >= 0 "
                        "and a group >= 1",
                        ea__shape_str(x, s1, sizeof s1), H, d, col, rot, pos0, group);
    out = ea__out(ctx, 3, x->shape, x, NULL, NULL);
    if (!out) return NULL;
    memcpy(out->data, x->data, x->size * sizeof(float));
    ea__rope_rows(out->data, x->size / (size_t)x->shape[2], x->shape[1], x->shape[2], col, H, d, rot, pos0, group, 1.0);
    n = ea__record(ctx, ea__rope_back, out, x, NULL, NULL);
    if (n) { n->iarg[0] = col; n->iarg[1] = H; n->iarg[2] = d; n->iarg[3] = rot; n->iarg[4] = pos0; n->iarg[5] = group; }
    return out;
}

EA_API ea_tensor *ea_rope(ea_ctx *ctx, ea_tensor *x, int H, int off, int rot, int pos0) {
    char s1[48];
    if (!ea__ok(ctx, x, x)) return NULL;
    if (x->ndim != 3 || H <= 0 || x->shape[2] % H || off < 0 || rot < 0 || off + rot > x->shape[2] / H)
        return ea__fail(ctx, EA_ERR_SHAPE,
                        "rope: x %s, %d heads, columns %d..%d of each, position %d: expected x [B, n, H·d], an even "
                        "rotated width inside a head and a position >= 0",
                        ea__shape_str(x, s1, sizeof s1), H, off, off + rot, pos0);
    return ea_rope_at(ctx, x, off, H, x->shape[2] / H, rot, pos0, 1);
}

/* --- concat_heads: per head, a's columns then b's (b may be one shared head) */
static void ea__concat_heads_copy(ea_node *n, const ea_tensor *a, const ea_tensor *b, float *out, int back) {
    int a_col = n->iarg[0], da = n->iarg[1], b_col = n->iarg[2], db = n->iarg[3], H = n->iarg[4], g = H / n->iarg[5];
    size_t rows = n->out->size / (size_t)(H * (da + db)), r;
    int h, c;
    for (r = 0; r < rows; r++)
        for (h = 0; h < H; h++) {
            float *o = out + (r * (size_t)H + (size_t)h) * (size_t)(da + db);
            float *pa = (back ? a->grad : a->data) + r * (size_t)a->shape[2] + a_col + (size_t)h * da;
            float *pb = (back ? b->grad : b->data) + r * (size_t)b->shape[2] + b_col + (size_t)(h / g) * db;
            for (c = 0; c < da; c++)
                if (!back) o[c] = pa[c];
                else if (a->grad) pa[c] += o[c];
            for (c = 0; c < db; c++)
                if (!back) o[da + c] = pb[c];
                else if (b->grad) pb[c] += o[da + c];
        }
}

static void ea__concat_heads_back(ea_ctx *ctx, ea_node *n) {
    (void)ctx;
    ea__concat_heads_copy(n, n->in[0], n->in[1], n->out->grad, 1);
}

EA_API ea_tensor *ea_concat_heads(ea_ctx *ctx, ea_tensor *a, int a_col, int da, ea_tensor *b, int b_col, int db,
                                  int H, int Hb) {
    ea_tensor *out;
    ea_node tmp, *n;
    int shape[3];
    char s1[48], s2[48];
    if (!ea__ok(ctx, a, b)) return NULL;
    if (a->ndim != 3 || b->ndim != 3 || a->shape[0] != b->shape[0] || a->shape[1] != b->shape[1] || H <= 0 ||
        Hb <= 0 || H % Hb || da < 0 || db < 0 || da + db == 0 || a_col < 0 || b_col < 0 ||
        a_col + H * da > a->shape[2] || b_col + Hb * db > b->shape[2])
        return ea__fail(ctx, EA_ERR_SHAPE,
                        "concat_heads: a %s (columns %d + %d heads x %d), b %s (columns %d + %d heads x %d): expected "
                        "[B, n, C] tensors holding those columns, and b's heads dividing a's",
                        ea__shape_str(a, s1, sizeof s1), a_col, H, da, ea__shape_str(b, s2, sizeof s2), b_col, Hb, db);
    shape[0] = a->shape[0]; shape[1] = a->shape[1]; shape[2] = H * (da + db);
    out = ea__out(ctx, 3, shape, a, b, NULL);
    if (!out) return NULL;
    memset(&tmp, 0, sizeof tmp);
    n = ea__record(ctx, ea__concat_heads_back, out, a, b, NULL);
    if (!n) n = &tmp;
    n->out = out;
    n->iarg[0] = a_col; n->iarg[1] = da; n->iarg[2] = b_col; n->iarg[3] = db; n->iarg[4] = H; n->iarg[5] = Hb;
    ea__concat_heads_copy(n, a, b, out->data, 0);
    return out;
}

/* --- concat_tokens and reshape ---------------------------------------------- */
static void ea__concat_tokens_back(ea_ctx *ctx, ea_node *n) {
    ea_tensor *a = n->in[0], *b = n->in[1];
    int B = a->shape[0], na = a->shape[1], nb = b->shape[1], C = a->shape[2], i;
    (void)ctx;
    for (i = 0; i < B; i++) {
        const float *d = n->out->grad + (size_t)i * (na + nb) * C;
        if (a->grad) ea__axpy(a->grad + (size_t)i * na * C, 1.0f, d, na * C);
        if (b->grad) ea__axpy(b->grad + (size_t)i * nb * C, 1.0f, d + (size_t)na * C, nb * C);
    }
}

EA_API ea_tensor *ea_concat_tokens(ea_ctx *ctx, ea_tensor *a, ea_tensor *b) {
    ea_tensor *out;
    int shape[3], i, na, nb, C;
    char s1[48], s2[48];
    if (!ea__ok(ctx, a, b)) return NULL;
    if (a->ndim != 3 || b->ndim != 3 || a->shape[0] != b->shape[0] || a->shape[2] != b->shape[2])
        return ea__fail(ctx, EA_ERR_SHAPE, "concat_tokens: expected [B, n1, C] and [B, n2, C], got %s and %s",
                        ea__shape_str(a, s1, sizeof s1), ea__shape_str(b, s2, sizeof s2));
    na = a->shape[1]; nb = b->shape[1]; C = a->shape[2];
    shape[0] = a->shape[0]; shape[1] = na + nb; shape[2] = C;
    out = ea__out(ctx, 3, shape, a, b, NULL);
    if (!out) return NULL;
    for (i = 0; i < a->shape[0]; i++) {
        memcpy(out->data + (size_t)i * (na + nb) * C, a->data + (size_t)i * na * C, (size_t)na * C * sizeof(float));
        memcpy(out->data + ((size_t)i * (na + nb) + na) * C, b->data + (size_t)i * nb * C, (size_t)nb * C * sizeof(float));
    }
    ea__record(ctx, ea__concat_tokens_back, out, a, b, NULL);
    return out;
}

EA_API ea_tensor *ea_reshape(ea_ctx *ctx, ea_tensor *x, int ndim, const int *shape) {
    ea_tensor *v;
    size_t n = 1;
    int i;
    char s1[48];
    if (!ea__ok(ctx, x, x)) return NULL;
    if (!shape) return ea__fail(ctx, EA_ERR_ARG, "reshape: NULL shape");
    for (i = 0; i < ndim && i < EA_MAX_DIMS; i++) n *= shape[i] > 0 ? (size_t)shape[i] : 0;
    if (ndim < 1 || ndim > EA_MAX_DIMS || n != x->size)
        return ea__fail(ctx, EA_ERR_SHAPE, "reshape: %s has %zu elements; the new shape (%d dims) holds %zu",
                        ea__shape_str(x, s1, sizeof s1), x->size, ndim, n);
    v = (ea_tensor *)ea_ctx_alloc(ctx, sizeof *v);
    if (!v) return NULL;
    *v = *x;
    v->packed = NULL; /* a parameter's transposed copy belongs to its own shape */
    v->ndim = ndim;
    for (i = 0; i < EA_MAX_DIMS; i++) v->shape[i] = i < ndim ? shape[i] : 0;
    return v;
}

/* --- causal_conv: Mamba's depthwise causal convolution --------------------
   y[t, c] = bias[c] + Σ_j w[c, j]·in(t - k + 1 + j, c), in(s) = x[s] for
   s >= 0 and hist[k - 1 + s] before (the last k - 1 inputs of the previous
   call when streaming, zeros otherwise).  Backward:
       dx[s, c] += Σ_j w[c, j] dy[s + k - 1 - j, c],
       dw[c, j] += Σ_t dy[t, c] in(t - k + 1 + j, c),  dbias[c] += Σ_t dy[t, c]
   Each channel is independent, so channels go in chunks of EA_CONV_CHUNK,
   one chunk a thread, vector lanes across the chunk's channels (rows of x
   are contiguous in c); a chunk first copies its taps to [k, chunk] so a
   tap is one vector load.  Every channel sums its terms in one fixed order
   whatever the thread count: the same bits.  These loops ran scalar on one
   thread while the projections around them ran on all: 4% of a mamba
   layer's forward + backward at n = 1024, dim 512, 2 threads, and the other
   thread idle meanwhile (perf). */
#define EA_CONV_CHUNK 64
#define EA_CONV_KMAX 64

/* Channels [c0, c0 + w) of w's taps to wt [k, w]. */
static void ea__conv_taps(float *wt, const float *w, int c0, int cw, int k) {
    int c, j;
    for (c = 0; c < cw; c++)
        for (j = 0; j < k; j++) wt[j * cw + c] = w[(size_t)(c0 + c) * k + j];
}

static void ea__causal_conv_fwd(float *y, const float *x, const float *hist, const float *w, const float *bias,
                                int n, int C, int k) {
    int nc = (C + EA_CONV_CHUNK - 1) / EA_CONV_CHUNK, ch;
    EA_OMP_FOR_IF(nc > 1 && (double)n * C * k >= EA_PAR_MIN_WORK)
    for (ch = 0; ch < nc; ch++) {
        float wt[EA_CONV_KMAX * EA_CONV_CHUNK];
        int c0 = ch * EA_CONV_CHUNK, cw = C - c0 < EA_CONV_CHUNK ? C - c0 : EA_CONV_CHUNK, t, j, d;
        ea__conv_taps(wt, w, c0, cw, k);
        for (t = 0; t < n; t++)
            for (d = 0; d < cw; d += EA_VW) {
                int m = cw - d < EA_VW ? cw - d : EA_VW;
                ea_vf acc = bias ? ea__ld(bias + c0 + d, m) : ea_vzero();
                for (j = 0; j < k; j++) {
                    int s = t - k + 1 + j;
                    const float *in = s >= 0 ? x + (size_t)s * C : hist ? hist + (size_t)(k - 1 + s) * C : NULL;
                    if (in) acc = ea_vfma(ea__ld(wt + j * cw + d, m), ea__ld(in + c0 + d, m), acc);
                }
                ea__st(y + (size_t)t * C + c0 + d, acc, m);
            }
    }
}

static void ea__causal_conv_back(ea_ctx *ctx, ea_node *nd) {
    ea_tensor *x = nd->in[0], *w = nd->in[1], *bias = nd->in[2];
    const float *gy = nd->out->grad;
    int B = x->shape[0], T = x->shape[1], C = x->shape[2], k = w->shape[1];
    int nc = (C + EA_CONV_CHUNK - 1) / EA_CONV_CHUNK, ch, acc = !ea__grad_fresh(x); /* dx assigned when fresh */
    (void)ctx;
    EA_OMP_FOR_IF(nc > 1 && (double)B * T * C * k >= EA_PAR_MIN_WORK)
    for (ch = 0; ch < nc; ch++) {
        float wt[EA_CONV_KMAX * EA_CONV_CHUNK], gw[EA_CONV_KMAX * EA_CONV_CHUNK], gb[EA_CONV_CHUNK];
        int c0 = ch * EA_CONV_CHUNK, cw = C - c0 < EA_CONV_CHUNK ? C - c0 : EA_CONV_CHUNK, b, t, j, d, c;
        ea__conv_taps(wt, w->data, c0, cw, k);
        memset(gw, 0, sizeof gw);
        memset(gb, 0, sizeof gb);
        for (b = 0; b < B; b++) {
            const float *xb = x->data + (size_t)b * T * C + c0, *gyb = gy + (size_t)b * T * C + c0;
            float *gxb = x->grad ? x->grad + (size_t)b * T * C + c0 : NULL;
            for (t = 0; t < T; t++)
                for (d = 0; d < cw; d += EA_VW) {
                    int m = cw - d < EA_VW ? cw - d : EA_VW;
                    ea_vf dy = ea__ld(gyb + (size_t)t * C + d, m), dx = ea_vzero();
                    ea__st(gb + d, ea_vadd(ea__ld(gb + d, m), dy), m);
                    for (j = 0; j < k; j++) {
                        int s = t - k + 1 + j, u = t + j; /* in(s) feeds y[t]; dy[u] reaches x[t] through tap k-1-j */
                        if (s >= 0)
                            ea__st(gw + j * cw + d, ea_vfma(dy, ea__ld(xb + (size_t)s * C + d, m), ea__ld(gw + j * cw + d, m)), m);
                        if (gxb && u < T)
                            dx = ea_vfma(ea__ld(wt + (k - 1 - j) * cw + d, m), ea__ld(gyb + (size_t)u * C + d, m), dx);
                    }
                    if (gxb) ea__st(gxb + (size_t)t * C + d, acc ? ea_vadd(ea__ld(gxb + (size_t)t * C + d, m), dx) : dx, m);
                }
        }
        for (c = 0; c < cw; c++) {
            if (bias->grad) bias->grad[c0 + c] += gb[c];
            if (w->grad)
                for (j = 0; j < k; j++) w->grad[(size_t)(c0 + c) * k + j] += gw[j * cw + c];
        }
    }
}

EA_API ea_tensor *ea_causal_conv(ea_ctx *ctx, ea_tensor *x, ea_tensor *w, ea_tensor *bias) {
    ea_tensor *out;
    int b, T, C;
    char s1[48], s2[48], s3[48];
    if (!ea__ok(ctx, x, w)) return NULL;
    if (!bias) return ea__fail(ctx, EA_ERR_ARG, "causal_conv: NULL bias; expected a [C] tensor");
    if (x->ndim != 3 || w->ndim != 2 || w->shape[0] != x->shape[2] || bias->ndim != 1 || bias->shape[0] != x->shape[2] ||
        w->shape[1] > EA_CONV_KMAX)
        return ea__fail(ctx, EA_ERR_SHAPE,
                        "causal_conv: x %s, w %s, bias %s: expected x [B, n, C], w [C, k] with k <= 64, bias [C]",
                        ea__shape_str(x, s1, sizeof s1), ea__shape_str(w, s2, sizeof s2),
                        ea__shape_str(bias, s3, sizeof s3));
    T = x->shape[1]; C = x->shape[2];
    out = ea__out(ctx, 3, x->shape, x, w, bias);
    if (!out) return NULL;
    for (b = 0; b < x->shape[0]; b++)
        ea__causal_conv_fwd(out->data + (size_t)b * T * C, x->data + (size_t)b * T * C, NULL, w->data, bias->data, T,
                            C, w->shape[1]);
    if (ea__record(ctx, ea__causal_conv_back, out, x, w, bias)) ctx->tape->assigns = 1;
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
   B·H·nq·nk floats.  ea_sdpa (the tape op) runs the flash-tiled form of
   8.2 instead, which avoids that matrix and is faster at every length; the
   two GEMMs here are the formula's plain statement and a second opinion
   for the tests.
   Backward, with dO given:
       dV_g += Pᵀ dO_h,   dP = dO_h V_gᵀ,   dS = P ∘ (dP - rowsum(dP ∘ P)),
       dQ_h += scale · dS K_g,   dK_g += scale · dSᵀ Q_h.
   Q, K, V are strided views (row strides ldq, ldk, ldv), so a merged QKV
   projection's output is read in place. */

/* Highest key index query i may see (inclusive). */
EA_INLINE int ea__last_key(const ea_sdpa_shape *s, int i) {
    return s->causal ? i + (s->nk - s->nq) : s->nk - 1;
}

/* Reference: the formula as plain loops, one query at a time; with mods,
   a pair is visible when the causal limit and mask_mod both allow it, and
   its score passes through score_mod. */
EA_API ea_status ea_flex_ref_fwd(float *o, const float *q, const float *k, const float *v,
                                 const ea_sdpa_shape *s, const ea_flex_mods *mods) {
    int b, h, i, j, d, group = s->H / s->Hkv;
    float *row = (float *)EFFATTN_MALLOC((size_t)s->nk * sizeof(float));
    if (!row) return EA_ERR_NOMEM;
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
                    int seen = j <= last && (!mods || !mods->mask_mod || mods->mask_mod(b, h, i, j, mods->user));
                    for (d = 0; d < s->dh; d++) dot += qi[d] * kj[d];
                    dot *= s->scale;
                    if (mods && mods->score_mod) dot = mods->score_mod(dot, b, h, i, j, mods->user);
                    row[j] = seen ? dot : -INFINITY;
                    mx = row[j] > mx ? row[j] : mx;
                }
                for (j = 0; j < s->nk; j++) sum += (row[j] = row[j] > -INFINITY ? expf(row[j] - mx) : 0.0f);
                for (d = 0; d < s->dh; d++) oi[d] = 0.0f;
                for (j = 0; j < s->nk && sum > 0.0f; j++) {
                    const float *vj = v + ((size_t)b * s->nk + j) * s->ldv + (h / group) * s->dh;
                    for (d = 0; d < s->dh; d++) oi[d] += row[j] / sum * vj[d];
                }
            }
    EFFATTN_FREE(row);
    return EA_OK;
}

EA_API ea_status ea_sdpa_ref_fwd(float *o, const float *q, const float *k, const float *v,
                                 const ea_sdpa_shape *s) {
    return ea_flex_ref_fwd(o, q, k, v, s, NULL);
}

/* Fast forward: two GEMMs per (batch, head) slice around a row softmax.
   p receives P (B·H·nq·nk floats) for the backward.  Slices go over
   threads (ea__par_items: a lone slice's GEMMs fork teams of their own). */
typedef struct ea__sdpa_job {
    float *o, *pw, *dq, *dk, *dv, *scratch; /* pw: P, written by the forward */
    const float *p, *dout, *q, *k, *v;      /* p: P, read by the backward */
    const ea_sdpa_shape *s;
} ea__sdpa_job;

static void ea__sdpa_slice_fwd(const void *arg, int slice) {
    const ea__sdpa_job *jb = (const ea__sdpa_job *)arg;
    const ea_sdpa_shape *s = jb->s;
    int b = slice / s->H, h = slice % s->H, g = h / (s->H / s->Hkv), i, j;
    const float *qh = jb->q + (size_t)b * s->nq * s->ldq + h * s->dh;
    const float *kh = jb->k + (size_t)b * s->nk * s->ldk + g * s->dh;
    const float *vh = jb->v + (size_t)b * s->nk * s->ldv + g * s->dh;
    float *P = jb->pw + (size_t)slice * s->nq * s->nk;
    ea_gemm(s->nq, s->nk, s->dh, qh, s->ldq, 1, kh, 1, s->ldk, P, s->nk, 0);
    for (i = 0; i < s->nq; i++) {
        float *Pi = P + (size_t)i * s->nk;
        int last = ea__last_key(s, i);
        for (j = 0; j < s->nk; j++) Pi[j] = j <= last ? Pi[j] * s->scale : -INFINITY;
    }
    ea_softmax_fwd(P, P, s->nq, s->nk);
    ea_gemm(s->nq, s->dh, s->nk, P, s->nk, 1, vh, s->ldv, 1, jb->o + (size_t)b * s->nq * s->ldo + h * s->dh, s->ldo, 0);
}

EA_API void ea_sdpa_fwd(float *o, float *p, const float *q, const float *k, const float *v,
                        const ea_sdpa_shape *s) {
    ea__sdpa_job jb;
    int nslice = s->B * s->H;
    memset(&jb, 0, sizeof jb);
    jb.o = o; jb.pw = p; jb.q = q; jb.k = k; jb.v = v; jb.s = s;
    ea__par_items(ea__sdpa_slice_fwd, &jb, nslice, 4.0 * s->nq * s->nk * s->dh * nslice >= EA_PAR_MIN_WORK);
}

/* Backward.  Heads that share a K/V head add into the same dK, dV rows, so
   threads split the batch, and heads run in order inside it.  scratch:
   B·nq·nk floats.  dq, dk, dv may be NULL (no gradient wanted). */
static void ea__sdpa_entry_bwd(const void *arg, int b) {
    const ea__sdpa_job *jb = (const ea__sdpa_job *)arg;
    const ea_sdpa_shape *s = jb->s;
    float *dS = jb->scratch + (size_t)b * s->nq * s->nk;
    int h, i, j;
    for (h = 0; h < s->H; h++) {
        int g = h / (s->H / s->Hkv);
        size_t qo = (size_t)b * s->nq * s->ldq + h * s->dh, ko = (size_t)b * s->nk * s->ldk + g * s->dh;
        size_t vo = (size_t)b * s->nk * s->ldv + g * s->dh;
        const float *P = jb->p + ((size_t)b * s->H + h) * s->nq * s->nk;
        const float *dO = jb->dout + (size_t)b * s->nq * s->ldo + h * s->dh;
        if (jb->dv) ea_gemm(s->nk, s->dh, s->nq, P, 1, s->nk, dO, s->ldo, 1, jb->dv + vo, s->ldv, 1);
        if (!jb->dq && !jb->dk) continue;
        ea_gemm(s->nq, s->nk, s->dh, dO, s->ldo, 1, jb->v + vo, 1, s->ldv, dS, s->nk, 0);
        for (i = 0; i < s->nq; i++) {
            const float *Pi = P + (size_t)i * s->nk;
            float *di = dS + (size_t)i * s->nk, dot = 0.0f;
            for (j = 0; j < s->nk; j++) dot += Pi[j] * di[j];
            for (j = 0; j < s->nk; j++) di[j] = s->scale * Pi[j] * (di[j] - dot);
        }
        if (jb->dq) ea_gemm(s->nq, s->dh, s->nk, dS, s->nk, 1, jb->k + ko, s->ldk, 1, jb->dq + qo, s->ldq, 1);
        if (jb->dk) ea_gemm(s->nk, s->dh, s->nq, dS, 1, s->nk, jb->q + qo, s->ldq, 1, jb->dk + ko, s->ldk, 1);
    }
}

EA_API void ea_sdpa_bwd(float *dq, float *dk, float *dv, float *scratch, const float *dout,
                        const float *p, const float *q, const float *k, const float *v,
                        const ea_sdpa_shape *s) {
    ea__sdpa_job jb;
    memset(&jb, 0, sizeof jb);
    jb.dq = dq; jb.dk = dk; jb.dv = dv; jb.scratch = scratch; jb.dout = dout;
    jb.p = p; jb.q = q; jb.k = k; jb.v = v; jb.s = s;
    ea__par_items(ea__sdpa_entry_bwd, &jb, s->B, 8.0 * s->nq * s->nk * s->dh * s->B * s->H >= EA_PAR_MIN_WORK);
}


/* --- 8.2 Flash-tiled exact attention (Dao et al. 2022, FlashAttention;
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
   the recomputation), at O(n) memory.

   Layout, for speed: a tile is held transposed, Sᵀ[c][i] (key c, query i),
   so the online softmax's max, exp and sum per query run down columns,
   EA_VW queries a vector, with no horizontal reductions.  Every product is
   then an ea_gemm whose B operand is row-major with whole vectors of
   columns, which the GEMM reads in place as its panel: Qᵀ (scaled) and dOᵀ
   of the query block are packed once per block and serve every key tile;
   K's, V's, Q's and dO's rows are read where they lie.  Measured on one
   Zen 4 core (heads 8 x 64, n = 1024, bench --attn --threads 1): forward
   40.5 -> 72.3 GFLOP/s, forward + backward 43.3 -> 74.0, against the row
   layout, which packed Kᵀ by a scalar transpose for every tile.

   Tiles stay 64 x 64 (a multiple of every EA_VW): the block masks of 8.3
   work in these tiles, and patterns built from 64-token blocks must fill
   them whole.  96 x 96 made exact attention 3-10% faster but bigbird
   (block 64) 50% slower (bench --row bigbird, n = 4096: 177 -> 264 ms).
   A forward without a block mask takes key tiles of EA_FA_BCW = 256
   rows: a quarter of the online steps (the correction, the rescaling of
   O) per key, and each P·V product four times as deep; a causal block's
   last tile ends at its last row's key.  One Zen 4 thread, flash
   harness, rounds alternating, medians: 128 rows against 64, heads
   8 x 64, n = 256-1,024 1.5-1.6% faster (1,024: 22.27 -> 21.91 ms;
   causal 11.92 -> 11.73), 4 x 16 at 1,024 2%, the tracker's shapes
   level to 1.6%; built for AVX2 0.5-1%, 4 x 16 level.  256 against 128,
   once each tile's max came from the product's store (ea__fa_scores):
   8 x 64 at 1,024 21.42 -> 21.32 ms, causal 11.68 -> 11.64; 384 and 512
   rows level with 256.
   The backward keeps 64 (its scratch holds three tiles).

   A sequence that ends a few rows past a multiple of 64 (65 tokens: 64
   patches and a class token) would leave a block of one query
   and a tile of one key, each paying a whole tile's fixed costs: its last
   block or tile takes up to EA_FA_TAIL more rows instead (ea__fa_count,
   ea__fa_len).  The query side keeps the stride EA_FA_LD and the key side
   room for EA_FA_BCMAX rows.  Measured on the device's Xeon, one thread,
   heads 4 x 16, n = 65, best of six rounds against the old build: forward
   26.2 -> 21.5 us, backward 49.8 -> 38.1 (n = 64: 18 and 33); n = 200,
   256 and 1024 did not move. */
#define EA_FA_BR 64
#define EA_FA_BC 64
#define EA_FA_TAIL 16
#define EA_FA_LD (EA_FA_BR + EA_FA_TAIL)
#define EA_FA_BCMAX (EA_FA_BC + EA_FA_TAIL)
#define EA_FA_BCW 256
#define EA_FA_BCWMAX (EA_FA_BCW + EA_FA_TAIL)

/* Blocks of `step` rows that n rows make: a last one of at most
   EA_FA_TAIL rows joins the one before.  Block I starts at I·step. */
EA_INLINE int ea__fa_count(int n, int step) {
    int c = (n + step - 1) / step;
    return c > 1 && n - (c - 1) * step <= EA_FA_TAIL ? c - 1 : c;
}

/* Rows in block I of `count`: step, or what is left for the last one. */
EA_INLINE int ea__fa_len(int n, int step, int I, int count) { return I == count - 1 ? n - I * step : step; }

/* The block that row j (of n) falls in. */
EA_INLINE int ea__fa_index(int j, int n, int step) {
    int last = ea__fa_count(n, step) - 1;
    return j / step < last ? j / step : last;
}

/* Room for one head's K, V, dK and dV rows, copied contiguous by a call
   that runs on one thread (the forward's items copy K and V, the
   backward's head pairs all four: ea__fa_fwd_item, ea__fa_bwd_held):
   where a head's rows lie apart (several heads in a row of K and V), the
   four fit in EA_FA_KV_MAX floats (4 MiB) and at least EA_FA_KV_REUSE
   query blocks read every row (with 4, heads 8 x 64 at n = 256 lost 1.5%
   to the forward's copy on the Zen 4); otherwise none.  Rows 2 KiB apart
   (heads 8 x 64) use an eighth of the caches' sets: copied, a head's rows
   use them all.  The room had been 512 KiB, for the forward's K and V
   alone (up to n = 1,024 at 8 x 64); one Zen 4 thread, flash harness,
   heads 8 x 64, six rounds alternating with that build, medians: forward
   n = 2,048 87.5 -> 85.9 ms, n = 4,096 372 -> 349 (ea__fa_bwd_held gives
   the backward's).  Only a share of a one-thread call has the room
   (ea__fa_share): on a team no thread copies, and sixteen such rooms
   would cost 64 MiB at n = 4,096.  ea_sdpa_flash_scratch counts it
   whatever the threads, so a buffer sized by it serves a call on any
   number of threads up to those it was sized for. */
#define EA_FA_KV_MAX 1048576
#define EA_FA_KV_REUSE 8
static size_t ea__fa_kv_room(const ea_sdpa_shape *s) {
    size_t n = (size_t)4 * s->nk * s->dh;
    if ((s->ldk == s->dh && s->ldv == s->dh) || n > EA_FA_KV_MAX || s->nq < EA_FA_KV_REUSE * EA_FA_BR) return 0;
    return (n + 15) / 16 * 16;
}
static size_t ea__fa_kv_floats(const ea_sdpa_shape *s) {
#ifdef _OPENMP
    if (omp_in_parallel()) return 0; /* a team's thread, whatever the count a nested region would get */
#endif
    return ea_num_threads() == 1 ? ea__fa_kv_room(s) : 0;
}

/* One thread's share of the scratch, in whole cache lines: the forward's
   Qᵀ panel (dh x LD), a wide Sᵀ tile (BCWMAX x LD), the O accumulator (LD
   x dh), four rows of LD (m, l, correction, the stored powers' sums) and
   the room of the query that takes a path of its own (ea__fa_row_tile: a
   row of BCWMAX scores, its query and its accumulator);
   or the backward's Qᵀ and dOᵀ panels, Sᵀ, dPᵀ and raw-score tiles (BCMAX
   x LD) and two rows (D, lse): the larger of the two; then the room for
   the copies above. */
static size_t ea__fa_base(const ea_sdpa_shape *s) {
    size_t f = (size_t)2 * EA_FA_LD * s->dh + (size_t)EA_FA_BCWMAX * EA_FA_LD + 4 * EA_FA_LD + EA_FA_BCWMAX +
               (size_t)2 * s->dh;
    size_t b = (size_t)2 * EA_FA_LD * s->dh + (size_t)3 * EA_FA_BCMAX * EA_FA_LD + 2 * EA_FA_LD;
    return ((b > f ? b : f) + 15) / 16 * 16;
}
static size_t ea__fa_share(const ea_sdpa_shape *s) { return ea__fa_base(s) + ea__fa_kv_floats(s); }

/* A share and one cache line more: the line ea__fa_scratch_of may skip. */
EA_API size_t ea_sdpa_flash_scratch(const ea_sdpa_shape *s) { return ea__fa_base(s) + ea__fa_kv_room(s) + 16; }

/* What a call on this many threads takes, for the header's own callers. */
static size_t ea__fa_scratch_floats(const ea_sdpa_shape *s) {
    return ea__fa_share(s) * (size_t)ea_num_threads() + 16;
}

static int ea__thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* The calling thread's share, the first starting on the first cache line
   of the buffer wherever the buffer starts.  The tile products read the
   packed panels in place only from a line's start (ea__gemm_direct): a
   buffer from malloc (16-byte aligned) had made them copy every panel
   first: at the tracker's heads (4 x 16, n = 64, batch 32), one Zen 4
   thread, the six fastest of eight rounds alternating, a scratch 16 bytes
   off a line took the forward 665-681 us a call against 606-616 on a line
   (now 611-618 off it, 607-629 on it), the backward 1256-1280 against
   1193-1206. */
static float *ea__fa_scratch_of(float *scratch, const ea_sdpa_shape *s) {
    float *line = (float *)(void *)((char *)scratch + (64 - (uintptr_t)scratch % 64) % 64);
    return line + ea__fa_share(s) * (size_t)ea__thread_id();
}

/* Columns of a block: its br queries rounded up to whole vectors; the
   tiles' rows keep the stride EA_FA_LD. */
EA_INLINE int ea__fa_width(int br) { return (br + EA_VW - 1) / EA_VW * EA_VW; }

/* X[i0 .. i0+br) of one head (rows at stride ld, dh wide) as a dh x br
   panel Xᵀ (rows at stride EA_FA_LD) times mul, zero past br.  Row by row, with the padding cleared
   apart: a test per element cost the forward at heads 4 x 12, n = 50 11%. */
static void ea__fa_pack_t(float *xt, const float *x, ptrdiff_t ld, int i0, int br, int dh, float mul) {
    int i = 0, d, bw = ea__fa_width(br);
#if EA_VW >= 8
    /* 4 x 4 blocks (ea__t4x4): the scalar loop, a store every element at a
       stride of EA_FA_LD floats, was 3.5-4% of the tracker's inference */
    for (; i + 4 <= br; i += 4) {
        const float *xi = x + (size_t)(i0 + i) * ld;
        for (d = 0; d + 4 <= dh; d += 4) ea__t4x4(xt + (size_t)d * EA_FA_LD + i, EA_FA_LD, xi + d, ld, mul);
        for (; d < dh; d++) {
            xt[(size_t)d * EA_FA_LD + i] = mul * xi[d];
            xt[(size_t)d * EA_FA_LD + i + 1] = mul * xi[ld + d];
            xt[(size_t)d * EA_FA_LD + i + 2] = mul * xi[2 * ld + d];
            xt[(size_t)d * EA_FA_LD + i + 3] = mul * xi[3 * ld + d];
        }
    }
#endif
    for (; i < br; i++) {
        const float *xi = x + (size_t)(i0 + i) * ld;
        for (d = 0; d < dh; d++) xt[(size_t)d * EA_FA_LD + i] = mul * xi[d];
    }
    if (bw > br)
        for (d = 0; d < dh; d++) memset(xt + (size_t)d * EA_FA_LD + br, 0, (size_t)(bw - br) * sizeof(float));
}

/* 8.3's band-and-global patterns (local, localglobal) hide a key's
   queries by ranges, not by a call per pair (defined there). */
static int ea__pattern_mask(int b, int h, int q, int k, void *user);
static int ea__pattern_key_row(float *sc, const void *user, int k, int i0, int first, int br);

/* Sᵀ = K[j0 .. j0+bc) · (scale·Q_blk)ᵀ, masked (causal; mask_mod too when
   the tile is only partly visible), then score_mod.  The panel qt holds
   Q_blkᵀ times scale·unit, unit = log2(e) for softmax in base 2 (1 would
   give natural scores); score_mod still sees and returns natural scores
   (x / unit in, times unit out).  raw, when not NULL, receives the scores
   score_mod saw.  Columns past br are padding: mods
   never see them (a callback may index arrays by query).  Where there is
   nothing to ask a mod, a row only has its padding hidden: the band
   pattern's mask_mod, called per pair of its partial tiles, and the empty
   pass over its full ones, had been 13% of localglobal's training step at
   n = 1,024 (perf, Zen 3).
   tmax (the forward's; NULL in the backward) holds each query's running
   max on entry; sub (or NULL), with tsum, asks the store for the
   exponentials too where it finds the max, against those offsets: it
   then returns 2 (ea__fa_lazy).  Where no score of the tile is hidden
   or modified but the padding's (no mod, or a plain one on a full tile;
   not causal, or every key before the block's first query), the
   product's store raises tmax to the tile's max and this returns 1: the
   online step then needs no pass over the tile to find it
   (ea__fa_online).  Padding columns
   take a finite max there; their P is never read.  Flash harness, one
   Zen 4 thread, six rounds alternating, medians: heads 8 x 64, n = 1,024
   21.82 -> 21.60 ms, n = 512 5.33 -> 5.29, n = 256 1.330 -> 1.321;
   4 x 16 at n = 1,024 3.385 -> 3.325; causal 8 x 64 at 1,024 11.67 ->
   11.65 (its diagonal tiles keep the pass); 4 x 16 at n = 65 (batch
   32) 564 -> 567 us, 0.5% slower: one tile of 65 keys,
   whose pass the store's reads replace one for one. */
static int ea__fa_scores(float *st, float *raw, const float *qt, float unit, const float *kh, int b, int h,
                         int i0, int br, int j0, int bc, int partial, const ea_flex_mods *mods,
                         const ea_sdpa_shape *s, float *tmax, float *sub, float *tsum, int first) {
    int c, i, off = s->nk - s->nq, bw = ea__fa_width(br);
    int plain = mods && !mods->score_mod && !raw, asks = mods && partial && mods->mask_mod;
    int all_seen = !s->causal || j0 + bc - 1 - off <= i0; /* every key of the tile by every query */
    int fused = tmax && (!mods || (plain && !asks)) && all_seen && s->dh > 0;
    ea__gemm_colred cols;
    cols.max = tmax;
    cols.sub = sub && !mods ? sub : NULL;
    cols.sum = tsum;
    cols.fresh = first;
    if (fused)
        ea__gemm_block(0, bc, bw, s->dh, kh + (size_t)j0 * s->ldk, s->ldk, 1, qt, EA_FA_LD, 1, st, EA_FA_LD, 0, NULL, &cols);
    else
        ea__gemm_serial(bc, bw, s->dh, kh + (size_t)j0 * s->ldk, s->ldk, 1, qt, EA_FA_LD, 1, st, EA_FA_LD, 0);
    for (c = 0; c < bc; c++) {
        float *sc = st + (size_t)c * EA_FA_LD;
        /* key j0 + c is seen by the queries from i0 + first on (causal) */
        int first = s->causal ? j0 + c - off - i0 : 0;
        first = first < 0 ? 0 : first > bw ? bw : first;
        for (i = 0; i < first; i++) sc[i] = -INFINITY;
        if (!mods) continue;
        if (plain && (!asks || (mods->mask_mod == ea__pattern_mask &&
                                ea__pattern_key_row(sc, mods->user, j0 + c, i0, first, br)))) {
            for (i = first > br ? first : br; i < bw; i++) sc[i] = -INFINITY;
            continue;
        }
        for (i = first; i < bw; i++) {
            int q = i0 + i, k = j0 + c, seen = i < br;
            float x = sc[i];
            if (seen && partial && mods->mask_mod) seen = mods->mask_mod(b, h, q, k, mods->user) != 0;
            if (raw) raw[(size_t)c * EA_FA_LD + i] = x / unit;
            sc[i] = !seen ? -INFINITY : mods->score_mod ? unit * mods->score_mod(x / unit, b, h, q, k, mods->user) : x;
        }
    }
    return fused ? 1 + (cols.sub != NULL) : 0;
}

/* The key tiles query tile I of (b, h) visits: the block mask's list, or
   every tile of `step` keys up to the causal limit.  Entry t is tile
   index·2 + (full). */
static int ea__fa_tiles(const ea_block_mask *bm, int b, int h, int I, int last_key, int step, const ea_sdpa_shape *s,
                        const int **list) {
    if (bm) {
        const int *row = bm->row + (((size_t)(b % bm->nb) * bm->nh + h % bm->nh) * bm->nqt + I);
        *list = bm->tile + row[0];
        return row[1] - row[0];
    }
    *list = NULL;
    last_key = last_key < s->nk - 1 ? last_key : s->nk - 1;
    return last_key < 0 ? 0 : ea__fa_index(last_key, s->nk, step) + 1;
}

/* Entry t is wholly visible: the block mask says so; without one, every
   tile is, unless a mask_mod has to be asked. */
EA_INLINE int ea__fa_full(const int *list, int t, const ea_flex_mods *mods) {
    return list ? list[t] & 1 : !(mods && mods->mask_mod);
}

/* The online softmax step over one tile, down its bc rows for each vector
   of queries, in base 2 (the forward's scores come scaled by log2(e), see
   ea__fa_fwd_item): m' = max(m, max_c Sᵀ), Pᵀ = 2^(Sᵀ - m'), corr =
   2^(m - m'), l = l·corr + Σ_c Pᵀ.  A query that has seen nothing yet has
   m' = -inf; it subtracts -FLT_MAX instead, so its entries and corr are
   2^-inf = 0, never NaN; the largest score takes exactly 2^0 = 1.  The
   max runs in four independent chains (a max is exact in any order: the
   same bits for finite scores): one chain waited a max's latency per row.
   One Zen 5 thread, forward alone, five rounds alternating (best of 7 a
   round): heads 8 x 64, n = 1,024 10.59-10.70 -> 10.39-10.57 ms, n = 256
   649-667 -> 636-658 us (the tracker's shape: see the output's transpose
   in ea__fa_fwd_item).
   In base 2 (ea_vexp2 where ea_vexp had run, forward and backward), one
   Zen 4 thread, flash harness, best of 10-1,000 calls, four rounds
   alternating: forward at heads 8 x 64, n = 256-1,024 1.3998-1.4055 ->
   1.3546-1.3603 ms, 5.61-5.66 -> 5.42-5.50, 22.98-23.33 -> 22.12-22.66
   (causal at 1,024 12.22-12.43 -> 11.77-11.92); 4 x 16 at n = 1,024
   3.83-3.94 -> 3.45-3.49, 4 x 16 at n = 65 (batch 32) 628-651 ->
   565-589 us, 4 x 12 at n = 50 (batch 12) 137-142 -> 123-127 us;
   backward 8 x 64 level to 1% faster, 4 x 16 4%; built for AVX2 (the
   polynomial form) 3.5-10% and 1.5-5%.
   With have_max, corr holds m' already (the scores' product found it as
   it stored them: ea__fa_scores) and the pass over the tile for it is
   skipped. */
static void ea__fa_online(float *st, int bc, int bw, float *m, float *l, float *corr, int have_max) {
    int i, c;
    for (i = 0; i < bw; i += EA_VW) {
        ea_vf mx = ea_vload(have_max ? corr + i : m + i), m1 = mx, m2 = mx, m3 = mx, sub, sum = ea_vzero(), cr;
        for (c = 0; c + 4 <= bc && !have_max; c += 4) {
            const float *p = st + (size_t)c * EA_FA_LD + i;
            mx = ea_vmax(mx, ea_vload(p));
            m1 = ea_vmax(m1, ea_vload(p + EA_FA_LD));
            m2 = ea_vmax(m2, ea_vload(p + 2 * EA_FA_LD));
            m3 = ea_vmax(m3, ea_vload(p + 3 * EA_FA_LD));
        }
        for (c = have_max ? bc : c; c < bc; c++) mx = ea_vmax(mx, ea_vload(st + (size_t)c * EA_FA_LD + i));
        mx = ea_vmax(ea_vmax(mx, m1), ea_vmax(m2, m3));
        sub = ea_vmax(mx, ea_vset1(-FLT_MAX));
        for (c = 0; c < bc; c++) {
            float *p = st + (size_t)c * EA_FA_LD + i;
            ea_vf e = ea_vexp2(ea_vsub(ea_vload(p), sub));
            ea_vstore(p, e);
            sum = ea_vadd(sum, e);
        }
        cr = ea_vexp2(ea_vsub(ea_vload(m + i), sub));
        ea_vstore(corr + i, cr);
        ea_vstore(l + i, ea_vfma(ea_vload(l + i), cr, sum));
        ea_vstore(m + i, mx);
    }
}

/* The online step where the product stored Pᵀ = 2^(Sᵀ - m) already,
   against a reference m per query (ea__fa_scores), with corr = the
   tile's max and tsum the powers' sums per query.  m is the running max
   of the tiles before, or, in a block's first tile, the max of the first
   strip of six keys the product stored (ea__gemm_colred's fresh).  Per
   vector of queries, by how far the tile's max rose above m:
   - at most EA_FA_LAZY (2^8): m stays, l = l + Σ.  Where no max rose, P
     is the online step's to the bit (corr = 2^0 = 1, the sums in the same
     key order; a test holds the output to the online pass's bits,
     ea__fa_lazy_off); elsewhere larger by at most 2^8, which the final
     division by l undoes;
   - at most EA_FA_LAZY_FAR (2^32): the same, and after the tile's P·V
     product m moves up to the max, l and O_acc times 2^(m - max)
     (ea__fa_move_max): a scaling of O_acc's rows, dh values a query,
     where the pass below reads bc.  Kept powers of up to 2^32 leave l and
     O_acc far from overflow for any |V| below about 1e26;
   - at most EA_FA_LAZY_RESCALE (2^100, every power finite): the powers
     times 2^(m - max), the online step's pass with a product in place of
     each exponential;
   - further, or m still -inf (every key before hidden), or NaN: the
     scores are computed again and take the online step (its bits).
   The store makes the powers while a strip of six keys is in the L1
   (ea__gemm_tile), where the online step's pass had read the whole tile
   back from the L2 (256 keys x 80 columns, 80 KiB) and written it again.
   Causal calls keep that pass: a causal block's parts (ea__fa_split)
   visit different first tiles, and a query's bits must not depend on its
   part.  (A first strip's max depends on the query alone.)  One thread
   of this project's Xeon VM (CPU family 6, model 207; bench --attn, both
   builds by make's flags, four rounds in turn, of which rounds 2 and 3
   and the fourth's old side ran outside the host's slow spells), when
   every tile but a block's first took the lazy step and the margin was
   2^8 alone, against the online pass everywhere: heads 8 x 64, forward
   at n = 1,024 16.34-17.31 -> 15.76-16.02 ms, n = 512 4.14-4.51 ->
   4.12-4.14; forward + backward at 1,024 58.5-60.3 -> 56.4-57.2.
   That form computed the scores again for any rise past 2^8, which
   wide scores make common: with q and k drawn from N(0, σ²), heads
   8 x 64, scale 1/8, n = 1,024, it redid 196 of 1,536 vectors at σ = 2
   and 1,061 at σ = 3 (3 at σ = 1.5, none at 1); the bands above
   recompute none of them at σ <= 3 (5 of 2,048 at σ = 4).  One thread
   of this project's Xeon VM (model 167), six rounds in turn, medians
   (bench/results/peers-cpu/flash-lazy-bands-ab.txt): build/flash_spread,
   n = 512 / 1,024 / 2,048, σ = 2 0.98x / 0.94x / 0.91x the time, σ = 3
   0.77x / 0.73x / 0.74x (n = 1,024: 19.4-20.9 -> 13.5-15.0 ms), σ = 1
   and n = 256 level (0.94-0.99x); bench --attn and --tracker level
   (0.92-1.08x, within the rounds' spread).  The first tile on the
   online pass instead, the rest as here: heads 4 x 16 4-8% slower in
   eight rounds, 8 x 64 level. */
#define EA_FA_LAZY 8.0f
#define EA_FA_LAZY_FAR 32.0f
#define EA_FA_LAZY_RESCALE 100.0f
static int ea__fa_lazy_off = 0; /* tests: 1 keeps the online pass on every tile */
static int ea__fa_lazy(float *st, int bc, int bw, float *m, float *l, float *corr, float *tsum, const float *qt,
                       const float *kt, ptrdiff_t ldk, int dh) {
    int i, j, c, rise, far, huge, moves = 0;
    for (i = 0; i < bw; i += EA_VW) {
        for (rise = far = huge = 0, j = i; j < i + EA_VW; j++) {
            rise |= corr[j] > m[j] + EA_FA_LAZY;
            far |= corr[j] > m[j] + EA_FA_LAZY_FAR;
            huge |= !(corr[j] <= m[j] + EA_FA_LAZY_RESCALE); /* NaN and m = -inf too */
        }
        if (!far) {
            for (j = i; j < i + EA_VW; j++) {
                l[j] += tsum[j];
                tsum[j] = rise && corr[j] > m[j] ? corr[j] : m[j]; /* m after the P·V product */
                corr[j] = 1.0f;
            }
            moves |= rise;
            continue;
        }
        if (!huge) { /* the powers times 2^(m - max): the online step's pass, a product for each exponential */
            ea_vf mv = ea_vload(m + i), mx = ea_vmax(mv, ea_vload(corr + i)), f = ea_vexp2(ea_vsub(mv, mx));
            ea_vf sum = ea_vzero();
            for (c = 0; c < bc; c++) {
                float *p = st + (size_t)c * EA_FA_LD + i;
                ea_vf e = ea_vmul(ea_vload(p), f);
                ea_vstore(p, e);
                sum = ea_vadd(sum, e);
            }
            ea_vstore(l + i, ea_vfma(ea_vload(l + i), f, sum));
            ea_vstore(corr + i, f);
            ea_vstore(m + i, mx);
        } else {
            ea__gemm_serial(bc, EA_VW, dh, kt, ldk, 1, qt + i, EA_FA_LD, 1, st + i, EA_FA_LD, 0);
            ea__fa_online(st + i, bc, EA_VW, m + i, l + i, corr + i, 0);
        }
        for (j = i; j < i + EA_VW; j++) tsum[j] = m[j];
    }
    return moves;
}

/* After the P·V product of a tile whose lazy step kept powers far above
   1 (ea__fa_lazy returned 1): each query's m moves up to its new max
   (held in tsum), its l and O_acc scaled by 2^(m - max); corr receives
   the factors (1 where m stays). */
static void ea__fa_move_max(float *m, float *l, float *corr, const float *target, int bw) {
    int r;
    for (r = 0; r < bw; r++) {
        float f = target[r] > m[r] ? exp2f(m[r] - target[r]) : 1.0f;
        l[r] *= f;
        m[r] = target[r] > m[r] ? target[r] : m[r];
        corr[r] = f;
    }
}

/* The forward's P·V tile is br x dh (query rows, a panel of dh columns),
   or flipped, dh x bw (ea__fa_fwd_item): whichever the micro-kernel runs
   in fewer steps.  Cost per k in thirds of a vector FMA: its rows padded to
   whole MR, times 3 per vector column, and a panel left one vector wide
   costs a third more (6 accumulators, fewer than the FMA units' latency
   needs, and 7 loads per 6 FMAs).  Heads 4 x 16 in a block of 65 queries
   stay (66 rows x 1 vector = 264 against 18 x (4 + 1) = 288); in blocks of
   64 (the tracker's, and n = 65's tiles since ea__fa_row_tile takes its
   last query) they flip (264 against 216), as do 4 x 12 at n = 50 (216
   against 144); 8 x 32 stay (396 against 432), 8 x 64 tie and stay.
   Forward alone, best of 3-300 calls, three rounds alternating with the
   unflipped build, one Zen 5 thread: 4 x 16, n = 1,024 2044-2050 ->
   1880-1894 us, n = 4,096 34.0-34.6 -> 31.6-32.6 ms; 4 x 12, n = 50, batch
   12 82.9-83.5 -> 70.8-71.3 us; the shapes that stay level.  The device's
   Xeon on 16 threads 471-478 -> 429-446 us, 7.73-7.90 -> 7.50-7.61 ms,
   24.0-24.4 -> 22.8-23.7 us (one thread there too noisy to tell;
   bench/results/peers-cpu/flash-pv-flip-ab.txt).  Every tile flipped had
   cost 4 x 16 at n = 65 345-350 -> 372-374 us. */
static int ea__fa_pv_cost(int M, int N) {
    int nv = ea__gemm_nv(), vecs = (N + EA_VW - 1) / EA_VW;
    return (M + EA_MR - 1) / EA_MR * EA_MR * (3 * vecs + (vecs % nv == 1));
}
static int ea__fa_pv_flip_forced = 0; /* tests: 1 flips every tile, -1 none */
static int ea__fa_pv_flip(int dh, int br) {
    if (ea__fa_pv_flip_forced) return ea__fa_pv_flip_forced > 0;
    return ea__fa_pv_cost(dh, ea__fa_width(br)) < ea__fa_pv_cost(br, dh);
}

/* A flipped accumulator (O_accᵀ: dh rows of bw queries, at stride
   EA_FA_LD) with each query's column times its factor f[i]. */
static void ea__fa_scale_t(float *acc, int dh, int bw, const float *f) {
    int r, i;
    for (r = 0; r < dh; r++) {
        float *row = acc + (size_t)r * EA_FA_LD;
        for (i = 0; i < bw; i += EA_VW) ea_vstore(row + i, ea_vmul(ea_vload(row + i), ea_vload(f + i)));
    }
}

/* O_acc's queries times corr: held flipped, whole vectors of them; else
   the rows (brm of them) whose factor is not 1. */
static void ea__fa_scale_acc(float *acc, const float *corr, int flip, int brm, int bw, int dh) {
    int r;
    if (flip) ea__fa_scale_t(acc, dh, bw, corr);
    else
        for (r = 0; r < brm; r++)
            if (corr[r] != 1.0f) ea__scal(acc + (size_t)r * dh, corr[r], acc + (size_t)r * dh, dh);
}

/* Parts each query block is cut into (0: chosen from the thread count);
   tests set it to check that every split gives the same bits. */
static int ea__fa_split_forced = 0;

/* A forward call's items: part w % split of query block I of (b, h), in
   the order of (b, h, I). */
EA_INLINE int ea__fa_items(const ea_sdpa_shape *s, int split) {
    return s->B * s->H * ea__fa_count(s->nq, EA_FA_BR) * split;
}

/* Item w's batch, head, block and rows [i0, i0 + br) (br <= 0: none, a
   short block has fewer parts). */
typedef struct ea__fa_item {
    int b, h, I, i0, br;
} ea__fa_item;
static ea__fa_item ea__fa_item_of(const ea_sdpa_shape *s, int w, int split) {
    ea__fa_item it;
    int nblk = ea__fa_count(s->nq, EA_FA_BR), len, part, left;
    it.b = w / (s->H * nblk * split);
    it.h = (w / (nblk * split)) % s->H;
    it.I = (w / split) % nblk;
    len = ea__fa_len(s->nq, EA_FA_BR, it.I, nblk);
    part = ea__fa_width((len + split - 1) / split);
    it.i0 = it.I * EA_FA_BR + (w % split) * part;
    left = it.I * EA_FA_BR + len - it.i0;
    it.br = left < part ? left : part;
    return it;
}

/* Ask item w's Q rows into the L2.  Inline, as ea__fa_bwd_prefetch. */
EA_INLINE void ea__fa_fwd_prefetch(const float *q, const ea_sdpa_shape *s, int w, int split) {
    ea__fa_item it = ea__fa_item_of(s, w, split);
    int r;
    for (r = it.i0; r < it.i0 + it.br; r++)
        ea__prefetch(q + ((size_t)it.b * s->nq + r) * s->ldq + it.h * s->dh, s->dh, 1);
}

/* Rows [0, n) of dh floats at stride lds into rows at stride ldd (one
   of them dh: into a contiguous copy or back out of it); the row 16
   ahead asked for as each is copied.  Vector moves, not a memcpy call
   a row: the copies were 6% of the backward's samples at heads 8 x 64,
   n = 1,024 (perf, one thread of model 167), and 8 heads' rows, one
   head at a time, 2 MiB in all, cold, took 285-295 us by memcpy calls
   against 228-286 by vector moves (a throwaway harness, three runs). */
static void ea__fa_rows_copy(float *dst, ptrdiff_t ldd, const float *src, ptrdiff_t lds, int n, int dh) {
    int r, d;
    for (r = 0; r < n; r++) {
        const float *from = src + (ptrdiff_t)r * lds;
        float *to = dst + (ptrdiff_t)r * ldd;
        if (r + 16 < n) ea__prefetch(src + (ptrdiff_t)(r + 16) * lds, dh, 0);
        for (d = 0; d + EA_VW <= dh; d += EA_VW) ea_vstore(to + d, ea_vload(from + d));
        for (; d < dh; d++) to[d] = from[d];
    }
}

/* Rows [0, n) of dh floats at stride ld set to zero: a gradient the
   backward writes rather than adds to (ea__fa_bwd's fresh), cleared by
   the thread about to add into it, where its lines are wanted next.
   Vector stores, not a call per row: the tracker's rows are one line. */
static void ea__fa_rows_zero(float *dst, ptrdiff_t ld, int n, int dh) {
    int r, d;
    for (r = 0; r < n; r++) {
        float *row = dst + (ptrdiff_t)r * ld;
        for (d = 0; d + EA_VW <= dh; d += EA_VW) ea_vstore(row + d, ea_vzero());
        for (; d < dh; d++) row[d] = 0.0f;
    }
}

/* Whether a call copies each head's rows contiguous before its blocks
   read them (ea__fa_fwd_item, ea__fa_bwd_held): where its share has room
   (ea__fa_kv_floats: the call runs on one thread) and it visits every key
   tile (no block mask: a sparse one reads too few of them to repay the
   copy). */
static int ea__fa_kv_forced = 0; /* tests: -1 never copies */
static int ea__fa_kv_copy(const ea_sdpa_shape *s, const ea_block_mask *bm) {
    return ea__fa_kv_floats(s) && !bm && ea__fa_kv_forced >= 0;
}

/* A block whose queries end one past a whole vector (65 tokens: 64 patches
   and a class token) gives that query a path of its own: held in the
   tiles, it costs a whole vector of queries (64 -> 80 columns in the
   scores' product, the powers and P·V: a fifth more work).  For each key
   tile, its scores by dot products along K's rows, the online step in base
   2 as the tiles' (its m and l in theirs, past the tiles' columns) and
   O_acc = O_acc·corr + Σ_c p_c·V_c in two chains of keys.  It is the
   block's last query, so the tiles' causal limit (the block's last row's
   key) is its own.  Which query takes it depends on the block alone
   (ea__fa_split's parts are whole vectors but the last): the same bits
   whatever the split.  Without mods only (a mask_mod or score_mod asks per
   pair; a block mask's partial tiles come with one).  Flash forward alone,
   batch 32, heads 4 x dh, one thread, rounds in turn
   (bench/results/peers-cpu/flash-row-tile-ab.txt): this project's Xeon VM
   (model 207) n = 65, dh = 16 564.6-567.0 -> 490.9-495.7 us, dh = 12
   466.9-475.3 -> 404.1-405.6, dh = 32 916-920 -> 861-865, dh = 64
   1558-1568 -> 1468-1492 us; n = 129, dh = 64 6.19 -> 5.77-6.04 ms, n =
   257 21.1-22.1 -> 20.8; the device's Xeon (model 143) 734-750 -> 642-660
   us at n = 65, dh = 16.  Two such queries, each a dot product's
   horizontal sum per key, lost or tied: n = 50, dh = 12 277-279 -> 280-282
   us, n = 66, dh = 64 1476-1589 -> 1598-1617 (dh = 16 at n = 50 gained
   4%); so one query only.  The tracker (64 tokens, mean pooling) has none. */
static int ea__fa_rows_off = 0; /* tests: 1 keeps every query in the tiles */
EA_INLINE int ea__fa_row_own(int br, const ea_flex_mods *mods) {
    return br % EA_VW == 1 && !mods && !ea__fa_rows_off; /* never with EA_VW = 1 */
}
/* One key tile (bc keys from kt, vt) for the query qr (times the call's
   scale·log2(e), as the tiles' Qᵀ): sr receives its scores, padded with
   -inf to whole vectors, then their powers; m and l are the row's.  Every
   loop runs on whole vectors, masked past dh (a scalar dot product at a
   head width of 12 was one chain of dependent FMAs a key). */
static void ea__fa_row_tile(float *acc, float *m, float *l, float *sr, const float *qr, const float *kt, ptrdiff_t ldk,
                            const float *vt, ptrdiff_t ldv, int bc, int dh) {
    int c, d, nc = (bc + EA_VW - 1) / EA_VW * EA_VW;
    ea_vf top = ea_vset1(*m), sum = ea_vzero();
    float mx, corr;
    for (c = 0; c < bc; c++) {
        ea_vf x = ea_vzero();
        for (d = 0; d < dh; d += EA_VW) {
            int w = dh - d < EA_VW ? dh - d : EA_VW;
            x = ea_vfma(ea__ld(qr + d, w), ea__ld(kt + (ptrdiff_t)c * ldk + d, w), x);
        }
        sr[c] = ea_vhsum(x);
    }
    for (; c < nc; c++) sr[c] = -INFINITY;
    for (c = 0; c < nc; c += EA_VW) top = ea_vmax(top, ea_vload(sr + c));
    mx = ea_vhmax(top);
    if (mx == -INFINITY) return; /* nothing finite yet */
    for (c = 0; c < nc; c += EA_VW) {
        ea_vf e = ea_vexp2(ea_vsub(ea_vload(sr + c), ea_vset1(mx)));
        ea_vstore(sr + c, e);
        sum = ea_vadd(sum, e);
    }
    corr = exp2f(*m - mx); /* 0 on the first tile (m = -inf) */
    *l = *l * corr + ea_vhsum(sum);
    *m = mx;
    for (d = 0; d < dh; d += EA_VW) {
        int w = dh - d < EA_VW ? dh - d : EA_VW;
        ea_vf a0 = ea_vmul(ea__ld(acc + d, w), ea_vset1(corr)), a1 = ea_vzero();
        for (c = 0; c + 2 <= bc; c += 2) {
            a0 = ea_vfma(ea_vset1(sr[c]), ea__ld(vt + (ptrdiff_t)c * ldv + d, w), a0);
            a1 = ea_vfma(ea_vset1(sr[c + 1]), ea__ld(vt + (ptrdiff_t)(c + 1) * ldv + d, w), a1);
        }
        if (c < bc) a0 = ea_vfma(ea_vset1(sr[c]), ea__ld(vt + (ptrdiff_t)c * ldv + d, w), a0);
        ea__st(acc + d, ea_vadd(a0, a1), w);
    }
}

/* Item w of a forward call.  held (NULL: K and V read in place) names
   the head whose K and V rows this thread's share holds, copied, or -1. */
static void ea__fa_fwd_item(float *o, float *lse, float *scratch, const float *q, const float *k, const float *v,
                            const ea_sdpa_shape *s, const ea_block_mask *bm, const ea_flex_mods *mods, int w,
                            int split, int *held) {
    int step = bm ? EA_FA_BC : EA_FA_BCW; /* key tile rows: a block mask's, or wide */
    ea__fa_item it = ea__fa_item_of(s, w, split);
    int nkt = ea__fa_count(s->nk, step), group = s->H / s->Hkv;
    int b = it.b, h = it.h, I = it.I, g = h / group, i0 = it.i0, br = it.br;
    int own = ea__fa_row_own(br, mods), brm = br - own; /* brm rows in the tiles, then the own path's */
    int last_row_key = ea__last_key(s, i0 + br - 1), r, t, nt, fresh = 1, bw = ea__fa_width(brm), fused, lazy, moves;
    int flip = ea__fa_pv_flip(s->dh, brm);
    float *qt = ea__fa_scratch_of(scratch, s), *st = qt + (size_t)EA_FA_LD * s->dh;
    float *acc = st + (size_t)EA_FA_BCWMAX * EA_FA_LD, *m = acc + (size_t)EA_FA_LD * s->dh;
    float *l = m + EA_FA_LD, *corr = l + EA_FA_LD, *tsum = corr + EA_FA_LD;
    float *sr = tsum + EA_FA_LD, *qr = sr + EA_FA_BCWMAX, *ar = qr + s->dh;
    const float *kh = k + (size_t)b * s->nk * s->ldk + g * s->dh;
    const float *vh = v + (size_t)b * s->nk * s->ldv + g * s->dh;
    const int *list;
    ea_sdpa_shape packed;
    if (br <= 0) return; /* a short block has fewer parts */
    if (held) {
        /* A head's rows lie H·dh floats apart (2 KiB at 8 x 64), on few
           of the caches' sets: at n = 1,024 its 512 KiB of K and V evict
           each other from the L2, and on the device's Xeon the P·V
           product's V panel, read in place, most likely came again from
           beyond the L1 for every six query rows (the Xeon has no perf to
           count it).  Copied once a head, contiguous, its rows use every
           set; the sums are the same (the same values in the same
           order).  Flash harness, heads 8 x 64, one thread, rounds
           alternating, medians: the device's Xeon (a busy host, 3 and 8
           rounds) n = 1,024 19.4-25.5 -> 16.5-17.4 ms (the same heads laid
           out contiguous: 16.2), n = 512 4.82-5.10 -> 4.10-4.39, causal at
           1,024 11.3 -> 9.65; Zen 4 (6 rounds) 21.18 -> 21.24, 5.30 ->
           5.29, causal 11.74 -> 11.60: level.  The share is found before
           s points at the copy's shape (whose share has no room for
           one). */
        float *kc = qt + ea__fa_share(s) - ea__fa_kv_floats(s), *vc = kc + (size_t)s->nk * s->dh;
        if (*held != b * s->Hkv + g) {
            ea__fa_rows_copy(kc, s->dh, kh, s->ldk, s->nk, s->dh);
            ea__fa_rows_copy(vc, s->dh, vh, s->ldv, s->nk, s->dh);
            *held = b * s->Hkv + g;
        }
        packed = *s;
        packed.ldk = packed.ldv = s->dh;
        kh = kc;
        vh = vc;
        s = &packed;
    }
    /* scores in base 2 (ea__fa_online): scale·log2(e) folded into Qᵀ */
    ea__fa_pack_t(qt, q + (size_t)b * s->nq * s->ldq + h * s->dh, s->ldq, i0, brm, s->dh, s->scale * EA_LOG2E);
    if (own) {
        ea__scal(qr, s->scale * EA_LOG2E, q + ((size_t)b * s->nq + i0 + brm) * s->ldq + h * s->dh, s->dh);
        memset(ar, 0, (size_t)s->dh * sizeof(float));
    }
    for (r = 0; r < EA_FA_LD; r++) {
        m[r] = -INFINITY;
        l[r] = 0.0f;
    }
    nt = ea__fa_tiles(bm, b, h, I, last_row_key, step, s, &list);
    for (t = 0; t < nt; t++) {
        /* Odd blocks visit their tiles last to first: the tiles the block
           before read last are still in the L2.  A head's K and V rows lie
           H·dh floats apart, 2 KiB at 8 x 64, and fall on an eighth of the
           L2's sets: at n = 1,024 a block's 512 KiB of them evict each
           other, and every block read all of them from the L3.  Any order
           gives a query the same keys (the online softmax's sums in
           another order: within rounding of the reference); the parts of
           a block (ea__fa_split) share its order, so the bits do not
           depend on the thread count.  Flash harness, one Zen 4 thread,
           rounds alternating, medians: 8 x 64 at n = 1,024 21.11 ->
           21.00 ms; n = 512 and causal level. */
        int u = I % 2 ? nt - 1 - t : t, J = list ? list[u] >> 1 : u, j0 = J * step, bc;
        if (j0 > last_row_key) continue; /* wholly in the future of every row */
        bc = ea__fa_len(s->nk, step, J, nkt);
        /* a causal block's last wide tile ends at its last row's key: the
           keys past it are hidden from every row (computed, they had made
           causal 8 x 64 at n = 1,024 1.5-2.7% slower than 64-key tiles) */
        bc = bc < last_row_key + 1 - j0 ? bc : last_row_key + 1 - j0;
        if (own) /* ea__fa_row_tile */
            ea__fa_row_tile(ar, m + brm, l + brm, sr, qr, kh + (size_t)j0 * s->ldk, s->ldk, vh + (size_t)j0 * s->ldv,
                            s->ldv, bc, s->dh);
        if (!brm) continue;
        memcpy(corr, m, (size_t)bw * sizeof(float)); /* the running max, raised by the product if it can */
        lazy = !s->causal && !ea__fa_lazy_off; /* see ea__fa_lazy */
        if (lazy) memset(tsum, 0, (size_t)bw * sizeof(float));
        fused = ea__fa_scores(st, NULL, qt, EA_LOG2E, kh, b, h, i0, brm, j0, bc, !ea__fa_full(list, u, mods), mods, s,
                              corr, lazy ? m : NULL, tsum, fresh);
        moves = fused == 2 && ea__fa_lazy(st, bc, bw, m, l, corr, tsum, qt, kh + (size_t)j0 * s->ldk, s->ldk, s->dh);
        if (fused != 2) ea__fa_online(st, bc, bw, m, l, corr, fused);
        /* O_acc = O_acc·corr + P V, with A = P read across the tile
           (row stride 1) and V's rows as the panel; or, where
           ea__fa_pv_flip says so, the accumulator held transposed:
           O_accᵀ = O_accᵀ·corr + Vᵀ Pᵀ, Pᵀ read in place as the panel,
           V's elements broadcast, corr scaling whole vectors of queries
           (padding columns stay finite and are never read).  Either way
           each element sums P[i][c]·V[c][d] over c in order from zero
           and adds that to the scaled accumulator: the same bits.
           The first tile a block visits writes O_acc rather than
           scaling zeros and adding to them: the same bits (0·corr + x =
           x; the GEMM's sums are never -0), without a clear and a
           scaling pass.  At the tracker's one tile per block (4 x 16
           heads, n = 65, batch 32, one thread, best of 15 x 20 calls in 4
           alternating rounds): Zen 5 380-395 -> 366-377 us; the device's
           Xeon 726-784 -> 706-1058, best 726 -> 706 (its rounds overlap). */
        /* During the last of several tiles, the next item's Q rows are
           asked into the L2 (a block's rows lie H·dh floats apart, which
           the prefetchers did not follow: its packing had taken 1.1-1.8%
           of the forward at 8 x 64 heads, n = 1,024).  The next item is
           w + 1: this thread's own on one thread or a static share;
           under a dynamic schedule some thread's.  Flash harness, one
           Zen 4 thread, six rounds alternating, medians: 8 x 64 at
           n = 1,024 21.60 -> 21.39 ms, causal 11.65 -> 11.59, n = 512
           5.294 -> 5.280, the rest level.  Into the L1 instead, it
           evicted the P·V tiles' rows: no gain. */
        if (t == nt - 1 && nt > 1 && w + 1 < ea__fa_items(s, split)) ea__fa_fwd_prefetch(q, s, w + 1, split);
        if (!fresh) ea__fa_scale_acc(acc, corr, flip, brm, bw, s->dh);
        if (flip)
            ea__gemm_serial(s->dh, bw, bc, vh + (size_t)j0 * s->ldv, 1, s->ldv, st, EA_FA_LD, 1, acc, EA_FA_LD, !fresh);
        else
            ea__gemm_serial(br, s->dh, bc, st, 1, EA_FA_LD, vh + (size_t)j0 * s->ldv, s->ldv, 1, acc, s->dh, !fresh);
        if (moves && t < nt - 1) { /* after the last tile, O = O_acc / l and lse = m + log2 l whatever m is */
            ea__fa_move_max(m, l, corr, tsum, bw);
            ea__fa_scale_acc(acc, corr, flip, brm, bw, s->dh);
        }
        fresh = 0;
    }
    if (fresh && brm) memset(acc, 0, (size_t)s->dh * EA_FA_LD * sizeof(float)); /* no key visible to the block */
    /* O = O_acc / l.  Held flipped, O_accᵀ is scaled a vector of queries
       at a time (1/l in corr) and then transposed into O's rows by 4 x 4
       blocks: the same one product per element as before, where a scalar
       gather down O_accᵀ's columns had cost the tracker's forward (4 x 16
       heads, n = 64, batch 32, one Zen 5 thread; regions --train, three
       rounds alternating) 1611-1635 -> 1343-1362 us a step with
       ea__fa_online's four max chains, 1378-1423 without them. */
    if (flip && brm) {
        for (r = 0; r < bw; r++) corr[r] = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
        ea__fa_scale_t(acc, s->dh, bw, corr);
        ea__transpose_cols(o + ((size_t)b * s->nq + i0) * s->ldo + h * s->dh, s->ldo, acc, EA_FA_LD, s->dh, 0, brm);
    }
    for (r = 0; r < br; r++) {
        float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f, *orow = o + ((size_t)b * s->nq + i0 + r) * s->ldo + h * s->dh;
        if (r == brm) ea__scal(orow, inv, ar, s->dh); /* ea__fa_row_tile's */
        else if (!flip) ea__scal(orow, inv, acc + (size_t)r * s->dh, s->dh);
        if (lse) lse[((size_t)b * s->H + h) * s->nq + i0 + r] = l[r] > 0.0f ? (m[r] + log2f(l[r])) * EA_LN2 : INFINITY;
    }
}

/* Parts each query block of a call goes in: 1, or, with a team (par),
   2 or 4 where the blocks are fewer than the threads. */
static int ea__fa_split(const ea_sdpa_shape *s, int par) {
    int blocks = s->B * s->H * ea__fa_count(s->nq, EA_FA_BR), split = 1;
    /* Fewer query blocks than threads (one sequence of a few heads: 8 x 64
       at n = 64 is 8 blocks for 16 threads): each block's queries go in 2
       or 4 parts of whole vectors, each part an item of its own against
       the block's key tiles.  A query's output does not depend on the
       block that holds it (its scores, softmax and P·V sums run over the
       same keys in the same order; a key tile that the whole block visits
       but lies in a part's causal future adds exact zeros to its rows), so
       any split gives the same bits.  Measured on the device's Xeon, 16
       threads, 4 rounds alternating with the unsplit build (bench --attn):
       8 x 64, n = 64 0.037-0.042 -> 0.029-0.035 ms; 4 x 16, n = 64
       0.018-0.022 -> 0.013-0.015, n = 128 0.026-0.037 -> 0.021-0.023; the
       tracker at batch 1 (4 blocks) 269-305 -> 220-262 us a step. */
    if (ea__fa_split_forced) return ea__fa_split_forced;
    if (par)
        while (split < 4 && blocks * split < ea_num_threads()) split *= 2;
    return split;
}

typedef struct { /* ea_sdpa_flash_fwd's arguments, for items [w0, w1) on a thread */
    float *o, *lse, *scratch;
    const float *q, *k, *v;
    const ea_sdpa_shape *s;
    const ea_block_mask *bm;
    const ea_flex_mods *mods;
    int split;
} ea__fa_fwd_job;
static void ea__fa_fwd_range(const void *arg, int w0, int w1) {
    const ea__fa_fwd_job *j = (const ea__fa_fwd_job *)arg;
    int w;
    for (w = w0; w < w1; w++)
        ea__fa_fwd_item(j->o, j->lse, j->scratch, j->q, j->k, j->v, j->s, j->bm, j->mods, w, j->split, NULL);
}

EA_API void ea_sdpa_flash_fwd(float *o, float *lse, float *scratch, const float *q, const float *k,
                              const float *v, const ea_sdpa_shape *s, const ea_block_mask *bm,
                              const ea_flex_mods *mods) {
    int par = 4.0 * s->nq * s->nk * s->dh * s->B * s->H >= EA_PAR_MIN_WORK, split = ea__fa_split(s, par), work, w;
    /* Items in the order of their rows, each thread's static share first
       (ea__par_steal): the rows a thread's share of the previous product
       (Q, K, V from x·Wᵀ) wrote, so its items read them from its own
       cache; the last items of a slow core's share go to threads that are
       done.  Where an item visits many key tiles (n >= 512), that
       saving is small against its work, and threads take items as they
       finish (schedule dynamic): on a shared host, a core that runs slow
       for a while no longer holds up the call.  Each item is computed the
       same way whichever thread takes it: the same bits.  The device's
       Xeon, heads 8 x 64, forward, 4 rounds alternating with the static
       build (bench --attn): 16 threads, n = 1,024 2.64-3.57 -> 1.95-2.32
       ms, n = 512 0.68-0.80 -> 0.54-0.71; 4 threads, n = 1,024 7.7-11.0
       -> 6.8-8.1; heads 4 x 16 level.  Dynamic for the tracker's one tile
       (batch 32, 16 threads) had cost 1175-1451 -> 1573-1654 us a step;
       static shares whose tails go to idle threads, here and in the
       backward: the device's Xeon (its threads of uneven speed), the
       tracker's training step at batch 32 on 16 threads, 12 rounds in
       turn, 6174-7776 -> 5951-7117 us, medians 6881 -> 6474. */
    work = ea__fa_items(s, split);
    if (ea__fa_kv_copy(s, bm)) {
        int held = -1; /* one thread: its items visit each head's blocks in turn */
        for (w = 0; w < work; w++) ea__fa_fwd_item(o, lse, scratch, q, k, v, s, bm, mods, w, split, &held);
    } else if (ea__fa_count(s->nk, EA_FA_BC) >= 8) {
        EA_OMP_FOR_DYNAMIC_IF(par && work > 1)
        for (w = 0; w < work; w++) ea__fa_fwd_item(o, lse, scratch, q, k, v, s, bm, mods, w, split, NULL);
    } else {
        ea__fa_fwd_job j = {o, lse, scratch, q, k, v, s, bm, mods, split}; /* its fields' order */
        ea__par_steal(ea__fa_fwd_range, &j, work, par);
    }
}

/* d score_mod / d score: the user's derivative, or a central difference. */
static float ea__dscore(const ea_flex_mods *mods, float x, int b, int h, int q, int k) {
    float step;
    if (mods->dscore_mod) return mods->dscore_mod(x, b, h, q, k, mods->user);
    step = 1e-3f * (fabsf(x) > 1.0f ? fabsf(x) : 1.0f);
    return (mods->score_mod(x + step, b, h, q, k, mods->user) - mods->score_mod(x - step, b, h, q, k, mods->user)) /
           (2.0f * step);
}

/* Query block I of head h (batch b) made ready for its tile pairs: D_i =
   rowsum(dO ∘ O) and lse·log2(e) (padding rows get D = 0 and lse = +inf,
   so P = 0 there), Q·scale·log2(e) (the scores in base 2, as the
   forward's) and dO as dh x bw panels.  D_i is ea__dot's: a vector
   of products at a time, then across its lanes (a scalar sum had been one
   chain of dh dependent additions a row).  One Zen 4 thread, rounds
   alternating: the tracker's heads (4 x 16, n = 64, batch 32; the six
   fastest of eight) 1193-1206 -> 1162-1185 us a call, 8 x 64 at n = 256
   (two) 3581-3582 -> 3517-3518, level at n = 1,024; inside a training
   step, within the noise. */
static void ea__fa_bwd_block(float *qt, float *dot, float *D, float *L, const float *dout, const float *o,
                             const float *lse, const float *q, const ea_sdpa_shape *s, int b, int h, int I) {
    int nblk = ea__fa_count(s->nq, EA_FA_BR), i0 = I * EA_FA_BR, br = ea__fa_len(s->nq, EA_FA_BR, I, nblk), r;
    size_t qo = (size_t)b * s->nq * s->ldq + h * s->dh, oo = (size_t)b * s->nq * s->ldo + h * s->dh;
    const float *lh = lse + ((size_t)b * s->H + h) * s->nq;
    for (r = 0; r < ea__fa_width(br); r++) {
        D[r] = r < br ? ea__dot(dout + oo + (size_t)(i0 + r) * s->ldo, o + oo + (size_t)(i0 + r) * s->ldo, s->dh) : 0.0f;
        L[r] = r < br ? lh[i0 + r] * EA_LOG2E : INFINITY;
    }
    ea__fa_pack_t(qt, q + qo, s->ldq, i0, br, s->dh, s->scale * EA_LOG2E);
    ea__fa_pack_t(dot, dout + oo, s->ldo, i0, br, s->dh, 1.0f);
}

/* One tile pair (queries i0 .. i0+br of a prepared block, keys j0 ..
   j0+bc): Pᵀ = 2^(Sᵀ - lse·log2(e)) into pt (a row that saw no key has
   lse = +inf: 0), then, when ds, dPᵀ = V_tile dOᵀ and dSᵀ = scale·Pᵀ ∘
   (dPᵀ - D) into dpt, through score_mod's derivative at the (natural)
   score it saw. */
static void ea__fa_bwd_pair(float *pt, float *dpt, float *raw, const float *qt, const float *dot, const float *D,
                            const float *L, const float *kh, const float *vh, int b, int h, int i0, int br, int j0,
                            int bc, int partial, int ds, const ea_flex_mods *mods, const ea_sdpa_shape *s) {
    int modded = mods && mods->score_mod, bw = ea__fa_width(br), c, i;
    ea__fa_scores(pt, modded ? raw : NULL, qt, EA_LOG2E, kh, b, h, i0, br, j0, bc, partial, mods, s, NULL, NULL, NULL, 0);
    for (c = 0; c < bc; c++)
        for (i = 0; i < bw; i += EA_VW) {
            float *p = pt + (size_t)c * EA_FA_LD + i;
            ea_vstore(p, ea_vexp2(ea_vsub(ea_vload(p), ea_vload(L + i))));
        }
    if (!ds) return;
    ea__gemm_serial(bc, bw, s->dh, vh + (size_t)j0 * s->ldv, s->ldv, 1, dot, EA_FA_LD, 1, dpt, EA_FA_LD, 0);
    for (c = 0; c < bc; c++)
        for (i = 0; i < bw; i += EA_VW) {
            size_t x = (size_t)c * EA_FA_LD + i;
            ea_vstore(dpt + x, ea_vmul(ea_vmul(ea_vset1(s->scale), ea_vload(pt + x)),
                                       ea_vsub(ea_vload(dpt + x), ea_vload(D + i))));
        }
    if (modded)
        for (c = 0; c < bc; c++)
            for (i = 0; i < br; i++) {
                size_t x = (size_t)c * EA_FA_LD + i;
                if (pt[x] != 0.0f) dpt[x] *= ea__dscore(mods, raw[x], b, h, i0 + i, j0 + c);
            }
}

/* The pair's products: dV += Pᵀ dO, dK += dSᵀ Q, dQ += dS K, each where
   asked for (the pointers at this head's block and key tile). */
static void ea__fa_bwd_sums(float *dq, float *dk, float *dv, const float *pt, const float *dpt, const float *q,
                            const float *kt, const float *dout, int br, int bc, const ea_sdpa_shape *s) {
    if (dv) ea__gemm_serial(bc, s->dh, br, pt, EA_FA_LD, 1, dout, s->ldo, 1, dv, s->ldv, 1);
    if (dq) ea__gemm_serial(br, s->dh, bc, dpt, 1, EA_FA_LD, kt, s->ldk, 1, dq, s->ldq, 1);
    if (dk) ea__gemm_serial(bc, s->dh, br, dpt, EA_FA_LD, 1, q, s->ldq, 1, dk, s->ldk, 1);
}

/* Parallel over key tiles (1), or (batch, K/V head) pairs only (-1), or
   chosen from the shape and team (0); tests set it to compare the two. */
static int ea__fa_bwd_keys_forced = 0;

/* The entry of key tile J in the tiles query block I of (b, h) visits, or
   -1.  *partial says whether it needs its mask asked. */
static int ea__fa_bwd_find(const ea_block_mask *bm, const ea_flex_mods *mods, const ea_sdpa_shape *s, int b, int h,
                           int I, int J, int *partial) {
    int nblk = ea__fa_count(s->nq, EA_FA_BR), i0 = I * EA_FA_BR, br = ea__fa_len(s->nq, EA_FA_BR, I, nblk), t, nt;
    int last_row_key = ea__last_key(s, i0 + br - 1);
    const int *list;
    if (J * EA_FA_BC > last_row_key) return -1;
    nt = ea__fa_tiles(bm, b, h, I, last_row_key, EA_FA_BC, s, &list);
    for (t = 0; t < nt; t++)
        if ((list ? list[t] >> 1 : t) == J) {
            *partial = !ea__fa_full(list, t, mods);
            return t;
        }
    return -1;
}

/* A thread's share of the scratch, as the backward uses it. */
typedef struct ea__fa_bufs { float *qt, *dot, *pt, *dpt, *raw, *D, *L; } ea__fa_bufs;
static ea__fa_bufs ea__fa_bufs_of(float *scratch, const ea_sdpa_shape *s) {
    ea__fa_bufs f;
    f.qt = ea__fa_scratch_of(scratch, s);
    f.dot = f.qt + (size_t)EA_FA_LD * s->dh;
    f.pt = f.dot + (size_t)EA_FA_LD * s->dh;
    f.dpt = f.pt + (size_t)EA_FA_BCMAX * EA_FA_LD;
    f.raw = f.dpt + (size_t)EA_FA_BCMAX * EA_FA_LD;
    f.D = f.raw + (size_t)EA_FA_BCMAX * EA_FA_LD;
    f.L = f.D + EA_FA_LD;
    return f;
}

/* Ask for the rows query block I of (b, h) reads and adds to: its Q, O,
   dO and dQ rows, and the K, V, dK and dV rows of the first key tile it
   visits.  The backward runs long after the forward wrote them, so at
   the tracker's batch 32 they are in memory, not in a cache, and each
   head's rows are a line or four at a stride of 3·H·dh floats, which the
   hardware's prefetchers did not follow: asked for one block ahead, the
   flash backward of a training step (4 x 16 heads, n = 64, regions --train
   --batch 32 on Zen 5, rounds alternating) went from 3511-3785 to
   2647-2684 us on one thread (the step 17.0-17.9 -> 16.4-16.9 ms) and
   2057-2109 -> 1421-1451 on two (10.1-10.5 -> 9.4-9.7 ms); in a harness
   that evicts the caches before each call, 787-790 -> 621-631 us a call
   (605-610 with the data in cache, either way).  The by-key-tile scheme
   below, for long sequences, rereads its rows from cache: not asked.
   The block's rows are asked a slice at a time, slice x of X (each
   array's rows split alike) at the x-th of the X points where the block
   before it works (ea__fa_bwd_row).  All at once, the 520 lines of the
   tracker's next block drew about 12% of all samples onto this loop
   (perf, a harness of those shapes calling forward and backward, about
   16% of the backward's share): most likely the core waited
   on its few outstanding misses before any product could run beside
   them.  One thread of this
   project's Xeon VM (model 167), regions --train --batch 32 --nodes,
   rounds in turn with the requests made at once: ea__sdpa_back
   4951-5304 -> 4732-5156 us a step, medians 5064 -> 4894, faster in six
   rounds of six (the step itself within its noise: 31.2-32.6 against
   31.3-33.1 ms); two threads and bench --attn (8 x 64, n = 256-1,024) level.
   Inline: gcc 12 counts a prefetch as no side effect, and
   deleted every call to this as a function of its own. */
typedef struct {
    const float *dq, *dk, *dv, *dout, *o, *q, *k, *v; /* dq, dk, dv NULL where none is added to */
    const ea_sdpa_shape *s;
    const ea_block_mask *bm;
    int b, h, I;
} ea__fa_ahead;
EA_INLINE void ea__fa_bwd_prefetch(const ea__fa_ahead *a, int x, int X) {
    const ea_sdpa_shape *s;
    int nblk, nkt, g, i0, br, r, J, bc, r0, r1, c0, c1;
    size_t qo, oo, ko, vo;
    const int *list;
    if (!a) return;
    s = a->s;
    nblk = ea__fa_count(s->nq, EA_FA_BR), nkt = ea__fa_count(s->nk, EA_FA_BC), g = a->h / (s->H / s->Hkv);
    i0 = a->I * EA_FA_BR, br = ea__fa_len(s->nq, EA_FA_BR, a->I, nblk);
    qo = (size_t)a->b * s->nq * s->ldq + a->h * s->dh, oo = (size_t)a->b * s->nq * s->ldo + a->h * s->dh;
    ko = (size_t)a->b * s->nk * s->ldk + g * s->dh, vo = (size_t)a->b * s->nk * s->ldv + g * s->dh;
    if (ea__fa_tiles(a->bm, a->b, a->h, a->I, ea__last_key(s, i0 + br - 1), EA_FA_BC, s, &list) <= 0) return;
    J = list ? list[0] >> 1 : 0;
    bc = ea__fa_len(s->nk, EA_FA_BC, J, nkt);
    r0 = i0 + br * x / X, r1 = i0 + br * (x + 1) / X;
    c0 = J * EA_FA_BC + bc * x / X, c1 = J * EA_FA_BC + bc * (x + 1) / X;
    for (r = r0; r < r1; r++) {
        ea__prefetch(a->q + qo + (size_t)r * s->ldq, s->dh, 0);
        ea__prefetch(a->o + oo + (size_t)r * s->ldo, s->dh, 0);
        ea__prefetch(a->dout + oo + (size_t)r * s->ldo, s->dh, 0);
        if (a->dq) ea__prefetch(a->dq + qo + (size_t)r * s->ldq, s->dh, 0);
    }
    for (r = c0; r < c1; r++) {
        ea__prefetch(a->k + ko + (size_t)r * s->ldk, s->dh, 0);
        ea__prefetch(a->v + vo + (size_t)r * s->ldv, s->dh, 0);
        if (a->dk) ea__prefetch(a->dk + ko + (size_t)r * s->ldk, s->dh, 0);
        if (a->dv) ea__prefetch(a->dv + vo + (size_t)r * s->ldv, s->dh, 0);
    }
}

/* Query block I of (b, h) against each key tile it visits, in list order:
   the sums of every pointer given (dq, dk, dv at the batch's first row of
   the head: dk and dv of its K/V head); with clear_dq, the block's dq rows
   are zeroed first (its only visit: ea__fa_bwd's fresh).  ahead (or NULL)
   names the block to ask the caches for meanwhile, a slice after the
   block is prepared and after each product step (ea__fa_bwd_prefetch). */
static void ea__fa_bwd_row(float *dq, float *dk, float *dv, float *scratch, const float *dout, const float *o,
                           const float *lse, const float *q, const float *k, const float *v, const ea_sdpa_shape *s,
                           const ea_block_mask *bm, const ea_flex_mods *mods, int b, int h, int I, int clear_dq,
                           const ea__fa_ahead *ahead) {
    int nblk = ea__fa_count(s->nq, EA_FA_BR), nkt = ea__fa_count(s->nk, EA_FA_BC), g = h / (s->H / s->Hkv), t, nt, X;
    int i0 = I * EA_FA_BR, br = ea__fa_len(s->nq, EA_FA_BR, I, nblk), last_row_key = ea__last_key(s, i0 + br - 1);
    size_t qo = (size_t)b * s->nq * s->ldq + h * s->dh + (size_t)i0 * s->ldq;
    size_t oo = (size_t)b * s->nq * s->ldo + h * s->dh + (size_t)i0 * s->ldo;
    size_t ko = (size_t)b * s->nk * s->ldk + g * s->dh, vo = (size_t)b * s->nk * s->ldv + g * s->dh;
    ea__fa_bufs f = ea__fa_bufs_of(scratch, s);
    const int *list;
    if (dq && clear_dq) ea__fa_rows_zero(dq + qo, s->ldq, br, s->dh);
    ea__fa_bwd_block(f.qt, f.dot, f.D, f.L, dout, o, lse, q, s, b, h, I);
    nt = ea__fa_tiles(bm, b, h, I, last_row_key, EA_FA_BC, s, &list);
    X = 2 * nt + 1; /* the slices of ahead's rows: one now, two a tile */
    ea__fa_bwd_prefetch(ahead, 0, X);
    for (t = 0; t < nt; t++) {
        int J = list ? list[t] >> 1 : t, j0 = J * EA_FA_BC, bc;
        if (j0 > last_row_key) { /* wholly in the future of every row */
            ea__fa_bwd_prefetch(ahead, 2 * t + 1, X);
            ea__fa_bwd_prefetch(ahead, 2 * t + 2, X);
            continue;
        }
        bc = ea__fa_len(s->nk, EA_FA_BC, J, nkt);
        ea__fa_bwd_pair(f.pt, f.dpt, f.raw, f.qt, f.dot, f.D, f.L, k + ko, v + vo, b, h, i0, br, j0, bc,
                        !ea__fa_full(list, t, mods), dq || dk, mods, s);
        ea__fa_bwd_prefetch(ahead, 2 * t + 1, X);
        ea__fa_bwd_sums(dq ? dq + qo : NULL, dk ? dk + ko + (size_t)j0 * s->ldk : NULL,
                        dv ? dv + vo + (size_t)j0 * s->ldv : NULL, f.pt, f.dpt, q + qo, k + ko + (size_t)j0 * s->ldk,
                        dout + oo, br, bc, s);
        ea__fa_bwd_prefetch(ahead, 2 * t + 2, X);
    }
}

/* Key tile J of (b, K/V head g) against each query block that visits it,
   over the group's heads and blocks in order: its rows of dk and dv
   (zeroed first where fresh asks: bits 2 and 4, as ea__fa_bwd's). */
static void ea__fa_bwd_key(float *dk, float *dv, float *scratch, const float *dout, const float *o, const float *lse,
                           const float *q, const float *k, const float *v, const ea_sdpa_shape *s,
                           const ea_block_mask *bm, const ea_flex_mods *mods, int b, int g, int J, int fresh) {
    int nblk = ea__fa_count(s->nq, EA_FA_BR), nkt = ea__fa_count(s->nk, EA_FA_BC), group = s->H / s->Hkv;
    int j0 = J * EA_FA_BC, bc = ea__fa_len(s->nk, EA_FA_BC, J, nkt), h, I, partial = 0;
    size_t ko = (size_t)b * s->nk * s->ldk + g * s->dh, vo = (size_t)b * s->nk * s->ldv + g * s->dh;
    ea__fa_bufs f = ea__fa_bufs_of(scratch, s);
    if (dk && fresh & 2) ea__fa_rows_zero(dk + ko + (size_t)j0 * s->ldk, s->ldk, bc, s->dh);
    if (dv && fresh & 4) ea__fa_rows_zero(dv + vo + (size_t)j0 * s->ldv, s->ldv, bc, s->dh);
    for (h = g * group; h < (g + 1) * group; h++)
        for (I = 0; I < nblk; I++) {
            int i0 = I * EA_FA_BR, br = ea__fa_len(s->nq, EA_FA_BR, I, nblk);
            size_t qo = (size_t)b * s->nq * s->ldq + h * s->dh + (size_t)i0 * s->ldq;
            size_t oo = (size_t)b * s->nq * s->ldo + h * s->dh + (size_t)i0 * s->ldo;
            if (ea__fa_bwd_find(bm, mods, s, b, h, I, J, &partial) < 0) continue;
            ea__fa_bwd_block(f.qt, f.dot, f.D, f.L, dout, o, lse, q, s, b, h, I);
            ea__fa_bwd_pair(f.pt, f.dpt, f.raw, f.qt, f.dot, f.D, f.L, k + ko, v + vo, b, h, i0, br, j0, bc, partial,
                            dk != NULL, mods, s);
            ea__fa_bwd_sums(NULL, dk ? dk + ko + (size_t)j0 * s->ldk : NULL, dv ? dv + vo + (size_t)j0 * s->ldv : NULL,
                            f.pt, f.dpt, q + qo, NULL, dout + oo, br, bc, s);
        }
}

/* Pair (b, g) of a backward on one thread, its K/V head's K, V, dK and
   dV rows copied contiguous into the thread's share first (ea__fa_kv_copy)
   and dK, dV copied back after: every query block of the group's heads
   reads all of them, and at heads 8 x 64, n = 4,096 the strided rows (4
   MiB a head) did not stay in the share of the caches' sets they fall on.
   The pair runs as a call of its own over the copies: one batch, one K/V
   head, the group's query heads, Q, O, dO, dQ and the lse taken at the
   pair's first row and head.  Each row's sums add the same terms in the
   same order as in place: the same bits.  One Zen 4 thread, flash
   harness, heads 8 x 64, rounds alternating with the rows read in place,
   medians: backward n = 4,096 1,068 -> 902 ms and n = 2,048 230 -> 219 (six
   rounds), n = 1,024 57.2 -> 55.3 and n = 512 14.6 -> 14.0 (three);
   bench/results/peers-cpu/zen4-fam25-flash-bwd-copy-ab.txt. */
static void ea__fa_bwd_held(float *dq, float *dk, float *dv, float *scratch, const float *dout, const float *o,
                            const float *lse, const float *q, const float *k, const float *v, const ea_sdpa_shape *s,
                            int b, int g, int fresh) {
    int group = s->H / s->Hkv, nblk = ea__fa_count(s->nq, EA_FA_BR), per = group * nblk, y;
    size_t nkd = (size_t)s->nk * s->dh;
    size_t ko = (size_t)b * s->nk * s->ldk + (size_t)g * s->dh, vo = (size_t)b * s->nk * s->ldv + (size_t)g * s->dh;
    size_t qo = (size_t)b * s->nq * s->ldq + (size_t)g * group * s->dh;
    size_t oo = (size_t)b * s->nq * s->ldo + (size_t)g * group * s->dh;
    float *kc = ea__fa_scratch_of(scratch, s) + ea__fa_share(s) - ea__fa_kv_floats(s);
    float *vc = kc + nkd, *dkc = vc + nkd, *dvc = dkc + nkd;
    ea_sdpa_shape one = *s;
    one.B = 1; one.H = group; one.Hkv = 1; one.ldk = one.ldv = s->dh;
    ea__fa_rows_copy(kc, s->dh, k + ko, s->ldk, s->nk, s->dh);
    ea__fa_rows_copy(vc, s->dh, v + vo, s->ldv, s->nk, s->dh);
    if (dk && fresh & 2) ea__fa_rows_zero(dkc, s->dh, s->nk, s->dh); /* written back whole: nothing to read */
    else if (dk) ea__fa_rows_copy(dkc, s->dh, dk + ko, s->ldk, s->nk, s->dh);
    if (dv && fresh & 4) ea__fa_rows_zero(dvc, s->dh, s->nk, s->dh);
    else if (dv) ea__fa_rows_copy(dvc, s->dh, dv + vo, s->ldv, s->nk, s->dh);
    for (y = 0; y < per; y++) {
        ea__fa_ahead next = {dq ? dq + qo : NULL, NULL, NULL, dout + oo, o + oo, q + qo, kc, vc, &one, NULL,
                             0, (y + 1) / nblk, (y + 1) % nblk}; /* the copies' next block: its fields' order */
        ea__fa_bwd_row(dq ? dq + qo : NULL, dk ? dkc : NULL, dv ? dvc : NULL, scratch, dout + oo, o + oo,
                       lse + ((size_t)b * s->H + (size_t)g * group) * s->nq, q + qo, kc, vc, &one, NULL, NULL, 0,
                       y / nblk, y % nblk, fresh & 1, y + 1 < per ? &next : NULL);
    }
    if (dk) ea__fa_rows_copy(dk + ko, s->ldk, dkc, s->dh, s->nk, s->dh);
    if (dv) ea__fa_rows_copy(dv + vo, s->ldv, dvc, s->dh, s->nk, s->dh);
}

/* (batch, K/V head) pairs [x0, x1) of ea_sdpa_flash_bwd: a thread runs a
   pair's query heads, blocks and tiles, every product of a tile pair at
   once, and asks for the next block's rows while it works on one. */
typedef struct {
    float *dq, *dk, *dv, *scratch;
    const float *dout, *o, *lse, *q, *k, *v;
    const ea_sdpa_shape *s;
    const ea_block_mask *bm;
    const ea_flex_mods *mods;
    int fresh;
} ea__fa_bwd_job;
static void ea__fa_bwd_pairs(const void *arg, int x0, int x1) {
    const ea__fa_bwd_job *j = (const ea__fa_bwd_job *)arg;
    const ea_sdpa_shape *s = j->s;
    int group = s->H / s->Hkv, nblk = ea__fa_count(s->nq, EA_FA_BR), per = group * nblk, x, y;
    for (x = x0; x < x1; x++) {
        int b = x / s->Hkv, g = x % s->Hkv; /* block y: head g·group + y / nblk */
        size_t ko = (size_t)b * s->nk * s->ldk + g * s->dh, vo = (size_t)b * s->nk * s->ldv + g * s->dh;
        if (j->dk && j->fresh & 2) ea__fa_rows_zero(j->dk + ko, s->ldk, s->nk, s->dh);
        if (j->dv && j->fresh & 4) ea__fa_rows_zero(j->dv + vo, s->ldv, s->nk, s->dh);
        for (y = 0; y < per; y++) {
            int nx = y + 1 < per ? x : x + 1, ny = y + 1 < per ? y + 1 : 0; /* the block after it */
            ea__fa_ahead next = {j->dq, j->dk, j->dv, j->dout, j->o, j->q, j->k, j->v, s, j->bm,
                                 nx / s->Hkv, nx % s->Hkv * group + ny / nblk, ny % nblk}; /* its fields' order */
            /* the next pair's: most likely this thread's next item */
            ea__fa_bwd_row(j->dq, j->dk, j->dv, j->scratch, j->dout, j->o, j->lse, j->q, j->k, j->v, s, j->bm,
                           j->mods, b, g * group + y / nblk, y % nblk, j->fresh & 1,
                           nx < s->B * s->Hkv ? &next : NULL);
        }
    }
}

/* ea_sdpa_flash_bwd, with fresh: bit 1, 2, 4 for dq, dk, dv written
   rather than added to (the tape's gradients that no op has touched yet:
   ea__sdpa_back).  Each is cleared by the thread that adds into it, just
   before its first sum: a dQ block's rows as the block starts, a pair's
   or key tile's dK and dV rows as it starts, and the copies of
   ea__fa_bwd_held start from zeros instead of reading dK and dV.  The
   same bits as adding into a zeroed buffer.  It replaces a pass that
   zeroed the whole buffer before the call (the tracker's q, k and v, 1.5
   MiB a layer at batch 32) and, at one thread and long sequences, the
   copy of dK and dV in.  One pinned thread of this project's Xeon VM
   (model 167), bench --attn in turn with the build before (which also
   copied rows by a memcpy call each, ea__fa_rows_copy), heads 8 x 64, the
   backward alone: n = 1,024 35.8 -> 34.9 ms, n = 2,048 140.4 -> 137.5
   (medians of six rounds).  The tracker's step was level: most likely
   libc's memset had filled its buffer about as fast as the clears fill
   the same lines (an inference from the node's times; this VM exposes no
   counter of memory reads to show it); on a team they spare a parallel
   region a layer (the device's Xeon, 16 threads, a busy host: level). */
static void ea__fa_bwd(float *dq, float *dk, float *dv, float *scratch, const float *dout, const float *o,
                       const float *lse, const float *q, const float *k, const float *v, const ea_sdpa_shape *s,
                       const ea_block_mask *bm, const ea_flex_mods *mods, int fresh) {
    int x, pairs = s->B * s->Hkv, nblk = ea__fa_count(s->nq, EA_FA_BR);
    int nkt = ea__fa_count(s->nk, EA_FA_BC), par = 8.0 * s->nq * s->nk * s->dh * s->B * s->H >= EA_PAR_MIN_WORK;
    int keys = ea__fa_bwd_keys_forced ? ea__fa_bwd_keys_forced > 0
                                      : par && nkt > 1 && 10 * pairs <= 7 * ea_num_threads();
    /* Each dK, dV row adds its tile pairs over (query head of its group,
       query block) in order, each dQ row over its block's key tiles in
       list order, in either scheme below: the same bits whatever the
       scheme and the thread count.
       By (batch, K/V head) pair: a thread runs the pair's query heads,
       blocks and tiles, every product of a tile pair at once. */
    if (!keys && ea__fa_kv_copy(s, bm) && (!mods || (!mods->score_mod && !mods->mask_mod))) {
        for (x = 0; x < pairs; x++)
            ea__fa_bwd_held(dq, dk, dv, scratch, dout, o, lse, q, k, v, s, x / s->Hkv, x % s->Hkv, fresh);
        return;
    }
    if (!keys) {
        ea__fa_bwd_job j = {dq, dk, dv, scratch, dout, o, lse, q, k, v, s, bm, mods, fresh}; /* its fields' order */
        ea__par_steal(ea__fa_bwd_pairs, &j, pairs, par); /* static shares, their tails to idle threads */
        return;
    }
    /* Fewer pairs than threads (8 x 64 heads of one sequence on 16 threads
       left half the team idle): two passes of many items.  First (batch,
       K/V head, key tile): dK and dV of one key tile; then (batch, head,
       query block): dQ.  The second computes P and dS again, 7 tile
       products a pair for 5 (and the first packs a block's panels for
       each of its tiles), bought back where the pairs fill under 70% of
       the team.  Dynamic: under a causal mask the early key tiles have the
       most blocks to visit.  The device's Xeon, 16 threads, bench --attn
       forward + backward, 3 rounds alternating with the pairs alone: 8 x
       64 heads, n = 1,024 11.8-13.2 -> 8.9-9.9 ms, n = 4,096 179-201 ->
       134-137; 4 x 16, n = 4,096 62-74 -> 25-28. */
    if (dk || dv) {
        EA_OMP_FOR_DYNAMIC_IF(par && pairs * nkt > 1)
        for (x = 0; x < pairs * nkt; x++)
            ea__fa_bwd_key(dk, dv, scratch, dout, o, lse, q, k, v, s, bm, mods, x / (s->Hkv * nkt), (x / nkt) % s->Hkv,
                           x % nkt, fresh);
    }
    if (dq) {
        EA_OMP_FOR_DYNAMIC_IF(par && s->B * s->H * nblk > 1)
        for (x = 0; x < s->B * s->H * nblk; x++)
            ea__fa_bwd_row(dq, NULL, NULL, scratch, dout, o, lse, q, k, v, s, bm, mods, x / (s->H * nblk),
                           (x / nblk) % s->H, x % nblk, fresh & 1, NULL);
    }
}

EA_API void ea_sdpa_flash_bwd(float *dq, float *dk, float *dv, float *scratch, const float *dout,
                              const float *o, const float *lse, const float *q, const float *k,
                              const float *v, const ea_sdpa_shape *s, const ea_block_mask *bm,
                              const ea_flex_mods *mods) {
    ea__fa_bwd(dq, dk, dv, scratch, dout, o, lse, q, k, v, s, bm, mods, 0);
}

static void ea__sdpa_shape(ea_sdpa_shape *s, const ea_node *n) {
    s->B = n->iarg[0]; s->nq = n->iarg[1]; s->nk = n->iarg[2];
    s->H = n->iarg[3]; s->Hkv = n->iarg[4]; s->dh = n->iarg[5]; s->causal = n->iarg[6];
    s->scale = n->farg[0];
    s->ldq = n->in[0]->shape[2]; s->ldk = n->in[1]->shape[2]; s->ldv = n->in[2]->shape[2];
    s->ldo = (ptrdiff_t)s->H * s->dh;
}

/* Which of q's, k's and v's gradients (bits 1, 2, 4) the kernel writes
   rather than adds to (ea__fa_bwd's fresh): those of a buffer no op has
   touched yet whose every element the three write once between them.
   That is each of its tensors' columns col[a] .. col[a] + width[a] in
   every row, the buffer's own shape (no view of another shape), side by
   side without overlap and filling the row (q, k and v as columns of one
   product, the tracker's; or a tensor the heads fill alone).  Any other
   untouched buffer is zeroed first, as ea_backward does for a node that
   only adds; one already written to is added to. */
static int ea__sdpa_fresh_forced = 0; /* tests: -1 writes none (zeroes every untouched buffer first) */
static int ea__sdpa_fresh(const ea_node *n, const int *col, const int *width) {
    int bits = 0, a, b, c;
    for (a = 0; a < 3; a++) {
        const ea_tensor *t = n->in[a];
        ea_grad_buf *g = t->gbuf;
        int members = 0, sum = 0, fills;
        if (!t->grad || !g || g->ready) continue;
        for (b = 0; b < 3; b++)
            if (n->in[b]->gbuf == g) {
                members |= 1 << b;
                sum += width[b];
            }
        fills = sum == t->shape[2] && ea__sdpa_fresh_forced >= 0;
        for (b = 0; b < 3; b++) {
            const ea_tensor *u = n->in[b];
            if (!(members >> b & 1)) continue;
            if (u->grad != g->grad || u->size != g->size || u->shape[1] != t->shape[1] || u->shape[2] != t->shape[2])
                fills = 0;
            for (c = b + 1; c < 3; c++) /* another member's columns overlapping these */
                if (members >> c & 1 && col[c] < col[b] + width[b] && col[b] < col[c] + width[c]) fills = 0;
        }
        if (fills) {
            g->ready = 1;
            bits |= members;
        } else
            ea__grad_ready(g);
    }
    return bits;
}

static void ea__sdpa_back(ea_ctx *ctx, ea_node *n) {
    ea_tensor *q = n->in[0], *k = n->in[1], *v = n->in[2];
    int col[3], width[3], a;
    ea_sdpa_shape s;
    float *scratch;
    ea__sdpa_shape(&s, n);
    col[0] = n->iarg[7]; col[1] = n->iarg[8]; col[2] = n->iarg[9];
    width[0] = s.H * s.dh; width[1] = width[2] = s.Hkv * s.dh;
    scratch = ea__floats(ctx, ea__fa_scratch_floats(&s));
    if (!scratch) { /* the arena's error stands; the gradients stay what ea_backward would have made them */
        for (a = 0; a < 3; a++) ea__grad_ready(n->in[a]->gbuf);
        return;
    }
    ea__fa_bwd(q->grad ? q->grad + col[0] : NULL, k->grad ? k->grad + col[1] : NULL, v->grad ? v->grad + col[2] : NULL,
               scratch, n->out->grad, n->out->data, n->save[0], q->data + col[0], k->data + col[1], v->data + col[2],
               &s, (const ea_block_mask *)n->aux[0], (const ea_flex_mods *)n->aux[1], ea__sdpa_fresh(n, col, width));
}

/* Check the head layout of q, k, v and fill the kernel shape. */
static int ea__attn_shape(ea_ctx *ctx, ea_sdpa_shape *s, const char *what, ea_tensor *q, int q_col,
                          ea_tensor *k, int k_col, ea_tensor *v, int v_col, int H, int Hkv, int dh, int causal) {
    char s1[48], s2[48], s3[48];
    if (!ea__ok(ctx, q, k) || !v) return 0;
    if (H <= 0 || Hkv <= 0 || dh <= 0 || H % Hkv) {
        ea__fail(ctx, EA_ERR_CONFIG,
                 "%s: %d query heads, %d kv heads, head dim %d: expected positive sizes with "
                 "kv heads dividing query heads",
                 what, H, Hkv, dh);
        return 0;
    }
    if (q->ndim != 3 || k->ndim != 3 || v->ndim != 3 || k->shape[0] != q->shape[0] ||
        v->shape[0] != q->shape[0] || v->shape[1] != k->shape[1] || q_col < 0 || k_col < 0 ||
        v_col < 0 || q_col + H * dh > q->shape[2] || k_col + Hkv * dh > k->shape[2] ||
        v_col + Hkv * dh > v->shape[2]) {
        ea__fail(ctx, EA_ERR_SHAPE,
                 "%s: q %s (columns %d..%d), k %s, v %s (columns from %d, %d; %d each): "
                 "expected [B, n, C] tensors holding those columns",
                 what, ea__shape_str(q, s1, sizeof s1), q_col, q_col + H * dh, ea__shape_str(k, s2, sizeof s2),
                 ea__shape_str(v, s3, sizeof s3), k_col, v_col, Hkv * dh);
        return 0;
    }
    s->B = q->shape[0]; s->nq = q->shape[1]; s->nk = k->shape[1];
    s->H = H; s->Hkv = Hkv; s->dh = dh; s->causal = causal ? 1 : 0;
    s->scale = 1.0f / sqrtf((float)dh);
    s->ldq = q->shape[2]; s->ldk = k->shape[2]; s->ldv = v->shape[2]; s->ldo = (ptrdiff_t)H * dh;
    return 1;
}

/* One tape node for exact attention, flash-tiled at every length: it saves
   only the log-sum-exp of each row (O(n) memory).  Since the tiles went
   transposed (8.2) it is also the faster path for short sequences: the
   tracker (64 tokens), one thread, forward batch 32 16.4 -> 15.0 ms and a
   training step 51.3 -> 49.3 ms against the materialized ea_sdpa_fwd/bwd,
   which stay as the two-GEMM statement of the formula and the tests'
   second opinion. */
/* --- the weights probe (see ea_attn_probe) --------------------------------
   A layer asks for a slot of H x nq x nk floats, zeroed; NULL when no probe
   is set or it is full. */
static float *ea__probe_slot(ea_ctx *ctx, int H, int nq, int nk) {
    ea_attn_probe *p = ctx->probe;
    size_t need = (size_t)H * nq * nk;
    float *w;
    if (!p || !p->buf || p->count >= EA_PROBE_MAX || p->used + need > p->cap) return NULL;
    w = p->buf + p->used;
    memset(w, 0, need * sizeof(float));
    p->layer[p->count].off = p->used;
    p->layer[p->count].H = H;
    p->layer[p->count].nq = nq;
    p->layer[p->count].nk = nk;
    p->count++;
    p->used += need;
    return w;
}

/* Softmax weights of batch entry 0 by the formula (the reference loops of
   ea_flex_ref_fwd: causal limit, mask_mod, score_mod), P per query row. */
static void ea__probe_sdpa(ea_ctx *ctx, const ea_sdpa_shape *s, const float *q, const float *k,
                           const ea_flex_mods *mods) {
    float *w = ea__probe_slot(ctx, s->H, s->nq, s->nk);
    int h, i, j, d, group = s->H / s->Hkv;
    if (!w) return;
    for (h = 0; h < s->H; h++)
        for (i = 0; i < s->nq; i++) {
            float *row = w + ((size_t)h * s->nq + i) * s->nk, mx = -INFINITY, sum = 0.0f;
            int last = ea__last_key(s, i);
            for (j = 0; j < s->nk; j++) {
                const float *qi = q + (size_t)i * s->ldq + h * s->dh, *kj = k + (size_t)j * s->ldk + (h / group) * s->dh;
                float dot = 0.0f;
                if (j > last || (mods && mods->mask_mod && !mods->mask_mod(0, h, i, j, mods->user))) {
                    row[j] = -INFINITY;
                    continue;
                }
                for (d = 0; d < s->dh; d++) dot += qi[d] * kj[d];
                dot *= s->scale;
                row[j] = mods && mods->score_mod ? mods->score_mod(dot, 0, h, i, j, mods->user) : dot;
                mx = row[j] > mx ? row[j] : mx;
            }
            for (j = 0; j < s->nk; j++) sum += (row[j] = row[j] > -INFINITY ? expf(row[j] - mx) : 0.0f);
            for (j = 0; j < s->nk && sum > 0.0f; j++) row[j] /= sum;
        }
}

static ea_tensor *ea__sdpa_op(ea_ctx *ctx, const ea_sdpa_shape *s, ea_tensor *q, int q_col, ea_tensor *k,
                              int k_col, ea_tensor *v, int v_col, const ea_block_mask *bm,
                              const ea_flex_mods *mods) {
    ea_tensor *out;
    ea_node *n;
    float *p, *scratch;
    int shape[3];
    shape[0] = s->B; shape[1] = s->nq; shape[2] = s->H * s->dh;
    out = ea__out(ctx, 3, shape, q, k, v);
    if (!out) return NULL;
    scratch = ea__floats(ctx, ea__fa_scratch_floats(s));
    /* the row log-sum-exps only for a backward: at heads 4 x 16 and 65
       tokens logf took 3-5% of the flash forward's samples and 1.5% of
       batch-32 inference's (perf, one Zen 5 thread), none now */
    p = out->requires_grad ? ea__floats(ctx, (size_t)s->B * s->H * s->nq) : NULL;
    if ((out->requires_grad && !p) || !scratch) return NULL;
    ea_sdpa_flash_fwd(out->data, p, scratch, q->data + q_col, k->data + k_col, v->data + v_col, s, bm, mods);
    if (ctx->probe) ea__probe_sdpa(ctx, s, q->data + q_col, k->data + k_col, mods);
    n = ea__record(ctx, ea__sdpa_back, out, q, k, v);
    if (n) {
        n->save[0] = p;
        n->aux[0] = bm;
        n->aux[1] = mods;
        n->iarg[0] = s->B; n->iarg[1] = s->nq; n->iarg[2] = s->nk;
        n->iarg[3] = s->H; n->iarg[4] = s->Hkv; n->iarg[5] = s->dh; n->iarg[6] = s->causal;
        n->iarg[7] = q_col; n->iarg[8] = k_col; n->iarg[9] = v_col;
        n->farg[0] = s->scale;
        n->assigns = 7; /* q's, k's and v's gradients: zeroed or written by ea__sdpa_back itself */
    }
    return out;
}

EA_API ea_tensor *ea_sdpa(ea_ctx *ctx, ea_tensor *q, int q_col, ea_tensor *k, int k_col,
                          ea_tensor *v, int v_col, int H, int Hkv, int dh, int causal) {
    ea_sdpa_shape s;
    if (!ea__attn_shape(ctx, &s, "sdpa", q, q_col, k, k_col, v, v_col, H, Hkv, dh, causal)) return NULL;
    return ea__sdpa_op(ctx, &s, q, q_col, k, k_col, v, v_col, NULL, NULL);
}

/* --- 8.3 Block masks and sparse patterns ---------------------------------
   A block mask lists, per query tile, the key tiles that hold at least one
   visible pair, and marks the wholly visible ones; the flash kernel then
   computes only those tiles (8.2) and calls mask_mod only inside partial
   ones.  Two builders fill it: ea_block_mask_build tests every pair with a
   user's mask_mod (nq·nk calls: FlexAttention's create_block_mask), and the
   built-in patterns below propose their few candidate tiles from their
   shape, so a band of half-width w costs O(n·w), not O(n²). */

/* The sparse patterns of the built-in rows: key k is visible to query q
   when any clause holds (and k <= q under a causal mask, applied by the
   kernel):
       |q - k| <= window                                  (local band)
       q < n_global or k < n_global                      (global tokens)
       |q/block - k/block| <= block_window               (block band)
       k/block is one of q/block's n_random random blocks (BigBird) */
typedef struct ea__pattern {
    int window;                /* -1: no token band */
    int n_global;
    int block, block_window;   /* block 0: no block clauses */
    int n_random;
    const int *rand;           /* [query blocks][n_random] key blocks, -1: none */
} ea__pattern;

/* Under nvcc the CUDA kernels (13) test the same clauses on the device. */
#if defined(EFFATTN_CUDA) && defined(__CUDACC__)
#define EA_HOST_DEVICE __host__ __device__
#else
#define EA_HOST_DEVICE
#endif
/* The clauses but the random one, for q and k in blocks qb and kb
   (arithmetic only), and the random one: whether query block qb drew key
   block kb (a look-up). */
EA_HOST_DEVICE static int ea__pattern_near(const ea__pattern *p, int q, int k, int qb, int kb) {
    if (p->window >= 0 && q - k <= p->window && k - q <= p->window) return 1;
    if (q < p->n_global || k < p->n_global) return 1;
    return p->block && qb - kb <= p->block_window && kb - qb <= p->block_window;
}

EA_HOST_DEVICE static int ea__pattern_drawn(const ea__pattern *p, int qb, int kb) {
    int r;
    for (r = 0; r < p->n_random; r++)
        if (p->rand[(size_t)qb * p->n_random + r] == kb) return 1;
    return 0;
}

EA_HOST_DEVICE static int ea__pattern_visible(const ea__pattern *p, int q, int k) {
    int qb = p->block ? q / p->block : 0, kb = p->block ? k / p->block : 0;
    return ea__pattern_near(p, q, k, qb, kb) || (p->block && ea__pattern_drawn(p, qb, kb));
}

static int ea__pattern_mask(int b, int h, int q, int k, void *user) {
    (void)b; (void)h;
    return ea__pattern_visible((const ea__pattern *)user, q, k);
}

/* The flash kernel's row of key k over queries i0 + i, i in [first, br):
   without block clauses, k is seen by the global queries (q < n_global)
   and the band [k - w, k + w], or by all when k is global; the rest gets
   -inf, range by range.  Returns 0 for block patterns (asked pair by pair). */
static void ea__fill_inf(float *x, int from, int to) {
    for (; from < to; from++) x[from] = -INFINITY;
}

static int ea__pattern_key_row(float *sc, const void *user, int k, int i0, int first, int br) {
    const ea__pattern *p = (const ea__pattern *)user;
    int g = p->n_global - i0, lo = br, hi = br; /* band [lo, hi) in row indices; none: empty at br */
    if (p->block) return 0;
    if (k < p->n_global) return 1;
    if (p->window >= 0) {
        lo = k - p->window - i0;
        hi = k + p->window + 1 - i0;
    }
    first = first > g ? first : g; /* the global queries see k */
    ea__fill_inf(sc, first, lo < br ? lo : br);
    ea__fill_inf(sc, first > hi ? first : hi, br);
    return 1;
}

/* Mark the key tiles covering keys [lo, hi] (clipped to [0, nk)). */
static void ea__mark_tiles(unsigned char *flag, int lo, int hi, int nk) {
    int t;
    lo = lo < 0 ? 0 : lo;
    hi = hi > nk - 1 ? nk - 1 : hi;
    for (t = ea__fa_index(lo, nk, EA_FA_BC); lo <= hi && t <= ea__fa_index(hi, nk, EA_FA_BC); t++) flag[t] = 1;
}

/* Candidate key tiles of query rows [i0, i1] under pattern p: a superset
   of the visible ones, found from the pattern's shape. */
static void ea__pattern_tiles(unsigned char *flag, const ea__pattern *p, int i0, int i1, int nk) {
    int qb, r;
    if (i0 < p->n_global) { /* global queries see every key */
        ea__mark_tiles(flag, 0, nk - 1, nk);
        return;
    }
    if (p->window >= 0) ea__mark_tiles(flag, i0 - p->window, i1 + p->window, nk);
    if (p->n_global) ea__mark_tiles(flag, 0, p->n_global - 1, nk);
    if (!p->block) return;
    ea__mark_tiles(flag, (i0 / p->block - p->block_window) * p->block,
                   (i1 / p->block + p->block_window + 1) * p->block - 1, nk);
    for (qb = i0 / p->block; qb <= i1 / p->block; qb++)
        for (r = 0; r < p->n_random; r++) {
            int kb = p->rand[(size_t)qb * p->n_random + r];
            if (kb >= 0) ea__mark_tiles(flag, kb * p->block, kb * p->block + p->block - 1, nk);
        }
}

/* Visible pairs in one tile: 0 (skip), br·bc (full) or in between. */
static long ea__tile_visible(const ea_flex_mods *mods, int b, int h, int i0, int br, int j0, int bc, int nq,
                             int nk, int causal) {
    long cnt = 0;
    int r, c;
    for (r = 0; r < br; r++) {
        int last = causal ? i0 + r + (nk - nq) : nk - 1;
        for (c = 0; c < bc && j0 + c <= last; c++) cnt += !mods->mask_mod || mods->mask_mod(b, h, i0 + r, j0 + c, mods->user);
    }
    return cnt;
}

/* Both builders: candidates from the pattern (or every tile), each one
   classified by testing its pairs.  Two passes: count, then fill. */
static ea_status ea__block_mask_make(ea_ctx *ctx, ea_block_mask *bm, const ea_flex_mods *mods,
                                     const ea__pattern *pat, int B, int H, int nq, int nk, int causal) {
    int nb = mods->mask_varies & EA_FLEX_BY_BATCH ? B : 1, nh = mods->mask_varies & EA_FLEX_BY_HEAD ? H : 1;
    int nqt = ea__fa_count(nq, EA_FA_BR), nkt = ea__fa_count(nk, EA_FA_BC), pass, x, J;
    size_t rows = (size_t)nb * nh * nqt, cap = 0, used;
    unsigned char *flag = (unsigned char *)ea_ctx_alloc(ctx, (size_t)nkt);
    int *row = (int *)ea_ctx_alloc(ctx, (rows + 1) * sizeof(int)), *tile = NULL;
    if (!flag || !row) return ctx->err.status;
    for (pass = 0; pass < 2; pass++) {
        used = 0;
        for (x = 0; x < (int)rows; x++) {
            int b = x / (nh * nqt), h = (x / nqt) % nh, i0 = (x % nqt) * EA_FA_BR;
            int br = ea__fa_len(nq, EA_FA_BR, x % nqt, nqt);
            memset(flag, pat ? 0 : 1, (size_t)nkt);
            if (pat) ea__pattern_tiles(flag, pat, i0, i0 + br - 1, nk);
            row[x] = (int)used;
            for (J = 0; J < nkt; J++) {
                int j0 = J * EA_FA_BC, bc = ea__fa_len(nk, EA_FA_BC, J, nkt);
                long vis;
                if (!flag[J]) continue;
                if (pass == 0) { /* candidates only: an upper bound on the entries */
                    used++;
                    continue;
                }
                vis = ea__tile_visible(mods, b, h, i0, br, j0, bc, nq, nk, causal);
                if (vis) tile[used++] = J * 2 + (vis == (long)br * bc);
            }
        }
        row[rows] = (int)used;
        if (pass == 0) {
            cap = used;
            tile = (int *)ea_ctx_alloc(ctx, (cap ? cap : 1) * sizeof(int));
            if (!tile) return ctx->err.status;
        }
    }
    bm->nb = nb; bm->nh = nh; bm->nqt = nqt; bm->nkt = nkt;
    bm->row = row;
    bm->tile = tile;
    return EA_OK;
}

EA_API ea_status ea_block_mask_build(ea_ctx *ctx, ea_block_mask *bm, const ea_flex_mods *mods, int B,
                                     int H, int nq, int nk, int causal) {
    ea_flex_mods none;
    if (!ctx || !bm) return EA_ERR_ARG;
    if (B <= 0 || H <= 0 || nq <= 0 || nk <= 0) {
        ea__fail(ctx, EA_ERR_SHAPE, "block mask: B %d, H %d, nq %d, nk %d must be positive", B, H, nq, nk);
        return EA_ERR_SHAPE;
    }
    if (!mods) {
        memset(&none, 0, sizeof none);
        mods = &none;
    }
    return ea__block_mask_make(ctx, bm, mods, NULL, B, H, nq, nk, causal);
}

/* BigBird's random blocks: for each query block, n_random distinct key
   blocks outside its band and the global blocks, drawn from the seeded
   RNG, so a given (seed, n) always gives the same pattern. */
static int *ea__random_blocks(ea_ctx *ctx, const ea__pattern *p, int n, uint64_t seed) {
    int nblk = (n + p->block - 1) / p->block, qb, r, g = (p->n_global + p->block - 1) / p->block;
    int *rand = (int *)ea_ctx_alloc(ctx, ((size_t)nblk * p->n_random + 1) * sizeof(int));
    ea_rng rng;
    if (!rand) return NULL;
    ea_rng_seed(&rng, seed, (uint64_t)n);
    for (qb = 0; qb < nblk; qb++) {
        int lo = qb - p->block_window, hi = qb + p->block_window, avail = 0, kb;
        for (kb = g; kb < nblk; kb++) avail += kb < lo || kb > hi;
        for (r = 0; r < p->n_random; r++) {
            int pick, t, dup;
            int *mine = rand + (size_t)qb * p->n_random;
            mine[r] = -1;
            if (avail - r <= 0) continue;
            do { /* rejection keeps the choice uniform over what is left */
                pick = g + (int)ea_rng_below(&rng, (uint32_t)(nblk - g));
                dup = pick >= lo && pick <= hi;
                for (t = 0; t < r && !dup; t++) dup = mine[t] == pick;
            } while (dup);
            mine[r] = pick;
        }
    }
    return rand;
}

/* Exact attention restricted to a pattern, through the flash kernel. */
static ea_tensor *ea__pattern_attention(ea_ctx *ctx, ea_tensor *qkv, int H, int dh, int causal,
                                        const ea__pattern *pattern) {
    ea_sdpa_shape s;
    ea__pattern *pat = (ea__pattern *)ea_ctx_alloc(ctx, sizeof *pat);
    ea_flex_mods *mods = (ea_flex_mods *)ea_ctx_alloc(ctx, sizeof *mods);
    ea_block_mask *bm = (ea_block_mask *)ea_ctx_alloc(ctx, sizeof *bm);
    if (!pat || !mods || !bm) return NULL;
    if (!ea__attn_shape(ctx, &s, "sparse attention", qkv, 0, qkv, H * dh, qkv, 2 * H * dh, H, H, dh, causal))
        return NULL;
    *pat = *pattern;
    memset(mods, 0, sizeof *mods);
    mods->mask_mod = ea__pattern_mask;
    mods->user = pat;
    if (ea__block_mask_make(ctx, bm, mods, pat, s.B, H, s.nq, s.nk, s.causal) != EA_OK) return NULL;
    return ea__sdpa_op(ctx, &s, qkv, 0, qkv, H * dh, qkv, 2 * H * dh, bm, mods);
}

EA_API ea_tensor *ea_flex_attention(ea_ctx *ctx, ea_tensor *q, int q_col, ea_tensor *k, int k_col,
                                    ea_tensor *v, int v_col, int H, int Hkv, int dh, int causal,
                                    const ea_flex_mods *mods) {
    ea_sdpa_shape s;
    ea_block_mask *bm = NULL;
    if (!ea__attn_shape(ctx, &s, "flex attention", q, q_col, k, k_col, v, v_col, H, Hkv, dh, causal)) return NULL;
    if (mods && mods->mask_mod) {
        bm = (ea_block_mask *)ea_ctx_alloc(ctx, sizeof *bm);
        if (!bm || ea_block_mask_build(ctx, bm, mods, s.B, H, s.nq, s.nk, s.causal) != EA_OK) return NULL;
    }
    return ea__sdpa_op(ctx, &s, q, q_col, k, k_col, v, v_col, bm, mods);
}

/* The header's examples of mods (FlexAttention's gallery):
   ALiBi (Press et al. 2022): score - m_h·|q - k|, m_h = 2^(-8(h+1)/H);
   soft-capping (Gemma 2): cap·tanh(score / cap), derivative 1 - tanh²;
   relative bias: score + bias[h][clamp(k - q, -M, M) + M] (T5-style, with a
   table the caller owns); causal: k <= q; document: q and k in the same
   document (doc ids per batch entry, so mask_varies = EA_FLEX_BY_BATCH). */
EA_API void ea_flex_alibi_slopes(float *slopes, int H) {
    int h;
    for (h = 0; h < H; h++) slopes[h] = powf(2.0f, -8.0f * (float)(h + 1) / (float)H);
}
EA_API float ea_flex_alibi(float s, int b, int h, int q, int k, void *user) {
    (void)b;
    return s - ((const float *)user)[h] * (float)(q > k ? q - k : k - q);
}
EA_API float ea_flex_bias_grad(float s, int b, int h, int q, int k, void *user) {
    (void)s; (void)b; (void)h; (void)q; (void)k; (void)user;
    return 1.0f;
}
EA_API float ea_flex_softcap(float s, int b, int h, int q, int k, void *user) {
    float cap = *(const float *)user;
    (void)b; (void)h; (void)q; (void)k;
    return cap * tanhf(s / cap);
}
EA_API float ea_flex_softcap_grad(float s, int b, int h, int q, int k, void *user) {
    float t = tanhf(s / *(const float *)user);
    (void)b; (void)h; (void)q; (void)k;
    return 1.0f - t * t;
}
EA_API float ea_flex_relative(float s, int b, int h, int q, int k, void *user) {
    const ea_flex_relbias *rb = (const ea_flex_relbias *)user;
    int d = k - q, M = rb->max_dist;
    (void)b;
    d = d < -M ? -M : d > M ? M : d;
    return s + rb->bias[(size_t)h * (2 * M + 1) + d + M];
}
EA_API int ea_flex_causal(int b, int h, int q, int k, void *user) {
    (void)b; (void)h; (void)user;
    return k <= q;
}
EA_API int ea_flex_document(int b, int h, int q, int k, void *user) {
    const ea_flex_docs *d = (const ea_flex_docs *)user;
    (void)h;
    return d->doc[(size_t)b * d->n + q] == d->doc[(size_t)b * d->n + k];
}

/* --- 8.4 Sparse attention over key lists ------------------------------
   For patterns that are not bands of tiles (every s-th key, dilated
   windows, each query's own top k) each query carries its list of K keys:
       s_t = scale · Q_i·K_idx(t),  P = softmax(s),  O_i = Σ_t P_t V_idx(t).
   Cost 4·K·dh FLOPs per query and head, K floats of P kept per query:
   O(n·K) time and memory.  Backward, per query:
       dP_t = dO_i·V_idx(t),  dS_t = scale·P_t (dP_t - Σ_u P_u dP_u),
       dQ_i += Σ_t dS_t K_idx(t),  dK_idx(t) += dS_t Q_i,  dV_idx(t) += P_t dO_i. */
EA_INLINE const int *ea__gather_row(const int *idx, int K, int per_head, const ea_sdpa_shape *s, int b, int h,
                                    int i) {
    return idx + (per_head ? (((size_t)b * s->H + h) * s->nq + i) * K : (size_t)i * K);
}

EA_API void ea_gather_attn_fwd(float *o, float *p, const float *q, const float *k, const float *v,
                               const int *idx, int K, int per_head, const ea_sdpa_shape *s) {
    int slice, group = s->H / s->Hkv, nslice = s->B * s->H;
    EA_OMP_FOR_IF(nslice > 1 && 4.0 * s->nq * K * s->dh * nslice >= EA_PAR_MIN_WORK)
    for (slice = 0; slice < nslice; slice++) {
        int b = slice / s->H, h = slice % s->H, g = h / group, i, t;
        for (i = 0; i < s->nq; i++) {
            const int *ix = ea__gather_row(idx, K, per_head, s, b, h, i);
            const float *qi = q + ((size_t)b * s->nq + i) * s->ldq + h * s->dh;
            float *oi = o + ((size_t)b * s->nq + i) * s->ldo + h * s->dh, *P = p + ((size_t)slice * s->nq + i) * K;
            float mx;
            for (t = 0; t < K; t++)
                P[t] = ix[t] < 0 ? -INFINITY
                                 : s->scale * ea__dot(qi, k + ((size_t)b * s->nk + ix[t]) * s->ldk + g * s->dh, s->dh);
            memset(oi, 0, (size_t)s->dh * sizeof(float));
            mx = ea__row_max(P, K);
            if (mx == -INFINITY) { /* an empty list */
                memset(P, 0, (size_t)K * sizeof(float));
                continue;
            }
            mx = 1.0f / ea__row_exp(P, P, K, mx);
            for (t = 0; t < K; t++) {
                P[t] *= mx;
                if (ix[t] >= 0) ea__axpy(oi, P[t], v + ((size_t)b * s->nk + ix[t]) * s->ldv + g * s->dh, s->dh);
            }
        }
    }
}

EA_API void ea_gather_attn_bwd(float *dq, float *dk, float *dv, float *scratch, const float *dout,
                               const float *p, const float *q, const float *k, const float *v,
                               const int *idx, int K, int per_head, const ea_sdpa_shape *s) {
    int bg, group = s->H / s->Hkv;
    /* a K/V head's rows are shared by the queries of its group of heads in
       one batch entry: a thread takes whole (entry, K/V head) pairs, so every
       dK, dV row sums in the same order whatever the thread count (at batch
       1 the backward ran on one thread while it took whole batch entries) */
    EA_OMP_FOR_IF(s->B * s->Hkv > 1 && 8.0 * s->nq * K * s->dh * s->B * s->H >= EA_PAR_MIN_WORK)
    for (bg = 0; bg < s->B * s->Hkv; bg++) {
        float *dP = scratch + (size_t)K * ea__thread_id();
        int b = bg / s->Hkv, h, i, t;
        for (h = bg % s->Hkv * group; h < (bg % s->Hkv + 1) * group; h++)
            for (i = 0; i < s->nq; i++) {
                const int *ix = ea__gather_row(idx, K, per_head, s, b, h, i);
                const float *P = p + (((size_t)b * s->H + h) * s->nq + i) * K;
                const float *dOi = dout + ((size_t)b * s->nq + i) * s->ldo + h * s->dh;
                size_t qo = ((size_t)b * s->nq + i) * s->ldq + h * s->dh, ko = (size_t)b * s->nk, g = (size_t)(h / group);
                float D = 0.0f;
                for (t = 0; t < K; t++) {
                    const float *vj = v + (ko + (size_t)(ix[t] < 0 ? 0 : ix[t])) * s->ldv + g * s->dh;
                    dP[t] = ix[t] < 0 ? 0.0f : ea__dot(dOi, vj, s->dh);
                    D += P[t] * dP[t];
                }
                for (t = 0; t < K; t++) {
                    size_t j = ko + (size_t)ix[t];
                    float dS = s->scale * P[t] * (dP[t] - D);
                    if (ix[t] < 0) continue;
                    if (dv) ea__axpy(dv + j * s->ldv + g * s->dh, P[t], dOi, s->dh);
                    if (dq) ea__axpy(dq + qo, dS, k + j * s->ldk + g * s->dh, s->dh);
                    if (dk) ea__axpy(dk + j * s->ldk + g * s->dh, dS, q + qo, s->dh);
                }
            }
    }
}

/* Index lists of the fixed patterns (self-attention, nq = nk = n).
   strided (Child et al. 2019, "Sparse Transformers"; seed 004's k[::s]):
   keys 0, s, 2s, ... plus the query itself, K = ceil(n/s) + 1.
   dilated (Beltagy et al. 2020, Longformer's dilated window): keys
   i + t·r for t = -w..w, K = 2w + 1.  Causal keeps keys <= i. */
static void ea__strided_index(int *idx, int n, int stride, int causal) {
    int K = (n + stride - 1) / stride + 1, i, t;
    for (i = 0; i < n; i++) {
        int *ix = idx + (size_t)i * K;
        for (t = 0; t < K - 1; t++) ix[t] = !causal || t * stride <= i ? t * stride : -1;
        ix[K - 1] = i % stride ? i : -1; /* itself, unless already listed */
    }
}

static void ea__dilated_index(int *idx, int n, int w, int r, int causal) {
    int K = 2 * w + 1, i, t;
    for (i = 0; i < n; i++)
        for (t = -w; t <= w; t++) {
            int j = i + t * r;
            idx[(size_t)i * K + t + w] = j >= 0 && j < n && (!causal || t <= 0) ? j : -1;
        }
}

/* top-k (Gupta et al. 2021, "Memory-efficient Transformers via Top-k
   Attention"): every query keeps its kk largest scores.  Selecting them
   needs every score, so this part costs O(n²·dh) like exact attention
   (tiles of EA_FA_BR rows, O(n) memory); the softmax, the product and the
   backward then touch kk keys per query.  A binary min-heap of kk entries
   per row holds the best so far: O(n log kk) per row. */
EA_INLINE int ea__topk_worse(const float *S, int a, int b) { /* a ranks below b */
    return S[a] < S[b] || (S[a] == S[b] && a > b);
}

/* Sift hp[at] down the min-heap of n key indices.  The ranking is a strict
   order (ties go by index), so the smaller child is one value, taken
   without a branch (which child ranks lower is a coin toss to the
   predictor); the sifting key x stays in a register and is written once,
   where it had been swapped level by level.  The same heap as the swaps,
   so the same index lists (compared over random and tie-heavy scores,
   causal or not, kk = 1 to 40).  bench --row topk, one thread of this
   project's Xeon VM of 2026-12-07 (CPU model 167 as reported, AVX-512),
   four rounds in turn: n = 256 / 512 / 1,024 15.96-16.77 / 41.2-43.5 /
   99.2-104.2 ms -> 10.85-11.73 / 28.2-29.8 / 68.5-72.4, where 503b9a9's
   build (issue 15's floor) took 13.0-14.6 / 34.9-36.7 / 89.1-97.4. */
static void ea__heap_down(int *hp, int n, int at, const float *S) {
    int x = hp[at];
    for (;;) {
        int c = 2 * at + 1;
        if (c >= n) break;
        c += c + 1 < n && ea__topk_worse(S, hp[c + 1], hp[c]); /* the smaller child */
        if (!ea__topk_worse(S, hp[c], x)) break;                /* x ranks below both */
        hp[at] = hp[c];
        at = c;
    }
    hp[at] = x;
}

/* The kk indices of [j0, j1) that rank highest in S (larger first; among
   equals the lower index), as a min-heap in hp: fill, heapify once full,
   then each later index that ranks above the heap's lowest replaces it.
   Returns how many it holds (fewer than kk when the range is shorter).
   O((j1 - j0) log kk); top-k's rows and h2o's eviction both select so. */
static int ea__topk_heap(int *hp, int kk, const float *S, int j0, int j1) {
    int n = 0, j, a;
    if (kk <= 0) return 0;
    for (j = j0; j < j1; j++) {
        if (n < kk) {
            hp[n++] = j;
            if (n == kk)
                for (a = kk / 2 - 1; a >= 0; a--) ea__heap_down(hp, kk, a, S);
        } else if (ea__topk_worse(S, hp[0], j)) {
            hp[0] = j;
            ea__heap_down(hp, kk, 0, S);
        }
    }
    return n;
}

EA_API void ea_topk_select(int *idx, float *scratch, const float *q, const float *k, int kk,
                           const ea_sdpa_shape *s) {
    int nblk = (s->nq + EA_FA_BR - 1) / EA_FA_BR, work = s->B * s->H * nblk, w, group = s->H / s->Hkv;
    if (kk <= 0) return; /* nothing to keep (the heap below needs one slot) */
    EA_OMP_FOR_IF(work > 1 && 2.0 * s->nq * s->nk * s->dh * s->B * s->H >= EA_PAR_MIN_WORK)
    for (w = 0; w < work; w++) {
        int b = w / (s->H * nblk), h = (w / nblk) % s->H, i0 = (w % nblk) * EA_FA_BR;
        int br = s->nq - i0 < EA_FA_BR ? s->nq - i0 : EA_FA_BR, r;
        float *S = scratch + (size_t)EA_FA_BR * s->nk * ea__thread_id();
        ea_gemm(br, s->nk, s->dh, q + ((size_t)b * s->nq + i0) * s->ldq + h * s->dh, s->ldq, 1,
                k + (size_t)b * s->nk * s->ldk + (h / group) * s->dh, 1, s->ldk, S, s->nk, 0);
        for (r = 0; r < br; r++) {
            const float *Sr = S + (size_t)r * s->nk;
            int *hp = idx + (((size_t)b * s->H + h) * s->nq + i0 + r) * kk, last = ea__last_key(s, i0 + r);
            int n = ea__topk_heap(hp, kk, Sr, 0, last < s->nk ? last + 1 : s->nk);
            for (; n < kk; n++) hp[n] = -1; /* fewer visible keys than kk */
        }
    }
}

/* --- 8.5 Kernel (linear) attention core ----------------------------------
   Replacing exp(q·k) by a feature product φ(q)·φ(k) lets the sum over keys
   be taken once (Katharopoulos et al. 2020, "Transformers are RNNs"):
       A = Σ_j φ(K_j) V_jᵀ  [F, dv],   z = Σ_j φ(K_j)  [F],
       O_i = φ(Q_i)ᵀ A / (φ(Q_i)·z + eps).
   Cost 4·n·F·dv + 4·n·F FLOPs per head, O(F·dv) state: linear in n.
   Backward, with u_i = dO_i / den_i and c_i = -(dO_i·O_i) / den_i:
       dφ(Q_i) = A u_i + c_i z,   dA = Σ_i φ(Q_i) u_iᵀ,   dz = Σ_i c_i φ(Q_i),
       dφ(K_j) = dA V_j + dz,     dV_j = dAᵀ φ(K_j). */
/* Reference: the definition, one query at a time, O(n²):
       O_i = Σ_j (φ(Q_i)·φ(K_j)) V_j / (Σ_j φ(Q_i)·φ(K_j) + eps). */
EA_API void ea_kernel_attn_ref_fwd(float *o, const float *fq, const float *fk, const float *v,
                                   const ea_kattn_shape *s) {
    int b, h, i, j, f, d;
    for (b = 0; b < s->B; b++)
        for (h = 0; h < s->H; h++)
            for (i = 0; i < s->n; i++) {
                const float *qi = fq + ((size_t)b * s->n + i) * s->ldf + (size_t)h * s->F;
                float *oi = o + ((size_t)b * s->n + i) * s->H * s->dv + (size_t)h * s->dv, den = s->eps;
                for (d = 0; d < s->dv; d++) oi[d] = 0.0f;
                for (j = 0; j < s->n; j++) {
                    const float *kj = fk + ((size_t)b * s->n + j) * s->ldf + (size_t)h * s->F;
                    const float *vj = v + ((size_t)b * s->n + j) * s->ldv + (size_t)h * s->dv;
                    float w = 0.0f;
                    for (f = 0; f < s->F; f++) w += qi[f] * kj[f];
                    den += w;
                    for (d = 0; d < s->dv; d++) oi[d] += w * vj[d];
                }
                for (d = 0; d < s->dv; d++) oi[d] /= den;
            }
}

/* Fast path: A and z once per head (two GEMM-shaped sums), then one GEMM
   for every query's numerator: O(n·F·dv). */
EA_API void ea_kernel_attn_fwd(float *o, float *kv, float *z, float *den, const float *fq,
                               const float *fk, const float *v, const ea_kattn_shape *s) {
    int slice, nslice = s->B * s->H;
    ptrdiff_t ldo = (ptrdiff_t)s->H * s->dv;
    EA_OMP_FOR_IF(nslice > 1 && 4.0 * s->n * s->F * s->dv * nslice >= EA_PAR_MIN_WORK)
    for (slice = 0; slice < nslice; slice++) {
        int b = slice / s->H, h = slice % s->H, i, f, d;
        const float *q = fq + (size_t)b * s->n * s->ldf + (size_t)h * s->F;
        const float *k = fk + (size_t)b * s->n * s->ldf + (size_t)h * s->F;
        const float *vh = v + (size_t)b * s->n * s->ldv + (size_t)h * s->dv;
        float *A = kv + (size_t)slice * s->F * s->dv, *zs = z + (size_t)slice * s->F;
        float *oh = o + (size_t)b * s->n * ldo + (size_t)h * s->dv, *dn = den + (size_t)slice * s->n;
        ea_gemm(s->F, s->dv, s->n, k, 1, s->ldf, vh, s->ldv, 1, A, s->dv, 0);
        for (f = 0; f < s->F; f++) zs[f] = 0.0f;
        for (i = 0; i < s->n; i++) ea__axpy(zs, 1.0f, k + (size_t)i * s->ldf, s->F);
        ea_gemm(s->n, s->dv, s->F, q, s->ldf, 1, A, s->dv, 1, oh, ldo, 0);
        for (i = 0; i < s->n; i++) {
            float inv;
            dn[i] = ea__dot(q + (size_t)i * s->ldf, zs, s->F) + s->eps;
            inv = 1.0f / dn[i];
            for (d = 0; d < s->dv; d++) oh[(size_t)i * ldo + d] *= inv;
        }
    }
}

EA_API void ea_kernel_attn_bwd(float *dfq, float *dfk, float *dv, float *scratch, const float *dout,
                               const float *o, const float *kv, const float *z, const float *den,
                               const float *fq, const float *fk, const float *v, const ea_kattn_shape *s) {
    int slice, nslice = s->B * s->H;
    ptrdiff_t ldo = (ptrdiff_t)s->H * s->dv;
    size_t per = (size_t)s->n * s->dv + s->n + (size_t)s->F * s->dv + s->F;
    /* every (batch, head) owns its columns of every gradient: slices run in parallel */
    EA_OMP_FOR_IF(nslice > 1 && 8.0 * s->n * s->F * s->dv * nslice >= EA_PAR_MIN_WORK)
    for (slice = 0; slice < nslice; slice++) {
        int b = slice / s->H, h = slice % s->H, i;
        size_t fo = (size_t)b * s->n * s->ldf + (size_t)h * s->F, vo = (size_t)b * s->n * s->ldv + (size_t)h * s->dv;
        size_t oo = (size_t)b * s->n * ldo + (size_t)h * s->dv;
        const float *A = kv + (size_t)slice * s->F * s->dv, *zs = z + (size_t)slice * s->F;
        const float *dn = den + (size_t)slice * s->n;
        float *U = scratch + per * (size_t)ea__thread_id(), *c = U + (size_t)s->n * s->dv;
        float *dA = c + s->n, *dz = dA + (size_t)s->F * s->dv;
        for (i = 0; i < s->n; i++) {
            const float *dOi = dout + oo + (size_t)i * ldo, *Oi = o + oo + (size_t)i * ldo;
            float inv = 1.0f / dn[i];
            ea__scal(U + (size_t)i * s->dv, inv, dOi, s->dv);
            c[i] = -ea__dot(dOi, Oi, s->dv) * inv;
        }
        if (dfq) {
            ea_gemm(s->n, s->F, s->dv, U, s->dv, 1, A, 1, s->dv, dfq + fo, s->ldf, 1);
            for (i = 0; i < s->n; i++) ea__axpy(dfq + fo + (size_t)i * s->ldf, c[i], zs, s->F);
        }
        if (!dfk && !dv) continue;
        ea_gemm(s->F, s->dv, s->n, fq + fo, 1, s->ldf, U, s->dv, 1, dA, s->dv, 0);
        memset(dz, 0, (size_t)s->F * sizeof(float));
        for (i = 0; i < s->n; i++) ea__axpy(dz, c[i], fq + fo + (size_t)i * s->ldf, s->F);
        if (dfk) {
            ea_gemm(s->n, s->F, s->dv, v + vo, s->ldv, 1, dA, 1, s->dv, dfk + fo, s->ldf, 1);
            for (i = 0; i < s->n; i++) ea__axpy(dfk + fo + (size_t)i * s->ldf, 1.0f, dz, s->F);
        }
        if (dv) ea_gemm(s->n, s->dv, s->F, fk + fo, s->ldf, 1, dA, s->dv, 1, dv + vo, s->ldv, 1);
    }
}

static void ea__kattn_back(ea_ctx *ctx, ea_node *n) {
    ea_tensor *fq = n->in[0], *fk = n->in[1], *v = n->in[2];
    int qc = n->iarg[5], kc = n->iarg[6], vc = n->iarg[7];
    ea_kattn_shape s;
    float *scratch;
    s.B = n->iarg[0]; s.n = n->iarg[1]; s.H = n->iarg[2]; s.F = n->iarg[3]; s.dv = n->iarg[4];
    s.ldf = fq->shape[2]; s.ldv = v->shape[2]; s.eps = n->farg[0];
    scratch = ea__floats(ctx, ((size_t)s.n * s.dv + s.n + (size_t)s.F * s.dv + s.F) * (size_t)ea_num_threads());
    if (!scratch) return;
    /* fq and fk may be one tensor: it receives both gradients */
    ea_kernel_attn_bwd(fq->grad ? fq->grad + qc : NULL, fk->grad ? fk->grad + kc : NULL, v->grad ? v->grad + vc : NULL,
                       scratch, n->out->grad, n->out->data, n->save[0], n->save[1], n->save[2], fq->data + qc,
                       fk->data + kc, v->data + vc, &s);
}

/* fq, fk: [B, n, C] with H heads of F feature columns from fq_col / fk_col
   (the two may be one tensor); v: H heads of dv columns from v_col. */
static ea_tensor *ea__kernel_attention(ea_ctx *ctx, ea_tensor *fq, int fq_col, ea_tensor *fk, int fk_col,
                                       ea_tensor *v, int v_col, int H, int F, int dv, float eps) {
    ea_kattn_shape s;
    ea_tensor *out;
    ea_node *n;
    float *kv, *z, *den;
    int shape[3];
    if (!ea__ok(ctx, fq, fk) || !v) return NULL;
    if (fq->ndim != 3 || fk->ndim != 3 || v->ndim != 3 || fq->shape[2] != fk->shape[2] ||
        fq->shape[0] != v->shape[0] || fk->shape[0] != v->shape[0] || fq->shape[1] != v->shape[1] ||
        fk->shape[1] != v->shape[1] || fq_col + H * F > fq->shape[2] || fk_col + H * F > fk->shape[2] ||
        v_col + H * dv > v->shape[2])
        return ea__fail(ctx, EA_ERR_SHAPE, "kernel attention: features and values must be [B, n, C] with %d heads", H);
    s.B = v->shape[0]; s.n = v->shape[1]; s.H = H; s.F = F; s.dv = dv;
    s.ldf = fq->shape[2]; s.ldv = v->shape[2]; s.eps = eps;
    shape[0] = s.B; shape[1] = s.n; shape[2] = H * dv;
    out = ea__out(ctx, 3, shape, fq, fk, v);
    kv = ea__floats(ctx, (size_t)s.B * H * F * dv);
    z = ea__floats(ctx, (size_t)s.B * H * F);
    den = ea__floats(ctx, (size_t)s.B * H * s.n);
    if (!out || !kv || !z || !den) return NULL;
    ea_kernel_attn_fwd(out->data, kv, z, den, fq->data + fq_col, fk->data + fk_col, v->data + v_col, &s);
    if (ctx->probe) { /* implied: w_ij = φ(q_i)·φ(k_j) / den_i, den_i = φ(q_i)·Σ_j φ(k_j) + eps */
        float *w = ea__probe_slot(ctx, H, s.n, s.n);
        int h, i, j;
        for (h = 0; w && h < H; h++)
            for (i = 0; i < s.n; i++)
                for (j = 0; j < s.n; j++)
                    w[((size_t)h * s.n + i) * s.n + j] = ea__dot(fq->data + fq_col + (size_t)i * s.ldf + (size_t)h * F,
                                                                 fk->data + fk_col + (size_t)j * s.ldf + (size_t)h * F, F) /
                                                         den[(size_t)h * s.n + i];
    }
    n = ea__record(ctx, ea__kattn_back, out, fq, fk, v);
    if (n) {
        n->save[0] = kv; n->save[1] = z; n->save[2] = den;
        n->iarg[0] = s.B; n->iarg[1] = s.n; n->iarg[2] = H; n->iarg[3] = F; n->iarg[4] = dv;
        n->iarg[5] = fq_col; n->iarg[6] = fk_col; n->iarg[7] = v_col;
        n->farg[0] = eps;
    }
    return out;
}

/* --- Performer's random features (Choromanski et al. 2021, FAVOR+) ------
   exp(q·k/√dh) = E_ω[φ(q)·φ(k)] for ω ~ N(0, I) with positive features
       φ(x)_r = exp(ω_r·x' - |x'|²/2) / √m,   x' = x / dh^(1/4),
   unbiased, and of lower variance when the ω_r are drawn as blocks of dh
   orthogonal rows (each row rescaled to the length of a Gaussian vector).
   A constant c is subtracted inside the exp for range: per row for
   queries, per (batch, head) for keys; both cancel between the numerator
   and the denominator of 8.5, so the result and its gradient are exact.
   ReLU features: φ(x)_r = max(ω_r·x', 0) / √m.
   Cost 2·n·m·dh FLOPs per head.  Backward (exp features):
       dx' = Σ_r dφ_r φ_r (ω_r - x'),   dx = dx' / dh^(1/4). */
/* Row r's normals come from streams of its own (its direction's, a redraw's,
   its length's), so rows are drawn over threads and the draw does not depend
   on the thread count; Gram-Schmidt runs block by block.  (One stream for
   every row had been ~1.5% of the performer row's training step at 2
   threads, serial, with m = 256: 32,768 normals.) */
static uint64_t ea__feature_stream(int draw, int r, int what) { /* what: 0 direction, 1 length, 2.. redraws */
    return ((0x9e3779b9u + (uint64_t)draw) << 32) ^ ((uint64_t)(unsigned)r << 8) ^ (uint64_t)(unsigned)what;
}

static void ea__normals(float *x, int n, uint64_t seed, uint64_t stream) {
    ea_rng rng;
    int c;
    ea_rng_seed(&rng, seed, stream);
    for (c = 0; c < n; c++) x[c] = ea_rng_normal(&rng);
}

/* Returns the number of rows left (almost) inside the span of their block's
   earlier rows after 254 redraws: 0, unless the generator is broken (a
   Gaussian draw lands there with probability ~0); the caller refuses them
   rather than divide by a vanishing norm. */
static int ea__orthogonal_features(float *w, int m, int dh, uint64_t seed, int draw) {
    int r, blk, bad = 0, par = (double)m * dh * 50.0 >= EA_PAR_MIN_WORK; /* ~50 flops a normal */
    (void)par; /* without OpenMP */
    EA_OMP_FOR_IF(par && m > 1)
    for (r = 0; r < m; r++) ea__normals(w + (size_t)r * dh, dh, seed, ea__feature_stream(draw, r, 0));
    EA_OMP_FOR_IF(par && m > dh)
    for (blk = 0; blk < (m + dh - 1) / dh; blk++) { /* unit rows, orthogonal within each block of dh */
        int rr, p, what;
        for (rr = blk * dh; rr < m && rr < (blk + 1) * dh; rr++) {
            float *wr = w + (size_t)rr * dh, norm;
            int c;
            for (what = 2;; what++) {
                for (p = blk * dh; p < rr; p++) ea__axpy(wr, -ea__dot(wr, w + (size_t)p * dh, dh), w + (size_t)p * dh, dh);
                norm = sqrtf(ea__dot(wr, wr, dh));
                if (norm >= 1e-4f || what > 255) break; /* else a draw (almost) inside the span: redraw */
                ea__normals(wr, dh, seed, ea__feature_stream(draw, rr, what));
            }
            if (norm < 1e-4f) wr[0] = NAN; /* marked; counted below */
            else
                for (c = 0; c < dh; c++) wr[c] /= norm;
        }
    }
    for (r = 0; r < m; r++) bad += w[(size_t)r * dh] != w[(size_t)r * dh];
    EA_OMP_FOR_IF(par && m > 1)
    for (r = 0; r < m; r++) { /* then a chi(dh)-distributed length each */
        ea_rng rng;
        float len = 0.0f;
        int c;
        ea_rng_seed(&rng, seed, ea__feature_stream(draw, r, 1));
        for (c = 0; c < dh; c++) {
            float g = ea_rng_normal(&rng);
            len += g * g;
        }
        len = sqrtf(len);
        for (c = 0; c < dh; c++) w[(size_t)r * dh + c] *= len;
    }
    return bad;
}

static void ea__favor_back(ea_ctx *ctx, ea_node *n) {
    ea_tensor *x = n->in[0];
    const float *w = n->save[0], *phi = n->out->data, *dphi = n->out->grad;
    int B = n->iarg[0], T = n->iarg[1], H = n->iarg[2], dh = n->iarg[3], m = n->iarg[4], relu = n->iarg[5];
    int col = n->iarg[6], rows = B * T, row, h;
    float sc = n->farg[0], rm = 1.0f / sqrtf((float)m);
    float *g = ea__floats(ctx, (size_t)rows * H * m), *tot = ea__floats(ctx, (size_t)rows * H);
    if (!x->grad || !g || !tot) return;
    /* g = sc · dφ ∘ ∂φ/∂u (u = x'·ωᵀ), and its sum per (row, head) */
    EA_OMP_FOR_IF(rows > 1 && 2.0 * rows * H * m >= EA_PAR_MIN_WORK)
    for (row = 0; row < rows; row++) {
        int hh, r;
        for (hh = 0; hh < H; hh++) {
            size_t o = ((size_t)row * H + hh) * m;
            float t = 0.0f;
            for (r = 0; r < m; r++) {
                g[o + r] = sc * (relu ? (phi[o + r] > 0.0f ? dphi[o + r] * rm : 0.0f) : dphi[o + r] * phi[o + r]);
                t += g[o + r];
            }
            tot[(size_t)row * H + hh] = t;
        }
    }
    /* dx += g W (one GEMM per head over every row), then for exp features
       - sc² x Σ g: dx = sc · (Wᵀ g - x' Σ g) with x' = sc · x */
    for (h = 0; h < H; h++)
        ea_gemm(rows, dh, m, g + (size_t)h * m, (ptrdiff_t)H * m, 1, w, dh, 1, x->grad + col + (size_t)h * dh,
                x->shape[2], 1);
    if (relu) return;
    EA_OMP_FOR_IF(rows > 1 && 2.0 * rows * H * dh >= EA_PAR_MIN_WORK)
    for (row = 0; row < rows; row++) {
        int hh;
        for (hh = 0; hh < H; hh++) {
            size_t o = (size_t)row * x->shape[2] + col + (size_t)hh * dh;
            ea__axpy(x->grad + o, -sc * tot[(size_t)row * H + hh], x->data + o, dh);
        }
    }
}

/* x [B, n, C], heads of dh columns from col -> φ [B, n, H·m]. */
static ea_tensor *ea__favor_features(ea_ctx *ctx, ea_tensor *x, int col, int H, int dh, const float *w, int m,
                                     int relu, int is_query) {
    int B = x->shape[0], T = x->shape[1], shape[3], rows = B * T, row, b;
    float sc = 1.0f / sqrtf(sqrtf((float)dh)), rm = 1.0f / sqrtf((float)m), *keymax;
    ea_tensor *out;
    ea_node *n;
    shape[0] = B; shape[1] = T; shape[2] = H * m;
    out = ea__out(ctx, 3, shape, x, NULL, NULL);
    keymax = ea__floats(ctx, (size_t)B * H);
    if (!out || !keymax) return NULL;
    /* u = x' Wᵀ for every head: one GEMM per head over all rows */
    for (b = 0; b < H; b++)
        ea_gemm(rows, m, dh, x->data + col + (size_t)b * dh, x->shape[2], 1, w, 1, dh, out->data + (size_t)b * m,
                (ptrdiff_t)H * m, 0);
    for (b = 0; b < B * H; b++) keymax[b] = -INFINITY;
    if (!relu && !is_query) { /* keys: one constant per (batch, head), the largest sc·u of its rows: each
                                 row's over threads, then theirs in order (sc > 0: sc·max u = max sc·u) */
        float *rmax = ea__floats(ctx, (size_t)rows * H);
        if (!rmax) return NULL;
        EA_OMP_FOR_IF(rows > 1 && (double)rows * H * m >= EA_PAR_MIN_WORK)
        for (row = 0; row < rows; row++) {
            int h;
            for (h = 0; h < H; h++) rmax[(size_t)row * H + h] = sc * ea__row_max(out->data + ((size_t)row * H + h) * m, m);
        }
        for (row = 0; row < rows; row++) {
            int h;
            for (h = 0; h < H; h++) {
                float *km = &keymax[(size_t)(row / T) * H + h];
                *km = rmax[(size_t)row * H + h] > *km ? rmax[(size_t)row * H + h] : *km;
            }
        }
    }
    EA_OMP_FOR_IF(rows > 1 && 2.0 * rows * H * m * 8 >= EA_PAR_MIN_WORK)
    for (row = 0; row < rows; row++) {
        int h, r;
        for (h = 0; h < H; h++) {
            float *u = out->data + ((size_t)row * H + h) * m, c;
            const float *xr = x->data + (size_t)row * x->shape[2] + col + (size_t)h * dh;
            float half = 0.5f * sc * sc * ea__dot(xr, xr, dh);
            if (relu) {
                for (r = 0; r < m; r++) u[r] = u[r] > 0.0f ? sc * u[r] * rm : 0.0f;
                continue;
            }
            for (r = 0; r < m; r++) u[r] *= sc;
            c = is_query ? ea__row_max(u, m) : keymax[(size_t)(row / T) * H + h];
            ea__row_exp(u, u, m, half + c); /* the vector exp of the SIMD layer */
            for (r = 0; r < m; r++) u[r] *= rm;
        }
    }
    n = ea__record(ctx, ea__favor_back, out, x, NULL, NULL);
    if (n) {
        n->save[0] = (float *)w;
        n->iarg[0] = B; n->iarg[1] = T; n->iarg[2] = H; n->iarg[3] = dh; n->iarg[4] = m;
        n->iarg[5] = relu; n->iarg[6] = col;
        n->farg[0] = sc;
    }
    return out;
}

/* --- 8.6 Shared pieces of the variants ------------------------------------ */
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

/* "a.b.c" (or "a.c" when b is NULL) into buf[EA_NAME_LEN]; 0 when it does
   not fit.  Lengths are checked here rather than left to snprintf, whose
   silent truncation would register a wrong name (and which newer gcc at -O3
   rightly warns about). */
static int ea__name_join(char *buf, const char *a, const char *b, const char *c) {
    size_t la = strlen(a), lb = b ? strlen(b) + 1 : 0, lc = strlen(c), k = la;
    if (la + lb + 1 + lc >= EA_NAME_LEN) return 0;
    memcpy(buf, a, la);
    if (b) {
        buf[k++] = '.';
        memcpy(buf + k, b, lb - 1);
        k += lb - 1;
    }
    buf[k++] = '.';
    memcpy(buf + k, c, lc + 1);
    return 1;
}

/* Register "prefix.name.weight" [out, in] and ".bias" [out] ("prefix.weight"
   when name is NULL), PyTorch-default initialised: U(-1/√in, 1/√in) for both. */
static void ea__linear_params(ea_params *ps, const char *prefix, const char *name, int out, int in,
                              ea_tensor **w, ea_tensor **b) {
    char buf[EA_NAME_LEN];
    int shape[2];
    shape[0] = out;
    shape[1] = in;
    *w = *b = NULL;
    if (!ea__name_join(buf, prefix, name, "weight")) {
        if (ps->status == EA_OK) ps->status = EA_ERR_NAME;
        return;
    }
    *w = ea_param(ps, buf, 2, shape, EA_INIT_FANIN, (float)in);
    if (!ea__name_join(buf, prefix, name, "bias")) {
        if (ps->status == EA_OK) ps->status = EA_ERR_NAME;
        return;
    }
    *b = ea_param(ps, buf, 1, shape, EA_INIT_FANIN, (float)in);
}

/* --- 8.7 none: the identity (control row) ---------------------------------
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

/* --- 8.7b Time in attention: rotary or ALiBi over time steps (opt.time) ----
   Exact attention is blind to order: a K/V cache longer than the clips a
   model was trained on then averages over the whole past.  The K/V rows
   (8.8, 8.9, h2o) can tell "how long ago" with opt.time, measured in time
   steps of opt.frame tokens (token p is at step p / frame):
     EA_TIME_ROPE:  q and k of every head turn by their step (7, rope), so
                    q·k depends on t_q - t_k only;
     EA_TIME_ALIBI: score_h(q, k) -= m_h·|t_q - t_k|, m_h = 2^(-8(h+1)/H),
                    through the flash kernel's score_mod (8.3).
   Both are relative, so step 10,000 looks like step 10.  The streaming
   step (8.24) turns or biases by each entry's stored position, so cached
   calls still equal one causal call.
   With opt.cache_window = W (a streaming cache that keeps the W latest
   tokens), a causal forward masks what that cache would have dropped when
   fed one time step per call: query q sees keys k <= q with
   k >= step_start(q) - W, so a model trains on the context it streams with,
   whatever the clip length. */
/* an option's value, or the row's default when it is 0 */
static int ea__opt(int v, int def) { return v ? v : def; }

typedef struct ea__time_bias { const float *slope; int frame, window; } ea__time_bias;

static float ea__time_alibi(float s, int b, int h, int q, int k, void *user) {
    const ea__time_bias *t = (const ea__time_bias *)user;
    int d = q / t->frame - k / t->frame;
    (void)b;
    return s - t->slope[h] * (float)(d < 0 ? -d : d);
}

static int ea__time_window(int b, int h, int q, int k, void *user) {
    const ea__time_bias *t = (const ea__time_bias *)user;
    (void)b; (void)h;
    return k >= q / t->frame * t->frame - t->window;
}

/* ea_sdpa over q, k, v column ranges with ALiBi over time steps and the
   cache window's mask, when the layer has them. */
static ea_tensor *ea__time_sdpa_masked(ea_ctx *ctx, const ea_attn *a, ea_tensor *q, int qc, ea_tensor *k, int kc,
                                       ea_tensor *v, int vc) {
    int H = a->cfg.n_heads, Hkv = a->kv_heads, dh = a->head_dim;
    int alibi = a->cfg.opt.time == EA_TIME_ALIBI, window = a->cfg.causal ? a->cfg.opt.cache_window : 0;
    int F = ea__opt(a->cfg.opt.frame, 1), n = q ? q->shape[1] : 0;
    ea_flex_mods *m;
    ea__time_bias *tb;
    float *slope;
    if (window && (long long)(n - 1) / F * F - window <= 0) window = 0; /* the window holds every key: no mask */
    if (!alibi && !window) return ea_sdpa(ctx, q, qc, k, kc, v, vc, H, Hkv, dh, a->cfg.causal);
    m = (ea_flex_mods *)ea_ctx_alloc(ctx, sizeof *m); /* flex attention's score_mod and block mask */
    tb = (ea__time_bias *)ea_ctx_alloc(ctx, sizeof *tb);
    slope = ea__floats(ctx, (size_t)H);
    if (!m || !tb || !slope) return NULL;
    ea_flex_alibi_slopes(slope, H);
    tb->slope = slope;
    tb->frame = F;
    tb->window = window;
    memset(m, 0, sizeof *m);
    if (alibi) {
        m->score_mod = ea__time_alibi;
        m->dscore_mod = ea_flex_bias_grad;
    }
    if (window) m->mask_mod = ea__time_window;
    m->user = tb;
    return ea_flex_attention(ctx, q, qc, k, kc, v, vc, H, Hkv, dh, a->cfg.causal, m);
}

/* ... and before it, rotary over time steps (the K/V rows' forward). */
static ea_tensor *ea__timed_sdpa(ea_ctx *ctx, const ea_attn *a, ea_tensor *q, int qc, ea_tensor *k, int kc, ea_tensor *v,
                                 int vc) {
    int H = a->cfg.n_heads, Hkv = a->kv_heads, dh = a->head_dim, F = ea__opt(a->cfg.opt.frame, 1);
    if (a->cfg.opt.time == EA_TIME_ROPE) {
        if (q == k && kc == qc + H * dh) { /* merged Q|K columns: one pass over both */
            ea_tensor *r = ea_rope_at(ctx, q, qc, H + Hkv, dh, dh, 0, F);
            if (v == q) v = r;
            q = k = r;
        } else {
            q = ea_rope_at(ctx, q, qc, H, dh, dh, 0, F);
            k = ea_rope_at(ctx, k, kc, Hkv, dh, dh, 0, F);
        }
    }
    return ea__time_sdpa_masked(ctx, a, q, qc, k, kc, v, vc);
}

/* opt.time, frame and cache_window belong to the rows with a K/V or latent
   cache; anywhere else they would be silently ignored, so they are refused. */
static ea_status ea__check_time(const ea_attn *a, int cache_row, int mla, ea_error *err) {
    const ea_attn_opts *o = &a->cfg.opt;
    if (o->time < 0 || o->time > EA_TIME_ALIBI || o->frame < 0 || o->cache_window < 0)
        return ea_error_set(err, EA_ERR_CONFIG,
                            "attention '%s': time = %d, frame = %d, cache_window = %d: expected time 0 (none), 1 (rope) "
                            "or 2 (alibi), and frame, cache_window >= 0",
                            a->variant->name, o->time, o->frame, o->cache_window);
    if ((o->time || o->frame || o->cache_window) && !cache_row)
        return ea_error_set(err, EA_ERR_CONFIG,
                            "attention '%s': time, frame and cache_window are options of the rows with a K/V cache "
                            "(mha, mha-sep, mqa, gqa, single, h2o, kimi) and of mla / deepseek",
                            a->variant->name);
    if (mla && o->time == EA_TIME_ALIBI)
        return ea_error_set(err, EA_ERR_CONFIG,
                            "attention '%s' carries time in its rotary columns: expected time 0 or 1 (rope), not alibi",
                            a->variant->name);
    if (o->time == EA_TIME_ROPE && a->head_dim % 2)
        return ea_error_set(err, EA_ERR_CONFIG, "attention '%s': time = rope turns column pairs: head_dim %d must be even",
                            a->variant->name, a->head_dim);
    return EA_OK;
}

/* --- 8.8 mha and single: multi-head attention, merged QKV projection --------
   [Q K V] = x W_qkvᵀ + b_qkv   (W_qkv [3·dim, dim], columns [3][heads][dh])
   O = concat_h softmax(Q_h K_hᵀ/√dh) V_h,   y = O W_oᵀ + b_o.
   Slots: w[0..1] qkv weight/bias, w[2..3] proj weight/bias.
   Parameters 4·dim² + 4·dim; FLOPs per sequence 8·n·dim² + 4·n²·dim.
   `single` is the same with one head of width dim. */
static ea_status ea__qkv_build(ea_attn *a, ea_params *ps, const char *prefix, ea_error *err);

static ea_status ea__mha_build(ea_attn *a, ea_params *ps, const char *prefix, ea_error *err) {
    if (strcmp(a->variant->name, "single") == 0) a->cfg.n_heads = 1;
    return ea__qkv_build(a, ps, prefix, err);
}

static ea_tensor *ea__mha_forward(ea_ctx *ctx, const ea_attn *a, ea_tensor *x) {
    int D = a->cfg.dim;
    ea_tensor *qkv = ea_linear(ctx, x, a->w[0], a->w[1]);
    return ea_linear(ctx, ea__timed_sdpa(ctx, a, qkv, 0, qkv, D, qkv, 2 * D), a->w[2], a->w[3]);
}

/* --- 8.9 gqa, mqa, mha-sep: separate Q, K, V projections -------------------
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
    return ea_linear(ctx, ea__timed_sdpa(ctx, a, q, 0, k, 0, v, 0), a->w[2], a->w[3]);
}

/* FLOPs of both projection families: Q and output projections, K and V
   projections of kv_heads·dh columns, and the two n x n products. */
static double ea__sdpa_family_flops(const ea_attn *a, int n) {
    double D = a->cfg.dim, kvw = (double)a->kv_heads * a->head_dim;
    return 2.0 * n * D * (2.0 * D + 2.0 * kvw) + 4.0 * (double)n * n * D;
}

/* --- 8.10 Shared pieces of the sparse and approximate rows ------------------
   They all take a merged QKV projection (slots w[0..3], as mha) and add
   their own parameters in w[4..7]. */
static ea_status ea__qkv_build(ea_attn *a, ea_params *ps, const char *prefix, ea_error *err) {
    ea_status st;
    if ((st = ea__check_heads(a, err)) != EA_OK) return st;
    a->head_dim = a->cfg.dim / a->cfg.n_heads;
    a->kv_heads = a->cfg.n_heads;
    ea__linear_params(ps, prefix, "qkv", 3 * a->cfg.dim, a->cfg.dim, &a->w[0], &a->w[1]);
    ea__linear_params(ps, prefix, "proj", a->cfg.dim, a->cfg.dim, &a->w[2], &a->w[3]);
    return EA_OK;
}


/* Options must not be negative; rows without a causal form refuse it. */
/* The options by name, in checkpoint order. */
static const struct ea__opt_field {
    const char *name;
    size_t off;
} ea__opt_fields[EA_ATTN_OPTS] = {
    {"window", offsetof(ea_attn_opts, window)},     {"stride", offsetof(ea_attn_opts, stride)},
    {"dilation", offsetof(ea_attn_opts, dilation)}, {"topk", offsetof(ea_attn_opts, topk)},
    {"features", offsetof(ea_attn_opts, features)}, {"relu", offsetof(ea_attn_opts, relu)},
    {"redraw", offsetof(ea_attn_opts, redraw)},     {"proj_len", offsetof(ea_attn_opts, proj_len)},
    {"max_len", offsetof(ea_attn_opts, max_len)},   {"landmarks", offsetof(ea_attn_opts, landmarks)},
    {"pinv_iters", offsetof(ea_attn_opts, pinv_iters)}, {"conv_kernel", offsetof(ea_attn_opts, conv_kernel)},
    {"block", offsetof(ea_attn_opts, block)},
    {"global", offsetof(ea_attn_opts, global)},     {"random", offsetof(ea_attn_opts, random)},
    {"flex", offsetof(ea_attn_opts, flex)},         {"seed", offsetof(ea_attn_opts, seed)},
    {"latent", offsetof(ea_attn_opts, latent)},     {"q_latent", offsetof(ea_attn_opts, q_latent)},
    {"rope_dim", offsetof(ea_attn_opts, rope_dim)}, {"budget", offsetof(ea_attn_opts, budget)},
    {"ratio", offsetof(ea_attn_opts, ratio)},       {"sinks", offsetof(ea_attn_opts, sinks)},
    {"recent", offsetof(ea_attn_opts, recent)},     {"slots", offsetof(ea_attn_opts, slots)},
    {"memory", offsetof(ea_attn_opts, memory)},     {"fuse", offsetof(ea_attn_opts, fuse)},
    {"state", offsetof(ea_attn_opts, state)},       {"expand", offsetof(ea_attn_opts, expand)},
    {"dt_rank", offsetof(ea_attn_opts, dt_rank)},   {"experts", offsetof(ea_attn_opts, experts)},
    {"route_k", offsetof(ea_attn_opts, route_k)},   {"shared", offsetof(ea_attn_opts, shared)},
    {"expert_hidden", offsetof(ea_attn_opts, expert_hidden)}, {"capacity", offsetof(ea_attn_opts, capacity)},
    {"sigmoid", offsetof(ea_attn_opts, sigmoid)},   {"average", offsetof(ea_attn_opts, average)},
    {"time", offsetof(ea_attn_opts, time)},         {"frame", offsetof(ea_attn_opts, frame)},
    {"cache_window", offsetof(ea_attn_opts, cache_window)}};

EA_INLINE int *ea__opt_at(ea_attn_opts *o, int i) { return (int *)(void *)((char *)o + ea__opt_fields[i].off); }

static ea_status ea__check_opts(const ea_attn *a, int causal_ok, ea_error *err) {
    ea_attn_opts o = a->cfg.opt;
    int i;
    for (i = 0; i < EA_ATTN_OPTS; i++)
        if (*ea__opt_at(&o, i) < 0 && strcmp(ea__opt_fields[i].name, "seed") != 0)
            return ea_error_set(err, EA_ERR_CONFIG, "attention '%s': %s = %d must be >= 0 (0: the default)",
                                a->variant->name, ea__opt_fields[i].name, *ea__opt_at(&o, i));
    if (a->cfg.causal && !causal_ok)
        return ea_error_set(err, EA_ERR_CONFIG,
                            "attention '%s' has no causal form (its keys or summaries mix the whole sequence); "
                            "expected causal = 0",
                            a->variant->name);
    return EA_OK;
}

/* Per-layer seed: the user's seed mixed with the layer's name (FNV-1a),
   so every layer draws its own random features or blocks. */
static uint64_t ea__layer_seed(int seed, const char *prefix) {
    uint64_t h = 1469598103934665603ull ^ (uint64_t)(uint32_t)seed;
    for (; *prefix; prefix++) h = (h ^ (unsigned char)*prefix) * 1099511628211ull;
    return h;
}

static ea_tensor *ea__project_out(ea_ctx *ctx, const ea_attn *a, ea_tensor *o) {
    return ea_linear(ctx, o, a->w[2], a->w[3]);
}

/* FLOPs of the QKV and output projections: 8·n·dim². */
static double ea__proj_flops(const ea_attn *a, int n) { return 8.0 * n * (double)a->cfg.dim * a->cfg.dim; }

/* --- 8.11 local: sliding window (Beltagy et al. 2020, Longformer; seed 004)
   Query i sees keys j with |i - j| <= w (and j <= i when causal):
       O_i = softmax_j∈[i-w, i+w] (scale·Q_i·K_j) V_j.
   Run by the flash kernel over the band's tiles only (8.3): time
   O(n·(2w + 64)·dim), memory O(n).  w >= n - 1 is exact attention.
   Option: window (default 8). */
/* Build of every row that has only the QKV projection and a causal form
   (local, bigbird, strided, dilated, topk). */
static ea_status ea__masked_build(ea_attn *a, ea_params *ps, const char *prefix, ea_error *err) {
    ea_status st;
    if ((st = ea__check_opts(a, 1, err)) != EA_OK) return st;
    return ea__qkv_build(a, ps, prefix, err);
}

static ea_tensor *ea__local_forward(ea_ctx *ctx, const ea_attn *a, ea_tensor *x) {
    ea__pattern p;
    memset(&p, 0, sizeof p);
    p.window = ea__opt(a->cfg.opt.window, 8);
    return ea__project_out(ctx, a, ea__pattern_attention(ctx, ea_linear(ctx, x, a->w[0], a->w[1]), a->cfg.n_heads,
                                                         a->head_dim, a->cfg.causal, &p));
}

static double ea__local_flops(const ea_attn *a, int n) {
    double w = 2.0 * ea__opt(a->cfg.opt.window, 8) + 1.0;
    return ea__proj_flops(a, n) + 4.0 * n * (w < n ? w : n) * a->cfg.dim;
}

/* --- 8.12 bigbird: block-sparse attention (Zaheer et al. 2020, BigBird) ---
   Tokens form blocks of size bs.  Query block qb sees key blocks
   qb-1, qb, qb+1 (sliding), the first g blocks (global: they also see
   every key), and r random blocks drawn per query block from the seeded
   RNG (fixed for a given seed and n).  Each query sees (3 + g + r)·bs keys:
   O(n·(3 + g + r)·bs·dim) time through the flash kernel's block mask.
   With g = n_blocks it is exact attention.  Options: block (8), global (1),
   random (1), seed. */
static ea_tensor *ea__bigbird_forward(ea_ctx *ctx, const ea_attn *a, ea_tensor *x) {
    ea__pattern p;
    ea_tensor *qkv = ea_linear(ctx, x, a->w[0], a->w[1]);
    if (!qkv) return NULL;
    memset(&p, 0, sizeof p);
    p.window = -1;
    p.block = ea__opt(a->cfg.opt.block, 8);
    p.block_window = 1;
    p.n_global = ea__opt(a->cfg.opt.global, 1) * p.block;
    p.n_random = ea__opt(a->cfg.opt.random, 1);
    p.rand = ea__random_blocks(ctx, &p, x->shape[1], a->seed);
    if (!p.rand) return NULL;
    return ea__project_out(ctx, a, ea__pattern_attention(ctx, qkv, a->cfg.n_heads, a->head_dim, a->cfg.causal, &p));
}

static double ea__bigbird_flops(const ea_attn *a, int n) {
    double keys = (3.0 + ea__opt(a->cfg.opt.global, 1) + ea__opt(a->cfg.opt.random, 1)) * ea__opt(a->cfg.opt.block, 8);
    return ea__proj_flops(a, n) + 4.0 * n * (keys < n ? keys : n) * a->cfg.dim;
}

/* --- 8.13 localglobal: local windows plus global summary tokens ------------
   (Ainslie et al. 2020, ETC; Beltagy et al. 2020, Longformer.)  g learned
   tokens are put in front of the sequence; they see every token and every
   token sees them; the others see their window of half-width w:
       [G; X] -> attention with the pattern (band w, g global) -> drop G.
   Time O((n + g)·(2w + g + 64)·dim); the summary tokens are parameters
   (w[4], [g, dim], N(0, 0.02²)).  Seed 004's variant mixes a local and a
   global output 0.5 / 0.5 with a hard top-g pick that gets no gradient;
   these learned tokens train end to end instead.  Options: window (8),
   global (2). */
static ea_status ea__localglobal_build(ea_attn *a, ea_params *ps, const char *prefix, ea_error *err) {
    ea_status st;
    char name[EA_NAME_LEN];
    int shape[2];
    if ((st = ea__check_opts(a, 0, err)) != EA_OK || (st = ea__qkv_build(a, ps, prefix, err)) != EA_OK) return st;
    shape[0] = ea__opt(a->cfg.opt.global, 2);
    shape[1] = a->cfg.dim;
    snprintf(name, sizeof name, "%s.global_tokens", prefix);
    a->w[4] = ea_param(ps, name, 2, shape, EA_INIT_NORMAL, 0.02f);
    return EA_OK;
}

static ea_tensor *ea__localglobal_forward(ea_ctx *ctx, const ea_attn *a, ea_tensor *x) {
    ea__pattern p;
    int g = a->w[4]->shape[0];
    ea_tensor *h = ea_linear(ctx, ea_prepend_tokens(ctx, a->w[4], x), a->w[0], a->w[1]);
    memset(&p, 0, sizeof p);
    p.window = ea__opt(a->cfg.opt.window, 8);
    p.n_global = g;
    h = ea__pattern_attention(ctx, h, a->cfg.n_heads, a->head_dim, 0, &p);
    return ea_drop_tokens(ctx, ea__project_out(ctx, a, h), g);
}

static double ea__localglobal_flops(const ea_attn *a, int n) {
    double g = ea__opt(a->cfg.opt.global, 2), w = 2.0 * ea__opt(a->cfg.opt.window, 8) + 1.0 + g, T = n + g;
    return ea__proj_flops(a, (int)T) + 4.0 * T * (w < T ? w : T) * a->cfg.dim + 4.0 * g * T * a->cfg.dim;
}

/* --- 8.14 flex: user-defined scores and masks (Dong et al. 2024) ----------
   O = softmax(score_mod(scale·QKᵀ) masked by mask_mod) V through the flash
   kernel with a block mask (8.2, 8.3).  The layer takes cfg.mods when
   given (the caller keeps it alive), else opt.flex picks one of the
   header's examples: 1 ALiBi, 2 tanh soft-cap at 5, 3 causal mask.  With
   no mods it is exact attention.  Cost: exact attention's, less the
   skipped tiles; a mask_mod is evaluated on every pair once per call to
   build the block mask. */
static ea_status ea__flex_build(ea_attn *a, ea_params *ps, const char *prefix, ea_error *err) {
    ea_status st;
    if ((st = ea__check_opts(a, 1, err)) != EA_OK) return st;
    if (a->cfg.opt.flex > 3)
        return ea_error_set(err, EA_ERR_CONFIG, "attention 'flex': flex = %d: expected 0 (none), 1 (alibi), 2 (softcap) or 3 (causal)",
                            a->cfg.opt.flex);
    a->softcap = 5.0f;
    return ea__qkv_build(a, ps, prefix, err);
}

static ea_tensor *ea__flex_forward(ea_ctx *ctx, const ea_attn *a, ea_tensor *x) {
    const ea_flex_mods *mods = a->cfg.mods;
    int D = a->cfg.dim;
    ea_tensor *qkv = ea_linear(ctx, x, a->w[0], a->w[1]);
    if (!mods && a->cfg.opt.flex) {
        ea_flex_mods *m = (ea_flex_mods *)ea_ctx_alloc(ctx, sizeof *m);
        if (!m) return NULL;
        memset(m, 0, sizeof *m);
        if (a->cfg.opt.flex == 1) {
            float *slopes = ea__floats(ctx, (size_t)a->cfg.n_heads);
            if (!slopes) return NULL;
            ea_flex_alibi_slopes(slopes, a->cfg.n_heads);
            m->score_mod = ea_flex_alibi;
            m->dscore_mod = ea_flex_bias_grad;
            m->user = slopes;
        } else if (a->cfg.opt.flex == 2) {
            m->score_mod = ea_flex_softcap;
            m->dscore_mod = ea_flex_softcap_grad;
            m->user = (void *)&a->softcap;
        } else {
            m->mask_mod = ea_flex_causal;
        }
        mods = m;
    }
    return ea__project_out(ctx, a, ea_flex_attention(ctx, qkv, 0, qkv, D, qkv, 2 * D, a->cfg.n_heads, a->cfg.n_heads,
                                                     a->head_dim, a->cfg.causal, mods));
}

static double ea__flex_flops(const ea_attn *a, int n) { return ea__proj_flops(a, n) + 4.0 * (double)n * n * a->cfg.dim; }

/* --- gather rows: strided, dilated, top-k (kernel 8.4) ------------------- */
static void ea__gather_back(ea_ctx *ctx, ea_node *n) {
    ea_tensor *qkv = n->in[0];
    int D = n->iarg[0], K = n->iarg[3], per_head = n->iarg[4];
    ea_sdpa_shape s;
    float *scratch = ea__floats(ctx, (size_t)K * ea_num_threads());
    if (!scratch || !qkv->grad) return;
    memset(&s, 0, sizeof s);
    s.B = qkv->shape[0]; s.nq = s.nk = qkv->shape[1]; s.H = s.Hkv = n->iarg[1]; s.dh = n->iarg[2];
    s.scale = n->farg[0]; s.ldq = s.ldk = s.ldv = qkv->shape[2]; s.ldo = D;
    ea_gather_attn_bwd(qkv->grad, qkv->grad + D, qkv->grad + 2 * D, scratch, n->out->grad, n->save[0], qkv->data,
                       qkv->data + D, qkv->data + 2 * D, (const int *)n->aux[0], K, per_head, &s);
}

/* Attention of qkv's heads over key lists; topk > 0 selects them per query
   (per_head lists), else idx holds a shared [n, K] list. */
static ea_tensor *ea__gather_attention(ea_ctx *ctx, ea_tensor *qkv, int H, int dh, int *idx, int K, int topk) {
    ea_sdpa_shape s;
    ea_tensor *out;
    ea_node *n;
    float *p;
    int D = H * dh;
    if (!ea__attn_shape(ctx, &s, "sparse attention", qkv, 0, qkv, D, qkv, 2 * D, H, H, dh, 0)) return NULL;
    if (topk) {
        float *scratch = ea__floats(ctx, (size_t)EA_FA_BR * s.nk * ea_num_threads());
        K = topk;
        idx = (int *)ea_ctx_alloc(ctx, (size_t)s.B * H * s.nq * K * sizeof(int));
        if (!scratch || !idx) return NULL;
        ea_topk_select(idx, scratch, qkv->data, qkv->data + D, K, &s);
    }
    out = ea_tensor_3d(ctx, s.B, s.nq, D, qkv->requires_grad);
    p = ea__floats(ctx, (size_t)s.B * H * s.nq * K);
    if (!out || !p) return NULL;
    ea_gather_attn_fwd(out->data, p, qkv->data, qkv->data + D, qkv->data + 2 * D, idx, K, topk != 0, &s);
    if (ctx->probe) { /* the weights the kernel used, scattered to their keys */
        float *w = ea__probe_slot(ctx, H, s.nq, s.nk);
        int h, i, t;
        for (h = 0; w && h < H; h++)
            for (i = 0; i < s.nq; i++) {
                const int *row = ea__gather_row(idx, K, topk != 0, &s, 0, h, i);
                for (t = 0; t < K; t++)
                    if (row[t] >= 0) w[((size_t)h * s.nq + i) * s.nk + row[t]] += p[((size_t)h * s.nq + i) * K + t];
            }
    }
    n = ea__record(ctx, ea__gather_back, out, qkv, NULL, NULL);
    if (n) {
        n->save[0] = p;
        n->aux[0] = idx;
        n->iarg[0] = D; n->iarg[1] = H; n->iarg[2] = dh; n->iarg[3] = K; n->iarg[4] = topk != 0;
        n->farg[0] = s.scale;
    }
    return out;
}

/* --- 8.15 strided: every s-th key (Child et al. 2019; seed 004) ------------
   Query i sees keys 0, s, 2s, ... and itself: K = ceil(n/s) + 1 keys,
   O(n²/s·dim) time, O(n²/s) memory for P.  s = 1 is exact attention.
   Option: stride (default 4).
   --- 8.16 dilated: a dilated window (Beltagy et al. 2020; Hassani & Shi
   2022) -------------------------------------------------------------------
   Query i sees keys i + t·r, t = -w..w: a receptive field of 2wr + 1 at
   the cost of 2w + 1 keys, O(n·w·dim).  Options: window (4), dilation (2). */
/* The shared index list of a strided or dilated layer for n tokens. */
static int *ea__pattern_index(ea_ctx *ctx, const ea_attn *a, int n, int strided, int *K) {
    int *idx;
    int s = ea__opt(a->cfg.opt.stride, 4), w = ea__opt(a->cfg.opt.window, 4), r = ea__opt(a->cfg.opt.dilation, 2);
    *K = strided ? (n + s - 1) / s + 1 : 2 * w + 1;
    idx = (int *)ea_ctx_alloc(ctx, (size_t)n * *K * sizeof(int));
    if (!idx) return NULL;
    if (strided) ea__strided_index(idx, n, s, a->cfg.causal);
    else ea__dilated_index(idx, n, w, r, a->cfg.causal);
    return idx;
}

static ea_tensor *ea__gather_forward(ea_ctx *ctx, const ea_attn *a, ea_tensor *x) {
    int K, *idx = ea__pattern_index(ctx, a, x->shape[1], strcmp(a->variant->name, "strided") == 0, &K);
    if (!idx) return NULL;
    return ea__project_out(ctx, a, ea__gather_attention(ctx, ea_linear(ctx, x, a->w[0], a->w[1]), a->cfg.n_heads,
                                                        a->head_dim, idx, K, 0));
}

static double ea__gather_flops(const ea_attn *a, int n) {
    double K = strcmp(a->variant->name, "strided") == 0 ? (double)((n + ea__opt(a->cfg.opt.stride, 4) - 1) / ea__opt(a->cfg.opt.stride, 4) + 1)
                                                        : 2.0 * ea__opt(a->cfg.opt.window, 4) + 1.0;
    return ea__proj_flops(a, n) + 4.0 * n * K * a->cfg.dim;
}

/* --- 8.17 topk: each query keeps its k largest scores (Gupta et al. 2021) -
   P = softmax over the kept scores (the rest weigh 0), O = P V.  The
   gradient flows through the kept entries; the choice itself is piecewise
   constant.  Time O(n²·dh) for the selection (every score is needed) plus
   O(n·k·dh); memory O(n·k).  k = n is exact attention.  Option: topk
   (default n/4, at least 1); k > n is refused. */
static ea_tensor *ea__topk_forward(ea_ctx *ctx, const ea_attn *a, ea_tensor *x) {
    int n = x->shape[1], k = a->cfg.opt.topk ? a->cfg.opt.topk : (n / 4 > 1 ? n / 4 : 1);
    if (k > n)
        return ea__fail(ctx, EA_ERR_CONFIG, "attention 'topk': k = %d exceeds the sequence length %d; expected k <= n", k,
                        n);
    return ea__project_out(ctx, a, ea__gather_attention(ctx, ea_linear(ctx, x, a->w[0], a->w[1]), a->cfg.n_heads,
                                                        a->head_dim, NULL, 0, k));
}

static double ea__topk_flops(const ea_attn *a, int n) {
    double k = a->cfg.opt.topk ? a->cfg.opt.topk : (n / 4 > 1 ? n / 4 : 1);
    return ea__proj_flops(a, n) + 2.0 * (double)n * n * a->cfg.dim + 4.0 * n * k * a->cfg.dim;
}

/* --- 8.18 linear: elu+1 feature map (Katharopoulos et al. 2020) -------------
   φ(x) = elu(x) + 1 (or ReLU), applied to each head's q and k, then the
   kernel attention of 8.5 with F = dh: time O(n·dh²·H), memory O(n).
   (Seed 001 puts a learned Linear(dh -> F) before φ; here φ acts on q, k
   directly, the paper's form.)  Option: relu. */
static ea_status ea__linear_build(ea_attn *a, ea_params *ps, const char *prefix, ea_error *err) {
    ea_status st;
    if ((st = ea__check_opts(a, 0, err)) != EA_OK) return st;
    return ea__qkv_build(a, ps, prefix, err);
}

/* The linear-attention path of qkv, shared by `linear` and `hybrid`. */
static ea_tensor *ea__linear_path(ea_ctx *ctx, const ea_attn *a, ea_tensor *qkv) {
    int D = a->cfg.dim;
    ea_tensor *f = ea__feature_map_cols(ctx, qkv, 2 * D, a->cfg.opt.relu);
    return ea__kernel_attention(ctx, f, 0, f, D, qkv, 2 * D, a->cfg.n_heads, a->head_dim, a->head_dim, 1e-6f);
}

static ea_tensor *ea__linear_forward(ea_ctx *ctx, const ea_attn *a, ea_tensor *x) {
    return ea__project_out(ctx, a, ea__linear_path(ctx, a, ea_linear(ctx, x, a->w[0], a->w[1])));
}

static double ea__linear_flops(const ea_attn *a, int n) {
    return ea__proj_flops(a, n) + 4.0 * n * (double)a->head_dim * a->cfg.dim;
}

/* --- 8.19 performer: FAVOR+ random features (Choromanski et al. 2021) ------
   φ from 8.5's random features (m of them, orthogonal blocks, positive
   exp features or ReLU), then kernel attention: time O(n·m·dim), memory
   O(n·m·H).  The features are a pure function of (layer seed, draw);
   ea_attn_redraw changes the draw (the tracker redraws every `redraw`
   steps when asked).  The approximation error against exact attention
   falls as m grows (tested).  Options: features (64), relu, redraw, seed. */
static ea_tensor *ea__performer_forward(ea_ctx *ctx, const ea_attn *a, ea_tensor *x) {
    int D = a->cfg.dim, H = a->cfg.n_heads, dh = a->head_dim, m = ea__opt(a->cfg.opt.features, 64);
    ea_tensor *qkv = ea_linear(ctx, x, a->w[0], a->w[1]), *fq, *fk;
    float *w = ea__floats(ctx, (size_t)m * dh);
    if (!qkv || !w) return NULL;
    if (ea__orthogonal_features(w, m, dh, a->seed, a->draw))
        return ea__fail(ctx, EA_ERR_NUMERIC, "performer: %d x %d random features (seed %llu, draw %d) could not be "
                        "made orthogonal: the random number generator is broken", m, dh,
                        (unsigned long long)a->seed, a->draw);
    fq = ea__favor_features(ctx, qkv, 0, H, dh, w, m, a->cfg.opt.relu, 1);
    fk = ea__favor_features(ctx, qkv, D, H, dh, w, m, a->cfg.opt.relu, 0);
    return ea__project_out(ctx, a, ea__kernel_attention(ctx, fq, 0, fk, 0, qkv, 2 * D, H, m, dh, 1e-6f));
}

static double ea__performer_flops(const ea_attn *a, int n) {
    double m = ea__opt(a->cfg.opt.features, 64);
    return ea__proj_flops(a, n) + 4.0 * n * m * a->cfg.dim + 4.0 * n * m * a->cfg.dim;
}

/* --- 8.20 linformer: low-rank projection along the sequence (Wang et al.
   2020) ---------------------------------------------------------------------
   K' = E K, V' = F V with learned E, F [k, max_len] (first n columns
   used), then exact attention of Q against the k projected keys:
   time O(n·k·dim), memory O(n·k).  Sequences longer than max_len are
   refused.  Slots w[4] E, w[5] F, N(0, 2/(k + max_len)) (Xavier).
   Options: proj_len (16), max_len (256; the ViT passes its token count). */
static ea_status ea__linformer_build(ea_attn *a, ea_params *ps, const char *prefix, ea_error *err) {
    ea_status st;
    char name[EA_NAME_LEN];
    int shape[2];
    if ((st = ea__check_opts(a, 0, err)) != EA_OK || (st = ea__qkv_build(a, ps, prefix, err)) != EA_OK) return st;
    shape[0] = ea__opt(a->cfg.opt.proj_len, 16);
    shape[1] = ea__opt(a->cfg.opt.max_len, 256);
    snprintf(name, sizeof name, "%s.E", prefix);
    a->w[4] = ea_param(ps, name, 2, shape, EA_INIT_NORMAL, sqrtf(2.0f / (float)(shape[0] + shape[1])));
    snprintf(name, sizeof name, "%s.F", prefix);
    a->w[5] = ea_param(ps, name, 2, shape, EA_INIT_NORMAL, sqrtf(2.0f / (float)(shape[0] + shape[1])));
    return EA_OK;
}

static ea_tensor *ea__linformer_forward(ea_ctx *ctx, const ea_attn *a, ea_tensor *x) {
    int D = a->cfg.dim, before = ctx->probe ? ctx->probe->count : 0;
    ea_tensor *qkv = ea_linear(ctx, x, a->w[0], a->w[1]);
    ea_tensor *kp = ea_seq_project(ctx, a->w[4], qkv, D, D), *vp = ea_seq_project(ctx, a->w[5], qkv, 2 * D, D);
    ea_tensor *o = ea_sdpa(ctx, qkv, 0, kp, 0, vp, 0, a->cfg.n_heads, a->cfg.n_heads, a->head_dim, 0);
    if (o && ctx->probe && ctx->probe->count == before + 1) {
        /* the probe holds P over the k projected positions: over the tokens
           the values are F·V, so the weights are P·F[:, :n] */
        ea_attn_probe *pr = ctx->probe;
        int H = pr->layer[before].H, n = pr->layer[before].nq, k = pr->layer[before].nk, h;
        size_t sz = (size_t)H * n * k;
        float *P = ea__floats(ctx, sz), *w;
        if (!P) return NULL;
        memcpy(P, pr->buf + pr->layer[before].off, sz * sizeof(float));
        pr->count--;
        pr->used = pr->layer[before].off;
        w = ea__probe_slot(ctx, H, n, n);
        for (h = 0; w && h < H; h++)
            ea_gemm(n, n, k, P + (size_t)h * n * k, k, 1, a->w[5]->data, a->w[5]->shape[1], 1, w + (size_t)h * n * n, n, 0);
    }
    return ea__project_out(ctx, a, o);
}

static double ea__linformer_flops(const ea_attn *a, int n) {
    double k = ea__opt(a->cfg.opt.proj_len, 16);
    return ea__proj_flops(a, n) + 4.0 * n * k * a->cfg.dim + 4.0 * n * k * a->cfg.dim;
}

/* --- 8.21 nystrom: Nyström approximation (Xiong et al. 2021) --------------
   Landmarks Q̃, K̃ = means of m segments of Q, K (scaled by dh^(-1/4)):
       F = softmax(Q K̃ᵀ) [n, m],  A = softmax(Q̃ K̃ᵀ) [m, m],  B = softmax(Q̃ Kᵀ) [m, n],
       O = F · A⁺ · (B V),
   with A⁺ from the paper's iteration (pinv_iters steps, 6 by default):
       Z₀ = Aᵀ / (max row sum · max column sum),
       Z ← ¼ Z (13I - AZ (15I - AZ (7I - AZ))).
   Time O(n·m·dim + m³·H), memory O(n·m).  m = n with enough iterations
   is exact attention.  Written on tensor ops: autograd does the backward.
   The paper's optional skip adds a depthwise convolution of V along the
   sequence (one kernel of conv_kernel taps per head, w[4] [H, k]).
   Options: landmarks (default min(8, n)), pinv_iters, conv_kernel. */
static ea_status ea__nystrom_build(ea_attn *a, ea_params *ps, const char *prefix, ea_error *err) {
    ea_status st;
    char name[EA_NAME_LEN];
    int shape[2];
    if ((st = ea__check_opts(a, 0, err)) != EA_OK || (st = ea__qkv_build(a, ps, prefix, err)) != EA_OK) return st;
    if (a->cfg.opt.conv_kernel) {
        if (a->cfg.opt.conv_kernel % 2 == 0)
            return ea_error_set(err, EA_ERR_CONFIG, "attention 'nystrom': conv_kernel = %d must be odd (centred)",
                                a->cfg.opt.conv_kernel);
        shape[0] = a->cfg.n_heads;
        shape[1] = a->cfg.opt.conv_kernel;
        snprintf(name, sizeof name, "%s.conv", prefix);
        a->w[4] = ea_param(ps, name, 2, shape, EA_INIT_FANIN, (float)shape[1]);
    }
    return EA_OK;
}

static ea_tensor *ea__nystrom_forward(ea_ctx *ctx, const ea_attn *a, ea_tensor *x) {
    int D = a->cfg.dim, H = a->cfg.n_heads, dh = a->head_dim, n = x->shape[1], it;
    int m = a->cfg.opt.landmarks ? a->cfg.opt.landmarks : (n < 8 ? n : 8);
    float sc = 1.0f / sqrtf(sqrtf((float)dh));
    ea_tensor *qkv, *q, *k, *v, *ql, *kl, *f, *A, *b, *z;
    if (m > n)
        return ea__fail(ctx, EA_ERR_CONFIG, "attention 'nystrom': %d landmarks for %d tokens; expected landmarks <= n",
                        m, n);
    qkv = ea_linear(ctx, x, a->w[0], a->w[1]);
    q = ea_heads_split(ctx, qkv, 0, H, dh, sc);
    k = ea_heads_split(ctx, qkv, D, H, dh, sc);
    v = ea_heads_split(ctx, qkv, 2 * D, H, dh, 1.0f);
    ql = ea_segment_mean(ctx, q, m);
    kl = ea_segment_mean(ctx, k, m);
    f = ea_softmax(ctx, ea_matmul_t(ctx, q, 0, kl, 1));
    A = ea_softmax(ctx, ea_matmul_t(ctx, ql, 0, kl, 1));
    b = ea_softmax(ctx, ea_matmul_t(ctx, ql, 0, k, 1));
    z = ea_pinv_init(ctx, A);
    for (it = 0; it < ea__opt(a->cfg.opt.pinv_iters, 6); it++) {
        ea_tensor *az = ea_matmul(ctx, A, z), *t;
        t = ea_matmul(ctx, az, ea_eye_affine(ctx, az, -1.0f, 7.0f));
        t = ea_matmul(ctx, az, ea_eye_affine(ctx, t, -1.0f, 15.0f));
        z = ea_eye_affine(ctx, ea_matmul(ctx, z, ea_eye_affine(ctx, t, -1.0f, 13.0f)), 0.25f, 0.0f);
    }
    {
        ea_tensor *o = ea_matmul(ctx, ea_matmul(ctx, f, z), ea_matmul(ctx, b, v));
        float *w = o && ctx->probe ? ea__probe_slot(ctx, H, n, n) : NULL;
        if (w) { /* implied weights of batch entry 0: F·A⁺·B (the conv skip on V is not a weighting) */
            float *t = ea__floats(ctx, (size_t)m * n);
            int h;
            for (h = 0; t && h < H; h++) {
                ea_gemm(m, n, m, z->data + (size_t)h * m * m, m, 1, b->data + (size_t)h * m * n, n, 1, t, n, 0);
                ea_gemm(n, n, m, f->data + (size_t)h * n * m, m, 1, t, n, 1, w + (size_t)h * n * n, n, 0);
            }
        }
        if (a->cfg.opt.conv_kernel) o = ea_add(ctx, o, ea_seq_conv(ctx, v, a->w[4])); /* the skip on V */
        return ea__project_out(ctx, a, ea_heads_merge(ctx, o, H));
    }
}

static double ea__nystrom_flops(const ea_attn *a, int n) {
    double m = a->cfg.opt.landmarks ? a->cfg.opt.landmarks : (n < 8 ? n : 8), H = a->cfg.n_heads;
    double it = ea__opt(a->cfg.opt.pinv_iters, 6);
    return ea__proj_flops(a, n) + 8.0 * n * m * a->cfg.dim + 2.0 * n * m * m * H + 8.0 * it * m * m * m * H;
}

/* --- 8.22 hybrid: dilated local detail + global linear context (seed 002) --
   The same Q, K, V feed a dilated window (8.4) and linear attention (8.5);
   a learned per-channel gate mixes them:
       y = σ(α) ∘ dilated(Q, K, V) + (1 - σ(α)) ∘ linear(Q, K, V),
   α (w[4], [dim]) starts at 0: an even mix, as seed 004's 0.5 / 0.5.
   Time O(n·w·dim + n·dh·dim), memory O(n·w).  Options: window (4),
   dilation (2), relu. */
static ea_status ea__hybrid_build(ea_attn *a, ea_params *ps, const char *prefix, ea_error *err) {
    ea_status st;
    char name[EA_NAME_LEN];
    int shape[1];
    if ((st = ea__check_opts(a, 0, err)) != EA_OK || (st = ea__qkv_build(a, ps, prefix, err)) != EA_OK) return st;
    shape[0] = a->cfg.dim;
    snprintf(name, sizeof name, "%s.gate", prefix);
    a->w[4] = ea_param(ps, name, 1, shape, EA_INIT_ZEROS, 0.0f);
    return EA_OK;
}

static ea_tensor *ea__hybrid_forward(ea_ctx *ctx, const ea_attn *a, ea_tensor *x) {
    ea_tensor *qkv = ea_linear(ctx, x, a->w[0], a->w[1]), *dil, *lin;
    int K, *idx = ea__pattern_index(ctx, a, x->shape[1], 0, &K), before = ctx->probe ? ctx->probe->count : 0;
    if (!idx) return NULL;
    dil = ea__gather_attention(ctx, qkv, a->cfg.n_heads, a->head_dim, idx, K, 0);
    lin = ea__linear_path(ctx, a, qkv);
    if (lin && ctx->probe && ctx->probe->count == before + 2) {
        /* the two paths' weights, mixed by each head's mean gate σ(alpha) */
        ea_attn_probe *pr = ctx->probe;
        float *wd = pr->buf + pr->layer[before].off, *wl = pr->buf + pr->layer[before + 1].off;
        int H = a->cfg.n_heads, dh = a->head_dim, h, c;
        size_t per = (size_t)pr->layer[before].nq * pr->layer[before].nk, i;
        for (h = 0; h < H; h++) {
            float g = 0.0f;
            for (c = 0; c < dh; c++) g += 1.0f / (1.0f + expf(-a->w[4]->data[h * dh + c]));
            g /= (float)dh;
            for (i = 0; i < per; i++) wd[h * per + i] = g * wd[h * per + i] + (1.0f - g) * wl[h * per + i];
        }
        pr->count--;
        pr->used = pr->layer[before + 1].off;
    }
    return ea__project_out(ctx, a, ea_gate_mix(ctx, dil, lin, a->w[4]));
}

static double ea__hybrid_flops(const ea_attn *a, int n) {
    return ea__proj_flops(a, n) + 4.0 * n * (2.0 * ea__opt(a->cfg.opt.window, 4) + 1.0) * a->cfg.dim +
           4.0 * n * (double)a->head_dim * a->cfg.dim;
}

EA_API void ea_attn_redraw(ea_attn *a, int draw) {
    if (a) a->draw = draw;
}

/* --- 8.24 Streaming state: K/V cache and the decode kernel ----------------
   Autoregressive use feeds tokens a few at a time.  Exact causal attention
   then needs every earlier token's keys and values: a cache of
   2·Hkv·dh floats per token and layer (mha 2·dim; mqa 2·dh; MLA less,
   8.25), and each new token costs O(cached·dim).  ea_attn_step appends the
   new tokens' entries, then attends each new query over the cache with
   the kernel below; the result equals one causal call over the whole
   sequence (tested).  Entries keep their token position, so a policy may
   drop some (h2o, 8.26) and the kernel still knows what each query sees.

   The decode kernel, for one query and one (sequence, head):
       o = Σ_j p_j v_j,   p = softmax_j(scale · q·k_j - bias_j) over the
   entries with position <= maxpos (all len entries when pos is NULL); p
   receives the weights (h2o accumulates them).  bias (ALiBi over time,
   8.7b; NULL: none) is slope·|t_q - t_j| from the entries' positions.  A
   query touches each entry twice with vector dots and axpys: for one or a
   few queries (decoding) this beats the tiled kernel, whose GEMM calls
   would each serve a single row. */
typedef struct ea__step_bias { float slope; int qpos, frame; } ea__step_bias;

static void ea__cache_attend(float *o, float *p, const float *q, const float *k, ptrdiff_t ldk, int kd,
                             const float *v, ptrdiff_t ldv, int dv, const int *pos, int len, int maxpos,
                             float scale, const ea__step_bias *bias) {
    float mx = -INFINITY, sum = 0.0f, inv, slope = bias ? bias->slope : 0.0f;
    int j, n = 0, frame = bias ? bias->frame : 1, qt = bias ? bias->qpos / frame : 0;
    for (j = 0; j < len; j++) { /* visible entries first, compacted: p[n], idx in the sign-free tail */
        float x;
        if (pos && pos[j] > maxpos) continue;
        x = scale * ea__dot(q, k + (size_t)j * ldk, kd);
        if (bias) { /* in locals: a store to p[n] could have changed *bias, as far as the compiler knew */
            int d = qt - pos[j] / frame;
            x -= slope * (float)(d < 0 ? -d : d);
        }
        p[n++] = x;
        if (x > mx) mx = x;
    }
    sum = n ? ea__row_exp(p, p, n, mx) : 0.0f;
    inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    memset(o, 0, (size_t)dv * sizeof(float));
    for (j = len - 1, n = n - 1; j >= 0; j--) { /* back to entry order, weights in place */
        float w;
        if (pos && pos[j] > maxpos) { p[j] = 0.0f; continue; }
        w = p[n--] * inv;
        p[j] = w;
        ea__axpy(o, w, v + (size_t)j * ldv, dv);
    }
}

#define EA_DECODE_ROWS 2 /* t x query heads up to which ea__cache_flash goes a query at a time */

/* ea__cache_attend's weights for a call's t queries of one head at once
   (rows ldq apart; query i sees the entries with position <= maxpos + i
   when causal, maxpos + t - 1 if not), EA_CACHE_BLOCK queries at a time:
   their scores as one GEMM into P (up to EA_CACHE_BLOCK x len, K = dh),
   each row's softmax over what it sees (the rest 0), then o = P·V as
   another GEMM (rows ldo apart).  score (h2o; NULL: none) gains every
   row's weights in query order, as a query at a time adds them.  The
   streaming tracker's h2o (t = 64 queries of dh = 8, about 320 entries)
   had spent 85% of a frame in the query-at-a-time dots, which at dh = 8
   are narrower than a vector and ran scalar. */
#define EA_CACHE_BLOCK 64
static void ea__cache_block(float *o, ptrdiff_t ldo, float *P, const float *q, ptrdiff_t ldq, const float *k,
                            const float *v, int dh, const int *pos, int len, int t, int maxpos, int causal,
                            float scale, const ea__step_bias *bias, float *score) {
    int i0, i, j;
    for (i0 = 0; i0 < t; i0 += EA_CACHE_BLOCK) {
        int rb = t - i0 < EA_CACHE_BLOCK ? t - i0 : EA_CACHE_BLOCK;
        ea_gemm(rb, len, dh, q + (ptrdiff_t)i0 * ldq, ldq, 1, k, 1, dh, P, len, 0);
        for (i = 0; i < rb; i++) {
            float *p = P + (size_t)i * len, mx = -INFINITY, sum, inv;
            int last = maxpos + (causal ? i0 + i : t - 1), qt = bias ? (bias->qpos + i0 + i) / bias->frame : 0;
            for (j = 0; j < len; j++) {
                float x = scale * p[j];
                if (pos[j] > last) x = -INFINITY; /* not yet seen: weight 0 */
                else if (bias) {
                    int d = qt - pos[j] / bias->frame;
                    x -= bias->slope * (float)(d < 0 ? -d : d);
                }
                p[j] = x;
                if (x > mx) mx = x;
            }
            sum = mx > -INFINITY ? ea__row_exp(p, p, len, mx) : 0.0f; /* -inf gives exactly 0 */
            inv = sum > 0.0f ? 1.0f / sum : 0.0f;
            ea__scal(p, inv, p, len);
            if (score) ea__add_n(score, score, p, (size_t)len);
        }
        ea_gemm(rb, dh, len, P, len, 1, v, dh, 1, o + (ptrdiff_t)i0 * ldo, ldo, 0);
    }
}

/* The fast form for a call's t queries (Hq heads of dh, rows ldq apart)
   against one K/V head's entries (rows ldkv apart): the `old` entries
   before the call, all visible, and the call's own t after them, visible
   up to the query when causal.  Two flash passes (8.2: GEMM tiles, no
   score matrix) merged by their log-sum-exps L1, L2:
       o = (e^L1 o1 + e^L2 o2) / (e^L1 + e^L2).
   In the first, every query of the group sees the same entries, so the
   t·Hq queries go in as the rows of one head: each tile of the cache is
   read once for all of them (mqa, gqa and mla decode reuse it Hq times).
   dv = dh; o rows ldo apart.  0 when the arena is out of memory. */
static int ea__cache_flash(ea_ctx *ctx, float *o, ptrdiff_t ldo, const float *q, ptrdiff_t ldq, const float *k,
                           const float *v, ptrdiff_t ldkv, int old, int t, int Hq, int dh, int causal, float scale) {
    ea_sdpa_shape s, s2;
    float *o1, *l1, *l2, *scr, *qs;
    size_t per;
    int h, i, d;
    if (t * Hq <= EA_DECODE_ROWS) { /* decoding: a query at a time (see ea__cache_attend) */
        float *p = ea__floats(ctx, (size_t)old + t);
        if (!p) return 0;
        for (i = 0; i < t; i++)
            for (h = 0; h < Hq; h++)
                ea__cache_attend(o + (size_t)i * ldo + (size_t)h * dh, p, q + (size_t)i * ldq + (size_t)h * dh, k, ldkv,
                                 dh, v, ldkv, dh, NULL, old + (causal ? i + 1 : t), 0, scale, NULL);
        return 1;
    }
    memset(&s, 0, sizeof s);
    s.B = 1; s.H = Hq; s.Hkv = 1; s.dh = dh; s.scale = scale; s.ldq = ldq; s.ldk = s.ldv = ldkv;
    s.nq = s.nk = t; s.causal = causal; s.ldo = ldo; /* the call's own entries */
    s2 = s;
    s2.nq = t * Hq; s2.nk = old; s2.causal = 0; s2.H = 1; s2.ldq = s2.ldo = dh; /* everything cached before */
    /* a scratch for both passes' shapes: a share's size depends on the
       whole shape (ea__fa_kv_floats), not on dh alone */
    per = ea__fa_scratch_floats(&s);
    if (old && ea__fa_scratch_floats(&s2) > per) per = ea__fa_scratch_floats(&s2);
    scr = ea__floats(ctx, per);
    l1 = ea__floats(ctx, (size_t)Hq * t);
    l2 = ea__floats(ctx, (size_t)Hq * t);
    o1 = ea__floats(ctx, (size_t)t * Hq * dh);
    qs = ea__floats(ctx, (size_t)t * Hq * dh);
    if (!scr || !l1 || !l2 || !o1 || !qs) return 0;
    ea_sdpa_flash_fwd(o, l2, scr, q, k + (size_t)old * ldkv, v + (size_t)old * ldkv, &s, NULL, NULL);
    if (!old) return 1;
    for (i = 0; i < t; i++) /* row i·Hq + h: query i of head h */
        memcpy(qs + (size_t)i * Hq * dh, q + (size_t)i * ldq, (size_t)Hq * dh * sizeof(float));
    ea_sdpa_flash_fwd(o1, l1, scr, qs, k, v, &s2, NULL, NULL);
    for (h = 0; h < Hq; h++)
        for (i = 0; i < t; i++) {
            float a = l1[i * Hq + h], b = l2[h * t + i], m = a > b ? a : b, w1 = expf(a - m), w2 = expf(b - m), z = w1 + w2;
            float *orow = o + (size_t)i * ldo + (size_t)h * dh;
            const float *r1 = o1 + (size_t)i * Hq * dh + (size_t)h * dh;
            for (d = 0; d < dh; d++) orow[d] = (w1 * r1[d] + w2 * orow[d]) / z;
        }
    return 1;
}

/* The step's common checks; returns t, or 0 after setting ctx's error. */
static int ea__step_check(ea_ctx *ctx, const ea_attn *a, const ea_attn_state *st, const ea_tensor *x) {
    char s1[48];
    if (!ea__ok(ctx, x, x) || !a || !st) return 0;
    if (x->ndim != 3 || x->shape[0] != st->B || x->shape[2] != a->cfg.dim || x->shape[1] > st->max_chunk) {
        ea__fail(ctx, EA_ERR_SHAPE, "attn_step '%s': x %s; expected [%d, 1..%d, %d] (the state's batch and chunk)",
                 a->variant->name, ea__shape_str(x, s1, sizeof s1), st->B, st->max_chunk, a->cfg.dim);
        return 0;
    }
    return x->shape[1];
}

/* Room for t more entries: the K/V rows refuse to overflow (an eviction
   policy is h2o's job, and silently dropping would change the answer). */
static int ea__step_room(ea_ctx *ctx, const ea_attn *a, const ea_attn_state *st, int t) {
    if (st->len + t <= st->cap) return 1;
    ea__fail(ctx, EA_ERR_CONFIG,
             "attn_step '%s': %d cached + %d new tokens exceed the cache of %d; expected a larger max_tokens "
             "(or h2o with a budget)",
             a->variant->name, st->len, t, st->cap);
    return 0;
}

/* The query, key and value columns of x's projection, for the merged (mha)
   and separate (gqa family) layouts: q at (*q, qc), k at (*k, kc), v at (*v, vc). */
static int ea__kv_project(ea_ctx *ctx, const ea_attn *a, ea_tensor *x, ea_tensor **q, int *qc, ea_tensor **k, int *kc,
                          ea_tensor **v, int *vc) {
    int D = a->cfg.dim;
    if (a->w[4] && a->w[6]) { /* gqa, mqa, mha-sep: slots 0/1, 4/5, 6/7 */
        *q = ea_linear(ctx, x, a->w[0], a->w[1]);
        *k = ea_linear(ctx, x, a->w[4], a->w[5]);
        *v = ea_linear(ctx, x, a->w[6], a->w[7]);
        *qc = *kc = *vc = 0;
    } else {
        *q = *k = *v = ea_linear(ctx, x, a->w[0], a->w[1]);
        *qc = 0; *kc = D; *vc = 2 * D;
    }
    return *q && *k && *v;
}

static void ea__h2o_evict(ea_attn_state *st, const ea_attn_opts *o, int *keep, float *rank);

/* A sliding-window cache (opt.cache_window = W): after a call only the W
   latest entries of each (sequence, head) stay, so the memory is flat and
   every query sees at most W earlier tokens, as local causal attention
   does.  Entries keep their positions (time stays true). */
static void ea__cache_keep_latest(ea_attn_state *st, int W) {
    int cell, drop = st->len - W, cells = st->B * st->heads;
    if (W <= 0 || drop <= 0) return;
    for (cell = 0; cell < cells; cell++) {
        size_t base = (size_t)cell * st->cap;
        memmove(st->k + base * st->kdim, st->k + (base + drop) * st->kdim, (size_t)W * st->kdim * sizeof(float));
        if (st->vdim)
            memmove(st->v + base * st->vdim, st->v + (base + drop) * st->vdim, (size_t)W * st->vdim * sizeof(float));
        memmove(st->pos + base, st->pos + base + drop, (size_t)W * sizeof(int));
        if (st->score) memmove(st->score + base, st->score + base + drop, (size_t)W * sizeof(float));
    }
    st->len = W;
}

/* K/V rows (mha, mha-sep, mqa, gqa, single, h2o): append, attend, (evict).
   With time (8.7b): rope turns the call's queries and keys by their steps
   before the keys enter the cache; alibi, like h2o (which needs the
   weights), takes ea__cache_block or, decoding, the query-at-a-time
   kernel, both of which bias by each entry's stored position. */
static ea_tensor *ea__kv_step(ea_ctx *ctx, const ea_attn *a, ea_attn_state *st, ea_tensor *x) {
    int t = ea__step_check(ctx, a, st, x), H = a->cfg.n_heads, Hkv = st->heads, dh = a->head_dim;
    int qc, kc, vc, b, h, i, len, F = ea__opt(a->cfg.opt.frame, 1), alibi = a->cfg.opt.time == EA_TIME_ALIBI;
    ea_tensor *q, *k, *v, *o;
    float *p, *P = NULL, *slope = NULL;
    if (!t || !ea__step_room(ctx, a, st, t) || !ea__kv_project(ctx, a, x, &q, &qc, &k, &kc, &v, &vc)) return NULL;
    o = ea_tensor_3d(ctx, st->B, t, H * dh, 0);
    p = ea__floats(ctx, (size_t)st->cap);
    if (alibi && (slope = ea__floats(ctx, (size_t)H)) != NULL) ea_flex_alibi_slopes(slope, H);
    if ((st->score || alibi) && t > EA_DECODE_ROWS &&
        !(P = ea__floats(ctx, (size_t)(t < EA_CACHE_BLOCK ? t : EA_CACHE_BLOCK) * (st->len + t))))
        return NULL;
    if (!o || !p || (alibi && !slope)) return NULL;
    if (a->cfg.opt.time == EA_TIME_ROPE) { /* the step's own arena copies: turned in place */
        ea__rope_rows(q->data, (size_t)st->B * t, t, q->shape[2], qc, H, dh, dh, st->seen, F, 1.0);
        ea__rope_rows(k->data, (size_t)st->B * t, t, k->shape[2], kc, Hkv, dh, dh, st->seen, F, 1.0);
    }
    len = st->len + t;
    for (b = 0; b < st->B; b++)
        for (h = 0; h < Hkv; h++) { /* append the call's keys and values */
            size_t cell = ((size_t)b * Hkv + h) * st->cap;
            for (i = 0; i < t; i++) {
                size_t row = (size_t)b * t + i, e = cell + st->len + i;
                memcpy(st->k + e * dh, k->data + row * k->shape[2] + kc + (size_t)h * dh, (size_t)dh * sizeof(float));
                memcpy(st->v + e * dh, v->data + row * v->shape[2] + vc + (size_t)h * dh, (size_t)dh * sizeof(float));
                st->pos[e] = st->seen + i;
                if (st->score) st->score[e] = 0.0f;
            }
        }
    for (b = 0; !st->score && !alibi && b < st->B; b++) /* exact rows: GEMM tiles per K/V head and its query group */
        for (h = 0; h < Hkv; h++) {
            size_t cell = ((size_t)b * Hkv + h) * st->cap;
            int grp = H / Hkv;
            if (!ea__cache_flash(ctx, o->data + (size_t)b * t * H * dh + (size_t)h * grp * dh, (ptrdiff_t)H * dh,
                                 q->data + (size_t)b * t * q->shape[2] + qc + (size_t)h * grp * dh, q->shape[2],
                                 st->k + cell * dh, st->v + cell * dh, dh, st->len, t, grp, dh, a->cfg.causal,
                                 1.0f / sqrtf((float)dh)))
                return NULL;
        }
    for (b = 0; (st->score || alibi) && b < st->B; b++) /* h2o needs the weights themselves */
        for (h = 0; h < H; h++) {
            size_t cell = ((size_t)b * Hkv + h / (H / Hkv)) * st->cap;
            if (t > EA_DECODE_ROWS) { /* the call's queries of head h at once */
                ea__step_bias bias;
                bias.slope = alibi ? slope[h] : 0.0f;
                bias.qpos = st->seen;
                bias.frame = F;
                ea__cache_block(o->data + (size_t)b * t * H * dh + (size_t)h * dh, (ptrdiff_t)H * dh, P,
                                q->data + (size_t)b * t * q->shape[2] + qc + (size_t)h * dh, q->shape[2], st->k + cell * dh,
                                st->v + cell * dh, dh, st->pos + cell, len, t, st->seen, a->cfg.causal,
                                1.0f / sqrtf((float)dh), alibi ? &bias : NULL, st->score ? st->score + cell : NULL);
                continue;
            }
            for (i = 0; i < t; i++) { /* decoding: a query at a time */
                size_t row = (size_t)b * t + i;
                int j, maxpos = st->seen + (a->cfg.causal ? i : t - 1);
                ea__step_bias bias;
                bias.slope = alibi ? slope[h] : 0.0f;
                bias.qpos = st->seen + i;
                bias.frame = F;
                ea__cache_attend(o->data + row * H * dh + (size_t)h * dh, p,
                                 q->data + row * q->shape[2] + qc + (size_t)h * dh, st->k + cell * dh, dh, dh,
                                 st->v + cell * dh, dh, dh, st->pos + cell, len, maxpos, 1.0f / sqrtf((float)dh),
                                 alibi ? &bias : NULL);
                for (j = 0; st->score && j < len; j++) st->score[cell + j] += p[j];
            }
        }
    st->len = len;
    st->seen += t;
    if (!st->score) ea__cache_keep_latest(st, a->cfg.opt.cache_window); /* h2o: its eviction knows the window */
    if (st->score) {
        int *keep = (int *)ea_ctx_alloc(ctx, 2 * (size_t)st->cap * sizeof(int)); /* and the heap */
        float *rank = ea__floats(ctx, (size_t)st->cap);
        if (!keep || !rank) return NULL;
        ea__h2o_evict(st, &a->cfg.opt, keep, rank);
    }
    return ea_linear(ctx, o, a->w[2], a->w[3]);
}

static double ea__kv_cache_floats(const ea_attn *a) { return 2.0 * a->kv_heads * a->head_dim; }

/* --- 8.25 mla: Multi-head Latent Attention (DeepSeek-AI 2024, DeepSeek-V2;
   also V3) ------------------------------------------------------------------
   Keys and values pass through one low-rank latent c per token; position
   enters through a separate rotary part shared by all heads, because RoPE
   applied to up-projected keys would block the trick below:
       c_q = x W_dq,            [q_h^C, q_h^R] = c_q W_uq   (dn + dr columns a head)
       [c, k^R] = x W_dkv,      c: dc columns, k^R: dr, one for all heads
       [k_h^C ; v_h] = c W_ukv  (dn key and dv value columns a head)
       q_h = [q_h^C, RoPE(q_h^R)],  k_h = [k_h^C, RoPE(k^R)]
       o_h = softmax(q_h·k_hᵀ / √(dn + dr)) v_h,   y = [o_1 .. o_H] W_o + b_o.
   Only c and RoPE(k^R) are cached: dc + dr floats per token and layer,
   against mha's 2·dim (a test checks the state's size).  Decoding never
   rebuilds K or V: q_h^C·k_h^C = (W_uk,hᵀ q_h^C)·c, so a query is moved into
   latent space once (dc columns), scores cost (dc + dr) per cached token
   and head, and o_h = W_uv,h (Σ_j p_j c_j) + b_uv,h (the key bias adds one
   constant per query, which softmax ignores).
   Here dv = dn + dr = head_dim, so the exact-attention kernel (8.2) serves
   training unchanged; DeepSeek's RMSNorm on the latents is left out (the
   pre-norm block normalises x).  Options: latent dc (dim/4), q_latent
   (dim/2), rope_dim dr (head_dim/2, even).  Time per sequence
   2·n·dim·(dq + dc + dr) + 2·n·dq·dim + 2·n·dc·(dim + H·dn) + 4·n²·dim +
   2·n·dim², memory O(n) through the flash kernel.
   Slots: w[0..1] q_down, w[2..3] proj, w[4..5] q_up, w[6..7] kv_down, w[8..9] kv_up. */
static ea_status ea__mla_build(ea_attn *a, ea_params *ps, const char *prefix, ea_error *err) {
    ea_status st;
    int D = a->cfg.dim, H, dh, dc, dq, dr;
    if ((st = ea__check_opts(a, 1, err)) != EA_OK || (st = ea__check_heads(a, err)) != EA_OK) return st;
    H = a->cfg.n_heads;
    dh = D / H;
    dc = ea__opt(a->cfg.opt.latent, D / 4 > 0 ? D / 4 : 1);
    dq = ea__opt(a->cfg.opt.q_latent, D / 2 > 0 ? D / 2 : 1);
    dr = a->cfg.opt.rope_dim ? a->cfg.opt.rope_dim : dh / 2 / 2 * 2;
    if (dr % 2 || dr > dh || dc > 65536 || dq > 65536)
        return ea_error_set(err, EA_ERR_CONFIG,
                            "attention '%s': rope_dim = %d must be even and at most head_dim = %d; latent %d and "
                            "q_latent %d at most 65536",
                            a->variant->name, dr, dh, dc, dq);
    a->head_dim = dh;
    a->kv_heads = H;
    a->rope_dim = dr;
    ea__linear_params(ps, prefix, "q_down", dq, D, &a->w[0], &a->w[1]);
    ea__linear_params(ps, prefix, "q_up", H * dh, dq, &a->w[4], &a->w[5]);
    ea__linear_params(ps, prefix, "kv_down", dc + dr, D, &a->w[6], &a->w[7]);
    ea__linear_params(ps, prefix, "kv_up", H * (dh - dr) + H * dh, dc, &a->w[8], &a->w[9]);
    ea__linear_params(ps, prefix, "proj", D, H * dh, &a->w[2], &a->w[3]);
    return EA_OK;
}

static int ea__mla_latent(const ea_attn *a) { return a->w[6]->shape[0] - a->rope_dim; }

/* Queries [B, n, H·dh] with RoPE on each head's last dr columns, and the
   latent + rotary key [B, n, dc + dr] with RoPE on its last dr; pos0 is the
   first token's position. */
static int ea__mla_project(ea_ctx *ctx, const ea_attn *a, ea_tensor *x, int pos0, ea_tensor **q, ea_tensor **ckr) {
    int H = a->cfg.n_heads, dh = a->head_dim, dr = a->rope_dim, dc = ea__mla_latent(a);
    ea_tensor *cq = ea_linear(ctx, x, a->w[0], a->w[1]);
    int F = ea__opt(a->cfg.opt.frame, 1);
    *q = ea_rope_at(ctx, ea_linear(ctx, cq, a->w[4], a->w[5]), dh - dr, H, dh, dr, pos0, F);
    *ckr = ea_rope_at(ctx, ea_linear(ctx, x, a->w[6], a->w[7]), dc, 1, dc + dr, dr, pos0, F);
    return *q && *ckr;
}

static ea_tensor *ea__mla_forward(ea_ctx *ctx, const ea_attn *a, ea_tensor *x) {
    int H = a->cfg.n_heads, dh = a->head_dim, dr = a->rope_dim, dn = dh - dr, dc = ea__mla_latent(a);
    ea_tensor *q, *ckr, *kv, *k;
    if (!ea__mla_project(ctx, a, x, 0, &q, &ckr)) return NULL;
    kv = ea_linear(ctx, ckr->shape[2] == dc ? ckr : ea_heads_split(ctx, ckr, 0, 1, dc, 1.0f), a->w[8], a->w[9]);
    k = ea_concat_heads(ctx, kv, 0, dn, ckr, dc, dr, H, 1); /* [k_h^C, RoPE(k^R)] */
    return ea_linear(ctx, ea__time_sdpa_masked(ctx, a, q, 0, k, 0, kv, H * dn), a->w[2], a->w[3]);
}

/* Decode with the latent cache: one entry [c, RoPE(k^R)] per token.  Each
   query moves into latent space (qa = [W_uk,hᵀ q_h^C, q_h^R], dc + dr
   columns) and attends over the entries with the entries themselves as
   values (their first dc columns give the latent average), which W_uv,h
   then lifts: two GEMM-tiled passes as for the K/V rows. */
static ea_tensor *ea__mla_step(ea_ctx *ctx, const ea_attn *a, ea_attn_state *st, ea_tensor *x) {
    int t = ea__step_check(ctx, a, st, x), H = a->cfg.n_heads, dh = a->head_dim, dr = a->rope_dim, dn = dh - dr;
    int dc, kd = st->kdim, b, h, i, r;
    const float *wkv, *bkv;
    ea_tensor *q, *ckr, *o;
    float *qa, *lat;
    if (!t || !ea__step_room(ctx, a, st, t) || !ea__mla_project(ctx, a, x, st->seen, &q, &ckr)) return NULL;
    dc = ea__mla_latent(a);
    wkv = a->w[8]->data;
    bkv = a->w[9]->data;
    o = ea_tensor_3d(ctx, st->B, t, H * dh, 0);
    qa = ea__floats(ctx, (size_t)t * H * kd);
    lat = ea__floats(ctx, (size_t)t * H * kd);
    if (!o || !qa || !lat) return NULL;
    for (b = 0; b < st->B; b++) {
        float *cache = st->k + (size_t)b * st->cap * kd;
        for (i = 0; i < t; i++) { /* append [c, RoPE(k^R)] */
            memcpy(cache + (size_t)(st->len + i) * kd, ckr->data + ((size_t)b * t + i) * kd, (size_t)kd * sizeof(float));
            st->pos[(size_t)b * st->cap + st->len + i] = st->seen + i;
        }
        for (i = 0; i < t; i++)
            for (h = 0; h < H; h++) {
                const float *qh = q->data + ((size_t)b * t + i) * H * dh + (size_t)h * dh;
                float *qah = qa + ((size_t)i * H + h) * kd;
                memset(qah, 0, (size_t)dc * sizeof(float)); /* W_uk,hᵀ q_h^C */
                for (r = 0; r < dn; r++) ea__axpy(qah, qh[r], wkv + (size_t)(h * dn + r) * dc, dc);
                memcpy(qah + dc, qh + dn, (size_t)dr * sizeof(float));
            }
        if (!ea__cache_flash(ctx, lat, (ptrdiff_t)H * kd, qa, (ptrdiff_t)H * kd, cache, cache, kd, st->len, t, H, kd,
                             a->cfg.causal, 1.0f / sqrtf((float)dh)))
            return NULL;
        for (i = 0; i < t; i++)
            for (h = 0; h < H; h++) { /* v_h = W_uv,h · latent + b_uv,h */
                const float *lh = lat + ((size_t)i * H + h) * kd;
                float *oh = o->data + ((size_t)b * t + i) * H * dh + (size_t)h * dh;
                for (r = 0; r < dh; r++) {
                    size_t wr = (size_t)H * dn + (size_t)h * dh + r;
                    oh[r] = ea__dot(wkv + wr * dc, lh, dc) + bkv[wr];
                }
            }
    }
    st->len += t;
    st->seen += t;
    ea__cache_keep_latest(st, a->cfg.opt.cache_window);
    return ea_linear(ctx, o, a->w[2], a->w[3]);
}

static double ea__mla_flops(const ea_attn *a, int n) {
    double D = a->cfg.dim, H = a->cfg.n_heads, dh = a->head_dim, dr = a->rope_dim, dc = ea__mla_latent(a);
    double dq = a->w[0]->shape[0];
    return 2.0 * n * D * (dq + dc + dr) + 2.0 * n * dq * H * dh + 2.0 * n * dc * H * (2.0 * dh - dr) +
           4.0 * (double)n * n * H * dh + 2.0 * n * D * H * dh;
}

static double ea__mla_cache_floats(const ea_attn *a) { return (double)ea__mla_latent(a) + a->rope_dim; }

/* --- 8.26 h2o: Heavy-Hitter Oracle KV-cache eviction (Zhang et al. 2023,
   "H2O"; seed 001's KV compression) ------------------------------------------
   A few cached tokens collect most of the attention.  After each call the
   cache of every (sequence, K/V head) keeps `budget` entries:
       the first `sinks` tokens (attention sinks), the `recent` latest ones,
       and the rest of the budget from the middle by the attention each
       entry has received, summed over every query and head of its group
       since it entered the cache (ties: the older entry); with
       opt.average, that sum divided by the tokens that came after it
       (seed 001's rule: the sum favours old entries, which have been
       looked at longer);
   the others are dropped for good.  With a cache window W (8.24) the
   horizon moves: entries older than the W latest tokens go first (the
   oldest first), the stream's first tokens are no sinks unless opt.sinks
   says so, and a budget above W is W.  A model with relative time (8.7b)
   then only ever sees distances it was trained on.  Budget: opt.budget entries, or
   opt.ratio percent (75 by default, seed 001's compression_ratio) of the
   tokens seen so far.  Cost per call O(t·budget·dim) and O(budget) memory
   per head with a fixed budget: flat over an endless stream.
   Training and whole-sequence forward run exact attention (8.8, causal
   when configured): the policy only exists across calls, and its gradient
   would be exact attention's on the kept keys.  With budget >= the
   tokens seen, nothing is evicted and the step equals exact attention. */
static int ea__h2o_budget(const ea_attn_state *st, const ea_attn_opts *o) {
    if (st->budget) return st->budget;
    return (int)(((long long)st->seen * ea__opt(o->ratio, 75) + 99) / 100);
}

/* keep: 2·cap ints (the flags, then the heap); rank: cap floats. */
static void ea__h2o_evict(ea_attn_state *st, const ea_attn_opts *o, int *keep, float *rank) {
    int budget = ea__h2o_budget(st, o), sinks, recent, cell, j, n, kd = st->kdim, cells = st->B * st->heads;
    int *heap = keep + st->cap;
    int W = o->cache_window, horizon = st->seen - o->cache_window;
    if (W && W < budget) budget = W; /* the window's latest W tokens: all of them */
    if (budget < 1) budget = 1;
    if (st->len <= budget) return;
    sinks = o->sinks ? o->sinks : W ? 0 : (budget / 4 < 4 ? budget / 4 : 4); /* a window drops the stream's first tokens */
    recent = o->recent ? o->recent : (budget / 4 < 32 ? budget / 4 : 32);
    if (sinks > budget) sinks = budget;
    if (recent > budget - sinks) recent = budget - sinks;
    for (cell = 0; cell < cells; cell++) {
        size_t base = (size_t)cell * st->cap;
        float *sc = st->score + base;
        int heavy = budget - sinks - recent, mid_end = st->len - recent, m, j0;
        for (j = 0; j < st->len; j++) keep[j] = j < sinks || j >= mid_end;
        /* the `heavy` heaviest of the middle, among equals the older entry:
           top-k's heap (ea__topk_heap, O(len log heavy)).  It had been a
           qsort of the middle, O(len log len) a call to drop one token: 44%
           of a decode step at 16,384 tokens seen (budget 4,096; perf, one
           core of the Xeon of model 167); the same entries are kept, the
           ranking being the same strict order. */
        for (j = sinks; j < mid_end; j++) {
            int later = st->seen - st->pos[base + j]; /* tokens that could attend to entry j (>= 1) */
            rank[j] = o->average && later > 0 ? sc[j] / (float)later : sc[j];
            if (W && st->pos[base + j] < horizon) rank[j] = (float)(st->pos[base + j] - horizon); /* < 0: first out, oldest first */
        }
        m = ea__topk_heap(heap, heavy, rank, sinks, mid_end);
        for (j = 0; j < m; j++) keep[heap[j]] = 1;
        /* compact in place, in position order, a run of kept entries at a time */
        for (j = 0, n = 0; j < st->len;) {
            if (!keep[j]) {
                j++;
                continue;
            }
            for (j0 = j; j < st->len && keep[j]; j++) {}
            if (n != j0) {
                memmove(st->k + (base + n) * kd, st->k + (base + j0) * kd, (size_t)(j - j0) * kd * sizeof(float));
                memmove(st->v + (base + n) * st->vdim, st->v + (base + j0) * st->vdim,
                        (size_t)(j - j0) * st->vdim * sizeof(float));
                memmove(st->pos + base + n, st->pos + base + j0, (size_t)(j - j0) * sizeof(int));
                memmove(sc + n, sc + j0, (size_t)(j - j0) * sizeof(float));
            }
            n += j - j0;
        }
    }
    st->len = budget < st->len ? budget : st->len;
}

/* --- 8.27 crossmem: attention to a memory of past tokens (seed 004) -------
   Self-attention over the current tokens, and cross-attention from them
   (queries) to a memory bank (keys, values), fused:
       y = W_o [ r · cross(x W_mq, M W_mk, M W_mv) + (1 - r) · self(x) ] + b_o
   with r fixed (opt.fuse percent, seed 004's fusion_ratio) or σ(α) per
   channel, α learned from 0 (an even mix).  M holds `slots` learned memory
   tokens (persistent memory, trained with the model) and, when streaming,
   a FIFO of the last `memory` tokens' keys and values from earlier calls:
   memory per layer 2·dim·(slots + memory) floats, flat over any stream.
   Time per sequence of n tokens O(n²·dim + n·(slots + memory)·dim).
   Slots: w[0..3] as mha, w[4..5] memory query, w[6..7] memory K/V
   [2·dim, dim], w[8] slots [slots, dim], w[9] gate α [dim] (fuse 0). */
static ea_status ea__crossmem_build(ea_attn *a, ea_params *ps, const char *prefix, ea_error *err) {
    ea_status st;
    char name[EA_NAME_LEN];
    int shape[2], D = a->cfg.dim;
    if ((st = ea__check_opts(a, 1, err)) != EA_OK || (st = ea__qkv_build(a, ps, prefix, err)) != EA_OK) return st;
    if (a->cfg.opt.fuse > 100)
        return ea_error_set(err, EA_ERR_CONFIG, "attention 'crossmem': fuse = %d%%; expected 0 (learned) to 100",
                            a->cfg.opt.fuse);
    ea__linear_params(ps, prefix, "mem_q", D, D, &a->w[4], &a->w[5]);
    ea__linear_params(ps, prefix, "mem_kv", 2 * D, D, &a->w[6], &a->w[7]);
    shape[0] = ea__opt(a->cfg.opt.slots, 8);
    shape[1] = D;
    snprintf(name, sizeof name, "%s.slots", prefix);
    a->w[8] = ea_param(ps, name, 2, shape, EA_INIT_NORMAL, 1.0f);
    if (!a->cfg.opt.fuse) {
        snprintf(name, sizeof name, "%s.gate", prefix);
        a->w[9] = ea_param(ps, name, 1, &shape[1], EA_INIT_ZEROS, 0.0f);
    }
    return EA_OK;
}

static ea_tensor *ea__crossmem_step(ea_ctx *ctx, const ea_attn *a, ea_attn_state *st, ea_tensor *x);

/* y = W_o · fuse(cross, self): the fixed ratio or the learned gate. */
static ea_tensor *ea__crossmem_fuse(ea_ctx *ctx, const ea_attn *a, ea_tensor *cross, ea_tensor *self) {
    ea_tensor *mix;
    if (a->w[9]) mix = ea_gate_mix(ctx, cross, self, a->w[9]);
    else {
        float r = (float)a->cfg.opt.fuse / 100.0f;
        ea_tensor *c = ea_tensor_new(ctx, 1, &a->cfg.dim, 0), *s = ea_tensor_new(ctx, 1, &a->cfg.dim, 0);
        int i;
        if (!c || !s) return NULL;
        for (i = 0; i < a->cfg.dim; i++) { c->data[i] = r; s->data[i] = 1.0f - r; }
        mix = ea_add(ctx, ea_mul(ctx, cross, c), ea_mul(ctx, self, s));
    }
    return ea_linear(ctx, mix, a->w[2], a->w[3]);
}

EA_API ea_tensor *ea_crossmem_forward(ea_ctx *ctx, const ea_attn *a, ea_tensor *x, ea_tensor *mem) {
    int D, H, dh, S, shape[3];
    ea_tensor *qkv, *self, *qm, *kv, *zero;
    char s1[48];
    if (!ea__ok(ctx, x, x)) return NULL;
    if (!a || !a->variant || a->variant->step != ea__crossmem_step)
        return ea__fail(ctx, EA_ERR_ARG, "crossmem_forward: expected a crossmem layer");
    D = a->cfg.dim; H = a->cfg.n_heads; dh = a->head_dim; S = a->w[8]->shape[0];
    if (x->ndim != 3 || x->shape[2] != D || (mem && (mem->ndim != 3 || mem->shape[0] != x->shape[0] || mem->shape[2] != D)))
        return ea__fail(ctx, EA_ERR_SHAPE, "crossmem_forward: x %s and mem: expected [B, n, %d] and [B, M, %d]",
                        ea__shape_str(x, s1, sizeof s1), D, D);
    qkv = ea_linear(ctx, x, a->w[0], a->w[1]);
    if (!qkv) return NULL;
    self = ea_sdpa(ctx, qkv, 0, qkv, D, qkv, 2 * D, H, H, dh, a->cfg.causal);
    qm = ea_linear(ctx, x, a->w[4], a->w[5]);
    shape[0] = x->shape[0]; shape[1] = S; shape[2] = 2 * D;
    zero = ea_tensor_new(ctx, 3, shape, 0); /* the slots' keys and values, for every sequence */
    if (!zero) return NULL;
    memset(zero->data, 0, zero->size * sizeof(float));
    kv = ea_add(ctx, zero, ea_linear(ctx, a->w[8], a->w[6], a->w[7]));
    if (mem) kv = ea_concat_tokens(ctx, kv, ea_linear(ctx, mem, a->w[6], a->w[7])); /* [slots; memory] */
    return ea__crossmem_fuse(ctx, a, ea_sdpa(ctx, qm, 0, kv, 0, kv, D, H, H, dh, 0), self);
}

static ea_tensor *ea__crossmem_forward(ea_ctx *ctx, const ea_attn *a, ea_tensor *x) {
    return ea_crossmem_forward(ctx, a, x, NULL);
}

/* Streaming: the memory is [slots; FIFO of earlier calls' tokens]. */
static ea_tensor *ea__crossmem_step(ea_ctx *ctx, const ea_attn *a, ea_attn_state *st, ea_tensor *x) {
    int t = ea__step_check(ctx, a, st, x), D = a->cfg.dim, H = a->cfg.n_heads, dh = a->head_dim;
    int S = a->w[8]->shape[0], M = st->cap - S, kd = st->kdim, b, h, i, fifo;
    ea_tensor *qkv, *self, *qm, *kvs, *kvx, *cross;
    float *p;
    if (!t) return NULL;
    qkv = ea_linear(ctx, x, a->w[0], a->w[1]);
    self = ea_sdpa(ctx, qkv, 0, qkv, D, qkv, 2 * D, H, H, dh, a->cfg.causal);
    qm = ea_linear(ctx, x, a->w[4], a->w[5]);
    kvs = ea_linear(ctx, a->w[8], a->w[6], a->w[7]);
    kvx = ea_linear(ctx, x, a->w[6], a->w[7]);
    cross = ea_tensor_3d(ctx, st->B, t, D, 0);
    p = ea__floats(ctx, (size_t)st->cap);
    if (!self || !qm || !kvs || !kvx || !cross || !p) return NULL;
    fifo = st->len - S > 0 ? st->len - S : 0;
    for (b = 0; b < st->B; b++) {
        float *mem = st->k + (size_t)b * st->cap * kd;
        memcpy(mem, kvs->data, (size_t)S * kd * sizeof(float)); /* the slots as trained now */
        for (i = 0; i < t; i++)
            for (h = 0; h < H; h++)
                ea__cache_attend(cross->data + ((size_t)b * t + i) * D + (size_t)h * dh, p,
                                 qm->data + ((size_t)b * t + i) * D + (size_t)h * dh, mem + (size_t)h * dh, kd, dh,
                                 mem + D + (size_t)h * dh, kd, dh, NULL, S + fifo, 0, 1.0f / sqrtf((float)dh), NULL);
        /* then the call's tokens enter the FIFO; the oldest leave */
        {
            int add = t < M ? t : M, drop = fifo + add - M > 0 ? fifo + add - M : 0;
            memmove(mem + (size_t)S * kd, mem + (size_t)(S + drop) * kd, (size_t)(fifo - drop) * kd * sizeof(float));
            memcpy(mem + (size_t)(S + fifo - drop) * kd, kvx->data + ((size_t)b * t + (t - add)) * kd,
                   (size_t)add * kd * sizeof(float));
            if (b == st->B - 1) st->len = S + fifo - drop + add;
        }
    }
    st->seen += t;
    return ea__crossmem_fuse(ctx, a, cross, self);
}

static double ea__crossmem_flops(const ea_attn *a, int n) {
    double D = a->cfg.dim, S = a->w[8]->shape[0];
    return ea__proj_flops(a, n) + 2.0 * n * D * D + 4.0 * S * D * D + 4.0 * (double)n * n * D + 4.0 * n * S * D;
}

/* --- 8.28 mamba: selective state-space layer (Gu & Dao 2023, "Mamba";
   seed 004's MambaLayer) -------------------------------------------------------
   Per channel d of an inner width Di = expand·dim, a state h_d of N numbers
   runs along the sequence; Δ, B and C depend on the token (the
   "selection"), A is learned per (d, n) and kept negative:
       [u, z] = x W_in                           (2·Di columns)
       u = SiLU(causal_conv_k(u))                (depthwise, k taps)
       [δ, B, C] = u W_x,   Δ = softplus(δ W_dt + b_dt)   (rank R, then Di)
       A = -exp(A_log)
       h_t = exp(Δ_t A) ∘ h_{t-1} + Δ_t B_t u_t   (zero-order hold for A;
                                                   Δ·B for B, as Mamba does)
       y_t = C_t · h_t + D ∘ u_t,   out = (y ∘ SiLU(z)) W_out
   The scan is sequential in t: time O(n·Di·N) plus the projections
   O(n·dim·Di), memory O(Di·N) per sequence when streaming (the state and
   the conv's last k-1 inputs: flat over any stream) and O(n·Di·N/S) in
   training, where the backward runs the scan in reverse, recomputing the
   states a segment of S tokens at a time from checkpoints (below):
       dh_t += dy_t C_t;  dC_t += dy_t h_t;  a = exp(Δ_t A)
       dΔ_t += Σ_n dh_t (h_{t-1} a A + B_t u_t);  dA += dh_t h_{t-1} a Δ_t
       dB_t += dh_t Δ_t u_t;  du_t += Σ_n dh_t Δ_t B_t;  dh_{t-1} = dh_t a
   and dA_log = dA ∘ A.  A_log starts at log(1..N) (S4D-real), Δ's bias so
   that softplus gives steps log-uniform in [0.001, 0.1], D at 1.
   Options: state N (16), expand (2), dt_rank R (ceil(dim/16)), conv_kernel
   k (4).  Slots: w[0..1] in_proj, w[2..3] out_proj, w[4..5] conv weight
   and bias, w[6..7] x_proj, w[8..9] dt_proj, w[10] A_log, w[11] D. */
static int ea__mamba_inner(const ea_attn *a) { return ea__opt(a->cfg.opt.expand, 2) * a->cfg.dim; }
static int ea__mamba_n(const ea_attn *a) { return ea__opt(a->cfg.opt.state, 16); }
static int ea__mamba_kc(const ea_attn *a) { return ea__opt(a->cfg.opt.conv_kernel, 4); }
static int ea__mamba_rank(const ea_attn *a) { return ea__opt(a->cfg.opt.dt_rank, (a->cfg.dim + 15) / 16); }

static ea_status ea__mamba_build(ea_attn *a, ea_params *ps, const char *prefix, ea_error *err) {
    ea_status st;
    char name[EA_NAME_LEN];
    int D = a->cfg.dim, Di, N, R, kc, shape[2];
    if ((st = ea__check_opts(a, 1, err)) != EA_OK) return st;
    if (D <= 0 || D > 65536) return ea_error_set(err, EA_ERR_CONFIG, "attention 'mamba': dim = %d; expected 1..65536", D);
    Di = ea__mamba_inner(a); N = ea__mamba_n(a); R = ea__mamba_rank(a); kc = ea__mamba_kc(a);
    if (ea__opt(a->cfg.opt.expand, 2) > 64 || N > 1024 || R > 65536 || kc > 64)
        return ea_error_set(err, EA_ERR_CONFIG,
                            "attention 'mamba': expand %d, state %d, dt_rank %d, conv_kernel %d; expected at most "
                            "64, 1024, 65536, 64",
                            ea__opt(a->cfg.opt.expand, 2), N, R, kc);
    a->head_dim = Di;
    a->kv_heads = 1;
    ea__linear_params(ps, prefix, "in_proj", 2 * Di, D, &a->w[0], &a->w[1]);
    ea__linear_params(ps, prefix, "out_proj", D, Di, &a->w[2], &a->w[3]);
    ea__linear_params(ps, prefix, "conv1d", Di, kc, &a->w[4], &a->w[5]);
    ea__linear_params(ps, prefix, "x_proj", R + 2 * N, Di, &a->w[6], &a->w[7]);
    shape[0] = Di; shape[1] = R; /* dt_proj; its bias is softplus⁻¹ of a log-uniform step */
    snprintf(name, sizeof name, "%s.dt_proj.weight", prefix);
    a->w[8] = ea_param(ps, name, 2, shape, EA_INIT_FANIN, (float)R);
    snprintf(name, sizeof name, "%s.dt_proj.bias", prefix);
    a->w[9] = ea_param(ps, name, 1, shape, EA_INIT_SSM_DT, 0.0f);
    shape[1] = N;
    snprintf(name, sizeof name, "%s.A_log", prefix);
    a->w[10] = ea_param(ps, name, 2, shape, EA_INIT_SSM_A, (float)N);
    snprintf(name, sizeof name, "%s.D", prefix);
    a->w[11] = ea_param(ps, name, 1, shape, EA_INIT_ONES, 0.0f);
    return EA_OK;
}

/* The scan runs channel-major: a sequence's state is [N, Di] (state n of
   every channel in one row), so a token's update is, for each n, a row of
   independent channels: vector lanes run across channels and the forward
   needs no horizontal sum (channel-minor, each token took a short dot
   product per channel, and the backward ran scalar over N; with the
   checkpoints below and the vector activations, a mamba layer's forward +
   backward at n = 1024, dim 512 went from 266-293 to 163-166 ms on the
   device's Xeon, 2 threads, builds alternating).  Channels go in chunks of
   EA_SCAN_CHUNK, one chunk a thread over all t (a barrier per token would
   cost more than a token's work); the chunking is fixed, not the thread
   count's, so results do not depend on threads. */
#define EA_SCAN_CHUNK 64

/* A = -exp(A_log), dA and a chunk's running state are kept chunk-major:
   chunk c's [N, w] block (w = its channels) is contiguous from c·N·CHUNK.
   Rows of the [N, Di] layout lie Di floats apart: at Di = 1024 that is
   4 KiB, so the N = 16 rows of the state, of A and of dA all fell into one
   L1 set (4 KiB aliasing) and evicted each other every token. */
static size_t ea__scan_cbase(int c, int N) { return (size_t)c * N * EA_SCAN_CHUNK; }

/* A chunk's rows of u, Δ, y and their gradients lie Di floats apart (4
   KiB at Di = 1024): every token's lines are on another page, where the
   L2's stream prefetcher, which stays within a page, does not follow, and
   each token's first loads waited on L3 (perf, one Zen 3 core: 23% of
   ea__scan_token's samples on them).  So the scan asks for the rows
   EA_SCAN_AHEAD tokens ahead itself.  regions --layer 1024 --attn mamba
   --train, one Zen 3 thread, three rounds alternating: the scan's
   backward 33.9-37.3 ms before, 23.1-31.0 with 4 tokens ahead, 21.5-23.1
   with 8; its forward 11.7-14.5, 10.4-12.2, 10.1-10.5.  The device's
   Xeon, 2 threads (against the old build and a copy of it): backward
   16.8-17.8 -> 10.0-12.5 ms, forward 6.7-7.0 -> 4.4-5.3. */
#define EA_SCAN_AHEAD 8

/* Chunk c's width w: EA_SCAN_CHUNK channels, the last chunk what is left. */
static int ea__scan_width(int c, int Di) { return Di - c * EA_SCAN_CHUNK < EA_SCAN_CHUNK ? Di - c * EA_SCAN_CHUNK : EA_SCAN_CHUNK; }

/* Training keeps the state only before every S-th token (checkpoints:
   L/S·Di·N floats, as much as u itself at N = S = 16, where keeping every
   state takes N times u: 64 MiB a sequence at n = 1024, dim 512); the
   backward recomputes a segment's S states and decays from its checkpoint
   into a scratch that stays in cache, as Mamba's own kernel recomputes its
   states.  One more forward scan, in place of writing every state out and
   reading it back. */
static int ea__scan_seg = 16; /* tests shorten it to cross segment edges */

/* One token for w channels:
       h = exp(Δ ∘ A_n) ∘ h_prev + Δ ∘ u · B_t[n]  (each state n),  y = Σ_n C_t[n] h
   hp (the previous state) and h (the new one; may be hp) are N rows ldp
   and ldh floats apart, A's rows lda apart; a (optional) receives the
   decays exp(Δ ∘ A_n), N rows of w.

   ea__scan_vecs does nv vectors of channels from d, the last one m lanes
   wide.  Two at a time (nv = 2) where they fit: one vector's N steps are a
   chain (its exp, then the sum over n, each waiting on the last) that
   leaves the core idle, and two independent chains fill it.  Each lane
   computes what it did alone: the same bits.  A mamba layer's forward at
   dim 512, one Zen 3 core (bench --row mamba, builds alternating three
   times): the scan's share 36% -> 22% (perf), n = 1024 99-119 -> 82-98 ms,
   n = 2048 213-233 -> 165-198; on the device's Xeon (AVX-512, four vectors
   a chunk) no change beyond its noise. */
EA_INLINE void ea__scan_vecs(int nv, int m, int d, float *y, float *h, ptrdiff_t ldh, const float *hp, ptrdiff_t ldp,
                             float *a, const float *u, const float *dt, const float *Bt, const float *Ct,
                             const float *A, ptrdiff_t lda, int N, int w) {
    ea_vf delta[2], du[2], acc[2];
    int n, v;
    EA_UNROLL for (v = 0; v < nv; v++) {
        int mv = v == nv - 1 ? m : EA_VW, dv = d + v * EA_VW;
        delta[v] = ea__ld(dt + dv, mv);
        du[v] = ea_vmul(delta[v], ea__ld(u + dv, mv));
        acc[v] = ea_vzero();
    }
    for (n = 0; n < N; n++) {
        ea_vf bn = ea_vset1(Bt[n]), cn = ea_vset1(Ct[n]);
        EA_UNROLL for (v = 0; v < nv; v++) {
            int mv = v == nv - 1 ? m : EA_VW, dv = d + v * EA_VW;
            ea_vf dec = ea_vexp(ea_vmul(delta[v], ea__ld(A + n * lda + dv, mv)));
            ea_vf hn = ea_vfma(dec, ea__ld(hp + n * ldp + dv, mv), ea_vmul(du[v], bn));
            ea__st(h + n * ldh + dv, hn, mv);
            if (a) ea__st(a + (ptrdiff_t)n * w + dv, dec, mv);
            acc[v] = ea_vfma(cn, hn, acc[v]);
        }
    }
    EA_UNROLL for (v = 0; v < nv; v++) ea__st(y + d + v * EA_VW, acc[v], v == nv - 1 ? m : EA_VW);
}

static void ea__scan_token(float *y, float *h, ptrdiff_t ldh, const float *hp, ptrdiff_t ldp, float *a,
                           const float *u, const float *dt, const float *Bt, const float *Ct, const float *A,
                           ptrdiff_t lda, int N, int w) {
    int d = 0;
    for (; EA_VW > 1 && d + 2 * EA_VW <= w; d += 2 * EA_VW)
        ea__scan_vecs(2, EA_VW, d, y, h, ldh, hp, ldp, a, u, dt, Bt, Ct, A, lda, N, w);
    for (; d < w; d += EA_VW)
        ea__scan_vecs(1, w - d < EA_VW ? w - d : EA_VW, d, y, h, ldh, hp, ldp, a, u, dt, Bt, Ct, A, lda, N, w);
}

/* Backward of one token for w channels, from the forward's inputs, the
   state after the token ht (rows ldt apart), the one before hp and the
   decays a: dh (N rows of w) holds the gradient reaching h_t from later
   tokens and leaves holding the gradient into h_{t-1}.  Added to: du and
   ddt (each optional, w floats; assigned instead where bit 0, resp. 1, of
   acc is 0: a fresh gradient, which the scan writes once a token), gB and
   gC (optional, N floats: sums over the channels, one horizontal sum per
   state), dA (N rows lda apart). */
static void ea__scan_token_back(float *dh, float *du, float *ddt, int acc, float *gB, float *gC, float *dA,
                                ptrdiff_t lda, const float *ht, ptrdiff_t ldt, const float *hp, ptrdiff_t ldp,
                                const float *a, const float *gy, const float *u, const float *dt, const float *Bt,
                                const float *Ct, const float *A, int N, int w) {
    float ddel[EA_SCAN_CHUNK], dx[EA_SCAN_CHUNK];
    int n, d;
    memset(ddel, 0, sizeof ddel);
    memset(dx, 0, sizeof dx);
    for (n = 0; n < N; n++) {
        ea_vf gc = ea_vzero(), gb = ea_vzero(), Bn = ea_vset1(Bt[n]), Cn = ea_vset1(Ct[n]);
        for (d = 0; d < w; d += EA_VW) {
            int m = w - d < EA_VW ? w - d : EA_VW;
            ea_vf dy = ea__ld(gy + d, m), delta = ea__ld(dt + d, m), x = ea__ld(u + d, m);
            ea_vf an = ea__ld(a + (ptrdiff_t)n * w + d, m), pa = ea_vmul(ea__ld(hp + n * ldp + d, m), an);
            ea_vf g = ea_vfma(dy, Cn, ea__ld(dh + (ptrdiff_t)n * w + d, m)); /* dh_t += dy C_t */
            gc = ea_vfma(dy, ea__ld(ht + n * ldt + d, m), gc);               /* dC_t += dy h_t */
            gb = ea_vfma(g, ea_vmul(delta, x), gb);                          /* dB_t += dh Δ u */
            /* dΔ += dh (h_{t-1} a A + B u),  dA += dh h_{t-1} a Δ,  du += dh Δ B */
            ea__st(ddel + d, ea_vfma(g, ea_vfma(pa, ea__ld(A + n * lda + d, m), ea_vmul(Bn, x)), ea__ld(ddel + d, m)), m);
            ea__st(dA + n * lda + d, ea_vfma(ea_vmul(g, pa), delta, ea__ld(dA + n * lda + d, m)), m);
            ea__st(dx + d, ea_vfma(ea_vmul(g, delta), Bn, ea__ld(dx + d, m)), m);
            ea__st(dh + (ptrdiff_t)n * w + d, ea_vmul(g, an), m); /* dh_{t-1} = dh_t a */
        }
        if (gB) {
            gC[n] += ea_vhsum(gc);
            gB[n] += ea_vhsum(gb);
        }
    }
    for (d = 0; d < w; d++) {
        if (du) du[d] = (acc & 1) ? du[d] + dx[d] : dx[d];
        if (ddt) ddt[d] = (acc & 2) ? ddt[d] + ddel[d] : ddel[d];
    }
}

/* Floats of backward scratch a chunk: dh [N, w], a segment's states and
   decays [S, N, w] each, and the recomputed outputs [w]. */
static size_t ea__scan_scratch(int N, int S) { return (size_t)N * EA_SCAN_CHUNK * (1 + 2 * (size_t)S) + EA_SCAN_CHUNK; }

/* Backward of the scan for channels [d0, d1) of sequence b, a segment at a
   time from the last: recompute its states from the checkpoint, then run
   its tokens in reverse.  dB and dC are sums over channels, so each chunk
   adds its own into gpart (rows of [L, 2N]) and the caller adds the chunks
   in order. */
static void ea__scan_back_chunk(ea_node *nd, int b, int d0, int d1, int acc, float *dA, float *work, float *gpart) {
    ea_tensor *u = nd->in[0], *dtt = nd->in[1], *bct = nd->in[2];
    int L = u->shape[1], Di = u->shape[2], R = nd->iarg[0], N = nd->iarg[1], S = nd->iarg[2], ldbc = bct->shape[2];
    int w = d1 - d0, nseg = (L + S - 1) / S, s, t;
    const float *A = nd->save[1] + ea__scan_cbase(d0 / EA_SCAN_CHUNK, N), *bc = bct->data + (size_t)b * L * ldbc;
    const float *ub = u->data + (size_t)b * L * Di + d0, *dtb = dtt->data + (size_t)b * L * Di + d0;
    const float *gy = nd->out->grad + (size_t)b * L * Di + d0;
    float *dh = work, *hseg = dh + (size_t)N * w, *aseg = hseg + (size_t)S * N * w, *ys = aseg + (size_t)S * N * w;
    memset(dh, 0, (size_t)N * w * sizeof(float));
    for (s = nseg - 1; s >= 0; s--) {
        int t0 = s * S, t1 = t0 + S < L ? t0 + S : L;
        const float *ck = nd->save[0] + ((size_t)b * nseg + s) * N * Di + d0;
        for (t = t0; t < t1; t++) {
            const float *bt = bc + (size_t)t * ldbc + R;
            size_t k = (size_t)(t - t0) * N * w;
            if (t + EA_SCAN_AHEAD < t1) {
                ea__prefetch(ub + (size_t)(t + EA_SCAN_AHEAD) * Di, w, 0);
                ea__prefetch(dtb + (size_t)(t + EA_SCAN_AHEAD) * Di, w, 0);
            }
            ea__scan_token(ys, hseg + k, w, t > t0 ? hseg + k - (size_t)N * w : ck, t > t0 ? w : Di, aseg + k,
                           ub + (size_t)t * Di, dtb + (size_t)t * Di, bt, bt + N, A, w, N, w);
        }
        for (t = t1 - 1; t >= t0; t--) {
            const float *bt = bc + (size_t)t * ldbc + R;
            size_t k = (size_t)(t - t0) * N * w, row = ((size_t)b * L + t) * Di + d0;
            float *gB = gpart ? gpart + (size_t)t * 2 * N : NULL;
            if (t - EA_SCAN_AHEAD >= 0) { /* dy, and the gradients written (this segment's u and Δ are in cache) */
                size_t back = row - (size_t)EA_SCAN_AHEAD * Di;
                ea__prefetch(gy + (size_t)(t - EA_SCAN_AHEAD) * Di, w, 0);
                if (u->grad) ea__prefetch(u->grad + back, w, 0);
                if (dtt->grad) ea__prefetch(dtt->grad + back, w, 0);
            }
            ea__scan_token_back(dh, u->grad ? u->grad + row : NULL, dtt->grad ? dtt->grad + row : NULL, acc, gB,
                                gB ? gB + N : NULL, dA + ea__scan_cbase(d0 / EA_SCAN_CHUNK, N), w, hseg + k, w,
                                t > t0 ? hseg + k - (size_t)N * w : ck, t > t0 ? w : Di, aseg + k,
                                gy + (size_t)t * Di, ub + (size_t)t * Di, dtb + (size_t)t * Di, bt, bt + N, A, N, w);
        }
    }
}

static void ea__scan_back(ea_ctx *ctx, ea_node *nd) {
    ea_tensor *u = nd->in[0], *bct = nd->in[2], *alog = nd->in[3];
    int Bn = u->shape[0], L = u->shape[1], Di = u->shape[2], R = nd->iarg[0], N = nd->iarg[1], S = nd->iarg[2];
    int ldbc = bct->shape[2], nc = (Di + EA_SCAN_CHUNK - 1) / EA_SCAN_CHUNK, b, c, t, n, d;
    int acc = (ea__grad_fresh(u) ? 0 : 1) | (ea__grad_fresh(nd->in[1]) ? 0 : 2); /* du, ddt: assign when fresh */
    size_t per = ea__scan_scratch(N, S);
    const float *A = nd->save[1];
    float *dA = ea__floats(ctx, ea__scan_cbase(nc, N)), *work = ea__floats(ctx, (size_t)nc * per);
    float *gpart = bct->grad ? ea__floats(ctx, (size_t)nc * L * 2 * N) : NULL;
    if (!dA || !work || (bct->grad && !gpart)) return;
    memset(dA, 0, ea__scan_cbase(nc, N) * sizeof(float));
    for (b = 0; b < Bn; b++) {
        if (gpart) memset(gpart, 0, (size_t)nc * L * 2 * N * sizeof(float));
        EA_OMP_FOR_IF(nc > 1 && (double)L * Di * N >= EA_PAR_MIN_WORK)
        for (c = 0; c < nc; c++) {
            int d0 = c * EA_SCAN_CHUNK;
            ea__scan_back_chunk(nd, b, d0, d0 + ea__scan_width(c, Di), acc, dA, work + (size_t)c * per,
                                gpart ? gpart + (size_t)c * L * 2 * N : NULL);
        }
        if (gpart) /* the chunks' dB, dC in chunk order */
            for (c = 0; c < nc; c++)
                for (t = 0; t < L; t++) {
                    float *g = bct->grad + ((size_t)b * L + t) * ldbc + R;
                    const float *p = gpart + ((size_t)c * L + t) * 2 * N;
                    for (n = 0; n < 2 * N; n++) g[n] += p[n];
                }
    }
    if (alog->grad) /* dA_log = dA ∘ A, back to A_log's [Di, N] */
        for (d = 0; d < Di; d++) {
            int w = ea__scan_width(d / EA_SCAN_CHUNK, Di);
            size_t o = ea__scan_cbase(d / EA_SCAN_CHUNK, N) + d % EA_SCAN_CHUNK;
            for (n = 0; n < N; n++) alog->grad[(size_t)d * N + n] += dA[o + (size_t)n * w] * A[o + (size_t)n * w];
        }
}

/* The selective scan as a tape op: u, dt [B, L, Di], bc [B, L, R + 2N]
   (B and C from column R), A_log [Di, N] -> y [B, L, Di] (without D·u).
   state (optional, [B, N, Di]) is the initial state and receives the final
   one (streaming); without it the scan starts from zero. */
static ea_tensor *ea__scan(ea_ctx *ctx, ea_tensor *u, ea_tensor *dt, ea_tensor *bc, int R, ea_tensor *alog,
                           float *state) {
    int Bn, L, Di, N, S = ea__scan_seg, nseg, nc, b, n, d;
    ea_tensor *out;
    ea_node *nd;
    float *A, *ck = NULL, *h;
    if (!ea__ok(ctx, u, dt) || !bc || !alog) return NULL;
    Bn = u->shape[0]; L = u->shape[1]; Di = u->shape[2]; N = alog->shape[1];
    nseg = (L + S - 1) / S;
    out = ea__out(ctx, 3, u->shape, u, dt, bc);
    nc = (Di + EA_SCAN_CHUNK - 1) / EA_SCAN_CHUNK;
    A = ea__floats(ctx, ea__scan_cbase(nc, N));
    h = ea__floats(ctx, ea__scan_cbase(nc, N)); /* each chunk's running state, chunk-major */
    if (!out || !A || !h) return NULL;
    if (out->requires_grad) {
        ck = ea__floats(ctx, (size_t)Bn * nseg * N * Di);
        if (!ck) return NULL;
    }
    for (d = 0; d < Di; d++) { /* A = -exp(A_log), chunk-major */
        int w = ea__scan_width(d / EA_SCAN_CHUNK, Di);
        for (n = 0; n < N; n++)
            A[ea__scan_cbase(d / EA_SCAN_CHUNK, N) + (size_t)n * w + d % EA_SCAN_CHUNK] = -expf(alog->data[(size_t)d * N + n]);
    }
    for (b = 0; b < Bn; b++) {
        float *st = state ? state + (size_t)b * Di * N : NULL; /* [N, Di], the caller's layout */
        const float *ub = u->data + (size_t)b * L * Di, *dtb = dt->data + (size_t)b * L * Di;
        const float *bcb = bc->data + (size_t)b * L * bc->shape[2];
        int c;
        EA_OMP_FOR_IF(nc > 1 && (double)L * Di * N >= EA_PAR_MIN_WORK)
        for (c = 0; c < nc; c++) {
            int d0 = c * EA_SCAN_CHUNK, w = ea__scan_width(c, Di), t, k;
            float *hc = h + ea__scan_cbase(c, N);
            for (k = 0; k < N; k++) /* the chunk's state in, [N, w] */
                if (st) memcpy(hc + (size_t)k * w, st + (size_t)k * Di + d0, (size_t)w * sizeof(float));
                else memset(hc + (size_t)k * w, 0, (size_t)w * sizeof(float));
            for (t = 0; t < L; t++) {
                const float *bt = bcb + (size_t)t * bc->shape[2] + R;
                if (t + EA_SCAN_AHEAD < L) {
                    size_t ahead = (size_t)(t + EA_SCAN_AHEAD) * Di + d0;
                    ea__prefetch(ub + ahead, w, 0);
                    ea__prefetch(dtb + ahead, w, 0);
                    ea__prefetch(out->data + (size_t)b * L * Di + ahead, w, 0);
                }
                if (ck && t % S == 0) /* the checkpoint before this segment */
                    for (k = 0; k < N; k++)
                        memcpy(ck + (((size_t)b * nseg + t / S) * N + k) * Di + d0, hc + (size_t)k * w,
                               (size_t)w * sizeof(float));
                ea__scan_token(out->data + ((size_t)b * L + t) * Di + d0, hc, w, hc, w, NULL, ub + (size_t)t * Di + d0,
                               dtb + (size_t)t * Di + d0, bt, bt + N, A + ea__scan_cbase(c, N), w, N, w);
            }
            if (st) /* and out again */
                for (k = 0; k < N; k++) memcpy(st + (size_t)k * Di + d0, hc + (size_t)k * w, (size_t)w * sizeof(float));
        }
    }
    nd = ea__record(ctx, ea__scan_back, out, u, dt, bc);
    if (nd) {
        nd->assigns = 3; /* du and ddt: every element written once, assigned when fresh */
        nd->in[3] = alog;
        nd->save[0] = ck;
        nd->save[1] = A;
        nd->iarg[0] = R;
        nd->iarg[1] = N;
        nd->iarg[2] = S;
    }
    return out;
}

/* The output gate, out = (y + D ∘ u) ∘ SiLU(z), in one pass over the rows:
   Mamba's skip through D and its gate (the reference's selective_scan_fn
   takes D and z for the same reason).  As four ops (mul, add, act, mul) it
   wrote three [B, L, Di] temporaries and read them back, and D's gradient
   summed the rows on one thread.  With g = dout, σ = σ(z), s = z σ,
   t = y + D ∘ u:
       dy = g s,   du = g s D,   dD = Σ_rows g s u,   dz = g t σ (1 + z (1 - σ))
   Rows go over threads in blocks of EA_GATE_ROWS; each block sums its
   rows' share of dD into its own scratch row, and the blocks are added in
   order afterwards: the same bits at any thread count.  Each row takes the
   vector path over whole vectors and the scalar one for the rest, as
   ea_act's SiLU does. */
#define EA_GATE_ROWS 64

typedef struct ea__gate_io {
    float *out, *dy, *du, *dz;          /* out in the forward, the gradients (or NULL) in the backward */
    const float *g, *y, *u, *D, *z;     /* g = dout, NULL in the forward */
    int ay, au, az;                     /* add into dy, du, dz (they already hold something) */
} ea__gate_io;

/* rows [r0, r1) of C channels; dD, when given, gets their Σ g s u added */
static void ea__gate_rows(const ea__gate_io *io, size_t r0, size_t r1, int C, float *dD) {
    size_t r;
    for (r = r0; r < r1; r++) {
        size_t o = r * (size_t)C;
        const float *y = io->y + o, *u = io->u + o, *z = io->z + o, *D = io->D, *g = io->g ? io->g + o : NULL;
        int j = 0;
#if EA_VW > 1
        for (; j + EA_VW <= C; j += EA_VW) {
            ea_vf zv = ea_vload(z + j), sg = ea__vsigmoid(zv), s = ea_vmul(zv, sg), uv = ea_vload(u + j);
            ea_vf dv = ea_vload(D + j), t = ea_vadd(ea_vload(y + j), ea_vmul(uv, dv)), gs, gv, one = ea_vset1(1.0f);
            if (!g) {
                ea_vstore(io->out + o + j, ea_vmul(t, s));
                continue;
            }
            gv = ea_vload(g + j);
            gs = ea_vmul(gv, s);
            if (io->dy) ea_vstore(io->dy + o + j, io->ay ? ea_vadd(ea_vload(io->dy + o + j), gs) : gs);
            if (io->du) ea_vstore(io->du + o + j, io->au ? ea_vfma(gs, dv, ea_vload(io->du + o + j)) : ea_vmul(gs, dv));
            if (dD) ea_vstore(dD + j, ea_vfma(gs, uv, ea_vload(dD + j)));
            if (io->dz) {
                ea_vf gz = ea_vmul(ea_vmul(gv, t), ea_vmul(sg, ea_vfma(zv, ea_vsub(one, sg), one)));
                ea_vstore(io->dz + o + j, io->az ? ea_vadd(ea_vload(io->dz + o + j), gz) : gz);
            }
        }
#endif
        for (; j < C; j++) {
            float sg = 1.0f / (1.0f + expf(-z[j])), s = z[j] * sg, t = y[j] + u[j] * D[j], gs, gz;
            if (!g) {
                io->out[o + j] = t * s;
                continue;
            }
            gs = g[j] * s;
            gz = g[j] * t * (sg * (1.0f + z[j] * (1.0f - sg)));
            if (io->dy) io->dy[o + j] = io->ay ? io->dy[o + j] + gs : gs;
            if (io->du) io->du[o + j] = io->au ? io->du[o + j] + gs * D[j] : gs * D[j];
            if (dD) dD[j] += gs * u[j];
            if (io->dz) io->dz[o + j] = io->az ? io->dz[o + j] + gz : gz;
        }
    }
}

/* The blocks over threads; part (nb x C scratch) receives each block's dD */
static void ea__gate_par(const ea__gate_io *io, size_t rows, int C, float *part) {
    long b, nb = (long)((rows + EA_GATE_ROWS - 1) / EA_GATE_ROWS);
    EA_OMP_FOR_IF(nb > 1 && (double)rows * C * 30.0 >= EA_PAR_MIN_WORK)
    for (b = 0; b < nb; b++) {
        size_t r0 = (size_t)b * EA_GATE_ROWS, r1 = r0 + EA_GATE_ROWS < rows ? r0 + EA_GATE_ROWS : rows;
        if (part) memset(part + (size_t)b * C, 0, (size_t)C * sizeof(float));
        ea__gate_rows(io, r0, r1, C, part ? part + (size_t)b * C : NULL);
    }
}

static void ea__mamba_gate_back(ea_ctx *ctx, ea_node *n) {
    ea_tensor *y = n->in[0], *u = n->in[1], *D = n->in[2], *z = n->in[3];
    int C = (int)D->size;
    size_t rows = y->size / (size_t)C, nb = (rows + EA_GATE_ROWS - 1) / EA_GATE_ROWS, b;
    ea__arena_mark mk = ea__arena_mark_get(&ctx->arena);
    ea__gate_io io;
    float *part = D->grad ? ea__floats(ctx, nb * (size_t)C) : NULL;
    int j;
    if (D->grad && !part) return; /* ea_ctx_alloc has set the error */
    memset(&io, 0, sizeof io);
    io.g = n->out->grad; io.y = y->data; io.u = u->data; io.D = D->data; io.z = z->data;
    io.dy = y->grad; io.du = u->grad; io.dz = z->grad;
    io.ay = y->grad && !ea__grad_fresh(y);
    io.au = u->grad && !ea__grad_fresh(u);
    io.az = z->grad && !ea__grad_fresh(z);
    ea__gate_par(&io, rows, C, part);
    if (part)
        for (b = 0; b < nb; b++)
            for (j = 0; j < C; j++) D->grad[j] += part[b * (size_t)C + j];
    ea__arena_mark_back(&ctx->arena, mk);
}

static ea_tensor *ea__mamba_gate(ea_ctx *ctx, ea_tensor *y, ea_tensor *u, ea_tensor *D, ea_tensor *z) {
    ea_tensor *out;
    ea_node *nd;
    ea__gate_io io;
    if (!ea__ok(ctx, y, u) || !ea__ok(ctx, D, z)) return NULL;
    if (u->size != y->size || z->size != y->size || D->ndim != 1 || D->shape[0] != y->shape[y->ndim - 1])
        return ea__fail(ctx, EA_ERR_SHAPE, "mamba gate: y, u, z of %zu, %zu, %zu values and D of %zu: expected equal "
                        "sizes and D [%d]", y->size, u->size, z->size, D->size, y->shape[y->ndim - 1]);
    out = ea_tensor_new(ctx, y->ndim, y->shape,
                        y->requires_grad || u->requires_grad || D->requires_grad || z->requires_grad);
    if (!out) return NULL;
    memset(&io, 0, sizeof io);
    io.out = out->data; io.y = y->data; io.u = u->data; io.D = D->data; io.z = z->data;
    ea__gate_par(&io, y->size / D->size, (int)D->size, NULL);
    nd = ea__record(ctx, ea__mamba_gate_back, out, y, u, D);
    if (nd) {
        nd->in[3] = z;
        nd->assigns = 1 | 2 | 8; /* dy, du, dz: assigned when fresh; dD (a parameter's) added into */
    }
    return out;
}

/* The layer; st (streaming) carries the conv's last inputs and the state. */
static ea_tensor *ea__mamba_run(ea_ctx *ctx, const ea_attn *a, ea_tensor *x, ea_attn_state *st) {
    int Di = ea__mamba_inner(a), R = ea__mamba_rank(a), kc = ea__mamba_kc(a);
    ea_tensor *u = ea__linear_rows(ctx, x, a->w[0], a->w[1], 0, Di, 0), *z = ea__linear_rows(ctx, x, a->w[0], a->w[1], Di, Di, 0);
    ea_tensor *bc, *dt, *y;
    if (!u || !z) return NULL;
    if (st) { /* the conv continues from the previous call's last k-1 inputs */
        int b, T = x->shape[1], keep = kc - 1;
        ea_tensor *c = ea_tensor_3d(ctx, st->B, T, Di, 0);
        if (!c) return NULL;
        for (b = 0; b < st->B; b++) {
            float *hist = st->conv + (size_t)b * keep * Di;
            const float *ub = u->data + (size_t)b * T * Di;
            ea__causal_conv_fwd(c->data + (size_t)b * T * Di, ub, hist, a->w[4]->data, a->w[5]->data, T, Di, kc);
            if (T >= keep) memcpy(hist, ub + (size_t)(T - keep) * Di, (size_t)keep * Di * sizeof(float));
            else if (keep) { /* shift in the T new inputs */
                memmove(hist, hist + (size_t)T * Di, (size_t)(keep - T) * Di * sizeof(float));
                memcpy(hist + (size_t)(keep - T) * Di, ub, (size_t)T * Di * sizeof(float));
            }
        }
        u = c;
    } else {
        u = ea_causal_conv(ctx, u, a->w[4], a->w[5]);
    }
    u = ea_act(ctx, u, EA_ACT_SILU);
    bc = ea_linear(ctx, u, a->w[6], a->w[7]);
    dt = ea_act(ctx, ea_linear(ctx, ea_heads_split(ctx, bc, 0, 1, R, 1.0f), a->w[8], a->w[9]), EA_ACT_SOFTPLUS);
    y = ea__scan(ctx, u, dt, bc, R, a->w[10], st ? st->ssm : NULL);
    y = ea__mamba_gate(ctx, y, u, a->w[11], z);
    if (st && y) st->seen += x->shape[1];
    return ea_linear(ctx, y, a->w[2], a->w[3]);
}

static ea_tensor *ea__mamba_forward(ea_ctx *ctx, const ea_attn *a, ea_tensor *x) { return ea__mamba_run(ctx, a, x, NULL); }

static ea_tensor *ea__mamba_step(ea_ctx *ctx, const ea_attn *a, ea_attn_state *st, ea_tensor *x) {
    if (!ea__step_check(ctx, a, st, x)) return NULL;
    return ea__mamba_run(ctx, a, x, st);
}

static double ea__mamba_flops(const ea_attn *a, int n) {
    double D = a->cfg.dim, Di = ea__mamba_inner(a), N = ea__mamba_n(a), R = ea__mamba_rank(a);
    return 2.0 * n * D * 2.0 * Di + 2.0 * n * Di * D + 2.0 * n * Di * ea__mamba_kc(a) + 2.0 * n * Di * (R + 2.0 * N) +
           2.0 * n * R * Di + 6.0 * n * Di * N;
}

/* --- 8.29 Streaming state: sizing, reset, release ------------------------ */
/* Allocate n bytes (zeroed) on a cache line, and count them.  Decoding
   reads the cache's K and V rows in place as the flash tiles' panels only
   where they start on cache lines (ea__gemm_direct); from malloc's 16-byte
   alignment every tile was packed first.  bench --decode on one Zen 3
   thread, four rounds alternating with the build before (ms a token):
   4,096 cached tokens mla 0.542-0.559 -> 0.447-0.470, gqa 0.434-0.458 ->
   0.341-0.356; 16,384 mqa 0.895-0.999 -> 0.739-0.755; mha (one query a
   K/V head: dot products, no panels) and h2o level.  The byte before the
   block holds its distance from the allocation's start (1-64 bytes), for
   ea__state_release. */
static void *ea__state_alloc(ea_attn_state *st, size_t n, int *ok) {
    unsigned char *raw = n && n <= (size_t)-1 - 64 ? (unsigned char *)EFFATTN_MALLOC(n + 64) : NULL, *p = NULL;
    if (n && !raw) *ok = 0;
    if (raw) {
        p = raw + (64 - (uintptr_t)raw % 64);
        p[-1] = (unsigned char)(p - raw);
        memset(p, 0, n);
    }
    st->bytes += n;
    return p;
}

static void ea__state_release(void *block) {
    unsigned char *p = (unsigned char *)block;
    if (p) EFFATTN_FREE(p - p[-1]);
}

EA_API void ea_attn_state_free(ea_attn_state *st) {
    if (!st) return;
    ea__state_release(st->k);
    ea__state_release(st->v);
    ea__state_release(st->score);
    ea__state_release(st->pos);
    ea__state_release(st->ssm);
    ea__state_release(st->conv);
    memset(st, 0, sizeof *st);
}

EA_API void ea_attn_state_reset(ea_attn_state *st) {
    size_t cells;
    if (!st) return;
    st->len = 0;
    st->seen = 0;
    cells = (size_t)st->B * st->heads * st->cap;
    if (st->score) memset(st->score, 0, cells * sizeof(float));
    if (st->ssm) memset(st->ssm, 0, (size_t)st->B * st->kdim * st->vdim * sizeof(float));
    if (st->conv) memset(st->conv, 0, (size_t)st->B * st->cap * st->kdim * sizeof(float));
}

/* What one entry of layer a's state holds: heads x (kdim key + vdim value)
   floats (mamba: kdim = inner width, vdim = N). */
static void ea__state_dims(const ea_attn *a, int *heads, int *kdim, int *vdim) {
    *heads = 1;
    *vdim = 0;
    if (a->variant->step == ea__mamba_step) {
        *kdim = ea__mamba_inner(a);
        *vdim = ea__mamba_n(a);
    } else if (a->variant->step == ea__crossmem_step) { /* K and V of all heads in one row */
        *kdim = 2 * a->cfg.dim;
    } else if (a->variant->step == ea__mla_step) { /* latent c and rotary key, shared by all heads */
        *kdim = ea__mla_latent(a) + a->rope_dim;
    } else {
        *heads = a->kv_heads;
        *kdim = *vdim = a->head_dim;
    }
}

/* A state made for this layer (a state from another layer would be read
   out of bounds). */
static int ea__state_fits(const ea_attn *a, const ea_attn_state *st) {
    int heads, kdim, vdim;
    ea__state_dims(a, &heads, &kdim, &vdim);
    return st->heads == heads && st->kdim == kdim && st->vdim == vdim;
}

EA_API ea_status ea_attn_state_init(ea_attn_state *st, const ea_attn *a, int B, int max_tokens, int max_chunk,
                                    ea_error *err) {
    const char *row;
    const ea_attn_opts *o;
    size_t cells;
    int ok = 1;
    if (!st || !a || !a->variant) return ea_error_set(err, EA_ERR_ARG, "attn_state_init: NULL argument");
    memset(st, 0, sizeof *st);
    row = a->variant->name;
    o = &a->cfg.opt;
    if (!a->variant->step)
        return ea_error_set(err, EA_ERR_CONFIG,
                            "attention '%s' has no streaming form; expected one of mha, mha-sep, mqa, gqa, single, "
                            "mla, h2o, crossmem, mamba (or deepseek, kimi)",
                            row);
    if (B <= 0 || max_chunk <= 0 || max_tokens < max_chunk || B > (1 << 20) || max_tokens > (1 << 26))
        return ea_error_set(err, EA_ERR_ARG,
                            "attn_state_init: B = %d, max_tokens = %d, max_chunk = %d: expected B >= 1, "
                            "1 <= max_chunk <= max_tokens <= 2^26",
                            B, max_tokens, max_chunk);
    st->B = B;
    st->max_chunk = max_chunk;
    ea__state_dims(a, &st->heads, &st->kdim, &st->vdim);
    if (a->variant->step == ea__mamba_step) { /* state [B, inner, N], conv tail [B, k-1, inner] */
        st->cap = ea__mamba_kc(a) - 1;
        st->ssm = (float *)ea__state_alloc(st, (size_t)B * st->kdim * st->vdim * sizeof(float), &ok);
        st->conv = (float *)ea__state_alloc(st, (size_t)B * st->cap * st->kdim * sizeof(float), &ok);
    } else {
        if (a->variant->step == ea__crossmem_step) { /* learned slots + a FIFO */
            st->cap = ea__opt(o->slots, 8) + ea__opt(o->memory, 256);
        } else {
            st->cap = max_tokens;
            if (strcmp(row, "h2o") == 0 && o->budget) {
                st->budget = o->budget;
                if (o->budget + max_chunk < max_tokens) st->cap = o->budget + max_chunk;
            }
            if (o->cache_window && o->cache_window + max_chunk < st->cap) st->cap = o->cache_window + max_chunk;
        }
        cells = (size_t)B * st->heads * st->cap;
        if ((double)B * st->heads * st->cap * (st->kdim + st->vdim + 2.0) > (double)EA_MAX_ELEMS) {
            ea_error_set(err, EA_ERR_CONFIG, "attn_state_init: %d sequences x %d heads x %d entries x %d floats is beyond "
                         "the %zu floats one buffer may hold", B, st->heads, st->cap, st->kdim + st->vdim, EA_MAX_ELEMS);
            memset(st, 0, sizeof *st);
            return EA_ERR_CONFIG;
        }
        st->k = (float *)ea__state_alloc(st, cells * st->kdim * sizeof(float), &ok);
        st->v = (float *)ea__state_alloc(st, cells * st->vdim * sizeof(float), &ok);
        st->pos = (int *)ea__state_alloc(st, cells * sizeof(int), &ok);
        if (a->variant->step == ea__kv_step && strcmp(row, "h2o") == 0) st->score = (float *)ea__state_alloc(st, cells * sizeof(float), &ok);
    }
    if (!ok) {
        ea_attn_state_free(st);
        return ea_error_set(err, EA_ERR_NOMEM, "attn_state_init: out of memory");
    }
    return EA_OK;
}


/* --- 8.30 The variant table ----------------------------------------------
   One row per variant; models, examples, tests and benchmarks iterate over
   it, and `--attn NAME` picks a row. */
static const ea_attn_variant ea__variants[] = {
    {"none", "identity control: no attention, no parameters", ea__none_build, ea__none_forward,
     ea__none_flops, NULL, NULL, 0},
    {"single", "single-head self-attention, merged QKV", ea__mha_build, ea__mha_forward,
     ea__sdpa_family_flops, ea__kv_step, ea__kv_cache_floats, 0},
    {"mha", "multi-head attention, one merged QKV projection", ea__mha_build, ea__mha_forward,
     ea__sdpa_family_flops, ea__kv_step, ea__kv_cache_floats, 0},
    {"mha-sep", "multi-head attention, separate Q, K, V projections", ea__gqa_build,
     ea__gqa_forward, ea__sdpa_family_flops, ea__kv_step, ea__kv_cache_floats, 0},
    {"mqa", "multi-query attention: one shared K/V head", ea__gqa_build, ea__gqa_forward,
     ea__sdpa_family_flops, ea__kv_step, ea__kv_cache_floats, 0},
    {"gqa", "grouped-query attention: n_kv_heads K/V heads", ea__gqa_build, ea__gqa_forward,
     ea__sdpa_family_flops, ea__kv_step, ea__kv_cache_floats, 0},
    {"local", "sliding window of half-width w, as a band of tiles", ea__masked_build, ea__local_forward,
     ea__local_flops, NULL, NULL, 0},
    {"strided", "every s-th key plus itself", ea__masked_build, ea__gather_forward, ea__gather_flops, NULL, NULL, 0},
    {"dilated", "window of 2w+1 keys spaced by a dilation rate", ea__masked_build, ea__gather_forward,
     ea__gather_flops, NULL, NULL, 0},
    {"topk", "each query keeps its k largest scores", ea__masked_build, ea__topk_forward, ea__topk_flops, NULL, NULL, 0},
    {"bigbird", "block-sparse: sliding, global and random blocks", ea__masked_build, ea__bigbird_forward,
     ea__bigbird_flops, NULL, NULL, 0},
    {"localglobal", "local windows plus learned global summary tokens", ea__localglobal_build,
     ea__localglobal_forward, ea__localglobal_flops, NULL, NULL, 0},
    {"flex", "user score_mod / mask_mod callbacks with a block mask", ea__flex_build, ea__flex_forward,
     ea__flex_flops, NULL, NULL, 0},
    {"linear", "kernel attention with elu+1 (or ReLU) features", ea__linear_build, ea__linear_forward,
     ea__linear_flops, NULL, NULL, 0},
    {"performer", "FAVOR+ orthogonal random features", ea__linear_build, ea__performer_forward,
     ea__performer_flops, NULL, NULL, 0},
    {"linformer", "keys and values projected along the sequence to k", ea__linformer_build,
     ea__linformer_forward, ea__linformer_flops, NULL, NULL, 0},
    {"nystrom", "Nystrom landmarks with an iterative pseudo-inverse", ea__nystrom_build, ea__nystrom_forward,
     ea__nystrom_flops, NULL, NULL, 0},
    {"hybrid", "gated mix of dilated local and global linear attention", ea__hybrid_build,
     ea__hybrid_forward, ea__hybrid_flops, NULL, NULL, 0},
    {"mla", "multi-head latent attention: low-rank K/V latent, decoupled RoPE", ea__mla_build, ea__mla_forward,
     ea__mla_flops, ea__mla_step, ea__mla_cache_floats, 0},
    {"h2o", "exact attention whose streaming cache keeps heavy hitters", ea__mha_build, ea__mha_forward,
     ea__sdpa_family_flops, ea__kv_step, ea__kv_cache_floats, 0},
    {"crossmem", "self-attention fused with attention to a memory bank", ea__crossmem_build, ea__crossmem_forward,
     ea__crossmem_flops, ea__crossmem_step, NULL, 0},
    {"mamba", "selective state-space scan (Mamba) in attention's place", ea__mamba_build, ea__mamba_forward,
     ea__mamba_flops, ea__mamba_step, NULL, 0},
    {"deepseek", "mla attention, blocks with a mixture of experts", ea__mla_build, ea__mla_forward, ea__mla_flops,
     ea__mla_step, ea__mla_cache_floats, 1},
    {"kimi", "multi-head attention, blocks with a mixture of experts", ea__mha_build, ea__mha_forward,
     ea__sdpa_family_flops, ea__kv_step, ea__kv_cache_floats, 1},
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
    for (i = 0; i < ea_attn_variant_count(); i++) { /* the names that fit, whole */
        size_t k = strlen(ea__variants[i].name), sep = i ? 2 : 0;
        if (len + sep + k + 1 > n) break;
        memcpy(buf + len, ", ", sep);
        memcpy(buf + len + sep, ea__variants[i].name, k + 1);
        len += sep + k;
    }
    return buf;
}

EA_API ea_status ea_attn_build(ea_attn *a, const char *name, const ea_attn_config *cfg,
                               ea_params *ps, const char *prefix, ea_error *err) {
    char names[512];
    ea_status st;
    if (!a || !cfg || !ps || !prefix) return ea_error_set(err, EA_ERR_ARG, "attn_build: NULL argument");
    memset(a, 0, sizeof *a);
    a->variant = ea_attn_variant_find(name);
    if (!a->variant)
        return ea_error_set(err, EA_ERR_NAME, "unknown attention variant '%s'; expected one of: %s",
                            name ? name : "(null)", ea_attn_variant_names(names, sizeof names));
    a->cfg = *cfg;
    a->seed = ea__layer_seed(cfg->opt.seed, prefix);
    if ((st = a->variant->build(a, ps, prefix, err)) != EA_OK) return st;
    return ea__check_time(a, a->variant->step == ea__kv_step || a->variant->step == ea__mla_step,
                          a->variant->step == ea__mla_step, err);
}

EA_API ea_tensor *ea_attn_step(ea_ctx *ctx, const ea_attn *a, ea_attn_state *st, ea_tensor *x) {
    if (!ea__ok(ctx, x, x)) return NULL;
    if (!a || !a->variant || !st) return ea__fail(ctx, EA_ERR_ARG, "attn_step: NULL argument");
    if (!a->variant->step)
        return ea__fail(ctx, EA_ERR_CONFIG, "attention '%s' has no streaming form", a->variant->name);
    if (st->B == 0) return ea__fail(ctx, EA_ERR_ARG, "attn_step: the state is not initialised (ea_attn_state_init)");
    if (!ea__state_fits(a, st))
        return ea__fail(ctx, EA_ERR_ARG, "attn_step '%s': the state was made for another layer (%d heads x %d + %d floats)",
                        a->variant->name, st->heads, st->kdim, st->vdim);
    return a->variant->step(ctx, a, st, x);
}

EA_API double ea_attn_cache_floats(const ea_attn *a) {
    return a && a->variant && a->variant->cache_floats ? a->variant->cache_floats(a) : 0.0;
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
   ========================================================================== */

/* --- Mixture-of-experts feed-forward (Shazeer et al. 2017; Fedus et al.
   2022, "Switch Transformers"; DeepSeek-AI 2024, DeepSeekMoE, V2, V3) -------
   A router scores every token for E experts, each a GELU MLP like the
   dense one; the token goes through its k best:
       s = softmax(x W_r)    or  s = σ(x W_r)  (opt.sigmoid: DeepSeek-V3)
       K(t) = the k largest s_t,e (ties: the lower e)
       g_t,e = s_t,e / Σ_{j∈K(t)} s_t,j        (renormalised; with softmax
               scores, the softmax of the k chosen logits: seed 001's rule)
       y_t = Σ_{e∈K(t)} g_t,e MLP_e(x_t) + MLP_shared(x_t)
   Capacity (opt.capacity percent): expert e takes at most
   C = ceil(capacity/100 · T·k/E) tokens per call, first come in token
   order; a token past the limit loses that expert (its gate becomes 0, it
   keeps its other experts and the residual): Switch's overflow rule.
   Load balance (Switch's auxiliary loss, DeepSeek's expert-level one):
       L_aux = E Σ_e f_e P_e,   f_e = tokens choosing e / (T·k) (a count,
       no gradient),   P_e = mean_t ŝ_t,e with ŝ = s normalised per token.
   When routing follows the scores (P = f), L_aux = E Σ f² >= 1, equal to 1
   exactly for uniform routing (Cauchy-Schwarz; tested).
   Gate backward, token t with kept set K and S = Σ_{j∈K(t)} s_t,j, for j
   in its top k:  ds_j = [j ∈ K] dg_j / S - Σ_{i∈K} dg_i g_i / S.
   The choice itself is piecewise constant (no gradient; tests keep away
   from ties).  Active cost per token 4·dim·hidden·(k + shared) + 2·dim·E
   FLOPs against the dense MLP's 4·dim·mlp_hidden; the default expert width
   mlp_hidden / (k + shared) makes the two equal.  One expert with k = 1 is
   the dense MLP (tested). */
typedef struct ea__route {
    int T, E, k;
    int *n, *wanted, *tok; /* per expert: kept tokens, choices, the kept list (tok[e·T ..]) */
    int *sel;              /* [T, E]: 0 not chosen, 1 chosen but over capacity, 2 kept */
} ea__route;

static void ea__gates_back(ea_ctx *ctx, ea_node *nd) {
    ea_tensor *s = nd->in[0];
    const ea__route *r = (const ea__route *)nd->aux[0];
    const float *g = nd->out->data, *dg = nd->out->grad;
    int t, e, E = r->E;
    (void)ctx;
    if (!s->grad) return;
    for (t = 0; t < r->T; t++) {
        const float *st = s->data + (size_t)t * E;
        float S = 0.0f, dot = 0.0f;
        for (e = 0; e < E; e++)
            if (r->sel[t * E + e]) S += st[e];
        if (S <= 0.0f) continue;
        for (e = 0; e < E; e++)
            if (r->sel[t * E + e] == 2) dot += dg[(size_t)t * E + e] * g[(size_t)t * E + e];
        for (e = 0; e < E; e++)
            if (r->sel[t * E + e])
                s->grad[(size_t)t * E + e] += ((r->sel[t * E + e] == 2 ? dg[(size_t)t * E + e] : 0.0f) - dot) / S;
    }
}

/* scores s [.., E] -> gates [T, E]; fills r (arena) */
static ea_tensor *ea__moe_gates(ea_ctx *ctx, ea_tensor *s, int k, int capacity, ea__route *r) {
    int E = s->shape[s->ndim - 1], T = (int)(s->size / (size_t)E), t, e, c, shape[2], cap;
    ea_tensor *out;
    ea_node *nd;
    shape[0] = T; shape[1] = E;
    out = ea__out(ctx, 2, shape, s, NULL, NULL);
    r->T = T; r->E = E; r->k = k;
    r->n = (int *)ea_ctx_alloc(ctx, 2 * (size_t)E * sizeof(int));
    r->tok = (int *)ea_ctx_alloc(ctx, (size_t)E * T * sizeof(int));
    r->sel = (int *)ea_ctx_alloc(ctx, (size_t)E * T * sizeof(int));
    if (!out || !r->n || !r->tok || !r->sel) return NULL;
    r->wanted = r->n + E;
    memset(r->n, 0, 2 * (size_t)E * sizeof(int));
    memset(r->sel, 0, (size_t)E * T * sizeof(int));
    cap = capacity ? (int)ceil((double)capacity * T * k / (100.0 * E)) : T;
    for (t = 0; t < T; t++) {
        const float *st = s->data + (size_t)t * E;
        float S = 0.0f;
        for (c = 0; c < k; c++) { /* the k largest, ties to the lower expert */
            int best = -1;
            for (e = 0; e < E; e++)
                if (!r->sel[t * E + e] && (best < 0 || st[e] > st[best])) best = e;
            r->sel[t * E + best] = 1;
            S += st[best];
            r->wanted[best]++;
            if (r->n[best] < cap) {
                r->tok[best * T + r->n[best]++] = t;
                r->sel[t * E + best] = 2;
            }
        }
        for (e = 0; e < E; e++)
            out->data[(size_t)t * E + e] = r->sel[t * E + e] == 2 && S > 0.0f ? st[e] / S : 0.0f;
    }
    nd = ea__record(ctx, ea__gates_back, out, s, NULL, NULL);
    if (nd) nd->aux[0] = r;
    return out;
}

/* rows tok[0..m) of x (rows of its last dim) -> [m, C]; backward scatters */
static void ea__gather_rows_back(ea_ctx *ctx, ea_node *nd) {
    ea_tensor *x = nd->in[0];
    const int *tok = (const int *)nd->aux[0];
    int m = nd->out->shape[0], C = nd->out->shape[1], i;
    (void)ctx;
    if (x->grad)
        for (i = 0; i < m; i++) ea__axpy(x->grad + (size_t)tok[i] * C, 1.0f, nd->out->grad + (size_t)i * C, C);
}

static ea_tensor *ea__gather_rows(ea_ctx *ctx, ea_tensor *x, const int *tok, int m) {
    int C = x->shape[x->ndim - 1], shape[2], i;
    ea_tensor *out;
    ea_node *nd;
    shape[0] = m; shape[1] = C;
    if (!ea__ok(ctx, x, x)) return NULL;
    out = ea__out(ctx, 2, shape, x, NULL, NULL);
    if (!out) return NULL;
    for (i = 0; i < m; i++) memcpy(out->data + (size_t)i * C, x->data + (size_t)tok[i] * C, (size_t)C * sizeof(float));
    nd = ea__record(ctx, ea__gather_rows_back, out, x, NULL, NULL);
    if (nd) nd->aux[0] = tok;
    return out;
}

/* out = acc + Σ_i g[tok_i, e] y_i at row tok_i  (acc may be NULL: zeros) */
static void ea__combine_back(ea_ctx *ctx, ea_node *nd) {
    ea_tensor *acc = nd->in[0], *y = nd->in[1], *g = nd->in[2];
    const int *tok = (const int *)nd->aux[0];
    int m = y->shape[0], C = y->shape[1], E = g->shape[1], e = nd->iarg[0], i;
    const float *d = nd->out->grad;
    size_t j;
    (void)ctx;
    if (acc && acc->grad)
        for (j = 0; j < acc->size; j++) acc->grad[j] += d[j];
    for (i = 0; i < m; i++) {
        const float *dr = d + (size_t)tok[i] * C;
        float gi = g->data[(size_t)tok[i] * E + e];
        if (y->grad) ea__axpy(y->grad + (size_t)i * C, gi, dr, C);
        if (g->grad) g->grad[(size_t)tok[i] * E + e] += ea__dot(dr, y->data + (size_t)i * C, C);
    }
}

static ea_tensor *ea__moe_combine(ea_ctx *ctx, ea_tensor *acc, ea_tensor *y, ea_tensor *g, const int *tok, int e,
                                  const ea_tensor *like) {
    int m, C, E, i;
    ea_tensor *out;
    ea_node *nd;
    if (!ea__ok(ctx, y, g)) return NULL;
    m = y->shape[0]; C = y->shape[1]; E = g->shape[1];
    out = ea__out(ctx, like->ndim, like->shape, acc, y, g);
    if (!out) return NULL;
    if (acc) memcpy(out->data, acc->data, out->size * sizeof(float));
    else memset(out->data, 0, out->size * sizeof(float));
    for (i = 0; i < m; i++)
        ea__axpy(out->data + (size_t)tok[i] * C, g->data[(size_t)tok[i] * E + e], y->data + (size_t)i * C, C);
    nd = ea__record(ctx, ea__combine_back, out, acc, y, g);
    if (nd) {
        nd->aux[0] = tok;
        nd->iarg[0] = e;
    }
    return out;
}

/* weight · E Σ_e f_e P_e; dŝ_t,e = weight·E·f_e/T, ds = (dŝ - Σ_j dŝ_j ŝ_j) / Σ_j s_j */
static void ea__moe_aux_back(ea_ctx *ctx, ea_node *nd) {
    ea_tensor *s = nd->in[0];
    const ea__route *r = (const ea__route *)nd->aux[0];
    int t, e, E = r->E;
    float w = nd->farg[0] * nd->out->grad[0];
    (void)ctx;
    if (!s->grad) return;
    for (t = 0; t < r->T; t++) {
        const float *st = s->data + (size_t)t * E;
        float sum = 0.0f, dot = 0.0f;
        for (e = 0; e < E; e++) sum += st[e];
        if (sum <= 0.0f) continue;
        for (e = 0; e < E; e++) dot += w * E * r->wanted[e] / ((float)r->T * r->k) / r->T * st[e] / sum;
        for (e = 0; e < E; e++)
            s->grad[(size_t)t * E + e] += (w * E * r->wanted[e] / ((float)r->T * r->k) / r->T - dot) / sum;
    }
}

static ea_tensor *ea__moe_aux(ea_ctx *ctx, ea_tensor *s, const ea__route *r, float weight) {
    int one = 1, t, e, E = r->E;
    double P, L = 0.0;
    ea_tensor *out;
    ea_node *nd;
    out = ea__out(ctx, 1, &one, s, NULL, NULL);
    if (!out) return NULL;
    for (e = 0; e < E; e++) {
        for (t = 0, P = 0.0; t < r->T; t++) {
            const float *st = s->data + (size_t)t * E;
            double sum = 0.0;
            int j;
            for (j = 0; j < E; j++) sum += st[j];
            P += sum > 0.0 ? st[e] / sum : 0.0;
        }
        L += (double)r->wanted[e] / ((double)r->T * r->k) * P / r->T;
    }
    out->data[0] = (float)(weight * E * L);
    nd = ea__record(ctx, ea__moe_aux_back, out, s, NULL, NULL);
    if (nd) {
        nd->aux[0] = r;
        nd->farg[0] = weight;
    }
    return out;
}

static ea_tensor *ea__mlp(ea_ctx *ctx, ea_tensor *x, ea_tensor *w1, ea_tensor *b1, ea_tensor *w2, ea_tensor *b2) {
    return ea_linear(ctx, ea_linear_gelu(ctx, x, w1, b1), w2, b2);
}

EA_API ea_status ea_moe_build(ea_moe *m, const ea_attn_opts *o, int dim, int mlp_hidden, ea_params *ps,
                              const char *prefix, ea_error *err) {
    char name[EA_NAME_LEN];
    int e, shape[2];
    if (!m || !o || !ps || !prefix) return ea_error_set(err, EA_ERR_ARG, "moe_build: NULL argument");
    memset(m, 0, sizeof *m);
    m->experts = o->experts;
    m->k = ea__opt(o->route_k, o->experts < 2 ? 1 : 2);
    m->shared = o->shared;
    m->hidden = ea__opt(o->expert_hidden, mlp_hidden / (m->k + m->shared) > 0 ? mlp_hidden / (m->k + m->shared) : 1);
    m->capacity = o->capacity;
    m->sigmoid = o->sigmoid;
    m->dim = dim;
    if (m->experts < 1 || m->experts > EA_MOE_MAX_EXPERTS || m->k < 1 || m->k > m->experts || m->shared < 0 ||
        m->shared > 16 || m->hidden < 1 || m->hidden > (1 << 20) || m->capacity < 0 || m->sigmoid < 0 ||
        m->sigmoid > 1 || dim <= 0)
        return ea_error_set(err, EA_ERR_CONFIG,
                            "moe: %d experts, route_k %d, shared %d, expert_hidden %d, capacity %d%%, sigmoid %d: "
                            "expected 1..%d experts, 1 <= route_k <= experts, 0..16 shared, hidden 1..2^20, "
                            "capacity >= 0, sigmoid 0 or 1",
                            m->experts, m->k, m->shared, m->hidden, m->capacity, m->sigmoid, EA_MOE_MAX_EXPERTS);
    shape[0] = m->experts; shape[1] = dim;
    snprintf(name, sizeof name, "%s.router.weight", prefix);
    m->router = ea_param(ps, name, 2, shape, EA_INIT_FANIN, (float)dim);
    for (e = 0; e < m->experts; e++) {
        snprintf(name, sizeof name, "%s.experts.%d", prefix, e);
        ea__linear_params(ps, name, "fc1", m->hidden, dim, &m->fc1_w[e], &m->fc1_b[e]);
        ea__linear_params(ps, name, "fc2", dim, m->hidden, &m->fc2_w[e], &m->fc2_b[e]);
    }
    if (m->shared) {
        snprintf(name, sizeof name, "%s.shared", prefix);
        ea__linear_params(ps, name, "fc1", m->shared * m->hidden, dim, &m->sh1_w, &m->sh1_b);
        ea__linear_params(ps, name, "fc2", dim, m->shared * m->hidden, &m->sh2_w, &m->sh2_b);
    }
    return EA_OK;
}

EA_API ea_tensor *ea_moe_forward(ea_ctx *ctx, const ea_moe *m, ea_tensor *x, float aux_weight, ea_tensor **aux,
                                 ea_moe_stats *stats) {
    ea_tensor *s, *g, *y = NULL;
    ea__route *r;
    int e;
    char s1[48];
    if (aux) *aux = NULL;
    if (!ea__ok(ctx, x, x)) return NULL;
    if (!m || !m->router) return ea__fail(ctx, EA_ERR_ARG, "moe_forward: the layer is not built (see ea_moe_build)");
    if (x->shape[x->ndim - 1] != m->dim)
        return ea__fail(ctx, EA_ERR_SHAPE, "moe: x %s; expected [.., %d]", ea__shape_str(x, s1, sizeof s1), m->dim);
    r = (ea__route *)ea_ctx_alloc(ctx, sizeof *r);
    if (!r) return NULL;
    s = ea_linear(ctx, x, m->router, NULL);
    s = m->sigmoid ? ea_act(ctx, s, EA_ACT_SIGMOID) : ea_softmax(ctx, s);
    if (!s || !(g = ea__moe_gates(ctx, s, m->k, m->capacity, r))) return NULL;
    if (m->shared) y = ea__mlp(ctx, x, m->sh1_w, m->sh1_b, m->sh2_w, m->sh2_b);
    for (e = 0; e < m->experts; e++) {
        const int *tok = r->tok + (size_t)e * r->T;
        if (!r->n[e]) continue;
        y = ea__moe_combine(ctx, y, ea__mlp(ctx, ea__gather_rows(ctx, x, tok, r->n[e]), m->fc1_w[e], m->fc1_b[e],
                                            m->fc2_w[e], m->fc2_b[e]),
                            g, tok, e, x);
    }
    if (aux) *aux = ea__moe_aux(ctx, s, r, aux_weight);
    if (stats) {
        for (e = 0; e < m->experts; e++) {
            stats->wanted[e] += r->wanted[e];
            stats->kept[e] += r->n[e];
        }
        stats->tokens += r->T;
    }
    return y;
}

/* --- The pre-norm block and the ViT ----------------------------------------
   Pre-norm transformer block (as in ViT, Dosovitskiy et al. 2021):
       x = x + Attn(LN1(x));   x = x + W2 · GELU(W1 · LN2(x) + b1) + b2
   (or x + MoE(LN2(x)) above, when opt.experts > 0 or the row is deepseek
   or kimi; any row of 8, mamba included, takes Attn's place).
   ViT: patch embedding (conv, kernel = stride = patch) -> [class token] ->
   + learned position embedding -> blocks -> LN -> mean over tokens (or the
   class token) -> head (Linear, or Linear-GELU-Linear).  Seed 000's tracker
   and seed 002's classifier are configurations of it; parameter names
   follow the PyTorch state_dict of the same module layout
   (blocks.i.attn.qkv.weight, blocks.i.mlp.0.weight, head.2.bias, ...).

   Seed 001's hosts put one attention layer (any row) between layers that
   are not attention:
     MLP host: flatten -> fc1 -> ReLU -> [B, tokens, dim] -> attention ->
               flatten -> fc2 -> ReLU -> head.  With tokens = 1 (seed 001's
               code) attention sees a sequence of one token, where softmax
               is 1 and every row collapses to a linear map of V.
     CNN host: conv 3x3 stride 2 (no bias) -> batch norm -> ReLU, twice ->
               the H'·W' positions as tokens -> attention -> mean over
               tokens -> head.  EA_POOL_MAX: stride-1 convs, each followed by
               a 2x2 max-pool (the document's text), the same token count.
   With `residual` the attention layer is x + attn(x) in either host (the
   seed's code has attn(x)).  A row with a MoE feed-forward (deepseek,
   kimi, opt.experts) adds a + MoE(LN(a)) after the attention a, as its
   blocks do.  Dropout follows
   the embedding, every attention output and every MLP output. */
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

EA_API void ea_classifier_config_default(ea_vit_config *c, int host, const char *attn, int in_chans, int img_size,
                                         int classes) {
    memset(c, 0, sizeof *c);
    c->host = host;
    c->img_size = img_size;
    c->in_chans = in_chans;
    c->out_dim = classes;
    c->n_heads = 4;
    c->n_kv_heads = 2;
    c->pos_std = 0.02f;
    snprintf(c->attn, sizeof c->attn, "%s", attn ? attn : "mha");
    if (host == EA_HOST_MLP) { /* 16 tokens of 32: a hidden layer of 512 */
        c->depth = 1;
        c->dim = 32;
        c->tokens = 16;
        c->mlp_hidden = 256;
    } else if (host == EA_HOST_CNN) {
        c->depth = 1;
        c->dim = 64;
        c->width = 32;
        c->mlp_hidden = 256; /* the MoE rows' expert width */
    } else { /* seed 002; a row that cannot write to a class token pools by the mean */
        c->patch = 4;
        c->dim = 48;
        c->depth = 4;
        c->mlp_hidden = 192;
        c->pool = !strcmp(c->attn, "none") || !strcmp(c->attn, "mamba") ? EA_POOL_MEAN : EA_POOL_CLS;
    }
}

/* Tokens the attention layers see. */
static int ea__vit_tokens(const ea_vit_config *c) {
    int s = c->img_size;
    if (c->host == EA_HOST_MLP) return c->tokens;
    if (c->host == EA_HOST_CNN) {
        s = c->pool == EA_POOL_MAX ? s / 2 / 2 : ((s - 1) / 2 + 1 - 1) / 2 + 1;
        return s * s;
    }
    return (s / c->patch) * (s / c->patch) + (c->pool == EA_POOL_CLS);
}

static ea_status ea__vit_check(const ea_vit_config *c, ea_error *err) {
    if (c->host < EA_HOST_VIT || c->host > EA_HOST_CNN)
        return ea_error_set(err, EA_ERR_CONFIG, "model: host %d; expected EA_HOST_VIT (0), EA_HOST_MLP (1) or EA_HOST_CNN (2)",
                            c->host);
    if (!(c->dropout >= 0.0f && c->dropout < 1.0f))
        return ea_error_set(err, EA_ERR_CONFIG, "model: dropout %g must be in [0, 1)", (double)c->dropout);
    if (c->host != EA_HOST_VIT) {
        const char *h = c->host == EA_HOST_MLP ? "mlp" : "cnn";
        if (c->img_size <= 0 || c->in_chans <= 0 || c->dim <= 0 || c->mlp_hidden <= 0 || c->out_dim <= 0 ||
            c->img_size > 8192 || c->in_chans > 4096 || c->dim > 65536 || c->mlp_hidden > (1 << 20) ||
            c->out_dim > (1 << 20))
            return ea_error_set(err, EA_ERR_CONFIG,
                                "%s host: img_size %d, in_chans %d, dim %d, mlp_hidden %d, out_dim %d must be positive "
                                "(img_size <= 8192, in_chans <= 4096, dim <= 65536, the others <= 2^20)",
                                h, c->img_size, c->in_chans, c->dim, c->mlp_hidden, c->out_dim);
        if (c->depth != 1)
            return ea_error_set(err, EA_ERR_CONFIG, "%s host: depth %d; the host has one attention layer (depth 1)", h,
                                c->depth);
        if (c->host == EA_HOST_MLP && (c->tokens < 1 || c->tokens > 65536 || (double)c->tokens * c->dim > (1 << 24) ||
                                       (double)c->in_chans * c->img_size * c->img_size > (1 << 26)))
            return ea_error_set(err, EA_ERR_CONFIG,
                                "mlp host: tokens %d must be in [1, 65536] with tokens x dim <= 2^24 and an image "
                                "of at most 2^26 values", c->tokens);
        if (c->host == EA_HOST_CNN && (c->width < 1 || c->width > 65536 || c->img_size < 4 ||
                                       (c->pool != EA_POOL_MEAN && c->pool != EA_POOL_MAX)))
            return ea_error_set(err, EA_ERR_CONFIG,
                                "cnn host: width %d must be in [1, 65536], img_size %d at least 4 and pool mean (0) "
                                "or max (2), got %d", c->width, c->img_size, c->pool);
        return EA_OK;
    }
    if (c->pool != EA_POOL_MEAN && c->pool != EA_POOL_CLS)
        return ea_error_set(err, EA_ERR_CONFIG, "vit: pool %d; expected EA_POOL_MEAN (0) or EA_POOL_CLS (1)", c->pool);
    /* the class token sits at position 0: a row that carries nothing into
       it (none; a causal mask or mamba's scan, where position 0 sees only
       itself) would give every image the same prediction */
    if (c->pool == EA_POOL_CLS && (c->causal || !strcmp(c->attn, "none") || !strcmp(c->attn, "mamba")))
        return ea_error_set(err, EA_ERR_CONFIG,
                            "vit: pool = cls reads a class token at position 0, which attention '%s'%s never writes to "
                            "(every image would get the same output); use pool = mean (EA_POOL_MEAN)",
                            c->attn, c->causal ? " with a causal mask" : "");
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

/* A block's attention under `prefix` ("blocks.0." or ""), over T tokens;
   then its norm2 and, for the MoE rows, its experts (1 when it has them). */
static ea_status ea__build_attn(ea_vit *m, ea_block *bl, const char *prefix, int T, int *moe, ea_error *err) {
    const ea_vit_config *cfg = &m->cfg;
    char name[EA_NAME_LEN];
    ea_attn_config ac;
    ea_status st;
    int shape[1];
    shape[0] = cfg->dim;
    ac.dim = cfg->dim;
    ac.n_heads = cfg->n_heads;
    ac.n_kv_heads = cfg->n_kv_heads;
    ac.causal = cfg->causal;
    ac.opt = cfg->opt;
    ac.mods = NULL;
    if (!ac.opt.max_len) ac.opt.max_len = T; /* linformer: the model's token count */
    snprintf(name, sizeof name, "%sattn", prefix);
    if ((st = ea_attn_build(&bl->attn, cfg->attn, &ac, &m->params, name, err)) != EA_OK) return st;
    *moe = cfg->opt.experts || bl->attn.variant->moe;
    if (cfg->host != EA_HOST_VIT && !*moe) return EA_OK; /* a host's attention stands alone */
    snprintf(name, sizeof name, "%snorm2.weight", prefix);
    bl->ln2_w = ea_param(&m->params, name, 1, shape, EA_INIT_ONES, 0.0f);
    snprintf(name, sizeof name, "%snorm2.bias", prefix);
    bl->ln2_b = ea_param(&m->params, name, 1, shape, EA_INIT_ZEROS, 0.0f);
    if (*moe) {
        ea_attn_opts o = cfg->opt;
        if (!o.experts) { o.experts = 4; if (!o.shared) o.shared = 1; } /* deepseek, kimi defaults */
        snprintf(name, sizeof name, "%smoe", prefix);
        return ea_moe_build(&bl->moe, &o, cfg->dim, cfg->mlp_hidden, &m->params, name, err);
    }
    return EA_OK;
}

/* Batch norm "name": weight, bias and PyTorch's three buffers. */
static void ea__bn_params(ea_params *ps, const char *name, int C, ea_tensor **bn) {
    static const char *const part[5] = {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"};
    static const ea_init init[5] = {EA_INIT_ONES, EA_INIT_ZEROS, EA_INIT_ZEROS, EA_INIT_ONES, EA_INIT_ZEROS};
    char buf[EA_NAME_LEN];
    int j, shape[1];
    for (j = 0; j < 5; j++) {
        shape[0] = j == 4 ? 1 : C;
        snprintf(buf, sizeof buf, "%s.%s", name, part[j]);
        bn[j] = j < 2 ? ea_param(ps, buf, 1, shape, init[j], 0.0f) : ea_buffer(ps, buf, 1, shape, init[j]);
    }
}

static ea_status ea__host_init(ea_vit *m, int *moe, ea_error *err) {
    const ea_vit_config *c = &m->cfg;
    int shape[4];
    if (c->host == EA_HOST_MLP) {
        ea__linear_params(&m->params, "fc1", NULL, c->tokens * c->dim, c->in_chans * c->img_size * c->img_size, &m->fc1_w,
                          &m->fc1_b);
        if (ea__build_attn(m, &m->blocks[0], "", c->tokens, moe, err) != EA_OK) return err ? err->status : EA_ERR_CONFIG;
        ea__linear_params(&m->params, "fc2", NULL, c->mlp_hidden, c->tokens * c->dim, &m->fc2_w, &m->fc2_b);
        ea__linear_params(&m->params, "head", NULL, c->out_dim, c->mlp_hidden, &m->head1_w, &m->head1_b);
        return EA_OK;
    }
    shape[0] = c->width; shape[1] = c->in_chans; shape[2] = shape[3] = 3;
    m->conv_w[0] = ea_param(&m->params, "conv1.weight", 4, shape, EA_INIT_FANIN, (float)(9 * c->in_chans));
    ea__bn_params(&m->params, "bn1", c->width, m->bn[0]);
    shape[0] = c->dim; shape[1] = c->width;
    m->conv_w[1] = ea_param(&m->params, "conv2.weight", 4, shape, EA_INIT_FANIN, (float)(9 * c->width));
    ea__bn_params(&m->params, "bn2", c->dim, m->bn[1]);
    if (ea__build_attn(m, &m->blocks[0], "", ea__vit_tokens(c), moe, err) != EA_OK) return err ? err->status : EA_ERR_CONFIG;
    ea__linear_params(&m->params, "head", NULL, c->out_dim, c->dim, &m->head1_w, &m->head1_b);
    return EA_OK;
}

EA_API ea_status ea_vit_init(ea_vit *m, const ea_vit_config *cfg, uint64_t seed, ea_error *err) {
    char name[EA_NAME_LEN];
    int shape[4], i, T, D, moe = 0;
    ea_status st;
    ea_error local;
    if (!err) err = &local; /* the helpers report through it */
    if (!m || !cfg) return ea_error_set(err, EA_ERR_ARG, "vit_init: NULL argument");
    memset(m, 0, sizeof *m);
    if ((st = ea__vit_check(cfg, err)) != EA_OK) return st;
    m->cfg = *cfg;
    D = cfg->dim;
    T = ea__vit_tokens(cfg);
    if (cfg->host != EA_HOST_VIT) {
        if ((st = ea__host_init(m, &moe, err)) != EA_OK) {
            ea_vit_free(m);
            return st;
        }
        goto built;
    }
    shape[0] = 1; shape[1] = T; shape[2] = D;
    m->pos = ea_param(&m->params, "pos_embed", 3, shape, EA_INIT_NORMAL, cfg->pos_std);
    if (cfg->pool == EA_POOL_CLS) {
        shape[1] = 1;
        m->cls = ea_param(&m->params, "cls_token", 3, shape, EA_INIT_NORMAL, cfg->pos_std);
    }
    shape[0] = D; shape[1] = cfg->in_chans; shape[2] = cfg->patch; shape[3] = cfg->patch;
    m->patch_w = ea_param(&m->params, "patch_embed.proj.weight", 4, shape, EA_INIT_FANIN,
                          (float)(cfg->in_chans * cfg->patch * cfg->patch));
    m->patch_b = ea_param(&m->params, "patch_embed.proj.bias", 1, shape, EA_INIT_FANIN,
                          (float)(cfg->in_chans * cfg->patch * cfg->patch));
    for (i = 0; i < cfg->depth; i++) {
        ea_block *bl = &m->blocks[i];
        char prefix[32];
        shape[0] = D;
        snprintf(name, sizeof name, "blocks.%d.norm1.weight", i);
        bl->ln1_w = ea_param(&m->params, name, 1, shape, EA_INIT_ONES, 0.0f);
        snprintf(name, sizeof name, "blocks.%d.norm1.bias", i);
        bl->ln1_b = ea_param(&m->params, name, 1, shape, EA_INIT_ZEROS, 0.0f);
        snprintf(prefix, sizeof prefix, "blocks.%d.", i);
        if ((st = ea__build_attn(m, bl, prefix, T, &moe, err)) != EA_OK) {
            ea_vit_free(m);
            return st;
        }
        if (moe) continue;
        snprintf(name, sizeof name, "blocks.%d.mlp", i);
        ea__linear_params(&m->params, name, "0", cfg->mlp_hidden, D, &bl->fc1_w, &bl->fc1_b);
        ea__linear_params(&m->params, name, "3", D, cfg->mlp_hidden, &bl->fc2_w, &bl->fc2_b);
    }
built:
    if (m->blocks[0].moe.experts) {
        m->moe_stats = (ea_moe_stats *)EFFATTN_MALLOC((size_t)cfg->depth * sizeof(ea_moe_stats));
        if (!m->moe_stats) {
            ea_vit_free(m);
            return ea_error_set(err, EA_ERR_NOMEM, "vit: out of memory for the routing statistics");
        }
        memset(m->moe_stats, 0, (size_t)cfg->depth * sizeof(ea_moe_stats));
    }
    if (cfg->host != EA_HOST_VIT) goto alloc;
    shape[0] = D;
    m->norm_w = ea_param(&m->params, "norm.weight", 1, shape, EA_INIT_ONES, 0.0f);
    m->norm_b = ea_param(&m->params, "norm.bias", 1, shape, EA_INIT_ZEROS, 0.0f);
    if (cfg->head_hidden) {
        ea__linear_params(&m->params, "head", "0", cfg->head_hidden, D, &m->head1_w, &m->head1_b);
        ea__linear_params(&m->params, "head", "2", cfg->out_dim, cfg->head_hidden, &m->head2_w,
                          &m->head2_b);
    } else {
        ea__linear_params(&m->params, "head", NULL, cfg->out_dim, D, &m->head1_w, &m->head1_b);
    }
alloc:
    if ((st = ea_params_alloc(&m->params, err)) != EA_OK) {
        ea_vit_free(m);
        return st;
    }
    ea_params_init(&m->params, seed);
    return EA_OK;
}

EA_API void ea_vit_redraw(ea_vit *m, int draw) {
    int i;
    for (i = 0; m && i < m->cfg.depth; i++) ea_attn_redraw(&m->blocks[i].attn, draw);
}

EA_API void ea_vit_free(ea_vit *m) {
    if (!m) return;
    ea_params_free(&m->params);
    EFFATTN_FREE(m->moe_stats);
    m->moe_stats = NULL;
}

/* --- The block stack of inference in one parallel region ------------------
   With no tape to record, the ViT's blocks of exact attention (mha, single,
   h2o, and the separate-projection rows mha-sep, mqa, gqa) run in one team
   that stays up from the first block to the last.  Each thread owns a
   range of token rows, whole row tiles of the GEMM (EA_MR), and takes
   them through every row-wise step: LN1, the Q/K/V product, then, after
   the attention, the output projection, the residual add, LN2, fc1 with
   GELU, fc2 and its add, the next block's LN1 and Q/K/V, and after the
   last block the final layer norm.  Only the attention mixes rows: a
   barrier before its items (a query block reads every key row) and one
   after (its outputs feed other threads' rows).
   Op by op, each product and each pass forked a team of its own and split
   its rows its own way: seven forks a block, the layer norms and adds on
   one thread at batch 1, and most rows read out of another core's cache.
   Every value is computed as the ops compute it (each row's products in
   the same order, the attention's items as ea_sdpa_flash_fwd splits and
   computes them, GELU and the adds row by row): the same bits as the tape
   path, which the tests check on 1 to 3 threads.  It takes weights that a
   core keeps in its L2 from block to block (K·N <= EA_GRID_MIN_B, the
   GEMM's rows-only case), and more rows than a dot-product pass would
   take (EA_GEMV_ROWS).  The tracker, weights packed (regions --pack), four
   rounds alternating with the op-by-op build on the device's Xeon: batch
   1 at 4 threads 214-256 -> 160-186 us a step, at 16 threads 230-256 ->
   96-134; batch 32 at 16 threads 1488-1567 -> 1183-1348.  This project's
   2-core Zen 5, three rounds: batch 1 at 2 threads 122-126 -> 105-110 us
   (one thread 178-185 either way), batch 32 at 2 threads 2981-3048 ->
   2750-2829. */
static void ea__linear_range(float *out, const float *inp, const ea_tensor *w, const ea_tensor *b, int i0, int i1,
                             int K, int N, ea__span_fn post, int accumulate) {
    if (i0 >= i1) return;
    if (w->packed) ea__gemm_rows(i0, i1, N, K, inp, K, 1, w->packed, w->shape[0], 1, out, N, accumulate, b ? b->data : NULL);
    else ea__gemm_rows(i0, i1, N, K, inp, K, 1, w->data, 1, K, out, N, accumulate, b ? b->data : NULL);
    ea__gemm_post(post, out, out, N, i0, i1, 0, N);
}

/* h += inp·wᵀ + b over n rows: a residual connection.  The product adds
   into h as its tiles are stored (EA__GEMM_RESIDUAL): no sum rows written
   and read again, no pass of adds (ea__add_n had 1.9-2.0% of the samples
   of the tracker's batch-32 inference, perf on this project's Xeon VM).
   Same bits as the tape's h + linear(...) where K is one k block; a
   longer K goes through sum rows and the add.  The tracker, weights
   packed, one thread pinned, ten rounds in turn on the device's H100 host
   (a Xeon of model 143): batch 32 10.24-10.35 -> 10.20-10.32 ms (faster
   in 8 of the 10 rounds), batch 1 322-326 -> 321-325 us. */
static void ea__linear_add(float *h, float *sum, const float *inp, const ea_tensor *w, const ea_tensor *b, int n, int K,
                           int N) {
    if (K <= EA_KC) {
        ea__linear_range(h, inp, w, b, 0, n, K, N, NULL, EA__GEMM_RESIDUAL);
        return;
    }
    ea__linear_range(sum, inp, w, b, 0, n, K, N, NULL, 0);
    ea__add_n(h, h, sum, (size_t)n * N);
}

static int ea__stack_fits(const ea_ctx *ctx, const ea_vit *m, int M) {
    const ea_vit_config *c = &m->cfg;
    int i;
    if (ctx->grad_enabled || ctx->training || ctx->probe || c->host != EA_HOST_VIT || M <= EA_GEMV_ROWS) return 0;
    if ((double)c->dim * c->mlp_hidden > EA_GRID_MIN_B) return 0;
    for (i = 0; i < c->depth; i++) {
        const ea_attn *a = &m->blocks[i].attn;
        if (m->blocks[i].moe.experts || (a->variant->forward != ea__mha_forward && a->variant->forward != ea__gqa_forward) ||
            a->cfg.opt.time || a->cfg.opt.cache_window || 3.0 * c->dim * c->dim > EA_GRID_MIN_B)
            return 0;
    }
    return 1;
}

/* The attention shape of a block in the stack: Q, K, V in one [M, 3·dim]
   product for mha (merged), or Q [M, dim] then K and V [M, kv_heads·dh]
   each.  The scratch is sized from the same shapes the items get. */
static void ea__stack_shape(ea_sdpa_shape *s, const ea_attn *a, int B, int T, int D) {
    int merged = a->variant->forward == ea__mha_forward, kvw = a->kv_heads * a->head_dim;
    memset(s, 0, sizeof *s);
    s->B = B; s->nq = s->nk = T; s->H = a->cfg.n_heads; s->Hkv = a->kv_heads; s->dh = a->head_dim;
    s->causal = a->cfg.causal ? 1 : 0;
    s->scale = 1.0f / sqrtf((float)s->dh);
    s->ldq = merged ? 3 * D : D;
    s->ldk = s->ldv = merged ? 3 * D : kvw;
    s->ldo = (ptrdiff_t)s->H * s->dh;
}

/* Rows pass through a block's row-wise steps in chunks: from the output
   projection to the next block's Q/K/V product, a chunk's layer norm, fc1
   (GELU) and sum rows (used only where a residual's K spans more than
   one k block: ea__linear_add) stay in the thread's own buffers, about
   EA_STACK_FLOATS floats (256 KiB, half of the smallest L2 here, Zen 3's),
   in its L2 from step to step, where whole ranges of rows had gone through
   L3 or memory between steps (at batch 32 on one thread fc1's 2,080 x 256
   outputs are 2.1 MB, written, read by GELU and read again by fc2).  A
   chunk is whole row tiles from the thread's first row: the same tiles,
   the same bits.  The tracker at batch 32, weights packed, one thread
   pinned, builds alternating (bench/results/peers-cpu/
   stack-chunks-ab-xeon16-zen3.txt): the device's Xeon 5.7-7.5% less
   time in each of the six rounds where both builds ran in the host's same
   mode (13.6-13.8 -> 12.8-13.0 ms; 168-row chunks; 336 and 384 level with
   them in the same call, 192 and 768 gained as much against the old build
   in an earlier one), this project's Zen 3 within its noise; 16 threads
   (one chunk a thread) and unpacked weights (each chunk packs the panels
   again) level.  A chunk is at most one thread's share of the rows, so
   small batches on many threads take no more arena than they need. */
#define EA_STACK_FLOATS 65536
EA_INLINE int ea__stack_rows(int D, int F) {
    int r = EA_STACK_FLOATS / (2 * D + F) / EA_MR * EA_MR;
    return r > EA_MR ? r : EA_MR;
}

/* LN1 and the Q/K/V product of block l for rows [i0, i0 + n) of h, with
   the chunk buffer ln; Q, K and V go to their rows of qkv. */
static void ea__stack_qkv(const ea_vit *m, int l, int M, const float *h, float *qkv, float *ln, int i0, int n) {
    const ea_block *bl = &m->blocks[l];
    const ea_attn *a = &bl->attn;
    const int D = m->cfg.dim, kvw = a->kv_heads * a->head_dim;
    ea__layernorm_rows(ln, NULL, NULL, h + (size_t)i0 * D, bl->ln1_w->data, bl->ln1_b->data, 0, n, D, 1e-5f);
    if (a->variant->forward == ea__mha_forward) {
        ea__linear_range(qkv + (size_t)i0 * 3 * D, ln, a->w[0], a->w[1], 0, n, D, 3 * D, NULL, 0);
    } else {
        float *k = qkv + (size_t)M * D, *v = k + (size_t)M * kvw;
        ea__linear_range(qkv + (size_t)i0 * D, ln, a->w[0], a->w[1], 0, n, D, D, NULL, 0);
        ea__linear_range(k + (size_t)i0 * kvw, ln, a->w[4], a->w[5], 0, n, D, kvw, NULL, 0);
        ea__linear_range(v + (size_t)i0 * kvw, ln, a->w[6], a->w[7], 0, n, D, kvw, NULL, 0);
    }
}

/* What the stack's threads share: the model, h [M = B·T rows, dim] (the
   residual stream, in place), the Q/K/V rows, the attention's output rows,
   the final norm's rows, the flash scratch, and the chunk length. */
typedef struct {
    const ea_vit *m;
    float *h, *qkv, *o, *out, *scratch;
    int B, T, M, rows;
} ea__stack_job;

/* Block l's attention shape and where its Q, K and V rows start. */
static void ea__stack_attn_of(const ea__stack_job *j, int l, ea_sdpa_shape *s, const float **q, const float **k,
                              const float **v) {
    const ea_attn *a = &j->m->blocks[l].attn;
    const int D = j->m->cfg.dim, merged = a->variant->forward == ea__mha_forward, kvw = a->kv_heads * a->head_dim;
    ea__stack_shape(s, a, j->B, j->T, D);
    *q = j->qkv;
    *k = merged ? j->qkv + D : j->qkv + (size_t)j->M * D;
    *v = merged ? j->qkv + 2 * D : *k + (size_t)j->M * kvw;
}

/* Rows [r0, r1) in chunks, with the thread's chunk buffers (ln, then sum
   and fc1's rows): block l's steps after its attention (l = -1: only the
   first block's Q/K/V), then the next block's Q/K/V or the final norm. */
static void ea__stack_rows_pass(const ea__stack_job *j, int l, int r0, int r1, float *ln) {
    const ea_vit *m = j->m;
    const int D = m->cfg.dim, F = m->cfg.mlp_hidden;
    float *sum = ln + (size_t)j->rows * D, *mid = sum + (size_t)j->rows * D;
    int r, n;
    for (r = r0; r < r1; r += n) {
        float *hr = j->h + (size_t)r * D;
        n = r1 - r < j->rows ? r1 - r : j->rows;
        if (l >= 0) {
            const ea_block *bl = &m->blocks[l];
            ea__linear_add(hr, sum, j->o + (size_t)r * D, bl->attn.w[2], bl->attn.w[3], n, D, D);
            ea__layernorm_rows(ln, NULL, NULL, hr, bl->ln2_w->data, bl->ln2_b->data, 0, n, D, 1e-5f);
            ea__linear_range(mid, ln, bl->fc1_w, bl->fc1_b, 0, n, D, F, ea__gelu_fwd_span, 0);
            ea__linear_add(hr, sum, mid, bl->fc2_w, bl->fc2_b, n, F, D);
        }
        if (l + 1 < m->cfg.depth) ea__stack_qkv(m, l + 1, j->M, j->h, j->qkv, ln, r, n);
        else ea__layernorm_rows(j->out + (size_t)r * D, NULL, NULL, hr, m->norm_w->data, m->norm_b->data, 0, n, D, 1e-5f);
    }
}

/* Images [b0, b1) through every block on the calling thread: their rows,
   their attention items (split 1, in order), no other thread's rows read
   or written. */
static void ea__stack_images(const ea__stack_job *j, int b0, int b1, float *ln) {
    int l, w;
    ea__stack_rows_pass(j, -1, b0 * j->T, b1 * j->T, ln);
    for (l = 0; l < j->m->cfg.depth; l++) {
        ea_sdpa_shape s;
        const float *q, *k, *v;
        int per;
        ea__stack_attn_of(j, l, &s, &q, &k, &v);
        per = s.H * ea__fa_count(j->T, EA_FA_BR); /* an image's items */
        for (w = per * b0; w < per * b1; w++) ea__fa_fwd_item(j->o, NULL, j->scratch, q, k, v, &s, NULL, NULL, w, 1, NULL);
        ea__stack_rows_pass(j, l, b0 * j->T, b1 * j->T, ln);
    }
}

/* Whole images a thread (ea__vit_stack) unless the busiest thread's
   extra image would leave the others idle for more than an eighth of the
   work. */
static int ea__stack_by_images(int B, int nt) {
    int most = (B + nt - 1) / nt; /* images on the busiest thread, taken evenly */
    return (most * nt - B) * 8 <= B;
}

/* h [B, T, dim] through every block (in place: h is this forward's own),
   then the final layer norm into a new tensor.
   With a batch of at least as many images as threads, the threads take
   images (in groups of up to a chunk's rows, while every thread still gets
   two groups or more) from a shared counter, and each group goes through
   the whole stack on the thread that took it: no barrier, no row that
   another core wrote.  The rows had been cut evenly over the threads with
   two barriers a block, and on the device's Xeon (16 threads, batch 32,
   the same 128 rows each) the threads' rows took 346 to 672 us a step:
   the host's cores ran at different speeds, and every barrier waited for
   the slowest; whole images assigned evenly, without the barriers, were
   level with that (the region's end waits just the same).  Fewer images
   than threads (batch 1 on 4), or so few more that whole images would
   leave threads idle (batch 17 on 16: one thread takes two), keep the
   even cut (ea__stack_by_images).  Either way each value takes the same
   sums: the same bits.  bench --tracker, batch 32, rounds in turn with
   the build before: the device's Xeon (a noisy host) on 16 threads
   0.923-1.153 -> 0.859-1.034 ms, on 4 (mha) 3.01-3.07 -> 2.11-2.59; this
   machine's 2 threads 5.55-5.78 -> 4.76-5.33 in a spell where its two
   cores ran unevenly, 4.03-4.08 -> 4.07-4.11 in a quiet one
   (bench/results/peers-cpu/stack-images-ab.txt). */
static ea_tensor *ea__vit_stack(ea_ctx *ctx, const ea_vit *m, ea_tensor *h) {
    const ea_vit_config *c = &m->cfg;
    int B = h->shape[0], T = h->shape[1], D = c->dim, F = c->mlp_hidden, M = B * T, team = ea_num_threads() > 1;
    const int threads = team ? ea_num_threads() : 1, tiles = (M + EA_MR - 1) / EA_MR;
    /* a chunk is at most one thread's share of the rows: batch 1 on 16
       threads takes a row tile's buffers a thread, not 168 rows' each */
    const int share = (tiles + threads - 1) / threads * EA_MR;
    const int rows = ea__stack_rows(D, F) < share ? ea__stack_rows(D, F) : share;
    const size_t own_floats = (size_t)rows * (2 * D + F); /* a thread's ln, sum and fc1 rows */
    int group = rows / T < B / (2 * threads) ? rows / T : B / (2 * threads);
    size_t sc = 0;
    float *chunks;
    ea__stack_job j;
    ea_tensor *out = ea_tensor_new(ctx, 3, h->shape, 0);
    int i;
    for (i = 0; i < c->depth; i++) { /* the flash scratch of the largest block's shape (a share */
        ea_sdpa_shape s;               /* holds a copy of K and V for some: ea__fa_kv_floats) */
        ea__stack_shape(&s, &m->blocks[i].attn, B, T, D);
        sc = ea__fa_scratch_floats(&s) > sc ? ea__fa_scratch_floats(&s) : sc;
    }
    j.m = m;
    j.h = h->data;
    j.B = B;
    j.T = T;
    j.M = M;
    j.rows = rows;
    j.qkv = ea__floats(ctx, (size_t)M * 3 * D);
    j.o = ea__floats(ctx, (size_t)M * D);
    chunks = ea__floats(ctx, own_floats * (size_t)threads);
    j.scratch = ea__floats(ctx, sc);
    if (!out || !j.qkv || !j.o || !chunks || !j.scratch) return NULL;
    j.out = out->data;
    group = group > 1 ? group : 1;
    if (!team) {
        ea__stack_images(&j, 0, B, chunks); /* one thread: every row in chunks, as one group */
        return out;
    }
#ifdef _OPENMP
    _Pragma("omp parallel")
#endif
    {
#ifdef _OPENMP
        int nt = omp_get_num_threads();
#else
        int nt = 1;
#endif
        int t = ea__thread_id(), l, w, g;
        float *ln = chunks + own_floats * (size_t)t;
        if (ea__stack_by_images(B, nt)) {
#ifdef _OPENMP
            _Pragma("omp for schedule(dynamic) nowait")
#endif
            for (g = 0; g < (B + group - 1) / group; g++)
                ea__stack_images(&j, g * group, (g + 1) * group < B ? (g + 1) * group : B, ln);
        } else {
            int r0 = tiles * t / nt * EA_MR, r1 = tiles * (t + 1) / nt * EA_MR < M ? tiles * (t + 1) / nt * EA_MR : M;
            ea__stack_rows_pass(&j, -1, r0, r1, ln);
            for (l = 0; l < c->depth; l++) {
                ea_sdpa_shape s;
                const float *q, *k, *v;
                int split, work;
                ea__stack_attn_of(&j, l, &s, &q, &k, &v);
                split = ea__fa_split(&s, team);
                work = B * s.H * ea__fa_count(T, EA_FA_BR) * split;
                /* every thread's Q/K/V rows in, the items as
                   ea_sdpa_flash_fwd schedules them; each loop ends in the
                   barrier the output projection needs (and after which
                   the next block's Q/K/V may overwrite qkv) */
#ifdef _OPENMP
                _Pragma("omp barrier")
#endif
                if (ea__fa_count(T, EA_FA_BC) >= 8) {
#ifdef _OPENMP
                    _Pragma("omp for schedule(dynamic)")
#endif
                    for (w = 0; w < work; w++)
                        ea__fa_fwd_item(j.o, NULL, j.scratch, q, k, v, &s, NULL, NULL, w, split, NULL);
                } else {
#ifdef _OPENMP
                    _Pragma("omp for schedule(static)")
#endif
                    for (w = 0; w < work; w++)
                        ea__fa_fwd_item(j.o, NULL, j.scratch, q, k, v, &s, NULL, NULL, w, split, NULL);
                }
                ea__stack_rows_pass(&j, l, r0, r1, ln);
            }
        }
    }
    return out;
}

EA_API ea_tensor *ea_vit_forward(ea_ctx *ctx, const ea_vit *m, ea_tensor *x) {
    return ea_vit_forward_aux(ctx, m, x, 0.0f, NULL);
}

/* x + MoE(LN2(x)) of block i, its balance loss added to *aux */
static ea_tensor *ea__moe_residual(ea_ctx *ctx, const ea_vit *m, int i, ea_tensor *x, float aux_weight, ea_tensor **aux) {
    const ea_block *bl = &m->blocks[i];
    ea_tensor *l = NULL, *a = ea_layernorm(ctx, x, bl->ln2_w, bl->ln2_b, 1e-5f);
    a = ea_moe_forward(ctx, &bl->moe, a, aux_weight, aux ? &l : NULL, m->moe_stats ? &m->moe_stats[i] : NULL);
    if (aux) *aux = *aux ? ea_add(ctx, *aux, l) : l;
    return ea_add(ctx, x, ea_dropout(ctx, a, m->cfg.dropout));
}

/* A host's attention layer over tokens h: attn(h) (or h + attn(h)), then
   the MoE rows' experts. */
static ea_tensor *ea__host_attention(ea_ctx *ctx, const ea_vit *m, ea_tensor *h, float aux_weight, ea_tensor **aux) {
    ea_tensor *a = ea_dropout(ctx, ea_attn_forward(ctx, &m->blocks[0].attn, h), m->cfg.dropout);
    if (m->cfg.residual) a = ea_add(ctx, h, a);
    return m->blocks[0].moe.experts ? ea__moe_residual(ctx, m, 0, a, aux_weight, aux) : a;
}

static ea_tensor *ea__host_forward(ea_ctx *ctx, const ea_vit *m, ea_tensor *x, float aux_weight, ea_tensor **aux) {
    const ea_vit_config *c = &m->cfg;
    ea_tensor *h;
    int shape[3], B = x->shape[0], k;
    if (c->host == EA_HOST_MLP) {
        shape[0] = B; shape[1] = c->in_chans * c->img_size * c->img_size;
        h = ea_act(ctx, ea_linear(ctx, ea_reshape(ctx, x, 2, shape), m->fc1_w, m->fc1_b), EA_ACT_RELU);
        shape[1] = c->tokens; shape[2] = c->dim;
        h = ea__host_attention(ctx, m, ea_reshape(ctx, h, 3, shape), aux_weight, aux);
        shape[1] = c->tokens * c->dim;
        h = ea_act(ctx, ea_linear(ctx, ea_reshape(ctx, h, 2, shape), m->fc2_w, m->fc2_b), EA_ACT_RELU);
        return ea_linear(ctx, ea_dropout(ctx, h, c->dropout), m->head1_w, m->head1_b);
    }
    h = ea_channels_last(ctx, x);
    for (k = 0; k < 2; k++) {
        const int stride = c->pool == EA_POOL_MAX ? 1 : 2;
        ea_tensor *const *bn = m->bn[k];
        h = ea_conv2d(ctx, h, m->conv_w[k], NULL, stride, 1);
        h = ea_act(ctx, ea_batchnorm(ctx, h, bn[0], bn[1], bn[2], bn[3], bn[4], 0.1f, 1e-5f), EA_ACT_RELU);
        if (c->pool == EA_POOL_MAX) h = ea_maxpool2d(ctx, h, 2, 2);
    }
    if (!h) return NULL;
    shape[0] = B; shape[1] = h->shape[1] * h->shape[2]; shape[2] = c->dim;
    h = ea__host_attention(ctx, m, ea_reshape(ctx, h, 3, shape), aux_weight, aux);
    return ea_linear(ctx, ea_mean_tokens(ctx, h), m->head1_w, m->head1_b);
}

EA_API ea_tensor *ea_vit_forward_aux(ea_ctx *ctx, const ea_vit *m, ea_tensor *x, float aux_weight, ea_tensor **aux) {
    const ea_vit_config *c = &m->cfg;
    ea_tensor *h;
    int i;
    char s1[48];
    if (aux) *aux = NULL;
    if (!ea__ok(ctx, x, x)) return NULL;
    if (x->ndim != 4 || x->shape[1] != c->in_chans || x->shape[2] != c->img_size ||
        x->shape[3] != c->img_size)
        return ea__fail(ctx, EA_ERR_SHAPE, "%s: expected input [B, %d, %d, %d], got %s",
                        c->host == EA_HOST_MLP ? "mlp host" : c->host == EA_HOST_CNN ? "cnn host" : "vit", c->in_chans,
                        c->img_size, c->img_size, ea__shape_str(x, s1, sizeof s1));
    if (c->host != EA_HOST_VIT) return ea__host_forward(ctx, m, x, aux_weight, aux);
    h = ea_patch_embed(ctx, x, m->patch_w, m->patch_b);
    if (m->cls) {
        int shape[2];
        shape[0] = 1; shape[1] = c->dim;
        h = ea_prepend_tokens(ctx, ea_reshape(ctx, m->cls, 2, shape), h);
    }
    h = ea_dropout(ctx, ea_add(ctx, h, m->pos), c->dropout);
    if (h && ea__stack_fits(ctx, m, h->shape[0] * h->shape[1])) { /* inference: the blocks and the norm in one team */
        h = ea__vit_stack(ctx, m, h);
    } else {
        for (i = 0; i < c->depth; i++) {
            const ea_block *bl = &m->blocks[i];
            ea_tensor *a = ea_layernorm(ctx, h, bl->ln1_w, bl->ln1_b, 1e-5f);
            a = ea_attn_forward(ctx, &bl->attn, a);
            h = ea_add(ctx, h, ea_dropout(ctx, a, c->dropout));
            if (bl->moe.experts) {
                h = ea__moe_residual(ctx, m, i, h, aux_weight, aux);
                continue;
            }
            a = ea__mlp(ctx, ea_layernorm(ctx, h, bl->ln2_w, bl->ln2_b, 1e-5f), bl->fc1_w, bl->fc1_b, bl->fc2_w,
                        bl->fc2_b);
            h = ea_add(ctx, h, ea_dropout(ctx, a, c->dropout));
        }
        h = ea_layernorm(ctx, h, m->norm_w, m->norm_b, 1e-5f);
    }
    if (m->cls) {
        int shape[2];
        shape[0] = x->shape[0]; shape[1] = c->dim;
        h = ea_reshape(ctx, ea_slice_tokens(ctx, h, 0, 1), 2, shape);
    } else {
        h = ea_mean_tokens(ctx, h);
    }
    if (!c->head_hidden) return ea_linear(ctx, h, m->head1_w, m->head1_b);
    return ea_linear(ctx, ea_linear_gelu(ctx, h, m->head1_w, m->head1_b), m->head2_w, m->head2_b);
}

/* Matrix-multiply FLOPs of one forward pass on one image (layer norms,
   GELU and softmax add well under 1%). */
EA_API double ea_vit_flops(const ea_vit *m) {
    const ea_vit_config *c = &m->cfg;
    double T = ea__vit_tokens(c), D = c->dim, f, P;
    int i;
    if (c->host == EA_HOST_MLP) {
        f = 2.0 * c->in_chans * c->img_size * c->img_size * T * D + 2.0 * T * D * c->mlp_hidden + 2.0 * c->mlp_hidden * c->out_dim;
    } else if (c->host == EA_HOST_CNN) { /* conv 1 at the input's resolution (max) or half of it (stride 2) */
        P = c->pool == EA_POOL_MAX ? (double)c->img_size * c->img_size : (double)((c->img_size + 1) / 2) * ((c->img_size + 1) / 2);
        f = 18.0 * P * c->width * c->in_chans + 18.0 * T * (c->pool == EA_POOL_MAX ? 4.0 : 1.0) * D * c->width;
        f += 2.0 * D * c->out_dim;
    } else {
        P = (double)(c->img_size / c->patch) * (c->img_size / c->patch);
        f = 2.0 * P * D * c->in_chans * c->patch * c->patch;
    }
    for (i = 0; i < c->depth; i++)
    {
        const ea_moe *e = &m->blocks[i].moe;
        f += m->blocks[i].attn.variant->flops(&m->blocks[i].attn, (int)T);
        f += e->experts ? T * (4.0 * D * e->hidden * (e->k + e->shared) + 2.0 * D * e->experts)
                        : c->host == EA_HOST_VIT ? 4.0 * T * D * c->mlp_hidden : 0.0;
    }
    if (c->host != EA_HOST_VIT) return f;
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
   parameter; buffers (batch norm's running statistics) are not parameters. */
EA_API void ea_adamw_init(ea_adamw *o, float lr, float weight_decay) {
    o->lr = lr;
    o->beta1 = 0.9f;
    o->beta2 = 0.999f;
    o->eps = 1e-8f;
    o->weight_decay = weight_decay;
    o->step = 0;
}

/* One span of a run of parameters: each value's update is its own, so the
   bits do not depend on the thread count (one thread took 1.2 ms of the
   tracker's 16 ms step at 16 threads: 208,432 values, two divisions and a
   root each). */
typedef struct {
    const ea_adamw *o;
    ea_params *ps;
    size_t lo;
    float bc1, bc2, decay;
} ea__adamw_job;
static void ea__adamw_chunk(const void *arg, size_t o, size_t len) {
    const ea__adamw_job *j = (const ea__adamw_job *)arg;
    const ea_adamw *opt = j->o;
    ea_params *ps = j->ps;
    size_t i;
    for (i = j->lo + o; i < j->lo + o + len; i++) {
        float g = ps->grad[i];
        float m = ps->m[i] = opt->beta1 * ps->m[i] + (1.0f - opt->beta1) * g;
        float v = ps->v[i] = opt->beta2 * ps->v[i] + (1.0f - opt->beta2) * g * g;
        ps->data[i] = ps->data[i] * j->decay - opt->lr * (m / j->bc1) / (sqrtf(v / j->bc2) + opt->eps);
    }
}

EA_API void ea_adamw_step(ea_adamw *o, ea_params *ps) {
    ea__adamw_job j;
    size_t hi;
    int t;
    ea_params_unpack(ps); /* the transposed copies would go stale */
    o->step++;
    j.o = o;
    j.ps = ps;
    j.lo = 0;
    j.bc1 = 1.0f - powf(o->beta1, (float)o->step);
    j.bc2 = 1.0f - powf(o->beta2, (float)o->step);
    j.decay = 1.0f - o->lr * o->weight_decay;
    /* runs of the flat buffer between buffers (usually the whole of it) */
    for (t = 0; t <= ps->count; t++) {
        if (t < ps->count && !ps->info[t].buffer) continue;
        hi = t < ps->count ? ps->info[t].offset : ps->n;
        ea__par_chunks(ea__adamw_chunk, &j, hi - j.lo, 16.0);
        if (t < ps->count) j.lo = ps->info[t].offset + (ps->tensors[t]->size + 15) / 16 * 16;
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

/* --- gradient accumulation in cache-sized chunks ---------------------------
   A batch's mean loss is Σ_c (n_c / B) · mean loss of chunk c, so its
   gradient can be built chunk by chunk: backpropagate each chunk's loss
   weighted by n_c / B into the same gradient buffer.  The result is the
   one-pass gradient up to rounding.  Why bother: the tape keeps every
   activation and its gradient until the backward (about 1.4 MB per image
   in seed 002's ViT at 28x28), so one pass over a batch of 128 streams
   some 180 MB through memory, where a chunk of 16 stays in the last-level
   cache.  Measured on one Xeon core (ViT step, batch 128, Fashion-MNIST
   size): one pass 122 ms; chunks of 24 / 16 / 12 images 89 / 81 / 81 ms.
   The default chunk holds about EA_CHUNK_BYTES of tape: a block keeps per
   token some 10·dim + 2·mlp floats (its input, Q/K/V, attention output,
   projection, sums, norms, the MLP's two hidden layers), each with a
   gradient of the same size.  That gives 12 images for the ViT and the
   whole batch for the MLP host, whose tape is small and whose weights
   (re-read by every chunk) are not: there, chunks of 16 cost 9.8 ms a
   step against 6.7 ms in one pass.
   Batch norm and MoE routing (capacity, balance loss) are functions of the
   whole batch: such models keep one chunk. */
#define EA_CHUNK_BYTES ((double)(16 << 20))

EA_API int ea_classifier_chunk(const ea_vit *m, int B, int want) {
    const ea_vit_config *c = &m->cfg;
    int i, whole = c->host == EA_HOST_CNN; /* its convolutions are followed by batch norm */
    for (i = 0; i < c->depth; i++) whole |= m->blocks[i].moe.experts > 0;
    if (want <= 0) {
        double per_image = 2.0 * sizeof(float) * c->depth * ea__vit_tokens(c) * (10.0 * c->dim + 2.0 * c->mlp_hidden);
        want = per_image * B <= EA_CHUNK_BYTES ? B : (int)(EA_CHUNK_BYTES / per_image);
        want = want < 1 ? 1 : want;
    }
    return whole || want > B ? B : want;
}

EA_API ea_status ea_classifier_grad(ea_ctx *ctx, const ea_vit *m, const float *x, const int *labels, int B,
                                    int chunk, float smoothing, float aux_weight, float *loss, int *hits) {
    const ea_vit_config *c;
    size_t per;
    double total = 0.0;
    int c0, n, h = 0, one = 1;
    if (!m || B < 1 || !x || !labels)
        return ea_error_set(&ctx->err, EA_ERR_ARG, "classifier_grad: need a model and a batch of at least 1 image with "
                            "labels, got %d%s", B, m ? "" : " and no model");
    c = &m->cfg;
    per = (size_t)c->in_chans * c->img_size * c->img_size;
    chunk = ea_classifier_chunk(m, B, chunk);
    ea_params_zero_grad((ea_params *)&m->params);
    for (c0 = 0; c0 < B; c0 += n) {
        ea_tensor *xt, *logits, *l, *aux = NULL, *w;
        n = B - c0 < chunk ? B - c0 : chunk;
        ea_ctx_reset(ctx);
        ctx->training = 1;
        ctx->grad_enabled = 1;
        xt = ea_tensor_4d(ctx, n, c->in_chans, c->img_size, c->img_size, 0);
        w = ea_tensor_new(ctx, 1, &one, 0);
        if (!xt || !w) return ctx->err.status;
        memcpy(xt->data, x + (size_t)c0 * per, (size_t)n * per * sizeof(float));
        w->data[0] = (float)n / (float)B;
        logits = ea_vit_forward_aux(ctx, m, xt, aux_weight, &aux);
        l = ea_cross_entropy_smooth(ctx, logits, labels + c0, smoothing);
        if (aux) l = ea_add(ctx, l, aux);
        l = ea_mul(ctx, l, w);
        if (!l || ea_backward(ctx, l) != EA_OK) return ctx->err.status != EA_OK ? ctx->err.status : EA_ERR_ARG;
        total += l->data[0];
        h += ea_topk_hits(logits->data, labels + c0, n, c->out_dim, 1);
    }
    if (loss) *loss = (float)total;
    if (hits) *hits = h;
    return EA_OK;
}

/* --- data-parallel training ------------------------------------------------
   Why weights local_n / global_n and a sum, not a mean of the ranks'
   gradients: the last batch of an epoch may not split evenly, and the
   global batch's mean loss is Σ_r (n_r / N) · (mean loss of rank r's slice)
   whatever the split.  With one rank the weight is 1 and the buffer is
   untouched, so a single process gives the same bits as before. */
EA_API void ea_dist_single(ea_dist *d) {
    d->rank = 0;
    d->size = 1;
    d->allreduce = NULL;
    d->user = NULL;
}

EA_API void ea_shard(int n, int rank, int size, int *lo, int *hi) {
    if (n < 0 || size < 1 || rank < 0 || rank >= size) {
        *lo = *hi = 0;
        return;
    }
    *lo = (int)((int64_t)n * rank / size);
    *hi = (int)((int64_t)n * (rank + 1) / size);
}

static ea_status ea__dist_check(const ea_dist *d, const ea_params *ps, const char *what, ea_error *err) {
    if (!d || !ps || !ps->grad)
        return ea_error_set(err, EA_ERR_ARG, "%s: need a distribution and allocated parameters", what);
    if (d->size < 1 || d->rank < 0 || d->rank >= d->size)
        return ea_error_set(err, EA_ERR_ARG, "%s: rank %d of %d processes; expected 0 <= rank < size", what, d->rank, d->size);
    if (d->size > 1 && !d->allreduce)
        return ea_error_set(err, EA_ERR_ARG, "%s: %d processes but no allreduce function", what, d->size);
    return EA_OK;
}

EA_API ea_status ea_dist_grads(const ea_dist *d, ea_params *ps, int local_n, int global_n, ea_error *err) {
    size_t i;
    float w;
    ea_status st = ea__dist_check(d, ps, "dist_grads", err);
    if (st != EA_OK) return st;
    if (global_n < 1 || local_n < 0 || local_n > global_n)
        return ea_error_set(err, EA_ERR_ARG, "dist_grads: %d local samples of a global batch of %d; expected "
                            "0 <= local <= global and global >= 1", local_n, global_n);
    if (d->size == 1) return local_n == global_n ? EA_OK : ea_error_set(err, EA_ERR_ARG,
        "dist_grads: one process holds %d of a global batch of %d samples; expected all", local_n, global_n);
    w = (float)local_n / (float)global_n;
    for (i = 0; i < ps->n; i++) ps->grad[i] *= w;
    return d->allreduce(d->user, ps->grad, ps->n, err);
}

EA_API ea_status ea_dist_buffers(const ea_dist *d, ea_params *ps, float *tmp, ea_error *err) {
    int t;
    ea_status st = ea__dist_check(d, ps, "dist_buffers", err);
    if (st != EA_OK || d->size == 1) return st;
    if (!tmp) return ea_error_set(err, EA_ERR_ARG, "dist_buffers: need a scratch buffer of %zu floats", ps->n);
    /* the buffers' values in their slots of a zeroed flat copy, summed, divided */
    memset(tmp, 0, ps->n * sizeof(float));
    for (t = 0; t < ps->count; t++)
        if (ps->info[t].buffer) memcpy(tmp + ps->info[t].offset, ps->tensors[t]->data, ps->tensors[t]->size * sizeof(float));
    if ((st = d->allreduce(d->user, tmp, ps->n, err)) != EA_OK) return st;
    for (t = 0; t < ps->count; t++)
        if (ps->info[t].buffer) {
            size_t j;
            for (j = 0; j < ps->tensors[t]->size; j++) ps->tensors[t]->data[j] = tmp[ps->info[t].offset + j] / (float)d->size;
        }
    return EA_OK;
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
    ea_params_unpack(ps);
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
#define EA_CK_VERSION 4u   /* 2 added the attention options, 3 their count, 4 the classifier fields; older versions load */
#define EA_CK_HOST 6       /* host, pool, tokens, width, residual, dropout */
#define EA_CK_MAX_ENTRIES 100000u
#define EA_CK_CONFIG_V1 (12 * 4 + 32)
#define EA_CK_OPTS_V2 17   /* options a version-2 file holds, without a count */
#define EA_CK_CONFIG_BYTES (EA_CK_CONFIG_V1 + 4 + 4 * EA_ATTN_OPTS)
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
    {
        ea_attn_opts o = c->opt;
        ea__put_le(b, EA_ATTN_OPTS, 4);
        for (i = 0; i < EA_ATTN_OPTS; i++) ea__put_le(b, (uint32_t)*ea__opt_at(&o, i), 4);
    }
    memcpy(&u, &c->dropout, 4);
    ea__put_le(b, EA_CK_HOST, 4);
    ea__put_le(b, (uint32_t)c->host, 4);
    ea__put_le(b, (uint32_t)c->pool, 4);
    ea__put_le(b, (uint32_t)c->tokens, 4);
    ea__put_le(b, (uint32_t)c->width, 4);
    ea__put_le(b, (uint32_t)c->residual, 4);
    ea__put_le(b, u, 4);
}


/* The options' count (version 3 stores it; version 2 held 17, version 1 none). */
static uint32_t ea__ck_opts(const unsigned char *p, uint32_t version) {
    return version >= 3 ? (uint32_t)ea__get_le(p + EA_CK_CONFIG_V1, 4) : version == 2 ? EA_CK_OPTS_V2 : 0;
}

/* Bytes of the configuration: its fixed part, the options and (version 4)
   the classifier fields; 0 when `size` bytes cannot hold it. */
static uint32_t ea__ck_config_bytes(const unsigned char *p, size_t size, uint32_t version) {
    uint32_t n = EA_CK_CONFIG_V1 + (version >= 3 ? 4 : 0) + 4 * ea__ck_opts(p, version);
    if (version < 4) return n;
    if (size < (size_t)n + 4 || ea__get_le(p + n, 4) != EA_CK_HOST) return 0;
    return n + 4 + 4 * EA_CK_HOST;
}

static void ea__get_config(const unsigned char *p, uint32_t version, ea_vit_config *c) {
    int v[11], i, n_opts = (int)ea__ck_opts(p, version);
    const unsigned char *o = p + EA_CK_CONFIG_V1 + (version >= 3 ? 4 : 0);
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
    for (i = 0; i < n_opts; i++) *ea__opt_at(&c->opt, i) = (int)(int32_t)(uint32_t)ea__get_le(o + 4 * i, 4);
    if (version >= 4) { /* checked by ea__ck_config_bytes */
        const unsigned char *h = o + 4 * n_opts + 4;
        c->host = (int)(int32_t)(uint32_t)ea__get_le(h, 4);
        c->pool = (int)(int32_t)(uint32_t)ea__get_le(h + 4, 4);
        c->tokens = (int)(int32_t)(uint32_t)ea__get_le(h + 8, 4);
        c->width = (int)(int32_t)(uint32_t)ea__get_le(h + 12, 4);
        c->residual = (int)(int32_t)(uint32_t)ea__get_le(h + 16, 4);
        u = (uint32_t)ea__get_le(h + 20, 4);
        memcpy(&c->dropout, &u, 4);
    }
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
    uint32_t i, version, cfg_bytes;
    int pass, k;
    if (!buf || size < 16 + EA_CK_CONFIG_V1 + 8 || memcmp(buf, EA_CK_MAGIC, 8) != 0)
        return ea_error_set(err, EA_ERR_FORMAT, "not an effattn checkpoint (bad magic or too short)");
    version = (uint32_t)ea__get_le(buf + 8, 4);
    if (version < 1 || version > EA_CK_VERSION)
        return ea_error_set(err, EA_ERR_FORMAT, "checkpoint version %u; this build reads versions 1 to %u", version,
                            EA_CK_VERSION);
    if (size < 16 + EA_CK_CONFIG_V1 + 12) return ea_error_set(err, EA_ERR_FORMAT, "checkpoint too short for its header");
    if (ea__ck_opts(buf + 16, version) > EA_ATTN_OPTS)
        return ea_error_set(err, EA_ERR_FORMAT, "checkpoint holds %u attention options; this build knows %d",
                            ea__ck_opts(buf + 16, version), EA_ATTN_OPTS);
    cfg_bytes = ea__ck_config_bytes(buf + 16, size - 16, version);
    if (!cfg_bytes || size < 16 + cfg_bytes + 8)
        return ea_error_set(err, EA_ERR_FORMAT, "checkpoint too short for its header (or a bad count of classifier fields)");
    if (ea_crc32(0, buf + 8, size - 12) != (uint32_t)ea__get_le(buf + size - 4, 4))
        return ea_error_set(err, EA_ERR_FORMAT, "checkpoint checksum mismatch: the file is damaged or truncated");
    table_bytes = ea__get_le(buf + 12, 4);
    if (table_bytes < cfg_bytes + 4 || table_bytes > size - 20)
        return ea_error_set(err, EA_ERR_FORMAT, "checkpoint table of %llu bytes does not fit the file",
                            (unsigned long long)table_bytes);
    ea__get_config(buf + 16, version, &cfg);
    if (cfg_out) *cfg_out = cfg;
    v.n = (uint32_t)ea__get_le(buf + 16 + cfg_bytes, 4);
    v.table = buf + 16 + cfg_bytes + 4;
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
            strcmp(cfg.attn, c->attn) != 0 || (strcmp(cfg.attn, "gqa") == 0 && cfg.n_kv_heads != c->n_kv_heads) ||
            memcmp(&cfg.opt, &c->opt, sizeof cfg.opt) != 0 || cfg.host != c->host || cfg.pool != c->pool ||
            cfg.tokens != c->tokens || cfg.width != c->width || cfg.residual != c->residual) /* dropout may differ */
            return ea_error_set(err, EA_ERR_CONFIG,
                                "checkpoint holds another model: host %d, attention '%s', dim %d, depth %d, heads %d, "
                                "image %d (this model: %d, '%s', %d, %d, %d, %d; or other options)",
                                cfg.host, cfg.attn, cfg.dim, cfg.depth, cfg.n_heads, cfg.img_size, c->host, c->attn,
                                c->dim, c->depth, c->n_heads, c->img_size);
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
    ea_params_unpack(&m->params);
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
    if (size >= 2 && buf[0] == 0x1f && buf[1] == 0x8b) { /* gzipped, as Debian ships it */
        unsigned char *raw;
        s = ea_gunzip(buf, size, &raw, &size, err);
        EFFATTN_FREE(buf);
        buf = raw;
    }
    if (s == EA_OK) s = ea_idx_parse(out, buf, size, err);
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

/* --- gzip and DEFLATE -------------------------------------------------------
   DEFLATE (RFC 1951) is a run of blocks: stored (raw bytes), or Huffman-
   coded with a fixed code or with codes sent at the block's start.  Symbols
   0-255 are bytes, 256 ends the block, 257-285 are lengths 3-258 followed
   by a distance code: "copy `length` bytes from `distance` back".  Codes
   are canonical: only each symbol's code length is sent, and the codes of
   one length are consecutive integers in symbol order, so a decoder reads
   one bit at a time and compares with the first code of each length.  That
   is slower than zlib's lookup tables (Fashion-MNIST's 47 MB take about a
   second) and fits on a page.  gzip (RFC 1952) wraps one DEFLATE stream in
   a 10-byte header (plus optional fields) and a trailer of the data's
   CRC-32 and length. */
typedef struct ea__bits {
    const unsigned char *p;
    size_t n, pos;   /* input bytes, next byte */
    uint32_t buf;    /* bits not yet used, first bit lowest */
    int cnt, overrun;
} ea__bits;

static uint32_t ea__getbits(ea__bits *s, int need) {
    uint32_t v;
    while (s->cnt < need) {
        if (s->pos >= s->n) {
            s->overrun = 1;
            return 0;
        }
        s->buf |= (uint32_t)s->p[s->pos++] << s->cnt;
        s->cnt += 8;
    }
    v = s->buf & ((1u << need) - 1u);
    s->buf >>= need;
    s->cnt -= need;
    return v;
}

typedef struct ea__huff {
    short count[16];  /* codes of each length */
    short sym[320];   /* symbols ordered by code */
} ea__huff;

/* 0: a complete code; > 0: incomplete (allowed, an unused code fails when
   read); -1: more codes than lengths allow */
static int ea__huff_build(ea__huff *h, const unsigned char *len, int n) {
    short next[16];
    int i, left = 1;
    memset(h->count, 0, sizeof h->count);
    for (i = 0; i < n; i++) h->count[len[i]]++;
    for (i = 1; i < 16; i++) {
        left = 2 * left - h->count[i];
        if (left < 0) return -1;
    }
    next[1] = 0;
    for (i = 1; i < 15; i++) next[i + 1] = (short)(next[i] + h->count[i]);
    for (i = 0; i < n; i++)
        if (len[i]) h->sym[next[len[i]]++] = (short)i;
    return left;
}

static int ea__huff_read(ea__bits *s, const ea__huff *h) {
    int code = 0, first = 0, index = 0, l;
    for (l = 1; l < 16; l++) {
        code |= (int)ea__getbits(s, 1);
        if (s->overrun) return -1;
        if (code - first < h->count[l]) return h->sym[index + code - first];
        index += h->count[l];
        first = (first + h->count[l]) << 1;
        code <<= 1;
    }
    return -1;
}

/* Lengths 3-258 (codes 257-285) and distances 1-32768 (codes 0-29): the
   base of each code and the extra bits that follow it. */
static const short ea__lbase[29] = {3,  4,  5,  6,  7,  8,  9,  10, 11,  13,  15,  17,  19,  23, 27,
                                    31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
static const unsigned char ea__lextra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                             2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const unsigned short ea__dbase[30] = {1,   2,   3,   4,   5,   7,    9,    13,   17,   25,   33,   49,    65,    97,    129,
                                             193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
static const unsigned char ea__dextra[30] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

/* The stream at s into out[0 .. cap); NULL on success, else what was wrong. */
static const char *ea__inflate(ea__bits *s, unsigned char *out, size_t cap, size_t *out_n) {
    static const unsigned char order[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
    ea__huff lit, dist;
    unsigned char len[320];
    size_t o = 0;
    int last = 0;
    while (!last) {
        int type;
        last = (int)ea__getbits(s, 1);
        type = (int)ea__getbits(s, 2);
        if (s->overrun) return "the stream ends inside a block header";
        if (type == 0) { /* stored: from the next byte boundary, LEN, ~LEN, bytes */
            size_t L;
            s->buf = 0;
            s->cnt = 0;
            if (s->n - s->pos < 4) return "a stored block ends inside its length";
            L = (size_t)s->p[s->pos] | (size_t)s->p[s->pos + 1] << 8;
            if ((L ^ ((size_t)s->p[s->pos + 2] | (size_t)s->p[s->pos + 3] << 8)) != 0xffff)
                return "a stored block's length and its complement disagree";
            s->pos += 4;
            if (s->n - s->pos < L) return "a stored block runs past the end of the file";
            if (cap - o < L) return "the data is longer than the gzip trailer says";
            memcpy(out + o, s->p + s->pos, L);
            s->pos += L;
            o += L;
            continue;
        }
        if (type == 3) return "a block of the reserved type 3";
        if (type == 1) { /* the fixed code */
            int i;
            for (i = 0; i < 288; i++) len[i] = (unsigned char)(i < 144 ? 8 : i < 256 ? 9 : i < 280 ? 7 : 8);
            ea__huff_build(&lit, len, 288);
            for (i = 0; i < 30; i++) len[i] = 5;
            ea__huff_build(&dist, len, 30);
        } else { /* codes sent in the block, themselves coded */
            int nlit = (int)ea__getbits(s, 5) + 257, ndist = (int)ea__getbits(s, 5) + 1, ncl = (int)ea__getbits(s, 4) + 4;
            int i, sym;
            ea__huff cl;
            memset(len, 0, 19);
            for (i = 0; i < ncl; i++) len[order[i]] = (unsigned char)ea__getbits(s, 3);
            if (s->overrun) return "the stream ends inside a code description";
            if (nlit > 286 || ndist > 30) return "a block declares more than 286 literal or 30 distance codes";
            if (ea__huff_build(&cl, len, 19) != 0) return "a bad code-length code";
            for (i = 0; i < nlit + ndist;) {
                int rep, val = 0;
                if ((sym = ea__huff_read(s, &cl)) < 0) return "a bad code length";
                if (sym < 16) {
                    len[i++] = (unsigned char)sym;
                    continue;
                }
                if (sym == 16) {
                    if (i == 0) return "a repeat of the previous code length with none before it";
                    val = len[i - 1];
                    rep = 3 + (int)ea__getbits(s, 2);
                } else {
                    rep = sym == 17 ? 3 + (int)ea__getbits(s, 3) : 11 + (int)ea__getbits(s, 7);
                }
                if (s->overrun || i + rep > nlit + ndist) return "code lengths run past their count";
                while (rep--) len[i++] = (unsigned char)val;
            }
            if (len[256] == 0) return "a block without an end-of-block code";
            if (ea__huff_build(&lit, len, nlit) < 0 || ea__huff_build(&dist, len + nlit, ndist) < 0)
                return "an over-subscribed code";
        }
        for (;;) {
            int sym = ea__huff_read(s, &lit), d;
            size_t L, D;
            if (sym < 0) return "a bad literal/length code (damaged or truncated data)";
            if (sym < 256) {
                if (o == cap) return "the data is longer than the gzip trailer says";
                out[o++] = (unsigned char)sym;
                continue;
            }
            if (sym == 256) break;
            sym -= 257;
            if (sym >= 29) return "a length code beyond 285";
            L = (size_t)ea__lbase[sym] + ea__getbits(s, ea__lextra[sym]);
            d = ea__huff_read(s, &dist);
            if (d < 0 || d >= 30) return "a bad distance code";
            D = (size_t)ea__dbase[d] + ea__getbits(s, ea__dextra[d]);
            if (s->overrun) return "the stream ends inside a match";
            if (D > o) return "a distance reaching before the start of the data";
            if (cap - o < L) return "the data is longer than the gzip trailer says";
            for (; L; L--, o++) out[o] = out[o - D];
        }
    }
    *out_n = o;
    return NULL;
}

EA_API ea_status ea_gunzip(const unsigned char *in, size_t n, unsigned char **out, size_t *out_n, ea_error *err) {
    size_t pos = 10, got = 0, isize;
    uint32_t crc;
    ea__bits s;
    const char *why;
    int flg;
    if (!out || !out_n) return ea_error_set(err, EA_ERR_ARG, "gunzip: NULL output");
    *out = NULL;
    *out_n = 0;
    if (!in || n < 18 || in[0] != 0x1f || in[1] != 0x8b)
        return ea_error_set(err, EA_ERR_FORMAT, "gzip: bad magic (expected 1f 8b) or shorter than 18 bytes");
    if (in[2] != 8 || (in[3] & 0xe0))
        return ea_error_set(err, EA_ERR_FORMAT, "gzip: method %u and flags 0x%02x; expected DEFLATE (8) and no reserved flags",
                            in[2], in[3]);
    flg = in[3];
    if (flg & 4) pos += 2 + ((size_t)in[10] | (size_t)in[11] << 8); /* FEXTRA */
    if (flg & 8) { while (pos < n && in[pos]) pos++; pos++; }      /* FNAME */
    if (flg & 16) { while (pos < n && in[pos]) pos++; pos++; }     /* FCOMMENT */
    if (flg & 2) pos += 2;                                         /* FHCRC */
    if (pos > n - 8) return ea_error_set(err, EA_ERR_FORMAT, "gzip: the header runs past the end of the file");
    crc = (uint32_t)ea__get_le(in + n - 8, 4);
    isize = (size_t)ea__get_le(in + n - 4, 4);
    /* DEFLATE expands at most 1032-fold (a 258-byte match per 2 bits) */
    if (isize > ((size_t)1 << 31) || isize / 1032 > n)
        return ea_error_set(err, EA_ERR_FORMAT,
                            "gzip: the trailer promises %zu bytes from %zu (at most 2 GiB, and 1032 per compressed byte)",
                            isize, n);
    *out = (unsigned char *)EFFATTN_MALLOC(isize + 1);
    if (!*out) return ea_error_set(err, EA_ERR_NOMEM, "gzip: cannot hold %zu bytes", isize);
    memset(&s, 0, sizeof s);
    s.p = in + pos;
    s.n = n - 8 - pos;
    why = ea__inflate(&s, *out, isize, &got);
    if (!why && got != isize) why = "the data is shorter than the gzip trailer says (truncated?)";
    if (!why && s.pos != s.n) why = "bytes after the compressed data (more than one gzip member?)";
    if (!why && ea_crc32(0, *out, got) != crc) why = "the CRC-32 of the data does not match the trailer (damaged)";
    if (why) {
        EFFATTN_FREE(*out);
        *out = NULL;
        return ea_error_set(err, EA_ERR_FORMAT, "gzip: %s", why);
    }
    *out_n = got;
    return EA_OK;
}

/* --- DEFLATE the other way, and PNG ---------------------------------------
   The encoder writes one block with the fixed code (RFC 1951 3.2.6), so no
   code tables are sent: literals 0-143 take 8 bits, 144-255 9, lengths 7
   or 8, distances 5, plus the extra bits of 8.x's tables.  Matches come
   from LZ77: the last positions of each 3-byte hash are chained, and up to
   EA_LZ_TRIES of them within 32 KiB are compared for the longest match.
   Pictures of attention weights are runs of equal pixels, which this
   shrinks 20-50x; general data gets zlib -1's ratio or a little worse. */
#define EA_LZ_TRIES 32

typedef struct ea__bitw {
    ea__wbuf *b;
    uint32_t buf;
    int cnt;
} ea__bitw;

static void ea__put_bits(ea__bitw *w, uint32_t v, int n) { /* first bit lowest, as the decoder reads */
    w->buf |= v << w->cnt;
    w->cnt += n;
    while (w->cnt >= 8) {
        unsigned char c = (unsigned char)w->buf;
        ea__put(w->b, &c, 1);
        w->buf >>= 8;
        w->cnt -= 8;
    }
}

/* A Huffman code goes most significant bit first. */
static void ea__put_code(ea__bitw *w, uint32_t code, int len) {
    uint32_t r = 0;
    int i;
    for (i = 0; i < len; i++) r |= ((code >> i) & 1u) << (len - 1 - i);
    ea__put_bits(w, r, len);
}

static void ea__put_litlen(ea__bitw *w, int sym) { /* the fixed literal/length code */
    if (sym < 144) ea__put_code(w, 0x30u + (uint32_t)sym, 8);
    else if (sym < 256) ea__put_code(w, 0x190u + (uint32_t)(sym - 144), 9);
    else if (sym < 280) ea__put_code(w, (uint32_t)(sym - 256), 7);
    else ea__put_code(w, 0xc0u + (uint32_t)(sym - 280), 8);
}

static void ea__deflate(ea__wbuf *out, const unsigned char *in, size_t n) {
    int *head = (int *)EFFATTN_MALLOC(((size_t)1 << 15) * sizeof(int)), *prev = (int *)EFFATTN_MALLOC(((size_t)1 << 15) * sizeof(int));
    ea__bitw w;
    size_t i = 0;
    w.b = out; w.buf = 0; w.cnt = 0;
    if (!head || !prev) {
        out->failed = 1;
        EFFATTN_FREE(head);
        EFFATTN_FREE(prev);
        return;
    }
    memset(head, 0xff, ((size_t)1 << 15) * sizeof(int)); /* -1: no position yet */
    ea__put_bits(&w, 1, 1);                               /* the last block */
    ea__put_bits(&w, 1, 2);                               /* fixed code */
    while (i < n) {
        size_t best = 0, dist = 0;
        if (i + 3 <= n) {
            unsigned hsh = ((unsigned)in[i] << 10 ^ (unsigned)in[i + 1] << 5 ^ in[i + 2]) & 0x7fffu;
            int cand = head[hsh], tries = EA_LZ_TRIES;
            while (cand >= 0 && i - (size_t)cand <= 32768 && tries--) {
                size_t L = 0, max = n - i < 258 ? n - i : 258;
                while (L < max && in[(size_t)cand + L] == in[i + L]) L++;
                if (L > best) {
                    best = L;
                    dist = i - (size_t)cand;
                    if (L == max) break;
                }
                cand = prev[cand & 0x7fff];
            }
        }
        if (best >= 3) {
            int lc = 28, dc = 29;
            size_t k;
            while (ea__lbase[lc] > (short)best) lc--;
            while (ea__dbase[dc] > dist) dc--;
            ea__put_litlen(&w, 257 + lc);
            ea__put_bits(&w, (uint32_t)(best - (size_t)ea__lbase[lc]), ea__lextra[lc]);
            ea__put_code(&w, (uint32_t)dc, 5);
            ea__put_bits(&w, (uint32_t)(dist - ea__dbase[dc]), ea__dextra[dc]);
            for (k = 0; k < best; k++, i++) /* every position of the match joins its chain */
                if (i + 3 <= n) {
                    unsigned h2 = ((unsigned)in[i] << 10 ^ (unsigned)in[i + 1] << 5 ^ in[i + 2]) & 0x7fffu;
                    prev[i & 0x7fff] = head[h2];
                    head[h2] = (int)i;
                }
        } else {
            if (i + 3 <= n) {
                unsigned h2 = ((unsigned)in[i] << 10 ^ (unsigned)in[i + 1] << 5 ^ in[i + 2]) & 0x7fffu;
                prev[i & 0x7fff] = head[h2];
                head[h2] = (int)i;
            }
            ea__put_litlen(&w, in[i++]);
        }
    }
    ea__put_litlen(&w, 256);
    if (w.cnt) ea__put_bits(&w, 0, 8 - w.cnt); /* flush to a byte */
    EFFATTN_FREE(head);
    EFFATTN_FREE(prev);
}

static void ea__put_be32(ea__wbuf *b, uint32_t v) {
    unsigned char t[4];
    t[0] = (unsigned char)(v >> 24); t[1] = (unsigned char)(v >> 16); t[2] = (unsigned char)(v >> 8); t[3] = (unsigned char)v;
    ea__put(b, t, 4);
}

/* A chunk: length, type, data, CRC-32 of type and data. */
static void ea__png_chunk(ea__wbuf *b, const char *type, const unsigned char *data, size_t n) {
    ea__put_be32(b, (uint32_t)n);
    ea__put(b, type, 4);
    if (n) ea__put(b, data, n);
    ea__put_be32(b, ea_crc32(ea_crc32(0, type, 4), data, n));
}

EA_API ea_status ea_png_write(const char *path, int w, int h, int channels, const unsigned char *pixels, ea_error *err) {
    ea__wbuf raw, z, png;
    unsigned char ihdr[13];
    size_t row = (size_t)w * (size_t)channels, y, x;
    uint32_t a = 1, bsum = 0;
    FILE *f;
    int ok;
    if (!path || !pixels || w < 1 || h < 1 || w > (1 << 24) || h > (1 << 24) || (channels != 1 && channels != 3))
        return ea_error_set(err, EA_ERR_ARG, "png: %d x %d pixels of %d channels; expected sizes 1 .. 2^24 and 1 or 3 channels",
                            w, h, channels);
    memset(&raw, 0, sizeof raw);
    memset(&z, 0, sizeof z);
    memset(&png, 0, sizeof png);
    /* each row: filter 1 (Sub: the byte minus the one a pixel to its left),
       which turns flat colours and gradients into runs of equal bytes */
    for (y = 0; y < (size_t)h; y++) {
        const unsigned char *r = pixels + y * row;
        unsigned char one = 1;
        ea__put(&raw, &one, 1);
        for (x = 0; x < row; x++) {
            unsigned char d = (unsigned char)(r[x] - (x >= (size_t)channels ? r[x - (size_t)channels] : 0));
            ea__put(&raw, &d, 1);
        }
    }
    for (x = 0; x < raw.n && !raw.failed; x++) { /* Adler-32 of the uncompressed stream */
        a = (a + raw.p[x]) % 65521u;
        bsum = (bsum + a) % 65521u;
    }
    {
        unsigned char zh[2] = {0x78, 0x01}; /* zlib: DEFLATE, 32 KiB window, no dictionary */
        ea__put(&z, zh, 2);
    }
    if (!raw.failed) ea__deflate(&z, raw.p, raw.n);
    ea__put_be32(&z, bsum << 16 | a);
    ihdr[0] = (unsigned char)(w >> 24); ihdr[1] = (unsigned char)(w >> 16); ihdr[2] = (unsigned char)(w >> 8); ihdr[3] = (unsigned char)w;
    ihdr[4] = (unsigned char)(h >> 24); ihdr[5] = (unsigned char)(h >> 16); ihdr[6] = (unsigned char)(h >> 8); ihdr[7] = (unsigned char)h;
    ihdr[8] = 8;                          /* bits per channel */
    ihdr[9] = channels == 3 ? 2 : 0;      /* truecolour or greyscale */
    ihdr[10] = ihdr[11] = ihdr[12] = 0;   /* DEFLATE, adaptive filters, no interlace */
    ea__put(&png, "\x89PNG\r\n\x1a\n", 8);
    ea__png_chunk(&png, "IHDR", ihdr, 13);
    if (!z.failed) ea__png_chunk(&png, "IDAT", z.p, z.n);
    ea__png_chunk(&png, "IEND", NULL, 0);
    EFFATTN_FREE(raw.p);
    EFFATTN_FREE(z.p);
    if (raw.failed || z.failed || png.failed) {
        EFFATTN_FREE(png.p);
        return ea_error_set(err, EA_ERR_NOMEM, "png: out of memory for %d x %d pixels", w, h);
    }
    f = fopen(path, "wb");
    ok = f && fwrite(png.p, 1, png.n, f) == png.n;
    ok = f && fclose(f) == 0 && ok;
    EFFATTN_FREE(png.p);
    return ok ? EA_OK : ea_error_set(err, EA_ERR_IO, "png: could not write '%s'", path);
}

/* --- labelled image sets for the classifiers -------------------------------- */
EA_API void ea_images_free(ea_images *im) {
    if (!im) return;
    EFFATTN_FREE(im->pixels);
    EFFATTN_FREE(im->labels);
    memset(im, 0, sizeof *im);
}

/* DIR/NAME.gz, else DIR/NAME: an IDX array of nd dimensions */
static ea_status ea__idx_in(ea_u8_array *a, const char *dir, const char *name, int nd, ea_error *err) {
    char path[1024];
    FILE *f;
    ea_status s;
    snprintf(path, sizeof path, "%s/%s.gz", dir, name);
    if (!(f = fopen(path, "rb"))) snprintf(path, sizeof path, "%s/%s", dir, name);
    else fclose(f);
    if ((s = ea_idx_load(a, path, err)) != EA_OK) return s;
    if (a->ndim != nd) {
        ea_u8_array_free(a);
        return ea_error_set(err, EA_ERR_FORMAT, "%s: %d dimensions, expected %d", path, a->ndim, nd);
    }
    return EA_OK;
}

static ea_status ea__fmnist_part(ea_images *im, const char *dir, const char *part, ea_error *err) {
    char name[64];
    ea_u8_array x, y;
    ea_status s;
    size_t i;
    memset(im, 0, sizeof *im);
    snprintf(name, sizeof name, "%s-images-idx3-ubyte", part);
    if ((s = ea__idx_in(&x, dir, name, 3, err)) != EA_OK) return s;
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte", part);
    if ((s = ea__idx_in(&y, dir, name, 1, err)) != EA_OK) {
        ea_u8_array_free(&x);
        return s;
    }
    if (x.dims[0] != y.dims[0]) s = ea_error_set(err, EA_ERR_FORMAT, "Fashion-MNIST %s: %d images but %d labels", part, x.dims[0], y.dims[0]);
    for (i = 0; s == EA_OK && i < y.size; i++)
        if (y.data[i] > 9) s = ea_error_set(err, EA_ERR_FORMAT, "Fashion-MNIST %s: label %u of image %zu is not 0-9", part, y.data[i], i);
    if (s != EA_OK) {
        ea_u8_array_free(&x);
        ea_u8_array_free(&y);
        return s;
    }
    im->n = x.dims[0];
    im->c = 1;
    im->h = x.dims[1];
    im->w = x.dims[2];
    im->classes = 10;
    im->pixels = x.data;
    im->labels = y.data;
    return EA_OK;
}

EA_API ea_status ea_images_fashion_mnist(ea_images *train, ea_images *test, const char *dir, ea_error *err) {
    ea_status s;
    if (!train || !test) return ea_error_set(err, EA_ERR_ARG, "fashion_mnist: NULL output");
    memset(test, 0, sizeof *test);
    if (!dir) dir = "/usr/share/datasets/fashion-mnist";
    if ((s = ea__fmnist_part(train, dir, "train", err)) != EA_OK) return s;
    if ((s = ea__fmnist_part(test, dir, "t10k", err)) != EA_OK) ea_images_free(train);
    else if (test->h != train->h || test->w != train->w) {
        s = ea_error_set(err, EA_ERR_FORMAT, "Fashion-MNIST: train images are %dx%d, test images %dx%d", train->h, train->w,
                         test->h, test->w);
        ea_images_free(train);
        ea_images_free(test);
    }
    return s;
}

EA_API ea_status ea_images_cifar10(ea_images *train, ea_images *test, const char *dir, ea_error *err) {
    char paths[6][1024];
    const char *p[6];
    ea_cifar c;
    ea_images *out[2];
    int i, k;
    if (!train || !test || !dir) return ea_error_set(err, EA_ERR_ARG, "cifar10: NULL argument");
    memset(train, 0, sizeof *train);
    memset(test, 0, sizeof *test);
    for (i = 0; i < 6; i++) {
        if (i < 5) snprintf(paths[i], sizeof paths[i], "%s/data_batch_%d.bin", dir, i + 1);
        else snprintf(paths[i], sizeof paths[i], "%s/test_batch.bin", dir);
        p[i] = paths[i];
    }
    out[0] = train;
    out[1] = test;
    for (k = 0; k < 2; k++) {
        ea_status s = ea_cifar_load(&c, k ? p + 5 : p, k ? 1 : 5, err);
        if (s != EA_OK) {
            ea_images_free(train);
            return s;
        }
        out[k]->n = c.n;
        out[k]->c = 3;
        out[k]->h = out[k]->w = 32;
        out[k]->classes = 10;
        out[k]->pixels = c.images;
        out[k]->labels = c.labels;
    }
    return EA_OK;
}

/* Is (u, v), in the shape's own frame (radius 1), inside shape `cls`? */
static int ea__shape_inside(int cls, float u, float v) {
    float r2 = u * u + v * v, au = fabsf(u), av = fabsf(v);
    switch (cls) {
    case 0: return r2 <= 1.0f;                                             /* disc */
    case 1: return r2 <= 1.0f && r2 >= 0.3f;                               /* ring */
    case 2: return au <= 0.8f && av <= 0.8f;                               /* square */
    case 3: return au <= 0.85f && av <= 0.85f && (au > 0.45f || av > 0.45f); /* frame */
    case 4: return v >= -0.5f && 1.7320508f * u + v <= 1.0f && -1.7320508f * u + v <= 1.0f; /* triangle */
    case 5: return (au <= 0.3f && av <= 1.0f) || (av <= 0.3f && au <= 1.0f);  /* plus */
    case 6: {                                                             /* five-pointed star */
        float t = atan2f(v, u) * (5.0f / 6.2831853f) + 10.0f;
        t -= floorf(t);
        return sqrtf(r2) <= 0.38f + 0.62f * fabsf(2.0f * t - 1.0f);
    }
    case 7: return r2 <= 1.0f && v >= 0.0f;                                /* half-disc */
    case 8: return au <= 0.8f && av <= 0.8f && (u <= -0.2f || v <= -0.2f);  /* L */
    default: return (u - 0.55f) * (u - 0.55f) + v * v <= 0.16f || (u + 0.55f) * (u + 0.55f) + v * v <= 0.16f; /* two dots */
    }
}

EA_API ea_status ea_images_shapes(ea_images *out, int n, uint64_t seed, ea_error *err) {
    int i;
    if (!out) return ea_error_set(err, EA_ERR_ARG, "shapes: NULL output");
    memset(out, 0, sizeof *out);
    if (n < 1 || n > (1 << 24)) return ea_error_set(err, EA_ERR_ARG, "shapes: %d images; expected 1 to 2^24", n);
    out->pixels = (unsigned char *)EFFATTN_MALLOC((size_t)n * 3 * 32 * 32);
    out->labels = (unsigned char *)EFFATTN_MALLOC((size_t)n);
    if (!out->pixels || !out->labels) {
        ea_images_free(out);
        return ea_error_set(err, EA_ERR_NOMEM, "shapes: cannot hold %d images", n);
    }
    out->n = n;
    out->c = 3;
    out->h = out->w = 32;
    out->classes = 10;
    /* image i draws from its own stream: the same images at any thread count */
    EA_OMP_FOR_IF(n >= 64)
    for (i = 0; i < n; i++) {
        ea_rng r;
        float bg[3], fg[3], rad, cx, cy, cs, sn, ang;
        int cls, x, y, c, k;
        unsigned char *px = out->pixels + (size_t)i * 3072;
        ea_rng_seed(&r, seed, (uint64_t)i + 1);
        cls = (int)ea_rng_below(&r, 10);
        for (c = 0; c < 3; c++) { /* any colours, the shape's the lighter */
            bg[c] = ea_rng_range(&r, 0.0f, 0.45f);
            fg[c] = ea_rng_range(&r, 0.55f, 1.0f);
        }
        rad = ea_rng_range(&r, 7.0f, 13.0f);
        cx = ea_rng_range(&r, rad - 2.0f, 34.0f - rad);
        cy = ea_rng_range(&r, rad - 2.0f, 34.0f - rad);
        ang = ea_rng_range(&r, 0.0f, 6.2831853f);
        cs = cosf(ang) / rad;
        sn = sinf(ang) / rad;
        for (y = 0; y < 32; y++)
            for (x = 0; x < 32; x++) {
                float cover = 0.0f;
                for (k = 0; k < 4; k++) { /* 2x2 samples a pixel: anti-aliased edges */
                    float dx = (float)x + 0.25f + 0.5f * (float)(k & 1) - cx, dy = (float)y + 0.25f + 0.5f * (float)(k >> 1) - cy;
                    cover += 0.25f * (float)ea__shape_inside(cls, dx * cs + dy * sn, -dx * sn + dy * cs);
                }
                for (c = 0; c < 3; c++) {
                    float v = bg[c] + cover * (fg[c] - bg[c]) + 0.05f * ea_rng_normal(&r);
                    v = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
                    px[(size_t)c * 1024 + (size_t)y * 32 + x] = (unsigned char)(v * 255.0f + 0.5f);
                }
            }
        out->labels[i] = (unsigned char)cls;
    }
    return EA_OK;
}

EA_API void ea_images_stats(const ea_images *im, float *mean, float *std) {
    int c;
    size_t hw = (size_t)im->h * im->w, i, j;
    for (c = 0; c < im->c; c++) {
        double s = 0.0, s2 = 0.0, cnt = (double)im->n * (double)hw, m;
        for (i = 0; i < (size_t)im->n; i++) {
            const unsigned char *p = im->pixels + (i * im->c + c) * hw;
            uint64_t a = 0, a2 = 0;
            for (j = 0; j < hw; j++) {
                a += p[j];
                a2 += (uint64_t)p[j] * p[j];
            }
            s += (double)a;
            s2 += (double)a2;
        }
        m = cnt > 0 ? s / cnt : 0.0;
        mean[c] = (float)(m / 255.0);
        std[c] = (float)(sqrt(cnt > 0 && s2 / cnt - m * m > 0 ? s2 / cnt - m * m : 1.0) / 255.0);
        if (!(std[c] > 1e-6f)) std[c] = 1.0f;
    }
}

EA_API ea_status ea_images_batch(const ea_images *im, const int *idx, int n, const float *mean, const float *std,
                                 int crop_pad, int flip, ea_rng *rng, float *x, int *labels) {
    int i, c, y, xx, H = im->h, W = im->w;
    size_t chw = (size_t)im->c * H * W;
    if (crop_pad < 0 || crop_pad >= H || crop_pad >= W) return EA_ERR_ARG;
    for (i = 0; i < n; i++) {
        const unsigned char *src;
        float *dst = x + (size_t)i * chw;
        int oy = 0, ox = 0, fl = 0;
        if (idx[i] < 0 || idx[i] >= im->n) return EA_ERR_ARG;
        src = im->pixels + (size_t)idx[i] * chw;
        if (rng) { /* PyTorch's RandomCrop(size, padding) then RandomHorizontalFlip */
            if (crop_pad > 0) {
                oy = (int)ea_rng_below(rng, 2u * (uint32_t)crop_pad + 1u) - crop_pad;
                ox = (int)ea_rng_below(rng, 2u * (uint32_t)crop_pad + 1u) - crop_pad;
            }
            if (flip) fl = (int)ea_rng_below(rng, 2);
        }
        for (c = 0; c < im->c; c++) {
            float inv = 1.0f / (255.0f * std[c]), off = mean[c] / std[c];
            for (y = 0; y < H; y++)
                for (xx = 0; xx < W; xx++) {
                    int sy = y + oy, sx = (fl ? W - 1 - xx : xx) + ox;
                    float v = sy >= 0 && sy < H && sx >= 0 && sx < W ? (float)src[((size_t)c * H + sy) * W + sx] : 0.0f;
                    dst[((size_t)c * H + y) * W + xx] = v * inv - off;
                }
        }
        labels[i] = im->labels[idx[i]];
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

/* ==========================================================================
   == 13. CUDA (EFFATTN_CUDA): kernels and their host wrappers
   ==========================================================================
   The CPU sections' twins over device pointers, in the same order.  These
   are the readable kernels, each thread/block mapping in its comment; the
   tests compare every one with its CPU twin (make test-cuda).  Linear layers
   go through cuBLAS (plain FP32, no TF32).  Kernels are static: two
   translation units built with nvcc link without clashes. */
#if defined(EFFATTN_CUDA) && !defined(EFFATTN_CUDA_DONE)
#define EFFATTN_CUDA_DONE
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cublas_v2.h>
#include <cublasLt.h>
#include <cooperative_groups.h>

#define EA_CU_STREAM(cu) ((cudaStream_t)(cu)->stream)
#define EA_CU_BLAS_WS ((size_t)32 << 20) /* bytes: NVIDIA's advice for Hopper */
#define EA_CU_SCRATCH ((size_t)1 << 22) /* floats of ea_cuda's scratch */
#define EA_CU_TICKETS 65536             /* column sums over up to 32 times as many columns */

static ea_status ea__cuda_check(cudaError_t e, const char *what, ea_error *err) {
    if (e == cudaSuccess) return EA_OK;
    return ea_error_set(err, e == cudaErrorMemoryAllocation ? EA_ERR_NOMEM : EA_ERR_ARG, "CUDA: %s: %s (%s)", what,
                        cudaGetErrorString(e), cudaGetErrorName(e));
}

static ea_status ea__cublas_check(cublasStatus_t s, const char *what, ea_error *err) {
    if (s == CUBLAS_STATUS_SUCCESS) return EA_OK;
    return ea_error_set(err, s == CUBLAS_STATUS_ALLOC_FAILED ? EA_ERR_NOMEM : EA_ERR_ARG, "cuBLAS: %s failed with status %d",
                        what, (int)s);
}

/* A kernel launch's own error (bad configuration) or an earlier
   asynchronous one. */
static ea_status ea__launched(const char *what, ea_error *err) { return ea__cuda_check(cudaGetLastError(), what, err); }

static unsigned ea__blocks(size_t n, unsigned per) { return (unsigned)((n + per - 1) / per); }

/* Sum over a warp's 32 lanes, every lane receiving it. */
__device__ static float ea__warp_sum(float v) {
    int o;
    for (o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

extern "C" {

EA_API ea_status ea_cuda_init(ea_cuda *cu, int device, ea_error *err) {
    int count = 0;
    cudaStream_t s;
    cublasHandle_t h;
    ea_status st;
    if (!cu) return ea_error_set(err, EA_ERR_ARG, "cuda_init: NULL handle");
    memset(cu, 0, sizeof *cu);
    if ((st = ea__cuda_check(cudaGetDeviceCount(&count), "counting devices", err)) != EA_OK) return st;
    if (device < 0 || device >= count)
        return ea_error_set(err, EA_ERR_ARG, "CUDA: device %d does not exist (this machine has %d)", device, count);
    if ((st = ea__cuda_check(cudaSetDevice(device), "selecting the device", err)) != EA_OK) return st;
    if ((st = ea__cuda_check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "creating a stream", err)) != EA_OK) return st;
    if ((st = ea__cublas_check(cublasCreate(&h), "creating a handle", err)) != EA_OK) {
        cudaStreamDestroy(s);
        return st;
    }
    cublasSetStream(h, s);
    cublasSetMathMode(h, CUBLAS_PEDANTIC_MATH); /* FP32 as written: no TF32 behind the caller's back */
    cu->device = device;
    cu->stream = (void *)s;
    cu->blas = (void *)h;
    if ((st = ea__cuda_check(cudaMalloc(&cu->blas_ws, EA_CU_BLAS_WS), "allocating cuBLAS's workspace", err)) != EA_OK ||
        (st = ea__cublas_check(cublasSetWorkspace(h, cu->blas_ws, EA_CU_BLAS_WS), "setting its workspace", err)) != EA_OK ||
        (st = ea__cuda_check(cudaMalloc((void **)&cu->scratch, EA_CU_SCRATCH * sizeof(float)), "allocating scratch", err)) != EA_OK ||
        (st = ea__cuda_check(cudaMalloc((void **)&cu->tickets, EA_CU_TICKETS * sizeof(unsigned)), "allocating counters", err)) !=
            EA_OK ||
        (st = ea__cuda_check(cudaMemsetAsync(cu->tickets, 0, EA_CU_TICKETS * sizeof(unsigned), s), "zeroing counters", err)) !=
            EA_OK) {
        ea_cuda_free(cu);
        return st;
    }
    return EA_OK;
}

EA_API void ea_cuda_free(ea_cuda *cu) {
    if (!cu) return;
    if (cu->blas) cublasDestroy((cublasHandle_t)cu->blas);
    if (cu->stream) cudaStreamDestroy(EA_CU_STREAM(cu));
    if (cu->blas_ws) cudaFree(cu->blas_ws);
    if (cu->scratch) cudaFree(cu->scratch);
    if (cu->tickets) cudaFree(cu->tickets);
    memset(cu, 0, sizeof *cu);
}

EA_API ea_status ea_cuda_alloc_bytes(ea_cuda *cu, void **dev, size_t bytes, ea_error *err) {
    char what[64];
    cudaError_t e;
    (void)cu;
    *dev = NULL;
    snprintf(what, sizeof what, "allocating %zu bytes", bytes);
    /* a failed allocation is not sticky: clear it, so that the next launch
       check does not report it again */
    e = cudaMalloc(dev, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        cudaGetLastError();
        *dev = NULL;
    }
    return ea__cuda_check(e, what, err);
}

EA_API ea_status ea_cuda_alloc(ea_cuda *cu, float **dev, size_t n, ea_error *err) {
    void *p = NULL;
    ea_status st;
    *dev = NULL;
    if (n > ((size_t)-1) / sizeof(float)) return ea_error_set(err, EA_ERR_NOMEM, "CUDA: allocating %zu floats: too many", n);
    st = ea_cuda_alloc_bytes(cu, &p, n * sizeof(float), err);
    *dev = (float *)p;
    return st;
}

EA_API void ea_cuda_release(void *dev) {
    if (dev) cudaFree(dev);
}

EA_API ea_status ea_cuda_put(ea_cuda *cu, float *dev, const float *host, size_t n, ea_error *err) {
    return ea__cuda_check(cudaMemcpyAsync(dev, host, n * sizeof(float), cudaMemcpyHostToDevice, EA_CU_STREAM(cu)),
                          "copying to the device", err);
}

EA_API ea_status ea_cuda_get(ea_cuda *cu, float *host, const float *dev, size_t n, ea_error *err) {
    return ea__cuda_check(cudaMemcpyAsync(host, dev, n * sizeof(float), cudaMemcpyDeviceToHost, EA_CU_STREAM(cu)),
                          "copying from the device", err);
}

EA_API ea_status ea_cuda_put_bytes(ea_cuda *cu, void *dev, const void *host, size_t bytes, ea_error *err) {
    return ea__cuda_check(cudaMemcpyAsync(dev, host, bytes, cudaMemcpyHostToDevice, EA_CU_STREAM(cu)), "copying to the device",
                          err);
}

EA_API ea_status ea_cuda_get_bytes(ea_cuda *cu, void *host, const void *dev, size_t bytes, ea_error *err) {
    return ea__cuda_check(cudaMemcpyAsync(host, dev, bytes, cudaMemcpyDeviceToHost, EA_CU_STREAM(cu)),
                          "copying from the device", err);
}

EA_API ea_status ea_cuda_sync(ea_cuda *cu, ea_error *err) {
    return ea__cuda_check(cudaStreamSynchronize(EA_CU_STREAM(cu)), "running the queued work", err);
}

} /* extern "C" */

/* --- linear (7): cuBLAS, row-major seen as column-major ---------------------
   Row-major X[M, K] is column-major Xᵀ, so out = inp·wᵀ is outᵀ = w·inpᵀ:
   gemm(T, N) over (N, M, K), the leading dimensions being the row strides
   (so an output may be a column range of a wider activation).  The bias
   and a residual ride inside cuBLASLt's GEMM (ea__cu_lt_linear below); a
   position table that repeats every `period` values (a multiple of N), or
   a GELU, takes SGEMM and then the epilogue kernel:
       out[r, c] += b[c] + res[(r·N + c) mod period]  (act = GELU(out)).
   Backward: dinpᵀ += wᵀ·doutᵀ, dwᵀ += inpᵀ·dout, db += column sums (one
   thread per column, rows in order: deterministic). */
__device__ static float ea__gelu(float x) { return x * (0.5f * (1.0f + erff(x * 0.70710678f))); }

/* 32 x 8 threads a block: a warp takes 32 neighbouring columns, the block
   rows y, y + 8·gridDim.y, ...  (no division by N per element: with a
   flat index and 64-bit divisions this pass was a third of a batch-1024
   forward under ncu, and this form took the tracker at batch 1024 from
   405,700 to 457,500 frames/s on an H200); the residual repeats every prow
   rows (prow = period / N). */
__global__ static void ea__epilogue_k(float *out, size_t ldo, const float *b, const float *res, int prow, int M, int N,
                                      float *act) {
    int c = blockIdx.x * 32 + threadIdx.x, r;
    float bc;
    if (c >= N) return;
    bc = b ? b[c] : 0.0f;
    for (r = blockIdx.y * blockDim.y + threadIdx.y; r < M; r += gridDim.y * blockDim.y) {
        size_t at = (size_t)r * ldo + c;
        out[at] += bc + (res ? res[(size_t)(r % prow) * N + c] : 0.0f);
        if (act) act[at] = ea__gelu(out[at]); /* a GELU layer's input and output in one pass */
    }
}

/* Column sums, in two stages so that a tall matrix keeps the GPU busy:
   block (x, y), 32 x 8 threads, sums rows [y·chunk, (y+1)·chunk) of 32
   columns (a warp reads 32 neighbours; the 8 thread rows meet in shared
   memory in a fixed order) into partial row y of the scratch; the last
   block of column range x to finish (a ticket counter says which) then
   adds the R partial rows in order, so the result does not depend on
   which block finished last: deterministic, in one launch.  Two sums ride
   together: Σ d (a bias's gradient) and, given x, mean, rstd (layer norm),
   Σ d·(x - mean)·rstd (its weight's).  One launch may serve a list of
   such sums over matrices of the same height (the ViT's backward gathers
   the ones nothing else waits for and runs them at the end): the column
   ranges of the jobs follow each other along x. */
#define EA_CU_COLSUM_ROWS 8
#define EA_CU_COLSUM_JOBS 24
typedef struct ea__colsum_job {
    const float *d, *x, *mean, *rstd; /* x == NULL: the bias sum only */
    float *db, *dw;
    size_t ldd;
    int N, block0; /* columns; the first column range (x) of the job */
} ea__colsum_job;
typedef struct ea__colsums {
    ea__colsum_job job[EA_CU_COLSUM_JOBS];
    int count, M, blocks; /* jobs, rows, column ranges in all */
} ea__colsums;

__global__ static void ea__colred_k(ea__colsums js, float *part_b, float *part_w, unsigned *tickets, int chunk) {
    __shared__ float sb[EA_CU_COLSUM_ROWS][32], sw[EA_CU_COLSUM_ROWS][32];
    __shared__ int last;
    int q = 0, i, r, end = (blockIdx.y + 1) * chunk < js.M ? (blockIdx.y + 1) * chunk : js.M, W = 32 * js.blocks;
    while (q + 1 < js.count && js.job[q + 1].block0 <= (int)blockIdx.x) q++;
    const ea__colsum_job &J = js.job[q];
    int j = ((int)blockIdx.x - J.block0) * 32 + threadIdx.x, col = 32 * blockIdx.x + threadIdx.x;
    int lead = threadIdx.y == 0 && j < J.N;
    float b = 0.0f, w = 0.0f;
    if (j < J.N)
        for (i = blockIdx.y * chunk + threadIdx.y; i < end; i += EA_CU_COLSUM_ROWS) {
            float v = J.d[(size_t)i * J.ldd + j];
            b += v;
            if (J.x) w += v * (J.x[(size_t)i * J.N + j] - J.mean[i]) * J.rstd[i];
        }
    sb[threadIdx.y][threadIdx.x] = b;
    sw[threadIdx.y][threadIdx.x] = w;
    __syncthreads();
    if (lead) {
        for (r = 1; r < EA_CU_COLSUM_ROWS; r++) {
            b += sb[r][threadIdx.x];
            w += sw[r][threadIdx.x];
        }
        part_b[(size_t)blockIdx.y * W + col] = b;
        part_w[(size_t)blockIdx.y * W + col] = w;
        __threadfence(); /* the partial row is visible device-wide before the ticket is taken */
    }
    __syncthreads();
    if (threadIdx.x == 0 && threadIdx.y == 0) last = atomicAdd(tickets + blockIdx.x, 1u) == gridDim.y - 1;
    __syncthreads();
    if (!last) return;
    if (lead) {
        b = w = 0.0f;
        for (r = 0; r < (int)gridDim.y; r++) { /* __ldcg: from L2, where the other blocks' rows are */
            b += __ldcg(part_b + (size_t)r * W + col);
            w += __ldcg(part_w + (size_t)r * W + col);
        }
        if (J.db) J.db[j] += b;
        if (J.x) J.dw[j] += w;
    }
    if (threadIdx.x == 0 && threadIdx.y == 0) tickets[blockIdx.x] = 0u; /* zero again for the next launch */
}

static ea_status ea__colsum_run(ea_cuda *cu, ea__colsums *js, ea_error *err);

/* Adds a job to a list, running the list first when the job does not fit
   it (full, other rows, too many column ranges); EA_ERR_SHAPE for a matrix
   wider than the counters cover. */
static ea_status ea__colsum_add(ea_cuda *cu, ea__colsums *js, float *db, float *dw, const float *d, size_t ldd, const float *x,
                                const float *mean, const float *rstd, int M, int N, ea_error *err) {
    ea__colsum_job *J;
    ea_status st;
    if (!dw) x = NULL;
    if (!db && !x) return EA_OK; /* nothing asked for (a layer without a bias) */
    if (ea__blocks((size_t)N, 32) > EA_CU_TICKETS)
        return ea_error_set(err, EA_ERR_SHAPE, "column sums (CUDA): %d columns; expected at most %d", N, 32 * EA_CU_TICKETS);
    if ((js->count == EA_CU_COLSUM_JOBS || (size_t)js->blocks + ea__blocks((size_t)N, 32) > EA_CU_TICKETS ||
         (js->count && M != js->M)) &&
        (st = ea__colsum_run(cu, js, err)) != EA_OK)
        return st;
    J = &js->job[js->count++];
    J->d = d; J->x = x; J->mean = mean; J->rstd = rstd; J->db = db; J->dw = dw; J->ldd = ldd; J->N = N;
    J->block0 = js->blocks;
    js->M = M;
    js->blocks += (int)ea__blocks((size_t)N, 32);
    return EA_OK;
}

/* Runs a list's sums on a stream, partial rows in scratch (scratch_n
   floats, at least 64 Ki), counters in tickets (EA_CU_TICKETS), and empties
   the list. */
static ea_status ea__colsum_go(void *stream, float *scratch, size_t scratch_n, unsigned *tickets, ea__colsums *js,
                               ea_error *err) {
    size_t W = 32 * (size_t)js->blocks, cap = W ? scratch_n / 2 / W : 1;
    int R = (js->M + 63) / 64, chunk;
    if (!js->count) return EA_OK;
    if (2 * W > scratch_n) return ea_error_set(err, EA_ERR_SHAPE, "column sums (CUDA): %zu columns for %zu floats", W, scratch_n);
    if ((size_t)R > cap) R = (int)cap;
    if (R < 1) R = 1;
    chunk = (js->M + R - 1) / R;
    R = (js->M + chunk - 1) / chunk;
    ea__colred_k<<<dim3((unsigned)js->blocks, (unsigned)R), dim3(32, EA_CU_COLSUM_ROWS), 0, (cudaStream_t)stream>>>(
        *js, scratch, scratch + (size_t)R * W, tickets, chunk);
    js->count = js->blocks = 0;
    return ea__launched("column sums", err);
}

/* ... on the handle's stream, scratch and counters */
static ea_status ea__colsum_run(ea_cuda *cu, ea__colsums *js, ea_error *err) {
    return ea__colsum_go(cu->stream, cu->scratch, EA_CU_SCRATCH, cu->tickets, js, err);
}

/* db += Σ_rows d; and dw += Σ_rows d·x̂ when x is given (needs dw) */
static ea_status ea__cu_colred(ea_cuda *cu, float *db, float *dw, const float *d, size_t ldd, const float *x, const float *mean,
                               const float *rstd, int M, int N, ea_error *err) {
    ea__colsums js;
    ea_status st;
    js.count = js.blocks = 0;
    if ((st = ea__colsum_add(cu, &js, db, x ? dw : NULL, d, ldd, x, mean, rstd, M, N, err)) != EA_OK) return st;
    return ea__colsum_run(cu, &js, err);
}

/* out = inp·wᵀ + b + res in one cuBLASLt call (res [M, N], rows N apart, or
   NULL): the bias rides in the GEMM's epilogue and the residual comes in
   as its C matrix, so the output is written once instead of written, read
   back and written again by a second kernel (the tracker at batch 1024 on
   an H200: 552,300 -> 617,300 frames/s).  A cuBLAS handle serves as a cuBLASLt
   handle; the call shares its workspace and stream.  *done = 0 (and EA_OK)
   when cuBLASLt has no algorithm for the shape: the caller takes SGEMM. */
static ea_status ea__cu_lt_linear(ea_cuda *cu, float *out, size_t ldo, const float *inp, size_t ldi, const float *w,
                                  const float *b, const float *res, int M, int K, int N, int *done, ea_error *err) {
    cublasLtHandle_t lt = (cublasLtHandle_t)cu->blas;
    cublasLtMatmulDesc_t op = NULL;
    cublasLtMatrixLayout_t la = NULL, lb = NULL, lc = NULL, ld = NULL;
    cublasLtMatmulPreference_t pref = NULL;
    cublasLtMatmulHeuristicResult_t hr;
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
    const float one = 1.0f, beta = res ? 1.0f : 0.0f;
    size_t ws = EA_CU_BLAS_WS;
    int found = 0;
    cublasStatus_t e = cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F);
    memset(&hr, 0, sizeof hr);
    if (!e) e = cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta);
    if (!e) e = cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb);
    if (!e && b) e = cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi);
    if (!e && b) e = cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &b, sizeof b);
    if (!e) e = cublasLtMatrixLayoutCreate(&la, CUDA_R_32F, (uint64_t)K, (uint64_t)N, (int64_t)K);
    if (!e) e = cublasLtMatrixLayoutCreate(&lb, CUDA_R_32F, (uint64_t)K, (uint64_t)M, (int64_t)ldi);
    if (!e) e = cublasLtMatrixLayoutCreate(&lc, CUDA_R_32F, (uint64_t)N, (uint64_t)M, res ? (int64_t)N : (int64_t)ldo);
    if (!e) e = cublasLtMatrixLayoutCreate(&ld, CUDA_R_32F, (uint64_t)N, (uint64_t)M, (int64_t)ldo);
    if (!e) e = cublasLtMatmulPreferenceCreate(&pref);
    if (!e) e = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
    if (!e) e = cublasLtMatmulAlgoGetHeuristic(lt, op, la, lb, lc, ld, pref, 1, &hr, &found);
    if (e == CUBLAS_STATUS_NOT_SUPPORTED) e = CUBLAS_STATUS_SUCCESS, found = 0; /* SGEMM then */
    *done = !e && found;
    if (*done)
        e = cublasLtMatmul(lt, op, &one, w, la, inp, lb, &beta, res ? res : out, lc, out, ld, &hr.algo, cu->blas_ws, ws,
                           EA_CU_STREAM(cu));
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (ld) cublasLtMatrixLayoutDestroy(ld);
    if (lc) cublasLtMatrixLayoutDestroy(lc);
    if (lb) cublasLtMatrixLayoutDestroy(lb);
    if (la) cublasLtMatrixLayoutDestroy(la);
    if (op) cublasLtMatmulDescDestroy(op);
    return ea__cublas_check(e, "linear forward (cuBLASLt)", err);
}

/* out[M, N] (row stride ldo) = inp[M, K] (row stride ldi) · w[N, K]ᵀ + b + res,
   and with act, act = GELU(out) (same layout).  A plain residual (period
   M·N) or none goes through cuBLASLt in one call; a position table and
   GELU through SGEMM and the epilogue kernel. */
static ea_status ea__cu_linear_act(ea_cuda *cu, float *out, size_t ldo, const float *inp, size_t ldi, const float *w,
                                   const float *b, const float *res, size_t period, int M, int K, int N, float *act,
                                   ea_error *err) {
    const float one = 1.0f, zero = 0.0f;
    ea_status st;
    int done = 0;
    if (!act && (!res || period == (size_t)M * N) &&
        ((st = ea__cu_lt_linear(cu, out, ldo, inp, ldi, w, b, res, M, K, N, &done, err)) != EA_OK || done))
        return st;
    st = ea__cublas_check(cublasSgemm((cublasHandle_t)cu->blas, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &one, w, K, inp, (int)ldi,
                                      &zero, out, (int)ldo), "linear forward", err);
    if (st != EA_OK || (!b && !res && !act)) return st;
    {
        unsigned rows = ea__blocks((size_t)M, 8);
        ea__epilogue_k<<<dim3(ea__blocks((size_t)N, 32), rows < 4096 ? rows : 4096), dim3(32, 8), 0, EA_CU_STREAM(cu)>>>(
            out, ldo, b, res, (int)(period / (size_t)N > 0 ? period / (size_t)N : 1), M, N, act);
    }
    return ea__launched("linear epilogue", err);
}

static ea_status ea__cu_linear(ea_cuda *cu, float *out, size_t ldo, const float *inp, size_t ldi, const float *w,
                               const float *b, const float *res, size_t period, int M, int K, int N, ea_error *err) {
    return ea__cu_linear_act(cu, out, ldo, inp, ldi, w, b, res, period, M, K, N, NULL, err);
}

/* The backward of ea__cu_linear, dout read with row stride ldd (so it may be
   a column range of a wider gradient); dinp, dw, db accumulate (+=). */
static ea_status ea__cu_linear_bwd(ea_cuda *cu, float *dinp, float *dw, float *db, const float *dout, size_t ldd,
                                   const float *inp, const float *w, int M, int K, int N, ea_error *err) {
    const float one = 1.0f;
    cublasHandle_t h = (cublasHandle_t)cu->blas;
    ea_status st = EA_OK;
    if (dinp)
        st = ea__cublas_check(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, K, M, N, &one, w, K, dout, (int)ldd, &one, dinp, K),
                              "linear backward (input)", err);
    if (st == EA_OK && dw)
        st = ea__cublas_check(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_T, K, N, M, &one, inp, K, dout, (int)ldd, &one, dw, K),
                              "linear backward (weight)", err);
    if (st == EA_OK && db) st = ea__cu_colred(cu, db, NULL, dout, ldd, NULL, NULL, NULL, M, N, err);
    return st;
}

extern "C" {

EA_API ea_status ea_linear_fwd_cuda(ea_cuda *cu, float *out, const float *inp, const float *w, const float *b, int M, int K,
                                    int N, ea_error *err) {
    return ea__cu_linear(cu, out, (size_t)N, inp, (size_t)K, w, b, NULL, 1, M, K, N, err);
}

EA_API ea_status ea_linear_bwd_cuda(ea_cuda *cu, float *dinp, float *dw, float *db, const float *dout, const float *inp,
                                    const float *w, int M, int K, int N, ea_error *err) {
    return ea__cu_linear_bwd(cu, dinp, dw, db, dout, (size_t)N, inp, w, M, K, N, err);
}

} /* extern "C" */

/* --- layer norm (7): one warp a row ------------------------------------------
   Lanes stride over the row's C values; two warp sums give the mean and
   the variance (two passes, like the CPU kernel).  Backward: a warp a row
   for dx; dw and db are column sums (ea__cu_colred). */
/* One row of C values by one warp (lane = this thread's lane): out, and
   the row's mean and 1/std returned. */
__device__ static void ea__cu_ln_row(float *out, const float *xr, const float *w, const float *b, int C, float eps, float *mean,
                                  float *rstd) {
    int lane = threadIdx.x % 32, c;
    float s = 0.0f, m, v = 0.0f, r;
    for (c = lane; c < C; c += 32) s += xr[c];
    m = ea__warp_sum(s) / (float)C;
    for (c = lane; c < C; c += 32) v += (xr[c] - m) * (xr[c] - m);
    r = rsqrtf(ea__warp_sum(v) / (float)C + eps);
    for (c = lane; c < C; c += 32) out[c] = (xr[c] - m) * r * (w ? w[c] : 1.0f) + (b ? b[c] : 0.0f);
    *mean = m;
    *rstd = r;
}

__global__ static void ea__ln_fwd_k(float *out, float *mean, float *rstd, const float *x, const float *w, const float *b,
                                    int N, int C, float eps) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    float m, r;
    if (row >= N) return;
    ea__cu_ln_row(out + (size_t)row * C, x + (size_t)row * C, w, b, C, eps, &m, &r);
    if (threadIdx.x % 32 == 0) {
        mean[row] = m;
        rstd[row] = r;
    }
}

__global__ static void ea__ln_bwd_dx_k(float *dx, const float *dout, const float *x, const float *mean, const float *rstd,
                                       const float *w, int N, int C) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32, c;
    float sg = 0.0f, sgx = 0.0f, m, r;
    const float *xr, *dr;
    if (row >= N) return;
    xr = x + (size_t)row * C;
    dr = dout + (size_t)row * C;
    m = mean[row];
    r = rstd[row];
    for (c = lane; c < C; c += 32) {
        float g = dr[c] * (w ? w[c] : 1.0f);
        sg += g;
        sgx += g * (xr[c] - m) * r;
    }
    sg = ea__warp_sum(sg) / (float)C;
    sgx = ea__warp_sum(sgx) / (float)C;
    for (c = lane; c < C; c += 32) {
        float g = dr[c] * (w ? w[c] : 1.0f);
        dx[(size_t)row * C + c] += r * (g - sg - (xr[c] - m) * r * sgx);
    }
}

/* --- GELU (7), exact: x·Φ(x); Φ' = φ.  One thread an element. ------------ */
__global__ static void ea__gelu_k(float *out, const float *dout, const float *x, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    float cdf, pdf;
    if (i >= n) return;
    if (!dout) {
        out[i] = ea__gelu(x[i]);
        return;
    }
    cdf = 0.5f * (1.0f + erff(x[i] * 0.70710678f));
    pdf = 0.39894228f * expf(-0.5f * x[i] * x[i]);
    out[i] += dout[i] * (cdf + x[i] * pdf);
}

/* --- softmax over the last dimension (7): one warp a row ------------------- */
/* One row by one warp; out may be x.  Returns the row's log-sum-exp. */
__device__ static float ea__cu_softmax_row(float *out, const float *xr, int cols) {
    int lane = threadIdx.x % 32, c, o;
    float mx = -INFINITY, s = 0.0f, inv;
    for (c = lane; c < cols; c += 32) mx = fmaxf(mx, xr[c]);
    for (o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    for (c = lane; c < cols; c += 32) s += expf(xr[c] - mx);
    s = ea__warp_sum(s);
    inv = 1.0f / s;
    for (c = lane; c < cols; c += 32) out[c] = expf(xr[c] - mx) * inv;
    return mx + logf(s);
}

__global__ static void ea__softmax_k(float *out, const float *x, int rows, int cols) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (row < rows) ea__cu_softmax_row(out + (size_t)row * cols, x + (size_t)row * cols, cols);
}

/* --- exact attention (8.2), flash style: one warp a query row --------------
   Lane l holds q's and the output accumulator's columns l, l + 32, ... (up
   to 8 each, dh <= 256).  For every visible key j: s = q·k_j / √dh by a warp
   sum, then the online softmax: m' = max(m, s), o ← o·e^(m - m') + e^(s - m')·v_j,
   l ← l·e^(m - m') + e^(s - m').  out = o / l, lse = m + log l.  Memory O(n).
   Backward, a warp a query row again, with D = dO·O:
       p_j = e^(s_j - lse),  dp_j = dO·v_j,  ds_j = p_j (dp_j - D),
       dq += ds_j k_j / √dh,  dk_j += ds_j q / √dh,  dv_j += p_j dO
   where dk and dv are shared by every query, so they are added atomically
   (their sums are not bit-reproducible run to run; the CPU kernel's are).
   Rows are read through strides (ld*: floats from one token to the next),
   so q, k and v may be column ranges of one merged QKV activation, as in
   the CPU's ea_sdpa; gradients share the strides of what they belong to. */
#define EA_CU_DH_LANES 8
/* A sparse pattern of 8.3 (local, localglobal, bigbird) on the device,
   tested by the CPU's own ea__pattern_visible (causal applied apart).  on
   0: every key.  p.rand: device memory. */
typedef struct ea__cu_pat {
    int on;
    ea__pattern p;
} ea__cu_pat;

__device__ static int ea__cu_visible(const ea__cu_pat *pat, int q, int k) { return !pat->on || ea__pattern_visible(&pat->p, q, k); }

typedef struct ea__cu_attn {
    const float *q, *k, *v, *o, *dout; /* o: the forward's output, read by the backward */
    float *out, *lse, *dq, *dk, *dv;
    int B, n, H, Hkv, dh, causal;
    size_t ldq, ldkv, ldo;  /* row strides of q (and dq), k and v (dk, dv), out (dout) */
    float scale;
    ea__cu_pat pat;         /* a sparse pattern (local, bigbird), on top of causal */
} ea__cu_attn;

__global__ static void ea__attn_fwd_k(ea__cu_attn a) {
    int gw = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32, t, j;
    int b, h, i, last;
    float qr[EA_CU_DH_LANES], o[EA_CU_DH_LANES], m = -INFINITY, l = 0.0f;
    const float *kb, *vb;
    if (gw >= a.B * a.H * a.n) return;
    i = gw % a.n;
    h = (gw / a.n) % a.H;
    b = gw / (a.n * a.H);
    for (t = 0; t < EA_CU_DH_LANES; t++) {
        int d = lane + 32 * t;
        qr[t] = d < a.dh ? a.q[((size_t)b * a.n + i) * a.ldq + (size_t)h * a.dh + d] * a.scale : 0.0f;
        o[t] = 0.0f;
    }
    kb = a.k + (size_t)b * a.n * a.ldkv + (size_t)(h / (a.H / a.Hkv)) * a.dh;
    vb = a.v + (size_t)b * a.n * a.ldkv + (size_t)(h / (a.H / a.Hkv)) * a.dh;
    last = a.causal ? i : a.n - 1;
    for (j = 0; j <= last; j++) {
        float s = 0.0f, mn, c, p;
        if (!ea__cu_visible(&a.pat, i, j)) continue; /* the same for the whole warp */
        for (t = 0; t < EA_CU_DH_LANES; t++) {
            int d = lane + 32 * t;
            if (d < a.dh) s += qr[t] * kb[(size_t)j * a.ldkv + d];
        }
        s = ea__warp_sum(s);
        mn = fmaxf(m, s);
        c = expf(m - mn);
        p = expf(s - mn);
        l = l * c + p;
        for (t = 0; t < EA_CU_DH_LANES; t++) {
            int d = lane + 32 * t;
            if (d < a.dh) o[t] = o[t] * c + p * vb[(size_t)j * a.ldkv + d];
        }
        m = mn;
    }
    for (t = 0; t < EA_CU_DH_LANES; t++) {
        int d = lane + 32 * t;
        if (d < a.dh) a.out[((size_t)b * a.n + i) * a.ldo + (size_t)h * a.dh + d] = o[t] / l;
    }
    if (lane == 0) a.lse[((size_t)b * a.H + h) * a.n + i] = m + logf(l);
}

/* One query row of one head by one warp, from shared memory: q (dh
   values, unscaled), key j's values at kb + j·ldk and its value row at
   vb + j·ldk for j <= last, scratch sr for last + 1 scores.  Lanes take
   keys for the scores, the warp the softmax, then lanes take output
   columns (for dh <= 16 the two half-warps take even and odd keys and add
   their sums).  Keys that pattern pat hides from query qi score -inf.
   Writes out[d], d < dh (any memory), and returns the log-sum-exp of the
   scaled scores on every lane.  An odd ldk keeps lanes that
   read neighbouring keys on distinct banks. */
__device__ static float ea__attn_row_warp(float *out, const float *q, const float *kb, const float *vb, int ldk, int last, int dh,
                                          float scale, float *sr, const ea__cu_pat *pat, int qi) {
    int lane = threadIdx.x % 32, half = dh <= 16, part = half ? lane / 16 : 0, col = half ? lane % 16 : lane, n = last + 1, j, d;
    float lse;
    for (j = lane; j < n; j += 32) {
        const float *kr = kb + (size_t)j * ldk;
        float sc = 0.0f;
#pragma unroll 8
        for (d = 0; d < dh; d++) sc += q[d] * kr[d];
        sr[j] = ea__cu_visible(pat, qi, j) ? sc * scale : -INFINITY; /* query qi's hidden keys weigh 0 */
    }
    __syncwarp();
    lse = ea__cu_softmax_row(sr, sr, n);
    __syncwarp();
    for (d = col; d < (half ? 16 : dh); d += 32) {
        float o = 0.0f;
#pragma unroll 8
        for (j = part; j < n; j += 1 + half) o += d < dh ? sr[j] * vb[(size_t)j * ldk + d] : 0.0f;
        if (half) o += __shfl_xor_sync(0xffffffffu, o, 16);
        if (d < dh && !part) out[d] = o;
    }
    __syncwarp();
    return lse;
}

/* Short sequences with wide heads (dh > 32) whose K and V fit in shared
   memory: a block a (batch, head) stages them once (rows of 2·dh + 1 floats: key, value, an
   odd pad), and each warp takes queries warp, warp + 8, ... through
   ea__attn_row_warp, with its query and scores in its own corner. */
#define EA_CU_ROW_WARPS 8
static size_t ea__attn_rows_smem(int n, int dh) {
    return ((size_t)n * (2 * dh + 1) + EA_CU_ROW_WARPS * ((size_t)dh + n)) * sizeof(float);
}

__global__ static void __launch_bounds__(32 * EA_CU_ROW_WARPS) ea__attn_fwd_rows_k(ea__cu_attn a) {
    extern __shared__ float ea__rows_sm[];
    int b = blockIdx.x / a.H, h = blockIdx.x % a.H, hk = h / (a.H / a.Hkv), ldk = 2 * a.dh + 1;
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, i, j, d;
    float *kv = ea__rows_sm, *qw = kv + (size_t)a.n * ldk + warp * a.dh;
    float *sw = kv + (size_t)a.n * ldk + EA_CU_ROW_WARPS * a.dh + (size_t)warp * a.n;
    for (j = warp; j < a.n; j += EA_CU_ROW_WARPS)
        for (d = lane; d < a.dh; d += 32) {
            size_t src = ((size_t)b * a.n + j) * a.ldkv + (size_t)hk * a.dh + d;
            kv[(size_t)j * ldk + d] = a.k[src];
            kv[(size_t)j * ldk + a.dh + d] = a.v[src];
        }
    __syncthreads();
    for (i = warp; i < a.n; i += EA_CU_ROW_WARPS) {
        float lse;
        for (d = lane; d < a.dh; d += 32) qw[d] = a.q[((size_t)b * a.n + i) * a.ldq + (size_t)h * a.dh + d];
        __syncwarp();
        lse = ea__attn_row_warp(a.out + ((size_t)b * a.n + i) * a.ldo + (size_t)h * a.dh, qw, kv, kv + a.dh, ldk,
                                a.causal ? i : a.n - 1, a.dh, a.scale, sw, &a.pat, i);
        if (lane == 0) a.lse[((size_t)b * a.H + h) * a.n + i] = lse;
    }
}

/* Short sequences (a ViT's 64 patches): a warp a query spends most of its
   lanes idle on a 16-wide head and its time in warp sums.  Instead one
   block a (batch, head): the head's K and V rows are staged once in shared
   memory, and S neighbouring threads (a "team", S = 1 .. 8 so that a block
   has at most 1024) share a query: lane s takes keys s, s + S, ..., keeping
   q and its own online-softmax state (m, l, o) in registers (MAXD of them,
   unrolled, so they stay registers for any dh <= MAXD).  The S states then
   merge by butterfly shuffles in a fixed order,
       m = max(m₁, m₂),  l = l₁·e^(m₁-m) + l₂·e^(m₂-m),  o likewise,
   the same results to rounding, run to run, on every lane. */
__device__ static float ea__team_scale(float m, float mn) { return m == -INFINITY ? 0.0f : expf(m - mn); }

template <int MAXD> __global__ static void ea__attn_fwd_short_k(ea__cu_attn a, int S) {
    extern __shared__ float kv_s[]; /* K rows then V rows, dh floats each */
    int b = blockIdx.x / a.H, h = blockIdx.x % a.H, hk = h / (a.H / a.Hkv), t = threadIdx.x, i = t / S, s = t % S, j, d, o_;
    int live = i < a.n, last;
    float qr[MAXD], o[MAXD], m = -INFINITY, l = 0.0f;
    float *ks = kv_s, *vs = kv_s + (size_t)a.n * a.dh;
    for (j = t; j < a.n * a.dh; j += blockDim.x) {
        size_t src = ((size_t)b * a.n + j / a.dh) * a.ldkv + (size_t)hk * a.dh + j % a.dh;
        ks[j] = a.k[src];
        vs[j] = a.v[src];
    }
    __syncthreads();
#pragma unroll
    for (d = 0; d < MAXD; d++) {
        qr[d] = live && d < a.dh ? a.q[((size_t)b * a.n + i) * a.ldq + (size_t)h * a.dh + d] * a.scale : 0.0f;
        o[d] = 0.0f;
    }
    last = !live ? -1 : a.causal ? i : a.n - 1; /* idle lanes still join the shuffles */
    for (j = s; j <= last; j += S) {
        const float *kr = ks + (size_t)j * a.dh, *vr = vs + (size_t)j * a.dh;
        float sc = 0.0f, mn, c, p;
        if (!ea__cu_visible(&a.pat, i, j)) continue;
#pragma unroll
        for (d = 0; d < MAXD; d++)
            if (d < a.dh) sc += qr[d] * kr[d];
        mn = fmaxf(m, sc);
        c = ea__team_scale(m, mn);
        p = expf(sc - mn);
        l = l * c + p;
#pragma unroll
        for (d = 0; d < MAXD; d++)
            if (d < a.dh) o[d] = o[d] * c + p * vr[d];
        m = mn;
    }
    for (o_ = S / 2; o_ > 0; o_ >>= 1) {
        float m2 = __shfl_xor_sync(0xffffffffu, m, o_), l2 = __shfl_xor_sync(0xffffffffu, l, o_), mn = fmaxf(m, m2);
        float c1 = ea__team_scale(m, mn), c2 = ea__team_scale(m2, mn);
        l = l * c1 + l2 * c2;
#pragma unroll
        for (d = 0; d < MAXD; d++) o[d] = o[d] * c1 + __shfl_xor_sync(0xffffffffu, o[d], o_) * c2;
        m = mn;
    }
    if (!live || s) return;
#pragma unroll
    for (d = 0; d < MAXD; d++)
        if (d < a.dh) a.out[((size_t)b * a.n + i) * a.ldo + (size_t)h * a.dh + d] = o[d] / l;
    a.lse[((size_t)b * a.H + h) * a.n + i] = m + logf(l);
}

__global__ static void ea__attn_bwd_k(ea__cu_attn a) {
    int gw = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32, t, j;
    int b, h, i, last;
    float qr[EA_CU_DH_LANES], dor[EA_CU_DH_LANES], dqr[EA_CU_DH_LANES], D = 0.0f, L;
    size_t rq, ro, kvh;
    if (gw >= a.B * a.H * a.n) return;
    i = gw % a.n;
    h = (gw / a.n) % a.H;
    b = gw / (a.n * a.H);
    kvh = (size_t)(h / (a.H / a.Hkv)) * a.dh;
    rq = ((size_t)b * a.n + i) * a.ldq + (size_t)h * a.dh;
    ro = ((size_t)b * a.n + i) * a.ldo + (size_t)h * a.dh;
    for (t = 0; t < EA_CU_DH_LANES; t++) {
        int d = lane + 32 * t;
        qr[t] = d < a.dh ? a.q[rq + d] : 0.0f;
        dor[t] = d < a.dh ? a.dout[ro + d] : 0.0f;
        dqr[t] = 0.0f;
        if (d < a.dh) D += dor[t] * a.o[ro + d];
    }
    D = ea__warp_sum(D);
    L = a.lse[((size_t)b * a.H + h) * a.n + i];
    last = a.causal ? i : a.n - 1;
    for (j = 0; j <= last; j++) {
        size_t kv = ((size_t)b * a.n + j) * a.ldkv + kvh;
        float s = 0.0f, dp = 0.0f, p, ds;
        if (!ea__cu_visible(&a.pat, i, j)) continue;
        for (t = 0; t < EA_CU_DH_LANES; t++) {
            int d = lane + 32 * t;
            if (d < a.dh) {
                s += qr[t] * a.k[kv + d];
                dp += dor[t] * a.v[kv + d];
            }
        }
        s = ea__warp_sum(s) * a.scale;
        dp = ea__warp_sum(dp);
        p = expf(s - L);
        ds = p * (dp - D) * a.scale;
        for (t = 0; t < EA_CU_DH_LANES; t++) {
            int d = lane + 32 * t;
            if (d < a.dh) {
                dqr[t] += ds * a.k[kv + d];
                atomicAdd(a.dk + kv + d, ds * qr[t]);
                atomicAdd(a.dv + kv + d, p * dor[t]);
            }
        }
    }
    for (t = 0; t < EA_CU_DH_LANES; t++) {
        int d = lane + 32 * t;
        if (d < a.dh) a.dq[rq + d] += dqr[t];
    }
}

/* The short-sequence backward: one block a (batch, K/V head) with the K/V
   head's rows and, for each of the G = H / Hkv query heads sharing it, Q,
   dO, lse and D = dO·O staged in shared memory; a team of S threads for
   each (head g, token i) of G·n, its lanes splitting the loop.
   Pass 1, team (g, i) a query of head g: dq_i += Σ_j ds_ij k_j.
   Pass 2, team (g, j) a key: head g's share of dk_j = Σ_i ds_ij q_i and
   dv_j = Σ_i p_ij dO_i, recomputing s, p and dp; the G shares are then
   added in head order.  Lanes' partial sums meet by butterfly shuffles.
   Twice the arithmetic of one pass, but every sum has one owner: no
   atomics, the same result run to run. */
template <int MAXD> __device__ static void ea__team_sum(float *v, int S) {
    int o_, d;
    for (o_ = S / 2; o_ > 0; o_ >>= 1)
#pragma unroll
        for (d = 0; d < MAXD; d++) v[d] += __shfl_xor_sync(0xffffffffu, v[d], o_);
}

template <int MAXD> __global__ static void ea__attn_bwd_short_k(ea__cu_attn a, int S) {
    extern __shared__ float sm[];
    int G = a.H / a.Hkv, b = blockIdx.x / a.Hkv, hk = blockIdx.x % a.Hkv, n = a.n, dh = a.dh, t = threadIdx.x, j, d;
    int u = t / S, s = t % S, g = u / n, i = u % n, live = u < G * n;
    float *ks = sm, *vs = ks + (size_t)n * dh, *qs = vs + (size_t)n * dh, *dos = qs + (size_t)G * n * dh;
    float *ls = dos + (size_t)G * n * dh, *Ds = ls + (size_t)G * n;
    float r0[MAXD], r1[MAXD], acc0[MAXD], acc1[MAXD], L = 0.0f, Dt = 0.0f;
    for (j = t; j < n * dh; j += blockDim.x) {
        size_t src = ((size_t)b * n + j / dh) * a.ldkv + (size_t)hk * dh + j % dh;
        ks[j] = a.k[src];
        vs[j] = a.v[src];
    }
    for (j = t; j < G * n * dh; j += blockDim.x) {
        int row = j / dh % n, h = hk * G + j / (n * dh);
        qs[j] = a.q[((size_t)b * n + row) * a.ldq + (size_t)h * dh + j % dh];
        dos[j] = a.dout[((size_t)b * n + row) * a.ldo + (size_t)h * dh + j % dh];
    }
    for (j = t; j < G * n; j += blockDim.x) {
        size_t r = ((size_t)b * n + j % n) * a.ldo + (size_t)(hk * G + j / n) * dh;
        float sum = 0.0f;
        for (d = 0; d < dh; d++) sum += a.dout[r + d] * a.o[r + d];
        Ds[j] = sum;
        ls[j] = a.lse[((size_t)b * a.H + hk * G + j / n) * n + j % n];
    }
    __syncthreads();
    /* pass 1: team u is query i of head g */
#pragma unroll
    for (d = 0; d < MAXD; d++) {
        r0[d] = live && d < dh ? qs[(size_t)u * dh + d] : 0.0f;
        r1[d] = live && d < dh ? dos[(size_t)u * dh + d] : 0.0f;
        acc0[d] = acc1[d] = 0.0f;
    }
    if (live) {
        L = ls[u];
        Dt = Ds[u];
        for (j = s; j <= (a.causal ? i : n - 1); j += S) {
            const float *kr = ks + (size_t)j * dh, *vr = vs + (size_t)j * dh;
            float sc = 0.0f, dp = 0.0f, ds;
            if (!ea__cu_visible(&a.pat, i, j)) continue;
#pragma unroll
            for (d = 0; d < MAXD; d++)
                if (d < dh) {
                    sc += r0[d] * kr[d];
                    dp += r1[d] * vr[d];
                }
            ds = expf(sc * a.scale - L) * (dp - Dt) * a.scale;
#pragma unroll
            for (d = 0; d < MAXD; d++)
                if (d < dh) acc0[d] += ds * kr[d];
        }
    }
    ea__team_sum<MAXD>(acc0, S);
    if (live && !s)
#pragma unroll
        for (d = 0; d < MAXD; d++)
            if (d < dh) a.dq[((size_t)b * n + i) * a.ldq + (size_t)(hk * G + g) * dh + d] += acc0[d];
    /* pass 2: team u is key i, head g's share */
#pragma unroll
    for (d = 0; d < MAXD; d++) {
        r0[d] = live && d < dh ? ks[(size_t)i * dh + d] : 0.0f;
        r1[d] = live && d < dh ? vs[(size_t)i * dh + d] : 0.0f;
        acc0[d] = acc1[d] = 0.0f;
    }
    if (live)
        for (j = (a.causal ? i : 0) + s; j < n; j += S) { /* j: the queries that see key i */
            const float *qr = qs + ((size_t)g * n + j) * dh, *dr = dos + ((size_t)g * n + j) * dh;
            float sc = 0.0f, dp = 0.0f, p, ds;
            if (!ea__cu_visible(&a.pat, j, i)) continue;
#pragma unroll
            for (d = 0; d < MAXD; d++)
                if (d < dh) {
                    sc += qr[d] * r0[d];
                    dp += dr[d] * r1[d];
                }
            p = expf(sc * a.scale - ls[g * n + j]);
            ds = p * (dp - Ds[g * n + j]) * a.scale;
#pragma unroll
            for (d = 0; d < MAXD; d++)
                if (d < dh) {
                    acc0[d] += ds * qr[d];
                    acc1[d] += p * dr[d];
                }
        }
    ea__team_sum<MAXD>(acc0, S);
    ea__team_sum<MAXD>(acc1, S);
    __syncthreads(); /* every Q and dO row read: they now hold the shares */
    if (live && !s)
#pragma unroll
        for (d = 0; d < MAXD; d++)
            if (d < dh) {
                qs[(size_t)u * dh + d] = acc0[d];
                dos[(size_t)u * dh + d] = acc1[d];
            }
    __syncthreads();
    for (j = t; j < n * dh; j += blockDim.x) { /* key j / dh, column j % dh: the G shares in head order */
        size_t kv = ((size_t)b * n + j / dh) * a.ldkv + (size_t)hk * dh + j % dh;
        float sk = 0.0f, sv = 0.0f;
        for (g = 0; g < G; g++) {
            sk += qs[(size_t)g * n * dh + j];
            sv += dos[(size_t)g * n * dh + j];
        }
        a.dk[kv] += sk;
        a.dv[kv] += sv;
    }
}

/* --- exact attention on tensor cores: bf16 products, fp32 accumulation ------
   FlashAttention-2's schedule (Dao 2023) on mma.sync, the warp-level tensor
   core instruction of Ampere and Hopper.  Inputs and outputs are bfloat16
   (8 bits of mantissa, float32's range); every product accumulates in fp32
   and the softmax runs in fp32.  A block is 4 warps and 64 rows (16 a
   warp); shared memory holds one 64-row tile of each matrix it streams,
   row-major with 8 bf16 of padding a row.

   The instruction, D[16x8] += A[16x16]·B[16x8], spreads its operands over
   the warp's lanes l = 4g + c (g = 0..7, c = 0..3), two bf16 to a register:
       A: a[0] = row g, columns 2c, 2c+1      a[1] = row g+8, same columns
          a[2] = row g, columns 2c+8, 2c+9    a[3] = row g+8, same columns
       B: b[0] = rows 2c, 2c+1 of column g    b[1] = rows 2c+8, 2c+9
       D: d[0], d[1] = row g, columns 2c, 2c+1;  d[2], d[3] = row g+8
   Two facts make the whole kernel:
   - D's layout for columns 16t .. 16t+15 (two 8-wide tiles) is A's layout
     for one 16-wide k-step.  Scores S = Q·Kᵀ therefore feed P·V straight
     from registers: P never touches shared memory.
   - B[k][n] is a tile's row n read along k (two 32-bit loads) when the
     product contracts over the tile's columns (Q·Kᵀ: k = d), and a tile read
     down its columns when it contracts over rows (P·V: k = key); ldmatrix
     .trans fetches the latter already transposed.  So every tile is staged
     once, row-major, whatever product reads it.
   The padding makes lanes 4g + c of a 32-bit load land on banks 4g + c:
   without it the 8 rows g would all hit one bank.

   Forward, block (query tile, b, h), warp rows r .. r+15:
       for each key tile: S = Q·Kᵀ · scale·log₂e (base 2: exp2 is one
       instruction);  m' = max(m, rowmax S);  P = 2^(S - m');
       l ← l·2^(m - m') + rowsum P;  O ← O·2^(m - m') + P·V
       out = O / l,  lse = (m + log₂ l)·ln 2   (natural, as every kernel)
   Backward, with Δ_i = dO_i·O_i (a pre-pass) and P recomputed from lse:
       dV = Pᵀ·dO,  dP = dO·Vᵀ,  dS = P ∘ (dP − Δ),  dQ = dS·K·scale,
       dK = dSᵀ·Q·scale,
   in two kernels: dQ by query tiles (streaming K and V) and dK, dV by key
   tiles (streaming Q and dO of the G query heads sharing the K/V head, in
   head order).  Each output has one owner, so there are no atomics and the
   result is the same run to run, for the price of computing S and dP in
   both (7 products where FlashAttention-2 does 5 with atomic dQ). */
#define EA_TC_ROWS 64 /* rows a block and a streamed tile: 16 a warp */
#define EA_TC_PAD 8   /* bf16 of padding after each shared row */

typedef struct ea__tc_attn {
    const unsigned short *q, *k, *v, *o, *dout;
    unsigned short *out, *dq, *dk, *dv;
    const float *lse, *delta;
    float *lse_out, *delta_out;
    int B, n, H, Hkv, causal;
    size_t ldq, ldkv;    /* row strides (elements) of q, out, dout, dq, and of k, v, dk, dv */
    float scale, scale2; /* 1/√dh and log₂e/√dh */
    ea__cu_pat pat;      /* a sparse pattern (local, localglobal, bigbird), on top of causal */
} ea__tc_attn;

/* Sparse patterns on the tensor-core kernels: tiles skipped.  A pattern
   shows each 64 x 64 tile of (queries, keys) wholly, partly or not at all;
   the kernels visit only tiles that show a pair, so the cost is the
   pattern's (a band of half-width w: O(n·w)), not exact attention's, and
   test single pairs only in partly shown tiles.  Every clause of
   ea__pattern_visible shows a range of keys to a range of queries, and
   the band, global and block-band clauses are symmetric in the two, so
   the next tile to visit comes from ranges without a scan: for a query
   tile, the random blocks its query blocks drew; for a key tile (dK, dV),
   the query blocks that drew it, found once a block by a pass over the
   table into one bit a query tile (EA_TC_HIT_WORDS words of shared
   memory; longer sequences visit every query tile for that clause). */
#define EA_TC_HIT_WORDS 512 /* query tiles 32 a word: n up to 1,048,576 */

/* The first 64-row tile at or after tile u that holds a position of
   [lo, hi] (lo may be negative), or INT_MAX when none does. */
__device__ static inline int ea__tile_from(int lo, int hi, int u) {
    if (hi < 0 || hi < u * EA_TC_ROWS) return INT_MAX;
    return max(u, max(lo, 0) / EA_TC_ROWS);
}

/* The first tile at or after u (of keys for a query tile, of queries for
   a key tile: the clauses but one are symmetric) that the positions
   [a0, a1] (a1 < n) may see under the pattern; the random clause from the
   table (hits NULL: a0..a1 are queries) or from the key tile's bits (hits
   set; nhit words, or every tile when nhit < 0).  INT_MAX: none. */
__device__ static int ea__pat_next(const ea__cu_pat *pt, int a0, int a1, int u, const unsigned *hits, int nhit) {
    const ea__pattern *p = &pt->p;
    int best, b, r;
    if (!pt->on || a0 < p->n_global) return u;
    best = ea__tile_from(0, p->n_global - 1, u);
    if (p->window >= 0) best = min(best, ea__tile_from(a0 - p->window, a1 + p->window, u));
    if (!p->block) return best;
    best = min(best, ea__tile_from((a0 / p->block - p->block_window) * p->block, (a1 / p->block + p->block_window + 1) * p->block - 1, u));
    if (!p->n_random) return best;
    if (!hits) {
        for (b = a0 / p->block; b <= a1 / p->block; b++)
            for (r = 0; r < p->n_random; r++) {
                int kb = p->rand[(size_t)b * p->n_random + r];
                if (kb >= 0 && kb < INT_MAX / p->block - 1) /* (a block past n is shown to nobody) */
                    best = min(best, ea__tile_from(kb * p->block, (kb + 1) * p->block - 1, u));
            }
        return best;
    }
    if (nhit < 0) return u;
    for (b = u; b < 32 * nhit && b < best;) { /* the next set bit at or after u */
        unsigned w = hits[b / 32] >> (b % 32);
        if (w) return min(best, b + __ffs(w) - 1);
        b = (b / 32 + 1) * 32;
    }
    return best;
}

/* Whether the pattern shows every pair of queries [q0, q1] and keys [k0, k1]
   (a sufficient test: a tile it misses only costs single-pair tests). */
__device__ static int ea__pat_full(const ea__cu_pat *pt, int q0, int q1, int k0, int k1) {
    const ea__pattern *p = &pt->p;
    if (!pt->on || q1 < p->n_global || k1 < p->n_global) return 1;
    if (p->window >= 0 && max(q1 - k0, k1 - q0) <= p->window) return 1;
    if (!p->block) return 0;
    if (max(q1 / p->block - k0 / p->block, k1 / p->block - q0 / p->block) <= p->block_window) return 1;
    return q0 / p->block == q1 / p->block && k0 / p->block == k1 / p->block && ea__pattern_drawn(p, q0 / p->block, k0 / p->block);
}

/* Which pairs of a partly shown tile the pattern shows, as the bits of a
   lane's 32 accumulator values: bit 4j + e for s[j][e], that is row
   r0 + 8·(e >> 1) and column c0 + 8j + 2c + (e & 1) (lane c of four) of
   the tile, the row a query and the column a key (or, transposed, the
   reverse: dK, dV's Sᵀ).  Queries at or past n (padding) show everything.
   Computed once a tile, outside the unrolled loops, so that a pair's test
   there is a bit, not the pattern's clauses with their table loop; the
   look-up of random blocks is asked once a (query block, key block) pair,
   the pairs coming in runs. */
__device__ static unsigned ea__pat_bits(const ea__cu_pat *pt, int r0, int c0, int transposed, int n) {
    const ea__pattern *p = &pt->p;
    const int bs = p->block ? p->block : INT_MAX; /* (no blocks: one block, and the block clauses stay off) */
    unsigned bits = 0u;
    int hf, j, e, qb = -1, kb = -1, drawn = 0;
#pragma unroll 1
    for (hf = 0; hf < 2; hf++) {
        int row = r0 + 8 * hf, rb = row / bs, col = c0 + 2 * (threadIdx.x % 4), cb = col / bs, cr = col % bs;
#pragma unroll 1
        for (j = 0; j < EA_TC_ROWS / 8; j++) {
            for (e = 0; e < 2; e++) { /* column col + e, its block cb + (cr + e >= bs) */
                int x = col + e, xb = cb + (cr + e >= bs), q = transposed ? x : row, k = transposed ? row : x;
                int b_q = transposed ? xb : rb, b_k = transposed ? rb : xb, vis = q >= n || ea__pattern_near(p, q, k, b_q, b_k);
                if (!vis && p->block && p->n_random) { /* the look-up once a run of one (query block, key block) */
                    if (b_q != qb || b_k != kb) drawn = ea__pattern_drawn(p, qb = b_q, kb = b_k);
                    vis = drawn;
                }
                if (vis) bits |= 1u << (4 * j + 2 * hf + e);
            }
            col += 8; /* the next column pair, its block by steps, not a division */
            for (cr += 8; cr >= bs; cr -= bs) cb++;
        }
    }
    return bits;
}

/* The query tile of a block of the forwards and dQ: the longest rows
   first, so that they do not trail at the end: under causal masking the
   last tiles, otherwise the first (a pattern's global tokens see every key). */
__device__ static inline int ea__tc_first_tile(int causal) { return causal ? gridDim.x - 1 - blockIdx.x : blockIdx.x; }

/* Hides the pairs of a tile that the masks take away: a key past n, a key
   after its query (causal), a pair the pattern's bits vis (ea__pat_bits)
   do not show.  s[j][e] is row r0 + 8·(e >> 1), column c0 + 8j + 2c +
   (e & 1) (the row a query, the column a key; transposed, the reverse)
   and becomes val.  Only tiles at n, across the diagonal or partly shown
   call it, in a branch the block takes as one: a whole tile pays nothing. */
__device__ static inline void ea__tc_hide(float (*s)[4], int r0, int c0, int transposed, int n, int causal, unsigned vis, float val) {
    const int c = threadIdx.x % 4;
#pragma unroll
    for (int j = 0; j < EA_TC_ROWS / 8; j++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            int row = r0 + 8 * (e >> 1), col = c0 + 8 * j + 2 * c + (e & 1), q = transposed ? col : row, k = transposed ? row : col;
            int hide = (k >= n) | (causal & (k > q)) | !(vis >> (4 * j + e) & 1u); /* (bitwise: a select, not a branch a pair) */
            s[j][e] = hide ? val : s[j][e];
        }
}

/* dK, dV's random clause: bit t of hits set when a query block in query
   tile t drew one of key blocks kb0 .. kb1.  *nhit: the words in use, or
   -1 when the sequence has more query tiles than the bits (every query
   tile is visited then).  The whole block calls it; it ends in a barrier. */
__device__ static void ea__pat_hits(const ea__cu_pat *pt, unsigned *hits, int *nhit, int n, int k0, int k1) {
    const ea__pattern *p = &pt->p;
    int tiles = (n + EA_TC_ROWS - 1) / EA_TC_ROWS, i, words = (tiles + 31) / 32;
    *nhit = tiles > 32 * EA_TC_HIT_WORDS ? -1 : words;
    if (!pt->on || !p->n_random || *nhit < 0) return;
    for (i = threadIdx.x; i < words; i += blockDim.x) hits[i] = 0u;
    __syncthreads();
    for (i = threadIdx.x; i < (n + p->block - 1) / p->block * p->n_random; i += blockDim.x) {
        int kb = p->rand[i], qb = i / p->n_random, t;
        if (kb < k0 / p->block || kb > k1 / p->block) continue;
        for (t = qb * p->block / EA_TC_ROWS; t <= (min((qb + 1) * p->block, n) - 1) / EA_TC_ROWS; t++)
            atomicOr(&hits[t / 32], 1u << (t % 32));
    }
    __syncthreads();
}

__device__ static inline unsigned ea__bf2(float lo, float hi) {
    __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    return (unsigned)__bfloat16_as_ushort(h.x) | (unsigned)__bfloat16_as_ushort(h.y) << 16;
}

__device__ static inline unsigned ea__ld32(const unsigned short *p) { return *(const unsigned *)p; }

/* d += A·B on tensor cores, fp32 accumulators: bf16 operands, 16 deep
   (TF32 false), or TF32 operands, 8 deep (the fp32-buffer forward below) */
template <bool TF32> __device__ static inline void ea__mma(float *d, const unsigned *a, unsigned b0, unsigned b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    if (TF32)
        asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                     "{%0,%1,%2,%3};\n"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    else
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                     "{%0,%1,%2,%3};\n"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#else
    (void)d; (void)a; (void)b0; (void)b1; /* never launched: the host refuses below sm_80 */
#endif
}

/* Four 8x8 bf16 blocks from shared memory, lane l giving the address of a
   block row (lanes 8i .. 8i+7: block i's rows): lane 4g + c receives row g,
   columns 2c, 2c+1 of each block, or with .trans row 2c, 2c+1 of column g. */
__device__ static inline void ea__ldsm4(unsigned *r, const unsigned short *p, int trans) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    unsigned addr = (unsigned)__cvta_generic_to_shared(p);
    if (trans)
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr));
    else
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr));
#else
    (void)p; (void)trans;
    r[0] = r[1] = r[2] = r[3] = 0u;
#endif
}

/* d[j] += A·T[8j .. 8j+8, k0 .. k0+16]ᵀ for j < N/8: a product contracting
   over the tile's columns, B read along tile rows; one ldmatrix serves two
   8-wide tiles (blocks: rows 8j.., columns k0 and k0 + 8, then rows 8j + 8..). */
template <int N> __device__ static inline void ea__mma_rows(float (*d)[4], const unsigned *a, const unsigned short *T, int ld,
                                                              int k0) {
    int l = threadIdx.x % 32;
    unsigned b[4];
#pragma unroll
    for (int j = 0; j < N / 8; j += 2) {
        ea__ldsm4(b, T + (8 * j + 8 * (l / 16) + l % 8) * ld + k0 + 8 * (l / 8 % 2), 0);
        ea__mma<false>(d[j], a, b[0], b[1]);
        ea__mma<false>(d[j + 1], a, b[2], b[3]);
    }
}

/* d[j] += A·T[k0 .. k0+16, 8j .. 8j+8] for j < N/8: contracting over the
   tile's rows, B read down its columns by ldmatrix.trans (blocks: rows k0
   and k0 + 8 of columns 8j.., then of columns 8j + 8..). */
template <int N> __device__ static inline void ea__mma_cols(float (*d)[4], const unsigned *a, const unsigned short *T, int ld,
                                                              int k0) {
    int l = threadIdx.x % 32;
    unsigned b[4];
#pragma unroll
    for (int j = 0; j < N / 8; j += 2) {
        ea__ldsm4(b, T + (k0 + l % 16) * ld + 8 * j + 8 * (l / 16), 1);
        ea__mma<false>(d[j], a, b[0], b[1]);
        ea__mma<false>(d[j + 1], a, b[2], b[3]);
    }
}

/* N/8 accumulator tiles set to 0 */
template <int N> __device__ static inline void ea__acc_zero(float (*d)[4]) {
#pragma unroll
    for (int j = 0; j < N / 8; j++) d[j][0] = d[j][1] = d[j][2] = d[j][3] = 0.0f;
}

/* The backward's two score-shaped products of one streamed tile pair:
   s = A1·T1ᵀ and dp = A2·T2ᵀ (dQ: Q·Kᵀ and dO·Vᵀ; dK/dV: K·Qᵀ and V·dOᵀ). */
template <int D> __device__ static inline void ea__tc_scores2(float (*s)[4], float (*dp)[4], const unsigned (*a1)[4],
                                                                const unsigned (*a2)[4], const unsigned short *t1,
                                                                const unsigned short *t2) {
    ea__acc_zero<EA_TC_ROWS>(s);
    ea__acc_zero<EA_TC_ROWS>(dp);
#pragma unroll
    for (int t = 0; t < D / 16; t++) {
        ea__mma_rows<EA_TC_ROWS>(s, a1[t], t1, D + EA_TC_PAD, 16 * t);
        ea__mma_rows<EA_TC_ROWS>(dp, a2[t], t2, D + EA_TC_PAD, 16 * t);
    }
}

/* An accumulator's columns 16t .. 16t+15 as the A operand of a k-step. */
__device__ static inline void ea__acc_to_a(unsigned *a, const float (*s)[4], int t) {
    a[0] = ea__bf2(s[2 * t][0], s[2 * t][1]);
    a[1] = ea__bf2(s[2 * t][2], s[2 * t][3]);
    a[2] = ea__bf2(s[2 * t + 1][0], s[2 * t + 1][1]);
    a[3] = ea__bf2(s[2 * t + 1][2], s[2 * t + 1][3]);
}

/* out += S·T: a score-shaped accumulator (64 columns, rounded to bf16 as A
   operands) times a streamed tile read down its columns: P·V, dS·K, Pᵀ·dO
   and dSᵀ·Q. */
template <int D> __device__ static inline void ea__tc_acc_mul(float (*out)[4], const float (*s)[4], const unsigned short *T) {
    unsigned pa[4];
#pragma unroll
    for (int t = 0; t < EA_TC_ROWS / 16; t++) {
        ea__acc_to_a(pa, s, t);
        ea__mma_cols<D>(out, pa, T, D + EA_TC_PAD, 16 * t);
    }
}

/* A warp's 16 rows r .. r+15 of a head's [n, ld] matrix as A operands
   (D/16 k-steps), rows at or past n as zeros. */
template <int D> __device__ static void ea__rows_to_a(unsigned (*a)[4], const unsigned short *src, size_t ld, int r, int n) {
    int g = threadIdx.x % 32 / 4, c = threadIdx.x % 4;
#pragma unroll
    for (int t = 0; t < D / 16; t++)
#pragma unroll
        for (int i = 0; i < 4; i++) {
            int row = r + g + 8 * (i & 1), col = 16 * t + 2 * c + 8 * (i >> 1);
            a[t][i] = row < n ? ea__ld32(src + (size_t)row * ld + col) : 0u;
        }
}

/* Rows r0 .. r0+63 of a head's [n, ld] matrix into a shared tile (row
   length D + EA_TC_PAD), 16 bytes a thread a step, rows past n as zeros, by
   cp.async: the copy proceeds while the warps compute on the other of two
   buffers.  The loops that stream tiles all run
       stage tile 0; commit
       for each tile t: stage tile t+1 into the other buffer; commit;
                        wait for all but the newest group; sync;
                        compute on tile t; sync (its buffer is refilled next) */
template <int D, typename T> __device__ static void ea__tc_stage(T *dst, const T *src, size_t ld, int r0, int n, int w = D) {
    const int V = 16 / (int)sizeof(T); /* elements a copy; the padding of a row is one copy wide (EA_TC_PAD for bf16) */
    for (int e = threadIdx.x; e < EA_TC_ROWS * D / V; e += blockDim.x) { /* columns w .. D-1 (a narrower head): zeros */
        int r = e / (D / V), c = e % (D / V) * V, ok = r0 + r < n && c < w;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
        unsigned to = (unsigned)__cvta_generic_to_shared(dst + r * (D + V) + c);
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(to), "l"(src + (size_t)(ok ? r0 + r : 0) * ld + c),
                     "r"(ok ? 16 : 0));
#else
        (void)dst; (void)src; (void)ld; (void)ok;
#endif
    }
}

__device__ static inline void ea__tc_commit(void) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.commit_group;\n" ::);
#endif
}

/* Key rows r0 .. r0+63 of K and V (the forward's and dQ's streamed pair)
   into their buffers, as one cp.async group. */
template <int D, typename T> __device__ static void ea__tc_stage_kv(T *ks, T *vs, const T *kb, const T *vb, size_t ld, int r0,
                                                                    int n, int w = D) {
    ea__tc_stage<D>(ks, kb, ld, r0, n, w);
    ea__tc_stage<D>(vs, vb, ld, r0, n, w);
    ea__tc_commit();
}

/* wait for every staged group but the newest, then for every thread's */
__device__ static inline void ea__tc_wait(void) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.wait_group 1;\n" ::);
#endif
    __syncthreads();
}

/* One key tile's online-softmax step (the forwards'), for a lane's rows
   row0 (s[j][0], s[j][1]) and row0 + 8 (s[j][2], s[j][3]) of the score
   tile s (hidden pairs already -∞, by ea__tc_hide): the running maximum m
   (scaled, base 2) rises to the tile's, o and the lane's partial sums l
   shrink by 2^(m - m'), and s becomes p = 2^(s·scale2 - m'), l += p.
   Under a pattern a row may see no key of a tile before it has seen any:
   m' is then -∞ and p must be 0, not 2^(-∞ + ∞). */
template <int D> __device__ static inline void ea__tc_softmax_step(float (*s)[4], float (*o)[4], float *m, float *l, float scale2) {
    int hf, j, e;
#pragma unroll
    for (hf = 0; hf < 2; hf++) { /* row0 (d[0], d[1]) and row0 + 8 (d[2], d[3]) */
        float mx = -INFINITY, mn, alpha;
#pragma unroll
        for (j = 0; j < EA_TC_ROWS / 8; j++)
#pragma unroll
            for (e = 0; e < 2; e++) mx = fmaxf(mx, s[j][2 * hf + e]);
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1)); /* the row's 4 lanes */
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        mn = fmaxf(m[hf], mx * scale2); /* m in scaled base-2 units; scale2 > 0 keeps the order */
        alpha = m[hf] == -INFINITY ? 0.0f : exp2f(m[hf] - mn);
        m[hf] = mn;
        mn = mn == -INFINITY ? 0.0f : mn; /* no key yet: every p is 2^-∞ = 0 */
        l[hf] *= alpha;
#pragma unroll
        for (j = 0; j < D / 8; j++) {
            o[j][2 * hf] *= alpha;
            o[j][2 * hf + 1] *= alpha;
        }
#pragma unroll
        for (j = 0; j < EA_TC_ROWS / 8; j++)
#pragma unroll
            for (e = 0; e < 2; e++) {
                float p = exp2f(fmaf(s[j][2 * hf + e], scale2, -mn));
                s[j][2 * hf + e] = p;
                l[hf] += p;
            }
    }
}

/* The end of a forward: the rows' sums over their four lanes, and for
   rows row0 (hf 0) and row0 + 8 (hf 1) 1/l and the log-sum-exp (natural
   units; m is in scaled base-2 units). */
__device__ static inline void ea__tc_row_end(float *l, const float *m, float *inv, float *lse) {
#pragma unroll
    for (int hf = 0; hf < 2; hf++) {
        l[hf] += __shfl_xor_sync(0xffffffffu, l[hf], 1);
        l[hf] += __shfl_xor_sync(0xffffffffu, l[hf], 2);
        inv[hf] = 1.0f / l[hf];
        lse[hf] = (m[hf] + log2f(l[hf])) * 0.69314718f;
    }
}

template <int D> __global__ static void __launch_bounds__(128) ea__attn_tc_fwd_k(ea__tc_attn a) {
    __shared__ __align__(16) unsigned short ks[2][EA_TC_ROWS * (D + EA_TC_PAD)], vs[2][EA_TC_ROWS * (D + EA_TC_PAD)];
    const int LD = D + EA_TC_PAD, c = threadIdx.x % 4;
    int b = blockIdx.y / a.H, h = blockIdx.y % a.H, hk = h / (a.H / a.Hkv);
    int q0 = ea__tc_first_tile(a.causal) * EA_TC_ROWS;
    int r = q0 + 16 * (threadIdx.x / 32), row0 = r + threadIdx.x % 32 / 4, q1 = min(q0 + EA_TC_ROWS, a.n) - 1, k0, tiles, it, nx, u, j, t, hf;
    const unsigned short *kb = a.k + (size_t)b * a.n * a.ldkv + (size_t)hk * D, *vb = a.v + (size_t)b * a.n * a.ldkv + (size_t)hk * D;
    unsigned qa[D / 16][4];
    float o[D / 8][4], s[EA_TC_ROWS / 8][4], m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f}, inv[2], lse[2];
    ea__rows_to_a<D>(qa, a.q + (size_t)b * a.n * a.ldq + (size_t)h * D, a.ldq, r, a.n);
    ea__acc_zero<D>(o);
    tiles = ((a.causal ? min(a.n, q0 + EA_TC_ROWS) : a.n) + EA_TC_ROWS - 1) / EA_TC_ROWS;
    it = ea__pat_next(&a.pat, q0, q1, 0, NULL, 0); /* the key tiles the pattern shows (all without one) */
    if (it < tiles) ea__tc_stage_kv<D>(ks[0], vs[0], kb, vb, a.ldkv, it * EA_TC_ROWS, a.n);
    for (u = 0; it < tiles; it = nx, u ^= 1) {
        const unsigned short *kt = ks[u], *vt = vs[u];
        int full, masked; /* a tile past n, across the diagonal or partly shown: check every key */
        k0 = it * EA_TC_ROWS;
        nx = it + 1 < tiles ? ea__pat_next(&a.pat, q0, q1, it + 1, NULL, 0) : tiles;
        full = ea__pat_full(&a.pat, q0, q1, k0, k0 + EA_TC_ROWS - 1);
        masked = k0 + EA_TC_ROWS > a.n || (a.causal && k0 + EA_TC_ROWS - 1 > q0) || !full;
        if (nx < tiles) ea__tc_stage_kv<D>(ks[u ^ 1], vs[u ^ 1], kb, vb, a.ldkv, nx * EA_TC_ROWS, a.n);
        else ea__tc_commit(); /* an empty group: "all but the newest" stays this tile */
        ea__tc_wait();
        ea__acc_zero<EA_TC_ROWS>(s);
#pragma unroll
        for (t = 0; t < D / 16; t++) ea__mma_rows<EA_TC_ROWS>(s, qa[t], kt, LD, 16 * t);
        if (masked) ea__tc_hide(s, row0, k0, 0, a.n, a.causal, full ? ~0u : ea__pat_bits(&a.pat, row0, k0, 0, a.n), -INFINITY);
        ea__tc_softmax_step<D>(s, o, m, l, a.scale2);
        ea__tc_acc_mul<D>(o, s, vt);
        __syncthreads();
    }
    ea__tc_row_end(l, m, inv, lse);
#pragma unroll
    for (hf = 0; hf < 2; hf++) {
        int row = row0 + 8 * hf;
        if (row >= a.n) continue;
#pragma unroll
        for (j = 0; j < D / 8; j++)
            *(unsigned *)(a.out + ((size_t)b * a.n + row) * a.ldq + (size_t)h * D + 8 * j + 2 * c) =
                ea__bf2(o[j][2 * hf] * inv[hf], o[j][2 * hf + 1] * inv[hf]);
        if (c == 0) a.lse_out[((size_t)b * a.H + h) * a.n + row] = lse[hf];
    }
}

/* --- exact attention on TF32 tensor cores, from fp32 buffers -----------------
   The bf16 forward's schedule with fp32 tiles and mma.m16n8k8.tf32: the
   operands are rounded to TF32 (fp32's range, 10 mantissa bits, cvt.rna)
   as they enter a product; scores, softmax and sums stay fp32.  A k-step
   is 8 wide, and ldmatrix (16-bit) does not apply: lanes read their
   fragment values from shared memory one by one (rows padded to D + 4
   floats, which keeps the four-lane groups on distinct banks).  For P·V the
   keys of a tile are taken in the order (2c, 2c + 1 for lane c): the
   score accumulator's lane already holds those two columns, so it serves
   as the A operand as it is (a permutation of the summation over keys,
   matched by the rows of V read as B).
   With X3 every product is 3xTF32 (Ootomo and Yokota 2022): each operand
   splits into x_hi = tf32(x) and x_lo = tf32(x - x_hi), and a·b is
   a_lo·b_hi + a_hi·b_lo + a_hi·b_hi, which keeps ~21 of fp32's 24 bits for
   three times the tensor-core work: the fp32 forward (ea_attention_fwd_cuda)
   runs this way on sm_80+.  Heads of any width up to D that is a multiple
   of 4 (the tracker's 16, the classifier's 12) are padded with zeros to D
   in shared memory and in Q's fragments. */
__device__ static inline unsigned ea__tf32(float x) {
    unsigned r = 0u;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(x));
#else
    (void)x;
#endif
    return r;
}

/* x as TF32 (hi) and, with X3, the TF32 of what that leaves (lo) */
template <bool X3> __device__ static inline void ea__tf32_split(float x, unsigned *hi, unsigned *lo) {
    *hi = ea__tf32(x);
    *lo = X3 ? ea__tf32(x - __uint_as_float(*hi)) : 0u;
}

/* d += A·B in TF32, or in 3xTF32 (small terms first) */
template <bool X3> __device__ static inline void ea__mma_x3(float *d, const unsigned *ahi, const unsigned *alo, unsigned bhi0,
                                                            unsigned bhi1, unsigned blo0, unsigned blo1) {
    if (X3) {
        ea__mma<true>(d, alo, bhi0, bhi1);
        ea__mma<true>(d, ahi, blo0, blo1);
    }
    ea__mma<true>(d, ahi, bhi0, bhi1);
}

/* One k-step of d += A·B for one 8-wide n-tile, B's column n = g read
   along a row of a shared tile: bt[0] and bt[4] (k = c and c + 4 of
   lane c): the product A·Tᵀ of S = Q·Kᵀ and its kin. */
template <bool X3> __device__ static inline void ea__x3_kstep(float *d, const unsigned *ahi, const unsigned *alo, const float *bt) {
    unsigned h0, h1, l0, l1;
    ea__tf32_split<X3>(bt[0], &h0, &l0);
    ea__tf32_split<X3>(bt[4], &h1, &l1);
    ea__mma_x3<X3>(d, ahi, alo, h0, h1, l0, l1);
}

/* O (16 x D) += P (16 x 64, a lane's score accumulators) · T (the 64 x D
   shared tile, row stride LD), the keys of k-step j taken in the order
   2c, 2c + 1 for lane c (the accumulator's own columns: P serves as the A
   operand as it is, and T's rows are read in the same order). */
template <int D, bool X3> __device__ static inline void ea__x3_pv(float (*o)[4], const float (*p)[4], const float *T, int LD) {
    const int g = threadIdx.x % 32 / 4, c = threadIdx.x % 4;
#pragma unroll
    for (int j = 0; j < EA_TC_ROWS / 8; j++) {
        unsigned pa[4], pl[4];
        const float *vr = T + (8 * j + 2 * c) * LD + g;
        ea__tf32_split<X3>(p[j][0], &pa[0], &pl[0]);
        ea__tf32_split<X3>(p[j][2], &pa[1], &pl[1]);
        ea__tf32_split<X3>(p[j][1], &pa[2], &pl[2]);
        ea__tf32_split<X3>(p[j][3], &pa[3], &pl[3]);
#pragma unroll
        for (int t = 0; t < D / 8; t++) {
            unsigned h0, h1, l0, l1;
            ea__tf32_split<X3>(vr[8 * t], &h0, &l0);
            ea__tf32_split<X3>(vr[LD + 8 * t], &h1, &l1);
            ea__mma_x3<X3>(o[t], pa, pl, h0, h1, l0, l1);
        }
    }
}

/* S (16 x 64) += A · Bᵀ over D columns: A rows r .. r+15 of one shared
   tile, B the 64 rows of another (both row stride LD): S = Q·Kᵀ, dP =
   dO·Vᵀ, and the backward's transposed Sᵀ = K·Qᵀ, dPᵀ = V·dOᵀ. */
template <int D, bool X3> __device__ static inline void ea__x3_abt(float (*s)[4], const float *A, int r, const float *B, int LD) {
    const int g = threadIdx.x % 32 / 4, c = threadIdx.x % 4;
#pragma unroll
    for (int t = 0; t < D / 8; t++) {
        unsigned ah[4], al[4];
#pragma unroll
        for (int i = 0; i < 4; i++) /* rows g, g + 8; columns c, c + 4 */
            ea__tf32_split<X3>(A[(r + g + 8 * (i & 1)) * LD + 8 * t + c + 4 * (i >> 1)], &ah[i], &al[i]);
#pragma unroll
        for (int j = 0; j < EA_TC_ROWS / 8; j++) ea__x3_kstep<X3>(s[j], ah, al, B + (8 * j + g) * LD + 8 * t + c);
    }
}

template <int D> static size_t ea__attn_tf32_smem(void) { return 4 * (size_t)EA_TC_ROWS * (D + 4) * sizeof(float); }

template <int D, bool X3> __global__ static void __launch_bounds__(128) ea__attn_tf32_fwd_k(ea__cu_attn a) {
    extern __shared__ __align__(16) float ea__tf32_sm[]; /* K and V tiles, two buffers each */
    const int LD = D + 4, g = threadIdx.x % 32 / 4, c = threadIdx.x % 4, dh = a.dh;
    int b = blockIdx.y / a.H, h = blockIdx.y % a.H, hk = h / (a.H / a.Hkv);
    int q0 = ea__tc_first_tile(a.causal) * EA_TC_ROWS;
    int r = q0 + 16 * (threadIdx.x / 32), row0 = r + g, q1 = min(q0 + EA_TC_ROWS, a.n) - 1, k0, tiles, it, nx, u, j, t, i, hf;
    const float *qb = a.q + (size_t)b * a.n * a.ldq + (size_t)h * dh;
    const float *kb = a.k + (size_t)b * a.n * a.ldkv + (size_t)hk * dh, *vb = a.v + (size_t)b * a.n * a.ldkv + (size_t)hk * dh;
    unsigned qa[D / 8][4], ql[X3 ? D / 8 : 1][4];
    float o[D / 8][4], s[EA_TC_ROWS / 8][4], m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f}, inv[2], lse[2];
    float scale2 = a.scale * 1.44269504f;
#pragma unroll
    for (t = 0; t < D / 8; t++) /* Q's fragments: rows g, g + 8, columns c, c + 4 of each k-step */
#pragma unroll
        for (i = 0; i < 4; i++) {
            int row = r + g + 8 * (i & 1), col = 8 * t + c + 4 * (i >> 1);
            ea__tf32_split<X3>(row < a.n && col < dh ? qb[(size_t)row * a.ldq + col] : 0.0f, &qa[t][i], &ql[X3 ? t : 0][i]);
        }
    ea__acc_zero<D>(o);
    tiles = ((a.causal ? min(a.n, q0 + EA_TC_ROWS) : a.n) + EA_TC_ROWS - 1) / EA_TC_ROWS;
    it = ea__pat_next(&a.pat, q0, q1, 0, NULL, 0);
    if (it < tiles) ea__tc_stage_kv<D>(ea__tf32_sm, ea__tf32_sm + 2 * EA_TC_ROWS * LD, kb, vb, a.ldkv, it * EA_TC_ROWS, a.n, dh);
    for (u = 0; it < tiles; it = nx, u ^= 1) { /* buffer u: K tile at u·64·LD, V tile at (2 + u)·64·LD */
        const float *kt = ea__tf32_sm + u * EA_TC_ROWS * LD, *vt = kt + 2 * EA_TC_ROWS * LD;
        int full, masked;
        k0 = it * EA_TC_ROWS;
        nx = it + 1 < tiles ? ea__pat_next(&a.pat, q0, q1, it + 1, NULL, 0) : tiles;
        full = ea__pat_full(&a.pat, q0, q1, k0, k0 + EA_TC_ROWS - 1);
        masked = k0 + EA_TC_ROWS > a.n || (a.causal && k0 + EA_TC_ROWS - 1 > q0) || !full;
        if (nx < tiles)
            ea__tc_stage_kv<D>(ea__tf32_sm + (u ^ 1) * EA_TC_ROWS * LD, ea__tf32_sm + (2 + (u ^ 1)) * EA_TC_ROWS * LD, kb, vb,
                               a.ldkv, nx * EA_TC_ROWS, a.n, dh);
        else ea__tc_commit();
        ea__tc_wait();
        ea__acc_zero<EA_TC_ROWS>(s);
#pragma unroll
        for (t = 0; t < D / 8; t++) /* S = Q·Kᵀ: B (k, n) = K[key 8j + n][8t + k] */
#pragma unroll
            for (j = 0; j < EA_TC_ROWS / 8; j++) ea__x3_kstep<X3>(s[j], qa[t], ql[X3 ? t : 0], kt + (8 * j + g) * LD + 8 * t + c);
        if (masked) ea__tc_hide(s, row0, k0, 0, a.n, a.causal, full ? ~0u : ea__pat_bits(&a.pat, row0, k0, 0, a.n), -INFINITY);
        ea__tc_softmax_step<D>(s, o, m, l, scale2);
        ea__x3_pv<D, X3>(o, s, vt, LD); /* O += P·V */
        __syncthreads();
    }
    ea__tc_row_end(l, m, inv, lse);
#pragma unroll
    for (hf = 0; hf < 2; hf++) {
        int row = row0 + 8 * hf;
        if (row >= a.n) continue;
#pragma unroll
        for (j = 0; j < D / 8; j++)
            if (8 * j + 2 * c < dh) /* dh is a multiple of 4: a lane's pair is in or out whole */
                *(float2 *)(a.out + ((size_t)b * a.n + row) * a.ldo + (size_t)h * dh + 8 * j + 2 * c) =
                    make_float2(o[j][2 * hf] * inv[hf], o[j][2 * hf + 1] * inv[hf]);
        if (c == 0) a.lse[((size_t)b * a.H + h) * a.n + row] = lse[hf];
    }
}

/* Δ_i = dO_i·O_i in fp32, a warp a row (b, h, i) (w = (b·H + h)·n + i),
   from bf16 bits (the bf16 backward) or floats (the 3xTF32 one); dout and
   o share the row stride ld. */
__device__ static inline float ea__as_float(float x) { return x; }
__device__ static inline float ea__as_float(unsigned short x) { return __bfloat162float(__ushort_as_bfloat16(x)); }

template <typename T>
__global__ static void ea__attn_delta_k(float *delta, const T *dout, const T *o, size_t ld, int B, int H, int n, int dh) {
    int w = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32, d;
    size_t row;
    float s = 0.0f;
    if (w >= B * H * n) return;
    row = ((size_t)(w / (H * n)) * n + w % n) * ld + (size_t)(w / n % H) * dh;
    for (d = lane; d < dh; d += 32) s += ea__as_float(dout[row + d]) * ea__as_float(o[row + d]);
    s = ea__warp_sum(s);
    if (lane == 0) delta[w] = s;
}

/* --- the fp32 backward on tensor cores, in 3xTF32 ---------------------------
   The bf16 backward's two kernels (dQ by query tiles, dK and dV by key
   tiles, each gradient with one owner) on fp32 buffers: every product in
   3xTF32 (about 21 of fp32's 24 bits a product, as the forward; sums over
   many queries, dK's and dV's, carry that to ~2e-5 relative in the tests,
   against ~3e-6 from the fp32 cores), tiles staged by cp.async as fp32
   rows of D + 4 floats.  The
   fixed operands (Q and dO for dQ; K and V for dK, dV) sit in shared
   memory too and are read a k-step at a time, not held in registers:
   3xTF32 fragments are four times bf16's.  Heads up to 64 wide in
   multiples of 4 (padded with zeros to D); the gradients are added (+=)
   to dq, dk, dv like the fp32-core kernels', with Δ from a pre-pass in the
   handle's scratch.  Patterns skip tiles as in the bf16 kernels. */
template <int D> static size_t ea__attn_x3_bwd_smem(void) { return 6 * (size_t)EA_TC_ROWS * (D + 4) * sizeof(float); }

template <int D> __global__ static void __launch_bounds__(128) ea__attn_x3_dq_k(ea__cu_attn a, const float *delta) {
    extern __shared__ __align__(16) float ea__x3_sm[]; /* Q, dO; then K and V tiles, two buffers each */
    const int LD = D + 4, T = EA_TC_ROWS * (D + 4), g = threadIdx.x % 32 / 4, c = threadIdx.x % 4, dh = a.dh;
    int b = blockIdx.y / a.H, h = blockIdx.y % a.H, hk = h / (a.H / a.Hkv), q0 = ea__tc_first_tile(a.causal) * EA_TC_ROWS;
    int r = 16 * (threadIdx.x / 32), row0 = q0 + r + g, q1 = min(q0 + EA_TC_ROWS, a.n) - 1, k0, tiles, it, nx, u, j, e, hf;
    const float *kb = a.k + (size_t)b * a.n * a.ldkv + (size_t)hk * dh, *vb = a.v + (size_t)b * a.n * a.ldkv + (size_t)hk * dh;
    float *qs = ea__x3_sm, *dos = ea__x3_sm + T, dq[D / 8][4], s[EA_TC_ROWS / 8][4], dp[EA_TC_ROWS / 8][4], L[2], Dl[2];
    const float scale2 = a.scale * 1.44269504f;
#pragma unroll
    for (hf = 0; hf < 2; hf++) {
        size_t i = ((size_t)b * a.H + h) * a.n + row0 + 8 * hf;
        L[hf] = row0 + 8 * hf < a.n ? a.lse[i] * 1.44269504f : 0.0f;
        Dl[hf] = row0 + 8 * hf < a.n ? delta[i] : 0.0f;
    }
    ea__acc_zero<D>(dq);
    ea__tc_stage<D>(qs, a.q + (size_t)b * a.n * a.ldq + (size_t)h * dh, a.ldq, q0, a.n, dh); /* (in the first tile's group) */
    ea__tc_stage<D>(dos, a.dout + (size_t)b * a.n * a.ldo + (size_t)h * dh, a.ldo, q0, a.n, dh);
    tiles = ((a.causal ? min(a.n, q0 + EA_TC_ROWS) : a.n) + EA_TC_ROWS - 1) / EA_TC_ROWS;
    it = ea__pat_next(&a.pat, q0, q1, 0, NULL, 0);
    if (it < tiles) ea__tc_stage_kv<D>(ea__x3_sm + 2 * T, ea__x3_sm + 3 * T, kb, vb, a.ldkv, it * EA_TC_ROWS, a.n, dh);
    else ea__tc_commit();
    for (u = 0; it < tiles; it = nx, u ^= 1) { /* buffer u: K at (2 + 2u)·T, V at (3 + 2u)·T */
        const float *kt = ea__x3_sm + (2 + 2 * u) * T, *vt = kt + T;
        int full, masked;
        k0 = it * EA_TC_ROWS;
        nx = it + 1 < tiles ? ea__pat_next(&a.pat, q0, q1, it + 1, NULL, 0) : tiles;
        full = ea__pat_full(&a.pat, q0, q1, k0, k0 + EA_TC_ROWS - 1);
        masked = k0 + EA_TC_ROWS > a.n || (a.causal && k0 + EA_TC_ROWS - 1 > q0) || !full;
        if (nx < tiles)
            ea__tc_stage_kv<D>(ea__x3_sm + (4 - 2 * u) * T, ea__x3_sm + (5 - 2 * u) * T, kb, vb, a.ldkv, nx * EA_TC_ROWS, a.n, dh);
        else ea__tc_commit();
        ea__tc_wait();
        ea__acc_zero<EA_TC_ROWS>(s);
        ea__acc_zero<EA_TC_ROWS>(dp);
        ea__x3_abt<D, true>(s, qs, r, kt, LD);   /* S = Q·Kᵀ */
        ea__x3_abt<D, true>(dp, dos, r, vt, LD); /* dP = dO·Vᵀ */
#pragma unroll
        for (j = 0; j < EA_TC_ROWS / 8; j++)
#pragma unroll
            for (e = 0; e < 4; e++) s[j][e] = exp2f(fmaf(s[j][e], scale2, -L[e >> 1])); /* P */
        if (masked) ea__tc_hide(s, row0, k0, 0, a.n, a.causal, full ? ~0u : ea__pat_bits(&a.pat, row0, k0, 0, a.n), 0.0f);
#pragma unroll
        for (j = 0; j < EA_TC_ROWS / 8; j++)
#pragma unroll
            for (e = 0; e < 4; e++) s[j][e] *= dp[j][e] - Dl[e >> 1]; /* dS */
        ea__x3_pv<D, true>(dq, s, kt, LD); /* dQ += dS·K */
        __syncthreads();
    }
#pragma unroll
    for (hf = 0; hf < 2; hf++) {
        int row = row0 + 8 * hf;
        if (row >= a.n) continue;
#pragma unroll
        for (j = 0; j < D / 8; j++)
            if (8 * j + 2 * c < dh) { /* dh is a multiple of 4: a lane's pair is in or out whole */
                float2 *at = (float2 *)(a.dq + ((size_t)b * a.n + row) * a.ldq + (size_t)h * dh + 8 * j + 2 * c), v = *at;
                v.x += dq[j][2 * hf] * a.scale;
                v.y += dq[j][2 * hf + 1] * a.scale;
                *at = v;
            }
    }
}

template <int D> __global__ static void __launch_bounds__(128) ea__attn_x3_dkdv_k(ea__cu_attn a, const float *delta) {
    extern __shared__ __align__(16) float ea__x3_sm[]; /* K, V; then Q and dO tiles, two buffers each */
    __shared__ float ls[2][EA_TC_ROWS], dls[2][EA_TC_ROWS];
    __shared__ unsigned hits[EA_TC_HIT_WORDS];
    const int LD = D + 4, T = EA_TC_ROWS * (D + 4), c = threadIdx.x % 4, G = a.H / a.Hkv, dh = a.dh;
    int b = blockIdx.y / a.Hkv, hk = blockIdx.y % a.Hkv, k0 = blockIdx.x * EA_TC_ROWS, k1 = min(k0 + EA_TC_ROWS, a.n) - 1;
    int r = 16 * (threadIdx.x / 32), row0 = k0 + r + threadIdx.x % 32 / 4, tiles = (a.n + EA_TC_ROWS - 1) / EA_TC_ROWS;
    int it, nx = 0, prev, u, nhit, j, e;
    size_t koff = (size_t)b * a.n * a.ldkv + (size_t)hk * dh;
    const float scale2 = a.scale * 1.44269504f;
    float dk[D / 8][4], dv[D / 8][4], s[EA_TC_ROWS / 8][4], dp[EA_TC_ROWS / 8][4];
    ea__pat_hits(&a.pat, hits, &nhit, a.n, k0, k1);
    ea__acc_zero<D>(dk);
    ea__acc_zero<D>(dv);
    ea__tc_stage<D>(ea__x3_sm, a.k + koff, a.ldkv, k0, a.n, dh); /* (in the first step's group) */
    ea__tc_stage<D>(ea__x3_sm + T, a.v + koff, a.ldkv, k0, a.n, dh);
    /* step it: query tile it / G (from the diagonal's under causal masking), head hk·G + it mod G */
    it = G * min(ea__pat_next(&a.pat, k0, k1, a.causal ? (int)blockIdx.x : 0, hits, nhit), tiles);
    for (prev = -1, u = 0;; prev = it, it = nx, u ^= 1) {
        if (it < G * tiles) {
            int h = hk * G + it % G, q0 = it / G * EA_TC_ROWS, i;
            size_t loff = ((size_t)b * a.H + h) * a.n;
            ea__tc_stage<D>(ea__x3_sm + (2 + 2 * u) * T, a.q + (size_t)b * a.n * a.ldq + (size_t)h * dh, a.ldq, q0, a.n, dh);
            ea__tc_stage<D>(ea__x3_sm + (3 + 2 * u) * T, a.dout + (size_t)b * a.n * a.ldo + (size_t)h * dh, a.ldo, q0, a.n, dh);
            for (i = threadIdx.x; i < EA_TC_ROWS; i += blockDim.x) {
                ls[u][i] = q0 + i < a.n ? a.lse[loff + q0 + i] * 1.44269504f : INFINITY;
                dls[u][i] = q0 + i < a.n ? delta[loff + q0 + i] : 0.0f;
            }
            nx = (it + 1) % G ? it + 1 : it / G + 1 < tiles ? G * min(ea__pat_next(&a.pat, k0, k1, it / G + 1, hits, nhit), tiles) : G * tiles;
        }
        ea__tc_commit();
        if (prev >= 0) {
            int q0 = prev / G * EA_TC_ROWS, full = ea__pat_full(&a.pat, q0, min(q0 + EA_TC_ROWS, a.n) - 1, k0, k1);
            int diag = a.causal && q0 < k0 + EA_TC_ROWS - 1;
            const float *qt = ea__x3_sm + (2 + 2 * (u ^ 1)) * T, *dt = qt + T, *lt = ls[u ^ 1], *dlt = dls[u ^ 1];
            ea__tc_wait();
            ea__acc_zero<EA_TC_ROWS>(s);
            ea__acc_zero<EA_TC_ROWS>(dp);
            ea__x3_abt<D, true>(s, ea__x3_sm, r, qt, LD);      /* Sᵀ = K·Qᵀ */
            ea__x3_abt<D, true>(dp, ea__x3_sm + T, r, dt, LD); /* dPᵀ = V·dOᵀ */
#pragma unroll
            for (j = 0; j < EA_TC_ROWS / 8; j++)
#pragma unroll
                for (e = 0; e < 4; e++) s[j][e] = exp2f(fmaf(s[j][e], scale2, -lt[8 * j + 2 * c + (e & 1)])); /* Pᵀ */
            if (diag || !full) /* (keys past n stay: their rows are not stored; queries past n have P = 0 by lse +∞) */
                ea__tc_hide(s, row0, q0, 1, INT_MAX, diag, full ? ~0u : ea__pat_bits(&a.pat, row0, q0, 1, a.n), 0.0f);
#pragma unroll
            for (j = 0; j < EA_TC_ROWS / 8; j++)
#pragma unroll
                for (e = 0; e < 4; e++) dp[j][e] = s[j][e] * (dp[j][e] - dlt[8 * j + 2 * c + (e & 1)]); /* dSᵀ */
            ea__x3_pv<D, true>(dv, s, dt, LD);  /* dV += Pᵀ·dO */
            ea__x3_pv<D, true>(dk, dp, qt, LD); /* dK += dSᵀ·Q */
            __syncthreads();
        }
        if (it >= G * tiles) break;
    }
#pragma unroll
    for (e = 0; e < 2; e++) {
        int row = row0 + 8 * e;
        if (row >= a.n) continue;
#pragma unroll
        for (j = 0; j < D / 8; j++)
            if (8 * j + 2 * c < dh) {
                size_t at = koff + (size_t)row * a.ldkv + 8 * j + 2 * c;
                float2 *pk = (float2 *)(a.dk + at), *pv = (float2 *)(a.dv + at), x = *pk, y = *pv;
                x.x += dk[j][2 * e] * a.scale;
                x.y += dk[j][2 * e + 1] * a.scale;
                y.x += dv[j][2 * e];
                y.y += dv[j][2 * e + 1];
                *pk = x;
                *pv = y;
            }
    }
}

/* Launches the forward for heads of width a->dh <= 64 (a multiple of 4),
   in TF32 or 3xTF32; sets the kernels' shared-memory limit the first time
   (ea_vit_cuda_init calls it before any graph capture). */
static void ea__tf32_prepare(void) {
    static int done = 0;
    if (done) return;
    cudaFuncSetAttribute((const void *)ea__attn_x3_dq_k<64>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)ea__attn_x3_bwd_smem<64>());
    cudaFuncSetAttribute((const void *)ea__attn_x3_dq_k<32>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)ea__attn_x3_bwd_smem<32>());
    cudaFuncSetAttribute((const void *)ea__attn_x3_dkdv_k<64>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                         (int)ea__attn_x3_bwd_smem<64>());
    cudaFuncSetAttribute((const void *)ea__attn_x3_dkdv_k<32>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                         (int)ea__attn_x3_bwd_smem<32>());
    cudaFuncSetAttribute((const void *)ea__attn_tf32_fwd_k<64, false>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                         (int)ea__attn_tf32_smem<64>());
    cudaFuncSetAttribute((const void *)ea__attn_tf32_fwd_k<64, true>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                         (int)ea__attn_tf32_smem<64>());
    done = 1;
}

/* The 3xTF32 backward: Δ into scratch, then dQ and dK/dV. */
static void ea__attn_x3_bwd_launch(cudaStream_t s, const ea__cu_attn *a, float *scratch) {
    dim3 gq((unsigned)((a->n + EA_TC_ROWS - 1) / EA_TC_ROWS), (unsigned)(a->B * a->H)), gk(gq.x, (unsigned)(a->B * a->Hkv));
    ea__tf32_prepare();
    ea__attn_delta_k<float><<<ea__blocks((size_t)a->B * a->H * a->n, 4), 128, 0, s>>>(scratch, a->dout, a->o, a->ldo, a->B, a->H, a->n,
                                                                                      a->dh);
    if (a->dh <= 16) {
        ea__attn_x3_dq_k<16><<<gq, 128, ea__attn_x3_bwd_smem<16>(), s>>>(*a, scratch);
        ea__attn_x3_dkdv_k<16><<<gk, 128, ea__attn_x3_bwd_smem<16>(), s>>>(*a, scratch);
    } else if (a->dh <= 32) {
        ea__attn_x3_dq_k<32><<<gq, 128, ea__attn_x3_bwd_smem<32>(), s>>>(*a, scratch);
        ea__attn_x3_dkdv_k<32><<<gk, 128, ea__attn_x3_bwd_smem<32>(), s>>>(*a, scratch);
    } else {
        ea__attn_x3_dq_k<64><<<gq, 128, ea__attn_x3_bwd_smem<64>(), s>>>(*a, scratch);
        ea__attn_x3_dkdv_k<64><<<gk, 128, ea__attn_x3_bwd_smem<64>(), s>>>(*a, scratch);
    }
}

template <bool X3> static void ea__attn_tf32_launch(cudaStream_t s, const ea__cu_attn *a) {
    dim3 grid((unsigned)((a->n + EA_TC_ROWS - 1) / EA_TC_ROWS), (unsigned)(a->B * a->H));
    ea__tf32_prepare();
    if (a->dh <= 16) ea__attn_tf32_fwd_k<16, X3><<<grid, 128, ea__attn_tf32_smem<16>(), s>>>(*a);
    else if (a->dh <= 32) ea__attn_tf32_fwd_k<32, X3><<<grid, 128, ea__attn_tf32_smem<32>(), s>>>(*a);
    else ea__attn_tf32_fwd_k<64, X3><<<grid, 128, ea__attn_tf32_smem<64>(), s>>>(*a);
}

/* dQ, block (query tile, b, h): per key tile S = Q·Kᵀ, P = 2^(S·scale2 −
   lse·log₂e), dP = dO·Vᵀ, dS = P ∘ (dP − Δ), dQ += dS·K. */
template <int D> __global__ static void __launch_bounds__(128) ea__attn_tc_dq_k(ea__tc_attn a) {
    __shared__ __align__(16) unsigned short ks[2][EA_TC_ROWS * (D + EA_TC_PAD)], vs[2][EA_TC_ROWS * (D + EA_TC_PAD)];
    const int c = threadIdx.x % 4;
    int b = blockIdx.y / a.H, h = blockIdx.y % a.H, hk = h / (a.H / a.Hkv);
    int q0 = ea__tc_first_tile(a.causal) * EA_TC_ROWS;
    int r = q0 + 16 * (threadIdx.x / 32), row0 = r + threadIdx.x % 32 / 4, q1 = min(q0 + EA_TC_ROWS, a.n) - 1, k0, tiles, it, nx, u, j,
        hf, e;
    size_t qoff = (size_t)b * a.n * a.ldq + (size_t)h * D;
    const unsigned short *kb = a.k + (size_t)b * a.n * a.ldkv + (size_t)hk * D, *vb = a.v + (size_t)b * a.n * a.ldkv + (size_t)hk * D;
    unsigned qa[D / 16][4], da[D / 16][4];
    float dq[D / 8][4], s[EA_TC_ROWS / 8][4], dp[EA_TC_ROWS / 8][4], L[2], Dl[2];
    ea__rows_to_a<D>(qa, a.q + qoff, a.ldq, r, a.n);
    ea__rows_to_a<D>(da, a.dout + qoff, a.ldq, r, a.n);
#pragma unroll
    for (hf = 0; hf < 2; hf++) {
        size_t i = ((size_t)b * a.H + h) * a.n + row0 + 8 * hf;
        L[hf] = row0 + 8 * hf < a.n ? a.lse[i] * 1.44269504f : 0.0f;
        Dl[hf] = row0 + 8 * hf < a.n ? a.delta[i] : 0.0f;
    }
    ea__acc_zero<D>(dq);
    tiles = ((a.causal ? min(a.n, q0 + EA_TC_ROWS) : a.n) + EA_TC_ROWS - 1) / EA_TC_ROWS;
    it = ea__pat_next(&a.pat, q0, q1, 0, NULL, 0); /* the forward's tiles */
    if (it < tiles) ea__tc_stage_kv<D>(ks[0], vs[0], kb, vb, a.ldkv, it * EA_TC_ROWS, a.n);
    for (u = 0; it < tiles; it = nx, u ^= 1) {
        const unsigned short *kt = ks[u], *vt = vs[u];
        int full, masked;
        k0 = it * EA_TC_ROWS;
        nx = it + 1 < tiles ? ea__pat_next(&a.pat, q0, q1, it + 1, NULL, 0) : tiles;
        full = ea__pat_full(&a.pat, q0, q1, k0, k0 + EA_TC_ROWS - 1);
        masked = k0 + EA_TC_ROWS > a.n || (a.causal && k0 + EA_TC_ROWS - 1 > q0) || !full;
        if (nx < tiles) ea__tc_stage_kv<D>(ks[u ^ 1], vs[u ^ 1], kb, vb, a.ldkv, nx * EA_TC_ROWS, a.n);
        else ea__tc_commit(); /* an empty group: "all but the newest" stays this tile */
        ea__tc_wait();
        ea__tc_scores2<D>(s, dp, qa, da, kt, vt);
#pragma unroll
        for (j = 0; j < EA_TC_ROWS / 8; j++)
#pragma unroll
            for (e = 0; e < 4; e++) s[j][e] = exp2f(fmaf(s[j][e], a.scale2, -L[e >> 1])); /* P */
        if (masked) ea__tc_hide(s, row0, k0, 0, a.n, a.causal, full ? ~0u : ea__pat_bits(&a.pat, row0, k0, 0, a.n), 0.0f);
#pragma unroll
        for (j = 0; j < EA_TC_ROWS / 8; j++)
#pragma unroll
            for (e = 0; e < 4; e++) s[j][e] *= dp[j][e] - Dl[e >> 1]; /* dS */
        ea__tc_acc_mul<D>(dq, s, kt);
        __syncthreads();
    }
#pragma unroll
    for (hf = 0; hf < 2; hf++) {
        int row = row0 + 8 * hf;
        if (row >= a.n) continue;
#pragma unroll
        for (j = 0; j < D / 8; j++)
            *(unsigned *)(a.dq + qoff + (size_t)row * a.ldq + 8 * j + 2 * c) =
                ea__bf2(dq[j][2 * hf] * a.scale, dq[j][2 * hf + 1] * a.scale);
    }
}

/* dK and dV, block (key tile, b, K/V head): for each query head of the
   group in order and each query tile, Sᵀ = K·Qᵀ, Pᵀ, dV += Pᵀ·dO,
   dPᵀ = V·dOᵀ, dSᵀ = Pᵀ ∘ (dPᵀ − Δ), dK += dSᵀ·Q.  The tile's lse (+∞
   past n, so that P = 0 there) and Δ sit in shared memory.  Under a
   pattern only the query tiles that see the key tile are visited, each
   for the G heads in turn. */
template <int D> __global__ static void __launch_bounds__(128) ea__attn_tc_dkdv_k(ea__tc_attn a) {
    __shared__ __align__(16) unsigned short qs[2][EA_TC_ROWS * (D + EA_TC_PAD)], ds[2][EA_TC_ROWS * (D + EA_TC_PAD)];
    __shared__ float ls[2][EA_TC_ROWS], dls[2][EA_TC_ROWS];
    __shared__ unsigned hits[EA_TC_HIT_WORDS];
    const int c = threadIdx.x % 4, G = a.H / a.Hkv;
    int b = blockIdx.y / a.Hkv, hk = blockIdx.y % a.Hkv, k0 = blockIdx.x * EA_TC_ROWS, k1 = min(k0 + EA_TC_ROWS, a.n) - 1;
    int r = k0 + 16 * (threadIdx.x / 32), row0 = r + threadIdx.x % 32 / 4, tiles = (a.n + EA_TC_ROWS - 1) / EA_TC_ROWS;
    int it, nx = 0, prev, u, nhit, j, e;
    size_t koff = (size_t)b * a.n * a.ldkv + (size_t)hk * D;
    unsigned ka[D / 16][4], va[D / 16][4];
    float dk[D / 8][4], dv[D / 8][4], s[EA_TC_ROWS / 8][4], dp[EA_TC_ROWS / 8][4];
    ea__pat_hits(&a.pat, hits, &nhit, a.n, k0, k1);
    ea__rows_to_a<D>(ka, a.k + koff, a.ldkv, r, a.n);
    ea__rows_to_a<D>(va, a.v + koff, a.ldkv, r, a.n);
    ea__acc_zero<D>(dk);
    ea__acc_zero<D>(dv);
    /* step it: query tile it / G (from the diagonal's under causal masking), head hk·G + it mod G; stage a step,
       then compute the one before it */
    it = G * min(ea__pat_next(&a.pat, k0, k1, a.causal ? (int)blockIdx.x : 0, hits, nhit), tiles);
    for (prev = -1, u = 0;; prev = it, it = nx, u ^= 1) {
        if (it < G * tiles) {
            int h = hk * G + it % G, q0 = it / G * EA_TC_ROWS, i;
            size_t qoff = (size_t)b * a.n * a.ldq + (size_t)h * D, loff = ((size_t)b * a.H + h) * a.n;
            ea__tc_stage<D>(qs[u], a.q + qoff, a.ldq, q0, a.n);
            ea__tc_stage<D>(ds[u], a.dout + qoff, a.ldq, q0, a.n);
            for (i = threadIdx.x; i < EA_TC_ROWS; i += blockDim.x) {
                ls[u][i] = q0 + i < a.n ? a.lse[loff + q0 + i] * 1.44269504f : INFINITY;
                dls[u][i] = q0 + i < a.n ? a.delta[loff + q0 + i] : 0.0f;
            }
            nx = (it + 1) % G ? it + 1 : it / G + 1 < tiles ? G * min(ea__pat_next(&a.pat, k0, k1, it / G + 1, hits, nhit), tiles) : G * tiles;
        }
        ea__tc_commit();
        if (prev >= 0) {
            int q0 = prev / G * EA_TC_ROWS, full = ea__pat_full(&a.pat, q0, min(q0 + EA_TC_ROWS, a.n) - 1, k0, k1);
            int diag = a.causal && q0 < k0 + EA_TC_ROWS - 1;
            const unsigned short *qt = qs[u ^ 1], *dt = ds[u ^ 1];
            const float *lt = ls[u ^ 1], *dlt = dls[u ^ 1];
            ea__tc_wait();
            ea__tc_scores2<D>(s, dp, ka, va, qt, dt);
#pragma unroll
            for (j = 0; j < EA_TC_ROWS / 8; j++)
#pragma unroll
                for (e = 0; e < 4; e++) s[j][e] = exp2f(fmaf(s[j][e], a.scale2, -lt[8 * j + 2 * c + (e & 1)])); /* Pᵀ */
            if (diag || !full) /* (keys past n stay: their rows are not stored; queries past n have P = 0 by lse +∞) */
                ea__tc_hide(s, row0, q0, 1, INT_MAX, diag, full ? ~0u : ea__pat_bits(&a.pat, row0, q0, 1, a.n), 0.0f);
#pragma unroll
            for (j = 0; j < EA_TC_ROWS / 8; j++)
#pragma unroll
                for (e = 0; e < 4; e++) dp[j][e] = s[j][e] * (dp[j][e] - dlt[8 * j + 2 * c + (e & 1)]); /* dSᵀ */
            ea__tc_acc_mul<D>(dv, s, dt);
            ea__tc_acc_mul<D>(dk, dp, qt);
            __syncthreads();
        }
        if (it >= G * tiles) break;
    }
#pragma unroll
    for (e = 0; e < 2; e++) {
        int row = row0 + 8 * e;
        if (row >= a.n) continue;
#pragma unroll
        for (j = 0; j < D / 8; j++) {
            size_t at = koff + (size_t)row * a.ldkv + 8 * j + 2 * c;
            *(unsigned *)(a.dk + at) = ea__bf2(dk[j][2 * e] * a.scale, dk[j][2 * e + 1] * a.scale);
            *(unsigned *)(a.dv + at) = ea__bf2(dv[j][2 * e], dv[j][2 * e + 1]);
        }
    }
}

/* --- AdamW (10): one thread a value ------------------------------------------
   The step's constants come by value, or (hp_dev) from device memory, where
   a captured graph finds each step's learning rate without being rebuilt.
   With gnorm (the gradient's norm, computed on the device by
   ea__cu_grad_norm) and clip > 0, g is scaled as ea_grad_clip does:
   by clip / (norm + 1e-6) when the norm exceeds clip; the host never waits
   for the norm. */
typedef struct ea__cu_hp {
    float lr, b1, b2, eps, decay, bc1, bc2;
    float gscale; /* a rank's weight local / global batch, before the all-reduce (data-parallel steps) */
} ea__cu_hp;

static ea__cu_hp ea__adamw_hp(const ea_adamw *o) {
    ea__cu_hp h;
    h.gscale = 1.0f;
    h.lr = o->lr; h.b1 = o->beta1; h.b2 = o->beta2; h.eps = o->eps;
    h.decay = 1.0f - o->lr * o->weight_decay;
    h.bc1 = 1.0f - powf(o->beta1, (float)o->step);
    h.bc2 = 1.0f - powf(o->beta2, (float)o->step);
    return h;
}

__global__ static void ea__adamw_k(float *p, const float *g, float *m, float *v, size_t n, ea__cu_hp hp, const ea__cu_hp *hp_dev,
                                   const float *gnorm, float clip) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    const ea__cu_hp h = hp_dev ? *hp_dev : hp;
    float mi, vi, gi, s = 1.0f;
    if (i >= n) return;
    if (gnorm && clip > 0.0f && *gnorm > clip) s = clip / (*gnorm + 1e-6f);
    gi = g[i] * s;
    mi = m[i] = h.b1 * m[i] + (1.0f - h.b1) * gi;
    vi = v[i] = h.b2 * v[i] + (1.0f - h.b2) * gi * gi;
    p[i] = p[i] * h.decay - h.lr * (mi / h.bc1) / (sqrtf(vi / h.bc2) + h.eps);
}

/* g *= hp->gscale: a rank's gradient weighted before the sum over ranks
   (as ea_dist_grads does on the CPU); read at run time, so a captured
   step serves every split of the global batch. */
__global__ static void ea__gscale_k(float *g, size_t n, const ea__cu_hp *hp) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) g[i] *= hp->gscale;
}

/* ‖g‖₂ of n values into *out: 256 blocks of partial sums of squares, then
   one block adds them in a fixed order (deterministic, like the CPU's). */
#define EA_CU_NORM_BLOCKS 256
__global__ static void ea__sumsq_k(float *part, const float *g, size_t n) {
    __shared__ float sh[256];
    size_t i;
    float s = 0.0f;
    int k;
    for (i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) s += g[i] * g[i];
    sh[threadIdx.x] = s;
    __syncthreads();
    for (k = 128; k > 0; k >>= 1) {
        if ((int)threadIdx.x < k) sh[threadIdx.x] += sh[threadIdx.x + k];
        __syncthreads();
    }
    if (threadIdx.x == 0) part[blockIdx.x] = sh[0];
}

__global__ static void ea__norm_k(float *out, const float *part, int n) {
    __shared__ float sh[256];
    int k;
    sh[threadIdx.x] = (int)threadIdx.x < n ? part[threadIdx.x] : 0.0f;
    __syncthreads();
    for (k = 128; k > 0; k >>= 1) {
        if ((int)threadIdx.x < k) sh[threadIdx.x] += sh[threadIdx.x + k];
        __syncthreads();
    }
    if (threadIdx.x == 0) *out = sqrtf(sh[0]);
}

/* part: EA_CU_NORM_BLOCKS floats of scratch */
static ea_status ea__cu_grad_norm(ea_cuda *cu, float *out, float *part, const float *g, size_t n, ea_error *err) {
    ea__sumsq_k<<<EA_CU_NORM_BLOCKS, 256, 0, EA_CU_STREAM(cu)>>>(part, g, n);
    ea__norm_k<<<1, 256, 0, EA_CU_STREAM(cu)>>>(out, part, EA_CU_NORM_BLOCKS);
    return ea__launched("gradient norm", err);
}

/* the update with o's constants, or (o NULL) with those at hp_dev */
static ea_status ea__cu_adamw(ea_cuda *cu, float *p, const float *g, float *m, float *v, size_t n, const ea_adamw *o,
                              const ea__cu_hp *hp_dev, const float *gnorm, float clip, ea_error *err) {
    ea__cu_hp h;
    memset(&h, 0, sizeof h);
    if (o && o->step < 1) return ea_error_set(err, EA_ERR_ARG, "adamw (CUDA): the step count must be at least 1");
    if (o) h = ea__adamw_hp(o);
    ea__adamw_k<<<ea__blocks(n, 256), 256, 0, EA_CU_STREAM(cu)>>>(p, g, m, v, n, h, o ? NULL : hp_dev, gnorm, clip);
    return ea__launched("AdamW", err);
}

extern "C" {

EA_API ea_status ea_layernorm_fwd_cuda(ea_cuda *cu, float *out, float *mean, float *rstd, const float *x, const float *w,
                                       const float *b, int N, int C, float eps, ea_error *err) {
    ea__ln_fwd_k<<<ea__blocks((size_t)N, 8), 256, 0, EA_CU_STREAM(cu)>>>(out, mean, rstd, x, w, b, N, C, eps);
    return ea__launched("layer norm forward", err);
}

EA_API ea_status ea_layernorm_bwd_cuda(ea_cuda *cu, float *dx, float *dw, float *db, const float *dout, const float *x,
                                       const float *mean, const float *rstd, const float *w, int N, int C, ea_error *err) {
    ea_status st;
    if (dx) ea__ln_bwd_dx_k<<<ea__blocks((size_t)N, 8), 256, 0, EA_CU_STREAM(cu)>>>(dx, dout, x, mean, rstd, w, N, C);
    if ((st = ea__launched("layer norm backward", err)) != EA_OK || (!dw && !db)) return st;
    return ea__cu_colred(cu, db, dw, dout, (size_t)C, dw ? x : NULL, mean, rstd, N, C, err);
}

EA_API ea_status ea_gelu_fwd_cuda(ea_cuda *cu, float *out, const float *x, size_t n, ea_error *err) {
    ea__gelu_k<<<ea__blocks(n, 256), 256, 0, EA_CU_STREAM(cu)>>>(out, NULL, x, n);
    return ea__launched("GELU forward", err);
}

EA_API ea_status ea_gelu_bwd_cuda(ea_cuda *cu, float *dx, const float *dout, const float *x, size_t n, ea_error *err) {
    ea__gelu_k<<<ea__blocks(n, 256), 256, 0, EA_CU_STREAM(cu)>>>(dx, dout, x, n);
    return ea__launched("GELU backward", err);
}

EA_API ea_status ea_softmax_fwd_cuda(ea_cuda *cu, float *out, const float *x, int rows, int cols, ea_error *err) {
    ea__softmax_k<<<ea__blocks((size_t)rows, 8), 256, 0, EA_CU_STREAM(cu)>>>(out, x, rows, cols);
    return ea__launched("softmax", err);
}

static ea_status ea__attn_cuda_check(int B, int n, int H, int Hkv, int dh, ea_error *err) {
    if (B < 1 || n < 1 || H < 1 || Hkv < 1 || H % Hkv || dh < 1 || dh > 32 * EA_CU_DH_LANES ||
        (double)B * H * n > 2147483647.0 / 32.0)
        return ea_error_set(err, EA_ERR_SHAPE,
                            "attention (CUDA): B %d, n %d, H %d, Hkv %d, dh %d; expected positive sizes, Hkv dividing H, "
                            "dh <= %d and B·H·n < 2^26", B, n, H, Hkv, dh, 32 * EA_CU_DH_LANES);
    return EA_OK;
}

static ea__cu_attn ea__attn_args(int B, int n, int H, int Hkv, int dh, int causal) {
    ea__cu_attn a;
    memset(&a, 0, sizeof a);
    a.B = B; a.n = n; a.H = H; a.Hkv = Hkv; a.dh = dh; a.causal = causal;
    a.ldq = a.ldo = (size_t)H * dh;
    a.ldkv = (size_t)Hkv * dh;
    a.scale = 1.0f / sqrtf((float)dh);
    return a;
}

/* Threads a block of the short kernels may have: their registers (56 to
   255 a thread, by MAXD) cap it below 1024.  Asked of the runtime once per
   kernel (ea_vit_cuda_init asks for all of them before any graph capture). */
typedef void (*ea__short_kernel)(ea__cu_attn, int);
static int ea__short_limit(ea__short_kernel k, int *cache) {
    cudaFuncAttributes fa;
    if (!*cache) *cache = cudaFuncGetAttributes(&fa, (const void *)k) == cudaSuccess ? fa.maxThreadsPerBlock : -1;
    return *cache;
}

static ea__short_kernel ea__short_pick(int bwd, int dh, int *limit) {
    static int cache[2][3];
    static const ea__short_kernel k[2][3] = {{ea__attn_fwd_short_k<16>, ea__attn_fwd_short_k<32>, ea__attn_fwd_short_k<64>},
                                             {ea__attn_bwd_short_k<16>, ea__attn_bwd_short_k<32>, ea__attn_bwd_short_k<64>}};
    int w = dh <= 16 ? 0 : dh <= 32 ? 1 : 2;
    *limit = ea__short_limit(k[bwd][w], &cache[bwd][w]);
    return k[bwd][w];
}

static void ea__short_limits(void) {
    int lim, dh, bwd;
    for (bwd = 0; bwd < 2; bwd++)
        for (dh = 16; dh <= 64; dh *= 2) ea__short_pick(bwd, dh, &lim);
}

/* The team size for `rows` teams a block, `all` in the launch: the widest
   (up to 8) that fits a block, but no wider than needed to give the GPU
   some 2^18 threads (a big batch has parallelism enough, and wide teams
   cost shuffles); 0 when even one thread a row does not fit. */
static int ea__attn_team(size_t rows, size_t all, int limit) {
    int S = 8;
    while (S > 1 && (rows * S > (size_t)limit || all * S > ((size_t)1 << 18))) S /= 2;
    return limit > 0 && rows <= (size_t)limit ? S : 0;
}

/* The GPU's compute capability (major) and the PTX version this build's
   tensor-core kernels were compiled for, asked once: both must be 8 (80)
   or more for mma.sync, cp.async and cvt.tf32. */
static int ea__tc_arch(ea_cuda *cu, int *major, int *ptx) {
    static int cache_ptx = 0;
    cudaFuncAttributes fa;
    *major = 0;
    if (cudaDeviceGetAttribute(major, cudaDevAttrComputeCapabilityMajor, cu->device) != cudaSuccess) *major = 0;
    if (!cache_ptx) cache_ptx = cudaFuncGetAttributes(&fa, (const void *)ea__attn_tc_fwd_k<64>) == cudaSuccess ? fa.ptxVersion : -1;
    *ptx = cache_ptx;
    return *major >= 8 && *ptx >= 80;
}

/* The fp32 forward on tensor cores (3xTF32) needs heads of at most 64 in
   multiples of 4, and K and V rows that a 16-byte copy can read. */
static int ea__attn_x3_fits(ea_cuda *cu, const ea__cu_attn *a) {
    int major, ptx;
    return a->dh <= 64 && a->dh % 4 == 0 && a->ldkv % 4 == 0 && a->ldo % 2 == 0 && (uintptr_t)a->k % 16 == 0 &&
           (uintptr_t)a->v % 16 == 0 && (uintptr_t)a->out % 8 == 0 && (double)a->B * a->H <= 65535.0 &&
           ea__tc_arch(cu, &major, &ptx);
}

/* The 3xTF32 backward also needs Q and dO rows that a 16-byte copy reads,
   gradients a float2 adds into, and Δ's B·H·n floats in the scratch. */
static int ea__attn_x3_bwd_fits(ea_cuda *cu, const ea__cu_attn *a) {
    return ea__attn_x3_fits(cu, a) && a->ldq % 4 == 0 && a->ldo % 4 == 0 && (uintptr_t)a->q % 16 == 0 &&
           (uintptr_t)a->dout % 16 == 0 && (uintptr_t)a->dq % 8 == 0 && (uintptr_t)a->dk % 8 == 0 && (uintptr_t)a->dv % 8 == 0 &&
           (size_t)a->B * a->H * a->n <= EA_CU_SCRATCH;
}

/* The short kernels when a block holds what they stage (48 KiB of shared
   memory: one head's K and V forward; a K/V head's, and its group's Q, dO,
   lse and D backward) and dh <= 64; else, backward, the 3xTF32 tensor-core
   kernels when ea__attn_x3_bwd_fits, and the warp-a-row kernels.  The
   forward goes first to the tensor cores (3xTF32) when ea__attn_x3_fits;
   failing that, heads wider than 32 go to ea__attn_fwd_rows_k when it
   fits: on an H200 (n 64, dh 64; a one-off timing probe, not in bench/) it
   took 37 µs for 8 heads and 63 µs for 256 where the team kernel took 43
   and 104; at dh 16 and 12 the teams won (11 µs against 19 at 128 heads,
   158 against 267 at 4,096). */
static ea_status ea__attn_launch(ea_cuda *cu, const ea__cu_attn *a, int bwd, ea_error *err) {
    size_t G = bwd ? (size_t)(a->H / a->Hkv) : 1, n = (size_t)a->n, dh = (size_t)a->dh;
    size_t smem = (2 * n * dh + (bwd ? G * (2 * n * dh + 2 * n) : 0)) * sizeof(float);
    int limit = 0, S = 0;
    ea__short_kernel k = a->dh <= 64 ? ea__short_pick(bwd, a->dh, &limit) : NULL;
    cudaStream_t s = EA_CU_STREAM(cu);
    if (k) S = ea__attn_team(G * n, (size_t)a->B * a->H * n, limit);
    if (!bwd && ea__attn_x3_fits(cu, a))
        ea__attn_tf32_launch<true>(s, a);
    else if (!bwd && a->dh > 32 && ea__attn_rows_smem(a->n, a->dh) <= 48 * 1024)
        ea__attn_fwd_rows_k<<<a->B * a->H, 32 * EA_CU_ROW_WARPS, ea__attn_rows_smem(a->n, a->dh), s>>>(*a);
    else if (S && smem <= 48 * 1024)
        k<<<a->B * (bwd ? a->Hkv : a->H), (unsigned)((G * n * S + 31) / 32 * 32), smem, s>>>(*a, S);
    else if (bwd && ea__attn_x3_bwd_fits(cu, a))
        ea__attn_x3_bwd_launch(s, a, cu->scratch);
    else if (bwd)
        ea__attn_bwd_k<<<ea__blocks((size_t)a->B * a->H * a->n, 4), 128, 0, s>>>(*a);
    else
        ea__attn_fwd_k<<<ea__blocks((size_t)a->B * a->H * a->n, 4), 128, 0, s>>>(*a);
    return ea__launched(bwd ? "attention backward" : "attention forward", err);
}

static ea_status ea__attn_fwd_launch(ea_cuda *cu, const ea__cu_attn *a, ea_error *err) { return ea__attn_launch(cu, a, 0, err); }

static ea_status ea__attn_bwd_launch(ea_cuda *cu, const ea__cu_attn *a, ea_error *err) { return ea__attn_launch(cu, a, 1, err); }

EA_API ea_status ea_attention_fwd_cuda(ea_cuda *cu, float *out, float *lse, const float *q, const float *k, const float *v,
                                       int B, int n, int H, int Hkv, int dh, int causal, ea_error *err) {
    ea__cu_attn a;
    ea_status st = ea__attn_cuda_check(B, n, H, Hkv, dh, err);
    if (st != EA_OK) return st;
    a = ea__attn_args(B, n, H, Hkv, dh, causal);
    a.q = q; a.k = k; a.v = v; a.out = out; a.lse = lse;
    return ea__attn_fwd_launch(cu, &a, err);
}

EA_API ea_status ea_attention_bwd_cuda(ea_cuda *cu, float *dq, float *dk, float *dv, const float *dout, const float *out,
                                       const float *lse, const float *q, const float *k, const float *v, int B, int n,
                                       int H, int Hkv, int dh, int causal, ea_error *err) {
    ea__cu_attn a;
    ea_status st = ea__attn_cuda_check(B, n, H, Hkv, dh, err);
    if (st != EA_OK) return st;
    a = ea__attn_args(B, n, H, Hkv, dh, causal);
    a.q = q; a.k = k; a.v = v; a.o = out; a.lse = (float *)lse; /* read only: the struct serves both directions */
    a.dout = dout; a.dq = dq; a.dk = dk; a.dv = dv;
    return ea__attn_bwd_launch(cu, &a, err);
}

/* A user's pattern checked and turned into the kernels' form. */
static ea_status ea__attn_pattern(ea__cu_pat *cp, const ea_cuda_pattern *p, int n, const char *what, ea_error *err) {
    if (!p) return ea_error_set(err, EA_ERR_ARG, "%s: NULL pattern", what);
    if (p->window < -1 || p->n_global < 0 || p->block < 0 || p->block_window < 0 || p->n_random < 0 ||
        (p->n_random > 0 && (!p->block || !p->rand)))
        return ea_error_set(err, EA_ERR_ARG,
                            "%s: pattern window %d, n_global %d, block %d, block_window %d, n_random %d, rand %s; expected "
                            "window >= -1, the others >= 0, and random blocks only with block > 0 and a rand table",
                            what, p->window, p->n_global, p->block, p->block_window, p->n_random, p->rand ? "set" : "NULL");
    if (p->window < 0 && !p->block)
        return ea_error_set(err, EA_ERR_ARG, "%s: a pattern with no window (-1) and no blocks hides a query's own key; "
                            "expected window >= 0 or block > 0", what);
    cp->on = 1; /* a band or global count past n shows what n does: clamped, the kernels' tile sums cannot overflow */
    cp->p.window = p->window < n ? p->window : n; cp->p.n_global = p->n_global < n ? p->n_global : n;
    cp->p.block = p->block < n ? p->block : n;
    cp->p.block_window = cp->p.block && p->block_window > n / cp->p.block ? n / cp->p.block + 1 : p->block_window;
    cp->p.n_random = p->n_random; cp->p.rand = p->rand;
    return EA_OK;
}

EA_API ea_status ea_attention_fwd_pattern_cuda(ea_cuda *cu, float *out, float *lse, const float *q, const float *k,
                                               const float *v, int B, int n, int H, int Hkv, int dh, int causal,
                                               const ea_cuda_pattern *pat, ea_error *err) {
    ea__cu_attn a;
    ea_status st = ea__attn_cuda_check(B, n, H, Hkv, dh, err);
    if (st != EA_OK) return st;
    a = ea__attn_args(B, n, H, Hkv, dh, causal);
    if ((st = ea__attn_pattern(&a.pat, pat, n, "attention_fwd_pattern_cuda", err)) != EA_OK) return st;
    a.q = q; a.k = k; a.v = v; a.out = out; a.lse = lse;
    return ea__attn_fwd_launch(cu, &a, err);
}

EA_API ea_status ea_attention_bwd_pattern_cuda(ea_cuda *cu, float *dq, float *dk, float *dv, const float *dout, const float *out,
                                               const float *lse, const float *q, const float *k, const float *v, int B, int n,
                                               int H, int Hkv, int dh, int causal, const ea_cuda_pattern *pat, ea_error *err) {
    ea__cu_attn a;
    ea_status st = ea__attn_cuda_check(B, n, H, Hkv, dh, err);
    if (st != EA_OK) return st;
    a = ea__attn_args(B, n, H, Hkv, dh, causal);
    if ((st = ea__attn_pattern(&a.pat, pat, n, "attention_bwd_pattern_cuda", err)) != EA_OK) return st;
    a.q = q; a.k = k; a.v = v; a.o = out; a.lse = (float *)lse;
    a.dout = dout; a.dq = dq; a.dk = dk; a.dv = dv;
    return ea__attn_bwd_launch(cu, &a, err);
}

/* The tensor-core kernels' terms: dh 32 or 64 (their registers are sized
   by it), 16-byte aligned matrices (a staging thread moves 8 bf16 at
   once), B·H blocks in the grid's second dimension, a GPU and a build for
   sm_80 or newer (mma.sync on bf16).  ptrs: q, k, v, out, then for the
   backward dout, dq, dk, dv. */
static ea_status ea__attn_tc_check(const char *what, ea_cuda *cu, int B, int n, int H, int Hkv, int dh, const void *const *ptrs,
                                   int np, const float *lse, ea_error *err) {
    static const char *const names[8] = {"q", "k", "v", "out", "dout", "dq", "dk", "dv"};
    int major = 0, ptx = 0, i;
    if (B < 1 || n < 1 || H < 1 || Hkv < 1 || H % Hkv || (dh != 32 && dh != 64) || (double)B * H > 65535.0 ||
        (double)B * H * n > 2147483647.0 / 32.0)
        return ea_error_set(err, EA_ERR_SHAPE,
                            "%s (CUDA): B %d, n %d, H %d, Hkv %d, dh %d; expected positive sizes, Hkv dividing H, "
                            "dh 32 or 64, B·H <= 65535 and B·H·n < 2^26", what, B, n, H, Hkv, dh);
    for (i = 0; i < np; i++)
        if (!ptrs[i] || (uintptr_t)ptrs[i] % 16)
            return ea_error_set(err, EA_ERR_ARG, "%s (CUDA): %s is %s; expected device memory aligned to "
                                "16 bytes (cudaMalloc's is)", what, names[i], ptrs[i] ? "misaligned" : "NULL");
    if (!lse || (uintptr_t)lse % sizeof(float))
        return ea_error_set(err, EA_ERR_ARG, "%s (CUDA): lse is %s; expected device floats", what, lse ? "misaligned" : "NULL");
    ea__tc_arch(cu, &major, &ptx);
    if (major < 8)
        return ea_error_set(err, EA_ERR_CONFIG, "%s (CUDA): the GPU is sm_%d0; these tensor-core kernels need sm_80 or newer",
                            what, major);
    if (ptx < 80)
        return ea_error_set(err, EA_ERR_CONFIG, "%s (CUDA): this build's kernels are for sm_%d; compile with "
                            "-arch=sm_80 or newer (e.g. -arch=sm_90)", what, ptx);
    return EA_OK;
}

static ea__tc_attn ea__attn_tc_args(int B, int n, int H, int Hkv, int dh, int causal) {
    ea__tc_attn a;
    memset(&a, 0, sizeof a);
    a.B = B; a.n = n; a.H = H; a.Hkv = Hkv; a.causal = causal;
    a.ldq = (size_t)H * dh;
    a.ldkv = (size_t)Hkv * dh;
    a.scale = 1.0f / sqrtf((float)dh);
    a.scale2 = a.scale * 1.44269504f;
    return a;
}

/* The bf16 forward and backward, with a pattern (pat) or without (NULL). */
static ea_status ea__attn_bf16_fwd(ea_cuda *cu, uint16_t *out, float *lse, const uint16_t *q, const uint16_t *k, const uint16_t *v,
                                   int B, int n, int H, int Hkv, int dh, int causal, const ea_cuda_pattern *pat, const char *what,
                                   ea_error *err) {
    const void *ptrs[4] = {q, k, v, out};
    ea__tc_attn a;
    dim3 grid((unsigned)((n + EA_TC_ROWS - 1) / EA_TC_ROWS), (unsigned)(B * H));
    ea_status st = ea__attn_tc_check(what, cu, B, n, H, Hkv, dh, ptrs, 4, lse, err);
    if (st != EA_OK) return st;
    a = ea__attn_tc_args(B, n, H, Hkv, dh, causal);
    if (pat && (st = ea__attn_pattern(&a.pat, pat, n, what, err)) != EA_OK) return st;
    a.q = q; a.k = k; a.v = v; a.out = out; a.lse_out = lse;
    if (dh == 32) ea__attn_tc_fwd_k<32><<<grid, 128, 0, EA_CU_STREAM(cu)>>>(a);
    else ea__attn_tc_fwd_k<64><<<grid, 128, 0, EA_CU_STREAM(cu)>>>(a);
    return ea__launched("attention bf16 forward", err);
}

static ea_status ea__attn_bf16_bwd(ea_cuda *cu, uint16_t *dq, uint16_t *dk, uint16_t *dv, const uint16_t *dout, const uint16_t *out,
                                   const float *lse, const uint16_t *q, const uint16_t *k, const uint16_t *v, int B, int n, int H,
                                   int Hkv, int dh, int causal, const ea_cuda_pattern *pat, const char *what, ea_error *err) {
    const void *ptrs[8] = {q, k, v, out, dout, dq, dk, dv};
    ea__tc_attn a;
    unsigned tiles = (unsigned)((n + EA_TC_ROWS - 1) / EA_TC_ROWS);
    cudaStream_t s = EA_CU_STREAM(cu);
    ea_status st = ea__attn_tc_check(what, cu, B, n, H, Hkv, dh, ptrs, 8, lse, err);
    if (st != EA_OK) return st;
    if ((size_t)B * H * n > EA_CU_SCRATCH)
        return ea_error_set(err, EA_ERR_SHAPE, "%s backward (CUDA): B·H·n = %.0f; expected at most %zu (Δ lives in "
                            "the handle's scratch)", what, (double)B * H * n, (size_t)EA_CU_SCRATCH);
    a = ea__attn_tc_args(B, n, H, Hkv, dh, causal);
    if (pat && (st = ea__attn_pattern(&a.pat, pat, n, what, err)) != EA_OK) return st;
    a.q = q; a.k = k; a.v = v; a.o = out; a.lse = lse; a.dout = dout;
    a.dq = dq; a.dk = dk; a.dv = dv;
    a.delta = a.delta_out = cu->scratch;
    ea__attn_delta_k<unsigned short><<<ea__blocks((size_t)B * H * n, 4), 128, 0, s>>>(a.delta_out, a.dout, a.o, a.ldq, B, H, n, dh);
    if (dh == 32) {
        ea__attn_tc_dq_k<32><<<dim3(tiles, (unsigned)(B * H)), 128, 0, s>>>(a);
        ea__attn_tc_dkdv_k<32><<<dim3(tiles, (unsigned)(B * Hkv)), 128, 0, s>>>(a);
    } else {
        ea__attn_tc_dq_k<64><<<dim3(tiles, (unsigned)(B * H)), 128, 0, s>>>(a);
        ea__attn_tc_dkdv_k<64><<<dim3(tiles, (unsigned)(B * Hkv)), 128, 0, s>>>(a);
    }
    return ea__launched("attention bf16 backward", err);
}

EA_API ea_status ea_attention_fwd_bf16_cuda(ea_cuda *cu, uint16_t *out, float *lse, const uint16_t *q, const uint16_t *k,
                                            const uint16_t *v, int B, int n, int H, int Hkv, int dh, int causal, ea_error *err) {
    return ea__attn_bf16_fwd(cu, out, lse, q, k, v, B, n, H, Hkv, dh, causal, NULL, "attention bf16", err);
}

EA_API ea_status ea_attention_bwd_bf16_cuda(ea_cuda *cu, uint16_t *dq, uint16_t *dk, uint16_t *dv, const uint16_t *dout,
                                            const uint16_t *out, const float *lse, const uint16_t *q, const uint16_t *k,
                                            const uint16_t *v, int B, int n, int H, int Hkv, int dh, int causal, ea_error *err) {
    return ea__attn_bf16_bwd(cu, dq, dk, dv, dout, out, lse, q, k, v, B, n, H, Hkv, dh, causal, NULL, "attention bf16", err);
}

EA_API ea_status ea_attention_fwd_bf16_pattern_cuda(ea_cuda *cu, uint16_t *out, float *lse, const uint16_t *q, const uint16_t *k,
                                                    const uint16_t *v, int B, int n, int H, int Hkv, int dh, int causal,
                                                    const ea_cuda_pattern *pat, ea_error *err) {
    if (!pat) return ea_error_set(err, EA_ERR_ARG, "attention_fwd_bf16_pattern_cuda: NULL pattern");
    return ea__attn_bf16_fwd(cu, out, lse, q, k, v, B, n, H, Hkv, dh, causal, pat, "attention_fwd_bf16_pattern_cuda", err);
}

EA_API ea_status ea_attention_bwd_bf16_pattern_cuda(ea_cuda *cu, uint16_t *dq, uint16_t *dk, uint16_t *dv, const uint16_t *dout,
                                                    const uint16_t *out, const float *lse, const uint16_t *q, const uint16_t *k,
                                                    const uint16_t *v, int B, int n, int H, int Hkv, int dh, int causal,
                                                    const ea_cuda_pattern *pat, ea_error *err) {
    if (!pat) return ea_error_set(err, EA_ERR_ARG, "attention_bwd_bf16_pattern_cuda: NULL pattern");
    return ea__attn_bf16_bwd(cu, dq, dk, dv, dout, out, lse, q, k, v, B, n, H, Hkv, dh, causal, pat,
                             "attention_bwd_bf16_pattern_cuda", err);
}

EA_API ea_status ea_attention_fwd_tf32_cuda(ea_cuda *cu, float *out, float *lse, const float *q, const float *k, const float *v,
                                            int B, int n, int H, int Hkv, int dh, int causal, ea_error *err) {
    const void *ptrs[4] = {q, k, v, out};
    ea__cu_attn a;
    ea_status st = ea__attn_tc_check("attention tf32", cu, B, n, H, Hkv, dh, ptrs, 4, lse, err);
    if (st != EA_OK) return st;
    a = ea__attn_args(B, n, H, Hkv, dh, causal);
    a.q = q; a.k = k; a.v = v; a.out = out; a.lse = lse;
    ea__attn_tf32_launch<false>(EA_CU_STREAM(cu), &a);
    return ea__launched("attention tf32 forward", err);
}

EA_API uint16_t ea_bf16_from_float(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)(u >> 16 | 0x40u); /* NaN stays a (quiet) NaN */
    return (uint16_t)((u + 0x7fffu + (u >> 16 & 1u)) >> 16);                /* to nearest, ties to even */
}

EA_API float ea_bf16_to_float(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float x;
    memcpy(&x, &u, 4);
    return x;
}

EA_API ea_status ea_adamw_cuda(ea_cuda *cu, float *p, const float *g, float *m, float *v, size_t n, const ea_adamw *o,
                               ea_error *err) {
    if (!o) return ea_error_set(err, EA_ERR_ARG, "adamw (CUDA): NULL optimizer");
    return ea__cu_adamw(cu, p, g, m, v, n, o, NULL, NULL, 0.0f, err);
}

} /* extern "C" */

/* --- the ViT on the device (9): one model's forward as a fixed program ------
   ea_vit_cuda mirrors a host ea_vit (mean or class-token pooling, rows
   mha / single / mha-sep / mqa / gqa, dense MLPs): its parameters in
   ea_params' flat layout in device memory, and every activation of a batch
   of up to max_batch images in one device allocation made at init, so a
   call allocates nothing.  The forward is ea_vit_forward_aux op for op
   (dropout off), with M = B·T token rows:
       cols = im2col(x)                        [B·Np, C·p·p]  (a thread a value)
       h    = cols·W_patchᵀ + b + pos          [M, D]      (pos repeats every T rows)
              with a class token, T = Np + 1: each image's patch rows start
              one row down (a strided batched GEMM) and row 0 is cls + pos[0]
       per block:  a = LN1(h);  [Q K V] = a·W_qkvᵀ + b     [M, D + 2·Hkv·dh]
                   o = attention(Q, K, V)                 (read through strides)
                   m = h + o·W_oᵀ + b_o;  h' = m + GELU(LN2(m)·W_1ᵀ + b_1)·W_2ᵀ + b_2
       y = head(mean_t LN(h)) or head(LN(h)[:, 0])   [B, out]
   The separate-projection rows write Q, K and V as column ranges of one
   activation, so one attention launch serves all five rows.  Each residual
   add rides in the next linear's epilogue.  ea_vit_cuda_predict captures
   this sequence once per batch size as a CUDA graph and replays it: a
   frame costs one graph launch instead of ~60 kernel launches.
   Training (ea_vit_cuda_train_step) runs the same forward, then the
   backward of each op in reverse with the kernels' backward twins, the
   gradient's norm and AdamW, all captured as one graph (~170 launches
   become one); the step's learning rate and bias corrections travel in a
   small device buffer that the host rewrites before each replay. */
/* Where value c (channel, row, column within the patch) of patch t of image b lies in x */
__device__ static size_t ea__cu_patch_idx(int b, int t, int c, int C, int S, int p) {
    int g = S / p, ch = c / (p * p), ky = c / p % p, kx = c % p;
    return (((size_t)b * C + ch) * S + (size_t)(t / g) * p + ky) * S + (size_t)(t % g) * p + kx;
}

__global__ static void ea__patch_cols_k(float *cols, const float *x, int B, int C, int S, int p) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    int g = S / p, T = g * g, P = C * p * p, r;
    if (i >= (size_t)B * T * P) return;
    r = (int)(i / P);
    cols[i] = x[ea__cu_patch_idx(r / T, r % T, (int)(i % P), C, S, p)];
}

__global__ static void ea__mean_tokens_k(float *out, const float *x, int B, int T, int D) {
    int i = blockIdx.x * blockDim.x + threadIdx.x, t;
    float s = 0.0f;
    if (i >= B * D) return;
    for (t = 0; t < T; t++) s += x[((size_t)(i / D) * T + t) * D + i % D];
    out[i] = s / (float)T;
}

/* With a class token: row 0 of each image is cls + pos[0]; the patch rows
   (written by the GEMM) get their bias and position, in the CPU's order. */
__global__ static void ea__cls_embed_k(float *h, const float *bias, const float *pos, const float *cls, size_t M, int T, int D) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x, t;
    int d;
    if (i >= M * (size_t)D) return;
    d = (int)(i % (size_t)D);
    t = i / (size_t)D % (size_t)T;
    h[i] = t == 0 ? cls[d] + pos[d] : h[i] + bias[d] + pos[t * (size_t)D + d];
}

/* Training's small kernels.  MSE over n outputs (one block, a fixed-order
   tree: deterministic): loss = Σ (y - t)² / n, dy = 2 (y - t) / n. */
__global__ static void ea__mse_k(float *dy, float *loss, const float *y, const float *t, int n) {
    __shared__ float sh[256];
    int i, k;
    float s = 0.0f;
    for (i = threadIdx.x; i < n; i += 256) {
        float e = y[i] - t[i];
        dy[i] = 2.0f * e / (float)n;
        s += e * e;
    }
    sh[threadIdx.x] = s;
    __syncthreads();
    for (k = 128; k > 0; k >>= 1) {
        if ((int)threadIdx.x < k) sh[threadIdx.x] += sh[threadIdx.x + k];
        __syncthreads();
    }
    if (threadIdx.x == 0) *loss = sh[0] / (float)n;
}

/* Cross-entropy with label smoothing s over B rows of C logits (labels,
   as floats, in lab): a thread a row, loss_i = lse - (1 - s)·y_label -
   (s/C)·Σ_j y_j and dy = (softmax - t) / B with t = (1 - s)·onehot + s/C;
   the rows' losses meet in a fixed-order tree. */
__global__ static void ea__ce_k(float *dy, float *loss, const float *y, const float *lab, int B, int C, float sm) {
    __shared__ float sh[256];
    int i, j, k;
    float s = 0.0f;
    for (i = threadIdx.x; i < B; i += 256) {
        const float *yi = y + (size_t)i * C;
        int l = (int)lab[i];
        float mx = yi[0], z = 0.0f, sum = 0.0f, lse;
        for (j = 1; j < C; j++) mx = fmaxf(mx, yi[j]);
        for (j = 0; j < C; j++) {
            z += expf(yi[j] - mx);
            sum += yi[j];
        }
        lse = logf(z) + mx;
        s += lse - (1.0f - sm) * yi[l] - sm * sum / (float)C;
        for (j = 0; j < C; j++)
            dy[(size_t)i * C + j] = (expf(yi[j] - lse) - sm / (float)C - (j == l ? 1.0f - sm : 0.0f)) / (float)B;
    }
    sh[threadIdx.x] = s;
    __syncthreads();
    for (k = 128; k > 0; k >>= 1) {
        if ((int)threadIdx.x < k) sh[threadIdx.x] += sh[threadIdx.x + k];
        __syncthreads();
    }
    if (threadIdx.x == 0) *loss = sh[0] / (float)B;
}

/* the token mean's backward: every token of image b gets dpool[b] / T */
__global__ static void ea__mean_tokens_bwd_k(float *dx, const float *dpool, int B, int T, int D) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)B * T * D) return;
    dx[i] += dpool[i / ((size_t)T * D) * D + i % D] / (float)T;
}

/* the position table's (and class token's) gradient: out[j] += Σ_b d[b·stride + j]
   for j < n, images in order */
__global__ static void ea__sum_batch_k(float *out, const float *d, int B, int n, size_t stride) {
    int j = blockIdx.x * blockDim.x + threadIdx.x, b;
    float s = 0.0f;
    if (j >= n) return;
    for (b = 0; b < B; b++) s += d[(size_t)b * stride + j];
    out[j] += s;
}

/* --- the whole forward in one kernel (small batches) ------------------------
   At batch 1 the tracker's forward is ~50 kernels of a few µs' work each,
   and replayed from a graph it still pays for every one's start and drain
   (0.20 ms a frame on an H200).  ea__fz_k runs the forward as one
   cooperative launch instead.  The B·T token rows are split into tasks of
   EA_CU_FZ_ROWS rows of one image, a block a task; everything a row needs
   except the other rows' keys and values stays in the block's shared
   memory.  A layer is then, for the task's rows: attention over its image's
   K and V (staged in shared memory: scores, softmax, P·V, a warp a row and
   head), the projection + residual, LN2, fc1 + GELU, fc2 + residual, and
   already the next layer's LN1 and QKV projection, whose K and V go to
   global memory for the other blocks.  Only that exchange needs a
   grid-wide barrier: depth + 1 of them a forward.
   At this size time goes to waiting, not arithmetic: a trip to L2 costs
   ~0.5 µs, so each step issues all of its loads before using any (the
   stage's copies asynchronously, a thread's weight loads in one unrolled
   chunk).  A linear layer reads its weights transposed, [in, out], so that
   the block's threads, one an output column, read consecutive floats; they
   split the inputs into G contiguous ranges when there are fewer columns
   than threads (fc2's 64 columns: 8 ranges of 32) and add the G partial
   sums in order.  The transposed copies are packed from the parameters
   before the first fused forward and again after any training step.  One
   row a task measured fastest on the H200 (a one-off timing probe, not in
   bench/: 72 µs a tracker forward; two rows 77, four 92: fewer blocks,
   each with more to do); it fits
   132 / 64 = 2 tracker images at once.  Every sum runs in a fixed order: the
   same bits every call, and the cuBLAS path's results up to rounding. */
#define EA_CU_FZ_THREADS 512
#define EA_CU_FZ_ROWS 1 /* token rows a task */

typedef struct ea__fz_layer { /* w*: transposed, [in, out]; bqkv: q, k, v's biases, one vector */
    const float *ln1_w, *ln1_b, *wqkv, *bqkv, *wo, *bo, *ln2_w, *ln2_b, *w1, *b1, *w2, *b2;
    float *qkv; /* [B·T, Wq]: the layer's Q, K and V rows */
    const float4 *fqkv, *fo, *f1, *f2; /* the same weights as mma fragments (ea__fb_k below; NULL without it) */
    ea__cu_pat pat; /* the layer's sparse pattern (local, bigbird) */
} ea__fz_layer;

typedef struct ea__fz {
    int T, P, D, H, Hkv, dh, Wq, hidden, head_hidden, out_dim, depth, cls, causal, chans, img, patch;
    float scale;
    size_t o_x, o_a, o_q, o_att, o_mid, o_hid, o_part, o_kv, o_s, o_vec, smem; /* shared memory, in floats */
    const float *in, *patch_wt, *patch_b, *pos, *cls_tok, *norm_w, *norm_b, *head1_wt, *head1_b, *head2_wt, *head2_b;
    float *h, *lnf, *y;
    const ea__fz_layer *L; /* device memory, depth of them */
    /* the block-an-image kernel (ea__fb_k): 16-row tiles, leading dimensions
       of x, u and big, its shared memory in floats, the patch weights' fragments */
    int mt, ldx, ldu, ldb;
    size_t fb_smem;
    const float4 *patch_f;
} ea__fz;

/* *dst = *src from global to shared memory, complete after ea__fz_landed:
   on sm_80+ an asynchronous copy, so that every load of a stage is in
   flight at once (each costs a trip to L2, ~0.5 µs, the unit of this
   kernel's time) without holding a register. */
__device__ static void ea__fz_copy(float *dst, const float *src) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"((unsigned)__cvta_generic_to_shared(dst)), "l"(src));
#else
    *dst = *src;
#endif
}

__device__ static void ea__fz_landed(void) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.commit_group;\ncp.async.wait_group 0;\n" ::: "memory");
#endif
    __syncthreads();
}

/* n values to shared memory, or `fill` where there are none (NULL: a
   layer without biases) */
__device__ static void ea__fz_vec(float *dst, const float *src, int n, float fill) {
    int i;
    for (i = (int)threadIdx.x; i < n; i += (int)blockDim.x) {
        if (src) ea__fz_copy(dst + i, src + i);
        else dst[i] = fill;
    }
}

/* acc[r] += Σ in[r, k]·wt[k, n] over k = *k, *k + 1, ... in chunks of U
   while a whole chunk fits below k1: U loads issued together, then their
   sums (a chunk costs one trip to L2, not U; no test inside).  Rows R ..
   EA_CU_FZ_ROWS - 1 of a task at an image's end add what lies in their
   buffers and are never written. */
template <int U>
__device__ static void ea__fz_dot(float *acc, const float *in, int ldi, const float *__restrict__ wt, int N, int n, int *k,
                                  int k1) {
    int u, r;
    for (; *k + U <= k1; *k += U) {
        float w[U];
#pragma unroll
        for (u = 0; u < U; u++) w[u] = __ldg(wt + (size_t)(*k + u) * N + n);
#pragma unroll
        for (u = 0; u < U; u++)
#pragma unroll
            for (r = 0; r < EA_CU_FZ_ROWS; r++) acc[r] += in[r * ldi + *k + u] * w[u];
    }
}

/* out[r, n] = act(Σ_k in[r, k]·wt[k, n] + (b[n] + res[r, n])) for r < R <= EA_CU_FZ_ROWS,
   n < N; in, b and res in shared memory; in, res and out (leading
   dimensions ldi, ldr, ldo) must not overlap; part holds the partial sums
   (blockDim·EA_CU_FZ_ROWS floats). */
__device__ static __noinline__ void ea__fz_linear(float *out, int ldo, const float *in, int ldi, const float *__restrict__ wt,
                                     const float *b, const float *res, int ldr, int R, int K, int N, int gelu, float *part) {
    int nt = (int)blockDim.x, t = (int)threadIdx.x, G = 2 * N <= nt ? nt / N : 1, g, n, r, k, e;
    if (G > K) G = K;
    g = G > 1 ? t / N : 0;
    for (n = G > 1 ? t % N : t; n < N && g < G; n += G > 1 ? N : nt) { /* one column (G > 1) or every nt-th */
        int k1 = (int)((long long)K * (g + 1) / G);
        float acc[EA_CU_FZ_ROWS];
#pragma unroll
        for (r = 0; r < EA_CU_FZ_ROWS; r++) acc[r] = 0.0f;
        k = (int)((long long)K * g / G);
        ea__fz_dot<32>(acc, in, ldi, wt, N, n, &k, k1); /* fc1, fc2, QKV: one wait for the loads */
        ea__fz_dot<8>(acc, in, ldi, wt, N, n, &k, k1);  /* the projection */
        ea__fz_dot<1>(acc, in, ldi, wt, N, n, &k, k1);
#pragma unroll
        for (r = 0; r < EA_CU_FZ_ROWS; r++) {
            if (r >= R) break;
            if (G > 1) {
                part[(g * R + r) * N + n] = acc[r];
                continue;
            }
            acc[r] += (b ? b[n] : 0.0f) + (res ? res[r * ldr + n] : 0.0f);
            out[r * ldo + n] = gelu ? ea__gelu(acc[r]) : acc[r];
        }
    }
    if (G > 1) {
        __syncthreads();
        for (e = t; e < R * N; e += nt) {
            float s = 0.0f;
            r = e / N;
            n = e % N;
            for (g = 0; g < G; g++) s += part[(g * R + r) * N + n];
            s += (b ? b[n] : 0.0f) + (res ? res[r * ldr + n] : 0.0f);
            out[r * ldo + n] = gelu ? ea__gelu(s) : s;
        }
    }
    __syncthreads();
}

/* Layer norm of R rows, a warp a row. */
__device__ static __noinline__ void ea__fz_ln(float *out, int ldo, const float *x, int ldx, const float *w, const float *b, int R, int C) {
    int r;
    float m, s;
    for (r = (int)threadIdx.x / 32; r < R; r += (int)blockDim.x / 32)
        ea__cu_ln_row(out + r * ldo, x + r * ldx, w, b, C, 1e-5f, &m, &s);
    __syncthreads();
}

/* Attention of rows t0 .. t0 + R - 1 of an image over its T keys, from
   shared memory: q [R, D] (unscaled), kv [T, ldk] (keys, then values, of
   every K/V head; ldk = 2·Hkv·dh + 1, odd, so that lanes reading
   neighbouring keys meet no bank conflict), scores s [R, H, T]: a warp a
   (row, head), by ea__attn_row_warp. */
__device__ static __noinline__ void ea__fz_attn(const ea__fz *a, int t0, int R, float *out, const float *q, const float *kv,
                                                float *s, const ea__cu_pat *pat) {
    int kvw = a->Hkv * a->dh, H = a->H, dh = a->dh, rh;
    for (rh = (int)threadIdx.x / 32; rh < R * H; rh += (int)blockDim.x / 32) {
        int r = rh / H, h = rh % H;
        const float *kb = kv + h / (H / a->Hkv) * dh;
        ea__attn_row_warp(out + r * a->D + h * dh, q + r * a->D + h * dh, kb, kb + kvw, 2 * kvw + 1, a->causal ? t0 + r : a->T - 1,
                          dh, a->scale, s + (size_t)rh * a->T, pat, t0 + r);
    }
    __syncthreads();
}

/* The residual rows x of a task to global memory, then what follows them:
   the next layer's LN1 and Q, K, V (next; its norm's w, b and bqkv staged
   in shared memory) or, after the last layer, the final norm (w, b). */
__device__ static __noinline__ void ea__fz_rows_out(const ea__fz *a, const ea__fz_layer *next, size_t row0, int R, const float *x, float *ln,
                                       const float *w, const float *b, const float *bqkv, float *part) {
    int e;
    for (e = (int)threadIdx.x; e < R * a->D; e += (int)blockDim.x) a->h[row0 * a->D + e] = x[e];
    if (!next) {
        ea__fz_ln(a->lnf + row0 * a->D, a->D, x, a->D, w, b, R, a->D);
        return;
    }
    ea__fz_ln(ln, a->D, x, a->D, w, b, R, a->D);
    ea__fz_linear(next->qkv + row0 * a->Wq, a->Wq, ln, a->D, next->wqkv, bqkv, NULL, 0, R, a->D, a->Wq, 0, part);
}

/* Image img's pooled row and head, from its final-norm rows f [T, ldf]
   (shared memory): the class token's row, or the mean in G partial sums
   over token ranges added in order, into pool [D]; then head1 (+ GELU and
   head2 with a hidden head layer, through hid) with biases h1, h2, into y.
   part: scratch of blockDim floats. */
__device__ static void ea__fz_head(const ea__fz *a, const float *f, int ldf, float *pool, float *hid, float *part, const float *h1,
                                   const float *h2, int img) {
    int nt = (int)blockDim.x, t = (int)threadIdx.x, D = a->D, G = nt / D > 1 ? nt / D : 1, e;
    int n1 = a->head_hidden ? a->head_hidden : a->out_dim;
    for (e = t; e < G * D; e += nt) {
        int g = e / D, tt;
        float sum = 0.0f;
        for (tt = a->T * g / G; tt < a->T * (g + 1) / G; tt++) sum += f[(size_t)tt * ldf + e % D];
        part[e] = sum;
    }
    __syncthreads();
    for (e = t; e < D; e += nt) {
        float sum = 0.0f;
        int g;
        for (g = 0; g < G; g++) sum += part[g * D + e];
        pool[e] = a->cls ? f[e] : sum / (float)a->T;
    }
    __syncthreads();
    ea__fz_linear(a->head_hidden ? hid : a->y + (size_t)img * a->out_dim, n1, pool, D, a->head1_wt, h1, NULL, 0, 1, D, n1,
                  a->head_hidden != 0, part);
    if (a->head_hidden)
        ea__fz_linear(a->y + (size_t)img * a->out_dim, a->out_dim, hid, a->head_hidden, a->head2_wt, h2, NULL, 0, 1, a->head_hidden,
                      a->out_dim, 0, part);
}

__global__ static void __launch_bounds__(EA_CU_FZ_THREADS, 1) ea__fz_k(const __grid_constant__ ea__fz a, int B) {
    extern __shared__ float sm[];
    float *x = sm + a.o_x, *ln = sm + a.o_a, *q = sm + a.o_q, *att = sm + a.o_att, *mid = sm + a.o_mid, *hid = sm + a.o_hid;
    float *part = sm + a.o_part, *kv = sm + a.o_kv, *s = sm + a.o_s, *vec = sm + a.o_vec;
    int C = (a.T + EA_CU_FZ_ROWS - 1) / EA_CU_FZ_ROWS, tasks = B * C, nt = (int)blockDim.x, t = (int)threadIdx.x, D = a.D;
    int task, l, e, j, lane = t % 32, warp = t / 32, warps = nt / 32;
    for (task = (int)blockIdx.x; task < tasks; task += (int)gridDim.x) { /* embedding, layer 0's LN1 and QKV */
        int b = task / C, t0 = task % C * EA_CU_FZ_ROWS, R = min(EA_CU_FZ_ROWS, a.T - t0);
        float *pb = vec, *pos = pb + D, *lw = pos + EA_CU_FZ_ROWS * D, *lb = lw + D, *ct = lb + D, *bq = ct + D;
        for (e = t; e < R * a.P; e += nt) {
            int patch = t0 + e / a.P - a.cls; /* -1: the class token's row */
            if (patch < 0) ln[e] = 0.0f;
            else ln[e] = a.in[ea__cu_patch_idx(b, patch, e % a.P, a.chans, a.img, a.patch)]; /* may be host memory */
        }
        ea__fz_vec(pb, a.patch_b, D, 0.0f);
        ea__fz_vec(pos, a.pos + (size_t)t0 * D, R * D, 0.0f);
        ea__fz_vec(lw, a.L[0].ln1_w, D, 1.0f);
        ea__fz_vec(lb, a.L[0].ln1_b, D, 0.0f);
        ea__fz_vec(ct, a.cls_tok, a.cls ? D : 0, 0.0f);
        ea__fz_vec(bq, a.L[0].bqkv, a.Wq, 0.0f);
        ea__fz_landed();
        ea__fz_linear(x, D, ln, a.P, a.patch_wt, pb, pos, D, R, a.P, D, 0, part);
        if (a.cls && t0 == 0) {
            for (e = t; e < D; e += nt) x[e] = ct[e] + pos[e];
            __syncthreads();
        }
        ea__fz_rows_out(&a, a.L, (size_t)b * a.T + t0, R, x, ln, lw, lb, bq, part);
    }
    cooperative_groups::this_grid().sync();
    for (l = 0; l < a.depth; l++) {
        const ea__fz_layer *L = a.L + l, *next = l + 1 < a.depth ? L + 1 : NULL;
        float *bo = vec, *w2 = bo + D, *b2 = w2 + D, *b1 = b2 + D, *bf = b1 + a.hidden, *nw = bf + D, *nb = nw + D, *bq = nb + D;
        for (task = (int)blockIdx.x; task < tasks; task += (int)gridDim.x) {
            int b = task / C, t0 = task % C * EA_CU_FZ_ROWS, R = min(EA_CU_FZ_ROWS, a.T - t0), kvw = a.Hkv * a.dh;
            size_t row0 = (size_t)b * a.T + t0;
            const float *base = L->qkv + (size_t)b * a.T * a.Wq;
            /* one stage: the residual rows, their queries, the image's keys and values, the layer's vectors */
            for (j = warp; j < R; j += warps)
                for (e = lane; e < D; e += 32) {
                    ea__fz_copy(x + j * D + e, a.h + (row0 + j) * D + e);
                    ea__fz_copy(q + j * D + e, base + (size_t)(t0 + j) * a.Wq + e);
                }
            for (j = warp; j < a.T; j += warps)
                for (e = lane; e < 2 * kvw; e += 32) ea__fz_copy(kv + j * (2 * kvw + 1) + e, base + (size_t)j * a.Wq + D + e);
            ea__fz_vec(bo, L->bo, D, 0.0f);
            ea__fz_vec(w2, L->ln2_w, D, 1.0f);
            ea__fz_vec(b2, L->ln2_b, D, 0.0f);
            ea__fz_vec(b1, L->b1, a.hidden, 0.0f);
            ea__fz_vec(bf, L->b2, D, 0.0f);
            ea__fz_vec(nw, next ? next->ln1_w : a.norm_w, D, 1.0f);
            ea__fz_vec(nb, next ? next->ln1_b : a.norm_b, D, 0.0f);
            ea__fz_vec(bq, next ? next->bqkv : NULL, next ? a.Wq : 0, 0.0f);
            ea__fz_landed();
            ea__fz_attn(&a, t0, R, att, q, kv, s, &L->pat);
            ea__fz_linear(mid, D, att, D, L->wo, bo, x, D, R, D, D, 0, part);
            ea__fz_ln(ln, D, mid, D, w2, b2, R, D);
            ea__fz_linear(hid, a.hidden, ln, D, L->w1, b1, NULL, 0, R, D, a.hidden, 1, part);
            ea__fz_linear(x, D, hid, a.hidden, L->w2, bf, mid, D, R, a.hidden, D, 0, part);
            ea__fz_rows_out(&a, next, row0, R, x, ln, nw, nb, bq, part);
        }
        cooperative_groups::this_grid().sync();
    }
    for (task = (int)blockIdx.x; task < B; task += (int)gridDim.x) { /* pooling and the head, a block an image */
        int n1 = a.head_hidden ? a.head_hidden : a.out_dim;
        float *h1 = vec, *h2 = h1 + n1, *f = kv;
        for (e = t; e < a.T * D; e += nt) ea__fz_copy(f + e, a.lnf + (size_t)task * a.T * D + e);
        ea__fz_vec(h1, a.head1_b, n1, 0.0f);
        ea__fz_vec(h2, a.head2_b, a.head_hidden ? a.out_dim : 0, 0.0f);
        ea__fz_landed();
        ea__fz_head(&a, f, D, ln, hid, part, h1, h2, task);
    }
}

/* --- the whole forward a block an image (larger batches) --------------------
   Past what ea__fz_k holds at once, the layer-by-layer graph spends its
   time writing every activation to memory and reading it back, ~40 kernels
   a forward.  Yet an image's tokens meet no other image's: a block can
   carry one image through every layer in shared memory (the residual x, a
   norm's or the attention's output a, and the QKV or hidden rows big; 101
   KiB for the tracker, two blocks an SM) with no grid barrier and no
   activation leaving the SM.  Its linear layers and attention run on
   tensor cores in 3xTF32 (the fp32 attention forward's scheme above): a
   warp computes a strip of 8 or 16 output columns for all of the image's
   rows (at most EA_CU_FB_MT tiles of 16), reading the weights as
   fragments packed once (ea__frag_pack_k: each lane's two B values of a
   k-step, already split into TF32 hi and lo parts: one 16-byte load) and
   the rows from shared memory (leading dimensions 4 more than a multiple
   of 8, so that a fragment's 32 reads meet 32 banks).  Attention is a warp
   a head and 16 queries: the whole score row in registers (at most 80
   keys), softmax, then P·V, with no online rescaling.  Padding rows (the
   tokens past T in the last tile) are zero and stay zero: no step writes
   them.  Every sum runs in a fixed order: the same bits every call. */
#define EA_CU_FB_THREADS 256
#define EA_CU_FB_MT 6    /* 16-row tiles an image at most: 96 tokens (4 or 6 of them: tasks take two) */
#define EA_CU_FB_AHEAD 4 /* weight fragments (16 bytes a lane) a warp has in flight (a trip to L2 is ~0.5 µs) */

/* x as TF32 hi and lo by truncation (the 3xTF32 split with its rounding
   dropped, as CUTLASS's fast variant does): a mask, a subtraction and a
   mask, ordinary integer and float instructions where cvt.rna is a
   conversion, issued at a fraction of their rate; hi keeps 11 bits of x
   and lo the next 11, ~2⁻²¹ of x lost (the products' error is ~1e-6).
   The low 13 bits are cleared explicitly: a TF32 operand's layout is the
   hardware's, so the kernels hand it proper TF32 values. */
__device__ static inline void ea__tf32_split_fast(float x, unsigned *hi, unsigned *lo) {
    *hi = __float_as_uint(x) & 0xffffe000u;
    *lo = __float_as_uint(x - __uint_as_float(*hi)) & 0xffffe000u;
}

/* W [N, K] (row stride ldw) as mma B fragments: for n-tile j, k-step s and
   lane l (g = l / 4, c = l % 4), dst[(j·K/8 + s)·32 + l] = (hi, hi, lo, lo)
   of W[8j + g, 8s + c] and W[8j + g, 8s + c + 4]. */
__global__ static void ea__frag_pack_k(float4 *dst, const float *W, int N, int K, int ldw) {
    int i = blockIdx.x * blockDim.x + threadIdx.x, l = i % 32, s = i / 32 % (K / 8), j = i / 32 / (K / 8);
    unsigned h0, h1, l0, l1;
    if (j >= N / 8) return;
    ea__tf32_split<true>(W[(size_t)(8 * j + l / 4) * ldw + 8 * s + l % 4], &h0, &l0);
    ea__tf32_split<true>(W[(size_t)(8 * j + l / 4) * ldw + 8 * s + l % 4 + 4], &h1, &l1);
    dst[i] = make_float4(__uint_as_float(h0), __uint_as_float(h1), __uint_as_float(l0), __uint_as_float(l1));
}

/* out[r, n] = act(Σ_k in[r, k]·W[n, k] + b[n] + res[r, n]) for rows r < R
   and n < N, K a multiple of 8: in, out (and res, which may be out itself:
   a thread reads each element it then writes) in shared memory; w the
   packed fragments; b and res optional (NULL).  A warp a task: two 16-row
   tiles by NT n-tiles, the tasks of one strip of columns side by side (the
   warps that share its weights read them at about the same time, the
   second from L1).  Every tile is computed, padding too: no branch
   between the products.  (Separate accumulators for the small products,
   to shorten the chains of dependent mma, measured slower: they spill.) */
template <int NT, int MT, bool GELU>
__device__ static void ea__fb_linear_nt(float *out, int ldo, const float *in, int ldi, const float4 *__restrict__ w,
                                        const float *b, const float *res, int ldr, int R, int K, int N) {
    const int lane = threadIdx.x % 32, g = lane / 4, c = lane % 4, KS = K / 8, A = EA_CU_FB_AHEAD / NT;
    int task, s0, u, i, j, hf, e;
    for (task = (int)threadIdx.x / 32; task < N / (8 * NT) * (MT / 2); task += (int)blockDim.x / 32) {
        const int strip = task / (MT / 2), m0 = 32 * (task % (MT / 2));
        const float4 *wj[NT]; /* n-tile j's fragments of the next k-step to load */
        float acc[2][NT][4], bias[NT][2];
        float4 ring[EA_CU_FB_AHEAD / NT][NT]; /* k-steps s .. s + A - 1's fragments, in flight */
#pragma unroll
        for (i = 0; i < 2; i++)
#pragma unroll
            for (j = 0; j < NT; j++)
#pragma unroll
                for (u = 0; u < 4; u++) acc[i][j][u] = 0.0f;
#pragma unroll
        for (j = 0; j < NT; j++) wj[j] = w + ((size_t)strip * NT + j) * KS * 32 + lane;
#pragma unroll
        for (u = 0; u < A; u++)
#pragma unroll
            for (j = 0; j < NT; j++)
                if (u < KS) ring[u][j] = __ldg(wj[j] + u * 32);
        for (s0 = 0; s0 < KS; s0 += A) {
#pragma unroll
            for (u = 0; u < A; u++) {
                int s = s0 + u;
                if (s >= KS) break;
#pragma unroll
                for (i = 0; i < 2; i++) {
                    const float *ar = in + (m0 + 16 * i + g) * ldi + 8 * s + c;
                    unsigned ah[4], al[4];
                    ea__tf32_split_fast(ar[0], &ah[0], &al[0]); /* rows g, g + 8; columns c, c + 4 */
                    ea__tf32_split_fast(ar[8 * ldi], &ah[1], &al[1]);
                    ea__tf32_split_fast(ar[4], &ah[2], &al[2]);
                    ea__tf32_split_fast(ar[8 * ldi + 4], &ah[3], &al[3]);
#pragma unroll
                    for (j = 0; j < NT; j++) {
                        unsigned h0 = __float_as_uint(ring[u][j].x), h1 = __float_as_uint(ring[u][j].y);
                        ea__mma<true>(acc[i][j], al, h0, h1);
                        ea__mma<true>(acc[i][j], ah, __float_as_uint(ring[u][j].z), __float_as_uint(ring[u][j].w));
                        ea__mma<true>(acc[i][j], ah, h0, h1);
                    }
                }
#pragma unroll
                for (j = 0; j < NT; j++) { /* the slot is free: k-step s + A's loads into it (a constant offset) */
                    if (s + A < KS) ring[u][j] = __ldg(wj[j] + A * 32);
                    wj[j] += 32;
                }
            }
        }
#pragma unroll
        for (j = 0; j < NT; j++)
#pragma unroll
            for (e = 0; e < 2; e++) bias[j][e] = b ? b[8 * (strip * NT + j) + 2 * c + e] : 0.0f;
#pragma unroll
        for (i = 0; i < 2; i++)
#pragma unroll
            for (hf = 0; hf < 2; hf++) {
                int row = m0 + 16 * i + g + 8 * hf;
                if (row >= R) continue;
#pragma unroll
                for (j = 0; j < NT; j++)
#pragma unroll
                    for (e = 0; e < 2; e++) {
                        int col = 8 * (strip * NT + j) + 2 * c + e;
                        float v = acc[i][j][2 * hf + e] + bias[j][e];
                        if (res) v += res[row * ldr + col];
                        out[row * ldo + col] = GELU ? ea__gelu(v) : v;
                    }
            }
    }
    __syncthreads();
}

/* Strips of two n-tiles where the columns pair up (every layer of the
   tracker and the classifiers), else of one. */
template <int MT>
__device__ static __noinline__ void ea__fb_linear(float *out, int ldo, const float *in, int ldi, const float4 *__restrict__ w,
                                                  const float *b, const float *res, int ldr, int R, int K, int N, int gelu) {
    if (gelu && N % 16 == 0) ea__fb_linear_nt<2, MT, true>(out, ldo, in, ldi, w, b, res, ldr, R, K, N);
    else if (gelu) ea__fb_linear_nt<1, MT, true>(out, ldo, in, ldi, w, b, res, ldr, R, K, N);
    else if (N % 16 == 0) ea__fb_linear_nt<2, MT, false>(out, ldo, in, ldi, w, b, res, ldr, R, K, N);
    else ea__fb_linear_nt<1, MT, false>(out, ldo, in, ldi, w, b, res, ldr, R, K, N);
}

/* Layer norm of rows r < T of x into out, a warp a row, as ea__cu_ln_row
   computes it but with a lane's weights, biases and V values in registers
   (D <= 32·V): one read of each from memory. */
template <int V>
__device__ static __noinline__ void ea__fb_ln(float *out, int ldo, const float *x, int ldx, const float *w, const float *b, int T,
                                              int D) {
    const int lane = threadIdx.x % 32;
    float wv[V], bv[V], xv[V];
    int r, v;
#pragma unroll
    for (v = 0; v < V; v++) {
        int col = lane + 32 * v;
        wv[v] = col < D && w ? w[col] : 1.0f;
        bv[v] = col < D && b ? b[col] : 0.0f;
    }
    for (r = (int)threadIdx.x / 32; r < T; r += (int)blockDim.x / 32) {
        float sum = 0.0f, sq = 0.0f, m, rs;
#pragma unroll
        for (v = 0; v < V; v++) {
            xv[v] = lane + 32 * v < D ? x[r * ldx + lane + 32 * v] : 0.0f;
            sum += xv[v];
        }
        m = ea__warp_sum(sum) / (float)D;
#pragma unroll
        for (v = 0; v < V; v++)
            if (lane + 32 * v < D) sq += (xv[v] - m) * (xv[v] - m);
        rs = rsqrtf(ea__warp_sum(sq) / (float)D + 1e-5f);
#pragma unroll
        for (v = 0; v < V; v++)
            if (lane + 32 * v < D) out[r * ldo + lane + 32 * v] = (xv[v] - m) * rs * wv[v] + bv[v];
    }
    __syncthreads();
}

/* ea__fb_ln with as few values a lane as D needs (up to 128) */
__device__ static void ea__fb_norm(float *out, int ldo, const float *x, int ldx, const float *w, const float *b, int T, int D) {
    if (D <= 64) ea__fb_ln<2>(out, ldo, x, ldx, w, b, T, D);
    else ea__fb_ln<4>(out, ldo, x, ldx, w, b, T, D);
}

/* Attention of one image from its Q, K and V rows in shared memory (qkv
   [T, ld]: queries, then Hkv heads' keys, then values), into out [T, ldo]:
   a warp a (head, 16-query tile).  Heads of width dh <= DH (a multiple of
   4) are padded with zeros in Q's fragments, which cancels whatever K's
   columns past dh hold (the next head's, or the zeroed row padding); V's
   columns past dh only reach outputs that are not written. */
template <int DH, int MT, bool PAT>
__device__ static __noinline__ void ea__fb_attn(float *out, int ldo, const float *qkv, int ld, int T, int D, int H, int Hkv, int dh,
                                                int causal, float scale2, const ea__cu_pat *pat) {
    const int lane = threadIdx.x % 32, g = lane / 4, c = lane % 4, mt = (T + 15) / 16;
    int task, t, j, e, hf;
    for (task = (int)threadIdx.x / 32; task < H * mt; task += (int)blockDim.x / 32) {
        int h = task / mt, r0 = 16 * (task % mt), kc = D + h / (H / Hkv) * dh, vc = kc + Hkv * dh;
        unsigned qh[DH / 8][4], ql[DH / 8][4];
        float s[2 * MT][4], o[DH / 8][4], inv[2];
#pragma unroll
        for (t = 0; t < DH / 8; t++)
#pragma unroll
            for (e = 0; e < 4; e++) {
                int row = r0 + g + 8 * (e & 1), col = 8 * t + c + 4 * (e >> 1);
                ea__tf32_split_fast(col < dh ? qkv[row * ld + h * dh + col] : 0.0f, &qh[t][e], &ql[t][e]);
            }
#pragma unroll
        for (j = 0; j < 2 * MT; j++) { /* S = Q·Kᵀ over key tiles of 8, the padding's too (masked below) */
            s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
#pragma unroll
            for (t = 0; t < DH / 8; t++) {
                const float *kr = qkv + (8 * j + g) * ld + kc + 8 * t + c;
                unsigned h0, h1, l0, l1;
                ea__tf32_split_fast(kr[0], &h0, &l0);
                ea__tf32_split_fast(kr[4], &h1, &l1);
                ea__mma_x3<true>(s[j], qh[t], ql[t], h0, h1, l0, l1);
            }
        }
#pragma unroll
        for (hf = 0; hf < 2; hf++) { /* softmax of rows r0 + g (hf 0) and r0 + g + 8, a row's 4 lanes together */
            int row = r0 + g + 8 * hf;
            float mx = -INFINITY, sum = 0.0f;
#pragma unroll
            for (j = 0; j < 2 * MT; j++)
#pragma unroll
                for (e = 0; e < 2; e++) {
                    int key = 8 * j + 2 * c + e;
                    /* padding rows (row >= T) skip the pattern: their blocks lie past bigbird's random-block table */
                    if (key >= T || (causal && key > row) || (PAT && row < T && !ea__cu_visible(pat, row, key)))
                        s[j][2 * hf + e] = -INFINITY;
                    mx = fmaxf(mx, s[j][2 * hf + e]);
                }
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
#pragma unroll
            for (j = 0; j < 2 * MT; j++)
#pragma unroll
                for (e = 0; e < 2; e++) {
                    float p = exp2f((s[j][2 * hf + e] - mx) * scale2);
                    s[j][2 * hf + e] = p;
                    sum += p;
                }
            sum += __shfl_xor_sync(0xffffffffu, sum, 1);
            sum += __shfl_xor_sync(0xffffffffu, sum, 2);
            inv[hf] = 1.0f / sum;
        }
#pragma unroll
        for (t = 0; t < DH / 8; t++) o[t][0] = o[t][1] = o[t][2] = o[t][3] = 0.0f;
#pragma unroll
        for (j = 0; j < 2 * MT; j++) { /* O += P·V, keys 8j + 2c, 8j + 2c + 1 as the fp32 forward takes them */
            unsigned pa[4], pl[4];
            const float *vr = qkv + (8 * j + 2 * c) * ld + vc + g;
            ea__tf32_split_fast(s[j][0], &pa[0], &pl[0]);
            ea__tf32_split_fast(s[j][2], &pa[1], &pl[1]);
            ea__tf32_split_fast(s[j][1], &pa[2], &pl[2]);
            ea__tf32_split_fast(s[j][3], &pa[3], &pl[3]);
#pragma unroll
            for (t = 0; t < DH / 8; t++) {
                unsigned h0, h1, l0, l1;
                ea__tf32_split_fast(vr[8 * t], &h0, &l0);
                ea__tf32_split_fast(vr[ld + 8 * t], &h1, &l1);
                ea__mma_x3<true>(o[t], pa, pl, h0, h1, l0, l1);
            }
        }
#pragma unroll
        for (hf = 0; hf < 2; hf++) {
            int row = r0 + g + 8 * hf;
            if (row >= T) continue;
#pragma unroll
            for (t = 0; t < DH / 8; t++)
                if (8 * t + 2 * c < dh) {
                    out[row * ldo + h * dh + 8 * t + 2 * c] = o[t][2 * hf] * inv[hf];
                    out[row * ldo + h * dh + 8 * t + 2 * c + 1] = o[t][2 * hf + 1] * inv[hf];
                }
        }
    }
    __syncthreads();
}

template <int DH, int MT> __global__ static void __launch_bounds__(EA_CU_FB_THREADS, 2) ea__fb_k(const __grid_constant__ ea__fz a, int B) {
    extern __shared__ __align__(16) float sm[];
    const int nt = (int)blockDim.x, t = (int)threadIdx.x, D = a.D, T = a.T;
    float *x = sm, *u = x + 16 * a.mt * a.ldx, *big = u + 16 * a.mt * a.ldu; /* [16·mt, ld] each */
    int img = (int)blockIdx.x, l, e;
    if (img >= B) return;
    for (e = t; e < (int)a.fb_smem; e += nt) sm[e] = 0.0f; /* the padding rows and columns, once */
    __syncthreads();
    for (e = t; e < T * a.P; e += nt) { /* the patches as rows of u (the class token's row stays 0) */
        int patch = e / a.P - a.cls;
        if (patch >= 0) u[(e / a.P) * a.ldu + e % a.P] = a.in[ea__cu_patch_idx(img, patch, e % a.P, a.chans, a.img, a.patch)];
    }
    __syncthreads();
    ea__fb_linear<MT>(x, a.ldx, u, a.ldu, a.patch_f, a.patch_b, a.pos, D, T, a.P, D, 0);
    if (a.cls) {
        for (e = t; e < D; e += nt) x[e] = a.cls_tok[e] + a.pos[e];
        __syncthreads();
    }
    for (l = 0; l < a.depth; l++) {
        const ea__fz_layer *L = a.L + l;
        ea__fb_norm(u, a.ldu, x, a.ldx, L->ln1_w, L->ln1_b, T, D);
        ea__fb_linear<MT>(big, a.ldb, u, a.ldu, L->fqkv, L->bqkv, NULL, 0, T, D, a.Wq, 0);
        if (L->pat.on) /* a pattern (local, bigbird) costs the others nothing: its own instance */
            ea__fb_attn<DH, MT, true>(u, a.ldu, big, a.ldb, T, D, a.H, a.Hkv, a.dh, a.causal, a.scale * 1.44269504f, &L->pat);
        else
            ea__fb_attn<DH, MT, false>(u, a.ldu, big, a.ldb, T, D, a.H, a.Hkv, a.dh, a.causal, a.scale * 1.44269504f, &L->pat);
        ea__fb_linear<MT>(x, a.ldx, u, a.ldu, L->fo, L->bo, x, a.ldx, T, D, D, 0);
        ea__fb_norm(u, a.ldu, x, a.ldx, L->ln2_w, L->ln2_b, T, D);
        ea__fb_linear<MT>(big, a.ldb, u, a.ldu, L->f1, L->b1, NULL, 0, T, D, a.hidden, 1);
        ea__fb_linear<MT>(x, a.ldx, big, a.ldb, L->f2, L->b2, x, a.ldx, T, a.hidden, D, 0);
    }
    ea__fb_norm(u, a.ldu, x, a.ldx, a.norm_w, a.norm_b, T, D);
    ea__fz_head(&a, u, a.ldu, big, big + D, big + D + (a.head_hidden ? a.head_hidden : a.out_dim), a.head1_b, a.head2_b, img);
}

/* ea__fb_k for heads up to dh wide and mt tiles of rows (4 or 6) */
static const void *ea__fb_kernel(int dh, int mt) {
    if (dh <= 16) return mt <= 4 ? (const void *)ea__fb_k<16, 4> : (const void *)ea__fb_k<16, 6>;
    return mt <= 4 ? (const void *)ea__fb_k<32, 4> : (const void *)ea__fb_k<32, 6>;
}

/* dst[k, n] (leading dimension ldd) = src[n, k]: a weight [N, K] transposed */
__global__ static void ea__transpose_k(float *dst, int ldd, const float *src, int N, int K) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < (size_t)N * K) dst[i % K * (size_t)ldd + i / K] = src[i];
}

typedef struct ea__vcu_block {
    const float *ln1_w, *ln1_b, *wq, *bq, *wk, *bk, *wv, *bv, *wo, *bo, *ln2_w, *ln2_b, *w1, *b1, *w2, *b2;
    float *ln1, *mean1, *rstd1, *qkv, *att, *lse, *mid, *ln2, *mean2, *rstd2, *f, *g, *out;
    float *dln1, *dqkv, *datt, *dln2, *df, *dg; /* training: the gradients of those */
    ea__cu_pat pat;                             /* local's and bigbird's pattern (on 0: none) */
} ea__vcu_block;

/* Predict a block an image copies the images in up to EA_CU_PARTS parts
   of at least EA_CU_PART_MIN, each part's copy overlapping the part
   before it on the GPU. */
#define EA_CU_PARTS 4
#define EA_CU_PART_MIN 16

struct ea__vcu {
    int T, Np, P, D, H, Hkv, dh, Wq, hidden, head_hidden, merged; /* Np: patches (T = Np + 1 with a class token) */
    const float *patch_w, *patch_b, *pos, *cls, *norm_w, *norm_b, *head1_w, *head1_b, *head2_w, *head2_b;
    float *in, *cols, *h0, *lnf, *meanf, *rstdf, *pool, *hd, *hg, *y;
    ea__vcu_block L[EA_MAX_DEPTH];
    /* training, allocated by the first step: targets, the residual stream's
       gradient (updated in place, block by block), the head's gradients,
       the loss and the gradient norm */
    float *gact, *target, *dres, *dlnf, *dpool, *dhd, *dhg, *dy, *loss, *gnorm, *norm_part;
    size_t gact_n, gzero_n;  /* gact's floats; the first gzero_n are zeroed every step */
    ea__cu_hp *hp;           /* the step's AdamW constants, on the device */
    /* the weight gradients' stream, its cuBLAS handle and workspace, and the
       events that fork work to it and join it back (ea__vcu_side_init) */
    void *side, *side_blas, *side_ws, *ev_fork, *ev_dres, *ev_join;
    float *side_scratch;   /* the side stream's column sums (EA_CU_SCRATCH / 4 floats) */
    unsigned *side_tickets;
    void *train_graph;       /* cudaGraphExec_t of a step at train_batch images, clip train_clip, */
    int train_batch, train_ce; /* the loss (ce: cross-entropy with smoothing train_smooth, else MSE) */
    float train_clip, train_smooth;
    void *train_graph2;      /* with several ranks: the step's clip and AdamW, after the all-reduce */
    ea_dist dist;            /* ea_vit_cuda_dist's (one rank: ea_dist_single) */
    float *labels;           /* host: a batch's labels as floats (cross-entropy) */
    int *pat_rand;           /* device: bigbird's random key blocks, every layer's */
    /* the fused forward (ea__fz_k): its arguments, its layer table (host
       copy), the table and transposed weights (device, fz_w), the blocks
       that fit on the GPU at once, and whether the weights need packing */
    ea__fz fz;
    ea__fz_layer fzL[EA_MAX_DEPTH];
    float *fz_w;
    int fz_grid, fz_stale, fz_cap; /* fz_cap: the images init made room for (fused_max at most that) */
    int fb_ok;                     /* the model fits ea__fb_k (blockwise at most that) */
    float *host_in, *host_y;         /* pinned host memory mapped into the device (fused_max images) */
    float *host_in_dev, *host_y_dev; /* ... and the device's addresses of it */
    /* predict's copy stream and its events, one a part (ea__vcu_predict_parts; made by its first call) */
    void *copy_stream, *ev_part[EA_CU_PARTS];
};

/* n floats at *at of base (256-byte aligned); base NULL: only count */
static float *ea__vcu_take(float *base, size_t *at, size_t n) {
    float *p = base ? base + *at : NULL;
    *at += (n + 63) / 64 * 64;
    return p;
}

/* A layer norm's output [M, D] and its row statistics */
static void ea__vcu_take_norm(float *base, size_t *at, size_t M, int D, float **out, float **mean, float **rstd) {
    *out = ea__vcu_take(base, at, M * D);
    *mean = ea__vcu_take(base, at, M);
    *rstd = ea__vcu_take(base, at, M);
}

/* Lay the activations of max_batch images out over base; their total. */
static size_t ea__vcu_carve(struct ea__vcu *p, const ea_vit_config *c, int max_batch, float *base) {
    size_t at = 0, M = (size_t)max_batch * p->T, Bm = (size_t)max_batch;
    int i;
    p->in = ea__vcu_take(base, &at, Bm * c->in_chans * c->img_size * c->img_size);
    p->cols = ea__vcu_take(base, &at, M * p->P);
    p->h0 = ea__vcu_take(base, &at, M * p->D);
    for (i = 0; i < c->depth; i++) {
        ea__vcu_block *L = &p->L[i];
        ea__vcu_take_norm(base, &at, M, p->D, &L->ln1, &L->mean1, &L->rstd1);
        L->qkv = ea__vcu_take(base, &at, M * p->Wq);
        L->att = ea__vcu_take(base, &at, M * p->D);
        L->lse = ea__vcu_take(base, &at, M * p->H);
        L->mid = ea__vcu_take(base, &at, M * p->D);
        ea__vcu_take_norm(base, &at, M, p->D, &L->ln2, &L->mean2, &L->rstd2);
        L->f = ea__vcu_take(base, &at, M * p->hidden);
        L->g = ea__vcu_take(base, &at, M * p->hidden);
        L->out = ea__vcu_take(base, &at, M * p->D);
    }
    ea__vcu_take_norm(base, &at, M, p->D, &p->lnf, &p->meanf, &p->rstdf);
    p->pool = ea__vcu_take(base, &at, Bm * p->D);
    p->hd = ea__vcu_take(base, &at, Bm * (p->head_hidden ? p->head_hidden : c->out_dim));
    p->hg = ea__vcu_take(base, &at, Bm * (p->head_hidden ? p->head_hidden : 1));
    p->y = p->head_hidden ? ea__vcu_take(base, &at, Bm * c->out_dim) : p->hd;
    return at;
}

/* The gradients of training, laid out like ea__vcu_carve. */
static size_t ea__vcu_carve_grads(struct ea__vcu *p, const ea_vit_config *c, int max_batch, float *base) {
    size_t at = 0, M = (size_t)max_batch * p->T, Bm = (size_t)max_batch;
    int i;
    for (i = 0; i < c->depth; i++) {
        ea__vcu_block *L = &p->L[i];
        L->dln1 = ea__vcu_take(base, &at, M * p->D);
        L->dqkv = ea__vcu_take(base, &at, M * p->Wq);
        L->datt = ea__vcu_take(base, &at, M * p->D);
        L->dln2 = ea__vcu_take(base, &at, M * p->D);
        L->df = ea__vcu_take(base, &at, M * p->hidden);
        L->dg = ea__vcu_take(base, &at, M * p->hidden);
    }
    p->dres = ea__vcu_take(base, &at, M * p->D);
    p->dlnf = ea__vcu_take(base, &at, M * p->D);
    p->dpool = ea__vcu_take(base, &at, Bm * p->D);
    p->dhd = ea__vcu_take(base, &at, Bm * (p->head_hidden ? p->head_hidden : 1));
    p->dhg = ea__vcu_take(base, &at, Bm * (p->head_hidden ? p->head_hidden : 1));
    p->dy = ea__vcu_take(base, &at, Bm * c->out_dim);
    p->gzero_n = at; /* what a step accumulates into ends here */
    p->target = ea__vcu_take(base, &at, Bm * c->out_dim);
    p->loss = ea__vcu_take(base, &at, 1);
    p->gnorm = ea__vcu_take(base, &at, 1);
    p->norm_part = ea__vcu_take(base, &at, EA_CU_NORM_BLOCKS);
    p->hp = (ea__cu_hp *)ea__vcu_take(base, &at, (sizeof(ea__cu_hp) + sizeof(float) - 1) / sizeof(float));
    return at;
}

/* The device twin of one of m's parameter tensors (NULL stays NULL). */
static const float *ea__vcu_param(const ea_vit_cuda *d, const ea_vit *m, const ea_tensor *t) {
    return t ? d->params + (t->data - m->params.data) : NULL;
}

static ea_status ea__vcu_forward(ea_vit_cuda *d, int B, ea_error *err) {
    struct ea__vcu *p = d->plan;
    const ea_vit_config *c = &d->cfg;
    ea_cuda *cu = d->cu;
    int M = B * p->T, D = p->D, kvw = p->Hkv * p->dh, i;
    const float *h = p->h0;
    ea_status st;
    ea__patch_cols_k<<<ea__blocks((size_t)B * p->Np * p->P, 256), 256, 0, EA_CU_STREAM(cu)>>>(p->cols, p->in, B, c->in_chans,
                                                                                               c->img_size, c->patch);
    st = ea__launched("patch embedding", err);
    if (st == EA_OK && !p->cls)
        st = ea__cu_linear(cu, p->h0, D, p->cols, p->P, p->patch_w, p->patch_b, p->pos, (size_t)p->T * D, M, p->P, D, err);
    if (st == EA_OK && p->cls) { /* image b's patches to rows b·T + 1 .. b·T + Np */
        const float one = 1.0f, zero = 0.0f;
        st = ea__cublas_check(cublasSgemmStridedBatched((cublasHandle_t)cu->blas, CUBLAS_OP_T, CUBLAS_OP_N, D, p->Np, p->P, &one,
                                                        p->patch_w, p->P, 0, p->cols, p->P, (long long)p->Np * p->P, &zero,
                                                        p->h0 + D, D, (long long)p->T * D, B),
                              "patch embedding", err);
        if (st == EA_OK) {
            ea__cls_embed_k<<<ea__blocks((size_t)M * D, 256), 256, 0, EA_CU_STREAM(cu)>>>(p->h0, p->patch_b, p->pos, p->cls,
                                                                                         (size_t)M, p->T, D);
            st = ea__launched("class token", err);
        }
    }
    for (i = 0; i < c->depth && st == EA_OK; i++) {
        const ea__vcu_block *L = &p->L[i];
        ea__cu_attn a = ea__attn_args(B, p->T, p->H, p->Hkv, p->dh, c->causal);
        a.pat = L->pat;
        st = ea_layernorm_fwd_cuda(cu, L->ln1, L->mean1, L->rstd1, h, L->ln1_w, L->ln1_b, M, D, 1e-5f, err);
        if (st == EA_OK)
            st = ea__cu_linear(cu, L->qkv, p->Wq, L->ln1, D, L->wq, L->bq, NULL, 1, M, D, p->merged ? p->Wq : D, err);
        if (st == EA_OK && !p->merged)
            st = ea__cu_linear(cu, L->qkv + D, p->Wq, L->ln1, D, L->wk, L->bk, NULL, 1, M, D, kvw, err);
        if (st == EA_OK && !p->merged)
            st = ea__cu_linear(cu, L->qkv + D + kvw, p->Wq, L->ln1, D, L->wv, L->bv, NULL, 1, M, D, kvw, err);
        a.q = L->qkv; a.k = L->qkv + D; a.v = L->qkv + D + kvw;
        a.ldq = a.ldkv = (size_t)p->Wq;
        a.out = L->att; a.lse = L->lse;
        if (st == EA_OK) st = ea__attn_fwd_launch(cu, &a, err);
        if (st == EA_OK) st = ea__cu_linear(cu, L->mid, D, L->att, D, L->wo, L->bo, h, (size_t)M * D, M, D, D, err);
        if (st == EA_OK) st = ea_layernorm_fwd_cuda(cu, L->ln2, L->mean2, L->rstd2, L->mid, L->ln2_w, L->ln2_b, M, D, 1e-5f, err);
        if (st == EA_OK)
            st = ea__cu_linear_act(cu, L->f, p->hidden, L->ln2, D, L->w1, L->b1, NULL, 1, M, D, p->hidden, L->g, err);
        if (st == EA_OK)
            st = ea__cu_linear(cu, L->out, D, L->g, p->hidden, L->w2, L->b2, L->mid, (size_t)M * D, M, p->hidden, D, err);
        h = L->out;
    }
    if (st == EA_OK) st = ea_layernorm_fwd_cuda(cu, p->lnf, p->meanf, p->rstdf, h, p->norm_w, p->norm_b, M, D, 1e-5f, err);
    if (st == EA_OK && p->cls) /* row 0 of each image */
        st = ea__cuda_check(cudaMemcpy2DAsync(p->pool, D * sizeof(float), p->lnf, (size_t)p->T * D * sizeof(float),
                                              D * sizeof(float), (size_t)B, cudaMemcpyDeviceToDevice, EA_CU_STREAM(cu)),
                            "class-token pooling", err);
    if (st == EA_OK && !p->cls) {
        ea__mean_tokens_k<<<ea__blocks((size_t)B * D, 128), 128, 0, EA_CU_STREAM(cu)>>>(p->pool, p->lnf, B, p->T, D);
        st = ea__launched("token mean", err);
    }
    if (st == EA_OK) {
        int n1 = p->head_hidden ? p->head_hidden : c->out_dim;
        st = ea__cu_linear_act(cu, p->hd, n1, p->pool, D, p->head1_w, p->head1_b, NULL, 1, B, D, n1,
                               p->head_hidden ? p->hg : NULL, err);
    }
    if (st == EA_OK && p->head_hidden)
        st = ea__cu_linear(cu, p->y, c->out_dim, p->hg, p->head_hidden, p->head2_w, p->head2_b, NULL, 1, B, p->head_hidden,
                           c->out_dim, err);
    return st;
}

/* The backward's second stream.  A linear layer's weight gradient
   dW += doutᵀ·inp is needed only by the optimizer at the end, while the
   rest of the backward waits for its input gradient; the small GEMMs of a
   tracker leave most of the GPU idle, so the weight GEMMs run on a side
   stream (its own cuBLAS handle and workspace: two GEMMs at once must not
   share one), forked from the main stream after what it has queued, and
   joined back before anything overwrites what they read: the residual
   stream's gradient, updated in place by each layer norm's backward
   (ev_dres), and at the end (ev_join).  The bias sums over that gradient
   go with them (on the side stream's own scratch and counters).  Each sum
   still has one writer and one order, so a step's results do not change. */
static ea_status ea__vcu_side_init(struct ea__vcu *p, ea_error *err) {
    cudaStream_t s;
    cublasHandle_t h;
    cudaEvent_t e[3];
    ea_status st;
    int i;
    if ((st = ea__cuda_check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "creating a stream", err)) != EA_OK) return st;
    p->side = (void *)s;
    if ((st = ea__cublas_check(cublasCreate(&h), "creating a handle", err)) != EA_OK) return st;
    p->side_blas = (void *)h;
    cublasSetStream(h, s);
    cublasSetMathMode(h, CUBLAS_PEDANTIC_MATH);
    if ((st = ea__cuda_check(cudaMalloc(&p->side_ws, EA_CU_BLAS_WS), "allocating cuBLAS's workspace", err)) != EA_OK ||
        (st = ea__cublas_check(cublasSetWorkspace(h, p->side_ws, EA_CU_BLAS_WS), "setting its workspace", err)) != EA_OK ||
        (st = ea__cuda_check(cudaMalloc((void **)&p->side_scratch, EA_CU_SCRATCH / 4 * sizeof(float)), "allocating scratch",
                             err)) != EA_OK ||
        (st = ea__cuda_check(cudaMalloc((void **)&p->side_tickets, EA_CU_TICKETS * sizeof(unsigned)), "allocating counters",
                             err)) != EA_OK ||
        (st = ea__cuda_check(cudaMemsetAsync(p->side_tickets, 0, EA_CU_TICKETS * sizeof(unsigned), s), "zeroing counters",
                             err)) != EA_OK)
        return st;
    for (i = 0; i < 3; i++) {
        if ((st = ea__cuda_check(cudaEventCreateWithFlags(&e[i], cudaEventDisableTiming), "creating an event", err)) != EA_OK)
            return st;
        *(i == 0 ? &p->ev_fork : i == 1 ? &p->ev_dres : &p->ev_join) = (void *)e[i];
    }
    return EA_OK;
}

static void ea__vcu_side_free(struct ea__vcu *p) {
    if (p->ev_fork) cudaEventDestroy((cudaEvent_t)p->ev_fork);
    if (p->ev_dres) cudaEventDestroy((cudaEvent_t)p->ev_dres);
    if (p->ev_join) cudaEventDestroy((cudaEvent_t)p->ev_join);
    if (p->side_blas) cublasDestroy((cublasHandle_t)p->side_blas);
    if (p->side) cudaStreamDestroy((cudaStream_t)p->side);
    if (p->side_ws) cudaFree(p->side_ws);
    if (p->side_scratch) cudaFree(p->side_scratch);
    if (p->side_tickets) cudaFree(p->side_tickets);
    p->ev_fork = p->ev_dres = p->ev_join = p->side_blas = p->side = p->side_ws = NULL;
    p->side_scratch = NULL;
    p->side_tickets = NULL;
}

/* ev marks what stream s has queued so far; a stream told to wait for ev
   runs its later work after that */
static ea_status ea__vcu_mark(void *s, void *ev, ea_error *err) {
    return ea__cuda_check(cudaEventRecord((cudaEvent_t)ev, (cudaStream_t)s), "recording an event", err);
}

static ea_status ea__vcu_after(void *s, void *ev, ea_error *err) {
    return ea__cuda_check(cudaStreamWaitEvent((cudaStream_t)s, (cudaEvent_t)ev, 0), "waiting for an event", err);
}

/* `to` waits for everything `from` has queued so far */
static ea_status ea__vcu_wait(void *from, void *to, void *ev, ea_error *err) {
    ea_status st = ea__vcu_mark(from, ev, err);
    return st == EA_OK ? ea__vcu_after(to, ev, err) : st;
}

static float *ea__vcu_grad(const ea_vit_cuda *d, const float *param) {
    return param ? d->grad + (param - d->params) : NULL;
}

/* A linear layer's backward in the ViT (out = inp·wᵀ + b): dW on the side
   stream (forked here), dinp (NULL: not wanted) on the main one, and the
   bias's column sum into `later` (run at the end of the backward) or, with
   later NULL (dout is the residual gradient), at once on the side stream. */
static ea_status ea__vcu_linear_bwd(ea_vit_cuda *d, ea__colsums *later, float *dinp, const float *w, const float *b,
                                    const float *dout, size_t ldd, const float *inp, int M, int K, int N, ea_error *err) {
    struct ea__vcu *p = d->plan;
    const float one = 1.0f;
    ea_status st = ea__vcu_wait(d->cu->stream, p->side, p->ev_fork, err);
    if (st == EA_OK)
        st = ea__cublas_check(cublasSgemm((cublasHandle_t)p->side_blas, CUBLAS_OP_N, CUBLAS_OP_T, K, N, M, &one, inp, K, dout,
                                          (int)ldd, &one, ea__vcu_grad(d, w), K),
                              "linear backward (weight)", err);
    if (st == EA_OK && b && !later) {
        ea__colsums now;
        now.count = now.blocks = 0;
        st = ea__colsum_add(d->cu, &now, ea__vcu_grad(d, b), NULL, dout, ldd, NULL, NULL, NULL, M, N, err);
        if (st == EA_OK) st = ea__colsum_go(p->side, p->side_scratch, EA_CU_SCRATCH / 4, p->side_tickets, &now, err);
    }
    if (st == EA_OK && dinp) st = ea__cu_linear_bwd(d->cu, dinp, NULL, NULL, dout, ldd, NULL, w, M, K, N, err);
    if (st == EA_OK && b && later)
        st = ea__colsum_add(d->cu, later, ea__vcu_grad(d, b), NULL, dout, ldd, NULL, NULL, NULL, M, N, err);
    return st;
}

/* The gradient of the batch's MSE against p->target, every parameter's
   into d->grad (ea_params' layout), after ea__vcu_forward.  The residual
   stream's gradient dres is updated in place: each block's backward reads
   it as d(out), then the layer norms' backward kernels add into it, making
   it d(mid) and then d(block input); the side stream's GEMMs that read it
   are waited for first.  The column sums of gradients nothing changes
   afterwards run as one launch at the end; those of dres on the side
   stream, beside its weight GEMMs.
   Scratch gradients were zeroed. */
static ea_status ea__vcu_backward(ea_vit_cuda *d, int B, ea_error *err) {
    struct ea__vcu *p = d->plan;
    const ea_vit_config *c = &d->cfg;
    ea_cuda *cu = d->cu;
    cudaStream_t s = EA_CU_STREAM(cu);
    int M = B * p->T, D = p->D, kvw = p->Hkv * p->dh, i, hh = p->head_hidden;
    ea__colsums later;
    ea_status st;
    later.count = later.blocks = 0;
    if (p->train_ce) ea__ce_k<<<1, 256, 0, s>>>(p->dy, p->loss, p->y, p->target, B, c->out_dim, p->train_smooth);
    else ea__mse_k<<<1, 256, 0, s>>>(p->dy, p->loss, p->y, p->target, B * c->out_dim);
    st = ea__launched(p->train_ce ? "cross-entropy loss" : "MSE loss", err);
    if (st == EA_OK && hh) {
        st = ea__vcu_linear_bwd(d, &later, p->dhg, p->head2_w, p->head2_b, p->dy, (size_t)c->out_dim, p->hg, B, hh, c->out_dim,
                                err);
        if (st == EA_OK) st = ea_gelu_bwd_cuda(cu, p->dhd, p->dhg, p->hd, (size_t)B * hh, err);
    }
    if (st == EA_OK)
        st = ea__vcu_linear_bwd(d, &later, p->dpool, p->head1_w, p->head1_b, hh ? p->dhd : p->dy,
                                (size_t)(hh ? hh : c->out_dim), p->pool, B, D, hh ? hh : c->out_dim, err);
    if (st == EA_OK && p->cls) /* into row 0 of each image; the other rows stay zero */
        st = ea__cuda_check(cudaMemcpy2DAsync(p->dlnf, (size_t)p->T * D * sizeof(float), p->dpool, D * sizeof(float),
                                              D * sizeof(float), (size_t)B, cudaMemcpyDeviceToDevice, s),
                            "class-token pooling backward", err);
    if (st == EA_OK && !p->cls) {
        ea__mean_tokens_bwd_k<<<ea__blocks((size_t)M * D, 256), 256, 0, s>>>(p->dlnf, p->dpool, B, p->T, D);
        st = ea__launched("token mean backward", err);
    }
    if (st == EA_OK)
        st = ea_layernorm_bwd_cuda(cu, p->dres, NULL, NULL, p->dlnf, p->L[c->depth - 1].out, p->meanf, p->rstdf, p->norm_w, M,
                                   D, err);
    if (st == EA_OK)
        st = ea__colsum_add(cu, &later, ea__vcu_grad(d, p->norm_b), ea__vcu_grad(d, p->norm_w), p->dlnf, (size_t)D,
                            p->L[c->depth - 1].out, p->meanf, p->rstdf, M, D, err);
    for (i = c->depth - 1; i >= 0 && st == EA_OK; i--) {
        const ea__vcu_block *L = &p->L[i];
        const float *hin = i ? p->L[i - 1].out : p->h0;
        ea__cu_attn a = ea__attn_args(B, p->T, p->H, p->Hkv, p->dh, c->causal);
        a.pat = L->pat;
        /* h' = m + GELU(LN2(m)·W1ᵀ + b1)·W2ᵀ + b2 */
        st = ea__vcu_linear_bwd(d, NULL, L->dg, L->w2, L->b2, p->dres, (size_t)D, L->g, M, p->hidden, D, err);
        if (st == EA_OK) st = ea__vcu_mark(p->side, p->ev_dres, err); /* dW2 reads dres */
        if (st == EA_OK) st = ea_gelu_bwd_cuda(cu, L->df, L->dg, L->f, (size_t)M * p->hidden, err);
        if (st == EA_OK)
            st = ea__vcu_linear_bwd(d, &later, L->dln2, L->w1, L->b1, L->df, (size_t)p->hidden, L->ln2, M, D, p->hidden, err);
        if (st == EA_OK) st = ea__vcu_after(s, p->ev_dres, err); /* before dres changes */
        if (st == EA_OK)
            st = ea_layernorm_bwd_cuda(cu, p->dres, NULL, NULL, L->dln2, L->mid, L->mean2, L->rstd2, L->ln2_w, M, D, err);
        if (st == EA_OK)
            st = ea__colsum_add(cu, &later, ea__vcu_grad(d, L->ln2_b), ea__vcu_grad(d, L->ln2_w), L->dln2, (size_t)D, L->mid,
                                L->mean2, L->rstd2, M, D, err);
        /* m = h + attention(LN1(h))·W_oᵀ + b_o */
        if (st == EA_OK) st = ea__vcu_linear_bwd(d, NULL, L->datt, L->wo, L->bo, p->dres, (size_t)D, L->att, M, D, D, err);
        if (st == EA_OK) st = ea__vcu_mark(p->side, p->ev_dres, err); /* dW_o reads dres */
        a.q = L->qkv; a.k = L->qkv + D; a.v = L->qkv + D + kvw;
        a.dq = L->dqkv; a.dk = L->dqkv + D; a.dv = L->dqkv + D + kvw;
        a.ldq = a.ldkv = (size_t)p->Wq;
        a.o = L->att; a.lse = L->lse; a.dout = L->datt;
        if (st == EA_OK) st = ea__attn_bwd_launch(cu, &a, err);
        if (st == EA_OK)
            st = ea__vcu_linear_bwd(d, &later, L->dln1, L->wq, L->bq, L->dqkv, (size_t)p->Wq, L->ln1, M, D,
                                    p->merged ? p->Wq : D, err);
        if (st == EA_OK && !p->merged)
            st = ea__vcu_linear_bwd(d, &later, L->dln1, L->wk, L->bk, L->dqkv + D, (size_t)p->Wq, L->ln1, M, D, kvw, err);
        if (st == EA_OK && !p->merged)
            st = ea__vcu_linear_bwd(d, &later, L->dln1, L->wv, L->bv, L->dqkv + D + kvw, (size_t)p->Wq, L->ln1, M, D, kvw, err);
        if (st == EA_OK) st = ea__vcu_after(s, p->ev_dres, err);
        if (st == EA_OK)
            st = ea_layernorm_bwd_cuda(cu, p->dres, NULL, NULL, L->dln1, hin, L->mean1, L->rstd1, L->ln1_w, M, D, err);
        if (st == EA_OK)
            st = ea__colsum_add(cu, &later, ea__vcu_grad(d, L->ln1_b), ea__vcu_grad(d, L->ln1_w), L->dln1, (size_t)D, hin,
                                L->mean1, L->rstd1, M, D, err);
    }
    /* h0 = cols·W_patchᵀ + b + pos (and row 0 = cls + pos[0]) */
    if (st == EA_OK) {
        ea__sum_batch_k<<<ea__blocks((size_t)p->T * D, 128), 128, 0, s>>>(ea__vcu_grad(d, p->pos), p->dres, B, p->T * D,
                                                                          (size_t)p->T * D);
        st = ea__launched("position table backward", err);
    }
    if (st == EA_OK && p->cls) {
        ea__sum_batch_k<<<ea__blocks((size_t)D, 128), 128, 0, s>>>(ea__vcu_grad(d, p->cls), p->dres, B, D, (size_t)p->T * D);
        st = ea__launched("class token backward", err);
    }
    if (st == EA_OK && !p->cls)
        st = ea__vcu_linear_bwd(d, NULL, NULL, p->patch_w, p->patch_b, p->dres, (size_t)D, p->cols, M, p->P, D, err);
    if (st == EA_OK && p->cls) { /* the patch rows, gathered into block 0's datt (read by nothing now) */
        float *dp = p->L[0].datt;
        st = ea__cuda_check(cudaMemcpy2DAsync(dp, (size_t)p->Np * D * sizeof(float), p->dres + D, (size_t)p->T * D * sizeof(float),
                                              (size_t)p->Np * D * sizeof(float), (size_t)B, cudaMemcpyDeviceToDevice, s),
                            "gathering the patch gradients", err);
        if (st == EA_OK)
            st = ea__vcu_linear_bwd(d, NULL, NULL, p->patch_w, p->patch_b, dp, (size_t)D, p->cols, B * p->Np, p->P, D, err);
    }
    if (st == EA_OK) st = ea__colsum_run(cu, &later, err);
    if (st == EA_OK) st = ea__vcu_wait(p->side, s, p->ev_join, err); /* every weight gradient is in */
    return st;
}

/* A training step's device work once x, the targets and p->hp are in
   place, or part of it: EA__VCU_GRADS zeroes what the backward accumulates
   into, runs forward and backward and (several ranks) weights the gradient
   for the all-reduce; EA__VCU_UPDATE the gradient's norm (clip > 0) and
   AdamW with the constants at p->hp; both, the whole step. */
#define EA__VCU_GRADS 1
#define EA__VCU_UPDATE 2
static ea_status ea__vcu_train_work(ea_vit_cuda *d, int B, float clip, int parts, ea_error *err) {
    struct ea__vcu *p = d->plan;
    cudaStream_t s = EA_CU_STREAM(d->cu);
    ea_status st = EA_OK;
    if (parts & EA__VCU_GRADS) {
        st = ea__cuda_check(cudaMemsetAsync(p->gact, 0, p->gzero_n * sizeof(float), s), "zeroing the gradients", err);
        if (st == EA_OK) st = ea__cuda_check(cudaMemsetAsync(d->grad, 0, d->n * sizeof(float), s), "zeroing the gradients", err);
        if (st == EA_OK) st = ea__vcu_forward(d, B, err);
        if (st == EA_OK) st = ea__vcu_backward(d, B, err);
        if (st == EA_OK && p->dist.size > 1) {
            ea__gscale_k<<<ea__blocks(d->n, 256), 256, 0, s>>>(d->grad, d->n, p->hp);
            st = ea__launched("weighting the gradient", err);
        }
    }
    if (!(parts & EA__VCU_UPDATE)) return st;
    if (st == EA_OK && clip > 0.0f) st = ea__cu_grad_norm(d->cu, p->gnorm, p->norm_part, d->grad, d->n, err);
    if (st == EA_OK) st = ea__cu_adamw(d->cu, d->params, d->grad, d->m, d->v, d->n, NULL, p->hp, clip > 0.0f ? p->gnorm : NULL, clip, err);
    return st;
}

static void ea__vcu_drop_graph(void **exec) {
    if (*exec) cudaGraphExecDestroy((cudaGraphExec_t)*exec);
    *exec = NULL;
}

/* Record the forward (train = 0) or the parts of a training step at batch
   B (train: EA__VCU_GRADS, EA__VCU_UPDATE or both; nothing runs) and
   instantiate it into *exec, replacing what was there. */
static ea_status ea__vcu_capture(ea_vit_cuda *d, int B, int train, float clip, void **exec, ea_error *err) {
    cudaStream_t s = EA_CU_STREAM(d->cu);
    cudaGraph_t g = NULL;
    cudaGraphExec_t ex = NULL;
    ea_status st, st2;
    ea__vcu_drop_graph(exec);
    if ((st = ea__cuda_check(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal), "capturing a graph", err)) != EA_OK)
        return st;
    st = train ? ea__vcu_train_work(d, B, clip, train, err) : ea__vcu_forward(d, B, err);
    st2 = ea__cuda_check(cudaStreamEndCapture(s, &g), "capturing a graph", st == EA_OK ? err : NULL);
    if (st == EA_OK) st = st2;
    if (st == EA_OK) st = ea__cuda_check(cudaGraphInstantiateWithFlags(&ex, g, 0), "instantiating a graph", err);
    if (g) cudaGraphDestroy(g);
    if (st == EA_OK) *exec = (void *)ex;
    return st;
}

/* --- the fused forward's set-up (ea__fz_k above) ----------------------------
   Init lays out its shared memory and weights and asks the GPU how many
   blocks can be resident at once (a cooperative launch needs them all):
   fused_max images make that many tasks.  A model too big for one block's
   shared memory, or a GPU without cooperative launches, keeps fused_max 0
   and the graph. */
static size_t ea__fz_max3(size_t a, size_t b, size_t c) { return a > b ? (a > c ? a : c) : (b > c ? b : c); }

static ea_status ea__vcu_fused_init(ea_vit_cuda *d, ea_error *err) {
    struct ea__vcu *p = d->plan;
    ea__fz *a = &p->fz;
    const size_t R = EA_CU_FZ_ROWS;
    int i, kvw = p->Hkv * p->dh, n1 = p->head_hidden ? p->head_hidden : d->cfg.out_dim, coop = 0, optin = 0, sms = 0, occ = 0;
    int tasks = (p->T + EA_CU_FZ_ROWS - 1) / EA_CU_FZ_ROWS, max = 0, major = 0, ptx = 0, fused, fb;
    size_t n_in, at = 0, layer = (size_t)p->D * p->Wq + p->Wq + (size_t)p->D * p->D + 2 * (size_t)p->D * p->hidden;
    size_t table = (d->cfg.depth * sizeof(ea__fz_layer) + 255) / 256 * 64, frags = 0;
    ea_status st;
    float *w;
    memset(a, 0, sizeof *a);
    a->T = p->T; a->P = p->P; a->D = p->D; a->H = p->H; a->Hkv = p->Hkv; a->dh = p->dh; a->Wq = p->Wq;
    a->hidden = p->hidden; a->head_hidden = p->head_hidden; a->out_dim = d->cfg.out_dim; a->depth = d->cfg.depth;
    a->cls = p->cls != NULL; a->causal = d->cfg.causal;
    a->chans = d->cfg.in_chans; a->img = d->cfg.img_size; a->patch = d->cfg.patch;
    a->scale = ea__attn_args(1, p->T, p->H, p->Hkv, p->dh, 0).scale;
    a->o_x = at; at += R * p->D;
    a->o_a = at; at += R * (size_t)(p->D > p->P ? p->D : p->P);
    a->o_q = at; at += R * p->D;
    a->o_att = at; at += R * p->D;
    a->o_mid = at; at += R * p->D;
    a->o_hid = at; at += R * (size_t)(p->hidden > n1 ? p->hidden : n1);
    a->o_part = at; at += R * EA_CU_FZ_THREADS;
    a->o_kv = at; at += (size_t)p->T * (2 * kvw + 1 > p->D ? 2 * kvw + 1 : p->D); /* or the final norm's rows */
    a->o_s = at; at += R * p->H * (size_t)p->T;
    a->o_vec = at; /* a stage's vectors: the embedding's, a layer's or the head's biases */
    at += ea__fz_max3((R + 4) * p->D + p->Wq, 6 * (size_t)p->D + p->hidden + p->Wq, (size_t)n1 + d->cfg.out_dim);
    a->smem = at;
    a->mt = (p->T + 15) / 16 <= 4 ? 4 : 6; /* ea__fb_k: x [mt·16, D], u [.., max(D, P)], big [.., max(Wq, hidden)], rows padded by 4 */
    a->ldx = p->D + 4;
    a->ldu = (p->D > p->P ? p->D : p->P) + 4;
    a->ldb = (p->Wq > p->hidden ? p->Wq : p->hidden) + 4;
    a->fb_smem = 16 * (size_t)a->mt * (a->ldx + a->ldu + a->ldb);
    d->fused_max = 0;
    d->blockwise = 0;
    if ((st = ea__cuda_check(cudaDeviceGetAttribute(&coop, cudaDevAttrCooperativeLaunch, d->cu->device), "fused forward", err)) ||
        (st = ea__cuda_check(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, d->cu->device),
                             "fused forward", err)) ||
        (st = ea__cuda_check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, d->cu->device), "fused forward", err)))
        return st;
    fused = coop && a->smem * sizeof(float) <= (size_t)optin;
    if (fused && ((st = ea__cuda_check(cudaFuncSetAttribute((const void *)ea__fz_k, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                            (int)(a->smem * sizeof(float))), "fused forward", err)) ||
                  (st = ea__cuda_check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, ea__fz_k, EA_CU_FZ_THREADS,
                                                                                    a->smem * sizeof(float)), "fused forward", err))))
        return st;
    p->fz_grid = occ * sms;
    fused = fused && p->fz_grid / tasks >= 1;
    /* ea__fb_k: tensor cores, at most EA_CU_FB_MT tiles of rows, widths in
       whole k-steps and n-tiles, heads up to 32 wide, and room in big for
       the head's pooled row, hidden row and partial sums */
    fb = ea__tc_arch(d->cu, &major, &ptx) && p->T <= 16 * EA_CU_FB_MT && p->D % 8 == 0 && p->P % 8 == 0 && p->Wq % 8 == 0 &&
         p->hidden % 8 == 0 && p->dh % 4 == 0 && p->dh <= 32 && p->D <= 128 && a->fb_smem * sizeof(float) <= (size_t)optin &&
         (size_t)p->D + n1 + EA_CU_FB_THREADS <= 16 * (size_t)a->mt * a->ldb;
    if (fb && (st = ea__cuda_check(cudaFuncSetAttribute(ea__fb_kernel(p->dh, a->mt), cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                        (int)(a->fb_smem * sizeof(float))), "block-an-image forward", err)))
        return st;
    if (!fused && !fb) return EA_OK;
    if (fb) frags = 2 * ((size_t)d->cfg.depth * (layer - p->Wq) + (size_t)p->P * p->D); /* two floats a weight: hi, lo */
    if ((st = ea_cuda_alloc(d->cu, &p->fz_w, table + frags + d->cfg.depth * layer + (size_t)p->P * p->D + (size_t)p->D * n1 +
                                                 (size_t)p->head_hidden * d->cfg.out_dim, err)) != EA_OK)
        return st;
    a->L = (const ea__fz_layer *)p->fz_w;
    w = p->fz_w + table; /* fragments first: 16-byte aligned */
    for (i = 0; fb && i < d->cfg.depth; i++) {
        ea__fz_layer *L = &p->fzL[i];
        L->fqkv = (const float4 *)w; w += 2 * (size_t)p->D * p->Wq;
        L->fo = (const float4 *)w; w += 2 * (size_t)p->D * p->D;
        L->f1 = (const float4 *)w; w += 2 * (size_t)p->D * p->hidden;
        L->f2 = (const float4 *)w; w += 2 * (size_t)p->D * p->hidden;
    }
    if (fb) {
        a->patch_f = (const float4 *)w;
        w += 2 * (size_t)p->P * p->D;
    }
    for (i = 0; i < d->cfg.depth; i++) {
        const ea__vcu_block *B = &p->L[i];
        ea__fz_layer *L = &p->fzL[i];
        L->ln1_w = B->ln1_w; L->ln1_b = B->ln1_b; L->ln2_w = B->ln2_w; L->ln2_b = B->ln2_b;
        L->bo = B->bo; L->b1 = B->b1; L->b2 = B->b2;
        L->qkv = B->qkv;
        L->pat = B->pat;
        L->wqkv = w; w += (size_t)p->D * p->Wq;
        L->bqkv = w; w += p->Wq;
        L->wo = w; w += (size_t)p->D * p->D;
        L->w1 = w; w += (size_t)p->D * p->hidden;
        L->w2 = w; w += (size_t)p->D * p->hidden;
    }
    a->patch_wt = w; w += (size_t)p->P * p->D;
    a->head1_wt = w; w += (size_t)p->D * n1;
    a->head2_wt = w;
    a->in = p->in; a->h = p->h0; a->lnf = p->lnf; a->y = p->y;
    a->patch_b = p->patch_b; a->pos = p->pos; a->cls_tok = p->cls; a->norm_w = p->norm_w; a->norm_b = p->norm_b;
    a->head1_b = p->head1_b; a->head2_b = p->head2_b;
    if ((st = ea_cuda_put_bytes(d->cu, p->fz_w, p->fzL, d->cfg.depth * sizeof(ea__fz_layer), err)) != EA_OK) return st;
    p->fz_stale = 1;
    p->fb_ok = d->blockwise = fb;
    if (!fused) return EA_OK;
    n_in = (size_t)d->cfg.in_chans * d->cfg.img_size * d->cfg.img_size;
    max = p->fz_grid / tasks < d->max_batch ? p->fz_grid / tasks : d->max_batch;
    if ((st = ea__cuda_check(cudaHostAlloc((void **)&p->host_in, (size_t)max * n_in * sizeof(float), cudaHostAllocMapped),
                             "pinned input of the fused forward", err)) != EA_OK ||
        (st = ea__cuda_check(cudaHostAlloc((void **)&p->host_y, (size_t)max * d->cfg.out_dim * sizeof(float),
                                           cudaHostAllocMapped), "pinned output of the fused forward", err)) != EA_OK ||
        (st = ea__cuda_check(cudaHostGetDevicePointer((void **)&p->host_in_dev, p->host_in, 0), "mapping", err)) != EA_OK ||
        (st = ea__cuda_check(cudaHostGetDevicePointer((void **)&p->host_y_dev, p->host_y, 0), "mapping", err)) != EA_OK)
        return st;
    d->fused_max = p->fz_cap = max;
    return EA_OK;
}

/* A weight [N, K] transposed into dst [K, ldd] (columns from dst on). */
static ea_status ea__vcu_tr(cudaStream_t s, float *dst, int ldd, const float *src, int N, int K, ea_error *err) {
    ea__transpose_k<<<ea__blocks((size_t)N * K, 256), 256, 0, s>>>(dst, ldd, src, N, K);
    return ea__launched("packing the fused forward's weights", err);
}

/* A weight [N, K] as ea__fb_k's fragments */
static ea_status ea__vcu_frags(cudaStream_t s, float4 *dst, const float *src, int N, int K, ea_error *err) {
    ea__frag_pack_k<<<ea__blocks((size_t)N * K / 2, 256), 256, 0, s>>>(dst, src, N, K, K);
    return ea__launched("packing the block-an-image forward's weights", err);
}

/* n biases to dst (zeros for a layer without them) */
static ea_status ea__vcu_bias(cudaStream_t s, float *dst, const float *src, int n, ea_error *err) {
    return ea__cuda_check(src ? cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyDeviceToDevice, s)
                              : cudaMemsetAsync(dst, 0, n * sizeof(float), s),
                          "packing the fused forward's biases", err);
}

/* The fused forward's weights from the current parameters. */
static ea_status ea__vcu_pack(ea_vit_cuda *d, ea_error *err) {
    struct ea__vcu *p = d->plan;
    cudaStream_t s = EA_CU_STREAM(d->cu);
    int i, D = p->D, kvw = p->Hkv * p->dh, n1 = p->head_hidden ? p->head_hidden : d->cfg.out_dim;
    ea_status st = EA_OK;
    for (i = 0; i < d->cfg.depth && st == EA_OK; i++) {
        const ea__vcu_block *B = &p->L[i];
        ea__fz_layer *L = &p->fzL[i];
        float *wqkv = (float *)L->wqkv, *bqkv = (float *)L->bqkv;
        st = ea__vcu_tr(s, wqkv, p->Wq, B->wq, p->merged ? p->Wq : D, D, err);
        if (st == EA_OK) st = ea__vcu_bias(s, bqkv, B->bq, p->merged ? p->Wq : D, err);
        if (st == EA_OK && !p->merged) st = ea__vcu_tr(s, wqkv + D, p->Wq, B->wk, kvw, D, err);
        if (st == EA_OK && !p->merged) st = ea__vcu_bias(s, bqkv + D, B->bk, kvw, err);
        if (st == EA_OK && !p->merged) st = ea__vcu_tr(s, wqkv + D + kvw, p->Wq, B->wv, kvw, D, err);
        if (st == EA_OK && !p->merged) st = ea__vcu_bias(s, bqkv + D + kvw, B->bv, kvw, err);
        if (st == EA_OK) st = ea__vcu_tr(s, (float *)L->wo, D, B->wo, D, D, err);
        if (st == EA_OK) st = ea__vcu_tr(s, (float *)L->w1, p->hidden, B->w1, p->hidden, D, err);
        if (st == EA_OK) st = ea__vcu_tr(s, (float *)L->w2, D, B->w2, D, p->hidden, err);
    }
    for (i = 0; i < d->cfg.depth && st == EA_OK && p->fb_ok; i++) { /* ea__fb_k's fragments */
        const ea__vcu_block *B = &p->L[i];
        ea__fz_layer *L = &p->fzL[i];
        float4 *fq = (float4 *)L->fqkv;
        size_t ks = (size_t)D / 8 * 32; /* float4s an n-tile of 8 outputs over D inputs */
        st = ea__vcu_frags(s, fq, B->wq, p->merged ? p->Wq : D, D, err);
        if (st == EA_OK && !p->merged) st = ea__vcu_frags(s, fq + D / 8 * ks, B->wk, kvw, D, err);
        if (st == EA_OK && !p->merged) st = ea__vcu_frags(s, fq + (D + kvw) / 8 * ks, B->wv, kvw, D, err);
        if (st == EA_OK) st = ea__vcu_frags(s, (float4 *)L->fo, B->wo, D, D, err);
        if (st == EA_OK) st = ea__vcu_frags(s, (float4 *)L->f1, B->w1, p->hidden, D, err);
        if (st == EA_OK) st = ea__vcu_frags(s, (float4 *)L->f2, B->w2, D, p->hidden, err);
    }
    if (st == EA_OK && p->fb_ok) st = ea__vcu_frags(s, (float4 *)p->fz.patch_f, p->patch_w, D, p->P, err);
    if (st == EA_OK) st = ea__vcu_tr(s, (float *)p->fz.patch_wt, D, p->patch_w, D, p->P, err);
    if (st == EA_OK) st = ea__vcu_tr(s, (float *)p->fz.head1_wt, n1, p->head1_w, n1, D, err);
    if (st == EA_OK && p->head_hidden)
        st = ea__vcu_tr(s, (float *)p->fz.head2_wt, d->cfg.out_dim, p->head2_w, d->cfg.out_dim, p->head_hidden, err);
    if (st == EA_OK) p->fz_stale = 0;
    return st;
}

/* The forward of B <= fused_max images as one launch, from in to y (device
   pointers, or host memory mapped into the device's space). */
static ea_status ea__vcu_fused(ea_vit_cuda *d, const float *in, float *y, int B, ea_error *err) {
    struct ea__vcu *p = d->plan;
    int tasks = B * ((p->T + EA_CU_FZ_ROWS - 1) / EA_CU_FZ_ROWS);
    void *args[2];
    ea__fz f = p->fz;
    ea_status st = p->fz_stale ? ea__vcu_pack(d, err) : EA_OK;
    f.in = in;
    f.y = y;
    args[0] = &f;
    args[1] = &B;
    if (st != EA_OK) return st;
    return ea__cuda_check(cudaLaunchCooperativeKernel((const void *)ea__fz_k, tasks < p->fz_grid ? tasks : p->fz_grid,
                                                      EA_CU_FZ_THREADS, args, p->fz.smem * sizeof(float), EA_CU_STREAM(d->cu)),
                          "the fused forward", err);
}

/* Each layer's pattern for local (a band of half-width window) and bigbird
   (block band, global blocks, and random key blocks drawn as the CPU row
   draws them: from the layer's seed and the token count), as 8.11 and
   8.12 build them; the random blocks go to device memory. */
static ea_status ea__vcu_patterns(ea_vit_cuda *d, const ea_vit *m, int local, int bigbird, ea_error *err) {
    struct ea__vcu *p = d->plan;
    int i, nblk = 0;
    ea_ctx ctx;
    ea_status st = EA_OK;
    if (!local && !bigbird) return EA_OK;
    ea_ctx_init(&ctx, 0);
    for (i = 0; i < d->cfg.depth && st == EA_OK; i++) {
        const ea_attn *a = &m->blocks[i].attn;
        ea__pattern *q = &p->L[i].pat.p;
        const int *rand;
        p->L[i].pat.on = 1;
        memset(q, 0, sizeof *q);
        if (local) {
            q->window = ea__opt(a->cfg.opt.window, 8);
            continue;
        }
        q->window = -1;
        q->block = ea__opt(a->cfg.opt.block, 8);
        q->block_window = 1;
        q->n_global = ea__opt(a->cfg.opt.global, 1) * q->block;
        q->n_random = ea__opt(a->cfg.opt.random, 1);
        nblk = (p->T + q->block - 1) / q->block;
        if (!p->pat_rand && (st = ea__cuda_check(cudaMalloc((void **)&p->pat_rand, (size_t)d->cfg.depth * nblk * q->n_random *
                                                                                       sizeof(int) + sizeof(int)),
                                                 "bigbird's random blocks", err)) != EA_OK)
            break;
        if (!(rand = ea__random_blocks(&ctx, q, p->T, a->seed))) {
            st = ea_error_set(err, EA_ERR_NOMEM, "vit_cuda_init: out of memory for bigbird's random blocks");
            break;
        }
        q->rand = p->pat_rand + (size_t)i * nblk * q->n_random;
        st = ea_cuda_put_bytes(d->cu, (void *)q->rand, rand, (size_t)nblk * q->n_random * sizeof(int), err);
        ea_ctx_reset(&ctx);
    }
    ea_ctx_free(&ctx);
    return st == EA_OK ? ea_cuda_sync(d->cu, err) : st;
}

/* The forward of B images a block an image (ea__fb_k), from in to y. */
static ea_status ea__vcu_blockwise(ea_vit_cuda *d, const float *in, float *y, int B, ea_error *err) {
    struct ea__vcu *p = d->plan;
    ea__fz f = p->fz;
    ea_status st = p->fz_stale ? ea__vcu_pack(d, err) : EA_OK;
    cudaStream_t s = EA_CU_STREAM(d->cu);
    if (st != EA_OK) return st;
    f.in = in;
    f.y = y;
    void *args[2];
    args[0] = &f;
    args[1] = &B;
    return ea__cuda_check(cudaLaunchKernel(ea__fb_kernel(p->dh, f.mt), dim3((unsigned)B), dim3(EA_CU_FB_THREADS), args,
                                           f.fb_smem * sizeof(float), s), "the block-an-image forward", err);
}

static void ea__vcu_parts_free(struct ea__vcu *p) {
    int k;
    for (k = 0; k < EA_CU_PARTS; k++)
        if (p->ev_part[k]) cudaEventDestroy((cudaEvent_t)p->ev_part[k]);
    if (p->copy_stream) cudaStreamDestroy((cudaStream_t)p->copy_stream);
    memset(p->ev_part, 0, sizeof p->ev_part);
    p->copy_stream = NULL;
}

/* Predict a block an image from host memory: the images go over in parts
   on a stream of their own (a copy from pageable memory returns once it
   is staged), and each part's kernel waits for its copy only, so the
   copy of part k + 1 runs while part k computes: the 8 MiB of a batch of
   1,024 tracker images no longer comes before the whole batch's work.
   Each image's outputs depend on its own pixels only, so the parts give
   the bits the whole batch would. */
static ea_status ea__vcu_predict_parts(ea_vit_cuda *d, const float *x, float *y, int B, ea_error *err) {
    struct ea__vcu *p = d->plan;
    const ea_vit_config *c = &d->cfg;
    size_t img = (size_t)c->in_chans * c->img_size * c->img_size;
    cudaStream_t s = EA_CU_STREAM(d->cu), cs;
    int k, b0 = 0, parts = B / EA_CU_PART_MIN < EA_CU_PARTS ? B / EA_CU_PART_MIN : EA_CU_PARTS;
    ea_status st = EA_OK;
    if (!p->copy_stream) {
        cudaEvent_t e;
        if ((st = ea__cuda_check(cudaStreamCreateWithFlags(&cs, cudaStreamNonBlocking), "creating a stream", err)) != EA_OK)
            return st;
        p->copy_stream = (void *)cs;
        for (k = 0; k < EA_CU_PARTS; k++) {
            if ((st = ea__cuda_check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "creating an event", err)) != EA_OK)
                return st; /* (what was made is freed by ea_vit_cuda_free) */
            p->ev_part[k] = (void *)e;
        }
    }
    cs = (cudaStream_t)p->copy_stream;
    if (parts < 1) parts = 1;
    st = ea__vcu_wait((void *)s, (void *)cs, p->ev_part[0], err); /* work queued before reads the input no more */
    for (k = 0; k < parts && st == EA_OK; k++) {
        int b1 = (int)((long long)B * (k + 1) / parts);
        st = ea__cuda_check(cudaMemcpyAsync(p->in + (size_t)b0 * img, x + (size_t)b0 * img, (size_t)(b1 - b0) * img * sizeof(float),
                                            cudaMemcpyHostToDevice, cs), "copying images to the device", err);
        if (st == EA_OK) st = ea__vcu_wait((void *)cs, (void *)s, p->ev_part[k], err);
        if (st == EA_OK) st = ea__vcu_blockwise(d, p->in + (size_t)b0 * img, p->y + (size_t)b0 * c->out_dim, b1 - b0, err);
        b0 = b1;
    }
    if (st == EA_OK) st = ea_cuda_get(d->cu, y, p->y, (size_t)B * c->out_dim, err);
    return st == EA_OK ? ea_cuda_sync(d->cu, err) : st;
}

extern "C" {

EA_API ea_status ea_vit_cuda_init(ea_vit_cuda *d, ea_cuda *cu, const ea_vit *m, int max_batch, ea_error *err) {
    static const char *const rows[] = {"mha", "single", "local", "bigbird", "mha-sep", "mqa", "gqa"};
    struct ea__vcu *p;
    const ea_vit_config *c;
    const ea_attn *a0;
    int i, row = -1;
    ea_status st;
    if (!d) return ea_error_set(err, EA_ERR_ARG, "vit_cuda_init: NULL model");
    memset(d, 0, sizeof *d);
    if (!cu || !m || !m->params.data) return ea_error_set(err, EA_ERR_ARG, "vit_cuda_init: NULL CUDA handle or host model");
    c = &m->cfg;
    a0 = &m->blocks[0].attn;
    for (i = 0; i < 7; i++)
        if (!strcmp(c->attn, rows[i])) row = i;
    if (c->host != EA_HOST_VIT || (c->pool != EA_POOL_MEAN && c->pool != EA_POOL_CLS) || row < 0)
        return ea_error_set(err, EA_ERR_CONFIG,
                            "vit_cuda_init: the CUDA path runs the ViT (mean or class-token pooling) with attention mha, "
                            "single, local, bigbird, mha-sep, mqa or gqa; this model is the %s host with '%s'",
                            c->host == EA_HOST_VIT ? "vit" : c->host == EA_HOST_MLP ? "mlp" : "cnn", c->attn);
    if (c->opt.time || c->opt.cache_window || m->blocks[0].moe.experts)
        return ea_error_set(err, EA_ERR_CONFIG,
                            "vit_cuda_init: time in attention, windowed caches and mixture-of-experts blocks have no "
                            "CUDA kernels yet");
    if (max_batch < 1 || (double)max_batch * c->n_heads * ea__vit_tokens(c) > 2147483647.0 / 32.0)
        return ea_error_set(err, EA_ERR_ARG, "vit_cuda_init: max_batch %d; expected 1 .. %d", max_batch,
                            (int)(2147483647.0 / 32.0 / ((double)c->n_heads * ea__vit_tokens(c))));
    if (a0->head_dim > 32 * EA_CU_DH_LANES)
        return ea_error_set(err, EA_ERR_CONFIG, "vit_cuda_init: head width %d; the CUDA attention takes up to %d",
                            a0->head_dim, 32 * EA_CU_DH_LANES);
    p = (struct ea__vcu *)EFFATTN_MALLOC(sizeof *p);
    if (!p) return ea_error_set(err, EA_ERR_NOMEM, "vit_cuda_init: out of memory");
    ea__short_limits(); /* before a graph capture needs them */
    ea__tf32_prepare();
    memset(p, 0, sizeof *p);
    d->cu = cu;
    d->cfg = *c;
    d->max_batch = max_batch;
    d->plan = p;
    d->n = m->params.n;
    ea_dist_single(&p->dist);
    p->T = ea__vit_tokens(c);
    p->Np = (c->img_size / c->patch) * (c->img_size / c->patch);
    p->P = c->in_chans * c->patch * c->patch;
    p->D = c->dim;
    p->H = a0->cfg.n_heads;
    p->Hkv = a0->kv_heads;
    p->dh = a0->head_dim;
    p->Wq = p->D + 2 * p->Hkv * p->dh;
    p->hidden = c->mlp_hidden;
    p->head_hidden = c->head_hidden;
    p->merged = row < 4; /* mha, single, local, bigbird: one QKV projection */
    d->act_n = ea__vcu_carve(p, c, max_batch, NULL);
    if ((st = ea_cuda_alloc(cu, &d->params, 4 * d->n, err)) != EA_OK) {
        ea_vit_cuda_free(d);
        return st;
    }
    d->grad = d->params + d->n;
    d->m = d->params + 2 * d->n;
    d->v = d->params + 3 * d->n;
    if ((st = ea_cuda_alloc(cu, &d->act, d->act_n, err)) != EA_OK ||
        (st = ea_cuda_put(cu, d->params, m->params.data, d->n, err)) != EA_OK ||
        (st = ea_cuda_put(cu, d->m, m->params.m, d->n, err)) != EA_OK ||
        (st = ea_cuda_put(cu, d->v, m->params.v, d->n, err)) != EA_OK ||
        (st = ea__cuda_check(cudaMemsetAsync(d->grad, 0, d->n * sizeof(float), EA_CU_STREAM(cu)), "zeroing", err)) != EA_OK ||
        (st = ea_cuda_sync(cu, err)) != EA_OK) {
        ea_vit_cuda_free(d);
        return st;
    }
    ea__vcu_carve(p, c, max_batch, d->act);
    p->patch_w = ea__vcu_param(d, m, m->patch_w);
    p->patch_b = ea__vcu_param(d, m, m->patch_b);
    p->pos = ea__vcu_param(d, m, m->pos);
    p->cls = ea__vcu_param(d, m, m->cls);
    p->norm_w = ea__vcu_param(d, m, m->norm_w);
    p->norm_b = ea__vcu_param(d, m, m->norm_b);
    p->head1_w = ea__vcu_param(d, m, m->head1_w);
    p->head1_b = ea__vcu_param(d, m, m->head1_b);
    p->head2_w = ea__vcu_param(d, m, m->head2_w);
    p->head2_b = ea__vcu_param(d, m, m->head2_b);
    for (i = 0; i < c->depth; i++) {
        const ea_block *bl = &m->blocks[i];
        ea__vcu_block *L = &p->L[i];
        L->ln1_w = ea__vcu_param(d, m, bl->ln1_w); L->ln1_b = ea__vcu_param(d, m, bl->ln1_b);
        L->ln2_w = ea__vcu_param(d, m, bl->ln2_w); L->ln2_b = ea__vcu_param(d, m, bl->ln2_b);
        L->w1 = ea__vcu_param(d, m, bl->fc1_w); L->b1 = ea__vcu_param(d, m, bl->fc1_b);
        L->w2 = ea__vcu_param(d, m, bl->fc2_w); L->b2 = ea__vcu_param(d, m, bl->fc2_b);
        /* slots (8.8, 8.9): merged w[0..1] qkv; separate w[0..1] q, w[4..5] k, w[6..7] v; w[2..3] proj */
        L->wq = ea__vcu_param(d, m, bl->attn.w[0]); L->bq = ea__vcu_param(d, m, bl->attn.w[1]);
        L->wo = ea__vcu_param(d, m, bl->attn.w[2]); L->bo = ea__vcu_param(d, m, bl->attn.w[3]);
        if (!p->merged) {
            L->wk = ea__vcu_param(d, m, bl->attn.w[4]); L->bk = ea__vcu_param(d, m, bl->attn.w[5]);
            L->wv = ea__vcu_param(d, m, bl->attn.w[6]); L->bv = ea__vcu_param(d, m, bl->attn.w[7]);
        }
    }
    if ((st = ea__vcu_patterns(d, m, row == 2, row == 3, err)) != EA_OK || (st = ea__vcu_fused_init(d, err)) != EA_OK)
        ea_vit_cuda_free(d);
    return st;
}

EA_API void ea_vit_cuda_free(ea_vit_cuda *d) {
    if (!d) return;
    ea__vcu_drop_graph(&d->graph);
    ea_cuda_release(d->params);
    ea_cuda_release(d->act);
    if (d->plan) {
        ea__vcu_drop_graph(&d->plan->train_graph);
        ea__vcu_drop_graph(&d->plan->train_graph2);
        ea_cuda_release(d->plan->gact);
        ea_cuda_release(d->plan->fz_w);
        if (d->plan->pat_rand) cudaFree(d->plan->pat_rand);
        if (d->plan->host_in) cudaFreeHost(d->plan->host_in);
        if (d->plan->host_y) cudaFreeHost(d->plan->host_y);
        ea__vcu_side_free(d->plan);
        ea__vcu_parts_free(d->plan);
        EFFATTN_FREE(d->plan->labels);
    }
    EFFATTN_FREE(d->plan);
    memset(d, 0, sizeof *d);
}

EA_API float *ea_vit_cuda_input(const ea_vit_cuda *d) { return d && d->plan ? d->plan->in : NULL; }

EA_API const float *ea_vit_cuda_output(const ea_vit_cuda *d) { return d && d->plan ? d->plan->y : NULL; }

static ea_status ea__vcu_batch(const ea_vit_cuda *d, int B, const char *what, ea_error *err) {
    if (!d || !d->plan) return ea_error_set(err, EA_ERR_ARG, "%s: the model is not initialised", what);
    if (B < 1 || B > d->max_batch)
        return ea_error_set(err, EA_ERR_SHAPE, "%s: batch %d; this model was placed for 1 .. %d images", what, B, d->max_batch);
    return EA_OK;
}

EA_API ea_status ea_vit_cuda_forward(ea_vit_cuda *d, int B, ea_error *err) {
    ea_status st = ea__vcu_batch(d, B, "vit_cuda_forward", err);
    if (st != EA_OK) return st;
    return d->blockwise && d->plan->fb_ok ? ea__vcu_blockwise(d, d->plan->in, d->plan->y, B, err) : ea__vcu_forward(d, B, err);
}

EA_API ea_status ea_vit_cuda_predict(ea_vit_cuda *d, const float *x, float *y, int B, ea_error *err) {
    const ea_vit_config *c;
    ea_status st = ea__vcu_batch(d, B, "vit_cuda_predict", err);
    if (st != EA_OK) return st;
    if (!x || !y) return ea_error_set(err, EA_ERR_ARG, "vit_cuda_predict: NULL images or outputs");
    c = &d->cfg;
    if (B <= d->fused_max && B <= d->plan->fz_cap) { /* through mapped host memory: the kernel reads and writes it */
        struct ea__vcu *p = d->plan;
        memcpy(p->host_in, x, (size_t)B * c->in_chans * c->img_size * c->img_size * sizeof(float));
        st = ea__vcu_fused(d, p->host_in_dev, p->host_y_dev, B, err);
        if (st == EA_OK) st = ea_cuda_sync(d->cu, err);
        if (st == EA_OK) memcpy(y, p->host_y, (size_t)B * c->out_dim * sizeof(float));
        return st;
    }
    if (d->blockwise && d->plan->fb_ok) return ea__vcu_predict_parts(d, x, y, B, err);
    st = ea_cuda_put(d->cu, d->plan->in, x, (size_t)B * c->in_chans * c->img_size * c->img_size, err);
    if (st == EA_OK && (!d->graph || d->graph_batch != B)) {
        st = ea__vcu_capture(d, B, 0, 0.0f, &d->graph, err);
        d->graph_batch = st == EA_OK ? B : 0;
    }
    if (st == EA_OK)
        st = ea__cuda_check(cudaGraphLaunch((cudaGraphExec_t)d->graph, EA_CU_STREAM(d->cu)), "launching the forward", err);
    if (st == EA_OK) st = ea_cuda_get(d->cu, y, d->plan->y, (size_t)B * c->out_dim, err);
    if (st == EA_OK) st = ea_cuda_sync(d->cu, err);
    return st;
}

} /* extern "C" */

/* A training step with targets tgt (ntgt floats: outputs for MSE, labels
   for cross-entropy) already checked; `what` names the caller in errors. */
static ea_status ea__vcu_step(ea_vit_cuda *d, const float *x, const float *tgt, size_t ntgt, int B, int global_B, ea_adamw *opt,
                              float clip, int ce, float smooth, float *loss, const char *what, ea_error *err) {
    struct ea__vcu *p = d->plan;
    const ea_vit_config *c = &d->cfg;
    cudaStream_t s = EA_CU_STREAM(d->cu);
    ea__cu_hp hp;
    ea_status st;
    int split = p->dist.size > 1, global = global_B > 0 ? global_B : B * p->dist.size;
    if (c->dropout > 0.0f)
        return ea_error_set(err, EA_ERR_CONFIG, "%s: dropout %g has no CUDA kernel yet; train with 0", what, (double)c->dropout);
    if (!(clip >= 0.0f)) return ea_error_set(err, EA_ERR_ARG, "%s: clip %g; expected >= 0", what, (double)clip);
    if (global_B < 0)
        return ea_error_set(err, EA_ERR_ARG, "%s: global batch %d; expected >= B (0: B times the ranks)", what, global_B);
    if (global < B || (!split && global != B))
        return ea_error_set(err, EA_ERR_ARG, "%s: %d images of a global batch of %d over %d rank%s; expected %s", what, B, global,
                            p->dist.size, split ? "s" : "", split ? "global_B >= B (0: B times the ranks)" : "global_B 0 or B");
    p->fz_stale = 1; /* the fused forward's weights are copies of the parameters */
    if (!p->gact) {
        p->gact_n = ea__vcu_carve_grads(p, c, d->max_batch, NULL);
        if ((st = ea__vcu_side_init(p, err)) != EA_OK || (st = ea_cuda_alloc(d->cu, &p->gact, p->gact_n, err)) != EA_OK) {
            ea__vcu_side_free(p); /* and again at free: it leaves nothing to free twice */
            return st;
        }
        ea__vcu_carve_grads(p, c, d->max_batch, p->gact);
    }
    /* the step's constants at step + 1, copied (like x and the targets)
       before the replay: pageable memory is staged by the time the copy
       call returns */
    opt->step++;
    hp = ea__adamw_hp(opt);
    hp.gscale = (float)B / (float)global; /* as ea_dist_grads weights a rank's share */
    st = ea_cuda_put(d->cu, p->in, x, (size_t)B * c->in_chans * c->img_size * c->img_size, err);
    if (st == EA_OK) st = ea_cuda_put(d->cu, p->target, tgt, ntgt, err);
    if (st == EA_OK)
        st = ea__cuda_check(cudaMemcpyAsync(p->hp, &hp, sizeof hp, cudaMemcpyHostToDevice, s), "copying to the device", err);
    if (st == EA_OK && (!p->train_graph || p->train_batch != B || p->train_clip != clip || p->train_ce != ce ||
                        p->train_smooth != smooth || (split && !p->train_graph2))) {
        p->train_ce = ce; /* what the backward's loss reads while it is captured */
        p->train_smooth = smooth;
        ea__vcu_drop_graph(&p->train_graph2);
        st = ea__vcu_capture(d, B, split ? EA__VCU_GRADS : EA__VCU_GRADS | EA__VCU_UPDATE, clip, &p->train_graph, err);
        if (st == EA_OK && split) st = ea__vcu_capture(d, B, EA__VCU_UPDATE, clip, &p->train_graph2, err);
        p->train_batch = st == EA_OK ? B : 0;
        p->train_clip = clip;
    }
    if (st == EA_OK) st = ea__cuda_check(cudaGraphLaunch((cudaGraphExec_t)p->train_graph, s), "launching a training step", err);
    if (st == EA_OK && split) {
        /* the sum over ranks, between the gradient and the update; the
           parameters are untouched until it returns */
        st = p->dist.allreduce(p->dist.user, d->grad, d->n, err);
        if (st == EA_OK)
            st = ea__cuda_check(cudaGraphLaunch((cudaGraphExec_t)p->train_graph2, s), "launching a training step", err);
    }
    if (st != EA_OK) opt->step--; /* nothing was updated */
    if (st == EA_OK && loss) {
        st = ea_cuda_get(d->cu, loss, p->loss, 1, err);
        if (st == EA_OK) st = ea_cuda_sync(d->cu, err);
    }
    return st;
}

extern "C" {

EA_API ea_status ea_vit_cuda_train_step(ea_vit_cuda *d, const float *x, const float *t, int B, int global_B, ea_adamw *opt,
                                        float clip, float *loss, ea_error *err) {
    ea_status st = ea__vcu_batch(d, B, "vit_cuda_train_step", err);
    if (st != EA_OK) return st;
    if (!x || !t || !opt) return ea_error_set(err, EA_ERR_ARG, "vit_cuda_train_step: NULL images, targets or optimizer");
    return ea__vcu_step(d, x, t, (size_t)B * d->cfg.out_dim, B, global_B, opt, clip, 0, 0.0f, loss, "vit_cuda_train_step", err);
}

EA_API ea_status ea_vit_cuda_train_step_ce(ea_vit_cuda *d, const float *x, const int *labels, int B, int global_B,
                                           ea_adamw *opt, float clip, float smoothing, float *loss, ea_error *err) {
    struct ea__vcu *p;
    int i;
    ea_status st = ea__vcu_batch(d, B, "vit_cuda_train_step_ce", err);
    if (st != EA_OK) return st;
    if (!x || !labels || !opt) return ea_error_set(err, EA_ERR_ARG, "vit_cuda_train_step_ce: NULL images, labels or optimizer");
    if (!(smoothing >= 0.0f && smoothing <= 1.0f))
        return ea_error_set(err, EA_ERR_ARG, "vit_cuda_train_step_ce: label smoothing %g; expected 0 .. 1", (double)smoothing);
    p = d->plan;
    if (!p->labels && !(p->labels = (float *)EFFATTN_MALLOC((size_t)d->max_batch * sizeof(float))))
        return ea_error_set(err, EA_ERR_NOMEM, "vit_cuda_train_step_ce: out of memory");
    for (i = 0; i < B; i++) {
        if (labels[i] < 0 || labels[i] >= d->cfg.out_dim)
            return ea_error_set(err, EA_ERR_ARG, "vit_cuda_train_step_ce: label %d of image %d; expected 0 .. %d", labels[i], i,
                                d->cfg.out_dim - 1);
        p->labels[i] = (float)labels[i]; /* exact: far below 2^24 */
    }
    return ea__vcu_step(d, x, p->labels, (size_t)B, B, global_B, opt, clip, 1, smoothing, loss, "vit_cuda_train_step_ce", err);
}

EA_API ea_status ea_vit_cuda_dist(ea_vit_cuda *d, const ea_dist *dist, ea_error *err) {
    if (!d || !d->plan || !dist) return ea_error_set(err, EA_ERR_ARG, "vit_cuda_dist: need a placed model and a distribution");
    if (dist->size < 1 || dist->rank < 0 || dist->rank >= dist->size)
        return ea_error_set(err, EA_ERR_ARG, "vit_cuda_dist: rank %d of %d processes; expected 0 <= rank < size", dist->rank,
                            dist->size);
    if (dist->size > 1 && !dist->allreduce)
        return ea_error_set(err, EA_ERR_ARG, "vit_cuda_dist: %d processes but no allreduce function", dist->size);
    d->plan->dist = *dist;
    ea__vcu_drop_graph(&d->plan->train_graph); /* the next step captures the split (or the whole) step */
    ea__vcu_drop_graph(&d->plan->train_graph2);
    return EA_OK;
}

EA_API ea_status ea_vit_cuda_pull(ea_vit_cuda *d, ea_vit *m, ea_error *err) {
    ea_status st;
    if (!d || !d->plan || !m || !m->params.data) return ea_error_set(err, EA_ERR_ARG, "vit_cuda_pull: NULL or empty model");
    if (m->params.n != d->n || strcmp(m->cfg.attn, d->cfg.attn) || m->cfg.dim != d->cfg.dim || m->cfg.depth != d->cfg.depth)
        return ea_error_set(err, EA_ERR_SHAPE, "vit_cuda_pull: the host model (%zu parameters) is not the one placed on the "
                            "device (%zu)", m->params.n, d->n);
    ea_params_unpack(&m->params); /* its weights are about to change */
    st = ea_cuda_get(d->cu, m->params.data, d->params, d->n, err);
    if (st == EA_OK) st = ea_cuda_get(d->cu, m->params.m, d->m, d->n, err);
    if (st == EA_OK) st = ea_cuda_get(d->cu, m->params.v, d->v, d->n, err);
    if (st == EA_OK) st = ea_cuda_sync(d->cu, err);
    return st;
}

} /* extern "C" */
#endif /* EFFATTN_CUDA */
#endif /* EFFATTN_IMPLEMENTATION_DONE */
#endif /* EFFATTN_IMPLEMENTATION */
