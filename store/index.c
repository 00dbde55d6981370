/* SPDX-License-Identifier: MIT */
#include "store/index.h"

#include <lmdb.h>

#define LB_INDEX_MAP_SIZE (64ull << 30) /* virtual; the file stays sparse */
#define BLOB_VALUE_SIZE (32 + 8 + 4 + 4 + 4 + 1 + 1)

struct LbIndex {
        MDB_env *env;
        MDB_dbi blobs, packs, files;
};

/* LMDB returns positive errnos and negative MDB_* codes; map both to -errno. */
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
                rc = mdb_env_set_maxdbs(x->env, 8);
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
        if (rc == 0)
                rc = mdb_dbi_open(txn, "blobs", MDB_CREATE, &x->blobs);
        if (rc == 0)
                rc = mdb_dbi_open(txn, "packs", MDB_CREATE, &x->packs);
        if (rc == 0)
                rc = mdb_dbi_open(txn, "files", MDB_CREATE, &x->files);
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

static bool pack_present(MDB_txn *txn, LbIndex *x, const void *pack_id) {
        MDB_val k = { LB_ID_SIZE, (void *) pack_id }, v;
        return mdb_get(txn, x->packs, &k, &v) == 0;
}

static void blob_value(const LbId *pack, const LbPackEntry *e, uint8_t bv[BLOB_VALUE_SIZE]) {
        memcpy(bv, pack->b, LB_ID_SIZE);
        lb_put_le64(bv + 32, e->offset);
        lb_put_le32(bv + 40, e->stored_len);
        lb_put_le32(bv + 44, e->payload_len);
        lb_put_le32(bv + 48, e->raw_len);
        bv[52] = e->type;
        bv[53] = e->codec;
}

int lb_index_lookup(LbIndex *x, const LbId *id, LbBlobLoc *ret) {
        MDB_txn *txn;
        int rc = mdb_txn_begin(x->env, NULL, MDB_RDONLY, &txn);
        if (rc != 0)
                return mdb_err(rc);
        MDB_val k = { LB_ID_SIZE, (void *) id->b }, v;
        rc = mdb_get(txn, x->blobs, &k, &v);
        if (rc == 0 && v.mv_size != BLOB_VALUE_SIZE)
                rc = MDB_CORRUPTED;
        /* A blob whose pack was removed (prune drops packs, not their
         * blobs) is not there. */
        if (rc == 0 && !pack_present(txn, x, v.mv_data))
                rc = MDB_NOTFOUND;
        if (rc == 0 && ret) {
                /* v is valid only until the transaction ends: copy now. */
                const uint8_t *p = v.mv_data;
                LbBlobLoc l = { .e = { .id = *id } };
                memcpy(l.pack.b, p, LB_ID_SIZE);
                l.e.offset = lb_get_le64(p + 32);
                l.e.stored_len = lb_get_le32(p + 40);
                l.e.payload_len = lb_get_le32(p + 44);
                l.e.raw_len = lb_get_le32(p + 48);
                l.e.type = p[52];
                l.e.codec = p[53];
                *ret = l;
        }
        mdb_txn_abort(txn);
        return mdb_err(rc);
}

int lb_index_add(LbIndex *x, const LbId *file_id, const LbIndexPack *packs, size_t n) {
        return lb_index_add_full(x, file_id, packs, n, false);
}

/* Blob puts per write transaction: LMDB keeps a transaction's dirty pages
 * in memory, so a large merge commits in steps. The index file is marked
 * merged in the last one: a crash before it merges the file again. */
#define ADD_BATCH 8192

int lb_index_add_full(LbIndex *x, const LbId *file_id, const LbIndexPack *packs, size_t n, bool relocate) {
        MDB_txn *txn;
        int rc = mdb_txn_begin(x->env, NULL, 0, &txn);
        if (rc != 0)
                return mdb_err(rc);
        size_t puts = 0;
        for (size_t i = 0; rc == 0 && i < n; i++) {
                const LbIndexPack *pk = &packs[i];
                uint8_t pv[12];
                lb_put_le64(pv, pk->pack_size);
                lb_put_le32(pv + 8, (uint32_t) pk->n);
                MDB_val k = { LB_ID_SIZE, (void *) pk->pack_id.b }, v = { sizeof pv, pv };
                rc = mdb_put(txn, x->packs, &k, &v, 0);
                for (size_t j = 0; rc == 0 && j < pk->n; j++) {
                        const LbPackEntry *e = &pk->entries[j];
                        uint8_t bv[BLOB_VALUE_SIZE];
                        blob_value(&pk->pack_id, e, bv);
                        if (++puts % ADD_BATCH == 0) {
                                rc = mdb_txn_commit(txn);
                                txn = NULL;
                                if (rc == 0)
                                        rc = mdb_txn_begin(x->env, NULL, 0, &txn);
                                if (rc != 0)
                                        break;
                        }
                        MDB_val bk = { LB_ID_SIZE, (void *) e->id.b }, bval = { sizeof bv, bv };
                        /* A blob stored twice (concurrent writers) keeps its
                         * first location, unless that pack is gone or the
                         * caller moves blobs (prune's repack). On
                         * MDB_KEYEXIST bval holds the existing value. */
                        rc = mdb_put(txn, x->blobs, &bk, &bval, relocate ? 0 : MDB_NOOVERWRITE);
                        if (rc == MDB_KEYEXIST) {
                                rc = 0;
                                if (!pack_present(txn, x, bval.mv_data)) {
                                        MDB_val fresh = { sizeof bv, bv };
                                        rc = mdb_put(txn, x->blobs, &bk, &fresh, 0);
                                }
                        }
                }
        }
        if (rc == 0 && file_id) {
                MDB_val k = { LB_ID_SIZE, (void *) file_id->b }, v = { 0, NULL };
                rc = mdb_put(txn, x->files, &k, &v, 0);
        }
        if (rc != 0) {
                if (txn)
                        mdb_txn_abort(txn);
                return mdb_err(rc);
        }
        return mdb_err(mdb_txn_commit(txn));
}

