"""Story-point estimation from issue text: our effort model per project vs the published Deep-SE and GPT2SP MAE.

Projects are whatever the storypoints importer finds in the folder (``*.csv`` with ``issuekey, title, description,
storypoint, split_mark``), so other projects in the same format work unchanged. Each project uses the dataset's own
``split_mark`` (GPT2SP's chronological 60/20/20): :class:`~sunday.models.effort.TextPointsEstimator` fits its
components on ``train``, picks its mixture weights on ``val`` (never on ``test``), refits on ``train + val`` and is
scored once on ``test``. Predictions are the median of the model's distribution over the point values seen in
training (so they are point values themselves; nothing else is rounded).

Per project: ``mae`` / ``mdae`` (mean / median absolute error on test) of the model, and of the mean and median
baselines (``mae_mean``, ``mae_median``, ``mdae_median``) fitted on the same rows as the final model (train + val;
``refit=False`` makes both train only), computed by :func:`sunday.evaluation.storypoints_baselines.baseline_rows`.
Anchors beside them: the published Deep-SE and GPT2SP MAE (``within_proj_data.csv``) next to ``mae``, and the
published Mean / Median MAE next to ours. ``beats_deepse`` / ``beats_gpt2sp`` compare ``mae`` with the published
figure. Notes count the projects where the model is below Deep-SE (the issue's target: at least 9 of 12) and GPT2SP.

Options: ``embeddings`` (default true: MiniLM title/description embeddings, cached under the state folder; the
first run embeds ~33k texts, which takes minutes on a CPU; false drops the ``embed-lr`` component and makes ``knn``
use TF-IDF), ``refit`` (default true), ``projects`` (a list of project names to run; default all).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from sunday.data.importers.storypoints import StoryPointsImporter, load_published_mae
from sunday.evaluation.base import Anchor, EvalResult, Evaluation, register
from sunday.evaluation.storypoints_baselines import SOURCE as TABLE_SOURCE
from sunday.evaluation.storypoints_baselines import baseline_rows
from sunday.models.effort import TextPointsConfig, TextPointsEstimator

DEEPSE_SOURCE = "Deep-SE, published"
GPT2SP_SOURCE = "GPT2SP, published"
TARGET_FRACTION = 0.75  # the target: below the published Deep-SE MAE on at least 9 of the 12 projects
GPT2SP_MAE_FIX = "github.com/awsm-research/gpt2sp/pull/2"


def _embedder() -> Callable[[list[str]], np.ndarray]:
    from sunday.features.embeddings import TextEmbedder
    from sunday.settings import get_settings

    return TextEmbedder.for_settings(get_settings().ensure_dirs(), progress=True).embed


def _columns(df: pd.DataFrame) -> tuple[list, list, np.ndarray]:
    return df["title"].tolist(), df["description"].tolist(), df["story_points"].to_numpy(dtype="float64")


def project_result(tasks: pd.DataFrame, config: TextPointsConfig | None = None,
                   embed: Callable[[list[str]], np.ndarray] | None = None) -> dict[str, Any]:
    """Fit on train (weights on val, refit on train+val) and score on test, for one project's tasks."""
    config = config or TextPointsConfig()
    tasks = tasks[tasks["story_points"].notna()].sort_values("source_order", kind="stable")
    parts = {s: tasks[tasks["split"] == s] for s in ("train", "val", "test")}
    if not len(parts["train"]) or not len(parts["test"]):
        return {"n_train": len(parts["train"]), "n_val": len(parts["val"]), "n_test": len(parts["test"]),
                "skipped": "no train or no test rows"}
    t0 = time.perf_counter()
    model = TextPointsEstimator(config, embed=embed)
    validation = _columns(parts["val"]) if len(parts["val"]) else None
    model.fit(*_columns(parts["train"]), validation=validation)
    test_t, test_d, y = _columns(parts["test"])
    pred = model.predict(test_t, test_d)
    err = np.abs(y - pred)
    components = {c: float(np.abs(y - p).mean()) for c, p in model.component_predictions(test_t, test_d).items()}
    return {
        "n_train": len(parts["train"]), "n_val": len(parts["val"]), "n_test": len(parts["test"]),
        "mae": float(err.mean()), "mdae": float(np.median(err)),
        "components": components, "weights": model.weights_, "validation": model.validation_,
        "seconds": round(time.perf_counter() - t0, 2), "test_points": y, "test_pred": pred,
        # not a model: the best constant for the test split, its own median, which no model can know beforehand
        "mae_oracle_constant": float(np.abs(y - np.median(y)).mean()),
    }


