"""docker-compose.yml, the whole stack on one machine: validated against the Compose
specification's JSON schema (check-jsonschema's copy, offline), then checked for what the
schema cannot know: pinned images, files that exist, secrets only from `.env`, pools that
scale, every pool scraped, and the order things start in.

No Docker engine is needed (nor available in CI).
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from research_shared.health import READY_PATH
from research_shared.settings import ApiSettings, WorkerSettings
from tests.helpers.search_attributes import search_attributes_in_code
from tests.helpers.tools import require

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
PROMETHEUS_CONFIG = ROOT / "deploy" / "observability" / "prometheus" / "prometheus.yml"
API_DOCKERFILE = ROOT / "services" / "api" / "Dockerfile"
POOLS = {
    "orchestrator-worker": "services/orchestrator/Dockerfile",
    "search-worker": "services/search_worker/Dockerfile",
    "llm-worker": "services/llm_worker/Dockerfile",
}
SHUTDOWN_MARGIN_SECONDS = 5
SECRET_NAME = re.compile(r"(API_KEY|TOKEN|SECRET|PASSWORD|PWD)", re.IGNORECASE)
REFERENCE = re.compile(r"\$\{([A-Z][A-Z0-9_]*)(?::?[-?][^}]*)?\}")
ENV_REFERENCE = re.compile(r"^\$\{[A-Z][A-Z0-9_]*(:?-|:\?[^}]*)?\}$")


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose()["services"]
    return found


def schema_check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f".env.example: not KEY=VALUE: {line!r}"
            values[key] = value
    return values


def image_is_pinned(image: str) -> bool:
    last = image.rsplit("/", 1)[-1]
    _, sep, tag = last.partition(":")
    return "@sha256:" in image or bool(sep and tag and tag != "latest")


def test_compose_file_matches_the_compose_specification() -> None:
    done = schema_check(COMPOSE)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_schema_check_rejects_a_file_compose_would_refuse(tmp_path: Path) -> None:
    broken = compose()
    broken["services"]["temporal"]["restart_policy"] = "always"  # not a service key
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(broken))
    done = schema_check(path)
    assert done.returncode != 0
    assert "restart_policy" in done.stdout + done.stderr


def test_every_image_is_pinned_and_every_build_file_exists() -> None:
    for name, service in services().items():
        assert image_is_pinned(service["image"]), f"{name}: {service['image']}"
        build = service.get("build")
        if build is None:
            continue
        assert build["context"] == "."
        assert (ROOT / build["dockerfile"]).is_file(), f"{name}: {build['dockerfile']}"
    for name, dockerfile in POOLS.items():
        assert services()[name]["build"]["dockerfile"] == dockerfile


def test_bind_mounts_name_files_of_the_repository() -> None:
    for name, service in services().items():
        for volume in service.get("volumes") or []:
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name}: {source} does not exist"


def test_secrets_come_only_from_the_env_file_and_it_is_not_committed() -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    example = env_example()
    referenced = set(REFERENCE.findall(text))
    assert referenced <= example.keys(), (
        f"not in .env.example: {sorted(referenced - example.keys())}"
    )
    for name, service in services().items():
        for key, value in (service.get("environment") or {}).items():
            if SECRET_NAME.search(key):
                assert value is None or ENV_REFERENCE.match(str(value)), (
                    f"{name}: {key} is set here"
                )
    # Required secrets stop compose with a message when missing, instead of an empty password.
    for required in ("POSTGRES_PASSWORD", "GRAFANA_ADMIN_PASSWORD", "RESEARCH_API_KEYS"):
        assert "${" + required + ":?" in text, required
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", ".env"], cwd=ROOT, capture_output=True, check=False
    )
    assert ignored.returncode == 0, ".env must be git-ignored"
    tracked = subprocess.run(
        ["git", "ls-files", ".env"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert tracked.stdout.strip() == "", ".env is committed"


def test_temporal_runs_on_postgresql_with_its_schema_set_up_first() -> None:
    all_services = services()
    temporal = all_services["temporal"]
    assert temporal["image"].startswith("temporalio/server:")
    assert temporal["environment"]["DB"] == "postgres12"
    assert temporal["environment"]["POSTGRES_SEEDS"] in all_services
    assert temporal["depends_on"]["temporal-schema"]["condition"] == (
        "service_completed_successfully"
    )
    schema = all_services["temporal-schema"]
    assert schema["image"].startswith("temporalio/admin-tools:")
    assert schema["image"].partition(":")[2] == temporal["image"].partition(":")[2]
    assert schema["depends_on"]["postgresql"]["condition"] == "service_healthy"
    script = " ".join(schema["command"])
    for database in ("temporal", "temporal_visibility"):
        assert f"--db {database} update-schema" in script
    assert "healthcheck" in all_services["postgresql"] and "healthcheck" in temporal
    volumes = [v.split(":") for v in all_services["postgresql"]["volumes"]]
    assert ["postgres-data", "/var/lib/postgresql/data"] in volumes
    assert all_services["temporal-ui"]["image"].startswith("temporalio/ui:")


@pytest.mark.parametrize("name", [*POOLS, "api"])
def test_pools_and_api_start_after_the_namespace_exists_and_are_hardened(name: str) -> None:
    all_services = services()
    service = all_services[name]
    env = service["environment"]
    host = env["TEMPORAL_ADDRESS"].partition(":")[0]
    assert host in all_services
    assert service["depends_on"]["temporal-namespace"]["condition"] == (
        "service_completed_successfully"
    )
    creates = " ".join(all_services["temporal-namespace"]["command"])
    assert f"namespace create -n {env['TEMPORAL_NAMESPACE']}" in creates
    assert service["read_only"] is True and service["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in service["security_opt"]
    assert env["RESEARCH_LOG_FORMAT"] == "json", "containers log JSON lines"
    default = WorkerSettings.model_fields["graceful_shutdown_seconds"].default
    budget = float(env.get("RESEARCH_GRACEFUL_SHUTDOWN_SECONDS", default))
    grace = re.fullmatch(r"(\d+)s", service["stop_grace_period"])
    assert grace and int(grace[1]) >= budget + SHUTDOWN_MARGIN_SECONDS


@pytest.mark.parametrize("name", POOLS)
def test_each_pool_scales_and_reports_ready_as_healthy(name: str) -> None:
    service = services()[name]
    # `--scale N` needs replicas that do not collide: no fixed name, no published port.
    assert "container_name" not in service
    assert "ports" not in service
    port = service["environment"]["RESEARCH_METRICS_PORT"]
    check = " ".join(service["healthcheck"]["test"])
    assert f"http://127.0.0.1:{port}{READY_PATH}" in check, check
    # The one named volume is the payload store, which replicas share by design (objects are
    # content-addressed and written atomically); the search index stays per replica.
    named = {
        v.split(":")[0] for v in service.get("volumes") or [] if v.split(":")[0].isidentifier()
    }
    assert named == {"payloads"}
    assert service["environment"]["RESEARCH_PAYLOAD_STORE"] == "file:///payloads"


def test_prometheus_scrapes_every_replica_of_every_pool_on_both_ports() -> None:
    all_services = services()
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    scraped: dict[str, set[int]] = {}
    for job in config["scrape_configs"]:
        for lookup in job.get("dns_sd_configs") or []:
            # DNS: every replica of a service answers to its name.
            assert lookup["type"] == "A"
            for name in lookup["names"]:
                scraped.setdefault(name, set()).add(int(lookup["port"]))
    for name in POOLS:
        env = all_services[name]["environment"]
        wanted = {int(env["RESEARCH_METRICS_PORT"]), int(env["RESEARCH_SDK_METRICS_PORT"])}
        assert scraped.get(name) == wanted, name
    assert scraped["api"] == {int(all_services["api"]["environment"]["RESEARCH_API_PORT"])}
    assert set(scraped) <= set(all_services)
    mounts = [v.split(":") for v in all_services["prometheus"]["volumes"]]
    assert ["./deploy/observability/prometheus", "/etc/prometheus", "ro"] in mounts


def test_published_ports_are_on_localhost_only() -> None:
    for name, service in services().items():
        for port in service.get("ports") or []:
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port}"


def key_command() -> str:
    """The shell lines .env.example gives, as comments just above `RESEARCH_API_KEYS=`, to
    make an API key and its pair."""
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    block: list[str] = []
    for line in reversed(lines[: lines.index("RESEARCH_API_KEYS=")]):
        if not line.startswith("#   "):
            break
        block.insert(0, line.removeprefix("#   "))
    assert block, ".env.example gives no command that makes an API key"
    return "\n".join(block)


def test_the_api_gets_its_keys_from_the_env_file_and_starts_with_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The image listens on every interface, where the API refuses to start without keys:
    compose must pass them from `.env`, and the command `.env.example` gives must make a pair
    the API accepts for the key it prints."""
    api = services()["api"]
    env = {k: str(v) for k, v in api["environment"].items()}
    assert env["RESEARCH_API_KEYS"].startswith("${RESEARCH_API_KEYS:?"), env["RESEARCH_API_KEYS"]
    assert "RESEARCH_API_KEYS" in env_example()
    image_host = re.search(r"RESEARCH_API_HOST=(\S+)", API_DOCKERFILE.read_text(encoding="utf-8"))
    assert image_host, "the API's image sets no RESEARCH_API_HOST"

    made = subprocess.run(
        ["bash", "-ec", key_command()], capture_output=True, text=True, timeout=30, check=False
    )
    assert made.returncode == 0, made.stderr
    key = re.search(r"^your key.*: (\S+)$", made.stdout, re.MULTILINE)
    pair = re.search(r"^RESEARCH_API_KEYS=(\S+)$", made.stdout, re.MULTILINE)
    assert key and pair, made.stdout

    # The API's settings as its container reads them: the image's, then compose's.
    for name in ("RESEARCH_API_HOST", "RESEARCH_API_PORT", "RESEARCH_API_KEYS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RESEARCH_API_HOST", image_host[1])
    monkeypatch.setenv("RESEARCH_API_PORT", env["RESEARCH_API_PORT"])
    with pytest.raises(ValidationError, match="set RESEARCH_API_KEYS"):
        ApiSettings()
    monkeypatch.setenv("RESEARCH_API_KEYS", pair[1])
    owners = ApiSettings().key_owners()
    assert owners == {hashlib.sha256(key[1].encode()).hexdigest(): "me"}


def test_the_api_is_healthy_when_ready() -> None:
    api = services()["api"]
    check = " ".join(api["healthcheck"]["test"])
    port = api["environment"]["RESEARCH_API_PORT"]
    assert f"http://127.0.0.1:{port}{READY_PATH}" in check, check
    assert api["ports"] == [f"127.0.0.1:{port}:{port}"]


def test_the_namespace_step_registers_every_search_attribute_the_code_uses() -> None:
    script = " ".join(services()["temporal-namespace"]["command"])
    used = search_attributes_in_code()
    assert used, "the scan of the code found no search attribute"
    for name, kind in used.items():
        assert f"search-attribute create -n default --name {name} --type {kind}" in script, name
