"""The add-on's panels. Each module exposes `classes`; the root registers them in order."""

from . import sidebar

classes = sidebar.classes
