// The voicebot playground: record (MediaRecorder, Opus in WebM) or pick a file, post it,
// and show the reply as it streams back (server-sent events read from the POST's body).
"use strict";

(function () {
  const config = JSON.parse(document.getElementById("playground-config").textContent);
  const T = config.texts;
  const list = document.getElementById("conversation");
  const status = document.getElementById("status");
  const recordButton = document.getElementById("record");
  const fileInput = document.getElementById("file");
  const modelSelect = document.getElementById("model");
  let recorder = null;
  let busy = false;

  function say(text) {
    status.textContent = text || "";
  }

  function post(path, body, type) {
    return fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": type, "X-Playground-Token": config.token },
      body: body,
    });
  }

  function postJson(path, data) {
    return post(path, JSON.stringify(data), "application/json");
  }

  async function errorOf(response) {
    try {
      const data = await response.json();
      return data.error || data.message || T.connectionLost;
    } catch (e) {
      return response.status === 403 ? T.sessionEnded : T.connectionLost;
    }
  }

  // --- the conversation ----------------------------------------------------------------

  function bubble(kind, who) {
    const item = document.createElement("li");
    item.className = "message " + kind;
    const name = document.createElement("span");
    name.className = "who";
    name.textContent = who;
    const body = document.createElement("div");
    body.className = "body";
    item.append(name, body);
    list.append(item);
    item.scrollIntoView({ block: "end" });
    return item;
  }

  // Markdown lite: paragraphs, and a paragraph in _underscores_ (the notes) in italics.
  function render(item, text) {
    const body = item.querySelector(".body");
    body.replaceChildren();
    for (const part of text.split(/\n{2,}/)) {
      const p = document.createElement("p");
      const note = /^_([\s\S]+)_$/.exec(part.trim());
      if (note) {
        const em = document.createElement("em");
        em.textContent = note[1];
        p.append(em);
      } else {
        p.textContent = part;
      }
      body.append(p);
    }
  }

  function errorBubble(text) {
    const item = bubble("error", T.bot);
    item.setAttribute("role", "alert");
    render(item, text);
  }

  function audioBubble(kind, who, src, label) {
    const item = bubble(kind, who);
    const audio = document.createElement("audio");
    audio.controls = true;
    audio.src = src;
    audio.setAttribute("aria-label", label);
    item.querySelector(".body").append(audio);
    return item;
  }

  function transcriptButton(item, button) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "transcript";
    b.textContent = button.label;
    b.addEventListener("click", async function () {
      b.disabled = true;
      try {
        const response = await postJson("/playground/transcript", { value: button.value });
        const data = await response.json();
        if (data.text) {
          render(bubble("bot follow", T.bot), data.text);
        } else if (data.message) {
          if (data.ok) say(data.message);
          else errorBubble(data.message);
        }
      } catch (e) {
        errorBubble(T.connectionLost);
      } finally {
        b.disabled = false;
      }
    });
    item.append(b);
  }

  // --- one turn ------------------------------------------------------------------------

  function handle(state, name, data) {
    if (name === "working") {
      say(T.working);
    } else if (name === "progress") {
      if (!state.current) state.current = bubble("bot", T.bot);
      state.current.dataset.state = "streaming";
      render(state.current, data.text);
    } else if (name === "final") {
      if (!state.current) state.current = bubble("bot", T.bot);
      render(state.current, data.text);
      state.current.dataset.state = "final";
      for (const button of data.buttons || []) {
        if (button.action === "transcript") transcriptButton(state.current, button);
      }
      state.current = null;
      say("");
    } else if (name === "follow") {
      render(bubble("bot follow", T.bot), data.text);
    } else if (name === "voice") {
      audioBubble("bot voice", T.bot + " · " + T.voiceReply, data.src, T.voiceReply);
    } else if (name === "notice") {
      errorBubble(data.text);
      say("");
    } else if (name === "discard") {
      if (state.current) state.current.remove();
      state.current = null;
    } else if (name === "done") {
      state.done = true;
      say("");
    }
  }

  async function readStream(response) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    const state = { current: null, done: false };
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      // As per the SSE format: events end with a blank line; "event:" and "data:" fields.
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let name = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) name = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
        }
        handle(state, name, data.length ? JSON.parse(data.join("\n")) : {});
      }
    }
    if (!state.done) errorBubble(T.connectionLost);
  }

  async function send(blob, type) {
    if (blob.size > config.maxBytes) {
      errorBubble(T.tooLarge);
      return;
    }
    busy = true;
    recordButton.disabled = true;
    audioBubble("you", T.you, URL.createObjectURL(blob), T.voiceMessage);
    say(T.sending);
    try {
      const response = await post("/playground/turn", blob, type);
      if (!response.ok) {
        errorBubble(await errorOf(response));
        say("");
        return;
      }
      await readStream(response);
    } catch (e) {
      errorBubble(T.connectionLost);
      say("");
    } finally {
      busy = false;
      recordButton.disabled = false;
    }
  }

  // --- recording -----------------------------------------------------------------------

  async function startRecording() {
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (e) {
      errorBubble(T.noMicrophone);
      return;
    }
    const wanted = "audio/webm;codecs=opus";
    const options = MediaRecorder.isTypeSupported(wanted) ? { mimeType: wanted } : {};
    const chunks = [];
    recorder = new MediaRecorder(stream, options);
    recorder.addEventListener("dataavailable", function (event) {
      if (event.data.size) chunks.push(event.data);
    });
    recorder.addEventListener("stop", function () {
      for (const track of stream.getTracks()) track.stop();
      const type = (recorder.mimeType || "audio/webm").split(";")[0];
      recorder = null;
      recordButton.textContent = T.record;
      recordButton.setAttribute("aria-pressed", "false");
      send(new Blob(chunks, { type: type }), type);
    });
    // How long it has recorded, shown as it goes (and kept on the button as data).
    let started = 0;
    const ticker = setInterval(function () {
      if (!started) return;
      const seconds = Math.floor((performance.now() - started) / 1000);
      recordButton.dataset.seconds = String(seconds);
      say(T.recording + " " + Math.floor(seconds / 60) + ":" + String(seconds % 60).padStart(2, "0"));
    }, 250);
    recorder.addEventListener("start", function () {
      started = performance.now();
    });
    recorder.addEventListener("stop", function () {
      clearInterval(ticker);
      delete recordButton.dataset.seconds;
    });
    recorder.start();
    recordButton.textContent = T.stop;
    recordButton.setAttribute("aria-pressed", "true");
    say(T.recording);
  }

  recordButton.addEventListener("click", function () {
    if (recorder) recorder.stop();
    else if (!busy) startRecording();
  });

  fileInput.addEventListener("change", function () {
    const file = fileInput.files[0];
    fileInput.value = "";
    if (!file || busy) return;
    const type = file.type || "application/octet-stream";
    if (!/^(audio|video)\//.test(type) && type !== "application/octet-stream" && type !== "application/ogg") {
      errorBubble(T.notAudio);
      return;
    }
    send(file, type);
  });

  document.getElementById("new").addEventListener("click", async function () {
    try {
      const response = await postJson("/playground/new", {});
      if (!response.ok) {
        errorBubble(await errorOf(response));
        return;
      }
      const data = await response.json();
      list.replaceChildren();
      say(data.message);
    } catch (e) {
      errorBubble(T.connectionLost);
    }
  });

  modelSelect.addEventListener("change", async function () {
    try {
      const response = await postJson("/playground/model", { model: modelSelect.value });
      const data = await response.json();
      if (data.model) modelSelect.value = data.model;
      if (response.ok) say(data.message);
      else errorBubble(data.message || data.error || T.connectionLost);
    } catch (e) {
      errorBubble(T.connectionLost);
    }
  });

  if (!window.MediaRecorder || !navigator.mediaDevices) {
    recordButton.disabled = true;
    say(T.noMicrophone);
  }
})();
