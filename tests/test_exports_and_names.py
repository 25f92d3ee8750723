"""Hostile user text: CSV cells a spreadsheet would run, workspace names a file system would mangle, and
file names, questions and titles that would render as Markdown on the pages."""
import csv
import io

import pytest
from click.testing import CliRunner

from workbench import corpus, evaluation, exports, pricing, scenario, workspace
from workbench.errors import WorkbenchError
from workbench.safe_text import escape_markdown

IMAGE = "![t](http://x/p.png)"
IMAGE_ESCAPED = r"\!\[t\]\(http://x/p.png\)"
HOSTILE_DOC = f"{IMAGE} x.md"
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


# --- helpers ---------------------------------------------------------------------------------------

def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def formula_cells(text: str) -> list[str]:
    """Cells a spreadsheet would evaluate: text starting with = + - @ tab or CR (a number like -3.5 is fine)."""
    return [c for row in csv.reader(io.StringIO(text)) for c in row if c.startswith(FORMULA_START) and not _is_number(c)]


@pytest.fixture
def downloads(monkeypatch):
    """What each download button of the last AppTest run was given: {label: bytes}."""
    import streamlit.testing.v1.app_test as app_test_module
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    stores = []

    class Recording(MemoryMediaFileStorage):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            stores.append(self)

    monkeypatch.setattr(app_test_module, "MemoryMediaFileStorage", Recording)

    def data(at) -> dict[str, bytes]:
        out = {}
        for button in at.get("download_button"):
            content = stores[-1].get_file(button.proto.url.rsplit("/", 1)[-1]).content
            out[button.proto.label] = content if isinstance(content, bytes) else content.encode("utf-8")
        return out

    return data


def shown_markdown(at) -> list[str]:
    """Every string the page renders as Markdown: messages, captions, headers, and widget labels."""
    texts = [e.value for kind in ("markdown", "caption", "info", "success", "warning", "error", "subheader",
                                  "title", "header", "toast") for e in getattr(at, kind)]
    texts += [e.label for kind in ("expander", "checkbox", "button") for e in getattr(at, kind)]
    return texts


@pytest.fixture
def hostile_ws():
    """A workspace whose documents, file names, questions, answers and categories are hostile text."""
    ws = workspace.open_workspace("hostile", create=True)
    corpus.ingest(ws, [(HOSTILE_DOC, b"# Heading\n\nInvoices are due -5 days after the =1+1 notice.\n\n"
                                     b"## " + IMAGE.encode() + b" part\n\nRefunds take =SUM(1,2) weeks.\n"),
                       ("=HYPERLINK(x).md", b"# Other\n\nSome other text about refunds and invoices.\n"),
                       ("@evil.pdf", b"%PDF-1.4 nothing")])
    qa = ("question,answer,category\n=1+1,-5 days,@cat\n"
          f"When are invoices due?,-5 days after notice,\"{IMAGE}\"\n"
          + "".join(f"How long do refunds take {i}?,+{i} weeks,plain\n" for i in range(6)))
    corpus.ingest(ws, [("qa.csv", qa.encode())], kind="qa")
    return ws


# --- 1. CSV formula injection ----------------------------------------------------------------------

@pytest.mark.parametrize("cell", ["=1+1", "+1", "-5 days", "@SUM(A1)", "\tx", "\rx", "'=x", "''-y"])
def test_formula_strings_get_one_leading_quote(cell):
    assert exports.csv_safe_cell(cell) == "'" + cell


@pytest.mark.parametrize("cell", ["plain", "", "'quoted", "5 days", "a=b", -3.5, 0, 7, None, True])
def test_other_cells_are_left_as_they_are(cell):
    assert exports.csv_safe_cell(cell) is cell


def test_finetune_csv_export_is_inert_and_round_trips():
    examples = [
        {"messages": [{"role": "user", "content": "=1+1"}, {"role": "assistant", "content": "-5 days"}]},
        {"messages": [{"role": "system", "content": "@system"}, {"role": "user", "content": "'=already quoted"},
                      {"role": "assistant", "content": "+cmd|' /C calc'!A0"}]},
        {"messages": [{"role": "user", "content": "\tTabbed"}, {"role": "assistant", "content": "'plain quote"}]},
    ]
    data = exports.export(examples, "csv")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"))))
    assert rows[1][:2] == ["'=1+1", "'-5 days"]
    assert formula_cells(data.decode("utf-8")) == []
    assert exports.read_back(data, "csv") == examples


