# shellcheck shell=bash
# S3 and WebDAV helpers for the end-to-end tests. Source it after lib.sh:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#   source "$(dirname "${BASH_SOURCE[0]}")/remote_lib.sh"
#   need_s3        # and/or need_webdav
#
# scripts/test starts s3rver and `rclone serve webdav` once for the run and
# passes LB_S3_* and LB_WEBDAV_* (scripts/lib/services.sh). Without them
# (`meson test` run directly) need_s3/need_webdav start private servers for
# the test file and stop them on exit. A missing server program skips the
# test loudly (exit 77), except under CI=true, where it fails.

: "${LB_SRC:?LB_SRC must name the source tree (meson sets it)}"
# shellcheck source=scripts/lib/services.sh
source "$LB_SRC/scripts/lib/services.sh"

REMOTE_PRIVATE=()

remote_lib_cleanup() {
        local rc=$? s
        set +e
        for s in "${REMOTE_PRIVATE[@]}"; do
                case $s in
                s3) lb_s3_stop >/dev/null 2>&1 ;;
                webdav) lb_webdav_stop >/dev/null 2>&1 ;;
                esac
        done
        (exit "$rc")
        lb_cleanup
}
trap remote_lib_cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

remote_skip() {
        if [[ ${CI:-} == true ]]; then
                fail "$1; CI must have it (scripts/bootstrap installs it)"
        fi
        echo "SKIP: ################################################################"
        echo "SKIP: $1:"
        echo "SKIP: $(basename "$0") tests NOTHING. Run scripts/bootstrap to install it."
        echo "SKIP: ################################################################"
        exit 77
}

# A unique name per test run, so the plain and the ASan run (and several
# tests) can share one server.
RUN_ID=$(basename "$0" .sh)-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')

need_s3() {
        if [[ -z ${LB_S3_ENDPOINT:-} ]]; then
                lb_s3rver_bin >/dev/null || remote_skip "s3rver is not installed in $LB_NPM_PREFIX"
                echo "# no LB_S3_ENDPOINT: starting a private s3rver for $(basename "$0")"
                lb_s3_start >/dev/null || fail "could not start s3rver"
                REMOTE_PRIVATE+=(s3)
        fi
        export AWS_ACCESS_KEY_ID=$LB_S3_KEY AWS_SECRET_ACCESS_KEY=$LB_S3_SECRET
        # AWS_CA_BUNDLE makes rclone's S3 client fail on plain http; the
        # servers here are on loopback without TLS.
        unset AWS_SESSION_TOKEN AWS_REGION AWS_DEFAULT_REGION AWS_CA_BUNDLE
        # An independent S3 client: rclone, configured through the environment.
        export RCLONE_CONFIG=/dev/null
        export RCLONE_CONFIG_LBS3_TYPE=s3 RCLONE_CONFIG_LBS3_PROVIDER=Other
        export RCLONE_CONFIG_LBS3_ACCESS_KEY_ID=$LB_S3_KEY RCLONE_CONFIG_LBS3_SECRET_ACCESS_KEY=$LB_S3_SECRET
        export RCLONE_CONFIG_LBS3_ENDPOINT=$LB_S3_ENDPOINT RCLONE_CONFIG_LBS3_FORCE_PATH_STYLE=true
        S3_URL=s3:$LB_S3_ENDPOINT/$LB_S3_BUCKET
}

need_webdav() {
        command -v rclone >/dev/null || remote_skip "rclone is not installed"
        if [[ -z ${LB_WEBDAV_URL:-} ]]; then
                echo "# no LB_WEBDAV_URL: starting a private rclone serve webdav for $(basename "$0")"
                lb_webdav_start >/dev/null || fail "could not start rclone serve webdav"
                REMOTE_PRIVATE+=(webdav)
        fi
        export LONGBOX_WEBDAV_PASSWORD=$LB_WEBDAV_PASS
        DAV_URL=webdav:${LB_WEBDAV_URL/http:\/\//http://$LB_WEBDAV_USER@}
}

# Short timeouts and few retries, so error cases finish fast.
export LONGBOX_HTTP_TIMEOUT=${LONGBOX_HTTP_TIMEOUT:-5} LONGBOX_HTTP_RETRIES=${LONGBOX_HTTP_RETRIES:-4}

# rclone_s3_listing PREFIX: "relative-path size" lines of every object under
# lbtest/PREFIX, as rclone (not longbox) sees them.
rclone_s3_listing() {
        rclone lsf -R --files-only --format ps --separator ' ' "lbs3:$LB_S3_BUCKET/$1" | sort
}

# longbox_listing DIR: the same for a local repository directory.
dir_listing() {
        (cd "$1" && find config keys packs index snapshots -type f -printf '%p %s\n' | sort)
}
