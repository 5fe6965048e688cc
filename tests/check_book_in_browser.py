"""Open every page of the built book (_build/html) in headless Chromium from a local server, as a reader would
offline, and fail on: a JavaScript console error, a request to any host but the local server, a broken local
link or image, an image or figure that did not load, or TeX left unrendered by MathJax. One screenshot per
page goes to _build/screenshots/. Run after the book build (`make test` does): `python tests/check_book_in_browser.py`.
"""
from __future__ import annotations

import functools
import http.server
import json
import re
import sys
import threading
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
SHOTS = ROOT / "_build" / "screenshots"
RAW_TEX = re.compile(r"\\\(|\\\)|\\\[|\\\]|\$\$")
WAIT_MATH = """
const done = arguments[arguments.length - 1];
if (!window.MathJax || !MathJax.startup || !MathJax.startup.promise) { done('no-mathjax'); return; }
MathJax.startup.promise.then(() => done('ok')).catch(e => done('error: ' + e));
"""
PAGE_FACTS = """
const visible = el => !el.closest('pre, code, script, style, .highlight, mjx-container, .MathJax');
const texts = [];
const walker = document.createTreeWalker(document.querySelector('main') || document.body, NodeFilter.SHOW_TEXT);
while (walker.nextNode()) { if (visible(walker.currentNode.parentElement)) texts.push(walker.currentNode.textContent); }
return {
  text: texts.join(' '),
  math: document.querySelectorAll('mjx-container').length,
  images: [...document.images].map(i => ({src: i.getAttribute('src'), ok: i.complete && i.naturalWidth > 0})),
  links: [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href')),
};
"""


def pages() -> list[Path]:
    """Every page of the book (not Sphinx's index and search pages, nor sources and static files)."""
    skip = {"genindex.html", "search.html"}
    return sorted(p for p in HTML.rglob("*.html") if p.name not in skip
                  and not any(part.startswith("_") for part in p.relative_to(HTML).parts[:-1]))


class QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # the browser closing a connection early is not a problem of the book


def serve() -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(QuietHandler, directory=str(HTML))
    server = QuietServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1600",
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"):  # no host but ours resolves
        opts.add_argument(arg)
    opts.binary_location = next(str(p) for p in map(Path, ("/usr/bin/chromium", "/usr/bin/chromium-browser")) if p.exists())
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return webdriver.Chrome(options=opts, service=Service(executable_path="/usr/bin/chromedriver"))


def local_target(page: Path, href: str) -> Path | None:
    """The file a relative link points to (None for external, anchor-only, mailto or data links)."""
    parsed = urlparse(href)
    if parsed.scheme or href.startswith(("#", "mailto:", "data:")) or not parsed.path:
        return None
    if "_sources/" in parsed.path:  # the page-source download links: Sphinx copies sources only for them
        return None
    return (page.parent / unquote(parsed.path)).resolve()


def check(driver, base: str, page: Path) -> list[str]:
    problems = []
    driver.get_log("performance")  # drop the previous page's events
    driver.get_log("browser")
    driver.get(f"{base}/{page.relative_to(HTML).as_posix()}")
    math = driver.execute_async_script(WAIT_MATH)
    if math.startswith("error"):
        problems.append(f"MathJax failed: {math}")
    time.sleep(0.3)
    facts = driver.execute_script(PAGE_FACTS)
    for entry in driver.get_log("browser"):
        if entry["level"] == "SEVERE":
            problems.append(f"console error: {entry['message'][:200]}")
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg["method"] == "Network.requestWillBeSent":
            url = msg["params"]["request"]["url"]
            if not url.startswith((base, "data:", "blob:", "about:")):
                problems.append(f"request to a non-local host: {url[:120]}")
    for img in facts["images"]:
        if not img["ok"]:
            problems.append(f"image did not load: {img['src']}")
    shown = HTML / unquote(urlparse(driver.current_url).path).lstrip("/")  # after any redirect
    for href in facts["links"]:
        target = local_target(shown, href)
        if target is not None and not target.exists():
            problems.append(f"broken link: {href}")
    raw = RAW_TEX.findall(facts["text"])
    if raw:
        problems.append(f"{len(raw)} piece(s) of raw TeX left unrendered (e.g. {raw[0]!r})")
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SHOTS / f"{page.relative_to(HTML).with_suffix('').as_posix().replace('/', '__')}.png"))
    return problems


def main() -> int:
    if not (HTML / "index.html").exists():
        print(f"no built book at {HTML}: run `mcmia book --no-execute` first", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    server, base = serve()
    driver = browser()
    failures = {}
    try:
        for page in pages():
            problems = check(driver, base, page)
            if problems:
                failures[page.relative_to(HTML).as_posix()] = problems
    finally:
        driver.quit()
        server.shutdown()
    for name, problems in failures.items():
        for p in problems:
            print(f"{name}: {p}")
    n = len(pages())
    print(f"browser check: {n} pages, {sum(map(len, failures.values()))} problems, "
          f"{time.perf_counter() - t0:.0f} s; screenshots in {SHOTS.relative_to(ROOT)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
