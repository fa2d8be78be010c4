"""What the views tests share (tests/test_views_*.py, conftest.py's views fixtures)."""

# Small and quick: 3 steps for the first views (2 UNet evaluations), 2 for the nearby ones
# (1), the elevation given (no LoFTR); tests of the estimate ask for it.
# tests/blender/views_scenarios.py's FAST is the same.
VIEWS_TEST_SETTINGS = {"views_estimate_elevation": False, "views_elevation": 20.0, "views_steps": 3, "views_seed": 5}
