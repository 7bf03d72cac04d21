"""Feature-batch validation: contract checks, drift (PSI/KS), Evidently HTML, quarantine, last good data kept."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta, timezone

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from sunday.features.groups import TASK_FEATURES, USER_SKILLS, USER_WORKLOAD
from sunday.features.validation import (
    BatchRejected,
    ValidationConfig,
    make_validator,
    psi,
    validate_batch,
    validate_or_quarantine,
    versioned_reference_loader,
)
from sunday.store import atomic_version, current_version

BASE = datetime(2024, 3, 1, tzinfo=timezone.utc)


def _stamps(n: int, rng: np.random.Generator) -> pa.Array:
    days = rng.integers(0, 60, n)
    return pa.array([BASE + timedelta(days=int(d)) for d in days], pa.timestamp("us", tz="UTC"))


def _with_nulls(x: np.ndarray, rate: float, rng: np.random.Generator) -> pa.Array:
    return pa.array(x, mask=rng.random(len(x)) < rate)


def user_workload(n: int = 2000, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    hours = rng.gamma(4.0, 6.0, n)
    cols = {
        "user_id": pa.array([f"u{i}" for i in range(n)]),
        "event_timestamp": _stamps(n, rng),
        "open_task_count": pa.array(rng.poisson(5, n), pa.int64()),
        "open_points": rng.gamma(2.0, 5.0, n),
        "hours_logged_7d": hours,
        "capacity_utilisation": hours / 40.0,
        "completed_count": pa.array(rng.poisson(20, n), pa.int64()),
        "mean_completion_hours": _with_nulls(rng.lognormal(3, 0.5, n), 0.1, rng),
        "completion_rate": _with_nulls(rng.beta(5, 2, n), 0.1, rng),
        "on_time_rate": _with_nulls(rng.beta(4, 2, n), 0.2, rng),
        "review_cycles": _with_nulls(rng.gamma(1.5, 1.0, n), 0.1, rng),
        "reassignment_count": pa.array(rng.poisson(1, n), pa.int64()),
    }
    return pa.Table.from_pydict(cols, schema=USER_WORKLOAD.arrow_schema())


def task_features(n: int = 1000, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    skills = ["python", "sql", "design", "ops", "ml"]
    required = [list(rng.choice(skills, size=rng.integers(0, 4), replace=False)) for _ in range(n)]
    points = rng.choice([1.0, 2.0, 3.0, 5.0, 8.0], n)
    deps = rng.poisson(1, n)
    length = rng.integers(20, 2000, n)
    cols = {
        "task_id": pa.array([f"t{i}" for i in range(n)]),
        "event_timestamp": _stamps(n, rng),
        "story_points": _with_nulls(points, 0.2, rng),
        "priority_score": pa.array(rng.integers(0, 4, n), pa.int64()),
        "required_skill_count": pa.array([len(r) for r in required], pa.int64()),
        "required_skills": pa.array(required, pa.list_(pa.string())),
        "dependency_count": pa.array(deps, pa.int64()),
        "description_length": pa.array(length, pa.int64()),
        "complexity": np.log1p(length) + np.array([len(r) for r in required]) + deps + np.log1p(points),
        "days_to_due": _with_nulls(rng.normal(5, 10, n), 0.3, rng),
    }
    return pa.Table.from_pydict(cols, schema=TASK_FEATURES.arrow_schema())


def user_skills(n: int = 50, seed: int = 0, dim: int = 384) -> pa.Table:
    rng = np.random.default_rng(seed)
    cols = {
        "user_id": pa.array([f"u{i}" for i in range(n)]),
        "event_timestamp": _stamps(n, rng),
        "skill_embedding": pa.array([rng.normal(size=dim).astype(np.float32) for _ in range(n)],
                                    pa.list_(pa.float32())),
        "skill_counts": pa.array([rng.poisson(2, 5).astype(np.float32) for _ in range(n)], pa.list_(pa.float32())),
        "skill_task_count": pa.array(rng.poisson(10, n), pa.int64()),
    }
    return pa.Table.from_pydict(cols, schema=USER_SKILLS.arrow_schema())


def _set(table: pa.Table, name: str, values: pa.Array | list) -> pa.Table:
    i = table.column_names.index(name)
    return table.set_column(i, table.schema.field(i), pa.array(values, table.schema.field(i).type))


def _failed(report, column: str, check: str) -> bool:
    return any(f["column"] == column and f["check"] == check for f in report.failures)


# -- contract checks ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("make,group", [(user_workload, "user_workload"), (task_features, "task_features"),
                                        (user_skills, "user_skills")])
def test_clean_batch_passes(make, group):
    report = validate_batch(group, make())
    assert report.ok, report.failures
    assert report.reference_rows is None and report.drift == []
    assert "accepted" in report.summary()


def test_clean_pandas_batch_with_int_nulls_as_float_passes():
    df = user_workload(300).to_pandas()  # tz-aware datetime64, float NaN for nullable columns
    df["open_task_count"] = df["open_task_count"].astype("float64")  # what pandas does to ints with NaN
    assert validate_batch("user_workload", df).ok


def _missing(t):
    return t.drop_columns(["hours_logged_7d"])


def _negative(t):
    v = t.column("open_task_count").to_pylist()
    v[3] = -2
    return _set(t, "open_task_count", v)


def _null_non_nullable(t):
    v = t.column("open_points").to_pylist()
    v[0] = v[10] = None
    return _set(t, "open_points", v)


def _rate_too_high(t):
    v = t.column("completion_rate").to_pylist()
    v[7] = 1.7
    return _set(t, "completion_rate", v)


def _duplicate(t):
    return pa.concat_tables([t, t.slice(5, 2)])


def _nan(t):
    v = t.column("hours_logged_7d").to_pylist()
    v[1] = float("nan")
    return _set(t, "hours_logged_7d", v)


def _wrong_type(t):
    i = t.column_names.index("open_points")
    return t.set_column(i, "open_points", pc.cast(t.column("open_points"), pa.string()))


def _fractional_int(t):
    i = t.column_names.index("open_task_count")
    return t.set_column(i, "open_task_count", pc.add(pc.cast(t.column(i), pa.float64()), 0.5))


def _extra(t):
    return t.append_column("surprise", pa.array(np.zeros(t.num_rows)))


def _naive_ts(t):
    return t.set_column(1, "event_timestamp", pc.cast(t.column(1), pa.timestamp("us")))


def _future(t):
    v = t.column("event_timestamp").to_pylist()
    v[0] = datetime.now(timezone.utc) + timedelta(days=3)
    return _set(t, "event_timestamp", v)


@pytest.mark.parametrize("breaker,column,check", [
    (_missing, "hours_logged_7d", "missing"),
    (_negative, "open_task_count", "range"),
    (_null_non_nullable, "open_points", "null"),
    (_rate_too_high, "completion_rate", "range"),
    (_duplicate, "user_id", "duplicate"),
    (_nan, "hours_logged_7d", "finite"),
    (_wrong_type, "open_points", "type"),
    (_fractional_int, "open_task_count", "type"),
    (_extra, "surprise", "extra"),
    (_naive_ts, "event_timestamp", "timezone"),
    (_future, "event_timestamp", "future"),
])
def test_broken_user_workload_batch_fails_naming_the_column(breaker, column, check):
    report = validate_batch("user_workload", breaker(user_workload(500)))
    assert not report.ok
    assert _failed(report, column, check), report.failures
    assert report.failing_columns == [column], report.failures  # nothing else is blamed
    assert column in report.summary()


def test_broken_task_features_batch_fails_naming_the_column():
    t = task_features(300)
    v = t.column("priority_score").to_pylist()
    v[0] = 5
    report = validate_batch("task_features", _set(t, "priority_score", v).drop_columns(["complexity"]))
    assert _failed(report, "priority_score", "range") and _failed(report, "complexity", "missing")
    assert set(report.failing_columns) == {"priority_score", "complexity"}


def test_high_null_rate_of_nullable_feature_warns_by_default_and_fails_when_configured():
    t = user_workload(400)
    t = _set(t, "on_time_rate", [None] * 300 + t.column("on_time_rate").to_pylist()[300:])
    report = validate_batch("user_workload", t)
    assert report.ok
    assert [w["column"] for w in report.warnings if w["check"] == "null_rate"] == ["on_time_rate"]
    strict = validate_batch("user_workload", t, config=ValidationConfig(null_rate_fail=0.5))
    assert _failed(strict, "on_time_rate", "null_rate")


def test_empty_batch_fails():
    report = validate_batch("user_workload", user_workload(10).slice(0, 0))
    assert _failed(report, "(batch)", "empty")


def test_embedding_lengths_and_nan_inside_lists():
    t = user_skills(20)
    emb = t.column("skill_embedding").to_pylist()
    emb[3] = emb[3][:383]
    emb[4][0] = float("nan")
    report = validate_batch("user_skills", _set(t, "skill_embedding", emb))
    assert _failed(report, "skill_embedding", "list_length") and _failed(report, "skill_embedding", "finite")
    # consistent but not 384 long: the configured embedding size fails too
    short = validate_batch("user_skills", user_skills(20, dim=128))
    assert _failed(short, "skill_embedding", "list_length")
    # skill_counts has no fixed size, but must keep the reference's
    report = validate_batch("user_skills", user_skills(20), reference=user_skills(20, seed=1).set_column(
        3, "skill_counts", pa.array([[1.0] * 6] * 20, pa.list_(pa.float32()))))
    assert _failed(report, "skill_counts", "list_length")


# -- drift ----------------------------------------------------------------------------------------------------------

def test_psi_basics():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=5000), rng.normal(size=5000)
    assert psi(a, b) < 0.02
    assert psi(a, b * 3) > 0.25
    const = np.zeros(1000)
    assert psi(const, const) == pytest.approx(0.0)
    assert psi(const, const + 1) > 1 and psi(const, const - 1) > 1  # shifts either way off a constant


def test_shifted_batch_drifts_and_fresh_sample_does_not():
    reference = user_workload(2000, seed=1)
    shifted = user_workload(2000, seed=2)
    shifted = _set(shifted, "hours_logged_7d", pc.multiply(shifted.column("hours_logged_7d"), 3.0).to_pylist())
    config = ValidationConfig(html_report=False)

    report = validate_batch("user_workload", shifted, reference=reference, config=config)
    row = {r.column: r for r in report.drift}["hours_logged_7d"]
    assert row.psi > 0.25 and row.ks_stat > 0.1 and row.ks_p < 0.05 and row.drifted
    assert report.drifted_columns == ["hours_logged_7d"]
    assert report.failing_columns == ["hours_logged_7d"] and _failed(report, "hours_logged_7d", "drift")

    fresh = validate_batch("user_workload", user_workload(2000, seed=3), reference=reference, config=config)
    assert fresh.ok, fresh.failures
    assert fresh.drifted_columns == []
    assert all(r.psi < 0.1 for r in fresh.drift)
    assert len(fresh.drift) == len(USER_WORKLOAD.features)  # every feature of the group is numeric


def test_drift_as_warning_when_configured_or_samples_small():
    reference = user_workload(2000, seed=1)
    shifted = user_workload(2000, seed=2)
    shifted = _set(shifted, "hours_logged_7d", pc.multiply(shifted.column("hours_logged_7d"), 3.0).to_pylist())
    report = validate_batch("user_workload", shifted, reference,
                            ValidationConfig(drift_fails=False, html_report=False))
    assert report.ok and report.drifted_columns == ["hours_logged_7d"]
    small = validate_batch("user_workload", shifted.slice(0, 50), reference, ValidationConfig(html_report=False))
    assert small.ok and any(w["column"] == "hours_logged_7d" for w in small.warnings)


def test_evidently_html_written_for_a_drift_run(settings):
    reference = user_workload(1000, seed=1)
    report = validate_or_quarantine(settings, "user_workload", user_workload(1000, seed=3), reference=reference)
    assert report.ok and report.html_path and report.html_skipped is None
    path = settings.home / "features" / "reports"
    html = [p for p in path.iterdir() if p.name.startswith("user_workload-") and p.suffix == ".html"]
    assert [str(p) for p in html] == [report.html_path]
    assert html[0].stat().st_size > 1000


def test_html_skipped_with_reason_when_evidently_does_not_import(settings, monkeypatch):
    monkeypatch.setitem(sys.modules, "evidently", None)  # makes `import evidently` raise ImportError
    report = validate_or_quarantine(settings, "user_workload", user_workload(300, seed=3),
                                    reference=user_workload(300, seed=1))
    assert report.ok and report.html_path is None
    assert "evidently does not import" in report.html_skipped


# -- quarantine and the pipeline hook -------------------------------------------------------------------------------

def test_quarantine_writes_batch_and_report_and_raises(settings):
    bad = _rate_too_high(_negative(user_workload(200)))
    with pytest.raises(BatchRejected) as err:
        validate_or_quarantine(settings, "user_workload", bad)
    msg = str(err.value)
    assert "user_workload" in msg and "open_task_count" in msg and "completion_rate" in msg
    folder = err.value.path
    assert folder.parent == settings.home / "features" / "quarantine" / "user_workload"
    assert str(folder) in msg
    assert pq.read_table(folder / "batch.parquet").equals(bad)
    saved = json.loads((folder / "report.json").read_text())
    assert saved["ok"] is False and saved["group"] == "user_workload" and saved["rows"] == 200
    assert {f["column"] for f in saved["failures"]} == {"open_task_count", "completion_rate"}
    assert saved["quarantine_path"] == str(folder)
    assert err.value.columns == ["open_task_count", "completion_rate"]


def test_rejected_batch_leaves_the_last_good_version(settings):
    root = settings.home / "features" / "offline"
    validate = make_validator(settings, versioned_reference_loader(root))
    good = user_workload(500, seed=1)
    with atomic_version(root / "user_workload") as staging:
        validate("user_workload", good)  # first build: no reference
        pq.write_table(good, staging / "data.parquet")
    before = current_version(root / "user_workload")

    bad = _null_non_nullable(user_workload(500, seed=2))
    with pytest.raises(BatchRejected, match="open_points"):
        with atomic_version(root / "user_workload") as staging:
            pq.write_table(bad, staging / "data.parquet")
            validate("user_workload", bad)
    assert current_version(root / "user_workload") == before
    assert pq.read_table(before / "data.parquet").equals(good)
    assert not [p for p in (root / "user_workload").iterdir() if p.name.startswith(".staging")]

    # a fresh, identically distributed batch is compared with the live version and accepted
    with atomic_version(root / "user_workload") as staging:
        validate("user_workload", user_workload(500, seed=3))
        pq.write_table(user_workload(500, seed=3), staging / "data.parquet")
    assert current_version(root / "user_workload") != before


def test_reference_loader_failure_is_a_warning(settings):
    def broken(group: str) -> pa.Table:
        raise OSError("disk gone")

    validate = make_validator(settings, broken, ValidationConfig(html_report=False))
    validate("task_features", task_features(100))  # no exception: contract checks passed
    report = validate_batch("task_features", task_features(100), reference_error="OSError: disk gone")
    assert report.ok and report.warnings[0]["check"] == "reference"


def test_unknown_group_is_a_user_error():
    from sunday.errors import SundayError

    with pytest.raises(SundayError, match="unknown feature group 'nope'"):
        validate_batch("nope", user_workload(5))


def test_unreadable_pandas_batch_is_quarantined_as_pickle(settings):
    df = user_workload(20).to_pandas()
    df["open_points"] = df["open_points"].astype(object)
    df.loc[0, "open_points"] = "lots"  # Arrow cannot read a column mixing str and float
    with pytest.raises(BatchRejected, match=r"\(batch\) \(type\)") as err:
        validate_or_quarantine(settings, "user_workload", df)
    assert (err.value.path / "batch.pkl").stat().st_size > 0 and (err.value.path / "report.json").exists()
