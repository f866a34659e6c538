/* text.c — untrusted text in messages, UTF-8 decoding, JSON strings, file stems, the clock. */
#include "text.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

size_t text_utf8_decode(const char *s, size_t n, uint32_t *cp) {
    if (n == 0) return 0;
    const unsigned char *p = (const unsigned char *)s;
    const unsigned char c = p[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
    uint32_t v;
    if (c < 0x80) {
        if (cp) *cp = c;
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        v = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        v = c & 0x0f;
        if (c == 0xe0) lo = 0xa0; /* overlong */
        if (c == 0xed) hi = 0x9f; /* surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        v = c & 0x07;
        if (c == 0xf0) lo = 0x90; /* overlong */
        if (c == 0xf4) hi = 0x8f; /* above U+10FFFF */
    } else {
        return 0;
    }
    if (n < len || p[1] < lo || p[1] > hi) return 0;
    for (size_t i = 1; i < len; i++) {
        if (p[i] < 0x80 || p[i] > 0xbf) return 0;
        v = (v << 6) | (p[i] & 0x3f);
    }
    if (cp) *cp = v;
    return len;
}

int text_utf8_valid(const char *s) {
    const size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        const size_t k = text_utf8_decode(s + i, n - i, NULL);
        if (!k) return 0;
        i += k;
    }
    return 1;
}

int text_has_control(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) return 1;
    return 0;
}

/* How ml_one_line shows the character at s[i] (len bytes in all): into piece (16 bytes), its
 * length returned; *k gets the number of input bytes it stands for. */
static size_t shown_piece(const char *s, size_t len, size_t i, char *piece, size_t *k) {
    uint32_t cp = 0;
    const unsigned char b = (unsigned char)s[i];
    *k = text_utf8_decode(s + i, len - i, &cp);
    if (*k == 0) { /* not UTF-8: the byte */
        *k = 1;
        return (size_t)snprintf(piece, 16, "\\x%02x", b);
    }
    if (cp == '\n' || cp == '\r' || cp == '\t')
        return (size_t)snprintf(piece, 16, "\\%c", cp == '\n' ? 'n' : cp == '\r' ? 'r' : 't');
    if (cp < 0x20 || cp == 0x7f) return (size_t)snprintf(piece, 16, "\\x%02x", b);
    if ((cp >= 0x80 && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029)
        return (size_t)snprintf(piece, 16, "\\u%04x", (unsigned)cp);
    memcpy(piece, s + i, *k);
    return *k;
}

const char *ml_one_line(char *buf, size_t n, const char *s) {
    static const char ellipsis[] = "\xe2\x80\xa6"; /* … */
    if (n == 0) return buf;
    if (!s) s = "";
    const size_t len = strlen(s);
    char piece[16];
    size_t k, total = 0;
    for (size_t i = 0; i < len && total < n; i += k) total += shown_piece(s, len, i, piece, &k);
    /* all of it when it fits; else whole pieces while "…" and the NUL still fit after them */
    const size_t reserve = total < n ? 1 : sizeof ellipsis;
    size_t out = 0;
    for (size_t i = 0; i < len; i += k) {
        const size_t pn = shown_piece(s, len, i, piece, &k);
        if (out + pn + reserve > n) break;
        memcpy(buf + out, piece, pn);
        out += pn;
    }
    if (total >= n && n >= sizeof ellipsis) {
        memcpy(buf + out, ellipsis, sizeof ellipsis - 1);
        out += sizeof ellipsis - 1;
    }
    buf[out] = '\0';
    return buf;
}

/* 1 when byte c begins a character (is not a UTF-8 continuation byte). */
static int char_start(char c) { return ((unsigned char)c & 0xc0) != 0x80; }

const char *text_head_tail(char *buf, size_t n, const char *s, size_t head) {
    static const char ellipsis[] = "\xe2\x80\xa6"; /* … */
    if (n == 0) return buf;
    if (!s) s = "";
    const size_t len = strlen(s);
    /* a shown character is at most 4 bytes per input byte ("\xNN") */
    char *all = len < ((size_t)-1) / 4 - 1 ? malloc(4 * len + 1) : NULL;
    if (!all || n < sizeof ellipsis + 2) { /* no room to do better: the head alone */
        free(all);
        return ml_one_line(buf, n, s);
    }
    ml_one_line(all, 4 * len + 1, s);
    const size_t m = strlen(all);
    if (m < n) {
        memcpy(buf, all, m + 1);
        free(all);
        return buf;
    }
    const size_t room = n - sizeof ellipsis; /* bytes for head and tail */
    size_t h = head < room ? head : room;
    while (h > 0 && !char_start(all[h])) h--;
    size_t t = m - (room - h); /* the tail starts here */
    while (t < m && !char_start(all[t])) t++;
    memcpy(buf, all, h);
    memcpy(buf + h, ellipsis, sizeof ellipsis - 1);
    memcpy(buf + h + sizeof ellipsis - 1, all + t, m - t + 1);
    free(all);
    return buf;
}

const char *text_short_path(char *buf, size_t n, const char *path) {
    return text_head_tail(buf, n < TEXT_PATH_SHOWN ? n : TEXT_PATH_SHOWN, path, TEXT_PATH_HEAD);
}

int text_json_has_nul(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\0') return 1;
        if (s[i] != '\\' || i + 1 >= n) continue;
        if (s[i + 1] == 'u' && i + 5 < n && memcmp(s + i + 2, "0000", 4) == 0) return 1;
        i++; /* the escaped character: "\\\\" is a backslash, not the start of an escape */
    }
    return 0;
}

void text_json_number(FILE *f, const char *fmt, double v) {
    if (isfinite(v)) fprintf(f, fmt, v);
    else fputs("null", f);
}

void text_json_print(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f) fprintf(f, "\\u%04x", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

const char *text_stem(char *buf, size_t n, const char *path) {
    const char *s = strrchr(path, '/');
    s = s ? s + 1 : path;
    const char *dot = strrchr(s, '.');
    snprintf(buf, n, "%.*s", dot ? (int)(dot - s) : (int)strlen(s), s);
    return buf;
}

double ml_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
