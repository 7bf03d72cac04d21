"""``sunday keys``: API keys of the serving API (create, revoke, list) and its audit log.

Mounted by ``sunday/cli.py`` as ``app.add_typer(keys_app, name="keys")``. Errors are :class:`SundayError`
subclasses; the main CLI prints them as one line with exit code 2.
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone
from typing import Optional

import typer

from sunday.errors import SundayError

keys_app = typer.Typer(no_args_is_help=True, help="Serving API keys (per workspace, with roles) and the audit log.")


def _settings():
    from sunday.settings import get_settings

    return get_settings().ensure_dirs()


def _console():
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=200)


def _fmt(dt: Optional[datetime]) -> str:
    return "-" if dt is None else dt.strftime("%Y-%m-%d %H:%M:%S")


@keys_app.command("create")
def create(
    workspace: str = typer.Option(..., "--workspace", "-w", help="workspace the key is scoped to"),
    role: str = typer.Option(..., "--role", "-r", help="viewer, member or admin"),
    name: Optional[str] = typer.Option(None, "--name", "-n", help="a label (who or what uses the key)"),
    expires_in_days: Optional[float] = typer.Option(None, "--expires-in-days", help="expire after N days"),
) -> None:
    """Create an API key. Prints the token once on stdout: it is not stored anywhere."""
    from sunday.serving.keys import default_keystore

    expires_at = None
    if expires_in_days is not None:
        if expires_in_days <= 0:
            raise SundayError(f"--expires-in-days must be > 0, got {expires_in_days}")
        expires_at = datetime.now(timezone.utc) + timedelta(days=expires_in_days)
    store = default_keystore(_settings())
    try:
        key_id, token = store.create(workspace, role, name=name, expires_at=expires_at)
        info = next(k for k in store.list(workspace) if k.key_id == key_id)
    finally:
        store.close()
    exp = f", expires {_fmt(info.expires_at)} UTC" if info.expires_at else ""
    print(f"created key {key_id} (workspace '{info.workspace_id}', role {info.role}{exp})", file=sys.stderr)
    print("warning: this token is shown once and is not stored (only its hash is); keep it safe now.",
          file=sys.stderr)
    print(token, flush=True)


@keys_app.command("revoke")
def revoke(key_id: str = typer.Argument(..., help="key id (the hex part after 'sk_')")) -> None:
    """Revoke an API key (effective within a few seconds in running replicas)."""
    from sunday.serving.keys import default_keystore

    store = default_keystore(_settings())
    try:
        changed = store.revoke(key_id)
    finally:
        store.close()
    print(f"revoked key {key_id}" if changed else f"key {key_id} was already revoked")


@keys_app.command("list")
def list_keys(workspace: Optional[str] = typer.Option(None, "--workspace", "-w", help="only this workspace")
              ) -> None:
    """List API keys (never their secrets)."""
    from rich.table import Table

    from sunday.serving.keys import default_keystore

    store = default_keystore(_settings())
    try:
        keys = store.list(workspace)
    finally:
        store.close()
    table = Table(title=f"API keys ({len(keys)})")
    for col in ("key id", "workspace", "role", "name", "created (UTC)", "expires (UTC)", "status"):
        table.add_column(col)
    now = datetime.now(timezone.utc)
    for k in keys:
        table.add_row(k.key_id, k.workspace_id, str(k.role), k.name or "-", _fmt(k.created_at), _fmt(k.expires_at),
                      k.status(now))
    _console().print(table)


@keys_app.command("audit")
def audit(workspace: Optional[str] = typer.Option(None, "--workspace", "-w", help="only this workspace"),
          limit: int = typer.Option(20, "--limit", "-l", help="number of records (newest first)")) -> None:
    """Show the most recent audit records of the serving API."""
    from rich.table import Table

    from sunday.serving.audit import default_audit_log

    log = default_audit_log(_settings())
    try:
        records = log.read(workspace_id=workspace, limit=limit)
    finally:
        log.close()
    table = Table(title=f"audit log: {len(records)} most recent" + (f" of workspace '{workspace}'" if workspace
                                                                    else ""))
    for col in ("id", "time (UTC)", "workspace", "key id", "role", "endpoint", "status", "model", "version",
                "latency ms", "request id"):
        table.add_column(col, justify="right" if col in ("id", "status", "latency ms") else "left")
    for r in records:
        table.add_row(str(r.id), _fmt(r.ts), r.workspace_id or "-", r.key_id or "-", r.role or "-", r.endpoint,
                      str(r.status), r.model_name or "-", r.model_version or "-",
                      "-" if r.latency_ms is None else f"{r.latency_ms:.1f}", r.request_id or "-")
    _console().print(table)
