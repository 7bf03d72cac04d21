"""``sunday eval nab``: the streaming detectors and their ensemble on the Numenta Anomaly Benchmark.

Every series under ``nab/data`` (any NAB-format corpus: ``data/**/*.csv``, ``labels/combined_windows.json``,
``config/profiles.json``) is streamed through one :class:`~sunday.models.anomaly.ensemble.Ensemble` with one
parameter set for all series (no per-series tuning). Each detector and the ensemble are scored with NAB's method
(:mod:`sunday.evaluation.nab_scoring`: windows, scaled sigmoid, the three profiles, one threshold per profile over
the whole corpus, null = 0 / perfect = 100), next to the null and random detectors and the published scoreboard
(``results/final_results.json``, which covers NAB's full 58-series corpus). A detector's row is scored with the
ensemble's alert rule (one detection per alert, ``refractory`` points); ``ensemble (no refractory)`` is the raw
combined score. Detections are written in NAB's results layout (``<results_dir>/<detector>/<category>/
<detector>_<file>.csv``) so NAB's own scorer can be run on them.

Options: ``detectors`` (comma list; default the ensemble's, plus ``lstm_ae`` when a model is available), ``lstm``
(``registered``: the MLflow ``anomaly_lstm_ae`` champion, trained in-process on the corpus's probationary periods when
none is registered; ``train``: always train in-process; ``none``; or a saved model folder), ``results_dir``
(default ``$SUNDAY_HOME/eval/nab_results``), ``series`` (a substring filter on series ids), ``write`` (true).

A timestamp that goes backwards inside a series (one clock change in ``machine_temperature_system_failure``) is
held at the previous timestamp for the detectors (NAB scores rows in file order); each one is listed in the notes.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from sunday.evaluation.base import Anchor, EvalResult, Evaluation, register, resolve_options

ANCHORS = {  # final_results.json name -> our row label
    "ARTime": "ARTime (published, 58 series)",
    "numenta": "Numenta HTM (published, 58 series)",
    "randomCutForest": "Random Cut Forest (published, 58 series)",
    "windowedGaussian": "windowed Gaussian (published, 58 series)",
}
PROFILE_COLUMNS = {"standard": "standard", "reward_low_FP_rate": "low_FP", "reward_low_FN_rate": "low_FN"}


def resolve_lstm(spec: str, corpus, settings, notes: list[str], progress: bool):
    """The LSTM autoencoder to use (or None), per the ``lstm`` option."""
    from sunday.evaluation.nab_scoring import probation_values
    from sunday.models.anomaly.lstm_ae import AeTrainConfig, LstmAutoencoder
    from sunday.models.anomaly.lstm_ae_mlflow import load_registered
    from sunday.models.anomaly.lstm_ae_train import train_autoencoder

    if spec == "none":
        return None
    if spec not in ("registered", "train"):
        model = LstmAutoencoder.load(Path(spec))
        notes.append(f"lstm_ae: model loaded from {spec}")
        return model
    if spec == "registered":
        model = load_registered(settings, alias="champion")
        if model is not None:
            notes.append("lstm_ae: the registered anomaly_lstm_ae champion (MLflow)")
            return model
        notes.append("lstm_ae: no registered anomaly_lstm_ae champion; trained in-process on the probationary "
                     "periods (train_jobs/anomaly_ae.py trains and registers one through Ray Train)")
    else:
        notes.append("lstm_ae: trained in-process on the probationary periods")
    history = probation_values({sid: s.values for sid, s in corpus.series.items()})
    return train_autoencoder(list(history.values()), AeTrainConfig(), use_ray=False)


@register
class NabEvaluation(Evaluation):
    name = "nab"
    folder = "nab"
    description = ("NAB: streaming detectors (robust z, EWMA, seasonal, Isolation Forest, LSTM autoencoder) and "
                   "their ensemble, NAB-scored on three profiles")

    def run(self, data_dir: Path, **options: Any) -> EvalResult:
        from tqdm.auto import tqdm

        from sunday.evaluation.nab_scoring import (
            NabCorpus, nab_scores, null_scores, random_scores, read_anchors, write_results,
        )
        from sunday.models.anomaly.ensemble import DEFAULT_DETECTORS, Ensemble, EnsembleConfig
        from sunday.settings import get_settings

        opts = resolve_options({"detectors": None, "lstm": "registered", "results_dir": None, "series": None,
                                "write": True}, options)
        progress = bool(options.get("progress", True))
        settings = get_settings()
        source = Path(data_dir) / self.folder
        corpus = NabCorpus.load(source)
        if opts["series"]:
            keep = [sid for sid in corpus.series if str(opts["series"]) in sid]
            if not keep:
                raise ValueError(f"series filter {opts['series']!r} matches none of {len(corpus.series)} series")
            corpus = NabCorpus({sid: corpus.series[sid] for sid in keep}, corpus.profiles)
        notes: list[str] = []

        names = tuple(str(opts["detectors"]).split(",")) if opts["detectors"] else DEFAULT_DETECTORS
        lstm_spec = str(opts["lstm"])
        model = None
        if "lstm_ae" in names or (not opts["detectors"] and lstm_spec != "none"):
            model = resolve_lstm(lstm_spec, corpus, settings, notes, progress)
            if model is not None and "lstm_ae" not in names:
                names = (*names, "lstm_ae")
        config = EnsembleConfig(detectors=names)
        args = {"lstm_ae": {"model": model}} if model is not None else {}

        per_detector: dict[str, dict[str, np.ndarray]] = {n: {} for n in names}
        ensemble, ensemble_raw, without_ae = {}, {}, {}
        ablation = None
        if "lstm_ae" in names and len(names) > 1:
            keep = [j for j, n in enumerate(names) if n != "lstm_ae"]
            ablation = replace(config, detectors=tuple(names[j] for j in keep))
        # a detector alone, through the ensemble's alert rule (no recurrence discount, no lone-detector weight)
        alone = {n: replace(config, detectors=(n,), top_k=1, solo=0.0, recurrence_cycles=0) for n in names}
        alerts = 0
        for sid, s in tqdm(corpus.series.items(), desc="nab", disable=not progress):
            ts = s.timestamps.astype("datetime64[ns]")
            back = np.flatnonzero(np.diff(ts.astype("int64")) < 0)
            if len(back):
                notes.append(f"{sid}: timestamp goes backwards at row {int(back[0]) + 1} ({ts[back[0] + 1]} after "
                             f"{ts[back[0]]}); held at the previous timestamp for the detectors")
                ts = np.maximum.accumulate(ts)
            out = Ensemble(config, signal=sid, detector_args=args).run(s.values, ts)
            ensemble[sid], ensemble_raw[sid] = out.alert_scores, out.scores
            if ablation is not None:
                without_ae[sid] = Ensemble(ablation, signal=sid).run_scores(out.detector_scores[:, keep],
                                                                            ts).alert_scores
            alerts += len(out.alerts)
            for j, n in enumerate(names):
                per_detector[n][sid] = Ensemble(alone[n], signal=sid, detector_args=args).run_scores(
                    out.detector_scores[:, j:j + 1], ts).alert_scores

        runs = {"ensemble": ensemble, "ensemble (no refractory)": ensemble_raw,
                **({"ensemble without lstm_ae": without_ae} if ablation is not None else {}), **per_detector,
                "null": null_scores(corpus), "random": random_scores(corpus, seed=0)}
        rows = []
        for label, scores in runs.items():
            result = nab_scores(corpus, scores)
            row: dict[str, Any] = {"detector": label}
            for profile, col in PROFILE_COLUMNS.items():
                row[col] = round(result[profile].score, 2)
            std = result["standard"]
            row.update(threshold=round(std.threshold, 4), windows_hit=std.tp, windows_missed=std.fn,
                       false_positives=std.fp)
            rows.append(row)

        anchors = []
        published = read_anchors(source) if (source / "results" / "final_results.json").exists() else {}
        for key, label in ANCHORS.items():
            if key in published:
                rows.append({"detector": label})
                anchors += [Anchor(label, col, round(published[key][profile], 2), "NAB results/final_results.json")
                            for profile, col in PROFILE_COLUMNS.items() if profile in published[key]]

        results_dir = Path(opts["results_dir"]) if opts["results_dir"] else settings.home / "eval" / "nab_results"
        if opts["write"]:
            for label in ("ensemble", *names):
                write_results(results_dir, label, corpus, runs[label])
            notes.append(f"NAB results CSVs (timestamp,value,anomaly_score,label) per detector under {results_dir}")
        n_windows = rows[0]["windows_hit"] + rows[0]["windows_missed"]
        notes.insert(0, f"{len(corpus.series)} series, {sum(len(s.values) for s in corpus.series.values())} points, "
                        f"{n_windows} scorable windows; one parameter set: {config}")
        notes.append(f"ensemble alerts raised at threshold {config.threshold}: {alerts}")
        if len(corpus.series) != 58:
            notes.append("the published anchors cover NAB's 58-series corpus; this corpus has "
                         f"{len(corpus.series)} series, so they are context, not the same test")
        return EvalResult(self.name, "detector", rows, anchors, notes,
                          meta={"detectors": list(names), "results_dir": str(results_dir),
                                "config": {"threshold": config.threshold, "refractory": config.refractory,
                                           "top_k": config.top_k}})
