/* SPDX-License-Identifier: MIT */
/*
 * Opening, creating and unlocking repositories; key slots; the local index
 * kept in step with the repository's index files; blob and snapshot reads.
 */
#include <sodium.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include "store/index.h"
#include "store/repo.h"

void lb_init_options_default(LbInitOptions *o) {
        *o = (LbInitOptions) {
                .chunker = { LB_CHUNKER_DEFAULT_MIN, LB_CHUNKER_DEFAULT_AVG, LB_CHUNKER_DEFAULT_MAX },
                .zstd_level = 3,
                .pack_target = LB_PACK_TARGET_DEFAULT,
                .kdf_opslimit = LB_KDF_OPS_DEFAULT,
                .kdf_memlimit = LB_KDF_MEM_DEFAULT,
        };
}

static void slot_name(char out[17]) {
        uint8_t b[8];
        lb_random(b, sizeof b);
        lb_hex_encode(b, sizeof b, out);
}

static int repo_setup(LbRepo *r, const char *cache_dir) {
        uint64_t gear[256];
        lb_gear_table(&r->keys, gear);
        int k = lb_chunker_init(&r->chunker, &r->cfg.chunker, gear);
        sodium_memzero(gear, sizeof gear);
        if (k < 0)
                return k;
        const char *local = r->be->local_dir ? r->be->local_dir(r->be) : NULL;
        if (cache_dir) {
                r->cache_dir = strdup(cache_dir);
                if (!r->cache_dir)
                        return -ENOMEM;
        }
        if (local)
                r->index_dir = lb_path_join(local, "localindex");
        else if (!cache_dir)
                return 0; /* a remote without a cache: no local index (init needs none) */
        else {
                char id[2 * LB_REPO_ID_SIZE + 1];
                lb_hex_encode(r->cfg.repo_id, LB_REPO_ID_SIZE, id);
                r->index_dir = lb_strdup_printf("%s/%s/index", cache_dir, id);
        }
        return r->index_dir ? 0 : -ENOMEM;
}

int lb_repo_init(const char *location, const char *passphrase, const LbInitOptions *o, LbRepo **ret) {
        int k = lb_crypto_init();
        if (k < 0)
                return k;
        k = lb_chunker_params_check(&o->chunker);
        if (k < 0)
                return k;
        if (o->zstd_level < 0 || o->zstd_level > 22 || o->pack_target < (1u << 20) || o->pack_target > (1u << 30))
                return -EINVAL;
        _cleanup_buf_ LbBuf slot = {};
        uint8_t master[LB_KEY_SIZE];
        LbRepo *r = calloc(1, sizeof *r);
        if (!r)
                return -ENOMEM;
        k = lb_backend_open(location, &r->be);
        if (k < 0)
                goto fail;
        k = r->be->create(r->be);
        if (k < 0)
                goto fail;

        r->cfg = (LbRepoConfig) {
                .version = LB_FORMAT_VERSION,
                .chunker = o->chunker,
                .zstd_level = o->zstd_level,
                .pack_target = o->pack_target,
                .created_ns = lb_now_ns(),
        };
        lb_random(r->cfg.repo_id, sizeof r->cfg.repo_id);
        lb_random(master, sizeof master);
        lb_keys_derive(&r->keys, master);

        /* Key slot first, config last: a directory with a config is a
         * repository, and it must be openable the moment it is one. */
        k = lb_keyslot_create(master, r->cfg.repo_id, passphrase, o->kdf_opslimit, o->kdf_memlimit, o->label, &slot);
        sodium_memzero(master, sizeof master);
        if (k < 0)
                goto fail;
        slot_name(r->key_name);
        k = r->be->put(r->be, LB_OBJ_KEY, r->key_name, slot.data, slot.len);
        if (k < 0)
                goto fail;
        uint8_t cfg[LB_CONFIG_SIZE];
        lb_config_encode(&r->cfg, &r->keys, cfg);
        k = r->be->put(r->be, LB_OBJ_CONFIG, "config", cfg, sizeof cfg);
        if (k < 0)
                goto fail;
        k = repo_setup(r, NULL);
        if (k < 0)
                goto fail;
        *ret = r;
        return 0;
fail:
        lb_repo_free(r);
        return k;
}

