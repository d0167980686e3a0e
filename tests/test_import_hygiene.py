"""engine/ never imports the UI: every engine module imported in a fresh interpreter leaves
textual, rich, mes_console and screens out of sys.modules (static checks miss deferred imports)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
UI = ("textual", "rich", "mes_console", "screens")


def _engine_modules() -> list[str]:
    mods = []
    for p in sorted((ROOT / "engine").rglob("*.py")):
        rel = p.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods.append(".".join(parts))
    return mods


def test_engine_imports_no_ui_modules() -> None:
    mods = _engine_modules()
    assert "engine.config" in mods and len(mods) > 5
    code = (
        "import importlib, json, sys\n"
        f"mods = {mods!r}\n"
        "for m in mods: importlib.import_module(m)\n"
        f"print(json.dumps(sorted(k for k in sys.modules if k.split('.')[0] in {UI!r})))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    leaked = json.loads(r.stdout.strip().splitlines()[-1])
    assert leaked == [], f"engine imported UI modules: {leaked}"


def test_engine_source_has_no_ui_import_statements() -> None:
    import ast

    bad = []
    for p in (ROOT / "engine").rglob("*.py"):
        for node in ast.walk(ast.parse(p.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            bad += [f"{p.relative_to(ROOT)}:{node.lineno} {n}" for n in names if n.split(".")[0] in UI]
    assert not bad, bad
