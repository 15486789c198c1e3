"""Redaction of secrets in what a process was started with: its environment
(with --env) and its argv, before any output sees them.

Which names are secret
----------------------
A *name* is an environment variable's name, or a flag's name without its
leading dashes (`--db-password=X` has the name `db-password`). It is compared
case-insensitively, and it is secret when:

* it contains TOKEN, SECRET, PASSWORD, PASSWD, PASSPHRASE, CREDENTIAL or
  COOKIE anywhere (GITHUB_TOKEN, MY_API_TOKEN, DB_PASSWD, AWS_SECRET_ACCESS_KEY,
  GOOGLE_APPLICATION_CREDENTIALS); or
* one of its *words* (the runs of letters and digits between `_`, `-`, `.` and
  other punctuation) says KEY, AUTH, PASS or PWD in a way that names a secret:

  - KEY or KEYS ending a word: API_KEY, APIKEY, SSH_KEY, api-key, apiKey.
    Not at the start of a longer word, so KEYBOARD, KEYMAP, KEYRING and
    KEYTAB are not secrets;
  - AUTH starting or ending a word: AUTH_TOKEN, AUTHORIZATION, AUTHN,
    HTTP_AUTH, OAUTH. AUTHOR (GIT_AUTHOR_NAME, GIT_AUTHOR_EMAIL) and AUTHORITY
    are words of their own and are not secrets; AUTHORIZE/AUTHORISE are;
  - PASS ending a word (`--pass`, SMTP_PASS);
  - PWD ending a word (MYSQL_PWD, DB_PWD);

  or it matches one of the `--redact` patterns: regular expressions,
  searched (not anchored) case-insensitively in the name.

PWD and OLDPWD are the shell's working directories, never secrets: they are
never redacted, whatever the patterns. SSH_AUTH_SOCK is redacted (AUTH is one
of its words): a path, but one that grants the agent's keys to whoever can
reach it, and the rule does not guess which AUTH names are harmless.

What is redacted
----------------
Redacting replaces a value by `<redacted>` and keeps the text around it, so a
command line stays readable:

* an environment variable with a secret name: its value;
* in argv, an argument `--NAME=VALUE` or `-NAME=VALUE` (`-Ddb.password=X`,
  Java's properties, included), or `NAME=VALUE` with NAME an identifier (as
  `env API_TOKEN=X cmd` passes it), whose NAME is secret: VALUE;
* the argument after a flag `--NAME` (or `-NAME`, NAME of two characters or
  more) with a secret NAME and no `=`: `--password X` (not after a negation
  such as `--no-auth`, which takes no value);
* a header as curl's `-H` takes it, `NAME: VALUE` with a secret NAME
  (`Authorization: Bearer X`, `Cookie: a=b`): VALUE;
* inside any argument or environment value, the password of a URL's userinfo:
  `scheme://user:password@host/...` becomes `scheme://user:<redacted>@host/...`
  (DATABASE_URL=postgres://app:pw@db/app included);
* inside an argument holding a shell command line (the argument after `-c`
  or a cluster such as `-lc`, and any other argument with whitespace or `;`
  that no rule above took whole), the same `NAME=VALUE` and `--NAME VALUE`
  forms word by word, a quoted VALUE to its closing quote:
  `sh -c 'TOKEN=x ./deploy'` shows `sh -c 'TOKEN=<redacted> ./deploy'`.

`--env-allow NAME` keeps only the named variables (exact, case-sensitive
names, as the environment has them) and drops the rest; a kept variable is
still redacted when its name is secret. `--no-redact` turns redaction off (the
allow-list still selects).

Redacting never raises, whatever the bytes (not UTF-8, no `=`, empty, huge):
names and values are bytes and every rule is a bytes operation; the user's
patterns see a name as text with PEP 383 escapes (tracer/model/text.py).
Exec events are redacted in place; snapshot entries are copied when they
change. An exec whose arguments hold no hint of any rule (no keyword, no URL)
is passed after one search of its joined arguments, and an environment seen
before is redacted from a cache, so the cost is paid by the few that might
hold a secret. Measured on 100k synthetic execs in batches of 64 (a
2-CPU EPYC VM, runs vary by a third): 0.7 us an exec without environments
(1% with a secret), 7-10 us with a 17-variable environment holding a secret
(half of it replacing the frozen context), 0.02 us for an event that is not
an exec.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence
from typing import Any

from proctrace import pure_python
from proctrace.model.events import Event, ExecEvent
from proctrace.model.memo import remember
from proctrace.model.procsnap import ProcInfo
from proctrace.model.text import as_text

REDACTED = b"<redacted>"
_UNCHANGED: dict[bytes, bytes] = {}  # in the environment cache: nothing to redact

# Names that are never secrets, upper-cased: the working directories.
NEVER_SECRET = frozenset({b"PWD", b"OLDPWD"})

_SECRET_SUBSTRINGS = (b"TOKEN", b"SECRET", b"PASSWORD", b"PASSWD", b"PASSPHRASE", b"CREDENTIAL", b"COOKIE")
_WORDS = re.compile(rb"[^A-Z0-9]+")
_KEY_ENDINGS = (b"KEY", b"KEYS")
_WORD_ENDINGS = (*_KEY_ENDINGS, b"AUTH", b"PASS", b"PWD")

# Any argument that some rule could redact holds one of these, lower-cased
# (every secret name holds a keyword, every URL "://"): the fast path. Searched
# in lower-cased text, because an IGNORECASE pattern was 4x slower here.
HINT_WORDS = (b"token", b"secret", b"pass", b"cred", b"cookie", b"key", b"auth", b"pwd", b"://")
_HINT = re.compile(b"|".join(re.escape(word) for word in HINT_WORDS))


def argv_hint_python(argv: list[bytes]) -> bool:
    """Whether some argument of `argv` holds one of HINT_WORDS, case aside."""
    return _HINT.search(b"\0".join(argv).lower()) is not None


def _compiled_hint() -> Any:
    """_fastredact.hint, configured with HINT_WORDS: the same answer, ~10x
    faster (the search was most of a storm's redaction); None where it is not
    built, or with PROCTRACE_PURE_PYTHON=1."""
    if pure_python():
        return None
    try:
        from proctrace.model import _fastredact  # type: ignore[attr-defined]
    except ImportError:
        return None
    _fastredact.configure(HINT_WORDS)
    return _fastredact.hint


COMPILED_HINT = _compiled_hint()
argv_hint = COMPILED_HINT if COMPILED_HINT is not None else argv_hint_python

# Environments recur (a build's thousands of execs share a handful), so the
# redaction of each is remembered, for environments of at most this many
# variables and, for memory, in fewer entries than the other caches.
_ENV_CACHE_MAX = 128
_ENV_CACHE_VARS = 512

# `-NAME=VALUE`, `--NAME=VALUE`: a flag name has no spaces or slashes.
_FLAG_ASSIGN = re.compile(rb"(-{1,2})([A-Za-z0-9_][A-Za-z0-9_.-]*)=", re.DOTALL)
# `NAME=VALUE` with an identifier NAME, as env(1) and make take it.
_VAR_ASSIGN = re.compile(rb"([A-Za-z_][A-Za-z0-9_]*)=", re.DOTALL)
# `--NAME` alone: its value is the next argument.
_FLAG_ALONE = re.compile(rb"-{1,2}([A-Za-z0-9_][A-Za-z0-9_.-]+)")
# The flag after which an interpreter takes a command line: `sh -c`, `bash -lc`, `python3 -c`.
_COMMAND_FLAG = re.compile(rb"-[A-Za-z]*c[A-Za-z]*")
# `Authorization: Bearer X`: a header name, a colon, then the value.
_HEADER = re.compile(rb"([A-Za-z0-9_-]+):[ \t]*(?=\S)")
# A URL's authority, after "://" (the scheme is not needed to find it, and a
# pattern starting with it would rescan long runs of letters). It ends at the
# path: a password's unescaped '?' or '#', which people do write, stays in it.
_URL_AUTHORITY = re.compile(rb"://([^/\s]*)")
# Inside a shell command line, a word that assigns (`--token=X`, `TOKEN=X`) or
# a flag followed by its value (`--password X`); a word starts after
# whitespace, a shell operator or an opening quote or parenthesis.
_SHELL_WORD = re.compile(
    rb"(?:(?<=[\s;&|(`'\"])|^)"
    rb"(?:(-{0,2})([A-Za-z0-9_][A-Za-z0-9_.-]*)=|(-{1,2})([A-Za-z0-9_][A-Za-z0-9_.-]+)[ \t]+(?=[^\s-]))"
    rb"('[^']*'?|\"[^\"]*\"?|[^\s;&|)'\"]*)"
)


class RedactError(ValueError):
    """A `--redact` pattern that is not a regular expression."""


def _default_secret(upper: bytes) -> bool:
    """The built-in name rule (module docstring) on an upper-cased name."""
    for part in _SECRET_SUBSTRINGS:
        if part in upper:
            return True
    for word in _WORDS.split(upper):
        if word.endswith(_WORD_ENDINGS):
            return True
        # AUTH..., but AUTHOR and AUTHORITY are words of their own, while
        # AUTHORIZATION and AUTHORISE are about authorising.
        if word.startswith(b"AUTH") and (not word.startswith(b"AUTHOR") or word.startswith((b"AUTHORIZ", b"AUTHORIS"))):
            return True
    return False


class Redactor:
    """Applies the redaction rules of one session (module docstring).

    `enabled` False is --no-redact; `patterns` are the --redact regular
    expressions; `env_allow`, when not None, the only variables kept."""

    def __init__(self, enabled: bool = True, patterns: Sequence[str] = (), env_allow: Iterable[bytes] | None = None):
        self.enabled = enabled
        self.patterns = tuple(patterns)
        self.env_allow = None if env_allow is None else frozenset(env_allow)
        compiled = []
        for pattern in self.patterns:
            try:
                compiled.append(re.compile(pattern, re.IGNORECASE))
            except (re.error, RecursionError, OverflowError) as exc:
                raise RedactError(f"invalid --redact pattern {pattern!r}: {exc}") from None
        self._patterns = tuple(compiled)
        self._secret_names: dict[bytes, bool] = {}
        self._envs: dict[tuple[tuple[bytes, bytes], ...], dict[bytes, bytes]] = {}
        # Whether exec events need looking at at all.
        self.active = enabled or self.env_allow is not None

    # -- names --------------------------------------------------------------

    def is_secret_name(self, name: bytes) -> bool:
        """Whether a variable or flag name (without its dashes) is secret.
        Names recur in every exec (the same environment, the same flags), so
        the answer is remembered."""
        known = self._secret_names.get(name)
        if known is not None:
            return known
        upper = name.upper()
        secret = self.enabled and upper not in NEVER_SECRET
        if secret:
            secret = _default_secret(upper) or any(p.search(as_text(name)) for p in self._patterns)
        if len(name) > 256:
            return secret  # a hostile name is not worth remembering
        return remember(self._secret_names, name, secret)

    # -- values ---------------------------------------------------------------

    def env(self, env: dict[bytes, bytes]) -> dict[bytes, bytes]:
        """`env` with only the allowed variables and secret values replaced, in
        order; `env` itself when nothing changes. The dict returned may be
        shared by the events of equal environments: it is not to be changed."""
        if len(env) > _ENV_CACHE_VARS:
            return self._env(env)
        key = tuple(env.items())
        cached = self._envs.get(key)
        if cached is None:
            redacted = self._env(env)
            if len(self._envs) >= _ENV_CACHE_MAX:
                self._envs.clear()
            # An unchanged environment is remembered as such (not as the dict,
            # which would keep the first event's alive and be returned for others').
            cached = self._envs[key] = _UNCHANGED if redacted is env else redacted
        return env if cached is _UNCHANGED else cached

    def _env(self, env: dict[bytes, bytes]) -> dict[bytes, bytes]:
        allow = self.env_allow
        enabled = self.enabled
        out: dict[bytes, bytes] = {}
        changed = False
        for name, value in env.items():
            if allow is not None and name not in allow:
                changed = True
                continue
            if enabled:
                if self.is_secret_name(name):
                    if value != REDACTED:
                        value, changed = REDACTED, True
                elif b"://" in value:
                    redacted = redact_url_passwords(value)
                    if redacted is not value:
                        value, changed = redacted, True
            out[name] = value
        return out if changed else env

    def argv(self, argv: list[bytes]) -> list[bytes]:
        """`argv` with its secret values replaced; `argv` itself when nothing changes."""
        if not self.enabled or not argv:
            return argv
        # One search over all the arguments: most command lines hold no hint of
        # a secret (no keyword, no URL) and end here. With --redact patterns a
        # name need not hold a keyword, so every command line is looked at.
        if not self._patterns and not argv_hint(argv):
            return argv
        out: list[bytes] | None = None
        value_next = False
        command_next = False
        for i, arg in enumerate(argv):
            if value_next:
                value_next = False
                if arg != REDACTED:
                    out = out or list(argv)
                    out[i] = REDACTED
                continue
            if command_next:
                # `sh -c 'TOKEN=x ./deploy'`: a command line, whose words are
                # redacted one by one, not an assignment whose value is the rest.
                command_next = False
                redacted = self._command_line(arg)
            else:
                redacted, value_next = self._argument(arg)
                command_next = _COMMAND_FLAG.fullmatch(arg) is not None
            if redacted is not arg:
                out = out or list(argv)
                out[i] = redacted
        return argv if out is None else out

    def _argument(self, arg: bytes) -> tuple[bytes, bool]:
        """One argument redacted, and whether the next one is a secret value."""
        if arg.startswith(b"-"):
            m = _FLAG_ASSIGN.match(arg)
            if m is not None:
                if self.is_secret_name(m.group(2)):
                    return _replace_value(arg, m.end()), False
                # `--url=https://u:p@host`: the URL rule below.
            else:
                m = _FLAG_ALONE.fullmatch(arg)
                if m is not None:
                    name = m.group(1)
                    # A negation (`--no-auth`) takes no value.
                    takes_value = name[:3].lower() not in (b"no-", b"no_")
                    return arg, takes_value and self.is_secret_name(name)
        else:
            m = _VAR_ASSIGN.match(arg)
            if m is not None and self.is_secret_name(m.group(1)):
                return _replace_value(arg, m.end()), False
            m = _HEADER.match(arg)
            if m is not None and b"://" not in arg and self.is_secret_name(m.group(1)):
                return _replace_value(arg, m.end()), False
        return self._command_line(arg), False

    def _command_line(self, arg: bytes) -> bytes:
        """The URL passwords and, in a shell command line, the secret words of `arg`."""
        if b"://" in arg:
            arg = redact_url_passwords(arg)
        if b" " in arg or b"\n" in arg or b"\t" in arg or b";" in arg:
            arg = self._shell_words(arg)
        return arg

    def _shell_words(self, text: bytes) -> bytes:
        """The assignments and flag values inside a shell command line redacted."""

        def replace(m: re.Match[bytes]) -> bytes:
            name = m.group(2) if m.group(2) is not None else m.group(4)
            value = m.group(5)
            if not value or value == REDACTED or not self.is_secret_name(name):
                return m.group(0)
            if m.group(4) is not None and name[:3].lower() in (b"no-", b"no_"):
                return m.group(0)
            head = m.group(0)[: m.start(5) - m.start(0)]
            quote = value[:1] if value[:1] in (b"'", b'"') else b""
            closed = quote if len(value) > 1 and value.endswith(quote) and quote else b""
            return head + quote + REDACTED + closed

        return _SHELL_WORD.sub(replace, text)

    # -- records ----------------------------------------------------------------

    def redact_exec(self, ev: ExecEvent) -> None:
        """Redact `ev`'s argv and environment in place. In place, because the
        pipeline is the first to see an event and a copy of the event would
        cost more than the redaction (2.5 us here); so is its context's
        environment, when a value is redacted."""
        argv = ev.argv
        if argv:
            redacted = self.argv(argv)
            if redacted is not argv:
                ev.argv = redacted
        context = ev.context
        if context is not None and context.env is not None:
            env = self.env(context.env)
            if env is not context.env:
                context.env = env  # the event's own context (ProcessContext says why)

    def events(self, events: list[Event]) -> list[Event]:
        """Redact every exec of a batch (in place) and return it; other kinds of
        event hold nothing a process was started with."""
        if self.active:
            for ev in events:
                if type(ev) is ExecEvent:
                    self.redact_exec(ev)
        return events

    def proc_info(self, proc: ProcInfo) -> ProcInfo:
        """A process of the start snapshot with its argv (and environment, where
        it has one) redacted: a copy when anything changed."""
        if not self.active:
            return proc
        changes: dict[str, Any] = {}
        argv = self.argv(proc.argv)
        if argv is not proc.argv:
            changes["argv"] = argv
        # The snapshot's context (with its environment) arrives separately; a
        # ProcInfo without one has nothing more to redact.
        context = getattr(proc, "context", None)
        env = getattr(context, "env", None)
        if env is not None:
            redacted_env = self.env(env)
            if redacted_env is not env:
                changes["context"] = dataclasses.replace(context, env=redacted_env)  # type: ignore[type-var]
        return dataclasses.replace(proc, **changes) if changes else proc

    def snapshot(self, procs: list[ProcInfo]) -> list[ProcInfo]:
        return [self.proc_info(p) for p in procs] if self.active else procs

    def describe(self) -> dict[str, Any]:
        """What a recording's header says of the redaction in effect."""
        return {
            "argv": self.enabled,
            "env": self.enabled,
            "patterns": list(self.patterns),
            "env_allow": None if self.env_allow is None else sorted(as_text(n) for n in self.env_allow),
        }


def _replace_value(arg: bytes, start: int) -> bytes:
    """`arg` with everything from `start` on replaced (kept when already redacted or empty)."""
    if start >= len(arg) or arg[start:] == REDACTED:
        return arg
    return arg[:start] + REDACTED


def _url_password(m: re.Match[bytes]) -> bytes:
    authority = m.group(1)
    at = authority.rfind(b"@")  # a password may hold an unescaped '@'; the host does not
    if at < 0:
        return m.group(0)
    userinfo = authority[:at]
    colon = userinfo.find(b":")
    if colon < 0 or colon == len(userinfo) - 1 or userinfo[colon + 1 :] == REDACTED:
        return m.group(0)  # no password: `user@host`, `user:@host`
    start = m.start(1) - m.start(0)
    text = m.group(0)
    return text[: start + colon + 1] + REDACTED + text[start + at :]


def redact_url_passwords(text: bytes) -> bytes:
    """`text` with the password of every URL's userinfo redacted; `text`
    itself when it has none."""
    redacted = _URL_AUTHORITY.sub(_url_password, text)
    return text if redacted == text else redacted


def merge_descriptions(before: Any, now: dict[str, Any]) -> dict[str, Any]:
    """The redaction of a copy made by replaying a recording with `before`'s
    redaction (a header's field, None when the recording predates it, or
    anything a file held) through `now`'s: what was redacted once stays so."""
    if not isinstance(before, dict):
        return now
    patterns = list(now["patterns"])
    for pattern in before.get("patterns") or ():
        if isinstance(pattern, str) and pattern not in patterns:
            patterns.append(pattern)
    allow_before = before.get("env_allow")
    allow_now = now["env_allow"]
    if isinstance(allow_before, list):
        kept = [n for n in allow_before if isinstance(n, str)]
        allow = kept if allow_now is None else sorted(set(kept) & set(allow_now))
    else:
        allow = allow_now
    return {
        "argv": before.get("argv") is True or now["argv"],
        "env": before.get("env") is True or now["env"],
        "patterns": patterns,
        "env_allow": allow,
    }
