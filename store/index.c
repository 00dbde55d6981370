/* SPDX-License-Identifier: MIT */
#include "store/index.h"

#include <lmdb.h>

#define LB_INDEX_MAP_SIZE (64ull << 30) /* virtual; the file stays sparse */
#define BLOB_VALUE_SIZE (4 + 4 + 4 + 4 + 1 + 1)
/* ... || base id[32] for a delta */
#define BLOB_VALUE_MAX (BLOB_VALUE_SIZE + LB_ID_SIZE)
#define PACK_VALUE_SIZE (4 + 8 + 4)
/* A remap entry: offset u32 || new pack_no u32 || new offset u32. */
#define MOVE_SIZE 12
/* The largest remap value: one entry per blob of a pack. */
#define REMAP_MAX ((size_t) LB_PACK_MAX_ENTRIES * MOVE_SIZE)

static const char KEY_VERSION[] = "version";
static const char KEY_NEXT_PACK[] = "next_pack";

struct LbIndex {
        MDB_env *env;
        MDB_dbi meta, blobs, packs, packnos, remap, remapsrc, files;
};

/* LMDB returns positive errnos and negative MDB_* codes; map both to -errno.
 * The helpers below return LMDB codes, or a positive errno of their own. */
static int mdb_err(int rc) {
        switch (rc) {
        case MDB_SUCCESS:
                return 0;
        case MDB_NOTFOUND:
                return -ENOENT;
        case MDB_MAP_FULL:
                return -ENOSPC;
        case MDB_CORRUPTED:
        case MDB_PAGE_NOTFOUND:
        case MDB_INVALID:
        case MDB_VERSION_MISMATCH:
                return -EBADMSG;
        case MDB_READERS_FULL:
        case MDB_TXN_FULL:
        case MDB_CURSOR_FULL:
        case MDB_PAGE_FULL:
        case MDB_MAP_RESIZED:
                return -EAGAIN;
        default:
                return rc > 0 ? -rc : -EIO;
        }
}

/* Ends a write transaction: commits it when rc is 0, else aborts it. */
static int txn_finish(MDB_txn *txn, int rc) {
        if (rc != 0) {
                mdb_txn_abort(txn);
                return mdb_err(rc);
        }
        return mdb_err(mdb_txn_commit(txn));
}

static void put_be32(uint8_t *p, uint32_t v) {
        p[0] = (uint8_t) (v >> 24);
        p[1] = (uint8_t) (v >> 16);
        p[2] = (uint8_t) (v >> 8);
        p[3] = (uint8_t) v;
}

static uint32_t get_be32(const uint8_t *p) {
        return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}

/* ---- meta ---- */

static int meta_get_u32(MDB_txn *txn, LbIndex *x, const char *key, uint32_t *ret) {
        MDB_val k = { strlen(key), (void *) key }, v;
        int rc = mdb_get(txn, x->meta, &k, &v);
        if (rc == 0 && v.mv_size != 4)
                rc = MDB_CORRUPTED;
        if (rc == 0)
                *ret = lb_get_le32(v.mv_data);
        return rc;
}

static int meta_put_u32(MDB_txn *txn, LbIndex *x, const char *key, uint32_t value) {
        uint8_t b[4];
        lb_put_le32(b, value);
        MDB_val k = { strlen(key), (void *) key }, v = { sizeof b, b };
        return mdb_put(txn, x->meta, &k, &v, 0);
}

static int drop_all(MDB_txn *txn, LbIndex *x) {
        MDB_dbi all[] = { x->blobs, x->packs, x->packnos, x->remap, x->remapsrc, x->files };
        int rc = 0;
        for (size_t i = 0; rc == 0 && i < LB_ARRAY_SIZE(all); i++)
                rc = mdb_drop(txn, all[i], 0);
        if (rc == 0) {
                MDB_val k = { strlen(KEY_NEXT_PACK), (void *) KEY_NEXT_PACK };
                rc = mdb_del(txn, x->meta, &k, NULL);
                if (rc == MDB_NOTFOUND)
                        rc = 0;
        }
        return rc;
}

/* An environment of another version (or of version 1, which had no
 * version record) is emptied: the next update merges every index file. */
