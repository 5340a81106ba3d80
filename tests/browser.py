"""Open a local HTML file in headless Chromium (Debian's chromium + chromedriver, via selenium).

``open_in_browser(path)`` loads the page, checks every image and inline SVG rendered, collects the
console's errors, and measures whether the page overflows horizontally at laptop and phone width.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
PHONE = (390, 844)
LAPTOP = (1366, 900)

FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"]

_IMAGES_JS = """
const out = [];
document.querySelectorAll('img').forEach((img, i) => out.push({
    tag: 'img', index: i, label: (img.getAttribute('src') || '').slice(0, 60),
    ok: img.complete && img.naturalWidth > 0, width: img.naturalWidth, height: img.naturalHeight}));
document.querySelectorAll('svg').forEach((svg, i) => {
    if (svg.parentElement && svg.parentElement.closest('svg')) return;   // nested: judged with its root
    const box = svg.getBoundingClientRect();
    out.push({tag: 'svg', index: i, label: svg.getAttribute('aria-label') || '',
              ok: box.width > 0 && box.height > 0, width: box.width, height: box.height});
});
return out;
"""

_LAYOUT_JS = """
return {scroll_width: document.documentElement.scrollWidth, inner_width: window.innerWidth,
        body_scroll_width: document.body.scrollWidth};
"""


def browser_missing() -> str | None:
    """Why the browser test cannot run here, or None when it can."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        return (f"{' and '.join(missing)} missing: "
                "install Debian's chromium and chromium-driver (make test does, as root)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed: pip install -e '.[dev]'"
    return None


def _layout(driver, size: tuple[int, int], mobile: bool) -> dict:
    """Emulate a screen of ``size`` CSS pixels (a phone: mobile viewport rules, 3x pixels) and measure."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": size[0], "height": size[1], "deviceScaleFactor": 3 if mobile else 1, "mobile": mobile})
    layout = driver.execute_script(_LAYOUT_JS)
    layout["screen_width"] = size[0]
    layout["overflows"] = layout["scroll_width"] > layout["inner_width"] + 1
    return layout


def open_in_browser(path: str | Path, timeout_s: float = 30) -> tuple[dict, list[str]]:
    """Load ``path`` in headless Chromium; return ``(image_report, console_errors)``.

    ``image_report`` has ``images`` (one dict per <img> and top-level <svg>: tag, label, ok, width,
    height), ``failed`` (those not rendered: an <img> not ``complete`` or with ``naturalWidth`` 0,
    an <svg> with an empty bounding box), and ``layout`` ({"laptop": ..., "phone": ...}, each with
    ``screen_width``, ``inner_width`` (equal to it when the page sets a mobile viewport),
    ``scroll_width`` and ``overflows``: the page is wider than the window).
    ``console_errors`` lists the SEVERE browser console messages.
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    url = Path(path).resolve().as_uri()
    profile = tempfile.mkdtemp(prefix="resnet-lab-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS + [f"--user-data-dir={profile}", f"--window-size={LAPTOP[0]},{LAPTOP[1]}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = None
    try:
        driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
        driver.set_page_load_timeout(timeout_s)
        driver.get(url)
        WebDriverWait(driver, timeout_s).until(lambda d: d.execute_script("return document.readyState") == "complete")
        images = driver.execute_script(_IMAGES_JS)
        layout = {"laptop": _layout(driver, LAPTOP, mobile=False), "phone": _layout(driver, PHONE, mobile=True)}
        console = driver.get_log("browser")
    finally:
        if driver is not None:
            driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    errors = [f"{entry.get('source', '')}: {entry.get('message', '')}" for entry in console
              if entry.get("level") == "SEVERE"]
    report = {"images": images, "failed": [image for image in images if not image["ok"]], "layout": layout}
    return report, errors


if __name__ == "__main__":  # python tests/browser.py report.html
    import json
    import sys

    print(json.dumps(open_in_browser(sys.argv[1]), indent=2))
