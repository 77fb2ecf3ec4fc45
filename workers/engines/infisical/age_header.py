"""The age header of a stored object: which kinds of recipient it was encrypted to.

X25519 stanzas do not name their recipient, so they are counted; ssh stanzas carry a tag
(the first 4 bytes of the key's sha256), which is compared. Pure: bytes in, findings out.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Sequence

MAGIC = b"age-encryption.org/v1"
_MAX_HEADER = 64 * 1024


def read_header(chunks: Iterable[bytes]) -> list[list[str]]:
    """The stanza lines (``-> TYPE args…``) of an age file's header, split into words."""
    data = b""
    for chunk in chunks:
        data += chunk
        if b"\n---" in data or len(data) > _MAX_HEADER:
            break
    lines = data.split(b"\n")
    if not lines or lines[0] != MAGIC:
        raise ValueError("not an age file (no age-encryption.org/v1 header)")
    if b"\n---" not in data:
        raise ValueError("the age header has no end (---)")
    stanzas = []
    for line in lines[1:]:
        if line.startswith(b"---"):
            break
        if line.startswith(b"-> "):
            stanzas.append(line[3:].decode("ascii", "replace").split())
    return stanzas


def ssh_tag(recipient: str) -> str:
    """The tag an ssh recipient's stanzas carry."""
    key = base64.b64decode(recipient.split()[1])
    return base64.b64encode(hashlib.sha256(key).digest()[:4]).decode().rstrip("=")


def header_problems(stanzas: Sequence[Sequence[str]], recipients: Sequence[str]) -> list[str]:
    """How the header disagrees with the recipients the manifest names; empty when it agrees."""
    problems = []
    x25519 = sum(1 for s in stanzas if s and s[0] == "X25519")
    want_x25519 = sum(1 for r in recipients if r.startswith("age1"))
    if x25519 != want_x25519:
        problems.append(f"{x25519} X25519 recipients in the header, manifest names {want_x25519}")
    tags = sorted(s[1] for s in stanzas if s and s[0].startswith("ssh-") and len(s) > 1)
    want_tags = sorted(ssh_tag(r) for r in recipients if r.startswith("ssh-"))
    if tags != want_tags:
        problems.append("the header's ssh recipients are not the manifest's")
    if not recipients:
        problems.append("the manifest names no recipients")
    return problems
