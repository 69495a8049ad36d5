"""The OpenAPI 3.1 document of the JSON API (served at ``/api/openapi.json``).

Written by hand as a dict — no generator dependency. ``tests/test_api.py`` checks that
its paths are exactly the ``/api/v1`` routes and validates real responses against the
schemas below, so the document cannot drift from the code unnoticed.
"""

from __future__ import annotations

from typing import Any

from analysis.bradley_terry import TIE_MODELS
from analysis.frames import SCALES, SHOWN_LEFT_VALUES
from study_app.export import VIEWS
from study_app.livestats import RULE_FIELDS
from study_app.models import ROLES, SESSION_STATUSES, STUDY_STATUSES

VERSION = "1.0.0"
Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def obj(properties: dict[str, Schema], required: list[str] | None = None, **extra: Any) -> Schema:
    """An object whose listed properties are all required unless ``required`` says otherwise."""
    return {"type": "object", "properties": properties,
            "required": list(properties) if required is None else required, **extra}


STRING, INTEGER, NUMBER, BOOLEAN = ({"type": t} for t in ("string", "integer", "number", "boolean"))
TIME: Schema = {"type": "string", "format": "date-time"}
INT_OR_NULL, NUMBER_OR_NULL, STRING_OR_NULL = nullable(INTEGER), nullable(NUMBER), nullable(STRING)

# --------------------------------------------------------------------------- schemas
SESSION_COUNTS = obj({s: {"type": "integer", "minimum": 0} for s in SESSION_STATUSES})

STUDY = obj({
    "slug": STRING, "name": STRING, "method": {"type": "string", "enum": list(SCALES)},
    "kind": {"type": "string", "enum": ["pairwise", "ratings"]},
    "status": {"type": "string", "enum": list(STUDY_STATUSES)}, "panel": STRING, "created_at": TIME,
    "organizer": {**STRING_OR_NULL, "description": "Email of the owning organizer."},
    "counts": obj({"sessions": SESSION_COUNTS, "trials": INTEGER,
                   "votes": {"type": "integer", "description": "Answered trials."}}),
})

STUDY_DETAIL: Schema = {"allOf": [STUDY, obj({
    "settings": obj({
        "design": STRING_OR_NULL, "k": INT_OR_NULL, "votes_per_item": INT_OR_NULL,
        "trials_per_session": INT_OR_NULL, "repeats_per_session": INT_OR_NULL,
        "gold_per_session": INT_OR_NULL, "max_sessions_per_rater": INT_OR_NULL, "seed": INT_OR_NULL,
        "language": STRING_OR_NULL, "reasons": nullable({"type": "array", "items": STRING}),
    }, description="The design settings the study runs with (from its validated manifest)."),
    "conditions": {"type": "array", "items": obj({
        "key": STRING, "label": STRING_OR_NULL, "role": {"type": "string", "enum": list(ROLES)},
        "position": INTEGER})},
    "contents": {"type": "integer", "description": "Number of contents (source clips)."},
    "links": obj({"progress": STRING, "votes": STRING, "leaderboard": STRING}),
})]}

PROGRESS = obj({
    "study": STRING, "status": STRING, "method": STRING, "pairwise": BOOLEAN,
    "conditions": {"type": "array", "items": STRING},
    "cells": {"type": "array", "description": "Main votes against target, per condition pair (pairwise) "
              "or per stimulus (ratings).",
              "items": {"anyOf": [obj({"cond_a": STRING, "cond_b": STRING, "target": INTEGER, "votes": INTEGER}),
                                  obj({"content": STRING, "cond": STRING, "target": INTEGER, "votes": INTEGER})]}},
    "votes": INTEGER, "target": INTEGER, "percent": NUMBER,
    "sessions": obj({**{s: INTEGER for s in SESSION_STATUSES}, "started": INTEGER,
                     "median_duration_s": NUMBER_OR_NULL}),
    "pace": obj({"last_hour": INTEGER, "hourly_24h": {"type": "array", "items": INTEGER, "minItems": 24,
                                                      "maxItems": 24, "description": "Oldest hour first."}}),
    "flagged": obj({"stalled": INTEGER, "hidden": INTEGER, "recent": {"type": "array", "items": obj({
        "session": INTEGER, "position": INTEGER, "stalls": INTEGER, "hidden_ms": INT_OR_NULL,
        "answered_at": TIME})}}),
    "generated_at": TIME,
})

