"""Personalization: a contextual Thompson-sampling bandit (:mod:`.bandit`), its SQLite-persisted state
(:mod:`.bandit_store`) and off-policy evaluation of logged bandit feedback (:mod:`.ope`).

Nothing is imported at package import time; the names below load their module on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BanditConfig": "bandit", "LinearThompsonSampling": "bandit", "BanditInputError": "bandit",
    "BanditStore": "bandit_store", "ProductBandits": "bandit_store",
    "LoggedFeedback": "ope", "estimate_policy_value": "ope", "ItemPositionCtr": "ope",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
