/* SPDX-License-Identifier: MIT */
#include "chunker/chunker.h"
#include "store/util.h"
#include "tests.h"

#define DATA_SIZE (1u << 20)
#define MAX_CHUNKS 4096

static const LbChunkerParams params = { .min = 2048, .avg = 8192, .max = 32768 };

static uint64_t splitmix64(uint64_t *s) {
        uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
}

static uint64_t xorshift64star(uint64_t *x) {
        *x ^= *x >> 12;
        *x ^= *x << 25;
        *x ^= *x >> 27;
        return *x * 0x2545f4914f6cdd1dull;
}

/* The test gear table: splitmix64 from seed "longbox!". */
static void test_gear(uint64_t gear[256]) {
        uint64_t s = 0x6c6f6e67626f7821ull;
        for (size_t i = 0; i < 256; i++)
                gear[i] = splitmix64(&s);
}

/* n bytes of xorshift64* output (little-endian words) from seed. */
static uint8_t *test_data(size_t n, uint64_t seed) {
        uint8_t *b = malloc(n);
        CHECK(b);
        uint64_t x = seed;
        for (size_t i = 0; i < n; i += 8) {
                uint8_t w[8];
                lb_put_le64(w, xorshift64star(&x));
                memcpy(b + i, w, LB_MIN((size_t) 8, n - i));
        }
        return b;
}

static void test_chunker(LbChunker *c) {
        uint64_t gear[256];
        test_gear(gear);
        CHECK_OK(lb_chunker_init(c, &params, gear));
}

/* Chunks all of p in one go; returns the number of chunks, lengths in len[]. */
static size_t chunk_all(const LbChunker *c, const uint8_t *p, size_t n, size_t *len, size_t cap) {
        size_t off = 0, count = 0;
        while (off < n) {
                size_t l = lb_chunker_cut(c, p + off, n - off, 1);
                CHECK(l > 0 && l <= n - off);
                CHECK(count < cap);
                len[count++] = l;
                off += l;
        }
        return count;
}

TEST(test_params) {
        CHECK_OK(lb_chunker_params_check(&params));
        CHECK_OK(lb_chunker_params_check(&(LbChunkerParams) {
                LB_CHUNKER_DEFAULT_MIN, LB_CHUNKER_DEFAULT_AVG, LB_CHUNKER_DEFAULT_MAX }));
        CHECK_OK(lb_chunker_params_check(&(LbChunkerParams) { 64, 128, 129 }));
        CHECK_OK(lb_chunker_params_check(&(LbChunkerParams) { 1u << 20, 8u << 20, 16u << 20 }));

        static const LbChunkerParams bad[] = {
                { 63, 128, 256 },                  /* min below the limit */
                { 0, 128, 256 },
                { 128, 128, 256 },                 /* min == avg */
                { 256, 128, 512 },                 /* min > avg */
                { 64, 256, 256 },                  /* avg == max */
                { 64, 256, 128 },                  /* max < avg */
                { 64, 192, 512 },                  /* avg not a power of two */
                { 1024, 4096, (16u << 20) + 1 },   /* max above the limit */
                { 1u << 20, 16u << 20, 32u << 20 },
                { 0, 0, 0 },
        };
        uint64_t gear[256];
        test_gear(gear);
        for (size_t i = 0; i < LB_ARRAY_SIZE(bad); i++) {
                LbChunker c;
                CHECK_EQ_INT(lb_chunker_params_check(&bad[i]), -EINVAL);
                CHECK_EQ_INT(lb_chunker_init(&c, &bad[i], gear), -EINVAL);
        }
        LbChunker c;
        CHECK_EQ_INT(lb_chunker_params_check(NULL), -EINVAL);
        CHECK_EQ_INT(lb_chunker_init(&c, NULL, gear), -EINVAL);
        CHECK_EQ_INT(lb_chunker_init(&c, &params, NULL), -EINVAL);
}

TEST(test_masks) {
        uint64_t gear[256];
        test_gear(gear);
        for (unsigned b = 7; b <= 23; b++) {
                LbChunkerParams p = { .min = 64, .avg = 1u << b, .max = 2u << b };
                if (p.max > (16u << 20))
                        p.max = 16u << 20;
                LbChunker c;
                CHECK_OK(lb_chunker_init(&c, &p, gear));
                CHECK_EQ_INT(__builtin_popcountll(c.mask_s), b + 2);
                CHECK_EQ_INT(__builtin_popcountll(c.mask_l), b - 2);
                /* Spread over the high bits, which see a long window. */
                CHECK((c.mask_s & 0xffffull) == 0);
                CHECK((c.mask_l & 0xffffull) == 0);
                CHECK(memcmp(c.gear, gear, sizeof gear) == 0);
        }
}