@register
class StoryPointsEvaluation(Evaluation):
    name = "storypoints"
    description = ("story points from title + description (effort model: validated mixture of TF-IDF/MiniLM "
                   "classifiers and kNN, median prediction) per project vs published Deep-SE and GPT2SP MAE and "
                   "mean/median baselines")
    folder = "storypoints_deepse"

    def run(self, data_dir: Path, **options: Any) -> EvalResult:
        from tqdm import tqdm

        embeddings = bool(options.get("embeddings", True))
        refit = bool(options.get("refit", True))
        only = options.get("projects")
        if isinstance(only, str):
            only = [only]
        config = TextPointsConfig(refit=refit)
        importer = StoryPointsImporter()
        source = importer.source_dir(data_dir)
        tasks = importer.load(source)["tasks"]
        if only:
            missing = sorted(set(only) - set(tasks["project_id"]))
            if missing:
                raise ValueError(f"projects: {missing} not in {source}; found {sorted(set(tasks['project_id']))}")
            tasks = tasks[tasks["project_id"].isin(only)]
        published = load_published_mae(source).set_index("project")
        baselines = {r["project"]: r for r in baseline_rows(tasks, include_val=refit)}
        embed = _embedder() if embeddings else None

        rows: list[dict[str, Any]] = []
        anchors: list[Anchor] = []
        meta: dict[str, Any] = {"embeddings": embeddings, "refit": refit, "config": _config_dict(config),
                                "projects": {}}
        groups = list(tasks.groupby("project_id", sort=True))
        for project, df in tqdm(groups, desc="storypoints", unit="project"):
            project = str(project)
            res = project_result(df, config, embed)
            base = baselines[project]
            row: dict[str, Any] = {"project": project, "n_train": res["n_train"], "n_val": res["n_val"],
                                   "n_test": res["n_test"], "mae": res.get("mae"), "mdae": res.get("mdae"),
                                   "mae_mean": base["mae_mean"], "mae_median": base["mae_median"]}
            if "mae" in res:
                train_splits = ("train", "val") if refit else ("train",)
                train_y = df.loc[df["split"].isin(train_splits), "story_points"].dropna()
                row["mdae_median"] = float(np.median(np.abs(res["test_points"] - train_y.median())))
            for key, column in (("beats_deepse", "DeepSE"), ("beats_gpt2sp", "GPT2SP")):
                has = project in published.index and row["mae"] is not None
                row[key] = bool(row["mae"] < published.at[project, column]) if has else None
            row["seconds"] = res.get("seconds")
            rows.append(row)
            if project in published.index:
                anchors += [Anchor(project, "mae", float(published.at[project, "DeepSE"]), DEEPSE_SOURCE),
                            Anchor(project, "mae", float(published.at[project, "GPT2SP"]), GPT2SP_SOURCE),
                            Anchor(project, "mae_mean", float(published.at[project, "Mean"]), TABLE_SOURCE),
                            Anchor(project, "mae_median", float(published.at[project, "Median"]), TABLE_SOURCE)]
            meta["projects"][project] = {k: res[k] for k in ("components", "weights", "validation",
                                                             "mae_oracle_constant", "skipped")
                                         if k in res}
        return EvalResult(self.name, "project", rows, anchors=anchors,
                          notes=_notes(rows, meta, published, refit, embeddings), meta=meta)


