"""Offline checks of the cluster configs in ``cluster/`` (no cloud, no Kubernetes, no running Ray needed).

What is checked, and with whose rules:

- ``cluster/aws.yaml`` (Ray cluster launcher): Ray's own ``prepare_config`` + ``validate_config`` (the JSON schema
  ``ray/autoscaler/ray-schema.json`` and the cross-field checks ``ray up`` runs before it calls AWS), then this
  project's rules (CPU head with no Ray work, an on-demand GPU type, a spot type, images and pins).
- ``cluster/kuberay/*.yaml``: a compact JSON schema written from KubeRay's v1 CRD Go types
  (``ray-project/kuberay`` ``ray-operator/apis/ray/v1/{raycluster,rayjob,rayservice}_types.go``, KubeRay v1.5: group
  ``labels``, ``upgradeStrategy.clusterUpgradeOptions``); closed objects at the CRD level, so a misspelt field
  fails. Then Ray's own RayCluster -> autoscaler translation (``_derive_autoscaling_config_from_ray_cr``, what the
  KubeRay autoscaler sidecar runs), resources, images, ``rayVersion`` and the embedded Serve config (Ray Serve's
  ``ServeDeploySchema``, import paths, deployment names, app args) and its drift from ``serve_apps/serve_config.yaml``.
- ``cluster/runtime_env/*.yaml``: ``ray job submit --runtime-env``'s own parsing, then ``ray.runtime_env.RuntimeEnv``.
- Environment variable names anywhere in these files: a ``SUNDAY_*`` name must be a setting of
  ``sunday/settings.py``; other names must belong to a known library.

``python -m sunday.cluster_configs check`` runs every check; ``python -m sunday.cluster_configs sync-serve`` copies
``serve_apps/serve_config.yaml`` into the RayService's ``serveConfigV2``. Nothing runs at import time.
"""

from __future__ import annotations

import ast
import copy
import re
import shlex
import sys
import tomllib
from pathlib import Path
from typing import Any, Iterable

import yaml

from sunday.errors import SundayError

REPO_ROOT = Path(__file__).resolve().parents[1]
CLUSTER_DIR = REPO_ROOT / "cluster"
SERVE_CONFIG = REPO_ROOT / "serve_apps" / "serve_config.yaml"
KUBERAY_DIR = CLUSTER_DIR / "kuberay"
RUNTIME_ENV_DIR = CLUSTER_DIR / "runtime_env"
STATE_PATH = "/var/lib/sunday"  # SUNDAY_HOME on every cluster node (a shared mount)
CODE_PATH = "/home/ray/sunday"  # the repository inside the image / on launcher nodes
IMAGE_RE = re.compile(r"^(?:.+/)?sunday-ml:(?P<version>[^-]+)-ray(?P<ray>[0-9][0-9.]*)-(?P<flavor>cpu|gpu)$")
GPU_KEY = "nvidia.com/gpu"
WORKING_DIR_BUDGET = 25 * 1024 * 1024  # bytes a working_dir upload may take
LIBRARY_ENV_PREFIXES = ("RAY_", "HF_", "TRANSFORMERS_", "NCCL_", "TORCH_", "CUDA_", "OMP_")
LIBRARY_ENV_NAMES = {"PYTHONPATH"}


class ClusterConfigError(SundayError):
    """A cluster config breaks a rule. The message names the file and the field."""

    def __init__(self, where: str, field: str, message: str):
        self.where, self.field = where, field
        super().__init__(f"{where}: {field}: {message}")


# ---------------------------------------------------------------------------------------------------- pins & files
def load_documents(path: Path) -> list[dict]:
    """Every YAML document of a file (empty documents dropped)."""
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def pinned_ray_version(root: Path = REPO_ROOT) -> str:
    """``ray==X`` from constraints.txt (what a fresh machine installs)."""
    m = re.search(r"^ray==(\S+)$", (root / "constraints.txt").read_text(), re.M)
    if not m:
        raise ClusterConfigError("constraints.txt", "ray", "no ray==VERSION pin")
    return m.group(1)


def project_version(root: Path = REPO_ROOT) -> str:
    return tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"]


def python_tag(root: Path = REPO_ROOT) -> str:
    """``py311`` for ``requires-python = ">=3.11,<3.12"`` (Ray's image tags)."""
    requires = tomllib.loads((root / "pyproject.toml").read_text())["project"]["requires-python"]
    m = re.search(r">=\s*3\.(\d+)", requires)
    if not m:
        raise ClusterConfigError("pyproject.toml", "requires-python", f"{requires!r}: no lower bound 3.X")
    return f"py3{m.group(1)}"


def makefile_pins(root: Path = REPO_ROOT) -> dict[str, str]:
    """``TORCH`` and ``SMOLLM`` as the Makefile installs them (e.g. ``torch==2.13.0``)."""
    text = (root / "Makefile").read_text()
    pins = {}
    for var in ("TORCH", "SMOLLM"):
        m = re.search(rf"^{var} \?= (\S+)$", text, re.M)
        if not m:
            raise ClusterConfigError("Makefile", var, "no `VAR ?= pin` line")
        pins[var] = m.group(1)
    return pins


# ------------------------------------------------------------------------------------------------ environment names
def settings_env_names() -> set[str]:
    """Every environment variable ``Settings`` reads (aliases included)."""
    from pydantic import AliasChoices

    from sunday.settings import Settings

    prefix = Settings.model_config.get("env_prefix", "")
    names: set[str] = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(str(c).upper() for c in alias.choices)
        elif isinstance(alias, str):
            names.add(alias.upper())
        else:
            names.add(f"{prefix}{name}".upper())
    return names


def check_env_names(names: Iterable[str], where: str) -> None:
    """A ``SUNDAY_*`` / ``MLFLOW_*`` name must be a setting; any other must belong to a known library."""
    known = settings_env_names()
    for name in names:
        if name in known or name in LIBRARY_ENV_NAMES:
            continue
        if name.startswith(("SUNDAY_", "MLFLOW_")) or not name.startswith(LIBRARY_ENV_PREFIXES):
            raise ClusterConfigError(where, name, "unknown environment variable: not a setting of "
                                                  f"sunday/settings.py ({', '.join(sorted(known))}) "
                                                  "nor a known library's")


