/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A consistent logical backup of one PostgreSQL database into a snapshot
 * (`longbox backup --db`), in the layout of docs/design.md "PostgreSQL
 * snapshots".
 *
 * A leader connection opens a REPEATABLE READ, READ ONLY transaction,
 * exports its snapshot and takes ACCESS SHARE locks on every table it
 * dumps; it keeps both until the very end, so every worker connection and
 * every pg_dump run imports the same snapshot. N worker connections take
 * tables (largest first) and then large objects from a shared queue and
 * stream them with COPY / lo_read straight into the builder, one file per
 * table, each on its own thread. Meanwhile one thread runs pg_dump
 * (pre-data, post-data, the database-level part) and pg_dumpall
 * (globals), and the leader writes the sequence values and the server's
 * config files.
 *
 * Nothing is committed unless every step succeeded: on any failure the
 * builder is dropped (what was stored stays as unreferenced data, which is
 * consistent) and no snapshot is recorded.
 *
 * Passwords: a password in the conninfo reaches the worker connections
 * (in memory) and pg_dump/pg_dumpall through PGPASSWORD in their
 * environment, never their command line; it is never part of a message,
 * a progress report or the snapshot (which records the database name
 * only). PGPASSFILE, PGSERVICE and the other PG* variables work as usual.
 */

#include <libpq-fe.h>
#include <stdatomic.h>

#include "store/repo.h"

/* Progress of one item: a table ("public.orders"), a large object
 * ("large object 16450"), a schema step ("pre-data", "post-data",
 * "database", "globals"), "sequences" or "config". */
typedef struct LbPgProgress {
        const char *item;         /* borrowed, valid during the call */
        uint64_t bytes;           /* of this item so far */
        bool done;                /* the item is complete */
        uint64_t items_done;      /* tables and large objects finished */
        uint64_t items_total;
        /* An estimate of all items' bytes, for a percentage and an ETA:
         * the size of the parent snapshot (the latest earlier one of this
         * database from this host: a nightly changes little), else the
         * tables' and large objects' size on disk (pg_table_size); 0 when
         * unknown. The bytes may end above it. */
        uint64_t bytes_total;
} LbPgProgress;

/* A file of the caller's for /config/, next to the server's config files
 * (longbox's own config file, secrets removed). */
typedef struct LbPgConfigFile {
        const char *name;              /* a file name: no '/', not "." or ".." */
        const void *data;
        size_t len;
        uint32_t mode;                 /* permission bits */
        uint32_t uid, gid;
        int64_t mtime_ns;
} LbPgConfigFile;

typedef struct LbPgBackupOptions {
        const char *conninfo;          /* libpq connection string, URI or plain database name */
        unsigned jobs;                 /* worker connections; 0: 2 */
        bool physical_order;           /* COPY in physical order instead of by primary key */
        const char *const *tags;
        size_t n_tags;
        const char *hostname;          /* NULL: gethostname() */
        int64_t time_ns;               /* 0: when the database snapshot was taken */
        bool has_tz_offset;
        int32_t tz_offset;             /* seconds east of UTC; default: local zone at time_ns */
        /* Stored as /config/<name> whether or not the server's files are
         * (borrowed for the call); a name the server's files already
         * took is left out with a warning. */
        const LbPgConfigFile *config_files;
        size_t n_config_files;
        /* Something left out that is not a failure (config files not
         * readable, globals without role passwords, ...). msg is borrowed
         * for the call. */
        void (*warn)(void *userdata, const char *msg);
        /* Called from any of the backup's threads, never two at a time. */
        void (*progress)(void *userdata, const LbPgProgress *p);
        void *userdata;
} LbPgBackupOptions;

