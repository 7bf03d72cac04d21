"""One typed settings object, read from environment variables (prefix ``SUNDAY_``).

Every embedded default has a configured alternative:

================  =========================================  ==========================================
setting           default (embedded)                          alternative
================  =========================================  ==========================================
home              ``./.sunday`` state folder                  ``SUNDAY_HOME``
data_dir          ``../shared/data``                          ``SUNDAY_DATA_DIR``
ray_address       unset: local Ray with this machine's CPUs   ``RAY_ADDRESS`` (e.g. ``ray://head:10001``)
mlflow_uri        SQLite under the state folder               ``MLFLOW_TRACKING_URI``
qdrant_url        embedded Qdrant under the state folder      ``SUNDAY_QDRANT_URL``
redis_url         SQLite online store under the state folder  ``SUNDAY_REDIS_URL``
llm_base_url      embedded SmolLM2                            ``SUNDAY_LLM_BASE_URL``
serve_dashboard   the connected Ray's dashboard               ``SUNDAY_SERVE_DASHBOARD`` (the Serve app's
                                                              cluster, for the pipeline's reconfigure)
================  =========================================  ==========================================
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SUNDAY_", extra="ignore", frozen=True)

    home: Path = Field(default=Path(".sunday"), description="state folder")
    data_dir: Path = Field(default=Path("../shared/data"), description="public datasets folder")
    ray_address: str | None = Field(
        default=None,
        validation_alias=AliasChoices("RAY_ADDRESS", "SUNDAY_RAY_ADDRESS"),
        description="Ray cluster to join; unset starts a local Ray",
    )
    ray_num_cpus: int | None = Field(default=None, description="CPUs for a local Ray; unset = all")
    mlflow_tracking_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "SUNDAY_MLFLOW_TRACKING_URI"),
        description="MLflow server; unset = SQLite in the state folder",
    )
    qdrant_url: str | None = Field(default=None, description="Qdrant server; unset = embedded")
    redis_url: str | None = Field(default=None, description="Redis online store; unset = SQLite")
    llm_base_url: str | None = Field(default=None, description="OpenAI-compatible LLM; unset = embedded")
    llm_model: str = Field(default="smollm2-135m-instruct")
    llm_api_key: str | None = Field(default=None, repr=False)
    seed: int = Field(default=0, description="default random seed")
    serve_dashboard: str | None = Field(
        default=None, description="dashboard of the cluster running the Serve app (the pipeline reconfigures it); "
                                  "unset = the connected Ray's")

    @field_validator("home", "data_dir", mode="after")
    @classmethod
    def _absolute(cls, v: Path) -> Path:
        return Path(os.path.abspath(os.path.expanduser(v)))

    # -- derived locations inside the state folder (nothing is created until ensure_dirs) --
    @property
    def warehouse_dir(self) -> Path:
        return self.home / "warehouse"

    @property
    def simulations_dir(self) -> Path:
        return self.home / "simulations"

    @property
    def mlflow_dir(self) -> Path:
        return self.home / "mlflow"

    @property
    def feature_repo_dir(self) -> Path:
        return self.home / "feature_repo"

    @property
    def vector_store_dir(self) -> Path:
        return self.home / "qdrant"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def eval_dir(self) -> Path:
        return self.home / "eval"

    @property
    def resolved_mlflow_uri(self) -> str:
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        return f"sqlite:///{self.mlflow_dir / 'mlflow.db'}"

    @property
    def mlflow_artifact_root(self) -> str:
        return str(self.mlflow_dir / "artifacts")

    def ensure_dirs(self) -> "Settings":
        for d in (self.home, self.warehouse_dir, self.simulations_dir, self.mlflow_dir,
                  self.feature_repo_dir, self.vector_store_dir, self.logs_dir, self.eval_dir):
            d.mkdir(parents=True, exist_ok=True)
        return self


def get_settings(**overrides) -> Settings:
    """Read settings from the environment; keyword overrides win (used by CLI flags)."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    return Settings(**clean)
