"""Multi-objective neural ranker over (task, candidate) pair features.

:class:`MultiObjectiveNet` encodes each feature block of :data:`~sunday.models.assignment.pairs.BLOCKS` with its own
small MLP (skill fit, workload / track record, task), concatenates the codes into a shared trunk and has three heads:

* ``score``: an assignment logit, only meaningful relative to the other candidates of the same task;
* ``completion``: probability that the candidate completes the task (sigmoid);
* ``quality``: expected quality on 0-5 (``5 * sigmoid``), so predictions can never leave the scale.

Losses (weighted sum, one set of weights in :class:`NeuralRankerConfig`):

* listwise softmax cross-entropy of the ``score`` logits within each task that has exactly one ``assigned == 1``
  row (tasks with none or several are skipped for this loss only; their rows still train the other heads);
* binary cross-entropy on rows with a known ``completed`` (NaN = unknown);
* mean squared error, on the 0-5 scale, on rows with a known ``quality``.

Inputs are standardised with the training set's mean / std (kept in the estimator and saved with it) and NaN becomes
0 after standardisation, i.e. "unknown" is read as "average"; a column that is all NaN in training stays 0.

:func:`train_epochs` is the one training loop: :meth:`NeuralRanker.fit` runs it in process (``trainer="local"``) and
:mod:`sunday.models.assignment.distributed` runs it inside Ray Train workers (DDP or DeepSpeed), each worker on its
shard of the task groups. Batches are whole tasks (``batch_tasks`` per step), never split across steps or workers,
because the listwise loss needs every candidate of a task together.

torch is imported lazily: inside functions, and ``MultiObjectiveNet`` (an ``nn.Module`` subclass) is created on first
access through the module's ``__getattr__``, so importing this module does not import torch.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import pandas as pd

from sunday.models.assignment.pairs import BLOCKS, FEATURES, group_sizes
from sunday.models.raytrain import per_worker_batch

if TYPE_CHECKING:  # pragma: no cover
    import torch

TRAINERS = ("local", "ray")
HEADS = ("score", "completion", "quality")
_MODEL_FILE = "model.pt"
_META_FILE = "meta.json"
_FORMAT = 1


# --------------------------------------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class NeuralRankerConfig:
    """Everything that defines a neural ranker run (saved with the model as JSON).

    ``block_hidden`` are the layer widths of each block encoder (the last one is the block's code size),
    ``trunk_hidden`` those of the shared trunk. ``batch_tasks`` counts tasks (groups) per optimiser step, over all
    workers (each of Ray Train's workers takes its share). ``num_workers``, ``use_gpu``, ``deepspeed``, ``zero_stage`` and ``deepspeed_config`` only matter for
    ``trainer="ray"``; ``deepspeed_config`` is merged over the config built from ``zero_stage`` (nested dicts merge).
    """

    block_hidden: tuple[int, ...] = (32, 16)
    trunk_hidden: tuple[int, ...] = (64, 32)
    dropout: float = 0.1
    lr: float = 3e-3
    weight_decay: float = 1e-4
    epochs: int = 20
    batch_tasks: int = 32
    seed: int = 0
    weight_score: float = 1.0
    weight_completion: float = 0.5
    weight_quality: float = 0.25
    num_workers: int = 2
    use_gpu: bool = False
    deepspeed: bool = False
    zero_stage: int = 2
    deepspeed_config: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "block_hidden", tuple(int(h) for h in self.block_hidden))
        object.__setattr__(self, "trunk_hidden", tuple(int(h) for h in self.trunk_hidden))
        for name in ("block_hidden", "trunk_hidden"):
            sizes = getattr(self, name)
            if not sizes or any(h < 1 for h in sizes):
                raise ValueError(f"{name} must be a non-empty list of positive layer sizes, got {list(sizes)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        for name in ("lr",):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("weight_decay", "weight_score", "weight_completion", "weight_quality"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")
        if self.weight_score + self.weight_completion + self.weight_quality <= 0:
            raise ValueError("at least one loss weight must be positive")
        for name in ("epochs", "batch_tasks", "num_workers"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.zero_stage not in (0, 1, 2, 3):
            raise ValueError(f"zero_stage must be 0, 1, 2 or 3, got {self.zero_stage}")
        if self.deepspeed_config is not None and not isinstance(self.deepspeed_config, dict):
            raise ValueError("deepspeed_config must be a dict (merged over the built DeepSpeed config) or None")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["block_hidden"] = list(self.block_hidden)
        d["trunk_hidden"] = list(self.trunk_hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "NeuralRankerConfig":
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown NeuralRankerConfig field(s): {', '.join(unknown)}")
        return cls(**d)


# --------------------------------------------------------------------------------------------------- the network
_NET_CLASS: Any = None


def _net_class():
    """Build the nn.Module class on first use (keeps torch out of imports of this module)."""
    global _NET_CLASS
    if _NET_CLASS is not None:
        return _NET_CLASS
    import torch
    from torch import nn

    def mlp(d_in: int, sizes: Sequence[int], dropout: float) -> tuple[nn.Sequential, int]:
        layers: list[nn.Module] = []
        for h in sizes:
            layers += [nn.Linear(d_in, h), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            d_in = h
        return nn.Sequential(*layers), d_in

    class MultiObjectiveNet(nn.Module):
        """Per-block MLP encoders -> shared trunk -> (score logit, completion logit, quality logit).

        ``forward`` returns raw logits (a tuple, which DDP and DeepSpeed pass through untouched) so the losses can
        use the numerically stable ``*_with_logits`` forms; :meth:`heads` maps them to the output scales.
        """

        def __init__(self, block_hidden: Sequence[int] = (32, 16), trunk_hidden: Sequence[int] = (64, 32),
                     dropout: float = 0.1, blocks: dict[str, list[str]] | None = None,
                     features: Sequence[str] | None = None):
            super().__init__()
            blocks = BLOCKS if blocks is None else blocks
            features = list(FEATURES if features is None else features)
            self.block_names = list(blocks)
            self.encoders = nn.ModuleDict()
            code = 0
            for name, cols in blocks.items():
                missing = [c for c in cols if c not in features]
                if missing:
                    raise ValueError(f"block {name!r} names unknown feature(s): {', '.join(missing)}")
                # column positions of this block in the input matrix (not saved: they follow from FEATURES)
                self.register_buffer(f"_idx_{name}", torch.tensor([features.index(c) for c in cols]),
                                     persistent=False)
                self.encoders[name], d = mlp(len(cols), block_hidden, dropout)
                code += d
            self.trunk, d = mlp(code, trunk_hidden, dropout)
            self.score_head = nn.Linear(d, 1)
            self.completion_head = nn.Linear(d, 1)
            self.quality_head = nn.Linear(d, 1)

        def forward(self, x: "torch.Tensor") -> tuple["torch.Tensor", "torch.Tensor", "torch.Tensor"]:
            codes = [self.encoders[name](x.index_select(1, getattr(self, f"_idx_{name}")))
                     for name in self.block_names]
            h = self.trunk(torch.cat(codes, dim=1))
            return (self.score_head(h).squeeze(1), self.completion_head(h).squeeze(1),
                    self.quality_head(h).squeeze(1))

        @staticmethod
        def heads(outputs: tuple["torch.Tensor", "torch.Tensor", "torch.Tensor"]) -> dict[str, "torch.Tensor"]:
            score, completion, quality = outputs
            return {"score": score, "completion": torch.sigmoid(completion), "quality": 5.0 * torch.sigmoid(quality)}

    # importable (and picklable) as sunday.models.assignment.neural.MultiObjectiveNet through __getattr__ below
    MultiObjectiveNet.__module__ = __name__
    MultiObjectiveNet.__qualname__ = "MultiObjectiveNet"
    _NET_CLASS = MultiObjectiveNet
    return MultiObjectiveNet


def __getattr__(name: str):
    """``MultiObjectiveNet`` (a ``torch.nn.Module`` subclass) is created on first access, importing torch then."""
    if name == "MultiObjectiveNet":
        return _net_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build_net(config: NeuralRankerConfig):
    """A freshly initialised :class:`MultiObjectiveNet` for ``config`` (torch's RNG seeded with ``config.seed``)."""
    import torch

    torch.manual_seed(config.seed)
    return _net_class()(config.block_hidden, config.trunk_hidden, config.dropout)


# --------------------------------------------------------------------------------------------------- data
@dataclass
class PairArrays:
    """Validated, standardised training data: float32 features and targets, task groups as (start, size) runs."""

    x: np.ndarray                 # (n, len(FEATURES)) float32, standardised, NaN -> 0
    starts: np.ndarray            # (n_groups,) int64 first row of each task
    sizes: np.ndarray             # (n_groups,) int64 rows of each task
    assigned: np.ndarray          # (n,) float32 0/1
    completed: np.ndarray         # (n,) float32, NaN = unknown
    quality: np.ndarray           # (n,) float32, NaN = unknown
    rankable: np.ndarray = field(default=None)  # (n_groups,) bool: exactly one assigned row

    def __post_init__(self) -> None:
        if self.rankable is None:
            per_group = np.add.reduceat(self.assigned, self.starts) if len(self.starts) else np.zeros(0)
            self.rankable = per_group == 1

    @property
    def n_rows(self) -> int:
        return int(self.x.shape[0])

    @property
    def n_groups(self) -> int:
        return int(len(self.starts))


def check_features(X: pd.DataFrame) -> np.ndarray:
    """``X[FEATURES]`` as float64; ValueError naming missing or non-numeric / infinite columns."""
    if not isinstance(X, pd.DataFrame):
        raise ValueError(f"X must be a pandas DataFrame with the FEATURES columns, got {type(X).__name__}")
    missing = [c for c in FEATURES if c not in X.columns]
    if missing:
        raise ValueError(f"X is missing feature column(s): {', '.join(repr(c) for c in missing)}")
    out = np.empty((len(X), len(FEATURES)), dtype=np.float64)
    for j, col in enumerate(FEATURES):
        try:
            out[:, j] = pd.to_numeric(X[col], errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"feature column {col!r} is not numeric: {exc}") from None
        if np.isinf(out[:, j]).any():
            raise ValueError(f"feature column {col!r} has infinite values (use NaN for unknown)")
    return out


def _vector(values, name: str, n: int, lo: float, hi: float, allow_nan: bool) -> np.ndarray:
    try:
        v = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric: {exc}") from None
    if len(v) != n:
        raise ValueError(f"{name} has {len(v)} values but X has {n} rows")
    nan = np.isnan(v)
    if nan.any() and not allow_nan:
        raise ValueError(f"{name} must not contain NaN")
    known = v[~nan]
    if known.size and (known.min() < lo or known.max() > hi):
        raise ValueError(f"{name} must lie in [{lo:g}, {hi:g}] (NaN = unknown), got {known.min():g}..{known.max():g}")
    return v


def validate_training_input(X: pd.DataFrame, group_ids, assigned, completed, quality
                            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(features float64, starts, sizes, assigned, completed, quality); ValueError naming what is wrong."""
    feats = check_features(X)
    n = len(feats)
    if n == 0:
        raise ValueError("cannot fit on an empty pair frame (X has no rows)")
    groups = pd.Series(np.asarray(group_ids).reshape(-1))
    if len(groups) != n:
        raise ValueError(f"group_ids has {len(groups)} values but X has {n} rows")
    if groups.isna().any():
        raise ValueError("group_ids must not contain missing values")
    sizes = group_sizes(groups)  # ValueError when a task's rows are not contiguous
    starts = np.r_[0, np.cumsum(sizes)[:-1]].astype(np.int64)
    a = _vector(assigned, "assigned", n, 0.0, 1.0, allow_nan=False)
    if not np.isin(a, (0.0, 1.0)).all():
        raise ValueError("assigned must be 0 or 1")
    c = _vector(completed, "completed", n, 0.0, 1.0, allow_nan=True)
    q = _vector(quality, "quality", n, 0.0, 5.0, allow_nan=True)
    return feats, starts, sizes, a, c, q


def fit_stats(feats: np.ndarray) -> dict[str, list[float]]:
    """Per-feature mean and std over known values; all-NaN columns get (0, 1), constant ones std 1."""
    with np.errstate(all="ignore"):
        known = ~np.isnan(feats)
        count = known.sum(axis=0)
        mean = np.where(count > 0, np.nansum(feats, axis=0) / np.maximum(count, 1), 0.0)
        var = np.where(count > 0, np.nansum((feats - mean) ** 2, axis=0) / np.maximum(count, 1), 1.0)
    std = np.sqrt(var)
    std = np.where(std > 1e-12, std, 1.0)
    return {"features": list(FEATURES), "mean": [float(m) for m in mean], "std": [float(s) for s in std]}


def standardise(feats: np.ndarray, stats: dict[str, list[float]]) -> np.ndarray:
    """(x - mean) / std as float32, NaN -> 0."""
    if list(stats["features"]) != list(FEATURES):
        raise ValueError("normalisation stats were fitted on another feature list than pairs.FEATURES")
    z = (feats - np.asarray(stats["mean"])) / np.asarray(stats["std"])
    return np.nan_to_num(z, nan=0.0).astype(np.float32)


def prepare_training_data(X: pd.DataFrame, group_ids, assigned, completed, quality
                          ) -> tuple[PairArrays, dict[str, list[float]]]:
    """Validate, fit the normalisation stats on this (training) data and standardise: (arrays, stats)."""
    feats, starts, sizes, a, c, q = validate_training_input(X, group_ids, assigned, completed, quality)
    stats = fit_stats(feats)
    data = PairArrays(standardise(feats, stats), starts, sizes, a.astype(np.float32), c.astype(np.float32),
                      q.astype(np.float32))
    return data, stats


# --------------------------------------------------------------------------------------------------- loss and loop
def multi_objective_loss(outputs, assigned, completed, quality, group, n_groups: int, rankable,
                         config: NeuralRankerConfig):
    """Weighted loss of one batch, plus detached per-objective (sum, count) for epoch metrics.

    ``group`` maps each row to its task in the batch (0..n_groups-1), ``rankable`` says per task whether it has
    exactly one assigned row. Every term is computed with masks (never boolean indexing) so all heads stay in the
    graph even when a batch has no known completion or quality: DDP then sees every parameter get a gradient.
    """
    import torch
    import torch.nn.functional as F

    score, completion_logit, quality_logit = outputs
    # -- listwise softmax cross-entropy per task: logsumexp(scores of the task) - score of the assigned row
    gmax = torch.full((n_groups,), -math.inf, dtype=score.dtype, device=score.device)
    gmax = gmax.scatter_reduce(0, group, score.detach(), reduce="amax", include_self=True)
    expsum = torch.zeros(n_groups, dtype=score.dtype, device=score.device).index_add(
        0, group, torch.exp(score - gmax[group]))
    lse = torch.log(expsum) + gmax
    positive = torch.zeros(n_groups, dtype=score.dtype, device=score.device).index_add(0, group, score * assigned)
    rank_mask = rankable.to(score.dtype)
    rank_sum = ((lse - positive) * rank_mask).sum()
    rank_n = rank_mask.sum()
    # -- completion: BCE where known
    c_known = (~torch.isnan(completed)).to(score.dtype)
    bce = F.binary_cross_entropy_with_logits(completion_logit, torch.nan_to_num(completed, nan=0.0), reduction="none")
    bce_sum = (bce * c_known).sum()
    bce_n = c_known.sum()
    # -- quality: MSE on the 0-5 scale where known
    q_known = (~torch.isnan(quality)).to(score.dtype)
    q_pred = 5.0 * torch.sigmoid(quality_logit)
    mse_sum = (((q_pred - torch.nan_to_num(quality, nan=0.0)) ** 2) * q_known).sum()
    mse_n = q_known.sum()

    loss = (config.weight_score * rank_sum / rank_n.clamp(min=1.0)
            + config.weight_completion * bce_sum / bce_n.clamp(min=1.0)
            + config.weight_quality * mse_sum / mse_n.clamp(min=1.0))
    parts = torch.stack([rank_sum, rank_n, bce_sum, bce_n, mse_sum, mse_n]).detach().double()
    return loss, parts


def epoch_batches(n_groups: int, batch_tasks: int, epoch: int, seed: int, rank: int = 0,
                  world: int = 1) -> list[np.ndarray]:
    """Task indices of each step of one epoch for worker ``rank`` of ``world``.

    All workers shuffle with the same (seed, epoch) and take every ``world``-th task, then split their share into
    the same number of steps, so DDP / DeepSpeed collectives line up (no worker waits on a missing step).
    ``batch_tasks`` is the global batch: each worker's steps hold about ``batch_tasks / world`` tasks, so an epoch
    makes as many optimizer steps on any number of workers.
    """
    if n_groups < world:
        raise ValueError(f"{n_groups} task group(s) cannot be sharded over {world} workers; use fewer workers")
    order = np.random.default_rng([seed, epoch]).permutation(n_groups)
    mine = order[rank::world]
    steps = math.ceil(math.ceil(n_groups / world) / per_worker_batch(batch_tasks, world))
    return [chunk for chunk in np.array_split(mine, steps)]


def _batch_rows(starts: np.ndarray, sizes: np.ndarray, tasks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row indices, task position within the batch) for the given tasks, rows of a task contiguous."""
    s, n = starts[tasks], sizes[tasks]
    offsets = np.cumsum(n) - n
    rows = np.repeat(s - offsets, n) + np.arange(int(n.sum()))
    return rows, np.repeat(np.arange(len(tasks)), n)


def train_epochs(forward: Callable, step: Callable, data: PairArrays, config: NeuralRankerConfig,
                 rank: int = 0, world: int = 1, device: Any = "cpu",
                 on_epoch: Callable[[dict[str, Any]], None] | None = None,
                 set_train: Callable[[bool], None] | None = None) -> list[dict[str, Any]]:
    """The training loop every trainer runs; returns the per-epoch metrics (global over workers).

    ``forward(x) -> (score, completion_logit, quality_logit)`` and ``step(loss)`` (backward + optimiser step, e.g.
    DDP's or DeepSpeed's) come from the trainer; with ``world > 1`` the per-epoch sums are all-reduced over the
    default ``torch.distributed`` process group. ``on_epoch(metrics)`` runs after each epoch on every worker (Ray
    Train reports there). ``epoch_s`` times the epoch's steps only (no reporting, no checkpointing) on this worker;
    ``samples_per_s`` is pair rows trained per second over all workers.
    """
    import torch

    # np.require copies arrays that arrive read-only (zero-copy from Ray's object store); torch wants writable ones
    tensors = {name: torch.from_numpy(np.require(getattr(data, name), requirements="W")).to(device)
               for name in ("x", "assigned", "completed", "quality")}
    rankable = torch.from_numpy(data.rankable).to(device)
    history: list[dict[str, Any]] = []
    for epoch in range(config.epochs):
        if set_train is not None:
            set_train(True)
        sums = torch.zeros(7, dtype=torch.float64)
        t0 = time.perf_counter()
        for tasks in epoch_batches(data.n_groups, config.batch_tasks, epoch, config.seed, rank, world):
            rows_np, group_np = _batch_rows(data.starts, data.sizes, tasks)
            rows = torch.from_numpy(rows_np).to(device)
            group = torch.from_numpy(group_np).to(device)
            outputs = forward(tensors["x"].index_select(0, rows))
            loss, parts = multi_objective_loss(
                outputs, tensors["assigned"][rows], tensors["completed"][rows], tensors["quality"][rows],
                group, len(tasks), rankable[torch.from_numpy(tasks).to(device)], config)
            step(loss)
            sums[:6] += parts.cpu()
            sums[6] += len(rows_np)
        epoch_s = time.perf_counter() - t0
        if world > 1:
            import torch.distributed as dist

            # on the training device: nccl reduces CUDA tensors only
            totals = sums.to(device)
            timing = torch.tensor([epoch_s], dtype=torch.float64, device=device)
            dist.all_reduce(totals, op=dist.ReduceOp.SUM)
            dist.all_reduce(timing, op=dist.ReduceOp.MAX)  # the epoch lasts as long as its slowest worker
            sums, epoch_s = totals.cpu(), float(timing.item())
        rank_sum, rank_n, bce_sum, bce_n, mse_sum, mse_n, rows_total = sums.tolist()
        loss_score = rank_sum / rank_n if rank_n else float("nan")
        loss_completion = bce_sum / bce_n if bce_n else float("nan")
        loss_quality = mse_sum / mse_n if mse_n else float("nan")
        loss = sum(w * v for w, v in ((config.weight_score, loss_score), (config.weight_completion, loss_completion),
                                      (config.weight_quality, loss_quality)) if not math.isnan(v))
        metrics = {"epoch": epoch + 1, "loss": loss, "loss_score": loss_score, "loss_completion": loss_completion,
                   "loss_quality": loss_quality, "rows": int(rows_total), "workers": world,
                   "epoch_s": epoch_s, "samples_per_s": rows_total / epoch_s if epoch_s > 0 else float("nan")}
        history.append(metrics)
        if on_epoch is not None:
            on_epoch(metrics)
    return history


def local_step_fn(model, config: NeuralRankerConfig):
    """AdamW ``step(loss)`` for a plain or DDP-wrapped module (the one optimiser every non-DeepSpeed path uses)."""
    optimizer = make_optimizer(model.parameters(), config)

    def step(loss: "torch.Tensor") -> None:
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step, optimizer


def make_optimizer(params, config: NeuralRankerConfig):
    """torch AdamW with the config's lr and weight decay (DeepSpeed gets the same one: no compiled Adam op)."""
    import torch

    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


def train_local(data: PairArrays, config: NeuralRankerConfig) -> tuple[dict, list[dict[str, Any]]]:
    """:func:`train_epochs` in this process, one worker, CPU: (state_dict, history). Deterministic given the seed.

    Trains with one intra-op thread (restored afterwards): the net and its batches are small, so more threads
    mostly add synchronisation, and on a busy machine OpenMP's spinning made epochs 30x slower with 2 threads
    than with 1 (measured on the 2-CPU dev box). Ray Train workers also run one thread each (one CPU per worker).
    """
    from sunday.runtime import torch_threads

    with torch_threads(1):
        model = build_net(config)
        step, _ = local_step_fn(model, config)
        history = train_epochs(model, step, data, config, set_train=model.train)
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}, history


# --------------------------------------------------------------------------------------------------- estimator
class NeuralRanker:
    """scikit-learn-like wrapper: ``fit`` on pair features and labels, ``predict`` the three heads.

    ``fit(..., trainer="local")`` trains in this process; ``trainer="ray"`` with Ray Train
    (:func:`sunday.models.assignment.distributed.train_with_ray`; Ray must be running, e.g.
    :func:`sunday.runtime.ensure_ray`). Fitted attributes: ``stats_`` (normalisation), ``history_`` (per-epoch
    metrics), ``net_`` (the module, eval mode), ``ray_result_path_`` (Ray runs only).
    """

    def __init__(self, config: NeuralRankerConfig | None = None):
        self.config = config or NeuralRankerConfig()

    def fit(self, X: pd.DataFrame, group_ids, assigned, completed, quality, trainer: str = "local",
            storage_path: str | Path | None = None) -> "NeuralRanker":
        if trainer not in TRAINERS:
            raise ValueError(f"trainer must be one of {', '.join(TRAINERS)}, got {trainer!r}")
        if trainer == "local":
            data, stats = prepare_training_data(X, group_ids, assigned, completed, quality)
            state, history = train_local(data, self.config)
            self.ray_result_path_ = None
        else:
            from sunday.models.assignment.distributed import train_with_ray

            state, stats, metrics = train_with_ray(X, group_ids, assigned, completed, quality, self.config,
                                                   storage_path=storage_path)
            history = metrics["history"]
            self.ray_result_path_ = metrics.get("path")
        self._set_state(state, stats)
        self.history_ = history
        return self

    def _set_state(self, state: dict, stats: dict) -> None:
        net = _net_class()(self.config.block_hidden, self.config.trunk_hidden, self.config.dropout)
        net.load_state_dict(state)
        net.eval()
        self.net_ = net
        self.stats_ = stats

    def _check_fitted(self) -> None:
        if not hasattr(self, "net_"):
            raise ValueError("this NeuralRanker is not fitted yet; call fit() or NeuralRanker.load()")

    def predict(self, X: pd.DataFrame, batch_rows: int = 65536) -> dict[str, np.ndarray]:
        """``{"score": logits, "completion": [0, 1], "quality": [0, 5]}``, one float64 value per row of ``X``.

        Scores compare candidates of the same task (softmax within the task gives assignment probabilities).
        """
        import torch

        self._check_fitted()
        x = standardise(check_features(X), self.stats_)
        out = {k: [] for k in HEADS}
        with torch.inference_mode():
            for i in range(0, len(x), batch_rows):
                heads = self.net_.heads(self.net_(torch.from_numpy(x[i:i + batch_rows])))
                for k in HEADS:
                    out[k].append(heads[k].double().numpy())
        return {k: np.concatenate(v) if v else np.zeros(0) for k, v in out.items()}

    def save(self, path: str | Path) -> Path:
        """Write ``model.pt`` (state dict) and ``meta.json`` (config, normalisation stats, history) into ``path``."""
        import torch

        self._check_fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        torch.save(self.net_.state_dict(), path / _MODEL_FILE)
        meta = {"format": _FORMAT, "kind": "sunday.assignment.neural", "config": self.config.to_dict(),
                "stats": self.stats_, "history": getattr(self, "history_", [])}
        (path / _META_FILE).write_text(json.dumps(meta, indent=1, allow_nan=True) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "NeuralRanker":
        import torch

        path = Path(path)
        if not (path / _META_FILE).is_file() or not (path / _MODEL_FILE).is_file():
            raise ValueError(f"{path} does not hold a saved NeuralRanker ({_META_FILE} and {_MODEL_FILE})")
        meta = json.loads((path / _META_FILE).read_text())
        if meta.get("format") != _FORMAT:
            raise ValueError(f"{path}: unsupported NeuralRanker format {meta.get('format')!r}")
        model = cls(NeuralRankerConfig.from_dict(meta["config"]))
        model._set_state(torch.load(path / _MODEL_FILE, map_location="cpu", weights_only=True), meta["stats"])
        model.history_ = meta.get("history", [])
        return model


# --------------------------------------------------------------------------------------------------- synthetic data
def synthetic_pairs(n_tasks: int = 200, n_candidates: int = 8, seed: int = 0
                    ) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A synthetic pair frame run through :func:`pair_features`: ``(X, task_ids, assigned, completed, quality)``.

    For tests, benchmarks and demos. Candidates have Poisson per-skill completion counts and a workload; each task
    requires 1-3 of 12 skills. The assignee is the argmax of ``2 * skill_match - capacity_utilisation +
    Gumbel(0.3) noise``; completion (known for assignees only, 20 % of those unknown) is Bernoulli of a logistic in the
    same two; quality (known for completed tasks) is ``2 + 1.5 * skill_match - 0.5 * utilisation`` plus noise, on
    0-5. 5 % of tasks have nobody assigned; the text-model columns are missing (NaN) for half of the tasks.
    """
    from sunday.models.assignment.pairs import pair_features

    rng = np.random.default_rng(seed)
    vocab = [f"skill_{i}" for i in range(12)]
    n = n_tasks * n_candidates
    task_ids = np.repeat(np.arange(n_tasks), n_candidates)
    required = [list(rng.choice(vocab, size=rng.integers(1, 4), replace=False)) for _ in range(n_tasks)]
    aptitude = rng.gamma(1.0, 2.0, size=(n, len(vocab)))
    counts = rng.poisson(aptitude)
    util = rng.uniform(0.1, 1.3, size=n)
    text = np.where(np.repeat(rng.random(n_tasks) < 0.5, n_candidates), np.nan, 0.0)
    frame = pd.DataFrame({
        "task_id": task_ids,
        "user_id": rng.integers(0, 10 * n_candidates, size=n),
        "required_skills": [required[t] for t in task_ids],
        "skill_counts": list(counts),
        "open_task_count": rng.poisson(4, size=n).astype(float),
        "open_points": rng.gamma(2.0, 5.0, size=n),
        "capacity_utilisation": util,
        "hours_logged_7d": rng.gamma(4.0, 6.0, size=n),
        "completed_count": rng.poisson(30, size=n).astype(float),
        "completion_rate": rng.beta(8, 2, size=n),
        "on_time_rate": rng.beta(6, 3, size=n),
        "mean_completion_hours": rng.gamma(3.0, 10.0, size=n),
        "review_cycles": rng.gamma(2.0, 0.5, size=n),
        "reassignment_count": rng.poisson(1, size=n).astype(float),
        "story_points": np.repeat(rng.choice([1, 2, 3, 5, 8], size=n_tasks), n_candidates).astype(float),
        "priority_score": np.repeat(rng.uniform(0, 1, size=n_tasks), n_candidates),
        "required_skill_count": np.repeat([float(len(r)) for r in required], n_candidates),
        "complexity": np.repeat(rng.uniform(0, 1, size=n_tasks), n_candidates),
        "days_to_due": np.repeat(rng.uniform(-3, 30, size=n_tasks), n_candidates),
    })
    # workload unknown for 10 % of candidates (e.g. a new member)
    unknown = rng.random(n) < 0.1
    frame.loc[unknown, ["open_task_count", "open_points", "capacity_utilisation", "hours_logged_7d"]] = np.nan
    X = pair_features(frame, vocab=vocab)
    match = X["skill_match"].fillna(0.0).to_numpy()
    # text-model score: a noisy view of the true aptitude where the source has one
    X["text_score"] = text + match + rng.normal(0, 0.7, size=n)
    g = pd.Series(task_ids)
    X["text_gap"] = X["text_score"] - X["text_score"].groupby(g).transform("max")
    X["text_rank"] = X["text_score"].groupby(g).rank(ascending=False, method="min")
    utility = 2.0 * match - util + rng.gumbel(0, 0.3, size=n)
    best = pd.Series(utility).groupby(g).transform("max").to_numpy() == utility
    assigned = best.astype(float)
    nobody = np.repeat(rng.random(n_tasks) < 0.05, n_candidates)
    assigned[nobody] = 0.0
    p_complete = 1.0 / (1.0 + np.exp(-(1.5 * match - 1.5 * (util - 0.7))))
    done = (rng.random(n) < p_complete).astype(float)
    completed = np.where((assigned == 1) & (rng.random(n) >= 0.2), done, np.nan)
    q = np.clip(2.0 + 1.5 * match - 0.5 * util + rng.normal(0, 0.4, size=n), 0.0, 5.0)
    quality = np.where(completed == 1, q, np.nan)
    return X, task_ids, assigned, completed, quality
