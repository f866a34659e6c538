/* test_sha256.c — FIPS 180-4 test vectors, streaming equivalence, and sha256_file_hex
 * against the system's sha256sum. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "sha256.h"

static void check(const char *msg, const char *want) {
    char hex[65];
    sha256_hex(msg, strlen(msg), hex);
    assert_string_equal(hex, want);
}

static void test_fips_vectors(void **state) {
    check("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    check("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    check("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
          "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    check(
        "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrl"
        "mnopqrsmnopqrstnopqrstu",
        "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

static void test_million_a(void **state) {
    char *a = malloc(1000000);
    assert_non_null(a);
    memset(a, 'a', 1000000);
    char hex[65];
    sha256_hex(a, 1000000, hex);
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    /* The same million bytes fed one byte at a time. */
    sha256_ctx c;
    uint8_t d1[32], d2[32];
    sha256_init(&c);
    for (int i = 0; i < 1000000; i++) sha256_update(&c, "a", 1);
    sha256_final(&c, d1);
    sha256_init(&c);
    sha256_update(&c, a, 1000000);
    sha256_final(&c, d2);
    assert_memory_equal(d1, d2, 32);
    free(a);
}

/* Lengths around the padding boundaries (55/56 bytes fit the length in the last block or
 * not), digests computed independently with Python's hashlib. */
static void test_padding_boundaries(void **state) {
    static const struct {
        size_t n;
        const char *hex;
    } v[] = {
        {1, "ca358758f6d27e6cf45272937977a748fd88391db679ceda7dc7bf1f005ee879"},
        {55, "16ed9c4697ca11d5f6fb25ea7900252dd4cb97215d7f6d0b2bb3e2a86ac0ec72"},
        {56, "939ada93b2fe1e9c596d767bb408567c83e253667f0b25e5be8e16f35f2cbac9"},
        {57, "ab84281f3b181e6cfc7cf870c7f3e7912be6fd1ac49c7dd6b21f6c25bb9a5eaa"},
        {63, "6073f83b09ae82016cdbe24c18996c48f0eaa08ca675d0f6b90b807fc29e0149"},
        {64, "b337ba9b0c69c391364e985fdcb23a889887e59800832c92fbfa22b8a3c40304"},
        {65, "9d6a3fb113b586b4ab97bc11c993a27bd9b7bbcb756e0646083dc47a679600e6"},
        {119, "9773fbac8194c3d789af101b49b6a26073076895ef6e0f658432849dd477a43f"},
        {120, "070a538f085dd94821d4dc197c5c8b791051891d4fa2a1bf25d3c275236676f7"},
        {127, "5072b7a9a4cda7f6d80f1eff09b8b9653201dba22319daf32c6c05339d57f483"},
        {128, "485a94e53eba9717a5d8b7b4489cad92a752f1c5722e7dfd29dd164b7c438d11"},
        {1000, "533b698850849b7908b20a22658f639c0b2a476f1791f85f50188287c31a9aba"},
    };
    uint8_t buf[1000];
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (uint8_t)(i * 131 + 7);
    for (size_t k = 0; k < sizeof v / sizeof *v; k++) {
        char hex[65];
        sha256_hex(buf, v[k].n, hex);
        if (strcmp(hex, v[k].hex) != 0) fail_msg("length %zu: %s != %s", v[k].n, hex, v[k].hex);
    }
}

static void test_streaming_odd_chunks(void **state) {
    /* Lengths around the 55/56/64-byte padding boundaries, chunked in odd sizes. */
    static const size_t chunks[] = {1, 3, 7, 13, 55, 56, 63, 64, 65, 127, 1000};
    uint8_t buf[3000];
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (uint8_t)(i * 131 + 7);
    for (size_t len = 0; len < sizeof buf; len += len < 200 ? 1 : 97) {
        char want[65];
        sha256_hex(buf, len, want);
        for (size_t k = 0; k < sizeof chunks / sizeof *chunks; k++) {
            sha256_ctx c;
            uint8_t d[32];
            sha256_init(&c);
            for (size_t off = 0; off < len; off += chunks[k])
                sha256_update(&c, buf + off, len - off < chunks[k] ? len - off : chunks[k]);
            sha256_final(&c, d);
            char got[65];
            for (int i = 0; i < 32; i++) snprintf(got + 2 * i, 3, "%02x", d[i]);
            if (strcmp(got, want) != 0)
                fail_msg("len %zu chunk %zu: %s != %s", len, chunks[k], got, want);
        }
    }
}

static char dir[] = "/tmp/test_sha256.XXXXXX";

static int setup_dir(void **state) { return mkdtemp(dir) ? 0 : -1; }

/* Runs even when a test failed halfway, so the temp dir never stays behind. */
static int teardown_dir(void **state) {
    char path[128];
    snprintf(path, sizeof path, "%s/data.bin", dir);
    unlink(path);
    return rmdir(dir);
}

static void test_file_matches_sha256sum(void **state) {
    char path[128];
    snprintf(path, sizeof path, "%s/data.bin", dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    /* ~200 KiB: several of sha256_file_hex's read buffers, not a multiple of 64. */
    for (int i = 0; i < 200001; i++) fputc((i * 7919 + (i >> 9)) & 0xff, f);
    assert_int_equal(fclose(f), 0);

    char hex[65];
    ml_error e = {{0}};
    assert_int_equal(sha256_file_hex(path, hex, &e), 0);

    char cmd[256], out[128] = {0};
    snprintf(cmd, sizeof cmd, "sha256sum '%s'", path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    assert_non_null(fgets(out, sizeof out, p));
    assert_int_equal(pclose(p), 0);
    assert_true(strlen(out) > 64);
    out[64] = '\0';
    assert_string_equal(hex, out);

    /* Errors name the path: a missing file and a directory. */
    char missing[160];
    snprintf(missing, sizeof missing, "%s/missing.bin", dir);
    assert_int_equal(sha256_file_hex(missing, hex, &e), -1);
    assert_non_null(strstr(e.msg, missing));
    assert_int_equal(sha256_file_hex(dir, hex, &e), -1);
    assert_non_null(strstr(e.msg, "not a regular file"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fips_vectors),           cmocka_unit_test(test_million_a),
        cmocka_unit_test(test_padding_boundaries),     cmocka_unit_test(test_streaming_odd_chunks),
        cmocka_unit_test(test_file_matches_sha256sum),
    };
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
