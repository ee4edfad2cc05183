"""Static checks of the deployment files: Dockerfile, deploy/docker-compose.yml, deploy/k8s/.

No container engine or cluster runs here: the files are parsed, Kubernetes manifests are validated offline
against the schemas `kubernetes-validate` ships (the KEDA ScaledObject, a CRD, against KEDA_SCHEMA below), and
every `tickr ...` command the files run is parsed by the real CLI.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import typer.main
import yaml

from tickr.api.auth import PUBLIC_PATHS
from tickr.api.server import MAX_GRACE_SECONDS as API_MAX_GRACE_SECONDS
from tickr.cli.main import cli
from tickr.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
COMPOSE_PROMETHEUS = DEPLOY / "compose" / "prometheus.yml"
K8S = DEPLOY / "k8s"
KUSTOMIZATION = K8S / "kustomization.yaml"

SETTINGS = {f"TICKR_{name.upper()}" for name in Settings.model_fields}
GRACE_DEFAULT = float(Settings.model_fields["shutdown_grace_seconds"].default)
# oldest Kubernetes the manifests promise to work on, and the newest schema the package ships
K8S_VERSIONS = ("1.27.0", kubernetes_validate.utils.latest_version())
COMPOSE_SERVICES = {"redis", "postgres", "migrate", "api", "scheduler", "history", "worker", "prometheus", "grafana"}
K8S_DEPLOYMENTS = {"tickr-api", "tickr-scheduler", "tickr-worker", "tickr-history"}

# KEDA's ScaledObject (keda.sh/v1alpha1), written from KEDA's documented fields
# (https://keda.sh/docs/latest/reference/scaledobject-spec/ and the Prometheus scaler's page): the CRD's
# structure, closed where a typo would silently be ignored by KEDA.
_STR_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
KEDA_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}},
        "spec": {
            "type": "object",
            "required": ["scaleTargetRef", "triggers"],
            "additionalProperties": False,
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "required": ["name"],
                    "additionalProperties": False,
                    "properties": {
                        "name": {"type": "string"},
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "envSourceContainerName": {"type": "string"},
                    },
                },
                "pollingInterval": {"type": "integer", "minimum": 1},
                "cooldownPeriod": {"type": "integer", "minimum": 0},
                "initialCooldownPeriod": {"type": "integer", "minimum": 0},
                "idleReplicaCount": {"type": "integer", "minimum": 0},
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "fallback": {
                    "type": "object",
                    "required": ["failureThreshold", "replicas"],
                    "additionalProperties": False,
                    "properties": {
                        "failureThreshold": {"type": "integer", "minimum": 1},
                        "replicas": {"type": "integer", "minimum": 0},
                        "behavior": {"enum": ["static", "currentReplicas", "currentReplicasIfHigher"]},
                    },
                },
                "advanced": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "restoreToOriginalReplicaCount": {"type": "boolean"},
                        "horizontalPodAutoscalerConfig": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {"name": {"type": "string"}, "behavior": {"type": "object"}},
                        },
                        "scalingModifiers": {"type": "object"},
                    },
                },
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["type", "metadata"],
                        "additionalProperties": False,
                        "properties": {
                            "type": {"type": "string"},
                            "name": {"type": "string"},
                            "metadata": _STR_MAP,  # every value of a trigger's metadata is a string
                            "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                            "useCachedMetrics": {"type": "boolean"},
                            "authenticationRef": {
                                "type": "object",
                                "required": ["name"],
                                "properties": {"name": {"type": "string"}, "kind": {"type": "string"}},
                            },
                        },
                        "if": {"properties": {"type": {"const": "prometheus"}}},
                        "then": {
                            "properties": {
                                "metadata": {
                                    "required": ["serverAddress", "query", "threshold"],
                                    "properties": {
                                        "threshold": {"pattern": r"^[0-9]+(\.[0-9]+)?$"},
                                        "activationThreshold": {"pattern": r"^[0-9]+(\.[0-9]+)?$"},
                                        "serverAddress": {"pattern": "^https?://"},
                                    },
                                }
                            }
                        },
                    },
                },
            },
        },
    },
}


# --- loading ----------------------------------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def tickr_services() -> dict[str, dict[str, Any]]:
    """The compose services that run the tickr image."""
    return {name: svc for name, svc in services().items() if str(svc.get("image", "")).startswith("tickr")}


def k8s_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.y*ml") if p != KUSTOMIZATION)


def k8s_docs() -> list[tuple[Path, dict[str, Any]]]:
    return [(path, doc) for path in k8s_files() for doc in yaml.safe_load_all(path.read_text()) if doc]


def k8s_by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for _, doc in k8s_docs() if doc["kind"] == kind}


def pod_specs() -> list[tuple[str, dict[str, Any]]]:
    """(workload name, pod spec) of every Deployment and Job."""
    workloads = {**k8s_by_kind("Deployment"), **k8s_by_kind("Job")}
    return [(name, doc["spec"]["template"]["spec"]) for name, doc in workloads.items()]


def tickr_containers() -> list[tuple[str, dict[str, Any]]]:
    """(workload name, container) of every container and init container that runs the tickr image."""
    return [
        (name, c)
        for name, spec in pod_specs()
        for c in [*spec.get("initContainers", []), *spec["containers"]]
        if c["image"].split(":")[0] == "tickr"
    ]


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def exec_form(value: str) -> list[str]:
    parsed = json.loads(value)
    assert isinstance(parsed, list), f"not exec form (a JSON array): {value}"
    return [str(v) for v in parsed]


def seconds(duration: str | int | float) -> float:
    """A compose duration (`45s`, `1m30s`) in seconds."""
    if isinstance(duration, int | float):
        return float(duration)
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"bad duration {duration!r}"
    return sum(float(n) * units[u] for n, u in parts)


# the CLI's usage error, whichever click typer runs on (typer 0.2x vendors its own): BadParameter's base class
UsageError: type[Exception] = typer.BadParameter.__mro__[1]
assert UsageError.__name__ == "UsageError"


def parse_tickr_command(argv: list[str]) -> dict[str, Any]:
    """Parse ``tickr <argv>`` with the real CLI as it would start, without running it; returns the parameters.

    An unknown command, an unknown option, a missing argument or a bad option value raises ``UsageError``.
    """
    command: Any = typer.main.get_command(cli)
    parent: Any = None
    name, args = "tickr", list(argv)
    while hasattr(command, "get_command"):  # a group: resolve the sub-command
        if not args:
            raise UsageError(f"`{name}` needs a sub-command")
        ctx = command.context_class(command, info_name=name, parent=parent)
        sub = command.get_command(ctx, args[0])
        if sub is None:
            raise UsageError(f"`{name} {args[0]}` is not a tickr command")
        parent, command, name, args = ctx, sub, args[0], args[1:]
    return dict(command.make_context(name, args, parent=parent).params)


@pytest.mark.parametrize(
    "argv",
    [["nosuch"], ["worker", "--bogus"], ["api", "--port", "eighty"], ["migrate", "extra"], ["jobs"], []],
)
def test_the_command_check_refuses_what_tickr_refuses(argv: list[str]) -> None:
    with pytest.raises(UsageError):
        parse_tickr_command(argv)


def test_the_command_check_reads_the_options() -> None:
    params = parse_tickr_command(["worker", "myapp:app", "-q", "a,b", "--metrics-port", "9101"])
    assert params["app"] == ["myapp:app"]
    assert params["queues"] == "a,b"
    assert params["metrics_port"] == 9101
    assert parse_tickr_command(["jobs", "list", "--limit", "5"])["limit"] == 5


# --- Dockerfile -----------------------------------------------------------------------------------------------


def stages() -> list[list[tuple[str, str]]]:
    out: list[list[tuple[str, str]]] = []
    for word, rest in dockerfile_instructions():
        if word == "FROM":
            out.append([])
        if out:
            out[-1].append((word, rest))
    return out


def test_dockerfile_is_multi_stage_with_a_slim_final_stage() -> None:
    builder, final = stages()[0], stages()[-1]
    assert len(stages()) >= 2
    assert re.search(r"\bAS\s+builder\b", builder[0][1], re.IGNORECASE), builder[0]
    assert any(w == "RUN" and "pip wheel" in r for w, r in builder), "the builder stage must build the wheel"
    assert final[0][1].split()[0] == "python:3.11-slim"
    runs = " ".join(r for w, r in final if w == "RUN")
    # the wheels come from the builder (a bind mount, or a COPY --from=builder)
    assert "from=builder" in runs or any(w == "COPY" and "--from=builder" in r for w, r in final)
    for tool in ("gcc", "build-essential", "apt-get install", "make ", "git "):
        assert tool not in runs, f"the final stage installs a build tool: {tool!r}"


def test_dockerfile_runs_as_a_non_root_user() -> None:
    users = [r for w, r in stages()[-1] if w == "USER"]
    assert users, "no USER in the final stage"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")


def test_dockerfile_entrypoint_is_a_console_script_and_its_cmd_parses() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    final = stages()[-1]
    entrypoint = exec_form(next(r for w, r in reversed(final) if w == "ENTRYPOINT"))
    assert entrypoint == ["tickr"]
    assert entrypoint[0] in scripts
    cmd = exec_form(next(r for w, r in reversed(final) if w == "CMD"))
    parse_tickr_command(cmd)


def test_dockerfile_healthcheck_reads_the_public_health_route_on_the_cmd_port() -> None:
    final = stages()[-1]
    checks = [r for w, r in final if w == "HEALTHCHECK"]
    assert checks, "no HEALTHCHECK"
    check = checks[-1]
    assert "CMD" in check
    probe = exec_form(check[check.index("CMD") + len("CMD") :].strip())
    assert probe[:2] == ["python", "-c"]
    compile(probe[2], "<healthcheck>", "exec")  # the one-liner is valid Python
    path = re.search(r"https?://127\.0\.0\.1:[^/]+(/[\w/]+)", probe[2])
    assert path and path.group(1) in PUBLIC_PATHS, "the healthcheck must read a public health route"
    assert "'8080'" in probe[2], "the healthcheck's default port must be the API port of the CMD"
    cmd = exec_form(next(r for w, r in reversed(final) if w == "CMD"))
    assert cmd[cmd.index("--port") + 1] == "8080"


def dockerignored(path: str) -> bool:
    """Docker's rule: the last pattern matching the path (or one of its parent directories) decides."""
    patterns = [p.strip() for p in DOCKERIGNORE.read_text().splitlines() if p.strip() and not p.startswith("#")]
    parts = Path(path).parts
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern.lstrip("!").rstrip("/").removeprefix("**/")
        if any(fnmatch.fnmatch(c, pat) or fnmatch.fnmatch(Path(c).name, pat) for c in candidates):
            ignored = not negate
    return ignored


