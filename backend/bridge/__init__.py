"""What both worlds share: importable without torch (standard library + numpy only).

options.py declares every job option once; settings.py derives GenerateSettings from
it; errors.py holds the user-facing errors and their wire codes; wire.py frames bytes on
a pipe; protocol.py defines the requests and events; client.py (with worker_process.py)
starts and supervises the model process from Blender, the CLI or a test.
"""
