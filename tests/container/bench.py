"""Container figures for docs/container.md: image size and cold start (`docker run` -> /readyz 200),
run the hardened way (read-only, no capabilities, non-root, no-new-privileges).

    uv run python -m tests.container.bench [--image TAG] [--runs N]

Without --image (or SCAMGUARD_TEST_IMAGE) it builds scamguard:test from this tree first."""

from __future__ import annotations

import argparse
import gzip
import os
import statistics
import subprocess

from tests.container.dockerutil import (
    image_inspect,
    image_size_bytes,
    image_under_test,
    require_docker,
    run_container,
    wait_ready,
)


def compressed_size_bytes(image: str) -> int:
    """About what a registry stores: the gzip of `docker save` (layers are pushed gzip-compressed)."""
    with subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        total = 0
        compressor = gzip.compress
        while chunk := proc.stdout.read(8 * 1024 * 1024):
            total += len(compressor(chunk, compresslevel=6))
    return total


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--image", default=os.environ.get("SCAMGUARD_TEST_IMAGE", ""))
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    require_docker()
    if args.image:
        os.environ["SCAMGUARD_TEST_IMAGE"] = args.image
    image = image_under_test()
    labels = image_inspect(image)["Config"]["Labels"] or {}
    base = labels.get("org.opencontainers.image.base.name", "?")

    size = image_size_bytes(image)
    print(f"image          {image} (base {base}, model {labels.get('io.scamguard.model.version')})")
    print(
        f"image size     {size / 1e6:.1f} MB uncompressed, {compressed_size_bytes(image) / 1e6:.1f} MB gzip"
    )

    cold = []
    for _ in range(max(1, args.runs)):
        with run_container(image) as container:
            cold.append(wait_ready(container))
    print(
        f"cold start     docker run -> /readyz 200: median {statistics.median(cold):.2f} s, "
        f"min {min(cold):.2f} s, max {max(cold):.2f} s over {len(cold)} runs"
    )


if __name__ == "__main__":
    main()
