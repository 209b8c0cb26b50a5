# syntax=docker/dockerfile:1
# polypserve images. Two targets:
#   docker build --target gpu -t polypserve:gpu .   (default; NVIDIA CUDA 13 + cuDNN 9)
#   docker build --target cpu -t polypserve:cpu .
# onnxruntime-gpu 1.31 is built against CUDA 13.x and cuDNN 9.x (its CUDA provider loads
# libcublasLt.so.13 and libcudnn.so.9), so the GPU image starts from NVIDIA's CUDA 13.0 runtime
# image with cuDNN 9. No torch, no training extras and no data sets go into either image.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG CUDA_IMAGE=nvidia/cuda:13.0.1-cudnn-runtime-ubuntu24.04

# ---- dependencies, in their own layer so code changes do not reinstall them ----
FROM ${PYTHON_IMAGE} AS deps
WORKDIR /build
COPY pyproject.toml README.md ./
RUN mkdir -p service training \
    && touch service/__init__.py training/__init__.py \
    && python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir . \
    && /opt/venv/bin/pip uninstall -y polypserve

# ---- the application ----
FROM deps AS app
COPY service ./service
COPY training/__init__.py ./training/__init__.py
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps .

# ---- CPU image ----
FROM ${PYTHON_IMAGE} AS cpu
RUN useradd --create-home --uid 10001 polypserve
COPY --from=app /opt/venv /opt/venv
COPY --chown=polypserve:polypserve models /models
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    POLYPSERVE_HOST=0.0.0.0 \
    POLYPSERVE_PORT=8000 \
    POLYPSERVE_MODELS_DIR=/models \
    POLYPSERVE_PROVIDERS=CPUExecutionProvider
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request as r; r.urlopen('http://127.0.0.1:8000/v2/health/ready', timeout=2)"]
ENTRYPOINT ["polypserve", "serve"]

# ---- GPU image ----
FROM ${CUDA_IMAGE} AS gpu
# Ubuntu 24.04's Python is 3.12; the venv is rebuilt here against it.
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 polypserve
WORKDIR /build
COPY pyproject.toml README.md ./
# Dependencies first, in their own layer, as in the CPU image.
RUN mkdir -p service training \
    && touch service/__init__.py training/__init__.py \
    && python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir . \
    && /opt/venv/bin/pip uninstall -y polypserve
COPY service ./service
COPY training/__init__.py ./training/__init__.py
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps . \
    && rm -rf /build
WORKDIR /
COPY --chown=polypserve:polypserve models /models
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    POLYPSERVE_HOST=0.0.0.0 \
    POLYPSERVE_PORT=8000 \
    POLYPSERVE_MODELS_DIR=/models \
    POLYPSERVE_REQUIRE_GPU=true
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python3", "-c", "import urllib.request as r; r.urlopen('http://127.0.0.1:8000/v2/health/ready', timeout=2)"]
ENTRYPOINT ["polypserve", "serve"]
