"""Control-plane routes under /api/v1/ (no API root view: several apps share the prefix)."""

from rest_framework.routers import SimpleRouter

from teams import apis

router = SimpleRouter()
router.register("orgs", apis.OrganizationViewSet, basename="org")
router.register("teams", apis.TeamViewSet, basename="team")
router.register("members", apis.MembershipViewSet, basename="membership")
router.register("features", apis.FeatureViewSet, basename="feature")
router.register("keys", apis.KeyViewSet, basename="key")
router.register("budgets", apis.BudgetViewSet, basename="budget")
router.register("cache-policies", apis.CachePolicyViewSet, basename="cache-policy")
router.register("audit", apis.AuditEntryViewSet, basename="audit-entry")

urlpatterns = router.urls
