"""Issue 22 item 7: the internal-error traceback file of a CLI command goes to ``[paths]
log_dir`` and holds no secret."""

from __future__ import annotations

from pathlib import Path

from mes_console.commands import common


def test_traceback_file_in_log_dir_and_redacted(tmp_path: Path, monkeypatch) -> None:
    from engine.logs import REDACT

    logs = tmp_path / "logs"
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[paths]\nlog_dir = "{logs}"\n')
    monkeypatch.setattr(common, "_LOG_DIR", "")
    common.settings_from(None, cfg)
    secret = "px-secret-key-0123456789abcdef"
    REDACT.add(secret)
    try:
        raise RuntimeError(f"boom with {secret} and Bearer abc.def.ghi")
    except RuntimeError as exc:
        where = common._save_traceback(exc)
    assert Path(where).parent == logs, where
    text = Path(where).read_text()
    assert "RuntimeError: boom" in text and secret not in text and "abc.def.ghi" not in text
