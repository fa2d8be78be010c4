"""The toy sphere family (toy_sphere/) through the worker and through a real model server,
run in a process whose environment plugs the family in (test_toy_family.py starts it).

    python tests/plugins/toy_clients.py TOY_MODEL_DIR PICTURE WORK_DIR

Prints one JSON line of facts; the pytest side makes the assertions.
"""

import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from model_server import start_model_server, stop_model_server  # noqa: E402

from backend.bridge.client import WorkerClient  # noqa: E402
from backend.bridge.settings import GenerateSettings, job_stages  # noqa: E402

RAW = GenerateSettings(family="TOY_SPHERE", sphere_radius=0.4, sphere_resolution=40)
ASSET = GenerateSettings(family="TOY_SPHERE", sphere_radius=0.4, sphere_resolution=40, max_faces=300, texture_size=64)


def facts_of(result, stages_seen, settings) -> dict:
    radius = np.linalg.norm(result.vertices, axis=1)
    normals = result.vertices / radius[:, None]
    expected = np.rint((normals + 1) / 2 * 255)
    return {"vertices": len(result.vertices), "faces": len(result.faces),
            "radius_min": float(radius.min()), "radius_max": float(radius.max()),
            "color_error": float(np.abs(result.colors[:, :3] - expected).max()),
            "uvs": result.uvs is not None, "texture": None if result.base_color is None else list(result.base_color.shape),
            "stages": list(dict.fromkeys(stages_seen)), "expected_stages": list(job_stages(settings))}


def run_all(client, picture: Path, **model) -> dict:
    found = {}
    for name, settings in (("raw", RAW), ("asset", ASSET)):
        seen = []
        result = client.run(settings, image_path=str(picture), timeout=300,
                            on_event=lambda event, seen=seen: seen.append(event.stage) if event.kind == "progress" else None,
                            **model)
        found[name] = facts_of(result, seen, settings)
    return found


def main(model_dir: str, picture: str, work: str) -> None:
    facts = {}
    with WorkerClient(python=sys.executable, model=model_dir, device="cpu") as worker:
        facts["worker"] = run_all(worker, Path(picture), model=model_dir)
    server = start_model_server(Path(work), Path(model_dir))
    try:
        facts["server"] = run_all(server.client(), Path(picture))
        facts["server_version"] = server.client().api.version()
    finally:
        stop_model_server(server)
    print(json.dumps(facts))


if __name__ == "__main__":
    main(*sys.argv[1:4])
