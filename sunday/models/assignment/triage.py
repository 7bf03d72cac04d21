"""Fixer recommendation from report text and history: LambdaMART over (report, developer) pairs.

``HistoryLambdaMARTAssignee`` has the shape of the text baselines (``fit(texts, assignees)`` on reports in time
order, ``rank(texts, k)``), so the triage evaluation runs it beside them on the same split. Each (report,
candidate) pair gets the shared pair features (:mod:`.pairs`) from three sources, all computed from a *history*
of reports that come strictly before the report being ranked:

* ``text_score``: the TF-IDF (word 1-2 grams) + linear SVM baseline's decision value for the candidate;
* ``knn_score``: summed TF-IDF cosine of the report to the candidate's reports among its ``knn`` nearest history
  reports;
* ``history_count`` / ``recent_count`` / ``since_last``: the candidate's reports in the whole history, in its last
  ``recent_fraction``, and how many reports ago their last one was.

Point in time: profiles come only from earlier work. For a training report at position ``i`` (time order), the
nearest neighbours and counts use reports ``0..i-1`` only; for a test report, the whole training set (frozen at
the cut). The text score of a training report is cross-fitted: the SVM that scores it was trained on the other
``folds - 1`` folds of a random ``folds``-fold split, so it never saw the report itself, and is as strong as the SVM
that scores test reports (a chronological expanding-window variant, whose early folds have far weaker text models
than the test's, measured 29.4/67.9/80.9 on jdt against 45.7/71.7/83.6 for this one). Candidates per report: the
top ``candidates`` developers by text score, plus the ten most recent and ten nearest-neighbour ones (top-k
beyond that list is capped by it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from sunday.models.assignment.lgbm import LambdaMARTConfig, LambdaMARTRanker
from sunday.models.assignment.pairs import pair_features
from sunday.models.assignment.text_baselines import TfidfSvmAssignee, _as_lists, _check_k


@dataclass
class TriageConfig:
    folds: int = 5  # cross-fitting folds of the text score
    svm_C: float = 0.3  # measured on the chronological firefox split: C 1.0 24.1/40.9/49.2, 0.3 25.4/42.7/52.8
    candidates: int = 30
    knn: int = 20
    recent_fraction: float = 0.1
    min_recent: int = 50
    seed: int = 0
    lgbm: LambdaMARTConfig = field(default_factory=lambda: LambdaMARTConfig(
        n_estimators=300, learning_rate=0.03, num_leaves=15, min_child_samples=20))


def _scores_on(model: TfidfSvmAssignee, texts: list[str], devs: np.ndarray) -> np.ndarray:
    """Decision values of ``model`` in the column order ``devs`` (a class it never saw gets its row's minimum - 1)."""
    s = model.decision_function(texts)
    if s.shape[1] != len(model.classes_):  # single-class model
        s = np.zeros((len(texts), len(model.classes_)))
    out = np.full((len(texts), len(devs)), np.nan)
    col = {d: j for j, d in enumerate(devs)}
    for j, c in enumerate(model.classes_):
        out[:, col[c]] = s[:, j]
    low = np.nanmin(out, axis=1, keepdims=True) - 1.0
    return np.where(np.isnan(out), low, out)


class HistoryLambdaMARTAssignee:
    """LambdaMART over text-model, nearest-neighbour and history features of (report, developer) pairs."""

    def __init__(self, config: TriageConfig | None = None, embed: Callable[[list[str]], np.ndarray] | None = None):
        """``embed``: texts -> (n, dim) sentence embeddings (e.g. ``TextEmbedder.embed``) for ``embed_sim``, the
        cosine of a report to the mean embedding of the candidate's earlier reports; None leaves it out."""
        self.config = config or TriageConfig()
        self.embed = embed

    # -- pieces
    def _unit(self, texts: list[str]) -> np.ndarray:
        E = np.asarray(self.embed(texts), dtype="float64")
        return E / np.maximum(np.linalg.norm(E, axis=1, keepdims=True), 1e-12)

    @staticmethod
    def _centroid_cos(sums: np.ndarray, E: np.ndarray, q: np.ndarray, d: np.ndarray) -> np.ndarray:
        norms = np.linalg.norm(sums[d], axis=1)
        dots = np.einsum("ij,ij->i", sums[d], E[q])
        return np.where(norms > 0, dots / np.maximum(norms, 1e-12), np.nan)

    def _knn(self, Q, past_only: bool) -> np.ndarray:
        """(n_queries, D) summed cosine to each developer's reports among the ``knn`` nearest history reports."""
        D = len(self.classes_)
        out = np.zeros((Q.shape[0], D))
        if self.X_ is None:
            return out
        k = min(self.config.knn, self.X_.shape[0])
        for lo in range(0, Q.shape[0], 512):
            S = (Q[lo:lo + 512] @ self.X_.T).toarray()
            if past_only:  # query i = history report i: only reports 0..i-1
                rows = np.arange(lo, lo + S.shape[0])[:, None]
                S[np.arange(S.shape[1])[None, :] >= rows] = 0.0
            idx = np.argpartition(-S, k - 1, axis=1)[:, :k]
            sims = np.maximum(np.take_along_axis(S, idx, axis=1), 0.0)
            for r in range(S.shape[0]):
                np.add.at(out[lo + r], self.y_[idx[r]], sims[r])
        return out

    def _pairs(self, text: np.ndarray, knn: np.ndarray, count: np.ndarray, recent: np.ndarray,
               since: np.ndarray) -> pd.DataFrame:
        """Pair frame of n reports: candidates = developers with history, top by text, recency and neighbours."""
        c = self.config
        n = text.shape[0]
        has = count > 0
        text_m = np.where(has, text, -np.inf)
        top_text = np.argsort(-text_m, axis=1, kind="stable")[:, : c.candidates]
        top_recent = np.argsort(-np.where(has, recent, -np.inf), axis=1, kind="stable")[:, :10]
        top_knn = np.argsort(-np.where(has, knn, -np.inf), axis=1, kind="stable")[:, :10]
        q_idx, d_idx = [], []
        for r in range(n):
            cand = [d for d in dict.fromkeys([*top_text[r], *top_recent[r], *top_knn[r]]) if has[r, d]]
            q_idx += [r] * len(cand)
            d_idx += cand
        q = np.array(q_idx, dtype=np.int64)
        d = np.array(d_idx, dtype=np.int64)
        return pd.DataFrame({
            "task_id": q, "user_id": self.classes_[d], "text_score": text[q, d], "knn_score": knn[q, d],
            "history_count": count[q, d], "recent_count": recent[q, d], "since_last": since[q, d],
        })

    def _window(self, n: int) -> int:
        return max(self.config.min_recent, int(n * self.config.recent_fraction))

    # -- estimator
    def training_pairs(self, texts: Sequence, assignees: Sequence) -> pd.DataFrame:
        """The labelled pair frame of the training reports (``task_id`` = position), each built point in time;
        also sets the fitted text model, vectoriser and the frozen history that test reports are ranked against."""
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.model_selection import KFold

        c = self.config
        texts, labels = _as_lists(texts, assignees)
        n = len(texts)
        if n < 2 * c.folds:
            raise ValueError(f"need at least {2 * c.folds} training reports, got {n}")
        self.svm_ = TfidfSvmAssignee(C=c.svm_C).fit(texts, labels)
        self.classes_ = np.array(sorted(set(labels)), dtype=object)
        D = len(self.classes_)
        index = {d: i for i, d in enumerate(self.classes_)}
        self.y_ = np.array([index[a] for a in labels])
        # cross-fitted text scores of the training reports
        text = np.zeros((n, D))
        arr = np.array(texts, dtype=object)
        lab = np.array(labels, dtype=object)
        for tr, te in KFold(c.folds, shuffle=True, random_state=c.seed).split(arr):
            fold = TfidfSvmAssignee(C=c.svm_C).fit(list(arr[tr]), list(lab[tr]))
            text[te] = _scores_on(fold, list(arr[te]), self.classes_)
        # nearest neighbours among earlier reports
        self.vec_ = TfidfVectorizer(sublinear_tf=True, min_df=1 if n < 50 else 2, dtype=np.float32)
        try:
            self.X_ = self.vec_.fit_transform(texts)
        except ValueError:  # no word at all
            self.vec_, self.X_ = None, None
        knn = self._knn(self.X_, past_only=True) if self.X_ is not None else np.zeros((n, D))
        # as-of counts: before report i
        onehot = np.zeros((n, D))
        onehot[np.arange(n), self.y_] = 1.0
        count = np.cumsum(onehot, axis=0) - onehot
        W = self._window(n)
        recent = count - np.vstack([np.zeros((W, D)), count[:-W]])[:n] if n > W else count.copy()
        last = np.full(D, -1.0)
        since = np.full((n, D), np.nan)
        for i in range(n):
            since[i] = np.where(last >= 0, i - last, np.nan)
            last[self.y_[i]] = i
        train = self._pairs(text, knn, count, recent, since)
        if self.embed is not None:  # running centroid of each developer's earlier reports
            E = self._unit(texts)
            sums = np.zeros((D, E.shape[1]))
            q = train["task_id"].to_numpy()
            d = np.array([index[u] for u in train["user_id"]])
            sim = np.full(len(train), np.nan)
            bounds = np.searchsorted(q, np.arange(n + 1))
            for i in range(n):
                lo, hi = bounds[i], bounds[i + 1]
                if hi > lo:
                    sim[lo:hi] = self._centroid_cos(sums, E, q[lo:hi], d[lo:hi])
                sums[self.y_[i]] += E[i]
            train["embed_sim"] = sim
            self.sums_ = sums
        train["label"] = (train["user_id"].to_numpy() == lab[train["task_id"].to_numpy()]).astype(int)
        self.count_ = onehot.sum(axis=0)
        self.recent_ = onehot[max(0, n - W):].sum(axis=0)
        self.since_ = np.where(last >= 0, n - last, np.nan)
        return train

    def fit(self, texts: Sequence, assignees: Sequence) -> "HistoryLambdaMARTAssignee":
        """``texts``/``assignees`` of the training reports in time order (oldest first)."""
        train = self.training_pairs(texts, assignees)
        train = train[train.groupby("task_id")["label"].transform("sum") > 0]  # truth among the candidates
        if train.empty:
            raise ValueError("no training report has its assignee among its candidates")
        self.ranker_ = LambdaMARTRanker(self.config.lgbm).fit(pair_features(train), train["task_id"],
                                                               train["label"].to_numpy())
        self.n_train_pairs_ = len(train)
        return self

    def rank_pairs(self, texts: Sequence) -> pd.DataFrame:
        """The scored pair frame of ``texts`` (``task_id`` = position in ``texts``), with ``score``."""
        texts, _ = _as_lists(texts)
        n = len(texts)
        text = _scores_on(self.svm_, texts, self.classes_)
        knn = self._knn(self.vec_.transform(texts), past_only=False) if self.vec_ is not None \
            else np.zeros_like(text)
        tile = lambda v: np.broadcast_to(v, text.shape)  # noqa: E731
        f = self._pairs(text, knn, tile(self.count_), tile(self.recent_), tile(self.since_))
        if self.embed is not None and len(f):
            index = {u: i for i, u in enumerate(self.classes_)}
            d = np.array([index[u] for u in f["user_id"]])
            f["embed_sim"] = self._centroid_cos(self.sums_, self._unit(texts), f["task_id"].to_numpy(), d)
        f["score"] = self.ranker_.predict(pair_features(f)) if len(f) else np.zeros(0)
        return f

    def rank(self, texts: Sequence, k: int = 10) -> list[list[str]]:
        k = _check_k(k)
        texts, _ = _as_lists(texts)
        if not texts:
            return []
        f = self.rank_pairs(texts).sort_values(["task_id", "score"], ascending=[True, False], kind="stable")
        lists = f.groupby("task_id", sort=True).head(k).groupby("task_id", sort=True)["user_id"].apply(list)
        return [lists.get(i, []) for i in range(len(texts))]

    def predict(self, texts: Sequence) -> np.ndarray:
        return np.array([r[0] if r else None for r in self.rank(texts, 1)], dtype=object)
