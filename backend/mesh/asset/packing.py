"""Pack flat charts into one square atlas, by their shapes rather than their boxes.

Charts come as per-corner 2-D coordinates in world units. Each chart is turned to its
smallest bounding box (orient_charts), rasterised conservatively onto a coarse grid of
blocks (about 256 across), and reduced to two profiles per column: its lowest and highest block. The
atlas keeps a skyline (the highest used block per column). Largest chart first, each
chart tries the four quarter turns (rotations, never mirrors) and every column
position, and drops onto the skyline where its top ends lowest; its bottom profile
lets it reach down beside lower neighbours, and the next charts fill the notches in
its top. Box-projected charts are silhouettes (a figure's front view fills a third of
its box), so this packs them about twice as densely as packing their boxes.

One empty block is left around every chart: a block is at least 2 x gutter texels,
so bilinear filtering never mixes two charts. All charts share one scale (the same
texel density everywhere), the largest that fits, found in a few tries.
"""

import math

import numpy as np
import torch

from ...bridge.errors import AtlasFullError
from .raster import covered_cells

_BLOCKS_ACROSS = 256  # skyline resolution: finer packs tighter, costs more per chart
_FIRST_FILL = 0.5  # expected share of the atlas the charts cover, for the first try
_TRIES = 5
_MAX_TRIES = 12  # while nothing fits yet
_MIN_SHRINK = 0.9  # after a try that did not fit, the next scale is at most this much of it
_MARGIN_BOUND = 0.97  # a 10 % smaller scale that lowers the height less than this: margins fill the atlas
_GOOD_ENOUGH = 0.95  # share of the atlas height at which a packing is kept
_GOOD_AFTER_FAILURE = 0.85
_FEW_TURNS_BELOW = 12  # blocks of footprint


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


def pack_charts(coords: torch.Tensor, chart: torch.Tensor, n_charts: int, size: int, gutter: int) -> torch.Tensor:
    """Per-corner UVs (M, 3, 2) in [0, 1] for charts given in world units.

    When the charts do not fit (many charts in a small texture: each takes at least
    three blocks a side with its margin), the gutter is halved, down to one texel, for
    finer blocks; AtlasFullError when even that fails.
    """
    while True:
        packed = _pack(coords, chart, n_charts, size, gutter)
        if packed is not None:
            return packed
        if gutter <= 1:
            raise AtlasFullError(f"the {n_charts} UV charts of this mesh do not fit a {size} x {size} texture: "
                                 "choose a larger texture size or fewer faces")
        gutter //= 2


def _pack(coords, chart, n_charts, size, gutter):
    """pack_charts at one gutter width; None when the charts do not fit."""
    owner = chart.repeat_interleave(3)
    points = coords.reshape(-1, 2)
    low = torch.full((n_charts, 2), math.inf, device=coords.device).scatter_reduce(
        0, owner[:, None].expand(-1, 2), points, reduce="amin")
    local = points - low[owner]  # each chart's lower-left corner at 0
    e1, e2 = coords[:, 1] - coords[:, 0], coords[:, 2] - coords[:, 0]
    area = float((0.5 * (e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]).abs()).sum()) or 1e-12
    block = block_size(size, gutter)
    blocks = size // block
    scale = size * math.sqrt(_FIRST_FILL / area)  # texels per world unit
    best, failed, last_height = None, False, math.inf
    for attempt in range(_MAX_TRIES):
        if attempt >= _TRIES and best is not None:
            break
        placed, scale_tried = _pack_at(local, chart, n_charts, scale / block, blocks), scale
        height = placed[2]
        if best is None and failed and height > blocks and height > _MARGIN_BOUND * last_height:
            # every try so far failed, each smaller than the last, and this one barely
            # lowered the height: the charts' margins alone fill the atlas
            return None
        last_height = height
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


def _turn(q, turns, frame):
    """Quarter turns clockwise within each chart's frame [0, w] x [0, h] (no mirror)."""
    x, y = q[:, 0], q[:, 1]
    w, h = frame[:, 0], frame[:, 1]
    out = torch.stack((x, y), dim=1)
    out = torch.where((turns == 1)[:, None], torch.stack((y, w - x), dim=1), out)
    out = torch.where((turns == 2)[:, None], torch.stack((w - x, h - y), dim=1), out)
    out = torch.where((turns == 3)[:, None], torch.stack((h - y, x), dim=1), out)
    return out


