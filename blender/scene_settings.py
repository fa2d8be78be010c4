"""The panels' own settings, kept on the scene (saved with the .blend): source, model, options, batch."""

import bpy
from bpy.props import BoolProperty, EnumProperty, PointerProperty, StringProperty

from ..backend.families.registry import families_taking
from . import options
from .exporters import FORMAT_ITEMS

TEXT_MODELS = " or ".join(family.label for family in families_taking("text"))  # who reads prompts


class ImageTo3DSceneSettings(bpy.types.PropertyGroup):
    __annotations__ = {
        "source": EnumProperty(
            name="Source",
            items=[("IMAGE", "Image", "A Blender image (file-backed, packed, generated or the Render Result)"),
                   ("FILE", "File", "An image file on disk"),
                   ("TEXT", "Text", f"A text prompt describing the object ({TEXT_MODELS})")],
            default="IMAGE",
        ),
        "prompt": StringProperty(name="Prompt", description="The object to make, e.g. \"a red wooden chair\" "
                                                            "(CLIP's first 75 tokens, about 60 words, are read)"),
        "image": PointerProperty(name="Image", type=bpy.types.Image, description="Image to turn into a mesh"),
        "filepath": StringProperty(name="File", subtype="FILE_PATH", description="Image file to turn into a mesh"),
        "use_defaults": BoolProperty(name="Use preference defaults", default=True,
                                     description="Take resolution, threshold and the rest from the add-on preferences"),
        # resolution, threshold, ..., and the preset: the job options, as declared once
        **options.annotations(with_preset=True),
        # the views job's own (views_steps, ...), unless a family shares them
        **options.views_annotations(),
        "batch_source": EnumProperty(
            name="Batch Of",
            items=[("FOLDER", "Images", "Every image of a folder"),
                   ("PROMPTS", "Prompts", f"Every line of a text file of prompts: one object per line ({TEXT_MODELS})")],
            default="FOLDER",
        ),
        "batch_prompts_file": StringProperty(name="Prompts File", subtype="FILE_PATH",
                                             description="Text file with one prompt per line (# starts a comment)"),
        "batch_directory": StringProperty(name="Folder", subtype="DIR_PATH", description="Folder of images"),
        "batch_recursive": BoolProperty(name="Include Subfolders", default=False),
        "batch_export": BoolProperty(name="Export Each", default=False, description="Also write every object to a file"),
        "batch_export_dir": StringProperty(name="Export To", subtype="DIR_PATH"),
        "batch_export_format": EnumProperty(name="Format", items=FORMAT_ITEMS, default="GLB"),
    }


classes = (ImageTo3DSceneSettings,)


def register():
    bpy.types.Scene.image_to_3d = PointerProperty(type=ImageTo3DSceneSettings)


def unregister():
    del bpy.types.Scene.image_to_3d
