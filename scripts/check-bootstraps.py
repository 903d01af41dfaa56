"""Checks the Lambda bootstraps `cargo lambda build --release --arm64` made.

Each of <dir>/{authorizer,ingest,connector}/bootstrap must be a
64-bit little-endian aarch64 ELF executable needing at most glibc 2.34 (what
the provided.al2023 runtime has). Prints each one's size and gzipped size
(a Lambda zip is about the gzipped size).

    python scripts/check-bootstraps.py "$(scripts/target-dir)/lambda"

where the directory is cargo-lambda's output under cargo's target directory
(wherever CARGO_TARGET_DIR puts it).
"""

from __future__ import annotations

import gzip
import re
import struct
import sys
from pathlib import Path

BINARIES = ("authorizer", "ingest", "connector")
EM_AARCH64 = 183
AL2023_GLIBC = (2, 34)


def check(path: Path) -> list[str]:
    if not path.is_file():
        return [f"{path}: missing (did cargo lambda build run?)"]
    data = path.read_bytes()
    problems = []
    if data[:4] != b"\x7fELF":
        return [f"{path}: not an ELF file"]
    if data[4] != 2 or data[5] != 1:
        problems.append(f"{path}: not a 64-bit little-endian ELF")
    (machine,) = struct.unpack_from("<H", data, 18)
    if machine != EM_AARCH64:
        problems.append(f"{path}: machine {machine}, not aarch64 ({EM_AARCH64})")
    needed = {tuple(int(n) for n in m.groups()) for m in re.finditer(rb"GLIBC_(\d+)\.(\d+)", data)}
    newest = max(needed, default=(0, 0))
    if newest > AL2023_GLIBC:
        problems.append(f"{path}: needs glibc {newest[0]}.{newest[1]}, provided.al2023 has 2.34")
    size = len(data)
    zipped = len(gzip.compress(data, compresslevel=6))
    print(
        f"check-bootstraps: {path.parent.name:<10} aarch64, glibc <= {newest[0]}.{newest[1]}, "
        f"{size / 2**20:.1f} MiB ({zipped / 2**20:.1f} MiB gzipped)"
    )
    return problems


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: check-bootstraps.py LAMBDA_DIR (e.g. \"$(scripts/target-dir)/lambda\")", file=sys.stderr)
        return 2
    lambda_dir = Path(sys.argv[1])
    problems = [p for name in BINARIES for p in check(lambda_dir / name / "bootstrap")]
    for p in problems:
        print(f"check-bootstraps: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
