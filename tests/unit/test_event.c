/* SPDX-License-Identifier: MIT */
/*
 * Events (store/event.h): the golden file decoded field by field and
 * re-encoded byte for byte, every golden bad file refused with its error,
 * the encoder's rules, and save/list/trim on a real repository.
 */
#include <stdio.h>

#include "store/crypto.h"
#include "store/event.h"
#include "store/repo.h"
#include "tests.h"

static char *data_path(const char *name) {
        const char *src = getenv("LB_SRC");
        if (src)
                return lb_strdup_printf("%s/tests/data/%s", src, name);
        const char *f = __FILE__;
        int dirlen = (int) (strrchr(f, '/') - f);
        if (f[0] == '/')
                return lb_strdup_printf("%.*s/../data/%s", dirlen, f, name);
        char exe[4096];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        CHECK(n > 0);
        exe[n] = 0;
        *strrchr(exe, '/') = 0;
        return lb_strdup_printf("%s/../../%.*s/../data/%s", exe, dirlen, f, name);
}

static void read_data(const char *name, LbBuf *out) {
        _cleanup_free_ char *p = data_path(name);
        CHECK(p);
        CHECK_OK(lb_read_file(p, 1u << 20, out));
}

TEST(test_golden) {
        _cleanup_buf_ LbBuf b = {}, again = {};
        read_data("event-v1.bin", &b);
        LbEvent *e = NULL;
        CHECK_OK(lb_event_decode(b.data, b.len, &e));
        CHECK_EQ_INT(e->time_ns, 1780000000123456789ll);
        CHECK(strcmp(e->kind, "drill") == 0);
        CHECK_EQ_INT(e->status, LB_EVENT_SUCCESS);
        CHECK_EQ_INT(e->exit_code, 0);
        CHECK_EQ_INT(e->duration_ns, 42500000000ll);
        CHECK(strcmp(e->hostname, "shop-db1") == 0);
        CHECK(strcmp(e->message, "all good") == 0);
        CHECK(e->has_snapshot);
        for (int i = 0; i < 32; i++)
                CHECK_EQ_INT(e->snapshot.b[i], i);
        CHECK(strcmp(e->program, "longbox 0.1.0") == 0);
        CHECK_EQ_INT(e->n_meta, 2);
        CHECK(strcmp(lb_event_meta(e, "database"), "shop") == 0);
        CHECK(strcmp(lb_event_meta(e, "rto_seconds"), "41.250") == 0);
        CHECK(lb_event_meta(e, "nope") == NULL);
        CHECK_OK(lb_event_encode(e, &again));
        CHECK_EQ_INT(again.len, b.len);
        CHECK(memcmp(again.data, b.data, b.len) == 0);
        lb_event_free(e);
}

static const struct {
        const char *file;
        int err;
} bad[] = {
        { "bad/event-bad-magic.bin", -EBADMSG },
        { "bad/event-truncated.bin", -EBADMSG },
        { "bad/event-missing-kind.bin", -EBADMSG },
        { "bad/event-missing-status.bin", -EBADMSG },
        { "bad/event-bad-status.bin", -EBADMSG },
        { "bad/event-bad-kind.bin", -EBADMSG },
        { "bad/event-empty-kind.bin", -EBADMSG },
        { "bad/event-duplicate-time.bin", -EBADMSG },
        { "bad/event-time-short.bin", -EBADMSG },
        { "bad/event-snapshot-short.bin", -EBADMSG },
        { "bad/event-unknown-critical.bin", -EPROTONOSUPPORT },
        { "bad/event-string-nul.bin", -EBADMSG },
        { "bad/event-meta-empty-key.bin", -EBADMSG },
        { "bad/event-meta-key-overrun.bin", -EBADMSG },
        { "bad/event-too-many-meta.bin", -EBADMSG },
        { "bad/event-too-large.bin", -EBADMSG },
};

TEST(test_bad_files) {
        for (size_t i = 0; i < LB_ARRAY_SIZE(bad); i++) {
                _cleanup_buf_ LbBuf b = {};
                read_data(bad[i].file, &b);
                LbEvent *e = NULL;
                int r = lb_event_decode(b.data, b.len, &e);
                if (r != bad[i].err) {
                        fprintf(stderr, "%s: got %d, expected %d\n", bad[i].file, r, bad[i].err);
                        exit(1);
                }
                CHECK(e == NULL);
        }
}

