// Keeps a run page live: applies events from the SSE stream (htmx's SSE extension owns the
// connection), falls back to polling the events endpoint while the stream is down, and
// re-fetches what it missed whenever the stream (re)opens. Every update is idempotent: events
// apply strictly in the run's seq order (a repeat is ignored, a gap is fetched), and the
// status is replaced whole.
(function () {
  "use strict";
  var root = document.querySelector("[data-run-live]");
  if (!root) return;

  var lastId = parseInt(root.dataset.lastEventId || "0", 10);
  var lastSeq = parseInt(root.dataset.lastEventSeq || "0", 10);
  var streamUrl = root.dataset.streamUrl;
  var eventsUrl = root.dataset.eventsUrl;
  var terminal = root.dataset.terminal === "true";
  var source = null;
  var pollTimer = null;
  var POLL_MS = 3000;
  // While a run goes on and the stream says nothing for this long, read the run once: an
  // event lost between the stream's replay and its live subscription must not leave the
  // page on a state the run has left.
  var QUIET_MS = 5000;
  var lastHeard = Date.now();
  var FEED_MAX = 2000;
  var INTERRUPTED = "Live updates interrupted; refreshing every few seconds…";

  function q(role) { return document.querySelector('[data-role="' + role + '"]'); }

  function setLiveState(text) {
    var el = q("live-state");
    if (el) el.textContent = text;
  }

  // Numbers as the server writes them (runs/numbers.py): 11,000.
  function number(n) { return Number(n || 0).toLocaleString("en-US", { maximumFractionDigits: 0 }); }

  // runs/numbers.py time_left, in the same words.
  function timeLeft(seconds) {
    if (seconds < 60) return "under a minute left";
    var minutes = Math.round(seconds / 60);
    if (minutes < 60) return "about " + minutes + " min left";
    var hours = Math.floor(minutes / 60), rest = minutes % 60;
    return "about " + hours + " h" + (rest ? " " + rest + " min" : "") + " left";
  }

  function setBadge(badge, run) {
    badge.className = "badge badge-" + run.status;
    badge.textContent = run.phase || run.status.charAt(0).toUpperCase() + run.status.slice(1);
  }

  function updateStatus(run) {
    // A terminal state is final: a catch-up answer computed before the run ended may arrive
    // after the stream's terminal event and must not put the page back to work.
    if (terminal && !run.terminal) return;
    var badge = q("badge");
    if (badge) setBadge(badge, run);
    // The summary bar, when it shows this run: its phase, not the state at page load.
    var summaryBadge = document.querySelector('[data-summary="outcome"][data-run-id="' + run.id + '"]');
    if (summaryBadge) setBadge(summaryBadge, run);
    var summaryWhen = document.querySelector('[data-summary="when"][data-run-id="' + run.id + '"]');
    if (summaryWhen && run.startedAt && !run.terminal) {
      summaryWhen.textContent = "started " + new Date(run.startedAt).toTimeString().slice(0, 8);
    }
    Object.keys(run.counts).forEach(function (name) {
      var el = document.querySelector('[data-count="' + name + '"]');
      if (el) el.textContent = number(run.counts[name]);
    });
    document.querySelectorAll("[data-part][data-key]").forEach(function (el) {
      var part = run[el.dataset.part] || {};
      el.textContent = number(part[el.dataset.key]);
    });
    var bar = q("progress-bar"), progress = q("progress"), text = q("progress-text");
    // While sources are still listed the total grows: no value rather than a jumping one.
    var open = !run.terminal && !!document.querySelector(
      '[data-run-listing] tr[data-state="waiting"], [data-run-listing] tr[data-state="listing"]');
    var known = run.totalJobs && !open;
    var pct = known ? Math.min(100, Math.round((100 * run.itemsDone) / run.totalJobs)) : 0;
    if (bar) bar.setAttribute("width", pct);
    if (progress) {
      if (known) {
        progress.setAttribute("aria-valuemin", 0);
        progress.setAttribute("aria-valuenow", run.itemsDone);
        progress.setAttribute("aria-valuemax", run.totalJobs);
        progress.classList.remove("progress-indeterminate");
      } else {
        // No total yet: an indeterminate bar has no value at all.
        progress.removeAttribute("aria-valuemin");
        progress.removeAttribute("aria-valuenow");
        progress.removeAttribute("aria-valuemax");
        progress.classList.add("progress-indeterminate");
      }
      progress.hidden = run.terminal && !run.totalJobs;
    }
    if (text) {
      var rate = !run.terminal && run.ratePerSecond ? " · " + number(run.ratePerSecond) + "/s" : "";
      var eta = known && run.etaSeconds !== null && run.etaSeconds !== undefined ? " · " + timeLeft(run.etaSeconds) : "";
      var of = run.totalJobs ? " of " + number(run.totalJobs) + (open ? " listed so far" : "") : "";
      text.textContent = number(run.itemsDone) + of + " done" + rate + eta;
    }
    var error = q("error");
    if (error) {
      error.textContent = run.errorMessage || "";
      error.hidden = !run.errorMessage;
    }
    var abort = q("abort");
    if (abort) {
      abort.hidden = run.terminal;
      var button = abort.querySelector("button");
      if (button && run.abortRequested && !run.terminal) {
        button.disabled = true;
        button.textContent = "Aborting…";
      }
    }
    setTime("started", run.startedAt);
    setTime("finished", run.finishedAt);
    if (run.terminal) finish();
  }

  function setTime(role, iso) {
    var span = q(role);
    if (!span || !iso) return;
    var time = span.querySelector("time");
    if (time && time.dateTime !== iso) {
      time.dateTime = iso;
      time.textContent = new Date(iso).toTimeString().slice(0, 8);
    }
    span.hidden = false;
  }

  function appendFeed(envelope) {
    var feed = document.getElementById("run-feed");
    if (!feed || feed.querySelector('[data-event-id="' + envelope.id + '"]')) return;
    var li = document.createElement("li");
    li.dataset.eventId = envelope.id;
    li.className = "feed-item type-" + envelope.type.replace(/[^a-z0-9]+/gi, "-");
    var time = document.createElement("time");
    time.dateTime = envelope.createdAt;
    time.textContent = new Date(envelope.createdAt).toTimeString().slice(0, 8);
    var code = document.createElement("code");
    code.textContent = envelope.type;
    li.appendChild(time);
    li.appendChild(document.createTextNode(" "));
    li.appendChild(code);
    li.appendChild(document.createTextNode(" " + envelope.message));
    // Follow new items, unless the reader scrolled up to read older ones.
    var atBottom = feed.scrollHeight - feed.scrollTop - feed.clientHeight < 40;
    feed.appendChild(li);
    // A very long run must not grow the page without bound: keep the newest items.
    while (feed.children.length > FEED_MAX) feed.removeChild(feed.firstElementChild);
    if (atBottom) feed.scrollTop = feed.scrollHeight;
  }

  // Applies one event; false when one before it is missing (then fetched in order instead).
  // `later` says more of a batch follow: the status is each event's whole snapshot, so only
  // the last one's needs drawing.
  function apply(envelope, later) {
    lastHeard = Date.now();
    if (envelope.seq <= lastSeq) return true;  // seen already
    if (envelope.seq !== lastSeq + 1) {
      catchUp();
      return false;
    }
    lastSeq = envelope.seq;
    lastId = envelope.id;
    root.dataset.lastEventId = String(lastId);
    appendFeed(envelope);
    updateListing(envelope);
    if (!later) {
      // htmx's SSE extension reconnects to this attribute's URL, without Last-Event-ID.
      if (!terminal) root.setAttribute("sse-connect", streamUrl + "?batch=1&after=" + lastId);
      updateStatus(envelope.run);
    }
    return true;
  }

  // A `batch` event: the envelopes of several events in seq order (a burst, a replay).
  function applyBatch(envelopes) {
    for (var i = 0; i < envelopes.length; i++) {
      if (!apply(envelopes[i], i < envelopes.length - 1)) return;
    }
  }

  // The listing rows (the stepper's run pages): a source's row ends with its source event;
  // the first one not done yet is being listed, its count what the done ones did not list.
  var listingWords = null;
  function updateListing(envelope) {
    var table = document.querySelector("[data-run-listing]");
    if (!table) return;
    if (!listingWords) {
      var words = document.getElementById("listing-states");
      listingWords = words ? JSON.parse(words.textContent) : {};
    }
    var payload = envelope.payload || {}, run = envelope.run || {};
    function setRow(row, state, count, seconds, error) {
      row.dataset.state = state;
      var cell = row.querySelector('[data-role="listing-state"]');
      if (cell) cell.textContent = (listingWords[state] || state) + (error ? ": " + error : "");
      if (count !== null) row.querySelector('[data-role="listing-count"]').textContent = number(count);
      if (seconds !== null) row.querySelector('[data-role="listing-time"]').textContent = Number(seconds).toFixed(1) + " s";
    }
    if ((envelope.type === "source.fetched" || envelope.type === "source.failed") && payload.sourceId) {
      var done = table.querySelector('tr[data-source-id="' + payload.sourceId + '"]');
      if (done) {
        done.dataset.listed = payload.listed || 0;
        setRow(done, payload.error ? "failed" : "listed", payload.listed || 0, payload.seconds, payload.error);
      }
    }
    var outcomes = run.outcomes || {}, read = 0, doneListed = 0;
    Object.keys(outcomes).forEach(function (name) { if (name !== "expired") read += outcomes[name]; });
    var rows = table.querySelectorAll("tr[data-source-id]"), current = null;
    rows.forEach(function (row) {
      var state = row.dataset.state;
      if (state === "listed" || state === "failed") doneListed += parseInt(row.dataset.listed || "0", 10);
      else if (run.terminal) setRow(row, "unread", null, null, "");
      else if (!current && run.status !== "pending") current = row;
      else if (state === "listing") setRow(row, "waiting", 0, null, "");
    });
    if (current) setRow(current, "listing", Math.max(0, read - doneListed), null, "");
  }

  function catchUp() {
    return fetch(eventsUrl + "?after=" + lastId, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (body) {
        body.events.forEach(function (envelope) { apply(envelope, true); });
        if (!terminal && lastId) root.setAttribute("sse-connect", streamUrl + "?batch=1&after=" + lastId);
        updateStatus(body.run);
        if (body.more) return catchUp();
      })
      .catch(function () { /* the next poll or stream event will try again */ });
  }

  function startPolling() {
    if (pollTimer || terminal) return;
    setLiveState(INTERRUPTED);
    pollTimer = window.setInterval(catchUp, POLL_MS);
    catchUp();
  }

  function stopPolling() {
    if (pollTimer) window.clearInterval(pollTimer);
    pollTimer = null;
  }

  function finish() {
    if (terminal) return;
    terminal = true;
    stopPolling();
    root.removeAttribute("sse-connect");
    if (source) source.close();
    setLiveState("");
    // Pages that show a run's results (the stepper's Preview and Ingest) load them now.
    document.body.dispatchEvent(new CustomEvent("run-terminal", { detail: { runId: root.dataset.runId } }));
  }

  root.addEventListener("htmx:sseOpen", function (evt) {
    source = evt.detail.source;
    source.onmessage = function (message) {
      try { apply(JSON.parse(message.data)); } catch (err) { /* ignore a malformed event */ }
    };
    source.addEventListener("batch", function (message) {
      try { applyBatch(JSON.parse(message.data)); } catch (err) { /* ignore a malformed event */ }
    });
    stopPolling();
    setLiveState("Live");
    catchUp();
  });
  root.addEventListener("htmx:sseError", function () { startPolling(); });

  // The abort response's status fragment was rendered when the server handled the request;
  // events applied while it travelled may be newer (even the terminal one, after which no
  // more arrive), so re-read the current state once it is swapped in.
  root.addEventListener("htmx:afterSwap", function (evt) {
    if (evt.target && evt.target.id === "run-status") {
      // The swapped-in fragment has an empty live-state label: say again what holds.
      if (pollTimer) setLiveState(INTERRUPTED);
      else setLiveState(source && !terminal ? "Live" : "");
      catchUp();
    }
  });
  window.setInterval(function () {
    if (terminal || pollTimer || Date.now() - lastHeard < QUIET_MS) return;
    lastHeard = Date.now();
    catchUp();
  }, QUIET_MS);
  // A browser without EventSource polls.
  if (!terminal && typeof window.EventSource === "undefined") startPolling();
  // If the stream has not opened within a few seconds, poll until it does.
  window.setTimeout(function () { if (!source && !terminal) startPolling(); }, 5000);
})();
