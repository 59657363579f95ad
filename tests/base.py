"""The shared test world: two organisations with teams and people in every role, plus an
outsider, built once per class. Cross-tenant tests compare what A's users see with B's data."""

from __future__ import annotations

from django.test import TestCase

from teams.models import Role
from tests import factories as f


class TwoOrgsTestCase(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.org_a = f.make_org("acme")
        cls.org_b = f.make_org("globex")
        cls.team_a = f.make_team(cls.org_a, "search")
        cls.team_a2 = f.make_team(cls.org_a, "ads")
        cls.team_b = f.make_team(cls.org_b, "search")
        cls.feature_a = f.make_feature(cls.team_a, "summarize")
        cls.feature_b = f.make_feature(cls.team_b, "summarize")

        cls.admin_a = f.make_user("admin@acme.test")
        cls.finance_a = f.make_user("finance@acme.test")
        cls.lead_a = f.make_user("lead@acme.test")
        cls.member_a = f.make_user("member@acme.test")
        cls.lead_a2 = f.make_user("lead2@acme.test")
        cls.admin_b = f.make_user("admin@globex.test")
        cls.lead_b = f.make_user("lead@globex.test")
        cls.outsider = f.make_user("outsider@nowhere.test")
        cls.superuser = f.make_user("root@platform.test", is_superuser=True, is_staff=True)

        f.make_member(cls.admin_a, cls.org_a, Role.ADMIN)
        f.make_member(cls.finance_a, cls.org_a, Role.FINANCE)
        f.make_member(cls.lead_a, cls.org_a, Role.LEAD, cls.team_a)
        f.make_member(cls.member_a, cls.org_a, Role.MEMBER, cls.team_a)
        f.make_member(cls.lead_a2, cls.org_a, Role.LEAD, cls.team_a2)
        f.make_member(cls.admin_b, cls.org_b, Role.ADMIN)
        f.make_member(cls.lead_b, cls.org_b, Role.LEAD, cls.team_b)

        cls.minted_a = f.make_key(cls.team_a, "search-svc")
        cls.minted_a2 = f.make_key(cls.team_a2, "ads-svc")
        cls.minted_b = f.make_key(cls.team_b, "globex-svc")
