"""The wheel works without the source tree: templates, static files and the rater catalog are in it.

The wheel is built from a copy of the package folders, installed into a fresh venv, and a small script
run there (with the source tree out of reach) serves the organizer login, a rater page and a static file
through Flask's test client. The fresh venv borrows the dependencies of the venv running the tests
through a plain path in a ``.pth`` file, so nothing is downloaded, and the editable install's import
hook (started only by a ``.pth`` file of that folder) stays off.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
#: What a wheel is built from: the project's own folders, without caches or instance data.
SOURCES = ["pyproject.toml", "README.md", "study_app", "analysis", "templates", "static"]

# Run in the fresh venv: an app on a temp instance, an organizer and a study, then three pages.
SERVE = r'''
import json, sys
from pathlib import Path

import av
import numpy as np

import study_app
from study_app import accounts, create_app, db, migrate
from study_app.manifest import validate
from study_app.studies import create_study

inst = Path(sys.argv[1])
inst.mkdir(parents=True)
url = f"sqlite:///{inst / 'panelrank.sqlite'}"
app = create_app({"DATABASE_URL": url, "INSTANCE_DIR": str(inst), "SECRET_KEY": "wheel-test-secret"})
migrate.upgrade(url)
# One second of 320x180 video serves as every stimulus: the study is only there for its welcome page.
clip = inst / "clip.mp4"
with av.open(str(clip), "w") as out:
    stream = out.add_stream("libx264", rate=25)
    stream.width, stream.height, stream.pix_fmt = 320, 180, "yuv420p"
    for i in range(25):
        out.mux(stream.encode(av.VideoFrame.from_ndarray(np.full((180, 320, 3), 8 * i, np.uint8), format="rgb24")))
    out.mux(stream.encode())
manifest = {
    "name": "wheel check", "slug": "wheel", "method": "pc5",
    "conditions": [{"id": "a", "role": "reference"}, {"id": "b", "role": "submission"}],
    "contents": ["c1", "c2"],
    "stimuli": [{"content": c, "condition": k, "path": str(clip)} for c in ("c1", "c2") for k in ("a", "b")],
    "votes_per_pair": 1, "trials_per_session": 2, "repeats_per_session": 0, "gold_per_session": 0,
}
with app.app_context(), db.transaction(app) as s:
    accounts.create_organizer(s, "owner@example.org", "a-long-password")
    create_study(s, validate(manifest, inst / "manifest.yaml"))
client = app.test_client()
pages = {}
for path in ["/organizer/login", "/s/wheel/welcome", "/static/js/study.js"]:
    r = client.get(path, follow_redirects=True)  # the rater's first visit passes the entry, which sets a cookie
    pages[path] = {"status": r.status_code, "type": r.mimetype, "body": r.get_data(as_text=True)}
print(json.dumps({"study_app": study_app.__file__, "pages": pages}))
'''


def test_every_package_folder_is_listed_in_pyproject() -> None:
    """setuptools' ``packages`` list is explicit (it maps templates/ and static/): a new package needs an entry."""
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    # Alembic's migrations are package data (loaded by path, not imported).
    found = {".".join(module.parent.relative_to(ROOT).parts)
             for top in ("study_app", "analysis") for module in (ROOT / top).rglob("*.py")
             if "migrations" not in module.parts}
    assert found - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a clean copy of the sources (no build/ leftovers, no __pycache__)."""
    work = tmp_path_factory.mktemp("wheel")
    src = work / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=ignore)
        else:
            shutil.copy2(ROOT / name, src / name)
    # No build isolation: the backend comes from this venv, so nothing is downloaded.
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
          "--wheel-dir", str(work / "dist"), str(src)], cwd=work)
    (built,) = (work / "dist").glob("panelrank-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel installed; its dependencies are this venv's site-packages."""
    env_dir = tmp_path_factory.mktemp("venv") / "fresh"
    _run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], cwd=env_dir.parent)
    python = env_dir / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps", "--no-index",
          str(wheel)], cwd=env_dir.parent)
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     cwd=env_dir.parent).strip())
    # A plain path line: the folder joins sys.path, but its own .pth files (the editable hook) do not run.
    deps = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (site / "zz_test_dependencies.pth").write_text("\n".join(deps) + "\n", encoding="utf-8")
    return env_dir


@pytest.mark.slow
@pytest.mark.xdist_group("e2e")  # building and installing keeps a core busy: not beside the browser tests
def test_wheel_carries_templates_static_files_and_catalog(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"study_app/{path.relative_to(ROOT).as_posix()}"
                for top in ("templates", "static") for path in (ROOT / top).rglob("*") if _is_source(path)}
    expected |= {path.relative_to(ROOT).as_posix()
                 for top in ("study_app", "analysis") for path in (ROOT / top).rglob("*") if _is_source(path)}
    assert expected - names == set()
    assert "study_app/catalog/en.json" in names and "study_app/templates/organizer/login.html" in names


@pytest.mark.slow
@pytest.mark.xdist_group("e2e")
def test_installed_wheel_serves_login_rater_page_and_static_file(venv: Path, tmp_path: Path) -> None:
    script = tmp_path / "serve_check.py"
    script.write_text(SERVE, encoding="utf-8")
    out = json.loads(_run([str(venv / "bin" / "python"), str(script), str(tmp_path / "instance")], cwd=tmp_path))
    assert Path(out["study_app"]).is_relative_to(venv), "the package was imported from the source tree"
    pages = out["pages"]
    login = pages["/organizer/login"]
    assert login["status"] == 200 and 'name="password"' in login["body"]
    catalog = json.loads((ROOT / "study_app" / "catalog" / "en.json").read_text(encoding="utf-8"))
    welcome = pages["/s/wheel/welcome"]
    assert welcome["status"] == 200
    assert catalog["welcome.title"] in welcome["body"] and catalog["welcome.consent"] in welcome["body"]
    assert "welcome.title" not in welcome["body"]  # the raw key would mean an empty catalog
    study_js = pages["/static/js/study.js"]
    assert study_js["status"] == 200 and study_js["type"] == "text/javascript"
    assert study_js["body"] == (ROOT / "static" / "js" / "study.js").read_text(encoding="utf-8")


@pytest.mark.slow
@pytest.mark.xdist_group("e2e")
def test_installed_wheel_command_starts(venv: Path, tmp_path: Path) -> None:
    out = _run([str(venv / "bin" / "panelrank"), "--help"], cwd=tmp_path)
    assert "Usage" in out


@pytest.mark.slow
@pytest.mark.xdist_group("e2e")
def test_installed_wheel_builds_the_demo(venv: Path, tmp_path: Path) -> None:
    """`panelrank demo` reads its manifest from the installed package, not from a source checkout."""
    out = _run([str(venv / "bin" / "panelrank"), "demo", "--small", "--no-serve"], cwd=tmp_path)
    assert "created study 'demo'" in out, out
    clips = sorted((tmp_path / "instance" / "demo-clips-small").rglob("*.mp4"))
    assert len(clips) == 24, clips


def _is_source(path: Path) -> bool:
    # study_app/demo/clips: clips generated next to the demo manifest by hand (ignored by git).
    return path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc" and "clips" not in path.parts


def _run(args: list[str], cwd: Path) -> str:
    """Run outside the source tree, with nothing of it on the path; returns stdout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PANELRANK_", "VIRTUAL_ENV"))}
    env["PANELRANK_INSTANCE"] = str(cwd / "instance")
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(args)}\n{done.stdout}\n{done.stderr}"
    return done.stdout
