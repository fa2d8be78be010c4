"""What a Shap-E job reads: a prompt (text task) or a picture (image task)."""

import unicodedata

from PIL import Image

from ..bridge.errors import InputImageError
from ..bridge.prompts import clean_prompt
from ..prepare.images import open_image, to_rgba8

BROKEN_START = ("Mn", "Mc", "Me", "Cf", "Zs")  # marks, joiners and spaces cannot begin what was ignored


def check_prompt(tokenizer, prompt) -> tuple[str, list[str]]:
    """The prompt to use and notes for the user. CLIP reads model_max_length tokens
    (77, counting its start and end markers); diffusers truncates longer prompts, and
    the note says which words were left out."""
    prompt = clean_prompt(prompt)  # PromptError when empty; whitespace runs mean nothing to CLIP
    limit = int(tokenizer.model_max_length)
    ids = tokenizer(prompt, truncation=False).input_ids
    notes = []
    if len(ids) > limit:
        # keep the start marker and limit - 2 tokens; the end marker closes the prompt
        dropped = whole_start(tokenizer.decode(ids[limit - 1 : -1], skip_special_tokens=True))
        notes.append(
            f"the prompt is {len(ids) - 2} tokens long but the text encoder reads {limit - 2}; "
            f"this end was ignored: \"{dropped}\""
        )
    return prompt, notes


def whole_start(text: str) -> str:
    """`text` from its first whole character: the cut may go through a character (CLIP's
    tokens are bytes), leaving replacement characters, or combining marks and joiners
    of a split cluster, at the start."""
    start = 0
    while start < len(text) and (text[start] == "\ufffd" or unicodedata.category(text[start]) in BROKEN_START):
        start += 1
    return text[start:].strip() or "..."


def prepare_image(image) -> Image.Image:
    """An RGB picture for CLIP's image processor, from any input the project reads (path,
    encoded bytes, PIL image, pixels). Transparent pixels become white: the background
    of Shap-E's own example images (Shap-E works best on a lone object)."""
    if image is None:
        raise InputImageError("no image given: Shap-E's image-to-3D model needs a picture")
    rgba = to_rgba8(open_image(image))  # InputImageError for unreadable, empty or huge images
    if not (rgba[..., 3] > 0).any():
        raise InputImageError("the image is fully transparent: there is no object to make")
    if rgba.shape[0] < 2 or rgba.shape[1] < 2:
        raise InputImageError(f"the image is {rgba.shape[1]} x {rgba.shape[0]} pixels: too small")
    white = Image.new("RGBA", (rgba.shape[1], rgba.shape[0]), (255, 255, 255, 255))
    return Image.alpha_composite(white, Image.fromarray(rgba, "RGBA")).convert("RGB")
