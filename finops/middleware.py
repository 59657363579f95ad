"""Django middleware: the request id (taken from a sane ``X-Request-ID`` or generated, put into
every log line through ``finops.logging.request_id_var`` and echoed in the response), and the
refusal of query strings no database column could hold."""

from __future__ import annotations

import re
import uuid

from django.http import HttpResponseBadRequest, JsonResponse

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


class NulInQueryMiddleware:
    """A NUL byte in the query string is refused with a 400 before any view runs.

    No text column can hold one (PostgreSQL raises ``DataError`` on it; SQLite truncates), so a
    filter such as ``?status=%00`` would otherwise be a 500 on PostgreSQL and silently match a
    different string on SQLite. Forms already refuse NUL (Django's validator); query-string
    filters do not go through forms.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if any(
            "\x00" in key or any("\x00" in value for value in values)
            for key, values in request.GET.lists()
        ):
            message = "The query string contains a NUL character."
            if request.path.startswith("/api/"):
                return JsonResponse({"detail": message}, status=400)
            return HttpResponseBadRequest(message, content_type="text/plain")
        return self.get_response(request)
