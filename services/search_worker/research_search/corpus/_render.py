"""One standard library module's documentation as a markdown file, from its docstrings.

The files are real markdown (prose paragraphs and lists, code in fenced blocks, a heading per
class and function), because the offline writer quotes prose sentences and leaves code alone.
How a docstring becomes markdown is `_docstrings.py`'s business; this module decides which
members a module's page shows and how their headings read.
"""

from __future__ import annotations

import importlib
import inspect
import platform
import re
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import NewType

from research_search.corpus._docstrings import docstring_markdown

__all__ = ["render_module"]

_SUMMARY_CHARS = 160


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


def _summary(doc: str | None) -> str:
    """The first sentence of a docstring's first paragraph, on one line."""
    paragraph = re.split(r"\n\s*\n", (doc or "").strip(), maxsplit=1)[0]
    line = " ".join(paragraph.split())
    sentence = re.split(r"(?<=[.!?])\s", line, maxsplit=1)[0]
    if len(sentence) > _SUMMARY_CHARS:
        sentence = sentence[: _SUMMARY_CHARS - 1].rsplit(" ", 1)[0] + "…"
    return sentence


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
