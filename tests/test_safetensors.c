/* test_safetensors.c — writer/reader round trips, atomic saves, and hostile files built byte
 * by byte that must each fail with a one-line message naming the file and the problem. */
#define _XOPEN_SOURCE 700 /* nftw */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "fp16.h"
#include "safetensors.h"

/* ---- temp dir and file helpers ---- */

static char g_dir[64];

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    return remove(p);
}

static int setup_dir(void **state) {
    snprintf(g_dir, sizeof g_dir, "/tmp/test_safetensors.XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown_dir(void **state) {
    chmod(g_dir, 0700);
    return nftw(g_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* "<g_dir>/<name>" in one of a few rotating static buffers. */
static const char *path_in(const char *name) {
    static char bufs[4][256];
    static int k;
    char *b = bufs[k++ & 3];
    snprintf(b, sizeof bufs[0], "%s/%s", g_dir, name);
    return b;
}

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (n) assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static uint8_t *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)len + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return b;
}

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *de; (de = readdir(d));)
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) n++;
    closedir(d);
    return n;
}

/* Writes a hostile file: the 8-byte little-endian `len`, the header text with every ' turned
 * into " (keeps the JSON in this file readable), then np payload bytes (zeros if payload is
 * NULL). Returns the path. */
static const char *hostile_len(const char *name, uint64_t len, const char *header,
                               const void *payload, size_t np) {
    size_t hn = strlen(header);
    uint8_t *b = calloc(8 + hn + np + 1, 1);
    assert_non_null(b);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(len >> (8 * i));
    for (size_t i = 0; i < hn; i++) b[8 + i] = header[i] == '\'' ? '"' : (uint8_t)header[i];
    if (payload) memcpy(b + 8 + hn, payload, np);
    const char *p = path_in(name);
    write_bytes(p, b, 8 + hn + np);
    free(b);
    return p;
}

static const char *hostile(const char *name, const char *header, const void *payload, size_t np) {
    return hostile_len(name, strlen(header), header, payload, np);
}

/* st_open must fail with one line "<path>: ..." containing `word`, leaving f zeroed. */
static void expect_bad(const char *path, const char *word) {
    st_file f;
    ml_error e = {{0}};
    memset(&f, 0x5a, sizeof f);
    int rc = st_open(&f, path, &e);
    size_t pl = strlen(path);
    if (rc != -1 || strncmp(e.msg, path, pl) != 0 || strncmp(e.msg + pl, ": ", 2) != 0 ||
        !strstr(e.msg, word) || strchr(e.msg, '\n'))
        fail_msg("%s: expected a failure mentioning '%s', got rc %d: %s", path, word, rc, e.msg);
    assert_null(f.bytes);
    assert_null(f.tensors);
    assert_int_equal(f.n_tensors, 0);
    st_close(&f); /* harmless on a zeroed file */
}

#define BAD(header, np, word) expect_bad(hostile("bad.safetensors", header, NULL, np), word)

/* ---- random values ---- */

static uint64_t rng = 0x243f6a8885a308d3u;
static uint32_t next_u32(void) {
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return (uint32_t)((rng * 0x2545f4914f6cdd1du) >> 32);
}

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static st_writer *new_writer(void) {
    st_writer *w = st_writer_new();
    assert_non_null(w);
    return w;
}

static void save_ok(st_writer *w, const char *path) {
    ml_error e = {{0}};
    if (st_writer_save(w, path, &e) != 0) fail_msg("save %s: %s", path, e.msg);
}

static void open_ok(st_file *f, const char *path) {
    ml_error e = {{0}};
    if (st_open(f, path, &e) != 0) fail_msg("open %s: %s", path, e.msg);
}

/* ---- round trips ---- */

static void test_f32_bit_exact(void **state) {
    enum { N = 3 * 5 * 7 };
    float x[N];
    for (int i = 0; i < N; i++) {
        uint32_t u;
        do u = next_u32();
        while (((u >> 23) & 0xff) == 0xff); /* finite only: NaN/inf are refused on read */
        x[i] = bits_f32(u);
    }
    x[0] = -0.0f;
    x[1] = bits_f32(0x00000001); /* smallest float subnormal */
    x[2] = bits_f32(0x807fffff); /* largest negative subnormal */
    x[3] = bits_f32(0x7f7fffff); /* FLT_MAX */
    int64_t shape[3] = {3, 5, 7};
    st_writer *w = new_writer();
    ml_error e = {{0}};
    assert_int_equal(st_writer_add_f32(w, "x", ST_F32, x, 3, shape, &e), 0);
    const char *p = path_in("f32.safetensors");
    save_ok(w, p);
    st_writer_free(w);

    st_file f;
    open_ok(&f, p);
    const st_tensor *t = st_find(&f, "x");
    assert_non_null(t);
    assert_int_equal(t->dtype, ST_F32);
    assert_int_equal(t->numel, N);
    float y[N];
    assert_int_equal(st_read_f32(&f, "x", ST_F32, y, 3, shape, &e), 0);
    for (int i = 0; i < N; i++)
        if (f32_bits(x[i]) != f32_bits(y[i]))
            fail_msg("element %d: %08x != %08x", i, f32_bits(x[i]), f32_bits(y[i]));
    st_close(&f);
}

