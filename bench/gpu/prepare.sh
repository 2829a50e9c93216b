#!/bin/bash
# Fills .device-deps/ (git-ignored) with what bench/gpu/run.sh needs on a GPU machine that
# reaches no network. Run it here, on Debian 12 with its package mirror:
#
#   bench/gpu/prepare.sh AUTO_ROUND_GIT
#
# AUTO_ROUND_GIT: a git clone (or bare mirror) of https://github.com/intel/auto-round, the
# reference tool; its commit AUTO_ROUND_COMMIT (default below) is taken, never committed here.
#
#   .device-deps/root/        Debian 12 packages extracted with dpkg-deb -x (the engine's
#                             dependencies besides LibTorch: Abseil, nlohmann-json, CLI11)
#   .device-deps/auto-round/  auto_round/ at that commit, and COMMIT naming it
#
# Then name .device-deps in the call's carry (bench/gpu/README.md).
set -euo pipefail
cd "$(dirname "$0")/../.."

GIT_DIR_ARG=${1:?usage: bench/gpu/prepare.sh AUTO_ROUND_GIT (a clone of intel/auto-round)}
AUTO_ROUND_COMMIT=${AUTO_ROUND_COMMIT:-b9f3d0079d014c73a1ff009800c597b9bc3f2a36}
DEPS=.device-deps
PACKAGES=(libabsl-dev libabsl20220623 nlohmann-json3-dev libcli11-dev)

rm -rf "$DEPS/root" "$DEPS/debs" "$DEPS/auto-round"
mkdir -p "$DEPS/root" "$DEPS/debs" "$DEPS/auto-round"
(cd "$DEPS/debs" && apt-get download "${PACKAGES[@]}")
for deb in "$DEPS"/debs/*.deb; do dpkg-deb -x "$deb" "$DEPS/root"; done
rm -rf "$DEPS/debs" "$DEPS/root/usr/share/doc" "$DEPS/root/usr/share/lintian"

if [ -d "$GIT_DIR_ARG/.git" ]; then GIT_DIR_ARG=$GIT_DIR_ARG/.git; fi
git --git-dir="$GIT_DIR_ARG" archive "$AUTO_ROUND_COMMIT" auto_round |
  tar -x -C "$DEPS/auto-round"
echo "$AUTO_ROUND_COMMIT" > "$DEPS/auto-round/COMMIT"
git --git-dir="$GIT_DIR_ARG" show -s --format='%H %cs %s' "$AUTO_ROUND_COMMIT" \
  > "$DEPS/auto-round/COMMIT.txt"

echo "prepared $DEPS: $(du -sh "$DEPS" | cut -f1) (packages: ${PACKAGES[*]}; auto-round $AUTO_ROUND_COMMIT)"
