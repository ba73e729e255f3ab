"""The package's import graph, read from its own source: the figures issue 21 asks for.

    python tools/import_graph.py            # summary
    python tools/import_graph.py --edges    # and every import running back up, every circle

An import is a ``from ppddpm... import`` or ``import ppddpm...`` anywhere in a module
(top level or inside a function). ``from . import x`` where ``x`` is a sub-module counts
as an import of that sub-module. Figures:

- circles: strongly connected groups of more than one module, and the largest one;
- floors and imports running back up: modules are ordered so that as few imports as
  possible point from a lower floor to a higher one (the Eades-Lin-Smyth heuristic for a
  small feedback arc set); those that still do "run back up". With no circle this is 0
  unless the import contract's layers are given (``--layers``), which then define floors;
- flat modules: ``ppddpm/*.py`` other than ``__init__``/``__main__``;
- imports inside functions (indented, below a ``def``), with the heavy optional ones.
"""
from __future__ import annotations

import argparse
import ast
import os
import sys
from collections import defaultdict

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def modules(package_dir: str) -> dict:
    """dotted name -> file path."""
    out = {}
    base = os.path.dirname(package_dir)
    for folder, _, files in os.walk(package_dir):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                rel = os.path.relpath(path, base)[:-3].replace(os.sep, ".")
                out[rel[:-len(".__init__")] if rel.endswith(".__init__") else rel] = path
    return out


def resolve(current: str, is_package: bool, level: int, module) -> str:
    parts = current.split(".")
    if level:
        parts = parts if is_package else parts[:-1]
        parts = parts[:len(parts) - (level - 1)]
        return ".".join(parts + ([module] if module else []))
    return module


def imports(mods: dict):
    """(importer, imported, line, inside_function) for every import of the package."""
    top = next(iter(mods)).split(".")[0]
    for name, path in sorted(mods.items()):
        tree = ast.parse(open(path, encoding="utf-8").read(), path)
        is_package = path.endswith("__init__.py")
        func_lines = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for inner in ast.walk(node):
                    if isinstance(inner, (ast.Import, ast.ImportFrom)):
                        func_lines.add(id(inner))
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = resolve(name, is_package, node.level, node.module)
                if base is None:
                    continue
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.append(sub if sub in mods else base)
            for target in targets:
                if target.split(".")[0] != top:
                    yield name, target, node.lineno, id(node) in func_lines, False
                    continue
                while target not in mods and "." in target:
                    target = target.rsplit(".", 1)[0]
                if target in mods and target != name:
                    yield name, target, node.lineno, id(node) in func_lines, True


def strongly_connected(nodes, edges):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            out.append(sorted(group))
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def eades_order(nodes, edges):
    """An order (bottom first) with few edges pointing up: sinks go first, sources last."""
    succ = {v: set(edges.get(v, ())) for v in nodes}
    pred = defaultdict(set)
    for v, ws in succ.items():
        for w in ws:
            pred[w].add(v)
    alive = set(nodes)
    bottom, top = [], []
    while alive:
        changed = True
        while changed:
            changed = False
            for v in sorted(alive):
                if not (succ[v] & alive):       # imports nothing left: a floor below the rest
                    bottom.append(v)
                    alive.discard(v)
                    changed = True
                elif not (pred[v] & alive):     # imported by nothing left: above the rest
                    top.append(v)
                    alive.discard(v)
                    changed = True
        if alive:
            v = max(sorted(alive), key=lambda u: len(pred[u] & alive) - len(succ[u] & alive))
            bottom.append(v)   # most imported, least importing: lowest of what is left
            alive.discard(v)
    return bottom + top[::-1]


def layer_of(module: str, layers):
    """The index (0 = top) of the contract layer holding ``module``, or None."""
    for i, layer in enumerate(layers):
        for name in layer.replace("|", ":").split(":"):
            name = name.strip()
            if module == name or module.startswith(name + "."):
                return i
    return None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--package", default=os.path.join(ROOT, "ppddpm"))
    p.add_argument("--edges", action="store_true", help="list the imports running up and the circles")
    p.add_argument("--layers", default=None, help="pyproject.toml whose import-linter 'layers' "
                   "contract defines the floors")
    args = p.parse_args(argv)
    mods = modules(os.path.abspath(args.package))
    rows = list(imports(mods))
    internal = [r for r in rows if r[4]]
    edges = defaultdict(set)
    for a, b, *_ in internal:
        edges[a].add(b)
    circles = [g for g in strongly_connected(mods, edges) if len(g) > 1]
    if args.layers:
        import tomllib  # standard library from Python 3.11; only this option reads TOML
        with open(args.layers, "rb") as fh:
            contracts = tomllib.load(fh)["tool"]["importlinter"]["contracts"]
        layers = next(c["layers"] for c in contracts if c["type"] == "layers")
        up = [r for r in internal if layer_of(r[0], layers) is not None
              and layer_of(r[1], layers) is not None and layer_of(r[1], layers) < layer_of(r[0], layers)]
        floors = len(layers)
    else:
        order = eades_order(list(mods), edges)
        rank = {v: i for i, v in enumerate(order)}
        up = [r for r in internal if rank[r[1]] > rank[r[0]]]
        floors = len(set(_floors(order, edges).values()))
    pairs = {(a, b) for a, b, *_ in internal}
    flat = sorted(m for m, path in mods.items() if m.count(".") == 1 and not path.endswith("__init__.py"))
    # one per statement: ``from x import a, b`` is one import
    inner = sorted({(a, line): r for r in rows if r[3] for a, line in [(r[0], r[2])]}.values())
    inner_internal = [r for r in inner if r[4]]
    print(f"modules: {len(mods)}; imports between them: {len(pairs)} (module pairs), "
          f"{len(internal)} statements")
    print(f"floors: {floors}; imports running back up a floor: {len({(a, b) for a, b, *_ in up})}")
    print(f"circles: {len(circles)}; largest: {max((len(c) for c in circles), default=0)} modules")
    print(f"flat modules in {os.path.basename(args.package)}/: {len(flat)}")
    print(f"imports inside functions: {len(inner)} ({len(inner_internal)} of the package's own, "
          f"{len(inner) - len(inner_internal)} of other packages)")
    if args.edges:
        for a, b, line, _, _ in sorted(set(up)):
            print(f"  up: {a}:{line} -> {b}")
        for c in circles:
            print(f"  circle ({len(c)}): {', '.join(c)}")
        for a, b, line, _, own in sorted(inner):
            print(f"  inside a function: {a}:{line} -> {b}")
        print("  flat: " + ", ".join(flat))
    return 0


def _floors(order, edges):
    """Floor of each module: one above the highest module below it that it imports."""
    rank = {v: i for i, v in enumerate(order)}
    floor = {}
    for v in order:
        below = [floor[w] for w in edges.get(v, ()) if rank[w] < rank[v] and w in floor]
        floor[v] = 1 + max(below, default=-1)
    return floor


if __name__ == "__main__":
    sys.exit(main())
