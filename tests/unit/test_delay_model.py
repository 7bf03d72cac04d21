"""Delay-risk classifier, classes, metrics and leakage-free features on small synthetic projects (fast)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sunday.models.delay import DelayRiskClassifier, DelayRiskConfig, build_features, class_thresholds, p_delayed
from sunday.models.delay.risk import (LEAKY_COLUMNS, best_threshold, decide, delayed_auc, delayed_prf, macro_auc,
                                      macro_mae, risk_classes)
from sunday.schema.planning_tables import DELAY_COUNTS, TOPIC_SIZES

FAST = dict(n_estimators=40, rf_trees=30, inner_folds=2)


# ------------------------------------------------------------------------------------------- classes, metrics


def test_class_thresholds_and_classes():
    d = np.array([0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    q33, q66 = class_thresholds(d)
    assert (q33, q66) == pytest.approx((np.percentile(np.arange(1, 11), 33), np.percentile(np.arange(1, 11), 66)))
    y = risk_classes(d, (q33, q66))
    assert (q33, q66) == pytest.approx((3.97, 6.94))
    assert y.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 3]
    assert risk_classes([0, 3, 4, 7, 8], (3.0, 7.0)).tolist() == [0, 1, 2, 2, 3]  # cut points belong below
    with pytest.raises(ValueError):
        class_thresholds([0, 0, 0])
    with pytest.raises(ValueError):
        risk_classes([-1, 2], (1.0, 2.0))


def test_delayed_prf_is_micro_over_delayed_classes():
    y_true = np.array([0, 0, 1, 1, 2, 3, 3, 0])
    y_pred = np.array([0, 1, 1, 2, 2, 3, 0, 0])
    # TP = exact delayed class: items 2, 4, 5 -> 3; predicted delayed: 1..5 -> 5; truly delayed: 2..6 -> 5
    p, r, f = delayed_prf(y_true, y_pred)
    assert (p, r) == pytest.approx((3 / 5, 3 / 5))
    assert f == pytest.approx(0.6)
    assert delayed_prf(y_true, np.zeros_like(y_true)) == (0.0, 0.0, 0.0)
    assert delayed_prf(y_true, y_true) == (1.0, 1.0, 1.0)


def test_macro_mae_weights_classes_equally():
    y_true = np.array([0, 0, 0, 0, 3])
    y_pred = np.array([0, 0, 0, 0, 0])
    # class 0: 0 error, class 3: 3 -> mean over the two classes present = 1.5 (plain MAE would be 0.6)
    assert macro_mae(y_true, y_pred) == pytest.approx(1.5)
    assert macro_mae(np.array([1, 2]), np.array([2, 2])) == pytest.approx(0.5)


def test_aucs():
    y = np.array([0, 0, 1, 2, 3, 0])
    score = np.array([0.1, 0.2, 0.8, 0.7, 0.9, 0.3])
    assert delayed_auc(y, score) == pytest.approx(1.0)
    assert np.isnan(delayed_auc(np.zeros(4, int), np.arange(4.0)))  # one class only: undefined
    proba = np.eye(4)[[0, 0, 1, 2, 3, 0]]
    assert macro_auc(y, proba) == pytest.approx(1.0)


def test_decision_rule_and_threshold_search():
    proba = np.array([[0.7, 0.1, 0.1, 0.1], [0.4, 0.1, 0.4, 0.1], [0.2, 0.5, 0.1, 0.2]])
    assert decide(proba, None).tolist() == [0, 0, 1]
    assert decide(proba, 0.5).tolist() == [0, 2, 1]  # P(delayed) 0.3, 0.6, 0.8
    assert decide(proba, 0.9).tolist() == [0, 0, 0]
    assert decide(proba, 0.5, (1.0, 1.0, 6.0)).tolist() == [0, 3, 3]
    y = np.array([0, 2, 1])
    t, f = best_threshold(y, proba, [0.2, 0.5, 0.7, 0.9])
    assert f == pytest.approx(1.0) and 0.3 < t <= 0.6


# ------------------------------------------------------------------------------------------- synthetic project


def make_frames(n: int = 400, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Snapshot frames shaped like ``read_snapshots`` output: two sub-projects, one of them mostly late; issues with a
    due date set at creation are late more often; delay grows with the planned duration."""
    rng = np.random.default_rng(seed)
    keys = [f"{'LATE' if i % 2 else 'OK'}-{i}" for i in range(n)]
    opened = pd.Timestamp("2012-01-01") + pd.to_timedelta(np.sort(rng.integers(0, 900, n)), "D")
    late_sub = np.array([i % 2 == 1 for i in range(n)])
    plan = rng.integers(5, 120, n)
    due_set = np.where(rng.random(n) < 0.6, 0, rng.integers(1, 60, n))
    due_set = np.minimum(due_set, plan)
    p_late = np.where(late_sub, 0.75, 0.15) * np.where(due_set == 0, 1.0, 0.5)
    delayed = rng.random(n) < p_late
    delaydays = np.where(delayed, np.maximum(1, (plan * rng.uniform(0.2, 1.5, n)).astype(int)), 0)
    frames = {}
    for time in ("creation", "due", "discussion"):
        progress = {"creation": np.zeros(n, int), "due": due_set,
                    "discussion": np.minimum(plan, due_set + rng.integers(0, 20, n))}[time]
        df = pd.DataFrame({
            "snapshot_id": [f"p:{k}@{time}" for k in keys], "task_id": [f"p:{k}" for k in keys],
            "workspace_id": "delayed_issues:p", "project": "p", "prediction_time": time, "issuekey": keys,
            "openeddate": opened, "type": rng.choice(["Bug", "Task"], n), "priority": rng.choice(["Major", None], n),
            "delaydays": delaydays,
        })
        for c in DELAY_COUNTS:
            df[c] = 0 if time == "creation" else rng.integers(0, 5, n)
        df["perofdelay"] = 0.0 if time == "creation" else rng.uniform(0, 100, n)
        df["reporterrep"] = rng.uniform(0, 1, n)
        df["ProgressTime"] = progress
        df["RemainingDay"] = plan - progress
        for k in TOPIC_SIZES:
            df[f"topic_{k}"] = rng.integers(1, k + 1, n)
        df["source_order"] = np.arange(n)
        frames[time] = df.sample(frac=1.0, random_state=seed).reset_index(drop=True)  # row order differs per file
    return frames


