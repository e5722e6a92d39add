#!/usr/bin/env bash
# Regenerate every requirements/<name>.txt from requirements/<name>.in: every package pinned, with the
# sha256 of each of its files on the index, for `pip install --require-hashes` in the images.
#
#   scripts/lock-requirements.sh              # keep existing pins that still satisfy the .in files
#   scripts/lock-requirements.sh --upgrade    # move every package to the newest version the .in allows
#
# Each file is compiled by the Python its image runs (default 3.11; a line `# lock-python: 3.12` in the
# .in file picks another), with pip-tools in a throwaway virtualenv under .work/.
set -euo pipefail
cd "$(dirname "$0")/.."

PIP_TOOLS_VERSION=7.6.2
UPGRADE=()
if [ "${1:-}" = "--upgrade" ]; then
    UPGRADE=(--upgrade)
elif [ -n "${1:-}" ]; then
    echo "lock-requirements: unknown argument '$1' (only --upgrade)" >&2
    exit 2
fi

pip_compile_for() {
    local python="$1" venv=".work/lock-venv-$1"
    if [ ! -x "${venv}/bin/pip-compile" ]; then
        if ! command -v "python${python}" >/dev/null 2>&1; then
            echo "lock-requirements: python${python} is needed to lock for it and is not on PATH" >&2
            return 1
        fi
        "python${python}" -m venv "${venv}"
        "${venv}/bin/pip" install --quiet "pip-tools==${PIP_TOOLS_VERSION}"
    fi
    echo "${venv}/bin/pip-compile"
}

shopt -s nullglob
inputs=(requirements/*.in)
if [ "${#inputs[@]}" -eq 0 ]; then
    echo "lock-requirements: no requirements/*.in files" >&2
    exit 1
fi
for input in "${inputs[@]}"; do
    python="$(sed -n 's/^# lock-python: *\([0-9][0-9.]*\) *$/\1/p' "${input}" | head -n 1)"
    compile="$(pip_compile_for "${python:-3.11}")"
    echo "lock-requirements: ${input} -> ${input%.in}.txt (Python ${python:-3.11})"
    # Local wheel folders (PIP_FIND_LINKS) would leak into the lock and add hashes of files no index serves.
    env -u PIP_FIND_LINKS "${compile}" --quiet "${UPGRADE[@]}" --generate-hashes --allow-unsafe --strip-extras \
        --no-header --no-emit-find-links --output-file "${input%.in}.txt" "${input}"
done
