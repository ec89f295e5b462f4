"""ml/ is plain Python: importing every module pulls in no Django, Celery or app package."""
import ast
import subprocess
import sys
from pathlib import Path

ML = Path(__file__).resolve().parents[2] / "ml"
FORBIDDEN = ("django", "celery", "rest_framework", "labeling", "webapp", "kombu")


def test_no_module_of_ml_imports_the_web_stack_statically():
    offenders = []
    for path in ML.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert not offenders


def test_importing_all_of_ml_loads_no_web_module():
    modules = sorted(p.stem for p in ML.glob("*.py") if p.stem != "__init__")
    code = (
        f"import importlib, sys\nfor m in {modules!r}: importlib.import_module('ml.' + m)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})\nprint(bad)\n"
        "sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ML.parent, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(modules) >= 3
