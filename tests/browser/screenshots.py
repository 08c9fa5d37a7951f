"""Screenshots of the explorer's main pages for the docs: `make screenshots` (writes PNGs into
the folder given, docs/screenshots by default).

A server runs over a fresh SQLite database seeded with the dataset, on a free local port;
Debian's headless Chromium, driven by Playwright, photographs each page at 1280x900.
"""

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.browser.pages import FIGURE, SOURCE, launch

SHOTS = {
    "home": "/",
    "metrics": "/explore/metrics?q=cost&category=market",
    "metric": f"/explore/metrics/{FIGURE}",
    "source": f"/explore/sources/{SOURCE}#m-{FIGURE}",
    "market": "/explore/market",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main(target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    cli = Path(sys.executable).with_name("cdmo-metrics")
    with tempfile.TemporaryDirectory() as folder:
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{folder}/explorer.db",
            "LOG_LEVEL": "warning",
        }
        subprocess.run([cli, "migrate"], env=env, check=True)
        subprocess.run([cli, "seed"], env=env, check=True, stdout=subprocess.DEVNULL)
        port = _free_port()
        server = subprocess.Popen([cli, "serve", "--port", str(port)], env=env)
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    if httpx.get(f"{base}/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            with sync_playwright() as playwright:
                browser = launch(playwright)
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                for name, path in SHOTS.items():
                    page.goto(base + path, wait_until="networkidle")
                    page.screenshot(path=target / f"{name}.png")
                    print(f"{target / name}.png  {path}")
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=20)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots"))
