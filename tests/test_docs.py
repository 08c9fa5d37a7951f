"""Interactive documentation that works without internet access."""

import base64
import hashlib
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# A page's DOM once its scripts have run (up to 15 s of its own time), offline.
HEADLESS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=15000",
    "--dump-dom",
)


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_docs_pages_load_only_assets_the_app_serves(client: TestClient, path: str) -> None:
    page = client.get(path)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    urls = re.findall(r'(?:src|href)=["\']([^"\']+)["\']', page.text)
    urls += re.findall(r"url: '([^']+)'", page.text)
    assert urls, "the page references its assets"
    for url in urls:
        assert url.startswith("/"), f"{path} loads {url} from elsewhere"
        assert client.get(url).status_code == 200, url
    assert "cdn" not in page.text.lower() and "fonts.googleapis" not in page.text


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_docs_pages_run_only_their_own_scripts(client: TestClient, path: str) -> None:
    """A Content-Security-Policy as the explorer's: scripts from the app, and the page's own
    inline one by its hash (Swagger UI's start), nothing from another origin, no framing."""
    page = client.get(path)
    policy = dict(
        directive.partition(" ")[::2]
        for directive in page.headers["content-security-policy"].split("; ")
    )
    inline = re.findall(r"<script>(.*?)</script>", page.text, flags=re.DOTALL)
    assert len(inline) == (1 if path == "/docs" else 0)
    hashes = {
        "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"
        for script in inline
    }
    assert set(policy["script-src"].split()) == {"'self'", *hashes}
    assert policy["default-src"] == "'none'"
    assert policy["connect-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert page.headers["x-frame-options"] == "DENY"
    assert '<html lang="en">' in page.text  # a screen reader's language


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs it)")
def test_swagger_ui_renders_the_operations_in_headless_chromium(
    server_url: str, tmp_path: Path
) -> None:
    assert CHROMIUM is not None
    result = subprocess.run(
        [CHROMIUM, *HEADLESS, f"--user-data-dir={tmp_path / 'profile'}", f"{server_url}/docs"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    dom = result.stdout
    assert 'class="swagger-ui' in dom, result.stderr[-2000:]
    assert "Failed to load API definition" not in dom
    assert "CDMO Metrics API" in dom
    for path in ("/v1/metrics", "/v1/metrics/{metric_id}", "/v1/sources/{source_id}/citation"):
        assert f'data-path="{path}"' in dom, path
    assert "List metrics" in dom


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs it)")
def test_redoc_renders_the_operations_in_headless_chromium(server_url: str, tmp_path: Path) -> None:
    """ReDoc under its page's policy (its styles set from script, its search in a worker)."""
    assert CHROMIUM is not None
    result = subprocess.run(
        [CHROMIUM, *HEADLESS, f"--user-data-dir={tmp_path / 'profile'}", f"{server_url}/redoc"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    dom = result.stdout
    assert "CDMO Metrics API" in dom, result.stderr[-2000:]
    assert "List metrics" in dom
    assert "/v1/sources/{source_id}/citation" in dom
