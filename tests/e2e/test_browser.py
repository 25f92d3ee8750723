"""End to end in a real headless browser: `streamlit run` on localhost, every step walked on the sample.

Needs Debian's chromium (installed by scripts/install-test-deps) and the playwright package; the browser
is the system one (browsers cannot be downloaded here). Screenshots of each page go to test-artifacts/.
"""
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/install-test-deps)")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    port = _free_port()
    env = {**os.environ, "WORKBENCH_HOME": str(home)}
    env.pop("WORKBENCH_PROVIDERS", None)   # the shipped providers.yaml: the bundled local LLM answers
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless", "true",
                             "--server.address", "127.0.0.1", "--server.port", str(port),
                             "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
                            cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            time.sleep(0.3)
    else:
        proc.terminate()
        pytest.fail("the app did not start")
    yield url, home
    proc.terminate()
    proc.wait(timeout=20)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


def _saved_top_k(home: Path) -> int:
    import json

    with sqlite3.connect(home / "sample" / "workbench.db") as conn:
        row = conn.execute("SELECT value FROM state WHERE key = 'estimate_working'").fetchone()
    return json.loads(row[0])["rag"]["top_k"] if row else -1


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


# Every plotly chart on the page: each has a title; every tick label and axis title lies inside its chart, has
# its whole text, and no axis title overlaps a tick label; the page itself fits the window's width.
CHART_LABELS_JS = """() => {
  const inside = (r, box) => r.left >= box.left - 1 && r.right <= box.right + 1 && r.top >= box.top - 1
                             && r.bottom <= box.bottom + 1;
  const overlap = (a, b) => a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
  const clipped = [];
  const plots = Array.from(document.querySelectorAll('.js-plotly-plot'));
  plots.forEach((plot, i) => {
    const box = plot.querySelector('.main-svg').getBoundingClientRect();
    const title = plot.querySelector('.gtitle');
    if (!title || !title.textContent.trim()) clipped.push(`chart ${i}: no title`);
    const ticks = Array.from(plot.querySelectorAll('.xtick text, .ytick text')).filter(t => t.textContent.trim());
    const titles = Array.from(plot.querySelectorAll('.g-xtitle text, .g-ytitle text, .gtitle'));
    [...ticks, ...titles].forEach(t => {
      const r = t.getBoundingClientRect();
      if (r.width && !inside(r, box)) clipped.push(`chart ${i}: '${t.textContent}' outside its chart`);
    });
    titles.forEach(t => ticks.forEach(k => {
      if (overlap(t.getBoundingClientRect(), k.getBoundingClientRect()))
        clipped.push(`chart ${i}: '${t.textContent}' over '${k.textContent}'`);
    }));
  });
  if (document.documentElement.scrollWidth > window.innerWidth + 1)
    clipped.push(`page ${document.documentElement.scrollWidth} px wide in a ${window.innerWidth} px window`);
  return {charts: plots.length, clipped: clipped};
}"""


# The tables on the page in view: the column headers each shows (a data grid lists only the columns it draws)
# and whether any of its columns lies beyond its right edge.
TABLE_COLUMNS_JS = """() => Array.from(document.querySelectorAll('[data-testid=stDataFrame], [data-testid=stTable]'))
  .filter(t => t.getBoundingClientRect().width > 0).map(t => {
    const box = t.getBoundingClientRect(), grid = t.querySelector('.dvn-scroller');
    const heads = Array.from(t.querySelectorAll('th, [role=columnheader]'));
    const cut = grid ? grid.scrollWidth > grid.clientWidth + 1
                     : heads.some(h => h.getBoundingClientRect().right > Math.min(box.right, window.innerWidth) + 1);
    return {headers: heads.map(h => h.textContent.trim()), cut: cut};
  })"""


