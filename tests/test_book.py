"""The whole book, executed with the ``smoke`` profile and rendered to HTML, then
opened in headless Chromium with the network off: math typeset, figures loaded,
widgets drawn from their saved state, and no request leaving the machine."""

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from shortbias_lib.runs import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "tools"))
from build_book import toc_notebooks  # noqa: E402

pytestmark = pytest.mark.book
SCREENSHOTS = REPO_ROOT / "_build" / "screenshots"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


@pytest.fixture(scope="session")
def smoke_book(tmp_path_factory, data_root):
    """A copy of the book executed with ``profile=smoke`` and built to HTML."""
    root = tmp_path_factory.mktemp("book")
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(REPO_ROOT / name, root / name)
    shutil.copytree(REPO_ROOT / "book", root / "book",
                    ignore=shutil.ignore_patterns("*.ipynb", ".ipynb_checkpoints"))
    command = [sys.executable, str(REPO_ROOT / "tools" / "build_book.py"), "--root", str(root),
               "--profile", "smoke", "--device", "cpu", "--data-root", str(data_root)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return root


def _pages(root):
    return [(source, source.with_suffix(".ipynb"),
             root / "_build" / "html" / source.relative_to(root).with_suffix(".html"))
            for source in toc_notebooks(root)]


def test_every_page_is_an_executed_notebook_without_errors_or_stderr(smoke_book):
    pages = _pages(smoke_book)
    assert len(pages) >= 2
    for source, notebook_path, html in pages:
        notebook = nbformat.read(notebook_path, as_version=4)
        for cell in notebook.cells:
            if cell.cell_type != "code":
                continue
            assert cell.execution_count is not None, f"{source.name}: unexecuted cell"
            for output in cell.outputs:
                assert output.output_type != "error", f"{source.name}: {output.get('evalue')}"
                assert output.get("name") != "stderr", f"{source.name}: {output.get('text')}"
        assert html.exists(), html
        assert "<code class=\"docutils literal notranslate\"><span class=\"pre\">smoke</span></code>" \
            in html.read_text() or "smoke" in html.read_text()


def test_figures_in_notebooks_are_inline_images_in_the_html(smoke_book):
    figures = 0
    for source, notebook_path, html in _pages(smoke_book):
        notebook = nbformat.read(notebook_path, as_version=4)
        pngs = sum("image/png" in output.get("data", {})
                   for cell in notebook.cells if cell.cell_type == "code"
                   for output in cell.outputs)
        text = html.read_text()
        assert text.count("<img") >= pngs, f"{source.name}: {pngs} figures, fewer <img> tags"
        figures += pngs
    assert figures > 0, "the book shows no figure: inline plotting is broken"


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium through ChromeDriver, with every host name unresolvable."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and chromedriver):
        pytest.fail("chromium and chromedriver are needed: run tools/install_browser.sh")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1280,1600",
                 "--host-resolver-rules=MAP * ~NOTFOUND", "--allow-file-access-from-files"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


PAGE_CHECK = """
const done = arguments[arguments.length - 1];
const ready = (window.MathJax && MathJax.startup) ? MathJax.startup.promise : Promise.resolve();
ready.then(() => new Promise(r => setTimeout(r, 1500))).then(() => {
  const images = Array.from(document.querySelectorAll('article img'));
  done({
    math: document.querySelectorAll('mjx-container').length,
    mathErrors: document.querySelectorAll('mjx-merror').length,
    rawMath: document.querySelectorAll('div.math, span.math').length,
    images: images.length,
    brokenImages: images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src),
    widgets: document.querySelectorAll('.jupyter-widgets.widget-container, .jupyter-widgets').length,
    fontErrors: [...document.fonts].filter(f => f.status === 'error').map(f => f.family),
    external: performance.getEntriesByType('resource').map(e => e.name)
                .filter(n => !n.startsWith('file:') && !n.startsWith('data:')),
  });
});
"""


def test_html_renders_offline_in_headless_chromium(smoke_book, browser):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    totals = {"math": 0, "images": 0, "widgets": 0}
    for source, notebook_path, html in _pages(smoke_book):
        browser.get(html.as_uri())
        browser.set_script_timeout(60)
        report = browser.execute_async_script(PAGE_CHECK)
        browser.save_screenshot(str(SCREENSHOTS / f"{source.stem}.png"))
        name = source.name
        assert report["external"] == [], f"{name} requested {report['external']}"
        assert report["mathErrors"] == 0, f"{name}: MathJax errors"
        if report["rawMath"]:
            assert report["math"] > 0, f"{name}: math left untypeset"
        assert report["brokenImages"] == [], f"{name}: broken images {report['brokenImages']}"
        assert report["fontErrors"] == [], f"{name}: fonts failed to load {report['fontErrors']}"
        if WIDGET_STATE in html.read_text():
            assert report["widgets"] > 0, f"{name}: saved widgets not drawn"
        for key in totals:
            totals[key] += report[key]
    assert totals["math"] > 0 and totals["images"] > 0, totals
