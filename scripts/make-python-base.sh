#!/usr/bin/env bash
# Writes the demo's Python base image as a root filesystem tarball, without Docker Hub:
# Debian bookworm with python3 and pip, made by mmdebstrap from this machine's own apt sources.
# pip may install into the system Python, as in the official python:3-slim image.
# Usage: make-python-base.sh OUT.tar
set -euo pipefail
out=${1:?usage: make-python-base.sh OUT.tar}
sources=$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null | grep -v '^#' || true)
[[ -n $sources ]] || { echo "make-python-base: no apt sources on this machine" >&2; exit 1; }
tmp=$out.partial
trap 'rm -rf "$tmp"' EXIT
printf '%s\n' "$sources" | mmdebstrap --quiet --variant=minbase --format=tar \
  --include=python3,python3-pip,python-is-python3 \
  --customize-hook='rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED' \
  bookworm "$tmp" -
mv "$tmp" "$out"
