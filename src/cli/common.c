/* common.c — helpers shared by the commands. */
#include "common.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint.h"
#include "opts.h"
#include "safetensors.h"
#include "train_loop.h"

const char *default_path(const char *rel) {
    static char found[32][4096];
    static int used = 0;
    struct stat st;
    if (!rel || !rel[0] || rel[0] == '/' || stat(rel, &st) == 0) return rel;
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0 || used >= 32) return rel;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash) return rel;
    *slash = '\0'; /* the directory holding the binary */
    const char *const layouts[] = {"%s/../share/minilora/%s", "%s/../%s"};
    for (int i = 0; i < 2; i++) {
        char candidate[8400];
        snprintf(candidate, sizeof candidate, layouts[i], exe, rel);
        if (stat(candidate, &st) == 0 && realpath(candidate, found[used])) return found[used++];
    }
    return rel;
}

int usage_fail(const char *cmd, const char *msg) {
    fprintf(stderr, "%s: %s (see %s --help)\n", cmd, msg, cmd);
    return EXIT_USAGE;
}

int check_writable(const char *path, ml_error *e) {
    struct stat st;
    if (!path[0]) return ml_fail(e, "the output path is empty"); /* would fail only when saving */
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return ml_fail(e, "%s: is a directory", path);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.probe.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) return ml_fail(e, "%s: cannot write here: %s", path, strerror(errno));
    close(fd);
    unlink(tmp);
    return 0;
}

int check_not_input(const char *path, const char *const *inputs, int n, ml_error *e) {
    struct stat out, in;
    if (stat(path, &out) != 0) return 0; /* a new file is no input */
    for (int i = 0; i < n; i++)
        if (inputs[i] && inputs[i][0] && stat(inputs[i], &in) == 0 && in.st_dev == out.st_dev &&
            in.st_ino == out.st_ino)
            return ml_fail(e, "%s: is also an input (%s); refusing to overwrite it", path, inputs[i]);
    return 0;
}

static void on_signal(int sig) { train_stop_signal = sig; }

void install_stop_handlers(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int loaded_model_init(loaded_model *lm, const char *base_path, const char *adapter_path,
                      ml_error *e) {
    memset(lm, 0, sizeof *lm);
    if (checkpoint_load(base_path, &lm->base, &lm->vocab, lm->base_sha, e)) return -1;
    lm->m = &lm->base;
    if (!adapter_path) return 0;
    int is_adapter;
    if (lora_probe(adapter_path, &is_adapter, e)) goto fail;
    if (is_adapter) {
        if (lora_load(&lm->adapter, &lm->base, adapter_path, lm->base_sha, e)) goto fail;
        return 0;
    }
    tok_vocab v;
    if (checkpoint_load(adapter_path, &lm->full, &v, NULL, e)) goto fail;
    int same = v.n == lm->vocab.n;
    for (int i = 0; same && i < v.n; i++) same = !strcmp(v.sym[i], lm->vocab.sym[i]);
    if (!same) {
        ml_fail(e, "%s: its vocabulary differs from the base's", adapter_path);
        goto fail;
    }
    lm->m = &lm->full;
    return 0;
fail:
    loaded_model_free(lm);
    return -1;
}

void loaded_model_free(loaded_model *lm) {
    lora_free(&lm->adapter);
    minigpt_free(&lm->full);
    minigpt_free(&lm->base);
    memset(lm, 0, sizeof *lm);
}
