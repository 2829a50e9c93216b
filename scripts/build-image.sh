#!/usr/bin/env bash
# Builds the Dockerfile's CPU image with Debian's buildah, where no registry is reachable:
# the base image (the Dockerfile's BASE_IMAGE) is made with debootstrap from Debian's
# mirror and tagged under that name, then `buildah bud` builds the image (chroot
# isolation, vfs storage: no daemon, no overlay or fuse needed; as root), prints its size
# and build time, and runs the demo job inside it: signround-server, the signround CLI
# submitting a job on a test checkpoint made by signround-worker, all in the image.
#
#   scripts/build-image.sh [TAG]          (default signround:0.1.0)
#
# Environment: BUILDAH_STORAGE (vfs), DEBIAN_MIRROR (http://deb.debian.org/debian).
# Needs root (debootstrap, buildah's chroot isolation); installs buildah and debootstrap
# from Debian when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
TAG=${1:-signround:0.1.0}
STORAGE=${BUILDAH_STORAGE:-vfs}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
BASE=$(sed -n 's/^ARG BASE_IMAGE=//p' Dockerfile | head -1)
if [ "$(id -u)" -ne 0 ]; then
  echo "build-image.sh: run as root (debootstrap and buildah's chroot isolation need it)" >&2
  exit 2
fi
if ! command -v buildah >/dev/null || ! command -v debootstrap >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    buildah debootstrap >/dev/null
fi
bah() { buildah --storage-driver "$STORAGE" "$@"; }

# The base: Debian 12 minbase under the Dockerfile's BASE_IMAGE name (docker.io/library/...).
if ! bah inspect --type image "docker.io/library/$BASE" >/dev/null 2>&1; then
  echo "build-image.sh: making $BASE with debootstrap from $MIRROR"
  rootfs=$(mktemp -d /tmp/signround-base-XXXXXX)
  trap 'rm -rf "$rootfs"' EXIT
  debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR" >/dev/null
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin
  ctr=$(bah from scratch)
  bah copy "$ctr" "$rootfs" / >/dev/null
  bah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --cmd /bin/bash "$ctr"
  bah commit --rm "$ctr" "docker.io/library/$BASE" >/dev/null
fi

# The image. The CUDA stage's image is not reachable here and not used for TORCH=cpu:
# it is pointed at the base so that no stage needs a registry.
start=$(date +%s)
# Docker's image format: the OCI one has no SHELL, which the Dockerfile's RUN lines use.
bah bud --isolation chroot --pull=never --layers --format docker -f Dockerfile -t "$TAG" \
  --build-arg TORCH=cpu --build-arg CUDA_IMAGE="docker.io/library/$BASE" .
seconds=$(( $(date +%s) - start ))
size=$(bah images --format '{{.Size}}' "$TAG" | head -1)
echo "build-image.sh: $TAG built in ${seconds} s, size $size"

# The demo job inside the image, as its own user, on loopback.
ctr=$(bah from --pull=never "$TAG")
trap 'bah rm "$ctr" >/dev/null 2>&1 || true' EXIT
bah run --isolation chroot --user 10001:10001 "$ctr" -- /bin/bash -c '
set -euo pipefail
cd /tmp
signround-worker make-test-model --out /tmp/model >/dev/null
signround-server --listen=127.0.0.1:0 --metrics-listen=127.0.0.1:0 --data-dir=/tmp/data \
  >/tmp/ready 2>/tmp/server.log &
for _ in $(seq 100); do [ -s /tmp/ready ] && break; sleep 0.1; done
export SIGNROUND_SERVER=$(sed -n "s/.*\"grpc\":\"\([^\"]*\)\".*/\1/p" /tmp/ready)
signround submit --model file:///tmp/model --out file:///tmp/out --recipe rtn \
  --format auto_round --label demo=image --watch
ls -l /tmp/out/auto_round
'
echo "build-image.sh: the demo job ran in $TAG"