@pytest.fixture(scope="module")
def frames():
    return make_frames()


def _y(frames, X):
    c = frames["creation"].set_index("issuekey").reindex(X.index)
    return risk_classes(c["delaydays"], class_thresholds(c["delaydays"]))


def test_strict_features_leave_out_leaky_columns(frames):
    X = build_features(frames, "discussion")
    assert not set(LEAKY_COLUMNS) & set(X.columns)
    assert "delaydays" not in X.columns and "openeddate" not in X.columns
    assert list(X.index) == frames["discussion"]["issuekey"].tolist()
    paper = build_features(frames, "discussion", "paper")
    assert set(LEAKY_COLUMNS) <= set(paper.columns)
    with pytest.raises(ValueError):
        build_features(frames, "discussion", "everything")


def test_remaining_days_hidden_until_the_due_date_is_set(frames):
    X = build_features(frames, "creation")
    due = frames["due"].set_index("issuekey").reindex(X.index)
    later = due["ProgressTime"].to_numpy() > 0
    assert later.any() and (~later).any()
    assert X.loc[later, "RemainingDay"].isna().all() and X.loc[later, "plan_days"].isna().all()
    assert X.loc[~later, "RemainingDay"].notna().all()
    assert (X["due_known"] == (~later).astype(float)).all()


