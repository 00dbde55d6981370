/* SPDX-License-Identifier: MIT */
/*
 * Repository locks (docs/design.md "Locks"). A lock is a sealed object in
 * locks/ naming its host, pid and the pid's start time. Protocol: write
 * our lock, then list; on conflict remove ours, wait and retry. Two
 * processes that race both see each other and both back off (with random
 * jitter), so neither proceeds under a conflicting lock.
 */
#include <signal.h>
#include <stdio.h>
#include <time.h>

#include "store/repo.h"

typedef struct LockInfo {
        bool exclusive;
        uint32_t pid;
        uint64_t start_time;
        int64_t time_ns;
        char host[256];
} LockInfo;

static uint64_t proc_start_time(pid_t pid) {
        char path[64], buf[1024];
        snprintf(path, sizeof path, "/proc/%d/stat", (int) pid);
        FILE *f = fopen(path, "re");
        if (!f)
                return 0;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = 0;
        /* Field 22 (starttime) comes after "pid (comm) state ..."; comm may
         * contain spaces and parentheses, so count from the last ')'. */
        char *p = strrchr(buf, ')');
        if (!p)
                return 0;
        unsigned field = 2;
        for (; *p && field < 22; p++)
                if (*p == ' ')
                        field++;
        return strtoull(p, NULL, 10);
}

static void host_name(char out[256]) {
        if (gethostname(out, 255) < 0)
                strcpy(out, "unknown");
        out[255] = 0;
}

static int lock_encode(const LbRepo *r, const LockInfo *l, LbBuf *out) {
        _cleanup_buf_ LbBuf p = {};
        size_t hl = strlen(l->host);
        int k = lb_buf_append(&p, LB_LOCK_MAGIC, 4);
        if (k == 0)
                k = lb_buf_append_u8(&p, l->exclusive);
        if (k == 0)
                k = lb_buf_append_le32(&p, l->pid);
        if (k == 0)
                k = lb_buf_append_le64(&p, l->start_time);
        if (k == 0)
                k = lb_buf_append_le64(&p, (uint64_t) l->time_ns);
        uint8_t h[2];
        lb_put_le16(h, (uint16_t) hl);
        if (k == 0)
                k = lb_buf_append(&p, h, 2);
        if (k == 0)
                k = lb_buf_append(&p, l->host, hl);
        if (k < 0)
                return k;
        return lb_seal_buf(r->keys.meta_key, LB_LOCK_AD, p.data, p.len, out);
}

static int lock_decode(const LbRepo *r, const uint8_t *p, size_t n, LockInfo *ret) {
        if (n > LB_LOCK_MAX_SIZE)
                return -EBADMSG;
        _cleanup_buf_ LbBuf plain = {};
        int k = lb_unseal_buf(r->keys.meta_key, LB_LOCK_AD, p, n, &plain);
        if (k < 0)
                return k;
        LbReader rd = lb_reader(plain.data, plain.len);
        const uint8_t *magic, *host;
        uint8_t excl;
        uint16_t hl;
        LockInfo l = {};
        uint64_t t;
        if (lb_reader_bytes(&rd, 4, &magic) < 0 || memcmp(magic, LB_LOCK_MAGIC, 4) != 0 ||
            lb_reader_u8(&rd, &excl) < 0 || lb_reader_le32(&rd, &l.pid) < 0 ||
            lb_reader_le64(&rd, &l.start_time) < 0 || lb_reader_le64(&rd, &t) < 0 ||
            lb_reader_le16(&rd, &hl) < 0 || hl > 255 || lb_reader_bytes(&rd, hl, &host) < 0 ||
            lb_reader_left(&rd) != 0)
                return -EBADMSG;
        l.exclusive = excl != 0;
        l.time_ns = (int64_t) t;
        memcpy(l.host, host, hl);
        l.host[hl] = 0;
        *ret = l;
        return 0;
}

/* A lock is stale when it was taken on this host by a process that no
 * longer exists (or whose pid was reused: the start time differs). */
static bool lock_is_stale(const LockInfo *l) {
        char host[256];
        host_name(host);
        if (strcmp(host, l->host) != 0)
                return false;
        if (kill((pid_t) l->pid, 0) < 0 && errno == ESRCH)
                return true;
        uint64_t st = proc_start_time((pid_t) l->pid);
        return st != 0 && l->start_time != 0 && st != l->start_time;
}

