"""Progress bars: a redrawn tqdm bar on a terminal, periodic plain lines (no carriage returns) anywhere else."""

from __future__ import annotations

import io
import subprocess
import sys

from conftest import REPO
from trm.progress import PlainLineProgress, progress_bar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_not_a_terminal_gives_plain_lines_first_periodic_and_final(capsys):
    bar = progress_bar(total=10, desc="train", interval=0)
    assert isinstance(bar, PlainLineProgress)
    for step in range(10):
        bar.update(1)
        bar.set_postfix(loss=f"{step:.1f}", refresh=False)
    bar.close()
    err = capsys.readouterr().err
    assert "\r" not in err and "\x1b" not in err
    lines = err.splitlines()
    assert lines[0].startswith("train:   0% 0/10 [")
    assert lines[-1].startswith("train: 100% 10/10 [") and lines[-1].endswith("loss=9.0]")
    assert len(lines) >= 3


def test_plain_lines_are_rate_limited_and_the_final_line_is_not_repeated(capsys):
    for _ in progress_bar(range(1000), desc="build", interval=3600):
        pass
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(" [")[0] for line in lines] == ["build:   0% 0/1000", "build: 100% 1000/1000"]
    bar = progress_bar(total=5, desc="once", interval=3600)
    bar.close()  # nothing happened since the first line: no second one
    assert capsys.readouterr().err.splitlines() == ["once:   0% 0/5 [00:00<?, ?it/s]"]


def test_unknown_total_and_resumed_initial(capsys):
    for _ in progress_bar(iter(range(3)), desc="gen", interval=3600):
        pass
    bar = progress_bar(total=100, initial=40, desc="train", interval=3600)
    bar.update(60)
    bar.close()
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("gen: 0 [") and lines[1].startswith("gen: 3 [")
    assert lines[2].startswith("train:  40% 40/100") and lines[3].startswith("train: 100% 100/100")


def test_a_terminal_keeps_tqdms_redrawn_bar(monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    bar = progress_bar(total=3, desc="train")
    assert not isinstance(bar, PlainLineProgress)
    bar.update(3)
    bar.close()
    assert "\r" in terminal.getvalue()


def test_disabled_is_silent(capsys):
    bar = progress_bar(total=3, desc="eval", disable=True)
    bar.update(3)
    bar.close()
    assert capsys.readouterr().err == ""


def test_a_store_build_logged_to_a_file_has_no_carriage_returns(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "trm", "augment", "sudoku", "--source", "generate", "--out", str(tmp_path / "s.zarr"),
         "size=4", "num_train=20", "num_test=5", "num_aug=1"],
        capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stderr
    assert any(line.startswith("build train: 100% ") for line in result.stderr.splitlines()), result.stderr
