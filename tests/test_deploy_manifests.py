"""Checks of the deployment files: Dockerfiles and the Kubernetes manifests (docker-compose.yml
has tests/test_compose.py).

Nothing here needs a Docker daemon or a cluster. The source files are checked as written, and
every overlay (dev and prod, each with and without the KEDA component) is rendered by the
kustomize inside `kubectl` and validated offline, strictly (unknown fields are errors, as
`kubectl apply`'s server-side validation makes them): the Kubernetes objects against the
Kubernetes OpenAPI schemas (kubernetes-validate), KEDA's and the Prometheus Operator's
objects against their CRDs' schemas as typed models (cloudcoil's models, generated from the
CRDs). `scripts/test.sh` installs kubectl when it is missing; without it these tests fail.
"""

from __future__ import annotations

import atexit
import itertools
import json
import re
import shutil
import subprocess
import tempfile
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from research_cli.embedded import dev_server_spec
from research_shared import names
from research_shared.health import LIVE_PATH, METRICS_PATH, READY_PATH
from research_shared.settings import WorkerSettings
from tests.helpers.search_attributes import registered_by_flags, search_attributes_in_code
from tests.helpers.tools import require

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
# The Kubernetes release the rendered objects are validated against: the oldest one whose
# features the manifests use (PodDisruptionBudget's unhealthyPodEvictionPolicy is GA in 1.31).
KUBERNETES_VERSION = "1.31"
WORKER_UID = 10001
METRICS_PORTS = {"9464", "9465"}
# Time a worker needs after its graceful-shutdown budget to exit and flush its last logs.
SHUTDOWN_MARGIN_SECONDS = 5
SECRET_NAME = re.compile(r"(API_KEY|TOKEN|SECRET|PASSWORD)", re.IGNORECASE)


@dataclass(frozen=True)
class Pool:
    """One worker pool and the names it has in each deployment file."""

    pool: str  # the argument of `deep-research worker`
    deployment: str  # Deployment, ScaledObject and compose service name
    folder: str  # deploy/k8s/base/<folder>
    dockerfile: str
    queue: str
    queue_setting: str
    queue_type: str  # what KEDA counts: workflow or activity tasks
    extras: tuple[str, ...]


POOLS = (
    Pool(
        "orchestrator",
        "orchestrator-worker",
        "orchestrator",
        "services/orchestrator/Dockerfile",
        names.ORCHESTRATOR_QUEUE,
        "RESEARCH_ORCHESTRATOR_QUEUE",
        "workflow",
        (),
    ),
    Pool(
        "search",
        "search-worker",
        "search-worker",
        "services/search_worker/Dockerfile",
        names.SEARCH_QUEUE,
        "RESEARCH_SEARCH_QUEUE",
        "activity",
        ("search",),
    ),
    Pool(
        "llm",
        "llm-worker",
        "llm-worker",
        "services/llm_worker/Dockerfile",
        names.LLM_QUEUE,
        "RESEARCH_LLM_QUEUE",
        "activity",
        ("llm",),
    ),
)
POOL_IDS = [p.pool for p in POOLS]


# -- helpers ---------------------------------------------------------------------------------


def load_all(path: Path) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    assert all(isinstance(d, dict) for d in docs), f"{path}: every document must be a mapping"
    return docs


def k8s_files() -> list[Path]:
    return sorted(K8S.rglob("*.yaml"))


def read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"{path}: not KEY=VALUE: {line!r}"
            values[key] = value
    return values


def default_shutdown_seconds() -> float:
    default = WorkerSettings.model_fields["graceful_shutdown_seconds"].default
    assert isinstance(default, (int, float))
    return float(default)


def quantity(value: str | int | float) -> float:
    """A Kubernetes resource quantity (100m, 2, 512Mi, 1Gi) as a plain number."""
    scale = {"": 1.0, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "Ki": 2.0**10, "Mi": 2.0**20}
    scale["Gi"] = 2.0**30
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([a-zA-Z]*)", str(value))
    assert match and match[2] in scale, f"not a resource quantity: {value!r}"
    return float(match[1]) * scale[match[2]]


def image_is_pinned(image: str) -> bool:
    """A digest, or an explicit tag other than `latest`."""
    if "@sha256:" in image:
        return True
    last = image.rsplit("/", 1)[-1]
    _, sep, tag = last.partition(":")
    return bool(sep and tag and tag != "latest")


@dataclass(frozen=True)
class Kustomization:
    """What one kustomization.yaml refers to, split into kinds of reference."""

    path: Path
    doc: dict[str, Any]

    @property
    def folder(self) -> Path:
        return self.path.parent

    def references(self) -> Iterator[tuple[str, str]]:
        for key in ("resources", "components", "patchesStrategicMerge"):
            for entry in self.doc.get(key) or []:
                yield key, entry
        for patch in self.doc.get("patches") or []:
            if "path" in patch:
                yield "patches", patch["path"]
        for generator in (self.doc.get("configMapGenerator") or []) + (
            self.doc.get("secretGenerator") or []
        ):
            for key in ("envs", "files"):
                for entry in generator.get(key) or []:
                    yield key, entry.partition("=")[2] or entry

    def patch_files(self) -> set[Path]:
        return {
            (self.folder / ref).resolve()
            for key, ref in self.references()
            if key in ("patches", "patchesStrategicMerge")
        }


def kustomizations() -> list[Kustomization]:
    return [Kustomization(p, load_all(p)[0]) for p in sorted(K8S.rglob("kustomization.yaml"))]


def patch_files() -> set[Path]:
    return set().union(*(k.patch_files() for k in kustomizations()))


def objects(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d.get("kind") == kind]


def source_objects(kind: str) -> list[dict[str, Any]]:
    """Whole objects of a kind in the source tree (patches are partial, so left out)."""
    patches = patch_files()
    found: list[dict[str, Any]] = []
    for path in k8s_files():
        if path.name != "kustomization.yaml" and path.resolve() not in patches:
            found += objects(load_all(path), kind)
    return found


