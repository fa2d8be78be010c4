"""Shap-E latent -> triangle mesh with per-vertex colour, in Shap-E's frame.

The same steps as diffusers' ShapERenderer.decode_to_mesh (which the pipeline's
output_type="mesh" calls with a fixed 128 grid), done here so that the job can
- choose the grid (`resolution`), which the pipeline does not expose,
- report progress and honour cancel while querying millions of points,
- fail with a clear error on an empty surface (diffusers crashes on one),
- keep colours as the model's sRGB values (diffusers converts them to linear),
- leave the renderer's weights alone (diffusers copies the latent's MLP weights into
  the shared module; here they are passed per call with torch.func.functional_call).
tests/test_equivalence.py checks the result against diffusers' own mesh.
"""

from typing import Callable

import torch
from diffusers.pipelines.shap_e.renderer import ShapERenderer, volume_query_points
from torch.func import functional_call

from ..bridge.errors import Cancelled, EmptySurfaceError

# Points per MLP call: large enough that Python overhead vanishes, small enough for a
# few hundred MB of activations at full size (93 + 6 x 256 floats per point). On the CPU
# smaller chunks stay in cache: the 128 grid took 12.5 s at 16K, 15.5 s at 64K (2 cores).
DEFAULT_CHUNK = 65536
CPU_CHUNK = 16384


def default_chunk(device: torch.device) -> int:
    return CPU_CHUNK if device.type == "cpu" else DEFAULT_CHUNK


def latent_params(renderer: ShapERenderer, latent: torch.Tensor) -> dict[str, torch.Tensor]:
    """The MLP weights a latent (num_embeddings, embedding_dim) stands for, keyed by the
    names of renderer.mlp's parameters."""
    projected = renderer.params_proj(latent[None].to(renderer.dtype))
    # params_proj names them after Shap-E's module ("nerstf.mlp.0.weight")
    return {name.removeprefix("nerstf."): value[0] for name, value in projected.items()}


def query_mlp(renderer, params, points):
    """The renderer's MLP in STF mode (signed distance, texture) at (P, 3) points."""
    return functional_call(
        renderer.mlp, params,
        kwargs=dict(position=points[None], direction=None, ts=None, nerf_level="fine", rendering_mode="stf"),
    )


def _chunks(total: int, chunk: int, should_cancel, progress):
    for start in range(0, total, chunk):
        if should_cancel is not None and should_cancel():
            raise Cancelled()
        yield slice(start, min(start + chunk, total))
        if progress is not None:
            progress(min(start + chunk, total) / total)


@torch.no_grad()
def signed_distance_grid(
    renderer: ShapERenderer,
    params: dict,
    resolution: int,
    chunk: int = DEFAULT_CHUNK,
    should_cancel: Callable[[], bool] | None = None,
    progress: Callable[[float], None] | None = None,
) -> torch.Tensor:
    """(resolution,)*3 field over the renderer's [-1, 1]^3 box, > 0 inside; axes x, y, z."""
    # The volume's corners are plain tensors that stay on the CPU when the renderer moves.
    points = volume_query_points(renderer.volume, resolution).to(device=renderer.device, dtype=renderer.dtype)
    values = torch.empty(len(points), dtype=torch.float32, device=points.device)
    for part in _chunks(len(points), chunk, should_cancel, progress):
        values[part] = query_mlp(renderer, params, points[part]).signed_distance[0, :, 0].float()
    return values.reshape((resolution,) * 3)


@torch.no_grad()
def surface(renderer: ShapERenderer, field: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Marching cubes with the renderer's own lookup table."""
    # A one-cell border of "outside" closes shapes that touch the box, as Shap-E does.
    padded = torch.full([n + 2 for n in field.shape], -1.0, dtype=field.dtype, device=field.device)
    padded[1:-1, 1:-1, 1:-1] = field
    volume = renderer.volume
    raw = renderer.mesh_decoder(padded, volume.bbox_min, volume.bbox_max - volume.bbox_min)
    if len(raw.faces) == 0:
        if not renderer.mesh_decoder.masks.any():
            raise EmptySurfaceError(
                "the model's marching-cubes table (shap_e_renderer mesh_decoder.cases/masks) is empty: "
                "the renderer weights were not converted from Shap-E"
            )
        raise EmptySurfaceError(
            "the generated shape has no surface (its signed distance is negative everywhere): "
            "try another seed or prompt"
        )
    return raw.verts, raw.faces


@torch.no_grad()
def vertex_colors(
    renderer: ShapERenderer,
    params: dict,
    vertices: torch.Tensor,
    chunk: int = DEFAULT_CHUNK,
    should_cancel: Callable[[], bool] | None = None,
) -> torch.Tensor:
    """The texture head at each vertex: sRGB in [0, 1] (what Shap-E renders; diffusers'
    mesh output converts it to linear)."""
    colors = torch.empty(len(vertices), 3, dtype=torch.float32, device=vertices.device)
    points = vertices.to(renderer.dtype)
    for part in _chunks(len(points), chunk, should_cancel, None):
        colors[part] = query_mlp(renderer, params, points[part]).channels[0].float()
    return colors


def decode_surface(
    renderer: ShapERenderer,
    latent: torch.Tensor,
    resolution: int,
    chunk: int = DEFAULT_CHUNK,
    should_cancel: Callable[[], bool] | None = None,
    on_stage: Callable[[str, float], None] | None = None,
) -> tuple[dict, torch.Tensor, torch.Tensor]:
    """(the latent's MLP weights, vertices (N, 3) float32, faces (M, 3) int64) in Shap-E's
    frame. Stages reported through on_stage: "field" (per chunk), "surface"; the colours
    come after, from vertex_colors or, through the mesh stage, from color_field."""
    report = on_stage or (lambda stage, fraction: None)
    params = latent_params(renderer, latent)
    report("field", 0.0)
    field = signed_distance_grid(renderer, params, resolution, chunk, should_cancel, lambda f: report("field", f))
    if should_cancel is not None and should_cancel():
        raise Cancelled()
    report("surface", 0.0)
    vertices, faces = surface(renderer, field)
    del field
    report("surface", 1.0)
    return params, vertices.float(), faces


def color_field(renderer: ShapERenderer, params: dict):
    """color_at(points (K, 3), Blender's frame = Shap-E's) -> sRGB (K, 3) in [0, 1]: what
    the mesh stage (backend/mesh/asset/) asks of a model."""

    @torch.no_grad()
    def color_at(points: torch.Tensor) -> torch.Tensor:
        return query_mlp(renderer, params, points.to(renderer.dtype)).channels[0].float()

    return color_at
