"""`docs/configuration.md` and `.env.example`, written from `Settings`: `make docs`.

A setting is documented once, by the `description` of its field in `app.core.config`; both
files are generated from those fields (name, default, description) and rewritten only when
their text changes, so running this again is harmless. `tests/unit/test_settings_doc.py`
fails when either file disagrees with `Settings`: add a field, then run `make docs`.

Fields are grouped by where they stand in `Settings`: a group starts at the field named in
`GROUPS` and takes every field after it, so a new field belongs to the group it is written in.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo

from app.core.config import Settings

ROOT = Path(__file__).resolve().parents[2]
CONFIGURATION_MD = Path("docs/configuration.md")
ENV_EXAMPLE = Path(".env.example")
# The width of a comment line in `.env.example`.
WIDTH = 99

# (title, the first field of the group), in the order of `Settings`.
GROUPS = (
    ("Upstream (Autoenhance API)", "autoenhance_api_key"),
    ("Sandbox", "sandbox_processing_delay"),
    ("Archives and the archive store", "data_dir"),
    ("Images (thumbnails and renderings)", "decode_workers"),
    ("Access control", "service_api_key"),
    ("Order creation", "max_upload_files"),
    ("Jobs", "redis_url"),
    ("Deliveries", "delivery_default_ttl"),
    ("Operations", "log_level"),
)

# Read by the start commands (`make run`, `render.yaml`), not by the service: uvicorn's options.
START_COMMAND_VARIABLES = (
    (
        "LIMIT_CONCURRENCY",
        "256",
        "Connections and requests one worker serves at once; past it "
        "uvicorn answers 503 (`--limit-concurrency`).",
    ),
    (
        "TIMEOUT_KEEP_ALIVE",
        "5",
        "Seconds an idle keep-alive connection stays open (`--timeout-keep-alive`).",
    ),
    ("WORKERS", "1", "Worker processes of `make run` (`--workers`)."),
    (
        "PROMETHEUS_MULTIPROC_DIR",
        "var/prometheus",
        "Directory of the workers' metric files; "
        "`make run` empties it at each start so that counters begin at zero.",
    ),
)

INTRO = """\
# Configuration

Every setting is an environment variable (or a line in `.env`; copy `.env.example`). Every one
is optional: the defaults below are what the service uses when it is unset. Unsafe
combinations stop the service at start-up with a message that names the setting to change
(`Settings.check_safety` in `app/core/config.py`).

This page is generated from the fields of `Settings` in `app/core/config.py`, where each
setting is described once; after changing a field, run `make docs` (a test fails while this
page or `.env.example` disagrees with `Settings`).
"""

OUTRO = """\
## Read by the start commands

Not settings of the service: `make run` and `render.yaml` pass them to uvicorn, from the
environment (not from `.env`).

| variable | default | meaning |
|---|---|---|
{rows}

## The sandbox's own settings

The emulator of the Autoenhance API (`python -m app.sandbox`, and the one embedded in sandbox
mode) reads `SANDBOX_*` variables from the environment, each described on its field of
`SandboxConfig` in `app/sandbox/config.py` (for example `SANDBOX_MAX_ORDERS`,
`SANDBOX_MAX_STORED_BYTES`, `SANDBOX_CREDITS`, `SANDBOX_FAULTS`).
"""


@dataclass(frozen=True, slots=True)
class Setting:
    name: str  # the environment variable
    default: str  # as written in `.env` ("" for unset)
    description: str


def _env_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return ",".join(str(item) for item in value)
    if isinstance(value, Enum):
        return str(value.value)
    return str(value)


def _setting(name: str, field: FieldInfo) -> Setting:
    if not field.description:
        raise ValueError(f"Settings.{name} has no description")
    return Setting(name.upper(), _env_value(field.default), " ".join(field.description.split()))


def grouped(settings: type[Settings] = Settings) -> list[tuple[str, list[Setting]]]:
    """The settings of `settings`, in the order of its fields, under their group's title.

    Raises:
        ValueError: a field has no description, or a group starts at an unknown field.
    """
    starts = {field: title for title, field in GROUPS}
    unknown = starts.keys() - settings.model_fields.keys()
    if unknown:
        raise ValueError(f"GROUPS names unknown fields: {sorted(unknown)}")
    groups: list[tuple[str, list[Setting]]] = []
    for name, field in settings.model_fields.items():
        if name in starts or not groups:
            groups.append((starts.get(name, "Other"), []))
        groups[-1][1].append(_setting(name, field))
    return groups


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def configuration_md(settings: type[Settings] = Settings) -> str:
    """The text of `docs/configuration.md`."""
    parts = [INTRO]
    for title, members in grouped(settings):
        rows = "\n".join(
            f"| `{s.name}` | {f'`{s.default}`' if s.default else 'unset'} | "
            f"{_cell(s.description)} |"
            for s in members
        )
        parts.append(f"## {title}\n\n| setting | default | meaning |\n|---|---|---|\n{rows}\n")
    start_rows = "\n".join(
        f"| `{name}` | `{default}` | {_cell(meaning)} |"
        for name, default, meaning in START_COMMAND_VARIABLES
    )
    parts.append(OUTRO.format(rows=start_rows))
    return "\n".join(parts)


def _comment(text: str) -> list[str]:
    return textwrap.wrap(text, WIDTH - 2, initial_indent="# ", subsequent_indent="# ")


def env_example(settings: type[Settings] = Settings) -> str:
    """The text of `.env.example`."""
    lines = [
        "# Copy to .env and adjust. Every variable is optional; the defaults are shown.",
        "# Generated from app/core/config.py by `make docs`; docs/configuration.md says more.",
    ]
    for title, members in grouped(settings):
        lines += ["", f"# --- {title} ".ljust(WIDTH, "-")]
        for s in members:
            lines += [*_comment(s.description), f"{s.name}={s.default}"]
    lines += [
        "",
        "# --- Read by the start commands from the environment (not from .env) ".ljust(WIDTH, "-"),
    ]
    for name, default, meaning in START_COMMAND_VARIABLES:
        lines += [*_comment(meaning), f"{name}={default}"]
    return "\n".join(lines) + "\n"


def outputs(settings: type[Settings] = Settings) -> dict[Path, str]:
    """Each generated file (relative to the repository) and its text."""
    return {CONFIGURATION_MD: configuration_md(settings), ENV_EXAMPLE: env_example(settings)}


def main(argv: list[str] | None = None) -> int:
    """Write the files that differ (or with `--check`, list them and exit 1)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if stale")
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository")
    args = parser.parse_args(argv)
    stale = []
    for relative, text in outputs().items():
        path = args.root / relative
        if not path.exists() or path.read_text() != text:
            stale.append(relative)
            if not args.check:
                path.write_text(text)
    for relative in stale:
        sys.stderr.write(f"{'stale' if args.check else 'written'}: {relative}\n")
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    raise SystemExit(main())
