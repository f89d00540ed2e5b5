"""The floor plan as text, for the live views (``demo``, ``scan``): zones outlined, receivers as
``R``, devices as a letter of their class where fusion places them (a digit when several share
a spot). Pure: positions in, lines out."""

from __future__ import annotations

from collections.abc import Sequence

from edge_agent.pipeline.floorplan import FloorPlan

MARKS = {"cart": "c", "staff": "s", "shopper": "p", "asset": "a", "beacon": "b"}
"""The letter of each device class on the map (``o`` for the others)."""
ROW_ASPECT = 2.0
"""A text cell is about twice as tall as it is wide: a row stands for this many columns."""


def draw(
    plan: FloorPlan,
    zone_of_cell: Sequence[int],
    dots: Sequence[tuple[float, float, str]],
    width: int = 72,
) -> list[str]:
    """The plan ``width`` characters wide: ``zone_of_cell`` gives each grid cell's zone index
    (-1 for none), ``dots`` the devices as ``(x, y, class)``. North is up."""
    span_x = plan.nx * plan.cell_m
    span_y = plan.ny * plan.cell_m
    cols = max(min(width, 400), 8)
    per_col = span_x / cols
    rows = max(round(span_y / (per_col * ROW_ASPECT)), 4)
    per_row = span_y / rows

    def zone_at(col: int, row: int) -> int:
        x = plan.x0 + (col + 0.5) * per_col
        y = plan.y0 + span_y - (row + 0.5) * per_row
        i = min(max(int((x - plan.x0) / plan.cell_m), 0), plan.nx - 1)
        j = min(max(int((y - plan.y0) / plan.cell_m), 0), plan.ny - 1)
        return int(zone_of_cell[i * plan.ny + j])

    zones = [[zone_at(c, r) for c in range(cols)] for r in range(rows)]
    grid = [[" "] * cols for _ in range(rows)]
    for r in range(rows):
        for c in range(cols):
            z = zones[r][c]
            right = zones[r][c + 1] if c + 1 < cols else z
            below = zones[r + 1][c] if r + 1 < rows else z
            if z != right or z != below:
                grid[r][c] = "·"
    labelled: set[int] = set()
    for r in range(rows):
        for c in range(cols):
            z = zones[r][c]
            if z >= 0 and z not in labelled and grid[r][c] == " ":
                labelled.add(z)
                grid[r][c] = str(z % 10)

    def place(x: float, y: float) -> tuple[int, int] | None:
        c = int((x - plan.x0) / per_col)
        r = int((plan.y0 + span_y - y) / per_row)
        return (r, c) if 0 <= r < rows and 0 <= c < cols else None

    for x, y, _ in plan.receiver_xyz:
        spot = place(float(x), float(y))
        if spot is not None:
            grid[spot[0]][spot[1]] = "R"
    count: dict[tuple[int, int], int] = {}
    for x, y, kind in dots:
        spot = place(x, y)
        if spot is None:
            continue
        count[spot] = count.get(spot, 0) + 1
        n = count[spot]
        grid[spot[0]][spot[1]] = MARKS.get(kind, "o") if n == 1 else str(min(n, 9))
    return ["".join(row) for row in grid]


def zone_of_cells(plan: FloorPlan) -> list[int]:
    """Each cell's zone index (the first zone holding it; -1 for none)."""
    out = [-1] * plan.cells
    for z in range(len(plan.zones)):
        for cell in plan.zone_cells[plan.zone_starts[z] : plan.zone_starts[z + 1]]:
            if out[int(cell)] < 0:
                out[int(cell)] = z
    return out


def legend(plan: FloorPlan) -> str:
    """What the digits and letters mean."""
    zones = ", ".join(f"{i % 10} {z}" for i, z in enumerate(plan.zones))
    marks = ", ".join(f"{m} {k}" for k, m in MARKS.items())
    return f"zones: {zones}; R receiver; {marks}, o other, 2–9 several"
