/* dist.h — several processes training one model: the examples' MPI glue.

   The header has no MPI in it: data-parallel training there is a hook
   (ea_dist: rank, size and an all-reduce function, section 10).  This file
   supplies that function for MPI when an example is built with mpicc and
   -DEA_USE_MPI:

       mpicc -O2 -march=native -fopenmp -DEA_USE_MPI examples/track.c -o track_mpi -lm
       mpirun -np 2 ./track_mpi --threads 1 ...

   Without EA_USE_MPI the same calls describe one process, so every example
   still builds with one plain cc command.

   Several GPUs (--device cuda): built with nvcc, -DEFFATTN_CUDA,
   -DEA_USE_MPI and -DEA_USE_NCCL, rank r drives GPU r % (GPUs seen) and
   the gradient's sum runs on the GPUs through NCCL (ncclAllReduce on the
   model's stream, between the step's two graphs: ea_vit_cuda_dist); MPI
   starts the job, carries NCCL's id to every rank and sums the losses:

       nvcc -x cu -O2 -arch=sm_90 -DEFFATTN_CUDA -DEA_USE_MPI -DEA_USE_NCCL \
            $(mpicc --showme:compile) examples/track.c -o track_nccl \
            -lcublas -lcublasLt -lnccl $(mpicc --showme:link)
       mpirun -np 2 ./track_nccl --device cuda ...

   ncclAllReduce leaves identical copies of the sum on every rank (its
   contract), so the ranks' weights stay equal; its order of addition is
   NCCL's, not the CPU path's rank order, so GPU runs on N ranks match one
   GPU's within rounding, not to the bit.

   What it guarantees:
   - The sum is deterministic and the same bits on every rank: each rank
     owns one contiguous segment of the buffer, receives that segment from
     every rank (MPI_Alltoallv), adds them in rank order 0, 1, ..., N-1, and
     the segments are gathered back (MPI_Allgatherv).  That moves 2n floats
     per rank (like a ring all-reduce) and never depends on message arrival.
     MPI_Allreduce itself promises neither.
   - Ranks agree on their configuration before training: each hashes what
     decides the run (flags, data, initial weights, build) and the hashes are
     compared; a mismatch ends every rank with a message naming the rank.
   - A rank that fails calls MPI_Abort, which ends the whole job: a failure
     is never a hang.  (A rank killed by a signal is seen by mpirun, which
     ends the others.)
   - Only rank 0 prints results and writes files; the other ranks' stdout is
     sent to /dev/null, their stderr kept for their own errors.
   No allocation in a training step: the scratch buffer is sized on the
   first call and kept. */
#ifndef EFFATTN_DIST_H
#define EFFATTN_DIST_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef EA_USE_MPI
/* C only: a C++ build (nvcc, mpicxx) skips MPI's C++ bindings, whose casts
   warn under -Wextra */
#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1
#endif
#ifndef MPICH_SKIP_MPICXX
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>
#endif
#if defined(EA_USE_NCCL) && !(defined(EA_USE_MPI) && defined(EFFATTN_CUDA))
#error "EA_USE_NCCL needs EA_USE_MPI (the job's ranks) and EFFATTN_CUDA (the GPUs)"
#endif
#ifdef EA_USE_NCCL
#include <nccl.h>
#endif

typedef struct cli_dist {
    ea_dist d;
#ifdef EA_USE_MPI
    float *scratch;   /* size x (the largest segment) */
    size_t scratch_n;
    int *counts, *displs, *rcounts, *rdispls; /* [size] each */
    size_t counted_n; /* the n that counts / displs were computed for */
#endif
    int disagreed;    /* cli_dist_agree failed: every rank knows, none need abort */
#ifdef EA_USE_NCCL
    ea_dist gpu;      /* the GPUs' distribution: the same ranks, NCCL's sum */
    ncclComm_t comm;  /* NULL until cli_dist_gpu */
    void *stream;     /* the model's cudaStream_t, which the sum is queued on */
#endif
} cli_dist;

