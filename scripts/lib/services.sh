# shellcheck shell=bash
# Throwaway services for the tests and the demo. Source this file; it
# defines functions only. Each start function exports what clients need and
# each stop function is safe to call twice or without a start.
#
# PostgreSQL 15: a fresh cluster per run, initdb'd as the postgres user in a
# temporary directory, listening on 127.0.0.1 and on a socket in that
# directory under /tmp. Exports:
#   LB_PG_HOST      socket directory (use as PGHOST / host=)
#   LB_PG_PORT      TCP port on 127.0.0.1 (and the socket's port)
#   LB_PG_USER      superuser name (postgres)
#   LB_PG_CONNINFO  libpq conninfo for the postgres database over the socket

LB_PG_BIN=${LB_PG_BIN:-/usr/lib/postgresql/15/bin}

# lb_free_port: print a TCP port on 127.0.0.1 that nothing listens on now.
lb_free_port() {
        python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# _lb_pg_as_owner CMD...: run CMD as the cluster owner. initdb refuses to
# run as root, so root runs it as postgres; anyone else runs it as themself.
_lb_pg_as_owner() {
        if [[ $EUID -eq 0 ]]; then
                runuser -u postgres -- "$@"
        else
                "$@"
        fi
}

lb_pg_start() {
        [[ -z ${LB_PG_DIR:-} ]] || return 0
        [[ -x $LB_PG_BIN/initdb ]] ||
                { echo "services: $LB_PG_BIN/initdb not found (install postgresql-15)" >&2; return 1; }
        LB_PG_DIR=$(mktemp -d /tmp/lb-pg.XXXXXX)
        if [[ $EUID -eq 0 ]]; then
                chown postgres: "$LB_PG_DIR"
        fi
        LB_PG_PORT=$(lb_free_port)
        LB_PG_HOST=$LB_PG_DIR
        LB_PG_USER=postgres
        echo "services: starting PostgreSQL 15 on 127.0.0.1:$LB_PG_PORT (data in $LB_PG_DIR)"
        if ! _lb_pg_as_owner "$LB_PG_BIN/initdb" -D "$LB_PG_DIR/data" -U "$LB_PG_USER" \
                        -A trust -E UTF8 --locale=C.UTF-8 --no-sync \
                        >"$LB_PG_DIR/initdb.log" 2>&1; then
                cat "$LB_PG_DIR/initdb.log" >&2
                echo "services: initdb failed" >&2
                return 1
        fi
        if ! _lb_pg_as_owner "$LB_PG_BIN/pg_ctl" -D "$LB_PG_DIR/data" -l "$LB_PG_DIR/server.log" -w \
                        -o "-c listen_addresses=127.0.0.1 -p $LB_PG_PORT -k $LB_PG_DIR -c fsync=off" \
                        start >/dev/null; then
                cat "$LB_PG_DIR/server.log" >&2
                echo "services: PostgreSQL failed to start" >&2
                return 1
        fi
        LB_PG_CONNINFO="host=$LB_PG_HOST port=$LB_PG_PORT user=$LB_PG_USER dbname=postgres"
        export LB_PG_DIR LB_PG_HOST LB_PG_PORT LB_PG_USER LB_PG_CONNINFO
}

lb_pg_stop() {
        [[ -n ${LB_PG_DIR:-} ]] || return 0
        if [[ -f $LB_PG_DIR/data/postmaster.pid ]]; then
                echo "services: stopping PostgreSQL on port ${LB_PG_PORT:-?}"
                _lb_pg_as_owner "$LB_PG_BIN/pg_ctl" -D "$LB_PG_DIR/data" -m fast -w stop >/dev/null ||
                        echo "services: warning: pg_ctl stop failed; see $LB_PG_DIR/server.log" >&2
        fi
        rm -rf "$LB_PG_DIR"
        unset LB_PG_DIR LB_PG_HOST LB_PG_PORT LB_PG_USER LB_PG_CONNINFO
}
