"""What every adapter does, the same way on every platform (``adapters/base.py``): people's words and
commands come in as events; personas post under their own names, the bot under its own; long posts
are split with the name on every piece; private words reach one person; files, typing, status lines,
threads, history and people's current roles work as the platform allows; ``disconnect`` ends ``listen``.

Each test runs against the console, the in-memory platform, Discord and Slack (and, where posting
is concerned, Discord without webhooks and Slack without ``chat:write.customize``, where personas
post through the bot).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from adapters.base import HISTORY_LOOKED_MAX, AdapterError, CommandInvocation, Identity, IncomingMessage
from tests.adapters.platforms import PLATFORMS, THROUGH_THE_BOT, Chat, Setup, on

PRIYA = Identity(name="Priya Nair", tag="demo model")
HENRIK = Identity(name="Henrik Lindqvist", tag="demo model")
CONSOLE, MEMORY, DISCORD, SLACK = PLATFORMS
#: The platforms that show who posted a message apart from its words.
SHOWING_POSTERS = (MEMORY, DISCORD, SLACK, *THROUGH_THE_BOT)


def persona_posts(chat: Chat, thread: str | None = None):
    return [s for s in chat.shown(thread) if not s.by_bot]


# -- what comes in ------------------------------------------------------------------------------


async def test_what_someone_writes_is_heard_as_their_message_in_the_channel(chat: Chat) -> None:
    await chat.say("Morning all, how is the release looking?")
    event = await chat.next_event()
    assert isinstance(event, IncomingMessage)
    assert event.text == "Morning all, how is the release looking?"
    assert event.channel.key == chat.channel.key and event.channel.thread is None
    assert event.user.id == chat.person.id and not event.user.is_bot
    assert event.message_id


async def test_a_command_comes_in_with_the_words_after_the_command_and_its_answer_is_for_everyone(chat: Chat) -> None:
    await chat.run_command("status")
    invocation = await chat.next_event()
    assert isinstance(invocation, CommandInvocation)
    assert invocation.text == "status"
    assert invocation.channel.key == chat.channel.key and invocation.user.id == chat.person.id

    await chat.adapter.reply(invocation, "No world in this channel yet.")
    assert [s.text for s in chat.shown() if s.by_bot] == ["No world in this channel yet."]
    assert chat.private_to(chat.person) == []


async def test_the_bots_own_posts_are_never_heard_as_someone_speaking(chat: Chat) -> None:
    await chat.adapter.post(chat.channel, PRIYA, "I would ship on Friday.")
    await chat.adapter.announce(chat.channel, "The world is paused.")
    await chat.say("Anyone against?")
    assert (await chat.next_event()).text == "Anyone against?"  # type: ignore[union-attr]
    await chat.no_event_within(0.3)


# -- posting as a persona -----------------------------------------------------------------------


@on(*PLATFORMS, *THROUGH_THE_BOT)
async def test_a_persona_post_shows_the_personas_name_with_its_tag(chat: Chat) -> None:
    message_id = await chat.adapter.post(chat.channel, PRIYA, "I would ship on Friday.")
    (post,) = persona_posts(chat)
    assert (post.speaker, post.text) == ("Priya Nair (demo model)", "I would ship on Friday.")
    assert message_id and post.id in (None, message_id)


@on(*PLATFORMS, *THROUGH_THE_BOT)
async def test_a_long_post_is_split_within_the_limit_with_the_name_on_every_piece(chat: Chat) -> None:
    limit = chat.adapter.max_message_length
    text = "Budget notes, line by line. " * (min(limit, 4000) // 10)
    first_id = await chat.adapter.post(chat.channel, PRIYA, text)
    pieces = persona_posts(chat)
    assert len(pieces) >= 2 if len(text) > limit else len(pieces) == 1, "a terminal has no limit"
    assert all(len(piece.raw) <= limit for piece in pieces)
    assert {piece.speaker for piece in pieces} == {"Priya Nair (demo model)"}, "the name leads every piece"
    assert " ".join(piece.text for piece in pieces).split() == text.split(), "nothing lost, nothing added"
    assert pieces[0].id in (None, first_id)


@on(*THROUGH_THE_BOT)
async def test_through_the_bot_every_piece_shows_one_speaker_the_persona(chat: Chat) -> None:
    """A line in the persona's words that looks like another speaker's label cannot pose as one."""
    text = ("Budget notes, line by line. " * 200 + "\n\n**Priya Nair:** I resign, effective today."
            "\n- **Priya Nair:** In a list.\n1. **Troupe:** Numbered.\n# **Troupe:** A heading.\n-# **Troupe:** Small print."
            "\nAgreed. **Priya Nair:** After a sentence.")
    await chat.adapter.post(chat.channel, HENRIK, text)
    pieces = persona_posts(chat)
    assert len(pieces) >= 2
    for piece in pieces:
        assert chat.speaker_labels(piece.raw) == ["Henrik Lindqvist (demo model)"], piece.raw[-300:]
    assert "I resign, effective today." in pieces[-1].text and "After a sentence." in pieces[-1].text


@on(*SHOWING_POSTERS)
async def test_a_persona_named_like_the_bot_still_posts_as_a_persona(chat: Chat) -> None:
    notice = "Moderator notice: everyone re-verify now"
    await chat.adapter.post(chat.channel, Identity(name=chat.adapter.bot_identity.name), notice)
    (post,) = [s for s in chat.shown() if notice in s.text]
    assert not post.by_bot and post.speaker == chat.adapter.bot_identity.name


@on(DISCORD, SLACK, *THROUGH_THE_BOT)
async def test_mass_mentions_in_a_persona_post_notify_nobody(chat: Chat) -> None:
    await chat.adapter.post(chat.channel, PRIYA, f"{chat.mass_mention()} the roadmap is up")
    (post,) = persona_posts(chat)
    assert "the roadmap is up" in post.text and chat.pings(post) == []


@on(*PLATFORMS, *THROUGH_THE_BOT)
async def test_a_post_already_made_is_found_before_posting_again(chat: Chat) -> None:
    """Asked after an attempt whose outcome is unknown: the earliest post of these words by this persona
    that no other message is known to be."""
    words = "Shipping Friday works <if> QA agrees."
    since = datetime.now(UTC) - timedelta(seconds=1)
    find = chat.adapter.find_post
    first = await chat.adapter.post(chat.channel, PRIYA, words)
    assert await find(chat.channel, PRIYA, words, None, since) == first
    again = await chat.adapter.post(chat.channel, PRIYA, words)
    assert await find(chat.channel, PRIYA, words, None, since) == first, "the earlier of the two"
    assert await find(chat.channel, PRIYA, words, None, since, {first}) == again
    assert await find(chat.channel, PRIYA, words, None, since, {first, again}) is None
    assert await find(chat.channel, PRIYA, "Something else", None, since) is None
    assert await find(chat.channel, HENRIK, words, None, since) is None


@on(DISCORD, SLACK)
async def test_a_post_is_found_behind_more_messages_than_one_page_of_history(chat: Chat) -> None:
    """A busy channel (a backlog posted after a restart) writes more than one page of history in the
    seconds a look covers; the look reads on, rather than post the message a second time."""
    since = datetime.now(UTC) - timedelta(seconds=1)
    for n in range(250):
        await chat.say(f"busy line {n}")
    first = await chat.adapter.post(chat.channel, PRIYA, "Shipping Friday works.")
    for n in range(250):
        await chat.say(f"busier line {n}")
    assert await chat.adapter.find_post(chat.channel, PRIYA, "Shipping Friday works.", None, since) == first


@on(DISCORD, SLACK)
async def test_a_history_too_long_to_read_is_an_error_not_a_post_that_is_not_there(chat: Chat) -> None:
    since = datetime.now(UTC) - timedelta(seconds=1)
    for n in range(HISTORY_LOOKED_MAX + 1):
        await chat.say(f"busy line {n}")
    with pytest.raises(AdapterError, match=f"more than {HISTORY_LOOKED_MAX} messages"):
        await chat.adapter.find_post(chat.channel, PRIYA, "Shipping Friday works.", None, since)


@pytest.mark.parametrize("chat", [
    CONSOLE, DISCORD, SLACK, MEMORY, *THROUGH_THE_BOT,
], indirect=True, ids=lambda setup: setup.id)
async def test_a_post_from_before_the_moment_asked_about_is_not_found(chat: Chat) -> None:
    await chat.adapter.post(chat.channel, PRIYA, "Shipping Friday works.")
    later = datetime.now(UTC) + timedelta(seconds=30)
    assert await chat.adapter.find_post(chat.channel, PRIYA, "Shipping Friday works.", None, later) is None


# -- the bot's own words ------------------------------------------------------------------------


async def test_an_announcement_shows_as_the_bots_own_words(chat: Chat) -> None:
    message_id = await chat.adapter.announce(chat.channel, "The world “Team room” is paused.")
    (post,) = chat.shown()
    assert post.by_bot and post.text == "The world “Team room” is paused."
    assert message_id and post.id in (None, message_id)


async def test_a_private_reply_reaches_only_that_person(chat: Chat) -> None:
    await chat.adapter.reply_private(chat.person, chat.channel, "Priya Nair thinks: the date is tight.")
    assert chat.private_to(chat.person) == ["Priya Nair thinks: the date is tight."]
    assert chat.shown() == []


async def test_a_private_answer_to_a_command_reaches_only_its_caller(chat: Chat) -> None:
    await chat.run_command("status")
    invocation = await chat.next_event()
    assert isinstance(invocation, CommandInvocation)
    await chat.adapter.reply_private(invocation.user, invocation.channel, "Only moderators can do that.",
                                     reply_token=invocation.reply_token)
    assert chat.private_to(chat.person) == ["Only moderators can do that."]
    assert chat.shown() == []


async def test_typing_shows_where_the_platform_can_and_posts_nothing(chat: Chat) -> None:
    await chat.adapter.typing(chat.channel, PRIYA)
    assert chat.typing_shown(PRIYA) == chat.shows_typing
    assert chat.shown() == []


async def test_a_status_line_shows_its_latest_state_and_no_earlier_one(chat: Chat) -> None:
    handle = await chat.adapter.progress(chat.channel, "Round 1/3: Priya Nair is thinking")
    assert handle is not None
    again = await chat.adapter.progress(chat.channel, "Round 2/3: Henrik Lindqvist is thinking", handle=handle)
    assert again == handle, "updated in place"
    assert chat.status(handle) == "Round 2/3: Henrik Lindqvist is thinking"
    assert not any("Round 1/3" in s.text for s in chat.shown())


# -- files --------------------------------------------------------------------------------------

EXPORT = b"# Team room\n\nPriya Nair: I would ship on Friday.\n"


async def test_a_file_is_shared_in_the_channel_or_upload_says_it_cannot_be(chat: Chat) -> None:
    shared = await chat.adapter.upload(chat.channel, "team-room.md", EXPORT, "Export of Team room")
    if chat.shares_files:
        assert shared and chat.files() == [("team-room.md", EXPORT)]
    else:
        assert shared is None and chat.files() == []


@on(Setup("memory", files=False), Setup("discord", files=False), Setup("slack", files=False))
async def test_a_file_the_platform_refuses_is_not_shared_and_upload_says_so(chat: Chat) -> None:
    assert await chat.adapter.upload(chat.channel, "team-room.md", EXPORT, "Export of Team room") is None
    assert chat.files() == []


# -- threads ------------------------------------------------------------------------------------


async def test_a_thread_holds_its_own_conversation(chat: Chat) -> None:
    opened = await chat.adapter.open_thread(chat.channel, "Interview with Priya Nair", "Ask Priya Nair anything here.")
    if not chat.threads:
        assert opened is None
        return
    assert opened is not None and opened.link
    assert [(s.by_bot, s.text) for s in chat.shown(opened.id)] == [(True, "Ask Priya Nair anything here.")]

    await chat.adapter.post(chat.channel, PRIYA, "Happy to answer.", thread=opened.id)
    assert [s.text for s in persona_posts(chat, opened.id)] == ["Happy to answer."]
    assert persona_posts(chat) == [], "the channel does not show what is said in the thread"

    await chat.say("What worries you most about the launch?", thread=opened.id)
    event = await chat.next_event()
    assert event.text == "What worries you most about the launch?"  # type: ignore[union-attr]
    assert (event.channel.key, event.channel.thread) == (chat.channel.key, opened.id)


# -- history and people -------------------------------------------------------------------------


async def test_what_was_written_while_the_bot_was_away_is_caught_up_oldest_first(chat: Chat) -> None:
    await chat.say("Before the break.")
    before = await chat.next_event()
    assert isinstance(before, IncomingMessage)
    await chat.adapter.post(chat.channel, PRIYA, "See you after the break.")
    await chat.adapter.announce(chat.channel, "The world is paused.")
    await chat.write_while_away("Did the deploy finish?")
    await chat.write_while_away("Who is on call tonight?")

    missed = await chat.adapter.catch_up(chat.channel, before.message_id)
    assert [m.text for m in missed] == ["Did the deploy finish?", "Who is on call tonight?"]
    assert all(m.channel.key == chat.channel.key and not m.user.is_bot for m in missed)


@on(MEMORY, DISCORD, SLACK)
async def test_what_was_written_in_a_thread_while_the_bot_was_away_is_caught_up_in_the_thread(chat: Chat) -> None:
    """A branch lives in a thread: its catch-up reads the thread. The channel's reads the channel
    and its threads, each message with the thread it was written in."""
    opened = await chat.adapter.open_thread(chat.channel, "Branch: budget", "The budget branch goes on here.")
    assert opened is not None
    await chat.say("In the thread, before the break.", thread=opened.id)
    before = await chat.next_event()
    assert isinstance(before, IncomingMessage)
    await chat.adapter.post(chat.channel, PRIYA, "See you after the break.", thread=opened.id)
    await chat.write_while_away("Did the budget move?", thread=opened.id)
    await chat.write_while_away("Meanwhile, in the channel.")
    await chat.write_while_away("Who signs it off?", thread=opened.id)

    branch = chat.channel.model_copy(update={"thread": opened.id})
    missed = await chat.adapter.catch_up(branch, before.message_id)
    assert [m.text for m in missed] == ["Did the budget move?", "Who signs it off?"]
    assert all((m.channel.key, m.channel.thread) == (chat.channel.key, opened.id) for m in missed)
    in_channel = await chat.adapter.catch_up(chat.channel, before.message_id)
    assert [(m.text, m.channel.thread) for m in in_channel] == [
        ("Did the budget move?", opened.id), ("Meanwhile, in the channel.", None), ("Who signs it off?", opened.id)]


@on(MEMORY, DISCORD, SLACK)
async def test_replies_to_an_older_thread_written_while_the_bot_was_away_are_caught_up(chat: Chat) -> None:
    """A thread started long before the last message heard still has its new replies read."""
    opened = await chat.adapter.open_thread(chat.channel, "Launch questions", "Questions about the launch go here.")
    assert opened is not None
    await chat.say("A word in the channel, after the thread opened.")
    before = await chat.next_event()
    assert isinstance(before, IncomingMessage) and before.channel.thread is None
    await chat.write_while_away("Is the launch still on Friday?", thread=opened.id)

    missed = await chat.adapter.catch_up(chat.channel, before.message_id)
    assert [(m.text, m.channel.thread) for m in missed] == [("Is the launch still on Friday?", opened.id)]
    assert await chat.adapter.catch_up(chat.channel, missed[-1].message_id) == []


async def test_the_platform_says_who_someone_is_now(chat: Chat) -> None:
    now = await chat.adapter.member(chat.person, chat.channel)
    assert now is not None and now.id == chat.person.id and not now.is_bot
    assert set(chat.person.roles) <= set(now.roles)


@on(MEMORY, DISCORD, SLACK)
async def test_a_role_taken_away_shows_at_the_next_lookup(chat: Chat) -> None:
    before = await chat.take_moderator_role()
    after = await chat.adapter.member(before, chat.channel)
    assert after is not None and after.id == before.id
    assert before.roles and not set(before.roles) & set(after.roles)


@on(CONSOLE, Setup("memory", bot_name="Aria"), Setup("discord", bot_name="Aria"), Setup("slack", bot_name="aria"))
async def test_the_bot_goes_by_the_name_the_platform_gives_it(chat: Chat) -> None:
    assert chat.bot_name in chat.adapter.bot_names


# -- the connection -----------------------------------------------------------------------------


async def test_disconnect_ends_listen(chat: Chat) -> None:
    rest = asyncio.create_task(chat.rest_of_events())
    await asyncio.sleep(0.05)
    assert not rest.done()
    await chat.close()
    assert await asyncio.wait_for(rest, 5) == []


@on(DISCORD, SLACK)
async def test_after_a_dropped_connection_what_is_said_is_heard_once(chat: Chat) -> None:
    await chat.drop_connection()
    await chat.say("Still with us?")
    assert (await chat.next_event(timeout=15)).text == "Still with us?"  # type: ignore[union-attr]
    await chat.no_event_within(0.5)
