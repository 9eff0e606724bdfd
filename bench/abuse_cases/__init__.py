"""The attacks of `bench/abuse.py`, one module per kind of abuse (issue 17).

Each module exposes `cases() -> list[Case]`. A case names the stack settings it needs
(`overrides`, passed to `running_stack`); cases with equal overrides share one stack. While
`attack` runs, `bench/abuse.py` probes `/healthz` and samples the API's RSS; `attack` returns
the figure its goal names (e.g. "GET p99 12.3 ms"), as text for the table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.support.stack import Stack


@dataclass(frozen=True)
class Case:
    name: str
    goal: str
    attack: Callable[[Stack], str]
    overrides: dict[str, object] = field(default_factory=dict)
    file_concurrency: int = 1
    sentence_concurrency: int = 1

    @property
    def stack_key(self) -> tuple:
        return (tuple(sorted((k, repr(v)) for k, v in self.overrides.items())),
                self.file_concurrency, self.sentence_concurrency)
