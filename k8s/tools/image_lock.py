"""Lock the image's Python dependencies, with hashes, from pyproject.toml.

    python k8s/tools/image_lock.py            write requirements/*.txt
    python k8s/tools/image_lock.py --check    regenerate into a temporary folder and compare;
                                              exit 1 with a diff when the committed files differ

The Dockerfile installs with ``pip --require-hashes --only-binary :all:`` from these files, so
an image gets exactly these distributions, whatever PyPI serves on the day of the build:

* ``requirements/image.txt``: ``[project.dependencies]``;
* ``requirements/image-embedded.txt``: the same plus the ``embedded`` extra (chDB);
* ``requirements/build.txt``: ``[build-system.requires]`` (the runner's own wheel is built
  without build isolation, from these).

uv resolves them for CPython 3.11 (the image's Python) on every platform, with hashes of
every file of each pinned version, and only from files uploaded before ``EXCLUDE_NEWER``: the
same pyproject.toml gives the same bytes on any machine, any day.  To take newer releases,
move that date and run the script again.  The machine's pip and uv configuration is
ignored (``--no-config``, no ``UV_*`` variables); only the index is asked.
"""

from __future__ import annotations

import argparse
import difflib
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LOCK_DIR = REPO / "requirements"
EXCLUDE_NEWER = "2026-12-01T00:00:00Z"
PYTHON_VERSION = "3.11"
INDEX_URL = "https://pypi.org/simple"
COMMAND = "python k8s/tools/image_lock.py"
# lock file -> extra arguments of `uv pip compile` (None: build requirements on stdin)
LOCKS: dict[str, list[str] | None] = {
    "image.txt": ["pyproject.toml"],
    "image-embedded.txt": ["pyproject.toml", "--extra", "embedded"],
    "build.txt": None,
}


def uv_binary() -> str:
    """The uv of this environment (the dev extra pins it), else one on PATH."""
    beside = Path(sys.executable).with_name("uv")
    found = str(beside) if beside.is_file() else shutil.which("uv")
    if not found:
        sys.exit("image_lock: uv not found: pip install -e '.[dev]'")
    return found


def build_requirements() -> str:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    return "\n".join(project["build-system"]["requires"]) + "\n"


def compile_locks(out_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "PIP_"))}
    for name, inputs in LOCKS.items():
        command = [
            uv_binary(),
            "pip",
            "compile",
            *(inputs or ["-"]),
            "--output-file",
            str(out_dir / name),
            "--generate-hashes",
            "--universal",
            "--python-version",
            PYTHON_VERSION,
            "--exclude-newer",
            EXCLUDE_NEWER,
            "--index-url",
            INDEX_URL,
            "--no-config",
            "--custom-compile-command",
            COMMAND,
            "--quiet",
        ]
        subprocess.run(
            command,
            input=build_requirements() if inputs is None else None,
            text=True,
            cwd=REPO,
            env=env,
            check=True,
            timeout=600,
        )


def differences(fresh: Path) -> str:
    diff: list[str] = []
    for name in LOCKS:
        committed = LOCK_DIR / name
        old = (
            committed.read_text(encoding="utf-8").splitlines(keepends=True)
            if committed.exists()
            else []
        )
        new = (fresh / name).read_text(encoding="utf-8").splitlines(keepends=True)
        diff += difflib.unified_diff(old, new, f"requirements/{name}", f"regenerated {name}")
    return "".join(diff)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare, write nothing")
    args = parser.parse_args()
    if not args.check:
        LOCK_DIR.mkdir(exist_ok=True)
        compile_locks(LOCK_DIR)
        print(f"wrote {', '.join(f'requirements/{name}' for name in LOCKS)}")
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        compile_locks(Path(scratch))
        diff = differences(Path(scratch))
    if diff:
        print(diff)
        print(f"error: the image's lock files are stale: run `{COMMAND}`", file=sys.stderr)
        return 1
    print("lock files up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
