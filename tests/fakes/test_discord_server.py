"""The fake Discord is faithful enough that the real discord.py client works against it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import discord
import pytest
import yarl
from discord import app_commands
from discord.ext import commands

from tests.fakes.discord_server import (
    ATTACH_FILES,
    EMBED_LINKS,
    MANAGE_MESSAGES,
    FakeDiscord,
    FakeGuild,
    FakeInteraction,
    shard_of,
)

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(autouse=True)
def _restore_endpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(discord.http.Route, "BASE", discord.http.Route.BASE)
    socket_class = discord.gateway.DiscordWebSocket
    monkeypatch.setattr(socket_class, "DEFAULT_GATEWAY", socket_class.DEFAULT_GATEWAY)


def _intents(*, message_content: bool = True) -> discord.Intents:
    intents = discord.Intents.default()
    intents.message_content = message_content
    return intents


class RecordingClient(discord.Client):
    """A plain client that keeps every message it receives."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("intents", _intents())
        super().__init__(guild_ready_timeout=0.05, **kwargs)
        self.received: list[discord.Message] = []

    async def on_message(self, message: discord.Message) -> None:
        self.received.append(message)

    async def wait_received(self, predicate: Any, timeout: float = 5.0) -> discord.Message:
        async def poll() -> discord.Message:
            while True:
                for message in self.received:
                    if predicate(message):
                        return message
                await asyncio.sleep(0.01)

        return await asyncio.wait_for(poll(), timeout)


