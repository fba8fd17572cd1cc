"""What the lint found: findings, their severities, and the report the CLI prints."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Finding:
    code: str
    severity: str
    subject: str
    message: str
    role: str | None = None
    origin: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity,
            "subject": self.subject,
            "role": self.role,
            "message": self.message,
            "origin": self.origin,
        }


@dataclass(frozen=True)
class LintReport:
    mode: str
    schemas: tuple[str, ...]
    sources: tuple[str, ...]
    tables: int
    functions: int
    findings: tuple[Finding, ...]

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == WARNING]

    def as_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "schemas": list(self.schemas),
            "sources": list(self.sources),
            "checked": {"tables": self.tables, "functions": self.functions},
            "errors": [f.as_json() for f in self.errors],
            "warnings": [f.as_json() for f in self.warnings],
            "clean": not self.errors,
        }
