/* SPDX-License-Identifier: MIT */
#include <inttypes.h>

#include "cmd/common.h"
#include "cmd/progress.h"
#include "store/pg/dump.h"
#include "store/pg/load.h"
#include "store/restore.h"
#include "store/walk.h"

static const char help[] =
        "Usage: longbox restore SNAPSHOT --target DIR [--include PATH]...\n"
        "       longbox restore SNAPSHOT --dbname CONNINFO [--create] [--clean] [--table T]...\n"
        "                                [--jobs N] [--globals]\n"
        "       longbox restore SNAPSHOT --sql > FILE.sql\n"
        "\n"
        "Restores SNAPSHOT (\"latest\" or an id prefix) into DIR: each absolute path\n"
        "of the snapshot is recreated below DIR (/srv/a.txt -> DIR/srv/a.txt) with\n"
        "its mode, owner (when run as root), and modification time. A file is written\n"
        "under a temporary name and renamed only once all its content was verified,\n"
        "so a damaged chunk never leaves wrong bytes under a real name: that file is\n"
        "reported and skipped, and the restore goes on.\n"
        "\n"
        "With --dbname, restores a PostgreSQL snapshot (from backup --db) into the\n"
        "database CONNINFO names (a conninfo string, a postgres:// URI or a database\n"
        "name; PG* variables, PGPASSFILE and PGSERVICE work as with psql): pre-data\n"
        "(psql); then on N connections the rows (COPY FROM STDIN), sequences, large\n"
        "objects, each table's indexes and constraints once its rows are in, foreign\n"
        "keys once both tables are ready, and ANALYZE; then the rest of post-data\n"
        "(triggers, policies...), materialized views and the remaining ANALYZE.\n"
        "Row counts and checksums are recomputed while loading; a mismatch fails the\n"
        "restore and names the table. With --sql, writes one plain SQL script to\n"
        "standard output that psql loads into an empty database.\n"
        "\n"
        "Options:\n"
        "  --target DIR     where to restore files (created if missing)\n"
        "  --include PATH   restore only PATH and what is below it, plus its parent\n"
        "                   directories (repeatable)\n"
        "  --dbname CONNINFO  restore into this PostgreSQL database\n"
        "  --create         create the database first (from the maintenance database\n"
        "                   \"postgres\"), with the source's encoding, locale, settings,\n"
        "                   comment and grants; with --clean, drop it first if it exists\n"
        "  --clean          the target may have tables: drop every non-system schema\n"
        "                   (CASCADE) and large object first and recreate schema public;\n"
        "                   with --table, TRUNCATE those tables instead\n"
        "  --table T        restore only table T (schema.table, or table for\n"
        "                   public.table) and set its owned sequences (repeatable); a\n"
        "                   table the target lacks is created from the snapshot's schema\n"
        "  --jobs N         parallel connections (default 2)\n"
        "  --globals        also run globals.sql (roles, tablespaces); errors such as\n"
        "                   roles that already exist are warnings\n"
        "  --sql            write the snapshot as one SQL script to standard output\n"
        "  --json           print the summary as one JSON object\n"
        "\n"
        "Exit code 13 when a file failed because of damaged or missing data, 1 when\n"
        "one failed for another reason (the others are restored in both cases). For\n"
        "a database: 13 when data is damaged or a row count or checksum does not\n"
        "match, 1 for any other failure (the database is left as far as it got).\n";

enum {
        OPT_TARGET = OPT_FIRST_LOCAL,
        OPT_INCLUDE,
        OPT_DBNAME,
        OPT_CREATE,
        OPT_CLEAN,
        OPT_TABLE,
        OPT_JOBS,
        OPT_GLOBALS,
        OPT_SQL,
};

typedef struct DbPrint {
        bool json;
        CliProgress *progress;
} DbPrint;

static void db_progress(void *userdata, const LbPgRestoreProgress *pr) {
        DbPrint *p = userdata;
        cli_progress_set_total(p->progress, pr->bytes_total);
        cli_progress_set_items(p->progress, pr->tables_done, pr->tables_total, "tables");
        if (pr->step)
                cli_progress_update_now(p->progress, pr->bytes_done, pr->item);
        else
                cli_progress_update(p->progress, pr->bytes_done, pr->item);
}

static void db_warn(void *userdata, const char *message) {
        cli_progress_interrupt();
        fprintf(stderr, "longbox: warning: %s\n", message);
}

