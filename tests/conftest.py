import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from leashd.policy import Evaluator, compile_policy, load_policies
from leashd.policy.facts import Context

if TYPE_CHECKING:
    from tests.fakes.anthropic_api import FakeAnthropic

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus"
if not CORPUS.is_dir():
    CORPUS = ROOT / "tests" / "corpus"


def worlds_dir() -> Path:
    """Where tests build a home and a project for the real agent. Never under the system's
    temporary directory: the sandbox treats writes there specially, so a home inside it is
    not a home like any other. Under the checkout, unless the checkout itself is in /tmp."""
    base = ROOT / ".pytest-worlds"
    real = os.path.realpath(base)
    if any(real == t or real.startswith(t + "/") for t in ("/tmp", "/var/tmp")):
        base = Path.home() / ".cache" / "leashd-test-worlds"
    base.mkdir(parents=True, exist_ok=True)
    return base


_AGENT_ENV = ("ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY", "HOME",
              "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "CLAUDE_CODE_MAX_RETRIES")  # fmt: skip


@contextlib.contextmanager
def agent_world() -> Iterator[tuple["FakeAnthropic", Path, Path, Path]]:
    """A world for the real CLI in this process: a fake Anthropic API, a home with a project
    in it, and the environment pointing the CLI there; all put back and removed after.
    Yields (fake, root, home, project)."""
    from tests.fakes.anthropic_api import FakeAnthropic

    root = worlds_dir() / uuid.uuid4().hex[:12]
    home = root / "home"
    proj = home / "proj"
    proj.mkdir(parents=True)
    saved = {k: os.environ.get(k) for k in _AGENT_ENV}
    with FakeAnthropic() as fake:
        os.environ.update(fake.env(str(home)))
        try:
            yield fake, root, home, proj
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            shutil.rmtree(root, ignore_errors=True)


WORLD = {"cwd": "/home/dev/project", "home": "/home/dev", "approved_dirs": ["/home/dev/project"]}


@pytest.fixture(scope="session", autouse=True)
def _private_lint_cache(tmp_path_factory):
    """Lint results cached by the CLI go to a directory of this test session, never to the
    user's ~/.cache, and no test sees results of an earlier session."""
    old = os.environ.get("LEASHD_CACHE_DIR")
    os.environ["LEASHD_CACHE_DIR"] = str(tmp_path_factory.mktemp("leashd-cache"))
    yield
    if old is None:
        os.environ.pop("LEASHD_CACHE_DIR", None)
    else:
        os.environ["LEASHD_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def world() -> Context:
    return Context.create(**WORLD)


@pytest.fixture(scope="session")
def default_policy():
    return load_policies([])


@pytest.fixture(scope="session")
def evaluator(default_policy, world) -> Evaluator:
    return Evaluator(compile_policy(default_policy), world)


def corpus_rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (CORPUS / f"{name}.jsonl").read_text().splitlines()]
