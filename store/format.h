/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The longbox on-disk format, version 1: every magic number, size and
 * limit in one place. docs/design.md is the readable specification of the
 * same bytes; change both together.
 *
 * All integers are little-endian. "id" is 32 bytes.
 *
 * Repository layout (object names are lowercase hex):
 *
 *   config                     LB_CONFIG  (plain header + keyed MAC)
 *   keys/<16 hex>              LB_KEYSLOT (Argon2id-wrapped master secret)
 *   packs/<2 hex>/<64 hex>     pack, named BLAKE2b-256(pack bytes)
 *   index/<64 hex>             index file, named BLAKE2b-256(file bytes)
 *   snapshots/<64 hex>         snapshot, named BLAKE2b-256(file bytes)
 *   locks/<16 hex>             lock (sealed)
 *
 * Sealed object ("seal"): nonce[24] || XChaCha20-Poly1305(key, ad, plaintext)
 *   (ciphertext includes the 16-byte tag).
 *
 * Pack:
 *   +--------+--------+-----+----------+------------------+
 *   | blob 0 | blob 1 | ... | sealed   | footer (16 B)    |
 *   | sealed | sealed |     | TOC      | toc_len u32      |
 *   |        |        |     |          | version u32      |
 *   |        |        |     |          | magic "LBPACK\0\1"|
 *   +--------+--------+-----+----------+------------------+
 *   Blobs are written in a random order. A blob is
 *   seal(data_key, ad = LB_BLOB_AD, payload || zero padding)
 *   with payload = raw (codec 0) or zstd(raw) (codec 1), and padding to
 *   lb_pad_length(payload_len).
 */

#include <stdint.h>

#define LB_FORMAT_VERSION 1u

#define LB_ID_SIZE 32
#define LB_KEY_SIZE 32
#define LB_NONCE_SIZE 24
#define LB_TAG_SIZE 16
#define LB_SEAL_OVERHEAD (LB_NONCE_SIZE + LB_TAG_SIZE)

typedef struct LbId {
        uint8_t b[LB_ID_SIZE];
} LbId;

/* ---- config ------------------------------------------------------------
 * magic[8] "LBCONFIG" || version u32 || mandatory_features u32 ||
 * optional_features u32 || repo_id[16] || chunk_min u32 || chunk_avg u32 ||
 * chunk_max u32 || zstd_level i32 || pack_target u32 || created_ns i64 ||
 * mac[32]  (keyed BLAKE2b-256 with the config key over all previous bytes)
 */
#define LB_CONFIG_MAGIC "LBCONFIG"
#define LB_CONFIG_SIZE 116
#define LB_CONFIG_MAC_OFFSET 84
/* No mandatory feature is defined in version 1: any set bit is refused. */
#define LB_FEATURES_MANDATORY_KNOWN 0u

/* ---- key slot ----------------------------------------------------------
 * magic[8] "LBKEYSL1" || kdf u32 (1 = argon2id13) || reserved u32 ||
 * opslimit u64 || memlimit u64 || salt[16] || created_ns i64 ||
 * repo_id[16] || label_len u16 || label[label_len] ||
 * nonce[24] || XChaCha20-Poly1305(kek, ad = all previous bytes, master[32])
 */
#define LB_KEYSLOT_MAGIC "LBKEYSL1"
#define LB_KDF_ARGON2ID13 1u
#define LB_KEYSLOT_LABEL_MAX 256
#define LB_KEYSLOT_MAX_SIZE 1024
/* Hard limits on KDF parameters read from disk (a hostile slot must not
 * make us allocate 64 GiB). */
#define LB_KDF_OPSLIMIT_MAX 64ull
#define LB_KDF_MEMLIMIT_MAX (4ull << 30)

#define LB_REPO_ID_SIZE 16

/* ---- blobs -------------------------------------------------------------- */
enum {
        LB_BLOB_DATA = 1,      /* a chunk of file or stream content */
        LB_BLOB_TREE = 2,      /* a serialized directory (LbTree) */
        LB_BLOB_CHUNKLIST = 3, /* a part of a long file's chunk list */
};
enum {
        LB_CODEC_RAW = 0,
        LB_CODEC_ZSTD = 1,
        LB_CODEC_DELTA = 2,    /* zstd against a base chunk's plaintext (a raw-content prefix) */
};
/* Associated data of a blob:
 * "LBBLOB1\0" || type u8 || codec u8 || id[32] || payload_len u32 || raw_len u32 */
