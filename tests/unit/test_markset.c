/* SPDX-License-Identifier: MIT */
/*
 * Prune's mark set (store/markset.c): values by id, growth past the
 * expected count, iteration, and that it leaves no file behind.
 */
#include <dirent.h>

#include "store/crypto.h"
#include "store/markset.h"
#include "store/util.h"
#include "tests.h"

static char tmpl[] = "/tmp/lb-test-markset-XXXXXX";
static const char *base;

static LbId make_id(unsigned seed) {
        LbId id;
        uint8_t in[4];
        lb_put_le32(in, seed);
        lb_object_id(in, sizeof in, &id);
        return id;
}

static unsigned dir_entries(const char *dir) {
        DIR *d = opendir(dir);
        CHECK(d);
        unsigned n = 0;
        struct dirent *de;
        while ((de = readdir(d)))
                n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
        closedir(d);
        return n;
}

struct sum {
        unsigned n;
        uint64_t values;
};

static int sum_cb(const uint8_t *id_prefix, uint32_t value, void *ud) {
        struct sum *s = ud;
        /* The prefix is the id's first bytes: the value says which id. */
        LbId id = make_id(value - 1);
        CHECK(memcmp(id.b, id_prefix, LB_MARKSET_KEY_SIZE) == 0);
        s->n++;
        s->values += value;
        return 0;
}

static int stop_cb(const uint8_t *id_prefix, uint32_t value, void *ud) {
        return -ECANCELED;
}

TEST(test_put_get_grow) {
        LbMarkSet *m;
        /* Expect 100, put 50000: it grows (by doubling) as needed. */
        CHECK_OK(lb_markset_open(base, 100, &m));
        CHECK_EQ_INT(dir_entries(base), 0);
        enum { N = 50000 };
        for (unsigned i = 0; i < N; i++) {
                LbId id = make_id(i);
                if (i % 7 == 0)
                        lb_markset_prefetch(m, &id);
                CHECK(lb_markset_get(m, &id, NULL) == -ENOENT);
                CHECK_OK(lb_markset_put(m, &id, i + 1));
        }
        for (unsigned i = 0; i < N; i++) {
                LbId id = make_id(i);
                uint32_t v = 0;
                CHECK_OK(lb_markset_get(m, &id, &v));
                CHECK_EQ_INT(v, i + 1);
        }
        LbId other = make_id(N + 1);
        CHECK(lb_markset_get(m, &other, NULL) == -ENOENT);
        CHECK(lb_markset_put(m, &other, 0) == -EINVAL);
        /* Overwrite keeps one entry. */
        LbId id0 = make_id(0);
        CHECK_OK(lb_markset_put(m, &id0, 1));
        struct sum s = {};
        CHECK_OK(lb_markset_foreach(m, sum_cb, &s));
        CHECK_EQ_INT(s.n, N);
        CHECK(s.values == (uint64_t) N * (N + 1) / 2);
        CHECK(lb_markset_foreach(m, stop_cb, NULL) == -ECANCELED);
        /* The table lives in an unlinked file: nothing in the directory. */
        CHECK_EQ_INT(dir_entries(base), 0);
        lb_markset_free(m);
        lb_markset_free(NULL);
}

/* Ids are compared on their first LB_MARKSET_KEY_SIZE bytes. */
TEST(test_prefix) {
        LbMarkSet *m;
        CHECK_OK(lb_markset_open(base, 10, &m));
        LbId a = make_id(1), b = a, c = a;
        b.b[LB_ID_SIZE - 1] ^= 1;                 /* beyond the key: the same entry */
        c.b[LB_MARKSET_KEY_SIZE - 1] ^= 1;        /* within it: another one */
        CHECK_OK(lb_markset_put(m, &a, 5));
        uint32_t v;
        CHECK_OK(lb_markset_get(m, &b, &v));
        CHECK_EQ_INT(v, 5);
        CHECK(lb_markset_get(m, &c, &v) == -ENOENT);
        lb_markset_free(m);
}

int main(void) {
        CHECK_OK(lb_crypto_init());
        base = mkdtemp(tmpl);
        CHECK(base);
        RUN(test_put_get_grow);
        RUN(test_prefix);
        _cleanup_free_ char *cmd = lb_strdup_printf("rm -rf '%s'", base);
        return system(cmd) == 0 ? 0 : 1;
}
