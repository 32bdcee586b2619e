"""The built-in corpus: the installed Python's standard library documentation, as markdown.

With no API key and no network, the quick start still researches something real: the local
search provider indexes one markdown file per standard library module, rendered with
`inspect` from the docstrings of the Python that runs the worker. The files are real
markdown (prose paragraphs and lists, code in fenced blocks, a heading per class and
function), because the offline writer quotes prose sentences and leaves code alone.

The modules are imported and rendered in child processes, not in the worker: importing a
hundred-odd modules into a long-running worker would keep them in its memory for good, and a
module whose import misbehaves on some platform then costs a skipped file, not the worker.
Only the standard library is imported here, so the child processes start fast.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import inspect
import json
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import NewType

__all__ = [
    "CORPUS_MODULES",
    "DefaultCorpusError",
    "default_corpus_dir",
    "default_index_path",
    "docstring_markdown",
    "ensure_default_corpus",
    "render_module",
]

_log = logging.getLogger(__name__)

# Bumped when the module list or the rendering changes, so an existing corpus is rebuilt.
CORPUS_FORMAT = 2
_MARKER = ".complete.json"
_TEMP_PREFIX = ".building-"
# A temporary build folder this old belongs to a build that died, not to one still running.
_STALE_BUILD_SECONDS = 600.0
_RENDER_TIMEOUT_SECONDS = 300.0
_SUMMARY_CHARS = 160

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


def default_index_path(data_dir: Path, corpus_dir: Path) -> Path:
    """The index file of `corpus_dir`, under `data_dir/index/`.

    The name carries a digest of the corpus folder's absolute path, so two corpora never
    share (and keep rebuilding) one index.
    """
    resolved = str(Path(corpus_dir).expanduser().resolve())
    digest = hashlib.sha256(resolved.encode("utf-8")).hexdigest()[:16]
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(resolved).name).strip("-.") or "corpus"
    return data_dir / "index" / f"{slug}-{digest}.sqlite3"


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
    command = [sys.executable, "-P", "-m", __name__, str(out_dir)]
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


def render_module(name: str) -> str:
    """The markdown document of one module, rendered from its docstrings.

    A title with the module's one-line summary, a provenance note as an HTML comment (the
    indexer leaves comments out, so it is never searched or quoted), a link to the module's
    page on docs.python.org, the module docstring, then a `##` section per public class and
    function (signature in the heading, docstring as prose) and a `###` section per public
    method or documented attribute of a class. Private names, dunder methods other than
    `__init__`, `__call__`, `__enter__` and `__exit__`, inherited members and module data
    are left out.
    """
    module = importlib.import_module(name)
    doc = _own_doc(module)
    summary = _summary(doc) or "Python standard library module"
    major, minor = sys.version_info[:2]
    page = _DOC_PAGES.get(name, name.lower())
    parts = [
        f"# {name} — {summary}",
        f"<!-- generated from the docstrings of Python {platform.python_version()} "
        f"(module {name}) -->",
        f"Reference: <{_DOCS_URL.format(version=f'{major}.{minor}', page=page)}>",
    ]
    if doc:
        parts.append(docstring_markdown(doc))
    rendered: set[int] = set()
    # Headings name members without the module: the title names it once, and "threading."
    # in every heading would make each passage of the file match "threads" alike.
    for member_name, member in _public_members(module):
        # An alias (`SocketType = socket`) would repeat a section word for word.
        if id(member) in rendered:
            continue
        rendered.add(id(member))
        if inspect.isclass(member):
            parts.extend(_class_sections(module, member_name, member))
        elif inspect.isroutine(member):
            parts.append(_routine_section(2, "", member_name, member, member, False))
        else:
            parts.append(_attribute_section(2, "", member_name, _own_doc(member)))
    return "\n\n".join(part for part in parts if part) + "\n"


def docstring_markdown(doc: str) -> str:
    """A docstring as markdown: prose as paragraphs and lists, code in fenced blocks.

    Blank lines and indentation are what structure a docstring: a block is code when it is
    a doctest (`>>>`), parses as Python, reads as symbols more than words, or is indented
    under a `::`; otherwise it is prose, and its hanging indents and `term -- description`
    lines become list items. Underlined titles become bold lines, so they do not break the
    document's heading levels. Every paragraph and list item is one line, so no wrapped
    line can be read as markdown syntax.
    """
    return "\n\n".join(_blocks(inspect.cleandoc(doc).splitlines(), literal=False))


def _summary(doc: str | None) -> str:
    """The first sentence of a docstring's first paragraph, on one line."""
    paragraph = re.split(r"\n\s*\n", (doc or "").strip(), maxsplit=1)[0]
    line = " ".join(paragraph.split())
    sentence = re.split(r"(?<=[.!?])\s", line, maxsplit=1)[0]
    if len(sentence) > _SUMMARY_CHARS:
        sentence = sentence[: _SUMMARY_CHARS - 1].rsplit(" ", 1)[0] + "…"
    return sentence


