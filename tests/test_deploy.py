"""The deployment files agree with the package and with each other.

Dockerfile, compose.yaml and deploy/kubernetes.yaml are parsed, not run (a container
runtime is not part of the test machine): every command they give is a real CLI command
(run with --help through Typer), every health check asks a real route, every MATCHWISE_*
variable is a real setting, and all three name the same image, port and user. The
entrypoint script runs for real: it migrates, then hands over to `matchwise`.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from matchwise.api.app import create_app
from matchwise.cli.app import app as cli
from matchwise.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "compose.yaml"
KUBERNETES = ROOT / "deploy" / "kubernetes.yaml"
ENTRYPOINT = ROOT / "deploy" / "entrypoint.sh"
PORT = 8000


# --- helpers ---------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    steps: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        whole = (pending + line).strip()
        pending = ""
        keyword, _, rest = whole.partition(" ")
        steps.append((keyword.upper(), rest.strip()))
    return steps


def instructions(name: str) -> list[str]:
    return [rest for keyword, rest in dockerfile() if keyword == name]


def exec_form(text: str) -> list[str]:
    value = json.loads(text)
    assert isinstance(value, list), f"not the exec (JSON) form: {text}"
    return [str(v) for v in value]


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())  # type: ignore[no-any-return]


def kubernetes() -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(KUBERNETES.read_text()) if doc]


def pod_specs() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for doc in kubernetes():
        if doc["kind"] == "Deployment":
            out.append((doc["metadata"]["name"], doc["spec"]["template"]["spec"]))
        elif doc["kind"] == "CronJob":
            spec = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
            out.append((doc["metadata"]["name"], spec))
    return out


def containers() -> list[dict[str, Any]]:
    return [
        container
        for _, spec in pod_specs()
        for container in spec.get("initContainers", []) + spec["containers"]
    ]


def cli_args(command: list[str]) -> list[str]:
    """The `matchwise` arguments a container runs: through the image's entrypoint (args
    only) or `matchwise ...` directly."""
    if command and command[0] == "matchwise":
        return command[1:]
    assert command, "an empty command"
    return command


def assert_cli_command(args: list[str]) -> None:
    """The command and its options exist: Typer parses them before --help answers."""
    result = CliRunner().invoke(cli, [*args, "--help"])
    assert result.exit_code == 0, f"`matchwise {shlex.join(args)}`: {result.output}"


def option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def routes() -> set[str]:
    """The API's paths, as its OpenAPI document declares them."""
    return set(create_app().openapi()["paths"])


def url_path(text: str) -> str:
    match = re.search(r"http://127\.0\.0\.1:(\d+)(/[\w/]*)", text)
    assert match, f"no local URL in {text!r}"
    assert int(match.group(1)) == PORT
    return match.group(2)


def assert_settings(names: list[str]) -> None:
    """Every MATCHWISE_* name is a setting (nested ones as MATCHWISE_BLEND__MODEL)."""
    fields = set(Settings.model_fields)
    for name in names:
        if name.startswith("MATCHWISE_"):
            field = name.removeprefix("MATCHWISE_").split("__")[0].lower()
            assert field in fields, f"{name} is not a matchwise setting"
        else:  # read by the entrypoint, not by matchwise
            assert name in ENTRYPOINT.read_text(), f"{name} is read by nothing"


def image() -> str:
    return str(compose()["x-matchwise"]["image"])


