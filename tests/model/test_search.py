"""Semantic search end to end on real MiniLM embeddings and the embedded Qdrant: workspace isolation, ranking,
citations, size limits, and task events indexed through the streaming consumer."""

from __future__ import annotations

import pytest

from sunday.errors import ValidationError
from sunday.nlp.errors import InputTooLarge
from sunday.nlp.indexing import SearchIndexer, default_encoder
from sunday.nlp.passages import Turn
from sunday.nlp.search import SearchConfig, SemanticSearch, cited
from sunday.nlp.vectorstore import VectorStore

TASKS = [
    ("t1", "w1", "Fix login timeout on the mobile app", "Users are logged out after 30 seconds on iOS."),
    ("t2", "w1", "Quarterly marketing budget review", "Collect spend per channel and prepare the slides."),
    ("t3", "w1", "Migrate the billing database to Postgres 16", "Plan downtime and test the migration scripts."),
    ("t4", "w2", "Fix login timeout in the admin console", "Sessions expire too early for admins."),
]


@pytest.fixture(scope="module")
def searcher(tmp_path_factory):
    store = VectorStore(path=tmp_path_factory.mktemp("qdrant"))
    indexer = SearchIndexer(store, default_encoder())
    indexer.index_tasks([{"task_id": t, "workspace_id": w, "title": ti, "description": d} for t, w, ti, d in TASKS])
    indexer.index_meeting("m1", "w1", [
        Turn("Project Manager", "Let's talk about the remote control design."),
        Turn("Industrial Designer", "I think the case should be made of rubber so it does not break when dropped."),
        Turn("Marketing", "Our survey says young people want fancy colours and a scroll wheel."),
    ], title="Design kickoff")
    indexer.index_document("d1", "w1", "Release process\n\nEvery release is tagged and deployed on Tuesdays.",
                           title="Release handbook", access={"visibility": "restricted", "allowed_users": ["u1"]})
    yield SemanticSearch(store, indexer.encode, config=SearchConfig(candidates=20)), indexer
    store.close()


def test_ranks_the_relevant_task_first_and_stays_in_the_workspace(searcher):
    s, _ = searcher
    res = s.search("login session expires too soon", "w1", answer=False)
    assert res.hits[0].key == "t1"
    assert "t4" not in {h.key for h in res.hits}  # w2's task
    assert res.answer is None and not res.reranked


def test_meeting_passages_and_restricted_documents(searcher):
    s, _ = searcher
    res = s.search("what material should the case be?", "w1", collections=["meeting_turns"], answer=False)
    assert res.hits[0].collection == "meeting_turns" and "rubber" in res.hits[0].text
    assert res.hits[0].payload["doc_id"] == "m1"
    assert not s.search("when are releases deployed?", "w1", collections=["documents"], answer=False).hits
    hit = s.search("when are releases deployed?", "w1", user_id="u1", collections=["documents"], answer=False).hits
    assert hit and "Tuesdays" in hit[0].text


def test_extractive_answer_cites_its_sources(searcher):
    s, _ = searcher
    res = s.search("which database are we migrating to?", "w1")
    assert res.answer_source == "extractive" and res.citations and res.citations[0] == 1
    assert "[1]" in res.answer and "Postgres" in res.answer


def test_citation_check():
    assert cited("It is Postgres [2] and more [7].", 3) == ("It is Postgres [2] and more .", [2])
    assert cited("no sources here", 3) == ("no sources here", [])


def test_bad_queries(searcher):
    s, _ = searcher
    with pytest.raises(InputTooLarge) as err:
        s.search("x" * 5000, "w1")
    assert err.value.field == "query" and err.value.status_code == 413
    with pytest.raises(ValidationError, match="query"):
        s.search("   ", "w1")
    with pytest.raises(ValidationError, match="collections"):
        s.search("login", "w1", collections=["emails"])
    with pytest.raises(ValidationError, match="workspace_id"):
        s.search("login", "")


def test_task_events_are_indexed_by_the_streaming_consumer(settings, searcher):
    from sunday.features import repo
    from sunday.features.streaming import StreamingConsumer

    repo.apply(settings)  # the feature registry the consumer pushes to (no offline data needed)
    s, indexer = searcher
    consumer = StreamingConsumer(settings, None, listeners=[indexer.on_event])
    done = consumer.process({"event_id": "e1", "workspace_id": "w1", "project_id": "p9", "task_id": "t9",
                             "event_type": "created", "timestamp": "2026-11-02T10:00:00",
                             "text": "Rotate the TLS certificates\nThe staging certificates expire next week."})
    assert not done.listener_errors
    res = s.search("certificates expiring", "w1", answer=False)
    assert res.hits[0].key == "t9" and res.hits[0].payload["project_id"] == "p9"
    consumer.process({"event_id": "e2", "workspace_id": "w1", "task_id": "t9", "event_type": "commented",
                      "timestamp": "2026-11-02T11:00:00", "user_id": "u3",
                      "text": "Blocked until the security team approves the new CA."})
    res = s.search("who needs to approve the CA?", "w1", collections=["comments"], answer=False)
    assert res.hits[0].payload["source_id"] == "t9"