_VOTE_COMMON: dict[str, Schema] = {
    "study": STRING, "rater": STRING, "session": STRING,
    "trial": {"type": "integer", "description": "Unique per answered trial: dedupe on it when polling with since."},
    "content": STRING, "scale": {"type": "string", "enum": list(SCALES)},
    "repeat_of": {**INT_OR_NULL, "description": "Trial this consistency repeat re-asks."},
    "gold_expected": {**INT_OR_NULL, "description": "The known answer of a gold trial."},
    "answered_at": TIME, "watch_ms": INT_OR_NULL, "stalls": INT_OR_NULL,
    "answer_ms": INT_OR_NULL, "plays": INT_OR_NULL, "max_drift_ms": NUMBER_OR_NULL, "hidden_ms": INT_OR_NULL,
    "stalled": BOOLEAN, "kind": {"type": "string", "enum": ["main", "repeat", "gold"]}, "position": INTEGER,
    "gold_tolerance": NUMBER_OR_NULL,
    "window_w": INT_OR_NULL, "window_h": INT_OR_NULL,
    "display_scale": {**NUMBER_OR_NULL, "description": "Smallest scale the clips were shown at (1 = native size)."},
    "display_view": {**nullable({"type": "string", "enum": list(VIEWS)}),
                     "description": "How the clips were laid out: side-by-side, toggle (one at a time, switched by "
                                    "the rater), scaled (side by side, shrunk) or single."},
}
_VOTE_REQUIRED = ["study", "rater", "session", "trial", "content", "scale", "answered_at"]
PAIRWISE_VOTE = obj({
    **_VOTE_COMMON, "cond_a": STRING, "cond_b": STRING,
    "pref": {"type": "integer", "description": "Positive: cond_a preferred; range set by the scale."},
    "reason": STRING_OR_NULL, "shown_left": {"type": "string", "enum": list(SHOWN_LEFT_VALUES)},
}, [*_VOTE_REQUIRED, "cond_a", "cond_b", "pref"], description="One answered pairwise trial (DESIGN.md tidy frame).")
RATING_VOTE = obj({**_VOTE_COMMON, "cond": STRING, "score": INTEGER},
                  [*_VOTE_REQUIRED, "cond", "score"], description="One answered single-stimulus trial.")

VOTES_PAGE = obj({
    "study": STRING, "kind": {"type": "string", "enum": ["pairwise", "ratings"]},
    "total": {"type": "integer", "description": "Votes matching since, over all pages."},
    "offset": INTEGER, "limit": INTEGER, "next_offset": INT_OR_NULL,
    "votes": {"type": "array", "items": {"anyOf": [ref("PairwiseVote"), ref("RatingVote")]}},
})

LEADERBOARD_ROW = obj({
    "rank": INTEGER, "condition": STRING, "label": STRING_OR_NULL,
    "role": nullable({"type": "string", "enum": list(ROLES)}),
    "score": {"type": "number", "description": "Bradley–Terry log-strength, or (D)MOS."},
    "se": NUMBER_OR_NULL, "ci_low": NUMBER, "ci_high": NUMBER, "n_votes": INT_OR_NULL,
    "group": {"type": "integer",
              "description": "Tie group: conditions linked by adjacent pairs the votes cannot separate share one."},
    "rank_low": INT_OR_NULL, "rank_high": INT_OR_NULL,
    "separated_by": {"type": "string", "description": "What separates it from the next condition: votes, "
                     "a tie-breaker, or unresolved."},
})

LEADERBOARD = obj({
    "study": STRING, "kind": {"type": "string", "enum": ["pairwise", "ratings"]},
    "model": nullable({"type": "string", "enum": ["bradley-terry", "mos", "dmos"]}),
    "interval": {**STRING_OR_NULL, "description": "The interval method used: cluster (rater-clustered sandwich), "
                 "bootstrap (rater bootstrap), hessian or t (model-based: votes treated as independent)."},
    "confidence": NUMBER, "ties": {"type": "string", "enum": list(TIE_MODELS)},
    "ci": {"type": "string", "enum": ["cluster", "bootstrap", "model"]},
    "bootstrap": {"type": "integer", "description": "Rater-bootstrap rounds (0 unless ci=bootstrap)."},
    "rules": {"type": "array", "items": {"type": "string", "enum": list(RULE_FIELDS)}},
    "votes": {"type": "integer", "description": "Votes in the study when the leaderboard was computed."},
    "rows": {"type": "array", "items": ref("LeaderboardRow"), "description": "Best first; empty before any vote."},
    "groups": {"type": "array", "items": {"type": "array", "items": STRING}},
    "unresolved": {"type": "array", "description": "Adjacent pairs neither the votes nor a tie-breaker separated.",
                   "items": obj({"upper": STRING, "lower": STRING, "p_adjusted": NUMBER_OR_NULL})},
    "raters": obj({"total": INTEGER, "kept": INTEGER, "dropped": INTEGER}),
    "notes": {"type": "array", "items": STRING},
})

ERROR = obj({"error": STRING})

SCHEMAS: dict[str, Schema] = {
    "Study": STUDY, "StudyDetail": STUDY_DETAIL, "StudyList": obj({"studies": {"type": "array",
                                                                               "items": ref("Study")}}),
    "Progress": PROGRESS, "PairwiseVote": PAIRWISE_VOTE, "RatingVote": RATING_VOTE, "VotesPage": VOTES_PAGE,
    "LeaderboardRow": LEADERBOARD_ROW, "Leaderboard": LEADERBOARD, "Error": ERROR,
}

# --------------------------------------------------------------------------- operations
SLUG = {"name": "slug", "in": "path", "required": True, "schema": STRING, "description": "The study's slug."}


def query(name: str, schema: Schema, description: str, **extra: Any) -> Schema:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description, **extra}


