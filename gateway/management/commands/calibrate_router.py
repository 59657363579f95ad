"""``python manage.py calibrate_router NAME --org SLUG --strong-share 0.3 [--last N]
[--prompts FILE.jsonl] [--dry-run]``: set a router's threshold so that the given share of
recent prompts (the router's stored sample, or a file) would go to its strong model."""

from __future__ import annotations

from pathlib import Path

import orjson
from django.core.management.base import BaseCommand, CommandError

from gateway.models import Router
from gateway.services.routing import router_calibrate, router_prompts_recent


def _read_jsonl(path: Path) -> list:
    """One prompt per line: ``{"messages": [...]}``, ``{"prompt": "..."}``, a messages array
    or a JSON string."""
    prompts = []
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise CommandError(f"--prompts: cannot read {path}: {exc.strerror}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise CommandError(f"{path}:{number}: not JSON ({exc})") from None
        if isinstance(item, dict):
            item = item.get("messages", item.get("prompt"))
        if not isinstance(item, str | list) or not item:
            raise CommandError(f"{path}:{number}: expected messages, a prompt or a string")
        prompts.append(item)
    return prompts


class Command(BaseCommand):
    help = (
        "Set a router's threshold so that --strong-share of the last N prompts (its stored "
        "sample, or --prompts FILE.jsonl) would go to the strong model: the threshold is the "
        "(1 - share) quantile of their scores under the router's current scorer."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="router name (with or without 'router:')")
        parser.add_argument("--org", required=True, metavar="SLUG")
        parser.add_argument("--strong-share", required=True, type=float, metavar="SHARE")
        parser.add_argument("--last", type=int, default=1000, metavar="N")
        parser.add_argument("--prompts", type=Path, metavar="FILE.jsonl")
        parser.add_argument("--dry-run", action="store_true", help="print, change nothing")
        parser.add_argument("--actor", default="system", help="who the audit log names")

    def handle(self, *args, **opts) -> None:
        share = opts["strong_share"]
        if not 0.0 <= share <= 1.0:
            raise CommandError("--strong-share must be between 0 and 1")
        if opts["last"] < 1:
            raise CommandError("--last must be at least 1")
        name = opts["name"].removeprefix("router:")
        router = (
            Router.objects.select_related("org", "strong", "weak")
            .filter(org__slug=opts["org"], name=name)
            .first()
        )
        if router is None:
            raise CommandError(f"no router '{name}' in organisation '{opts['org']}'")
        if opts["prompts"]:
            prompts = _read_jsonl(opts["prompts"])[-opts["last"] :]
            source = str(opts["prompts"])
        else:
            prompts = router_prompts_recent(router=router, last=opts["last"])
            source = "the router's stored prompts"
        if not prompts:
            raise CommandError(
                f"no prompts to calibrate on in {source} (is store_prompts on? or pass --prompts)"
            )
        result = router_calibrate(
            router=router,
            actor=opts["actor"],
            strong_share=share,
            prompts=prompts,
            dry_run=opts["dry_run"],
        )
        verb = "would set" if opts["dry_run"] else "set"
        self.stdout.write(
            f"router {router.name}: {verb} threshold {result.before:.4f} -> "
            f"{result.threshold:.6f} ({result.scorer} scorer, {result.prompts} prompts from "
            f"{source})\n"
            f"strong share: wanted {share:.1%}, achieved {result.strong_share:.1%}"
        )
