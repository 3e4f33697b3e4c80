"""The Dagster UI driven the way a user drives it: `dagster dev`, a browser, a run launched by a click, the sensor.

One `dagster dev` (webserver and daemon) serves the whole module on a free port, over the instance,
BLOGTUNE_HOME and blog of `make demo`'s run, copied (the demo_run fixture: the whole graph, materialized
once a session through the CLI); headless Debian chromium clicks through it. Assertions read text the page shows, not HTTP codes. Screenshots go to ci-artifacts/screenshots/
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

import dagster as dg
import pytest
from playwright.sync_api import BrowserContext, Locator, Page, expect, sync_playwright

from blogtune_assets.definitions import defs
from blogtune_assets.core.profiles import REPO_ROOT
from blogtune_assets_tests.conftest import LONG_BODY, post_text, write_post

CHROMIUM = shutil.which("chromium")
SCREENSHOTS = REPO_ROOT / "ci-artifacts" / "screenshots"
DAGSTER = Path(sys.executable).with_name("dagster")

# Bounds sized for 2 cores shared with other work.
SERVER_START_S = 240
UI_RUN_S = 600
SENSOR_RUN_S = 240
SHUTDOWN_S = 60
UI_S = 60

ASSETS = ["raw_posts", "cleaned_posts", "sft_dataset", "base_model", "lora_adapter", "merged_model", "gguf_q4km"]
SENSOR = "new_posts_sensor"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (`make system-deps` installs it with apt)"),
]


@dataclass
class DagsterDev:
    url: str
    blog_dir: Path
    log: Path
    dagster_home: Path


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
def dagster_dev(demo_run: Path, tmp_path_factory):
    """The UI over a copy of `make demo`'s run (the demo_run fixture: the whole graph, materialized once a
    session). A copy, so the post this module writes and the runs it launches never reach what
    test_end_to_end reads, in whatever order the two run."""
    root = tmp_path_factory.mktemp("ui")
    for name in ("dagster_home", "home", "blog"):
        shutil.copytree(demo_run / name, root / name, symlinks=True)
    dagster_home, blogtune_home, blog_dir = root / "dagster_home", root / "home", root / "blog"

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
        yield DagsterDev(url=url, blog_dir=blog_dir, log=log, dagster_home=dagster_home)
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
  // The graph is the SVG holding the most foreignObjects (its nodes), found by structure, not a CSS class.
  const count = (s) => s.querySelectorAll('foreignObject').length;
  const svg = [...document.querySelectorAll('svg')].reduce((best, s) => (count(s) > count(best) ? s : best));
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


def _drawn_edges(page: Page) -> set[tuple[str | None, str | None]]:
    """The lineage as drawn, once the layout has settled. The asset names show before the expanded layout's
    edges replace the collapsed groups' (CI once read the single group-to-group path: (None, None)), so
    read until every edge joins two assets, or the UI bound passes and the last reading is the answer."""
    deadline = time.monotonic() + UI_S
    while True:
        drawn = {tuple(edge) for edge in page.evaluate(EDGES_JS, ASSETS)}
        if (drawn and all(None not in edge for edge in drawn)) or time.monotonic() > deadline:
            return drawn
        time.sleep(1)


def test_asset_graph_shows_every_asset_and_its_lineage(dagster_dev: DagsterDev, page: Page):
    _open_asset_graph(page, dagster_dev.url)
    drawn = _drawn_edges(page)
    _shoot(page, "01-asset-graph")
    assert drawn == _defined_edges()
    assert ("raw_posts", "cleaned_posts") in drawn and ("merged_model", "gguf_q4km") in drawn


@pytest.fixture(scope="module")
def ui_run(dagster_dev: DagsterDev, page: Page) -> str:
    """Click "Materialize" on raw_posts' page and follow the run to its end; the run page's URL. The rest of
    the graph was materialized by `make demo`'s run (demo_run): running it again here would double CI."""
    page.goto(f"{dagster_dev.url}/assets/raw_posts")
    # Its accessible name is the icon's label and the text: "materialization Materialize".
    page.get_by_role("button", name=re.compile(r"\bMaterialize$")).click()
    toast = page.get_by_text(re.compile(r"Launched run [0-9a-f]{8}")).first
    expect(toast).to_be_visible()
    run_id = re.search(r"Launched run ([0-9a-f]{8})", toast.inner_text()).group(1)
    # A live run page redraws its log all the time: chromium took most of a core for the whole run, which the
    # run's own steps needed. Wait on the instance with the page blank, then read the outcome in the UI.
    page.goto("about:blank")
    _wait_for_run_to_end(dagster_dev.dagster_home, run_id)
    page.goto(f"{dagster_dev.url}/runs")
    page.get_by_role("link", name=run_id).first.click()
    page.wait_for_url(re.compile(rf"/runs/{run_id}"))
    outcome = page.get_by_text(re.compile(r"^(Success|Failure|Canceled)$")).first
    try:
        expect(outcome).to_be_visible(timeout=UI_S * 1000)
    finally:
        _shoot(page, "02-run")
    assert outcome.inner_text() == "Success", _log_tail(dagster_dev.log)
    return page.url