def check_env(env: dict, where: str, field: str) -> None:
    """Names known (``check_env_names``) and ``SUNDAY_HOME``, where set, the cluster's shared state folder."""
    check_env_names(env, where)
    if env.get("SUNDAY_HOME", STATE_PATH) != STATE_PATH:
        raise ClusterConfigError(where, f"{field}.SUNDAY_HOME", f"{env['SUNDAY_HOME']!r}: the cluster's state "
                                                                f"folder is {STATE_PATH} (a shared mount)")


def env_names_in_text(text: str) -> set[str]:
    """``SUNDAY_*`` and ``MLFLOW_*`` names written anywhere (comments too: an example an operator uncomments)."""
    return set(re.findall(r"\b((?:SUNDAY|MLFLOW)_[A-Z0-9_]*[A-Z0-9])\b", text))


# --------------------------------------------------------------------------------------------- Ray cluster launcher
def validate_launcher(config: dict, where: str = "cluster/aws.yaml", root: Path = REPO_ROOT) -> dict:
    """Ray's own checks (what ``ray up`` validates before calling AWS) then this project's; returns the filled
    config Ray would use."""
    from ray._private.label_utils import validate_node_label_syntax
    from ray.autoscaler._private.util import prepare_config, validate_config

    try:
        filled = prepare_config(copy.deepcopy(config))
        validate_config(filled)
    except Exception as e:  # jsonschema.ValidationError, ValueError, AssertionError from Ray
        path = ".".join(str(p) for p in getattr(e, "absolute_path", [])) or "config"
        raise ClusterConfigError(where, path, f"Ray's validation: {getattr(e, 'message', e)}") from None
    ray_version = pinned_ray_version(root)
    provider = filled["provider"]
    if provider.get("type") != "aws" or not provider.get("region"):
        raise ClusterConfigError(where, "provider", "type aws with a region expected")
    if not filled.get("idle_timeout_minutes", 0) > 0:
        raise ClusterConfigError(where, "idle_timeout_minutes", "idle workers must be released (> 0)")
    types, head_type = filled["available_node_types"], filled["head_node_type"]
    head = types[head_type]
    if head["resources"].get("CPU", None) != 0 or head["resources"].get("GPU", 0):
        raise ClusterConfigError(where, f"available_node_types.{head_type}.resources",
                                 "the head runs no Ray work: CPU: 0 and no GPU")
    docker = filled.get("docker") or {}
    on_demand_gpu = spot = False
    for name, nt in types.items():
        at = f"available_node_types.{name}"
        try:
            validate_node_label_syntax(nt.get("labels") or {})
        except ValueError as e:
            raise ClusterConfigError(where, f"{at}.labels", str(e)) from None
        gpus = nt["resources"].get("GPU", 0)
        market = (nt["node_config"].get("InstanceMarketOptions") or {}).get("MarketType")
        instance = nt["node_config"].get("InstanceType", "")
        if bool(gpus) != instance.startswith(("g", "p")):
            raise ClusterConfigError(where, f"{at}.node_config.InstanceType",
                                     f"{instance} does not match resources GPU: {gpus}")
        if docker:
            image = (docker.get("head_image") if name == head_type else
                     (nt.get("docker") or {}).get("worker_image", docker.get("worker_image"))) or docker.get("image")
            expected = f"rayproject/ray:{ray_version}-{python_tag(root)}-{'gpu' if gpus else 'cpu'}"
            if image != expected:
                raise ClusterConfigError(where, f"{at}.docker", f"image {image!r}, expected {expected!r}")
        if name == head_type:
            continue
        if nt.get("min_workers", 0) != 0:
            raise ClusterConfigError(where, f"{at}.min_workers", "worker types scale from 0")
        if nt.get("max_workers", 0) < 1:
            raise ClusterConfigError(where, f"{at}.max_workers", "at least 1")
        spot = spot or market == "spot"
        on_demand_gpu = on_demand_gpu or (gpus >= 1 and market is None)
    if not on_demand_gpu:
        raise ClusterConfigError(where, "available_node_types", "no on-demand GPU worker type")
    if not spot:
        raise ClusterConfigError(where, "available_node_types", "no spot worker type (InstanceMarketOptions)")
    _check_launcher_commands(filled, where, root)
    return filled


def _check_launcher_commands(cfg: dict, where: str, root: Path) -> None:
    head_start = " ".join(cfg["head_start_ray_commands"])
    for flag in ("--head", "--autoscaling-config=~/ray_bootstrap_config.yaml"):
        if flag not in head_start:
            raise ClusterConfigError(where, "head_start_ray_commands", f"missing {flag}")
    if "--address=$RAY_HEAD_IP:6379" not in " ".join(cfg["worker_start_ray_commands"]):
        raise ClusterConfigError(where, "worker_start_ray_commands", "missing --address=$RAY_HEAD_IP:6379")
    setup = " ".join(cfg["setup_commands"])
    for var, pin in makefile_pins(root).items():
        if pin not in setup:
            raise ClusterConfigError(where, "setup_commands", f"{var} pin {pin!r} (Makefile) not installed")
    if f"-c {CODE_PATH}/constraints.txt -e {CODE_PATH}" not in setup:
        raise ClusterConfigError(where, "setup_commands", "the project is not installed with constraints.txt")
    mounts = cfg.get("file_mounts") or {}
    if (root / mounts.get(CODE_PATH, "<missing>")).resolve() != root.resolve():
        raise ClusterConfigError(where, "file_mounts", f"{CODE_PATH} must be the repository ('.')")
    env = docker_env(cfg)
    check_env_names(env, where)
    if env.get("SUNDAY_HOME") != STATE_PATH or env.get("PYTHONPATH") != CODE_PATH:
        raise ClusterConfigError(where, "docker.run_options", f"SUNDAY_HOME={STATE_PATH} and "
                                                              f"PYTHONPATH={CODE_PATH} expected")
    if f"{STATE_PATH}:{STATE_PATH}" not in " ".join(cfg["docker"].get("run_options", [])):
        raise ClusterConfigError(where, "docker.run_options", f"the state folder {STATE_PATH} is not mounted")


