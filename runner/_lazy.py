"""Names a public namespace hands out without importing their modules up front.

``runner``, ``runner.extract``, ``runner.transform`` and ``runner.load`` list what a
pipeline author may import; the tool behind a name (pyarrow, pydantic models, HTTP
machinery) is imported the first time the name is used, so ``import runner.extract``
and ``runner --help`` stay cheap.  A namespace binds the returned functions as its
module-level ``__getattr__`` and ``__dir__`` (PEP 562).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_names(
    namespace: str, where: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``namespace``: name -> the module defining it.

    A name is looked up once; the value is then kept in the namespace's globals, so the
    next access is an ordinary attribute.  ``dir()`` shows the namespace's ``__all__``.
    """

    def get(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {namespace!r} has no attribute {name!r}")
        value = getattr(import_module(module), name)
        setattr(sys.modules[namespace], name, value)
        return value

    def names() -> list[str]:
        return sorted(getattr(sys.modules[namespace], "__all__", where))

    return get, names
