"""Fetch a model folder from the Hugging Face hub: the files a family's model slot names
(backend/families/contract.py ModelSlot.hub_files), e.g. TripoSR's config.yaml +
model.ckpt, or a Shap-E folder in diffusers' layout.

Used only when the user asks for a download (a hub id as --model, or the add-on's
"Download model" button). Imports huggingface_hub but never torch, so the Blender side
and the installer can call it from a plain Python.
"""

import os
import socket
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable

from ..bridge.errors import ModelNotFoundError
from ..families.registry import default_family, slot_for_repo

DEFAULT_SLOT = default_family("image").slots_for("image")[0]  # what a bare download fetches
DEFAULT_REPO = DEFAULT_SLOT.hub_repo

Progress = Callable[[int, int], None]


def _progress_bar_class(progress: Progress, already_done: Callable[[], int]):
    """A tqdm class that forwards byte counts to `progress` instead of drawing a bar.

    huggingface_hub creates one bar per file (and, for Xet storage, a second "transfer"
    bar counting the same bytes, which is skipped here so nothing is counted twice).
    """
    from huggingface_hub.utils import tqdm as hub_tqdm

    class CallbackBar(hub_tqdm):
        def __init__(self, *args, **kwargs):
            self._counts = not str(kwargs.get("name") or "").endswith(".transfer")
            kwargs["disable"] = True  # no terminal output: the callback is the display
            super().__init__(*args, **kwargs)
            self._done = int(kwargs.get("initial") or 0)
            self._report()

        def _report(self):
            if self._counts:
                total = int(self.total or 0)
                progress(already_done() + self._done, already_done() + max(total, self._done))

        def update(self, n=1):
            # n is negative when a resumed download had to start over
            self._done += int(n or 0)
            self._report()
            return super().update(n)

    return CallbackBar


def _transport_errors() -> tuple:
    """The HTTP client's connection errors (huggingface_hub 2.x uses httpx2, 1.x httpx)."""
    for name in ("httpx2", "httpx"):
        try:
            module = __import__(name)
        except ImportError:
            continue
        return (module.HTTPError,)
    return ()


def _endpoint_reachable(endpoint: str, timeout: float = 5.0) -> bool:
    """A quick TCP connect, so that no network fails in seconds rather than after
    huggingface_hub's retries (about 25 s). Behind a proxy only the proxy knows: True."""
    parts = urllib.parse.urlsplit(endpoint)
    if urllib.request.getproxies().get(parts.scheme) or not parts.hostname:
        return True
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def fetch_slot(repo_id: str, slot, cache_dir: str | None = None, progress: Progress | None = None) -> Path:
    """Download the files `slot` needs from `repo_id` into the hub cache (or reuse them);
    returns their folder.

    cache_dir: None for huggingface_hub's own cache (~/.cache/huggingface/hub or HF_HUB_CACHE).
    progress(bytes_done, bytes_total): over all files, called from this thread.
    An interrupted transfer is resumed where it stopped (HTTP Range) by huggingface_hub.
    Only the files the slot names are fetched (configs, full-precision safetensors or the
    official checkpoint), never fp16 copies or pickles beside them. Raises
    ModelNotFoundError, saying where to put the files by hand, when the hub cannot be
    reached and the files are not cached.
    """
    required, optional = slot.hub_files()
    # the slot's revision for its own repository (safetensors may live in a pull request's)
    revision = slot.hub_revision if repo_id == slot.hub_repo else None
    return _fetch_files(repo_id, list(required), list(optional), cache_dir, progress,
                        f"Download {slot.contents} by hand", "keep them in one folder as laid out there", revision)


def fetch_model(repo_id: str = DEFAULT_REPO, cache_dir: str | None = None, progress: Progress | None = None) -> Path:
    """fetch_slot for the repository's own slot (an official one), else the default
    family's (a repository in TripoSR's layout)."""
    known = slot_for_repo(repo_id)
    return fetch_slot(repo_id, known[2] if known else DEFAULT_SLOT, cache_dir, progress)


