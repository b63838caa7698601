"""deploy/k8s: the example overlay rendered by kustomize (kubectl's built-in) and validated
strictly against a named Kubernetes version's schemas (kubernetes-validate, from
requirements-dev.txt), then the properties the service relies on, read from what renders."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from itemsapi.config import Settings
from tests.deploy.conftest import ROOT

OVERLAY = ROOT / "deploy" / "k8s" / "overlays" / "example"
KUBERNETES_VERSION = "1.31.0"


@pytest.fixture(scope="module")
def rendered_text() -> str:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl (kustomize) is missing: run `make tools` (make test does)")
    result = subprocess.run(
        [kubectl, "kustomize", str(OVERLAY)], capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def resources(rendered_text) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (doc["kind"], doc["metadata"]["name"]): doc
        for doc in yaml.safe_load_all(rendered_text)
        if doc
    }


def validate(path: Path) -> subprocess.CompletedProcess:
    validator = Path(sys.executable).with_name("kubernetes-validate")
    return subprocess.run(
        [str(validator), "--strict", "--kubernetes-version", KUBERNETES_VERSION, str(path)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_the_overlay_validates_strictly(rendered_text, tmp_path):
    manifest = tmp_path / "rendered.yaml"
    manifest.write_text(rendered_text)
    result = validate(manifest)
    assert result.returncode == 0, result.stdout + result.stderr
    # strict means strict: a misspelt field fails
    manifest.write_text(rendered_text.replace("readinessProbe:", "readynessProbe:", 1))
    assert validate(manifest).returncode != 0


def test_every_kind_is_there(resources):
    kinds = {kind for kind, _ in resources}
    assert kinds >= {"Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler",
                     "Job", "ConfigMap", "NetworkPolicy"}  # fmt: skip
    assert resources["HorizontalPodAutoscaler", "itemsapi"]["apiVersion"] == "autoscaling/v2"
    assert not [name for kind, name in resources if kind == "Secret"]  # referenced, never shipped


def _container(resource: dict[str, Any]) -> dict[str, Any]:
    (container,) = resource["spec"]["template"]["spec"]["containers"]
    return container


def test_probes(resources):
    api = _container(resources["Deployment", "itemsapi"])
    assert api["livenessProbe"]["httpGet"]["path"] == "/live"
    assert api["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert api["startupProbe"]["httpGet"]["path"] == "/live"
    assert set(api["resources"]["requests"]) == {"cpu", "memory"}
    assert "memory" in api["resources"]["limits"]


LOCKED_DOWN = [("Deployment", "itemsapi"), ("Job", "itemsapi-migrate"), ("Deployment", "pgbouncer")]


@pytest.mark.parametrize(("kind", "name"), LOCKED_DOWN)
def test_locked_down(resources, kind, name):
    pod = resources[kind, name]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    context = _container(resources[kind, name])["securityContext"]
    assert context == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                       "capabilities": {"drop": ["ALL"]}}  # fmt: skip


def test_the_metrics_folder_is_a_writable_empty_dir(resources):
    deployment = resources["Deployment", "itemsapi"]
    config = resources["ConfigMap", "itemsapi"]["data"]
    mounts = {m["mountPath"]: m["name"] for m in _container(deployment)["volumeMounts"]}
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert config["PROMETHEUS_MULTIPROC_DIR"].startswith("/tmp/")
    assert "emptyDir" in volumes[mounts["/tmp"]]


def test_the_api_goes_through_the_pooler_and_migrations_do_not(resources):
    config = resources["ConfigMap", "itemsapi"]["data"]
    # every ITEMSAPI_ value is one the service accepts (the password file is not here to read)
    settings = {k.lower().removeprefix("itemsapi_"): v for k, v in config.items()
                if k.startswith("ITEMSAPI_") and not k.endswith("_FILE")}  # fmt: skip
    Settings(**settings)
    assert "@pgbouncer:" in config["DATABASE_URL"]
    assert config["ITEMSAPI_PREPARE_THRESHOLD"] == "none"
    assert config["ITEMSAPI_SESSION_SETTINGS"] == "server"
    job = _container(resources["Job", "itemsapi-migrate"])
    assert job["args"] == ["itemsapi", "migrate", "--wait", "60"]
    (url,) = [e for e in job["env"] if e["name"] == "DATABASE_URL"]
    assert url["valueFrom"]["configMapKeyRef"]["key"] == "MIGRATE_DATABASE_URL"
    assert "pgbouncer" not in config["MIGRATE_DATABASE_URL"]


def test_the_connection_budget_holds_at_the_autoscalers_maximum(resources):
    """(HPA max + surge) x workers x pool max <= PgBouncer's pool, and every pooler pod's pool
    plus each worker's direct listener connection <= max_connections - reserved."""
    config = resources["ConfigMap", "itemsapi"]["data"]
    deployment = resources["Deployment", "itemsapi"]
    pods = (resources["HorizontalPodAutoscaler", "itemsapi"]["spec"]["maxReplicas"]
            + deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"])  # fmt: skip
    clients = pods * int(config["ITEMSAPI_WORKERS"]) * int(config["ITEMSAPI_POOL_MAX_SIZE"])

    pooler_config = resources["ConfigMap", "pgbouncer"]
    ini = configparser.ConfigParser(inline_comment_prefixes=(";",))
    ini.read_string(pooler_config["data"]["pgbouncer.ini"])
    assert ini["pgbouncer"]["pool_mode"] == "transaction"
    pool_size = int(ini["pgbouncer"]["default_pool_size"])
    poolers = resources["Deployment", "pgbouncer"]["spec"]["replicas"]
    facts = pooler_config["metadata"]["annotations"]
    allowed = int(facts["itemsapi.example/postgres-max-connections"]) - int(
        facts["itemsapi.example/postgres-reserved-connections"]
    )
    assert deployment["spec"]["replicas"] <= pods
    assert clients <= pool_size, (clients, pool_size)  # the Service may send all to one pooler
    assert int(config["ITEMSAPI_POOLER_POOL_SIZE"]) == pool_size  # the start check's number
    listeners = pods * int(config["ITEMSAPI_WORKERS"])  # read cache and key records: direct
    assert poolers * pool_size + listeners <= allowed, (poolers, pool_size, listeners, allowed)
