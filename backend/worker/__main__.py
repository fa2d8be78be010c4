"""`python -m backend.worker --log-dir DIR [--parent-pid PID]`: start the model process.

It speaks the protocol on private duplicates of the stdin/stdout it was started with
(process_io.py). The model stays loaded between jobs. The process exits on `shutdown`,
when its input closes, or when its parent dies.
"""

import argparse
import signal
import sys
import threading
import traceback
from pathlib import Path

from .process_io import log, pump_printed_output, setup_logging, take_protocol_streams, watch_parent


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backend.worker", description=__doc__.splitlines()[0])
    parser.add_argument("--log-dir", required=True, type=Path, help="folder for worker.log (rotated)")
    parser.add_argument("--parent-pid", type=int, default=0, help="exit when this process is gone")
    parser.add_argument("--idle-unload", type=float, default=0.0,
                        help="seconds without a job after which a model on a GPU is unloaded (0: never)")
    args = parser.parse_args(argv)
    if hasattr(signal, "SIGINT"):
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in Blender's terminal is for Blender

    try:  # before the streams move, so that a failure here still reaches the client's stderr
        log_path = setup_logging(args.log_dir)
    except OSError as exc:
        print(f"the model process cannot write its log in {args.log_dir}: {exc.strerror or exc}", file=sys.stderr)
        return 3
    frames_in, stream_out, printed_fd = take_protocol_streams()
    log.info("started by pid %s, python %s", args.parent_pid, sys.executable)
    threading.Thread(target=pump_printed_output, args=(printed_fd,), name="printed", daemon=True).start()
    threading.Thread(target=watch_parent, args=(args.parent_pid,), name="parent", daemon=True).start()
    try:
        from .server import WorkerServer

        WorkerServer(frames_in, stream_out, log_path, args.idle_unload).serve()
    except Exception as exc:  # noqa: BLE001 - e.g. torch missing: tell the client, then exit
        log.error("the worker could not run\n%s", traceback.format_exc())
        if isinstance(exc, ImportError):
            message = (f"the Python at {sys.executable} cannot import {exc.name or exc}: "
                       "install the backend (add-on preferences, Install backend) or choose another Python")
        else:
            message = f"the model process could not start: {exc.__class__.__name__}: {exc}"
        try:
            from ..bridge import protocol

            protocol.send(stream_out, protocol.Error(job_id=None, code="backend_error", message=message))
        except (ImportError, OSError):
            pass  # the client still sees the exit and quotes the log
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
