"""The SQLite FTS5 index of a corpus folder."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

__all__ = ["default_index_path"]


def default_index_path(data_dir: Path, corpus_dir: Path) -> Path:
    """The index file of `corpus_dir`, under `data_dir/index/`.

    The name carries a digest of the corpus folder's absolute path, so two corpora never
    share (and keep rebuilding) one index.
    """
    resolved = str(Path(corpus_dir).expanduser().resolve())
    digest = hashlib.sha256(resolved.encode("utf-8")).hexdigest()[:16]
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(resolved).name).strip("-.") or "corpus"
    return data_dir / "index" / f"{slug}-{digest}.sqlite3"
