/* amplifier preview: the images, and filters by account, platform and language. Each image is in the page once,
   in the JSON map of <script id="images">; every <img data-image="KEY"> that shows it gets it from there. The
   filters read and write the URL fragment (#platform=bluesky&lang=ckb), so a filtered view can be bookmarked or
   shared. */
(function () {
  "use strict";
  var table = document.getElementById("images");
  var images = table ? JSON.parse(table.textContent || "{}") : {};
  Array.prototype.forEach.call(document.querySelectorAll("img[data-image]"), function (img) {
    var src = images[img.getAttribute("data-image")];
    if (src) { img.src = src; }
  });

  var selects = Array.prototype.slice.call(document.querySelectorAll("select[data-filter]"));
  var posts = Array.prototype.slice.call(document.querySelectorAll("article.post"));
  var days = Array.prototype.slice.call(document.querySelectorAll("section.day"));
  var shown = document.getElementById("shown");
  var none = document.querySelector(".none-shown");

  function fromHash() {
    var params = new URLSearchParams(window.location.hash.replace(/^#/, ""));
    selects.forEach(function (select) {
      var wanted = params.get(select.dataset.filter) || "";
      var known = Array.prototype.some.call(select.options, function (o) { return o.value === wanted; });
      select.value = known ? wanted : "";
    });
  }

  function toHash() {
    var params = new URLSearchParams();
    selects.forEach(function (select) {
      if (select.value) { params.set(select.dataset.filter, select.value); }
    });
    var hash = params.toString();
    if (window.history && window.history.replaceState) {
      window.history.replaceState(null, "", hash ? "#" + hash : window.location.pathname + window.location.search);
    }
  }

  function apply() {
    var count = 0;
    posts.forEach(function (post) {
      var match = selects.every(function (select) {
        return !select.value || post.dataset[select.dataset.filter] === select.value;
      });
      post.hidden = !match;
      if (match) { count += 1; }
    });
    days.forEach(function (day) {
      day.hidden = !day.querySelector("article.post:not([hidden])");
    });
    if (shown) { shown.textContent = String(count); }
    if (none) { none.hidden = count > 0 || posts.length === 0; }
  }

  selects.forEach(function (select) {
    select.addEventListener("change", function () { toHash(); apply(); });
  });
  window.addEventListener("hashchange", function () { fromHash(); apply(); });
  fromHash();
  apply();
  document.body.dataset.ready = "1";
})();
