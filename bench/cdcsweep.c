/* SPDX-License-Identifier: MIT */
/*
 * cdcsweep: how well do chunker parameters dedup one snapshot against the
 * previous one, and what do they cost in metadata?
 *
 *   cdcsweep OLD NEW [--min M --avg A --max X]...
 *
 * Chunks OLD and NEW with lb_chunker for each parameter set (a set starts
 * at an option already given for the current set; missing min / max
 * default to avg/4 and avg*4; sizes take K, M suffixes). The default sweep
 * is avg 4K, 8K, 16K, 32K, 64K, 1M. For each set it prints NEW's chunk
 * count and mean size, the share of NEW's bytes in chunks whose content
 * (XXH3-128) does not occur in OLD (what a backup of NEW after OLD must
 * upload), the per-snapshot metadata estimate (36 bytes per chunk: id +
 * length) and the speed of the chunker alone over NEW.
 *
 * The gear table is splitmix64 from a fixed seed, not a repository key:
 * the statistics do not depend on the key.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "chunker/chunker.h"
#include "store/format.h"
#include "store/util.h"

#define MAX_SETS 64

typedef struct Map {
        const uint8_t *p;
        size_t n;
} Map;

static int map_file(const char *path, Map *ret) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (st.st_size == 0) {
                *ret = (Map) { (const uint8_t *) "", 0 };
                return 0;
        }
        void *p = mmap(NULL, (size_t) st.st_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
        if (p == MAP_FAILED)
                return -errno;
        (void) madvise(p, (size_t) st.st_size, MADV_SEQUENTIAL);
        *ret = (Map) { p, (size_t) st.st_size };
        return 0;
}

/* A set of 128-bit hashes: open addressing, linear probing; the all-zero
 * key marks an empty slot (a real zero hash is remapped). */
typedef struct Set {
        XXH128_hash_t *v;
        size_t mask, count;
} Set;

static int set_init(Set *s, size_t expect) {
        size_t cap = 1024;
        while (cap < expect * 2)
                cap *= 2;
        s->v = calloc(cap, sizeof *s->v);
        if (!s->v)
                return -ENOMEM;
        s->mask = cap - 1;
        s->count = 0;
        return 0;
}

static XXH128_hash_t key_of(const uint8_t *p, size_t n) {
        XXH128_hash_t h = XXH3_128bits(p, n);
        if (h.low64 == 0 && h.high64 == 0)
                h.low64 = 1;
        return h;
}

/* Returns 1 if added, 0 if present, -ENOMEM if the set is full. */
static int set_add(Set *s, XXH128_hash_t k) {
        if (s->count * 4 >= (s->mask + 1) * 3)
                return -ENOMEM;
        for (size_t i = k.low64 & s->mask;; i = (i + 1) & s->mask) {
                XXH128_hash_t *e = &s->v[i];
                if (e->low64 == 0 && e->high64 == 0) {
                        *e = k;
                        s->count++;
                        return 1;
                }
                if (e->low64 == k.low64 && e->high64 == k.high64)
                        return 0;
        }
}

static int set_has(const Set *s, XXH128_hash_t k) {
        for (size_t i = k.low64 & s->mask;; i = (i + 1) & s->mask) {
                const XXH128_hash_t *e = &s->v[i];
                if (e->low64 == 0 && e->high64 == 0)
                        return 0;
                if (e->low64 == k.low64 && e->high64 == k.high64)
                        return 1;
        }
}

static uint64_t splitmix64(uint64_t *s) {
        uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
}

static double now_s(void) {
        return (double) lb_mono_ns() / 1e9;
}

static int parse_size(const char *s, uint32_t *ret) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno || end == s)
                return -EINVAL;
        if (*end == 'K' || *end == 'k')
                v <<= 10, end++;
        else if (*end == 'M' || *end == 'm')
                v <<= 20, end++;
        if (*end || v > UINT32_MAX)
                return -EINVAL;
        *ret = (uint32_t) v;
        return 0;
}

