"""The audited-save helpers (``teams.audit``) and the budget's ownership rules (``Budget.clean``),
which every budget write (API, admin, config files) goes through."""

from __future__ import annotations

from decimal import Decimal
from unittest import mock

from django.core.exceptions import ValidationError

from teams import services
from teams.audit import audited_delete, audited_save, changes_apply
from teams.models import AuditEntry, Budget, Team
from tests import factories as f
from tests.base import TwoOrgsTestCase


class AuditedSaveTests(TwoOrgsTestCase):
    def save(self, team: Team, **kwargs) -> Team:
        return audited_save(
            team,
            actor=self.admin_a,
            org=team.org,
            action="team.updated",
            snapshot=services.team_snapshot,
            **kwargs,
        )

    def test_one_entry_with_before_and_after(self):
        before = services.team_snapshot(self.team_a)
        self.team_a.rpm_limit = 10
        self.save(self.team_a, before=before)
        entry = AuditEntry.objects.get(action="team.updated")
        self.assertEqual((entry.before["rpm_limit"], entry.after["rpm_limit"]), (None, 10))
        self.assertEqual(
            (entry.actor, entry.org, entry.object_id),
            (self.admin_a, self.org_a, str(self.team_a.pk)),
        )
        self.assertEqual(Team.objects.get(pk=self.team_a.pk).rpm_limit, 10)

    def test_an_invalid_object_is_neither_saved_nor_recorded(self):
        self.team_a.name = ""
        with self.assertRaises(ValidationError) as caught:
            self.save(self.team_a, before={})
        self.assertIn("name", caught.exception.message_dict)
        self.assertEqual(Team.objects.get(pk=self.team_a.pk).name, "Search")
        self.assertFalse(AuditEntry.objects.filter(action="team.updated").exists())

    def test_the_save_is_undone_when_the_entry_cannot_be_recorded(self):
        self.team_a.name = "Renamed"
        with (
            mock.patch.object(AuditEntry.objects, "create", side_effect=RuntimeError("db")),
            self.assertRaises(RuntimeError),
        ):
            self.save(self.team_a, before={})
        self.assertEqual(Team.objects.get(pk=self.team_a.pk).name, "Search")

    def test_skip_unchanged_neither_saves_nor_records(self):
        before = services.team_snapshot(self.team_a)
        with mock.patch.object(Team, "save") as save:
            self.save(self.team_a, before=before, skip_unchanged=True)
        save.assert_not_called()
        self.assertFalse(AuditEntry.objects.filter(action="team.updated").exists())

    def test_delete_records_the_object_it_deletes(self):
        budget = f.make_budget(self.org_a, scope="team", team=self.team_a)
        pk = budget.pk
        audited_delete(
            budget,
            actor=None,
            org=self.org_a,
            action="budget.deleted",
            snapshot=services.budget_snapshot,
        )
        self.assertFalse(Budget.objects.filter(pk=pk).exists())
        entry = AuditEntry.objects.get(action="budget.deleted")
        self.assertEqual((entry.object_id, entry.actor_label), (str(pk), "system"))
        self.assertEqual(entry.before["team"], "search")

    def test_changes_outside_the_editable_fields_are_refused_by_name(self):
        with self.assertRaises(ValidationError) as caught:
            changes_apply(self.team_a, {"slug": "x", "org": None, "name": "y"}, editable=("name",))
        self.assertEqual(set(caught.exception.message_dict), {"org", "slug"})
        self.assertEqual(self.team_a.name, "Search")  # nothing applied

    def test_audit_record_stays_importable_from_the_services(self):
        from teams.audit import audit_record

        self.assertIs(services.audit_record, audit_record)


class BudgetOwnershipTests(TwoOrgsTestCase):
    def budget(self, **fields) -> Budget:
        return Budget(org=self.org_a, period="day", limit_usd=Decimal("1"), **fields)

    def errors(self, budget: Budget) -> dict:
        with self.assertRaises(ValidationError) as caught:
            budget.full_clean()
        return caught.exception.message_dict

    def test_feature_and_key_budgets_get_their_team(self):
        feature_budget = self.budget(scope="feature", feature=self.feature_a)
        feature_budget.full_clean()
        self.assertEqual(feature_budget.team, self.team_a)
        key_budget = self.budget(scope="key", key=self.minted_a2.key)
        key_budget.full_clean()
        self.assertEqual(key_budget.team, self.team_a2)

    def test_everything_a_budget_names_is_its_organisations(self):
        errors = self.errors(self.budget(scope="feature", feature=self.feature_b))
        self.assertEqual(
            errors,
            {
                "team": ["belongs to another organisation"],
                "feature": ["belongs to another organisation"],
            },
        )
        errors = self.errors(self.budget(scope="key", key=self.minted_b.key, team=self.team_a))
        self.assertEqual(errors, {"key": ["belongs to another organisation"]})

    def test_the_team_owns_the_feature_or_key(self):
        errors = self.errors(
            self.budget(scope="feature", team=self.team_a2, feature=self.feature_a)
        )
        self.assertEqual(errors, {"team": ["does not own this feature or key"]})

    def test_the_service_and_the_model_give_the_same_errors(self):
        with self.assertRaises(ValidationError) as caught:
            services.budget_create(
                actor=self.admin_a,
                org=self.org_a,
                scope="key",
                period="day",
                limit_usd=Decimal("1"),
                team=self.team_a,
                key=self.minted_a2.key,
            )
        self.assertEqual(
            caught.exception.message_dict, {"team": ["does not own this feature or key"]}
        )
        self.assertFalse(AuditEntry.objects.filter(action="budget.created").exists())

    def test_an_unknown_scope_is_the_fields_error(self):
        errors = self.errors(self.budget(scope="fortnight"))
        self.assertIn("scope", errors)
