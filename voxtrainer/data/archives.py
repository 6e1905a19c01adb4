"""From downloaded archives to folders: joining the VoxCeleb parts, extracting zips and tars without
letting a member land outside DIR, and laying the speakers out as DIR/voxceleb1 and DIR/voxceleb2.

Every archive is extracted into a staging folder under DIR/.dataprep and only then moved into place,
and a marker records that it is done, so an interrupted extraction is simply started again."""

import hashlib
import os
import re
import shutil
import stat
import tarfile
import zipfile

from voxtrainer.data.download import CHUNK, DOWNLOAD_SUFFIX, file_md5
from voxtrainer.data.report import DataprepError, byte_bar, note

STATE_DIR = ".dataprep"         # extraction staging and markers, inside DIR
JOIN_SUFFIX = ".joining"
SPEAKER_DIR = re.compile(r"^id\d+$")


def extraction_marker(save_path, archive_name):
    """The file whose presence says that `archive_name` has been extracted into DIR."""
    return save_path / STATE_DIR / f"{archive_name}.extracted"


def staging_folder(save_path, name):
    """An empty DIR/.dataprep/staging/<name>: whatever an interrupted run left there is removed."""
    folder = save_path / STATE_DIR / "staging" / name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


def check_free_space(path, needed, what):
    free = shutil.disk_usage(path).free
    if free < needed:
        raise DataprepError(f"not enough free space in {path} to {what}: need {needed / 1e9:.1f} GB, "
                            f"have {free / 1e9:.1f} GB")


def merge_move(source, dest):
    """Move `source` to `dest`; files left by an interrupted earlier run are replaced."""
    if not dest.exists() and not dest.is_symlink():
        os.rename(source, dest)
    elif source.is_dir() and dest.is_dir():
        for child in sorted(source.iterdir()):
            merge_move(child, dest / child.name)
        source.rmdir()
    elif source.is_file() and dest.is_file():
        os.replace(source, dest)
    else:
        raise DataprepError(f"cannot move {source} to {dest}: one is a file, the other a folder; "
                            f"remove {dest} and re-run --extract")


# ---------------------------------------------------------------------------
# Join


def join_parts(save_path, groups, keep_parts):
    """Concatenate each files.txt group into its zip; parts are deleted only after the md5 matches."""
    for pattern, zip_name, md5 in groups:
        joined = save_path / zip_name
        parts = sorted(path for path in save_path.glob(pattern) if not path.name.endswith(DOWNLOAD_SUFFIX))
        unfinished = sorted(save_path.glob(pattern + DOWNLOAD_SUFFIX))
        if joined.exists():
            actual = file_md5(joined)
            if actual == md5:
                print(f"{zip_name}: already joined, checksum OK")
                _remove_parts(parts, keep_parts)
                continue
            if not parts:
                raise DataprepError(f"{joined}: checksum mismatch (expected {md5}, got {actual}) and no "
                                    f"parts to rebuild it from: delete it and re-run --download")
        if unfinished:
            raise DataprepError(f"{unfinished[0]} is an unfinished download: re-run --download first")
        if not parts:
            note(f"{zip_name}: no parts {save_path / pattern} found, skipping")
            continue
        check_free_space(save_path, sum(part.stat().st_size for part in parts), f"join {zip_name}")
        temporary = joined.with_name(joined.name + JOIN_SUFFIX)
        actual = _concatenate(parts, temporary, zip_name)
        if actual != md5:
            temporary.unlink()
            raise DataprepError(f"{zip_name}: checksum of the joined parts {pattern} is wrong (expected {md5}, "
                                f"got {actual}): re-run --download to check and re-fetch the parts")
        os.replace(temporary, joined)
        print(f"{zip_name}: joined {len(parts)} parts, checksum OK")
        _remove_parts(parts, keep_parts)


def _concatenate(parts, dest, label):
    """Write the parts one after the other into `dest`; returns the md5 of the result."""
    digest = hashlib.md5()
    total = sum(part.stat().st_size for part in parts)
    with open(dest, "wb") as out, byte_bar(f"join {label}", total) as bar:
        for part in parts:
            with open(part, "rb") as handle:
                for block in iter(lambda: handle.read(CHUNK), b""):
                    out.write(block)
                    digest.update(block)
                    bar.update(len(block))
    return digest.hexdigest()


def _remove_parts(parts, keep_parts):
    if keep_parts:
        return
    for part in parts:
        part.unlink()


# ---------------------------------------------------------------------------
# Zip


class UnsafeMember(Exception):
    pass


