"""Where workspaces live, which one a new app session opens, and commands that never make one unasked."""
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from e2e import test_browser as e2e

from workbench import sample, workspace
from workbench.cli import main
from workbench.safe_text import escape_markdown

USER = Path("/home/ada")
server, browser = e2e.server, e2e.browser     # the browser suite's app server and headless chromium


@pytest.mark.parametrize("env, platform, expected", [
    ({}, "linux", USER / ".local/share"),
    ({"XDG_DATA_HOME": "/data/ada"}, "linux", Path("/data/ada")),
    ({"XDG_DATA_HOME": "rel/data"}, "linux", USER / ".local/share"),     # the spec says to ignore a relative one
    ({}, "darwin", USER / "Library/Application Support"),
    ({"LOCALAPPDATA": r"C:\Users\ada\AppData\Local"}, "win32", Path(r"C:\Users\ada\AppData\Local")),
    ({}, "win32", USER / "AppData/Local"),
])
def test_the_per_user_data_folder_of_each_platform(env, platform, expected):
    assert workspace.user_data_dir(env, platform, USER) == expected


def test_the_home_is_the_same_from_any_folder_and_workbench_home_overrides_it(tmp_path, monkeypatch):
    monkeypatch.delenv("WORKBENCH_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    seen = []
    for folder in (tmp_path, tmp_path / "elsewhere"):
        folder.mkdir(exist_ok=True)
        monkeypatch.chdir(folder)
        seen.append(workspace.home_dir())
        seen.append(Path(CliRunner().invoke(main, ["workspace", "home"]).output.strip()))
    assert seen == [tmp_path / "data" / "workbench"] * 4
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "mine"))
    assert workspace.home_dir() == tmp_path / "mine"


def test_a_workspace_left_in_the_former_folder_is_pointed_at(workbench_home, tmp_path, monkeypatch):
    checkout = tmp_path / "checkout"
    workspace.create_workspace("old", home=checkout / "workspaces")
    monkeypatch.chdir(checkout)
    assert workspace.former_home() == checkout / "workspaces"
    assert workspace.missing_message("old") == (
        f"no workspace named 'old' in {workbench_home} (known: none yet); {checkout / 'workspaces'}, where earlier "
        f"versions kept workspaces, has one: set WORKBENCH_HOME={checkout / 'workspaces'} to use it")
    monkeypatch.chdir(tmp_path)                         # the home itself is ./workspaces here: nothing to point at
    assert workspace.former_home() is None


def test_which_workspace_a_new_session_opens(workbench_home):
    assert workspace.start_workspace() == ("sample", None)
    for name in ("pilot", "other"):
        workspace.create_workspace(name)
    workspace.remember_last_used("pilot")
    assert json.loads((workbench_home / ".last-workspace.json").read_text()) == {"workspace": "pilot"}
    assert workspace.start_workspace() == ("pilot", None)
    assert workspace.start_workspace(linked="other") == ("other", None)
    assert workspace.start_workspace(linked="sample") == ("sample", None)      # made when opened, as always
    assert workspace.start_workspace(flag="served") == ("served", None)        # the server's --workspace
    assert workspace.start_workspace(linked="ghost") == ("pilot", (
        f"The link names a workspace that is not here: no workspace named 'ghost' in {workbench_home} "
        "(known: other, pilot). Opened 'pilot' instead."))
    assert workspace.start_workspace(linked="../x") == ("pilot", (
        "The link names an invalid workspace '../x': it contains '/'; use only letters, digits, '.', '_' or '-'. "
        "Opened 'pilot' instead."))
    assert workspace.list_workspaces() == ["other", "pilot"]                    # nothing made for a bad link
    workspace.delete_workspace("pilot")
    assert workspace.start_workspace() == ("sample", None)
    (workbench_home / ".last-workspace.json").write_text("[not an object")
    assert workspace.last_used() is None