# ---------------------------------------------------------------------------------------------
# Members and signatures
# ---------------------------------------------------------------------------------------------

_DOCS_URL = "https://docs.python.org/{version}/library/{page}.html"
# Modules documented on a page that is not named after them.
_DOC_PAGES = {"asyncio.subprocess": "asyncio-subprocess", "cProfile": "profile"}
# The constructor, calling an instance and the context manager protocol are part of a class's
# interface (sqlite3's __exit__ is where it says a failed block rolls back); the other dunder
# methods (__repr__, __eq__, ...) do what every reader already assumes.
_KEPT_DUNDERS = frozenset({"__init__", "__call__", "__enter__", "__exit__"})
# What `object` and `type` say for a constructor or call that the class does not document.
_PLACEHOLDER_DOCS = frozenset(
    inspect.cleandoc(text or "")
    for text in (object.__init__.__doc__, type.__call__.__doc__, object.__new__.__doc__)
)
_MAX_DEFAULT_CHARS = 60
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_BOUND_ARGUMENT = re.compile(r"^\(\s*\$\w+\s*(?:,\s*/\s*)?(?:,\s*|(?=\)))")


def _own_doc(obj: object) -> str:
    """The object's own docstring, cleaned; not one inherited from a base class."""
    try:
        doc = obj.__doc__
    except Exception:  # a broken __doc__ property says nothing worth rendering
        return ""
    return inspect.cleandoc(doc) if isinstance(doc, str) else ""


def _public_members(module: ModuleType) -> Iterator[tuple[str, object]]:
    """The module's public classes and functions, and its documented public objects.

    With `__all__`, its names in its order; without, the classes and functions the module
    (or its C accelerator, `_name`) defines, in definition order.
    """
    exported = getattr(module, "__all__", None)
    if isinstance(exported, (list, tuple)):
        names = list(dict.fromkeys(n for n in exported if isinstance(n, str)))
    else:
        exported = None
        names = list(vars(module))
    short = module.__name__.rsplit(".", 1)[-1]
    homes = {module.__name__, f"_{short}"}
    for name in names:
        if name.startswith("_"):
            continue
        try:
            member = getattr(module, name)
        except AttributeError:
            continue
        if inspect.ismodule(member):
            continue
        if inspect.isclass(member) or inspect.isroutine(member):
            if exported is None and getattr(member, "__module__", None) not in homes:
                continue
            yield name, member
        elif exported is not None and _own_doc(member) not in ("", _own_doc(type(member))):
            # Objects such as typing.Union carry documentation of their own.
            yield name, member


