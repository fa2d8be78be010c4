"""Headless Image to 3D: images or text prompts in, a .blend and/or exported meshes out.

    blender -b --python scripts/image_to_3d.py -- --input IMAGE_OR_FOLDER --model DIR \
        [--save out.blend] [--export DIR --format glb] [--preset raw|clean|game_asset|custom]
        [--faces N] [--texture T] [--no-normal-map] [--smooth N] [--keep-floaters] [options]
    blender -b --python scripts/image_to_3d.py -- --prompt TEXT [--prompt TEXT ...] --model TEXT_MODEL_DIR [...]
    blender -b --python scripts/image_to_3d.py -- --prompts FILE --model TEXT_MODEL_DIR [...]
    blender -b --python scripts/image_to_3d.py -- --input IMAGE_OR_FOLDER --prompt TEXT --model DIR [...]
        (a family whose image jobs take a prompt, e.g. --family MAKE_IT_3D: one prompt for every image)
    blender -b --python scripts/image_to_3d.py -- --input ... --server URL --token-file F [...]
    python scripts/image_to_3d.py -- ...          (where the bpy wheel is installed)

It enables the installed extension (installing it from this source tree first when it
is not installed), runs the same operators the panel runs, prints progress, and exits
with 1 when any image or prompt failed, 2 when nothing could start. The model family
comes from --family, else from the --model folder, else the first registered family that
starts from the input (prompts: Shap-E, images: TripoSR).
"""

import argparse
import os
import sys

import bpy

EXTENSION_ID = "image_to_3d"
SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FORMATS = ("glb", "obj", "ply", "fbx")

sys.path.insert(0, SOURCE_ROOT)  # the option declarations (standard library only)
from backend.bridge import options as job_options  # noqa: E402 - declarations and flag checks
from backend.bridge.errors import BackendError  # noqa: E402
from backend.bridge.file_names import unwritable_folder  # noqa: E402
from backend.bridge.tokens import TokenFileError, read_token_file  # noqa: E402
from backend.families.registry import unique_slots  # noqa: E402
from backend.model_folder import family_for_job  # noqa: E402

sys.path.pop(0)


def parse_args(argv: list[str]) -> argparse.Namespace:
    # Blender passes its own arguments too; ours follow "--".
    argv = argv[argv.index("--") + 1:] if "--" in argv else argv[1:]
    parser = argparse.ArgumentParser(prog="image_to_3d.py", description="Turn images or text prompts into meshes.")
    parser.add_argument("--input", help="an image file or a folder of images")
    parser.add_argument("--prompt", action="append", default=[],
                        help="a text prompt; repeat for more objects; with --input, what every image shows "
                             "(a family whose image jobs take one, e.g. Make-It-3D)")
    parser.add_argument("--prompts", help="a text file of prompts, one object per line")
    parser.add_argument("--model", help="model folder or hub id (" + ", ".join(slot.hub_repo for _, slot in unique_slots())
                                        + "), or a folder holding a family's model folders; not with --server")
    parser.add_argument("--server", help="run the jobs on this model server (http(s)://host:port)")
    parser.add_argument("--token-file", help="the server's access token (with --server)")
    parser.add_argument("--ca-file", help="CA certificate of an https server with a certificate of its own")
    parser.add_argument("--save", help="write the scene to this .blend")
    parser.add_argument("--export", help="also write each object to this folder")
    parser.add_argument("--format", default="glb", choices=FORMATS, help="export format (default glb)")
    parser.add_argument("--python", help="backend Python (default: the preferences', else this interpreter)")
    parser.add_argument("--device", choices=job_options.DEVICES, help="default: the preferences'")
    # the job options; one left out takes the add-on preferences' default, and the
    # preset (default: the panel's, Game Asset in a new scene) sets the mesh options not given
    job_options.add_arguments(parser, (job_options.PRESET_OPTION, *job_options.ALL_OPTIONS), show_defaults=False)
    parser.add_argument("--recursive", action="store_true", help="include subfolders of a folder input")
    return parser.parse_args(argv)


def find_installed() -> str | None:
    """Module name of the installed extension (bl_ext.<repo>.image_to_3d), if any."""
    import addon_utils

    for module in addon_utils.modules(refresh=True):
        if module.__name__.startswith("bl_ext.") and module.__name__.endswith("." + EXTENSION_ID):
            return module.__name__
    return None


def install_from_source() -> str:
    """Build the zip with tools/build_extension.py and install it with Blender's installer."""
    sys.path.insert(0, os.path.join(SOURCE_ROOT, "tools"))
    try:
        import build_extension
    finally:
        sys.path.pop(0)
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        (zip_path,) = build_extension.build(SOURCE_ROOT, folder)
        print(f"image_to_3d: installing the extension from {zip_path}", flush=True)
        result = bpy.ops.extensions.package_install_files(filepath=str(zip_path), repo="user_default",
                                                          enable_on_install=True)
    if result != {"FINISHED"}:
        raise SystemExit(f"could not install the extension ({result})")
    return f"bl_ext.user_default.{EXTENSION_ID}"


