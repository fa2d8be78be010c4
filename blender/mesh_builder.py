"""numpy arrays from the backend -> a Blender object with vertex colours, a UV map,
textures and a material.

Everything goes through `foreach_set`: no Python loop touches a vertex, so a 500k-vertex
mesh builds in well under a second. The object is made whole or not at all: a failure
midway (memory for an 8192 px texture, say) removes what was already made.
"""

import contextlib

import bpy
import numpy as np

COLOR_ATTRIBUTE = "Color"
UV_MAP = "UVMap"
PROPERTY_SOURCE = "image_to_3d_source"
PROPERTY_SETTINGS = "image_to_3d_settings"
ROUGHNESS = 0.8  # the scans are matte; the default looks plastic


def build_mesh(name: str, vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray,
               shading: str = "SMOOTH", uvs: np.ndarray | None = None) -> bpy.types.Mesh:
    """A mesh datablock in the backend's frame; colours are sRGB bytes on the points;
    uvs (M, 3, 2), one per face corner, become the UV map."""
    vertices = np.ascontiguousarray(vertices, dtype=np.float32).reshape(-1, 3)
    faces = np.ascontiguousarray(faces, dtype=np.int32).reshape(-1, 3)
    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(len(vertices))
    mesh.vertices.foreach_set("co", vertices.ravel())
    mesh.loops.add(faces.size)
    # the corner-vertex attribute takes the whole buffer at once (0.001 s for 1.5M
    # corners against 0.1 s through loops' vertex_index); Blender 4.2+ has it
    mesh.attributes[".corner_vert"].data.foreach_set("value", faces.ravel())
    mesh.polygons.add(len(faces))
    mesh.polygons.foreach_set("loop_start", np.arange(0, faces.size, 3, dtype=np.int32))
    mesh.update(calc_edges=True)

    if colors is not None and len(colors):
        # BYTE_COLOR keeps the sRGB bytes exactly; `color_srgb` takes them without a
        # linear round trip.
        attribute = mesh.color_attributes.new(COLOR_ATTRIBUTE, "BYTE_COLOR", "POINT")
        rgba = np.asarray(colors, dtype=np.float32).reshape(-1, 4) / 255.0
        attribute.data.foreach_set("color_srgb", rgba.ravel())
        mesh.color_attributes.active_color_name = attribute.name
        mesh.color_attributes.default_color_name = attribute.name  # the render colour

    if uvs is not None:
        # loop k is corner k % 3 of face k // 3 (loop_start above): the same order as uvs
        layer = mesh.uv_layers.new(name=UV_MAP)
        layer.uv.foreach_set("vector", np.ascontiguousarray(uvs, dtype=np.float32).ravel())

    if shading == "FLAT":
        mesh.shade_flat()
    else:
        mesh.shade_smooth()
    return mesh


def build_material(name: str, attribute_name: str = COLOR_ATTRIBUTE, base_color: bpy.types.Image | None = None,
                   normal_map: bpy.types.Image | None = None) -> bpy.types.Material:
    """Principled BSDF whose Base Color is the base colour image (through an Image
    Texture node on the UV map), else the mesh's colour attribute; a normal map image
    feeds its Normal through a tangent-space Normal Map node."""
    material = bpy.data.materials.new(name)
    material.use_nodes = True
    nodes, links = material.node_tree.nodes, material.node_tree.links
    bsdf = next((n for n in nodes if n.type == "BSDF_PRINCIPLED"), None) or nodes.new("ShaderNodeBsdfPrincipled")
    bsdf.inputs["Roughness"].default_value = ROUGHNESS
    x, y = bsdf.location.x, bsdf.location.y
    if base_color is None:
        color = nodes.new("ShaderNodeVertexColor")  # "Color Attribute" in the UI
        color.layer_name = attribute_name
        color.location = (x - 300, y)
        links.new(color.outputs["Color"], bsdf.inputs["Base Color"])
        return material
    texture = nodes.new("ShaderNodeTexImage")
    texture.image, texture.location = base_color, (x - 400, y)
    links.new(texture.outputs["Color"], bsdf.inputs["Base Color"])
    if normal_map is not None:
        normal_texture = nodes.new("ShaderNodeTexImage")
        normal_texture.image, normal_texture.location = normal_map, (x - 600, y - 320)
        normal_node = nodes.new("ShaderNodeNormalMap")
        normal_node.space, normal_node.uv_map, normal_node.location = "TANGENT", UV_MAP, (x - 250, y - 320)
        links.new(normal_texture.outputs["Color"], normal_node.inputs["Color"])
        links.new(normal_node.outputs["Normal"], bsdf.inputs["Normal"])
    return material


