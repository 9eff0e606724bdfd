"""The web page at `/`, driven in Debian's headless Chromium through Playwright against a
real stack (gunicorn API, a Celery file worker and a stream worker with Whisper tiny.en,
redis-server): upload, transcript, player, downloads, the jobs list, live streaming through
Chromium's fake microphone, and the messages a person sees when something is refused.

Playwright's own browser download is never used: `executable_path` points at the system
Chromium (scripts/install-system-packages.sh installs it for `make test`).
"""

from __future__ import annotations

import base64
import re
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import srt
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect, sync_playwright

from shared.auth.api_key_tokens import resolve_hash_key
from shared.db.api_keys import ApiKeyRepository
from shared.db.session import make_engine, make_session_factory
from tests.support.live_sessions import wait_for_speaker_model
from tests.support.speech import REFERENCE_SENTENCES, make_long_recording
from tests.support.stack import Stack, running_stack
from tests.support.ws_clients import open_ws

pytestmark = pytest.mark.integration

SENTENCES = [REFERENCE_SENTENCES[1], REFERENCE_SENTENCES[2]]
#: Words each sentence must show (Whisper tiny.en may get a small word wrong; these it does not).
EXPECTED_WORDS = [("report", "office", "monday"), ("meeting", "room", "upstairs")]
#: Live sessions are heard by Moonshine tiny, which reads espeak's "upstairs" as "at the stairs".
LIVE_EXPECTED_WORDS = [("report", "office", "monday"), ("meeting", "room")]
JOB_TIMEOUT_MS = 120_000
LIVE_TIMEOUT_MS = 60_000


def chromium_path() -> str:
    """Debian's Chromium; a missing one fails the run (make test installs it), never skips."""
    for name in ("chromium", "chromium-browser"):
        if path := shutil.which(name):
            return path
    pytest.fail("chromium is not installed (make test installs it: scripts/install-system-packages.sh test)")


def words(text: str) -> str:
    return " ".join(re.sub(r"[^a-z' ]+", " ", text.lower()).split())


def assert_sentences(text: str, expected_words: list[tuple[str, ...]] = EXPECTED_WORDS) -> None:
    found = words(text)
    for expected in expected_words:
        assert all(word in found for word in expected), f"{expected} not in {found!r}"


@pytest.fixture(scope="module")
def recording(speech_dir: Path) -> Path:
    return make_long_recording(SENTENCES, speech_dir / "web-two.wav", gap_s=1.2)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_server) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    with running_stack(tmp_path_factory.mktemp("webstack"), redis_server.url, file_concurrency=1,
                       sentence_concurrency=0, stream_slot_wait_s=1.0) as running:
        running.start_stream_workers(1)
        running.wait_stream_slots(1)
        yield running


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright, recording: Path) -> Iterator[Browser]:
    # The fake microphone plays the recording once (`%noloop`; by default Chromium loops it).
    browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=[
        "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={recording}%noloop"])
    yield browser
    browser.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(accept_downloads=True, viewport={"width": 1100, "height": 800})
    yield context
    context.close()


@pytest.fixture
def page(context: BrowserContext, stack: Stack) -> Page:
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(stack.url("/"))
    expect(page.locator("#tab-upload")).to_be_visible()
    page.set_default_timeout(JOB_TIMEOUT_MS)
    page.errors = errors  # type: ignore[attr-defined]
    return page


def upload(page: Page, *paths: Path) -> None:
    page.locator("#files").set_input_files([str(path) for path in paths])


