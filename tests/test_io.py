"""poft.io: a full disk or an unwritable output dir is one named error naming the path, and leaves no file; the
checksum of cached payloads catches any change after writing."""

import errno
import hashlib
import tempfile
from pathlib import Path

import pytest

from poft.io import (CorruptFileError, DiskFullError, NotWritableError, ResourceError, read_checked_json, with_checksum,
                     write_json, write_jsonl)


def test_disk_full_while_writing_is_one_named_error_and_leaves_no_file(tmp_path, monkeypatch):
    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(DiskFullError) as e:
        write_json(tmp_path / "out.json", {"a": 1})
    assert str(e.value) == (f"{tmp_path}/out.json: cannot write, no space left on device (free space on its device, "
                            "or write the output elsewhere)")
    assert e.value.errno == errno.ENOSPC and isinstance(e.value, ResourceError)
    assert list(tmp_path.iterdir()) == []  # the temporary file is gone too


def test_quota_exceeded_mid_stream_is_a_full_disk(tmp_path):
    def rows():
        yield {"a": 1}
        raise OSError(errno.EDQUOT, "Disk quota exceeded")

    with pytest.raises(DiskFullError, match="out.jsonl: cannot write, disk quota exceeded"):
        write_jsonl(tmp_path / "out.jsonl", rows())
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("code, what", [(errno.EACCES, "permission denied"), (errno.EROFS, "read-only file system")])
def test_unwritable_output_dir_is_one_named_error(tmp_path, monkeypatch, code, what):
    def refuse(*args, dir=None, **kwargs):
        raise OSError(code, "refused", str(dir))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(NotWritableError) as e:
        write_json(tmp_path / "out" / "x.json", {})
    assert str(e.value) == f"{tmp_path}/out/x.json: cannot write, {what} on {tmp_path}/out (choose a writable output " \
                           "directory)"


def test_other_os_errors_pass_through(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(FileExistsError):  # a file where the output dir should be: not a resource error
        write_json(tmp_path / "file" / "x.json", {})


def test_checksum_catches_any_change(tmp_path):
    path = tmp_path / "c.json"
    write_json(path, with_checksum({"rows": [1.5, None, "x"]}))
    assert read_checked_json(path)["rows"] == [1.5, None, "x"]
    path.write_text(path.read_text().replace("1.5", "2.5"))
    with pytest.raises(CorruptFileError, match=f"^{path}: checksum mismatch, the content changed after it was written$"):
        read_checked_json(path)
    write_json(path, {"rows": []})
    with pytest.raises(CorruptFileError, match=r"c.json: no checksum \(written by an older poft, or edited\)$"):
        read_checked_json(path)
    path.write_text('{"rows": [')
    with pytest.raises(CorruptFileError, match=r"c.json: unreadable or truncated \("):
        read_checked_json(path)


def test_checksums_hash_a_lone_surrogate_instead_of_crashing():
    """Found by the fuzzer: an items file with an extra field holding "\\ud800" (valid JSON, not valid UTF-8)
    crashed the checksum with UnicodeEncodeError. It hashes now, stably; valid text hashes as before."""
    from poft.io import payload_checksum, sha256_text

    obj = {"ids": ["a"], "extra": {"": "\ud800"}}
    assert payload_checksum(obj) == payload_checksum(dict(obj)) != payload_checksum({"ids": ["a"]})
    assert sha256_text("héllo") == hashlib.sha256("héllo".encode("utf-8")).hexdigest()
