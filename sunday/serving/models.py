"""The models behind the serving API as plain classes: each loads a registered MLflow version (the ``champion``
alias by default), swaps to another version without dropping requests (:meth:`RegistryModel.reconfigure`:
the new version loads beside the old one, then one reference assignment switches them), and scores a *batch*
of requests with per-request errors (one bad request never fails the others in its batch).

The Ray Serve deployments in ``serve_apps/app.py`` are thin wrappers: ``__init__`` builds one of these,
``reconfigure(user_config)`` forwards, and an ``@serve.batch`` method calls ``*_batch``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping, Sequence

from sunday.errors import SundayError


@dataclass
class Loaded:
    obj: Any
    version: str
    alias: str | None
    loaded_at: str


def error(status: int, message: str) -> dict:
    """A per-request failure inside a batch (the ingress answers it with ``status``)."""
    return {"error": message, "status": status}


class RegistryModel:
    name = ""

    def __init__(self, settings, alias: str | None = "champion", version: str | None = None):
        self.settings = settings
        self.current: Loaded | None = None
        self.reconfigure({"alias": alias, "version": version})

    def _load(self, version: str) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def reconfigure(self, config: Mapping[str, Any] | None) -> Loaded:
        """``{"version": "3"}`` pins a version; ``{"alias": "champion"}`` (default) follows an alias (resolved
        now: redeploy or reconfigure again to pick up a moved alias). Loads first, then swaps."""
        from sunday import tracking

        config = dict(config or {})
        unknown = sorted(set(config) - {"alias", "version"})
        if unknown:
            raise SundayError(f"{self.name}: unknown user_config key(s) {unknown}; known: alias, version")
        version, alias = config.get("version"), config.get("alias") or "champion"
        tracking.configure(self.settings)
        if version is None:
            version = tracking.alias_version(self.name, alias)
            if version is None:
                raise SundayError(f"no '{alias}' version of model '{self.name}' is registered "
                                  f"(train one: python train_jobs/{self.job}.py)")
        else:
            alias = None
        if self.current is not None and self.current.version == str(version):
            return self.current
        obj = self._load(str(version))
        self.current = Loaded(obj, str(version), alias, datetime.now(timezone.utc).isoformat(timespec="seconds"))
        return self.current

    def info(self) -> dict[str, Any]:
        c = self.current
        return {"name": self.name, "version": c and c.version, "alias": c and c.alias,
                "loaded_at": c and c.loaded_at}

    def healthy(self) -> bool:
        return self.current is not None


class AssignmentModel(RegistryModel):
    """The task-assignment ranker; candidates' features come from the caller (the feature deployment)."""

    name, job = "task_assignment", "assignment"

    def __init__(self, settings, alias: str | None = "champion", version: str | None = None,
                 embeddings: bool = True, torch_threads: int | None = 1):
        """``torch_threads``: intra-op threads of the text encoder. One per replica: on a shared CPU, torch's
        default (all cores) spins against the other replicas and its own batch (17 ms single-thread for a task's
        embedding here vs 100-700 ms with 2 threads under load); scale with replicas instead."""
        self.embeddings = embeddings
        if embeddings and torch_threads:
            import torch

            torch.set_num_threads(int(torch_threads))
        super().__init__(settings, alias, version)

    def warmup(self) -> None:
        """Load the text encoder now (a first request would otherwise pay ~2 s for it)."""
        if self.embeddings:
            from sunday.features.embeddings import load_model

            load_model().encode(["warm up"], show_progress_bar=False)

    def _load(self, version: str):
        from sunday.models.assignment.service import AssignmentService

        return AssignmentService.from_registry(self.settings, self.name, version=version,
                                               embeddings=self.embeddings, online=_NoStore())

    def prepare_batch(self, items: Sequence[Mapping[str, Any]]) -> tuple[list, list]:
        """Validate each request: (prepared or None per item, results with errors filled in)."""
        from sunday.models.assignment.ranker import InvalidInput

        service = self.current.obj
        prepared: list = []
        results: list = [None] * len(items)
        for i, it in enumerate(items):
            try:
                prepared.append(service.prepare(it["task"], it["candidates"], it.get("weights"), it.get("top_k")))
            except InvalidInput as exc:
                prepared.append(None)
                results[i] = error(422, str(exc))
        return prepared, results

    @staticmethod
    def candidate_ids(prepared: Sequence) -> list[str]:
        return list(dict.fromkeys(u for p in prepared if p is not None for u in p.candidate_ids))

    def finish_batch(self, prepared: Sequence, results: list, ids: Sequence[str], columns: Mapping[str, list],
                     explain: Sequence[bool] | None = None) -> list[dict]:
        """Score every valid request in one model call, given the online columns of ``ids`` (all candidates)."""
        from sunday.models.assignment.ranker import InvalidInput

        loaded = self.current
        service = loaded.obj
        where = {u: k for k, u in enumerate(ids)}
        ok, frames = [], []
        for i, p in enumerate(prepared):
            if p is None:
                continue
            rows = [where[u] for u in p.candidate_ids]
            try:
                frames.append(service.candidate_frame(p.candidate_ids,
                                                      {c: [v[r] for r in rows] for c, v in columns.items()}))
                ok.append(i)
            except InvalidInput as exc:
                results[i] = error(422, str(exc))
        batch = [prepared[i] for i in ok]
        service.embed_many(batch)
        for i, answer in zip(ok, service.score_many(batch, frames)):
            if explain is not None and not explain[i]:
                for alt in answer["alternatives"]:
                    alt["reasons"] = []
            answer["model_version"] = loaded.version
            results[i] = answer
        return results

    def recommend_batch(self, items: Sequence[Mapping[str, Any]], features: Any) -> list[dict]:
        """All steps in process (``features``: anything with ``get_columns``, e.g. a :class:`CachedFeatures`)."""
        from sunday.models.assignment.service import USER_GROUPS

        prepared, results = self.prepare_batch(items)
        ids = self.candidate_ids(prepared)
        cols = features.get_columns(list(USER_GROUPS), [{"user_id": u} for u in ids]) if ids else {}
        return self.finish_batch(prepared, results, ids, cols, [bool(it.get("explain", True)) for it in items])


