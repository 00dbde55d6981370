/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <sys/stat.h>

#include "store/pg/pg.h"

int lb_pg_errno_from_sqlstate(const char *s) {
        if (!s || strlen(s) != 5)
                return -EIO;
        if (strncmp(s, "28", 2) == 0)
                return -EACCES;
        if (strcmp(s, "42501") == 0)
                return -EPERM;
        if (strncmp(s, "08", 2) == 0 || strncmp(s, "57P", 3) == 0)
                return -ECONNRESET;
        if (strcmp(s, "3D000") == 0)
                return -ENOENT;
        if (strncmp(s, "53", 2) == 0)
                return -ENOSPC;
        return -EIO;
}

static char *trimmed(const char *m) {
        char *s = strdup(m && *m ? m : "unknown error");
        if (!s)
                return NULL;
        for (size_t l = strlen(s); l > 0 && (s[l - 1] == '\n' || s[l - 1] == ' '); l--)
                s[l - 1] = 0;
        return s;
}

int lb_pg_error(PGconn *c, const PGresult *res, char **ret_error) {
        const char *msg = res ? PQresultErrorMessage(res) : NULL;
        if (!msg || !*msg)
                msg = c ? PQerrorMessage(c) : NULL;
        int k = -EIO;
        if (res)
                k = lb_pg_errno_from_sqlstate(PQresultErrorField(res, PG_DIAG_SQLSTATE));
        if (c && PQstatus(c) == CONNECTION_BAD)
                k = -ECONNRESET;
        if (ret_error) {
                free(*ret_error);
                *ret_error = trimmed(msg);
        }
        return k;
}

static const char *const session_settings =
        "SET DateStyle = ISO; SET IntervalStyle = postgres; SET extra_float_digits = 3; "
        "SET synchronize_seqscans = off; SET statement_timeout = 0; SET lock_timeout = 0; "
        "SET idle_in_transaction_session_timeout = 0; SET row_security = off; "
        "SET client_encoding = 'UTF8'; SET search_path = pg_catalog";

int lb_pg_connect(const char *conninfo, PGconn **ret, char **ret_error) {
        /* With expand_dbname, conninfo may be a connection string, a URI,
         * or a plain database name, as psql accepts. */
        const char *const keys[] = { "dbname", NULL };
        const char *const values[] = { conninfo, NULL };
        PGconn *c = PQconnectdbParams(keys, values, 1);
        if (!c)
                return -ENOMEM;
        if (PQstatus(c) != CONNECTION_OK) {
                const char *m = PQerrorMessage(c);
                int k = -ECONNREFUSED;
                if (strstr(m, "authentication failed") || strstr(m, "password") || strstr(m, "no pg_hba.conf entry"))
                        k = -EACCES;
                else if (strstr(m, "does not exist"))
                        k = -ENOENT;
                if (ret_error) {
                        free(*ret_error);
                        *ret_error = trimmed(m);
                }
                PQfinish(c);
                return k;
        }
        int k = lb_pg_exec(c, session_settings, NULL, ret_error);
        if (k < 0) {
                PQfinish(c);
                return k;
        }
        *ret = c;
        return 0;
}

int lb_pg_execp(PGconn *c, const char *sql, int n, const char *const *params, PGresult **ret, char **ret_error) {
        PGresult *res = n > 0 ? PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0) : PQexec(c, sql);
        if (!res)
                return lb_pg_error(c, NULL, ret_error);
        ExecStatusType st = PQresultStatus(res);
        if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
                int k = lb_pg_error(c, res, ret_error);
                PQclear(res);
                return k;
        }
        if (ret)
                *ret = res;
        else
                PQclear(res);
        return 0;
}

int lb_pg_exec(PGconn *c, const char *sql, PGresult **ret, char **ret_error) {
        return lb_pg_execp(c, sql, 0, NULL, ret, ret_error);
}

char *lb_pg_quote_ident(PGconn *c, const char *ident) {
        char *q = PQescapeIdentifier(c, ident, strlen(ident));
        if (!q)
                return NULL;
        char *s = strdup(q);
        PQfreemem(q);
        return s;
}

char *lb_pg_qualified(PGconn *c, const char *schema, const char *name) {
        _cleanup_free_ char *s = lb_pg_quote_ident(c, schema);
        _cleanup_free_ char *n = lb_pg_quote_ident(c, name);
        if (!s || !n)
                return NULL;
        return lb_strdup_printf("%s.%s", s, n);
}

int lb_pg_server_major(PGconn *c) {
        int v = PQserverVersion(c);
        return v >= 100000 ? v / 10000 : v / 100;
}

static bool version_matches(const char *path, int major) {
        _cleanup_free_ char *cmd = lb_strdup_printf("'%s' --version 2>/dev/null", path);
        if (!cmd || strchr(path, '\''))
                return false;
        FILE *f = popen(cmd, "r");
        if (!f)
                return false;
        char line[256] = "";
        bool ok = fgets(line, sizeof line, f) != NULL;
        pclose(f);
        if (!ok)
                return false;
        /* "pg_dump (PostgreSQL) 15.4 (Debian ...)" */
        const char *v = strstr(line, ") ");
        return v && atoi(v + 2) == major;
}

int lb_pg_find_program(const char *name, int major, char **ret) {
        const char *bindir = getenv("LONGBOX_PG_BINDIR");
        if (bindir && *bindir) {
                /* An explicit directory is the only place looked at. */
                _cleanup_free_ char *p = lb_strdup_printf("%s/%s", bindir, name);
                if (!p)
                        return -ENOMEM;
                if (access(p, X_OK) < 0)
                        return -ENOENT;
                *ret = LB_TAKE_PTR(p);
                return 0;
        }
        _cleanup_free_ char *p = lb_strdup_printf("/usr/lib/postgresql/%d/bin/%s", major, name);
        if (!p)
                return -ENOMEM;
        if (access(p, X_OK) == 0) {
                *ret = LB_TAKE_PTR(p);
                return 0;
        }
        const char *path = getenv("PATH");
        if (!path)
                return -ENOENT;
        _cleanup_free_ char *copy = strdup(path);
        if (!copy)
                return -ENOMEM;
        for (char *save = NULL, *dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
                _cleanup_free_ char *cand = lb_strdup_printf("%s/%s", dir, name);
                if (cand && access(cand, X_OK) == 0 && version_matches(cand, major)) {
                        *ret = LB_TAKE_PTR(cand);
                        return 0;
                }
        }
        return -ENOENT;
}

bool lb_pg_conn_is_local(PGconn *c) {
        const char *host = PQhost(c);
        if (!host || !*host || host[0] == '/')
                return true;
        const char *addr = PQhostaddr(c);
        return strcmp(host, "localhost") == 0 || strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0 ||
               (addr && (strncmp(addr, "127.", 4) == 0 || strcmp(addr, "::1") == 0));
}
