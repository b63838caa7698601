# The quick start: `make run` serves the API on the embedded PostgreSQL; `make test` runs the
# checks and the whole test suite. Each sets up what it needs first, from the hashed locks
# (again only when a lock changes).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# pip-compile against PyPI only, whatever this machine's pip.conf adds.
COMPILE := PIP_CONFIG_FILE=/dev/null $(BIN)/pip-compile -q --generate-hashes --strip-extras \
	--allow-unsafe --no-emit-index-url --no-emit-find-links
LOCKS := requirements.txt requirements-dev.txt tools/requirements-build.txt \
	tools/requirements-pgadmin.txt

.PHONY: run test image-test lint format lock tools chromium wrk scale-out kubectl image-tools bench \
	paired clean

run: $(VENV)/.dev
	$(BIN)/itemsapi serve

# The slowest tests are listed at the end: CI's time budget is spent where they say.
test: $(VENV)/.dev tools
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest --durations=25

# The image built from the Dockerfile and run as compose runs it, under podman (make test runs it
# too): see docs/deployment.md. The stand-in base image is cached in ~/.cache/itemsapi-image.
image-test: $(VENV)/.dev image-tools
	$(BIN)/python -m pytest tests/deploy/test_image.py -rP

# The benchmark (not a test): see docs/performance.md.
bench: $(VENV)/.dev wrk
	$(BIN)/python -m bench.run

# Two builds side by side, for measuring a change: make paired BASE=main [SCENARIO=post]
paired: $(VENV)/.dev wrk
	$(BIN)/python -m bench.paired $(or $(BASE),HEAD) --scenario $(or $(SCENARIO),get)

lint: $(VENV)/.dev
	$(BIN)/ruff check .

format: $(VENV)/.dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Recompile every lock after editing a requirements*.in file.
lock: $(VENV)/.dev
	$(foreach lock,$(LOCKS),$(COMPILE) -o $(lock) $(lock:.txt=.in) &&) true

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.dev: requirements-dev.txt requirements.txt pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --require-hashes -r requirements-dev.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $@

# Tools the checks run: dclint (npm), pgAdmin (its own venv, as its pins differ from ours) and
# Chromium for the /docs page and pgAdmin (Debian's package: installed when we may, else named).
tools: tools/node_modules/.bin/dclint .venv-pgadmin/.installed chromium wrk scale-out kubectl \
	image-tools

# Debian packages: installed when we may (root with apt-get), otherwise named.
APT_INSTALL = if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(1); \
	else echo "Please install Debian's $(1) package." >&2; exit 1; fi

chromium:
	@command -v chromium >/dev/null || { $(call APT_INSTALL,chromium); }

wrk:
	@command -v wrk >/dev/null || { $(call APT_INSTALL,wrk); }

# The scale-out tests' PgBouncer and HAProxy, and nginx for checking compose.prod.yaml's proxy.
SCALE_OUT_PROGRAMS := /usr/sbin/pgbouncer /usr/sbin/haproxy /usr/sbin/nginx
scale-out:
	@ls $(SCALE_OUT_PROGRAMS) >/dev/null 2>&1 || { $(call APT_INSTALL,pgbouncer haproxy nginx); }

# kubectl's built-in kustomize (v5: the overlay uses `labels`, `replicas` and inline patches)
# renders deploy/k8s for its test: the kubectl package where an apt source has it.
kubectl:
	@command -v kubectl >/dev/null || { $(call APT_INSTALL,kubectl); }

# podman (with runc: crun fails here; slirp4netns for the containers' network; uidmap) builds
# and runs the image; mmdebstrap makes the Debian root file system standing in for its base image.
IMAGE_PROGRAMS := /usr/bin/podman /usr/sbin/runc /usr/bin/slirp4netns /usr/bin/newuidmap \
	/usr/bin/mmdebstrap
image-tools:
	@ls $(IMAGE_PROGRAMS) >/dev/null 2>&1 || { $(call APT_INSTALL,podman runc slirp4netns uidmap mmdebstrap); }

tools/node_modules/.bin/dclint: tools/package.json tools/package-lock.json
	npm ci --prefix tools --no-audit --no-fund --loglevel=error
	touch $@

# Built afresh on each lock change: pgAdmin's passlib and Flask-Security's libpass both install a
# passlib/ package, and only a clean install leaves libpass's (a fresh pip installs it last).
.venv-pgadmin/.installed: tools/requirements-pgadmin.txt
	$(PYTHON) -m venv --clear .venv-pgadmin
	.venv-pgadmin/bin/pip install -q --require-hashes -r tools/requirements-pgadmin.txt
	touch $@

clean:
	rm -rf $(VENV) .venv-pgadmin tools/node_modules .pytest_cache .ruff_cache
