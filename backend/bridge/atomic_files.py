"""Files that appear whole or not at all, and no temporary files left behind for good.

Standard library only (both worlds use it). A writer puts its output under a temporary
name that carries its process id, then renames it into place. A process killed midway
(kill -9, power loss) cannot clean up after itself, so the next writer into the same
folder removes the temporary files of processes that no longer run.
"""

import os
import shutil

TEMPORARY_PREFIX = ".image_to_3d-tmp-"


def temporary_path(folder: str, name: str) -> str:
    """Where to write `name` before renaming it into `folder` (a hidden, per-process name)."""
    return os.path.join(folder, f"{TEMPORARY_PREFIX}{os.getpid()}-{name}")


def publish(staging: str, folder: str, main_name: str) -> None:
    """Move every file written in `staging` into `folder`, the main file last: once it
    appears, its companions (.mtl, textures) are already there."""
    for entry in sorted(os.listdir(staging), key=lambda entry: entry == main_name):
        os.replace(os.path.join(staging, entry), os.path.join(folder, entry))


def remove_stale(folder: str) -> None:
    """Temporary files and folders in `folder` left by processes that no longer run."""
    try:
        entries = os.listdir(folder)
    except OSError:
        return
    for entry in entries:
        if not entry.startswith(TEMPORARY_PREFIX):
            continue
        pid = entry[len(TEMPORARY_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not process_alive(int(pid)):
            path = os.path.join(folder, entry)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                try:
                    os.unlink(path)
                except OSError:
                    pass


def process_alive(pid: int) -> bool:
    """False only when we are sure the process is gone (POSIX); True otherwise."""
    if pid == os.getpid() or os.name != "posix":
        return True  # on Windows os.kill would end the process: never guess there
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # another user's process, or we cannot tell: leave its files alone
    return True
