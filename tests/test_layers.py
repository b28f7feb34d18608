"""The package's floors, read from its own import statements: core <- stages <- pipeline, no circles.

Every ``import`` counts, also those inside functions (imported on first use is still a dependency).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ondevice"

CORE, STAGE, PIPELINE = 0, 1, 2
# module prefix -> floor; the longest matching prefix decides
FLOORS = {
    "ondevice": CORE,  # the package root: __version__ only
    "ondevice.models": CORE,
    "ondevice.data": CORE,
    "ondevice.checkpoint": CORE,
    "ondevice.contract": CORE,
    "ondevice.atomic": CORE,
    "ondevice.native_log": CORE,
    "ondevice.metrics": CORE,
    "ondevice.pareto": CORE,
    "ondevice.plots": CORE,
    "ondevice.train": STAGE,
    "ondevice.evaluate": STAGE,
    "ondevice.quant": STAGE,
    "ondevice.export": STAGE,
    "ondevice.runtime": STAGE,
    "ondevice.profile": STAGE,
    "ondevice.policy": STAGE,
    "ondevice.exits": STAGE,
    "ondevice.bundle": PIPELINE,
    "ondevice.demo": PIPELINE,
    "ondevice.compare": PIPELINE,
    "ondevice.quant_study": PIPELINE,
    "ondevice.qat": PIPELINE,
    "ondevice.quant_cli": PIPELINE,
    "ondevice.policy.cli": PIPELINE,
    "ondevice.exits.cli": PIPELINE,
    "ondevice.cli": PIPELINE,
    "ondevice.__main__": PIPELINE,
}
# A stage imports core only, with these exceptions: what a stage is built on.
STAGE_BUILDS_ON = {
    "ondevice.profile": {"ondevice.runtime"},  # profiling times programs loaded by the runtime
    # multi-exit networks extend training (registered methods), evaluation, the ExecuTorch writer and profiling
    "ondevice.exits": {
        "ondevice.train",
        "ondevice.evaluate",
        "ondevice.export",
        "ondevice.runtime",
        "ondevice.profile",
    },
}


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package modules ``name`` imports (``from pkg import submodule`` counts the submodule)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            targets = [
                f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source for alias in node.names
            ]
        else:
            continue
        for target in targets:
            while target not in modules and "." in target:
                target = target.rpartition(".")[0]
            if target in modules and target != name:
                found.add(target)
    return found


def _floor(module: str) -> int:
    return FLOORS[max((p for p in FLOORS if module == p or module.startswith(p + ".")), key=len)]


def _stage(module: str) -> str:
    return ".".join(module.split(".")[:2])


MODULES = _modules()
GRAPH = {name: _imports(name, path, MODULES) for name, path in MODULES.items()}


def test_every_module_has_a_floor():
    assert all(any(m == p or m.startswith(p + ".") for p in FLOORS) for m in MODULES)
    assert "ondevice.bundle" in GRAPH and "ondevice.contract.manifest" in GRAPH  # the scan sees the package


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_down_or_sideways_within_a_stage(module):
    wrong = []
    for target in sorted(GRAPH[module]):
        floor, target_floor = _floor(module), _floor(target)
        if target_floor < floor or target_floor == CORE:
            continue
        if target_floor > floor:
            wrong.append(f"{target} (a higher floor)")
        elif (
            floor == STAGE
            and _stage(target) != _stage(module)
            and _stage(target) not in STAGE_BUILDS_ON.get(_stage(module), ())
        ):
            wrong.append(f"{target} (another stage)")
    assert not wrong, f"{module} imports {wrong}"


def test_no_import_circles():
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(GRAPH[module]):
            if state.get(target) == 1:
                cycle = [*path[path.index(target) :], target]
                pytest.fail("import circle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module)


def test_the_checker_sees_a_planted_upward_import(tmp_path):
    """The scan is not blind: an import of the CLI from a core module is found."""
    planted = tmp_path / "ondevice" / "models" / "planted.py"
    planted.parent.mkdir(parents=True)
    planted.write_text("def f():\n    from ..cli import main\n    return main\n")
    found = _imports("ondevice.models.planted", planted, {**MODULES, "ondevice.models.planted": planted})
    assert found == {"ondevice.cli"} and _floor("ondevice.cli") > _floor("ondevice.models.planted")
