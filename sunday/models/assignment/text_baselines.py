"""Text baselines for fixer recommendation: rank assignees for a report from its text.

Both follow the scikit-learn shape (``fit(texts, assignees)`` returns ``self``; ``predict(texts)``) and add
``rank(texts, k)``: one list of the top-``k`` assignees per text, best first, which is what top-k accuracy needs.

* :class:`MostFrequentAssignee` ranks every report the same way: assignees by training frequency (ties by name).
* :class:`TfidfSvmAssignee` is TF-IDF over word 1-2 grams (sublinear tf) with a one-vs-rest linear SVM, ranking by
  ``decision_function``. ``min_df=2`` by default: a term (most bigrams) seen in only one training report cannot
  generalise to another report, yet such hapaxes are most of the 1-2 gram vocabulary; dropping them shrinks the
  feature space several-fold (faster fits over hundreds of classes) at no real cost in accuracy. When a very small
  training set leaves no term at ``min_df``, the vectoriser falls back to ``min_df=1`` rather than failing.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable, Sequence

import numpy as np


def _as_lists(texts: Iterable, assignees: Iterable | None = None) -> tuple[list[str], list[str] | None]:
    texts = ["" if t is None or (isinstance(t, float) and np.isnan(t)) else str(t) for t in texts]
    if assignees is None:
        return texts, None
    labels = list(assignees)
    if len(texts) != len(labels):
        raise ValueError(f"texts and assignees differ in length: {len(texts)} vs {len(labels)}")
    if any(a is None or (isinstance(a, float) and np.isnan(a)) or str(a) == "" for a in labels):
        raise ValueError("assignees must not be empty or missing; drop unassigned reports before fitting")
    return texts, [str(a) for a in labels]


def _check_k(k: int) -> int:
    k = int(k)
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    return k


class MostFrequentAssignee:
    """Recommends the training set's most frequent assignees, the same list for every report."""

    def fit(self, texts: Sequence, assignees: Sequence) -> "MostFrequentAssignee":
        _, labels = _as_lists(texts, assignees)
        if not labels:
            raise ValueError("cannot fit MostFrequentAssignee on empty input (no reports)")
        counts = Counter(labels)
        self.ranking_ = sorted(counts, key=lambda a: (-counts[a], a))
        self.classes_ = np.array(sorted(counts))
        return self

    def rank(self, texts: Sequence, k: int = 10) -> list[list[str]]:
        k = _check_k(k)
        texts, _ = _as_lists(texts)
        top = self.ranking_[:k]
        return [list(top) for _ in texts]

    def predict(self, texts: Sequence) -> np.ndarray:
        return np.array([r[0] for r in self.rank(texts, 1)], dtype=object)


class TfidfSvmAssignee:
    """TF-IDF (word 1-2 grams, sublinear tf, ``min_df``) + one-vs-rest ``LinearSVC``, ranked by decision score."""

    def __init__(self, ngram_range: tuple[int, int] = (1, 2), min_df: int = 2, sublinear_tf: bool = True,
                 C: float = 1.0, max_features: int | None = None, random_state: int | None = 0):
        self.ngram_range = ngram_range
        self.min_df = min_df
        self.sublinear_tf = sublinear_tf
        self.C = C
        self.max_features = max_features
        self.random_state = random_state  # LinearSVC's coordinate order: fixed, so results repeat

    def _vectorizer(self, min_df: int):
        from sklearn.feature_extraction.text import TfidfVectorizer

        return TfidfVectorizer(ngram_range=self.ngram_range, min_df=min_df, sublinear_tf=self.sublinear_tf,
                               max_features=self.max_features, lowercase=True, dtype=np.float32)

    def fit(self, texts: Sequence, assignees: Sequence) -> "TfidfSvmAssignee":
        from sklearn.svm import LinearSVC

        texts, labels = _as_lists(texts, assignees)
        if not texts:
            raise ValueError("cannot fit TfidfSvmAssignee on empty input (no reports)")
        self.vectorizer_ = self._vectorizer(self.min_df)
        try:
            X = self.vectorizer_.fit_transform(texts)
        except ValueError:  # empty vocabulary at min_df (tiny or blank training set)
            self.vectorizer_ = self._vectorizer(1)
            try:
                X = self.vectorizer_.fit_transform(texts)
            except ValueError:
                raise ValueError("cannot fit TfidfSvmAssignee: the training texts hold no word") from None
        y = np.array(labels, dtype=object)
        self.classes_ = np.array(sorted(set(labels)), dtype=object)
        counts = Counter(labels)
        # fallback order for a single class, and a deterministic tie-break
        self._frequency = sorted(counts, key=lambda a: (-counts[a], a))
        if len(self.classes_) == 1:
            self.svm_ = None
        else:
            self.svm_ = LinearSVC(C=self.C, random_state=self.random_state).fit(X, y)
            self.classes_ = np.array(self.svm_.classes_, dtype=object)
        return self

    def decision_function(self, texts: Sequence) -> np.ndarray:
        """(n_texts, n_classes) scores, columns in ``classes_`` order."""
        texts, _ = _as_lists(texts)
        if self.svm_ is None:
            return np.zeros((len(texts), 1))
        scores = self.svm_.decision_function(self.vectorizer_.transform(texts))
        if scores.ndim == 1:  # binary: sklearn returns the score of classes_[1]
            scores = np.column_stack([-scores, scores])
        return scores

    def rank(self, texts: Sequence, k: int = 10) -> list[list[str]]:
        k = _check_k(k)
        scores = self.decision_function(texts)
        k_eff = min(k, scores.shape[1])
        # stable sort on -score keeps the classes_ (alphabetical) order among exact ties
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k_eff]
        return [list(self.classes_[row]) for row in order]

    def predict(self, texts: Sequence) -> np.ndarray:
        return np.array([r[0] for r in self.rank(texts, 1)], dtype=object)
