// The Live tab: the microphone streamed to `/v1/stream` in the native protocol. Partial text
// shows in grey and is replaced by the final sentence in black (with its speaker when the
// "Speaker labels" box was ticked at the start); Stop sends Close, waits for the Summary and
// shows the session's job, the way any finished job is shown.

import { getJob, streamUrl } from "./api.js";
import { clock, el, showNotice } from "./dom.js";
import { MicrophoneError, openMicrophone } from "./microphone.js";
import { Downsampler, Framer, TARGET_RATE, wavBlob } from "./pcm.js";
import { renderTranscript } from "./transcript.js";

const SUMMARY_TIMEOUT_MS = 30000;
const JOB_WAIT_MS = 15000;
// After a drop, reconnect after these pauses (then the last, again) while the server still
// holds the session: its resume window, less a margin for the last attempt.
const RECONNECT_DELAYS_MS = [250, 500, 1000, 1000, 2000];
const RESUME_MARGIN_S = 2;

// The audio from `byteOffset` on, out of the frames sent so far (a resumed session's server
// says how much it has; the rest is sent again).
function framesFrom(frames, byteOffset) {
  let skip = Math.floor(byteOffset / 2);
  const rest = [];
  for (const frame of frames) {
    if (skip >= frame.length) {
      skip -= frame.length;
    } else {
      rest.push(skip ? frame.subarray(skip) : frame);
      skip = 0;
    }
  }
  return rest;
}

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
  const speakers = document.getElementById("live-speakers");
  // Each speaker label its colour, in order of appearance (the transcript's colours).
  const speakerColours = new Map();
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
    speakers.disabled = value !== "idle";  // and so is whether it names speakers
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
    clearTimeout(current.retryTimer);
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

  function onMessage(current, ws, event) {
    if (ws !== current.ws) return;  // a connection the session has moved on from
    const message = JSON.parse(event.data);
    if (message.type === "Begin" && message.resumed) {
      // Back on the same session: send what the server lacks, including what the
      // microphone captured while the connection was down.
      framesFrom(current.frames, message.audio_received_bytes).forEach((frame) => ws.send(frame));
      current.early = [];  // among what was just sent
      current.begun = true;
      current.droppedAt = null;
      current.attempts = 0;
      if (current.stopping) {
        ws.send(JSON.stringify({ type: "Close" }));
        setState("finishing", "Finishing the last sentence…");
      } else {
        setState("listening", "Listening");
      }
    } else if (message.type === "Begin") {
      current.begun = true;
      current.sessionId = message.session_id;
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
      current.lastFinal = Math.max(current.lastFinal, message.index);
      const node = line(message.index);
      node.textContent = message.text;
      if (message.speaker) {
        if (!speakerColours.has(message.speaker)) speakerColours.set(message.speaker, speakerColours.size % 6);
        node.prepend(el("span", { className: `speaker s${speakerColours.get(message.speaker)}` }, message.speaker),
          " ");
      }
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
    speakerColours.clear();
    text.replaceChildren();
    result.replaceChildren();
    elapsed.textContent = "0:00";
    setState("asking", "Asking for the microphone…");
    const current = { frames: [], early: [], begun: false, jobId: null, sessionId: null, lastFinal: -1,
                      attempts: 0, droppedAt: null };
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
    session = current;
    connect(current, { type: "Start", sample_rate: TARGET_RATE, language: language.value || undefined,
                       partials: true, speakers: speakers.checked });
  }

  function connect(current, startMessage) {
    const ws = new WebSocket(streamUrl());
    ws.binaryType = "arraybuffer";
    current.ws = ws;
    ws.onopen = () => ws.send(JSON.stringify(startMessage));
    ws.onmessage = (event) => onMessage(current, ws, event);
    ws.onclose = (event) => onClose(current, ws, event);
  }

  // A connection lost before the session's end: resume it while the server holds it (the
  // network blinked, or the API process behind it was restarted), else say what happened.
  function onClose(current, ws, event) {
    if (ws !== current.ws || session !== current || current.summarized || current.failed) return;
    current.begun = false;  // the microphone's frames wait in current.frames meanwhile
    current.droppedAt = current.droppedAt || Date.now();
    const budgetMs = Math.max(0, (config.resume_window_s || 0) - RESUME_MARGIN_S) * 1000;
    if (!current.sessionId || Date.now() - current.droppedAt >= budgetMs) {
      end(current, `The connection to the server dropped (code ${event.code}${event.reason ? `: ${event.reason}` : ""})`
        + (current.sessionId ? " and could not be resumed." : ".")
        + (current.jobId ? " The sentences finished so far are saved in the session's job." : ""));
      return;
    }
    setState("connecting", "Connection lost; reconnecting…");
    const delay = RECONNECT_DELAYS_MS[Math.min(current.attempts, RECONNECT_DELAYS_MS.length - 1)];
    current.attempts += 1;
    current.retryTimer = setTimeout(() => {
      if (session === current) {
        connect(current, { type: "Start", session: current.sessionId, last_final: current.lastFinal });
      }
    }, delay);
  }

  function stop() {
    const current = session;
    if (!current) return;
    if (!current.begun) {
      end(current, current.sessionId ? "Stopped while reconnecting; the sentences finished so far are saved in "
        + "the session's job." : "Stopped before the server had started the session.");
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
