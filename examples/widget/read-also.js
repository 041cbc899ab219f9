/*
 * recommender "read also" block: related stories under an article, from the HTTP API.
 *
 * Paste under the article (see snippet.html):
 *
 *   <div data-recommender-api="https://recommender.example.org" data-k="5"></div>
 *   <script src="/read-also.js" defer></script>
 *
 * The article id comes from the element's data-article-id, else from
 * <meta name="recommender:article-id" content="...">, else from <link rel="canonical">
 * (the id `recommender index` gives an HTML page). Optional attributes:
 *   data-k            how many links (default 5)
 *   data-heading      the block's heading (default "Read also")
 *   data-lang         only stories in these languages, comma-separated (e.g. "ar,en")
 *   data-link-template  link to "/articles/{id}.html" style pages instead of each story's url
 *   data-timeout-ms   give up after this long (default 2000)
 *   data-other-languages-label  label of the line linking the same story in other
 *                     languages (default "Also in:")
 *   data-events       "off": report nothing and store no reader key
 *   data-reader-key   the site's own reader key (a login or cookie id); default: a random
 *                     key kept in this site's localStorage (a first-party cookie without it)
 * What readers do is reported to the API's POST /v1/events (navigator.sendBeacon, text/plain,
 * no preflight): a read of this article when the block loads, one impression when the block
 * is actually seen (half of it in view, once per page view), a click with its position when a
 * link is followed. `recommender train-ranker` learns from them.
 * On any error or timeout the block stays empty and hidden: the page never shows a broken box.
 * The API must allow the page's origin: `recommender serve --http-port 8080 --cors-origin
 * https://www.example.org`.
 */
