"""Tables for the planning datasets (sprint delivery, delayed issues) beyond the core model.

Every source column is kept under its source name and typed, so a model can read the paper's features back unchanged.
Prediction times are kept as a column: ``pct_elapsed`` (0/30/50/80 % of a sprint) or ``prediction_time``
(creation/due/discussion). It must not import :mod:`sunday.schema.tables` (that module imports this one at its end).
"""

from __future__ import annotations

import pyarrow as pa

from sunday.schema.spec import Check, TableSpec, register

TS = pa.timestamp("us")
STR = pa.string()
F64 = pa.float64()
I64 = pa.int64()

# --- sprint delivery (Choetkiertikul et al., TSE 2017) -------------------------------------------------------------

# iteration features: counts are integers, velocities are story points (may be fractional in other projects)
ITERATION_COUNTS = (
    "planday", "no_issue_starttime", "no_issue_added", "no_issue_removed", "no_issuetodo", "no_issueinprogress",
    "no_issuedone", "no_admin", "no_teammember",
)
ITERATION_VELOCITIES = (
    "vel_diff", "vel_starttime", "vel_added", "vel_removed", "vel_todo", "vel_inprogress", "vel_done",
)
ISSUE_COUNTS = (
    "no_comment", "no_affectversion", "no_fixversion", "no_issuelink", "no_blocking", "no_blockedby",
    "no_fixversion_change", "no_priority_change", "no_des_change",
)
READABILITY = ("easy", "medium", "hard")

_SPRINT_KEYS = [("workspace_id", STR), ("project_id", STR), ("sprint_id", STR), ("pct_elapsed", I64),
                ("boardid", I64), ("sprintid", I64)]

SPRINT_SNAPSHOTS = register(TableSpec(
    name="sprint_snapshots",
    schema=pa.schema([
        ("snapshot_id", STR), *_SPRINT_KEYS, ("name", STR),
        *[(c, F64 if c in ITERATION_VELOCITIES else I64) for c in (
            "vel_diff", "planday", "no_issue_starttime", "vel_starttime", "no_issue_added", "vel_added",
            "no_issue_removed", "vel_removed", "no_issuetodo", "vel_todo", "no_issueinprogress", "vel_inprogress",
            "no_issuedone", "vel_done", "no_admin", "no_teammember")],
        ("source_order", I64),
    ]),
    key="snapshot_id",
    required=("snapshot_id", "workspace_id", "sprint_id", "pct_elapsed", "boardid", "sprintid", "vel_diff"),
    checks=(
        Check("snapshot_id", nonempty=True),
        Check("pct_elapsed", min=0, max=100),
        *[Check(c, min=0) for c in ITERATION_COUNTS],
        # vel_todo is not checked: the source has a few negative values (JIRA, MongoDB at 30-80 %)
        *[Check(c, min=0) for c in ("vel_starttime", "vel_added", "vel_removed", "vel_inprogress", "vel_done")],
    ),
    description="one sprint as seen at pct_elapsed % of its duration: the iteration features of that time and "
                "the target vel_diff (delivered minus committed story points; it differs between times in the "
                "source)",
))

SPRINT_ISSUES = register(TableSpec(
    name="sprint_issues",
    schema=pa.schema([
        ("issue_row_id", STR), *_SPRINT_KEYS, ("issue_index", I64), ("type", STR), ("priority", STR),
        *[(c, I64) for c in ISSUE_COUNTS], ("gunning_fog", STR),
    ]),
    key="issue_row_id",
    required=("issue_row_id", "workspace_id", "sprint_id", "pct_elapsed", "issue_index"),
    checks=(
        Check("pct_elapsed", min=0, max=100),
        Check("issue_index", min=0),
        *[Check(c, min=0) for c in ISSUE_COUNTS],
        Check("gunning_fog", allowed=READABILITY),
    ),
    description="one issue of a sprint as seen at pct_elapsed %; the source has no issue key, so issue_index is "
                "the issue's position among its sprint's rows in that file (rows of different times line up by "
                "position; the files keep the same sprint order at every time)",
))

ISSUE_LINKS = register(TableSpec(
    name="issue_links",
    schema=pa.schema([
        ("link_id", STR), ("workspace_id", STR), ("pct_elapsed", I64), ("idissuelink", I64), ("issuekey", STR),
        ("linkedIssueKey", STR), ("name", STR),
    ]),
    key="link_id", required=("link_id", "workspace_id", "issuekey", "linkedIssueKey"),
    checks=(Check("pct_elapsed", min=0, max=100), Check("issuekey", nonempty=True)),
    description="a typed link between two issue keys (blocks, duplicates, ...); pct_elapsed is null when the "
                "link files of every prediction time are identical and stored once",
))

# --- delayed issues (Choetkiertikul et al., EMSE 2017) -------------------------------------------------------------

PREDICTION_TIMES = ("creation", "due", "discussion")
DELAY_COUNTS = (
    "discussion", "repetition", "workload", "no_comment", "no_priority_change", "no_fixversion",
    "no_fixversion_change", "no_issuelink", "no_blocking", "no_blockedby", "no_affectversion", "no_des_change",
)
TOPIC_SIZES = (10, 100, 200, 300, 400)

DELAY_SNAPSHOTS = register(TableSpec(
    name="delay_snapshots",
    schema=pa.schema([
        ("snapshot_id", STR), ("task_id", STR), ("workspace_id", STR), ("project", STR), ("prediction_time", STR),
        ("issuekey", STR), ("delaydays", I64), ("openeddate", TS), ("type", STR),
        ("discussion", I64), ("repetition", I64), ("perofdelay", F64), ("workload", I64), ("priority", STR),
        ("no_comment", I64), ("no_priority_change", I64), ("no_fixversion", I64), ("no_fixversion_change", I64),
        ("no_issuelink", I64), ("no_blocking", I64), ("no_blockedby", I64), ("no_affectversion", I64),
        ("reporterrep", F64), ("no_des_change", I64), ("ProgressTime", I64), ("RemainingDay", I64),
        *[(f"topic_{k}", I64) for k in TOPIC_SIZES],
        ("source_order", I64),
    ]),
    key="snapshot_id",
    required=("snapshot_id", "task_id", "workspace_id", "prediction_time", "issuekey", "delaydays", "openeddate"),
    checks=(
        Check("snapshot_id", nonempty=True),
        Check("prediction_time", allowed=PREDICTION_TIMES),
        Check("delaydays", min=0),
        *[Check(c, min=0) for c in DELAY_COUNTS],
        # perofdelay is a percentage, but the 'due' files hold values up to 1200: only the lower bound is checked
        Check("perofdelay", min=0),
        Check("reporterrep", min=0, max=1),
        # ProgressTime and RemainingDay are not checked: two JIRA rows at 'discussion' have negative ProgressTime,
        # and an overdue issue could have a negative RemainingDay
        *[Check(f"topic_{k}", min=1, max=k) for k in TOPIC_SIZES],
    ),
    description="one issue with a due date as seen at a prediction time: the risk factors of that time, the target "
                "delaydays (0 = resolved on time), the raw tracker priority and the LDA topic ids",
))
