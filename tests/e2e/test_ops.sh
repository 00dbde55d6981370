#!/usr/bin/env bash
# Running it for real, without PostgreSQL: the config file (config check,
# secrets permissions, values used by the commands), status exit codes
# over crafted repository states, notifications (command and webhook, on a
# real HTTP listener on loopback) fired by induced failures (an unreachable
# remote, a stopped database, a full disk), the metrics file, and run.
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

HERE=$(dirname "${BASH_SOURCE[0]}")
export LONGBOX_REPO=$T/repo
init_repo "$LONGBOX_REPO"
mkdir -p "$T/src" && echo "hello" >"$T/src/a.txt"

# --- config check ---------------------------------------------------------------------------------
CONF=$T/longbox.conf
cp "$LB_SRC/tests/data/config/bad-unknown-key.conf" "$CONF"
chmod 600 "$CONF"
expect_exit 1 lb config check "$CONF"
grep -q -F "$CONF:12: unknown key 'keep-daly' in [retention]" "$LB_OUT" ||
        fail "config check does not name line 12 and the unknown key: $(cat "$LB_OUT")"
ok "config check reports an unknown key with file and line"

# A broken config stops every command that reads it, with a pointer to config check.
expect_exit 2 lb --config "$CONF" snapshots
output_has "config check" || fail "a broken config does not point to 'longbox config check'"
ok "commands refuse a broken config (exit 2)"

printf 'test-pass\n' >"$T/pw"
chmod 600 "$T/pw"
cat >"$CONF" <<EOC
[repository]
location = $LONGBOX_REPO
password-file = $T/pw
[retention]
keep-daily = 7
keep-weekly = 5
keep-monthly = 4
EOC
chmod 644 "$CONF"
expect_exit 1 lb config check "$CONF"
output_has "chmod 600 $CONF" || fail "a group-readable config with secrets is not refused with a chmod hint"
expect_exit 2 env -u LONGBOX_PASSWORD LONGBOX_CONFIG="$CONF" "$LONGBOX" snapshots
output_has "chmod 600" || fail "commands do not refuse a group-readable config naming a password file"
ok "a config naming a secret file and readable by others is refused (chmod 600 hint)"

chmod 600 "$CONF"
expect_exit 0 lb config check "$CONF"
output_has "$CONF: OK" || fail "config check of a good file does not say OK"
# The repository and passphrase come from the config (LONGBOX_REPO and
# LONGBOX_PASSWORD unset); --repo still overrides it.
expect_exit 0 env -u LONGBOX_PASSWORD -u LONGBOX_REPO "$LONGBOX" --config "$CONF" backup "$T/src"
[[ $(snapshot_count) == 1 ]] || fail "backup with the repository from the config recorded no snapshot"
expect_exit 10 env -u LONGBOX_PASSWORD "$LONGBOX" --config "$CONF" --repo "$T/nothing-here" snapshots
ok "the repository and password file come from the config; --repo overrides"

# --- status ---------------------------------------------------------------------------------------
init_repo "$T/empty"
expect_exit 2 lb status --repo "$T/empty"
grep -q '^LONGBOX CRITICAL - .*no snapshot' "$LB_OUT" || fail "status of an empty repository: $(cat "$LB_OUT")"
ok "status: no snapshot is CRITICAL (exit 2)"

expect_exit 1 lb status
grep -q '^LONGBOX WARNING - .*no successful check recorded' "$LB_OUT" || fail "status: $(cat "$LB_OUT")"
grep -q '| snapshot_age=[0-9]*s;93600;' "$LB_OUT" || fail "status has no snapshot_age perfdata: $(cat "$LB_OUT")"
ok "status: fresh snapshot, no check or drill yet is WARNING (exit 1) with perfdata"

expect_exit 0 lb check
expect_exit 1 lb status --json
[[ $(json 'd["checks"]["check"]["status"]' <"$LB_OUT") == ok ]] || fail "status after a check: $(cat "$LB_OUT")"
[[ $(json 'd["checks"]["drill"]["status"]' <"$LB_OUT") == warning ]] || fail "status --json drill: $(cat "$LB_OUT")"
[[ $(json 'd["exit_code"]' <"$LB_OUT") == 1 ]] || fail "status --json exit_code"
ok "status --json: a successful check is recorded and seen; no drill is a warning"

