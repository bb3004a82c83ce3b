"""Health end to end: the bot as a subprocess against the emulator, owners saying how their goal
goes in words and with reactions on the prompt, and anyone asking `status` and `list blocked`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.support import BotProcess, run_cli, wait_until
from tests.test_replies_e2e import GOALS, World, dm, post, running_world


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with running_world(tmp_path, GOALS[:2]) as w:  # Ben's Polonius, Chloé's async closures
        yield w


def ask(w: World, question: str) -> str:
    """Eve asks the bot; its answer (the commands of a batch run after it is stored, so the
    answer reflects every message and reaction that came before the question)."""
    before = len(w.dms_to("eve"))
    dm(w, "eve", question)
    assert wait_until(lambda: len(w.dms_to("eve")) > before), w.bot.log()[-3000:]
    return w.dms_to("eve")[before]


def health_line(answer: str) -> str:
    (line,) = [x for x in answer.splitlines() if x.startswith("**Health**")]
    return line


def test_a_status_line_in_the_topic_shows_in_status_and_an_update_without_one_keeps_it(
    world: World,
) -> None:
    w = world
    assert health_line(ask(w, "status polonius")).startswith("**Health**: not given yet")
    first = post(w, "ben", "polonius", "TL;DR: the solver is merged.\n\nStatus: At Risk")
    w.wait_row(first, kind="update")
    line = health_line(ask(w, "status polonius"))
    assert line.startswith("**Health**: :yellow_circle: at risk since "), line
    assert "[said by Ben Owner](" in line and line.endswith(f"/id/{first})"), line
    # A follow-up that says nothing about health: the goal is still at risk, said by the first.
    later = post(w, "ben", "polonius", "Also fixed two regressions.")
    w.wait_row(later, kind="update")
    again = health_line(ask(w, "status polonius"))
    assert again.startswith("**Health**: :yellow_circle: at risk since "), again
    assert again.endswith(f"/id/{first})"), again
    # Async closures never said: no health, not a guess.
    assert health_line(ask(w, "status async")).startswith("**Health**: not given yet")


def test_list_blocked_and_list_at_risk(world: World) -> None:
    w = world
    post(w, "chloe", "async", "[blokced] waiting for the lang team's decision")
    last = post(w, "ben", "polonius", "TL;DR: on track, parser merged.")
    w.wait_row(last, kind="update")
    blocked = ask(w, "list blocked")
    assert blocked.startswith("Goals blocked (longest first) (1):"), blocked
    assert "Async closures" in blocked and "Scale Polonius" not in blocked
    assert ":red_circle: blocked" in blocked
    assert ask(w, "list at risk") == "Goals at risk (longest first): none."
    assert "Scale Polonius" in ask(w, "list on-track")


def test_done_asks_the_owner_to_confirm_and_does_not_complete(world: World) -> None:
    w = world
    mid = post(w, "ben", "polonius", "TL;DR: done! Everything landed in 1.85.")
    w.wait_row(mid, kind="update")
    assert wait_until(lambda: bool(w.dms_to("ben"))), w.bot.log()[-3000:]
    assert w.dms_to("ben") == [
        "You said **Scale Polonius** is done :tada: If it is finished, send "
        "`complete polonius` and I will stop asking for updates. Until then it stays active."
    ]
    with w.db.engine.connect() as conn:
        state = conn.execute(
            text("SELECT state FROM goals WHERE id = :g"), {"g": w.goals["polonius"].id}
        ).scalar_one()
    assert state == "active"
    status = ask(w, "status polonius")
    assert "(bot: active)" in status and ":tada: done since" in health_line(status)
    # The owner confirms: now it is complete.
    dm(w, "ben", "complete polonius")
    assert wait_until(lambda: len(w.dms_to("ben")) == 2)
    assert "(bot: completed" in ask(w, "status polonius")


def prompt_message(w: World, slug: str) -> int:
    done = run_cli(w.bot.conf, "prompt", "--now", "--goal", slug)
    assert done.returncode == 0, done.stdout + done.stderr
    with w.db.engine.connect() as conn:
        ids = conn.execute(
            text(
                "SELECT d.zulip_message_ids FROM deliveries d WHERE d.kind = 'prompt' "
                "AND d.goal_id = :g"
            ),
            {"g": w.goals[slug].id},
        ).scalar_one()
    return int(ids.split(",")[0])


def test_a_reaction_on_the_prompt_sets_the_health_and_removing_it_takes_it_back(
    world: World,
) -> None:
    w = world
    prompt = prompt_message(w, "polonius")
    text_of_prompt = w.server.message(prompt)["content"]
    assert ":red_circle: blocked" in text_of_prompt  # the prompt says which emoji mean what
    # Eve owns nothing: her reaction changes nothing. Ben's does.
    w.server.add_reaction(w.users["eve"], prompt, "green_circle")
    assert health_line(ask(w, "status polonius")).startswith("**Health**: not given yet")
    w.server.add_reaction(w.users["ben"], prompt, "red_circle")
    line = health_line(ask(w, "status polonius"))
    assert line.startswith("**Health**: :red_circle: blocked since "), line
    assert "by Ben Owner with a reaction" in line
    # A thumbs up is no health call.
    w.server.add_reaction(w.users["ben"], prompt, "+1")
    assert ":red_circle: blocked" in health_line(ask(w, "status polonius"))
    w.server.remove_reaction(w.users["ben"], prompt, "red_circle")
    assert health_line(ask(w, "status polonius")).startswith("**Health**: not given yet")
    with w.db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM health_reactions")).scalar_one() == 0


def test_health_reactions_made_while_the_bot_was_down_are_caught_up(world: World) -> None:
    w = world
    polonius = prompt_message(w, "polonius")
    asynch = prompt_message(w, "async")
    w.server.add_reaction(w.users["chloe"], asynch, "yellow_circle")
    assert ":yellow_circle: at risk" in health_line(ask(w, "status async"))
    assert w.bot.terminate() == 0

    w.server.add_reaction(w.users["ben"], polonius, "red_circle")  # added while down
    w.server.remove_reaction(w.users["chloe"], asynch, "yellow_circle")  # and one taken back

    restarted = BotProcess(w.bot.conf).start()
    w.bot = restarted
    try:
        assert wait_until(lambda: "caught up with 2 health reactions" in restarted.log())
        assert ":red_circle: blocked" in health_line(ask(w, "status polonius"))
        assert health_line(ask(w, "status async")).startswith("**Health**: not given yet")
        assert restarted.terminate() == 0
    finally:
        if restarted.alive():
            restarted.kill()
    # Caught up once: the next start finds nothing left to replay.
    again = BotProcess(w.bot.conf).start()
    try:
        assert again.terminate() == 0
        assert "health reactions" not in again.log()
    finally:
        if again.alive():
            again.kill()