static void fmt_size(uint32_t v, char *buf, size_t n) {
        if (v >= (1u << 20) && v % (1u << 20) == 0)
                snprintf(buf, n, "%" PRIu32 "M", v >> 20);
        else if (v >= 1024 && v % 1024 == 0)
                snprintf(buf, n, "%" PRIu32 "K", v >> 10);
        else
                snprintf(buf, n, "%" PRIu32, v);
}

typedef struct Result {
        size_t chunks;
        uint64_t new_bytes;
        size_t new_chunks;
        double chunk_mbs;
} Result;

static int run_set(const LbChunker *c, const Map *old, const Map *new, Result *ret) {
        Result res = { 0 };
        Set set = { 0 };
        int r;

        r = set_init(&set, old->n / c->p.min / 2 + 1024);
        if (r < 0)
                return r;

        /* OLD: every chunk's hash. */
        for (size_t off = 0; off < old->n;) {
                size_t l = lb_chunker_cut(c, old->p + off, old->n - off, 1);
                r = set_add(&set, key_of(old->p + off, l));
                if (r < 0)
                        goto done;
                off += l;
        }

        /* NEW: bytes in chunks that OLD does not have. */
        for (size_t off = 0; off < new->n;) {
                size_t l = lb_chunker_cut(c, new->p + off, new->n - off, 1);
                if (!set_has(&set, key_of(new->p + off, l))) {
                        res.new_bytes += l;
                        res.new_chunks++;
                }
                res.chunks++;
                off += l;
        }

        /* The chunker alone (best of three passes over NEW). */
        double best = 1e30;
        for (int rep = 0; rep < 3; rep++) {
                double t0 = now_s();
                size_t count = 0;
                for (size_t off = 0; off < new->n; count++)
                        off += lb_chunker_cut(c, new->p + off, new->n - off, 1);
                double t = now_s() - t0;
                if (count != res.chunks) {
                        r = -EIO;
                        goto done;
                }
                if (t < best)
                        best = t;
        }
        res.chunk_mbs = best > 0 ? (double) new->n / best / 1e6 : 0;
        *ret = res;
        r = 0;
done:
        free(set.v);
        return r;
}

static void usage(FILE *f) {
        fprintf(f, "Usage: cdcsweep OLD NEW [--min M --avg A --max X]...\n"
                   "Sizes take K and M suffixes; min defaults to avg/4, max to avg*4.\n"
                   "Default sweep: avg 4K 8K 16K 32K 64K 1M.\n");
}

