"""Which attention kernel a TripoSR model gets when it is loaded as every entry point
loads it (backend.pipeline.load_model, no options), and whether its first-call check
passed: on a data-centre GPU with Triton the default is attention=flash, guarded.

    python bench/flash_default_check.py MODEL_DIR [--image PNG]

Runs one default job on CUDA and prints one JSON line: the device, the kernels chosen,
whether the guard checked the kernel against the standard one, and any failure (a
failure means the standard kernel ran instead, with a warning in the log). Exit status 1
when the flash kernel was expected and did not run.
"""

import argparse
import json
import logging
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from backend.bridge.errors import EmptySurfaceError  # noqa: E402
from backend.bridge.settings import GenerateSettings  # noqa: E402
from backend.pipeline import generate_mesh, load_model  # noqa: E402
from backend.triposr.fast_encoder import ENVIRONMENT, GuardedAttention, flash_by_default  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--image", type=Path, default=ROOT / "assets" / "example.png")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if not torch.cuda.is_available():
        print(json.dumps({"error": "no CUDA device"}))
        return 1
    device = torch.device("cuda")
    loaded = load_model(args.model, "cuda")
    try:
        result = generate_mesh(loaded, np.asarray(Image.open(args.image).convert("RGBA")), GenerateSettings())
    except EmptySurfaceError:
        result = None  # random weights may leave no surface; the encoder (and its attention) ran before
    guards = {id(m.attend): m.attend for m in loaded.model.modules() if isinstance(getattr(m, "attend", None), GuardedAttention)}
    guard = next(iter(guards.values()), None)
    expected = flash_by_default(device) and not os.environ.get(ENVIRONMENT, "").strip()  # no opt-out
    found = {"device": torch.cuda.get_device_name(device), "capability": list(torch.cuda.get_device_capability(device)),
             "flash_expected": expected, "kernels": str(getattr(loaded.model, "encoder_kernels", None)),
             "guards": len(guards), "checked": bool(guard and guard.checked), "failure": guard.failure if guard else None,
             "faces": len(result.faces) if result else 0,
             "seconds": {k: round(v, 3) for k, v in result.timings.items()} if result else None}
    print(json.dumps(found))
    flash_ran = guard is not None and guard.checked and guard.failure is None
    return 0 if flash_ran or not expected else 1


if __name__ == "__main__":
    raise SystemExit(main())
