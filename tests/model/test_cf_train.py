"""The collaborative-filtering recommender through Ray Train (2 DDP workers on gloo) and the training job end to end
on a small simulation: beats the baselines, MLflow run, registered ``personalization_cf`` (challenger and first
champion, then the champion/challenger rule on a second version), the pyfunc's top-k."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]

JOB = Path(__file__).resolve().parents[2] / "train_jobs" / "personalization_cf.py"


@pytest.fixture(scope="module")
def holdout():
    from sunday.data.simulator import SimConfig, simulate_tables
    from sunday.evaluation.cf_sim import make_holdout

    return make_holdout(simulate_tables(SimConfig(n_events=30_000, seed=1, events_per_workspace=15_000)))


def test_ray_train_two_workers_beats_baselines(ray_session, settings, holdout):
    from sunday.evaluation.cf_sim import evaluate_tasks, model_ranker, popularity_ranker, team_recent_ranker
    from sunday.models.personalization.cf import CFConfig, CFRecommender

    cfg = CFConfig(seed=0)
    model = CFRecommender(cfg, trainer="ray", num_workers=2).fit(holdout.train, items=holdout.items,
                                                                 users=holdout.users)
    losses = [row["loss"] for row in model.history_]
    assert len(losses) == cfg.epochs and all(np.isfinite(losses)) and losses[-1] < 0.7 * losses[0]
    assert (settings.home / "ray_results").is_dir()  # the run's checkpoint lives in the state folder
    r = evaluate_tasks(holdout, {"cf": model_ranker(model, holdout), "popularity": popularity_ranker(holdout),
                                 "team-recent": team_recent_ranker(holdout)})
    # seed 1 in process: 0.675 against popularity 0.003 and team-recent 0.474
    assert r["cf"]["ndcg@10"] > r["popularity"]["ndcg@10"] + 0.4, r
    assert r["cf"]["ndcg@10"] > r["team-recent"]["ndcg@10"] + 0.05, r
    user = holdout.test["user_id"].iloc[0]
    assert len(model.recommend(user, k=10)) == 10 and len(model.similar_users(user, k=3)) == 3


def test_job_registers_the_model(ray_session, settings, tmp_path):
    import mlflow
    import pandas as pd
    from mlflow import MlflowClient

    from sunday import tracking
    from sunday.data.simulator import SimConfig, simulate
    from sunday.models.personalization.cf import CFRecommender
    from sunday.models.personalization.cf_mlflow import MODEL_NAME, load_registered

    # the job finds this simulation (ensure_simulation builds nothing)
    simulate(SimConfig(n_events=30_000, seed=2, events_per_workspace=15_000), settings.simulations_dir / "cf",
             engine="local", progress=False)
    spec = importlib.util.spec_from_file_location("personalization_cf_job", JOB)
    job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job)
    out = tmp_path / "result.json"
    assert job.main(["--sim", "cf", "--epochs", "6", "--json", str(out)]) == 0

    result = json.loads(out.read_text())
    assert result["version"] == "1" and "first champion" in result["promotion"]
    m = result["metrics"]
    assert m["ndcg_at_10"] > m["popularity_ndcg_at_10"] and np.isfinite(m["team_recent_ndcg_at_10"])
    assert tracking.alias_version(MODEL_NAME, "challenger") == "1" == tracking.alias_version(MODEL_NAME, "champion")
    client = MlflowClient()
    assert len(client.get_metric_history(result["run_id"], "train_loss")) == 6
    params = client.get_run(result["run_id"]).data.params
    assert params["model.epochs"] == "6" and params["use_ray"] == "True" and params["sim"] == "cf"

    model = load_registered(settings)
    assert isinstance(model, CFRecommender) and len(model.history_) == 6
    assert load_registered(settings, alias="nope") is None
    pyfunc = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@champion")
    user = str(model.users_[0])
    ws = model.workspaces_[0]
    top = pyfunc.predict(pd.DataFrame({"user_id": [user, "newcomer"], "workspace_id": [None, ws]}), params={"k": 5})
    assert list(top.columns) == ["user_id", "rank", "task_id", "score"]
    assert (top["user_id"] == user).sum() == 5 and (top["user_id"] == "newcomer").sum() == 5
    assert top.loc[top["user_id"] == user, "task_id"].tolist() == [t for t, _ in model.recommend(user, k=5)]
    assert len(pyfunc.predict(pd.DataFrame({"user_id": [user]}))) == 10  # k defaults to 10

    # a second version, in process, 1 epoch: challenger always; champion only when better on the same holdout
    assert job.main(["--sim", "cf", "--epochs", "1", "--no-ray", "--json", str(out)]) == 0
    second = json.loads(out.read_text())
    assert second["version"] == "2" and tracking.alias_version(MODEL_NAME, "challenger") == "2"
    promoted = second["metrics"]["ndcg_at_10"] > m["ndcg_at_10"]
    assert tracking.alias_version(MODEL_NAME, "champion") == ("2" if promoted else "1")
    assert "champion v1" in second["promotion"]
