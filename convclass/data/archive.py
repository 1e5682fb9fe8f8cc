"""Images inside a .zip or .tar[.gz|.bz2|.xz] read in place, never extracted, and the one path form for an image
inside a container file: CONTAINER::MEMBER (an archive member, or a row of a Hugging Face Arrow file: data/hf.py).

The layout rules, the decoders (images.py, decode.py) and the decode cache take such a path wherever they take a
file's. Archives come from outside, so a listing keeps only regular files with plain names inside the archive (no
`..`, absolute names, links, devices or nested archives), each at most the per-file cap (safeio.max_file_bytes), at
most MAX_MEMBERS entries, and every read is bounded. Each process opens the archive itself: a forked decode worker
never shares its parent's file offset, and no open handle is ever pickled."""
from __future__ import annotations

import bz2
import gzip
import lzma
import os
import re
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from ..errors import ConvclassError
from ..safeio import MAX_FILE_MB_ENV, Refused, max_file_bytes, open_regular, read_regular
from .folder import match_splits, spec_from_classes, visible
from .sources import DataOptions, DataSpec
from .table import Files, read_table

__all__ = ["SEP", "ARCHIVE_SUFFIXES", "MAX_MEMBERS", "is_archive", "scan_archive", "read_source", "sources",
           "member_stamp", "list_members"]

SEP = "::"
MAX_MEMBERS = 10_000_000  # entries listed (ImageNet's train set is 1.3 M); past this, a bomb of empty entries
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
_NESTED = (*ARCHIVE_SUFFIXES, ".gz", ".bz2", ".xz", ".7z", ".rar")
_MEMBER = re.compile(r"(.+?\.(?:zip|tar|tar\.gz|tgz|tar\.bz2|tar\.xz|arrow))::(.+)", re.IGNORECASE | re.DOTALL)
_ANY_SIZE = 2**62          # the archive itself may be any size; its members are capped
_MAX_META = 2**20          # bytes of a tar long-name or pax header: tarfile reads one whole into memory
_KEEP = 4                  # archives whose listing and handle a process keeps


class Member(NamedTuple):
    size: int       # uncompressed bytes, as the archive declares
    at: int | str   # tar: offset of the data in the uncompressed stream; zip: the stored name


class _Listing(NamedTuple):
    members: dict[str, Member]   # normalised name -> where it is
    notes: list[str]             # what was skipped and why


_LISTINGS: dict[tuple, _Listing] = {}
_ZIPS: dict[tuple, zipfile.ZipFile] = {}


def is_archive(path: str | Path) -> bool:
    return str(path).lower().endswith(ARCHIVE_SUFFIXES)


def _split(path: str) -> tuple[str, str] | None:
    m = _MEMBER.fullmatch(path) if SEP in path else None
    return (m[1], m[2]) if m else None


def _stamp(archive: str) -> tuple:
    st = os.stat(archive)
    return archive, st.st_size, st.st_mtime_ns, os.getpid()


def _kept(cache: dict, key: tuple, make):
    if key not in cache:
        while len(cache) >= _KEEP:
            cache.pop(next(iter(cache)))
        cache[key] = make()
    return cache[key]


# --- listing --------------------------------------------------------------------------------------------------

def _safe_name(raw: str) -> str | None:
    """The member's path inside the archive, or None for a name that points outside it or would reach a terminal
    as control characters."""
    if any(ord(c) < 32 or ord(c) == 127 for c in raw):
        return None
    parts = raw.replace("\\", "/").split("/")
    if raw.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", raw) or ".." in parts:
        return None
    return "/".join(p for p in parts if p not in ("", "."))


class _Skipped:
    """Members left out, counted per reason with a first example, for one note each."""

    def __init__(self):
        self.seen: dict[str, tuple[int, str]] = {}

    def add(self, reason: str, name: str) -> None:
        n, first = self.seen.get(reason, (0, name))
        self.seen[reason] = (n + 1, first)

    def notes(self, archive: str) -> list[str]:
        return [f"{archive}: skipped {n} member(s) {reason}, e.g. {first!r}" for reason, (n, first) in
                self.seen.items()]


