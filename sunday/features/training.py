"""Point-in-time correct training sets from the offline store.

``training_set(entity_df, "assignment")`` joins, for every row of ``entity_df`` (the service's join keys, an
``event_timestamp`` and any label columns), the latest row of each of the service's feature groups stamped at or
before that row's timestamp (and within the group's ttl), so no feature value from after a label's moment can leak
into training.

Guarantees on top of Feast: exactly one output row per input row, in the input order and with the input index;
label columns passed through untouched; naive timestamps read as UTC; integer features as pandas ``Int64``
(missing = ``<NA>``), ``float_list`` features as float32 numpy arrays, ``string_list`` features as lists.
Each group is queried on its own with the distinct (join key, timestamp) pairs, and the answer is merged back
onto the rows, so whatever an offline backend drops or reorders cannot lose or shuffle rows, nor take a row's
other groups with it (Feast 0.67's file store drops an entity row whose entity has feature rows, but none in the
row's window, for any view of the query; its Ray store drops rows with a duplicate (key, timestamp), a whole batch
when a view has no rows, and reorders). A row with a missing join key gets no features of that key's groups and
keeps the others.

Offline backend: ``SUNDAY_FEAST_OFFLINE`` = ``file`` (default) | ``ray``; see :mod:`sunday.features.repo`.

Why ``file`` is the default (measured with Feast 0.67 on this 2-CPU machine):

* exact: it joins on the exact timestamps and applies each group's ttl, like the hand-computed reference in
  ``tests/unit/test_feast_store.py``;
* fast enough: 0.6 s for 4,000 labels over 30,000 feature rows, ~45 s for 100,000 labels over 600,000 rows (it
  joins each label with every row of its entity, then filters: memory grows with labels x rows per entity).

Feast 0.67's contrib Ray store (``ray``) is kept selectable (it scales out to a Ray cluster) but, as shipped:

* it floors every timestamp (feature rows too) to whole seconds before joining: a feature row up to 1 s after a
  label would join it. :func:`query_timestamps` closes that leak by asking as of the end of the previous second
  (rows stamped within the label's own second are then left out);
* it ignores the feature views' ttl (older rows still join), as the online store does;
* with more than one entity its ``merge_asof`` fails (its right side is sorted by key, not time) and it falls back
  to a row-by-row join: 9 s for 1,000 labels over 30,000 rows, 19 s for 4,000, over 10 minutes for 100,000.
"""

from __future__ import annotations

import warnings

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from sunday.errors import SundayError
from sunday.features.groups import GROUPS, SERVICES, TIMESTAMP

if TYPE_CHECKING:
    from feast import FeatureStore

    from sunday.settings import Settings


def service_columns(feature_service: str) -> tuple[list[str], list[str]]:
    """(join keys, feature names) of a service, in the order of its groups."""
    if feature_service not in SERVICES:
        from sunday.errors import UnknownNameError

        raise UnknownNameError("feature service", feature_service, list(SERVICES))
    groups = SERVICES[feature_service]
    keys = list(dict.fromkeys(GROUPS[g].join_key for g in groups))
    names = [f for g in groups for f in GROUPS[g].feature_names]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise SundayError(f"feature service {feature_service!r} has features with the same name in two groups: "
                          f"{', '.join(dup)}")
    return keys, names


def utc_timestamps(values: pd.Series, column: str = TIMESTAMP) -> pd.Series:
    """Any timestamp-like column -> ``datetime64[ns, UTC]`` (naive values are UTC)."""
    try:
        ts = pd.to_datetime(values)
    except (ValueError, TypeError) as e:
        raise SundayError(f"column '{column}' cannot be read as timestamps ({e})") from None
    if not isinstance(ts.dtype, pd.DatetimeTZDtype):
        ts = ts.dt.tz_localize("UTC")
    else:
        ts = ts.dt.tz_convert("UTC")
    return ts.astype("datetime64[ns, UTC]")


def _check(entity_df: pd.DataFrame, feature_service: str) -> tuple[list[str], list[str]]:
    if not isinstance(entity_df, pd.DataFrame):
        raise SundayError(f"entity_df must be a pandas DataFrame, got {type(entity_df).__name__}")
    keys, names = service_columns(feature_service)
    for k in keys:
        if k not in entity_df.columns:
            raise SundayError(f"entity_df lacks join key column '{k}' (feature service {feature_service!r} needs "
                              f"{', '.join(keys)} and '{TIMESTAMP}')")
    if TIMESTAMP not in entity_df.columns:
        raise SundayError(f"entity_df lacks timestamp column '{TIMESTAMP}' (the moment each row's label is "
                          "known; features are taken as of it)")
    clash = [n for n in names if n in entity_df.columns]
    if clash:
        raise SundayError(f"entity_df column(s) {', '.join(clash)} have the name of a feature of "
                          f"{feature_service!r}; rename them")
    return keys, names


