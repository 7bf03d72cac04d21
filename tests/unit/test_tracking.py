"""MLflow registry gate: challenger always, champion only when better on the same holdout."""

from __future__ import annotations

import pytest

from sunday import tracking


@pytest.fixture()
def logged(settings, tmp_path):
    import mlflow

    from sunday.models.assignment.mlflow_model import AssignmentPyfunc

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "ranker.json").write_text("{}")
    uris = []
    for i in range(3):
        with tracking.run(settings, "test-gate", run_name=f"r{i}"):
            mlflow.log_metric("mrr", 0.5)
            info = tracking.log_model_folder(folder, AssignmentPyfunc())
            uris.append(info.model_uri)
    return uris


@pytest.mark.timeout(240)  # a fresh SQLite tracking store migrates its schema first (~20 s)
def test_promotion_gate(settings, logged):
    scores = {}

    def score(v):
        return scores[v]

    v1 = tracking.register(logged[0], "gate_model")
    scores[v1] = 0.50
    p1 = tracking.promote("gate_model", v1, 0.50, "mrr", score)
    assert p1.promoted and p1.reason == "first champion"
    v2 = tracking.register(logged[1], "gate_model")
    scores[v2] = 0.45
    p2 = tracking.promote("gate_model", v2, 0.45, "mrr", score)
    assert not p2.promoted and p2.champion_version == v1 and "champion kept" in p2.line()
    assert tracking.alias_version("gate_model", tracking.CHAMPION) == v1
    assert tracking.alias_version("gate_model", tracking.CHALLENGER) == v2
    v3 = tracking.register(logged[2], "gate_model")
    scores[v3] = 0.60
    p3 = tracking.promote("gate_model", v3, 0.60, "mrr", score)
    assert p3.promoted and p3.champion_score == pytest.approx(0.50)
    assert tracking.alias_version("gate_model", tracking.CHAMPION) == v3
    # the saved folder comes back from the registry
    path = tracking.download_version("gate_model", v3)
    assert (path / "ranker.json").exists()


def test_flat_params():
    from sunday.models.assignment.lgbm import LambdaMARTConfig

    p = tracking.flat_params(LambdaMARTConfig(), "lgbm.")
    assert p["lgbm.n_estimators"] == 300 and "lgbm.extra" not in p
