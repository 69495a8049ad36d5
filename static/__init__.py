"""The browser's scripts and style sheets, installed as ``study_app.static``.

This file only makes the folder a package: pyproject.toml maps it into ``study_app``, and the
import hook of an editable install finds a mapped folder only when it is a regular package.
"""
