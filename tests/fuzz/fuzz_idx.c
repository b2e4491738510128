/* libFuzzer harness: the IDX parser (make fuzz). */
#define EFFATTN_IMPLEMENTATION
#include "../../effattn.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    ea_u8_array a;
    ea_error err;
    if (ea_idx_parse(&a, data, size, &err) == EA_OK) {
        size_t i, s = 0;
        for (i = 0; i < a.size; i++) s += a.data[i]; /* touch every byte */
        (void)s;
        ea_u8_array_free(&a);
    }
    return 0;
}
