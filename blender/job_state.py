"""Where a job's state lives in Blender: what the panels, the status bar and the headless
script show of the running or last generate, batch or views run (one runs at a time)."""

from dataclasses import dataclass


@dataclass
class Status:
    running: bool = False
    label: str = ""
    fraction: float = 0.0
    cancel_requested: bool = False
    last_result: str = ""
    last_error: str = ""
    last_input_image: str = ""  # the Blender image holding what the model saw
    preview_image: str = ""  # the Blender image holding the running job's latest preview (long jobs)
    last_views_image: str = ""  # the Blender image holding the last views job's contact sheet
    last_batch: object = None  # the last runs.BatchRun (the headless script reads it)


STATUS = Status()
