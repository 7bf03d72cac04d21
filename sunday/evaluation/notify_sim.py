"""Notification ranking on simulated inboxes (``sunday eval notify-sim``).

Simulates workspaces (or reads a written simulation: option ``sim``), derives their notifications, inbox sessions
and clicks (:func:`sunday.data.simulator.notifications.simulate_notifications`, the click model hidden), computes
every seen notification's point-in-time features at its session's opening
(:func:`sunday.models.personalization.notifications.log_features`), and splits the *sessions by time*: those opened
in the first ``train_share`` (70%) of the period train, the rest are the test. Rankers train on the training
sessions only; the features of a test session still use all history before it (clicks of earlier test sessions
included), as serving would.

Rows -- one per ordering of each test session's notifications:

* ``ranker``: :class:`NotificationRanker` (LightGBM click classifier, the logged position as a training feature,
  every row scored at position 1); ``ranker-lambdarank``: the same with ``LGBMRanker(objective="lambdarank")``
  grouped by session; ``ranker-no-position``: the classifier without the position feature (trained on the biased
  clicks as they are);
* ``click-model@logged-position``: the ``ranker``'s click prediction at the position the log showed each row -- a
  diagnostic: it reproduces the logged order's position bias, which the raw-click NDCG rewards;
* ``logged-order``: newest first, what the inbox showed (the issue's baseline, "NDCG against the logged order");
* ``random``: a seeded shuffle; ``type-prior``: the training period's click rate of the type (ties: logged order);
  ``assignment-first``: assigned / reassigned / mention, then due_soon, then comment, then status changes and
  completions (ties: logged order); ``personal-type-ctr``: the recipient's own smoothed click rate of the type
  before the session (the ``user_type_ctr`` feature alone);
* ``oracle``: the hidden probability that the recipient finds the notification worth opening (``p_attract`` of
  the truth table): an upper bound no observable model reaches.

Metrics (ties in a score broken by the logged position):

* ``ndcg@k``: NDCG@5 / @10 with relevance = the logged click, mean over test sessions with at least one click;
* ``ndcg@k_ips``: the clicks weighted by 1 / propensity of their logged position (the examination curve estimated
  from the *training* clicks by the ``ranker``'s position effect, :func:`position_propensity`), pooled over those
  sessions (sum of DCG / sum of ideal DCG: a per-session ratio would cancel the weight of a session's only click).
  Observable only: this is the criterion a real deployment could choose models by;
* ``ndcg@k_true``: the same sessions, relevance = hidden ``p_attract`` (linear gain), free of position bias;
* ``sim_clicks@5``: expected clicks in the top 5 per test session were the inbox to show this order (hidden
  p_attract x position^-0.7: a replay through the simulator's click model, all test sessions);
* ``auc``: ROC AUC of the ordering score against the click over all test notifications (scores across sessions:
  indicative for a lambdarank score); ``auc_logged_pos``: models with the position feature, their click prediction
  at the logged position.

Position bias: logged clicks favour what the logged order put on top (P(examine) = position^-0.7 in the simulator),
so on raw clicks the logged order -- and anything that mimics it -- has a head start that no reordering gets (the
oracle itself scores about the logged order's raw-click NDCG). Handling: the position is a training feature, set
to 1 at inference; model choice and the claims rest on ``ndcg@k_ips`` (observable) and ``ndcg@k_true`` (hidden).
Options: ``events`` (200000), ``seed`` (0), ``sim`` (a simulation folder to read instead), ``train_share`` (0.7),
``n_estimators`` (300).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sunday.evaluation.base import EvalResult, Evaluation, register, resolve_options

DEFAULTS: dict[str, Any] = {"events": 200_000, "seed": 0, "sim": None, "train_share": 0.7, "n_estimators": 300}
KS = (5, 10)
#: the assignment-first heuristic's order of types (lower first)
TYPE_URGENCY = {"assigned": 0, "reassigned": 0, "mention": 0, "due_soon": 1, "comment": 2, "status_changed": 3,
                "completed": 3}


@dataclass
class NotifyData:
    """A simulation, its notification log (observable), the hidden truth, and the feature frame of seen rows."""

    tables: Any
    log: Any  # pyarrow Table, observable
    truth: Any  # pyarrow Table, hidden
    frame: pd.DataFrame  # log_features(...), plus p_attract (hidden: for scoring only)
    source: dict[str, Any]
    seconds: dict[str, float]


def load_notify_data(events: int = 200_000, seed: int = 0, sim: str | Path | None = None) -> NotifyData:
    """Simulate (or read ``sim``), derive notifications and compute the features of every seen notification."""
    from sunday.data.simulator.notifications import simulate_notifications
    from sunday.models.personalization.notifications import NotificationHistory, log_features

    seconds = {}
    t0 = time.perf_counter()
    if sim:
        from sunday.data.simulator.writer import read_simulation

        tables = read_simulation(Path(sim))
        source: dict[str, Any] = {"sim": str(sim), "seed": int(seed)}
    else:
        from sunday.data.simulator import SimConfig, simulate_tables

        cfg = SimConfig(n_events=int(events), seed=int(seed))
        tables = simulate_tables(cfg)
        source = {"events": cfg.n_events, "seed": cfg.seed}
    seconds["simulate"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    log, truth = simulate_notifications(tables, int(seed))
    seconds["notifications"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    history = NotificationHistory.from_tables(tables, log)
    frame = log_features(history, log)
    p = truth.select(["notification_id", "p_attract"]).to_pandas().set_index("notification_id")["p_attract"]
    frame["p_attract"] = p.reindex(frame["notification_id"]).to_numpy()
    seconds["features"] = time.perf_counter() - t0
    return NotifyData(tables, log, truth, frame, source, seconds)


def time_split(frame: pd.DataFrame, train_share: float = 0.7) -> tuple[pd.DataFrame, pd.DataFrame, pd.Timestamp]:
    """(train, test, cut): sessions opened before ``min + train_share * (max - min)`` of the opening times train."""
    if not 0 < train_share < 1:
        raise ValueError(f"train_share must be between 0 and 1, got {train_share}")
    t = pd.to_datetime(frame["opened_at"])
    cut = t.min() + train_share * (t.max() - t.min())
    train = frame[t < cut].reset_index(drop=True)
    test = frame[t >= cut].reset_index(drop=True)
    return train, test, cut


def fit_ranker(train: pd.DataFrame, config: Any = None):
    from sunday.models.personalization.notifications import NotificationRanker

    return NotificationRanker(config).fit(train, train["clicked"].to_numpy(), train["session_id"].to_numpy())


def baseline_scores(train: pd.DataFrame, test: pd.DataFrame, seed: int = 0) -> dict[str, np.ndarray]:
    """Scores of the non-learned orderings of the test rows (higher first; ties go to the logged order)."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(77,)))
    type_ctr = train.groupby("type")["clicked"].mean()
    return {
        "logged-order": -test["position"].to_numpy(np.float64),
        "random": rng.random(len(test)),
        "type-prior": test["type"].map(type_ctr).fillna(float(train["clicked"].mean())).to_numpy(np.float64),
        "assignment-first": -test["type"].map(TYPE_URGENCY).fillna(4).to_numpy(np.float64),
        "personal-type-ctr": test["user_type_ctr"].to_numpy(np.float64),
    }


