"""Study pages: the list of studies, upload a new study, its status, progress and settings."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml
from flask import abort, current_app, flash, jsonify, redirect, render_template, request, url_for
from sqlalchemy import select
from werkzeug.datastructures import FileStorage
from werkzeug.utils import secure_filename
from werkzeug.wrappers import Response

from study_app import accounts
from study_app.db import get_db
from study_app.manifest import ManifestError, load
from study_app.models import STUDY_STATUSES, Study
from study_app.organizer.common import bp, me, own_study, safe_next
from study_app.progress import stopping, study_progress
from study_app.studies import create_study, study_counts

UPLOADED_CSV = "stimuli.csv"


@bp.route("/studies/new", methods=["GET", "POST"])
@accounts.login_required
def new_study() -> str | Response | tuple[str, int]:
    if request.method == "GET":
        return _new_study_page([])
    manifest = request.files.get("manifest")
    if manifest is None or not manifest.filename:
        return _new_study_page(["Choose a manifest file (YAML)."])
    stimuli = request.files.get("stimuli")
    if stimuli is not None and not stimuli.filename:
        stimuli = None
    try:
        slug = _create_from_upload(manifest, stimuli)
    except ManifestError as exc:
        get_db().rollback()
        return _new_study_page(exc.problems)
    flash(f"Study '{slug}' created.", "info")
    return redirect(url_for("organizer.study", slug=slug))


def _new_study_page(problems: list[str]) -> tuple[str, int]:
    """The create page: upload problems (400 when any), and the power-planning form's answer."""
    plan, plan_error = _vote_plan(request.args)
    page = render_template("organizer/new_study.html", me=me(), problems=problems, plan=plan, plan_error=plan_error,
                           plan_args=request.args, plan_defaults=PLAN_DEFAULTS)
    return page, 400 if problems or plan_error else 200


#: The power-planning form's fields and their defaults (analysis.planning.study_votes).
PLAN_DEFAULTS = {"delta": "0.3", "conditions": "12", "alpha": "0.05", "power": "0.8", "tie_rate": "0.2"}


def _vote_plan(args: Any) -> tuple[Any, str | None]:
    """The votes a study needs, from the create page's planning form; (None, None) when it was not sent."""
    if "delta" not in args:
        return None, None
    from analysis import planning

    try:
        values = {k: _number(k, args.get(k) or d) for k, d in PLAN_DEFAULTS.items()}
        if not values["conditions"].is_integer():
            raise ValueError(f"conditions must be a whole number, got {args.get('conditions')!r}")
        plan = planning.study_votes(values["delta"], int(values["conditions"]), alpha=values["alpha"],
                                    power=values["power"], tie_rate=values["tie_rate"])
    except ValueError as exc:  # not a number, or a value the planner refuses
        return None, str(exc)
    return plan, None


def _number(name: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {text!r}") from None


def _create_from_upload(manifest: FileStorage, stimuli: FileStorage | None) -> str:
    """Validate the uploaded files exactly as the CLI does and create the study, all or nothing."""
    manifest_name = secure_filename(manifest.filename or "") or "manifest.yaml"
    uploads = [(manifest_name, manifest.read())]
    if stimuli is not None:
        uploads.append((secure_filename(stimuli.filename or "") or "stimuli.csv", stimuli.read()))
    # Text that is not UTF-8 cannot be checked any further: say so plainly, for every such file.
    problems = [problem for name, data in uploads if (problem := _not_utf8(name, data))]
    if problems:
        raise ManifestError(problems)
    with tempfile.TemporaryDirectory(prefix="panelrank-upload-") as tmp:
        path = Path(tmp) / manifest_name
        path.write_bytes(uploads[0][1])
        if stimuli is not None:
            (Path(tmp) / UPLOADED_CSV).write_bytes(uploads[1][1])
            _point_at_uploaded_csv(path)
        try:
            vm = load(path, media_root=Path(current_app.config["MEDIA_ROOT"]))
        except ManifestError as exc:
            # Name the files as the organizer knows them, not by their temporary paths.
            names = {f"{tmp}/": ""}
            if stimuli is not None:
                names[UPLOADED_CSV] = uploads[1][0]
            raise ManifestError([_rename(p, names) for p in exc.problems]) from exc
        db = get_db()
        study = create_study(db, vm, organizer_id=me().id)
        db.commit()
        return study.slug


def _not_utf8(name: str, data: bytes) -> str | None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return (f"{name}: file: not UTF-8 text (byte 0x{data[exc.start]:02x} at position {exc.start}); "
                "save it with UTF-8 encoding and upload it again")
    return None


def _rename(problem: str, names: dict[str, str]) -> str:
    for old, new in names.items():
        problem = problem.replace(old, new)
    return problem


def _point_at_uploaded_csv(path: Path) -> None:
    # An uploaded CSV is the stimulus list, whatever file name the manifest mentions.
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError):
        return  # load() reports the broken YAML with its details
    if isinstance(raw, dict):
        raw["stimuli"] = UPLOADED_CSV
        path.write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True), encoding="utf-8")


