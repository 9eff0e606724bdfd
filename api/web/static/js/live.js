// The Live tab: the microphone streamed to `/v1/stream` in the native protocol. Partial text
// shows in grey and is replaced by the final sentence in black; Stop sends Close, waits for
// the Summary and shows the session's job, the way any finished job is shown.

import { getJob, streamUrl } from "./api.js";
import { clock, el, showNotice } from "./dom.js";
import { MicrophoneError, openMicrophone } from "./microphone.js";
import { Downsampler, Framer, TARGET_RATE, wavBlob } from "./pcm.js";
import { renderTranscript } from "./transcript.js";

const SUMMARY_TIMEOUT_MS = 30000;
const JOB_WAIT_MS = 15000;

// The server's Error kinds a person can act on, in words; the server's message follows.
const ERROR_ADVICE = {
  busy: "Every live transcription worker is busy right now. Try again in a moment.",
  unauthorized: "This server needs an API key: paste yours in the API key field above.",
  limited: "Your API key has reached one of its limits.",
  worker_lost: "The server lost the worker transcribing this session; the sentences so far are saved.",
  unavailable: "The server cannot reach its queue or database right now.",
  canceled: "This session's job was canceled (deleted) while it ran; nothing of it is kept.",
};

async function finishedJob(id) {
  const deadline = Date.now() + JOB_WAIT_MS;
  let job = await getJob(id);
  while (!["succeeded", "failed", "canceled"].includes(job.status) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    job = await getJob(id);
  }
  return job;
}

export function setupLive(config) {
  const button = document.getElementById("live-button");
  const elapsed = document.getElementById("live-elapsed");
  const state = document.getElementById("live-state");
  const errorNode = document.getElementById("live-error");
  const text = document.getElementById("live-text");
  const result = document.getElementById("live-result");
  const language = document.getElementById("live-language");
  for (const code of config.languages) language.append(el("option", { value: code }, code));
  if (config.languages.length === 1) language.value = config.languages[0];
  let session = null;

  const setState = (value, label) => {
    button.dataset.state = value;
    state.dataset.state = value;
    state.textContent = label;
    button.textContent = value === "idle" ? "Start microphone" : "Stop";
    button.disabled = value === "finishing" || value === "asking";
    button.classList.toggle("recording", value === "listening");
    language.disabled = value !== "idle";  // a session's language is fixed at its start
  };
  if (!config.streaming) {
    setState("idle", "Live transcription is turned off on this server.");
    button.disabled = true;
    return;
  }
  setState("idle", "Idle");

  function line(index) {
    let node = text.querySelector(`[data-index="${index}"]`);
    if (!node) {
      node = el("p", { className: "sentence partial", "data-index": index });
      text.append(node);
    }
    return node;
  }

  async function showJob(jobId, frames) {
    if (!jobId) return;
    try {
      const job = await finishedJob(jobId);
      const audioUrl = frames.length ? URL.createObjectURL(wavBlob(frames)) : null;
      result.replaceChildren(el("div", { className: "panel detail" },
        el("h2", {}, "Session transcript"), el("p", { className: "muted" }, `${job.status} · job ${job.id}`),
        renderTranscript(job, audioUrl)));
    } catch (error) {
      // Keep what ended the session (a dropped connection most often explains this too).
      const previous = errorNode.hidden ? "" : errorNode.textContent;
      showNotice(errorNode, previous ? `${previous} The session's job could not be loaded: ${error.message}.`
        : error.message);
    }
  }

  function end(current, message) {
    if (session !== current) return;
    session = null;
    clearInterval(current.timer);
    clearTimeout(current.summaryTimer);
    current.microphone?.stop();
    if (current.ws.readyState <= WebSocket.OPEN) current.ws.close(1000);
    if (message) showNotice(errorNode, message);
    setState("idle", message ? "Stopped" : "Ended");
    showJob(current.jobId, current.frames);
  }

  function send(current, frame) {
    current.frames.push(frame);
    if (current.begun) current.ws.send(frame);
    else current.early.push(frame);  // until a worker holds the session
  }

  function onMessage(current, event) {
    const message = JSON.parse(event.data);
    if (message.type === "Begin") {
      current.begun = true;
      current.jobId = message.job_id;
      current.early.forEach((frame) => current.ws.send(frame));
      current.early = [];
      current.startedAt = Date.now();
      current.timer = setInterval(() => {
        elapsed.textContent = clock((Date.now() - current.startedAt) / 1000);
      }, 250);
      setState("listening", "Listening");
    } else if (message.type === "Partial") {
      // An empty partial (a noise that became no words) would leave an empty line.
      const existing = text.querySelector(`[data-index="${message.index}"]`);
      if (!message.text) {
        if (existing && !existing.classList.contains("final")) existing.remove();
        return;
      }
      const node = existing || line(message.index);
      if (!node.classList.contains("final")) node.textContent = message.text;
    } else if (message.type === "Final") {
      const node = line(message.index);
      node.textContent = message.text;
      node.classList.replace("partial", "final");
    } else if (message.type === "Summary") {
      current.summarized = true;
      end(current, "");
    } else if (message.type === "Error") {
      current.failed = true;
      const advice = ERROR_ADVICE[message.kind];
      end(current, advice ? `${advice} (${message.message})` : message.message);
    }
  }

  async function start() {
    showNotice(errorNode, "");
    text.replaceChildren();
    result.replaceChildren();
    elapsed.textContent = "0:00";
    setState("asking", "Asking for the microphone…");
    const current = { frames: [], early: [], begun: false, jobId: null };
    try {
      let downsampler = null;
      const framer = new Framer();
      current.framer = framer;
      current.microphone = await openMicrophone((chunk) => {
        if (session !== current || current.stopping) return;
        framer.push(downsampler.push(chunk)).forEach((frame) => send(current, frame));
      });
      downsampler = new Downsampler(current.microphone.sampleRate, TARGET_RATE);
    } catch (error) {
      setState("idle", "Idle");
      showNotice(errorNode, error instanceof MicrophoneError ? error.message : `The microphone failed: ${error.message}`);
      return;
    }
    setState("connecting", "Waiting for a live worker…");
    const ws = new WebSocket(streamUrl());
    ws.binaryType = "arraybuffer";
    current.ws = ws;
    session = current;
    ws.onopen = () => ws.send(JSON.stringify({ type: "Start", sample_rate: TARGET_RATE,
                                               language: language.value || undefined, partials: true }));
    ws.onmessage = (event) => onMessage(current, event);
    ws.onclose = (event) => {
      if (current.summarized || current.failed) return;
      end(current, `The connection to the server dropped (code ${event.code}${event.reason ? `: ${event.reason}` : ""}).`
        + (current.jobId ? " The sentences finished so far are saved in the session's job." : ""));
    };
  }

  function stop() {
    const current = session;
    if (!current) return;
    if (!current.begun) {
      end(current, "Stopped before the server had started the session.");
      return;
    }
    current.stopping = true;
    current.microphone.stop();
    current.microphone = null;
    current.framer.flush().forEach((frame) => send(current, frame));
    clearInterval(current.timer);
    setState("finishing", "Finishing the last sentence…");
    if (current.ws.readyState === WebSocket.OPEN) current.ws.send(JSON.stringify({ type: "Close" }));
    current.summaryTimer = setTimeout(() => end(current, "The server sent no summary in time; the session may be "
      + "incomplete."), SUMMARY_TIMEOUT_MS);
  }

  button.addEventListener("click", () => (session ? stop() : start()));
}
