"""Write a :class:`dashboard.brief.WeeklyBrief` as a Word document (.docx) and a PDF, block by block.

Both use the Noto Sans CJK font installed with the product (fonts-noto-cjk): the PDF embeds the subset it
uses, the .docx names it for East Asian text (Word substitutes a local 黑体 where it is missing). Nothing is
fetched from anywhere.
"""
from __future__ import annotations

import datetime as dt
import functools
import io
import re
from collections.abc import Callable
from pathlib import Path

from dashboard.brief import (
    Bullets,
    Heading,
    Picture,
    Table,
    Text,
    WeeklyBrief,
    default_week,
    week_of,
    weekly_backlog,
    weekly_brief,
    weekly_trend,
)
from dashboard.brief_images import CJK_SC_INDEX, backlog_chart, cjk_font_path, trend_chart, week_map
from geodata.basemap import configured
from onemap import queries
from onemap.settings import Settings
from onemap.warehouse import connect_readonly

FORMATS = ("docx", "pdf")

FONT_NAME = "Noto Sans CJK SC"
PDF_TABLE_PT = 8.5
DOCX_PAGE_MM = (210, 297, 20)  # A4 as the PDF (python-docx's template is US Letter), 20 mm left and right
DOCX_TABLE_PT = 9.0  # 小五, as tables are set in Chinese reports (the text is 五号, 10.5 pt)
DOCX_CELL_MARGIN_MM = 1.0  # each side, as the PDF's cells (the table style's own is 1.9 mm)
DOCX_BORDER_MM = 0.35  # the table style's 1 pt rules
SPARE_MM = 1.0  # more for a column set on one line: a viewer's substitute font may run a little wider
MM_PER_PT = 25.4 / 72


def brief_for(con, settings: Settings, week: dt.date | None = None, scope: queries.Scope | None = None) -> WeeklyBrief:
    """The brief of the week holding ``week`` (default: the last complete week of the data) for ``scope`` (default
    the whole county), with its map and trend chart."""
    if not queries.is_built(con):
        raise ValueError("the warehouse has been loaded but not built: run `onemap build` first")
    start, end = week_of(week) if week else default_week(con)
    counts = queries.hex_counts(con, queries.EventFilter(start=start, end=end, scope=scope), settings.h3_default)
    tiles = configured(settings, queries.scope_shape(con, None).bounds) if settings.basemap else None
    # the map frames the brief's own area
    png = week_map(counts, *queries.map_layers(con, scope), basemap=tiles, opacity=settings.basemap_opacity)
    trend = weekly_trend(con, start, scope=scope)
    chart = trend_chart(list(trend["label"]), list(trend["registered"]), list(trend["year_before"]))
    backlog = weekly_backlog(con, start, scope=scope)
    backlog_png = backlog_chart(list(backlog["label"]), list(backlog["open"]), list(backlog["overdue"]))
    return weekly_brief(con, settings.county_name, start, png, chart, scope=scope, reviews_path=settings.reviews_path,
                        backlog_png=backlog_png)


def render(brief: WeeklyBrief, fmt: str) -> bytes:
    """The brief as the bytes of a .docx or a .pdf file."""
    writers = {"docx": write_docx, "pdf": write_pdf}
    if fmt not in writers:
        raise ValueError(f"unknown brief format {fmt!r} (docx or pdf)")
    out = io.BytesIO()
    writers[fmt](brief, out)
    return out.getvalue()


def make_brief(settings: Settings, week: dt.date | None = None, out_dir: Path | None = None,
               formats: tuple[str, ...] = FORMATS, area: str | None = None) -> list[Path]:
    """Write the brief (see :func:`brief_for`) of the county, or of the town / village with code ``area``, as
    ``研判周报_<area>_<monday>-<sunday>.docx`` / ``.pdf`` into ``out_dir`` (default ``<home>/reports``); returns the
    files written."""
    con = connect_readonly(settings.warehouse_path, settings.timezone)
    try:
        brief = brief_for(con, settings, week, queries.area_scope(con, area) if area else None)
    finally:
        con.close()
    out_dir = Path(out_dir) if out_dir else settings.home / "reports"
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        path = out_dir / f"{brief.file_stem}.{fmt}"
        path.write_bytes(render(brief, fmt))
        written.append(path)
    return written


@functools.lru_cache(maxsize=2)
def _measuring_font(bold: bool):
    from PIL import ImageFont

    path = cjk_font_path()
    heavier = path.with_name(path.name.replace("Regular", "Bold"))  # fonts-noto-cjk installs both
    return ImageFont.truetype(str(heavier if bold and heavier.is_file() else path), 1000, index=CJK_SC_INDEX)


def text_width_mm(text: str, size_pt: float, bold: bool = False) -> float:
    """The width of ``text`` on one line in the brief's font (Noto Sans CJK SC) at ``size_pt``."""
    return _measuring_font(bold).getlength(text) / 1000 * size_pt * MM_PER_PT


