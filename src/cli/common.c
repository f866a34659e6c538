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
#include "train.h"

int usage_fail(const char *cmd, const char *msg) {
    fprintf(stderr, "%s: %s (see %s --help)\n", cmd, msg, cmd);
    return EXIT_USAGE;
}

int check_writable(const char *path, ml_error *e) {
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return ml_fail(e, "%s: is a directory", path);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.probe.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) return ml_fail(e, "%s: cannot write here: %s", path, strerror(errno));
    close(fd);
    unlink(tmp);
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
    st_file probe;
    if (st_open(&probe, adapter_path, e)) goto fail;
    const int is_adapter = st_meta(&probe, "peft_type") != NULL;
    st_close(&probe);
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
