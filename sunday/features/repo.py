"""The Feast repository, built in code from :mod:`sunday.features.groups`.

Objects (all names derive from the group names, so nothing here is hand-maintained):

=====================  ===========================================================================
Feast object           name
=====================  ===========================================================================
Entity                 ``user`` / ``task`` / ``project`` / ``team`` (join keys ``user_id``, ...)
FileSource             ``<group>_source``: the folder of the group's offline Parquet files
PushSource             ``<group>_push``: what the streaming consumer pushes fresh rows to
FeatureView            ``<group>`` (source: the push source, so it accepts pushes; ttl from the group)
FeatureService         one per :data:`~sunday.features.groups.SERVICES` entry (``assignment``, ...)
=====================  ===========================================================================

Configuration (:func:`feast_config`): registry ``<feature_repo>/registry.db``; online store SQLite at
``<feature_repo>/online.db``, or Redis when ``SUNDAY_REDIS_URL`` is set; offline store Feast's ``file`` (Dask)
store (default) or the contrib Ray store (``SUNDAY_FEAST_OFFLINE=ray``; why ``file`` is the default:
:mod:`sunday.features.training`). ``<feature_repo>/feature_store.yaml`` mirrors the configuration for ``feast``
CLI users; it is generated on every :func:`get_store` / :func:`apply` and never read by this code.

The FileSources point at one version folder of the offline Parquet; after the pipeline writes a new version,
call :func:`apply` again with the new folders (nothing else changes).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Mapping
from urllib.parse import unquote, urlsplit

from sunday.errors import SundayError
from sunday.features.groups import GROUPS, SERVICES, TIMESTAMP, FeatureGroup

if TYPE_CHECKING:  # feast is imported lazily: importing it costs ~1 s
    from feast import FeatureStore, RepoConfig

    from sunday.settings import Settings

PROJECT = "sunday"
OFFLINE_ENV = "SUNDAY_FEAST_OFFLINE"
OFFLINE_BACKENDS = ("ray", "file")
DEFAULT_OFFLINE = "file"
YAML_NAME = "feature_store.yaml"
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


# -- names --------------------------------------------------------------------------------------------------

def source_name(group: str) -> str:
    return f"{group}_source"


def push_source_name(group: str) -> str:
    return f"{group}_push"


def entity_join_keys() -> dict[str, str]:
    """entity name -> join key, from the groups (one entity may serve several groups)."""
    keys: dict[str, str] = {}
    for g in GROUPS.values():
        if keys.setdefault(g.entity, g.join_key) != g.join_key:
            raise SundayError(f"entity {g.entity!r} has two join keys: {keys[g.entity]!r} and {g.join_key!r}")
    return keys


def group(name: str) -> FeatureGroup:
    if name not in GROUPS:
        from sunday.errors import UnknownNameError

        raise UnknownNameError("feature group", name, list(GROUPS))
    return GROUPS[name]


def service_groups(name: str) -> tuple[str, ...]:
    if name not in SERVICES:
        from sunday.errors import UnknownNameError

        raise UnknownNameError("feature service", name, list(SERVICES))
    return SERVICES[name]


# -- configuration ------------------------------------------------------------------------------------------

def offline_backend() -> str:
    """``SUNDAY_FEAST_OFFLINE`` (``file`` | ``ray``), default ``file`` (see :mod:`sunday.features.training`)."""
    value = os.environ.get(OFFLINE_ENV, "").strip().lower() or DEFAULT_OFFLINE
    if value not in OFFLINE_BACKENDS:
        raise SundayError(f"{OFFLINE_ENV} must be one of {', '.join(OFFLINE_BACKENDS)}, got {value!r}")
    return value


def redis_connection_string(url: str) -> str:
    """``redis://[user:password@]host[:port][/db]`` (or ``rediss://``) -> Feast's ``host:port,db=N,...``.

    A string already in Feast's format (no scheme) is returned as it is.
    """
    url = url.strip()
    if "://" not in url:
        return url
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise SundayError(f"SUNDAY_REDIS_URL must start with redis:// or rediss://, got {url!r}")
    try:
        port = parts.port or 6379
    except ValueError:
        raise SundayError(f"SUNDAY_REDIS_URL has a bad port: {url!r}") from None
    host = parts.hostname or "localhost"
    out = [f"{host}:{port}"]
    db = parts.path.strip("/")
    if db:
        if not db.isdigit():
            raise SundayError(f"SUNDAY_REDIS_URL database must be a number, got {db!r} in {url!r}")
        out.append(f"db={int(db)}")
    if parts.username:
        out.append(f"username={unquote(parts.username)}")
    if parts.password:
        out.append(f"password={unquote(parts.password)}")
    if parts.scheme == "rediss":
        out.append("ssl=true")
    return ",".join(out)


def config_dict(settings: "Settings", offline: str | None = None) -> dict:
    """The repository configuration as plain data (what ``feature_store.yaml`` holds)."""
    repo = Path(settings.feature_repo_dir)
    if settings.redis_url:
        online = {"type": "redis", "connection_string": redis_connection_string(settings.redis_url)}
    else:
        online = {"type": "sqlite", "path": str(repo / "online.db")}
    offline = offline or offline_backend()
    if offline == "ray":
        offline_store = {"type": "ray", "storage_path": str(repo / "ray_storage")}
        if settings.ray_address:
            offline_store["ray_address"] = settings.ray_address
    elif offline == "file":
        offline_store = {"type": "file"}
    else:
        raise SundayError(f"offline store must be one of {', '.join(OFFLINE_BACKENDS)}, got {offline!r}")
    return {
        "project": PROJECT,
        "provider": "local",
        "registry": {"registry_type": "file", "path": str(repo / "registry.db"), "cache_ttl_seconds": 60},
        "online_store": online,
        "offline_store": offline_store,
        "entity_key_serialization_version": 3,
    }


def feast_config(settings: "Settings | None" = None, offline: str | None = None) -> "RepoConfig":
    """The Feast ``RepoConfig`` for these settings (built in code; see :func:`config_dict`)."""
    from feast import RepoConfig

    settings = _settings(settings)
    d = config_dict(settings, offline)
    return RepoConfig(repo_path=Path(settings.feature_repo_dir), **d)


def write_yaml(settings: "Settings", offline: str | None = None) -> Path:
    """Write ``<feature_repo>/feature_store.yaml`` (generated; a Redis password is written as
    ``${SUNDAY_REDIS_PASSWORD}``, which Feast expands from the environment when it reads the file)."""
    import yaml

    d = config_dict(settings, offline)
    online = d["online_store"]
    if online["type"] == "redis" and "password=" in online["connection_string"]:
        online["connection_string"] = ",".join(
            "password=${SUNDAY_REDIS_PASSWORD}" if p.startswith("password=") else p
            for p in online["connection_string"].split(","))
    repo = Path(settings.feature_repo_dir)
    repo.mkdir(parents=True, exist_ok=True)
    text = ("# GENERATED by sunday.features.repo from the settings -- do not edit; it is rewritten on every use.\n"
            "# The repository's objects are defined in code (sunday/features/groups.py) and registered by\n"
            "# sunday.features.repo.apply. Inspect with `feast feature-views list`, `feast feature-services list`...;\n"
            "# do not run `feast apply` / `feast teardown` here (this folder holds no definitions).\n"
            + yaml.safe_dump(d, sort_keys=False))
    path = repo / YAML_NAME
    if not path.exists() or path.read_text() != text:
        tmp = repo / f".{YAML_NAME}.{os.getpid()}"
        tmp.write_text(text)
        os.replace(tmp, path)
    return path


def _settings(settings: "Settings | None") -> "Settings":
    if settings is None:
        from sunday.settings import get_settings

        settings = get_settings()
    return settings


def get_store(settings: "Settings | None" = None, offline: str | None = None) -> "FeatureStore":
    """A ``FeatureStore`` on the repository (create one and keep it: construction reads the registry)."""
    from feast import FeatureStore

    settings = _settings(settings)
    Path(settings.feature_repo_dir).mkdir(parents=True, exist_ok=True)
    write_yaml(settings, offline)
    return FeatureStore(config=feast_config(settings, offline))


# -- objects ------------------------------------------------------------------------------------------------

def feast_type(dtype: str):
    from feast.types import Array, Float32, Float64, Int64, String

    types = {"int": Int64, "float": Float64, "string": String, "float_list": Array(Float32),
             "string_list": Array(String)}
    if dtype not in types:
        raise SundayError(f"no Feast type for feature dtype {dtype!r}")
    return types[dtype]


def empty_offline_path(settings: "Settings", name: str) -> Path:
    """A folder with one empty Parquet file in the group's schema (used until the pipeline has written it)."""
    import pyarrow.parquet as pq

    folder = Path(settings.feature_repo_dir) / "empty" / name
    file = folder / "empty.parquet"
    if not file.exists():
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(GROUPS[name].arrow_schema().empty_table(), file)
    return folder


