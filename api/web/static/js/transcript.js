// A finished job, shown: its sentences with timestamps and speakers, a player that jumps to a
// sentence when it is clicked, and a download button for every transcript format.

import { transcriptBlob } from "./api.js";
import { el, showNotice, timestamp } from "./dom.js";

export const FORMATS = ["txt", "srt", "vtt", "json", "spk"];

// Numbered from 1 for people, as the API's spk/srt renderings do; the enrolled name first.
function speakerLabel(segment) {
  if (segment.speaker_name) return segment.speaker_name;
  return segment.speaker === null || segment.speaker === undefined ? "" : `Speaker ${segment.speaker + 1}`;
}

function baseName(job) {
  const name = (job.filename || job.id).replace(/\.[^.]+$/, "");
  return name || job.id;
}

// Fetched (not a plain link) because a server with keys needs the Authorization header.
async function download(job, format, errorNode) {
  try {
    const blob = await transcriptBlob(job.id, format);
    const url = URL.createObjectURL(blob);
    const link = el("a", { href: url, download: `${baseName(job)}.${format}` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    showNotice(errorNode, "");
  } catch (error) {
    showNotice(errorNode, error.message);
  }
}

function downloads(job) {
  const errorNode = el("div", { className: "notice error", hidden: true });
  const buttons = FORMATS.map((format) =>
    el("button", { type: "button", className: "small", "data-format": format,
                   onclick: () => download(job, format, errorNode) }, format.toUpperCase()));
  return el("div", { className: "downloads" }, el("span", { className: "muted" }, "Download"), buttons, errorNode);
}

// `audioUrl`: the local file (an object URL) or the live recording; none for other jobs,
// since the API serves transcripts, not the audio.
export function renderTranscript(job, audioUrl) {
  const segments = (job.result && job.result.segments) || [];
  const player = audioUrl ? el("audio", { controls: true, src: audioUrl, preload: "metadata" }) : null;
  const rows = segments.map((segment) => {
    const speaker = speakerLabel(segment);
    const row = el("li", { className: "segment", "data-start": segment.start, title: player ? "Play from here" : null },
      el("span", { className: "time" }, `${timestamp(segment.start)} – ${timestamp(segment.end)}`),
      speaker ? el("span", { className: `speaker s${(segment.speaker || 0) % 6}` }, speaker) : null,
      el("span", { className: "text" }, segment.text));
    if (player) {
      row.classList.add("playable");
      row.addEventListener("click", () => {
        player.currentTime = segment.start;
        player.play().catch(() => {});
      });
    }
    return row;
  });
  if (player) {
    // Follow the playback: the sentence being heard is marked.
    player.addEventListener("timeupdate", () => {
      const now = player.currentTime;
      rows.forEach((row, index) => {
        const segment = segments[index];
        row.classList.toggle("current", now >= segment.start && now < segment.end);
      });
    });
  }
  const body = rows.length
    ? el("ol", { className: "segments" }, rows)
    : el("p", { className: "muted" }, job.result && job.result.text ? job.result.text : "No speech was found.");
  return el("div", { className: "transcript" }, player, body, downloads(job));
}