def _add(members: dict[str, Member], skipped: _Skipped, raw: str, size: int, at: int | str, special: bool) -> None:
    name, cap = _safe_name(raw), max_file_bytes()
    if special:
        skipped.add("that are links or special files (never followed)", raw)
    elif name is None:
        skipped.add("with names outside the archive (`..`, absolute) or unprintable", raw)
    elif name.lower().endswith(_NESTED):
        skipped.add("that are archives themselves (not opened)", raw)
    elif size > cap:
        skipped.add(f"larger than the {cap / 2**20:.3g} MB limit per file (${MAX_FILE_MB_ENV} raises it)", raw)
    elif name:
        members[name] = Member(size, at)  # a name stored twice: the later one, as extracting would leave it


def _count(n: int, archive: str) -> None:
    if n > MAX_MEMBERS:
        raise ConvclassError(f"{archive} lists more than {MAX_MEMBERS:,} entries; refusing it (an archive bomb?)")


def _list_zip(archive: str, skipped: _Skipped) -> dict[str, Member]:
    with open_regular(archive, _ANY_SIZE) as f, zipfile.ZipFile(f) as zf:
        infos = zf.infolist()
    _count(len(infos), archive)
    members: dict[str, Member] = {}
    for i in infos:
        kind = stat.S_IFMT(i.external_attr >> 16)  # Unix mode, when the zip was made on Unix; 0 otherwise
        if not i.is_dir():
            _add(members, skipped, i.filename, i.file_size, i.filename, kind not in (0, stat.S_IFREG))
    return members


_META_TYPES = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE, tarfile.XGLTYPE,
               tarfile.SOLARIS_XHDTYPE)


class _BoundedTarInfo(tarfile.TarInfo):
    """tarfile reads a GNU long-name or pax header whole into memory, whatever size it declares: cap it."""

    def _proc_member(self, tf):
        if self.type in _META_TYPES and self.size > _MAX_META:
            raise tarfile.ReadError(f"a {self.size:,}-byte metadata header (at most {_MAX_META:,})")
        return super()._proc_member(tf)


def _tar_stream(f):
    """The uncompressed tar stream of an open archive file, by its magic bytes (not its name)."""
    head = f.read(6)
    f.seek(0)
    for magic, opener in ((b"\x1f\x8b", gzip.GzipFile), (b"BZh", bz2.BZ2File), (b"\xfd7zXZ\x00", lzma.LZMAFile)):
        if head.startswith(magic):
            return opener(fileobj=f) if opener is gzip.GzipFile else opener(f)
    return f


def _list_tar(archive: str, skipped: _Skipped) -> dict[str, Member]:
    members: dict[str, Member] = {}
    with open_regular(archive, _ANY_SIZE) as f, tarfile.open(fileobj=_tar_stream(f), mode="r:",
                                                            tarinfo=_BoundedTarInfo) as tf:
        n = 0
        while (m := tf.next()) is not None:
            n += 1
            _count(n, archive)
            tf.members.clear()  # keep (size, offset) per member, not a TarInfo: memory stays small
            if not m.isdir():
                _add(members, skipped, m.name, m.size, m.offset_data, not m.isreg() or m.issparse())
    return members


def _read_listing(archive: str) -> _Listing:
    skipped = _Skipped()
    kind = "zip" if archive.lower().endswith(".zip") else "tar"
    try:
        members = (_list_zip if kind == "zip" else _list_tar)(archive, skipped)
    except Refused as e:
        raise ConvclassError(f"cannot read {archive}: {e}") from None
    except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError, ValueError, zlib.error, lzma.LZMAError) as e:
        reason = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        raise ConvclassError(f"{archive} is not a readable {kind} archive ({reason})") from None
    return _Listing(members, skipped.notes(archive))


def _listing(archive: str) -> _Listing:
    # the per-file cap decides what is listed: a listing made under another cap is another listing
    return _kept(_LISTINGS, (*_stamp(archive)[:3], max_file_bytes()), lambda: _read_listing(archive))


# --- the layout -----------------------------------------------------------------------------------------------

def _walk(tree: dict, prefix: str) -> list[str]:
    """Member names below `tree` in os.walk's order (files sorted, then each sub-folder sorted): the order
    folder.py lists a folder in, so an archive of a folder gives the same splits."""
    files = sorted(k for k, v in tree.items() if v is None)
    dirs = sorted(k for k, v in tree.items() if v is not None)
    return [prefix + f for f in files] + [m for d in dirs for m in _walk(tree[d], f"{prefix}{d}/")]


