"""The server's job table (states, long-poll waits, limits, expiry) and its replica plan; no Ray."""

import asyncio

import numpy as np
import pytest

from backend.server.jobs import CANCELLED, DONE, QUEUED, RUNNING, JobTable, QueueFull, StoredResult, UnknownJob
from backend.server.ray_setup import ReplicaPlan, SetupError, plan_replicas


def small_result(nbytes=400):
    return StoredResult({"vertices": np.zeros((nbytes // 12, 3), np.float32), "faces": np.zeros((0, 3), np.int32)},
                     {"device": "cpu", "timings": {}})


def test_ids_are_unguessable_and_limits_hold():
    table = JobTable(max_active=2, result_ttl=60, max_result_bytes=1 << 20)
    a, b = table.create({}, b"x"), table.create({}, b"y")
    assert len(a.job_id) == 32 and a.job_id != b.job_id
    with pytest.raises(QueueFull):
        table.create({}, b"z")
    a.finish(DONE, result=small_result())
    assert table.create({}, b"z").state == QUEUED  # an ended job frees its place
    with pytest.raises(UnknownJob):
        table.get("nope")


def test_state_changes_bump_the_version_and_end_once():
    job = JobTable(4, 60, 1 << 20).create({}, b"img")
    v0 = job.version
    job.mark_running("r1")
    job.mark_progress("field", 0.5)
    assert (job.state, job.stage, job.fraction, job.replica) == (RUNNING, "field", 0.5, "r1")
    job.finish(CANCELLED, error=("cancelled", "cancelled by the user"))
    job.finish(DONE, result=small_result())  # too late: the first end wins
    job.mark_progress("colors", 1.0)
    assert job.state == CANCELLED and job.result is None and job.image is None
    assert job.version == v0 + 3
    status = job.status(result_ttl=60)
    assert status["error"] == {"code": "cancelled", "message": "cancelled by the user"}
    assert status["expires"] == pytest.approx(job.finished + 60)


def test_long_poll_returns_on_change_or_timeout():
    async def scenario():
        job = JobTable(4, 60, 1 << 20).create({}, b"img")
        loop = asyncio.get_running_loop()
        started = loop.time()
        await job.wait_for_change(job.version, 0.05)  # nothing happens: times out
        waited = loop.time() - started
        loop.call_later(0.05, job.mark_progress, "encode", 0.0)
        started = loop.time()
        await job.wait_for_change(job.version, 5.0)
        return waited, loop.time() - started, job.stage

    waited, woke_after, stage = asyncio.run(scenario())
    assert 0.04 <= waited < 1.0
    assert woke_after < 1.0 and stage == "encode"


def test_sweep_drops_expired_jobs_then_the_oldest_over_the_memory_cap():
    table = JobTable(max_active=10, result_ttl=100, max_result_bytes=1000)
    jobs = [table.create({}, b"i") for _ in range(4)]
    for i, job in enumerate(jobs[:3]):
        job.finish(DONE, result=small_result(480))
        job.finished_monotonic = 1000.0 + i
    assert table.sweep(now=1050.0) == 1  # 3 x 480 bytes > 1000: the oldest goes
    assert [j.job_id for j in table.jobs()] == [j.job_id for j in jobs[1:]]
    assert table.sweep(now=1200.0) == 2  # both remaining ended jobs expire; the active one stays
    assert table.jobs() == [jobs[3]]


def test_one_replica_per_gpu_by_default():
    assert plan_replicas("auto", "auto", {"GPU": 4.0, "CPU": 64.0}) == ReplicaPlan(4, "cuda", 1.0, 1.0, None)


def test_more_replicas_than_gpus_share_them_evenly():
    assert plan_replicas("2", "cuda", {"GPU": 1.0, "CPU": 16.0}) == ReplicaPlan(2, "cuda", 0.5, 1.0, None)
    assert plan_replicas("8", "auto", {"GPU": 4.0, "CPU": 64.0}).num_gpus == 0.5




def test_cpu_replicas_share_the_cores():
    assert plan_replicas("auto", "auto", {"CPU": 2.0}) == ReplicaPlan(1, "cpu", 0.0, 2.0, 2)
    assert plan_replicas("2", "cpu", {"CPU": 2.0, "GPU": 1.0}) == ReplicaPlan(2, "cpu", 0.0, 1.0, 1)
    assert plan_replicas("3", "auto", {"CPU": 2.0}).torch_threads == 1
    assert plan_replicas("4", "cpu", {"CPU": 16.0}, cpus_per_replica=2) == ReplicaPlan(4, "cpu", 0.0, 2.0, 2)
    with pytest.raises(SetupError, match="more than the 16 cores"):
        plan_replicas("9", "cpu", {"CPU": 16.0}, cpus_per_replica=2)


@pytest.mark.parametrize("requested, device, resources, words", [
    ("auto", "cuda", {"CPU": 8.0}, "no GPU"),
    ("3", "cuda", {"CPU": 8.0, "GPU": 2.0}, "a multiple of 2"),
    ("zero", "auto", {"CPU": 8.0}, "--replicas"),
    ("0", "auto", {"CPU": 8.0}, "--replicas"),
])


def test_impossible_plans_say_why(requested, device, resources, words):
    with pytest.raises(SetupError, match=words):
        plan_replicas(requested, device, resources)