def column_widths(table: Table, measure: Callable[[str], float], total: float, padding: float) -> list[float]:
    """The widths (mm) of ``table``'s columns across ``total`` mm, from their cells: each column first as wide
    as its longest cell on one line (``measure``: a text's width in mm; ``padding``: a cell's margins and rule).
    When they all fit, what is left is shared equally. When not, the ``table.nowrap`` columns keep their width
    and the others share the rest, the narrow ones whole and the wide ones equally (these wrap), so that an id
    or a date is never broken over two lines, as it was in equal columns."""
    cells = [table.columns, *table.rows]
    natural = [max(measure(str(row[j])) for row in cells) + padding + (SPARE_MM if j in table.nowrap else 0.0)
               for j in range(len(table.columns))]
    if sum(natural) <= total:
        return [w + (total - sum(natural)) / len(natural) for w in natural]
    fixed = {j: natural[j] for j in table.nowrap}
    if sum(fixed.values()) >= total:  # not even those fit: all shrink alike
        return [w * total / sum(natural) for w in natural]
    room = total - sum(fixed.values())
    rest = sorted((j for j in range(len(natural)) if j not in fixed), key=natural.__getitem__)
    for k, j in enumerate(rest):
        fixed[j] = min(natural[j], room / (len(rest) - k))
        room -= fixed[j]
    return [fixed[j] for j in range(len(natural))]


def _docx_cell_margins(table, mm: float) -> None:
    """Left and right margins of every cell of a Word ``table`` (tblCellMar, placed where the schema has it)."""
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    margins = OxmlElement("w:tblCellMar")
    for side in ("left", "right"):
        el = OxmlElement(f"w:{side}")
        el.set(qn("w:w"), str(round(mm / 25.4 * 1440)))  # twips
        el.set(qn("w:type"), "dxa")
        margins.append(el)
    look = table._tbl.tblPr.find(qn("w:tblLook"))
    if look is not None:
        look.addprevious(margins)
    else:
        table._tbl.tblPr.append(margins)


def _docx_table(doc, block: Table, width_mm: float) -> None:
    """A Word table of ``block`` in 小五, its column widths fixed (:func:`column_widths`) across ``width_mm``."""
    from docx.shared import Mm, Pt

    table = doc.add_table(rows=0, cols=len(block.columns), style="Light Grid Accent 1")
    table.autofit = False  # Word keeps the widths given (autofit would size the columns again, its own way)
    _docx_cell_margins(table, DOCX_CELL_MARGIN_MM)
    # measured in bold: the style sets the header row and the first column so (a CJK glyph is as wide in bold)
    widths = column_widths(block, functools.partial(text_width_mm, size_pt=DOCX_TABLE_PT, bold=True), width_mm,
                           2 * DOCX_CELL_MARGIN_MM + DOCX_BORDER_MM)
    for column, w in zip(table.columns, widths, strict=True):
        column.width = Mm(w)
    for texts in [block.columns, *block.rows]:
        for cell, text, w in zip(table.add_row().cells, texts, widths, strict=True):
            cell.width = Mm(w)  # Word reads the cell's width, LibreOffice the column's
            cell.text = text
            for run in cell.paragraphs[0].runs:
                run.font.size = Pt(DOCX_TABLE_PT)


def write_docx(brief: WeeklyBrief, target) -> None:
    """Write the brief as a Word document to ``target`` (a path or a binary file object)."""
    import docx
    from docx.oxml.ns import qn
    from docx.shared import Mm, Pt

    doc = docx.Document()
    for style in ("Normal", "Title", "Heading 1", "Heading 2", "List Bullet"):
        font = doc.styles[style].font
        font.name = FONT_NAME
        doc.styles[style].element.rPr.rFonts.set(qn("w:eastAsia"), FONT_NAME)
    doc.styles["Normal"].font.size = Pt(10.5)
    section = doc.sections[0]
    section.page_width, section.page_height = Mm(DOCX_PAGE_MM[0]), Mm(DOCX_PAGE_MM[1])
    section.left_margin = section.right_margin = Mm(DOCX_PAGE_MM[2])
    width_mm = DOCX_PAGE_MM[0] - 2 * DOCX_PAGE_MM[2]
    doc.add_heading(brief.title, level=0)
    for block in brief.blocks:
        if isinstance(block, Heading):
            doc.add_heading(block.text, level=block.level)
        elif isinstance(block, Text):
            run = doc.add_paragraph().add_run(block.text)
            if block.note:
                run.font.size = Pt(9)
        elif isinstance(block, Bullets):
            for item in block.items:
                doc.add_paragraph(item, style="List Bullet")
        elif isinstance(block, Table):
            _docx_table(doc, block, width_mm)
        elif isinstance(block, Picture):
            doc.add_picture(io.BytesIO(block.png), width=Mm(block.width_mm))
            doc.add_paragraph(block.caption)
    doc.save(target)


