"""Meeting outcomes without models: due dates, action items and decisions on hand-written transcripts, follow-up,
task events (schema-valid, idempotent ids), size limits and transcript parsing."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from sunday.nlp.actions import (
    ActionItem, MeetingMeta, MeetingSummary, action_item_events, action_item_tasks, detect_items, follow_up,
    parse_due_date, parse_extraction,
)
from sunday.nlp.errors import InputTooLarge
from sunday.nlp.meetings import (
    SizeLimits, check_query, chunk_turns, is_general, named_speakers, parse_transcript, tidy, turn_sentences,
)
from sunday.nlp.passages import Turn

MONDAY = date(2024, 3, 4)  # a Monday


@pytest.mark.parametrize("text, expected", [
    ("I'll send it by Friday.", date(2024, 3, 8)),
    ("Please do it tomorrow.", date(2024, 3, 5)),
    ("the day after tomorrow works", date(2024, 3, 6)),
    ("let's have it next week", date(2024, 3, 15)),
    ("by the end of the month", date(2024, 3, 31)),
    ("on March 12th", date(2024, 3, 12)),
    ("due 3rd of April", date(2024, 4, 3)),
    ("in two weeks", date(2024, 3, 18)),
    ("within 3 days", date(2024, 3, 7)),
    ("in a month", date(2024, 4, 4)),
    ("next Friday", date(2024, 3, 15)),
    ("by this Wednesday", date(2024, 3, 6)),
    ("by end of day", date(2024, 3, 4)),
    ("deadline 2024-05-01", date(2024, 5, 1)),
    ("on February 2", date(2025, 2, 2)),  # already past this year -> next year
    ("by the end of the week", date(2024, 3, 8)),
    ("no date here", None),
])
def test_parse_due_date(text, expected):
    got, phrase = parse_due_date(text, MONDAY)
    assert got == expected
    assert (phrase is None) == (expected is None)


def test_due_date_next_weekday_from_friday():
    friday = date(2024, 3, 8)
    assert parse_due_date("by Monday", friday)[0] == date(2024, 3, 11)
    assert parse_due_date("next Monday", friday)[0] == date(2024, 3, 11)  # already in the following week
    assert parse_due_date("you may 3 times", friday)[0] is None  # lower-case "may" is the verb


META = MeetingMeta(meeting_id="m1", date=MONDAY, workspace_id="ws1", project_id="p1",
                   participants=[{"user_id": "u-anna", "name": "Anna Berg"}, {"user_id": "u-bob", "name": "Bob Li"},
                                 {"user_id": "u-cy", "name": "Cy"}])
TRANSCRIPT = [
    {"speaker": "Anna Berg", "content": "Okay, um, let's start. We looked at the two vendors last week."},
    {"speaker": "Bob Li", "content": "After the demo we decided to go with the cheaper vendor for the pilot."},
    {"speaker": "Anna Berg", "content": "Great. I'll draft the contract by Friday."},
    {"speaker": "Bob Li", "content": "Cy will update the budget sheet tomorrow."},
    {"speaker": "Cy", "content": "Yeah."},
    {"speaker": "Bob Li", "content": "We need to migrate the old data before the end of the month."},
    {"speaker": "Anna Berg", "content": "Who is going to talk to legal about it? Let's discuss it at the next meeting."},
]


def test_detect_decisions_and_items():
    decisions, items = detect_items(parse_transcript(TRANSCRIPT), META)
    assert [d.evidence for d in decisions] == [[1]]
    assert "cheaper vendor" in decisions[0].text
    by_turn = {i.evidence: i for i in items}
    assert set(by_turn) == {2, 3, 5}
    assert (by_turn[2].assignee, by_turn[2].assignee_source, by_turn[2].due_date) == ("u-anna", "named",
                                                                                      date(2024, 3, 8))
    assert by_turn[2].title.startswith("Draft the contract")
    assert (by_turn[3].assignee, by_turn[3].due_date) == ("u-cy", date(2024, 3, 5))
    assert by_turn[5].assignee is None and by_turn[5].due_date == date(2024, 3, 31)


def test_assignee_predicted_by_hook_and_hook_failure_noted():
    seen = []

    def assign(text):
        seen.append(text)
        return "u-bob"

    _, items = detect_items(parse_transcript(TRANSCRIPT), META, assign=assign)
    unnamed = [i for i in items if i.evidence == 5][0]
    assert (unnamed.assignee, unnamed.assignee_source) == ("u-bob", "predicted")
    assert len(seen) == 1  # named items are not sent to the model

    notes: list[str] = []
    _, items = detect_items(parse_transcript(TRANSCRIPT), META, assign=lambda t: 1 / 0, notes=notes)
    assert [i for i in items if i.evidence == 5][0].assignee is None
    assert notes and "ZeroDivisionError" in notes[0]


def test_hedges_and_questions_are_not_items():
    turns = parse_transcript("A: I'll be honest with you, it is hard.\nB: Should we ship it next week?\n"
                             "A: I think so, we'll see how it goes.")
    _, items = detect_items(turns, MeetingMeta(meeting_id="m"))
    assert items == []


def test_follow_up_reasons():
    turns = parse_transcript(TRANSCRIPT)
    _, items = detect_items(turns, META)
    needed, reasons = follow_up(turns, items)
    assert needed
    text = " ".join(reasons)
    assert "without an assignee" in text and "open question" in text and "next meeting" in text
    assert follow_up(parse_transcript("A: All done, thanks everyone."), []) == (False, [])


def _summary(items):
    return MeetingSummary(meeting_id="m1", date=MONDAY, action_items=items)


def test_action_item_events_valid_and_idempotent():
    from sunday.features.streaming import validate_event

    _, items = detect_items(parse_transcript(TRANSCRIPT), META)
    now = datetime(2024, 3, 4, 12, 0)
    events = action_item_events(_summary(items), META, now)
    created = [e for e in events if e["event_type"] == "created"]
    assigned = [e for e in events if e["event_type"] == "assigned"]
    assert len(created) == len(items) == 3 and len(assigned) == 2
    for e in events:
        validate_event(e)
        assert e["workspace_id"] == "ws1" and e["project_id"] == "p1"
    assert any("Due: 2024-03-08" in e["text"] and "meeting m1" in e["text"] for e in created)
    again = action_item_events(_summary(list(reversed(items))), META, datetime(2024, 3, 5))
    assert {e["event_id"] for e in again} == {e["event_id"] for e in events}  # same ids: no duplicate tasks
    other = action_item_events(_summary(items), META.model_copy(update={"meeting_id": "m2"}), now)
    assert not {e["task_id"] for e in other} & {e["task_id"] for e in events}
    tasks = action_item_tasks(_summary(items), META)
    assert {t["task_id"] for t in tasks} == {e["task_id"] for e in created}
    with pytest.raises(ValueError, match="workspace_id"):
        action_item_events(_summary(items), {"meeting_id": "m1"})


def test_events_go_through_the_api_ingest_check():
    from sunday.serving.schemas import EventsRequest

    _, items = detect_items(parse_transcript(TRANSCRIPT), META)
    EventsRequest.model_validate({"events": action_item_events(_summary(items), META, datetime(2024, 3, 4))})


def test_size_limits_name_the_field():
    limits = SizeLimits(max_transcript_chars=100, max_turns=3, max_query_chars=10)
    with pytest.raises(InputTooLarge, match="'transcript'.*characters"):
        parse_transcript("A: " + "word " * 50, limits)
    with pytest.raises(InputTooLarge, match="'transcript'.*turns"):
        parse_transcript([{"speaker": "A", "content": "hi"}] * 4, limits)
    with pytest.raises(InputTooLarge, match="'transcript'.*200.*100 characters") as err:
        parse_transcript([{"speaker": "", "content": "x" * 50}] * 3 + [{"speaker": "", "content": "x" * 50}], 
                         SizeLimits(max_transcript_chars=100))
    assert err.value.status_code == 413
    with pytest.raises(InputTooLarge, match="'query'"):
        check_query("x" * 11, limits)
    with pytest.raises(ValueError, match=r"transcript\[1\].content"):
        parse_transcript([{"speaker": "A", "content": "hi"}, {"speaker": "B"}])


def test_transcript_forms_and_helpers():
    turns = parse_transcript("Anna: Hello there.\ncontinued line\nBob: Hi.")
    assert turns == [Turn("Anna", "Hello there. continued line"), Turn("Bob", "Hi.")]
    assert parse_transcript([Turn("A", "x")]) == [Turn("A", "x")]
    assert tidy("um so I I think we should , uh , go") == "I think we should, go."
    sents = turn_sentences([Turn("A", "Yeah. Okay. We should buy the cheaper remote for the pilot.")], min_words=5)
    assert [s.text for s in sents] == ["We should buy the cheaper remote for the pilot."]
    assert is_general("Summarize the whole meeting.") and not is_general("What did C think about the budget?")
    speakers = ["Grad F", "Professor C", "Right Hon. Justin Trudeau (Prime Minister)", "Right Hon. Justin Trudeau",
                "Project Manager"]
    assert named_speakers("What did C think about X?", speakers) == {"Professor C"}
    assert named_speakers("What did the Prime Minister say?", speakers) == set(speakers[2:4])
    assert named_speakers("What did the Project Manager propose?", speakers) == {"Project Manager"}
    chunks = chunk_turns([Turn("A", "one two three four")] * 5, max_words=12)
    assert len(chunks) == 3 and chunks[1][0] == 2 and chunks[0][1].startswith("[0] A: one")


def test_llm_extraction_parsing():
    ok = parse_extraction('```json\n{"decisions": [{"text": "Go with vendor B", "turn": 3}], '
                          '"action_items": [{"text": "Anna drafts the contract", "assignee": "Anna", "due": "Friday"}]}'
                          '\n```')
    assert ok.action_items[0].assignee == "Anna"
    for bad in ("no json here", '{"action_items": [{"assignee": "x"}]}', '{"decisions": "x"}', "{bad json}"):
        with pytest.raises(ValueError):
            parse_extraction(bad)


def test_llm_extraction_malformed_is_ignored_with_note():
    from sunday.nlp.actions import llm_extract

    class Fake:
        model = "fake"

        def __init__(self, answers):
            self.answers = list(answers)

        def chat(self, messages, **kw):
            from types import SimpleNamespace

            return SimpleNamespace(text=self.answers.pop(0))

    turns = parse_transcript(TRANSCRIPT)
    good = '{"action_items": [{"text": "Bob will book the room", "assignee": "Bob", "due": "tomorrow", "turn": 1}]}'
    notes: list[str] = []
    decisions, items = llm_extract(turns, META, Fake(["nonsense", good, "{}"]), chunk_words=40, notes=notes)
    assert len(notes) == 1 and "ignored" in notes[0]
    assert [(i.assignee, i.due_date, i.source) for i in items] == [("u-bob", date(2024, 3, 5), "llm")]