def _class_sections(module: ModuleType, name: str, cls: type) -> list[str]:
    """The `##` section of a class, then a `###` section per documented public member."""
    signature, others, doc = _signature_and_doc(name, cls, cls, drop_first=False)
    if signature == "()" and not {"__init__", "__new__"} & vars(cls).keys():
        # Only object's own signature: the class is not meant to be built directly.
        signature = ""
    bases = [
        _type_name(base, module)
        for base in cls.__bases__
        if base is not object and not base.__name__.startswith("_")
    ]
    parts = [f"## class `{name}{signature}`"]
    if bases:
        parts.append("Bases: " + ", ".join(f"`{base}`" for base in bases))
    parts.append(others)
    if doc:
        parts.append(docstring_markdown(doc))
    seen: set[int] = set()
    for attr_name, attr in vars(cls).items():
        if attr_name.startswith("_") and attr_name not in _KEPT_DUNDERS:
            continue
        target = attr.__func__ if isinstance(attr, (staticmethod, classmethod)) else attr
        if id(target) in seen or inspect.isclass(attr):
            continue
        seen.add(id(target))
        section = _class_member_section(name, cls, attr_name, attr)
        if section:
            parts.append(section)
    return parts


def _class_member_section(class_name: str, cls: type, name: str, attr: object) -> str:
    prefix = f"{class_name}."
    if isinstance(attr, staticmethod):
        return _routine_section(3, prefix, name, attr.__func__, attr.__func__, False)
    if isinstance(attr, classmethod) or type(attr).__name__ == "classmethod_descriptor":
        # Bound to the class, its signature no longer shows `cls`.
        return _routine_section(3, prefix, name, getattr(cls, name), attr, False)
    if inspect.isfunction(attr) or (inspect.ismethoddescriptor(attr) and callable(attr)):
        return _routine_section(3, prefix, name, attr, attr, True)
    if isinstance(attr, property) or inspect.isdatadescriptor(attr):
        return _attribute_section(3, prefix, name, _own_doc(attr))
    return ""


def _routine_section(
    level: int, prefix: str, name: str, callable_: object, documented: object, drop_first: bool
) -> str:
    """A function or method: its signature as the heading, then its docstring.

    Undocumented ones, and constructors or calls documented only by `object`, are left out,
    except module functions: their signature alone still says what they take.
    """
    signature, others, doc = _signature_and_doc(name, callable_, documented, drop_first)
    if doc in _PLACEHOLDER_DOCS:
        doc = ""
    if not doc and level > 2:
        return ""
    parts = [f"{'#' * level} `{prefix}{name}{signature}`", others]
    if doc:
        parts.append(docstring_markdown(doc))
    return "\n\n".join(part for part in parts if part)


def _attribute_section(level: int, prefix: str, name: str, doc: str) -> str:
    if not doc:
        return ""
    return f"{'#' * level} `{prefix}{name}`\n\n{docstring_markdown(doc)}"


def _signature_and_doc(
    name: str, callable_: object, documented: object, drop_first: bool
) -> tuple[str, _Markdown, str]:
    """The signature to show after the name, other signatures, and the docstring without them.

    C functions without introspectable signatures start their docstring with one or more
    `name(...) -> ...` lines; those become the signature, so no docstring keeps them.
    """
    doc = _own_doc(documented)
    lines = doc.splitlines()
    signature_lines: list[str] = []
    while lines and re.fullmatch(rf"{re.escape(name)}\(.*\)(?:\s*->.*)?", lines[0].strip()):
        signature_lines.append(lines.pop(0).strip()[len(name) :])
    if signature_lines:
        doc = "\n".join(lines).strip()
    signature = _signature_text(callable_, drop_first)
    if signature is None and signature_lines:
        signature = signature_lines.pop(0)
        if signature_lines:
            others = ", ".join(f"`{name}{line}`" for line in signature_lines)
            # Markdown already, and no sentence (no full stop): nothing quotes it as prose.
            return signature, _Markdown(f"Also: {others}"), doc
    return signature or "", _Markdown(""), doc


def _signature_text(callable_: object, drop_first: bool) -> str | None:
    """`(a, b=1)` for a callable, without `self`; None when it has no readable signature."""
    if not callable(callable_):
        return None
    try:
        signature = inspect.signature(callable_)
    except (ValueError, TypeError):
        return _text_signature(callable_)
    params = list(signature.parameters.values())
    if drop_first and params and params[0].kind in _POSITIONAL:
        params = params[1:]
    params = [
        param if param.default is param.empty else param.replace(default=_Shown(param.default))
        for param in params
    ]
    # A class is called for an instance: what its __init__ returns (None) is no news.
    returns = signature.empty if inspect.isclass(callable_) else signature.return_annotation
    try:
        return str(signature.replace(parameters=params, return_annotation=returns))
    except ValueError:
        return str(signature)


