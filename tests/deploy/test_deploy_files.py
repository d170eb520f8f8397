"""The deploy files (deploy/) are valid and agree with each other and with the code.

No Docker engine or Kubernetes cluster runs here, so each file is checked with what does:
Kubernetes' own JSON schemas (kubernetes-validate), promtool (rules, rule unit tests, config),
RabbitMQ's configuration schema (cuttlefish, from the local RabbitMQ install), the local
broker (definitions imported into a throw-away vhost, then used by each component's user),
haproxy -c, docker compose config, a wheel built from exactly what the Dockerfile copies.

When an external tool is missing the test falls back to a structural check of the same file
and says so with a warning (``make test`` shows it); it never skips silently. Which path
ran is printed (``pytest -rP``).
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse

import aio_pika
import kubernetes_validate
import pytest
import yaml
from aiormq.exceptions import ChannelAccessRefused

from dlq_admin.amqp import declare_dlq_topology
from processor.config import Settings
from retry.names import DEAD_ROUTING_KEY, REQUEST_ROUTING_KEY, Names
from retry.topology import declare_topology, planned_queues
from schemas.outcome import ParkReason
from tests.support.broker import AMQP_URL, in_ci, require

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
HERE = Path(__file__).resolve().parent
K8S_FILES = sorted((DEPLOY / "k8s").glob("*.yaml"))
YAML_FILES = sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")])
NAMESPACE = "payments"  # the production namespace the deploy files are written for
WORKER_GRACE_SECONDS = 25.0  # `payproc worker --grace` default
KUBERNETES_VERSIONS = ("1.29", kubernetes_validate.latest_version())
PLACEHOLDER = "CHANGE-ME"


# ---- helpers -------------------------------------------------------------------------


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def k8s_objects() -> list[dict[str, Any]]:
    return [doc for path in K8S_FILES for doc in documents(path)]


def k8s_object(kind: str, name: str) -> dict[str, Any]:
    for doc in k8s_objects():
        if doc["kind"] == kind and doc["metadata"]["name"] == name:
            return doc
    raise AssertionError(f"no {kind} {name} in deploy/k8s")


def pod_containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod["containers"]]


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return data


def definitions() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DEPLOY / "rabbitmq/definitions.json").read_text())
    return data


def run(*args: str, timeout: float = 60, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args), capture_output=True, text=True, timeout=timeout, check=False, **kwargs
    )


def fallback(what: str, reason: str) -> None:
    """Say loudly that a structural check stood in for a tool that is not installed; under
    CI the tool is required (``scripts/ensure-deploy-tools.sh`` installs it), so fail."""
    message = f"{what}: {reason}; ran the structural check instead"
    if in_ci():
        pytest.fail(f"{what}: {reason} (CI=true requires the real tool)")
    print(message)
    warnings.warn(message, stacklevel=2)


def settings_fields() -> set[str]:
    return {f"PAYPROC_{name.upper()}" for name in Settings.model_fields}


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


# ---- every file ----------------------------------------------------------------------


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_yaml_file_parses(path: Path) -> None:
    """Every YAML file under deploy/ parses and holds at least one mapping."""
    docs = documents(path)
    assert docs, f"{path} is empty"
    assert all(isinstance(doc, dict) for doc in docs)


def test_payproc_settings_in_deploy_files_exist_and_parse() -> None:
    """Every PAYPROC_* variable the deploy files set is a real setting and their values load."""
    known = settings_fields()
    configmap = k8s_object("ConfigMap", "payproc")["data"]
    services = compose()["services"]
    dockerfile_env = re.findall(r"\b(PAYPROC_[A-Z_]+)=", (DEPLOY / "Dockerfile").read_text())
    used = {
        *configmap,
        *dockerfile_env,
        *(
            k
            for s in services.values()
            if s["image"].startswith("payproc:")
            for k in (s.get("environment") or {})
        ),
        *(
            e["name"]
            for doc in k8s_objects()
            if doc["kind"] in ("Deployment", "Job")
            for c in pod_containers(doc["spec"]["template"]["spec"])
            for e in c.get("env", [])
        ),
    }
    unknown = sorted(k for k in used if k.startswith("PAYPROC_") and k not in known)
    assert not unknown, f"not payproc settings (silently ignored): {unknown}"

    def load(env: dict[str, str]) -> Settings:
        overrides = {
            k.removeprefix("PAYPROC_").lower(): re.sub(r"\$\{[^}]*\}", "x", v)
            for k, v in env.items()
            if k.startswith("PAYPROC_")
        }
        return Settings.model_validate(overrides)

    assert load(configmap).namespace == NAMESPACE
    for name in ("worker", "admin", "migrate"):
        assert load(services[name]["environment"]).namespace == NAMESPACE
    secret = k8s_object("Secret", "payproc")["stringData"]
    load({"PAYPROC_AMQP_URL": secret["worker-amqp-url"]})
    load({"PAYPROC_DATABASE_URL": secret["database-url"]})


# ---- Kubernetes ----------------------------------------------------------------------


@pytest.mark.parametrize("path", K8S_FILES, ids=lambda p: p.name)
def test_kubernetes_manifests_match_the_api_schemas(path: Path) -> None:
    """Every core Kubernetes object validates strictly against the 1.29 and newest schemas."""
    checked = 0
    for doc in documents(path):
        if doc["apiVersion"].startswith("keda.sh/"):
            continue  # a CRD the bundled schemas do not know: the KEDA test checks it
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)
        checked += 1
    print(f"{path.name}: {checked} objects valid for Kubernetes {', '.join(KUBERNETES_VERSIONS)}")


def test_workers_scale_on_the_request_queue_with_keda() -> None:
    """The ScaledObject targets the worker Deployment on the namespace's request queue, and
    its TriggerAuthentication reads a key that the Secret has."""
    scaled = k8s_object("ScaledObject", "payproc-worker")
    deployment = k8s_object("Deployment", "payproc-worker")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    spec = scaled["spec"]
    assert set(spec) <= {
        "scaleTargetRef",
        "minReplicaCount",
        "maxReplicaCount",
        "pollingInterval",
        "cooldownPeriod",
        "idleReplicaCount",
        "fallback",
        "advanced",
        "triggers",
    }
    target = spec["scaleTargetRef"]
    assert target["name"] == deployment["metadata"]["name"]
    assert target.get("kind", "Deployment") == "Deployment"
    assert scaled["metadata"]["namespace"] == deployment["metadata"]["namespace"]
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    assert "replicas" not in deployment["spec"], "KEDA owns the replica count"
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "rabbitmq"
    metadata = trigger["metadata"]
    assert metadata["queueName"] == Names(NAMESPACE).requests == "payments.requests"
    assert metadata["mode"] in ("QueueLength", "MessageRate")
    assert metadata["protocol"] in ("amqp", "http", "auto")
    assert isinstance(metadata["value"], str)
    assert float(metadata["value"]) > 0
    assert "host" not in metadata, "the broker URL holds a password: it comes from the Secret"
    auth = k8s_object("TriggerAuthentication", trigger["authenticationRef"]["name"])
    assert auth["apiVersion"] == "keda.sh/v1alpha1"
    secret = k8s_object("Secret", "payproc")
    (ref,) = auth["spec"]["secretTargetRef"]
    assert ref["parameter"] == "host"
    assert ref["name"] == secret["metadata"]["name"]
    assert ref["key"] in secret["stringData"]
    assert "payproc-monitoring" in secret["stringData"][ref["key"]]


@pytest.mark.parametrize("name", ["payproc-worker", "payproc-admin"])
def test_deployments_have_probes_resources_a_pdb_and_run_restricted(name: str) -> None:
    """Worker and admin pods have /healthz and /readyz probes, requests and limits, the
    restricted pod security profile, a read-only root with a writable /tmp and a PDB."""
    deployment = k8s_object("Deployment", name)
    pod = deployment["spec"]["template"]["spec"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    pdb = k8s_object("PodDisruptionBudget", name)
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    volumes = {v["name"]: v for v in pod["volumes"]}
    for container in pod_containers(pod):
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        assert {"cpu", "memory"} <= set(container["resources"]["requests"])
        assert container["resources"]["limits"]["memory"]
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert "emptyDir" in volumes[mounts["/tmp"]]  # noqa: S108 - the pod's scratch mount
        assert ":latest" not in container["image"]
    (main,) = pod["containers"]
    port_names = {p["name"] for p in main["ports"]}
    assert main["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert main["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert main["startupProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert main[probe]["httpGet"]["port"] in port_names
    assert any("valueFrom" in e for e in main["env"]), "credentials come from the Secret"
    waits = [c for c in pod.get("initContainers", []) if c["args"] == ["db", "current"]]
    assert waits, "pods wait for the migration before starting"


def test_worker_shutdown_grace_fits_in_the_termination_grace_period() -> None:
    """Kubernetes waits longer than the worker's in-flight grace before it kills the pod."""
    pod = k8s_object("Deployment", "payproc-worker")["spec"]["template"]["spec"]
    (worker,) = pod["containers"]
    args = worker["args"]
    grace = float(args[args.index("--grace") + 1]) if "--grace" in args else WORKER_GRACE_SECONDS
    assert pod["terminationGracePeriodSeconds"] >= grace + 10