def by_name(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in objects(docs, kind)}


def config_values(docs: list[dict[str, Any]], container: dict[str, Any]) -> dict[str, str]:
    """The settings a rendered container gets from the ConfigMaps it references."""
    maps = by_name(docs, "ConfigMap")
    values: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        name = source["configMapRef"]["name"]
        assert name in maps, f"container {container['name']} references missing ConfigMap {name}"
        values.update(maps[name].get("data") or {})
    for var in container.get("env") or []:
        if "value" in var:
            values[var["name"]] = var["value"]
    return values


# -- Kubernetes: the source tree -------------------------------------------------------------


def test_every_manifest_parses_and_names_its_kind() -> None:
    assert k8s_files(), "no manifests under deploy/k8s"
    for path in k8s_files():
        for doc in load_all(path):
            assert doc.get("kind"), f"{path}: a document without kind"
            assert doc.get("apiVersion"), f"{path}: a document without apiVersion"


def test_kustomizations_list_only_existing_files_and_every_file_is_used() -> None:
    used: set[Path] = set()
    for k in kustomizations():
        for key, ref in k.references():
            target = (k.folder / ref).resolve()
            if key in ("resources", "components"):
                assert target.is_file() or (target / "kustomization.yaml").is_file(), (
                    f"{k.path}: {key} entry {ref!r} is neither a file nor a kustomization"
                )
            else:
                assert target.is_file(), f"{k.path}: {key} entry {ref!r} does not exist"
            used.add(target)
    for path in sorted(K8S.rglob("*")):
        if path.is_file() and path.name != "kustomization.yaml":
            assert path.resolve() in used, f"{path} is not listed by any kustomization.yaml"


def test_no_secret_values_are_committed() -> None:
    for path in k8s_files():
        for doc in load_all(path):
            if doc["kind"] == "Secret":
                assert not doc.get("data") and not doc.get("stringData"), f"{path}: Secret data"
    for k in kustomizations():
        assert not k.doc.get("secretGenerator"), f"{k.path}: secrets are created by hand"
        for generator in k.doc.get("configMapGenerator") or []:
            for literal in generator.get("literals") or []:
                assert not SECRET_NAME.search(literal.partition("=")[0]), f"{k.path}: {literal}"
    for env_file in K8S.rglob("*.env"):
        for key in read_env_file(env_file):
            assert not SECRET_NAME.search(key), f"{env_file}: {key} belongs in a Secret"


def check_deployment(deployment: dict[str, Any]) -> None:
    """The hardening, sizing and probing every Deployment must have."""
    name = deployment["metadata"]["name"]
    pod = deployment["spec"]["template"]["spec"]
    pod_security = pod.get("securityContext") or {}
    assert pod.get("automountServiceAccountToken") is False, f"{name}: mounts an API token"
    assert pod.get("containers"), f"{name}: no containers"
    for container in pod["containers"] + (pod.get("initContainers") or []):
        where = f"{name}/{container['name']}"
        security = {**pod_security, **(container.get("securityContext") or {})}
        assert security.get("runAsNonRoot") is True, f"{where}: may run as root"
        assert security.get("runAsUser", 0) != 0, f"{where}: runs as uid 0"
        assert security.get("readOnlyRootFilesystem") is True, f"{where}: writable root fs"
        assert security.get("allowPrivilegeEscalation") is False, f"{where}: can escalate"
        assert "ALL" in (security.get("capabilities") or {}).get("drop", []), f"{where}: caps"
        assert (security.get("seccompProfile") or {}).get("type") == "RuntimeDefault", where
        assert image_is_pinned(container["image"]), f"{where}: image {container['image']}"
        resources = container.get("resources") or {}
        for resource in ("cpu", "memory"):
            request = (resources.get("requests") or {}).get(resource)
            limit = (resources.get("limits") or {}).get(resource)
            assert request is not None and limit is not None, f"{where}: {resource} unsized"
            assert quantity(request) <= quantity(limit), f"{where}: {resource} request > limit"
        if container in pod["containers"]:
            assert container.get("livenessProbe"), f"{where}: no liveness probe"
            assert container.get("readinessProbe"), f"{where}: no readiness probe"


def test_every_deployment_is_hardened_sized_and_probed() -> None:
    deployments = source_objects("Deployment")
    assert {p.deployment for p in POOLS} <= {d["metadata"]["name"] for d in deployments}
    for deployment in deployments:
        check_deployment(deployment)


@pytest.mark.parametrize("pool", POOLS, ids=POOL_IDS)
def test_worker_deployment_runs_the_image_user_and_exposes_metrics(pool: Pool) -> None:
    deployment = by_name(load_all(K8S / "base" / pool.folder / "deployment.yaml"), "Deployment")[
        pool.deployment
    ]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    security = {**(pod.get("securityContext") or {}), **(container.get("securityContext") or {})}
    assert security["runAsUser"] == WORKER_UID
    assert container["image"].rsplit("/", 1)[-1].startswith(f"deep-research-{pool.deployment}:")
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == 9464
    # Readiness asks about the connection, liveness and startup about the event loop.
    probes = {"startupProbe": LIVE_PATH, "readinessProbe": READY_PATH, "livenessProbe": LIVE_PATH}
    for probe, path in probes.items():
        assert container[probe]["httpGet"] == {"path": path, "port": "metrics"}, probe
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/path"] == METRICS_PATH
    service = by_name(load_all(K8S / "base" / pool.folder / "service.yaml"), "Service")[
        pool.deployment
    ]
    assert service["spec"]["type"] == "ClusterIP"
    assert "metrics" in {p["name"] for p in service["spec"]["ports"]}
    assert (
        service["spec"]["selector"].items() <= deployment["spec"]["selector"]["matchLabels"].items()
    )
    account = by_name(
        load_all(K8S / "base" / pool.folder / "serviceaccount.yaml"), "ServiceAccount"
    )
    assert account[pod["serviceAccountName"]]["automountServiceAccountToken"] is False


