"""The mesh stages after the network.

surface.py evaluates the density field on a grid (only near the surface) and extracts
the coloured triangle mesh; marching_cubes.py is a torch marching cubes for GPUs;
coordinates.py turns the model's frame into Blender's and glTF's; export.py writes
GLB, OBJ and PLY files.
"""