TEST(test_encode_rules) {
        _cleanup_buf_ LbBuf b = {};
        LbEvent e = { .kind = (char *) "backup", .status = LB_EVENT_FAILURE };
        CHECK_OK(lb_event_encode(&e, &b));
        e.kind = (char *) "Backup";
        CHECK(lb_event_encode(&e, &b) == -EINVAL);
        e.kind = (char *) "";
        CHECK(lb_event_encode(&e, &b) == -EINVAL);
        e.kind = (char *) "backup";
        e.status = (LbEventStatus) 3;
        CHECK(lb_event_encode(&e, &b) == -EINVAL);
        e.status = LB_EVENT_WARNING;
        for (int i = 0; i < LB_EVENT_META_MAX; i++) {
                char k[16];
                snprintf(k, sizeof k, "k%d", i);
                CHECK_OK(lb_event_meta_add(&e, k, "v"));
        }
        CHECK(lb_event_meta_add(&e, "one-more", "v") == -EINVAL);
        CHECK_OK(lb_event_encode(&e, &b));
        LbEvent *d = NULL;
        CHECK_OK(lb_event_decode(b.data, b.len, &d));
        CHECK_EQ_INT(d->n_meta, LB_EVENT_META_MAX);
        CHECK_EQ_INT(d->status, LB_EVENT_WARNING);
        lb_event_free(d);
        for (size_t i = 0; i < e.n_meta; i++) {
                free(e.meta[i].key);
                free(e.meta[i].value);
        }
        free(e.meta);
}

TEST(test_store) {
        char tmpl[] = "/tmp/lb-test-event.XXXXXX";
        CHECK(mkdtemp(tmpl));
        _cleanup_free_ char *loc = lb_path_join(tmpl, "repo");
        LbInitOptions o;
        lb_init_options_default(&o);
        o.kdf_opslimit = LB_KDF_OPS_INSECURE;
        o.kdf_memlimit = LB_KDF_MEM_INSECURE;
        LbRepo *r = NULL;
        CHECK_OK(lb_repo_init(loc, "pw", &o, &r));
        /* 7 checks and 3 drills, at increasing times. */
        for (int i = 0; i < 10; i++) {
                LbEvent e = { .time_ns = 1000 + i, .kind = (char *) (i < 7 ? "check" : "drill"),
                              .status = i == 6 ? LB_EVENT_FAILURE : LB_EVENT_SUCCESS };
                CHECK_OK(lb_event_save(r->be, &r->keys, &e, NULL));
        }
        /* A damaged event is skipped and counted. */
        CHECK_OK(r->be->put(r->be, LB_OBJ_EVENT, "00000000000000000000000000000000000000000000000000000000000000aa",
                            "garbage", 7));
        LbEvent **v = NULL;
        size_t n = 0, nbad = 0;
        CHECK_OK(lb_event_list(r->be, &r->keys, &v, &n, &nbad));
        CHECK_EQ_INT(n, 10);
        CHECK_EQ_INT(nbad, 1);
        for (size_t i = 1; i < n; i++)
                CHECK(v[i - 1]->time_ns <= v[i]->time_ns);
        CHECK_EQ_INT(lb_event_newest(v, n, "check", false)->time_ns, 1006);
        CHECK_EQ_INT(lb_event_newest(v, n, "check", true)->time_ns, 1005);
        CHECK(lb_event_newest(v, n, "sync", false) == NULL);
        lb_events_free(v, n);
        /* Trim to 2 per kind: the 2 newest of each stay. */
        unsigned removed = 0;
        CHECK_OK(lb_event_trim(r->be, &r->keys, 2, &removed));
        CHECK_EQ_INT(removed, 6);
        CHECK_OK(lb_event_list(r->be, &r->keys, &v, &n, NULL));
        CHECK_EQ_INT(n, 4);
        CHECK_EQ_INT(v[0]->time_ns, 1005);
        CHECK_EQ_INT(v[3]->time_ns, 1009);
        lb_events_free(v, n);
        /* An event sealed with another repository's key does not open. */
        LbKeys other = r->keys;
        other.meta_key[0] ^= 1;
        CHECK_OK(lb_event_list(r->be, &other, &v, &n, &nbad));
        CHECK_EQ_INT(n, 0);
        CHECK_EQ_INT(nbad, 5);
        lb_events_free(v, n);
        lb_repo_free(r);
        _cleanup_free_ char *cmd = lb_strdup_printf("rm -rf '%s'", tmpl);
        CHECK(system(cmd) == 0);
}

int main(void) {
        CHECK_OK(lb_crypto_init());
        RUN(test_golden);
        RUN(test_bad_files);
        RUN(test_encode_rules);
        RUN(test_store);
        return 0;
}