def _config_dict(config: TextPointsConfig) -> dict[str, Any]:
    from dataclasses import asdict

    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()}


def _count(rows: list[dict[str, Any]], key: str) -> tuple[int, int]:
    flags = [r[key] for r in rows if r.get(key) is not None]
    return sum(flags), len(flags)


def _notes(rows, meta, published, refit: bool, embeddings: bool) -> list[str]:
    notes = []
    beat_d, n_d = _count(rows, "beats_deepse")
    beat_g, n_g = _count(rows, "beats_gpt2sp")
    need = math.ceil(TARGET_FRACTION * n_d - 1e-9)
    target = "met" if n_d and beat_d >= need else "missed"
    notes.append(f"model MAE below the published Deep-SE MAE on {beat_d} of {n_d} projects (target: at least "
                 f"{need} of {n_d}{'' if n_d == 12 else ', as 9 of 12 on the full set'}: {target}); below the "
                 f"published GPT2SP MAE on {beat_g} "
                 f"of {n_g}.")
    scored = [r for r in rows if r.get("mae") is not None]
    if scored:
        below_median = sum(r["mae"] < r["mae_median"] for r in scored)
        ratio = float(np.mean([r["mae"] / r["mae_median"] for r in scored if r["mae_median"]]))
        notes.append(f"model MAE below our median baseline on {below_median} of {len(scored)} projects; mean ratio "
                     f"model/median-baseline MAE {ratio:.3f}.")
    oracle = {p: i["mae_oracle_constant"] for p, i in meta["projects"].items() if "mae_oracle_constant" in i}
    below = [p for p in oracle if p in published.index and published.at[p, "DeepSE"] < oracle[p]]
    if oracle:
        notes.append(f"for scale: the published Deep-SE MAE is below the MAE of the best constant for the test split "
                     f"(its own median, an oracle no model can know) on {len(below)} of "
                     f"{sum(p in published.index for p in oracle)} projects, i.e. it claims that much from the text "
                     "alone; oracle MAE per project: " + ", ".join(f"{p} {v:.3f}" for p, v in oracle.items()) + ".")
    for project, info in meta["projects"].items():
        if "skipped" in info:
            notes.append(f"{project}: skipped ({info['skipped']}).")
            continue
        w = ", ".join(f"{c} {v:.2f}" for c, v in info["weights"].items())
        comp = ", ".join(f"{c} {v:.3f}" for c, v in info["components"].items())
        val = info["validation"]
        notes.append(f"{project}: weights ({val['source']}, {val['rows']} rows) {w}; test MAE of each component "
                     f"alone: {comp}.")
    rows_used = "train+val" if refit else "train only"
    notes += [
        f"the model is fitted on train, its mixture weights chosen on val, then refitted on {rows_used}; the "
        f"mean/median baselines use {rows_used} rows too. Predictions are medians of a distribution over the "
        "training point values, so MdAE is often a whole number.",
        f"embeddings: {'MiniLM (all-MiniLM-L6-v2) title and description vectors' if embeddings else 'off (TF-IDF only)'}.",
        f"columns 'mae ({DEEPSE_SOURCE})' / 'mae ({GPT2SP_SOURCE})' are published figures from GPT2SP's "
        f"within_proj_data.csv, not ours; '({TABLE_SOURCE})' columns are the published Mean/Median baselines.",
        f"caveat on the GPT2SP figures: {GPT2SP_MAE_FIX} (merged 2022-08) corrected GPT2SP's test-MAE code, which "
        "divided the summed error by about twice the test-set size; the published GPT2SP MAE may be understated.",
    ]
    absent = sorted(set(published.index) - {r["project"] for r in rows})
    if absent:
        notes.append(f"published projects not run here: {', '.join(absent)}")
    return notes
