"""A read-only SVG drawing of a spinner's steps: a box per step, an arrow per route, branch
labels on the arrows. Laid out by distance from the start step, drawn on the server."""

from __future__ import annotations

from dataclasses import dataclass

from models.spinner_language.definition import SpinnerDefinition

BOX_W, BOX_H, GAP_X, GAP_Y, MARGIN = 180, 46, 40, 56, 20


@dataclass(frozen=True)
class Box:
    id: str
    label: str
    x: int
    y: int


@dataclass(frozen=True)
class Edge:
    x1: int
    y1: int
    x2: int
    y2: int
    label: str


@dataclass(frozen=True)
class Graph:
    boxes: list[Box]
    edges: list[Edge]
    width: int
    height: int


def _edge_label(definition: SpinnerDefinition, step_id: str, path: str) -> str:
    if path == "next":
        return ""
    step = next(s for s in definition.steps if s.id == step_id)
    if path.startswith("branches["):
        index = int(path[len("branches[") : path.index("]")])
        branch = getattr(step, "branches", [])[index]
        return str(getattr(branch, "label", None) or getattr(branch, "when", "") or path)
    return path.split(".")[-1]


def layout(definition: SpinnerDefinition) -> Graph:
    steps = {s.id: s for s in definition.steps}
    depth: dict[str, int] = {definition.start_id(): 0}
    queue = [definition.start_id()]
    while queue:
        current = queue.pop(0)
        for _, target in steps[current].target_fields() if current in steps else []:
            if target in steps and target not in depth:
                depth[target] = depth[current] + 1
                queue.append(target)
    next_depth = max(depth.values(), default=-1) + 1
    for step_id in steps:  # unreachable steps still get drawn, below the rest
        if step_id not in depth:
            depth[step_id] = next_depth
    rows: dict[int, list[str]] = {}
    for step_id in steps:
        rows.setdefault(depth[step_id], []).append(step_id)
    place: dict[str, tuple[int, int]] = {}
    for d, ids in rows.items():
        for i, step_id in enumerate(ids):
            place[step_id] = (MARGIN + i * (BOX_W + GAP_X), MARGIN + d * (BOX_H + GAP_Y))
    boxes = [
        Box(s.id, f"{s.id} · {getattr(s, 'type', '')}", *place[s.id]) for s in definition.steps
    ]
    edges = []
    for s in definition.steps:
        x, y = place[s.id]
        for path, target in s.target_fields():
            if target not in place:
                continue
            tx, ty = place[target]
            edges.append(
                Edge(
                    x + BOX_W // 2,
                    y + BOX_H,
                    tx + BOX_W // 2,
                    ty,
                    _edge_label(definition, s.id, path),
                )
            )
    width = MARGIN * 2 + max(len(ids) for ids in rows.values()) * (BOX_W + GAP_X)
    height = MARGIN * 2 + len(rows) * (BOX_H + GAP_Y)
    return Graph(boxes, edges, width, height)
