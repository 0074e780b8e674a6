"""What no answer may carry (CONTRACT S2): a credential of any kind, a DSN, a stack trace.

Bodies and headers alike. Known values (the profile's keys, `watch_secrets`, every registered
secret) are looked for verbatim; unknown credentials by their shape, with detect-secrets'
plugins for well-known token formats plus the shapes the contract names (provider URLs with
their key in the path, `user:password@` in a URL). Entropy alone never counts: transaction
hashes, addresses and trace ids are normal in answers.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping

_SHAPES = [
    (re.compile(r"Traceback \(most recent call last\)"), "a Python stack trace"),
    (re.compile(r'File "[^"]+", line \d+'), "a stack frame"),
    (re.compile(r"\bat [\w.$]+\([\w.]+:\d+\)"), "a stack frame"),
    (re.compile(r"\n\s+at [\w.$<>]+ \((?:file://)?/[^)]+:\d+:\d+\)"), "a JavaScript stack frame"),
    (
        re.compile(r"(?i)\b(postgres(?:ql)?|redis|rediss|mysql|mongodb(?:\+srv)?|amqps?)://"),
        "a connection string",
    ),
    (re.compile(r"(?i)\bhost=\S+\s+(?:port|dbname|user)="), "a libpq DSN"),
    (re.compile(r"(?i)\b(?:password|passwd|pwd)=[^\s&;\"']+"), "a password parameter"),
    # scheme://user:password@host (the password part non-empty)
    (re.compile(r"(?i)\b[a-z][a-z0-9+.\-]*://[^\s:/@\"']+:[^\s@/\"']+@"), "credentials in a URL"),
    # A provider URL carries its key in the path: Alchemy /v2/<key>, Infura /v3/<project id>,
    # and the like; a path segment of 16+ token characters after a version segment.
    (
        re.compile(r"(?i)https?://[^\s/\"']+/(?:v\d+|api[-_]?key|key)/[A-Za-z0-9_\-]{16,}"),
        "a provider URL with its key",
    ),
    (
        re.compile(r"(?i)[?&](?:api[-_]?key|apikey|key|token|access_token|secret)=[^\s&\"']{12,}"),
        "a key in a URL query",
    ),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"), "a private key"),
]
# detect-secrets' plugins for token formats; its entropy plugins are left out on purpose.
_PLUGINS = [
    "AWSKeyDetector",
    "AzureStorageKeyDetector",
    "BasicAuthDetector",
    "DiscordBotTokenDetector",
    "GitHubTokenDetector",
    "GitLabTokenDetector",
    "JwtTokenDetector",
    "KeywordDetector",
    "MailchimpDetector",
    "NpmDetector",
    "OpenAIDetector",
    "PrivateKeyDetector",
    "PypiTokenDetector",
    "SendGridDetector",
    "SlackDetector",
    "SquareOAuthDetector",
    "StripeDetector",
    "TelegramBotTokenDetector",
    "TwilioKeyDetector",
]
_SCAN_LOCK = threading.Lock()  # detect-secrets keeps its settings in a module global
_MAX_SCAN = 65536


def _token_formats(lines: list[str]) -> list[str]:
    """The kinds of credential detect-secrets recognises in these lines."""
    from detect_secrets.core.scan import scan_line
    from detect_secrets.settings import transient_settings

    found: list[str] = []
    with _SCAN_LOCK, transient_settings({"plugins_used": [{"name": n} for n in _PLUGINS]}):
        for line in lines:
            for hit in scan_line(line[:4096]):
                kind = str(hit.type).lower()
                if kind not in found:
                    found.append(kind)
    return found


def find(body: str, headers: Mapping[str, str], known: Iterable[tuple[str, str]]) -> list[str]:
    """What leaks, by kind and place (`in the body`, `in header X`); never the value itself."""
    places = {"the body": body[:_MAX_SCAN]}
    places |= {f"header {name}": f"{name}: {value}" for name, value in headers.items()}
    known = list(known)
    out: list[str] = []

    def add(what: str, where: str) -> None:
        text = f"{what} in {where}"
        if text not in out:
            out.append(text)

    for where, text in places.items():
        for label, value in known:
            if value and value in text:
                add(label, where)
        for pattern, label in _SHAPES:
            if pattern.search(text):
                add(label, where)
        for kind in _token_formats(text.splitlines() or [text]):
            add(f"a credential ({kind})", where)
    return out
