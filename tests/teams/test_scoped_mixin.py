"""The scoped API base refuses, when a class is defined, every way a view could read past its
tenant selector; a deliberate bypass must be spelled ``dangerously_*``."""

from __future__ import annotations

import pytest
from django.urls import get_resolver
from rest_framework.views import APIView

from teams.apis import PROTECTED_METHODS, ScopedViewSet
from teams.permissions import Subject
from teams.selectors import team_list_for_user


@pytest.mark.parametrize("name", PROTECTED_METHODS)
def test_overriding_a_protected_method_fails_at_class_definition(name):
    with pytest.raises(TypeError, match=f"overrides {name}.*dangerously_{name}"):
        type("Leaky", (ScopedViewSet,), {name: lambda self: None})


def test_setting_a_queryset_fails_at_class_definition():
    with pytest.raises(TypeError, match="sets queryset"):
        type("Leaky", (ScopedViewSet,), {"queryset": object()})


def test_a_subclass_of_a_subclass_is_checked_too():
    class Fine(ScopedViewSet):
        selector = team_list_for_user
        subject = Subject.TEAM

    with pytest.raises(TypeError):
        type("Leaky", (Fine,), {"get_queryset": lambda self: None})


def test_narrow_queryset_receives_the_selectors_rows_and_a_bypass_is_honoured():
    seen = []

    class Narrowed(ScopedViewSet):
        selector = staticmethod(lambda user: ["scoped", user])
        subject = Subject.TEAM

        def narrow_queryset(self, queryset):
            seen.append(queryset)
            return queryset[:1]

    view = Narrowed()
    view.request = type("Request", (), {"user": "alice"})()
    assert view.get_queryset() == ["scoped"]
    assert seen == [["scoped", "alice"]]

    class Bypass(Narrowed):
        def dangerously_get_queryset(self):
            return ["everything"]

    bypass = Bypass()
    bypass.request = view.request
    assert bypass.get_queryset() == ["everything"]


def _api_views(patterns, found):
    for pattern in patterns:
        if hasattr(pattern, "url_patterns"):
            _api_views(pattern.url_patterns, found)
        else:
            view = getattr(pattern.callback, "cls", None)
            if view is not None and issubclass(view, APIView):
                found.add(view)
    return found


def test_every_api_view_of_the_product_is_scoped():
    from teams.apis import ScopedAPIMixin

    ours = {
        v
        for v in _api_views(get_resolver().url_patterns, set())
        if v.__module__.split(".")[0] in {"teams", "gateway", "reports", "evaluation"}
    }
    assert len(ours) >= 10  # the sweep sees the product's API
    unscoped = {
        f"{v.__module__}.{v.__qualname__}" for v in ours if not issubclass(v, ScopedAPIMixin)
    }
    assert unscoped == set()