static int check_version(MDB_txn *txn, LbIndex *x) {
        uint32_t v;
        int rc = meta_get_u32(txn, x, KEY_VERSION, &v);
        if (rc == 0 && v == LB_INDEX_VERSION)
                return 0;
        if (rc != 0 && rc != MDB_NOTFOUND && rc != MDB_CORRUPTED)
                return rc;
        rc = drop_all(txn, x);
        if (rc == 0)
                rc = meta_put_u32(txn, x, KEY_VERSION, LB_INDEX_VERSION);
        return rc;
}

int lb_index_open(const char *dir, LbIndex **ret) {
        int r = lb_mkdir_p(dir, 0700);
        if (r < 0)
                return r;
        LbIndex *x = calloc(1, sizeof *x);
        if (!x)
                return -ENOMEM;
        MDB_txn *txn = NULL;
        int rc = mdb_env_create(&x->env);
        if (rc == 0)
                rc = mdb_env_set_maxdbs(x->env, 16);
        if (rc == 0)
                rc = mdb_env_set_mapsize(x->env, LB_INDEX_MAP_SIZE);
        if (rc == 0)
                rc = mdb_env_set_maxreaders(x->env, 256);
        /* NOTLS: read transactions are used from worker threads. NOSYNC: the
         * index is derived; after a system crash lost transactions are
         * redone from the index files on the next open. */
        if (rc == 0)
                rc = mdb_env_open(x->env, dir, MDB_NOTLS | MDB_NOSYNC | MDB_NOMETASYNC | MDB_NORDAHEAD, 0600);
        if (rc == 0)
                rc = mdb_txn_begin(x->env, NULL, 0, &txn);
        struct {
                const char *name;
                MDB_dbi *dbi;
        } dbs[] = {
                { "meta", &x->meta },     { "blobs", &x->blobs },       { "packs", &x->packs },
                { "packnos", &x->packnos }, { "remap", &x->remap },     { "remapsrc", &x->remapsrc },
                { "files", &x->files },
        };
        for (size_t i = 0; rc == 0 && i < LB_ARRAY_SIZE(dbs); i++)
                rc = mdb_dbi_open(txn, dbs[i].name, MDB_CREATE, dbs[i].dbi);
        if (rc == 0)
                rc = check_version(txn, x);
        if (rc == 0) {
                rc = mdb_txn_commit(txn);
                txn = NULL;
        }
        if (txn)
                mdb_txn_abort(txn);
        if (rc != 0) {
                lb_index_free(x);
                return mdb_err(rc);
        }
        *ret = x;
        return 0;
}

LbIndex *lb_index_free(LbIndex *x) {
        if (!x)
                return NULL;
        if (x->env)
                mdb_env_close(x->env);
        free(x);
        return NULL;
}

/* ---- packs ---- */

/* The id of the present pack number no, or MDB_NOTFOUND. */
static int pack_id_of(MDB_txn *txn, LbIndex *x, uint32_t no, LbId *ret) {
        uint8_t key[4];
        put_be32(key, no);
        MDB_val k = { sizeof key, key }, v;
        int rc = mdb_get(txn, x->packnos, &k, &v);
        if (rc == 0 && v.mv_size != LB_ID_SIZE)
                rc = MDB_CORRUPTED;
        if (rc == 0 && ret)
                memcpy(ret->b, v.mv_data, LB_ID_SIZE);
        return rc;
}

/* The number of a present pack, or MDB_NOTFOUND. */
static int pack_no_of(MDB_txn *txn, LbIndex *x, const LbId *id, uint32_t *ret) {
        MDB_val k = { LB_ID_SIZE, (void *) id->b }, v;
        int rc = mdb_get(txn, x->packs, &k, &v);
        if (rc == 0 && v.mv_size != PACK_VALUE_SIZE)
                rc = MDB_CORRUPTED;
        if (rc == 0)
                *ret = lb_get_le32(v.mv_data);
        return rc;
}