def docker_env(cfg: dict) -> dict[str, str]:
    """``-e NAME=VALUE`` options of the launcher's docker run_options."""
    words = shlex.split(" ".join((cfg.get("docker") or {}).get("run_options", [])))
    env = {}
    for flag, value in zip(words, words[1:]):
        if flag in ("-e", "--env") and "=" in value:
            k, v = value.split("=", 1)
            env[k] = v
    return env


# ---------------------------------------------------------------------------------------- KubeRay: compact schema
def _obj(props: dict, required: Iterable[str] = (), closed: bool = True) -> dict:
    return {"type": "object", "properties": props, "required": list(required), "additionalProperties": not closed}


def _map(value: dict) -> dict:
    return {"type": "object", "additionalProperties": value}


STR, INT, BOOL, NUM = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}, {"type": "number"}
NONNEG = {"type": "integer", "minimum": 0}
OPEN = {"type": "object"}
QUANTITY = {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "number", "minimum": 0},
                      {"type": "string",
                       "pattern": r"^(\d+(\.\d*)?|\.\d+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|e[+-]?\d+)?$"}]}
DNS_NAME = {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63}
RESOURCES = _obj({"requests": _map(QUANTITY), "limits": _map(QUANTITY), "claims": {"type": "array"}})
# Kubernetes core/v1 types: open (many fields), but what the Ray rules read is typed.
CONTAINER = _obj({
    "name": STR, "image": STR, "resources": RESOURCES,
    "env": {"type": "array", "items": _obj({"name": STR, "value": STR, "valueFrom": OPEN}, ["name"])},
    "envFrom": {"type": "array", "items": OPEN},
    "ports": {"type": "array", "items": _obj({"containerPort": INT, "name": STR, "protocol": STR,
                                                "hostPort": INT}, ["containerPort"])},
    "volumeMounts": {"type": "array", "items": _obj({"name": STR, "mountPath": STR}, ["name", "mountPath"],
                                                      closed=False)},
}, ["name", "image"], closed=False)
POD_TEMPLATE = _obj({
    "metadata": OPEN,
    "spec": _obj({"containers": {"type": "array", "items": CONTAINER, "minItems": 1},
                  "volumes": {"type": "array", "items": _obj({"name": STR}, ["name"], closed=False)},
                  "nodeSelector": _map(STR), "tolerations": {"type": "array", "items": OPEN},
                  "securityContext": OPEN, "serviceAccountName": STR}, ["containers"], closed=False),
}, ["spec"])
# KubeRay v1 CRD types (closed: a field KubeRay does not know fails here, as kubectl's strict validation would).
AUTOSCALER_OPTIONS = _obj({
    "resources": RESOURCES, "image": STR, "imagePullPolicy": {"enum": ["Always", "Never", "IfNotPresent"]},
    "securityContext": OPEN, "idleTimeoutSeconds": NONNEG,
    "upscalingMode": {"enum": ["Default", "Aggressive", "Conservative"]}, "version": {"enum": ["v1", "v2"]},
    "env": {"type": "array"}, "envFrom": {"type": "array"}, "volumeMounts": {"type": "array"},
})
HEAD_GROUP = _obj({
    "template": POD_TEMPLATE, "headService": OPEN, "enableIngress": BOOL, "rayStartParams": _map(STR),
    "serviceType": STR, "labels": _map(STR), "resources": _map(STR),
}, ["template", "rayStartParams"])
WORKER_GROUP = _obj({
    "suspend": BOOL, "groupName": DNS_NAME, "replicas": NONNEG, "minReplicas": NONNEG, "maxReplicas": NONNEG,
    "idleTimeoutSeconds": NONNEG, "rayStartParams": _map(STR), "template": POD_TEMPLATE, "scaleStrategy": OPEN,
    "numOfHosts": {"type": "integer", "minimum": 1}, "labels": _map(STR), "resources": _map(STR),
}, ["groupName", "minReplicas", "maxReplicas", "rayStartParams", "template"])
RAY_CLUSTER_SPEC = _obj({
    "suspend": BOOL, "managedBy": STR, "autoscalerOptions": AUTOSCALER_OPTIONS, "headServiceAnnotations": _map(STR),
    "enableInTreeAutoscaling": BOOL, "gcsFaultToleranceOptions": OPEN, "headGroupSpec": HEAD_GROUP,
    "rayVersion": STR, "workerGroupSpecs": {"type": "array", "items": WORKER_GROUP},
}, ["headGroupSpec", "rayVersion"])
RAY_JOB_SPEC = _obj({
    "activeDeadlineSeconds": {"type": "integer", "minimum": 1}, "backoffLimit": NONNEG,
    "rayClusterSpec": RAY_CLUSTER_SPEC, "submitterPodTemplate": POD_TEMPLATE, "metadata": _map(STR),
    "clusterSelector": _map(STR), "submitterConfig": _obj({"backoffLimit": NONNEG}), "managedBy": STR,
    "deletionStrategy": OPEN, "entrypoint": STR, "runtimeEnvYAML": STR, "jobId": STR,
    "submissionMode": {"enum": ["K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode"]},
    "entrypointResources": STR, "entrypointNumCpus": NUM, "entrypointNumGpus": NUM,
    "ttlSecondsAfterFinished": NONNEG, "shutdownAfterJobFinishes": BOOL, "suspend": BOOL,
}, ["entrypoint"])
RAY_SERVICE_SPEC = _obj({
    "rayClusterDeletionDelaySeconds": NONNEG, "serviceUnhealthySecondThreshold": INT,
    "deploymentUnhealthySecondThreshold": INT, "serveService": OPEN,
    "upgradeStrategy": _obj({
        "type": {"enum": ["NewCluster", "NewClusterWithIncrementalUpgrade", "None"]},
        "clusterUpgradeOptions": _obj({"maxSurgePercent": NONNEG, "stepSizePercent": NONNEG,
                                       "intervalSeconds": NONNEG, "gatewayClassName": STR}),
    }),
    "serveConfigV2": STR, "rayClusterConfig": RAY_CLUSTER_SPEC, "excludeHeadPodFromServeSvc": BOOL,
}, ["serveConfigV2", "rayClusterConfig"])
METADATA = _obj({"name": DNS_NAME, "namespace": DNS_NAME, "labels": _map(STR), "annotations": _map(STR)},
                ["name", "namespace"], closed=False)


