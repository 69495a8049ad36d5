"""Study manifests: YAML (+ optional stimulus CSV) → a validated study description.

Validation collects **every** problem (file, field, what is wrong) before anything
is written, so an organizer fixes a manifest in one round instead of five.
The field reference lives in ``docs/manifest.md``.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from analysis import video
from analysis.methods import METHODS
from study_app import design
from study_app.manifest_settings import MAX_NAME_CHARS, Problems, read_settings, whole_number
from study_app.models import ROLES

PAIR_DESIGNS = ("all_pairs", "vs_reference", "random_k")
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
KNOWN_KEYS = {
    "name", "slug", "method", "conditions", "contents", "stimuli", "design", "votes_per_pair",
    "votes_per_stimulus", "trials_per_session", "repeats_per_session", "gold", "gold_per_session",
    "training", "reasons", "panel", "max_sessions_per_rater", "instructions", "environment", "seed",
    "language", "scorer", "display", "session_timeout_minutes",
}
# Durations of one content may differ by container rounding; more than this is a different cut.
DURATION_TOLERANCE_S = 0.1


class ManifestError(ValueError):
    """A manifest has problems; ``problems`` lists all of them."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"{len(problems)} problem(s) in the manifest:\n- " + "\n- ".join(problems))


@dataclass(frozen=True)
class StimulusEntry:
    content: str
    condition: str
    path: str  # absolute path or URL
    media: video.VideoInfo | None = None


@dataclass
class ValidatedManifest:
    """A manifest that passed validation: plain data, ready to be written in one transaction."""

    source: Path
    settings: dict[str, Any]
    spec: design.DesignSpec
    labels: dict[str, str | None]
    stimuli: list[StimulusEntry] = field(default_factory=list)

    @property
    def slug(self) -> str:
        return self.settings["slug"]


def load(path: str | Path, probe_media: bool = True, media_root: Path | None = None) -> ValidatedManifest:
    """Read and validate a manifest file.

    Parameters
    ----------
    path : path
        The YAML manifest. Relative stimulus paths are resolved against its folder.
    probe_media : bool
        Open every stimulus with PyAV (size, frame rate, duration, first frame decodes).
    media_root : path, optional
        Resolve relative stimulus paths against this folder instead of the manifest's
        (uploaded manifests have no folder of their own).

    Raises
    ------
    ManifestError
        Listing every problem found.
    """
    path = Path(path)
    problems = Problems(path)
    raw = _read_yaml(path, problems)
    if raw is None:
        raise ManifestError(problems.items)
    return validate(raw, path, problems, probe_media, media_root)


def _read_yaml(path: Path, problems: Problems) -> dict[str, Any] | None:
    if not path.is_file():
        problems.add("file", "no such file")
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        problems.add("file", f"not valid YAML: {exc}")
        return None
    if not isinstance(data, dict):
        problems.add("file", "the manifest must be a YAML mapping (key: value)")
        return None
    return data


