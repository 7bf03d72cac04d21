"""Meeting outcomes: decisions, action items (assignee, due date), follow-up, and action items as task events.

Detection is rule based, per tidied sentence (:func:`~sunday.nlp.meetings.turn_sentences`):

* **action items**: commitments and assignments -- "I'll send ...", "I will / I'm going to / I can take ...",
  "Anna will / should / needs to ...", "Anna, can you ...", "we need to / we should / we have to / let's ...",
  "someone should ...", "action item: ...", "to do: ..."; questions and hedges ("I'll be honest", "I'll say") are
  not items. Assignee: the participant named in the sentence, else the speaker of a first-person commitment
  (``assignee_source="named"``), else ``assign(item_text) -> user_id | None`` (``"predicted"``, the assignment
  model's hook), else none. Due date: :func:`parse_due_date` on the sentence, relative to the meeting date.
* **decisions**: "we decided / agreed / settled on / concluded ...", "we'll go with ...", "let's go with / stick
  with ...", "the decision is ...", "decision: ...".
* **follow-up**: needed when an item has no assignee, an open question was left ("should we ...?", "who will
  ...?"), or someone deferred ("next meeting", "follow up", "get back to", "circle back", "to be decided").

A capable (remote) LLM may add items through :func:`llm_extract`: JSON per chunk of turns, validated against
:class:`LLMExtraction`; malformed output is dropped with a note, never passed on.

:func:`action_item_events` turns a summary's action items into ``task_events`` rows (a ``created`` event per
item, plus an ``assigned`` one when it has an assignee) valid under the platform's event schema, with task and
event ids derived from (workspace, meeting, item text), so ingesting the same summary twice creates no duplicate.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import re
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Callable, Literal, Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationError as PydanticValidationError, field_validator

from sunday.nlp.passages import Turn, clean_text

if TYPE_CHECKING:  # pragma: no cover
    from sunday.nlp.llm import LLM

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MONTHS = {m.lower(): i for i, m in enumerate(calendar.month_name) if m}
MONTHS.update({m.lower(): i for i, m in enumerate(calendar.month_abbr) if m})
NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
           "eight": 8, "nine": 9, "ten": 10, "a couple of": 2, "couple of": 2, "a few": 3, "few": 3}
TITLE_CHARS = 120
Day = date  # the type, for models with a field named ``date``


# -- data model ----------------------------------------------------------------------------------------------------
class Participant(BaseModel):
    model_config = ConfigDict(extra="ignore")

    user_id: str
    name: str | None = None


class MeetingMeta(BaseModel):
    """What :func:`~sunday.nlp.meetings.summarize_meeting` knows about a meeting. ``participants``: user ids, or
    ``{user_id, name}`` (a speaker or a name in the text is matched to a name, first name or id)."""

    model_config = ConfigDict(extra="ignore")

    meeting_id: str = Field(..., min_length=1, max_length=200)
    date: Day | None = None  # the meeting day: due dates are relative to it (today, UTC, when missing)
    workspace_id: str | None = Field(None, max_length=200)
    project_id: str | None = Field(None, max_length=200)
    participants: list[Participant] = Field(default_factory=list)

    @field_validator("date", mode="before")
    @classmethod
    def _date(cls, v: Any) -> Any:
        if isinstance(v, datetime):
            return v.date()
        if isinstance(v, str) and len(v) > 10:
            return datetime.fromisoformat(v.replace("Z", "+00:00")).date()
        return v

    @field_validator("participants", mode="before")
    @classmethod
    def _participants(cls, v: Any) -> Any:
        if v is None:
            return []
        return [{"user_id": p, "name": p} if isinstance(p, str) else p for p in v]

    @property
    def day(self) -> Day:
        return self.date or datetime.now(timezone.utc).date()


class Decision(BaseModel):
    text: str
    evidence: list[int] = Field(default_factory=list)  # turn indices
    speaker: str | None = None
    source: Literal["rules", "llm"] = "rules"


class ActionItem(BaseModel):
    text: str  # the sentence it came from (tidied)
    title: str  # short imperative form ("Send the slides to Anna by Friday")
    assignee: str | None = None  # a participant's user id (the name when the meeting lists no participants)
    assignee_source: Literal["named", "predicted"] | None = None
    due_date: date | None = None
    due_text: str | None = None  # the phrase the due date was read from
    evidence: int | None = None  # turn index
    speaker: str | None = None
    source: Literal["rules", "llm"] = "rules"


class MeetingSummary(BaseModel):
    meeting_id: str
    date: Day | None = None
    decisions: list[Decision] = Field(default_factory=list)
    action_items: list[ActionItem] = Field(default_factory=list)
    discussion_summary: str = ""
    follow_up_needed: bool = False
    follow_up_reasons: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


# -- due dates -----------------------------------------------------------------------------------------------------
_WD = "|".join(WEEKDAYS)
_MON = "|".join(sorted(MONTHS, key=len, reverse=True))
_NUM = r"\d+|" + "|".join(sorted((re.escape(k) for k in NUMBERS), key=len, reverse=True))
_DUE_PATTERNS: list[tuple[str, re.Pattern]] = [
    ("iso", re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")),
    ("day_after", re.compile(r"\bday after tomorrow\b", re.I)),
    ("tomorrow", re.compile(r"\btomorrow\b", re.I)),
    ("today", re.compile(r"\b(today|tonight|end of (the )?day|eod)\b", re.I)),
    ("in_n", re.compile(rf"\b(?:in|within)\s+(?:the\s+next\s+)?({_NUM})\s+(day|week|month)s?\b", re.I)),
    ("month_day", re.compile(rf"\b({_MON})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?\b", re.I)),
    ("day_month", re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?({_MON})\b", re.I)),
    ("weekday", re.compile(rf"\b(next|this|coming)?\s*({_WD})\b", re.I)),
    ("end_week", re.compile(r"\b(end of (the |this )?week|this week)\b", re.I)),
    ("next_week", re.compile(r"\b(end of )?next week\b", re.I)),
    ("end_month", re.compile(r"\b(end of (the |this )?month)\b", re.I)),
    ("next_month", re.compile(r"\b(end of )?next month\b", re.I)),
    ("end_year", re.compile(r"\bend of (the |this )?year\b", re.I)),
]


def _month_end(y: int, m: int) -> date:
    return date(y, m, calendar.monthrange(y, m)[1])


def _add_months(d: date, n: int) -> date:
    m = d.month - 1 + n
    y, m = d.year + m // 12, m % 12 + 1
    return date(y, m, min(d.day, calendar.monthrange(y, m)[1]))


def _number(s: str) -> int:
    s = s.lower().strip()
    return int(s) if s.isdigit() else NUMBERS[s]


def parse_due_date(text: str, today: date) -> tuple[date | None, str | None]:
    """The due date a sentence states, relative to the meeting day ``today``, with the phrase it came from.

    Rules: "today"/"end of day" -> today; "tomorrow"; "day after tomorrow"; "in/within N days|weeks|months" (N a
    number or "two", "a couple of", ...); "March 3" / "3rd of March" / ISO dates (a month-day before the meeting
    day means next year); "Friday"/"this Friday"/"by Friday" -> the next Friday after the meeting day; "next
    Friday" -> the Friday of the following week; "this week"/"end of the week" -> this week's Friday; "next week"
    -> next week's Friday; "end of the month" -> its last day; "next month" -> the last day of next month; "end
    of the year" -> 31 December. The earliest phrase in the sentence wins. None when nothing matches."""
    found: list[tuple[int, date, str]] = []
    for kind, pat in _DUE_PATTERNS:
        for m in pat.finditer(text):
            d = _resolve(kind, m, today)
            if d is not None:
                found.append((m.start(), d, m.group(0).strip()))
    if not found:
        return None, None
    found.sort(key=lambda x: (x[0], -len(x[2])))
    return found[0][1], found[0][2]