def test_sessions_open_the_last_used_or_linked_workspace_and_the_address_follows(app_test, workbench_home,
                                                                              monkeypatch):
    for name in ("pilot", "other"):
        workspace.create_workspace(name)
    first = app_test("pilot").run()
    assert first.query_params == {"workspace": "pilot"}
    second = app_test().run()                               # a new session: the last used, not the sample
    assert not second.exception
    assert second.sidebar.selectbox(key="workspace_select").value == "pilot"
    second.sidebar.selectbox(key="workspace_select").set_value("other").run()
    assert second.query_params == {"workspace": "other"} and workspace.last_used() == "other"
    linked = app_test()
    linked.query_params["workspace"] = "pilot"
    assert linked.run().sidebar.selectbox(key="workspace_select").value == "pilot"
    ghost = app_test()
    ghost.query_params["workspace"] = "ghost"
    ghost.run()
    assert ghost.sidebar.selectbox(key="workspace_select").value == "pilot"    # the last used: the linked session's
    assert [w.value for w in ghost.sidebar.warning] == [escape_markdown(
        f"The link names a workspace that is not here: no workspace named 'ghost' in {workbench_home} "
        "(known: other, pilot). Opened 'pilot' instead.")]
    assert ghost.query_params == {"workspace": "pilot"} and not (workbench_home / "ghost").exists()
    monkeypatch.setattr("sys.argv", ["app.py", "--workspace", "served"])   # streamlit run app.py -- --workspace
    served = app_test().run()
    assert served.sidebar.selectbox(key="workspace_select").value == "served"
    assert workspace.list_workspaces() == ["other", "pilot", "served"]


def test_commands_never_make_a_workspace_unasked(workbench_home, tmp_path, monkeypatch):
    def run(*args):
        return CliRunner().invoke(main, list(args))

    doc = tmp_path / "terms.md"
    doc.write_text("# Terms\n\nInvoices are due in 30 days.\n")
    hint = ". The sample workspace is made from the bundled documents by `workbench sample` or by opening the app"
    for args in (["ask", "When are invoices due?"], ["finetune", "check"], ["finetune", "status"],
                 ["report", "--out", str(tmp_path / "memo.md")], ["ingest", str(doc)]):
        result = run(*args)
        assert result.exit_code == 1, args
        assert (f"Error: field 'workspace': no workspace named 'sample' in {workbench_home} (known: none yet){hint}"
                in result.output), args
    nope = run("ask", "When?", "--workspace", "nope")
    assert nope.exit_code == 1 and "Make it with `workbench workspace create nope`" in nope.output
    assert not workbench_home.exists()

    made = run("ingest", str(doc), "--workspace", "terms")
    assert f"created workspace 'terms' in {workbench_home}\n" in made.stderr and "terms: 1 documents" in made.stdout

    bundled = tmp_path / "bundled"
    (bundled / "docs").mkdir(parents=True)
    (bundled / "docs" / "terms.md").write_bytes(doc.read_bytes())
    (bundled / "qa.jsonl").write_text('{"question": "When are invoices due?", "answer": "In 30 days"}\n')
    monkeypatch.setattr(sample, "SAMPLE_DIR", bundled)
    assert run("sample").output == f"made the sample workspace in {workbench_home / 'sample'}: 1 documents, " \
                                   "1 question/answer pairs\n"
    asked = run("ask", "When are invoices due?")
    assert asked.exit_code == 0 and "30 days" in asked.stdout
    assert asked.stderr.startswith(f"no index yet; building it first (1 documents of workspace 'sample' in "
                                   f"{workbench_home})\n")
    assert "  indexed 1 documents as 1 chunks in " in asked.stderr


@pytest.mark.browser
@pytest.mark.skipif(e2e.CHROMIUM is None, reason="chromium is not installed (scripts/install-test-deps)")
def test_in_a_browser_sessions_open_the_last_used_or_linked_workspace_across_pages(server, browser):
    url, home = server
    for name in ("acme", "pilot"):
        workspace.create_workspace(name, home=home)
    workspace.remember_last_used("acme", home=home)                # as an earlier session leaves it
    a = e2e._open(browser, url)
    a.get_by_text(f"Stored in {home / 'acme'}").wait_for()
    a.get_by_role("combobox", name="Current workspace").click()
    a.get_by_role("option", name="pilot").click()
    a.get_by_text(f"Stored in {home / 'pilot'}").wait_for()
    a.get_by_role("link", name="Estimate").click()
    a.get_by_text("Estimate: cost and latency").wait_for()
    a.get_by_text(f"Stored in {home / 'pilot'}").wait_for(timeout=30_000)  # the page changed, not the workspace
    a.wait_for_url(f"{url}/estimate?workspace=pilot")
    assert workspace.last_used(home) == "pilot"
    b = e2e._open(browser, url, "?workspace=acme")                      # a shared link
    b.get_by_text(f"Stored in {home / 'acme'}").wait_for()
    assert workspace.list_workspaces(home) == ["acme", "pilot"]      # no sample made on the way
    a.close()
    b.close()
