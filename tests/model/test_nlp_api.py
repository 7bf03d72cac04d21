"""The NLP endpoints of the serving API (plain FastAPI app, in process) on the served workspace: documents and
streamed task events become searchable, search stays inside the key's workspace, and bad input gets 4xx with a
reason (413 for oversize queries and briefs, 403/404 for other workspaces' users and projects)."""

from __future__ import annotations

import pytest

from tests.model.conftest import auth, make_client

pytestmark = pytest.mark.timeout(900)
SEARCH, DOCS, DRAFT = "/api/v1/ml/search", "/api/v1/ml/documents", "/api/v1/ml/draft-task"


@pytest.fixture(scope="module")
def api(served):
    from sunday.serving.directory import _table
    from sunday.serving.launch import sample_requests

    settings, sim_path = served
    client, ctx = make_client(settings, sim_path)
    sample = sample_requests(settings, "demo")
    ws = sample["workspace_id"]
    keys = {role: ctx.keys.create(ws, role)[1] for role in ("viewer", "member", "admin")}
    users = _table(sim_path, "users", ["user_id", "workspace_id"])
    others = users[users["workspace_id"] != ws]["user_id"]
    other_user = others.iloc[0] if len(others) else "user-of-no-workspace"  # 403 (other workspace) or 404
    yield client, ctx, sample, keys, other_user
    ctx.backend.nlp.store.close()  # the embedded Qdrant folder: free for the Serve app's replica


def test_documents_and_streamed_tasks_are_searchable(api):
    client, ctx, sample, keys, _ = api
    ws, member, viewer = sample["workspace_id"], auth(keys["member"]), auth(keys["viewer"])
    r = client.post(DOCS, json={"doc_id": "runbook-1", "title": "On-call runbook",
                                "text": "Paging\n\nWhen the payment gateway returns 502 errors, restart the "
                                        "webhook workers and page the payments team."}, headers=member)
    assert r.status_code == 200 and r.json()["passages"] >= 1, r.text
    r = client.post("/api/v1/ml/events", headers=member, json={"events": [{
        "event_id": "nlp-e1", "workspace_id": ws, "task_id": "nlp-t1", "event_type": "created",
        "timestamp": "2026-11-02T10:00:00", "text": "Rotate the TLS certificates\nStaging certs expire next week."}]})
    assert r.status_code == 200, r.text

    r = client.post(SEARCH, json={"query": "payment gateway 502 errors", "collections": ["documents"]},
                    headers=viewer)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["hits"][0]["key"].startswith("runbook-1") and "[1]" in out["answer"]
    assert out["answer_source"] in ("llm", "extractive") and 1 in out["citations"]

    r = client.post(SEARCH, json={"query": "certificates that expire soon", "collections": ["tasks"],
                                  "answer": False}, headers=viewer)
    assert r.status_code == 200 and r.json()["hits"][0]["key"] == "nlp-t1", r.text
    assert all(h["payload"]["workspace_id"] == ws for h in r.json()["hits"])


def test_search_bad_input(api):
    client, _, _, keys, other_user = api
    viewer, admin = auth(keys["viewer"]), auth(keys["admin"])
    r = client.post(SEARCH, json={"query": "x" * 5_000}, headers=viewer)
    assert r.status_code == 413 and "query" in r.json()["detail"]
    assert client.post(SEARCH, json={"query": ""}, headers=viewer).status_code == 422
    r = client.post(SEARCH, json={"query": "a", "collections": ["emails"]}, headers=viewer)
    assert r.status_code == 422 and "collections" in str(r.json()["detail"])
    assert client.post(SEARCH, json={"query": "a", "user_id": other_user}, headers=viewer).status_code in (403, 404)
    assert client.post(SEARCH, json={"query": "a", "include_restricted": True}, headers=viewer).status_code == 403
    r = client.post(SEARCH, json={"query": "a", "include_restricted": True, "answer": False}, headers=admin)
    assert r.status_code == 200
    assert client.post(SEARCH, json={"query": "a"}).status_code == 401
    assert client.post(DOCS, json={"doc_id": "d", "text": "t"}, headers=viewer).status_code == 403


