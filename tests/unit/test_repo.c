/* SPDX-License-Identifier: MIT */
/* Repository core against the real directory backend in a temp dir:
 * init/open, key slots, config tamper, locks, the writer's dedup and
 * write order, index rebuild, snapshots. */
#include <dirent.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include "store/index.h"
#include "store/repo.h"
#include "tests.h"

static char tmpl[] = "/tmp/lb-test-repo-XXXXXX";
static char *base;

static char *new_dir(const char *name) {
        return lb_path_join(base, name);
}

static LbInitOptions fast_opts(void) {
        LbInitOptions o;
        lb_init_options_default(&o);
        o.kdf_opslimit = LB_KDF_OPS_INSECURE;
        o.kdf_memlimit = LB_KDF_MEM_INSECURE;
        o.pack_target = 1u << 20;
        return o;
}

static size_t count_files(const char *dir) {
        DIR *d = opendir(dir);
        if (!d)
                return 0;
        size_t n = 0;
        struct dirent *de;
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        n++;
        closedir(d);
        return n;
}

TEST(test_init_open) {
        _cleanup_free_ char *loc = new_dir("r1");
        LbInitOptions o = fast_opts();
        LbRepo *r;
        CHECK_OK(lb_repo_init(loc, "pw", &o, &r));
        lb_repo_free(r);
        /* A second init into the same (now non-empty) directory is refused. */
        CHECK(lb_repo_init(loc, "pw", &o, &r) == -ENOTEMPTY);
        CHECK_OK(lb_repo_open(loc, NULL, "pw", &r));
        CHECK(r->cfg.chunker.avg == LB_CHUNKER_DEFAULT_AVG);
        lb_repo_free(r);
        CHECK(lb_repo_open(loc, NULL, "wrong", &r) == -EKEYREJECTED);
        _cleanup_free_ char *none = new_dir("nothing-here");
        CHECK(lb_repo_open(none, NULL, "pw", &r) == -ENOENT);
        /* Modes: the config is 0600, directories 0700. */
        _cleanup_free_ char *cfg = lb_path_join(loc, "config");
        struct stat st;
        CHECK(stat(cfg, &st) == 0 && (st.st_mode & 0777) == 0600);
        CHECK(stat(loc, &st) == 0 && (st.st_mode & 0777) == 0700);
}

TEST(test_config_tamper) {
        _cleanup_free_ char *loc = new_dir("r2");
        LbInitOptions o = fast_opts();
        LbRepo *r;
        CHECK_OK(lb_repo_init(loc, "pw", &o, &r));
        lb_repo_free(r);
        _cleanup_free_ char *cfg = lb_path_join(loc, "config");
        _cleanup_buf_ LbBuf b = {};
        CHECK_OK(lb_read_file(cfg, 4096, &b));
        CHECK(b.len == LB_CONFIG_SIZE);
        /* Change the zstd level: still parses, but the MAC no longer matches. */
        b.data[48] ^= 1;
        CHECK_OK(lb_write_file_atomic(loc, "config", b.data, b.len, 0600));
        CHECK(lb_repo_open(loc, NULL, "pw", &r) == -EBADMSG);
        /* An unknown mandatory feature is refused before any key is tried. */
        b.data[48] ^= 1;
        b.data[12] = 0x80;
        CHECK_OK(lb_write_file_atomic(loc, "config", b.data, b.len, 0600));
        CHECK(lb_repo_open(loc, NULL, "pw", &r) == -EPROTONOSUPPORT);
}