def _columns_in_view(page, *columns: str, whole: bool = True) -> None:
    """A table on the page shows these columns in the viewport (and, if whole, every column it has)."""
    for table in page.locator("[data-testid=stDataFrame], [data-testid=stTable]").all():
        if table.is_visible():                 # not those in a closed expander or another tab
            table.scroll_into_view_if_needed()
    for _ in range(30):                        # a data grid draws its headers a moment after it scrolls in
        page.wait_for_timeout(500)
        tables = page.evaluate(TABLE_COLUMNS_JS)
        if [t for t in tables if set(columns) <= set(t["headers"]) and not (whole and t["cut"])]:
            return
    raise AssertionError(f"no table shows {columns} in view: {tables}")


def _open(browser, url: str, path: str = ""):
    page = browser.new_page(viewport={"width": 1400, "height": 1800}, accept_downloads=True)
    page.set_default_timeout(120_000)
    page.goto(f"{url}/{path}")
    page.get_by_role("heading", level=1).first.wait_for()
    return page


def test_walk_every_step(server, browser):
    url, home = server
    page = _open(browser, url)
    page.get_by_text("Decide: fine-tuning, RAG or a hybrid?").wait_for()
    # Decide: start from a preset.
    page.get_by_role("combobox", name="Start from a preset").click()
    page.get_by_role("option", name="Customer-support bot on changing docs").click()
    page.get_by_role("button", name="Apply preset").click()
    page.get_by_text("Confidence clear").wait_for()
    assert page.get_by_role("heading", name="RAG", exact=True).count() == 1
    _columns_in_view(page, "points", "answer", "question")      # what drove it: answers and points in view
    _shot(page, "1-decide")

    # Estimate: move a slider and see the figures follow.
    page.get_by_role("link", name="Estimate").click()
    page.get_by_text("Estimate: cost and latency").wait_for()
    page.get_by_text("Cheapest over the horizon").wait_for()
    slider = page.get_by_role("slider", name="Retrieved chunks per query (top_k)")
    before = _saved_top_k(home)
    slider.focus()
    for _ in range(4):
        slider.press("ArrowRight")
        page.wait_for_timeout(400)
    deadline = time.time() + 60
    while _saved_top_k(home) != before + 4 and time.time() < deadline:
        page.wait_for_timeout(500)
    assert _saved_top_k(home) == before + 4  # the page answered each move and saved the scenario
    _columns_in_view(page, "option", "setup", "monthly", "per query", "total", "latency ms")
    _columns_in_view(page, "option", "hosting", "inference")   # the cost breakdown
    _shot(page, "2-estimate")

    # RAG: build the index and ask.
    page.get_by_role("link", name="RAG").click()
    page.get_by_role("button", name="Build index").click()
    page.get_by_text("Indexed 28 documents").wait_for()
    page.get_by_label("Your question").fill("When are new invoices due by default?")
    page.get_by_role("button", name="Ask").click()
    # the shipped default answers: the bundled local LLM, streamed, named for what it is
    page.get_by_text("tiny model, demo quality", exact=False).first.wait_for(timeout=120_000)
    page.get_by_text("Time to first token", exact=False).first.wait_for()
    _shot(page, "3-rag")

    # Fine-tune: split and train the local stand-in.
    page.get_by_role("link", name="Fine-tune").click()
    page.get_by_role("button", name="Make split").click()
    page.get_by_text("pairs to train on").wait_for()
    page.get_by_role("button", name="Train locally").click()
    page.get_by_text("Trained local-").wait_for()
    _shot(page, "4-finetune")

    # Compare: every arm on a quick sample of 12 questions (the local LLM takes seconds per RAG answer).
    page.get_by_role("link", name="Compare").click()
    limit = page.locator(".st-key-cmp_limit input")
    limit.fill("12")
    limit.press("Enter")
    page.wait_for_timeout(1000)
    page.get_by_role("button", name="Run comparison").click()
    page.get_by_text("questions in this run", exact=False).wait_for(timeout=600_000)
    page.get_by_text("tiny local models in this run", exact=False).first.wait_for()
    page.get_by_role("tab", name="Per question").click()
    _columns_in_view(page, "question", "RAG", "Fine-tuned", whole=False)   # the arms that matter first
    page.get_by_role("button", name="Send measured figures to Estimate").click()
    page.get_by_text("Sent measured latency").wait_for()
    _shot(page, "5-compare")
    page.get_by_role("link", name="Estimate").click()
    page.get_by_text("Estimate and measurement").wait_for()
    _columns_in_view(page, "option", "latency ms", "$ per query", "prompt tokens")   # estimate beside measurement

    # Report: the verdict in three parts, then the memo in Markdown and in HTML.
    page.get_by_role("link", name="Report").click()
    page.get_by_text("Report: the verdict and the decision memo").wait_for()
    verdict = page.locator(".st-key-report_verdict")
    verdict.get_by_role("heading", name="RAG", exact=True).wait_for()
    for part in ("Fit · points to RAG", "Cost and latency · points to", "Measured quality · points to"):
        assert verdict.get_by_text(part, exact=False).count() == 1, part
    assert verdict.get_by_text("What would change the verdict").count() == 1
    verdict.get_by_text("tiny local models (SmolLM2-135M-Instruct", exact=False).wait_for()   # named in the verdict
    with page.expect_download() as download:
        page.get_by_role("button", name="Memo (Markdown)").click()
    memo = Path(download.value.path()).read_text()
    assert memo.startswith("# Decision memo") and "## Verdict: RAG" in memo and "Measured comparison" in memo
    (ARTIFACTS / "decision-memo.md").write_text(memo)
    _shot(page, "6-report")
    page.get_by_role("button", name="Prepare the HTML memo").click()
    with page.expect_download() as download:
        page.get_by_role("button", name="Memo (HTML, interactive charts)").click()
    html = ARTIFACTS / "decision-memo.html"
    download.value.save_as(html)
    page.close()
    for width in (1400, 390):
        memo_page = browser.new_page(viewport={"width": width, "height": 900})
        memo_page.goto(html.as_uri())
        memo_page.locator(".js-plotly-plot .main-svg").first.wait_for()
        memo_page.wait_for_timeout(1000)
        assert memo_page.locator(".verdict h2").inner_text() == "Verdict: RAG"
        problems = memo_page.evaluate(CHART_LABELS_JS)
        memo_page.screenshot(path=str(ARTIFACTS / f"6-memo-{width}px.png"), full_page=True)
        memo_page.close()
        assert problems["charts"] >= 5 and not problems["clipped"], problems


