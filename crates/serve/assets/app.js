// The medtune page: sends the question to /v1/mcq with "stream": true and renders the server-sent
// events (probabilities, then reasoning/answer deltas, then the result). No external scripts.
"use strict";

const $ = (id) => document.getElementById(id);
const keyInput = $("api-key");
keyInput.value = localStorage.getItem("medtune-api-key") || "";

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = keyInput.value.trim();
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}

fetch("/health").then((r) => r.json()).then((h) => {
  $("model-name").textContent = h.model ? "model: " + h.model : "";
}).catch(() => {});

function drawChart(probabilities, chosen) {
  const chart = $("chart");
  chart.replaceChildren();
  for (const [letter, p] of Object.entries(probabilities)) {
    const row = document.createElement("div");
    row.className = "bar-row" + (letter === chosen ? " chosen" : "");
    row.dataset.letter = letter;
    const name = document.createElement("span");
    name.textContent = letter;
    const track = document.createElement("div");
    track.className = "bar-track";
    const bar = document.createElement("div");
    bar.className = "bar";
    bar.style.width = (100 * p).toFixed(1) + "%";
    track.appendChild(bar);
    const value = document.createElement("span");
    value.className = "value";
    value.textContent = (100 * p).toFixed(1) + "%";
    row.append(name, track, value);
    chart.appendChild(row);
  }
}

function setStatus(text, isError) {
  const s = $("status");
  s.textContent = text;
  s.className = isError ? "error" : "muted";
}

async function ask(event) {
  event.preventDefault();
  localStorage.setItem("medtune-api-key", keyInput.value.trim());
  const options = {};
  for (const input of document.querySelectorAll("#options input")) {
    if (input.value.trim()) options[input.dataset.letter] = input.value.trim();
  }
  const body = {
    question: $("question").value,
    options,
    thinking: $("thinking").checked,
    stream: true,
  };
  $("output").hidden = false;
  $("answer").textContent = "";
  $("reasoning").textContent = "";
  $("answer-letter").textContent = "";
  $("chart").replaceChildren();
  $("submit").disabled = true;
  setStatus("waiting for the model…");
  try {
    const response = await fetch("/v1/mcq", { method: "POST", headers: headers(), body: JSON.stringify(body) });
    if (!response.ok) {
      let message = response.status + " " + response.statusText;
      try { message = (await response.json()).error.message; } catch (_) {}
      setStatus(message, true);
      return;
    }
    await readEvents(response);
  } catch (e) {
    setStatus(String(e), true);
  } finally {
    $("submit").disabled = false;
  }
}

// Reads `data: ...` lines of a server-sent event stream.
async function readEvents(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
      if (data && data !== "[DONE]") handle(JSON.parse(data));
    }
  }
}

function handle(event) {
  if (event.type === "probabilities") {
    drawChart(event.probabilities, null);
    setStatus("answering…");
  } else if (event.type === "delta") {
    $("reasoning").textContent += event.reasoning;
    $("answer").textContent += event.content;
  } else if (event.type === "result") {
    $("answer-letter").textContent = event.answer;
    $("answer").textContent = event.content ||
      "(the reply had no text; the letter is the most probable option)";
    if (event.reasoning) $("reasoning").textContent = event.reasoning;
    drawChart(event.probabilities, event.answer);
    setStatus("done (" + event.usage.completion_tokens + " tokens, answer from " + event.answer_source + ")");
  } else if (event.type === "error") {
    setStatus(event.error.message, true);
  }
}

$("ask-form").addEventListener("submit", ask);