TEST(test_keys) {
        _cleanup_free_ char *loc = new_dir("r3");
        LbInitOptions o = fast_opts();
        LbRepo *r;
        CHECK_OK(lb_repo_init(loc, "one", &o, &r));
        char first[17], second[17];
        memcpy(first, r->key_name, 17);
        CHECK(lb_repo_key_remove(r, first) == -EPERM);
        CHECK_OK(lb_repo_key_add(r, "two", "laptop", LB_KDF_OPS_INSECURE, LB_KDF_MEM_INSECURE, second));
        CHECK(lb_repo_key_remove(r, first) == -EBUSY);
        CHECK(lb_repo_key_remove(r, "0000000000000000") == -ENOENT);
        LbKeyInfo *k;
        size_t n;
        CHECK_OK(lb_repo_key_list(r, &k, &n));
        CHECK(n == 2);
        bool found_label = false;
        for (size_t i = 0; i < n; i++)
                found_label |= k[i].label && strcmp(k[i].label, "laptop") == 0;
        CHECK(found_label);
        lb_key_infos_free(k, n);
        lb_repo_free(r);

        CHECK_OK(lb_repo_open(loc, NULL, "two", &r));
        CHECK(strcmp(r->key_name, second) == 0);
        CHECK_OK(lb_repo_key_remove(r, first));
        char third[17];
        CHECK_OK(lb_repo_key_passwd(r, "three", LB_KDF_OPS_INSECURE, LB_KDF_MEM_INSECURE, third));
        lb_repo_free(r);
        CHECK(lb_repo_open(loc, NULL, "one", &r) == -EKEYREJECTED);
        CHECK(lb_repo_open(loc, NULL, "two", &r) == -EKEYREJECTED);
        CHECK_OK(lb_repo_open(loc, NULL, "three", &r));
        lb_repo_free(r);
}

TEST(test_locks) {
        _cleanup_free_ char *loc = new_dir("r4");
        LbInitOptions o = fast_opts();
        LbRepo *a, *b;
        CHECK_OK(lb_repo_init(loc, "pw", &o, &a));
        CHECK_OK(lb_repo_open(loc, NULL, "pw", &b));
        CHECK_OK(lb_repo_lock(a, false, 0));
        CHECK_OK(lb_repo_lock(b, false, 0));        /* shared + shared */
        CHECK_OK(lb_repo_unlock(b));
        CHECK(lb_repo_lock(b, true, 0) == -EWOULDBLOCK);
        _cleanup_free_ char *holder = lb_repo_lock_holder(b);
        CHECK(holder && strstr(holder, "pid"));
        CHECK_OK(lb_repo_unlock(a));
        CHECK_OK(lb_repo_lock(b, true, 0));
        CHECK(lb_repo_lock(a, false, 0) == -EWOULDBLOCK);
        CHECK_OK(lb_repo_unlock(b));

        /* A lock left by a dead process on this host is stale. */
        pid_t pid = fork();
        if (pid == 0) {
                LbRepo *c;
                if (lb_repo_open(loc, NULL, "pw", &c) < 0 || lb_repo_lock(c, true, 0) < 0)
                        _exit(1);
                _exit(0); /* dies holding the lock */
        }
        int status;
        CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
        _cleanup_free_ char *locks = lb_path_join(loc, "locks");
        CHECK(count_files(locks) == 1);
        CHECK_OK(lb_repo_lock(a, true, 0));
        CHECK(count_files(locks) == 1); /* the stale one is gone, ours is there */
        lb_repo_free(a);                /* releases */
        CHECK(count_files(locks) == 0);
        lb_repo_free(b);
}

static void fill(uint8_t *p, size_t n, uint64_t seed) {
        for (size_t i = 0; i < n; i++) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                p[i] = (uint8_t) seed;
        }
}

