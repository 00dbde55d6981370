/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Trees: one blob per directory, listing its entries sorted by name
 * (bytewise). Files reference their content either inline (a list of
 * data chunk refs) or, for long files, through chunk-list blobs. Encoding
 * is deterministic, so an unchanged directory encodes to the same bytes
 * and costs nothing in the next snapshot. Format: docs/design.md "Trees".
 *
 * Parsers take untrusted input: every count and length is checked against
 * the limits in store/format.h.
 */

#include "store/format.h"
#include "store/tlv.h"
#include "store/util.h"

typedef enum LbNodeType {
        LB_NODE_FILE = 1,
        LB_NODE_DIR = 2,
        LB_NODE_SYMLINK = 3,
        LB_NODE_FIFO = 4,
        LB_NODE_CHARDEV = 5,
        LB_NODE_BLOCKDEV = 6,
        _LB_NODE_MAX,
} LbNodeType;

/* Tree entry TLV tags (docs/design.md "Trees"). */
enum {
        LB_TREE_TAG_NAME = 1 | 0x8000,     /* bytes, 1..255, no '/' or NUL */
        LB_TREE_TAG_TYPE = 2 | 0x8000,     /* u8 LbNodeType */
        LB_TREE_TAG_MODE = 3,              /* u32, permission bits incl. suid/sgid/sticky */
        LB_TREE_TAG_UID = 4,               /* u32 */
        LB_TREE_TAG_GID = 5,               /* u32 */
        LB_TREE_TAG_USER = 6,              /* string */
        LB_TREE_TAG_GROUP = 7,             /* string */
        LB_TREE_TAG_SIZE = 8,              /* u64, logical size in bytes */
        LB_TREE_TAG_MTIME = 9,             /* u64 (two's complement i64), ns since epoch */
        LB_TREE_TAG_LINK = 10 | 0x8000,    /* bytes: symlink target */
        LB_TREE_TAG_SUBTREE = 11 | 0x8000, /* id[32] of the directory's tree blob */
        LB_TREE_TAG_CHUNKS = 12 | 0x8000,  /* n * (id[32] || size u32): data chunks */
        LB_TREE_TAG_LISTS = 13 | 0x8000,   /* n * (id[32] || size u64): chunk-list blobs */
        LB_TREE_TAG_RDEV = 14,             /* u64 */
        LB_TREE_TAG_XXH3 = 15,             /* u64: XXH3-64 of the content */
        LB_TREE_TAG_META = 16,             /* key_len u16 || key || value: free-form metadata */
};

/* A reference to content: a data chunk (in a chunk list or inline) or a
 * chunk-list blob (in an entry's LISTS), with the bytes it covers. */
typedef struct LbContentRef {
        LbId id;
        uint64_t size;
} LbContentRef;

typedef struct LbNode {
        char *name;              /* NUL-terminated; never contains '/' */
        LbNodeType type;
        uint32_t mode;
        uint32_t uid, gid;
        char *user, *group;      /* may be NULL */
        uint64_t size;
        int64_t mtime_ns;
        uint64_t rdev;
        char *link;              /* symlink target, NULL otherwise */
        bool has_subtree;
        LbId subtree;            /* directories */
        bool indirect;           /* content lists chunk-list blobs, not chunks */
        LbContentRef *content;   /* files: chunks (indirect = false) or lists */
        size_t n_content;
        bool has_xxh3;
        uint64_t xxh3;
        LbMeta *meta;
        size_t n_meta;
} LbNode;

typedef struct LbTree {
        LbNode *nodes;
        size_t n;
        size_t cap;
} LbTree;

void lb_node_clear(LbNode *n);
void lb_tree_free(LbTree *t);          /* frees the nodes and the tree; NULL ok */
static inline void lb_tree_freep(LbTree **t) {
        lb_tree_free(*t);
}
#define _cleanup_tree_ _cleanup_(lb_tree_freep)

/* Appends a node, taking ownership of its pointers (the caller's copy is zeroed). */
int lb_tree_add(LbTree *t, LbNode *n) _warn_unused_;
/* True for a valid entry name: 1..255 bytes, no '/', not "." or "..". */
bool lb_tree_name_valid(const char *name);
/* Sorts nodes by name bytewise; -EEXIST on a duplicate name. */
int lb_tree_sort(LbTree *t) _warn_unused_;

/* Encodes a sorted tree. -EINVAL if unsorted, a name is invalid or a node lacks required fields. */
int lb_tree_encode(const LbTree *t, LbBuf *out) _warn_unused_;
/* Decodes untrusted bytes; -EBADMSG on any malformation (including unsorted
 * or duplicate names), -EPROTONOSUPPORT on an unknown critical tag. */
int lb_tree_decode(const uint8_t *p, size_t n, LbTree **ret) _warn_unused_;
/* True when two nodes differ in type, mode, owner, mtime, or in what they
 * hold (file content, symlink target, device number). A directory's
 * subtree is not compared. */
bool lb_node_changed(const LbNode *a, const LbNode *b);
/* Returns the node named name, or NULL. Binary search; borrowed from t. */
const LbNode *lb_tree_find(const LbTree *t, const char *name);

/* Chunk-list blobs: magic "LBCL" || count u32 || count * (id[32] || size u32). */
int lb_chunklist_encode(const LbContentRef *refs, size_t n, LbBuf *out) _warn_unused_;
int lb_chunklist_decode(const uint8_t *p, size_t n, LbContentRef **ret, size_t *ret_n) _warn_unused_;
/* Content-defined split rule of a file's chunk list into chunk-list blobs:
 * true when a list blob ends after this chunk (see docs/design.md).
 * entries_in_current_list counts the entries of the current list including
 * this chunk. */
bool lb_chunklist_is_boundary(const LbId *chunk_id, size_t entries_in_current_list);
