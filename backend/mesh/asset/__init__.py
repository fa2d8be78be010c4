"""The mesh stage after the surface: clean-up, decimation, UV unwrap and texture bake.

stage.py runs it (make_asset); each step has its module: cleanup.py (floaters,
Taubin smoothing), decimate.py (vertex clustering, then fast-simplification's quadric
collapse), charts.py and packing.py (box-projection charts, shape-aware packing),
unwrap.py (the UV layout), raster.py (UV-space rasteriser), bake.py (colour and
tangent-space normal bakes), padding.py (seam padding), tangents.py (vertex normals,
tangent frames), surface_normals.py (the dense surface's normals as a field),
steps.py (progress, cancel, timings, threads). Torch throughout (CPU, CUDA, MPS),
except the quadric collapse (fast-simplification, CPU). docs/asset.md: the choices
and their measurements.
"""
