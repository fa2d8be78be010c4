"""One-2-3-45 as a model family: its declaration (declaration.py, standard library only),
its engine (engine.py), and its reconstruction stage - 32 generated views -> a coloured
mesh by its generalizable SparseNeuS network (lod0), weight-compatible with
ckpt_215000.pth: checkpoint.load_reconstruction, views.read_input_folder / ViewSet,
reconstruct.reconstruct, frames.world_to_blender. See docs/one2345.md.

Nothing is imported here, so that importing the declaration (Blender, the server's
front) does not import torch.
"""
