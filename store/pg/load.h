/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Restoring a PostgreSQL snapshot (docs/design.md "PostgreSQL snapshots"):
 * into a live database through libpq and psql (lb_pg_restore), or as one
 * plain SQL script (lb_pg_restore_sql). Both read only the snapshot layout
 * and its metadata, through lb_pg_layout_load.
 *
 * Library code: nothing is printed. Every function that can fail for a
 * reason the user must see returns -errno and a sentence in *ret_error
 * (caller frees; set only on failure, may stay NULL for -ENOMEM) that
 * names the step or the table, e.g. "COPY into public.orders failed:
 * ERROR: ...". A password given in a conninfo is never put in a message,
 * on a command line or in the environment of anything but psql
 * (PGPASSWORD, which only the same user can read).
 *
 * Data integrity: every byte streamed comes verified from the repository
 * (store/walk.h); on top of that the row count (newlines of the COPY
 * text) and the XXH3-64 of each table's stream are recomputed while it is
 * sent and compared with the snapshot's pg.rows and the file's XXH3. A
 * mismatch aborts that table's COPY (its rows are not committed) and
 * fails the restore with -EBADMSG naming the table.
 */

#include <stdint.h>

#include "store/repo.h"
#include "store/walk.h"

/* ---- the layout of a PostgreSQL snapshot ---- */

/* Schema files are read into memory; larger ones are refused (-EFBIG). */
#define LB_PG_SCHEMA_FILE_MAX (1024u * 1024u * 1024u)

typedef struct LbPgTableFile {
        char *schema, *table;    /* pg.schema, pg.table: unquoted */
        char *columns;           /* pg.columns: quoted list for COPY, may be "" */
        uint64_t rows;           /* pg.rows */
        LbNode node;             /* the data/ file: size, content, XXH3 */
} LbPgTableFile;

typedef struct LbPgLargeObject {
        uint32_t oid;            /* pg.oid (else the file name) */
        LbNode node;
} LbPgLargeObject;

typedef struct LbPgLayout {
        char *database;          /* pg.database, else the directory's name */
        char *dir;               /* the directory in the snapshot, "/<escaped dbname>" */
        /* The schema files; has_* false when the snapshot lacks one.
         * pre-data.sql and post-data.sql are required. */
        LbNode pre_data, post_data;
        bool has_sequences, has_database_sql, has_globals;
        LbNode sequences, database_sql, globals;
        LbPgTableFile *tables;   /* sorted by (schema, table), bytewise */
        size_t n_tables;
        LbPgLargeObject *los;    /* sorted by oid */
        size_t n_los;
} LbPgLayout;

/* Reads the layout of s. -EMEDIUMTYPE when s's source is not
 * "postgresql"; -EBADMSG when the layout is malformed (a data file
 * without pg.schema, pg.table, pg.rows, pg.columns or XXH3, an invalid
 * column list, two database directories and no pg.database, ...). */
int lb_pg_layout_load(LbRepo *r, const LbSnapshot *s, LbPgLayout **ret, char **ret_error) _warn_unused_;
LbPgLayout *lb_pg_layout_free(LbPgLayout *l);   /* NULL ok; returns NULL */
/* A layout file's whole content, at most max bytes (-EFBIG beyond). */
int lb_pg_layout_read(LbRepo *r, const LbNode *file, size_t max, LbBuf *ret) _warn_unused_;
/* The data file of schema.table, or NULL. Borrowed from l. */
const LbPgTableFile *lb_pg_layout_find_table(const LbPgLayout *l, const char *schema, const char *table);

/* ---- restore into a database ---- */

typedef struct LbPgRestoreTable {
        const char *schema, *table;   /* unquoted; see lb_pg_restore for their lifetime */
        uint64_t rows;
        uint64_t bytes;               /* bytes of COPY text sent */
        int64_t duration_ns;
} LbPgRestoreTable;

/* Progress of a restore: its table data, then each step after it. */
typedef struct LbPgRestoreProgress {
        const char *item;             /* "schema.table" being loaded (borrowed for the call) */
        uint64_t bytes_done;          /* COPY data sent so far, all tables */
        uint64_t bytes_total;         /* of the tables being restored */
        uint64_t tables_done, tables_total;
        bool step;                    /* item is a step after the data (index build,
                                       * foreign key, ANALYZE) that starts now */
} LbPgRestoreProgress;