_Markdown = NewType("_Markdown", str)
"""Text that is markdown already, not a docstring to convert."""

_POSITIONAL = (
    inspect.Parameter.POSITIONAL_ONLY,
    inspect.Parameter.POSITIONAL_OR_KEYWORD,
)


def _text_signature(callable_: object) -> str | None:
    """A C function's `__text_signature__` when `inspect` cannot parse it, tidied."""
    raw = getattr(callable_, "__text_signature__", None)
    if not isinstance(raw, str) or not raw.startswith("("):
        return None
    return " ".join(_BOUND_ARGUMENT.sub("(", raw).split())


class _Shown:
    """A parameter default as a reader wants it: `copy2`, not `<function copy2 at 0x7f..>`.

    Memory addresses would also make the corpus differ from one build to the next.
    """

    def __init__(self, value: object) -> None:
        qualname = getattr(value, "__qualname__", None)
        if isinstance(qualname, str) and (inspect.isroutine(value) or inspect.isclass(value)):
            text = qualname
        else:
            text = _ADDRESS.sub("", repr(value))
        if len(text) > _MAX_DEFAULT_CHARS:
            text = text[: _MAX_DEFAULT_CHARS - 1] + "…"
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _type_name(cls: type, module: ModuleType) -> str:
    """How a reader of `module` names a base class: by its public name where it has one."""
    if cls.__module__ == "builtins":
        return cls.__qualname__
    if getattr(module, cls.__name__, None) is cls:
        return f"{module.__name__}.{cls.__name__}"
    return f"{cls.__module__}.{cls.__qualname__}"


# ---------------------------------------------------------------------------------------------
# Docstring structure
# ---------------------------------------------------------------------------------------------

_LIST_MARK = re.compile(r"^(?:[-*+\u2022]\s+|\d{1,3}[.)]\s+)(?=\S)")
_UNDERLINE = re.compile(r"^([=\-~^*+#])\1{2,}$")
# A definition: "name: what it is", "name -- what it is", or an aligned two-column row.
_TERM_LINE = re.compile(
    r"^(?:\S+\s{2,}\S|[\w.,*()\[\]/ ]{1,40}?:\s+\S|\S.{0,40}?\s--\s+\S|\S+\s-\s+\S)"
)
_CODE_HINT = re.compile(
    r"[(=\[{]|^\s*(?:#|(?:import|from|def|class|for|while|if|with|return|raise|try|async|"
    r"await|print)\b)",
    re.MULTILINE,
)
_CODE_SYMBOLS = frozenset("{}[]()=<>|\\$@^~*#&;")
_SPACES = re.compile(r"(?<=\S) {2,}(?=\S)")
_DIRECTIVE = re.compile(r"^\.\.\s+([\w-]+)::\s*(.*)$")
_DIRECTIVE_LABELS = {
    "versionadded": "Added in version",
    "versionchanged": "Changed in version",
    "deprecated": "Deprecated since version",
}
# Most of a block's items must define terms for it to read as a definition list.
_TERM_SHARE = 0.6


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _next_blank(lines: list[str], start: int) -> int:
    end = start
    while end < len(lines) and lines[end].strip():
        end += 1
    return end


def _deeper_run(lines: list[str], start: int, depth: int) -> int:
    """The end of the lines from `start` on that are indented deeper than `depth`."""
    end = start
    while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > depth):
        end += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return end


def _opens_block(line: str, deeper: list[str]) -> bool:
    """Whether the deeper lines under `line` are a block of their own, not its continuation.

    They are after a complete "Arguments:" line or a reST directive, or when they start a
    list, a definition, a doctest or Python code; otherwise they are the hanging indent of a
    wrapped item.
    """
    text = line.strip()
    if _DIRECTIVE.match(text) or (text.endswith(":") and text.count("(") == text.count(")")):
        return True
    first = deeper[0].strip()
    if first.startswith(">>>") or _LIST_MARK.match(first):
        return True
    if _TERM_LINE.match(first) and not _LIST_MARK.match(text):
        # Under a list item, "Name -- what it is" is the wrapped rest of the item.
        return True
    code = textwrap.dedent("\n".join(deeper))
    return bool(_CODE_HINT.search(code)) and _parses(code)


