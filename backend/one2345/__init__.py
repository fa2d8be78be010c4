"""One-2-3-45's reconstruction stage: 32 generated views -> a coloured mesh, by its
generalizable SparseNeuS network (lod0), weight-compatible with ckpt_215000.pth.
See docs/one2345.md."""

from .checkpoint import load_reconstruction  # noqa: F401
from .frames import world_to_blender, world_to_official_export  # noqa: F401
from .reconstruct import STAGES, ReconstructedMesh, reconstruct  # noqa: F401
from .views import ViewSet, read_input_folder  # noqa: F401
