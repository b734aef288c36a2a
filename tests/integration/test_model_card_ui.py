"""The model card in the MLflow UI: a real `mlflow server`, a version gated through it by the
real CLI, its page opened in headless Chromium.

The server holds a copy of the session's synthetic store (its dev versions trained and gated by
the CLI); `ml-project promote --from-env dev --to-env staging` then copies the binary model's
version into staging over HTTP, where the staging gate judges it and writes its card. The
version's page (a React app: `/#/models/<name>/versions/<n>`) must show the card rendered from
its Markdown, its plot links must answer with the plots, and the run's HTML card must need
nothing from outside. A copy into prod, refused (prod wants more held-out rows), shows a card
that says refused and why. The screenshot stays in outputs/test-artifacts/ (git ignores
outputs/).
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.conftest import ROOT, copy_store, last_json, require, run_cli
from tests.integration.tracking_server import start_tracking_server

pytestmark = pytest.mark.integration

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
BROWSER = next(filter(None, map(shutil.which, BROWSERS)), None)
require(
    "Chromium (to open the MLflow UI headless)", BROWSER is not None, "apt-get install chromium"
)

SCREENSHOT = ROOT / "outputs" / "test-artifacts" / "model-card-ui.png"
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars", "--virtual-time-budget=15000",
)  # fmt: skip
CARD_HEAD = re.compile(r"<h3>Model card: (passed|refused)</h3>")


def browse(url: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    assert BROWSER is not None
    return subprocess.run(
        [BROWSER, *FLAGS, f"--user-data-dir={profile}", *args, url],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip


def page_dom(url: str, profile: Path, attempts: int = 3) -> str:
    """The DOM of `url` after its scripts ran; again while the card has not rendered yet."""
    dom = ""
    for _ in range(attempts):
        done = browse(url, profile, "--dump-dom")
        dom = done.stdout
        if CARD_HEAD.search(dom):
            return dom
    raise AssertionError(f"no model card in the page {url}:\n{dom[-2000:]}\n{done.stderr[-2000:]}")


def text_of(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", fragment))


def promote(trained: dict, env: str, project: Path, server_url: str):
    """`ml-project promote` of the dev version into `env`: a copy that `env`'s gate judges."""
    return run_cli(
        "promote", "--from-env", "dev", "--to-env", env, "--problem", trained["problem"],
        "--version", trained["result"]["model_version"], "--reason", "the UI test", "--json",
        cwd=project, tracking_uri=server_url,
    )  # fmt: skip


def test_the_version_page_shows_its_model_card(synthetic_models, synthetic_project, tmp_path):
    trained = synthetic_models["binary"]
    store = copy_store(trained["uri"], tmp_path)
    server = start_tracking_server(tmp_path / "server", backend_store_uri=store)
    try:
        with ThreadPoolExecutor(2) as pool:  # two models: the copies do not wait on each other
            promoted, refused = pool.map(
                lambda env: promote(trained, env, synthetic_project, server.url),
                ("staging", "prod"),
            )
        assert promoted.returncode == 0, promoted.stderr
        result = last_json(promoted.stdout)
        name, number = result["model_name"], result["version"]
        client = MlflowClient(server.url)
        version = client.get_model_version(name, number)
        assert version.tags["validation_status"] == "passed"

        url = f"{server.url}/#/models/{name}/versions/{number}"
        dom = page_dom(url, tmp_path / "browser")
        card = card_in(dom, "passed")
        check_review_tags_first(dom, version.tags)
        assert version.tags["Rebuild"].endswith(f"models:/{name}/{number}")  # the copy's own
        shown = text_of(card)
        assert "###" not in shown and "| ---" not in shown  # rendered, not raw Markdown
        assert "<table>" in card and "<th>feature-blind model</th>" in card
        assert f"ml-project reproduce --model-uri models:/{name}/{number}" in shown
        assert f"predicts target, a binary task of problem {trained['problem']}" in shown
        assert "Gate: passed" in shown and "It passed the gate" in shown
        for reason in version.tags["validation_reasons"].split("; "):
            assert reason in shown
        primary = version.tags["gate.primary_metric"]
        value = float(version.tags[f"gate.{primary}"])
        assert re.search(rf"{primary} \(primary\)\s*{value:.4f}", shown), shown
        source = f"{trained['result']['model_name']} v{trained['result']['model_version']}"
        assert re.search(rf"copied from\s*{source}", shown), shown
        check_plots(server.url, card)
        check_html_card(client, version.tags["model_card"], name, number)

        assert refused.returncode == 5, refused.stderr
        check_refused_card(client, last_json(refused.stdout), server.url, tmp_path / "browser")

        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        SCREENSHOT.unlink(missing_ok=True)
        browse(url, tmp_path / "browser", f"--screenshot={SCREENSHOT}", "--window-size=1280,2200")
        assert SCREENSHOT.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        print(f"screenshot of the version page: {SCREENSHOT}")
    finally:
        server.stop()


def card_on_page(url: str, profile: Path, verdict: str) -> str:
    """The rendered card (HTML) in the DOM of a version's page."""
    return card_in(page_dom(url, profile), verdict)


def card_in(dom: str, verdict: str) -> str:
    start = CARD_HEAD.search(dom)
    assert start is not None and start.group(1) == verdict, dom[-2000:]
    return dom[start.start() : dom.index("</div>", start.start())]


def check_review_tags_first(dom: str, tags: dict[str, str]) -> None:
    """The version's tags table opens with the four a reviewer needs, before any other."""
    table = dom[dom.rindex(">Tags<") :]  # the section after the card
    cells = [text_of(cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", table, re.S)]
    shown = [cell for cell in cells if cell in tags]
    assert shown[:4] == ["Commit", "Data", "Rebuild", "Verdict"], shown
    assert tags["Verdict"].startswith("passed: ") and tags["Verdict"] in cells, cells


def check_refused_card(client: MlflowClient, result: dict, server_url: str, profile: Path) -> None:
    """A version the gate refused (prod wants more held-out rows than the copy has) has its
    card too: it says refused and why."""
    name, number = result["model_name"], result["version"]
    version = client.get_model_version(name, number)
    assert version.tags["validation_status"] == "failed"
    url = f"{server_url}/#/models/{name}/versions/{number}"
    shown = text_of(card_on_page(url, profile, "refused"))
    assert "was refused by the gate: it holds no alias and never serves" in shown
    assert "Gate: refused" in shown
    assert f"Failed: {version.tags['validation_reasons']}." in shown
    assert "fewer than gate.min_test_rows" in shown


def check_plots(server_url: str, card: str) -> None:
    """Each plot the card links answers, through the server, with a PNG."""
    links = [html.unescape(href) for href in re.findall(r'href="(get-artifact\?[^"]+)"', card)]
    assert any("eval_roc_curve_plot.png" in link for link in links), card
    for link in links:
        with urllib.request.urlopen(f"{server_url}/{link}", timeout=30) as response:
            assert response.read(8) == b"\x89PNG\r\n\x1a\n", link


def check_html_card(client: MlflowClient, card_uri: str, name: str, number: str) -> None:
    """The run's HTML card: the same card, its plots inlined, nothing to download."""
    found = re.fullmatch(r"runs:/([0-9a-f]+)/(model_card/version-\d+\.html)", card_uri)
    assert found is not None, card_uri
    run_id, path = found.groups()
    page = Path(client.download_artifacts(run_id, path)).read_text()
    assert f"<title>Model card: {name} version {number}</title>" in page
    assert "data:image/png;base64," in page
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page)
    assert "<script" not in page and "<link" not in page