def _manifest(api: str, kind: str, spec: dict | None, extra: dict | None = None) -> dict:
    props = {"apiVersion": {"const": api}, "kind": {"const": kind}, "metadata": METADATA, **(extra or {})}
    if spec is not None:
        props["spec"] = spec
    return _obj(props, ["apiVersion", "kind", "metadata"] + (["spec"] if spec is not None else []))


SCHEMAS = {
    "RayCluster": _manifest("ray.io/v1", "RayCluster", RAY_CLUSTER_SPEC),
    "RayJob": _manifest("ray.io/v1", "RayJob", RAY_JOB_SPEC),
    "RayService": _manifest("ray.io/v1", "RayService", RAY_SERVICE_SPEC),
    "Namespace": _obj({"apiVersion": {"const": "v1"}, "kind": {"const": "Namespace"},
                       "metadata": _obj({"name": DNS_NAME}, ["name"], closed=False)},
                      ["apiVersion", "kind", "metadata"]),
    "PersistentVolumeClaim": _manifest("v1", "PersistentVolumeClaim", _obj({
        "accessModes": {"type": "array", "items": {"enum": ["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany",
                                                            "ReadWriteOncePod"]}, "minItems": 1},
        "storageClassName": STR, "volumeMode": STR,
        "resources": _obj({"requests": _obj({"storage": QUANTITY}, ["storage"])}, ["requests"]),
    }, ["accessModes", "resources"])),
    "ConfigMap": _manifest("v1", "ConfigMap", None, {"data": _map(STR)}),
    "CronJob": _manifest("batch/v1", "CronJob", _obj({
        "schedule": {"type": "string", "pattern": r"^(@(hourly|daily|weekly|monthly|yearly|annually|midnight)|"
                                                  r"\S+( \S+){4})$"},
        "timeZone": STR, "suspend": BOOL, "startingDeadlineSeconds": NONNEG,
        "concurrencyPolicy": {"enum": ["Allow", "Forbid", "Replace"]},
        "successfulJobsHistoryLimit": NONNEG, "failedJobsHistoryLimit": NONNEG,
        "jobTemplate": _obj({"metadata": OPEN, "spec": _obj({
            "template": POD_TEMPLATE, "backoffLimit": NONNEG, "activeDeadlineSeconds": {"type": "integer",
                                                                                         "minimum": 1},
            "ttlSecondsAfterFinished": NONNEG, "parallelism": NONNEG, "completions": NONNEG,
        }, ["template"])}, ["spec"]),
    }, ["schedule", "jobTemplate"])),
}


def check_schema(doc: dict, where: str) -> None:
    """The document against its kind's compact schema; the error names the field path."""
    import jsonschema

    kind = doc.get("kind") if isinstance(doc, dict) else None
    if kind not in SCHEMAS:
        raise ClusterConfigError(where, "kind", f"{kind!r} is not one of {sorted(SCHEMAS)}")
    errors = sorted(jsonschema.Draft202012Validator(SCHEMAS[kind]).iter_errors(doc), key=lambda e: list(e.path))
    if errors:
        e = errors[0]
        path = ".".join(str(p) for p in e.absolute_path) or kind
        raise ClusterConfigError(where, path, e.message)


# -------------------------------------------------------------------------------------------- KubeRay: Ray's rules
def parse_quantity(q: Any) -> float:
    """A Kubernetes quantity as a number (``500m`` -> 0.5, ``8Gi`` -> 8 * 2**30)."""
    if isinstance(q, (int, float)):
        return float(q)
    m = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)([a-zA-Z]*)", str(q))
    if not m:
        raise ValueError(f"not a quantity: {q!r}")
    units = {"": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30,
             "Ti": 2**40}
    return float(m.group(1)) * units[m.group(2)]


def cluster_spec_of(doc: dict) -> dict:
    return {"RayCluster": lambda d: d["spec"], "RayJob": lambda d: d["spec"]["rayClusterSpec"],
            "RayService": lambda d: d["spec"]["rayClusterConfig"]}[doc["kind"]](doc)


def groups_of(spec: dict) -> list[tuple[str, dict, bool]]:
    """(name, group spec, is_head) of every group of a RayCluster spec."""
    return [("head", spec["headGroupSpec"], True)] + [(g["groupName"], g, False) for g in
                                                     spec.get("workerGroupSpecs", [])]


def check_ray_cluster_spec(spec: dict, where: str, field: str, *, ray_version: str, version: str) -> dict:
    """Project rules on one RayCluster spec, then Ray's own translation to an autoscaling config (returned)."""
    if spec.get("rayVersion") != ray_version:
        raise ClusterConfigError(where, f"{field}.rayVersion", f"{spec.get('rayVersion')!r}, pinned {ray_version}")
    if spec.get("enableInTreeAutoscaling") is not True:
        raise ClusterConfigError(where, f"{field}.enableInTreeAutoscaling", "autoscaling must be on")
    if spec["headGroupSpec"]["rayStartParams"].get("num-cpus") != "0":
        raise ClusterConfigError(where, f"{field}.headGroupSpec.rayStartParams.num-cpus",
                                 'the head runs no Ray work: "0"')
    names = [g["groupName"] for g in spec.get("workerGroupSpecs", [])]
    if len(set(names)) != len(names):
        raise ClusterConfigError(where, f"{field}.workerGroupSpecs", f"duplicate group names {names}")
    for name, g, is_head in groups_of(spec):
        at = f"{field}.headGroupSpec" if is_head else f"{field}.workerGroupSpecs[{name}]"
        if not is_head:
            lo, hi = g["minReplicas"], g["maxReplicas"]
            if not (1 <= hi and lo <= g.get("replicas", lo) <= hi):
                raise ClusterConfigError(where, at, f"replicas must satisfy minReplicas <= replicas <= "
                                                    f"maxReplicas, maxReplicas >= 1 (got {lo}, "
                                                    f"{g.get('replicas')}, {hi})")
        _check_pod(g["template"]["spec"], where, f"{at}.template.spec", is_head=is_head, ray_version=ray_version,
                   version=version)
    return derived_autoscaling_config(spec, where, field)