/* Spacing of the half grid at |x| (2^-24 in the subnormal range). */
static double half_ulp(double x) {
    double a = fabs(x);
    if (a < ldexp(1, -14)) return ldexp(1, -24);
    int ex;
    frexp(a, &ex); /* a = m * 2^ex, m in [0.5, 1) */
    return ldexp(1, ex - 1 - 10);
}

static void test_f16_half_ulp(void **state) {
    enum { N = 4096 };
    static float x[N], y[N];
    for (int i = 0; i < N; i++) {
        uint32_t r = next_u32();
        /* Exponents 2^-27 .. 2^15: subnormal halves through the top binade. */
        uint32_t bits = (next_u32() & 0x807fffff) | (127 - 27 + r % 43) << 23;
        x[i] = bits_f32(bits);
    }
    x[0] = 65504.0f;
    x[1] = -65519.99f;
    x[2] = ldexpf(1, -24);
    x[3] = -0.0f;
    int64_t shape[2] = {64, 64};
    st_writer *w = new_writer();
    ml_error e = {{0}};
    assert_int_equal(st_writer_add_f32(w, "h", ST_F16, x, 2, shape, &e), 0);
    const char *p = path_in("f16.safetensors");
    save_ok(w, p);
    st_writer_free(w);

    st_file f;
    open_ok(&f, p);
    assert_int_equal(st_find(&f, "h")->end - st_find(&f, "h")->begin, 2 * N);
    assert_int_equal(st_read_f32(&f, "h", ST_F16, y, 2, shape, &e), 0);
    for (int i = 0; i < N; i++) {
        double err = fabs((double)y[i] - (double)x[i]);
        double lim = half_ulp(fmin(fabs((double)x[i]), 65504.0)) / 2;
        if (err > lim)
            fail_msg("element %d: %a read back as %a (error %g > %g)", i, (double)x[i],
                     (double)y[i], err, lim);
        uint16_t h;
        assert_int_equal(fp16_from_f32(y[i], &h), 0); /* on the grid: converts back exactly */
        assert_true(fp16_to_f32(h) == y[i]);
    }
    assert_true(signbit(y[3]));
    st_close(&f);
}

static void test_i32_scalar_4d_and_metadata(void **state) {
    int32_t ids[6] = {0, -1, INT32_MIN, INT32_MAX, 42, -123456789};
    int64_t s2[2] = {2, 3}, s4[4] = {2, 1, 3, 2}, s0[1] = {0};
    float scalar = 3.25f, four[12];
    for (int i = 0; i < 12; i++) four[i] = (float)i * 0.5f - 2.0f;
    st_writer *w = new_writer();
    ml_error e = {{0}};
    assert_int_equal(st_writer_meta(w, "config", "{\"d_model\": 64}", &e), 0);
    assert_int_equal(st_writer_meta(w, "note", "first", &e), 0);
    assert_int_equal(st_writer_meta(w, "vocab", "[\"\\n\", \"a\", \"\xc3\xa9\", \"\\\"\"]", &e), 0);
    assert_int_equal(st_writer_meta(w, "note", "line1\nline2 \"quoted\" \\ tab\t", &e), 0);
    assert_int_equal(st_writer_add_i32(w, "ids", ids, 2, s2, &e), 0);
    assert_int_equal(st_writer_add_f32(w, "scalar", ST_F32, &scalar, 0, NULL, &e), 0);
    assert_int_equal(st_writer_add_f32(w, "four", ST_F16, four, 4, s4, &e), 0);
    assert_int_equal(st_writer_add_f32(w, "empty", ST_F32, NULL, 1, s0, &e), 0);
    const char *p = path_in("mixed.safetensors");
    save_ok(w, p);

    /* The saved file is exactly what serialize produces. */
    uint8_t *ser;
    size_t nser, nfile;
    assert_int_equal(st_writer_serialize(w, &ser, &nser, &e), 0);
    uint8_t *file = slurp(p, &nfile);
    assert_int_equal(nser, nfile);
    assert_memory_equal(ser, file, nser);
    /* Header: padded to 8, metadata first, tensors in the order added. */
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | file[i];
    assert_int_equal(hl % 8, 0);
    char *hdr = strndup((char *)file + 8, (size_t)hl);
    assert_non_null(hdr);
    assert_int_equal(strncmp(hdr, "{\"__metadata__\":{\"config\":", 26), 0);
    char *a = strstr(hdr, "\"ids\""), *b = strstr(hdr, "\"scalar\""), *c = strstr(hdr, "\"four\"");
    assert_true(a && b && c && a < b && b < c);
    assert_null(strchr(hdr, '\n')); /* compact */
    free(hdr);
    free(ser);
    free(file);
    st_writer_free(w);

    st_file f;
    open_ok(&f, p);
    assert_string_equal(st_meta(&f, "config"), "{\"d_model\": 64}");
    assert_string_equal(st_meta(&f, "note"), "line1\nline2 \"quoted\" \\ tab\t");
    assert_string_equal(st_meta(&f, "vocab"), "[\"\\n\", \"a\", \"\xc3\xa9\", \"\\\"\"]");
    assert_null(st_meta(&f, "missing"));
    assert_int_equal(f.n_meta, 3);
    assert_int_equal(f.n_tensors, 4);
    for (int i = 1; i < f.n_tensors; i++) assert_true(f.tensors[i - 1].end <= f.tensors[i].begin);

    int32_t ids2[6];
    assert_int_equal(st_read_i32(&f, "ids", ids2, 2, s2, &e), 0);
    assert_memory_equal(ids, ids2, sizeof ids);
    float sc = 0;
    assert_int_equal(st_find(&f, "scalar")->ndim, 0);
    assert_int_equal(st_find(&f, "scalar")->numel, 1);
    assert_int_equal(st_read_f32(&f, "scalar", ST_F32, &sc, 0, NULL, &e), 0);
    assert_true(sc == 3.25f);
    float four2[12];
    assert_int_equal(st_read_f32(&f, "four", ST_F16, four2, 4, s4, &e), 0);
    assert_memory_equal(four, four2, sizeof four); /* multiples of 0.5 are exact in fp16 */
    assert_int_equal(st_find(&f, "empty")->numel, 0);
    assert_int_equal(st_read_f32(&f, "empty", ST_F32, NULL, 1, s0, &e), 0);
    st_close(&f);
    st_close(&f); /* closing twice is harmless */
}

