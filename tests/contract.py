r"""The metric contract as docs/metrics.md states it ("## Metric reference"), parsed for the tests.

That page's tables are the contract users read; tests compare the code with them, so the two cannot
drift. Each row is `| \`family\` | type | labels | meaning |`; `—` stands for no labels.
"""

from __future__ import annotations

import re
from pathlib import Path

METRICS_DOC = Path(__file__).resolve().parents[1] / "docs" / "metrics.md"
_ROW = re.compile(r"^\|\s*`(?P<family>[a-z_:][a-z0-9_:]*)`\s*\|\s*(?P<type>counter|gauge|histogram|summary)\s*"
                  r"\|\s*(?P<labels>[^|]*)\|")


def metric_reference(doc: Path = METRICS_DOC) -> str:
    """The "## Metric reference" section of the metrics page, up to the next section."""
    text = doc.read_text(encoding="utf-8")
    start = text.index("\n## Metric reference")
    end = text.find("\n## ", start + 1)
    return text[start:] if end < 0 else text[start:end]


def readme_families(doc: Path = METRICS_DOC) -> dict[str, tuple[str, frozenset[str]]]:
    """{family as exposed (counters with `_total`): (type, label names)} from the Metric reference."""
    section = metric_reference(doc)
    families: dict[str, tuple[str, frozenset[str]]] = {}
    for line in section.splitlines():
        match = _ROW.match(line.strip())
        if match is None:
            continue
        raw = match["labels"].strip()
        labels = frozenset() if raw in {"", "—", "-"} else frozenset(x.strip() for x in raw.split(","))
        family = match["family"]
        if family in families:
            raise AssertionError(f"{doc.name}: the metric reference lists {family} twice")
        families[family] = (match["type"], labels)
    if not families:
        raise AssertionError(f"{doc.name} has no metric table under '## Metric reference'")
    return families


_SET = re.compile(r"`(?P<label>[a-z_]+)`\s*∈\s*\{(?P<values>[^}]*)\}")


def readme_vocabularies(doc: Path = METRICS_DOC) -> dict[str, frozenset[str]]:
    """{label: values} of the closed vocabularies the Metric reference states as `label` ∈ {a, b, ...}."""
    section = " ".join(metric_reference(doc).split())  # the sets wrap over lines
    found = {m["label"]: frozenset(v.strip() for v in m["values"].split(",")) for m in _SET.finditer(section)}
    if not found:
        raise AssertionError(f"{doc.name}: the metric reference states no `label` ∈ {{...}} vocabulary")
    return found
