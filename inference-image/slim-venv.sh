#!/usr/bin/env bash
# Remove from a worker venv what the worker never loads, to keep the image small (docs/benchmarks.md, closure):
# pip and setuptools (nothing is installed at run time), and OpenVINO's parts for other devices and other model
# formats (the worker compiles for the CPU, from OpenVINO IR or ONNX).
#
#   inference-image/slim-venv.sh /opt/venv
set -euo pipefail

venv="${1:?usage: slim-venv.sh VENV}"
site=("${venv}"/lib/python3*/site-packages)
if [ ! -d "${site[0]}" ]; then
    echo "slim-venv: ${venv} has no site-packages" >&2
    exit 2
fi
rm -rf "${site[0]}"/pip "${site[0]}"/pip-*.dist-info "${site[0]}"/setuptools "${site[0]}"/setuptools-*.dist-info \
    "${site[0]}"/_distutils_hack "${site[0]}"/distutils-precedence.pth "${site[0]}"/pkg_resources "${venv}"/bin/pip*
libs="${site[0]}/openvino/libs"
if [ -d "${libs}" ]; then
    rm -f "${libs}"/libopenvino_intel_gpu_plugin.so "${libs}"/libopenvino_intel_npu_plugin.so "${libs}"/cache.json \
        "${libs}"/libopenvino_{tensorflow,tensorflow_lite,paddle,pytorch,jax,gguf}_frontend.so.*
fi