def _resolve(kind: str, m: re.Match, today: date) -> date | None:
    try:
        if kind == "iso":
            return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        if kind == "today":
            return today
        if kind == "tomorrow":
            return today + timedelta(days=1)
        if kind == "day_after":
            return today + timedelta(days=2)
        if kind == "in_n":
            n, unit = _number(m.group(1)), m.group(2).lower()
            return _add_months(today, n) if unit == "month" else today + timedelta(days=n * (7 if unit == "week"
                                                                                               else 1))
        if kind in ("month_day", "day_month"):
            mon, day = (m.group(1), m.group(2)) if kind == "month_day" else (m.group(2), m.group(1))
            if mon.lower() == "may" and kind == "month_day" and not re.match(r"May\b", m.group(0)):
                return None  # "may 3" in lower case is more likely the verb
            d = date(today.year, MONTHS[mon.lower()], int(day))
            return d if d >= today else date(today.year + 1, d.month, d.day)
        if kind == "weekday":
            target = WEEKDAYS.index(m.group(2).lower())
            ahead = (target - today.weekday()) % 7 or 7
            d = today + timedelta(days=ahead)
            if (m.group(1) or "").lower() == "next" and d.isocalendar()[1] == today.isocalendar()[1]:
                d += timedelta(days=7)
            return d
        if kind == "end_week":
            return today + timedelta(days=max(0, 4 - today.weekday()))
        if kind == "next_week":
            return today + timedelta(days=7 - today.weekday() + 4)
        if kind == "end_month":
            return _month_end(today.year, today.month)
        if kind == "next_month":
            n = _add_months(today.replace(day=1), 1)
            return _month_end(n.year, n.month)
        if kind == "end_year":
            return date(today.year, 12, 31)
    except (ValueError, KeyError):
        return None
    return None


