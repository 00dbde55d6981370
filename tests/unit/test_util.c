/* SPDX-License-Identifier: MIT */
#include <sys/uio.h>

#include "store/crypto.h"
#include "store/tlv.h"
#include "store/util.h"
#include "tests.h"

TEST(test_le) {
        uint8_t b[8];
        lb_put_le64(b, 0x0102030405060708ull);
        CHECK(b[0] == 8 && b[7] == 1);
        CHECK(lb_get_le64(b) == 0x0102030405060708ull);
        lb_put_le32(b, 0xdeadbeef);
        CHECK(lb_get_le32(b) == 0xdeadbeef);
}

TEST(test_hex) {
        uint8_t in[3] = { 0x00, 0xab, 0xff }, out[3];
        char s[7];
        lb_hex_encode(in, 3, s);
        CHECK(strcmp(s, "00abff") == 0);
        CHECK_OK(lb_hex_decode(s, out, 3));
        CHECK(memcmp(in, out, 3) == 0);
        CHECK(lb_hex_decode("00abf", out, 3) < 0);
        CHECK(lb_hex_decode("00abfg", out, 3) < 0);
}

TEST(test_reader_bounds) {
        uint8_t b[5] = { 1, 2, 3, 4, 5 };
        LbReader r = lb_reader(b, sizeof b);
        uint32_t v;
        CHECK_OK(lb_reader_le32(&r, &v));
        CHECK(v == 0x04030201);
        CHECK(lb_reader_le32(&r, &v) == -EBADMSG);
        uint8_t u;
        CHECK_OK(lb_reader_u8(&r, &u));
        CHECK(u == 5 && lb_reader_left(&r) == 0);
}

TEST(test_tlv) {
        _cleanup_buf_ LbBuf b = {};
        CHECK_OK(lb_tlv_put_u64(&b, 7, 42));
        CHECK_OK(lb_tlv_put_str(&b, 8, "hi"));
        LbReader r = lb_reader(b.data, b.len);
        uint16_t tag;
        const uint8_t *v;
        uint32_t n;
        uint64_t x;
        CHECK(lb_tlv_next(&r, &tag, &v, &n) == 1 && tag == 7);
        CHECK_OK(lb_tlv_u64(v, n, &x));
        CHECK(x == 42);
        CHECK(lb_tlv_next(&r, &tag, &v, &n) == 1 && tag == 8 && n == 2);
        CHECK(lb_tlv_next(&r, &tag, &v, &n) == 0);
        /* truncated record */
        LbReader t = lb_reader(b.data, b.len - 1);
        CHECK(lb_tlv_next(&t, &tag, &v, &n) == 1);
        CHECK(lb_tlv_next(&t, &tag, &v, &n) == -EBADMSG);
}

TEST(test_pad) {
        /* Padmé: the overhead is bounded and the result never shrinks. */
        CHECK(lb_pad_length(0) == 0);
        CHECK(lb_pad_length(1) == 1);
        CHECK(lb_pad_length(9) == 10);
        CHECK(lb_pad_length(1000) == 1024);
        CHECK(lb_pad_length(65536) == 65536);
        CHECK(lb_pad_length(65537) == 67584);
        for (uint32_t n = 1; n < 1u << 22; n = n * 3 + 1) {
                uint32_t p = lb_pad_length(n);
                CHECK(p >= n);
                CHECK((uint64_t) p <= (uint64_t) n + n / 8 + 2);
        }
}

TEST(test_seal) {
        CHECK_OK(lb_crypto_init());
        uint8_t key[32] = { 1 };
        const char msg[] = "attack at dawn";
        _cleanup_buf_ LbBuf s = {}, o = {};
        CHECK_OK(lb_seal_buf(key, "AD", msg, sizeof msg, &s));
        CHECK(s.len == sizeof msg + LB_SEAL_OVERHEAD);
        CHECK_OK(lb_unseal_buf(key, "AD", s.data, s.len, &o));
        CHECK(o.len == sizeof msg && memcmp(o.data, msg, sizeof msg) == 0);
        CHECK(lb_unseal_buf(key, "AX", s.data, s.len, &o) == -EBADMSG);
        s.data[30] ^= 1;
        CHECK(lb_unseal_buf(key, "AD", s.data, s.len, &o) == -EBADMSG);
}

