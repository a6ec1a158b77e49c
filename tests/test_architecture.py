"""The package layering, read from every module's own imports: the rules the layout promises.

* ``realtime`` (the runtime and the core) imports nothing from ``train``, ``export`` or ``bench``;
* ``realtime.core`` imports nothing from the rest of ``realtime``;
* ``train`` and ``export`` do not import each other, and nothing installed imports ``bench``;
* no import cycle among the project's modules (imports under ``if TYPE_CHECKING:`` aside).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("realtime", "train", "export", "bench")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py")}


def _type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports_of(path: Path, name: str, known: set[str]) -> set[str]:
    """Project modules imported by ``path`` (relative imports resolved; TYPE_CHECKING blocks skipped)."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    skip = {id(n) for block in ast.walk(tree) if _type_checking_block(block) for n in ast.walk(block)}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imports_of(path, name, set(modules)) for name, path in modules.items()}


def offenders(graph: dict[str, set[str]], importer: str, imported: tuple[str, ...]) -> list[str]:
    def inside(module: str, package: str) -> bool:
        return module == package or module.startswith(package + ".")

    return sorted(
        f"{m} -> {t}"
        for m, targets in graph.items()
        if inside(m, importer)
        for t in targets
        if any(inside(t, p) for p in imported)
    )


def test_runtime_imports_no_training_export_or_benchmarks(graph):
    assert offenders(graph, "realtime", ("train", "export", "bench")) == []


def test_core_imports_nothing_above_it(graph):
    above = ("realtime.backends", "realtime.cli", "realtime.io", "realtime.stages", "realtime.pipeline")
    assert offenders(graph, "realtime.core", above) == []


def test_train_and_export_stay_apart_and_nothing_installed_imports_bench(graph):
    assert offenders(graph, "train", ("export", "bench")) == []
    assert offenders(graph, "export", ("train", "bench")) == []


def test_no_import_cycles(graph):
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(stack[stack.index(nxt) :] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_the_checker_sees_a_planted_violation(tmp_path):
    """A test of the test: a fake runtime module importing train is reported."""
    fake = tmp_path / "m.py"
    fake.write_text("from train.johnson import train\nif TYPE_CHECKING:\n    import export\n")
    found = imports_of(fake, "realtime.m", {"train.johnson", "export", "realtime.m"})
    assert found == {"train.johnson"}
    assert offenders({"realtime.m": found}, "realtime", ("train",)) == ["realtime.m -> train.johnson"]
