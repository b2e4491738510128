/* libFuzzer harness: the safetensors parser and reader (make fuzz). */
#define EFFATTN_IMPLEMENTATION
#include "../../effattn.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    ea_safetensors st;
    ea_error err;
    int i;
    if (ea_st_parse(&st, data, size, &err) != EA_OK) return 0;
    for (i = 0; i < st.count; i++) {
        const ea_st_entry *e = &st.entries[i];
        size_t n = (e->end - e->begin) / (e->dtype == EA_DT_U8 ? 1 : 4);
        if (n <= ((size_t)1 << 20)) {
            float *buf = (float *)malloc((n ? n : 1) * sizeof(float));
            if (buf) {
                ea_st_read(&st, e->name, buf, n, &err);
                free(buf);
            }
        }
    }
    ea_st_close(&st);
    return 0;
}
