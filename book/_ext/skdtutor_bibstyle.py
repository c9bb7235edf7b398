"""Author-year labels for the book's bibliography (a local Sphinx extension).

The text cites author-year (``bibtex_reference_style = author_year``: "[Hinton et al., 2015]"),
so the reference list uses the same labels instead of pybtex's numbers [1]-[17]:
"Hinton et al., 2015", "Greydanus, 2020", "Guo et al., 2017" ... (a, b suffixes when two
entries would share a label). Entries are sorted by author, year and title.

Used as ``bibtex_default_style = "skdtutor"`` (``_config.yml``).
"""
from __future__ import annotations

from collections import Counter

from pybtex.plugin import register_plugin
from pybtex.style.formatting.unsrt import Style as UnsrtStyle
from pybtex.style.labels import BaseLabelStyle


def _last_names(person) -> str:
    parts = person.prelast_names + person.last_names
    text = " ".join(str(p) for p in parts)
    return text.replace("{", "").replace("}", "")


class AuthorYearLabelStyle(BaseLabelStyle):
    """``Last, YEAR``, ``Last and Other, YEAR`` or ``Last et al., YEAR``."""

    def format_label(self, entry) -> str:
        people = entry.persons.get("author") or entry.persons.get("editor") or []
        if not people:
            who = entry.fields.get("organization") or entry.key
        elif len(people) == 1:
            who = _last_names(people[0])
        elif len(people) == 2:
            who = f"{_last_names(people[0])} and {_last_names(people[1])}"
        else:
            who = f"{_last_names(people[0])} et al."
        year = entry.fields.get("year", "n.d.")
        return f"{who}, {year}"

    def format_labels(self, sorted_entries):
        labels = [self.format_label(entry) for entry in sorted_entries]
        count, seen = Counter(labels), Counter()
        for label in labels:
            if count[label] == 1:
                yield label
            else:
                seen[label] += 1
                yield label + "abcdefghijklmnopqrstuvwxyz"[seen[label] - 1]


class AuthorYearStyle(UnsrtStyle):
    default_label_style = "skdtutor-author-year"
    default_sorting_style = "author_year_title"


def setup(app):
    register_plugin("pybtex.style.labels", "skdtutor-author-year", AuthorYearLabelStyle)
    register_plugin("pybtex.style.formatting", "skdtutor", AuthorYearStyle)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
