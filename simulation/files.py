"""Reading a small text file someone named, without trusting what the file system says about it.

A persona, scenario or schema file is named by whoever gives the command. The name may lead to a
device that never ends (``/dev/zero``), a named pipe that blocks until someone writes to it, a
folder, or a file whose stated size is wrong (``/proc`` files say 0 bytes) or that grows while it is
read. :func:`read_text_file` reads only ordinary files, and at most one byte past the limit, so any
of these is refused with a message instead of exhausting memory or hanging.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["FileReadError", "read_text_file"]

#: Read in pieces this large: a file under the limit takes a few system calls, never one huge buffer.
_CHUNK = 64 * 1024

#: Opened without waiting (a FIFO with no writer), without becoming the controlling terminal (a tty),
#: and closed in any child process.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)


class FileReadError(ValueError):
    """A file that is not read: not an ordinary file, or larger than allowed.

    ``problem`` starts with a verb ("is a named pipe …") for callers that put their own name for the
    file before it; ``str()`` puts ``path`` before it.
    """

    def __init__(self, path: str | Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem


def read_text_file(path: str | Path, *, limit: int, kind: str = "the file") -> str:
    """The UTF-8 text of the ordinary file ``path``, at most ``limit`` bytes long.

    ``kind`` names what the file should be ("a persona file") in the messages. Raises
    :class:`FileReadError` for anything but an ordinary file (checked on the opened file itself, so
    nothing can be swapped in between) and for a file longer than ``limit`` bytes, whatever size it
    claims; ``OSError`` when it cannot be opened or read (``FileNotFoundError`` when missing);
    ``UnicodeDecodeError`` when it is not UTF-8. Line endings are read as ``\\n``, as text mode reads them.
    """
    # Checked before opening too: opening a device can itself do something (rewind a tape, wait for
    # a modem). The check that counts is the one on the open descriptor below.
    try:
        mode = os.stat(path).st_mode
    except ValueError:  # a NUL character: no file can have that name
        raise FileReadError(repr(str(path)), "is not a possible file name (it holds a NUL character)") from None
    _check_ordinary(path, mode, kind)
    fd = os.open(path, _OPEN_FLAGS)
    try:
        info = os.fstat(fd)
        _check_ordinary(path, info.st_mode, kind)
        if info.st_size > limit:
            raise FileReadError(path, _too_large(_size(info.st_size, limit), limit, kind))
        data = _read_at_most(fd, limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:  # it grew since, or its stated size was wrong
        raise FileReadError(path, _too_large(f"more than {_megabytes(limit)}", limit, kind))
    return data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")


def _read_at_most(fd: int, count: int) -> bytes:
    pieces: list[bytes] = []
    remaining = count
    while remaining > 0:
        piece = os.read(fd, min(_CHUNK, remaining))
        if not piece:
            break
        pieces.append(piece)
        remaining -= len(piece)
    return b"".join(pieces)


def _check_ordinary(path: str | Path, mode: int, kind: str) -> None:
    if stat.S_ISREG(mode):
        return
    if stat.S_ISDIR(mode):
        what = "is a folder, not a regular file"
    elif stat.S_ISFIFO(mode):
        what = "is a named pipe (FIFO), not a regular file"
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        what = "is a device, not a regular file"
    elif stat.S_ISSOCK(mode):
        what = "is a socket, not a regular file"
    else:
        what = "is not a regular file"
    raise FileReadError(path, f"{what}; {kind} must be a regular file. Is it the right path?")


def _too_large(size: str, limit: int, kind: str) -> str:
    return f"is {size}; {kind} is at most {_megabytes(limit)}. Is it the right file?"


def _megabytes(limit: int) -> str:
    return f"{limit // 1_000_000} MB" if limit % 1_000_000 == 0 else f"{limit:,} bytes"


def _size(size: int, limit: int) -> str:
    """``size`` in the unit the limit is said in: "3.2 MB", or "1,234 bytes" for a limit under a megabyte."""
    return f"{size / 1e6:.1f} MB" if limit % 1_000_000 == 0 else f"{size:,} bytes"