struct lock_scan {
        LbRepo *r;
        bool want_exclusive;
        bool remove_all;
        bool conflict;
        unsigned removed;
        LockInfo holder;
        int error;
};

static int scan_lock(const char *name, uint64_t size, void *ud) {
        struct lock_scan *s = ud;
        if (strcmp(name, s->r->lock_name) == 0)
                return 0;
        _cleanup_buf_ LbBuf b = {};
        int k = s->r->be->get(s->r->be, LB_OBJ_LOCK, name, 0, SIZE_MAX, &b);
        if (k == -ENOENT)
                return 0;
        if (k < 0)
                return k;
        LockInfo l;
        k = lock_decode(s->r, b.data, b.len, &l);
        if (k < 0 || s->remove_all || lock_is_stale(&l)) {
                /* Unreadable locks (another repository key? damage) are only
                 * removed by an explicit unlock --remove-all. */
                if (k < 0 && !s->remove_all) {
                        s->conflict = true;
                        snprintf(s->holder.host, sizeof s->holder.host, "unreadable lock %s", name);
                        return 0;
                }
                k = s->r->be->remove(s->r->be, LB_OBJ_LOCK, name);
                if (k < 0 && k != -ENOENT)
                        return k;
                s->removed++;
                return 0;
        }
        if (s->want_exclusive || l.exclusive) {
                s->conflict = true;
                s->holder = l;
        }
        return 0;
}

static void sleep_ms(unsigned ms) {
        struct timespec ts = { ms / 1000, (long) (ms % 1000) * 1000000L };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

int lb_repo_lock(LbRepo *r, bool exclusive, int64_t wait_ns) {
        if (r->lock_name[0])
                return -EALREADY;
        LockInfo me = { .exclusive = exclusive, .pid = (uint32_t) getpid(), .time_ns = lb_now_ns() };
        me.start_time = proc_start_time(getpid());
        host_name(me.host);
        _cleanup_buf_ LbBuf b = {};
        int k = lock_encode(r, &me, &b);
        if (k < 0)
                return k;
        char name[17];
        uint8_t rnd[8];
        lb_random(rnd, sizeof rnd);
        lb_hex_encode(rnd, sizeof rnd, name);

        int64_t deadline = lb_mono_ns() + (wait_ns > 0 ? wait_ns : 0);
        for (;;) {
                k = r->be->put(r->be, LB_OBJ_LOCK, name, b.data, b.len);
                if (k < 0)
                        return k;
                memcpy(r->lock_name, name, 17);
                struct lock_scan s = { .r = r, .want_exclusive = exclusive };
                k = r->be->list(r->be, LB_OBJ_LOCK, scan_lock, &s);
                if (k == 0 && !s.conflict) {
                        r->lock_exclusive = exclusive;
                        return 0;
                }
                (void) r->be->remove(r->be, LB_OBJ_LOCK, name);
                r->lock_name[0] = 0;
                if (k < 0)
                        return k;
                if (lb_mono_ns() >= deadline)
                        return -EWOULDBLOCK;
                sleep_ms(200 + lb_random_uniform(300));
        }
}

int lb_repo_unlock(LbRepo *r) {
        if (!r->lock_name[0])
                return 0;
        int k = r->be->remove(r->be, LB_OBJ_LOCK, r->lock_name);
        r->lock_name[0] = 0;
        return k == -ENOENT ? 0 : k;
}

int lb_repo_remove_locks(LbRepo *r, bool all, unsigned *ret_removed) {
        struct lock_scan s = { .r = r, .remove_all = all };
        int k = r->be->list(r->be, LB_OBJ_LOCK, scan_lock, &s);
        if (k < 0)
                return k;
        if (ret_removed)
                *ret_removed = s.removed;
        return 0;
}

char *lb_repo_lock_holder(LbRepo *r) {
        struct lock_scan s = { .r = r, .want_exclusive = true };
        if (r->be->list(r->be, LB_OBJ_LOCK, scan_lock, &s) < 0 || !s.conflict)
                return NULL;
        if (s.holder.pid == 0)
                return strdup(s.holder.host);
        time_t t = (time_t) (s.holder.time_ns / 1000000000);
        struct tm tm;
        char when[64];
        localtime_r(&t, &tm);
        strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
        return lb_strdup_printf("%s lock held by pid %u on %s since %s", s.holder.exclusive ? "an exclusive" : "a",
                                s.holder.pid, s.holder.host, when);
}
