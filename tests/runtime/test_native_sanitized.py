"""The compiled runtime under AddressSanitizer and UndefinedBehaviorSanitizer: the runtime's tests,
run against a sanitized build of runtime/_native.c, find no out-of-bounds access, use after free or
undefined behaviour. It takes untrusted text (every request body), so memory errors matter more
than in the rest of the code: this is what would catch them, not the equality tests."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

from .conftest import REPO_ROOT

SANITIZE = "-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g"
# Loads the sanitized module as runtime._native before anything imports the runtime, then runs pytest.
RUNNER = """
import importlib.util, sys
sys.path.insert(0, {repo!r})
spec = importlib.util.spec_from_file_location("runtime._native", {module!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
sys.modules["runtime._native"] = module
import runtime.native
assert runtime.native.native is module, "the sanitized build is not the one in use"
import pytest
sys.exit(pytest.main(["-q", "-s", "-p", "no:cacheprovider", *sys.argv[1:]]))
"""
TESTS = ["tests/runtime/test_native.py", "tests/runtime/test_classifier.py", "tests/runtime/test_text.py"]


def test_the_runtime_tests_pass_on_a_sanitized_build(tmp_path: pathlib.Path) -> None:
    asan = subprocess.run(
        ["cc", "-print-file-name=libasan.so"], capture_output=True, text=True, check=True
    ).stdout.strip()
    # (cc prints the bare name back when it has no such library)
    assert os.path.isabs(asan), f"no libasan.so for cc ({asan!r}): apt-get install gcc"
    assert os.path.exists(asan), f"{asan} is missing: apt-get install gcc"
    module = tmp_path / "_native_sanitized.so"
    subprocess.run(
        [sys.executable, "-m", "runtime.build", str(module)],
        cwd=REPO_ROOT,
        env={**os.environ, "CC": f"cc {SANITIZE}"},
        check=True,
        timeout=120,
    )
    run = subprocess.run(
        [sys.executable, "-c", RUNNER.format(repo=str(REPO_ROOT), module=str(module)), *TESTS],
        cwd=REPO_ROOT,
        # ASan must be the first library loaded; PYTHONMALLOC=malloc sends PyMem_Malloc to the
        # malloc ASan watches (pymalloc's arenas would hide an overflow of a small buffer); the
        # interpreter's own leaks at exit are not ours to report.
        env={**os.environ, "LD_PRELOAD": asan, "PYTHONMALLOC": "malloc", "ASAN_OPTIONS": "detect_leaks=0"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    report = run.stdout + run.stderr
    assert "Sanitizer" not in report, report[-6000:]
    assert run.returncode == 0, report[-6000:]
    assert " passed" in report, report[-2000:]
