"""The Dagster UI driven the way a user drives it: `dagster dev`, a browser, "Materialize all", the sensor.

One `dagster dev` (webserver and daemon) serves the whole module on a free port, with its own
DAGSTER_HOME, BLOGTUNE_HOME and a copy of the sample blog; headless Debian chromium clicks through
it. Assertions read text the page shows, not HTTP codes. Screenshots go to ci-artifacts/screenshots/
(git-ignored) so a reviewer sees what the browser saw; the server's log goes beside them.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Locator, Page, expect, sync_playwright

from blogtune_assets.definitions import defs
from blogtune_assets.profiles import REPO_ROOT
from blogtune_assets_tests.conftest import LONG_BODY, post_text, write_post

CHROMIUM = shutil.which("chromium")
SCREENSHOTS = REPO_ROOT / "ci-artifacts" / "screenshots"
DAGSTER = Path(sys.executable).with_name("dagster")

# Bounds sized for 2 cores shared with other work: the server imports torch, and the tiny graph that
# takes about 5 minutes on idle cores trains at ~12 s a step (80 steps) under a load of 8.
SERVER_START_S = 240
MATERIALIZE_ALL_S = 1800
SENSOR_RUN_S = 240
SHUTDOWN_S = 60
UI_S = 60

ASSETS = ["raw_posts", "cleaned_posts", "sft_dataset", "base_model", "lora_adapter", "merged_model", "gguf_q4km"]
SENSOR = "new_posts_sensor"
SENSOR_DEFINED = any(sensor.name == SENSOR for sensor in defs.sensors or [])

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (`make system-deps` installs it with apt)"),
]


@dataclass
class DagsterDev:
    url: str
    blog_dir: Path
    log: Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _log_tail(log: Path, lines: int = 60) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def _wait_until_serving(url: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"dagster dev exited with {server.returncode}:\n{_log_tail(log)}")
        try:
            with urllib.request.urlopen(f"{url}/server_info", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(2)
    raise AssertionError(f"dagster dev did not serve {url} within {SERVER_START_S}s:\n{_log_tail(log)}")


def _processes_using(dagster_home: Path) -> list[int]:
    """Every process whose environment names this test's DAGSTER_HOME, wherever its process group."""
    marker = f"DAGSTER_HOME={dagster_home}".encode()
    pids = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker in environ.read_bytes().split(b"\0"):
                pids.append(int(environ.parent.name))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return pids


def _sigint_default() -> None:
    # dagster dev turns SIGTERM into its SIGINT handler, and a shell's background job (CI, an agent)
    # starts with SIGINT ignored: without this the server would ignore the teardown's SIGTERM too.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _stop(server: subprocess.Popen, dagster_home: Path, log: Path) -> None:
    """SIGTERM to the whole group (webserver, daemon, code servers, run workers); SIGKILL what outlives it."""
    os.killpg(server.pid, signal.SIGTERM)
    deadline = time.monotonic() + SHUTDOWN_S
    while time.monotonic() < deadline and (server.poll() is None or _processes_using(dagster_home)):
        time.sleep(1)
    left = _processes_using(dagster_home)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    server.wait(timeout=10)
    assert not left, f"still running {SHUTDOWN_S}s after SIGTERM (killed now): {left}\n{_log_tail(log)}"


