"""Encoder batching for a replica's concurrent jobs (threads): one forward pass for several.

A replica runs up to `--max-batch` jobs at once, each on its own thread through
generate_mesh. Their encode steps come here: the first image to arrive waits up to
`wait_s` for the others (or until `max_batch` are there), then that thread encodes them
all with the engine's encode_batch (TripoSR's) and hands each job its own codes. Everything else stays
per job. No Ray in here, so it is tested in-process (tests/test_server_batching.py).
"""

import collections
import threading
import time
from dataclasses import dataclass, field


@dataclass
class _Waiting:
    prepared: object  # one job's prepared image
    done: threading.Event = field(default_factory=threading.Event)
    codes: object = None
    error: BaseException | None = None


class EncodeBatcher:
    def __init__(self, encode_many, max_batch: int, wait_s: float):
        """encode_many(list of prepared images) -> list of codes, in the same order."""
        self._encode_many = encode_many
        self.max_batch = max_batch
        self.wait_s = wait_s
        self._pending: list[_Waiting] = []
        self._changed = threading.Condition()
        self.batch_sizes = collections.Counter()  # batch size -> how many such batches ran

    def encode(self, prepared):
        """This job's codes, encoded together with whatever other jobs bring meanwhile."""
        me = _Waiting(prepared)
        with self._changed:
            self._pending.append(me)
            leader = len(self._pending) == 1
            self._changed.notify_all()
            if leader:
                deadline = time.monotonic() + self.wait_s
                while len(self._pending) < self.max_batch and (left := deadline - time.monotonic()) > 0:
                    self._changed.wait(left)
                # at most max_batch jobs run on a replica, so this never takes more than max_batch
                batch, self._pending = self._pending, []
                self.batch_sizes[len(batch)] += 1
        if not leader:
            me.done.wait()
        else:
            self._run(batch)
        if me.error is not None:
            raise me.error
        return me.codes

    def _run(self, batch: list):
        try:
            for waiting, codes in zip(batch, self._encode_many([w.prepared for w in batch]), strict=True):
                waiting.codes = codes
        except BaseException as exc:  # noqa: BLE001 - every job of the batch gets the failure (CUDA OOM, ...)
            for waiting in batch:
                waiting.error = exc
        finally:
            for waiting in batch:
                waiting.done.set()
