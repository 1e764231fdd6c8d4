"""Shell completion: ``gossamer --show-completion bash`` prints a script that, sourced in a
real bash, completes commands and the choices of -o."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

#: the installed command (tests run from the venv that installed it)
GOSSAMER = Path(sys.executable).with_name("gossamer")


def _complete(script: str, words: str, cword: int) -> list[str]:
    program = (
        f"{script}\nCOMP_WORDS=({words}); COMP_CWORD={cword}\n"
        "_gossamer_completion gossamer\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n"
    )
    env = {**os.environ, "PATH": f"{GOSSAMER.parent}:{os.environ.get('PATH', '')}"}
    done = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", program],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    return done.stdout.split()


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_the_bash_script_completes_commands_and_output_choices() -> None:
    # Typer finds the shell by walking the process tree (shellingham) and takes no shell
    # name then; under pytest's workers that walk may find none ("Shell  not supported").
    # Its own switch makes it take the name given, so the script is bash's whatever runs us.
    env = {**os.environ, "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    shown = subprocess.run(
        [str(GOSSAMER), "--show-completion", "bash"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert shown.returncode == 0, shown.stderr
    assert "complete -o default -F _gossamer_completion gossamer" in shown.stdout
    assert _complete(shown.stdout, "gossamer proxy-st", 1) == ["proxy-status"]
    assert _complete(shown.stdout, "gossamer get svc -o ''", 4) == ["table", "json", "yaml"]
