// The book's search: the prebuilt index (search-index.js, one entry per page
// section: title, section heading, link and text) filtered in the browser.
// No server and no fetch, so it works from the file system.  Without
// JavaScript the search page points to genindex.html.
(function () {
  "use strict";

  function words(text) {
    return text.toLowerCase().split(/[^a-z0-9_]+/).filter(function (w) { return w.length > 0; });
  }

  // Every section that holds every word (in its heading, its text, or its
  // page's title), best first.  A section scores for the words of its own
  // heading (5) and text (1 each, and 1 more for each further use, up to
  // 3); the page's title scores 10, but once per page: on the page's first
  // entry (its h1), not on each of its sections.  A section none of whose
  // words are its own is left out: the page's first entry stands for it.
  function search(query) {
    var terms = words(query);
    var index = window.SEARCH_INDEX || [];
    if (!terms.length) { return []; }
    var found = [];
    index.forEach(function (entry) {
      var top = !entry.h;
      var title = entry.t.toLowerCase();
      var heading = (entry.h || "").toLowerCase();
      var text = entry.x.toLowerCase();
      var score = 0, own = 0;
      for (var i = 0; i < terms.length; i++) {
        var t = terms[i];
        var inTitle = title.indexOf(t) >= 0;
        var inHeading = heading.indexOf(t) >= 0;
        var uses = count(text, t);
        if (!inTitle && !inHeading && !uses) { return; }
        if (inHeading || uses) { own += 1; }
        score += (top && inTitle ? 10 : 0) + (inHeading ? 5 : 0) + (uses ? Math.min(uses, 3) : 0);
      }
      if (!own && !top) { return; }
      found.push({entry: entry, score: score});
    });
    found.sort(function (a, b) { return b.score - a.score || a.entry.u.localeCompare(b.entry.u); });
    return found.map(function (f) { return f.entry; });
  }

  function count(text, word) {
    var n = 0, at = text.indexOf(word);
    while (at >= 0 && n < 3) { n += 1; at = text.indexOf(word, at + word.length); }
    return n;
  }

  function snippet(entry, query) {
    var text = entry.x, lower = text.toLowerCase();
    var first = words(query)[0] || "";
    var at = Math.max(0, lower.indexOf(first) - 60);
    return (at > 0 ? "\u2026" : "") + text.slice(at, at + 160) + (at + 160 < text.length ? "\u2026" : "");
  }

  function item(entry, query) {
    var li = document.createElement("li");
    var a = document.createElement("a");
    a.href = entry.u;
    a.textContent = entry.t + (entry.h ? " \u203a " + entry.h : "");
    var p = document.createElement("span");
    p.className = "snippet";
    p.textContent = snippet(entry, query);
    li.appendChild(a);
    li.appendChild(p);
    return li;
  }

  function show(list, results, query) {
    list.textContent = "";
    results.forEach(function (entry) { list.appendChild(item(entry, query)); });
  }

  function boxSearch() {
    var box = document.getElementById("search-box");
    var panel = document.getElementById("search-results");
    if (!box || !panel) { return; }
    box.addEventListener("input", function () {
      var query = box.value.trim();
      var results = search(query);
      panel.textContent = "";
      if (!query) { panel.hidden = true; return; }
      var list = document.createElement("ol");
      show(list, results.slice(0, 12), query);
      var more = document.createElement("p");
      more.className = "search-more";
      more.textContent = results.length > 12 ? results.length + " found; Enter for all of them"
        : results.length ? results.length + " found" : "nothing found";
      panel.appendChild(list);
      panel.appendChild(more);
      panel.hidden = false;
    });
    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape") { panel.hidden = true; }
    });
  }

  function pageSearch() {
    var list = document.getElementById("search-page-results");
    if (!list) { return; }
    var query = new URLSearchParams(window.location.search).get("q") || "";
    var box = document.getElementById("search-box");
    if (box) { box.value = query; }
    var status = document.getElementById("search-status");
    var results = search(query);
    show(list, results, query);
    if (query) {
      status.textContent = results.length + " result" + (results.length === 1 ? "" : "s") + " for \u201c" + query + "\u201d";
    }
  }

  document.addEventListener("DOMContentLoaded", function () { boxSearch(); pageSearch(); });
  window.dirtyLadderSearch = search;
})();
