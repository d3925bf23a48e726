"""The child's lifeline: a pipe whose writer is gone ends the child at once; no variable, no watch."""

from __future__ import annotations

import os
import subprocess
import sys

from server.settings import PACKAGE_ROOT
from training.contract import LIFELINE_VARIABLE
from training.lifeline import EXIT_LAUNCHER_GONE, hold_lifeline

HOLDER = "import time; from training.lifeline import hold_lifeline; assert hold_lifeline(); time.sleep(60)"


def test_a_child_whose_lifeline_writer_is_gone_exits_at_once() -> None:
    read_end, write_end = os.pipe()
    os.close(write_end)  # the launcher died before the child got going
    env = {"PATH": "/usr/bin:/bin", LIFELINE_VARIABLE: str(read_end)}
    try:
        ended = subprocess.run([sys.executable, "-c", HOLDER], cwd=PACKAGE_ROOT, env=env, pass_fds=(read_end,), timeout=30, check=False)
    finally:
        os.close(read_end)
    assert ended.returncode == EXIT_LAUNCHER_GONE


def test_a_child_keeps_running_while_its_launcher_holds_the_lifeline() -> None:
    read_end, write_end = os.pipe()
    env = {"PATH": "/usr/bin:/bin", LIFELINE_VARIABLE: str(read_end)}
    child = subprocess.Popen([sys.executable, "-c", HOLDER.replace("time.sleep(60)", "time.sleep(1); print('alive')")], cwd=PACKAGE_ROOT, env=env, pass_fds=(read_end,), stdout=subprocess.PIPE, text=True)
    try:
        out, _ = child.communicate(timeout=30)
    finally:
        os.close(read_end)
        os.close(write_end)
    assert (child.returncode, out.strip()) == (0, "alive")


def test_without_the_variable_nothing_is_watched() -> None:
    assert hold_lifeline({}) is False and hold_lifeline({LIFELINE_VARIABLE: "not-a-number"}) is False