typedef struct LbPgBackupResult {
        LbId snapshot_id;
        LbSnapshotStats stats;
        /* Files compared by content (XXH3 and size) with the parent: the
         * latest earlier snapshot of the same database from the same host. */
        uint64_t files_new, files_changed, files_unmodified;
        uint64_t tables;               /* data files (leaf tables) */
        uint64_t rows;
        uint64_t sequences;
        uint64_t large_objects;
        int server_version;            /* server_version_num, e.g. 150004 */
        char database[64];             /* the database's name (NAMEDATALEN) */
} LbPgBackupResult;

/* Backs up the database o->conninfo names into a new snapshot (source
 * "postgresql"). Returns 0 and fills *ret, or -errno with *ret_error (an
 * allocated sentence naming the step or table that failed, e.g. "COPY of
 * public.orders failed: ERROR: permission denied for table orders"); then
 * no snapshot was recorded. Notable errors: -ECONNREFUSED the server
 * cannot be reached, -EACCES authentication failed, -ENOENT no such
 * database or pg_dump not installed, -EPERM permission denied,
 * -ECONNRESET the connection was lost, -EIO pg_dump failed or any other
 * server error, -ENOTSUP server older than PostgreSQL 10. */
int lb_pg_backup(LbRepo *r, const LbPgBackupOptions *o, LbPgBackupResult *ret, char **ret_error) _warn_unused_;

/* The database a conninfo names, for messages before a connection exists:
 * its dbname, else PGDATABASE, else the user name libpq would use.
 * -ENOENT when none can be told (caller frees *ret). */
int lb_pg_conninfo_dbname(const char *conninfo, char **ret) _warn_unused_;

/* "schema.table" as a file name: '%' -> "%25", '/' -> "%2F"; a name that
 * is exactly "." or ".." becomes "%2E" / "%2E%2E". NULL on ENOMEM. */
char *lb_pg_file_name(const char *schema, const char *table);

/* ---- client programs (store/pg/dump-exec.c) ---- */

/* How pg_dump and pg_dumpall are told where to connect: the user's
 * conninfo with host, port and dbname pinned to the server the leader is
 * connected to, without the password (a command line is visible to every
 * local user in ps); the password goes into the child's PGPASSWORD. */
typedef struct LbPgChildConn {
        char *conninfo;                /* key='value' ..., no password */
        char *password;                /* NULL when the conninfo had none */
} LbPgChildConn;

int lb_pg_child_conn(PGconn *c, const char *conninfo, const char *dbname, LbPgChildConn *ret) _warn_unused_;
/* Zeroes and frees the password. */
void lb_pg_child_conn_clear(LbPgChildConn *cc);

/* Called with each piece of a child's standard output; a negative return
 * stops (and kills) the child and is returned by lb_pg_run. */
typedef int (*LbPgOutputFn)(const void *p, size_t n, void *userdata);

/* Runs argv (argv[0] an absolute path) with stdin from /dev/null,
 * PGPASSWORD=password added to the environment when password is not
 * NULL, stdout to fn and stderr kept (the last 16 KiB). While it runs,
 * *cancel (may be NULL) is polled a few times a second; when it becomes
 * true the child is killed and -ECANCELED returned. Returns 0 when the
 * child ran to its end: *ret_status is its waitpid() status and
 * *ret_stderr (may be NULL; caller frees) what it wrote on stderr. */
int lb_pg_run(const char *const *argv, const char *password, LbPgOutputFn fn, void *userdata,
              const atomic_bool *cancel, int *ret_status, char **ret_stderr) _warn_unused_;

/* Extracts the database-level part from the plain output of `pg_dump
 * --create --schema-only`: the entries of type DATABASE and DATABASE
 * PROPERTIES and the COMMENT, SECURITY LABEL and ACL entries of the
 * database itself, in pg_dump's order, after its SET preamble; psql
 * meta-commands (\connect, \restrict, \unrestrict) are left out, so the
 * result is plain SQL to run on any database of the cluster. */
int lb_pg_database_sql(const char *dump, size_t n, LbBuf *out) _warn_unused_;
