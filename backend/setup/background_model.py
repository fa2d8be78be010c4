"""Fetch the background-removal model (rembg's u2net.onnx, 176 MB) with the TripoSR model.

Standard library only. rembg would download it by itself at the first opaque image; we
never let it (backend/prepare/background.py checks the file first), so that the only
downloads are the ones the user asked for, with progress, resumable, into our folder.
"""

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

from ..bridge.errors import ModelNotFoundError

MODEL_FILE = "u2net.onnx"
OFFICIAL_URL = "https://github.com/danielgatis/rembg/releases/download/v0.0.0/u2net.onnx"
OFFICIAL_MD5 = "60024c5c889badc19c04ad937298a77b"  # rembg's own check of this file
URL_ENV = "IMAGE_TO_3D_BACKGROUND_MODEL_URL"  # a mirror (the tests use a local stand-in)
CHUNK_BYTES = 1 << 20


def fetch_background_model(folder, progress: Callable[[int, int], None] | None = None) -> Path:
    """<folder>/u2net.onnx, downloaded unless already there; resumes a partial download.

    progress(bytes_done, bytes_total). Raises ModelNotFoundError saying where to put the
    file by hand when it cannot be downloaded.
    """
    folder = Path(folder)
    target = folder / MODEL_FILE
    if target.is_file():
        return target
    url = os.environ.get(URL_ENV) or OFFICIAL_URL
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / (MODEL_FILE + ".partial")
    try:
        _download(url, partial, progress)
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise ModelNotFoundError(
            f"could not download the background-removal model from {url} ({reason}). Try again "
            f"(the download resumes), or download {MODEL_FILE} by hand from {OFFICIAL_URL} into {folder}"
        ) from None
    if url == OFFICIAL_URL and _md5(partial) != OFFICIAL_MD5:
        partial.unlink()
        raise ModelNotFoundError(f"the downloaded {MODEL_FILE} is damaged (checksum mismatch): try again")
    os.replace(partial, target)
    return target


def _download(url: str, partial: Path, progress) -> None:
    start = partial.stat().st_size if partial.is_file() else 0
    headers = {"Range": f"bytes={start}-"} if start else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as response:
        if start and response.status != 206:  # the server ignored the range: start over
            start = 0
        length = int(response.headers.get("Content-Length") or 0)
        total, done = start + length, start
        with open(partial, "ab" if start else "wb") as out:
            while chunk := response.read(CHUNK_BYTES):
                out.write(chunk)
                done += len(chunk)
                if progress:
                    progress(done, max(total, done))
    if length and done < total:
        raise OSError(f"the connection closed after {done:,} of {total:,} bytes")


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()