static void test_lora_header_compact(void **state) {
    static const char *proj[4] = {"q", "k", "v", "o"};
    static uint16_t zero_a[8 * 64];
    float *data = calloc(8 * 64, sizeof *data);
    assert_non_null(data);
    st_writer *w = new_writer();
    ml_error e = {{0}};
    assert_int_equal(st_writer_meta(w, "peft_type", "LORA", &e), 0);
    assert_int_equal(st_writer_meta(w, "r", "8", &e), 0);
    assert_int_equal(st_writer_meta(w, "lora_alpha", "16", &e), 0);
    assert_int_equal(
        st_writer_meta(w, "target_modules", "[\"q_proj\",\"k_proj\",\"v_proj\",\"o_proj\"]", &e),
        0);
    assert_int_equal(st_writer_meta(w, "use_rslora", "false", &e), 0);
    assert_int_equal(
        st_writer_meta(w, "base_sha256",
                       "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", &e),
        0);
    assert_int_equal(
        st_writer_meta(
            w, "provenance",
            "{\"seed\":1234,\"steps\":2000,\"data_sha256\":\"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\"}",
            &e),
        0);
    int n = 0;
    for (int blk = 0; blk < 3; blk++)
        for (int j = 0; j < 4; j++)
            for (int ab = 0; ab < 2; ab++) {
                char name[128];
                snprintf(name, sizeof name,
                         "base_model.model.blocks.%d.attn.%s_proj.lora_%c.weight", blk, proj[j],
                         ab ? 'B' : 'A');
                int64_t shape[2] = {ab ? 64 : 8, ab ? 8 : 64};
                assert_int_equal(st_writer_add_f32(w, name, ST_F16, data, 2, shape, &e), 0);
                n++;
            }
    assert_int_equal(n, 24);
    uint8_t *buf;
    size_t len;
    assert_int_equal(st_writer_serialize(w, &buf, &len, &e), 0);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | buf[i];
    assert_true(hl < 4096);
    assert_int_equal(len, 8 + hl + 24 * sizeof zero_a); /* payload exactly 2 bytes/element */
    print_message("rank-8 adapter header: %llu bytes\n", (unsigned long long)hl);
    st_file f;
    assert_int_equal(st_parse(&f, "mem", buf, len, &e), 0); /* takes ownership of buf */
    assert_int_equal(f.n_tensors, 24);
    assert_string_equal(f.tensors[23].name, "base_model.model.blocks.2.attn.o_proj.lora_B.weight");
    st_close(&f);
    st_writer_free(w);
    free(data);
}

