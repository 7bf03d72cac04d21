"""Drift statistics (PSI against hand computations, KS and chi-square against scipy), the per-column verdicts,
the training reference files and one monitor pass over a synthetic prediction log (no MLflow here; the model tier
runs the job with MLflow and Evidently)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from sunday.errors import SundayError
from sunday.monitoring.drift import (DriftConfig, bin_counts, column_drift, compute_drift, psi_categorical,
                                     psi_from_counts, psi_numeric, quantile_edges)


def hand_psi(ref_props, cur_props):
    return sum((c - r) * math.log(c / r) for r, c in zip(ref_props, cur_props))


def test_psi_numeric_matches_hand_computation():
    ref = np.arange(100, dtype=float)  # quartile edges 24.75, 49.5, 74.25: 25 values per bin
    cur = np.array([0.0] * 10 + [30.0] * 10 + [60.0] * 10 + [90.0] * 70)
    assert quantile_edges(ref, 4).tolist() == pytest.approx([24.75, 49.5, 74.25])
    assert bin_counts(cur, quantile_edges(ref, 4)).tolist() == [10, 10, 10, 70, 0]
    expected = hand_psi([0.25] * 4, [0.1, 0.1, 0.1, 0.7])  # 0.8757
    assert psi_numeric(ref, cur, bins=4) == pytest.approx(expected, rel=1e-9)
    assert expected == pytest.approx(0.87566, abs=1e-4)


def test_bins_edges_ties_outliers_and_missing():
    edges = np.array([1.0, 2.0])
    # a value equal to an edge goes to the lower bin; outside the reference range to the open outer bins
    assert bin_counts(np.array([-100, 1.0, 1.5, 2.0, 2.5, 1e9, np.nan]), edges).tolist() == [2, 2, 2, 1]
    assert quantile_edges(np.array([5.0] * 50 + [6.0] * 50), 10).tolist() == [5.0, 5.5, 6.0]  # ties deduplicated
    # a current frame that is half missing drifts through the missing bucket
    ref = np.random.default_rng(0).normal(size=1000)
    cur = ref.copy()
    cur[::2] = np.nan
    r, c = bin_counts(ref, quantile_edges(ref)), bin_counts(cur, quantile_edges(ref))
    assert c[-1] == 500 and r[-1] == 0
    assert psi_numeric(ref, cur) == pytest.approx(psi_from_counts(r, c)) and psi_numeric(ref, cur) > 2


def test_discrete_and_out_of_range_numeric_buckets():
    from sunday.monitoring.drift import numeric_counts

    eps = 1e-4
    # a constant reference (e.g. always 7 candidates) against a frame that moved to 4: one bucket per reference
    # value + one for any other value, so the move is seen (quantile bins alone would put 4 and 7 together)
    r, c = numeric_counts(np.full(100, 7.0), np.full(50, 4.0), bins=10)
    assert r.tolist() == [100, 0, 0] and c.tolist() == [0, 50, 0]
    assert psi_numeric(np.full(100, 7.0), np.full(50, 4.0)) == pytest.approx(hand_psi([1, eps], [eps, 1]))
    ref = np.array([1.0] * 30 + [2.0] * 50 + [3.0] * 20)
    cur = np.array([1.0] * 10 + [2.0] * 50 + [3.0] * 30 + [9.0] * 10)
    assert psi_numeric(ref, cur) == pytest.approx(hand_psi([0.3, 0.5, 0.2, eps], [0.1, 0.5, 0.3, 0.1]))
    # continuous: values beyond the reference's range get their own buckets
    ref = np.arange(100, dtype=float)
    r, c = numeric_counts(ref, np.array([-5.0, 0.0, 50.0, 99.0, 150.0, np.nan]), bins=4)
    assert r.tolist() == [0, 25, 25, 25, 25, 0, 0] and c.tolist() == [1, 1, 0, 1, 1, 1, 1]


def test_psi_categorical_matches_hand_computation():
    ref = pd.Series(["a"] * 50 + ["b"] * 50)
    cur = pd.Series(["a"] * 80 + ["b"] * 20)
    assert psi_categorical(ref, cur) == pytest.approx(hand_psi([0.5, 0.5], [0.8, 0.2]), rel=1e-9)  # 0.4159
    # a value the reference never had lands in __other__ (floored at eps in the reference)
    new = pd.Series(["a"] * 50 + ["zzz"] * 50)
    eps = 1e-4
    assert psi_categorical(ref, new) == pytest.approx(hand_psi([0.5, 0.5, eps], [0.5, eps, 0.5]), rel=1e-9)


def test_tests_match_scipy():
    rng = np.random.default_rng(1)
    ref = pd.Series(rng.normal(size=400))
    cur = pd.Series(rng.normal(0.3, 1.2, size=300))
    f = column_drift("x", ref, cur, DriftConfig())
    ks = stats.ks_2samp(ref, cur)
    assert (f.test, f.kind) == ("ks", "numeric")
    assert f.statistic == pytest.approx(ks.statistic) and f.p_value == pytest.approx(ks.pvalue)
    cref = pd.Series(rng.choice(["a", "b", "c"], size=500, p=[0.5, 0.3, 0.2]))
    ccur = pd.Series(rng.choice(["a", "b", "c"], size=400, p=[0.4, 0.3, 0.3]))
    g = column_drift("y", cref, ccur, DriftConfig())
    table = np.array([[(cref == k).sum() for k in "abc"], [(ccur == k).sum() for k in "abc"]])
    chi = stats.chi2_contingency(table, correction=False)
    assert (g.test, g.kind) == ("chi2", "categorical")
    assert g.statistic == pytest.approx(chi.statistic) and g.p_value == pytest.approx(chi.pvalue)


def frames(n_ref=3000, n_cur=2000, shift=0.0, mix=(0.5, 0.3, 0.2), seed=0):
    rng = np.random.default_rng(seed)
    ref = pd.DataFrame({"points": rng.gamma(2.0, 2.0, n_ref), "score": rng.normal(0, 1, n_ref),
                        "hours": rng.exponential(5, n_ref), "priority": rng.choice(["low", "medium", "high"], n_ref,
                                                                                  p=[0.5, 0.3, 0.2]),
                        "flag": rng.random(n_ref) < 0.3})
    cur = pd.DataFrame({"points": rng.gamma(2.0, 2.0, n_cur), "score": rng.normal(shift, 1, n_cur),
                        "hours": rng.exponential(5, n_cur), "priority": rng.choice(["low", "medium", "high"], n_cur,
                                                                                  p=list(mix)),
                        "flag": rng.random(n_cur) < 0.3})
    return ref, cur


def test_identical_distributions_do_not_drift():
    ref, cur = frames()
    rep = compute_drift(ref, cur)
    assert rep.drifted_features == [] and rep.drift_share == 0.0 and not rep.drifted
    assert rep.max_psi < 0.02
    assert {f.kind for f in rep.features} == {"numeric", "categorical"}  # bool -> categorical
    same = compute_drift(ref, ref)
    assert same.max_psi == pytest.approx(0.0, abs=1e-12)


def test_shifted_distribution_flags_the_right_columns():
    ref, cur = frames(shift=1.0, mix=(0.2, 0.3, 0.5))
    rep = compute_drift(ref, cur)
    assert sorted(rep.drifted_features) == ["priority", "score"]
    assert rep.drift_share == pytest.approx(2 / 5) and rep.drifted  # 0.4 > 0.3
    table = rep.table()
    assert list(table["feature"][:2]) == ["score", "priority"]  # most shifted first
    assert table.set_index("feature").loc["score", "psi"] > 0.5
    assert "DRIFT" in rep.line() and "score" in rep.line()
    # a higher share threshold: the same columns drift, the frame does not
    assert not compute_drift(ref, cur, DriftConfig(share_threshold=0.5)).drifted


def test_small_shift_is_not_drift_but_significant():
    ref, cur = frames(n_ref=20000, n_cur=20000, shift=0.1, seed=3)
    f = compute_drift(ref, cur, columns=["score"]).features[0]
    assert f.p_value < 1e-6 and f.psi < 0.05 and not f.drifted  # significant, but a small effect


def test_skips_short_columns_and_config_errors():
    ref, cur = frames()
    cur.loc[cur.index[10:], "hours"] = np.nan
    rep = compute_drift(ref, cur)
    hours = next(f for f in rep.features if f.feature == "hours")
    assert hours.test == "skipped" and not hours.drifted and "fewer than 30" in hours.note
    assert len(rep.checked) == 4
    with pytest.raises(SundayError, match="DriftConfig.bins"):
        DriftConfig(bins=1)
    with pytest.raises(SundayError, match="DriftConfig.p_value"):
        DriftConfig(p_value=0)
    with pytest.raises(SundayError, match="share_threshold"):
        DriftConfig.from_dict({"share_threshold": 1.5})
    with pytest.raises(SundayError, match="unknown setting"):
        DriftConfig.from_dict({"bin": 3})
    with pytest.raises(SundayError, match="share no column"):
        compute_drift(pd.DataFrame({"a": [1]}), pd.DataFrame({"b": [1]}))
    with pytest.raises(SundayError, match="not in both frames"):
        compute_drift(ref, cur, columns=["nope"])


def test_reference_save_load(settings):
    from sunday.monitoring.reference import load_reference, reference_path, reference_versions, save_reference

    ref, _ = frames(n_ref=8000)
    ref["tags"] = [["x"]] * len(ref)  # lists cannot be compared: dropped
    ref["maybe"] = [None if i % 2 else "a" for i in range(len(ref))]
    path = save_reference(settings, "priority_scorer", 3, ref, max_rows=1000)
    assert path == reference_path(settings, "priority_scorer", "3") and path.is_file()
    frame, version = load_reference(settings, "priority_scorer", "3")
    assert version == "3" and len(frame) == 1000 and "tags" not in frame.columns and "points" in frame.columns
    save_reference(settings, "priority_scorer", 4, ref.head(50))
    assert load_reference(settings, "priority_scorer")[1] == "4"  # the latest saved
    assert reference_versions(settings, "priority_scorer") == ["3", "4"]
    assert load_reference(settings, "priority_scorer", "9") is None
    with pytest.raises(SundayError, match="model_name"):
        save_reference(settings, "../x", 1, ref)
    with pytest.raises(SundayError, match="frame"):
        save_reference(settings, "m", 1, ref.iloc[0:0])


def log_rows(model, version, frame, t0, step=1.0, endpoint="score-priority"):
    from sunday.monitoring.predictions import PredictionRow

    return [PredictionRow(model, version, endpoint, {"points": r.points, "priority": r.priority},
                          {"pred_score": r.score}, t0 + i * step) for i, r in enumerate(frame.itertuples())]


def test_monitor_pass_without_mlflow(settings):
    from sunday.monitoring.job import MonitorConfig, prom_path, run_monitor
    from sunday.monitoring.predictions import default_prediction_log
    from sunday.monitoring.reference import save_reference

    ref, cur = frames(n_ref=600, n_cur=400, shift=1.5, mix=(0.1, 0.2, 0.7))
    now = 1_800_000_000.0
    log = default_prediction_log(settings)
    # model A: a saved training reference; recent rows shifted -> drift
    save_reference(settings, "priority_scorer", "2", ref.rename(columns={"score": "pred_score"}))
    log.append(log_rows("priority_scorer", "2", cur, now - 3600))
    # model B: no reference -> serving baseline (first 300 rows) then the same distribution -> no drift
    same, _ = frames(n_ref=700, seed=4)
    log.append(log_rows("notification_ranker", "1", same, now - 7200, step=0.5, endpoint="rank-notifications"))
    calls = []
    config = MonitorConfig(models=("priority_scorer", "notification_ranker", "task_assignment"), min_rows=100,
                           baseline_rows=300, mlflow=False, evidently=False)
    res = run_monitor(settings, config, log=log, now=now, trigger_fn=lambda *a: calls.append(a) or
                      {"status": "started"})
    by = {m.model: m for m in res.models}
    a, b, c = by["priority_scorer"], by["notification_ranker"], by["task_assignment"]
    assert a.status == "drift" and a.reference == "training reference v2"
    assert set(a.report.drifted_features) == {"pred_score", "priority"} and a.report.rows_current == 400
    assert a.trigger["status"] == "started" and len(calls) == 1
    assert calls[0][1] == "priority_scorer" and calls[0][2].startswith("drift: priority_scorer v2")
    assert b.status == "ok" and b.report.rows_reference == 300 and b.report.rows_current == 400
    assert "serving baseline" in b.reference and b.trigger is None
    assert c.status == "skipped" and "too few rows" in c.reason
    assert a.html_engine == "sunday (fallback)" and "pred_score" in open(a.html).read()
    prom = prom_path(settings).read_text()
    assert 'sunday_drift_score{model="priority_scorer",version="2"} 0.666667' in prom
    assert 'sunday_drift_detected{model="notification_ranker"} 0' in prom
    assert 'sunday_feature_psi{model="priority_scorer",feature="pred_score"}' in prom
    # the next pass within the cooldown does not start another pipeline; a dry run records what it would start
    again = run_monitor(settings, config, log=log, now=now + 60, trigger_fn=lambda *a: calls.append(a) or {})
    assert {m.model: m for m in again.models}["priority_scorer"].trigger["status"] == "cooldown" and len(calls) == 1
    dry = run_monitor(settings, MonitorConfig(models=("priority_scorer",), min_rows=100, mlflow=False, html=False,
                                              trigger=False, cooldown_hours=0), log=log, now=now)
    t = dry.models[0].trigger
    assert t["status"] == "dry-run" and "run_pipeline(models=['priority_scorer']" in t["would_call"]
    log.close()


def test_monitor_entrypoint(settings, tmp_path, capsys, monkeypatch):
    import importlib.util
    import json
    import sys
    from pathlib import Path

    from sunday.monitoring.predictions import default_prediction_log

    spec = importlib.util.spec_from_file_location(
        "monitor_job", Path(__file__).resolve().parents[2] / "train_jobs" / "monitor.py")
    job = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, job)
    spec.loader.exec_module(job)
    assert job.main(["--every", "0"]) == 2 and "--every" in capsys.readouterr().err
    assert job.main(["--threshold", "2"]) == 2 and "share_threshold" in capsys.readouterr().err
    ref, cur = frames(n_ref=400, n_cur=300, shift=2.0)
    log = default_prediction_log(settings)
    import time

    log.append(log_rows("priority_scorer", "5", ref, time.time() - 600, step=0.1))
    log.append(log_rows("priority_scorer", "5", cur, time.time() - 300, step=0.1))
    log.close()
    out = tmp_path / "monitor.json"
    assert job.main(["--models", "priority_scorer", "--baseline-rows", "400", "--no-mlflow", "--no-evidently",
                     "--dry-run", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "priority_scorer v5: DRIFT" in text and "serving baseline" in text and "dry-run" in text
    saved = json.loads(out.read_text())["models"][0]
    assert saved["status"] == "drift" and "pred_score" in saved["summary"]["drifted_features"]