def test_dockerfile_copies_only_files_that_exist_and_the_dockerignore_keeps() -> None:
    copies = [r for w, r in stages()[0] + stages()[-1] if w == "COPY" and "--from" not in r]
    sources = [src for r in copies for src in shlex.split(r)[:-1]]
    assert "pyproject.toml" in sources
    assert any(s.rstrip("/") == "src" for s in sources)
    for src in sources:
        assert (ROOT / src).exists(), f"COPY {src}: no such file"
        assert not dockerignored(src), f"COPY {src}: excluded by .dockerignore"
    # the package's readme must reach the build too (hatchling reads it)
    assert "README.md" in sources
    for heavy in (".venv", "tests", ".git", ".tickr", "docs"):
        assert dockerignored(heavy), f".dockerignore lets {heavy} into the build context"


# --- docker compose -------------------------------------------------------------------------------------------


def test_compose_parses_and_has_every_service() -> None:
    assert set(services()) >= COMPOSE_SERVICES, COMPOSE_SERVICES - set(services())
    assert {"api", "scheduler", "history", "worker", "migrate"} <= set(tickr_services())
    for name, svc in tickr_services().items():
        assert svc.get("build", {}).get("context") == "..", f"{name}: builds the repository's Dockerfile"
        assert (DEPLOY / svc["build"]["context"] / svc["build"].get("dockerfile", "Dockerfile")).is_file()