(function () {
  "use strict";

  var STYLE_ID = "read-also-style";
  var CSS =
    ".read-also{margin:2em 0;padding:1em 1.2em;border-top:3px solid #b3261e;background:#faf7f5;" +
    "font:15px/1.45 system-ui,sans-serif}" +
    ".read-also h2{margin:0 0 .6em;font-size:1.05em;text-transform:uppercase;letter-spacing:.04em}" +
    ".read-also ul{margin:0;padding:0;list-style:none}" +
    ".read-also li{margin:.45em 0}" +
    ".read-also a{color:#1a1a1a;font-weight:600;text-decoration:none}" +
    ".read-also a:hover{text-decoration:underline}" +
    ".read-also .read-also-meta{display:block;color:#6b6b6b;font-size:.85em;font-weight:400}" +
    ".read-also .read-also-langs{margin:.8em 0 0;color:#6b6b6b;font-size:.9em}" +
    ".read-also .read-also-langs a{margin:0 .3em;font-weight:600}";

  var READER_STORAGE = "recommender-reader";

  function readerKey(element) {
    if (element.dataset.readerKey) return element.dataset.readerKey;
    var key = "";
    try {
      key = window.localStorage.getItem(READER_STORAGE) || "";
    } catch (error) { /* storage switched off: try the cookie */ }
    if (!key) {
      var match = document.cookie.match(/(?:^|; )recommender-reader=([^;]+)/);
      key = match ? decodeURIComponent(match[1]) : "";
    }
    if (!key) {
      var bytes = new Uint8Array(16);
      if (window.crypto && window.crypto.getRandomValues) window.crypto.getRandomValues(bytes);
      else for (var i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
      key = Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
      try {
        window.localStorage.setItem(READER_STORAGE, key);
      } catch (error) {
        document.cookie = "recommender-reader=" + key + "; max-age=31536000; path=/; SameSite=Lax";
      }
    }
    return key;
  }

  function reporter(element, api, source) {
    // a function sending events, or one doing nothing when the site switched them off
    if ((element.dataset.events || "").toLowerCase() === "off") return function () {};
    var reader = readerKey(element);
    return function (events) {
      events.forEach(function (event) { event.reader = reader; });
      var body = JSON.stringify({ events: events });
      var url = api + "/v1/events";
      try {
        var blob = new Blob([body], { type: "text/plain;charset=UTF-8" });
        if (navigator.sendBeacon && navigator.sendBeacon(url, blob)) return;
        fetch(url, { method: "POST", body: body, keepalive: true, mode: "no-cors",
                     headers: { "Content-Type": "text/plain;charset=UTF-8" } });
      } catch (error) { /* reporting never breaks the page */ }
    };
  }

  function watch(element, block, report, source, ids) {
    // one impression when half the block is in view, then stop watching
    if (!window.IntersectionObserver) return report([{ kind: "impression", source: source, ids: ids }]);
    var observer = new IntersectionObserver(function (entries) {
      if (!entries.some(function (entry) { return entry.isIntersecting; })) return;
      observer.disconnect();
      report([{ kind: "impression", source: source, ids: ids }]);
    }, { threshold: 0.5 });
    observer.observe(block);
  }

  function articleId(element) {
    if (element.dataset.articleId) return element.dataset.articleId;
    var meta = document.querySelector('meta[name="recommender:article-id"]');
    if (meta && meta.content) return meta.content;
    var canonical = document.querySelector('link[rel="canonical"]');
    return canonical ? canonical.href : "";
  }

  function hide(element) {
    element.textContent = "";
    element.hidden = true;
  }

  function formattedDate(iso, lang) {
    if (!iso) return "";
    var date = new Date(iso);
    if (isNaN(date.getTime())) return "";
    try {
      return date.toLocaleDateString(lang || undefined, { year: "numeric", month: "short", day: "numeric" });
    } catch (error) {
      return date.toISOString().slice(0, 10);
    }
  }

  function link(element, item) {
    var template = element.dataset.linkTemplate;
    if (template) return template.replace("{id}", encodeURIComponent(item.id));
    // only http(s) links are followed: an index built by an older release may hold others
    // (javascript:, data:), which the engine refuses today
    var url = item.url || "";
    return /^https?:\/\/[^\s\/?#]+/i.test(url) ? url : "";
  }

  function otherLanguages(element, copies) {
    // the same story in other languages (the API's other_languages): "Also in: EN · TR"
    var line = document.createElement("p");
    line.className = "read-also-langs";
    line.appendChild(document.createTextNode(element.dataset.otherLanguagesLabel || "Also in:"));
    copies.forEach(function (item) {
      var href = link(element, item);
      var copy = document.createElement(href ? "a" : "span");
      if (href) copy.href = href;
      copy.textContent = (item.lang || "?").toUpperCase();
      copy.title = item.title || "";
      copy.dataset.id = item.id;
      line.appendChild(copy);
    });
    return line;
  }

  function render(element, items, copies, report, source) {
    if (!items.length) return hide(element);
    if (!document.getElementById(STYLE_ID)) {
      var style = document.createElement("style");
      style.id = STYLE_ID;
      style.textContent = CSS;
      document.head.appendChild(style);
    }
    var block = document.createElement("aside");
    block.className = "read-also";
    var heading = document.createElement("h2");
    heading.textContent = element.dataset.heading || "Read also";
    block.appendChild(heading);
    var list = document.createElement("ul");
    items.forEach(function (item, position) {
      var entry = document.createElement("li");
      var href = link(element, item);
      var title = document.createElement(href ? "a" : "span");
      if (href) title.href = href;
      title.textContent = item.title || item.id;  // text, never HTML: titles are data
      if (item.lang) title.lang = item.lang;
      title.dir = "auto";  // Arabic beside English
      title.dataset.id = item.id;
      title.addEventListener("click", function () {
        report([{ kind: "click", source: source, target: item.id, position: position }]);
      });
      entry.appendChild(title);
      var meta = document.createElement("span");
      meta.className = "read-also-meta";
      var parts = [];
      if (item.lang) parts.push(item.lang.toUpperCase());
      var when = formattedDate(item.published_at, document.documentElement.lang);
      if (when) parts.push(when);
      meta.textContent = parts.join(" · ");
      entry.appendChild(meta);
      list.appendChild(entry);
    });
    block.appendChild(list);
    if (copies.length) block.appendChild(otherLanguages(element, copies));
    element.textContent = "";
    element.appendChild(block);
    element.hidden = false;
    watch(element, block, report, source, items.map(function (item) { return item.id; }));
  }

  function load(element) {
    var api = (element.dataset.recommenderApi || "").replace(/\/+$/, "");
    var id = articleId(element);
    if (!api || !id || !window.fetch) return hide(element);
    var report = reporter(element, api, id);
    report([{ kind: "read", target: id }]);
    var k = parseInt(element.dataset.k || "5", 10) || 5;
    var url = api + "/v1/articles/" + encodeURIComponent(id) + "/related?k=" + k;
    (element.dataset.lang || "").split(",").forEach(function (lang) {
      if (lang.trim()) url += "&lang=" + encodeURIComponent(lang.trim());
    });
    var controller = window.AbortController ? new AbortController() : null;
    var finished = false;
    var timer = setTimeout(function () {
      finished = true;
      if (controller) controller.abort();
      hide(element);
    }, parseInt(element.dataset.timeoutMs || "2000", 10));
    fetch(url, { headers: { Accept: "application/json" }, signal: controller ? controller.signal : undefined })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (body) {
        if (finished) return;
        clearTimeout(timer);
        render(element, body.results || [], body.other_languages || [], report, id);
      })
      .catch(function () {
        clearTimeout(timer);
        hide(element);
      });
  }

  function start() {
    Array.prototype.forEach.call(document.querySelectorAll("[data-recommender-api]"), load);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
