"""Install a built extension zip into this Blender (the bpy wheel or `blender -b`) and enable it.

    python scripts/install_extension.py -- dist/image_to_3d-<version>.zip

Uses Blender's own installer (extensions.package_install_files) into the user_default
repository, saves the preferences so it stays enabled, and checks that the panel and
the operators registered. Installing again replaces the installed copy.
"""

import sys

import bpy

EXTENSION_ID = "image_to_3d"


def main() -> int:
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    result = bpy.ops.extensions.package_install_files(filepath=argv[0], repo="user_default", enable_on_install=True)
    module = f"bl_ext.user_default.{EXTENSION_ID}"
    if result != {"FINISHED"} or module not in bpy.context.preferences.addons:
        print(f"installing {argv[0]} failed ({result})", file=sys.stderr)
        return 1
    bpy.ops.wm.save_userpref()
    missing = [name for name in ("VIEW3D_PT_image_to_3d", "IMAGE_PT_image_to_3d") if not hasattr(bpy.types, name)]
    if missing or not hasattr(bpy.ops.image_to_3d, "generate"):
        print(f"the extension is enabled but did not register {missing or 'image_to_3d.generate'}", file=sys.stderr)
        return 1
    print(f"installed and enabled {module} in {bpy.utils.user_resource('EXTENSIONS')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