def test_compose_redis_keeps_an_append_only_file() -> None:
    command = services()["redis"]["command"]
    argv = shlex.split(command) if isinstance(command, str) else [str(a) for a in command]
    assert argv[0] == "redis-server"
    options = dict(zip(argv[1::2], argv[2::2], strict=False))
    assert options.get("--appendonly") == "yes"
    assert options.get("--appendfsync") == "everysec"
    assert options.get("--maxmemory-policy") == "noeviction"
    assert any(v.endswith(":/data") for v in services()["redis"]["volumes"]), "the AOF must be on a volume"


def test_compose_migrate_runs_once_before_every_other_tickr_service() -> None:
    migrate = services()["migrate"]
    assert migrate["command"] == ["migrate"]
    assert str(migrate.get("restart", "no")) == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name, svc in tickr_services().items():
        if name == "migrate":
            continue
        assert svc["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name
        assert svc["depends_on"]["redis"]["condition"] == "service_healthy", name


def test_compose_workers_scale() -> None:
    worker = services()["worker"]
    assert worker["deploy"]["replicas"] == 3
    assert "container_name" not in worker, "container_name breaks --scale"
    assert "ports" not in worker, "a fixed host port breaks --scale"
    for name, svc in services().items():
        assert "container_name" not in svc, f"{name}: container_name"


def env_of(svc: dict[str, Any]) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {k: str(v) for k, v in env.items()}


def test_compose_long_running_services_restart_and_have_a_healthcheck() -> None:
    for name, svc in services().items():
        if name == "migrate":
            continue
        assert svc.get("restart") in ("unless-stopped", "always", "on-failure"), f"{name}: restart policy"
        if name in ("redis", "postgres", "api", "worker"):
            assert svc.get("healthcheck", {}).get("test"), f"{name}: healthcheck"
    api_check = " ".join(services()["api"]["healthcheck"]["test"])
    assert "/health" in api_check


def test_compose_stop_grace_period_covers_tickrs_shutdown_grace() -> None:
    for name, svc in tickr_services().items():
        grace = float(env_of(svc).get("TICKR_SHUTDOWN_GRACE_SECONDS", GRACE_DEFAULT))
        command = svc["command"]
        if command[0] in ("worker", "history"):
            assert seconds(svc["stop_grace_period"]) > grace, f"{name}: stop_grace_period <= shutdown grace"
        if command[0] == "api":  # uvicorn lets open requests finish for the grace, at most MAX_GRACE_SECONDS
            needed = min(grace, API_MAX_GRACE_SECONDS)
            assert seconds(svc["stop_grace_period"]) > needed, f"{name}: stop_grace_period <= the API's grace"
    worker = services()["worker"]
    assert seconds(worker["stop_grace_period"]) >= float(env_of(worker)["TICKR_SHUTDOWN_GRACE_SECONDS"]) + 5


def test_compose_commands_are_real_tickr_commands() -> None:
    for name, svc in tickr_services().items():
        parse_tickr_command([str(a) for a in svc["command"]])  # raises on an unknown command or option
        assert name == "migrate" or svc["command"][0] != "migrate"


def test_compose_bind_mounts_exist_and_grafana_prometheus_line_up() -> None:
    for name, svc in services().items():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: mount {source} does not exist"
    grafana_mounts = dict(v.split(":")[:2] for v in services()["grafana"]["volumes"] if v.startswith("."))
    provider = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/tickr.yml").read_text())
    assert grafana_mounts["./grafana/dashboards"] == provider["providers"][0]["options"]["path"]
    assert list((DEPLOY / "grafana/dashboards").glob("*.json"))
    datasource = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    host, port = re.match(r"https?://([^:/]+):(\d+)", datasource["datasources"][0]["url"]).groups()
    assert host in services(), f"grafana's datasource host {host} is no compose service"
    assert "--config.file=/etc/prometheus/prometheus.yml" in services()["prometheus"]["command"]
    prom_mounts = dict(v.split(":")[:2] for v in services()["prometheus"]["volumes"] if v.startswith("."))
    assert prom_mounts["./compose/prometheus.yml"] == "/etc/prometheus/prometheus.yml"
    config = yaml.safe_load(COMPOSE_PROMETHEUS.read_text())
    for rule_file in config["rule_files"]:
        assert f"/etc/prometheus/{rule_file}" in prom_mounts.values(), f"rule file {rule_file} not mounted"
    assert port == "9090"


def test_compose_prometheus_scrapes_the_ports_the_services_serve() -> None:
    config = yaml.safe_load(COMPOSE_PROMETHEUS.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    api_targets = jobs["tickr-api"]["static_configs"][0]["targets"]
    api_cmd = services()["api"]["command"]
    assert api_targets == [f"api:{api_cmd[api_cmd.index('--port') + 1]}"]
    dns = jobs["tickr-worker"]["dns_sd_configs"][0]
    worker_cmd = services()["worker"]["command"]
    assert dns["names"] == ["worker"]
    assert str(dns["port"]) == worker_cmd[worker_cmd.index("--metrics-port") + 1]
    assert env_of(services()["worker"])["TICKR_METRICS_HOST"] == "0.0.0.0", "a worker's /metrics must be reachable"


# --- TICKR_* variables, everywhere ----------------------------------------------------------------------------


def deployment_texts() -> dict[str, str]:
    files = [DOCKERFILE, COMPOSE, COMPOSE_PROMETHEUS, *k8s_files(), KUSTOMIZATION]
    return {str(p.relative_to(ROOT)): p.read_text() for p in files}


def test_every_tickr_variable_is_a_setting() -> None:
    seen = set()
    for name, text in deployment_texts().items():
        for var in re.findall(r"\bTICKR_[A-Z0-9_]+\b", text):
            seen.add(var)
            assert var in SETTINGS, f"{name}: {var} is not a setting of tickr.config.Settings"
    assert {"TICKR_REDIS_URL", "TICKR_DATABASE_URL", "TICKR_SHUTDOWN_GRACE_SECONDS"} <= seen


def test_every_tickr_variable_given_a_value_parses_as_a_setting() -> None:
    sources: dict[str, dict[str, str]] = {f"compose {name}": env_of(svc) for name, svc in tickr_services().items()}
    sources |= {f"ConfigMap {name}": doc["data"] for name, doc in k8s_by_kind("ConfigMap").items()}
    sources |= {f"Secret {name}": doc["stringData"] for name, doc in k8s_by_kind("Secret").items()}
    for name, container in tickr_containers():
        sources[f"{name} {container['name']}"] = {e["name"]: e["value"] for e in container.get("env", [])}
    sources["Dockerfile"] = dict(re.findall(r"\b(TICKR_[A-Z0-9_]+)=(\S+)", DOCKERFILE.read_text()))
    for where, values in sources.items():
        # compose interpolation (${VAR:-default}) becomes a plain word; the type is what is checked
        fields = {k.removeprefix("TICKR_").lower(): re.sub(r"\$\{[^}]*\}", "x", str(v)) for k, v in values.items()}
        try:
            Settings(_env_file=None, **fields)  # type: ignore[call-arg]
        except ValueError as exc:
            pytest.fail(f"{where}: {exc}")


# --- Kubernetes -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_kubernetes_manifest_validates_against_its_schema(version: str) -> None:
    checked = 0
    for path, doc in k8s_docs():
        if doc["apiVersion"].startswith("keda.sh/"):
            continue  # a CRD: test_keda_scaledobject_matches_kedas_fields
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{path.name}: {doc['kind']}/{doc['metadata']['name']}: {where}: {exc.message}")
        checked += 1
    assert checked >= 10


def test_kubernetes_has_every_part() -> None:
    assert set(k8s_by_kind("Deployment")) == K8S_DEPLOYMENTS
    assert "tickr-migrate" in k8s_by_kind("Job")
    assert k8s_by_kind("ConfigMap")
    assert k8s_by_kind("Secret")
    assert {"tickr-api", "tickr-worker-metrics"} <= set(k8s_by_kind("Service"))
    pdb_targets = {d["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] for d in pdbs()}
    assert {"api", "worker"} <= pdb_targets
    secret = next(iter(k8s_by_kind("Secret").values()))
    assert {"TICKR_REDIS_URL", "TICKR_DATABASE_URL", "TICKR_API_TOKEN"} <= set(secret["stringData"])


def pdbs() -> list[dict[str, Any]]:
    return list(k8s_by_kind("PodDisruptionBudget").values())


def test_kubernetes_selectors_match_their_pods() -> None:
    pod_labels = [d["spec"]["template"]["metadata"]["labels"] for d in k8s_by_kind("Deployment").values()]
    for name, deployment in k8s_by_kind("Deployment").items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items(), name
    for selector in [d["spec"]["selector"] for d in k8s_by_kind("Service").values()] + [
        p["spec"]["selector"]["matchLabels"] for p in pdbs()
    ]:
        assert any(selector.items() <= labels.items() for labels in pod_labels), f"{selector} selects no pod"


def test_kubernetes_commands_are_real_tickr_commands() -> None:
    containers = tickr_containers()
    assert len(containers) >= 7
    for name, container in containers:
        assert "command" not in container, f"{name}: `command` would replace the image's ENTRYPOINT (tickr)"
        parse_tickr_command(container["args"])
    roles = {c["args"][0] for _, c in containers}
    assert {"api", "worker", "scheduler", "history", "migrate"} <= roles


def test_kubernetes_env_refers_to_the_configmap_and_secret() -> None:
    configmaps, secrets = set(k8s_by_kind("ConfigMap")), set(k8s_by_kind("Secret"))
    for name, container in tickr_containers():
        refs = container.get("envFrom", [])
        assert {r["configMapRef"]["name"] for r in refs if "configMapRef" in r} <= configmaps, name
        assert {r["secretRef"]["name"] for r in refs if "secretRef" in r} <= secrets, name
        assert any("secretRef" in r for r in refs), f"{name}: no TICKR_REDIS_URL (the secret)"


def grace_of(container: dict[str, Any]) -> float:
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    if env.get("TICKR_SHUTDOWN_GRACE_SECONDS"):
        return float(env["TICKR_SHUTDOWN_GRACE_SECONDS"])
    for ref in container.get("envFrom", []):
        if "configMapRef" in ref:
            data = k8s_by_kind("ConfigMap")[ref["configMapRef"]["name"]]["data"]
            if "TICKR_SHUTDOWN_GRACE_SECONDS" in data:
                return float(data["TICKR_SHUTDOWN_GRACE_SECONDS"])
    return GRACE_DEFAULT


def pre_stop_seconds(container: dict[str, Any]) -> float:
    hook = container.get("lifecycle", {}).get("preStop")
    if not hook:
        return 0.0
    command = hook["exec"]["command"]
    assert command[0] == "sleep", f"unexpected preStop {command}"
    return float(command[1])


def test_kubernetes_termination_grace_covers_pre_stop_and_tickrs_shutdown_grace() -> None:
    for name, deployment in k8s_by_kind("Deployment").items():
        spec = deployment["spec"]["template"]["spec"]
        for container in spec["containers"]:
            needed = pre_stop_seconds(container) + grace_of(container)
            assert spec["terminationGracePeriodSeconds"] > needed, f"{name}: the kubelet would SIGKILL mid-drain"
    api = k8s_by_kind("Deployment")["tickr-api"]["spec"]["template"]["spec"]["containers"][0]
    assert pre_stop_seconds(api) > 0, "the API needs a preStop so endpoints are removed before it stops"


def test_kubernetes_api_probes_read_health_on_the_port_it_serves() -> None:
    api = k8s_by_kind("Deployment")["tickr-api"]["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in api["ports"]}
    served = int(api["args"][api["args"].index("--port") + 1])
    for probe in ("readinessProbe", "startupProbe"):
        get = api[probe]["httpGet"]
        assert get["path"] in PUBLIC_PATHS and "health" in get["path"], probe
        assert ports[get["port"]] == served, probe
    assert ports[api["livenessProbe"]["tcpSocket"]["port"]] == served
    service = k8s_by_kind("Service")["tickr-api"]
    assert all(p["targetPort"] in ports for p in service["spec"]["ports"])
    worker = k8s_by_kind("Deployment")["tickr-worker"]["spec"]["template"]["spec"]["containers"][0]
    metrics_port = int(worker["args"][worker["args"].index("--metrics-port") + 1])
    assert {p["containerPort"] for p in worker["ports"]} == {metrics_port}
    assert {e["name"]: e["value"] for e in worker["env"]}["TICKR_METRICS_HOST"] == "0.0.0.0"


def test_keda_scaledobject_matches_kedas_fields() -> None:
    scaled = k8s_by_kind("ScaledObject")
    assert set(scaled) == {"tickr-worker"}
    doc = scaled["tickr-worker"]
    jsonschema.validate(doc, KEDA_SCHEMA)
    target = doc["spec"]["scaleTargetRef"]
    assert target.get("kind", "Deployment") == "Deployment"
    assert target["name"] in k8s_by_kind("Deployment")
    assert "replicas" not in k8s_by_kind("Deployment")[target["name"]]["spec"], "KEDA owns the worker count"
    assert doc["spec"]["minReplicaCount"] >= 1, "no worker: nothing moves delayed jobs to the ready lists"
    metrics_doc = (ROOT / "docs/metrics.md").read_text()
    documented = {f"tickr_{m}" for m in re.findall(r"^\| `(\w+)` \|", metrics_doc, re.MULTILINE)}
    for trigger in doc["spec"]["triggers"]:
        used = set(re.findall(r"\btickr_\w+", trigger["metadata"]["query"]))
        assert used, "the query reads no tickr metric"
        assert used <= documented, f"not in docs/metrics.md: {used - documented}"


def test_keda_schema_rejects_a_broken_scaledobject() -> None:
    doc = k8s_by_kind("ScaledObject")["tickr-worker"]
    broken = json.loads(json.dumps(doc))
    broken["spec"]["triggers"][0]["metadata"]["threshold"] = 32  # KEDA wants strings
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, KEDA_SCHEMA)
    broken = json.loads(json.dumps(doc))
    broken["spec"]["maxReplicas"] = 3  # a typo of maxReplicaCount
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, KEDA_SCHEMA)


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load(KUSTOMIZATION.read_text())
    assert kustomization["kind"] == "Kustomization"
    resources = kustomization["resources"]
    assert len(resources) == len(set(resources)), "a resource is listed twice"
    assert sorted(resources) == sorted(p.name for p in k8s_files())
    assert {i["name"] for i in kustomization.get("images", [])} == {"tickr"}


def test_docs_describe_the_deployment() -> None:
    deploy_doc = (ROOT / "docs/deploy.md").read_text()
    for needle in ("docker compose", "--scale worker=", "kubectl apply -k deploy/k8s", "KEDA", "tickr migrate"):
        assert needle in deploy_doc, needle
    assert "docs/deploy.md" in (ROOT / "README.md").read_text()


# --- Prometheus (promtool: Debian's prometheus package, which scripts/test.sh installs) ---------------------------

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (apt-get install prometheus)")


@needs_promtool
def test_compose_prometheus_config_and_its_rules_load(tmp_path: Path) -> None:
    # as mounted in the prometheus service: the compose config with deploy/prometheus/alerts.yml beside it
    shutil.copy(COMPOSE_PROMETHEUS, tmp_path / "prometheus.yml")
    shutil.copy(DEPLOY / "prometheus" / "alerts.yml", tmp_path / "alerts.yml")
    done = subprocess.run(
        [str(PROMTOOL), "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


@needs_promtool
def test_keda_query_is_valid_promql(tmp_path: Path) -> None:
    doc = k8s_by_kind("ScaledObject")["tickr-worker"]
    rules = {
        "groups": [
            {"name": f"keda{i}", "rules": [{"record": f"keda:trigger{i}", "expr": t["metadata"]["query"]}]}
            for i, t in enumerate(doc["spec"]["triggers"])
            if t["type"] == "prometheus"
        ]
    }
    (tmp_path / "keda.yml").write_text(yaml.safe_dump(rules))
    done = subprocess.run([str(PROMTOOL), "check", "rules", str(tmp_path / "keda.yml")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
