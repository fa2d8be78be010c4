"""Files that appear whole or not at all, never over a file someone else made, and no
temporary files left behind for good.

Standard library only (both worlds use it). A writer puts its output into a staging
folder of its own beside the destination (a hidden, random name: unique across
machines and containers that share the folder), then publishes each file under its
final name without ever replacing one that exists (a hard link, which fails when the
name is taken; where links are not supported, the name is first created exclusively -
reserved - and then replaced). Names are compared case-insensitively (file_names.py).

A process killed midway (kill -9, power loss) cannot clean up after itself, so the next
writer into the folder removes staging folders that are stale: their owner's lock is
free (it holds an exclusive lock on the folder's owner file while it lives; the system
drops it when the process dies, on this machine or another through NFS) and nothing was
written there for STALE_AFTER_SECONDS. On systems without these locks (Windows) nothing
is removed.
"""

import errno
import os
import secrets
import shutil
import time

from .file_names import folder_keys, name_key

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

TEMPORARY_PREFIX = ".image_to_3d-tmp-"
OWNER_NAME = ".owner"
# a staging folder lives for one file write (seconds); a live one's lock protects it,
# this margin also covers a file system whose locks do not reach other machines
STALE_AFTER_SECONDS = 15 * 60


class Staging:
    """A private staging folder in `folder`, removed with what is left in it on exit.

        with Staging(folder) as staging:
            write files into staging.path
            staging.publish(main_name)      # FileExistsError: a name is taken; nothing published
    """

    def __init__(self, folder: str):
        self.folder = str(folder)
        self.path = ""
        self._owner = None

    def __enter__(self) -> "Staging":
        remove_stale(self.folder)
        self.path = os.path.join(self.folder, f"{TEMPORARY_PREFIX}{secrets.token_hex(8)}-export")
        os.mkdir(self.path, 0o700)
        try:
            self._owner = os.open(os.path.join(self.path, OWNER_NAME), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            if fcntl is not None:
                fcntl.flock(self._owner, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc_info):
        if self._owner is not None:  # closed first: Windows removes no open file
            os.close(self._owner)
            self._owner = None
        shutil.rmtree(self.path, ignore_errors=True)

    def entries(self) -> list:
        return [entry for entry in os.listdir(self.path) if entry != OWNER_NAME]

    def clear(self) -> None:
        """Remove what was written, for another try under other names."""
        for entry in self.entries():
            path = os.path.join(self.path, entry)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.unlink(path)

    def publish(self, main_name: str) -> None:
        """Every file written here into the folder, the main file last (once it appears its
        companions - .mtl, textures - are there). FileExistsError, with nothing published,
        when a name is taken (by name_key)."""
        names = sorted(self.entries(), key=lambda entry: entry == main_name)
        existing = folder_keys(self.folder)
        taken = [name for name in names if name_key(name) in existing]
        if taken:
            raise FileExistsError(errno.EEXIST, "the name is taken", os.path.join(self.folder, taken[0]))
        placed = []
        try:
            for name in names:
                _place(os.path.join(self.path, name), os.path.join(self.folder, name))
                placed.append(name)
        except BaseException:
            for name in placed:  # ours: made a moment ago by _place
                try:
                    os.unlink(os.path.join(self.folder, name))
                except OSError:
                    pass
            raise


def _place(source: str, destination: str) -> None:
    """source under the name destination, never replacing a file: FileExistsError if taken."""
    try:
        os.link(source, destination)
        return
    except FileExistsError:
        raise
    except OSError:  # no hard links here (FAT, some network shares): reserve the name, then fill it
        pass
    os.close(os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    os.replace(source, destination)


def create_exclusive(folder: str, stem: str, extension: str, encoding: str = "utf-8"):
    """An open text file <stem><extension> in `folder`, new (stem_2, ... when taken)."""
    number = 1
    while True:
        name = f"{stem}{extension}" if number == 1 else f"{stem}_{number}{extension}"
        if name_key(name) not in folder_keys(folder):
            try:
                return open(os.path.join(folder, name), "x", encoding=encoding)
            except FileExistsError:
                pass
        number += 1


def remove_stale(folder: str) -> None:
    """Staging folders (and temporary files of earlier versions) in `folder` that no live
    writer owns."""
    if fcntl is None:
        return  # on Windows we cannot tell a live writer's folder: never guess there
    try:
        entries = os.listdir(folder)
    except OSError:
        return
    for entry in entries:
        if entry.startswith(TEMPORARY_PREFIX):
            _remove_if_stale(os.path.join(folder, entry))


def _remove_if_stale(path: str) -> None:
    try:
        info = os.lstat(path)
    except OSError:
        return
    if time.time() - info.st_mtime < STALE_AFTER_SECONDS:
        return
    if not os.path.isdir(path) or os.path.islink(path):
        try:
            os.unlink(path)
        except OSError:
            pass
        return
    try:
        owner = os.open(os.path.join(path, OWNER_NAME), os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        owner = None  # an earlier version's folder, or a writer that died before locking
    except OSError:
        return
    try:
        if owner is not None:
            fcntl.flock(owner, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError: its writer lives
        shutil.rmtree(path, ignore_errors=True)
    except OSError:
        pass  # locked by a live writer, or locks are not supported here: leave it
    finally:
        if owner is not None:
            os.close(owner)
