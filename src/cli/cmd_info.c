/* cmd_info.c — `lora-info`: the lesson's tables computed from the model itself, and a
 * description of an adapter file (read by adapter_info_read, src/jobs/adapter_info.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "adapter_info.h"
#include "checkpoint.h"
#include "commands.h"
#include "common.h"
#include "lora.h"
#include "opts.h"

/* "98,944" */
static const char *grouped(size_t v, char *buf) {
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%zu", v), j = 0;
    for (int i = 0; i < n; i++) {
        if (i && (n - i) % 3 == 0) buf[j++] = ',';
        buf[j++] = tmp[i];
    }
    buf[j] = '\0';
    return buf;
}

static void inventory_text(const minigpt *m) {
    char a[32], b[32];
    printf("Mini-GPT parameter inventory (V=%d, C=%d, heads=%d, layers=%d, d_ff=%d)\n\n",
           m->cfg.vocab_size, m->cfg.d_model, m->cfg.n_heads, m->cfg.n_layers, m->cfg.d_ff);
    printf("  %-34s %-12s %9s  %s\n", "tensor", "shape", "params", "");
    for (int i = 0; i < m->n_tensors; i++) {
        const minigpt_tensor *t = &m->tensors[i];
        char shape[32];
        if (t->ndim == 2) snprintf(shape, sizeof shape, "(%d, %d)", t->shape[0], t->shape[1]);
        else snprintf(shape, sizeof shape, "(%d)", t->shape[0]);
        const char *note = t->kind == MG_LINEAR_WEIGHT ? "Linear, LoRA target"
                           : t->kind == MG_EMBEDDING   ? "tied with the head; frozen"
                           : t->kind == MG_NORM        ? "LayerNorm; frozen"
                                                       : "bias; frozen";
        printf("  %-34s %-12s %9s  %s\n", t->name, shape, grouped(t->numel, a), note);
    }
    minigpt_counts c = minigpt_count(m);
    printf("\n  %-47s %9s\n", "Linear weights", grouped(c.linear_weights, a));
    printf("  %-47s %9s\n", "Linear biases", grouped(c.linear_biases, a));
    printf("  %-47s %9s\n", "Linear total", grouped(c.linear_weights + c.linear_biases, a));
    printf("  %-47s %9s\n", "Embedding (tied head)", grouped(c.embedding, a));
    printf("  %-47s %9s\n", "LayerNorms", grouped(c.norms, a));
    printf("  %-47s %9s  (%s bytes in F32)\n\n", "Model total", grouped(c.total, a),
           grouped(4 * c.total, b));
}

static void ranks_text(const minigpt *m, unsigned targets, const int *ranks, int nr) {
    minigpt_counts c = minigpt_count(m);
    const size_t lin = c.linear_weights + c.linear_biases;
    char a[32], b[32], tot[32], ln[32];
    const size_t unit = lora_count(m, 1, targets);
    printf("LoRA parameters per rank: N(r) = Σ r·(in+out) = %zu·r\n\n", unit);
    printf("  %5s %10s %14s %16s %12s %12s %10s\n", "rank", "params", "of model", "of Linears",
           "fp16 bytes", "vs F32 base", "per base");
    for (int i = 0; i < nr; i++) {
        const size_t n = lora_count(m, ranks[i], targets);
        printf("  %5d %10s %13.2f%% %15.2f%% %12s %11.1f%% %10.1f%s\n", ranks[i], grouped(n, a),
               100.0 * n / c.total, 100.0 * n / lin, grouped(2 * n, b),
               100.0 * 2 * n / (4.0 * c.total), 4.0 * c.total / (2.0 * n),
               n > c.total ? "  (more than the whole model)" : "");
    }
    printf("\n  fractions of %s (model) and %s (Linear weights + biases); per base: how many\n"
           "  adapters' fp16 payloads fit in the F32 base's %s payload bytes\n\n",
           grouped(c.total, tot), grouped(lin, ln), grouped(4 * c.total, b));
}

/* The distinct (out,in) shapes of the targeted Linears and how many there are: shapes[k][0..1]
 * and count[k]; returns how many shapes. */
static int linear_shapes(const minigpt *m, unsigned targets, int shapes[][2], int *count, int max) {
    int n = 0;
    for (int i = 0; i < m->n_linears; i++) {
        const minigpt_linear *L = &m->linears[i];
        if (!(targets & (1u << L->role))) continue;
        int k = 0;
        while (k < n && !(shapes[k][0] == L->out && shapes[k][1] == L->in)) k++;
        if (k == n) {
            if (n == max) continue;
            shapes[n][0] = L->out, shapes[n][1] = L->in, count[n++] = 0;
        }
        count[k]++;
    }
    return n;
}

