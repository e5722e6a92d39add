#!/usr/bin/env bash
# Build the test control plane (kube, etcd, kwok) into .work/controlplane/, unless the binaries
# there were built from exactly these sources: the key is a hash of go.mod, go.sum, the Go files,
# this script and the Go version. Go's module and build caches stay in their default places, so a rebuild
# after a change compiles only what changed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$(cd "$here/../.." && pwd)/.work/controlplane"
binaries=(kube etcd kwok)

key="$( { go version; cd "$here" && find . -name '*.go' -o -name 'go.mod' -o -name 'go.sum' -o -name 'build.sh' | LC_ALL=C sort | xargs sha256sum; } | sha256sum | cut -d' ' -f1)"
up_to_date() {
    [[ -f "$out/.key" && "$(cat "$out/.key")" == "$key" ]] || return 1
    for binary in "${binaries[@]}"; do [[ -x "$out/$binary" ]] || return 1; done
}
if up_to_date; then
    echo "control plane up to date in $out"
    exit 0
fi

mkdir -p "$out"
rm -f "$out/.key"
start=$SECONDS
# The version the binaries report (/version, Helm's kubeVersion check) is stamped at link time, as
# Kubernetes' own build does; without it they say v0.0.0-master.
version="$(cd "$here" && go list -m -f '{{.Version}}' k8s.io/kubernetes)"
minor="${version#v1.}"; minor="${minor%%.*}"
stamp=""
for package in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    stamp+=" -X $package.gitVersion=$version -X $package.gitMajor=1 -X $package.gitMinor=$minor"
    stamp+=" -X $package.gitTreeState=clean"
done
(cd "$here" && go build -p "${GO_BUILD_JOBS:-2}" -trimpath -mod=readonly -ldflags "$stamp" -o "$out/" ./cmd/...)
echo "$key" > "$out/.key"
echo "control plane built in $((SECONDS - start))s into $out"
