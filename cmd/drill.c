/* SPDX-License-Identifier: MIT */
/*
 * longbox drill: proves a snapshot restores. Restores it into a scratch
 * database, checks every table's row count in the database against the
 * snapshot (the restore itself already verified every table's rows and
 * XXH3 checksum while loading), runs the user's SQL checks, measures the
 * time to a usable database and drops the scratch database again, also
 * on failure. The result is recorded as a "drill" event (cmd/report.c).
 */
#include <inttypes.h>
#include <libpq-fe.h>
#include <time.h>

#include "cmd/common.h"
#include "cmd/config.h"
#include "store/pg/dump.h"
#include "store/pg/load.h"
#include "store/pg/pg.h"

static const char help[] =
        "Usage: longbox drill [SNAPSHOT] [--database NAME] [--conninfo CONNINFO]\n"
        "                     [--dbname-prefix P] [--sql-check FILE]... [--jobs N]\n"
        "\n"
        "A restore drill. Restores SNAPSHOT (default: the newest PostgreSQL\n"
        "snapshot, of database NAME with --database) into a new scratch database\n"
        "P<time>_<pid> on the server CONNINFO points at, and verifies it: the\n"
        "restore recomputes every table's row count and checksum against those\n"
        "recorded at backup; then every table's rows are counted in the restored\n"
        "database; then each --sql-check FILE runs there and must return exactly\n"
        "one row holding boolean true. Prints the time to a usable database (the\n"
        "recovery time actually achieved) and drops the scratch database, also when\n"
        "the drill fails. The result is recorded in the repository, where 'longbox\n"
        "status' reads it. Run it with --repo pointing at the off-site copy to\n"
        "prove a disaster recovery.\n"
        "\n"
        "Options (defaults from the config's [drill] section):\n"
        "  --database NAME     the newest snapshot of database NAME\n"
        "  --conninfo CONNINFO the server to restore into (its dbname is replaced;\n"
        "                      default: libpq's defaults and PG* variables); the\n"
        "                      role needs CREATEDB\n"
        "  --dbname-prefix P   scratch database name prefix (default longbox_drill_)\n"
        "  --sql-check FILE    SQL whose result must be one boolean true (repeatable)\n"
        "  --jobs N            parallel COPY connections (default 2)\n"
        "  --json              print the result as one JSON object\n"
        "\n"
        "Exit code 13 when a table's rows or checksum do not match the snapshot or\n"
        "its data is damaged, 1 for any other failure (a failed SQL check too).\n";

enum {
        OPT_DATABASE = OPT_FIRST_LOCAL,
        OPT_CONNINFO,
        OPT_PREFIX,
        OPT_SQL_CHECK,
        OPT_JOBS,
};

static void free_secret(char *s) {
        if (s) {
                explicit_bzero(s, strlen(s));
                free(s);
        }
}
static void free_secretp(char **s) {
        free_secret(*s);
}

/* conninfo with its dbname replaced; a plain name counts as a dbname. */
static int conninfo_with_dbname(const char *ci, const char *dbname, char **ret) {
        char *err = NULL;
        bool connstr = strchr(ci, '=') || strncmp(ci, "postgres://", 11) == 0 || strncmp(ci, "postgresql://", 13) == 0;
        PQconninfoOption *opts = PQconninfoParse(connstr ? ci : "", &err);
        if (!opts) {
                if (err)
                        PQfreemem(err);
                return -EINVAL;
        }
        LbBuf b = {};
        int k = 0;
        for (PQconninfoOption *o = opts; o->keyword && k >= 0; o++) {
                const char *v = strcmp(o->keyword, "dbname") == 0 ? NULL : o->val;
                if (!v || !*v)
                        continue;
                char *part = NULL;
                /* libpq quoting: 'value' with \ and ' escaped */
                size_t n = strlen(v);
                part = malloc(strlen(o->keyword) + 2 * n + 8);
                if (!part) {
                        k = -ENOMEM;
                        break;
                }
                char *p = stpcpy(stpcpy(part, o->keyword), "='");
                for (const char *s = v; *s; s++) {
                        if (*s == '\\' || *s == '\'')
                                *p++ = '\\';
                        *p++ = *s;
                }
                strcpy(p, "' ");
                k = lb_buf_append(&b, part, strlen(part));
                free_secret(part);
        }
        PQconninfoFree(opts);
        if (k >= 0) {
                char tail[128];
                snprintf(tail, sizeof tail, "dbname='%s'", dbname); /* our own names: no quotes */
                k = lb_buf_append(&b, tail, strlen(tail) + 1);
        }
        if (k < 0) {
                if (b.data)
                        explicit_bzero(b.data, b.cap);
                lb_buf_free(&b);
                return k;
        }
        *ret = (char *) b.data;
        return 0;
}

