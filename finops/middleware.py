"""Request id for Django requests: taken from a sane ``X-Request-ID`` or generated, put into
every log line through ``finops.logging.request_id_var`` and echoed in the response."""

from __future__ import annotations

import re
import uuid

from finops.logging import request_id_var

_SAFE = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _SAFE.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response["X-Request-ID"] = request_id
        return response
