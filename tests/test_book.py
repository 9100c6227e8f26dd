"""The whole book, executed with the ``smoke`` profile and rendered to HTML, then
opened in headless Chromium with the network off: math typeset, figures loaded,
widgets drawn from their saved state, and no request leaving the machine. The
build leaves the sources alone: the README's interactive commands after it find
nothing changed in git."""

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import pytest

from shortbias_lib.notebook import banner
from shortbias_lib.runs import REPO_ROOT, resolve_device


def _load_tool(name):
    """Import ``tools/NAME.py`` (a script, not part of the package) as a module."""
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build_book = _load_tool("build_book")
executed_notebook, toc_notebooks = build_book.executed_notebook, build_book.toc_notebooks

pytestmark = pytest.mark.book
SCREENSHOTS = REPO_ROOT / "_build" / "screenshots"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
BUILD_LOG = Path("_build") / "build.log"  # what the smoke build printed (git-ignored)


BIN = Path(sys.executable).parent


def _git(root, *args):
    result = subprocess.run(["git", "-c", "user.name=test", "-c", "user.email=test@localhost",
                             *args], cwd=root, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="session")
def smoke_book(tmp_path_factory, data_root):
    """A copy of the book, committed in a git repository of its own, executed with
    ``profile=smoke`` and built to HTML."""
    root = tmp_path_factory.mktemp("book")
    for name in ("_config.yml", "_toc.yml", ".gitignore"):
        shutil.copy(REPO_ROOT / name, root / name)
    shutil.copytree(REPO_ROOT / "book", root / "book",
                    ignore=shutil.ignore_patterns("*.ipynb", ".ipynb_checkpoints"))
    # The sources in the form a round trip through Jupytext gives (its version in the
    # header, cell metadata keys sorted as in the .ipynb), so that what follows checks
    # the build and the pairing, not how a source was first written.
    sources = sorted(map(str, (root / "book").glob("*.py")))
    subprocess.run([str(BIN / "jupytext"), "--quiet", "--sync", *sources], check=True)
    for paired in (root / "book").glob("*.ipynb"):
        os.utime(paired, (paired.stat().st_mtime + 10,) * 2)
    subprocess.run([str(BIN / "jupytext"), "--quiet", "--sync", *sources], check=True)
    for paired in (root / "book").glob("*.ipynb"):
        paired.unlink()
    _git(root, "init", "--quiet")
    _git(root, "add", ".")
    _git(root, "commit", "--quiet", "-m", "sources")
    command = [sys.executable, str(REPO_ROOT / "tools" / "build_book.py"), "--root", str(root),
               "--profile", "smoke", "--device", "cpu", "--data-root", str(data_root)]
    # generous: on 2 busy cores the smoke build has taken over 15 minutes
    result = subprocess.run(command, capture_output=True, text=True, timeout=2400)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    (root / BUILD_LOG).write_text(result.stdout + result.stderr)
    return root


def _pages(root):
    return [(source, executed_notebook(root, source),
             root / "_build" / "html" / source.relative_to(root).with_suffix(".html"))
            for source in toc_notebooks(root)]


def test_every_page_is_an_executed_notebook_without_errors_or_stderr(smoke_book):
    pages = _pages(smoke_book)
    assert len(pages) >= 2
    smoke_banner = banner("smoke", resolve_device("cpu"), 0)
    for source, notebook_path, html in pages:
        notebook = nbformat.read(notebook_path, as_version=4)
        for cell in notebook.cells:
            if cell.cell_type != "code":
                continue
            assert cell.execution_count is not None, f"{source.name}: unexecuted cell"
            for output in cell.outputs:
                assert output.output_type != "error", f"{source.name}: {output.get('evalue')}"
                assert output.get("name") != "stderr", f"{source.name}: {output.get('text')}"
        # the banner notebook.setup shows names the profile (and device and seed) on every page
        shown = [output.get("data", {}).get("text/markdown") for cell in notebook.cells
                 if cell.cell_type == "code" for output in cell.outputs]
        assert smoke_banner in shown, f"{source.name}: no smoke-profile banner"
        assert html.exists(), html
        assert "<code class=\"docutils literal notranslate\"><span class=\"pre\">smoke</span></code>" \
            in html.read_text()


def test_the_build_log_holds_progress_and_errors_only(smoke_book):
    """No warning a reader of the log must learn to ignore, such as ipykernel's "Kernel is
    running over TCP without encryption" once per chapter (build_book.kernel_config)."""
    log = (smoke_book / BUILD_LOG).read_text()
    assert "build_book: executing book/intro.py" in log, log[-2000:]
    noise = [line for line in log.splitlines()
             if re.search(r"\bwarning\b|without encryption", line, re.I)]
    assert noise == [], noise[:5]


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


