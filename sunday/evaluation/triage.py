"""Bug triage (fixer recommendation): top-1/5/10 accuracy of ranking the fixer from the report text.

Projects are whatever the bug_triage importer finds in the folder (``*.csv.zip``), so other projects in the same
format work unchanged. Reports with an empty assignee are dropped (there is nothing to score). Input text is the
report ``description`` (what Wang et al. 2024 feed their models for JDT and Firefox).

Splits (``split`` column), the same for every model:

* ``chrono-80/20``: the first 80% of reports in time order train, the last 20% test. Time order is ``created_at``
  when it is known for every report of the project, else the file's row order (``source_order``); a note says which.
  Test reports whose assignee never appears in training stay in (every model misses them); ``n_unseen`` counts them.
* ``chrono-80/20 seen``: the same fitted models scored only on test reports whose assignee is in training, the
  convention many papers use.
* ``paper random-80/20``: the protocol of the paper's code (github.com/AI4BA/dl4ba ``train.py``/``utils.py``): drop
  reports with an empty assignee or description, cut the list to a multiple of 5, then
  ``train_test_split(test_size=0.2, random_state=1234)`` (a random, not chronological, split). The paper's 10-fold
  cross-validation runs inside the 80% only to pick a checkpoint; the baselines have nothing to pick, so they train
  on the whole 80%. Its text cleaning (letters only, stopwords out) is not reproduced.
* ``chrono-incremental-10fold`` (option ``incremental=True``, off by default): time order cut into 10 folds, train on
  folds 1..k, test on fold k+1, k = 1..9, accuracies averaged over the 9 rounds (DeepTriage-style; not the paper's
  protocol). ``n_train``/``n_test`` are then the mean sizes per round.

Models: ``most-frequent`` and ``tfidf-svm`` (the baselines) and ``lambdamart``
(:class:`sunday.models.assignment.triage.HistoryLambdaMARTAssignee`: LambdaMART over text-score, nearest-neighbour,
history and MiniLM-embedding features of (report, developer) pairs; embeddings cached under the state folder, the
first run on Firefox embeds ~13,600 reports). A note per project compares its chrono top-1/top-5 with the target
(the issue's: 3 points above both the published model and the TF-IDF+SVM baseline).

Figures are percentages (0-100). The published Bi-LSTM-attention + ELMo figures (Wang et al. 2024, JSS 210, 111961)
are rows of their own, model ``Wang2024 Bi-LSTM-att+ELMo (published)``; the TF-IDF + SVM figures the issue quotes are
anchors beside our ``<project>/tfidf-svm`` chrono-80/20 row.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from sunday.data.importers.bug_triage import load_project, project_files
from sunday.evaluation.base import Anchor, EvalResult, Evaluation, register
from sunday.models.assignment.text_baselines import MostFrequentAssignee, TfidfSvmAssignee
from sunday.models.assignment.triage import HistoryLambdaMARTAssignee

KS = (1, 5, 10)
TRAIN_FRACTION = 0.8
PAPER_SEED = 1234
PUBLISHED_MODEL = "Wang2024 Bi-LSTM-att+ELMo (published)"
PUBLISHED_SOURCE = "Wang et al. 2024, JSS 210, 111961"
# project -> (top1, top5, top10), %: best model of the paper (Bi-LSTM-attention + ELMo)
PUBLISHED = {"jdt": (37.5, 67.4, 80.6), "firefox": (24.2, 48.6, 61.5)}
# project -> (top1, top5, top10), %: "the plain TF-IDF + linear SVM already reaches about ..." (issue text)
ISSUE_TFIDF = {"jdt": (34.0, 70.0, 79.0), "firefox": (25.0, 42.0, 51.0)}
ISSUE_SOURCE = "issue (approx.)"

TARGET_MARGIN = 3.0  # the issue's target: top-1 and top-5 this many points above the anchor and the baseline
MAIN_MODEL = "lambdamart"


MODELS: dict[str, Callable[[], Any]] = {
    "most-frequent": MostFrequentAssignee,
    "tfidf-svm": TfidfSvmAssignee,
    MAIN_MODEL: HistoryLambdaMARTAssignee,  # run() adds MiniLM embeddings unless embeddings=False
}


def _with_embeddings(models: dict[str, Callable[[], Any]]) -> dict[str, Callable[[], Any]]:
    """``models`` with the LambdaMART ranker given MiniLM embeddings (one cache, under the state folder, per run)."""
    from functools import partial

    from sunday.features.embeddings import TextEmbedder
    from sunday.settings import get_settings

    embedder = TextEmbedder.for_settings(get_settings().ensure_dirs(), progress=True)
    return {**models, MAIN_MODEL: partial(HistoryLambdaMARTAssignee, embed=embedder.embed)}


def chronological(tasks: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Reports in time order, and the basis: ``created_at`` if known for all rows, else ``source_order``."""
    if len(tasks) and tasks["created_at"].notna().all():
        return tasks.sort_values(["created_at", "source_order"], kind="stable").reset_index(drop=True), "created_at"
    return tasks.sort_values("source_order", kind="stable").reset_index(drop=True), "source_order"


