"""Declarative configuration: parse, validate, diff and apply one organisation's YAML file.

The file is the desired state of one organisation (its providers, models with prices, groups,
routers, teams with leads and features, and budgets). Applying it is idempotent: the plan is the
difference between the file and the database, and an empty plan writes nothing. The whole apply
runs in one transaction, so an invalid file (or a failure half-way) changes nothing.

Three phases, each usable on its own:

- ``config_load`` turns YAML text into plain data (duplicate keys are errors);
- ``config_validate`` checks that data against the schema and returns a ``ConfigSpec``,
  collecting every error with its path (``teams[1].budgets[0].limit_usd: not a decimal``);
- ``config_apply`` plans the changes against the database (``config_plan``) and, unless
  ``dry_run``, applies them, recording one audit entry per change.

Objects the file does not list are kept unless ``prune`` is set. Prices are history: a changed
price adds a ``ModelPrice`` row effective now, it never rewrites an old one.

The modules, in the order a file goes through them:

- ``spec``: loading the YAML, the validated document's dataclasses, ``ConfigError``;
- ``checker``: typed checks of single values; ``validate_catalog``, ``validate_teams``: the
  sections; ``validate``: the top level and the references between sections;
- ``changes``: ``Change`` and the ``Plan`` being built; ``plan``: the order of the planners
  and the organisation; ``plan_catalog``, ``plan_teams``: one planner per kind;
  ``prune``: the table of prunable kinds and the loop over it;
- ``apply``: running a plan in a transaction.
"""

from provisioning.config.apply import ConfigResult, config_apply
from provisioning.config.changes import Change
from provisioning.config.plan import config_plan
from provisioning.config.spec import ConfigError, ConfigSpec, config_load
from provisioning.config.validate import config_validate

__all__ = [
    "Change",
    "ConfigError",
    "ConfigResult",
    "ConfigSpec",
    "config_apply",
    "config_load",
    "config_plan",
    "config_validate",
]
