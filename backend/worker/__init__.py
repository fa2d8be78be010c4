"""The model process that Blender starts and feeds: `python -m backend.worker`.

process_io.py sets up its streams, log and parent watch; server.py runs its requests
and jobs; __main__.py starts it. It speaks the protocol of backend/bridge.
"""