static void db_table_done(void *userdata, const LbPgRestoreTable *t) {
        DbPrint *p = userdata;
        if (p->json)
                return;
        char bytes[32];
        cli_format_bytes(t->bytes, bytes);
        cli_info("  %s.%s: %" PRIu64 " rows (%s) in %.2f s\n", t->schema, t->table, t->rows, bytes,
                 (double) t->duration_ns / 1e9);
        fflush(stdout);
}

static void print_db_summary(const LbSnapshot *s, const LbPgRestoreResult *res) {
        char sid[9], bytes[32], lo_bytes[32];
        cli_id_short(&s->id, sid);
        if (cli.json) {
                _cleanup_json_ json_object *j = json_object_new_object();
                json_object *tables = json_object_new_array();
                for (size_t i = 0; i < res->n_tables; i++) {
                        const LbPgRestoreTable *t = &res->tables[i];
                        json_object *o = json_object_new_object();
                        json_object_object_add(o, "schema", json_object_new_string(t->schema));
                        json_object_object_add(o, "table", json_object_new_string(t->table));
                        json_object_object_add(o, "rows", json_object_new_uint64(t->rows));
                        json_object_object_add(o, "bytes", json_object_new_uint64(t->bytes));
                        json_object_object_add(o, "duration", json_object_new_double((double) t->duration_ns / 1e9));
                        json_object_array_add(tables, o);
                }
                char id[2 * LB_ID_SIZE + 1];
                lb_hex_encode(s->id.b, LB_ID_SIZE, id);
                json_object_object_add(j, "message_type", json_object_new_string("summary"));
                json_object_object_add(j, "snapshot_id", json_object_new_string(id));
                json_object_object_add(j, "database", json_object_new_string(res->database));
                json_object_object_add(j, "server_version", json_object_new_int(res->server_version));
                json_object_object_add(j, "tables_restored", json_object_new_uint64(res->n_tables));
                json_object_object_add(j, "tables_created", json_object_new_uint64(res->tables_created));
                json_object_object_add(j, "rows_restored", json_object_new_uint64(res->rows));
                json_object_object_add(j, "bytes_restored", json_object_new_uint64(res->bytes));
                json_object_object_add(j, "sequences_restored", json_object_new_uint64(res->sequences));
                json_object_object_add(j, "large_objects_restored", json_object_new_uint64(res->large_objects));
                json_object_object_add(j, "large_object_bytes", json_object_new_uint64(res->large_object_bytes));
                json_object_object_add(j, "warnings", json_object_new_uint64(res->warnings));
                json_object_object_add(j, "seconds_to_usable", json_object_new_double((double) res->usable_ns / 1e9));
                json_object_object_add(j, "total_duration", json_object_new_double((double) res->total_ns / 1e9));
                json_object_object_add(j, "tables", tables);
                cli_json_print(j);
                return;
        }
        cli_format_bytes(res->bytes, bytes);
        cli_format_bytes(res->large_object_bytes, lo_bytes);
        char created[48] = "";
        if (res->tables_created)
                snprintf(created, sizeof created, " (%" PRIu64 " created)", res->tables_created);
        cli_info("restored snapshot %s into %s: %zu tables%s, %" PRIu64 " rows (%s), %" PRIu64 " sequences, %" PRIu64
                 " large objects (%s)%s\n",
                 sid, res->database, res->n_tables, created, res->rows, bytes,
                 res->sequences, res->large_objects, lo_bytes,
                 res->warnings ? ", with warnings (see above)" : "");
        cli_info("usable after %.2f s; ANALYZE done after %.2f s\n", (double) res->usable_ns / 1e9,
                 (double) res->total_ns / 1e9);
}

/* The target's name for messages, before or without a connection. */
static char *target_name(const char *conninfo) {
        char *db = NULL;
        if (strchr(conninfo, '=') || strstr(conninfo, "://")) {
                if (lb_pg_conninfo_dbname(conninfo, &db) < 0)
                        db = NULL;
        } else
                db = strdup(conninfo);
        return db;
}