sleep 2
expect_exit 2 lb status --max-age 1s
grep -q 'newest snapshot .* old (more than 1s)' "$LB_OUT" || fail "status --max-age 1s: $(cat "$LB_OUT")"
ok "status --max-age: a snapshot older than the limit is CRITICAL"

expect_exit 3 env LONGBOX_PASSWORD=wrong "$LONGBOX" status
grep -q '^LONGBOX UNKNOWN' "$LB_OUT" || fail "status with a wrong passphrase: $(cat "$LB_OUT")"
ok "status: a repository that cannot be opened is UNKNOWN (exit 3)"

# --- notifications --------------------------------------------------------------------------------
cat >"$T/notify.sh" <<'EOS'
#!/bin/sh
{
        echo "event=$LONGBOX_EVENT status=$LONGBOX_STATUS exit=$LONGBOX_EXIT_CODE"
        echo "message=$LONGBOX_MESSAGE"
        echo "database=$LONGBOX_DATABASE password=${LONGBOX_PASSWORD:-unset}"
} >>"$NOTIFY_LOG"
EOS
chmod 755 "$T/notify.sh"
export NOTIFY_LOG=$T/notify.log

python3 "$HERE/http_sink.py" "$T/port" "$T/hooks.log" &
register_pid $!
wait_for 10 test -s "$T/port" || fail "the webhook receiver did not start"
PORT=$(cat "$T/port")
printf 'http://127.0.0.1:%s/hook/secret-token\n' "$PORT" >"$T/webhook-url"
chmod 600 "$T/webhook-url"

NCONF=$T/notify.conf
cat >"$NCONF" <<EOC
[notify]
command = $T/notify.sh
webhook-file = $T/webhook-url
timeout = 10
EOC
chmod 600 "$NCONF"
export LONGBOX_CONFIG=$NCONF

# hooks_count: webhook POSTs received so far.
hooks_count() { [[ -f $T/hooks.log ]] && wc -l <"$T/hooks.log" || echo 0; }
# last_hook EXPR: evaluate EXPR over the last webhook's JSON body (d).
last_hook() { tail -n 1 "$T/hooks.log" | json 'd["body"]' | json "$1"; }

# 1. An unreachable remote (an s3: location this build cannot use).
rc=0
lb --repo s3:http://127.0.0.1:1/b backup "$T/src" >"$T/out" 2>&1 || rc=$?
((rc != 0)) || fail "backup to an unreachable remote exited 0"
grep -q 'event=backup status=failure' "$NOTIFY_LOG" || fail "no failure notification command: $(cat "$NOTIFY_LOG" 2>/dev/null)"
grep -q 'password=unset' "$NOTIFY_LOG" || fail "the notify command inherited LONGBOX_PASSWORD"
[[ $(hooks_count) == 1 ]] || fail "webhook not posted once for the failure ($(hooks_count))"
[[ $(tail -n 1 "$T/hooks.log" | json 'd["content_type"]') == application/json ]] || fail "webhook body is not JSON"
[[ $(last_hook 'd["event"]') == backup && $(last_hook 'd["status"]') == failure ]] || fail "webhook body: $(tail -n 1 "$T/hooks.log")"
[[ $(last_hook 'd["exit_code"]') == "$rc" ]] || fail "webhook exit_code is not $rc"
last_hook 'd["message"]' | grep -q -i 'repository' || fail "webhook message does not say what failed"
ok "unreachable remote: backup fails (exit $rc), command and webhook notified with the reason"

