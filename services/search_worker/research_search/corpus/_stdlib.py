"""The built-in corpus: the installed Python's standard library documentation, as markdown.

With no API key and no network, the quick start still researches something real: the local
search provider indexes one markdown file per standard library module, rendered from the
docstrings of the Python that runs the worker (`_render.py` says how).

The modules are imported and rendered in child processes, not in the worker: importing a
hundred-odd modules into a long-running worker would keep them in its memory for good, and a
module whose import misbehaves on some platform then costs a skipped file, not the worker.
The children run `python -m research_search.corpus`, which imports this package (the
standard library and its two document parsers) and not the contract package, so they start
fast.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from research_search.corpus._render import render_module

__all__ = [
    "CORPUS_FORMAT",
    "CORPUS_MODULES",
    "DefaultCorpusError",
    "default_corpus_dir",
    "ensure_default_corpus",
]

_log = logging.getLogger(__name__)

# Bumped when the module list or the rendering changes, so an existing corpus is rebuilt.
CORPUS_FORMAT = 2
_MARKER = ".complete.json"
_TEMP_PREFIX = ".building-"
# A temporary build folder this old belongs to a build that died, not to one still running.
_STALE_BUILD_SECONDS = 600.0
_RENDER_TIMEOUT_SECONDS = 300.0
# The package's __main__.py: a child renders the modules named on its command line.
_CHILD_ENTRY = "research_search.corpus"

CORPUS_MODULES: tuple[str, ...] = (
    # Concurrency and processes
    "asyncio",
    "asyncio.subprocess",
    "concurrent.futures",
    "contextvars",
    "multiprocessing",
    "queue",
    "sched",
    "select",
    "selectors",
    "signal",
    "subprocess",
    "threading",
    # Data, persistence and compression
    "array",
    "base64",
    "binascii",
    "bz2",
    "configparser",
    "copy",
    "csv",
    "dbm",
    "gzip",
    "json",
    "lzma",
    "pickle",
    "shelve",
    "sqlite3",
    "struct",
    "tarfile",
    "tomllib",
    "zipfile",
    "zlib",
    # Files and the operating system
    "atexit",
    "filecmp",
    "fnmatch",
    "getpass",
    "glob",
    "io",
    "mmap",
    "os",
    "os.path",
    "pathlib",
    "platform",
    "shutil",
    "stat",
    "sys",
    "sysconfig",
    "tempfile",
    # Text
    "codecs",
    "difflib",
    "gettext",
    "locale",
    "pprint",
    "re",
    "reprlib",
    "shlex",
    "string",
    "textwrap",
    "unicodedata",
    # Data types and algorithms
    "abc",
    "bisect",
    "collections",
    "collections.abc",
    "dataclasses",
    "datetime",
    "calendar",
    "enum",
    "functools",
    "graphlib",
    "heapq",
    "itertools",
    "operator",
    "types",
    "typing",
    "weakref",
    "zoneinfo",
    # Numbers
    "cmath",
    "decimal",
    "fractions",
    "math",
    "numbers",
    "random",
    "secrets",
    "statistics",
    # Security and identifiers
    "hashlib",
    "hmac",
    "ssl",
    "uuid",
    # Networking and the internet
    "email",
    "email.message",
    "email.utils",
    "ftplib",
    "html",
    "html.parser",
    "http",
    "http.client",
    "http.cookies",
    "http.server",
    "imaplib",
    "ipaddress",
    "mailbox",
    "smtplib",
    "socket",
    "socketserver",
    "urllib.parse",
    "urllib.request",
    "wsgiref",
    "xml.etree.ElementTree",
    # Program structure, introspection and runtime
    "argparse",
    "ast",
    "builtins",
    "contextlib",
    "dis",
    "gc",
    "importlib",
    "importlib.metadata",
    "importlib.resources",
    "inspect",
    "keyword",
    "pkgutil",
    "tokenize",
    "venv",
    "warnings",
    # Logging, debugging, testing and profiling
    "cProfile",
    "doctest",
    "faulthandler",
    "logging",
    "logging.config",
    "logging.handlers",
    "pdb",
    "timeit",
    "traceback",
    "tracemalloc",
    "unittest",
    "unittest.mock",
)
"""The modules of the built-in corpus; those that fail to import on a platform are skipped."""


class DefaultCorpusError(RuntimeError):
    """The built-in corpus could not be built (its render processes failed)."""


def default_corpus_dir(data_dir: Path) -> Path:
    """Where the built-in corpus of this Python version lives under `data_dir`."""
    major, minor = sys.version_info[:2]
    return data_dir / "corpus" / f"python-{major}.{minor}-stdlib"


def ensure_default_corpus(data_dir: Path) -> Path:
    """Return the built-in corpus folder, building it first if it is missing or incomplete.

    The build renders into a temporary folder next to the final one and renames it into
    place, then the marker file says the corpus is complete; a build that was interrupted
    leaves no marker and is redone. Two processes building at once both succeed: the one that
    renames second keeps the first one's folder.
    """
    target = default_corpus_dir(data_dir)
    if _is_complete(target):
        return target
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_builds(parent)

    started = time.monotonic()
    staging = Path(tempfile.mkdtemp(prefix=f"{_TEMP_PREFIX}{target.name}-", dir=parent))
    try:
        written, skipped = _render_all(staging, CORPUS_MODULES)
        if not written:
            raise DefaultCorpusError(f"no standard library module could be rendered into {staging}")
        marker = {
            "format": CORPUS_FORMAT,
            "python": sys.version.split()[0],
            "modules": written,
            "skipped": skipped,
            "build_seconds": round(time.monotonic() - started, 2),
        }
        (staging / _MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
        _install(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    _log.info(
        "built the default corpus at %s: %d modules, %d skipped, %.1f s",
        target,
        len(written),
        len(skipped),
        time.monotonic() - started,
    )
    return target


def _is_complete(folder: Path) -> bool:
    try:
        marker = json.loads((folder / _MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(marker, dict) and marker.get("format") == CORPUS_FORMAT


def _install(staging: Path, target: Path) -> None:
    """Move a finished build into place, replacing an incomplete or outdated folder."""
    if target.exists():
        if _is_complete(target):
            # Another process finished first; its corpus is as good as ours.
            return
        trash = target.with_name(f"{_TEMP_PREFIX}{target.name}-old-{os.getpid()}")
        target.rename(trash)
        shutil.rmtree(trash, ignore_errors=True)
    try:
        staging.rename(target)
    except OSError:
        # Lost a race against another builder between the check and the rename.
        if not _is_complete(target):
            raise


def _remove_stale_builds(parent: Path) -> None:
    now = time.time()
    for entry in parent.glob(f"{_TEMP_PREFIX}*"):
        try:
            if now - entry.stat().st_mtime > _STALE_BUILD_SECONDS:
                shutil.rmtree(entry, ignore_errors=True)
        except OSError:
            continue


def _render_all(out_dir: Path, modules: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """Render `modules` into `out_dir` with a few child processes working in parallel."""
    workers = max(1, min(4, os.cpu_count() or 1, len(modules)))
    # Round-robin, so the few very large modules do not all land on one process.
    batches = [list(modules[i::workers]) for i in range(workers)]
    command = [sys.executable, "-P", "-m", _CHILD_ENTRY, str(out_dir)]
    procs = [
        subprocess.Popen(
            [*command, *batch],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for batch in batches
    ]
    failures: list[str] = []
    deadline = time.monotonic() + _RENDER_TIMEOUT_SECONDS
    for proc in procs:
        try:
            _, stderr = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            failures.append(f"timed out after {_RENDER_TIMEOUT_SECONDS:.0f} s")
            continue
        if stderr.strip():
            _log.debug("corpus render output: %s", stderr.strip()[-2000:])
        if proc.returncode != 0:
            failures.append(f"exit status {proc.returncode}: {stderr.strip()[-500:]}")
    if failures:
        raise DefaultCorpusError(
            "rendering the standard library documentation failed: " + "; ".join(failures)
        )
    written = [name for name in modules if (out_dir / f"{name}.md").is_file()]
    skipped = [name for name in modules if name not in set(written)]
    return written, skipped


def render_child_main(argv: list[str]) -> int:
    """Child process entry: render each named module into the folder, skipping failures."""
    out_dir = Path(argv[0])
    for name in argv[1:]:
        try:
            text = render_module(name)
        except (Exception, SystemExit) as err:
            # A module missing on this platform (or broken) is skipped, not fatal.
            print(f"skipped {name}: {type(err).__name__}: {err}", file=sys.stderr)
            continue
        (out_dir / f"{name}.md").write_text(text, encoding="utf-8")
    return 0
