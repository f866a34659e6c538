/* opts.c — table-driven flags and JSON config files for the commands. */
#include "opts.h"

#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "atomic_file.h"
#include "common.h"
#include "text.h"

void cli_error(const char *cmd, const char *msg) { fprintf(stderr, "%s: error: %s\n", cmd, msg); }

/* a and b come from the command line: shown under the one-line rule (text.h). */
static void usage_error(const char *cmd, const char *fmt, const char *a, const char *b) {
    char sa[512], sb[512];
    fprintf(stderr, "%s: ", cmd);
    fprintf(stderr, fmt, ml_one_line(sa, sizeof sa, a), ml_one_line(sb, sizeof sb, b));
    fprintf(stderr, " (see %s --help)\n", cmd);
}

void opts_usage(FILE *f, const char *cmd, const char *synopsis, const char *about,
                const opt_def *defs, int n) {
    fprintf(f, "usage: %s %s\n\n%s\n\noptions:\n", cmd, synopsis, about);
    for (int i = 0; i < n; i++) {
        char flag[64];
        snprintf(flag, sizeof flag, "--%s%s%s", defs[i].name, defs[i].arg ? " " : "",
                 defs[i].arg ? defs[i].arg : "");
        char dflt[1024] = "";
        const opt_def *d = &defs[i]; /* an alias shows the value of the option it names */
        for (int j = 0; defs[i].type == OPT_ALIAS && j < n; j++)
            if (defs[j].type != OPT_ALIAS && !strcmp(defs[j].name, defs[i].dst)) d = &defs[j];
        switch (d->type) {
        case OPT_INT: snprintf(dflt, sizeof dflt, " [%d]", *(int *)d->dst); break;
        case OPT_FLOAT: snprintf(dflt, sizeof dflt, " [%g]", (double)*(float *)d->dst); break;
        case OPT_U64:
            snprintf(dflt, sizeof dflt, " [%llu]", (unsigned long long)*(uint64_t *)d->dst);
            break;
        case OPT_STRING:
        case OPT_PATH:
        case OPT_PATHS:
            if (*(const char **)d->dst)
                snprintf(dflt, sizeof dflt, " [%s]", *(const char **)d->dst);
            break;
        case OPT_CHOICE: {
            const opt_choice *ch = d->dst;
            const char *c = ch->name(*ch->index);
            if (c) snprintf(dflt, sizeof dflt, " [%s]", c);
            break;
        }
        case OPT_FLAG: /* on by default (a config file): say so, and how to turn it off */
            if (*(int *)d->dst) snprintf(dflt, sizeof dflt, " [on; --no-%s turns it off]", d->name);
            break;
        default: break;
        }
        fprintf(f, "  %-24s %s%s\n", flag, defs[i].help, dflt);
    }
    fprintf(f, "  %-24s %s\n", "--help", "show this help and exit");
}

