"""The redaction rules (tracer/model/redact.py): which names are secret, which
forms of argv and environment are redacted and how much text stays, the
allow-list, --no-redact and --redact, and that hostile input never raises."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from proctrace.model.context import ProcessContext
from proctrace.model.procsnap import ProcInfo
from proctrace.model.redact import REDACTED, RedactError, Redactor, merge_descriptions, redact_url_passwords

from tests.synthetic import SHELL_START, execve, fork

R = Redactor()


@pytest.mark.parametrize(
    "name",
    [
        b"GITHUB_TOKEN", b"MY_API_TOKEN", b"token", b"CLIENT_SECRET", b"PASSWORD", b"DB_PASSWD", b"PGPASSWORD",
        b"GPG_PASSPHRASE", b"GOOGLE_APPLICATION_CREDENTIALS", b"SESSION_COOKIE", b"API_KEY", b"APIKEY",
        b"AWS_SECRET_ACCESS_KEY", b"AWS_ACCESS_KEY_ID", b"SSH_KEY", b"SSH_KEYS", b"AUTH_TOKEN", b"AUTHORIZATION",
        b"HTTP_AUTH", b"OAUTH", b"AUTHN", b"api-key", b"apiKey", b"db-password", b"db.password", b"Ddb.password",
        b"SMTP_PASS", b"pass", b"MYSQL_PWD", b"private_key", b"AUTHORISE_URL",
    ],
)  # fmt: skip
def test_secret_names(name: bytes) -> None:
    assert R.is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    [
        b"PWD", b"OLDPWD", b"pwd", b"HOME", b"PATH", b"LANG", b"TERM", b"SHELL", b"USER", b"KEYBOARD",
        b"XKB_KEYMAP", b"KEYRING_DIR", b"KRB5_KEYTAB", b"GIT_AUTHOR_NAME", b"GIT_AUTHOR_EMAIL", b"XAUTHORITY",
        b"CERT_AUTHORITY", b"author", b"keyboard-layout", b"PASSAGE", b"", b"\xff\xfe\x00", b"=",
    ],
)  # fmt: skip
def test_names_that_are_not_secret(name: bytes) -> None:
    assert not R.is_secret_name(name)


def test_the_working_directories_are_never_redacted_whatever_the_patterns() -> None:
    redactor = Redactor(patterns=["pwd", "."])
    assert redactor.env({b"PWD": b"/src", b"OLDPWD": b"/"}) == {b"PWD": b"/src", b"OLDPWD": b"/"}
    assert redactor.is_secret_name(b"HOME")  # "." matches every other name


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            [b"app", b"--password=hunter2", b"--token=t0k", b"--api-key=k3y", b"--db-password=x", b"--user=bob"],
            [b"app", b"--password=<redacted>", b"--token=<redacted>", b"--api-key=<redacted>",
             b"--db-password=<redacted>", b"--user=bob"],
        ),
        ([b"mysql", b"--password", b"s3cret", b"-u", b"bob"], [b"mysql", b"--password", REDACTED, b"-u", b"bob"]),
        ([b"openssl", b"-pass", b"pass:x"], [b"openssl", b"-pass", REDACTED]),
        ([b"tool", b"--no-auth", b"file"], [b"tool", b"--no-auth", b"file"]),
        ([b"tool", b"--password"], [b"tool", b"--password"]),
        (
            [b"git", b"clone", b"https://bob:pa:ss@github.com/o/r.git"],
            [b"git", b"clone", b"https://bob:<redacted>@github.com/o/r.git"],
        ),
        ([b"curl", b"--url=https://u:p@h/x"], [b"curl", b"--url=https://u:<redacted>@h/x"]),
        ([b"ssh", b"ssh://git@host/x"], [b"ssh", b"ssh://git@host/x"]),
        ([b"env", b"GITHUB_TOKEN=ghp_x", b"HOME=/h", b"ls"], [b"env", b"GITHUB_TOKEN=<redacted>", b"HOME=/h", b"ls"]),
        ([b"curl", b"-H", b"Authorization: Bearer abc"], [b"curl", b"-H", b"Authorization: <redacted>"]),
        ([b"curl", b"-H", b"Accept: text/html"], [b"curl", b"-H", b"Accept: text/html"]),
        ([b"java", b"-Ddb.password=pw", b"-jar", b"a.jar"], [b"java", b"-Ddb.password=<redacted>", b"-jar", b"a.jar"]),
        ([b"--keyboard=us", b"--pwd=/src", b"--password="], [b"--keyboard=us", b"--pwd=/src", b"--password="]),
        (
            [b"sh", b"-c", b"curl --token=abc https://u:p@h/x; FOO_TOKEN='a b' ./x --password \"q w\" --no-auth y"],
            [b"sh", b"-c",
             b"curl --token=<redacted> https://u:<redacted>@h/x; FOO_TOKEN='<redacted>' ./x --password \"<redacted>\""
             b" --no-auth y"],
        ),
        ([b"gcc", b"-O2", b"-c", b"key.c"], [b"gcc", b"-O2", b"-c", b"key.c"]),
        ([b"sh", b"-c", b"TOKEN=x ./deploy --v"], [b"sh", b"-c", b"TOKEN=<redacted> ./deploy --v"]),
        ([b"bash", b"-lc", b"export API_KEY=k; run"], [b"bash", b"-lc", b"export API_KEY=<redacted>; run"]),
        # Not after -c: one assignment, whose value is the rest (env(1) took the quotes off).
        ([b"env", b"TOKEN=a b", b"run"], [b"env", b"TOKEN=<redacted>", b"run"]),
    ],
)  # fmt: skip
def test_argv_keeps_the_text_around_each_secret(argv: list[bytes], expected: list[bytes]) -> None:
    assert R.argv(argv) == expected


def test_argv_without_a_secret_is_the_same_list() -> None:
    for plain in ([b"make", b"-j8", b"all"], [b"cc", b"-c", b"keymap.c", b"--author=me"]):
        assert R.argv(plain) is plain


def test_the_url_rule_redacts_every_password_and_nothing_else() -> None:
    text = b"a=https://u:p1@h1/x b=ftp://v:p2@h2 c=https://w@h3 d=https://x:@h4"
    assert redact_url_passwords(text) == (
        b"a=https://u:<redacted>@h1/x b=ftp://v:<redacted>@h2 c=https://w@h3 d=https://x:@h4"
    )


def test_environment_values_are_redacted_by_name_and_url_in_order() -> None:
    env = {
        b"PWD": b"/src",
        b"MY_API_TOKEN": b"s3cret",
        b"DATABASE_URL": b"postgres://app:pw@db/app",
        b"HOME": b"/root",
        b"\xff\xfe": b"\xfe",
    }
    out = R.env(env)
    assert list(out.items()) == [
        (b"PWD", b"/src"),
        (b"MY_API_TOKEN", REDACTED),
        (b"DATABASE_URL", b"postgres://app:<redacted>@db/app"),
        (b"HOME", b"/root"),
        (b"\xff\xfe", b"\xfe"),
    ]
    assert env[b"MY_API_TOKEN"] == b"s3cret"  # the event's own dict is not changed
    plain = {b"HOME": b"/root"}
    assert R.env(plain) is plain and R.env(dict(plain)) == plain


def test_the_allow_list_keeps_only_its_names_and_still_redacts_them() -> None:
    redactor = Redactor(env_allow=[b"HOME", b"MY_API_TOKEN"])
    env = {b"PWD": b"/x", b"MY_API_TOKEN": b"s", b"HOME": b"/root", b"home": b"/other"}
    assert redactor.env(env) == {b"MY_API_TOKEN": REDACTED, b"HOME": b"/root"}
    # --no-redact does not undo the selection.
    assert Redactor(False, (), [b"HOME", b"MY_API_TOKEN"]).env(env) == {b"MY_API_TOKEN": b"s", b"HOME": b"/root"}


def test_no_redact_leaves_everything() -> None:
    redactor = Redactor(enabled=False)
    argv = [b"x", b"--password=a", b"https://u:p@h"]
    assert redactor.argv(argv) is argv
    env = {b"TOKEN": b"t"}
    assert redactor.env(env) is env
    assert not redactor.active


def test_patterns_are_searched_case_insensitively_in_names() -> None:
    redactor = Redactor(patterns=["^sess", "ticket$"])
    assert redactor.argv([b"x", b"--session=a", b"--SESSION-id=b", b"--obsession=c", b"--jira-TICKET=d"]) == [
        b"x", b"--session=<redacted>", b"--SESSION-id=<redacted>", b"--obsession=c", b"--jira-TICKET=<redacted>",
    ]  # fmt: skip
    assert redactor.env({b"SESSION_ID": b"1", b"SHELL": b"sh"}) == {b"SESSION_ID": REDACTED, b"SHELL": b"sh"}
    assert redactor.is_secret_name(b"GITHUB_TOKEN")  # the defaults still apply


@pytest.mark.parametrize("pattern", ["(", "[a-", "*x", "a{2,1}"])
def test_an_invalid_pattern_is_an_error_naming_it(pattern: str) -> None:
    with pytest.raises(RedactError, match="invalid --redact pattern"):
        Redactor(patterns=[pattern])


def test_an_exec_is_redacted_in_place_its_context_included() -> None:
    ev = execve(10, 200, 5, [b"deploy", b"--token=abc"])
    context = ProcessContext(cwd=b"/src", env={b"AWS_SECRET_ACCESS_KEY": b"k", b"LANG": b"C"}, env_truncated=True)
    ev.context = context
    untouched = fork(9, 200)
    batch = [untouched, ev]
    assert R.events(batch) is batch and batch[0] is untouched
    assert ev.argv == [b"deploy", b"--token=<redacted>"]
    # The event owns its context: redacted where it is, so no copy keeps the secret.
    assert ev.context is context
    assert context.env == {b"AWS_SECRET_ACCESS_KEY": REDACTED, b"LANG": b"C"}
    assert (ev.context.cwd, ev.context.env_truncated) == (b"/src", True)


def test_an_exec_with_nothing_to_redact_keeps_its_objects() -> None:
    ev = execve(10, 200, 5, [b"ls", b"-l"])
    ev.context = context = ProcessContext(cwd=b"/", env={b"HOME": b"/root"})
    argv = ev.argv
    R.events([ev])
    assert ev.argv is argv and ev.context is context


def test_equal_environments_of_different_execs_are_redacted_alike() -> None:
    redactor = Redactor()
    first = redactor.env({b"TOKEN": b"t", b"A": b"1"})
    second = redactor.env({b"TOKEN": b"t", b"A": b"1"})
    other = redactor.env({b"TOKEN": b"u", b"A": b"1"})
    assert first == second == other == {b"TOKEN": REDACTED, b"A": b"1"}


def test_a_snapshot_process_is_copied_only_when_redacted() -> None:
    secret = ProcInfo(300, 1, 0, b"vault", [b"vault", b"--token=abc"], SHELL_START)
    plain = ProcInfo(301, 1, 0, b"sh", [b"sh"], SHELL_START)
    out = R.snapshot([secret, plain])
    assert out[0] is not secret and out[0].argv == [b"vault", b"--token=<redacted>"]
    assert secret.argv == [b"vault", b"--token=abc"]
    assert out[1] is plain


def test_describe_says_what_is_redacted() -> None:
    assert Redactor().describe() == {"argv": True, "env": True, "patterns": [], "env_allow": None}
    assert Redactor(False, ["x"], [b"B", b"A"]).describe() == {
        "argv": False,
        "env": False,
        "patterns": ["x"],
        "env_allow": ["A", "B"],
    }


def test_a_copy_keeps_what_its_recording_redacted() -> None:
    now = Redactor(False).describe()
    before = {"argv": True, "env": True, "patterns": ["sess"], "env_allow": ["A", "B"]}
    assert merge_descriptions(before, now) == {"argv": True, "env": True, "patterns": ["sess"], "env_allow": ["A", "B"]}
    narrower = Redactor(True, ["x"], [b"B", b"C"]).describe()
    assert merge_descriptions(before, narrower) == {
        "argv": True,
        "env": True,
        "patterns": ["x", "sess"],
        "env_allow": ["B"],
    }
    assert merge_descriptions(None, now) == now
    assert merge_descriptions("garbage", now) == now
    assert merge_descriptions({"patterns": [1, "y"], "env_allow": "no"}, now)["patterns"] == ["y"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=80), max_size=12))
def test_hostile_argv_never_raises_and_redacting_again_changes_nothing(argv: list[bytes]) -> None:
    once = R.argv(argv)
    assert len(once) == len(argv)
    assert R.argv(once) == once


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.binary(max_size=40), st.binary(max_size=80), max_size=12))
def test_hostile_environments_never_raise(env: dict[bytes, bytes]) -> None:
    out = Redactor(patterns=["x.*y"]).env(env)
    assert list(out) == list(env)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet="abcdefgh0123456789 -_./=:@", max_size=40), max_size=8))
def test_argv_with_no_keyword_and_no_url_is_left_alone(words: list[str]) -> None:
    argv = [w.encode() for w in words if "://" not in w]
    assert R.argv(argv) == argv


@pytest.mark.parametrize(
    "arg",
    [
        b"a" * 200_000 + b"://" + b"b" * 200_000,
        b"--" + b"x" * 400_000 + b"=",
        b"x " * 200_000 + b"--password",
        b"://" * 100_000 + b"@",
        b"TOKEN=" + b"'" * 200_000,
    ],
)
def test_huge_arguments_are_redacted_in_linear_time(arg: bytes) -> None:
    started = time.perf_counter()
    R.argv([b"x", arg])
    R.env({b"V": arg, arg[:1000]: arg})
    assert time.perf_counter() - started < 2.0


# --- the first test of a command line, compiled (tracer/model/_fastredact.c) --------------


def compiled_hint():
    from proctrace.model import redact

    from tests.environment import requires

    requires(redact.COMPILED_HINT is not None, "the compiled redaction test (tracer/model/_fastredact.c)")
    return redact.COMPILED_HINT


def hinted_args() -> st.SearchStrategy[list[bytes]]:
    """Arguments of random bytes, some holding a hint word in random case, or a
    near miss (a word cut short, split over two arguments)."""
    from proctrace.model.redact import HINT_WORDS

    def cased(word: bytes, flips: list[bool]) -> bytes:
        return bytes(c ^ 0x20 if flip and chr(c).isalpha() else c for c, flip in zip(word, flips, strict=False))

    word = st.sampled_from(HINT_WORDS).flatmap(
        lambda w: st.sampled_from([w, w[:-1], w[1:]]).flatmap(
            lambda v: st.lists(st.booleans(), min_size=len(v), max_size=len(v)).map(lambda f: cased(v, f))
        )
    )
    piece = st.one_of(st.binary(max_size=12), word, st.sampled_from([b"\0", b"A", b"Z", b"@", b"[", b"\xc0", b"\xe0"]))
    arg = st.lists(piece, max_size=5).map(b"".join)
    return st.lists(arg, max_size=6)


@given(hinted_args())
@settings(max_examples=3000, deadline=None)
def test_the_compiled_hint_answers_as_the_python_one(argv: list[bytes]) -> None:
    from proctrace.model.redact import argv_hint_python

    assert compiled_hint()(argv) is argv_hint_python(argv)


def test_the_hint_finds_each_word_in_any_case_at_either_end_and_never_across_arguments() -> None:
    from proctrace.model.redact import HINT_WORDS, argv_hint_python

    hint = compiled_hint()
    for word in HINT_WORDS:
        for text in (word, word.upper(), b"x" + word.title(), word + b"x", b"a=" + word):
            assert hint([b"cmd", text]) and argv_hint_python([b"cmd", text]), text
        split = [word[:2], word[2:]]
        assert not hint(split) and not argv_hint_python(split), split
        assert not hint([word[:-1]]) and not argv_hint_python([word[:-1]])
    assert not hint([]) and not hint([b""])


def test_the_compiled_hint_refuses_what_is_not_a_list_of_bytes() -> None:
    hint = compiled_hint()
    for bad in ([b"a", "token"], (b"token",), b"token"):
        with pytest.raises(TypeError):
            hint(bad)


def test_the_compiled_hint_takes_lower_case_words_only() -> None:
    from proctrace.model import _fastredact  # type: ignore[attr-defined]
    from proctrace.model.redact import HINT_WORDS

    compiled_hint()
    try:
        for bad in ((b"Token",), (b"",), (b"x" * 33,), [b"token"], tuple(b"w%d" % i for i in range(33))):
            with pytest.raises(ValueError):
                _fastredact.configure(bad)
        _fastredact.configure((b"zz",))
        assert _fastredact.hint([b"aZz"]) and not _fastredact.hint([b"token"])
    finally:
        _fastredact.configure(HINT_WORDS)


def test_pure_python_keeps_the_python_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    from proctrace import PURE_PYTHON_ENV
    from proctrace.model import redact

    monkeypatch.setenv(PURE_PYTHON_ENV, "1")
    assert redact._compiled_hint() is None
    monkeypatch.delenv(PURE_PYTHON_ENV)
    compiled_hint()
    assert redact._compiled_hint() is redact.COMPILED_HINT


@pytest.mark.parametrize("which", ["compiled", "python"])
def test_the_redactor_redacts_the_same_with_either_hint(which: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from proctrace.model import redact

    if which == "compiled":
        compiled_hint()
    else:
        monkeypatch.setattr(redact, "argv_hint", redact.argv_hint_python)
    r = Redactor()
    assert r.argv([b"curl", b"-H", b"Authorization: Bearer abc"]) == [b"curl", b"-H", b"Authorization: " + REDACTED]
    assert r.argv([b"mysql", b"--password", b"hunter2"]) == [b"mysql", b"--password", REDACTED]
    plain = [b"make", b"-j8", b"all"]
    assert r.argv(plain) is plain
