/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The repository: config, key slots, locks, the local index, blob reads,
 * snapshot files. Ties the backend, the crypto and the formats together.
 *
 * Errors with a meaning for the CLI (docs/design.md "Exit codes"):
 *   -ENOENT on open         no repository at that location
 *   -EKEYREJECTED           no key slot opens with this passphrase
 *   -EWOULDBLOCK            lock held by a live process (after waiting)
 *   -EBADMSG                corrupt or unauthenticated data
 *   -EPROTONOSUPPORT        repository format newer than this program
 */

#include "chunker/chunker.h"
#include "store/backend.h"
#include "store/crypto.h"
#include "store/format.h"
#include "store/indexfile.h"
#include "store/pack.h"
#include "store/snapshot.h"
#include "store/tree.h"

typedef struct LbRepoConfig {
        uint32_t version;
        uint32_t mandatory_features;
        uint32_t optional_features;
        uint8_t repo_id[LB_REPO_ID_SIZE];
        LbChunkerParams chunker;
        int32_t zstd_level;
        uint32_t pack_target;
        int64_t created_ns;
} LbRepoConfig;

/* config object: encode (with MAC) / decode (MAC checked only when keys given). */
int lb_config_encode(const LbRepoConfig *c, const LbKeys *k, uint8_t out[LB_CONFIG_SIZE]);
/* Parses the plain part; -EBADMSG if malformed, -EPROTONOSUPPORT for an
 * unknown version or mandatory feature. */
int lb_config_decode(const uint8_t *p, size_t n, LbRepoConfig *ret) _warn_unused_;
/* Checks the MAC with the repository keys: -EBADMSG if it does not match. */
int lb_config_verify(const uint8_t *p, size_t n, const LbKeys *k) _warn_unused_;

/* Key slots (keys/<16 hex>). */
typedef struct LbKeySlot {
        uint64_t opslimit;
        uint64_t memlimit;
        uint8_t salt[16];
        int64_t created_ns;
        uint8_t repo_id[LB_REPO_ID_SIZE];
        char *label;
} LbKeySlot;
/* Wraps master into a new slot with Argon2id(passphrase). */
int lb_keyslot_create(const uint8_t master[LB_KEY_SIZE], const uint8_t repo_id[LB_REPO_ID_SIZE],
                      const char *passphrase, uint64_t opslimit, uint64_t memlimit, const char *label,
                      LbBuf *out) _warn_unused_;
/* Parses the slot header (no KDF run); -EBADMSG if malformed. */
int lb_keyslot_parse(const uint8_t *p, size_t n, LbKeySlot *ret) _warn_unused_;
void lb_keyslot_clear(LbKeySlot *s);
/* Runs the KDF and unwraps: -EKEYREJECTED if the passphrase does not open it. */
int lb_keyslot_open(const uint8_t *p, size_t n, const char *passphrase, uint8_t master[LB_KEY_SIZE]) _warn_unused_;

/* KDF parameter presets. */
/* Argon2id t=3, m=64 MiB: borg's argon2 defaults, above OWASP's minimum
 * (t=2, m=19 MiB). libsodium's MODERATE (256 MiB) cost every command
 * 0.5 s and set the peak RSS of every command, prune included. */
#define LB_KDF_OPS_DEFAULT 3ull
#define LB_KDF_MEM_DEFAULT (64ull << 20)
#define LB_KDF_OPS_INSECURE 1ull           /* tests only: --insecure-fast-kdf */
#define LB_KDF_MEM_INSECURE (8ull << 10)

typedef struct LbInitOptions {
        LbChunkerParams chunker;
        int zstd_level;
        uint32_t pack_target;
        uint64_t kdf_opslimit;
        uint64_t kdf_memlimit;
        const char *label;
} LbInitOptions;
void lb_init_options_default(LbInitOptions *o);

typedef struct LbIndex LbIndex;

typedef struct LbRepo {
        LbBackend *be;
        LbRepoConfig cfg;
        LbKeys keys;
        LbChunker chunker;
        char key_name[17];      /* the slot that opened the repository */
        char *cache_dir;        /* where derived state lives (NULL: backend's local dir) */
        char *index_dir;        /* the LMDB environment directory */
        LbIndex *index;         /* opened by lb_repo_index_update() */
        char lock_name[17];     /* our lock object, "" when none */
        bool lock_exclusive;
} LbRepo;

/* Creates a repository at location (an empty or missing directory). */
int lb_repo_init(const char *location, const char *passphrase, const LbInitOptions *o, LbRepo **ret) _warn_unused_;
/* Opens and unlocks a repository. cache_dir may be NULL. */
int lb_repo_open(const char *location, const char *cache_dir, const char *passphrase, LbRepo **ret) _warn_unused_;
LbRepo *lb_repo_free(LbRepo *r);   /* releases the lock too; NULL ok */

