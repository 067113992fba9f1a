#!/usr/bin/env bash
# Push and pull of a 512 MiB image to a local docker-registry: rbuild beside skopeo.
#
# The image is one layer of real files (the first 512 MiB of /usr/lib, sorted), stored
# uncompressed in an rbuild store. Both tools gzip it on push (rbuild: parallel gzip members;
# skopeo: pgzip), and both pull the same pushed image back, keeping the compressed blob as
# sent. rbuild unpacks (and checks the DiffID of) a pulled layer when it is first used: the
# line "first use" times a build FROM the pulled image, which skopeo has no counterpart of. Prints wall seconds, MiB/s of the
# uncompressed image, and CPU seconds (user + system), which the load of other processes skews less.
#
# Usage: benches/registry_push_pull.sh [path/to/rbuild]   (default: target/release/rbuild)
# Needs: docker-registry, skopeo (scripts/install-deps.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
rbuild=${1:-$here/target/release/rbuild}
[[ -x $rbuild ]] || { echo "build it first: cargo build --release" >&2; exit 1; }
size_mib=${SIZE_MIB:-512}

work=$(mktemp -d)
registry_pid=
cleanup() {
  if [[ -n $registry_pid ]]; then kill "$registry_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

port=$(shuf -i 20000-59999 -n 1)
cat >"$work/registry.yml" <<YAML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $work/registry}}
http: {addr: 127.0.0.1:$port, secret: bench}
YAML
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break; sleep 0.1; done
host=127.0.0.1:$port

echo "making a ${size_mib} MiB layer from /usr/lib..." >&2
find /usr/lib -type f -size +0 -printf '%s %P\n' | sort -k2 >"$work/all-files"
awk -v max=$((size_mib << 20)) '{ total += $1; if (total > max) exit; print $2 }' \
  "$work/all-files" >"$work/files"
tar --numeric-owner --owner=0 --group=0 --mtime=@0 --sort=name -C /usr/lib -cf "$work/layer.tar" -T "$work/files"
bytes=$(stat -c %s "$work/layer.tar")
"$rbuild" --root "$work/store" import "$work/layer.tar" bench:1 >/dev/null
rm "$work/layer.tar" # the disk may be short: the store holds it now
sync

# skopeo remembers compressed digests in /var/lib/containers/cache (as root) and would reuse
# blobs from earlier runs: give each skopeo run an empty cache, as on a fresh machine.
fresh_skopeo() {
  mkdir -p /var/lib/containers/cache
  unshare -m sh -c 'mount -t tmpfs none /var/lib/containers/cache && exec skopeo "$@"' skopeo "$@"
}

# The store wrote the layer with O_DIRECT, so it is not in the page cache: read it once, or
# whichever tool pushes first reads it from disk and the other gets it warm.
warm() { cat "$work"/store/blobs/sha256/* >/dev/null; }

timed() { # label, command...
  local start end cpu
  warm
  start=$(date +%s.%N)
  # `times` in the subshell: user and system CPU of the command's processes (the second line).
  cpu=$( { "${@:2}" >/dev/null || echo "FAILED: $1" >&2; times; } | awk 'NR == 2 {
    split($1, u, /[ms]/); split($2, s, /[ms]/); print u[1] * 60 + u[2] + s[1] * 60 + s[2] }')
  end=$(date +%s.%N)
  awk -v l="$1" -v s="$start" -v e="$end" -v b="$bytes" -v c="$cpu" \
    'BEGIN { t = e - s; printf "%-28s %7.2f s  %8.1f MiB/s  %6.2f s CPU\n", l, t, b / 1048576 / t, c }'
}

echo "image: $(awk -v b="$bytes" 'BEGIN{printf "%.0f", b/1048576}') MiB uncompressed, $(nproc) cores" >&2
timed "push rbuild (gzip)" "$rbuild" --root "$work/store" push -q bench:1 "$host/bench/rbuild:1"
timed "push skopeo (gzip)" fresh_skopeo copy -q --dest-tls-verify=false \
  "oci:$work/store:bench:1" "docker://$host/bench/skopeo:1"
timed "pull rbuild" "$rbuild" --root "$work/pulled" pull -q "$host/bench/skopeo:1"
timed "pull skopeo (to oci:)" fresh_skopeo copy -q --src-tls-verify=false \
  "docker://$host/bench/skopeo:1" "oci:$work/skopeo-pulled:1"
mkdir -p "$work/ctx"
echo from-pulled >"$work/ctx/f"
printf 'FROM %s\nCOPY f /f\n' "$host/bench/skopeo:1" >"$work/ctx/Dockerfile"
timed "first use rbuild (unpack)" "$rbuild" --root "$work/pulled" build -q -t on-pulled "$work/ctx"
rm -rf "$work/pulled" "$work/skopeo-pulled"
timed "push rbuild (zstd)" "$rbuild" --root "$work/store" push -q --compression zstd bench:1 "$host/bench/zstd:1"
timed "push skopeo (zstd)" fresh_skopeo copy -q --dest-tls-verify=false --dest-compress-format zstd \
  "oci:$work/store:bench:1" "docker://$host/bench/skopeo-zstd:1"
timed "re-push rbuild (no change)" "$rbuild" --root "$work/store" push -q bench:1 "$host/bench/rbuild:1"

# What each push sent: the layer's compressed size (the last size in the manifest).
accept="application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json"
for repo in rbuild skopeo zstd skopeo-zstd; do
  size=$(curl -fsS -H "Accept: $accept" "http://$host/v2/bench/$repo/manifests/1" |
    grep -o '"size": *[0-9]*' | tail -1 | grep -o '[0-9]*$')
  awk -v r="$repo" -v s="$size" 'BEGIN { printf "layer pushed to bench/%-12s %7.1f MiB\n", r, s / 1048576 }'
done
