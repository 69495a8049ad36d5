"""The organizer's console: login and account, studies (list, upload, open/pause/close, settings),
progress, rater quality, results.

The blueprint lives in :mod:`study_app.organizer.common`; importing the page modules here
attaches their routes to it.
"""

from __future__ import annotations

from study_app.organizer import account, pages, quality, results  # noqa: F401  (attach their routes)
from study_app.organizer.common import bp

__all__ = ["bp"]
