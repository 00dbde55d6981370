/* SPDX-License-Identifier: MIT */
/*
 * stages: single-core throughput of each step of longbox's data path on
 * one input file, so a benchmark result can be set against what one core
 * can do at all.
 *
 *   stages FILE [--chunk-avg N] [--level L] [--mb N]
 *
 * Cuts FILE (or its first --mb MiB) with the default chunker, then times,
 * over every chunk: the chunk id (keyed BLAKE2b-256), zstd compression,
 * sealing (XChaCha20-Poly1305), the whole blob encode, opening, zstd
 * decompression, and the whole blob decode (open + decompress + id check),
 * each in MB/s of raw bytes on one thread. Prints the per-core ceiling of
 * a read path (decode) and a write path (cut + id for a known chunk), and
 * those ceilings times the number of cores.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "chunker/chunker.h"
#include "store/crypto.h"
#include "store/pack.h"
#include "store/repo.h"

static double now_s(void) {
        return (double) lb_mono_ns() / 1e9;
}

typedef struct {
        const uint8_t *data;
        size_t n;
        size_t *off, *len;
        size_t n_chunks;
} Input;

static void report(const char *what, size_t bytes, double secs) {
        printf("%-34s %9.1f MB/s\n", what, (double) bytes / 1e6 / secs);
}

int main(int argc, char **argv) {
        LbInitOptions defaults;
        lb_init_options_default(&defaults);
        const char *path = NULL;
        uint32_t avg = defaults.chunker.avg;
        int level = defaults.zstd_level;
        size_t limit_mb = 256;
        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--chunk-avg") == 0 && i + 1 < argc)
                        avg = (uint32_t) strtoul(argv[++i], NULL, 10);
                else if (strcmp(argv[i], "--level") == 0 && i + 1 < argc)
                        level = atoi(argv[++i]);
                else if (strcmp(argv[i], "--mb") == 0 && i + 1 < argc)
                        limit_mb = strtoul(argv[++i], NULL, 10);
                else if (argv[i][0] != '-' && !path)
                        path = argv[i];
                else {
                        fprintf(stderr, "usage: stages FILE [--chunk-avg N] [--level L] [--mb N]\n");
                        return 2;
                }
        }
        if (!path) {
                fprintf(stderr, "usage: stages FILE [--chunk-avg N] [--level L] [--mb N]\n");
                return 2;
        }
        if (lb_crypto_init() < 0)
                return 1;

        int fd = open(path, O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0) {
                perror(path);
                return 1;
        }
        size_t n = LB_MIN((size_t) st.st_size, limit_mb << 20);
        uint8_t *data = malloc(LB_MAX(n, (size_t) 1));
        size_t got = 0;
        if (!data || lb_read_all(fd, data, n, &got) < 0 || got != n) {
                fprintf(stderr, "stages: cannot read %s\n", path);
                return 1;
        }
        close(fd);

        uint8_t master[LB_KEY_SIZE];
        lb_random(master, sizeof master);
        LbKeys keys;
        lb_keys_derive(&keys, master);
        uint64_t gear[256];
        lb_gear_table(&keys, gear);
        /* The defaults' proportions, as `init --chunk-avg` sets them. */
        LbChunkerParams p = avg == defaults.chunker.avg ? defaults.chunker
                                                        : (LbChunkerParams) { .min = avg / 4, .avg = avg, .max = avg * 4 };
        LbChunker c;
        if (lb_chunker_init(&c, &p, gear) < 0) {
                fprintf(stderr, "stages: bad chunk size %u\n", avg);
                return 2;
        }

        Input in = { .data = data, .n = n };
        in.off = malloc((n / p.min + 2) * sizeof *in.off);
        in.len = malloc((n / p.min + 2) * sizeof *in.len);
        if (!in.off || !in.len)
                return 1;
        printf("%s: %.1f MB, chunks min/avg/max %u/%u/%u, zstd level %d, one thread\n\n", path, (double) n / 1e6,
               p.min, p.avg, p.max, level);

        double t = now_s();
        for (size_t off = 0; off < n;) {
                size_t cut = lb_chunker_cut(&c, data + off, n - off, 1);
                in.off[in.n_chunks] = off;
                in.len[in.n_chunks++] = cut;
                off += cut;
        }
        double t_cut = now_s() - t;
        report("cut (FastCDC)", n, t_cut);

        LbId *ids = malloc(in.n_chunks * sizeof *ids);
        LbBuf *sealed = calloc(in.n_chunks, sizeof *sealed);
        LbPackEntry *entries = malloc(in.n_chunks * sizeof *entries);
        uint8_t *scratch = malloc(ZSTD_compressBound(p.max) + LB_SEAL_OVERHEAD + p.max);
        uint8_t *scratch2 = malloc(ZSTD_compressBound(p.max) + LB_SEAL_OVERHEAD + p.max);
        ZSTD_CCtx *cc = ZSTD_createCCtx();
        ZSTD_DCtx *dc = ZSTD_createDCtx();
        if (!ids || !sealed || !entries || !scratch || !scratch2 || !cc || !dc)
                return 1;

        t = now_s();
        for (size_t i = 0; i < in.n_chunks; i++)
                lb_chunk_id(&keys, data + in.off[i], in.len[i], &ids[i]);
        double t_id = now_s() - t;
        report("chunk id (keyed BLAKE2b-256)", n, t_id);

        size_t zbytes = 0;
        t = now_s();
        for (size_t i = 0; i < in.n_chunks; i++) {
                size_t z = ZSTD_compressCCtx(cc, scratch, ZSTD_compressBound(p.max), data + in.off[i], in.len[i], level);
                if (ZSTD_isError(z))
                        return 1;
                zbytes += z;
        }
        report("zstd compress", n, now_s() - t);

        t = now_s();
        for (size_t i = 0; i < in.n_chunks; i++)
                lb_seal(keys.data_key, ids[i].b, LB_ID_SIZE, data + in.off[i], in.len[i], scratch);
        report("seal (XChaCha20-Poly1305)", n, now_s() - t);

        t = now_s();
        for (size_t i = 0; i < in.n_chunks; i++)
                if (lb_blob_encode(&keys, LB_BLOB_DATA, &ids[i], data + in.off[i], in.len[i], level, &sealed[i],
                                   &entries[i]) < 0)
                        return 1;
        double t_enc = now_s() - t;
        report("blob encode (zstd + pad + seal)", n, t_enc);

        size_t stored = 0;
        for (size_t i = 0; i < in.n_chunks; i++)
                stored += sealed[i].len;

        /* Open alone: seal the raw chunks, then time opening them. */
        t = 0;
        for (size_t i = 0; i < in.n_chunks; i++) {
                lb_seal(keys.data_key, ids[i].b, LB_ID_SIZE, data + in.off[i], in.len[i], scratch);
                double t0 = now_s();
                if (lb_unseal(keys.data_key, ids[i].b, LB_ID_SIZE, scratch, in.len[i] + LB_SEAL_OVERHEAD, scratch2) < 0)
                        return 1;
                t += now_s() - t0;
        }
        report("open (XChaCha20-Poly1305)", n, t);

        /* Decompress alone. */
        t = 0;
        for (size_t i = 0; i < in.n_chunks; i++) {
                size_t z = ZSTD_compressCCtx(cc, scratch, ZSTD_compressBound(p.max), data + in.off[i], in.len[i], level);
                double t0 = now_s();
                size_t r = ZSTD_decompressDCtx(dc, scratch2, p.max, scratch, z);
                t += now_s() - t0;
                if (ZSTD_isError(r) || r != in.len[i])
                        return 1;
        }
        report("zstd decompress", n, t);

        LbBuf out = {};
        t = now_s();
        for (size_t i = 0; i < in.n_chunks; i++)
                if (lb_blob_decode(&keys, &entries[i], sealed[i].data, sealed[i].len, &out) < 0) {
                        fprintf(stderr, "stages: decode failed\n");
                        return 1;
                }
        double t_dec = now_s() - t;
        report("blob decode (open + unzstd + id)", n, t_dec);

        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        double read_ceiling = (double) n / 1e6 / t_dec;
        double known_ceiling = (double) n / 1e6 / (t_cut + t_id);
        double new_ceiling = (double) n / 1e6 / (t_cut + t_id + t_enc);
        printf("\n%-34s %9.1f MB/s  x %ld cores = %.0f MB/s\n", "ceiling, read path (decode)", read_ceiling, cpus,
               read_ceiling * (double) cpus);
        printf("%-34s %9.1f MB/s  x %ld cores = %.0f MB/s\n", "ceiling, backup of known data", known_ceiling, cpus,
               known_ceiling * (double) cpus);
        printf("%-34s %9.1f MB/s  x %ld cores = %.0f MB/s\n", "ceiling, backup of new data", new_ceiling, cpus,
               new_ceiling * (double) cpus);
        printf("%-34s %9zu chunks, stored %.1f%% of raw\n", "", in.n_chunks, 100.0 * (double) stored / (double) n);

        for (size_t i = 0; i < in.n_chunks; i++)
                lb_buf_free(&sealed[i]);
        lb_buf_free(&out);
        lb_keys_wipe(&keys);
        ZSTD_freeCCtx(cc);
        ZSTD_freeDCtx(dc);
        free(sealed);
        free(entries);
        free(ids);
        free(scratch);
        free(scratch2);
        free(in.off);
        free(in.len);
        free(data);
        return 0;
}
