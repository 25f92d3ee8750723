"""The library stays free of the UI, so it works from notebooks and the CLI."""
import ast
import subprocess
import sys
from pathlib import Path

import workbench

PACKAGE = Path(workbench.__file__).parent


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_no_module_in_the_library_imports_streamlit():
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 5
    offenders = [str(p.relative_to(PACKAGE)) for p in modules
                 if any(n == "streamlit" or n.startswith("streamlit.") for n in _imports(p))]
    assert offenders == []


def test_the_check_itself_catches_a_streamlit_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from streamlit import session_state\n")
    assert "streamlit" in _imports(bad)


def test_the_package_names_load_on_first_use():
    probe = ("import sys, workbench\n"
             "assert 'workbench.costs' not in sys.modules\n"
             "print(workbench.costs.format_usd(0.00024), workbench.WorkbenchError.__name__, len(workbench.__all__))\n"
             "try:\n    workbench.no_such_name\nexcept AttributeError as exc:\n    print(exc)\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["$0.00024 WorkbenchError 24",
                                        "module 'workbench' has no attribute 'no_such_name'"]
