"""Post an admin change form the way a browser would: every field and inline as shown."""

from __future__ import annotations

from typing import Any


def change_form_data(client: Any, url: str, **overrides: Any) -> dict[str, Any]:
    """The form's current values (main form and every inline's management form)."""
    page = client.get(url)
    assert page.status_code == 200, page.status_code
    form = page.context["adminform"].form
    data: dict[str, Any] = {}
    for name, field in form.fields.items():
        if field.disabled or (name not in form.initial and form[name].value() is None):
            continue
        value = form[name].value()
        data[name] = (
            value.isoformat() if hasattr(value, "isoformat") else ("" if value is None else value)
        )
    for inline in page.context["inline_admin_formsets"]:
        formset = inline.formset
        data.update(
            {
                f"{formset.prefix}-{key}": value
                for key, value in formset.management_form.initial.items()
            }
        )
        for index, inline_form in enumerate(formset.forms):
            if inline_form.instance.pk is not None:
                data[f"{formset.prefix}-{index}-id"] = inline_form.instance.pk
    data.update(overrides)
    return data


def inline_prefix(client: Any, url: str, verbose_name: str) -> str:
    page = client.get(url)
    return next(
        inline.formset.prefix
        for inline in page.context["inline_admin_formsets"]
        if inline.opts.verbose_name == verbose_name
    )
