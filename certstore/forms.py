"""The form of a catalogue type (证照填报表单) and its tables: fields from the submission schema, a filled-in form
or a table row (CSV/XLSX) turned into the certificate document that :func:`certstore.records.draft_from_json`
reads.

One definition serves the agency pages' form and CSV template (``api/pages/agency.py``) and the bulk import of
legacy certificates (存量证照导入, :mod:`certstore.services.imports`): a column header is ``*标签(field.name)``
(``*`` marks required fields, as the template writes it), or just the label, or just the field name.

Cells are converted to the JSON types the schema expects (integers, numbers with thousands separators) and,
for what spreadsheets do to them, forgiven: a holder ID type may be given by its Chinese name or with the
leading zeros Excel strips (``1`` → ``001``), XLSX dates and whole numbers arrive as native values. Anything
that cannot be converted is passed on as text, so the record validation names the field and the problem.

Reading tables (:func:`read_table`) streams: CSV through :mod:`csv` (UTF-8 with or without BOM, else GB 18030 —
what Excel on a Chinese Windows saves as "CSV"), XLSX through openpyxl's read-only mode (no whole-workbook DOM;
openpyxl's reader refuses external entities).
"""

from __future__ import annotations

import csv
import dataclasses
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from certstore.catalogue import CatalogueEntry
from certstore.identifiers import HOLDER_ID_TYPE_LABELS
from certstore.records import draft_to_json, example_draft, submission_schema

__all__ = [
    "FormField",
    "TableError",
    "TableReader",
    "column_names",
    "document_from_values",
    "form_fields",
    "header_cell",
    "read_table",
    "row_values",
]


class TableError(ValueError):
    """A table that does not fit the form as a whole (unknown or missing columns, unreadable file); the message is
    in Chinese, for the agency staff who filled it in."""


@dataclass(frozen=True)
class FormField:
    """One input of a generated form: ``name`` is the dotted path in the certificate document."""

    name: str
    label: str
    kind: str  # text | textarea | number | integer | date | select
    required: bool = False
    options: tuple[tuple[str, str], ...] = ()
    example: str = ""
    pattern: str | None = None
    unit: str | None = None
    help: str = ""
    section: str = "face"
    extra: Mapping[str, Any] = field(default_factory=dict, hash=False)


def _face_field(name: str, spec: Mapping[str, Any], required: bool) -> FormField:
    kind = "text"
    declared = spec.get("type")
    if "enum" in spec:
        kind = "select"
    elif declared == "number":
        kind = "number"
    elif declared == "integer":
        kind = "integer"
    elif spec.get("format") == "date":
        kind = "date"
    elif spec.get("x-multiline"):
        kind = "textarea"
    examples = spec.get("examples") or []
    return FormField(
        name=f"face.{name}",
        label=str(spec.get("x-label") or spec.get("title") or name),
        kind=kind,
        required=required,
        options=tuple((str(v), str(v)) for v in spec.get("enum", ())),
        example=str(examples[0]) if examples else "",
        pattern=spec.get("pattern"),
        unit=spec.get("x-unit"),
        help=str(
            spec.get("description")
            or ("长期有效请填写“长期”" if spec.get("format") == "date-or-permanent" else "")
        ),
    )


def form_fields(entry: CatalogueEntry) -> list[FormField]:
    """The inputs of ``entry``'s form, from its submission schema: certificate, holder, then face fields in
    layout order (``x-order``)."""
    example = draft_to_json(example_draft(entry))
    properties = submission_schema(entry)["properties"]
    holder_types = tuple(HOLDER_ID_TYPE_LABELS.items())
    fields = [
        FormField(
            "certificate_number", "证照编号", "text", True, example=str(example["certificate_number"]),
            pattern=properties["certificate_number"]["pattern"], section="certificate",
        ),
        FormField("issue_date", "发证日期", "date", True, example=str(example["issue_date"]), section="certificate"),
        FormField("valid_from", "有效期起", "date", help="留空：自发证日期起", section="certificate"),
        FormField("valid_until", "有效期至", "date", help="留空：按目录规定的有效期计算", section="certificate"),
        FormField("holder.name", "持证主体名称", "text", True, example=str(example["holder"]["name"]), section="holder"),
        FormField(
            "holder.id_type", "持证主体代码类型", "select", True, options=holder_types,
            example=str(example["holder"]["id_type"]), section="holder",
        ),
        FormField(
            "holder.id_number", "持证主体代码", "text", True, example=str(example["holder"]["id_number"]),
            section="holder",
        ),
    ]  # fmt: skip
    face = entry.face_schema
    required = set(face.get("required", ()))
    ordered = sorted(
        face.get("properties", {}).items(), key=lambda item: (item[1].get("x-order", 999), item[0])
    )
    for name, spec in ordered:
        fields.append(_face_field(name, spec, name in required))
    face_example = example.get("face", {})
    return [
        f if f.example or f.section != "face" else _with_example(f, face_example.get(f.name[5:]))
        for f in fields
    ]


