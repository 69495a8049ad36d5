"""The JSON bodies the server accepts, as pydantic models, and the checks that run before parsing.

One model per body: the screen check, a vote, a practice answer, the end of the practice
(``/api/v1`` is read-only and takes no body). Every number is bounded, every float finite,
every string and list bounded, so anything a model accepts can be stored and read back by
the exports. The same models give the OpenAPI document its request schemas
(:func:`request_schemas`), so the documentation and the validation cannot drift.

Choices:

- **Unknown fields are ignored**, never stored: the model's output is what reaches the
  database, so an extra field costs nothing, while refusing it would cost a rater their
  vote when a page from an older or newer deploy is still open.
- **Vote signals are typed**, not a free-form object: the known fields the study page
  sends are checked like any other field (a huge integer or NaN is refused with the
  field's name), unknown keys are dropped. So a stored ``signals`` object always has the
  shape the export reads.
- Parsing is **strict** (``"1"`` is not a number, ``1.5`` not a whole number, ``1`` not
  ``true``): the study page sends proper JSON types, and anything else is a broken or
  hostile client.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import IO, Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.json_schema import models_json_schema

#: Milliseconds fit PostgreSQL's 4-byte INTEGER columns with room to spare (24 h).
MAX_MS = 24 * 3600 * 1000
MAX_COUNT = 100_000
MAX_PIXELS = 100_000
#: Deepest JSON nesting any body needs is 3 (vote → signals → watch list); 8 leaves headroom
#: while keeping far from the parser's recursion.
MAX_DEPTH = 8
#: A whole number no scale comes near (the study's own scale check gives the precise message).
MAX_ANSWER = 1000

Ms = Annotated[int, Field(ge=0, le=MAX_MS)]
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
Pixels = Annotated[int, Field(ge=0, le=MAX_PIXELS)]
Answer = Annotated[int, Field(ge=-MAX_ANSWER, le=MAX_ANSWER)]
FloatMs = Annotated[float, Field(ge=0, le=MAX_MS)]
# Browser zoom spans 25–500 % on screens of density 1–4: anything outside 0.1–20 is not a
# measurement, and the screen check divides by it.
Dpr = Annotated[float, Field(ge=0.1, le=20)]
View = Literal["side-by-side", "toggle", "scaled", "single"]


class Body(BaseModel):
    """Common rules: strict types, finite floats, short strings, unknown fields ignored."""

    model_config = ConfigDict(strict=True, extra="ignore", allow_inf_nan=False, str_max_length=200,
                              frozen=True)


class EnvironmentCheck(Body):
    """The screen check: the window, the screen and the device, measured by the browser."""

    inner_w: Pixels
    inner_h: Pixels
    screen_w: Pixels | None = None
    screen_h: Pixels | None = None
    dpr: Dpr | None = None
    mobile: bool = False
    cannot: bool = Field(False, description="The rater said they cannot make the window large enough: "
                                            "a too small window then ends the session instead of a 422.")


class Signals(Body):
    """Playback diagnostics of one trial, stored with the vote (unknown keys are dropped)."""

    watch_per_player_ms: list[Ms | None] | None = Field(None, max_length=4)
    drift_corrections: Count | None = None
    p95_drift_ms: FloatMs | None = None
    # The smallest scale the clips were shown at: 1 is native size; a window squeezed to
    # nothing can make the browser's arithmetic go slightly negative, which is still data.
    scale: Annotated[float, Field(ge=-100, le=100)] | None = None
    view: View | None = None
    toggles: Count | None = None
    dpr: Dpr | None = None
    trial_ms: Ms | None = None


class Vote(Body):
    """One answer to the trial at ``trial`` (its position in the session), with its timings."""

    trial: Count
    response: Answer = Field(description="The answer as shown on screen (left/right, not A/B).")
    reasons: list[Annotated[int, Field(ge=0, le=100)]] | None = Field(None, max_length=50)
    watch_ms: Ms | None = None
    answer_ms: Ms | None = None
    hidden_ms: Ms | None = None
    plays: Count | None = None
    stalls: Count | None = None
    window_w: Pixels | None = None
    window_h: Pixels | None = None
    max_drift_ms: FloatMs | None = None
    signals: Signals | None = None


class TrainingAnswer(Body):
    """A practice answer, checked and answered with feedback; nothing is stored."""

    item: Count
    response: Answer


class TrainingDone(Body):
    """The end of the practice: an empty object."""


REQUEST_MODELS: tuple[type[Body], ...] = (EnvironmentCheck, Vote, TrainingAnswer, TrainingDone)

# --------------------------------------------------------------------------- before parsing
#: C0 and C1 control characters, NUL among them: never part of a slug, an id or a stored text.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_BRACKET = re.compile(rb"[\[\]{}]")


def read_limited(stream: IO[bytes], limit: int) -> bytes | None:
    """At most ``limit`` bytes of ``stream``, or None when it holds more.

    Reads ``limit + 1`` bytes whatever Content-Length says, so a chunked upload (no
    Content-Length) is bounded too.
    """
    chunks, size = [], 0
    while size <= limit:
        chunk = stream.read(limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return None if size > limit else b"".join(chunks)


def nesting_depth(raw: bytes) -> int:
    """How deep the arrays and objects of JSON text ``raw`` nest, without parsing it.

    Brackets inside strings do not count. Cheap (two regex passes), so it can run before a
    recursive parser ever sees 5,000 nested arrays.
    """
    depth = deepest = 0
    for bracket in _BRACKET.findall(_STRING.sub(b'""', raw)):
        depth += 1 if bracket in (b"[", b"{") else -1
        deepest = max(deepest, depth)
    return deepest


# --------------------------------------------------------------------------- parsing
M = TypeVar("M", bound=Body)


class BodyError(Exception):
    """A refused body. With ``field``, ``key`` is the catalog key of why that field is wrong;
    without (the body as a whole is wrong: not an object, too deep), the message's own key."""

    def __init__(self, field: str | None, key: str, **values: Any) -> None:
        super().__init__(field or key)
        self.field, self.key, self.values = field, key, values


