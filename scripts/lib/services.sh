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

# ---- S3 (s3rver from npm) and WebDAV (rclone serve webdav) ----
#
# s3rver 3.7.1 is installed by lb_s3rver_install into .cache/npm in the
# source tree (git-ignored); scripts/bootstrap calls it, so a clean clone
# gets it. The server keeps its objects in a temp directory under /tmp and
# listens on 127.0.0.1 on a free port with the bucket $LB_S3_BUCKET made.
# Exports:
#   LB_S3_ENDPOINT  http://127.0.0.1:PORT
#   LB_S3_BUCKET    the bucket made at start (lbtest)
#   LB_S3_DIR       s3rver's data directory (objects are files under it)
#   LB_S3_KEY, LB_S3_SECRET   credentials s3rver accepts (S3RVER/S3RVER)
#   LB_S3_PID
# WebDAV: `rclone serve webdav` over a temp directory with a random
# password. Exports:
#   LB_WEBDAV_URL   http://127.0.0.1:PORT
#   LB_WEBDAV_USER, LB_WEBDAV_PASS
#   LB_WEBDAV_DIR   the served directory
#   LB_WEBDAV_PID

LB_S3RVER_VERSION=3.7.1
_lb_services_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LB_NPM_PREFIX=${LB_NPM_PREFIX:-$_lb_services_root/.cache/npm}

# lb_s3rver_bin: print the s3rver executable if it is installed.
lb_s3rver_bin() {
        local b=$LB_NPM_PREFIX/node_modules/.bin/s3rver
        [[ -x $b ]] && echo "$b"
}

# lb_s3rver_install: npm install s3rver into $LB_NPM_PREFIX (idempotent).
lb_s3rver_install() {
        local v
        if v=$(cat "$LB_NPM_PREFIX/node_modules/s3rver/package.json" 2>/dev/null) &&
                [[ $v == *"\"version\": \"$LB_S3RVER_VERSION\""* ]]; then
                return 0
        fi
        command -v npm >/dev/null || { echo "services: npm not found (install nodejs npm)" >&2; return 1; }
        mkdir -p "$LB_NPM_PREFIX"
        npm install --silent --no-audit --no-fund --prefix "$LB_NPM_PREFIX" "s3rver@$LB_S3RVER_VERSION" >&2
}

# _lb_spawn LOG CMD...: start CMD in the background with no inherited
# descriptors beyond 0-2 (meson waits for its pipes), print its pid.
_lb_spawn() {
        local log=$1
        shift
        (
                local fd
                for fd in "/proc/$BASHPID/fd/"*; do
                        fd=${fd##*/}
                        if ((fd > 2)); then eval "exec $fd>&-"; fi
                done 2>/dev/null
                exec "$@" </dev/null >"$log" 2>&1
        ) &
        echo $!
}

# _lb_wait_http URL PID [SECONDS]: wait until URL answers (any HTTP status).
_lb_wait_http() {
        local deadline=$((SECONDS + ${3:-30}))
        until curl -s -o /dev/null -m 2 "$1"; do
                kill -0 "$2" 2>/dev/null || return 1
                ((SECONDS < deadline)) || return 1
                sleep 0.1
        done
}

lb_s3_start() {
        [[ -z ${LB_S3_PID:-} ]] || return 0
        local bin port dir
        bin=$(lb_s3rver_bin) || { echo "services: s3rver is not installed (scripts/bootstrap installs it)" >&2; return 1; }
        dir=$(mktemp -d /tmp/lb-s3.XXXXXX)
        port=$(lb_free_port)
        LB_S3_BUCKET=lbtest
        # s3rver makes continuation tokens with DES, which OpenSSL 3 keeps in
        # its legacy provider: without it every truncated listing is a 500.
        LB_S3_PID=$(NODE_OPTIONS=--openssl-legacy-provider _lb_spawn "$dir.log" "$bin" -d "$dir" -a 127.0.0.1 -p "$port" -s --configure-bucket "$LB_S3_BUCKET")
        LB_S3_ENDPOINT=http://127.0.0.1:$port
        LB_S3_DIR=$dir
        LB_S3_KEY=S3RVER
        LB_S3_SECRET=S3RVER
        export LB_S3_ENDPOINT LB_S3_BUCKET LB_S3_DIR LB_S3_KEY LB_S3_SECRET LB_S3_PID
        echo "services: starting s3rver on $LB_S3_ENDPOINT (objects in $dir)"
        if ! _lb_wait_http "$LB_S3_ENDPOINT/" "$LB_S3_PID"; then
                cat "$dir.log" >&2
                echo "services: s3rver did not start" >&2
                lb_s3_stop
                return 1
        fi
}

lb_s3_stop() {
        [[ -n ${LB_S3_PID:-} ]] || return 0
        echo "services: stopping s3rver on ${LB_S3_ENDPOINT:-?}"
        kill "$LB_S3_PID" 2>/dev/null || true
        wait "$LB_S3_PID" 2>/dev/null || true
        rm -rf "$LB_S3_DIR" "$LB_S3_DIR.log"
        unset LB_S3_PID LB_S3_ENDPOINT LB_S3_BUCKET LB_S3_DIR LB_S3_KEY LB_S3_SECRET
}

lb_webdav_start() {
        [[ -z ${LB_WEBDAV_PID:-} ]] || return 0
        command -v rclone >/dev/null || { echo "services: rclone is not installed" >&2; return 1; }
        local port dir
        dir=$(mktemp -d /tmp/lb-dav.XXXXXX)
        port=$(lb_free_port)
        LB_WEBDAV_USER=lbuser
        LB_WEBDAV_PASS=pw-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
        LB_WEBDAV_DIR=$dir
        LB_WEBDAV_URL=http://127.0.0.1:$port
        LB_WEBDAV_PID=$(RCLONE_USER=$LB_WEBDAV_USER RCLONE_PASS=$LB_WEBDAV_PASS \
                _lb_spawn "$dir.log" rclone serve webdav "$dir" --addr "127.0.0.1:$port" --log-level ERROR)
        export LB_WEBDAV_URL LB_WEBDAV_USER LB_WEBDAV_PASS LB_WEBDAV_DIR LB_WEBDAV_PID
        echo "services: starting rclone serve webdav on $LB_WEBDAV_URL (files in $dir)"
        if ! _lb_wait_http "$LB_WEBDAV_URL/" "$LB_WEBDAV_PID"; then
                cat "$dir.log" >&2
                echo "services: rclone serve webdav did not start" >&2
                lb_webdav_stop
                return 1
        fi
}

lb_webdav_stop() {
        [[ -n ${LB_WEBDAV_PID:-} ]] || return 0
        echo "services: stopping rclone serve webdav on ${LB_WEBDAV_URL:-?}"
        kill "$LB_WEBDAV_PID" 2>/dev/null || true
        wait "$LB_WEBDAV_PID" 2>/dev/null || true
        rm -rf "$LB_WEBDAV_DIR" "$LB_WEBDAV_DIR.log"
        unset LB_WEBDAV_PID LB_WEBDAV_URL LB_WEBDAV_USER LB_WEBDAV_PASS LB_WEBDAV_DIR
}