# -- participants --------------------------------------------------------------------------------------------------
class Roster:
    """Participants by lower-cased id, full name and first name (first names only when unambiguous)."""

    def __init__(self, participants: Sequence[Participant], speakers: Sequence[str] = ()):
        self.participants = list(participants)
        self.by_key: dict[str, str] = {}
        firsts: dict[str, set[str]] = {}
        for p in self.participants:
            self.by_key[p.user_id.lower()] = p.user_id
            if p.name:
                self.by_key[p.name.lower()] = p.user_id
                firsts.setdefault(p.name.split()[0].lower(), set()).add(p.user_id)
        for first, ids in firsts.items():
            if len(ids) == 1:
                self.by_key.setdefault(first, next(iter(ids)))
        self.speakers = [s for s in speakers if s]

    def resolve(self, name: str | None) -> str | None:
        """A name or speaker label -> user id (the name itself when the meeting lists no participants and the
        name is one of its speakers or looks like a person's name)."""
        if not name:
            return None
        key = name.strip().lower()
        if not self.participants:
            return name.strip()
        if key in self.by_key:
            return self.by_key[key]
        first = key.split()[0] if key.split() else key
        return self.by_key.get(first)

    def names(self) -> list[str]:
        out = set()
        for p in self.participants:
            out.add(p.user_id)
            if p.name:
                out.add(p.name)
                out.add(p.name.split()[0])
        out.update(self.speakers)
        for s in self.speakers:
            if s.split():
                out.add(s.split()[0])
        return sorted((n for n in out if n and n[0].isupper() and len(n) > 1), key=len, reverse=True)


# -- detection -----------------------------------------------------------------------------------------------------
_HEDGE = re.compile(r"\b(?:I'll|I will|I'm going to|I am going to)\s+(?:be honest|say|admit|tell you|bet|guess|"
                    r"just say|be brief|try to be|stop|leave it there|let you)\b", re.I)
