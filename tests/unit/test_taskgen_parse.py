"""Task drafts from crafted LLM answers: parsing, repair, validation and rejection reasons (sunday.nlp.taskgen).
The answers are inputs written the way models answer (labelled sections, JSON, fenced JSON, prose, garbage)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sunday.nlp.errors import DraftRejected, InputTooLarge
from sunday.nlp.llm import Completion
from sunday.nlp.taskgen import (EXAMPLE_ANSWER, SCALE, LabelledTask, ProjectContext, TaskDraft, TaskDraftGenerator,
                                build_messages, parse_output, slug, snap_points)

PROJECT = ProjectContext("Mobile", "iOS and Android app", tags=["android", "ios", "auth"],
                         recent_titles=["Crash on startup"])
BRIEF = "users get logged out after 5 minutes on android"

SECTIONS = """Title: Keep Android users logged in
Tags: android, auth
Story points: 5
Description: Users on Android are logged out after five minutes. Sessions should last until the user logs out.
Acceptance criteria:
- Users stay logged in after 5 minutes idle
- The refresh token renews the session
- Logging out still ends the session
Technical requirements:
- Refresh the access token before it expires
"""


def draft(text: str, brief: str = BRIEF, project: ProjectContext = PROJECT, **kw) -> TaskDraft:
    return TaskDraftGenerator(llm=None, **kw).draft_from_text(text, brief, project, model="test-llm")


def rejected(text: str, brief: str = BRIEF, project: ProjectContext = PROJECT) -> str:
    with pytest.raises(DraftRejected) as exc:
        draft(text, brief, project)
    assert exc.value.status_code == 422
    return exc.value.reason


def test_labelled_sections():
    d = draft(SECTIONS)
    assert d.title == "Keep Android users logged in"
    assert d.acceptance_criteria[1] == "The refresh token renews the session"
    assert d.technical_requirements == ["Refresh the access token before it expires"]
    assert (d.story_points, d.story_points_source) == (5, "llm")
    assert d.tags == ["android", "auth"] and d.model == "test-llm"
    assert not d.repaired and d.repairs == []


def test_markdown_headers_numbered_bullets_and_checkboxes():
    text = ("## **Title:** Keep Android users logged in\n**Description**: Sessions expire too early.\n"
            "**Acceptance Criteria:**\n1. Users stay logged in\n2) Tokens refresh\n[ ] Logout works\n\n"
            "### Technical requirements\n* Use the refresh token\n• Add a test\n"
            "Estimate: 8 points\nLabels: #Android #Auth")
    d = draft(text)
    assert d.title == "Keep Android users logged in"
    assert d.acceptance_criteria == ["Users stay logged in", "Tokens refresh", "Logout works"]
    assert d.technical_requirements == ["Use the refresh token", "Add a test"]
    assert d.story_points == 8 and d.tags == ["android", "auth"]


def test_json_bare_fenced_and_wrapped():
    body = ('{"title": "Keep Android users logged in", "description": "Sessions expire early.", '
            '"acceptanceCriteria": ["Stay logged in", "Token refresh works", "Logout works"], '
            '"technical_requirements": ["Refresh tokens"], "story_points": 3, "tags": ["Android", "Session Mgmt"]}')
    for text in (body, f"```json\n{body}\n```", f"Sure! Here is the task:\n{body}\nHope it helps."):
        d = draft(text)
        assert d.acceptance_criteria[0] == "Stay logged in" and d.story_points == 3
        assert d.tags == ["android", "session-mgmt"]
    nested = draft('{"task": ' + body + "}")
    assert nested.title == "Keep Android users logged in"


def test_json_with_trailing_commas_is_repaired_and_named():
    text = ('{"title": "Keep Android users logged in", "description": "Sessions expire early.", '
            '"acceptance_criteria": ["Stay logged in", "Token refresh works", "Logout works",], '
            '"technical_requirements": ["Refresh tokens"], "tags": ["auth"],}')
    d = draft(text)
    assert d.repaired and "JSON: trailing commas removed" in d.repairs
    assert (d.story_points, d.story_points_source) == (None, "none")  # no estimate anywhere: left to the team


def test_duplicates_extra_criteria_and_cross_section_repeats_are_repaired():
    text = SECTIONS.replace("- Logging out still ends the session\n",
                            "- Logging out still ends the session\n- logging out still ends the session.\n"
                            "- A\n- Four\n- Five items\n- Six items\n"
                            ).replace("- Refresh the access token before it expires",
                                      "- Refresh the access token before it expires\n- The refresh token renews the session")
    d = draft(text)
    assert len(d.acceptance_criteria) == 5
    assert d.technical_requirements == ["Refresh the access token before it expires"]
    assert any("duplicate" in r for r in d.repairs) and any("kept the first 5" in r for r in d.repairs)
    assert any("repeating another section" in r for r in d.repairs)
    assert any("under 3 characters" in r for r in d.repairs)


def test_overlong_title_and_description_are_truncated():
    long_title = "Keep Android users logged in " + "and also handle every edge case " * 6
    d = draft(SECTIONS.replace("Keep Android users logged in", long_title, 1)
              .replace("Users on Android", "Users on Android " + "really " * 400))
    assert len(d.title) <= 120 and d.title.endswith("…")
    assert len(d.description) <= 1200
    assert any(r.startswith("title: ") and "truncated to 120" in r for r in d.repairs)
    assert any(r.startswith("description: ") for r in d.repairs)


def test_missing_tags_are_filled_from_project_tags_then_brief():
    d = draft(SECTIONS.replace("Tags: android, auth\n", ""))
    assert d.tags == ["android"] and "tags: missing, filled from the project's tags found in the text" in d.repairs
    other = ProjectContext("Web", tags=["billing"])
    d = draft(SECTIONS.replace("Tags: android, auth\n", ""), project=other)
    assert d.tags == ["logged", "minutes", "android"] and "tags: missing, filled from the brief's keywords" in d.repairs


def test_missing_title_comes_from_the_brief():
    d = draft(SECTIONS.replace("Title: Keep Android users logged in\n", ""))
    assert d.title == "Users get logged out after 5 minutes on android"
    assert "title: missing or too short, taken from the brief" in d.repairs


def test_llm_points_are_snapped_or_dropped():
    d = draft(SECTIONS.replace("Story points: 5", "Story points: about 4 points"))
    assert d.story_points == 3 and "story points: 4 snapped to 3 on the scale" in d.repairs
    d = draft(SECTIONS.replace("Story points: 5", "Story points: 100"))
    assert d.story_points is None and d.story_points_source == "none"
    assert any("100 is outside" in r for r in d.repairs)
    assert snap_points(6.5) == 5 and snap_points(0.1) == 0.5 and snap_points(40) == 21


def test_missing_criteria_are_rejected_with_the_reason_not_padded():
    text = SECTIONS.replace("- The refresh token renews the session\n- Logging out still ends the session\n", "")
    assert rejected(text) == "acceptance criteria: 1 given, at least 3 required"
    no_section = SECTIONS.split("Acceptance criteria:")[0] + "Technical requirements:\n- Refresh tokens\n"
    assert rejected(no_section) == "acceptance criteria: missing"


def test_missing_description_and_requirements_are_named():
    text = SECTIONS.replace("Description: Users on Android are logged out after five minutes. Sessions should "
                            "last until the user logs out.\n", "")
    assert rejected(text) == "description: missing"
    text = SECTIONS.split("Technical requirements:")[0]
    assert rejected(text) == "technical requirements: missing"


def test_garbage_and_empty_answers_are_rejected():
    reason = rejected("I'm sorry, as an AI language model I cannot help with that.")
    assert reason.startswith("no labelled sections")
    assert rejected("").startswith("no labelled sections")
    assert rejected("{not json at all").startswith("no labelled sections")


def test_a_copy_of_the_prompt_example_is_rejected():
    assert "copies the prompt's example" in rejected(EXAMPLE_ANSWER)


def test_cut_answers_say_so():
    gen = TaskDraftGenerator(llm=None)
    with pytest.raises(DraftRejected, match=r"cut at max_tokens"):
        gen.draft_from_text(SECTIONS.split("- The refresh")[0], BRIEF, PROJECT, "m", finish_reason="length")


def test_schema_rejects_what_repair_must_never_produce():
    ok = draft(SECTIONS).model_dump()
    for change in ({"acceptance_criteria": ["a b c", "d e f"]}, {"tags": ["Not A Slug"]},
                   {"story_points": 4.0}, {"story_points": None}, {"title": "two\nlines"},
                   {"repaired": True}, {"acceptance_criteria": ["same one", "Same one", "other"]}):
        with pytest.raises(ValidationError):
            TaskDraft(**{**ok, **change})


def test_effort_model_from_the_projects_own_tasks():
    rows = [LabelledTask(f"Fix crash number {i}", "small fix", 1) for i in range(20)] + \
           [LabelledTask(f"Build new sync engine part {i}", "large redesign of sync", 13) for i in range(20)]
    project = ProjectContext("Mobile", tags=["android"], labelled_tasks=rows)
    d = draft(SECTIONS, project=project)
    assert d.story_points_source == "effort-model" and d.story_points in SCALE
    small = ProjectContext("Mobile", labelled_tasks=rows[:5])  # too few rows: the LLM's number
    assert draft(SECTIONS, project=small).story_points_source == "llm"


def test_explicit_effort_model_wins():
    class Fixed:
        def predict(self, titles, descriptions):
            return [7.2 for _ in titles]

    d = TaskDraftGenerator(llm=None, effort=Fixed()).draft_from_text(SECTIONS, BRIEF, PROJECT, "m")
    assert (d.story_points, d.story_points_source) == (8, "effort-model")


class Scripted:
    """A backend that returns given answers in turn (records the prompts it saw)."""

    model, context_window = "scripted", 8192

    def __init__(self, *answers: str):
        self.answers, self.prompts = list(answers), []

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def chat(self, messages, *, max_tokens=256, temperature=0.0, stop=None, seed=None):
        self.prompts.append(messages)
        text = self.answers.pop(0)
        return Completion(text, 100, 50, self.model, "stop")


def test_generate_retries_once_with_a_stricter_prompt():
    bad = SECTIONS.split("Acceptance criteria:")[0]
    llm = Scripted(bad, SECTIONS)
    d = TaskDraftGenerator(llm).generate(BRIEF, PROJECT, "ws")
    assert d.attempts == 2 and d.title == "Keep Android users logged in"
    retry_prompt = llm.prompts[1][-1]["content"]
    assert "acceptance criteria: missing" in retry_prompt and BRIEF in retry_prompt
    assert "Every line must be different" in llm.prompts[1][0]["content"]


def test_generate_rejects_after_the_retry_with_the_last_reason():
    llm = Scripted("nonsense", "still nonsense")
    with pytest.raises(DraftRejected, match=r"no labelled sections .* \(after 2 attempts\)"):
        TaskDraftGenerator(llm).generate(BRIEF, PROJECT, "ws")


def test_generate_through_the_guard_spends_the_workspace_budget(tmp_path):
    from sunday.nlp.guard import GuardConfig, GuardedLLM

    guarded = GuardedLLM(Scripted(SECTIONS), GuardConfig(), tmp_path)
    TaskDraftGenerator(guarded).generate(BRIEF, PROJECT, "ws-1")
    assert guarded.budget.used("ws-1") == 150
    d = TaskDraftGenerator(guarded).generate(BRIEF, PROJECT, "ws-1")  # same prompt: the cache answers
    assert d.title == "Keep Android users logged in" and guarded.budget.used("ws-1") == 150


def test_brief_checks():
    gen = TaskDraftGenerator(Scripted())
    with pytest.raises(DraftRejected, match="brief: empty"):
        gen.generate("  ", PROJECT, "ws")
    with pytest.raises(InputTooLarge) as exc:
        gen.generate("x" * 2001, PROJECT, "ws")
    assert exc.value.field == "brief"


def test_prompt_is_short_and_carries_the_project():
    messages = build_messages(BRIEF, PROJECT)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert "Project: Mobile (iOS and Android app)" in messages[-1]["content"]
    assert "Tags in use: android, ios, auth" in messages[-1]["content"]
    assert sum(len(m["content"]) for m in messages) < 1600
    assert parse_output(EXAMPLE_ANSWER).format == "sections"
    assert slug("  Front End ") == "front-end" and slug("#C++") == "c"


def test_the_unfinished_last_line_of_a_cut_answer_is_dropped():
    gen = TaskDraftGenerator(llm=None)
    d = gen.draft_from_text(SECTIONS + "- Add a regression test\n- The", BRIEF, PROJECT, "m", finish_reason="length")
    assert d.technical_requirements == ["Refresh the access token before it expires", "Add a regression test"]
    assert d.repairs == ["answer cut at max_tokens: its unfinished last line dropped"]


def test_the_retry_samples_with_the_seed():
    class Recording(Scripted):
        def chat(self, messages, **kw):
            self.options = getattr(self, "options", []) + [kw]
            return super().chat(messages, **kw)

    llm = Recording("nonsense", SECTIONS)
    TaskDraftGenerator(llm, seed=7).generate(BRIEF, PROJECT, "ws")
    assert [(o["temperature"], o["seed"]) for o in llm.options] == [(0.0, 7), (0.5, 7)]