def _class_folders(tree: dict, prefix: str, archive: str, notes: list[str]) -> dict[str, list[str]]:
    found = {}
    for d in sorted(k for k, v in tree.items() if v is not None):
        files = _walk(tree[d], f"{prefix}{d}/")
        if files:
            found[d] = [f"{archive}{SEP}{m}" for m in files]
        else:
            notes.append(f"ignored empty class folder {archive}{SEP}{prefix}{d}")
    return found


def scan_archive(path: str | Path, options: DataOptions | None = None) -> DataSpec:
    """A .zip or .tar[.gz] of class folders, or of train/ val/ test/ split folders of class folders (the layout
    rules of a folder, folder.py), or of a CSV/TSV of image paths and labels with its images (table.py: single-
    or multi-label), read in place. A lone top folder (Kaggle's zips) is looked through."""
    archive = str(Path(path).expanduser().resolve())
    listing = _listing(archive)
    tree: dict = {}
    for name in listing.members:
        parts = name.split("/")
        if all(visible(p) for p in parts):
            node = tree
            for p in parts[:-1]:
                if node.get(p) is None:  # a file and a folder of one name: the folder wins
                    node[p] = {}
                node = node[p]
            node.setdefault(parts[-1], None)
    notes, prefix = list(listing.notes), ""
    while True:  # a lone top folder that is no split and holds no table: look through it
        dirs = [k for k, v in tree.items() if v is not None]
        tables = sorted(k for k, v in tree.items() if v is None and k.lower().endswith((".csv", ".tsv")))
        if len(dirs) != 1 or match_splits(dirs) or tables:
            break
        tree, prefix = tree[dirs[0]], f"{prefix}{dirs[0]}/"
    name = re.sub(r"\.(zip|tar|tar\.gz|tgz|tar\.bz2|tar\.xz)$", "", Path(archive).name, flags=re.IGNORECASE)
    splits = match_splits(dirs)
    # a table named labels/train.csv, or one beside at most one folder (its images), is the labels; class folders
    if tables and (any(t.lower()[:-4] in ("labels", "train") for t in tables) or not splits and len(dirs) < 2):
        return _scan_table(archive, name, prefix, tables, listing, options or DataOptions())
    if tables:  # with a stray metadata.csv stay class folders
        notes.append(f"read the class folders, not {', '.join(tables[:3])} (a labels.csv would be read instead)")
    if "train" in splits:
        found = {s: (d, _class_folders(tree[d], f"{prefix}{d}/", archive, notes)) for s, d in splits.items()}
    else:
        found = {"": ("", _class_folders(tree, prefix, archive, notes))}
    return spec_from_classes(name, archive + (SEP + prefix.rstrip("/") if prefix else ""), found, notes)


class _Members(Files):
    """An archive's members seen as files below the archive's own path (ARCHIVE/images/0.png is the member
    images/0.png), so the table's path arithmetic holds; a name with `..` or an absolute one finds nothing."""

    def __init__(self, archive: str, listing: _Listing):
        self.archive, self.members = archive, listing.members
        self.dirs = {"/".join(m.split("/")[:i]) for m in self.members for i in range(m.count("/") + 1)}

    def _name(self, path) -> str | None:
        p = str(path)
        return "" if p == self.archive else p[len(self.archive) + 1:] if p.startswith(self.archive + "/") else None

    def read(self, path: Path) -> bytes:  # the table _scan_table found among the members
        return read_source(f"{self.archive}{SEP}{self._name(path)}")

    def is_dir(self, path) -> bool:
        return self._name(path) in self.dirs

    def is_file(self, path) -> bool:
        return self._name(path) in self.members


def _scan_table(archive: str, name: str, prefix: str, tables: list[str], listing: _Listing, options: DataOptions
                ) -> DataSpec:
    """The CSV/TSV at the top of an archive, its images found among the archive's members."""
    table = next((t for t in tables if len(tables) == 1 or t.lower()[:-4] in ("labels", "train")), None)  # Kaggle
    if table is None:
        raise ConvclassError(f"{archive} holds several tables ({', '.join(tables[:5])}) and none is named labels.csv "
                             "or train.csv; keep only the one of image paths and labels in it")
    inside = _Members(archive, listing)
    spec = read_table(Path(archive) / f"{prefix}{table}", options, inside)
    # every path names a member: one the table gives outside the archive names none, never a file outside
    spec.train.paths = [f"{archive}{SEP}{inside._name(p) or p}" for p in spec.train.paths]
    spec.name, spec.notes = name, listing.notes + spec.notes
    return spec


# --- reading --------------------------------------------------------------------------------------------------