/* ---- keys ---- */
typedef struct LbKeyInfo {
        char id[17];
        int64_t created_ns;
        char *label;
        bool current;
} LbKeyInfo;
int lb_repo_key_list(LbRepo *r, LbKeyInfo **ret, size_t *ret_n) _warn_unused_;
void lb_key_infos_free(LbKeyInfo *k, size_t n);
int lb_repo_key_add(LbRepo *r, const char *passphrase, const char *label, uint64_t opslimit, uint64_t memlimit,
                    char ret_id[17]) _warn_unused_;
/* -EPERM when id is the only slot; -ENOENT when there is no such slot;
 * -EBUSY when id is the slot in use (use key passwd). */
int lb_repo_key_remove(LbRepo *r, const char *id) _warn_unused_;
/* Adds a slot for the new passphrase, then removes the current one. */
int lb_repo_key_passwd(LbRepo *r, const char *passphrase, uint64_t opslimit, uint64_t memlimit,
                       char ret_id[17]) _warn_unused_;

/* ---- locks ----
 * Shared locks: any number at once (backups, reads). An exclusive lock
 * excludes every other lock. A lock whose process is dead (same host)
 * is removed on sight. Waits up to wait_ns, then -EWOULDBLOCK. */
int lb_repo_lock(LbRepo *r, bool exclusive, int64_t wait_ns) _warn_unused_;
int lb_repo_unlock(LbRepo *r);
/* Removes stale locks (all locks if all is true); count in *ret_removed. */
int lb_repo_remove_locks(LbRepo *r, bool all, unsigned *ret_removed) _warn_unused_;
/* Describes a conflicting lock for an error message ("host pid 123 since ..."); caller frees. */
char *lb_repo_lock_holder(LbRepo *r);

/* ---- index ---- */
/* Opens the local index (creating it if needed) and merges every index
 * file of the repository it has not merged yet. */
int lb_repo_index_update(LbRepo *r) _warn_unused_;
/* Rebuilds the local index from scratch: from index files, or from the
 * pack TOCs when from_packs is true (and then writes fresh index files and
 * removes the old ones). A pack whose TOC is damaged is left out; then the
 * old index files are kept and -EBADMSG is returned after the rebuild. */
int lb_repo_index_rebuild(LbRepo *r, bool from_packs, unsigned *ret_packs) _warn_unused_;

typedef struct LbBlobLoc {
        LbId pack;
        LbPackEntry e;
} LbBlobLoc;
/* 0 and *ret if the blob is indexed, -ENOENT otherwise. Thread-safe. */
int lb_repo_lookup(LbRepo *r, const LbId *id, LbBlobLoc *ret) _warn_unused_;
/* Reads and decodes a blob (verified); out replaced. -ENOENT if not
 * indexed, -EBADMSG if damaged. Thread-safe. */
int lb_repo_read_blob(LbRepo *r, const LbId *id, LbBuf *out) _warn_unused_;
/* The same, with the caller's buffer for the sealed bytes, kept for reuse
 * across calls. */
int lb_repo_read_blob_buf(LbRepo *r, const LbId *id, LbBuf *stored, LbBuf *out) _warn_unused_;
/* The same for a blob whose location the caller knows (from an index file). */
int lb_repo_read_blob_at(LbRepo *r, const LbBlobLoc *l, LbBuf *out) _warn_unused_;
/* Decodes the sealed bytes of the blob e describes (read by the caller);
 * a delta's base is read and verified first. */
int lb_repo_decode_blob(LbRepo *r, const LbPackEntry *e, const uint8_t *stored, size_t stored_len,
                        LbBuf *out) _warn_unused_;
/* Reads the base of delta (codec LB_CODEC_DELTA) into out, verified;
 * -EBADMSG if it is not indexed or not a data chunk stored whole. */
int lb_repo_read_base(LbRepo *r, const LbPackEntry *delta, LbBuf *out) _warn_unused_;
/* Says which blobs will be read soon, so a local backend can start
 * reading their bytes (and only theirs) in parallel: looks up each id
 * and hands the backend the byte ranges of each pack's blobs at once
 * (LbBackend.hint; store/hint.c). Ids not in the index are skipped; on a
 * backend without hints it does nothing, lookups included. Best effort:
 * a failed hint is harmless, the read still happens. Thread-safe. */
int lb_repo_hint_blobs(LbRepo *r, const LbId *ids, size_t n);
/* Loads a tree blob. */
int lb_repo_load_tree(LbRepo *r, const LbId *id, LbTree **ret) _warn_unused_;

/* Reads a pack's TOC with two range reads (footer, then TOC); entries checked. */
int lb_repo_read_pack_toc(LbRepo *r, const char *name, uint64_t size, LbPackEntry **ret, size_t *ret_n) _warn_unused_;
/* Stores bytes under the BLAKE2b-256 of themselves (packs, index files,
 * snapshots); *ret_id (may be NULL) gets the name. */
