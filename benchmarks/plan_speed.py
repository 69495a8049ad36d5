"""Plan generation and writing at the 2025 challenge's scale (PROTOCOL.md §5).

Prints: ``plan.make_plan`` for 12 conditions × 3,000 contents (random_k, k = 6 pairs per
content, 15 votes per pair → 270,000 main trials), then ``studies.create_study`` writing the
whole study (36,000 stimuli and every trial) to a fresh SQLite file in one transaction.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from analysis.video import VideoInfo
from study_app import create_app, db, design, migrate
from study_app.manifest import StimulusEntry, ValidatedManifest
from study_app.plan import make_plan, plan_summary
from study_app.studies import create_study

CONDITIONS = tuple(f"T{i:02d}" for i in range(1, 13))
CONTENTS = tuple(f"v{i:04d}" for i in range(1, 3001))


def spec() -> design.DesignSpec:
    roles = {c: "submission" for c in CONDITIONS} | {"T01": "reference"}
    return design.DesignSpec(method="pc5", conditions=CONDITIONS, roles=roles, contents=CONTENTS, pairwise=True,
                             design="random_k", k=6, votes_per_item=15, trials_per_session=30,
                             repeats_per_session=5, seed=1)


def manifest(s: design.DesignSpec) -> ValidatedManifest:
    media = VideoInfo(width=1280, height=720, fps=25.0, duration_s=10.0, n_frames=250, codec="h264",
                      size_bytes=None)
    # URLs: local files would be remuxed into clean copies, and this measures the plan and the write.
    stimuli = [StimulusEntry(c, k, f"https://example.org/{c}/{k}.mp4", media) for c in CONTENTS for k in CONDITIONS]
    settings = {"name": "scale", "slug": "scale", "method": "pc5", "seed": 1, "max_sessions_per_rater": 1,
                "panel": {"name": "none"}}
    return ValidatedManifest(source=Path("scale.yaml"), settings=settings, spec=s,
                             labels=dict.fromkeys(CONDITIONS), stimuli=stimuli)


def main() -> None:
    s = spec()
    t0 = time.perf_counter()
    plan = make_plan(s)
    t_plan = time.perf_counter() - t0
    summary = plan_summary(plan)
    print(f"plan: {summary['main']:,} main + {summary['repeat']:,} repeat trials in "
          f"{summary['sessions']:,} sessions")
    print(f"  plan.make_plan                            {t_plan:7.2f} s")
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/scale.sqlite"
        app = create_app({"DATABASE_URL": url, "INSTANCE_DIR": tmp})
        migrate.upgrade(url)
        vm = manifest(s)
        t0 = time.perf_counter()
        with app.app_context(), db.transaction(app) as session:
            create_study(session, vm)
        t_write = time.perf_counter() - t0
        size = Path(f"{tmp}/scale.sqlite").stat().st_size
    print(f"  create_study (plan + SQLite write, 1 tx)  {t_write:7.2f} s   database {size / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
