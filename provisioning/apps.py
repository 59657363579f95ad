from django.apps import AppConfig


class ProvisioningConfig(AppConfig):
    """Declarative config (``apply_config``), the demo (``load_demo``) and the embedded product
    (``run_embedded``): the layer above the control plane and the gateway that sets both up.
    It owns no models."""

    name = "provisioning"
    verbose_name = "Provisioning"
