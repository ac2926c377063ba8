"""How long an approval waits: LEASHD_APPROVAL_TIMEOUT_SECONDS when it is given (in any
layer), else the policies' `approval_timeout_seconds` (strict 2 minutes, permissive 10),
else 300 s. Checked on the request the daemon actually shows an approver: its deadline."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from leashd.daemon.app import build
from leashd.daemon.config import load_config
from leashd.gate.gate import Session

ASKING = 'ask publish cmd "npm publish" reason "Publishing is for humans"\ndefault allow\n'


def settings_of(tmp_path: Path, env: dict[str, str], yaml: str = ""):
    """The settings exactly as the daemon loads them: config.yaml, no .env, `env`."""
    (tmp_path / "config.yaml").write_text(yaml)
    environ = {
        "LEASHD_STORAGE_BACKEND": "memory",
        "LEASHD_AUDIT_LOG_PATH": str(tmp_path / "audit.jsonl"),
        "LEASHD_APPROVED_DIRECTORIES": str(tmp_path),
        **env,
    }
    return load_config(
        yaml_path=tmp_path / "config.yaml", env_file=tmp_path / "no.env", environ=environ
    ).settings


def waits(tmp_path: Path, env: dict[str, str], yaml: str = "", then=None) -> list[float]:
    """Build the daemon, ask for one approval (`git push`, which every built-in policy asks
    about) and return how long each request shown was given until its deadline.
    `then(daemon)` runs before a second request, when given."""
    settings = settings_of(tmp_path, env, yaml)
    shown: list[float] = []

    async def main():
        daemon = await build(settings, approvers={"42"}, recover=False)
        try:
            loop = asyncio.get_running_loop()

            async def ask(req):
                shown.append(round(req.deadline - loop.time()))  # no answer counts after it
                daemon.approvals.press(req.id, "42", req.chat, "reject")

            session = Session("s1", "c1", str(tmp_path))
            call = {"command": "git push origin main"}
            verdict = await daemon.gate.check(session, "Bash", call, ask)
            assert verdict.resolution is not None and verdict.resolution.how == "rejected"
            if then is not None:
                then(daemon)
                await daemon.gate.check(session, "Bash", {"command": "npm publish"}, ask)
        finally:
            await daemon.close()

    asyncio.run(main())
    return shown


@pytest.mark.parametrize(
    ("policies", "seconds"),
    [("strict", 120), ("permissive", 600), ("default,dev-tools", 300), ("", 300)],
)
def test_the_policy_says_how_long_an_approval_waits(tmp_path, monkeypatch, policies, seconds):
    monkeypatch.setenv("LEASHD_HOME", str(tmp_path / "home"))
    env = {"LEASHD_POLICY_FILES": policies} if policies else {}
    assert waits(tmp_path, env) == [seconds]


@pytest.mark.parametrize(
    ("env", "yaml"),
    [
        ({"LEASHD_APPROVAL_TIMEOUT_SECONDS": "45"}, ""),
        ({}, "approval_timeout_seconds: 45\n"),
        ({"LEASHD_APPROVAL_TIMEOUT_SECONDS": "45"}, "approval_timeout_seconds: 20\n"),
    ],
    ids=["environment", "config.yaml", "environment-over-config.yaml"],
)
def test_an_explicit_setting_wins_over_the_policy(tmp_path, monkeypatch, env, yaml):
    monkeypatch.setenv("LEASHD_HOME", str(tmp_path / "home"))
    assert waits(tmp_path, {"LEASHD_POLICY_FILES": "strict", **env}, yaml) == [45]


def test_the_setting_equal_to_the_default_is_still_explicit(tmp_path, monkeypatch):
    # 300 given on purpose is not "not given": it holds over strict's two minutes
    monkeypatch.setenv("LEASHD_HOME", str(tmp_path / "home"))
    env = {"LEASHD_POLICY_FILES": "strict", "LEASHD_APPROVAL_TIMEOUT_SECONDS": "300"}
    assert waits(tmp_path, env) == [300]


def test_later_policy_files_set_the_timeout_key_by_key(tmp_path, monkeypatch):
    monkeypatch.setenv("LEASHD_HOME", str(tmp_path / "home"))
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("settings: {approval_timeout_seconds: 45}\nrules: []\n")
    assert waits(tmp_path, {"LEASHD_POLICY_FILES": f"strict,{overlay}"}) == [45]
    # an overlay that does not set it leaves the earlier file's value
    silent = tmp_path / "silent.yaml"
    silent.write_text("settings: {default_action: require_approval}\nrules: []\n")
    assert waits(tmp_path, {"LEASHD_POLICY_FILES": f"permissive,{silent}"}) == [600]


def test_a_reloaded_policy_sets_the_wait_of_approvals_asked_after(tmp_path, monkeypatch):
    monkeypatch.setenv("LEASHD_HOME", str(tmp_path / "home"))
    policy = tmp_path / "mine.leash"
    policy.write_text("approval-timeout 30\n" + ASKING.replace("default allow", "default ask"))

    def edit_and_reload(daemon):
        policy.write_text(policy.read_text().replace("approval-timeout 30", "approval-timeout 90"))
        assert daemon.gate.reload().ok

    assert waits(tmp_path, {"LEASHD_POLICY_FILES": str(policy)}, then=edit_and_reload) == [30, 90]


def test_an_expired_request_says_how_long_it_waited(tmp_path, monkeypatch):
    monkeypatch.setenv("LEASHD_HOME", str(tmp_path / "home"))
    policy = tmp_path / "mine.leash"
    policy.write_text("approval-timeout 1\n" + ASKING)
    settings = settings_of(tmp_path, {"LEASHD_POLICY_FILES": str(policy)})

    async def main():
        daemon = await build(settings, approvers={"42"}, recover=False)
        try:

            async def ask(req):
                pass  # shown, never answered

            session = Session("s1", "c1", str(tmp_path))
            return await daemon.gate.check(session, "Bash", {"command": "npm publish"}, ask)
        finally:
            await daemon.close()

    verdict = asyncio.run(main())
    assert verdict.action == "deny" and verdict.resolution.how == "expired"
    assert verdict.reason == "no answer within 1 s"


def test_the_telegram_approval_says_the_wait_the_policy_set(tmp_path, monkeypatch):
    """The message on the phone names the request's own wait (strict: 2 minutes), not the
    connector's default: an approval that says 5 min and expires after 2 would mislead."""
    from leashd.connectors.telegram import TelegramConnector

    monkeypatch.setenv("LEASHD_HOME", str(tmp_path / "home"))
    settings = settings_of(tmp_path, {"LEASHD_POLICY_FILES": "strict"})
    texts: list[str] = []

    async def main():
        daemon = await build(settings, approvers={"42"}, recover=False)
        try:
            conn = TelegramConnector.__new__(TelegramConnector)  # only its text is used
            conn.timeout = 300.0

            async def ask(req):
                text = conn._approval(req)
                texts.append(str(getattr(text, "text", text)))
                daemon.approvals.press(req.id, "42", req.chat, "reject")

            await daemon.gate.check(Session("s1", "c1", str(tmp_path)), "Bash",
                                    {"command": "git push origin main"}, ask)  # fmt: skip
        finally:
            await daemon.close()

    asyncio.run(main())
    assert len(texts) == 1 and "within 2 min" in texts[0], texts
