from django.apps import AppConfig


class GatewayConfig(AppConfig):
    name = "gateway"
    verbose_name = "Gateway"

    def ready(self) -> None:
        # cache invalidation on config changes; the ledger's and the balancer's /metrics sources
        from gateway import balancer, ledger, signals  # noqa: F401
