"""The import graph has floors and no circles (docs/ARCHITECTURE.md, "Floors").

Every module of the project's packages is given a floor by its dotted name (the longest matching prefix of
``FLOORS`` wins). An import, at the top of a file or inside a function, is an arrow; an arrow may run to the
same floor or down, never up, and no set of modules may import each other in a circle. Command modules
(argparse glue) sit on the roof with the CLI, so library code that imports its own CLI fails here.

Own-module imports stand at the top of files. Only the modules that ``tinymim --help``, a command's
``--help`` and ``tinymim serve`` load (``LIGHT``) may import a project module inside a function, and only one
that brings a heavy library (torch, timm, onnx, ONNX Runtime, TensorRT, FastAPI, uvicorn, matplotlib);
the light modules are imported in a fresh interpreter to prove they stay free of torch, timm and onnx.

The checker reads the source with ``ast`` (nothing is imported) and is itself tested on synthetic packages.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("tinymim", "compress", "serve", "export", "tinymim_cli")

# prefix -> floor. 0: the ground every room stands on; 1: compress/ and serve/ (never each other);
# 2: export/ (uses both); 3: the roof: the CLI, the quickstart and every command's argparse glue.
FLOORS: dict[str, int] = {
    "tinymim": 0,
    "compress": 1,
    "serve": 1,
    "export": 2,
    "tinymim_cli": 3,
    "compress.commands": 3,
    "export.command": 3,
    "serve.command": 3,
    "serve.bench.command": 3,
}
# rooms on one floor that must not import each other (serve never imports torch, so never compress)
APART = {("serve", "compress"), ("compress", "serve")}
# what the torch-free CLI and service load: prefixes (whole packages) or exact module names
LIGHT = (
    "tinymim",
    "tinymim_cli.main",
    "tinymim_cli.quickstart",
    "tinymim_cli.quickstart_config",
    "compress.commands",
    "compress.train_config",
    "compress.eval_config",
    "compress.distill.config",
    "export.command",
    "export.config",
    "serve",
)
HEAVY = ("torch", "torchvision", "timm", "onnx", "onnxruntime", "tensorrt", "fastapi", "uvicorn", "matplotlib")
TRAINING = ("torch", "torchvision", "timm", "onnx", "tensorrt")  # never loaded by a light module
# process entry points that must do something before their imports run (module: why)
ORDERED = {"serve.bench.probe": "pins the process to its CPUs before numpy and ONNX Runtime start their threads"}


@dataclass(frozen=True)
class Arrow:
    source: str
    target: str
    line: int
    lazy: bool = False  # inside a function


def _imports(tree: ast.AST) -> list[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement with whether it stands inside a function (TYPE_CHECKING blocks are skipped)."""
    found: list[tuple[ast.Import | ast.ImportFrom, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                found.append((child, in_function))
            visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(tree, False)
    return found


def modules(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of ``packages`` under ``root``."""
    found: dict[str, Path] = {}
    for pkg in packages:
        for path in sorted((root / pkg).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def arrows(root: Path, packages: tuple[str, ...]) -> list[Arrow]:
    """Every import of one of the project's modules by another, wherever it stands in the file."""
    known = modules(root, packages)

    def resolve(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    out: list[Arrow] = []
    for module, path in known.items():
        is_package = path.name == "__init__.py"
        for node, lazy in _imports(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the module's own package upwards
                    anchor = module.split(".")
                    anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                    base = ".".join(anchor + ([base] if base else []))
                names = [".".join(filter(None, (base, a.name))) for a in node.names]
            for name in names:
                if name.split(".")[0] not in packages:
                    continue
                target = resolve(name)
                if target and target != module:
                    out.append(Arrow(module, target, node.lineno, lazy))
    return sorted(set(out), key=lambda a: (a.source, a.line, a.target))


def heavy_modules(root: Path, packages: tuple[str, ...], heavy: tuple[str, ...]) -> set[str]:
    """Project modules whose top-level imports bring in a heavy library, directly or through other modules."""
    known = modules(root, packages)
    direct = {
        m
        for m, path in known.items()
        for node, lazy in _imports(ast.parse(path.read_text()))
        if not lazy
        and any(
            name.split(".")[0] in heavy
            for name in ([a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""])
        )
        and not getattr(node, "level", 0)
    }
    # importing a.b.c runs a/__init__ and a/b/__init__ too
    top = [
        (a.source, target)
        for a in arrows(root, packages)
        if not a.lazy
        for target in [a.target] + [a.target.rsplit(".", i)[0] for i in range(1, a.target.count(".") + 1)]
        if target in known
    ]
    found, grew = set(direct), True
    while grew:  # a module is heavy when anything it imports at the top is
        new = {source for source, target in top if target in found}
        grew = not new <= found
        found |= new
    return found


def is_light(module: str, light: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in light)


def lazy_imports_out_of_place(
    found: list[Arrow], light: tuple[str, ...], heavy_set: set[str], ordered: dict[str, str] | None = None
) -> list[str]:
    """Function-level own imports that could stand at the top of the file (``ordered`` modules excepted)."""
    bad = []
    for a in found:
        if not a.lazy or a.source in (ordered or {}):
            continue
        if not is_light(a.source, light):
            bad.append(f"{a.source} line {a.line}: import {a.target} at the top (this module need not stay light)")
        elif a.target not in heavy_set:
            bad.append(f"{a.source} line {a.line}: import {a.target} at the top (it brings no heavy library)")
    return bad


def floor_of(module: str, floors: dict[str, int]) -> int:
    best = max((p for p in floors if module == p or module.startswith(p + ".")), key=len, default=None)
    if best is None:
        raise KeyError(f"module {module} has no floor: add its package to FLOORS")
    return floors[best]


def upward(found: list[Arrow], floors: dict[str, int], apart: set[tuple[str, str]]) -> list[str]:
    """Arrows from a lower floor to a higher one, and between rooms kept apart."""
    bad = []
    for a in found:
        src, dst = floor_of(a.source, floors), floor_of(a.target, floors)
        if dst > src:
            bad.append(f"{a.source} (floor {src}) imports {a.target} (floor {dst}) at line {a.line}")
        elif (a.source.split(".")[0], a.target.split(".")[0]) in apart:
            bad.append(f"{a.source} imports {a.target} at line {a.line}, but those rooms are kept apart")
    return bad


def circles(found: list[Arrow]) -> list[list[str]]:
    """Strongly connected sets of two or more modules (Tarjan), each sorted; the list sorted."""
    graph: dict[str, set[str]] = {}
    for a in found:
        graph.setdefault(a.source, set()).add(a.target)
        graph.setdefault(a.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    result: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                result.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(result)


# --------------------------------------------------------------------------------------------- the project


def test_every_module_has_a_floor():
    for module in modules(ROOT, PACKAGES):
        floor_of(module, FLOORS)


def test_no_import_runs_up_a_floor():
    assert upward(arrows(ROOT, PACKAGES), FLOORS, APART) == []


def test_no_circles():
    assert circles(arrows(ROOT, PACKAGES)) == []


def test_own_imports_stand_at_the_top_unless_they_keep_the_cli_light():
    found = arrows(ROOT, PACKAGES)
    assert lazy_imports_out_of_place(found, LIGHT, heavy_modules(ROOT, PACKAGES, HEAVY), ORDERED) == []


def test_light_modules_import_without_torch():
    light = [m for m in modules(ROOT, PACKAGES) if is_light(m, LIGHT)]
    code = (
        "import importlib, sys\n"
        f"for m in {light!r}:\n    importlib.import_module(m)\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({TRAINING!r})))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout


# ----------------------------------------------------------------------------------- the checker itself


def _package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_checker_finds_a_circle_through_a_lazy_import(tmp_path):
    root = _package(
        tmp_path,
        {
            "lib/__init__.py": "",
            "lib/a.py": "from lib.b import g\n",
            "lib/b.py": "def g():\n    from lib import c\n",
            "lib/c.py": "import lib.a\n",
            "lib/d.py": "from lib.a import x\n",
        },
    )
    found = arrows(root, ("lib",))
    assert circles(found) == [["lib.a", "lib.b", "lib.c"]]
    assert Arrow("lib.b", "lib.c", 2, lazy=True) in found  # a function-level import is an arrow too


def test_checker_finds_upward_and_apart_imports(tmp_path):
    root = _package(
        tmp_path,
        {
            "ground/__init__.py": "",
            "ground/errors.py": "",
            "room/__init__.py": "",
            "room/lib.py": "from ground.errors import E\nfrom room.cli import main\n",
            "room/cli.py": "from . import lib\n",
            "other/__init__.py": "import room\nfrom room.lib import x\n",
        },
    )
    floors = {"ground": 0, "room": 1, "other": 1, "room.cli": 2}
    found = arrows(root, ("ground", "room", "other"))
    assert upward(found, floors, {("other", "room")}) == [
        "other imports room at line 1, but those rooms are kept apart",
        "other imports room.lib at line 2, but those rooms are kept apart",
        "room.lib (floor 1) imports room.cli (floor 2) at line 2",
    ]
    assert circles(found) == [["room.cli", "room.lib"]]
    assert upward(arrows(root, ("ground",)), floors, set()) == []


def test_checker_places_function_level_imports(tmp_path):
    root = _package(
        tmp_path,
        {
            "app/__init__.py": "",
            "app/cli.py": "def run():\n    from app import work\n    from app import util\n",
            "app/work.py": "import torch\nfrom app.util import f\n",
            "app/util.py": "def f():\n    from app import work\n",
        },
    )
    found = arrows(root, ("app",))
    heavy = heavy_modules(root, ("app",), ("torch",))
    assert heavy == {"app.work"}
    assert lazy_imports_out_of_place(found, ("app.cli",), heavy) == [
        "app.cli line 3: import app.util at the top (it brings no heavy library)",
        "app.util line 2: import app.work at the top (this module need not stay light)",
    ]
