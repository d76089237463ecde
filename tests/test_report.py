"""trm report: one self-contained HTML file, checked in a real browser (headless Chromium) by its pixels."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WIDTH, HEIGHT = 1280, 4000
CURVE_BLUE = (31, 119, 180)  # matplotlib's first line colour: train lm_loss / accuracy
TINT = (255, 223, 195)  # a trajectory's changed-cell tint (orange at alpha 0.25 over white)
SUDOKU_BLUE = (31, 95, 191)  # the model's digits on a Sudoku board


@pytest.fixture(scope="module")
def report(tiny_sudoku_run, tmp_path_factory):
    from trm.cli.report import build_report

    return build_report(tiny_sudoku_run, tmp_path_factory.mktemp("report") / "report.html", trajectories=2)


def test_the_report_is_one_self_contained_file(report):
    page = report.read_text()
    for section in ("Learning curves", "Evaluation results", "Depth curve", "Sample trajectories", "Recipe"):
        assert f"<h2>{section}</h2>" in page
    assert re.findall(r'(?:src|href)="(?!data:)', page) == []  # nothing fetched: every image is inline
    assert "http://" not in page and "https://" not in page
    assert page.count('src="data:image/png;base64,') >= 3  # curves and two trajectories
    assert 'id="curves"' in page and 'id="trajectory"' in page
    assert "exact_match/exact_accuracy" in page and "global_batch_size" in page


def test_report_refuses_a_folder_that_is_not_a_run(tmp_path):
    from tiny_runs import trm

    result = trm("report", str(tmp_path))
    assert result.returncode == 2 and "not a run directory (no recipe.yaml)" in result.stderr


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("Chromium is not installed, so the report cannot be checked in a browser (Debian: apt-get "
                    "install chromium; .ci/run installs it)")
    return found


def screenshot(page: Path, out: Path) -> np.ndarray:
    from PIL import Image

    profile = out.parent / f"{out.stem}-profile"
    profile.mkdir()
    result = subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={out}",
                             f"--window-size={WIDTH},{HEIGHT}", page.resolve().as_uri()],
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0 and out.exists(), result.stderr[-2000:]
    return np.asarray(Image.open(out).convert("RGB")).astype(int)


def count(pixels: np.ndarray, colour: tuple[int, int, int], tolerance: int = 10) -> int:
    return int((np.abs(pixels - np.array(colour)).max(axis=-1) <= tolerance).sum())


def drawn(pixels: np.ndarray) -> dict[str, bool]:
    """Whether the curves (top of the page: the first image) and a trajectory (below them) are drawn."""
    top, below = pixels[:900], pixels[900:]
    return {"curves": count(top, CURVE_BLUE) > 300,
            "trajectory": count(below, TINT) > 300 and count(below, SUDOKU_BLUE) > 100}


def test_chromium_draws_the_curves_and_a_trajectory(report, tmp_path):
    pixels = screenshot(report, tmp_path / "report.png")
    assert pixels.shape[:2] == (HEIGHT, WIDTH)
    assert drawn(pixels) == {"curves": True, "trajectory": True}


def test_the_browser_check_fails_on_a_report_whose_images_do_not_load(report, tmp_path):
    broken = tmp_path / "broken.html"
    broken.write_text(re.sub(r'src="data:image/png;base64,[^"]*"', 'src="data:image/png;base64,AAAA"',
                             report.read_text()))
    assert drawn(screenshot(broken, tmp_path / "broken.png")) == {"curves": False, "trajectory": False}