def training_set(entity_df: pd.DataFrame, feature_service: str, settings: "Settings | None" = None,
                 store: "FeatureStore | None" = None) -> pd.DataFrame:
    """Historical features of ``feature_service`` for every row of ``entity_df`` as of its ``event_timestamp``.

    Returns ``entity_df`` (timestamps as UTC) with the service's features appended, one row per input row in the
    same order and index. Raises SundayError for an unknown service or a missing join key / timestamp column.
    """
    keys, names = _check(entity_df, feature_service)
    out = entity_df.copy()
    out[TIMESTAMP] = utc_timestamps(entity_df[TIMESTAMP])
    if out[TIMESTAMP].isna().any():
        bad = int(np.flatnonzero(out[TIMESTAMP].isna().to_numpy())[0])
        raise SundayError(f"entity_df row {bad}: '{TIMESTAMP}' is empty")

    if settings is None:
        from sunday.settings import get_settings

        settings = get_settings()
    if store is None:
        from sunday.features.repo import get_store

        store = get_store(settings)
    backend = getattr(store.config.offline_store, "type", "file")
    qts = query_timestamps(out[TIMESTAMP], backend)
    if backend == "ray":
        from sunday.runtime import ensure_ray

        ensure_ray(settings)  # join/start Ray the project's way before Feast's Ray store does it its way
    dtypes = {f.name: f.dtype for g in GROUPS.values() for f in g.features}
    for group in SERVICES[feature_service]:
        g = GROUPS[group]
        rows = pd.DataFrame({g.join_key: out[g.join_key].to_numpy(dtype=object), QUERY_TS: qts.to_numpy()})
        with warnings.catch_warnings():  # dask, inside Feast's file store, warns about pandas downcasting
            warnings.simplefilter("ignore", FutureWarning)
            answer = _historical(rows, group, settings, store)
        merged = _merge_back(rows, answer, g.join_key, g.feature_names)
        for n in g.feature_names:
            out[n] = pd.Series(_typed(merged[n].to_numpy(), dtypes[n]), index=out.index, name=n)
    return out


QUERY_TS = "__sunday_query_ts"


def query_timestamps(ts: pd.Series, backend: str) -> pd.Series:
    """The timestamps sent to the offline store for these label timestamps.

    The file store compares exactly: the label's own timestamp. Feast 0.67's Ray store floors every timestamp, the
    feature rows' included, to whole seconds before its as-of join, so a feature row stamped up to 1 s after a label
    could join it (a leak: a daily row stamped 23:59:59.999999 would join a label at 23:59:59). For it we ask as of
    the end of the previous second: ``floor(f) <= floor(t) - 1 s`` implies ``f < floor(t) <= t``, so nothing after
    the label can join; rows stamped within the label's own second are left out (at most 1 s of staleness).
    """
    if backend == "ray":
        return ts.dt.floor("s") - pd.Timedelta(seconds=1)
    return ts


def _historical(rows: pd.DataFrame, group: str, settings: "Settings", store: "FeatureStore") -> pd.DataFrame:
    """Feast's answer for one group and the distinct (key, query timestamp) pairs of ``rows`` with a key.

    One group per query: a row that one view of a query drops (see the module docstring) would take the row's
    other groups with it."""
    key = GROUPS[group].join_key
    query = rows[rows[key].notna()].drop_duplicates().reset_index(drop=True)
    query = query.rename(columns={QUERY_TS: TIMESTAMP})
    query[key] = query[key].astype(str)
    if query.empty:
        return pd.DataFrame(columns=[key, TIMESTAMP])
    try:
        store.get_feature_view(group)
    except Exception as e:  # FeatureViewNotFoundException: the repository was never applied
        raise SundayError(f"feature group {group!r} is not registered in {settings.feature_repo_dir} "
                          f"(run: sunday features build, or sunday.features.repo.apply): {e}") from None
    refs = [f"{group}:{f}" for f in GROUPS[group].feature_names]
    return store.get_historical_features(entity_df=query, features=refs).to_df()


def _merge_back(rows: pd.DataFrame, features: pd.DataFrame, key: str, names: list[str]) -> pd.DataFrame:
    """``rows`` (key, query timestamp) with the answer's features, one row per row, in order."""
    if features.empty:
        features = pd.DataFrame(columns=[key, TIMESTAMP] + names)
    missing = [n for n in names if n not in features.columns]
    if missing:
        raise SundayError(f"the offline store answered without feature(s) {', '.join(missing)}")
    feats = features[[key, TIMESTAMP] + names].copy()
    feats[TIMESTAMP] = utc_timestamps(feats[TIMESTAMP])
    feats[key] = feats[key].astype(object)
    # a backend may answer one (key, timestamp) pair twice; any copy is the same point-in-time answer
    feats = feats.drop_duplicates(subset=[key, TIMESTAMP], keep="last").rename(columns={TIMESTAMP: QUERY_TS})
    left = rows.reset_index(drop=True)
    left[key] = left[key].astype(object)
    left["__row"] = np.arange(len(left))
    merged = left.merge(feats, on=[key, QUERY_TS], how="left", sort=False).sort_values("__row", kind="stable")
    if len(merged) != len(rows):  # cannot happen after drop_duplicates; keep the guarantee explicit
        raise SundayError(f"training set has {len(merged)} rows for {len(rows)} entity rows")
    return merged.reset_index(drop=True)


def _typed(values: np.ndarray, dtype: str):
    if dtype == "int":
        return pd.array(pd.to_numeric(pd.Series(values), errors="coerce").round(), dtype="Int64")
    if dtype == "float":
        return pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype="float64")
    out = np.empty(len(values), dtype=object)  # filled one by one: equal-length lists must stay one object each
    for i, v in enumerate(values):
        if _missing(v):
            out[i] = None
        elif dtype == "float_list":
            out[i] = np.asarray(v, dtype=np.float32)
        elif dtype == "string_list":
            out[i] = [str(x) for x in v]
        else:
            out[i] = str(v)
    return out


def _missing(v) -> bool:
    if v is None:
        return True
    if isinstance(v, float) and np.isnan(v):
        return True
    return v is pd.NA or v is pd.NaT
