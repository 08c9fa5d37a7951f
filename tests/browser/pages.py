"""The explorer's pages that the browser tests visit and `make screenshots` photographs."""

from playwright.sync_api import Browser, Playwright

CHROMIUM_PATH = "/usr/bin/chromium"
FIGURE = "car-t-dose-manufacturing-cost"
SOURCE = "coreychem-future-of-cdmos-2026"
PAGES = {
    "home": "/",
    "metrics": "/explore/metrics",
    "metric": f"/explore/metrics/{FIGURE}",
    "source": f"/explore/sources/{SOURCE}",
    "market": "/explore/market",
    "technologies": "/explore/technologies",
    "regulatory": "/explore/regulatory",
    "pricing": "/explore/pricing",
    "mna": "/explore/mna",
    "bottlenecks": "/explore/bottlenecks",
    "faq": "/explore/faq",
}


def launch(playwright: Playwright) -> Browser:
    """Debian's Chromium, headless (Playwright's own browser download is never used)."""
    return playwright.chromium.launch(
        executable_path=CHROMIUM_PATH,
        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    )
