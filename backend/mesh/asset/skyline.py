"""Skyline packing: the largest charts one by one where they fit best, the rest by rows.

Each chart is reduced to its footprint on a coarse grid of blocks (a conservative
rasterisation, on the charts' device) and, per column of blocks, its lowest and highest
block. The atlas keeps a skyline (the highest used block per column).

- The EXACT_CHARTS largest charts (by box area: on a smooth object that is all of
  them, on the busiest surface three quarters of the area) are dropped one at a time,
  each trying its four quarter turns (rotations, never mirrors) at every column, where
  its top ends lowest; its bottom profile reaches down beside lower neighbours.
- The rest, laid flat (longer side across) and sorted tallest first, fill rows across
  the atlas, left to right and right to left in turn, frame beside frame. Every chart of a row drops at once onto the skyline the charts before it
  left, each the way up - or half a turn round - whose top ends lower. Row breaks depend
  only on the widths, so they are found first.

So the loop runs over at most EXACT_CHARTS charts and then over rows (tens), never over
all the charts (a busy surface has a thousand), and each row is a few array operations
whatever its length. One empty block is left around every chart.
"""

import numpy as np
import torch

from .raster import covered_cells

_NO_BLOCK = np.iinfo(np.int64).max  # a column of a chart's frame that it does not touch
EXACT_CHARTS = 32  # placed one by one; the rest by rows
_FEW_TURNS_BELOW = 12  # blocks of footprint: half turns gain nothing


def footprints(local: torch.Tensor, chart: torch.Tensor, n_charts: int, scale: float):
    """Per chart: width, height (blocks) and its column/row profiles, from a
    conservative rasterisation of all charts side by side on one strip.

    local (3M, 2): each chart's corners with its lower-left at 0, in world units;
    scale: blocks per world unit. Returns numpy (w, h, col0, row0, (col_lo, col_hi,
    row_lo, row_hi)): chart i's columns are col_lo/hi[col0[i]:col0[i] + w[i]], its rows
    row_lo/hi[row0[i]:row0[i] + h[i]].
    """
    q = local * scale + 1.0  # one block of margin: the footprint's ring
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
    col_lo, col_hi = np.full(w.sum(), _NO_BLOCK), np.full(w.sum(), -1)
    row_lo, row_hi = np.full(h.sum(), _NO_BLOCK), np.full(h.sum(), -1)
    np.minimum.at(col_lo, col0[c] + x, y)
    np.maximum.at(col_hi, col0[c] + x, y)
    np.minimum.at(row_lo, row0[c] + y, x)
    np.maximum.at(row_hi, row0[c] + y, x)
    return w, h, col0, row0, (col_lo, col_hi, row_lo, row_hi)


def _lying_profiles(w, h, col0, row0, prof):
    """Each chart laid flat (quarter turn 0 or 1, whichever puts the longer side across)
    and half a turn round from that (turn 2 or 3), as flat per-column arrays.

    -> (turn (K,) 0 or 1, width (K,), first column (K,), chart of each column (C,),
    bottoms (2, C), tops (2, C)): [0] the flat turn, [1] half a turn round.
    Quarter turns as packing._turn: 1 (x, y) -> (y, w - x), 2 (w - x, h - y), 3 (h - y, x).
    """
    col_lo, col_hi, row_lo, row_hi = prof
    turn = (h > w).astype(np.int64)
    width = np.where(turn == 1, h, w)
    first = np.concatenate(([0], np.cumsum(width)[:-1]))
    owner = np.repeat(np.arange(len(w)), width)
    c = np.arange(width.sum()) - first[owner]  # the column within the turned chart
    back = width[owner] - 1 - c  # the same column counted from the other end
    standing = turn[owner] == 1
    wi, hi = w[owner], h[owner]
    # turn 0 / 2 read the columns, turn 1 / 3 the rows (see packing._turn)
    col, col_back = col0[owner] + np.where(standing, 0, c), col0[owner] + np.where(standing, 0, back)
    row, row_back = row0[owner] + np.where(standing, c, 0), row0[owner] + np.where(standing, back, 0)
    flat_bottom = np.where(standing, wi - 1 - row_hi[row], col_lo[col])
    flat_top = np.where(standing, wi - 1 - row_lo[row], col_hi[col])
    round_bottom = np.where(standing, row_lo[row_back], hi - 1 - col_hi[col_back])
    round_top = np.where(standing, row_hi[row_back], hi - 1 - col_lo[col_back])
    # an untouched column: nothing to rest on, nothing to raise
    empty = np.where(standing, row_hi[row] < 0, col_hi[col] < 0)
    empty_back = np.where(standing, row_hi[row_back] < 0, col_hi[col_back] < 0)
    bottoms = np.stack((np.where(empty, _NO_BLOCK, flat_bottom), np.where(empty_back, _NO_BLOCK, round_bottom)))
    tops = np.stack((np.where(empty, -1, flat_top), np.where(empty_back, -1, round_top)))
    return turn, width, first, owner, bottoms, tops