TEST(test_writer_and_index) {
        _cleanup_free_ char *loc = new_dir("r5");
        LbInitOptions o = fast_opts();
        LbRepo *r;
        CHECK_OK(lb_repo_init(loc, "pw", &o, &r));
        CHECK_OK(lb_repo_index_update(r));
        LbWriter *w;
        CHECK_OK(lb_writer_new(r, &w));
        enum { N = 300, SZ = 8192 };
        static uint8_t data[N][SZ];
        LbId ids[N];
        for (size_t i = 0; i < N; i++) {
                fill(data[i], SZ, i + 1);
                CHECK_OK(lb_writer_add(w, LB_BLOB_DATA, data[i], SZ, &ids[i]));
        }
        /* The same blobs again: deduplicated against the pending set. */
        for (size_t i = 0; i < N; i++)
                CHECK_OK(lb_writer_add(w, LB_BLOB_DATA, data[i], SZ, &ids[i]));
        LbWriterStats st;
        lb_writer_stats(w, &st);
        CHECK(st.blobs == 2 * N && st.blobs_new == N);
        CHECK(st.packs >= 2); /* 2.4 MB of random data in 1 MiB packs */
        /* Nothing is in the index before flush... */
        CHECK(lb_repo_lookup(r, &ids[N - 1], NULL) == -ENOENT);
        CHECK_OK(lb_writer_flush(w));
        lb_writer_free(w);
        for (size_t i = 0; i < N; i++) {
                _cleanup_buf_ LbBuf out = {};
                CHECK_OK(lb_repo_read_blob(r, &ids[i], &out));
                CHECK(out.len == SZ && memcmp(out.data, data[i], SZ) == 0);
        }
        /* A second writer finds everything through the index. */
        CHECK_OK(lb_writer_new(r, &w));
        for (size_t i = 0; i < N; i++)
                CHECK_OK(lb_writer_add(w, LB_BLOB_DATA, data[i], SZ, &ids[i]));
        lb_writer_stats(w, &st);
        CHECK(st.blobs_new == 0);
        CHECK_OK(lb_writer_flush(w));
        lb_writer_free(w);
        uint64_t blobs, stored;
        CHECK_OK(lb_repo_index_totals(r, &blobs, &stored));
        CHECK(blobs == N);
        lb_repo_free(r);

        /* Delete the local index and every index file: rebuild from packs. */
        _cleanup_free_ char *idx = lb_path_join(loc, "index");
        DIR *d = opendir(idx);
        struct dirent *de;
        while ((de = readdir(d)))
                if (de->d_name[0] != '.') {
                        _cleanup_free_ char *p = lb_path_join(idx, de->d_name);
                        CHECK(unlink(p) == 0);
                }
        closedir(d);
        _cleanup_free_ char *cmd = lb_strdup_printf("rm -rf '%s/localindex'", loc);
        CHECK(system(cmd) == 0);
        CHECK_OK(lb_repo_open(loc, NULL, "pw", &r));
        CHECK_OK(lb_repo_index_update(r));
        CHECK(lb_repo_lookup(r, &ids[0], NULL) == -ENOENT);
        unsigned packs;
        CHECK_OK(lb_repo_index_rebuild(r, true, &packs));
        CHECK(packs >= 2);
        CHECK(count_files(idx) == 1);
        for (size_t i = 0; i < N; i++) {
                _cleanup_buf_ LbBuf out = {};
                CHECK_OK(lb_repo_read_blob(r, &ids[i], &out));
                CHECK(out.len == SZ && memcmp(out.data, data[i], SZ) == 0);
        }
        lb_repo_free(r);
}

TEST(test_snapshots) {
        _cleanup_free_ char *loc = new_dir("r6");
        LbInitOptions o = fast_opts();
        LbRepo *r;
        CHECK_OK(lb_repo_init(loc, "pw", &o, &r));
        LbId ids[3];
        for (int i = 0; i < 3; i++) {
                LbSnapshot s = { .time_ns = 1700000000000000000 + (int64_t) i * 86400000000000, .hostname = (char *) "h" };
                memset(s.tree.b, i, LB_ID_SIZE);
                CHECK_OK(lb_repo_snapshot_save(r, &s, &ids[i]));
        }
        LbSnapshot **v;
        size_t n;
        CHECK_OK(lb_repo_snapshot_list(r, &v, &n));
        CHECK(n == 3);
        for (size_t i = 0; i < n; i++)
                CHECK(v[i]->tree.b[0] == i); /* sorted by time */
        lb_snapshots_free(v, n);
        LbSnapshot *s;
        CHECK_OK(lb_repo_snapshot_find(r, "latest", &s));
        CHECK(lb_id_cmp(&s->id, &ids[2]) == 0);
        lb_snapshot_free(s);
        char hex[65];
        lb_id_hex(&ids[1], hex);
        hex[8] = 0;
        CHECK_OK(lb_repo_snapshot_find(r, hex, &s));
        CHECK(lb_id_cmp(&s->id, &ids[1]) == 0);
        lb_snapshot_free(s);
        CHECK(lb_repo_snapshot_find(r, "zz", &s) == -ENOENT);
        CHECK(lb_repo_snapshot_find(r, "", &s) == -ENOENT);
        /* A flipped byte in a snapshot file is detected. */
        lb_id_hex(&ids[0], hex);
        _cleanup_free_ char *path = lb_strdup_printf("%s/snapshots/%s", loc, hex);
        _cleanup_buf_ LbBuf b = {};
        CHECK_OK(lb_read_file(path, 1 << 20, &b));
        b.data[b.len / 2] ^= 0x10;
        _cleanup_free_ char *dir = lb_path_join(loc, "snapshots");
        CHECK_OK(lb_write_file_atomic(dir, hex, b.data, b.len, 0600));
        CHECK(lb_repo_snapshot_load(r, &ids[0], &s) == -EBADMSG);
        /* ... and left out of the list, which still has the others. */
        CHECK_OK(lb_repo_snapshot_list(r, &v, &n));
        CHECK(n == 2 && lb_id_cmp(&v[0]->id, &ids[1]) == 0);
        lb_snapshots_free(v, n);
        lb_repo_free(r);
}