def validate(raw: dict[str, Any], source: Path, problems: Problems | None = None,
             probe_media: bool = True, media_root: Path | None = None) -> ValidatedManifest:
    """Validate an already-parsed manifest mapping (see :func:`load`).

    Every part is checked even when another part is wrong, but a problem that only
    follows from one already reported (a design check on a field that did not parse,
    a gold item naming a condition whose entry was rejected) is left out: each
    mistake is listed once.
    """
    problems = problems or Problems(source)
    for key in sorted(set(raw) - KNOWN_KEYS):
        problems.add(key, "unknown field (see docs/manifest.md)")
    settings = read_settings(raw, problems)
    method = settings.get("method")
    conditions, roles, labels = _conditions(raw.get("conditions"), problems)
    stimuli = _stimuli(raw.get("stimuli"), source, problems, media_root)
    contents = _contents(raw.get("contents"), stimuli, problems)
    _check_cells(stimuli, contents, conditions, problems)
    known = method in METHODS
    pairwise = known and METHODS[method].pairwise
    spec_kw = _design(raw, settings, pairwise, problems)
    selection = _selection(raw, pairwise if known else None, problems)
    # Without a known method the shape of gold/training answers is unknown: only their
    # container is checked, so one wrong method does not turn into many gold problems.
    gold = _known_answer_items(raw.get("gold"), pairwise if known else None, problems, "gold")
    training = _known_answer_items(raw.get("training"), pairwise if known else None, problems, "training")
    _check_training_names(training, contents, conditions, problems)
    settings["training"] = [
        {**vars(item), "feedback": feedback}
        for (_, item), feedback in zip(training, _feedback(raw.get("training"), training), strict=True)
    ]
    spec = None
    if known and conditions and contents:
        spec = design.DesignSpec(
            method=method, conditions=tuple(conditions),
            roles={c: r for c, r in roles.items() if r in ROLES}, contents=tuple(contents),
            pairwise=pairwise, gold=tuple(item for _, item in gold), seed=settings["seed"], **spec_kw,
        )
        _add_spec_problems(spec, [i for i, _ in gold], "votes_per_pair" if pairwise else "votes_per_stimulus",
                           problems)
    if probe_media:
        # Files are checked even when the manifest has other problems: a broken clip is
        # worth knowing about in the same round.
        stimuli = _probe_all(stimuli, problems)
        _check_consistency(stimuli, problems)
    if problems.items:
        raise ManifestError(problems.items)
    assert spec is not None
    settings.update(spec_kw)
    settings["conditions"] = [{"id": c, "label": labels[c], "role": roles[c]} for c in conditions]
    settings["contents"] = list(contents)
    settings["gold"] = [vars(item) for _, item in gold]
    if selection["vote_budget"] is None:
        # The balanced design's total of main votes: what active selection must do better than.
        selection["vote_budget"] = len(design.design_items(spec)) * spec.votes_per_item
    settings.update(selection)
    return ValidatedManifest(source=source, settings=settings, spec=spec, labels=labels, stimuli=stimuli)


def _add_spec_problems(spec: design.DesignSpec, gold_index: list[int], votes_key: str,
                       problems: Problems) -> None:
    """Report the design's own problems under the manifest's field names, skipping consequences."""

    def manifest_field(name: str) -> str:
        if name == "votes_per_item":
            return votes_key
        if name.startswith("gold["):
            # Malformed gold entries never reach the spec: map its index back to the manifest's.
            return f"gold[{gold_index[int(name[5:-1])]}]"
        return name

    already = Problems(problems.source)
    already.fields = set(problems.fields)  # what was wrong before the design was looked at
    for p in design.spec_problems(spec):
        where = manifest_field(p.field)
        if not any(already.touches(f) for f in (where, *map(manifest_field, p.depends))):
            problems.add(where, p.message)


def _check_training_names(training: list[tuple[int, design.GoldItem]], contents: list[str],
                          conditions: list[str], problems: Problems) -> None:
    """Training items must name the study's contents and conditions (gold is checked with the design)."""
    for i, item in training:
        if item.content not in contents and not problems.touches("contents"):
            problems.add(f"training[{i}]", f"content '{item.content}' is not in the study")
        for cond in (item.cond_a, item.cond_b):
            if cond is not None and cond not in conditions and not problems.touches("conditions"):
                problems.add(f"training[{i}]", f"condition '{cond}' is not in the study")
        if item.cond_b is not None and item.cond_a == item.cond_b:
            problems.add(f"training[{i}]", f"compares condition '{item.cond_a}' with itself")


