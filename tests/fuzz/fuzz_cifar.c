/* libFuzzer harness: the CIFAR-10 batch parser (make fuzz). */
#define EFFATTN_IMPLEMENTATION
#include "../../effattn.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    ea_cifar c;
    ea_error err;
    if (ea_cifar_parse(&c, data, size, &err) == EA_OK) {
        int i;
        unsigned s = 0;
        for (i = 0; i < c.n; i++) s += c.labels[i] + c.images[(size_t)i * 3072 + 3071];
        (void)s;
        ea_cifar_free(&c);
    }
    return 0;
}
