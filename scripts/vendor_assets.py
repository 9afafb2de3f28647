"""Copy the front-end libraries from node_modules/ into service/static/vendor/.

The copies are committed, so ``make run`` works on a machine without npm. After changing a
version in package.json: ``npm install && python3 scripts/vendor_assets.py`` (``make assets``).
``--check`` only verifies that the committed copies match node_modules/ and exits 1 if not.

Files are copied byte for byte (so anyone can compare them with the npm tarballs), each with its
licence, plus the licences of the dependencies that the UMD builds bundle inside them.
"""

import argparse
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NODE_MODULES = ROOT / "node_modules"
VENDOR = ROOT / "service" / "static" / "vendor"


@dataclass(frozen=True)
class Package:
    npm_name: str
    # Under service/static/vendor/, what templates reference. No dots: setuptools would not
    # treat a dotted folder as part of the package, and the wheel would lose its files.
    folder: str
    files: tuple[str, ...]  # paths inside the npm package, copied flat into the folder
    # (npm name, licence file) of dependencies compiled into the build; copied as LICENSE-<name>.
    bundled: tuple[tuple[str, str], ...] = ()


PACKAGES: tuple[Package, ...] = (
    Package("htmx.org", "htmx", ("dist/htmx.min.js", "LICENSE")),
    Package("sortablejs", "sortablejs", ("Sortable.min.js", "LICENSE")),
    Package(
        "trix",
        "trix",
        ("dist/trix.umd.min.js", "dist/trix.css", "LICENSE"),
        bundled=(("dompurify", "LICENSE"),),
    ),
    Package("@picocss/pico", "pico", ("css/pico.min.css", "LICENSE.md")),
    Package(
        "chart.js",
        "chartjs",
        ("dist/chart.umd.min.js", "LICENSE.md"),
        bundled=(("@kurkle/color", "LICENSE.md"),),
    ),
)


class VendorError(Exception):
    """node_modules/ is missing or does not match package.json; the message says what to run."""


def pinned_versions() -> dict[str, str]:
    manifest = json.loads((ROOT / "package.json").read_text(encoding="utf-8"))
    dependencies: dict[str, str] = manifest["dependencies"]
    return dependencies


def installed_version(npm_name: str) -> str:
    path = NODE_MODULES / npm_name / "package.json"
    if not path.is_file():
        raise VendorError(f"{npm_name} is not in node_modules/: run `npm install` first")
    version: str = json.loads(path.read_text(encoding="utf-8"))["version"]
    return version


def planned_copies(package: Package) -> dict[Path, Path]:
    """Map each destination file of ``package`` to its source in node_modules/."""
    source_root = NODE_MODULES / package.npm_name
    target_root = VENDOR / package.folder
    copies = {target_root / Path(name).name: source_root / name for name in package.files}
    for dependency, licence in package.bundled:
        slug = dependency.removeprefix("@").replace("/", "-")
        suffix = "".join(Path(licence).suffixes)
        copies[target_root / f"LICENSE-{slug}{suffix}"] = NODE_MODULES / dependency / licence
    for source in copies.values():
        if not source.is_file():
            raise VendorError(f"{source.relative_to(ROOT)} is missing: run `npm install` again")
    return copies


def check_versions(packages: tuple[Package, ...]) -> None:
    pinned = pinned_versions()
    for package in packages:
        wanted = pinned.get(package.npm_name)
        if wanted is None:
            raise VendorError(f"{package.npm_name} is not a dependency in package.json")
        found = installed_version(package.npm_name)
        if found != wanted:
            raise VendorError(
                f"node_modules/ has {package.npm_name} {found}, package.json pins {wanted}: "
                "run `npm install`"
            )


def vendor(package: Package) -> list[Path]:
    """Replace the package's folder with fresh copies; return the files written."""
    copies = planned_copies(package)
    target_root = VENDOR / package.folder
    if target_root.exists():
        shutil.rmtree(target_root)  # drops files an older version had and this one lacks
    target_root.mkdir(parents=True)
    for target, source in copies.items():
        shutil.copyfile(source, target)
    return sorted(copies)


def differences(package: Package) -> list[str]:
    """What differs between the committed copies and node_modules/, as readable lines."""
    copies = planned_copies(package)
    target_root = VENDOR / package.folder
    problems = [
        f"{target.relative_to(ROOT)}: missing or different from {source.relative_to(ROOT)}"
        for target, source in sorted(copies.items())
        if not target.is_file() or target.read_bytes() != source.read_bytes()
    ]
    if target_root.is_dir():
        problems.extend(
            f"{extra.relative_to(ROOT)}: not produced by this script"
            for extra in sorted(target_root.iterdir())
            if extra not in copies
        )
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--check",
        action="store_true",
        help="verify the vendored files match node_modules/ instead of copying them",
    )
    args = parser.parse_args(argv)
    try:
        check_versions(PACKAGES)
        if args.check:
            problems = [line for package in PACKAGES for line in differences(package)]
            for line in problems:
                print(line, file=sys.stderr)
            if problems:
                print("run `make assets` to refresh service/static/vendor/", file=sys.stderr)
                return 1
            print(f"service/static/vendor/ matches node_modules/ ({len(PACKAGES)} packages)")
            return 0
        for package in PACKAGES:
            written = vendor(package)
            version = installed_version(package.npm_name)
            names = ", ".join(path.name for path in written)
            print(f"{package.npm_name} {version} -> vendor/{package.folder}/: {names}")
    except VendorError as error:
        print(f"vendor_assets: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
