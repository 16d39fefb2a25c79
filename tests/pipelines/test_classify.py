"""Records with free text and no category code are classified by the text model, confidence kept."""
import pandas as pd

from onemap.warehouse import connect_readonly
from pipelines.ingest import ingest
from pipelines.profiles import load_profile

from .test_quarantine import police_row
from .test_upsert import _csv

TEXTS = {"200201": "报称与邻居因漏水发生争执，楼上楼下互不相让，请求调解",
         "600301": "报称在工地做工，老板拖欠工资三个月，多名工人讨薪",
         "600901": "报称楼下广场舞噪声扰民，深夜音响声音很大影响休息"}


def _profile(tmp_path):
    text = load_profile("demo_police").path.read_text(encoding="utf-8")
    text = text.replace('name = "demo_police"', 'name = "police_text"')
    text = text.replace('fields = ["source_record_id", "reported_at", "category_raw_code"]',
                        'fields = ["source_record_id", "reported_at"]')
    text += "\n[categories]\nclassify_free_text = true\n"
    p = tmp_path / "police_text.toml"
    p.write_text(text, encoding="utf-8")
    return str(p)


def test_free_text_rows_get_a_model_category(settings, inside, tmp_path):
    rows = [police_row(inside, 接警单编号=f"T{i}", 报警类别代码=code, 报警内容=f"{text}（第{i}起）")
            for i in range(300) for code, text in [list(TEXTS.items())[i % 3]]]
    ingest(settings, "police", [_csv(tmp_path / "train.csv", rows)], progress=False)
    new = [police_row(inside, 接警单编号="N1", 报警类别代码="", 报警内容="老板拖欠工人工资两个月不发，工人讨薪"),
           police_row(inside, 接警单编号="N2", 报警类别代码="", 报警内容="邻居家漏水到我家，双方争执"),
           police_row(inside, 接警单编号="N3", 报警类别代码="", 报警内容="")]
    [s] = ingest(settings, "police", [_csv(tmp_path / "new.csv", new)], profile_name=_profile(tmp_path),
                 progress=False)
    assert s.reconciles and s.inserted == 2 and s.quarantined == 1
    con = connect_readonly(settings.warehouse_path)
    got = con.execute("SELECT event_id, category_code, category_method, category_confidence FROM core.events "
                      "WHERE event_id IN ('police:N1', 'police:N2') ORDER BY 1").df()
    con.close()
    assert list(got["category_code"]) == ["MD1001", "MD02"]
    assert (got["category_method"] == "model").all() and got["category_confidence"].between(0.35, 1).all()


def test_too_little_training_data_quarantines_instead_of_guessing(settings, inside, tmp_path):
    new = [police_row(inside, 接警单编号="N1", 报警类别代码="", 报警内容="老板拖欠工资")]
    [s] = ingest(settings, "police", [_csv(tmp_path / "new.csv", new)], profile_name=_profile(tmp_path),
                 progress=False)
    assert s.quarantined == 1 and s.reasons == {"unclassified": 1}
    assert pd.notna(s.batch_id)
