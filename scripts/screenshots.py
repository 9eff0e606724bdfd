"""Regenerate the README's screenshots of the web page (docs/screenshots/*.png).

    .venv/bin/python scripts/screenshots.py                      # starts a throwaway stack
    .venv/bin/python scripts/screenshots.py --url http://127.0.0.1:9002 [--api-key KEY]

Uses the browser the tests use (Debian's headless Chromium through Playwright) and speech
with known text from tests/support/speech.py (espeak-ng), so the pictures show what the page
really does: a diarized two-voice upload with its transcript, the jobs list, and a live
session fed through Chromium's fake microphone, caught while a sentence is still partial.
Without --url it starts redis-server, the API, one file worker and one stream worker with
Whisper tiny.en, the way the tests do; with --url the service must run a stream worker.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "docs" / "screenshots"
VIEWPORT = {"width": 1000, "height": 720}
TIMEOUT_MS = 180_000
LIVE_SENTENCES = 3

logger = logging.getLogger("screenshots")


@contextlib.contextmanager
def throwaway_service(work: Path) -> Iterator[str]:
    """redis-server + API + a file worker + a stream worker in `work`, as the tests start them."""
    from tests.support.servers import run_redis
    from tests.support.stack import running_stack

    os.environ.setdefault("ODDASR_TEST_MODEL_CACHE", str(Path.home() / ".cache" / "oddasr-test-models"))
    redis = run_redis(work / "redis")
    try:
        with running_stack(work, redis.url, file_concurrency=1, sentence_concurrency=0) as stack:
            stack.start_stream_workers(1)
            stack.wait_stream_slots(1)
            yield stack.base_url
    finally:
        redis.close()


def speech(work: Path) -> tuple[Path, Path]:
    """A two-voice dialogue to upload and three sentences for the microphone."""
    from tests.support.speech import REFERENCE_SENTENCES, make_dialogue, make_long_recording

    cache = Path(os.environ.get("ODDASR_TEST_SPEECH_CACHE", Path.home() / ".cache" / "oddasr-test-speech"))
    dialogue, _ = make_dialogue(REFERENCE_SENTENCES[:4], cache / "screenshot-dialogue.wav")
    live = make_long_recording(REFERENCE_SENTENCES[4:4 + LIVE_SENTENCES], cache / "screenshot-live.wav", gap_s=1.0)
    # A plain name, as a person's file would have.
    upload = work / "meeting.wav"
    shutil.copyfile(dialogue, upload)
    return upload, live


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        raise SystemExit("chromium is not installed: scripts/install-system-packages.sh test")
    return path


def capture(url: str, api_key: str, upload: Path, live: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    OUT_DIR.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium(), headless=True, args=[
            "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={live}%noloop"])
        page = browser.new_page(viewport=VIEWPORT)
        page.set_default_timeout(TIMEOUT_MS)
        if api_key:
            page.goto(url)
            page.evaluate("key => localStorage.setItem('oddasr.apiKey', key)", api_key)
        page.goto(url)

        page.check("#diarize")
        page.locator("#files").set_input_files(str(upload))
        card = page.locator(".card").first
        expect(card).to_have_attribute("data-status", "succeeded", timeout=TIMEOUT_MS)
        card.locator(".segment").nth(1).hover()
        page.screenshot(path=OUT_DIR / "upload.png", full_page=True)
        logger.info("upload.png: %s", card.locator(".segments").inner_text().replace("\n", " | "))

        page.click("[data-tab=live]")
        page.click("#live-button")
        # Caught with finished sentences in black and the next one still partial, in grey.
        deadline_s = time.monotonic() + TIMEOUT_MS / 1000
        while time.monotonic() < deadline_s:
            if (page.locator("#live-text .sentence.final").count() >= 1
                    and page.locator("#live-text .sentence.partial").count() >= 1
                    and len(page.locator("#live-text .sentence.partial").last.inner_text().split()) >= 3):
                break
            time.sleep(0.05)
        page.screenshot(path=OUT_DIR / "live.png", full_page=True)
        logger.info("live.png: %s", page.locator("#live-text").inner_text().replace("\n", " | "))
        expect(page.locator("#live-text .sentence.final")).to_have_count(LIVE_SENTENCES, timeout=TIMEOUT_MS)
        page.click("#live-button")
        expect(page.locator("#live-result .segments")).to_be_visible()
        page.screenshot(path=OUT_DIR / "live-ended.png", full_page=True)

        page.click("[data-tab=jobs]")
        rows = page.locator("#jobs-table tbody tr[data-job-id]")
        expect(rows.first).to_be_visible()
        page.locator("#jobs-table tbody tr[data-job-id]", has_text=upload.name).first.click()
        expect(page.locator("#job-detail .segments")).to_be_visible()
        page.screenshot(path=OUT_DIR / "jobs.png", full_page=True)
        logger.info("jobs.png: %d jobs listed", rows.count())
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running service (default: start a throwaway one)")
    parser.add_argument("--api-key", default="", help="a key, for a service with auth_mode=required")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory(prefix="oddasr-screenshots-") as tmp:
        work = Path(tmp)
        upload, live = speech(work)
        if args.url:
            capture(args.url.rstrip("/") + "/", args.api_key, upload, live)
        else:
            with throwaway_service(work) as url:
                capture(url + "/", args.api_key, upload, live)
    logger.info("saved in %s", OUT_DIR)


if __name__ == "__main__":
    main()
