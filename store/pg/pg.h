/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * libpq, wrapped: the one place that translates libpq's conventions
 * (connection status, PGresult status, SQLSTATE) into -errno plus a
 * message for the CLI to print. Library code does not print; every
 * function that can fail with a server message returns it in *ret_error
 * (caller frees; never contains a password: libpq does not put one in
 * its messages, and conninfo strings are never echoed back).
 */

#include <libpq-fe.h>

#include "store/util.h"

/* Maps an SQLSTATE to -errno:
 *   28xxx (auth)            -EACCES      42501 (insufficient privilege) -EPERM
 *   08xxx, 57Pxx (conn lost, shutdown) -ECONNRESET
 *   3D000 (no such database) -ENOENT     53xxx (resources) -ENOSPC
 *   anything else            -EIO */
int lb_pg_errno_from_sqlstate(const char *sqlstate);

/* Connects; conninfo is a connection string, a URI or a database name.
 * On failure *ret_error says why. -ECONNREFUSED when the server
 * cannot be reached, -EACCES when authentication fails, -ENOENT when the
 * database does not exist. Applies the session settings pg_dump uses:
 * DateStyle ISO, IntervalStyle postgres, extra_float_digits 3,
 * synchronize_seqscans off, statement/lock/idle timeouts 0, row_security
 * off, client_encoding UTF8. */
int lb_pg_connect(const char *conninfo, PGconn **ret, char **ret_error) _warn_unused_;

/* Runs sql (no parameters). *ret (may be NULL) gets the result when it is
 * PGRES_TUPLES_OK or PGRES_COMMAND_OK; the caller PQclear()s it. */
int lb_pg_exec(PGconn *c, const char *sql, PGresult **ret, char **ret_error) _warn_unused_;
/* Same with text parameters. */
int lb_pg_execp(PGconn *c, const char *sql, int n, const char *const *params, PGresult **ret,
                char **ret_error) _warn_unused_;

/* The error of the connection (or of res, if not NULL) as -errno and a
 * message (*ret_error, allocated, trailing newline removed). */
int lb_pg_error(PGconn *c, const PGresult *res, char **ret_error);

/* "quoted"."identifiers" via PQescapeIdentifier; NULL on failure. */
char *lb_pg_quote_ident(PGconn *c, const char *ident);
/* schema.table, both quoted. */
char *lb_pg_qualified(PGconn *c, const char *schema, const char *name);

/* The server's major version (15 for 15.4), from PQserverVersion. */
int lb_pg_server_major(PGconn *c);

/* Whether c reaches the server on this machine: over a Unix socket or a
 * loopback address. */
bool lb_pg_conn_is_local(PGconn *c);

/* Finds a client program (pg_dump, pg_dumpall, psql) of the given major
 * version: $LONGBOX_PG_BINDIR/<name> when that variable is set (and
 * nowhere else), else /usr/lib/postgresql/<major>/bin/<name>, else one on
 * PATH whose --version matches. -ENOENT when there is none; *ret is
 * allocated. */
int lb_pg_find_program(const char *name, int major, char **ret) _warn_unused_;

static inline void lb_pg_finishp(PGconn **c) {
        if (*c)
                PQfinish(*c);
}
static inline void lb_pg_clearp(PGresult **r) {
        if (*r)
                PQclear(*r);
}
#define _cleanup_pgconn_ _cleanup_(lb_pg_finishp)
#define _cleanup_pgresult_ _cleanup_(lb_pg_clearp)
