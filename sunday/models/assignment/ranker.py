"""The assignment ranker: LambdaMART (+ the multi-objective network) blended into one multi-objective ordering.

``AssignmentRanker.fit(pairs, assigned, completed, quality)`` learns from a pair frame (see :mod:`.pairs`):

* **assignment score**: LightGBM lambdarank on ``assigned`` (optionally averaged with the neural ranker's score
  head, each standardised by its training spread);
* **completion probability**: the neural completion head when the network is on, else a LightGBM classifier on
  the pairs whose outcome is known (the historical assignee's), else the training rate;
* **expected quality (0-5)**: likewise (neural quality head, else a LightGBM regressor, else the training mean).

``rank(task, candidates, weights)`` scores every candidate and orders them by

    final = w.score * score_share + w.completion * p_complete + w.quality * quality / 5 + w.balance * balance

where ``score_share`` is the candidate's softmax share of the assignment score divided by the best one (1 for the
top candidate), and ``balance`` = (max gini_after - gini_after) / (max - min gini_after) over the candidates, with
``gini_after`` the team's open-points Gini (the feature platform's normalised Gini) if this candidate took the task:
1 for the choice that evens the team out most, 0 for the one that raises inequality most. Each term thus spans
about [0, 1] across the candidates, so a weight is the term's share of the decision. Each recommendation carries the top LightGBM ``pred_contrib``
feature contributions as reasons, and an hours estimate (story points x learned hours per point, scaled by the
candidate's usual completion time relative to the team's).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from sunday.models.assignment.gini import gini_after_each
from sunday.models.assignment.lgbm import LambdaMARTConfig, LambdaMARTRanker, predict_booster
from sunday.models.assignment.pairs import DESCRIPTIONS, FEATURES, pair_features

DEFAULT_HOURS_PER_POINT = 4.0


@dataclass
class RankWeights:
    score: float = 0.4
    completion: float = 0.3
    quality: float = 0.2
    balance: float = 0.1

    @classmethod
    def of(cls, weights: "RankWeights | Mapping[str, float] | None") -> "RankWeights":
        if weights is None:
            return cls()
        if isinstance(weights, RankWeights):
            w = weights
        else:
            unknown = sorted(set(weights) - {"score", "completion", "quality", "balance"})
            if unknown:
                raise ValueError(f"unknown weight(s) {unknown}; known: score, completion, quality, balance")
            w = cls(**{k: float(v) for k, v in weights.items()})
        vals = asdict(w)
        bad = [k for k, v in vals.items() if not np.isfinite(v) or v < 0]
        if bad:
            raise ValueError(f"weight(s) {bad} must be finite and >= 0")
        if sum(vals.values()) <= 0:
            raise ValueError("at least one weight must be > 0")
        return w


@dataclass
class Recommendation:
    user_id: str
    score: float  # softmax share of the assignment score among the candidates (sums to 1)
    completion_probability: float
    expected_quality: float  # 0-5
    estimated_hours: float | None
    gini_after: float
    final_score: float
    reasons: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RankerConfig:
    lgbm: LambdaMARTConfig = field(default_factory=LambdaMARTConfig)
    neural: Any = None  # a NeuralRankerConfig to train the multi-objective network too; None = LightGBM only
    neural_weight: float = 0.5  # its share of the blended assignment score
    neural_trainer: str = "local"  # "local" | "ray" (Ray Train TorchTrainer)
    top_reasons: int = 3
    explain_top: int | None = 3  # candidates (best first) that get SHAP reasons; None = all (TreeSHAP costs ~1 ms
    # per candidate for a 300-tree model on this CPU, the rest of rank() well under 1 ms per candidate)
    outcome_min_rows: int = 30  # known outcomes needed to fit the completion / quality models


@dataclass
class RankRequest:
    """One task to rank for :meth:`AssignmentRanker.rank_many` (the arguments of :meth:`AssignmentRanker.rank`)."""

    task: Mapping[str, Any]
    candidates: Any  # DataFrame or list of candidate dicts
    weights: Any = None  # RankWeights | mapping | None
    team_open_points: Mapping[str, float] | None = None


class InvalidInput(ValueError):
    """Bad request for ``rank`` (empty candidate list, task without text, ...): the message names the field."""


def _prior(values: np.ndarray, default: float) -> float:
    v = values[np.isfinite(values)]
    return float(v.mean()) if len(v) else default


class AssignmentRanker:
    def __init__(self, config: RankerConfig | None = None):
        self.config = config or RankerConfig()

    # ------------------------------------------------------------------ fit
    def fit(self, pairs: pd.DataFrame, assigned: Sequence, completed: Sequence | None = None,
            quality: Sequence | None = None, hours: Sequence | None = None) -> "AssignmentRanker":
        import lightgbm as lgb

        n = len(pairs)
        assigned = np.asarray(assigned, dtype="float64")
        completed = np.full(n, np.nan) if completed is None else np.asarray(completed, dtype="float64")
        quality = np.full(n, np.nan) if quality is None else np.asarray(quality, dtype="float64")
        for name, arr in (("assigned", assigned), ("completed", completed), ("quality", quality)):
            if len(arr) != n:
                raise ValueError(f"{name} has {len(arr)} values for {n} pairs")
        if n == 0:
            raise ValueError("cannot fit the assignment ranker on no pairs")
        X = pair_features(pairs)
        task_ids = pairs["task_id"].reset_index(drop=True)
        self.lgbm_ = LambdaMARTRanker(self.config.lgbm).fit(X, task_ids, assigned)
        raw = self.lgbm_.predict(X)
        self.lgbm_scale_ = float(np.std(raw)) or 1.0

        params = {"n_estimators": 200, "learning_rate": 0.05, "num_leaves": 15, "min_child_samples": 20,
                  "random_state": self.config.lgbm.seed, "n_jobs": self.config.lgbm.n_jobs, "verbose": -1}
        known_c = np.isfinite(completed)
        self.completion_prior_ = _prior(completed, 0.5)
        self.completion_model_ = None
        if known_c.sum() >= self.config.outcome_min_rows and len(np.unique(completed[known_c])) == 2:
            self.completion_model_ = lgb.LGBMClassifier(**params).fit(X[known_c], completed[known_c].astype(int))
        known_q = np.isfinite(quality)
        self.quality_prior_ = _prior(quality, 3.0)
        self.quality_model_ = None
        if known_q.sum() >= self.config.outcome_min_rows:
            self.quality_model_ = lgb.LGBMRegressor(**params).fit(X[known_q], quality[known_q])

        self.neural_ = None
        if self.config.neural is not None:
            from sunday.models.assignment.neural import NeuralRanker

            self.neural_ = NeuralRanker(self.config.neural).fit(X, task_ids.to_numpy(), assigned, completed, quality,
                                                                trainer=self.config.neural_trainer)
            self.neural_scale_ = float(np.std(self.neural_.predict(X)["score"])) or 1.0

        self.hours_per_point_ = DEFAULT_HOURS_PER_POINT
        if hours is not None and "story_points" in pairs:
            h = np.asarray(hours, dtype="float64")
            sp = pd.to_numeric(pairs["story_points"], errors="coerce").to_numpy(dtype="float64")
            ok = np.isfinite(h) & np.isfinite(sp) & (sp > 0) & (h > 0)
            if ok.sum() >= 10:
                self.hours_per_point_ = float(np.median(h[ok] / sp[ok]))
        self.n_pairs_ = n
        self.n_tasks_ = int(task_ids.nunique())
        return self

    # ------------------------------------------------------------- predict
    def predict_frame(self, pairs: pd.DataFrame, X: pd.DataFrame | None = None) -> pd.DataFrame:
        """Per pair: ``score_logit`` (blended), ``completion``, ``quality`` (``X``: its pair features if known)."""
        X = pair_features(pairs) if X is None else X
        logit = self.lgbm_.predict(X) / self.lgbm_scale_
        completion = (predict_booster(self.completion_model_.booster_, X) if self.completion_model_ is not None
                      else np.full(len(X), self.completion_prior_))
        quality = (predict_booster(self.quality_model_.booster_, X) if self.quality_model_ is not None
                   else np.full(len(X), self.quality_prior_))
        if self.neural_ is not None:
            out = self.neural_.predict(X)
            a = self.config.neural_weight
            logit = (1 - a) * logit + a * out["score"] / self.neural_scale_
            completion = out["completion"] if self.completion_model_ is None else (completion + out["completion"]) / 2
            quality = out["quality"] if self.quality_model_ is None else (quality + out["quality"]) / 2
        return pd.DataFrame({"task_id": pairs["task_id"].to_numpy(), "user_id": pairs["user_id"].to_numpy(),
                             "score_logit": logit, "completion": np.clip(completion, 0, 1),
                             "quality": np.clip(quality, 0, 5)}, index=pairs.index)

    def rank_frame(self, pairs: pd.DataFrame) -> pd.DataFrame:
        """Batch scoring for evaluation: ``predict_frame`` plus ``rank`` (1 = best logit) within each task."""
        out = self.predict_frame(pairs)
        out["rank"] = out.groupby("task_id")["score_logit"].rank(ascending=False, method="first").astype(int)
        return out

    def rank(self, task: Mapping[str, Any], candidates: pd.DataFrame | Sequence[Mapping[str, Any]],
             weights: RankWeights | Mapping[str, float] | None = None,
             team_open_points: Mapping[str, float] | None = None, require_text: bool = False,
             explain: int | None | str = "config") -> list[Recommendation]:
        """Every candidate, best first (see the module doc for the ordering).

        ``team_open_points`` adds team members who are not candidates to the Gini (user -> open points).
        ``require_text``: reject a task without title/description text (services that rank on text need it).
        ``explain``: how many of the best candidates get their top feature contributions as reasons (None: all;
        default: ``config.explain_top``); the others get an empty list.
        """
        return self.rank_many([RankRequest(task, candidates, weights, team_open_points)], require_text=require_text,
                              explain=explain)[0]

    def rank_many(self, requests: Sequence["RankRequest"], require_text: bool = False,
                  explain: int | None | str = "config") -> list[list[Recommendation]]:
        """:meth:`rank` for several tasks at once: one model call over all their candidates (and one SHAP call over
        the explained ones), so a batch costs little more than its largest member. Every request is validated
        first; a bad one raises :class:`InvalidInput` before anything is scored (callers that need per-request
        errors validate with :meth:`pair_frame` first)."""
        if not requests:
            return []
        weights = [RankWeights.of(r.weights) for r in requests]
        frames = [self.pair_frame(r.task, r.candidates, require_text=require_text) for r in requests]
        if len(frames) > 1:  # per-task features (text rank, ...) group by task_id: one group per request
            for k, f in enumerate(frames):
                f["task_id"] = f"{k}:{f['task_id'].iloc[0]}"
        bounds = np.cumsum([0] + [len(f) for f in frames])
        pairs = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
        X = pair_features(pairs)
        pred = self.predict_frame(pairs, X)
        n_explain = self.config.explain_top if explain == "config" else explain
        parts, explained = [], []
        for k, (req, w) in enumerate(zip(requests, weights)):
            lo, hi = int(bounds[k]), int(bounds[k + 1])
            part = self._blend(req, w, pairs.iloc[lo:hi], pred.iloc[lo:hi])
            parts.append(part)
            order = part["order"]
            explained.extend(lo + (order if n_explain is None else order[: max(0, int(n_explain))]))
        reasons: dict[int, list] = {}
        if explained:
            idx = np.asarray(explained)
            contrib = self.lgbm_.contributions(X.iloc[idx])[:, : len(FEATURES)]
            values = X.to_numpy()
            reasons = {int(i): self._reasons(contrib[k], values[i]) for k, i in enumerate(idx)}
        out = []
        for k, part in enumerate(parts):
            lo = int(bounds[k])
            out.append([Recommendation(
                user_id=part["user_ids"][i], score=float(part["share"][i]),
                completion_probability=float(part["completion"][i]), expected_quality=float(part["quality"][i]),
                estimated_hours=None if part["hours"] is None else float(part["hours"][i]),
                gini_after=float(part["gini_after"][i]), final_score=float(part["final"][i]),
                reasons=reasons.get(lo + int(i), []),
            ) for i in part["order"]])
        return out

    def _blend(self, req: "RankRequest", w: RankWeights, pairs: pd.DataFrame, pred: pd.DataFrame) -> dict[str, Any]:
        """One task's multi-objective ordering from its candidates' predictions (see the module doc)."""
        logit = pred["score_logit"].to_numpy()
        share = np.exp(logit - logit.max())
        share /= share.sum()
        points = pd.to_numeric(pd.Series([req.task.get("story_points")]), errors="coerce").iloc[0]
        add = float(points) if np.isfinite(points) and points > 0 else 1.0
        loads = pd.to_numeric(pairs.get("open_points", pd.Series(np.nan, index=pairs.index)), errors="coerce")
        loads = loads.fillna(0.0).to_numpy(dtype="float64")
        candidate_ids = set(pairs["user_id"])
        others = np.array([float(v) for u, v in (req.team_open_points or {}).items() if u not in candidate_ids],
                          dtype="float64")
        g_after = gini_after_each(np.r_[loads, others], add)[: len(loads)]
        completion = pred["completion"].to_numpy()
        quality = pred["quality"].to_numpy()
        spread = g_after.max() - g_after.min()
        balance = (g_after.max() - g_after) / spread if spread > 1e-12 else np.ones(len(g_after))
        final = (w.score * share / share.max() + w.completion * completion + w.quality * quality / 5.0
                 + w.balance * balance)
        return {"share": share, "completion": completion, "quality": quality, "gini_after": g_after,
                "final": final, "hours": self._hours(pairs, points), "order": np.argsort(-final, kind="stable"),
                "user_ids": pairs["user_id"].astype(str).tolist()}

    # ------------------------------------------------------------- helpers
    @staticmethod
    def pair_frame(task: Mapping[str, Any], candidates: pd.DataFrame | Sequence[Mapping[str, Any]],
                   require_text: bool = False) -> pd.DataFrame:
        """Validate one task and its candidates and build their pair frame (one row per candidate)."""
        if not isinstance(task, Mapping):
            raise InvalidInput(f"task must be a mapping of fields, got {type(task).__name__}")
        if require_text:
            text = " ".join(str(task.get(k) or "") for k in ("title", "description")).strip()
            if not text:
                raise InvalidInput("task: field 'title' or 'description' must hold text")
        frame = candidates.copy() if isinstance(candidates, pd.DataFrame) else pd.DataFrame(list(candidates))
        if len(frame) == 0:
            raise InvalidInput("candidates: the list is empty; give at least one candidate user")
        if "user_id" not in frame:
            raise InvalidInput("candidates: every candidate needs a 'user_id'")
        ids = frame["user_id"]
        if ids.isna().any() or (ids.astype(str).str.strip() == "").any():
            raise InvalidInput("candidates: 'user_id' must not be empty")
        dup = ids[ids.duplicated()].astype(str).unique().tolist()
        if dup:
            raise InvalidInput(f"candidates: user_id {dup[0]!r} appears more than once")
        frame = frame.reset_index(drop=True)
        frame["task_id"] = str(task.get("task_id", "task"))
        for key, value in task.items():
            if key not in ("task_id",) and key not in frame:
                frame[key] = [value] * len(frame)
        return frame

    def _hours(self, pairs: pd.DataFrame, points: float) -> np.ndarray | None:
        if not np.isfinite(points) or points <= 0:
            return None
        base = float(points) * self.hours_per_point_
        mch = pd.to_numeric(pairs.get("mean_completion_hours", pd.Series(np.nan, index=pairs.index)),
                            errors="coerce").to_numpy(dtype="float64")
        med = np.nanmedian(mch) if np.isfinite(mch).any() else np.nan
        rel = np.where(np.isfinite(mch) & (med > 0), np.clip(mch / med, 0.5, 2.0), 1.0) if np.isfinite(med) \
            else np.ones(len(pairs))
        return base * rel

    def _reasons(self, contrib: np.ndarray, x: np.ndarray) -> list[dict[str, Any]]:
        top = np.argsort(-np.abs(contrib), kind="stable")[: self.config.top_reasons]
        out = []
        for j in top:
            if contrib[j] == 0:
                continue
            name = FEATURES[j]
            value = x[j]
            out.append({"feature": name, "description": DESCRIPTIONS.get(name, name),
                        "value": None if not np.isfinite(value) else round(float(value), 4),
                        "contribution": round(float(contrib[j]), 4)})
        return out

    # ------------------------------------------------------------- persistence
    def save(self, path: str | Path) -> Path:
        """A folder: LightGBM boosters as text, the network (if any), and the scalars as JSON."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.lgbm_.model_.booster_.save_model(str(path / "lambdamart.txt"))
        if self.completion_model_ is not None:
            self.completion_model_.booster_.save_model(str(path / "completion.txt"))
        if self.quality_model_ is not None:
            self.quality_model_.booster_.save_model(str(path / "quality.txt"))
        if self.neural_ is not None:
            self.neural_.save(path / "neural")
        meta = {"features": FEATURES, "lgbm_scale": self.lgbm_scale_, "completion_prior": self.completion_prior_,
                "quality_prior": self.quality_prior_, "hours_per_point": self.hours_per_point_,
                "neural_scale": getattr(self, "neural_scale_", None), "neural_weight": self.config.neural_weight,
                "top_reasons": self.config.top_reasons, "explain_top": self.config.explain_top,
                "n_pairs": self.n_pairs_, "n_tasks": self.n_tasks_,
                "lgbm_config": asdict(self.config.lgbm)}
        (path / "ranker.json").write_text(json.dumps(meta, indent=2))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "AssignmentRanker":
        import lightgbm as lgb

        path = Path(path)
        meta = json.loads((path / "ranker.json").read_text())
        if meta["features"] != FEATURES:
            raise ValueError(f"{path}: model was trained on other features than this code computes; retrain it")
        self = cls(RankerConfig(lgbm=LambdaMARTConfig(**meta["lgbm_config"]), neural_weight=meta["neural_weight"],
                                top_reasons=meta["top_reasons"], explain_top=meta.get("explain_top", 3)))
        self.lgbm_ = LambdaMARTRanker(self.config.lgbm)
        self.lgbm_.model_ = _BoosterModel(lgb.Booster(model_file=str(path / "lambdamart.txt")))
        self.lgbm_.feature_names_ = list(FEATURES)
        self.completion_model_ = (_BoosterModel(lgb.Booster(model_file=str(path / "completion.txt")))
                                  if (path / "completion.txt").exists() else None)
        self.quality_model_ = (_BoosterModel(lgb.Booster(model_file=str(path / "quality.txt")))
                               if (path / "quality.txt").exists() else None)
        self.neural_ = None
        if (path / "neural").exists():
            from sunday.models.assignment.neural import NeuralRanker

            self.neural_ = NeuralRanker.load(path / "neural")
            self.neural_scale_ = meta["neural_scale"]
        self.lgbm_scale_ = meta["lgbm_scale"]
        self.completion_prior_ = meta["completion_prior"]
        self.quality_prior_ = meta["quality_prior"]
        self.hours_per_point_ = meta["hours_per_point"]
        self.n_pairs_ = meta["n_pairs"]
        self.n_tasks_ = meta["n_tasks"]
        return self


class _BoosterModel:
    """A loaded LightGBM Booster in the place of a fitted sklearn wrapper (the ranker only uses ``booster_``)."""

    def __init__(self, booster):
        self.booster_ = booster
