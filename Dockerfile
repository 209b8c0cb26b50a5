# syntax=docker/dockerfile:1
# polypserve images. Two targets:
#   docker build --target gpu -t polypserve:gpu .   (default; NVIDIA CUDA 13 + cuDNN 9)
#   docker build --target cpu -t polypserve:cpu .
# Without Docker Hub access: docker/build-local.sh cpu|gpu (podman, a Debian stand-in base).
# onnxruntime-gpu 1.31 is built against CUDA 13.x and cuDNN 9.x (its CUDA provider loads
# libcublasLt.so.13 and libcudnn.so.9), so the GPU image starts from NVIDIA's CUDA 13.0 runtime
# image with cuDNN 9. The CPU image takes ONNX Runtime's CPU build of the same version instead
# (a tenth of the size). Only the service package goes into either image: no training code
# (the service imports none), no torch, no data sets.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG CUDA_IMAGE=nvidia/cuda:13.0.1-cudnn-runtime-ubuntu24.04

# ---- dependencies, in their own layer so code changes do not reinstall them ----
# Installed from pyproject's list, not from the project itself: the code is not here yet, and
# ONNXRUNTIME names the build of ONNX Runtime (same pinned version) this image takes.
FROM ${PYTHON_IMAGE} AS deps
ARG ONNXRUNTIME=onnxruntime
WORKDIR /build
COPY pyproject.toml ./
RUN python -c "import sys, tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; print('\n'.join(d.replace('onnxruntime-gpu==', sys.argv[1] + '==') for d in deps))" "$ONNXRUNTIME" >requirements.txt \
    && python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir -r requirements.txt

# ---- the application: the service package alone, dependencies already in place ----
FROM deps AS app
COPY README.md ./
COPY service ./service
# pip and setuptools only install; the service needs neither at run time.
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps . \
    && /opt/venv/bin/pip uninstall --yes pip setuptools

# ---- CPU image ----
FROM ${PYTHON_IMAGE} AS cpu
# Video jobs are kept in their own folder, owned by the service's user, so that a named volume
# mounted there (docker/compose.yaml) starts writable and keeps them across containers.
RUN useradd --create-home --uid 10001 polypserve \
    && install -d -o polypserve -g polypserve /var/lib/polypserve/jobs
COPY --from=app /opt/venv /opt/venv
COPY --chown=polypserve:polypserve models /models
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    POLYPSERVE_HOST=0.0.0.0 \
    POLYPSERVE_PORT=8000 \
    POLYPSERVE_MODELS_DIR=/models \
    POLYPSERVE_VIDEO_JOBS_DIR=/var/lib/polypserve/jobs \
    POLYPSERVE_PROVIDERS=CPUExecutionProvider
USER 10001:10001
EXPOSE 8000
# The port the service was told to listen on (host networking may move it off 8000).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as r; r.urlopen('http://127.0.0.1:%s/v2/health/ready' % os.environ['POLYPSERVE_PORT'], timeout=2)"]
ENTRYPOINT ["polypserve", "serve"]

# ---- GPU image ----
FROM ${CUDA_IMAGE} AS gpu
# Ubuntu 24.04's Python is 3.12; the venv is built here against it.
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 polypserve \
    && install -d -o polypserve -g polypserve /var/lib/polypserve/jobs
WORKDIR /build
COPY pyproject.toml ./
# Dependencies first, in their own layer, as in the CPU image (here with onnxruntime-gpu).
RUN python3 -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" >requirements.txt \
    && python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir -r requirements.txt
COPY README.md ./
COPY service ./service
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps . \
    && rm -rf /build
WORKDIR /
COPY --chown=polypserve:polypserve models /models
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    POLYPSERVE_HOST=0.0.0.0 \
    POLYPSERVE_PORT=8000 \
    POLYPSERVE_MODELS_DIR=/models \
    POLYPSERVE_VIDEO_JOBS_DIR=/var/lib/polypserve/jobs \
    POLYPSERVE_REQUIRE_GPU=true
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request as r; r.urlopen('http://127.0.0.1:%s/v2/health/ready' % os.environ['POLYPSERVE_PORT'], timeout=2)"]
ENTRYPOINT ["polypserve", "serve"]