def test_dataframe_csv_escapes_cells_headers_and_index_but_not_numbers():
    import pandas as pd

    df = pd.DataFrame({"=cmd": ["=1+1", "-5 days", "ok"], "value": [-3.5, 2.0, 0.0], "n": [1, -2, 3]},
                      index=pd.Index(["@a", "b", "+c"], name="-name"))
    plain = exports.dataframe_csv(df)
    assert list(csv.reader(io.StringIO(plain))) == [["'=cmd", "value", "n"], ["'=1+1", "-3.5", "1"],
                                                    ["'-5 days", "2.0", "-2"], ["ok", "0.0", "3"]]
    with_index = list(csv.reader(io.StringIO(exports.dataframe_csv(df, index=True))))
    assert with_index[0] == ["'-name", "'=cmd", "value", "n"]
    assert [r[0] for r in with_index[1:]] == ["'@a", "b", "'+c"]
    assert df.columns[0] == "=cmd" and df.iloc[0, 0] == "=1+1"     # the caller's frame is untouched


@pytest.mark.timeout(300)
def test_every_csv_download_on_the_pages_is_inert(app_test, downloads, hostile_ws):
    ws = hostile_ws
    settings = evaluation.EvalSettings(arms=["rag"])
    run_id = evaluation.create_run(ws, corpus.qa_pairs(ws), settings)
    evaluation.run(ws, run_id, evaluation.build_arms(ws, settings))
    scenario.save_scenario(ws, scenario.default_scenario().model_copy(update={"name": "=HYPERLINK(\"x\")"}))
    pricing.save_custom_price(ws, "models", {"id": "house-model", "input": 1.0, "output": 2.0,
                                             "context_window": 8000, "source": "@SUM(1+1)", "as_of": "2026-01-01"})
    at = app_test("hostile").run()
    checked: dict[str, dict[str, str]] = {}
    for page in ("pages/data.py", "pages/finetune.py", "pages/compare.py", "pages/estimate.py", "pages/rag.py"):
        at.switch_page(page).run()
        if page == "pages/rag.py":
            at.text_input(key="rag_question").set_value("=1+1")
            next(b for b in at.button if b.label == "Ask").click().run()
        assert not at.exception, page
        got = downloads(at)
        checked[page] = {label: data.decode("utf-8") for label, data in got.items() if "CSV" in label
                         or label.startswith("csv")}
        for label, text in checked[page].items():
            assert formula_cells(text) == [], (page, label)
    assert {"Documents (CSV)", "Question/answer pairs (CSV)", "Problems (CSV)"} <= set(checked["pages/data.py"])
    assert "'=HYPERLINK(x).md" in checked["pages/data.py"]["Documents (CSV)"]
    assert "'@evil.pdf" in checked["pages/data.py"]["Problems (CSV)"]
    finetune_rows = list(csv.reader(io.StringIO(checked["pages/finetune.py"]["csv (.csv)"])))
    assert ["'=1+1", "'-5 days"] in [row[:2] for row in finetune_rows]
    per_question = list(csv.DictReader(io.StringIO(checked["pages/compare.py"]["Per question (CSV)"])))
    first = next(r for r in per_question if r["question"] == "'=1+1")
    assert first["gold"] == "'-5 days" and first["category"] == "'@cat"
    assert "Summary (CSV)" in checked["pages/compare.py"]
    estimate = checked["pages/estimate.py"]
    assert "'=HYPERLINK(\"\"x\"\"): monthly" in estimate["Side by side (CSV)"]
    assert "'@SUM(1+1)" in estimate["Price sources (CSV)"]
    assert len(estimate) >= 9
    answers = list(csv.DictReader(io.StringIO(checked["pages/rag.py"]["Answers (CSV)"])))
    assert answers[0]["question"] == "'=1+1"


# --- 2. workspace names ----------------------------------------------------------------------------

BAD_NAMES = {
    "evil\n": "contains '\\n'",
    "evil\r": "contains '\\r'",
    "CON": "device name on Windows",
    "con.txt": "device name on Windows",
    "Nul": "device name on Windows",
    "aux.tar.gz": "device name on Windows",
    "PRN": "device name on Windows",
    "COM1": "device name on Windows",
    "com9.log": "device name on Windows",
    "LPT1": "device name on Windows",
    "lpt9": "device name on Windows",
    "name.": "ends with '.'",
    "a..": "ends with '.'",
}


@pytest.mark.parametrize("name", list(BAD_NAMES))
def test_bad_workspace_names_are_refused_and_nothing_is_created(name, workbench_home):
    for attempt in (lambda: workspace.create_workspace(name), lambda: workspace.open_workspace(name, create=True),
                    lambda: workspace.open_workspace(name), lambda: workspace.delete_workspace(name)):
        with pytest.raises(WorkbenchError) as err:
            attempt()
        assert err.value.field == "workspace"
        assert str(err.value).startswith("field 'workspace': invalid workspace name ")
        assert BAD_NAMES[name] in str(err.value)
        assert "\n" not in str(err.value) and "\r" not in str(err.value)
    assert not workbench_home.exists() or list(workbench_home.iterdir()) == []