def chrono_split(tasks: pd.DataFrame, fraction: float = TRAIN_FRACTION) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """(train, test, basis): the first ``fraction`` of the reports in time order train, the rest test."""
    ordered, basis = chronological(tasks)
    n_train = int(len(ordered) * fraction)
    return ordered.iloc[:n_train], ordered.iloc[n_train:], basis


def paper_split(tasks: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The dl4ba code's split: non-empty assignee and description, file order, cut to a multiple of 5, random 80/20."""
    from sklearn.model_selection import train_test_split

    ordered = tasks.sort_values("source_order", kind="stable")
    desc = ordered["description"].fillna("")
    kept = ordered[ordered["assignee_id"].notna() & (desc != "")].reset_index(drop=True)
    kept = kept.iloc[: len(kept) - len(kept) % 5]
    tr, te = train_test_split(np.arange(len(kept)), test_size=0.2, random_state=PAPER_SEED)
    return kept.iloc[tr], kept.iloc[te]


def topk_accuracy(ranked: list[list[str]], truth: list[str], k: int) -> float:
    """Percentage of reports whose true assignee is among the first ``k`` of its ranking."""
    if not truth:
        return float("nan")
    return 100.0 * sum(t in r[:k] for r, t in zip(ranked, truth)) / len(truth)


def _texts(df: pd.DataFrame) -> list[str]:
    return df["description"].fillna("").astype(str).tolist()


def _fit_rank(factory: Callable[[], Any], train: pd.DataFrame, test: pd.DataFrame) -> tuple[list[list[str]], float]:
    """Fit on ``train`` (put in time order: the history features of the LambdaMART ranker need it) and rank."""
    t0 = time.perf_counter()
    train, _ = chronological(train)
    model = factory().fit(_texts(train), train["assignee_id"].tolist())
    ranked = model.rank(_texts(test), max(KS)) if len(test) else []
    return ranked, time.perf_counter() - t0


def _scores(ranked: list[list[str]], truth: list[str]) -> dict[str, float]:
    return {f"top{k}": topk_accuracy(ranked, truth, k) for k in KS}


def _row(project: str, split: str, model: str, scores: dict[str, float], n_train, n_test, n_unseen, seconds,
         main: bool) -> dict[str, Any]:
    key = f"{project}/{model}" if main else f"{project}/{model} [{split}]"
    return {"row": key, "project": project, "split": split, "model": model, **{k: round(v, 2) for k, v in scores.items()},
            "n_train": n_train, "n_test": n_test, "n_unseen": n_unseen, "seconds": seconds}


def project_rows(project: str, tasks: pd.DataFrame, incremental: bool = False, paper: bool = True,
                 models: dict[str, Callable[[], Any]] | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The rows of one project (all splits, every model) and facts about its splits for notes/meta."""
    models = MODELS if models is None else models
    tasks = tasks[tasks["assignee_id"].notna()]
    rows: list[dict[str, Any]] = []
    train, test, basis = chrono_split(tasks)
    seen = set(train["assignee_id"])
    truth = test["assignee_id"].tolist()
    known = [t in seen for t in truth]
    n_unseen = int(len(truth) - sum(known))
    info: dict[str, Any] = {"order": basis, "n_unseen": n_unseen, "n_test": len(test)}
    if basis == "created_at":
        info["train_end"] = str(train["created_at"].max())
        info["test_start"] = str(test["created_at"].min())
    for model, factory in models.items():
        ranked, secs = _fit_rank(factory, train, test)
        rows.append(_row(project, "chrono-80/20", model, _scores(ranked, truth), len(train), len(test), n_unseen,
                         round(secs, 2), main=True))
        kr = [r for r, ok in zip(ranked, known) if ok]
        kt = [t for t, ok in zip(truth, known) if ok]
        rows.append(_row(project, "chrono-80/20 seen", model, _scores(kr, kt), len(train), len(kt), 0, None,
                         main=False))
    if paper:
        ptrain, ptest = paper_split(tasks)
        ptruth = ptest["assignee_id"].tolist()
        pseen = set(ptrain["assignee_id"])
        p_unseen = int(sum(t not in pseen for t in ptruth))
        info["paper_n_unseen"] = p_unseen
        for model, factory in models.items():
            ranked, secs = _fit_rank(factory, ptrain, ptest)
            rows.append(_row(project, "paper random-80/20", model, _scores(ranked, ptruth), len(ptrain), len(ptest),
                             p_unseen, round(secs, 2), main=False))
    if incremental:
        ordered, _ = chronological(tasks)
        folds = np.array_split(np.arange(len(ordered)), 10)
        for model, factory in models.items():
            per_round, n_tr, n_te, unseen, secs = [], [], [], [], 0.0
            for k in range(1, 10):
                tr = ordered.iloc[np.concatenate(folds[:k])]
                te = ordered.iloc[folds[k]]
                ranked, s = _fit_rank(factory, tr, te)
                secs += s
                t = te["assignee_id"].tolist()
                per_round.append(_scores(ranked, t))
                n_tr.append(len(tr))
                n_te.append(len(te))
                unseen.append(sum(x not in set(tr["assignee_id"]) for x in t))
            mean = {m: float(np.mean([r[m] for r in per_round])) for m in per_round[0]}
            rows.append(_row(project, "chrono-incremental-10fold", model, mean, int(round(np.mean(n_tr))),
                             int(round(np.mean(n_te))), int(round(np.mean(unseen))), round(secs, 2), main=False))
    return rows, info


def target_notes(rows: list[dict[str, Any]]) -> list[str]:
    """One line per project: the main model's chrono top-1/top-5 against max(anchor, baseline) + TARGET_MARGIN."""
    out = []
    main = {r["project"]: r for r in rows if r["split"] == "chrono-80/20" and r["model"] == MAIN_MODEL}
    base = {r["project"]: r for r in rows if r["split"] == "chrono-80/20" and r["model"] == "tfidf-svm"}
    for project, r in main.items():
        parts = []
        for i, k in ((0, "top1"), (1, "top5")):
            bars = [base[project][k]] if project in base else []
            bars += [PUBLISHED[project][i], ISSUE_TFIDF[project][i]] if project in PUBLISHED else []
            need = max(bars) + TARGET_MARGIN
            parts.append(f"{k} {r[k]:.1f} vs target {need:.1f} ({'met' if r[k] >= need else 'missed'})")
        out.append(f"{project}: {MAIN_MODEL} chrono-80/20 " + "; ".join(parts)
                   + f" (target = max of the published model, the quoted and our TF-IDF+SVM) + {TARGET_MARGIN:g})")
    return out


@register
class TriageEvaluation(Evaluation):
    name = "triage"
    description = ("fixer recommendation top-1/5/10 from the report text: LambdaMART (text, neighbours, history, "
                   "embeddings) beside most-frequent and TF-IDF+linear SVM baselines on a chronological 80/20 "
                   "split (and the paper's random split) vs Wang et al. 2024")
    folder = "bug_triage"

    def run(self, data_dir: Path, **options: Any) -> EvalResult:
        incremental = bool(options.get("incremental", False))
        embeddings = bool(options.get("embeddings", True))
        models = _with_embeddings(MODELS) if embeddings else dict(MODELS)
        paper = bool(options.get("paper", True))
        source = Path(data_dir) / self.folder
        only = options.get("projects")
        rows: list[dict[str, Any]] = []
        anchors: list[Anchor] = []
        notes: list[str] = []
        meta: dict[str, Any] = {"projects": {}, "incremental": incremental, "paper": paper,
                                "embeddings": embeddings}
        for project, path in project_files(source).items():
            if only and project not in only:
                continue
            _, tasks = load_project(project, path)
            unassigned = int(tasks["assignee_id"].isna().sum())
            prows, info = project_rows(project, tasks, incremental=incremental, paper=paper,
                                        models=models)
            rows += prows
            if project in PUBLISHED:
                rows.append({"row": f"{project}/{PUBLISHED_MODEL}", "project": project,
                             "split": "paper random-80/20", "model": PUBLISHED_MODEL,
                             **dict(zip(("top1", "top5", "top10"), PUBLISHED[project])),
                             "n_train": None, "n_test": None, "n_unseen": None, "seconds": None})
            if project in ISSUE_TFIDF:
                anchors += [Anchor(f"{project}/tfidf-svm", f"top{k}", v, ISSUE_SOURCE)
                            for k, v in zip(KS, ISSUE_TFIDF[project])]
            info["unassigned_dropped"] = unassigned
            meta["projects"][project] = info
            order = ("created_at (creation_ts)" if info["order"] == "created_at"
                     else "file row order (no creation time for every report)")
            span = (f"; train ends {info['train_end']}, test starts {info['test_start']}"
                    if "train_end" in info else "")
            notes.append(f"{project}: chronological split by {order}{span}; {info['n_unseen']} of {info['n_test']} "
                         f"test reports have an assignee absent from training (misses for every model in "
                         f"chrono-80/20; left out of 'chrono-80/20 seen')"
                         + (f"; {unassigned} report(s) with an empty assignee dropped" if unassigned else ""))
        notes += target_notes(rows)
        notes += [
            "figures are top-k accuracy in %; text is the report description; 'seconds' is fit + rank time.",
            f"rows '{PUBLISHED_MODEL}' are the paper's published figures, not ours (its split is random, seed "
            f"{PAPER_SEED}, as in the dl4ba code); compare them with our 'paper random-80/20' rows.",
            f"'{ISSUE_SOURCE}' columns: the TF-IDF + linear SVM figures the issue quotes for the chronological split.",
            "'paper random-80/20' follows the dl4ba code (drop empty rows, cut to a multiple of 5, "
            "train_test_split(test_size=0.2, random_state=1234)); its 10-fold CV only picks a checkpoint, which the "
            "baselines do not need; its text cleaning is not reproduced.",
        ]
        if incremental:
            notes.append("'chrono-incremental-10fold': train on folds 1..k, test on fold k+1 (k=1..9), mean over "
                         "rounds; n_train/n_test/n_unseen are per-round means. DeepTriage-style, not the paper's.")
        return EvalResult(self.name, "row", rows, anchors=anchors, notes=notes, meta=meta)