struct key_try {
        LbRepo *r;
        const char *passphrase;
        uint8_t master[LB_KEY_SIZE];
        bool found;
        int error;
};

static int try_key(const char *name, uint64_t size, void *ud) {
        struct key_try *t = ud;
        if (t->found || size > LB_KEYSLOT_MAX_SIZE || strlen(name) != 16)
                return 0;
        _cleanup_buf_ LbBuf b = {};
        int k = t->r->be->get(t->r->be, LB_OBJ_KEY, name, 0, SIZE_MAX, &b);
        if (k < 0) {
                t->error = k;
                return 0;
        }
        LbKeySlot s;
        if (lb_keyslot_parse(b.data, b.len, &s) < 0)
                return 0; /* a damaged slot is reported by check; another may open */
        bool ours = memcmp(s.repo_id, t->r->cfg.repo_id, LB_REPO_ID_SIZE) == 0;
        lb_keyslot_clear(&s);
        if (!ours)
                return 0;
        k = lb_keyslot_open(b.data, b.len, t->passphrase, t->master);
        if (k == 0) {
                t->found = true;
                memcpy(t->r->key_name, name, 17);
        } else if (k != -EKEYREJECTED)
                t->error = k;
        return 0;
}

int lb_repo_open(const char *location, const char *cache_dir, const char *passphrase, LbRepo **ret) {
        int k = lb_crypto_init();
        if (k < 0)
                return k;
        LbRepo *r = calloc(1, sizeof *r);
        if (!r)
                return -ENOMEM;
        _cleanup_buf_ LbBuf cfg = {};
        k = lb_backend_open(location, &r->be);
        if (k < 0)
                goto fail;
        k = r->be->exists(r->be);
        if (k < 0)
                goto fail;
        k = r->be->get(r->be, LB_OBJ_CONFIG, "config", 0, SIZE_MAX, &cfg);
        if (k < 0)
                goto fail;
        k = lb_config_decode(cfg.data, cfg.len, &r->cfg);
        if (k < 0)
                goto fail;

        struct key_try t = { .r = r, .passphrase = passphrase };
        k = r->be->list(r->be, LB_OBJ_KEY, try_key, &t);
        if (k < 0)
                goto fail;
        if (!t.found) {
                k = t.error < 0 ? t.error : -EKEYREJECTED;
                goto fail;
        }
        lb_keys_derive(&r->keys, t.master);
        sodium_memzero(t.master, sizeof t.master);
        k = lb_config_verify(cfg.data, cfg.len, &r->keys);
        if (k < 0)
                goto fail;
        k = repo_setup(r, cache_dir);
        if (k < 0)
                goto fail;
        *ret = r;
        return 0;
fail:
        lb_repo_free(r);
        return k;
}

LbRepo *lb_repo_free(LbRepo *r) {
        if (!r)
                return NULL;
        if (r->lock_name[0])
                (void) lb_repo_unlock(r);
        lb_index_free(r->index);
        lb_backend_free(r->be);
        lb_keys_wipe(&r->keys);
        free(r->cache_dir);
        free(r->index_dir);
        free(r);
        return NULL;
}

/* ---- keys ---- */

struct key_list {
        LbRepo *r;
        LbKeyInfo *v;
        size_t n;
        int error;
};