def dockerignored(path: str) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern matching a parent folder
    matches what is inside it; `*` stays within one path segment."""
    excluded = False
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        regex = "".join(
            ".*" if part == "**" else "[^/]*" if part == "*" else "[^/]" if part == "?" else
            re.escape(part)
            for part in re.split(r"(\*\*|\*|\?)", pattern)
        )  # fmt: skip
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(re.fullmatch(regex, prefix) for prefix in prefixes):
            excluded = not negate
    return excluded


# --- Dockerfile --------------------------------------------------------------------------


def test_dockerfile_base_torch_and_user() -> None:
    base = [a for k, a in dockerfile() if k == "ARG" and a.startswith("BASE_IMAGE=")]
    assert base == ["BASE_IMAGE=python:3.11-slim-bookworm"]
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    torch = [d for d in pyproject["project"]["dependencies"] if d.startswith("torch")]
    assert len(torch) == 1 and f'"{torch[0]}"' in DOCKERFILE.read_text(), (
        "the Dockerfile installs torch with the pin pyproject.toml has"
    )
    assert "torch.version.cuda is None" in DOCKERFILE.read_text()  # CPU build, or no image
    user = instructions("USER")[-1]
    assert user.split(":")[0] not in {"root", "0"}
    assert instructions("ENV") and "HF_HUB_OFFLINE=1" in " ".join(instructions("ENV"))


def test_dockerfile_serves_with_a_health_check_on_a_real_route() -> None:
    entrypoint = exec_form(instructions("ENTRYPOINT")[-1])
    assert entrypoint == ["matchwise-entrypoint"]
    copied = [a for a in instructions("COPY") if a.endswith("/usr/local/bin/matchwise-entrypoint")]
    assert copied == ["deploy/entrypoint.sh /usr/local/bin/matchwise-entrypoint"]
    cmd = exec_form(instructions("CMD")[-1])
    assert cmd[0] == "serve" and option(cmd, "--host") == "0.0.0.0"
    assert int(option(cmd, "--port")) == PORT and instructions("EXPOSE") == [str(PORT)]
    assert_cli_command(cmd)
    check = instructions("HEALTHCHECK")[-1]
    assert url_path(check) in routes()
    env = " ".join(instructions("ENV"))
    assert_settings(re.findall(r"\b(MATCHWISE_\w+)=", env))


def test_dockerignore_keeps_local_state_out() -> None:
    local_state = [
        ".venv/bin/python",
        "var/matchwise.db",
        "mutants/src/x.py",
        "data/a.csv",
        ".git/HEAD",
        "benchmarks/RESULTS.md",
        "src/matchwise/__pycache__/a.pyc",
    ]
    for path in local_state:
        assert dockerignored(path), path
    for copy in instructions("COPY"):
        if copy.startswith("--from"):
            continue
        *sources, _ = copy.split()
        for source in sources:
            assert (ROOT / source).exists(), source
            assert not dockerignored(source), f"COPY {source}: left out by .dockerignore"
    assert not dockerignored("src/matchwise/cli/app.py")


def run_entrypoint(args: list[str], path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PATH": f"{path}{os.pathsep}{os.environ['PATH']}", **env}
    return subprocess.run(["sh", str(ENTRYPOINT), *args], env=environment,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


@pytest.mark.parametrize(("migrate", "calls"), [
    ({}, ["db upgrade", "worker --until-idle"]),
    ({"MIGRATE_ON_START": "0"}, ["worker --until-idle"]),
])  # fmt: skip
def test_entrypoint_order(tmp_path: Path, migrate: dict[str, str], calls: list[str]) -> None:
    """Which `matchwise` commands the script runs, in order (a recorder stands in for it)."""
    log = tmp_path / "calls"
    recorder = tmp_path / "bin" / "matchwise"
    recorder.parent.mkdir()
    recorder.write_text(f'#!/bin/sh\necho "$*" >> {log}\n')
    recorder.chmod(0o755)
    done = run_entrypoint(["worker", "--until-idle"], recorder.parent, **migrate)
    assert done.returncode == 0, done.stderr
    assert log.read_text().splitlines() == calls


def test_entrypoint_migrates_then_runs_matchwise(tmp_path: Path) -> None:
    ran = run_entrypoint(["db", "current"], Path(sys.executable).parent,
                         MATCHWISE_DATABASE_URL=f"sqlite:///{tmp_path}/store.db",
                         MATCHWISE_ARTIFACT_ROOT=str(tmp_path / "artifacts"))  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert "store is at revision" in ran.stdout  # `matchwise db upgrade` ran first
    revision = ran.stdout.split("store is at revision")[1].split()[0]
    assert ran.stdout.strip().endswith(revision)  # then `matchwise db current` printed it


# --- compose -----------------------------------------------------------------------------


def test_compose_runs_api_worker_postgres_redis_with_health_checks() -> None:
    services = compose()["services"]
    assert set(services) == {"api", "worker", "postgres", "redis"}
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    for name in ("api", "worker"):
        assert services[name]["image"] == image()
        assert services[name]["build"]["context"] == "."
        for dependency, rule in services[name]["depends_on"].items():
            assert dependency in services and rule["condition"] == "service_healthy"
    assert {"postgres", "redis"} <= set(services["api"]["depends_on"])
    assert "api" in services["worker"]["depends_on"]  # migrated before the worker starts


def test_compose_commands_health_check_and_settings_are_real() -> None:
    services = compose()["services"]
    api, worker = services["api"], services["worker"]
    assert_cli_command(api["command"])
    assert_cli_command(worker["command"])
    assert worker["command"][0] == "worker"
    assert int(option(api["command"], "--port")) == PORT
    assert any(p.endswith(f":{PORT}:{PORT}") for p in api["ports"])
    assert url_path(" ".join(api["healthcheck"]["test"])) in routes()
    assert_cli_command(cli_args(worker["healthcheck"]["test"][1:]))
    for name in ("api", "worker"):
        environment = services[name]["environment"]
        assert_settings(list(environment))
        assert "@postgres:5432/" in environment["MATCHWISE_DATABASE_URL"]
        assert environment["MATCHWISE_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert environment["MATCHWISE_REDIS_URL"].startswith("redis://redis:6379")


# --- Kubernetes --------------------------------------------------------------------------


def test_kubernetes_uses_the_image_and_commands_compose_uses() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert image() == f"matchwise:{version}"
    kinds = [doc["kind"] for doc in kubernetes()]
    assert kinds.count("Deployment") == 2 and "Service" in kinds and "Secret" in kinds
    run = []
    for container in containers():
        assert container["image"] == image()
        args = cli_args(container.get("command", []) + container.get("args", []))
        assert_cli_command(args)
        run.append(args[0])
    assert {"serve", "worker", "db", "jobs"} <= set(run)
    deployments = dict(pod_specs())
    services = compose()["services"]
    for name in ("api", "worker"):
        container = deployments[f"matchwise-{name}"]["containers"][0]
        assert container["args"] == services[name]["command"], name


def test_kubernetes_probes_ports_and_selectors_fit() -> None:
    paths = routes()
    docs = kubernetes()
    api_deployment = next(d for d in docs if d["metadata"]["name"] == "matchwise-api")
    api = api_deployment["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in api["ports"]}
    assert ports == {"http": PORT} and int(option(api["args"], "--port")) == PORT
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = api[probe]["httpGet"]
        assert get["path"] in paths and get["port"] in ports
    service = next(d for d in docs if d["kind"] == "Service")
    assert service["spec"]["ports"][0]["targetPort"] in ports
    labels = api_deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    worker = next(c for c in containers() if c["name"] == "worker")
    assert_cli_command(cli_args(worker["livenessProbe"]["exec"]["command"]))


def test_kubernetes_env_secrets_volumes_and_user_fit() -> None:
    docs = kubernetes()
    secrets = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Secret"}
    claims = {d["metadata"]["name"] for d in docs if d["kind"] == "PersistentVolumeClaim"}
    for secret in secrets.values():
        assert_settings(list(secret["stringData"]))
    for container in containers():
        for source in container.get("envFrom", []):
            assert source["secretRef"]["name"] in secrets
        assert_settings([entry["name"] for entry in container.get("env", [])])
    uid = instructions("USER")[-1].split(":")[0]
    for name, spec in pod_specs():
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert str(spec["securityContext"]["runAsUser"]) == uid, name
        for volume in spec.get("volumes", []):
            assert volume["persistentVolumeClaim"]["claimName"] in claims


def test_readme_points_at_the_deployment_files() -> None:
    readme = (ROOT / "README.md").read_text()
    for name in ("deploy/kubernetes.yaml", "compose.yaml", "Dockerfile", "examples/"):
        assert name in readme, name


@pytest.mark.parametrize("bad", [["serve", "--no-such-option", "1"], ["no-such-command"]])
def test_the_cli_check_catches_a_wrong_command(bad: list[str]) -> None:
    with pytest.raises(AssertionError):
        assert_cli_command(bad)
