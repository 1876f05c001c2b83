"""`pawtf app` in a real browser: headless Chromium (Debian's ``chromium``, driven by Playwright with the
system browser) opens the page, uploads 4 real photos, waits for the ranking, checks its order against the
API's and the rater's verdicts, opens one photo's rater reasons, saliency overlay and crop advice, and saves a
screenshot.

`.ci/run` installs Chromium where it is missing; this test skips, saying so, only where none can be found.
Set ``PAWTF_SCREENSHOT=path.png`` to keep the screenshot (docs/app.png was made so).
"""

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e \".[dev]\")")

#: Flags that keep a root, offline, headless Chromium from reaching for the network (see the env notes).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _chromium() -> str | None:
    for candidate in (os.environ.get("PAWTF_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if candidate and (found := shutil.which(candidate)):
            return found
    return None


@pytest.fixture(scope="module")
def browser():
    path = _chromium()
    if path is None:
        pytest.skip("no Chromium found (apt-get install chromium, or set PAWTF_CHROMIUM to a Chrome binary); "
                    ".ci/run installs it")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def server(scorer, fc_rater):
    """`pawtf app` for the tests' run with the tests' rater, served by uvicorn on a free loopback port in a
    thread."""
    import uvicorn

    from pawtf.app import PhotoService, create_app

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(PhotoService(scorer, rater=fc_rater[0])), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)
    sock.close()


@pytest.fixture(scope="module")
def real_photos(tiny_demo):
    """4 real pet photos from ../shared (2 cats, 2 dogs), else 4 demo photos where it is absent."""
    root = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "pet-photos"
    if root.is_dir():
        return sorted((root / "cats").glob("*.jpg"))[:2] + sorted((root / "dogs").glob("*.jpg"))[:2]
    return sorted((tiny_demo / "train").glob("*.jpg"))[:4]


def test_a_browser_ranks_explains_and_crops(browser, server, real_photos, tmp_path):
    try:  # the client FastAPI's test client uses (dev extra), else the original
        import httpx2 as httpx
    except ImportError:
        import httpx

    api = httpx.post(f"{server}/api/score", timeout=120,
                     files=[("photos", (p.name, p.read_bytes(), "image/jpeg")) for p in real_photos])
    expected = [row["name"] for row in api.json()["photos"]]
    verdicts = {row["name"]: row["rater"]["verdict"] for row in api.json()["photos"]}

    page = browser.new_page(viewport={"width": 1200, "height": 1000})
    errors = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(server + "/")
    assert page.title().startswith("pawtf")
    page.set_input_files("#picker", [str(p) for p in real_photos])
    page.wait_for_selector("body[data-state=ranked]", timeout=120_000)
    names = page.locator("#ranking li.scored").evaluate_all("items => items.map(li => li.dataset.name)")
    assert names == expected
    assert "4 photos ranked, best first" in page.inner_text("#status")
    assert page.locator("#ranking li.best").count() == 1
    assert page.locator("#ranking li.best").get_attribute("data-name") == expected[0]
    assert page.is_visible("#band")
    shown = page.locator("#ranking li.scored").evaluate_all(
        "items => items.map(li => [li.dataset.name, li.querySelector('.verdict').textContent])")
    assert dict(shown) == verdicts

    page.click(f"#ranking li[data-name='{expected[1]}']")
    page.wait_for_selector("#overlay[src^='data:image/png']", timeout=120_000)
    assert "looks mostly at" in page.inner_text("#sentence")
    assert page.is_visible(".legend") and "more important" in page.inner_text(".legend")
    assert page.locator("#flags input[type=checkbox]").count() == 12  # the tests' model takes the flags
    page.wait_for_function("document.querySelectorAll('#rater-reasons li').length > 0", timeout=120_000)
    assert page.inner_text("#rater-verdict").startswith(verdicts[expected[1]] + ":")

    page.click("#crop-button")
    page.wait_for_selector("#crop-preview[src^='data:image/png']", timeout=120_000)
    advice = page.inner_text("#crop-advice")
    assert "uncropped" in advice
    assert page.is_visible("#crop-download") == ("advice: crop" in advice)  # a download only when advised

    shot = Path(os.environ.get("PAWTF_SCREENSHOT") or tmp_path / "app.png")
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    assert errors == [], f"the page's script failed: {errors}"
    page.close()
