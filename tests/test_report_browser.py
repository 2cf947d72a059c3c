"""The HTML report in headless Chromium: scripts run without errors, nothing hostile executes."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
from conftest_reports import CATALOGUE, audit_flows, flow_row, make_result, pilot_flows

from auditor.render.report import write_html

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--enable-logging=stderr", "--v=0",
         "--virtual-time-budget=5000"]
# Payloads that would leave a mark in the DOM if a capture string were ever run as code.
PWN_SCRIPT = "<script>document.documentElement.setAttribute('data-pwned','script')</script>"
PWN_IMG = "\"><img src=x onerror=\"document.documentElement.setAttribute('data-pwned','img')\">"


def _browser() -> str:
    path = next((p for p in map(shutil.which, BROWSERS) if p), None)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is required in CI (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return path


def _run(browser, tmp_path, html_path, *extra) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    cmd = [browser, *FLAGS, f"--user-data-dir={profile}", *extra, html_path.as_uri()]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def console_messages(stderr: str) -> list[str]:
    """Chromium logs every console message (errors, CSP violations) as INFO:CONSOLE lines."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    browser = _browser()
    tmp_path = tmp_path_factory.mktemp("browser")
    flows = audit_flows([
        *pilot_flows().to_dict("records"),
        flow_row("198.18.10.101", "198.18.1.2", 8443, verdict="unexpected", src_name=PWN_SCRIPT,
                 dst_name=PWN_IMG, service="http", seconds=60),
    ])
    html_path = tmp_path / "report.html"
    write_html(make_result(flows), html_path, catalogue=CATALOGUE)
    dom = _run(browser, tmp_path, html_path, "--dump-dom")
    shot = tmp_path / "report.png"
    screenshot = _run(browser, tmp_path, html_path, f"--screenshot={shot}",
                      "--window-size=1280,2200", "--hide-scrollbars")
    return dom, screenshot, shot


def test_report_scripts_run_without_console_errors(page):
    dom, screenshot, _ = page
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert console_messages(dom.stderr) == []
    assert console_messages(screenshot.stderr) == []


def test_report_scripts_finish_and_mark_the_tables(page):
    text = page[0].stdout
    assert 'data-report="ready"' in text
    assert re.search(r'<table id="findings-table" class="sortable"[^>]*data-sortable="ready"'
                     r'[^>]*data-filter="ready"', text)
    assert "Showing 7 of 7 findings" in text  # written by the filter script on load
    assert text.count('aria-sort="none"') >= 13  # every findings column became sortable


def test_report_sections_are_in_the_rendered_page(page):
    text = page[0].stdout
    for section in ("summary", "findings", "rules", "rpc", "hosts", "captures"):
        assert f'<section id="{section}">' in text


def test_capture_strings_never_run_in_the_browser(page):
    text = page[0].stdout
    assert "data-pwned" not in text.split("<body>", 1)[0]  # no attribute set on <html>
    assert 'data-pwned="' not in text
    assert "&lt;script&gt;document.documentElement" in text  # shown as text instead


def test_screenshot_is_a_rendered_page(page):
    from PIL import Image

    _, screenshot, shot = page
    assert screenshot.returncode == 0, screenshot.stderr[-2000:]
    assert shot.read_bytes().startswith(b"\x89PNG")
    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 2200)
    colours = image.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 200  # text, plots and tables, not a blank page
