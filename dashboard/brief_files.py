"""Write a :class:`dashboard.brief.WeeklyBrief` as a Word document (.docx) and a PDF, block by block.

Both use the Noto Sans CJK font installed with the product (fonts-noto-cjk): the PDF embeds the subset it
uses, the .docx names it for East Asian text (Word substitutes a local 黑体 where it is missing). Nothing is
fetched from anywhere.
"""
from __future__ import annotations

import datetime as dt
import io
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
from onemap import queries
from onemap.settings import Settings
from onemap.warehouse import connect_readonly

FORMATS = ("docx", "pdf")

FONT_NAME = "Noto Sans CJK SC"


def brief_for(con, settings: Settings, week: dt.date | None = None, scope: queries.Scope | None = None) -> WeeklyBrief:
    """The brief of the week holding ``week`` (default: the last complete week of the data) for ``scope`` (default
    the whole county), with its map and trend chart."""
    if not queries.is_built(con):
        raise ValueError("the warehouse has been loaded but not built: run `onemap build` first")
    start, end = week_of(week) if week else default_week(con)
    counts = queries.hex_counts(con, queries.EventFilter(start=start, end=end, scope=scope), settings.h3_default)
    png = week_map(counts, *queries.map_layers(con, scope))  # the map frames the brief's own area
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
    ``研判周报_<monday>-<sunday>.docx`` / ``.pdf`` into ``out_dir`` (default ``<home>/reports``); returns the
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
            table = doc.add_table(rows=1, cols=len(block.columns), style="Light Grid Accent 1")
            for cell, text in zip(table.rows[0].cells, block.columns, strict=True):
                cell.text = text
            for row in block.rows:
                for cell, text in zip(table.add_row().cells, row, strict=True):
                    cell.text = text
        elif isinstance(block, Picture):
            doc.add_picture(io.BytesIO(block.png), width=Mm(block.width_mm))
            doc.add_paragraph(block.caption)
    doc.save(target)


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
            pdf.multi_cell(0, 5.5, block.text, new_x="LMARGIN", new_y="NEXT", align="L")
            pdf.set_font("cjk", size=10)
        elif isinstance(block, Bullets):
            pdf.set_font("cjk", size=10)
            for item in block.items:
                pdf.multi_cell(0, 5.5, "• " + item, new_x="LMARGIN", new_y="NEXT", align="L")
        elif isinstance(block, Table):
            pdf.set_font("cjk", size=8.5)
            with pdf.table(headings_style=FontFace(emphasis=None, fill_color=(220, 230, 240)),
                           line_height=5, text_align="LEFT") as table:
                for row in [block.columns, *block.rows]:
                    table.row(row)
            pdf.set_font("cjk", size=10)
        elif isinstance(block, Picture):
            pdf.image(io.BytesIO(block.png), w=min(block.width_mm, width))
            pdf.set_font("cjk", size=9)
            pdf.multi_cell(0, 5, block.caption, new_x="LMARGIN", new_y="NEXT", align="L")
            pdf.set_font("cjk", size=10)
    target.write(bytes(pdf.output()))