static int list_key(const char *name, uint64_t size, void *ud) {
        struct key_list *l = ud;
        if (strlen(name) != 16)
                return 0;
        _cleanup_buf_ LbBuf b = {};
        int k = l->r->be->get(l->r->be, LB_OBJ_KEY, name, 0, SIZE_MAX, &b);
        if (k < 0)
                return k;
        LbKeySlot s;
        k = lb_keyslot_parse(b.data, b.len, &s);
        if (k < 0)
                return 0;
        LbKeyInfo *v = realloc(l->v, (l->n + 1) * sizeof *v);
        if (!v) {
                lb_keyslot_clear(&s);
                return -ENOMEM;
        }
        l->v = v;
        LbKeyInfo *i = &v[l->n++];
        *i = (LbKeyInfo) { .created_ns = s.created_ns, .label = LB_TAKE_PTR(s.label),
                           .current = strcmp(name, l->r->key_name) == 0 };
        memcpy(i->id, name, 17);
        lb_keyslot_clear(&s);
        return 0;
}

static int key_info_cmp(const void *a, const void *b) {
        const LbKeyInfo *x = a, *y = b;
        return x->created_ns < y->created_ns ? -1 : x->created_ns > y->created_ns ? 1 : strcmp(x->id, y->id);
}

int lb_repo_key_list(LbRepo *r, LbKeyInfo **ret, size_t *ret_n) {
        struct key_list l = { .r = r };
        int k = r->be->list(r->be, LB_OBJ_KEY, list_key, &l);
        if (k < 0) {
                lb_key_infos_free(l.v, l.n);
                return k;
        }
        lb_qsort(l.v, l.n, sizeof *l.v, key_info_cmp);
        *ret = l.v;
        *ret_n = l.n;
        return 0;
}

void lb_key_infos_free(LbKeyInfo *k, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(k[i].label);
        free(k);
}

int lb_repo_key_add(LbRepo *r, const char *passphrase, const char *label, uint64_t opslimit, uint64_t memlimit,
                    char ret_id[17]) {
        _cleanup_buf_ LbBuf slot = {};
        int k = lb_keyslot_create(r->keys.master, r->cfg.repo_id, passphrase, opslimit, memlimit, label, &slot);
        if (k < 0)
                return k;
        char name[17];
        slot_name(name);
        k = r->be->put(r->be, LB_OBJ_KEY, name, slot.data, slot.len);
        if (k < 0)
                return k;
        memcpy(ret_id, name, 17);
        return 0;
}

int lb_repo_key_remove(LbRepo *r, const char *id) {
        LbKeyInfo *keys;
        size_t n;
        int k = lb_repo_key_list(r, &keys, &n);
        if (k < 0)
                return k;
        bool found = false;
        for (size_t i = 0; i < n; i++)
                found = found || strcmp(keys[i].id, id) == 0;
        lb_key_infos_free(keys, n);
        if (!found)
                return -ENOENT;
        if (n <= 1)
                return -EPERM;
        if (strcmp(id, r->key_name) == 0)
                return -EBUSY;
        return r->be->remove(r->be, LB_OBJ_KEY, id);
}

int lb_repo_key_passwd(LbRepo *r, const char *passphrase, uint64_t opslimit, uint64_t memlimit, char ret_id[17]) {
        LbKeyInfo *keys;
        size_t n;
        int k = lb_repo_key_list(r, &keys, &n);
        if (k < 0)
                return k;
        _cleanup_free_ char *label = NULL;
        for (size_t i = 0; i < n; i++)
                if (keys[i].current && keys[i].label)
                        label = strdup(keys[i].label);
        lb_key_infos_free(keys, n);
        char id[17];
        /* New slot durable first, then the old one goes: never zero slots. */
        k = lb_repo_key_add(r, passphrase, label, opslimit, memlimit, id);
        if (k < 0)
                return k;
        k = r->be->remove(r->be, LB_OBJ_KEY, r->key_name);
        if (k < 0)
                return k;
        memcpy(r->key_name, id, 17);
        memcpy(ret_id, id, 17);
        return 0;
}

/* ---- index ---- */

struct name_list {
        char **v;
        size_t n;
};

