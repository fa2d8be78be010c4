"""Preparing the input image: read it (images.py), cut the object out of an opaque image
(background.py, rembg), frame it on grey as the model expects (framing.py)."""