def test_draft_task_bad_input(api):
    client, _, _, keys, _ = api
    member = auth(keys["member"])
    r = client.post(DRAFT, json={"brief": "word " * 2_000}, headers=member)
    assert r.status_code == 413 and "brief" in r.json()["detail"]
    assert client.post(DRAFT, json={"brief": "add dark mode", "project_id": "nope"},
                       headers=member).status_code == 404
    assert client.post(DRAFT, json={"brief": "add dark mode", "extra": 1}, headers=member).status_code == 422
    assert client.post(DRAFT, json={"brief": "add dark mode"}, headers=auth(keys["viewer"])).status_code == 403


MEETING = "/api/v1/ml/summarize-meeting"


def test_summarize_meeting_turns_action_items_into_tasks(api):
    client, ctx, sample, keys, _ = api
    member, ws = auth(keys["member"]), sample["workspace_id"]
    alice, bob = sample["candidates"][:2]
    body = {"meeting_id": "standup-42", "title": "Release sync", "date": "2026-11-23T09:00:00",
            "participants": [{"user_id": alice, "name": "Alice"}, {"user_id": bob, "name": "Bob"}],
            "create_tasks": True,
            "transcript": [
                {"speaker": "Alice", "content": "We decided to ship the export feature in the next release."},
                {"speaker": "Alice", "content": "I'll write the release notes by Friday."},
                {"speaker": "Bob", "content": "Someone needs to update the API documentation for the CSV endpoint."},
                {"speaker": "Bob", "content": "Let's discuss the pricing page at the next meeting."}]}
    r = client.post(MEETING, json=body, headers=member)
    assert r.status_code == 200, r.text
    out = r.json()
    assert any("export" in d["text"] for d in out["decisions"])
    notes = [a for a in out["action_items"] if "release notes" in a["title"].lower()]
    assert notes and notes[0]["assignee"] == alice and notes[0]["assignee_source"] == "named"
    assert notes[0]["due_date"] == "2026-11-27"  # the Friday after Monday 2026-11-23
    predicted = [a for a in out["action_items"] if a["assignee_source"] == "predicted"]
    assert all(a["assignee"] in (alice, bob) for a in predicted)
    assert out["created_tasks"] and out["indexed_passages"] >= 1 and out["follow_up_needed"]
    assert len(out["created_tasks"]) == len(out["action_items"])
    before = ctx.audit.count(ws)
    again = client.post(MEETING, json=body, headers=member).json()
    assert again["created_tasks"] == out["created_tasks"]  # same ids: the events are duplicates, no new tasks
    assert ctx.audit.count(ws) == before + 1
    r = client.post(SEARCH, json={"query": "write the release notes", "collections": ["tasks"], "answer": False},
                    headers=member)
    assert r.json()["hits"][0]["key"] in out["created_tasks"]


def test_summarize_meeting_bad_input(api):
    client, _, _, keys, other_user = api
    member = auth(keys["member"])
    turns = [{"speaker": "A", "content": "hello"}]
    r = client.post(MEETING, json={"meeting_id": "m", "transcript": [{"speaker": "A", "content": "x"}] * 6_000},
                    headers=member)
    assert r.status_code == 413 and "transcript" in r.json()["detail"]
    assert client.post(MEETING, json={"meeting_id": "m", "transcript": []}, headers=member).status_code == 422
    r = client.post(MEETING, json={"meeting_id": "m", "transcript": turns,
                                   "participants": [{"user_id": other_user}]}, headers=member)
    assert r.status_code in (403, 404)
    r = client.post(MEETING, json={"meeting_id": "m", "transcript": turns, "method": "bart"}, headers=member)
    assert r.status_code == 422 and "method" in str(r.json()["detail"])