def _conditions(value: Any, problems: Problems) -> tuple[list[str], dict[str, Any], dict[str, str | None]]:
    ids: list[str] = []
    roles: dict[str, Any] = {}
    labels: dict[str, str | None] = {}
    if not isinstance(value, list) or len(value) < 1:
        problems.add("conditions", "required: a list of conditions (id, optional label, role)")
        return ids, roles, labels
    for i, item in enumerate(value):
        where = f"conditions[{i}]"
        if isinstance(item, str):
            item = {"id": item}
        if not isinstance(item, dict):
            problems.add(where, "must be an id or a mapping with 'id'")
            continue
        cid = item.get("id")
        if not isinstance(cid, str | int) or not ID_RE.match(str(cid)):
            problems.add(f"{where}.id", f"'{cid}' is not a valid id (letters, digits, '_', '.', '-')")
            continue
        cid = str(cid)
        if cid in roles:
            problems.add(f"{where}.id", f"duplicate condition id '{cid}'")
            continue
        role = item.get("role", "submission")
        if role not in ROLES:
            problems.add(f"{where}.role", f"unknown role '{role}'; known: {', '.join(ROLES)}")
        for key in sorted(set(item) - {"id", "label", "role"}):
            problems.add(f"{where}.{key}", "unknown field")
        ids.append(cid)
        roles[cid] = role
        label = None if item.get("label") is None else str(item["label"])
        if label is not None and len(label) > MAX_NAME_CHARS:
            problems.add(f"{where}.label", f"at most {MAX_NAME_CHARS} characters (got {len(label)})")
        labels[cid] = label
    return ids, roles, labels


def _stimuli(value: Any, source: Path, problems: Problems, media_root: Path | None) -> list[StimulusEntry]:
    if isinstance(value, str):
        return _stimuli_csv(source.parent / value, problems, media_root)
    if not isinstance(value, list) or not value:
        problems.add("stimuli", "required: a list of {content, condition, path} or the name of a CSV file")
        return []
    rows = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            problems.add(f"stimuli[{i}]", "must be a mapping with content, condition, path")
            continue
        rows.append((f"stimuli[{i}]", item))
    return _stimulus_rows(rows, media_root or source.parent, problems, None)


