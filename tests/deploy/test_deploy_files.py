"""The deploy files are valid: Kubernetes schemas, alert rules that name real metrics, RabbitMQ
definitions that import and grant least privilege, a hardened Dockerfile, a coherent compose.

No Docker engine or cluster runs here; each file is checked with what does run here.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = sorted((DEPLOY / "k8s").glob("*.yaml"))


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def exported_metric_names() -> set[str]:
    """Metric names the code registers (counters also export ``<name>_total``)."""
    names: set[str] = set()
    for source in (ROOT / "processor/metrics.py", ROOT / "dlq_admin/metrics.py"):
        text = source.read_text()
        for kind, name in re.findall(r'(Counter|Gauge|Histogram)\(\s*"(payproc_[a-z_]+)"', text):
            names.add(f"{name}_total" if kind == "Counter" else name)
            if kind == "Histogram":
                names.update({f"{name}_bucket", f"{name}_count", f"{name}_sum"})
    return names


@pytest.mark.parametrize("path", K8S, ids=lambda p: p.name)
def test_kubernetes_manifests_match_the_api_schemas(path: Path) -> None:
    """Every core Kubernetes object validates strictly against the 1.29 schemas."""
    for doc in documents(path):
        if doc["apiVersion"].startswith("keda.sh/"):
            continue  # a CRD: checked by the KEDA test below
        kubernetes_validate.validate(doc, "1.29", strict=True)


def test_workers_scale_on_the_request_queue_with_keda() -> None:
    """The ScaledObject targets the worker Deployment and the namespace's request queue."""
    docs = documents(DEPLOY / "k8s/worker.yaml")
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    scaled = next(d for d in docs if d["kind"] == "ScaledObject")
    auth = next(d for d in docs if d["kind"] == "TriggerAuthentication")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    trigger = scaled["spec"]["triggers"][0]
    assert trigger["type"] == "rabbitmq"
    assert trigger["metadata"]["queueName"] == "payments.requests"
    assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    assert scaled["spec"]["minReplicaCount"] >= 1


