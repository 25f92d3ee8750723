"""The library stays free of the UI, so it works from notebooks and the CLI."""
import ast
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
