/* export_job.c — an adapter written as a PEFT directory: the tensors copied, the config built. */
#include "export_job.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomic_file.h"
#include "file_checks.h"
#include "loaded_model.h"
#include "peft.h"
#include "sha256.h"

#define PATH_CAP 4096

const char *export_dtype_name(int i) {
    static const char *const names[] = {"source", "f16", "f32"};
    return i >= 0 && i < 3 ? names[i] : NULL;
}

/* dir/name into buf (PATH_CAP bytes); -1 when it does not fit. */
static int join(char *buf, const char *dir, const char *name) {
    return snprintf(buf, PATH_CAP, "%s/%s", dir, name) < PATH_CAP ? 0 : -1;
}

/* Whether an existing directory may receive the two files: it holds nothing else, or force.
 * Fails naming the first other entry. */
static int check_existing(const char *dir, int force, ml_error *e) {
    DIR *d = opendir(dir);
    if (!d) return ml_fail(e, "--peft %s: cannot read the directory: %s", dir, strerror(errno));
    const struct dirent *it;
    char other[256] = "";
    while (!other[0] && (it = readdir(d)))
        if (strcmp(it->d_name, ".") && strcmp(it->d_name, "..") &&
            strcmp(it->d_name, PEFT_CONFIG_NAME) && strcmp(it->d_name, PEFT_WEIGHTS_NAME))
            snprintf(other, sizeof other, "%s", it->d_name);
    closedir(d);
    char shown[96];
    if (other[0] && !force)
        return ml_fail(e,
                       "--peft %s: the directory holds '%s', not only %s and %s; refusing to "
                       "write into it (--force does)",
                       dir, ml_one_line(shown, sizeof shown, other), PEFT_CONFIG_NAME,
                       PEFT_WEIGHTS_NAME);
    return 0;
}

/* The output rule for the two files in an existing dir, against the inputs. */
static int check_outputs(const export_spec *s, const char *cfg, const char *wts, ml_error *e) {
    char in_cfg[PATH_CAP], in_wts[PATH_CAP];
    peft_dir_files(s->adapter, in_cfg, in_wts, PATH_CAP);
    const io_path io[] = {{"--peft", cfg, 1, NULL},     {"--peft", wts, 1, NULL},
                          {"--base", s->base, 0, NULL}, {"ADAPTER", s->adapter, 0, NULL},
                          {"ADAPTER", in_cfg, 0, NULL}, {"ADAPTER", in_wts, 0, NULL}};
    return io_check(io, (int)(sizeof io / sizeof io[0]), e);
}

/* The adapter's tensors, every one in file order, and its metadata into a safetensors image
 * (*bytes malloc'ed, caller frees). */
static int build_weights(const st_file *f, const export_spec *s, uint8_t **bytes, size_t *n,
                         export_report *r, ml_error *e) {
    st_writer *w = st_writer_new();
    if (!w) return ml_fail(e, "out of memory");
    char src_sha[65];
    int rc = sha256_file_hex(f->label, src_sha, e);
    const st_dtype want = s->dtype == EXPORT_DTYPE_F32 ? ST_F32 : ST_F16;
    if (!rc && !st_meta(f, "format")) rc = st_writer_meta(w, "format", "pt", e);
    for (int i = 0; !rc && i < f->n_meta; i++)
        rc = st_writer_meta(w, f->meta_keys[i], f->meta_values[i], e);
    if (!rc) rc = st_writer_meta(w, "export_source_sha256", src_sha, e);
    if (!rc) rc = st_writer_meta(w, "export_dtype", export_dtype_name((int)s->dtype), e);
    for (int i = 0; !rc && i < f->n_tensors; i++) {
        const st_tensor *t = &f->tensors[i];
        if (t->dtype != ST_F16 && t->dtype != ST_F32) {
            char shown[96];
            rc = ml_fail(e, "%s: tensor '%s' has dtype %s: not an adapter tensor", f->label,
                         ml_one_line(shown, sizeof shown, t->name), st_dtype_name(t->dtype));
            break;
        }
        /* DoRA magnitudes stay F32 (an F16 one rescales whole rows: lora_save) */
        const int mag = strstr(t->name, "lora_magnitude_vector") != NULL;
        const st_dtype out = mag ? ST_F32 : s->dtype == EXPORT_DTYPE_SOURCE ? t->dtype : want;
        if (i == 0) r->dtype = out;
        float *buf = malloc((t->numel ? t->numel : 1) * sizeof(float));
        if (!buf) rc = ml_fail(e, "out of memory for tensor '%s'", t->name);
        if (!rc) rc = st_read_f32(f, t->name, t->dtype, buf, t->ndim, t->shape, e);
        if (!rc) rc = st_writer_add_f32(w, t->name, out, buf, t->ndim, t->shape, e);
        free(buf);
    }
    if (!rc) rc = st_writer_serialize(w, bytes, n, e);
    st_writer_free(w);
    r->n_tensors = f->n_tensors;
    return rc;
}

/* fsyncs the directory holding path (after a rename into it); EINVAL (no directory fsync on
 * this file system) is no failure. */
