"""Pack flat charts into one square atlas, by their shapes rather than their boxes.

Charts come as per-corner 2-D coordinates in world units. Each chart is turned to its
smallest bounding box (orient_charts), rasterised conservatively onto a coarse grid of
blocks (about 256 across) and reduced to two profiles per column: its lowest and
highest block; only the faces on a chart's border are rasterised (chart_outline), since
the profiles lie along it. skyline.py drops the charts onto a skyline: the largest one
by one, each where its top ends lowest over four quarter turns and every column, the
rest a whole row at a time; bottom profiles reach down beside lower neighbours and
later charts fill the notches in earlier tops. Box-projected charts are silhouettes (a
figure's front view fills a third of its box), so this packs them about twice as
densely as packing their boxes, and no loop runs over all the charts.

One empty block is left around every chart: a block is at least 2 x gutter texels,
so bilinear filtering never mixes two charts. All charts share one scale (the same
texel density everywhere), the largest that fits, found in a few tries.
"""

import math

import torch

from ...bridge.errors import AtlasFullError
from .skyline import footprints, pack_rows

_BLOCKS_ACROSS = 256  # skyline resolution: finer packs tighter, costs more per try
_FIRST_FILL = 0.5  # expected share of the atlas the charts cover, for the first try
_TRIES = 5
_MAX_TRIES = 12  # while nothing fits yet
_MIN_SHRINK = 0.9  # after a try that did not fit, the next scale is at most this much of it
_MARGIN_BOUND = 0.97  # a 10 % smaller scale that lowers the height less than this: margins fill the atlas
_STALLS = 2  # such tries in a row (one can be the heuristic's jitter)
_NEAR_FIT = 1.1  # within this of the atlas, shrinking goes on: a few blocks may still come off
_GOOD_ENOUGH = 0.95  # share of the atlas height at which a packing is kept
_GOOD_AFTER_FAILURE = 0.85


def orient_charts(coords: torch.Tensor, chart: torch.Tensor, n_charts: int) -> torch.Tensor:
    """Turn each chart about its centre to the smallest of a few bounding boxes.

    Candidates: the principal axes, and every 15 degrees of a quarter turn (a square
    has no principal axes, and a projection's own axes are often its best). Rotations
    only, never mirrors.
    """
    points = coords.reshape(-1, 2)
    owner = chart.repeat_interleave(3)
    count = torch.zeros(n_charts, device=coords.device).index_add_(0, owner, torch.ones_like(owner, dtype=coords.dtype))
    mean = torch.zeros((n_charts, 2), device=coords.device).index_add_(0, owner, points) / count[:, None]
    d = points - mean[owner]
    cov = torch.zeros((n_charts, 3), device=coords.device).index_add_(
        0, owner, torch.stack((d[:, 0] * d[:, 0], d[:, 1] * d[:, 1], d[:, 0] * d[:, 1]), dim=1))
    principal = 0.5 * torch.atan2(2 * cov[:, 2], cov[:, 0] - cov[:, 1])
    candidates = [principal] + [torch.full_like(principal, math.radians(a)) for a in range(0, 90, 15)]
    best_area = torch.full((n_charts,), math.inf, device=coords.device)
    best_angle = torch.zeros(n_charts, device=coords.device)
    for angle in candidates:
        turned = _rotate(d, angle[owner])
        extent = _extent(turned, owner, n_charts)
        area = extent[:, 0] * extent[:, 1]
        better = area < best_area
        best_area = torch.where(better, area, best_area)
        best_angle = torch.where(better, angle, best_angle)
    return _rotate(d, best_angle[owner]).reshape(-1, 3, 2)


def _rotate(d, angle):
    c, s = torch.cos(angle), torch.sin(angle)
    return torch.stack((c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]), dim=1)


def _extent(points, owner, n_charts):
    index = owner[:, None].expand(-1, 2)
    high = torch.full((n_charts, 2), -math.inf, device=points.device).scatter_reduce(0, index, points, reduce="amax")
    low = torch.full((n_charts, 2), math.inf, device=points.device).scatter_reduce(0, index, points, reduce="amin")
    return high - low


