#!/usr/bin/env python3
"""Writes the malicious layers of this directory (run it here; output is deterministic).

Each layer tries one way out of the extraction target; tests/layers_malicious.rs extracts them
into DIR/target beside DIR/outside/secret and checks that nothing outside the target changed.
"""
import io
import tarfile


def entry(name, kind=tarfile.REGTYPE, data=b"", link="", mode=None):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = mode if mode is not None else (0o755 if kind in (tarfile.DIRTYPE, tarfile.SYMTYPE) else 0o644)
    info.linkname = link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, io.BytesIO(data) if kind == tarfile.REGTYPE else None


def write(path, *entries):
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, data)


SYM, LNK, DIR = tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.DIRTYPE

write("dotdot.tar", entry("../escaped", data=b"pwned"))
write("dotdot-nested.tar", entry("a/", DIR), entry("a/../../escaped", data=b"pwned"))
write("absolute.tar", entry("/tmp/rbuild-layers-escape-absolute", data=b"pwned"))
write("symlink-relative.tar", entry("link", SYM, link="../outside"), entry("link/pwned", data=b"pwned"))
write("symlink-absolute.tar", entry("link", SYM, link="/tmp"), entry("link/rbuild-layers-escape-symlink", data=b"pwned"))
write("symlink-chain.tar", entry("b/", DIR), entry("a", SYM, link="b/../.."), entry("a/outside/pwned", data=b"pwned"))
write("symlink-lower-1.tar", entry("link", SYM, link="../outside"))
write("symlink-lower-2.tar", entry("link/pwned", data=b"pwned"))
write("hardlink-dotdot.tar", entry("h", LNK, link="../outside/secret"))
write("hardlink-absolute.tar", entry("h", LNK, link="/etc/passwd"))
write("hardlink-through-symlink.tar", entry("link", SYM, link="../outside"), entry("h", LNK, link="link/secret"))
write("whiteout-through-symlink.tar", entry("link", SYM, link="../outside"), entry("link/.wh.secret"))
write("opaque-through-symlink.tar", entry("link", SYM, link="../outside"), entry("link/.wh..wh..opq"))
write("whiteout-dotdot.tar", entry(".wh..."))
# Not refused: the symlinks are replaced by the entries of the same name, never written through.
write(
    "overwrite-through-symlink.tar",
    entry("f", SYM, link="../outside/secret"),
    entry("f", data=b"replaced"),
    entry("d", SYM, link="../outside"),
    entry("d/", DIR),
    entry("d/inner", data=b"inside"),
)
