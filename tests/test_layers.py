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
    """`scripts/download.py` registers every schema; that pulls in no inversion, evaluation or training code."""
    code = ("import importlib.util, json, sys\n"
            "spec = importlib.util.spec_from_file_location('download_script', 'scripts/download.py')\n"
            "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
            "print(json.dumps(sorted(sys.modules)))")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    loaded = set(json.loads(run.stdout.splitlines()[-1]))
    assert "eval.configs" in loaded and "inversion.configs" in loaded  # it did register the schemas
    heavy = {"inversion.run", "inversion.projector", "inversion.lpips_loss", "eval.run", "eval.gates", "eval.landmarks",
             "eval.trackers", "draggan.apps.training.loop", "draggan.apps.editor.editor", "draggan.edit", "wandb", "lpips"}
    assert not heavy & loaded, sorted(heavy & loaded)


def test_the_library_imports_no_application():
    """`draggan.apps` (the editor, the trainer, the toy domain, the benchmark, the commands) is built on the library;
    no module of the library imports it, so the library can be read, used and tested without them."""
    bad = {str(p.relative_to(ROOT)): sorted(n for n in imported_names(p) if n.startswith("draggan.apps"))
           for p in (ROOT / "draggan").rglob("*.py") if "apps" not in p.relative_to(ROOT).parts}
    assert not {k: v for k, v in bad.items() if v}