def safe_member_path(root, info):
    """Where zip member `info` goes under `root`; raises UnsafeMember if it would escape."""
    name = info.filename
    kind = stat.S_IFMT(info.external_attr >> 16)    # 0 when the zip was not made on Unix
    if kind == stat.S_IFLNK:
        raise UnsafeMember("is a symbolic link")
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise UnsafeMember("is not a regular file or folder")
    if "\x00" in name:
        raise UnsafeMember("has a NUL byte in its name")
    normalized = name.replace("\\", "/")
    if normalized.startswith("/") or re.match(r"^[A-Za-z]:", normalized):
        raise UnsafeMember("has an absolute path")
    parts = [part for part in normalized.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise UnsafeMember("points outside the folder ('..')")
    if not parts:
        raise UnsafeMember("has an empty name")
    dest = root.joinpath(*parts)
    if not dest.resolve().is_relative_to(root.resolve()):
        raise UnsafeMember("points outside the folder")
    return dest


def extract_all(save_path):
    """Extract every DIR/*.zip not yet extracted and move its speakers into voxceleb1/2."""
    zips = sorted(save_path.glob("*.zip"))
    if not zips:
        note(f"no zip files in {save_path}: nothing to extract")
    for zip_path in zips:
        extract_zip(save_path, zip_path)


def extract_zip(save_path, zip_path):
    marker = extraction_marker(save_path, zip_path.name)
    stamp = _zip_stamp(zip_path)
    if marker.exists() and marker.read_text() == stamp:
        print(f"{zip_path.name}: already extracted, skipping")
        return
    staging = staging_folder(save_path, zip_path.name)
    try:
        with zipfile.ZipFile(zip_path) as archive:
            members = _plan_extraction(archive, staging, zip_path)
            check_free_space(save_path, sum(info.file_size for info, _ in members), f"extract {zip_path.name}")
            _write_members(archive, members, zip_path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as err:
        raise DataprepError(f"{zip_path} is damaged ({err}): delete it and re-run --download and "
                            f"--extract") from None
    _lay_out(save_path, staging, zip_path.name)
    shutil.rmtree(staging)
    marker.write_text(stamp)
    print(f"{zip_path.name}: extracted")


def _zip_stamp(zip_path):
    info = zip_path.stat()
    return f"{info.st_size} {info.st_mtime_ns}"


def _plan_extraction(archive, staging, zip_path):
    """Every member with its destination; refuses the whole zip before writing anything."""
    planned = []
    for info in archive.infolist():
        try:
            planned.append((info, safe_member_path(staging, info)))
        except UnsafeMember as err:
            raise DataprepError(f"refusing to extract {zip_path}: member {info.filename!r} {err}") from None
    return planned


def _write_members(archive, members, zip_path):
    total = sum(info.file_size for info, _ in members)
    with byte_bar(f"extract {zip_path.name}", total) as bar:
        for info, dest in members:
            if info.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as source, open(dest, "wb") as out:
                shutil.copyfileobj(source, out, CHUNK)
            bar.update(info.file_size)


def _lay_out(save_path, staging, zip_name):
    """Move the speaker folders (under wav/, dev/aac/, aac/, ...) into DIR/voxceleb1 or DIR/voxceleb2;
    anything else keeps its place relative to DIR, as a plain unzip into DIR would."""
    for root in _speaker_roots(staging):
        dataset = _dataset_for(zip_name, root.relative_to(staging))
        target = save_path / dataset
        target.mkdir(exist_ok=True)
        for speaker in sorted(root.iterdir()):
            if speaker.is_dir() and SPEAKER_DIR.match(speaker.name):
                merge_move(speaker, target / speaker.name)
    _prune_empty_dirs(staging)
    for leftover in sorted(staging.iterdir()):
        merge_move(leftover, save_path / leftover.name)


def _speaker_roots(staging, max_depth=4):
    """Folders (shallowest first) that directly hold idXXXXX folders."""
    roots, level = [], [staging]
    for _ in range(max_depth):
        next_level = []
        for folder in level:
            children = sorted(child for child in folder.iterdir() if child.is_dir())
            if any(SPEAKER_DIR.match(child.name) for child in children):
                roots.append(folder)
            else:
                next_level.extend(children)
        level = next_level
    return roots


def _dataset_for(zip_name, root):
    if zip_name.startswith("vox1"):
        return "voxceleb1"
    if zip_name.startswith("vox2"):
        return "voxceleb2"
    return "voxceleb2" if "aac" in root.parts else "voxceleb1"


def _prune_empty_dirs(folder):
    """Remove the folders the speaker moves emptied (dev/aac/), so they do not reappear in DIR."""
    for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()


# ---------------------------------------------------------------------------
# Tar


def extract_tar(save_path, archive):
    """Extract into a staging folder, then move into DIR. tarfile's "data" filter refuses members
    that would land outside the folder (absolute paths, '..', links pointing out, devices)."""
    staging = staging_folder(save_path, archive.name)
    # A lower bound of the space needed: MUSAN's audio hardly compresses.
    check_free_space(save_path, archive.stat().st_size, f"extract {archive.name}")
    try:
        with tarfile.open(archive) as tar, byte_bar(f"extract {archive.name}") as bar:
            for member in tar:
                tar.extract(member, staging, filter="data")
                bar.update(member.size)
    except tarfile.FilterError as err:
        shutil.rmtree(staging)
        raise DataprepError(f"refusing to extract {archive}: {err}") from None
    except (tarfile.TarError, EOFError, OSError) as err:
        shutil.rmtree(staging)
        raise DataprepError(f"{archive} is damaged or unreadable ({err}): delete it and re-run --augment") from None
    for entry in sorted(staging.iterdir()):
        merge_move(entry, save_path / entry.name)
    shutil.rmtree(staging)
    extraction_marker(save_path, archive.name).write_text(str(archive.stat().st_size))
    print(f"{archive.name}: extracted")