# 2. A stopped database (nothing listens on port 1): the repository opens,
#    so the failure is also recorded as an event that status reports.
: >"$NOTIFY_LOG"
rc=0
lb backup --db "host=127.0.0.1 port=1 dbname=shop connect_timeout=5" >"$T/out" 2>&1 || rc=$?
((rc != 0)) || fail "backup of a stopped database exited 0"
grep -q 'event=backup status=failure' "$NOTIFY_LOG" || fail "no notification for a stopped database"
grep -q 'message=.*shop' "$NOTIFY_LOG" || fail "notification message does not name the database: $(cat "$NOTIFY_LOG")"
[[ $(hooks_count) == 2 ]] || fail "webhook not posted for the stopped database"
expect_exit 2 lb status
grep -q 'last backup .*failure' "$LB_OUT" || fail "status does not report the failed backup: $(cat "$LB_OUT")"
ok "stopped database: backup fails, notified, recorded; status CRITICAL names the failed backup"

# 3. A full disk.
if [[ $EUID -ne 0 ]]; then
        skip "full disk case: needs root to mount a tmpfs"
elif ! mkdir -p "$T/small" || ! mount -t tmpfs -o size=2m,mode=0700 tmpfs "$T/small" 2>"$T/mount.err"; then
        skip "full disk case: mount -t tmpfs not permitted here: $(cat "$T/mount.err")"
else
        register_mount "$T/small"
        init_repo "$T/small/repo"
        mkdir -p "$T/big" && gen_random 5 8000000 >"$T/big/random"
        : >"$NOTIFY_LOG"
        rc=0
        lb --repo "$T/small/repo" backup "$T/big" >"$T/out" 2>&1 || rc=$?
        ((rc != 0)) || fail "backup into a full file system exited 0"
        grep -q 'event=backup status=failure' "$NOTIFY_LOG" || fail "no notification for a full disk"
        grep -q -i 'message=.*space' "$NOTIFY_LOG" || fail "full-disk notification does not mention space: $(cat "$NOTIFY_LOG")"
        [[ $(hooks_count) == 3 ]] || fail "webhook not posted for the full disk"
        ok "full disk: backup fails, notified with 'no space left'"
fi
N=$(hooks_count)

# 4. Success notifies only with on-success = yes.
expect_exit 0 lb backup "$T/src"
[[ $(hooks_count) == "$N" ]] || fail "a success notified without on-success"
echo "on-success = yes" >>"$NCONF"
: >"$NOTIFY_LOG"
expect_exit 0 lb backup "$T/src"
[[ $(hooks_count) == $((N + 1)) ]] || fail "on-success = yes did not notify a success"
[[ $(last_hook 'd["status"]') == success ]] || fail "success webhook status"
last_hook 'd["snapshot_id"]' | grep -q -E '^[0-9a-f]{64}$' || fail "success webhook has no snapshot id"
grep -q 'event=backup status=success exit=0' "$NOTIFY_LOG" || fail "on-success command not run"
ok "on-success = yes: a successful backup notifies too, with its snapshot id"

# 5. A webhook that fails (HTTP 500) is a warning; the exit code stays.
python3 "$HERE/http_sink.py" "$T/port500" "$T/hooks500.log" 500 &
register_pid $!
wait_for 10 test -s "$T/port500" || fail "the second webhook receiver did not start"
printf 'http://127.0.0.1:%s/x\n' "$(cat "$T/port500")" >"$T/webhook-url"
expect_exit 0 lb backup "$T/src"
output_has "HTTP 500" || fail "a failing webhook is not reported"
grep -q -F 'x' "$T/hooks500.log" || fail "the webhook was not posted to the failing receiver"
! output_has "secret-token" || fail "the webhook URL (a secret) was printed"
ok "a failing webhook is a warning (HTTP 500 reported), the command's exit code stays 0"
export LONGBOX_CONFIG=$T/.empty.conf