_SELF = re.compile(r"\b(?:I'll|I will|I'm going to|I am going to|I can take|I'll take|let me)\s+(.+)", re.I)
_TEAM = re.compile(r"\b(?:we need to|we should|we have to|we've got to|we must|we'll need to|we will need to|"
                   r"someone (?:should|needs to|has to)|somebody (?:should|needs to)|let's|let us)\s+(.+)", re.I)
_EXPLICIT = re.compile(r"\b(?:action items?|to-?do)\s*[:\-]\s*(.+)", re.I)
_DECISION = re.compile(r"\b(?:we|they|the (?:group|team|committee|board)|everyone|everybody|all)\s+(?:have\s+|has\s+)?"
                       r"(?:decided|agreed|settled on|concluded|chose|approved)\b|\b(?:we'll|we will|let's|let us)\s+"
                       r"(?:go with|stick with|stay with|keep)\b|\bthe decision (?:is|was)\b|\bdecision\s*:|\b(?:it's|it is)"
                       r" (?:decided|agreed)\b|\bwe(?:'re| are) going (?:to go )?with\b", re.I)
_QUESTION_OPEN = re.compile(r"\b(?:should we|do we (?:need|want|have)|are we going to|who (?:will|is going to|should|"
                            r"can)|when (?:will|should|do|can)|what about|have we decided|how (?:do|should|will) we)\b",
                            re.I)
_DEFER = re.compile(r"\b(?:next meeting|follow[- ]up|follow up on|get back to (?:you|me|us|them)|circle back|"
                    r"revisit|to be decided|tbd|take (?:it|this) offline|come back to (?:this|that|it))\b", re.I)
_LEAD_WORDS = re.compile(r"^(?:then|also|maybe|probably|definitely|just|first|and|so)\s+", re.I)


def _title(rest: str) -> str:
    rest = _LEAD_WORDS.sub("", rest.strip(" ,.;:"))
    rest = re.sub(r"^(?:also|then|maybe|just)\s+", "", rest, flags=re.I).strip()
    if not rest:
        return ""
    t = rest[0].upper() + rest[1:]
    t = t.rstrip(" .!?")
    return t if len(t) <= TITLE_CHARS else t[:TITLE_CHARS - 1].rsplit(" ", 1)[0] + "\u2026"


def _named_pattern(names: Sequence[str]) -> re.Pattern | None:
    if not names:
        return None
    alt = "|".join(re.escape(n) for n in names)
    return re.compile(rf"(?:^|[\s,;])({alt})(?:,\s*(?:can|could|would|will) you|\s+(?:will|'ll|should|needs to|has to|"
                      rf"is going to|can|could)|,\s*(?:please\s+)?(?=[a-z]))\s*(.+)", re.I if False else 0)


def detect_items(turns: Sequence[Turn], meta: MeetingMeta, assign: Callable[[str], str | None] | None = None,
                 notes: list[str] | None = None) -> tuple[list[Decision], list[ActionItem]]:
    """Rule-based decisions and action items of a transcript, in transcript order (duplicates merged)."""
    from sunday.nlp.meetings import turn_sentences

    notes = notes if notes is not None else []
    speakers = list(dict.fromkeys(t.speaker for t in turns if t.speaker))
    roster = Roster(meta.participants, speakers)
    named = _named_pattern(roster.names())
    decisions: list[Decision] = []
    items: list[ActionItem] = []
    for s in turn_sentences(turns, None, min_words=3):
        text = s.text
        if _DECISION.search(text) and not text.endswith("?"):
            decisions.append(Decision(text=text, evidence=[s.turn], speaker=s.speaker or None))
            if not re.search(r"\b(?:I'll|I will|will|need to|has to|should)\b", text.split(",")[-1], re.I):
                continue
        if text.endswith("?") and not re.search(r"\b(?:can|could|would) you\b", text, re.I):
            continue
        item = _item(text, s.turn, s.speaker, roster, named)
        if item is not None:
            item.due_date, item.due_text = parse_due_date(text, meta.day)
            items.append(item)
    items = merge_items([], items)
    decisions = merge_items([], decisions)
    for item in items:
        _predict(item, assign, notes)
    return decisions, items


