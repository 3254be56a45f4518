"""The code each DVC stage runs, computed, so dvc.yaml's deps cannot miss a change.

A stage runs ``snakemake ... phase_X``: Snakemake reads the Snakefile and every
rule file (and imports what common.smk imports), then runs the ``nasforge``
commands of the phase's rule file. Each command's code is cli.py's top level,
the imports inside that command's function and cli's private helpers, and,
transitively, every ``nasforge`` module those import anywhere in their text
(function-level imports included: conservative, never short). A module that
reads package data (NATS-Bench's hyper-opts, its split files) brings that
folder. ``pyproject.toml`` pins the packages that compute the bytes, so every
stage depends on it too.

    python tests/helpers/stage_deps.py          # prints each stage's code deps, as dvc.yaml lists them
    python tests/helpers/stage_deps.py --write  # rewrites dvc.yaml's (and imports/dvc.yaml's) to them
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
PACKAGE = SRC / "nasforge"
#: stage -> the rule file whose commands it runs (the phase's rules)
STAGES = {"data": "data", "plan": "plan", "train": "train", "aggregate": "aggregate", "validate": "validate",
          "search": "search", "oneshot": "oneshot", "analysis": "analysis", "release": "release"}
#: modules that read files shipped beside them
PACKAGE_DATA = {"nasforge.protocol": "src/nasforge/hyper_opts", "nasforge.data.registry": "src/nasforge/data/splits"}
#: what every stage reads whatever its rules: the workflow, its configuration schema, the profile, the pins
WORKFLOW = ["Snakefile", "pyproject.toml", "workflow/profiles/default", "workflow/rules", "workflow/schemas"]


def module_file(name: str) -> Path | None:
    path = SRC / Path(*name.split("."))
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else None


def _imports(nodes: list[ast.AST], module: str) -> set[str]:
    """nasforge modules named by the import statements among ``nodes`` (and inside them)."""
    found = set()
    for node in (n for top in nodes for n in ast.walk(top)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("nasforge")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the importing module's package
                parts = module.split(".")[: -node.level] if not module_file(module).name == "__init__.py" else \
                    module.split(".")[: len(module.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            if base.startswith("nasforge"):
                found.add(base)
                found |= {f"{base}.{a.name}" for a in node.names if module_file(f"{base}.{a.name}")}
    return found


def closure(modules: set[str]) -> set[str]:
    """The modules, every module they import, and each one's parent packages (Python runs those first)."""
    seen: set[str] = set()
    todo = list(modules)
    while todo:
        name = todo.pop()
        if name in seen or module_file(name) is None:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:k]) for k in range(1, len(parts))]
        if name == "nasforge.cli":
            continue  # each command imports its own part of it: command_modules says which
        tree = ast.parse(module_file(name).read_text())
        todo += sorted(_imports([tree], name))
    return seen


def command_modules(command: str) -> set[str]:
    """What ``nasforge COMMAND`` imports: cli's top level, its private helpers, the command's function."""
    tree = ast.parse((PACKAGE / "cli.py").read_text())
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    helpers = [f for name, f in functions.items() if name.startswith("_")]
    wanted = command.replace("-", "_") + "_cmd" if command != "release build" else "release_build_cmd"
    if wanted not in functions:
        raise SystemExit(f"cli.py has no function {wanted} for `nasforge {command}`")
    return {"nasforge", "nasforge.cli"} | _imports([*top, *helpers, functions[wanted]], "nasforge.cli")


def rule_commands(rule_file: str) -> set[str]:
    text = (ROOT / "workflow/rules" / f"{rule_file}.smk").read_text()
    return {"release build" if m == "release" else m for m in re.findall(r'"nasforge ([a-z-]+)', text)}


def snakefile_modules() -> set[str]:
    """What parsing the workflow imports (common.smk's Python)."""
    text = (ROOT / "workflow/rules/common.smk").read_text()
    return {m for m in re.findall(r"^from (nasforge[\w.]*) import", text, re.M)}


def stage_deps(stage: str) -> list[str]:
    modules = closure(snakefile_modules())
    for command in rule_commands(STAGES[stage]):
        modules |= closure(command_modules(command))
    files = {module_file(m).relative_to(ROOT).as_posix() for m in modules}
    files |= {folder for module, folder in PACKAGE_DATA.items() if module in modules}
    return sorted(_collapse(files) | set(WORKFLOW))


def command_deps(command: str, prefix: str = "") -> list[str]:
    """Code deps of a stage that runs one ``nasforge`` command itself (no Snakemake): the command's
    modules and package data, and the pins; ``prefix`` is the path from the stage's folder to the root."""
    modules = closure(command_modules(command))
    files = {module_file(m).relative_to(ROOT).as_posix() for m in modules}
    files |= {folder for module, folder in PACKAGE_DATA.items() if module in modules}
    return sorted(f"{prefix}{f}" for f in _collapse(files) | {"pyproject.toml"})


def _collapse(files: set[str]) -> set[str]:
    """A package folder in place of its files when the stage runs every module in it."""
    out = set(files)
    for folder in sorted({str(Path(f).parent) for f in files}, key=len, reverse=True):
        path = ROOT / folder
        members = {p.relative_to(ROOT).as_posix() for p in path.glob("*.py")}
        if folder != "src/nasforge" and members and members <= out:
            subfolders = [d for d in path.iterdir() if d.is_dir() and d.name != "__pycache__"]
            if all(d.relative_to(ROOT).as_posix() in out for d in subfolders):
                out = (out - members - {d.relative_to(ROOT).as_posix() for d in subfolders}) | {folder}
    return out


def write() -> None:
    """Rewrite dvc.yaml's and imports/dvc.yaml's code deps to the computed ones (results/ deps kept)."""
    lines, out, stage = (ROOT / "dvc.yaml").read_text().splitlines(keepends=True), [], None
    i = 0
    while i < len(lines):
        line = lines[i]
        named = re.match(r"^  (\w+):\s*$", line)
        stage = named.group(1) if named and named.group(1) in STAGES else stage
        out.append(line)
        i += 1
        if stage and line.strip() == "deps:":
            block = []
            while i < len(lines) and re.match(r"^\s+- ", lines[i]):
                block.append(lines[i])
                i += 1
            indent = re.match(r"^(\s+)- ", block[0]).group(1)
            out += [f"{indent}- {d}\n" for d in stage_deps(stage)]
            out += [b for b in block if b.strip()[2:].startswith("results/")]
            stage = None
    (ROOT / "dvc.yaml").write_text("".join(out))
    path = ROOT / "imports/dvc.yaml"
    text = path.read_text()
    found = re.search(r"(    deps:\n)((?:\s+- .*\n)+)", text)
    block = found.group(2).splitlines(keepends=True)
    indent = re.match(r"^(\s+)- ", block[0]).group(1)
    deps = block[0] + "".join(f"{indent}- {d}\n" for d in command_deps("import", "../"))
    path.write_text(text[:found.start(2)] + deps + text[found.end(2):])


def main() -> None:
    if sys.argv[1:] == ["--write"]:
        write()
        return
    for stage in STAGES:
        print(f"  {stage}:")
        for dep in stage_deps(stage):
            print(f"      - {dep}")
    print("  import (imports/dvc.yaml):")
    for dep in command_deps("import", "../"):
        print(f"      - {dep}")


if __name__ == "__main__":
    sys.exit(main())