/* FNV-1a, 64-bit: the configuration hash */
static inline uint64_t cli_hash(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = (const unsigned char *)p;
    size_t i;
    if (!h) h = 1469598103934665603ull;
    for (i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

#ifdef EA_USE_MPI
static ea_status cli_dist_mpi_error(int rc, const char *what, ea_error *err) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    return ea_error_set(err, EA_ERR_IO, "MPI: %s failed: %s", what, msg);
}

/* The ea_allreduce_fn: reduce-scatter in rank order, then all-gather. */
static ea_status cli_dist_allreduce(void *user, float *buf, size_t n, ea_error *err) {
    cli_dist *cd = (cli_dist *)user;
    int P = cd->d.size, me = cd->d.rank, r, rc;
    size_t i, seg;
    if (n > (size_t)2147483647)
        return ea_error_set(err, EA_ERR_ARG, "MPI all-reduce: %zu floats; at most 2^31-1 in one call", n);
    if (cd->counted_n != n || !cd->counts) {
        if (!cd->counts) {
            cd->counts = (int *)calloc((size_t)P * 4, sizeof(int));
            if (!cd->counts) return ea_error_set(err, EA_ERR_NOMEM, "MPI all-reduce: out of memory");
            cd->displs = cd->counts + P;
            cd->rcounts = cd->counts + 2 * P;
            cd->rdispls = cd->counts + 3 * P;
        }
        for (r = 0; r < P; r++) {
            size_t lo = n * (size_t)r / (size_t)P, hi = n * (size_t)(r + 1) / (size_t)P;
            cd->counts[r] = (int)(hi - lo);
            cd->displs[r] = (int)lo;
        }
        seg = (size_t)cd->counts[me];
        for (r = 0; r < P; r++) {
            cd->rcounts[r] = (int)seg;
            cd->rdispls[r] = (int)(seg * (size_t)r);
        }
        if ((size_t)P * seg > cd->scratch_n) {
            float *s = (float *)realloc(cd->scratch, ((size_t)P * seg + 1) * sizeof(float));
            if (!s) return ea_error_set(err, EA_ERR_NOMEM, "MPI all-reduce: out of memory for %zu floats", (size_t)P * seg);
            cd->scratch = s;
            cd->scratch_n = (size_t)P * seg;
        }
        cd->counted_n = n;
    }
    seg = (size_t)cd->counts[me];
    /* every rank's copy of my segment, side by side in scratch */
    rc = MPI_Alltoallv(buf, cd->counts, cd->displs, MPI_FLOAT, cd->scratch, cd->rcounts, cd->rdispls, MPI_FLOAT,
                       MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) return cli_dist_mpi_error(rc, "all-to-all of the gradient", err);
    for (i = 0; i < seg; i++) { /* rank order, the same on every run */
        float s = cd->scratch[i];
        for (r = 1; r < P; r++) s += cd->scratch[(size_t)r * seg + i];
        buf[cd->displs[me] + i] = s;
    }
    rc = MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_FLOAT, buf, cd->counts, cd->displs, MPI_FLOAT, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) return cli_dist_mpi_error(rc, "all-gather of the gradient", err);
    return EA_OK;
}
#endif

#ifdef EA_USE_NCCL
/* The ea_allreduce_fn of the GPU step: buf is device memory; the sum is
   queued on the model's stream, before the update that reads it. */
static ea_status cli_dist_nccl_allreduce(void *user, float *buf, size_t n, ea_error *err) {
    cli_dist *cd = (cli_dist *)user;
    ncclResult_t r = ncclAllReduce(buf, buf, n, ncclFloat, ncclSum, cd->comm, (cudaStream_t)cd->stream);
    return r == ncclSuccess ? EA_OK : ea_error_set(err, EA_ERR_IO, "NCCL: the gradient's all-reduce failed: %s", ncclGetErrorString(r));
}

/* With several ranks: a NCCL communicator over them (rank 0's id reaches
   the others through MPI) and the model's steps set to sum through it.
   Called on every rank, after the model is placed on its GPU. */