/* Removals without a directory sync each, then one sync; objects put in
 * pieces. */
TEST(test_remove_nosync_put_iov) {
        _cleanup_free_ char *loc = new_dir("r-nosync");
        LbInitOptions o = fast_opts();
        LbRepo *r;
        CHECK_OK(lb_repo_init(loc, "pw", &o, &r));
        LbId ids[3];
        const char *parts[] = { "one ", "two ", "three" };
        struct iovec iov[3];
        for (int i = 0; i < 3; i++)
                iov[i] = (struct iovec) { (void *) parts[i], strlen(parts[i]) };
        CHECK_OK(lb_repo_put_object_iov(r, LB_OBJ_PACK, iov, 3, &ids[0]));
        LbId whole;
        lb_object_id("one two three", 13, &whole);
        CHECK(lb_id_cmp(&ids[0], &whole) == 0);
        CHECK_OK(lb_repo_put_object(r, LB_OBJ_INDEX, "a", 1, &ids[1]));
        CHECK_OK(lb_repo_put_object(r, LB_OBJ_INDEX, "b", 1, &ids[2]));
        char hex[2 * LB_ID_SIZE + 1];
        lb_id_hex(&ids[0], hex);
        _cleanup_buf_ LbBuf b = {};
        CHECK_OK(r->be->get(r->be, LB_OBJ_PACK, hex, 0, SIZE_MAX, &b));
        CHECK(b.len == 13 && memcmp(b.data, "one two three", 13) == 0);
        _cleanup_free_ char *index = lb_path_join(loc, "index");
        CHECK_EQ_INT(count_files(index), 2);
        /* A mapped object reads as get reads it, and stays readable after
         * its removal until unmapped. */
        const uint8_t *m;
        size_t mlen;
        CHECK(r->be->map && r->be->unmap);
        CHECK_OK(r->be->map(r->be, LB_OBJ_PACK, hex, &m, &mlen));
        CHECK(mlen == 13 && memcmp(m, "one two three", 13) == 0);
        r->be->unmap(r->be, m, mlen);
        CHECK(r->be->map(r->be, LB_OBJ_PACK, "00", &m, &mlen) == -ENOENT);
        CHECK_OK(r->be->map(r->be, LB_OBJ_PACK, hex, &m, &mlen));
        CHECK_OK(lb_repo_remove_nosync(r, LB_OBJ_INDEX, &ids[1]));
        CHECK_OK(lb_repo_remove_nosync(r, LB_OBJ_PACK, &ids[0]));
        CHECK_EQ_INT(count_files(index), 1);
        CHECK(r->be->get(r->be, LB_OBJ_PACK, hex, 0, SIZE_MAX, &b) == -ENOENT);
        CHECK(memcmp(m, "one two three", 13) == 0);
        r->be->unmap(r->be, m, mlen);
        CHECK(lb_repo_remove_nosync(r, LB_OBJ_INDEX, &ids[1]) == -ENOENT);
        CHECK_OK(lb_repo_sync_removals(r, LB_OBJ_INDEX));
        CHECK_OK(lb_repo_sync_removals(r, LB_OBJ_PACK));
        CHECK_OK(lb_repo_sync_removals(r, LB_OBJ_SNAPSHOT)); /* nothing to sync */
        lb_repo_free(r);
}

int main(void) {
        CHECK_OK(lb_crypto_init());
        base = mkdtemp(tmpl);
        CHECK(base);
        RUN(test_init_open);
        RUN(test_config_tamper);
        RUN(test_keys);
        RUN(test_locks);
        RUN(test_writer_and_index);
        RUN(test_snapshots);
        RUN(test_remove_nosync_put_iov);
        _cleanup_free_ char *cmd = lb_strdup_printf("rm -rf '%s'", base);
        return system(cmd) == 0 ? 0 : 1;
}
