/* adapter_set.c — named adapters on one base, switched per prompt (adapter_set.h). */
#include "adapter_set.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text.h"

static int name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

/* Length of the name at the start of s (name characters only), 0 when none. */
static size_t name_len_at(const char *s) {
    size_t k = 0;
    while (name_char(s[k])) k++;
    return k;
}

int adapter_set_is_named(const char *spec, size_t *name_len) {
    const size_t k = name_len_at(spec);
    if (!k || k >= ADAPTER_NAME_MAX || spec[k] != '=') return 0;
    *name_len = k;
    return 1;
}

int adapter_set_check_specs(const char *const *specs, int n, ml_error *e) {
    char shown[96];
    if (n < 1 || n > ADAPTER_SET_MAX)
        return ml_fail(e, "1..%d named adapters, not %d", ADAPTER_SET_MAX, n);
    for (int i = 0; i < n; i++) {
        size_t k = 0;
        if (!adapter_set_is_named(specs[i], &k))
            return ml_fail(e,
                           "--adapter %s: expected NAME=FILE, NAME of letters, digits, '_' or "
                           "'-' (at most %d)",
                           ml_one_line(shown, sizeof shown, specs[i]), ADAPTER_NAME_MAX - 1);
        if (k == 4 && !strncmp(specs[i], "base", 4))
            return ml_fail(e, "--adapter %s: the name 'base' is taken (@base is the base alone)",
                           ml_one_line(shown, sizeof shown, specs[i]));
        for (int j = 0; j < i; j++) {
            size_t kj = 0;
            adapter_set_is_named(specs[j], &kj);
            if (kj == k && !strncmp(specs[j], specs[i], k))
                return ml_fail(e, "--adapter %s: the name '%.*s' is given twice",
                               ml_one_line(shown, sizeof shown, specs[i]), (int)k, specs[i]);
        }
    }
    return 0;
}

int adapter_set_init(adapter_set *s, minigpt *m, const char *base_sha256, const char *const *specs,
                     int n, float strength, ml_error *e) {
    memset(s, 0, sizeof *s);
    s->active = ADAPTER_SET_BASE;
    if (adapter_set_check_specs(specs, n, e)) return -1;
    if (!(s->adapters = calloc((size_t)n, sizeof(lora)))) return ml_fail(e, "out of memory");
    for (int i = 0; i < n; i++) {
        size_t k = 0;
        adapter_set_is_named(specs[i], &k);
        const char *file = specs[i] + k + 1;
        int is_adapter;
        if (lora_probe(file, &is_adapter, e)) return -1;
        if (!is_adapter)
            return ml_fail(e, "%s: not a LoRA adapter (only adapters switch per prompt)", file);
        if (lora_load(&s->adapters[i], m, file, base_sha256, e)) return -1;
        s->n = i + 1; /* loaded: freed by adapter_set_free from here on */
        memcpy(s->names[i], specs[i], k);
        s->names[i][k] = '\0';
        lora_uninstall(&s->adapters[i]); /* set aside for the next one */
        if (lora_set_strength(&s->adapters[i], strength, e)) return ml_wrap(e, "%s", file);
    }
    return 0;
}

void adapter_set_free(adapter_set *s) {
    for (int i = 0; i < s->n; i++) lora_free(&s->adapters[i]);
    free(s->adapters);
    memset(s, 0, sizeof *s);
    s->active = ADAPTER_SET_BASE;
}

int adapter_set_select(adapter_set *s, int i, int *changed, ml_error *e) {
    *changed = 0;
    if (i != ADAPTER_SET_BASE && (i < 0 || i >= s->n))
        return ml_fail(e, "no adapter %d (%d loaded)", i, s->n);
    if (i == s->active) return 0;
    if (s->active != ADAPTER_SET_BASE) lora_uninstall(&s->adapters[s->active]);
    s->active = ADAPTER_SET_BASE;
    *changed = 1;
    if (i != ADAPTER_SET_BASE && lora_install(&s->adapters[i], e)) return -1;
    s->active = i;
    return 0;
}

int adapter_set_route(const adapter_set *s, const char *text, int *index, const char **rest,
                      ml_error *e) {
    *index = 0;
    *rest = text;
    if (text[0] != '@') return 0;
    const size_t k = name_len_at(text + 1);
    char names[ADAPTER_SET_MAX * (ADAPTER_NAME_MAX + 2) + 8] = "";
    for (int i = 0; i < s->n; i++) {
        strcat(names, s->names[i]);
        strcat(names, ", ");
    }
    strcat(names, "base");
    char shown[48];
    if (text[1 + k] != ' ' || !text[2 + k])
        return ml_fail(e, "'%s': a prompt that selects an adapter is \"@NAME prompt\" (NAME: %s)",
                       ml_one_line(shown, sizeof shown, text), names);
    *rest = text + k + 2;
    if (k == 4 && !strncmp(text + 1, "base", 4)) {
        *index = ADAPTER_SET_BASE;
        return 0;
    }
    for (int i = 0; i < s->n; i++)
        if (strlen(s->names[i]) == k && !strncmp(s->names[i], text + 1, k)) {
            *index = i;
            return 0;
        }
    return ml_fail(e, "unknown adapter '@%.*s' (loaded: %s)", (int)k, text + 1, names);
}
