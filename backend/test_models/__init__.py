"""Random-weight models in each family's official layout, for tests and demos.

Development only: left out of the extension zip. `python -m backend make-test-model`
writes them.
"""
