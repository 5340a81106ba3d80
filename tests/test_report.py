"""The HTML report writer: self-contained, escaped, metadata on top, and it renders in a real browser."""

from __future__ import annotations

import os
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from resnet_lab.report import Report, run_metadata  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from browser import browser_missing, open_in_browser  # noqa: E402

EVIL = '<script>alert("x")</script> & <b>bold</b>'


class _Tags(HTMLParser):
    """Every start tag with its attributes, and the text of <style> blocks."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.styles.append(data)


def parse(html: str) -> _Tags:
    parser = _Tags()
    parser.feed(html)
    return parser


def _figure(kind: str):
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot([1, 2, 3, 4], [0.9, 0.5, 0.3, 0.25], label=f"{kind} <loss>")
    ax.set_title(f"{kind} figure & friends")
    ax.legend()
    return fig


# The demo's survey table: row names like these, a dozen columns (item 9: at 1280 px its first
# column was squeezed to a few characters and every name wrapped letter by letter).
SURVEY_LIKE_ROWS = [{"cell": f"{net}{depth}-{norm}-{act}-{init}{suffix}", "grad first": 0.000123 * depth,
                     "grad last": 0.0457, "first/last": 2.69e-10, "monitor": "vanishing", "loss start": 2.303,
                     "loss end": 2.2, "drop": "12%", "->90%": None, "->50%": 3, "outcome": "diverged, nonfinite",
                     "s": 1.2}
                    for net in ("plain", "resnet") for depth in (20, 56) for norm, act, init in
                    (("batch", "relu", "he"), ("none", "sigmoid", "normal"))
                    for suffix in ("", "@lr=1+clip=1")]


def build_report(tmp: Path) -> Report:
    """A report using every kind of block, including image files and text that needs escaping."""
    report = Report("ResNet <20> & plain", subtitle="CIFAR-10 \u2014 2 seeds")
    report.add_findings(["resnet20 beats plain20 by 1.1 points", EVIL])
    report.add_section("Results")
    report.add_paragraph(EVIL)
    report.add_paragraph("a long unbroken path " + "/very_long_directory_name" * 12)
    report.add_table([{"model": "resnet20", "accuracy": 0.91234, "params": 269722, "loss": None},
                      {"model": "plain<20>", "accuracy": 0.9012, "params": 269722, "loss": 0.31}],
                     columns=[("model", "Model"), ("accuracy", "Test accuracy", ".1%"), ("params", "Params"),
                              ("loss", "Loss")], caption="Final accuracy")
    report.add_table([{f"column_{i}": i * 1234.5678 for i in range(24)}], caption="A wide table")
    report.add_table(SURVEY_LIKE_ROWS, caption="Survey cells: long hyphenated row names beside many columns")
    report.add_table([{"event": "the loss became non-finite at step 12 in layer3.8.conv2 and the step was skipped "
                                "by the monitor, which reran the batch with hooks to find the first module",
                       "step": 12, "note": "nonfinite"}], caption="A long text in the first column")
    report.add_heading("Figures")
    svg_fig, png_fig = _figure("svg"), _figure("png")
    report.add_figure(svg_fig, "An SVG figure")
    report.add_figure(png_fig, "A PNG figure", fmt="png")
    png_fig.savefig(tmp / "from_file.png")
    svg_fig.savefig(tmp / "from_file.svg")
    plt.close(svg_fig)
    plt.close(png_fig)
    report.add_figure(tmp / "from_file.png", "A PNG file")
    report.add_figure(tmp / "from_file.svg", "An SVG file")
    report.add_section("Raw numbers")
    report.add_json({"accuracy": [0.91, 0.90], "note": EVIL}, caption="History")
    report.set_meta(settings={"epochs": 2, "lr": 0.1, "milestones": [100, 150]}, data="cifar10: 50,000 train images",
                    seeds=[0, 12345], run_time_s=83.4, **run_metadata("cpu"))
    return report


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("report")
    return build_report(tmp).write(tmp / "out" / "report.html")


@pytest.fixture(scope="module")
def html(written) -> str:
    return written.read_text(encoding="utf-8")


def test_file_is_self_contained(html):
    page = parse(html)
    for tag, attrs in page.tags:
        for name in ("src", "href", "xlink:href", "srcset", "data", "action", "poster"):
            value = (attrs.get(name) or "").strip().lower()
            assert not value.startswith(("http:", "https:", "//", "file:")), f"<{tag} {name}={value[:60]!r}>"
            if tag in ("img", "link") and value:
                assert value.startswith("data:"), f"<{tag}> must embed its resource, has {value[:60]!r}"
        assert not (tag == "link" and "stylesheet" in (attrs.get("rel") or "")), "external stylesheet"
        assert not (tag == "script" and "src" in attrs), "external script"
        assert tag not in ("iframe", "object", "embed"), tag
    css = "".join(page.styles)
    assert "@import" not in css
    assert all(url.startswith(("#", "data:")) for url in re.findall(r"url\(\s*['\"]?([^'\")]*)", html))
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert sum(tag == "img" for tag, _ in page.tags) == 3       # PNG figure, PNG file, SVG file
    assert sum(tag == "svg" for tag, _ in page.tags) == 1       # the inline SVG figure


def test_text_is_escaped(html):
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in html
    assert "<b>bold</b>" not in html
    assert "<title>ResNet &lt;20&gt; &amp; plain</title>" in html
    assert "plain&lt;20&gt;" in html


def test_metadata_is_at_the_top(html):
    meta = html.index('<section class="meta"')
    assert meta < html.index('class="findings"') < html.index("<table")
    block = html[meta:html.index("</section>", meta)]
    for label in ("Settings", "Data", "Seeds", "Hardware", "Library versions", "Run time"):
        assert f"<dt>{label}</dt>" in block
    for fact in ("milestones", "100, 150", "50,000 train images", "0, 12345", "cpu_cores", "torch", "1 min 23 s"):
        assert fact in block, fact


def test_run_metadata_splits_hardware_and_versions():
    facts = run_metadata("cpu")
    assert set(facts) == {"hardware", "versions"}
    assert facts["hardware"]["device"] == "cpu" and facts["hardware"]["cpu_cores"] >= 1
    assert {"python", "torch", "torchvision", "numpy", "matplotlib"} <= set(facts["versions"])
    assert "torch" not in facts["hardware"]


def test_table_formats_and_right_aligns_numbers(html):
    assert '<th scope="col" class="num">Test accuracy</th>' in html
    assert '<td class="num">91.2%</td>' in html and '<td class="num">269,722</td>' in html
    assert '<td class="num">\u2014</td>' in html                 # a missing number in a numeric column
    assert '<td class="key">resnet20</td>' in html                # text stays left-aligned; a row name on one line
    assert '<div class="table-wrap"><table><caption>Final accuracy</caption>' in html


def test_svg_ids_are_unique_across_figures():
    report = Report("two figures")
    for _ in range(2):
        fig = _figure("same")
        report.add_figure(fig, "same figure")
        plt.close(fig)
    text = report.to_html()
    ids = re.findall(r'\bid="([^"]+)"', text)
    assert ids and len(ids) == len(set(ids))
    refs = re.findall(r'(?:url\(#|href="#)([^")]+)', text)
    assert refs and set(refs) <= set(ids)


def test_write_is_atomic_and_replaces(tmp_path):
    path = tmp_path / "r.html"
    Report("first").write(path)
    Report("second").write(path)
    assert "<h1>second</h1>" in path.read_text() and [p.name for p in tmp_path.iterdir()] == ["r.html"]


def test_bad_figures_are_refused(tmp_path):
    report = Report("x")
    with pytest.raises(FileNotFoundError):
        report.add_figure(tmp_path / "missing.png", "missing")
    with pytest.raises(ValueError):
        report.add_figure(tmp_path / "notes.txt", "not an image")
    with pytest.raises(TypeError):
        report.add_figure(42, "not a figure")


# ---- a real browser ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser():
    reason = browser_missing()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but the browser test cannot run: {reason}")
        pytest.skip(reason)
    return open_in_browser


def test_report_renders_in_headless_chromium(browser, written):
    images, errors = browser(written)
    assert errors == []
    assert len(images["images"]) == 4 and images["failed"] == []
    assert all(image["width"] > 0 and image["height"] > 0 for image in images["images"])
    phone, laptop = images["layout"]["phone"], images["layout"]["laptop"]
    assert phone["inner_width"] == 390, "the page must set a mobile viewport"
    assert not phone["overflows"], phone
    assert not laptop["overflows"], laptop


def test_browser_check_catches_broken_images_errors_and_overflow(browser, tmp_path):
    """The checks above can fail: broken images, console errors, external loads and a too-wide page are seen."""
    bad = ('<img src="data:image/png;base64,bm90IGEgcG5n" alt="corrupt">'
           '<img src="missing.png" alt="missing file">'
           '<img src="https://example.invalid/x.png" alt="external">'
           '<div style="width:2000px">too wide</div></main>')
    page = tmp_path / "broken.html"
    page.write_text(Report("broken on purpose").to_html().replace("</main>", bad, 1))
    images, errors = browser(page)
    assert [image["tag"] for image in images["failed"]] == ["img", "img", "img"]
    # The report's policy refuses anything not embedded in it, on disk or on the web, and says so.
    refused = [error for error in errors if "Content Security Policy" in error]
    assert (any("missing.png" in error for error in refused)
            and any("example.invalid" in error for error in refused)), errors
    assert images["layout"]["phone"]["overflows"]


# Every word of every table cell on one line (a cell name wrapping letter by letter splits its words
# over several lines) and no cell's content wider than the cell, per table; at laptop and phone width.
_TABLE_WORDS_JS = """
const bad = [];
document.querySelectorAll('table').forEach((table, t) => {
  const caption = table.caption ? table.caption.textContent.slice(0, 40) : `table ${t}`;
  table.querySelectorAll('th, td').forEach(cell => {
    const column = cell.cellIndex;
    if (cell.scrollWidth > cell.clientWidth + 1)
      bad.push({table: caption, column, text: cell.textContent.slice(0, 60), problem: 'content wider than the cell',
                scroll_width: cell.scrollWidth, client_width: cell.clientWidth});
    const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      for (const m of node.data.matchAll(/\\S+/g)) {
        const range = document.createRange();
        range.setStart(node, m.index);
        range.setEnd(node, m.index + m[0].length);
        const lines = new Set([...range.getClientRects()].filter(r => r.width > 0).map(r => Math.round(r.top)));
        if (lines.size > 1)
          bad.push({table: caption, column, text: m[0], problem: `word over ${lines.size} lines`,
                    cell_width: cell.clientWidth, word_width: Math.round(range.getBoundingClientRect().width)});
      }
    }
  });
  // the first column is never narrower than its longest word
  const firsts = [...table.rows].map(row => row.cells[0]).filter(Boolean);
  const measure = document.createElement('span');
  measure.style.cssText = 'position:absolute;visibility:hidden;white-space:nowrap';
  firsts.forEach(cell => {
    const words = cell.textContent.split(/\\s+/).filter(Boolean);
    const style = getComputedStyle(cell);
    const inner = cell.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    cell.appendChild(measure);  // inside the cell: the cell's font
    for (const word of words) {
      measure.textContent = word;
      const width = measure.getBoundingClientRect().width;
      if (inner + 0.5 < width)
        bad.push({table: caption, column: 0, text: word, problem: 'first column narrower than its longest word',
                  column_width: inner, word_width: width});
    }
    measure.remove();
  });
});
return {bad, tables: document.querySelectorAll('table').length, inner_width: window.innerWidth,
        page_overflows: document.documentElement.scrollWidth > window.innerWidth + 1};
