"""The read-only JSON API: bearer tokens, per-organizer visibility, each endpoint's content,
the cached leaderboard, and the OpenAPI document checked against routes and real responses."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from flask import Flask
from sqlalchemy import delete, select

from analysis import report
from study_app import accounts, db, livestats, tokens
from study_app.demo.builder import demo_manifest, fill_with_simulated_votes
from study_app.export import votes_frame
from study_app.manifest import validate
from study_app.models import Response, Session, Study, Trial
from study_app.openapi import document
from study_app.progress import study_progress
from study_app.studies import create_study, get_study
from tests.conftest import make_app
from tests.sql_support import statements

SLUG, OTHER = "demo", "bobs-study"
STUDY_PATHS = ["/api/v1/studies/{slug}", "/api/v1/studies/{slug}/progress", "/api/v1/studies/{slug}/votes",
               "/api/v1/studies/{slug}/leaderboard"]
ALL_PATHS = ["/api/v1/studies", *STUDY_PATHS]


@dataclass
class World:
    app: Flask
    tokens: dict[str, str]  # alice (owns SLUG), bob (owns OTHER, empty), admin, revoked (was alice's)

    def get(self, path: str, who: str = "alice", **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        return self.app.test_client().get(path.format(slug=SLUG), headers=headers, **kwargs)


def add_study(session: Any, clips: Path, slug: str, owner_id: int) -> Study:
    raw = {**demo_manifest(clips), "slug": slug}
    return create_study(session, validate(raw, clips / "manifest.yaml"), organizer_id=owner_id)


def add_people(app: Flask, clips: Path, fill: bool = True) -> dict[str, str]:
    """alice owns SLUG (filled with simulated votes), bob owns an empty study, plus an admin."""
    made = {}
    with app.app_context(), db.transaction(app) as s:
        people = {name: accounts.create_organizer(s, f"{name}@example.org", "password123",
                                                  role="admin" if name == "admin" else "organizer")
                  for name in ("alice", "bob", "admin")}
        study = add_study(s, clips, SLUG, people["alice"].id)
        add_study(s, clips, OTHER, people["bob"].id)
        if fill:
            fill_with_simulated_votes(s, study, n_raters=12)
        for name, person in people.items():
            made[name] = tokens.create_token(s, person, f"{name}'s notebook")[1]
        revoked, made["revoked"] = tokens.create_token(s, people["alice"], "old")
        tokens.revoke(s, str(revoked.id))
    return made


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, demo_clips: Path) -> World:
    """One app shared by the read-only tests (building a filled study takes a second)."""
    livestats.clear()  # the cache is per process, keyed by study id: other tests' studies share ids
    tmp = tmp_path_factory.mktemp("api")
    app = make_app(f"sqlite:///{tmp / 'panelrank.sqlite'}", tmp / "instance")
    return World(app, add_people(app, demo_clips))


def frame_of(app: Flask, slug: str = SLUG) -> pd.DataFrame:
    with app.app_context(), db.transaction(app) as s:
        return votes_frame(s, get_study(s, slug))


# --------------------------------------------------------------------------- access
@pytest.mark.parametrize("path", ALL_PATHS)
@pytest.mark.parametrize("header", [None, "Bearer", "Bearer pr_not-a-real-token", "Basic YWxpY2U6cHc=", "revoked",
                                    "alice-without-scheme"])
def test_every_endpoint_refuses_without_a_valid_token(world: World, path: str, header: str | None) -> None:
    if header == "revoked":
        header = f"Bearer {world.tokens['revoked']}"
    elif header == "alice-without-scheme":
        header = world.tokens["alice"]
    headers = {"Authorization": header} if header else {}
    r = world.app.test_client().get(path.format(slug=SLUG), headers=headers)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert set(r.json) == {"error"} and r.json["error"]


@pytest.mark.parametrize("path", STUDY_PATHS)
def test_another_organizers_study_is_not_found(world: World, path: str) -> None:
    r = world.get(path, who="bob")
    missing = world.get(path.replace("{slug}", "no-such-study"), who="bob")
    assert r.status_code == missing.status_code == 404
    # The same answer as for a study that does not exist: no hint that it does.
    assert r.json == {"error": f"no study '{SLUG}'"}


@pytest.mark.parametrize("path", ALL_PATHS)
def test_admin_token_sees_every_study(world: World, path: str) -> None:
    assert world.get(path, who="admin").status_code == 200


def test_study_list_shows_only_own_studies(world: World) -> None:
    slugs = {who: [s["slug"] for s in world.get("/api/v1/studies", who=who).json["studies"]]
             for who in ("alice", "bob", "admin")}
    assert slugs["alice"] == [SLUG]
    assert slugs["bob"] == [OTHER]
    assert sorted(slugs["admin"]) == sorted([SLUG, OTHER])


def test_study_list_queries_do_not_grow_with_the_studies(tmp_path: Path, demo_clips: Path) -> None:
    app = make_app(f"sqlite:///{tmp_path / 'panelrank.sqlite'}", tmp_path / "instance")
    world = World(app, add_people(app, demo_clips, fill=False))
    world.get("/api/v1/studies", "admin")  # the first use of a token records it: one write more
    with statements(app) as two_studies:
        assert len(world.get("/api/v1/studies", "admin").json["studies"]) == 2
    with app.app_context(), db.transaction(app) as s:
        add_study(s, demo_clips, "third", s.scalar(select(Study.organizer_id).where(Study.slug == SLUG)))
    with statements(app) as three_studies:
        assert len(world.get("/api/v1/studies", "admin").json["studies"]) == 3
    assert len(three_studies) == len(two_studies)


def test_api_sets_no_cookie(world: World) -> None:
    assert "Set-Cookie" not in world.get("/api/v1/studies").headers


def test_unknown_api_paths_and_methods_answer_json(world: World) -> None:
    client = world.app.test_client()
    r = client.get("/api/v1/nothing-here")
    assert r.status_code == 404 and set(r.json) == {"error"}
    r = client.post("/api/v1/studies", headers={"Authorization": f"Bearer {world.tokens['alice']}"})
    assert r.status_code == 405 and set(r.json) == {"error"} and "GET" in r.headers["Allow"]
    # Pages outside /api keep their HTML errors.
    assert client.get("/organizer/nothing-here").mimetype == "text/html"


# --------------------------------------------------------------------------- content
def test_study_detail(world: World) -> None:
    body = world.get("/api/v1/studies/{slug}").json
    assert body["slug"] == SLUG and body["kind"] == "pairwise" and body["organizer"] == "alice@example.org"
    roles = {c["key"]: c["role"] for c in body["conditions"]}
    assert roles["source"] == "reference" and roles["compressed"] == "baseline" and len(roles) == 6
    assert body["contents"] == 4
    assert body["counts"]["votes"] == len(frame_of(world.app))
    assert body["counts"]["sessions"]["completed"] > 0
    assert body["settings"]["votes_per_item"] == 8 and body["settings"]["design"] == "all_pairs"
    assert body["links"]["votes"] == f"/api/v1/studies/{SLUG}/votes"


def test_progress_is_study_progress(world: World) -> None:
    body = world.get("/api/v1/studies/{slug}/progress").json
    with world.app.app_context(), db.transaction(world.app) as s:
        expected = study_progress(s, get_study(s, SLUG))
    for key in ("cells", "votes", "target", "percent", "sessions", "flagged", "conditions"):
        assert body[key] == expected[key], key


def test_votes_json_pages_cover_the_frame_exactly(world: World) -> None:
    frame = frame_of(world.app)
    first = world.get("/api/v1/studies/{slug}/votes").json
    assert first["total"] == len(frame) == len(first["votes"])  # the default page holds them all
    seen, offset = [], 0
    while offset is not None:
        page = world.get(f"/api/v1/studies/{{slug}}/votes?limit=100&offset={offset}").json
        assert page["total"] == len(frame)
        seen += [v["trial"] for v in page["votes"]]
        offset = page["next_offset"]
    assert seen == frame["trial"].tolist()  # same rows, same order, none twice
    row = first["votes"][0]
    assert set(row) == set(frame.columns)
    assert row["answered_at"].endswith("Z") and row["shown_left"] in ("a", "b")


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_votes_downloads_parse_with_pandas(world: World, fmt: str) -> None:
    frame = frame_of(world.app)
    r = world.get(f"/api/v1/studies/{{slug}}/votes?format={fmt}")
    assert r.status_code == 200
    assert f'filename="{SLUG}-votes.{fmt}"' in r.headers["Content-Disposition"]
    read = pd.read_csv if fmt == "csv" else pd.read_parquet
    got = read(io.BytesIO(r.data))
    assert len(got) == len(frame) and list(got.columns) == list(frame.columns)
    assert got["trial"].tolist() == frame["trial"].tolist()


def test_votes_since_filters_inclusively(world: World) -> None:
    frame = frame_of(world.app)
    cut = frame["answered_at"].iloc[len(frame) // 2]
    expected = int((frame["answered_at"] >= cut).sum())
    stamp = cut.isoformat()  # ends in +00:00
    for since in (stamp.replace("+00:00", "Z"), stamp, stamp.replace("+", " ")):  # '+' unencoded arrives as ' '
        assert world.get("/api/v1/studies/{slug}/votes", query_string={"since": since}).json["total"] == expected
    csv = world.get("/api/v1/studies/{slug}/votes", query_string={"since": stamp, "format": "csv"})
    assert len(pd.read_csv(io.BytesIO(csv.data))) == expected


@pytest.mark.parametrize("query", ["format=xml", "limit=0", "limit=100000", "limit=ten", "offset=-1",
                                   "since=yesterday", "format=csv&limit=10", "format=parquet&offset=5"])
def test_votes_bad_parameters(world: World, query: str) -> None:
    r = world.get(f"/api/v1/studies/{{slug}}/votes?{query}")
    assert r.status_code == 400 and set(r.json) == {"error"}


def test_votes_of_a_study_without_votes(world: World) -> None:
    body = world.get(f"/api/v1/studies/{OTHER}/votes", who="bob").json
    assert body["total"] == 0 and body["votes"] == [] and body["next_offset"] is None
    csv = world.get(f"/api/v1/studies/{OTHER}/votes?format=csv", who="bob")
    assert pd.read_csv(io.BytesIO(csv.data)).empty


def test_leaderboard_one_row_per_condition_inside_its_interval(world: World) -> None:
    body = world.get("/api/v1/studies/{slug}/leaderboard").json
    assert body["model"] == "bradley-terry" and body["interval"] == "cluster" and body["confidence"] == 0.95
    assert body["ci"] == "cluster" and body["bootstrap"] == 0                 # rater-clustered by default
    assert body["rules"] == list(livestats.DEFAULT_ON)
    rows = body["rows"]
    assert sorted(r["condition"] for r in rows) == sorted(frame_of(world.app)[["cond_a", "cond_b"]].stack().unique())
    for r in rows:
        assert r["ci_low"] <= r["score"] <= r["ci_high"]
        assert r["se"] > 0 and r["label"] and r["role"]
    assert [r["rank"] for r in rows] == sorted(r["rank"] for r in rows)
    assert sorted(c for g in body["groups"] for c in g) == sorted(r["condition"] for r in rows)
    assert body["raters"]["total"] == 12 and body["votes"] == len(frame_of(world.app))


@pytest.mark.parametrize(("query", "check"), [
    ("ties=split&ci=model", lambda b: b["ties"] == "split" and b["ci"] == "model" and b["interval"] == "hessian"),
    ("ci=bootstrap&bootstrap=50", lambda b: b["ci"] == b["interval"] == "bootstrap" and b["bootstrap"] == 50),
    ("ci=cluster&bootstrap=50", lambda b: b["ci"] == b["interval"] == "cluster" and b["bootstrap"] == 0),
    ("rules=none", lambda b: b["rules"] == [] and b["raters"]["dropped"] == 0),
    ("rule=gold&rule=too_fast", lambda b: b["rules"] == ["gold", "too_fast"]),
])
def test_leaderboard_parameters(world: World, query: str, check: Any) -> None:
    r = world.get(f"/api/v1/studies/{{slug}}/leaderboard?{query}")
    assert r.status_code == 200 and check(r.json)


@pytest.mark.parametrize("query", ["ties=probit", "bootstrap=1", "bootstrap=-3", "bootstrap=5000", "rule=vibes",
                                   "ci=both", "ci=hessian", "ci=bootstrap&bootstrap=0"])
def test_leaderboard_bad_parameters(world: World, query: str) -> None:
    r = world.get(f"/api/v1/studies/{{slug}}/leaderboard?{query}")
    assert r.status_code == 400 and set(r.json) == {"error"}


def test_leaderboard_before_the_first_vote(world: World) -> None:
    body = world.get(f"/api/v1/studies/{OTHER}/leaderboard", who="bob").json
    assert body["rows"] == [] and body["votes"] == 0 and body["model"] is None


# --------------------------------------------------------------------------- cache
def test_leaderboard_cached_until_a_new_vote(tmp_path: Path, demo_clips: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    livestats.clear()
    app = make_app(f"sqlite:///{tmp_path / 'panelrank.sqlite'}", tmp_path / "instance")
    world = World(app, add_people(app, demo_clips))
    calls = []
    real = report.analyze
    monkeypatch.setattr(report, "analyze", lambda *a, **k: calls.append(1) or real(*a, **k))

    with app.app_context(), db.transaction(app) as s:
        # Take one vote back so that one can "arrive" later.
        trial_id, value = s.execute(select(Response.trial_id, Response.value).join(Trial).join(Session)
                                    .join(Study).where(Study.slug == SLUG).limit(1)).one()
        s.execute(delete(Response).where(Response.trial_id == trial_id))

    def board() -> report.AnalysisResult | None:
        with app.app_context(), db.transaction(app) as s:
            return livestats.leaderboard(s, get_study(s, SLUG), livestats.rules_from(livestats.DEFAULT_ON))

    first = board()
    assert board() is first and len(calls) == 1
    before = world.get("/api/v1/studies/{slug}/leaderboard").json
    assert world.get("/api/v1/studies/{slug}/leaderboard").json == before
    assert len(calls) == 1  # the API asked with the same defaults: served from the cache

    with app.app_context(), db.transaction(app) as s:
        s.add(Response(trial_id=trial_id, value=value))
    after = board()
    assert after is not first and len(calls) == 2
    assert world.get("/api/v1/studies/{slug}/leaderboard").json["votes"] == before["votes"] + 1
    assert len(calls) == 2


# --------------------------------------------------------------------------- OpenAPI
def openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def test_openapi_documents_exactly_the_routes(world: World) -> None:
    r = world.app.test_client().get("/api/openapi.json")  # public: no token needed
    assert r.status_code == 200 and r.mimetype == "application/json"
    doc = r.json
    assert re.fullmatch(r"3\.1\.\d+", doc["openapi"])
    routes = {openapi_path(rule.rule): rule.methods - {"HEAD", "OPTIONS"} for rule in world.app.url_map.iter_rules()
              if rule.rule.startswith("/api/v1/") or rule.endpoint.startswith("rater.api_")}
    assert routes == {path: {method.upper() for method in item} for path, item in doc["paths"].items()}
    for path, item in doc["paths"].items():
        method, op = next(iter(item.items()))
        assert "200" in op["responses"] and ("401" in op["responses"]) == path.startswith("/api/v1/"), path
        named = {p["name"] for p in op["parameters"] if p["in"] == "path"}
        assert named == set(re.findall(r"{(\w+)}", path)), path
        # A body is documented exactly where the route takes one, by the model that validates it.
        assert ("requestBody" in op) == (method == "post"), path
    assert doc["security"] == [{"bearer": []}]
    assert doc["components"]["securitySchemes"]["bearer"] == {**doc["components"]["securitySchemes"]["bearer"],
                                                              "type": "http", "scheme": "bearer"}
    refs = re.findall(r'"\$ref":\s*"#/components/schemas/(\w+)"', r.get_data(as_text=True))
    assert refs and set(refs) <= set(doc["components"]["schemas"])


def check(value: Any, schema: dict[str, Any], doc: dict[str, Any], where: str = "$") -> list[str]:
    """Problems of ``value`` against the JSON-Schema subset the document uses."""
    if "$ref" in schema:
        return check(value, doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]], doc, where)
    if "anyOf" in schema:
        options = [check(value, s, doc, where) for s in schema["anyOf"]]
        return [] if any(not o for o in options) else [f"{where}: matches no anyOf option: {options}"]
    if "allOf" in schema:
        return [p for s in schema["allOf"] for p in check(value, s, doc, where)]
    problems = []
    kinds = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}
    kind = schema.get("type")
    if kind in kinds and not isinstance(value, kinds[kind]):
        return [f"{where}: expected {kind}, got {value!r}"]
    if kind in ("integer", "number") and (isinstance(value, bool) or not isinstance(
            value, int if kind == "integer" else int | float)):
        return [f"{where}: expected {kind}, got {value!r}"]
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{where}: {value!r} not in {schema['enum']}")
    if "minimum" in schema and value < schema["minimum"]:
        problems.append(f"{where}: {value} < {schema['minimum']}")
    if kind == "object":
        problems += [f"{where}: missing {k}" for k in schema.get("required", []) if k not in value]
        for k, sub in schema.get("properties", {}).items():
            if k in value:
                problems += check(value[k], sub, doc, f"{where}.{k}")
    if kind == "array":
        if len(value) < schema.get("minItems", 0) or len(value) > schema.get("maxItems", len(value)):
            problems.append(f"{where}: {len(value)} items")
        for i, item in enumerate(value):
            problems += check(item, schema.get("items", {}), doc, f"{where}[{i}]")
    return problems


@pytest.mark.parametrize(("path", "who", "status"), [
    ("/api/v1/studies", "admin", 200),
    ("/api/v1/studies/{slug}", "alice", 200),
    ("/api/v1/studies/{slug}/progress", "alice", 200),
    (f"/api/v1/studies/{OTHER}/progress", "bob", 200),
    ("/api/v1/studies/{slug}/votes?limit=50", "alice", 200),
    ("/api/v1/studies/{slug}/leaderboard", "alice", 200),
    ("/api/v1/studies/{slug}/leaderboard?ci=model&ties=rao-kupper", "alice", 200),
    ("/api/v1/studies/{slug}/leaderboard?ci=bootstrap&bootstrap=20", "alice", 200),
    (f"/api/v1/studies/{OTHER}/leaderboard", "bob", 200),
    ("/api/v1/studies/{slug}", "bob", 404),
    ("/api/v1/studies/{slug}/votes?format=xml", "alice", 400),
    ("/api/v1/studies", None, 401),
])
def test_responses_match_the_documented_schemas(world: World, path: str, who: str | None, status: int) -> None:
    doc = document()
    r = world.get(path, who=who)
    assert r.status_code == status
    template = next(p for p in doc["paths"] if re.fullmatch(re.sub(r"{\w+}", "[^/]+", p), path.split("?")[0]
                                                             .format(slug=SLUG)))
    schema = doc["paths"][template]["get"]["responses"][str(status)]["content"]["application/json"]["schema"]
    assert check(r.json, schema, doc) == []


def test_schema_checker_catches_mistakes() -> None:
    doc = document()
    row = {"rank": 1, "condition": "a", "label": None, "role": "winner", "score": "high", "se": None,
           "ci_low": 0.0, "ci_high": 1.0, "n_votes": 3, "group": 1, "rank_low": 1, "rank_high": 1}
    problems = check(row, {"$ref": "#/components/schemas/LeaderboardRow"}, doc)
    assert len(problems) == 3  # role not in enum, score not a number, separated_by missing


def test_openapi_vote_schema_lists_every_export_column() -> None:
    from analysis import frames
    from study_app.export import EXTRA_COLUMNS
    from study_app.openapi import PAIRWISE_VOTE

    documented = set(PAIRWISE_VOTE["properties"])
    assert set(frames.PAIRWISE_COLUMNS) | set(EXTRA_COLUMNS) <= documented


def test_openapi_request_bodies_are_the_validating_models() -> None:
    from study_app import schemas

    doc = document()
    for model in schemas.REQUEST_MODELS:
        generated = model.model_json_schema(ref_template="#/components/schemas/{model}")
        generated.pop("$defs", None)
        assert doc["components"]["schemas"][model.__name__] == generated
    vote = doc["components"]["schemas"]["Vote"]
    assert vote["required"] == ["trial", "response"]
    assert (vote["properties"]["trial"]["minimum"], vote["properties"]["trial"]["maximum"]) == (0, schemas.MAX_COUNT)
    assert doc["paths"]["/s/{slug}/api/vote"]["post"]["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Vote"}


def test_nul_in_a_slug_is_a_json_404(world: World) -> None:
    r = world.get("/api/v1/studies/de%00mo/votes")
    assert r.status_code == 404 and r.json == {"error": "no study with that slug"}
