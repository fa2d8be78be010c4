"""The OpenAPI 3.1 document of the HTTP API, written out rather than derived.

The bodies are binary (image files, worker-protocol frames), which generated schemas
describe poorly; a hand-kept document says exactly what goes over the wire. A test
checks that every route in api.py appears here and nothing else.
"""

from ..bridge.options import FAMILIES, JOB_OPTIONS
from ..bridge.server_api import FRAME_TYPE as FRAME
from ..bridge.settings import STAGES
from ..families.registry import VIEWS, default_family
from . import API_VERSION, SERVER_VERSION

_SETTING_TYPES = {int: "integer", float: "number", bool: "boolean", str: "string"}



def _listed(words: list) -> str:
    """"A", "A and B", "A, B and C"."""
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"

def _error(description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _job_status(description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/JobStatus"}}}}


def _setting_parameters() -> list:
    """One query parameter per job option (backend/bridge/options.py), with its range."""
    parameters = []
    for option in JOB_OPTIONS:
        schema, limits = {"type": _SETTING_TYPES[option.kind], "default": option.default}, {}
        if option.minimum is not None:
            limits["exclusiveMinimum" if option.exclusive_minimum else "minimum"] = option.minimum
        if option.maximum is not None:
            limits["maximum"] = option.maximum
        if option.zero_means and limits:  # 0 ("keep all", ...) or the range
            schema["anyOf"] = [{"const": 0}, limits]
        else:
            schema.update(limits)
        if option.choices:
            schema["enum"] = [identifier for identifier, _, _ in option.choices]
        scope = f" [{', '.join(option.families)}{', ' + '/'.join(option.tasks) if option.tasks else ''}]" if option.families else ""
        parameters.append({"name": option.name, "in": "query", "required": False, "schema": schema,
                           "description": option.description + scope
                           + " (with an image or text/plain body; a frame carries its own)"})
    takers = ", ".join(family.identifier for family in FAMILIES if family.prompt_with_image)
    parameters.append({"name": "prompt", "in": "query", "required": False, "schema": {"type": "string"},
                       "description": f"with an image body: the prompt of a family whose image jobs take one "
                                      f"({takers}; required there, refused elsewhere)"})
    return parameters


JOB_ID = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"}}
COMMON_ERRORS = {"401": _error("missing or wrong bearer token (every path, known or not)"),
                 "503": _error("server_busy: as many requests as the server answers at once (Retry-After)")}


def build_openapi(max_upload_bytes: int) -> dict:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "image_to_3d model server",
            "version": f"{SERVER_VERSION} (api {API_VERSION})",
            "description": f"{_listed([f.label for f in FAMILIES])} as a service: one image or text prompt in, "
                           "a coloured mesh out. "
                           "Every request needs 'Authorization: Bearer <token>'. Errors are JSON {error: {code, message}}.",
        },
        "security": [{"bearer": []}],
        "paths": {
            "/v1/jobs": {"post": {
                "summary": "submit a job",
                "parameters": _setting_parameters(),
                "requestBody": {"required": True, "description": f"at most {max_upload_bytes} bytes", "content": {
                    "image/png": {"schema": {"type": "string", "format": "binary"}},
                    "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"},
                                                 "description": "an image file (PNG, JPEG, WebP, TIFF, BMP)"},
                    "text/plain": {"schema": {"type": "string"},
                                   "description": f"a text prompt (UTF-8): a text job (family defaults to {default_family('text').identifier})"},
                    FRAME: {"schema": {"type": "string", "format": "binary"},
                            "description": "one 'generate' frame of docs/protocol.md with 'settings' and one "
                                           "source: a buffer, image_bytes or image_pixels, or the field 'prompt' "
                                           "(no image_path); or one 'generate_views' frame (the views job: "
                                           "Zero123-XL's 40 views of the object in image_bytes or image_pixels, "
                                           "its own settings), when the server runs the views' models"},
                }},
                "responses": {
                    "202": {**_job_status("accepted; Location names the job"),
                            "headers": {"Location": {"schema": {"type": "string"}}}},
                    "400": _error("bad settings or a malformed frame (bad_request), an unusable prompt (bad_prompt), "
                                  "a prompt for a family that takes images (wrong_model), or pixels that are not "
                                  "numbers (bad_image)"), **COMMON_ERRORS,
                    "408": _error("request_timeout: the body stopped arriving"),
                    "413": _error("body over the size limit"), "415": _error("unsupported content type"),
                    "503": _error("server_busy: too many unfinished jobs, uploads or requests (Retry-After)"),
                },
            }},
            "/v1/jobs/{job_id}": {
                "get": {
                    "summary": "job status; long-poll with since + wait",
                    "parameters": [JOB_ID,
                                   {"name": "since", "in": "query", "schema": {"type": "integer"},
                                    "description": "the version last seen: answer when it changes"},
                                   {"name": "wait", "in": "query", "schema": {"type": "number", "maximum": 30},
                                    "description": "seconds to wait for a change (default 0)"}],
                    "responses": {"200": _job_status("the job"), **COMMON_ERRORS, "404": _error("unknown_job")},
                },
                "delete": {
                    "summary": "cancel if needed, then forget the job and its result",
                    "parameters": [JOB_ID],
                    "responses": {"204": {"description": "forgotten"}, **COMMON_ERRORS, "404": _error("unknown_job")},
                },
            },
            "/v1/jobs/{job_id}/result": {"get": {
                "summary": "the mesh (or the views) of a finished job",
                "parameters": [JOB_ID, {"name": "format", "in": "query",
                                        "schema": {"type": "string", "enum": ["frame", "glb"], "default": "frame"}}],
                "responses": {
                    "200": {"description": "a 'result' frame (vertices float32 (N,3) Blender frame, faces int32 (M,3), "
                                           "colors uint8 (N,4), prepared_image uint8 (H,W,3); fields job_id, device, "
                                           "timings) or a GLB file (y up); for a views job a 'views_result' frame "
                                           "(views uint8 (N,H,W,3), contact_sheet, input_picture; fields view_ids, "
                                           "poses, pose_json, polar, polar_estimated) and no GLB (400)",
                            "content": {FRAME: {"schema": {"type": "string", "format": "binary"}},
                                        "model/gltf-binary": {"schema": {"type": "string", "format": "binary"}}}},
                    **COMMON_ERRORS, "404": _error("unknown_job"),
                    "409": _error("not_ready, or the job's own error code (e.g. bad_image, cancelled)"),
                },
            }},
            "/v1/jobs/{job_id}/preview": {"get": {
                "summary": "the latest preview of a long job (its status's 'preview' says there is one and which)",
                "parameters": [JOB_ID],
                "responses": {
                    "200": {"description": "a 'preview' frame (image uint8 (H,W,3); fields job_id, stage, iteration)",
                            "content": {FRAME: {"schema": {"type": "string", "format": "binary"}}}},
                    **COMMON_ERRORS, "404": _error("unknown_job"), "409": _error("not_ready: no preview yet"),
                },
            }},
            "/v1/jobs/{job_id}/cancel": {"post": {
                "summary": "ask a job to stop (it ends as cancelled, or as it was if already over)",
                "parameters": [JOB_ID],
                "responses": {"202": _job_status("the job, as it is now"), **COMMON_ERRORS, "404": _error("unknown_job")},
            }},
            "/v1/health": {"get": {"summary": "running replicas and job counts", "responses": {
                "200": {"description": "ok", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}}},
                **COMMON_ERRORS, "503": {"description": "degraded: no running replica"}}}},
            "/v1/version": {"get": {"summary": "server, API, protocol, Ray and model versions", "responses": {
                "200": {"description": "versions", "content": {"application/json": {"schema": {"type": "object"}}}},
                **COMMON_ERRORS}}},
            "/v1/openapi.json": {"get": {"summary": "this document", "responses": {
                "200": {"description": "OpenAPI 3.1"}, **COMMON_ERRORS}}},
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {
                    "type": "object", "required": ["code", "message"],
                    "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}},
                "JobStatus": {"type": "object", "required": ["job_id", "state", "version"], "properties": {
                    "job_id": {"type": "string"},
                    "state": {"type": "string", "enum": ["queued", "running", "done", "failed", "cancelled"]},
                    "stage": {"type": ["string", "null"],
                              "enum": [*STAGES, *[name for name in VIEWS.stage_names() if name not in STAGES], None]},
                    "fraction": {"type": "number"},
                    "detail": {"type": ["string", "null"],
                               "description": "a long job's progress in words, e.g. 'coarse 120/400, loss 0.031'"},
                    "preview": {"type": ["object", "null"], "description": "the latest preview: GET .../preview",
                                "properties": {"number": {"type": "integer"}, "stage": {"type": "string"},
                                               "iteration": {"type": "integer"}}},
                    "version": {"type": "integer", "description": "bumped on every change"},
                    "created": {"type": "number"}, "started": {"type": ["number", "null"]},
                    "finished": {"type": ["number", "null"]},
                    "expires": {"type": ["number", "null"], "description": "when the ended job is forgotten (unix s)"},
                    "attempts": {"type": "integer"}, "replica": {"type": ["string", "null"]},
                    "error": {"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/Error/properties/error"}]},
                    "timings": {"type": "object", "additionalProperties": {"type": "number"}},
                    "vertices": {"type": "integer"}, "faces": {"type": "integer"},
                    "kind": {"type": "string", "enum": ["views"], "description": "a views job's (absent: a mesh job)"},
                    "views": {"type": "integer", "description": "a finished views job's number of views"},
                }},
                "Health": {"type": "object", "properties": {
                    "status": {"type": "string", "enum": ["ok", "degraded"]},
                    "replicas": {"type": "object", "properties": {"running": {"type": "integer"}, "target": {"type": "integer"}}},
                    "jobs": {"type": "object", "properties": {"queued": {"type": "integer"}, "running": {"type": "integer"},
                                                              "finished": {"type": "integer"}}},
                    "max_active": {"type": "integer"}}},
            },
        },
    }
