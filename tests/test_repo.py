import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _quick_start_commands() -> list[str]:
    section = (ROOT / "README.md").read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section)


def test_readme_quick_start_has_two_commands_and_ci_runs_the_test_one():
    commands = _quick_start_commands()
    assert len(commands) == 2
    main, tests = commands
    assert main.endswith("nasforge pipeline") and tests.endswith("python -m pytest")
    assert tests in (ROOT / ".ci/run").read_text()


def test_every_dvc_stage_depends_on_the_code_it_runs():
    """dvc.yaml's code deps are exactly what tests/helpers/stage_deps.py computes from the imports of
    each stage's commands (print them with `python tests/helpers/stage_deps.py`)."""
    import yaml

    from helpers.stage_deps import STAGES, stage_deps

    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert set(stages) == set(STAGES)
    for name, stage in stages.items():
        listed = sorted(d for d in stage["deps"] if not d.startswith("results/"))
        assert listed == stage_deps(name), f"dvc.yaml stage {name}: run `python tests/helpers/stage_deps.py`"
        for dep in listed:
            assert (ROOT / dep).exists(), f"dvc.yaml stage {name} depends on {dep}, which does not exist"


def test_the_import_stage_depends_on_the_code_it_runs():
    """imports/dvc.yaml (an import as a DVC stage) lists the source and exactly the computed code deps."""
    import yaml

    from helpers.stage_deps import command_deps

    stage = yaml.safe_load((ROOT / "imports/dvc.yaml").read_text())["stages"]["import"]
    assert stage["deps"][0] == "${import.source}" and stage["params"] == ["import"]
    assert sorted(stage["deps"][1:]) == command_deps("import", "../"), "run `python tests/helpers/stage_deps.py`"
    params = yaml.safe_load((ROOT / "imports/params.yaml").read_text())["import"]
    assert set(params) == {"source", "space", "name", "version"}


def test_the_dependency_computation_sees_a_new_import(tmp_path, monkeypatch):
    """The check above can fail: a module the aggregate command starts importing joins its deps."""
    from helpers import stage_deps

    assert "src/nasforge/search" not in stage_deps.stage_deps("aggregate")
    real = stage_deps._imports

    def with_search(nodes, module):
        found = real(nodes, module)
        return found | {"nasforge.search.multi_trial"} if module == "nasforge.aggregate" else found

    monkeypatch.setattr(stage_deps, "_imports", with_search)
    assert any(d.startswith("src/nasforge/search") for d in stage_deps.stage_deps("aggregate"))


# Everything only building a benchmark needs; none of it may load to query a release.
BUILD_ONLY = ("torch", "torchvision", "great_expectations", "snakemake", "dvc", "matplotlib", "scipy", "mlxtend",
              "pandas", "pyarrow")
# A None in sys.modules makes `import x` fail and importlib.util.find_spec("x") answer None: to the
# process, the package is not installed (polars probes for pandas and pyarrow this way and does without).
BLOCKER = """
import sys
for name in {blocked!r}:
    sys.modules[name] = None
"""