def _check_pod(pod: dict, where: str, at: str, *, is_head: bool, ray_version: str, version: str) -> None:
    c = pod["containers"][0]  # KubeRay: the Ray container is the first one
    cat = f"{at}.containers[{c['name']}]"
    res = c.get("resources") or {}
    req, lim = res.get("requests") or {}, res.get("limits") or {}
    for key in ("cpu", "memory"):
        if key not in req or key not in lim:
            raise ClusterConfigError(where, f"{cat}.resources", f"{key} requests and limits are both needed "
                                                                "(Ray sizes itself from them)")
    try:
        quantities = {f"{k}.{side}": parse_quantity(r[k]) for k in ("cpu", "memory")
                      for side, r in (("requests", req), ("limits", lim))}
    except ValueError as e:
        raise ClusterConfigError(where, f"{cat}.resources", str(e)) from None
    if quantities["memory.requests"] != quantities["memory.limits"]:
        raise ClusterConfigError(where, f"{cat}.resources.memory", "requests must equal limits (Ray's object "
                                                                   "store and OOM killer read the limit)")
    if quantities["cpu.requests"] > quantities["cpu.limits"]:
        raise ClusterConfigError(where, f"{cat}.resources.cpu", "requests above limits")
    gpus = lim.get(GPU_KEY)
    if GPU_KEY in req and req[GPU_KEY] != gpus:
        raise ClusterConfigError(where, f"{cat}.resources.{GPU_KEY}", "requests must equal limits")
    if gpus is not None and (is_head or parse_quantity(gpus) < 1):
        raise ClusterConfigError(where, f"{cat}.resources.{GPU_KEY}", "a worker group's limit of >= 1 GPU, "
                                                                      "never on the head")
    m = IMAGE_RE.match(c["image"])
    flavor = "gpu" if gpus else "cpu"
    if m and m["flavor"] == "gpu" and not gpus:
        raise ClusterConfigError(where, f"{cat}.resources.limits", f"the GPU image without a {GPU_KEY} limit: "
                                                                   "Kubernetes would give the pod no GPU")
    if not m or m["ray"] != ray_version or m["version"] != version or m["flavor"] != flavor:
        raise ClusterConfigError(where, f"{cat}.image", f"{c['image']!r}: expected sunday-ml:{version}-ray"
                                                        f"{ray_version}-{flavor} (cluster/image/Dockerfile)")
    if gpus and not any(t.get("key") == GPU_KEY for t in pod.get("tolerations", [])):
        raise ClusterConfigError(where, f"{at}.tolerations", f"a GPU pod must tolerate the {GPU_KEY} taint")
    mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    claim = (volumes.get(mounts.get(STATE_PATH, "")) or {}).get("persistentVolumeClaim", {}).get("claimName")
    if not claim:
        raise ClusterConfigError(where, f"{cat}.volumeMounts", f"the state folder {STATE_PATH} must be a "
                                                               "PersistentVolumeClaim mount")
    check_env_names([e["name"] for e in c.get("env", [])], f"{where} ({cat}.env)")


def derived_autoscaling_config(spec: dict, where: str = "", field: str = "spec") -> dict:
    """What the KubeRay autoscaler sidecar derives from this spec (Ray's own code, Ray's own validation), with
    the GPU / CPU split checked against the pods' GPU limits."""
    from ray.autoscaler._private.kuberay.autoscaling_config import _derive_autoscaling_config_from_ray_cr

    try:
        cfg = _derive_autoscaling_config_from_ray_cr({"metadata": {"name": "check", "namespace": "check"},
                                                       "spec": copy.deepcopy(spec)})
    except Exception as e:
        raise ClusterConfigError(where, field, f"Ray's autoscaler cannot read it: {e}") from None
    for name, g, is_head in groups_of(spec):
        node = cfg["available_node_types"]["headgroup" if is_head else name]
        lim = g["template"]["spec"]["containers"][0]["resources"]["limits"]
        if is_head and node["resources"].get("CPU") != 0:
            raise ClusterConfigError(where, f"{field}.headGroupSpec", "Ray sees CPUs on the head")
        if node["resources"].get("GPU", 0) != int(lim.get(GPU_KEY, 0)):
            raise ClusterConfigError(where, f"{field}.workerGroupSpecs[{name}]", "Ray's GPU count differs from "
                                                                                 "the pod's GPU limit")
    return cfg


def pod_refs(spec: dict) -> tuple[set[str], set[str]]:
    """(ConfigMap names in envFrom, PersistentVolumeClaim names) used by a RayCluster spec's pods."""
    maps: set[str] = set()
    claims: set[str] = set()
    for _, g, _ in groups_of(spec):
        pod = g["template"]["spec"]
        for c in pod["containers"]:
            maps.update(e["configMapRef"]["name"] for e in c.get("envFrom", []) if "configMapRef" in e)
        claims.update(v["persistentVolumeClaim"]["claimName"] for v in pod.get("volumes", [])
                      if "persistentVolumeClaim" in v)
    return maps, claims


# ----------------------------------------------------------------------------------------------------------- Serve
def serve_config_of(rayservice: dict, where: str = "rayservice.yaml") -> dict:
    try:
        cfg = yaml.safe_load(rayservice["spec"]["serveConfigV2"])
    except yaml.YAMLError as e:
        raise ClusterConfigError(where, "spec.serveConfigV2", f"not YAML: {e}") from None
    if not isinstance(cfg, dict):
        raise ClusterConfigError(where, "spec.serveConfigV2", "not a mapping")
    return cfg


def validate_serve_config(cfg: dict, where: str, root: Path = REPO_ROOT) -> None:
    """Ray Serve's own schema, then each application against its code: the import path names a builder function
    of a module of this repository, each configured deployment is a ``@serve.deployment`` class of that module,
    and each ``args`` key is a field of the args model the builder reads."""
    from ray.serve.schema import ServeDeploySchema

    try:
        ServeDeploySchema.model_validate(cfg)
    except Exception as e:
        raise ClusterConfigError(where, "serveConfigV2", f"Ray Serve's schema: {e}") from None
    for app in cfg["applications"]:
        at = f"applications[{app.get('name')}]"
        module, _, attr = app["import_path"].partition(":")
        path = root / (module.replace(".", "/") + ".py")
        if not attr or not path.is_file():
            raise ClusterConfigError(where, f"{at}.import_path", f"{app['import_path']!r}: no module file {path}")
        tree = ast.parse(path.read_text())
        funcs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
        if attr not in funcs:
            raise ClusterConfigError(where, f"{at}.import_path", f"{module} has no function {attr}")
        deployments = _deployment_names(tree)
        for d in app.get("deployments", []):
            if d["name"] not in deployments:
                raise ClusterConfigError(where, f"{at}.deployments[{d['name']}]",
                                         f"no @serve.deployment class {d['name']} in {module} "
                                         f"({', '.join(sorted(deployments))})")
        fields = _args_fields(tree, funcs[attr])
        unknown = set(app.get("args") or {}) - fields if fields is not None else set()
        if fields is not None and unknown:
            raise ClusterConfigError(where, f"{at}.args", f"{sorted(unknown)} are not fields of the app's args "
                                                          f"({', '.join(sorted(fields))})")
        check_env((app.get("runtime_env") or {}).get("env_vars") or {}, where, f"{at}.runtime_env.env_vars")


