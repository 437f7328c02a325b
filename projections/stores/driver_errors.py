"""Translating a driver's exceptions into ``StoreUnavailable`` at the adapter boundary.

``translate_errors(errors, describe)`` is a class decorator: every public coroutine
method, async generator method and async context manager of the class raises
``StoreUnavailable`` instead of any of ``errors``, with ``describe(self, exc)`` as
its one-line message and the driver's exception as its cause. Anything else
(``StalePosition``, programming errors, cancellation) passes through unchanged.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, TypeVar

from projections.ports import StoreUnavailable

C = TypeVar("C", bound=type)
Describe = Callable[[Any, BaseException], str]


def masked(url: str) -> str:
    """``url`` with its password hidden (``scheme://user:***@host``)."""
    return re.sub(r"(://[^:/@\s]+):[^@\s]+@", r"\1:***@", url)


def described(exc: BaseException) -> str:
    """``Type: message`` of a driver's exception, without repeating the type."""
    name, text = type(exc).__name__, str(exc)
    return text if text.startswith(name) else f"{name}: {text}"


def translate_errors(errors: tuple[type[BaseException], ...],
                     describe: Describe) -> Callable[[C], C]:
    def decorate(cls: C) -> C:
        for name, member in list(vars(cls).items()):
            if name.startswith("_") or not inspect.isfunction(member):
                continue
            if inspect.isasyncgenfunction(member):
                setattr(cls, name, _async_generator(member, errors, describe))
            elif inspect.iscoroutinefunction(member):
                setattr(cls, name, _coroutine(member, errors, describe))
            else:
                setattr(cls, name, _context_factory(member, errors, describe, cls))
        return cls
    return decorate


def _coroutine(method: Any, errors: tuple[type[BaseException], ...],
               describe: Describe) -> Any:
    @functools.wraps(method)
    async def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await method(self, *args, **kwargs)
        except errors as exc:
            raise StoreUnavailable(describe(self, exc)) from exc
    return call


def _async_generator(method: Any, errors: tuple[type[BaseException], ...],
                     describe: Describe) -> Any:
    @functools.wraps(method)
    async def call(self: Any, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        try:
            async for item in method(self, *args, **kwargs):
                yield item
        except errors as exc:
            raise StoreUnavailable(describe(self, exc)) from exc
    return call


def _context_factory(method: Any, errors: tuple[type[BaseException], ...],
                     describe: Describe, cls: type) -> Any:
    """A plain method: if it returns an async context manager, entering and leaving
    that are translated too; any other result (also another instance of the class,
    which translates its own errors) is returned as it is."""
    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = method(self, *args, **kwargs)
        if isinstance(result, AbstractAsyncContextManager) and not isinstance(result, cls):
            return _Translating(result, errors, lambda exc: describe(self, exc))
        return result
    return call


class _Translating(AbstractAsyncContextManager[Any]):
    def __init__(self, inner: AbstractAsyncContextManager[Any],
                 errors: tuple[type[BaseException], ...],
                 describe: Callable[[BaseException], str]) -> None:
        self.inner = inner
        self.errors = errors
        self.describe = describe

    async def __aenter__(self) -> Any:
        try:
            return await self.inner.__aenter__()
        except self.errors as exc:
            raise StoreUnavailable(self.describe(exc)) from exc

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        traceback: TracebackType | None) -> bool | None:
        try:
            return await self.inner.__aexit__(kind, exc, traceback)
        except self.errors as error:
            if error is exc:
                raise
            raise StoreUnavailable(self.describe(error)) from error