/* Stores text as the value of d; msg gets the reason on failure. */
static int set_value(const opt_def *d, const char *text, char *msg, size_t msglen) {
    char *end;
    errno = 0;
    switch (d->type) {
    case OPT_INT:
    case OPT_FLOAT:
    case OPT_U64: {
        double v = strtod(text, &end);
        if (end == text || *end || errno || !isfinite(v)) {
            snprintf(msg, msglen, "--%s expects a number, got '%s'", d->name, text);
            return -1;
        }
        if (d->type != OPT_FLOAT && v != floor(v)) {
            snprintf(msg, msglen, "--%s expects an integer, got '%s'", d->name, text);
            return -1;
        }
        if (v < d->min || v > d->max) {
            snprintf(msg, msglen, "--%s %s is out of range (%g..%g)", d->name, text, d->min,
                     d->max);
            return -1;
        }
        if (d->type == OPT_INT) *(int *)d->dst = (int)v;
        else if (d->type == OPT_FLOAT) *(float *)d->dst = (float)v;
        else { /* digits exactly; otherwise the checked value ("1e+17" is how a config file's
                * 1e17 arrives here, and strtoull alone would read it as 1) */
            char *uend;
            errno = 0;
            unsigned long long u = strtoull(text, &uend, 10);
            *(uint64_t *)d->dst = *uend == '\0' && errno == 0 ? (uint64_t)u : (uint64_t)v;
        }
        return 0;
    }
    case OPT_STRING:
    case OPT_PATH:
    case OPT_PATHS: *(const char **)d->dst = text; return 0;
    case OPT_CHOICE: {
        const opt_choice *ch = d->dst;
        char names[200] = "";
        for (int i = 0; ch->name(i); i++) {
            if (strcmp(ch->name(i), text) == 0) {
                *ch->index = i;
                return 0;
            }
            const size_t used = strlen(names);
            snprintf(names + used, sizeof names - used, "%s%s", i ? ", " : "", ch->name(i));
        }
        char shown[64];
        snprintf(msg, msglen, "--%s expects one of %s, got '%s'", d->name, names,
                 ml_one_line(shown, sizeof shown, text));
        return -1;
    }
    case OPT_FLAG: *(int *)d->dst = 1; return 0;
    case OPT_ALIAS: break; /* find resolves an alias to the option it names */
    case OPT_LIST: {
        opt_list *l = d->dst;
        if (l->n >= (int)(sizeof l->v / sizeof l->v[0])) {
            snprintf(msg, msglen, "--%s given too many times", d->name);
            return -1;
        }
        l->v[l->n++] = text;
        return 0;
    }
    }
    return -1;
}

/* The option named name[0..len), an alias resolved to the option it names (NULL when there is
 * none, or the alias names no option). */
static opt_def *find(opt_def *defs, int n, const char *name, size_t len) {
    for (int i = 0; i < n; i++)
        if (strlen(defs[i].name) == len && strncmp(defs[i].name, name, len) == 0) {
            if (defs[i].type != OPT_ALIAS) return &defs[i];
            const char *target = defs[i].dst;
            for (int j = 0; j < n; j++)
                if (defs[j].type != OPT_ALIAS && !strcmp(defs[j].name, target)) return &defs[j];
            return NULL;
        }
    return NULL;
}

/* The value d holds, as text to compare (alias conflicts). */
static void value_text(const opt_def *d, char *buf, size_t n) {
    switch (d->type) {
    case OPT_INT:
    case OPT_FLAG: snprintf(buf, n, "%d", *(int *)d->dst); break;
    case OPT_FLOAT: snprintf(buf, n, "%.9g", (double)*(float *)d->dst); break;
    case OPT_U64: snprintf(buf, n, "%llu", (unsigned long long)*(uint64_t *)d->dst); break;
    case OPT_CHOICE: snprintf(buf, n, "%d", *((const opt_choice *)d->dst)->index); break;
    case OPT_STRING:
    case OPT_PATH:
    case OPT_PATHS: snprintf(buf, n, "%s", *(const char **)d->dst); break;
    default: buf[0] = '\0';
    }
}

/* Which name last set each option in one place (the command line, or one config file), and to
 * what, so that an option and its alias given different values there are refused. */
typedef struct {
    unsigned char used[128];
    char name[128][64]; /* as written: "--lr-ratio", or a config key "lr_ratio" */
    char value[128][96];
} name_seen;

/* Records that option i (d) was just set under the name written; returns -1 with msg filled
 * when another name set it to a different value in the same place. */
static int note_name(name_seen *seen, const opt_def *d, int i, const char *written, char *msg,
                     size_t msglen) {
    char now[96], shown[64];
    value_text(d, now, sizeof now);
    ml_one_line(shown, sizeof shown, written);
    if (i >= 128) return 0;
    if (seen->used[i] && strcmp(seen->name[i], shown) != 0 && strcmp(seen->value[i], now) != 0) {
        char before[96], after[96];
        snprintf(msg, msglen, "%s %s and %s %s: two names of one setting given different values",
                 seen->name[i], ml_one_line(before, sizeof before, seen->value[i]), shown,
                 ml_one_line(after, sizeof after, now));
        return -1;
    }
    seen->used[i] = 1;
    snprintf(seen->name[i], sizeof seen->name[i], "%s", shown);
    memcpy(seen->value[i], now, sizeof now);
    return 0;
}

