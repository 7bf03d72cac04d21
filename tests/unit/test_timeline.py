"""Project timeline forecaster: snapshots (no leakage, project split), baselines, the model, the service's bad input.

Small and fast: one ~25k-event simulated workspace for the data tests; synthetic linear projects for the rest.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from sunday.errors import SundayError
from sunday.models.timeline.baselines import burndown_forecast, forecast_snapshots, monte_carlo_forecast
from sunday.models.timeline.data import (
    SERIES_COLUMNS, STATIC_COLUMNS, Snapshots, build_snapshots, clean_history, project_features, split_projects,
)
from sunday.models.timeline.forecaster import TimelineConfig, TimelineForecaster
from sunday.models.timeline.service import predict_timeline


# -- synthetic projects -------------------------------------------------------------------------------------------

def linear_history(days: int, backlog0: float, rate: float, start="2024-01-01", noise: float = 0.0,
                   seed: int = 0) -> pd.DataFrame:
    """A project burning ``rate`` tasks/day from ``backlog0`` open tasks, no scope growth."""
    rng = np.random.default_rng(seed)
    done = np.maximum(rate + noise * rng.standard_normal(days), 0)
    backlog = np.maximum(backlog0 - np.cumsum(done), 0)
    h = pd.DataFrame({c: np.zeros(days) for c in SERIES_COLUMNS})
    h["event_timestamp"] = pd.date_range(start, periods=days, freq="D", tz="UTC") + pd.Timedelta("23:59:59")
    h["tasks_done"], h["points_done"], h["hours_logged"] = done, 3 * done, 10 * done
    h["backlog_tasks"], h["backlog_points"] = backlog, 3 * backlog
    h.loc[0, "tasks_created"] = backlog0
    return h


def synthetic_snapshots(n: int, seed: int = 0) -> Snapshots:
    """Projects with a random throughput and backlog; the label is backlog / rate (+ noise)."""
    rng = np.random.default_rng(seed)
    series, lengths, statics, meta = [], [], [], []
    for i in range(n):
        rate, days = rng.uniform(0.5, 4.0), int(rng.integers(14, 50))
        backlog0 = rate * days + rng.uniform(10, 150)
        h, _ = clean_history(linear_history(days, backlog0, rate, noise=0.3 * rate, seed=i))
        cut = h.index[-1]
        start = h.index[0]
        planned = cut + pd.Timedelta(days=int(rng.integers(5, 40)))
        w, L, s = project_features(h, cut, start, planned, 5, 180)
        remaining = h["backlog_tasks"].iloc[-1]
        target = remaining / rate + rng.normal(0, 2) + 1
        series.append(w)
        lengths.append(L)
        statics.append(s)
        delay = (cut + pd.Timedelta(days=1 + target) - planned) / pd.Timedelta(days=1)
        meta.append({"project_id": f"p{i}", "workspace_id": "w", "cut": cut + pd.Timedelta(days=1),
                     "start_date": start, "planned_end": planned, "target_days": max(target, 0.5),
                     "delay_days": delay, "risk": int(np.searchsorted([0, 7, 21], delay, side="left")),
                     "warn_cut": False})
    return Snapshots(np.stack(series), np.array(lengths), np.stack(statics), pd.DataFrame(meta))


@pytest.fixture(scope="module")
def sim():
    from sunday.data.simulator import SimConfig, simulate_tables

    return simulate_tables(SimConfig(n_events=25_000, seed=3))


@pytest.fixture(scope="module")
def tiny_model():
    snap = synthetic_snapshots(260, seed=0)
    train, test = snap.take(np.arange(200)), snap.take(np.arange(200, 260))
    model = TimelineForecaster(TimelineConfig(hidden=16, static_hidden=16, epochs=20, batch_size=40, lr=8e-3,
                                              calibration_fraction=0.2)).fit(train)
    return model, train, test


# -- data ---------------------------------------------------------------------------------------------------------

def test_snapshots_have_no_truth_in_features(sim):
    snap = build_snapshots(sim, cut_every=14)
    assert len(snap) > 20
    assert snap.series.shape[1:] == (56, len(SERIES_COLUMNS)) and snap.static.shape[1] == len(STATIC_COLUMNS)
    assert np.isfinite(snap.series).all() and np.isfinite(snap.static).all() and (snap.target > 0).all()
    # shift every true completion by 10 days: the labels move by 10 days, the features do not move at all
    tt = sim.truth["task_truth"]
    shifted = pc.add(tt.column("true_completion"), pa.scalar(pd.Timedelta(days=10).to_pytimedelta(),
                                                              type=pa.duration("us")))
    truth = dict(sim.truth)
    truth["task_truth"] = tt.set_column(tt.schema.get_field_index("true_completion"), "true_completion",
                                        shifted.cast(tt.schema.field("true_completion").type))
    from sunday.data.simulator.writer import SimTables

    snap2 = build_snapshots(SimTables(sim.observable, truth), cut_every=14)
    key = ["project_id", "cut"]
    a = snap.meta[key].assign(i=np.arange(len(snap)))
    b = snap2.meta[key].assign(j=np.arange(len(snap2)))
    m = a.merge(b, on=key)
    assert len(m) >= len(snap) * 0.9
    np.testing.assert_array_equal(snap.series[m["i"]], snap2.series[m["j"]])
    np.testing.assert_array_equal(snap.static[m["i"]], snap2.static[m["j"]])
    np.testing.assert_allclose(snap2.target[m["j"]] - snap.target[m["i"]], 10.0, atol=1e-6)


def test_project_split_is_disjoint(sim):
    snap = build_snapshots(sim, cut_every=14)
    tr, te = split_projects(snap, 0.3, seed=0)
    assert len(tr) and len(te) and len(tr) + len(te) == len(snap)
    assert not set(snap.meta["project_id"].iloc[tr]) & set(snap.meta["project_id"].iloc[te])


def test_gaps_are_filled_or_refused():
    h = linear_history(20, 100, 2.0).drop(index=[5, 6])
    clean, warnings = clean_history(h)
    assert len(clean) == 20 and warnings and clean["tasks_done"].iloc[5] == 0
    assert clean["backlog_tasks"].iloc[5] == clean["backlog_tasks"].iloc[4]  # stock carried forward
    with pytest.raises(SundayError, match="missing day"):
        clean_history(h, fill_gaps=False)


# -- baselines ----------------------------------------------------------------------------------------------------

def test_baselines_on_a_linear_project():
    # 2 tasks/day, 60 left -> 30 days
    done = np.full(28, 2.0)
    p10, p50, p90 = burndown_forecast(done, 60.0)
    assert p10 <= p50 <= p90 and p50 == pytest.approx(30.0)
    p10, p50, p90 = monte_carlo_forecast(done, 60.0)
    assert (p10, p50, p90) == (30.0, 30.0, 30.0)
    rng = np.random.default_rng(0)
    noisy = rng.poisson(2.0, 42).astype(float)
    p10, p50, p90 = monte_carlo_forecast(noisy, 60.0)
    assert p10 < p50 < p90 and 20 < p50 < 45
    assert burndown_forecast(np.zeros(10), 50.0)[1] <= 365  # no throughput: capped, never inf / NaN
    assert monte_carlo_forecast(np.zeros(10), 0.0) == (0.0, 0.0, 0.0)


def test_forecast_snapshots_shape():
    snap = synthetic_snapshots(10)
    for method in ("burndown", "monte_carlo"):
        q = forecast_snapshots(snap, method)
        assert q.shape == (10, 3) and np.isfinite(q).all() and (np.diff(q, axis=1) >= 0).all()


# -- forecaster ---------------------------------------------------------------------------------------------------

def test_forecaster_learns_and_quantiles_are_ordered(tiny_model):
    model, train, test = tiny_model
    q = model.predict_quantiles(test)
    assert q.shape == (len(test), 3) and np.isfinite(q).all()
    assert (np.diff(q, axis=1) >= 0).all() and (q >= 0).all()
    mae = np.abs(q[:, 1] - test.target).mean()
    trivial = np.abs(np.median(train.target) - test.target).mean()
    assert mae < 0.7 * trivial, (mae, trivial)
    risk = model.predict_risk(test)
    assert risk.shape == (len(test), 4) and np.allclose(risk.sum(1), 1, atol=1e-5)
    s = model.sample(test, mc_samples=5)
    assert s.shape == (5, len(test), 3) and (np.diff(s, axis=2) >= 0).all()
    assert s[:, :, 1].std(0).mean() > 0  # MC dropout varies


def test_save_load_roundtrip(tiny_model, tmp_path):
    model, _, test = tiny_model
    model.save(tmp_path / "m")
    again = TimelineForecaster.load(tmp_path / "m")
    np.testing.assert_allclose(again.predict_quantiles(test), model.predict_quantiles(test), rtol=1e-5)


# -- service ------------------------------------------------------------------------------------------------------

def _project(history, **kw):
    return {"project_id": "p", "history": history, "start_date": "2024-01-01", "planned_end": "2024-03-01",
            "team_size": 5, "team_capacity_hours": 180, **kw}


def test_predict_timeline(tiny_model):
    model, _, _ = tiny_model
    out = predict_timeline(model, _project(linear_history(30, 150, 2.0)), mc_samples=4)
    exp, best, worst = (pd.Timestamp(out[k]) for k in ("expected", "best", "worst"))
    assert best <= exp <= worst
    assert set(out["risk"]) == {"on_track", "minor_delay", "major_delay", "at_risk"}
    assert abs(sum(out["risk"].values()) - 1) < 1e-5
    assert len(out["drivers"]["features"]) == 3 and out["drivers"]["attention_days"]
    assert out["warnings"] == [] and out["uncertainty"]["mc_samples"] == 4


def test_predict_timeline_bad_input(tiny_model):
    model, _, _ = tiny_model
    with pytest.raises(SundayError, match="no history"):
        predict_timeline(model, _project(None))
    with pytest.raises(SundayError, match="no history"):
        predict_timeline(model, _project(linear_history(10, 50, 1.0).iloc[:0]))
    bad = linear_history(20, 100, 2.0)
    bad.loc[3, "backlog_points"] = -5
    with pytest.raises(SundayError, match="negative"):
        predict_timeline(model, _project(bad))
    with pytest.raises(SundayError, match="remaining_points"):
        predict_timeline(model, _project(linear_history(20, 100, 2.0), remaining_points=-3))
    nan = linear_history(20, 100, 2.0)
    nan.loc[2, "tasks_done"] = np.nan
    with pytest.raises(SundayError, match="missing"):
        predict_timeline(model, _project(nan))
    with pytest.raises(SundayError, match="planned_end"):
        predict_timeline(model, _project(linear_history(20, 100, 2.0), planned_end="2023-01-01"))
    # gaps: documented fallback (filled, warned), real dates
    gap = linear_history(30, 150, 2.0).drop(index=[10, 11, 12])
    out = predict_timeline(model, _project(gap))
    assert out["warnings"] and all(pd.notna(pd.Timestamp(out[k])) for k in ("expected", "best", "worst"))
    with pytest.raises(SundayError, match="missing day"):
        predict_timeline(model, _project(gap), fill_gaps=False)
