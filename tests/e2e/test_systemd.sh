#!/usr/bin/env bash
# The shipped scheduling files: every systemd unit and timer of
# scripts/systemd passes `systemd-analyze verify` (with ExecStart pointing
# at the built binary), the hardening options are present, the timers keep
# the plan's schedule, and the cron example runs the same commands.
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SRC=$LB_SRC/scripts/systemd
if ! command -v systemd-analyze >/dev/null; then
        [[ ${CI:-} != true ]] || fail "systemd-analyze is missing; CI must have it (scripts/bootstrap installs systemd)"
        echo "SKIP: ################################################################"
        echo "SKIP: systemd-analyze is not installed: the units are NOT verified."
        echo "SKIP: Install the systemd package (scripts/bootstrap does)."
        echo "SKIP: ################################################################"
        exit 77
fi

mkdir -p "$T/units"
for f in "$SRC"/*.service "$SRC"/*.timer; do
        sed "s|/usr/bin/longbox|$LONGBOX|g" "$f" >"$T/units/$(basename "$f")"
done
n=$(find "$T/units" -type f | wc -l)
((n == 10)) || fail "expected 5 services and 5 timers, found $n files"

# verify loads each timer's service from the unit path.
rc=0
SYSTEMD_UNIT_PATH=$T/units: systemd-analyze verify --man=no "$T"/units/* >"$T/verify.out" 2>&1 || rc=$?
# A dedicated user may not exist on the test machine: that is not a unit error.
grep -v -E 'Failed to resolve (user|group)|longbox: (User|Group) .* not found' "$T/verify.out" >"$T/verify.real" || true
if ((rc != 0)) || [[ -s $T/verify.real ]]; then
        sed 's/^/#   /' "$T/verify.out"
        fail "systemd-analyze verify failed (exit $rc)"
fi
ok "systemd-analyze verify: $n units clean"

for f in "$SRC"/*.service; do
        for opt in ProtectSystem=strict PrivateTmp=yes NoNewPrivileges=yes User=longbox ReadWritePaths=; do
                grep -q "^$opt" "$f" || fail "$(basename "$f") lacks $opt"
        done
        grep -q '^ExecStart=/usr/bin/longbox ' "$f" || fail "$(basename "$f") does not run /usr/bin/longbox"
done
ok "every service is hardened (ProtectSystem=strict, PrivateTmp, NoNewPrivileges, a dedicated user)"

# The plan's schedule, as systemd computes it.
next() { systemd-analyze calendar --iterations=2 "$(sed -n 's/^OnCalendar=//p' "$SRC/$1")" | grep -E '^ *(Next|Iter)'; }
grep -q '^ExecStart=/usr/bin/longbox run$' "$SRC/longbox-backup.service" || fail "backup service does not run 'longbox run'"
next longbox-backup.timer | grep -q -E '01:30:00' || fail "backup timer is not nightly at 01:30"
[[ $(systemd-analyze calendar --iterations=5 "$(sed -n 's/^OnCalendar=//p' "$SRC/longbox-drill.timer")" |
        grep -c -E '\-(01|04|07|10)-02 ') == 5 ]] || fail "drill timer is not quarterly"
systemd-analyze calendar "$(sed -n 's/^OnCalendar=//p' "$SRC/longbox-prune.timer")" | grep -q 'Sun ' ||
        fail "prune timer is not weekly on Sunday"
grep -q -- '--read-data' "$SRC/longbox-check-data.service" || fail "monthly check does not read the data"
ok "timers: nightly run, weekly prune and check, monthly check --read-data, quarterly drill"

# The cron example: five lines with the same commands.
for cmd in ' run$' ' forget ' ' check$' ' check --read-data$' ' drill$'; do
        grep -v '^#' "$SRC/longbox.cron" | grep -q -E -- "$cmd" || fail "cron example lacks '$cmd'"
done
ok "cron example covers the same jobs"
