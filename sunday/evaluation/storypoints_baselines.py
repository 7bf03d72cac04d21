"""Story-point baselines: MAE of predicting the training mean / median on each project's test split.

Projects are whatever the storypoints importer finds in the folder (so other projects in the same format work).
Training data is train + val (``include_val=False`` uses train only): the mean/median baselines have nothing to tune,
so the validation rows are training data for them, as GPT2SP/Deep-SE use train+val issues before the test split.
The published Mean/Median MAE (GPT2SP's within_proj_data.csv) are anchors beside ours; the published Deep-SE and
GPT2SP MAE are anchors too and, so the table shows them, row values named ``published_*`` (not ours).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from sunday.data.importers.storypoints import StoryPointsImporter, load_published_mae
from sunday.evaluation.base import Anchor, EvalResult, Evaluation, register

SOURCE = "GPT2SP table"
MATCH_TOLERANCE = 0.1
# our metric -> column of within_proj_data.csv
ANCHORED = {"mae_mean": "Mean", "mae_median": "Median", "mae_deepse": "DeepSE", "mae_gpt2sp": "GPT2SP"}
PUBLISHED_ROWS = {"published_deepse": "DeepSE", "published_gpt2sp": "GPT2SP"}


def baseline_rows(tasks: pd.DataFrame, include_val: bool = True) -> list[dict[str, Any]]:
    """One row per project: n_train, n_test and the test MAE of the training mean and median."""
    train_splits = ("train", "val") if include_val else ("train",)
    rows = []
    for project, df in tasks.groupby("project_id", sort=True):
        train = df.loc[df["split"].isin(train_splits), "story_points"].dropna()
        test = df.loc[df["split"] == "test", "story_points"].dropna()
        nan = float("nan")
        rows.append({
            "project": str(project), "n_train": int(len(train)), "n_test": int(len(test)),
            "mae_mean": float((test - train.mean()).abs().mean()) if len(train) and len(test) else nan,
            "mae_median": float((test - train.median()).abs().mean()) if len(train) and len(test) else nan,
        })
    return rows


def _pairs(rows: list[dict[str, Any]], published: pd.DataFrame, metric: str) -> list[tuple[float, float]]:
    """(ours, published) for every row whose project has a published figure."""
    pub = published.set_index("project")[ANCHORED[metric]]
    return [(r[metric], float(pub[r["project"]])) for r in rows if r["project"] in pub.index]


def _matches(rows: list[dict[str, Any]], published: pd.DataFrame, metric: str) -> tuple[int, int]:
    """(projects within MATCH_TOLERANCE of the published figure, projects with a published figure)."""
    pairs = _pairs(rows, published, metric)
    return sum(abs(ours - theirs) <= MATCH_TOLERANCE + 1e-9 for ours, theirs in pairs), len(pairs)


@register
class StoryPointBaselines(Evaluation):
    name = "storypoints-baselines"
    description = "mean/median story-point baselines per project vs the published Mean/Median/Deep-SE/GPT2SP MAE"
    folder = "storypoints_deepse"

    def run(self, data_dir: Path, **options: Any) -> EvalResult:
        include_val = bool(options.get("include_val", True))
        importer = StoryPointsImporter()
        source = importer.source_dir(data_dir)
        tasks = importer.load(source)["tasks"]
        published = load_published_mae(source)
        pub = published.set_index("project")
        rows = baseline_rows(tasks, include_val)
        anchors = []
        for r in rows:
            p = r["project"]
            for label, column in PUBLISHED_ROWS.items():
                r[label] = float(pub.at[p, column]) if p in pub.index else None
            if p in pub.index:
                anchors += [Anchor(p, metric, float(pub.at[p, column]), SOURCE) for metric, column in ANCHORED.items()]
        training = "train+val" if include_val else "train only"
        notes = [
            f"training data for the baselines: {training} rows; MAE on the test split. "
            "published_deepse / published_gpt2sp are published figures (within_proj_data.csv), not ours.",
        ]
        for metric in ("mae_mean", "mae_median"):
            hit, total = _matches(rows, published, metric)
            lower = sum(ours < theirs for ours, theirs in _pairs(rows, published, metric))
            notes.append(f"{metric}: {hit} of {total} projects within {MATCH_TOLERANCE} of the published "
                         f"{ANCHORED[metric]} MAE ({training}); ours is lower in {lower} of {total}")
        if include_val:  # the other convention, for comparison
            alt = baseline_rows(tasks, include_val=False)
            counts = [_matches(alt, published, m) for m in ("mae_mean", "mae_median")]
            notes.append(f"with train-only baselines: mean {counts[0][0]}/{counts[0][1]}, median "
                         f"{counts[1][0]}/{counts[1][1]} projects within {MATCH_TOLERANCE} of the published MAE")
        absent = sorted(set(pub.index) - {r["project"] for r in rows})
        if absent:
            notes.append(f"published projects not present in the folder: {', '.join(absent)}")
        return EvalResult(self.name, "project", rows, anchors=anchors, notes=notes,
                          meta={"include_val": include_val, "projects": len(rows)})