static int restore_db(LbRepo *r, const LbSnapshot *s, LbPgRestoreOptions *o) {
        char sid[9];
        cli_id_short(&s->id, sid);
        DbPrint p = { .json = cli.json };
        o->warn = db_warn;
        o->table_done = db_table_done;
        o->userdata = &p;
        _cleanup_free_ char *db = target_name(o->conninfo);
        if (!cli.json)
                cli_info("restoring snapshot %s into %s\n", sid, db ? db : "the database");
        LbPgRestoreResult res = {};
        _cleanup_free_ char *error = NULL;
        p.progress = cli_progress_new("restore");
        if (p.progress)
                o->progress = db_progress;
        int k = lb_pg_restore(r, s, o, &res, &error);
        p.progress = cli_progress_free(p.progress);
        if (k < 0)
                return cli_error(cli_exit_code(k), "Failed to restore snapshot %s into %s: %s", sid,
                                 db ? db : "the database", error ? error : cli_strerror(k));
        print_db_summary(s, &res);
        lb_pg_restore_result_clear(&res);
        return CLI_EXIT_OK;
}

static int restore_sql(LbRepo *r, const LbSnapshot *s) {
        char sid[9];
        cli_id_short(&s->id, sid);
        _cleanup_free_ char *error = NULL;
        int k = lb_pg_restore_sql(r, s, STDOUT_FILENO, &error);
        if (k < 0)
                return cli_error(cli_exit_code(k), "Failed to write snapshot %s as SQL: %s",
                                 sid, error ? error : cli_strerror(k));
        return CLI_EXIT_OK;
}

static void on_warn(void *userdata, const char *path, int err) {
        cli_progress_interrupt();
        fprintf(stderr, "longbox: Failed to restore %s: %s\n", path, cli_strerror(err));
}

static void on_progress(void *userdata, uint64_t bytes_done, const char *path) {
        cli_progress_update(userdata, bytes_done, path);
}