/* Strings from config files live for the process; this list keeps them reachable, so that
 * leak checkers (the ASan build) do not report them once the command's locals are gone. */
typedef struct kept_string {
    struct kept_string *next;
    char s[];
} kept_string;
static kept_string *kept_strings;

/* A copy of s that lives for the process, or NULL when out of memory. */
static const char *keep_string(const char *s) {
    size_t n = strlen(s) + 1;
    kept_string *k = malloc(sizeof *k + n);
    if (!k) return NULL;
    memcpy(k->s, s, n);
    k->next = kept_strings;
    kept_strings = k;
    return k->s;
}

/* value (an OPT_PATH, or with list set an OPT_PATHS) from the config file at cfg_path, with
 * each relative path resolved against the config file's directory: a string kept for the
 * process (keep_string), or NULL when out of memory. "" and absolute paths are unchanged. */
static const char *config_path_value(const char *cfg_path, const char *value, int list) {
    const char *slash = strrchr(cfg_path, '/');
    if (!slash) return keep_string(value);              /* the config is in the working directory */
    const size_t dlen = (size_t)(slash - cfg_path) + 1; /* the directory with its '/' */
    size_t items = 1;
    for (const char *c = value; list && *c; c++) items += *c == ',';
    char *buf = malloc(strlen(value) + items * dlen + 1);
    if (!buf) return NULL;
    char *w = buf;
    for (const char *item = value; item;) {
        const char *comma = list ? strchr(item, ',') : NULL;
        const size_t len = comma ? (size_t)(comma - item) : strlen(item);
        if (len && item[0] != '/') {
            memcpy(w, cfg_path, dlen);
            w += dlen;
        }
        memcpy(w, item, len);
        w += len;
        if (comma) *w++ = ',';
        item = comma ? comma + 1 : NULL;
    }
    *w = '\0';
    const char *kept = keep_string(buf);
    free(buf);
    return kept;
}

/* Applies a JSON config file: keys are flag names with '_' for '-'; unknown keys are errors.
 * Marks set[i] for every option i the file names. */
static int apply_config(const char *cmd, const char *path, opt_def *defs, int n, int report,
                        unsigned char *set) {
    char *text;
    size_t len;
    ml_error e;
    if (read_file(path, 1 << 20, &text, &len, &e)) {
        if (report) fprintf(stderr, "%s: error: %s\n", cmd, e.msg);
        return -1;
    }
    /* a key or value with a NUL (raw or \u0000) would be cut there by cJSON: "rank\u0000junk"
     * must not set rank */
    if (text_json_has_nul(text, len)) {
        if (report)
            fprintf(stderr, "%s: error: %s: a key or value holds the NUL character \\u0000\n", cmd,
                    path);
        free(text);
        return -1;
    }
    cJSON *o = cJSON_ParseWithOpts(text, NULL, 1); /* nothing may follow the object */
    free(text);
    if (!cJSON_IsObject(o)) {
        if (report) fprintf(stderr, "%s: error: %s: not a JSON object\n", cmd, path);
        cJSON_Delete(o);
        return -1;
    }
    int rc = 0;
    static name_seen seen; /* large; commands parse once, one file at a time */
    memset(&seen, 0, sizeof seen);
    for (const cJSON *it = o->child; it && !rc; it = it->next) {
        char key[64], shown[256];
        /* a key too long for key[] is unknown, not its cut prefix */
        snprintf(key, sizeof key, "%s", strlen(it->string) < sizeof key ? it->string : "");
        for (char *c = key; *c; c++)
            if (*c == '_') *c = '-';
        /* the key as messages show it: one line (cJSON lets raw control bytes into strings) */
        ml_one_line(shown, sizeof shown, it->string);
        opt_def *d = find(defs, n, key, strlen(key));
        char msg[300] = "", num[64];
        if (d && d - defs < 128) set[d - defs] = 1;
        if (!d || strcmp(d->name, "config") == 0) {
            snprintf(msg, sizeof msg, "unknown setting \"%s\"", shown);
        } else if (d->type == OPT_FLAG) {
            if (!cJSON_IsBool(it)) snprintf(msg, sizeof msg, "\"%s\" must be true or false", shown);
            else *(int *)d->dst = cJSON_IsTrue(it);
        } else if (d->type == OPT_STRING || d->type == OPT_PATH || d->type == OPT_PATHS) {
            if (!cJSON_IsString(it)) snprintf(msg, sizeof msg, "\"%s\" must be a string", shown);
            else {
                /* names stay as written; relative paths are relative to this file */
                const char *kept = d->type == OPT_STRING ? keep_string(it->valuestring)
                                                         : config_path_value(path, it->valuestring,
                                                                             d->type == OPT_PATHS);
                if (!kept) snprintf(msg, sizeof msg, "out of memory");
                else *(const char **)d->dst = kept;
            }
        } else if (d->type == OPT_CHOICE) {
            if (!cJSON_IsString(it))
                snprintf(msg, sizeof msg, "\"%s\" must be a string", it->string);
            else set_value(d, it->valuestring, msg, sizeof msg);
        } else if (d->type == OPT_LIST) {
            snprintf(msg, sizeof msg, "\"%s\" cannot be set in a config file", shown);
        } else if (!cJSON_IsNumber(it)) {
            snprintf(msg, sizeof msg, "\"%s\" must be a number", shown);
        } else {
            snprintf(num, sizeof num, "%.17g", it->valuedouble);
            set_value(d, num, msg, sizeof msg);
        }
        if (!msg[0] && d) note_name(&seen, d, (int)(d - defs), it->string, msg, sizeof msg);
        if (msg[0]) {
            if (report) fprintf(stderr, "%s: error: %s: %s\n", cmd, path, msg);
            rc = -1;
        }
    }
    cJSON_Delete(o);
    return rc;
}

