"""The project's shape: one room per concern, dependencies pointing one way (see docs/architecture.md).

Walks every project module's imports with ``ast`` (no module is imported to do it): no import cycle between
project modules, no project module imported inside a function, and each folder imports only the folders
below it. Fresh interpreters then check that the runner loads no torch, and that building the whole app loads
no model library (they wait for the first model load: ft/lazy.py).
"""

import ast
import functools
import subprocess
import sys
from pathlib import Path

from helpers import ROOT

from ft import config

PACKAGES = ("access", "curation", "ft", "hub", "intake", "runner", "serving", "ui")
ALLOWED = {
    "intake": set(),
    "access": set(),
    "hub": set(),
    "ft": {"intake", "hub"},
    "runner": {"ft"},
    "curation": {"intake", "hub", "ft"},
    "serving": {"intake", "ft", "runner", "curation"},
    "ui": {"intake", "access", "hub", "ft", "runner", "serving", "curation"},
    "app": {"intake", "access", "hub", "ft", "runner", "serving", "curation", "ui"},
}
"""What each folder (and app.py) may import besides itself: core <- runner, curation <- serving <- ui <- app (curation
and the runner sit side by side: neither imports the other)."""
NO_GRADIO = ("ft", "curation", "runner", "serving", "intake", "access", "hub")
NO_TORCH = ("runner",)
TORCH_FAMILY = ("torch", "transformers", "peft", "bitsandbytes", "accelerate")
MODEL_LIBRARIES = ("torch", "transformers", "peft", "bitsandbytes", "accelerate", "sklearn")


def project_modules() -> dict[str, Path]:
    found = {"app": ROOT / "app.py"}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported_names(node: ast.AST, module: str, modules: dict[str, Path]) -> list[str]:
    """The project modules an import statement names (``from ft import data`` names ``ft.data``)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif node.level:  # relative: from . import x
        base = module.rsplit(".", node.level)[0]
        names = [f"{base}.{node.module}" if node.module else base]
    else:
        names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
    project = []
    for name in names:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        if name:
            project.append(name)
    return project


def import_nodes(tree: ast.AST):
    """(import node, whether it sits inside a function) for every import of the module."""

    def walk(node, in_function):
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child, inside
            yield from walk(child, inside)

    yield from walk(tree, False)


def is_type_checking_only(tree: ast.AST, node: ast.AST) -> bool:
    return any(
        isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test) and node in ast.walk(block)
        for block in ast.walk(tree)
    )


@functools.cache
def import_graph():
    """{module: {imported project module}}, the function-level project imports, and every third-party
    top-level name each module imports."""
    modules = project_modules()
    graph, in_functions, external = {}, [], {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        graph[module], external[module] = set(), set()
        for node, inside in import_nodes(tree):
            names = imported_names(node, module, modules)
            if isinstance(node, ast.ImportFrom) and not node.level:
                external[module].add(node.module.split(".")[0])
            elif isinstance(node, ast.Import):
                external[module].update(alias.name.split(".")[0] for alias in node.names)
            if inside and names:
                in_functions.append(f"{path.relative_to(ROOT)}:{node.lineno} {ast.unparse(node)}")
            if not is_type_checking_only(tree, node):
                graph[module].update(n for n in names if n != module)
    return graph, in_functions, external


def folder(module: str) -> str:
    return module.split(".")[0]


def cycle_in(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the modules around it, or None."""
    state, stack = {}, []

    def visit(module):
        state[module] = "open"
        stack.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                return stack[stack.index(target) :] + [target]
            if target not in state and (found := visit(target)):
                return found
        state[module] = "done"
        stack.pop()
        return None

    for module in sorted(graph):
        if module not in state and (found := visit(module)):
            return found
    return None


def test_no_import_cycle_between_project_modules():
    graph, _, _ = import_graph()
    assert cycle_in(graph) is None, " -> ".join(cycle_in(graph))


def test_no_project_module_is_imported_inside_a_function():
    _, in_functions, _ = import_graph()
    assert in_functions == []


def test_each_folder_imports_only_the_folders_below_it():
    graph, _, _ = import_graph()
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in graph.items()
        for target in targets
        if folder(target) != folder(module) and folder(target) not in ALLOWED[folder(module)]
    )
    assert wrong == []


def test_the_core_curation_and_runner_import_no_gradio_and_the_runner_no_torch():
    _, _, external = import_graph()
    gradio = sorted(m for m, names in external.items() if folder(m) in NO_GRADIO and "gradio" in names)
    torch = sorted(m for m, names in external.items() if folder(m) in NO_TORCH and names & set(TORCH_FAMILY))
    assert (gradio, torch) == ([], [])


def loaded_after(steps: list[str], libraries: tuple[str, ...]) -> list[list[str]]:
    """Which of ``libraries`` a fresh interpreter in the project root has loaded after each step (code) in turn."""
    report = f"print(sorted(set(sys.modules) & {set(libraries)!r}))"
    code = "import sys\n" + "".join(f"{step}\n{report}\n" for step in steps)
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return [ast.literal_eval(line) for line in done.stdout.splitlines()[-len(steps) :]]


def test_importing_every_runner_module_loads_no_torch():
    runner = [m for m in project_modules() if folder(m) == "runner"]
    assert loaded_after([f"import {', '.join(runner)}"], TORCH_FAMILY) == [[]]


def test_building_the_app_loads_no_model_library_until_a_model_is_used(tmp_path):
    build = f"import app\nfrom pathlib import Path\napp.build_app(app.open_studio(Path({str(tmp_path)!r})))"
    use = "from ft import detector\ndetector.classification_metrics([0, 1], [0.2, 0.9])"
    gpu_count = ["torch"] if config.gpu_driver_present() else []  # a GPU driver's machine asks torch for the count
    assert loaded_after([build, use], MODEL_LIBRARIES) == [gpu_count, ["sklearn"]]


def test_the_walk_sees_a_cycle_and_a_function_level_import():
    assert cycle_in({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle_in({"a": {"b"}, "b": set()}) is None
    tree = ast.parse("import os\ndef f():\n    from ft import data\n")
    assert [(ast.unparse(n), inside) for n, inside in import_nodes(tree)] == [
        ("import os", False),
        ("from ft import data", True),
    ]