def enable_extension() -> object:
    module_name = find_installed()
    if module_name is None:
        if not os.path.isfile(os.path.join(SOURCE_ROOT, "tools", "build_extension.py")):
            raise SystemExit("the Image to 3D extension is not installed: install its zip first")
        module_name = install_from_source()
    if module_name not in bpy.context.preferences.addons:
        bpy.ops.preferences.addon_enable(module=module_name)
    return sys.modules[module_name]


def job_kind(args) -> tuple[str, str]:
    """(family, task): --family, else the --model folder's, else the first family that takes the input."""
    task = "image" if args.input else "text"
    return family_for_job(task, args.family, args.model), task


def configure(extension, args, token: str | None, family: str, task: str) -> None:
    prefs = bpy.context.preferences.addons[extension.__name__].preferences
    prefs.run_on = "SERVER" if args.server else "LOCAL"
    if args.server:
        # --server asks for the network: Blender's online access is what extensions check for it
        bpy.context.preferences.system.use_online_access = True
        prefs.server_url = args.server
        prefs.server_token = token  # this session's preferences only: background Blender does not save them
        prefs.server_ca_file = os.path.abspath(args.ca_file) if args.ca_file else ""
        return
    model = os.path.abspath(args.model) if os.path.exists(args.model) else args.model
    extension.blender.worker_session.set_model(prefs, family, task, model)
    if args.python:
        prefs.python_path = os.path.abspath(args.python)
    if args.device:
        prefs.device = args.device.upper()


def clear_default_cube() -> None:
    """A fresh session starts with the factory cube; an opened .blend is left alone."""
    cube = bpy.data.objects.get("Cube")
    if not bpy.data.filepath and cube is not None and cube.type == "MESH":
        bpy.data.objects.remove(cube)


def convert_one(extension, args, options) -> int:
    prompt = {"prompt": args.prompt[0]} if args.prompt else {}  # what the image shows (a family that takes one)
    try:
        bpy.ops.image_to_3d.generate(filepath=os.path.abspath(args.input), **prompt, **options)
    except RuntimeError as error:  # the operator reported an error
        print(f"image_to_3d: FAILED {args.input}: {str(error).strip()}", file=sys.stderr, flush=True)
        return 1
    obj = bpy.context.view_layer.objects.active
    print(f"image_to_3d: {args.input} -> {obj.name}: {extension.blender.job_state.STATUS.last_result}", flush=True)
    return export(extension, args, obj)


def convert_prompts(extension, args, options) -> int:
    """Each --prompt through the generate operator; a failed one does not stop the others."""
    failed = 0
    for prompt in args.prompt:
        try:
            bpy.ops.image_to_3d.generate(prompt=prompt, **options)
        except RuntimeError as error:
            print(f"image_to_3d: FAILED {prompt!r}: {str(error).strip()}", file=sys.stderr, flush=True)
            failed = 1
            continue
        obj = bpy.context.view_layer.objects.active
        print(f"image_to_3d: {prompt!r} -> {obj.name}: {extension.blender.job_state.STATUS.last_result}", flush=True)
        failed = max(failed, export(extension, args, obj))
    return failed


def export(extension, args, obj) -> int:
    if not args.export:
        return 0
    try:
        path = extension.blender.exporters.export_object(bpy.context, obj, os.path.abspath(args.export), args.format.upper())
    except (OSError, RuntimeError) as error:
        print(f"image_to_3d: FAILED to export {obj.name}: {error}", file=sys.stderr, flush=True)
        return 1
    print(f"image_to_3d: exported {path}", flush=True)
    return 0


def convert_folder(extension, args, options) -> int:
    """A folder of images, or a prompts file, through the batch operator."""
    source = {"prompts_file": os.path.abspath(args.prompts)} if args.prompts else {
        "directory": os.path.abspath(args.input), "recursive": args.recursive,
        **({"prompt": args.prompt[0]} if args.prompt else {})}
    try:
        bpy.ops.image_to_3d.batch(export_dir=os.path.abspath(args.export) if args.export else "",
                                  export_format=args.format.upper(), **source, **options)
    except RuntimeError as error:
        print(f"image_to_3d: FAILED {args.prompts or args.input}: {str(error).strip()}", file=sys.stderr, flush=True)
        return 1
    run = extension.blender.job_state.STATUS.last_batch
    for path, message in run.failed:
        print(f"image_to_3d: FAILED {path}: {message}", file=sys.stderr, flush=True)
    return 1 if run.failed else 0


