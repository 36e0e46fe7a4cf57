"""The toxicity check: obfuscation undone, ordinary chat left alone, threats and hate blocked."""

from __future__ import annotations

import time

import pytest

from bots.verification.base import VerdictAction, VerificationContext
from bots.verification.checks.normalize import normalize, views
from bots.verification.checks.toxicity import (
    ToxicityCheck,
    base_lexicon,
    maintained_english_words,
)
from config.verification import ToxicitySettings, VerificationPolicy


@pytest.fixture(scope="module")
def check() -> ToxicityCheck:
    return ToxicityCheck(settings=ToxicitySettings())


def action(check: ToxicityCheck, text: str) -> str:
    return check.evaluate(text).action.value


# -- normalisation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("f u c k this build", "fuck this build"),
        ("f.u.c.k this build", "fuck this build"),
        ("f-u-c-k-i-n-g pipeline", "fucking pipeline"),
        ("k.i.l.l y.o.u.r.s.e.l.f", "killyourself"),
        ("y0u 4re a w0rthl3ss m0r0n", "you are a worthless moron"),
        ("$hit and a$$ and @ss", "shit and ass and ass"),
        ("b!tch", "bitch"),
        ("You are a wοrthless mοrοn", "you are a worthless moron"),  # Greek omicrons
        ("you're a ｗｏｒｔｈｌｅｓｓ idiot", "you're a worthless idiot"),  # fullwidth
        ("wor\u200bth\u200dless id\ufeffiot", "worthless idiot"),  # zero-width
        ("Scheiße CABRÓN łódź", "scheisse cabron lodz"),
        ("you\u2019re", "you're"),
    ],
)
def test_normalisation_undoes_obfuscation(text, expected):
    assert normalize(text) == expected


def test_long_runs_of_a_letter_are_shortened_in_extra_views():
    texts = [v.text for v in views("fuuuuuck, asssssshole")]
    assert "fuck, ashole" in texts and "fuuck, asshole" in texts


def test_numbers_and_prices_are_not_read_as_leetspeak():
    assert normalize("Invoice 455 for $45, port 8080, wow!") == "invoice 455 for $45, port 8080, wow!"


def test_a_view_maps_back_to_the_original_characters():
    text = "go f.u.c.k yourself"
    view = views(text)[0]
    start = view.text.index("fuck")
    begin, end = view.span(start, start + 4)
    assert text[begin:end] == "f.u.c.k"


# -- ordinary team chat passes -----------------------------------------------------------------------

BENIGN = [
    "this bug is killing me",
    "let's kill the old service",
    "kill the process on port 8080",
    "Run `kill -9 $(pgrep -f celery)` if the worker hangs.",
    "The Scunthorpe office confirmed the visit.",
    "Please assess the class assignment.",
    "The analysis is in the appendix.",
    "Dick Smith joins us as Head of Partnerships.",
    "Thanks Dick, the Cockburn Street numbers look solid.",
    "shoot me an email when you're back",
    "I'll shoot you the slides tonight.",
    "this pitch is sick",
    "You killed it in the demo!",
    "You're a lifesaver, thanks!",
    "damn, the build failed again",
    "what the hell happened to staging?",
    "crap, I forgot the standup",
    "Sorry, I sound like an idiot explaining this.",
    "You'll shoot yourself in the foot with that config.",
    "Don't beat yourself up about the outage.",
    "I'd kill for a long weekend.",
    "We'll destroy the competition with this launch.",
    "Shut up, that's amazing news!",
    "I hope you get well soon!",
    "Black Friday traffic will hammer checkout.",
    "Women in tech meetup on Thursday, everyone welcome.",
    "The fire retardant coating passed inspection.",
    "Shiitake risotto and a cocktail at the offsite.",
    "Hay que matar el proceso antes de migrar.",
    "Voy a coger el tren de las ocho.",
    "Con el nuevo índice la consulta tarda 80 ms.",
    "El coche negro del director está en el garaje.",
    "Vou comer algo e já volto, a cerveja da festa foi ótima.",
    "Esse bug está me matando.",
    "Die Analyse ist fertig, bitte morgen prüfen.",
    "Das Kind von Anna hat heute Geburtstag.",
    "Il faut tuer le processus. Je bosse sur le rapport ce soir.",
    "Le cul-de-sac derrière le bureau est fermé.",
    "Kurczak z ryżem był dobry, jajko też.",
    "Version 2.3.1 costs $1,299.99; order 100-4471-22.",
    "Their only chink in the armour is support.",
    "The kitchen is spick and span after the party.",
    "Team dinner at the honky-tonk bar?",
    "She graduated summa cum laude.",
    "Bit of a cock-up with the invoices.",
    "A bastardized version of the spec got shipped.",
    "¿Hacemos una porra para el partido?",
]


