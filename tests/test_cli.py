"""The mimex-jax command runs end to end on a tiny budget."""

from __future__ import annotations

import pytest

from mimex_jax.cli import main


def test_demo_runs_and_prints_table(capsys) -> None:
    assert main(["--updates", "2", "--batch", "8"]) == 0
    out = capsys.readouterr().out
    assert "| mimex |" in out and "| rnd |" in out and "| running_mean |" in out


def test_bad_arguments_exit_with_message(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["demo", "--updates", "0"])
    assert "--updates and --batch must be >= 1" in capsys.readouterr().err