@bp.get("/studies/<slug>")
@accounts.login_required
def study(slug: str) -> str:
    found = own_study(slug)
    return render_template("organizer/study.html", me=me(), study=found,
                           progress=study_progress(get_db(), found), stopping=stopping(get_db(), found),
                           rater_url=url_for("rater.entry", slug=slug, _external=True))


@bp.get("/studies/<slug>/progress.json")
@accounts.login_required
def progress_json(slug: str) -> Response:
    return jsonify(study_progress(get_db(), own_study(slug)))


#: Settings that may change while a study runs: none of them alters the plan or stored votes.
SAFE_SETTINGS = ("name", "instructions", "max_sessions_per_rater", "completion_url")


@bp.post("/studies/<slug>/settings")
@accounts.login_required
def settings(slug: str) -> Response:
    found = own_study(slug)
    values = _read_settings(request.form)
    found.name = values["name"]
    found.max_sessions_per_rater = values["max_sessions_per_rater"]
    manifest: dict[str, Any] = dict(found.manifest)
    manifest["name"] = values["name"]
    manifest["instructions"] = values["instructions"]
    manifest["max_sessions_per_rater"] = values["max_sessions_per_rater"]
    manifest["panel"] = {**manifest.get("panel", {}), "completion_url": values["completion_url"] or None}
    found.manifest = manifest  # a new dict, so the JSON column is seen as changed
    get_db().commit()
    flash("Settings saved.", "info")
    return redirect(url_for("organizer.study", slug=slug))


def _read_settings(form: Any) -> dict[str, Any]:
    name = (form.get("name") or "").strip()
    if not name or len(name) > 200:
        abort(400, description="The study name must be 1–200 characters.")
    try:
        cap = int(form.get("max_sessions_per_rater", ""))
    except ValueError:
        cap = 0
    if cap < 1:
        abort(400, description="Max sessions per rater must be a whole number of at least 1.")
    url = (form.get("completion_url") or "").strip()
    if url and not url.startswith(("https://", "http://")):
        abort(400, description="The completion URL must start with https:// or http://.")
    return {"name": name, "instructions": form.get("instructions") or "", "max_sessions_per_rater": cap,
            "completion_url": url}


@bp.get("/")
@accounts.login_required
def studies() -> str:
    db = get_db()
    query = select(Study).order_by(Study.created_at.desc())
    if me().role != "admin":
        query = query.where(Study.organizer_id == me().id)
    found = db.scalars(query).all()
    counts = study_counts(db, found)
    rows = [(s, counts[s.id]) for s in found]
    return render_template("organizer/studies.html", rows=rows, me=me())


@bp.post("/studies/<slug>/status")
@accounts.login_required
def set_status(slug: str) -> Response:
    study = own_study(slug)
    status = request.form.get("status", "")
    if status not in STUDY_STATUSES:
        abort(400, description=f"unknown status '{status}'; known: {', '.join(STUDY_STATUSES)}")
    study.status = status
    get_db().commit()
    flash(f"Study '{slug}' is now {status}.", "info")
    return redirect(safe_next(request.form.get("back"), url_for("organizer.study", slug=slug)))