static int drop_scratch(const char *conninfo, const char *db, char **ret_error) {
        static const char *const maint[] = { "postgres", "template1" };
        int k = 0;
        for (size_t i = 0; i < LB_ARRAY_SIZE(maint); i++) {
                _cleanup_(free_secretp) char *ci = NULL;
                k = conninfo_with_dbname(conninfo, maint[i], &ci);
                if (k < 0)
                        return k;
                PGconn *c = NULL;
                free(*ret_error);
                *ret_error = NULL;
                k = lb_pg_connect(ci, &c, ret_error);
                if (k == -ENOENT)
                        continue;
                if (k < 0)
                        return k;
                char sql[256];
                snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS \"%s\" WITH (FORCE)", db);
                free(*ret_error);
                *ret_error = NULL;
                k = lb_pg_exec(c, sql, NULL, ret_error);
                PQfinish(c);
                return k;
        }
        return k;
}

/* The newest PostgreSQL snapshot (of database, if given). */
static int find_pg_snapshot(LbRepo *r, const char *database, LbSnapshot **ret) {
        LbSnapshot **v = NULL;
        size_t n = 0;
        int k = lb_repo_snapshot_list(r, &v, &n);
        if (k < 0)
                return cli_fail(k, "list the snapshots of %s", cli.repo);
        int code = 0;
        size_t pick = SIZE_MAX;
        for (size_t i = n; i-- > 0;) {
                if (!v[i]->source || strcmp(v[i]->source, "postgresql") != 0)
                        continue;
                const char *db = lb_snapshot_meta(v[i], "pg.database");
                if (database && (!db || strcmp(db, database) != 0))
                        continue;
                pick = i;
                break;
        }
        if (pick == SIZE_MAX)
                code = cli_error(CLI_EXIT_ERROR, "Failed to start the drill: %s has no PostgreSQL snapshot%s%s; back "
                                 "one up with 'longbox backup --db'", cli.repo, database ? " of database " : "",
                                 database ? database : "");
        else {
                *ret = v[pick];
                v[pick] = NULL;
        }
        for (size_t i = 0; i < n; i++)
                lb_snapshot_free(v[i]);
        free(v);
        return code;
}

typedef struct DrillResult {
        uint64_t tables, rows, checks;
        double rto;
        double total;
} DrillResult;

/* Counts each table's rows in the restored database. */
static int verify_counts(PGconn *c, const LbPgLayout *l, DrillResult *res, char **ret_msg) {
        for (size_t i = 0; i < l->n_tables; i++) {
                const LbPgTableFile *t = &l->tables[i];
                _cleanup_free_ char *q = lb_pg_qualified(c, t->schema, t->table);
                if (!q)
                        return -ENOMEM;
                _cleanup_free_ char *sql = lb_strdup_printf("SELECT count(*) FROM ONLY %s", q);
                PGresult *pr = NULL;
                _cleanup_free_ char *err = NULL;
                int k = sql ? lb_pg_exec(c, sql, &pr, &err) : -ENOMEM;
                if (k < 0) {
                        *ret_msg = lb_strdup_printf("counting the rows of %s.%s failed: %s", t->schema, t->table,
                                                    err ? err : cli_strerror(k));
                        return k;
                }
                uint64_t n = strtoull(PQgetvalue(pr, 0, 0), NULL, 10);
                PQclear(pr);
                if (n != t->rows) {
                        *ret_msg = lb_strdup_printf("table %s.%s has %" PRIu64 " rows after the restore, the snapshot "
                                                    "recorded %" PRIu64, t->schema, t->table, n, t->rows);
                        return -EBADMSG;
                }
                res->tables++;
                res->rows += n;
        }
        return 0;
}

