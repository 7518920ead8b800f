"""The import graph runs one way: scripts -> eval -> inversion -> draggan. `draggan` imports neither `inversion` nor
`eval`, `inversion` does not import `eval`, and downloading a model imports no inversion, evaluation or training
machinery (the schemas that every script registers are dataclasses only)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HIGHER = {"draggan": ("inversion", "eval"), "inversion": ("eval",)}


def modules(package: str) -> list[str]:
    return sorted(".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
                  for p in (ROOT / package).rglob("*.py"))


def imported_names(path: Path) -> set[str]:
    """Every module an `import` statement of the file names, at any depth (function-level imports included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", sorted(HIGHER))
def test_no_import_statement_points_up(package):
    bad = {str(p.relative_to(ROOT)): sorted(n for n in imported_names(p) if n.split(".")[0] in HIGHER[package])
           for p in (ROOT / package).rglob("*.py")}
    assert not {k: v for k, v in bad.items() if v}


def loaded_after_each(names: list[str], watch: tuple[str, ...]) -> dict[str, list[str]]:
    """Import `names` one after another in a fresh interpreter; for each, the watched modules loaded by then."""
    code = (f"import importlib, json, sys\nout = {{}}\nfor n in {names!r}:\n    importlib.import_module(n)\n"
            f"    out[n] = sorted(m for m in sys.modules if m.split('.')[0] in {watch!r} or m in {watch!r})\n"
            "print(json.dumps(out))")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.splitlines()[-1])


def test_importing_the_library_loads_no_higher_layer():
    names = [m for m in modules("draggan") + modules("inversion")]
    loaded = loaded_after_each(names, ("inversion", "eval"))
    offenders = {n: v for n, v in loaded.items()
                 if any(m.split(".")[0] in HIGHER[n.split(".")[0]] for m in v)}
    assert not offenders, f"first offender: {next(iter(offenders))}"


def test_download_script_imports_no_machinery():
    """`scripts/download.py --help` registers the schemas it needs (the library's and the applications') and pulls in
    no inversion, no evaluation, and no training or editing machinery."""
    code = ("import json, runpy, sys\n"
            "sys.argv = ['scripts/download.py', '--help']\n"
            "try:\n    runpy.run_path('scripts/download.py', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "print(json.dumps(sorted(sys.modules)))")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "== Config ==" in run.stdout  # Hydra's help, of the composed download config
    loaded = set(json.loads(run.stdout.splitlines()[-1]))
    assert "draggan.apps.configs" in loaded  # it did register the schemas
    assert not {m for m in loaded if m.split(".")[0] in ("eval", "inversion")}
    heavy = {"draggan.apps.training.loop", "draggan.apps.editor.editor", "draggan.edit", "wandb", "lpips"}
    assert not heavy & loaded, sorted(heavy & loaded)


def module_imports() -> dict[str, set[str]]:
    """For each module of draggan/, inversion/ and eval/: the modules of those packages its `import` statements name,
    at any depth (function-level imports included; `from a import b` names module a.b where there is one)."""
    mods = {m: ROOT / (m.replace(".", "/") + ".py") for p in HIGHER.keys() | {"eval"} for m in modules(p)}
    for m in list(mods):
        if not mods[m].is_file():
            mods[m] = ROOT / m.replace(".", "/") / "__init__.py"
    edges = {}
    for m, path in mods.items():
        package = m if path.name == "__init__.py" else m.rsplit(".", 1)[0]
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                names |= {f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names}
        edges[m] = {n for n in names if n in mods and n != m}
    return edges


def test_no_import_circle():
    """No module of draggan/, inversion/ or eval/ imports, through any chain of imports, a module that imports it."""
    edges = module_imports()
    assert "draggan.methods.registry" in edges["draggan.session"]  # the walk sees what it should
    circles = []
    for start in edges:  # depth-first search from each module for a path back to it
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for nxt in edges[node]:
                if nxt == start:
                    circles.append(" -> ".join(path + [start]))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, path + [nxt]))
    assert not circles, circles[:5]


def test_one_place_turns_a_seed_into_a_latent():
    """Seed N is the official tools' seed N because one function draws z from numpy's RandomState."""
    calls = [f"{p.relative_to(ROOT)}:{node.lineno}" for d in ("draggan", "inversion", "eval", "scripts")
             for p in (ROOT / d).rglob("*.py") for node in ast.walk(ast.parse(p.read_text()))
             if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "RandomState"]
    assert calls == ["draggan/latents.py:24"]


def test_the_library_imports_no_application():
    """`draggan.apps` (the editor, the trainer, the toy domain, the benchmark, the commands) is built on the library;
    no module of the library imports it, so the library can be read, used and tested without them."""
    bad = {str(p.relative_to(ROOT)): sorted(n for n in imported_names(p) if n.startswith("draggan.apps"))
           for p in (ROOT / "draggan").rglob("*.py") if "apps" not in p.relative_to(ROOT).parts}
    assert not {k: v for k, v in bad.items() if v}