@pytest.mark.parametrize("text", BENIGN)
def test_ordinary_chat_passes(check, text):
    result = check.evaluate(text)
    assert result.action is VerdictAction.PASS, result.reason


# -- what is caught ------------------------------------------------------------------------------------

BLOCKED = {
    "threat": [
        "I will hurt you if you touch my code again.",
        "Keep talking and I'll break your legs.",
        "I know where you live. Watch your back.",
        "i'm gonna k1ll you, seriously",
        "I w i l l h u r t y o u",
        "I'll shoot you if you push to main again",
        "Someone should put a bullet in your head.",
        "I hope you die in a car crash.",
        "Te voy a matar si vuelves a romper el build.",
        "Eu vou te matar.",
        "Ich bring dich um.",
        "Je vais te tuer.",
        "Zabiję cię.",
    ],
    "self-harm": [
        "kill yourself",
        "just kys",
        "k.i.l.l y.o.u.r.s.e.l.f",
        "k1ll y0urs3lf loser",
        "Go hang yourself, nobody would miss you.",
        "Do everyone a favour and drink bleach.",
    ],
    "harassment": [
        "You are worthless and everyone knows it.",
        "You're a useless piece of shit.",
        "Shut up, you stupid idiot.",
        "Nobody likes you.",
        "Go f u c k yourself, Brian.",
        "y0u 4re a w0rthl3ss m0r0n",
        "you're a ｗｏｒｔｈｌｅｓｓ idiot",
        "you are a wor\u200bthless id\u200biot",
        "Your presentation was garbage, just like you.",
        "Are you brain dead?",
        "what a stupid cunt",
        "Eres un idiota inútil.",
        "Você é um idiota completo.",
        "Du bist so ein Vollidiot.",
        "Ferme ta gueule, connard.",
        "Spierdalaj, ty debilu.",
    ],
    "hate": [
        "All immigrants are vermin.",
        "Women are too stupid to write code.",
        "We don't hire n1ggers here.",
        "Get that f@ggot off the project.",
        "Jews control the banks.",
        "Muslims should be deported.",
        "Hitler was right.",
    ],
}


@pytest.mark.parametrize(("category", "text"), [(c, t) for c, texts in BLOCKED.items() for t in texts])
def test_threats_harassment_hate_and_self_harm_are_blocked(check, category, text):
    result = check.evaluate(text)
    assert result.action is VerdictAction.BLOCK, (text, result.reason)
    assert result.score >= 0.85 and result.reason.startswith("toxicity:")


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("This fucking deploy is broken again.", "This f****** deploy is broken again."),
        ("f.u.c.k this build", "f****** this build"),
        ("fuuuuuck, the database is down", "f*******, the database is down"),
        ("holy sh1t the numbers", "holy s*** the numbers"),
        ("$hit, wrong table", "$***, wrong table"),
        ("What a shitshow.", "What a s*******."),
        ("F*CK this", "F*** this"),
        ("Kurwa, znowu padł serwer.", "K****, znowu padł serwer."),
        ("Scheiße, der Server ist down.", "S******, der Server ist down."),
        ("Puta madre, se cayó.", "P*** *****, se cayó."),
    ],
)
def test_untargeted_profanity_is_masked_and_posted(check, text, masked):
    result = check.evaluate(text)
    assert result.action is VerdictAction.REWRITE, result.reason
    assert result.text == masked


def test_profanity_is_held_when_masking_is_off():
    check = ToxicityCheck(settings=ToxicitySettings(mask_profanity=False))
    result = check.evaluate("This fucking deploy is broken again.")
    assert result.action is VerdictAction.HOLD and result.text is None


@pytest.mark.parametrize("text", ["Send me nudes after work ;)", "He got promoted for a blowjob."])
def test_sexual_content_is_held(check, text):
    assert action(check, text) == "hold"