def score_row(name: str, test: pd.DataFrame, scores: np.ndarray, propensity: np.ndarray | None = None,
              logged_pos_scores: np.ndarray | None = None, position_power: float | None = None) -> dict[str, Any]:
    """One row of the table for the ordering ``scores`` of the test rows (ties broken by the logged position):
    NDCG@5/10 against clicks, against IPS-weighted clicks (``propensity``), against the hidden p_attract, AUC, and
    the expected clicks of the top 5 were the inbox to show this order (hidden click model, ``position_power``)."""
    from sklearn.metrics import roc_auc_score

    from sunday.models.personalization.notifications import ips_relevance, ndcg_at_k

    scores = np.asarray(scores, dtype=np.float64)
    sess, pos, y = test["session_id"].to_numpy(), test["position"].to_numpy(np.float64), test["clicked"].to_numpy()
    has_click = test.groupby("session_id")["clicked"].transform("sum").to_numpy() > 0
    row: dict[str, Any] = {"method": name}
    for k in KS:
        row[f"ndcg@{k}"], n = ndcg_at_k(sess, scores, y, k, tiebreak=pos)
    if propensity is not None:
        rel = ips_relevance(y, pos, propensity)
        for k in KS:
            row[f"ndcg@{k}_ips"], _ = ndcg_at_k(sess, scores, rel, k, tiebreak=pos, pooled=True)
    if "p_attract" in test.columns:
        pa_ = test["p_attract"].to_numpy()
        for k in KS:
            row[f"ndcg@{k}_true"], _ = ndcg_at_k(sess[has_click], scores[has_click], pa_[has_click], k,
                                                 tiebreak=pos[has_click])
        if position_power is not None:
            f = pd.DataFrame({"s": sess, "score": scores, "pos": pos, "p": pa_})
            f = f.sort_values(["s", "score", "pos"], ascending=[True, False, True], kind="stable")
            shown = f.groupby("s").cumcount().to_numpy() + 1
            top = shown <= 5
            row["sim_clicks@5"] = float((f["p"].to_numpy()[top] * shown[top] ** -position_power).sum()
                                        / f["s"].nunique())
    row["auc"] = float(roc_auc_score(y, scores)) if 0 < y.sum() < len(y) else float("nan")
    row["auc_logged_pos"] = (float(roc_auc_score(y, logged_pos_scores)) if logged_pos_scores is not None
                             and 0 < y.sum() < len(y) else float("nan"))
    row["sessions"] = n
    return row


