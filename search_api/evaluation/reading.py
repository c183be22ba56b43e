"""Reading the evaluation's input files (BEIR queries and qrels, result files) as text, with one-line errors."""

from __future__ import annotations

from pathlib import Path

from indexer.errors import SourceError


def read_text(path: Path, what: str) -> str:
    """A UTF-8 text file's content; SourceError saying what was expected (`what`) when it cannot be read as one."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SourceError(f"{path}: no such file; give {what}") from None
    except IsADirectoryError:
        raise SourceError(f"{path}: a folder; give {what}") from None
    except UnicodeDecodeError as exc:
        raise SourceError(f"{path}: not UTF-8 text (byte {exc.start}); give {what}") from None
    except OSError as exc:
        raise SourceError(f"{path}: cannot be read ({exc.strerror}); give {what}") from None