"""


def table_readability(path: Path, widths=((1280, 900, False), (390, 844, True))) -> dict[int, dict]:
    """Open ``path`` in headless Chromium at each (width, height, phone) and run _TABLE_WORDS_JS."""
    import shutil
    import tempfile

    from browser import CHROMEDRIVER, CHROMIUM, FLAGS
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="resnet-lab-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS + [f"--user-data-dir={profile}", f"--window-size={widths[0][0]},{widths[0][1]}"]:
        options.add_argument(flag)
    driver, out = None, {}
    try:
        driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
        driver.get(Path(path).resolve().as_uri())
        for width, height, phone in widths:
            driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
                "width": width, "height": height, "deviceScaleFactor": 3 if phone else 1, "mobile": phone})
            out[width] = driver.execute_script(_TABLE_WORDS_JS)
    finally:
        if driver is not None:
            driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    return out


def test_tables_are_readable_at_laptop_and_phone_width(browser, written):
    """Item 9: at 1280 and 390 px no table squeezes a column below its longest word (a wide table
    scrolls sideways in its wrapper instead), and no word in any cell breaks over lines."""
    for width, found in table_readability(written).items():
        assert found["tables"] == 4 and found["inner_width"] == width
        assert found["bad"] == [], (width, found["bad"][:5])
        assert not found["page_overflows"], width


def test_table_readability_check_catches_squeezed_columns(browser, tmp_path):
    """The check above fails on the old stylesheet, which let cells break anywhere."""
    page = tmp_path / "squeezed.html"
    report = Report("squeezed on purpose")
    report.add_table(SURVEY_LIKE_ROWS)
    page.write_text(report.to_html().replace(
        "</style>", "td, th { overflow-wrap: anywhere; white-space: normal !important; }</style>", 1))
    found = table_readability(page)
    for width in (1280, 390):
        problems = {item["problem"] for item in found[width]["bad"] if item["column"] == 0}
        assert "first column narrower than its longest word" in problems, (width, found[width]["bad"][:3])