def test_a_slur_that_is_also_an_ordinary_word_is_held_not_blocked(check):
    assert action(check, "popping out for a fag, back in 5") == "hold"
    assert action(check, "Those chinks copied our product.") == "block"


async def test_run_is_the_async_entry_point(check):
    result = await check.run("You are worthless.", VerificationContext())
    assert result.check == "toxicity" and result.action is VerdictAction.BLOCK


# -- settings ----------------------------------------------------------------------------------------


def test_words_can_be_allowed_added_and_blocked():
    check = ToxicityCheck(
        settings=ToxicitySettings(allow_words=("bollocks",), extra_words=("frak",), block_words=("grimblewort",))
    )
    assert action(check, "Bollocks, the build broke.") == "pass"
    assert check.evaluate("frak this build").text == "f*** this build"
    assert action(check, "you grimblewort") == "block"


def test_thresholds_decide_between_hold_and_block():
    lenient = ToxicityCheck(settings=ToxicitySettings(block_at=0.95))
    assert action(lenient, "You are worthless.") == "hold"  # harassment scores 0.9
    assert action(lenient, "I will hurt you.") == "block"  # threats score 1.0


def test_settings_come_from_the_verification_policy():
    policy = VerificationPolicy.model_validate({"toxicity": {"hold_at": 0.3, "block_at": 0.8, "allow_words": ["frak"]}})
    check = ToxicityCheck(policy)
    assert (check.settings.hold_at, check.settings.block_at, check.settings.allow_words) == (0.3, 0.8, ["frak"])
    assert action(check, "frak this deploy") == "pass"
    assert ToxicityCheck().settings == VerificationPolicy().toxicity


# -- the optional classifier ----------------------------------------------------------------------


def test_the_classifier_counts_only_for_messages_aimed_at_someone_and_never_blocks_alone():
    seen: list[str] = []

    def always_offensive(text: str) -> float:
        seen.append(text)
        return 0.99

    check = ToxicityCheck(settings=ToxicitySettings(), classifier=always_offensive)
    assert action(check, "the build failed again") == "pass"  # addresses no one: not asked
    assert seen == []
    result = check.evaluate("you absolute walnut")
    assert result.action is VerdictAction.HOLD and "classifier rates this message 0.99" in result.reason
    assert action(check, "I will hurt you") == "block"  # the rules still block


def test_the_shipped_classifier_matches_its_package():
    profanity_check = pytest.importorskip("profanity_check")
    from bots.verification.checks.profanity_model import shared_model

    model = shared_model()
    assert model is not None
    texts = ["you stupid idiot", "the quarterly analysis is ready", "damn, the build failed", "kill the process"]
    for text, expected in zip(texts, profanity_check.predict_prob(texts), strict=True):
        assert model.probability(text) == pytest.approx(expected, abs=1e-9)


# -- the word list and speed ---------------------------------------------------------------------------


def test_the_maintained_list_is_installed_and_its_ordinary_words_are_allowed():
    words = maintained_english_words()
    assert len(words) > 300  # glin-profanity's English list
    entries = base_lexicon().entries
    for ordinary in ("suck", "butt", "hoe", "escort", "domination", "sex", "tied up", "xxx"):
        assert ordinary not in entries
    assert entries["cunt"] == "profanity" and entries["kike"] == "hate" and entries["blowjob"] == "sexual"


def test_a_message_is_checked_in_well_under_a_millisecond_on_average(check):
    messages = BENIGN + [t for texts in BLOCKED.values() for t in texts]
    check.evaluate("warm up")
    started = time.perf_counter()
    for _ in range(5):
        for text in messages:
            check.evaluate(text)
    mean_ms = (time.perf_counter() - started) * 1000 / (5 * len(messages))
    assert mean_ms < 2.0  # about 0.3 ms here; the bound leaves room for slow machines


# -- wishing death or harm ---------------------------------------------------------------------------