def _stimuli_csv(path: Path, problems: Problems, media_root: Path | None) -> list[StimulusEntry]:
    if not path.is_file():
        problems.add("stimuli", f"CSV file '{path}' does not exist")
        return []
    try:
        # utf-8-sig: spreadsheets often save CSVs with a byte-order mark before the header.
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            reader.fieldnames = [name.strip() for name in reader.fieldnames or []]
            missing = {"content", "condition", "path"} - set(reader.fieldnames)
            if missing:
                problems.add("header", f"missing column(s): {', '.join(sorted(missing))}", file=path.name)
                return []
            rows = [(f"row {i + 2}", row) for i, row in enumerate(reader)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        problems.add("stimuli", f"cannot read CSV '{path}': {exc}")
        return []
    if not rows:
        problems.add("stimuli", "the CSV has no rows", file=path.name)
    return _stimulus_rows(rows, media_root or path.parent, problems, path.name)


def _stimulus_rows(rows: list[tuple[str, dict[str, Any]]], base: Path, problems: Problems,
                   file: str | None) -> list[StimulusEntry]:
    out: list[StimulusEntry] = []
    seen: set[tuple[str, str]] = set()
    for where, row in rows:
        content, condition, loc = (str(row.get(k) or "").strip() for k in ("content", "condition", "path"))
        missing = [k for k, v in (("content", content), ("condition", condition), ("path", loc)) if not v]
        if missing:
            problems.add(where, f"missing {', '.join(missing)}", file=file)
            continue
        if not ID_RE.match(content):
            problems.add(f"{where}.content", f"'{content}' is not a valid id", file=file)
            continue
        if (content, condition) in seen:
            problems.add(where, f"duplicate stimulus for content '{content}', condition '{condition}'",
                         file=file)
            continue
        seen.add((content, condition))
        if _is_url(loc):
            out.append(StimulusEntry(content, condition, loc))
            continue
        full = (base / loc).resolve()
        if not full.is_file():
            # Still listed (the cell is covered); only the file is the problem.
            problems.add(f"{where}.path", f"file '{full}' does not exist", file=file)
        out.append(StimulusEntry(content, condition, str(full)))
    return out


def _is_url(loc: str) -> bool:
    return urlparse(loc).scheme in ("http", "https")


def _contents(value: Any, stimuli: list[StimulusEntry], problems: Problems) -> list[str]:
    from_stimuli = list(dict.fromkeys(s.content for s in stimuli))
    if value is None:
        return from_stimuli
    if not isinstance(value, list) or not all(isinstance(v, str | int) for v in value):
        problems.add("contents", "must be a list of content ids")
        return from_stimuli
    ids = [str(v) for v in value]
    for cid, n in Counter(ids).items():
        if n > 1:
            problems.add("contents", f"duplicate content id '{cid}'")
    for cid in ids:
        if not ID_RE.match(cid):
            problems.add("contents", f"'{cid}' is not a valid id")
    for cid in from_stimuli:
        if cid not in ids:
            problems.add("stimuli", f"content '{cid}' is not listed under 'contents'")
    return list(dict.fromkeys(ids))


def _check_cells(stimuli: list[StimulusEntry], contents: list[str], conditions: list[str],
                 problems: Problems) -> None:
    cells = {(s.content, s.condition) for s in stimuli}
    for cond in sorted({s.condition for s in stimuli} - set(conditions)):
        problems.add("stimuli", f"condition '{cond}' is not listed under 'conditions'")
    if not conditions:
        return
    for content in contents:
        lacking = [c for c in conditions if (content, c) not in cells]
        if lacking:
            problems.add("stimuli", f"content '{content}' has no file for condition(s) {', '.join(lacking)}")


def _design(raw: dict[str, Any], settings: dict[str, Any], pairwise: bool,
            problems: Problems) -> dict[str, Any]:
    d = raw.get("design") or {}
    if isinstance(d, str):
        d = {"pairs": d}
    if not isinstance(d, dict):
        problems.add("design", "must be a mapping like {pairs: all_pairs}")
        d = {}
    pairs = d.get("pairs", "all_pairs")
    if pairs not in PAIR_DESIGNS:
        problems.add("design.pairs", f"unknown pair design '{pairs}'; known: {', '.join(PAIR_DESIGNS)}")
        pairs = "all_pairs"
    for key in sorted(set(d) - {"pairs", "k", "selection", "vote_budget", "alpha"}):
        problems.add(f"design.{key}", "unknown field")
    k = d.get("k")
    if pairs == "random_k":
        k = whole_number(d, "k", problems, low=1, where="design.k")
    votes_key, other = ("votes_per_pair", "votes_per_stimulus") if pairwise else ("votes_per_stimulus",
                                                                                   "votes_per_pair")
    if other in raw and settings.get("method") in METHODS:
        problems.add(other, f"does not apply to method '{settings['method']}'; use {votes_key}")
    return {
        "design": pairs,
        "k": k if pairs == "random_k" else None,
        "votes_per_item": whole_number(raw, votes_key, problems, default=1, low=1),
        "trials_per_session": whole_number(raw, "trials_per_session", problems, default=30, low=1, high=2000),
        "repeats_per_session": whole_number(raw, "repeats_per_session", problems, default=5, low=0, high=500),
        "gold_per_session": whole_number(raw, "gold_per_session", problems,
                                 default=1 if raw.get("gold") else 0, low=0, high=500),
    }


SELECTIONS = ("balanced", "active")


def _selection(raw: dict[str, Any], pairwise: bool | None, problems: Problems) -> dict[str, Any]:
    """``design.selection``, ``design.vote_budget`` and ``design.alpha`` (the stopping rule's level).

    ``pairwise`` is None when the method is unknown (then whether active selection applies is not judged).
    """
    d = raw.get("design")
    d = d if isinstance(d, dict) else {}
    selection = d.get("selection", "balanced")
    if selection not in SELECTIONS:
        problems.add("design.selection", f"unknown selection '{selection}'; known: {', '.join(SELECTIONS)}")
        selection = "balanced"
    if selection == "active" and pairwise is False:
        problems.add("design.selection", "'active' needs a pairwise method (it chooses condition pairs)")
    budget = None
    if "vote_budget" in d:
        if selection != "active":
            problems.add("design.vote_budget", "only applies to design.selection: active")
        else:
            budget = whole_number(d, "vote_budget", problems, low=1, where="design.vote_budget")
    alpha = d.get("alpha", 0.05)
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 < alpha < 1:
        problems.add("design.alpha", f"must be a number between 0 and 1 (exclusive), got {alpha!r}")
        alpha = 0.05
    return {"selection": selection, "vote_budget": budget, "alpha": float(alpha)}


def _feedback(value: Any, items: list[tuple[int, design.GoldItem]]) -> list[str | None]:
    """The ``feedback`` text of each accepted training item (by its manifest index)."""
    return [value[i].get("feedback") for i, _ in items]


def _known_answer_items(value: Any, pairwise: bool | None, problems: Problems,
                        key: str) -> list[tuple[int, design.GoldItem]]:
    """Gold or training items with a known answer, each with its index in the manifest's list.

    ``pairwise`` None means the method is unknown: only the list of mappings is checked.
    Training items are like gold (known answer) plus ``feedback``; they are shown with
    feedback and never stored as responses.
    """
    if value is None:
        return []
    if not isinstance(value, list):
        problems.add(key, "must be a list")
        return []
    items = []
    needed = ("content", "cond_a", "cond_b", "expected") if pairwise else ("content", "condition", "expected")
    allowed = {*needed, "tolerance", *(("feedback",) if key == "training" else ())}
    for i, item in enumerate(value):
        where = f"{key}[{i}]"
        if not isinstance(item, dict):
            problems.add(where, "must be a mapping")
            continue
        if pairwise is None:
            continue
        unknown = sorted(set(map(str, item)) - allowed)
        missing = [k for k in needed if item.get(k) is None]
        if unknown or missing:
            what = [f"missing {', '.join(missing)}"] if missing else []
            what += [f"unknown field(s) {', '.join(unknown)}"] if unknown else []
            problems.add(where, "; ".join(what))
            continue
        expected, tolerance = item["expected"], item.get("tolerance", 1 if key == "gold" else 0)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (expected, tolerance)):
            problems.add(where, "expected and tolerance must be whole numbers")
            continue
        feedback = item.get("feedback")
        if feedback is not None and not isinstance(feedback, str):
            problems.add(f"{where}.feedback", "must be text")
            continue
        cond_a = str(item["cond_a"] if pairwise else item["condition"])
        cond_b = str(item["cond_b"]) if pairwise else None
        items.append((i, design.GoldItem(str(item["content"]), cond_a, cond_b, expected, tolerance)))
    return items


