# syntax=docker/dockerfile:1
# The API image: Granian serving the Flask app factory. Python's minor version matches the one
# the locks are compiled and the tests run with (3.11).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: dependencies from the hashed lock, then this project as a wheel ---------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY requirements.txt tools/requirements-build.txt ./
# The venv gets no pip or setuptools of its own (the base image's, unpinned, would ship in the
# runtime stage): the base's pip installs into it, so it holds exactly the lock.
RUN python -m venv --without-pip /opt/venv \
    && pip --python /opt/venv/bin/python install --require-hashes --no-deps -r requirements.txt \
    && pip install --require-hashes --no-deps -r requirements-build.txt
COPY pyproject.toml README.md ./
COPY sql ./sql
COPY src ./src
RUN pip wheel --no-deps --no-build-isolation --wheel-dir /wheels . \
    && pip --python /opt/venv/bin/python install --no-deps /wheels/itemsapi-*.whl

# --- runtime: the virtual environment only, as a fixed non-root user ----------------------------
FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ITEMSAPI_HOST=0.0.0.0 \
    ITEMSAPI_PORT=8000 \
    ITEMSAPI_WORKERS=2 \
    ITEMSAPI_BLOCKING_THREADS=16 \
    PROMETHEUS_MULTIPROC_DIR=/tmp/metrics
RUN groupadd --system --gid 10001 itemsapi \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin itemsapi
COPY --from=build /opt/venv /opt/venv
USER 10001:10001
WORKDIR /tmp
EXPOSE 8000
# No curl in a slim image: Python asks /ready, which checks the database within a bound.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request as u; sys.exit(u.urlopen('http://127.0.0.1:8000/ready', timeout=2).status != 200)"]
# Granian on the app factory; workers and threads from ITEMSAPI_WORKERS / _BLOCKING_THREADS.
CMD ["itemsapi", "serve"]