/* The pack's number, registering it under a new one if it is not present. */
static int pack_register(MDB_txn *txn, LbIndex *x, const LbIndexPack *pk, uint32_t *ret_no) {
        int rc = pack_no_of(txn, x, &pk->pack_id, ret_no);
        if (rc != MDB_NOTFOUND)
                return rc;
        uint32_t no = 0;
        rc = meta_get_u32(txn, x, KEY_NEXT_PACK, &no);
        if (rc != 0 && rc != MDB_NOTFOUND)
                return rc;
        if (no == UINT32_MAX)
                return EOVERFLOW; /* 4 billion packs merged: index rebuild starts over */
        rc = meta_put_u32(txn, x, KEY_NEXT_PACK, no + 1);
        if (rc != 0)
                return rc;
        uint8_t pv[PACK_VALUE_SIZE], key[4];
        lb_put_le32(pv, no);
        lb_put_le64(pv + 4, pk->pack_size);
        lb_put_le32(pv + 12, (uint32_t) pk->n);
        MDB_val k = { LB_ID_SIZE, (void *) pk->pack_id.b }, v = { sizeof pv, pv };
        rc = mdb_put(txn, x->packs, &k, &v, 0);
        put_be32(key, no);
        MDB_val nk = { sizeof key, key }, nv = { LB_ID_SIZE, (void *) pk->pack_id.b };
        if (rc == 0)
                rc = mdb_put(txn, x->packnos, &nk, &nv, 0);
        if (rc == 0)
                *ret_no = no;
        return rc;
}

/* ---- blobs ---- */

/* Encodes the blob entry of e in pack pack_no; *ret_size gets its length. */
static int blob_value(uint32_t pack_no, const LbPackEntry *e, uint8_t bv[BLOB_VALUE_MAX], size_t *ret_size) {
        /* Packs are smaller than 4 GiB (LB_PACK_MAX_SIZE): offsets fit u32. */
        if (e->offset > UINT32_MAX)
                return EBADMSG;
        lb_put_le32(bv, pack_no);
        lb_put_le32(bv + 4, (uint32_t) e->offset);
        lb_put_le32(bv + 8, e->payload_len);
        lb_put_le32(bv + 12, e->raw_len);
        bv[16] = e->type;
        bv[17] = e->codec;
        *ret_size = BLOB_VALUE_SIZE;
        if (e->codec == LB_CODEC_DELTA) {
                memcpy(bv + BLOB_VALUE_SIZE, e->base.b, LB_ID_SIZE);
                *ret_size = BLOB_VALUE_MAX;
        }
        return 0;
}

/* Whether v has the length its codec calls for. */
static bool blob_value_ok(const MDB_val *v) {
        if (v->mv_size < BLOB_VALUE_SIZE)
                return false;
        const uint8_t *p = v->mv_data;
        return v->mv_size == (p[17] == LB_CODEC_DELTA ? BLOB_VALUE_MAX : BLOB_VALUE_SIZE);
}

/* The move of a remap value for offset, or NULL. */
static const uint8_t *find_move(const uint8_t *moves, size_t n, uint32_t offset) {
        size_t lo = 0, hi = n;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                uint32_t o = lb_get_le32(moves + mid * MOVE_SIZE);
                if (o == offset)
                        return moves + mid * MOVE_SIZE;
                if (o < offset)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return NULL;
}

static int remap_get(MDB_txn *txn, LbIndex *x, uint32_t no, MDB_val *ret) {
        uint8_t key[4];
        put_be32(key, no);
        MDB_val k = { sizeof key, key };
        int rc = mdb_get(txn, x->remap, &k, ret);
        if (rc == 0 && (ret->mv_size % MOVE_SIZE != 0 || ret->mv_size > REMAP_MAX))
                rc = MDB_CORRUPTED;
        return rc;
}

/* Where the blob entry bv is: its pack if present, else the copy its
 * pack's remap names, if that one is present. MDB_NOTFOUND otherwise. */
static int resolve(MDB_txn *txn, LbIndex *x, const uint8_t *bv, LbId *ret_pack, uint32_t *ret_offset) {
        uint32_t no = lb_get_le32(bv), offset = lb_get_le32(bv + 4);
        int rc = pack_id_of(txn, x, no, ret_pack);
        if (rc != MDB_NOTFOUND) {
                if (rc == 0 && ret_offset)
                        *ret_offset = offset;
                return rc;
        }
        MDB_val v;
        rc = remap_get(txn, x, no, &v);
        if (rc != 0)
                return rc;
        const uint8_t *m = find_move(v.mv_data, v.mv_size / MOVE_SIZE, offset);
        if (!m)
                return MDB_NOTFOUND;
        rc = pack_id_of(txn, x, lb_get_le32(m + 4), ret_pack);
        if (rc == 0 && ret_offset)
                *ret_offset = lb_get_le32(m + 8);
        return rc;
}

