"""The workflow module, compiled once per process however often the sandbox imports it.

Temporal's workflow sandbox imports the module of a workflow class afresh for every run it
starts, and for every run it brings back into its cache, so that no run ever sees another's
module state. Each such import builds the module's code objects anew: it compiles the source
where no bytecode file was written (`PYTHONDONTWRITEBYTECODE` with an editable install, a
read-only checkout), else it reads and unmarshals the bytecode file. Compiling
`workflows.py` was about 11 of the 15 ms of CPU it took to create a sandboxed run; and either
way every cached run kept a copy of its own of every code object of the module, about 120 of
the 170 KiB a run kept (docs/benchmarks.md, "Phase 2").

`compile_once` hands the sandbox's import one code object per module. Code objects are
immutable, so each run still executes the module into a namespace of its own, with its own
class and functions, under the sandbox's restrictions; only the compiling is shared. Runs
also execute the code compiled when the worker was built, not whatever the file says later.
"""

from __future__ import annotations

import importlib.machinery
import sys
import threading
from collections.abc import Sequence
from importlib.abc import MetaPathFinder
from types import CodeType, ModuleType
from typing import ClassVar


class _CompiledOnceLoader(importlib.machinery.SourceFileLoader):
    """A source loader whose code objects are compiled once per path and then reused."""

    # One table for the process: the finder below makes a new loader for every import.
    _codes: ClassVar[dict[str, CodeType]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def get_code(self, fullname: str) -> CodeType | None:
        path = str(self.path)
        with self._lock:
            code = self._codes.get(path)
            if code is None:
                code = super().get_code(fullname)
                if code is not None:
                    self._codes[path] = code
        return code


class _CompiledOnceFinder(MetaPathFinder):
    """Finds the named modules as every other finder would, and swaps in the loader above
    when the module comes from a source file."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.names:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is None:
                continue
            if type(spec.loader) is importlib.machinery.SourceFileLoader and spec.origin:
                spec.loader = _CompiledOnceLoader(fullname, spec.origin)
            return spec
        return None


_FINDER = _CompiledOnceFinder()


def compile_once(*workflows: type) -> None:
    """Compile the modules of these workflow classes once for the whole process; called
    when a worker is built, never on import."""
    _FINDER.names.update(cls.__module__ for cls in workflows)
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
