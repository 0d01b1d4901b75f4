"""DESIGN.md's dependency rules and CLI contracts, checked so they cannot break silently.

Imports are read with :mod:`ast` from the source files (module level and inside
functions); the "does not import torch" rules are also checked for real in a
fresh interpreter, since a light-looking import can pull torch in transitively.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

import tether.cli

SRC = Path(tether.cli.__file__).resolve().parent  # src/tether
STDLIB = set(sys.stdlib_module_names)
HEAVY = ("torch", "transformers")


# ---- reading imports with ast

def _module_name(path: Path) -> str:
    """``src/tether/world/gold.py`` -> ``tether.world.gold``."""
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_tether_module(name: str) -> bool:
    rel = SRC.parent.joinpath(*name.split("."))
    return rel.with_suffix(".py").is_file() or (rel / "__init__.py").is_file()


def _imports(path: Path, text: str | None = None) -> list[tuple[str, int, bool]]:
    """Every module ``path`` (or ``text``, read as if it were ``path``) imports:
    ``(module, line, inside_a_function)``.

    ``from X import n`` counts as ``X.n`` when that is a tether module, so
    ``from tether import stages`` is seen as ``tether.stages``; relative imports
    are resolved; ``importlib.import_module("...")`` with a literal counts too.
    """
    tree = ast.parse(path.read_text() if text is None else text, filename=str(path))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    found: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        if isinstance(node, ast.Import):
            found.extend((a.name, node.lineno, in_function) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                name = sub if base.startswith("tether") and _is_tether_module(sub) else base
                found.append((name, node.lineno, in_function))
        elif (isinstance(node, ast.Call) and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
              and ((isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                   or (isinstance(node.func, ast.Name)
                       and node.func.id in ("import_module", "__import__")))):
            found.append((node.args[0].value, node.lineno, in_function))
        inner = in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(tree, False)
    return found


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _sources(sub: str) -> list[Path]:
    files = sorted((SRC / sub).rglob("*.py"))
    assert files, f"no sources under {SRC / sub}"
    return files


def _where(path: Path, line: int) -> str:
    return f"{path.relative_to(SRC.parents[1])}:{line}"


def test_ast_reader_sees_every_kind_of_import() -> None:
    # the checks below are only as good as this reader: nested, relative and lazy imports
    text = ("import torch.nn as nn\nfrom . import gold\nfrom ..stages import sft\n"
            "from tether import feedback\n"
            "def f():\n    import importlib\n    importlib.import_module('tether.stages')\n")
    found = [(n, f) for n, _, f in _imports(SRC / "world" / "x.py", text)]
    assert found == [("torch.nn", False), ("tether.world.gold", False),
                     ("tether.stages.sft", False), ("tether.feedback", False),
                     ("importlib", True), ("tether.stages", True)]


# ---- 1. + 4. losses.py and advantages.py: torch, the stdlib and each other only

@pytest.mark.parametrize("name", ["losses.py", "advantages.py"])
def test_losses_and_advantages_import_only_torch(name: str) -> None:
    path = SRC / name
    allowed = {"tether.losses", "tether.advantages"}
    bad = [f"{_where(path, line)}: {mod}" for mod, line, _ in _imports(path)
           if not (_within(mod, "torch") or mod.partition(".")[0] in STDLIB
                   or mod == "__future__" or mod in allowed)]
    assert not bad, "DESIGN.md: losses.py and advantages.py import only torch:\n" + "\n".join(bad)


# ---- 2. world/: no torch, no transformers, few tether modules

WORLD_MAY_IMPORT = ("tether.world", "tether.config", "tether.errors", "tether.data.io")


def test_world_imports_no_torch_and_few_tether_modules() -> None:
    bad = []
    for path in _sources("world"):
        for mod, line, in_function in _imports(path):
            top = mod.partition(".")[0]
            if top in HEAVY:
                bad.append(f"{_where(path, line)}: {mod}")
            elif top == "tether" and not any(_within(mod, p) for p in WORLD_MAY_IMPORT):
                # The one exception: world/label.py samples responses from a policy
                # (`tether world label --policy`), which needs tether.models. That import
                # sits inside the function that samples, so importing tether.world stays
                # torch-free (checked for real in test_world_imports_without_torch).
                if not (in_function and _within(mod, "tether.models")):
                    bad.append(f"{_where(path, line)}: {mod}")
    assert not bad, ("DESIGN.md: world/ imports no torch, and of tether only "
                     f"{', '.join(WORLD_MAY_IMPORT)}:\n" + "\n".join(bad))


# ---- 3. feedback/ and stages/ meet in files, never in imports

@pytest.mark.parametrize(("sub", "forbidden"), [("feedback", "tether.stages"),
                                                ("stages", "tether.feedback")])
def test_feedback_and_stages_never_import_each_other(sub: str, forbidden: str) -> None:
    bad = [f"{_where(path, line)}: {mod}" for path in _sources(sub)
           for mod, line, _ in _imports(path) if _within(mod, forbidden)]
    assert not bad, f"DESIGN.md: {sub}/ never imports {forbidden} (not even lazily):\n" + "\n".join(bad)


# ---- 4. + 5. light imports, for real, in a fresh interpreter

_SPY = """
import json, sys, traceback
SRC, HEAVY = {src!r}, {heavy!r}

