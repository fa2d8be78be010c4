"""The views job through the model process (WorkerClient.submit_views / run_views), on
tiny random weights: the same views as the job function in this process, progress by
stage, cancel between UNet steps, and the worker still serving mesh jobs after it."""

import sys

import numpy as np
import pytest
from views_common import VIEWS_TEST_SETTINGS
from worker_helpers import cancel_during

from backend.bridge.client import WorkerClient
from backend.bridge.errors import ModelNotFoundError
from backend.bridge.settings import GenerateSettings, ViewsSettings
from backend.bridge.views_files import ViewsJobResult
from backend.zero123.declaration import job_stages


@pytest.fixture(scope="module")
def client(views_models, tmp_path_factory):
    with WorkerClient(sys.executable, str(views_models), "cpu", log_dir=str(tmp_path_factory.mktemp("logs"))) as made:
        yield made


def test_views_through_the_worker_equal_the_job_function(client, views_picture, views_reference):
    events = []
    result = client.run_views(VIEWS_TEST_SETTINGS, image_path=views_picture, on_event=events.append, timeout=600)
    assert isinstance(result, ViewsJobResult) and result.device == "cpu"
    assert result.view_ids == [view.view_id for view in views_reference.views]
    assert np.array_equal(result.views, np.stack([view.picture for view in views_reference.views]))
    assert np.array_equal(result.input_picture, views_reference.input_picture)
    assert result.contact_sheet.shape == (9 * 128, 5 * 128, 3) and result.elevation == pytest.approx(20.0)
    assert result.poses["views"][8]["id"] == "0_0" and "load" in result.timings
    stages = [event.stage for event in events if event.kind == "progress"]
    assert [s for i, s in enumerate(stages) if i == 0 or s != stages[i - 1]] == list(
        job_stages(ViewsSettings(**VIEWS_TEST_SETTINGS)))
    assert [event.kind for event in events][0] == "accepted" and events[-1].kind == "result"


def test_cancel_stops_the_views_between_steps_and_the_worker_goes_on(client, views_picture, tiny_model_dir):
    settings = {**VIEWS_TEST_SETTINGS, "views_steps": 60}  # 59 first-view steps: long enough to cancel in
    job_id = client.submit_views(settings, image_path=views_picture)
    ended, seconds, step_seconds = cancel_during(client, job_id, "views")  # the model loaded and running
    assert ended == ["cancelled"]
    # cancel is looked at before every UNet step: it ends within one step (under a second on a GPU)
    assert seconds < step_seconds + 2.0
    mesh = client.run(GenerateSettings(resolution=32), image_path=views_picture, model=str(tiny_model_dir), timeout=300)
    assert len(mesh.vertices) > 0  # the same worker, now with TripoSR


def test_estimating_without_loftr_fails_that_job_with_what_to_do(client, views_models, views_picture):
    with pytest.raises(ModelNotFoundError, match="needs the LoFTR folder"):
        client.run_views({"views_steps": 3}, image_path=views_picture, model={"zero123_xl": str(views_models / "zero123_xl")},
                         timeout=300)
