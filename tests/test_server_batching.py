"""Encoder batching: several prepared images encoded in one forward pass give each the
codes it gets alone, and a replica's concurrent jobs share batches with unchanged meshes.
In this process (no Ray instance): the deployment class is a plain class until deployed."""

import asyncio

import numpy as np
import pytest

from backend.bridge.settings import GenerateSettings
from backend.pipeline import generate_mesh, load_model
from backend.prepare.framing import prepare_image
from backend.triposr.engine import encode_batch as encode_images

NAMES = ("flamingo.png", "chair.png", "horse.png")


@pytest.fixture(scope="module")
def loaded(tiny_model_dir):
    return load_model(tiny_model_dir, "cpu")


def test_a_batch_encodes_each_image_as_it_would_be_encoded_alone(loaded, examples_dir):
    prepared = [prepare_image(examples_dir / name, 0.85, True, loaded.remover, []) for name in NAMES]
    assert len({image.shape for image in prepared}) > 1  # sizes differ: each is resized on its own
    batch = encode_images(loaded, prepared)
    for image, codes in zip(prepared, batch):
        (alone,) = encode_images(loaded, [image])
        assert bool((codes == alone).all())


def test_concurrent_jobs_on_one_replica_share_encoder_batches(loaded, tiny_model_dir, examples_dir):
    pytest.importorskip("ray.serve")
    from backend.server.replica import MeshModel

    replica = MeshModel(str(tiny_model_dir), "cpu", "float32", concurrency=len(NAMES), max_batch=len(NAMES),
                        torch_threads=None)
    replica.batcher.wait_s = 5.0  # all three reach the encoder within this

    async def one_job(name):
        events = [event async for event in replica.generate(name, {"resolution": 32}, (examples_dir / name).read_bytes())]
        return events[-1]

    async def all_jobs():
        return await asyncio.gather(*(one_job(name) for name in NAMES))

    outcomes = asyncio.run(all_jobs())
    assert replica.batcher.batch_sizes == {len(NAMES): 1}  # one batch of three
    for name, outcome in zip(NAMES, outcomes):
        assert outcome["event"] == "result", outcome
        alone = generate_mesh(loaded, examples_dir / name, GenerateSettings(resolution=32))
        for key in ("vertices", "faces", "colors"):
            np.testing.assert_array_equal(outcome["arrays"][key], getattr(alone, key), err_msg=f"{name} {key}")


def test_the_batcher_hands_each_job_its_own_codes_and_failures():
    import threading

    from backend.server.encode_batcher import EncodeBatcher

    calls = []

    def encode_many(images):
        calls.append(list(images))
        if "bad" in images:
            raise RuntimeError("CUDA out of memory")
        return [image.upper() for image in images]

    batcher = EncodeBatcher(encode_many, max_batch=3, wait_s=5.0)
    got = {}

    def job(name):
        try:
            got[name] = batcher.encode(name)
        except RuntimeError as exc:
            got[name] = exc

    threads = [threading.Thread(target=job, args=(name,)) for name in ("a", "b", "c")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert got == {"a": "A", "b": "B", "c": "C"} and sorted(calls[0]) == ["a", "b", "c"]  # full: no 5 s wait

    batcher.wait_s = 0.05
    assert batcher.encode("d") == "D" and calls[-1] == ["d"]  # alone: after the short wait
    assert batcher.batch_sizes == {3: 1, 1: 1}

    batcher = EncodeBatcher(encode_many, max_batch=2, wait_s=5.0)
    threads = [threading.Thread(target=job, args=(name,)) for name in ("bad", "e")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert isinstance(got["bad"], RuntimeError) and isinstance(got["e"], RuntimeError)  # one batch, one failure
