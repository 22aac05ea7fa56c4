"""The package layout's rules, read from the source: one package per science case with the same
module names for the same roles; fields and core import no case; cases never import each other;
within a case, reading files (io, synthetic) never imports evaluation."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "tfastro"
CASES = CASES_OF_LAYOUT = ("supernova", "multifield", "dm2gal", "turbulence", "prestellar")
SHARED = ("fields", "core")
ROLES = {"io", "synthetic", "pipeline", "layers", "model", "optimizers", "regressor", "hod",
         "unet", "baselines", "config", "task", "evaluation", "figures"}
#: Readers of a case's simulation outputs, beside io (supernova: Athena++ series, SPH particle
#: snapshots).
READERS = {"simulations", "particles"}


def imported_modules(path):
    """Every tfastro module a file imports (top level or inside functions)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tfastro"):
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith("tfastro"))
    return names


def packages_of(path):
    return {name.split(".")[1] for name in imported_modules(path) if name.count(".") >= 1}


def test_the_tree_is_the_cases_and_the_shared_packages():
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    assert modules == {"__init__", "synthetic"}  # the synthetic-data command of every case
    assert packages == set(CASES) | set(SHARED)


@pytest.mark.parametrize("case", CASES)
def test_a_case_uses_the_role_names(case):
    modules = {p.stem for p in (PACKAGE / case).glob("*.py")} - {"__init__"}
    assert modules <= ROLES | READERS, modules - ROLES - READERS
    assert {"io", "synthetic", "pipeline", "model", "config", "task", "evaluation",
            "figures"} <= modules


@pytest.mark.parametrize("shared", SHARED)
def test_shared_code_imports_no_case(shared):
    for path in (PACKAGE / shared).glob("*.py"):
        assert not packages_of(path) & set(CASES), path


@pytest.mark.parametrize("case", CASES)
def test_cases_never_import_each_other(case):
    for path in (PACKAGE / case).glob("*.py"):
        assert packages_of(path) <= {case, *SHARED}, path


@pytest.mark.parametrize("case", CASES)
def test_reading_files_never_imports_evaluation(case):
    readers = {p.stem for p in (PACKAGE / case).glob("*.py")} & READERS
    for role in ("io", "synthetic", *readers):
        imported = imported_modules(PACKAGE / case / f"{role}.py")
        assert not any(name.startswith(f"tfastro.{case}.evaluation") for name in imported)
        assert f"tfastro.{case}.evaluation" not in imported


def test_the_rules_are_checked_on_real_imports():
    # the reader sees the imports inside functions too (the tasks import lazily)
    assert "tfastro.supernova.evaluation" in " ".join(
        imported_modules(PACKAGE / "supernova" / "task.py"))


def test_one_command_writes_every_cases_synthetic_data(tmp_path, capsys):
    from tfastro.synthetic import CASES, main
    assert set(CASES) == set(CASES_OF_LAYOUT)
    assert main(["--help"]) == 0
    assert main(["nowhere", "--out", str(tmp_path)]) == 2
    assert "expected a case, one of supernova" in capsys.readouterr().err
    assert main(["supernova", "--out", str(tmp_path / "sn.npz"), "--frames", "4",
                 "--clip-length", "4", "--size", "8"]) == 0
    assert (tmp_path / "sn.npz").exists()