/* In-place sealing, and checking a tag without decrypting. */
TEST(test_seal_in_place_and_verify) {
        CHECK_OK(lb_crypto_init());
        uint8_t key[32] = { 2 }, buf[100 + LB_SEAL_OVERHEAD];
        uint8_t msg[100];
        for (size_t i = 0; i < sizeof msg; i++)
                msg[i] = (uint8_t) i;
        memcpy(buf + LB_NONCE_SIZE, msg, sizeof msg);
        lb_seal(key, "AD", 2, buf + LB_NONCE_SIZE, sizeof msg, buf);
        CHECK(memcmp(buf + LB_NONCE_SIZE, msg, sizeof msg) != 0);
        CHECK_OK(lb_unseal_verify(key, "AD", 2, buf, sizeof buf));
        CHECK(lb_unseal_verify(key, "AX", 2, buf, sizeof buf) == -EBADMSG);
        CHECK(lb_unseal_verify(key, "AD", 2, buf, LB_SEAL_OVERHEAD - 1) == -EBADMSG);
        uint8_t out[sizeof msg];
        CHECK_OK(lb_unseal(key, "AD", 2, buf, sizeof buf, out));
        CHECK(memcmp(out, msg, sizeof msg) == 0);
        for (size_t i = 0; i < sizeof buf; i++) {
                buf[i] ^= 4;
                CHECK(lb_unseal_verify(key, "AD", 2, buf, sizeof buf) == -EBADMSG);
                buf[i] ^= 4;
        }
}

/* An atomic write from many pieces (more than one writev takes). */
TEST(test_write_iov) {
        char tmpl[] = "/tmp/lb-test-util-XXXXXX";
        const char *dir = mkdtemp(tmpl);
        CHECK(dir);
        /* Mostly small pieces (some empty), copied together before they
         * are written, and now and then one large enough to go alone. */
        enum { N = 100000 };
        static uint8_t data[N * 7 + 3 * 200000];
        static struct iovec iov[N];
        size_t total = 0;
        for (size_t i = 0; i < N; i++) {
                size_t len = i % 40000 == 7 ? 200000 : i % 7;
                for (size_t j = 0; j < len; j++)
                        data[total + j] = (uint8_t) (i + j);
                iov[i] = (struct iovec) { data + total, len };
                total += len;
        }
        CHECK_OK(lb_write_file_atomic_iov(dir, "x", iov, N, 0600));
        _cleanup_free_ char *path = lb_path_join(dir, "x");
        _cleanup_buf_ LbBuf b = {};
        CHECK_OK(lb_read_file(path, 4u << 20, &b));
        CHECK(b.len == total && memcmp(b.data, data, total) == 0);
        int fd = lb_open_tmpfile(dir);
        CHECK(fd >= 0);
        CHECK_OK(lb_writev_all(fd, iov, N));
        CHECK(lseek(fd, 0, SEEK_END) == (off_t) total);
        close(fd);
        /* The temporary file has no name. */
        unlink(path);
        CHECK(rmdir(dir) == 0);
}

TEST(test_keys) {
        CHECK_OK(lb_crypto_init());
        uint8_t master[32];
        memset(master, 7, sizeof master);
        LbKeys k;
        lb_keys_derive(&k, master);
        CHECK(memcmp(k.id_key, k.data_key, 32) != 0);
        CHECK(memcmp(k.meta_key, k.data_key, 32) != 0);
        LbId a, b;
        lb_chunk_id(&k, "x", 1, &a);
        lb_object_id("x", 1, &b);
        CHECK(lb_id_cmp(&a, &b) != 0);
        /* Fixed vector: the derivation is part of the format. */
        char hex[65];
        lb_id_hex(&a, hex);
        CHECK(strcmp(hex, "a2490e0f24de836fac5cf835f9b9f8b387201a85be428f3b3d05118be2c1a8d4") == 0);
        uint64_t g1[256], g2[256];
        lb_gear_table(&k, g1);
        lb_gear_table(&k, g2);
        CHECK(memcmp(g1, g2, sizeof g1) == 0);
}

int main(void) {
        RUN(test_le);
        RUN(test_hex);
        RUN(test_reader_bounds);
        RUN(test_tlv);
        RUN(test_pad);
        RUN(test_seal);
        RUN(test_seal_in_place_and_verify);
        RUN(test_write_iov);
        RUN(test_keys);
        return 0;
}