@pytest.mark.parametrize("name", ["evil\n", "con.txt", "Nul", "name."])
def test_cli_refuses_bad_workspace_names(name, workbench_home):
    from workbench.cli import main

    result = CliRunner().invoke(main, ["workspace", "create", name])
    assert result.exit_code != 0
    assert "field 'workspace': invalid workspace name" in result.output and BAD_NAMES[name] in result.output
    assert not workbench_home.exists() or list(workbench_home.iterdir()) == []


@pytest.mark.parametrize("name", ["console", "COM10", "nul_x", "con-1", "a.b", "LPT", "x" * 64])
def test_names_that_only_look_reserved_still_work(name, workbench_home):
    assert workspace.create_workspace(name).path == workbench_home / name
    assert workspace.open_workspace(name).name == name


# --- 3. user text shown as text on the pages --------------------------------------------------------

def test_escape_markdown_keeps_text_literal():
    assert escape_markdown(HOSTILE_DOC) == f"{IMAGE_ESCAPED} x.md"
    assert escape_markdown("[x](javascript:alert(1))") == r"\[x\]\(javascript:alert(1))"   # the opener is enough
    assert escape_markdown("a\nb\r\nc") == "a b c"
    assert escape_markdown("$x$ & *y* `z` <b>") == r"\$x\$ \& \*y\* \`z\` \<b\>"
    assert escape_markdown("# title") == r"\# title" and escape_markdown("- item") == r"\- item"
    assert escape_markdown("1. first") == r"1\. first" and escape_markdown("-5 days") == "-5 days"
    assert escape_markdown("_x_ and max_tokens") == r"\_x\_ and max_tokens"   # inside a word _ cannot emphasize
    assert escape_markdown("alert(1) bad name!") == "alert(1) bad name!"


def _assert_no_raw_markup(texts: list[str]) -> None:
    raw = [t for t in texts if "![t](" in t or "[t](" in t]
    assert raw == []


@pytest.mark.timeout(180)
def test_data_page_shows_hostile_names_as_text(app_test, hostile_ws):
    at = app_test("hostile").run()
    at.switch_page("pages/data.py").run()
    assert not at.exception
    # Ingested through the library: the lists hold the name verbatim (a table shows text), messages escape it.
    assert HOSTILE_DOC in set(at.dataframe[0].value["document"])
    problems = next(d.value for d in at.dataframe if "message" in d.value.columns)
    assert "@evil.pdf" in set(problems["file"])
    texts = shown_markdown(at)
    _assert_no_raw_markup(texts)
    assert any(t.startswith("plain: 6") and f"{IMAGE_ESCAPED}: 1" in t for t in at.caption.values)
    at.selectbox(key="data_inspect_doc").set_value(HOSTILE_DOC)
    at.selectbox(key="data_inspect_strategy").set_value("headings").run()     # a heading holds the markup
    assert any(c.startswith("Chunk ") and IMAGE_ESCAPED in c for c in at.caption.values)
    _assert_no_raw_markup(shown_markdown(at))

    # Through the uploader: a file seen before, and an unreadable one, both named with markup.
    uploader = at.file_uploader(key="data_docs_upload")
    original = next(u for u in corpus.uploads(hostile_ws) if u["name"] == HOSTILE_DOC)
    uploader.upload(HOSTILE_DOC, hostile_ws.file(original["stored_path"]).read_bytes(), "text/markdown")
    uploader.upload(f"{IMAGE} broken.pdf", b"%PDF-1.4 nothing", "application/pdf")
    next(b for b in at.button if b.label == "Add documents").click().run()
    assert not at.exception
    assert any(i.startswith("Already uploaded, nothing to do: ") and f"{IMAGE_ESCAPED} x.md" in i
               for i in at.info.values)
    assert any(e.startswith(rf"{IMAGE_ESCAPED} broken.pdf: not a readable PDF") for e in at.error.values)
    _assert_no_raw_markup(shown_markdown(at))

    # An error message that quotes what was typed: a workspace name, in the sidebar.
    at.sidebar.text_input(key="new_workspace_name").set_value(IMAGE)
    next(b for b in at.sidebar.button if b.label == "Create workspace").click().run()
    assert any(f"invalid workspace name '{IMAGE_ESCAPED}'" in e.value for e in at.sidebar.error)
    _assert_no_raw_markup(shown_markdown(at))
    assert workspace.list_workspaces() == ["hostile"]


@pytest.mark.timeout(180)
def test_rag_page_shows_question_and_sources_as_text(app_test, hostile_ws):
    at = app_test("hostile").run()
    at.switch_page("pages/rag.py").run()
    at.button(key="rag_build").click().run()
    at.text_input(key="rag_question").set_value(f"How long do refunds take? {IMAGE}")
    next(b for b in at.button if b.label == "Ask").click().run()
    assert not at.exception
    assert any(c == f"Question: How long do refunds take? {IMAGE_ESCAPED}" for c in at.caption.values)
    assert any(IMAGE_ESCAPED in e.label for e in at.expander)       # the cited document's name and heading
    _assert_no_raw_markup(shown_markdown(at))
