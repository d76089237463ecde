"""A fresh virtual environment for installing plugin packages in tests, never the shared one.

``python -m venv --system-site-packages`` alone would see the base interpreter's packages, not those of the
environment the tests run in (itself often a virtual environment holding torch and trm), so a ``.pth`` file adds
that environment's site-packages (with ``site.addsitedir``, so that its own ``.pth`` files, such as an editable
install's, run too). pip then installs into the new environment only.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path


class PluginVenv:
    def __init__(self, root: Path):
        self.root = Path(root)
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(self.root)],
                       check=True, capture_output=True, timeout=300)
        self.python = self.root / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
        purelib = subprocess.run([str(self.python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                 check=True, capture_output=True, text=True).stdout.strip()
        parents = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
        # site.addsitedir, not a bare path line: the parent's own .pth files must run too, among them the editable
        # install's finder that makes `trm` importable (a bare path line adds the folder but skips its .pth files).
        Path(purelib, "_trm_test_parent.pth").write_text(
            "".join(f"import site; site.addsitedir({parent!r})\n" for parent in parents))
        self.env = {**os.environ, "TRM_TRACKERS": "none", "MKL_CBWR": "AUTO,STRICT", "PYTHONDONTWRITEBYTECODE": "1"}

    def run(self, *args: str, cwd: Path | None = None, env: dict | None = None,
            timeout: int = 900) -> subprocess.CompletedProcess:
        """``python ARGS`` in the environment (``-m pip ...``, ``-m trm ...``)."""
        return subprocess.run([str(self.python), *args], capture_output=True, text=True, cwd=cwd,
                              env={**self.env, **(env or {})}, timeout=timeout)

    def pip_install_editable(self, directory: Path) -> None:
        # Offline and without build isolation: the setuptools of the running environment builds it.
        result = self.run("-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
                          "-e", str(directory))
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]

    def trm(self, *args: str, cwd: Path | None = None, env: dict | None = None,
            timeout: int = 900) -> subprocess.CompletedProcess:
        return self.run("-m", "trm", *args, cwd=cwd, env=env, timeout=timeout)