static int run_sql_check(PGconn *c, const char *file, char **ret_msg) {
        _cleanup_buf_ LbBuf b = {};
        int k = lb_read_file(file, 16u << 20, &b);
        if (k < 0) {
                *ret_msg = lb_strdup_printf("cannot read SQL check %s: %s", file, cli_strerror(k));
                return k;
        }
        _cleanup_free_ char *sql = strndup((const char *) b.data, b.len);
        if (!sql)
                return -ENOMEM;
        PGresult *pr = NULL;
        _cleanup_free_ char *err = NULL;
        k = lb_pg_exec(c, sql, &pr, &err);
        if (k < 0) {
                *ret_msg = lb_strdup_printf("SQL check %s failed: %s", file, err ? err : cli_strerror(k));
                return -EIO;
        }
        bool ok = PQresultStatus(pr) == PGRES_TUPLES_OK && PQntuples(pr) == 1 && PQnfields(pr) == 1 &&
                  PQftype(pr, 0) == 16 /* BOOLOID */ && !PQgetisnull(pr, 0, 0) && strcmp(PQgetvalue(pr, 0, 0), "t") == 0;
        if (!ok) {
                if (PQresultStatus(pr) == PGRES_TUPLES_OK && PQntuples(pr) == 1 && PQnfields(pr) == 1)
                        *ret_msg = lb_strdup_printf("SQL check %s returned %s, not true", file,
                                                    PQgetisnull(pr, 0, 0) ? "NULL" : PQgetvalue(pr, 0, 0));
                else
                        *ret_msg = lb_strdup_printf("SQL check %s must return exactly one row with one boolean "
                                                    "column; it returned %d rows of %d columns", file,
                                                    PQntuples(pr), PQnfields(pr));
                PQclear(pr);
                return -EIO;
        }
        PQclear(pr);
        return 0;
}

