"""Which files may be read on behalf of someone who does not own the machine.

People on a chat platform name persona and scenario files; the bot reads them on the host. Only
files inside the folders set aside for that are read: a name is resolved (``..`` and symlinks
followed to where they really lead) before it is checked, and a refusal reads the same whether
the file is missing or merely outside, so nobody learns what else the host holds.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

__all__ = ["FileRefusedError", "ReadableFolders"]


class FileRefusedError(ValueError):
    """A file that is not read: missing, or outside the readable folders (which one is never said)."""


class ReadableFolders:
    """The folders whose files may be read; ``file`` turns a name into the real path of one of them."""

    def __init__(self, folders: Iterable[Path], *, setting: str = "the readable folders") -> None:
        resolved = (_real(Path(folder).expanduser()) for folder in folders)
        self.folders = [folder for folder in resolved if folder is not None]
        #: Where the folders are configured, for the refusal's "how to fix it".
        self.setting = setting

    def file(self, name: str | Path, *, relative_to: Path | None = None) -> Path:
        """The resolved path of ``name`` if it is a file inside one of the folders.

        A relative ``name`` is taken from ``relative_to`` (a scenario's own folder) when given, else
        from each readable folder in turn. Raises ``FileRefusedError`` otherwise.
        """
        path = Path(name).expanduser()
        if path.is_absolute():
            candidates = [path]
        elif relative_to is not None:
            candidates = [relative_to / path]
        else:
            candidates = [folder / path for folder in self.folders]
        for candidate in candidates:
            real = _real(candidate)
            if real is not None and self.allows(real) and _is_file(real):
                return real
        raise FileRefusedError(
            f"{str(name)!r} is not a file Troupe may read here: on chat platforms persona and scenario files "
            f"(and the files a scenario names) are read only from {self.setting}. Paste the persona as JSON "
            "instead, or ask the bot's operator to put the file in one of those folders."
        )

    def allows(self, real: Path) -> bool:
        """Whether the resolved path ``real`` lies inside one of the folders."""
        return any(real.is_relative_to(folder) for folder in self.folders)


def _real(path: Path) -> Path | None:
    """``path`` with ``..`` and symlinks followed, or None when it cannot be resolved at all."""
    try:
        return path.resolve()
    except (OSError, RuntimeError, ValueError):  # a symlink loop, a NUL byte
        return None


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False