int main(int argc, char **argv) {
        LbChunkerParams sets[MAX_SETS];
        size_t nsets = 0;
        const char *files[2];
        size_t nfiles = 0;
        LbChunkerParams cur = { 0 };
        int r;

        for (int i = 1; i < argc; i++) {
                const char *a = argv[i];
                uint32_t *field = NULL;
                if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
                        usage(stdout);
                        return 0;
                }
                if (strcmp(a, "--min") == 0)
                        field = &cur.min;
                else if (strcmp(a, "--avg") == 0)
                        field = &cur.avg;
                else if (strcmp(a, "--max") == 0)
                        field = &cur.max;
                else if (a[0] == '-' && a[1]) {
                        fprintf(stderr, "cdcsweep: unknown option %s\n", a);
                        usage(stderr);
                        return 2;
                } else {
                        if (nfiles == 2) {
                                usage(stderr);
                                return 2;
                        }
                        files[nfiles++] = a;
                        continue;
                }
                if (i + 1 >= argc) {
                        fprintf(stderr, "cdcsweep: %s needs a value\n", a);
                        return 2;
                }
                if (*field) { /* a new set begins */
                        if (nsets == MAX_SETS) {
                                fprintf(stderr, "cdcsweep: at most %d parameter sets\n", MAX_SETS);
                                return 2;
                        }
                        sets[nsets++] = cur;
                        cur = (LbChunkerParams) { 0 };
                }
                if (parse_size(argv[++i], field) < 0 || *field == 0) {
                        fprintf(stderr, "cdcsweep: invalid size for %s: %s\n", a, argv[i]);
                        return 2;
                }
        }
        if (cur.min || cur.avg || cur.max) {
                if (nsets == MAX_SETS) {
                        fprintf(stderr, "cdcsweep: at most %d parameter sets\n", MAX_SETS);
                        return 2;
                }
                sets[nsets++] = cur;
        }
        if (nfiles != 2) {
                usage(stderr);
                return 2;
        }
        if (nsets == 0) {
                static const uint32_t avgs[] = { 4u << 10, 8u << 10, 16u << 10, 32u << 10, 64u << 10, 1u << 20 };
                for (size_t i = 0; i < LB_ARRAY_SIZE(avgs); i++)
                        sets[nsets++] = (LbChunkerParams) { 0, avgs[i], 0 };
        }
        for (size_t i = 0; i < nsets; i++) {
                if (!sets[i].avg) {
                        fprintf(stderr, "cdcsweep: parameter set %zu has no --avg\n", i + 1);
                        return 2;
                }
                if (!sets[i].min)
                        sets[i].min = sets[i].avg / 4;
                if (!sets[i].max)
                        sets[i].max = sets[i].avg * 4 < LB_CHUNK_MAX_LIMIT ? sets[i].avg * 4 : LB_CHUNK_MAX_LIMIT;
                r = lb_chunker_params_check(&sets[i]);
                if (r < 0) {
                        fprintf(stderr, "cdcsweep: invalid parameters min %" PRIu32 " avg %" PRIu32 " max %" PRIu32
                                        " (need 64 <= min < avg < max <= 16M, avg a power of two)\n",
                                sets[i].min, sets[i].avg, sets[i].max);
                        return 2;
                }
        }

        Map maps[2];
        for (size_t i = 0; i < 2; i++) {
                r = map_file(files[i], &maps[i]);
                if (r < 0) {
                        fprintf(stderr, "cdcsweep: failed to read %s: %s\n", files[i], strerror(-r));
                        return 1;
                }
        }
        const Map old = maps[0], new = maps[1];

        uint64_t gear[256], seed = 0x6c6f6e67626f7821ull;
        for (size_t i = 0; i < 256; i++)
                gear[i] = splitmix64(&seed);

        printf("OLD %s: %zu bytes\nNEW %s: %zu bytes\n\n", files[0], old.n, files[1], new.n);
        printf("%-16s %10s %9s %10s %9s %12s %11s\n", "min/avg/max", "chunks", "mean B", "new bytes", "new MiB",
               "meta/snap", "chunk MB/s");
        for (size_t i = 0; i < nsets; i++) {
                LbChunker c;
                Result res;
                char smin[16], savg[16], smax[16], label[64];
                r = lb_chunker_init(&c, &sets[i], gear);
                if (r >= 0)
                        r = run_set(&c, &old, &new, &res);
                if (r < 0) {
                        fprintf(stderr, "cdcsweep: parameter set %zu failed: %s\n", i + 1, strerror(-r));
                        return 1;
                }
                fmt_size(sets[i].min, smin, sizeof smin);
                fmt_size(sets[i].avg, savg, sizeof savg);
                fmt_size(sets[i].max, smax, sizeof smax);
                snprintf(label, sizeof label, "%s/%s/%s", smin, savg, smax);
                double meta = 36.0 * (double) res.chunks / 1024.0;
                printf("%-16s %10zu %9.0f %9.2f%% %9.1f %9.0fKiB %11.0f\n", label, res.chunks,
                       res.chunks ? (double) new.n / (double) res.chunks : 0.0,
                       new.n ? 100.0 * (double) res.new_bytes / (double) new.n : 0.0,
                       (double) res.new_bytes / 1048576.0, meta, res.chunk_mbs);
                fflush(stdout);
        }
        return 0;
}