HARM_WISHES = [
    "I hope you die",
    "hope u die in a fire",
    "I hope your kids get cancer",
    "wish your mother was dead",
    "may you rot",
    "May you rot in hell.",
    "I really hope you get hit by a bus tomorrow.",
    "I hope you and your family burn alive",
    "I hope you'll die alone",
    "hoping your dad gets cancer",
    "I wish you had never been born",
    "I'd love to see you dead",
    "I can't wait for you to die",
    "wishing you a slow painful death",
    "I wish death upon you and your kids",
    "Go rot in hell, Brian.",
    "I pray your family dies",
    "I hope your wife gets run over by a truck",
    "i hope ur mum gets cancer",
    "I h o p e y o u d i e",
    "Ojalá te mueras.",
    "Ojalá tus hijos tengan cáncer.",
    "Ojalá se muera tu madre.",
    "Espero que te pudras en el infierno.",
    "Tomara que você morra.",
    "Tomara que sua mãe morra.",
    "Espero que seus filhos tenham câncer.",
    "Ich hoffe, du stirbst.",
    "Hoffentlich kriegen deine Kinder Krebs.",
    "Ich wünsche dir den Tod.",
    "Ich wünschte, du wärst tot.",
    "J'espère que tu vas crever.",
    "Je te souhaite de mourir.",
    "J'espère que tes enfants auront le cancer.",
    "Que ta mère crève.",
    "Obyś zdechł.",
    "Mam nadzieję, że umrzesz.",
    "Oby twoja matka umarła.",
    "Życzę ci śmierci.",
]

WISH_LOOK_ALIKES = [
    "I hope you get well soon!",
    "I'd die for a coffee",
    "this bug is killing me",
    "my battery died",
    "I hope you die laughing at this meme",
    "I hope your kids enjoy the cake",
    "I wish my mother was here",
    "I hope your mum's cancer treatment goes well",
    "I hope you burn through the backlog today",
    "May you have a great weekend",
    "I hope your kids are dead tired after the party lol",
    "That legacy code can rot in hell.",
    "I hope you suffer less from jet lag this time",
    "I hope you didn't die of boredom in that meeting",
    "I hope the server dies so we finally replace it",
    "I want you to die on this hill with me lol",
    "Ojalá te mejores pronto.",
    "Que te mueras de risa con este video.",
    "Espero que você não sofra com o calor.",
    "Morri de rir com isso.",
    "Hoffentlich stirbt der alte Server bald.",
    "Ich hoffe, du leidest nicht zu sehr.",
    "Je suis crevé.",
    "J'espère que ta mère va mieux.",
    "Obyś wyzdrowiał.",
    "Padł mi telefon.",
    "I studied hard for the exam.",  # "udie" inside a word is no spaced-out "u die"
    "The audience loved it.",
]


def test_wishing_death_or_harm_on_someone_or_their_family_is_blocked_in_every_language(check):
    for text in HARM_WISHES:
        result = check.evaluate(text)
        assert result.action is VerdictAction.BLOCK, (text, result.reason)
        assert result.reason.startswith("toxicity: harm-wish"), result.reason
    for text in WISH_LOOK_ALIKES:
        result = check.evaluate(text)
        assert result.action is VerdictAction.PASS, (text, result.reason)


def test_a_wish_about_someone_not_addressed_is_held(check):
    for text in ("I hope he dies.", "I hope her kids get cancer"):
        assert action(check, text) == "hold", text
    assert action(check, "I hope he gets well soon.") == "pass"


SPACED_OUT = [
    "y o u  a r e  a n  i d i o t",
    "you are a n i d i o t",
    "you're a m o r o n",
    "I will k i l l  y o u",
    "n o b o d y  l i k e s  y o u",
    "i hope y o u  d i e",
    "s h u t  u p  y o u  s t u p i d  i d i o t",
    "a l l  i m m i g r a n t s  a r e  v e r m i n",
    "E r e s  u n  i d i o t a",
    "d u  b i s t  e i n  I d i o t",
    "t e  v o y  a  m a t a r",
]


def test_letters_spaced_out_are_read_as_the_words_they_spell(check):
    for text in SPACED_OUT:
        result = check.evaluate(text)
        assert result.action is VerdictAction.BLOCK, (text, result.reason)
    for text in ("The K P I s look fine, U S A numbers too.", "I work at I B M, on the A P I team.",
                 "shiitake m u s h r o o m s for the offsite", "a s s e t s are in the D A M"):
        assert check.evaluate(text).action is VerdictAction.PASS, text
    assert check.evaluate("f.u.c.k this build").text == "f****** this build"  # only the word is masked
