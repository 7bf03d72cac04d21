"""NLP: embeddings, vector search with a trained reranker, meeting summaries, task drafts, LLM backends.

Modules (one job each; nothing heavy is imported here):

* ``errors``      user-facing errors of the NLP layer (each with an HTTP status for the serving app)
* ``passages``    meeting transcripts -> retrieval passages (turn ranges); QMSum loading
* ``vectorstore`` Qdrant collections (embedded or ``SUNDAY_QDRANT_URL``) with workspace/access filters
* ``retrieval``   BM25 and dense retrieval
* ``reranker``    the CrossEncoder reranker (training, loading, reranking)
* ``search``      ``search(query, workspace)``: retrieve, rerank, answer with citations
* ``llm``         the LLM interface: embedded SmolLM2 and an OpenAI-compatible HTTP client
* ``openai_api``  the OpenAI-compatible ``/v1/chat/completions`` app over any backend
* ``guard``       token budgets, per-request caps and the prompt cache around a backend
* ``meetings``    ``summarize_meeting``: decisions, action items (-> tasks), discussion summary, follow-up
* ``taskgen``     task-description drafts validated against a schema
"""
