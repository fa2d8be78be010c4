"""Render a small preview of the objects in a .blend: Cycles on the CPU, few samples.

    python scripts/render_preview.py -- demo/example.blend demo/example_preview.png [--size 384 --samples 24]

Frames every mesh object with a new camera looking along +y (the way the input image
looked at the object) from a little above, lights it with a sun and a grey world, and
renders through the objects' own materials (their vertex colours). The .blend is not changed.
"""

import argparse
import math
import sys
from pathlib import Path

import bpy
from mathutils import Vector


def parse_args():
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("blend", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--samples", type=int, default=24)
    return parser.parse_args(argv)


def bounds(objects):
    corners = [obj.matrix_world @ Vector(corner) for obj in objects for corner in obj.bound_box]
    low = Vector(min(c[i] for c in corners) for i in range(3))
    high = Vector(max(c[i] for c in corners) for i in range(3))
    return low, high


def add_camera(scene, low, high):
    centre, size = (low + high) / 2, max((high - low).length, 1e-3)
    data = bpy.data.cameras.new("preview camera")
    data.lens = 50
    camera = bpy.data.objects.new("preview camera", data)
    scene.collection.objects.link(camera)
    # from the front (-y, where the input view was) and 25 degrees above
    direction = Vector((0.35, -1.0, 0.5)).normalized()
    fov = 2 * math.atan(data.sensor_width / (2 * data.lens))
    camera.location = centre + direction * (size / 2) / math.tan(fov / 2) * 1.15
    camera.rotation_euler = (centre - camera.location).to_track_quat("-Z", "Y").to_euler()
    scene.camera = camera


def add_lights(scene):
    sun = bpy.data.objects.new("preview sun", bpy.data.lights.new("preview sun", "SUN"))
    sun.data.energy = 3.0
    sun.rotation_euler = (math.radians(50), 0, math.radians(30))
    scene.collection.objects.link(sun)
    world = scene.world or bpy.data.worlds.new("preview world")
    world.use_nodes = False
    world.color = (0.35, 0.35, 0.38)
    scene.world = world


def main():
    args = parse_args()
    bpy.ops.wm.open_mainfile(filepath=str(args.blend.resolve()))
    scene = bpy.context.scene
    meshes = [obj for obj in scene.objects if obj.type == "MESH" and obj.visible_get()]
    if not meshes:
        raise SystemExit(f"{args.blend} holds no visible mesh object to render")
    add_camera(scene, *bounds(meshes))
    add_lights(scene)
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = args.samples
    scene.cycles.seed = 0
    scene.cycles.use_denoising = False
    scene.render.resolution_x = scene.render.resolution_y = args.size
    scene.render.resolution_percentage = 100
    scene.render.film_transparent = False
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGB"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    scene.render.filepath = str(args.out.resolve())
    bpy.ops.render.render(write_still=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
