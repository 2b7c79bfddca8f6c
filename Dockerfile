# syntax=docker/dockerfile:1
# One image for every Orderline process: the five services (orderline-intake,
# orderline-provisioning, orderline-device-monitor, orderline-archive,
# orderline-reporting), the simulators and the `orderline` CLI. The Helm chart picks the
# entry point per Deployment; `helm test` uses the CLI's Python and gRPC stubs.
#
#   docker build -t ghcr.io/orderline/orderline:0.1.0 .
#
# Dependencies come only from uv.lock (`--frozen`: a stale lock fails the build).
# The final stage holds the interpreter and the virtual environment, nothing else: no uv,
# no compiler, no pip, no source tree, and it runs as the unprivileged user 10001.

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

# --------------------------------------------------------------------------- builder
FROM ${PYTHON_IMAGE} AS builder

# The uv version the lock was written with (uv.lock, package "uv").
ARG UV_VERSION=0.13.9
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/venv
RUN python -m pip install "uv==${UV_VERSION}"

WORKDIR /src
# Third-party dependencies first, from the lock alone: this layer is reused until
# uv.lock or a pyproject.toml changes.
COPY pyproject.toml uv.lock ./
COPY libs/contracts/pyproject.toml libs/contracts/
COPY libs/runtime/pyproject.toml libs/runtime/
COPY libs/catalogue/pyproject.toml libs/catalogue/
# Development only (tests, local stack); named here because it is a workspace member, never
# installed: it is in the dev group, and the syncs below leave that group out.
COPY libs/devtools/pyproject.toml libs/devtools/
COPY services/intake/pyproject.toml services/intake/
COPY services/provisioning/pyproject.toml services/provisioning/
COPY services/device-monitor/pyproject.toml services/device-monitor/
COPY services/archive/pyproject.toml services/archive/
COPY services/reporting/pyproject.toml services/reporting/
COPY simulators/pyproject.toml simulators/
COPY cli/pyproject.toml cli/
RUN uv sync --frozen --no-dev --no-install-workspace --python /usr/local/bin/python3

# Then the workspace packages themselves, installed as wheels (not editable), so the
# final image needs no source tree.
COPY libs libs
COPY services services
COPY simulators simulators
COPY cli cli
RUN uv sync --frozen --no-dev --no-editable --python /usr/local/bin/python3 \
    && /opt/venv/bin/python -c "import orderline_intake, orderline_provisioning, orderline_device_monitor, orderline_archive, orderline_reporting, orderline_cli"

# --------------------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="orderline" \
      org.opencontainers.image.description="Orderline telecom service-order services, simulators and CLI" \
      org.opencontainers.image.source="https://github.com/orderline/orderline"

# Nothing in the running image installs packages: drop the installers the base ships,
# and add the unprivileged user the chart runs as (runAsUser/runAsGroup 10001).
RUN python -m pip uninstall --yes --quiet setuptools wheel pip \
    && groupadd --system --gid 10001 orderline \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin orderline

# The virtual environment only, owned by root and read-only to the service user.
COPY --from=builder /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ORDERLINE_GRPC_HOST=0.0.0.0
# The root filesystem is read-only in Kubernetes; relative paths (var/...) land in /tmp.
WORKDIR /tmp
USER 10001:10001
EXPOSE 50051 50052 50053 50054 50055
CMD ["orderline", "--help"]
