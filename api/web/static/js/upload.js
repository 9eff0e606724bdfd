// The Upload tab: every dropped or picked file becomes a job (POST /v1/jobs) with a card that
// follows it (queued with its place and estimate where the server knows them, running with
// its progress) and, once done, shows its transcript next to the local file in a player.

import { deleteJob, getJob, listHotwordSets, submitJob } from "./api.js";
import { duration, el } from "./dom.js";
import { renderTranscript } from "./transcript.js";

const POLL_MS = 700;
const FINAL = new Set(["succeeded", "failed", "canceled"]);

function queuedText(job) {
  const parts = ["Queued"];
  if (job.queue_position !== null && job.queue_position !== undefined) {
    parts.push(job.queue_position === 0 ? "next in line" : `${job.queue_position} ahead of it`);
  }
  if (job.estimated_start_s !== null && job.estimated_start_s !== undefined) {
    parts.push(`starts in about ${duration(job.estimated_start_s)}`);
  }
  return parts.join(" · ");
}

function runningText(job) {
  let text = `Transcribing · ${Math.round((job.progress || 0) * 100)} %`;
  if (job.estimated_finish_s !== null && job.estimated_finish_s !== undefined) {
    text += ` · done in about ${duration(job.estimated_finish_s)}`;
  }
  return text;
}

function doneText(job) {
  const audio = duration(job.audio_duration_s);
  return job.processing_s ? `Done · ${audio} of audio in ${duration(job.processing_s)}` : `Done · ${audio} of audio`;
}

class UploadCard {
  constructor(file, options) {
    this.file = file;
    this.options = options;
    this.audioUrl = URL.createObjectURL(file);
    this.status = el("span", { className: "status" }, "Uploading…");
    this.bar = el("progress", { max: 1 });  // no value: the browser shows it as busy
    this.cancel = el("button", { type: "button", className: "small", hidden: true, onclick: () => this.onCancel() },
      "Cancel");
    this.body = el("div", { className: "card-body" });
    this.node = el("article", { className: "card", "data-file": file.name },
      el("header", {}, el("strong", {}, file.name), this.status, this.cancel), this.bar, this.body);
  }

  async start() {
    try {
      const job = await submitJob(this.file, this.options);
      this.node.dataset.jobId = job.id;
      this.show(job);
      await this.follow(job.id);
    } catch (error) {
      this.fail(error.message);
    }
  }

  async follow(id) {
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      const job = await getJob(id);
      this.show(job);
      if (FINAL.has(job.status)) return;
    }
  }

  show(job) {
    this.node.dataset.status = job.status;
    this.cancel.hidden = FINAL.has(job.status);
    if (job.status === "queued") {
      this.status.textContent = queuedText(job);
      this.bar.removeAttribute("value");
    } else if (job.status === "running") {
      this.status.textContent = runningText(job);
      this.bar.value = job.progress || 0;
    } else if (job.status === "succeeded") {
      this.status.textContent = doneText(job);
      this.bar.remove();
      this.body.replaceChildren(renderTranscript(job, this.audioUrl));
    } else if (job.status === "failed") {
      this.fail(job.error || "the job failed");
    } else {
      this.fail("Canceled", "notice");
    }
  }

  // Refused at submission (no status yet), failed or canceled: the API's words, kept.
  fail(message, className = "notice error") {
    this.node.dataset.status = this.node.dataset.status || "refused";
    this.status.textContent = "";
    this.cancel.hidden = true;
    this.bar.remove();
    this.body.replaceChildren(el("div", { className }, message));
  }

  async onCancel() {
    try {
      this.show(await deleteJob(this.node.dataset.jobId));
    } catch (error) {
      this.fail(error.message);
    }
  }
}

// The key's hotword sets (GET /v1/hotwords) as choices; the server's file-backed default set,
// if it has one, is what a job gets when nothing is chosen, so the first choice names it.
async function loadHotwordSets(select) {
  let listing;
  try {
    listing = await listHotwordSets();
  } catch {
    return;  // no key yet, or the server is down: the fixed choices stay, and the upload says why
  }
  const chosen = select.value;
  const fixed = [
    el("option", { value: "" }, listing.default ? `server default (${listing.default.count} words)` : "server default"),
    el("option", { value: "none" }, "none"),
  ];
  const sets = listing.sets.map((set) => el("option", { value: set.name }, `${set.name} (v${set.version}, ${set.count} words)`));
  select.replaceChildren(...fixed, ...sets);
  if ([...select.options].some((option) => option.value === chosen)) select.value = chosen;
}

export function setupUpload(config) {
  const input = document.getElementById("files");
  const zone = document.getElementById("drop-zone");
  const list = document.getElementById("upload-list");
  const language = document.getElementById("language");
  const diarize = document.getElementById("diarize");
  for (const code of config.languages) language.append(el("option", { value: code }, code));
  if (config.languages.length === 1) language.value = config.languages[0];
  if (!config.diarize) {
    diarize.disabled = true;
    diarize.parentElement.title = "this server's engine does not label speakers";
  }

  const hotwordSet = document.getElementById("hotword-set");
  loadHotwordSets(hotwordSet);

  const submit = (files) => {
    const options = {
      language: language.value,
      hotwordSet: hotwordSet.value,
      hotwords: document.getElementById("hotwords").value.trim(),
      diarize: diarize.checked,
    };
    for (const file of files) {
      const card = new UploadCard(file, options);
      list.prepend(card.node);
      card.start();
    }
  };
  input.addEventListener("change", () => {
    submit([...input.files]);
    input.value = "";  // the same file picked again is a new job
  });
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    submit([...event.dataTransfer.files]);
  });
  return { load: () => loadHotwordSets(hotwordSet) };
}
