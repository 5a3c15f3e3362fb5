r"""The metric contract as the README states it ("## Metric reference"), parsed for the tests.

The README's tables are the contract users read; tests compare the code with them, so the two cannot
drift. Each row is `| \`family\` | type | labels | meaning |`; `—` stands for no labels.
"""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
_ROW = re.compile(r"^\|\s*`(?P<family>[a-z_:][a-z0-9_:]*)`\s*\|\s*(?P<type>counter|gauge|histogram|summary)\s*"
                  r"\|\s*(?P<labels>[^|]*)\|")


def readme_families(readme: Path = README) -> dict[str, tuple[str, frozenset[str]]]:
    """{family as exposed (counters with `_total`): (type, label names)} from the Metric reference."""
    text = readme.read_text(encoding="utf-8")
    start = text.index("\n## Metric reference")
    end = text.find("\n## ", start + 1)
    section = text[start:] if end < 0 else text[start:end]
    families: dict[str, tuple[str, frozenset[str]]] = {}
    for line in section.splitlines():
        match = _ROW.match(line.strip())
        if match is None:
            continue
        raw = match["labels"].strip()
        labels = frozenset() if raw in {"", "—", "-"} else frozenset(x.strip() for x in raw.split(","))
        family = match["family"]
        if family in families:
            raise AssertionError(f"README metric reference lists {family} twice")
        families[family] = (match["type"], labels)
    if not families:
        raise AssertionError("README has no metric table under '## Metric reference'")
    return families


_SET = re.compile(r"`(?P<label>[a-z_]+)`\s*∈\s*\{(?P<values>[^}]*)\}")


def readme_vocabularies(readme: Path = README) -> dict[str, frozenset[str]]:
    """{label: values} of the closed vocabularies the Metric reference states as `label` ∈ {a, b, ...}."""
    text = readme.read_text(encoding="utf-8")
    section = text[text.index("\n## Metric reference"):]
    section = " ".join(section.split())  # the sets wrap over lines
    found = {m["label"]: frozenset(v.strip() for v in m["values"].split(",")) for m in _SET.finditer(section)}
    if not found:
        raise AssertionError("README's metric reference states no `label` ∈ {...} vocabulary")
    return found
