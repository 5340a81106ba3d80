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
    assert "<td>resnet20</td>" in html                            # text stays left-aligned
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
    assert any("missing.png" in error for error in refused) and any("example.invalid" in error for error in refused), errors
    assert images["layout"]["phone"]["overflows"]
