/* libFuzzer harness: gzip / inflate (make fuzz). */
#define EFFATTN_IMPLEMENTATION
#include "../../effattn.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    unsigned char *out;
    size_t n, i, s = 0;
    ea_error err;
    if (ea_gunzip(data, size, &out, &n, &err) == EA_OK) {
        for (i = 0; i < n; i++) s += out[i]; /* touch every byte */
        (void)s;
        EFFATTN_FREE(out);
    }
    return 0;
}