def _introduces_literal(line: str) -> bool:
    """Whether a line ends with reST's "::", which makes the indented block after it code."""
    text = line.strip()
    return text.endswith("::") and not _DIRECTIVE.match(text)


def _directive_text(text: str) -> str:
    """A reST directive line as plain words: ".. versionadded:: 3.8" -> "Added in version 3.8"."""
    directive = _DIRECTIVE.match(text)
    if directive is None:
        return text
    name, rest = directive.groups()
    label = _DIRECTIVE_LABELS.get(name, name.replace("-", " ").capitalize())
    if name in _DIRECTIVE_LABELS:
        return f"{label} {rest}".rstrip()
    return f"{label}: {rest}".rstrip() if rest else f"{label}:"


def _fence(language: str, lines: list[str]) -> str:
    body = textwrap.dedent("\n".join(lines)).strip("\n")
    return f"```{language}\n{body}\n```"


def _blocks(region: list[str], literal: bool) -> list[str]:
    """Lines of a docstring, or a block inside one: code fenced, prose as paragraphs and lists.

    Blank lines cut the lines into sub-blocks; consecutive code sub-blocks of one language
    share a fence.
    After a paragraph ending in "::", the sub-blocks indented deeper than its text are code.
    Prose sub-blocks that each define a term ("args: A string, or ...") become one list.
    """
    lines = textwrap.dedent("\n".join(region).rstrip()).splitlines()
    if literal:
        return [_fence(_code_language(lines), lines)]
    groups: list[tuple[bool, list[str]]] = []
    literal_depth: int | None = None
    start = 0
    while start < len(lines):
        if not lines[start].strip():
            start += 1
            continue
        end = _next_blank(lines, start)
        sub = lines[start:end]
        start = end
        if literal_depth is not None and min(_indent(line) for line in sub) <= literal_depth:
            literal_depth = None
        code = literal_depth is not None or _looks_like_code(sub)
        if (
            code
            and groups
            and groups[-1][0]
            and _code_language(groups[-1][1]) == (_code_language(sub))
        ):
            groups[-1][1].extend(["", *sub])
        else:
            groups.append((code, sub))
        if not code and _introduces_literal(sub[-1]):
            mark = _LIST_MARK.match(sub[0].strip())
            literal_depth = _indent(sub[0]) + (mark.end() if mark else 0)
    blocks: list[str] = []
    definitions = sum(1 for code, sub in groups if not code and _TERM_LINE.match(sub[0].strip()))
    as_list = definitions >= 2 and definitions >= _TERM_SHARE * len(groups)
    for code, sub in groups:
        if code:
            blocks.append(_fence(_code_language(sub), sub))
            continue
        prose = _prose_blocks(sub)
        if as_list and len(prose) == 1 and not prose[0].startswith(("- ", "**", "```")):
            prose = [f"- {prose[0]}"]
        if prose and blocks and _is_list(blocks[-1]) and _is_list(prose[0]):
            # One tight list rather than a paragraph per item.
            blocks[-1] = f"{blocks[-1]}\n{prose.pop(0)}"
        blocks.extend(prose)
    return blocks


def _is_list(block: str) -> bool:
    return block.startswith("- ")


def _looks_like_code(lines: list[str]) -> bool:
    first = lines[0].strip()
    if first.startswith("$ ") or any(line.lstrip().startswith(">>>") for line in lines):
        return True
    if _LIST_MARK.match(first) or _DIRECTIVE.match(first):
        return False
    if first.endswith(":") and not _CODE_HINT.search(first) and len(lines) > 1:
        # A title such as "Example:" over deeper lines: prose that holds a block.
        return _indent(lines[1]) <= _indent(lines[0])
    text = textwrap.dedent("\n".join(lines))
    if _CODE_HINT.search(text) and _parses(text):
        return True
    words = text.split()
    wordy = sum(1 for word in words if re.search(r"[^\W\d_]{2,}", word))
    symbols = sum(ch in _CODE_SYMBOLS for ch in text)
    return wordy < 0.5 * len(words) or symbols > 0.12 * len(text)