static int collect_name(const char *name, uint64_t size, void *ud) {
        struct name_list *l = ud;
        if (strlen(name) != 2 * LB_ID_SIZE || !lb_is_hex(name, 2 * LB_ID_SIZE))
                return 0;
        char **v = realloc(l->v, (l->n + 1) * sizeof *v);
        if (!v)
                return -ENOMEM;
        l->v = v;
        l->v[l->n] = strdup(name);
        if (!l->v[l->n])
                return -ENOMEM;
        l->n++;
        return 0;
}

static void name_list_free(struct name_list *l) {
        for (size_t i = 0; i < l->n; i++)
                free(l->v[i]);
        free(l->v);
        *l = (struct name_list) {};
}

int lb_repo_read_index_file(LbRepo *r, const LbId *id, LbIndexPack **ret, size_t *ret_n) {
        char name[2 * LB_ID_SIZE + 1];
        lb_id_hex(id, name);
        _cleanup_buf_ LbBuf b = {};
        int k = r->be->get(r->be, LB_OBJ_INDEX, name, 0, SIZE_MAX, &b);
        if (k < 0)
                return k;
        LbId actual;
        lb_object_id(b.data, b.len, &actual);
        if (lb_id_cmp(&actual, id) != 0)
                return -EBADMSG;
        return lb_indexfile_decode(&r->keys, b.data, b.len, ret, ret_n);
}

static int merge_index_file(LbRepo *r, const char *name) {
        LbId id;
        int k = lb_id_from_hex(name, &id);
        if (k < 0)
                return k;
        LbIndexPack *packs;
        size_t n;
        k = lb_repo_read_index_file(r, &id, &packs, &n);
        if (k < 0)
                return k;
        k = lb_index_add(r->index, &id, packs, n);
        lb_index_packs_free(packs, n);
        return k;
}

struct stale_files {
        struct name_list *present;
        bool stale;
};

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

static int check_file_present(const LbId *id, void *ud) {
        struct stale_files *s = ud;
        char hex[2 * LB_ID_SIZE + 1], *key = hex;
        lb_id_hex(id, hex);
        if (!lb_bsearch(&key, s->present->v, s->present->n, sizeof(char *), cmp_str))
                s->stale = true;
        return 0;
}

static int index_open(LbRepo *r) {
        if (r->index)
                return 0;
        if (!r->index_dir)
                return -EINVAL;
        return lb_index_open(r->index_dir, &r->index);
}

int lb_repo_index_update(LbRepo *r) {
        int k = index_open(r);
        if (k < 0)
                return k;
        struct name_list files = {};
        k = r->be->list(r->be, LB_OBJ_INDEX, collect_name, &files);
        if (k < 0)
                goto done;
        lb_qsort(files.v, files.n, sizeof *files.v, cmp_str);
        /* An index file that disappeared (rebuild, prune) makes the local
         * index stale: start over from the files that exist. */
        struct stale_files s = { .present = &files };
        k = lb_index_foreach_file(r->index, check_file_present, &s);
        if (k < 0)
                goto done;
        if (s.stale) {
                k = lb_index_clear(r->index);
                if (k < 0)
                        goto done;
        }
        for (size_t i = 0; i < files.n; i++) {
                LbId id;
                k = lb_id_from_hex(files.v[i], &id);
                if (k < 0)
                        goto done;
                k = lb_index_has_file(r->index, &id);
                if (k < 0)
                        goto done;
                if (k == 1)
                        continue;
                k = merge_index_file(r, files.v[i]);
                if (k == -ENOENT)
                        k = 0; /* removed meanwhile */
                if (k < 0)
                        goto done;
        }
        k = 0;
done:
        name_list_free(&files);
        return k;
}