def block_size(size: int, gutter: int) -> int:
    return max(2 * gutter, size // _BLOCKS_ACROSS, 1)


def pack_charts(coords: torch.Tensor, chart: torch.Tensor, n_charts: int, size: int, gutter: int,
                outline: torch.Tensor | None = None) -> torch.Tensor:
    """Per-corner UVs (M, 3, 2) in [0, 1] for charts given in world units.

    outline (M,) bool, optional: the faces on their chart's border (chart_outline).
    A chart's footprint profiles (its lowest and highest block per column and row) and
    its frame all lie within a block of its border, so only these faces need
    rasterising for each try of a scale: a fraction of them on a smooth object.

    When the charts do not fit (many charts in a small texture: each takes at least
    three blocks a side with its margin), the gutter is halved, down to one texel, for
    finer blocks; AtlasFullError when even that fails.
    """
    while True:
        packed = _pack(coords, chart, n_charts, size, gutter, outline)
        if packed is not None:
            return packed
        if gutter <= 1:
            raise AtlasFullError(f"the {n_charts} UV charts of this mesh do not fit a {size} x {size} texture: "
                                 "choose a larger texture size or fewer faces")
        gutter //= 2


def _pack(coords, chart, n_charts, size, gutter, outline=None):
    """pack_charts at one gutter width; None when the charts do not fit."""
    owner = chart.repeat_interleave(3)
    points = coords.reshape(-1, 2)
    low = torch.full((n_charts, 2), math.inf, device=coords.device).scatter_reduce(
        0, owner[:, None].expand(-1, 2), points, reduce="amin")
    local = points - low[owner]  # each chart's lower-left corner at 0
    if outline is None:
        edge_local, edge_chart = local, chart
    else:
        edge_local, edge_chart = local.view(-1, 3, 2)[outline].reshape(-1, 2), chart[outline]
    e1, e2 = coords[:, 1] - coords[:, 0], coords[:, 2] - coords[:, 0]
    area = float((0.5 * (e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]).abs()).sum()) or 1e-12
    block = block_size(size, gutter)
    blocks = size // block
    scale = size * math.sqrt(_FIRST_FILL / area)  # texels per world unit
    best, failed, last_height, stalls = None, False, math.inf, 0
    for attempt in range(_MAX_TRIES):
        if attempt >= _TRIES and best is not None:
            break
        placed, scale_tried = _pack_at(edge_local, edge_chart, n_charts, scale / block, blocks), scale
        height = placed[2]
        stalled = (best is None and failed and height > _NEAR_FIT * blocks
                   and height > _MARGIN_BOUND * last_height)
        stalls = stalls + 1 if stalled else 0
        if stalls >= _STALLS:
            # every try so far failed, each smaller than the last, and the last ones
            # barely lowered the height: the charts' margins alone fill the atlas
            return None
        last_height = min(last_height, height)
        if height <= blocks:
            if best is None or scale > best[0]:
                best = (scale, placed)
            # the packed height jumps about with the scale (the heuristic is not
            # monotonic): once a larger scale failed, a fit this full is kept
            if height >= (_GOOD_AFTER_FAILURE if failed else _GOOD_ENOUGH) * blocks:
                break
        else:
            failed = True
        # the height grows about linearly with the scale: aim just under the top
        scale *= min(math.sqrt(blocks / max(height, 1)), 1.5) * 0.985
        if height > blocks:  # shrink at least this much, or the margin test above cannot tell
            scale = min(scale, scale_tried * _MIN_SHRINK)
    if best is None:
        return None
    scale, (turn, offset, _) = best
    # a chart's geometry in block units, turned, then moved to its place
    q = local * (scale / block) + 1.0  # one block of margin: the footprint's ring
    frame = torch.zeros((n_charts, 2), dtype=q.dtype, device=q.device).scatter_reduce(
        0, owner[:, None].expand(-1, 2), q + 1.0, reduce="amax").ceil()  # whole blocks, as _footprints
    q = _turn(q, torch.from_numpy(turn).to(q.device)[owner], frame[owner])
    q = q + torch.from_numpy(offset).to(q.device, q.dtype)[owner]
    return (q * block / size).reshape(-1, 3, 2)


def chart_outline(chart: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
    """(M,) bool: faces with an edge on their chart's border (fewer or more than three
    neighbours across edges in their own chart), and every face of a chart with none."""
    same = adjacency[chart[adjacency[:, 0]] == chart[adjacency[:, 1]]]
    inside = torch.bincount(same.reshape(-1), minlength=chart.shape[0])
    border = inside != 3
    has_border = torch.zeros(int(chart.max()) + 1 if chart.numel() else 0, dtype=torch.bool, device=chart.device)
    has_border[chart[border]] = True
    return border | ~has_border[chart]


def _turn(q, turns, frame):
    """Quarter turns clockwise within each chart's frame [0, w] x [0, h] (no mirror)."""
    x, y = q[:, 0], q[:, 1]
    w, h = frame[:, 0], frame[:, 1]
    out = torch.stack((x, y), dim=1)
    out = torch.where((turns == 1)[:, None], torch.stack((y, w - x), dim=1), out)
    out = torch.where((turns == 2)[:, None], torch.stack((w - x, h - y), dim=1), out)
    out = torch.where((turns == 3)[:, None], torch.stack((h - y, x), dim=1), out)
    return out


def _pack_at(local, chart, n_charts, scale, blocks):
    """Row skyline packing (skyline.py) at `scale` blocks per world unit -> (turn,
    offset, height); a height above `blocks` means it does not fit."""
    return pack_rows(*footprints(local, chart, n_charts, scale), blocks)