def test_upload_shows_the_transcript_with_a_player_that_jumps_and_every_download(
        page: Page, stack: Stack, recording: Path) -> None:
    upload(page, recording)
    card = page.locator(".card").first
    expect(card).to_have_attribute("data-status", "succeeded", timeout=JOB_TIMEOUT_MS)
    segments = card.locator(".segment")
    assert segments.count() == 2
    assert_sentences(card.locator(".segments").inner_text())
    assert re.match(r"0:00\.\d – 0:0\d\.\d", segments.first.locator(".time").inner_text())

    # The player holds the local file; a click on a sentence moves it to that sentence.
    player = card.locator("audio")
    assert player.get_attribute("src").startswith("blob:")
    second_start = float(segments.nth(1).get_attribute("data-start"))
    assert second_start > 2.0
    segments.nth(1).click()
    position = player.evaluate("audio => audio.currentTime")
    assert abs(position - second_start) < 0.5

    with page.expect_download() as download_info:
        card.locator("button[data-format=srt]").click()
    download = download_info.value
    assert download.suggested_filename == f"{recording.stem}.srt"
    cues = list(srt.parse(Path(download.path()).read_text(encoding="utf-8")))
    assert [cue.index for cue in cues] == [1, 2]
    assert_sentences(" ".join(cue.content for cue in cues))
    assert cues[1].start.total_seconds() == pytest.approx(second_start, abs=0.05)
    for fmt in ("txt", "vtt", "json", "spk"):
        with page.expect_download() as download_info:
            card.locator(f"button[data-format={fmt}]").click()
        assert download_info.value.suggested_filename.endswith(f".{fmt}")
    assert page.errors == []  # type: ignore[attr-defined]