int lb_repo_read_pack_toc(LbRepo *r, const char *name, uint64_t size, LbPackEntry **ret, size_t *ret_n) {
        if (size < LB_PACK_FOOTER_SIZE)
                return -EBADMSG;
        _cleanup_buf_ LbBuf b = {};
        int k = r->be->get(r->be, LB_OBJ_PACK, name, size - LB_PACK_FOOTER_SIZE, LB_PACK_FOOTER_SIZE, &b);
        if (k < 0)
                return k;
        uint32_t toc_len;
        k = lb_pack_parse_footer(b.data, size, &toc_len);
        if (k < 0)
                return k;
        uint64_t toc_off = size - LB_PACK_FOOTER_SIZE - toc_len;
        k = r->be->get(r->be, LB_OBJ_PACK, name, toc_off, toc_len, &b);
        if (k < 0)
                return k;
        return lb_pack_parse_toc(&r->keys, b.data, b.len, toc_off, ret, ret_n);
}

struct pack_scan {
        LbRepo *r;
        LbIndexPack *packs;
        size_t n;
        int error;
};

static int scan_pack(const char *name, uint64_t size, void *ud) {
        struct pack_scan *s = ud;
        if (strlen(name) != 2 * LB_ID_SIZE || !lb_is_hex(name, 2 * LB_ID_SIZE))
                return 0;
        LbIndexPack p = { .pack_size = size };
        int k = lb_id_from_hex(name, &p.pack_id);
        if (k < 0)
                return 0;
        k = lb_repo_read_pack_toc(s->r, name, size, &p.entries, &p.n);
        if (k == -EBADMSG) {
                s->error = k; /* a damaged pack is skipped; the caller is told */
                return 0;
        }
        if (k < 0)
                return k;
        LbIndexPack *v = realloc(s->packs, (s->n + 1) * sizeof *v);
        if (!v) {
                free(p.entries);
                return -ENOMEM;
        }
        s->packs = v;
        s->packs[s->n++] = p;
        return 0;
}

int lb_repo_put_object(LbRepo *r, LbObjType t, const void *p, size_t n, LbId *ret_id) {
        LbId id;
        lb_object_id(p, n, &id);
        char hex[2 * LB_ID_SIZE + 1];
        lb_id_hex(&id, hex);
        int k = r->be->put(r->be, t, hex, p, n);
        if (k < 0)
                return k;
        if (ret_id)
                *ret_id = id;
        return 0;
}

int lb_repo_put_object_iov(LbRepo *r, LbObjType t, const struct iovec *iov, size_t n, LbId *ret_id) {
        LbHasher h;
        lb_hasher_init(&h);
        size_t total = 0;
        for (size_t i = 0; i < n; i++) {
                lb_hasher_update(&h, iov[i].iov_base, iov[i].iov_len);
                total += iov[i].iov_len;
        }
        LbId id;
        lb_hasher_final(&h, &id);
        char hex[2 * LB_ID_SIZE + 1];
        lb_id_hex(&id, hex);
        int k;
        if (r->be->put_iov)
                k = r->be->put_iov(r->be, t, hex, iov, n);
        else {
                /* The backend wants one buffer. */
                _cleanup_buf_ LbBuf b = {};
                k = lb_buf_reserve(&b, total);
                for (size_t i = 0; k == 0 && i < n; i++)
                        k = lb_buf_append(&b, iov[i].iov_base, iov[i].iov_len);
                if (k == 0)
                        k = r->be->put(r->be, t, hex, b.data, b.len);
        }
        if (k < 0)
                return k;
        if (ret_id)
                *ret_id = id;
        return 0;
}

int lb_repo_write_index_file(LbRepo *r, const LbIndexPack *packs, size_t n, LbId *ret_id) {
        _cleanup_buf_ LbBuf b = {};
        int k = lb_indexfile_encode(&r->keys, packs, n, &b);
        if (k < 0)
                return k;
        return lb_repo_put_object(r, LB_OBJ_INDEX, b.data, b.len, ret_id);
}

#define REBUILD_PACKS_PER_FILE 256

