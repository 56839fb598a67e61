"""Compile runtime/_native.c into runtime/_native<EXT_SUFFIX> for the running interpreter.

    python -m runtime.build            # (uv run --project service python -m runtime.build)

Needs a C compiler (cc, or $CC) and the interpreter's headers (Python.h: python3-dev on Debian;
python:*-slim images carry them). No build backend: one translation unit, the interpreter's own
include directory and extension suffix, and the flags below. scripts/setup.sh and the image's
builder stage run it; without the module, runtime.classifier scores with numpy (same results, to the
last bit, at about a third of the speed: docs/service/performance.md).
"""

from __future__ import annotations

import os
import pathlib
import shlex
import subprocess
import sys
import sysconfig

SOURCE = pathlib.Path(__file__).resolve().parent / "_native.c"
# -ffp-contract=off: no fused multiply-add, so each sum is the operation numpy performs (bit-equal).
FLAGS = ["-O2", "-fPIC", "-shared", "-std=c11", "-Wall", "-Wextra", "-ffp-contract=off"]


def target() -> pathlib.Path:
    return SOURCE.with_name("_native" + sysconfig.get_config_var("EXT_SUFFIX"))


def build(output: pathlib.Path | None = None) -> pathlib.Path:
    """Compile the extension: to a temporary name, then renamed, so no import sees half a file."""
    output = output or target()
    include = sysconfig.get_paths()["include"]
    if not (pathlib.Path(include) / "Python.h").is_file():
        raise SystemExit(
            f"runtime.build: {include}/Python.h is missing: install the interpreter's headers "
            "(Debian: apt-get install python3-dev)"
        )
    partial = output.with_name(output.name + ".partial")
    command = [
        *shlex.split(os.environ.get("CC", "cc")),
        *FLAGS,
        f"-I{include}",
        str(SOURCE),
        "-o",
        str(partial),
    ]
    try:
        subprocess.run(command, check=True)  # noqa: S603 - the compiler the user chose, on our source
    except FileNotFoundError:
        raise SystemExit("runtime.build: no C compiler (cc): apt-get install gcc libc6-dev") from None
    except subprocess.CalledProcessError as exc:
        raise SystemExit(
            f"runtime.build: the compiler failed ({exc.returncode}): {shlex.join(command)}"
        ) from None
    partial.replace(output)
    return output


if __name__ == "__main__":
    print(build(pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else None))
