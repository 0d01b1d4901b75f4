// Tether feedback: keyboard shortcuts and small helpers for the task pages.
// Everything also works by mouse; the server validates every answer again.
"use strict";

(function () {
  const form = document.getElementById("task-form");

  function typing(el) {
    return el && (el.tagName === "INPUT" && el.type === "text" || el.tagName === "TEXTAREA" ||
                  el.tagName === "SELECT" || el.isContentEditable);
  }

  // A form is submitted once: the button is disabled and the submission id in the
  // form makes a retried request a duplicate that the server stores once.
  function submitOnce(f) {
    if (f.dataset.sent) return;
    if (f.reportValidity && !f.reportValidity()) return;
    f.dataset.sent = "1";
    f.querySelectorAll("button[type=submit]").forEach((b) => { b.disabled = true; });
    HTMLFormElement.prototype.submit.call(f);  // a control named "submit" cannot shadow it
  }

  // Buttons with data-set/data-value set a hidden field; data-key gives them a key.
  function choose(btn) {
    const input = document.getElementById(btn.dataset.set);
    input.value = btn.dataset.value;
    form.querySelectorAll(`[data-set="${btn.dataset.set}"]`).forEach((b) => {
      b.classList.toggle("selected", b === btn);
      b.setAttribute("aria-pressed", b === btn ? "true" : "false");
    });
    const box = document.querySelector(`[data-choice="${btn.dataset.value}"]`);
    document.querySelectorAll("[data-choice]").forEach((d) => d.classList.toggle("selected", d === box));
  }

  function ready() {
    if (!form) return true;
    const t = form.dataset.task;
    if (t === "pairwise") return document.getElementById("choice").value !== "";
    if (t === "thumbs" || t === "audit") return document.getElementById("label").value !== "";
    if (t === "likert") {
      return [...form.querySelectorAll(".likert-row")].every(
        (row) => row.querySelector("input:checked"));
    }
    return true;
  }

  // ---------------------------------------------------------------- ranking
  const ranking = [];
  function showRanking() {
    const n = Number(form.dataset.count);
    document.getElementById("ranking").value = ranking.join(",");
    const boxes = [...form.querySelectorAll(".rankable")];
    boxes.forEach((b) => {
      const place = ranking.indexOf(Number(b.dataset.position));
      b.querySelector(".rank-badge").textContent = place >= 0 ? `#${place + 1}` : "";
      b.classList.toggle("selected", place >= 0);
    });
    const names = ranking.map((p) => boxes.find((b) => Number(b.dataset.position) === p).dataset.key);
    document.getElementById("rank-order").textContent = names.length ? names.join(" > ") : "(none yet)";
    return n;
  }
  function pick(position) {
    if (!ranking.includes(position)) ranking.push(position);
    const n = showRanking();
    if (ranking.length === n - 1) {  // the last one is implied
      for (let p = 0; p < n; p++) if (!ranking.includes(p)) { ranking.push(p); break; }
      showRanking();
    }
  }

  // ---------------------------------------------------------------- likert
  function likertRows() { return [...form.querySelectorAll(".likert-row")]; }
  function likertMove(step) {
    const rows = likertRows();
    const i = rows.findIndex((r) => r.classList.contains("current"));
    const j = Math.max(0, Math.min(rows.length - 1, i + step));
    rows.forEach((r, k) => r.classList.toggle("current", k === j));
  }

  // ---------------------------------------------------------------- fact-check
  function sentences() { return [...form.querySelectorAll(".sentence")]; }
  function sentenceMove(step) {
    const s = sentences();
    const i = s.findIndex((r) => r.classList.contains("current"));
    const j = Math.max(0, Math.min(s.length - 1, i + step));
    s.forEach((r, k) => r.classList.toggle("current", k === j));
  }
  function syncClaim(li) {
    const box = li.querySelector("input[type=checkbox]");
    const corr = li.querySelector(".correction");
    corr.hidden = !box.checked;
    li.classList.toggle("marked", box.checked);
    return corr;
  }

  if (form) {
    form.querySelectorAll("[data-set]").forEach((b) => b.addEventListener("click", () => choose(b)));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      if (form.dataset.task === "ranking" && ranking.length < Number(form.dataset.count)) return;
      if (!ready()) return;
      submitOnce(form);
    });
    if (form.dataset.task === "ranking") {
      form.querySelectorAll(".rankable").forEach((b) =>
        b.addEventListener("click", () => pick(Number(b.dataset.position))));
      document.getElementById("rank-undo").addEventListener("click", () => { ranking.pop(); showRanking(); });
    }
    if (form.dataset.task === "likert") {
      likertRows().forEach((row) => row.addEventListener("click", () =>
        likertRows().forEach((r) => r.classList.toggle("current", r === row))));
    }
    if (form.dataset.task === "factcheck") {
      sentences().forEach((li) => li.querySelector("input[type=checkbox]")
        .addEventListener("change", () => syncClaim(li)));
    }
  }

  const chat = document.getElementById("chat-form");
  if (chat) {
    const box = document.getElementById("message");
    box.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.ctrlKey) { e.preventDefault(); if (box.value.trim()) submitOnce(chat); }
    });
  }

  document.addEventListener("keydown", (e) => {
    if (e.altKey || e.metaKey) return;
    const active = document.activeElement;
    if (e.key === "Enter" && e.ctrlKey && form) { e.preventDefault(); if (ready()) submitOnce(form); return; }
    if (typing(active)) {
      if (e.key === "Escape") active.blur();
      return;
    }
    if (e.ctrlKey) return;
    const next = document.querySelector("[data-next]");
    if (next && e.key === "Enter") { e.preventDefault(); window.location = next.dataset.next; return; }
    if (!form) return;
    const t = form.dataset.task;
    const key = e.key.toLowerCase();
    if (t === "redteam" && key === "f") {  // mark the latest model reply, then pick its kind
      const marks = [...form.querySelectorAll(".msg.assistant .mark")];
      if (marks.length) {
        const last = marks[marks.length - 1];
        const box = last.querySelector("input[type=checkbox]");
        box.checked = !box.checked;
        if (box.checked) last.querySelector("select").focus();
      }
      e.preventDefault();
      return;
    }
    if (e.key === "Enter") {
      e.preventDefault();
      form.requestSubmit ? form.requestSubmit() : submitOnce(form);
      return;
    }
    if (t === "likert" && /^[1-5]$/.test(e.key)) {
      const row = likertRows().find((r) => r.classList.contains("current"));
      row.querySelector(`input[value="${e.key}"]`).checked = true;
      likertMove(1);
      e.preventDefault();
      return;
    }
    if (t === "likert" && (e.key === "ArrowDown" || e.key === "ArrowUp")) {
      likertMove(e.key === "ArrowDown" ? 1 : -1); e.preventDefault(); return;
    }
    if (t === "ranking") {
      if (e.key === "Backspace") { ranking.pop(); showRanking(); e.preventDefault(); return; }
      const box = form.querySelector(`.rankable[data-key="${e.key}"]`);
      if (box) { pick(Number(box.dataset.position)); e.preventDefault(); }
      return;
    }
    if (t === "factcheck") {
      if (key === "j" || key === "k") { sentenceMove(key === "j" ? 1 : -1); e.preventDefault(); return; }
      if (key === "x" || e.key === " ") {
        const li = sentences().find((r) => r.classList.contains("current"));
        const box = li.querySelector("input[type=checkbox]");
        box.checked = !box.checked;
        const corr = syncClaim(li);
        if (box.checked) corr.focus();
        e.preventDefault();
      }
      return;
    }
    const focusTarget = form.querySelector(`[data-focus-key="${key}"]`);
    if (focusTarget) { focusTarget.focus(); e.preventDefault(); return; }
    const target = form.querySelector(`[data-key="${key}"]`);
    if (target) {
      if (target.dataset.set) choose(target); else target.click();
      e.preventDefault();
    }
  });
})();
