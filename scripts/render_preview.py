"""Render a small preview of the objects in a .blend: Cycles on the CPU, few samples.

    python scripts/render_preview.py -- demo/example.blend demo/example_preview.png [--size 384 --samples 24]
    python scripts/render_preview.py -- raw.blend game.blend docs/presets.png --labels   # side by side

Frames every mesh object with a new camera looking along +y (the way the input image
looked at the object) from a little above, lights it with a sun and a grey world, and
renders through the objects' own materials (vertex colours, or textures and normal
maps). With several .blend files, the objects of each are brought into the first's
scene and set side by side, left to right, each group at its own spot on the x axis;
`--labels` writes under each group what it is (faces, textures). The files are not changed.
"""

import argparse
import math
import sys
from pathlib import Path

import bpy
from mathutils import Vector

GAP = 0.25  # between side-by-side groups, in shares of the widest group


def parse_args():
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", type=Path, nargs="+", help="one or more .blend files, then the output .png")
    parser.add_argument("--size", type=int, default=384, help="height in pixels; the width grows with the groups")
    parser.add_argument("--samples", type=int, default=24)
    parser.add_argument("--labels", action="store_true", help="write each group's faces and textures under it")
    args = parser.parse_args(argv)
    if len(args.paths) < 2:
        parser.error("give a .blend file and the output .png")
    args.blends, args.out = args.paths[:-1], args.paths[-1]
    return args


def bounds(objects):
    corners = [obj.matrix_world @ Vector(corner) for obj in objects for corner in obj.bound_box]
    low = Vector(min(c[i] for c in corners) for i in range(3))
    high = Vector(max(c[i] for c in corners) for i in range(3))
    return low, high


def visible_meshes(objects) -> list:
    return [obj for obj in objects if obj.type == "MESH" and obj.visible_get()]


def append_meshes(path: Path, scene) -> list:
    """The mesh objects of another .blend, with their data, materials and packed images."""
    with bpy.data.libraries.load(str(path.resolve()), link=False) as (source, target):
        target.objects = list(source.objects)
    added = [obj for obj in target.objects if obj is not None and obj.type == "MESH"]
    for obj in added:
        scene.collection.objects.link(obj)
    return added


def side_by_side(groups: list) -> None:
    """Move each group along x so the groups stand in a row, left to right."""
    widths = [(high - low).x for low, high in (bounds(group) for group in groups)]
    x = 0.0
    for group, width in zip(groups, widths):
        low, high = bounds(group)
        shift = Vector((x - low.x, -(low.y + high.y) / 2, -low.z))
        for obj in group:
            obj.location += shift
        bpy.context.view_layer.update()  # matrix_world follows the new locations
        x += width + GAP * max(widths)


def describe(group) -> str:
    """'1,030,092 faces' or '20,000 faces, 1024 px textures' for a group of objects."""
    faces = sum(len(obj.data.polygons) for obj in group)
    sizes = {node.image.size[0] for obj in group for material in obj.data.materials if material and material.node_tree
             for node in material.node_tree.nodes if node.bl_idname == "ShaderNodeTexImage" and node.image}
    return f"{faces:,} faces" + (f", {max(sizes)} px textures" if sizes else ", vertex colours")


def add_label(scene, group, text: str) -> None:
    low, high = bounds(group)
    curve = bpy.data.curves.new("preview label", "FONT")
    curve.body, curve.align_x, curve.size = text, "CENTER", 0.09 * max((high - low).x, 1.0)
    label = bpy.data.objects.new("preview label", curve)
    label.location = ((low.x + high.x) / 2, low.y, low.z - 1.6 * curve.size)
    label.rotation_euler = (math.radians(90), 0, 0)  # upright, facing the camera (-y)
    material = bpy.data.materials.new("preview label")
    material.diffuse_color = (0.9, 0.9, 0.9, 1.0)
    curve.materials.append(material)
    scene.collection.objects.link(label)


def add_camera(scene, low, high, aspect: float):
    centre, size = (low + high) / 2, max((high - low).length, 1e-3)
    data = bpy.data.cameras.new("preview camera")
    data.lens = 50
    data.sensor_fit = "HORIZONTAL" if aspect >= 1 else "VERTICAL"
    camera = bpy.data.objects.new("preview camera", data)
    scene.collection.objects.link(camera)
    # from the front (-y, where the input view was) and 25 degrees above
    direction = Vector((0.35, -1.0, 0.5)).normalized() if aspect <= 1 else Vector((0.0, -1.0, 0.35)).normalized()
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
    bpy.ops.wm.open_mainfile(filepath=str(args.blends[0].resolve()))
    scene = bpy.context.scene
    groups = [visible_meshes(scene.objects)] + [append_meshes(path, scene) for path in args.blends[1:]]
    for path, group in zip(args.blends, groups):
        if not group:
            raise SystemExit(f"{path} holds no visible mesh object to render")
    if len(groups) > 1:
        side_by_side(groups)
    if args.labels:
        for group in groups:
            add_label(scene, group, describe(group))
        bpy.context.view_layer.update()
    everything = [obj for group in groups for obj in group] + [o for o in scene.objects if o.name.startswith("preview label")]
    aspect = max(1.0, 0.8 * len(groups))
    add_camera(scene, *bounds(everything), aspect)
    add_lights(scene)
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = args.samples
    scene.cycles.seed = 0
    scene.cycles.use_denoising = False
    scene.render.resolution_y = args.size
    scene.render.resolution_x = round(args.size * aspect)
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
