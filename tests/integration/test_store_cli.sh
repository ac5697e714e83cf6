#!/bin/bash
# test_store_cli.sh: oboxfs-store on a file:// store: put/get/head/ls/rm/cp
# round trips, ranges, metadata, stats, and exit codes/messages for errors.
set -eu
BUILD=${OBOXFS_BUILD_DIR:?run through ctest}
STORE_CLI=$BUILD/tools/oboxfs-store
base=${OBOXFS_TEST_DIR:-/tmp}
mkdir -p "$base"
work=$(mktemp -d "$base/store-cli.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir "$work/store"
URL="file://$work/store"

fail() { echo "FAIL: $*" >&2; exit 1; }
cli() { "$STORE_CLI" --no-fsync "$@"; }
# expect_rc CODE STDERR-SUBSTRING CMD...: run, check exit code and message
expect_rc() {
	local want=$1 msg=$2 rc=0
	shift 2
	"$@" >"$work/out" 2>"$work/err" || rc=$?
	[ "$rc" = "$want" ] || fail "'$*' exited $rc, expected $want: $(cat "$work/err")"
	grep -qF -- "$msg" "$work/err" || fail "'$*': stderr lacks '$msg': $(cat "$work/err")"
}

# --- put/get round trip, from a file and from a pipe, binary data
head -c 300000 /dev/urandom >"$work/blob"
cli "$URL" put -m filename=1700000000.M1P2.host -m "path=Maildir/cur" users/a/blob "$work/blob"
cli "$URL" get users/a/blob "$work/blob.back"
cmp "$work/blob" "$work/blob.back" || fail "get to file differs"
cli "$URL" get users/a/blob - | cmp - "$work/blob" || fail "get to pipe differs"
cli "$URL" get users/a/blob >"$work/blob.stdout"
cmp "$work/blob" "$work/blob.stdout" || fail "get to stdout file differs"
cat "$work/blob" | cli "$URL" put users/a/piped -
cli "$URL" get users/a/piped | cmp - "$work/blob" || fail "put from pipe differs"
printf '' | cli "$URL" put empty
[ "$(cli "$URL" get empty | wc -c)" = 0 ] || fail "empty object not empty"

# --- ranges
printf '0123456789' | cli "$URL" put digits
[ "$(cli "$URL" get --range 2:3 digits)" = 234 ] || fail "range 2:3"
[ "$(cli "$URL" get -r 7: digits)" = 789 ] || fail "range to end"
[ "$(cli "$URL" get -r 20:5 digits | wc -c)" = 0 ] || fail "range past end"

# --- head
cli "$URL" head users/a/blob >"$work/head"
grep -qx 'size: 300000' "$work/head" || fail "head size: $(cat "$work/head")"
grep -qE '^mtime: [0-9]{4}-[0-9]{2}-[0-9]{2}T' "$work/head" || fail "head mtime"
grep -qx 'meta: filename=1700000000.M1P2.host' "$work/head" || fail "head meta"
grep -qx 'meta: path=Maildir/cur' "$work/head" || fail "head meta path"

# --- cp keeps data and metadata
cli "$URL" cp users/a/blob users/b/copy
cli "$URL" get users/b/copy | cmp - "$work/blob" || fail "cp data"
cli "$URL" head users/b/copy | grep -qx 'meta: path=Maildir/cur' || fail "cp meta"

# --- ls: sorted, sizes, delimiter
cli "$URL" ls >"$work/ls"
printf '10\tdigits\n0\tempty\n300000\tusers/a/blob\n300000\tusers/a/piped\n300000\tusers/b/copy\n' >"$work/ls.want"
diff "$work/ls.want" "$work/ls" || fail "ls output"
cli "$URL" ls -d >"$work/ls"
printf '10\tdigits\n0\tempty\nPRE\tusers/\n' | diff - "$work/ls" || fail "ls -d"
cli "$URL" ls -d users/ >"$work/ls"
printf 'PRE\tusers/a/\nPRE\tusers/b/\n' | diff - "$work/ls" || fail "ls -d users/"
[ "$(cli "$URL" ls users/a/p)" = "$(printf '300000\tusers/a/piped')" ] || fail "ls partial prefix"

# --- rm (several keys, a missing one is fine)
cli "$URL" rm users/a/blob users/a/piped no/such/key
cli "$URL" ls users/ >"$work/ls"
printf '300000\tusers/b/copy\n' | diff - "$work/ls" || fail "after rm"
[ ! -e "$work/store/users/a" ] || fail "rm left an empty directory"

# --- stats
cli --stats "$URL" get digits "$work/d" >"$work/stats"
grep -qx 'requests.GET: 1' "$work/stats" || fail "stats GET: $(cat "$work/stats")"
grep -qx 'bytes_in: 10' "$work/stats" || fail "stats bytes_in"
cli "$URL" stats | grep -qx 'requests.PUT: 0' || fail "stats command"

# --- errors: exit 1 with a one-line "oboxfs-store: ..." message
expect_rc 1 "oboxfs-store: GET(missing) failed: no such key" cli "$URL" get missing "$work/missing"
[ ! -e "$work/missing" ] || fail "failed get left its output file"
expect_rc 1 "oboxfs-store: HEAD(missing) failed" cli "$URL" head missing
expect_rc 1 "oboxfs-store: COPY(missing) failed" cli "$URL" cp missing x
expect_rc 1 "invalid key" cli "$URL" put a//b "$work/blob"
expect_rc 1 "reserved" cli "$URL" put .oboxfs-tmp/x "$work/blob"
expect_rc 1 "existing prefix" cli "$URL" put users "$work/blob"
expect_rc 1 "metadata name not [a-z0-9-]" cli "$URL" put k -m Bad=1 "$work/blob"
expect_rc 1 "open($work/nonexistent)" cli "$URL" put k "$work/nonexistent"
expect_rc 1 "oboxfs-store: open(/nonexistent-oboxfs) failed" cli file:///nonexistent-oboxfs ls
expect_rc 1 "invalid store URL" cli ftp://x ls
expect_rc 1 "absolute" cli file://relative ls
expect_rc 1 "injected transient error" cli --fault "ops=get" "$URL" get digits -
expect_rc 1 "invalid fault spec" cli --fault "nonsense=1" "$URL" ls
[ "$(wc -l <"$work/err")" = 1 ] || fail "error message is not one line"

# --- usage errors: exit 2
expect_rc 2 "missing URL or COMMAND" cli
expect_rc 2 "unknown command 'frob'" cli "$URL" frob
expect_rc 2 "put needs KEY" cli "$URL" put
expect_rc 2 "cp needs SRC DST" cli "$URL" cp onlyone
expect_rc 2 "rm needs at least one KEY" cli "$URL" rm
expect_rc 2 "invalid --range" cli "$URL" get -r x:1 digits
expect_rc 2 "invalid --addressing" cli --addressing sideways "$URL" ls
expect_rc 2 "-m needs NAME=VALUE" cli "$URL" put -m novalue k "$work/blob"
expect_rc 2 "unrecognized option" cli --frobnicate "$URL" ls
"$STORE_CLI" --help | grep -q '^Usage: oboxfs-store' || fail "--help"

# nothing left in the temporary directory
[ -z "$(ls -A "$work/store/.oboxfs-tmp")" ] || fail "temporary files left"
echo "test_store_cli: all passed"
