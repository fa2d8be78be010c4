"""Our TripoSR backend: model, surface extraction, worker and its client.

This package's own import pulls in neither torch nor bpy: the Blender side imports
`backend.protocol`, `backend.client`, `backend.settings` and `backend.errors` from it,
and those use only the standard library and numpy. Everything that needs torch lives
in modules the worker (or the CLI) imports explicitly.
"""