static void test_writer_refusals(void **state) {
    float x[4] = {1, 2, 70000.0f, 4}, y[2] = {1, NAN};
    int64_t s4[1] = {4}, s2[1] = {2}, neg[1] = {-1};
    st_writer *w = new_writer();
    ml_error e = {{0}};
    assert_int_equal(st_writer_add_f32(w, "a.weight", ST_F32, x, 1, s4, &e), 0);
    assert_int_equal(st_writer_add_f32(w, "a.weight", ST_F32, x, 1, s4, &e), -1);
    assert_non_null(strstr(e.msg, "a.weight"));
    assert_non_null(strstr(e.msg, "duplicate"));
    assert_int_equal(st_writer_add_f32(w, "big.lora_B", ST_F16, x, 1, s4, &e), -1);
    assert_non_null(strstr(e.msg, "big.lora_B[2] = 70000 does not fit in fp16"));
    assert_int_equal(st_writer_add_f32(w, "nan.lora_A", ST_F16, y, 1, s2, &e), -1);
    assert_non_null(strstr(e.msg, "nan.lora_A[1]"));
    assert_non_null(strstr(e.msg, "not finite"));
    assert_int_equal(st_writer_add_f32(w, "neg", ST_F32, x, 1, neg, &e), -1);
    assert_non_null(strstr(e.msg, "negative"));
    assert_int_equal(st_writer_add_f32(w, "__metadata__", ST_F32, x, 1, s4, &e), -1);
    assert_int_equal(st_writer_add_f32(w, "", ST_F32, x, 1, s4, &e), -1);
    assert_int_equal(st_writer_add_f32(w, "i", ST_I32, x, 1, s4, &e), -1);
    assert_int_equal(st_writer_meta(w, "bad\nkey", "v", &e), -1);
    /* Failed adds left nothing behind: only the first tensor is written. */
    const char *p = path_in("refusals.safetensors");
    save_ok(w, p);
    st_writer_free(w);
    st_file f;
    open_ok(&f, p);
    assert_int_equal(f.n_tensors, 1);
    st_close(&f);
}

/* ---- atomic save ---- */

static st_writer *writer_with(int n, float v) {
    float *x = malloc((size_t)n * sizeof *x);
    assert_non_null(x);
    for (int i = 0; i < n; i++) x[i] = v + (float)i;
    int64_t shape[1] = {n};
    st_writer *w = new_writer();
    ml_error e = {{0}};
    assert_int_equal(st_writer_add_f32(w, "t", ST_F32, x, 1, shape, &e), 0);
    free(x);
    return w;
}

