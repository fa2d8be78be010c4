"""Random-weight Shap-E folders in diffusers' layout (text and image variants), every
file made here: weights from numpy's seeded generator, a tiny CLIP-style tokenizer
(bpe_vocab.py), the renderer's marching-cubes table (mc_table.py), component configs
at tiny and full size (configs.py)."""

from .make import FOLDER_NAMES, MARKER_NAME, is_test_model, make_test_model, make_test_models  # noqa: F401
