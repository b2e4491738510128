/* Strict-build check, translation unit 2 of 2: a user of the declarations
   only (no EFFATTN_IMPLEMENTATION), running a tiny forward pass of every
   attention row, and flex attention with the user's own callback. */
#include <stdio.h>
#include <string.h>
#include "../effattn.h"

/* A user's score_mod: a bias toward nearby keys. */
static float near_bias(float s, int b, int h, int q, int k, void *user) {
    (void)b; (void)h; (void)user;
    return s - 0.1f * (float)(q > k ? q - k : k - q);
}

int tu_user_main(void) {
    ea_vit_config cfg;
    ea_vit m;
    ea_error err;
    ea_ctx ctx;
    ea_tensor *x, *y = NULL, *q;
    ea_flex_mods mods;
    int v, bad = 0;
    ea_ctx_init(&ctx, 0);
    ctx.grad_enabled = 0;
    for (v = 0; v < ea_attn_variant_count(); v++) {
        ea_tracker_config_default(&cfg, ea_attn_variant_at(v)->name);
        if (ea_vit_init(&m, &cfg, 1, &err) != EA_OK) {
            printf("%s\n", err.msg);
            return 1;
        }
        ea_ctx_reset(&ctx);
        ctx.grad_enabled = 0;
        x = ea_tensor_4d(&ctx, 1, 2, 32, 32, 0);
        if (x) {
            size_t i;
            for (i = 0; i < x->size; i++) x->data[i] = 0.0f;
        }
        y = ea_vit_forward(&ctx, &m, x);
        if (!y) {
            printf("%s: %s\n", ea_attn_variant_at(v)->name, ctx.err.msg);
            bad++;
        }
        ea_vit_free(&m);
    }
    ea_ctx_reset(&ctx);
    memset(&mods, 0, sizeof mods);
    mods.score_mod = near_bias;
    mods.mask_mod = ea_flex_causal;
    q = ea_tensor_3d(&ctx, 1, 100, 24, 0);
    if (q) {
        size_t i;
        for (i = 0; i < q->size; i++) q->data[i] = (float)(i % 7) * 0.1f;
    }
    y = ea_flex_attention(&ctx, q, 0, q, 8, q, 16, 2, 2, 4, 0, &mods);
    bad += !y;
    printf("two translation units: %d attention rows and a flex callback: %s\n", ea_attn_variant_count(),
           bad ? "FAILED" : "ok");
    ea_ctx_free(&ctx);
    return bad ? 1 : 0;
}