/* What rank r adds to one Linear of each shape: r·(in+out) over its in·out weights. */
static void layer_fraction_text(const minigpt *m, unsigned targets, const int *ranks, int nr) {
    int shapes[16][2], count[16];
    const int ns = linear_shapes(m, targets, shapes, count, 16);
    printf("Per Linear: r·(in+out) / (in·out), what rank r adds to one layer of each shape\n\n");
    printf("  %-14s %6s", "(out, in)", "layers");
    for (int i = 0; i < nr; i++) {
        char h[16];
        snprintf(h, sizeof h, "r=%d", ranks[i]);
        printf(" %8s", h);
    }
    printf("\n");
    for (int k = 0; k < ns; k++) {
        char shape[32];
        snprintf(shape, sizeof shape, "(%d, %d)", shapes[k][0], shapes[k][1]);
        printf("  %-14s %6d", shape, count[k]);
        const double per =
            (double)(shapes[k][0] + shapes[k][1]) / ((double)shapes[k][0] * shapes[k][1]);
        for (int i = 0; i < nr; i++) printf(" %7.2f%%", 100.0 * ranks[i] * per);
        printf("\n");
    }
    size_t weights = 0; /* the targeted Linear weights, all together */
    for (int k = 0; k < ns; k++) weights += (size_t)count[k] * shapes[k][0] * shapes[k][1];
    printf("  %-21s", "all targeted weights");
    for (int i = 0; i < nr; i++)
        printf(" %7.2f%%", 100.0 * (double)lora_count(m, ranks[i], targets) / (double)weights);
    printf("\n\n");
}

static void rank_breakdown_text(const minigpt *m, unsigned targets, int r) {
    char a[32];
    printf("Rank %d per layer: r·(in+out)\n\n", r);
    for (int i = 0; i < m->n_linears; i++) {
        const minigpt_linear *L = &m->linears[i];
        if (!(targets & (1u << L->role))) continue;
        const size_t n = (size_t)r * (L->in + L->out);
        char expr[48], sa[24], sb[24];
        snprintf(expr, sizeof expr, "%d·(%d+%d)", r, L->in, L->out);
        snprintf(sa, sizeof sa, "A (%d,%d)", r, L->in);
        snprintf(sb, sizeof sb, "B (%d,%d)", L->out, r);
        printf("  %-24s (%3d, %3d)  %-14s = %7s   %-11s %s\n", L->path, L->out, L->in, expr,
               grouped(n, a), sa, sb);
    }
    printf("  %-24s %27s\n\n", "total", grouped(lora_count(m, r, targets), a));
}

