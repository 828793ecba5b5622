"""Shell completion: ``gitmirror completion SHELL`` prints click's script, which completes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def gitmirror(args, **env):
    return subprocess.run([sys.executable, "-m", "gitmirror", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=60)


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_clicks_script(shell):
    done = gitmirror(["completion", shell])
    assert done.returncode == 0, done.stderr
    same = gitmirror([], _GITMIRROR_COMPLETE=f"{shell}_source")
    assert done.stdout.strip() == same.stdout.strip()
    assert "_GITMIRROR_COMPLETE" in done.stdout


def test_completion_defaults_to_the_login_shell_and_refuses_unknown_ones():
    assert "complete -o nosort" in gitmirror(["completion"], SHELL="/bin/bash").stdout
    done = gitmirror(["completion"], SHELL="/bin/tcsh")
    assert done.returncode == 2 and "bash, zsh or fish" in done.stderr


def test_bash_completion_completes_commands_and_options():
    words = gitmirror([], _GITMIRROR_COMPLETE="bash_complete", COMP_WORDS="gitmirror clo", COMP_CWORD="1").stdout
    assert "clone-push" in words
    options = gitmirror([], _GITMIRROR_COMPLETE="bash_complete", COMP_WORDS="gitmirror clone-push --dr",
                        COMP_CWORD="2").stdout
    assert "--dry-run" in options


@pytest.mark.skipif(not os.path.exists("/bin/bash"), reason="needs bash")
def test_the_bash_script_loads_in_bash():
    script = gitmirror(["completion", "bash"]).stdout
    done = subprocess.run(["bash", "-c", script + "\ncomplete -p gitmirror"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and "_gitmirror_completion" in done.stdout, done.stderr