# MyST that did not render shows as text such as "````{admonition} Title :class: dropdown",
# "{glue:text}`name`", "```{note}" or "$T$ = 100": a directive or role name in braces, a
# fenced directive's opening, a directive option, or math in dollars. (A JavaScript regular
# expression.)
_MYST_NAMES = ("admonition|attention|caution|danger|error|hint|important|note|seealso|tip|warning|"
               "dropdown|toggle|margin|sidebar|topic|epigraph|figure|image|table|list-table|"
               "csv-table|math|eq|glue|glue:any|glue:text|glue:md|glue:figure|glue:math|code|"
               "code-block|code-cell|literalinclude|include|raw|eval-rst|tableofcontents|contents|"
               "ref|numref|doc|term|download|sub|sup|abbr|cite|footcite|index|card|grid|tab-set|"
               "tab-item|button-ref|button-link|iconify|octicon|div|span")
RAW_MYST = (r"[`:~]{3,}\s*\{[\w:.-]+\}"  # the opening of a fenced directive
            r"|\{(?:" + _MYST_NAMES + r")\}"  # a directive or role name in braces
            r"|(?:^|\s):(?:class|name|label|open|figwidth|width|align|alt|header-rows|"
            r"widths|caption|maxdepth|numbered|tags):(?=\s|$)"  # a directive option
            r"|\$[^$\s][^$]{0,80}\$")  # TeX left in dollars ({glue:md} renders no math)

# At the browser's 1280 px window no figure may be shown at less than this fraction of its
# natural width (issue: legible pages); wider figures need fewer panels per row.
MIN_SHOWN_FRACTION = 0.6

PAGE_CHECK = r"""
const MIN_SHOWN_FRACTION = %s;
const RAW_MYST = new RegExp(%s, 'g');
const done = arguments[arguments.length - 1];

// MyST syntax left in the page's text, outside code and math (where a docstring's
// ":class:`X`" or TeX braces are content), with some context; hidden text included.
function rawMyst() {
  const article = (document.querySelector('article') || document.body).cloneNode(true);
  article.querySelectorAll('pre, code, script, style, svg, mjx-container, .math')
    .forEach(e => e.remove());
  const text = article.textContent;
  return [...text.matchAll(RAW_MYST)].map(m =>
    text.slice(Math.max(0, m.index - 40), m.index + m[0].length + 40).replace(/\s+/g, ' '));
}

// Every admonition titled "Source: ...": a collapsible dropdown (sphinx-togglebutton),
// collapsed, with the code inside, shown by a click on its title.
function sourceDropdowns() {
  return [...document.querySelectorAll('article .admonition')]
    .filter(box => (box.querySelector('.admonition-title') || {textContent: ''})
                    .textContent.trim().startsWith('Source:'))
    .map(box => {
      const title = box.querySelector('.admonition-title');
      const code = box.querySelector('div.highlight pre');
      // sphinx-togglebutton hides a collapsed box's content with visibility (and fades
      // its opacity and height, so those are no test right after a click)
      const shown = () => !!code && getComputedStyle(code).visibility === 'visible';
      const collapsed = !shown();
      title.click();
      const opens = shown();
      title.click();
      const name = (title.querySelector('code') || {textContent: '?'}).textContent.split('.').pop();
      return {title: title.textContent.trim().slice(0, 80),
              dropdown: box.classList.contains('dropdown') && !!box.querySelector('button.toggle-button'),
              code: !!code && code.textContent.includes(name), collapsed: collapsed, opens: opens};
    });
}
const ready = (window.MathJax && MathJax.startup) ? MathJax.startup.promise : Promise.resolve();
ready.then(() => new Promise(r => setTimeout(r, 1500))).then(() => {
  const images = Array.from(document.querySelectorAll('article img'));
  done({
    math: document.querySelectorAll('mjx-container').length,
    mathErrors: document.querySelectorAll('mjx-merror').length,
    rawMath: document.querySelectorAll('div.math, span.math').length,
    images: images.length,
    brokenImages: images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src),
    // Figures squeezed below MIN_SHOWN_FRACTION of their natural width have unreadable labels.
    narrowImages: images.filter(i => {
      const shown = i.getBoundingClientRect().width;
      return i.naturalWidth > 0 && shown > 0 && shown < MIN_SHOWN_FRACTION * i.naturalWidth;
    }).map(i => `${(i.closest('figure') || {}).id || i.src}: ${i.naturalWidth} px shown at ` +
                 `${Math.round(i.getBoundingClientRect().width)}`),
    widgets: document.querySelectorAll('.jupyter-widgets.widget-container, .jupyter-widgets').length,
    fontErrors: [...document.fonts].filter(f => f.status === 'error').map(f => f.family),
    rawMyst: rawMyst(),
    sourceDropdowns: sourceDropdowns(),
    external: performance.getEntriesByType('resource').map(e => e.name)
                .filter(n => !n.startsWith('file:') && !n.startsWith('data:')),
  });
});
""" % (MIN_SHOWN_FRACTION, json.dumps(RAW_MYST))