def argument_problem(args) -> str | None:
    """What is wrong with the command line, found before any work is done; None if nothing."""
    if sum(map(bool, (args.input, args.prompt, args.prompts))) != 1 and not (args.input and len(args.prompt) == 1
                                                                           and not args.prompts):
        return ("give one of --input (an image or a folder), --prompt TEXT or --prompts FILE "
                "(or --input with one --prompt, for a family whose image jobs take one)")
    if args.input and not os.path.exists(args.input):
        return f"{args.input} does not exist"
    if args.prompts and not os.path.isfile(args.prompts):
        return f"{args.prompts}: no such prompts file"
    if args.server and (args.model or args.python or args.device):
        return "--model, --python and --device are the server's own: leave them out with --server"
    if args.server and not args.token_file:
        return "--server needs --token-file: the file with the server's access token"
    if not args.server and not args.model:
        return "give --model (a model folder or hub id), or --server URL --token-file F"
    try:
        family, task = job_kind(args)  # reads the model folder's model_index.json: may be damaged
        job_options.check_family_takes(family, task)
    except BackendError as error:
        return error.message
    if task == "image":
        problem = job_options.prompt_with_image_problem(family, True, bool(args.prompt))
        if problem:
            return problem + ("" if args.prompt else " (--prompt TEXT)")
    unused = job_options.flags_not_used(args, job_options.ALL_OPTIONS, family, task)
    if unused:
        return f"{', '.join(unused)}: not used by {job_options.FAMILIES_BY_NAME[family].label} jobs"
    # Blender would clamp silently; say it instead
    every = job_options.ALL_OPTIONS
    problem = job_options.value_problem(job_options.values_given(args, every, family, task), every)
    if problem:
        return problem
    if args.save:
        if os.path.isdir(args.save):
            return f"--save {args.save} is a folder: give the path of the .blend file to write"
        if not args.save.lower().endswith(".blend"):
            return f"--save {args.save}: the file name must end in .blend"
        folder = os.path.dirname(os.path.abspath(args.save))
        why = unwritable_folder(folder)  # found now, not after every image was converted
        if why:
            return f"--save {args.save} cannot be written: {why} (in {folder})"
    if args.export:
        if os.path.isfile(args.export):
            return f"--export {args.export} is a file: give the folder to write into"
        why = unwritable_folder(os.path.abspath(args.export))
        if why:
            return f"--export {args.export} cannot be written: {why}"
    return None


def server_problem(extension, token_file: str) -> str | None:
    """An unreachable server or a refused token, found before the first image."""
    client = extension.blender.worker_session.client()
    errors = extension.backend.bridge.errors
    try:
        client.api.version()
    except errors.Unauthorized:
        return f"the model server at {client.url} refused the access token: check the token file {token_file}"
    except errors.BackendError as error:
        return error.message
    print(f"image_to_3d: running on the server at {client.url}", flush=True)
    return None


def save(path: str) -> int:
    path = os.path.abspath(path)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        bpy.ops.wm.save_as_mainfile(filepath=path)
    except (OSError, RuntimeError) as error:
        print(f"image_to_3d: could not save {path}: {str(error).strip()}", file=sys.stderr, flush=True)
        return 1
    print(f"image_to_3d: saved {path}", flush=True)
    return 0


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    problem = argument_problem(args)
    token = None
    if not problem and args.server:
        try:
            token = read_token_file(args.token_file)
        except TokenFileError as error:
            problem = str(error)
    if problem:
        print(f"image_to_3d: {problem}", file=sys.stderr)
        return 2
    extension = enable_extension()
    family, task = job_kind(args)
    try:
        configure(extension, args, token, family, task)
        if args.server:
            problem = server_problem(extension, args.token_file)
            if problem:
                print(f"image_to_3d: {problem}", file=sys.stderr, flush=True)
                return 2
        clear_default_cube()
        declared = (job_options.PRESET_OPTION, *job_options.ALL_OPTIONS)
        options = {**job_options.values_given(args, declared, family, task), "family": family}
        if args.prompt and not args.input:
            status = convert_prompts(extension, args, options)
        elif args.prompts or os.path.isdir(args.input):
            status = convert_folder(extension, args, options)
        else:
            status = convert_one(extension, args, options)
        if args.save:
            status = max(status, save(args.save))
        return status
    except KeyboardInterrupt:
        print("image_to_3d: interrupted (Ctrl+C)", file=sys.stderr, flush=True)
        return 130
    finally:
        extension.blender.worker_session.close()  # no worker outlives the script


def exit_now(status: int) -> None:
    """sys.exit in Blender; os._exit where bpy is a module: the bpy 4.2 wheel segfaults at
    interpreter exit after a glTF export (the files are complete by then)."""
    sys.stdout.flush()
    sys.stderr.flush()
    if bpy.app.binary_path:
        sys.exit(status)
    os._exit(status)


if __name__ == "__main__":
    exit_now(main(sys.argv))
