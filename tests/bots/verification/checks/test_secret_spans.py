"""Secrets found inside, across and beside each other are removed whole: nothing of a key or a
password is left after ``[secret removed]``, however the places where they were found overlap."""

from __future__ import annotations

import pytest

from bots.verification.base import VerdictAction
from bots.verification.checks.secrets import PLACEHOLDER, Secret, SecretsCheck, redact

# Fake credentials, assembled here so no complete token sits in the source.
ALNUM = "aB3dE5fG7hJ9kL2mN4pQ6rS8tU1vW0xY"
KEY_LINES = [(ALNUM * 3)[i : i + 64] for i in range(0, 24, 8)]
KEY_BODY = "\n".join(KEY_LINES)
GITHUB = "ghp_" + (ALNUM * 2)[:36]


@pytest.fixture(scope="module")
def check() -> SecretsCheck:
    return SecretsCheck()


def assert_no_key_material(text: str) -> None:
    for line in KEY_LINES:
        assert line[:16] not in text, f"key material left in {text!r}"


@pytest.mark.parametrize(
    "inside",
    [
        "password=Hunter2Secret!",
        "Proc-Type: 4,ENCRYPTED\npassword: Tr0ub4dor&3",
        "passphrase = c0ff33-Br3ak#42",
        "api_key=9f8e7d6c5b4a39281706f5e4d3c2b1a0",
        f"token {GITHUB}",
    ],
)
@pytest.mark.parametrize("header", ["RSA PRIVATE KEY", "OPENSSH PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY"])
def test_a_cut_off_key_block_with_a_credential_inside_goes_whole(check, header, inside):
    """The block runs to the end of the message; a credential inside it ends earlier."""
    text = f"Here is the deploy key:\n-----BEGIN {header}-----\n{KEY_LINES[0]}\n{inside}\n{KEY_BODY}\n"
    result = check.evaluate(text)
    assert result.action is VerdictAction.REWRITE
    assert result.text == f"Here is the deploy key:\n{PLACEHOLDER}"
    assert_no_key_material(result.text)


def test_a_credential_right_after_the_header_of_a_cut_off_block(check):
    text = f"-----BEGIN RSA PRIVATE KEY-----password=Hunter2Secret!\n{KEY_BODY}"
    assert check.evaluate(text).text == PLACEHOLDER


def test_a_whole_key_block_with_a_credential_inside_goes_and_the_rest_stays(check):
    block = (f"-----BEGIN RSA PRIVATE KEY-----\n{KEY_LINES[0]}\npassword=Hunter2Secret!\n{KEY_BODY}\n"
             "-----END RSA PRIVATE KEY-----")
    result = check.evaluate(f"key:\n{block}\nand the wiki password: Summer2024! too")
    assert result.text == f"key:\n{PLACEHOLDER}\nand the wiki password: {PLACEHOLDER} too"
    assert_no_key_material(result.text)


def test_a_cut_off_putty_key_with_a_credential_inside_goes_whole(check):
    text = (f"my key: PuTTY-User-Key-File-3: ssh-rsa\nEncryption: none\npassword=Hunter2Secret!\n"
            f"Public-Lines: 6\n{KEY_BODY}")
    result = check.evaluate(text)
    assert result.text == f"my key: {PLACEHOLDER}"
    assert_no_key_material(result.text)


def test_a_key_in_an_unfamiliar_frame_with_a_credential_inside_goes_from_its_header_on(check):
    text = f"key:\n---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----\npassword=Hunter2Secret!\n{KEY_BODY}"
    result = check.evaluate(text)
    assert result.text == f"key:\n---- {PLACEHOLDER}"
    assert_no_key_material(result.text)


def test_a_token_inside_a_longer_password_goes_with_all_of_the_password(check):
    """The password rule finds the whole value; the token rule finds a part ending before it."""
    result = check.evaluate(f"password: Xk9#-{GITHUB}!tail and more")
    assert result.text == f"password: {PLACEHOLDER} and more"


def test_secrets_found_twice_are_removed_once(check):
    # The JWT plugin and the bearer rule find the same token.
    jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJzdmMifQ." + ALNUM
    assert check.evaluate(f"Authorization: Bearer {jwt} ok").text == f"Authorization: Bearer {PLACEHOLDER} ok"


TEXT = "0123456789abcdefghijklmnopqrstuvwxyz"