int lb_repo_index_rebuild(LbRepo *r, bool from_packs, unsigned *ret_packs) {
        int k = index_open(r);
        if (k < 0)
                return k;
        if (!from_packs) {
                k = lb_index_clear(r->index);
                if (k < 0)
                        return k;
                k = lb_repo_index_update(r);
                if (k < 0)
                        return k;
                uint64_t blobs, stored;
                k = lb_index_totals(r->index, &blobs, &stored);
                if (ret_packs)
                        *ret_packs = 0;
                return k;
        }
        /* The new index files are written before the old ones are removed,
         * so the repository always has a complete index. Callers hold the
         * exclusive lock. */
        struct name_list old = {};
        struct pack_scan s = { .r = r };
        k = r->be->list(r->be, LB_OBJ_INDEX, collect_name, &old);
        if (k < 0)
                goto done;
        k = r->be->list(r->be, LB_OBJ_PACK, scan_pack, &s);
        if (k < 0)
                goto done;
        k = lb_index_clear(r->index);
        if (k < 0)
                goto done;
        for (size_t i = 0, m; i < s.n; i += m) {
                /* Up to REBUILD_PACKS_PER_FILE packs and 1M entries a file. */
                size_t entries = 0;
                for (m = 0; i + m < s.n && m < REBUILD_PACKS_PER_FILE; m++) {
                        if (m > 0 && entries + s.packs[i + m].n > (1u << 20))
                                break;
                        entries += s.packs[i + m].n;
                }
                LbId id;
                k = lb_repo_write_index_file(r, s.packs + i, m, &id);
                if (k < 0)
                        goto done;
                k = lb_index_add(r->index, &id, s.packs + i, m);
                if (k < 0)
                        goto done;
        }
        /* A pack whose TOC is damaged was left out: the old index files may
         * be the only map to its (intact) blobs, so they stay. */
        for (size_t i = 0; s.error == 0 && i < old.n; i++) {
                k = r->be->remove(r->be, LB_OBJ_INDEX, old.v[i]);
                if (k < 0 && k != -ENOENT)
                        goto done;
        }
        if (ret_packs)
                *ret_packs = (unsigned) s.n;
        k = s.error;
done:
        lb_index_packs_free(s.packs, s.n);
        name_list_free(&old);
        return k;
}

int lb_repo_lookup(LbRepo *r, const LbId *id, LbBlobLoc *ret) {
        if (!r->index)
                return -ENOENT;
        return lb_index_lookup(r->index, id, ret);
}

/* Reads the sealed bytes of the blob at l into stored. */
static int read_sealed(LbRepo *r, const LbBlobLoc *l, LbBuf *stored) {
        char hex[2 * LB_ID_SIZE + 1];
        lb_id_hex(&l->pack, hex);
        int k = r->be->get(r->be, LB_OBJ_PACK, hex, l->e.offset, l->e.stored_len, stored);
        if (k == -ENOENT)
                return -EBADMSG; /* indexed but gone: the repository is damaged */
        return k;
}

int lb_repo_read_base(LbRepo *r, const LbPackEntry *delta, LbBuf *out) {
        LbBlobLoc b;
        int k = lb_repo_lookup(r, &delta->base, &b);
        if (k == -ENOENT)
                return -EBADMSG; /* a delta whose base is gone cannot be read */
        if (k < 0)
                return k;
        /* A base is a data chunk stored whole (docs/design.md "Deltas"). */
        if (b.e.type != LB_BLOB_DATA || b.e.codec == LB_CODEC_DELTA || b.e.raw_len > LB_DELTA_BASE_MAX)
                return -EBADMSG;
        _cleanup_buf_ LbBuf stored = {};
        k = read_sealed(r, &b, &stored);
        if (k < 0)
                return k;
        return lb_blob_decode(&r->keys, &b.e, stored.data, stored.len, out);
}