def _fetch_files(repo_id: str, required: list, optional: list, cache_dir, progress, by_hand: str, where: str,
                 revision: str | None = None) -> Path:
    """Each file of a repository (at `revision`, None: main), one after the other, into the
    hub cache; returns the folder they share. Optional files the hub does not have are skipped."""
    # Read at call time: huggingface_hub reads HF_ENDPOINT only once, when imported.
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    help_text = (f"{by_hand} from {endpoint}/{repo_id}/tree/{revision or 'main'}, {where} and use that folder as the model "
                 "(--model DIR, the add-on's Model folder preference, or IMAGE_TO_3D_MODEL=DIR).")
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import (
            EntryNotFoundError,
            GatedRepoError,
            HfHubHTTPError,
            LocalEntryNotFoundError,
            OfflineModeIsEnabled,
            RepositoryNotFoundError,
        )
    except ImportError:
        raise ModelNotFoundError(
            f"huggingface_hub is not installed in this Python, so {repo_id} cannot be downloaded. " + help_text
        ) from None

    transport_errors = _transport_errors()
    finished_bytes = 0
    bar_class = _progress_bar_class(progress, lambda: finished_bytes) if progress else None
    # Offline: take the files from the cache if they are there, fail fast if not.
    offline = not _endpoint_reachable(endpoint)
    paths = {}
    for filename in required + optional:
        try:
            path = hf_hub_download(
                repo_id, filename, cache_dir=cache_dir, endpoint=endpoint, tqdm_class=bar_class,
                local_files_only=offline, revision=revision,
            )
        except (LocalEntryNotFoundError, OfflineModeIsEnabled) as exc:
            if filename in optional:
                continue
            raise ModelNotFoundError(
                f"Could not reach {endpoint} to download {repo_id}/{filename} (no network, "
                f"or the hub is blocked here) and it is not in the cache. " + help_text
            ) from exc
        except (RepositoryNotFoundError, GatedRepoError, EntryNotFoundError) as exc:
            if filename in optional and isinstance(exc, EntryNotFoundError):
                continue
            raise ModelNotFoundError(
                f"{endpoint} has no {filename} for {repo_id} ({type(exc).__name__}). " + help_text
            ) from exc
        except (HfHubHTTPError, OSError, *transport_errors) as exc:
            # OSError covers refused/reset connections that outlived the retries and
            # size-consistency failures of a broken transfer.
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ModelNotFoundError(
                f"Downloading {repo_id}/{filename} from {endpoint} failed: {reason}. "
                "Try again (the download resumes), or: " + help_text
            ) from exc
        paths[filename] = Path(path)
        finished_bytes += Path(path).stat().st_size
    # a snapshot folder holds the files at their paths in the repository
    first = required[0]
    folder = paths[first].parents[len(Path(first).parts) - 1]
    if any(path != folder / name for name, path in paths.items()):  # never happens with the hub's cache layout
        raise ModelNotFoundError(f"{repo_id}: the downloaded files are not in one folder ({sorted(map(str, paths.values()))})")
    if progress:
        progress(finished_bytes, finished_bytes)
    return folder


def main(argv=None) -> int:
    """python -m backend.setup.hub [REPO] [--cache-dir DIR] [--background-model-dir DIR]: for
    callers in another process (the add-on's Download model button). Prints `progress DONE
    TOTAL` lines while it downloads, then `folder PATH`; on failure `error MESSAGE` and exit
    status 1. With --background-model-dir it then fetches rembg's u2net.onnx there
    (`background PATH`); a failure of that one is a `warning MESSAGE` (only opaque images
    need it)."""
    import argparse
    import time

    from .background_model import fetch_background_model

    parser = argparse.ArgumentParser(prog="python -m backend.setup.hub", description="Download a model folder.")
    parser.add_argument("repo_id", nargs="?", default=DEFAULT_REPO,
                        help=f"{DEFAULT_REPO} (the default), or another family's official repository")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--background-model-dir", default=None,
                        help="also fetch the background-removal model (u2net.onnx) into this folder")
    args = parser.parse_args(argv)
    last = [0.0]
    offset = [0]  # bytes of the files already done, so progress only grows

    def report(done, total):
        now = time.monotonic()
        if now - last[0] >= 0.2 or done == total:  # a few lines a second is plenty for a UI
            last[0] = now
            print(f"progress {offset[0] + done} {offset[0] + total}", flush=True)

    try:
        folder = fetch_model(args.repo_id, cache_dir=args.cache_dir, progress=report)
    except ModelNotFoundError as exc:
        print(f"error {exc.message}", flush=True)
        return 1
    print(f"folder {folder}", flush=True)
    if args.background_model_dir:
        offset[0] = sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file())
        try:
            path = fetch_background_model(args.background_model_dir, progress=report)
        except ModelNotFoundError as exc:
            print(f"warning {exc.message}", flush=True)
        else:
            print(f"background {path}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
