/* The small tracker the checkpoint harness and its seed corpus share. */
static void fuzz_model_config(ea_vit_config *cfg) {
    ea_tracker_config_default(cfg, "mqa");
    cfg->img_size = 8;
    cfg->dim = 8;
    cfg->depth = 1;
    cfg->n_heads = 2;
    cfg->mlp_hidden = 16;
    cfg->head_hidden = 4;
}
