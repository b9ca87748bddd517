"""The one base of the errors a service raises when a rule of the domain is broken.

A ``DomainError`` is a refusal, not a fault: the API renders it as its JSON error
(``code`` is stable, clients branch on it; ``message`` is for a person), the admin
shows ``message`` as a form error or a message. It is not a retry class: a task
that meets one does not retry (it is no transient error) and goes straight to
FailedTask. Retry classes live in ``pms.pipeline.errors``.
"""

from __future__ import annotations


class DomainError(Exception):
    """A rule was broken. ``field``: the input it is about, when there is one."""

    def __init__(self, code: str, message: str, *, field: str | None = None) -> None:
        # args are what a copy is built from (pickle: Celery's failure path); field is in
        # the instance dict, which pickle restores too.
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.field = field

    def __str__(self) -> str:
        return self.message
