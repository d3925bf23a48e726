"""The child's lifeline: it stops the moment the process that launched it is gone.

The launcher (server/sandbox.py) passes the read end of a pipe whose only writer it holds, and names
it in LIFELINE_VARIABLE. Nothing is ever written: a read returns only at end of file, which the
kernel gives when the launcher's end is closed, i.e. when the launcher died (SIGKILL, an OOM kill)
or finished with the child. bubblewrap's --die-with-parent misses a launcher that dies while bwrap
starts, and an unconfined child has no such guard; without this a sleeping child would run on for
good, its wall-clock limit gone with its launcher.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping

from training.contract import LIFELINE_VARIABLE

EXIT_LAUNCHER_GONE = 75  # nobody reads the result; the code only shows in a process listing


def hold_lifeline(environ: Mapping[str, str] = os.environ) -> bool:
    """Watch the lifeline in a daemon thread when the launcher gave one; returns whether it did."""
    value = environ.get(LIFELINE_VARIABLE, "")
    if not value.isdigit():
        return False
    threading.Thread(target=_exit_when_cut, args=(int(value),), name="mlgate-lifeline", daemon=True).start()
    return True


def _exit_when_cut(fd: int) -> None:
    try:
        while os.read(fd, 1):
            continue
    except OSError:
        pass  # closed under us (features.py closing fds): treated as cut
    os._exit(EXIT_LAUNCHER_GONE)
