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

  function render(element, items, copies) {
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
    items.forEach(function (item) {
      var entry = document.createElement("li");
      var href = link(element, item);
      var title = document.createElement(href ? "a" : "span");
      if (href) title.href = href;
      title.textContent = item.title || item.id;  // text, never HTML: titles are data
      if (item.lang) title.lang = item.lang;
      title.dir = "auto";  // Arabic beside English
      title.dataset.id = item.id;
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
  }

  function load(element) {
    var api = (element.dataset.recommenderApi || "").replace(/\/+$/, "");
    var id = articleId(element);
    if (!api || !id || !window.fetch) return hide(element);
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
        render(element, body.results || [], body.other_languages || []);
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
