/* quantize_job.c — a base checkpoint to F16 or NF4, read back and measured. */
#include "quantize_job.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "file_checks.h"
#include "provenance.h"
#include "sha256.h"

/* Refuses a base that is already quantized: quantizing it again would compound the error. */
static int check_unquantized(const char *path, ml_error *e) {
    st_file f;
    ck_quant q;
    if (st_open(&f, path, e)) return -1;
    int rc = checkpoint_quant(&f, &q, e);
    if (!rc && q != CK_F32)
        rc = ml_fail(e, "%s: already quantized (%s); quantize the F32 base instead", path,
                     ck_quant_name(q));
    st_close(&f);
    return rc;
}

static size_t file_bytes(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (size_t)st.st_size : 0;
}

/* Compares every tensor of a (original) and b (read back): the stored-quantized ones go into
 * r->err, every other one must have come back bit for bit. */
static int measure(const minigpt *a, const minigpt *b, ck_quant q, quantize_report *r,
                   ml_error *e) {
    r->err = calloc((size_t)a->n_tensors, sizeof *r->err);
    if (!r->err) return ml_fail(e, "out of memory");
    double se_all = 0, ss_all = 0;
    for (int i = 0; i < a->n_tensors; i++) {
        const minigpt_tensor *t = &a->tensors[i];
        const float *x = a->params + t->offset, *y = b->params + t->offset;
        const int stored = q == CK_F16 || t->kind == MG_LINEAR_WEIGHT;
        if (!stored) {
            if (memcmp(x, y, t->numel * sizeof *x) != 0)
                return ml_fail(e, "tensor '%s' kept in F32 did not read back exactly", t->name);
            continue;
        }
        quantize_tensor_error *te = &r->err[r->n++];
        snprintf(te->name, sizeof te->name, "%s", t->name);
        te->ndim = t->ndim;
        te->shape[0] = t->shape[0];
        te->shape[1] = t->shape[1];
        double se = 0, ss = 0;
        for (size_t k = 0; k < t->numel; k++) {
            const double d = fabs((double)x[k] - y[k]);
            if (d > te->max_abs) te->max_abs = d;
            if (fabs(x[k]) > te->absmax) te->absmax = fabs(x[k]);
            se += d * d;
            ss += (double)x[k] * x[k];
        }
        te->rms_rel = ss > 0 ? sqrt(se / ss) : 0;
        if (te->max_abs > r->max_abs) r->max_abs = te->max_abs;
        se_all += se;
        ss_all += ss;
        r->n_quantized += t->numel;
    }
    r->rms_rel = ss_all > 0 ? sqrt(se_all / ss_all) : 0;
    r->n_params = a->n_params;
    return 0;
}

int quantize_job_run(const quantize_spec *s, quantize_report *r, ml_error *e) {
    memset(r, 0, sizeof *r);
    if (s->quant != CK_F16 && s->quant != CK_NF4 && s->quant != CK_NF4_DQ)
        return ml_fail(e, "quantize: storage %s is not a quantization", ck_quant_name(s->quant));
    io_path io[2] = {{"--out", s->out, 1, NULL}, {"BASE", s->base, 0, NULL}};
    if (io_check(io, 2, e) || check_unquantized(s->base, e)) return -1;
    minigpt m = {0}, back = {0};
    tok_vocab v, v2;
    provenance prov = {0};
    char sha[65];
    int rc = -1;
    if (checkpoint_load(s->base, &m, &v, sha, e)) return -1;
    if (prov_add(&prov, e, "source_base", "%s", s->base) ||
        prov_add(&prov, e, "source_sha256", "%s", sha) ||
        prov_add(&prov, e, "generator", "minilora quantize") ||
        checkpoint_save_quant(s->out, &m, &v, s->quant, prov.n, prov.keys, prov.vals, e))
        goto done;
    /* read back as every command reads a base: the measured error is the one they see */
    if (checkpoint_load(s->out, &back, &v2, r->out_sha, e)) goto done;
    if (measure(&m, &back, s->quant, r, e)) goto done;
    r->in_bytes = file_bytes(s->base);
    r->out_bytes = file_bytes(s->out);
    rc = 0;
done:
    if (rc) quantize_report_free(r);
    prov_free(&prov);
    minigpt_free(&m);
    minigpt_free(&back);
    return rc;
}

void quantize_report_free(quantize_report *r) {
    free(r->err);
    r->err = NULL;
    r->n = 0;
}
