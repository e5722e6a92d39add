#!/usr/bin/env bash
# Build the operator and inference images into the local Docker, tagged with the project version from
# pyproject.toml (the chart's default tags are the same version). Releases are built by docker-bake.hcl
# instead (every platform, SBOM, provenance); a test checks that both name the same images and Dockerfiles.
#
#   scripts/build-images.sh                        # operator, worker (CPU), worker-cuda, worker-export
#   scripts/build-images.sh --dry-run              # print "<tag> <Dockerfile>" per image, build nothing
#   IMAGES="operator worker" scripts/build-images.sh
#   FETCH_YOLOV5NU=false scripts/build-images.sh   # builder without internet: only the bundled model
#   REGISTRY=registry.local:5000/edge scripts/build-images.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DRY_RUN=false
if [ "${1:-}" = "--dry-run" ]; then
    DRY_RUN=true
elif [ -n "${1:-}" ]; then
    echo "build-images: unknown argument '$1' (only --dry-run)" >&2
    exit 2
fi

VERSION="$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -n 1)"
if [ -z "${VERSION}" ]; then
    echo "build-images: no version found in pyproject.toml" >&2
    exit 1
fi
REGISTRY="${REGISTRY:-ghcr.io/edge-inference}"
IMAGES="${IMAGES:-operator worker worker-cuda worker-export}"
FETCH_YOLOV5NU="${FETCH_YOLOV5NU:-true}"

dockerfile_of() {
    case "$1" in
        operator) echo operator/Dockerfile ;;
        worker) echo inference-image/Dockerfile ;;
        worker-cuda) echo inference-image/Dockerfile.cuda ;;
        worker-jetson) echo inference-image/Dockerfile.jetson ;;
        worker-export) echo inference-image/Dockerfile.export ;;
        *) echo "build-images: unknown image '$1' (operator, worker, worker-cuda, worker-jetson, worker-export)" >&2; return 1 ;;
    esac
}

if [ "${DRY_RUN}" = false ]; then
    if ! command -v docker >/dev/null 2>&1 || ! docker info >/dev/null 2>&1; then
        echo "build-images: needs Docker (the docker CLI and a running daemon); none is reachable here" >&2
        exit 1
    fi
fi
# BuildKit (buildx) reads the per-Dockerfile .dockerignore files, which keep the build context small;
# the classic builder works too, only it sends the whole folder as context.
if [ "${DRY_RUN}" = false ] && docker buildx version >/dev/null 2>&1; then
    BUILD=(docker buildx build --load)
else
    BUILD=(env DOCKER_BUILDKIT=0 docker build)
fi

for image in ${IMAGES}; do
    dockerfile="$(dockerfile_of "${image}")"
    tag="${REGISTRY}/${image}:${VERSION}"
    if [ "${DRY_RUN}" = true ]; then
        echo "${tag} ${dockerfile}"
        continue
    fi
    echo "build-images: ${tag} from ${dockerfile}"
    if [ "${image}" = operator ]; then
        "${BUILD[@]}" -f "${dockerfile}" -t "${tag}" .
    else
        "${BUILD[@]}" -f "${dockerfile}" --build-arg "FETCH_YOLOV5NU=${FETCH_YOLOV5NU}" -t "${tag}" .
    fi
done
