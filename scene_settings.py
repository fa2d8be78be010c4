"""The panels' own settings, kept on the scene (saved with the .blend): source, options, batch."""

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty, StringProperty

from .exporters import FORMAT_ITEMS

SHADING_ITEMS = [("SMOOTH", "Smooth", "Smooth shading"), ("FLAT", "Flat", "Flat shading")]


class ImageTo3DSceneSettings(bpy.types.PropertyGroup):
    source: EnumProperty(
        name="Source",
        items=[("IMAGE", "Image", "A Blender image (file-backed, packed, generated or the Render Result)"),
               ("FILE", "File", "An image file on disk")],
        default="IMAGE",
    )
    image: PointerProperty(name="Image", type=bpy.types.Image, description="Image to turn into a mesh")
    filepath: StringProperty(name="File", subtype="FILE_PATH", description="Image file to turn into a mesh")
    use_defaults: BoolProperty(name="Use preference defaults", default=True,
                               description="Take resolution, threshold and the rest from the add-on preferences")
    resolution: IntProperty(name="Resolution", default=256, min=8, max=1024, soft_max=512,
                            description="Marching-cubes grid points per axis: detail and cost")
    threshold: FloatProperty(name="Threshold", default=25.0, min=0.0, soft_max=100.0,
                             description="Density level of the surface; lower it when nothing comes out")
    foreground_ratio: FloatProperty(name="Foreground Ratio", default=0.85, min=0.05, max=1.0,
                                    description="Share of the frame the object fills")
    remove_background: BoolProperty(name="Remove Background", default=True,
                                    description="Cut the object out of opaque images (rembg)")
    shading: EnumProperty(name="Shading", items=SHADING_ITEMS, default="SMOOTH")
    rest_on_cursor: BoolProperty(name="Rest on Cursor", default=True,
                                 description="Put the lowest point at the 3D cursor's height")

    batch_directory: StringProperty(name="Folder", subtype="DIR_PATH", description="Folder of images")
    batch_recursive: BoolProperty(name="Include Subfolders", default=False)
    batch_export: BoolProperty(name="Export Each", default=False, description="Also write every object to a file")
    batch_export_dir: StringProperty(name="Export To", subtype="DIR_PATH")
    batch_export_format: EnumProperty(name="Format", items=FORMAT_ITEMS, default="GLB")


classes = (ImageTo3DSceneSettings,)


def register():
    bpy.types.Scene.image_to_3d = PointerProperty(type=ImageTo3DSceneSettings)


def unregister():
    del bpy.types.Scene.image_to_3d
