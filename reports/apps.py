from django.apps import AppConfig


class ReportsConfig(AppConfig):
    name = "reports"
    verbose_name = "Reporting"

    def ready(self) -> None:
        from gateway.metrics import scrape_source
        from reports.metrics import budget_utilisation_gauge

        scrape_source(budget_utilisation_gauge)
