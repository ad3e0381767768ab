"""What a running `herald serve` runs, kept in DATA_DIR/serve.json: its URL, SMTP sink port and pid.

`herald demo` reads it, so a second terminal with the same DATA_DIR needs no configuration of its own to
reach the server and its sink. A file left by a killed server names a pid that is gone and is ignored.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

FILE_NAME = "serve.json"


@dataclass(frozen=True)
class ServeState:
    pid: int
    graphql_url: str
    public_url: str
    sink_port: int | None  # None: the server runs no SMTP sink


def state_path(data_dir: Path) -> Path:
    return data_dir / FILE_NAME


def write_state(data_dir: Path, state: ServeState) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    temporary = state_path(data_dir).with_suffix(".tmp")
    temporary.write_text(json.dumps(asdict(state), indent=2) + "\n")
    temporary.replace(state_path(data_dir))


def remove_state(data_dir: Path, pid: int) -> None:
    """Removes the file if it is this process's (a second server may have written its own since)."""
    state = read_state(data_dir)
    if state is not None and state.pid == pid:
        state_path(data_dir).unlink(missing_ok=True)


def read_state(data_dir: Path) -> ServeState | None:
    """The running server's state; None without a file, or when the process it names is gone."""
    try:
        raw = json.loads(state_path(data_dir).read_text())
        state = ServeState(
            pid=int(raw["pid"]),
            graphql_url=str(raw["graphql_url"]),
            public_url=str(raw["public_url"]),
            sink_port=int(raw["sink_port"]) if raw.get("sink_port") is not None else None,
        )
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None
    return state if _alive(state.pid) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        # A zombie (killed, not yet reaped) is gone for our purposes.
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    return True
