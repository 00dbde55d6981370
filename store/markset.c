/* SPDX-License-Identifier: MIT */
#include "store/markset.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

/* A slot: id[0..28) || value u32 (little-endian); value 0 means empty. */
#define SLOT_SIZE 32
#define KEY_SIZE LB_MARKSET_KEY_SIZE
#define SLOTS_MIN 4096
_Static_assert(KEY_SIZE + 4 == SLOT_SIZE, "slot layout");

struct LbMarkSet {
        char *dir;
        int fd;
        uint8_t *map;
        uint64_t slots;         /* power of two */
        uint64_t count;
};

static uint64_t start_slot(const LbMarkSet *m, const uint8_t *id) {
        uint64_t h;
        memcpy(&h, id, sizeof h);
        return h & (m->slots - 1);
}

static uint32_t slot_value(const uint8_t *s) {
        return lb_get_le32(s + KEY_SIZE);
}

/* The slot holding id, or the empty slot where it belongs. */
static uint8_t *find(const LbMarkSet *m, const uint8_t *id) {
        for (uint64_t i = start_slot(m, id);; i = (i + 1) & (m->slots - 1)) {
                uint8_t *s = m->map + i * SLOT_SIZE;
                if (slot_value(s) == 0 || memcmp(s, id, KEY_SIZE) == 0)
                        return s;
        }
}

/* A zero-filled table of slots entries in a new unlinked file of dir. */
static int table_new(const char *dir, uint64_t slots, int *ret_fd, uint8_t **ret_map) {
        int fd = lb_open_tmpfile(dir);
        if (fd < 0)
                return fd;
        uint64_t size = slots * SLOT_SIZE;
        if (ftruncate(fd, (off_t) size) < 0) {
                int k = -errno;
                close(fd);
                return k;
        }
        void *map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (map == MAP_FAILED) {
                int k = -errno;
                close(fd);
                return k;
        }
        /* Probes land anywhere: read-ahead would only fault in neighbours.
         * Huge pages, where the file system offers them: the whole table
         * is touched anyway, in a few hundred faults instead of one per
         * 4 KiB. */
        (void) madvise(map, size, MADV_RANDOM);
        (void) madvise(map, size, MADV_HUGEPAGE);
        *ret_fd = fd;
        *ret_map = map;
        return 0;
}

static void table_free(int fd, uint8_t *map, uint64_t slots) {
        if (map)
                munmap(map, slots * SLOT_SIZE);
        if (fd >= 0)
                close(fd);
}

int lb_markset_open(const char *dir, uint64_t expected, LbMarkSet **ret) {
        LbMarkSet *m = calloc(1, sizeof *m);
        if (!m)
                return -ENOMEM;
        m->fd = -1;
        /* At most two thirds full. */
        m->slots = SLOTS_MIN;
        while (m->slots / 3 * 2 < expected && m->slots < (UINT64_C(1) << 40))
                m->slots *= 2;
        m->dir = strdup(dir);
        int k = m->dir ? table_new(dir, m->slots, &m->fd, &m->map) : -ENOMEM;
        if (k < 0) {
                lb_markset_free(m);
                return k;
        }
        *ret = m;
        return 0;
}

LbMarkSet *lb_markset_free(LbMarkSet *m) {
        if (!m)
                return NULL;
        table_free(m->fd, m->map, m->slots);
        free(m->dir);
        free(m);
        return NULL;
}

void lb_markset_prefetch(const LbMarkSet *m, const LbId *id) {
        __builtin_prefetch(m->map + start_slot(m, id->b) * SLOT_SIZE);
}

int lb_markset_get(LbMarkSet *m, const LbId *id, uint32_t *ret_value) {
        const uint8_t *s = find(m, id->b);
        uint32_t v = slot_value(s);
        if (v == 0)
                return -ENOENT;
        if (ret_value)
                *ret_value = v;
        return 0;
}

static int grow(LbMarkSet *m) {
        uint64_t slots = m->slots * 2;
        int fd;
        uint8_t *map;
        int k = table_new(m->dir, slots, &fd, &map);
        if (k < 0)
                return k;
        LbMarkSet bigger = { .fd = fd, .map = map, .slots = slots, .count = m->count };
        for (uint64_t i = 0; i < m->slots; i++) {
                const uint8_t *s = m->map + i * SLOT_SIZE;
                if (slot_value(s) != 0)
                        memcpy(find(&bigger, s), s, SLOT_SIZE);
        }
        table_free(m->fd, m->map, m->slots);
        m->fd = fd;
        m->map = map;
        m->slots = slots;
        return 0;
}

int lb_markset_put(LbMarkSet *m, const LbId *id, uint32_t value) {
        if (value == 0)
                return -EINVAL;
        uint8_t *s = find(m, id->b);
        if (slot_value(s) == 0) {
                if ((m->count + 1) * 3 > m->slots * 2) {
                        int k = grow(m);
                        if (k < 0)
                                return k;
                        s = find(m, id->b);
                }
                memcpy(s, id->b, KEY_SIZE);
                m->count++;
        }
        lb_put_le32(s + KEY_SIZE, value);
        return 0;
}

int lb_markset_foreach(LbMarkSet *m, LbMarkFn fn, void *userdata) {
        for (uint64_t i = 0; i < m->slots; i++) {
                const uint8_t *s = m->map + i * SLOT_SIZE;
                uint32_t v = slot_value(s);
                if (v == 0)
                        continue;
                int k = fn(s, v, userdata);
                if (k < 0)
                        return k;
        }
        return 0;
}
