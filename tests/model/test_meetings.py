"""Meeting intelligence with the real models: MiniLM locator + the embedded SmolLM2 on one short transcript
(``summarize_meeting`` end to end, and a query-focused ``summarize`` with each method)."""

from __future__ import annotations

from datetime import date, datetime

import pytest

pytestmark = pytest.mark.timeout(240)  # loads MiniLM and SmolLM2 (~16 s on 2 free cores), a few short generations

TRANSCRIPT = """Anna: Okay, let's start. The remote control prototype is late because the case supplier slipped.
Bob: The supplier says the rubber case will arrive in two weeks, so the demo date is at risk.
Anna: After looking at the costs we decided to keep the rubber case and drop the LCD screen.
Bob: I'll call the supplier tomorrow to confirm the delivery date.
Cy: We need to update the budget sheet before the end of the month.
Anna: Cy will redo the cost estimate by Friday. Who is going to tell marketing? Let's pick that up at the next meeting."""

META = {"meeting_id": "demo-1", "date": "2024-03-04", "workspace_id": "ws1", "project_id": "p1",
        "participants": [{"user_id": "u1", "name": "Anna"}, {"user_id": "u2", "name": "Bob"},
                         {"user_id": "u3", "name": "Cy"}]}


@pytest.fixture(scope="module")
def llm():
    from sunday.nlp.llm import EmbeddedLLM

    return EmbeddedLLM().load()


def test_summarize_meeting_with_embedded_llm(llm):
    from sunday.features.streaming import validate_event
    from sunday.nlp.actions import action_item_events
    from sunday.nlp.meetings import SummaryConfig, summarize_meeting

    out = summarize_meeting(TRANSCRIPT, META, llm=llm, assign=lambda text: "u1",
                            config=SummaryConfig(method="hybrid", max_new_tokens=32))
    assert out.meeting_id == "demo-1" and out.date == date(2024, 3, 4)
    assert any("rubber case" in d.text for d in out.decisions)
    items = {i.evidence: i for i in out.action_items}
    assert len(items) == len(out.action_items) == 3  # "let's pick that up at the next meeting" is a follow-up
    assert (items[3].assignee, items[3].assignee_source, items[3].due_date) == ("u2", "named", date(2024, 3, 5))
    assert (items[5].assignee, items[5].due_date) == ("u3", date(2024, 3, 8))
    assert items[4].assignee_source == "predicted" and items[4].due_date == date(2024, 3, 31)
    assert out.follow_up_needed and any("next meeting" in r for r in out.follow_up_reasons)
    assert len(out.discussion_summary.split()) >= 5
    events = action_item_events(out, META, datetime(2024, 3, 4, 15))
    assert sum(e["event_type"] == "created" for e in events) == len(out.action_items)
    for e in events:
        validate_event(e)


def test_query_summary_methods(llm):
    from sunday.nlp.meetings import SummaryConfig, summarize

    for method in ("extractive", "llm"):  # hybrid ran in the test above
        r = summarize("What did the group decide about the case?", TRANSCRIPT, llm=llm,
                      config=SummaryConfig(method=method, top_k=2, max_new_tokens=24))
        assert r.method == method and r.summary and r.turns
        if method != "extractive":
            assert r.prompt_tokens > 0 and (r.completion_tokens > 0 or r.fallback)
    with pytest.raises(ValueError, match="needs an llm"):
        summarize("x?", TRANSCRIPT, config=SummaryConfig(method="llm"))
