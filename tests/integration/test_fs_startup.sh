#!/bin/bash
# test_fs_startup.sh: oboxfs startup and shutdown.
#  - bad options, malformed values, an unusable cache dir, an unreachable
#    store, a bad mount point, a cache dir already in use: one line on
#    stderr, non-zero exit, nothing mounted;
#  - daemonized mount + SIGTERM, foreground + SIGINT, fusermount3 -u: the
#    mount goes away and the daemon exits 0.
# Every mount and process started here is taken down by the EXIT trap.
set -u

: "${OBOXFS_BUILD_DIR:?}" "${OBOXFS_TEST_DIR:?}"
OBOXFS=$OBOXFS_BUILD_DIR/fs/oboxfs
WORK=$OBOXFS_TEST_DIR/fs_startup
STORE=$WORK/store CACHE=$WORK/cache MNT=$WORK/mnt
FAILS=0
PIDS=()

is_mounted() { awk -v m="$MNT" '$2 == m { f = 1 } END { exit !f }' /proc/mounts; }

cleanup() {
    if is_mounted; then fusermount3 -u -z "$MNT" 2>/dev/null; fi
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
    return 0
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; FAILS=$((FAILS + 1)); }

# daemon pids serving our mount point (found by id, killed by id)
daemon_pids() { pgrep -f -- "oboxfs .*$MNT\$" || true; }

wait_unmounted() {
    for _ in $(seq 1 100); do is_mounted || return 0; sleep 0.1; done
    return 1
}

if is_mounted; then fusermount3 -u -z "$MNT"; fi
rm -rf "$WORK"
mkdir -p "$STORE" "$MNT"

# expect_refused DESCRIPTION ARGS...: exit != 0, one stderr line, no mount
# (CHECK_MOUNT=no when our mount point is legitimately mounted already)
expect_refused() {
    local what=$1 err rc lines
    shift
    err=$("$OBOXFS" "$@" 2>&1 >/dev/null)
    rc=$?
    lines=$(printf '%s\n' "$err" | grep -c .)
    if [ "$rc" -eq 0 ]; then fail "$what: exit status 0"; fi
    if [ "$lines" -ne 1 ]; then fail "$what: $lines stderr lines: $err"; fi
    if [ "${CHECK_MOUNT:-yes}" = yes ] && is_mounted; then
        fail "$what: mounted anyway"
        fusermount3 -u "$MNT"
    fi
    echo "ok: $what -> $err"
}

expect_refused "unknown option" -o bogus,cache_dir="$CACHE" "file://$STORE" "$MNT"
expect_refused "malformed upload_interval" -o upload_interval=5x,cache_dir="$CACHE" "file://$STORE" "$MNT"
expect_refused "zero upload_deliveries" -o upload_deliveries=0,cache_dir="$CACHE" "file://$STORE" "$MNT"
expect_refused "bad addressing" -o addressing=sideways,cache_dir="$CACHE" "file://$STORE" "$MNT"
expect_refused "malformed cache_size" -o cache_size=10X,cache_dir="$CACHE" "file://$STORE" "$MNT"
expect_refused "zero cache_size" -o cache_size=0,cache_dir="$CACHE" "file://$STORE" "$MNT"
expect_refused "relative cache_dir" -o cache_dir=relative "file://$STORE" "$MNT"
touch "$WORK/a-file"
expect_refused "cache dir is a file" -o cache_dir="$WORK/a-file" "file://$STORE" "$MNT"
expect_refused "missing store dir" -o cache_dir="$CACHE" "file://$WORK/no-such-store" "$MNT"
expect_refused "bad store URL" -o cache_dir="$CACHE" "ftp://host/x" "$MNT"
expect_refused "s3 without credentials" -o cache_dir="$CACHE" "s3://bucket" "$MNT"
AWS_ACCESS_KEY_ID=id AWS_SECRET_ACCESS_KEY=secret \
    expect_refused "unreachable s3 endpoint" \
    -o cache_dir="$CACHE",endpoint=http://127.0.0.1:1 "s3://bucket" "$MNT"
expect_refused "missing mount point" -o cache_dir="$CACHE" "file://$STORE" "$WORK/no-such-mnt"
expect_refused "missing arguments" "file://$STORE"

# daemonized mount, SIGTERM
if ! "$OBOXFS" -o cache_dir="$CACHE",no_fsync "file://$STORE" "$MNT"; then
    fail "daemonized mount failed"
fi
if ! is_mounted; then fail "not mounted after a daemonized start"; fi
CHECK_MOUNT=no expect_refused "cache dir in use" -f -o cache_dir="$CACHE" "file://$STORE" "$WORK/a-file"
mkdir "$MNT/user@example.com" && echo data > "$MNT/user@example.com/f" ||
    fail "writing to the daemonized mount failed"
pids=$(daemon_pids)
if [ -z "$pids" ]; then
    fail "daemon process not found"
else
    # the daemon's threads (index uploads) run in the daemonized process
    stat() { awk -v n="$1" '$1 == n { print $2 }' "$MNT/.oboxfs-stats"; }
    passes0=$(stat index_upload_passes)
    kill -USR1 $pids
    for _ in $(seq 1 200); do
        [ "$(stat index_upload_passes)" -gt "$passes0" ] && break
        sleep 0.05
    done
    [ "$(stat index_upload_passes)" -gt "$passes0" ] &&
        [ "$(stat index_dirty_users)" = 0 ] ||
        fail "daemonized: SIGUSR1 did not upload the index"
    kill -TERM $pids
    wait_unmounted || fail "SIGTERM did not unmount"
    for _ in $(seq 1 50); do [ -z "$(daemon_pids)" ] && break; sleep 0.1; done
    [ -z "$(daemon_pids)" ] || fail "daemon still running after SIGTERM"
fi
echo "ok: daemonized mount + SIGTERM"

# foreground, SIGINT: exit status 0, data kept (a non-interactive shell
# starts background jobs with SIGINT ignored: restore its default)
env --default-signal=INT "$OBOXFS" -f -o cache_dir="$CACHE",no_fsync "file://$STORE" "$MNT" 2>"$WORK/fg.log" &
fg=$!
PIDS+=("$fg")
for _ in $(seq 1 100); do is_mounted && break; sleep 0.05; done
is_mounted || fail "foreground mount did not appear"
[ "$(cat "$MNT/user@example.com/f" 2>/dev/null)" = data ] ||
    fail "data lost across the remount"
kill -INT "$fg"
wait "$fg"
rc=$?
[ "$rc" -eq 0 ] || fail "foreground daemon exit status $rc after SIGINT: $(cat "$WORK/fg.log")"
is_mounted && fail "still mounted after SIGINT"
echo "ok: foreground + SIGINT"

# foreground, fusermount3 -u
"$OBOXFS" -f -o cache_dir="$CACHE",no_fsync "file://$STORE" "$MNT" 2>"$WORK/fg.log" &
fg=$!
PIDS+=("$fg")
for _ in $(seq 1 100); do is_mounted && break; sleep 0.05; done
fusermount3 -u "$MNT" || fail "fusermount3 -u failed"
wait "$fg"
rc=$?
[ "$rc" -eq 0 ] || fail "exit status $rc after fusermount3 -u: $(cat "$WORK/fg.log")"
echo "ok: foreground + fusermount3 -u"

if [ "$FAILS" -ne 0 ]; then
    echo "$FAILS failures" >&2
    exit 1
fi
rm -rf "$WORK"
echo "all startup/shutdown checks passed"