int lb_index_lookup(LbIndex *x, const LbId *id, LbBlobLoc *ret) {
        MDB_txn *txn;
        int rc = mdb_txn_begin(x->env, NULL, MDB_RDONLY, &txn);
        if (rc != 0)
                return mdb_err(rc);
        MDB_val k = { LB_ID_SIZE, (void *) id->b }, v;
        rc = mdb_get(txn, x->blobs, &k, &v);
        if (rc == 0 && !blob_value_ok(&v))
                rc = MDB_CORRUPTED;
        LbId pack;
        uint32_t offset;
        if (rc == 0)
                rc = resolve(txn, x, v.mv_data, &pack, &offset);
        if (rc == 0 && ret) {
                /* v is valid only until the transaction ends: copy now. */
                const uint8_t *p = v.mv_data;
                LbBlobLoc l = { .pack = pack, .e = { .id = *id } };
                l.e.offset = offset;
                l.e.payload_len = lb_get_le32(p + 8);
                l.e.raw_len = lb_get_le32(p + 12);
                l.e.type = p[16];
                l.e.codec = p[17];
                if (l.e.codec == LB_CODEC_DELTA)
                        memcpy(l.e.base.b, p + BLOB_VALUE_SIZE, LB_ID_SIZE);
                /* Stored blobs are padded exactly (docs/design.md "Blobs"). */
                uint32_t padded = lb_pad_length(l.e.payload_len);
                if (padded < l.e.payload_len || padded > UINT32_MAX - LB_SEAL_OVERHEAD)
                        rc = MDB_CORRUPTED;
                l.e.stored_len = padded + LB_SEAL_OVERHEAD;
                if (rc == 0)
                        *ret = l;
        }
        mdb_txn_abort(txn);
        return mdb_err(rc);
}

/* Whether the blob entry bv (of blob_value_ok length) resolves, and, for a
 * delta, its base does too: a delta no snapshot uses may outlive its base
 * (docs/design.md "Deltas"), and must then give way to a new copy. */
static int resolve_usable(MDB_txn *txn, LbIndex *x, const MDB_val *bv) {
        int rc = resolve(txn, x, bv->mv_data, NULL, NULL);
        const uint8_t *p = bv->mv_data;
        if (rc != 0 || p[17] != LB_CODEC_DELTA)
                return rc;
        MDB_val k = { LB_ID_SIZE, (void *) (p + BLOB_VALUE_SIZE) }, v;
        rc = mdb_get(txn, x->blobs, &k, &v);
        if (rc == 0 && !blob_value_ok(&v))
                rc = MDB_NOTFOUND;
        return rc == 0 ? resolve(txn, x, v.mv_data, NULL, NULL) : rc;
}

/* Blob puts per write transaction: LMDB keeps a transaction's dirty pages
 * in memory, so a large merge commits in steps. The index file is marked
 * merged in the last one: a crash before it merges the file again. */
#define ADD_BATCH 8192

/* Records an index file as merged. */
static int mark_file_merged(MDB_txn *txn, LbIndex *x, const LbId *file_id) {
        MDB_val k = { LB_ID_SIZE, (void *) file_id->b }, v = { 0, NULL };
        return mdb_put(txn, x->files, &k, &v, 0);
}

int lb_index_add(LbIndex *x, const LbId *file_id, const LbIndexPack *packs, size_t n) {
        MDB_txn *txn;
        int rc = mdb_txn_begin(x->env, NULL, 0, &txn);
        if (rc != 0)
                return mdb_err(rc);
        size_t puts = 0;
        for (size_t i = 0; rc == 0 && i < n; i++) {
                const LbIndexPack *pk = &packs[i];
                uint32_t no;
                rc = pack_register(txn, x, pk, &no);
                for (size_t j = 0; rc == 0 && j < pk->n; j++) {
                        uint8_t bv[BLOB_VALUE_MAX];
                        size_t bv_size;
                        rc = blob_value(no, &pk->entries[j], bv, &bv_size);
                        if (rc != 0)
                                break;
                        if (++puts % ADD_BATCH == 0) {
                                rc = mdb_txn_commit(txn);
                                txn = NULL;
                                if (rc == 0)
                                        rc = mdb_txn_begin(x->env, NULL, 0, &txn);
                                if (rc != 0)
                                        break;
                        }
                        MDB_val bk = { LB_ID_SIZE, (void *) pk->entries[j].id.b }, bval = { bv_size, bv };
                        /* A blob stored twice (concurrent writers) keeps its
                         * first location while that one resolves. On
                         * MDB_KEYEXIST bval holds the existing value. */
                        rc = mdb_put(txn, x->blobs, &bk, &bval, MDB_NOOVERWRITE);
                        if (rc == MDB_KEYEXIST) {
                                rc = blob_value_ok(&bval) ? resolve_usable(txn, x, &bval) : MDB_NOTFOUND;
                                if (rc == MDB_NOTFOUND) {
                                        MDB_val fresh = { bv_size, bv };
                                        rc = mdb_put(txn, x->blobs, &bk, &fresh, 0);
                                }
                        }
                }
        }
        if (rc == 0 && file_id)
                rc = mark_file_merged(txn, x, file_id);
        if (rc != 0 && !txn)
                return mdb_err(rc);
        return txn_finish(txn, rc);
}

