/* provenance.c — key/value metadata for the files minilora writes. */
#include "provenance.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

int prov_add(provenance *p, ml_error *e, const char *key, const char *fmt, ...) {
    if (p->n >= PROV_MAX) return ml_fail(e, "provenance: too many keys at \"%s\"", key);
    va_list ap;
    va_start(ap, fmt);
    const int len = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *v = len >= 0 ? malloc((size_t)len + 1) : NULL;
    if (!v) return ml_fail(e, "provenance: out of memory at \"%s\"", key);
    va_start(ap, fmt);
    vsnprintf(v, (size_t)len + 1, fmt, ap);
    va_end(ap);
    p->keys[p->n] = key;
    p->vals[p->n++] = v;
    return 0;
}

void prov_free(provenance *p) {
    for (int i = 0; i < p->n; i++) free((char *)p->vals[i]);
    p->n = 0;
}
