#!/usr/bin/env bash
# The main job on a fresh machine: installs what it needs, builds rbuild, makes a Python base
# image without Docker Hub and imports it as python:3-slim, lints the example app's Dockerfile,
# builds it with `rbuild -t user/mypython:v1 .`, runs the built image and checks the page it
# serves.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --release --quiet
rbuild=$PWD/target/release/rbuild
root=${DEMO_ROOT:-/tmp/rbuild-demo}
cache=${XDG_CACHE_HOME:-$HOME/.cache}/rbuild-demo
app=$PWD/examples/mypython
port=${DEMO_PORT:-4000}
mkdir -p "$cache"

echo "== base image python:3-slim (Debian bookworm + python3, by mmdebstrap)"
[[ -f $cache/python-bookworm.tar ]] || scripts/make-python-base.sh "$cache/python-bookworm.tar"
"$rbuild" --root "$root" import "$cache/python-bookworm.tar" python:3-slim
"$rbuild" --root "$root" images

echo "== the example's Dockerfile, linted"
"$rbuild" lint --no-fail "$app/Dockerfile"

echo "== rbuild -t user/mypython:v1 .   (in examples/mypython)"
(cd "$app" && "$rbuild" --root "$root" --progress plain -t user/mypython:v1 .)
echo "== the same build again: every step from the cache"
(cd "$app" && "$rbuild" --root "$root" -q -t user/mypython:v1 .)
"$rbuild" --root "$root" images user/mypython

echo "== run user/mypython:v1 on the host network, port $port"
"$rbuild" --root "$root" run --rm --network host -e PORT="$port" user/mypython:v1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT
page=
for _ in $(seq 100); do
  page=$(curl -fsS "http://127.0.0.1:$port/" 2>/dev/null) && break
  kill -0 "$server" 2>/dev/null || { echo "demo: the container exited early" >&2; exit 1; }
  sleep 0.2
done
echo "$page"
grep -q "Hello World!" <<<"$page" || { echo "demo: unexpected page" >&2; exit 1; }
echo "demo: OK, user/mypython:v1 serves Hello World!"