/* ---- remaps ---- */

typedef struct Move {
        uint32_t from_no, from_offset, to_no, to_offset;
} Move;

static int cmp_move(const void *a, const void *b) {
        const Move *x = a, *y = b;
        if (x->from_no != y->from_no)
                return x->from_no < y->from_no ? -1 : 1;
        return x->from_offset < y->from_offset ? -1 : x->from_offset > y->from_offset;
}

static int remap_put(MDB_txn *txn, LbIndex *x, uint32_t no, const uint8_t *moves, size_t n) {
        uint8_t key[4];
        put_be32(key, no);
        MDB_val k = { sizeof key, key }, v = { n * MOVE_SIZE, (void *) moves };
        if (n == 0) {
                int rc = mdb_del(txn, x->remap, &k, NULL);
                return rc == MDB_NOTFOUND ? 0 : rc;
        }
        return mdb_put(txn, x->remap, &k, &v, 0);
}

static int remapsrc_put(MDB_txn *txn, LbIndex *x, uint32_t target, uint32_t source) {
        uint8_t key[8];
        put_be32(key, target);
        put_be32(key + 4, source);
        MDB_val k = { sizeof key, key }, v = { 0, NULL };
        return mdb_put(txn, x->remapsrc, &k, &v, 0);
}

/* The packs whose remap points into target (*ret, caller frees); with
 * remove, their records are deleted. */
static int remapsrc_list(MDB_txn *txn, LbIndex *x, uint32_t target, bool remove, uint32_t **ret, size_t *ret_n) {
        MDB_cursor *c;
        int rc = mdb_cursor_open(txn, x->remapsrc, &c);
        if (rc != 0)
                return rc;
        uint8_t key[8];
        put_be32(key, target);
        put_be32(key + 4, 0);
        MDB_val k = { sizeof key, key }, v;
        uint32_t *list = NULL;
        size_t n = 0;
        for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
                if (k.mv_size != 8) {
                        rc = MDB_CORRUPTED;
                        break;
                }
                if (get_be32(k.mv_data) != target)
                        break;
                uint32_t *l = realloc(list, (n + 1) * sizeof *l);
                if (!l) {
                        rc = ENOMEM;
                        break;
                }
                list = l;
                list[n++] = get_be32((const uint8_t *) k.mv_data + 4);
                if (remove) {
                        rc = mdb_cursor_del(c, 0);
                        if (rc != 0)
                                break;
                }
        }
        mdb_cursor_close(c);
        if (rc != 0 && rc != MDB_NOTFOUND) {
                free(list);
                return rc;
        }
        *ret = list;
        *ret_n = n;
        return 0;
}

/* Merges the sorted moves of one source pack into its remap (a move for
 * an offset already remapped replaces it). */
