"""Passwords, login tokens and CSRF tokens, from the standard library.

Passwords are hashed with scrypt (RFC 7914; n=2**14, r=8, p=1 as recommended for
interactive logins) and a random salt. Login tokens are 192 random bits, so a
plain SHA-256 of the token is enough to look it up without storing it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

_N, _R, _P = 2**14, 8, 1


def hash_password(password: str) -> str:
    """``scrypt$n$r$p$salt$hash`` of ``password`` with a fresh 16-byte salt."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    b64 = base64.urlsafe_b64encode
    return f"scrypt${_N}${_R}${_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str | None) -> bool:
    """Whether ``password`` matches a hash from :func:`hash_password` (constant time)."""
    if not stored:
        return False
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        salt_b = base64.urlsafe_b64decode(salt)
        want = base64.urlsafe_b64decode(digest)
        got = hashlib.scrypt(password.encode(), salt=salt_b, n=int(n), r=int(r), p=int(p),
                             dklen=len(want))
    except ValueError:
        return False
    return hmac.compare_digest(got, want)


def new_token() -> str:
    """A fresh login token (shown once to the admin who creates the user)."""
    return secrets.token_urlsafe(24)


def hash_token(token: str) -> str:
    """The SHA-256 hex digest under which a login token is stored."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_csrf() -> str:
    """A fresh CSRF token, kept in the signed session and echoed by every form."""
    return secrets.token_urlsafe(24)


def same_token(a: str | None, b: str | None) -> bool:
    """Constant-time equality of two optional tokens (``None`` never matches)."""
    return bool(a) and bool(b) and hmac.compare_digest(str(a), str(b))