typedef struct LbPgRestoreOptions {
        /* The target: a conninfo string, a postgres:// URI or a plain
         * database name, as psql -d takes it. Its dbname is the database
         * restored into. */
        const char *conninfo;
        /* CREATE DATABASE <dbname> from the maintenance database
         * ("postgres", else "template1") of the same server, with the
         * source's encoding, locale, settings, comment and grants from
         * database.sql adapted to the new name. With clean as well, an
         * existing database of that name is dropped first (as pg_restore
         * --create --clean does). Without create the database must exist. */
        bool create;
        /* Whole database: allow a target that has user tables, and empty
         * it first: DROP SCHEMA ... CASCADE for every schema but the
         * system ones, unlink every large object, drop event triggers,
         * publications and foreign-data wrappers, then CREATE SCHEMA
         * public as initdb makes it. With tables: TRUNCATE those tables. */
        bool clean;
        /* Run globals.sql (roles, tablespaces) first, with errors (roles
         * that already exist) reported through warn, not failing. */
        bool globals;
        /* Restore only these tables' data ("schema.table", or "table" for
         * public.table; a part may be "double-quoted"), and setval their
         * owned sequences. A table missing from the target is created from
         * its pre-data blocks (table, defaults, owned sequences, comments,
         * grants, partition attach) and, after its data, its post-data
         * blocks (constraints, indexes, triggers, policies; foreign keys
         * are attempted and only warned about). A target table that has
         * rows is refused unless clean. The rows go through the target
         * table's triggers and foreign keys, as with pg_restore
         * --data-only. */
        const char *const *tables;
        size_t n_tables;
        unsigned jobs;               /* parallel COPY connections; 0 means 2 */
        /* Optional callbacks, never called concurrently. Strings are
         * borrowed for the call. */
        void (*warn)(void *userdata, const char *message);
        void (*table_done)(void *userdata, const LbPgRestoreTable *t);
        /* Progress (may be NULL): called for every chunk of table data
         * sent to the server and at the start of every step after it (with
         * step set), never concurrently; rate-limit in the callback. */
        void (*progress)(void *userdata, const LbPgRestoreProgress *p);
        void *userdata;
} LbPgRestoreOptions;

typedef struct LbPgRestoreResult {
        char *database;               /* the target's dbname */
        LbPgRestoreTable *tables;     /* in the order they finished */
        size_t n_tables;
        uint64_t rows, bytes;
        uint64_t sequences;           /* setval statements run */
        uint64_t large_objects, large_object_bytes;
        uint64_t tables_created;      /* with tables: created from pre-data */
        uint64_t warnings;
        int server_version;           /* server_version_num of the target */
        int64_t usable_ns;            /* start to the end of post-data */
        int64_t total_ns;             /* start to the end of ANALYZE */
} LbPgRestoreResult;
void lb_pg_restore_result_clear(LbPgRestoreResult *res);

/* Order: [globals] -> [create database] -> check the target is empty
 * (else --clean) -> pre-data.sql (psql, one transaction) -> on jobs
 * connections (synchronous_commit off), the schedule of
 * lb_pg_schedule_new: table data (COPY FROM STDIN, largest tables first),
 * sequences.sql, large objects, each table's indexes and index-backed
 * constraints (primary key, unique, exclusion) once its rows are in,
 * foreign keys between tables with rows once both are built, ANALYZE of
 * each table once its indexes are -> the rest of post-data.sql (foreign
 * keys not placed on the connections, index attachments, triggers, rules,
 * policies, materialized view data, comments, grants) through psql in one
 * transaction -> when post-data has no REFRESH MATERIALIZED VIEW (pg_dump
 * --schema-only leaves it out), a REFRESH of every materialized view
 * pre-data created, in its order, failures being warnings -> ANALYZE of
 * what was not analyzed yet (parallel). psql is the one of the target
 * server's major version (lb_pg_find_program): pre-data and post-data may
 * hold \restrict lines only psql understands.
 *
 * s must be a snapshot with source "postgresql". res (may be NULL) is
 * filled on success only; it owns its strings (tables[].schema/table
 * too) until lb_pg_restore_result_clear. In the table_done callback they
 * are borrowed for the call. On failure the target is left as far as the
 * restore got (a COPY that failed leaves its table empty). */
int lb_pg_restore(LbRepo *r, const LbSnapshot *s, const LbPgRestoreOptions *o, LbPgRestoreResult *res,
                  char **ret_error) _warn_unused_;

/* ---- restore as one SQL script ---- */

/* Writes one plain SQL script to fd that psql -f (or psql < file) loads
 * into an empty database: pre-data, then per table "COPY q (cols) FROM
 * stdin;", its rows and "\.", then sequences.sql, the large objects
 * (lo_create unless pre-data has it, lo_open/lowrite/lo_close in one
 * transaction, as pg_dump writes them), post-data, and the REFRESH of the
 * materialized views. The output is a function of the snapshot alone,
 * byte for byte, and its length is known before any data is read
 * (lb_pg_restore_sql_size). Rows and checksums are verified while
 * streaming: on a mismatch the output stops short and -EBADMSG is
 * returned (the script is then incomplete: the caller must say so). */