def texture_image(name: str, pixels: np.ndarray, non_color: bool = False) -> bpy.types.Image:
    """A packed Blender image holding (T, T, 3) uint8 pixels, top row first."""
    height, width = pixels.shape[:2]
    image = bpy.data.images.new(name, width, height, alpha=False)
    if non_color:  # a normal map is data: no sRGB curve on its way to the shader
        image.colorspace_settings.name = "Non-Color"
    store_pixels(image, pixels)
    return image


def store_pixels(image: bpy.types.Image, pixels: np.ndarray) -> None:
    """(H, W, 3) uint8, top row first, into a byte image (bytes kept exactly), packed
    into the .blend: it has no file behind it, and nothing is lost when the file moves."""
    height, width = pixels.shape[:2]
    rgba = np.ones((height, width, 4), dtype=np.float32)
    rgba[..., :3] = pixels[..., :3].astype(np.float32) / 255.0
    image.pixels.foreach_set(rgba[::-1].ravel())  # Blender stores the bottom row first
    image.update()
    image.pack()


def placement_offset(vertices: np.ndarray, location, rest_on_cursor: bool) -> tuple:
    """Object location: the cursor, lifted so the lowest point sits on it when asked."""
    x, y, z = (float(v) for v in location)
    if rest_on_cursor and len(vertices):
        z -= float(np.min(vertices[:, 2]))
    return (x, y, z)


@contextlib.contextmanager
def _removed_on_failure(made: list):
    """Datablocks appended to `made` are removed again if the block fails."""
    try:
        yield made
    except BaseException:
        bpy.data.batch_remove(made)
        raise


def create_object(context, name: str, vertices, faces, colors, *, uvs=None, base_color=None, normal_map=None,
                  shading="SMOOTH", location=(0, 0, 0), rest_on_cursor=False, collection=None, source="",
                  settings=None) -> bpy.types.Object:
    """Build, place, link, select and activate the object; returns it.

    The mesh keeps the backend's coordinates; placement lives only in the object's
    location (rotation stays identity), so the result is never rotated twice. The
    textures are named after the object ("<object> Base Color", "<object> Normal").
    """
    with _removed_on_failure([]) as made:
        mesh = build_mesh(name, vertices, faces, colors, shading, uvs if base_color is not None else None)
        made.append(mesh)
        obj = bpy.data.objects.new(name, mesh)
        made.append(obj)
        images = {}
        if base_color is not None:
            images["base_color"] = texture_image(f"{obj.name} Base Color", base_color)
            made.append(images["base_color"])
            if normal_map is not None:
                images["normal_map"] = texture_image(f"{obj.name} Normal", normal_map, non_color=True)
                made.append(images["normal_map"])
        material = build_material(obj.name, **images)
        made.append(material)
        mesh.materials.append(material)
        obj.location = placement_offset(np.asarray(vertices).reshape(-1, 3), location, rest_on_cursor)
        obj[PROPERTY_SOURCE] = str(source)
        obj[PROPERTY_SETTINGS] = dict(settings or {})
        (collection or context.collection or context.scene.collection).objects.link(obj)

    view_layer = context.view_layer
    for other in view_layer.objects.selected:
        other.select_set(False)
    obj.select_set(True)
    view_layer.objects.active = obj
    return obj


def show_prepared_image(name: str, pixels: np.ndarray) -> bpy.types.Image | None:
    """Put the model's input (H, W, 3) uint8, top row first, in a Blender image."""
    if pixels is None or not np.size(pixels):
        return None
    image = _image_of(f"{name} (model input)", np.asarray(pixels))
    image.use_fake_user = True  # nothing uses it in the scene: without this a save drops it
    return image


def show_preview(name: str, pixels: np.ndarray) -> bpy.types.Image:
    """The latest preview of a long job (H, W, 3) uint8, top row first, in the image
    "<name> (preview)" (replaced by each new one; the panel shows it while the job runs)."""
    image = _image_of(f"{name} (preview)", np.asarray(pixels))
    try:
        image.preview_ensure().reload()  # the panel's thumbnail follows the new pixels
    except (AttributeError, RuntimeError):  # no previews without a UI
        pass
    return image


def _image_of(image_name: str, pixels: np.ndarray) -> bpy.types.Image:
    """The named image holding `pixels` (made, or remade when its size changed)."""
    height, width = pixels.shape[:2]
    image = bpy.data.images.get(image_name)
    if image is not None and tuple(image.size) != (width, height):
        bpy.data.images.remove(image)
        image = None
    if image is None:
        image = bpy.data.images.new(image_name, width, height, alpha=False)
    store_pixels(image, pixels)
    return image
