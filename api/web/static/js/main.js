// Starts the page: the tabs, the API key field and the three tabs' own modules. The server
// puts what it accepts (languages, speaker labels, keys, streaming) in <body data-config>.

import { apiKey, onUnauthorized, setApiKey } from "./api.js";
import { setupJobs } from "./jobs.js";
import { setupLive } from "./live.js";
import { setupUpload } from "./upload.js";

const config = JSON.parse(document.body.dataset.config);

function setupKey() {
  const form = document.getElementById("key-form");
  const input = document.getElementById("api-key");
  const notice = document.getElementById("key-notice");
  input.value = apiKey();
  form.hidden = !config.auth_required && !apiKey();
  notice.hidden = !config.auth_required || Boolean(apiKey());
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    setApiKey(input.value.trim());
    notice.hidden = true;
  });
  onUnauthorized(() => {
    form.hidden = false;
    notice.hidden = false;
    input.focus();
  });
}

function setupTabs(onShow) {
  const buttons = [...document.querySelectorAll("[data-tab]")];
  const show = (name) => {
    for (const button of buttons) {
      const selected = button.dataset.tab === name;
      button.setAttribute("aria-selected", String(selected));
      document.getElementById(`tab-${button.dataset.tab}`).hidden = !selected;
    }
    if (location.hash.slice(1) !== name) history.replaceState(null, "", `#${name}`);
    onShow(name);
  };
  buttons.forEach((button) => button.addEventListener("click", () => show(button.dataset.tab)));
  const initial = location.hash.slice(1);
  show(buttons.some((button) => button.dataset.tab === initial) ? initial : "upload");
}

setupKey();
const upload = setupUpload(config);
setupLive(config);
const jobs = setupJobs();
setupTabs((name) => {
  if (name === "jobs") jobs.load();
  if (name === "upload") upload.load();  // sets made since (elsewhere, or with a new key)
});