int cmd_restore(int argc, char **argv) {
        static const struct option options[] = {
                CLI_GLOBAL_OPTIONS,
                { "target", required_argument, NULL, OPT_TARGET },
                { "include", required_argument, NULL, OPT_INCLUDE },
                { "dbname", required_argument, NULL, OPT_DBNAME },
                { "create", no_argument, NULL, OPT_CREATE },
                { "clean", no_argument, NULL, OPT_CLEAN },
                { "table", required_argument, NULL, OPT_TABLE },
                { "jobs", required_argument, NULL, OPT_JOBS },
                { "globals", no_argument, NULL, OPT_GLOBALS },
                { "sql", no_argument, NULL, OPT_SQL },
                {},
        };
        const char *target = NULL;
        _cleanup_free_ const char **includes = calloc((size_t) argc, sizeof *includes);
        size_t n_includes = 0;
        _cleanup_free_ const char **tables = calloc((size_t) argc, sizeof *tables);
        if (!includes || !tables)
                return cli_fail(-ENOMEM, "parse the arguments");
        LbPgRestoreOptions pg = { .tables = tables };
        bool sql = false, jobs_set = false;

        cli_getopt_reset();
        int c;
        while ((c = getopt_long(argc, argv, ":" CLI_GLOBAL_SHORT, options, NULL)) >= 0) {
                switch (c) {
                case OPT_TARGET:
                        if (!*optarg)
                                return cli_usage_error("--target needs a directory");
                        target = optarg;
                        break;
                case OPT_INCLUDE:
                        if (!*optarg)
                                return cli_usage_error("--include needs a path");
                        includes[n_includes++] = optarg;
                        break;
                case OPT_DBNAME:
                        if (!*optarg)
                                return cli_usage_error("--dbname needs a connection string or database name");
                        pg.conninfo = optarg;
                        break;
                case OPT_CREATE:
                        pg.create = true;
                        break;
                case OPT_CLEAN:
                        pg.clean = true;
                        break;
                case OPT_TABLE:
                        if (!*optarg)
                                return cli_usage_error("--table needs a table name (schema.table)");
                        tables[pg.n_tables++] = optarg;
                        break;
                case OPT_JOBS: {
                        long long v;
                        if (cli_parse_int(optarg, 1, 64, &v) < 0)
                                return cli_usage_error("--jobs needs a number from 1 to 64, got '%s'", optarg);
                        pg.jobs = (unsigned) v;
                        jobs_set = true;
                        break;
                }
                case OPT_GLOBALS:
                        pg.globals = true;
                        break;
                case OPT_SQL:
                        sql = true;
                        break;
                default: {
                        int k = cli_global_option(c, argv, help);
                        if (k >= 0)
                                return k;
                }
                }
        }
        int nargs = argc - optind;
        if (nargs != 1)
                return cli_usage_error("%s", nargs == 0 ? "missing the SNAPSHOT (an id prefix or \"latest\")"
                                                        : "too many arguments: give one SNAPSHOT");
        if (!!target + !!pg.conninfo + sql > 1)
                return cli_usage_error("--target, --dbname and --sql do not go together: give one");
        if (!target && !pg.conninfo && !sql)
                return cli_usage_error("missing --target DIR (files), --dbname CONNINFO or --sql (a PostgreSQL snapshot)");
        if (!pg.conninfo && (pg.create || pg.clean || pg.n_tables || jobs_set || pg.globals))
                return cli_usage_error("--create, --clean, --table, --jobs and --globals go with --dbname");
        if (pg.create && pg.n_tables)
                return cli_usage_error("--table restores into an existing database: leave out --create");
        if (n_includes && !target)
                return cli_usage_error("--include goes with --target");
        const char *spec = argv[optind];

        _cleanup_repo_ LbRepo *r = NULL;
        int code = cli_open_repo(CLI_OPEN_INDEX | CLI_OPEN_LOCK_SHARED, &r);
        if (code)
                return code;
        _cleanup_snapshot_ LbSnapshot *s = NULL;
        code = cli_find_snapshot(r, spec, &s);
        if (code)
                return code;
        if (pg.conninfo)
                return restore_db(r, s, &pg);
        if (sql)
                return restore_sql(r, s);

        /* Every include must name something, or the user mistyped it. */
        for (size_t i = 0; i < n_includes; i++) {
                _cleanup_free_ char *p = lb_snapshot_path_normalize(includes[i]);
                if (!p)
                        return cli_fail(-ENOMEM, "parse the path");
                LbNode node = {};
                int k = lb_snapshot_lookup_path(r, s, p, &node);
                if (k == -ENOENT || k == -ENOTDIR)
                        return cli_error(CLI_EXIT_ERROR, "Failed to restore %s: no %s in snapshot %s", p, p, spec);
                if (k < 0)
                        return cli_fail(k, "look up %s in snapshot %s", p, spec);
                lb_node_clear(&node);
        }

        LbRestoreOptions o = {
                .target = target,
                .includes = includes,
                .n_includes = n_includes,
                .warn = on_warn,
        };
        _cleanup_progress_ CliProgress *pr = cli_progress_new("restore");
        if (pr) {
                /* The whole snapshot's size; with --include only a part is written. */
                if (n_includes == 0)
                        cli_progress_set_total(pr, s->stats.bytes_read);
                o.progress = on_progress;
                o.userdata = pr;
        }
        LbRestoreStats st = {};
        int k = lb_restore_run(r, s, &o, &st);
        pr = cli_progress_free(pr);

        char bytes[32];
        cli_format_bytes(st.bytes, bytes);
        if (cli.json) {
                _cleanup_json_ json_object *j = json_object_new_object();
                json_object_object_add(j, "message_type", json_object_new_string("summary"));
                json_object_object_add(j, "files_restored", json_object_new_uint64(st.files));
                json_object_object_add(j, "dirs_restored", json_object_new_uint64(st.dirs));
                json_object_object_add(j, "symlinks_restored", json_object_new_uint64(st.symlinks));
                json_object_object_add(j, "specials_restored", json_object_new_uint64(st.specials));
                json_object_object_add(j, "bytes_restored", json_object_new_uint64(st.bytes));
                json_object_object_add(j, "errors", json_object_new_uint64(st.errors));
                json_object_object_add(j, "errors_damaged", json_object_new_uint64(st.errors_damaged));
                cli_json_print(j);
        } else
                cli_info("restored %" PRIu64 " files (%s), %" PRIu64 " dirs, %" PRIu64 " symlinks, %" PRIu64
                         " other entries to %s\n",
                         st.files, bytes, st.dirs, st.symlinks, st.specials, target);

        if (k == 0 && st.errors == 0)
                return CLI_EXIT_OK;
        if (st.errors_damaged > 0)
                return cli_error(CLI_EXIT_CORRUPT, "%" PRIu64 " entr%s could not be restored (see above), %" PRIu64
                                 " because the repository's data is damaged or missing; run 'longbox check --read-data'",
                                 st.errors, st.errors == 1 ? "y" : "ies", st.errors_damaged);
        return cli_error(CLI_EXIT_ERROR, "%" PRIu64 " entr%s could not be restored (see above)", st.errors,
                         st.errors == 1 ? "y" : "ies");
}