/* Describes one adapter file on m (see adapter_info_read), as text or one line of JSON. */
/* base_file_bytes: the base checkpoint's file size (0 when there is no base file). */
static int adapter_text(const char *path, minigpt *m, const char *base_sha, long base_file_bytes,
                        int json, ml_error *e) {
    adapter_info a;
    if (adapter_info_read(&a, m, path, base_sha, e)) return -1;
    char *tm_json = lora_targets_json(a.targets);
    char *lt_json = a.layers_restricted ? lora_layers_json(m, a.layer_mask) : strdup("null");
    if (!tm_json || !lt_json) {
        free(tm_json);
        free(lt_json);
        adapter_info_free(&a);
        return ml_fail(e, "out of memory");
    }
    const char *sha = a.base_sha256;
    /* how many of these adapters take the bytes of one F32 base: by payload, and by file */
    const double base_payload = 4.0 * minigpt_count(m).total;
    const double per_payload = a.payload_bytes ? base_payload / a.payload_bytes : 0;
    const double per_file =
        a.file_bytes && base_file_bytes ? (double)base_file_bytes / a.file_bytes : 0;
    if (json) {
        printf("{\"adapter\":");
        text_json_print(stdout, path);
        printf(",\"rank\":%d,\"lora_alpha\":%g,\"scale\":%g,\"use_rslora\":%s,"
               "\"target_modules\":%s,\"layers_to_transform\":%s,\"params\":%zu,"
               "\"payload_bytes\":%zu,\"file_bytes\":%zu,\"header_bytes\":%zu,\"base_sha256\":",
               a.rank, a.alpha, a.scale, a.rslora ? "true" : "false", tm_json, lt_json, a.params,
               a.payload_bytes, a.file_bytes, a.header_bytes);
        text_json_print(stdout, sha ? sha : "");
        printf(",\"init\":");
        if (a.init) text_json_print(stdout, a.init);
        else printf("null");
        if (a.converted_from_r > 0) printf(",\"converted_from_r\":%d", a.converted_from_r);
        else printf(",\"converted_from_r\":null");
        printf(",\"matches_base\":%s,\"adapters_per_base_payload\":%.4f,"
               "\"adapters_per_base_file\":%.4f,\"use_dora\":%s,\"dora_params\":%zu,"
               "\"lora_dropout\":%g}\n",
               a.matches_base == ADAPTER_BASE_YES ? "true" : "false", per_payload, per_file,
               a.dora ? "true" : "false", a.dora_params, a.dropout);
    } else {
        static const char *match[] = {"unknown", "yes", "no"};
        printf("%s\n  rank %d, alpha %g, scale %g%s\n  targets %s, blocks %s\n", path, a.rank,
               a.alpha, a.scale, a.rslora ? " (rsLoRA: alpha/sqrt(r))" : " (alpha/r)", tm_json,
               a.layers_restricted ? lt_json : "all");
        const size_t lr = a.params - a.dora_params; /* the low-rank part */
        if (a.dora) {
            printf("  %zu parameters in %d tensors (%zu per rank unit: %zu·%d, + %zu DoRA "
                   "magnitudes)\n",
                   a.params, a.n_tensors, lr / a.rank, lr / a.rank, a.rank, a.dora_params);
            printf("  payload %zu bytes (%zu per A/B parameter, 4 per magnitude), header %zu "
                   "bytes, file %zu bytes\n",
                   a.payload_bytes, lr ? (a.payload_bytes - 4 * a.dora_params) / lr : 2,
                   a.header_bytes, a.file_bytes);
        } else {
            printf("  %zu parameters in %d tensors (%zu per rank unit: %zu·%d)\n", a.params,
                   a.n_tensors, a.rank ? lr / a.rank : 0, a.rank ? lr / a.rank : 0, a.rank);
            printf("  payload %zu bytes (%zu per parameter), header %zu bytes, file %zu bytes\n",
                   a.payload_bytes, a.params ? a.payload_bytes / a.params : 2, a.header_bytes,
                   a.file_bytes);
        }
        if (a.dora || a.dropout > 0) /* plain adapters: the lines they always had */
            printf("  variant: %s, lora_dropout %g (training only)\n",
                   a.dora ? "DoRA (use_dora: magnitude per output row)" : "LoRA", a.dropout);
        printf("  %.1f of these fit in the F32 base's %.0f payload bytes", per_payload,
               base_payload);
        if (per_file > 0)
            printf("; %.1f by file size (%ld-byte base file)", per_file, base_file_bytes);
        printf("\n");
        printf("  trained on base %.16s…; this base: %s\n", sha ? sha : "?", match[a.matches_base]);
        char init_shown[64];
        printf("  init %s", a.init ? ml_one_line(init_shown, sizeof init_shown, a.init)
                                   : "kaiming (not recorded: the only init before --init)");
        if (a.converted_from_r > 0)
            printf(": trained at rank %d on the residual base W - s·B0·A0, saved as rank %d for "
                   "the original base (A' = [A; A - A0], B' = [B - B0 | B0])",
                   a.converted_from_r, a.rank);
        printf("\n");
        for (int i = 0; i < a.n_meta; i++) {
            const char *k = a.meta_keys[i];
            if (!strcmp(k, "seed") || !strcmp(k, "steps") || !strcmp(k, "best_step") ||
                !strcmp(k, "train_config") || !strcmp(k, "lora_path"))
                printf("  %s: %s\n", k, a.meta_values[i]);
        }
    }
    free(tm_json);
    free(lt_json);
    adapter_info_free(&a);
    return 0;
}

