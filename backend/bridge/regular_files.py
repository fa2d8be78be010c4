"""Reading small files that must be regular files, without ever blocking on a named pipe
or a device. Standard library only (both worlds use it).

`open()` on a FIFO waits for a writer forever, and reading /dev/zero never ends; a token
file or a model's config given as such a thing must be refused with its name, not hang.
"""

import os
import stat


class NotRegularFile(OSError):
    """The path names a folder, a named pipe, a device or a socket: .kind says which."""

    def __init__(self, path, kind: str):
        super().__init__(f"{path} is {kind}, not a regular file")
        self.path, self.kind = path, kind


class FileTooLarge(OSError):
    """The file is larger than the reader's limit."""


def kind_of(mode: int) -> str:
    """A few words for what a stat mode describes ("a named pipe (FIFO)", ...)."""
    if stat.S_ISREG(mode):
        return "a file"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def read_regular(path, limit: int) -> tuple[bytes, os.stat_result]:
    """(the contents, its stat) of a regular file of at most `limit` bytes (links
    followed). FileNotFoundError, NotRegularFile, FileTooLarge or another OSError."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegularFile(path, kind_of(info.st_mode))
        if info.st_size > limit:
            raise FileTooLarge(f"{path} is larger than {limit:,} bytes")
        chunks, size = [], 0
        while True:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:  # it grew while being read
                raise FileTooLarge(f"{path} is larger than {limit:,} bytes")
        return b"".join(chunks), info
    finally:
        os.close(fd)
