"""``sunday nlp``: index a workspace for search, search it, summarize a meeting, draft a task -- from the shell.

Mounted by ``sunday/cli.py`` as ``app.add_typer(nlp_app, name="nlp")``. These run in this process on the embedded
defaults (or ``SUNDAY_QDRANT_URL`` / ``SUNDAY_LLM_BASE_URL``); the embedded Qdrant folder is locked by one process,
so stop a local Serve app that holds it first (or use a Qdrant server).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from sunday.errors import SundayError, ValidationError

nlp_app = typer.Typer(no_args_is_help=True, help="Search, meeting summaries and task drafts (NLP layer).")


def _settings():
    from sunday.settings import get_settings

    return get_settings().ensure_dirs()


def _console():
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=200)


def _service(settings, reranker: bool = True, llm: bool = True, sim: str | None = None):
    from sunday.nlp.service import NlpService

    sim_path = None
    if sim:
        from sunday.features.platform import simulation_path

        sim_path = simulation_path(settings, sim)
    return NlpService.for_settings(settings, reranker="champion" if reranker else None,
                                   llm="default" if llm else None, sim_path=sim_path)


@nlp_app.command("index")
def index(sim: str = typer.Option("demo", "--sim", help="simulation whose tasks and comments to index"),
          comments: bool = typer.Option(True, "--comments/--no-comments")) -> None:
    """Index a simulated workspace's tasks (and comments) into the vector store."""
    from sunday.features.platform import simulation_path
    from sunday.nlp.indexing import SearchIndexer, index_simulation

    settings = _settings()
    indexer = SearchIndexer.for_settings(settings)
    try:
        counts = index_simulation(indexer, simulation_path(settings, sim), comments=comments, progress=True)
    finally:
        indexer.store.close()
    _console().print(f"indexed {counts['tasks']:,} tasks and {counts['comments']:,} comments into "
                     f"{indexer.store.where}")


@nlp_app.command("search")
def search(query: str = typer.Argument(..., help="question or keywords"),
           workspace: str = typer.Option(..., "--workspace", "-w", help="workspace to search"),
           user: Optional[str] = typer.Option(None, "--user", help="search as this user (restricted items)"),
           collection: list[str] = typer.Option(None, "--collection", "-c", help="tasks, comments, documents, "
                                                "meeting_turns (repeatable; default all)"),
           top_k: int = typer.Option(10, "--top-k"),
           answer: bool = typer.Option(True, "--answer/--no-answer", help="answer with citations from the LLM"),
           as_json: bool = typer.Option(False, "--json", help="print the result as JSON")) -> None:
    """Search a workspace: dense retrieval, rerank, and an answer citing its sources."""
    settings = _settings()
    svc = _service(settings, llm=answer)
    out = svc.search({"query": query, "workspace_id": workspace, "user_id": user,
                      "collections": collection or None, "top_k": top_k, "answer": answer})
    svc.store.close()
    if as_json:
        typer.echo(json.dumps(out, indent=2, default=str))
        return
    from rich.table import Table

    console = _console()
    t = Table(title=f"{len(out['hits'])} hits" + (" (reranked)" if out["reranked"] else " (dense order)"))
    for col in ("#", "collection", "key", "score", "text"):
        t.add_column(col)
    for h in out["hits"]:
        score = h["rerank_score"] if h["rerank_score"] is not None else h["dense_score"]
        t.add_row(str(h["rank"]), h["collection"], h["key"], f"{score:.3f}", h["text"][:100].replace("\n", " "))
    console.print(t)
    if out["answer"]:
        console.print(f"[bold]answer[/bold] ({out['answer_source']}): {out['answer']}")
    for note in out["notes"]:
        console.print(f"note: {note}")


