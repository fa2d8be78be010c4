"""Our TripoSR backend: the network, the mesh stages, the model process and its bridge.

This package's own import pulls in neither torch nor bpy. The Blender side imports only
`backend.bridge` (standard library + numpy). Everything that needs torch lives in
modules the worker, the CLI or the benchmark import explicitly:

    bridge/       options, settings, errors, wire format, protocol, client (no torch)
    prepare/      reading and framing the input image (background removal)
    triposr/      the network: config, checkpoint, encoder, triplane, field
    mesh/         density grid, marching cubes, coordinate frames, file export
    worker/       the model process Blender starts (python -m backend.worker)
    setup/        the backend installer and the model download
    test_models/  random-weight models for tests (not shipped)
    pipeline.py   the one job function every entry point uses
    cli.py        python -m backend ...
"""
