/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Storage backends: a versioned struct of function pointers that each
 * implementation embeds as its first member (as libgit2's odb backends).
 * A backend stores named objects in a few namespaces and knows nothing of
 * their contents. Every put is atomic (a reader never sees a partial
 * object) and durable when it returns.
 *
 * Backends: a local directory (backend_dir.c), S3 (backend_s3.c), WebDAV
 * and rclone (backend_webdav.c). Remote ones lay objects out under the same
 * names as the directory backend (docs/design.md "Repository layout"), so
 * a byte copy of a repository directory is a valid remote and back.
 *
 * Every function may be called from several threads at once.
 *
 * Errors of remote backends (see store/http.h for the whole mapping):
 *   -EACCES         credentials refused
 *   -ENXIO          the bucket or base folder does not exist
 *   -ENOKEY         no credentials configured (S3)
 *   -ENOPKG         a helper program is missing (rclone)
 *   -EHOSTUNREACH, -ECONNREFUSED, -ETIMEDOUT, -ECONNRESET, -EIO (server
 *                   errors after retries), -EPROTO (TLS or protocol)
 */

#include "store/util.h"

struct iovec;

typedef enum LbObjType {
        LB_OBJ_CONFIG,    /* single object "config" */
        LB_OBJ_KEY,       /* keys/<name> */
        LB_OBJ_PACK,      /* packs/<first 2 chars>/<name> */
        LB_OBJ_INDEX,     /* index/<name> */
        LB_OBJ_SNAPSHOT,  /* snapshots/<name> */
        LB_OBJ_LOCK,      /* locks/<name> */
        LB_OBJ_EVENT,     /* events/<name> */
        _LB_OBJ_MAX,
} LbObjType;

#define LB_BACKEND_VERSION 1

/* A byte range of an object. */
typedef struct LbRange {
        uint64_t off;
        uint64_t len;
} LbRange;

typedef struct LbBackend LbBackend;
/* Called for each object; a negative return stops the listing and is returned. */
typedef int (*LbListFn)(const char *name, uint64_t size, void *userdata);

struct LbBackend {
        unsigned version;
        const char *kind;         /* "dir" */
        char *location;           /* as given by the user; owned */

        /* Creates the repository's directories/namespaces; -ENOTEMPTY if it
         * already holds anything. */
        int (*create)(LbBackend *b);
        /* 0 if a repository exists here (has a config), -ENOENT if not. */
        int (*exists)(LbBackend *b);
        /* Atomically stores an object, replacing any existing one. */
        int (*put)(LbBackend *b, LbObjType t, const char *name, const void *p, size_t n);
        /* Reads len bytes at off (len == SIZE_MAX: to the end) into out
         * (replacing its contents). -ENOENT if missing; -EBADMSG if the
         * object is shorter than off + len. */
        int (*get)(LbBackend *b, LbObjType t, const char *name, uint64_t off, size_t len, LbBuf *out);
        int (*stat)(LbBackend *b, LbObjType t, const char *name, uint64_t *ret_size);
        /* Lists a namespace in no particular order. */
        int (*list)(LbBackend *b, LbObjType t, LbListFn fn, void *userdata);
        /* -ENOENT if missing (S3 cannot tell: there it returns 0). */
        int (*remove)(LbBackend *b, LbObjType t, const char *name);
        /* A local directory for derived state (LMDB index) if the backend
         * is local, else NULL; borrowed, valid for the backend's life. */
        const char *(*local_dir)(LbBackend *b);
        void (*free)(LbBackend *b);
        /* Optional (NULL when the backend has none): removes what crashed
         * puts left in the pack, index and snapshot namespaces. Only safe
         * under the exclusive lock (prune). */
        int (*remove_temporaries)(LbBackend *b, unsigned *ret_removed);
        /* Optional (NULL when remove is durable by itself, as on remotes):
         * removes an object without waiting for the removal to be durable;
         * sync then makes every such removal in namespace t durable. Many
         * removals (forget, prune) cost one directory sync instead of one
         * each. */
        int (*remove_nosync)(LbBackend *b, LbObjType t, const char *name);
        int (*sync)(LbBackend *b, LbObjType t);
        /* Optional: put of an object given in pieces (its bytes are their
         * concatenation), so a caller need not copy them together. */
        int (*put_iov)(LbBackend *b, LbObjType t, const char *name, const struct iovec *iov, size_t n);
        /* Optional (local backends): maps a whole object read-only, for a
         * reader that would otherwise copy all of it to use a part; *ret
         * stays valid until unmap, even if the object is removed meanwhile.
         * Errors as get. */
        int (*map)(LbBackend *b, LbObjType t, const char *name, const uint8_t **ret, size_t *ret_len);
        void (*unmap)(LbBackend *b, const uint8_t *p, size_t len);
        /* Optional (NULL where it would not help, as on remotes): the
         * caller is about to read these byte ranges of an object (several
         * gets), so a local backend may start reading them into the page
         * cache now, in parallel, and return. Only the ranges (merged
         * when they lie within a page of each other) are read, never the
         * rest of the object. v is reordered and rewritten. Best effort:
         * ranges past the end are ignored, and errors (-ENOENT...) only
         * say the hint was not given; a get still reads everything. */
        int (*hint)(LbBackend *b, LbObjType t, const char *name, LbRange *v, size_t n);
};

/* Sorts v by offset and merges ranges that overlap or lie at most gap
 * bytes apart (the merged range covers the gap); empty ranges are
 * dropped. Returns the number of ranges left at the start of v. */
size_t lb_ranges_coalesce(LbRange *v, size_t n, uint64_t gap);

/* Opens a backend for a location string. Plain paths (and "dir:PATH")
 * open the directory backend. -EPROTONOSUPPORT for unknown schemes. */
int lb_backend_open(const char *location, LbBackend **ret) _warn_unused_;
LbBackend *lb_backend_free(LbBackend *b);  /* NULL ok; returns NULL */

int lb_backend_dir_open(const char *path, LbBackend **ret) _warn_unused_;
/* Remote backends take a parsed location (store/location.h). */
typedef struct LbLocation LbLocation;
int lb_backend_s3_open(const LbLocation *loc, const char *text, LbBackend **ret) _warn_unused_;
int lb_backend_webdav_open(const LbLocation *loc, const char *text, LbBackend **ret) _warn_unused_;
int lb_backend_rclone_open(const LbLocation *loc, const char *text, LbBackend **ret) _warn_unused_;

const char *lb_obj_type_dir(LbObjType t);
/* True for names the backends accept: 1-128 of [0-9a-z_-]. */
bool lb_obj_name_ok(const char *name);
/* The object's path relative to the repository root: "config",
 * "keys/NAME", "packs/NA/NAME", ...; NULL on allocation failure. */
char *lb_obj_path(LbObjType t, const char *name);
/* Whether rel (a path relative to the repository root, as lb_obj_path
 * makes) is an object of type t; *ret_name points into rel. */
bool lb_obj_path_parse(LbObjType t, const char *rel, const char **ret_name);