def default_offline_paths(settings: "Settings") -> dict[str, Path]:
    """The pipeline's current folder for each group, or an empty placeholder where it has written none."""
    try:
        from sunday.features.pipeline import offline_path
    except ImportError:
        offline_path = None
    out = {}
    for name in GROUPS:
        path = None
        if offline_path is not None:
            try:
                path = Path(offline_path(settings, name))
            except SundayError:
                path = None
        if path is None or not path.exists() or not any(path.rglob("*.parquet")):
            path = empty_offline_path(settings, name)
        out[name] = path
    return out


def feast_objects(offline_paths: Mapping[str, Path]) -> list:
    """Entities, sources, push sources, feature views and feature services for these offline folders."""
    from feast import Entity, FeatureService, FeatureView, Field, FileSource, PushSource, ValueType

    missing = [g for g in GROUPS if g not in offline_paths]
    if missing:
        raise SundayError(f"no offline path for feature group(s) {', '.join(missing)}")
    unknown = [g for g in offline_paths if g not in GROUPS]
    if unknown:
        raise SundayError(f"unknown feature group(s) {', '.join(unknown)}; known: {', '.join(GROUPS)}")

    entities = {name: Entity(name=name, join_keys=[key], value_type=ValueType.STRING,
                             description=f"a {name} (join key {key})")
                for name, key in entity_join_keys().items()}
    objects: list = list(entities.values())
    views = {}
    for name, g in GROUPS.items():
        path = Path(offline_paths[name])
        batch = FileSource(name=source_name(name), path=str(path), timestamp_field=TIMESTAMP,
                           description=f"offline Parquet of {name}")
        push = PushSource(name=push_source_name(name), batch_source=batch)
        view = FeatureView(
            name=name, entities=[entities[g.entity]], ttl=timedelta(days=g.ttl_days),
            schema=[Field(name=f.name, dtype=feast_type(f.dtype), description=f.description) for f in g.features],
            source=push, online=True, description=g.description, tags={"cadence": g.cadence},
        )
        views[name] = view
        objects += [batch, push, view]
    for svc, groups in SERVICES.items():
        objects.append(FeatureService(name=svc, features=[views[g] for g in groups],
                                      description=f"features read by the {svc} model"))
    return objects


