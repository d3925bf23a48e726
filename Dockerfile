# syntax=docker/dockerfile:1
# mlgate as an HTTP server (server mode: agents hold only a token; the state dir and the signing
# key live in volumes they cannot reach).
#
# The base image is pinned by digest so a rebuild gets the same bytes; to move to a newer patch
# release, read the digest with `docker buildx imagetools inspect python:3.11-slim-bookworm` and
# replace it here, in one reviewed commit.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91

# --- stage 1: the locked environment, dependencies first so they cache apart from the code ------
FROM ${PYTHON_IMAGE} AS build
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never PIP_NO_CACHE_DIR=1
RUN pip install uv==0.13.9
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --locked --no-dev --no-install-project
COPY policies/ ./policies/
COPY tools/ ./tools/
COPY resources/ ./resources/
COPY training/ ./training/
COPY server/ ./server/
COPY configs/ ./configs/
COPY contracts/ ./contracts/
RUN uv sync --locked --no-dev

# --- stage 2: runtime, no build tools, a non-root user ------------------------------------------
FROM ${PYTHON_IMAGE}
# bubblewrap is the training sandbox; git reads the governed workspace. Nothing else is added.
RUN apt-get update \
 && apt-get install -y --no-install-recommends bubblewrap git util-linux \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 mlgate \
 && useradd --system --uid 10001 --gid mlgate --home-dir /home/mlgate --create-home --shell /usr/sbin/nologin mlgate
COPY --from=build --chown=root:root /app /app
ENV PATH=/app/.venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 MLFLOW_DISABLE_TELEMETRY=true
USER mlgate
WORKDIR /home/mlgate
VOLUME ["/workspace"]
EXPOSE 8765
ENTRYPOINT ["mlgate"]
# Binding 0.0.0.0 is refused until tokens exist and http.allowed_hosts is set in
# /workspace/.mlgate/server.yaml (see README, "Running in a container").
CMD ["serve", "--workspace", "/workspace", "--http", "0.0.0.0:8765"]
