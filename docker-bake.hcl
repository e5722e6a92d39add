# Every image of the project, for `docker buildx bake` (the release workflow builds them all on a version tag).
#
#   docker buildx bake                          # everything, for each target's platforms (needs QEMU or native builders)
#   docker buildx bake operator --load --set '*.platform=linux/amd64'   # one image into the local Docker
#
# Images are ${REGISTRY}/<target>:${VERSION}. VERSION's default is the project version (pyproject.toml); a test
# fails when they drift, and scripts/set-version.py changes both. The release workflow sets it from the tag.

variable "REGISTRY" {
  default = "ghcr.io/edge-inference"
}

variable "VERSION" {
  default = "0.1.0"
}

# sha256 of yolov5nu.pt, read by the release workflow from inference-image/yolov5nu.pt.sha256 (which it records
# at the first fetch); the worker images check the downloaded weights against it.
variable "YOLOV5NU_SHA256" {
  default = ""
}

# Where yolov5nu.pt is fetched from at build time (the ultralytics release the pinned ultralytics downloads from).
variable "YOLOV5NU_URL" {
  default = "https://github.com/ultralytics/assets/releases/download/v8.4.0/yolov5nu.pt"
}

group "default" {
  targets = ["operator", "worker", "worker-cuda", "worker-jetson", "worker-export"]
}

# What every image shares: the repository root as context (each Dockerfile's own .dockerignore trims it),
# an SBOM and a SLSA provenance attestation, and the OCI labels.
target "_common" {
  context = "."
  attest = [
    "type=sbom",
    "type=provenance,mode=max",
  ]
  labels = {
    "org.opencontainers.image.source"   = "https://github.com/edge-inference/edge-inference-operator"
    "org.opencontainers.image.version"  = VERSION
    "org.opencontainers.image.licenses" = "Apache-2.0"
  }
}

# The worker images fetch yolov5nu.pt at build time and check its sha256.
target "_worker" {
  inherits = ["_common"]
  args = {
    YOLOV5NU_URL    = YOLOV5NU_URL
    YOLOV5NU_SHA256 = YOLOV5NU_SHA256
  }
}

target "operator" {
  inherits   = ["_common"]
  dockerfile = "operator/Dockerfile"
  platforms  = ["linux/amd64", "linux/arm64"]
  tags       = ["${REGISTRY}/operator:${VERSION}"]
}

# The CPU worker (no torch): every node without an accelerator image of its own.
target "worker" {
  inherits   = ["_worker"]
  dockerfile = "inference-image/Dockerfile"
  platforms  = ["linux/amd64", "linux/arm64"]
  tags       = ["${REGISTRY}/worker:${VERSION}"]
}

# NVIDIA GPUs on amd64 nodes (CUDA).
target "worker-cuda" {
  inherits   = ["_worker"]
  dockerfile = "inference-image/Dockerfile.cuda"
  platforms  = ["linux/amd64"]
  tags       = ["${REGISTRY}/worker-cuda:${VERSION}"]
}

# NVIDIA Jetson boards (arm64, L4T).
target "worker-jetson" {
  inherits   = ["_worker"]
  dockerfile = "inference-image/Dockerfile.jetson"
  platforms  = ["linux/arm64"]
  tags       = ["${REGISTRY}/worker-jetson:${VERSION}"]
}

# Exports models (ultralytics and torch) to the formats the workers run; it bakes in no weights.
target "worker-export" {
  inherits   = ["_common"]
  dockerfile = "inference-image/Dockerfile.export"
  platforms  = ["linux/amd64", "linux/arm64"]
  tags       = ["${REGISTRY}/worker-export:${VERSION}"]
}
