"""What to send the worker for a text prompt (a text job), as image_source.py does
for images: keyword arguments for submit, a name for the object, where it came from."""

from dataclasses import dataclass
from typing import ClassVar

from ..backend.bridge.prompts import clean_prompt, prompt_name


@dataclass
class PromptInput:
    task: ClassVar[str] = "text"
    prompt: str  # cleaned (bridge/prompts.py): PromptError for an empty one comes at from_text

    @property
    def name(self) -> str:
        return prompt_name(self.prompt)

    @property
    def source(self) -> str:
        """Stored on the object (batch re-runs compare it), as an image's path is."""
        return self.prompt

    def submit_kwargs(self) -> dict:
        return {"prompt": self.prompt}


def from_text(text: str) -> PromptInput:
    return PromptInput(clean_prompt(text))
