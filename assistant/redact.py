"""Credentials never leave the process in text meant for people: page, notes, errors, logs.

``ASSISTANT_LLM_BASE_URL`` may carry a password (``http://user:pass@host/v1``) or a key in its query
(``…/v1?api-key=…``); every message that names the URL, and every error that may quote it (the openai client's
or httpx's among them), goes through :func:`redact` before it is shown.
"""

from __future__ import annotations

import re

MASK = "***"

#: URLs in running text (also inside quotes, as settings errors show them); malformed ones too (http://[::1)
_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>`]+")
#: user:password@ (or a lone token@) after the scheme: up to the last @ of the URL, so that a password with a
#: slash, ? or # in it (http://u:pa/ss@host, http://u:S3cr#et@host) is masked whole too; a URL whose query
#: holds an @ (?email=a@b) loses its host as well: masking too much is the safe side
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)\S*@")
#: query or fragment parameters whose name says they hold a secret (api-key, access_token, sig, password, …)
_SECRET_PARAM = re.compile(
    r"([?&;#])([^=&;#\s]*(?:key|token|secret|pass|pwd|sig|auth|cred|session|code)[^=&;#\s]*)=([^&;#\s]*)",
    re.IGNORECASE)


def redact_url(url: str) -> str:
    """The URL with its user/password and the values of secret-looking query parameters masked:
    ``http://admin:S3cret@host/v1?api-key=abc&x=1`` -> ``http://***@host/v1?api-key=***&x=1``."""
    url = _USERINFO.sub(rf"\g<1>{MASK}@", url)
    return _SECRET_PARAM.sub(rf"\g<1>\g<2>={MASK}", url)


def _secrets_in(url: str) -> list[str]:
    """What a URL holds that must not be shown: its password (and whole user:password) and the values of its
    secret-looking parameters, so that they are masked even where a message quotes them without the URL
    (urllib's "Port could not be cast to integer value as 'S3cret'")."""
    out: list[str] = []
    m = _USERINFO.match(url)
    if m:
        userinfo = url[len(m.group(1)) : m.end() - 1]
        password = userinfo.partition(":")[2]
        # and the password as a URL parser reads it, cut at the first / ? or # (urllib's errors quote that)
        out += [userinfo, password, re.split(r"[/?#]", password, maxsplit=1)[0]]
    out += [m.group(3) for m in _SECRET_PARAM.finditer(url)]
    return out


def redact(text: str, *secrets: str | None) -> str:
    """Text with every URL in it redacted (see redact_url), and each of ``secrets`` (an API key, a password,
    a URL whose password and keys are secret) masked wherever it appears."""
    text = _URL.sub(lambda m: redact_url(m.group()), str(text))
    values: list[str] = []
    for secret in secrets:
        if secret:
            values += _secrets_in(secret) if "://" in secret else [secret]
    for value in sorted(values, key=len, reverse=True):
        if len(value) >= 4:  # a one-letter "secret" would mask every word
            text = text.replace(value, MASK)
    return text