def _item(text: str, turn: int, speaker: str, roster: Roster, named: re.Pattern | None) -> ActionItem | None:
    if named is not None:
        m = named.search(text)
        if m and (not speaker or m.group(1).lower() != speaker.lower()):
            who = roster.resolve(m.group(1))
            if who is not None:
                return ActionItem(text=text, title=_title(m.group(2)), assignee=who, assignee_source="named",
                                  evidence=turn, speaker=speaker or None)
    m = _EXPLICIT.search(text)
    if m:
        return ActionItem(text=text, title=_title(m.group(1)), evidence=turn, speaker=speaker or None)
    if not _HEDGE.search(text):
        m = _SELF.search(text)
        if m and len(m.group(1).split()) >= 2 and not re.match(r"(?:think|guess|mean|say|see|know)\b", m.group(1),
                                                                  re.I):
            who = roster.resolve(speaker) if speaker else None
            return ActionItem(text=text, title=_title(m.group(1)), assignee=who,
                              assignee_source="named" if who else None, evidence=turn, speaker=speaker or None)
    m = _TEAM.search(text)
    if m and not _DEFER.search(text) and len(m.group(1).split()) >= 2 and not re.match(r"(?:see|think|say|talk|discuss|move on|start|begin|get started|go on|"
                                                              r"continue|wrap up|stop|take a (?:look|break))\b",
                                                              m.group(1), re.I):
        return ActionItem(text=text, title=_title(m.group(1)), evidence=turn, speaker=speaker or None)
    return None


def _predict(item: ActionItem, assign: Callable[[str], str | None] | None, notes: list[str]) -> None:
    if item.assignee is not None or assign is None:
        return
    try:
        uid = assign(item.title or item.text)
    except Exception as exc:  # noqa: BLE001 - a failing model must not lose the summary
        notes.append(f"assignee prediction failed for '{item.title[:40]}': {type(exc).__name__}: {exc}")
        return
    if uid:
        item.assignee, item.assignee_source = str(uid), "predicted"


def _tokens(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 2}


def merge_items(base: list, extra: list, threshold: float = 0.6) -> list:
    """``base`` plus the items of ``extra`` whose text is not a near duplicate (token Jaccard >= ``threshold``)
    of one already kept."""
    out = list(base)
    for item in extra:
        t = _tokens(item.text)
        if any(len(t & _tokens(o.text)) / max(1, len(t | _tokens(o.text))) >= threshold for o in out):
            continue
        out.append(item)
    return out


def follow_up(turns: Sequence[Turn], items: Sequence[ActionItem]) -> tuple[bool, list[str]]:
    """Whether the meeting needs a follow-up, and why."""
    reasons = []
    unassigned = [i for i in items if i.assignee is None]
    if unassigned:
        reasons.append(f"{len(unassigned)} action item(s) without an assignee")
    open_q, deferred = [], []
    for i, t in enumerate(turns):
        for sent in re.split(r"(?<=[.!?])\s+", clean_text(t.content)):
            if sent.endswith("?") and _QUESTION_OPEN.search(sent):
                open_q.append(i)
            elif _DEFER.search(sent):
                deferred.append(i)
    if open_q:
        reasons.append(f"{len(open_q)} open question(s), e.g. turn {open_q[-1]}")
    if deferred:
        reasons.append(f"deferred to a follow-up ({len(deferred)} mention(s) such as 'next meeting'), e.g. turn "
                       f"{deferred[0]}")
    return bool(reasons), reasons


# -- LLM extraction (capable remote models) ------------------------------------------------------------------------
class LLMActionItem(BaseModel):
    model_config = ConfigDict(extra="ignore")

    text: str = Field(..., min_length=3, max_length=500)
    assignee: str | None = Field(None, max_length=200)
    due: str | None = Field(None, max_length=100)
    turn: int | None = Field(None, ge=0)