def _probe_all(stimuli: list[StimulusEntry], problems: Problems) -> list[StimulusEntry]:
    # A missing file was reported when the list was read; saying so again adds nothing.
    stimuli = [s for s in stimuli if _is_url(s.path) or Path(s.path).is_file()]
    # Probing is I/O bound (open + decode one frame); threads overlap the waiting.
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(_probe_one, stimuli))
    out = []
    for entry, (info, error) in zip(stimuli, results, strict=True):
        if error:
            problems.add(f"stimuli[{entry.content}/{entry.condition}]", f"'{entry.path}': {error}")
        else:
            out.append(StimulusEntry(entry.content, entry.condition, entry.path, info))
    return out


def _probe_one(entry: StimulusEntry) -> tuple[video.VideoInfo | None, str | None]:
    # Decoding the first frame proves the stream decodes; a URL gets 10 s to answer.
    try:
        info = video.probe(entry.path, decode_first=True, timeout_s=10.0 if _is_url(entry.path) else None)
    except video.VideoError as exc:
        return None, exc.problem  # the problem line names the file itself
    if info.fps <= 0 or info.duration_s <= 0:
        return None, "frame rate or duration cannot be read"
    return info, None


def _check_consistency(stimuli: list[StimulusEntry], problems: Problems) -> None:
    """All conditions of one content must show the same cut at the same size."""
    by_content: dict[str, list[StimulusEntry]] = {}
    for s in stimuli:
        by_content.setdefault(s.content, []).append(s)
    for content, entries in by_content.items():
        sizes = {(e.media.width, e.media.height) for e in entries if e.media}
        if len(sizes) > 1:
            listed = ", ".join(f"{e.condition} {e.media.width}x{e.media.height}" for e in entries if e.media)
            problems.add(f"content '{content}'", f"conditions differ in resolution ({listed})")
        durations = [e.media.duration_s for e in entries if e.media]
        if durations and max(durations) - min(durations) > DURATION_TOLERANCE_S:
            listed = ", ".join(f"{e.condition} {e.media.duration_s:.2f}s" for e in entries if e.media)
            problems.add(f"content '{content}'", f"conditions differ in duration ({listed})")
