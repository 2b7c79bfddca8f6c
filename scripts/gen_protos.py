"""Generate Python code with typed stubs from protos/ into the contracts package.

`python scripts/gen_protos.py` writes libs/contracts/src; `--check` regenerates into a temporary
folder and fails when the committed code differs (stale or hand-edited).
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
OUT = ROOT / "libs" / "contracts" / "src"
GENERATED_ROOT = "orderline"


def generate(out: Path) -> None:
    files = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    include = Path(protoc.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{PROTOS}",
        f"-I{include}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_out={out}",
        f"--mypy_grpc_out={out}",
        *files,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    # Generated packages need an __init__ so mypy and hatchling see regular packages.
    for folder in (out / GENERATED_ROOT).rglob("*"):
        if folder.is_dir():
            (folder / "__init__.py").touch()
    (out / GENERATED_ROOT / "__init__.py").touch()
    (out / GENERATED_ROOT / "py.typed").touch()


def differences(a: Path, b: Path) -> list[str]:
    cmp = filecmp.dircmp(a, b, ignore=["__pycache__"])
    found = [f"only in one: {n}" for n in cmp.left_only + cmp.right_only]
    found += [f"differs: {n}" for n in cmp.diff_files]
    for name, sub in cmp.subdirs.items():
        found += [f"{name}/{d}" for d in differences(Path(sub.left), Path(sub.right))]
    return found


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--check", action="store_true", help="fail when generated code is stale")
    args = parser.parse_args()
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            generate(Path(tmp))
            diff = differences(Path(tmp) / GENERATED_ROOT, OUT / GENERATED_ROOT)
        if diff:
            print("generated code is stale; run `make protos`:", *diff, sep="\n  ")
            return 1
        print("generated code is fresh")
        return 0
    shutil.rmtree(OUT / GENERATED_ROOT, ignore_errors=True)
    OUT.mkdir(parents=True, exist_ok=True)
    generate(OUT)
    print(f"generated {sum(1 for _ in (OUT / GENERATED_ROOT).rglob('*.py'))} modules")
    return 0


if __name__ == "__main__":
    sys.exit(main())
