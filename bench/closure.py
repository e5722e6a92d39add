#!/usr/bin/env python3
"""The CPU worker image's Python closure, measured without Docker: its locked set in a fresh virtualenv.

    python bench/closure.py [--lock requirements/worker-cpu.txt] [--keep DIR]

Does what inference-image/Dockerfile does, on this machine: a fresh venv (Python 3.11, as the image), the
hashed locks installed with `pip install --require-hashes --no-deps` (requirements/build.txt, then the
worker's lock), the project's wheel built with the locked setuptools and installed without dependencies,
then inference-image/slim-venv.sh. It prints the venv's size and its largest packages, and proves the set
complete: in that venv, with no torch and no ultralytics in it, `edge-inference detect` runs the bundled
model's exports (ONNX; OpenVINO IR where the lock has OpenVINO) over a synthetic clip and exits 0.
The default lock is the amd64 image's; `--lock requirements/worker-cpu-arm64.txt` measures the arm64 set
(with this machine's wheels of the same versions).
Goal (issue "A small, fast worker for every edge device"): closure <= 500 MB (about 2 GB with torch).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

from common import MODEL, REPO, make_footage, temp_workdir

GOAL_MB = 500
PYTHON = "python3.11"


def size_bytes(path: Path) -> int:
    """Bytes of the files under `path` (as `du --apparent-size`; links not followed)."""
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def install(venv: Path, lock: Path, env: dict[str, str]) -> None:
    pip = [str(venv / "bin" / "pip"), "install", "--quiet", "--no-cache-dir"]
    subprocess.run([PYTHON, "-m", "venv", str(venv)], check=True)
    subprocess.run([*pip, "--require-hashes", "--no-deps", "-r", str(REPO / "requirements" / "build.txt")], env=env,
                   check=True)
    subprocess.run([*pip, "--require-hashes", "--no-deps", "-r", str(lock)], env=env, check=True)
    wheels = venv.parent / "wheels"
    subprocess.run([str(venv / "bin" / "pip"), "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(wheels), str(REPO)], env=env, check=True, cwd=venv.parent)
    subprocess.run([*pip, "--no-deps", "--no-index", *map(str, wheels.glob("*.whl"))], env=env, check=True)
    subprocess.run(["bash", str(REPO / "inference-image" / "slim-venv.sh"), str(venv)], check=True)


def largest(site_packages: Path, count: int = 8) -> str:
    sizes = sorted(((size_bytes(p), p.name) for p in site_packages.iterdir() if p.is_dir()), reverse=True)
    return ", ".join(f"{name} {size / 2**20:.0f} MB" for size, name in sizes[:count])


def smoke_run(venv: Path, work: Path, env: dict[str, str], exports: list[str]) -> list[str]:
    """The worker from the fresh venv over a 4 s clip, once per export; the runtimes it reported."""
    from support.synthetic import short_scenario

    models = work / "models"
    if not (models / "synthetic-yolov5n.onnx").exists():
        subprocess.run([sys.executable, "-m", "edge_inference_worker.cli", "export-model", str(MODEL), str(models),
                        "--name", "synthetic-yolov5n"], env=env, check=True, capture_output=True)
    (clip,) = make_footage(work / "clip", [dataclasses.replace(short_scenario(), duration_s=4.0)], seed=7)
    clean = {k: v for k, v in env.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    backends = []
    for export in exports:
        state = work / f"state-{export}"
        shutil.rmtree(state, ignore_errors=True)
        result = subprocess.run(
            [str(venv / "bin" / "edge-inference"), "detect", str(clip.parent), "--out", str(state / "events"),
             "--state-dir", str(state), "--model", str(models / export), "--image-size", "320", "--device", "cpu"],
            env=clean, capture_output=True, text=True, cwd=work,
        )
        if result.returncode != 0:
            raise SystemExit(f"the worker failed in the fresh venv:\n{result.stderr[-3000:]}")
        backends += [line.split('"backend": "')[1].split('"')[0] for line in result.stderr.splitlines()
                     if '"worker started"' in line]
    probe = "import importlib.util as u; print([m for m in ('torch', 'ultralytics', 'cv2') if u.find_spec(m)])"
    found = subprocess.run([str(venv / "bin" / "python"), "-c", probe], env=clean, capture_output=True, text=True,
                           check=True).stdout.strip()
    assert found == "['cv2']", f"the closure should hold OpenCV and neither torch nor ultralytics: {found}"
    return backends


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lock", type=Path, default=REPO / "requirements" / "worker-cpu.txt")
    parser.add_argument("--keep", type=Path)
    args = parser.parse_args()
    args.lock = args.lock.resolve()
    work = temp_workdir("closure", args.keep)
    venv = work / "venv"
    shutil.rmtree(venv, ignore_errors=True)
    shutil.rmtree(work / "wheels", ignore_errors=True)
    # The lock's hashes are those of the index's files; a local wheel folder would offer others.
    env = {k: v for k, v in os.environ.items() if k != "PIP_FIND_LINKS"}
    install(venv, args.lock, env)
    (site_packages,) = venv.glob("lib/python*/site-packages")
    total = size_bytes(venv)
    exports = ["synthetic-yolov5n.onnx"]
    if "openvino==" in args.lock.read_text():
        exports.append("synthetic-yolov5n_openvino_model")
    backends = smoke_run(venv, work, os.environ.copy(), exports)
    print(f"lock: {args.lock.relative_to(REPO)}; Python {PYTHON}; {sys.platform} {os.uname().machine}")
    print(f"largest: {largest(site_packages)}")
    ran = dict(zip(exports, backends, strict=True))
    print(f"smoke run in the fresh venv (no torch, no ultralytics): exit 0 on {ran}")
    print(f"RESULT closure {args.lock.name}: venv {total / 2**20:.0f} MB; <= {GOAL_MB} MB: "
          f"{'MET' if total <= GOAL_MB * 2**20 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