int lb_pg_restore_sql(LbRepo *r, const LbSnapshot *s, int fd, char **ret_error) _warn_unused_;
/* The exact number of bytes lb_pg_restore_sql writes; reads only the
 * layout and the (small) schema files. */
int lb_pg_restore_sql_size(LbRepo *r, const LbSnapshot *s, uint64_t *ret_size, char **ret_error) _warn_unused_;

/* The same script with random access (a mount's restore.sql): planned
 * once (the layout and the schema files are read), then any byte range is
 * served from the plan's text and the data files' chunks, without
 * generating what comes before it. The bytes are those lb_pg_restore_sql
 * writes: both use one plan. Every byte of table and large-object data
 * comes from verified chunks; the per-table row count and XXH3, which
 * need a whole stream, are only checked by lb_pg_restore_sql. */
typedef struct LbPgSqlPlan LbPgSqlPlan;
typedef struct LbChunkCache LbChunkCache;
int lb_pg_sql_plan_new(LbRepo *r, const LbSnapshot *s, LbPgSqlPlan **ret, char **ret_error) _warn_unused_;
LbPgSqlPlan *lb_pg_sql_plan_free(LbPgSqlPlan *p);   /* NULL ok */
uint64_t lb_pg_sql_plan_size(const LbPgSqlPlan *p);
/* Copies up to len bytes at off into buf (*ret_n: fewer only at the end,
 * 0 past it), reading data through cache (which must outlive p). Errors
 * and *failure as lb_file_reader_read. Thread-safe. */
int lb_pg_sql_plan_read(LbPgSqlPlan *p, LbChunkCache *cache, uint64_t off, void *buf, size_t len, size_t *ret_n,
                        LbContentFailure *failure) _warn_unused_;

/* ---- SQL text helpers (no server needed; load-sql.c) ---- */

/* One object of a pg_dump plain script: from the "--" line above its
 * "-- Name: N; Type: T; Schema: S; Owner: O" header to the next header
 * block (or the "-- PostgreSQL database dump complete" trailer).
 * Strings are allocated; offsets index the script. */
typedef struct LbPgSqlBlock {
        char *name, *type, *schema, *owner;
        char *tablespace;             /* the header's "Tablespace: X", else NULL */
        size_t offset, len;
} LbPgSqlBlock;

typedef struct LbPgSqlScript {
        size_t preamble_len;          /* bytes before the first block (SETs, \restrict) */
        size_t trailer_offset;        /* the trailer: "dump complete", \unrestrict */
        LbPgSqlBlock *blocks;
        size_t n_blocks;
} LbPgSqlScript;

/* Splits a pg_dump plain script into its object blocks. A script without
 * headers is all preamble. Never fails on odd input except -ENOMEM; the
 * script is not modified or NUL-terminated. */
int lb_pg_sql_split(const char *sql, size_t len, LbPgSqlScript *ret) _warn_unused_;
void lb_pg_sql_script_clear(LbPgSqlScript *s);

/* The relation the first statement of a post-data block acts on, as
 * pg_dump writes them: "CREATE [UNIQUE] INDEX name ON [ONLY] s.t ...",
 * "ALTER TABLE [ONLY] s.t ..."; for "... ADD CONSTRAINT c FOREIGN KEY
 * (cols) REFERENCES s2.t2(...)" also the referenced table. Names are
 * unquoted as SQL reads them and must be schema-qualified (pg_dump
 * qualifies every name). -EINVAL for any other statement. */
typedef struct LbPgBlockTarget {
        char *schema, *name;
        bool only;                    /* ON ONLY / ALTER TABLE ONLY */
        bool index;                   /* CREATE INDEX (else ALTER TABLE) */
        char *ref_schema, *ref_name;  /* a foreign key's referenced table, else NULL */
} LbPgBlockTarget;
int lb_pg_block_target(const char *sql, size_t len, LbPgBlockTarget *ret) _warn_unused_;
void lb_pg_block_target_clear(LbPgBlockTarget *t);

/* "ident" with embedded quotes doubled (always quoted, as
 * PQescapeIdentifier). NULL on ENOMEM. */
char *lb_pg_ident_quote(const char *ident);
/* "schema"."table". NULL on ENOMEM. */
char *lb_pg_ident_qualified(const char *schema, const char *name);

