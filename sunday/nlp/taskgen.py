"""Task-description drafts from a short brief and the project's context, validated against a schema (issue 7,
item 6).

``TaskDraftGenerator(llm).generate(brief, project, workspace_id)`` returns a :class:`TaskDraft` (title,
description, 3-5 acceptance criteria, technical requirements, story points, tags, provenance) or raises
:class:`~sunday.nlp.errors.DraftRejected` with the exact reason. Malformed output is never passed on:

1. **Prompt.** Labelled sections (``Title:``, ``Description:``, ``Acceptance criteria:`` bullets, ...) with one
   worked example: far easier for a small embedded model (SmolLM2-135M) than JSON. Remote models that answer in JSON
   (bare or in a code fence) are accepted too.
2. **Parse** (:func:`parse_output`): JSON object if there is one, else the labelled sections; bullets in any common
   style (``-``, ``*``, ``•``, ``1.``, ``1)``, ``[ ]``).
3. **Repair** (:func:`repair`), each repair named in ``repairs``: whitespace/markdown/quotes trimmed, bullets
   normalised, duplicates dropped, over-long fields truncated at a word boundary, more than 5 criteria cut to the
   first 5, a missing title taken from the user's own brief, missing tags filled from the project's existing tags
   found in the text, else from the brief's keywords. Nothing is invented: missing criteria, requirements or a
   description are never padded.
4. **Validate** against :class:`TaskDraft`. An invalid answer (or one that copies the prompt's example) gets one
   retry with a stricter prompt naming the problem, sampled at ``retry_temperature`` (seeded) since a small model
   stuck in a repetition loop repeats it greedily; still invalid -> :class:`DraftRejected` with the reason. An
   answer cut at ``max_tokens`` loses its unfinished last line.

**Story points** (always on the scale :data:`SCALE`, the simulator's Fibonacci-like scale):

* ``effort-model``: the story-point effort model (:class:`~sunday.models.effort.TextPointsEstimator`) on the
  generated title and description, snapped to the scale. It is the generator's ``effort`` argument (any fitted
  object with ``predict(titles, descriptions)``; :meth:`TaskDraftGenerator.for_settings` loads
  ``<home>/nlp/effort_points.pkl`` when present, written by :func:`save_effort_model`), else one fitted on the
  project's own estimated tasks when :class:`ProjectContext` carries at least :data:`MIN_EFFORT_ROWS` of them
  (TF-IDF components only, about a second; kept per project).
* ``llm``: else the LLM's own ``Story points:`` number snapped to the scale (a number outside 0.5-40 is dropped).
* ``none``: else ``story_points`` is None. A draft is not rejected for lacking an estimate: the team estimates it.
"""

from __future__ import annotations

import hashlib
import json
import math
import pickle
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol, Sequence

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from sunday.nlp.errors import DraftRejected, InputTooLarge

if TYPE_CHECKING:  # pragma: no cover
    from sunday.nlp.llm import LLM, Completion
    from sunday.settings import Settings

SCALE: tuple[float, ...] = (0.5, 1, 2, 3, 5, 8, 13, 21)  # sunday.data.simulator.entities.FIBONACCI
TITLE_MIN, TITLE_MAX = 5, 120
DESCRIPTION_MAX = 1200
ITEM_MAX = 240
CRITERIA_MIN, CRITERIA_MAX = 3, 5
REQUIREMENTS_MIN, REQUIREMENTS_MAX = 1, 6
TAGS_MIN, TAGS_MAX, TAG_MAX = 1, 6, 30
BRIEF_MAX_CHARS = 2000
MIN_EFFORT_ROWS = 30
LLM_POINTS_RANGE = (0.5, 40.0)
TAG_PATTERN = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"

Item = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=ITEM_MAX)]
Tag = Annotated[str, StringConstraints(pattern=TAG_PATTERN, max_length=TAG_MAX)]


