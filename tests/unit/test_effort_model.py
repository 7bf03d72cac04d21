"""The story-point model on small synthetic issues where a keyword in the title decides the points."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from sunday.models.effort import TextPointsConfig, TextPointsEstimator
from sunday.models.effort.text_points import mixture_median, simplex_grid

KEYWORDS = {"typo": 1.0, "tooltip": 2.0, "refactor": 3.0, "endpoint": 5.0, "redesign": 8.0, "migration": 13.0}
FILLERS = ["in the settings page", "for the editor", "on the server side", "of the build", "in the dashboard",
           "for mobile users", "around login", "in the reports view"]


def _issues(n: int, seed: int) -> tuple[list[str], list[str], np.ndarray]:
    """Issues whose points follow the title keyword; 10% of the labels are one value off (noise)."""
    rng = np.random.default_rng(seed)
    words = list(KEYWORDS)
    ladder = sorted(set(KEYWORDS.values()))
    titles, descriptions, points = [], [], []
    for _ in range(n):
        w = words[rng.integers(len(words))]
        titles.append(f"{w} {FILLERS[rng.integers(len(FILLERS))]}")
        descriptions.append(" ".join(rng.choice(["please", "see", "attached", "log", "steps", "expected", "actual",
                                                 "the", "user", "reported"], size=8)))
        p = KEYWORDS[w]
        if rng.random() < 0.1:
            i = ladder.index(p) + rng.choice([-1, 1])
            p = ladder[min(max(i, 0), len(ladder) - 1)]
        points.append(p)
    return titles, descriptions, np.array(points)


def _hash_embed(texts: list[str]) -> np.ndarray:
    """A stand-in sentence embedder: a fixed pseudo-random 16-vector per word, averaged over the text's words."""
    out = np.zeros((len(texts), 16))
    for i, t in enumerate(texts):
        for w in t.split():
            seed = int.from_bytes(hashlib.blake2b(w.encode(), digest_size=4).digest(), "little")
            out[i] += np.random.default_rng(seed).normal(size=16)
    return out


@pytest.fixture(scope="module")
def data():
    return _issues(240, 0), _issues(80, 1), _issues(120, 2)


def test_beats_mean_and_median_baselines(data):
    train, val, test = data
    model = TextPointsEstimator().fit(*train, validation=val)
    pred = model.predict(test[0], test[1])
    y = test[2]
    mae = np.abs(y - pred).mean()
    y_fit = np.concatenate([train[2], val[2]])
    assert mae < 0.5 * np.abs(y - y_fit.mean()).mean()
    assert mae < 0.5 * np.abs(y - np.median(y_fit)).mean()
    assert set(pred) <= set(model.values_)  # medians of a distribution over the training values
    assert abs(sum(model.weights_.values()) - 1) < 1e-9 and model.weights_["prior"] < 1
    assert model.validation_["source"] == "validation" and model.validation_["rows"] == 80
    assert model.n_train_ == 320  # refitted on train + validation


def test_embeddings_and_holdout_path(data):
    train, _, test = data
    model = TextPointsEstimator(embed=_hash_embed).fit(*train)  # weights on the last 25% of the rows
    assert model.active_components == ("prior", "tfidf-lr", "embed-lr", "knn")
    assert model.validation_["source"] == "holdout" and model.validation_["rows"] == 60
    assert model.n_train_ == 240
    P = model.predict_proba(test[0], test[1])
    assert P.shape == (120, len(model.values_)) and np.allclose(P.sum(axis=1), 1)
    y = test[2]
    mean_mae = np.abs(y - train[2].mean()).mean()
    assert np.abs(y - model.predict(test[0], test[1])).mean() < 0.5 * mean_mae  # measured 1.40 vs 3.77
    comps = model.component_predictions(test[0][:5], test[1][:5])
    assert set(comps) == set(model.active_components) and all(len(v) == 5 for v in comps.values())


def test_no_embed_drops_embedding_component_and_tiny_sets_work():
    model = TextPointsEstimator()
    assert "embed-lr" not in model.active_components
    tiny = model.fit(["a b", "c d", "a c"], [None, "", float("nan")], [3, 3, 3])  # one class, blank text
    assert tiny.validation_.get("note", "").startswith("fewer than")
    assert list(tiny.predict(["anything"], ["else"])) == [3.0]
    assert len(tiny.predict([], [])) == 0


def test_mixture_median_and_grid():
    values = np.array([1.0, 2.0, 5.0])
    P = np.array([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6], [0.25, 0.25, 0.5]])
    assert list(mixture_median(P, values)) == [1.0, 5.0, 2.0]
    g = simplex_grid(3, 0.5)
    assert len(g) == 6 and np.allclose(g.sum(axis=1), 1)


@pytest.mark.parametrize("args, field", [
    ((["a", "b"], ["x", "y"], [1, float("nan")]), "points"),
    ((["a", "b"], ["x", "y"], [1, -2]), "points"),
    ((["a", "b"], ["x", "y"], [1, "big"]), "points"),
    ((["a", "b"], ["x", "y"], [1]), "points"),
    ((["a", "b"], ["x"], [1, 2]), "descriptions"),
    (("a title", ["x"], [1]), "titles"),
    (([], [], []), "points"),
])
def test_bad_input_names_the_field(args, field):
    with pytest.raises(ValueError, match=field):
        TextPointsEstimator().fit(*args)


def test_bad_validation_config_and_unfitted():
    with pytest.raises(ValueError, match="validation"):
        TextPointsEstimator().fit(["a"], ["b"], [1], validation=(["a"], ["b"]))
    with pytest.raises(ValueError, match="points"):
        TextPointsEstimator().fit(["a"], ["b"], [1], validation=(["a"], ["b"], [None]))
    with pytest.raises(ValueError, match="components"):
        TextPointsConfig(components=("prior", "gpt"))
    with pytest.raises(ValueError, match="blend_step"):
        TextPointsConfig(blend_step=0)
    with pytest.raises(ValueError, match="knn"):
        TextPointsConfig(knn=0)
    with pytest.raises(ValueError, match="embed"):
        TextPointsEstimator(TextPointsConfig(components=("embed-lr",))).fit(["a"], ["b"], [1])
    with pytest.raises(ValueError, match="not fitted"):
        TextPointsEstimator().predict(["a"], ["b"])
