"""Bring the gettext catalogs up to date with ``bot/texts.py`` (Babel; a dev tool).

    python tools/catalogs.py            # after changing a text, and again after translating
    python tools/catalogs.py --check    # exit 1 if a catalog is not up to date (no writes)

1. **extract** every ``N_("…")`` of ``bot/texts.py`` into ``bot/locale/voicebot.pot``, each
   with its constant's name as a comment for translators (no line numbers: they would
   change the catalogs at every edit of texts.py);
2. **update** each language's ``.po`` from it: a new text gets an empty ``msgstr``; a
   changed one keeps its old translation flagged ``#, fuzzy`` (with the old English as
   ``#| msgid``) until someone checks it and deletes the flag; a removed one is dropped;
3. **compile** each ``.po`` into the ``.mo`` the bot reads (empty and fuzzy entries are
   left out: the English shows until they are translated).

The compiled ``.mo`` files are committed (the bot needs no Babel to run, and an editable
install or the Docker image reads them as they are); ``tests/i18n`` runs ``--check`` and
checks every text has a translation with the same placeholders.
"""

from __future__ import annotations

import argparse
import ast
import datetime as dt
import io
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_file
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

from bot import __version__

ROOT = Path(__file__).resolve().parent.parent
TEXTS = ROOT / "bot" / "texts.py"
LOCALE_DIR = ROOT / "bot" / "locale"
DOMAIN = "voicebot"
TEMPLATE = LOCALE_DIR / f"{DOMAIN}.pot"
# The languages with a catalog, as gettext names their directories (bot.i18n.CATALOG_DIRS).
LANGUAGES = ("zh_Hans",)
# Catalog headers carry no dates that change by themselves: git keeps the history.
_STAMP = dt.datetime(2026, 12, 8, tzinfo=dt.UTC)
_TEAM = "voicebot maintainers"


def po_path(language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def mo_path(language: str) -> Path:
    return po_path(language).with_suffix(".mo")


def _names() -> dict[int, str]:
    """The line of each ``N_(…)`` call in texts.py → its constant (``SETTING_LABELS[model]``)."""
    names: dict[int, str] = {}
    for stmt in ast.parse(TEXTS.read_text(encoding="utf-8")).body:
        if not isinstance(stmt, ast.Assign) or not isinstance(stmt.targets[0], ast.Name):
            continue
        name = stmt.targets[0].id
        if isinstance(stmt.value, ast.Dict):
            for key, value in zip(stmt.value.keys, stmt.value.values, strict=True):
                if isinstance(key, ast.Constant):
                    names[value.lineno] = f"{name}[{key.value}]"
        for node in ast.walk(stmt.value):
            if isinstance(node, ast.Call):
                for line in range(node.lineno, (node.end_lineno or node.lineno) + 1):
                    names.setdefault(line, name)
    return names


def template() -> Catalog:
    """Every marked text of texts.py, in file order."""
    names = _names()
    pot = Catalog(
        project="voicebot",
        version=__version__,
        msgid_bugs_address=_TEAM,
        creation_date=_STAMP,
        revision_date=_STAMP,
        fuzzy=False,
    )
    pot.header_comment = "# The texts of voicebot (bot/texts.py): python tools/catalogs.py"
    for lineno, message, _comments, _context in extract_from_file(
        "python", str(TEXTS), keywords={"N_": None}, comment_tags=()
    ):
        assert isinstance(message, str)
        pot.add(message, auto_comments=[names.get(lineno, "")])
    return pot


def updated(language: str, pot: Catalog) -> Catalog:
    """The language's catalog merged with ``pot`` (a new language starts empty)."""
    path = po_path(language)
    if path.exists():
        with path.open("rb") as f:
            po = read_po(f, locale=language)
    else:
        po = Catalog(locale=language, fuzzy=False, last_translator=_TEAM, language_team=_TEAM)
    po.update(pot, update_header_comment=True)
    po.project, po.version, po.msgid_bugs_address = pot.project, pot.version, _TEAM
    po.revision_date = _STAMP
    return po


def _po_bytes(catalog: Catalog) -> bytes:
    out = io.BytesIO()
    write_po(out, catalog, no_location=True, ignore_obsolete=True, include_previous=True)
    return out.getvalue()


def mo_bytes(catalog: Catalog) -> bytes:
    """The compiled catalog (empty and fuzzy translations left out)."""
    out = io.BytesIO()
    write_mo(out, catalog, use_fuzzy=False)
    return out.getvalue()


def planned() -> dict[Path, bytes]:
    """Every catalog file as it should be."""
    pot = template()
    files = {TEMPLATE: _po_bytes(pot)}
    for language in LANGUAGES:
        po = updated(language, pot)
        text = _po_bytes(po)
        files[po_path(language)] = text
        # Compiled from the .po as written, so the .mo matches what a translator sees.
        files[mo_path(language)] = mo_bytes(read_po(io.BytesIO(text), locale=language))
    return files


def stale() -> list[Path]:
    """The catalog files that are not up to date."""
    return [
        path
        for path, content in planned().items()
        if not path.exists() or path.read_bytes() != content
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only say what is out of date")
    args = parser.parse_args(argv)
    if args.check:
        outdated = stale()
        for path in outdated:
            print(f"out of date: {path.relative_to(ROOT)}", file=sys.stderr)
        return 1 if outdated else 0
    for path, content in planned().items():
        if not path.exists() or path.read_bytes() != content:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
            print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