@pytest.mark.parametrize(
    ("spans", "expected"),
    [
        # nested: the inner ends before the outer, in either order of finding
        ([(2, 30), (5, 10)], f"01{PLACEHOLDER}uvwxyz"),
        ([(5, 10), (2, 30)], f"01{PLACEHOLDER}uvwxyz"),
        # three deep, and a nested one starting where the outer does
        ([(2, 30), (4, 20), (6, 8)], f"01{PLACEHOLDER}uvwxyz"),
        ([(2, 30), (2, 5)], f"01{PLACEHOLDER}uvwxyz"),
        # overlapping: the second starts inside the first and ends after it
        ([(2, 10), (8, 20)], f"01{PLACEHOLDER}klmnopqrstuvwxyz"),
        ([(8, 20), (2, 10)], f"01{PLACEHOLDER}klmnopqrstuvwxyz"),
        # a chain: each overlaps the next, the first does not reach the last
        ([(2, 6), (5, 9), (8, 12)], f"01{PLACEHOLDER}cdefghijklmnopqrstuvwxyz"),
        # a long one, then a short one inside it, then one overlapping only the long one's end
        ([(0, 20), (3, 5), (18, 25)], f"{PLACEHOLDER}pqrstuvwxyz"),
        # touching: one placeholder; apart: two
        ([(2, 5), (5, 8)], f"01{PLACEHOLDER}89abcdefghijklmnopqrstuvwxyz"),
        ([(2, 5), (6, 8)], f"01{PLACEHOLDER}5{PLACEHOLDER}89abcdefghijklmnopqrstuvwxyz"),
        # to the end of the text, with another inside
        ([(30, 36), (31, 33)], f"0123456789abcdefghijklmnopqrst{PLACEHOLDER}"),
        # empty spans remove nothing
        ([(4, 4)], TEXT),
        ([], TEXT),
    ],
)
def test_overlapping_spans_become_one_placeholder_covering_them_all(spans, expected):
    secrets = [Secret("test", start, end) for start, end in spans]
    assert redact(TEXT, secrets) == expected


def test_a_placeholder_of_ones_own_is_used(check):
    assert redact(TEXT, [Secret("test", 0, 10)], "<gone>") == "<gone>abcdefghijklmnopqrstuvwxyz"


# -- keys written in pieces: wrapped at a line's end, or broken by spaces ------------------------

JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9", "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ",
       "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c")
#: The pieces of a GitHub token each read as key material in their own way: letters with digits,
#: lower case with digits, mixed case without digits, one capital after the first letter.
GITHUB_PIECES = ("ghp_AbCd1234", "9f8e7d6c5b4a", "AbCdEfGhIjKl", "qWertyuiopas")


@pytest.mark.parametrize(
    ("text", "posted"),
    [
        (" ".join(GITHUB_PIECES) + " is mine", f"{PLACEHOLDER} is mine"),
        ("token " + "\n".join(GITHUB_PIECES) + "\nthanks", f"token {PLACEHOLDER}\nthanks"),
        # Two pieces are enough; a number or a word after the key is not part of it.
        ("key sk-proj-AbCd1234EfGh5678\nIjKl9012MnOp3456QrSt 2024 was fine",
         f"key {PLACEHOLDER} 2024 was fine"),
        # Wrapped after one of its own dashes, underscores or dots.
        ("key sk-proj-\nAbCd1234EfGh5678IjKl9012MnOp3456QrSt7890", f"key {PLACEHOLDER}"),
        ("use sk-ant-api03-\nAbCd1234EfGh5678IjKl9012MnOp3456QrSt7890 please", f"use {PLACEHOLDER} please"),
        ("key sk-\nAbCd1234EfGh5678IjKl9012MnOp3456QrSt7890", f"key {PLACEHOLDER}"),
        ("stripe sk_live_\nAbCd1234EfGh5678IjKl9012", f"stripe {PLACEHOLDER}"),
        ("hf_\nAbCd1234EfGh5678IjKl9012MnOp3456 works", f"{PLACEHOLDER} works"),
        (f"jwt {JWT[0]}.\n{JWT[1]}.\n{JWT[2]}", f"jwt {PLACEHOLDER}"),
        # Found whole on its first line, it goes on over a line that starts with one of its dashes.
        ("key sk-proj-AbCd1234EfGh5678IjKl9012MnOp3456\n-Qwertyuiop done", f"key {PLACEHOLDER} done"),
    ],
)
def test_a_key_written_in_pieces_goes_with_all_its_pieces(check, text, posted):
    result = check.evaluate(text)
    assert result.text == posted


def test_a_key_found_only_in_pieces_is_named_so(check):
    result = check.evaluate(" ".join(GITHUB_PIECES))
    assert (result.text, result.reason) == (PLACEHOLDER, "secrets: Key split into pieces removed")


def test_ordinary_words_after_a_key_prefix_are_no_key(check):
    for text in ("Use sk-learn. Then we go.", "We ship sk-learn-\ncompat notes tomorrow.", "ghp_ is GitHub's prefix"):
        assert check.evaluate(text).action is VerdictAction.PASS, text


def test_a_key_in_pieces_after_a_token_is_found_too(check):
    """A JWT holds a second key prefix (``eyJ``) inside itself; the key after it is still looked for."""
    text = f"session {'.'.join(JWT)} and key " + " ".join(GITHUB_PIECES)
    assert check.evaluate(text).text == f"session {PLACEHOLDER} and key {PLACEHOLDER}"


def test_a_key_goes_to_the_end_of_its_token_but_not_the_full_stop(check):
    """A Google key is 39 characters; one written with more goes to its last character."""
    key = "AIzaSy" + ALNUM[:33] + "Zq"
    assert check.evaluate(f"my key {key}. ok").text == f"my key {PLACEHOLDER}. ok"


def test_a_second_key_after_a_whole_key_block_goes_from_its_header_on(check):
    block = f"-----BEGIN RSA PRIVATE KEY-----\n{KEY_BODY}\n-----END RSA PRIVATE KEY-----"
    text = f"old:\n{block}\nnew:\n---- BEGIN RSA PRIVATE KEY ----\n{KEY_BODY}"
    result = check.evaluate(text)
    assert result.text == f"old:\n{PLACEHOLDER}\nnew:\n---- {PLACEHOLDER}"
    assert_no_key_material(result.text)