static int remap_merge(MDB_txn *txn, LbIndex *x, const Move *m, size_t n) {
        MDB_val old = { 0, NULL };
        int rc = remap_get(txn, x, m[0].from_no, &old);
        if (rc != 0 && rc != MDB_NOTFOUND)
                return rc;
        size_t n_old = rc == 0 ? old.mv_size / MOVE_SIZE : 0;
        if (n_old + n > LB_PACK_MAX_ENTRIES)
                return E2BIG;
        _cleanup_free_ uint8_t *out = malloc((n_old + n) * MOVE_SIZE + 1);
        if (!out)
                return ENOMEM;
        /* old is valid until the next write: the merge reads it first. */
        const uint8_t *o = old.mv_data;
        size_t i = 0, j = 0, k = 0;
        while (i < n_old || j < n) {
                uint32_t oo = i < n_old ? lb_get_le32(o + i * MOVE_SIZE) : UINT32_MAX;
                if (j < n && (i == n_old || m[j].from_offset <= oo)) {
                        if (i < n_old && m[j].from_offset == oo)
                                i++; /* replaced */
                        uint8_t *p = out + k++ * MOVE_SIZE;
                        lb_put_le32(p, m[j].from_offset);
                        lb_put_le32(p + 4, m[j].to_no);
                        lb_put_le32(p + 8, m[j].to_offset);
                        j++;
                } else {
                        memcpy(out + k++ * MOVE_SIZE, o + i * MOVE_SIZE, MOVE_SIZE);
                        i++;
                }
        }
        return remap_put(txn, x, m[0].from_no, out, k);
}

/* Rewrites the remap of pack q: entries into pack `target` that the moves
 * m (sorted, all from target) cover point at the copies; with drop, the
 * others into target are removed (target is going away). */
static int remap_redirect(MDB_txn *txn, LbIndex *x, uint32_t q, uint32_t target, const Move *m, size_t n, bool drop) {
        MDB_val v;
        int rc = remap_get(txn, x, q, &v);
        if (rc == MDB_NOTFOUND)
                return 0; /* emptied meanwhile */
        if (rc != 0)
                return rc;
        size_t count = v.mv_size / MOVE_SIZE, kept = 0;
        _cleanup_free_ uint8_t *out = malloc(v.mv_size + 1);
        if (!out)
                return ENOMEM;
        memcpy(out, v.mv_data, v.mv_size);
        bool changed = false;
        for (size_t i = 0; i < count; i++) {
                uint8_t *p = out + i * MOVE_SIZE;
                if (lb_get_le32(p + 4) == target) {
                        const Move key = { .from_no = target, .from_offset = lb_get_le32(p + 8) };
                        const Move *hit = n ? lb_bsearch(&key, m, n, sizeof *m, cmp_move) : NULL;
                        if (hit) {
                                lb_put_le32(p + 4, hit->to_no);
                                lb_put_le32(p + 8, hit->to_offset);
                                rc = remapsrc_put(txn, x, hit->to_no, q);
                                if (rc != 0)
                                        return rc;
                                changed = true;
                        } else if (drop) {
                                changed = true;
                                continue;
                        }
                }
                if (kept != i)
                        memmove(out + kept * MOVE_SIZE, p, MOVE_SIZE);
                kept++;
        }
        return changed ? remap_put(txn, x, q, out, kept) : 0;
}

int lb_index_add_copies(LbIndex *x, const LbId *file_id, const LbIndexPack *packs, size_t n,
                        LbIndexMove *const *from) {
        size_t total = 0;
        for (size_t i = 0; i < n; i++)
                total += packs[i].n;
        _cleanup_free_ Move *moves = malloc((total + 1) * sizeof *moves);
        if (!moves)
                return -ENOMEM;
        MDB_txn *txn;
        int rc = mdb_txn_begin(x->env, NULL, 0, &txn);
        if (rc != 0)
                return mdb_err(rc);
        size_t nm = 0;
        for (size_t i = 0; rc == 0 && i < n; i++) {
                uint32_t no;
                rc = pack_register(txn, x, &packs[i], &no);
                for (size_t j = 0; rc == 0 && j < packs[i].n; j++) {
                        uint32_t from_no;
                        if (from[i][j].offset > UINT32_MAX || packs[i].entries[j].offset > UINT32_MAX) {
                                rc = EBADMSG;
                                break;
                        }
                        rc = pack_no_of(txn, x, &from[i][j].pack, &from_no);
                        if (rc == MDB_NOTFOUND) {
                                rc = 0; /* a source the index does not hold: nothing points there */
                                continue;
                        }
                        if (rc == 0)
                                moves[nm++] = (Move) { from_no, (uint32_t) from[i][j].offset, no,
                                                       (uint32_t) packs[i].entries[j].offset };
                }
        }
        lb_qsort(moves, nm, sizeof *moves, cmp_move);
        for (size_t s = 0; rc == 0 && s < nm;) {
                size_t e = s;
                while (e < nm && moves[e].from_no == moves[s].from_no)
                        e++;
                rc = remap_merge(txn, x, moves + s, e - s);
                /* The copies of one pack land in a few new packs. */
                uint32_t seen[8];
                size_t n_seen = 0;
                for (size_t i = s; rc == 0 && i < e; i++) {
                        bool known = false;
                        for (size_t j = 0; j < n_seen && !known; j++)
                                known = seen[j] == moves[i].to_no;
                        if (known)
                                continue;
                        if (n_seen < LB_ARRAY_SIZE(seen))
                                seen[n_seen++] = moves[i].to_no;
                        rc = remapsrc_put(txn, x, moves[i].to_no, moves[s].from_no);
                }
                /* Remaps into the source now point at the copies: a blob
                 * entry never needs more than one step. */
                _cleanup_free_ uint32_t *srcs = NULL;
                size_t n_srcs = 0;
                if (rc == 0)
                        rc = remapsrc_list(txn, x, moves[s].from_no, false, &srcs, &n_srcs);
                for (size_t i = 0; rc == 0 && i < n_srcs; i++)
                        rc = remap_redirect(txn, x, srcs[i], moves[s].from_no, moves + s, e - s, false);
                s = e;
        }
        if (rc == 0 && file_id)
                rc = mark_file_merged(txn, x, file_id);
        return txn_finish(txn, rc);
}

