/* test_text.c — the one-line rule for untrusted text (ml_one_line), ml_fail/ml_wrap as its last
 * defence, and the shared helpers of text.h (UTF-8 decoding, JSON strings, file stems). */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "checked.h"
#include "ml_error.h"
#include "text.h"

static void shown(const char *in, size_t n, const char *want) {
    char buf[128];
    assert_true(n <= sizeof buf);
    assert_ptr_equal(ml_one_line(buf, n, in), buf);
    assert_string_equal(buf, want);
    assert_true(strlen(buf) < n);
    assert_false(text_has_control(buf));
    assert_true(text_utf8_valid(buf));
}

static void test_one_line_rule(void **state) {
    shown("plain text", 64, "plain text");
    shown(NULL, 64, "");
    shown("a\nb\rc\td", 64, "a\\nb\\rc\\td");
    shown("bell\x07 del\x7f", 64, "bell\\x07 del\\x7f");
    shown("bad \xff byte, cut \xe2\x82", 64, "bad \\xff byte, cut \\xe2\\x82");
    shown("overlong \xc0\xaf", 64, "overlong \\xc0\\xaf");
    shown("C1 \xc2\x85 LS \xe2\x80\xa8 PS \xe2\x80\xa9", 64, "C1 \\u0085 LS \\u2028 PS \\u2029");
    shown("caf\xc3\xa9 \xe2\x82\xac back\\slash", 64, "caf\xc3\xa9 \xe2\x82\xac back\\slash");
    /* bounded: cut on a character boundary, "…" marks the cut */
    shown("0123456789", 11, "0123456789");
    shown("0123456789", 10, "012345\xe2\x80\xa6");
    shown("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 8, "\xc3\xa9\xc3\xa9\xe2\x80\xa6");
    shown("\n\n\n\n", 8, "\\n\\n\xe2\x80\xa6");
    shown("abc", 3, "");  /* no room for "…": empty rather than a partial character */
    shown("ab", 3, "ab"); /* fits exactly */
    char one[1] = {'x'};
    ml_one_line(one, 1, "abc");
    assert_int_equal(one[0], '\0');
}

static void test_errors_are_one_line(void **state) {
    ml_error e;
    assert_int_equal(ml_fail(&e, "%s: value is %s", "f.safetensors", "two\nlines"), -1);
    assert_string_equal(e.msg, "f.safetensors: value is two\\nlines");
    assert_int_equal(ml_wrap(&e, "loading %s", "x\ry"), -1);
    assert_string_equal(e.msg, "loading x\\ry: f.safetensors: value is two\\nlines");
    assert_int_equal(ml_fail(NULL, "ignored"), -1);
    char big[2000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    ml_fail(&e, "%s", big);
    assert_true(strlen(e.msg) < sizeof e.msg);
    assert_non_null(strstr(e.msg, "\xe2\x80\xa6"));
    ml_wrap(&e, "prefix");
    assert_memory_equal(e.msg, "prefix: aaa", 11);
    assert_true(strlen(e.msg) < sizeof e.msg);
}

static void test_utf8_decode(void **state) {
    uint32_t cp = 0;
    assert_int_equal(text_utf8_decode("A", 1, &cp), 1);
    assert_int_equal(cp, 'A');
    assert_int_equal(text_utf8_decode("\xc3\xa9", 2, &cp), 2);
    assert_int_equal(cp, 0xe9);
    assert_int_equal(text_utf8_decode("\xe2\x82\xac", 3, &cp), 3);
    assert_int_equal(cp, 0x20ac);
    assert_int_equal(text_utf8_decode("\xf0\x9f\x98\x80", 4, &cp), 4);
    assert_int_equal(cp, 0x1f600);
    assert_int_equal(text_utf8_decode("\xe2\x82\xac", 2, NULL), 0);     /* truncated */
    assert_int_equal(text_utf8_decode("\xc1\xbf", 2, NULL), 0);         /* overlong */
    assert_int_equal(text_utf8_decode("\xe0\x9f\xbf", 3, NULL), 0);     /* overlong */
    assert_int_equal(text_utf8_decode("\xed\xa0\x80", 3, NULL), 0);     /* surrogate */
    assert_int_equal(text_utf8_decode("\xf4\x90\x80\x80", 4, NULL), 0); /* > U+10FFFF */
    assert_int_equal(text_utf8_decode("\x80", 1, NULL), 0);             /* continuation */
    assert_int_equal(text_utf8_decode("", 0, NULL), 0);
    assert_true(text_utf8_valid("caf\xc3\xa9"));
    assert_false(text_utf8_valid("caf\xc3"));
}

static void test_json_and_stem(void **state) {
    char *out = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&out, &n);
    assert_non_null(f);
    text_json_print(f, "a\"b\\c\nd\x7f\xc3\xa9");
    fclose(f);
    assert_string_equal(out, "\"a\\\"b\\\\c\\u000ad\\u007f\xc3\xa9\"");
    free(out);
    char buf[64];
    assert_string_equal(text_stem(buf, sizeof buf, "data/irreg.jsonl"), "irreg");
    assert_string_equal(text_stem(buf, sizeof buf, "runs/a.b/c"), "c");
    assert_string_equal(text_stem(buf, sizeof buf, "x.tar.gz"), "x.tar");
    assert_string_equal(text_stem(buf, 4, "abcdef.txt"), "abc");
    assert_true(ml_now_s() > 0);
}

/* A 4,000-character path: the message keeps its head and its tail (file, line, reason). */
static void test_head_and_tail(void **state) {
    char path[4001];
    memset(path, 'd', sizeof path - 1);
    path[sizeof path - 1] = '\0';
    memcpy(path, "/start/", 7);
    memcpy(path + sizeof path - 12, "/file.jsonl", 11);
    ml_error e;
    ml_fail(&e, "%s:%d: %s", path, 3, "a symbol outside the vocabulary");
    assert_true(strlen(e.msg) < sizeof e.msg);
    assert_memory_equal(e.msg, "/start/", 7);
    assert_non_null(strstr(e.msg, "\xe2\x80\xa6"));
    assert_non_null(strstr(e.msg, "/file.jsonl:3: a symbol outside the vocabulary"));
    assert_true(text_utf8_valid(e.msg));
    ml_wrap(&e, "%s", path); /* a long prefix too: the old reason survives */
    assert_true(strlen(e.msg) < sizeof e.msg);
    assert_non_null(strstr(e.msg, "a symbol outside the vocabulary"));
    assert_memory_equal(e.msg, "/start/", 7);
    /* escapes count: a long path of line breaks is still one line, head and tail kept */
    char nl[1500];
    memset(nl, '\n', sizeof nl - 1);
    nl[sizeof nl - 1] = '\0';
    ml_fail(&e, "%s: end", nl);
    assert_false(text_has_control(e.msg));
    assert_non_null(strstr(e.msg, "\\n: end"));
    /* text_short_path: short paths unchanged, long ones head…tail on character boundaries */
    char buf[TEXT_PATH_SHOWN];
    assert_string_equal(text_short_path(buf, sizeof buf, "data/irreg.jsonl"), "data/irreg.jsonl");
    text_short_path(buf, sizeof buf, path);
    assert_true(strlen(buf) < TEXT_PATH_SHOWN);
    assert_memory_equal(buf, "/start/", 7);
    assert_string_equal(buf + strlen(buf) - 11, "/file.jsonl");
    char wide[1000] = "";
    for (int i = 0; i < 300; i++) strcat(wide, "\xc3\xa9"); /* é: two bytes each */
    text_short_path(buf, sizeof buf, wide);
    assert_true(text_utf8_valid(buf));
    assert_non_null(strstr(buf, "\xe2\x80\xa6"));
    text_head_tail(buf, 12, "0123456789abcdefghij", 4);
    assert_string_equal(buf, "0123\xe2\x80\xa6ghij"); /* 4 + 3 + 4 bytes and the NUL */
    text_head_tail(buf, 12, "short", 4);
    assert_string_equal(buf, "short");
}

static void test_json_nul(void **state) {
    const char *nul = "{\"prompt\": \"go\\u0000###\"}";
    assert_true(text_json_has_nul(nul, strlen(nul)));
    const char *key = "{\"rank\\u0000junk\": 4}";
    assert_true(text_json_has_nul(key, strlen(key)));
    const char *raw = "{\"a\": \"x\0y\"}";
    assert_true(text_json_has_nul(raw, 12));
    const char *text = "{\"a\": \"back\\\\u0000slash\"}"; /* \\ then u0000: text */
    assert_false(text_json_has_nul(text, strlen(text)));
    const char *other = "{\"a\": \"\\u0001 \\u00000\"}";
    assert_true(text_json_has_nul(other, strlen(other)));
    const char *cut = "{\"a\": \"\\u000"; /* too short to be the escape */
    assert_false(text_json_has_nul(cut, strlen(cut)));
    assert_false(text_json_has_nul("\\u0000", 5)); /* only the first n bytes count */
}

static void test_checked_and_numbers(void **state) {
    size_t z = 7;
    assert_true(size_mul_ok(&z, 3, 5));
    assert_int_equal(z, 15);
    assert_false(size_mul_ok(&z, SIZE_MAX / 2 + 1, 2));
    assert_int_equal(z, 15);
    assert_true(size_mul_ok(&z, 0, SIZE_MAX));
    assert_false(size_mul3_ok(&z, (size_t)1 << 32, (size_t)1 << 32, 4));
    int64_t v = 0;
    assert_true(i64_mul_ok(&v, 1000000, 4096));
    assert_false(i64_mul_ok(&v, INT64_MAX, 2));
    assert_false(i64_mul_ok(&v, -1, 2));
    char *out = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&out, &n);
    assert_non_null(f);
    text_json_number(f, "%.2f", 1.5);
    fputc(',', f);
    text_json_number(f, "%.2f", NAN);
    fputc(',', f);
    text_json_number(f, "%.2f", -INFINITY);
    fclose(f);
    assert_string_equal(out, "1.50,null,null");
    free(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_line_rule),       cmocka_unit_test(test_errors_are_one_line),
        cmocka_unit_test(test_utf8_decode),         cmocka_unit_test(test_json_and_stem),
        cmocka_unit_test(test_head_and_tail),       cmocka_unit_test(test_json_nul),
        cmocka_unit_test(test_checked_and_numbers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
