# Every target installs what it needs into .venv first, so each works on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup system-deps controlplane demo test e2e images crd lint

setup: system-deps $(VENV)/.installed

system-deps:  ## Debian packages beside the venv (OpenCV's libraries, Chromium for the browser test)
	bash scripts/system-deps.sh

# torch/torchvision are pinned and installed first: a bare `torch` pulls a multi-GB build.
$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet -e '.[operator,worker,worker-torch,test]'
	touch $@

demo: setup  ## the main job: kind cluster where Docker exists, else this machine as one edge node
	$(BIN)/python scripts/demo.py

# The real Kubernetes control plane the operator, chart and admission tests run against
# (tools/controlplane: Kubernetes v1.36.1, etcd, kwok), built with Go into .work/controlplane/.
controlplane:  ## build the test control plane; skipped when its sources have not changed
	bash tools/controlplane/build.sh

test: setup controlplane  ## every test that can run on this machine
	$(BIN)/python -m pytest

e2e: setup  ## the end-to-end suite against a kind cluster (needs Docker and kind)
	$(BIN)/python -m pytest -m e2e tests/e2e

images:  ## build the operator and inference images (needs Docker)
	bash scripts/build-images.sh

crd: setup  ## regenerate crds/, the chart's copy and docs/reference.md from the pydantic models
	$(BIN)/python -m edge_inference_api.crd
	$(BIN)/python scripts/gen_reference.py

lint: setup  ## ruff, the import contracts and mypy (tests/test_lint.py runs the same in `make test`)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/python -m mypy -p edge_inference_api -p edge_inference_operator -p edge_inference_worker