@pytest.mark.parametrize("pool", POOLS, ids=POOL_IDS)
def test_termination_grace_outlasts_the_graceful_shutdown(pool: Pool) -> None:
    config = read_env_file(K8S / "base" / pool.folder / "config.env")
    budget = float(config.get("RESEARCH_GRACEFUL_SHUTDOWN_SECONDS", default_shutdown_seconds()))
    deployment = by_name(load_all(K8S / "base" / pool.folder / "deployment.yaml"), "Deployment")[
        pool.deployment
    ]
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace >= budget + SHUTDOWN_MARGIN_SECONDS, (
        f"{pool.deployment}: {grace}s of grace for a {budget}s shutdown budget"
    )


def test_base_settings_use_the_contract_queue_names() -> None:
    common = read_env_file(K8S / "base" / "common.env")
    for pool in POOLS:
        assert common[pool.queue_setting] == pool.queue
    assert common["RESEARCH_METRICS_PORT"] == "9464"
    assert common["RESEARCH_SDK_METRICS_PORT"] == "9465"


IN_FLIGHT_QUERY = re.compile(
    r'^sum\(temporal_worker_task_slots_used\{task_queue="(?P<queue>[\w-]+)", '
    r'worker_type="ActivityWorker"\}\)$'
)


@pytest.mark.parametrize("pool", POOLS, ids=POOL_IDS)
def test_scaled_object_scales_its_pool_on_its_queue(pool: Pool) -> None:
    component = K8S / "components" / "keda"
    scaled = by_name(source_objects("ScaledObject"), "ScaledObject")[pool.deployment]
    spec = scaled["spec"]
    assert spec["scaleTargetRef"]["name"] == pool.deployment
    assert spec["scaleTargetRef"].get("kind", "Deployment") == "Deployment"
    assert pool.deployment in {d["metadata"]["name"] for d in source_objects("Deployment")}
    minimum, maximum = spec["minReplicaCount"], spec["maxReplicaCount"]
    assert maximum > minimum
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    # Scale up at once; scale down only after minutes of lower load.
    assert behavior["scaleUp"]["stabilizationWindowSeconds"] == 0
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] >= 300
    backlog, *others = spec["triggers"]
    assert backlog["type"] == "temporal"
    meta = backlog["metadata"]
    assert meta["taskQueue"] == pool.queue
    assert meta["queueTypes"] == pool.queue_type
    # KEDA wants numbers as strings in trigger metadata.
    assert isinstance(meta["targetQueueSize"], str) and int(meta["targetQueueSize"]) > 0
    assert isinstance(meta["activationTargetQueueSize"], str)
    assert int(meta["activationTargetQueueSize"]) >= 0
    if "endpointFromEnv" in meta:
        assert meta["endpointFromEnv"] in read_env_file(K8S / "base" / "common.env")
    else:
        assert re.fullmatch(r"[\w.-]+:\d+", meta["endpoint"])
    auth = by_name(load_all(component / "triggerauthentication.yaml"), "TriggerAuthentication")
    refs = auth[backlog["authenticationRef"]["name"]]["spec"]["secretTargetRef"]
    assert [r["parameter"] for r in refs] == ["apiKey"]
    if pool.queue_type == "workflow":
        # Every step of every run is a workflow task: the orchestrator never goes to zero.
        assert minimum >= 1 and not others
        return
    # An activity pool may go to zero only because a second trigger sees the work in flight,
    # which the backlog cannot (tests/test_prometheus_live.py evaluates both).
    assert minimum == 0
    # A trigger that cannot be read holds a replica instead of guessing zero.
    assert spec["fallback"]["replicas"] >= 1
    (in_flight,) = others
    assert in_flight["type"] == "prometheus"
    query = IN_FLIGHT_QUERY.match(in_flight["metadata"]["query"])
    assert query and query["queue"] == pool.queue, in_flight["metadata"]["query"]
    assert in_flight["metadata"]["activationThreshold"] == "0"
    assert in_flight["metadata"]["ignoreNullValues"] == "true"
    slots = int(
        read_env_file(K8S / "base" / pool.folder / "config.env").get(
            "RESEARCH_MAX_CONCURRENT_ACTIVITIES", "20"
        )
    )
    assert 0 < int(in_flight["metadata"]["threshold"]) <= slots


