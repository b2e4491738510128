/* libFuzzer harness: track's command-line parsing.  The input is split at
   NUL bytes into up to 24 arguments (make fuzz). */
#include <stdio.h>
#define main track_main
#include "../../examples/track.c"
#undef main

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    char *buf = (char *)malloc(size + 1), *argv[26];
    int argc = 1, stop;
    size_t i, start = 0;
    options o;
    if (!buf) return 0;
    memcpy(buf, data, size);
    buf[size] = 0;
    argv[0] = (char *)"track";
    for (i = 0; i <= size && argc < 25; i++)
        if (buf[i] == 0) {
            argv[argc++] = buf + start;
            start = i + 1;
        }
    argv[argc] = NULL;
    parse_args(argc, argv, &o, &stop);
    free(buf);
    return 0;
}
