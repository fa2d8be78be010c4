"""The model server: the model families behind an authenticated HTTP API, run by Ray Serve.

`python -m backend serve ...` starts it (docs/server.md). The pieces:

    cli.py        the serve command's arguments, start-up order and shutdown
    auth.py       the bearer token: token files and the ASGI gate in front of every path
    ray_setup.py  a loopback-only local Ray (or joining a cluster), replica planning
    replica.py    the Serve deployment: loads the model once, runs backend.pipeline's job
    runner.py     drives one job through a replica: progress, cancel, retry, timeouts
    jobs.py       the job table: states, long-poll waits, limits, expiry (no Ray)
    api.py        the HTTP routes (Starlette) and request/response encoding
    openapi.py    the OpenAPI document served at /v1/openapi.json

The client is backend/bridge/http_client.py (standard library + numpy, for Blender).
Ray is imported lazily, after ray_setup has set the environment variables Ray reads at
import time; jobs.py, auth.py and api.py never import it.
"""

SERVER_VERSION = "0.1.0"
API_VERSION = 1
APP_NAME = "image_to_3d"