def test_every_secret_and_configmap_reference_resolves() -> None:
    """Each secretKeyRef and configMapRef names an object and key that the manifests define."""
    secret = k8s_object("Secret", "payproc")
    configmap = k8s_object("ConfigMap", "payproc")
    for doc in k8s_objects():
        if doc["kind"] not in ("Deployment", "Job"):
            continue
        assert doc["metadata"]["namespace"] == secret["metadata"]["namespace"]
        for container in pod_containers(doc["spec"]["template"]["spec"]):
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] == configmap["metadata"]["name"]
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == secret["metadata"]["name"]
                    assert ref["key"] in secret["stringData"], f"{env['name']}: {ref['key']}"


def test_every_object_lives_in_the_payproc_namespace() -> None:
    """All namespaced objects go to the Namespace the manifests create."""
    (namespace,) = [d for d in k8s_objects() if d["kind"] == "Namespace"]
    for doc in k8s_objects():
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == namespace["metadata"]["name"]


def test_admin_service_routes_to_the_admin_pods() -> None:
    """The admin Service selects the admin pods and targets their named HTTP port."""
    service = k8s_object("Service", "payproc-admin")
    pod = k8s_object("Deployment", "payproc-admin")["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    port_names = {p["name"] for c in pod["spec"]["containers"] for p in c["ports"]}
    for port in service["spec"]["ports"]:
        assert port["targetPort"] in port_names


def test_migration_job_runs_db_upgrade_with_the_same_image() -> None:
    """The Job runs `payproc db upgrade` with the image the workers and admin run."""
    job = k8s_object("Job", "payproc-migrate")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["db", "upgrade"]
    images = {
        c["image"]
        for doc in k8s_objects()
        if doc["kind"] in ("Deployment", "Job")
        for c in pod_containers(doc["spec"]["template"]["spec"])
    }
    assert images == {container["image"]}


def test_secret_manifest_holds_only_placeholders() -> None:
    """The Secret in the repository carries no real credential."""
    secret = k8s_object("Secret", "payproc")
    assert "data" not in secret
    for key, value in secret["stringData"].items():
        assert PLACEHOLDER in value, f"{key} looks like a real value"


# ---- Prometheus ----------------------------------------------------------------------


def alert_rules() -> list[dict[str, Any]]:
    rules = yaml.safe_load((DEPLOY / "prometheus/alerts.yml").read_text())
    return [rule for group in rules["groups"] for rule in group["rules"]]


def test_alert_rules_cover_the_failure_modes_and_use_real_metrics() -> None:
    """The five required alerts exist, each rule is complete, and every payproc metric an
    expression names is one the worker or the admin API exports."""
    rules = yaml.safe_load((DEPLOY / "prometheus/alerts.yml").read_text())
    assert rules["groups"]
    for group in rules["groups"]:
        assert group["name"]
        assert group["rules"]
    exported = exported_metric_names()
    names = {rule["alert"] for rule in alert_rules()}
    for wanted in (
        "PayprocDlqGrowing",
        "PayprocOldestParkedTooOld",
        "PayprocRetryStorm",
        "PayprocCircuitOpen",
        "PayprocNoConsumers",
    ):
        assert wanted in names
    runbook = (ROOT / "docs/deployment.md").read_text()
    sections = {h.lower() for h in re.findall(r"^#{2,4} (\w+)", runbook, re.M)}
    parked = [f"parked_{reason.value}" for reason in ParkReason]
    for rule in alert_rules():
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}
        assert rule["expr"].strip()
        assert rule["expr"].count("(") == rule["expr"].count(")")
        assert re.fullmatch(r"\d+[smh]", rule["for"])
        assert rule["labels"]["severity"] in {"page", "ticket"}
        assert rule["annotations"]["summary"]
        assert rule["annotations"]["description"]
        page, _, anchor = rule["annotations"]["runbook"].partition("#")
        assert page == "docs/deployment.md"
        assert anchor in sections, f"{rule['alert']}: no section {anchor} in {page}"
        for metric in re.findall(r"\bpayproc_[a-z_]+", rule["expr"]):
            assert metric in exported, f"{rule['alert']} uses unknown metric {metric}"
        for pattern in re.findall(r'outcome=~"([^"]+)"', rule["expr"]):
            matched = [o for o in [*parked, "succeeded", "declined"] if re.fullmatch(pattern, o)]
            assert matched == parked, f"{rule['alert']}: outcome=~{pattern} matches {matched}"