def _deployment_names(tree: ast.Module) -> set[str]:
    """Names of the module's ``@serve.deployment`` classes (the class name, or the decorator's ``name=``)."""
    names: set[str] = set()
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        for d in node.decorator_list:
            if "serve.deployment" in ast.unparse(d):
                name = {k.arg: k.value for k in getattr(d, "keywords", [])}.get("name")
                names.add(str(name.value) if isinstance(name, ast.Constant) else node.name)
    return names


def _args_fields(tree: ast.Module, func: ast.FunctionDef) -> set[str] | None:
    """Annotated fields of the module's class that the builder calls (its args model), if there is one."""
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    for node in ast.walk(func):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in classes:
            return {s.target.id for s in classes[node.func.id].body
                    if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)}
    return None


def serve_config_drift(local: Any, embedded: Any, path: str = "") -> list[str]:
    """Differences between two Serve configs (applications and deployments matched by name)."""
    def keyed(items):
        if isinstance(items, list) and all(isinstance(i, dict) and "name" in i for i in items):
            return {i["name"]: i for i in items}
        return None

    if isinstance(local, list) and keyed(local) is not None and keyed(embedded) is not None:
        local, embedded = keyed(local), keyed(embedded)
    if isinstance(local, dict) and isinstance(embedded, dict):
        out = []
        for k in sorted(set(local) | set(embedded), key=str):
            sub = f"{path}.{k}" if path else str(k)
            if k not in embedded:
                out.append(f"{sub}: only in serve_config.yaml")
            elif k not in local:
                out.append(f"{sub}: only in the RayService")
            else:
                out.extend(serve_config_drift(local[k], embedded[k], sub))
        return out
    return [] if local == embedded else [f"{path}: {local!r} (serve_config.yaml) != {embedded!r} (RayService)"]


def serve_min_cpus(cfg: dict) -> float:
    """CPUs the configured deployments hold at their minimum replica counts (``num_replicas`` or the autoscaling
    ``min_replicas``; deployments left out of the config are not counted)."""
    total = 0.0
    for app in cfg.get("applications", []):
        for d in app.get("deployments", []):
            replicas = d.get("num_replicas", (d.get("autoscaling_config") or {}).get("min_replicas", 1))
            total += float((d.get("ray_actor_options") or {}).get("num_cpus", 1)) * int(replicas)
    return total


def serve_config_body(serve_config: Path = SERVE_CONFIG) -> str:
    """serve_config.yaml without its leading comment block (the part the RayService embeds)."""
    lines = serve_config.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#"))
    return "\n".join(lines[start:]).rstrip() + "\n"


def sync_rayservice(rayservice: Path = KUBERAY_DIR / "rayservice.yaml", serve_config: Path = SERVE_CONFIG) -> bool:
    """Rewrite the RayService's ``serveConfigV2`` block with serve_config.yaml's body; True when it changed."""
    lines = rayservice.read_text().splitlines()
    key = next((i for i, line in enumerate(lines) if re.match(r"^\s*serveConfigV2:\s*\|", line)), None)
    if key is None:
        raise ClusterConfigError(str(rayservice), "spec.serveConfigV2", "no `serveConfigV2: |` block")
    indent = len(lines[key]) - len(lines[key].lstrip())
    end = key + 1
    while end < len(lines) and (not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip()) > indent):
        end += 1
    while end > key + 1 and not lines[end - 1].strip():  # blank lines after the block stay outside it
        end -= 1
    pad = " " * (indent + 2)
    body = [pad + line if line.strip() else "" for line in serve_config_body(serve_config).splitlines()]
    new = lines[:key + 1] + body + lines[end:]
    if new == lines:
        return False
    rayservice.write_text("\n".join(new) + "\n")
    return True


# ----------------------------------------------------------------------------------------------------- runtime envs
def runtime_env_from_file(path: Path, root: Path = REPO_ROOT) -> dict:
    """The file as ``ray job submit --runtime-env FILE`` reads it, validated by ``RuntimeEnv``; a relative
    ``working_dir`` is taken from ``root`` (the operator submits from the repository root)."""
    from ray.dashboard.modules.dashboard_sdk import parse_runtime_env_args

    env = parse_runtime_env_args(runtime_env=str(path))
    wd = env.get("working_dir") if isinstance(env, dict) else None
    if isinstance(wd, str) and "://" not in wd and not Path(wd).is_absolute():
        validate_runtime_env({**env, "working_dir": str(root / wd)}, str(path))
        return env
    return validate_runtime_env(env, str(path))


def validate_runtime_env(env: dict, where: str) -> dict:
    from ray.runtime_env import RuntimeEnv

    if not isinstance(env, dict):
        raise ClusterConfigError(where, "runtime_env", "not a mapping")
    unknown = set(env) - RuntimeEnv.known_fields
    if unknown:
        raise ClusterConfigError(where, ",".join(sorted(unknown)), f"not a runtime_env field "
                                                                   f"({', '.join(sorted(RuntimeEnv.known_fields))})")
    try:
        RuntimeEnv(**env)
    except (TypeError, ValueError) as e:
        raise ClusterConfigError(where, "runtime_env", str(e)) from None
    check_env(env.get("env_vars") or {}, where, "env_vars")
    return env