@pytest.fixture(scope="module")
def dagster_dev(tmp_path_factory, tiny_base_home: Path):
    root = tmp_path_factory.mktemp("ui")
    dagster_home = root / "dagster_home"
    dagster_home.mkdir()
    shutil.copy(REPO_ROOT / "deploy" / "dagster.yaml", dagster_home / "dagster.yaml")
    blogtune_home = root / "blogtune_home"
    # The prebuilt tiny base is reused by base_model (same build key), saving a minute of pretraining.
    shutil.copytree(tiny_base_home / "base_model", blogtune_home / "base_model", symlinks=True)
    blog_dir = root / "blog"
    shutil.copytree(REPO_ROOT / "data" / "sample_blog", blog_dir)

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    log = SCREENSHOTS / "dagster-dev.log"
    port = _free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(dagster_home),
        "BLOGTUNE_HOME": str(blogtune_home),
        "BLOGTUNE_BLOG_DIR": str(blog_dir),
        "BLOGTUNE_PROFILE": "tiny",
        "BLOGTUNE_SENSOR_INTERVAL_S": "5",
        "BLOGTUNE_QUIET_PERIOD_S": "0",
        "BLOGTUNE_MIN_NEW_POSTS": "1",
    }
    with log.open("wb") as log_file:
        server = subprocess.Popen(
            [str(DAGSTER), "dev", "-m", "blogtune_assets.definitions", "-h", "127.0.0.1", "-p", str(port)],
            cwd=root,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so teardown reaches every child
            preexec_fn=_sigint_default,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_until_serving(url, server, log)
        yield DagsterDev(url=url, blog_dir=blog_dir, log=log)
    finally:
        _stop(server, dagster_home, log)


@pytest.fixture(scope="module")
def browser_context():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        context = browser.new_context(viewport={"width": 1600, "height": 1000})
        # Marks the "Join the Dagster community" dialog as seen, as a returning user's browser has it.
        context.add_init_script("localStorage.setItem('communityNux', '\"1\"')")
        context.set_default_timeout(UI_S * 1000)
        yield context
        browser.close()


@pytest.fixture(scope="module")
def page(browser_context: BrowserContext) -> Page:
    return browser_context.new_page()


def _shoot(page: Page, name: str) -> None:
    page.screenshot(path=SCREENSHOTS / f"{name}.png")


def _open_asset_graph(page: Page, url: str) -> None:
    page.goto(f"{url}/asset-groups")
    expect(page.get_by_role("button", name="Materialize all")).to_be_visible()
    # Three groups start collapsed to boxes; ⌥E ("Expand all groups") shows the assets inside.
    if not page.get_by_text("raw_posts", exact=True).is_visible():
        page.keyboard.press("Alt+e")
    for asset in ASSETS:
        expect(page.get_by_text(asset, exact=True).first).to_be_visible()


# Edges are SVG paths from the right middle of the upstream node to the left middle of the downstream
# node; each node is a foreignObject holding its name. Matching end points to nodes reads the drawn lineage.
EDGES_JS = """(assets) => {
  const svg = document.querySelector('svg[class*="svgContainer"]');
  const nodes = [...svg.querySelectorAll('foreignObject')].flatMap((fo) => {
    const name = assets.find((a) => fo.textContent.includes(a));
    if (!name) return [];
    const [x, y, w, h] = ['x', 'y', 'width', 'height'].map((k) => parseFloat(fo.getAttribute(k)));
    return [{name, left: x, right: x + w, middle: y + h / 2}];
  });
  const nearest = (px, py, side) => nodes.reduce((best, n) => {
    const d = Math.hypot(n[side] - px, n.middle - py);
    return d < best.d ? {name: n.name, d} : best;
  }, {name: null, d: Infinity});
  return [...svg.querySelectorAll(':scope > path')].map((path) => {
    const nums = path.getAttribute('d').match(/-?[0-9.]+/g).map(Number);
    const from = nearest(nums[0], nums[1], 'right');
    const to = nearest(nums[nums.length - 2], nums[nums.length - 1], 'left');
    return [from.d < 20 ? from.name : null, to.d < 20 ? to.name : null];
  });
}"""


def _defined_edges() -> set[tuple[str, str]]:
    graph = defs.resolve_asset_graph()
    return {
        (parent.to_user_string(), key.to_user_string())
        for key in graph.get_all_asset_keys()
        for parent in graph.get(key).parent_keys
    }


def test_asset_graph_shows_every_asset_and_its_lineage(dagster_dev: DagsterDev, page: Page):
    _open_asset_graph(page, dagster_dev.url)
    drawn = {tuple(edge) for edge in page.evaluate(EDGES_JS, ASSETS)}
    _shoot(page, "01-asset-graph")
    assert drawn == _defined_edges()
    assert ("raw_posts", "cleaned_posts") in drawn and ("merged_model", "gguf_q4km") in drawn


@pytest.fixture(scope="module")
def materialized_run(dagster_dev: DagsterDev, page: Page) -> str:
    """Click "Materialize all" on the graph and follow the run to its end; the run page's URL."""
    _open_asset_graph(page, dagster_dev.url)
    page.get_by_role("button", name="Materialize all").click()
    toast = page.get_by_text(re.compile(r"Launched run [0-9a-f]{8}")).first
    expect(toast).to_be_visible()
    run_id = re.search(r"Launched run ([0-9a-f]{8})", toast.inner_text()).group(1)
    page.goto(f"{dagster_dev.url}/runs")
    page.get_by_role("link", name=run_id).first.click()
    page.wait_for_url(re.compile(rf"/runs/{run_id}"))
    outcome = page.get_by_text(re.compile(r"^(Success|Failure|Canceled)$")).first
    try:
        expect(outcome).to_be_visible(timeout=MATERIALIZE_ALL_S * 1000)
    finally:
        _shoot(page, "02-run")
    assert outcome.inner_text() == "Success", _log_tail(dagster_dev.log)
    return page.url


def _metadata_row(page: Page, key: str) -> Locator:
    """A row of the asset page's Metadata table (the latest materialization's values)."""
    row = page.get_by_role("row").filter(has=page.get_by_role("cell", name=key, exact=True))
    expect(row).to_have_count(1)
    return row


def _metadata_value(page: Page, key: str) -> str:
    return _metadata_row(page, key).get_by_role("cell").last.inner_text().strip()


def _markdown(page: Page, key: str) -> Locator:
    """Where a markdown value renders: in its row under 1,000 characters, else in the "[Show Markdown]" dialog."""
    row = _metadata_row(page, key)
    show = row.get_by_text("[Show Markdown]")
    if not show.count():
        return row
    show.click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(key)
    return dialog


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def test_materialize_all_runs_to_success_and_shows_the_metadata(dagster_dev: DagsterDev, page: Page, materialized_run: str):
    page.goto(materialized_run)
    expect(page.get_by_text("7 assets")).to_be_visible()

    _open_asset_graph(page, dagster_dev.url)
    _shoot(page, "03-asset-graph-materialized")

    page.goto(f"{dagster_dev.url}/assets/cleaned_posts")
    assert _number(_metadata_value(page, "posts_kept")) > 0

    page.goto(f"{dagster_dev.url}/assets/sft_dataset")
    assert _number(_metadata_value(page, "train_tokens")) > 0

    page.goto(f"{dagster_dev.url}/assets/lora_adapter")
    final_loss = _number(_metadata_value(page, "final_train_loss"))
    eval_loss = _number(_metadata_value(page, "eval_loss"))
    assert 0 < final_loss and 0 < eval_loss < _number(_metadata_value(page, "base_eval_loss"))
    loss_curve = _markdown(page, "loss_curve").get_by_role("img", name="loss curve")
    expect(loss_curve).to_be_visible()
    assert loss_curve.evaluate("img => img.complete && img.naturalWidth") > 0, "the loss curve image did not load"
    _shoot(page, "04-lora_adapter-loss-curve")
    page.keyboard.press("Escape")

    page.goto(f"{dagster_dev.url}/assets/gguf_q4km")
    assert _number(_metadata_value(page, "size_bytes")) > 0
    assert _metadata_value(page, "quant_type") == "Q4_K_M"
    generations = _markdown(page, "sample_generations")
    expect(generations).to_contain_text("generated body")  # shown as information; learned_to_stop_after_a_post is the gate
    assert 0 < _number(_metadata_value(page, "stop_probability_q4_k_m")) <= 1
    _shoot(page, "05-gguf_q4km-sample-generations")


@pytest.mark.skipif(not SENSOR_DEFINED, reason=f"{SENSOR} is not in blogtune_assets.definitions yet")
def test_a_new_post_makes_the_sensor_start_a_run(dagster_dev: DagsterDev, page: Page, materialized_run: str):
    write_post(dagster_dev.blog_dir, "en/2026-06-02-written-during-the-test.md", post_text("Written during the test", LONG_BODY))
    page.goto(f"{dagster_dev.url}/runs")
    # The runs list is a grid of divs, not a <table>: a row is the element styled RunsFeedRow_rowGrid.
    sensor_run = page.locator('[class*="RunsFeedRow_rowGrid"]').filter(has_text=SENSOR)
    deadline = time.monotonic() + SENSOR_RUN_S
    while not sensor_run.count() and time.monotonic() < deadline:
        time.sleep(5)
        page.reload()  # the list refreshes itself too, but slowly
        page.get_by_text("Launched by").wait_for()
    _shoot(page, "06-runs-sensor-run")
    assert sensor_run.count() == 1, f"not one run launched by {SENSOR} within {SENSOR_RUN_S}s:\n{_log_tail(dagster_dev.log)}"
    expect(sensor_run).to_contain_text("blogtune")
