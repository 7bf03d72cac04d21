"""Collaborative filtering for "tasks relevant to me" and "people I will work with": a hybrid matrix factorisation
with implicit feedback and a recency prior, in torch.

Data (observable only, see :mod:`sunday.models.personalization.interactions`): the deduplicated (workspace, user,
task) interactions with their first touch and weight, the task catalogue (``tasks``: project, required skills,
created_at; ``projects``: the owning team) and the user catalogue (``users``: workspace, team). No hidden truth.

Model (:class:`CFNet`). ``score(u, i, at) = <p_u, q_i> + b_project(i) + r(age_i(at))`` (``head="mlp"`` adds an
NCF-style MLP over ``[p_u, q_i]``), where

* ``p_u = user_u + team_{team(u)}`` (``features``: the user's team from ``users``),
* ``q_i = project_{project(i)} + team_{team(i)} + mean(skill_s for s in required_skills(i))``: most tasks a user
  touches next are new (on a 100k-event simulation ~85% of each user's held-out tasks had no interaction at all in
  training), so a task is described by its project, team and skills (LightFM-style side features), which a new
  task has from creation. ``item_ids=True`` adds a vector and a bias of each task's own: measured worse (NDCG@10
  0.35 against 0.62 on the ``cf-sim`` protocol, 100k events, seeds 0 and 1: old tasks teammates touched crowd
  out the new ones),
* ``r`` is a learned bias per age bucket (:data:`AGE_EDGES_DAYS`, negative = created after ``at``) of the task at
  the scoring time ``at`` (``age = at - created_at``).

Training (:mod:`sunday.models.personalization.cf_train`, in process or on Ray Train): each interaction (u, i, first
touch t) is a positive, scored at a time drawn uniformly in ``[t - horizon_days, t]`` (the model learns "u will
touch i within ``horizon_days`` (60) after ``at``"; scoring at the touch itself, ``horizon_days=0``, learned that
only tasks a few days old matter: NDCG@10 0.23-0.29 against 0.62 when scored at the user's last training touch);
``negatives`` (4) tasks are sampled from u's workspace (a ``hard_share``, half, from the positive's team) and scored
at the same time. Loss ``bpr`` (weighted ``-log sigmoid(s_pos - s_neg)``; ``logistic``, weighted binary
cross-entropy against the sampled negatives, was 0.03-0.06 NDCG@10 lower), interaction weights entering as
``log1p(weight)`` normalised to mean 1. The MLP head, 64 dimensions, 8 negatives, 20 epochs, another
``hard_share`` or a 90-day horizon all moved NDCG@10 by less than 0.01 (seed noise): the defaults are the
simplest.

Serving (:class:`CFRecommender`): :meth:`~CFRecommender.recommend` ranks only tasks of the user's own workspace
(never another tenant's), the user's training tasks excluded by default, ages taken at ``at`` (default
:attr:`~CFRecommender.now_`, the latest time the model knows of: the last training touch or the newest catalogue
task). Cold start: a user with no interaction (known from the ``users`` catalogue, or unknown with a
``workspace_id``) gets the workspace's popularity as the model learned it, the non-personal part of the score
``b_project + r(age)`` (recency-aware popularity of projects: plain touch counts rank only old tasks).
:meth:`~CFRecommender.similar_users` ranks the users of the same workspace by cosine similarity of ``p_u``
(collaborators; a cold user gets the most active users of the workspace). An id the model cannot place raises
:class:`UnknownIdError` naming the field.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from sunday.errors import SundayError

#: age bucket edges in days (negative: created after the scoring time); bucket k = [edge[k-1], edge[k])
_POS_EDGES = (0.5, 1.0, 2.0, 4.0, 7.0, 14.0, 21.0, 28.0, 42.0, 56.0, 84.0, 112.0, 168.0, 224.0)
AGE_EDGES_DAYS = tuple(-e for e in reversed(_POS_EDGES)) + (0.0,) + _POS_EDGES
N_AGE = len(AGE_EDGES_DAYS) + 1
DAY_US = 86_400_000_000

NET_FILE = "net.pt"
META_FILE = "model.json"
ARRAYS_FILE = "arrays.npz"


class UnknownIdError(SundayError):
    """An id (user, workspace) the model cannot place; the message names the field."""

    def __init__(self, field: str, value: Any, hint: str = ""):
        self.field, self.value = field, value
        super().__init__(f"{field} {value!r} is not known to the model" + (f"; {hint}" if hint else ""))


@dataclass
class CFConfig:
    """The model and its training (saved with the model)."""

    dim: int = 32
    head: str = "dot"          # "dot" (matrix factorisation) or "mlp" (plus an NCF-style MLP over [p_u, q_i])
    mlp_hidden: int = 64
    features: bool = True      # project / team / skill vectors on tasks, team vectors on users
    item_ids: bool = False     # a vector and a bias of each task's own (False: tasks are their features only)
    recency: bool = True       # the age term r(age): a bias per age bucket
    horizon_days: float = 60.0  # training asks "touched within this many days after the scoring time" (0: at it)
    age_vectors: bool = False  # a vector per age bucket added to the task's vector (user-specific recency)
    loss: str = "bpr"          # "bpr" or "logistic"
    negatives: int = 4         # sampled negatives per positive
    hard_share: float = 0.5    # share of the negatives drawn from the positive's team (the rest: its workspace)
    epochs: int = 12
    batch_size: int | None = None  # per worker; None: about 32 optimizer steps per epoch (see auto_batch_size)
    lr: float = 0.01
    weight_decay: float = 1e-5
    init_std: float = 0.05
    seed: int = 0
    threads: int | None = 1    # torch threads of in-process training (None: torch's own; 1 was 2x faster on 2 CPUs)
    device: str = "cpu"        # in-process training: "cpu", "cuda" or "auto"

    def __post_init__(self) -> None:
        if not (self.features or self.item_ids):
            raise SundayError("a task needs a vector: set features or item_ids (or both)")
        if self.head not in ("dot", "mlp"):
            raise SundayError(f"head must be 'dot' or 'mlp', got {self.head!r}")
        if self.loss not in ("bpr", "logistic"):
            raise SundayError(f"loss must be 'bpr' or 'logistic', got {self.loss!r}")
        for name in ("dim", "epochs", "batch_size", "negatives", "mlp_hidden"):
            v = getattr(self, name)
            if v is None and name == "batch_size":
                continue
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise SundayError(f"{name} must be a positive integer, got {v!r}")
        if not 0 <= self.hard_share <= 1:
            raise SundayError(f"hard_share must be between 0 and 1, got {self.hard_share}")
        if not self.lr > 0:
            raise SundayError(f"lr must be positive, got {self.lr}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CFConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class CFData:
    """The encoded training set (numpy only, so it travels to Ray workers as one object): one row per positive
    interaction, and per task / user the indices the network's side features need. Tasks are ordered by
    (workspace, team) so each workspace's and each team's tasks are one contiguous range."""

    users: np.ndarray          # int64 [n_pos]
    items: np.ndarray          # int64 [n_pos]
    times: np.ndarray          # float64 [n_pos], days since the Unix epoch (first touch)
    weights: np.ndarray        # float32 [n_pos], mean 1
    item_created: np.ndarray   # float64 [n_items], days
    item_project: np.ndarray   # int64 [n_items]
    item_team: np.ndarray      # int64 [n_items]
    item_skills: np.ndarray    # int64 [n_items, max_skills], padded with n_skills
    item_ws_lo: np.ndarray     # int64 [n_items]: first task of the item's workspace
    item_ws_n: np.ndarray      # int64 [n_items]: tasks in the item's workspace
    item_team_lo: np.ndarray
    item_team_n: np.ndarray
    user_team: np.ndarray      # int64 [n_users]
    n_users: int
    n_projects: int
    n_teams: int
    n_skills: int

    @property
    def n_items(self) -> int:
        return len(self.item_created)

    def __len__(self) -> int:
        return len(self.users)


def auto_batch_size(n_positives: int, world: int = 1, steps: int = 32) -> int:
    """The per-worker batch giving about ``steps`` optimizer steps per epoch whatever the number of workers: a power
    of two in [128, 2048]. The number of steps is what mattered: on the ``cf-sim`` protocol a fixed 1024 under-trained
    a 30k-event simulation (9 steps per epoch; NDCG@10 0.47-0.67 over six seeds, 256 gave 0.55-0.70) while 256
    over-trained a 100k-event one (0.59-0.61 against 0.61-0.62)."""
    target = max(1.0, n_positives / (steps * max(1, world)))
    return int(min(2048, max(128, 2 ** round(np.log2(target)))))


def age_buckets(age_days: torch.Tensor) -> torch.Tensor:
    """Age-bucket index of each age in days (bucket 0: negative age, a task not created yet)."""
    edges = torch.tensor(AGE_EDGES_DAYS, dtype=age_days.dtype, device=age_days.device)
    return torch.bucketize(age_days, edges, right=True)


def to_days(ts: Any) -> np.ndarray:
    """Timestamps (naive UTC) -> float64 days since the Unix epoch."""
    arr = pd.to_datetime(pd.Series(ts)).to_numpy("datetime64[us]").astype(np.int64)
    return arr.astype(np.float64) / DAY_US


class CFNet(nn.Module):
    """The scoring network (see the module docstring); the side-feature index arrays are non-persistent buffers,
    rebuilt from :class:`CFData` (or the saved model's arrays) when the net is built."""

    def __init__(self, data: CFData, config: CFConfig):
        super().__init__()
        d, self.config = config.dim, config
        self.user = nn.Embedding(data.n_users, d)
        if config.item_ids:
            self.item = nn.Embedding(data.n_items, d)
            self.item_bias = nn.Embedding(data.n_items, 1)
        self.project_bias = nn.Embedding(data.n_projects, 1)
        if config.features:
            self.user_team = nn.Embedding(data.n_teams, d)
            self.project = nn.Embedding(data.n_projects, d)
            self.team = nn.Embedding(data.n_teams, d)
            self.skill = nn.Embedding(data.n_skills + 1, d, padding_idx=data.n_skills)
        if config.recency:
            self.age_bias = nn.Embedding(N_AGE, 1)
        if config.age_vectors:
            self.age_vec = nn.Embedding(N_AGE, d)
        if config.head == "mlp":
            self.mlp = nn.Sequential(nn.Linear(2 * d, config.mlp_hidden), nn.ReLU(), nn.Linear(config.mlp_hidden, 1))
        g = torch.Generator().manual_seed(int(config.seed))
        for name, p in self.named_parameters():
            if name.endswith("bias.weight") or name == "age_bias.weight":
                nn.init.zeros_(p)
            elif p.dim() == 2 and not name.startswith("mlp"):
                with torch.no_grad():
                    p.copy_(torch.randn(p.shape, generator=g) * config.init_std)
        if config.features:
            with torch.no_grad():
                self.skill.weight[data.n_skills].zero_()
        self.register_buffer("item_project", torch.as_tensor(data.item_project, dtype=torch.long), persistent=False)
        self.register_buffer("item_team", torch.as_tensor(data.item_team, dtype=torch.long), persistent=False)
        self.register_buffer("item_skills", torch.as_tensor(data.item_skills, dtype=torch.long), persistent=False)
        self.register_buffer("user_team_of", torch.as_tensor(data.user_team, dtype=torch.long), persistent=False)
        self.pad = data.n_skills

    def user_vectors(self, u: torch.Tensor) -> torch.Tensor:
        v = self.user(u)
        if self.config.features:
            v = v + self.user_team(self.user_team_of[u])
        return v

    def item_vectors(self, i: torch.Tensor, age: torch.Tensor | None = None) -> torch.Tensor:
        v = self.item(i) if self.config.item_ids else None
        if self.config.features:
            sk = self.item_skills[i]
            n = (sk != self.pad).sum(-1, keepdim=True).clamp(min=1)
            f = self.project(self.item_project[i]) + self.team(self.item_team[i]) + self.skill(sk).sum(-2) / n
            v = f if v is None else v + f
        if self.config.age_vectors and age is not None:
            v = v + self.age_vec(age_buckets(age))
        return v

    def prior(self, i: torch.Tensor, age: torch.Tensor | None) -> torch.Tensor:
        """The non-personal part of the score: task and project biases, and the age terms when ``age`` (days) is
        given."""
        b = self.project_bias(self.item_project[i]).squeeze(-1)
        if self.config.item_ids:
            b = b + self.item_bias(i).squeeze(-1)
        if self.config.recency and age is not None:
            b = b + self.age_bias(age_buckets(age)).squeeze(-1)
        return b

    def forward(self, u: torch.Tensor, i: torch.Tensor, age: torch.Tensor | None) -> torch.Tensor:
        """Scores of the pairs ``(u[k], i[k])``, task ``i[k]`` ``age[k]`` days old (same shape)."""
        pu, qi = self.user_vectors(u), self.item_vectors(i, age)
        s = (pu * qi).sum(-1) + self.prior(i, age)
        if self.config.head == "mlp":
            s = s + self.mlp(torch.cat([pu, qi], -1)).squeeze(-1)
        return s


def _csr(rows: np.ndarray, cols: np.ndarray, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.lexsort((cols, rows))
    indptr = np.zeros(n_rows + 1, np.int64)
    np.add.at(indptr, rows + 1, 1)
    return np.cumsum(indptr), cols[order].astype(np.int64)


def _check_k(k: int | None) -> int | None:
    if k is None:
        return None
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise SundayError(f"k must be a positive integer (or None for every candidate), got {k!r}")
    return int(k)


def task_catalogue(x: pd.DataFrame, items: pd.DataFrame | None) -> pd.DataFrame:
    """The tasks the model ranks: ``items`` (the observable catalogue) plus tasks only seen in the interactions
    ``x``; with ``created_days`` (created_at, else the first touch), ``project_key`` (workspace/project),
    ``team_key`` (the project's team, else the project) and skill lists; ordered by (workspace, team) so that each
    workspace's and each team's tasks are one contiguous range."""
    cols = ["task_id", "workspace_id", "project_id", "team_id", "required_skills", "created_at"]
    cat = pd.DataFrame(columns=cols) if items is None else items.copy()
    for c in ("task_id", "workspace_id"):
        if c not in cat.columns:
            raise SundayError(f"items: missing column {c!r}")
    for c in cols[2:]:
        if c not in cat.columns:
            cat[c] = None
    cat = cat.astype({"task_id": str, "workspace_id": str}).drop_duplicates("task_id")
    seen = x.groupby("task_id").agg(workspace_id=("workspace_id", "first"), first=("first_ts", "min"),
                                    project_id=("project_id", "first")).reset_index()
    extra = seen[~seen["task_id"].isin(cat["task_id"])]
    if len(extra):
        extra = extra.rename(columns={"first": "created_at"}).assign(team_id=None)
        cat = pd.concat([cat, extra], ignore_index=True) if len(cat) else extra.reindex(columns=cols)
    ws_of_task = dict(zip(cat["task_id"], cat["workspace_id"]))
    bad = x["workspace_id"].to_numpy() != x["task_id"].map(ws_of_task).to_numpy()
    if bad.any():
        r = x[bad].iloc[0]
        raise SundayError(f"interactions: task_id {r['task_id']!r} is in workspace {ws_of_task[r['task_id']]!r} "
                          f"of the items, not {r['workspace_id']!r}")
    created = cat["created_at"].where(cat["created_at"].notna(), cat["task_id"].map(dict(zip(seen["task_id"],
                                                                                           seen["first"]))))
    if created.isna().any():
        raise SundayError(f"items: created_at missing for task {cat.loc[created.isna(), 'task_id'].iloc[0]!r} "
                          "(and it has no interaction to date it by)")
    cat["created_days"] = to_days(created)
    cat["required_skills"] = [list(v) if isinstance(v, (list, tuple, np.ndarray)) else [] for v in
                              cat["required_skills"]]
    cat["project_key"] = cat["workspace_id"] + "/" + cat["project_id"].fillna("").astype(str)
    cat["team_key"] = np.where(cat["team_id"].notna(), cat["team_id"].astype(str), cat["project_key"])
    cat = cat.sort_values(["workspace_id", "team_key", "created_days", "task_id"], kind="stable")
    return cat.reset_index(drop=True)


class CFRecommender:
    """Relevant tasks and collaborators for a user (scikit-learn-like: ``fit`` returns self).

    ``trainer``: ``"local"`` (in process) or ``"ray"`` (a Ray Train ``TorchTrainer`` with ``num_workers`` DDP
    workers, ``use_gpu`` for GPUs; Ray must be running). Fitted attributes end with ``_``.
    """

    def __init__(self, config: CFConfig | None = None, trainer: str = "local", num_workers: int = 2,
                 use_gpu: bool = False):
        if trainer not in ("local", "ray"):
            raise SundayError(f"trainer must be 'local' or 'ray', got {trainer!r}")
        self.config = config or CFConfig()
        self.trainer, self.num_workers, self.use_gpu = trainer, num_workers, use_gpu
        self.net_: CFNet | None = None
        self.history_: list[dict[str, float]] = []

    # -- fitting --------------------------------------------------------------------------------------------------

    def fit(self, interactions: pd.DataFrame, items: pd.DataFrame | None = None,
            users: pd.DataFrame | None = None) -> CFRecommender:
        """Train on ``interactions`` (:func:`~sunday.models.personalization.interactions.build_interactions`).

        ``items``: the task catalogue to rank (:func:`~sunday.models.personalization.interactions.item_catalog`;
        tasks only seen in ``interactions`` are added); ``users``: the user catalogue
        (:func:`~sunday.models.personalization.interactions.user_catalog`: teams, and cold-start users).
        """
        from sunday.models.personalization.cf_train import train_net

        data = self._encode(interactions, items, users)
        self.net_, self.history_ = train_net(data, self.config, trainer=self.trainer,
                                             num_workers=self.num_workers, use_gpu=self.use_gpu)
        self.net_.eval()
        return self

    def _encode(self, interactions: pd.DataFrame, items: pd.DataFrame | None, users: pd.DataFrame | None
                ) -> CFData:
        """Set the vocabularies, catalogues and seen sets; return the training set for the network."""
        need = ["workspace_id", "user_id", "task_id", "first_ts", "weight"]
        missing = [c for c in need if c not in interactions.columns]
        if missing:
            raise SundayError(f"interactions: missing column(s) {missing}")
        if len(interactions) == 0:
            raise SundayError("interactions: no rows to train on")
        x = interactions.reset_index(drop=True)
        if "project_id" not in x.columns:
            x = x.assign(project_id=None)
        x = x.astype({"user_id": str, "task_id": str, "workspace_id": str})
        cat = task_catalogue(x, items)
        ucat = None
        if users is not None:
            for c in ("user_id", "workspace_id"):
                if c not in users.columns:
                    raise SundayError(f"users: missing column {c!r}")
            ucat = users.drop_duplicates("user_id").astype({"user_id": str, "workspace_id": str})
        self._set_items(cat, ucat)
        self._set_users(x, ucat)
        u = x["user_id"].map(self.user_index_).to_numpy(np.int64)
        i = x["task_id"].map(self.item_index_).to_numpy(np.int64)
        times = to_days(x["first_ts"])
        w = np.log1p(x["weight"].to_numpy(np.float64).clip(min=0))
        w = (w / w.mean()) if w.mean() > 0 else np.ones_like(w)
        self.seen_indptr_, self.seen_items_ = _csr(u, i, len(self.users_))
        self.activity_ = np.bincount(u, minlength=len(self.users_)).astype(np.float64)
        pairs = pd.DataFrame({"u": u, "i": i}).drop_duplicates()
        m = pairs.merge(pairs, on="i")
        m = m[m["u_x"] != m["u_y"]][["u_x", "u_y"]].drop_duplicates()
        self.collab_indptr_, self.collab_users_ = _csr(m["u_x"].to_numpy(np.int64), m["u_y"].to_numpy(np.int64),
                                                       len(self.users_))
        self.now_ = float(max(times.max(), self.item_created_.max()))
        key = self.item_ws_ * len(self.teams_) + self.item_team_  # sorted: tasks are ordered by (workspace, team)
        lo, hi = self.ws_lo_[self.item_ws_], self.ws_hi_[self.item_ws_]
        team_lo, team_hi = np.searchsorted(key, key, side="left"), np.searchsorted(key, key, side="right")
        return CFData(users=u, items=i, times=times, weights=w.astype(np.float32),
                      item_created=self.item_created_, item_project=self.item_project_, item_team=self.item_team_,
                      item_skills=self.item_skills_, item_ws_lo=lo.astype(np.int64),
                      item_ws_n=(hi - lo).astype(np.int64), item_team_lo=team_lo.astype(np.int64),
                      item_team_n=(team_hi - team_lo).astype(np.int64), user_team=self.user_team_,
                      n_users=len(self.users_), n_projects=len(self.projects_), n_teams=len(self.teams_),
                      n_skills=len(self.skills_))

    def _set_items(self, cat: pd.DataFrame, ucat: pd.DataFrame | None) -> None:
        """Task, workspace, project, team and skill vocabularies and the per-task index arrays."""
        self.items_ = cat["task_id"].to_numpy(object)
        self.item_index_ = {t: k for k, t in enumerate(self.items_)}
        self.workspaces_ = sorted(cat["workspace_id"].unique())
        ws_idx = {w: k for k, w in enumerate(self.workspaces_)}
        self.item_ws_ = cat["workspace_id"].map(ws_idx).to_numpy(np.int64)
        self.ws_lo_ = np.searchsorted(self.item_ws_, np.arange(len(self.workspaces_)), side="left")
        self.ws_hi_ = np.searchsorted(self.item_ws_, np.arange(len(self.workspaces_)), side="right")
        self.projects_ = sorted(cat["project_key"].unique())
        user_teams = set() if ucat is None or "team_id" not in ucat.columns else set(
            ucat["team_id"].dropna().astype(str))
        self.teams_ = ["<none>"] + sorted(set(cat["team_key"]) | user_teams)
        self.skills_ = sorted({s for row in cat["required_skills"] for s in row})
        skill_idx = {s: k for k, s in enumerate(self.skills_)}
        lists = [[skill_idx[s] for s in row] for row in cat["required_skills"]]
        self.item_skills_ = np.full((len(cat), max(1, max(map(len, lists), default=1))), len(self.skills_), np.int64)
        for r, sk in enumerate(lists):
            self.item_skills_[r, :len(sk)] = sk
        self.item_created_ = cat["created_days"].to_numpy(np.float64)
        self.item_project_ = cat["project_key"].map({p: k for k, p in enumerate(self.projects_)}).to_numpy(np.int64)
        self.item_team_ = cat["team_key"].map({t: k for k, t in enumerate(self.teams_)}).to_numpy(np.int64)

    def _set_users(self, x: pd.DataFrame, ucat: pd.DataFrame | None) -> None:
        """Users with interactions first (indices < ``n_active_``), then catalogue-only (cold) users; each user's
        workspace and team."""
        user_ws = x.groupby("user_id")["workspace_id"].agg(lambda s: sorted(set(s)))
        multi = user_ws[user_ws.map(len) > 1]
        if len(multi):
            raise SundayError(f"interactions: user_id {multi.index[0]!r} appears in several workspaces "
                              f"{multi.iloc[0]}; user ids must be unique per workspace")
        ws_user = {u: w[0] for u, w in user_ws.items()}
        team_user: dict[str, str] = {}
        if ucat is not None:
            for u, w in zip(ucat["user_id"], ucat["workspace_id"]):
                if u in ws_user and ws_user[u] != w:
                    raise SundayError(f"users: user_id {u!r} is in workspace {w!r} but interacts in {ws_user[u]!r}")
                ws_user.setdefault(u, w)
            if "team_id" in ucat.columns:
                team_user = {u: str(t) for u, t in zip(ucat["user_id"], ucat["team_id"]) if pd.notna(t)}
        ws_idx = {w: k for k, w in enumerate(self.workspaces_)}
        unknown_ws = sorted({w for w in ws_user.values() if w not in ws_idx})
        if unknown_ws:
            raise SundayError(f"users: workspace_id {unknown_ws[0]!r} has no task in the items")
        active = sorted(user_ws.index)
        self.users_ = np.array(active + sorted(set(ws_user) - set(active)), dtype=object)
        self.user_index_ = {u: k for k, u in enumerate(self.users_)}
        self.n_active_ = len(active)
        self.user_ws_ = np.array([ws_idx[ws_user[u]] for u in self.users_], np.int64)
        team_idx = {t: k for k, t in enumerate(self.teams_)}
        self.user_team_ = np.array([team_idx.get(team_user.get(u, ""), 0) for u in self.users_], np.int64)

    # -- lookups --------------------------------------------------------------------------------------------------

    def _check_fitted(self) -> None:
        if self.net_ is None:
            raise SundayError("the recommender is not fitted: call fit(interactions) or load(path) first")

    def _resolve_user(self, user_id: str, workspace_id: str | None) -> tuple[int | None, int]:
        """(user index or None when unknown, workspace index); UnknownIdError when neither places the user."""
        self._check_fitted()
        ws = None
        if workspace_id is not None:
            if workspace_id not in self.workspaces_:
                raise UnknownIdError("workspace_id", workspace_id)
            ws = self.workspaces_.index(workspace_id)
        idx = self.user_index_.get(user_id)
        if idx is None:
            if ws is None:
                raise UnknownIdError("user_id", user_id, "pass workspace_id for a new user (cold start: the "
                                     "workspace's popular recent tasks)")
            return None, ws
        if ws is not None and ws != self.user_ws_[idx]:
            raise SundayError(f"user_id {user_id!r} belongs to workspace {self.workspaces_[self.user_ws_[idx]]!r}, "
                              f"not workspace_id {workspace_id!r}")
        return idx, int(self.user_ws_[idx])

    def seen(self, user_id: str) -> list[str]:
        """The tasks ``user_id`` touched in training."""
        idx, _ = self._resolve_user(user_id, None)
        return [str(t) for t in self.items_[self.seen_items_[self.seen_indptr_[idx]:self.seen_indptr_[idx + 1]]]]

    def is_cold(self, user_id: str) -> bool:
        idx = self.user_index_.get(user_id)
        return idx is None or idx >= self.n_active_

    # -- scoring --------------------------------------------------------------------------------------------------

    def _age(self, items: np.ndarray, at: Any) -> torch.Tensor:
        t = self.now_ if at is None else float(to_days([at])[0])
        return torch.from_numpy(t - self.item_created_[items]).float()

    @torch.no_grad()
    def score_items(self, user_id: str, items: np.ndarray, at: Any = None, workspace_id: str | None = None
                    ) -> np.ndarray:
        """Scores of task indices ``items`` (of the user's workspace) for ``user_id`` at time ``at``."""
        idx, _ = self._resolve_user(user_id, workspace_id)
        it = torch.from_numpy(np.asarray(items, np.int64))
        age = self._age(np.asarray(items, np.int64), at)
        if idx is None or idx >= self.n_active_:
            return self.net_.prior(it, age).numpy().astype(np.float64)
        u = torch.full_like(it, idx)
        return self.net_(u, it, age).numpy().astype(np.float64)

    def recommend(self, user_id: str, k: int | None = 10, exclude_seen: bool = True, workspace_id: str | None = None,
                  at: Any = None) -> list[tuple[str, float]]:
        """The ``k`` best tasks of the user's workspace for ``user_id``, best first (``k=None``: every candidate).

        ``exclude_seen`` drops the tasks the user touched in training; ``at`` is the time the ages of the tasks
        are taken at (default :attr:`now_`); ``workspace_id`` places a user the model does not know (cold start).
        """
        k = _check_k(k)
        idx, ws = self._resolve_user(user_id, workspace_id)
        cand = np.arange(self.ws_lo_[ws], self.ws_hi_[ws])
        if exclude_seen and idx is not None:
            seen = self.seen_items_[self.seen_indptr_[idx]:self.seen_indptr_[idx + 1]]
            cand = cand[~np.isin(cand, seen)]
        scores = self.score_items(user_id, cand, at=at, workspace_id=workspace_id)
        return self._top(cand, scores, k, self.items_)

    @staticmethod
    def _top(cand: np.ndarray, scores: np.ndarray, k: int | None, names: np.ndarray) -> list[tuple[str, float]]:
        if k is not None and k < len(cand):
            part = np.argpartition(-scores, k - 1)[:k]
            cand, scores = cand[part], scores[part]
        order = np.lexsort((cand, -scores))  # ties: the lower index (stable across calls)
        return [(str(names[c]), float(s)) for c, s in zip(cand[order], scores[order])]

    @torch.no_grad()
    def user_vectors(self) -> np.ndarray:
        self._check_fitted()
        return self.net_.user_vectors(torch.arange(len(self.users_))).numpy().astype(np.float64)

    def similar_users(self, user_id: str, k: int | None = 10, exclude_known: bool = False
                      ) -> list[tuple[str, float]]:
        """Likely collaborators of ``user_id``: the users of the same workspace by cosine similarity of their
        vectors, best first (``exclude_known`` drops those who already shared a task with the user in training).
        A user with no interaction gets the workspace's most active users (score = their interaction count)."""
        k = _check_k(k)
        idx, ws = self._resolve_user(user_id, None)
        cand = np.flatnonzero(self.user_ws_ == ws)
        cand = cand[cand != idx]
        if exclude_known:
            known = self.collab_users_[self.collab_indptr_[idx]:self.collab_indptr_[idx + 1]]
            cand = cand[~np.isin(cand, known)]
        if idx >= self.n_active_:
            return self._top(cand, self.activity_[cand], k, self.users_)
        vec = self.user_vectors()
        vec = vec / np.maximum(np.linalg.norm(vec, axis=1, keepdims=True), 1e-12)
        return self._top(cand, vec[cand] @ vec[idx], k, self.users_)

    # -- persistence ----------------------------------------------------------------------------------------------

    _ARRAYS = ("items_", "users_", "item_ws_", "ws_lo_", "ws_hi_", "item_created_", "item_project_", "item_team_",
               "item_skills_", "user_ws_", "user_team_", "seen_indptr_", "seen_items_", "collab_indptr_",
               "collab_users_", "activity_")

    def save(self, path: str | Path) -> Path:
        """A model folder: ``net.pt`` (state dict), ``arrays.npz`` (catalogues, seen sets), ``model.json``."""
        self._check_fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        torch.save({k: v.detach().cpu() for k, v in self.net_.state_dict().items()}, path / NET_FILE)
        arrays = {}
        for name in self._ARRAYS:
            a = getattr(self, name)
            arrays[name] = a.astype(str) if a.dtype == object else a
        np.savez(path / ARRAYS_FILE, **arrays)
        meta = {"config": self.config.to_dict(), "history": self.history_, "now": self.now_,
                "n_active": self.n_active_, "workspaces": self.workspaces_, "projects": self.projects_,
                "teams": self.teams_, "skills": self.skills_, "trainer": self.trainer}
        (path / META_FILE).write_text(json.dumps(meta, indent=1))
        return path

    @classmethod
    def load(cls, path: str | Path) -> CFRecommender:
        path = Path(path)
        if not all((path / f).is_file() for f in (NET_FILE, META_FILE, ARRAYS_FILE)):
            raise SundayError(f"{path} is not a CF model folder ({NET_FILE}, {ARRAYS_FILE} and {META_FILE} needed)")
        meta = json.loads((path / META_FILE).read_text())
        model = cls(CFConfig.from_dict(meta["config"]), trainer=meta.get("trainer", "local"))
        with np.load(path / ARRAYS_FILE, allow_pickle=False) as z:
            for name in cls._ARRAYS:
                a = z[name]
                setattr(model, name, a.astype(object) if a.dtype.kind == "U" else a)
        model.history_, model.now_, model.n_active_ = list(meta["history"]), float(meta["now"]), int(meta["n_active"])
        model.workspaces_, model.projects_ = list(meta["workspaces"]), list(meta["projects"])
        model.teams_, model.skills_ = list(meta["teams"]), list(meta["skills"])
        model.item_index_ = {str(t): k for k, t in enumerate(model.items_)}
        model.user_index_ = {str(u): k for k, u in enumerate(model.users_)}
        net = CFNet(model.net_data(), model.config)
        net.load_state_dict(torch.load(path / NET_FILE, map_location="cpu", weights_only=True))
        model.net_ = net.eval()
        return model

    def net_data(self) -> CFData:
        """The side-feature arrays a :class:`CFNet` is built from (no positives)."""
        empty_i, empty_f = np.empty(0, np.int64), np.empty(0, np.float64)
        return CFData(users=empty_i, items=empty_i, times=empty_f, weights=empty_f.astype(np.float32),
                      item_created=self.item_created_, item_project=self.item_project_, item_team=self.item_team_,
                      item_skills=self.item_skills_, item_ws_lo=empty_i, item_ws_n=empty_i, item_team_lo=empty_i,
                      item_team_n=empty_i, user_team=self.user_team_, n_users=len(self.users_),
                      n_projects=len(self.projects_), n_teams=len(self.teams_), n_skills=len(self.skills_))