@pytest.mark.parametrize("name", ["worker.yaml", "admin.yaml"])
def test_deployments_have_probes_limits_pdb_and_run_unprivileged(name: str) -> None:
    """Probes on /healthz and /readyz, resources, non-root read-only containers, a PDB."""
    docs = documents(DEPLOY / "k8s" / name)
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    assert any(d["kind"] == "PodDisruptionBudget" for d in docs)
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["terminationGracePeriodSeconds"] > 25  # the worker's shutdown grace
    for container in pod["containers"]:
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["resources"]["limits"]["memory"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        secrets = [e for e in container.get("env", []) if "valueFrom" in e]
        assert secrets, "credentials come from the Secret, not from the manifest"


def test_secret_manifest_holds_only_placeholders() -> None:
    """The Secret in the repository carries no real credential."""
    secret = documents(DEPLOY / "k8s/secret.yaml")[0]
    for value in secret["stringData"].values():
        assert "CHANGE-ME" in value


def test_alert_rules_are_well_formed_and_use_metrics_that_exist() -> None:
    """Each rule has a name, expression, duration, severity and summary, and every payproc
    metric it mentions is one the worker or the admin API exports."""
    rules = yaml.safe_load((DEPLOY / "prometheus/alerts.yml").read_text())
    exported = exported_metric_names()
    alerts = [rule for group in rules["groups"] for rule in group["rules"]]
    names = {a["alert"] for a in alerts}
    for wanted in ("DlqGrowing", "OldParkedPayment", "RetryStorm", "CircuitOpen", "NoConsumers"):
        assert f"Payproc{wanted}" in names
    for alert in alerts:
        assert alert["expr"].strip()
        assert re.fullmatch(r"\d+[smh]", alert["for"])
        assert alert["labels"]["severity"] in {"page", "ticket"}
        assert alert["annotations"]["summary"]
        assert alert["expr"].count("(") == alert["expr"].count(")")
        for metric in re.findall(r"\bpayproc_[a-z_]+", alert["expr"]):
            assert metric in exported, f"{alert['alert']} uses unknown metric {metric}"


def test_prometheus_scrapes_both_components_and_loads_the_rules() -> None:
    """Prometheus scrapes workers, the admin API (with a viewer token) and RabbitMQ."""
    config = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
    assert "/etc/prometheus/alerts.yml" in config["rule_files"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert {"payproc-worker", "payproc-admin", "rabbitmq"} <= set(jobs)
    assert jobs["payproc-admin"]["authorization"]["type"] == "Bearer"


def test_dockerfile_is_multi_stage_pinned_and_non_root() -> None:
    """Two pinned stages, a numeric non-root USER before the entrypoint, a health check."""
    text = (DEPLOY / "Dockerfile").read_text()
    bases = re.findall(r"^FROM (\S+)", text, re.M)
    assert len(bases) >= 2
    for base in bases:
        assert re.search(r":\d+\.\d+\.\d+", base), f"unpinned base image {base}"
        assert ":latest" not in base
    user = re.search(r"^USER (\S+)", text, re.M)
    assert user is not None
    assert not user.group(1).startswith(("0", "root"))
    assert text.index("USER ") < text.index("ENTRYPOINT")
    assert "HEALTHCHECK" in text


def test_compose_runs_a_cluster_migrations_first_and_pins_images() -> None:
    """Three RabbitMQ nodes with one cookie, workers after the migration, pinned images."""
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    nodes = [name for name in services if name.startswith("rabbitmq-")]
    assert len(nodes) == 3
    cookies = {services[n]["environment"]["RABBITMQ_ERLANG_COOKIE"] for n in nodes}
    assert len(cookies) == 1
    for name in ("worker", "admin"):
        assert services[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert services["worker"]["deploy"]["replicas"] >= 2
    for name, service in services.items():
        image = service["image"]
        assert re.search(r":(v?\d+\.\d+)", image), f"{name} image {image} is not pinned"
    mounts = " ".join(services["prometheus"]["volumes"])
    assert "alerts.yml" in mounts


def _permits(pattern: str, resource: str) -> bool:
    return re.fullmatch(pattern, resource) is not None


def test_broker_permissions_stay_inside_the_namespace() -> None:
    """Worker and admin users reach their namespace's objects and nothing of another one."""
    definitions = json.loads((DEPLOY / "rabbitmq/definitions.json").read_text())
    perms = {p["user"]: p for p in definitions["permissions"]}
    worker, admin = perms["payproc-worker"], perms["payproc-admin"]
    for own in ("payments.requests", "payments.retry.5s", "payments.retry.0.5s"):
        assert _permits(worker["read"], own) or own.startswith("payments.retry")
        assert _permits(worker["configure"], own)
    assert _permits(worker["read"], "payments.requests")
    assert _permits(worker["write"], "payments.dlx")
    assert _permits(worker["write"], "amq.default")
    assert _permits(admin["read"], "payments.dlq")
    assert _permits(admin["write"], "payments")
    for other in ("other.requests", "paymentsX.requests", "payments2.dlq", "amq.rabbitmq.trace"):
        for user in (worker, admin):
            assert not any(_permits(user[k], other) for k in ("configure", "write", "read"))
    assert not _permits(admin["write"], "amq.default")
    assert all(not u["password_hash"] for u in definitions["users"]), "no secrets in git"


def _rabbitmqctl(*args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        ["rabbitmqctl", "-q", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        input=stdin,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_definitions_import_into_the_broker(amqp_url: str) -> None:
    """`rabbitmqctl import_definitions` accepts the file (into a throw-away vhost and users)."""
    tag = uuid.uuid4().hex[:8]
    vhost = f"payproc-deftest-{tag}"
    definitions = json.loads((DEPLOY / "rabbitmq/definitions.json").read_text())
    for user in definitions["users"]:
        user["name"] = f"{user['name']}-{tag}"
    for perm in definitions["permissions"]:
        perm["user"] = f"{perm['user']}-{tag}"
        perm["vhost"] = vhost
    definitions["vhosts"] = [{"name": vhost}]
    # rabbitmqctl runs as the rabbitmq user: the copy must be readable by it.
    handle, name = tempfile.mkstemp(prefix="payproc-deftest-", suffix=".json", dir="/tmp")
    copy = Path(name)
    with os.fdopen(handle, "w") as out:
        json.dump(definitions, out)
    copy.chmod(0o644)
    _rabbitmqctl("add_vhost", vhost)
    try:
        _rabbitmqctl("import_definitions", str(copy))
        listed = _rabbitmqctl("list_permissions", "-p", vhost)
        for user in definitions["users"]:
            assert user["name"] in listed
        worker = next(p for p in definitions["permissions"] if "worker" in p["user"])
        assert worker["configure"] in listed
    finally:
        copy.unlink()
        _rabbitmqctl("delete_vhost", vhost)
        for user in definitions["users"]:
            subprocess.run(
                ["rabbitmqctl", "-q", "delete_user", user["name"]],
                capture_output=True,
                timeout=60,
                check=False,
            )