@pytest.mark.parametrize("pool", POOLS, ids=POOL_IDS)
def test_every_pool_has_a_disruption_budget_that_never_blocks_a_drain(pool: Pool) -> None:
    (budget,) = load_all(K8S / "base" / pool.folder / "poddisruptionbudget.yaml")
    deployment = by_name(load_all(K8S / "base" / pool.folder / "deployment.yaml"), "Deployment")[
        pool.deployment
    ]
    assert (
        budget["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    )
    assert budget["spec"]["maxUnavailable"] == 1 and "minAvailable" not in budget["spec"]
    assert budget["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


# -- Kubernetes: the rendered overlays ---------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """An overlay, rendered as it is or with the KEDA component added or taken out."""

    overlay: str
    keda: bool
    edited: bool  # True when the overlay's own choice about KEDA is reversed for the check

    @property
    def name(self) -> str:
        return f"{self.overlay}{'+' if self.keda else '-'}keda"


VARIANTS = (
    Variant("dev", keda=False, edited=False),
    Variant("dev", keda=True, edited=True),
    Variant("prod", keda=True, edited=False),
    Variant("prod", keda=False, edited=True),
)
KEDA_COMPONENT = "../../components/keda"


def overlay_uses_keda(overlay: str) -> bool:
    doc = load_all(K8S / "overlays" / overlay / "kustomization.yaml")[0]
    return KEDA_COMPONENT in (doc.get("components") or [])


@cache
def render_variant(variant: Variant) -> tuple[dict[str, Any], ...]:
    """Render `variant` with `kubectl kustomize`. An edited variant renders a copy of the tree
    (kustomize refuses files outside the tree it renders), with KEDA added or removed."""
    folder = K8S / "overlays" / variant.overlay
    if variant.edited:
        copy = Path(tempfile.mkdtemp(prefix="k8s-variant-"))
        atexit.register(shutil.rmtree, copy, True)
        shutil.copytree(ROOT / "deploy", copy / "deploy")
        folder = copy / "deploy" / "k8s" / "overlays" / variant.overlay
        path = folder / "kustomization.yaml"
        doc = load_all(path)[0]
        components = [c for c in doc.get("components") or [] if c != KEDA_COMPONENT]
        if variant.keda:
            components.insert(0, KEDA_COMPONENT)
        doc["components"] = components
        path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    done = subprocess.run(
        [require("kubectl"), "kustomize", str(folder)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"{variant.name}: {done.stderr}"
    return tuple(d for d in yaml.safe_load_all(done.stdout) if d)


def render(overlay: str) -> list[dict[str, Any]]:
    """An overlay as it is."""
    return list(render_variant(Variant(overlay, overlay_uses_keda(overlay), edited=False)))


@pytest.fixture(scope="module", params=VARIANTS, ids=[v.name for v in VARIANTS])
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    variant: Variant = request.param
    assert overlay_uses_keda(variant.overlay) == (variant.keda != variant.edited)
    return variant.name, list(render_variant(variant))


def deployment_of(docs: list[dict[str, Any]], pool: Pool) -> dict[str, Any]:
    """The pool's Deployment, found by its app label (a versioned one carries its build in
    its name)."""
    (found,) = [
        d
        for d in objects(docs, "Deployment")
        if d["metadata"]["labels"].get("app.kubernetes.io/name") == pool.deployment
    ]
    return found


def test_rendered_overlay_is_hardened_and_self_consistent(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    overlay, docs = rendered
    assert not objects(docs, "Secret"), f"{overlay}: renders a Secret"
    for deployment in objects(docs, "Deployment"):
        check_deployment(deployment)
    for account in objects(docs, "ServiceAccount"):
        assert account["automountServiceAccountToken"] is False
    budgets = objects(docs, "PodDisruptionBudget")
    for pool in POOLS:
        deployment = deployment_of(docs, pool)
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        settings = config_values(docs, container)
        assert settings[pool.queue_setting] == pool.queue
        budget = float(
            settings.get("RESEARCH_GRACEFUL_SHUTDOWN_SECONDS", default_shutdown_seconds())
        )
        assert pod["terminationGracePeriodSeconds"] >= budget + SHUTDOWN_MARGIN_SECONDS
        for var in container.get("env") or []:
            secret = (var.get("valueFrom") or {}).get("secretKeyRef")
            if secret and var["name"] != "TEMPORAL_API_KEY":
                # Provider keys are optional so a missing Secret falls back to offline work.
                assert secret.get("optional") is True, f"{overlay}/{pool.deployment}: {var}"
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert [b for b in budgets if b["spec"]["selector"]["matchLabels"] == selector], (
            f"{overlay}: no PodDisruptionBudget for {deployment['metadata']['name']}"
        )
    # The ScaledObjects follow the variant, and each scales a Deployment that exists.
    names = {d["metadata"]["name"] for d in objects(docs, "Deployment")}
    scaled = objects(docs, "ScaledObject")
    assert bool(scaled) == overlay.endswith("+keda")
    for item in scaled:
        assert item["spec"]["scaleTargetRef"]["name"] in names


# -- Kubernetes: schemas --------------------------------------------------------------------


def crd_models() -> dict[tuple[str, str], Any]:
    from cloudcoil.models.keda import v1alpha1 as keda
    from cloudcoil.models.prometheus_operator import v1 as monitoring

    return {
        ("keda.sh/v1alpha1", "ScaledObject"): keda.ScaledObject,
        ("keda.sh/v1alpha1", "TriggerAuthentication"): keda.TriggerAuthentication,
        ("monitoring.coreos.com/v1", "ServiceMonitor"): monitoring.ServiceMonitor,
        ("monitoring.coreos.com/v1", "PrometheusRule"): monitoring.PrometheusRule,
    }


def schema_problems(doc: dict[str, Any]) -> list[str]:
    """What the schema of `doc`'s kind says is wrong with it: unknown fields, wrong types,
    missing required fields, values out of an enum."""
    import kubernetes_validate
    import pydantic

    where = f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"
    model = crd_models().get((doc.get("apiVersion", ""), doc.get("kind", "")))
    if model is None:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as err:
            path = ".".join(str(p) for p in err.path)
            return [f"{where}: {path}: {err.message}"]
        except kubernetes_validate.SchemaNotFoundError as err:
            return [f"{where}: {err.message}"]
        return []
    try:
        parsed = model.model_validate(doc)
    except pydantic.ValidationError as err:
        return [f"{where}: {' '.join(str(err).split())}"]
    # The models ignore fields they do not know and coerce types ("1" to 1); what does not
    # come back unchanged is what the CRD's schema does not have in that form.
    again = parsed.model_dump(by_alias=True, exclude_unset=True, mode="json")
    return [] if again == doc else [f"{where}: {differences(doc, again)}"]


def differences(given: Any, known: Any, path: str = "") -> str:
    """The first place where `given` and what the schema kept of it part."""
    if isinstance(given, dict) and isinstance(known, dict):
        for key in given:
            if key not in known:
                return f"{path}.{key}: not in the schema"
            if given[key] != known[key]:
                return differences(given[key], known[key], f"{path}.{key}")
    if isinstance(given, list) and isinstance(known, list) and len(given) == len(known):
        for index, (a, b) in enumerate(zip(given, known, strict=True)):
            if a != b:
                return differences(a, b, f"{path}[{index}]")
    return f"{path}: {given!r} is read as {known!r}"


def test_rendered_overlay_matches_the_kubernetes_keda_and_operator_schemas(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    overlay, docs = rendered
    found = [problem for doc in docs for problem in schema_problems(doc)]
    assert found == [], f"{overlay}:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("kind", "change", "complaint"),
    [
        ("Deployment", lambda d: d["spec"].update(replica=2), "replica"),
        ("Deployment", lambda d: d["spec"].update(replicas="2"), "replicas"),
        ("PodDisruptionBudget", lambda d: d["spec"].update(maxUnavailible=1), "maxUnavailible"),
        ("ScaledObject", lambda d: d["spec"].update(minReplicas=0), "minReplicas"),
        ("ScaledObject", lambda d: d["spec"].update(minReplicaCount="0"), "minReplicaCount"),
        ("ScaledObject", lambda d: d["spec"]["triggers"][0].pop("type"), "type"),
        ("TriggerAuthentication", lambda d: d["spec"].update(secretRef=[]), "secretRef"),
        ("ServiceMonitor", lambda d: d["spec"].update(endpoint=[]), "endpoint"),
    ],
)
def test_the_schema_checks_reject_what_a_cluster_would(
    kind: str, change: Any, complaint: str
) -> None:
    docs = list(render_variant(Variant("prod", keda=True, edited=False)))
    original = json.loads(json.dumps(objects(docs, kind)[0]))
    assert schema_problems(original) == []
    change(original)
    found = schema_problems(original)
    assert found and complaint in found[0], found


def test_dev_overlay_runs_offline_against_its_own_dev_server() -> None:
    docs = render("dev")
    services = by_name(docs, "Service")
    for pool in POOLS:
        deployment = deployment_of(docs, pool)
        assert deployment["spec"]["replicas"] == 1
        settings = config_values(docs, deployment["spec"]["template"]["spec"]["containers"][0])
        host, _, port = settings["TEMPORAL_ADDRESS"].partition(":")
        assert host in services, f"{settings['TEMPORAL_ADDRESS']} is not a Service of the overlay"
        assert int(port) in {p["port"] for p in services[host]["spec"]["ports"]}
        assert settings.get("RESEARCH_SEARCH_PROVIDER", "local") == "local"
        assert settings.get("RESEARCH_LLM_PROVIDER", "offline") == "offline"
        assert "RESEARCH_BUILD_ID" not in settings, "the dev overlay runs unversioned"
    assert not objects(docs, "ScaledObject")


def dev_server_container() -> dict[str, Any]:
    """The dev overlay's Temporal dev server container."""
    (server,) = [
        d
        for d in objects(render("dev"), "Deployment")
        if d["metadata"]["labels"].get("app.kubernetes.io/component") == "temporal-dev-server"
    ]
    (container,) = server["spec"]["template"]["spec"]["containers"]
    return dict(container)


def test_every_dev_server_registers_every_search_attribute_the_code_uses(
    tmp_path: Path,
) -> None:
    """A run started with a search attribute the server does not know fails: the dev
    overlay's server and the embedded one register each attribute the code declares."""
    used = search_attributes_in_code()
    assert names.OWNER_SEARCH_ATTRIBUTE in used, "the scan of the code found nothing"
    container = dev_server_container()
    assert container["args"][:2] == ["server", "start-dev"]
    in_cluster = registered_by_flags(container["args"])
    embedded = registered_by_flags(list(dev_server_spec(tmp_path / "t.db", 7233).args))
    for name, kind in used.items():
        assert in_cluster.get(name) == kind, f"the dev overlay's server lacks {name}={kind}"
        assert embedded.get(name) == kind, f"the embedded dev server lacks {name}={kind}"


def test_every_dev_server_reads_its_task_queues_faster_than_the_default(
    tmp_path: Path,
) -> None:
    """One history shard reads each task queue 20 times a second by default, which holds
    every step of a run back ~40 ms once a burst has used them up: both dev servers raise
    the three rates, to the same values."""
    container = dev_server_container()

    def rates(args: list[str]) -> dict[str, int]:
        values = [v for f, v in itertools.pairwise(args) if f == "--dynamic-config-value"]
        return {
            key: int(value)
            for key, _, value in (v.partition("=") for v in values)
            if key.endswith("ProcessorMaxPollRPS")
        }

    embedded = rates(list(dev_server_spec(tmp_path / "t.db", 7233).args))
    assert set(embedded) == {
        f"history.{queue}ProcessorMaxPollRPS" for queue in ("transfer", "timer", "visibility")
    }
    assert min(embedded.values()) > 20
    assert rates(container["args"]) == embedded


def test_prod_overlay_uses_temporal_cloud_and_scales_every_pool() -> None:
    docs = render("prod")
    scaled = {s["spec"]["scaleTargetRef"]["name"]: s for s in objects(docs, "ScaledObject")}
    auths = by_name(docs, "TriggerAuthentication")
    for pool in POOLS:
        deployment = deployment_of(docs, pool)
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        settings = config_values(docs, container)
        assert settings["TEMPORAL_TLS"] == "true"
        api_key = {v["name"]: v for v in container.get("env") or []}["TEMPORAL_API_KEY"]
        secret = api_key["valueFrom"]["secretKeyRef"]
        assert secret.get("optional") is not True
        assert "replicas" not in deployment["spec"], "KEDA owns replicas"
        trigger = scaled[deployment["metadata"]["name"]]["spec"]["triggers"][0]
        assert trigger["metadata"]["namespace"] == settings["TEMPORAL_NAMESPACE"]
        assert trigger["metadata"]["taskQueue"] == settings[pool.queue_setting]
        auth = auths[trigger["authenticationRef"]["name"]]["spec"]["secretTargetRef"][0]
        assert (auth["name"], auth["key"]) == (secret["name"], secret["key"])
    monitors = objects(docs, "ServiceMonitor")
    assert [e["port"] for e in monitors[0]["spec"]["endpoints"]] == [
        "metrics",
        "sdk-metrics",
        "http",
    ]
    assert objects(docs, "PrometheusRule")


def test_prod_runs_each_orchestrator_build_as_its_own_versioned_deployment() -> None:
    """Worker Versioning: the orchestrator's Deployment, budget and ScaledObject carry the
    build in their names and selectors, the pods the deployment name and build, and KEDA
    counts that version's backlog only. The activity pools stay unversioned."""
    docs = render("prod")
    orchestrator = deployment_of(docs, POOLS[0])
    container = orchestrator["spec"]["template"]["spec"]["containers"][0]
    settings = config_values(docs, container)
    build, deployment_name = settings["RESEARCH_BUILD_ID"], settings["RESEARCH_DEPLOYMENT_NAME"]
    WorkerSettings(deployment_name=deployment_name, build_id=build)  # valid settings
    assert container["image"].endswith(f":{build}"), "the build is the image's tag"
    name = f"{POOLS[0].deployment}-{build}"
    assert orchestrator["metadata"]["name"] == name
    assert orchestrator["spec"]["selector"]["matchLabels"]["temporal.io/build-id"] == build
    assert by_name(docs, "PodDisruptionBudget")[name]
    trigger = by_name(docs, "ScaledObject")[name]["spec"]["triggers"][0]["metadata"]
    assert (trigger["workerDeploymentName"], trigger["workerDeploymentBuildId"]) == (
        deployment_name,
        build,
    )
    for pool in POOLS[1:]:
        settings = config_values(
            docs, deployment_of(docs, pool)["spec"]["template"]["spec"]["containers"][0]
        )
        assert "RESEARCH_BUILD_ID" not in settings, pool.pool


# -- what the ServiceMonitor scrapes -------------------------------------------------------------

# The port each ServiceMonitor endpoint of a pool scrapes, and the setting that opens it.
SCRAPED_PORTS = {"metrics": "RESEARCH_METRICS_PORT", "sdk-metrics": "RESEARCH_SDK_METRICS_PORT"}


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


@pytest.mark.parametrize("pool", POOLS, ids=POOL_IDS)
def test_every_pool_service_exposes_the_ports_the_service_monitor_scrapes(pool: Pool) -> None:
    """Through the rendered prod overlay (the one with components/monitoring): the
    ServiceMonitor selects the pool's Service, which names both scraped ports, each reaching a
    container port of the pool's pods on which the pool's settings serve that metrics."""
    docs = render("prod")
    (monitor,) = objects(docs, "ServiceMonitor")
    scraped = {e["port"] for e in monitor["spec"]["endpoints"]}
    assert set(SCRAPED_PORTS) <= scraped
    deployment = deployment_of(docs, pool)
    pod = deployment["spec"]["template"]
    container = pod["spec"]["containers"][0]
    settings = config_values(docs, container)
    (service,) = [
        s
        for s in objects(docs, "Service")
        if selects(s["spec"].get("selector") or {}, pod["metadata"]["labels"])
    ]
    assert selects(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    service_ports = {p.get("name"): p for p in service["spec"]["ports"]}
    container_ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for name, setting in SCRAPED_PORTS.items():
        assert name in service_ports, f"Service/{service['metadata']['name']} has no {name} port"
        target = service_ports[name]["targetPort"]
        number = container_ports[target] if isinstance(target, str) else target
        assert number == int(settings[setting]), (name, number, settings[setting])


# -- the KEDA release each overlay needs --------------------------------------------------------

# The temporal scaler's trigger parameters, by the KEDA release that first reads them, from
# KEDA's own sources (pkg/scalers/temporal.go at v2.17.0, temporal_scaler.go at v2.18.0 and
# v2.20.0). KEDA drops a parameter it does not read without a word (unless
# KEDA_CHECK_UNEXPECTED_SCALERS_PARAMS is enabled), so a misspelt or too new one would
# silently change what a pool scales on.
TEMPORAL_SCALER_SINCE = {
    **dict.fromkeys(
        (
            "endpoint",
            "namespace",
            "activationTargetQueueSize",
            "targetQueueSize",
            "taskQueue",
            "queueTypes",
            "buildId",
            "selectAllActive",
            "selectUnversioned",
            "minConnectTimeout",
            "unsafeSsl",
        ),
        (2, 17),
    ),
    "tlsServerName": (2, 18),
    "workerDeploymentName": (2, 20),
    "workerDeploymentBuildId": (2, 20),
}
# Those read from the scaled workload's environment too, as `<name>FromEnv`.
TEMPORAL_SCALER_FROM_ENV = {
    "endpoint",
    "namespace",
    "taskQueue",
    "buildId",
    "workerDeploymentName",
    "workerDeploymentBuildId",
}
# KEDA 2.19.0 fixed the temporal scaler's TLS with an API key (its changelog, #7367): the
# TriggerAuthentication every ScaledObject here uses.
KEDA_FOR_API_KEY_TLS = (2, 19)
DEPLOY_DOC = ROOT / "docs" / "deploy.md"


def keda_release_needed(docs: Sequence[dict[str, Any]]) -> tuple[int, int]:
    """The oldest KEDA release that reads every temporal trigger of `docs` as written."""
    needed = (2, 17)
    for scaled in objects(list(docs), "ScaledObject"):
        for trigger in scaled["spec"]["triggers"]:
            if trigger["type"] != "temporal":
                continue
            if "authenticationRef" in trigger:
                needed = max(needed, KEDA_FOR_API_KEY_TLS)
            for key in trigger["metadata"]:
                name = key.removesuffix("FromEnv")
                where = f"ScaledObject/{scaled['metadata']['name']}: {key}"
                assert name in TEMPORAL_SCALER_SINCE, (
                    f"{where}: KEDA's temporal scaler reads no {key}"
                )
                assert name == key or name in TEMPORAL_SCALER_FROM_ENV, f"{where}: not from env"
                needed = max(needed, TEMPORAL_SCALER_SINCE[name])
    return needed


def keda_named(text: str, where: str) -> tuple[int, int]:
    """The release in the one "KEDA X.Y or newer" that `text` says."""
    found = {(int(a), int(b)) for a, b in re.findall(r"KEDA (\d+)\.(\d+) or\s+newer", text)}
    assert len(found) == 1, f"{where} names {sorted(found) or 'no'} KEDA release"
    return found.pop()


def deploy_doc_section(heading: str) -> str:
    text = DEPLOY_DOC.read_text(encoding="utf-8")
    section = text[text.index(heading) + len(heading) :]
    return section[: section.index("\n#")]


def test_docs_name_the_keda_release_each_overlay_needs() -> None:
    keda = keda_release_needed(render_variant(Variant("dev", keda=True, edited=True)))
    versioned = keda_release_needed(render("prod"))
    assert keda == KEDA_FOR_API_KEY_TLS
    assert versioned == (2, 20)
    for where, text, needed in [
        (
            "components/keda",
            "\n".join(header_lines(K8S / "components" / "keda" / "kustomization.yaml")),
            keda,
        ),
        (
            "docs/deploy.md, Autoscaling with KEDA",
            deploy_doc_section("## Autoscaling with KEDA"),
            keda,
        ),
        (
            "components/worker-versioning",
            "\n".join(
                header_lines(K8S / "components" / "worker-versioning" / "kustomization.yaml")
            ),
            versioned,
        ),
        (
            "docs/deploy.md, Versioned orchestrator deployments",
            deploy_doc_section("## Versioned orchestrator deployments"),
            versioned,
        ),
        ("docs/deploy.md, Prod overlay", deploy_doc_section("### Prod overlay"), versioned),
    ]:
        assert keda_named(text, where) == needed, where


@pytest.mark.parametrize(
    ("metadata", "complaint"),
    [
        ({"taskQueue": "q", "enableTLS": "true"}, "reads no enableTLS"),
        ({"taskQueue": "q", "workerDeploymentBuildID": "1"}, "reads no workerDeploymentBuildID"),
        ({"queueTypesFromEnv": "X"}, "not from env"),
    ],
)
def test_a_temporal_parameter_keda_does_not_read_is_refused(
    metadata: dict[str, str], complaint: str
) -> None:
    scaled = {
        "kind": "ScaledObject",
        "metadata": {"name": "x"},
        "spec": {"triggers": [{"type": "temporal", "metadata": metadata}]},
    }
    with pytest.raises(AssertionError, match=complaint):
        keda_release_needed([scaled])


def header_lines(path: Path) -> list[str]:
    """The comment lines a file starts with."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return list(itertools.takewhile(lambda line: line.startswith("#"), lines))


# -- Dockerfiles --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def parse_dockerfile(path: Path) -> list[Instruction]:
    """Instructions with continuations joined and heredoc bodies attached to their RUN."""
    lines = path.read_text(encoding="utf-8").splitlines()
    parsed: list[Instruction] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        while line.rstrip().endswith("\\") and i < len(lines):
            following = lines[i]
            i += 1
            if not following.lstrip().startswith("#"):
                line = line.rstrip()[:-1] + " " + following.strip()
        keyword, _, args = line.strip().partition(" ")
        heredoc = re.search(r"<<-?['\"]?(\w+)['\"]?", args)
        if heredoc:
            body: list[str] = []
            while i < len(lines) and lines[i].strip() != heredoc[1]:
                body.append(lines[i])
                i += 1
            i += 1
            args += "\n" + "\n".join(body)
        parsed.append(Instruction(keyword.upper(), args.strip()))
    return parsed


def arg_defaults(instructions: list[Instruction]) -> dict[str, str]:
    defaults: dict[str, str] = {}
    for ins in instructions:
        if ins.keyword == "ARG":
            key, _, value = ins.args.partition("=")
            defaults[key] = value.strip().strip('"')
    return defaults


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    result: list[list[Instruction]] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            result.append([])
        if result:
            result[-1].append(ins)
    return result


@pytest.mark.parametrize("pool", POOLS, ids=POOL_IDS)
def test_dockerfile_is_pinned_non_root_and_runs_its_pool(pool: Pool) -> None:
    instructions = parse_dockerfile(ROOT / pool.dockerfile)
    args = arg_defaults(instructions)
    all_stages = stages(instructions)
    assert len(all_stages) >= 2, "dependencies are built in a stage of their own"
    for stage in all_stages:
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m[1]], stage[0].args.split()[0])
        assert image_is_pinned(image), f"base image {image} is not pinned"
        if image.startswith("python:"):
            assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", image)
    final = all_stages[-1]
    users = [ins.args for ins in final if ins.keyword == "USER"]
    assert users, "the runtime stage sets no USER"
    uid = users[-1].partition(":")[0]
    assert uid.isdigit() and int(uid) == WORKER_UID, f"USER {users[-1]}"
    (entrypoint,) = [ins.args for ins in final if ins.keyword == "ENTRYPOINT"]
    assert json.loads(entrypoint) == ["deep-research", "worker", pool.pool]
    exposed = {p for ins in final if ins.keyword == "EXPOSE" for p in ins.args.split()}
    assert exposed >= METRICS_PORTS
    env = " ".join(ins.args for ins in final if ins.keyword == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env and "PYTHONUNBUFFERED=1" in env
    for ins in instructions:
        if ins.keyword in ("ARG", "ENV"):
            for key in re.findall(r"(\w+)=", ins.args):
                assert not SECRET_NAME.search(key), f"{ins.keyword} {key}: a secret in the image"


@pytest.mark.parametrize("pool", POOLS, ids=POOL_IDS)
def test_dockerfile_installs_exactly_its_pools_lock(pool: Pool) -> None:
    instructions = parse_dockerfile(ROOT / pool.dockerfile)
    installs = [
        ins.args for ins in instructions if ins.keyword == "RUN" and "install.sh" in ins.args
    ]
    assert installs[0].split()[-2:] == ["deps", f"requirements/{pool.pool}.txt"]
    assert (ROOT / "requirements" / f"{pool.pool}.txt").is_file()
    assert installs[1].split()[-2:] == ["project", f"research_{pool.pool}.worker"]
    assert set(pool.extras) <= pyproject_extras(), f"extras {pool.extras} are not in pyproject"
    text = (ROOT / pool.dockerfile).read_text(encoding="utf-8")
    # No other route to a provider library: no `.[extra]` install, no other pool's sources.
    assert not re.search(r"\.\[[\w,]+\]", text)
    for other in (p for p in POOLS if p is not pool):
        assert str(Path(other.dockerfile).parent) not in text
        assert f"requirements/{other.pool}.txt" not in text
    for ins in instructions:
        if ins.keyword == "COPY" and not ins.args.startswith("--from"):
            for source in ins.args.split()[:-1]:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"


def pyproject_extras() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return set(project["optional-dependencies"])


def test_dockerignore_admits_what_the_images_copy_and_nothing_else() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "the context is an allow-list"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    for pool in POOLS:
        for ins in parse_dockerfile(ROOT / pool.dockerfile):
            if ins.keyword == "COPY" and not ins.args.startswith("--from"):
                for source in ins.args.split()[:-1]:
                    parts = Path(source).parts
                    admitted = any("/".join(parts[:n]) in allowed for n in range(1, len(parts) + 1))
                    assert admitted, f"{source} is ignored"


# -- the HTTP API -------------------------------------------------------------------------------

API_FOLDER = K8S / "base" / "api"
API_DOCKERFILE = ROOT / "services" / "api" / "Dockerfile"
API_PORT = 8234


def test_api_deployment_serves_its_port_with_probes_and_keys_from_a_secret() -> None:
    deployment = by_name(load_all(API_FOLDER / "deployment.yaml"), "Deployment")["api"]
    check_deployment(deployment)
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"].rsplit("/", 1)[-1].startswith("deep-research-api:")
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"http": API_PORT}
    probes = {"startupProbe": LIVE_PATH, "readinessProbe": READY_PATH, "livenessProbe": LIVE_PATH}
    for probe, path in probes.items():
        assert container[probe]["httpGet"] == {"path": path, "port": "http"}, probe
    env = {v["name"]: v for v in container.get("env") or []}
    secret = env["RESEARCH_API_KEYS"]["valueFrom"]["secretKeyRef"]
    assert secret["name"] == "research-api-keys"
    config = read_env_file(API_FOLDER / "config.env")
    assert config["RESEARCH_API_PORT"] == str(API_PORT)
    budget = float(config["RESEARCH_GRACEFUL_SHUTDOWN_SECONDS"])
    assert pod["terminationGracePeriodSeconds"] >= budget + SHUTDOWN_MARGIN_SECONDS
    service = by_name(load_all(API_FOLDER / "service.yaml"), "Service")["api"]
    assert service["spec"]["ports"] == [{"name": "http", "port": API_PORT, "targetPort": "http"}]
    account = by_name(load_all(API_FOLDER / "serviceaccount.yaml"), "ServiceAccount")
    assert account[pod["serviceAccountName"]]["automountServiceAccountToken"] is False
    assert "api" in load_all(K8S / "base" / "kustomization.yaml")[0]["resources"]


def test_api_dockerfile_is_pinned_non_root_and_runs_the_api() -> None:
    instructions = parse_dockerfile(API_DOCKERFILE)
    args = arg_defaults(instructions)
    all_stages = stages(instructions)
    for stage in all_stages:
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m[1]], stage[0].args.split()[0])
        assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", image)
    final = all_stages[-1]
    assert [ins.args for ins in final if ins.keyword == "USER"][-1] == f"{WORKER_UID}:{WORKER_UID}"
    (entrypoint,) = [ins.args for ins in final if ins.keyword == "ENTRYPOINT"]
    assert json.loads(entrypoint) == ["deep-research", "api"]
    assert {p for ins in final if ins.keyword == "EXPOSE" for p in ins.args.split()} == {"8234"}
    installs = [
        ins.args for ins in instructions if ins.keyword == "RUN" and "install.sh" in ins.args
    ]
    assert installs[0].split()[-2:] == ["deps", "requirements/api.txt"]
    assert installs[1].split()[-2:] == ["project", "research_api.server"]
    assert (ROOT / "requirements" / "api.txt").is_file()
    text = API_DOCKERFILE.read_text(encoding="utf-8")
    for pool in POOLS:
        assert str(Path(pool.dockerfile).parent) not in text
        assert f"requirements/{pool.pool}.txt" not in text
    allowed = {
        line.strip()[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip().startswith("!")
    }
    for ins in instructions:
        if ins.keyword == "COPY" and not ins.args.startswith("--from"):
            for source in ins.args.split()[:-1]:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
                parts = Path(source).parts
                assert any("/".join(parts[:n]) in allowed for n in range(1, len(parts) + 1))


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_rendered_overlays_run_the_api_against_their_temporal(overlay: str) -> None:
    docs = render(overlay)
    deployment = by_name(docs, "Deployment")["api"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    settings = config_values(docs, container)
    assert settings["RESEARCH_API_HOST"] == "0.0.0.0"
    # The orchestrator's Deployment is named after its build where Worker Versioning is on.
    [orchestrator] = [
        d for name, d in by_name(docs, "Deployment").items() if name.startswith("orchestrator")
    ]
    orchestrator_container = orchestrator["spec"]["template"]["spec"]["containers"][0]
    assert (
        settings["TEMPORAL_ADDRESS"]
        == config_values(docs, orchestrator_container)["TEMPORAL_ADDRESS"]
    )
    # Every pod names the same payload store: inline in dev, a bucket in prod.
    assert (
        settings["RESEARCH_PAYLOAD_STORE"]
        == config_values(docs, orchestrator_container)["RESEARCH_PAYLOAD_STORE"]
    )
    assert settings["RESEARCH_PAYLOAD_STORE"].startswith("s3://" if overlay == "prod" else "none")
    env = {v["name"] for v in container.get("env") or []}
    assert ("TEMPORAL_API_KEY" in env) == (overlay == "prod")