int lb_repo_decode_blob(LbRepo *r, const LbPackEntry *e, const uint8_t *stored, size_t stored_len, LbBuf *out) {
        if (e->codec != LB_CODEC_DELTA)
                return lb_blob_decode(&r->keys, e, stored, stored_len, out);
        _cleanup_buf_ LbBuf base = {};
        int k = lb_repo_read_base(r, e, &base);
        if (k < 0)
                return k;
        return lb_blob_decode_base(&r->keys, e, stored, stored_len, base.data, base.len, out);
}

/* Reads and decodes the blob at l; stored holds its sealed bytes. */
static int read_blob_at(LbRepo *r, const LbBlobLoc *l, LbBuf *stored, LbBuf *out) {
        int k = read_sealed(r, l, stored);
        if (k < 0)
                return k;
        return lb_repo_decode_blob(r, &l->e, stored->data, stored->len, out);
}

int lb_repo_read_blob_at(LbRepo *r, const LbBlobLoc *l, LbBuf *out) {
        _cleanup_buf_ LbBuf stored = {};
        return read_blob_at(r, l, &stored, out);
}

int lb_repo_read_blob_buf(LbRepo *r, const LbId *id, LbBuf *stored, LbBuf *out) {
        LbBlobLoc l;
        int k = lb_repo_lookup(r, id, &l);
        if (k < 0)
                return k;
        return read_blob_at(r, &l, stored, out);
}

int lb_repo_read_blob(LbRepo *r, const LbId *id, LbBuf *out) {
        _cleanup_buf_ LbBuf stored = {};
        return lb_repo_read_blob_buf(r, id, &stored, out);
}

int lb_repo_load_tree(LbRepo *r, const LbId *id, LbTree **ret) {
        _cleanup_buf_ LbBuf b = {};
        int k = lb_repo_read_blob(r, id, &b);
        if (k < 0)
                return k;
        return lb_tree_decode(b.data, b.len, ret);
}

int lb_repo_index_packs(LbRepo *r, LbPackFn fn, void *userdata) {
        if (!r->index)
                return -EINVAL;
        return lb_index_foreach_pack(r->index, fn, userdata);
}

int lb_repo_index_totals(LbRepo *r, uint64_t *ret_blobs, uint64_t *ret_stored) {
        if (!r->index)
                return -EINVAL;
        return lb_index_totals(r->index, ret_blobs, ret_stored);
}

/* ---- snapshots ---- */

int lb_repo_snapshot_save(LbRepo *r, const LbSnapshot *s, LbId *ret_id) {
        _cleanup_buf_ LbBuf plain = {};
        int k = lb_snapshot_encode(s, &plain);
        if (k < 0)
                return k;
        _cleanup_buf_ LbBuf sealed = {};
        k = lb_seal_buf(r->keys.meta_key, LB_SNAPSHOT_AD, plain.data, plain.len, &sealed);
        if (k < 0)
                return k;
        return lb_repo_put_object(r, LB_OBJ_SNAPSHOT, sealed.data, sealed.len, ret_id);
}

int lb_repo_snapshot_load(LbRepo *r, const LbId *id, LbSnapshot **ret) {
        char hex[2 * LB_ID_SIZE + 1];
        lb_id_hex(id, hex);
        uint64_t size;
        int k = r->be->stat(r->be, LB_OBJ_SNAPSHOT, hex, &size);
        if (k < 0)
                return k;
        if (size > LB_SNAPSHOT_MAX_SIZE)
                return -EBADMSG;
        _cleanup_buf_ LbBuf sealed = {}, plain = {};
        k = r->be->get(r->be, LB_OBJ_SNAPSHOT, hex, 0, SIZE_MAX, &sealed);
        if (k < 0)
                return k;
        LbId actual;
        lb_object_id(sealed.data, sealed.len, &actual);
        if (lb_id_cmp(&actual, id) != 0)
                return -EBADMSG;
        k = lb_unseal_buf(r->keys.meta_key, LB_SNAPSHOT_AD, sealed.data, sealed.len, &plain);
        if (k < 0)
                return k;
        LbSnapshot *s;
        k = lb_snapshot_decode(plain.data, plain.len, &s);
        if (k < 0)
                return k;
        s->id = *id;
        *ret = s;
        return 0;
}

