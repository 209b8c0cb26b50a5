# The contract tests, run against a running stack (POLYPSERVE_TEST_URL).
FROM python:3.11-slim-bookworm
WORKDIR /src
COPY pyproject.toml README.md ./
COPY service ./service
COPY tests ./tests
# Versions are pinned in pyproject.toml.
# hadolint ignore=DL3013
RUN python -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir ".[dev]"
USER 10001:10001
ENTRYPOINT ["/opt/venv/bin/python", "-m", "pytest", "tests/contract/test_shipped.py", "-q"]