def test_a_refused_upload_shows_the_api_message(page: Page, stack: Stack, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("this is not audio at all\n" * 20)
    with notes.open("rb") as body:
        refused = requests.post(stack.url("/v1/jobs"), files={"audio": (notes.name, body)}, timeout=30)
    assert refused.status_code == 415
    upload(page, notes)
    card = page.locator(".card[data-file='notes.txt']")
    expect(card.locator(".notice.error")).to_have_text(refused.json()["error"])
    expect(card).to_have_attribute("data-status", "refused")


def test_the_jobs_list_shows_speed_filters_and_opens_a_transcript(page: Page, stack: Stack, recording: Path) -> None:
    with recording.open("rb") as body:
        job_id = requests.post(stack.url("/v1/jobs"), files={"audio": (recording.name, body)}, timeout=30).json()["id"]
    deadline_s = time.monotonic() + JOB_TIMEOUT_MS / 1000
    while requests.get(stack.url(f"/v1/jobs/{job_id}"), timeout=10).json()["status"] != "succeeded":
        assert time.monotonic() < deadline_s
        time.sleep(0.3)
    job = requests.get(stack.url(f"/v1/jobs/{job_id}"), timeout=10).json()
    page.click("[data-tab=jobs]")
    row = page.locator(f"#jobs-table tr[data-job-id='{job_id}']")
    expect(row).to_have_attribute("data-status", "succeeded")
    cells = row.locator("td")
    assert cells.nth(1).inner_text() == recording.name
    assert cells.nth(4).inner_text() == f"{job['audio_duration_s']:.1f} s"
    assert cells.nth(6).inner_text() == f"{job['processing_s'] / job['audio_duration_s']:.2f}"

    page.select_option("#jobs-status", "failed")
    expect(row).to_have_count(0)
    page.select_option("#jobs-status", "succeeded")
    expect(row).to_have_count(1)
    row.click()
    expect(page.locator("#job-detail .segments")).to_contain_text("upstairs")
    # Its audio, fetched from the server (this page never had the file): a player that jumps.
    page.click("#job-detail button:has-text('Play the audio')")
    player = page.locator("#job-detail audio")
    expect(player).to_have_count(1)
    page.wait_for_function("() => document.querySelector('#job-detail audio').duration > 0")
    duration_s = player.evaluate("audio => audio.duration")
    assert abs(duration_s - job["audio_duration_s"]) < 0.2
    second = page.locator("#job-detail .segment").nth(1)
    second.click()
    assert abs(player.evaluate("audio => audio.currentTime") - float(second.get_attribute("data-start"))) < 0.5


def test_live_microphone_shows_partials_then_finals_and_the_session_job(page: Page, stack: Stack) -> None:
    stack.wait_stream_slots(1, timeout_s=30)
    page.click("[data-tab=live]")
    # Remember whether grey partial text was ever on screen: finals replace it quickly.
    page.evaluate("""() => {
        window.sawPartial = false;
        new MutationObserver(() => {
            if (document.querySelector('#live-text .sentence.partial:not(:empty)')) window.sawPartial = true;
        }).observe(document.getElementById('live-text'), {subtree: true, childList: true, characterData: true});
    }""")
    page.click("#live-button")
    expect(page.locator("#live-state")).to_have_text("Listening", timeout=LIVE_TIMEOUT_MS)
    expect(page.locator("#live-language")).to_be_disabled()  # fixed for the session
    expect(page.locator("#live-text .sentence.final")).to_have_count(2, timeout=LIVE_TIMEOUT_MS)
    live_text = page.locator("#live-text").inner_text()
    assert_sentences(live_text, LIVE_EXPECTED_WORDS)
    assert page.evaluate("window.sawPartial")
    assert page.locator("#live-text .sentence.final").first.evaluate("n => getComputedStyle(n).color") \
        == "rgb(17, 17, 17)"
    assert page.locator("#live-elapsed").inner_text() != "0:00"

    page.click("#live-button")  # Stop: Close, then the Summary, then the session's job
    result = page.locator("#live-result")
    expect(result.locator(".segments")).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    assert_sentences(result.locator(".segments").inner_text(), LIVE_EXPECTED_WORDS)
    expect(result).to_contain_text("succeeded · job ")
    expect(page.locator("#live-language")).to_be_enabled()
    assert result.locator("audio").get_attribute("src").startswith("blob:")
    expect(page.locator("#live-error")).to_be_hidden()
    page.click("[data-tab=jobs]")  # the session is in the list, its speed not a number
    session_row = page.locator("#jobs-table tr", has=page.locator("td", has_text="stream")).first
    expect(session_row.locator("td").nth(5)).to_have_text("live")
    expect(session_row.locator("td").nth(6)).to_have_text("—")
    assert page.errors == []  # type: ignore[attr-defined]


def test_live_says_so_when_no_stream_worker_is_free(page: Page, stack: Stack) -> None:
    stack.wait_stream_slots(1, timeout_s=30)
    port = stack.settings.port
    with open_ws(f"ws://127.0.0.1:{port}/v1/stream") as holder:  # takes the only worker
        holder.send('{"type": "Start", "sample_rate": 16000}')
        assert '"Begin"' in holder.recv(timeout=30)
        page.click("[data-tab=live]")
        page.click("#live-button")
        error = page.locator("#live-error")
        expect(error).to_contain_text("Every live transcription worker is busy", timeout=LIVE_TIMEOUT_MS)
        expect(page.locator("#live-button")).to_have_text("Start microphone")
        holder.send('{"type": "Close"}')


def test_live_says_so_when_the_microphone_is_denied(playwright: Playwright, stack: Stack) -> None:
    # Without `--use-fake-ui-for-media-stream` nobody answers the permission prompt of a
    # headless browser, which then refuses, as a person who clicks "Block" does.
    browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True,
                                         args=["--use-fake-device-for-media-stream"])
    try:
        page = browser.new_page()
        page.goto(stack.url("/#live"))
        page.click("#live-button")
        expect(page.locator("#live-error")).to_contain_text("Microphone access was denied")
        expect(page.locator("#live-state")).to_have_text("Idle")
    finally:
        browser.close()


def test_live_speaker_labels_show_when_ticked(playwright: Playwright, stack: Stack, recording: Path) -> None:
    """Ticked before the start, every final shows its speaker (one voice here: `Speaker 1`)."""
    wait_for_speaker_model(stack)
    stack.wait_stream_slots(1, timeout_s=30)
    browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=[
        "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={recording}%noloop"])
    try:
        page = browser.new_page()
        page.goto(stack.url("/#live"))
        page.check("#live-speakers")
        page.click("#live-button")
        expect(page.locator("#live-state")).to_have_text("Listening", timeout=LIVE_TIMEOUT_MS)
        expect(page.locator("#live-speakers")).to_be_disabled()  # fixed for the session
        finals = page.locator("#live-text .sentence.final")
        expect(finals).to_have_count(2, timeout=LIVE_TIMEOUT_MS)
        assert finals.locator(".speaker").all_inner_texts() == ["Speaker 1", "Speaker 1"]
        page.click("#live-button")
        expect(page.locator("#live-result .segments")).to_be_visible(timeout=LIVE_TIMEOUT_MS)
        expect(page.locator("#live-speakers")).to_be_enabled()
    finally:
        browser.close()


