/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Storage backends: a versioned struct of function pointers that each
 * implementation embeds as its first member (as libgit2's odb backends).
 * A backend stores named objects in a few namespaces and knows nothing of
 * their contents. Every put is atomic (a reader never sees a partial
 * object) and durable when it returns.
 *
 * Only the local directory backend exists in this version; S3, WebDAV and
 * rclone come behind the same interface.
 */

#include "store/util.h"

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
        /* -ENOENT if missing. */
        int (*remove)(LbBackend *b, LbObjType t, const char *name);
        /* A local directory for derived state (LMDB index) if the backend
         * is local, else NULL; borrowed, valid for the backend's life. */
        const char *(*local_dir)(LbBackend *b);
        void (*free)(LbBackend *b);
};

/* Opens a backend for a location string. Plain paths (and "dir:PATH")
 * open the directory backend. -EPROTONOSUPPORT for unknown schemes. */
int lb_backend_open(const char *location, LbBackend **ret) _warn_unused_;
LbBackend *lb_backend_free(LbBackend *b);  /* NULL ok; returns NULL */

int lb_backend_dir_open(const char *path, LbBackend **ret) _warn_unused_;

const char *lb_obj_type_dir(LbObjType t);