class Spy:  # notes which tether lines led to the first import of each heavy package
    chain = {{}}
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top in HEAVY and top not in self.chain:
            self.chain[top] = [f"{{f.filename}}:{{f.lineno}}: {{f.line}}"
                               for f in traceback.extract_stack() if f.filename.startswith(SRC)]
        return None

sys.meta_path.insert(0, Spy())
{imports}
print(json.dumps({{m: Spy.chain.get(m, []) for m in HEAVY if m in sys.modules}}))
"""


def _heavy_imports(*modules: str) -> dict[str, list[str]]:
    """The heavy packages that ``import modules`` loads in a fresh interpreter, each with
    the chain of tether source lines that imported it."""
    code = _SPY.format(src=str(SRC), heavy=HEAVY,
                       imports="\n".join(f"import {m}" for m in modules))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _explain(loaded: dict[str, list[str]]) -> str:
    return "\n".join(f"{pkg} imported via:\n  " + "\n  ".join(chain or ["(no tether frame)"])
                     for pkg, chain in loaded.items())


def test_world_imports_without_torch() -> None:
    # every module of tether.world, not only gold/raters/corpora
    modules = sorted(_module_name(p) for p in _sources("world"))
    loaded = _heavy_imports(*modules)
    assert not loaded, "DESIGN.md: world/ imports no torch at all\n" + _explain(loaded)


@pytest.mark.parametrize("module", ["tether", "tether.cli"])
def test_core_imports_without_torch(module: str) -> None:
    # STYLE.md rule 8: the core imports without the heavy parts; `tether --help` stays fast
    loaded = _heavy_imports(module)
    assert not loaded, f"import {module} loads heavy packages\n" + _explain(loaded)


# ---- 6. every command answers --help

def _command_paths(cmd: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """``()`` and the path of every command and group below ``cmd``."""
    paths = [path]
    # duck-typed: recent typer vendors its own click, so click.Group is not its base
    for name, sub in sorted((getattr(cmd, "commands", None) or {}).items()):
        paths += _command_paths(sub, (*path, name))
    return paths


def test_every_command_answers_help(monkeypatch: pytest.MonkeyPatch) -> None:
    # the root callback sets these with setdefault; set them here so monkeypatch restores them
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    monkeypatch.setenv("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    root = typer.main.get_command(tether.cli.app)
    paths = _command_paths(root)
    assert len(paths) > 20, paths  # the walk reached the sub-commands
    runner = CliRunner()
    failed = []
    for path in paths:
        result = runner.invoke(tether.cli.app, [*path, "--help"], prog_name="tether")
        if result.exit_code != 0 or "Usage:" not in result.output:
            failed.append(f"tether {' '.join(path)} --help: exit {result.exit_code}\n"
                          f"{result.output}{result.exception or ''}")
        if path == ():
            top_help = result.output
    assert not failed, "\n".join(failed)
    listed = {line.split()[0] for line in top_help.split("Commands:", 1)[1].splitlines()
              if line.strip()}
    expected = {"run", "demo", "world", "pretrain", "sft", "rm", "feedback"}
    assert expected <= listed, f"tether --help misses {sorted(expected - listed)}"


# ---- 7. a bad config key: one clear line, exit 2, nothing written

_BAD_KEY_STAGES = [name for name, _, _ in tether.cli.STAGES] + ["rm"]


def _run_with_bad_key(tmp_path: Path, stages: list[str], key: str) -> dict[str, tuple]:
    """``tether STAGE --config F KEY=1`` for each stage, in parallel subprocesses."""
    procs = {}
    for stage in stages:
        work = tmp_path / stage
        work.mkdir()
        config = work / "config.yaml"
        config.write_text(f"run:\n  out: {work / 'out'}\n")
        cmd = [sys.executable, "-m", "tether.cli", stage, "--config", str(config), f"{key}=1"]
        procs[stage] = (work, config, subprocess.Popen(
            cmd, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = {}
    for stage, (work, config, proc) in procs.items():
        out, err = proc.communicate(timeout=120)
        results[stage] = (work, config, proc.returncode, out, err)
    return results


def test_bad_config_key_exits_2_naming_key_and_file(tmp_path: Path) -> None:
    for stage, (work, config, rc, out, err) in _run_with_bad_key(
            tmp_path, _BAD_KEY_STAGES, "bogus.key").items():
        assert rc == 2, f"tether {stage}: exit {rc}\n{out}\n{err}"
        # the override is named as typed (bogus.key), not as the unknown section (bogus)
        lines = [ln for ln in err.splitlines() if str(config) in ln and "bogus.key:" in ln]
        assert len(lines) == 1, f"tether {stage}: no one line naming bogus and {config}:\n{err}"
        assert "Traceback" not in err, err
        assert not (work / "out").exists(), f"tether {stage} wrote {work / 'out'}"
        assert sorted(p.name for p in work.iterdir()) == ["config.yaml"], list(work.iterdir())