static int snap_cmp(const void *a, const void *b) {
        const LbSnapshot *x = *(LbSnapshot *const *) a, *y = *(LbSnapshot *const *) b;
        if (x->time_ns != y->time_ns)
                return x->time_ns < y->time_ns ? -1 : 1;
        return lb_id_cmp(&x->id, &y->id);
}

int lb_repo_snapshot_list(LbRepo *r, LbSnapshot ***ret, size_t *ret_n) {
        struct name_list names = {};
        int k = r->be->list(r->be, LB_OBJ_SNAPSHOT, collect_name, &names);
        if (k < 0) {
                name_list_free(&names);
                return k;
        }
        LbSnapshot **v = calloc(names.n ? names.n : 1, sizeof *v);
        size_t n = 0;
        if (!v) {
                name_list_free(&names);
                return -ENOMEM;
        }
        for (size_t i = 0; i < names.n; i++) {
                LbId id;
                k = lb_id_from_hex(names.v[i], &id);
                if (k == 0)
                        k = lb_repo_snapshot_load(r, &id, &v[n]);
                if (k == -ENOENT)
                        continue; /* removed meanwhile */
                if (k == -EBADMSG || k == -EPROTONOSUPPORT)
                        continue; /* damaged or newer: check reports it; the others stay usable */
                if (k < 0) {
                        lb_snapshots_free(v, n);
                        name_list_free(&names);
                        return k;
                }
                n++;
        }
        name_list_free(&names);
        lb_qsort(v, n, sizeof *v, snap_cmp);
        *ret = v;
        *ret_n = n;
        return 0;
}

void lb_snapshots_free(LbSnapshot **s, size_t n) {
        if (!s)
                return;
        for (size_t i = 0; i < n; i++)
                lb_snapshot_free(s[i]);
        free(s);
}

int lb_repo_snapshot_find(LbRepo *r, const char *spec, LbSnapshot **ret) {
        LbSnapshot **v;
        size_t n;
        int k = lb_repo_snapshot_list(r, &v, &n);
        if (k < 0)
                return k;
        LbSnapshot *found = NULL;
        k = -ENOENT;
        if (strcmp(spec, "latest") == 0) {
                if (n > 0) {
                        found = v[n - 1];
                        v[n - 1] = NULL;
                        k = 0;
                }
        } else if (*spec && strlen(spec) <= 2 * LB_ID_SIZE && lb_is_hex(spec, strlen(spec))) {
                size_t idx = 0, matches = 0;
                for (size_t i = 0; i < n; i++) {
                        char hex[2 * LB_ID_SIZE + 1];
                        lb_id_hex(&v[i]->id, hex);
                        if (strncasecmp(hex, spec, strlen(spec)) == 0) {
                                idx = i;
                                matches++;
                        }
                }
                if (matches == 1) {
                        found = v[idx];
                        v[idx] = NULL;
                        k = 0;
                } else if (matches > 1)
                        k = -ENOTUNIQ;
        }
        lb_snapshots_free(v, n);
        if (k == 0)
                *ret = found;
        return k;
}

int lb_repo_snapshot_remove(LbRepo *r, const LbId *id) {
        char hex[2 * LB_ID_SIZE + 1];
        lb_id_hex(id, hex);
        return r->be->remove(r->be, LB_OBJ_SNAPSHOT, hex);
}

int lb_repo_remove_nosync(LbRepo *r, LbObjType t, const LbId *id) {
        char hex[2 * LB_ID_SIZE + 1];
        lb_id_hex(id, hex);
        if (r->be->remove_nosync)
                return r->be->remove_nosync(r->be, t, hex);
        return r->be->remove(r->be, t, hex);
}

int lb_repo_sync_removals(LbRepo *r, LbObjType t) {
        return r->be->sync ? r->be->sync(r->be, t) : 0;
}
