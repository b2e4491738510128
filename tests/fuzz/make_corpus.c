/* Writes the seed corpora under tests/fuzz/corpus/ (run from the repository
   root: cc tests/fuzz/make_corpus.c -o build/make_corpus -lm && build/make_corpus).
   The corpora are committed; this documents where they came from.  The
   gzip corpus (tests/fuzz/corpus/gzip) is Python's gzip module's output:
   stored, fixed-Huffman and dynamic-Huffman members, like tests/data's
   inflate_*.gz. */
#define _POSIX_C_SOURCE 200809L
#define EFFATTN_IMPLEMENTATION
#include "../../effattn.h"
#include "fuzz_model.h"

static void put(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(p, 1, n, f);
        fclose(f);
    }
}

int main(void) {
    ea_vit_config cfg;
    ea_vit m;
    ea_adamw opt;
    ea_error err;
    uint64_t loop[2] = {3, 99};
    ea_blob extra;
    unsigned char idx[4 + 8 + 6] = {0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6};
    static unsigned char cifar[2 * 3073];
    static const char flags1[] = "--attn\0mqa\0--epochs\0003\0--lr\0" "2e-3\0--json";
    static const char flags2[] = "--full\0--batch\00064\0--mode\0projectile\0--noise\0" "0.1\0--save\0x.eack";
    fuzz_model_config(&cfg);
    if (ea_vit_init(&m, &cfg, 1, &err) != EA_OK) return 1;
    ea_adamw_init(&opt, 1e-3f, 0.01f);
    opt.step = 5;
    extra.name = "loop";
    extra.dtype = EA_DT_U64;
    extra.count = 2;
    extra.data = loop;
    if (ea_checkpoint_save("tests/fuzz/corpus/checkpoint/small.eack", &m, &opt, &extra, 1, &err) != EA_OK) return 1;
    /* weights-only safetensors of the same small model */
    if (ea_params_save(&m.params, "tests/fuzz/corpus/safetensors/small.safetensors", &err) != EA_OK) return 1;
    put("tests/fuzz/corpus/idx/small.idx", idx, sizeof idx);
    cifar[0] = 3;
    cifar[3073] = 9;
    put("tests/fuzz/corpus/cifar/two.bin", cifar, sizeof cifar);
    put("tests/fuzz/corpus/flags/train", flags1, sizeof flags1 - 1);
    put("tests/fuzz/corpus/flags/full", flags2, sizeof flags2 - 1);
    ea_vit_free(&m);
    /* a classifier with batch-norm buffers (checkpoint version 4) */
    ea_classifier_config_default(&cfg, EA_HOST_CNN, "mha", 1, 8, 3);
    cfg.dim = 8;
    cfg.width = 4;
    cfg.n_heads = 2;
    if (ea_vit_init(&m, &cfg, 1, &err) != EA_OK) return 1;
    if (ea_checkpoint_save("tests/fuzz/corpus/checkpoint/cnn.eack", &m, &opt, &extra, 1, &err) != EA_OK) return 1;
    ea_vit_free(&m);
    return 0;
}
