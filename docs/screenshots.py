"""Takes the docs' screenshots in a real browser: the live view of a short tiny run, and Trackio's dashboard of two.

    python -m docs.screenshots [FOLDER]

Runs the notebook twice in papermill (12 PPO steps, KL coefficients 0.2 and 0: a two-run sweep) with
`tracker="trackio"` into one Trackio store under FOLDER, renders the first run's executed notebook to HTML, and takes
the PPO cell's output and the Trackio dashboard with headless Chromium. Needs the trackers' extras, Playwright's Python
package and a Chromium (Debian's `chromium`, at /usr/bin/chromium); nothing here is needed by the lab or its tests.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

from lab3 import NOTEBOOK, ROOT

DOCS = ROOT / "docs"
STEPS = 12
SWEEP = {"kl0.2": 0.2, "kl0": 0.0}
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"]  # this machine reaches no network: no background calls


def run(folder: Path, name: str, kl: float, env: dict) -> Path:
    """Execute the notebook for a short run with KL coefficient `kl`; return the executed notebook."""
    executed = folder / f"{name}.ipynb"
    overrides = f'{{"max_ppo_steps": {STEPS}, "num_eval_samples": 32, "init_kl_coef": {kl}}}'
    subprocess.run([sys.executable, "-m", "papermill", str(ROOT / NOTEBOOK), str(executed),
                    "-p", "output_dir", str(folder / name), "-p", "checkpoint_dir", str(folder / name / "ck"),
                    "-p", "tracker", "trackio", "-r", "overrides", overrides, "--cwd", str(ROOT)],
                   check=True, env=env)
    return executed


def live_view(page, executed: Path) -> None:
    """Screenshot the PPO cell's output (the live figure and rollouts) of the executed notebook, as HTML."""
    html = executed.with_suffix(".html")
    subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", str(executed), "--output",
                    html.name], check=True)
    page.set_viewport_size({"width": 1100, "height": 900})
    page.goto(html.as_uri())
    cell = page.locator(".jp-Cell").filter(has_text="session.ppo_steps").locator(".jp-Cell-outputWrapper")
    cell.screenshot(path=str(DOCS / "live-view.png"))


def dashboard(page, store: Path, env: dict) -> None:
    """Screenshot Trackio's dashboard of the sweep's runs, served from `store` on localhost."""
    server = subprocess.Popen([sys.executable, "-c", "import trackio, time; trackio.show(project='lab3-detox', "
                               "open_browser=False); time.sleep(600)"], env=env, stdout=subprocess.PIPE, text=True)
    try:
        url = next(line.split()[-1] for line in server.stdout if "http://" in line)
        page.set_viewport_size({"width": 1400, "height": 1000})
        page.goto(url.split("?")[0] + "?project=lab3-detox")
        page.wait_for_selector("canvas, svg.marks", timeout=120_000)
        time.sleep(5)  # the plots draw after their first element appears
        page.screenshot(path=str(DOCS / "trackio-two-runs.png"))
    finally:
        server.kill()


def main(folder: str = "/tmp/lab3-screenshots") -> None:
    """Run the sweep, then take both screenshots."""
    from playwright.sync_api import sync_playwright
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TRACKIO_DIR": str(out / "trackio")}
    executed = [run(out, name, kl, env) for name, kl in SWEEP.items()]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_FLAGS)
        page = browser.new_page()
        live_view(page, executed[0])
        dashboard(page, out / "trackio", env)
        browser.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
