"""Acceptance-suite plumbing (no fixtures of the product live here).

``test_delivery_matrix.py`` runs many cases concurrently inside ONE ``voicebot run`` per
platform; its tests carry ``xdist_group`` marks so that each platform's cases land on one
xdist worker. ``test_slack_blackbox.py`` and ``test_telegram_blackbox.py`` are one group
each for the same reason: their module's ``voicebot run`` then starts once, not once per
worker. Those marks only take effect with ``--dist loadgroup``; ``loadgroup`` is
``load`` plus "keep a group together", so when the default ``load`` is in force we switch
to it (tests without a group are scheduled exactly as before). Workers parse the command
line again, so the controller tells them through ``workerinput``.
"""

from __future__ import annotations

from typing import Any

import pytest

_FLAG = "acceptance_loadgroup"


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None:
        if getattr(config.option, "dist", "no") == "load":
            config.option.dist = "loadgroup"
    elif workerinput.get(_FLAG):
        config.option.loadgroup = True  # read by xdist when it names the collected tests


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    if node.config.getvalue("dist") == "loadgroup":
        node.workerinput[_FLAG] = True