# --- metrics --------------------------------------------------------------------------------------
M=$T/metrics/longbox.prom
mkdir -p "$T/metrics"
expect_exit 0 lb backup --metrics-file "$M" "$T/src"
grep -q '^longbox_last_success_timestamp_seconds{command="backup"} [0-9]' "$M" || fail "no last success timestamp: $(cat "$M")"
grep -q '^longbox_last_run_exit_code{command="backup"} 0$' "$M" || fail "exit code 0 not in metrics"
grep -q '^longbox_backup_bytes_processed{command="backup"} 6$' "$M" || fail "bytes processed (6) not in metrics: $(cat "$M")"
grep -q '^longbox_backup_dedup_ratio{command="backup"} [0-9.]*$' "$M" || fail "no dedup ratio"
grep -q '^# TYPE longbox_last_run_duration_seconds gauge$' "$M" || fail "no TYPE line"
success_ts=$(grep '^longbox_last_success_timestamp_seconds{command="backup"}' "$M" | cut -d' ' -f2)
sleep 1
expect_exit 1 lb backup --metrics-file "$M" --stdin-name x --stdin-from-command -- false
grep -q '^longbox_last_run_exit_code{command="backup"} ' "$M" || fail "exit code missing after a failure"
[[ $(grep '^longbox_last_success_timestamp_seconds{command="backup"}' "$M" | cut -d' ' -f2) == "$success_ts" ]] ||
        fail "a failure changed the last success timestamp"
grep -q '^longbox_last_run_success{command="backup"} 0$' "$M" || fail "last_run_success is not 0 after a failure"
LONGBOX_METRICS_FILE=$M expect_exit 0 lb check
grep -q '^longbox_last_run_success{command="check"} 1$' "$M" || fail "check metrics missing (LONGBOX_METRICS_FILE)"
grep -q '{command="backup"}' "$M" || fail "the check's update dropped the backup's metrics"
[[ $(find "$T/metrics" -type f | wc -l) == 1 ]] || fail "temporary files left next to the metrics file"
python3 - "$M" <<'EOP' || fail "metrics file is not valid Prometheus text format"
import re, sys
seen_type = set()
for line in open(sys.argv[1]):
    line = line.rstrip("\n")
    if line.startswith("# HELP ") or line.startswith("# TYPE "):
        if line.startswith("# TYPE "):
            seen_type.add(line.split()[2])
        continue
    m = re.fullmatch(r'([a-z_]+)\{([a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*)\} (-?[0-9.]+(e[+-]?[0-9]+)?)', line)
    assert m, line
    assert m.group(1) in seen_type, "sample before its TYPE: " + line
EOP
ok "metrics file: success and failure per command, merged across commands, written atomically"

# --- run ------------------------------------------------------------------------------------------
RCONF=$T/run.conf
cat >"$RCONF" <<EOC
[repository]
location = $LONGBOX_REPO
[database shop]
conninfo = host=127.0.0.1 port=1 dbname=shop connect_timeout=5
[retention]
keep-daily = 7
[notify]
command = $T/notify.sh
EOC
chmod 600 "$RCONF"
: >"$NOTIFY_LOG"
expect_exit 1 lb --config "$RCONF" run
output_has "sync, forget and prune are skipped" || fail "run does not say what it skipped"
[[ $(grep -c '^event=' "$NOTIFY_LOG") == 1 ]] || fail "run sent $(grep -c '^event=' "$NOTIFY_LOG") notifications, expected 1"
grep -q 'event=run status=failure exit=1' "$NOTIFY_LOG" || fail "run notification: $(cat "$NOTIFY_LOG")"
expect_exit 2 lb status --json
[[ $(json 'd["last_run"]["kind"]' <"$LB_OUT") == run ]] || fail "status does not show the run"
[[ $(json 'd["checks"]["last_run"]["status"]' <"$LB_OUT") == critical ]] || fail "failed run is not critical"
ok "run: a failed backup step fails the run (exit 1), one notification, status CRITICAL"

expect_exit 2 lb --config "$T/does-not-exist.conf" run
ok "run without its config file is a usage error"

# --- events in the repository ---------------------------------------------------------------------
n_events=$(find "$LONGBOX_REPO/events" -type f | wc -l)
((n_events >= 5)) || fail "only $n_events events in the repository"
[[ $(stat -c %a "$(find "$LONGBOX_REPO/events" -type f | head -n 1)") == 600 ]] || fail "event file is not 0600"
! grep -r -q -a "shop" "$LONGBOX_REPO/events" || fail "event files are not sealed (plaintext found)"
expect_exit 0 lb check
ok "events: recorded ($n_events), sealed, mode 0600; check still passes"