def ranker_variants(n_estimators: int = 300, seed: int = 0) -> dict[str, Any]:
    from sunday.models.personalization.notifications import RankerConfig

    return {
        "ranker": RankerConfig(n_estimators=n_estimators, seed=seed),
        "ranker-lambdarank": RankerConfig(objective="lambdarank", n_estimators=n_estimators, seed=seed),
        "ranker-no-position": RankerConfig(position_feature=False, n_estimators=n_estimators, seed=seed),
    }


@register
class NotifySimEvaluation(Evaluation):
    name = "notify-sim"
    description = ("notification ranking on simulated inboxes: LightGBM lambdarank on point-in-time features vs "
                   "the logged (newest-first) order, random and heuristics; NDCG@5/10 on clicks and on the hidden "
                   "engagement probabilities, time split")
    folder = ""  # needs no dataset: the workspaces are simulated

    def run(self, data_dir: Path, **options: Any) -> EvalResult:
        from sunday.data.simulator.notifications import NotifyConfig
        from sunday.models.personalization.notifications import position_propensity

        opts = resolve_options(DEFAULTS, options)
        data = load_notify_data(int(opts["events"]), int(opts["seed"]), opts["sim"])
        train, test, cut = time_split(data.frame, float(opts["train_share"]))
        power = NotifyConfig().position_power  # hidden: only for the simulated-replay column
        models, fit_seconds = {}, {}
        for name, cfg in ranker_variants(int(opts["n_estimators"]), int(opts["seed"])).items():
            t0 = time.perf_counter()
            models[name] = fit_ranker(train, cfg)
            fit_seconds[name] = round(time.perf_counter() - t0, 2)
        # propensity of each logged position, from the training clicks only (the binary model's position effect)
        propensity = position_propensity(models["ranker"], train)
        rows = []
        for name, model in models.items():
            logged = model.predict(test, logged_position=True) if model.config.position_feature else None
            rows.append(score_row(name, test, model.predict(test), propensity, logged, power))
        rows.append(score_row("click-model@logged-position", test,
                              models["ranker"].predict(test, logged_position=True), propensity, None, power))
        for name, scores in baseline_scores(train, test, int(opts["seed"])).items():
            rows.append(score_row(name, test, scores, propensity, None, power))
        rows.append(score_row("oracle", test, test["p_attract"].to_numpy(), propensity, None, power))
        importance = {k: round(v, 1) for k, v in list(models["ranker"].feature_importance().items())[:12]}

        log = data.log.to_pandas()
        seen = log[log["session_id"].notna()]
        by_type = seen.groupby("type")["clicked"].agg(["size", "mean"]).round(3)
        n_ws = len(log["workspace_id"].unique())
        sizes = seen.groupby("session_id").size()
        s = data.seconds
        notes = [
            f"{n_ws} workspaces, {data.tables.events.num_rows:,} events -> {len(log):,} notifications "
            f"({len(seen):,} seen in {seen['session_id'].nunique():,} inbox sessions, mean {sizes.mean():.1f} / "
            f"median {sizes.median():.0f} per session; click rate {seen['clicked'].mean():.3f}); time split at "
            f"{cut:%Y-%m-%d}: {len(train):,} train rows ({train['session_id'].nunique():,} sessions), "
            f"{len(test):,} test rows ({test['session_id'].nunique():,} sessions).",
            "click rate by type: " + ", ".join(f"{t} {r['mean']:.2f} (n={int(r['size'])})"
                                                for t, r in by_type.iterrows()),
            "ndcg@k: relevance = logged click, test sessions with >= 1 click; ndcg@k_ips: the clicks weighted by "
            "1 / propensity of their logged position (estimated from the training clicks: "
            + ", ".join(f"{v:.2f}" for v in propensity[:5]) + " at positions 1-5), pooled DCG / ideal DCG; "
            "ndcg@k_true: the same sessions, relevance = hidden p_attract (position-free); sim_clicks@5: expected "
            "top-5 clicks per test session if shown in this order (hidden click model); ties: the logged position.",
            "position bias: clicks were drawn at the logged (newest-first) position, P(examine) = position^-0.7 "
            "(hidden); the rankers with the position feature learn it and score every row at position 1. On raw "
            "clicks the logged order, and whatever mimics it (click-model@logged-position, ranker-no-position), "
            "keeps that head start -- the oracle itself scores about the logged order's raw-click NDCG; the "
            "IPS-weighted and the hidden NDCG do not carry it.",
            f"time: simulation {s['simulate']:.1f} s, notifications {s['notifications']:.1f} s, features "
            f"{s['features']:.1f} s, fits {fit_seconds} s.",
        ]
        meta = {"propensity": [round(float(v), 4) for v in propensity], "source": data.source,
                "options": dict(opts), "cut": str(cut), "fit_seconds": fit_seconds,
                "seconds": {k: round(v, 2) for k, v in s.items()}, "feature_importance_gain": importance,
                "click_rate_by_type": by_type["mean"].to_dict()}
        return EvalResult(self.name, "method", rows, notes=notes, meta=meta)
