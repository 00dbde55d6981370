/* SPDX-License-Identifier: MIT */
#include "store/idset.h"

static size_t slot_of(const LbId *id, size_t cap) {
        return (size_t) lb_get_le64(id->b) & (cap - 1);
}

static int grow(LbIdSet *s) {
        size_t cap = s->cap ? s->cap * 2 : 1024;
        LbId *slots = malloc(cap * sizeof *slots);
        uint8_t *used = calloc(cap, 1);
        if (!slots || !used) {
                free(slots);
                free(used);
                return -ENOMEM;
        }
        for (size_t i = 0; i < s->cap; i++) {
                if (!s->used[i])
                        continue;
                size_t j = slot_of(&s->slots[i], cap);
                while (used[j])
                        j = (j + 1) & (cap - 1);
                slots[j] = s->slots[i];
                used[j] = 1;
        }
        free(s->slots);
        free(s->used);
        s->slots = slots;
        s->used = used;
        s->cap = cap;
        return 0;
}

int lb_idset_add(LbIdSet *s, const LbId *id) {
        if ((s->n + 1) * 4 > s->cap * 3) {
                int r = grow(s);
                if (r < 0)
                        return r;
        }
        size_t j = slot_of(id, s->cap);
        while (s->used[j]) {
                if (memcmp(s->slots[j].b, id->b, LB_ID_SIZE) == 0)
                        return 0;
                j = (j + 1) & (s->cap - 1);
        }
        s->slots[j] = *id;
        s->used[j] = 1;
        s->n++;
        return 1;
}

bool lb_idset_contains(const LbIdSet *s, const LbId *id) {
        if (!s->cap)
                return false;
        size_t j = slot_of(id, s->cap);
        while (s->used[j]) {
                if (memcmp(s->slots[j].b, id->b, LB_ID_SIZE) == 0)
                        return true;
                j = (j + 1) & (s->cap - 1);
        }
        return false;
}

void lb_idset_free(LbIdSet *s) {
        free(s->slots);
        free(s->used);
        *s = (LbIdSet) {};
}