class LLMDecision(BaseModel):
    model_config = ConfigDict(extra="ignore")

    text: str = Field(..., min_length=3, max_length=500)
    turn: int | None = Field(None, ge=0)


class LLMExtraction(BaseModel):
    model_config = ConfigDict(extra="ignore")

    decisions: list[LLMDecision] = Field(default_factory=list, max_length=50)
    action_items: list[LLMActionItem] = Field(default_factory=list, max_length=50)


EXTRACT_PROMPT = ("From the meeting transcript below, list the decisions made and the action items agreed. "
                  "Answer with JSON only: {\"decisions\": [{\"text\": str, \"turn\": int}], \"action_items\": "
                  "[{\"text\": str, \"assignee\": str|null, \"due\": str|null, \"turn\": int}]}. Use the [turn] "
                  "numbers shown; assignee is a speaker or participant name only when the transcript names who "
                  "does it; due is the deadline phrase as said (e.g. \"by Friday\"). Empty lists if none.\n\n")


def parse_extraction(text: str) -> LLMExtraction:
    """The JSON object in an LLM answer (code fences allowed), validated; ValueError when malformed."""
    m = re.search(r"\{.*\}", text, re.S)
    if not m:
        raise ValueError("no JSON object in the answer")
    try:
        return LLMExtraction.model_validate(json.loads(m.group(0)))
    except (json.JSONDecodeError, PydanticValidationError) as exc:
        raise ValueError(f"malformed extraction: {str(exc).splitlines()[0]}") from None


def llm_extract(turns: Sequence[Turn], meta: MeetingMeta, llm: "LLM", chunk_words: int,
                assign: Callable[[str], str | None] | None = None, notes: list[str] | None = None,
                max_tokens: int = 512) -> tuple[list[Decision], list[ActionItem]]:
    """Decisions and action items from an LLM, chunk by chunk of turns; a malformed chunk answer is skipped with
    a note. Assignees must resolve to a participant (or speaker); turn numbers outside the chunk are dropped."""
    from sunday.nlp.meetings import chunk_turns

    notes = notes if notes is not None else []
    speakers = list(dict.fromkeys(t.speaker for t in turns if t.speaker))
    roster = Roster(meta.participants, speakers)
    decisions: list[Decision] = []
    items: list[ActionItem] = []
    chunks = chunk_turns(turns, chunk_words)
    for k, (first, text) in enumerate(chunks):
        try:
            out = llm.chat([{"role": "user", "content": EXTRACT_PROMPT + text}], max_tokens=max_tokens,
                           temperature=0.0)
            ext = parse_extraction(out.text)
        except ValueError as exc:
            notes.append(f"LLM extraction of chunk {k + 1}/{len(chunks)} ignored: {exc}")
            continue
        except Exception as exc:  # noqa: BLE001 - the rule-based result stands when the backend fails
            notes.append(f"LLM extraction of chunk {k + 1}/{len(chunks)} failed: {type(exc).__name__}: {exc}")
            continue
        last = first + text.count("\n") + 10_000  # turn numbers must lie in the transcript
        for d in ext.decisions:
            turn = d.turn if d.turn is not None and first <= d.turn < min(last, len(turns)) else None
            decisions.append(Decision(text=d.text.strip(), evidence=[turn] if turn is not None else [],
                                      source="llm"))
        for a in ext.action_items:
            turn = a.turn if a.turn is not None and first <= a.turn < len(turns) else None
            who = roster.resolve(a.assignee) if a.assignee else None
            if who is not None and roster.participants == [] and a.assignee not in speakers:
                who = None  # no roster to check an invented name against
            due, due_text = parse_due_date(a.due or a.text, meta.day)
            item = ActionItem(text=a.text.strip(), title=_title(a.text), assignee=who,
                              assignee_source="named" if who else None, due_date=due, due_text=due_text,
                              evidence=turn, speaker=turns[turn].speaker or None if turn is not None else None,
                              source="llm")
            _predict(item, assign, notes)
            items.append(item)
    return decisions, items