@contextlib.asynccontextmanager
async def connected(fake: FakeDiscord, client: discord.Client, token: str | None = None) -> AsyncIterator[None]:
    """Run ``client`` against the fake until the block ends."""
    discord.http.Route.BASE = fake.api_base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)
    task = asyncio.create_task(client.start(token or fake.token))
    try:
        waiter = asyncio.create_task(client.wait_until_ready())
        done, _ = await asyncio.wait({task, waiter}, timeout=5, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            waiter.cancel()
            task.result()
        assert waiter in done, "client never became ready"
        yield
    finally:
        await client.close()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(task, 5)


async def test_login_ready_messages_and_compression() -> None:
    async with FakeDiscord(heartbeat_interval=0.2) as fake:
        client = RecordingClient()
        async with connected(fake, client):
            general = fake.channel_id("general")
            guild = client.get_guild(fake.guild_id)
            assert guild is not None and guild.get_channel(general) is not None
            assert client.user is not None and client.user.id == fake.bot_user.id
            assert client.application_id == fake.application_id
            # discord.py asks for zlib-stream transport compression and the fake speaks it.
            assert fake.connections[0].query["compress"] == "zlib-stream"
            assert fake.connections[0].query["v"] == "10"

            said = await fake.user_says(general, "hello bot", user=fake.moderator)
            got = await client.wait_received(lambda m: m.id == said.id)
            assert got.content == "hello bot" and got.author.id == fake.moderator.id
            assert isinstance(got.author, discord.Member)
            assert fake.moderator_role.id in [r.id for r in got.author.roles]

            channel = client.get_channel(general)
            assert isinstance(channel, discord.TextChannel)
            sent = await channel.send("hi there", allowed_mentions=discord.AllowedMentions.none())
            recorded = fake.channel_messages(general)[-1]
            assert recorded.id == sent.id and recorded.content == "hi there"
            assert recorded.author_id == fake.bot_user.id
            # Discord echoes the bot's own messages back over the gateway.
            await client.wait_received(lambda m: m.id == sent.id)

            reply = await got.reply("answering")
            assert fake.channel_messages(general)[-1].reference_id == got.id
            assert reply.reference is not None and reply.reference.message_id == got.id

            async with channel.typing():
                pass
            assert fake.typing == [general]

            history = [m async for m in channel.history(limit=10)]
            assert [m.id for m in history][:2] == [reply.id, sent.id]

            await asyncio.sleep(0.5)
            assert fake.connections[0].heartbeats >= 2


async def test_rejected_token() -> None:
    async with FakeDiscord() as fake:
        client = RecordingClient()
        discord.http.Route.BASE = fake.api_base
        with pytest.raises(discord.LoginFailure):
            await client.login("wrong-token")
        await client.close()


async def test_message_content_needs_the_intent() -> None:
    async with FakeDiscord() as fake:
        client = RecordingClient(intents=_intents(message_content=False))
        async with connected(fake, client):
            general = fake.channel_id("general")
            plain = await fake.user_says(general, "secret words")
            mention = await fake.user_says(general, f"<@{fake.bot_user.id}> hi")
            got_plain = await client.wait_received(lambda m: m.id == plain.id)
            got_mention = await client.wait_received(lambda m: m.id == mention.id)
            assert got_plain.content == ""
            assert "hi" in got_mention.content


async def test_too_long_and_empty_messages_are_refused() -> None:
    async with FakeDiscord() as fake:
        client = RecordingClient()
        async with connected(fake, client):
            channel = client.get_channel(fake.channel_id("general"))
            assert isinstance(channel, discord.TextChannel)
            with pytest.raises(discord.HTTPException) as info:
                await channel.send("x" * 2001)
            assert info.value.status == 400 and info.value.code == 50035
            await channel.send("x" * 2000)
            assert len(fake.channel_messages(channel.id)) == 1


async def test_webhooks_and_threads() -> None:
    async with FakeDiscord() as fake:
        client = RecordingClient()
        async with connected(fake, client):
            general = fake.channel_id("general")
            channel = client.get_channel(general)
            assert isinstance(channel, discord.TextChannel)
            hook = await channel.create_webhook(name="Troupe")
            assert [w.id for w in await channel.webhooks()] == [hook.id]

            avatar = "https://example.com/ada.png"
            sent = await hook.send("from Ada", username="Ada Lovelace", avatar_url=avatar, wait=True)
            recorded = fake.channel_messages(general)[-1]
            assert recorded.id == sent.id and recorded.webhook_id == hook.id
            assert recorded.author_name == "Ada Lovelace"
            assert recorded.avatar_url == avatar
            echo = await client.wait_received(lambda m: m.id == sent.id)
            assert echo.webhook_id == hook.id and echo.author.bot

            with pytest.raises(discord.HTTPException) as info:
                await hook.send("nope", username="Discord Staff", wait=True)
            assert info.value.status == 400 and info.value.code == 50035

            thread = await channel.create_thread(name="side chat", type=discord.ChannelType.public_thread)
            assert client.get_channel(thread.id) is not None or fake.channels[thread.id].parent_id == general
            in_thread = await hook.send("in the thread", username="Ada", thread=thread, wait=True)
            assert fake.channel_messages(thread.id)[-1].id == in_thread.id

            with pytest.raises(discord.HTTPException) as bad_avatar:
                await hook.send("x", username="Ada", avatar_url="ftp://example.com/a.png", wait=True)
            assert bad_avatar.value.code == 50035
            other = await (client.get_channel(fake.channel_id("random"))).create_thread(  # type: ignore[union-attr]
                name="elsewhere", type=discord.ChannelType.public_thread
            )
            with pytest.raises(discord.HTTPException):
                await hook.send("wrong thread", username="Ada", thread=other, wait=True)

            started = await channel.send("start here")
            from_message = await started.create_thread(name="follow-up")
            assert from_message.id == started.id

            await fake.delete_webhook(hook.id)
            with pytest.raises(discord.NotFound) as missing:
                await hook.send("gone", username="Ada", wait=True)
            assert missing.value.code == 10015


async def test_webhook_creation_needs_manage_webhooks() -> None:
    async with FakeDiscord(manage_webhooks=False) as fake:
        client = RecordingClient()
        async with connected(fake, client):
            channel = client.get_channel(fake.channel_id("general"))
            assert isinstance(channel, discord.TextChannel)
            with pytest.raises(discord.Forbidden) as info:
                await channel.create_webhook(name="Troupe")
            assert info.value.code == 50013


async def test_resume_replays_missed_messages() -> None:
    async with FakeDiscord(heartbeat_interval=0.2) as fake:
        client = RecordingClient()
        async with connected(fake, client):
            general = fake.channel_id("general")
            await fake.drop_gateway(code=4000)
            missed = await fake.user_says(general, "while you were away")
            got = await client.wait_received(lambda m: m.id == missed.id)
            assert got.content == "while you were away"
            assert len(fake.identifies) == 1 and len(fake.resumes) == 1
            assert fake.connections[-1].path == "/gateway/resume"
            # The client keeps working on the resumed connection.
            after = await fake.user_says(general, "and now")
            await client.wait_received(lambda m: m.id == after.id)


async def _no_identify_delay(shard_id: int | None, *, initial: bool = False) -> None:
    return None


async def test_non_resumable_close_identifies_again() -> None:
    async with FakeDiscord(heartbeat_interval=0.2) as fake:
        client = RecordingClient()
        # discord.py waits 5 s before any non-initial IDENTIFY; skip that wait here.
        client.before_identify_hook = _no_identify_delay  # type: ignore[method-assign]
        async with connected(fake, client):
            await fake.drop_gateway(code=4009)
            await fake.wait_for(lambda: len(fake.identifies) == 2, timeout=10)
            await fake.wait_until_ready()
            said = await fake.user_says(fake.channel_id("general"), "fresh session")
            await client.wait_received(lambda m: m.id == said.id)
            # The resume was refused (INVALID_SESSION); discord.py re-identified on the last URL it used.
            assert len(fake.resumes) == 1
            assert fake.connections[-1].session is not None and fake.connections[-1].session.valid


async def test_rate_limit_is_retried() -> None:
    async with FakeDiscord() as fake:
        client = RecordingClient()
        async with connected(fake, client):
            channel = client.get_channel(fake.channel_id("general"))
            assert isinstance(channel, discord.TextChannel)
            fake.rate_limit("/messages", times=1, retry_after=0.1, method="POST")
            await channel.send("after a pause")
            assert len(fake.rate_limited) == 1
            assert [m.content for m in fake.channel_messages(channel.id)] == ["after a pause"]


async def test_rate_limit_headers_are_real() -> None:
    async with FakeDiscord() as fake:
        fake.rate_limit("/users/@me", retry_after=0.25)
        async with aiohttp.ClientSession() as session:
            headers = {"Authorization": f"Bot {fake.token}"}
            async with session.get(fake.api_base + "/users/@me", headers=headers) as response:
                assert response.status == 429
                assert response.headers["Content-Type"] == "application/json"
                assert response.headers["Via"] and response.headers["Retry-After"]
                assert response.headers["X-RateLimit-Remaining"] == "0"
                body = await response.json()
                assert body["retry_after"] == 0.25 and body["global"] is False
            async with session.get(fake.api_base + "/users/@me", headers=headers) as response:
                assert response.status == 200
                assert response.headers["Content-Type"] == "application/json"


class SlashBot(commands.Bot):
    """A bot with a command group, a deferring command and a slow command."""

    def __init__(self) -> None:
        super().__init__(command_prefix="!", intents=_intents(), guild_ready_timeout=0.05)
        self.errors: list[BaseException] = []
        group = app_commands.Group(name="troupe", description="Troupe controls")
        moderation = app_commands.Group(
            name="mod", description="Moderation", default_permissions=discord.Permissions(manage_messages=True)
        )
        persona = app_commands.Group(name="persona", description="Personas", parent=moderation)

        @group.command(name="status", description="Show status")
        async def status(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("all quiet", ephemeral=True)

        @persona.command(name="pause", description="Pause a persona")
        async def pause(interaction: discord.Interaction, name: str, minutes: int = 5) -> None:
            await interaction.response.defer(ephemeral=True, thinking=True)
            await interaction.followup.send(f"paused {name} for {minutes}")
            await interaction.followup.send("anything else?", ephemeral=True)

        @app_commands.command(name="announce", description="Say it publicly")
        async def announce(interaction: discord.Interaction, text: str) -> None:
            await interaction.response.send_message(text)

        @app_commands.command(name="think", description="Defers publicly, then edits")
        async def think(interaction: discord.Interaction) -> None:
            await interaction.response.defer(thinking=True)
            await interaction.edit_original_response(content="thought it over")

        @app_commands.command(name="slow", description="Answers too late")
        async def slow(interaction: discord.Interaction) -> None:
            await asyncio.sleep(0.4)
            try:
                await interaction.response.send_message("late")
            except discord.HTTPException as exc:
                self.errors.append(exc)

        self.tree.add_command(group)
        self.tree.add_command(moderation)
        self.tree.add_command(announce)
        self.tree.add_command(slow)
        self.tree.add_command(think)


async def test_app_commands_sync_and_slash_commands() -> None:
    async with FakeDiscord(interaction_deadline=0.2) as fake:
        bot = SlashBot()
        async with connected(fake, bot):
            guild = discord.Object(fake.guild_id)
            assert await bot.tree.sync(guild=guild) == []
            bot.tree.copy_global_to(guild=guild)
            synced = await bot.tree.sync(guild=guild)
            names = sorted(c.name for c in synced)
            assert names == ["announce", "mod", "slow", "think", "troupe"]
            assert sorted(c["name"] for c in fake.guild_commands()) == names

            general = fake.channel_id("general")
            status = await fake.run_slash_command("troupe status", user=fake.guest)
            callback = await status.response()
            assert callback.type == 4 and callback.ephemeral
            assert [m.content for m in fake.ephemeral(fake.guest.id)] == ["all quiet"]
            assert fake.channel_messages(general) == []

            with pytest.raises(PermissionError):
                await fake.run_slash_command("mod persona pause", {"name": "ada"}, user=fake.guest)

            pause: FakeInteraction = await fake.run_slash_command(
                "mod persona pause", {"name": "ada", "minutes": 10}, user=fake.moderator
            )
            assert pause.options[0]["options"][0]["options"][1] == {"name": "minutes", "type": 4, "value": 10}
            deferred = await pause.response()
            assert deferred.deferred and deferred.ephemeral
            followups = await pause.followups(2)
            original = await pause.message()
            assert original.content == "paused ada for 10" and original.ephemeral
            assert followups[1].content == "anything else?" and followups[1].recipient_id == fake.moderator.id
            assert [m.content for m in fake.ephemeral(fake.moderator.id)] == ["paused ada for 10", "anything else?"]

            public = await fake.run_slash_command("announce", {"text": "hello all"}, user=fake.moderator)
            message = await public.message()
            assert not message.ephemeral
            assert fake.channel_messages(general)[-1].content == "hello all"

            callbacks = [r for r in fake.requests if r[1].endswith("/callback")]
            assert callbacks and all(r[2] == {"with_response": "1"} for r in callbacks)

            think = await fake.run_slash_command("think")
            thought = await think.message()
            assert thought.content == "thought it over" and not thought.ephemeral and thought.edits == 1
            assert fake.channel_messages(general)[-1].id == thought.id

            late = await fake.run_slash_command("slow")
            await asyncio.sleep(0.6)
            assert late.callback is None and late.rejected == [10062]
            assert isinstance(bot.errors[0], discord.NotFound) and bot.errors[0].code == 10062


async def test_second_initial_response_is_refused() -> None:
    async with FakeDiscord() as fake:
        bot = SlashBot()
        async with connected(fake, bot):
            await bot.tree.sync()
            interaction = await fake.run_slash_command("announce", {"text": "once"})
            await interaction.response()
            url = f"{fake.api_base}/interactions/{interaction.id}/{interaction.token}/callback?with_response=1"
            async with aiohttp.ClientSession() as session:
                async with session.post(url, json={"type": 4, "data": {"content": "twice"}}) as response:
                    assert response.status == 400
                    assert (await response.json())["code"] == 40060


async def test_member_chunking_when_members_intent_is_on() -> None:
    async with FakeDiscord() as fake:
        intents = _intents()
        intents.members = True
        client = RecordingClient(intents=intents)
        async with connected(fake, client):
            guild = client.get_guild(fake.guild_id)
            assert guild is not None and guild.chunked
            assert guild.get_member(fake.guest.id) is not None
            assert fake.member_requests

    async with FakeDiscord() as fake:
        client = RecordingClient()
        async with connected(fake, client):
            guild = client.get_guild(fake.guild_id)
            assert guild is not None and guild.get_member(fake.guest.id) is None
            assert guild.get_member(fake.bot_user.id) is not None
            assert not fake.member_requests


async def test_thread_messages_reconnect_request_and_webhook_rate_limit() -> None:
    async with FakeDiscord(heartbeat_interval=0.2) as fake:
        client = RecordingClient()
        async with connected(fake, client):
            general = fake.channel_id("general")
            thread_id = await fake.add_thread(general, "design talk", owner=fake.moderator)
            said = await fake.user_says(thread_id, "in a thread", user=fake.moderator)
            got = await client.wait_received(lambda m: m.id == said.id)
            assert isinstance(got.channel, discord.Thread) and got.channel.parent_id == general

            await fake.request_reconnect()
            await fake.wait_for(lambda: len(fake.resumes) == 1)
            after = await fake.user_says(general, "after op 7")
            await client.wait_received(lambda m: m.id == after.id)

            channel = client.get_channel(general)
            assert isinstance(channel, discord.TextChannel)
            hook = await channel.create_webhook(name="Troupe")
            fake.rate_limit("/webhooks/", times=1, retry_after=0.05, method="POST")
            await hook.send("patient", username="Ada", wait=True)
            fake.rate_limit("/messages", times=1, retry_after=0.05, is_global=True)
            await channel.send("globally patient")
            assert len(fake.rate_limited) == 2
            assert [m.content for m in fake.channel_messages(general)] == ["after op 7", "patient", "globally patient"]


PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000002000000030806000000"
    "9d74cb2a0000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


def _chart() -> discord.File:
    import io

    return discord.File(io.BytesIO(PNG), filename="chart.png")


def _card() -> discord.Embed:
    embed = discord.Embed(title="Report", description="All good", colour=0x00AA00)
    embed.add_field(name="Votes", value="3", inline=True)
    embed.set_footer(text="Simulated answers")
    embed.set_image(url="attachment://chart.png")
    return embed


async def test_embeds_and_files_are_recorded() -> None:
    async with FakeDiscord() as fake:
        client = RecordingClient()
        async with connected(fake, client):
            general = fake.channel_id("general")
            channel = client.get_channel(general)
            assert isinstance(channel, discord.TextChannel)
            sent = await channel.send(embed=_card(), file=_chart())
            recorded = fake.channel_messages(general)[-1]
            assert recorded.embeds[0]["title"] == "Report" and recorded.embeds[0]["color"] == 0x00AA00
            assert recorded.embeds[0]["image"]["url"] == "attachment://chart.png"
            (attachment,) = recorded.attachments
            assert attachment.filename == "chart.png" and attachment.data == PNG
            # Clients see the reference resolved to the stored file, with the image's size.
            assert sent.attachments[0].filename == "chart.png" and sent.attachments[0].width == 2
            assert sent.attachments[0].content_type == "image/png"
            assert sent.embeds[0].image.url == attachment.url and sent.embeds[0].image.height == 3

            hook = await channel.create_webhook(name="Troupe")
            by_hook = await hook.send(username="Ada", embed=_card(), file=_chart(), wait=True)
            assert fake.channel_messages(general)[-1].attachments[0].data == PNG
            assert by_hook.embeds[0].footer.text == "Simulated answers"

            # A reference to a file the message does not carry is dropped, as Discord does.
            lonely = await channel.send(embed=_card())
            assert lonely.embeds[0].image.url is None

            fake.set_bot_permission(ATTACH_FILES, False)
            with pytest.raises(discord.Forbidden):
                await channel.send(file=_chart())
            fake.set_bot_permission(EMBED_LINKS, False)
            hidden = await channel.send("see below", embed=_card())
            assert hidden.embeds == [] and fake.channel_messages(general)[-1].embeds == []


async def test_embed_limits_are_enforced() -> None:
    async with FakeDiscord() as fake:
        client = RecordingClient()
        async with connected(fake, client):
            channel = client.get_channel(fake.channel_id("general"))
            assert isinstance(channel, discord.TextChannel)
            too_long = discord.Embed(title="x", description="d" * 4097)
            many = discord.Embed(title="x")
            for i in range(26):
                many.add_field(name=f"f{i}", value="v")
            long_value = discord.Embed(title="x").add_field(name="n", value="v" * 1025)
            empty_value = discord.Embed(title="x").add_field(name="n", value=" ")
            total = discord.Embed(title="x", description="d" * 4096)
            for _ in range(2):
                total.add_field(name="n", value="v" * 1000)
            for embed, where in ((too_long, "embeds.0.description"), (many, "embeds.0.fields"),
                                 (long_value, "embeds.0.fields.0.value"), (empty_value, "embeds.0.fields.0.value"),
                                 (total, "embeds: Embed size exceeds maximum size of 6000")):
                with pytest.raises(discord.HTTPException) as info:
                    await channel.send(embed=embed)
                assert info.value.status == 400 and info.value.code == 50035
                assert where in info.value.text, info.value.text
            assert fake.channel_messages(channel.id) == []
            at_the_limit = discord.Embed(title="x", description="d" * 3998)
            at_the_limit.add_field(name="n", value="v" * 1000).add_field(name="n", value="v" * 999)
            await channel.send(embed=at_the_limit)  # 6,000 characters exactly


async def test_messages_are_edited_and_deleted() -> None:
    async with FakeDiscord() as fake:
        client = RecordingClient()
        async with connected(fake, client):
            general = fake.channel_id("general")
            channel = client.get_channel(general)
            assert isinstance(channel, discord.TextChannel)
            sent = await channel.send("step 1")
            await sent.edit(content="step 2")
            await channel.get_partial_message(sent.id).edit(content="step 3", embed=_card())
            (recorded,) = fake.channel_messages(general)
            assert recorded.content == "step 3" and recorded.edits == 2 and recorded.embeds[0]["title"] == "Report"
            assert [r["content"] for r in recorded.revisions] == ["step 1", "step 2"]

            said = await fake.user_says(general, "mine")
            with pytest.raises(discord.Forbidden) as refused:
                await channel.get_partial_message(said.id).edit(content="yours")
            assert refused.value.code == 50005

            await fake.delete_message(general, sent.id)
            assert recorded.deleted and [m.id for m in fake.channel_messages(general)] == [said.id]
            with pytest.raises(discord.NotFound) as gone:
                await channel.get_partial_message(sent.id).edit(content="step 4")
            assert gone.value.code == 10008
            with pytest.raises(discord.Forbidden):  # deleting others' messages takes Manage Messages
                await channel.get_partial_message(said.id).delete()
            fake.set_bot_permission(MANAGE_MESSAGES, True)
            await channel.get_partial_message(said.id).delete()
            assert fake.channel_messages(general) == []


async def test_direct_messages() -> None:
    async with FakeDiscord() as fake:
        client = RecordingClient()
        async with connected(fake, client):
            user = await client.fetch_user(fake.moderator.id)
            await user.send("just for you")
            await user.send("and again")
            assert [m.content for m in fake.dms(fake.moderator.id)] == ["just for you", "and again"]
            assert len(fake.dm_channels) == 1
            assert [r for r in fake.requests if r[1] == "/users/@me/channels"][0][0] == "POST"

            fake.closed_dms.add(fake.guest.id)
            guest = await client.fetch_user(fake.guest.id)
            with pytest.raises(discord.Forbidden) as closed:
                await guest.send("hello?")
            assert closed.value.code == 50007
            with pytest.raises(discord.NotFound):
                await client.fetch_user(12345)


class CompletingBot(commands.Bot):
    """A bot whose command suggests names as one types, and answers with an embed and a file."""

    def __init__(self) -> None:
        super().__init__(command_prefix="!", intents=_intents(), guild_ready_timeout=0.05)

        async def names(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
            known = ("Ada", "Alan", "Grace")
            return [app_commands.Choice(name=n, value=n) for n in known if current.lower() in n.lower()]

        @app_commands.command(name="greet", description="Greet someone")
        @app_commands.autocomplete(name=names)
        async def greet(interaction: discord.Interaction, name: str, times: int = 1) -> None:
            await interaction.response.send_message(embed=_card(), file=_chart())
            await interaction.followup.send(embed=_card(), file=_chart())

        self.tree.add_command(greet)


async def test_autocomplete_and_interaction_files() -> None:
    async with FakeDiscord() as fake:
        bot = CompletingBot()
        async with connected(fake, bot):
            await bot.tree.sync()
            typing = await fake.run_autocomplete("greet", {"name": "a"}, focused="name")
            assert typing.type == 4
            assert [c["value"] for c in await typing.choices()] == ["Ada", "Alan", "Grace"]
            narrower = await fake.run_autocomplete("greet", {"name": "AL", "times": 2}, focused="name")
            assert await narrower.choices() == [{"name": "Alan", "value": "Alan"}]
            assert narrower.original is None and fake.channel_messages(fake.channel_id("general")) == []
            with pytest.raises(LookupError):
                await fake.run_autocomplete("greet", {"times": "1"}, focused="times")

            used = await fake.run_slash_command("greet", {"name": "Ada"})
            original = await used.message()
            (followup,) = await used.followups()
            for message in (original, followup):
                assert message.embeds[0]["title"] == "Report" and message.attachments[0].data == PNG
                assert message.payload["embeds"][0]["image"]["url"] == message.attachments[0].url

        # Once the bot is gone nobody answers: a message is no answer to autocomplete, nor choices to a command.
        unanswered = await fake.run_autocomplete("greet", {"name": "G"}, focused="name")
        command = await fake.run_slash_command("greet", {"name": "Grace"})
        async with aiohttp.ClientSession() as session:
            for interaction, body in ((unanswered, {"type": 4, "data": {"content": "hi"}}),
                                      (command, {"type": 8, "data": {"choices": []}})):
                url = f"{fake.api_base}/interactions/{interaction.id}/{interaction.token}/callback?with_response=1"
                async with session.post(url, json=body) as response:
                    assert response.status == 400 and (await response.json())["code"] == 50035


# -- shards -------------------------------------------------------------------------------------


class ShardClient(RecordingClient):
    """A client running one shard, that identifies without discord.py's 5 s wait."""

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        return None


async def _raw_identify(fake: FakeDiscord, shard: Any = None, *, include_shard: bool = True) -> tuple[Any, Any]:
    """Open a gateway socket, IDENTIFY (with ``shard`` if given), and return (first answer, close code):
    the answer is the frame Discord sent back, or None once it closed the socket."""
    data: dict[str, Any] = {"token": fake.token, "intents": 1, "properties": {}}
    if include_shard:
        data["shard"] = shard
    async with aiohttp.ClientSession() as http, http.ws_connect(fake.gateway_url + "?v=10&encoding=json") as ws:
        hello = await ws.receive_json(timeout=5)
        assert hello["op"] == 10
        await ws.send_json({"op": 2, "d": data})
        message = await ws.receive(timeout=5)
        if message.type is aiohttp.WSMsgType.TEXT:
            return message.json(), None
        return None, ws.close_code


async def test_each_shard_hears_only_its_guilds_and_direct_messages_reach_shard_zero() -> None:
    async with FakeDiscord(max_concurrency=2) as fake:
        first = fake.add_guild("Zero", channels=["zero-chat"], shard=(0, 2))
        second = fake.add_guild("One", channels=["one-chat"], shard=(1, 2))
        zero, one = ShardClient(shard_id=0, shard_count=2), ShardClient(shard_id=1, shard_count=2)
        async with connected(fake, zero), connected(fake, one):
            assert fake.connected_shards() == [(0, 2), (1, 2)]
            assert first in {g.id for g in zero.guilds} and second not in {g.id for g in zero.guilds}
            assert second in {g.id for g in one.guilds} and first not in {g.id for g in one.guilds}
            in_zero = await fake.user_says(fake.channel_id("zero-chat"), "for shard zero")
            in_one = await fake.user_says(fake.channel_id("one-chat"), "for shard one")
            await zero.wait_received(lambda m: m.id == in_zero.id)
            await one.wait_received(lambda m: m.id == in_one.id)
            # A direct message (no guild) reaches shard 0 only, whichever shard sent it.
            target = await one.fetch_user(fake.guest.id)
            private = await target.send("just for you")
            await zero.wait_received(lambda m: m.id == private.id)
            await asyncio.sleep(0.2)
            assert {m.id for m in zero.received} >= {in_zero.id, private.id}
            assert in_one.id not in {m.id for m in zero.received}
            assert {in_zero.id, private.id}.isdisjoint({m.id for m in one.received})


class ShardedRecordingClient(discord.AutoShardedClient, RecordingClient):
    """One client running every shard, recording what it hears, without discord.py's 5 s wait."""

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        return None


async def test_one_sharded_client_runs_every_shard() -> None:
    async with FakeDiscord(max_concurrency=2) as fake:
        fake.add_guild("Zero", channels=["zero-chat"], shard=(0, 2))
        fake.add_guild("One", channels=["one-chat"], shard=(1, 2))
        client = ShardedRecordingClient(intents=_intents(), shard_count=2)
        async with connected(fake, client):
            assert fake.connected_shards() == [(0, 2), (1, 2)]
            assert len(client.guilds) == 3
            for name in ("zero-chat", "one-chat"):
                said = await fake.user_says(fake.channel_id(name), f"in {name}")
                await client.wait_received(lambda m, said=said: m.id == said.id)


async def test_a_new_session_replaces_only_its_own_shard() -> None:
    async with FakeDiscord() as fake:
        fake.add_guild("One", channels=["one-chat"], shard=(1, 2))
        zero = ShardClient(shard_id=0, shard_count=2)
        async with connected(fake, ShardClient(shard_id=1, shard_count=2)), connected(fake, zero):
            await fake.drop_gateway(4009, shard=0)  # shard 0 only, and not resumable
            await fake.wait_for(lambda: len(fake.identifies) == 3, timeout=10)
            await fake.wait_until_ready()
            await fake.wait_for(lambda: fake.connected_shards() == [(0, 2), (1, 2)])
            assert [tuple(i["shard"]) for i in fake.identifies] == [(1, 2), (0, 2), (0, 2)]


async def test_gateway_bot_gives_the_recommended_count_and_concurrency() -> None:
    async with FakeDiscord(max_concurrency=16) as fake, aiohttp.ClientSession() as http:
        for number in range(2500):
            fake.guilds[number + 1] = FakeGuild(number + 1, f"guild {number}")
        headers = {"Authorization": f"Bot {fake.token}"}
        async with http.get(fake.api_base + "/gateway/bot", headers=headers) as response:
            body = await response.json()
        assert body["shards"] == 3  # 2,501 guilds: one shard per thousand
        assert body["session_start_limit"]["max_concurrency"] == 16
        assert body["url"] == fake.gateway_url


async def test_an_identify_too_early_for_its_bucket_is_refused() -> None:
    async with FakeDiscord(max_concurrency=2, identify_interval=5.0) as fake:
        ready, _ = await _raw_identify(fake, [0, 4])
        assert ready["t"] == "READY" and ready["d"]["shard"] == [0, 4]
        other_bucket, _ = await _raw_identify(fake, [1, 4])  # 1 % 2: its own bucket, at once
        assert other_bucket["t"] == "READY"
        too_early, _ = await _raw_identify(fake, [2, 4])  # 2 % 2: shard 0's bucket, within 5 s
        assert too_early["op"] == 9 and too_early["d"] is False
        assert [i["shard"] for i in fake.refused_identifies] == [[2, 4]]


@pytest.mark.parametrize("shard", [[2, 2], [-1, 2], ["a", 2], [0], [0, 0], "0,2"])
async def test_an_invalid_shard_is_closed_with_4010(shard: Any) -> None:
    async with FakeDiscord() as fake:
        answer, code = await _raw_identify(fake, shard)
        assert answer is None and code == 4010


async def test_too_many_guilds_for_one_shard_is_closed_with_4011() -> None:
    async with FakeDiscord(max_guilds_per_shard=1) as fake:
        other = 1 - shard_of(fake.guild_id, 2)
        fake.add_guild("Two", shard=(other, 2))
        answer, code = await _raw_identify(fake, include_shard=False)
        assert answer is None and code == 4011
        ready, _ = await _raw_identify(fake, [other, 2])
        assert ready["t"] == "READY" and len(ready["d"]["guilds"]) == 1