# line breaking of Chinese text (no spaces between words): a break may fall between any two characters except
# inside a run of digits / Latin letters ("2,273", "H3-8", "32.0%"), before closing punctuation or after opening
# punctuation (禁则); a space is a break too, and is dropped where the line breaks
UNBROKEN = re.compile(r"[0-9A-Za-z][0-9A-Za-z.,:%/+\-]*|[ \t\n]+|.", re.S)
NBSP = "\u00a0"  # the space between a number and its unit (312 件): kept on one line with both
NO_LINE_START = set("，。、；：！？）》」』”’%…—·,.;:!?)]}" + NBSP)
NO_LINE_END = set("（《「『“‘([{" + NBSP)
BREAKS = " \t\n"  # the spaces a line may break at (not NBSP, which str.isspace counts)


def cjk_lines(text: str, measure: Callable[[str], float], width: float) -> list[str]:
    """``text`` broken into lines no wider than ``width`` (by ``measure``) the way Chinese text is set; a run too
    long for a line on its own is broken where it must be. fpdf2 breaks at spaces only, so "312 件" was cut at its
    space and lines ended half empty before a long run of Chinese."""
    tokens = UNBROKEN.findall(re.sub(r"(?<=[0-9%]) (?=[^\x00-\x7f])", NBSP, text))
    glued: list[str] = []  # closing punctuation to the token before it, opening punctuation to the one after
    for tok in tokens:
        if glued and (tok[0] in NO_LINE_START or glued[-1][-1] in NO_LINE_END) and tok[0] not in BREAKS:
            if glued[-1][0] in BREAKS:  # a space before closing punctuation: kept, and no break there either
                space = NBSP * len(glued.pop())
                glued[-1:] = [glued[-1] + space] if glued else [space]
            glued[-1] += tok
        else:
            glued.append(tok)
    lines, line = [], ""
    for tok in glued:
        if tok == "\n":
            lines.append(line.rstrip())
            line = ""
            continue
        if measure(line + tok.rstrip()) <= width or not line.strip():
            line = "" if not line.strip() and tok[0] in BREAKS else line + tok
        else:
            lines.append(line.rstrip())
            line = "" if tok[0] in BREAKS else tok
        while measure(line.rstrip()) > width and len(line) > 1:  # one run wider than a line: cut where it must be
            cut = max([i for i in range(1, len(line)) if measure(line[:i]) <= width], default=1)
            lines.append(line[:cut])
            line = line[cut:]
    if line.strip() or not lines:
        lines.append(line.rstrip())
    return [line.replace(NBSP, " ") for line in lines]


def _pdf_text(pdf, height: float, text: str) -> None:
    """A paragraph across the page, broken by :func:`cjk_lines` in the current font."""
    from fpdf.enums import WrapMode

    width = pdf.w - pdf.l_margin - pdf.r_margin - 2 * pdf.c_margin
    pdf.multi_cell(0, height, "\n".join(cjk_lines(text, pdf.get_string_width, width)), new_x="LMARGIN",
                   new_y="NEXT", align="L", wrapmode=WrapMode.CHAR)


def write_pdf(brief: WeeklyBrief, target) -> None:
    """Write the brief as a PDF to ``target`` (a binary file object)."""
    from fpdf import FPDF
    from fpdf.fonts import FontFace

    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_font("cjk", fname=str(cjk_font_path()), collection_font_number=CJK_SC_INDEX)
    pdf.set_title(brief.title)
    pdf.add_page()
    pdf.set_font("cjk", size=15)
    pdf.multi_cell(0, 8, brief.title, align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    width = pdf.w - pdf.l_margin - pdf.r_margin
    for block in brief.blocks:
        if isinstance(block, Heading):
            pdf.ln(3)
            pdf.set_font("cjk", size=13 if block.level == 1 else 11.5)
            pdf.multi_cell(0, 7, block.text, new_x="LMARGIN", new_y="NEXT", align="L")
            pdf.set_font("cjk", size=10)
        elif isinstance(block, Text):
            pdf.set_font("cjk", size=8.5 if block.note else 10)
            _pdf_text(pdf, 5.5, block.text)
            pdf.set_font("cjk", size=10)
        elif isinstance(block, Bullets):
            pdf.set_font("cjk", size=10)
            for item in block.items:
                _pdf_text(pdf, 5.5, "• " + item)
        elif isinstance(block, Table):
            pdf.set_font("cjk", size=PDF_TABLE_PT)
            widths = column_widths(block, pdf.get_string_width, width, 2 * pdf.c_margin + pdf.line_width)
            with pdf.table(headings_style=FontFace(emphasis=None, fill_color=(220, 230, 240)),
                           line_height=5, text_align="LEFT", col_widths=widths) as table:
                for row in [block.columns, *block.rows]:
                    table.row(row)
            pdf.set_font("cjk", size=10)
        elif isinstance(block, Picture):
            pdf.image(io.BytesIO(block.png), w=min(block.width_mm, width))
            pdf.set_font("cjk", size=9)
            _pdf_text(pdf, 5, block.caption)
            pdf.set_font("cjk", size=10)
    target.write(bytes(pdf.output()))