def test_live_resumes_the_session_when_its_api_process_is_restarted(page: Page, stack: Stack) -> None:
    """A deploy or a crash of the API process mid-session: the page reconnects to the same
    session, sends the audio the server lacks, and no sentence is lost or repeated."""
    stack.wait_stream_slots(1, timeout_s=30)
    url, settings = stack.start_api("api-restarted")
    page.goto(f"{url}/#live")
    page.click("#live-button")
    finals = page.locator("#live-text .sentence.final")
    expect(finals).to_have_count(1, timeout=LIVE_TIMEOUT_MS)
    stack.stop("api-restarted", sig=signal.SIGKILL)
    expect(page.locator("#live-state")).to_have_text("Connection lost; reconnecting…")
    stack.spawn_api("api-restarted", settings)
    expect(page.locator("#live-state")).to_have_text("Listening", timeout=LIVE_TIMEOUT_MS)
    expect(finals).to_have_count(2, timeout=LIVE_TIMEOUT_MS)
    assert [finals.nth(i).get_attribute("data-index") for i in range(2)] == ["0", "1"]
    assert_sentences(page.locator("#live-text").inner_text(), LIVE_EXPECTED_WORDS)
    page.click("#live-button")
    result = page.locator("#live-result")
    expect(result.locator(".segments")).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    expect(result).to_contain_text("succeeded · job ")
    assert result.locator(".segment").count() == 2
    assert_sentences(result.locator(".segments").inner_text(), LIVE_EXPECTED_WORDS)
    expect(page.locator("#live-error")).to_be_hidden()
    assert page.errors == []  # type: ignore[attr-defined]


def test_live_says_so_when_the_connection_drops_for_good(page: Page, stack: Stack) -> None:
    """After the other live tests: the worker keeps the dropped session for its resume window."""
    stack.wait_stream_slots(1, timeout_s=30)
    # This API's page gives up after 2 s (its resume window, 4 s, less a margin).
    url, _ = stack.start_api("api-dropped", stream_resume_window_s=4.0)
    page.goto(f"{url}/#live")
    page.click("#live-button")
    expect(page.locator("#live-state")).to_have_text("Listening", timeout=LIVE_TIMEOUT_MS)
    stack.stop("api-dropped", sig=signal.SIGKILL)
    expect(page.locator("#live-error")).to_contain_text("The connection to the server dropped")
    expect(page.locator("#live-error")).to_contain_text("could not be resumed")
    expect(page.locator("#live-error")).to_contain_text("saved in the session's job")
    expect(page.locator("#live-button")).to_have_text("Start microphone")


def test_a_server_that_needs_a_key_asks_for_it_and_the_page_then_works(context: BrowserContext, stack: Stack) -> None:
    url, settings = stack.start_api("api-keys", auth_mode="required")
    keys = ApiKeyRepository(make_session_factory(make_engine(settings.database_url)),
                            resolve_hash_key(settings.api_key_hash_secret, settings.data_dir))
    key = keys.create("web-page")[1]
    try:
        assert requests.get(f"{url}/", timeout=10).status_code == 200  # the page and its files are public
        assert requests.get(f"{url}/web/static/js/main.js", timeout=10).status_code == 200
        assert requests.get(f"{url}/v1/jobs", timeout=10).status_code == 401
        page = context.new_page()
        page.goto(f"{url}/#jobs")
        expect(page.locator("#key-notice")).to_contain_text("This server needs an API key")
        # The page's own words, not the API's (which name HTTP headers a person cannot set here).
        expect(page.locator("#jobs-error")).to_have_text("Paste your API key in the API key field above.")
        page.fill("#api-key", key)
        page.click("#key-form button")
        page.click("#jobs-refresh")
        expect(page.locator("#jobs-error")).to_be_hidden()
        expect(page.locator("#jobs-table tbody")).to_have_text("No jobs.")  # the key's own: none yet
        assert page.evaluate("localStorage.getItem('oddasr.apiKey')") == key
    finally:
        stack.stop("api-keys")


