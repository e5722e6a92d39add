"""Run `edge-inference` as the torch-free CPU image runs it: torch and ultralytics cannot be imported.

    python tests/support/torch_free.py detect /videos --out ./events ...

An import of a blocked package raises ImportError, as it would where it is not installed.
"""

from __future__ import annotations

import sys

BLOCKED = ("torch", "torchvision", "ultralytics")

if __name__ == "__main__":
    for name in BLOCKED:
        sys.modules[name] = None  # type: ignore[assignment]  # the documented way to make an import fail
    from edge_inference_worker.cli import main

    sys.exit(main(sys.argv[1:]))
