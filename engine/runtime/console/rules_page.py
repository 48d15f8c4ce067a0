"""The rules page: the rule files, each rule's version in force and the versions the ledger
keeps, the last reload's result (every problem as FILE:LINE:COL) and each rule's examples run
as ``nextstep test`` runs them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from nextstep.engine.rules.config import Config
from nextstep.engine.rules.examples import check_example
from nextstep.engine.rules.rule import Rule
from nextstep.engine.runtime.console.sessions import Session
from nextstep.engine.runtime.console.web import PREFIX, Web


def shown_path(path: str | Path, base: Path) -> str:
    """A file as the page names it: relative to the config's folder when below it."""
    relative = os.path.relpath(path, base)
    return str(path) if relative.startswith("..") else relative


def examples(rule: Rule, config: Config) -> list[dict[str, Any]]:
    """Each example of ``rule``: where it is, and what differs (nothing: it passes)."""
    found = []
    for example in rule.examples:
        differences = check_example(rule, example, default_country=config.default_country)
        found.append(
            {
                "index": example.index,
                "line": example.line,
                "ok": not differences,
                "differences": differences,
            }
        )
    return found


def rule_doc(rule: Rule, config: Config, kept: list[str]) -> dict[str, Any]:
    """One rule as the page shows it."""
    return {
        "id": rule.id,
        "description": rule.description,
        "where": f"{shown_path(rule.file, config.base_dir)}:{rule.line}",
        "version": rule.version,
        "trigger": f"{rule.trigger_kind} {rule.source_key}",
        "channel": rule.send.channel,
        "fallbacks": [step.send.channel for step in rule.policy.fallback],
        "kept": sorted(v for v in kept if v != rule.version),
        "examples": examples(rule, config),
    }


class RulesPage:
    """``GET /ui/rules``."""

    def __init__(self, web: Web) -> None:
        self.web = web

    async def page(self, request: Request, session: Session) -> Response:
        """The rules in force and the last reload."""
        host = self.web.host
        config = host.config()
        rules = []
        for rule in sorted(config.rules.values(), key=lambda r: (str(r.file), r.line)):
            kept = await host.runner.call(host.reads.rule_versions, rule.id)
            rules.append(rule_doc(rule, config, list(kept)))
        files: dict[str, list[str]] = {
            shown_path(f, config.base_dir): [] for f in config.rule_files
        }
        for doc in rules:
            files.setdefault(doc["where"].rsplit(":", 1)[0], []).append(doc["id"])
        passed = sum(e["ok"] for r in rules for e in r["examples"])
        failed = sum(not e["ok"] for r in rules for e in r["examples"])
        return self.web.render(
            "rules.html",
            session,
            config_file=shown_path(config.path, config.base_dir),
            files=files,
            rules=rules,
            reload=host.reload(),
            passed=passed,
            failed=failed,
        )

    def routes(self) -> list[BaseRoute]:
        """The page's route."""
        return [Route(f"{PREFIX}/rules", self.web.page(self.page), methods=["GET"])]