def _wait_for_run_to_end(dagster_home: Path, run_id_prefix: str) -> None:
    deadline = time.monotonic() + UI_RUN_S
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        while time.monotonic() < deadline:
            runs = [r for r in instance.get_runs(limit=20) if r.run_id.startswith(run_id_prefix)]
            if runs and runs[0].is_finished:
                return
            time.sleep(5)
    raise AssertionError(f"run {run_id_prefix} did not end within {UI_RUN_S}s")


def _sensor_run_id(dagster_home: Path) -> str | None:
    """The id of the run the sensor launched, once it has launched one."""
    deadline = time.monotonic() + SENSOR_RUN_S
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        while time.monotonic() < deadline:
            runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/sensor_name": SENSOR}))
            if runs:
                assert len(runs) == 1, f"{SENSOR} launched {len(runs)} runs for one new post"
                return runs[0].run_id
            time.sleep(5)
    return None


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


def test_a_run_launched_in_the_ui_succeeds_and_every_asset_shows_its_metadata(dagster_dev: DagsterDev, page: Page, ui_run: str):
    page.goto(ui_run)
    expect(page.get_by_text("raw_posts").first).to_be_visible()

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
    # Seen without a click: the sparkline and the before/after losses render in their row, not behind the fold.
    glance = _metadata_row(page, "loss_at_a_glance")
    expect(glance.get_by_text("[Show Markdown]")).to_have_count(0)
    sparkline = glance.get_by_role("img", name="train loss per logged step")
    expect(sparkline).to_be_visible()
    assert sparkline.evaluate("img => img.complete && img.naturalWidth") > 0, "the sparkline did not load"
    expect(glance).to_contain_text("eval split")
    glance.scroll_into_view_if_needed()
    _shoot(page, "04-lora_adapter-at-a-glance")
    loss_curve = _markdown(page, "loss_curve").get_by_role("img", name="loss curve")
    expect(loss_curve).to_be_visible()
    assert loss_curve.evaluate("img => img.complete && img.naturalWidth") > 0, "the loss curve image did not load"
    _shoot(page, "05-lora_adapter-loss-curve")
    page.keyboard.press("Escape")

    page.goto(f"{dagster_dev.url}/assets/gguf_q4km")
    assert _number(_metadata_value(page, "size_bytes")) > 0
    assert _metadata_value(page, "quant_type") == "Q4_K_M"
    generations = _markdown(page, "sample_generations")
    expect(generations).to_contain_text("generated body")  # shown as information; learned_to_stop_after_a_post is the gate
    assert 0 < _number(_metadata_value(page, "stop_probability_q4_k_m")) <= 1
    _shoot(page, "06-gguf_q4km-sample-generations")


def test_a_new_post_makes_the_sensor_start_a_run(dagster_dev: DagsterDev, page: Page, ui_run: str):
    write_post(dagster_dev.blog_dir, "en/2026-06-02-written-during-the-test.md", post_text("Written during the test", LONG_BODY))
    run_id = _sensor_run_id(dagster_dev.dagster_home)
    assert run_id, f"no run launched by {SENSOR} within {SENSOR_RUN_S}s:\n{_log_tail(dagster_dev.log)}"
    page.goto(f"{dagster_dev.url}/runs")
    # The runs list is a grid of divs, not a <table>: its row is the innermost element holding both the run's
    # link (named by the id's first 8 characters) and the sensor's name.
    link = page.get_by_role("link", name=run_id[:8])
    expect(link.first).to_be_visible()
    sensor_run = page.locator("div").filter(has=link).filter(has_text=SENSOR).last
    _shoot(page, "07-runs-sensor-run")
    expect(sensor_run).to_contain_text("blogtune")