@nlp_app.command("draft")
def draft(brief: str = typer.Argument(..., help="a short description of the work"),
          workspace: str = typer.Option("local", "--workspace", "-w", help="workspace whose token budget is spent"),
          project: Optional[str] = typer.Option(None, "--project", help="project id (with --sim: its tasks inform "
                                                "the story points)"),
          sim: Optional[str] = typer.Option(None, "--sim", help="simulation holding the project")) -> None:
    """Draft a task (title, description, acceptance criteria, requirements, story points, tags)."""
    settings = _settings()
    svc = _service(settings, reranker=False, sim=sim)
    typer.echo(json.dumps(svc.draft_task({"brief": brief, "workspace_id": workspace, "project_id": project}),
                          indent=2))


def read_transcript(path: Path) -> list[dict]:
    """Turns ``[{speaker, content}]`` from a JSON file (a list of turns, or a QMSum meeting with
    ``meeting_transcripts``) or a text file of ``Speaker: words`` lines."""
    if not path.is_file():
        raise SundayError(f"transcript file not found: {path}")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValidationError("transcript", "file", f"is not valid JSON: {exc}") from None
        turns = data.get("meeting_transcripts") if isinstance(data, dict) else data
        if not isinstance(turns, list) or not all(isinstance(t, dict) and "content" in t for t in turns):
            raise ValidationError("transcript", "turns", "must be a list of {speaker, content} objects")
        return [{"speaker": str(t.get("speaker") or ""), "content": str(t["content"])} for t in turns]
    turns = []
    for line in text.splitlines():
        if line.strip():
            speaker, sep, content = line.partition(":")
            turns.append({"speaker": speaker.strip(), "content": content.strip()} if sep and len(speaker) < 60
                         else {"speaker": "", "content": line.strip()})
    return turns


@nlp_app.command("summarize")
def summarize(path: Path = typer.Argument(..., help="transcript: JSON turns [{speaker, content}] (or a QMSum meeting "
                                          "file), or text lines 'Speaker: words'"),
              meeting_id: Optional[str] = typer.Option(None, "--meeting-id", help="default: the file name"),
              date: Optional[str] = typer.Option(None, "--date", help="meeting day YYYY-MM-DD (due dates are "
                                                 "relative to it)"),
              participant: list[str] = typer.Option(None, "--participant", "-p", help="user id or 'id=Name' "
                                                    "(repeatable)"),
              method: str = typer.Option("extractive", "--method", help="extractive, llm or hybrid"),
              workspace: str = typer.Option("local", "--workspace", "-w"),
              as_json: bool = typer.Option(False, "--json")) -> None:
    """Summarize a meeting: decisions, action items (assignee, due date), discussion summary, follow-up."""
    from sunday.nlp.actions import MeetingMeta
    from sunday.nlp.guard import GuardedLLM
    from sunday.nlp.meetings import SummaryConfig, summarize_meeting

    if method not in ("extractive", "llm", "hybrid"):
        raise ValidationError("summarize", "method", f"must be extractive, llm or hybrid, got {method!r}")
    settings = _settings()
    people = [{"user_id": p.split("=", 1)[0], "name": p.split("=", 1)[-1]} for p in (participant or [])]
    meta = MeetingMeta.model_validate({"meeting_id": meeting_id or path.stem, "date": date,
                                       "workspace_id": workspace, "participants": people})
    llm = GuardedLLM.for_settings(settings).for_workspace(workspace) if method != "extractive" else None
    summary = summarize_meeting(read_transcript(path), meta, llm=llm, config=SummaryConfig(method=method))
    if as_json:
        typer.echo(summary.model_dump_json(indent=2))
        return
    console = _console()
    console.print(f"[bold]{summary.meeting_id}[/bold] -- discussion ({method}): {summary.discussion_summary}")
    for d in summary.decisions:
        console.print(f"decision: {d.text}")
    for a in summary.action_items:
        who = f"{a.assignee} ({a.assignee_source})" if a.assignee else "unassigned"
        console.print(f"action: {a.title} -- {who}" + (f", due {a.due_date}" if a.due_date else ""))
    console.print(f"follow-up needed: {summary.follow_up_needed}"
                  + (f" ({'; '.join(summary.follow_up_reasons)})" if summary.follow_up_reasons else ""))
