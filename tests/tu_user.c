/* Strict-build check, translation unit 2 of 2: a user of the declarations
   only (no EFFATTN_IMPLEMENTATION), running a tiny forward pass. */
#include <stdio.h>
#include "../effattn.h"

int tu_user_main(void) {
    ea_vit_config cfg;
    ea_vit m;
    ea_error err;
    ea_ctx ctx;
    ea_tensor *x, *y;
    ea_tracker_config_default(&cfg, "mqa");
    if (ea_vit_init(&m, &cfg, 1, &err) != EA_OK) {
        printf("%s\n", err.msg);
        return 1;
    }
    ea_ctx_init(&ctx, 0);
    ctx.grad_enabled = 0;
    x = ea_tensor_4d(&ctx, 1, 2, 32, 32, 0);
    if (x) {
        size_t i;
        for (i = 0; i < x->size; i++) x->data[i] = 0.0f;
    }
    y = ea_vit_forward(&ctx, &m, x);
    printf("two translation units: forward %s\n", y ? "ok" : ctx.err.msg);
    ea_ctx_free(&ctx);
    ea_vit_free(&m);
    return y ? 0 : 1;
}
