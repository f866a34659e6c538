/* adapter_set.h — several LoRA adapters loaded on one base, one of them (or none) installed at
 * a time: lora-generate's per-prompt switching, without reloading the base.
 *
 * Each adapter has a name ([A-Za-z0-9_-], at most ADAPTER_NAME_MAX - 1 bytes, not "base").
 * A prompt selects one with a prefix: "@NAME " then the prompt; "@base " selects the base
 * alone; a prompt without the prefix uses the first adapter. Switching only moves plug-ins in
 * and out of the base's Linear slots (lora_install / lora_uninstall): the outputs are those of
 * base + that adapter alone, bit for bit.
 */
#ifndef ADAPTER_SET_H
#define ADAPTER_SET_H

#include "lora.h"
#include "minigpt.h"
#include "ml_error.h"

#define ADAPTER_SET_MAX 16
#define ADAPTER_NAME_MAX 32
#define ADAPTER_SET_BASE (-1) /* the index that selects the base alone */

typedef struct {
    int n;
    char names[ADAPTER_SET_MAX][ADAPTER_NAME_MAX];
    lora *adapters; // (n) owned
    int active;     /* index of the installed adapter, or ADAPTER_SET_BASE */
} adapter_set;

/* Whether spec is "NAME=FILE" with a valid NAME (see above): 1 and *name_len, or 0. */
int adapter_set_is_named(const char *spec, size_t *name_len);

/* Checks the n "NAME=FILE" specs without opening anything: a bad, reserved ("base") or
 * repeated name is an error naming the spec. */
int adapter_set_check_specs(const char *const *specs, int n, ml_error *e);

/* Loads the n "NAME=FILE" specs onto m at the given strength (lora_set_strength), refusing a
 * bad or repeated name, a file that is not a LoRA adapter, or one trained on another base
 * (base_sha256; NULL skips that check), with one line naming the spec. Nothing is installed
 * afterwards (active is the base). Free with adapter_set_free (also after a failure). */
int adapter_set_init(adapter_set *s, minigpt *m, const char *base_sha256, const char *const *specs,
                     int n, float strength, ml_error *e);
void adapter_set_free(adapter_set *s);

/* Installs adapter i (ADAPTER_SET_BASE: none); *changed tells whether the plug-ins changed
 * (then workspaces of the model must be rebuilt). */
int adapter_set_select(adapter_set *s, int i, int *changed, ml_error *e);

/* The adapter a prompt line asks for: "@NAME rest" gives NAME's index (or ADAPTER_SET_BASE
 * for @base) and *rest after the space; a line without '@' gives 0 and the whole line. An
 * unknown name is an error that lists the names. *rest points into text. */
int adapter_set_route(const adapter_set *s, const char *text, int *index, const char **rest,
                      ml_error *e);

#endif
