#!/usr/bin/env bash
# Writes this case's archives (committed; run again only to change them): one tree with a
# directory of its own mode and owner, a symlink and a hardlink, as tar, tar.gz, tar.bz2 and
# tar.xz, and a gzip file that is not a tar (ADD copies it as it is).
set -euo pipefail
cd "$(dirname "$0")"
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
mkdir -p "$tree/top/sub"
echo 'file in the archive' >"$tree/top/file"
echo 'run me' >"$tree/top/exec"
echo 'below' >"$tree/top/sub/below"
ln -s file "$tree/top/link"
ln "$tree/top/file" "$tree/top/hard"
chmod 750 "$tree/top"
chmod 640 "$tree/top/file"
chmod 755 "$tree/top/exec"
chmod 700 "$tree/top/sub"
make() { tar --numeric-owner --owner=1000 --group=1000 --mtime=@0 --sort=name -C "$tree" "$@" top; }
make -cf plain.tar
make -czf files.tar.gz
make -cjf files.tar.bz2
make -cJf files.tar.xz
printf 'just gzip, not a tar\n' | gzip -n >single.txt.gz