int cmd_drill(int argc, char **argv) {
        static const struct option options[] = {
                CLI_GLOBAL_OPTIONS,
                { "database", required_argument, NULL, OPT_DATABASE },
                { "conninfo", required_argument, NULL, OPT_CONNINFO },
                { "dbname-prefix", required_argument, NULL, OPT_PREFIX },
                { "sql-check", required_argument, NULL, OPT_SQL_CHECK },
                { "jobs", required_argument, NULL, OPT_JOBS },
                {},
        };
        int64_t t0 = lb_mono_ns();
        const char *database = NULL, *conninfo = NULL, *prefix = NULL;
        _cleanup_free_ const char **checks = calloc((size_t) argc + CLI_CONFIG_MAX_SQL_CHECKS, sizeof *checks);
        size_t n_checks = 0;
        unsigned jobs = 0;
        if (!checks)
                return cli_fail(-ENOMEM, "parse the arguments");
        cli_getopt_reset();
        int c;
        while ((c = getopt_long(argc, argv, ":" CLI_GLOBAL_SHORT, options, NULL)) >= 0) {
                switch (c) {
                case OPT_DATABASE:
                        database = optarg;
                        break;
                case OPT_CONNINFO:
                        conninfo = optarg;
                        break;
                case OPT_PREFIX:
                        prefix = optarg;
                        break;
                case OPT_SQL_CHECK:
                        checks[n_checks++] = optarg;
                        break;
                case OPT_JOBS: {
                        long long v;
                        if (cli_parse_int(optarg, 1, 64, &v) < 0)
                                return cli_usage_error("--jobs needs a number from 1 to 64, got '%s'", optarg);
                        jobs = (unsigned) v;
                        break;
                }
                default: {
                        int k = cli_global_option(c, argv, help);
                        if (k >= 0)
                                return k;
                }
                }
        }
        if (argc - optind > 1)
                return cli_usage_error("too many arguments: give at most one SNAPSHOT");
        const char *spec = argc - optind == 1 ? argv[optind] : NULL;
        if (spec && database)
                return cli_usage_error("give either a SNAPSHOT or --database, not both");
        if (prefix) {
                size_t n = strlen(prefix);
                bool ok = n > 0 && n <= 40;
                for (size_t i = 0; ok && i < n; i++)
                        ok = (prefix[i] >= 'a' && prefix[i] <= 'z') || (prefix[i] >= '0' && prefix[i] <= '9') ||
                             prefix[i] == '_';
                if (!ok)
                        return cli_usage_error("--dbname-prefix needs 1 to 40 of a-z, 0-9 and _, got '%s'", prefix);
        }

        const CliConfig *conf = NULL;
        int code = cli_config_get(&conf);
        if (code)
                return code;
        if (conf) {
                if (!conninfo)
                        conninfo = conf->drill_conninfo;
                if (!prefix)
                        prefix = conf->drill_prefix;
                if (n_checks == 0)
                        for (size_t i = 0; i < conf->n_sql_checks; i++)
                                checks[n_checks++] = conf->sql_checks[i];
                if (!jobs)
                        jobs = conf->drill_jobs;
        }
        if (!conninfo)
                conninfo = "";
        if (!prefix)
                prefix = CLI_DEFAULT_DRILL_PREFIX;
        /* The scratch name must be a plain lower-case identifier. */
        for (const char *p = prefix; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
                        return cli_error(CLI_EXIT_USAGE, "dbname-prefix '%s' must use only a-z, 0-9 and _", prefix);

        _cleanup_repo_ LbRepo *r = NULL;
        code = cli_open_repo(CLI_OPEN_INDEX | CLI_OPEN_LOCK_SHARED, &r);
        if (code)
                return code;
        _cleanup_snapshot_ LbSnapshot *s = NULL;
        code = spec ? cli_find_snapshot(r, spec, &s) : find_pg_snapshot(r, database, &s);
        if (code)
                return code;
        char sid[9];
        cli_id_short(&s->id, sid);
        cli_report_snapshot(&s->id);
        if (!s->source || strcmp(s->source, "postgresql") != 0)
                return cli_error(CLI_EXIT_ERROR, "Failed to drill snapshot %s: it is not a PostgreSQL snapshot "
                                 "(backup --db)", sid);
        LbPgLayout *layout = NULL;
        _cleanup_free_ char *lerr = NULL;
        int k = lb_pg_layout_load(r, s, &layout, &lerr);
        if (k < 0)
                return cli_error(cli_exit_code(k), "Failed to drill snapshot %s: %s", sid, lerr ? lerr : cli_strerror(k));
        cli_report_meta("database", "%s", layout->database);

        char scratch[80];
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        char stamp[32];
        strftime(stamp, sizeof stamp, "%Y%m%d_%H%M%S", &tm);
        snprintf(scratch, sizeof scratch, "%s%s_%d", prefix, stamp, (int) getpid());
        _cleanup_(free_secretp) char *target = NULL;
        k = conninfo_with_dbname(conninfo, scratch, &target);
        if (k < 0) {
                lb_pg_layout_free(layout);
                return cli_error(CLI_EXIT_USAGE, "Failed to drill snapshot %s: the connection string is not valid",
                                 sid);
        }

        if (!cli.json)
                cli_info("drill: restoring snapshot %s (database %s) into scratch database %s\n", sid,
                         layout->database, scratch);
        DrillResult dr = {};
        LbPgRestoreOptions o = { .conninfo = target, .create = true, .jobs = jobs };
        LbPgRestoreResult res = {};
        _cleanup_free_ char *error = NULL;
        int64_t restore_start = lb_mono_ns();
        k = lb_pg_restore(r, s, &o, &res, &error);
        int64_t restore_end = lb_mono_ns();
        char *msg = NULL;
        int fail_code = 0;
        if (k < 0) {
                msg = lb_strdup_printf("restore into %s failed: %s", scratch, error ? error : cli_strerror(k));
                fail_code = cli_exit_code(k);
        } else {
                dr.rto = (double) (restore_start - t0 + res.usable_ns) / 1e9;
                PGconn *pc = NULL;
                _cleanup_free_ char *cerr = NULL;
                k = lb_pg_connect(target, &pc, &cerr);
                if (k < 0) {
                        msg = lb_strdup_printf("cannot connect to the restored database %s: %s", scratch,
                                               cerr ? cerr : cli_strerror(k));
                        fail_code = CLI_EXIT_ERROR;
                } else {
                        k = verify_counts(pc, layout, &dr, &msg);
                        if (k < 0)
                                fail_code = k == -EBADMSG ? CLI_EXIT_CORRUPT : CLI_EXIT_ERROR;
                        for (size_t i = 0; k >= 0 && i < n_checks; i++) {
                                k = run_sql_check(pc, checks[i], &msg);
                                if (k < 0)
                                        fail_code = CLI_EXIT_ERROR;
                                else {
                                        dr.checks++;
                                        if (!cli.json)
                                                cli_info("  SQL check %s: true\n", checks[i]);
                                }
                        }
                        PQfinish(pc);
                }
        }
        dr.total = (double) (lb_mono_ns() - t0) / 1e9;
        lb_pg_restore_result_clear(&res);
        lb_pg_layout_free(layout);

        /* Always drop the scratch database. */
        _cleanup_free_ char *derr = NULL;
        int kd = drop_scratch(conninfo, scratch, &derr);
        if (kd < 0)
                fprintf(stderr, "longbox: warning: Failed to drop the scratch database %s: %s; drop it by hand\n",
                        scratch, derr ? derr : cli_strerror(kd));

        cli_report_meta("tables", "%" PRIu64, dr.tables);
        cli_report_meta("rows", "%" PRIu64, dr.rows);
        cli_report_meta("sql_checks", "%" PRIu64, dr.checks);
        if (fail_code) {
                int ret = cli_error(fail_code, "drill of snapshot %s FAILED: %s", sid, msg ? msg : "unknown error");
                free(msg);
                return ret;
        }
        cli_report_meta("rto_seconds", "%.3f", dr.rto);
        if (cli.json) {
                _cleanup_json_ json_object *j = json_object_new_object();
                char id[2 * LB_ID_SIZE + 1];
                lb_id_hex(&s->id, id);
                json_object_object_add(j, "message_type", json_object_new_string("summary"));
                json_object_object_add(j, "snapshot_id", json_object_new_string(id));
                json_object_object_add(j, "scratch_database", json_object_new_string(scratch));
                json_object_object_add(j, "tables_verified", json_object_new_uint64(dr.tables));
                json_object_object_add(j, "rows_verified", json_object_new_uint64(dr.rows));
                json_object_object_add(j, "sql_checks_passed", json_object_new_uint64(dr.checks));
                json_object_object_add(j, "seconds_to_usable", json_object_new_double(dr.rto));
                json_object_object_add(j, "total_duration", json_object_new_double(dr.total));
                json_object_object_add(j, "scratch_dropped", json_object_new_boolean(kd >= 0));
                cli_json_print(j);
        } else
                cli_info("drill of snapshot %s passed: %" PRIu64 " tables, %" PRIu64 " rows verified, %" PRIu64
                         " SQL checks true; usable after %.2f s (RTO achieved), %.2f s in all; %s\n", sid, dr.tables,
                         dr.rows, dr.checks, dr.rto, dr.total,
                         kd >= 0 ? "scratch database dropped" : "scratch database NOT dropped");
        (void) restore_end;
        return CLI_EXIT_OK;
}