# -- action items -> task events -----------------------------------------------------------------------------------
def task_id_for(meta: MeetingMeta, item: ActionItem) -> str:
    """Deterministic task id of an action item: a hash of (workspace, meeting, normalised item text)."""
    key = "\x1f".join([meta.workspace_id or "", meta.meeting_id, " ".join(sorted(_tokens(item.text)))
                       or item.text.lower()])
    return "mtg-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:20]


def item_description(item: ActionItem, meta: MeetingMeta) -> str:
    lines = [item.text]
    if item.due_date:
        lines.append(f"Due: {item.due_date.isoformat()} (\"{item.due_text}\")")
    where = f"meeting {meta.meeting_id}" + (f" on {meta.date.isoformat()}" if meta.date else "")
    lines.append(f"Source: {where}" + (f", turn {item.evidence}" if item.evidence is not None else "")
                 + (f", said by {item.speaker}" if item.speaker else ""))
    return "\n".join(lines)


def action_item_events(summary: MeetingSummary, meta: Any, now: datetime | None = None) -> list[dict]:
    """``task_events`` rows for the summary's action items: a ``created`` event per item (``text`` = title, blank
    line, description with the due date and the source meeting) and an ``assigned`` event when it has an
    assignee; each checked with :func:`~sunday.features.streaming.validate_event`. Ids are deterministic (task
    id from workspace + meeting + item text, event id from task id + type), so re-ingesting is idempotent.
    ``meta`` must carry ``workspace_id``. Timestamps: ``now`` (UTC, default the current time), ISO strings."""
    from sunday.features.streaming import validate_event

    meta = meta if isinstance(meta, MeetingMeta) else MeetingMeta.model_validate(dict(meta))
    if not meta.workspace_id:
        raise ValueError("meta.workspace_id is required to turn action items into task events")
    now = now or datetime.now(timezone.utc)
    if now.tzinfo is not None:
        now = now.astimezone(timezone.utc).replace(tzinfo=None)
    stamp = now.isoformat(timespec="seconds")
    events: list[dict] = []
    seen: set[str] = set()
    for item in summary.action_items:
        task_id = task_id_for(meta, item)
        if task_id in seen:
            continue
        seen.add(task_id)
        base = {"workspace_id": meta.workspace_id, "project_id": meta.project_id, "task_id": task_id,
                "timestamp": stamp}
        created = {**base, "event_id": f"{task_id}:created", "event_type": "created",
                   "text": f"{item.title or item.text}\n\n{item_description(item, meta)}"}
        batch = [created]
        if item.assignee:
            batch.append({**base, "event_id": f"{task_id}:assigned", "event_type": "assigned",
                          "user_id": item.assignee, "text": f"assignee {item.assignee_source} from meeting "
                                                            f"{meta.meeting_id}"})
        for e in batch:
            e = {k: v for k, v in e.items() if v is not None}
            validate_event(e)
            events.append(e)
    return events


def action_item_tasks(summary: MeetingSummary, meta: Any) -> list[dict]:
    """``tasks`` table rows (title, description, assignee, due date, ``source_key`` = the meeting) for the items,
    validated against the tasks schema; same task ids as :func:`action_item_events`."""
    from sunday.schema import validate

    meta = meta if isinstance(meta, MeetingMeta) else MeetingMeta.model_validate(dict(meta))
    rows = []
    for item in summary.action_items:
        rows.append({"task_id": task_id_for(meta, item), "workspace_id": meta.workspace_id or "",
                     "project_id": meta.project_id, "title": item.title or item.text,
                     "description": item_description(item, meta), "status": "todo", "assignee_id": item.assignee,
                     "due_date": datetime.combine(item.due_date, datetime.min.time()) if item.due_date else None,
                     "source_key": f"meeting:{meta.meeting_id}"})
    rows = list({r["task_id"]: r for r in rows}.values())
    if rows:
        validate("tasks", rows)
    return rows