/* Every number or choice option must have its default in the defaults file: the C tables hold
 * none. */
static int check_complete(const char *cmd, const char *path, const opt_def *defs, int n,
                          const unsigned char *set) {
    for (int i = 0; i < n; i++)
        if ((defs[i].type == OPT_INT || defs[i].type == OPT_FLOAT || defs[i].type == OPT_U64 ||
             defs[i].type == OPT_CHOICE) &&
            !set[i]) {
            fprintf(stderr,
                    "%s: error: %s: no default for \"%s\" (every number or choice has one there)\n",
                    cmd, path, defs[i].name);
            return -1;
        }
    return 0;
}

#define MAX_POSITIONAL 256

/* Appends p to list (MAX_POSITIONAL entries, *np used): every positional is taken, or the
 * command fails with a usage error naming the limit (never one silently dropped). */
static int add_positional(const char *cmd, char **list, int *np, char *p) {
    if (*np == MAX_POSITIONAL) {
        char limit[16];
        snprintf(limit, sizeof limit, "%d", MAX_POSITIONAL);
        usage_error(cmd, "more than %s file or prompt arguments%s", limit, "");
        return -1;
    }
    list[(*np)++] = p;
    return 0;
}

/* What the last opts_parse set from a --config file or a flag (opts_given). */
static const opt_def *given_defs;
static int given_n;
static unsigned char given[128];

static void mark_given(const opt_def *defs, int n, const opt_def *d) {
    if (d - defs < 128) given[d - defs] = 1;
    if (d->type == OPT_ALIAS) { /* the option it names */
        const opt_def *t = find((opt_def *)defs, n, d->dst, strlen(d->dst));
        if (t && t - defs < 128) given[t - defs] = 1;
    }
}

int opts_given(const char *name) {
    for (int i = 0; i < given_n && i < 128; i++) {
        const opt_def *d = &given_defs[i];
        if (given[i] && (!strcmp(d->name, name) ||
                         (d->type == OPT_ALIAS && !strcmp((const char *)d->dst, name))))
            return 1;
    }
    return 0;
}

