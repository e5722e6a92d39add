#!/usr/bin/env bash
# Every hashed lock resolves, wheel for wheel, on each CPU architecture an image installs it on.
#
#   scripts/check-locks.sh            # needs the package index, not Docker or an arm64 machine
#
# scripts/lock-requirements.sh compiles on the machine it runs on (x86_64). pip then resolves each lock here
# as it would inside the image (`--require-hashes --no-deps`, binary wheels only, Python 3.11) for the other
# architecture's platform tags, without installing: a pin with no wheel for arm64 fails here, not halfway
# through `docker buildx bake`.
set -euo pipefail
cd "$(dirname "$0")/.."

# lock -> the architectures whose images install it (docker-bake.hcl's platforms; the Dockerfiles pick the lock).
declare -A ARCHES=(
    [build]="x86_64 aarch64"            # every image's build stage
    [operator]="x86_64 aarch64"
    [worker-export]="x86_64 aarch64"    # the export image, and the CPU images' export stage
    [worker-cpu]="x86_64"
    [worker-cpu-arm64]="aarch64"
    [worker-cuda]="x86_64"
    [worker-jetson]="aarch64"
)
PIP="${PIP:-.venv/bin/pip}"
failed=0
for lock in "${!ARCHES[@]}"; do
    for arch in ${ARCHES[$lock]}; do
        platforms=(--platform "linux_${arch}" --platform "manylinux2014_${arch}")
        for minor in $(seq 17 39); do platforms+=(--platform "manylinux_2_${minor}_${arch}"); done
        target="$(mktemp -d)"
        # PIP_FIND_LINKS: local wheel folders must not stand in for the index.
        if env -u PIP_FIND_LINKS "${PIP}" install --quiet --dry-run --ignore-installed --target "${target}" \
            --python-version 3.11 --implementation cp --only-binary=:all: "${platforms[@]}" \
            --no-deps --require-hashes -r "requirements/${lock}.txt" 2>"${target}.log"; then
            echo "check-locks: requirements/${lock}.txt resolves on ${arch}"
        else
            echo "check-locks: requirements/${lock}.txt does NOT resolve on ${arch}:" >&2
            grep ERROR "${target}.log" >&2 || cat "${target}.log" >&2
            failed=1
        fi
        rm -rf "${target}" "${target}.log"
    done
done
exit "${failed}"