static int sync_parent(const char *path, ml_error *e) {
    char parent[PATH_CAP];
    snprintf(parent, sizeof parent, "%s", path);
    char *slash = strrchr(parent, '/');
    if (!slash) snprintf(parent, sizeof parent, ".");
    else if (slash == parent) parent[1] = '\0';
    else *slash = '\0';
    const int fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    const int bad = fd < 0 || (fsync(fd) != 0 && errno != EINVAL);
    const int err = errno;
    if (fd >= 0) close(fd);
    return bad ? ml_fail(e, "--peft %s: written, but fsync of '%s' failed: %s", path, parent,
                         strerror(err))
               : 0;
}

/* Writes the two files into dir: a new directory is built beside it and renamed into place. */
static int write_dir(const char *dir, int exists, const char *cfg_text, const uint8_t *wts,
                     size_t n_wts, ml_error *e) {
    char tmp[PATH_CAP], cfg[PATH_CAP], wp[PATH_CAP];
    if (exists) {
        if (join(cfg, dir, PEFT_CONFIG_NAME) || join(wp, dir, PEFT_WEIGHTS_NAME))
            return ml_fail(e, "--peft %s: the path is too long", dir);
        return atomic_write(wp, wts, n_wts, e) || atomic_write(cfg, cfg_text, strlen(cfg_text), e)
                   ? -1
                   : 0;
    }
    if (snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", dir) >= (int)sizeof tmp ||
        join(cfg, tmp, PEFT_CONFIG_NAME) || join(wp, tmp, PEFT_WEIGHTS_NAME))
        return ml_fail(e, "--peft %s: the path is too long", dir);
    if (!mkdtemp(tmp))
        return ml_fail(e, "--peft %s: cannot create a directory beside it: %s", dir,
                       strerror(errno));
    if (join(cfg, tmp, PEFT_CONFIG_NAME) || join(wp, tmp, PEFT_WEIGHTS_NAME)) /* as checked */
        return ml_fail(e, "--peft %s: the path is too long", dir);
    const mode_t mask = umask(0);
    umask(mask);
    int rc = 0;
    if (chmod(tmp, 0777 & ~mask) != 0)
        rc = ml_fail(e, "--peft %s: chmod of the new directory failed: %s", dir, strerror(errno));
    if (!rc) rc = atomic_write(wp, wts, n_wts, e);
    if (!rc) rc = atomic_write(cfg, cfg_text, strlen(cfg_text), e);
    if (!rc && rename(tmp, dir) != 0) /* fails when dir appeared and is not empty */
        rc = ml_fail(e, "--peft %s: rename of the new directory failed: %s", dir, strerror(errno));
    if (rc) {
        unlink(cfg);
        unlink(wp);
        rmdir(tmp);
        return -1;
    }
    return sync_parent(dir, e);
}

int export_job_run(const export_spec *s, export_report *r, ml_error *e) {
    memset(r, 0, sizeof *r);
    char dir[PATH_CAP], cfg[PATH_CAP], wts[PATH_CAP];
    if (!s->dir || !s->dir[0]) return ml_fail(e, "--peft: the directory name is empty");
    if (snprintf(dir, sizeof dir, "%s", s->dir) >= (int)sizeof dir ||
        join(cfg, s->dir, PEFT_CONFIG_NAME) || join(wts, s->dir, PEFT_WEIGHTS_NAME))
        return ml_fail(e, "--peft %s: the path is too long", s->dir);
    for (size_t k = strlen(dir); k > 1 && dir[k - 1] == '/'; k--) dir[k - 1] = '\0';
    struct stat lst, st;
    const int exists = lstat(dir, &lst) == 0;
    if (exists && stat(dir, &st) != 0)
        return ml_fail(e, "--peft %s: a dangling symbolic link; refusing to write through it", dir);
    if (exists && !S_ISDIR(st.st_mode))
        return ml_fail(e, "--peft %s: exists and is not a directory", dir);
    if (exists ? check_existing(dir, s->force, e) || check_outputs(s, cfg, wts, e)
               : check_writable(dir, e) != 0 && ml_wrap(e, "--peft"))
        return -1;
    loaded_model lm;
    if (loaded_model_init(&lm, s->base, s->adapter, 1.0f, e)) return -1;
    st_file f = {0};
    uint8_t *bytes = NULL;
    size_t n = 0;
    char *text = NULL;
    int rc = -1;
    if (lm.m != &lm.base) {
        ml_fail(e, "%s: a full checkpoint, not a LoRA adapter; nothing to export", s->adapter);
        goto done;
    }
    st_dtype src_dt;
    if (adapter_open(&f, s->adapter, &src_dt, e) || build_weights(&f, s, &bytes, &n, r, e))
        goto done;
    const char *slash = strrchr(s->base, '/');
    if (!(text = peft_config_text(&lm.adapter, &f, slash ? slash + 1 : s->base, lm.base_sha, e)))
        goto done;
    if (write_dir(dir, exists, text, bytes, n, e)) goto done;
    r->rank = lm.adapter.rank;
    r->alpha = lm.adapter.alpha;
    r->created = !exists;
    r->config_bytes = strlen(text);
    r->weights_bytes = n;
    rc = 0;
done:
    free(text);
    free(bytes);
    st_close(&f);
    loaded_model_free(&lm);
    return rc;
}