def json_body(schema: str, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": ref(schema)}}}


def error(description: str) -> Schema:
    return json_body("Error", description)


UNAUTHORIZED = {**error("No, an unknown or a revoked bearer token."),
                "headers": {"WWW-Authenticate": {"schema": STRING, "description": "Bearer challenge."}}}
NOT_FOUND = error("No such study, or not one of the token organizer's.")
BAD_REQUEST = error("A query parameter is malformed.")


def get(op_id: str, summary: str, ok: Schema, *, params: list[Schema] | None = None,
        errors: dict[str, Schema] | None = None, description: str = "") -> Schema:
    return {"get": {
        "operationId": op_id, "summary": summary, "description": description, "tags": ["studies"],
        "parameters": params or [], "responses": {"200": ok, "401": UNAUTHORIZED, **(errors or {})},
    }}


PATHS: dict[str, Schema] = {
    "/api/v1/studies": get("listStudies", "Studies the token's organizer may see (an admin: all), newest first",
                           json_body("StudyList", "The studies.")),
    "/api/v1/studies/{slug}": get("getStudy", "One study: summary, design settings, conditions with roles",
                                  json_body("StudyDetail", "The study."), params=[SLUG],
                                  errors={"404": NOT_FOUND}),
    "/api/v1/studies/{slug}/progress": get(
        "getProgress", "Votes against target, sessions, pace and flagged trials",
        json_body("Progress", "The study's progress (what the progress page shows)."),
        params=[SLUG], errors={"404": NOT_FOUND}),
    "/api/v1/studies/{slug}/votes": get(
        "getVotes", "Answered trials as the tidy vote frame: JSON pages, or a CSV / Parquet download",
        {"description": "JSON: one page of records. CSV/Parquet: every matching row, as `panelrank export` "
                        "writes it.",
         "content": {"application/json": {"schema": ref("VotesPage")},
                     "text/csv": {"schema": {"type": "string"}},
                     "application/vnd.apache.parquet": {"schema": {"type": "string", "contentMediaType":
                                                                   "application/vnd.apache.parquet"}}}},
        params=[SLUG,
                query("format", {"type": "string", "enum": ["json", "csv", "parquet"], "default": "json"},
                      "Response format; csv and parquet are downloads (Content-Disposition: attachment)."),
                query("since", TIME, "Only votes answered at or after this ISO 8601 time (naive = UTC). "
                                     "Inclusive: dedupe on `trial` when polling."),
                query("limit", {"type": "integer", "minimum": 1, "maximum": 10_000, "default": 1000},
                      "Records per JSON page (not allowed with csv/parquet)."),
                query("offset", {"type": "integer", "minimum": 0, "default": 0},
                      "Records to skip (JSON only); follow next_offset.")],
        errors={"400": BAD_REQUEST, "404": NOT_FOUND}),
    "/api/v1/studies/{slug}/leaderboard": get(
        "getLeaderboard", "Ranking with 95% intervals: Bradley–Terry (pairwise) or MOS (ratings)",
        json_body("Leaderboard", "Best first, with tie groups and unresolved adjacent pairs; empty rows before "
                                 "the first vote."),
        description="Computed on demand and cached until a new vote arrives; seeded with the study's seed, so "
                    "the same votes and parameters give the same numbers.",
        params=[SLUG,
                query("ties", {"type": "string", "enum": list(TIE_MODELS), "default": "davidson"},
                      "Bradley–Terry tie model (pairwise studies)."),
                query("ci", {"type": "string", "enum": ["cluster", "bootstrap", "model"], "default": "cluster"},
                      "Interval method of the intervals and tests: rater-clustered (sandwich), rater bootstrap, or "
                      "model-based (Hessian / Student-t; treats votes as independent)."),
                query("bootstrap", {"type": "integer", "minimum": 2, "maximum": 1000, "default": 200},
                      "Rater-bootstrap rounds, used with ci=bootstrap."),
                query("rule", {"type": "array", "items": {"type": "string", "enum": list(RULE_FIELDS)}},
                      "Screening rules to apply, repeated (rule=gold&rule=bt500). Without rule and rules: the "
                      "default rules.", style="form", explode=True),
                query("rules", STRING, "Present (any value, e.g. rules=none): apply exactly the rule values "
                                       "given, so rules=none alone screens nobody out.")],
        errors={"400": BAD_REQUEST, "404": NOT_FOUND,
                "409": error("The votes do not determine a ranking yet (e.g. some conditions never compared, "
                             "or screening dropped every rater).")}),
}


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "panelrank API", "version": VERSION,
            "description": "Read-only access to studies, progress, votes and live leaderboards for scripts and "
                           "notebooks. Create a token with `panelrank create-token EMAIL` and send it as "
                           "`Authorization: Bearer <token>`. Every error is `{\"error\": message}`.",
        },
        "security": [{"bearer": []}],
        "tags": [{"name": "studies"}],
        "paths": PATHS,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "A token from `panelrank create-token` (pr_…)."}},
            "schemas": SCHEMAS,
        },
    }