def check_rayjob_runtime_env(doc: dict, where: str, root: Path = REPO_ROOT) -> dict:
    """The RayJob's ``runtimeEnvYAML``: its ``working_dir`` is this repository inside the image (``CODE_PATH``), so
    it is validated, and its upload sized, on this repository less what the image leaves out."""
    at = f"{where} (spec.runtimeEnvYAML)"
    try:
        env = yaml.safe_load(doc["spec"].get("runtimeEnvYAML") or "{}") or {}
    except yaml.YAMLError as e:
        raise ClusterConfigError(at, "runtimeEnvYAML", f"not YAML: {e}") from None
    if not isinstance(env, dict) or env.get("working_dir") != CODE_PATH:
        raise ClusterConfigError(at, "working_dir", f"{CODE_PATH} expected (the repository in the image)")
    validate_runtime_env({**env, "working_dir": str(root)}, at)
    image_ignores = root / "cluster" / "image" / "Dockerfile.dockerignore"
    ignored = [line.strip() for line in image_ignores.read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    size = working_dir_bytes(root, list(env.get("excludes") or []) + ignored)
    if size > WORKING_DIR_BUDGET:
        raise ClusterConfigError(at, "excludes", f"the working_dir upload would be {size / 2**20:.0f} MiB")
    return env


def rayjob_entrypoint_script(doc: dict, where: str) -> str:
    """The script a RayJob's entrypoint runs (``python train_jobs/X.py ...``), relative to the repository."""
    words = shlex.split(doc["spec"]["entrypoint"])
    if len(words) < 2 or words[0] != "python" or not re.fullmatch(r"train_jobs/\w+\.py", words[1]):
        raise ClusterConfigError(where, "spec.entrypoint", f"{doc['spec']['entrypoint']!r}: expected "
                                                           "`python train_jobs/<job>.py [flags]`")
    return words[1]


def working_dir_bytes(root: Path, excludes: list[str]) -> int:
    """Bytes of the files Ray would pack for ``working_dir: root`` (its own walk: excludes, .gitignore files and
    its default excludes)."""
    from ray._private import ray_constants
    from ray._private.runtime_env.packaging import _dir_travel, _get_excludes

    total = 0

    def add(p: Path) -> None:
        nonlocal total
        if p.is_file():
            total += p.stat().st_size

    patterns = list(excludes) + ray_constants.get_runtime_env_default_excludes()
    _dir_travel(root.resolve(), [_get_excludes(root.resolve(), patterns)], add, include_gitignore=True)
    return total


def head_services(shared: dict[str, dict[str, dict]]) -> dict[str, str]:
    """``{namespace/service: owner}`` of the services KubeRay makes: ``<name>-head-svc`` per RayCluster and per
    RayService (its stable head service), ``<name>-serve-svc`` per RayService; two owners of one name collide."""
    out: dict[str, str] = {}
    for kind, suffixes in (("RayCluster", ("head-svc",)), ("RayService", ("head-svc", "serve-svc"))):
        for name, doc in shared.get(kind, {}).items():
            for suffix in suffixes:
                key = f"{doc['metadata']['namespace']}/{name}-{suffix}"
                if key in out:
                    raise ClusterConfigError(f"{kind} {name}", "metadata.name", f"KubeRay would create service "
                                                                                 f"{key}, which {out[key]} owns")
                out[key] = f"{kind} {name}"
    return out


def _service_url(url: str, where: str, field: str, services: dict[str, str], kind: str) -> str:
    """The owner of ``http://<svc>.<ns>.svc.cluster.local:8265`` among ``services``, which must be a ``kind``."""
    m = re.fullmatch(r"http://([a-z0-9-]+)\.([a-z0-9-]+)\.svc(\.cluster\.local)?:8265/?", url or "")
    if not m:
        raise ClusterConfigError(where, field, f"{url!r}: expected http://<service>.<namespace>.svc.cluster.local:8265")
    owner = services.get(f"{m[2]}/{m[1]}")
    if owner is None or not owner.startswith(kind + " "):
        raise ClusterConfigError(where, field, f"{url!r}: no {kind} in cluster/kuberay makes service {m[2]}/{m[1]}"
                                               f" ({owner or 'nothing'} does)")
    return owner


def check_cronjob(doc: dict, where: str, services: dict[str, str], root: Path = REPO_ROOT, *, ray_version: str,
                  version: str) -> dict:
    """A CronJob that submits a job: its container runs ``ray job submit --address <a RayCluster's head service>
    --runtime-env-json <RuntimeEnv> -- python train_jobs/<job>.py``; a ``SUNDAY_SERVE_DASHBOARD`` names a
    RayService's head service; the pod is sized like the Ray pods (the image, requests = limits for memory)."""
    import json

    at = "spec.jobTemplate.spec.template.spec"
    pod = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    if pod.get("restartPolicy") not in ("Never", "OnFailure"):
        raise ClusterConfigError(where, f"{at}.restartPolicy", "Never or OnFailure (a Job's pod)")
    c = pod["containers"][0]
    fake = {**pod, "volumes": [{"name": "s", "persistentVolumeClaim": {"claimName": "-"}}],
            "containers": [{**c, "volumeMounts": [{"name": "s", "mountPath": STATE_PATH}]}]}
    _check_pod(fake, where, at, is_head=False, ray_version=ray_version, version=version)  # image and resources
    words = list(c.get("command") or []) + list(c.get("args") or [])
    cat = f"{at}.containers[{c['name']}].command"
    if words[:3] != ["ray", "job", "submit"] or "--" not in words:
        raise ClusterConfigError(where, cat, "expected `ray job submit --address ... -- python train_jobs/<job>.py`")
    cut = words.index("--")
    opts, entry = words[3:cut], words[cut + 1:]
    value = {o: opts[i + 1] for i, o in enumerate(opts[:-1]) if o.startswith("--")}
    _service_url(value.get("--address", ""), where, f"{cat} --address", services, "RayCluster")
    try:
        env = json.loads(value.get("--runtime-env-json", "{}"))
    except ValueError as e:
        raise ClusterConfigError(where, f"{cat} --runtime-env-json", f"not JSON: {e}") from None
    if env.get("working_dir") != CODE_PATH:
        raise ClusterConfigError(where, f"{cat} --runtime-env-json", f"working_dir {CODE_PATH} expected (the "
                                                                      "repository in the image)")
    validate_runtime_env({**env, "working_dir": str(root)}, f"{where} ({cat} --runtime-env-json)")
    dash = (env.get("env_vars") or {}).get("SUNDAY_SERVE_DASHBOARD")
    if dash is not None:
        _service_url(dash, where, f"{cat} SUNDAY_SERVE_DASHBOARD", services, "RayService")
    if len(entry) < 2 or entry[0] != "python" or not re.fullmatch(r"train_jobs/\w+\.py", entry[1]):
        raise ClusterConfigError(where, cat, f"after --: expected `python train_jobs/<job>.py`, got {entry[:2]}")
    if not (root / entry[1]).is_file():
        raise ClusterConfigError(where, cat, f"{entry[1]} does not exist")
    if entry[1] == "train_jobs/monitor.py":  # its flags parse (a typo fails here, not at 3 am)
        import importlib.util

        spec = importlib.util.spec_from_file_location("_monitor_job", root / entry[1])
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # type: ignore[union-attr]
        try:
            module.parse(entry[2:])
        except SystemExit:
            raise ClusterConfigError(where, cat, f"train_jobs/monitor.py rejects {entry[2:]}") from None
    return env


# ------------------------------------------------------------------------------------------------------------ image
def check_image(root: Path = REPO_ROOT) -> dict[str, str]:
    """cluster/image/Dockerfile builds on the pinned Ray and Python and installs the Makefile's pins."""
    where = "cluster/image/Dockerfile"
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", (root / where).read_text(), re.M))
    expected = {"RAY_VERSION": pinned_ray_version(root), "PYTHON_TAG": python_tag(root), **makefile_pins(root)}
    for key, value in expected.items():
        if args.get(key) != value:
            raise ClusterConfigError(where, f"ARG {key}", f"{args.get(key)!r}, expected {value!r}")
    return args


# ------------------------------------------------------------------------------------------------------- everything
def check_all(root: Path = REPO_ROOT) -> list[str]:
    """Every check on every file of ``cluster/``; returns one line per file checked (raises on the first error)."""
    done = []
    ray_version, version = pinned_ray_version(root), project_version(root)
    cluster = root / "cluster"
    aws = cluster / "aws.yaml"
    validate_launcher(load_documents(aws)[0], str(aws.relative_to(root)), root)
    check_env_names(env_names_in_text(aws.read_text()), str(aws.relative_to(root)))
    done.append(f"{aws.relative_to(root)}: Ray's launcher schema and project rules")
    check_image(root)
    done.append("cluster/image/Dockerfile: Ray, Python and Makefile pins")
    shared: dict[str, dict[str, dict]] = {}
    for path in sorted((cluster / "kuberay").glob("*.yaml")):
        where = str(path.relative_to(root))
        check_env_names(env_names_in_text(path.read_text()), where)
        for doc in load_documents(path):
            check_schema(doc, where)
            kind = doc["kind"]
            shared.setdefault(kind, {})[doc["metadata"]["name"]] = doc
            if kind == "ConfigMap":
                check_env(doc.get("data") or {}, where, "data")
            if kind in ("RayCluster", "RayJob", "RayService"):
                field = {"RayCluster": "spec", "RayJob": "spec.rayClusterSpec",
                         "RayService": "spec.rayClusterConfig"}[kind]
                check_ray_cluster_spec(cluster_spec_of(doc), where, field, ray_version=ray_version, version=version)
            if kind == "RayJob":
                check_rayjob_runtime_env(doc, where, root)
                script = rayjob_entrypoint_script(doc, where)
                if not (root / script).is_file():
                    done.append(f"warning: {where}: the entrypoint script {script} does not exist (yet)")
            if kind == "RayService":
                embedded = serve_config_of(doc, where)
                validate_serve_config(embedded, where, root)
                drift = serve_config_drift(yaml.safe_load((root / "serve_apps/serve_config.yaml").read_text()),
                                           embedded)
                if drift:
                    raise ClusterConfigError(where, "spec.serveConfigV2", "drifted from serve_apps/serve_config.yaml"
                                             " (python -m sunday.cluster_configs sync-serve): " + "; ".join(drift))
        kinds = ", ".join(d["kind"] for d in load_documents(path))
        done.append(f"{where}: {kinds}: schema and project rules")
    services = head_services(shared)
    for name, doc in shared.get("CronJob", {}).items():
        check_cronjob(doc, f"CronJob {name}", services, root, ray_version=ray_version, version=version)
        maps = {e["configMapRef"]["name"] for c in doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
                for e in c.get("envFrom", []) if "configMapRef" in e}
        if maps - set(shared.get("ConfigMap", {})):
            raise ClusterConfigError(f"CronJob {name}", "envFrom", f"{sorted(maps)} are not defined in cluster/kuberay")
    for kind in ("RayCluster", "RayJob", "RayService"):
        for name, doc in shared.get(kind, {}).items():
            maps, claims = pod_refs(cluster_spec_of(doc))
            missing = (maps - set(shared.get("ConfigMap", {}))) | (claims - set(shared.get("PersistentVolumeClaim",
                                                                                             {})))
            if missing:
                raise ClusterConfigError(f"{kind} {name}", "volumes/envFrom", f"{sorted(missing)} are not defined "
                                                                              "in cluster/kuberay")
    for path in sorted((cluster / "runtime_env").glob("*.yaml")):
        env = runtime_env_from_file(path, root)
        check_env_names(env_names_in_text(path.read_text()), str(path.relative_to(root)))
        if env.get("working_dir") == ".":
            size = working_dir_bytes(root, env.get("excludes") or [])
            if size > WORKING_DIR_BUDGET:
                raise ClusterConfigError(str(path.relative_to(root)), "excludes", f"the working_dir upload would "
                                                                                  f"be {size / 2**20:.0f} MiB")
        done.append(f"{path.relative_to(root)}: RuntimeEnv and upload size")
    return done


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["sync-serve"]:
        changed = sync_rayservice()
        print("cluster/kuberay/rayservice.yaml " + ("updated from" if changed else "already matches") +
              " serve_apps/serve_config.yaml")
        return 0
    if args in ([], ["check"]):
        try:
            for line in check_all():
                print(line if line.startswith("warning") else "ok  " + line)
        except SundayError as e:
            print(f"error: {e}", file=sys.stderr)
            return e.exit_code
        return 0
    print("usage: python -m sunday.cluster_configs [check | sync-serve]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