# -- schema -------------------------------------------------------------------------------------------------------
class TaskDraft(BaseModel):
    """A validated task draft. ``repairs`` names every change made to the LLM's answer (``repaired`` iff any)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    title: str = Field(min_length=TITLE_MIN, max_length=TITLE_MAX, pattern=r"^[^\n]+$")
    description: str = Field(min_length=1, max_length=DESCRIPTION_MAX)
    acceptance_criteria: list[Item] = Field(min_length=CRITERIA_MIN, max_length=CRITERIA_MAX)
    technical_requirements: list[Item] = Field(min_length=REQUIREMENTS_MIN, max_length=REQUIREMENTS_MAX)
    story_points: float | None
    story_points_source: Literal["effort-model", "llm", "none"]
    tags: list[Tag] = Field(min_length=TAGS_MIN, max_length=TAGS_MAX)
    model: str
    repaired: bool = False
    repairs: list[str] = Field(default_factory=list)
    attempts: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> "TaskDraft":
        if not self.title.strip() or not self.description.strip():
            raise ValueError("title and description must not be blank")
        for name in ("acceptance_criteria", "technical_requirements", "tags"):
            items = [s.casefold() for s in getattr(self, name)]
            if len(set(items)) != len(items):
                raise ValueError(f"{name} must not repeat")
        if (self.story_points is None) != (self.story_points_source == "none"):
            raise ValueError("story_points is None exactly when story_points_source is 'none'")
        if self.story_points is not None and self.story_points not in SCALE:
            raise ValueError(f"story_points must be one of {list(SCALE)}, got {self.story_points}")
        if self.repaired != bool(self.repairs):
            raise ValueError("repaired must say whether repairs is non-empty")
        return self


@dataclass
class LabelledTask:
    """An estimated task of the project (what a per-project effort model trains on)."""

    title: str
    description: str
    story_points: float


@dataclass
class ProjectContext:
    """What the prompt says about the project. Only ``name`` is required; ``labelled_tasks`` (the project's
    estimated tasks, oldest first) let the generator fit an effort model for the story points."""

    name: str
    description: str = ""
    tags: list[str] = field(default_factory=list)
    recent_titles: list[str] = field(default_factory=list)
    labelled_tasks: list[LabelledTask] = field(default_factory=list)


class PointsModel(Protocol):
    def predict(self, titles: Sequence[str], descriptions: Sequence[str]) -> Any: ...


# -- parsing ------------------------------------------------------------------------------------------------------
SECTIONS: dict[str, tuple[str, ...]] = {
    "title": ("title", "task title", "name", "summary"),
    "description": ("description", "desc", "details"),
    "acceptance_criteria": ("acceptance criteria", "acceptance criterion", "criteria", "acceptance"),
    "technical_requirements": ("technical requirements", "tech requirements", "technical requirement",
                               "requirements", "technical notes", "technical"),
    "story_points": ("story points", "story point", "points", "estimate", "storypoints"),
    "tags": ("tags", "labels", "tag"),
}
_ALIAS = {alias: name for name, aliases in SECTIONS.items() for alias in aliases}
_HEADER = re.compile(
    r"^[ \t]*(?:#{1,6}[ \t]*)?(?:\*\*|__)?[ \t]*(" + "|".join(sorted(map(re.escape, _ALIAS), key=len, reverse=True))
    + r")[ \t]*(?:\*\*|__)?[ \t]*(?::|-(?=\s)|\n)[ \t]*(?:\*\*|__)?(.*)$",
    re.IGNORECASE | re.MULTILINE)
_BULLET = re.compile(r"^\s*(?:[-*•·+–]|\d{1,2}[.)]|\[[ xX]?\]|[a-e][.)](?=\s))\s*(?:\[[ xX]?\]\s*)?")
_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
_JSON_KEYS = {"title": "title", "name": "title", "summary": "title", "description": "description",
              "acceptance_criteria": "acceptance_criteria", "acceptancecriteria": "acceptance_criteria",
              "criteria": "acceptance_criteria", "technical_requirements": "technical_requirements",
              "technicalrequirements": "technical_requirements", "requirements": "technical_requirements",
              "story_points": "story_points", "storypoints": "story_points", "points": "story_points",
              "estimate": "story_points", "tags": "tags", "labels": "tags"}


@dataclass
class Parsed:
    """The raw fields found in one answer (nothing validated yet); ``format`` is ``json``, ``sections`` or
    ``none``; ``notes`` are repairs made while parsing."""

    fields: dict[str, Any]
    format: str
    notes: list[str] = field(default_factory=list)


def _json_candidates(text: str) -> list[str]:
    out = [m.group(1) for m in _FENCE.finditer(text)]
    start, end = text.find("{"), text.rfind("}")
    if start != -1 and end > start:
        out.append(text[start:end + 1])
    return out


def _parse_json(text: str) -> Parsed | None:
    for cand in _json_candidates(text):
        notes: list[str] = []
        try:
            obj = json.loads(cand)
        except json.JSONDecodeError:
            fixed = re.sub(r",\s*([}\]])", r"\1", cand)  # trailing commas, the commonest slip
            try:
                obj = json.loads(fixed)
            except json.JSONDecodeError:
                continue
            notes.append("JSON: trailing commas removed")
        if isinstance(obj, dict) and len(obj) == 1 and isinstance(next(iter(obj.values())), dict):
            obj = next(iter(obj.values()))  # {"task": {...}}
        if not isinstance(obj, dict):
            continue
        fields: dict[str, Any] = {}
        for key, value in obj.items():
            name = _JSON_KEYS.get(re.sub(r"[\s\-]+", "_", str(key).strip().lower()).replace("__", "_"))
            name = name or _JSON_KEYS.get(re.sub(r"[\s_\-]+", "", str(key).strip().lower()))
            if name and name not in fields:
                fields[name] = value
        if fields:
            return Parsed(fields, "json", notes)
    return None


def _parse_sections(text: str) -> Parsed:
    matches = list(_HEADER.finditer(text))
    fields: dict[str, Any] = {}
    for i, m in enumerate(matches):
        name = _ALIAS[m.group(1).lower()]
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        body = (m.group(2) + "\n" + text[m.end():end]).strip()
        if name not in fields:  # the first occurrence wins (a model that repeats the format starts over)
            fields[name] = body
    return Parsed(fields, "sections" if fields else "none")


def parse_output(text: str) -> Parsed:
    """The fields of one LLM answer: a JSON object (bare, fenced or wrapped in prose) or labelled sections."""
    text = (text or "").replace("\r\n", "\n")
    return _parse_json(text) or _parse_sections(text)


# -- repair -------------------------------------------------------------------------------------------------------
_MARKUP = re.compile(r"(\*\*|__|`)")
_STOP = set("""a an the and or of to in on for with from by at as is are be this that these those it its into
via per can should must will would user users add make new allow support when so we our my i you your page task
please need needs want wants able after before about over under then than also been get gets got have has
had out all any each every some more most very just only there their them they what which while without""".split())


def _clean(value: Any) -> str:
    text = value if isinstance(value, str) else ("" if value is None else str(value))
    text = _MARKUP.sub("", text)
    return re.sub(r"\s+", " ", text).strip().strip('"\'').strip()


def _truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip(" ,;:-") + "…"


def _items(value: Any, split_inline: bool = True) -> list[str]:
    """A list section (bullets, numbered lines, a JSON list, or one line of ``;``-separated items) as items."""
    if isinstance(value, (list, tuple)):
        raw = [_clean(v if not isinstance(v, dict) else " ".join(map(str, v.values()))) for v in value]
    else:
        text = value if isinstance(value, str) else ("" if value is None else str(value))
        lines = [ln for ln in text.split("\n") if ln.strip()]
        bulleted = [ln for ln in lines if _BULLET.match(ln)]
        if bulleted:
            raw, current = [], None
            for ln in lines:
                if _BULLET.match(ln):
                    current = _BULLET.sub("", ln, count=1)
                    raw.append(current)
                elif raw and ln[:1].isspace():  # an indented continuation line
                    raw[-1] += " " + ln.strip()
                # other unbulleted lines after bullets (trailing prose) are dropped
            if lines and not _BULLET.match(lines[0]) and split_inline:
                raw = [lines[0]] + raw  # text on the header line itself
        elif len(lines) > 1:
            raw = lines
        elif split_inline and lines:
            raw = re.split(r"\s*;\s*", lines[0])
        else:
            raw = lines
        raw = [_clean(r) for r in raw]
    return [r.rstrip(" ,;") for r in raw if r and not re.fullmatch(r"[.…\-\s]*", r)]


def _dedupe(items: list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for it in items:
        key = re.sub(r"\W+", " ", it.casefold()).strip()
        if key and key not in seen:
            seen.add(key)
            out.append(it)
    return out


def slug(text: str) -> str:
    """``"Front End"`` -> ``"front-end"``: lowercase ASCII letters/digits joined by single hyphens."""
    s = re.sub(r"[^a-z0-9]+", "-", str(text).lower().lstrip("#")).strip("-")
    return s[:TAG_MAX].rstrip("-")


def snap_points(value: float) -> float:
    """The nearest value of :data:`SCALE` (ties to the smaller)."""
    return min(SCALE, key=lambda s: (abs(s - value), s))


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    m = re.search(r"\d+(?:\.\d+)?", str(value or ""))
    return float(m.group()) if m else None


def _keywords(text: str) -> list[str]:
    words = re.findall(r"[A-Za-z][A-Za-z0-9+#-]{2,}", text)
    return [w.lower() for w in words if w.lower() not in _STOP and len(w) >= 4]


@dataclass
class Repaired:
    """The fields after repair, ``repairs`` made, and ``problems`` (reasons it cannot validate); empty problems
    mean the fields form a valid draft once story points are set."""

    fields: dict[str, Any]
    repairs: list[str]
    problems: list[str]


def _list_field(fields: dict[str, Any], name: str, label: str, lo: int, hi: int, repairs: list[str],
                problems: list[str], exclude: str = "", also: Sequence[str] = ()) -> list[str]:
    items = _items(fields.get(name))
    items = [it for it in items if it.casefold() != exclude.casefold()]
    taken = {re.sub(r"\W+", " ", a.casefold()).strip() for a in also}
    kept = [it for it in items if re.sub(r"\W+", " ", it.casefold()).strip() not in taken]
    if len(kept) < len(items):
        repairs.append(f"{label}: {len(items) - len(kept)} item(s) repeating another section dropped")
        items = kept
    deduped = _dedupe(items)
    if len(deduped) < len(items):
        repairs.append(f"{label}: {len(items) - len(deduped)} duplicate(s) dropped")
    short = [it for it in deduped if len(it) < 3]
    deduped = [it for it in deduped if len(it) >= 3]
    if short:
        repairs.append(f"{label}: {len(short)} item(s) under 3 characters dropped")
    long = [i for i, it in enumerate(deduped) if len(it) > ITEM_MAX]
    if long:
        deduped = [_truncate(it, ITEM_MAX) for it in deduped]
        repairs.append(f"{label}: {len(long)} item(s) truncated to {ITEM_MAX} characters")
    if len(deduped) > hi:
        repairs.append(f"{label}: {len(deduped)} given, kept the first {hi}")
        deduped = deduped[:hi]
    if name not in fields or fields.get(name) in (None, "", []):
        problems.append(f"{label}: missing")
    elif len(deduped) < lo:
        problems.append(f"{label}: {len(deduped)} given, at least {lo} required")
    return deduped


def repair(parsed: Parsed, brief: str, project: ProjectContext) -> Repaired:
    """Trim, normalise, dedupe, truncate and fill tags (see the module docstring); never invents content."""
    f = parsed.fields
    repairs = list(parsed.notes)
    problems: list[str] = []
    if parsed.format == "none":
        return Repaired({}, repairs, ["no labelled sections (Title:, Description:, Acceptance criteria:, ...) "
                                      "and no JSON object in the answer"])
    out: dict[str, Any] = {}

    title = _clean(_items(f.get("title"), split_inline=False)[0] if _items(f.get("title"), False) else "")
    title = title.rstrip(".").strip()
    if len(title) < TITLE_MIN:
        b = _clean(brief).rstrip(".")
        if TITLE_MIN <= len(b) <= TITLE_MAX:
            repairs.append("title: missing or too short, taken from the brief")
            title = b[:1].upper() + b[1:]
        else:
            problems.append("title: missing" if not title else f"title: {len(title)} characters, "
                                                                   f"at least {TITLE_MIN} required")
    if len(title) > TITLE_MAX:
        repairs.append(f"title: {len(title)} characters, truncated to {TITLE_MAX}")
        title = _truncate(title, TITLE_MAX)
    out["title"] = title

    desc_raw = f.get("description")
    desc = _clean(" ".join(desc_raw) if isinstance(desc_raw, list) else desc_raw)
    if not desc:
        problems.append("description: missing")
    elif len(desc) > DESCRIPTION_MAX:
        repairs.append(f"description: {len(desc)} characters, truncated to {DESCRIPTION_MAX}")
        desc = _truncate(desc, DESCRIPTION_MAX)
    out["description"] = desc

    out["acceptance_criteria"] = _list_field(f, "acceptance_criteria", "acceptance criteria", CRITERIA_MIN,
                                             CRITERIA_MAX, repairs, problems, exclude=title)
    out["technical_requirements"] = _list_field(f, "technical_requirements", "technical requirements",
                                                REQUIREMENTS_MIN, REQUIREMENTS_MAX, repairs, problems,
                                                exclude=title, also=out["acceptance_criteria"])

    points = _number(f.get("story_points"))
    if points is not None and not LLM_POINTS_RANGE[0] <= points <= LLM_POINTS_RANGE[1]:
        repairs.append(f"story points: {points:g} is outside {LLM_POINTS_RANGE[0]:g}-{LLM_POINTS_RANGE[1]:g}, "
                       "dropped")
        points = None
    out["llm_points"] = points

    raw_tags = f.get("tags")
    tag_items = raw_tags if isinstance(raw_tags, list) else re.split(r"[,;\n]|\s+(?=#)", str(raw_tags or ""))
    tags = []
    for t in tag_items:
        s = slug(_BULLET.sub("", str(t)))
        if s and s not in tags and len(s) >= 2:
            tags.append(s)
    if len(tags) > TAGS_MAX:
        repairs.append(f"tags: {len(tags)} given, kept the first {TAGS_MAX}")
        tags = tags[:TAGS_MAX]
    if not tags:
        text = f"{brief} {title} {desc}".lower()
        known = [slug(t) for t in project.tags if slug(t) and re.search(r"\b" + re.escape(t.lower()) + r"\b", text)]
        if known:
            tags = list(dict.fromkeys(known))[:3]
            repairs.append("tags: missing, filled from the project's tags found in the text")
        else:
            tags = list(dict.fromkeys(slug(k) for k in _keywords(brief) if slug(k)))[:3]
            if tags:
                repairs.append("tags: missing, filled from the brief's keywords")
            else:
                problems.append("tags: missing and none could be derived from the brief")
    out["tags"] = tags
    return Repaired(out, repairs, problems)


# -- effort model -------------------------------------------------------------------------------------------------
def fit_effort_model(titles: Sequence[str], descriptions: Sequence[str], points: Sequence[float]) -> Any:
    """A :class:`~sunday.models.effort.TextPointsEstimator` on TF-IDF components only (no embedder: seconds, and
    it pickles), on tasks in time order."""
    from sunday.models.effort import TextPointsConfig, TextPointsEstimator

    if len(titles) < MIN_EFFORT_ROWS:
        raise ValueError(f"an effort model needs at least {MIN_EFFORT_ROWS} estimated tasks, got {len(titles)}")
    config = TextPointsConfig(components=("prior", "tfidf-lr", "knn"))
    return TextPointsEstimator(config).fit(list(titles), list(descriptions), list(points))


def save_effort_model(model: Any, path: Path) -> Path:
    """Pickle a fitted effort model (one without an embedder) for :meth:`TaskDraftGenerator.for_settings`."""
    if getattr(model, "embed", None) is not None:
        raise ValueError("save_effort_model: the model holds an embedder; fit one without embed to save it")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as fh:
        pickle.dump(model, fh, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(path)
    return path


def load_effort_model(path: Path) -> Any:
    with open(path, "rb") as fh:
        return pickle.load(fh)  # noqa: S301 - our own file under the state folder


def effort_model_path(settings: "Settings") -> Path:
    return settings.home / "nlp" / "effort_points.pkl"


# -- the prompt ---------------------------------------------------------------------------------------------------
SYSTEM = ("You write task descriptions for a software team. Answer in exactly this format and nothing else:\n"
          "Title: <one line>\nTags: <2 or 3 words>\nStory points: <1, 2, 3, 5, 8 or 13>\n"
          "Description: <one or two sentences>\nAcceptance criteria:\n- <3 to 5 different checks>\n"
          "Technical requirements:\n- <1 to 3 items>")
STRICT = ("\nEvery line must be different and must be about the request. Write exactly 3 acceptance criteria and 2 "
          "technical requirements, then stop.")
EXAMPLE_USER = "Project: Billing (invoices and payments)\nRequest: let customers download invoices as PDF"
EXAMPLE_CRITERIA = ("Each invoice has a Download PDF button", "The PDF totals match the invoice page",
                    "Nobody can download another account's invoices")
EXAMPLE_ANSWER = (
    "Title: Download invoices as PDF\n"
    "Tags: billing, pdf\n"
    "Story points: 3\n"
    "Description: Customers can download any invoice as a PDF with the same lines and totals as the web page.\n"
    "Acceptance criteria:\n" + "".join(f"- {c}\n" for c in EXAMPLE_CRITERIA) +
    "Technical requirements:\n"
    "- Render the PDF on the server\n"
    "- Check account access before returning the file")
EXAMPLE_TITLE = "Download invoices as PDF"
RETRY_NOTE = "\n(A previous answer was rejected: {reason}.)"


def _project_block(project: ProjectContext) -> str:
    lines = [f"Project: {project.name}" + (f" ({_truncate(_clean(project.description), 160)})"
                                           if project.description.strip() else "")]
    if project.tags:
        lines.append("Tags in use: " + ", ".join(slug(t) for t in project.tags[:12]))
    if project.recent_titles:
        lines.append("Recent tasks: " + "; ".join(_truncate(_clean(t), 60) for t in project.recent_titles[:3]))
    return "\n".join(lines)


def build_messages(brief: str, project: ProjectContext, retry_reason: str | None = None) -> list[dict]:
    """System format, one worked example, then the request. ``retry_reason``: the stricter prompt of a retry (a
    fresh conversation naming the problem; the rejected answer is not shown, a small model would copy it)."""
    system = SYSTEM + (STRICT if retry_reason else "")
    note = RETRY_NOTE.format(reason=retry_reason) if retry_reason else ""
    return [{"role": "system", "content": system},
            {"role": "user", "content": EXAMPLE_USER},
            {"role": "assistant", "content": EXAMPLE_ANSWER},
            {"role": "user", "content": f"{_project_block(project)}\nRequest: {brief}{note}"}]


# -- the generator ------------------------------------------------------------------------------------------------
@dataclass
class Attempt:
    """One LLM answer and what became of it (kept on the generator's ``last_attempts`` for inspection)."""

    text: str
    finish_reason: str
    problems: list[str]
    seconds: float


class TaskDraftGenerator:
    """Briefs -> validated :class:`TaskDraft`; see the module docstring. ``llm`` is any backend with the
    :class:`~sunday.nlp.llm.LLM` protocol or a :class:`~sunday.nlp.guard.GuardedLLM` (then the budget of
    ``workspace_id`` is spent). ``effort``: a fitted story-point model or None."""

    def __init__(self, llm: "LLM", effort: PointsModel | None = None, *, max_tokens: int = 200,
                 retries: int = 1, seed: int | None = 0, max_brief_chars: int = BRIEF_MAX_CHARS,
                 retry_temperature: float = 0.5):
        self.llm, self.effort = llm, effort
        self.retry_temperature = retry_temperature
        self.max_tokens, self.retries, self.seed = max_tokens, retries, seed
        self.max_brief_chars = max_brief_chars
        self._project_models: dict[str, PointsModel] = {}
        self.last_attempts: list[Attempt] = []

    @classmethod
    def for_settings(cls, settings: "Settings | None" = None, llm: "LLM | None" = None,
                     **kwargs: Any) -> "TaskDraftGenerator":
        """The guarded configured backend (:meth:`GuardedLLM.for_settings`) and the effort model saved under
        ``<home>/nlp/effort_points.pkl`` when there is one."""
        from sunday.nlp.guard import GuardedLLM
        from sunday.settings import get_settings

        settings = settings or get_settings()
        path = effort_model_path(settings)
        effort = load_effort_model(path) if path.is_file() else None
        return cls(GuardedLLM.for_settings(settings, llm), effort, **kwargs)

    def _backend(self, workspace_id: str) -> "LLM":
        bind = getattr(self.llm, "for_workspace", None)
        return bind(workspace_id) if callable(bind) else self.llm

    def _chat(self, backend: "LLM", messages: list[dict], attempt: int) -> "Completion":
        # greedy first (cacheable); a retry samples (reproducibly with ``seed``): a small model stuck in a loop
        # repeats it greedily whatever the prompt says
        temperature = 0.0 if attempt == 0 else self.retry_temperature
        return backend.chat(messages, max_tokens=self.max_tokens, temperature=temperature, seed=self.seed)

    def _effort_for(self, project: ProjectContext) -> PointsModel | None:
        if self.effort is not None:
            return self.effort
        rows = [r for r in project.labelled_tasks if r.story_points is not None
                and math.isfinite(float(r.story_points)) and float(r.story_points) >= 0]
        if len(rows) < MIN_EFFORT_ROWS:
            return None
        key = hashlib.sha256(json.dumps([project.name] + [[r.title, r.description, float(r.story_points)]
                                                          for r in rows]).encode()).hexdigest()
        if key not in self._project_models:
            self._project_models[key] = fit_effort_model([r.title for r in rows], [r.description for r in rows],
                                                         [float(r.story_points) for r in rows])
        return self._project_models[key]

    def _points(self, fields: dict[str, Any], project: ProjectContext, repairs: list[str]) -> tuple[float | None, str]:
        model = self._effort_for(project)
        if model is not None:
            pred = float(list(model.predict([fields["title"]], [fields["description"]]))[0])
            return snap_points(pred), "effort-model"
        llm_points = fields.get("llm_points")
        if llm_points is not None:
            snapped = snap_points(llm_points)
            if snapped != llm_points:
                repairs.append(f"story points: {llm_points:g} snapped to {snapped:g} on the scale")
            return snapped, "llm"
        return None, "none"

    def check_brief(self, brief: str) -> str:
        if not isinstance(brief, str) or not brief.strip():
            raise DraftRejected("brief: empty")
        if len(brief) > self.max_brief_chars:
            raise InputTooLarge("brief", len(brief), self.max_brief_chars)
        return re.sub(r"\s+", " ", brief).strip()

    def draft_from_text(self, text: str, brief: str, project: ProjectContext, model: str,
                        finish_reason: str = "stop", attempts: int = 1) -> TaskDraft:
        """One answer -> a valid :class:`TaskDraft`, or :class:`DraftRejected` with the reason (no retry)."""
        cut_note = []
        if finish_reason == "length" and "\n" in (text or "").strip():
            text = text.strip().rsplit("\n", 1)[0]  # the last line stopped mid-way: never keep half an item
            cut_note = ["answer cut at max_tokens: its unfinished last line dropped"]
        rep = repair(parse_output(text), brief, project)
        rep.repairs[:0] = cut_note
        problems = list(rep.problems)
        if "invoice" not in brief.lower() and (
                rep.fields.get("title", "").casefold() == EXAMPLE_TITLE.casefold()
                or len({c.casefold() for c in EXAMPLE_CRITERIA}
                       & {c.casefold() for c in rep.fields.get("acceptance_criteria", [])}) >= 2):
            problems.append("the answer copies the prompt's example instead of describing the request")
        if problems:
            cut = " (the answer was cut at max_tokens)" if finish_reason == "length" else ""
            raise DraftRejected("; ".join(problems) + cut)
        repairs = list(rep.repairs)
        points, source = self._points(rep.fields, project, repairs)
        data = {k: v for k, v in rep.fields.items() if k != "llm_points"}
        try:
            return TaskDraft(**data, story_points=points, story_points_source=source, model=model,
                             repaired=bool(repairs), repairs=repairs, attempts=attempts)
        except ValidationError as exc:
            raise DraftRejected(_reason(exc)) from None

    def generate(self, brief: str, project: ProjectContext, workspace_id: str) -> TaskDraft:
        """A validated draft for ``brief``; one retry with a stricter prompt when the first answer is invalid;
        :class:`DraftRejected` (reason of the last answer) when none is valid. Budget and size errors of a
        guarded backend propagate unchanged."""
        brief = self.check_brief(brief)
        backend = self._backend(workspace_id)
        messages = build_messages(brief, project)
        self.last_attempts = []
        error: DraftRejected | None = None
        for attempt in range(1 + max(0, self.retries)):
            t0 = time.perf_counter()
            out = self._chat(backend, messages, attempt)
            try:
                draft = self.draft_from_text(out.text, brief, project, out.model, out.finish_reason, attempt + 1)
                self.last_attempts.append(Attempt(out.text, out.finish_reason, [], time.perf_counter() - t0))
                return draft
            except DraftRejected as exc:
                error = exc
                self.last_attempts.append(Attempt(out.text, out.finish_reason, [exc.reason],
                                                  time.perf_counter() - t0))
                messages = build_messages(brief, project, retry_reason=exc.reason)
        assert error is not None
        n = len(self.last_attempts)
        raise DraftRejected(f"{error.reason} (after {n} attempt{'s' if n > 1 else ''})")


def _reason(exc: ValidationError) -> str:
    parts = []
    for e in exc.errors():
        loc = ".".join(str(x) for x in e.get("loc", ())) or "draft"
        parts.append(f"{loc}: {e.get('msg', 'invalid')}")
    return "; ".join(parts)
