"""The participant's path: entry → instructions/consent → screen check → study → completion.

One blueprint (:mod:`study_app.rater.blueprint`, with what pages and API share); the pages are
in :mod:`study_app.rater.pages`, the JSON API the study page talks to in :mod:`study_app.rater.api`.
Importing this package attaches both to :data:`bp`.
"""

from study_app.rater import api, pages  # noqa: F401  (attach the routes to ``bp``)
from study_app.rater.blueprint import bp

__all__ = ["bp"]
