"""Tables for the signal datasets (NAB anomaly series, QMSum meetings, Open Bandit logs) beyond the core model.

The core tables (metric_series, anomaly_windows, meetings, meeting_turns, notification_impressions) live in
:mod:`sunday.schema.tables`; this module only adds what those datasets carry on top, kept lossless and typed.
It must not import :mod:`sunday.schema.tables` (that module imports this one at its end).
"""

from __future__ import annotations

import pyarrow as pa

from sunday.schema.spec import Check, TableSpec, register

STR = pa.string()
F64 = pa.float64()
I64 = pa.int64()
# a turn range [start, end] (both inclusive, as in QMSum's relevant_text_span) into meeting_turns.turn_index
SPAN = pa.struct([("start", I64), ("end", I64)])
SPANS = pa.list_(SPAN)

QUERY_TYPES = ("general", "specific")

MEETING_QUERIES = register(TableSpec(
    name="meeting_queries",
    schema=pa.schema([
        ("query_id", STR), ("meeting_id", STR), ("query_type", STR), ("query_index", I64),
        ("query", STR), ("answer", STR), ("spans", SPANS),
    ]),
    key="query_id", required=("query_id", "meeting_id", "query_type", "query_index", "query"),
    checks=(
        Check("query_id", nonempty=True),
        Check("query_type", allowed=QUERY_TYPES),
        Check("query_index", min=0),
        Check("query", nonempty=True),
    ),
    description="a query about a meeting with its reference answer; spans are the relevant turn ranges "
                "(null for whole-meeting queries, which carry none)",
))

MEETING_TOPICS = register(TableSpec(
    name="meeting_topics",
    schema=pa.schema([
        ("topic_id", STR), ("meeting_id", STR), ("topic_index", I64), ("topic", STR), ("spans", SPANS),
    ]),
    key="topic_id", required=("topic_id", "meeting_id", "topic_index", "topic"),
    checks=(Check("topic_index", min=0),),
    description="a topic of a meeting, in agenda order, with the turn ranges that discuss it",
))

NAB_PROFILES = register(TableSpec(
    name="nab_profiles",
    schema=pa.schema([
        ("profile", STR), ("tp_weight", F64), ("fp_weight", F64), ("fn_weight", F64), ("tn_weight", F64),
    ]),
    key="profile", required=("profile", "tp_weight", "fp_weight", "fn_weight", "tn_weight"),
    checks=(
        Check("profile", nonempty=True),
        Check("tp_weight", min=0), Check("fp_weight", min=0), Check("fn_weight", min=0), Check("tn_weight", min=0),
    ),
    description="a NAB scoring profile: the weights of true/false positives and negatives",
))

BANDIT_ITEMS = register(TableSpec(
    name="bandit_items",
    schema=pa.schema([
        ("item_key", STR), ("workspace_id", STR), ("policy", STR), ("campaign", STR), ("item_id", I64),
        ("item_feature_0", F64), ("item_feature_1", STR), ("item_feature_2", STR), ("item_feature_3", STR),
    ]),
    key="item_key", required=("item_key", "policy", "campaign", "item_id"),
    checks=(Check("item_id", min=0),),
    description="an item that a bandit log can show: item_feature_0 is the standardised price, 1-3 are hashed "
                "categories. Hashes differ between logging policies, so items are keyed '<policy>:<campaign>:<id>'",
))