static inline ea_status cli_dist_gpu(cli_dist *cd, ea_cuda *cu, ea_vit_cuda *m, ea_error *err) {
    ncclUniqueId id;
    ncclResult_t r;
    int rc;
    if (cd->d.size == 1) return EA_OK;
    memset(&id, 0, sizeof id);
    if (cd->d.rank == 0 && (r = ncclGetUniqueId(&id)) != ncclSuccess)
        return ea_error_set(err, EA_ERR_IO, "NCCL: no id for the job: %s", ncclGetErrorString(r));
    rc = MPI_Bcast(&id, (int)sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) return cli_dist_mpi_error(rc, "broadcast of NCCL's id", err);
    if ((r = ncclCommInitRank(&cd->comm, cd->d.size, id, cd->d.rank)) != ncclSuccess) {
        cd->comm = NULL;
        return ea_error_set(err, EA_ERR_IO, "NCCL: rank %d of %d could not join: %s (one GPU a rank: %d ranks need %d GPUs)",
                            cd->d.rank, cd->d.size, ncclGetErrorString(r), cd->d.size, cd->d.size);
    }
    cd->stream = cu->stream;
    cd->gpu = cd->d;
    cd->gpu.allreduce = cli_dist_nccl_allreduce;
    cd->gpu.user = cd;
    return ea_vit_cuda_dist(m, &cd->gpu, err);
}
#endif

/* After cli_dist_ready, with the model on the GPU (dev->on) and several
   ranks: every batch must leave each rank an image (a GPU step has no
   empty batch), then the GPUs join (NCCL builds).  1: go on; 0: the
   reason is printed (every rank reaches the same verdict on the same
   numbers, so none waits for another). */
static inline int cli_dist_device(cli_dist *cd, cli_device *dev, long n_train, long batch, const char *prog) {
    long last = batch > 0 ? n_train % batch : 0;
    if (!dev->on || cd->d.size == 1) return 1;
    if (last > 0 && last < cd->d.size) {
        fprintf(stderr, "%s: the last batch of an epoch holds %ld of %ld training samples, fewer than the %d GPUs; "
                        "pick a --batch that leaves none or at least %d over\n", prog, last, n_train, cd->d.size, cd->d.size);
        return 0;
    }
#ifdef EA_USE_NCCL
    {
        ea_error err;
        if (cli_dist_gpu(cd, &dev->cu, &dev->m, &err) != EA_OK) {
            fprintf(stderr, "%s: rank %d: %s\n", prog, cd->d.rank, err.msg);
            return 0;
        }
    }
#endif
    return 1;
}

/* Start: MPI_Init when built with EA_USE_MPI (rank and size from
   MPI_COMM_WORLD), else one process.  Ranks other than 0 print nothing
   on stdout. */
static inline void cli_dist_init(cli_dist *cd, int *argc, char ***argv) {
    memset(cd, 0, sizeof *cd);
    ea_dist_single(&cd->d);
#ifdef EA_USE_MPI
    MPI_Init(argc, argv);
    /* errors come back as codes (turned into messages and MPI_Abort), not
       MPI's default of killing the job without a word about why */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &cd->d.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &cd->d.size);
    if (cd->d.size > 1) {
        cd->d.allreduce = cli_dist_allreduce;
        cd->d.user = cd;
    }
    if (cd->d.rank > 0 && freopen("/dev/null", "w", stdout) == NULL)
        fprintf(stderr, "rank %d: could not silence stdout; its lines will repeat rank 0's\n", cd->d.rank);
#else
    (void)argc;
    (void)argv;
#endif
}

/* The end of main: rc 0 finishes MPI normally; any other code on any rank
   ends the whole job (a rank that failed while others wait in a collective
   would otherwise hang them). */
static inline int cli_dist_end(cli_dist *cd, int rc) {
#ifdef EA_USE_MPI
    fflush(stdout);
    fflush(stderr);
    if (rc != 0 && cd->d.size > 1 && !cd->disagreed) MPI_Abort(MPI_COMM_WORLD, rc);
#ifdef EA_USE_NCCL
    if (cd->comm) ncclCommDestroy(cd->comm);
#endif
    free(cd->scratch);
    free(cd->counts);
    MPI_Finalize();
#else
    (void)cd;
#endif
    return rc;
}

