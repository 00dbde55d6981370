# shellcheck shell=bash
# Throwaway services for the tests, the demo and the benchmarks. Source
# this file; it defines functions only. Each start function exports what
# clients need and each stop function is safe to call twice or without a
# start.
#
# PostgreSQL 15: a fresh cluster per run, initdb'd as the postgres user (when
# run as root; as the caller otherwise) in a temporary directory under /tmp,
# listening on 127.0.0.1 on a free port and on a socket in that directory.
# Every setting lives in the cluster's postgresql.conf, so a plain
# `lb_pg_ctl start` brings it back after a crash test. Authentication:
#   - the socket and TCP: trust for every role (superuser postgres included)
#   - TCP for the role $LB_PG_PWUSER only: scram-sha-256 with the random
#     password $LB_PG_PWPASS (for the tests of bad passwords)
# Exports:
#   LB_PGHOST       socket directory (use as PGHOST / host=)
#   LB_PGPORT       port, on 127.0.0.1 and the socket
#   LB_PGUSER       superuser name (postgres)
#   LB_PG_CONNINFO  libpq conninfo for the postgres database over the socket
#   LB_PG_PWUSER, LB_PG_PWPASS  the password role and its password
#   LB_PG_DIR       the cluster's directory (data in $LB_PG_DIR/data, log in
#                   $LB_PG_DIR/server.log)
#   LB_PG_BIN       the PostgreSQL 15 binaries

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

# lb_pg_ctl ARGS...: pg_ctl on the running throwaway cluster, as its owner
# (e.g. `lb_pg_ctl stop -m immediate`, `lb_pg_ctl start`).
lb_pg_ctl() {
        [[ -n ${LB_PG_DIR:-} ]] || { echo "services: no throwaway PostgreSQL cluster" >&2; return 1; }
        (
                # The server must not inherit our descriptors beyond 0-2 (a
                # test's fd 9 is meson's pipe: meson would wait for the
                # server to exit), nor our stdin.
                local fd
                for fd in "/proc/$BASHPID/fd/"*; do
                        fd=${fd##*/}
                        if ((fd > 2)); then eval "exec $fd>&-"; fi
                done 2>/dev/null
                _lb_pg_as_owner "$LB_PG_BIN/pg_ctl" -D "$LB_PG_DIR/data" -l "$LB_PG_DIR/server.log" \
                        -w -t 60 "$@" </dev/null
        )
}

# lb_pg_start: initdb and start a cluster. Extra settings for its
# postgresql.conf: LB_PG_SETTINGS="name=value ..." (e.g. shared_buffers=256MB).
lb_pg_start() {
        [[ -z ${LB_PG_DIR:-} ]] || return 0
        local kv
        [[ -x $LB_PG_BIN/initdb && -x $LB_PG_BIN/postgres ]] ||
                { echo "services: $LB_PG_BIN/initdb not found (install postgresql-15)" >&2; return 1; }
        LB_PG_DIR=$(mktemp -d /tmp/lb-pg.XXXXXX)
        if [[ $EUID -eq 0 ]]; then
                chown postgres: "$LB_PG_DIR"
        fi
        LB_PGPORT=$(lb_free_port)
        LB_PGHOST=$LB_PG_DIR
        LB_PGUSER=postgres
        LB_PG_PWUSER=lb_pwuser
        LB_PG_PWPASS=pw-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
        export LB_PG_DIR LB_PGHOST LB_PGPORT LB_PGUSER LB_PG_PWUSER LB_PG_PWPASS LB_PG_BIN
        echo "services: starting PostgreSQL 15 on 127.0.0.1:$LB_PGPORT (cluster in $LB_PG_DIR)"
        if ! _lb_pg_as_owner "$LB_PG_BIN/initdb" -D "$LB_PG_DIR/data" -U "$LB_PGUSER" \
                        -A trust -E UTF8 --locale=C.UTF-8 --no-sync \
                        >"$LB_PG_DIR/initdb.log" 2>&1; then
                cat "$LB_PG_DIR/initdb.log" >&2
                echo "services: initdb failed" >&2
                lb_pg_stop
                return 1
        fi
        {
                echo "# throwaway cluster settings (scripts/lib/services.sh)"
                echo "listen_addresses = '127.0.0.1'"
                echo "port = $LB_PGPORT"
                echo "unix_socket_directories = '$LB_PG_DIR'"
                echo "fsync = off"
                echo "synchronous_commit = off"
                echo "full_page_writes = off"
                echo "max_wal_size = 2GB"
                echo "password_encryption = 'scram-sha-256'"
                for kv in ${LB_PG_SETTINGS:-}; do
                        echo "${kv%%=*} = '${kv#*=}'"
                done
        } >>"$LB_PG_DIR/data/postgresql.conf"
        # First match wins: the password role must authenticate over TCP.
        cat >"$LB_PG_DIR/data/pg_hba.conf" <<HBA
# TYPE  DATABASE  USER            ADDRESS       METHOD
local   all       all                           trust
host    all       $LB_PG_PWUSER   127.0.0.1/32  scram-sha-256
host    all       all             127.0.0.1/32  trust
HBA
        if ! lb_pg_ctl start >/dev/null; then
                cat "$LB_PG_DIR/server.log" >&2
                echo "services: PostgreSQL failed to start" >&2
                lb_pg_stop
                return 1
        fi
        LB_PG_CONNINFO="host=$LB_PGHOST port=$LB_PGPORT user=$LB_PGUSER dbname=postgres"
        export LB_PG_CONNINFO
        if ! "$LB_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$LB_PG_CONNINFO" \
                        -c "CREATE ROLE $LB_PG_PWUSER LOGIN PASSWORD '$LB_PG_PWPASS'" >/dev/null; then
                echo "services: could not create the password role" >&2
                lb_pg_stop
                return 1
        fi
}

# lb_pg_wait_ready [SECONDS]: wait until the cluster accepts connections.
lb_pg_wait_ready() {
        local deadline=$((SECONDS + ${1:-30}))
        until "$LB_PG_BIN/pg_isready" -q -h "$LB_PGHOST" -p "$LB_PGPORT"; do
                ((SECONDS < deadline)) || return 1
                sleep 0.1
        done
}

lb_pg_stop() {
        [[ -n ${LB_PG_DIR:-} ]] || return 0
        if [[ -f $LB_PG_DIR/data/postmaster.pid ]]; then
                echo "services: stopping PostgreSQL on port ${LB_PGPORT:-?}"
                lb_pg_ctl -m fast stop >/dev/null 2>&1 ||
                        lb_pg_ctl -m immediate stop >/dev/null 2>&1 ||
                        echo "services: warning: pg_ctl stop failed; see $LB_PG_DIR/server.log" >&2
        fi
        rm -rf "$LB_PG_DIR"
        unset LB_PG_DIR LB_PGHOST LB_PGPORT LB_PGUSER LB_PG_CONNINFO LB_PG_PWUSER LB_PG_PWPASS
}
