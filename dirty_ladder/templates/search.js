// The book's search: the prebuilt index (search-index.js, one entry per page
// section: title, section heading, link and text) filtered in the browser.
// No server and no fetch, so it works from the file system.  Without
// JavaScript the search page points to genindex.html.
(function () {
  "use strict";

  function words(text) {
    return text.toLowerCase().split(/[^a-z0-9_]+/).filter(function (w) { return w.length > 0; });
  }

  function search(query) {
    var terms = words(query);
    var index = window.SEARCH_INDEX || [];
    if (!terms.length) { return []; }
    var found = [];
    index.forEach(function (entry) {
      var title = (entry.t + " " + (entry.h || "")).toLowerCase();
      var text = entry.x.toLowerCase();
      var score = 0;
      for (var i = 0; i < terms.length; i++) {
        var inTitle = title.indexOf(terms[i]) >= 0;
        var inText = text.indexOf(terms[i]) >= 0;
        if (!inTitle && !inText) { return; }
        score += (inTitle ? 10 : 0) + (inText ? 1 : 0);
      }
      found.push({entry: entry, score: score});
    });
    found.sort(function (a, b) { return b.score - a.score || a.entry.u.localeCompare(b.entry.u); });
    return found.slice(0, 30).map(function (f) { return f.entry; });
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
      more.textContent = results.length ? results.length + " found; Enter for the full list" : "nothing found";
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
