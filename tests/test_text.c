/* test_text.c — the one-line rule for untrusted text (ml_one_line), ml_fail/ml_wrap as its last
 * defence, and the shared helpers of text.h (UTF-8 decoding, JSON strings, file stems). */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_line_rule),
        cmocka_unit_test(test_errors_are_one_line),
        cmocka_unit_test(test_utf8_decode),
        cmocka_unit_test(test_json_and_stem),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