/* Fixed vectors. Obtained once from this implementation (test_gear(),
 * test_data(1 MiB, seed 42), min 2048 / avg 8192 / max 32768, chunked with
 * eof = 1 until the input was consumed) and hard-coded: any change to the
 * masks, the hash or the cut rule changes every chunk id in existing
 * repositories and must fail here. */
TEST(test_vectors) {
        static const size_t first[10] = { 5842, 8723, 8907, 3556, 4467, 6338, 8936, 5092, 15280, 9097 };
        LbChunker c;
        test_chunker(&c);
        _cleanup_free_ uint8_t *data = test_data(DATA_SIZE, 42);
        static size_t len[MAX_CHUNKS];
        size_t n = chunk_all(&c, data, DATA_SIZE, len, MAX_CHUNKS);
        for (size_t i = 0; i < LB_ARRAY_SIZE(first); i++)
                CHECK_EQ_INT(len[i], first[i]);
        CHECK_EQ_INT(n, 122);
}

static void check_bounds(const LbChunker *c, const uint8_t *data, size_t size) {
        static size_t len[MAX_CHUNKS * 8];
        size_t n = chunk_all(c, data, size, len, LB_ARRAY_SIZE(len)), total = 0;
        for (size_t i = 0; i < n; i++) {
                if (i + 1 < n)
                        CHECK(len[i] >= c->p.min);
                CHECK(len[i] <= c->p.max);
                total += len[i];
        }
        CHECK_EQ_INT(total, size);
}

TEST(test_bounds) {
        LbChunker c;
        test_chunker(&c);
        _cleanup_free_ uint8_t *data = test_data(DATA_SIZE, 7);
        check_bounds(&c, data, DATA_SIZE);
        check_bounds(&c, data, DATA_SIZE - 1000); /* a short last chunk */

        /* Low-entropy input: zeros, then a repeating short pattern. */
        memset(data, 0, DATA_SIZE);
        check_bounds(&c, data, DATA_SIZE);
        for (size_t i = 0; i < DATA_SIZE; i++)
                data[i] = (uint8_t) "abcab"[i % 5];
        check_bounds(&c, data, DATA_SIZE);

        /* The mean chunk size on random input is near avg. */
        static size_t len[MAX_CHUNKS];
        _cleanup_free_ uint8_t *rnd = test_data(DATA_SIZE, 99);
        size_t n = chunk_all(&c, rnd, DATA_SIZE, len, MAX_CHUNKS);
        CHECK(DATA_SIZE / n > params.avg / 2 && DATA_SIZE / n < params.avg * 2);
}

TEST(test_eof) {
        const size_t min = params.min, max = params.max;
        _cleanup_free_ uint8_t *data = test_data(4 * max, 3);
        uint64_t gear[256];
        LbChunker c;

        /* Short input: all of it at eof, "need more" otherwise. */
        test_chunker(&c);
        CHECK_EQ_INT(lb_chunker_cut(&c, data, 0, 1), 0);
        CHECK_EQ_INT(lb_chunker_cut(&c, data, 0, 0), 0);
        CHECK_EQ_INT(lb_chunker_cut(&c, data, 1, 1), 1);
        CHECK_EQ_INT(lb_chunker_cut(&c, data, 1, 0), 0);
        CHECK_EQ_INT(lb_chunker_cut(&c, data, min, 1), min);
        CHECK_EQ_INT(lb_chunker_cut(&c, data, min, 0), 0);

        /* A hash that never matches: h stays 1 << 63 and bit 63 is in both
         * masks. Then the cut is n at eof, 0 before, and max from max on. */
        for (size_t i = 0; i < 256; i++)
                gear[i] = 1ull << 63;
        CHECK_OK(lb_chunker_init(&c, &params, gear));
        CHECK((c.mask_s & c.mask_l) >> 63);
        CHECK_EQ_INT(lb_chunker_cut(&c, data, min + 1, 1), min + 1);
        CHECK_EQ_INT(lb_chunker_cut(&c, data, min + 1, 0), 0);
        CHECK_EQ_INT(lb_chunker_cut(&c, data, max - 1, 1), max - 1);
        CHECK_EQ_INT(lb_chunker_cut(&c, data, max - 1, 0), 0);
        CHECK_EQ_INT(lb_chunker_cut(&c, data, max, 0), max);
        CHECK_EQ_INT(lb_chunker_cut(&c, data, max, 1), max);
        CHECK_EQ_INT(lb_chunker_cut(&c, data, 4 * max, 0), max);
        CHECK_EQ_INT(lb_chunker_cut(&c, data, 4 * max, 1), max);

        /* A hash that always matches: the first possible cut is min + 1
         * (the byte at offset min is the first one hashed). */
        memset(gear, 0, sizeof gear);
        CHECK_OK(lb_chunker_init(&c, &params, gear));
        CHECK_EQ_INT(lb_chunker_cut(&c, data, min + 1, 0), min + 1);
        CHECK_EQ_INT(lb_chunker_cut(&c, data, 4 * max, 0), min + 1);
        CHECK_EQ_INT(lb_chunker_cut(&c, data, 4 * max, 1), min + 1);

        /* With real data a cut found before eof is the same at eof. */
        test_chunker(&c);
        size_t l = lb_chunker_cut(&c, data, 4 * max, 0);
        CHECK(l > min && l <= max);
        CHECK_EQ_INT(lb_chunker_cut(&c, data, 4 * max, 1), l);
        CHECK_EQ_INT(lb_chunker_cut(&c, data, l, 0), l);
        CHECK_EQ_INT(lb_chunker_cut(&c, data, l - 1, 0), 0);
        CHECK_EQ_INT(lb_chunker_cut(&c, data, l - 1, 1), l - 1);
}