def _zip(archive: str) -> zipfile.ZipFile:
    return _kept(_ZIPS, _stamp(archive), lambda: zipfile.ZipFile(open_regular(archive, _ANY_SIZE)))


def _read_zip(zf: zipfile.ZipFile, m: Member) -> bytes:
    cap = max_file_bytes()
    with zf.open(m.at) as f:
        data = f.read(cap + 1)  # streamed: a member that inflates past its declared size stops at the cap
    if len(data) > cap:
        raise Refused(f"larger than the {cap / 2**20:.3g} MB limit per file (${MAX_FILE_MB_ENV} raises it)")
    return data


def _read_archive(archive: str, items: list[tuple[int, str]], bad: list) -> Iterator[tuple[int, bytes]]:
    """(i, bytes) of the members asked for; a tar's in stream order, so a .tar.gz is decompressed once per call."""
    try:
        listing = _listing(archive)
    except (ConvclassError, OSError) as e:
        bad += [(f"{archive}{SEP}{m}", str(e)) for _, m in items]
        return
    found = []
    for i, name in items:
        m = listing.members.get(name)
        if m is None:
            bad.append((f"{archive}{SEP}{name}", "not in the archive (or skipped when it was listed)"))
        else:
            found.append((m, i, name))
    errors = (Refused, OSError, EOFError, zipfile.BadZipFile, zlib.error, lzma.LZMAError, RuntimeError,
              NotImplementedError)  # RuntimeError: an encrypted zip member; NotImplementedError: its compression
    done = 0
    try:
        if archive.lower().endswith(".zip"):
            zf = _zip(archive)
            for m, i, name in found:
                try:
                    data = _read_zip(zf, m)
                except errors as e:
                    bad.append((f"{archive}{SEP}{name}", f"unreadable ({str(e).splitlines()[0][:80]})"))
                    continue
                yield i, data
            return
        found.sort(key=lambda t: t[0].at)
        with open_regular(archive, _ANY_SIZE) as raw:
            f = _tar_stream(raw)
            for m, i, _ in found:
                f.seek(m.at)
                data = f.read(m.size)
                if len(data) < m.size:
                    raise EOFError("the archive ends inside it")
                done += 1
                yield i, data
    except errors as e:  # the archive itself: every member not yet read is unreadable
        bad += [(f"{archive}{SEP}{name}", f"unreadable ({str(e).splitlines()[0][:80]})") for _, _, name in
                found[done:]]


def _reader(container: str):
    if container.lower().endswith(".arrow"):
        from .hf import read_rows  # pyarrow is imported only for Hugging Face data
        return read_rows
    return _read_archive


def sources(paths: list[str], bad: list[tuple[str, str]]) -> Iterator[tuple[int, str | bytes]]:
    """(i, source) for each of `paths`: a file's path as it is (its reader opens it), a container member's bytes,
    read container by container in the order that reads each once. A member that cannot be read goes to `bad` as
    (path, reason) instead."""
    groups: dict[str, list[tuple[int, str]]] = {}
    for i, p in enumerate(paths):
        hit = _split(p)
        if hit is None:
            yield i, p
        else:
            groups.setdefault(hit[0], []).append((i, hit[1]))
    for container, items in groups.items():
        yield from _reader(container)(container, items, bad)


def read_source(path: str | Path) -> bytes:
    """The bytes of one image file or container member; safeio.Refused (a short reason) when it cannot be read."""
    hit = _split(str(path))
    if hit is None:
        return read_regular(path)
    bad: list[tuple[str, str]] = []
    for _, data in _reader(hit[0])(hit[0], [(0, hit[1])], bad):
        return data
    raise Refused(bad[0][1] if bad else "unreadable")


def list_members(archive: str) -> tuple[list[str], list[str]]:
    """(member names in the order the archive stores them, notes on those left out), by the listing rules above."""
    listing = _listing(archive)
    return list(listing.members), listing.notes


def member_stamp(path: str) -> str | None:
    """The decode cache's key line for a container member: the container's path, size and modification time,
    the member's name (and its declared size, in an archive); None for a plain file."""
    hit = _split(path)
    if hit is None:
        return None
    container, name = hit
    try:
        st = os.stat(container)
    except OSError:
        return f"{path}|missing"
    size = ""
    if is_archive(container):
        m = _listing(container).members.get(name)
        size = f"|{m.size if m else 'missing'}"
    return f"{container}|{st.st_size}|{st.st_mtime_ns}{SEP}{name}{size}"