def _parses(text: str) -> bool:
    try:
        ast.parse(text)
    except (SyntaxError, ValueError):
        return False
    return True


def _code_language(lines: list[str]) -> str:
    if any(line.lstrip().startswith(">>>") for line in lines):
        return "pycon"
    text = textwrap.dedent("\n".join(lines))
    return "python" if _parses(text) else "text"


def _prose_blocks(lines: list[str]) -> list[str]:
    """Prose lines as markdown paragraphs, list items and bold titles.

    A line indented deeper than the one above continues it (a hanging indent), unless the
    deeper lines open a block of their own (`_opens_block`), which is rendered on its own.
    """
    blocks: list[str] = []
    items: list[list[str]] = []
    base = min(_indent(line) for line in lines if line.strip())

    def flush() -> None:
        if items:
            blocks.extend(_render_items(items))
        items.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        text = line.strip()
        if not text or _UNDERLINE.match(text):
            i += 1
            continue
        if i + 1 < len(lines) and _UNDERLINE.match(lines[i + 1].strip()):
            flush()
            blocks.append(f"**{text.rstrip(':')}**")
            i += 2
            continue
        depth = _indent(line)
        mark = _LIST_MARK.match(text)
        if not items or depth <= base or mark:
            items.append([_directive_text(text)])
        else:
            items[-1].append(_directive_text(text))
        i += 1
        # A list item's own text starts after its mark; what is deeper than that belongs
        # to the item, and a paragraph in line with the text continues the item.
        inner = depth + (mark.end() if mark else 0)
        if i < len(lines) and lines[i].strip() and _indent(lines[i]) > inner:
            end = _deeper_run(lines, i, inner)
            if _opens_block(line, lines[i:end]):
                flush()
                blocks.extend(_blocks(lines[i:end], _introduces_literal(line)))
                i = end
    flush()
    return [_rst_colons(block) for block in blocks if block]


def _render_items(items: list[list[str]]) -> list[str]:
    """Items as one paragraph, or as a list when they define terms or are marked as one.

    A marked list runs to the end of the block and follows an introduction that ends a
    sentence or a clause; a "- " inside running text is a dash, not a list.
    """
    # Definitions are recognised before the alignment of their columns is collapsed.
    defined = sum(1 for item in items if _TERM_LINE.match(item[0]))
    texts = [_SPACES.sub(" ", " ".join(item)) for item in items]
    marked = [bool(_LIST_MARK.match(text)) for text in texts]
    terms = len(items) > 1 and defined >= _TERM_SHARE * len(items)
    first = marked.index(True) if any(marked) else len(items)
    listed = first < len(items) and all(marked[first:])
    if listed and first > 0 and not texts[first - 1].endswith((":", ".", "!", "?")):
        listed = False
    if not (listed or terms):
        return [" ".join(texts)]
    bullets: list[str] = []
    for text in texts if terms else texts[first:]:
        mark = _LIST_MARK.match(text)
        if mark is None:
            bullets.append(f"- {text}")
        elif mark.group(0)[:1].isdigit():
            bullets.append(text)
        else:
            bullets.append(f"- {text[mark.end() :]}")
    lead = " ".join(texts[:first]) if listed and not terms else ""
    return [lead, "\n".join(bullets)] if lead else ["\n".join(bullets)]


def _rst_colons(block: str) -> str:
    """reST's "for example::" reads "for example:" once the literal block is fenced."""
    if block.endswith("::") and not block.startswith("```"):
        return block[:-1].rstrip(":") + ":" if block.strip(":") else ""
    return block


def _render_main(argv: list[str]) -> int:
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


if __name__ == "__main__":
    sys.exit(_render_main(sys.argv[1:]))