def test_html_renders_offline_in_headless_chromium(smoke_book, browser):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    totals = {"math": 0, "images": 0, "widgets": 0}
    source_dropdowns = 0
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
        assert report["narrowImages"] == [], f"{name}: figures squeezed {report['narrowImages']}"
        assert report["fontErrors"] == [], f"{name}: fonts failed to load {report['fontErrors']}"
        assert report["rawMyst"] == [], f"{name}: MyST shown as text: {report['rawMyst']}"
        dropdowns = report["sourceDropdowns"]
        expected = len(re.findall(r"^\s*show_source\(", source.read_text(), re.M))
        assert len(dropdowns) == expected, \
            f"{name}: {expected} show_source calls, {len(dropdowns)} source dropdowns: {dropdowns}"
        for box in dropdowns:
            assert box["dropdown"] and box["code"] and box["collapsed"] and box["opens"], \
                f"{name}: a source box is no collapsed dropdown holding its code: {box}"
        source_dropdowns += len(dropdowns)
        if WIDGET_STATE in html.read_text():
            assert report["widgets"] > 0, f"{name}: saved widgets not drawn"
        for key in totals:
            totals[key] += report[key]
    assert totals["math"] > 0 and totals["images"] > 0 and source_dropdowns > 0, (totals, source_dropdowns)


def _interactive_commands():
    """The Jupytext commands of the README's interactive section and of ``make lab``."""
    readme = (REPO_ROOT / "README.md").read_text()
    section = re.search(r"^## [^\n]*interactive[^\n]*\n(.*?)(?=^## )", readme, re.S | re.M | re.I)
    assert section, "README: no section on running the notebooks interactively"
    blocks = re.findall(r"```bash\n(.*?)```", section.group(1), re.S)
    readme_lines = [line.split("#")[0].strip() for block in blocks for line in block.splitlines()]
    lab = subprocess.run(["make", "-n", "-B", "lab"], cwd=REPO_ROOT, capture_output=True,
                         text=True, check=True).stdout.splitlines()
    commands = [line for line in readme_lines + lab if re.match(r"(\.venv/bin/)?jupytext ", line)]
    assert any("--sync" in command for command in commands), (readme_lines, lab)
    return [re.sub(r"^(\.venv/bin/)?jupytext", str(BIN / "jupytext"), command)
            for command in commands]


def test_build_and_the_readmes_interactive_commands_leave_the_sources_clean(smoke_book):
    """The build writes nothing beside the sources; pairing them afterwards (the README's
    commands, ``make lab``) takes the sources as they are, not the executed notebooks."""
    root = smoke_book
    assert _git(root, "status", "--porcelain") == ""
    assert not list((root / "book").glob("*.ipynb")), "the build wrote notebooks into book/"
    for command in _interactive_commands():
        subprocess.run(command, shell=True, cwd=root, check=True, capture_output=True)
    assert _git(root, "status", "--porcelain") == "", _git(root, "diff")
    paired = sorted((root / "book").glob("*.ipynb"))
    assert paired, "the interactive commands paired no notebook"
    for path in paired:  # the pair as JupyterLab leaves it: the .ipynb saved last
        os.utime(path, (path.stat().st_mtime + 10,) * 2)
        notebook = nbformat.read(path, as_version=4)
        assert "papermill" not in notebook.metadata
        assert not any("injected-parameters" in cell.metadata.get("tags", []) for cell in notebook.cells)
    subprocess.run([str(BIN / "jupytext"), "--sync", *map(str, paired)], cwd=root, check=True,
                   capture_output=True)
    assert _git(root, "status", "--porcelain") == "", _git(root, "diff")


