# syntax=docker/dockerfile:1
# Tessera container images: one build, three targets (docs/deploy.md).
#
#   docker build --target identity       -t tessera-identity:0.1.0 .   # tessera serve (default)
#   docker build --target gateway        -t tessera-gateway:0.1.0 .    # tessera gateway
#   docker build --target orders-example -t tessera-orders-example:0.1.0 .
#
# identity and gateway get the server extra; orders-example gets only the verifier SDK
# (tessera[verifier]: no identity service, no database driver) and uvicorn.
#
# Every image runs as uid/gid 10001 (no root, no shell login), keeps its state in
# /var/lib/tessera (mode 0700; mount a volume there for the embedded SQLite store) and
# works with a read-only root filesystem. The base image is pinned to an exact tag:
# bump it deliberately (and rebuild for its security fixes).
# `make test` lints this file with hadolint (tests/deploy/test_dockerfile.py).

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

# -- build: the services' virtualenv (the server extra, Redis, tracing) ------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/tessera
COPY pyproject.toml README.md ./
COPY src ./src
RUN /opt/tessera/bin/pip install --no-cache-dir ".[server,redis,tracing]"

# -- runtime: an unprivileged user and the healthcheck; each target adds its virtualenv ---
FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/tessera/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TESSERA_DATA_DIR=/var/lib/tessera
RUN groupadd --system --gid 10001 tessera \
    && useradd --system --uid 10001 --gid tessera --home-dir /var/lib/tessera \
        --no-create-home --shell /usr/sbin/nologin tessera \
    && install -d -o tessera -g tessera -m 0700 /var/lib/tessera
COPY deploy/docker/healthcheck.py /opt/tessera/healthcheck.py
WORKDIR /var/lib/tessera
USER 10001:10001

# -- build-sdk: what a service embedding the verifier SDK installs -----------------------
# tessera[verifier] (no identity service, no database driver) and an ASGI server
FROM ${PYTHON_IMAGE} AS build-sdk
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/tessera
COPY pyproject.toml README.md ./
COPY src ./src
RUN /opt/tessera/bin/pip install --no-cache-dir ".[verifier]" "uvicorn[standard]>=0.29"

# -- the edge gateway: forward-auth decisions (TESSERA_VERIFIER_*, TESSERA_GATEWAY_*) ---
FROM runtime AS gateway
COPY --from=build /opt/tessera /opt/tessera
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["python", "/opt/tessera/healthcheck.py", "http://127.0.0.1:8080/readyz"]
ENTRYPOINT ["tessera", "gateway"]
CMD ["--host", "0.0.0.0", "--port", "8080", "--policy", "/etc/tessera/policy.yaml"]

# -- the example orders service (examples/orders_service, verifier SDK) -----------------
FROM runtime AS orders-example
COPY --from=build-sdk /opt/tessera /opt/tessera
COPY examples /opt/tessera/app/examples
WORKDIR /opt/tessera/app
EXPOSE 8001
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["python", "/opt/tessera/healthcheck.py", "http://127.0.0.1:8001/readyz"]
ENTRYPOINT ["uvicorn", "examples.orders_service.app:create_app", "--factory"]
CMD ["--host", "0.0.0.0", "--port", "8001", "--no-server-header"]

# -- the identity service (last: the default target) -------------------------------------
FROM runtime AS identity
COPY --from=build /opt/tessera /opt/tessera
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "/opt/tessera/healthcheck.py", "http://127.0.0.1:8000/readyz"]
ENTRYPOINT ["tessera"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
