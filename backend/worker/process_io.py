"""The worker process's surroundings: its protocol streams, its log, its parent.

The protocol moves to private duplicates of the stdin/stdout the process was started
with; fds 1 and 2 then point at a pipe whose lines go to a rotating log file, so a
library that prints cannot corrupt a frame.
"""

import faulthandler
import logging
import logging.handlers
import os
import sys
import time
from pathlib import Path

LOG_NAME = "worker.log"
FAULT_LOG_NAME = "worker-faults.log"  # faulthandler needs a file that never rotates
LOG_MAX_BYTES = 2 * 1024 * 1024
LOG_BACKUPS = 3
PARENT_CHECK_SECONDS = 1.0

log = logging.getLogger("image_to_3d.worker")


def take_protocol_streams():
    """Move the protocol off fds 0/1 and send everything printed to a pipe we log.

    Returns (protocol input, protocol output, read end of the printed-output pipe).
    """
    proto_in, proto_out = os.dup(0), os.dup(1)  # dup'd fds are not inherited by children
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    printed_r, printed_w = os.pipe()
    os.dup2(printed_w, 1)
    os.dup2(printed_w, 2)
    os.close(printed_w)
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:  # None under pythonw
            stream.reconfigure(line_buffering=True)
    return os.fdopen(proto_in, "rb"), os.fdopen(proto_out, "wb"), printed_r


def setup_logging(log_dir: Path) -> Path:
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / LOG_NAME
    for name in (LOG_NAME, FAULT_LOG_NAME):
        if (log_dir / name).is_symlink():  # it could point at another user's file
            raise OSError(f"{log_dir / name} is a link; the log is never written through links")
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s pid %(process)d %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.raiseExceptions = False  # a failing log write must never print (and loop) or kill us
    faulthandler.enable(open(log_dir / FAULT_LOG_NAME, "a"))  # lives as long as the process
    return path


def pump_printed_output(fd: int):
    """Copy whatever anything prints to fds 1/2 into the log, line by line."""
    printed = logging.getLogger("image_to_3d.printed")
    with os.fdopen(fd, "rb") as stream:
        for line in stream:
            text = line.decode("utf-8", "replace").rstrip()
            if text:
                printed.info(text)


def watch_parent(parent_pid: int):
    """Exit when the process that started us is gone (POSIX; on Windows the pipe closes)."""
    if os.name != "posix":
        return
    first_parent = os.getppid()
    while True:
        time.sleep(PARENT_CHECK_SECONDS)
        gone = os.getppid() != first_parent
        if not gone and parent_pid:
            try:
                os.kill(parent_pid, 0)
            except ProcessLookupError:
                gone = True
            except PermissionError:
                pass
        if gone:
            log.warning("the parent process %s is gone: exiting", parent_pid)
            os._exit(0)