int lb_index_add_file(LbIndex *x, const LbId *file_id) {
        MDB_txn *txn;
        int rc = mdb_txn_begin(x->env, NULL, 0, &txn);
        if (rc != 0)
                return mdb_err(rc);
        return txn_finish(txn, mark_file_merged(txn, x, file_id));
}

int lb_index_forget(LbIndex *x, const LbId *packs, size_t np, const LbId *files, size_t nf) {
        MDB_txn *txn;
        int rc = mdb_txn_begin(x->env, NULL, 0, &txn);
        if (rc != 0)
                return mdb_err(rc);
        for (size_t i = 0; rc == 0 && i < np; i++) {
                uint32_t no;
                rc = pack_no_of(txn, x, &packs[i], &no);
                if (rc == MDB_NOTFOUND) {
                        rc = 0;
                        continue;
                }
                MDB_val k = { LB_ID_SIZE, (void *) packs[i].b };
                if (rc == 0)
                        rc = mdb_del(txn, x->packs, &k, NULL);
                uint8_t key[4];
                put_be32(key, no);
                MDB_val nk = { sizeof key, key };
                if (rc == 0)
                        rc = mdb_del(txn, x->packnos, &nk, NULL);
                /* Remap entries into it lead nowhere now (prune copied or
                 * relocated every live blob they stood for): drop them. Its
                 * own remap stays, for the blob entries that point at it. */
                _cleanup_free_ uint32_t *srcs = NULL;
                size_t n_srcs = 0;
                if (rc == 0)
                        rc = remapsrc_list(txn, x, no, true, &srcs, &n_srcs);
                for (size_t j = 0; rc == 0 && j < n_srcs; j++)
                        rc = remap_redirect(txn, x, srcs[j], no, NULL, 0, true);
        }
        for (size_t i = 0; rc == 0 && i < nf; i++) {
                MDB_val k = { LB_ID_SIZE, (void *) files[i].b };
                rc = mdb_del(txn, x->files, &k, NULL);
                if (rc == MDB_NOTFOUND)
                        rc = 0;
        }
        return txn_finish(txn, rc);
}

int lb_index_relocate(LbIndex *x, const LbIndexPack *p) {
        MDB_txn *txn;
        int rc = mdb_txn_begin(x->env, NULL, 0, &txn);
        if (rc != 0)
                return mdb_err(rc);
        uint32_t no;
        rc = pack_no_of(txn, x, &p->pack_id, &no);
        for (size_t j = 0; rc == 0 && j < p->n; j++) {
                uint8_t bv[BLOB_VALUE_MAX];
                size_t bv_size;
                rc = blob_value(no, &p->entries[j], bv, &bv_size);
                MDB_val k = { LB_ID_SIZE, (void *) p->entries[j].id.b }, v = { bv_size, bv };
                if (rc == 0)
                        rc = mdb_put(txn, x->blobs, &k, &v, 0);
        }
        return txn_finish(txn, rc);
}