# pydantic error type → (catalog key of the reason, how to get its values from the error's ctx)
_WHY: dict[str, tuple[str, Callable[[dict[str, Any]], dict[str, Any]]]] = {
    "missing": ("api.why.required", lambda c: {}),
    "int_type": ("api.why.whole", lambda c: {}),
    "float_type": ("api.why.number", lambda c: {}),
    "finite_number": ("api.why.number", lambda c: {}),
    "bool_type": ("api.why.bool", lambda c: {}),
    "list_type": ("api.why.list", lambda c: {}),
    "model_type": ("api.why.object", lambda c: {}),
    "literal_error": ("api.why.choice", lambda c: {"choices": c.get("expected", "")}),
    "greater_than_equal": ("api.why.min", lambda c: {"low": c.get("ge")}),
    "greater_than": ("api.why.above", lambda c: {"low": c.get("gt")}),
    "less_than_equal": ("api.why.max", lambda c: {"high": c.get("le")}),
    "too_long": ("api.why.long", lambda c: {"n": c.get("max_length")}),
    "string_too_long": ("api.why.long", lambda c: {"n": c.get("max_length")}),
}


def parse(model: type[M], raw: bytes) -> M:
    """``raw`` JSON validated by ``model``.

    Raises
    ------
    BodyError
        The first problem: the field's dotted name and a catalog key saying why (field None
        when ``raw`` is not one JSON object).
    """
    if nesting_depth(raw) > MAX_DEPTH:
        raise BodyError(None, "api.too_deep", n=MAX_DEPTH)
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise _first_problem(exc) from None


def _first_problem(exc: ValidationError) -> BodyError:
    problem = exc.errors(include_input=False, include_url=False)[0]
    loc = [str(part) for part in problem["loc"]]
    if not loc:
        return BodyError(None, "api.bad_json")
    key, values = _WHY.get(problem["type"], ("api.why.invalid", lambda c: {}))
    return BodyError(".".join(loc), key, **values(problem.get("ctx") or {}))


# --------------------------------------------------------------------------- OpenAPI
def request_schemas(ref_template: str = "#/components/schemas/{model}") -> dict[str, dict[str, Any]]:
    """JSON Schemas of every request model (and the models they use), keyed by model name."""
    _, top = models_json_schema([(m, "validation") for m in REQUEST_MODELS], ref_template=ref_template)
    return top["$defs"]