def test_published_html_has_no_symbolic_links(smoke_book):
    """GitHub Pages refuses an artifact holding links; the build's mirror folder links
    to the sources, and none of those links may reach the HTML."""
    html = smoke_book / "_build" / "html"
    links = [path for path in html.rglob("*") if path.is_symlink()]
    assert links == [], links[:5]
    assert (html / "index.html").exists() or (html / "book" / "intro.html").exists()


def test_a_hanging_widget_cell_is_cut_short_and_its_chapter_executed_again(tmp_path, monkeypatch):
    """The build's guard against ipywidgets cells that never return (jupyter/nbclient#312):
    a cell tagged ``widget`` gets a time limit, and its chapter runs once more."""
    monkeypatch.setattr(build_book, "WIDGET_CELL_TIMEOUT", 5)
    first_run = tmp_path / "first_run"
    source = tmp_path / "book" / "chapter.py"
    source.parent.mkdir()
    source.write_text(textwrap.dedent(f"""\
        # ---
        # jupyter:
        #   kernelspec:
        #     display_name: Python 3 (ipykernel)
        #     language: python
        #     name: python3
        # ---

        # %% tags=["parameters"]
        profile = "smoke"

        # %% tags=["widget"]
        import pathlib
        import time

        marker = pathlib.Path({str(first_run)!r})
        if not marker.exists():  # the first execution hangs, the second returns
            marker.touch()
            time.sleep(120)
        """))
    started = time.perf_counter()
    build_book.execute(source, tmp_path, {"profile": "smoke"})
    assert first_run.exists() and time.perf_counter() - started < 100
    assert executed_notebook(tmp_path, source).exists()
    # with a single attempt the hang is an error, not a silent wait
    first_run.unlink()
    with pytest.raises(TimeoutError):
        build_book.execute(source, tmp_path, {"profile": "smoke"}, attempts=1)
    assert build_book.cell_timeout({"metadata": {"tags": ["remove-input"]}}) is None


def test_a_source_dropdown_is_one_admonition_holding_the_code():
    """``show_source``'s MyST parses as one dropdown directive whose body is the code, whatever
    its title (backticks, math) and code (backtick runs, lines of colons) hold. A backtick
    fence with backticks in its title is no fence at all (CommonMark): the page showed
    "````{admonition} Source: ... :class: dropdown" as text."""
    from markdown_it.renderer import RendererHTML
    from myst_parser.config.main import MdParserConfig
    from myst_parser.parsers.mdit import create_md_parser

    from shortbias_lib.notebook import source_dropdown

    md = create_md_parser(MdParserConfig(enable_extensions={"colon_fence", "dollarmath"}), RendererHTML)
    title = "Source: `hypergrad.smd`, from $u$ to $(\\alpha, \\mu)$"
    code = 'def f(x):\n    """Uses ``x``; a fence:\n    ```\n    :::\n    """\n    return x\n'
    tokens = [token for token in md.parse(source_dropdown(code, title)) if token.level == 0]
    assert [token.type for token in tokens] == ["colon_fence"], tokens
    assert tokens[0].info == "{admonition} " + title
    options, body = tokens[0].content.split("\n", 1)
    assert options == ":class: dropdown"
    inner = [token for token in md.parse(body) if token.level == 0]
    assert [(token.type, token.info) for token in inner] == [("fence", "python")]
    assert inner[0].content == code
    # the format it replaces: no fence, the directive's opening is a paragraph
    broken = md.parse(f"````{{admonition}} {title}\n:class: dropdown\n```python\n{code}```\n````")
    assert broken[0].type == "paragraph_open"
    with pytest.raises(ValueError):
        source_dropdown(code, "two\nlines")


def test_chapter_kernels_start_without_the_unencrypted_transport_warning(tmp_path, capfd):
    """ipykernel warns on stderr (the build log) at every start of a kernel talking plain TCP;
    the build's kernels get CurveZMQ keys from their manager instead (build_book.kernel_config)."""
    source = tmp_path / "book" / "chapter.py"
    source.parent.mkdir()
    source.write_text(textwrap.dedent("""\
        # ---
        # jupyter:
        #   kernelspec:
        #     display_name: Python 3 (ipykernel)
        #     language: python
        #     name: python3
        # ---

        # %% tags=["parameters"]
        profile = "smoke"

        # %%
        print(profile)
        """))
    build_book.execute(source, tmp_path, {"profile": "smoke"})
    notebook = nbformat.read(executed_notebook(tmp_path, source), as_version=4)
    assert notebook.cells[-1].outputs[0]["text"] == "smoke\n"
    captured = capfd.readouterr()
    assert "without encryption" not in captured.err + captured.out, captured.err