TEST(test_determinism) {
        LbChunker c, c2;
        test_chunker(&c);
        test_chunker(&c2);
        _cleanup_free_ uint8_t *data = test_data(DATA_SIZE, 42);
        static size_t a[MAX_CHUNKS], b[MAX_CHUNKS];
        size_t na = chunk_all(&c, data, DATA_SIZE, a, MAX_CHUNKS);
        size_t nb = chunk_all(&c2, data, DATA_SIZE, b, MAX_CHUNKS);
        CHECK_EQ_INT(na, nb);
        CHECK(memcmp(a, b, na * sizeof a[0]) == 0);

        /* Streaming: bytes arrive in pieces of random size; a cut of 0 means
         * "wait for more". The chunks must not depend on the piece sizes. */
        for (uint64_t seed = 1; seed <= 8; seed++) {
                uint64_t x = seed;
                size_t avail = 0, off = 0, n = 0;
                while (off < DATA_SIZE) {
                        int eof = avail == DATA_SIZE;
                        size_t l = lb_chunker_cut(&c, data + off, avail - off, eof);
                        if (l == 0) {
                                CHECK(!eof);
                                size_t step = 1 + xorshift64star(&x) % (seed * 5000);
                                avail = LB_MIN((size_t) DATA_SIZE, avail + step);
                                continue;
                        }
                        CHECK(n < na);
                        CHECK_EQ_INT(l, a[n]);
                        n++;
                        off += l;
                }
                CHECK_EQ_INT(n, na);
        }
}

/* Chunk end offsets of p. */
static size_t boundaries(const LbChunker *c, const uint8_t *p, size_t n, size_t *end, size_t cap) {
        size_t count = chunk_all(c, p, n, end, cap);
        for (size_t i = 1; i < count; i++)
                end[i] += end[i - 1];
        return count;
}

TEST(test_resync) {
        const size_t at = 300000, ins = 100;
        LbChunker c;
        test_chunker(&c);
        _cleanup_free_ uint8_t *a = test_data(DATA_SIZE, 42);
        _cleanup_free_ uint8_t *extra = test_data(ins, 4242);
        _cleanup_free_ uint8_t *b = malloc(DATA_SIZE + ins);
        CHECK(b);
        memcpy(b, a, at);
        memcpy(b + at, extra, ins);
        memcpy(b + at + ins, a + at, DATA_SIZE - at);

        static size_t ea[MAX_CHUNKS], eb[MAX_CHUNKS];
        size_t na = boundaries(&c, a, DATA_SIZE, ea, MAX_CHUNKS);
        size_t nb = boundaries(&c, b, DATA_SIZE + ins, eb, MAX_CHUNKS);

        /* Identical before the edit. */
        size_t i = 0;
        while (i < na && ea[i] <= at) {
                CHECK(i < nb);
                CHECK_EQ_INT(eb[i], ea[i]);
                i++;
        }
        size_t before = i;

        /* After the edit: find the first boundary of a that b shares
         * (shifted by ins); from there on every boundary coincides. */
        size_t j = before;
        while (i < na && j < nb && ea[i] + ins != eb[j]) {
                if (ea[i] + ins < eb[j])
                        i++;
                else
                        j++;
        }
        CHECK(i < na && j < nb);
        CHECK(i - before <= 3);
        CHECK(j - before <= 3);
        CHECK_EQ_INT(na - i, nb - j);
        for (size_t k = 0; i + k < na; k++)
                CHECK_EQ_INT(ea[i + k] + ins, eb[j + k]);

        /* Chunks of b that also are chunks of a: all but those touching the edit. */
        size_t shared = before + (nb - j - 1);
        CHECK(shared * 100 > nb * 90);
}

int main(void) {
        RUN(test_params);
        RUN(test_masks);
        RUN(test_vectors);
        RUN(test_bounds);
        RUN(test_eof);
        RUN(test_determinism);
        RUN(test_resync);
        return 0;
}