/* Sum n doubles over the ranks (losses, hit counts), in rank order. */
static inline ea_status cli_dist_sum(cli_dist *cd, double *v, int n, ea_error *err) {
#ifdef EA_USE_MPI
    double all[64 * 16];
    int r, i, rc;
    if (cd->d.size == 1) return EA_OK;
    if ((long)n * cd->d.size > (long)(sizeof all / sizeof all[0]))
        return ea_error_set(err, EA_ERR_ARG, "dist_sum: %d values x %d ranks; at most %d", n, cd->d.size,
                            (int)(sizeof all / sizeof all[0]));
    rc = MPI_Allgather(v, n, MPI_DOUBLE, all, n, MPI_DOUBLE, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) return cli_dist_mpi_error(rc, "all-gather of the step's sums", err);
    for (i = 0; i < n; i++) {
        double s = all[i];
        for (r = 1; r < cd->d.size; r++) s += all[(size_t)r * n + i];
        v[i] = s;
    }
#else
    (void)cd;
    (void)v;
    (void)n;
    (void)err;
#endif
    return EA_OK;
}

/* Work spread by item: item i of n (a row of compare's table, a search)
   is computed by rank i % size; afterwards every rank holds all n items
   (each broadcast from its owner, in item order).  Items are plain bytes. */
static inline int cli_dist_owns(const cli_dist *cd, int i) { return i % cd->d.size == cd->d.rank; }

static inline ea_status cli_dist_share(cli_dist *cd, void *items, size_t item_bytes, int n, ea_error *err) {
#ifdef EA_USE_MPI
    int i, rc;
    if (cd->d.size == 1) return EA_OK;
    if (item_bytes > (size_t)2147483647) return ea_error_set(err, EA_ERR_ARG, "dist_share: items of %zu bytes", item_bytes);
    for (i = 0; i < n; i++) {
        rc = MPI_Bcast((char *)items + (size_t)i * item_bytes, (int)item_bytes, MPI_BYTE, i % cd->d.size, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return cli_dist_mpi_error(rc, "broadcast of a finished item", err);
    }
#else
    (void)cd;
    (void)items;
    (void)item_bytes;
    (void)n;
    (void)err;
#endif
    return EA_OK;
}

/* The part of the configuration hash every program shares: the build's
   vector ISA and the command line, each argument with its terminator. */
static inline uint64_t cli_dist_command_hash(int argc, char **argv) {
    uint64_t h = cli_hash(0, EA_ISA, strlen(EA_ISA));
    int i;
    for (i = 1; i < argc; i++) h = cli_hash(h, argv[i], strlen(argv[i]) + 1);
    return h;
}

static inline int cli_dist_agree(cli_dist *cd, uint64_t hash, const char *prog);

/* Before training: every rank agrees on `hash` (cli_dist_agree) and, when
   it will train, the global batch has a sample for every rank.  1: go on;
   0: the reason is printed, every rank stops. */
static inline int cli_dist_ready(cli_dist *cd, const char *prog, uint64_t hash, long batch, int trains) {
    if (!cli_dist_agree(cd, hash, prog)) return 0;
    if (trains && batch < cd->d.size) {
        fprintf(stderr, "%s: a batch of %ld cannot be split over %d processes; give --batch %d or more\n", prog, batch,
                cd->d.size, cd->d.size);
        return 0;
    }
    return 1;
}

/* Every rank passes the hash of its configuration; returns 1 when all
   agree, else prints (on rank 0) which ranks differ and returns 0 on
   every rank. */
static inline int cli_dist_agree(cli_dist *cd, uint64_t hash, const char *prog) {
#ifdef EA_USE_MPI
    uint64_t *all;
    int r, ok = 1;
    if (cd->d.size == 1) return 1;
    all = (uint64_t *)malloc((size_t)cd->d.size * sizeof(uint64_t));
    if (!all || MPI_Allgather(&hash, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, MPI_COMM_WORLD) != MPI_SUCCESS) {
        fprintf(stderr, "%s: rank %d could not exchange configurations with the other ranks\n", prog, cd->d.rank);
        free(all);
        return 0;
    }
    for (r = 1; r < cd->d.size; r++)
        if (all[r] != all[0]) {
            if (cd->d.rank == 0)
                fprintf(stderr, "%s: rank %d runs another configuration than rank 0 (flags, data, initial weights or "
                                "build differ: hash %016llx against %016llx); every rank must be started with the same "
                                "command\n", prog, r, (unsigned long long)all[r], (unsigned long long)all[0]);
            ok = 0;
        }
    free(all);
    cd->disagreed = !ok;
    return ok;
#else
    (void)cd;
    (void)hash;
    (void)prog;
    return 1;
#endif
}

#endif /* EFFATTN_DIST_H */
