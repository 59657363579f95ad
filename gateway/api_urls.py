"""Gateway catalog routes under /api/v1/."""

from rest_framework.routers import SimpleRouter

from gateway import apis

router = SimpleRouter()
router.register("providers", apis.ProviderViewSet, basename="provider")
router.register("models", apis.LLMModelViewSet, basename="model")
router.register("groups", apis.GroupViewSet, basename="group")
router.register("routers", apis.RouterViewSet, basename="router")

urlpatterns = router.urls
