"""MLflow tracking and the model registry: runs, pyfunc models, and the ``challenger`` / ``champion`` aliases.

Tracking URI: ``MLFLOW_TRACKING_URI`` (a server) or SQLite under the state folder; new experiments store their
artifacts under ``<home>/mlflow/artifacts`` when the store is local. Every model job does the same:

1. log params, metrics and the model (an MLflow pyfunc model wrapping the project's saved model folder);
2. register a new version of the registered model and point ``challenger`` at it;
3. score the current ``champion`` on *this run's* holdout (the same rows the challenger was scored on) and move
   ``champion`` only when the challenger beats it (or when there is no champion yet): :func:`promote`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

CHAMPION = "champion"
CHALLENGER = "challenger"


def configure(settings) -> str:
    """Point MLflow at the project's tracking store; returns the URI."""
    import mlflow

    settings.ensure_dirs()
    quiet_env()
    uri = settings.resolved_mlflow_uri
    before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    if before is None:  # mlflow exports the URI to the environment, where Settings would read it as the user's
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # MLflow 3.17's SQL store trips SQLAlchemy's deprecation of `noload` on every start: not ours to fix
    warnings.filterwarnings("ignore", message=".*noload.*loader strategy is deprecated.*")
    return uri


def experiment(settings, name: str) -> str:
    """Get or create experiment ``name`` (artifacts under the state folder for a local store); returns its id."""
    import mlflow

    configure(settings)
    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    local = not settings.resolved_mlflow_uri.startswith(("http://", "https://", "databricks"))
    location = Path(settings.mlflow_artifact_root).as_uri() if local else None
    return mlflow.create_experiment(name, artifact_location=location)


@contextlib.contextmanager
def run(settings, experiment_name: str, run_name: str | None = None,
        tags: dict[str, str] | None = None) -> Iterator[Any]:
    """An MLflow run in ``experiment_name`` (nested runs are not used)."""
    import mlflow

    exp_id = experiment(settings, experiment_name)
    with mlflow.start_run(experiment_id=exp_id, run_name=run_name, tags=tags) as active:
        yield active


def flat_params(config: Any, prefix: str = "") -> dict[str, Any]:
    """A (nested) dataclass or dict as flat ``a.b`` params, values as strings MLflow accepts."""
    data = asdict(config) if hasattr(config, "__dataclass_fields__") else dict(config)
    out: dict[str, Any] = {}
    for k, v in data.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flat_params(v, key + "."))
        else:
            out[key] = v if isinstance(v, (int, float, str, bool)) or v is None else str(v)
    return out


def log_model_folder(folder: Path, python_model: Any, name: str = "model",
                     input_example: Any = None) -> Any:
    """Log a saved model folder as an MLflow pyfunc model (artifact ``model``); returns the ModelInfo."""
    import mlflow

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mlflow.pyfunc.log_model(name=name, python_model=python_model, artifacts={"model": str(folder)},
                                       input_example=input_example)


@dataclass
class Promotion:
    name: str
    version: str
    challenger_score: float
    champion_version: str | None
    champion_score: float | None
    metric: str
    promoted: bool
    reason: str
    details: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        champ = (f"champion v{self.champion_version} {self.metric}={self.champion_score:.4f}"
                 if self.champion_version is not None else "no champion yet")
        verdict = "promoted to champion" if self.promoted else "champion kept"
        return (f"{self.name} v{self.version}: challenger {self.metric}={self.challenger_score:.4f} vs {champ} "
                f"on the same holdout -> {verdict} ({self.reason})")


def register(model_uri: str, name: str, tags: dict[str, str] | None = None) -> str:
    """New version of registered model ``name`` from ``model_uri``; returns the version."""
    import mlflow

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mv = mlflow.register_model(model_uri, name, tags=tags)
    return str(mv.version)


def alias_version(name: str, alias: str) -> str | None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        return str(MlflowClient().get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def load_alias(name: str, load: Callable[[Path], Any], alias: str = CHAMPION) -> tuple[Any, str] | None:
    """``(load(model folder), version)`` of registered model ``name`` at ``alias``, or None when nothing is
    registered under it (the folder is a temporary download: ``load`` must read what it needs)."""
    import tempfile

    version = alias_version(name, alias)
    if version is None:
        return None
    with tempfile.TemporaryDirectory(prefix=f"sunday-{name}-") as tmp:
        return load(download_version(name, version, Path(tmp))), version


def lazy_pyfunc(module: str, name: str, load: Callable[[str], Any],
                predict: Callable[[Any, Any, dict | None], Any], doc: str = "") -> type:
    """The MLflow ``PythonModel`` class ``module.name`` around a saved model folder (artifact ``model``), built on
    first use so that importing the model's module does not import MLflow.

    ``load(folder)`` gives the model (``self.model``); ``predict(model, model_input, params)`` answers. The class is
    stored in the module's globals and the module's ``__getattr__`` must return it for ``name`` (MLflow pickles the
    python model by reference to ``module.name``)."""
    import sys

    namespace = sys.modules[module].__dict__
    cached = namespace.get(name)
    if cached is not None:
        return cached
    import mlflow.pyfunc

    def load_context(self, context: Any) -> None:
        self.model = load(context.artifacts["model"])

    def predict_(self, context, model_input, params=None):
        return predict(self.model, model_input, params)

    cls = type(name, (mlflow.pyfunc.PythonModel,), {
        "__module__": module, "__qualname__": name, "__doc__": doc,
        # predict is untyped (the input example gives the signature): no type-hint validation, nor its warning
        "_skip_type_hint_validation": True, "load_context": load_context, "predict": predict_})
    namespace[name] = cls
    return cls


def download_version(name: str, version: str, dst: Path | None = None) -> Path:
    """The saved model folder (the pyfunc's ``model`` artifact) of ``name`` version ``version``."""
    import mlflow

    path = mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}",
                                               dst_path=None if dst is None else str(dst))
    return Path(path) / "artifacts" / "model"