def _footprints(local, chart, n_charts, scale):
    """Per chart: width, height (blocks) and its column/row profiles, from a
    conservative rasterisation of all charts side by side on one strip."""
    q = local * scale + 1.0
    owner = chart.repeat_interleave(3)
    size = torch.zeros((n_charts, 2), dtype=q.dtype, device=q.device).scatter_reduce(
        0, owner[:, None].expand(-1, 2), q + 1.0, reduce="amax")
    cells = size.ceil().long()
    start = torch.cumsum(cells[:, 0], 0) - cells[:, 0]  # charts side by side along x
    strip = q + torch.stack((start[owner].to(q.dtype), torch.zeros_like(q[:, 0])), dim=1)
    x, y, face = covered_cells(strip.reshape(-1, 3, 2), int(cells[:, 0].sum()), int(cells[:, 1].max()), ring=0.71)
    c = chart[face]
    x = (x - start[c]).cpu().numpy()
    y, c = y.cpu().numpy(), c.cpu().numpy()
    w, h = cells[:, 0].cpu().numpy(), cells[:, 1].cpu().numpy()
    col0 = np.concatenate(([0], np.cumsum(w)[:-1]))
    row0 = np.concatenate(([0], np.cumsum(h)[:-1]))
    big = np.iinfo(np.int64).max
    col_lo, col_hi = np.full(w.sum(), big), np.full(w.sum(), -1)
    row_lo, row_hi = np.full(h.sum(), big), np.full(h.sum(), -1)
    np.minimum.at(col_lo, col0[c] + x, y)
    np.maximum.at(col_hi, col0[c] + x, y)
    np.minimum.at(row_lo, row0[c] + y, x)
    np.maximum.at(row_hi, row0[c] + y, x)
    return w, h, col0, row0, (col_lo, col_hi, row_lo, row_hi)


def _turned_profiles(i, w, h, col0, row0, prof):
    """(bottom, top) per column for the four quarter turns of chart i (see _turn)."""
    col_lo, col_hi, row_lo, row_hi = prof
    cl, ch = col_lo[col0[i]:col0[i] + w[i]], col_hi[col0[i]:col0[i] + w[i]]
    rl, rh = row_lo[row0[i]:row0[i] + h[i]], row_hi[row0[i]:row0[i] + h[i]]
    wi, hi = w[i], h[i]
    # turn 1: (x, y) -> (y, w - x); turn 2: (w - x, h - y); turn 3: (h - y, x)
    return [(cl, ch), (wi - 1 - rh, wi - 1 - rl), ((hi - 1 - ch)[::-1], (hi - 1 - cl)[::-1]), (rl[::-1], rh[::-1])]


def _pack_at(local, chart, n_charts, scale, blocks):
    """Skyline packing at `scale` blocks per world unit -> (turn, offset, height).

    A height above `blocks` means it does not fit; packing goes on regardless so the
    height tells how much smaller the next try must be.
    """
    w, h, col0, row0, prof = _footprints(local, chart, n_charts, scale)
    if np.minimum(w, h).max() > blocks or max(w.max(), h.max()) > 4 * blocks:
        # a chart wider than the atlas every way it turns: its longest side stands in
        # for the height, so the next scale shrinks by what it needs
        return None, None, max(int(np.maximum(w, h).max()), blocks + 1)
    sky = np.zeros(blocks + 2, np.int64)  # one spare column each side for the gap
    inner = sky[1:blocks + 1]
    stride = inner.strides[0]
    turn = np.zeros(n_charts, np.int64)
    offset = np.zeros((n_charts, 2))
    for i in np.argsort(-(w * h), kind="stable"):
        turns = _turned_profiles(i, w, h, col0, row0, prof)
        if w[i] * h[i] <= _FEW_TURNS_BELOW:
            turns = turns[:2]  # a few blocks: half turns gain nothing
        best = None
        for t, (bottom, top) in enumerate(turns):
            width = len(bottom)
            if width > blocks:
                continue
            windows = np.lib.stride_tricks.as_strided(inner, (blocks - width + 1, width), (stride, stride),
                                                      writeable=False)
            y = np.maximum((windows - bottom).max(axis=1), 0)  # lowest drop at each column
            peak = y + top.max()
            x = int(peak.argmin())
            if best is None or peak[x] < best[0]:  # the lowest top wins
                best = (peak[x], t, x, int(y[x]), top)
        if best is None:  # cannot happen after the check above; kept as the same answer
            return None, None, max(int(np.maximum(w, h).max()), blocks + 1)
        _, t, x, y, top = best
        turn[i], offset[i] = t, (x, y)
        # the chart's top plus one empty block, spread one column to each side
        column_top = np.empty(len(top) + 2, np.int64)
        column_top[1:-1] = y + top + 2
        column_top[0], column_top[-1] = column_top[1], column_top[-2]
        spread = column_top.copy()
        np.maximum(spread[1:], column_top[:-1], out=spread[1:])
        np.maximum(spread[:-1], column_top[1:], out=spread[:-1])
        span = sky[x:x + len(top) + 2]
        np.maximum(span, spread, out=span)
    return turn, offset, int(sky.max())