static void info_json(const minigpt *m, unsigned targets, const int *ranks, int nr, int rank) {
    minigpt_counts c = minigpt_count(m);
    printf(
        "{\"config\":{\"vocab_size\":%d,\"d_model\":%d,\"n_heads\":%d,\"n_layers\":%d,\"d_ff\":%d,"
        "\"context\":%d},\"tensors\":[",
        m->cfg.vocab_size, m->cfg.d_model, m->cfg.n_heads, m->cfg.n_layers, m->cfg.d_ff,
        m->cfg.context);
    for (int i = 0; i < m->n_tensors; i++) {
        const minigpt_tensor *t = &m->tensors[i];
        static const char *kinds[] = {"embedding", "norm", "linear_weight", "linear_bias"};
        printf("%s{\"name\":\"%s\",\"shape\":[%d%s%.0d],\"params\":%zu,\"kind\":\"%s\"}",
               i ? "," : "", t->name, t->shape[0], t->ndim == 2 ? "," : "",
               t->ndim == 2 ? t->shape[1] : 0, t->numel, kinds[t->kind]);
    }
    printf("],\"total\":%zu,\"linear_weights\":%zu,\"linear_biases\":%zu,\"linear_total\":%zu,"
           "\"embedding\":%zu,\"norms\":%zu,\"lora_params_per_rank\":%zu,\"ranks\":[",
           c.total, c.linear_weights, c.linear_biases, c.linear_weights + c.linear_biases,
           c.embedding, c.norms, lora_count(m, 1, targets));
    const size_t lin = c.linear_weights + c.linear_biases;
    for (int i = 0; i < nr; i++) {
        const size_t n = lora_count(m, ranks[i], targets);
        printf(
            "%s{\"rank\":%d,\"params\":%zu,\"fraction_of_model\":%.6f,\"fraction_of_linears\":%.6f,"
            "\"fp16_bytes\":%zu,\"adapters_per_base_payload\":%.6f}",
            i ? "," : "", ranks[i], n, (double)n / c.total, (double)n / lin, 2 * n,
            4.0 * c.total / (2.0 * n));
    }
    printf("],\"layer_shapes\":[");
    int shapes[16][2], count[16];
    const int ns = linear_shapes(m, targets, shapes, count, 16);
    for (int k = 0; k < ns; k++)
        printf("%s{\"out\":%d,\"in\":%d,\"layers\":%d,\"fraction_per_rank\":%.8f}", k ? "," : "",
               shapes[k][0], shapes[k][1], count[k],
               (double)(shapes[k][0] + shapes[k][1]) / ((double)shapes[k][0] * shapes[k][1]));
    printf("]");
    if (rank >= 0) {
        printf(",\"layers\":[");
        int first = 1;
        for (int i = 0; i < m->n_linears; i++) {
            const minigpt_linear *L = &m->linears[i];
            if (!(targets & (1u << L->role))) continue;
            printf("%s{\"path\":\"%s\",\"in\":%d,\"out\":%d,\"rank\":%d,\"params\":%zu}",
                   first ? "" : ",", L->path, L->in, L->out, rank, (size_t)rank * (L->in + L->out));
            first = 0;
        }
        printf("]");
    }
    printf("}\n");
}

int cmd_info(int argc, char **argv) {
    const char *cmd = argv[0];
    const char *base_path = default_path("data/minigpt-base.safetensors"),
               *model_cfg = default_path("configs/minigpt.json");
    const char *targets_s = "all";
    int rank = -1, json = 0;
    opt_def defs[] = {
        {"rank", OPT_INT, &rank, 0, LORA_MAX_RANK, "R",
         "also show the per-layer breakdown at rank R"},
        {"targets", OPT_STRING, &targets_s, 0, 0, "LIST",
         "layers adapted: q,k,v,o,fc1,fc2,attn,ffn,all"},
        {"base", OPT_STRING, &base_path, 0, 0, "FILE", "base checkpoint (its config is used)"},
        {"model", OPT_STRING, &model_cfg, 0, 0, "FILE",
         "model config, used when the base file is absent"},
        {"json", OPT_FLAG, &json, 0, 0, NULL, "print JSON"},
    };
    int pos;
    int r =
        opts_parse("[options] [ADAPTER.safetensors ...]",
                   "Prints the parameter inventory and the LoRA parameter count and fp16 size per\n"
                   "rank, computed from the model itself; describes each ADAPTER file given.",
                   NULL, defs, (int)(sizeof defs / sizeof defs[0]), argc, argv, &pos);
    if (r) return r > 0 ? EXIT_OK : EXIT_USAGE;
    ml_error e;
    unsigned targets;
    if (lora_parse_targets(targets_s, &targets, &e)) return usage_fail(cmd, e.msg);
    minigpt m = {0};
    tok_vocab v;
    char sha[65] = "", *base_sha = NULL;
    struct stat st;
    int rc = EXIT_RUNTIME;
    if (stat(base_path, &st) == 0) {
        if (checkpoint_load(base_path, &m, &v, sha, &e)) goto done;
        base_sha = sha;
    } else {
        minigpt_config cfg;
        if (model_config_load(model_cfg, &cfg, &v, &e) || minigpt_init(&m, &cfg, &e)) goto done;
    }
    int ranks[16], nr = 0;
    for (int k = 1; k <= LORA_MAX_RANK; k *= 2) ranks[nr++] = k;
    if (rank >= 0) {
        int have = 0;
        for (int i = 0; i < nr; i++) have |= ranks[i] == rank;
        if (!have) { /* keep the table in rank order */
            int i = nr++;
            while (i > 0 && ranks[i - 1] > rank) ranks[i] = ranks[i - 1], i--;
            ranks[i] = rank;
        }
    }
    if (pos < argc) {
        for (int i = pos; i < argc; i++)
            if (adapter_text(argv[i], &m, base_sha, base_sha ? (long)st.st_size : 0, json, &e))
                goto done;
    } else if (json) {
        info_json(&m, targets, ranks, nr, rank);
    } else {
        inventory_text(&m);
        ranks_text(&m, targets, ranks, nr);
        layer_fraction_text(&m, targets, ranks, nr);
        if (rank >= 0) rank_breakdown_text(&m, targets, rank);
    }
    rc = EXIT_OK;
done:
    if (rc != EXIT_OK) cli_error(cmd, e.msg);
    minigpt_free(&m);
    return rc;
}
