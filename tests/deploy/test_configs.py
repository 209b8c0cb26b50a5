"""The deployment files, checked with the tools made for each (no Docker engine here)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from service.metrics import ServiceMetrics
from tests.conftest import REPO_ROOT

DOCKER = REPO_ROOT / "docker"
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    path = shutil.which(name) or str(BIN / name)
    if not Path(path).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{name} is missing")
        pytest.skip(f"{name} is not installed")
    return path


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT)


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "docker/tests.Dockerfile"])
def test_dockerfiles_pass_hadolint(dockerfile: str) -> None:
    result = _run(_tool("hadolint"), "--config", "docker/hadolint.yaml", dockerfile)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_runs_as_non_root_with_healthcheck_and_exec_entrypoint() -> None:
    text = (REPO_ROOT / "Dockerfile").read_text()
    assert text.count("USER 10001:10001") == 2
    assert text.count("HEALTHCHECK") == 2 and "/v2/health/ready" in text
    assert text.count('ENTRYPOINT ["polypserve", "serve"]') == 2
    instructions = [line for line in text.splitlines() if not line.startswith("#")]
    assert not any("torch" in line or "shared" in line or "[train" in line for line in instructions)
    ignored = (REPO_ROOT / ".dockerignore").read_text()
    assert ignored.splitlines()[1] == "*"  # everything out, then only what the image needs


def test_compose_file_matches_the_compose_specification() -> None:
    result = _run(
        _tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", "docker/compose.yaml"
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_kubernetes_manifests_validate() -> None:
    manifests = sorted(str(p) for p in (DOCKER / "k8s").glob("*.yaml"))
    result = _run(_tool("kubernetes-validate"), "--strict", *manifests)
    assert result.returncode == 0, result.stdout + result.stderr
    deployment = (DOCKER / "k8s" / "deployment.yaml").read_text()
    for needle in (
        "nvidia.com/gpu: 1",
        "readOnlyRootFilesystem: true",
        "runAsNonRoot: true",
        "allowPrivilegeEscalation: false",
        "/v2/health/ready",
        "/v2/health/live",
    ):
        assert needle in deployment


def test_nginx_config_is_valid(tmp_path: Path) -> None:
    nginx = _tool("nginx")
    shutil.copy(DOCKER / "nginx.conf", tmp_path / "nginx.conf")
    (tmp_path / "polypserve-upstreams.conf").write_text("server 127.0.0.1:9;\n")
    result = _run(nginx, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"))
    assert result.returncode == 0, result.stderr


def _exported_series() -> set[str]:
    names: set[str] = set()
    for family in ServiceMetrics().registry.collect():
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names |= {f"{family.name}_{part}" for part in ("bucket", "sum", "count")}
        else:
            names.add(family.name)
    return names


def test_dashboard_and_prometheus_use_metrics_the_service_exports() -> None:
    dashboard = json.loads((DOCKER / "grafana" / "dashboards" / "polypserve.json").read_text())
    used = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"polypserve_[a-z_]+", target["expr"])
    }
    assert used and used <= _exported_series(), used - _exported_series()
    assert "dns_sd_configs" in (DOCKER / "prometheus.yml").read_text()


def test_shipped_deployments_keep_model_control_closed() -> None:
    """Every shipped deployment binds 0.0.0.0; none may open load/unload (off by default)."""
    files = [
        REPO_ROOT / "Dockerfile",
        DOCKER / "compose.yaml",
        DOCKER / "polypserve.env",
        *sorted((DOCKER / "k8s").glob("*.yaml")),
    ]
    for path in files:
        text = path.read_text().lower()
        assert "model_control" not in text and "admin_key" not in text, path