@pytest.mark.slow
def test_querying_a_release_needs_no_build_dependency(tmp_path):
    """`import nasforge.api`, opening a release, querying it, the NATS facade and a search all run
    with torch, great-expectations, Snakemake and the rest unimportable: the core install suffices."""
    import subprocess
    import sys

    from helpers import fabricate, phases
    from nasforge.analysis import analyse

    results = tmp_path / "results"
    fabricate.shard_tables(results, phases.PARAMS)
    phases.run_aggregate(results)
    phases.run_validate(results)
    analyse(results / "aggregate/tss/archs.parquet", results / "analysis/tss")
    release = phases.run_release(results)
    script = BLOCKER.format(blocked=set(BUILD_ONLY)) + f"""
import nasforge.api, nasforge.search
from nasforge.api import Benchmark, create
bench = Benchmark.open({str(release)!r})
index = bench.indices[0]
assert bench.final(index, "mnist5k", "12")["test_acc"] is not None
api = create({str(release)!r}, "tss")
assert api.get_more_info(index, "mnist5k", hp="12")["test-accuracy"] is not None
from nasforge.search import run_search
run_search(bench, "rea", "mnist5k", "12", 50.0, 2)
from nasforge.cli import main
sys.argv = ["nasforge", "query", {str(release)!r}, str(index), "--json"]
try:
    main()
except SystemExit as done:
    assert not done.code, done.code
print("loaded:", sorted(m for m, v in sys.modules.items() if v is not None and m.split(".")[0] in {set(BUILD_ONLY)!r}))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "loaded: []" in result.stdout


@pytest.mark.slow
def test_the_blocker_blocks(tmp_path):
    """The test above can fail: with the blocker, importing the training code is refused."""
    import subprocess
    import sys

    script = BLOCKER.format(blocked=set(BUILD_ONLY)) + "import nasforge.train.shard\n"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode != 0 and "ModuleNotFoundError" in result.stderr


@pytest.mark.slow
def test_code_is_ruff_clean():
    """ruff, at the version the test extra pins and with pyproject.toml's rule set, finds nothing."""
    import shutil
    import subprocess
    import sys

    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    assert ruff, "ruff is not installed: install the test extra (pip install -e '.[test]')"
    result = subprocess.run([ruff, "check", "src", "tests", "benchmarks"], cwd=ROOT, capture_output=True, text=True,
                            check=False, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:]


def test_tests_that_start_a_process_are_marked_slow():
    """`pytest -m "not slow"` is the quick loop: any test that starts a subprocess (a CLI run, a
    pipeline, an emulated CPU) carries the slow marker, directly or through its module."""
    import ast

    spawn = re.compile(r"\bsubprocess\.(run|Popen|call|check_call|check_output)\(")
    unmarked = []
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        tree = ast.parse(path.read_text())
        module_slow = any("pytestmark" in ast.unparse(n) and "slow" in ast.unparse(n) for n in tree.body
                          if isinstance(n, ast.Assign))
        helpers = {n.name for n in tree.body if isinstance(n, ast.FunctionDef) and not n.name.startswith("test_")
                   and spawn.search(ast.unparse(n))}
        for fn in (n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")):
            body = ast.unparse(fn)
            starts = spawn.search(body) or any(re.search(rf"\b{h}\(", body) for h in helpers)
            if starts and not module_slow and not any("slow" in ast.unparse(d) for d in fn.decorator_list):
                unmarked.append(f"{path.name}::{fn.name}")
    assert not unmarked, f"tests starting a process without @pytest.mark.slow: {unmarked}"


def test_profiles_set_resources_of_rules_that_exist():
    """A profile's set-resources for a misspelt or renamed rule is silently ignored by Snakemake (the
    GPU request would never reach the cluster): every rule a profile names must exist."""
    import yaml

    text = "".join(p.read_text() for p in sorted((ROOT / "workflow/rules").glob("*.smk")))
    rules = set(re.findall(r"^rule (\w+):", text, re.MULTILINE))
    for profile in sorted((ROOT / "workflow/profiles").glob("*/config.yaml")):
        named = set(yaml.safe_load(profile.read_text()).get("set-resources", {}))
        assert named <= rules, f"{profile}: set-resources for unknown rules {sorted(named - rules)}"
    # The rules that ask for a GPU (gpu=1 in their resources) are exactly those slurm-cpu switches off.
    asking = {r for r in rules if re.search(rf"^rule {r}:(?:(?!^rule ).)*?gpu=1", text, re.MULTILINE | re.DOTALL)}
    cpu = yaml.safe_load((ROOT / "workflow/profiles/slurm-cpu/config.yaml").read_text())["set-resources"]
    assert asking == {r for r, res in cpu.items() if res.get("gpu") == 0} == {"train", "proxies_dataset", "oneshot",
                                                                                   "oneshot_score"}
