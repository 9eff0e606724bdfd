// The Jobs tab: the recent jobs a page at a time (GET /v1/jobs), with their speed, a status
// filter, cancel/delete, and a job's transcript when its row is clicked.

import { audioBlob, deleteJob, getJob, listJobs } from "./api.js";
import { duration, el, showNotice } from "./dom.js";
import { renderTranscript } from "./transcript.js";

const PAGE_SIZE = 20;
const ACTIVE = new Set(["queued", "running"]);
// While a listed job is queued or running, the list refreshes itself at this pace.
const ACTIVE_REFRESH_MS = 2000;

// Processing time over audio time: under 1 is faster than real time. A live session runs at
// the speaker's pace, so its ratio (always about 1) would say nothing.
function realTimeFactor(job) {
  if (job.mode === "stream" || !job.processing_s || !job.audio_duration_s) return "—";
  return (job.processing_s / job.audio_duration_s).toFixed(2);
}

function noTranscript(job) {
  if (ACTIVE.has(job.status)) return "No transcript yet: the job has not finished.";
  return "The transcript is no longer stored (deleted, or past the retention time).";
}

function created(job) {
  return job.created_at ? new Date(job.created_at).toLocaleString() : "—";
}

export function setupJobs() {
  const status = document.getElementById("jobs-status");
  const body = document.querySelector("#jobs-table tbody");
  const range = document.getElementById("jobs-range");
  const previous = document.getElementById("jobs-prev");
  const next = document.getElementById("jobs-next");
  const errorNode = document.getElementById("jobs-error");
  const detail = document.getElementById("job-detail");
  const tab = document.getElementById("tab-jobs");
  let offset = 0;
  let refreshTimer = null;

  async function showDetail(id) {
    detail.replaceChildren(el("p", { className: "muted" }, "Loading…"));
    try {
      const job = await getJob(id);
      const title = el("h2", {}, job.filename || (job.mode === "stream" ? "Live session" : job.id));
      const summary = el("p", { className: "muted" }, `${job.status} · ${job.id}`);
      let content = job.result ? renderTranscript(job)
        : el("div", { className: job.error ? "notice error" : "muted" }, job.error || noTranscript(job));
      const panel = el("div", { className: "panel detail" }, title, summary, content);
      if (job.result && job.status === "succeeded") {
        // The audio is fetched only when asked for: it may be long.
        const play = el("button", { type: "button", className: "small", onclick: async () => {
          play.disabled = true;
          play.textContent = "Loading the audio…";
          try {
            const url = URL.createObjectURL(await audioBlob(job.id));
            const withPlayer = renderTranscript(job, url);
            content.replaceWith(withPlayer);
            content = withPlayer;
            play.remove();
          } catch (error) {
            play.replaceWith(el("div", { className: "notice error" }, error.message));
          }
        } }, "Play the audio");
        summary.append(" ", play);
      }
      detail.replaceChildren(panel);
    } catch (error) {
      detail.replaceChildren(el("div", { className: "notice error" }, error.message));
    }
  }

  async function remove(job) {
    try {
      await deleteJob(job.id);
      await load();
    } catch (error) {
      showNotice(errorNode, error.message);
    }
  }

  function row(job) {
    // The API keeps a finished job's record and deletes its audio and transcript.
    const action = ACTIVE.has(job.status) ? "Cancel" : "Delete data";
    const hint = ACTIVE.has(job.status) ? "Stop this job and delete its audio"
      : "Delete this job's audio and transcript from the server (its record stays)";
    return el("tr", { "data-job-id": job.id, "data-status": job.status, onclick: () => showDetail(job.id) },
      el("td", {}, created(job)),
      el("td", { className: "file" }, job.filename || (job.mode === "stream" ? "live session" : "—")),
      el("td", {}, job.mode),
      el("td", {}, el("span", { className: `badge ${job.status}` }, job.status),
        job.status === "running" ? ` ${Math.round((job.progress || 0) * 100)} %` : ""),
      el("td", { className: "num" }, duration(job.audio_duration_s)),
      // A live session's "processing" is its length at the speaker's pace: not a speed.
      el("td", { className: "num" }, job.mode === "stream" ? "live" : duration(job.processing_s)),
      el("td", { className: "num" }, realTimeFactor(job)),
      el("td", {}, el("button", { type: "button", className: "small", title: hint, onclick: (event) => {
        event.stopPropagation();
        remove(job);
      } }, action)));
  }

  async function load() {
    clearTimeout(refreshTimer);
    refreshTimer = null;
    try {
      const page = await listJobs({ status: status.value, limit: PAGE_SIZE, offset });
      showNotice(errorNode, "");
      if (page.jobs.some((job) => ACTIVE.has(job.status))) {
        refreshTimer = setTimeout(() => { if (!tab.hidden) load(); }, ACTIVE_REFRESH_MS);
      }
      body.replaceChildren(...page.jobs.map(row));
      if (!page.jobs.length) body.append(el("tr", {}, el("td", { colspan: 8, className: "muted" }, "No jobs.")));
      range.textContent = page.total ? `${offset + 1}–${offset + page.jobs.length} of ${page.total}` : "";
      previous.disabled = offset === 0;
      next.disabled = !page.next;
    } catch (error) {
      showNotice(errorNode, error.message);
    }
  }

  status.addEventListener("change", () => {
    offset = 0;
    load();
  });
  document.getElementById("jobs-refresh").addEventListener("click", load);
  previous.addEventListener("click", () => {
    offset = Math.max(0, offset - PAGE_SIZE);
    load();
  });
  next.addEventListener("click", () => {
    offset += PAGE_SIZE;
    load();
  });
  return { load };
}
