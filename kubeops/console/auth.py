"""Who may use the console: tokens with a role, server-side sessions, CSRF tokens.

- Tokens: two (``viewer``, ``operator``) are generated at first start, printed once, and only their SHA-256
  digests are kept, in ``<state_dir>/console-tokens.json`` (mode 0600): a leaked state folder gives no login.
  ``--token-file`` names your own file instead: one token a line, ``<name> <role> <token>``, mode 0600.
- Sessions: the cookie holds an opaque random id (never the token); the session, its role and its CSRF token
  live in this process only, so restarting the console logs everyone out.
- Every comparison of a secret is constant-time (`hmac.compare_digest`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from kubeops.errors import InputError

ROLES = ("viewer", "operator")
TOKENS_FILE = "console-tokens.json"
SESSION_TTL_S = 12 * 3600


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class TokenEntry:
    name: str
    role: str
    sha256: str


@dataclass(frozen=True, slots=True)
class TokenBook:
    """The known tokens, by digest."""

    entries: tuple[TokenEntry, ...]
    source: str

    def check(self, given: str) -> TokenEntry | None:
        """The entry whose token is `given`; every entry is compared, in constant time, whatever matches."""
        digest = _digest(given.strip())
        found = None
        for entry in self.entries:
            if hmac.compare_digest(entry.sha256, digest):
                found = entry
        return found


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


def load_or_create(state_dir: Path) -> tuple[TokenBook, dict[str, str]]:
    """The state folder's tokens; on first start new ones, returned in clear (to print once) beside the book."""
    path = Path(state_dir) / TOKENS_FILE
    created: dict[str, str] = {}
    if not path.exists():
        created = {role: secrets.token_urlsafe(24) for role in ROLES}
        doc = {"tokens": [{"name": role, "role": role, "sha256": _digest(tok)} for role, tok in created.items()]}
        _write_private(path, json.dumps(doc, indent=1) + "\n")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        entries = tuple(TokenEntry(str(t["name"]), str(t["role"]), str(t["sha256"])) for t in doc["tokens"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: not a console token file ({type(exc).__name__})",
                         hint="delete it to generate new tokens at the next start") from None
    for e in entries:
        if e.role not in ROLES:
            raise InputError(f"{path}: token {e.name!r} has unknown role {e.role!r}; known: {', '.join(ROLES)}")
    return TokenBook(entries, str(path)), created


def load_token_file(path: Path) -> TokenBook:
    """``<name> <role> <token>`` a line (``#`` comments); the file must not be readable by others."""
    try:
        mode = path.stat().st_mode
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputError(f"--token-file {path}: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InputError(f"--token-file {path}: readable by others (mode {stat.S_IMODE(mode):o})",
                         hint=f"chmod 600 {path}")
    entries = []
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        parts = text.split()
        if len(parts) != 3:
            raise InputError(f"{path}:{number}: expected '<name> <role> <token>'")
        name, role, token = parts
        if role not in ROLES:
            raise InputError(f"{path}:{number}: role: must be one of {', '.join(ROLES)}, got {role!r}")
        if len(token) < 16:
            raise InputError(f"{path}:{number}: token: must be at least 16 characters")
        entries.append(TokenEntry(name, role, _digest(token)))
    if not entries:
        raise InputError(f"--token-file {path}: no tokens")
    return TokenBook(tuple(entries), str(path))


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    name: str
    role: str
    csrf: str
    expires: float


class Sessions:
    """Opaque session ids -> who logged in, kept in memory."""

    def __init__(self, *, ttl_s: float = SESSION_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._by_id: dict[str, Session] = {}
        self._mutex = threading.Lock()

    def create(self, entry: TokenEntry) -> Session:
        session = Session(secrets.token_urlsafe(32), entry.name, entry.role, secrets.token_urlsafe(32),
                          time.time() + self.ttl_s)
        with self._mutex:
            now = time.time()
            self._by_id = {k: v for k, v in self._by_id.items() if v.expires > now}
            self._by_id[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        with self._mutex:
            session = self._by_id.get(session_id)
        if session is None or session.expires <= time.time():
            return None
        return session

    def drop(self, session_id: str | None) -> None:
        with self._mutex:
            self._by_id.pop(session_id or "", None)


def csrf_ok(session: Session, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(session.csrf, str(given))