int lb_repo_put_object(LbRepo *r, LbObjType t, const void *p, size_t n, LbId *ret_id) _warn_unused_;
/* The same for an object given in pieces (the concatenation is stored). */
int lb_repo_put_object_iov(LbRepo *r, LbObjType t, const struct iovec *iov, size_t n, LbId *ret_id) _warn_unused_;
/* Reads index/<id>: its name checked against its hash (-EBADMSG), then
 * decoded (lb_indexfile_decode). */
int lb_repo_read_index_file(LbRepo *r, const LbId *id, LbIndexPack **ret, size_t *ret_n) _warn_unused_;
/* Seals an index file describing packs and stores it; *ret_id gets its name. */
int lb_repo_write_index_file(LbRepo *r, const LbIndexPack *packs, size_t n, LbId *ret_id) _warn_unused_;

/* Calls fn for every pack known to the index. */
typedef int (*LbPackFn)(const LbId *pack, uint64_t size, void *userdata);
int lb_repo_index_packs(LbRepo *r, LbPackFn fn, void *userdata) _warn_unused_;
/* Chunk count and stored bytes in the index. */
int lb_repo_index_totals(LbRepo *r, uint64_t *ret_blobs, uint64_t *ret_stored) _warn_unused_;

/* ---- writing blobs ----
 * A writer deduplicates against the index and the blobs it has written
 * itself, encodes new blobs and fills packs. lb_writer_add is thread-safe.
 * Order (docs/design.md "Write order"): pack durable -> index file ->
 * local index -> (caller) snapshot. */
typedef struct LbWriter LbWriter;
typedef struct LbWriterStats {
        uint64_t blobs;
        uint64_t blobs_new;
        uint64_t bytes_raw;         /* raw bytes of all blobs added */
        uint64_t bytes_new;         /* raw bytes of new blobs */
        uint64_t bytes_stored;      /* stored bytes of new blobs */
        uint64_t data_new;          /* new data chunks (blobs_new less trees and chunk lists) */
        uint64_t data_bytes_new;    /* their raw bytes */
        uint64_t packs;
        uint64_t deltas;            /* new data chunks stored against a base */
} LbWriterStats;
int lb_writer_new(LbRepo *r, LbWriter **ret) _warn_unused_;
/* Adds a blob; *ret_id gets its id. If the id is already known, only counts it. */
int lb_writer_add(LbWriter *w, uint8_t type, const void *p, size_t n, LbId *ret_id) _warn_unused_;
/* Same, with the id already computed by the caller (saves a hash). */
int lb_writer_add_with_id(LbWriter *w, uint8_t type, const LbId *id, const void *p, size_t n) _warn_unused_;
/* Adds a data chunk with its id; if new, it may be stored as a delta
 * against like, a chunk of similar content already stored (or like's own
 * base, if like is a delta; docs/design.md "Deltas"). like NULL: as
 * lb_writer_add_with_id. */
int lb_writer_add_like(LbWriter *w, const LbId *id, const void *p, size_t n, const LbId *like) _warn_unused_;
/* Writes out the open packs and an index file covering everything written. */
int lb_writer_flush(LbWriter *w) _warn_unused_;
void lb_writer_stats(LbWriter *w, LbWriterStats *ret);
/* Sets a file node's size and content from its data chunks in order:
 * inline up to LB_INLINE_CHUNKS_MAX chunks, else through chunk-list blobs
 * (stored with w). Takes ownership of refs on success. */
int lb_writer_set_content(LbWriter *w, LbNode *node, LbContentRef *refs, size_t n) _warn_unused_;
LbWriter *lb_writer_free(LbWriter *w);   /* does not flush; NULL ok */

/* ---- snapshots ---- */
/* Seals and stores s (s->id ignored); *ret_id gets the new id. */
int lb_repo_snapshot_save(LbRepo *r, const LbSnapshot *s, LbId *ret_id) _warn_unused_;
int lb_repo_snapshot_load(LbRepo *r, const LbId *id, LbSnapshot **ret) _warn_unused_;
/* All readable snapshots, sorted by time (oldest first). A damaged snapshot
 * file is left out (lb_check_run reports it), so one bad file does not
 * make the others unusable. */
int lb_repo_snapshot_list(LbRepo *r, LbSnapshot ***ret, size_t *ret_n) _warn_unused_;
void lb_snapshots_free(LbSnapshot **s, size_t n);
/* "latest" or a unique hex prefix of an id: -ENOENT none, -ENOTUNIQ ambiguous. */
int lb_repo_snapshot_find(LbRepo *r, const char *spec, LbSnapshot **ret) _warn_unused_;
int lb_repo_snapshot_remove(LbRepo *r, const LbId *id) _warn_unused_;
/* Removes an object of type t without waiting for the removal to be
 * durable (where the backend can tell the two apart); after many,
 * lb_repo_sync_removals(t) makes them all durable at once. */
int lb_repo_remove_nosync(LbRepo *r, LbObjType t, const LbId *id) _warn_unused_;
int lb_repo_sync_removals(LbRepo *r, LbObjType t) _warn_unused_;
