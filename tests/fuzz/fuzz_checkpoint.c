/* libFuzzer harness: the checkpoint parser, against a small model of the
   same configuration as the seed corpus (make fuzz). */
#define EFFATTN_IMPLEMENTATION
#include "../../effattn.h"
#include "fuzz_model.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    static ea_vit m;
    static int ready = 0;
    ea_adamw opt;
    ea_vit_config cfg;
    ea_error err;
    uint64_t loop[2];
    ea_blob extra;
    if (!ready) {
        fuzz_model_config(&cfg);
        if (ea_vit_init(&m, &cfg, 1, &err) != EA_OK) return 0;
        ready = 1;
    }
    extra.name = "loop";
    extra.dtype = EA_DT_U64;
    extra.count = 2;
    extra.data = loop;
    ea_adamw_init(&opt, 1e-3f, 0.01f);
    ea_checkpoint_parse(data, size, &cfg, NULL, NULL, NULL, 0, &err);
    ea_checkpoint_parse(data, size, NULL, &m, &opt, &extra, 1, &err);
    return 0;
}
