"""gunicorn server hooks of ``panelrank serve`` (loaded with ``--config python:study_app.gunicorn_conf``).

The settings themselves (worker class, threads, bind, pid file) are command-line
arguments built by :func:`study_app.cli.study.gunicorn_args`; this module only holds hooks.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
from typing import Any

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def post_fork(server: Any, worker: Any) -> None:
    """Make each worker die with its master.

    gunicorn's workers notice a dead master only between requests and then wait for
    their connections (``graceful_timeout``), still holding the listening socket: a
    master killed with ``kill -9`` left workers serving slow clip downloads on the port,
    and a new ``serve`` could not bind it. The kernel's parent-death signal ends them at
    once; a vote in flight is rolled back by the database and retried by the browser.
    """
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        server.log.warning("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
    # The master may have died between fork() and prctl(): then no signal will come.
    if os.getppid() != server.pid:
        os._exit(0)
