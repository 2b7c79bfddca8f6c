"""Texts a caller reads, in both languages we serve.

A field violation's description carries English and zh-CN together, `en | zh-CN`: the caller's
language is not known when the request is refused, and the error travels as one string.
"""

from __future__ import annotations

from dataclasses import dataclass

SEPARATOR = " | "


@dataclass(frozen=True)
class Says:
    en: str
    zh_cn: str

    def __str__(self) -> str:
        return f"{self.en}{SEPARATOR}{self.zh_cn}"


def says(en: str, zh_cn: str) -> Says:
    return Says(en, zh_cn)