def test_history_uses_only_outcomes_visible_before_the_prediction_time(frames):
    """Change the delay of every issue whose due date has not passed at issue i's prediction time (i included):
    i's features must not move. This fails if any history feature peeks at future outcomes."""
    X = build_features(frames, "discussion")
    i = X.index[len(X) // 2]
    d = frames["discussion"].set_index("issuekey")
    T = d.loc[i, "openeddate"] + pd.Timedelta(days=int(d.loc[i, "ProgressTime"]))
    due_info = frames["due"].set_index("issuekey")
    plan = d["ProgressTime"] + d["RemainingDay"]
    visible_from = d["openeddate"] + pd.to_timedelta(np.maximum(plan, due_info.reindex(d.index)["ProgressTime"]) + 1,
                                                     "D")
    future = visible_from.index[visible_from >= T]
    assert i in future and len(future) > 10
    changed = {}
    for t, f in frames.items():
        f = f.copy()
        hit = f["issuekey"].isin(future)
        f.loc[hit, "delaydays"] = np.where(f.loc[hit, "delaydays"] > 0, 0, 500)
        changed[t] = f
    X2 = build_features(changed, "discussion")
    pd.testing.assert_series_equal(X.loc[i], X2.loc[i])
    past = visible_from.index[visible_from < T]
    assert len(past) > 10  # and there is a visible history for it to use
    assert not np.isnan(X.loc[i, "hist_project_rate"])


def test_classifier_api_and_signal(frames):
    X = build_features(frames, "discussion")
    y = _y(frames, X)
    cut = int(0.75 * len(X))
    model = DelayRiskClassifier(DelayRiskConfig(**FAST)).fit(X.iloc[:cut], y[:cut])
    proba = model.predict_proba(X.iloc[cut:])
    assert proba.shape == (len(X) - cut, 4)
    assert np.allclose(proba.sum(axis=1), 1.0)
    pred = model.predict(X.iloc[cut:])
    assert set(np.unique(pred)) <= {0, 1, 2, 3}
    pdl = p_delayed(model, X.iloc[cut:])
    assert np.allclose(pdl, 1.0 - proba[:, 0])
    assert (model.at_risk(X.iloc[cut:]) == (pred > 0)).all()
    assert model.threshold_ is not None and 0.05 <= model.threshold_ <= 0.95
    # the late sub-project and the due-date-at-creation signal are learnable: well above chance
    assert delayed_auc(y[cut:], pdl) > 0.75
    assert delayed_prf(y[cut:], pred)[2] > 0.3
    assert "subproject" in model.feature_importance()


def test_classifier_handles_unseen_categories_and_checks_input(frames):
    X = build_features(frames, "creation")
    y = _y(frames, X)
    model = DelayRiskClassifier(DelayRiskConfig(**FAST, tune_threshold=False)).fit(X, y)
    assert model.threshold_ is None
    new = X.iloc[:5].copy()
    new["subproject"] = "NEVER-SEEN"
    new["type"] = None
    assert model.predict_proba(new).shape == (5, 4)
    with pytest.raises(ValueError):
        model.predict_proba(X.drop(columns=["subproject"]))
    with pytest.raises(ValueError):
        DelayRiskClassifier().fit(X, y[:-1])
    with pytest.raises(ValueError):
        DelayRiskClassifier().fit(X, np.full(len(X), 4))


def test_lgbm_only_and_rf_only_members(frames):
    X = build_features(frames, "due")
    y = _y(frames, X)
    for w in (0.0, 1.0):
        m = DelayRiskClassifier(DelayRiskConfig(**FAST, rf_weight=w, tune_threshold=False)).fit(X, y)
        assert [k for k, _ in m.members_] == (["lgbm"] if w == 0.0 else ["rf"])
        assert np.allclose(m.predict_proba(X).sum(axis=1), 1.0)


def _write_project(folder, name: str, frames: dict[str, pd.DataFrame]) -> None:
    """CSV files in the source format (Latin-1, NULL for missing) from synthetic snapshot frames."""
    cols = ["issuekey", "delaydays", "openeddate", "type", *DELAY_COUNTS[:1], "repetition", "perofdelay",
            *[c for c in DELAY_COUNTS if c not in ("discussion", "repetition")], "priority", "reporterrep",
            "ProgressTime", "RemainingDay", *[f"topic_{k}" for k in TOPIC_SIZES]]
    for time, df in frames.items():
        out = df.copy()
        out["openeddate"] = out["openeddate"].dt.strftime("%Y-%m-%d %H:%M:%S")
        out[cols].to_csv(folder / f"{name}_{time}.csv", index=False, na_rep="NULL", encoding="latin-1")


def test_evaluation_end_to_end_on_synthetic_projects(tmp_path):
    from sunday.evaluation.delay_risk import DelayRiskEvaluation

    src = tmp_path / "delayed_issues"
    src.mkdir()
    _write_project(src, "toy", make_frames(300, seed=1))
    flat = make_frames(60, seed=2)
    for f in flat.values():
        f["delaydays"] = 0
    _write_project(src, "flat", flat)
    result = DelayRiskEvaluation().run(tmp_path, workers=1, progress=False, config=FAST)
    assert {r["project"] for r in result.rows} == {"toy", "mean of 1"}
    assert len([r for r in result.rows if r["project"] == "toy"]) == 6  # 3 times x 2 splits
    assert any(n.startswith("flat: skipped") for n in result.notes)
    for r in result.rows:
        assert r["n_train"] + r["n_test"] == 300
        assert 0.0 <= r["f"] <= 1.0
