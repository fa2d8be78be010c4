"""Render the project's example image: Blender's monkey, coloured, on a transparent background.

    python scripts/make_example_image.py [-- --out assets/example.png --size 512 --samples 16]

Runs with the bpy wheel (or `blender -b --python scripts/make_example_image.py -- ...`).
Cycles on the CPU with a fixed seed, so the image is the same on every run; the alpha
channel lets the backend skip background removal.
"""

import argparse
import math
import sys
from pathlib import Path

import bpy

REPO_ROOT = Path(__file__).resolve().parents[1]


def parse_args():
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "assets" / "example.png")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--samples", type=int, default=16)
    return parser.parse_args(argv)


def material(name, colour, roughness=0.5):
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    bsdf = mat.node_tree.nodes["Principled BSDF"]
    bsdf.inputs["Base Color"].default_value = (*colour, 1.0)
    bsdf.inputs["Roughness"].default_value = roughness
    return mat


def build_scene():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene

    # the monkey, smoothed, with a warm body and blue eyes (two material slots)
    bpy.ops.mesh.primitive_monkey_add(size=2.0, rotation=(0.0, 0.0, math.radians(-20)))
    monkey = bpy.context.active_object
    monkey.modifiers.new("smooth", "SUBSURF").levels = 2
    bpy.ops.object.shade_smooth()
    monkey.data.materials.append(material("fur", (0.60, 0.18, 0.04)))
    monkey.data.materials.append(material("eyes", (0.05, 0.25, 0.85), roughness=0.2))
    for polygon in monkey.data.polygons:
        # the eyeballs: faces close to either eye centre
        x, y, z = polygon.center
        if (abs(x) - 0.47) ** 2 + (y + 0.75) ** 2 + (z - 0.24) ** 2 < 0.17 ** 2:
            polygon.material_index = 1

    camera_data = bpy.data.cameras.new("camera")
    camera_data.lens = 60
    camera = bpy.data.objects.new("camera", camera_data)
    camera.location = (0.0, -7.0, 0.3)
    camera.rotation_euler = (math.radians(88), 0.0, 0.0)
    scene.collection.objects.link(camera)
    scene.camera = camera

    for name, energy, location in (("key", 250, (3, -4, 4)), ("fill", 80, (-4, -3, 1)), ("rim", 150, (0, 4, 3))):
        light = bpy.data.objects.new(name, bpy.data.lights.new(name, "AREA"))
        light.data.energy = energy
        light.data.size = 3
        light.location = location
        light.rotation_euler = (0, 0, 0)
        constraint = light.constraints.new("TRACK_TO")
        constraint.target = monkey
        scene.collection.objects.link(light)

    world = bpy.data.worlds.new("world")
    world.color = (0.1, 0.1, 0.1)
    scene.world = world
    return scene


def render(scene, out: Path, size: int, samples: int):
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = samples
    scene.cycles.seed = 0
    scene.cycles.use_denoising = False  # the denoiser is not in every build; keep it simple
    scene.render.film_transparent = True
    scene.render.resolution_x = scene.render.resolution_y = size
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGBA"
    scene.render.image_settings.compression = 100
    out.parent.mkdir(parents=True, exist_ok=True)
    scene.render.filepath = str(out)
    bpy.ops.render.render(write_still=True)


def main():
    args = parse_args()
    render(build_scene(), args.out.resolve(), args.size, args.samples)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