static void test_save_atomic_when_write_fails(void **state) {
    const char *p = path_in("good.safetensors");
    st_writer *good = writer_with(16, 1.0f), *big = writer_with(4096, 2.0f);
    save_ok(good, p);
    size_t n0;
    uint8_t *before = slurp(p, &n0);
    int entries = count_entries(g_dir);

    /* A file-size limit makes the write fail even for root (who ignores permissions). It is
     * set in a child so the test's own output is not limited. */
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {1024, 1024};
        setrlimit(RLIMIT_FSIZE, &rl);
        ml_error e = {{0}};
        int rc = st_writer_save(big, p, &e);
        ssize_t wr = write(fds[1], e.msg, strlen(e.msg));
        (void)wr;
        /* Free the parent's copies so valgrind's leak check in the child stays quiet. */
        st_writer_free(good);
        st_writer_free(big);
        free(before);
        _exit(rc == -1 ? 0 : 1);
    }
    close(fds[1]);
    char msg[600] = {0};
    ssize_t got = read(fds[0], msg, sizeof msg - 1);
    close(fds[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_true(got > 0);
    assert_non_null(strstr(msg, p));
    assert_non_null(strstr(msg, "write"));

    size_t n1;
    uint8_t *after = slurp(p, &n1);
    assert_int_equal(n0, n1);
    assert_memory_equal(before, after, n0);
    assert_int_equal(count_entries(g_dir), entries); /* temp file removed */
    free(before);
    free(after);

    /* Without the limit, the same save replaces the file. */
    save_ok(big, p);
    st_file f;
    open_ok(&f, p);
    assert_int_equal(st_find(&f, "t")->numel, 4096);
    st_close(&f);
    st_writer_free(good);
    st_writer_free(big);
}

static void test_save_into_readonly_dir(void **state) {
    if (geteuid() == 0) skip(); /* root writes into 0555 directories anyway */
    char sub[200];
    snprintf(sub, sizeof sub, "%s/ro", g_dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    char p[256];
    snprintf(p, sizeof p, "%s/x.safetensors", sub);
    st_writer *w = writer_with(4, 0);
    save_ok(w, p);
    size_t n0, n1;
    uint8_t *before = slurp(p, &n0);
    assert_int_equal(chmod(sub, 0555), 0);
    ml_error e = {{0}};
    st_writer *w2 = writer_with(8, 1);
    assert_int_equal(st_writer_save(w2, p, &e), -1);
    assert_non_null(strstr(e.msg, p));
    assert_int_equal(chmod(sub, 0700), 0);
    uint8_t *after = slurp(p, &n1);
    assert_int_equal(n0, n1);
    assert_memory_equal(before, after, n0);
    assert_int_equal(count_entries(sub), 1);
    free(before);
    free(after);
    st_writer_free(w);
    st_writer_free(w2);
}

static void test_save_into_missing_dir(void **state) {
    int entries = count_entries(g_dir);
    const char *p = path_in("no/such/dir/x.safetensors");
    st_writer *w = writer_with(4, 0);
    ml_error e = {{0}};
    assert_int_equal(st_writer_save(w, p, &e), -1);
    assert_non_null(strstr(e.msg, p));
    assert_non_null(strstr(e.msg, "No such file or directory"));
    assert_null(strchr(e.msg, '\n'));
    assert_int_equal(count_entries(g_dir), entries);
    st_writer_free(w);
}

/* ---- hostile files ---- */

static void test_bad_framing(void **state) {
    expect_bad(hostile_len("empty.safetensors", 0, "", NULL, 0) /* 8 zero bytes */, "JSON object");
    write_bytes(path_in("zero.safetensors"), "", 0);
    expect_bad(path_in("zero.safetensors"), "too small");
    write_bytes(path_in("seven.safetensors"), "\x02\0\0\0\0\0\0", 7);
    expect_bad(path_in("seven.safetensors"), "too small");
    expect_bad(hostile_len("past.safetensors", 100, "{}", NULL, 0),
               "header length 100 exceeds file size 10");
    expect_bad(hostile_len("big63.safetensors", UINT64_C(1) << 63, "{}", NULL, 0),
               "header length 9223372036854775808 exceeds file size 10");
    expect_bad(hostile_len("big64.safetensors", UINT64_MAX, "{}", NULL, 0),
               "header length 18446744073709551615 exceeds file size 10");
    BAD("this is not json", 0, "JSON object");
    BAD("{'a': ", 0, "not valid JSON");
    BAD("{garbage}", 0, "not valid JSON");
    BAD("{} x", 0, "not valid JSON");
    BAD("{}{}", 0, "not valid JSON");
    BAD("[1, 2]", 0, "JSON object");
    BAD(" {}", 0, "JSON object");
    BAD("{'a\xff': 1}", 0, "UTF-8");
    BAD("{'a\xc0\x80': 1}", 0, "UTF-8"); /* overlong NUL */
    BAD("{'a\x01': 1}", 0, "control");
    BAD("{'a\\u0000b':{'dtype':'F32','shape':[],'data_offsets':[0,4]}}", 4, "\\u0000");
    BAD("{}\x01", 0, "control");
    /* Directories and missing files are refused by name too. */
    expect_bad(g_dir, "not a regular file");
    expect_bad(path_in("missing.safetensors"), "No such file");
}

static void test_truncated_payload(void **state) {
    float x[6] = {1, 2, 3, 4, 5, 6};
    int64_t s[1] = {6};
    st_writer *w = new_writer();
    ml_error e = {{0}};
    assert_int_equal(st_writer_add_f32(w, "a", ST_F32, x, 1, s, &e), 0);
    assert_int_equal(st_writer_add_f32(w, "b", ST_F32, x, 1, s, &e), 0);
    uint8_t *buf;
    size_t n;
    assert_int_equal(st_writer_serialize(w, &buf, &n, &e), 0);
    st_writer_free(w);
    size_t data_start = n - 48;
    size_t cuts[] = {0,
                     3,
                     7,
                     8,
                     9,
                     data_start / 2,
                     data_start - 1,
                     data_start,
                     data_start + 1,
                     data_start + 24,
                     data_start + 25,
                     n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        const char *p = path_in("cut.safetensors");
        write_bytes(p, buf, cuts[i]);
        const char *word = cuts[i] < 8            ? "too small"
                           : cuts[i] < data_start ? "exceeds file size"
                                                  : "beyond the data section";
        expect_bad(p, word);
    }
    /* Every other cut fails too, and the full file opens. */
    for (size_t c = 0; c < n; c++) {
        uint8_t *copy = malloc(c ? c : 1);
        assert_non_null(copy);
        memcpy(copy, buf, c);
        st_file f;
        assert_int_equal(st_parse(&f, "cut", copy, c, &e), -1);
    }
    write_bytes(path_in("whole.safetensors"), buf, n);
    st_file f;
    open_ok(&f, path_in("whole.safetensors"));
    st_close(&f);
    free(buf);
}

static void test_bad_offsets(void **state) {
    BAD("{'a':{'dtype':'F32','shape':[2],'data_offsets':[0,16]}}", 8,
        "tensor 'a' data_offsets [0, 16] reach beyond the data section");
    BAD("{'a':{'dtype':'F32','shape':[2],'data_offsets':[8,0]}}", 8, "end before begin");
    BAD("{'a':{'dtype':'F32','shape':[2],'data_offsets':[-8,0]}}", 8,
        "tensor 'a' data_offsets[0] = -8 is negative");
    BAD("{'a':{'dtype':'F32','shape':[2],'data_offsets':[0,8]},'b':{'dtype':'F32','shape':[2],'data_offsets':[4,12]}}",
        12, "overlap");
    BAD("{'a':{'dtype':'F32','shape':[2],'data_offsets':[0,8]},'b':{'dtype':'F32','shape':[2],'data_offsets':[0,8]}}",
        8, "overlap");
    BAD("{'a':{'dtype':'F32','shape':[2],'data_offsets':[0,8]},'b':{'dtype':'F32','shape':[2],'data_offsets':[12,20]}}",
        20, "gap");
    BAD("{'a':{'dtype':'F32','shape':[2],'data_offsets':[4,12]}}", 12, "gap");
    BAD("{'a':{'dtype':'F32','shape':[2],'data_offsets':[0,8]}}", 12, "gap"); /* trailing bytes */
    BAD("{}", 4, "gap");
    BAD("{'a':{'dtype':'F32','shape':[2],'data_offsets':[0,4]}}", 4, "size mismatch");
    BAD("{'a':{'dtype':'F32','shape':[2],'data_offsets':[0]}}", 8, "array of 2");
    BAD("{'a':{'dtype':'F32','shape':[2],'data_offsets':[0,8,8]}}", 8, "array of 2");
    BAD("{'a':{'dtype':'F32','shape':[2],'data_offsets':'0,8'}}", 8, "array of 2");
    BAD("{'a':{'dtype':'F32','shape':[2],'data_offsets':[0,8.5]}}", 8, "not an integer");
    BAD("{'a':{'dtype':'F32','shape':[2],'data_offsets':[0,'8']}}", 8, "not a number");
    BAD("{'a':{'dtype':'F32','shape':[2],'data_offsets':[0,8.0]}}", 8, "'8.0' at byte");
    BAD("{'a':{'dtype':'F32','shape':[2],'data_offsets':[0,8e0]}}", 8, "not a plain");
    BAD("{'a':{'dtype':'F32','shape':[2],'data_offsets':[0,08]}}", 8,
        "'08'"); /* leading zero: cJSON accepts it, JSON does not */
    BAD("{'a':{'dtype':'F32','shape':[2],'data_offsets':[-0,8]}}", 8, "'-0'");
    BAD("{'a':{'dtype':'F32','shape':[2],'data_offsets':[0,18446744073709551624]}}", 8,
        "too large");
}

static void test_bad_shapes_and_dtypes(void **state) {
    BAD("{'a':{'dtype':'F32','shape':[1099511627776,1099511627776],'data_offsets':[0,0]}}", 0,
        "overflow");
    BAD("{'a':{'dtype':'F32','shape':[2147483648,2147483648],'data_offsets':[0,0]}}", 0,
        "overflow");
    BAD("{'a':{'dtype':'I64','shape':[1,2,3,4611686018427387904],'data_offsets':[0,0]}}", 0,
        "too large");
    BAD("{'a':{'dtype':'F32','shape':[-1],'data_offsets':[0,0]}}", 0,
        "tensor 'a' shape[0] = -1 is negative");
    BAD("{'a':{'dtype':'F32','shape':[2.5],'data_offsets':[0,10]}}", 10,
        "tensor 'a' shape[0] = 2.5 is not an integer");
    BAD("{'a':{'dtype':'F32','shape':[2.0],'data_offsets':[0,8]}}", 8,
        "not a plain non-negative integer");
    BAD("{'a':{'dtype':'F32','shape':[9007199254740992],'data_offsets':[0,0]}}", 0, "too large");
    BAD("{'a':{'dtype':'F32','shape':[9007199254740993],'data_offsets':[0,0]}}", 0, "too large");
    BAD("{'a':{'dtype':'F32','shape':[1e400],'data_offsets':[0,0]}}", 0, "too large");
    BAD("{'a':{'dtype':'F32','shape':[1,1,1,1,1],'data_offsets':[0,4]}}", 4,
        "5 dimensions, more than 4");
    BAD("{'a':{'dtype':'F32','shape':['2'],'data_offsets':[0,8]}}", 8, "not a number");
    BAD("{'a':{'dtype':'F32','shape':2,'data_offsets':[0,8]}}", 8, "shape is not an array");
    BAD("{'a':{'dtype':'F8','shape':[2],'data_offsets':[0,2]}}", 2,
        "tensor 'a' has unknown dtype 'F8'");
    BAD("{'a':{'dtype':'BF16','shape':[2],'data_offsets':[0,4]}}", 4, "unknown dtype");
    BAD("{'a':{'dtype':32,'shape':[2],'data_offsets':[0,8]}}", 8, "dtype is not a string");
    BAD("{'a':{'dtype':'F\\n','shape':[2],'data_offsets':[0,8]}}", 8, "unknown dtype 'F\\n'");
    BAD("{'a':{'shape':[2],'data_offsets':[0,8]}}", 8, "tensor 'a' has no dtype");
    BAD("{'a':{'dtype':'F32','data_offsets':[0,8]}}", 8, "has no shape");
    BAD("{'a':{'dtype':'F32','shape':[2]}}", 8, "has no data_offsets");
    BAD("{'a':{'dtype':'F32','dtype':'F32','shape':[2],'data_offsets':[0,8]}}", 8,
        "duplicate field 'dtype'");
    BAD("{'a':{'dtype':'F32','shape':[2],'data_offsets':[0,8],'extra':1}}", 8,
        "unknown field 'extra'");
    BAD("{'a':5}", 0, "tensor 'a' entry is not an object");
    BAD("{'':{'dtype':'F32','shape':[2],'data_offsets':[0,8]}}", 8, "name is empty");
    BAD("{'a\\nb':{'dtype':'F32','shape':[2],'data_offsets':[0,8]}}", 8, "control character");
}

static void test_bad_names_and_metadata(void **state) {
    BAD("{'a':{'dtype':'F32','shape':[2],'data_offsets':[0,8]},'a':{'dtype':'F32','shape':[2],'data_offsets':[8,16]}}",
        16, "duplicate tensor name 'a'");
    BAD("{'b':{'dtype':'F32','shape':[],'data_offsets':[0,4]},'a':{'dtype':'F32','shape':[],'data_offsets':[4,8]},"
        "'b':{'dtype':'F32','shape':[],'data_offsets':[8,12]}}",
        12, "duplicate tensor name 'b'");
    BAD("{'__metadata__':{'k':1}}", 0, "__metadata__ value of 'k' is not a string");
    BAD("{'__metadata__':{'k':null}}", 0, "not a string");
    BAD("{'__metadata__':['k']}", 0, "__metadata__ is not an object");
    BAD("{'__metadata__':'k'}", 0, "__metadata__ is not an object");
    BAD("{'__metadata__':{'k':'1','k':'2'}}", 0, "__metadata__ has duplicate key 'k'");
    BAD("{'__metadata__':{},'__metadata__':{}}", 0, "duplicate __metadata__");
    /* A valid minimal file: empty metadata and no tensors. */
    const char *p = hostile("min.safetensors", "{'__metadata__':{}}  ", NULL, 0);
    st_file f;
    open_ok(&f, p);
    assert_int_equal(f.n_tensors, 0);
    assert_int_equal(f.n_meta, 0);
    st_close(&f);
}

static void test_read_checks(void **state) {
    /* a: F32 [2,3] with NaN at 1 and inf at 4; b: F16 [2] with NaN at 1; c: I32 [1];
     * d: F32 [] = -inf; ok: F32 [2] finite. */
    uint8_t pay[24 + 4 + 4 + 4 + 4] = {0};
    uint32_t nan = 0x7fc00000, inf = 0x7f800000, ninf = 0xff800000;
    for (int i = 0; i < 4; i++) {
        pay[4 + i] = (uint8_t)(nan >> (8 * i));
        pay[16 + i] = (uint8_t)(inf >> (8 * i));
        pay[32 + i] = (uint8_t)(ninf >> (8 * i));
    }
    pay[27] = 0x7e; /* half NaN 0x7e00 at b[1] */
    pay[39] = 0x3f; /* ok[0] = 1.0f = 0x3f800000 */
    pay[38] = 0x80;
    const char *p = hostile("read.safetensors",
                            "{'a':{'dtype':'F32','shape':[2,3],'data_offsets':[0,24]},"
                            "'b':{'dtype':'F16','shape':[2],'data_offsets':[24,28]},"
                            "'c':{'dtype':'I32','shape':[1],'data_offsets':[28,32]},"
                            "'d':{'dtype':'F32','shape':[],'data_offsets':[32,36]},"
                            "'ok':{'dtype':'F32','shape':[1],'data_offsets':[36,40]}}",
                            pay, sizeof pay);
    st_file f;
    open_ok(&f, p);
    ml_error e = {{0}};
    float dst[6];
    int32_t idst[1];
    int64_t s23[2] = {2, 3}, s32[2] = {3, 2}, s2[1] = {2}, s1[1] = {1};
    char prefix[300];
    snprintf(prefix, sizeof prefix, "%s: ", p);
#define CHECK(call, word)                                                                          \
    do {                                                                                           \
        memset(e.msg, 0, sizeof e.msg);                                                            \
        assert_int_equal((call), -1);                                                              \
        if (strncmp(e.msg, prefix, strlen(prefix)) != 0 || !strstr(e.msg, word))                   \
            fail_msg("expected '%s', got: %s", word, e.msg);                                       \
    } while (0)
    CHECK(st_read_f32(&f, "a", ST_F32, dst, 2, s23, &e), "tensor 'a' element 1 is NaN");
    CHECK(st_read_f32(&f, "a", ST_F32, dst, 2, s32, &e),
          "tensor 'a' has shape [2, 3], expected [3, 2]");
    CHECK(st_read_f32(&f, "a", ST_F32, dst, 1, s1, &e), "has shape [2, 3], expected [1]");
    CHECK(st_read_f32(&f, "a", ST_F16, dst, 2, s23, &e), "tensor 'a' has dtype F32, expected F16");
    CHECK(st_read_f32(&f, "b", ST_F32, dst, 1, s2, &e), "tensor 'b' has dtype F16, expected F32");
    CHECK(st_read_f32(&f, "b", ST_F16, dst, 1, s2, &e), "tensor 'b' element 1 is NaN");
    CHECK(st_read_f32(&f, "c", ST_F32, dst, 1, s1, &e), "has dtype I32, expected F32");
    CHECK(st_read_f32(&f, "d", ST_F32, dst, 0, NULL, &e), "tensor 'd' element 0 is -inf");
    CHECK(st_read_f32(&f, "zz", ST_F32, dst, 1, s1, &e), "tensor 'zz' not found");
    CHECK(st_read_f32(&f, "c", ST_I32, dst, 1, s1, &e), "cannot read dtype I32");
    CHECK(st_read_i32(&f, "a", idst, 2, s23, &e), "has dtype F32, expected I32");
    CHECK(st_read_i32(&f, "c", idst, 1, s2, &e), "has shape [1], expected [2]");
    /* inf is reported too once the NaN before it is gone. */
    f.bytes[f.data_start + 4 + 2] = 0;
    f.bytes[f.data_start + 4 + 3] = 0;
    CHECK(st_read_f32(&f, "a", ST_F32, dst, 2, s23, &e), "tensor 'a' element 4 is inf");
#undef CHECK
    assert_int_equal(st_read_f32(&f, "ok", ST_F32, dst, 1, s1, &e), 0);
    assert_true(dst[0] == 1.0f);
    st_close(&f);
}

/* Random byte mutations of a valid file: each must parse or fail cleanly (run this under
 * ASan/UBSan or valgrind to catch memory errors). */
static void test_mutations_do_not_crash(void **state) {
    float x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    int64_t s[2] = {2, 4};
    st_writer *w = new_writer();
    ml_error e = {{0}};
    assert_int_equal(st_writer_meta(w, "k", "v", &e), 0);
    assert_int_equal(st_writer_add_f32(w, "a", ST_F32, x, 2, s, &e), 0);
    assert_int_equal(st_writer_add_f32(w, "b", ST_F16, x, 2, s, &e), 0);
    uint8_t *buf;
    size_t n;
    assert_int_equal(st_writer_serialize(w, &buf, &n, &e), 0);
    st_writer_free(w);
    int ok = 0, bad = 0;
    for (int it = 0; it < 3000; it++) {
        uint8_t *copy = malloc(n);
        assert_non_null(copy);
        memcpy(copy, buf, n);
        int flips = 1 + (int)(next_u32() % 4);
        for (int k = 0; k < flips; k++) {
            uint32_t r = next_u32();
            size_t at = r % n;
            static const char pool[] = "{}[]\",:0123456789-.eE \\u";
            copy[at] =
                (r >> 16) & 1 ? (uint8_t)(r >> 8) : (uint8_t)pool[(r >> 8) % (sizeof pool - 1)];
        }
        st_file f;
        memset(e.msg, 0, sizeof e.msg);
        if (st_parse(&f, "mut", copy, n, &e) == 0) {
            float y[8];
            for (int i = 0; i < f.n_tensors; i++)
                if (f.tensors[i].dtype == ST_F32 && f.tensors[i].numel <= 8)
                    st_read_f32(&f, f.tensors[i].name, ST_F32, y, f.tensors[i].ndim,
                                f.tensors[i].shape, &e);
            st_close(&f);
            ok++;
        } else {
            assert_int_equal(strncmp(e.msg, "mut: ", 5), 0);
            assert_null(strchr(e.msg, '\n'));
            bad++;
        }
    }
    assert_true(ok > 0 && bad > 0);
    free(buf);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_f32_bit_exact),
        cmocka_unit_test(test_f16_half_ulp),
        cmocka_unit_test(test_i32_scalar_4d_and_metadata),
        cmocka_unit_test(test_lora_header_compact),
        cmocka_unit_test(test_writer_refusals),
        cmocka_unit_test(test_save_atomic_when_write_fails),
        cmocka_unit_test(test_save_into_readonly_dir),
        cmocka_unit_test(test_save_into_missing_dir),
        cmocka_unit_test(test_bad_framing),
        cmocka_unit_test(test_truncated_payload),
        cmocka_unit_test(test_bad_offsets),
        cmocka_unit_test(test_bad_shapes_and_dtypes),
        cmocka_unit_test(test_bad_names_and_metadata),
        cmocka_unit_test(test_read_checks),
        cmocka_unit_test(test_mutations_do_not_crash),
    };
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
