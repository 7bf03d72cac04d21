"""The multi-objective neural ranker: losses, batching, local training, save/load, Ray Train (DDP and DeepSpeed).

Data: :func:`synthetic_pairs` builds a pair frame (300 tasks x 8 candidates) and runs it through ``pair_features``;
the assignee is the argmax of a noisy utility in skill match and workload, so a model that learns anything beats
the 1/8 of a random pick by far. Tasks 0-199 train, 200-299 are held out.
"""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from sunday.models.assignment.neural import (
    NeuralRanker,
    NeuralRankerConfig,
    epoch_batches,
    multi_objective_loss,
    synthetic_pairs,
)
from sunday.models.assignment.pairs import FEATURES

N_TRAIN = 200


@pytest.fixture(scope="module")
def pairs():
    X, groups, assigned, completed, quality = synthetic_pairs(n_tasks=300, n_candidates=8, seed=0)
    train = groups < N_TRAIN
    split = {}
    for name, mask in (("train", train), ("test", ~train)):
        split[name] = (X[mask].reset_index(drop=True), groups[mask], assigned[mask], completed[mask], quality[mask])
    return split


def _top1(model: NeuralRanker, X: pd.DataFrame, groups, assigned) -> float:
    """Share of held-out tasks (with exactly one assignee) whose top-scored candidate is the assignee."""
    frame = pd.DataFrame({"g": groups, "a": assigned, "s": model.predict(X)["score"]})
    frame = frame[frame.groupby("g")["a"].transform("sum") == 1]
    return float(frame.loc[frame.groupby("g")["s"].idxmax(), "a"].mean())


@pytest.fixture(scope="module")
def local_model(pairs):
    return NeuralRanker(NeuralRankerConfig(epochs=15, seed=0)).fit(*pairs["train"])


# -------------------------------------------------------------------------------------------- losses and batching
def test_listwise_loss_matches_softmax_cross_entropy_and_skips_ambiguous_tasks():
    import torch

    score = torch.tensor([1.0, 2.0, 0.5, 0.3, -1.0, 0.0, 0.7])
    group = torch.tensor([0, 0, 0, 1, 1, 2, 2])
    assigned = torch.tensor([0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0])  # task 1: nobody, task 2: two assignees
    rankable = torch.tensor([True, False, False])
    nan = torch.full((7,), float("nan"))
    config = NeuralRankerConfig(weight_completion=0.0, weight_quality=0.0)
    loss, parts = multi_objective_loss((score, torch.zeros(7), torch.zeros(7)), assigned, nan, nan, group, 3,
                                       rankable, config)
    expected = -torch.log_softmax(score[:3], dim=0)[1]
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    rank_sum, rank_n, _, bce_n, _, mse_n = parts.tolist()
    assert (rank_n, bce_n, mse_n) == (1.0, 0.0, 0.0)
    assert rank_sum == pytest.approx(expected.item(), rel=1e-6)


def test_completion_and_quality_losses_use_known_rows_only():
    import torch

    completed = torch.tensor([1.0, float("nan"), 0.0])
    quality = torch.tensor([4.0, float("nan"), float("nan")])
    outputs = (torch.zeros(3), torch.tensor([2.0, 50.0, -1.0]), torch.zeros(3))  # quality logit 0 -> 2.5
    config = NeuralRankerConfig(weight_score=0.0, weight_completion=1.0, weight_quality=1.0)
    loss, parts = multi_objective_loss(outputs, torch.zeros(3), completed, quality, torch.zeros(3, dtype=torch.long),
                                       1, torch.tensor([False]), config)
    bce = (math.log1p(math.exp(-2.0)) + math.log1p(math.exp(-1.0))) / 2
    assert loss.item() == pytest.approx(bce + (4.0 - 2.5) ** 2, rel=1e-5)
    assert parts.tolist()[3] == 2.0 and parts.tolist()[5] == 1.0


def test_epoch_batches_shard_tasks_disjointly_with_equal_step_counts():
    shards = [epoch_batches(103, 8, epoch=3, seed=1, rank=r, world=2) for r in range(2)]
    assert len(shards[0]) == len(shards[1])  # collectives line up
    seen = np.concatenate([np.concatenate(s) for s in shards])
    assert sorted(seen.tolist()) == list(range(103))
    assert not np.array_equal(np.concatenate(epoch_batches(103, 8, 0, 1)), np.concatenate(epoch_batches(103, 8, 1, 1)))
    with pytest.raises(ValueError, match="cannot be sharded"):
        epoch_batches(1, 8, 0, 0, rank=0, world=2)


# -------------------------------------------------------------------------------------------- local training
def test_fit_returns_self_and_predicts_in_range(pairs, local_model):
    X_test = pairs["test"][0]
    model = NeuralRanker(NeuralRankerConfig(epochs=1))
    assert model.fit(*pairs["train"]) is model
    out = local_model.predict(X_test)
    assert set(out) == {"score", "completion", "quality"}
    for values in out.values():
        assert values.shape == (len(X_test),) and values.dtype == np.float64 and np.isfinite(values).all()
    assert out["completion"].min() >= 0.0 and out["completion"].max() <= 1.0
    assert out["quality"].min() >= 0.0 and out["quality"].max() <= 5.0
    assert [h["epoch"] for h in local_model.history_] == list(range(1, 16))
    assert local_model.history_[-1]["loss"] < local_model.history_[0]["loss"]
    assert local_model.history_[0]["rows"] == len(pairs["train"][0])


