"""``python manage.py train_router NAME --org SLUG [--holdout 0.25] [--seed 0] [--min-labels 40]
[--no-activate]``: train the router's learned scorer on its labelled pairs and store it with its
held-out evaluation (APGR, CPT 80 % / 95 %, AUC), next to the current scorer's and random's."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from evaluation.services.training import NotEnoughLabels, router_train
from gateway.models import Router


class Command(BaseCommand):
    help = "Train a router's learned scorer on its labelled pairs and store the evaluation."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="router name (with or without 'router:')")
        parser.add_argument("--org", required=True, metavar="SLUG")
        parser.add_argument("--holdout", type=float, default=0.25)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--min-labels", type=int, default=40)
        parser.add_argument("--epochs", type=int, default=8)
        parser.add_argument(
            "--no-activate", action="store_true", help="store the model but keep the current one"
        )

    def handle(self, *args, **opts) -> None:
        if not 0.05 <= opts["holdout"] <= 0.9:
            raise CommandError("--holdout must be between 0.05 and 0.9")
        name = opts["name"].removeprefix("router:")
        router = Router.objects.filter(org__slug=opts["org"], name=name).first()
        if router is None:
            raise CommandError(f"no router {name!r} in organisation {opts['org']!r}")
        try:
            result = router_train(
                router=router,
                actor=None,
                holdout=opts["holdout"],
                seed=opts["seed"],
                min_labels=opts["min_labels"],
                activate=not opts["no_activate"],
                epochs=opts["epochs"],
            )
        except NotEnoughLabels as exc:
            raise CommandError(str(exc)) from None
        ev = result.evaluation
        out = self.stdout
        out.write(f"router {router.name}: trained on {ev['train']} pairs, tested on {ev['test']}")
        for side in ("learned", "current", "random"):
            s = ev[side]
            cpt = f", CPT80 {s['cpt80']}, CPT95 {s['cpt95']}" if "cpt80" in s else ""
            auc = f", AUC {s['auc']}" if s.get("auc") is not None else ""
            out.write(f"  {side:8} ({s['scorer']}): APGR {s['apgr']}{cpt}{auc}")
        state = "active" if result.model.active else "stored, not active"
        out.write(f"model #{result.model.pk} {state}")