int opts_parse(const char *synopsis, const char *about, const char *defaults, opt_def *defs, int n,
               int argc, char **argv, int *first_pos) {
    given_defs = defs;
    given_n = n;
    memset(given, 0, sizeof given);
    const char *cmd = argv[0];
    /* pass 1: --help and --config */
    opt_def *cfg = find(defs, n, "config", 6);
    int help = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) break;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) help = 1;
        if (cfg && strncmp(argv[i], "--config", 8) == 0) {
            if (argv[i][8] == '=') *(const char **)cfg->dst = argv[i] + 9;
            else if (argv[i][8] == '\0' && i + 1 < argc) *(const char **)cfg->dst = argv[i + 1];
        }
    }
    const char *user_cfg = cfg ? *(const char **)cfg->dst : NULL;
    if (user_cfg && !user_cfg[0]) user_cfg = NULL; /* --config "": the defaults alone */
    unsigned char set[128] = {0};
    /* the help shows the values in effect, i.e. after the defaults and the config file; a file
     * that cannot be read does not stand in the way of the help */
    if (help) {
        if (defaults) apply_config(cmd, defaults, defs, n, 0, set);
        if (user_cfg) apply_config(cmd, user_cfg, defs, n, 0, set);
        opts_usage(stdout, cmd, synopsis, about, defs, n);
        if (defaults)
            printf("\nDefaults come from %s; a --config file overrides them, and flags override "
                   "both.\n",
                   defaults);
        return 1;
    }
    if (n > (int)sizeof set) {
        fprintf(stderr, "%s: error: more than %d options\n", cmd, (int)sizeof set);
        return -1;
    }
    if (defaults && (apply_config(cmd, defaults, defs, n, 1, set) ||
                     check_complete(cmd, defaults, defs, n, set)))
        return -1;
    unsigned char user_set[128] = {0};
    if (user_cfg && apply_config(cmd, user_cfg, defs, n, 1, user_set)) return -1;
    for (int i = 0; i < n && i < 128; i++)
        if (user_set[i]) mark_given(defs, n, &defs[i]);
    /* pass 2: every flag, in order; positionals may come anywhere */
    static char *positional[MAX_POSITIONAL];
    int np = 0;
    static name_seen seen;
    memset(&seen, 0, sizeof seen);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            while (++i < argc)
                if (add_positional(cmd, positional, &np, argv[i])) return -1;
            break;
        }
        if (a[0] != '-' || a[1] == '\0') {
            if (add_positional(cmd, positional, &np, argv[i])) return -1;
            continue;
        }
        if (a[1] != '-') {
            usage_error(cmd, "unknown option '%s'%s", a, "");
            return -1;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        opt_def *d = find(defs, n, name, eq ? (size_t)(eq - name) : strlen(name));
        /* --no-FLAG turns off a flag a config file turned on */
        if (!d && !eq && strncmp(name, "no-", 3) == 0) {
            opt_def *f = find(defs, n, name + 3, strlen(name + 3));
            if (f && f->type == OPT_FLAG) {
                *(int *)f->dst = 0;
                mark_given(defs, n, f);
                continue;
            }
        }
        if (!d) {
            usage_error(cmd, "unknown option '%s'%s", a, "");
            return -1;
        }
        const char *val = NULL;
        if (d->type == OPT_FLAG) {
            if (eq) {
                usage_error(cmd, "option '--%s' takes no value%s", d->name, "");
                return -1;
            }
        } else if (eq) {
            val = eq + 1;
        } else if (i + 1 < argc) {
            val = argv[++i];
        } else {
            usage_error(cmd, "option '--%s' needs a value%s", d->name, "");
            return -1;
        }
        char msg[300];
        if (d->type == OPT_STRING && strcmp(d->name, "config") == 0) continue; /* applied above */
        char written[72];
        snprintf(written, sizeof written, "--%.*s", (int)(eq ? (size_t)(eq - name) : strlen(name)),
                 name);
        opt_def as = *d; /* messages name the flag as written (an alias names itself) */
        as.name = written + 2;
        if (set_value(&as, val, msg, sizeof msg) ||
            note_name(&seen, d, (int)(d - defs), written, msg, sizeof msg)) {
            usage_error(cmd, "%s%s", msg, "");
            return -1;
        }
        mark_given(defs, n, d);
    }
    /* move the positionals to the end of argv, in order, so callers index them simply */
    for (int i = 0; i < np; i++) argv[argc - np + i] = positional[i];
    *first_pos = argc - np;
    return 0;
}