def _with_example(item: FormField, value: Any) -> FormField:
    if value is None:
        return item
    return dataclasses.replace(item, example=str(value))


def _convert(item: FormField, text: str) -> Any:
    """A form or table cell as the JSON value the schema expects; what cannot be converted stays text, so the
    record validation names the field."""
    if item.kind == "integer" and re.fullmatch(r"[-+]?\d+", text):
        return int(text)
    if item.kind == "number":
        cleaned = text.replace(",", "")
        if re.fullmatch(r"[-+]?\d+", cleaned):
            return int(cleaned)
        try:
            return float(cleaned)
        except ValueError:
            return text
    if item.kind == "select" and item.options:
        codes = {code for code, _ in item.options}
        if text not in codes:
            by_label = {label: code for code, label in item.options}
            if text in by_label:
                return by_label[text]
            if text.isdigit() and text.zfill(3) in codes:  # Excel dropped the leading zeros of "001"
                return text.zfill(3)
    return text


def document_from_values(
    entry: CatalogueEntry, values: Mapping[str, str], *, fields: Sequence[FormField] | None = None
) -> dict[str, Any]:
    """The certificate document (DATA.json) of form or table ``values`` keyed by field name; empty cells omitted.
    ``fields``: :func:`form_fields` of ``entry``, when the caller already has them (one table, many rows)."""
    document: dict[str, Any] = {"catalogue": entry.code, "holder": {}, "face": {}}
    for item in fields if fields is not None else form_fields(entry):
        text = (values.get(item.name) or "").strip()
        if not text:
            continue
        value = _convert(item, text)
        if item.name.startswith("holder."):
            document["holder"][item.name[7:]] = value
        elif item.name.startswith("face."):
            document["face"][item.name[5:]] = value
        else:
            document[item.name] = value
    return document


# --- tables ----------------------------------------------------------------------------------------------

_HEADER = re.compile(r"^\*?(?P<label>.*?)[(（](?P<name>[A-Za-z0-9_.]+)[)）]\s*$")


def header_cell(item: FormField) -> str:
    """The template's column header of a field: ``*标签(field.name)``, the star on required fields."""
    return f"{'*' if item.required else ''}{item.label}({item.name})"


def column_names(fields: Sequence[FormField], header: Sequence[str]) -> list[str]:
    """The field name of every column of ``header``; :class:`TableError` for an unknown column, a column given
    twice, or a required field without a column."""
    by_name = {f.name: f for f in fields}
    by_label = {f.label: f.name for f in fields}
    names: list[str] = []
    for cell in header:
        cell = cell.strip()
        match = _HEADER.match(cell)
        name = match.group("name") if match else by_label.get(cell.lstrip("*"), cell)
        if name not in by_name:
            raise TableError(f"第 1 行（表头）有未知的列“{cell}”：请使用本系统生成的模板")
        if name in names:
            raise TableError(f"第 1 行（表头）的列“{cell}”出现了两次")
        names.append(name)
    missing = [f.label for f in fields if f.required and f.name not in names]
    if missing:
        raise TableError("缺少必填列：" + "、".join(missing))
    return names


def row_values(names: Sequence[str], cells: Sequence[str]) -> dict[str, str]:
    """The cells of one row keyed by field name; ``ValueError`` when the row has filled cells beyond the
    header."""
    if len(cells) > len(names) and any(c.strip() for c in cells[len(names) :]):
        raise ValueError(f"该行的列数（{len(cells)}）多于表头（{len(names)}）")
    return dict(zip(names, cells, strict=False))


