"""A console crash's traceback file (issue 22 item 7): in ``[paths] log_dir`` and redacted, as the
CLI's internal-error file is (tests/test_cli_crash_file.py)."""

from __future__ import annotations

from pathlib import Path

from mes_console.app import MesConsoleApp
from tests.ui_support import make_session, ui_settings


def test_console_crash_file_in_log_dir_and_redacted() -> None:
    from engine.logs import REDACT

    settings = ui_settings()
    sess = make_session(settings)
    app = MesConsoleApp(sess, settings)
    secret = "px-console-secret-0123456789"
    REDACT.add(secret)
    try:
        raise RuntimeError(f"pane died holding {secret} and Bearer abc.def.ghi")
    except RuntimeError as exc:
        app._handle_exception(exc)
    path = Path(app.crash_file)
    assert path.parent == Path(settings.paths.log_dir), path
    text = path.read_text()
    assert "RuntimeError: pane died" in text and secret not in text and "abc.def.ghi" not in text