#define LB_BLOB_AD_SIZE (8 + 1 + 1 + 32 + 4 + 4)
/* ... || base_id[32] for codec LB_CODEC_DELTA */
#define LB_BLOB_AD_MAX_SIZE (LB_BLOB_AD_SIZE + 32)
/* The largest base a delta may name (a data chunk: chunk_max's limit). */
#define LB_DELTA_BASE_MAX (16u << 20)
/* Upper bound of any blob's raw length: data chunks are at most
 * chunk_max (<= LB_CHUNK_MAX_LIMIT), trees and chunk lists at most this. */
#define LB_BLOB_RAW_MAX (64u << 20)

/* ---- pack --------------------------------------------------------------- */
#define LB_PACK_MAGIC "LBPACK\0\1"
#define LB_PACK_FOOTER_SIZE 16
/* TOC plaintext: magic[4] "LBTC" || count u32 || count * record, where a
 * record is an entry, followed by the base id[32] when its codec is
 * LB_CODEC_DELTA */
#define LB_TOC_MAGIC "LBTC"
/* TOC / index entry, 56 bytes:
 * id[32] || offset u64 || stored_len u32 || payload_len u32 || raw_len u32 ||
 * type u8 || codec u8 || reserved u16 (0) */
#define LB_ENTRY_SIZE 56
#define LB_RECORD_MAX_SIZE (LB_ENTRY_SIZE + 32)
#define LB_TOC_AD "LBTOC1"
#define LB_PACK_MAX_ENTRIES (1u << 20)
#define LB_PACK_MAX_SIZE (1ull << 32)
#define LB_PACK_TARGET_DEFAULT (16u << 20)

/* ---- index file ----------------------------------------------------------
 * seal(meta_key, ad = "LBIDX1", plaintext)
 * plaintext: magic[4] "LBIX" || npacks u32 ||
 *   npacks * (pack_id[32] || pack_size u64 || count u32 || count * entry)
 */
#define LB_INDEX_MAGIC "LBIX"
#define LB_INDEX_AD "LBIDX1"
#define LB_INDEX_MAX_SIZE (256u << 20)

/* ---- snapshot ------------------------------------------------------------
 * seal(meta_key, ad = "LBSNAP1", plaintext), plaintext: magic[4] "LBSN" ||
 * TLV records (see store/tlv.h and docs/design.md).
 */
#define LB_SNAPSHOT_MAGIC "LBSN"
#define LB_SNAPSHOT_AD "LBSNAP1"
#define LB_SNAPSHOT_MAX_SIZE (16u << 20)

/* ---- tree / chunk list blobs --------------------------------------------
 * tree: magic[4] "LBTR" || count u32 || count * (len u32 || TLV records)
 * chunk list: magic[4] "LBCL" || count u32 || count * (id[32] || size u32)
 */
#define LB_TREE_MAGIC "LBTR"
#define LB_CHUNKLIST_MAGIC "LBCL"
#define LB_TREE_MAX_ENTRIES (1u << 22)
#define LB_CHUNKLIST_MAX_ENTRIES (1u << 16)
/* A file entry lists its chunks inline up to this count; beyond it the
 * entry lists chunk-list blobs instead (content-defined split, see design). */
#define LB_INLINE_CHUNKS_MAX 64

/* ---- lock ----------------------------------------------------------------
 * seal(meta_key, ad = "LBLOCK1", plaintext), plaintext:
 * magic[4] "LBLK" || exclusive u8 || pid u32 || start_time u64 ||
 * time_ns i64 || hostname_len u16 || hostname
 */
#define LB_LOCK_MAGIC "LBLK"
#define LB_LOCK_AD "LBLOCK1"
#define LB_LOCK_MAX_SIZE 4096

/* ---- chunker limits ------------------------------------------------------ */
#define LB_CHUNK_MIN_LIMIT 64u
#define LB_CHUNK_MAX_LIMIT (16u << 20)