def drop(page: Page, *paths: Path) -> None:
    """Drops files onto the drop zone the way a browser does: one DataTransfer holding them."""
    files = [[path.name, base64.b64encode(path.read_bytes()).decode()] for path in paths]
    page.evaluate("""(files) => {
        const transfer = new DataTransfer();
        for (const [name, data] of files) {
            const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
            transfer.items.add(new File([bytes], name, {type: 'audio/wav'}));
        }
        const zone = document.getElementById('drop-zone');
        for (const type of ['dragenter', 'dragover', 'drop']) {
            zone.dispatchEvent(new DragEvent(type, {dataTransfer: transfer, bubbles: true, cancelable: true}));
        }
    }""", files)


def test_queued_jobs_show_their_place_and_are_canceled_from_card_and_list(
        page: Page, stack: Stack, recording: Path, tmp_path: Path) -> None:
    """Last in the module: it stops the file worker so that the jobs stay queued."""
    stack.stop("worker-file")
    put = requests.put(stack.url("/v1/hotwords/web-products"), data="Brannigan 20\nOddASR\n",
                       headers={"Content-Type": "text/plain"}, timeout=10)
    assert put.status_code in (200, 201), put.text
    page.click("[data-tab=jobs]")
    page.click("[data-tab=upload]")  # showing the tab again lists the set made since the page loaded
    page.select_option("#hotword-set", "web-products")
    first, second = tmp_path / "first.wav", tmp_path / "second.wav"
    shutil.copy(recording, first)
    shutil.copy(recording, second)
    drop(page, first, second)

    cards = {name: page.locator(f".card[data-file='{name}']") for name in ("first.wav", "second.wav")}
    for card in cards.values():
        expect(card).to_have_attribute("data-status", "queued")
        # The submission's answer says "Queued"; the first poll brings the place in line.
        expect(card.locator(".status")).to_contain_text(re.compile("next in line|ahead of it"))
    places = sorted(card.locator(".status").inner_text() for card in cards.values())
    assert places[0].startswith("Queued · 1 ahead of it"), places
    assert places[1].startswith("Queued · next in line"), places
    ids = {name: card.get_attribute("data-job-id") for name, card in cards.items()}
    options = requests.get(stack.url(f"/v1/jobs/{ids['first.wav']}"), timeout=10).json()["options"]
    assert options["hotword_set"] == "web-products"
    assert options["hotwords"][:2] == ["Brannigan", "OddASR"]

    cards["first.wav"].locator("header button", has_text="Cancel").click()
    expect(cards["first.wav"]).to_have_attribute("data-status", "canceled")
    expect(cards["first.wav"].locator(".notice")).to_have_text("Canceled")

    page.click("[data-tab=jobs]")
    rows = {name: page.locator(f"#jobs-table tr[data-job-id='{job_id}']") for name, job_id in ids.items()}
    expect(rows["first.wav"]).to_have_attribute("data-status", "canceled")
    expect(rows["second.wav"]).to_have_attribute("data-status", "queued")
    # Canceled elsewhere: the list, showing a queued job, refreshes itself (no click on Refresh).
    assert requests.delete(stack.url(f"/v1/jobs/{ids['second.wav']}"), timeout=10).status_code == 200
    expect(rows["second.wav"]).to_have_attribute("data-status", "canceled", timeout=10_000)
    page.select_option("#jobs-status", "canceled")
    for row in rows.values():
        expect(row).to_have_count(1)
    assert page.errors == []  # type: ignore[attr-defined]