/* Parses a possibly qualified name as SQL reads it: parts separated by a
 * dot, each unquoted (folded to lower case) or "double-quoted" ("" for a
 * quote). One part: *ret_schema is default_schema. -EINVAL when malformed
 * or with more than two parts. */
int lb_pg_parse_qualified(const char *s, const char *default_schema, char **ret_schema, char **ret_name) _warn_unused_;

/* true when s is a list of column names for COPY: identifiers, each
 * "double-quoted" or plain (letters, digits, _ and $, not starting with a
 * digit), separated by commas and blanks; or empty. Refuses anything else
 * (a snapshot's pg.columns is spliced into SQL). */
bool lb_pg_columns_valid(const char *s);

/* Copies a database.sql statement with every "DATABASE <from>" (as in
 * CREATE/ALTER/COMMENT ON/GRANT ON/IN DATABASE) whose identifier names
 * the database from (compared as SQL does: unquoted names fold to lower
 * case) replaced by the quoted name to. String literals, quoted
 * identifiers, dollar quotes and comments are skipped, not searched.
 * *ret_count (may be NULL) gets the number of replacements. */
int lb_pg_sql_rename_database(const char *stmt, const char *from, const char *to, char **ret,
                              unsigned *ret_count) _warn_unused_;

/* Splits SQL text into statements at semicolons outside literals,
 * quoted identifiers, dollar quotes and comments; psql meta-command
 * lines (starting with a backslash) become statements of their own.
 * Each statement is allocated, without the semicolon, trimmed; empty ones
 * are dropped. */
int lb_pg_sql_statements(const char *sql, size_t len, char ***ret, size_t *ret_n) _warn_unused_;
void lb_pg_strv_free(char **v, size_t n);

/* For "SELECT pg_catalog.setval('<seq>', ...)": the sequence's schema and
 * name from the literal (default schema public). -EINVAL when stmt is not
 * a setval call. */
int lb_pg_setval_target(const char *stmt, char **ret_schema, char **ret_name) _warn_unused_;

/* ---- the schedule of a whole-database restore (load-schedule.c) ---- */

/* A whole-database restore runs as one graph of work items on jobs
 * connections, much as pg_restore --jobs does: a table's indexes and
 * index-backed constraints are built as soon as its rows are in (while
 * other tables still load), a foreign key is added once the rows of both
 * its tables are in and their indexes and constraints are built, and a
 * table is analyzed once its own indexes are. Everything else of
 * post-data (and every block that cannot be placed safely) runs
 * afterwards in pg_dump's order. */
typedef enum LbPgItemKind {
        LB_PG_ITEM_COPY,        /* a table's rows */
        LB_PG_ITEM_SEQUENCES,   /* sequences.sql */
        LB_PG_ITEM_LOS,         /* every large object */
        LB_PG_ITEM_BARRIER,     /* no work: every table's rows are in */
        LB_PG_ITEM_BUILD,       /* a post-data INDEX or CONSTRAINT block */
        LB_PG_ITEM_FK,          /* a post-data FK CONSTRAINT block */
        LB_PG_ITEM_ANALYZE,     /* ANALYZE of one table */
} LbPgItemKind;

#define LB_PG_NO_REL SIZE_MAX

typedef struct LbPgItem {
        LbPgItemKind kind;
        size_t table;           /* COPY, ANALYZE: index into the layout's tables */
        size_t block;           /* BUILD, FK: index into the post-data blocks */
        /* Relations it locks: an index into the layout's tables, or above
         * for other relations (materialized views, partitioned tables);
         * LB_PG_NO_REL when unused or unknown. Two items that lock the
         * same relation never run together, except two shared ones
         * (CREATE INDEX takes a SHARE lock). */
        size_t rel[2];
        bool shared;
        uint64_t priority;      /* among ready items, the highest runs first */
        size_t *deps;           /* items that must finish first */
        size_t n_deps;
} LbPgItem;

typedef struct LbPgSchedule {
        LbPgItem *items;
        size_t n_items;
        bool *rest;             /* per post-data block: left for the final script */
        bool *analyzed;         /* per layout table: has an ANALYZE item */
} LbPgSchedule;

/* Plans the restore of l's tables with post-data script sc (its text:
 * post, post_len). no_analyze (per layout table, may be NULL): tables
 * whose ANALYZE must wait for the end (inheritance parents, whose
 * statistics cover their children). with_los, with_sequences: add those
 * items. */
int lb_pg_schedule_new(const LbPgLayout *l, const char *post, size_t post_len, const LbPgSqlScript *sc,
                       const bool *no_analyze, bool with_sequences, bool with_los, LbPgSchedule *ret) _warn_unused_;
void lb_pg_schedule_clear(LbPgSchedule *s);