int lb_index_has_pack(LbIndex *x, const LbId *pack_id) {
        MDB_txn *txn;
        int rc = mdb_txn_begin(x->env, NULL, MDB_RDONLY, &txn);
        if (rc != 0)
                return mdb_err(rc);
        uint32_t no;
        rc = pack_no_of(txn, x, pack_id, &no);
        mdb_txn_abort(txn);
        if (rc == MDB_NOTFOUND)
                return 0;
        return rc == 0 ? 1 : mdb_err(rc);
}

int lb_index_clear(LbIndex *x) {
        MDB_txn *txn;
        int rc = mdb_txn_begin(x->env, NULL, 0, &txn);
        if (rc != 0)
                return mdb_err(rc);
        rc = drop_all(txn, x);
        return txn_finish(txn, rc);
}

int lb_index_has_file(LbIndex *x, const LbId *file_id) {
        MDB_txn *txn;
        int rc = mdb_txn_begin(x->env, NULL, MDB_RDONLY, &txn);
        if (rc != 0)
                return mdb_err(rc);
        MDB_val k = { LB_ID_SIZE, (void *) file_id->b }, v;
        rc = mdb_get(txn, x->files, &k, &v);
        mdb_txn_abort(txn);
        if (rc == MDB_NOTFOUND)
                return 0;
        return rc == 0 ? 1 : mdb_err(rc);
}

/* Iterates a database with a cursor; fn gets the key and value, borrowed
 * until the transaction ends. Keys of the wrong size mean corruption. */
static int foreach(LbIndex *x, MDB_dbi dbi, int (*fn)(const MDB_val *k, const MDB_val *v, void *ud), void *ud) {
        MDB_txn *txn;
        MDB_cursor *c;
        int rc = mdb_txn_begin(x->env, NULL, MDB_RDONLY, &txn);
        if (rc != 0)
                return mdb_err(rc);
        rc = mdb_cursor_open(txn, dbi, &c);
        if (rc != 0) {
                mdb_txn_abort(txn);
                return mdb_err(rc);
        }
        MDB_val k, v;
        int r = 0;
        for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
                if (k.mv_size != LB_ID_SIZE) {
                        r = -EBADMSG;
                        break;
                }
                r = fn(&k, &v, ud);
                if (r < 0)
                        break;
        }
        if (r == 0 && rc != MDB_NOTFOUND)
                r = mdb_err(rc);
        mdb_cursor_close(c);
        mdb_txn_abort(txn);
        return r;
}

struct id_cb {
        LbIdFn fn;
        LbPackFn pfn;
        void *ud;
        uint64_t blobs, stored;
};

static int file_cb(const MDB_val *k, const MDB_val *v, void *ud) {
        struct id_cb *c = ud;
        LbId id;
        memcpy(id.b, k->mv_data, LB_ID_SIZE);
        return c->fn(&id, c->ud);
}

int lb_index_foreach_file(LbIndex *x, LbIdFn fn, void *userdata) {
        struct id_cb c = { .fn = fn, .ud = userdata };
        return foreach(x, x->files, file_cb, &c);
}

static int pack_cb(const MDB_val *k, const MDB_val *v, void *ud) {
        struct id_cb *c = ud;
        if (v->mv_size != PACK_VALUE_SIZE)
                return -EBADMSG;
        LbId id;
        memcpy(id.b, k->mv_data, LB_ID_SIZE);
        return c->pfn(&id, lb_get_le64((const uint8_t *) v->mv_data + 4), c->ud);
}

int lb_index_foreach_pack(LbIndex *x, LbPackFn fn, void *userdata) {
        struct id_cb c = { .pfn = fn, .ud = userdata };
        return foreach(x, x->packs, pack_cb, &c);
}

static int totals_cb(const MDB_val *k, const MDB_val *v, void *ud) {
        struct id_cb *c = ud;
        if (v->mv_size != PACK_VALUE_SIZE)
                return -EBADMSG;
        c->stored += lb_get_le64((const uint8_t *) v->mv_data + 4);
        c->blobs += lb_get_le32((const uint8_t *) v->mv_data + 12);
        return 0;
}

int lb_index_totals(LbIndex *x, uint64_t *ret_blobs, uint64_t *ret_stored) {
        struct id_cb c = {};
        int r = foreach(x, x->packs, totals_cb, &c);
        if (r < 0)
                return r;
        *ret_blobs = c.blobs;
        *ret_stored = c.stored;
        return 0;
}
