#!/usr/bin/env bash
# Builds an image target with podman where Docker Hub cannot be reached (this project's CI):
#   docker/build-local.sh cpu [TAG]     default tag polypserve:cpu
#   docker/build-local.sh gpu [TAG]     default tag polypserve:gpu
# Further arguments go to podman build (--layers, for instance).
# Neither python:3.11-slim-bookworm nor NVIDIA's CUDA image can be pulled there, so a stand-in
# base is made once with debootstrap (Debian bookworm, its Python 3.11) and reused by later
# builds; it stands in for both PYTHON_IMAGE and CUDA_IMAGE. The GPU image built on it has no
# CUDA: it checks the GPU target's steps, and that the container refuses to start without CUDA.
# Needs root, podman, runc and debootstrap (.ci/run installs them).
set -euo pipefail
target="${1:?usage: docker/build-local.sh cpu|gpu [TAG]}"
tag="${2:-polypserve:$target}"
base="${POLYPSERVE_BASE_IMAGE:-localhost/bookworm-python:3.11}"
cd "$(dirname "$0")/.."

if ! podman image exists "$base"; then
  root="$(mktemp -d)"
  trap 'rm -rf "$root"' EXIT
  debootstrap --variant=minbase \
    --include=python3.11,python3.11-venv,python3-venv,python-is-python3,ca-certificates \
    bookworm "$root" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >/dev/null
  # pip inside the build must reach the index the host reaches: same CA bundle (a proxy may
  # sign its own), same pip settings.
  bundle="${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}"
  if [ -f "$bundle" ]; then
    cp "$bundle" "$root/etc/ssl/certs/ca-certificates.crt"
  fi
  if [ -f /etc/pip.conf ]; then
    cp /etc/pip.conf "$root/etc/pip.conf"
  fi
  mkdir -p "$root/etc/xdg/pip"
  printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\ntimeout = %s\n' \
    "${PIP_DEFAULT_TIMEOUT:-60}" >"$root/etc/xdg/pip/pip.conf"
  # Slim like Debian's slim images: no documentation or translations, now or from later
  # apt-get installs.
  printf 'path-exclude %s\n' '/usr/share/doc/*' '/usr/share/man/*' '/usr/share/info/*' \
    '/usr/share/locale/*' >"$root/etc/dpkg/dpkg.cfg.d/slim"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
    "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
    "$root"/usr/share/locale/*
  # mktemp made the root 0700, which would lock every other user out of the image's /.
  chmod 755 "$root"
  # What python:3.11-slim sets and a bare import lacks.
  tar -C "$root" -c . | podman import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' - "$base" >/dev/null
fi

# chroot isolation and the host's network: no user namespaces, CNI or slirp needed (root).
# Docker's image format: the OCI format has no HEALTHCHECK. No cached layers: with vfs storage
# each one is a full copy of the image so far, and one commit per image was faster (GPU target
# 80 s instead of 220 s; CPU 100 s instead of 125 s even with the dependency layer cached).
previous="$(podman image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)"
podman build --format docker --network=host --isolation=chroot --layers=false \
  --target "$target" --build-arg "PYTHON_IMAGE=$base" --build-arg "CUDA_IMAGE=$base" \
  -t "$tag" "${@:3}" .
# The image this tag named before, now untagged, would otherwise keep its full copy on disk
# (vfs); one a container still uses stays.
if [ -n "$previous" ] && [ "$previous" != "$(podman image inspect --format '{{.Id}}' "$tag")" ]; then
  podman rmi "$previous" >/dev/null 2>&1 || true
fi