def test_two_sessions_on_one_workspace(server, browser):
    url, home = server
    a, b = _open(browser, url), _open(browser, url, "data")
    a.get_by_text("Decide: fine-tuning, RAG or a hybrid?").wait_for()
    b.get_by_text("Data: documents and question/answer pairs").wait_for()
    # Session A answers a question while session B uploads a document.
    a.get_by_text("Required for every answer").first.click()
    b.locator(".st-key-data_docs_upload input[type=file]").set_input_files(
        files=[{"name": "from-b.md", "mimeType": "text/markdown", "buffer": b"# From B\n\nUploaded by session B."}])
    b.get_by_text("from-b.md").first.wait_for()
    b.wait_for_timeout(2000)  # as a person would: the file finishes uploading before the form is sent
    b.get_by_role("button", name="Add documents").click()
    try:
        b.get_by_text("Added 1 and updated 0 documents").wait_for(timeout=30_000)
    except Exception:
        _shot(b, "7-two-sessions-failed")
        raise
    a.wait_for_timeout(1500)
    db = home / "sample" / "workbench.db"
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT COUNT(*) FROM documents WHERE doc_id = 'from-b.md'").fetchone()[0] == 1
        state = conn.execute("SELECT value FROM state WHERE key = 'decide'").fetchone()[0]
    assert '"citations": "required"' in state
    b.reload()
    b.get_by_text("Data: documents and question/answer pairs").wait_for()
    b.get_by_test_id("stMetricValue").filter(has_text="29").first.wait_for()  # 28 sample documents + B's
    _shot(b, "7-two-sessions")
    a.close()
    b.close()