class _NoStore:
    """The assignment model in a deployment never reads the store itself (the feature deployment does)."""

    def get_columns(self, *_a, **_k):  # pragma: no cover - guard
        raise RuntimeError("features come from the feature deployment")


class TimelineModel(RegistryModel):
    """The project timeline forecaster; a project's inputs come in the request or from a :class:`ProjectCatalog`."""

    name, job = "project_timeline", "timeline"

    def _load(self, version: str):
        """(forecaster, task delay-risk model or None) of a registered version."""
        import tempfile
        from pathlib import Path

        from sunday import tracking
        from sunday.models.timeline.forecaster import TimelineForecaster
        from sunday.models.timeline.train import load_task_risk

        folder = tracking.download_version(self.name, version, Path(tempfile.mkdtemp()))
        return TimelineForecaster.load(folder), load_task_risk(folder)

    def predict_batch(self, items: Sequence[Mapping[str, Any]]) -> list[dict]:
        """``items``: project dicts for ``predict_timeline`` (+ ``mc_samples``; + ``tasks``: the project's
        task_risk_features rows, flagged with the version's task model); errors per item."""
        from sunday.models.timeline.service import predict_timeline

        loaded = self.current
        forecaster, task_model = loaded.obj
        out = []
        for it in items:
            t0 = time.perf_counter()
            try:
                project = {k: v for k, v in it.items()  # "_..." keys: the deployment's (e.g. _request_id)
                           if k not in ("mc_samples", "tasks") and not k.startswith("_")}
                tasks = it.get("tasks") if task_model is not None else None
                r = predict_timeline(forecaster, project, mc_samples=int(it.get("mc_samples") or 0),
                                     tasks=tasks, task_model=task_model if tasks is not None else None)
                r["model_version"] = loaded.version
                r["model_ms"] = (time.perf_counter() - t0) * 1e3
                out.append(r)
            except SundayError as exc:
                out.append(error(422, str(exc)))
            except (ValueError, OverflowError) as exc:  # e.g. pandas' date range: a request the model can't use
                out.append(error(422, f"the project's dates cannot be used: {exc}"))
        return out
