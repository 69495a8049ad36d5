"""``command``: any external program as a scorer.

The program is run once per ordered pair with the two stimulus paths and must print
one JSON object on stdout::

    {"p": 0.73, "aux_a": [11 numbers in 0..1], "aux_b": [11 numbers in 0..1]}

The command is a list of arguments (no shell). ``{a}`` and ``{b}`` in any argument are
replaced by the two paths; without placeholders the paths are appended. Examples::

    CommandScorer(["python", "my_vqa.py", "--gpu", "0"])
    CommandScorer("my_vqa --first {a} --second {b}", timeout=120)

A timeout, a non-zero exit and unreadable output each raise :class:`ScorerError` naming
the command and the pair, with the tail of stderr when there is one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..base import PairScore, ScorerError, StrPath
from .base import PairScorer

COMMAND_ADAPTER_VERSION = "1.0"
_STDERR_TAIL = 600


@dataclass
class CommandScorer(PairScorer):
    """Run ``command`` per pair and parse its JSON (see the module docstring).

    Parameters
    ----------
    command
        Argument list, or a string split with :func:`shlex.split`.
    timeout
        Seconds per call before it is killed.
    version
        The external scorer's version; it keys the cache. By default a hash of the
        command line, so changing the command invalidates cached results — set it
        explicitly when the program behind an unchanged command line changes.
    env
        Extra environment variables for the process.
    cwd
        Working directory for the process.
    """

    command: str | Sequence[str]
    timeout: float = 300.0
    version: str = ""
    env: Mapping[str, str] | None = None
    cwd: StrPath | None = None
    name: str = field(default="command", init=False)

    def __post_init__(self) -> None:
        self.argv: list[str] = (
            shlex.split(self.command) if isinstance(self.command, str) else [str(a) for a in self.command]
        )
        if not self.argv:
            raise ValueError("command is empty")
        if not self.version:
            digest = hashlib.sha256(json.dumps(self.argv).encode()).hexdigest()[:12]
            self.version = f"{COMMAND_ADAPTER_VERSION}+cmd.{digest}"

    @property
    def display(self) -> str:
        """The command line as a user would type it (for messages)."""
        return shlex.join(self.argv)

    def argv_for(self, path_a: StrPath, path_b: StrPath) -> list[str]:
        """The argument list for one pair (placeholders filled, or paths appended).

        Parameters
        ----------
        path_a, path_b : str or PathLike

        Returns
        -------
        list of str
            ``argv`` with ``{a}``/``{b}`` replaced when any argument holds one, else ``argv``
            followed by the two paths.
        """
        a, b = os.fspath(path_a), os.fspath(path_b)
        if any("{a}" in arg or "{b}" in arg for arg in self.argv):
            return [arg.replace("{a}", a).replace("{b}", b) for arg in self.argv]
        return [*self.argv, a, b]

    def compare(self, path_a: StrPath, path_b: StrPath) -> PairScore:
        """See :meth:`Scorer.compare`: run the command on (A, B) and parse the JSON ``{p, aux_a, aux_b}`` it prints.

        ``aux`` of one stimulus runs the command with the stimulus on both sides, and those
        aux scores serve as its features. Raises :class:`ScorerError` when the command cannot
        start, times out, exits non-zero, or prints anything but a valid answer.
        """
        import subprocess

        where = f"command {self.display!r} on pair ({os.fspath(path_a)}, {os.fspath(path_b)})"
        env = None if self.env is None else {**os.environ, **self.env}
        try:
            done = subprocess.run(
                self.argv_for(path_a, path_b),
                capture_output=True,
                text=True,
                timeout=self.timeout,
                env=env,
                cwd=self.cwd,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ScorerError(f"{where} timed out after {self.timeout:g} s") from exc
        except OSError as exc:
            raise ScorerError(f"{where} could not start: {exc}") from exc
        if done.returncode != 0:
            tail = done.stderr.strip()[-_STDERR_TAIL:]
            raise ScorerError(f"{where} exited with status {done.returncode}" + (f"; stderr: {tail}" if tail else ""))
        try:
            data: Any = json.loads(done.stdout)
        except json.JSONDecodeError as exc:
            shown = done.stdout.strip()[:200]
            raise ScorerError(f"{where} printed invalid JSON ({exc.msg}): {shown!r}") from exc
        if not isinstance(data, dict):
            raise ScorerError(f"{where} printed {type(data).__name__}, expected an object {{p, aux_a, aux_b}}")
        try:
            return PairScore.from_dict(data)
        except ScorerError as exc:
            raise ScorerError(f"{where} returned a bad answer: {exc}") from exc
