/* SPDX-License-Identifier: MIT */
#include "chunker/chunker.h"

#include <errno.h>
#include <string.h>

#include "store/format.h"

/*
 * FastCDC, normalized chunking level 2.
 *
 * The gear hash h = (h << 1) + gear[byte] shifts every byte's contribution
 * one bit up per step, so bit k of h depends on the last k + 1 bytes only.
 * The low bits therefore see a tiny window, and a mask made of low bits
 * would cut on very short, frequent patterns. As in the FastCDC paper the
 * mask bits are spread over the upper 48 bits (16..63), which makes the
 * effective window 48..64 bytes and keeps the bits far apart.
 *
 * Normalization: between min and avg the stricter mask_s (log2(avg) + 2
 * bits, cut probability 1/(4 avg)) applies, after avg the looser mask_l
 * (log2(avg) - 2 bits, 4/avg). This narrows the chunk size distribution
 * around avg.
 */

#define SPREAD_LO 16u
#define SPREAD_BITS 48u

static unsigned log2_u32(uint32_t v) {
        return 31u - (unsigned) __builtin_clz(v);
}

/* nbits (1..SPREAD_BITS) evenly spread over bits 16..63, always with bit 63. */
static uint64_t spread_mask(unsigned nbits) {
        uint64_t m = 0;
        for (unsigned i = 0; i < nbits; i++)
                m |= 1ull << (63u - i * SPREAD_BITS / nbits);
        return m;
}

int lb_chunker_params_check(const LbChunkerParams *p) {
        if (!p)
                return -EINVAL;
        if (p->min < LB_CHUNK_MIN_LIMIT || p->max > LB_CHUNK_MAX_LIMIT)
                return -EINVAL;
        if (!(p->min < p->avg && p->avg < p->max))
                return -EINVAL;
        if ((p->avg & (p->avg - 1)) != 0)
                return -EINVAL;
        return 0;
}

int lb_chunker_init(LbChunker *c, const LbChunkerParams *p, const uint64_t gear[256]) {
        int r;

        if (!c || !gear)
                return -EINVAL;
        r = lb_chunker_params_check(p);
        if (r < 0)
                return r;

        /* min >= 64 and avg > min make avg >= 128, so log2(avg) is 7..23:
         * mask_l has 5..21 bits and mask_s 9..25, both within SPREAD_BITS. */
        unsigned bits = log2_u32(p->avg);
        c->p = *p;
        c->mask_s = spread_mask(bits + 2);
        c->mask_l = spread_mask(bits - 2);
        memcpy(c->gear, gear, sizeof c->gear);
        for (size_t b = 0; b < 256; b++)
                c->gear_ls[b] = gear[b] << 1;
        return 0;
}

size_t lb_chunker_cut(const LbChunker *c, const uint8_t *p, size_t n, int eof) {
        const size_t min = c->p.min;
        if (n <= min)
                return eof ? n : 0;

        const size_t end = n < c->p.max ? n : c->p.max;
        const size_t mid = end < c->p.avg ? end : c->p.avg;
        const uint64_t *gear = c->gear, *gear_ls = c->gear_ls;
        const uint64_t ms = c->mask_s, ml = c->mask_l;
        uint64_t h = 0;
        size_t i = min;

        /* Two bytes a step: h after both is (h << 2) + (gear[a] << 1) + gear[b]
         * (mod 2^64), the same value as two single steps, so the cut points
         * are exactly those of the one-byte loop; but the loop-carried chain
         * is one shift and add per two bytes. The hash after the first byte
         * is computed off the chain, for its own test. */
        for (; i + 1 < mid; i += 2) {
                uint64_t h1 = (h << 1) + gear[p[i]];
                h = (h << 2) + gear_ls[p[i]] + gear[p[i + 1]];
                if (__builtin_expect((h1 & ms) == 0, 0))
                        return i + 1;
                if (__builtin_expect((h & ms) == 0, 0))
                        return i + 2;
        }
        for (; i < mid; i++) {
                h = (h << 1) + gear[p[i]];
                if (__builtin_expect((h & ms) == 0, 0))
                        return i + 1;
        }
        for (; i + 1 < end; i += 2) {
                uint64_t h1 = (h << 1) + gear[p[i]];
                h = (h << 2) + gear_ls[p[i]] + gear[p[i + 1]];
                if (__builtin_expect((h1 & ml) == 0, 0))
                        return i + 1;
                if (__builtin_expect((h & ml) == 0, 0))
                        return i + 2;
        }
        for (; i < end; i++) {
                h = (h << 1) + gear[p[i]];
                if (__builtin_expect((h & ml) == 0, 0))
                        return i + 1;
        }

        if (n >= c->p.max)
                return c->p.max;
        return eof ? n : 0;
}
