#!/bin/bash
# objstore-bench.sh: PUT/GET latency and throughput, 1 KiB and 100 KiB objects,
# 8 parallel requests, against file:// (a temp dir on the local disk) and a
# local Swift S3 started for the run, printed side by side.
#   bench/objstore-bench.sh [BUILD_DIR] [COUNT]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build/release}
count=${2:-400}
bin=$build/bench/objstore-bench
[ -x "$bin" ] || { echo "build first: cmake -S $top -B $build && cmake --build $build" >&2; exit 1; }

work=$(mktemp -d /tmp/oboxfs-bench.XXXXXX)
port=18780
cleanup() { "$top/tests/fixtures/swift-stop.sh" "$work/swift" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT INT TERM

mkdir -p "$work/store"
echo "== file:// (fsync on)"
"$bin" --count "$count" --threads 8 "file://$work/store"

"$top/tests/fixtures/swift-start.sh" "$work/swift" $port oboxfs-bench >/dev/null
printf 'access_key = test:tester\nsecret_key = testing\n' > "$work/cred"
chmod 600 "$work/cred"
echo "== s3:// (local Swift s3api on 127.0.0.1:$port)"
"$bin" --count "$count" --threads 8 --endpoint "http://127.0.0.1:$port" \
	--region us-east-1 --credentials "$work/cred" s3://oboxfs-bench/bench
