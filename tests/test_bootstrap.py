"""The quick start's first step, `scripts/bootstrap.sh` (which `scripts/demo.sh` and every
make target source), says what it does in its own words: pip's output goes to a log, and a
venv that is already up to date costs nothing and prints nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sysconfig
import venv
from pathlib import Path

from tests.helpers.worker_commands import REPO_ROOT


def copy_of_repository(folder: Path) -> Path:
    """The files git tracks in this checkout, as they are in the working tree."""
    listed = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "ls-files", "-z"], capture_output=True, check=True
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO_ROOT / name
        if source.is_file():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, folder / name)
    return folder


def venv_over_this_one(folder: Path) -> Path:
    """An existing venv whose interpreter also sees the packages of the venv running the
    tests (a .pth line), so that installing the lock into it finds every package already
    there: bootstrap's own pip commands run for real in seconds, and write only into
    `folder` (pip leaves a package outside the venv it installs into alone)."""
    venv.EnvBuilder(with_pip=False).create(folder)
    site = sysconfig.get_path("purelib", vars={"base": str(folder), "platbase": str(folder)})
    Path(site, "tests_venv.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return folder


def bootstrap(repo: Path, venv_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["RESEARCH_VENV"] = str(venv_dir)
    return subprocess.run(
        ["bash", str(repo / "scripts" / "bootstrap.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_bootstrap_prints_its_own_line_once_then_nothing(tmp_path: Path) -> None:
    repo = copy_of_repository(tmp_path / "repo")
    venv_dir = venv_over_this_one(tmp_path / "venv")

    first = bootstrap(repo, venv_dir)
    assert first.returncode == 0, first.stderr
    assert first.stdout == ""
    assert first.stderr == f"installing the project and its locked dependencies into {venv_dir}\n"
    # It did install: the venv imports the contract from the copy, and pip's output, this
    # machine's complaints included, went to the log alone.
    where = subprocess.run(
        [
            str(venv_dir / "bin" / "python"),
            "-c",
            "import research_shared; print(research_shared.__file__)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(where.stdout.strip()).is_relative_to(repo), where.stdout
    assert "Successfully installed deep-research" in (venv_dir / "install.log").read_text()

    again = bootstrap(repo, venv_dir)
    assert (again.returncode, again.stdout, again.stderr) == (0, "", "")