def test_learns_to_rank_the_assignee_first(pairs, local_model):
    X, groups, assigned, completed, _ = pairs["test"]
    top1 = _top1(local_model, X, groups, assigned)
    assert top1 > 0.5, f"held-out top-1 {top1:.3f} (random: 1/8)"
    # the completion head separates completed from failed assignments better than chance
    known = ~np.isnan(completed)
    p = local_model.predict(X)["completion"][known]
    done = completed[known] == 1
    assert p[done].mean() > p[~done].mean()


def test_training_is_deterministic_given_the_seed(pairs):
    config = NeuralRankerConfig(epochs=2, seed=7)
    a = NeuralRanker(config).fit(*pairs["train"]).predict(pairs["test"][0])
    b = NeuralRanker(config).fit(*pairs["train"]).predict(pairs["test"][0])
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_save_load_round_trip_gives_identical_predictions(pairs, local_model, tmp_path):
    X_test = pairs["test"][0]
    local_model.save(tmp_path / "neural")
    loaded = NeuralRanker.load(tmp_path / "neural")
    before, after = local_model.predict(X_test), loaded.predict(X_test)
    for key in before:
        np.testing.assert_array_equal(before[key], after[key])
    assert loaded.config == local_model.config
    assert loaded.history_ == local_model.history_
    # column order of X does not matter, only the names
    shuffled = loaded.predict(X_test[list(reversed(FEATURES))])
    np.testing.assert_array_equal(shuffled["score"], before["score"])


def test_module_imports_without_torch():
    code = ("import sys, sunday.models.assignment.neural, sunday.models.assignment.distributed; "
            "assert 'torch' not in sys.modules and 'ray' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)


# -------------------------------------------------------------------------------------------- bad input
def test_bad_input_raises_value_error_naming_the_problem(pairs, local_model, tmp_path):
    X, groups, assigned, completed, quality = pairs["train"]
    model = NeuralRanker(NeuralRankerConfig(epochs=1))
    with pytest.raises(ValueError, match="missing feature column.*'open_points'"):
        model.fit(X.drop(columns=["open_points"]), groups, assigned, completed, quality)
    with pytest.raises(ValueError, match="'open_points'"):
        local_model.predict(X.drop(columns=["open_points"]))
    with pytest.raises(ValueError, match="assigned has 5 values but X has"):
        model.fit(X, groups, assigned[:5], completed, quality)
    with pytest.raises(ValueError, match="group_ids has"):
        model.fit(X, groups[1:], assigned, completed, quality)
    with pytest.raises(ValueError, match="quality must lie in"):
        model.fit(X, groups, assigned, completed, quality * 2)
    with pytest.raises(ValueError, match="assigned must be 0 or 1"):
        model.fit(X, groups, assigned * 0.5, completed, quality)
    with pytest.raises(ValueError, match="contiguous"):
        order = np.r_[np.arange(8, 16), np.arange(0, 8), np.arange(16, 24), np.arange(0, 8)]
        model.fit(X.iloc[order], groups[order], assigned[order], completed[order], quality[order])
    with pytest.raises(ValueError, match="'skill_match'.*not numeric"):
        model.fit(X.assign(skill_match="high"), groups, assigned, completed, quality)
    with pytest.raises(ValueError, match="trainer"):
        model.fit(X, groups, assigned, completed, quality, trainer="spark")
    with pytest.raises(ValueError, match="zero_stage"):
        NeuralRankerConfig(zero_stage=4)
    with pytest.raises(ValueError, match="not fitted"):
        NeuralRanker().predict(X)
    with pytest.raises(ValueError, match="does not hold a saved NeuralRanker"):
        NeuralRanker.load(tmp_path)


# -------------------------------------------------------------------------------------------- Ray Train
@pytest.mark.ray
@pytest.mark.timeout(180)
def test_ray_train_ddp_two_workers(ray_session, pairs, tmp_path):
    config = NeuralRankerConfig(epochs=12, num_workers=2, seed=0)
    model = NeuralRanker(config).fit(*pairs["train"], trainer="ray", storage_path=tmp_path / "ray")
    assert [h["epoch"] for h in model.history_] == list(range(1, 13))
    assert {h["workers"] for h in model.history_} == {2}
    assert all(h["rows"] == len(pairs["train"][0]) for h in model.history_)  # both shards counted, once
    assert model.history_[-1]["loss"] < model.history_[0]["loss"]
    assert model.ray_result_path_.startswith(str(tmp_path / "ray"))
    X, groups, assigned, _, _ = pairs["test"]
    assert _top1(model, X, groups, assigned) > 0.5
    out = model.predict(X)
    assert 0.0 <= out["completion"].min() and out["quality"].max() <= 5.0


@pytest.mark.ray
@pytest.mark.timeout(300)
def test_ray_train_deepspeed_zero2_two_workers(ray_session, pairs, tmp_path):
    config = NeuralRankerConfig(epochs=12, num_workers=2, seed=0, deepspeed=True, zero_stage=2)
    model = NeuralRanker(config).fit(*pairs["train"], trainer="ray", storage_path=tmp_path / "ray")
    assert [h["epoch"] for h in model.history_] == list(range(1, 13))
    assert model.history_[-1]["loss"] < model.history_[0]["loss"]
    X, groups, assigned, _, _ = pairs["test"]
    assert _top1(model, X, groups, assigned) > 0.5
