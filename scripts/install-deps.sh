#!/usr/bin/env bash
# Installs the system packages rbuild's tests and demo use: the real tools the tests compare
# against (skopeo, umoci, runc, crun, a registry, shellcheck) and the base-image makers.
# Idempotent; needs root (apt-get).
set -euo pipefail
packages=(
  busybox-static file iproute2 uidmap curl   # offline base image, rootless id maps, demo
  skopeo umoci                          # read the store as an OCI layout
  runc crun                             # external OCI runtimes
  docker-registry apache2-utils         # a real registry, htpasswd for its auth
  openssl curl                          # registry tests: token-server certificate, bench readiness
  shellcheck                            # lint's SC findings
  mmdebstrap                            # the demo's Python base image
  docker.io                             # Docker Engine: save/load interoperability tests
  git                                   # ADD of git repositories, and its build test
  gcc                                   # the C halves of libdeflate and zstd, built by cargo
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y --no-install-recommends "${missing[@]}"
fi
