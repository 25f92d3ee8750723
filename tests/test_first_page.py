"""The first page a new server draws (Decide, nothing answered) loads only what it shows.

The numeric and HTTP stacks (numpy, pandas, the HTTP client of the hosted backends) cost a cold server
about half a second on two cores before the page appears; they load when a page first needs them.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from workbench import sample, workspace

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("numpy", "pandas", "httpx2", "httpcore2", "openai", "faiss", "torch", "transformers")

PROBE = """
import sys
from streamlit.testing.v1 import AppTest
at = AppTest.from_file(sys.argv[1], default_timeout=60).run()
assert not at.exception, [e.message for e in at.exception]
print(at.title[0].value)
print(at.selectbox(key="decide_preset").label)
print(",".join(m for m in sys.argv[2].split(",") if m in sys.modules))
"""


@pytest.mark.timeout(120)
def test_the_first_page_draws_without_the_numeric_and_http_stacks(tmp_path):
    sample.ensure_sample(workspace.open_workspace("sample", home=tmp_path, create=True))
    env = {**os.environ, "WORKBENCH_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", PROBE, str(ROOT / "app.py"), ",".join(HEAVY)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=100)
    assert done.returncode == 0, done.stderr[-2000:]
    title, preset, loaded = done.stdout.splitlines()[-3:]
    assert title == "Decide: fine-tuning, RAG or a hybrid?"
    assert preset == "Start from a preset"
    assert loaded == ""


@pytest.mark.timeout(120)
def test_the_probe_sees_a_heavy_import(tmp_path):
    page = tmp_path / "page.py"
    page.write_text("import streamlit as st\nimport numpy\nst.title('x')\nst.selectbox('s', [1], key='decide_preset')\n")
    done = subprocess.run([sys.executable, "-c", PROBE, str(page), ",".join(HEAVY)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=100)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines()[-1] == "numpy"
