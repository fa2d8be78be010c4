"""The add-on's operators. Each module exposes `classes`; the root registers them in order.

modal.py is the base every long-running operator shares (timer, cancel, status bar).
"""

from . import batch, download_model, generate, generate_views, install_backend, release_model

classes = (*generate.classes, *generate_views.classes, *batch.classes, *release_model.classes, *install_backend.classes,
           *download_model.classes)