int lb_index_add_file(LbIndex *x, const LbId *file_id) {
        MDB_txn *txn;
        int rc = mdb_txn_begin(x->env, NULL, 0, &txn);
        if (rc != 0)
                return mdb_err(rc);
        MDB_val k = { LB_ID_SIZE, (void *) file_id->b }, v = { 0, NULL };
        rc = mdb_put(txn, x->files, &k, &v, 0);
        if (rc != 0) {
                mdb_txn_abort(txn);
                return mdb_err(rc);
        }
        return mdb_err(mdb_txn_commit(txn));
}

int lb_index_forget(LbIndex *x, const LbId *packs, size_t np, const LbId *files, size_t nf) {
        MDB_txn *txn;
        int rc = mdb_txn_begin(x->env, NULL, 0, &txn);
        if (rc != 0)
                return mdb_err(rc);
        for (size_t i = 0; rc == 0 && i < np; i++) {
                MDB_val k = { LB_ID_SIZE, (void *) packs[i].b };
                rc = mdb_del(txn, x->packs, &k, NULL);
                if (rc == MDB_NOTFOUND)
                        rc = 0;
        }
        for (size_t i = 0; rc == 0 && i < nf; i++) {
                MDB_val k = { LB_ID_SIZE, (void *) files[i].b };
                rc = mdb_del(txn, x->files, &k, NULL);
                if (rc == MDB_NOTFOUND)
                        rc = 0;
        }
        if (rc != 0) {
                mdb_txn_abort(txn);
                return mdb_err(rc);
        }
        return mdb_err(mdb_txn_commit(txn));
}

int lb_index_relocate(LbIndex *x, const LbIndexPack *p) {
        MDB_txn *txn;
        int rc = mdb_txn_begin(x->env, NULL, 0, &txn);
        if (rc != 0)
                return mdb_err(rc);
        for (size_t j = 0; rc == 0 && j < p->n; j++) {
                uint8_t bv[BLOB_VALUE_SIZE];
                blob_value(&p->pack_id, &p->entries[j], bv);
                MDB_val k = { LB_ID_SIZE, (void *) p->entries[j].id.b }, v = { sizeof bv, bv };
                rc = mdb_put(txn, x->blobs, &k, &v, 0);
        }
        if (rc != 0) {
                mdb_txn_abort(txn);
                return mdb_err(rc);
        }
        return mdb_err(mdb_txn_commit(txn));
}

int lb_index_has_pack(LbIndex *x, const LbId *pack_id) {
        MDB_txn *txn;
        int rc = mdb_txn_begin(x->env, NULL, MDB_RDONLY, &txn);
        if (rc != 0)
                return mdb_err(rc);
        bool present = pack_present(txn, x, pack_id->b);
        mdb_txn_abort(txn);
        return present;
}

int lb_index_clear(LbIndex *x) {
        MDB_txn *txn;
        int rc = mdb_txn_begin(x->env, NULL, 0, &txn);
        if (rc != 0)
                return mdb_err(rc);
        rc = mdb_drop(txn, x->blobs, 0);
        if (rc == 0)
                rc = mdb_drop(txn, x->packs, 0);
        if (rc == 0)
                rc = mdb_drop(txn, x->files, 0);
        if (rc != 0) {
                mdb_txn_abort(txn);
                return mdb_err(rc);
        }
        return mdb_err(mdb_txn_commit(txn));
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
        if (v->mv_size != 12)
                return -EBADMSG;
        LbId id;
        memcpy(id.b, k->mv_data, LB_ID_SIZE);
        return c->pfn(&id, lb_get_le64(v->mv_data), c->ud);
}

int lb_index_foreach_pack(LbIndex *x, LbPackFn fn, void *userdata) {
        struct id_cb c = { .pfn = fn, .ud = userdata };
        return foreach(x, x->packs, pack_cb, &c);
}

static int totals_cb(const MDB_val *k, const MDB_val *v, void *ud) {
        struct id_cb *c = ud;
        if (v->mv_size != 12)
                return -EBADMSG;
        c->stored += lb_get_le64(v->mv_data);
        c->blobs += lb_get_le32((const uint8_t *) v->mv_data + 8);
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