def promote(name: str, version: str, challenger_score: float, metric: str,
            score_version: Callable[[str], float], higher_is_better: bool = True,
            min_gain: float = 0.0, floor: float | None = None, floor_name: str = "the baseline") -> Promotion:
    """Point ``challenger`` at ``version``; move ``champion`` to it when it beats the champion on the same holdout.

    ``score_version(v)`` scores registered version ``v`` on the holdout the challenger was scored on. ``floor``:
    a score the challenger must beat first (e.g. what serving does without the model), whatever the champion.
    """
    from mlflow import MlflowClient

    client = MlflowClient()
    client.set_registered_model_alias(name, CHALLENGER, version)
    if floor is not None:
        beats = challenger_score > floor if higher_is_better else challenger_score < floor
        if not beats:
            return Promotion(name, version, challenger_score, None, None, metric, False,
                             f"not better than {floor_name} ({floor:.4f}): not promoted")
    champ = alias_version(name, CHAMPION)
    if champ is None:
        client.set_registered_model_alias(name, CHAMPION, version)
        return Promotion(name, version, challenger_score, None, None, metric, True, "first champion")
    if champ == version:
        return Promotion(name, version, challenger_score, champ, challenger_score, metric, True, "same version")
    try:
        champ_score = float(score_version(champ))
    except Exception as exc:  # an old champion that no longer loads (features changed): replace it, say why
        client.set_registered_model_alias(name, CHAMPION, version)
        return Promotion(name, version, challenger_score, champ, float("nan"), metric, True,
                         f"champion could not be scored: {type(exc).__name__}: {exc}")
    gain = (challenger_score - champ_score) if higher_is_better else (champ_score - challenger_score)
    if gain > min_gain:
        client.set_registered_model_alias(name, CHAMPION, version)
        return Promotion(name, version, challenger_score, champ, champ_score, metric, True,
                         f"better by {gain:+.4f}")
    return Promotion(name, version, challenger_score, champ, champ_score, metric, False,
                     f"not better ({gain:+.4f}; needs > {min_gain:g})")


def register_and_promote(model_dir: Path, python_model: Any, name: str, metric: str, score: float,
                         load: Callable[[Path], Any], score_model: Callable[[Any], float],
                         higher_is_better: bool = True, input_example: Any = None,
                         **promote_kwargs: Any) -> tuple[Any, str, Promotion]:
    """Inside an active run: log ``model_dir`` as the pyfunc ``python_model``, register it as a new version of
    ``name`` (``challenger``), score the champion with ``score_model(load(its folder))`` on the same holdout the
    challenger's ``score`` came from, :func:`promote` (``promote_kwargs``: ``floor`` ...) and log the verdict.
    Returns ``(model info, version, promotion)``."""
    import tempfile

    info = log_model_folder(model_dir, python_model, input_example=input_example)
    version = register(info.model_uri, name, tags={"gate_metric": metric,
                                                   "higher_is_better": str(higher_is_better).lower()})

    def score_version(v: str) -> float:
        with tempfile.TemporaryDirectory(prefix=f"sunday-{name}-") as tmp:
            model = load(download_version(name, v, Path(tmp)))
        return float(score_model(model))

    promotion = promote(name, version, score, metric, score_version, higher_is_better=higher_is_better,
                        **promote_kwargs)
    log_promotion(promotion)
    return info, version, promotion


def log_promotion(promotion: Promotion) -> None:
    """The gate's verdict in the active MLflow run: ``promotion.json`` and the ``promotion`` tag."""
    import mlflow

    mlflow.log_dict({"promotion": promotion.line(), "champion_version": promotion.champion_version,
                     "champion_score": promotion.champion_score, "promoted": promotion.promoted}, "promotion.json")
    mlflow.set_tag("promotion", promotion.line())


def quiet_env() -> None:
    """MLflow prints a URL line per created run/model; keep job logs readable."""
    os.environ.setdefault("MLFLOW_PRINT_MODEL_URLS_ON_CREATION", "false")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