def test_alert_rules_pass_promtool_and_their_unit_tests() -> None:
    """`promtool check rules` accepts the rules and `promtool test rules` shows each alert
    firing (and staying quiet) on synthetic series as intended."""
    promtool = shutil.which("promtool")
    if promtool is None:
        fallback("promtool", "not installed (apt-get install prometheus)")
        return  # the structural test above covered the rules
    checked = run(promtool, "check", "rules", "alerts.yml", cwd=DEPLOY / "prometheus")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = run(promtool, "test", "rules", "alerts.test.yml", cwd=DEPLOY / "prometheus")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    print(f"promtool: {checked.stdout.strip()} / {tested.stdout.strip()}")


def test_prometheus_config_scrapes_every_component_and_loads_the_rules() -> None:
    """prometheus.yml scrapes workers, the admin API (viewer token) and the RabbitMQ nodes,
    loads the rules file compose mounts, and passes `promtool check config`."""
    config = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
    services = compose()["services"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert {"payproc-worker", "payproc-admin", "rabbitmq"} <= set(jobs)
    (worker_sd,) = jobs["payproc-worker"]["dns_sd_configs"]
    assert worker_sd["names"] == ["worker"]
    assert worker_sd["port"] == 9100
    assert jobs["payproc-admin"]["static_configs"][0]["targets"] == ["admin:8080"]
    nodes = sorted(n for n in services if n.startswith("rabbitmq-"))
    assert jobs["rabbitmq"]["static_configs"][0]["targets"] == [f"{n}:15692" for n in nodes]
    assert jobs["rabbitmq"]["metrics_path"] == "/metrics/per-object"
    token = jobs["payproc-admin"]["authorization"]["credentials_file"]
    assert token == "/run/secrets/prometheus_admin_token"
    assert "prometheus_admin_token" in services["prometheus"]["secrets"]
    mounts = dict(v.split(":")[:2] for v in services["prometheus"]["volumes"] if ":" in v)
    for rule_file in config["rule_files"]:
        assert mounts.get("./prometheus/alerts.yml") == rule_file

    promtool = shutil.which("promtool")
    if promtool is None:
        fallback("promtool check config", "promtool not installed (apt-get install prometheus)")
        return
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        shutil.copy(DEPLOY / "prometheus/alerts.yml", work / "alerts.yml")
        (work / "token").write_text("placeholder")
        text = (DEPLOY / "prometheus/prometheus.yml").read_text()
        text = text.replace("/etc/prometheus/alerts.yml", str(work / "alerts.yml"))
        text = text.replace(token, str(work / "token"))
        (work / "prometheus.yml").write_text(text)
        result = run(promtool, "check", "config", str(work / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    print("promtool check config: SUCCESS")


# ---- RabbitMQ ------------------------------------------------------------------------


def rabbitmq_server_dir() -> Path | None:
    found = sorted(Path("/usr/lib/rabbitmq/lib").glob("rabbitmq_server-*"))
    return found[-1] if found else None


def conf_entries(path: Path) -> dict[str, str]:
    entries = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            key, sep, value = line.partition("=")
            assert sep, f"not a key = value line: {line!r}"
            entries[key.strip()] = value.strip()
    return entries


def test_rabbitmq_conf_forms_the_compose_cluster() -> None:
    """The classic peer-discovery node list is exactly the compose nodes, and the node loads
    the definitions file that compose mounts."""
    entries = conf_entries(DEPLOY / "rabbitmq/rabbitmq.conf")
    services = compose()["services"]
    hostnames = sorted(s["hostname"] for n, s in services.items() if n.startswith("rabbitmq-"))
    assert len(hostnames) == 3
    assert entries["cluster_formation.peer_discovery_backend"] == "classic_config"
    listed = sorted(v for k, v in entries.items() if k.startswith("cluster_formation.classic"))
    assert listed == [f"rabbit@{h}" for h in hostnames]
    mounted = {v.split(":")[1] for v in services["rabbitmq-1"]["volumes"] if v.startswith("./")}
    assert entries["load_definitions"] in mounted
    assert entries["definitions.skip_if_unchanged"] == "true"
    assert entries["cluster_partition_handling"] == "pause_minority"


def test_rabbitmq_conf_matches_the_rabbitmq_310_schema() -> None:
    """Every key and value of rabbitmq.conf is accepted by RabbitMQ 3.10's configuration
    schema, the check a node runs at boot before it refuses to start."""
    server = rabbitmq_server_dir()
    escript = shutil.which("escript")
    if server is None or escript is None:
        fallback("rabbitmq.conf schema", "no local RabbitMQ install or escript")
        return
    plugins = server / "plugins"
    enabled = (DEPLOY / "rabbitmq/enabled_plugins").read_text()
    names = re.findall(r"[a-z_]+", enabled.partition("[")[2].partition("]")[0])
    assert "rabbitmq_prometheus" in names
    schemas = [*plugins.glob("rabbit-*/priv/schema/rabbit.schema")]
    for name in [*names, "rabbitmq_management_agent"]:
        found = sorted(plugins.glob(f"{name}-*/priv/schema/{name}.schema"))
        assert found or name == "rabbitmq_management_agent", f"unknown plugin {name}"
        schemas.extend(found[-1:])
    text = (DEPLOY / "rabbitmq/rabbitmq.conf").read_text()
    definitions_path = conf_entries(DEPLOY / "rabbitmq/rabbitmq.conf")["load_definitions"]
    text = text.replace(definitions_path, str(DEPLOY / "rabbitmq/definitions.json"))
    with tempfile.TemporaryDirectory() as scratch:
        conf = Path(scratch) / "rabbitmq.conf"
        conf.write_text(text)
        result = run(
            escript,
            str(HERE / "rabbitmq_conf_check.escript"),
            str(conf),
            *map(str, schemas),
            env={**os.environ, "ERL_LIBS": str(plugins)},
        )
    assert result.returncode == 0, result.stdout + result.stderr
    print(f"rabbitmq.conf vs {server.name} schema: {result.stdout.strip()}")


def own_resources() -> dict[str, list[str]]:
    """The exchanges and queues each component touches, from the code's own names."""
    names = Names(NAMESPACE)
    queues = [q.name for q in planned_queues(names, Settings().retry_delays, 10)]
    retries = [q for q in queues if q.startswith(f"{NAMESPACE}.retry.")]
    return {
        "exchanges": [names.exchange, names.dlx, names.events],
        "queues": queues,
        "retries": [*retries, names.retry_queue(0.5), names.retry_queue(2.25)],
    }


FOREIGN = [
    "other",
    "other.requests",
    "other.retry.5s",
    "payments2.requests",
    "paymentsX",
    "payments.requests.evil",
    "xpayments.requests",
    "amq.rabbitmq.trace",
    "amq.topic",
]


def test_broker_permissions_are_anchored_to_the_payments_namespace() -> None:
    """Worker and admin permissions reach their own objects of namespace `payments` and
    nothing of another namespace, and the monitoring user's reach nothing at all."""
    perms = {p["user"]: p for p in definitions()["permissions"]}
    worker, admin = perms["payproc-worker"], perms["payproc-admin"]
    mine = own_resources()

    def ok(pattern: str, resource: str) -> bool:
        return re.search(pattern, resource) is not None  # RabbitMQ uses re:run, unanchored

    for resource in [*mine["exchanges"], *mine["queues"], *mine["retries"]]:
        assert ok(worker["configure"], resource), resource
    for resource in ("payments.requests", "payments.retry.5s", "payments.retry.0.5s"):
        assert ok(worker["read"], resource)
    for resource in ("payments", "payments.dlx", "payments.events", "amq.default"):
        assert ok(worker["write"], resource)
    assert not ok(worker["read"], "payments.dlq"), "only the admin consumes the DLQ"
    for resource in ("payments", "payments.dlx", "payments.events", "payments.dlq"):
        assert ok(admin["configure"], resource)
    assert ok(admin["read"], "payments.dlq")
    assert ok(admin["write"], "payments")
    for resource in ("payments.requests", "payments.retry.5s"):
        assert not ok(admin["configure"], resource)
    assert not ok(admin["write"], "amq.default"), "replays go through the exchange"
    for foreign in FOREIGN:
        for user in (worker, admin):
            for kind in ("configure", "write", "read"):
                assert not ok(user[kind], foreign), f"{user['user']} {kind} {foreign}"
    monitoring = perms["payproc-monitoring"]
    for kind in ("configure", "write", "read"):
        assert monitoring[kind] == "^$"
    for pattern in (p[k] for p in perms.values() for k in ("configure", "write", "read")):
        assert pattern.startswith("^")
        assert pattern.endswith("$")


def test_definitions_hold_no_secret() -> None:
    """No user in the definitions file has a password or a password hash."""
    for user in definitions()["users"]:
        assert "password" not in user
        assert user["password_hash"] == ""
        assert "administrator" not in user["tags"]
    assert {u["name"] for u in definitions()["users"]} == {
        p["user"] for p in definitions()["permissions"]
    }


def rabbitmqctl(*args: str) -> str:
    result = run("rabbitmqctl", "-q", *args, timeout=120)
    assert result.returncode == 0, f"rabbitmqctl {args[0]}: {result.stdout}{result.stderr}"
    return result.stdout


@pytest.fixture
def broker_copy() -> Iterator[dict[str, Any]]:
    """The definitions imported into a throw-away vhost under throw-away user names, the
    passwords set by deploy/rabbitmq/set-passwords.sh; all of it deleted afterwards."""
    require(AMQP_URL, 5672, "RabbitMQ")
    if shutil.which("rabbitmqctl") is None or run("rabbitmqctl", "-q", "status").returncode:
        if in_ci():
            pytest.fail("rabbitmqctl cannot reach the local broker (CI=true: never skipped)")
        pytest.skip("rabbitmqctl cannot reach the local broker")
    tag = uuid.uuid4().hex[:8]
    vhost = f"payproc-deftest-{tag}"
    users = {u["name"]: f"{u['name']}-{tag}" for u in definitions()["users"]}
    copy = definitions()
    for user in copy["users"]:
        user["name"] = users[user["name"]]
    for perm in copy["permissions"]:
        perm["user"] = users[perm["user"]]
        perm["vhost"] = vhost
    copy["vhosts"] = [{"name": vhost}]
    script = (DEPLOY / "rabbitmq/set-passwords.sh").read_text()
    for name, renamed in users.items():
        script = re.sub(rf"\b{re.escape(name)}\b(?!-)", renamed, script)
    passwords = {renamed: uuid.uuid4().hex for renamed in users.values()}
    scratch = Path(tempfile.mkdtemp(prefix="payproc-deftest-"))
    scratch.chmod(0o755)  # rabbitmqctl reads the file as the rabbitmq user
    try:
        (scratch / "definitions.json").write_text(json.dumps(copy))
        (scratch / "definitions.json").chmod(0o644)
        (scratch / "set-passwords.sh").write_text(script)
        rabbitmqctl("add_vhost", vhost)
        rabbitmqctl("import_definitions", str(scratch / "definitions.json"))
        node = rabbitmqctl("eval", "node().").strip()
        env = {
            **os.environ,
            "RABBITMQ_NODE": node,
            "RABBITMQ_CLUSTER_SIZE": "1",
            "PAYPROC_WORKER_AMQP_PASSWORD": passwords[users["payproc-worker"]],
            "PAYPROC_ADMIN_AMQP_PASSWORD": passwords[users["payproc-admin"]],
            "PAYPROC_MONITORING_AMQP_PASSWORD": passwords[users["payproc-monitoring"]],
        }
        result = run("sh", str(scratch / "set-passwords.sh"), env=env, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        base = urlparse(AMQP_URL)
        host = f"{base.hostname or '127.0.0.1'}:{base.port or 5672}"
        yield {
            "vhost": vhost,
            "users": users,
            "url": {
                name: f"amqp://{renamed}:{passwords[renamed]}@{host}/{quote(vhost, safe='')}"
                for name, renamed in users.items()
            },
        }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        run("rabbitmqctl", "-q", "delete_vhost", vhost, timeout=120)
        for renamed in users.values():
            run("rabbitmqctl", "-q", "delete_user", renamed, timeout=60)


async def ignore(_message: aio_pika.abc.AbstractIncomingMessage) -> None:
    """A consumer that leaves its deliveries unacknowledged (the vhost is deleted after)."""


async def refused(channel_op: Any) -> bool:
    """True if the broker refuses the operation (access refused closes the channel)."""
    try:
        await asyncio.wait_for(channel_op, 10)
    except ChannelAccessRefused:
        return True
    return False


async def test_definitions_import_and_each_user_can_do_its_job_and_no_more(
    broker_copy: dict[str, Any],
) -> None:
    """With the definitions imported into a throw-away vhost, each user does its job (worker:
    topology, consume, retries, DLQ copies, events; admin: DLQ, replays; KEDA: queue depth)
    and is refused everything else."""
    vhost, users, url = broker_copy["vhost"], broker_copy["users"], broker_copy["url"]
    listed = rabbitmqctl("list_permissions", "-p", vhost)
    for perm in definitions()["permissions"]:
        row = [users[perm["user"]], perm["configure"], perm["write"], perm["read"]]
        assert "\t".join(row) in listed, f"{row} not in\n{listed}"

    names = Names(NAMESPACE)
    worker = await aio_pika.connect_robust(url["payproc-worker"])
    try:
        await declare_topology(worker, names, Settings().retry_delays, 10)
        channel = await worker.channel(publisher_confirms=True, on_return_raises=True)
        retry = names.retry_queue(Settings().retry_delays[1])
        await channel.default_exchange.publish(aio_pika.Message(b"{}"), retry, mandatory=True)
        await channel.default_exchange.publish(
            aio_pika.Message(b"{}"), "amq.gen-reply", mandatory=False
        )
        for exchange, key in ((names.dlx, DEAD_ROUTING_KEY), (names.exchange, REQUEST_ROUTING_KEY)):
            target = await channel.get_exchange(exchange, ensure=False)
            await target.publish(aio_pika.Message(b"{}"), key, mandatory=True)
        events = await channel.get_exchange(names.events, ensure=False)
        await events.publish(aio_pika.Message(b"{}"), "payment.succeeded", mandatory=False)
        requests = await channel.get_queue(names.requests, ensure=True)
        tag = await requests.consume(ignore)
        await requests.cancel(tag)
        assert await refused((await worker.channel()).declare_queue("other.requests"))
        assert await refused((await worker.channel()).declare_exchange("other"))
        dlq = await (await worker.channel()).get_queue(names.dlq, ensure=True)
        assert await refused(dlq.consume(ignore))
    finally:
        await worker.close()

    admin = await aio_pika.connect_robust(url["payproc-admin"])
    try:
        await declare_dlq_topology(admin, names)
        channel = await admin.channel(publisher_confirms=True, on_return_raises=True)
        replays = await channel.get_exchange(names.exchange, ensure=False)
        await replays.publish(aio_pika.Message(b"{}"), REQUEST_ROUTING_KEY, mandatory=True)
        events = await channel.get_exchange(names.events, ensure=False)
        await events.publish(aio_pika.Message(b"{}"), "payment.replayed", mandatory=False)
        dlq = await channel.declare_queue(names.dlq, passive=True)
        tag = await dlq.consume(ignore)
        await dlq.cancel(tag)
        assert await refused((await admin.channel()).declare_queue(names.requests, durable=True))
        bare = await admin.channel(publisher_confirms=True)
        assert await refused(bare.default_exchange.publish(aio_pika.Message(b"{}"), "x"))
    finally:
        await admin.close()

    monitoring = await aio_pika.connect_robust(url["payproc-monitoring"])
    try:
        depth = await (await monitoring.channel()).declare_queue(names.requests, passive=True)
        assert depth.declaration_result.message_count is not None
        assert await refused((await monitoring.channel()).declare_queue("scratch"))
        requests = await (await monitoring.channel()).get_queue(names.requests, ensure=True)
        assert await refused(requests.consume(ignore))
    finally:
        await monitoring.close()


# ---- HAProxy -------------------------------------------------------------------------


def test_haproxy_balances_over_the_three_nodes() -> None:
    """HAProxy's AMQP backend lists exactly the compose nodes, and `haproxy -c` accepts it."""
    text = (DEPLOY / "haproxy/haproxy.cfg").read_text()
    services = compose()["services"]
    hostnames = sorted(s["hostname"] for n, s in services.items() if n.startswith("rabbitmq-"))
    servers = sorted(re.findall(r"^\s*server \S+ (\S+):5672", text, re.M))
    assert servers == hostnames
    assert re.search(r"^\s*bind :5672$", text, re.M)
    for service in ("worker", "admin"):
        url = services[service]["environment"]["PAYPROC_AMQP_URL"]
        assert urlparse(re.sub(r"\$\{[^}]*\}", "x", url)).hostname == "amqp"
    haproxy = shutil.which("haproxy")
    if haproxy is None:
        fallback("haproxy -c", "haproxy not installed (apt-get install haproxy)")
        return
    result = run(haproxy, "-c", "-f", str(DEPLOY / "haproxy/haproxy.cfg"))
    assert result.returncode == 0, result.stdout + result.stderr
    print("haproxy -c: configuration file is valid")


# ---- Dockerfile ----------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = (DEPLOY / "Dockerfile").read_text()
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    pairs = []
    for line in joined.splitlines():
        if line.strip():
            instruction, _, rest = line.strip().partition(" ")
            pairs.append((instruction.upper(), rest.strip()))
    return pairs


def test_dockerfile_is_multi_stage_pinned_and_runs_unprivileged() -> None:
    """The image builds in two pinned stages and its runtime stage copies only the venv, runs
    as a numeric non-root user, checks /healthz without curl and starts `payproc`."""
    steps = dockerfile_instructions()
    args = {}
    for instruction, rest in steps:
        if instruction == "FROM":
            break
        if instruction == "ARG" and "=" in rest:
            key, _, value = rest.partition("=")
            args[key] = value
    bases = [
        re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], rest.split()[0])
        for instruction, rest in steps
        if instruction == "FROM"
    ]
    assert len(bases) >= 2, "multi-stage"
    for base in bases:
        assert ":latest" not in base
        assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", base), (
            f"base image {base} is not pinned to an exact release"
        )
    last_from = max(i for i, (instruction, _) in enumerate(steps) if instruction == "FROM")
    runtime = steps[last_from:]
    kinds = [instruction for instruction, _ in runtime]
    assert any(
        instruction == "COPY" and rest.startswith("--from=build /opt/payproc")
        for instruction, rest in runtime
    ), "the runtime stage copies the venv, not the source"
    user = next(rest for instruction, rest in runtime if instruction == "USER")
    assert re.fullmatch(r"[1-9]\d*(:[1-9]\d*)?", user), f"USER {user} is not a non-root id"
    assert kinds.index("USER") < kinds.index("ENTRYPOINT")
    assert not any(k == "USER" for k in kinds[kinds.index("USER") + 1 :])
    assert json.loads(dict(runtime)["ENTRYPOINT"]) == ["payproc"]
    healthcheck = dict(runtime)["HEALTHCHECK"]
    assert "/healthz" in healthcheck
    assert "python" in healthcheck
    assert not re.search(r"\b(curl|wget)\b", healthcheck)
    assert "ADD" not in kinds
    for instruction, rest in steps:
        if instruction == "ENV":
            assert not re.search(r"(PASSWORD|TOKEN|SECRET)[A-Z_]*=", rest), rest

    hadolint = shutil.which("hadolint")
    if hadolint is None:
        print("hadolint not installed: the structural lint above is the Dockerfile check")
        return
    result = run(hadolint, str(DEPLOY / "Dockerfile"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_build_copies_everything_the_wheel_needs() -> None:
    """A wheel built from exactly the files the Dockerfile's build stage copies contains
    the migrations, the gRPC proto and the `payproc` entry point."""
    ignored = shutil.ignore_patterns("__pycache__", "*.pyc", "_generated", "*.db")
    with tempfile.TemporaryDirectory() as scratch:
        context = Path(scratch) / "src"
        context.mkdir()
        for instruction, rest in dockerfile_instructions():
            if instruction != "COPY" or rest.startswith("--from"):
                continue
            *sources, _destination = rest.split()
            for source in sources:
                path = ROOT / source
                if path.is_dir():
                    shutil.copytree(path, context / source, ignore=ignored)
                else:
                    shutil.copy(path, context / source)
        try:
            modern = int(importlib.metadata.version("setuptools").split(".")[0]) >= 77
        except importlib.metadata.PackageNotFoundError:
            modern = False
        if not modern:
            fallback("wheel build", "setuptools>=77 is not in the venv")
            copied = {p.name for p in context.iterdir()}
            assert {"pyproject.toml", "README.md", "processor", "retry"} <= copied
            return
        result = run(
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(Path(scratch) / "dist"),
            str(context),
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        (wheel,) = (Path(scratch) / "dist").glob("payproc-*.whl")
        with zipfile.ZipFile(wheel) as archive:
            files = set(archive.namelist())
            entry_points = next(f for f in files if f.endswith("entry_points.txt"))
            assert "payproc = processor.cli:main" in archive.read(entry_points).decode()
    for package in ("processor", "retry", "dlq_admin", "schemas"):
        assert f"{package}/__init__.py" in files
    assert "processor/migrations/env.py" in files
    assert "processor/migrations/script.py.mako" in files
    for version in (ROOT / "processor/migrations/versions").glob("[0-9]*.py"):
        assert f"processor/migrations/versions/{version.name}" in files
    assert any(f.endswith(".proto") for f in files)
    assert not any("_generated" in f for f in files)
    print(f"wheel from the Dockerfile's build context: {wheel.name}, {len(files)} files")


def test_dockerignore_keeps_local_state_out_of_the_build_context() -> None:
    """The Dockerfile's ignore file excludes everything but what the build copies."""
    lines = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    rules = [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]
    assert rules[0] == "**"
    copied = {
        source.rstrip("/")
        for instruction, rest in dockerfile_instructions()
        if instruction == "COPY" and not rest.startswith("--from")
        for source in rest.split()[:-1]
    }
    allowed = {rule.removeprefix("!").rstrip("/") for rule in rules if rule.startswith("!")}
    assert copied == allowed


# ---- compose -------------------------------------------------------------------------


def test_compose_runs_a_cluster_migrations_first_and_pins_images() -> None:
    """Compose starts three RabbitMQ nodes sharing one cookie, workers and admin only after
    the migration and the broker passwords, and only pinned images whose mounted files exist."""
    services = compose()["services"]
    nodes = sorted(n for n in services if n.startswith("rabbitmq-"))
    assert len(nodes) == 3
    cookies = {services[n]["environment"]["RABBITMQ_ERLANG_COOKIE"] for n in nodes}
    assert len(cookies) == 1
    assert "${RABBITMQ_ERLANG_COOKIE" in cookies.pop()
    for later in nodes[1:]:
        assert services[later]["depends_on"][nodes[0]]["condition"] == "service_healthy"
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert services["migrate"]["restart"] == "no"
    for name in ("worker", "admin"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["broker-users"]["condition"] == "service_completed_successfully"
    assert services["worker"]["deploy"]["replicas"] >= 3
    grace = re.fullmatch(r"(\d+)s", services["worker"]["stop_grace_period"])
    assert grace is not None
    assert int(grace.group(1)) > WORKER_GRACE_SECONDS
    for name, service in services.items():
        image = service["image"]
        assert ":latest" not in image
        assert re.search(r":v?\d+\.\d+(\.\d+)?", image), f"{name} image {image} is not pinned"
    assert services["rabbitmq-1"]["image"].startswith("rabbitmq:3.10.")
    assert services["postgres"]["image"].startswith("postgres:15.")
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"
    for secret in compose()["secrets"].values():
        assert (DEPLOY / secret["file"]).parent.is_dir()
    mounts = " ".join(services["prometheus"]["volumes"])
    assert "./prometheus/alerts.yml:" in mounts
    for text in (DEPLOY / "compose.yaml").read_text(), (DEPLOY / "env.example").read_text():
        for line in text.splitlines():
            assert not re.search(r"(PASSWORD|TOKENS|COOKIE)\w*:\s*['\"]?[A-Za-z0-9]{8,}", line)


def test_compose_file_passes_docker_compose_config() -> None:
    """`docker compose config` (or docker-compose) accepts the file with placeholder secrets,
    or the test says that neither tool is installed."""
    has_plugin = shutil.which("docker") and run("docker", "compose", "version").returncode == 0
    if has_plugin:
        command = ["docker", "compose"]
    elif shutil.which("docker-compose"):
        command = ["docker-compose"]
    else:
        fallback("docker compose config", "neither the compose plugin nor docker-compose")
        return
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "deploy"
        shutil.copytree(DEPLOY, copy)
        env_example = (DEPLOY / "env.example").read_text()
        (copy / ".env").write_text(re.sub(r"CHANGE-ME[\w-]*", "placeholder", env_example))
        (copy / "secrets/prometheus-admin-token").write_text("placeholder")
        result = run(*command, "-f", str(copy / "compose.yaml"), "config", "-q", cwd=copy)
    assert result.returncode == 0, result.stdout + result.stderr
    print(f"{' '.join(command)} config: valid")
