"""The OpenAPI 3.1 document of the JSON APIs (served at ``/api/openapi.json``).

Responses are written by hand as dicts. Request bodies (the study page's API under
``/s/{slug}/api/``) are the JSON Schemas of the pydantic models that validate them
(:mod:`study_app.schemas`), so documentation and validation cannot disagree.
``tests/test_api.py`` checks that its paths are exactly the ``/api/v1`` and rater API
routes and validates real responses against the schemas below.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from analysis.bradley_terry import TIE_MODELS
from analysis.frames import SHOWN_LEFT_VALUES
from analysis.methods import METHODS
from study_app.export import VIEWS
from study_app.livestats import RULE_FIELDS
from study_app.models import ROLES, SESSION_STATUSES, STUDY_STATUSES
from study_app.schemas import EnvironmentCheck, TrainingAnswer, TrainingDone, Vote, request_schemas

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
    "slug": STRING, "name": STRING, "method": {"type": "string", "enum": list(METHODS)},
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
    "study": STRING, "status": STRING, "method": {"type": "string", "enum": list(METHODS)}, "pairwise": BOOLEAN,
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
    "content": STRING, "method": {"type": "string", "enum": list(METHODS)},
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


def _ranges(pairwise: bool) -> str:
    """The stored range of each test method of one kind, for a description (from the registry)."""
    return ", ".join(f"{m.name} {m.low}..{m.high}{'' if m.allows_zero else ' without 0'}"
                     for m in METHODS.values() if m.pairwise == pairwise)


_VOTE_REQUIRED = ["study", "rater", "session", "trial", "content", "method", "answered_at"]
PAIRWISE_VOTE = obj({
    **_VOTE_COMMON, "cond_a": STRING, "cond_b": STRING,
    "pref": {"type": "integer",
             "description": f"Positive: cond_a preferred; range set by the method ({_ranges(True)})."},
    "reason": STRING_OR_NULL, "shown_left": {"type": "string", "enum": list(SHOWN_LEFT_VALUES)},
}, [*_VOTE_REQUIRED, "cond_a", "cond_b", "pref"], description="One answered pairwise trial (DESIGN.md tidy frame).")
RATING_VOTE = obj({**_VOTE_COMMON, "cond": STRING,
                   "score": {"type": "integer", "description": f"Range set by the method ({_ranges(False)})."}},
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

# The study page's answers (request bodies come from the pydantic models, see REQUEST_SCHEMAS).
GATE_RESULT = obj({"ok": {"type": "boolean", "description": "False: the session ended here (screened out)."},
                   "redirect": {"type": "string", "description": "The page to go to next."}})
VOTE_ACCEPTED = obj({
    "ok": {"type": "boolean", "enum": [True]}, "trial": INTEGER, "next": INT_OR_NULL, "done": BOOLEAN,
    "redirect": STRING_OR_NULL,
}, description="The same body again for an identical resubmit, also when both arrive at once.")
TRAINING_FEEDBACK = obj({"correct": BOOLEAN, "expected": INTEGER, "expected_label": STRING,
                         "feedback": STRING_OR_NULL})
OK = obj({"ok": {"type": "boolean", "enum": [True]}})
PLAN = {"type": "object", "description": "The session's plan for the study page: trial count, the next "
        "unanswered position, the clips to preload (opaque media URLs) and the practice items."}
TRIAL = {"type": "object", "description": "The next unanswered trial with its clips (opaque media URLs), or "
         "`{done: true, redirect}` when every trial is answered."}
#: JSON Schemas of the request bodies, generated from the models that validate them.
REQUEST_SCHEMAS = request_schemas()

SCHEMAS: dict[str, Schema] = {
    "Study": STUDY, "StudyDetail": STUDY_DETAIL, "StudyList": obj({"studies": {"type": "array",
                                                                               "items": ref("Study")}}),
    "Progress": PROGRESS, "PairwiseVote": PAIRWISE_VOTE, "RatingVote": RATING_VOTE, "VotesPage": VOTES_PAGE,
    "LeaderboardRow": LEADERBOARD_ROW, "Leaderboard": LEADERBOARD, "Error": ERROR,
    "GateResult": GATE_RESULT, "VoteAccepted": VOTE_ACCEPTED, "TrainingFeedback": TRAINING_FEEDBACK, "Ok": OK,
    "Plan": PLAN, "Trial": TRIAL, **REQUEST_SCHEMAS,
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


# --------------------------------------------------------------------------- the study page's API
RATER_SLUG = {**SLUG, "description": "The study's slug, as in the rater's link /s/{slug}."}
RATER_ERRORS: dict[str, Schema] = {
    "400": error("A field is missing or not valid (the message names it, e.g. 'signals.scale'), or the body is "
                 "not one JSON object, or it nests deeper than 8 levels."),
    "403": error("No session of this rater in progress, the session ended, or the study is not open."),
    "404": error("No such study (also for a slug with control characters), trial or practice item."),
    "409": error("Not the step the session is at, an answered trial with a different answer, or not the "
                 "current trial."),
    "413": error("The body is over 16 KB (chunked bodies are counted as read)."),
    "415": error("The body is not JSON (Content-Type: application/json)."),
}


def rater_op(method: str, op_id: str, summary: str, ok: Schema, body: type[BaseModel] | None = None,
             extra: dict[str, Schema] | None = None) -> Schema:
    """One operation of the study page's API: identified by the study's cookie, not a token."""
    # A GET has no body to refuse: only the session and study states apply.
    errors = RATER_ERRORS if method == "post" else {k: RATER_ERRORS[k] for k in ("403", "404", "409")}
    op: Schema = {
        "operationId": op_id, "summary": summary, "tags": ["rater"], "security": [], "parameters": [RATER_SLUG],
        "responses": {"200": ok, **errors, **(extra or {})},
    }
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": ref(body.__name__)}}}
    return {method: op}


PATHS |= {
    "/s/{slug}/api/environment": rater_op(
        "post", "checkEnvironment", "The screen check: window, screen and device as measured by the browser",
        json_body("GateResult", "Passed, or the session ended (ok false) with where to go."), EnvironmentCheck,
        {"422": error("The window is too small and the rater did not say they cannot enlarge it.")}),
    "/s/{slug}/api/session": rater_op("get", "getPlan", "The session's plan", json_body("Plan", "The plan.")),
    "/s/{slug}/api/trial": rater_op("get", "getTrial", "The next unanswered trial",
                                    json_body("Trial", "The trial, or done.")),
    "/s/{slug}/api/vote": rater_op("post", "vote", "Answer one trial (idempotent)",
                                   json_body("VoteAccepted", "Stored, or the identical answer was already stored."),
                                   Vote),
    "/s/{slug}/api/training": rater_op("post", "checkPractice", "Check a practice answer (nothing is stored)",
                                       json_body("TrainingFeedback", "Right or wrong, with the expected answer."),
                                       TrainingAnswer),
    "/s/{slug}/api/training/done": rater_op("post", "endPractice", "End the practice",
                                            json_body("Ok", "Recorded."), TrainingDone),
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
        "tags": [{"name": "studies", "description": "Read-only, for scripts and notebooks (bearer token)."},
                 {"name": "rater", "description": "The study page's own API, identified by the study's cookie; "
                                                  "documented for its request bodies and refusals."}],
        "paths": PATHS,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "A token from `panelrank create-token` (pr_…)."}},
            "schemas": SCHEMAS,
        },
    }