def _cell_text(value: Any) -> str:
    """A spreadsheet cell as the text a CSV would hold: dates as ISO dates, whole numbers without ``.0``."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@dataclass
class TableReader:
    """The rows of a CSV or XLSX table: :attr:`header`, then ``(line number, cells)`` from :meth:`rows` (line
    numbers as the staff see them in a spreadsheet; the header is line 1). Blank rows are skipped; a row may
    have more cells than the header (:func:`row_values` refuses it if they are not empty)."""

    path: Path
    header: list[str]
    _rows: Iterator[tuple[int, list[str]]]
    _close: Any = None
    total: int | None = None  # data rows (an upper bound for XLSX: trailing blank rows included)

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        try:
            for line, cells in self._rows:
                if any(c.strip() for c in cells):
                    yield line, cells
        finally:
            self.close()

    def close(self) -> None:
        if self._close is not None:
            self._close()
            self._close = None


def _csv_dialect_pass(path: Path) -> tuple[str, int]:
    """The encoding of the CSV at ``path`` — UTF-8 (BOM optional) when the whole file decodes as such, else
    GB 18030 — and how many records it holds after the header (one streaming pass, for the progress bar)."""
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            with path.open(encoding=encoding, newline="") as handle:
                count = sum(1 for _ in csv.reader(handle))
            return encoding, max(count - 1, 0)
        except UnicodeDecodeError:
            continue
        except csv.Error as exc:
            raise TableError(f"{path.name}：不是有效的 CSV 文件（{exc}）") from None
    raise TableError(f"{path.name}：文件编码无法识别，请保存为 UTF-8 或 GB18030 编码的 CSV")


def _read_csv(path: Path) -> TableReader:
    encoding, total = _csv_dialect_pass(path)
    handle = path.open(encoding=encoding, newline="")
    reader = csv.reader(handle)
    try:
        header = next(reader)
    except StopIteration:
        handle.close()
        raise TableError(f"{path.name}：文件为空") from None

    def rows() -> Iterator[tuple[int, list[str]]]:
        try:
            for cells in reader:
                yield reader.line_num, cells
        except csv.Error as exc:
            raise TableError(f"{path.name} 第 {reader.line_num} 行：{exc}") from None

    return TableReader(path, header, rows(), handle.close, total)


#: An XLSX part may inflate to at most this much, and at most this many times its compressed size once it is
#: large: openpyxl streams the sheet, but reads the shared strings whole (a zip bomb would fill memory).
XLSX_MAX_PART_BYTES = 1 << 30
XLSX_MAX_RATIO = 200


def _check_workbook_container(path: Path) -> None:
    """Refuse a workbook whose ZIP declares parts that would inflate beyond the limits (a zip bomb)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                large = info.file_size > 16 << 20
                if info.file_size > XLSX_MAX_PART_BYTES or (
                    large and info.file_size > XLSX_MAX_RATIO * max(info.compress_size, 1)
                ):
                    raise TableError(
                        f"{path.name}：工作簿中的 {info.filename} 解压后过大（{info.file_size} 字节），已拒绝"
                    )
    except zipfile.BadZipFile as exc:
        raise TableError(f"{path.name}：不是有效的 XLSX 文件（{exc}）") from None


def _read_xlsx(path: Path) -> TableReader:
    from zipfile import BadZipFile

    from openpyxl import load_workbook

    _check_workbook_container(path)
    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except (BadZipFile, KeyError, OSError, ValueError) as exc:
        raise TableError(f"{path.name}：不是有效的 XLSX 文件（{exc}）") from None
    sheet = workbook.worksheets[0]
    values = sheet.iter_rows(values_only=True)
    try:
        header = [_cell_text(v) for v in next(values)]
    except StopIteration:
        workbook.close()
        raise TableError(f"{path.name}：工作表为空") from None
    while header and not header[-1].strip():
        header.pop()
    width = len(header)
    total = max((sheet.max_row or 1) - 1, 0)

    def rows() -> Iterator[tuple[int, list[str]]]:
        for line, cells in enumerate(values, start=2):
            texts = [_cell_text(v) for v in cells]
            while len(texts) > width and not texts[-1].strip():
                texts.pop()
            yield line, texts

    return TableReader(path, header, rows(), workbook.close, total)


def read_table(path: Path) -> TableReader:
    """Open ``path`` (``.csv`` or ``.xlsx``) for streaming; :class:`TableError` when it cannot be read."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _read_csv(path)
    if suffix in (".xlsx", ".xlsm"):
        return _read_xlsx(path)
    raise TableError(f"{path.name}：只支持 .csv 和 .xlsx 文件")