def apply(settings: "Settings | None" = None, offline_paths: Mapping[str, Path] | None = None,
          store: "FeatureStore | None" = None) -> "FeatureStore":
    """Register every object (idempotent). ``offline_paths`` maps group -> folder of its Parquet files; groups
    left out use the pipeline's current folder (or an empty placeholder). Returns the store it applied to."""
    settings = _settings(settings)
    paths = default_offline_paths(settings) if offline_paths is None or set(offline_paths) != set(GROUPS) else {}
    for name, path in (offline_paths or {}).items():
        path = Path(path)
        if not path.exists():
            raise SundayError(f"offline folder for feature group {name!r} does not exist: {path}")
        paths[name] = path
    store = store or get_store(settings)
    store.apply(feast_objects(paths))
    return store


def materialize(settings: "Settings | None" = None, start: datetime | None = None, end: datetime | None = None,
                groups: list[str] | None = None, store: "FeatureStore | None" = None,
                incremental: bool = False) -> dict[str, tuple]:
    """Load the latest offline row per entity with timestamp in [start, end) into the online store.

    ``end`` defaults to now. Without ``start`` every view is reloaded from the beginning of its data: the offline
    Parquet is rewritten as a new version by each pipeline run and the simulated history lies in the past, so
    Feast's incremental mode (which starts at the last materialised end, or at ``end - ttl`` the first time) would
    miss rows. ``incremental=True`` asks for it anyway (views never materialised still start from the beginning).
    Returns group -> (start, end).
    """
    settings = _settings(settings)
    store = store or get_store(settings)
    end = _utc(end) if end is not None else datetime.now(timezone.utc)
    names = list(groups) if groups else list(GROUPS)
    for n in names:
        group(n)
    if start is not None:
        start = _utc(start)
        if start >= end:
            raise SundayError(f"materialize: start {start} must be before end {end}")
    _ensure_ray_if_needed(settings, store)
    if not incremental or start is not None:
        start = start or EPOCH
        store.materialize(start, end, feature_views=names)
        return {n: (start, end) for n in names}
    done: dict[str, tuple] = {}
    fresh, seen = [], []
    for n in names:
        intervals = store.get_feature_view(n).materialization_intervals
        if intervals:
            seen.append(n)
            done[n] = (_utc(max(i[1] for i in intervals)), end)
        else:
            fresh.append(n)
    if fresh:
        store.materialize(EPOCH, end, feature_views=fresh)
        done.update({n: (EPOCH, end) for n in fresh})
    if seen:
        store.materialize_incremental(end, feature_views=seen)
    return done


def _ensure_ray_if_needed(settings: "Settings", store: "FeatureStore") -> None:
    """Start/join Ray the project's way (RAY_ADDRESS, CPU count) before Feast's Ray store would do it its way."""
    if getattr(store.config.offline_store, "type", None) == "ray":
        from sunday.runtime import ensure_ray

        ensure_ray(settings)


def _utc(ts) -> datetime:
    import pandas as pd

    t = pd.Timestamp(ts)
    t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
    return t.to_pydatetime()