def pack_rows(w, h, col0, row0, prof, blocks: int):
    """Skyline packing of footprints -> (turn (K,), offset (K, 2), height).

    A height above `blocks` means it does not fit; packing goes on regardless so the
    height tells how much smaller the next try must be.
    """
    n = len(w)
    if np.minimum(w, h).max() > blocks or max(w.max(), h.max()) > 4 * blocks:
        # a chart wider than the atlas every way it turns: its longest side stands in
        # for the height, so the next scale shrinks by what it needs
        return None, None, max(int(np.maximum(w, h).max()), blocks + 1)
    by_area = np.argsort(-(w * h), kind="stable")
    exact, rest = by_area[:EXACT_CHARTS], by_area[EXACT_CHARTS:]
    turn, width, first, owner, bottoms, tops = _lying_profiles(w, h, col0, row0, prof)
    if len(rest) and width[rest].max() > blocks:
        return None, None, max(int(width[rest].max()), blocks + 1)
    sky = np.zeros(blocks + 2, np.int64)  # one spare column each side for the gaps
    offset = np.zeros((n, 2), np.int64)
    for i in exact:
        turn[i], offset[i] = _drop_best(sky, blocks, _turned_profiles(i, w, h, col0, row0, prof), w[i] * h[i])
    order = rest[np.argsort(-np.minimum(w, h)[rest], kind="stable")]  # tallest first: rows of like heights
    # frames side by side: each has a block of margin inside, so neighbours' charts are
    # two blocks apart or more
    span = np.cumsum(width[order])
    start, row = 0, 0
    while start < len(order):
        used = span[start - 1] if start else 0
        stop = max(int(np.searchsorted(span, used + blocks, side="right")), start + 1)
        members = order[start:stop]
        x = span[start:stop] - used - width[members]  # left to right
        if row % 2:
            x = blocks - x - width[members]  # right to left
        offset[members, 0] = x
        _drop_row(sky, members, x, width, first, bottoms, tops, turn, offset)
        start, row = stop, row + 1
    return turn, offset.astype(np.float64), int(sky.max())


def _turned_profiles(i, w, h, col0, row0, prof):
    """(bottom, top) per column for the four quarter turns of chart i (see packing._turn)."""
    col_lo, col_hi, row_lo, row_hi = prof
    cl, ch = col_lo[col0[i]:col0[i] + w[i]], col_hi[col0[i]:col0[i] + w[i]]
    rl, rh = row_lo[row0[i]:row0[i] + h[i]], row_hi[row0[i]:row0[i] + h[i]]
    wi, hi = w[i], h[i]
    # turn 1: (x, y) -> (y, w - x); turn 2: (w - x, h - y); turn 3: (h - y, x)
    return [(cl, ch), (wi - 1 - rh, wi - 1 - rl), ((hi - 1 - ch)[::-1], (hi - 1 - cl)[::-1]), (rl[::-1], rh[::-1])]


def _drop_best(sky, blocks, turns, area):
    """Drop one chart where its top ends lowest, over its turns and every column;
    raise the skyline -> (turn, (x, y))."""
    inner = sky[1:blocks + 1]
    stride = inner.strides[0]
    if area <= _FEW_TURNS_BELOW:
        turns = turns[:2]
    best = None
    for t, (bottom, top) in enumerate(turns):
        width = len(bottom)
        if width > blocks:
            continue
        windows = np.lib.stride_tricks.as_strided(inner, (blocks - width + 1, width), (stride, stride), writeable=False)
        y = np.maximum((windows - bottom).max(axis=1), 0)  # lowest drop at each column
        peak = y + top.max()
        x = int(peak.argmin())
        if best is None or peak[x] < best[0]:  # the lowest top wins
            best = (peak[x], t, x, int(y[x]), top)
    _, t, x, y, top = best
    # the chart's top plus one empty block, spread one column to each side
    column_top = np.empty(len(top) + 2, np.int64)
    column_top[1:-1] = y + top + 2
    column_top[0], column_top[-1] = column_top[1], column_top[-2]
    spread = column_top.copy()
    np.maximum(spread[1:], column_top[:-1], out=spread[1:])
    np.maximum(spread[:-1], column_top[1:], out=spread[:-1])
    span = sky[x:x + len(top) + 2]
    np.maximum(span, spread, out=span)
    return t, (x, y)


def _drop_row(sky, members, x, width, first, bottoms, tops, turn, offset):
    """Drop one row's charts onto `sky` (each the better of two half turns), raise it."""
    cols = np.repeat(np.arange(len(members)), width[members])  # row member of each column
    c = np.arange(len(cols)) - np.repeat(np.cumsum(width[members]) - width[members], width[members])
    source = first[members][cols] + c  # each column's index in the flat profiles
    ground = sky[1 + x[cols] + c]  # the skyline under each column (sky has a spare column at 0)
    lift = ground[None, :] - bottoms[:, source]  # (2, C): how high each column needs the chart
    drop = np.zeros((2, len(members)), np.int64)  # at least on the floor
    np.maximum.at(drop, (np.zeros_like(cols), cols), lift[0])
    np.maximum.at(drop, (np.ones_like(cols), cols), lift[1])
    peak = np.full((2, len(members)), -1, np.int64)
    np.maximum.at(peak, (np.zeros_like(cols), cols), tops[0, source])
    np.maximum.at(peak, (np.ones_like(cols), cols), tops[1, source])
    around = (drop + peak)[1] < (drop + peak)[0]  # half a turn round ends lower
    turn[members] += 2 * around
    y = np.where(around, drop[1], drop[0])
    offset[members, 1] = y
    top = np.where(around[cols], tops[1, source], tops[0, source])
    # the chart's top plus one empty block, spread one column to each side
    raised = y[cols] + top + 2
    at = 1 + x[cols] + c
    for shift in (-1, 0, 1):  # the end columns' spread lands on the free columns beside
        np.maximum.at(sky, at + shift, raised)
